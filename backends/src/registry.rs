//! How a `[[token]]` table becomes a backend: each backend registers one [`Entry`] (its
//! `backend = "…"` name, its settings type and its `open` function) in the list at the
//! top of this crate, and the module's configuration dispatches on the name.
//!
//! A backend's settings are declared once, next to its code, as a serde struct with
//! `deny_unknown_fields`; [`Settings::check`] adds the rules serde cannot state. Parsing
//! and checking happen when the configuration is read (no I/O); `open` may load a vendor
//! library or read a directory, but never touches the network.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{Backend, LocalStore};

/// A problem with one token's settings, naming the config key to change when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The key of the `[[token]]` table at fault (dotted for nested keys).
    pub key: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl SettingError {
    /// An error about `key`.
    pub fn key(key: &str, message: impl Into<String>) -> SettingError {
        SettingError {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    /// An error about the token as a whole.
    pub fn token(message: impl Into<String>) -> SettingError {
        SettingError {
            key: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(k) => write!(f, "key `{k}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A backend's settings: the keys of its `[[token]]` table other than `label` and
/// `backend`.
pub trait Settings: DeserializeOwned {
    /// Rules beyond the types (ranges, exclusive keys); no I/O.
    fn check(&self) -> Result<(), SettingError> {
        Ok(())
    }
}

/// What opening a token gives the token layer.
pub enum Opened {
    /// The embedded keystore: objects are full PKCS#11 objects kept by hsmux itself, and
    /// their keys are used in-process by the mechanism layer (see the crate docs).
    Store(LocalStore),
    /// A key service; its object list is trusted for `list_ttl` between listings.
    Service {
        /// The backend.
        backend: Arc<dyn Backend>,
        /// How long a listing serves `C_FindObjects`.
        list_ttl: Duration,
    },
}

/// What a backend's `open` knows besides its settings.
pub struct OpenContext<'a> {
    /// The token's `label`.
    pub label: &'a str,
    /// hsmux's data directory (`$XDG_DATA_HOME/hsmux`), for backends that keep files.
    pub data_dir: &'a Path,
}

/// A registered backend, as the configuration sees it.
pub trait Registered: Sync {
    /// Parses and checks a table's settings.
    fn check(&self, table: &toml::Table) -> Result<(), SettingError>;
    /// Parses, checks and opens.
    fn open(&self, table: &toml::Table, ctx: &OpenContext<'_>) -> Result<Opened, SettingError>;
}

/// The registration of one backend with settings type `S`.
pub struct Entry<S> {
    /// Opens a token from its checked settings.
    pub open: fn(S, &OpenContext<'_>) -> Result<Opened, SettingError>,
}

fn parse<S: Settings>(table: &toml::Table) -> Result<S, SettingError> {
    let s: S = serde_path_to_error::deserialize(table.clone()).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        // An unknown key is named by serde itself; a wrong type by the path to it.
        let key = match message.split("unknown field `").nth(1) {
            Some(rest) => rest.split('`').next().map(str::to_string),
            None if path != "." && !path.is_empty() => Some(path),
            None => None,
        };
        SettingError { key, message }
    })?;
    s.check()?;
    Ok(s)
}

impl<S: Settings> Registered for Entry<S> {
    fn check(&self, table: &toml::Table) -> Result<(), SettingError> {
        parse::<S>(table).map(drop)
    }

    fn open(&self, table: &toml::Table, ctx: &OpenContext<'_>) -> Result<Opened, SettingError> {
        (self.open)(parse::<S>(table)?, ctx)
    }
}

/// One line of the backend list: its name, the cargo feature that builds it, and its
/// entry when that feature is on.
pub struct Registration {
    /// The `backend = "…"` name.
    pub name: &'static str,
    /// The cargo feature of `hsmux-backends` (forwarded by the module crate).
    pub feature: &'static str,
    /// `None` when the backend was not compiled in.
    pub entry: Option<&'static dyn Registered>,
}

/// The backend registered as `name`, or an error that says what to do.
pub fn find(name: &str) -> Result<&'static dyn Registered, String> {
    match crate::BACKENDS.iter().find(|r| r.name == name) {
        Some(Registration { entry: Some(e), .. }) => Ok(*e),
        Some(r) => Err(format!(
            "backend \"{name}\" is not compiled into this build of hsmux: build it with \
             cargo feature `{}`",
            r.feature
        )),
        None => Err(format!(
            "unknown backend \"{name}\"; this build knows {}",
            names().join(", ")
        )),
    }
}

/// The names of every backend this build can open, in registration order.
pub fn names() -> Vec<&'static str> {
    crate::BACKENDS
        .iter()
        .filter(|r| r.entry.is_some())
        .map(|r| r.name)
        .collect()
}
