//! General-purpose functions (C_Initialize, C_Finalize, C_GetInfo) and slot/mechanism
//! discovery (C_GetSlotList, C_GetSlotInfo, C_GetMechanismList, C_GetMechanismInfo).

use cryptoki::mechanism::MechanismType;
use cryptoki::slot::Slot;
use cryptoki_sys::*;
use hsmux_tests::process::in_fresh_process;
use hsmux_tests::raw::{self, init_args};
use hsmux_tests::*;
use std::collections::BTreeSet;

#[test]
fn get_info_reports_cryptoki_version_manufacturer_and_description() {
    let info = ok(shared().pkcs11.get_library_info(), "C_GetInfo");
    let v = info.cryptoki_version();
    assert!(
        (v.major(), v.minor()) == (2, 40) || (v.major(), v.minor()) == (3, 0),
        "cryptokiVersion must be 2.40 or 3.0, got {}.{}",
        v.major(),
        v.minor()
    );
    assert!(
        !info.manufacturer_id().trim().is_empty(),
        "manufacturerID is blank"
    );
    assert!(
        !info.library_description().trim().is_empty(),
        "libraryDescription is blank"
    );
}

#[test]
fn slot_list_has_one_slot_per_configured_token_with_ids_in_config_order() {
    let h = shared();
    let ids: Vec<u64> = ok(h.pkcs11.get_all_slots(), "C_GetSlotList(FALSE)")
        .iter()
        .map(|s| s.id())
        .collect();
    let expected: Vec<u64> = (0..TOKENS_PER_PROCESS as u64).collect();
    assert_eq!(ids, expected, "slot IDs must be 0..N in config order");
    let with_token = ok(h.pkcs11.get_slots_with_token(), "C_GetSlotList(TRUE)");
    assert_eq!(
        with_token.len(),
        TOKENS_PER_PROCESS,
        "every configured token is present"
    );
}

#[test]
fn slot_info_reports_token_present() {
    let t = shared().token("slot_info_present");
    let info = ok(t.pkcs11.get_slot_info(t.slot), "C_GetSlotInfo");
    assert!(info.token_present(), "CKF_TOKEN_PRESENT not set");
    assert!(
        !info.slot_description().trim().is_empty(),
        "slotDescription is blank"
    );
}

#[test]
fn unknown_slot_id_returns_slot_id_invalid() {
    let h = shared();
    let bogus = Slot::try_from(4242u64).unwrap();
    expect_rv(
        h.pkcs11.get_slot_info(bogus),
        CKR_SLOT_ID_INVALID,
        "C_GetSlotInfo(4242)",
    );
    expect_rv(
        h.pkcs11.get_token_info(bogus),
        CKR_SLOT_ID_INVALID,
        "C_GetTokenInfo(4242)",
    );
    expect_rv(
        h.pkcs11.get_mechanism_list(bogus),
        CKR_SLOT_ID_INVALID,
        "C_GetMechanismList(4242)",
    );
    expect_rv(
        h.pkcs11.get_mechanism_info(bogus, MechanismType::SHA256),
        CKR_SLOT_ID_INVALID,
        "C_GetMechanismInfo(4242)",
    );
    expect_rv(
        raw::open_session(4242, CKF_SERIAL_SESSION).0,
        CKR_SLOT_ID_INVALID,
        "C_OpenSession(4242)",
    );
}

