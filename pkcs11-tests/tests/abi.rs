//! The raw C ABI, through `libloading` and `cryptoki-sys` only: function tables
//! (C_GetFunctionList, C_GetInterfaceList, C_GetInterface), blank-padded strings, list
//! length conventions, and NULL pointers answered with CKR_ARGUMENTS_BAD instead of a
//! crash. Each NULL-pointer group runs in its own process so a crash is reported as
//! that group's failure.

use cryptoki_sys::*;
use hsmux_tests::process::in_fresh_process;
use hsmux_tests::raw::{self, raw, Op, Out};
use hsmux_tests::*;
use std::ffi::c_void;
use std::ptr::null_mut;

/// Collects every mismatch of a table of raw calls, so one run reports them all.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn expect(&mut self, what: &str, got: CK_RV, expected: CK_RV) {
        if got != expected {
            self.0.push(format!(
                "{what}: expected {}, got {}",
                rv_name(expected),
                rv_name(got)
            ));
        }
    }

    #[track_caller]
    fn assert_empty(self) {
        assert!(self.0.is_empty(), "\n{}", self.0.join("\n"));
    }
}

macro_rules! names_of_null {
    ($list:expr, $($f:ident),* $(,)?) => {{
        let mut missing: Vec<&str> = Vec::new();
        $( if $list.$f.is_none() { missing.push(stringify!($f)); } )*
        missing
    }};
}

macro_rules! v2_null_entries {
    ($list:expr) => {
        names_of_null!(
            $list,
            C_Initialize,
            C_Finalize,
            C_GetInfo,
            C_GetFunctionList,
            C_GetSlotList,
            C_GetSlotInfo,
            C_GetTokenInfo,
            C_GetMechanismList,
            C_GetMechanismInfo,
            C_InitToken,
            C_InitPIN,
            C_SetPIN,
            C_OpenSession,
            C_CloseSession,
            C_CloseAllSessions,
            C_GetSessionInfo,
            C_GetOperationState,
            C_SetOperationState,
            C_Login,
            C_Logout,
            C_CreateObject,
            C_CopyObject,
            C_DestroyObject,
            C_GetObjectSize,
            C_GetAttributeValue,
            C_SetAttributeValue,
            C_FindObjectsInit,
            C_FindObjects,
            C_FindObjectsFinal,
            C_EncryptInit,
            C_Encrypt,
            C_EncryptUpdate,
            C_EncryptFinal,
            C_DecryptInit,
            C_Decrypt,
            C_DecryptUpdate,
            C_DecryptFinal,
            C_DigestInit,
            C_Digest,
            C_DigestUpdate,
            C_DigestKey,
            C_DigestFinal,
            C_SignInit,
            C_Sign,
            C_SignUpdate,
            C_SignFinal,
            C_SignRecoverInit,
            C_SignRecover,
            C_VerifyInit,
            C_Verify,
            C_VerifyUpdate,
            C_VerifyFinal,
            C_VerifyRecoverInit,
            C_VerifyRecover,
            C_DigestEncryptUpdate,
            C_DecryptDigestUpdate,
            C_SignEncryptUpdate,
            C_DecryptVerifyUpdate,
            C_GenerateKey,
            C_GenerateKeyPair,
            C_WrapKey,
            C_UnwrapKey,
            C_DeriveKey,
            C_SeedRandom,
            C_GenerateRandom,
            C_GetFunctionStatus,
            C_CancelFunction,
            C_WaitForSlotEvent,
        )
    };
}

#[test]
fn get_function_list_returns_a_complete_version_2_40_table() {
    let list = raw().functions();
    assert_eq!(
        (list.version.major, list.version.minor),
        (2, 40),
        "C_GetFunctionList must return the 2.40 CK_FUNCTION_LIST"
    );
    let missing = v2_null_entries!(list);
    assert!(
        missing.is_empty(),
        "NULL entries in CK_FUNCTION_LIST: {missing:?}"
    );
}

#[test]
fn get_function_list_with_null_returns_arguments_bad() {
    let get = raw().get_function_list_symbol();
    // SAFETY: NULL is the input under test; the module must reject it.
    let rv = unsafe { get(null_mut()) };
    expect_rv(rv, CKR_ARGUMENTS_BAD, "C_GetFunctionList(NULL)");
}

