//! `CK_RV` names and assertions that print them, so a failing test says
//! "expected CKR_X, got CKR_Y" rather than a number or a wrapper's enum.

use cryptoki::error::{Error, Rv, RvError};
use cryptoki_sys::*;

/// The symbolic name of a `CK_RV`, e.g. `CKR_PIN_INCORRECT (0xa0)`.
pub fn rv_name(rv: CK_RV) -> String {
    if hsmux_core::KNOWN_RVS.contains(&rv) {
        format!("{} ({rv:#x})", hsmux_core::rv_name(rv))
    } else {
        format!("unknown CK_RV {rv:#x}")
    }
}

/// The `CK_RV` a cryptoki `RvError` was made from.
pub fn ck_rv(error: RvError) -> CK_RV {
    match error {
        RvError::VendorDefined(code) | RvError::UnknownErrorCode(code) => code,
        other => hsmux_core::KNOWN_RVS
            .iter()
            .copied()
            .find(|code| Rv::from(*code) == Rv::Error(other))
            .unwrap_or_else(|| panic!("no CK_RV known for {other:?}")),
    }
}

/// Anything a test can read a `CK_RV` from: a raw return value or a cryptoki result.
pub trait IntoRv {
    /// The `CK_RV` the module returned (`CKR_OK` for success).
    fn rv(&self) -> CK_RV;
}

impl IntoRv for CK_RV {
    fn rv(&self) -> CK_RV {
        *self
    }
}

impl<T> IntoRv for cryptoki::error::Result<T> {
    fn rv(&self) -> CK_RV {
        match self {
            Ok(_) => CKR_OK,
            Err(Error::Pkcs11(error, _)) => ck_rv(*error),
            Err(other) => panic!("client-side error, not a CK_RV from the module: {other}"),
        }
    }
}

/// Asserts that `got` is exactly `expected`, naming both codes on failure.
#[track_caller]
pub fn expect_rv(got: impl IntoRv, expected: CK_RV, what: &str) {
    let got = got.rv();
    assert!(
        got == expected,
        "{what}: expected {}, got {}",
        rv_name(expected),
        rv_name(got)
    );
}

/// Asserts that `got` is one of `allowed` (where the spec lets a module choose).
#[track_caller]
pub fn expect_rv_in(got: impl IntoRv, allowed: &[CK_RV], what: &str) {
    let got = got.rv();
    assert!(
        allowed.contains(&got),
        "{what}: expected one of [{}], got {}",
        allowed
            .iter()
            .map(|rv| rv_name(*rv))
            .collect::<Vec<_>>()
            .join(", "),
        rv_name(got)
    );
}

/// Unwraps a cryptoki result, naming the `CK_RV` and the step on failure.
#[track_caller]
pub fn ok<T>(result: cryptoki::error::Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(Error::Pkcs11(error, function)) => panic!(
            "{what}: {function:?} failed: expected CKR_OK, got {}",
            rv_name(ck_rv(error))
        ),
        Err(other) => panic!("{what}: {other}"),
    }
}
