//! AWS KMS as a token: KMS keys as PKCS#11 objects, and sign / decrypt / MAC / encrypt
//! / generate / destroy as KMS calls.
//!
//! Every operation is one KMS request: signatures use `MessageType=DIGEST` (the module
//! hashes locally), the algorithm is picked from the key's spec (cached from `list`) and
//! the request, and KMS's DER ECDSA signatures are returned as `r‖s`. Opening does no
//! network I/O; credentials are resolved on first use through the standard AWS chain
//! (see [`credentials`]). Requests are signed with SigV4 by the `aws-sigv4` crate and
//! sent over one pooled keep-alive HTTP agent shared by all sessions.

pub mod credentials;
pub mod der;
pub mod sigv4;

mod client;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::backend::{
    Backend, BackendError, BackendResult, Capabilities, CipherRequest, DecryptScheme, HashAlg,
    KeyKind, KeySpec, KeyUsage, MacScheme, Mgf, ObjectClass, PssSalt, RemoteObject, SignRequest, SignScheme,
    SymmetricScheme,
};
use crate::registry::{Entry, OpenContext, Opened, SettingError, Settings};
use crate::secret::SecretRef;
use client::{CredentialSource, KmsClient};
use serde::Deserialize;
use std::sync::Arc;
pub use credentials::Credentials;
use der::Curve;

/// Keys of a `backend = "aws-kms"` token: one account and region.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsKmsSettings {
    /// AWS region (e.g. `eu-west-1`). Empty: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the
    /// profile's `region`.
    pub region: String,
    /// Endpoint URL override (private endpoints, LocalStack); default
    /// `https://kms.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Shared-config profile; `None`: the standard chain (`AWS_PROFILE` or `default`).
    pub profile: Option<String>,
    /// Only these keys (`alias/NAME`, alias ARN, key ARN or key id); empty: all.
    pub keys: Vec<String>,
    /// Only keys with this tag, `"Key=Value"`; also put on keys this token generates.
    pub tag: Option<String>,
    /// Waiting period of `ScheduleKeyDeletion` (7..=30 days).
    pub deletion_window_days: u32,
    /// Time allowed for one operation, retries included, in milliseconds.
    pub timeout_ms: u64,
    /// Retries of throttled, 5xx and connection-failed requests.
    pub max_retries: u32,
    /// What `C_Login` checks: `env:NAME`, `file:PATH` or a literal; `None`: any PIN.
    pub pin: Option<SecretRef>,
}

impl Default for AwsKmsSettings {
    fn default() -> Self {
        AwsKmsSettings {
            region: String::new(),
            endpoint: None,
            profile: None,
            keys: Vec::new(),
            tag: None,
            deletion_window_days: 30,
            timeout_ms: 10_000,
            max_retries: 3,
            pin: None,
        }
    }
}

impl AwsKmsSettings {
    /// `tag = "Key=Value"`, split.
    fn tag_pair(&self) -> Result<Option<(String, String)>, SettingError> {
        let Some(t) = &self.tag else { return Ok(None) };
        match t.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok(Some((k.trim().to_string(), v.trim().to_string())))
            }
            _ => Err(SettingError::key(
                "tag",
                format!("must be \"Key=Value\", not \"{t}\""),
            )),
        }
    }
}

impl Settings for AwsKmsSettings {
    fn check(&self) -> Result<(), SettingError> {
        self.tag_pair()?;
        if !(7..=30).contains(&self.deletion_window_days) {
            return Err(SettingError::key(
                "deletion_window_days",
                format!("must be 7 to 30, not {}", self.deletion_window_days),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(SettingError::key("timeout_ms", "must be at least 1"));
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err(SettingError::key(
                    "endpoint",
                    format!("must be an http(s):// URL, not \"{e}\""),
                ));
            }
        }
        Ok(())
    }
}

/// How long a listing of an account's keys serves `C_FindObjects`.
const LIST_TTL: Duration = Duration::from_secs(300);

fn open_token(s: AwsKmsSettings, ctx: &OpenContext<'_>) -> Result<Opened, SettingError> {
    if s.pin.is_none() {
        tracing::warn!(token = %ctx.label, "aws-kms token has no `pin`: any PIN logs in");
    }
    Ok(Opened::Service {
        backend: Arc::new(AwsKmsBackend::open(s)?),
        list_ttl: LIST_TTL,
    })
}

/// The registration of the `aws-kms` backend.
pub static ENTRY: Entry<AwsKmsSettings> = Entry { open: open_token };

/// What KMS says a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    Rsa(usize),
    Ec(Curve),
    Hmac(HashAlg),
    Symmetric,
}

impl Spec {
    fn parse(key_spec: &str) -> Option<Spec> {
        Some(match key_spec {
            "RSA_2048" => Spec::Rsa(2048),
            "RSA_3072" => Spec::Rsa(3072),
            "RSA_4096" => Spec::Rsa(4096),
            "HMAC_224" => Spec::Hmac(HashAlg::Sha224),
            "HMAC_256" => Spec::Hmac(HashAlg::Sha256),
            "HMAC_384" => Spec::Hmac(HashAlg::Sha384),
            "HMAC_512" => Spec::Hmac(HashAlg::Sha512),
            "SYMMETRIC_DEFAULT" => Spec::Symmetric,
            other => Spec::Ec(Curve::from_key_spec(other)?),
        })
    }

