//! Conformance: library set-up, slot/token/mechanism discovery, slot events and the random
//! number functions, with the exact return codes independent suites (Google's pkcs11test,
//! the Rust `cryptoki` and Python `python-pkcs11` test suites) check.

use cryptoki_sys::*;
use hsmux_tests::conformance::*;
use hsmux_tests::process::in_fresh_process;
use hsmux_tests::raw::{self, init_args};
use hsmux_tests::*;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::time::Duration;

extern "C" fn app_create_mutex(mutex: *mut *mut c_void) -> CK_RV {
    // SAFETY: the module passes a writable cell for the new mutex.
    unsafe { *mutex = Box::into_raw(Box::new(0u8)).cast() };
    CKR_OK
}
extern "C" fn app_destroy_mutex(mutex: *mut c_void) -> CK_RV {
    if !mutex.is_null() {
        // SAFETY: created by `app_create_mutex`.
        drop(unsafe { Box::from_raw(mutex.cast::<u8>()) });
    }
    CKR_OK
}
extern "C" fn app_lock_mutex(_mutex: *mut c_void) -> CK_RV {
    CKR_OK
}
extern "C" fn app_unlock_mutex(_mutex: *mut c_void) -> CK_RV {
    CKR_OK
}

fn with_app_mutexes(flags: CK_FLAGS) -> CK_C_INITIALIZE_ARGS {
    let mut args = init_args(flags);
    args.CreateMutex = Some(app_create_mutex);
    args.DestroyMutex = Some(app_destroy_mutex);
    args.LockMutex = Some(app_lock_mutex);
    args.UnlockMutex = Some(app_unlock_mutex);
    args
}

/// pkcs11test Init.{InitArgsNoLock, InitArgsInternalLocks, InitArgsMyLocks,
/// InitArgsMyOrInternalLocks, InitArgsNoNewThreads, UnexpectedFinalize, DoubleFinalize}.
#[test]
fn initialize_accepts_every_locking_configuration_and_finalize_needs_initialize() {
    in_fresh_process(
        "initialize_accepts_every_locking_configuration_and_finalize_needs_initialize",
        || {
            let _config = temp_config(1);
            expect_rv(
                raw::finalize(),
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_Finalize before any C_Initialize",
            );
            // All-zero arguments: single-threaded use, no locking asked for.
            expect_rv(
                raw::initialize(Some(&mut init_args(0))),
                CKR_OK,
                "C_Initialize(flags 0, no callbacks)",
            );
            expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
            expect_rv(
                raw::finalize(),
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "second C_Finalize",
            );
            // Application mutexes only: the module uses them or says it cannot.
            let rv = raw::initialize(Some(&mut with_app_mutexes(0)));
            expect_rv_in(
                rv,
                &[CKR_OK, CKR_CANT_LOCK],
                "C_Initialize with application mutex callbacks",
            );
            if rv == CKR_OK {
                expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
            }
            // Callbacks and CKF_OS_LOCKING_OK: the module may use either, so it must succeed.
            expect_rv(
                raw::initialize(Some(&mut with_app_mutexes(CKF_OS_LOCKING_OK))),
                CKR_OK,
                "C_Initialize with callbacks and CKF_OS_LOCKING_OK",
            );
            expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
            // A module that needs its own threads says so; one that does not succeeds.
            let rv = raw::initialize(Some(&mut init_args(CKF_LIBRARY_CANT_CREATE_OS_THREADS)));
            expect_rv_in(
                rv,
                &[CKR_OK, CKR_NEED_TO_CREATE_THREADS],
                "C_Initialize(CKF_LIBRARY_CANT_CREATE_OS_THREADS)",
            );
            if rv == CKR_OK {
                let (rv, n) = raw::slot_count(false);
                expect_rv(rv, CKR_OK, "C_GetSlotList without library threads");
                assert_eq!(n, 1);
                expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
            }
        },
    );
}

