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

fn mechanism_name(m: CK_MECHANISM_TYPE) -> String {
    MechanismType::try_from(m)
        .map(|t| t.to_string())
        .unwrap_or(format!("{m:#x}"))
}

fn listed_mechanisms(slot: Slot) -> Vec<CK_MECHANISM_TYPE> {
    let (rv, list) = raw::mechanism_list(slot.id());
    expect_rv(rv, CKR_OK, "C_GetMechanismList");
    list
}

#[test]
fn mechanism_list_advertises_every_required_mechanism() {
    let t = shared().token("mechanism_list_required");
    let listed: BTreeSet<CK_MECHANISM_TYPE> = listed_mechanisms(t.slot).into_iter().collect();
    let missing: Vec<String> = SUPPORTED_MECHANISMS
        .iter()
        .filter(|m| !listed.contains(m))
        .map(|m| mechanism_name(*m))
        .collect();
    assert!(missing.is_empty(), "C_GetMechanismList lacks {missing:?}");
}

#[test]
fn mechanism_list_has_no_duplicates() {
    let t = shared().token("mechanism_list_unique");
    let listed = listed_mechanisms(t.slot);
    assert!(!listed.is_empty(), "no mechanisms listed");
    let unique: BTreeSet<CK_MECHANISM_TYPE> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a mechanism is listed twice");
}

#[test]
fn every_advertised_mechanism_has_info_with_an_operation_flag() {
    let t = shared().token("mechanism_list_consistent");
    let operations = CKF_ENCRYPT
        | CKF_DECRYPT
        | CKF_DIGEST
        | CKF_SIGN
        | CKF_VERIFY
        | CKF_GENERATE
        | CKF_GENERATE_KEY_PAIR
        | CKF_WRAP
        | CKF_UNWRAP
        | CKF_DERIVE;
    let mut problems = Vec::new();
    for m in listed_mechanisms(t.slot) {
        let (rv, info) = raw::mechanism_info(t.slot.id(), m);
        if rv != CKR_OK {
            problems.push(format!(
                "{}: advertised but C_GetMechanismInfo returns {}",
                mechanism_name(m),
                rv_name(rv)
            ));
        } else if info.flags & operations == 0 {
            problems.push(format!("{}: no operation flag", mechanism_name(m)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn mechanism_info_flags_match_each_mechanism_operation() {
    let t = shared().token("mechanism_info_flags");
    let mut problems = Vec::new();
    for &m in SUPPORTED_MECHANISMS {
        let name = mechanism_name(m);
        let (rv, info) = raw::mechanism_info(t.slot.id(), m);
        if rv != CKR_OK {
            problems.push(format!(
                "{name}: C_GetMechanismInfo returns {}",
                rv_name(rv)
            ));
            continue;
        }
        let has = |flag: CK_FLAGS| info.flags & flag == flag;
        let required = match m {
            CKM_RSA_PKCS_KEY_PAIR_GEN | CKM_EC_KEY_PAIR_GEN => CKF_GENERATE_KEY_PAIR,
            CKM_AES_KEY_GEN | CKM_GENERIC_SECRET_KEY_GEN => CKF_GENERATE,
            CKM_AES_GCM | CKM_AES_CBC_PAD | CKM_RSA_PKCS_OAEP => CKF_ENCRYPT | CKF_DECRYPT,
            CKM_SHA_1 | CKM_SHA224 | CKM_SHA256 | CKM_SHA384 | CKM_SHA512 => CKF_DIGEST,
            _ => CKF_SIGN | CKF_VERIFY,
        };
        if !has(required) {
            problems.push(format!(
                "{name}: flags {:#x} lack the required {required:#x}",
                info.flags
            ));
        }
        // Operations a mechanism cannot do must not be advertised.
        let impossible = match m {
            CKM_SHA_1 | CKM_SHA224 | CKM_SHA256 | CKM_SHA384 | CKM_SHA512 => {
                CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT | CKF_GENERATE_KEY_PAIR
            }
            CKM_RSA_PKCS_KEY_PAIR_GEN
            | CKM_EC_KEY_PAIR_GEN
            | CKM_AES_KEY_GEN
            | CKM_GENERIC_SECRET_KEY_GEN => CKF_SIGN | CKF_ENCRYPT | CKF_DIGEST,
            CKM_AES_GCM | CKM_AES_CBC_PAD | CKM_RSA_PKCS_OAEP => CKF_SIGN | CKF_DIGEST,
            CKM_RSA_PKCS => CKF_DIGEST | CKF_GENERATE_KEY_PAIR,
            _ => CKF_ENCRYPT | CKF_DIGEST | CKF_GENERATE_KEY_PAIR,
        };
        if info.flags & impossible != 0 {
            problems.push(format!(
                "{name}: advertises impossible operations {:#x}",
                info.flags & impossible
            ));
        }
        let (min, max) = (info.ulMinKeySize, info.ulMaxKeySize);
        match m {
            CKM_RSA_PKCS_KEY_PAIR_GEN if !(min <= 2048 && max >= 4096) => problems.push(format!(
                "{name}: key sizes {min}..{max} bits must cover 2048..4096"
            )),
            CKM_EC_KEY_PAIR_GEN if !(min <= 256 && max >= 521) => problems.push(format!(
                "{name}: key sizes {min}..{max} bits must cover 256..521"
            )),
            CKM_AES_KEY_GEN if !(min <= 16 && max >= 32) => problems.push(format!(
                "{name}: key sizes {min}..{max} bytes must cover 16..32"
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
    for m in [
        MechanismType::new_vendor_defined(CKM_VENDOR_DEFINED | 0x4241).unwrap(),
        MechanismType::new_vendor_defined(CKM_VENDOR_DEFINED | 0x4242).unwrap(),
    ] {
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
