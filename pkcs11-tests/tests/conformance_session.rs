//! Conformance: sessions and the login state machine, as pkcs11test (session.cc, login.cc,
//! slot.cc) and the Rust `cryptoki` suite (get_session_info_test, login_feast) check them.

use cryptoki::session::{SessionState, UserType};
use cryptoki_sys::*;
use hsmux_tests::conformance::*;
use hsmux_tests::raw;
use hsmux_tests::*;

fn state(h: CK_SESSION_HANDLE) -> CK_STATE {
    let (rv, info) = raw::session_info(h);
    expect_rv(rv, CKR_OK, "C_GetSessionInfo");
    info.state
}

/// pkcs11test PKCS11Test.ParallelSessions: two R/O and one R/W session report exact flags
/// and states; a login or logout through any of them moves all three; closing one leaves
/// the others; C_CloseAllSessions on an unknown slot changes nothing, on the token's slot
/// ends every session, and may be repeated.
#[test]
fn three_sessions_share_login_state_and_close_independently() {
    let t = shared().token("parallel sessions");
    let slot = t.slot.id();
    let ro = CKF_SERIAL_SESSION;
    let rw = CKF_SERIAL_SESSION | CKF_RW_SESSION;
    let open = |flags| {
        let (rv, h) = raw::open_session(slot, flags);
        expect_rv(rv, CKR_OK, "C_OpenSession");
        h
    };
    let (s1, s2, s3) = (open(ro), open(ro), open(rw));
    for (h, flags, st) in [
        (s1, ro, CKS_RO_PUBLIC_SESSION),
        (s2, ro, CKS_RO_PUBLIC_SESSION),
        (s3, rw, CKS_RW_PUBLIC_SESSION),
    ] {
        let (rv, info) = raw::session_info(h);
        expect_rv(rv, CKR_OK, "C_GetSessionInfo");
        assert_eq!(
            info.flags, flags,
            "CK_SESSION_INFO.flags must be exactly {flags:#x}"
        );
        assert_eq!(info.slotID, slot);
        assert_eq!(info.state, st);
    }
    expect_rv(
        raw::login(s1, CKU_USER, USER_PIN.as_bytes()),
        CKR_OK,
        "C_Login through the first R/O session",
    );
    assert_eq!(state(s1), CKS_RO_USER_FUNCTIONS);
    assert_eq!(state(s2), CKS_RO_USER_FUNCTIONS);
    assert_eq!(state(s3), CKS_RW_USER_FUNCTIONS);
    expect_rv(raw::logout(s3), CKR_OK, "C_Logout through the R/W session");
    assert_eq!(state(s1), CKS_RO_PUBLIC_SESSION);
    assert_eq!(state(s2), CKS_RO_PUBLIC_SESSION);
    assert_eq!(state(s3), CKS_RW_PUBLIC_SESSION);

    expect_rv(raw::close_session(s2), CKR_OK, "C_CloseSession(s2)");
    expect_rv(raw::session_info(s1).0, CKR_OK, "s1 survives closing s2");
    expect_rv(
        raw::session_info(s2).0,
        CKR_SESSION_HANDLE_INVALID,
        "s2 after C_CloseSession",
    );
    expect_rv(raw::session_info(s3).0, CKR_OK, "s3 survives closing s2");

    expect_rv(
        raw::close_all_sessions(BOGUS_SLOT),
        CKR_SLOT_ID_INVALID,
        "C_CloseAllSessions(unknown slot)",
    );
    expect_rv(
        raw::session_info(s1).0,
        CKR_OK,
        "s1 after a rejected C_CloseAllSessions",
    );
    expect_rv(
        raw::session_info(s3).0,
        CKR_OK,
        "s3 after a rejected C_CloseAllSessions",
    );

    expect_rv(raw::close_all_sessions(slot), CKR_OK, "C_CloseAllSessions");
    for h in [s1, s2, s3] {
        expect_rv(
            raw::session_info(h).0,
            CKR_SESSION_HANDLE_INVALID,
            "C_GetSessionInfo after C_CloseAllSessions",
        );
        expect_rv(
            raw::close_session(h),
            CKR_SESSION_HANDLE_INVALID,
            "C_CloseSession after C_CloseAllSessions",
        );
    }
    expect_rv(
        raw::close_all_sessions(slot),
        CKR_OK,
        "C_CloseAllSessions again",
    );
}

/// pkcs11test ReadOnlySessionTest.UserLoginInvalid, ROUserSessionTest.LogoutInvalid and
/// RWUserSessionTest.LogoutInvalid: an unknown session handle is reported before anything
/// else, and a failed logout leaves the real session logged in.
#[test]
fn login_and_logout_through_an_unknown_session_return_session_handle_invalid() {
    let t = shared().token("login unknown session");
    let s = t.login_user();
    expect_rv(
        raw::login(BOGUS_SESSION, CKU_USER, USER_PIN.as_bytes()),
        CKR_SESSION_HANDLE_INVALID,
        "C_Login(unknown session)",
    );
    expect_rv(
        raw::logout(BOGUS_SESSION),
        CKR_SESSION_HANDLE_INVALID,
        "C_Logout(unknown session)",
    );
    assert_eq!(
        state(s.handle()),
        CKS_RW_USER_FUNCTIONS,
        "login must survive"
    );
}