/// pkcs11test Init.Uninitialized, Slot.NoInit, RNG.SeedRandomNoInit/GenerateRandomNoInit:
/// every function family answers CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize.
#[test]
fn every_function_family_refuses_calls_before_initialize() {
    in_fresh_process(
        "every_function_family_refuses_calls_before_initialize",
        || {
            let _config = temp_config(1);
            let f = f();
            let mut class = CKO_DATA.to_ne_bytes();
            let mut template = [CK_ATTRIBUTE {
                type_: CKA_CLASS,
                pValue: class.as_mut_ptr().cast(),
                ulValueLen: class.len() as CK_ULONG,
            }];
            let mut mech = plain(CKM_SHA256);
            let mut handle: CK_ULONG = 0;
            let mut count: CK_ULONG = 0;
            let mut mi = CK_MECHANISM_INFO::default();
            let mut label = [b' '; 32];
            let mut pin = *b"12345678";
            let mut buf = [0u8; 16];
            let mut slot: CK_SLOT_ID = 0;
            let mut failures = Vec::new();
            let mut check = |what: &str, rv: CK_RV| {
                if rv != CKR_CRYPTOKI_NOT_INITIALIZED {
                    failures.push(format!("{what}: {}", rv_name(rv)));
                }
            };
            // SAFETY (every call below): all pointers are live locals; the module must
            // refuse before touching them.
            unsafe {
                check("C_CloseSession", f.C_CloseSession.unwrap()(1));
                check("C_CloseAllSessions", f.C_CloseAllSessions.unwrap()(0));
                check("C_EncryptInit", f.C_EncryptInit.unwrap()(1, &mut mech, 1));
                check(
                    "C_CreateObject",
                    f.C_CreateObject.unwrap()(1, template.as_mut_ptr(), 1, &mut handle),
                );
                check(
                    "C_FindObjectsInit",
                    f.C_FindObjectsInit.unwrap()(1, template.as_mut_ptr(), 1),
                );
                check(
                    "C_WaitForSlotEvent",
                    f.C_WaitForSlotEvent.unwrap()(CKF_DONT_BLOCK, &mut slot, null_mut()),
                );
                check(
                    "C_GetMechanismList",
                    f.C_GetMechanismList.unwrap()(0, null_mut(), &mut count),
                );
                check(
                    "C_GetMechanismInfo",
                    f.C_GetMechanismInfo.unwrap()(0, CKM_RSA_PKCS_KEY_PAIR_GEN, &mut mi),
                );
                check(
                    "C_InitToken",
                    f.C_InitToken.unwrap()(0, pin.as_mut_ptr(), 8, label.as_mut_ptr()),
                );
                check("C_InitPIN", f.C_InitPIN.unwrap()(1, pin.as_mut_ptr(), 8));
                check(
                    "C_SetPIN",
                    f.C_SetPIN.unwrap()(1, pin.as_mut_ptr(), 8, pin.as_mut_ptr(), 8),
                );
                check(
                    "C_Login",
                    f.C_Login.unwrap()(1, CKU_USER, pin.as_mut_ptr(), 8),
                );
                check("C_Logout", f.C_Logout.unwrap()(1));
                check(
                    "C_SeedRandom",
                    f.C_SeedRandom.unwrap()(1, buf.as_mut_ptr(), 8),
                );
                check(
                    "C_GenerateRandom",
                    f.C_GenerateRandom.unwrap()(1, buf.as_mut_ptr(), 8),
                );
                check("C_DigestInit", f.C_DigestInit.unwrap()(1, &mut mech));
            }
            assert!(
                failures.is_empty(),
                "expected CKR_CRYPTOKI_NOT_INITIALIZED from:\n{}",
                failures.join("\n")
            );
        },
    );
}

/// pkcs11test PKCS11Test.GetFunctionList: the table is stable across calls.
#[test]
fn get_function_list_returns_the_same_table_each_time() {
    let _h = shared();
    let get = raw::raw().get_function_list_symbol();
    let (mut a, mut b): (*mut CK_FUNCTION_LIST, *mut CK_FUNCTION_LIST) = (null_mut(), null_mut());
    // SAFETY: both out-cells are live.
    let (ra, rb) = unsafe { (get(&mut a), get(&mut b)) };
    expect_rv(ra, CKR_OK, "C_GetFunctionList");
    expect_rv(rb, CKR_OK, "C_GetFunctionList again");
    // SAFETY: the module returned pointers to its static tables.
    let (ta, tb) = unsafe { (&*a, &*b) };
    assert_eq!(
        (ta.version.major, ta.version.minor),
        (tb.version.major, tb.version.minor)
    );
    assert_eq!(ta.C_Sign.map(|p| p as usize), tb.C_Sign.map(|p| p as usize));
    assert_eq!(
        ta.C_WaitForSlotEvent.map(|p| p as usize),
        tb.C_WaitForSlotEvent.map(|p| p as usize)
    );
}