fn interfaces() -> Vec<CK_INTERFACE> {
    let list = raw()
        .get_interface_list_symbol()
        .expect("module exports C_GetInterfaceList");
    let mut count: CK_ULONG = 0;
    // SAFETY: a NULL list with a live count is the documented count query.
    let rv = unsafe { list(null_mut(), &mut count) };
    expect_rv(rv, CKR_OK, "C_GetInterfaceList(NULL, &count)");
    assert!(count >= 1, "C_GetInterfaceList reports {count} interfaces");
    let mut out = vec![
        CK_INTERFACE {
            pInterfaceName: null_mut(),
            pFunctionList: null_mut(),
            flags: 0,
        };
        count as usize
    ];
    // SAFETY: `out` has room for `count` interfaces.
    let rv = unsafe { list(out.as_mut_ptr(), &mut count) };
    expect_rv(rv, CKR_OK, "C_GetInterfaceList(list, &count)");
    out.truncate(count as usize);
    out
}

fn interface_name(interface: &CK_INTERFACE) -> String {
    assert!(
        !interface.pInterfaceName.is_null(),
        "interface with a NULL name"
    );
    // SAFETY: interface names are NUL-terminated static strings of the module.
    unsafe { std::ffi::CStr::from_ptr(interface.pInterfaceName as *const std::ffi::c_char) }
        .to_string_lossy()
        .into_owned()
}

fn function_list_version(interface: &CK_INTERFACE) -> (u8, u8) {
    assert!(
        !interface.pFunctionList.is_null(),
        "interface with a NULL function list"
    );
    // SAFETY: every function list starts with its CK_VERSION.
    let version = unsafe { *(interface.pFunctionList as *const CK_VERSION) };
    (version.major, version.minor)
}

#[test]
fn get_interface_list_offers_pkcs11_3_0_with_a_complete_table() {
    let all = interfaces();
    let v3 = all
        .iter()
        .find(|i| interface_name(i) == "PKCS 11" && function_list_version(i) == (3, 0))
        .unwrap_or_else(|| {
            panic!(
                "no \"PKCS 11\" 3.0 interface among {:?}",
                all.iter()
                    .map(|i| (interface_name(i), function_list_version(i)))
                    .collect::<Vec<_>>()
            )
        });
    // SAFETY: a 3.0 "PKCS 11" interface points at a CK_FUNCTION_LIST_3_0.
    let list = unsafe { &*(v3.pFunctionList as *const CK_FUNCTION_LIST_3_0) };
    let mut missing = v2_null_entries!(list);
    missing.extend(names_of_null!(
        list,
        C_GetInterfaceList,
        C_GetInterface,
        C_LoginUser,
        C_SessionCancel,
        C_MessageEncryptInit,
        C_EncryptMessage,
        C_EncryptMessageBegin,
        C_EncryptMessageNext,
        C_MessageEncryptFinal,
        C_MessageDecryptInit,
        C_DecryptMessage,
        C_DecryptMessageBegin,
        C_DecryptMessageNext,
        C_MessageDecryptFinal,
        C_MessageSignInit,
        C_SignMessage,
        C_SignMessageBegin,
        C_SignMessageNext,
        C_MessageSignFinal,
        C_MessageVerifyInit,
        C_VerifyMessage,
        C_VerifyMessageBegin,
        C_VerifyMessageNext,
        C_MessageVerifyFinal,
    ));
    assert!(
        missing.is_empty(),
        "NULL entries in CK_FUNCTION_LIST_3_0: {missing:?}"
    );
    // The 3.0 table and the 2.40 table reach the same module.
    let mut info = CK_INFO::default();
    let _h = shared();
    // SAFETY: `info` outlives the call.
    let rv = unsafe { list.C_GetInfo.unwrap()(&mut info) };
    expect_rv(rv, CKR_OK, "C_GetInfo through the 3.0 table");
}

#[test]
fn get_interface_list_with_too_small_count_returns_buffer_too_small() {
    let list = raw()
        .get_interface_list_symbol()
        .expect("module exports C_GetInterfaceList");
    let n = interfaces().len() as CK_ULONG;
    let mut one = [CK_INTERFACE {
        pInterfaceName: null_mut(),
        pFunctionList: null_mut(),
        flags: 0,
    }];
    let mut count: CK_ULONG = 0;
    // SAFETY: the module may write at most `count` (0) entries.
    let rv = unsafe { list(one.as_mut_ptr(), &mut count) };
    expect_rv(rv, CKR_BUFFER_TOO_SMALL, "C_GetInterfaceList with count 0");
    assert_eq!(count, n, "C_GetInterfaceList must report the needed count");
    // SAFETY: NULL count pointer is the input under test.
    let rv = unsafe { list(null_mut(), null_mut()) };
    expect_rv(rv, CKR_ARGUMENTS_BAD, "C_GetInterfaceList(NULL, NULL)");
}

