#![cfg(feature = "aws-kms")]
//! The aws-kms backend against LocalStack playing AWS KMS on 127.0.0.1.
//!
//! Needs `HSMUX_TEST_KMS_ENDPOINT` (and `HSMUX_TEST_KMS_PYTHON`, a Python with boto3):
//!     eval "$(scripts/localstack.sh start && scripts/localstack.sh env)"
//! Without them these tests fail rather than pass vacuously.
//!
//! LocalStack does not check request signatures, so some tests go through a loopback
//! gateway that does what AWS's front door does (checks the access key and the SigV4
//! signature, answering `UnrecognizedClientException` / `InvalidSignatureException`)
//! and counts requests, before forwarding to LocalStack.
#![cfg(feature = "aws-kms")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hsmux_backends::aws_kms::credentials::Credentials;
use hsmux_backends::aws_kms::sigv4::sign_kms_request;
use hsmux_backends::{
    AwsKmsBackend, AwsKmsSettings, Backend, BackendError, CipherRequest, HashAlg, KeyKind, KeySpec,
    KeyUsage, ObjectClass, RemoteObject, SignRequest,
};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};

/// Every test here needs LocalStack: `scripts/test.sh` skips them by this module's name
/// (`--skip localstack::`) when LocalStack cannot start outside CI, instead of letting
/// each fail.
mod localstack {
    use super::*;

    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
    const K256: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

    fn endpoint() -> String {
        match std::env::var("HSMUX_TEST_KMS_ENDPOINT") {
            Ok(e) if !e.is_empty() => e,
            _ => panic!(
                "HSMUX_TEST_KMS_ENDPOINT is not set: these tests need LocalStack. Run\n    \
             eval \"$(scripts/localstack.sh start && scripts/localstack.sh env)\"\n\
             and then cargo test again"
            ),
        }
    }

    fn python() -> String {
        match std::env::var("HSMUX_TEST_KMS_PYTHON") {
            Ok(p) if !p.is_empty() => p,
            _ => panic!(
                "HSMUX_TEST_KMS_PYTHON is not set (a Python with boto3): run\n    \
             eval \"$(scripts/localstack.sh start && scripts/localstack.sh env)\""
            ),
        }
    }

    fn settings(url: &str) -> AwsKmsSettings {
        AwsKmsSettings {
            region: "us-east-1".into(),
            endpoint: Some(url.to_string()),
            timeout_ms: 20_000,
            ..Default::default()
        }
    }

    fn test_creds() -> Credentials {
        Credentials::new("test", "test", None)
    }

    fn backend_with(s: AwsKmsSettings) -> AwsKmsBackend {
        AwsKmsBackend::open_with_credentials(s, test_creds()).unwrap()
    }

    fn backend() -> AwsKmsBackend {
        backend_with(settings(&endpoint()))
    }

    /// A name no other test (or earlier run against the same LocalStack) uses.
    fn unique(prefix: &str) -> String {
        let mut r = [0u8; 6];
        openssl::rand::rand_bytes(&mut r).unwrap();
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        format!("hsmux-test/{prefix}-{hex}")
    }

