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
    /// AWS KMS keys of one account and region.
    #[serde(rename = "aws-kms")]
    AwsKms(AwsKmsConfig),
    /// A vendor's PKCS#11 library (an on-prem HSM).
    #[serde(rename = "pkcs11")]
    Pkcs11(Pkcs11Config),
}

/// Where a `pkcs11` token's `C_Login` PIN goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PinSource {
    /// The configured `pin` is what applications must present, and what hsmux gives
    /// the vendor.
    #[default]
    Config,
    /// The application's PIN is passed through to the vendor.
    Application,
}

/// Keys of a `backend = "pkcs11"` token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Label of the slot.
    pub label: String,
    /// Path of the vendor's PKCS#11 library.
    pub library: PathBuf,
    /// The vendor token's label (or give `slot`).
    pub token: Option<String>,
    /// The vendor slot ID (or give `token`).
    pub slot: Option<u64>,
    /// The vendor user PIN: `env:NAME`, `file:PATH` or a literal.
    pub pin: Option<String>,
    /// `config` (default) or `application`.
    #[serde(default)]
    pub pin_source: PinSource,
    /// Seconds the object list is trusted before it is fetched again (default 300).
    pub cache_ttl_secs: Option<u64>,
}

impl Pkcs11Config {
    fn check(&self) -> Result<()> {
        let bad = |key: &str, why: &str| {
            Err(Error::new(
                CKR_GENERAL_ERROR,
                format!("token \"{}\": key `{key}` {why}", self.label),
            ))
        };
        if self.token.is_some() == self.slot.is_some() {
            return bad("token", "or `slot`: give exactly one of them");
        }
        if self.pin_source == PinSource::Application && self.pin.is_some() {
            return bad("pin", "must not be set with pin_source = \"application\"");
        }
        Ok(())
    }
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

/// Keys of a `backend = "aws-kms"` token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsKmsConfig {
    /// Label of the slot and token.
    pub label: String,
    /// AWS region; empty or absent: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's.
    #[serde(default)]
    pub region: String,
    /// Endpoint URL (private endpoints, LocalStack); default `https://kms.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Shared-config profile for credentials; default: the standard chain.
    pub profile: Option<String>,
    /// Only these keys: `alias/NAME`, alias or key ARN, or key id.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Only keys with this tag, `"Key=Value"`; keys generated here get it too.
    pub tag: Option<String>,
    /// Waiting period when a key is destroyed (7 to 30 days; default 30).
    pub deletion_window_days: Option<u32>,
    /// Time for one KMS operation, retries included (default 10000).
    pub timeout_ms: Option<u64>,
    /// Retries of throttled or failed requests (default 3).
    pub max_retries: Option<u32>,
    /// What `C_Login` checks: `env:NAME`, `file:PATH` or a literal; absent: any PIN.
    pub pin: Option<String>,
}

impl std::fmt::Debug for AwsKmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsConfig")
            .field("label", &self.label)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .field("keys", &self.keys)
            .field("tag", &self.tag)
            .field("deletion_window_days", &self.deletion_window_days)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .field("pin", &self.pin.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl AwsKmsConfig {
    /// `tag = "Key=Value"` split, or an error naming the key.
    fn tag_pair(&self) -> Result<Option<(String, String)>> {
        let Some(t) = &self.tag else { return Ok(None) };
        match t.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok(Some((k.trim().to_string(), v.trim().to_string())))
            }
            _ => Err(Error::new(
                CKR_GENERAL_ERROR,
                format!(
                    "token \"{}\": key `tag` must be \"Key=Value\", not \"{t}\"",
                    self.label
                ),
            )),
        }
    }

    fn check(&self) -> Result<()> {
        self.tag_pair()?;
        let err = |m: String| {
            Err(Error::new(
                CKR_GENERAL_ERROR,
                format!("token \"{}\": {m}", self.label),
            ))
        };
        if let Some(d) = self.deletion_window_days {
            if !(7..=30).contains(&d) {
                return err(format!(
                    "key `deletion_window_days` must be 7 to 30, not {d}"
                ));
            }
        }
        if self.timeout_ms == Some(0) {
            return err("key `timeout_ms` must be at least 1".into());
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return err(format!(
                    "key `endpoint` must be an http(s):// URL, not \"{e}\""
                ));
            }
        }
        Ok(())
    }

    /// The backend settings, with the PIN reference resolved (no network I/O).
    pub fn settings(&self) -> Result<hsmux_backends::AwsKmsSettings> {
        self.check()?;
        let pin = match &self.pin {
            None => None,
            Some(spec) => Some(hsmux_backends::resolve_secret(spec).map_err(|e| {
                Error::new(
                    CKR_GENERAL_ERROR,
                    format!("token \"{}\": key `pin`: {e}", self.label),
                )
            })?),
        };
        let d = hsmux_backends::AwsKmsSettings::default();
        Ok(hsmux_backends::AwsKmsSettings {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            profile: self.profile.clone(),
            keys: self.keys.clone(),
            tag: self.tag_pair()?,
            deletion_window_days: self.deletion_window_days.unwrap_or(d.deletion_window_days),
            timeout_ms: self.timeout_ms.unwrap_or(d.timeout_ms),
            max_retries: self.max_retries.unwrap_or(d.max_retries),
            pin,
        })
    }
}

