//! The TOML configuration: which tokens exist and which backend serves each.
//!
//! Looked up at `C_Initialize`: `$HSMUX_CONFIG`, else `$XDG_CONFIG_HOME/hsmux/hsmux.toml`
//! (or `~/.config/hsmux/hsmux.toml`), else `/etc/hsmux/hsmux.toml`; with none of them,
//! one local token in `$XDG_DATA_HOME/hsmux` (or `~/.local/share/hsmux`).

use crate::{Error, Result};
use cryptoki_sys::CKR_GENERAL_ERROR;
use hsmux_backends::{OpenContext, Opened};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Log destination; stderr when absent. Level comes from `HSMUX_LOG` or `log_level`.
    pub log_file: Option<PathBuf>,
    /// `error`, `warn`, `info`, `debug` or `trace`; `HSMUX_LOG` overrides it.
    pub log_level: Option<String>,
    /// The tokens, one slot each, in this order.
    pub token: Vec<TokenConfig>,
}

impl Config {
    /// What is wrong with each token that has a problem, in config order.
    pub fn problems(&self) -> impl Iterator<Item = &str> {
        self.token.iter().filter_map(|t| t.problem.as_deref())
    }
}

/// The file as serde reads it: each `[[token]]` stays a table until its backend is known.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    log_file: Option<PathBuf>,
    log_level: Option<String>,
    #[serde(default)]
    token: Vec<toml::Table>,
}

/// One `[[token]]` table: the keys every token has, and the rest for its backend.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// The label clients see for this slot.
    pub label: String,
    /// The `backend = "…"` name (a registered backend, see `hsmux_backends::registry`).
    pub backend: String,
    /// The backend's own keys, checked by its settings type when the file is read.
    pub settings: toml::Table,
    /// What is wrong with this table (an unknown backend or key, a bad value), with its
    /// location: such a token's slot is shown without a token, the others still work.
    pub problem: Option<String>,
}

impl TokenConfig {
    /// The label clients see for this slot.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Opens this token's backend (or store); errors name the token and the key.
    pub fn open(&self) -> Result<Opened> {
        if let Some(p) = &self.problem {
            return Err(Error::new(CKR_GENERAL_ERROR, p.clone()));
        }
        let entry = hsmux_backends::registry::find(&self.backend).map_err(|m| self.error(&m))?;
        let data_dir = default_data_dir();
        let ctx = OpenContext {
            label: &self.label,
            data_dir: &data_dir,
        };
        entry
            .open(&self.settings, &ctx)
            .map_err(|e| self.error(&e.to_string()))
    }