/// pkcs11test PKCS11Test.EnumerateSlots and rust-cryptoki get_slot_info_test: only defined
/// flags, blank padding, a software slot that is neither hardware nor removable, and
/// consistent token counters.
#[test]
fn slot_and_token_info_use_only_defined_flags_and_consistent_fields() {
    let t = shared().token("enumerate slots");
    let (rv, slot) = raw::slot_info(t.slot.id());
    expect_rv(rv, CKR_OK, "C_GetSlotInfo");
    assert!(blank_padded(&slot.slotDescription), "slotDescription");
    assert!(blank_padded(&slot.manufacturerID), "slot manufacturerID");
    let slot_flags = CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
    assert_eq!(
        slot.flags & !slot_flags,
        0,
        "undefined slot flags {:#x}",
        slot.flags
    );
    assert_eq!(slot.flags & CKF_TOKEN_PRESENT, CKF_TOKEN_PRESENT);
    // rust-cryptoki asserts both are clear for a software token.
    assert_eq!(
        slot.flags & CKF_HW_SLOT,
        0,
        "a software slot claims CKF_HW_SLOT"
    );
    assert_eq!(
        slot.flags & CKF_REMOVABLE_DEVICE,
        0,
        "CKF_REMOVABLE_DEVICE set"
    );

    let (rv, token) = raw::token_info(t.slot.id());
    expect_rv(rv, CKR_OK, "C_GetTokenInfo");
    for (name, field) in [
        ("label", &token.label[..]),
        ("manufacturerID", &token.manufacturerID[..]),
        ("model", &token.model[..]),
        ("serialNumber", &token.serialNumber[..]),
    ] {
        assert!(blank_padded(field), "token {name} is not blank-padded text");
    }
    let token_flags = CKF_RNG
        | CKF_WRITE_PROTECTED
        | CKF_LOGIN_REQUIRED
        | CKF_USER_PIN_INITIALIZED
        | CKF_RESTORE_KEY_NOT_NEEDED
        | CKF_CLOCK_ON_TOKEN
        | CKF_PROTECTED_AUTHENTICATION_PATH
        | CKF_DUAL_CRYPTO_OPERATIONS
        | CKF_TOKEN_INITIALIZED
        | CKF_SECONDARY_AUTHENTICATION
        | CKF_USER_PIN_COUNT_LOW
        | CKF_USER_PIN_FINAL_TRY
        | CKF_USER_PIN_LOCKED
        | CKF_USER_PIN_TO_BE_CHANGED
        | CKF_SO_PIN_COUNT_LOW
        | CKF_SO_PIN_FINAL_TRY
        | CKF_SO_PIN_LOCKED
        | CKF_SO_PIN_TO_BE_CHANGED
        | CKF_ERROR_STATE;
    assert_eq!(
        token.flags & !token_flags,
        0,
        "undefined token flags {:#x}",
        token.flags
    );
    if token.flags & CKF_CLOCK_ON_TOKEN != 0 {
        let time = std::str::from_utf8(&token.utcTime).expect("utcTime is ASCII");
        let num = |r: std::ops::Range<usize>| time[r].parse::<u32>().expect("utcTime digits");
        assert!((1900..=2100).contains(&num(0..4)), "utcTime year {time}");
        assert!((1..=12).contains(&num(4..6)), "utcTime month {time}");
        assert!((1..=31).contains(&num(6..8)), "utcTime day {time}");
        assert!(
            num(8..10) <= 23 && num(10..12) <= 59 && num(12..14) <= 60,
            "{time}"
        );
        assert_eq!(&time[14..16], "00", "utcTime reserved digits must be 00");
    }
    let counter_ok = |max: CK_ULONG, now: CK_ULONG| {
        // Counters are exact, or CK_UNAVAILABLE_INFORMATION; maxima may also be
        // CK_EFFECTIVELY_INFINITE.
        now == CK_UNAVAILABLE_INFORMATION
            || max == CK_UNAVAILABLE_INFORMATION
            || max == CK_EFFECTIVELY_INFINITE
            || now <= max
    };
    assert!(counter_ok(token.ulMaxSessionCount, token.ulSessionCount));
    assert!(counter_ok(
        token.ulMaxRwSessionCount,
        token.ulRwSessionCount
    ));
    assert!(
        token.ulMinPinLen <= token.ulMaxPinLen,
        "ulMinPinLen {} > ulMaxPinLen {}",
        token.ulMinPinLen,
        token.ulMaxPinLen
    );
}

