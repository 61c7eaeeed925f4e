//! Session management: C_OpenSession, C_CloseSession, C_CloseAllSessions,
//! C_GetSessionInfo, C_Login, C_Logout and the PKCS#11 session state rules.

use cryptoki::session::{SessionState, UserType};
use cryptoki_sys::*;
use hsmux_tests::raw;
use hsmux_tests::*;

#[test]
fn open_session_without_serial_flag_returns_parallel_not_supported() {
    let t = shared().token("no_serial_flag");
    let (rv, _) = raw::open_session(t.slot.id(), 0);
    expect_rv(
        rv,
        CKR_SESSION_PARALLEL_NOT_SUPPORTED,
        "C_OpenSession(flags=0)",
    );
    let (rv, _) = raw::open_session(t.slot.id(), CKF_RW_SESSION);
    expect_rv(
        rv,
        CKR_SESSION_PARALLEL_NOT_SUPPORTED,
        "C_OpenSession(CKF_RW_SESSION only)",
    );
}

#[test]
fn session_info_reports_slot_public_state_and_rw_flag() {
    let t = shared().token("session_info_public");
    let ro = t.ro_session();
    let rw = t.rw_session();
    let info = ok(ro.get_session_info(), "C_GetSessionInfo(R/O)");
    assert_eq!(info.slot_id(), t.slot);
    assert_eq!(info.session_state(), SessionState::RoPublic);
    assert!(!info.read_write(), "R/O session reports CKF_RW_SESSION");
    let info = ok(rw.get_session_info(), "C_GetSessionInfo(R/W)");
    assert_eq!(info.session_state(), SessionState::RwPublic);
    assert!(info.read_write(), "R/W session lacks CKF_RW_SESSION");
    let (rv, raw_info) = raw::session_info(ro.handle());
    expect_rv(rv, CKR_OK, "raw C_GetSessionInfo");
    assert_ne!(
        raw_info.flags & CKF_SERIAL_SESSION,
        0,
        "CKF_SERIAL_SESSION must be set in session flags"
    );
}

