//! Keys that live in a remote service: how their objects look to PKCS#11 clients, and
//! the operations that hash or buffer locally and then make exactly one backend call.

use crate::{bail, Attributes, Error, Result};
use cryptoki_sys::*;
use hsmux_backends::{
    Backend, BackendError, Capabilities, CipherRequest, Hash, KeyKind, ObjectClass, RemoteObject,
    SignRequest,
};
use hsmux_mech::{CipherOp, HashAlg, KeyMaterial, Mechanism, SignOp, VerifyOp};
use openssl::hash::{Hasher, MessageDigest};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Key type of a service-only symmetric key (e.g. a KMS `SYMMETRIC_DEFAULT` key).
pub const CKK_HSMUX_SERVICE_SYMMETRIC: CK_KEY_TYPE = CKK_VENDOR_DEFINED | 0x4853_0001;

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

fn hash_of(h: HashAlg) -> Hash {
    match h {
        HashAlg::Sha1 => Hash::Sha1,
        HashAlg::Sha224 => Hash::Sha224,
        HashAlg::Sha256 => Hash::Sha256,
        HashAlg::Sha384 => Hash::Sha384,
        HashAlg::Sha512 => Hash::Sha512,
    }
}

fn digest_of(h: HashAlg) -> MessageDigest {
    match h {
        HashAlg::Sha1 => MessageDigest::sha1(),
        HashAlg::Sha224 => MessageDigest::sha224(),
        HashAlg::Sha256 => MessageDigest::sha256(),
        HashAlg::Sha384 => MessageDigest::sha384(),
        HashAlg::Sha512 => MessageDigest::sha512(),
    }
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
        openssl::sha::sha256(ro.key_ref.as_bytes())[..16]
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

/// Whether a backend can sign with this mechanism at all (for the mechanism list).
pub fn can_sign(c: &Capabilities, m: CK_MECHANISM_TYPE) -> bool {
    let h = |x: Hash| c.hashes.contains(&x);
    match m {
        CKM_ECDSA => c.ecdsa,
        CKM_ECDSA_SHA1 => c.ecdsa && h(Hash::Sha1),
        CKM_ECDSA_SHA224 => c.ecdsa && h(Hash::Sha224),
        CKM_ECDSA_SHA256 => c.ecdsa && h(Hash::Sha256),
        CKM_ECDSA_SHA384 => c.ecdsa && h(Hash::Sha384),
        CKM_ECDSA_SHA512 => c.ecdsa && h(Hash::Sha512),
        CKM_RSA_PKCS => c.rsa_pkcs1,
        CKM_SHA1_RSA_PKCS => c.rsa_pkcs1 && h(Hash::Sha1),
        CKM_SHA224_RSA_PKCS => c.rsa_pkcs1 && h(Hash::Sha224),
        CKM_SHA256_RSA_PKCS => c.rsa_pkcs1 && h(Hash::Sha256),
        CKM_SHA384_RSA_PKCS => c.rsa_pkcs1 && h(Hash::Sha384),
        CKM_SHA512_RSA_PKCS => c.rsa_pkcs1 && h(Hash::Sha512),
        CKM_RSA_PKCS_PSS => c.rsa_pss,
        CKM_SHA1_RSA_PKCS_PSS => c.rsa_pss && h(Hash::Sha1),
        CKM_SHA224_RSA_PKCS_PSS => c.rsa_pss && h(Hash::Sha224),
        CKM_SHA256_RSA_PKCS_PSS => c.rsa_pss && h(Hash::Sha256),
        CKM_SHA384_RSA_PKCS_PSS => c.rsa_pss && h(Hash::Sha384),
        CKM_SHA512_RSA_PKCS_PSS => c.rsa_pss && h(Hash::Sha512),
        CKM_SHA_1_HMAC => c.hmac && h(Hash::Sha1),
        CKM_SHA224_HMAC => c.hmac && h(Hash::Sha224),
        CKM_SHA256_HMAC => c.hmac && h(Hash::Sha256),
        CKM_SHA384_HMAC => c.hmac && h(Hash::Sha384),
        CKM_SHA512_HMAC => c.hmac && h(Hash::Sha512),
        CKM_EDDSA => c.eddsa,
        // Raw RSA signing has no service request: services sign padded data only.
        CKM_RSA_X_509 => false,
        _ => false,
    }
}

/// Mechanisms that sign with a private key.
pub fn is_asymmetric_sign(m: CK_MECHANISM_TYPE) -> bool {
    matches!(
        m,
        CKM_ECDSA
            | CKM_ECDSA_SHA1
            | CKM_ECDSA_SHA224
            | CKM_ECDSA_SHA256
            | CKM_ECDSA_SHA384
            | CKM_ECDSA_SHA512
            | CKM_RSA_PKCS
            | CKM_SHA1_RSA_PKCS
            | CKM_SHA224_RSA_PKCS
            | CKM_SHA256_RSA_PKCS
            | CKM_SHA384_RSA_PKCS
            | CKM_SHA512_RSA_PKCS
            | CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
            | CKM_RSA_X_509
            | CKM_EDDSA
    )
}

/// Whether a backend can decrypt with this mechanism.
pub fn can_decrypt(c: &Capabilities, m: CK_MECHANISM_TYPE) -> bool {
    match m {
        CKM_RSA_PKCS_OAEP => c.rsa_oaep,
        CKM_RSA_PKCS => c.rsa_pkcs1_decrypt,
        CKM_RSA_X_509 => c.rsa_raw,
        CKM_AES_GCM | CKM_AES_CBC_PAD => c.aes,
        CKM_HSMUX_SERVICE_SYMMETRIC => c.service_symmetric,
        _ => false,
    }
}

/// The signature request for `mech` over the (already hashed when the mechanism hashes)
/// input.
fn sign_request(mech: &Mechanism, input: Vec<u8>) -> Result<SignRequest> {
    let hash = mech.hash();
    Ok(match mech {
        Mechanism::Ecdsa
        | Mechanism::EcdsaSha1
        | Mechanism::EcdsaSha224
        | Mechanism::EcdsaSha256
        | Mechanism::EcdsaSha384
        | Mechanism::EcdsaSha512 => SignRequest::Ecdsa {
            hash: hash.map(hash_of),
            digest: input,
        },
        Mechanism::RsaPkcs => SignRequest::RsaPkcs1 {
            hash: None,
            digest_info: input,
        },
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
                hash: Some(hash_of(h)),
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
                hash: hash_of(p.hash),
                mgf: hash_of(p.mgf),
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
                hash: hash_of(h),
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

/// Feeds the message: into a running hash when the mechanism hashes (so multi-part input
/// never accumulates), else into a buffer.
enum Input {
    Hashing(Hasher),
    Buffer(Zeroizing<Vec<u8>>),
}

impl Input {
    fn new(mech: &Mechanism) -> Result<Input> {
        let hashes_locally = !matches!(
            mech,
            Mechanism::Sha1Hmac
                | Mechanism::Sha224Hmac
                | Mechanism::Sha256Hmac
                | Mechanism::Sha384Hmac
                | Mechanism::Sha512Hmac
        );
        Ok(match mech.hash() {
            Some(h) if hashes_locally => Input::Hashing(Hasher::new(digest_of(h))?),
            _ => Input::Buffer(Zeroizing::new(Vec::new())),
        })
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Input::Hashing(h) => h.update(data)?,
            Input::Buffer(b) => b.extend_from_slice(data),
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(match self {
            Input::Hashing(h) => h.finish()?.to_vec(),
            Input::Buffer(b) => std::mem::take(&mut **b),
        })
    }
}

/// A signature by a key that stays in the service.
pub struct RemoteSign {
    backend: Arc<dyn Backend>,
    key_ref: String,
    mech: Mechanism,
    input: Input,
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
    /// Starts a signature with the service's key `key_ref`; `public` sizes the output.
    pub fn new(
        backend: Arc<dyn Backend>,
        key_ref: String,
        mech: &Mechanism,
        public: Option<&KeyMaterial>,
    ) -> Result<RemoteSign> {
        if !can_sign(&backend.capabilities(), mech.mech_type()) {
            bail!(
                CKR_MECHANISM_INVALID,
                "the {} service cannot sign with mechanism {:#x}",
                backend.kind(),
                mech.mech_type()
            );
        }
        Ok(RemoteSign {
            input: Input::new(mech)?,
            sig_len: signature_len(mech, public),
            backend,
            key_ref,
            mech: mech.clone(),
        })
    }
    fn request(&mut self) -> Result<SignRequest> {
        let input = self.input.finish()?;
        sign_request(&self.mech, input)
    }
}

impl SignOp for RemoteSign {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let req = self.request()?;
        self.backend
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
    pub fn new(
        backend: Arc<dyn Backend>,
        key_ref: String,
        mech: &Mechanism,
    ) -> Result<RemoteVerify> {
        Ok(RemoteVerify(RemoteSign::new(backend, key_ref, mech, None)?))
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
        match self.0.backend.verify(&self.0.key_ref, &req, sig) {
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
    /// Starts a cipher operation with the service's key.
    pub fn new(
        backend: Arc<dyn Backend>,
        key_ref: String,
        mech: &Mechanism,
        encrypt: bool,
        public: Option<&KeyMaterial>,
    ) -> Result<RemoteCipher> {
        let caps = backend.capabilities();
        let ok = if encrypt {
            match mech {
                Mechanism::AesGcm(_) | Mechanism::AesCbcPad(_) => caps.aes,
                m => {
                    m.mech_type() == crate::remote::CKM_HSMUX_SERVICE_SYMMETRIC
                        && caps.service_symmetric
                }
            }
        } else {
            can_decrypt(&caps, mech.mech_type())
        };
        if !ok {
            bail!(
                CKR_MECHANISM_INVALID,
                "the {} service cannot {} with mechanism {:#x}",
                backend.kind(),
                if encrypt { "encrypt" } else { "decrypt" },
                mech.mech_type()
            );
        }
        let out_len = public.map(|k| k.size().div_ceil(8)).unwrap_or(0);
        Ok(RemoteCipher {
            backend,
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
                hash: hash_of(p.hash),
                mgf: hash_of(p.mgf),
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
        self.out_len.max(self.buf.len() + 16)
    }
    fn oneshot_len(&self, in_len: usize) -> usize {
        self.out_len.max(self.buf.len() + in_len + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsmux_backends::{BackendResult, KeyUsage};
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
                ecdsa: true,
                hashes: vec![Hash::Sha256],
                service_symmetric: true,
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
        let mut op = RemoteSign::new(
            b.clone(),
            "k".into(),
            &Mechanism::EcdsaSha256,
            Some(&public),
        )
        .unwrap();
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
                hash: Some(Hash::Sha256),
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
        let mut op = RemoteCipher::new(b.clone(), "k".into(), &mech, true, None).unwrap();
        assert!(op.update(b"hello ").unwrap().is_empty());
        op.update(b"world").unwrap();
        assert_eq!(op.finish().unwrap(), b"blob");
        let mut op = RemoteCipher::new(b.clone(), "k".into(), &mech, false, None).unwrap();
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
        let e = RemoteCipher::new(b, "k".into(), &Mechanism::RsaPkcs, false, None)
            .err()
            .unwrap();
        assert_eq!(e.rv, CKR_MECHANISM_INVALID);
    }

    #[test]
    fn mechanisms_the_service_lacks_are_refused_at_init() {
        let b = recording();
        let e = RemoteSign::new(b, "k".into(), &Mechanism::Sha384RsaPkcs, None)
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
