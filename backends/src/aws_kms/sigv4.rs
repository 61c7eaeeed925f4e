//! SigV4 request signing through AWS's own `aws-sigv4` crate (which carries AWS's
//! published test suite); this module only adapts our types to it.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

use super::credentials::Credentials;
use crate::backend::{BackendError, BackendResult};

/// One request to sign.
#[derive(Debug, Clone)]
pub struct SigningInput<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Absolute URL, already percent-encoded (`https://host[:port]/path?query`).
    pub url: &'a str,
    /// Headers that are sent and signed (the host is taken from the URL when absent).
    pub headers: &'a [(String, String)],
    /// The request body.
    pub body: &'a [u8],
    /// Region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Service signing name, e.g. `kms`.
    pub service: &'a str,
    /// Signing time.
    pub time: SystemTime,
    /// Also send and sign `x-amz-content-sha256` (S3 style; KMS does not need it).
    pub content_sha256_header: bool,
}

/// Signs `input` with `creds`; returns the headers to add to the request
/// (`x-amz-date`, `authorization`, and `x-amz-security-token` for temporary credentials,
/// plus `x-amz-content-sha256` when asked for).
pub fn sign_request(
    creds: &Credentials,
    input: &SigningInput<'_>,
) -> BackendResult<Vec<(String, String)>> {
    let err = |e: &dyn std::fmt::Display| BackendError::Other(format!("SigV4 signing: {e}"));
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.to_string(),
        creds.session_token.as_ref().map(|t| t.to_string()),
        creds.expires,
        "hsmux",
    )
    .into();
    let mut settings = SigningSettings::default();
    if input.content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(input.region)
        .name(input.service)
        .time(input.time)
        .settings(settings)
        .build()
        .map_err(|e| err(&e))?
        .into();
    let signable = SignableRequest::new(
        input.method,
        input.url,
        input.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(input.body),
    )
    .map_err(|e| err(&e))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| err(&e))?.into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The headers of a KMS JSON-protocol call (`X-Amz-Target: TrentService.<op>`).
pub fn kms_headers(operation: &str) -> Vec<(String, String)> {
    vec![
        (
            "Content-Type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        (
            "X-Amz-Target".to_string(),
            format!("TrentService.{operation}"),
        ),
    ]
}

/// Every header of a signed KMS call to `url` (`POST /`): the protocol headers followed
/// by the signature headers. This is exactly what the backend sends.
pub fn sign_kms_request(
    creds: &Credentials,
    url: &str,
    region: &str,
    operation: &str,
    body: &[u8],
    time: SystemTime,
) -> BackendResult<Vec<(String, String)>> {
    let mut headers = kms_headers(operation);
    let signed = sign_request(
        creds,
        &SigningInput {
            method: "POST",
            url,
            headers: &headers,
            body,
            region,
            service: "kms",
            time,
            content_sha256_header: false,
        },
    )?;
    headers.extend(signed);
    Ok(headers)
}
