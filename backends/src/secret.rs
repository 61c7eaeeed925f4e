//! Secret references in configuration: `env:NAME`, `file:/path`, or a literal.
//!
//! Config files name where a secret lives rather than holding it, so the same file can
//! be committed and the secret rotated without touching it. Errors name the variable or
//! path, never the secret.

use zeroize::Zeroizing;

/// Resolves a secret reference: `env:NAME` (the variable's value), `file:/path` (the
/// file's contents, one trailing newline stripped), or anything else as a literal.
pub fn resolve_secret(spec: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Some(name) = spec.strip_prefix("env:") {
        if name.is_empty() {
            return Err("secret reference \"env:\" names no environment variable".into());
        }
        return match std::env::var_os(name) {
            Some(v) => Ok(Zeroizing::new(std::os::unix::ffi::OsStringExt::into_vec(v))),
            None => Err(format!("environment variable {name} is not set")),
        };
    }
    if let Some(path) = spec.strip_prefix("file:") {
        if path.is_empty() {
            return Err("secret reference \"file:\" names no file".into());
        }
        let mut bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| format!("secret file {path}: cannot read: {e}"))?,
        );
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        return Ok(bytes);
    }
    Ok(Zeroizing::new(spec.as_bytes().to_vec()))
}

/// A secret named in the configuration (`env:NAME`, `file:PATH` or a literal), kept as
/// the reference and resolved only when a backend opens. Never printed.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct SecretRef(String);

impl SecretRef {
    /// A reference as written in a configuration file.
    pub fn new(spec: impl Into<String>) -> SecretRef {
        SecretRef(spec.into())
    }

    /// The secret's bytes (see [`resolve_secret`]).
    pub fn resolve(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        resolve_secret(&self.0)
    }
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A literal is the secret itself; a reference's name is harmless but not needed.
        f.write_str("<secret>")
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_secret;

    #[test]
    fn literal_env_and_file_references() {
        assert_eq!(resolve_secret("1234").unwrap().as_slice(), b"1234");
        // No other test reads or writes this variable.
        std::env::set_var("HSMUX_SECRET_TEST_VAR", "from-env");
        assert_eq!(
            resolve_secret("env:HSMUX_SECRET_TEST_VAR")
                .unwrap()
                .as_slice(),
            b"from-env"
        );
        let err = resolve_secret("env:HSMUX_SECRET_TEST_UNSET").unwrap_err();
        assert!(err.contains("HSMUX_SECRET_TEST_UNSET"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, b"s3cret\n").unwrap();
        let spec = format!("file:{}", p.display());
        assert_eq!(resolve_secret(&spec).unwrap().as_slice(), b"s3cret");
        std::fs::write(&p, b"two\nlines\n\n").unwrap();
        assert_eq!(resolve_secret(&spec).unwrap().as_slice(), b"two\nlines\n");
        let missing = format!("file:{}", dir.path().join("nope").display());
        let err = resolve_secret(&missing).unwrap_err();
        assert!(err.contains("nope"), "{err}");
    }
}