    fn error(&self, msg: &str) -> Error {
        Error::new(
            CKR_GENERAL_ERROR,
            format!("token \"{}\": {msg}", self.label),
        )
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
        token: vec![TokenConfig {
            label: "hsmux".into(),
            backend: "local".into(),
            settings: toml::Table::from_iter([(
                "path".to_string(),
                toml::Value::String(default_data_dir().to_string_lossy().into_owned()),
            )]),
            problem: None,
        }],
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
    let mut cfg = parse_str(&text)
        .map_err(|e| Error::new(e.rv, format!("config {}: {}", path.display(), e.msg)))?;
    for t in &mut cfg.token {
        if let Some(p) = &mut t.problem {
            *p = format!("config {}: {p}", path.display());
        }
    }
    Ok(cfg)
}

/// Line numbers (1-based) of each `[[token]]` header, in order.
fn token_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim();
            t.strip_prefix("[[")
                .and_then(|r| r.split("]]").next())
                .is_some_and(|name| name.trim() == "token")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// The line of `key = …` within the `n`th token table (0-based), if it is written there.
fn key_line(text: &str, n: usize, key: &str) -> Option<usize> {
    let starts = token_lines(text);
    let first = *starts.get(n)?;
    let key = key.split('.').next().unwrap_or(key);
    text.lines()
        .enumerate()
        .skip(first)
        .take_while(|(_, l)| !l.trim_start().starts_with("[["))
        .find(|(_, l)| {
            let t = l.trim_start();
            let t = t.trim_start_matches('"');
            t.strip_prefix(key)
                .is_some_and(|r| r.trim_start_matches('"').trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}

/// Takes a required string key out of a token table.
fn take_string(t: &mut toml::Table, key: &str, n: usize) -> Result<String> {
    match t.remove(key) {
        Some(toml::Value::String(s)) => Ok(s),
        Some(other) => Err(Error::new(
            CKR_GENERAL_ERROR,
            format!(
                "token #{}: key `{key}` must be a string, not {}",
                n + 1,
                other.type_str()
            ),
        )),
        None => Err(Error::new(
            CKR_GENERAL_ERROR,
            format!("token #{}: key `{key}` is missing", n + 1),
        )),
    }
}

/// Parses and checks configuration text.
pub fn parse_str(text: &str) -> Result<Config> {
    let file: File = toml::from_str(text).map_err(|e| {
        // One log line per failure: the line, the column and the text there, instead of
        // the parser's multi-line excerpt.
        let what = e.message().trim().replace('\n', " ");
        let msg = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                let source = text.lines().nth(line - 1).unwrap_or_default().trim();
                format!("line {line}, column {column}: {what} (in `{source}`)")
            }
            None => what,
        };
        Error::new(CKR_GENERAL_ERROR, msg)
    })?;
    let mut seen = std::collections::HashSet::new();
    let mut tokens = Vec::new();
    for (i, mut table) in file.token.into_iter().enumerate() {
        let at = |key: Option<&str>| {
            key.and_then(|k| key_line(text, i, k))
                .or_else(|| token_lines(text).get(i).copied())
                .map(|l| format!("line {l}: "))
                .unwrap_or_default()
        };
        let located = |key: &str| {
            let prefix = at(Some(key));
            move |e: Error| Error::new(e.rv, format!("{prefix}{}", e.msg))
        };
        let label = take_string(&mut table, "label", i).map_err(located("label"))?;
        if label.is_empty() || label.len() > 32 {
            return Err(Error::new(
                CKR_GENERAL_ERROR,
                format!(
                    "{}token #{}: key `label` must be 1 to 32 bytes",
                    at(Some("label")),
                    i + 1
                ),
            ));
        }
        if !seen.insert(label.clone()) {
            return Err(Error::new(
                CKR_GENERAL_ERROR,
                format!(
                    "{}token #{}: key `label`: \"{label}\" is used twice",
                    at(Some("label")),
                    i + 1
                ),
            ));
        }
        // From here on a mistake is this token's alone: its slot shows no token.
        let (backend, problem) = match take_string(&mut table, "backend", i) {
            Ok(b) => {
                let problem = match hsmux_backends::registry::find(&b) {
                    Err(m) => Some(format!(
                        "{}token \"{label}\": key `backend`: {m}",
                        at(Some("backend"))
                    )),
                    Ok(entry) => entry
                        .check(&table)
                        .err()
                        .map(|e| format!("{}token \"{label}\": {e}", at(e.key.as_deref()))),
                };
                (b, problem)
            }
            Err(_) => (
                String::new(),
                Some(format!(
                    "{}token \"{label}\": key `backend` must be one of {}",
                    at(Some("backend")),
                    hsmux_backends::registry::names().join(", ")
                )),
            ),
        };
        tokens.push(TokenConfig {
            label,
            backend,
            settings: table,
            problem,
        });
    }
    Ok(Config {
        log_file: file.log_file,
        log_level: file.log_level,
        token: tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse_str`, with the first token's problem as the error of the whole text.
    fn strict(text: &str) -> Result<Config> {
        let c = parse_str(text)?;
        if let Some(p) = c.problems().next() {
            return Err(Error::new(CKR_GENERAL_ERROR, p));
        }
        Ok(c)
    }

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
            strict("[[token]]\nlabel = \"a\"\nbackend = \"local\"\npth = \"/x\"\n").unwrap_err();
        assert!(e.msg.contains("`pth`"), "{}", e.msg);
        assert!(e.msg.starts_with("line 4: "), "{}", e.msg);
    }

    #[cfg(feature = "aws-kms")]
    #[test]
    fn aws_kms_tokens_parse_with_defaults_and_checks() {
        let c = parse_str(
            "[[token]]\nlabel = \"kms\"\nbackend = \"aws-kms\"\nregion = \"eu-west-1\"\n\
             endpoint = \"http://127.0.0.1:4566\"\nkeys = [\"alias/web\"]\ntag = \"team = web\"\n\
             pin = \"1234\"\n",
        )
        .unwrap();
        assert_eq!(c.token[0].backend, "aws-kms");
        let s: hsmux_backends::AwsKmsSettings = c.token[0].settings.clone().try_into().unwrap();
        assert!(!format!("{s:?}").contains("1234"));
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.keys, vec!["alias/web".to_string()]);
        assert_eq!(s.deletion_window_days, 30);
        for (bad, key) in [
            ("deletion_window_days = 6", "deletion_window_days"),
            ("deletion_window_days = 31", "deletion_window_days"),
            ("tag = \"novalue\"", "tag"),
            ("timeout_ms = 0", "timeout_ms"),
            ("timeout_ms = \"soon\"", "timeout_ms"),
            ("endpoint = \"kms.local\"", "endpoint"),
            ("regoin = \"x\"", "regoin"),
        ] {
            let e = strict(&format!(
                "# a comment\n[[token]]\nlabel = \"k\"\n{bad}\nbackend = \"aws-kms\"\n"
            ))
            .unwrap_err();
            assert!(e.msg.contains(&format!("`{key}`")), "{bad}: {}", e.msg);
            assert!(e.msg.starts_with("line 4: "), "{bad}: {}", e.msg);
        }
        let t = parse_str(
            "[[token]]\nlabel = \"k\"\nbackend = \"aws-kms\"\nregion = \"x\"\n\
             pin = \"env:HSMUX_CONFIG_TEST_UNSET_PIN\"\n",
        )
        .unwrap()
        .token[0]
            .clone();
        let err = t.open().err().unwrap();
        assert!(err.msg.contains("`pin`"), "{}", err.msg);
        assert!(
            err.msg.contains("HSMUX_CONFIG_TEST_UNSET_PIN"),
            "{}",
            err.msg
        );
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn pkcs11_tokens_need_exactly_one_of_token_and_slot() {
        let ok = "[[token]]\nlabel = \"hsm\"\nbackend = \"pkcs11\"\nlibrary = \"/x.so\"\ntoken = \"t\"\npin = \"env:P\"\n";
        assert!(strict(ok).is_ok());
        let both = format!("{ok}slot = 1\n");
        assert!(strict(&both).unwrap_err().msg.contains("`token`"));
        let app = "[[token]]\nlabel = \"hsm\"\nbackend = \"pkcs11\"\nlibrary = \"/x.so\"\nslot = 0\npin_source = \"application\"\n";
        assert!(strict(app).is_ok());
        let typo =
            "[[token]]\nlabel = \"hsm\"\nbackend = \"pkcs11\"\nlibary = \"/x.so\"\nslot = 0\n";
        let e = strict(typo).unwrap_err();
        assert!(
            e.msg.starts_with("line 4: ") && e.msg.contains("libary"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn a_backend_left_out_of_the_build_is_named_with_its_feature() {
        for r in hsmux_backends::BACKENDS {
            let text = format!("[[token]]\nlabel = \"a\"\nbackend = \"{}\"\n", r.name);
            match r.entry {
                Some(_) => {
                    if let Err(e) = strict(&text) {
                        assert!(!e.msg.contains("not compiled"), "{}", e.msg)
                    }
                }
                None => {
                    let e = strict(&text).unwrap_err();
                    assert!(
                        e.msg.contains("not compiled")
                            && e.msg.contains(&format!("`{}`", r.feature)),
                        "{}",
                        e.msg
                    );
                }
            }
        }
    }

    #[test]
    fn local_pin_retries_must_be_1_to_1000() {
        let t =
            |v: &str| format!("[[token]]\nlabel = \"a\"\nbackend = \"local\"\npin_retries = {v}\n");
        assert!(strict(&t("3")).is_ok());
        for bad in ["0", "1001"] {
            let e = strict(&t(bad)).unwrap_err();
            assert!(
                e.msg.starts_with("line 4: ") && e.msg.contains("`pin_retries`"),
                "{}",
                e.msg
            );
        }
    }

    #[test]
    fn a_file_that_is_not_toml_is_one_readable_line_with_its_location() {
        let e = parse_str("log_level = \"info\"\n[[token]\nlabel = \"a\"\n").unwrap_err();
        assert!(!e.msg.contains('\n') && !e.msg.contains(" | "), "{}", e.msg);
        assert!(e.msg.starts_with("line 2, column "), "{}", e.msg);
        assert!(e.msg.contains("(in `[[token]`)"), "{}", e.msg);
        let e = parse_str("log_levle = \"info\"\n").unwrap_err();
        assert!(
            e.msg
                .starts_with("line 1, column 1: unknown field `log_levle`"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn unknown_backend_and_duplicate_labels_are_errors() {
        assert!(strict("[[token]]\nlabel = \"a\"\nbackend = \"nope\"\n").is_err());
        // One bad table leaves the others as they are: only its slot shows no token.
        let c = parse_str(
            "[[token]]\nlabel = \"a\"\nbackend = \"nope\"\n[[token]]\nlabel = \"b\"\nbackend = \"local\"\n",
        )
        .unwrap();
        assert!(c.token[0].problem.is_some() && c.token[1].problem.is_none());
        // A file that does not parse at all is the one error of the whole file.
        assert!(parse_str("[[token]\nlabel = ").is_err());
        let e = parse_str(
            "[[token]]\nlabel = \"a\"\nbackend = \"local\"\n[[token]]\nlabel = \"a\"\nbackend = \"local\"\n",
        )
        .unwrap_err();
        assert!(e.msg.contains("used twice"));
    }
}