    fn is_asymmetric(self) -> bool {
        matches!(self, Spec::Rsa(_) | Spec::Ec(_))
    }
}

/// What the key was created for (`KeyUsage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    SignVerify,
    EncryptDecrypt,
    Mac,
    Other,
}

impl Usage {
    fn parse(s: &str) -> Usage {
        match s {
            "SIGN_VERIFY" => Usage::SignVerify,
            "ENCRYPT_DECRYPT" => Usage::EncryptDecrypt,
            "GENERATE_VERIFY_MAC" => Usage::Mac,
            _ => Usage::Other,
        }
    }
}

/// The facts about a key that requests need, cached by key ARN.
#[derive(Debug, Clone)]
struct KeyMeta {
    arn: String,
    key_id: String,
    spec: Spec,
    usage: Usage,
    imported: bool,
}

impl KeyMeta {
    /// From a DescribeKey `KeyMetadata`; `None` for key specs hsmux does not expose.
    fn from_metadata(m: &Value) -> Option<KeyMeta> {
        let spec = m
            .get("KeySpec")
            .or_else(|| m.get("CustomerMasterKeySpec"))
            .and_then(Value::as_str)?;
        Some(KeyMeta {
            arn: m.get("Arn")?.as_str()?.to_string(),
            key_id: m.get("KeyId")?.as_str()?.to_string(),
            spec: Spec::parse(spec)?,
            usage: Usage::parse(m.get("KeyUsage").and_then(Value::as_str).unwrap_or("")),
            imported: m.get("Origin").and_then(Value::as_str) == Some("EXTERNAL"),
        })
    }
}

/// One key as `list` found it: its objects, or `None` when it is not shown.
type Loaded = BackendResult<Option<Vec<RemoteObject>>>;

/// An AWS KMS account and region as one token.
pub struct AwsKmsBackend {
    client: KmsClient,
    settings: AwsKmsSettings,
    /// `settings.tag`, split.
    tag: Option<(String, String)>,
    /// `settings.pin`, resolved.
    pin: Option<Zeroizing<Vec<u8>>>,
    serial: String,
    keys: RwLock<HashMap<String, KeyMeta>>,
    /// Serializes nothing but `list` itself, so two refreshes do not race to fill the
    /// cache; requests never wait on it.
    listing: Mutex<()>,
}

impl std::fmt::Debug for AwsKmsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsBackend")
            .field("endpoint", &self.client.url)
            .field("region", &self.client.region)
            .finish_non_exhaustive()
    }
}

/// Alias names KMS accepts (`alias/` + this), checked before a key is created.
fn valid_alias_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 250
        && !name.starts_with("aws/")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
}

/// `CKA_ID` from a key id: the 16 bytes of its UUID (or of a multi-Region key's hex id),
/// else the first 16 bytes of its SHA-256.
pub fn key_id_bytes(key_id: &str) -> Vec<u8> {
    let hex: String = key_id
        .strip_prefix("mrk-")
        .unwrap_or(key_id)
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (0..16)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
    }
    openssl::sha::sha256(key_id.as_bytes())[..16].to_vec()
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(v: &Value, field: &str, op: &str) -> BackendResult<Vec<u8>> {
    let s = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| BackendError::Other(format!("KMS {op}: no {field} in the answer")))?;
    B64.decode(s)
        .map_err(|e| BackendError::Other(format!("KMS {op}: {field} is not base64: {e}")))
}

fn str_field<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

fn default_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://kms.{region}.amazonaws.com.cn")
    } else {
        format!("https://kms.{region}.amazonaws.com")
    }
}

impl AwsKmsBackend {
    /// Checks the settings and prepares the client; no network I/O (credentials are
    /// resolved on first use), so a token whose service is down still opens.
    pub fn open(settings: AwsKmsSettings) -> Result<Self, SettingError> {
        let source = CredentialSource::Chain {
            profile: settings.profile.clone(),
        };
        Self::build(settings, source, None)
    }

    /// Like [`AwsKmsBackend::open`], with fixed credentials instead of the chain.
    pub fn open_with_credentials(
        settings: AwsKmsSettings,
        creds: Credentials,
    ) -> Result<Self, SettingError> {
        Self::build(settings, CredentialSource::Static, Some(creds))
    }

