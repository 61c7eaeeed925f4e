//! The adapter between the token core and a [`Backend`]: how a service's keys look to
//! PKCS#11 clients, which mechanisms they can do (from the backend's capabilities, the
//! same answer for `C_GetMechanismList` and every `C_*Init`), and the operations that hash
//! or buffer locally and then make exactly one backend call.

use crate::object::RemoteKey;
use crate::{bail, Attributes, Error, Result};
use cryptoki_sys::*;
use hsmux_backends::{
    Backend, BackendError, Capabilities, CipherRequest, DecryptScheme, HashAlg, KeyKind, Mgf,
    ObjectClass, PssSalt, RemoteObject, SignRequest, SignScheme, SymmetricScheme,
};
use hsmux_mech::{CipherOp, KeyMaterial, Mechanism, SignInput, SignOp, VerifyOp};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Key type of a service-only symmetric key (e.g. a KMS `SYMMETRIC_DEFAULT` key).
pub const CKK_HSMUX_SERVICE_SYMMETRIC: CK_KEY_TYPE = CKK_VENDOR_DEFINED | 0x4853_0001;

/// A backend and what it can do, read once when its token opened: every `C_*Init` on a
/// service key checks these capabilities without asking the backend again.
#[derive(Clone)]
pub struct Service {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// Its capabilities.
    pub caps: Arc<Capabilities>,
}

impl Service {
    /// Reads the backend's capabilities once.
    pub fn new(backend: Arc<dyn Backend>) -> Service {
        Service {
            caps: Arc::new(backend.capabilities()),
            backend,
        }
    }
}

/// Maps a backend failure to the `CK_RV` a client can act on, keeping the detail for the log.
pub fn backend_err(e: BackendError, what: &str) -> Error {
    let rv = match &e {
        BackendError::NotFound(_) => CKR_KEY_HANDLE_INVALID,
        BackendError::NotPermitted(_) => CKR_KEY_FUNCTION_NOT_PERMITTED,
        BackendError::Unsupported(_) => CKR_MECHANISM_PARAM_INVALID,
        BackendError::InvalidInput(_) => CKR_DATA_INVALID,
        BackendError::InvalidCiphertext(_) => CKR_ENCRYPTED_DATA_INVALID,
        BackendError::PinIncorrect => CKR_PIN_INCORRECT,
        BackendError::PinLocked => CKR_PIN_LOCKED,
        BackendError::Auth(_) | BackendError::Unavailable(_) | BackendError::Other(_) => {
            CKR_DEVICE_ERROR
        }
        BackendError::Vendor(rv, _) => *rv as CK_RV,
    };
    Error::new(rv, format!("{what}: {e}"))
}

fn key_type_of(kind: &KeyKind) -> CK_KEY_TYPE {
    match kind {
        KeyKind::Rsa { .. } => CKK_RSA,
        KeyKind::Ec { .. } => CKK_EC,
        KeyKind::Ed25519 => CKK_EC_EDWARDS,
        KeyKind::Aes { .. } => CKK_AES,
        KeyKind::Hmac { .. } | KeyKind::GenericSecret { .. } => CKK_GENERIC_SECRET,
        KeyKind::ServiceSymmetric => CKK_HSMUX_SERVICE_SYMMETRIC,
    }
}