#[test]
fn get_interface_finds_pkcs11_3_0_by_name_and_version_and_by_default() {
    let get = raw()
        .get_interface_symbol()
        .expect("module exports C_GetInterface");
    let mut name = *b"PKCS 11\0";
    let mut version = CK_VERSION { major: 3, minor: 0 };
    let mut found: *mut CK_INTERFACE = null_mut();
    // SAFETY: NUL-terminated name, live version and out-pointer.
    let rv = unsafe { get(name.as_mut_ptr(), &mut version, &mut found, 0) };
    expect_rv(rv, CKR_OK, "C_GetInterface(\"PKCS 11\", 3.0)");
    assert!(!found.is_null(), "C_GetInterface returned no interface");
    // SAFETY: the module returned a pointer to one of its static interfaces.
    let interface = unsafe { &*found };
    assert_eq!(interface_name(interface), "PKCS 11");
    assert_eq!(function_list_version(interface), (3, 0));

    let mut default: *mut CK_INTERFACE = null_mut();
    // SAFETY: NULL name/version ask for the default interface.
    let rv = unsafe { get(null_mut(), null_mut(), &mut default, 0) };
    expect_rv(rv, CKR_OK, "C_GetInterface(NULL, NULL)");
    assert!(!default.is_null());
    // SAFETY: as above.
    let default = unsafe { &*default };
    assert_eq!(interface_name(default), "PKCS 11");

    let mut name_only: *mut CK_INTERFACE = null_mut();
    // SAFETY: as above.
    let rv = unsafe { get(name.as_mut_ptr(), null_mut(), &mut name_only, 0) };
    expect_rv(rv, CKR_OK, "C_GetInterface(\"PKCS 11\", NULL)");
}

#[test]
fn get_interface_for_unknown_name_or_version_fails_and_null_output_is_arguments_bad() {
    let get = raw()
        .get_interface_symbol()
        .expect("module exports C_GetInterface");
    let mut found: *mut CK_INTERFACE = null_mut();
    let mut other = *b"Vendor Nothing\0";
    // SAFETY: NUL-terminated name and a live out-pointer.
    let rv = unsafe { get(other.as_mut_ptr(), null_mut(), &mut found, 0) };
    assert_ne!(rv, CKR_OK, "C_GetInterface(\"Vendor Nothing\") must fail");
    let mut name = *b"PKCS 11\0";
    let mut version = CK_VERSION { major: 9, minor: 9 };
    // SAFETY: as above.
    let rv = unsafe { get(name.as_mut_ptr(), &mut version, &mut found, 0) };
    assert_ne!(rv, CKR_OK, "C_GetInterface(\"PKCS 11\", 9.9) must fail");
    // SAFETY: NULL ppInterface is the input under test.
    let rv = unsafe { get(name.as_mut_ptr(), null_mut(), null_mut(), 0) };
    expect_rv(
        rv,
        CKR_ARGUMENTS_BAD,
        "C_GetInterface with ppInterface NULL",
    );
}

fn assert_blank_padded(field: &[u8], what: &str) {
    assert!(
        !field.contains(&0),
        "{what} must be blank-padded, not NUL-terminated: {:?}",
        String::from_utf8_lossy(field)
    );
    assert!(std::str::from_utf8(field).is_ok(), "{what} is not UTF-8");
}

#[test]
fn info_strings_are_blank_padded_without_nul_bytes() {
    let t = shared().token("blank padded label");
    let (rv, info) = raw::get_info();
    expect_rv(rv, CKR_OK, "C_GetInfo");
    assert_blank_padded(&info.manufacturerID, "CK_INFO.manufacturerID");
    assert_blank_padded(&info.libraryDescription, "CK_INFO.libraryDescription");
    assert_eq!(info.flags, 0, "CK_INFO.flags must be 0");
    let (rv, slot) = raw::slot_info(t.slot.id());
    expect_rv(rv, CKR_OK, "C_GetSlotInfo");
    assert_blank_padded(&slot.slotDescription, "CK_SLOT_INFO.slotDescription");
    assert_blank_padded(&slot.manufacturerID, "CK_SLOT_INFO.manufacturerID");
    let (rv, token) = raw::token_info(t.slot.id());
    expect_rv(rv, CKR_OK, "C_GetTokenInfo");
    assert_eq!(&token.label[..], b"blank padded label              ");
    assert_blank_padded(&token.manufacturerID, "CK_TOKEN_INFO.manufacturerID");
    assert_blank_padded(&token.model, "CK_TOKEN_INFO.model");
    assert_blank_padded(&token.serialNumber, "CK_TOKEN_INFO.serialNumber");
    assert!(
        token.serialNumber.iter().any(|b| *b != b' '),
        "CK_TOKEN_INFO.serialNumber is blank"
    );
}

