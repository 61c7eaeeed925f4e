//! The contract between the token layer and a remote key service.
//!
//! A backend knows its service and nothing of PKCS#11 sessions, handles or attribute
//! rules: it lists keys, and signs, decrypts or encrypts with them when handed an
//! already-validated, mechanism-neutral request. Hashing, verification and public-key
//! encryption happen in the module, so a signature costs exactly one backend call.
//! One instance serves one configured token and is shared by every session, so it is
//! `Send + Sync` and must never hold a lock across a network or vendor call.

use std::fmt;

/// What went wrong in a backend, in terms the token layer can map to a precise `CK_RV`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// The key or object does not exist (any more).
    NotFound(String),
    /// The key exists but may not do this (disabled, wrong usage, policy).
    NotPermitted(String),
    /// The service cannot do this algorithm or parameter set.
    Unsupported(String),
    /// The input is not acceptable (length, format).
    InvalidInput(String),
    /// The ciphertext or wrapped blob failed to decrypt / authenticate.
    InvalidCiphertext(String),
    /// The PIN (or password) given to `login` is wrong.
    PinIncorrect,
    /// The PIN is locked at the service.
    PinLocked,
    /// Credentials were refused (expired token, bad signature, no permission to call).
    Auth(String),
    /// The service could not be reached or did not answer in time.
    Unavailable(String),
    /// A vendor PKCS#11 library's own return value, passed through unchanged.
    Vendor(u64, String),
    /// Anything else.
    Other(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::NotFound(m) => write!(f, "not found: {m}"),
            BackendError::NotPermitted(m) => write!(f, "not permitted: {m}"),
            BackendError::Unsupported(m) => write!(f, "unsupported: {m}"),
            BackendError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            BackendError::InvalidCiphertext(m) => write!(f, "invalid ciphertext: {m}"),
            BackendError::PinIncorrect => write!(f, "PIN incorrect"),
            BackendError::PinLocked => write!(f, "PIN locked"),
            BackendError::Auth(m) => write!(f, "credentials refused: {m}"),
            BackendError::Unavailable(m) => write!(f, "service unavailable: {m}"),
            BackendError::Vendor(rv, m) => write!(f, "vendor library returned {rv:#x}: {m}"),
            BackendError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for BackendError {}

/// Result of a backend call.
pub type BackendResult<T> = Result<T, BackendError>;

pub use hsmux_core::HashAlg;

/// A signature request. Digest-level where the algorithm allows, so the module hashes
/// locally (including multi-part input) and the service sees one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignRequest {
    /// ECDSA over a digest computed by the module (`hash` is `None` for a raw
    /// `CKM_ECDSA` input of unknown origin). Result: `r‖s`, each the field length.
    Ecdsa {
        hash: Option<HashAlg>,
        digest: Vec<u8>,
    },
    /// RSASSA-PKCS1-v1_5: `digest_info` is the DER DigestInfo (or, for `hash == None`,
    /// arbitrary data up to k−11 bytes, as raw `CKM_RSA_PKCS` allows).
    RsaPkcs1 {
        hash: Option<HashAlg>,
        digest_info: Vec<u8>,
    },
    /// RSASSA-PSS over a digest with MGF1(`mgf`) and a salt of `salt_len` bytes.
    RsaPss {
        hash: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
        digest: Vec<u8>,
    },
    /// HMAC over the whole message.
    Hmac { hash: HashAlg, message: Vec<u8> },
    /// Ed25519 over the whole message.
    EdDsa { message: Vec<u8> },
}

/// A decryption or encryption request with a key that stays in the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherRequest {
    /// RSAES-OAEP.
    RsaOaep {
        hash: HashAlg,
        mgf: HashAlg,
        label: Vec<u8>,
        data: Vec<u8>,
    },
    /// RSAES-PKCS1-v1_5.
    RsaPkcs1 { data: Vec<u8> },
    /// Raw RSA.
    RsaRaw { data: Vec<u8> },
    /// AES-GCM; ciphertext is followed by the tag.
    AesGcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: usize,
        data: Vec<u8>,
    },
    /// AES-CBC with PKCS#7 padding.
    AesCbcPad { iv: [u8; 16], data: Vec<u8> },
    /// The service's own authenticated symmetric format (e.g. a KMS ciphertext blob);
    /// `aad` is bound as the service allows (an encryption context).
    ServiceSymmetric { aad: Vec<u8>, data: Vec<u8> },
}

/// Raw PKCS#11 attributes `(CKA_*, value)` kept verbatim by PKCS#11 services.
pub type RawAttributes = Vec<(u64, Vec<u8>)>;

