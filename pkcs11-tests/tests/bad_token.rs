//! One bad `[[token]]` never takes the others down, and comes back on its own: a pkcs11
//! token whose vendor library is missing at `C_Initialize` shows as a slot without a
//! token (`CKF_TOKEN_PRESENT` cleared, `CKR_TOKEN_NOT_PRESENT` on use) next to a working
//! local token; once the library appears, the same process serves it, without
//! `C_Finalize`.
//!
//! The module reads `HSMUX_CONFIG` once per process, so this file holds one test.

use cryptoki_sys::*;
use hsmux_tests::raw;
use hsmux_tests::rv_name;

const SOFTHSM_LIB: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "later-pin-1234";

fn ok(rv: CK_RV, what: &str) {
    assert_eq!(rv, CKR_OK, "{what}: {}", rv_name(rv));
}

fn present(slot: CK_SLOT_ID) -> bool {
    let (rv, info) = raw::slot_info(slot);
    ok(rv, "C_GetSlotInfo");
    info.flags & CKF_TOKEN_PRESENT != 0
}

fn slot_list(token_present: bool) -> Vec<CK_SLOT_ID> {
    let flag = if token_present { CK_TRUE } else { CK_FALSE };
    let mut n: CK_ULONG = 0;
    let f = hsmux_tests::conformance::f();
    // SAFETY: a NULL list with a live count is the length query; then `ids` holds `n`.
    unsafe {
        ok(
            f.C_GetSlotList.unwrap()(flag, std::ptr::null_mut(), &mut n),
            "C_GetSlotList",
        );
        let mut ids = vec![0; n as usize];
        ok(
            f.C_GetSlotList.unwrap()(flag, ids.as_mut_ptr(), &mut n),
            "C_GetSlotList",
        );
        ids.truncate(n as usize);
        ids
    }
}

#[test]
fn a_token_whose_library_is_missing_leaves_the_others_working_and_comes_back() {
    assert!(
        std::path::Path::new(SOFTHSM_LIB).exists(),
        "{SOFTHSM_LIB} missing: apt-get install softhsm2"
    );
    let dir = tempfile::Builder::new()
        .prefix("hsmux-bad-token-")
        .tempdir()
        .unwrap();
    hsmux_tests::setup_softhsm(dir.path());
    hsmux_tests::softhsm_token("later", "later-so-0000", PIN);
    // The vendor library is installed only later, under this name.
    let library = dir.path().join("libvendor-pkcs11.so");
    let cfg = dir.path().join("hsmux.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[token]]\nlabel = \"hsm\"\nbackend = \"pkcs11\"\nlibrary = \"{}\"\n\
             token = \"later\"\npin = \"{PIN}\"\n\n\
             [[token]]\nlabel = \"local\"\nbackend = \"local\"\npath = \"{}\"\n\
             pin_kdf_iterations = 10\n",
            library.display(),
            dir.path().join("local").display()
        ),
    )
    .unwrap();
    std::env::set_var("HSMUX_CONFIG", &cfg);
    let mut args = raw::init_args(CKF_OS_LOCKING_OK);
    ok(
        raw::initialize(Some(&mut args)),
        "C_Initialize with one broken token",
    );

    assert_eq!(slot_list(false), vec![0, 1], "every configured slot lists");
    assert_eq!(
        slot_list(true),
        vec![1],
        "only the working token is present"
    );
    assert!(!present(0) && present(1));
    let (rv, _) = raw::token_info(0);
    assert_eq!(rv, CKR_TOKEN_NOT_PRESENT, "C_GetTokenInfo: {}", rv_name(rv));
    let (rv, _) = raw::open_session(0, CKF_SERIAL_SESSION | CKF_RW_SESSION);
    assert_eq!(rv, CKR_TOKEN_NOT_PRESENT, "C_OpenSession: {}", rv_name(rv));
    let (rv, _) = raw::mechanism_list(0);
    assert_eq!(
        rv,
        CKR_TOKEN_NOT_PRESENT,
        "C_GetMechanismList: {}",
        rv_name(rv)
    );
    // The local token is untouched by its neighbour.
    ok(
        raw::init_token(1, "local-so-0000", "local"),
        "C_InitToken (local)",
    );
    let (rv, s) = raw::open_session(1, CKF_SERIAL_SESSION | CKF_RW_SESSION);
    ok(rv, "C_OpenSession (local)");
    ok(raw::close_session(s), "C_CloseSession (local)");

    let (rv, _) = hsmux_tests::conformance::wait_for_slot_event(CKF_DONT_BLOCK);
    assert_eq!(rv, CKR_NO_EVENT, "no token has come yet: {}", rv_name(rv));

    // The library is installed: within the retry delay the same process serves it, and
    // says so as a slot event.
    std::os::unix::fs::symlink(SOFTHSM_LIB, &library).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (rv, slot) = hsmux_tests::conformance::wait_for_slot_event(CKF_DONT_BLOCK);
        if rv == CKR_OK {
            assert_eq!(slot, 0, "the event names the slot whose token came");
            break;
        }
        assert_eq!(rv, CKR_NO_EVENT, "C_WaitForSlotEvent: {}", rv_name(rv));
        assert!(
            std::time::Instant::now() < deadline,
            "the token did not come back within 10 s of its library appearing"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(present(0));
    let (rv, _) = hsmux_tests::conformance::wait_for_slot_event(CKF_DONT_BLOCK);
    assert_eq!(
        rv,
        CKR_NO_EVENT,
        "the event is reported once: {}",
        rv_name(rv)
    );
    assert_eq!(slot_list(true), vec![0, 1]);
    let (rv, info) = raw::token_info(0);
    ok(rv, "C_GetTokenInfo after the library appeared");
    assert_eq!(&info.model[..6], b"pkcs11");
    let (rv, s) = raw::open_session(0, CKF_SERIAL_SESSION | CKF_RW_SESSION);
    ok(rv, "C_OpenSession on the recovered token");
    ok(
        raw::login(s, CKU_USER, PIN.as_bytes()),
        "C_Login on the recovered token",
    );
    ok(raw::close_session(s), "C_CloseSession");
    ok(raw::finalize(), "C_Finalize");
}
