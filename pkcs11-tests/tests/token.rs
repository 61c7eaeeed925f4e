//! Slot and token management: C_GetTokenInfo, C_InitToken, C_InitPIN, C_SetPIN and the
//! PIN retry counter.

use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki_sys::*;
use hsmux_tests::keys::{self, data_template};
use hsmux_tests::*;

#[test]
fn fresh_token_is_uninitialized_until_init_token_sets_its_label() {
    let h = shared();
    let (slot, _) = h.fresh_slot();
    let info = ok(h.pkcs11.get_token_info(slot), "C_GetTokenInfo");
    assert!(
        !info.token_initialized(),
        "a configured token must start without CKF_TOKEN_INITIALIZED"
    );
    ok(
        h.pkcs11.init_token(slot, &pin(SO_PIN), "fresh-label"),
        "C_InitToken",
    );
    let info = ok(h.pkcs11.get_token_info(slot), "C_GetTokenInfo");
    assert!(
        info.token_initialized(),
        "CKF_TOKEN_INITIALIZED after C_InitToken"
    );
    assert_eq!(
        info.label(),
        "fresh-label",
        "label is the one given to C_InitToken"
    );
    assert!(
        !info.user_pin_initialized(),
        "no CKF_USER_PIN_INITIALIZED before C_InitPIN"
    );
}

#[test]
fn init_pin_sets_user_pin_initialized_and_lets_user_log_in() {
    let t = shared().token_without_user_pin("init_pin_sets_flag");
    {
        let so = t.login_so();
        ok(so.init_pin(&pin(USER_PIN)), "C_InitPIN");
    }
    assert!(t.info().user_pin_initialized(), "CKF_USER_PIN_INITIALIZED");
    let s = t.rw_session();
    ok(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        "C_Login with the new PIN",
    );
}

#[test]
fn initialized_token_reports_login_required_and_rng() {
    let t = shared().token("flags_login_rng");
    let info = t.info();
    assert!(info.login_required(), "CKF_LOGIN_REQUIRED");
    assert!(info.rng(), "CKF_RNG (C_GenerateRandom is supported)");
    assert!(info.user_pin_initialized(), "CKF_USER_PIN_INITIALIZED");
    assert!(!info.write_protected(), "CKF_WRITE_PROTECTED");
    assert!(
        info.min_pin_length() <= USER_PIN.len() && info.max_pin_length() >= USER_PIN.len(),
        "PIN length bounds {}..{} must admit the fixture PINs",
        info.min_pin_length(),
        info.max_pin_length()
    );
}

#[test]
fn reinit_token_wipes_objects_and_user_pin_and_sets_new_label() {
    let t = shared().token("reinit_wipes");
    {
        let s = t.login_user();
        let mut template = data_template("keep-me?", b"payload", false);
        template = keys::merge(template, &[Attribute::Token(true)]);
        ok(
            s.create_object(&template),
            "C_CreateObject(token data object)",
        );
        keys::create_aes(&s, &[7u8; 16], &[Attribute::Token(true)]);
    }
    ok(
        t.pkcs11
            .init_token(t.slot, &pin(SO_PIN), "reinit-new-label"),
        "C_InitToken on an initialised token with no sessions",
    );
    let info = t.info();
    assert_eq!(info.label(), "reinit-new-label");
    assert!(
        !info.user_pin_initialized(),
        "re-initialisation must drop the user PIN"
    );
    let s = t.rw_session();
    let left = keys::find(&s, &[]);
    assert!(left.is_empty(), "objects survived C_InitToken: {left:?}");
    expect_rv(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        CKR_USER_PIN_NOT_INITIALIZED,
        "C_Login(USER) after re-init",
    );
    // The SO can set a user PIN again, and the store starts empty for the user too.
    ok(s.login(UserType::So, Some(&pin(SO_PIN))), "C_Login(SO)");
    ok(s.init_pin(&pin(USER_PIN)), "C_InitPIN");
    ok(s.logout(), "C_Logout");
    ok(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        "C_Login(USER)",
    );
    let left = keys::find(&s, &[Attribute::Class(ObjectClass::SECRET_KEY)]);
    assert!(
        left.is_empty(),
        "private objects survived C_InitToken: {left:?}"
    );
}

#[test]
fn reinit_token_with_wrong_so_pin_returns_pin_incorrect() {
    let t = shared().token("reinit_wrong_so_pin");
    expect_rv(
        t.pkcs11.init_token(t.slot, &pin("not-the-so-pin"), "x"),
        CKR_PIN_INCORRECT,
        "C_InitToken with a wrong SO PIN",
    );
    assert_eq!(t.info().label(), t.label, "label must not change");
    assert!(t.info().user_pin_initialized(), "user PIN must survive");
}