/// The PKCS#11 attributes of a backend object. Such objects are read-only here: their
/// truth is in the service.
pub fn describe(ro: &RemoteObject, destroyable: bool) -> Result<Attributes> {
    let mut a = Attributes::new();
    let class = match ro.class {
        ObjectClass::PrivateKey => CKO_PRIVATE_KEY,
        ObjectClass::PublicKey => CKO_PUBLIC_KEY,
        ObjectClass::SecretKey => CKO_SECRET_KEY,
        ObjectClass::Certificate => CKO_CERTIFICATE,
        ObjectClass::Data => CKO_DATA,
    };
    a.set_ulong(CKA_CLASS, class);
    a.set_bool(CKA_TOKEN, true);
    a.set_bool(
        CKA_PRIVATE,
        matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY),
    );
    a.set_bool(CKA_MODIFIABLE, false);
    a.set_bool(CKA_COPYABLE, false);
    a.set_bool(CKA_DESTROYABLE, destroyable);
    a.set(CKA_LABEL, ro.label.as_bytes().to_vec());
    a.set(
        CKA_UNIQUE_ID,
        openssl::sha::sha256(ro.unique_id.as_bytes())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    );
    let u = ro.usage;
    if let Some(kind) = &ro.kind {
        a.set_ulong(CKA_KEY_TYPE, key_type_of(kind));
        a.set(CKA_ID, ro.id.clone());
        a.set(CKA_START_DATE, Vec::new());
        a.set(CKA_END_DATE, Vec::new());
        a.set_bool(CKA_DERIVE, u.derive);
        a.set_bool(CKA_LOCAL, ro.never_extractable);
        a.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
        a.set(CKA_ALLOWED_MECHANISMS, Vec::new());
        if let Some(spki) = &ro.public_key_der {
            let km = KeyMaterial::from_public_key_der(spki)?;
            let public = hsmux_mech::public_attributes(&km)?;
            for (t, v) in public.iter() {
                let keep = class == CKO_PUBLIC_KEY
                    || matches!(t, CKA_MODULUS | CKA_PUBLIC_EXPONENT | CKA_EC_PARAMS);
                if keep {
                    a.set(t, v.to_vec());
                }
            }
            a.set(CKA_PUBLIC_KEY_INFO, spki.clone());
        }
        match class {
            CKO_PUBLIC_KEY => {
                a.set_bool(CKA_ENCRYPT, u.encrypt);
                a.set_bool(CKA_VERIFY, u.verify);
                a.set_bool(CKA_VERIFY_RECOVER, false);
                a.set_bool(CKA_WRAP, u.wrap);
                a.set_bool(CKA_TRUSTED, false);
                a.set(CKA_SUBJECT, Vec::new());
            }
            _ => {
                a.set_bool(CKA_SENSITIVE, true);
                a.set_bool(CKA_EXTRACTABLE, false);
                a.set_bool(CKA_ALWAYS_SENSITIVE, true);
                a.set_bool(CKA_NEVER_EXTRACTABLE, ro.never_extractable);
                a.set_bool(CKA_SIGN, u.sign);
                a.set_bool(CKA_DECRYPT, u.decrypt);
                a.set_bool(CKA_UNWRAP, u.unwrap);
                a.set_bool(CKA_WRAP_WITH_TRUSTED, false);
                if class == CKO_PRIVATE_KEY {
                    a.set_bool(CKA_SIGN_RECOVER, false);
                    a.set_bool(CKA_ALWAYS_AUTHENTICATE, false);
                    a.set(CKA_SUBJECT, Vec::new());
                } else {
                    a.set_bool(CKA_ENCRYPT, u.encrypt);
                    a.set_bool(CKA_VERIFY, u.verify);
                    a.set_bool(CKA_WRAP, u.wrap);
                    a.set_bool(CKA_TRUSTED, false);
                    let len = match kind {
                        KeyKind::Aes { len }
                        | KeyKind::Hmac { len, .. }
                        | KeyKind::GenericSecret { len } => *len,
                        _ => 0,
                    };
                    if len > 0 {
                        a.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
                    }
                }
            }
        }
    } else if class == CKO_CERTIFICATE {
        a.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
        a.set(CKA_ID, ro.id.clone());
        a.set(CKA_VALUE, ro.value.clone().unwrap_or_default());
        a.set_bool(CKA_TRUSTED, false);
        a.set_ulong(
            CKA_CERTIFICATE_CATEGORY,
            CK_CERTIFICATE_CATEGORY_UNSPECIFIED,
        );
        for t in [CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER] {
            a.set(t, Vec::new());
        }
    } else {
        a.set(CKA_VALUE, ro.value.clone().unwrap_or_default());
        a.set(CKA_APPLICATION, Vec::new());
        a.set(CKA_OBJECT_ID, Vec::new());
    }
    for (t, v) in &ro.extra {
        a.set(*t as CK_ATTRIBUTE_TYPE, v.clone());
    }
    Ok(a)
}

/// The signature families of the mechanisms a service key signs with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Ecdsa,
    RsaPkcs1,
    RsaPss,
    EdDsa,
}

/// Which hash a mechanism type fixes: none (raw input), one, or the one its parameters
/// name (`CKM_RSA_PKCS_PSS`), or any a DigestInfo names (raw `CKM_RSA_PKCS`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum HashOf {
    Raw,
    Fixed(HashAlg),
    FromInput,
}

/// The signature family and hash rule of a mechanism type, if it signs with a private key.
fn family(m: CK_MECHANISM_TYPE) -> Option<(Family, HashOf)> {
    use Family::*;
    let fixed = |h| HashOf::Fixed(h);
    Some(match m {
        CKM_ECDSA => (Ecdsa, HashOf::Raw),
        CKM_ECDSA_SHA1 => (Ecdsa, fixed(HashAlg::Sha1)),
        CKM_ECDSA_SHA224 => (Ecdsa, fixed(HashAlg::Sha224)),
        CKM_ECDSA_SHA256 => (Ecdsa, fixed(HashAlg::Sha256)),
        CKM_ECDSA_SHA384 => (Ecdsa, fixed(HashAlg::Sha384)),
        CKM_ECDSA_SHA512 => (Ecdsa, fixed(HashAlg::Sha512)),
        CKM_RSA_PKCS => (RsaPkcs1, HashOf::FromInput),
        CKM_SHA1_RSA_PKCS => (RsaPkcs1, fixed(HashAlg::Sha1)),
        CKM_SHA224_RSA_PKCS => (RsaPkcs1, fixed(HashAlg::Sha224)),
        CKM_SHA256_RSA_PKCS => (RsaPkcs1, fixed(HashAlg::Sha256)),
        CKM_SHA384_RSA_PKCS => (RsaPkcs1, fixed(HashAlg::Sha384)),
        CKM_SHA512_RSA_PKCS => (RsaPkcs1, fixed(HashAlg::Sha512)),
        CKM_RSA_PKCS_PSS => (RsaPss, HashOf::FromInput),
        CKM_SHA1_RSA_PKCS_PSS => (RsaPss, fixed(HashAlg::Sha1)),
        CKM_SHA224_RSA_PKCS_PSS => (RsaPss, fixed(HashAlg::Sha224)),
        CKM_SHA256_RSA_PKCS_PSS => (RsaPss, fixed(HashAlg::Sha256)),
        CKM_SHA384_RSA_PKCS_PSS => (RsaPss, fixed(HashAlg::Sha384)),
        CKM_SHA512_RSA_PKCS_PSS => (RsaPss, fixed(HashAlg::Sha512)),
        CKM_EDDSA => (EdDsa, HashOf::Raw),
        _ => return None,
    })
}