    /// Runs a boto3 script (with `kms` a client of LocalStack); returns the JSON it prints.
    fn boto3(script: &str) -> serde_json::Value {
        let prelude = "import base64, json, os, sys, boto3\n\
        kms = boto3.client('kms', endpoint_url=os.environ['HSMUX_TEST_KMS_ENDPOINT'], \
        region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
        def aliases():\n    \
        return [a for p in kms.get_paginator('list_aliases').paginate() for a in p['Aliases']]\n\
        def out(x):\n    print(json.dumps(x, default=str))\n";
        let out = Command::new(python())
            .args(["-c", &format!("{prelude}{script}")])
            .env("HSMUX_TEST_KMS_ENDPOINT", endpoint())
            .stderr(Stdio::inherit())
            .output()
            .expect("running the boto3 helper");
        assert!(out.status.success(), "boto3 script failed: {script}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "boto3 output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn spec(kind: KeyKind, label: &str, usage: KeyUsage) -> KeySpec {
        KeySpec {
            kind,
            label: label.to_string(),
            id: Vec::new(),
            usage,
            extra: (Vec::new(), Vec::new()),
        }
    }

    fn signing() -> KeyUsage {
        KeyUsage {
            sign: true,
            verify: true,
            ..Default::default()
        }
    }

    fn decrypting() -> KeyUsage {
        KeyUsage {
            decrypt: true,
            encrypt: true,
            ..Default::default()
        }
    }

    fn private_of(objs: &[RemoteObject]) -> &RemoteObject {
        objs.iter()
            .find(|o| o.class == ObjectClass::PrivateKey)
            .expect("a private-key object")
    }

    fn public_key(obj: &RemoteObject) -> PKey<Public> {
        PKey::public_key_from_der(obj.public_key_der.as_ref().expect("SPKI")).unwrap()
    }

    fn verify_ecdsa(key: &PKey<Public>, digest: &[u8], raw: &[u8]) -> bool {
        let n = raw.len() / 2;
        let sig = EcdsaSig::from_private_components(
            BigNum::from_slice(&raw[..n]).unwrap(),
            BigNum::from_slice(&raw[n..]).unwrap(),
        )
        .unwrap();
        sig.verify(digest, &key.ec_key().unwrap()).unwrap()
    }

    fn digest_info(h: HashAlg, digest: &[u8]) -> Vec<u8> {
        let prefix: &[u8] = match h {
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
            _ => unreachable!(),
        };
        [prefix, digest].concat()
    }

    fn md(h: HashAlg) -> MessageDigest {
        match h {
            HashAlg::Sha1 => MessageDigest::sha1(),
            HashAlg::Sha256 => MessageDigest::sha256(),
            HashAlg::Sha384 => MessageDigest::sha384(),
            HashAlg::Sha512 => MessageDigest::sha512(),
            HashAlg::Sha224 => MessageDigest::sha224(),
        }
    }

    // ---------------------------------------------------------------------------------------
    // The gateway: AWS's signature check in front of LocalStack, and a request counter.

    struct Gateway {
        url: String,
        requests: Arc<AtomicUsize>,
        operations: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
        max_in_flight: Arc<AtomicUsize>,
    }

    impl Gateway {
        fn count(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    struct GatewayState {
        upstream: String,
        access_key: String,
        secret: String,
        delay: Duration,
        /// This many requests are answered with an AWS throttling / server error first.
        refusals: Mutex<Vec<(u16, &'static str)>>,
        requests: Arc<AtomicUsize>,
        operations: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
        in_flight: AtomicUsize,
        max_in_flight: Arc<AtomicUsize>,
    }

    /// Starts a gateway that accepts only (`access_key`, `secret`) and holds each request
    /// `delay` before forwarding it to LocalStack.
    fn gateway(access_key: &str, secret: &str, delay: Duration) -> Gateway {
        gateway_refusing(access_key, secret, delay, Vec::new())
    }

    /// A gateway that first answers with `refusals` (HTTP status, AWS error code), in order.
    fn gateway_refusing(
        access_key: &str,
        secret: &str,
        delay: Duration,
        refusals: Vec<(u16, &'static str)>,
    ) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let upstream = endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let operations = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(GatewayState {
            upstream,
            access_key: access_key.into(),
            secret: secret.into(),
            delay,
            requests: requests.clone(),
            operations: operations.clone(),
            in_flight: AtomicUsize::new(0),
            refusals: Mutex::new(refusals),
            max_in_flight: max_in_flight.clone(),
        });
        let own_url = url.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (state, own_url) = (state.clone(), own_url.clone());
                std::thread::spawn(move || serve(conn, &state, &own_url));
            }
        });
        Gateway {
            url,
            requests,
            operations,
            max_in_flight,
        }
    }

    /// `YYYYMMDDTHHMMSSZ` → time.
    fn amz_date(s: &str) -> Option<SystemTime> {
        let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
        let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
        let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
        let y2 = if m <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
        let secs = u64::try_from(days * 86400 + hh * 3600 + mm * 60 + ss).ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn aws_error(code: &str, message: &str, request_id: &str) -> Vec<u8> {
        let body = format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}");
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
         x-amzn-RequestId: {request_id}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// AWS's verdict on a request's credentials and signature; `None` when it passes.
    fn check_signature(
        state: &GatewayState,
        own_url: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        request_id: &str,
    ) -> Option<Vec<u8>> {
        let auth = headers.get("authorization").cloned().unwrap_or_default();
        let scope = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split(',').next())
            .unwrap_or("");
        let mut parts = scope.split('/');
        let access_key = parts.next().unwrap_or("");
        let region = parts.nth(1).unwrap_or("");
        if access_key != state.access_key {
            return Some(aws_error(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                request_id,
            ));
        }
        let op = headers
            .get("x-amz-target")
            .and_then(|t| t.strip_prefix("TrentService."))
            .unwrap_or("");
        let time = headers.get("x-amz-date").and_then(|d| amz_date(d));
        let token = headers.get("x-amz-security-token").map(String::as_str);
        let expected = time.and_then(|t| {
            let creds = Credentials::new(access_key, &state.secret, token);
            let h = sign_kms_request(&creds, own_url, region, op, body, t).ok()?;
            h.into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v)
        });
        if expected.as_deref() != Some(auth.as_str()) {
            return Some(aws_error(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
                request_id,
            ));
        }
        None
    }

    fn serve(conn: TcpStream, state: &GatewayState, own_url: &str) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut conn = conn;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut raw_headers = Vec::new();
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                let line = h.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                raw_headers.push(line);
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
            let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_in_flight.fetch_max(now, Ordering::SeqCst);
            state.operations.lock().unwrap().push((
                headers
                    .get("x-amz-target")
                    .cloned()
                    .unwrap_or_default()
                    .replace("TrentService.", ""),
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            ));
            std::thread::sleep(state.delay);
            let request_id = format!("gateway-{n}");
            let refusal = {
                let mut r = state.refusals.lock().unwrap();
                (!r.is_empty()).then(|| r.remove(0))
            };
            let answer = if let Some((status, code)) = refusal {
                let body = format!("{{\"__type\":\"{code}\",\"message\":\"try again\"}}");
                format!(
                    "HTTP/1.1 {status} Refused\r\nContent-Type: application/x-amz-json-1.1\r\n\
                 x-amzn-RequestId: {request_id}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            } else {
                match check_signature(state, own_url, &headers, &body, &request_id) {
                    Some(refusal) => refusal,
                    None => forward(state, &request_line, &raw_headers, &body),
                }
            };
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            if conn.write_all(&answer).is_err() {
                return;
            }
        }
    }

    /// Sends the request to LocalStack on a fresh connection and returns its answer,
    /// re-framed with a Content-Length so the client's connection stays alive.
    fn forward(
        state: &GatewayState,
        request_line: &str,
        raw_headers: &[String],
        body: &[u8],
    ) -> Vec<u8> {
        let mut up = TcpStream::connect(&state.upstream).unwrap();
        let mut req = request_line.as_bytes().to_vec();
        for h in raw_headers {
            if !h.to_ascii_lowercase().starts_with("connection:") {
                req.extend_from_slice(h.as_bytes());
                req.extend_from_slice(b"\r\n");
            }
        }
        req.extend_from_slice(b"Connection: close\r\n\r\n");
        req.extend_from_slice(body);
        up.write_all(&req).unwrap();
        let mut resp = Vec::new();
        up.read_to_end(&mut resp).unwrap();
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        let head = String::from_utf8_lossy(&resp[..split]).to_string();
        let mut payload = resp[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().to_string();
        let mut out = format!("{status}\r\n");
        let mut chunked = false;
        for l in lines {
            let lower = l.to_ascii_lowercase();
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
                continue;
            }
            if lower.starts_with("connection:") || lower.starts_with("content-length:") {
                continue;
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
        if chunked {
            payload = dechunk(&payload);
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
        let mut bytes = out.into_bytes();
        bytes.extend(payload);
        bytes
    }

    fn dechunk(mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
                return out;
            };
            let size_str = String::from_utf8_lossy(&data[..eol]);
            let size =
                usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                return out;
            }
            out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
            data = &data[eol + 2 + size + 2..];
        }
    }

