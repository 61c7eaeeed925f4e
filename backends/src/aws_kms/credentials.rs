//! AWS credentials from the standard chain: environment, shared files with profiles
//! (`credential_process` included), then EC2 instance metadata (IMDSv2).
//!
//! The chain reads its environment through a function so that tests can give it one
//! without touching the process environment (which other tests share).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use crate::backend::{BackendError, BackendResult};

/// One set of AWS credentials. Secrets are zeroized on drop and never printed.
#[derive(Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Zeroizing<String>,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
    /// When temporary credentials stop working.
    pub expires: Option<SystemTime>,
    /// Where they came from (`environment`, `profile NAME`, `instance metadata`, …).
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires", &self.expires)
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// Static credentials (tests, explicit configuration).
    pub fn new(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>) -> Self {
        Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: Zeroizing::new(secret_access_key.to_string()),
            session_token: session_token.map(|t| Zeroizing::new(t.to_string())),
            expires: None,
            source: "static".into(),
        }
    }

    /// Still usable for a while (five minutes of margin, as the AWS SDKs keep).
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        match self.expires {
            None => true,
            Some(t) => now + Duration::from_secs(300) < t,
        }
    }
}

/// Reads an environment variable (`std::env::var` in production).
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, with empty values treated as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Resolves credentials through the standard chain. With an explicit `profile` (from the
/// token's configuration) only that profile is used, as the AWS SDKs do; otherwise the
/// environment variables, then the profile named by `AWS_PROFILE` (or `default`), then
/// the instance metadata service.
pub fn resolve(env: EnvFn<'_>, profile: Option<&str>) -> BackendResult<Credentials> {
    if let Some(p) = profile {
        return match from_profile(env, p)? {
            Some(c) => Ok(c),
            None => Err(BackendError::Auth(format!(
                "AWS profile '{p}' has no credentials in {} or {}",
                credentials_file(env).display(),
                config_file(env).display()
            ))),
        };
    }
    if let Some(c) = from_env(env)? {
        return Ok(c);
    }
    let p = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    if let Some(c) = from_profile(env, &p)? {
        return Ok(c);
    }
    let imds_off = env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !imds_off {
        match from_imds(env) {
            Ok(c) => return Ok(c),
            Err(e) => {
                return Err(BackendError::Auth(format!(
                    "no AWS credentials: none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, none \
                     for profile '{p}' in {} or {}, and instance metadata: {e}",
                    credentials_file(env).display(),
                    config_file(env).display()
                )))
            }
        }
    }
    Err(BackendError::Auth(format!(
        "no AWS credentials: none in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, none for \
         profile '{p}' in {} or {} (instance metadata disabled)",
        credentials_file(env).display(),
        config_file(env).display()
    )))
}

fn from_env(env: EnvFn<'_>) -> BackendResult<Option<Credentials>> {
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id,
            secret_access_key: Zeroizing::new(secret),
            session_token: env("AWS_SESSION_TOKEN").map(Zeroizing::new),
            expires: None,
            source: "environment".into(),
        })),
        (Some(_), None) => Err(BackendError::Auth(
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
        )),
        _ => Ok(None),
    }
}

fn home(env: EnvFn<'_>) -> PathBuf {
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn expand(env: EnvFn<'_>, p: String) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home(env).join(rest),
        None => PathBuf::from(p),
    }
}

/// The shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`).
pub fn credentials_file(env: EnvFn<'_>) -> PathBuf {
    env("AWS_SHARED_CREDENTIALS_FILE")
        .map(|p| expand(env, p))
        .unwrap_or_else(|| home(env).join(".aws/credentials"))
}

/// The shared config file (`AWS_CONFIG_FILE`, else `~/.aws/config`).
pub fn config_file(env: EnvFn<'_>) -> PathBuf {
    env("AWS_CONFIG_FILE")
        .map(|p| expand(env, p))
        .unwrap_or_else(|| home(env).join(".aws/config"))
}

/// Sections of an AWS INI file: name → (key → value). Comments (`#`, `;`) and blank
/// lines are skipped; keys are case-insensitive as in the AWS CLI.
fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

fn read_ini(path: &PathBuf) -> HashMap<String, HashMap<String, String>> {
    std::fs::read_to_string(path)
        .map(|t| parse_ini(&t))
        .unwrap_or_default()
}

/// The profile's section of the config file (`[profile NAME]`, or `[default]`).
fn config_section(env: EnvFn<'_>, profile: &str) -> Option<HashMap<String, String>> {
    let mut config = read_ini(&config_file(env));
    config.remove(&format!("profile {profile}")).or_else(|| {
        if profile == "default" {
            config.remove("default")
        } else {
            None
        }
    })
}

/// The region a profile names in the config file, for tokens that leave `region` empty.
pub fn profile_region(env: EnvFn<'_>, profile: &str) -> Option<String> {
    config_section(env, profile)?
        .remove("region")
        .filter(|r| !r.is_empty())
}