#[test]
fn user_login_moves_every_session_of_the_token_to_user_states() {
    let t = shared().token("login_user_states");
    let ro = t.ro_session();
    let rw = t.rw_session();
    ok(
        rw.login(UserType::User, Some(&pin(USER_PIN))),
        "C_Login(USER)",
    );
    assert_eq!(
        ok(ro.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RoUser
    );
    assert_eq!(
        ok(rw.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwUser
    );
    // A session opened after login starts logged in too.
    let later = t.ro_session();
    assert_eq!(
        ok(later.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RoUser
    );
    ok(ro.logout(), "C_Logout through another session");
    assert_eq!(
        ok(rw.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwPublic
    );
    assert_eq!(
        ok(later.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RoPublic
    );
}

#[test]
fn so_login_gives_rw_so_functions_state() {
    let t = shared().token("so_login_state");
    let s = t.login_so();
    assert_eq!(
        ok(s.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwSecurityOfficer
    );
}

#[test]
fn logout_twice_returns_user_not_logged_in() {
    let t = shared().token("logout_twice");
    let s = t.login_user();
    ok(s.logout(), "first C_Logout");
    expect_rv(s.logout(), CKR_USER_NOT_LOGGED_IN, "second C_Logout");
}

#[test]
fn logout_without_login_returns_user_not_logged_in() {
    let t = shared().token("logout_no_login");
    let s = t.rw_session();
    expect_rv(s.logout(), CKR_USER_NOT_LOGGED_IN, "C_Logout while public");
}

#[test]
fn login_with_wrong_pin_returns_pin_incorrect_and_stays_public() {
    let t = shared().token("login_wrong_pin");
    let s = t.rw_session();
    expect_rv(
        s.login(UserType::User, Some(&pin("definitely-wrong"))),
        CKR_PIN_INCORRECT,
        "C_Login(USER, wrong PIN)",
    );
    assert_eq!(
        ok(s.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwPublic
    );
}

#[test]
fn login_user_twice_returns_user_already_logged_in() {
    let t = shared().token("login_twice");
    let s = t.login_user();
    expect_rv(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        CKR_USER_ALREADY_LOGGED_IN,
        "second C_Login(USER)",
    );
}

#[test]
fn so_login_with_read_only_session_open_returns_session_read_only_exists() {
    let t = shared().token("so_login_ro_exists");
    let _ro = t.ro_session();
    let rw = t.rw_session();
    expect_rv(
        rw.login(UserType::So, Some(&pin(SO_PIN))),
        CKR_SESSION_READ_ONLY_EXISTS,
        "C_Login(SO) with a R/O session open",
    );
}

#[test]
fn user_login_while_so_logged_in_returns_user_another_already_logged_in() {
    let t = shared().token("user_while_so");
    let s = t.login_so();
    expect_rv(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        "C_Login(USER) while SO is logged in",
    );
}

#[test]
fn so_login_while_user_logged_in_returns_user_another_already_logged_in() {
    let t = shared().token("so_while_user");
    let s = t.login_user();
    expect_rv(
        s.login(UserType::So, Some(&pin(SO_PIN))),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        "C_Login(SO) while the user is logged in",
    );
}

#[test]
fn opening_read_only_session_while_so_logged_in_returns_session_read_write_so_exists() {
    let t = shared().token("ro_open_while_so");
    let _so = t.login_so();
    expect_rv(
        t.pkcs11.open_ro_session(t.slot),
        CKR_SESSION_READ_WRITE_SO_EXISTS,
        "C_OpenSession(R/O) while SO is logged in",
    );
}

#[test]
fn user_login_before_user_pin_is_set_returns_user_pin_not_initialized() {
    let t = shared().token_without_user_pin("login_no_user_pin");
    let s = t.rw_session();
    expect_rv(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        CKR_USER_PIN_NOT_INITIALIZED,
        "C_Login(USER) before C_InitPIN",
    );
}

#[test]
fn login_with_invalid_user_type_returns_user_type_invalid() {
    let t = shared().token("login_bad_user_type");
    let s = t.rw_session();
    expect_rv(
        raw::login(s.handle(), 77, USER_PIN.as_bytes()),
        CKR_USER_TYPE_INVALID,
        "C_Login(userType=77)",
    );
}

#[test]
fn closed_or_unknown_session_handle_returns_session_handle_invalid() {
    let t = shared().token("session_handle_invalid");
    let (rv, handle) = raw::open_session(t.slot.id(), CKF_SERIAL_SESSION);
    expect_rv(rv, CKR_OK, "C_OpenSession");
    expect_rv(raw::close_session(handle), CKR_OK, "C_CloseSession");
    expect_rv(
        raw::session_info(handle).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_GetSessionInfo on a closed session",
    );
    expect_rv(
        raw::close_session(handle),
        CKR_SESSION_HANDLE_INVALID,
        "C_CloseSession twice",
    );
    expect_rv(
        raw::session_info(0xdead_beef).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_GetSessionInfo on a never-issued handle",
    );
    expect_rv(
        raw::login(0xdead_beef, CKU_USER, USER_PIN.as_bytes()),
        CKR_SESSION_HANDLE_INVALID,
        "C_Login on a never-issued handle",
    );
    expect_rv(
        raw::generate_random(0xdead_beef, 8).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_GenerateRandom on a never-issued handle",
    );
}

#[test]
fn close_all_sessions_invalidates_every_session_of_the_slot_and_logs_out() {
    let t = shared().token("close_all_sessions");
    let a = t.login_user();
    let b = t.ro_session();
    let other = shared().token("close_all_other_slot");
    let keep = other.rw_session();
    expect_rv(
        raw::close_all_sessions(t.slot.id()),
        CKR_OK,
        "C_CloseAllSessions",
    );
    expect_rv(
        raw::session_info(a.handle()).0,
        CKR_SESSION_HANDLE_INVALID,
        "first session after C_CloseAllSessions",
    );
    expect_rv(
        raw::session_info(b.handle()).0,
        CKR_SESSION_HANDLE_INVALID,
        "second session after C_CloseAllSessions",
    );
    expect_rv(
        raw::session_info(keep.handle()).0,
        CKR_OK,
        "a session of another slot must survive",
    );
    let fresh = t.rw_session();
    assert_eq!(
        ok(fresh.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwPublic,
        "closing every session logs the user out"
    );
}

#[test]
fn closing_the_last_session_logs_the_user_out() {
    let t = shared().token("last_session_logout");
    {
        let _s = t.login_user();
    }
    let s = t.rw_session();
    assert_eq!(
        ok(s.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwPublic
    );
}

#[test]
fn closing_one_of_two_sessions_keeps_the_login() {
    let t = shared().token("close_one_keeps_login");
    let keep = t.login_user();
    {
        let _other = t.rw_session();
    }
    assert_eq!(
        ok(keep.get_session_info(), "C_GetSessionInfo").session_state(),
        SessionState::RwUser
    );
}
