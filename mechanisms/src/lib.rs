//! The hsmux mechanism layer: what each `CKM_*` means, done in software.
//!
//! Parameters are parsed once from the C structs into [`mech::Mechanism`]; keys are
//! parsed once from their attributes into [`key::KeyMaterial`] and kept with the object;
//! operations are objects with `update`/`finish` so single- and multi-part calls share
//! one implementation.

pub mod attr;
pub mod error;

pub use attr::Attributes;
pub use error::{rv_name, Error, Result};