    fn build(
        mut settings: AwsKmsSettings,
        source: CredentialSource,
        creds: Option<Credentials>,
    ) -> Result<Self, SettingError> {
        settings.check()?;
        let tag = settings.tag_pair()?;
        let pin = match &settings.pin {
            Some(p) => Some(p.resolve().map_err(|e| SettingError::key("pin", e))?),
            None => None,
        };
        if settings.region.is_empty() {
            let env = &credentials::process_env;
            let profile = settings
                .profile
                .clone()
                .or_else(|| env("AWS_PROFILE"))
                .unwrap_or_else(|| "default".into());
            settings.region = env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .or_else(|| credentials::profile_region(env, &profile))
                .ok_or_else(|| {
                    SettingError::key(
                        "region",
                        "no region: set `region` in the token, or AWS_REGION",
                    )
                })?;
        }
        let url = match &settings.endpoint {
            Some(e) if !e.is_empty() => {
                let e = e.trim_end_matches('/');
                format!("{e}/")
            }
            _ => format!("{}/", default_endpoint(&settings.region)),
        };
        let mut h = openssl::sha::Sha256::new();
        for part in [settings.region.as_str(), url.as_str()]
            .into_iter()
            .chain(settings.keys.iter().map(String::as_str))
        {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        if let Some((k, v)) = &tag {
            h.update(format!("tag:{k}={v}").as_bytes());
        }
        let serial = h.finish()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let client = KmsClient::new(
            url,
            settings.region.clone(),
            Duration::from_millis(settings.timeout_ms),
            settings.max_retries,
            source,
            creds,
        );
        Ok(AwsKmsBackend {
            client,
            settings,
            tag,
            pin,
            serial,
            keys: RwLock::new(HashMap::new()),
            listing: Mutex::new(()),
        })
    }

    /// HTTP requests sent to KMS so far (every attempt, retries included).
    pub fn requests_sent(&self) -> u64 {
        self.client.requests_sent()
    }

    /// The endpoint URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.client.url
    }

    fn call(&self, op: &str, body: Value) -> BackendResult<Value> {
        Ok(self.client.call(op, &body)?)
    }