    // ---------------------------------------------------------------------------------------

    #[test]
    fn keys_made_by_boto3_and_by_the_backend_are_listed() {
        let b = backend();
        let ec_alias = unique("boto-ec");
        let hmac_alias = unique("boto-hmac");
        let made = boto3(&format!(
            "ec = kms.create_key(KeySpec='ECC_NIST_P256', KeyUsage='SIGN_VERIFY')['KeyMetadata']\n\
         kms.create_alias(AliasName='alias/{ec_alias}', TargetKeyId=ec['KeyId'])\n\
         hm = kms.create_key(KeySpec='HMAC_384', KeyUsage='GENERATE_VERIFY_MAC')['KeyMetadata']\n\
         kms.create_alias(AliasName='alias/{hmac_alias}', TargetKeyId=hm['KeyId'])\n\
         sym = kms.create_key()['KeyMetadata']\n\
         off = kms.create_key(KeySpec='ECC_NIST_P256', KeyUsage='SIGN_VERIFY')['KeyMetadata']\n\
         kms.disable_key(KeyId=off['KeyId'])\n\
         pub = kms.get_public_key(KeyId=ec['KeyId'])['PublicKey']\n\
         out({{'ec': ec['Arn'], 'ec_id': ec['KeyId'], 'hmac': hm['Arn'], \
         'sym': sym['Arn'], 'sym_id': sym['KeyId'], 'off': off['Arn'], \
         'pub': base64.b64encode(pub).decode()}})"
        ));
        let gen_label = unique("gen-p384");
        let generated = b
            .generate(&spec(
                KeyKind::Ec {
                    params: P384.to_vec(),
                },
                &gen_label,
                signing(),
            ))
            .unwrap();

        let objects = b.list().unwrap();
        let of = |arn: &str| -> Vec<&RemoteObject> {
            objects.iter().filter(|o| o.key_ref == arn).collect()
        };
        // boto3's EC key: a private and a public object with one CKA_ID and the alias as label.
        let ec = of(made["ec"].as_str().unwrap());
        assert_eq!(ec.len(), 2, "{ec:?}");
        let classes: Vec<_> = ec.iter().map(|o| o.class).collect();
        assert!(
            classes.contains(&ObjectClass::PrivateKey) && classes.contains(&ObjectClass::PublicKey)
        );
        assert_eq!(ec[0].id, ec[1].id);
        assert_eq!(ec[0].id.len(), 16);
        let uuid_hex: String = made["ec_id"].as_str().unwrap().replace('-', "");
        assert_eq!(
            ec[0]
                .id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            uuid_hex
        );
        for o in &ec {
            assert_eq!(o.label, ec_alias);
            assert_eq!(
                o.kind,
                Some(KeyKind::Ec {
                    params: P256.to_vec()
                })
            );
            assert!(o.never_extractable);
            use base64::Engine as _;
            let boto_pub = base64::engine::general_purpose::STANDARD
                .decode(made["pub"].as_str().unwrap())
                .unwrap();
            assert_eq!(o.public_key_der.as_deref(), Some(&boto_pub[..]));
        }
        let private = ec
            .iter()
            .find(|o| o.class == ObjectClass::PrivateKey)
            .unwrap();
        assert!(private.usage.sign && !private.usage.decrypt);
        // HMAC and symmetric keys: one secret-key object each.
        let hm = of(made["hmac"].as_str().unwrap());
        assert_eq!(hm.len(), 1);
        assert_eq!(hm[0].class, ObjectClass::SecretKey);
        assert_eq!(
            hm[0].kind,
            Some(KeyKind::Hmac {
                hash: HashAlg::Sha384,
                len: 48
            })
        );
        assert_eq!(hm[0].label, hmac_alias);
        let sym = of(made["sym"].as_str().unwrap());
        assert_eq!(sym.len(), 1);
        assert_eq!(sym[0].kind, Some(KeyKind::ServiceSymmetric));
        // No alias: the key id is the label.
        assert_eq!(sym[0].label, made["sym_id"].as_str().unwrap());
        assert!(sym[0].usage.encrypt && sym[0].usage.decrypt);
        // A disabled key is not shown.
        assert!(of(made["off"].as_str().unwrap()).is_empty());
        // The generated key is listed as generate returned it.
        let gen = of(&generated[0].key_ref);
        assert_eq!(gen.len(), 2);
        for o in &generated {
            assert!(objects.contains(o), "{o:?} not listed as generated");
        }
    }