#[test]
fn tokens_have_distinct_serial_numbers() {
    let a = shared().token("serial_a");
    let b = shared().token("serial_b");
    assert_ne!(
        a.info().serial_number(),
        b.info().serial_number(),
        "two tokens share a serial number"
    );
}

#[test]
fn slot_and_mechanism_lists_follow_the_length_conventions() {
    let t = shared().token("list_conventions");
    let f = raw().functions();
    let mut count: CK_ULONG = 0;
    // SAFETY: NULL list + live count is the documented length query.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_FALSE, null_mut(), &mut count) };
    expect_rv(rv, CKR_OK, "C_GetSlotList(NULL)");
    assert_eq!(count as usize, shared().slots().len());
    let mut one: [CK_SLOT_ID; 1] = [0];
    let mut small: CK_ULONG = 1;
    // SAFETY: the buffer holds `small` (1) entries.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_FALSE, one.as_mut_ptr(), &mut small) };
    expect_rv(rv, CKR_BUFFER_TOO_SMALL, "C_GetSlotList into 1 entry");
    assert_eq!(small, count, "needed slot count");

    let mut n: CK_ULONG = 0;
    // SAFETY: as above.
    let rv = unsafe { f.C_GetMechanismList.unwrap()(t.slot.id(), null_mut(), &mut n) };
    expect_rv(rv, CKR_OK, "C_GetMechanismList(NULL)");
    assert!(n > 1);
    let mut two: [CK_MECHANISM_TYPE; 2] = [0; 2];
    let mut small: CK_ULONG = 2;
    // SAFETY: the buffer holds `small` (2) entries.
    let rv = unsafe { f.C_GetMechanismList.unwrap()(t.slot.id(), two.as_mut_ptr(), &mut small) };
    expect_rv(
        rv,
        CKR_BUFFER_TOO_SMALL,
        "C_GetMechanismList into 2 entries",
    );
    assert_eq!(small, n, "needed mechanism count");
    let mut all = vec![0 as CK_MECHANISM_TYPE; n as usize];
    let mut got = n;
    // SAFETY: the buffer holds `n` entries.
    let rv = unsafe { f.C_GetMechanismList.unwrap()(t.slot.id(), all.as_mut_ptr(), &mut got) };
    expect_rv(rv, CKR_OK, "C_GetMechanismList");
    assert_eq!(got, n);
}