    /// Pages through a List* operation, collecting `items_field` of every page.
    fn list_all(&self, op: &str, mut body: Value, items_field: &str) -> BackendResult<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            let page = self.call(op, body.clone())?;
            if let Some(items) = page.get(items_field).and_then(Value::as_array) {
                out.extend(items.iter().cloned());
            }
            match (
                page.get("Truncated").and_then(Value::as_bool),
                str_field(&page, "NextMarker"),
            ) {
                (Some(true), Some(marker)) => body["Marker"] = json!(marker),
                _ => return Ok(out),
            }
        }
    }

    /// The cached facts about a key, or one DescribeKey when it is not cached yet.
    fn meta(&self, key_ref: &str) -> BackendResult<KeyMeta> {
        if let Some(m) = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_ref)
        {
            return Ok(m.clone());
        }
        let d = self.call("DescribeKey", json!({ "KeyId": key_ref }))?;
        let m = d.get("KeyMetadata").cloned().unwrap_or(Value::Null);
        let meta = KeyMeta::from_metadata(&m).ok_or_else(|| {
            BackendError::Unsupported(format!(
                "KMS key {key_ref} has a key spec hsmux does not use"
            ))
        })?;
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_ref.to_string(), meta.clone());
        Ok(meta)
    }

    /// The objects of one key: private + public for key pairs, or one secret key.
    fn objects(meta: &KeyMeta, label: &str, spki: Option<Vec<u8>>) -> Vec<RemoteObject> {
        let id = key_id_bytes(&meta.key_id);
        let object = |class, kind, usage, spki: Option<Vec<u8>>| RemoteObject {
            key_ref: meta.arn.clone(),
            // A key ARN names one key for ever: KMS key ids are never reused.
            unique_id: meta.arn.clone(),
            class,
            id: id.clone(),
            label: label.to_string(),
            kind: Some(kind),
            public_key_der: spki,
            value: None,
            usage,
            never_extractable: !meta.imported,
            extra: Vec::new(),
        };
        let sign = KeyUsage {
            sign: true,
            ..Default::default()
        };
        let verify = KeyUsage {
            verify: true,
            ..Default::default()
        };
        let decrypt = KeyUsage {
            decrypt: true,
            ..Default::default()
        };
        let encrypt = KeyUsage {
            encrypt: true,
            ..Default::default()
        };
        match meta.spec {
            Spec::Rsa(_) | Spec::Ec(_) => {
                let kind = match meta.spec {
                    Spec::Rsa(bits) => KeyKind::Rsa { bits },
                    Spec::Ec(c) => KeyKind::Ec {
                        params: c.params().to_vec(),
                    },
                    _ => unreachable!(),
                };
                let (private, public) = match meta.usage {
                    Usage::SignVerify => (sign, verify),
                    Usage::EncryptDecrypt => (decrypt, encrypt),
                    _ => (KeyUsage::default(), KeyUsage::default()),
                };
                vec![
                    object(ObjectClass::PrivateKey, kind.clone(), private, spki.clone()),
                    object(ObjectClass::PublicKey, kind, public, spki),
                ]
            }
            Spec::Hmac(hash) => vec![object(
                ObjectClass::SecretKey,
                KeyKind::Hmac {
                    hash,
                    len: hash.digest_len(),
                },
                KeyUsage {
                    sign: true,
                    verify: true,
                    ..Default::default()
                },
                None,
            )],
            Spec::Symmetric => vec![object(
                ObjectClass::SecretKey,
                KeyKind::ServiceSymmetric,
                KeyUsage {
                    encrypt: true,
                    decrypt: true,
                    ..Default::default()
                },
                None,
            )],
        }
    }

    /// Whether a key passes the `keys` filter.
    fn wanted(&self, key_id: &str, arn: &str, aliases: &[(String, String)]) -> bool {
        if self.settings.keys.is_empty() {
            return true;
        }
        self.settings.keys.iter().any(|f| {
            f == key_id
                || f == arn
                || aliases
                    .iter()
                    .any(|(name, alias_arn)| f == name || f == alias_arn)
        })
    }

    /// DescribeKey, tag filter, GetPublicKey for one key; `None` when it is not shown.
    fn load_key(&self, arn: &str, label: &str) -> Loaded {
        let d = self.call("DescribeKey", json!({ "KeyId": arn }))?;
        let m = d.get("KeyMetadata").cloned().unwrap_or(Value::Null);
        if str_field(&m, "KeyState") != Some("Enabled") {
            return Ok(None);
        }
        let Some(meta) = KeyMeta::from_metadata(&m) else {
            return Ok(None);
        };
        if let Some((tk, tv)) = &self.tag {
            let tags = self.list_all("ListResourceTags", json!({ "KeyId": arn }), "Tags")?;
            let has = tags.iter().any(|t| {
                str_field(t, "TagKey") == Some(tk.as_str())
                    && str_field(t, "TagValue") == Some(tv.as_str())
            });
            if !has {
                return Ok(None);
            }
        }
        let spki = if meta.spec.is_asymmetric() {
            let p = self.call("GetPublicKey", json!({ "KeyId": arn }))?;
            Some(unb64(&p, "PublicKey", "GetPublicKey")?)
        } else {
            None
        };
        let label = if label.is_empty() {
            &meta.key_id
        } else {
            label
        };
        let objects = Self::objects(&meta, label, spki);
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(meta.arn.clone(), meta);
        Ok(Some(objects))
    }

    fn sign_body(&self, key_ref: &str, alg: &str, digest: &[u8]) -> Value {
        json!({
            "KeyId": key_ref,
            "Message": b64(digest),
            "MessageType": "DIGEST",
            "SigningAlgorithm": alg,
        })
    }

    fn mac_algorithm(meta: &KeyMeta, hash: HashAlg) -> BackendResult<&'static str> {
        let Spec::Hmac(key_hash) = meta.spec else {
            return Err(BackendError::NotPermitted(format!(
                "{} is not an HMAC key",
                meta.arn
            )));
        };
        if key_hash != hash {
            return Err(BackendError::Unsupported(format!(
                "HMAC with {hash:?} on a {key_hash:?} KMS key"
            )));
        }
        Ok(match hash {
            HashAlg::Sha224 => "HMAC_SHA_224",
            HashAlg::Sha256 => "HMAC_SHA_256",
            HashAlg::Sha384 => "HMAC_SHA_384",
            HashAlg::Sha512 => "HMAC_SHA_512",
            HashAlg::Sha1 => return Err(BackendError::Unsupported("HMAC-SHA1 in KMS".into())),
        })
    }

    fn check_mac_len(message: &[u8]) -> BackendResult<()> {
        if message.len() > 4096 {
            return Err(BackendError::InvalidInput(format!(
                "KMS MACs at most 4096 bytes, not {}",
                message.len()
            )));
        }
        Ok(())
    }

    fn encryption_context(aad: &[u8]) -> Option<Value> {
        (!aad.is_empty()).then(|| json!({ "aad": b64(aad) }))
    }

    /// Writes `CreateKey` for a spec: (KeySpec, KeyUsage).
    fn create_params(spec: &KeySpec) -> BackendResult<(String, &'static str)> {
        let u = spec.usage;
        let asym_usage = if u.sign {
            "SIGN_VERIFY"
        } else {
            "ENCRYPT_DECRYPT"
        };
        let hmac_spec = |hash: HashAlg| -> BackendResult<String> {
            match hash {
                HashAlg::Sha224 => Ok("HMAC_224".into()),
                HashAlg::Sha256 => Ok("HMAC_256".into()),
                HashAlg::Sha384 => Ok("HMAC_384".into()),
                HashAlg::Sha512 => Ok("HMAC_512".into()),
                HashAlg::Sha1 => Err(BackendError::Unsupported("HMAC-SHA1 keys in KMS".into())),
            }
        };
        match &spec.kind {
            KeyKind::Rsa { bits } if matches!(bits, 2048 | 3072 | 4096) => {
                Ok((format!("RSA_{bits}"), asym_usage))
            }
            KeyKind::Rsa { bits } => Err(BackendError::Unsupported(format!(
                "KMS has RSA keys of 2048, 3072 and 4096 bits, not {bits}"
            ))),
            KeyKind::Ec { params } => match Curve::from_params(params) {
                Some(c) => Ok((c.key_spec().into(), "SIGN_VERIFY")),
                None => Err(BackendError::Unsupported(
                    "KMS signs with P-256, P-384, P-521 and secp256k1 only".into(),
                )),
            },
            KeyKind::Hmac { hash, .. } => Ok((hmac_spec(*hash)?, "GENERATE_VERIFY_MAC")),
            KeyKind::GenericSecret { len } if u.sign || u.verify => {
                let hash = match len {
                    0 | 32 => HashAlg::Sha256,
                    28 => HashAlg::Sha224,
                    48 => HashAlg::Sha384,
                    64 => HashAlg::Sha512,
                    _ => {
                        return Err(BackendError::Unsupported(format!(
                            "KMS HMAC keys are 28, 32, 48 or 64 bytes, not {len}"
                        )))
                    }
                };
                Ok((hmac_spec(hash)?, "GENERATE_VERIFY_MAC"))
            }
            KeyKind::Aes { len: 0 | 32 } => Ok(("SYMMETRIC_DEFAULT".into(), "ENCRYPT_DECRYPT")),
            KeyKind::Aes { len } => Err(BackendError::Unsupported(format!(
                "KMS symmetric keys are 32 bytes, not {len}"
            ))),
            KeyKind::ServiceSymmetric => Ok(("SYMMETRIC_DEFAULT".into(), "ENCRYPT_DECRYPT")),
            other => Err(BackendError::Unsupported(format!(
                "KMS cannot create {other:?} keys"
            ))),
        }
    }
}