    #[test]
    fn keys_and_tag_filters_choose_what_the_token_shows() {
        let a = unique("filter-a");
        let made = boto3(&format!(
            "a = kms.create_key(KeySpec='ECC_NIST_P256', KeyUsage='SIGN_VERIFY')['KeyMetadata']\n\
         kms.create_alias(AliasName='alias/{a}', TargetKeyId=a['KeyId'])\n\
         t = kms.create_key(KeySpec='HMAC_256', KeyUsage='GENERATE_VERIFY_MAC', \
         Tags=[{{'TagKey': 'hsmux-team', 'TagValue': '{a}'}}])['KeyMetadata']\n\
         n = kms.create_key(KeySpec='HMAC_256', KeyUsage='GENERATE_VERIFY_MAC')['KeyMetadata']\n\
         out({{'a': a['Arn'], 'a_id': a['KeyId'], 't': t['Arn'], 't_id': t['KeyId'], \
         'n': n['Arn']}})"
        ));
        let refs = |objs: &[RemoteObject]| -> Vec<String> {
            let mut r: Vec<String> = objs.iter().map(|o| o.key_ref.clone()).collect();
            r.dedup();
            r
        };
        // By alias, by key ARN, by key id.
        let by_alias = backend_with(AwsKmsSettings {
            keys: vec![format!("alias/{a}")],
            ..settings(&endpoint())
        });
        assert_eq!(
            refs(&by_alias.list().unwrap()),
            vec![made["a"].as_str().unwrap()]
        );
        let by_arn_and_id = backend_with(AwsKmsSettings {
            keys: vec![
                made["a"].as_str().unwrap().to_string(),
                made["t_id"].as_str().unwrap().to_string(),
            ],
            ..settings(&endpoint())
        });
        let mut got = refs(&by_arn_and_id.list().unwrap());
        got.sort();
        let mut want = vec![
            made["a"].as_str().unwrap().to_string(),
            made["t"].as_str().unwrap().to_string(),
        ];
        want.sort();
        assert_eq!(got, want);
        // By tag; and a key generated through a tagged token carries the tag.
        let tagged = backend_with(AwsKmsSettings {
            tag: Some(format!("hsmux-team={a}")),
            ..settings(&endpoint())
        });
        assert_eq!(
            refs(&tagged.list().unwrap()),
            vec![made["t"].as_str().unwrap()]
        );
        let gen = tagged
            .generate(&spec(
                KeyKind::ServiceSymmetric,
                &unique("tagged"),
                decrypting(),
            ))
            .unwrap();
        let mut got = refs(&tagged.list().unwrap());
        got.sort();
        let mut want = vec![
            made["t"].as_str().unwrap().to_string(),
            gen[0].key_ref.clone(),
        ];
        want.sort();
        assert_eq!(got, want);
        assert_ne!(tagged.serial(), by_alias.serial());
    }

    #[test]
    fn ecdsa_signatures_verify_with_openssl() {
        let b = backend();
        for (params, h) in [
            (P256, HashAlg::Sha256),
            (P384, HashAlg::Sha384),
            (P521, HashAlg::Sha512),
            (K256, HashAlg::Sha256),
        ] {
            let objs = b
                .generate(&spec(
                    KeyKind::Ec {
                        params: params.to_vec(),
                    },
                    &unique("ec"),
                    signing(),
                ))
                .unwrap();
            let key = private_of(&objs);
            let pk = public_key(key);
            let digest = hash(md(h), b"hsmux signs this").unwrap().to_vec();
            for hash_hint in [Some(h), None] {
                let sig = b
                    .sign(
                        &key.key_ref,
                        &SignRequest::Ecdsa {
                            hash: hash_hint,
                            digest: digest.clone(),
                        },
                    )
                    .unwrap();
                let field = match params {
                    P384 => 48,
                    P521 => 66,
                    _ => 32,
                };
                assert_eq!(sig.len(), 2 * field, "r‖s of the field length");
                assert!(verify_ecdsa(&pk, &digest, &sig), "ECDSA on {params:02x?}");
                let mut other = digest.clone();
                other[0] ^= 1;
                assert!(!verify_ecdsa(&pk, &other, &sig));
            }
            // A digest whose size does not match the curve's hash: refused before any request.
            let before = b.requests_sent();
            let wrong = vec![0u8; if h == HashAlg::Sha256 { 48 } else { 32 }];
            assert!(matches!(
                b.sign(
                    &key.key_ref,
                    &SignRequest::Ecdsa {
                        hash: None,
                        digest: wrong
                    }
                ),
                Err(BackendError::InvalidInput(_))
            ));
            assert!(matches!(
                b.sign(
                    &key.key_ref,
                    &SignRequest::Ecdsa {
                        hash: Some(HashAlg::Sha1),
                        digest: vec![0; 20]
                    }
                ),
                Err(BackendError::InvalidInput(_))
            ));
            assert_eq!(b.requests_sent(), before);
        }
    }