#[test]
fn mechanism_list_advertises_exactly_the_supported_mechanisms() {
    let t = shared().token("mechanism_list_exact");
    let listed: BTreeSet<CK_MECHANISM_TYPE> =
        ok(t.pkcs11.get_mechanism_list(t.slot), "C_GetMechanismList")
            .into_iter()
            .map(|m| *m)
            .collect();
    let expected: BTreeSet<CK_MECHANISM_TYPE> = SUPPORTED_MECHANISMS.iter().copied().collect();
    let missing: Vec<String> = expected
        .difference(&listed)
        .map(|m| {
            MechanismType::try_from(*m)
                .map(|t| t.to_string())
                .unwrap_or(format!("{m:#x}"))
        })
        .collect();
    let extra: Vec<String> = listed
        .difference(&expected)
        .map(|m| {
            MechanismType::try_from(*m)
                .map(|t| t.to_string())
                .unwrap_or(format!("{m:#x}"))
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "C_GetMechanismList: missing {missing:?}, advertised but unsupported {extra:?}"
    );
}

#[test]
fn mechanism_list_length_query_matches_list() {
    let t = shared().token("mechanism_list_len_query");
    let listed = ok(t.pkcs11.get_mechanism_list(t.slot), "C_GetMechanismList");
    assert!(!listed.is_empty(), "no mechanisms listed");
    let unique: BTreeSet<CK_MECHANISM_TYPE> = listed.iter().map(|m| **m).collect();
    assert_eq!(unique.len(), listed.len(), "a mechanism is listed twice");
}

#[test]
fn mechanism_info_flags_match_each_mechanism_operation() {
    let t = shared().token("mechanism_info_flags");
    let mut problems = Vec::new();
    for &m in SUPPORTED_MECHANISMS {
        let mt = MechanismType::try_from(m).unwrap();
        let info = match t.pkcs11.get_mechanism_info(t.slot, mt) {
            Ok(info) => info,
            Err(e) => {
                problems.push(format!("{mt}: C_GetMechanismInfo failed: {e}"));
                continue;
            }
        };
        let (sign, crypt, digest, gen, gen_pair) = match m {
            CKM_RSA_PKCS_KEY_PAIR_GEN | CKM_EC_KEY_PAIR_GEN => (false, false, false, false, true),
            CKM_AES_KEY_GEN | CKM_GENERIC_SECRET_KEY_GEN => (false, false, false, true, false),
            CKM_AES_GCM | CKM_AES_CBC_PAD | CKM_RSA_PKCS_OAEP => (false, true, false, false, false),
            CKM_SHA_1 | CKM_SHA224 | CKM_SHA256 | CKM_SHA384 | CKM_SHA512 => {
                (false, false, true, false, false)
            }
            _ => (true, false, false, false, false),
        };
        let got = (
            info.sign() && info.verify(),
            // CKM_RSA_PKCS may also encrypt; the contract only asks for sign/verify.
            info.encrypt() && info.decrypt() && m != CKM_RSA_PKCS,
            info.digest(),
            info.generate(),
            info.generate_key_pair(),
        );
        if got != (sign, crypt, digest, gen, gen_pair) {
            problems.push(format!(
                "{mt}: flags sign+verify/encrypt+decrypt/digest/generate/generate_key_pair = {got:?}, expected {:?}",
                (sign, crypt, digest, gen, gen_pair)
            ));
        }
        if !sign && (info.sign() || info.verify()) {
            problems.push(format!("{mt}: advertises sign/verify"));
        }
        if !crypt && m != CKM_RSA_PKCS && (info.encrypt() || info.decrypt()) {
            problems.push(format!("{mt}: advertises encrypt/decrypt"));
        }
        let (min, max) = (info.min_key_size(), info.max_key_size());
        match m {
            CKM_RSA_PKCS_KEY_PAIR_GEN if !(min <= 2048 && max >= 4096) => problems.push(format!(
                "{mt}: key sizes {min}..{max} bits must cover 2048..4096"
            )),
            CKM_EC_KEY_PAIR_GEN if !(min <= 256 && max >= 521) => problems.push(format!(
                "{mt}: key sizes {min}..{max} bits must cover 256..521"
            )),
            CKM_AES_KEY_GEN if !(min <= 16 && max >= 32) => problems.push(format!(
                "{mt}: key sizes {min}..{max} bytes must cover 16..32"
            )),
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "mechanism info problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn mechanism_info_for_unadvertised_mechanism_returns_mechanism_invalid() {
    let t = shared().token("mechanism_info_invalid");
    for m in [MechanismType::DES3_CBC, MechanismType::AES_ECB] {
        expect_rv(
            t.pkcs11.get_mechanism_info(t.slot, m),
            CKR_MECHANISM_INVALID,
            &format!("C_GetMechanismInfo({m})"),
        );
    }
}

#[test]
fn calls_before_initialize_return_cryptoki_not_initialized() {
    in_fresh_process(
        "calls_before_initialize_return_cryptoki_not_initialized",
        || {
            let _config = temp_config(1);
            expect_rv(raw::get_info().0, CKR_CRYPTOKI_NOT_INITIALIZED, "C_GetInfo");
            expect_rv(
                raw::slot_count(false).0,
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_GetSlotList",
            );
            expect_rv(
                raw::slot_info(0).0,
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_GetSlotInfo",
            );
            expect_rv(
                raw::token_info(0).0,
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_GetTokenInfo",
            );
            expect_rv(
                raw::open_session(0, CKF_SERIAL_SESSION).0,
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_OpenSession",
            );
            expect_rv(
                raw::session_info(1).0,
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_GetSessionInfo",
            );
            expect_rv(raw::finalize(), CKR_CRYPTOKI_NOT_INITIALIZED, "C_Finalize");
            // ...and the module still initialises normally afterwards.
            expect_rv(
                raw::initialize(Some(&mut init_args(CKF_OS_LOCKING_OK))),
                CKR_OK,
                "C_Initialize after the rejected calls",
            );
            expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
        },
    );
}

#[test]
fn second_initialize_returns_cryptoki_already_initialized() {
    in_fresh_process(
        "second_initialize_returns_cryptoki_already_initialized",
        || {
            let _config = temp_config(1);
            expect_rv(
                raw::initialize(Some(&mut init_args(CKF_OS_LOCKING_OK))),
                CKR_OK,
                "first C_Initialize",
            );
            expect_rv(
                raw::initialize(Some(&mut init_args(CKF_OS_LOCKING_OK))),
                CKR_CRYPTOKI_ALREADY_INITIALIZED,
                "second C_Initialize",
            );
            expect_rv(
                raw::initialize(None),
                CKR_CRYPTOKI_ALREADY_INITIALIZED,
                "C_Initialize(NULL) while initialised",
            );
            expect_rv(raw::get_info().0, CKR_OK, "C_GetInfo still works");
            expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
        },
    );
}

#[test]
fn initialize_with_null_args_works() {
    in_fresh_process("initialize_with_null_args_works", || {
        let _config = temp_config(2);
        expect_rv(raw::initialize(None), CKR_OK, "C_Initialize(NULL)");
        let (rv, count) = raw::slot_count(false);
        expect_rv(rv, CKR_OK, "C_GetSlotList");
        assert_eq!(count, 2, "two configured tokens, two slots");
        expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
    });
}

#[test]
fn finalize_makes_later_calls_return_not_initialized_and_reinitialize_works() {
    in_fresh_process(
        "finalize_makes_later_calls_return_not_initialized_and_reinitialize_works",
        || {
            let _config = temp_config(1);
            expect_rv(
                raw::initialize(Some(&mut init_args(CKF_OS_LOCKING_OK))),
                CKR_OK,
                "C_Initialize",
            );
            expect_rv(
                raw::init_token(0, SO_PIN, "finalize"),
                CKR_OK,
                "C_InitToken",
            );
            let (rv, session) = raw::open_session(0, CKF_SERIAL_SESSION);
            expect_rv(rv, CKR_OK, "C_OpenSession");
            expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
            expect_rv(
                raw::get_info().0,
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_GetInfo after C_Finalize",
            );
            expect_rv(
                raw::session_info(session).0,
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_GetSessionInfo after C_Finalize",
            );
            expect_rv(
                raw::finalize(),
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "second C_Finalize",
            );
            expect_rv(
                raw::initialize(Some(&mut init_args(CKF_OS_LOCKING_OK))),
                CKR_OK,
                "C_Initialize again",
            );
            // Sessions do not survive C_Finalize.
            expect_rv(
                raw::session_info(session).0,
                CKR_SESSION_HANDLE_INVALID,
                "C_GetSessionInfo on a session from before C_Finalize",
            );
            let (rv, _) = raw::open_session(0, CKF_SERIAL_SESSION);
            expect_rv(rv, CKR_OK, "C_OpenSession after re-initialising");
            expect_rv(raw::finalize(), CKR_OK, "C_Finalize");
        },
    );
}

#[test]
fn initialize_with_non_null_reserved_returns_arguments_bad() {
    in_fresh_process(
        "initialize_with_non_null_reserved_returns_arguments_bad",
        || {
            let _config = temp_config(1);
            let mut junk = 0u64;
            let mut args = init_args(CKF_OS_LOCKING_OK);
            args.pReserved = (&mut junk as *mut u64).cast();
            expect_rv(
                raw::initialize(Some(&mut args)),
                CKR_ARGUMENTS_BAD,
                "C_Initialize with pReserved != NULL",
            );
            expect_rv(
                raw::get_info().0,
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "module must stay uninitialised after a rejected C_Initialize",
            );
        },
    );
}

extern "C" fn fake_create_mutex(_mutex: *mut *mut std::ffi::c_void) -> CK_RV {
    CKR_OK
}

#[test]
fn initialize_with_only_some_mutex_callbacks_returns_arguments_bad() {
    in_fresh_process(
        "initialize_with_only_some_mutex_callbacks_returns_arguments_bad",
        || {
            let _config = temp_config(1);
            let mut args = init_args(CKF_OS_LOCKING_OK);
            args.CreateMutex = Some(fake_create_mutex);
            expect_rv(
                raw::initialize(Some(&mut args)),
                CKR_ARGUMENTS_BAD,
                "C_Initialize with CreateMutex set but the other three NULL",
            );
        },
    );
}

#[test]
fn finalize_with_non_null_reserved_returns_arguments_bad() {
    in_fresh_process(
        "finalize_with_non_null_reserved_returns_arguments_bad",
        || {
            let _config = temp_config(1);
            expect_rv(
                raw::initialize(Some(&mut init_args(CKF_OS_LOCKING_OK))),
                CKR_OK,
                "C_Initialize",
            );
            let mut junk = 0u64;
            // SAFETY: the module must reject a non-NULL pReserved without touching it.
            let rv = unsafe {
                raw::raw().functions().C_Finalize.unwrap()((&mut junk as *mut u64).cast())
            };
            expect_rv(rv, CKR_ARGUMENTS_BAD, "C_Finalize(non-NULL)");
            expect_rv(raw::get_info().0, CKR_OK, "module stays initialised");
            expect_rv(raw::finalize(), CKR_OK, "C_Finalize(NULL)");
        },
    );
}