/// What kind of key a backend object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA of this many modulus bits.
    Rsa { bits: usize },
    /// EC on the named curve given by its DER OID (as in `CKA_EC_PARAMS`).
    Ec { params: Vec<u8> },
    /// Ed25519.
    Ed25519,
    /// AES of this many bytes.
    Aes { len: usize },
    /// An HMAC key for this hash (length unknown to the module if `len` is 0).
    Hmac { hash: HashAlg, len: usize },
    /// A generic secret of this many bytes.
    GenericSecret { len: usize },
    /// A symmetric key usable only through the service's own format.
    ServiceSymmetric,
}

/// The role of one backend object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectClass {
    /// The private half of a key pair (stays in the service).
    PrivateKey,
    /// The public half, with its value.
    PublicKey,
    /// A secret (symmetric) key (stays in the service).
    SecretKey,
    /// An X.509 certificate.
    Certificate,
    /// An opaque data object.
    Data,
}

/// What a key may be used for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// Sign / MAC.
    pub sign: bool,
    /// Verify.
    pub verify: bool,
    /// Encrypt.
    pub encrypt: bool,
    /// Decrypt.
    pub decrypt: bool,
    /// Wrap other keys.
    pub wrap: bool,
    /// Unwrap other keys.
    pub unwrap: bool,
    /// Derive.
    pub derive: bool,
}

/// One object a backend exposes. All objects of one key share `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// The backend's own reference (vendor object handle, key ARN + version, …);
    /// opaque to the token layer and passed back in requests.
    pub key_ref: String,
    /// Which kind of object.
    pub class: ObjectClass,
    /// Stable identity bytes shared by the halves of a key (`CKA_ID`).
    pub id: Vec<u8>,
    /// Alias / name (`CKA_LABEL`).
    pub label: String,
    /// The key kind; `None` for certificates and data objects.
    pub kind: Option<KeyKind>,
    /// SubjectPublicKeyInfo DER for asymmetric keys (public and private halves).
    pub public_key_der: Option<Vec<u8>>,
    /// Certificate DER, or a data object's value.
    pub value: Option<Vec<u8>>,
    /// Permitted uses.
    pub usage: KeyUsage,
    /// The key was generated in the service and can never be read out.
    pub never_extractable: bool,
    /// Extra PKCS#11 attributes the service keeps verbatim (`(CKA_*, value)`), for
    /// backends that are themselves PKCS#11 (subject, dates, …). Others leave it empty.
    pub extra: RawAttributes,
    /// The service's own identity of this object: the same in every process and never
    /// given to another object, even after this one is destroyed (a key ARN, a vendor
    /// `CKA_UNIQUE_ID`, a fingerprint of what the object is). `CKA_UNIQUE_ID` and the
    /// token's handle table come from it; `key_ref` may differ between processes.
    pub unique_id: String,
}

/// A request to create a key in the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// What to create.
    pub kind: KeyKind,
    /// Alias / name.
    pub label: String,
    /// Requested `CKA_ID` (empty: the backend picks one).
    pub id: Vec<u8>,
    /// Uses for the private/secret part.
    pub usage: KeyUsage,
    /// Extra PKCS#11 attributes from the application's templates, for PKCS#11 services:
    /// (public template, private/secret template).
    pub extra: (RawAttributes, RawAttributes),
}

/// How a service chooses the PSS salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PssSalt {
    /// Any salt length the key size allows.
    Any,
    /// Only a salt as long as the hash.
    HashLen,
}

/// How a service chooses the MGF1 hash of PSS and OAEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mgf {
    /// Any MGF1 hash.
    Any,
    /// Only MGF1 over the scheme's own hash.
    SameHash,
}

/// One signature scheme a service computes with a private key it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignScheme {
    /// ECDSA over a digest of `hash` (`None`: raw `CKM_ECDSA`, a digest of unknown
    /// origin), with keys on `curves` (DER OIDs as in `CKA_EC_PARAMS`; empty: any curve).
    Ecdsa {
        /// The digest's hash.
        hash: Option<HashAlg>,
        /// The curves the scheme works with; empty: every curve.
        curves: Vec<Vec<u8>>,
    },
    /// RSASSA-PKCS1-v1_5 over a DigestInfo of `hash` (`None`: arbitrary data up to
    /// k−11 bytes, as raw `CKM_RSA_PKCS` allows; without it, raw `CKM_RSA_PKCS` input
    /// must be a DigestInfo of one of the scheme hashes).
    RsaPkcs1 {
        /// The DigestInfo's hash.
        hash: Option<HashAlg>,
    },
    /// RSASSA-PSS over a digest of `hash`.
    RsaPss {
        /// The message hash.
        hash: HashAlg,
        /// Which salt lengths.
        salt: PssSalt,
        /// Which MGF1 hashes.
        mgf: Mgf,
    },
    /// Ed25519 over the whole message.
    EdDsa,
}