impl Backend for AwsKmsBackend {
    fn kind(&self) -> &'static str {
        "aws-kms"
    }

    fn serial(&self) -> String {
        self.serial.clone()
    }

    fn capabilities(&self) -> Capabilities {
        let ecdsa = |hash: Option<HashAlg>, curves: &[Curve]| SignScheme::Ecdsa {
            hash,
            curves: curves.iter().map(|c| c.params().to_vec()).collect(),
        };
        // KMS binds each curve to one hash, and signs PKCS#1 v1.5 and PSS (salt = hash
        // length, MGF1 over the same hash) with SHA-2 only; OAEP decrypts with SHA-1 or
        // SHA-256, no label.
        let sha2 = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];
        let mut signatures = vec![
            ecdsa(None, &[]),
            ecdsa(Some(HashAlg::Sha256), &[Curve::P256, Curve::Secp256k1]),
            ecdsa(Some(HashAlg::Sha384), &[Curve::P384]),
            ecdsa(Some(HashAlg::Sha512), &[Curve::P521]),
        ];
        for hash in sha2 {
            signatures.push(SignScheme::RsaPkcs1 { hash: Some(hash) });
            signatures.push(SignScheme::RsaPss {
                hash,
                salt: PssSalt::HashLen,
                mgf: Mgf::SameHash,
            });
        }
        Capabilities {
            signatures,
            macs: sha2
                .map(|hash| MacScheme {
                    hash,
                    min_key_len: 0,
                })
                .to_vec(),
            decryption: [HashAlg::Sha1, HashAlg::Sha256]
                .into_iter()
                .map(|hash| DecryptScheme::RsaOaep {
                    hash,
                    mgf: Mgf::SameHash,
                    label: false,
                })
                .collect(),
            symmetric: vec![SymmetricScheme::ServiceSymmetric],
            generate: vec![
                KeyKind::Rsa { bits: 2048 },
                KeyKind::Rsa { bits: 3072 },
                KeyKind::Rsa { bits: 4096 },
                KeyKind::Ec {
                    params: Curve::P256.params().to_vec(),
                },
                KeyKind::Ec {
                    params: Curve::P384.params().to_vec(),
                },
                KeyKind::Ec {
                    params: Curve::P521.params().to_vec(),
                },
                KeyKind::Ec {
                    params: Curve::Secp256k1.params().to_vec(),
                },
                KeyKind::Hmac {
                    hash: HashAlg::Sha256,
                    len: 32,
                },
                KeyKind::Hmac {
                    hash: HashAlg::Sha384,
                    len: 48,
                },
                KeyKind::Hmac {
                    hash: HashAlg::Sha512,
                    len: 64,
                },
                KeyKind::ServiceSymmetric,
                KeyKind::Aes { len: 32 },
            ],
            destroy: true,
            create_objects: false,
        }
    }

    fn login(&self, pin: &[u8]) -> BackendResult<()> {
        match &self.pin {
            None => Ok(()),
            Some(expected) => {
                if expected.len() == pin.len() && openssl::memcmp::eq(expected, pin) {
                    Ok(())
                } else {
                    Err(BackendError::PinIncorrect)
                }
            }
        }
    }

    fn list(&self) -> BackendResult<Vec<RemoteObject>> {
        let _one_listing = self.listing.lock().unwrap_or_else(|e| e.into_inner());
        let keys = self.list_all("ListKeys", json!({ "Limit": 1000 }), "Keys")?;
        let aliases = self.list_all("ListAliases", json!({ "Limit": 100 }), "Aliases")?;
        let mut by_key: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for a in &aliases {
            if let (Some(target), Some(name)) =
                (str_field(a, "TargetKeyId"), str_field(a, "AliasName"))
            {
                by_key.entry(target).or_default().push((
                    name.to_string(),
                    str_field(a, "AliasArn").unwrap_or("").to_string(),
                ));
            }
        }
        // (ARN, label) of each key that passes the `keys` filter.
        let mut todo: Vec<(String, String)> = Vec::new();
        for k in &keys {
            let (Some(id), Some(arn)) = (str_field(k, "KeyId"), str_field(k, "KeyArn")) else {
                continue;
            };
            let names = by_key.get(id).map(Vec::as_slice).unwrap_or(&[]);
            if !self.wanted(id, arn, names) {
                continue;
            }
            // AWS-managed keys (alias/aws/…) belong to services, not to the customer.
            if names.iter().any(|(n, _)| n.starts_with("alias/aws/"))
                && self.settings.keys.is_empty()
            {
                continue;
            }
            let label = names
                .iter()
                .find_map(|(n, _)| n.strip_prefix("alias/"))
                .unwrap_or("")
                .to_string();
            todo.push((arn.to_string(), label));
        }
        // A few requests in flight at once: listing an account of many keys is one
        // DescribeKey (+ GetPublicKey) each.
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, Loaded)>> = Mutex::new(Vec::new());
        let workers = todo.len().clamp(1, 8);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((arn, label)) = todo.get(i) else {
                        break;
                    };
                    let r = self.load_key(arn, label);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, r));
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        results.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (_, r) in results {
            match r {
                Ok(Some(objs)) => out.extend(objs),
                Ok(None) => {}
                // Deleted while listing, or this caller may list but not describe it.
                Err(BackendError::NotFound(_)) | Err(BackendError::NotPermitted(_)) => {}
                Err(BackendError::Auth(m)) if m.contains("AccessDeniedException") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn sign(&self, key_ref: &str, req: &SignRequest) -> BackendResult<Vec<u8>> {
        let meta = self.meta(key_ref)?;
        match req {
            SignRequest::Ecdsa { hash, digest } => {
                let Spec::Ec(curve) = meta.spec else {
                    return Err(BackendError::NotPermitted(format!(
                        "{key_ref} is not an EC key"
                    )));
                };
                let want = curve.hash();
                if digest.len() != want.digest_len() || hash.is_some_and(|h| h != want) {
                    return Err(BackendError::InvalidInput(format!(
                        "KMS signs with {} only over a {}-byte {want:?} digest, not {} bytes{}",
                        curve.key_spec(),
                        want.digest_len(),
                        digest.len(),
                        hash.map(|h| format!(" of {h:?}")).unwrap_or_default()
                    )));
                }
                let alg = match want {
                    HashAlg::Sha256 => "ECDSA_SHA_256",
                    HashAlg::Sha384 => "ECDSA_SHA_384",
                    _ => "ECDSA_SHA_512",
                };
                let r = self.call("Sign", self.sign_body(key_ref, alg, digest))?;
                der::ecdsa_der_to_raw(&unb64(&r, "Signature", "Sign")?, curve)
            }
            SignRequest::RsaPkcs1 { hash, digest_info } => {
                if !matches!(meta.spec, Spec::Rsa(_)) {
                    return Err(BackendError::NotPermitted(format!(
                        "{key_ref} is not an RSA key"
                    )));
                }
                let Some((h, digest)) = HashAlg::from_digest_info(digest_info) else {
                    return Err(BackendError::Unsupported(
                        "KMS signs PKCS#1 v1.5 only over a DigestInfo of SHA-256/384/512, not raw data"
                            .into(),
                    ));
                };
                if hash.is_some_and(|x| x != h) {
                    return Err(BackendError::InvalidInput(format!(
                        "DigestInfo of {h:?} given for a {hash:?} signature"
                    )));
                }
                let alg = match h {
                    HashAlg::Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
                    HashAlg::Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
                    HashAlg::Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
                    other => {
                        return Err(BackendError::Unsupported(format!(
                            "KMS has no PKCS#1 v1.5 signature with {other:?}"
                        )))
                    }
                };
                let r = self.call("Sign", self.sign_body(key_ref, alg, digest))?;
                unb64(&r, "Signature", "Sign")
            }
            SignRequest::RsaPss {
                hash,
                mgf,
                salt_len,
                digest,
            } => {
                if !matches!(meta.spec, Spec::Rsa(_)) {
                    return Err(BackendError::NotPermitted(format!(
                        "{key_ref} is not an RSA key"
                    )));
                }
                let alg = match hash {
                    HashAlg::Sha256 => "RSASSA_PSS_SHA_256",
                    HashAlg::Sha384 => "RSASSA_PSS_SHA_384",
                    HashAlg::Sha512 => "RSASSA_PSS_SHA_512",
                    other => {
                        return Err(BackendError::Unsupported(format!(
                            "KMS has no PSS signature with {other:?}"
                        )))
                    }
                };
                if mgf != hash || *salt_len != hash.digest_len() {
                    return Err(BackendError::Unsupported(format!(
                        "KMS signs PSS only with MGF1 of the same hash and a salt of the hash \
                         length ({} bytes); asked MGF1-{mgf:?}, salt {salt_len}",
                        hash.digest_len()
                    )));
                }
                if digest.len() != hash.digest_len() {
                    return Err(BackendError::InvalidInput(format!(
                        "a {hash:?} digest is {} bytes, not {}",
                        hash.digest_len(),
                        digest.len()
                    )));
                }
                let r = self.call("Sign", self.sign_body(key_ref, alg, digest))?;
                unb64(&r, "Signature", "Sign")
            }
            SignRequest::Hmac { hash, message } => {
                let alg = Self::mac_algorithm(&meta, *hash)?;
                Self::check_mac_len(message)?;
                let r = self.call(
                    "GenerateMac",
                    json!({ "KeyId": key_ref, "Message": b64(message), "MacAlgorithm": alg }),
                )?;
                unb64(&r, "Mac", "GenerateMac")
            }
            SignRequest::EdDsa { .. } => Err(BackendError::Unsupported(
                "Ed25519 signing with KMS keys".into(),
            )),
        }
    }

    fn verify(&self, key_ref: &str, req: &SignRequest, signature: &[u8]) -> BackendResult<bool> {
        let SignRequest::Hmac { hash, message } = req else {
            return Err(BackendError::Unsupported(
                "verification in KMS (the module verifies with the public key)".into(),
            ));
        };
        let meta = self.meta(key_ref)?;
        let alg = Self::mac_algorithm(&meta, *hash)?;
        Self::check_mac_len(message)?;
        if signature.len() != hash.digest_len() {
            return Ok(false);
        }
        let body = json!({
            "KeyId": key_ref,
            "Message": b64(message),
            "Mac": b64(signature),
            "MacAlgorithm": alg,
        });
        match self.client.call("VerifyMac", &body) {
            Ok(r) => Ok(r.get("MacValid").and_then(Value::as_bool) == Some(true)),
            Err(f) if f.code == "KMSInvalidMacException" => Ok(false),
            Err(f) => Err(f.error),
        }
    }

    fn decrypt(&self, key_ref: &str, req: &CipherRequest) -> BackendResult<Vec<u8>> {
        let body = match req {
            CipherRequest::RsaOaep {
                hash,
                mgf,
                label,
                data,
            } => {
                let alg = match (hash, mgf) {
                    (HashAlg::Sha1, HashAlg::Sha1) => "RSAES_OAEP_SHA_1",
                    (HashAlg::Sha256, HashAlg::Sha256) => "RSAES_OAEP_SHA_256",
                    _ => {
                        return Err(BackendError::Unsupported(format!(
                            "KMS decrypts OAEP with SHA-1 or SHA-256 and MGF1 of the same \
                             hash only; asked {hash:?} with MGF1-{mgf:?}"
                        )))
                    }
                };
                if !label.is_empty() {
                    return Err(BackendError::Unsupported(
                        "KMS decrypts OAEP without a label only".into(),
                    ));
                }
                json!({ "KeyId": key_ref, "CiphertextBlob": b64(data), "EncryptionAlgorithm": alg })
            }
            CipherRequest::ServiceSymmetric { aad, data } => {
                let mut b = json!({ "KeyId": key_ref, "CiphertextBlob": b64(data) });
                if let Some(ctx) = Self::encryption_context(aad) {
                    b["EncryptionContext"] = ctx;
                }
                b
            }
            _ => {
                return Err(BackendError::Unsupported(
                    "KMS decrypts RSA-OAEP and its own symmetric ciphertexts only".into(),
                ))
            }
        };
        let r = self.call("Decrypt", body)?;
        unb64(&r, "Plaintext", "Decrypt")
    }

    fn encrypt(&self, key_ref: &str, req: &CipherRequest) -> BackendResult<Vec<u8>> {
        let CipherRequest::ServiceSymmetric { aad, data } = req else {
            return Err(BackendError::Unsupported(
                "encryption in KMS other than with its symmetric keys (the module encrypts \
                 with public keys)"
                    .into(),
            ));
        };
        if data.len() > 4096 {
            return Err(BackendError::InvalidInput(format!(
                "KMS encrypts at most 4096 bytes, not {}",
                data.len()
            )));
        }
        let mut b = json!({ "KeyId": key_ref, "Plaintext": b64(data) });
        if let Some(ctx) = Self::encryption_context(aad) {
            b["EncryptionContext"] = ctx;
        }
        let r = self.call("Encrypt", b)?;
        unb64(&r, "CiphertextBlob", "Encrypt")
    }

    fn generate(&self, spec: &KeySpec) -> BackendResult<Vec<RemoteObject>> {
        if !valid_alias_name(&spec.label) {
            return Err(BackendError::InvalidInput(format!(
                "a KMS key needs a label usable as an alias: 1-250 of A-Z a-z 0-9 / _ -, not \
                 starting with aws/ (got '{}')",
                spec.label
            )));
        }
        let (key_spec, usage) = Self::create_params(spec)?;
        let mut body = json!({
            "KeySpec": key_spec,
            "KeyUsage": usage,
            "Description": format!("hsmux: {}", spec.label),
        });
        if let Some((k, v)) = &self.tag {
            body["Tags"] = json!([{ "TagKey": k, "TagValue": v }]);
        }
        let created = self.call("CreateKey", body)?;
        let m = created.get("KeyMetadata").cloned().unwrap_or(Value::Null);
        let meta = KeyMeta::from_metadata(&m).ok_or_else(|| {
            BackendError::Other("KMS CreateKey: no usable KeyMetadata in the answer".into())
        })?;
        let alias = format!("alias/{}", spec.label);
        if let Err(e) = self.call(
            "CreateAlias",
            json!({ "AliasName": alias, "TargetKeyId": meta.key_id }),
        ) {
            // A key nobody can find by name is litter: schedule it away at once.
            let _ = self.call(
                "ScheduleKeyDeletion",
                json!({ "KeyId": meta.arn, "PendingWindowInDays": 7 }),
            );
            return Err(e);
        }
        let spki = if meta.spec.is_asymmetric() {
            let p = self.call("GetPublicKey", json!({ "KeyId": meta.arn }))?;
            Some(unb64(&p, "PublicKey", "GetPublicKey")?)
        } else {
            None
        };
        let objects = Self::objects(&meta, &spec.label, spki);
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(meta.arn.clone(), meta);
        Ok(objects)
    }

    fn destroy(&self, key_ref: &str) -> BackendResult<()> {
        let scheduled = self.client.call(
            "ScheduleKeyDeletion",
            &json!({
                "KeyId": key_ref,
                "PendingWindowInDays": self.settings.deletion_window_days,
            }),
        );
        match scheduled {
            Ok(_) => {}
            // The other half of the pair was destroyed first: already pending.
            Err(f) if f.code == "KMSInvalidStateException" => {
                let d = self.call("DescribeKey", json!({ "KeyId": key_ref }))?;
                if d.pointer("/KeyMetadata/KeyState").and_then(Value::as_str)
                    != Some("PendingDeletion")
                {
                    return Err(f.error);
                }
            }
            Err(f) => return Err(f.error),
        }
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key_ref);
        let aliases = self.list_all("ListAliases", json!({ "KeyId": key_ref }), "Aliases")?;
        for a in aliases {
            if let Some(name) = str_field(&a, "AliasName") {
                self.call("DeleteAlias", json!({ "AliasName": name }))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_become_sixteen_stable_bytes() {
        assert_eq!(
            key_id_bytes("1234abcd-12ab-34cd-56ef-1234567890ab"),
            vec![
                0x12, 0x34, 0xab, 0xcd, 0x12, 0xab, 0x34, 0xcd, 0x56, 0xef, 0x12, 0x34, 0x56, 0x78,
                0x90, 0xab
            ]
        );
        assert_eq!(
            key_id_bytes("mrk-1234abcd12ab34cd56ef1234567890ab"),
            key_id_bytes("1234abcd-12ab-34cd-56ef-1234567890ab")
        );
        assert_eq!(key_id_bytes("odd").len(), 16);
    }

    #[test]
    fn alias_names() {
        assert!(valid_alias_name("web-tls/prod_1"));
        assert!(!valid_alias_name(""));
        assert!(!valid_alias_name("my key"));
        assert!(!valid_alias_name("aws/ebs"));
        assert!(!valid_alias_name("é"));
    }

    #[test]
    fn open_checks_settings_without_network() {
        let s = AwsKmsSettings {
            region: "eu-west-1".into(),
            ..Default::default()
        };
        let b = AwsKmsBackend::open(s.clone()).unwrap();
        assert_eq!(b.endpoint(), "https://kms.eu-west-1.amazonaws.com/");
        assert_eq!(b.serial().len(), 16);
        assert_eq!(b.requests_sent(), 0);
        let other = AwsKmsBackend::open(AwsKmsSettings {
            keys: vec!["alias/x".into()],
            ..s.clone()
        })
        .unwrap();
        assert_ne!(b.serial(), other.serial());
        for bad in [6, 31] {
            let e = AwsKmsBackend::open(AwsKmsSettings {
                deletion_window_days: bad,
                ..s.clone()
            })
            .unwrap_err();
            assert_eq!(e.key.as_deref(), Some("deletion_window_days"), "{e}");
        }
    }

    #[test]
    fn login_compares_the_configured_pin() {
        let b = AwsKmsBackend::open(AwsKmsSettings {
            region: "us-east-1".into(),
            pin: Some(SecretRef::new("1234")),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(b.login(b"1234"), Ok(()));
        assert_eq!(b.login(b"1235"), Err(BackendError::PinIncorrect));
        assert_eq!(b.login(b"12345"), Err(BackendError::PinIncorrect));
        let open = AwsKmsBackend::open(AwsKmsSettings {
            region: "us-east-1".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(open.login(b"anything"), Ok(()));
    }
}