/// The family and hash of a scheme a backend states.
fn scheme_family(s: &SignScheme) -> (Family, Option<HashAlg>) {
    match s {
        SignScheme::Ecdsa { hash, .. } => (Family::Ecdsa, *hash),
        SignScheme::RsaPkcs1 { hash } => (Family::RsaPkcs1, *hash),
        SignScheme::RsaPss { hash, .. } => (Family::RsaPss, Some(*hash)),
        SignScheme::EdDsa => (Family::EdDsa, None),
    }
}

/// The schemes of `c` a mechanism type can use at all.
fn schemes_for(c: &Capabilities, m: CK_MECHANISM_TYPE) -> Vec<&SignScheme> {
    let Some((fam, rule)) = family(m) else {
        return Vec::new();
    };
    c.signatures
        .iter()
        .filter(|s| {
            let (f, h) = scheme_family(s);
            f == fam
                && match rule {
                    HashOf::Raw => h.is_none(),
                    HashOf::Fixed(want) => h == Some(want),
                    HashOf::FromInput => true,
                }
        })
        .collect()
}

/// The HMAC hash of a mechanism type.
fn hmac_hash(m: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match m {
        CKM_SHA_1_HMAC => HashAlg::Sha1,
        CKM_SHA224_HMAC => HashAlg::Sha224,
        CKM_SHA256_HMAC => HashAlg::Sha256,
        CKM_SHA384_HMAC => HashAlg::Sha384,
        CKM_SHA512_HMAC => HashAlg::Sha512,
        _ => return None,
    })
}

/// Whether a service key can sign with this mechanism type (for the mechanism list).
pub fn can_sign(c: &Capabilities, m: CK_MECHANISM_TYPE) -> bool {
    match hmac_hash(m) {
        Some(h) => c.macs.iter().any(|s| s.hash == h),
        None => !schemes_for(c, m).is_empty(),
    }
}

/// Mechanisms that sign with a private key.
pub fn is_asymmetric_sign(m: CK_MECHANISM_TYPE) -> bool {
    family(m).is_some() || m == CKM_RSA_X_509
}

/// The decryption scheme kind a mechanism type needs of a private key in the service.
fn decrypt_kind(s: &DecryptScheme) -> CK_MECHANISM_TYPE {
    match s {
        DecryptScheme::RsaOaep { .. } => CKM_RSA_PKCS_OAEP,
        DecryptScheme::RsaPkcs1 => CKM_RSA_PKCS,
        DecryptScheme::RsaRaw => CKM_RSA_X_509,
    }
}

/// The symmetric scheme of a mechanism type.
fn symmetric_scheme(m: CK_MECHANISM_TYPE) -> Option<SymmetricScheme> {
    Some(match m {
        CKM_AES_GCM => SymmetricScheme::AesGcm,
        CKM_AES_CBC_PAD => SymmetricScheme::AesCbcPad,
        CKM_HSMUX_SERVICE_SYMMETRIC => SymmetricScheme::ServiceSymmetric,
        _ => return None,
    })
}

/// Whether a service key can decrypt with this mechanism type (for the mechanism list).
pub fn can_decrypt(c: &Capabilities, m: CK_MECHANISM_TYPE) -> bool {
    c.decryption.iter().any(|s| decrypt_kind(s) == m)
        || symmetric_scheme(m).is_some_and(|s| c.symmetric.contains(&s))
}

fn refuse(service: &Service, what: &str, mech: &Mechanism) -> Error {
    Error::new(
        CKR_MECHANISM_INVALID,
        format!(
            "the {} service cannot {what} with mechanism {:#x}",
            service.backend.kind(),
            mech.mech_type()
        ),
    )
}