/// An HMAC a service computes with a secret key it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacScheme {
    /// The hash.
    pub hash: HashAlg,
    /// The shortest key, in bytes, the service accepts for it (0: any).
    pub min_key_len: usize,
}

/// One decryption scheme a service runs with a private key it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptScheme {
    /// RSAES-OAEP with `hash`.
    RsaOaep {
        /// The label hash.
        hash: HashAlg,
        /// Which MGF1 hashes.
        mgf: Mgf,
        /// A non-empty label is honoured.
        label: bool,
    },
    /// RSAES-PKCS1-v1_5.
    RsaPkcs1,
    /// Raw RSA.
    RsaRaw,
}

/// A symmetric scheme a service runs, both ways, with a secret key it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymmetricScheme {
    /// AES-GCM.
    AesGcm,
    /// AES-CBC with PKCS#7 padding.
    AesCbcPad,
    /// The service's own authenticated format ([`CipherRequest::ServiceSymmetric`]).
    ServiceSymmetric,
}

/// Exactly what a backend's keys can do; the token advertises mechanisms from this and
/// nothing else, and refuses at `C_*Init` what it does not list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Signatures with private keys.
    pub signatures: Vec<SignScheme>,
    /// HMACs with secret keys. A key whose kind names its hash ([`KeyKind::Hmac`])
    /// MACs with that hash only.
    pub macs: Vec<MacScheme>,
    /// Decryption with private keys.
    pub decryption: Vec<DecryptScheme>,
    /// Encryption and decryption with secret keys.
    pub symmetric: Vec<SymmetricScheme>,
    /// Key kinds `generate` can create.
    pub generate: Vec<KeyKind>,
    /// `destroy` works.
    pub destroy: bool,
    /// `create_object` works (certificates, data objects, imported keys).
    pub create_objects: bool,
}

/// A remote key service serving one token.
pub trait Backend: Send + Sync {
    /// Short name of the backend kind (`pkcs11`, `aws-kms`, …), shown as the token model.
    fn kind(&self) -> &'static str;
    /// A stable serial number for the token (≤ 16 characters).
    fn serial(&self) -> String;
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;
    /// The application's user `C_Login`: check (or pass through) the PIN.
    fn login(&self, pin: &[u8]) -> BackendResult<()>;
    /// The application logged out.
    fn logout(&self) {}
    /// Every object, with metadata and public values. Called on first use and on cache
    /// refresh, never on a hot path.
    fn list(&self) -> BackendResult<Vec<RemoteObject>>;
    /// Signs with a private or secret key.
    fn sign(&self, key_ref: &str, req: &SignRequest) -> BackendResult<Vec<u8>>;
    /// Verifies with a secret key that stays in the service (HMAC); asymmetric
    /// verification is done by the module with the public key.
    fn verify(&self, key_ref: &str, req: &SignRequest, signature: &[u8]) -> BackendResult<bool> {
        let _ = (key_ref, req, signature);
        Err(BackendError::Unsupported("verify in the service".into()))
    }
    /// Decrypts with a private or secret key.
    fn decrypt(&self, key_ref: &str, req: &CipherRequest) -> BackendResult<Vec<u8>>;
    /// Encrypts with a secret key that stays in the service.
    fn encrypt(&self, key_ref: &str, req: &CipherRequest) -> BackendResult<Vec<u8>> {
        let _ = (key_ref, req);
        Err(BackendError::Unsupported(
            "encryption in the service".into(),
        ))
    }
    /// Creates a key; returns its objects (private + public, or the secret key).
    fn generate(&self, spec: &KeySpec) -> BackendResult<Vec<RemoteObject>> {
        let _ = spec;
        Err(BackendError::Unsupported("key generation".into()))
    }
    /// Stores a PKCS#11 object given as raw attributes (PKCS#11 services only).
    fn create_object(&self, attrs: &[(u64, Vec<u8>)]) -> BackendResult<RemoteObject> {
        let _ = attrs;
        Err(BackendError::Unsupported("creating objects".into()))
    }
    /// Destroys (or schedules the deletion of) an object.
    fn destroy(&self, key_ref: &str) -> BackendResult<()> {
        let _ = key_ref;
        Err(BackendError::Unsupported("destroying keys".into()))
    }
}
