//! The AWS credential chain of the aws-kms backend: environment, shared files with
//! profiles, credential_process, and IMDSv2 against a fake metadata server on 127.0.0.1.
//! The chain is given its environment as a map, so these tests never touch (or race
//! on) the process environment.
#![cfg(feature = "aws-kms")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hsmux_backends::aws_kms::credentials::{resolve, Credentials};
use hsmux_backends::BackendError;

fn chain(vars: &[(&str, String)], profile: Option<&str>) -> Result<Credentials, BackendError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let env = move |k: &str| map.get(k).cloned();
    resolve(&env, profile)
}

/// A HOME with no ~/.aws and instance metadata off: nothing to find.
fn empty_home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn base_vars(home: &tempfile::TempDir) -> Vec<(&'static str, String)> {
    vec![
        ("HOME", home.path().display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

#[test]
fn environment_variables_come_first() {
    let home = empty_home();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = s\n",
    )
    .unwrap();
    let mut vars = base_vars(&home);
    vars.push(("AWS_ACCESS_KEY_ID", "AKIAENV".into()));
    vars.push(("AWS_SECRET_ACCESS_KEY", "envsecret".into()));
    vars.push(("AWS_SESSION_TOKEN", "envtoken".into()));
    let c = chain(&vars, None).unwrap();
    assert_eq!(c.access_key_id, "AKIAENV");
    assert_eq!(c.secret_access_key.as_str(), "envsecret");
    assert_eq!(
        c.session_token.as_deref().map(String::as_str),
        Some("envtoken")
    );
    assert_eq!(c.source, "environment");
    // The secret never shows in Debug output.
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("envsecret") && !dbg.contains("envtoken"),
        "{dbg}"
    );
}

#[test]
fn half_set_environment_is_an_error() {
    let home = empty_home();
    let mut vars = base_vars(&home);
    vars.push(("AWS_ACCESS_KEY_ID", "AKIAENV".into()));
    assert!(matches!(chain(&vars, None), Err(BackendError::Auth(_))));
}

#[test]
fn shared_files_and_profiles() {
    let home = empty_home();
    let dir = home.path().join("aws");
    std::fs::create_dir_all(&dir).unwrap();
    let creds = dir.join("creds");
    let config = dir.join("conf");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\n\
         [work]\naws_access_key_id = AKIAWORK\naws_secret_access_key = w\naws_session_token = wt\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        "[profile cfgonly]\nregion = eu-west-3\naws_access_key_id = AKIACFG\n\
         aws_secret_access_key = c\n\n[profile assumed]\nrole_arn = arn:aws:iam::1:role/r\n\
         source_profile = default\n",
    )
    .unwrap();
    let mut vars = base_vars(&home);
    vars.push(("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()));
    vars.push(("AWS_CONFIG_FILE", config.display().to_string()));

    assert_eq!(chain(&vars, None).unwrap().access_key_id, "AKIADEFAULT");
    let work = chain(&vars, Some("work")).unwrap();
    assert_eq!(work.access_key_id, "AKIAWORK");
    assert_eq!(
        work.session_token.as_deref().map(String::as_str),
        Some("wt")
    );
    assert_eq!(work.source, "profile work");
    assert_eq!(
        chain(&vars, Some("cfgonly")).unwrap().access_key_id,
        "AKIACFG"
    );
    // AWS_PROFILE picks the profile when the token names none.
    let mut with_profile = vars.clone();
    with_profile.push(("AWS_PROFILE", "work".into()));
    assert_eq!(
        chain(&with_profile, None).unwrap().access_key_id,
        "AKIAWORK"
    );
    // An explicit profile is used alone: environment keys do not override it.
    with_profile.push(("AWS_ACCESS_KEY_ID", "AKIAENV".into()));
    with_profile.push(("AWS_SECRET_ACCESS_KEY", "e".into()));
    assert_eq!(
        chain(&with_profile, Some("cfgonly")).unwrap().access_key_id,
        "AKIACFG"
    );
    // Unknown profile, and a role profile hsmux does not assume itself: clear errors.
    match chain(&vars, Some("nope")) {
        Err(BackendError::Auth(m)) => assert!(m.contains("'nope'"), "{m}"),
        other => panic!("{other:?}"),
    }
    match chain(&vars, Some("assumed")) {
        Err(BackendError::Auth(m)) => assert!(m.contains("role_arn"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The default files under HOME are read when no variable names them.
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::copy(&creds, home.path().join(".aws/credentials")).unwrap();
    assert_eq!(
        chain(&base_vars(&home), Some("work"))
            .unwrap()
            .access_key_id,
        "AKIAWORK"
    );
}

#[test]
fn credential_process_profiles() {
    let home = empty_home();
    let config = home.path().join("config");
    std::fs::write(
        &config,
        "[profile proc]\ncredential_process = printf '%s' '{\"Version\": 1, \
         \"AccessKeyId\": \"ASIAPROC\", \"SecretAccessKey\": \"ps\", \"SessionToken\": \"pt\", \
         \"Expiration\": \"2099-01-01T00:00:00Z\"}'\n\n[profile broken]\ncredential_process = false\n",
    )
    .unwrap();
    let mut vars = base_vars(&home);
    vars.push(("AWS_CONFIG_FILE", config.display().to_string()));
    let c = chain(&vars, Some("proc")).unwrap();
    assert_eq!(c.access_key_id, "ASIAPROC");
    assert_eq!(c.session_token.as_deref().map(String::as_str), Some("pt"));
    assert!(c.expires.is_some() && c.is_fresh(SystemTime::now()));
    assert!(matches!(
        chain(&vars, Some("broken")),
        Err(BackendError::Auth(_))
    ));
}

/// A fake IMDSv2: a token must be fetched with PUT (TTL header required) and then sent
/// with every GET, as on EC2. Counts the requests it served.
struct FakeImds {
    url: String,
    served: Arc<AtomicUsize>,
    token_puts: Arc<AtomicUsize>,
}

fn fake_imds(expiration: &'static str) -> FakeImds {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let token_puts = Arc::new(AtomicUsize::new(0));
    let (s, p) = (served.clone(), token_puts.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (s, p) = (s.clone(), p.clone());
            std::thread::spawn(move || serve_imds(conn, expiration, &s, &p));
        }
    });
    FakeImds {
        url,
        served,
        token_puts,
    }
}

fn serve_imds(conn: TcpStream, expiration: &str, served: &AtomicUsize, puts: &AtomicUsize) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok();
        served.fetch_add(1, Ordering::SeqCst);
        let token_ok =
            headers.get("x-aws-ec2-metadata-token").map(String::as_str) == Some("tok-42");
        let (status, answer) = match (method.as_str(), path.as_str()) {
            ("PUT", "/latest/api/token")
                if headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") =>
            {
                puts.fetch_add(1, Ordering::SeqCst);
                ("200 OK", "tok-42".to_string())
            }
            ("PUT", _) => ("400 Bad Request", String::new()),
            (_, _) if !token_ok => ("401 Unauthorized", String::new()),
            ("GET", "/latest/meta-data/iam/security-credentials/") => {
                ("200 OK", "hsmux-role\n".to_string())
            }
            ("GET", "/latest/meta-data/iam/security-credentials/hsmux-role") => (
                "200 OK",
                format!(
                    "{{\"Code\": \"Success\", \"LastUpdated\": \"2026-01-01T00:00:00Z\", \
                     \"Type\": \"AWS-HMAC\", \"AccessKeyId\": \"ASIAIMDS\", \
                     \"SecretAccessKey\": \"imds-secret\", \"Token\": \"imds-token\", \
                     \"Expiration\": \"{expiration}\"}}"
                ),
            ),
            _ => ("404 Not Found", String::new()),
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{answer}",
            answer.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn instance_metadata_v2_token_then_role_credentials() {
    let imds = fake_imds("2099-01-01T00:00:00Z");
    let home = empty_home();
    let vars = vec![
        ("HOME", home.path().display().to_string()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
    ];
    let c = chain(&vars, None).unwrap();
    assert_eq!(c.access_key_id, "ASIAIMDS");
    assert_eq!(c.secret_access_key.as_str(), "imds-secret");
    assert_eq!(
        c.session_token.as_deref().map(String::as_str),
        Some("imds-token")
    );
    assert!(c.source.contains("hsmux-role"), "{}", c.source);
    let expires = c.expires.expect("IMDS credentials expire");
    assert_eq!(
        expires
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        4_070_908_800
    );
    // Token PUT, role GET, credentials GET.
    assert_eq!(imds.token_puts.load(Ordering::SeqCst), 1);
    assert_eq!(imds.served.load(Ordering::SeqCst), 3);
}

#[test]
fn instance_metadata_credentials_about_to_expire_are_stale() {
    let imds = fake_imds("2020-01-01T00:00:00Z");
    let home = empty_home();
    let vars = vec![
        ("HOME", home.path().display().to_string()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
    ];
    let c = chain(&vars, None).unwrap();
    assert!(!c.is_fresh(SystemTime::now()));
}

#[test]
fn no_credentials_anywhere_fails_fast_with_auth() {
    // A port nothing listens on stands for "not on EC2".
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let home = empty_home();
    let vars = vec![
        ("HOME", home.path().display().to_string()),
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://{closed}"),
        ),
    ];
    let start = Instant::now();
    match chain(&vars, None) {
        Err(BackendError::Auth(m)) => {
            assert!(
                m.contains("AWS_ACCESS_KEY_ID") && m.contains("instance metadata"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    // Disabled metadata: not even tried.
    let mut off = vars.clone();
    off.push(("AWS_EC2_METADATA_DISABLED", "true".into()));
    match chain(&off, None) {
        Err(BackendError::Auth(m)) => assert!(m.contains("disabled"), "{m}"),
        other => panic!("{other:?}"),
    }
}