/// Checks, at `C_SignInit`, that the service signs with `mech` (and its parameters) by
/// this key: the same schemes the mechanism list was made from.
fn check_sign(service: &Service, mech: &Mechanism, key: &RemoteKey) -> Result<()> {
    let (c, backend) = (&*service.caps, &*service.backend);
    let m = mech.mech_type();
    if let Some(h) = hmac_hash(m) {
        let Some(scheme) = c.macs.iter().find(|s| s.hash == h) else {
            return Err(refuse(service, "MAC", mech));
        };
        if let Some(KeyKind::Hmac { hash, .. }) = &key.kind {
            if *hash != h {
                bail!(
                    CKR_KEY_TYPE_INCONSISTENT,
                    "the service key MACs with {hash:?} only, not {h:?}"
                );
            }
        }
        let len = match &key.kind {
            Some(KeyKind::Hmac { len, .. } | KeyKind::GenericSecret { len }) => *len,
            _ => 0,
        };
        if len != 0 && len < scheme.min_key_len {
            bail!(
                CKR_KEY_SIZE_RANGE,
                "the {} service MACs with {h:?} only with keys of at least {} bytes, not {len}",
                backend.kind(),
                scheme.min_key_len
            );
        }
        return Ok(());
    }
    let mut schemes = schemes_for(c, m);
    if schemes.is_empty() {
        return Err(refuse(service, "sign", mech));
    }
    if let Some(p) = mech.pss_params() {
        let hash = p.hash;
        schemes.retain(|s| matches!(s, SignScheme::RsaPss { hash: h, .. } if *h == hash));
        if schemes.is_empty() {
            bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "the {} service has no PSS signature with {hash:?}",
                backend.kind()
            );
        }
        let fits = |s: &&SignScheme| match s {
            SignScheme::RsaPss { salt, mgf, .. } => {
                (*salt == PssSalt::Any || p.salt_len == p.hash.digest_len())
                    && (*mgf == Mgf::Any || p.mgf == p.hash)
            }
            _ => false,
        };
        if !schemes.iter().any(fits) {
            bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "the {} service signs PSS with {hash:?} only with a {}-byte salt and MGF1 over \
                 {hash:?}",
                backend.kind(),
                p.hash.digest_len()
            );
        }
    }
    if let Some(KeyKind::Ec { params }) = &key.kind {
        let on_curve = |s: &&SignScheme| match s {
            SignScheme::Ecdsa { curves, .. } => curves.is_empty() || curves.contains(params),
            _ => true,
        };
        if !schemes.iter().any(on_curve) {
            bail!(
                CKR_KEY_TYPE_INCONSISTENT,
                "the {} service signs with mechanism {m:#x} only on other curves than this key's",
                backend.kind()
            );
        }
    }
    Ok(())
}