    #[test]
    fn rsa_pkcs1_and_pss_signatures_verify_with_openssl() {
        let b = backend();
        let objs = b
            .generate(&spec(
                KeyKind::Rsa { bits: 2048 },
                &unique("rsa-sign"),
                signing(),
            ))
            .unwrap();
        let key = private_of(&objs);
        assert_eq!(key.kind, Some(KeyKind::Rsa { bits: 2048 }));
        let pk = public_key(key);
        let msg = b"hsmux signs this with RSA";
        for h in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let digest = hash(md(h), msg).unwrap().to_vec();
            // PKCS#1 v1.5 over a DigestInfo, with and without the module's hash hint.
            for hint in [Some(h), None] {
                let sig = b
                    .sign(
                        &key.key_ref,
                        &SignRequest::RsaPkcs1 {
                            hash: hint,
                            digest_info: digest_info(h, &digest),
                        },
                    )
                    .unwrap();
                let mut v = Verifier::new(md(h), &pk).unwrap();
                v.set_rsa_padding(Padding::PKCS1).unwrap();
                v.update(msg).unwrap();
                assert!(v.verify(&sig).unwrap(), "PKCS#1 {h:?}");
            }
            // PSS with salt = hash length and MGF1 of the same hash.
            let sig = b
                .sign(
                    &key.key_ref,
                    &SignRequest::RsaPss {
                        hash: h,
                        mgf: h,
                        salt_len: h.digest_len(),
                        digest: digest.clone(),
                    },
                )
                .unwrap();
            let mut v = Verifier::new(md(h), &pk).unwrap();
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(h.digest_len() as i32))
                .unwrap();
            v.set_rsa_mgf1_md(md(h)).unwrap();
            v.update(msg).unwrap();
            assert!(v.verify(&sig).unwrap(), "PSS {h:?}");
        }
        // What KMS cannot do is refused as unsupported, with no request.
        let before = b.requests_sent();
        let d = hash(MessageDigest::sha256(), msg).unwrap().to_vec();
        for req in [
            SignRequest::RsaPss {
                hash: HashAlg::Sha256,
                mgf: HashAlg::Sha256,
                salt_len: 20,
                digest: d.clone(),
            },
            SignRequest::RsaPss {
                hash: HashAlg::Sha256,
                mgf: HashAlg::Sha1,
                salt_len: 32,
                digest: d.clone(),
            },
            SignRequest::RsaPkcs1 {
                hash: None,
                digest_info: b"raw data, not a DigestInfo".to_vec(),
            },
            SignRequest::RsaPkcs1 {
                hash: Some(HashAlg::Sha1),
                digest_info: {
                    let mut di = vec![
                        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05,
                        0x00, 0x04, 0x14,
                    ];
                    di.extend([0u8; 20]);
                    di
                },
            },
        ] {
            match b.sign(&key.key_ref, &req) {
                Err(BackendError::Unsupported(_)) => {}
                other => panic!("{req:?}: {other:?}"),
            }
        }
        assert_eq!(b.requests_sent(), before);
    }

    #[test]
    fn oaep_decrypts_openssl_ciphertexts() {
        let b = backend();
        let objs = b
            .generate(&spec(
                KeyKind::Rsa { bits: 3072 },
                &unique("rsa-oaep"),
                decrypting(),
            ))
            .unwrap();
        let key = private_of(&objs);
        assert!(key.usage.decrypt && !key.usage.sign);
        let public = objs
            .iter()
            .find(|o| o.class == ObjectClass::PublicKey)
            .unwrap();
        assert!(public.usage.encrypt);
        let pk = public_key(key);
        // LocalStack (2026.3) decrypts every OAEP ciphertext with SHA-256 whatever the
        // EncryptionAlgorithm, so SHA-1 is checked end to end only up to the request.
        {
            let h = HashAlg::Sha256;
            let secret = b"a session key, wrapped by OpenSSL";
            let mut enc = openssl::encrypt::Encrypter::new(&pk).unwrap();
            enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            enc.set_rsa_oaep_md(md(h)).unwrap();
            enc.set_rsa_mgf1_md(md(h)).unwrap();
            let mut ct = vec![0; enc.encrypt_len(secret).unwrap()];
            let n = enc.encrypt(secret, &mut ct).unwrap();
            ct.truncate(n);
            let pt = b
                .decrypt(
                    &key.key_ref,
                    &CipherRequest::RsaOaep {
                        hash: h,
                        mgf: h,
                        label: Vec::new(),
                        data: ct.clone(),
                    },
                )
                .unwrap();
            assert_eq!(pt, secret, "OAEP {h:?}");
            // Damaged ciphertext: the service refuses it.
            let mut bad = ct.clone();
            bad[10] ^= 0xff;
            assert!(b
                .decrypt(
                    &key.key_ref,
                    &CipherRequest::RsaOaep {
                        hash: h,
                        mgf: h,
                        label: Vec::new(),
                        data: bad,
                    },
                )
                .is_err());
        }
        let gw = gateway("test", "test", Duration::ZERO);
        let via_gw = backend_with(settings(&gw.url));
        let ct = vec![1u8; 384];
        let _ = via_gw.decrypt(
            &key.key_ref,
            &CipherRequest::RsaOaep {
                hash: HashAlg::Sha1,
                mgf: HashAlg::Sha1,
                label: Vec::new(),
                data: ct.clone(),
            },
        );
        {
            use base64::Engine as _;
            let seen = gw.operations.lock().unwrap();
            let (op, body) = seen.last().expect("a request");
            assert_eq!(op, "Decrypt");
            assert_eq!(body["EncryptionAlgorithm"], "RSAES_OAEP_SHA_1");
            assert_eq!(body["KeyId"], key.key_ref.as_str());
            assert_eq!(
                body["CiphertextBlob"],
                base64::engine::general_purpose::STANDARD.encode(&ct)
            );
        }
        let before = b.requests_sent();
        for req in [
            CipherRequest::RsaOaep {
                hash: HashAlg::Sha256,
                mgf: HashAlg::Sha256,
                label: b"label".to_vec(),
                data: vec![0; 384],
            },
            CipherRequest::RsaOaep {
                hash: HashAlg::Sha256,
                mgf: HashAlg::Sha1,
                label: Vec::new(),
                data: vec![0; 384],
            },
            CipherRequest::RsaPkcs1 { data: vec![0; 384] },
        ] {
            assert!(
                matches!(
                    b.decrypt(&key.key_ref, &req),
                    Err(BackendError::Unsupported(_))
                ),
                "{req:?}"
            );
        }
        assert_eq!(b.requests_sent(), before);
    }

    #[test]
    fn hmac_sign_and_verify_round_trip() {
        let b = backend();
        for (h, len) in [(HashAlg::Sha256, 32), (HashAlg::Sha512, 64)] {
            let objs = b
                .generate(&spec(
                    KeyKind::Hmac { hash: h, len },
                    &unique("hmac"),
                    signing(),
                ))
                .unwrap();
            assert_eq!(objs.len(), 1);
            assert_eq!(objs[0].class, ObjectClass::SecretKey);
            let k = &objs[0].key_ref;
            let req = SignRequest::Hmac {
                hash: h,
                message: b"authenticate me".to_vec(),
            };
            let mac = b.sign(k, &req).unwrap();
            assert_eq!(mac.len(), len);
            assert_eq!(b.sign(k, &req).unwrap(), mac, "HMAC is deterministic");
            assert!(b.verify(k, &req, &mac).unwrap());
            let mut bad = mac.clone();
            bad[0] ^= 1;
            assert!(!b.verify(k, &req, &bad).unwrap());
            let other = SignRequest::Hmac {
                hash: h,
                message: b"something else".to_vec(),
            };
            assert!(!b.verify(k, &other, &mac).unwrap());
            assert!(!b.verify(k, &req, &mac[..len - 1]).unwrap());
        }
        // A generic secret with CKA_SIGN becomes an HMAC key.
        let g = b
            .generate(&spec(
                KeyKind::GenericSecret { len: 48 },
                &unique("generic"),
                signing(),
            ))
            .unwrap();
        assert_eq!(
            g[0].kind,
            Some(KeyKind::Hmac {
                hash: HashAlg::Sha384,
                len: 48
            })
        );
    }

    #[test]
    fn symmetric_encrypt_and_decrypt_bind_the_aad() {
        let b = backend();
        let objs = b
            .generate(&spec(
                KeyKind::Aes { len: 32 },
                &unique("sym"),
                decrypting(),
            ))
            .unwrap();
        assert_eq!(objs[0].kind, Some(KeyKind::ServiceSymmetric));
        let k = &objs[0].key_ref;
        let enc = |aad: &[u8]| {
            b.encrypt(
                k,
                &CipherRequest::ServiceSymmetric {
                    aad: aad.to_vec(),
                    data: b"the plaintext".to_vec(),
                },
            )
            .unwrap()
        };
        let dec = |aad: &[u8], data: &[u8]| {
            b.decrypt(
                k,
                &CipherRequest::ServiceSymmetric {
                    aad: aad.to_vec(),
                    data: data.to_vec(),
                },
            )
        };
        let with_aad = enc(b"context");
        assert_eq!(dec(b"context", &with_aad).unwrap(), b"the plaintext");
        assert!(matches!(
            dec(b"", &with_aad),
            Err(BackendError::InvalidCiphertext(_))
        ));
        assert!(matches!(
            dec(b"other", &with_aad),
            Err(BackendError::InvalidCiphertext(_))
        ));
        let without = enc(b"");
        assert_eq!(dec(b"", &without).unwrap(), b"the plaintext");
        // Another key's ciphertext does not decrypt under this key.
        let other = b
            .generate(&spec(
                KeyKind::ServiceSymmetric,
                &unique("sym2"),
                decrypting(),
            ))
            .unwrap();
        assert!(b
            .decrypt(
                &other[0].key_ref,
                &CipherRequest::ServiceSymmetric {
                    aad: Vec::new(),
                    data: without,
                },
            )
            .is_err());
    }

    #[test]
    fn generate_names_the_key_and_destroy_schedules_its_deletion() {
        let b = backend_with(AwsKmsSettings {
            deletion_window_days: 7,
            ..settings(&endpoint())
        });
        let label = unique("lifecycle");
        let objs = b
            .generate(&spec(
                KeyKind::Ec {
                    params: P256.to_vec(),
                },
                &label,
                signing(),
            ))
            .unwrap();
        assert!(objs.iter().all(|o| o.label == label));
        let arn = objs[0].key_ref.clone();
        let seen = boto3(&format!(
            "al = [a for a in aliases() if a['AliasName'] == 'alias/{label}']\n\
         d = kms.describe_key(KeyId='{arn}')['KeyMetadata']\n\
         out({{'aliases': al, 'state': d['KeyState'], 'id': d['KeyId']}})"
        ));
        let aliases = seen["aliases"].as_array().unwrap();
        assert_eq!(aliases.len(), 1, "alias/{label} in ListAliases");
        assert_eq!(aliases[0]["TargetKeyId"], seen["id"]);
        assert_eq!(seen["state"], "Enabled");

        b.destroy(&arn).unwrap();
        // The other half of the pair: destroying it again is not an error.
        b.destroy(&arn).unwrap();
        let after = boto3(&format!(
            "al = [a for a in aliases() if a['AliasName'] == 'alias/{label}']\n\
         d = kms.describe_key(KeyId='{arn}')['KeyMetadata']\n\
         out({{'aliases': al, 'state': d['KeyState'], \
         'days': (d['DeletionDate'] - d['CreationDate']).total_seconds() / 86400}})"
        ));
        assert_eq!(after["state"], "PendingDeletion");
        assert!(
            after["aliases"].as_array().unwrap().is_empty(),
            "alias removed"
        );
        let days = after["days"].as_f64().unwrap();
        assert!((6.9..7.1).contains(&days), "deletion window {days} days");
        let only_it = backend_with(AwsKmsSettings {
            keys: vec![arn.clone()],
            ..settings(&endpoint())
        });
        assert!(
            only_it.list().unwrap().is_empty(),
            "a key pending deletion is not listed"
        );
        // Signing with it now: the key may not be used.
        let d = vec![0u8; 32];
        assert!(matches!(
            b.sign(
                &arn,
                &SignRequest::Ecdsa {
                    hash: None,
                    digest: d
                }
            ),
            Err(BackendError::NotPermitted(_))
        ));
        // A key that never existed.
        let missing = arn.replace(&arn[arn.len() - 12..], "000000000000");
        assert!(matches!(
            b.sign(
                &missing,
                &SignRequest::Ecdsa {
                    hash: None,
                    digest: vec![0; 32]
                }
            ),
            Err(BackendError::NotFound(_))
        ));
    }

    #[test]
    fn bad_labels_and_unsupported_kinds_are_refused_before_any_request() {
        let b = backend();
        for label in ["", "has space", "aws/reserved", "ünïcode"] {
            assert!(matches!(
                b.generate(&spec(
                    KeyKind::Ec {
                        params: P256.to_vec()
                    },
                    label,
                    signing()
                )),
                Err(BackendError::InvalidInput(_))
            ));
        }
        for kind in [
            KeyKind::Rsa { bits: 1024 },
            KeyKind::Aes { len: 16 },
            KeyKind::Ed25519,
            KeyKind::Ec {
                params: vec![0x06, 0x03, 0x2b, 0x65, 0x6e],
            },
        ] {
            assert!(matches!(
                b.generate(&spec(kind, "fine-label", signing())),
                Err(BackendError::Unsupported(_))
            ));
        }
        assert_eq!(b.requests_sent(), 0);
    }

    #[test]
    fn a_taken_alias_fails_and_leaves_no_key_behind() {
        let b = backend();
        let label = unique("taken");
        b.generate(&spec(KeyKind::ServiceSymmetric, &label, decrypting()))
            .unwrap();
        match b.generate(&spec(KeyKind::ServiceSymmetric, &label, decrypting())) {
            Err(BackendError::InvalidInput(m)) => assert!(m.contains("AlreadyExists"), "{m}"),
            other => panic!("{other:?}"),
        }
        let pending = boto3(&format!(
        "ks = [kms.describe_key(KeyId=k['KeyId'])['KeyMetadata'] for k in kms.list_keys(Limit=1000)['Keys']]\n\
         out(len([k for k in ks if k.get('Description') == 'hsmux: {label}' \
         and k['KeyState'] == 'Enabled']))"
    ));
        assert_eq!(pending, 1, "the orphan key was scheduled for deletion");
    }

    #[test]
    fn wrong_credentials_are_auth_errors_with_code_and_request_id() {
        let gw = gateway("AKIAHSMUXTEST0000001", "the-right-secret", Duration::ZERO);
        // Right credentials pass the gateway (so the checks below test the credentials).
        // (A filter that matches nothing keeps the listing to ListKeys + ListAliases.)
        let quick = || AwsKmsSettings {
            keys: vec!["alias/hsmux-test/none".into()],
            ..settings(&gw.url)
        };
        let good = AwsKmsBackend::open_with_credentials(
            quick(),
            Credentials::new("AKIAHSMUXTEST0000001", "the-right-secret", None),
        )
        .unwrap();
        good.list().unwrap();
        let with_token = AwsKmsBackend::open_with_credentials(
            quick(),
            Credentials::new(
                "AKIAHSMUXTEST0000001",
                "the-right-secret",
                Some("session/tok+en="),
            ),
        )
        .unwrap();
        with_token.list().unwrap();

        let wrong_secret = AwsKmsBackend::open_with_credentials(
            quick(),
            Credentials::new("AKIAHSMUXTEST0000001", "a-wrong-secret", None),
        )
        .unwrap();
        match wrong_secret.list() {
            Err(BackendError::Auth(m)) => {
                assert!(m.contains("InvalidSignatureException"), "{m}");
                assert!(m.contains("request id gateway-"), "{m}");
                assert!(m.contains("ListKeys"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        let unknown = AwsKmsBackend::open_with_credentials(
            settings(&gw.url),
            Credentials::new("AKIAUNKNOWN000000000", "whatever", None),
        )
        .unwrap();
        let before = gw.count();
        match unknown.sign(
            "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555",
            &SignRequest::Ecdsa {
                hash: None,
                digest: vec![0; 32],
            },
        ) {
            Err(BackendError::Auth(m)) => assert!(m.contains("UnrecognizedClientException"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Refused credentials are not retried.
        assert_eq!(gw.count() - before, 1);
    }

    /// One backend operation; true when it succeeded.
    type Op<'a> = Box<dyn Fn() -> bool + 'a>;

    #[test]
    fn one_http_request_per_operation_and_parallel_sessions_overlap() {
        let gw = gateway("test", "test", Duration::from_millis(30));
        let b = backend_with(settings(&gw.url));
        let ec = b
            .generate(&spec(
                KeyKind::Ec {
                    params: P256.to_vec(),
                },
                &unique("count-ec"),
                signing(),
            ))
            .unwrap();
        let rsa = b
            .generate(&spec(
                KeyKind::Rsa { bits: 2048 },
                &unique("count-rsa"),
                signing(),
            ))
            .unwrap();
        let oaep = b
            .generate(&spec(
                KeyKind::Rsa { bits: 2048 },
                &unique("count-oaep"),
                decrypting(),
            ))
            .unwrap();
        let mac = b
            .generate(&spec(
                KeyKind::Hmac {
                    hash: HashAlg::Sha256,
                    len: 32,
                },
                &unique("count-mac"),
                signing(),
            ))
            .unwrap();
        // A fresh token, as after C_Initialize: the listing warms its cache.
        let fresh = backend_with(AwsKmsSettings {
            keys: [&ec, &rsa, &oaep, &mac]
                .iter()
                .map(|o| o[0].key_ref.clone())
                .collect(),
            ..settings(&gw.url)
        });
        assert_eq!(fresh.list().unwrap().len(), 7);
        let d32 = vec![7u8; 32];
        let ops: Vec<(&str, Op)> = vec![
            (
                "ECDSA sign",
                Box::new(|| {
                    fresh
                        .sign(
                            &private_of(&ec).key_ref,
                            &SignRequest::Ecdsa {
                                hash: Some(HashAlg::Sha256),
                                digest: d32.clone(),
                            },
                        )
                        .is_ok()
                }),
            ),
            (
                "RSA PKCS#1 sign",
                Box::new(|| {
                    fresh
                        .sign(
                            &private_of(&rsa).key_ref,
                            &SignRequest::RsaPkcs1 {
                                hash: None,
                                digest_info: digest_info(HashAlg::Sha256, &d32),
                            },
                        )
                        .is_ok()
                }),
            ),
            (
                "RSA PSS sign",
                Box::new(|| {
                    fresh
                        .sign(
                            &private_of(&rsa).key_ref,
                            &SignRequest::RsaPss {
                                hash: HashAlg::Sha256,
                                mgf: HashAlg::Sha256,
                                salt_len: 32,
                                digest: d32.clone(),
                            },
                        )
                        .is_ok()
                }),
            ),
            (
                "HMAC sign",
                Box::new(|| {
                    fresh
                        .sign(
                            &mac[0].key_ref,
                            &SignRequest::Hmac {
                                hash: HashAlg::Sha256,
                                message: b"m".to_vec(),
                            },
                        )
                        .is_ok()
                }),
            ),
            (
                "OAEP decrypt",
                Box::new(|| {
                    let pk = public_key(private_of(&oaep));
                    let mut enc = openssl::encrypt::Encrypter::new(&pk).unwrap();
                    enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
                    enc.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
                    enc.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
                    let mut ct = vec![0; enc.encrypt_len(b"k").unwrap()];
                    let n = enc.encrypt(b"k", &mut ct).unwrap();
                    ct.truncate(n);
                    fresh
                        .decrypt(
                            &private_of(&oaep).key_ref,
                            &CipherRequest::RsaOaep {
                                hash: HashAlg::Sha256,
                                mgf: HashAlg::Sha256,
                                label: Vec::new(),
                                data: ct,
                            },
                        )
                        .is_ok()
                }),
            ),
        ];
        for (name, op) in &ops {
            for _ in 0..3 {
                let (gw_before, b_before) = (gw.count(), fresh.requests_sent());
                assert!(op(), "{name}");
                assert_eq!(
                    gw.count() - gw_before,
                    1,
                    "{name}: requests seen by the gateway"
                );
                assert_eq!(fresh.requests_sent() - b_before, 1, "{name}: requests sent");
            }
        }
        let ops_seen = gw.operations.lock().unwrap().clone();
        let n = |op: &str| ops_seen.iter().filter(|(o, _)| o == op).count();
        assert_eq!((n("Sign"), n("GenerateMac"), n("Decrypt")), (9, 3, 3));
        assert!(ops_seen
            .iter()
            .filter(|(o, _)| o == "Sign")
            .all(|(_, body)| body["MessageType"] == "DIGEST"));

        // Eight sessions signing at once: requests overlap (no lock across a request) and
        // every signature is good.
        let pk = public_key(private_of(&ec));
        let before = gw.count();
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let (fresh, ec, pk) = (&fresh, &ec, &pk);
                s.spawn(move || {
                    for i in 0..4u8 {
                        let digest = hash(MessageDigest::sha256(), &[t, i]).unwrap().to_vec();
                        let sig = fresh
                            .sign(
                                &private_of(ec).key_ref,
                                &SignRequest::Ecdsa {
                                    hash: Some(HashAlg::Sha256),
                                    digest: digest.clone(),
                                },
                            )
                            .unwrap();
                        assert!(verify_ecdsa(pk, &digest, &sig));
                    }
                });
            }
        });
        assert_eq!(gw.count() - before, 32);
        let overlap = gw.max_in_flight.load(Ordering::SeqCst);
        assert!(
            overlap >= 4,
            "at most {overlap} requests were in flight at once"
        );
    }

    #[test]
    fn an_unreachable_endpoint_is_unavailable_within_the_timeout() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let b = backend_with(AwsKmsSettings {
            timeout_ms: 1500,
            max_retries: 3,
            ..settings(&format!("http://{closed}"))
        });
        let start = std::time::Instant::now();
        match b.list() {
            Err(BackendError::Unavailable(m)) => assert!(m.contains("ListKeys"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() < Duration::from_millis(2500));
        // Connection refused is retried: the first try and up to max_retries more.
        assert!(
            (2..=4).contains(&b.requests_sent()),
            "{}",
            b.requests_sent()
        );
    }

    #[test]
    fn throttling_and_server_errors_are_retried_within_the_budget() {
        let quick = |url: &str, retries: u32| AwsKmsSettings {
            max_retries: retries,
            ..settings(url)
        };
        // One DescribeKey (an unknown key: the cache is cold) is the whole operation.
        let sign = |b: &AwsKmsBackend| {
            b.sign(
                "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-4000-8000-000000000000",
                &SignRequest::Ecdsa {
                    hash: None,
                    digest: vec![0; 32],
                },
            )
        };
        // Two throttles and a 503, then the real answer: ListKeys succeeds on its 4th try.
        let gw = gateway_refusing(
            "test",
            "test",
            Duration::ZERO,
            vec![
                (400, "ThrottlingException"),
                (400, "ThrottlingException"),
                (503, "KMSInternalException"),
            ],
        );
        let b = backend_with(quick(&gw.url, 3));
        // The fourth try reaches KMS, which does not know the key.
        assert!(matches!(sign(&b), Err(BackendError::NotFound(_))));
        assert_eq!(gw.count(), 4);
        assert_eq!(b.requests_sent(), 4);
        // Fewer retries than refusals: the throttling surfaces as "unavailable".
        let gw = gateway_refusing(
            "test",
            "test",
            Duration::ZERO,
            vec![(400, "ThrottlingException"); 3],
        );
        let b = backend_with(quick(&gw.url, 1));
        match sign(&b) {
            Err(BackendError::Unavailable(m)) => assert!(m.contains("ThrottlingException"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(gw.count(), 2);
        // Client errors are not retried.
        let gw = gateway_refusing(
            "test",
            "test",
            Duration::ZERO,
            vec![(400, "ValidationException")],
        );
        let b = backend_with(quick(&gw.url, 3));
        assert!(matches!(sign(&b), Err(BackendError::InvalidInput(_))));
        assert_eq!(gw.count(), 1);
    }
}