fn from_profile(env: EnvFn<'_>, profile: &str) -> BackendResult<Option<Credentials>> {
    let mut creds = read_ini(&credentials_file(env));
    let from_creds = creds.remove(profile);
    let from_config = config_section(env, profile);
    for section in [&from_creds, &from_config].into_iter().flatten() {
        if let (Some(id), Some(secret)) = (
            section.get("aws_access_key_id"),
            section.get("aws_secret_access_key"),
        ) {
            return Ok(Some(Credentials {
                access_key_id: id.clone(),
                secret_access_key: Zeroizing::new(secret.clone()),
                session_token: section
                    .get("aws_session_token")
                    .map(|t| Zeroizing::new(t.clone())),
                expires: None,
                source: format!("profile {profile}"),
            }));
        }
    }
    for section in [&from_creds, &from_config].into_iter().flatten() {
        if let Some(cmd) = section.get("credential_process") {
            return credential_process(cmd, profile).map(Some);
        }
    }
    for section in [&from_creds, &from_config].into_iter().flatten() {
        if let Some(k) = [
            "role_arn",
            "sso_session",
            "sso_start_url",
            "web_identity_token_file",
        ]
        .into_iter()
        .find(|k| section.contains_key(*k))
        {
            return Err(BackendError::Auth(format!(
                "AWS profile '{profile}' uses {k}, which hsmux does not resolve itself; give \
                 the profile a credential_process (e.g. `aws configure export-credentials \
                 --profile {profile} --format process`) or static keys"
            )));
        }
    }
    Ok(None)
}

/// Runs a profile's `credential_process` and parses its JSON (version 1).
fn credential_process(cmd: &str, profile: &str) -> BackendResult<Credentials> {
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| BackendError::Auth(format!("profile '{profile}': credential_process: {e}")))?;
    if !out.status.success() {
        return Err(BackendError::Auth(format!(
            "profile '{profile}': credential_process exited with {}",
            out.status
        )));
    }
    let stdout = Zeroizing::new(out.stdout);
    parse_credentials_json(
        &stdout,
        "SessionToken",
        &format!("profile {profile} (credential_process)"),
    )
}

/// Parses `{AccessKeyId, SecretAccessKey, <token_field>, Expiration}` as returned by
/// `credential_process` and by the instance metadata service.
fn parse_credentials_json(
    body: &[u8],
    token_field: &str,
    source: &str,
) -> BackendResult<Credentials> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| BackendError::Auth(format!("{source}: credentials are not JSON: {e}")))?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let (Some(id), Some(secret)) = (field("AccessKeyId"), field("SecretAccessKey")) else {
        return Err(BackendError::Auth(format!(
            "{source}: no AccessKeyId/SecretAccessKey in the answer"
        )));
    };
    let expires =
        match field("Expiration") {
            Some(t) => Some(parse_rfc3339(&t).ok_or_else(|| {
                BackendError::Auth(format!("{source}: unreadable Expiration '{t}'"))
            })?),
            None => None,
        };
    Ok(Credentials {
        access_key_id: id,
        secret_access_key: Zeroizing::new(secret),
        session_token: field(token_field).map(Zeroizing::new),
        expires,
        source: source.into(),
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` → time.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let oh: i64 = r.get(1..3)?.parse().ok()?;
            let om: i64 = r.get(4..6)?.parse().ok()?;
            let o = oh * 3600 + om * 60;
            if r.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days since 1970-01-01 (Howard Hinnant's civil-from-days inverse).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

/// How long one instance-metadata call may take: the service is link-local and answers
/// at once when present, and off EC2 nothing answers at all.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// Credentials of the instance's role from IMDSv2: a session token by PUT, then the
/// role name and its credentials by GET with that token.
fn from_imds(env: EnvFn<'_>) -> BackendResult<Credentials> {
    let base =
        env("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| "http://169.254.169.254".into());
    let base = base.trim_end_matches('/');
    let agent = ureq::AgentBuilder::new()
        .timeout(IMDS_TIMEOUT)
        .redirects(0)
        .build();
    let unavailable = |what: &str, e: ureq::Error| {
        BackendError::Unavailable(format!("instance metadata at {base}: {what}: {e}"))
    };
    let token = Zeroizing::new(
        agent
            .put(&format!("{base}/latest/api/token"))
            .set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
            .call()
            .map_err(|e| unavailable("token", e))?
            .into_string()
            .map_err(|e| BackendError::Unavailable(format!("instance metadata token: {e}")))?,
    );
    let roles_url = format!("{base}/latest/meta-data/iam/security-credentials/");
    let roles = agent
        .get(&roles_url)
        .set("X-aws-ec2-metadata-token", &token)
        .call()
        .map_err(|e| unavailable("role name", e))?
        .into_string()
        .map_err(|e| BackendError::Unavailable(format!("instance metadata role: {e}")))?;
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| {
            BackendError::Auth("instance metadata: the instance has no IAM role".into())
        })?
        .to_string();
    let mut body = Vec::new();
    use std::io::Read;
    agent
        .get(&format!("{roles_url}{role}"))
        .set("X-aws-ec2-metadata-token", &token)
        .call()
        .map_err(|e| unavailable("role credentials", e))?
        .into_reader()
        .take(64 * 1024)
        .read_to_end(&mut body)
        .map_err(|e| BackendError::Unavailable(format!("instance metadata credentials: {e}")))?;
    let body = Zeroizing::new(body);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(code) = v.get("Code").and_then(|c| c.as_str()) {
            if code != "Success" {
                return Err(BackendError::Auth(format!(
                    "instance metadata: credentials of role '{role}': {code}"
                )));
            }
        }
    }
    parse_credentials_json(&body, "Token", &format!("instance metadata (role {role})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        let t = parse_rfc3339("2015-08-30T12:36:00Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_440_938_160
        );
        let t2 = parse_rfc3339("2015-08-30T14:36:00.123+02:00").unwrap();
        assert_eq!(t, t2);
        assert!(parse_rfc3339("2015-08-30 12:36").is_none());
    }

    #[test]
    fn ini_sections_and_comments() {
        let ini = parse_ini(
            "# c\n[default]\naws_access_key_id = A\n\n[profile  x]\nRegion=eu-west-1\n; c\n",
        );
        assert_eq!(ini["default"]["aws_access_key_id"], "A");
        assert_eq!(ini["profile x"]["region"], "eu-west-1");
    }
}