/// Checks, at `C_EncryptInit`/`C_DecryptInit`, that the service runs `mech` with its key.
fn check_cipher(service: &Service, mech: &Mechanism, encrypt: bool) -> Result<()> {
    let (c, backend) = (&*service.caps, &*service.backend);
    let m = mech.mech_type();
    if let Some(s) = symmetric_scheme(m) {
        if c.symmetric.contains(&s) {
            return Ok(());
        }
    } else if !encrypt {
        let mut schemes: Vec<&DecryptScheme> = c
            .decryption
            .iter()
            .filter(|s| decrypt_kind(s) == m)
            .collect();
        if let (false, Mechanism::RsaPkcsOaep(p)) = (schemes.is_empty(), mech) {
            let hash = p.hash;
            schemes.retain(|s| matches!(s, DecryptScheme::RsaOaep { hash: h, .. } if *h == hash));
            let fits = |s: &&DecryptScheme| match s {
                DecryptScheme::RsaOaep { mgf, label, .. } => {
                    (*mgf == Mgf::Any || p.mgf == p.hash) && (*label || p.label.is_empty())
                }
                _ => false,
            };
            if !schemes.iter().any(fits) {
                bail!(
                    CKR_MECHANISM_PARAM_INVALID,
                    "the {} service decrypts OAEP only with {}",
                    backend.kind(),
                    c.decryption
                        .iter()
                        .filter_map(|s| match s {
                            DecryptScheme::RsaOaep { hash, mgf, label } => Some(format!(
                                "{hash:?}{}{}",
                                if *mgf == Mgf::SameHash {
                                    " (MGF1 of the same hash)"
                                } else {
                                    ""
                                },
                                if *label { "" } else { " and no label" }
                            )),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        if !schemes.is_empty() {
            return Ok(());
        }
    }
    Err(refuse(
        service,
        if encrypt { "encrypt" } else { "decrypt" },
        mech,
    ))
}

/// The signature request for `mech` over the (already hashed when the mechanism hashes)
/// input, as the service's capabilities `c` allow.
fn sign_request(mech: &Mechanism, input: Vec<u8>, c: &Capabilities) -> Result<SignRequest> {
    let hash = mech.hash();
    Ok(match mech {
        Mechanism::Ecdsa
        | Mechanism::EcdsaSha1
        | Mechanism::EcdsaSha224
        | Mechanism::EcdsaSha256
        | Mechanism::EcdsaSha384
        | Mechanism::EcdsaSha512 => SignRequest::Ecdsa {
            hash,
            digest: input,
        },
        Mechanism::RsaPkcs => {
            // Without arbitrary-data PKCS#1 v1.5, the input must be a DigestInfo of a hash
            // the service signs.
            let named = HashAlg::from_digest_info(&input)
                .map(|(h, _)| h)
                .filter(|h| {
                    c.signatures
                        .contains(&SignScheme::RsaPkcs1 { hash: Some(*h) })
                });
            if named.is_none() && !c.signatures.contains(&SignScheme::RsaPkcs1 { hash: None }) {
                bail!(
                    CKR_DATA_INVALID,
                    "the service signs raw CKM_RSA_PKCS input only when it is a DigestInfo of \
                     a hash it signs with"
                );
            }
            SignRequest::RsaPkcs1 {
                hash: named,
                digest_info: input,
            }
        }
        Mechanism::Sha1RsaPkcs
        | Mechanism::Sha224RsaPkcs
        | Mechanism::Sha256RsaPkcs
        | Mechanism::Sha384RsaPkcs
        | Mechanism::Sha512RsaPkcs => {
            let h =
                hash.ok_or_else(|| Error::general("hash-then-sign mechanism without a hash"))?;
            let mut di = h.digest_info_prefix().to_vec();
            di.extend_from_slice(&input);
            SignRequest::RsaPkcs1 {
                hash: Some(h),
                digest_info: di,
            }
        }
        m if m.pss_params().is_some() => {
            let p = m
                .pss_params()
                .ok_or_else(|| Error::general("PSS without parameters"))?;
            if input.len() != p.hash.digest_len() {
                bail!(
                    CKR_DATA_LEN_RANGE,
                    "PSS input of {} bytes for a {}-byte hash",
                    input.len(),
                    p.hash.digest_len()
                );
            }
            SignRequest::RsaPss {
                hash: p.hash,
                mgf: p.mgf,
                salt_len: p.salt_len,
                digest: input,
            }
        }
        Mechanism::Sha1Hmac
        | Mechanism::Sha224Hmac
        | Mechanism::Sha256Hmac
        | Mechanism::Sha384Hmac
        | Mechanism::Sha512Hmac => {
            let h = hash.ok_or_else(|| Error::general("HMAC without a hash"))?;
            SignRequest::Hmac {
                hash: h,
                message: input,
            }
        }
        Mechanism::EdDsa => SignRequest::EdDsa { message: input },
        other => bail!(
            CKR_MECHANISM_INVALID,
            "mechanism {:#x} cannot sign with a key held by the service",
            other.mech_type()
        ),
    })
}

/// The input of a signature by a service key: hashed here when the mechanism hashes (the
/// service signs the digest), buffered for an HMAC (the service MACs the message).
fn sign_input(mech: &Mechanism) -> Result<SignInput> {
    let hmac = matches!(
        mech,
        Mechanism::Sha1Hmac
            | Mechanism::Sha224Hmac
            | Mechanism::Sha256Hmac
            | Mechanism::Sha384Hmac
            | Mechanism::Sha512Hmac
    );
    SignInput::new(mech.hash().filter(|_| !hmac), usize::MAX)
}

/// A signature by a key that stays in the service.
pub struct RemoteSign {
    service: Service,
    key_ref: String,
    mech: Mechanism,
    input: SignInput,
    sig_len: usize,
}

/// Length of a signature by this key with this mechanism.
fn signature_len(mech: &Mechanism, public: Option<&KeyMaterial>) -> usize {
    match (mech.hash(), mech) {
        (
            Some(h),
            Mechanism::Sha1Hmac
            | Mechanism::Sha224Hmac
            | Mechanism::Sha256Hmac
            | Mechanism::Sha384Hmac
            | Mechanism::Sha512Hmac,
        ) => h.digest_len(),
        (_, Mechanism::EdDsa) => 64,
        _ => match public {
            Some(k) if k.key_type() == CKK_EC => 2 * k.size().div_ceil(8),
            Some(k) => k.size().div_ceil(8),
            None => 0,
        },
    }
}

impl RemoteSign {
    /// Starts a signature with the service's key; `public` sizes the output. Refuses
    /// what the service's capabilities do not list for this mechanism and key.
    pub fn new(
        service: &Service,
        key: &RemoteKey,
        mech: &Mechanism,
        public: Option<&KeyMaterial>,
    ) -> Result<RemoteSign> {
        check_sign(service, mech, key)?;
        Ok(RemoteSign {
            input: sign_input(mech)?,
            sig_len: signature_len(mech, public),
            service: service.clone(),
            key_ref: key.key_ref.clone(),
            mech: mech.clone(),
        })
    }
    fn request(&mut self) -> Result<SignRequest> {
        let input = self.input.take()?;
        sign_request(&self.mech, input, &self.service.caps)
    }
}

impl SignOp for RemoteSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let req = self.request()?;
        self.service
            .backend
            .sign(&self.key_ref, &req)
            .map_err(|e| backend_err(e, "sign"))
    }
    fn sign(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.input.update(data)?;
        self.finish()
    }
    fn sig_len(&self) -> usize {
        self.sig_len
    }
}

/// Verification of a MAC by a secret key that stays in the service.
pub struct RemoteVerify(RemoteSign);

impl RemoteVerify {
    /// Starts a verification with the service's secret key.
    pub fn new(service: &Service, key: &RemoteKey, mech: &Mechanism) -> Result<RemoteVerify> {
        Ok(RemoteVerify(RemoteSign::new(service, key, mech, None)?))
    }
}

impl VerifyOp for RemoteVerify {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.0.input.update(data)
    }
    fn finish(&mut self, sig: &[u8]) -> Result<()> {
        if sig.len() != self.0.sig_len {
            bail!(
                CKR_SIGNATURE_LEN_RANGE,
                "MAC of {} bytes, expected {}",
                sig.len(),
                self.0.sig_len
            );
        }
        let req = self.0.request()?;
        match self.0.service.backend.verify(&self.0.key_ref, &req, sig) {
            Ok(true) => Ok(()),
            Ok(false) => bail!(CKR_SIGNATURE_INVALID),
            Err(e) => Err(backend_err(e, "verify")),
        }
    }
    fn verify(&mut self, data: &[u8], sig: &[u8]) -> Result<()> {
        self.0.input.update(data)?;
        self.finish(sig)
    }
}

/// Decryption (or encryption with a secret key) in the service: the input is buffered
/// and sent in one request at the end, since the service takes whole messages.
pub struct RemoteCipher {
    backend: Arc<dyn Backend>,
    key_ref: String,
    mech: Mechanism,
    encrypt: bool,
    buf: Zeroizing<Vec<u8>>,
    out_len: usize,
}

impl RemoteCipher {
    /// Starts a cipher operation with the service's key; refuses what the service's
    /// capabilities do not list.
    pub fn new(
        service: &Service,
        key: &RemoteKey,
        mech: &Mechanism,
        encrypt: bool,
        public: Option<&KeyMaterial>,
    ) -> Result<RemoteCipher> {
        check_cipher(service, mech, encrypt)?;
        let key_ref = key.key_ref.clone();
        let out_len = public.map(|k| k.size().div_ceil(8)).unwrap_or(0);
        Ok(RemoteCipher {
            backend: service.backend.clone(),
            key_ref,
            mech: mech.clone(),
            encrypt,
            buf: Zeroizing::new(Vec::new()),
            out_len,
        })
    }

    fn request(&mut self) -> Result<CipherRequest> {
        let data = std::mem::take(&mut *self.buf);
        Ok(match &self.mech {
            Mechanism::RsaPkcsOaep(p) => CipherRequest::RsaOaep {
                hash: p.hash,
                mgf: p.mgf,
                label: p.label.clone(),
                data,
            },
            Mechanism::RsaPkcs => CipherRequest::RsaPkcs1 { data },
            Mechanism::RsaX509 => CipherRequest::RsaRaw { data },
            Mechanism::AesGcm(p) => CipherRequest::AesGcm {
                iv: p.iv.clone(),
                aad: p.aad.clone(),
                tag_bits: p.tag_len * 8,
                data,
            },
            Mechanism::AesCbcPad(iv) => CipherRequest::AesCbcPad { iv: *iv, data },
            Mechanism::ServiceSymmetric(aad) => CipherRequest::ServiceSymmetric {
                aad: aad.clone(),
                data,
            },
            other => bail!(
                CKR_MECHANISM_INVALID,
                "mechanism {:#x} is not available for keys held by the service",
                other.mech_type()
            ),
        })
    }
}

pub use hsmux_mech::CKM_HSMUX_SERVICE_SYMMETRIC;

impl CipherOp for RemoteCipher {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let req = self.request()?;
        let r = if self.encrypt {
            self.backend.encrypt(&self.key_ref, &req)
        } else {
            self.backend.decrypt(&self.key_ref, &req)
        };
        r.map_err(|e| backend_err(e, if self.encrypt { "encrypt" } else { "decrypt" }))
    }
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(data);
        self.finish()
    }
    fn update_len(&self, _in_len: usize) -> usize {
        0
    }
    fn finish_len(&self) -> usize {
        self.oneshot_len(0)
    }
    fn oneshot_len(&self, in_len: usize) -> usize {
        // A service's own ciphertext format wraps the data in its header (a KMS blob adds
        // about 150 bytes); a length query must answer a size that suffices.
        let overhead = match (&self.mech, self.encrypt) {
            (Mechanism::ServiceSymmetric(_), true) => SERVICE_BLOB_OVERHEAD,
            _ => 16,
        };
        self.out_len.max(self.buf.len() + in_len + overhead)
    }
}