impl TokenConfig {
    /// The label clients see for this slot.
    pub fn label(&self) -> &str {
        match self {
            TokenConfig::Local(l) => &l.label,
            TokenConfig::AwsKms(a) => &a.label,
            TokenConfig::Pkcs11(p) => &p.label,
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
    // Errors name the file as an absolute path: the process's directory is not the reader's.
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let path = absolute.as_path();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            CKR_GENERAL_ERROR,
            format!("config {}: cannot read: {e}", path.display()),
        )
    })?;
    parse_str(&text).map_err(|e| Error::new(e.rv, format!("config {}: {}", path.display(), e.msg)))
}

/// Names the line of an unknown key: the parser reports the line of its `[[token]]`
/// table, because a table's backend decides which keys it may have.
fn locate(text: &str, msg: String) -> String {
    let Some(rest) = msg.split("unknown field `").nth(1) else {
        return msg;
    };
    let key = rest.split('`').next().unwrap_or_default();
    let line = text.lines().position(|l| {
        l.trim_start()
            .strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with('='))
    });
    match line {
        Some(n) => format!("line {}: unknown key `{key}`; {msg}", n + 1),
        None => msg,
    }
}

/// Parses and checks configuration text.
pub fn parse_str(text: &str) -> Result<Config> {
    let cfg: Config = toml::from_str(text).map_err(|e| {
        // One log line per failure: the parser's multi-line excerpt is folded.
        let msg = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Error::new(CKR_GENERAL_ERROR, locate(text, msg))
    })?;
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
        if let TokenConfig::AwsKms(a) = t {
            a.check()?;
        }
        if let TokenConfig::Pkcs11(p) = t {
            p.check()?;
        }
        if let TokenConfig::Local(l) = t {
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
    fn aws_kms_tokens_parse_with_defaults_and_checks() {
        let c = parse_str(
            "[[token]]\nlabel = \"kms\"\nbackend = \"aws-kms\"\nregion = \"eu-west-1\"\n\
             endpoint = \"http://127.0.0.1:4566\"\nkeys = [\"alias/web\"]\ntag = \"team = web\"\n\
             pin = \"1234\"\n",
        )
        .unwrap();
        let TokenConfig::AwsKms(a) = &c.token[0] else {
            panic!("{:?}", c.token[0])
        };
        assert!(!format!("{a:?}").contains("1234"));
        let s = a.settings().unwrap();
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.keys, vec!["alias/web".to_string()]);
        assert_eq!(s.tag, Some(("team".into(), "web".into())));
        assert_eq!(s.deletion_window_days, 30);
        assert_eq!(s.pin.as_deref().map(|p| p.as_slice()), Some(&b"1234"[..]));
        for (bad, key) in [
            ("deletion_window_days = 6", "deletion_window_days"),
            ("deletion_window_days = 31", "deletion_window_days"),
            ("tag = \"novalue\"", "tag"),
            ("timeout_ms = 0", "timeout_ms"),
            ("endpoint = \"kms.local\"", "endpoint"),
            ("regoin = \"x\"", "regoin"),
        ] {
            let e = parse_str(&format!(
                "[[token]]\nlabel = \"k\"\nbackend = \"aws-kms\"\n{bad}\n"
            ))
            .unwrap_err();
            assert!(e.msg.contains(key), "{bad}: {}", e.msg);
        }
        let e = parse_str(
            "[[token]]\nlabel = \"k\"\nbackend = \"aws-kms\"\nregion = \"x\"\n\
             pin = \"env:HSMUX_CONFIG_TEST_UNSET_PIN\"\n",
        )
        .unwrap()
        .token[0]
            .clone();
        let TokenConfig::AwsKms(a) = e else {
            unreachable!()
        };
        let err = a.settings().unwrap_err();
        assert!(err.msg.contains("`pin`"), "{}", err.msg);
    }

    #[test]
    fn pkcs11_tokens_need_exactly_one_of_token_and_slot() {
        let ok = "[[token]]\nlabel = \"hsm\"\nbackend = \"pkcs11\"\nlibrary = \"/x.so\"\ntoken = \"t\"\npin = \"env:P\"\n";
        assert!(parse_str(ok).is_ok());
        let both = format!("{ok}slot = 1\n");
        assert!(parse_str(&both).unwrap_err().msg.contains("`token`"));
        let app = "[[token]]\nlabel = \"hsm\"\nbackend = \"pkcs11\"\nlibrary = \"/x.so\"\nslot = 0\npin_source = \"application\"\n";
        assert!(parse_str(app).is_ok());
        let typo =
            "[[token]]\nlabel = \"hsm\"\nbackend = \"pkcs11\"\nlibary = \"/x.so\"\nslot = 0\n";
        assert!(parse_str(typo).unwrap_err().msg.contains("libary"));
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