/// pkcs11test PKCS11Test.{GetSlotList, GetSlotListTooLarge, GetMechanismListTooLarge}:
/// every slot with a token is in the full list, and a buffer larger than needed gets the
/// real count back.
#[test]
fn oversized_list_buffers_get_the_real_count_and_token_slots_are_a_subset() {
    let t = shared().token("oversized lists");
    let f = f();
    let (rv, all) = raw::slot_count(false);
    expect_rv(rv, CKR_OK, "C_GetSlotList(FALSE, NULL)");
    let mut big = vec![CK_INVALID_HANDLE; all as usize + 3];
    let mut n = big.len() as CK_ULONG;
    // SAFETY: `big` holds `n` entries.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_FALSE, big.as_mut_ptr(), &mut n) };
    expect_rv(rv, CKR_OK, "C_GetSlotList with 3 spare entries");
    assert_eq!(n, all, "C_GetSlotList must report the real slot count");
    let every: std::collections::BTreeSet<_> = big[..n as usize].iter().copied().collect();

    let (rv, with_token) = raw::slot_count(true);
    expect_rv(rv, CKR_OK, "C_GetSlotList(TRUE, NULL)");
    let mut present = vec![0; with_token as usize];
    let mut n = with_token;
    // SAFETY: `present` holds `n` entries.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, present.as_mut_ptr(), &mut n) };
    expect_rv(rv, CKR_OK, "C_GetSlotList(TRUE)");
    for id in &present[..n as usize] {
        assert!(
            every.contains(id),
            "slot {id} has a token but is not a slot"
        );
    }

    let (rv, mechs) = raw::mechanism_list(t.slot.id());
    expect_rv(rv, CKR_OK, "C_GetMechanismList");
    let mut big = vec![0; mechs.len() + 3];
    let mut n = big.len() as CK_ULONG;
    // SAFETY: `big` holds `n` entries.
    let rv = unsafe { f.C_GetMechanismList.unwrap()(t.slot.id(), big.as_mut_ptr(), &mut n) };
    expect_rv(rv, CKR_OK, "C_GetMechanismList with 3 spare entries");
    assert_eq!(
        n as usize,
        mechs.len(),
        "C_GetMechanismList must report the real count"
    );
}

/// The operations PKCS#11 3.0 (§ "Mechanisms vs. functions") allows each listed mechanism.
fn spec_operations(m: CK_MECHANISM_TYPE) -> Option<CK_FLAGS> {
    let ed = CKF_ENCRYPT | CKF_DECRYPT;
    let sv = CKF_SIGN | CKF_VERIFY;
    let wu = CKF_WRAP | CKF_UNWRAP;
    let rec = CKF_SIGN_RECOVER | CKF_VERIFY_RECOVER;
    Some(match m {
        CKM_RSA_PKCS | CKM_RSA_X_509 => ed | sv | rec | wu,
        CKM_RSA_PKCS_OAEP => ed | wu,
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS
        | CKM_SHA224_RSA_PKCS
        | CKM_SHA256_RSA_PKCS
        | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS
        | CKM_ECDSA
        | CKM_ECDSA_SHA1
        | CKM_ECDSA_SHA224
        | CKM_ECDSA_SHA256
        | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512
        | CKM_EDDSA
        | CKM_SHA_1_HMAC
        | CKM_SHA224_HMAC
        | CKM_SHA256_HMAC
        | CKM_SHA384_HMAC
        | CKM_SHA512_HMAC
        | CKM_AES_CMAC => sv,
        // 3.0 message-based encryption (C_MessageEncryptInit ...) is an AEAD capability.
        CKM_AES_GCM => ed | wu | CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT | CKF_MULTI_MESSAGE,
        CKM_AES_ECB | CKM_AES_CBC | CKM_AES_CBC_PAD | CKM_AES_CTR | CKM_AES_KEY_WRAP
        | CKM_AES_KEY_WRAP_KWP | CKM_AES_KEY_WRAP_PAD => ed | wu,
        CKM_SHA_1 | CKM_SHA224 | CKM_SHA256 | CKM_SHA384 | CKM_SHA512 => CKF_DIGEST,
        CKM_RSA_PKCS_KEY_PAIR_GEN | CKM_EC_KEY_PAIR_GEN | CKM_EC_EDWARDS_KEY_PAIR_GEN => {
            CKF_GENERATE_KEY_PAIR
        }
        CKM_AES_KEY_GEN
        | CKM_GENERIC_SECRET_KEY_GEN
        | CKM_SHA_1_KEY_GEN
        | CKM_SHA224_KEY_GEN
        | CKM_SHA256_KEY_GEN
        | CKM_SHA384_KEY_GEN
        | CKM_SHA512_KEY_GEN => CKF_GENERATE,
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => CKF_DERIVE,
        _ => return None,
    })
}