/// Room a length query allows for a service's ciphertext header and tag.
const SERVICE_BLOB_OVERHEAD: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use hsmux_backends::{BackendResult, KeyUsage, MacScheme};
    use std::sync::Mutex;

    /// A service holding one P-256 key, recording every request it gets.
    struct Recording {
        key: openssl::ec::EcKey<openssl::pkey::Private>,
        calls: Mutex<Vec<SignRequest>>,
        ciphers: Mutex<Vec<CipherRequest>>,
    }

    impl Backend for Recording {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn serial(&self) -> String {
            "0".into()
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                signatures: vec![
                    SignScheme::Ecdsa {
                        hash: Some(HashAlg::Sha256),
                        curves: vec![P256.to_vec()],
                    },
                    SignScheme::RsaPss {
                        hash: HashAlg::Sha256,
                        salt: PssSalt::HashLen,
                        mgf: Mgf::SameHash,
                    },
                    SignScheme::RsaPkcs1 {
                        hash: Some(HashAlg::Sha256),
                    },
                ],
                macs: vec![
                    MacScheme {
                        hash: HashAlg::Sha256,
                        min_key_len: 0,
                    },
                    MacScheme {
                        hash: HashAlg::Sha384,
                        min_key_len: 48,
                    },
                ],
                symmetric: vec![SymmetricScheme::ServiceSymmetric],
                ..Default::default()
            }
        }
        fn login(&self, _pin: &[u8]) -> BackendResult<()> {
            Ok(())
        }
        fn list(&self) -> BackendResult<Vec<RemoteObject>> {
            Ok(Vec::new())
        }
        fn sign(&self, _key: &str, req: &SignRequest) -> BackendResult<Vec<u8>> {
            self.calls.lock().unwrap().push(req.clone());
            let SignRequest::Ecdsa { digest, .. } = req else {
                return Err(BackendError::Unsupported("only ECDSA".into()));
            };
            let sig = openssl::ecdsa::EcdsaSig::sign(digest, &self.key)
                .map_err(|e| BackendError::Other(e.to_string()))?;
            let mut out = sig.r().to_vec_padded(32).unwrap();
            out.extend(sig.s().to_vec_padded(32).unwrap());
            Ok(out)
        }
        fn decrypt(&self, _key: &str, req: &CipherRequest) -> BackendResult<Vec<u8>> {
            self.ciphers.lock().unwrap().push(req.clone());
            Ok(b"plain".to_vec())
        }
        fn encrypt(&self, _key: &str, req: &CipherRequest) -> BackendResult<Vec<u8>> {
            self.ciphers.lock().unwrap().push(req.clone());
            Ok(b"blob".to_vec())
        }
    }

    /// DER OID of P-256, as in `CKA_EC_PARAMS`.
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

    fn key(kind: Option<KeyKind>) -> RemoteKey {
        RemoteKey {
            key_ref: "k".into(),
            kind,
        }
    }

    fn p256() -> RemoteKey {
        key(Some(KeyKind::Ec {
            params: P256.to_vec(),
        }))
    }

    #[test]
    fn init_refuses_exactly_what_the_capabilities_leave_out() {
        let b = recording();
        let rv = |r: Result<RemoteSign>| r.err().map(|e| e.rv);
        assert_eq!(
            rv(RemoteSign::new(
                &svc(&b),
                &p256(),
                &Mechanism::EcdsaSha256,
                None
            )),
            None
        );
        assert_eq!(
            rv(RemoteSign::new(
                &svc(&b),
                &p256(),
                &Mechanism::EcdsaSha1,
                None
            )),
            Some(CKR_MECHANISM_INVALID)
        );
        let p384 = key(Some(KeyKind::Ec {
            params: vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        }));
        assert_eq!(
            rv(RemoteSign::new(
                &svc(&b),
                &p384,
                &Mechanism::EcdsaSha256,
                None
            )),
            Some(CKR_KEY_TYPE_INCONSISTENT)
        );
        let pss = |salt_len, mgf| {
            Mechanism::Sha256RsaPkcsPss(hsmux_mech::PssParams {
                hash: HashAlg::Sha256,
                mgf,
                salt_len,
            })
        };
        let rsa = key(Some(KeyKind::Rsa { bits: 2048 }));
        assert_eq!(
            rv(RemoteSign::new(
                &svc(&b),
                &rsa,
                &pss(32, HashAlg::Sha256),
                None
            )),
            None
        );
        for bad in [pss(20, HashAlg::Sha256), pss(32, HashAlg::Sha1)] {
            assert_eq!(
                rv(RemoteSign::new(&svc(&b), &rsa, &bad, None)),
                Some(CKR_MECHANISM_PARAM_INVALID)
            );
        }
        let hmac256 = key(Some(KeyKind::Hmac {
            hash: HashAlg::Sha256,
            len: 32,
        }));
        assert_eq!(
            rv(RemoteSign::new(
                &svc(&b),
                &hmac256,
                &Mechanism::Sha256Hmac,
                None
            )),
            None
        );
        assert_eq!(
            rv(RemoteSign::new(
                &svc(&b),
                &hmac256,
                &Mechanism::Sha384Hmac,
                None
            )),
            Some(CKR_KEY_TYPE_INCONSISTENT)
        );
        assert_eq!(
            rv(RemoteSign::new(
                &svc(&b),
                &hmac256,
                &Mechanism::Sha1Hmac,
                None
            )),
            Some(CKR_MECHANISM_INVALID)
        );
        let short = key(Some(KeyKind::GenericSecret { len: 32 }));
        assert_eq!(
            rv(RemoteSign::new(
                &svc(&b),
                &short,
                &Mechanism::Sha384Hmac,
                None
            )),
            Some(CKR_KEY_SIZE_RANGE)
        );
        let c = svc(&b).caps;
        for m in [
            CKM_ECDSA_SHA256,
            CKM_SHA256_RSA_PKCS_PSS,
            CKM_RSA_PKCS,
            CKM_SHA384_HMAC,
        ] {
            assert!(can_sign(&c, m), "{m:#x}");
        }
        for m in [
            CKM_ECDSA,
            CKM_ECDSA_SHA1,
            CKM_SHA_1_HMAC,
            CKM_EDDSA,
            CKM_SHA1_RSA_PKCS,
        ] {
            assert!(!can_sign(&c, m), "{m:#x}");
        }
    }

    #[test]
    fn raw_pkcs1_input_must_be_a_digest_info_the_service_signs() {
        let b = recording();
        let rsa = key(Some(KeyKind::Rsa { bits: 2048 }));
        let mut op = RemoteSign::new(&svc(&b), &rsa, &Mechanism::RsaPkcs, None).unwrap();
        assert_eq!(
            op.sign(b"not a digest info").err().unwrap().rv,
            CKR_DATA_INVALID
        );
        let mut sha1 = HashAlg::Sha1.digest_info_prefix().to_vec();
        sha1.extend([0u8; 20]);
        let mut op = RemoteSign::new(&svc(&b), &rsa, &Mechanism::RsaPkcs, None).unwrap();
        assert_eq!(op.sign(&sha1).err().unwrap().rv, CKR_DATA_INVALID);
        assert!(
            b.calls.lock().unwrap().is_empty(),
            "nothing reached the service"
        );
    }

    fn svc(b: &Arc<Recording>) -> Service {
        Service::new(b.clone())
    }

    fn recording() -> Arc<Recording> {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        Arc::new(Recording {
            key: openssl::ec::EcKey::generate(&group).unwrap(),
            calls: Mutex::default(),
            ciphers: Mutex::default(),
        })
    }

    #[test]
    fn multi_part_ecdsa_sha256_hashes_locally_and_calls_the_service_once() {
        let b = recording();
        let spki = openssl::pkey::PKey::from_ec_key(b.key.clone())
            .unwrap()
            .public_key_to_der()
            .unwrap();
        let public = KeyMaterial::from_public_key_der(&spki).unwrap();
        let mut op =
            RemoteSign::new(&svc(&b), &p256(), &Mechanism::EcdsaSha256, Some(&public)).unwrap();
        assert_eq!(op.sig_len(), 64);
        op.update(b"hello ").unwrap();
        op.update(b"world").unwrap();
        let sig = op.finish().unwrap();
        let calls = b.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        let want = openssl::sha::sha256(b"hello world").to_vec();
        assert_eq!(
            calls[0],
            SignRequest::Ecdsa {
                hash: Some(HashAlg::Sha256),
                digest: want.clone()
            }
        );
        let r = openssl::bn::BigNum::from_slice(&sig[..32]).unwrap();
        let s = openssl::bn::BigNum::from_slice(&sig[32..]).unwrap();
        let es = openssl::ecdsa::EcdsaSig::from_private_components(r, s).unwrap();
        assert!(es.verify(&want, &b.key).unwrap());
    }

    #[test]
    fn service_symmetric_encryption_sends_the_whole_message_and_its_aad_once() {
        let b = recording();
        let mech = Mechanism::ServiceSymmetric(b"context".to_vec());
        let mut op = RemoteCipher::new(&svc(&b), &key(None), &mech, true, None).unwrap();
        assert!(op.update(b"hello ").unwrap().is_empty());
        op.update(b"world").unwrap();
        assert_eq!(op.finish().unwrap(), b"blob");
        let mut op = RemoteCipher::new(&svc(&b), &key(None), &mech, false, None).unwrap();
        assert_eq!(op.oneshot(b"blob").unwrap(), b"plain");
        let calls = b.ciphers.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                CipherRequest::ServiceSymmetric {
                    aad: b"context".to_vec(),
                    data: b"hello world".to_vec()
                },
                CipherRequest::ServiceSymmetric {
                    aad: b"context".to_vec(),
                    data: b"blob".to_vec()
                },
            ]
        );
        let e = RemoteCipher::new(&svc(&b), &key(None), &Mechanism::RsaPkcs, false, None)
            .err()
            .unwrap();
        assert_eq!(e.rv, CKR_MECHANISM_INVALID);
    }

    #[test]
    fn mechanisms_the_service_lacks_are_refused_at_init() {
        let b = recording();
        let e = RemoteSign::new(&svc(&b), &key(None), &Mechanism::Sha384RsaPkcs, None)
            .err()
            .unwrap();
        assert_eq!(e.rv, CKR_MECHANISM_INVALID);
    }

    #[test]
    fn described_private_keys_are_sensitive_and_carry_public_values() {
        let b = recording();
        let spki = openssl::pkey::PKey::from_ec_key(b.key.clone())
            .unwrap()
            .public_key_to_der()
            .unwrap();
        let ro = RemoteObject {
            key_ref: "arn:k".into(),
            unique_id: "arn:k".into(),
            class: ObjectClass::PrivateKey,
            id: vec![1, 2],
            label: "web".into(),
            kind: Some(KeyKind::Ec { params: vec![] }),
            public_key_der: Some(spki),
            value: None,
            usage: KeyUsage {
                sign: true,
                ..Default::default()
            },
            never_extractable: true,
            extra: vec![],
        };
        let a = describe(&ro, true).unwrap();
        assert_eq!(a.get_ulong(CKA_CLASS).unwrap(), Some(CKO_PRIVATE_KEY));
        assert_eq!(a.get_bool(CKA_SENSITIVE).unwrap(), Some(true));
        assert_eq!(a.get_bool(CKA_EXTRACTABLE).unwrap(), Some(false));
        assert_eq!(a.get_bool(CKA_DECRYPT).unwrap(), Some(false));
        assert!(a.get(CKA_EC_PARAMS).is_some_and(|p| !p.is_empty()));
        assert!(!a.has(CKA_VALUE));
        assert_eq!(a.get(CKA_LABEL), Some(&b"web"[..]));
    }

    #[test]
    fn backend_errors_map_to_precise_return_values() {
        assert_eq!(
            backend_err(BackendError::NotFound("x".into()), "s").rv,
            CKR_KEY_HANDLE_INVALID
        );
        assert_eq!(
            backend_err(BackendError::NotPermitted("x".into()), "s").rv,
            CKR_KEY_FUNCTION_NOT_PERMITTED
        );
        assert_eq!(
            backend_err(BackendError::Auth("x".into()), "s").rv,
            CKR_DEVICE_ERROR
        );
        assert_eq!(
            backend_err(BackendError::Vendor(CKR_PIN_EXPIRED, "x".into()), "s").rv,
            CKR_PIN_EXPIRED
        );
    }
}
