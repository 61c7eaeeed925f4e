//! SigV4 as the aws-kms backend signs: AWS's published test-suite vectors, and a KMS
//! request signed exactly as botocore's `SigV4Auth` signs it.
#![cfg(feature = "aws-kms")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use hsmux_backends::aws_kms::credentials::Credentials;
use hsmux_backends::aws_kms::sigv4::{sign_kms_request, sign_request, SigningInput};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigv4")
}

/// `Name:value` lines up to the first empty line, and what follows.
fn split_request(text: &str) -> (String, Vec<(String, String)>, String) {
    let mut lines = text.split('\n');
    let request_line = lines.next().unwrap().to_string();
    let mut headers = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.to_string(), v.to_string()));
    }
    let body = lines.collect::<Vec<_>>().join("\n");
    (request_line, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One vector: sign `request.txt` with `context.json` and compare the signature headers
/// with those of `header-signed-request.txt`.
fn check_vector(name: &str) {
    let dir = data_dir().join(name);
    let ctx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap()).unwrap();
    let request = std::fs::read_to_string(dir.join("request.txt")).unwrap();
    let expected = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
    let (line, headers, body) = split_request(&request);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
    let host = header(&headers, "host").unwrap();
    let url = format!("https://{host}{path}");
    let c = &ctx["credentials"];
    let creds = Credentials::new(
        c["access_key_id"].as_str().unwrap(),
        c["secret_access_key"].as_str().unwrap(),
        c["token"].as_str(),
    );
    assert_eq!(ctx["timestamp"], "2015-08-30T12:36:00Z");
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    let added = sign_request(
        &creds,
        &SigningInput {
            method,
            url: &url,
            headers: &headers,
            body: body.as_bytes(),
            region: ctx["region"].as_str().unwrap(),
            service: ctx["service"].as_str().unwrap(),
            time,
            content_sha256_header: ctx["sign_body"].as_bool().unwrap(),
        },
    )
    .unwrap();
    let (_, expected_headers, _) = split_request(&expected);
    for name in [
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    ] {
        assert_eq!(
            header(&added, name),
            header(&expected_headers, name),
            "{}: header {name}",
            dir.display()
        );
    }
    assert!(header(&added, "authorization").is_some());
}

#[test]
fn sigv4_suite_get_vanilla() {
    check_vector("get-vanilla");
}

#[test]
fn sigv4_suite_post_x_www_form_urlencoded() {
    check_vector("post-x-www-form-urlencoded");
}

#[test]
fn sigv4_suite_get_header_key_duplicate() {
    check_vector("get-header-key-duplicate");
}

#[test]
fn sigv4_suite_get_vanilla_with_session_token() {
    check_vector("get-vanilla-with-session-token");
}

#[test]
fn sigv4_suite_get_vanilla_query_order_key_case() {
    check_vector("get-vanilla-query-order-key-case");
}

#[test]
fn sigv4_suite_post_header_key_sort() {
    check_vector("post-header-key-sort");
}

#[test]
fn sigv4_suite_post_vanilla_query() {
    check_vector("post-vanilla-query");
}

