//! The `backend = "local"` table and its registration.

use std::path::PathBuf;

use serde::Deserialize;

use super::{LocalStore, DEFAULT_KDF_ITERATIONS, MAX_PIN_FAILURES};
use crate::registry::{Entry, OpenContext, Opened, SettingError, Settings};

/// Keys of a `backend = "local"` token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Directory of the token's store; default `$XDG_DATA_HOME/hsmux/<label>`.
    pub path: Option<PathBuf>,
    /// PBKDF2 iterations for PIN-derived keys; only lower it for tests.
    pub pin_kdf_iterations: Option<u32>,
    /// Consecutive wrong PINs that lock the user (or SO) PIN; default 10. A locked user
    /// PIN is unlocked by the SO setting a new one (`C_InitPIN`).
    pub pin_retries: Option<u32>,
}

impl Settings for LocalSettings {
    fn check(&self) -> Result<(), SettingError> {
        if self.pin_kdf_iterations == Some(0) {
            return Err(SettingError::key(
                "pin_kdf_iterations",
                "must be at least 1",
            ));
        }
        if let Some(n) = self.pin_retries {
            if !(1..=1000).contains(&n) {
                return Err(SettingError::key(
                    "pin_retries",
                    format!("must be 1 to 1000, not {n}"),
                ));
            }
        }
        Ok(())
    }
}

fn open(s: LocalSettings, ctx: &OpenContext<'_>) -> Result<Opened, SettingError> {
    let path = s.path.unwrap_or_else(|| ctx.data_dir.join(ctx.label));
    let iterations = s.pin_kdf_iterations.unwrap_or(DEFAULT_KDF_ITERATIONS);
    LocalStore::open_with_kdf_iterations(&path, iterations)
        .map(|store| store.with_pin_retries(s.pin_retries.unwrap_or(MAX_PIN_FAILURES)))
        .map(Opened::Store)
        .map_err(|e| SettingError::key("path", format!("{}: {e}", path.display())))
}

/// The registration of the embedded keystore.
pub static ENTRY: Entry<LocalSettings> = Entry { open };
