//! The `backend = "local"` table and its registration.

use std::path::PathBuf;

use serde::Deserialize;

use super::{LocalStore, DEFAULT_KDF_ITERATIONS};
use crate::registry::{Entry, OpenContext, Opened, SettingError, Settings};

/// Keys of a `backend = "local"` token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Directory of the token's store; default `$XDG_DATA_HOME/hsmux/<label>`.
    pub path: Option<PathBuf>,
    /// PBKDF2 iterations for PIN-derived keys; only lower it for tests.
    pub pin_kdf_iterations: Option<u32>,
}

impl Settings for LocalSettings {
    fn check(&self) -> Result<(), SettingError> {
        if self.pin_kdf_iterations == Some(0) {
            return Err(SettingError::key(
                "pin_kdf_iterations",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

fn open(s: LocalSettings, ctx: &OpenContext<'_>) -> Result<Opened, SettingError> {
    let path = s.path.unwrap_or_else(|| ctx.data_dir.join(ctx.label));
    let iterations = s.pin_kdf_iterations.unwrap_or(DEFAULT_KDF_ITERATIONS);
    LocalStore::open_with_kdf_iterations(&path, iterations)
        .map(Opened::Store)
        .map_err(|e| SettingError::key("path", format!("{}: {e}", path.display())))
}

/// The registration of the embedded keystore.
pub static ENTRY: Entry<LocalSettings> = Entry { open };