#[test]
fn init_token_with_open_session_returns_session_exists() {
    let t = shared().token("init_token_session_exists");
    let _s = t.ro_session();
    expect_rv(
        t.pkcs11.init_token(t.slot, &pin(SO_PIN), "other"),
        CKR_SESSION_EXISTS,
        "C_InitToken with a session open",
    );
}

#[test]
fn init_pin_without_so_login_returns_user_not_logged_in() {
    let t = shared().token("init_pin_not_so");
    let s = t.rw_session();
    expect_rv(
        s.init_pin(&pin("another-pin-1")),
        CKR_USER_NOT_LOGGED_IN,
        "C_InitPIN in a public session",
    );
    ok(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        "C_Login(USER)",
    );
    expect_rv(
        s.init_pin(&pin("another-pin-1")),
        CKR_USER_NOT_LOGGED_IN,
        "C_InitPIN as the normal user",
    );
}

#[test]
fn set_pin_as_user_changes_the_user_pin() {
    let t = shared().token("set_pin_user");
    let s = t.login_user();
    ok(
        s.set_pin(&pin(USER_PIN), &pin("changed-user-pin")),
        "C_SetPIN(old, new)",
    );
    ok(s.logout(), "C_Logout");
    expect_rv(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        CKR_PIN_INCORRECT,
        "C_Login with the old PIN",
    );
    ok(
        s.login(UserType::User, Some(&pin("changed-user-pin"))),
        "C_Login with the new PIN",
    );
}

#[test]
fn set_pin_in_public_rw_session_changes_the_user_pin() {
    let t = shared().token("set_pin_public");
    let s = t.rw_session();
    ok(
        s.set_pin(&pin(USER_PIN), &pin("public-set-pin")),
        "C_SetPIN in the R/W public state",
    );
    ok(
        s.login(UserType::User, Some(&pin("public-set-pin"))),
        "C_Login with the new PIN",
    );
}

#[test]
fn set_pin_with_wrong_old_pin_returns_pin_incorrect() {
    let t = shared().token("set_pin_wrong_old");
    let s = t.login_user();
    expect_rv(
        s.set_pin(&pin("wrong-old-pin"), &pin("new-pin-12345")),
        CKR_PIN_INCORRECT,
        "C_SetPIN with a wrong old PIN",
    );
    ok(s.logout(), "C_Logout");
    ok(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        "the old PIN still works",
    );
}

#[test]
fn set_pin_in_read_only_session_returns_session_read_only() {
    let t = shared().token("set_pin_ro");
    let s = t.ro_session();
    expect_rv(
        s.set_pin(&pin(USER_PIN), &pin("new-pin-12345")),
        CKR_SESSION_READ_ONLY,
        "C_SetPIN in a R/O session",
    );
}

#[test]
fn set_pin_as_so_changes_the_so_pin() {
    let t = shared().token("set_pin_so");
    let s = t.login_so();
    ok(
        s.set_pin(&pin(SO_PIN), &pin("changed-so-pin")),
        "C_SetPIN as SO",
    );
    ok(s.logout(), "C_Logout");
    expect_rv(
        s.login(UserType::So, Some(&pin(SO_PIN))),
        CKR_PIN_INCORRECT,
        "C_Login(SO) with the old SO PIN",
    );
    ok(
        s.login(UserType::So, Some(&pin("changed-so-pin"))),
        "C_Login(SO) with the new SO PIN",
    );
    // The user PIN is untouched.
    ok(s.logout(), "C_Logout");
    ok(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        "C_Login(USER)",
    );
}

#[test]
fn wrong_user_pin_sets_count_low_and_successful_login_clears_it() {
    let t = shared().token("pin_count_low");
    let s = t.rw_session();
    assert!(
        !t.info().user_pin_count_low(),
        "no CKF_USER_PIN_COUNT_LOW at start"
    );
    expect_rv(
        s.login(UserType::User, Some(&pin("wrong-user-pin"))),
        CKR_PIN_INCORRECT,
        "C_Login with a wrong PIN",
    );
    assert!(
        t.info().user_pin_count_low(),
        "CKF_USER_PIN_COUNT_LOW after a wrong PIN"
    );
    ok(s.login(UserType::User, Some(&pin(USER_PIN))), "C_Login");
    assert!(
        !t.info().user_pin_count_low(),
        "CKF_USER_PIN_COUNT_LOW cleared by a successful login"
    );
}