fn is_ec_mechanism(m: CK_MECHANISM_TYPE) -> bool {
    matches!(
        m,
        CKM_EC_KEY_PAIR_GEN
            | CKM_EC_EDWARDS_KEY_PAIR_GEN
            | CKM_ECDSA
            | CKM_ECDSA_SHA1
            | CKM_ECDSA_SHA224
            | CKM_ECDSA_SHA256
            | CKM_ECDSA_SHA384
            | CKM_ECDSA_SHA512
            | CKM_EDDSA
            | CKM_ECDH1_DERIVE
            | CKM_ECDH1_COFACTOR_DERIVE
    )
}

/// pkcs11test PKCS11Test.EnumerateMechanisms: ulMinKeySize <= ulMaxKeySize and no mechanism
/// claims an operation it cannot perform. (pkcs11test also rejects the CKF_EC_* capability
/// flags and flags on mechanisms it does not know; python-pkcs11 requires
/// CKF_EC_NAMEDCURVE, so capability flags are accepted on EC mechanisms here.)
#[test]
fn every_listed_mechanism_has_a_sane_key_range_and_only_possible_operations() {
    let t = shared().token("enumerate mechanisms");
    let (rv, mechs) = raw::mechanism_list(t.slot.id());
    expect_rv(rv, CKR_OK, "C_GetMechanismList");
    let ec_caps = CKF_EC_F_P
        | CKF_EC_F_2M
        | CKF_EC_ECPARAMETERS
        | CKF_EC_OID
        | CKF_EC_UNCOMPRESS
        | CKF_EC_COMPRESS
        | CKF_EC_CURVENAME;
    let mut problems = Vec::new();
    for m in mechs {
        let (rv, info) = raw::mechanism_info(t.slot.id(), m);
        if rv != CKR_OK {
            problems.push(format!("{m:#x}: C_GetMechanismInfo {}", rv_name(rv)));
            continue;
        }
        if info.ulMinKeySize > info.ulMaxKeySize {
            problems.push(format!(
                "{m:#x}: ulMinKeySize {} > ulMaxKeySize {}",
                info.ulMinKeySize, info.ulMaxKeySize
            ));
        }
        if info.flags & CKF_HW != 0 {
            problems.push(format!("{m:#x}: a software mechanism claims CKF_HW"));
        }
        // Mechanisms added later are checked for the generic rules above only.
        let Some(allowed) = spec_operations(m) else {
            continue;
        };
        let extra_ok = if is_ec_mechanism(m) { ec_caps } else { 0 };
        let extra = info.flags & !(allowed | extra_ok);
        if extra != 0 {
            problems.push(format!("{m:#x}: flags {:#x} beyond what it can do", extra));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// python-pkcs11 test_get_mechanism_info_ec: CKM_EC_KEY_PAIR_GEN advertises named curves.
#[test]
fn ec_key_pair_generation_advertises_named_curves() {
    let t = shared().token("ec named curve flag");
    let (rv, info) = raw::mechanism_info(t.slot.id(), CKM_EC_KEY_PAIR_GEN);
    expect_rv(rv, CKR_OK, "C_GetMechanismInfo(CKM_EC_KEY_PAIR_GEN)");
    assert_ne!(
        info.flags & CKF_EC_NAMEDCURVE,
        0,
        "CKM_EC_KEY_PAIR_GEN flags {:#x} lack CKF_EC_NAMEDCURVE",
        info.flags
    );
    assert_ne!(info.flags & CKF_GENERATE_KEY_PAIR, 0);
}

/// pkcs11test PKCS11Test.{GetMechanismListFailInvalid, GetMechanismInfoInvalid}.
#[test]
fn mechanism_queries_with_null_count_or_undefined_type_fail_precisely() {
    let t = shared().token("mechanism query errors");
    // SAFETY: NULL list and NULL count are the inputs under test.
    let rv = unsafe { f().C_GetMechanismList.unwrap()(t.slot.id(), null_mut(), null_mut()) };
    expect_rv(rv, CKR_ARGUMENTS_BAD, "C_GetMechanismList(NULL, NULL)");
    let (rv, _) = raw::mechanism_info(t.slot.id(), CKM_VENDOR_DEFINED + 1);
    expect_rv(
        rv,
        CKR_MECHANISM_INVALID,
        "C_GetMechanismInfo(CKM_VENDOR_DEFINED+1)",
    );
    let (rv, _) = raw::mechanism_info(t.slot.id(), 999);
    expect_rv(rv, CKR_MECHANISM_INVALID, "C_GetMechanismInfo(999)");
}

/// pkcs11test PKCS11Test.WaitForSlotEvent and rust-cryptoki wait_for_slot_event: a
/// non-blocking poll finds no event (twice); a blocking wait is refused, not hung.
/// (rust-cryptoki's get_slot_event expects the non-blocking poll itself to fail for modules
/// other than SoftHSM; pkcs11test accepts CKR_FUNCTION_NOT_SUPPORTED as "skip". Both
/// answers are allowed here.)
#[test]
fn slot_events_poll_without_blocking_and_blocking_waits_are_refused() {
    let _h = shared();
    let (first, _) = wait_for_slot_event(CKF_DONT_BLOCK);
    expect_rv_in(
        first,
        &[CKR_NO_EVENT, CKR_FUNCTION_NOT_SUPPORTED],
        "C_WaitForSlotEvent(CKF_DONT_BLOCK)",
    );
    if first == CKR_NO_EVENT {
        expect_rv(
            wait_for_slot_event(CKF_DONT_BLOCK).0,
            CKR_NO_EVENT,
            "second C_WaitForSlotEvent(CKF_DONT_BLOCK)",
        );
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(wait_for_slot_event(0).0);
    });
    let rv = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a blocking C_WaitForSlotEvent on a token that never changes hung");
    expect_rv(
        rv,
        CKR_FUNCTION_NOT_SUPPORTED,
        "C_WaitForSlotEvent(blocking)",
    );
}

/// pkcs11test ReadOnlySessionTest.SeedRandom, rust-cryptoki generate_random_test and
/// python-pkcs11 test_seed_random: a token with CKF_RNG accepts additional seed material.
/// (PKCS#11 also allows CKR_RANDOM_SEED_NOT_SUPPORTED, but all three suites fail on it.)
#[test]
fn seed_random_is_accepted_by_a_token_with_an_rng() {
    let t = shared().token("seed random ok");
    assert!(t.info().rng(), "the token must report CKF_RNG");
    let s = t.ro_session();
    expect_rv(
        seed_random(s.handle(), &[0u8; 32]),
        CKR_OK,
        "C_SeedRandom(32 zero bytes)",
    );
    expect_rv(
        seed_random(s.handle(), b"12345678"),
        CKR_OK,
        "C_SeedRandom(8 bytes)",
    );
    let (rv, a) = raw::generate_random(s.handle(), 32);
    expect_rv(rv, CKR_OK, "C_GenerateRandom after seeding");
    assert!(a.iter().any(|b| *b != 0), "32 zero bytes after a zero seed");
}

/// pkcs11test ReadOnlySessionTest.SeedRandomBadArguments, PKCS11Test.SeedRandomNoSession and
/// GenerateRandomNoSession.
#[test]
fn random_functions_check_their_session_and_seed_pointer() {
    let t = shared().token("random argument errors");
    let s = t.ro_session();
    // SAFETY: NULL seed with a non-zero length is the input under test.
    let rv = unsafe { f().C_SeedRandom.unwrap()(s.handle(), null_mut(), 1) };
    expect_rv(rv, CKR_ARGUMENTS_BAD, "C_SeedRandom(NULL, 1)");
    expect_rv(
        seed_random(BOGUS_SESSION, b"12345678"),
        CKR_SESSION_HANDLE_INVALID,
        "C_SeedRandom(unknown session)",
    );
    expect_rv(
        raw::generate_random(BOGUS_SESSION, 16).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_GenerateRandom(unknown session)",
    );
    // Two draws of 100 bytes differ (pkcs11test GenerateRandom).
    let (rv, a) = raw::generate_random(s.handle(), 100);
    expect_rv(rv, CKR_OK, "C_GenerateRandom(100)");
    let (_, b) = raw::generate_random(s.handle(), 100);
    assert_ne!(a, b, "two random draws are equal");
}
