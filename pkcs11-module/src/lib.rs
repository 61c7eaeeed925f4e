//! hsmux: one PKCS#11 module in front of HSMs, cloud key managers and a local keystore.
//!
//! Layers, each knowing only the one below: [`abi`] (the C entry points) → [`module`] and
//! [`token`] (sessions, login, objects, operation state) → the mechanism layer
//! (`hsmux-mech`) → the stores and backends (`hsmux-backends`).

pub mod abi;
pub mod config;
mod logging;
pub mod module;
pub mod object;
pub mod service;
pub mod token;

pub use hsmux_mech::{bail, rv_name, Attributes, Error, Result};
