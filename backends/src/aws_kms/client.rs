//! The KMS JSON protocol over one pooled, keep-alive HTTP agent: signing, timeouts,
//! retries with jittered backoff, and AWS errors mapped to [`BackendError`].

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::credentials::{self, Credentials};
use super::sigv4;
use crate::backend::{BackendError, BackendResult};

/// Largest answer read from KMS (a page of ListKeys/ListAliases is far smaller).
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;
/// First backoff step; each retry doubles it (full jitter), up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// Where credentials come from.
pub(crate) enum CredentialSource {
    /// The standard chain, with an optional explicit profile.
    Chain { profile: Option<String> },
    /// Fixed credentials given by the caller.
    Static,
}

/// A KMS endpoint and how to talk to it. Shared by all sessions; holds a lock only to
/// read or replace cached credentials, never across a request.
pub(crate) struct KmsClient {
    agent: ureq::Agent,
    pub(crate) url: String,
    pub(crate) region: String,
    timeout: Duration,
    max_retries: u32,
    source: CredentialSource,
    creds: Mutex<Option<Arc<Credentials>>>,
    requests: AtomicU64,
}

impl KmsClient {
    pub(crate) fn new(
        url: String,
        region: String,
        timeout: Duration,
        max_retries: u32,
        source: CredentialSource,
        creds: Option<Credentials>,
    ) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(10)))
            .max_idle_connections(64)
            .max_idle_connections_per_host(64)
            .redirects(0)
            .user_agent(concat!("hsmux/", env!("CARGO_PKG_VERSION"), " aws-kms"))
            .build();
        KmsClient {
            agent,
            url,
            region,
            timeout,
            max_retries,
            source,
            creds: Mutex::new(creds.map(Arc::new)),
            requests: AtomicU64::new(0),
        }
    }

    /// HTTP requests sent so far (every attempt, retries included).
    pub(crate) fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn credentials(&self) -> BackendResult<Arc<Credentials>> {
        let cached = self.creds.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(c) = cached {
            if matches!(self.source, CredentialSource::Static) || c.is_fresh(SystemTime::now()) {
                return Ok(c);
            }
        }
        let CredentialSource::Chain { profile } = &self.source else {
            return Err(BackendError::Auth(
                "the configured credentials have expired".into(),
            ));
        };
        // Resolved outside the lock: an IMDS round trip must not stall other sessions.
        let fresh = Arc::new(credentials::resolve(
            &credentials::process_env,
            profile.as_deref(),
        )?);
        *self.creds.lock().unwrap_or_else(|e| e.into_inner()) = Some(fresh.clone());
        Ok(fresh)
    }

    fn forget_credentials(&self) {
        if matches!(self.source, CredentialSource::Chain { .. }) {
            *self.creds.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Calls `TrentService.<operation>` with a JSON body; retries throttling, 5xx and
    /// connection failures with jittered exponential backoff, all within the timeout.
    pub(crate) fn call(&self, operation: &str, body: &Value) -> Result<Value, KmsFailure> {
        let body = serde_json::to_vec(body)
            .map_err(|e| BackendError::Other(format!("{operation}: encoding the request: {e}")))?;
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut attempt = 0u32;
        loop {
            let creds = self.credentials()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.timed_out(operation).into());
            }
            let headers = sigv4::sign_kms_request(
                &creds,
                &self.url,
                &self.region,
                operation,
                &body,
                SystemTime::now(),
            )?;
            let mut req = self.agent.post(&self.url).timeout(remaining);
            for (k, v) in &headers {
                req = req.set(k, v);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let (err, retryable) = match req.send_bytes(&body) {
                Ok(resp) => return Ok(read_json(operation, resp)?),
                Err(ureq::Error::Status(status, resp)) => {
                    let err = service_error(operation, status, resp);
                    if err.code.starts_with("ExpiredToken") {
                        self.forget_credentials();
                    }
                    let retryable = err.retryable;
                    (err, retryable)
                }
                Err(ureq::Error::Transport(t)) => {
                    if Instant::now() >= deadline {
                        return Err(self.timed_out(operation).into());
                    }
                    let retryable = matches!(
                        t.kind(),
                        ureq::ErrorKind::Dns
                            | ureq::ErrorKind::ConnectionFailed
                            | ureq::ErrorKind::Io
                    );
                    let error =
                        BackendError::Unavailable(format!("KMS {operation} at {}: {t}", self.url));
                    (error.into(), retryable)
                }
            };
            if !retryable || attempt >= self.max_retries {
                return Err(err);
            }
            let backoff = jittered_backoff(attempt);
            if Instant::now() + backoff >= deadline {
                return Err(err);
            }
            std::thread::sleep(backoff);
            attempt += 1;
        }
    }

    fn timed_out(&self, operation: &str) -> BackendError {
        BackendError::Unavailable(format!(
            "KMS {operation} at {} did not answer within {} ms (timeout_ms)",
            self.url,
            self.timeout.as_millis()
        ))
    }
}