#[test]
fn ten_consecutive_wrong_user_pins_lock_the_user_pin() {
    let t = shared().token("pin_locked");
    let s = t.rw_session();
    for attempt in 1..=10 {
        let allowed: &[CK_RV] = if attempt == 10 {
            &[CKR_PIN_INCORRECT, CKR_PIN_LOCKED]
        } else {
            &[CKR_PIN_INCORRECT]
        };
        expect_rv_in(
            s.login(UserType::User, Some(&pin("wrong-user-pin"))),
            allowed,
            &format!("wrong PIN attempt {attempt}"),
        );
        if attempt < 10 {
            assert!(
                !t.info().user_pin_locked(),
                "locked after only {attempt} wrong PINs"
            );
        }
    }
    assert!(
        t.info().user_pin_locked(),
        "CKF_USER_PIN_LOCKED after 10 wrong PINs"
    );
    expect_rv(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        CKR_PIN_LOCKED,
        "C_Login with the right PIN once locked",
    );
}

#[test]
fn wrong_so_pin_returns_pin_incorrect() {
    let t = shared().token("wrong_so_pin");
    let s = t.rw_session();
    expect_rv(
        s.login(UserType::So, Some(&pin("wrong-so-pin"))),
        CKR_PIN_INCORRECT,
        "C_Login(SO) with a wrong PIN",
    );
}

#[test]
fn nine_wrong_user_pins_set_final_try() {
    let t = shared().token("pin_final_try");
    let s = t.rw_session();
    for attempt in 1..=9 {
        expect_rv(
            s.login(UserType::User, Some(&pin("wrong-user-pin"))),
            CKR_PIN_INCORRECT,
            &format!("wrong PIN attempt {attempt}"),
        );
        if attempt < 9 {
            assert!(
                !t.info().user_pin_final_try(),
                "CKF_USER_PIN_FINAL_TRY after only {attempt} wrong PINs"
            );
        }
    }
    let info = t.info();
    assert!(
        info.user_pin_final_try(),
        "CKF_USER_PIN_FINAL_TRY after 9 wrong PINs"
    );
    assert!(!info.user_pin_locked());
    ok(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        "C_Login on the final try",
    );
    let info = t.info();
    assert!(
        !info.user_pin_final_try() && !info.user_pin_count_low(),
        "a successful login resets the retry counter"
    );
}

#[test]
fn wrong_so_pin_sets_so_pin_count_low() {
    let t = shared().token("so_pin_count_low");
    let s = t.rw_session();
    expect_rv(
        s.login(UserType::So, Some(&pin("wrong-so-pin"))),
        CKR_PIN_INCORRECT,
        "C_Login(SO) with a wrong PIN",
    );
    assert!(
        t.info().so_pin_count_low(),
        "CKF_SO_PIN_COUNT_LOW after a wrong SO PIN"
    );
    assert!(
        !t.info().user_pin_count_low(),
        "a wrong SO PIN must not count against the user PIN"
    );
}

#[test]
fn pins_outside_the_length_bounds_return_pin_len_range() {
    let t = shared().token("pin_len_range");
    let info = t.info();
    let too_short = "1".repeat(info.min_pin_length().saturating_sub(1));
    let too_long = "1".repeat(info.max_pin_length() + 1);
    let s = t.login_user();
    for (what, new) in [("too short", &too_short), ("too long", &too_long)] {
        expect_rv(
            s.set_pin(&pin(USER_PIN), &pin(new)),
            CKR_PIN_LEN_RANGE,
            &format!("C_SetPIN to a {what} PIN ({} chars)", new.len()),
        );
    }
    ok(s.logout(), "C_Logout");
    ok(
        s.login(UserType::User, Some(&pin(USER_PIN))),
        "the PIN is unchanged",
    );
    ok(s.logout(), "C_Logout");
    ok(s.login(UserType::So, Some(&pin(SO_PIN))), "C_Login(SO)");
    expect_rv(
        s.init_pin(&pin(&too_short)),
        CKR_PIN_LEN_RANGE,
        "C_InitPIN with a too-short PIN",
    );
}

#[test]
fn token_info_counts_open_sessions() {
    let t = shared().token("session_counts");
    let _a = t.ro_session();
    let _b = t.ro_session();
    let _c = t.rw_session();
    let (rv, info) = hsmux_tests::raw::token_info(t.slot.id());
    expect_rv(rv, CKR_OK, "C_GetTokenInfo");
    if info.ulSessionCount != CK_UNAVAILABLE_INFORMATION {
        assert_eq!(info.ulSessionCount, 3, "ulSessionCount");
    }
    if info.ulRwSessionCount != CK_UNAVAILABLE_INFORMATION {
        assert_eq!(info.ulRwSessionCount, 1, "ulRwSessionCount");
    }
}