#[test]
fn a_wrong_secret_changes_the_signature() {
    let creds = Credentials::new("AKIDEXAMPLE", "not-the-secret", None);
    let headers = vec![("Host".to_string(), "example.amazonaws.com".to_string())];
    let added = sign_request(
        &creds,
        &SigningInput {
            method: "GET",
            url: "https://example.amazonaws.com/",
            headers: &headers,
            body: b"",
            region: "us-east-1",
            service: "service",
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160),
            content_sha256_header: false,
        },
    )
    .unwrap();
    assert!(!header(&added, "authorization")
        .unwrap()
        .ends_with("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

/// A Python with botocore: the LocalStack venv's when the environment names it, else
/// `python3` (botocore is installed with pip when missing).
fn python_with_botocore() -> String {
    let has = |py: &str| {
        Command::new(py)
            .args(["-c", "import botocore.auth"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Ok(py) = std::env::var("HSMUX_TEST_KMS_PYTHON") {
        if has(&py) {
            return py;
        }
    }
    if !has("python3") {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "botocore"])
            .status();
    }
    assert!(
        has("python3"),
        "botocore is needed to cross-check SigV4: `python3 -m pip install botocore` failed"
    );
    "python3".into()
}

const BOTOCORE_SIGN: &str = r#"
import base64, datetime, json, sys
from unittest import mock
import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

a = json.load(sys.stdin)
now = datetime.datetime.fromtimestamp(a["time"], tz=datetime.timezone.utc)
req = AWSRequest(method="POST", url=a["url"], data=base64.b64decode(a["body"]),
                 headers={"Content-Type": "application/x-amz-json-1.1",
                          "X-Amz-Target": "TrentService." + a["operation"]})
auth = SigV4Auth(Credentials(a["access"], a["secret"], a.get("token")), "kms", a["region"])
if hasattr(botocore.auth, "get_current_datetime"):
    patch = mock.patch("botocore.auth.get_current_datetime", return_value=now)
else:
    patch = mock.patch("botocore.auth.datetime")
with patch as p:
    if not hasattr(botocore.auth, "get_current_datetime"):
        p.datetime.utcnow.return_value = now.replace(tzinfo=None)
    auth.add_auth(req)
print(json.dumps({k.lower(): v for k, v in req.headers.items()}))
"#;

fn botocore_headers(
    py: &str,
    url: &str,
    region: &str,
    operation: &str,
    body: &[u8],
    creds: (&str, &str, Option<&str>),
    time: u64,
) -> serde_json::Value {
    use base64::Engine as _;
    let input = serde_json::json!({
        "url": url, "region": region, "operation": operation,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "access": creds.0, "secret": creds.1, "token": creds.2, "time": time,
    });
    let mut child = Command::new(py)
        .args(["-c", BOTOCORE_SIGN])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "botocore signing failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn kms_requests_are_signed_as_botocore_signs_them() {
    let py = python_with_botocore();
    let time = 1_767_323_045; // 2026-01-02T03:04:05Z
    let body = br#"{"KeyId":"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","Message":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","MessageType":"DIGEST","SigningAlgorithm":"ECDSA_SHA_256"}"#;
    let cases: [(&str, &str, &str, Option<&str>); 3] = [
        (
            "https://kms.eu-west-1.amazonaws.com/",
            "eu-west-1",
            "Sign",
            None,
        ),
        (
            "http://127.0.0.1:4566/",
            "us-east-1",
            "Sign",
            Some("FwoGZXIvYXdzEXAMPLETOKEN/+="),
        ),
        (
            "https://kms.us-east-1.amazonaws.com/",
            "us-east-1",
            "ListKeys",
            None,
        ),
    ];
    for (url, region, op, token) in cases {
        let (ak, sk) = (
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        let ours = sign_kms_request(
            &Credentials::new(ak, sk, token),
            url,
            region,
            op,
            body,
            SystemTime::UNIX_EPOCH + Duration::from_secs(time),
        )
        .unwrap();
        let theirs = botocore_headers(&py, url, region, op, body, (ak, sk, token), time);
        let auth = header(&ours, "authorization").unwrap();
        assert!(auth.contains("/kms/aws4_request"), "{auth}");
        assert_eq!(Some(auth), theirs["authorization"].as_str(), "{url} {op}");
        assert_eq!(
            header(&ours, "x-amz-date"),
            theirs["x-amz-date"].as_str(),
            "{url}"
        );
        assert_eq!(
            header(&ours, "x-amz-security-token"),
            theirs["x-amz-security-token"].as_str()
        );
        assert_eq!(
            header(&ours, "x-amz-target"),
            theirs["x-amz-target"].as_str()
        );
    }
}