/// rust-cryptoki get_session_info_test: R/O session public → user → public again, then an SO
/// login through that R/O session is refused with CKR_SESSION_READ_ONLY_EXISTS; a new R/W
/// session then goes public → user → public → SO.
#[test]
fn session_states_follow_user_and_so_logins_in_ro_and_rw_sessions() {
    let t = shared().token("session state walk");
    {
        let s = t.ro_session();
        let info = ok(s.get_session_info(), "C_GetSessionInfo");
        assert!(!info.read_write());
        assert_eq!(info.slot_id(), t.slot);
        assert!(matches!(info.session_state(), SessionState::RoPublic));
        ok(
            s.login(UserType::User, Some(&pin(USER_PIN))),
            "C_Login(USER)",
        );
        assert!(matches!(
            ok(s.get_session_info(), "C_GetSessionInfo").session_state(),
            SessionState::RoUser
        ));
        ok(s.logout(), "C_Logout");
        expect_rv(
            s.login(UserType::So, Some(&pin(SO_PIN))),
            CKR_SESSION_READ_ONLY_EXISTS,
            "C_Login(SO) through a R/O session",
        );
        assert!(matches!(
            ok(s.get_session_info(), "C_GetSessionInfo").session_state(),
            SessionState::RoPublic
        ));
    }
    let s = t.rw_session();
    assert!(matches!(
        ok(s.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwPublic
    ));
    ok(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        "C_Login(USER)",
    );
    assert!(matches!(
        ok(s.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwUser
    ));
    ok(s.logout(), "C_Logout");
    ok(s.login(UserType::So, Some(&pin(SO_PIN))), "C_Login(SO)");
    assert!(matches!(
        ok(s.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwSecurityOfficer
    ));
}

/// rust-cryptoki login_feast: many threads log in and out of one token at once; every
/// answer is success, CKR_USER_ALREADY_LOGGED_IN or CKR_USER_NOT_LOGGED_IN — never
/// anything else.
#[test]
fn concurrent_logins_and_logouts_only_report_already_or_not_logged_in() {
    let t = shared().token("login feast");
    let threads: Vec<_> = (0..24)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || {
                let s = t.rw_session();
                for _ in 0..3 {
                    expect_rv_in(
                        s.login(UserType::User, Some(&pin(USER_PIN))),
                        &[CKR_OK, CKR_USER_ALREADY_LOGGED_IN],
                        "C_Login from a racing thread",
                    );
                }
                for _ in 0..3 {
                    expect_rv_in(
                        s.logout(),
                        &[CKR_OK, CKR_USER_NOT_LOGGED_IN],
                        "C_Logout from a racing thread",
                    );
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("a login thread panicked");
    }
}

/// PKCS#11 2.40 §5.6 (C_Login): CKU_CONTEXT_SPECIFIC used outside an operation that asks
/// for it returns CKR_OPERATION_NOT_INITIALIZED.
#[test]
fn context_specific_login_without_an_operation_returns_operation_not_initialized() {
    let t = shared().token("context login without op");
    let s = t.login_user();
    expect_rv(
        raw::login(s.handle(), CKU_CONTEXT_SPECIFIC, USER_PIN.as_bytes()),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Login(CKU_CONTEXT_SPECIFIC) with no operation active",
    );
    assert_eq!(state(s.handle()), CKS_RW_USER_FUNCTIONS);
}

/// pkcs11test PKCS11Test.TokenInitInvalidSlot.
#[test]
fn init_token_on_an_unknown_slot_returns_slot_id_invalid() {
    let _h = shared();
    expect_rv(
        raw::init_token(BOGUS_SLOT, SO_PIN, "nowhere"),
        CKR_SLOT_ID_INVALID,
        "C_InitToken(unknown slot)",
    );
}

/// pkcs11test ReadOnlySessionTest.TokenInitWithSession (any session, even R/O and not
/// logged in, blocks re-initialisation) and rust-cryptoki's init_pins (C_InitToken on a
/// used token once its sessions are closed, then the SO sets a fresh user PIN).
#[test]
fn init_token_is_blocked_by_any_open_session_and_works_once_they_close() {
    let t = shared().token("reinit after close");
    {
        let user = t.login_user();
        let h = create(
            user.handle(),
            data_object("doomed", b"app", b"v").bool(CKA_TOKEN, true),
            "C_CreateObject(token data object)",
        );
        assert_ne!(h, CK_INVALID_HANDLE);
    }
    {
        let _ro = t.ro_session();
        expect_rv(
            raw::init_token(t.slot.id(), SO_PIN, "again"),
            CKR_SESSION_EXISTS,
            "C_InitToken with a R/O public session open",
        );
    }
    expect_rv(
        raw::init_token(t.slot.id(), SO_PIN, "again"),
        CKR_OK,
        "C_InitToken once every session is closed",
    );
    let so = t.login_so();
    expect_rv(init_pin(so.handle(), b"fedcba123456"), CKR_OK, "C_InitPIN");
    ok(so.logout(), "C_Logout(SO)");
    ok(
        so.login(UserType::User, Some(&pin("fedcba123456"))),
        "C_Login with the new user PIN",
    );
    let left = find_all(
        so.handle(),
        &mut Template::new().ulong(CKA_CLASS, CKO_DATA),
        10,
    );
    assert!(
        left.is_empty(),
        "C_InitToken left {} data objects",
        left.len()
    );
}