#[test]
fn null_pointers_to_info_functions_return_arguments_bad() {
    in_fresh_process(
        "null_pointers_to_info_functions_return_arguments_bad",
        || {
            let t = shared().token("null_info");
            let f = raw().functions();
            let slot = t.slot.id();
            let mut c = Checks::default();
            // SAFETY (every call below): NULL is passed only where the module must check for
            // it; every other pointer is live for the call.
            unsafe {
                c.expect(
                    "C_GetInfo(NULL)",
                    f.C_GetInfo.unwrap()(null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GetSlotList(pulCount NULL)",
                    f.C_GetSlotList.unwrap()(CK_FALSE, null_mut(), null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GetSlotInfo(pInfo NULL)",
                    f.C_GetSlotInfo.unwrap()(slot, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GetTokenInfo(pInfo NULL)",
                    f.C_GetTokenInfo.unwrap()(slot, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GetMechanismList(pulCount NULL)",
                    f.C_GetMechanismList.unwrap()(slot, null_mut(), null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GetMechanismInfo(pInfo NULL)",
                    f.C_GetMechanismInfo.unwrap()(slot, CKM_SHA256, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                let mut flag_slot: CK_SLOT_ID = 0;
                let rv = f.C_WaitForSlotEvent.unwrap()(CKF_DONT_BLOCK, &mut flag_slot, null_mut());
                if rv != CKR_FUNCTION_NOT_SUPPORTED && rv != CKR_NO_EVENT {
                    c.expect("C_WaitForSlotEvent(DONT_BLOCK)", rv, CKR_NO_EVENT);
                }
            }
            c.assert_empty();
        },
    );
}

#[test]
fn null_pointers_to_session_and_pin_functions_return_arguments_bad() {
    in_fresh_process(
        "null_pointers_to_session_and_pin_functions_return_arguments_bad",
        || {
            let t = shared().token("null_session");
            let untouched = shared().token("null_session_init_token");
            let f = raw().functions();
            let slot = t.slot.id();
            let mut c = Checks::default();
            let mut user_pin = USER_PIN.as_bytes().to_vec();
            let mut so_pin = SO_PIN.as_bytes().to_vec();
            let mut label = [b' '; 32];
            // SAFETY (every call below): NULL is passed only where the module must check
            // for it; every other pointer is live for the call.
            unsafe {
                c.expect(
                    "C_InitToken(pPin NULL, ulPinLen 4)",
                    f.C_InitToken.unwrap()(untouched.slot.id(), null_mut(), 4, label.as_mut_ptr()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_InitToken(pLabel NULL)",
                    f.C_InitToken.unwrap()(
                        untouched.slot.id(),
                        so_pin.as_mut_ptr(),
                        so_pin.len() as CK_ULONG,
                        null_mut(),
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_OpenSession(phSession NULL)",
                    f.C_OpenSession.unwrap()(
                        slot,
                        CKF_SERIAL_SESSION,
                        null_mut(),
                        None,
                        null_mut(),
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                let (rv, h) = raw::open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION);
                c.expect("C_OpenSession", rv, CKR_OK);
                c.expect(
                    "C_GetSessionInfo(pInfo NULL)",
                    f.C_GetSessionInfo.unwrap()(h, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_Login(pPin NULL, ulPinLen 4)",
                    f.C_Login.unwrap()(h, CKU_USER, null_mut(), 4),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_SetPIN(pOldPin NULL)",
                    f.C_SetPIN.unwrap()(
                        h,
                        null_mut(),
                        4,
                        user_pin.as_mut_ptr(),
                        user_pin.len() as CK_ULONG,
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_SetPIN(pNewPin NULL)",
                    f.C_SetPIN.unwrap()(
                        h,
                        user_pin.as_mut_ptr(),
                        user_pin.len() as CK_ULONG,
                        null_mut(),
                        4,
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_Login(SO)",
                    f.C_Login.unwrap()(h, CKU_SO, so_pin.as_mut_ptr(), so_pin.len() as CK_ULONG),
                    CKR_OK,
                );
                c.expect(
                    "C_InitPIN(pPin NULL, ulPinLen 4)",
                    f.C_InitPIN.unwrap()(h, null_mut(), 4),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect("C_CloseSession", raw::close_session(h), CKR_OK);
            }
            c.assert_empty();
            // The user PIN survived every rejected call.
            let s = t.rw_session();
            ok(
                s.login(cryptoki::session::UserType::User, Some(&pin(USER_PIN))),
                "C_Login with the unchanged user PIN",
            );
        },
    );
}

#[test]
fn null_pointers_to_object_functions_return_arguments_bad() {
    in_fresh_process(
        "null_pointers_to_object_functions_return_arguments_bad",
        || {
            let t = shared().token("null_objects");
            let s = t.login_user();
            let h = s.handle();
            let f = raw().functions();
            let obj = ok(
                s.create_object(&hsmux_tests::keys::data_template("n", b"v", false)),
                "C_CreateObject",
            )
            .handle();
            let mut class = CKO_DATA.to_ne_bytes();
            let mut template = [CK_ATTRIBUTE {
                type_: CKA_CLASS,
                pValue: class.as_mut_ptr() as *mut c_void,
                ulValueLen: class.len() as CK_ULONG,
            }];
            let mut out: CK_OBJECT_HANDLE = 0;
            let mut c = Checks::default();
            // SAFETY (every call below): NULL is passed only where the module must check for
            // it; every other pointer is live for the call.
            unsafe {
                c.expect(
                    "C_CreateObject(pTemplate NULL, ulCount 2)",
                    f.C_CreateObject.unwrap()(h, null_mut(), 2, &mut out),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_CreateObject(phObject NULL)",
                    f.C_CreateObject.unwrap()(h, template.as_mut_ptr(), 1, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_CopyObject(pTemplate NULL, ulCount 1)",
                    f.C_CopyObject.unwrap()(h, obj, null_mut(), 1, &mut out),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_CopyObject(phNewObject NULL)",
                    f.C_CopyObject.unwrap()(h, obj, null_mut(), 0, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GetAttributeValue(pTemplate NULL, ulCount 1)",
                    f.C_GetAttributeValue.unwrap()(h, obj, null_mut(), 1),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_SetAttributeValue(pTemplate NULL, ulCount 1)",
                    f.C_SetAttributeValue.unwrap()(h, obj, null_mut(), 1),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GetObjectSize(pulSize NULL)",
                    f.C_GetObjectSize.unwrap()(h, obj, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_FindObjectsInit(pTemplate NULL, ulCount 1)",
                    f.C_FindObjectsInit.unwrap()(h, null_mut(), 1),
                    CKR_ARGUMENTS_BAD,
                );
                let rv = f.C_FindObjectsInit.unwrap()(h, template.as_mut_ptr(), 1);
                c.expect("C_FindObjectsInit", rv, CKR_OK);
                let mut found: CK_ULONG = 0;
                c.expect(
                    "C_FindObjects(phObject NULL)",
                    f.C_FindObjects.unwrap()(h, null_mut(), 4, &mut found),
                    CKR_ARGUMENTS_BAD,
                );
                let mut handles = [0 as CK_OBJECT_HANDLE; 4];
                c.expect(
                    "C_FindObjects(pulObjectCount NULL)",
                    f.C_FindObjects.unwrap()(h, handles.as_mut_ptr(), 4, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                f.C_FindObjectsFinal.unwrap()(h);
                // A template entry with pValue NULL but a length is malformed input.
                let mut bad = [CK_ATTRIBUTE {
                    type_: CKA_LABEL,
                    pValue: null_mut(),
                    ulValueLen: 8,
                }];
                let rv = f.C_CreateObject.unwrap()(h, bad.as_mut_ptr(), 1, &mut out);
                if rv != CKR_ARGUMENTS_BAD
                    && rv != CKR_ATTRIBUTE_VALUE_INVALID
                    && rv != CKR_TEMPLATE_INCOMPLETE
                {
                    c.expect(
                        "C_CreateObject(CKA_LABEL pValue NULL, len 8)",
                        rv,
                        CKR_ARGUMENTS_BAD,
                    );
                }
                let mut aes_gen = CK_MECHANISM {
                    mechanism: CKM_AES_KEY_GEN,
                    pParameter: null_mut(),
                    ulParameterLen: 0,
                };
                let mut len = (16 as CK_ULONG).to_ne_bytes();
                let mut key_template = [CK_ATTRIBUTE {
                    type_: CKA_VALUE_LEN,
                    pValue: len.as_mut_ptr() as *mut c_void,
                    ulValueLen: len.len() as CK_ULONG,
                }];
                c.expect(
                    "C_GenerateKey(pMechanism NULL)",
                    f.C_GenerateKey.unwrap()(h, null_mut(), key_template.as_mut_ptr(), 1, &mut out),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GenerateKey(phKey NULL)",
                    f.C_GenerateKey.unwrap()(
                        h,
                        &mut aes_gen,
                        key_template.as_mut_ptr(),
                        1,
                        null_mut(),
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                let mut ec_gen = CK_MECHANISM {
                    mechanism: CKM_EC_KEY_PAIR_GEN,
                    pParameter: null_mut(),
                    ulParameterLen: 0,
                };
                let mut params = hsmux_tests::verify::Curve::P256.params();
                let mut pub_template = [CK_ATTRIBUTE {
                    type_: CKA_EC_PARAMS,
                    pValue: params.as_mut_ptr() as *mut c_void,
                    ulValueLen: params.len() as CK_ULONG,
                }];
                let mut other: CK_OBJECT_HANDLE = 0;
                c.expect(
                    "C_GenerateKeyPair(phPublicKey NULL)",
                    f.C_GenerateKeyPair.unwrap()(
                        h,
                        &mut ec_gen,
                        pub_template.as_mut_ptr(),
                        1,
                        null_mut(),
                        0,
                        null_mut(),
                        &mut other,
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GenerateKeyPair(phPrivateKey NULL)",
                    f.C_GenerateKeyPair.unwrap()(
                        h,
                        &mut ec_gen,
                        pub_template.as_mut_ptr(),
                        1,
                        null_mut(),
                        0,
                        &mut out,
                        null_mut(),
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_GenerateRandom(pRandomData NULL, 16)",
                    f.C_GenerateRandom.unwrap()(h, null_mut(), 16),
                    CKR_ARGUMENTS_BAD,
                );
            }
            c.assert_empty();
        },
    );
}

#[test]
fn null_pointers_to_crypto_functions_return_arguments_bad() {
    in_fresh_process(
        "null_pointers_to_crypto_functions_return_arguments_bad",
        || {
            let t = shared().token("null_crypto");
            let s = t.login_user();
            let h = s.handle();
            let f = raw().functions();
            let key = hsmux_tests::keys::create_aes(&s, &[1u8; 16], &[]).handle();
            let hmac = hsmux_tests::keys::create_generic_secret(&s, &[2u8; 32], &[]).handle();
            let hmac_mech = raw::mech(&cryptoki::mechanism::Mechanism::Sha256Hmac);
            let cbc = raw::mech(&cryptoki::mechanism::Mechanism::AesCbcPad([0u8; 16]));
            let sha = raw::mech(&cryptoki::mechanism::Mechanism::Sha256);
            let data = *b"some data";
            let mut buf = [0u8; 128];
            let mut len: CK_ULONG = buf.len() as CK_ULONG;
            let mut c = Checks::default();
            // SAFETY (every call below): NULL is passed only where the module must check for
            // it; every other pointer is live for the call.
            unsafe {
                c.expect(
                    "C_SignInit(pMechanism NULL)",
                    f.C_SignInit.unwrap()(h, null_mut(), hmac),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_VerifyInit(pMechanism NULL)",
                    f.C_VerifyInit.unwrap()(h, null_mut(), hmac),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_EncryptInit(pMechanism NULL)",
                    f.C_EncryptInit.unwrap()(h, null_mut(), key),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_DecryptInit(pMechanism NULL)",
                    f.C_DecryptInit.unwrap()(h, null_mut(), key),
                    CKR_ARGUMENTS_BAD,
                );
                c.expect(
                    "C_DigestInit(pMechanism NULL)",
                    f.C_DigestInit.unwrap()(h, null_mut()),
                    CKR_ARGUMENTS_BAD,
                );

                c.expect(
                    "C_SignInit",
                    raw::init(Op::Sign, h, &hmac_mech, hmac),
                    CKR_OK,
                );
                c.expect(
                    "C_Sign(pData NULL, ulDataLen 9)",
                    f.C_Sign.unwrap()(h, null_mut(), 9, buf.as_mut_ptr(), &mut len),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Sign, h, &hmac_mech, hmac);
                c.expect(
                    "C_Sign(pulSignatureLen NULL)",
                    f.C_Sign.unwrap()(h, data.as_ptr() as *mut u8, 9, buf.as_mut_ptr(), null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Sign, h, &hmac_mech, hmac);
                c.expect(
                    "C_SignUpdate(pPart NULL, ulPartLen 9)",
                    f.C_SignUpdate.unwrap()(h, null_mut(), 9),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Sign, h, &hmac_mech, hmac);
                c.expect(
                    "C_SignFinal(pulSignatureLen NULL)",
                    f.C_SignFinal.unwrap()(h, buf.as_mut_ptr(), null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                // Whatever the module did with the failed calls, leave no sign operation open.
                let _ = raw::sign_final(h, Out::Buf(64));

                c.expect(
                    "C_VerifyInit",
                    raw::init(Op::Verify, h, &hmac_mech, hmac),
                    CKR_OK,
                );
                c.expect(
                    "C_Verify(pSignature NULL, ulSignatureLen 32)",
                    f.C_Verify.unwrap()(h, data.as_ptr() as *mut u8, 9, null_mut(), 32),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Verify, h, &hmac_mech, hmac);
                c.expect(
                    "C_VerifyFinal(pSignature NULL, ulSignatureLen 32)",
                    f.C_VerifyFinal.unwrap()(h, null_mut(), 32),
                    CKR_ARGUMENTS_BAD,
                );
                let _ = raw::verify_final(h, &[0u8; 32]);

                c.expect(
                    "C_EncryptInit",
                    raw::init(Op::Encrypt, h, &cbc, key),
                    CKR_OK,
                );
                c.expect(
                    "C_Encrypt(pulEncryptedDataLen NULL)",
                    f.C_Encrypt.unwrap()(
                        h,
                        data.as_ptr() as *mut u8,
                        9,
                        buf.as_mut_ptr(),
                        null_mut(),
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Encrypt, h, &cbc, key);
                c.expect(
                    "C_Encrypt(pData NULL, ulDataLen 9)",
                    f.C_Encrypt.unwrap()(h, null_mut(), 9, buf.as_mut_ptr(), &mut len),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Encrypt, h, &cbc, key);
                c.expect(
                    "C_EncryptUpdate(pulEncryptedPartLen NULL)",
                    f.C_EncryptUpdate.unwrap()(
                        h,
                        data.as_ptr() as *mut u8,
                        9,
                        buf.as_mut_ptr(),
                        null_mut(),
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Encrypt, h, &cbc, key);
                c.expect(
                    "C_EncryptFinal(pulLastEncryptedPartLen NULL)",
                    f.C_EncryptFinal.unwrap()(h, buf.as_mut_ptr(), null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                let _ = raw::encrypt_final(h, Out::Buf(64));

                c.expect(
                    "C_DecryptInit",
                    raw::init(Op::Decrypt, h, &cbc, key),
                    CKR_OK,
                );
                c.expect(
                    "C_Decrypt(pulDataLen NULL)",
                    f.C_Decrypt.unwrap()(
                        h,
                        buf.as_mut_ptr(),
                        16,
                        buf.as_mut_ptr().add(64),
                        null_mut(),
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Decrypt, h, &cbc, key);
                c.expect(
                    "C_DecryptFinal(pulLastPartLen NULL)",
                    f.C_DecryptFinal.unwrap()(h, buf.as_mut_ptr(), null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                let _ = raw::decrypt_final(h, Out::Buf(64));

                c.expect("C_DigestInit", raw::init(Op::Digest, h, &sha, 0), CKR_OK);
                c.expect(
                    "C_Digest(pulDigestLen NULL)",
                    f.C_Digest.unwrap()(
                        h,
                        data.as_ptr() as *mut u8,
                        9,
                        buf.as_mut_ptr(),
                        null_mut(),
                    ),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Digest, h, &sha, 0);
                c.expect(
                    "C_DigestUpdate(pPart NULL, ulPartLen 9)",
                    f.C_DigestUpdate.unwrap()(h, null_mut(), 9),
                    CKR_ARGUMENTS_BAD,
                );
                raw::init(Op::Digest, h, &sha, 0);
                c.expect(
                    "C_DigestFinal(pulDigestLen NULL)",
                    f.C_DigestFinal.unwrap()(h, buf.as_mut_ptr(), null_mut()),
                    CKR_ARGUMENTS_BAD,
                );
                let _ = raw::digest_final(h, Out::Buf(64));
            }
            c.assert_empty();
            // The session still works after all of that.
            let mac = ok(
                s.sign(
                    &cryptoki::mechanism::Mechanism::Sha256Hmac,
                    unsafe_handle(hmac),
                    b"x",
                ),
                "C_Sign after the NULL-pointer calls",
            );
            assert_eq!(mac.len(), 32);
        },
    );
}

fn unsafe_handle(handle: CK_OBJECT_HANDLE) -> cryptoki::object::ObjectHandle {
    // SAFETY: the handle was issued by the module in this session.
    unsafe { cryptoki::object::ObjectHandle::new_from_raw(handle) }
}

#[test]
fn unsupported_functions_answer_with_their_documented_codes() {
    let t = shared().token("unsupported_functions");
    let s = t.login_user();
    let h = s.handle();
    let f = raw().functions();
    let mut c = Checks::default();
    let mut len: CK_ULONG = 0;
    let mut seed = [1u8; 8];
    // SAFETY: every pointer is live for the call.
    unsafe {
        let rv = f.C_GetOperationState.unwrap()(h, null_mut(), &mut len);
        if rv != CKR_STATE_UNSAVEABLE {
            c.expect("C_GetOperationState", rv, CKR_FUNCTION_NOT_SUPPORTED);
        }
        let rv = f.C_SeedRandom.unwrap()(h, seed.as_mut_ptr(), 8);
        if rv != CKR_OK {
            c.expect("C_SeedRandom", rv, CKR_RANDOM_SEED_NOT_SUPPORTED);
        }
        c.expect(
            "C_GetFunctionStatus",
            f.C_GetFunctionStatus.unwrap()(h),
            CKR_FUNCTION_NOT_PARALLEL,
        );
        c.expect(
            "C_CancelFunction",
            f.C_CancelFunction.unwrap()(h),
            CKR_FUNCTION_NOT_PARALLEL,
        );
    }
    c.assert_empty();
    ok(s.generate_random_vec(8), "the session still works");
}
