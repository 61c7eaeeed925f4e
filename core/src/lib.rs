//! The facts every hsmux crate shares, written once: the error type that carries a
//! `CK_RV` and the table of `CK_RV` names ([`error`]), and the hash enum with its
//! conversions ([`hash`]).

pub mod error;
pub mod hash;

pub use error::{rv_name, Error, Result, KNOWN_RVS};
pub use hash::HashAlg;