/// Full jitter: a uniform pick in `[0, min(cap, base·2^attempt)]`.
fn jittered_backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let mut r = [0u8; 4];
    let frac = match openssl::rand::rand_bytes(&mut r) {
        Ok(()) => f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    ceiling.mul_f64(frac)
}

fn read_body(resp: ureq::Response) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_RESPONSE)
        .read_to_end(&mut body)?;
    Ok(body)
}

fn read_json(operation: &str, resp: ureq::Response) -> BackendResult<Value> {
    let body = read_body(resp).map_err(|e| {
        BackendError::Unavailable(format!("KMS {operation}: reading the answer: {e}"))
    })?;
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&body)
        .map_err(|e| BackendError::Other(format!("KMS {operation}: the answer is not JSON: {e}")))
}

/// A failed call: the mapped error, and the AWS error code when the service answered.
#[derive(Debug)]
pub(crate) struct KmsFailure {
    pub(crate) error: BackendError,
    pub(crate) code: String,
    retryable: bool,
}

impl From<BackendError> for KmsFailure {
    fn from(error: BackendError) -> Self {
        KmsFailure {
            error,
            code: String::new(),
            retryable: false,
        }
    }
}

impl From<KmsFailure> for BackendError {
    fn from(f: KmsFailure) -> Self {
        f.error
    }
}

/// An AWS error answer (`{"__type": "…#Code", "message": "…"}`) as a [`BackendError`]
/// whose message carries the operation, HTTP status, error code and request id.
fn service_error(operation: &str, status: u16, resp: ureq::Response) -> KmsFailure {
    let request_id = resp
        .header("x-amzn-RequestId")
        .or_else(|| resp.header("x-amz-request-id"))
        .unwrap_or("-")
        .to_string();
    let header_type = resp.header("x-amzn-ErrorType").map(str::to_string);
    let body: Value = read_body(resp)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let raw_type = body
        .get("__type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(header_type)
        .unwrap_or_default();
    // "com.amazonaws.kms#NotFoundException" or "NotFoundException:http://…".
    let code = raw_type
        .rsplit('#')
        .next()
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    let message = body
        .get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let code_shown = if code.is_empty() {
        "(no error code)"
    } else {
        &code
    };
    let detail =
        format!("KMS {operation}: HTTP {status} {code_shown}: {message} (request id {request_id})");
    let (error, retryable) = match code.as_str() {
        "NotFoundException" => (BackendError::NotFound(detail), false),
        "DisabledException"
        | "KMSInvalidStateException"
        | "InvalidKeyUsageException"
        | "InvalidGrantTokenException" => (BackendError::NotPermitted(detail), false),
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "AccessDeniedException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "SignatureDoesNotMatch" => (BackendError::Auth(detail), false),
        "InvalidCiphertextException" | "IncorrectKeyException" => {
            (BackendError::InvalidCiphertext(detail), false)
        }
        "ValidationException"
        | "InvalidAliasNameException"
        | "AlreadyExistsException"
        | "InvalidMarkerException" => (BackendError::InvalidInput(detail), false),
        "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            (BackendError::Unavailable(detail), true)
        }
        "KMSInternalException" | "DependencyTimeoutException" | "KeyUnavailableException" => {
            (BackendError::Unavailable(detail), true)
        }
        _ if status >= 500 => (BackendError::Unavailable(detail), true),
        _ => (BackendError::Other(detail), false),
    };
    KmsFailure {
        error,
        code,
        retryable,
    }
}
