//! The TOML configuration: which tokens exist and which backend serves each.
//!
//! Looked up at `C_Initialize`: `$HSMUX_CONFIG`, else `$XDG_CONFIG_HOME/hsmux/hsmux.toml`
//! (or `~/.config/hsmux/hsmux.toml`), else `/etc/hsmux/hsmux.toml`; with none of them,
//! one local token in `$XDG_DATA_HOME/hsmux` (or `~/.local/share/hsmux`).

use crate::{Error, Result};
use cryptoki_sys::CKR_GENERAL_ERROR;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Log destination; stderr when absent. Level comes from `HSMUX_LOG` or `log_level`.
    pub log_file: Option<PathBuf>,
    /// `error`, `warn`, `info`, `debug` or `trace`; `HSMUX_LOG` overrides it.
    pub log_level: Option<String>,
    /// The tokens, one slot each, in this order.
    #[serde(default)]
    pub token: Vec<TokenConfig>,
}

/// One `[[token]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", deny_unknown_fields)]
pub enum TokenConfig {
    /// The embedded local keystore.
    #[serde(rename = "local")]
    Local(LocalConfig),
}

/// Keys of a `backend = "local"` token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Label of the slot; the token label until `C_InitToken` sets its own.
    pub label: String,
    /// Directory of the token's store; default `$XDG_DATA_HOME/hsmux/<label>`.
    pub path: Option<PathBuf>,
    /// PBKDF2 iterations for PIN-derived keys; only lower it for tests.
    pub pin_kdf_iterations: Option<u32>,
}

impl TokenConfig {
    /// The label clients see for this slot.
    pub fn label(&self) -> &str {
        match self {
            TokenConfig::Local(l) => &l.label,
        }
    }
}

/// Where the configuration came from, for log lines.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// No file: the embedded default.
    Default,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home_join(rel: &str) -> Option<PathBuf> {
    env_path("HOME").map(|h| h.join(rel))
}

/// `$XDG_DATA_HOME/hsmux`, else `~/.local/share/hsmux`.
pub fn default_data_dir() -> PathBuf {
    env_path("XDG_DATA_HOME")
        .or_else(|| home_join(".local/share"))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("hsmux")
}

/// Finds and parses the configuration.
pub fn load() -> Result<(Config, Source)> {
    if let Some(p) = env_path("HSMUX_CONFIG") {
        // An explicitly named file must exist: silently falling back would hide typos.
        return Ok((parse_file(&p)?, Source::File(p)));
    }
    let candidates = [
        env_path("XDG_CONFIG_HOME")
            .or_else(|| home_join(".config"))
            .map(|d| d.join("hsmux/hsmux.toml")),
        Some(PathBuf::from("/etc/hsmux/hsmux.toml")),
    ];
    for p in candidates.into_iter().flatten() {
        if p.is_file() {
            return Ok((parse_file(&p)?, Source::File(p)));
        }
    }
    Ok((default_config(), Source::Default))
}

/// The embedded default: one local token.
pub fn default_config() -> Config {
    Config {
        log_file: None,
        log_level: None,
        token: vec![TokenConfig::Local(LocalConfig {
            label: "hsmux".into(),
            path: Some(default_data_dir()),
            pin_kdf_iterations: None,
        })],
    }
}

/// Parses one file, naming it in every error.
pub fn parse_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            CKR_GENERAL_ERROR,
            format!("config {}: cannot read: {e}", path.display()),
        )
    })?;
    parse_str(&text).map_err(|e| Error::new(e.rv, format!("config {}: {}", path.display(), e.msg)))
}

/// Parses and checks configuration text.
pub fn parse_str(text: &str) -> Result<Config> {
    let cfg: Config =
        toml::from_str(text).map_err(|e| Error::new(CKR_GENERAL_ERROR, e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    for (i, t) in cfg.token.iter().enumerate() {
        let label = t.label();
        if label.is_empty() || label.len() > 32 {
            return Err(Error::new(
                CKR_GENERAL_ERROR,
                format!("token #{}: key `label` must be 1 to 32 bytes", i + 1),
            ));
        }
        if !seen.insert(label.to_string()) {
            return Err(Error::new(
                CKR_GENERAL_ERROR,
                format!("token #{}: key `label`: \"{label}\" is used twice", i + 1),
            ));
        }
        let TokenConfig::Local(l) = t;
        {
            if l.pin_kdf_iterations == Some(0) {
                return Err(Error::new(
                    CKR_GENERAL_ERROR,
                    format!("token \"{label}\": key `pin_kdf_iterations` must be at least 1"),
                ));
            }
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tokens_parse_in_order() {
        let c = parse_str(
            "[[token]]\nlabel = \"a\"\nbackend = \"local\"\npath = \"/x/a\"\n\
             [[token]]\nlabel = \"b\"\nbackend = \"local\"\npin_kdf_iterations = 10\n",
        )
        .unwrap();
        assert_eq!(c.token.len(), 2);
        assert_eq!(c.token[1].label(), "b");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e =
            parse_str("[[token]]\nlabel = \"a\"\nbackend = \"local\"\npth = \"/x\"\n").unwrap_err();
        assert!(e.msg.contains("pth"), "{}", e.msg);
        assert!(
            e.msg.contains("line 1") || e.msg.contains("line 4"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn unknown_backend_and_duplicate_labels_are_errors() {
        assert!(parse_str("[[token]]\nlabel = \"a\"\nbackend = \"nope\"\n").is_err());
        let e = parse_str(
            "[[token]]\nlabel = \"a\"\nbackend = \"local\"\n[[token]]\nlabel = \"a\"\nbackend = \"local\"\n",
        )
        .unwrap_err();
        assert!(e.msg.contains("used twice"));
    }
}
