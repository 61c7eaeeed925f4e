//! Operations: one object per `C_*Init`, driven by single- or multi-part calls.

use crate::hash::{ct_eq, Hash, Hmac};
use crate::key::KeyMaterial;
use crate::mech::{HashAlg, Mechanism, PssParams, GENERIC_MAX_LEN};
use crate::{bail, Error, Result};
use cryptoki_sys::*;
use openssl::bn::BigNum;
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::pkey::{PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::RsaPssSaltlen;
use openssl::sign::{Signer, Verifier};
use std::sync::Arc;

use crate::op::check_rsa_bits;
pub use crate::op::{CipherOp, DigestOp, SignOp, VerifyOp};

impl DigestOp for Hash {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Hash::update(self, data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Hash::finish(self)
    }
    fn len(&self) -> usize {
        self.alg().digest_len()
    }
}

/// Starts a digest.
pub fn digest_init(m: &Mechanism) -> Result<Box<dyn DigestOp>> {
    match m {
        Mechanism::Sha1
        | Mechanism::Sha224
        | Mechanism::Sha256
        | Mechanism::Sha384
        | Mechanism::Sha512 => {
            let alg = m
                .hash()
                .ok_or_else(|| Error::general("digest mechanism without hash"))?;
            Ok(Box::new(Hash::new(alg)?))
        }
        _ => bail!(
            CKR_MECHANISM_INVALID,
            "{:#x} is not a digest mechanism",
            m.mech_type()
        ),
    }
}

/// What a signature mechanism signs: a running hash, or the buffered raw input.
enum Input {
    Hash(Hash),
    Raw { buf: Vec<u8>, max: usize },
}

impl Input {
    fn new(hash: Option<HashAlg>, max: usize) -> Result<Input> {
        Ok(match hash {
            Some(h) => Input::Hash(Hash::new(h)?),
            None => Input::Raw {
                buf: Vec::new(),
                max,
            },
        })
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Input::Hash(h) => h.update(data),
            Input::Raw { buf, max } => {
                if buf.len().saturating_add(data.len()) > *max {
                    bail!(
                        CKR_DATA_LEN_RANGE,
                        "input longer than the {max} bytes this mechanism takes"
                    );
                }
                buf.extend_from_slice(data);
                Ok(())
            }
        }
    }
    fn take(&mut self) -> Result<Vec<u8>> {
        match self {
            Input::Hash(h) => h.finish(),
            Input::Raw { buf, .. } => Ok(std::mem::take(buf)),
        }
    }
}

/// The message of a signature or MAC, as a mechanism consumes it: into a running hash
/// when it hashes (so multi-part input never accumulates), else buffered up to `max`
/// bytes. The token core uses it for keys held by a service too.
pub struct SignInput(Input);

impl SignInput {
    /// A running hash of `hash`, or a buffer of at most `max` bytes.
    pub fn new(hash: Option<HashAlg>, max: usize) -> Result<SignInput> {
        Input::new(hash, max).map(SignInput)
    }
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        self.0.update(data)
    }
    /// The digest, or the buffered input; the input starts over empty.
    pub fn take(&mut self) -> Result<Vec<u8>> {
        self.0.take()
    }
}

/// The private-key half of a signature algorithm, over the prepared input.
trait SignCore: Send {
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>>;
    fn sig_len(&self) -> usize;
}

/// The public-key half of a signature algorithm.
trait VerifyCore: Send {
    fn verify(&self, input: &[u8], sig: &[u8]) -> Result<()>;
}

struct AsymSign<C> {
    input: Input,
    core: C,
}

impl<C: SignCore> SignOp for AsymSign<C> {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let input = self.input.take()?;
        self.core.sign(&input)
    }
    fn sign(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        // Skips the copy into the buffer for raw mechanisms.
        match &mut self.input {
            Input::Raw { buf, max } if buf.is_empty() => {
                if data.len() > *max {
                    bail!(CKR_DATA_LEN_RANGE, "input longer than {max} bytes");
                }
                self.core.sign(data)
            }
            _ => {
                self.update(data)?;
                self.finish()
            }
        }
    }
    fn sig_len(&self) -> usize {
        self.core.sig_len()
    }
}

struct AsymVerify<C> {
    input: Input,
    core: C,
}

impl<C: VerifyCore> VerifyOp for AsymVerify<C> {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.input.update(data)
    }
    fn finish(&mut self, sig: &[u8]) -> Result<()> {
        let input = self.input.take()?;
        self.core.verify(&input, sig)
    }
}

// ---- ECDSA ----

/// Longest `CKM_ECDSA` input: a SHA-512 digest.
const ECDSA_MAX_INPUT: usize = 64;

struct EcdsaSigner {
    key: EcKey<Private>,
    flen: usize,
}

impl SignCore for EcdsaSigner {
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        // ECDSA_do_sign takes the hash directly and truncates it to the order, as
        // CKM_ECDSA requires; no EVP context or DER round trip per signature.
        let sig = EcdsaSig::sign(input, &self.key)?;
        let mut out = sig.r().to_vec_padded(self.flen as i32)?;
        out.extend_from_slice(&sig.s().to_vec_padded(self.flen as i32)?);
        Ok(out)
    }
    fn sig_len(&self) -> usize {
        2 * self.flen
    }
}

struct EcdsaVerifier {
    key: EcKey<Public>,
    flen: usize,
}

impl VerifyCore for EcdsaVerifier {
    fn verify(&self, input: &[u8], sig: &[u8]) -> Result<()> {
        if sig.len() != 2 * self.flen {
            bail!(
                CKR_SIGNATURE_LEN_RANGE,
                "ECDSA signature must be {} bytes",
                2 * self.flen
            );
        }
        let (r, s) = sig.split_at(self.flen);
        let sig =
            EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(s)?)?;
        match sig.verify(input, &self.key) {
            Ok(true) => Ok(()),
            _ => bail!(CKR_SIGNATURE_INVALID),
        }
    }
}

// ---- RSA PKCS#1 v1.5, raw, PSS ----

/// PKCS#1 v1.5 type-1 padding: `prefix` (a DigestInfo header, or nothing) + input.
struct RsaPkcsSigner {
    rsa: Rsa<Private>,
    prefix: &'static [u8],
    hash_len: Option<usize>,
}

fn rsa_pkcs_payload(
    prefix: &[u8],
    hash_len: Option<usize>,
    k: usize,
    input: &[u8],
) -> Result<Vec<u8>> {
    if let Some(h) = hash_len {
        if input.len() != h {
            return Err(Error::general("digest of unexpected length"));
        }
    }
    let mut t = Vec::with_capacity(prefix.len() + input.len());
    t.extend_from_slice(prefix);
    t.extend_from_slice(input);
    if t.len() > k.saturating_sub(11) {
        bail!(
            CKR_DATA_LEN_RANGE,
            "PKCS#1 v1.5 input of {} bytes exceeds k-11 = {}",
            t.len(),
            k.saturating_sub(11)
        );
    }
    Ok(t)
}

impl SignCore for RsaPkcsSigner {
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        let k = self.rsa.size() as usize;
        let t = rsa_pkcs_payload(self.prefix, self.hash_len, k, input)?;
        let mut out = vec![0u8; k];
        let n = self.rsa.private_encrypt(&t, &mut out, Padding::PKCS1)?;
        out.truncate(n);
        Ok(out)
    }
    fn sig_len(&self) -> usize {
        self.rsa.size() as usize
    }
}

struct RsaPkcsVerifier {
    rsa: Rsa<Public>,
    prefix: &'static [u8],
    hash_len: Option<usize>,
}

impl VerifyCore for RsaPkcsVerifier {
    fn verify(&self, input: &[u8], sig: &[u8]) -> Result<()> {
        let k = self.rsa.size() as usize;
        let expected = rsa_pkcs_payload(self.prefix, self.hash_len, k, input)?;
        if sig.len() != k {
            bail!(CKR_SIGNATURE_LEN_RANGE, "RSA signature must be {k} bytes");
        }
        let mut out = vec![0u8; k];
        let n = match self.rsa.public_decrypt(sig, &mut out, Padding::PKCS1) {
            Ok(n) => n,
            Err(_) => bail!(CKR_SIGNATURE_INVALID),
        };
        // Comparing the whole re-encoded DigestInfo rejects signatures with extra or
        // differently encoded fields (the Bleichenbacher'06 family).
        if out.get(..n) == Some(&expected[..]) {
            Ok(())
        } else {
            bail!(CKR_SIGNATURE_INVALID)
        }
    }
}

/// Raw RSA input, left-padded with zeros to the modulus length.
fn rsa_raw_block(k: usize, input: &[u8]) -> Result<Vec<u8>> {
    if input.len() > k {
        bail!(CKR_DATA_LEN_RANGE, "raw RSA input longer than {k} bytes");
    }
    let mut block = vec![0u8; k];
    block[k - input.len()..].copy_from_slice(input);
    Ok(block)
}

struct RsaX509Signer {
    rsa: Rsa<Private>,
}

impl SignCore for RsaX509Signer {
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        let k = self.rsa.size() as usize;
        let block = rsa_raw_block(k, input)?;
        let mut out = vec![0u8; k];
        match self.rsa.private_encrypt(&block, &mut out, Padding::NONE) {
            Ok(_) => Ok(out),
            Err(_) => bail!(CKR_DATA_INVALID, "raw RSA input not below the modulus"),
        }
    }
    fn sig_len(&self) -> usize {
        self.rsa.size() as usize
    }
}

struct RsaX509Verifier {
    rsa: Rsa<Public>,
}

impl VerifyCore for RsaX509Verifier {
    fn verify(&self, input: &[u8], sig: &[u8]) -> Result<()> {
        let k = self.rsa.size() as usize;
        let expected = rsa_raw_block(k, input)?;
        if sig.len() != k {
            bail!(CKR_SIGNATURE_LEN_RANGE, "RSA signature must be {k} bytes");
        }
        let mut out = vec![0u8; k];
        match self.rsa.public_encrypt(sig, &mut out, Padding::NONE) {
            Ok(_) if out == expected => Ok(()),
            _ => bail!(CKR_SIGNATURE_INVALID),
        }
    }
}

struct RsaPssSigner {
    pkey: PKey<Private>,
    params: PssParams,
    k: usize,
}

impl SignCore for RsaPssSigner {
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        if input.len() != self.params.hash.digest_len() {
            bail!(
                CKR_DATA_LEN_RANGE,
                "PSS input must be a {}-byte hash",
                self.params.hash.digest_len()
            );
        }
        let mut ctx = PkeyCtx::new(&self.pkey)?;
        ctx.sign_init()?;
        set_pss(&mut ctx, &self.params)?;
        let mut out = Vec::with_capacity(self.k);
        ctx.sign_to_vec(input, &mut out)?;
        Ok(out)
    }
    fn sig_len(&self) -> usize {
        self.k
    }
}

fn set_pss<T>(ctx: &mut PkeyCtx<T>, p: &PssParams) -> Result<()> {
    ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
    ctx.set_signature_md(crate::hash::md(p.hash))?;
    ctx.set_rsa_mgf1_md(crate::hash::md(p.mgf))?;
    ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(p.salt_len as i32))?;
    Ok(())
}

struct RsaPssVerifier {
    pkey: PKey<Public>,
    params: PssParams,
    k: usize,
}

impl VerifyCore for RsaPssVerifier {
    fn verify(&self, input: &[u8], sig: &[u8]) -> Result<()> {
        if input.len() != self.params.hash.digest_len() {
            bail!(
                CKR_DATA_LEN_RANGE,
                "PSS input must be a {}-byte hash",
                self.params.hash.digest_len()
            );
        }
        if sig.len() != self.k {
            bail!(
                CKR_SIGNATURE_LEN_RANGE,
                "RSA signature must be {} bytes",
                self.k
            );
        }
        let mut ctx = PkeyCtx::new(&self.pkey)?;
        ctx.verify_init()?;
        set_pss(&mut ctx, &self.params)?;
        match ctx.verify(input, sig) {
            Ok(true) => Ok(()),
            _ => bail!(CKR_SIGNATURE_INVALID),
        }
    }
}

// ---- EdDSA ----

/// Longest message we buffer for pure EdDSA, which cannot stream.
const EDDSA_MAX_INPUT: usize = 64 << 20;

struct EdSigner {
    pkey: PKey<Private>,
}

impl SignCore for EdSigner {
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>> {
        let mut s = Signer::new_without_digest(&self.pkey)?;
        Ok(s.sign_oneshot_to_vec(input)?)
    }
    fn sig_len(&self) -> usize {
        64
    }
}

struct EdVerifier {
    pkey: PKey<Public>,
}

impl VerifyCore for EdVerifier {
    fn verify(&self, input: &[u8], sig: &[u8]) -> Result<()> {
        if sig.len() != 64 {
            bail!(
                CKR_SIGNATURE_LEN_RANGE,
                "Ed25519 signature must be 64 bytes"
            );
        }
        let mut v = Verifier::new_without_digest(&self.pkey)?;
        match v.verify_oneshot(sig, input) {
            Ok(true) => Ok(()),
            _ => bail!(CKR_SIGNATURE_INVALID),
        }
    }
}

// ---- MACs ----

struct HmacOp(Hmac);

impl SignOp for HmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.0.update(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        self.0.finish()
    }
    fn sig_len(&self) -> usize {
        self.0.len()
    }
}

impl VerifyOp for HmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.0.update(data)
    }
    fn finish(&mut self, sig: &[u8]) -> Result<()> {
        if sig.len() != self.0.len() {
            bail!(
                CKR_SIGNATURE_LEN_RANGE,
                "HMAC must be {} bytes",
                self.0.len()
            );
        }
        let mac = self.0.finish()?;
        if ct_eq(&mac, sig) {
            Ok(())
        } else {
            bail!(CKR_SIGNATURE_INVALID)
        }
    }
}

impl SignOp for crate::cipher::Cmac {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        crate::cipher::Cmac::update(self, data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        crate::cipher::Cmac::finish(self)
    }
    fn sig_len(&self) -> usize {
        16
    }
}

impl VerifyOp for crate::cipher::Cmac {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        crate::cipher::Cmac::update(self, data)
    }
    fn finish(&mut self, sig: &[u8]) -> Result<()> {
        if sig.len() != 16 {
            bail!(CKR_SIGNATURE_LEN_RANGE, "AES-CMAC must be 16 bytes");
        }
        let mac = crate::cipher::Cmac::finish(self)?;
        if ct_eq(&mac, sig) {
            Ok(())
        } else {
            bail!(CKR_SIGNATURE_INVALID)
        }
    }
}

// ---- dispatch ----

/// How a signature mechanism prepares its input.
enum SigKind {
    Ecdsa(Option<HashAlg>),
    RsaPkcs(Option<HashAlg>),
    RsaX509,
    RsaPss(Option<HashAlg>, PssParams),
    EdDsa,
    Hmac(HashAlg),
    Cmac,
}

fn sig_kind(m: &Mechanism) -> Result<SigKind> {
    Ok(match m {
        Mechanism::Ecdsa => SigKind::Ecdsa(None),
        Mechanism::EcdsaSha1
        | Mechanism::EcdsaSha224
        | Mechanism::EcdsaSha256
        | Mechanism::EcdsaSha384
        | Mechanism::EcdsaSha512 => SigKind::Ecdsa(m.hash()),
        Mechanism::RsaPkcs => SigKind::RsaPkcs(None),
        Mechanism::Sha1RsaPkcs
        | Mechanism::Sha224RsaPkcs
        | Mechanism::Sha256RsaPkcs
        | Mechanism::Sha384RsaPkcs
        | Mechanism::Sha512RsaPkcs => SigKind::RsaPkcs(m.hash()),
        Mechanism::RsaX509 => SigKind::RsaX509,
        Mechanism::RsaPkcsPss(p) => SigKind::RsaPss(None, p.clone()),
        Mechanism::Sha1RsaPkcsPss(p)
        | Mechanism::Sha224RsaPkcsPss(p)
        | Mechanism::Sha256RsaPkcsPss(p)
        | Mechanism::Sha384RsaPkcsPss(p)
        | Mechanism::Sha512RsaPkcsPss(p) => SigKind::RsaPss(m.hash(), p.clone()),
        Mechanism::EdDsa => SigKind::EdDsa,
        Mechanism::Sha1Hmac
        | Mechanism::Sha224Hmac
        | Mechanism::Sha256Hmac
        | Mechanism::Sha384Hmac
        | Mechanism::Sha512Hmac => SigKind::Hmac(
            m.hash()
                .ok_or_else(|| Error::general("HMAC mechanism without hash"))?,
        ),
        Mechanism::AesCmac => SigKind::Cmac,
        _ => bail!(
            CKR_MECHANISM_INVALID,
            "{:#x} cannot sign or verify",
            m.mech_type()
        ),
    })
}

fn key_mismatch(m: &Mechanism) -> Error {
    Error::new(
        CKR_KEY_TYPE_INCONSISTENT,
        format!("key type does not fit mechanism {:#x}", m.mech_type()),
    )
}

/// Checks PSS salt length against the key: emLen - hLen - 2.
fn check_pss(bits: usize, p: &PssParams) -> Result<()> {
    let em_len = (bits - 1).div_ceil(8);
    let max = em_len.saturating_sub(p.hash.digest_len() + 2);
    if p.salt_len > max || em_len < p.hash.digest_len() + 2 {
        bail!(
            CKR_MECHANISM_PARAM_INVALID,
            "PSS salt of {} bytes too long for this key",
            p.salt_len
        );
    }
    Ok(())
}

/// The HMAC key bytes, if the key may be used with HMAC over `h`.
fn hmac_key(key: &KeyMaterial, h: HashAlg) -> Option<&[u8]> {
    let KeyMaterial::Secret(s) = key else {
        return None;
    };
    let matching = match h {
        HashAlg::Sha1 => CKK_SHA_1_HMAC,
        HashAlg::Sha224 => CKK_SHA224_HMAC,
        HashAlg::Sha256 => CKK_SHA256_HMAC,
        HashAlg::Sha384 => CKK_SHA384_HMAC,
        HashAlg::Sha512 => CKK_SHA512_HMAC,
    };
    (s.key_type == CKK_GENERIC_SECRET || s.key_type == matching).then_some(&s.value[..])
}

fn hmac_op(m: &Mechanism, key: &KeyMaterial, h: HashAlg) -> Result<HmacOp> {
    let k = hmac_key(key, h).ok_or_else(|| key_mismatch(m))?;
    if k.is_empty() || k.len() > GENERIC_MAX_LEN {
        bail!(CKR_KEY_SIZE_RANGE, "HMAC key of {} bytes", k.len());
    }
    Ok(HmacOp(Hmac::new(h, k)?))
}

fn cmac_op(m: &Mechanism, key: &KeyMaterial) -> Result<crate::cipher::Cmac> {
    match key {
        KeyMaterial::Secret(s) if s.key_type == CKK_AES => crate::cipher::Cmac::new(&s.value),
        _ => Err(key_mismatch(m)),
    }
}

/// Starts a signature or MAC.
pub fn sign_init(m: &Mechanism, key: &Arc<KeyMaterial>) -> Result<Box<dyn SignOp>> {
    let kind = sig_kind(m)?;
    let key = key.as_ref();
    Ok(match (kind, key) {
        (SigKind::Ecdsa(h), KeyMaterial::EcPrivate(k)) => Box::new(AsymSign {
            input: Input::new(h, ECDSA_MAX_INPUT)?,
            core: EcdsaSigner {
                key: k.key.clone(),
                flen: k.public.curve.field_len(),
            },
        }),
        (SigKind::RsaPkcs(h), KeyMaterial::RsaPrivate(k)) => {
            check_rsa_bits(k.public.bits())?;
            Box::new(AsymSign {
                input: Input::new(h, k.public.modulus_len())?,
                core: RsaPkcsSigner {
                    rsa: k.rsa.clone(),
                    prefix: h.map_or(&[][..], |h| h.digest_info_prefix()),
                    hash_len: h.map(|h| h.digest_len()),
                },
            })
        }
        (SigKind::RsaX509, KeyMaterial::RsaPrivate(k)) => {
            check_rsa_bits(k.public.bits())?;
            Box::new(AsymSign {
                input: Input::new(None, k.public.modulus_len())?,
                core: RsaX509Signer { rsa: k.rsa.clone() },
            })
        }
        (SigKind::RsaPss(h, p), KeyMaterial::RsaPrivate(k)) => {
            check_rsa_bits(k.public.bits())?;
            check_pss(k.public.bits(), &p)?;
            Box::new(AsymSign {
                input: Input::new(h, p.hash.digest_len())?,
                core: RsaPssSigner {
                    pkey: k.pkey.clone(),
                    params: p,
                    k: k.public.modulus_len(),
                },
            })
        }
        (SigKind::EdDsa, KeyMaterial::EdPrivate(k)) => Box::new(AsymSign {
            input: Input::new(None, EDDSA_MAX_INPUT)?,
            core: EdSigner {
                pkey: k.pkey.clone(),
            },
        }),
        (SigKind::Hmac(h), key) => Box::new(hmac_op(m, key, h)?),
        (SigKind::Cmac, key) => Box::new(cmac_op(m, key)?),
        _ => return Err(key_mismatch(m)),
    })
}

/// Starts a verification, with a public key or the public half of a private key.
pub fn verify_init(m: &Mechanism, key: &Arc<KeyMaterial>) -> Result<Box<dyn VerifyOp>> {
    let kind = sig_kind(m)?;
    let key = key.as_ref();
    Ok(match kind {
        SigKind::Ecdsa(h) => {
            let k = key.ec_public().ok_or_else(|| key_mismatch(m))?;
            Box::new(AsymVerify {
                input: Input::new(h, ECDSA_MAX_INPUT)?,
                core: EcdsaVerifier {
                    key: k.key.clone(),
                    flen: k.curve.field_len(),
                },
            })
        }
        SigKind::RsaPkcs(h) => {
            let k = key.rsa_public().ok_or_else(|| key_mismatch(m))?;
            check_rsa_bits(k.bits())?;
            Box::new(AsymVerify {
                input: Input::new(h, k.modulus_len())?,
                core: RsaPkcsVerifier {
                    rsa: k.rsa.clone(),
                    prefix: h.map_or(&[][..], |h| h.digest_info_prefix()),
                    hash_len: h.map(|h| h.digest_len()),
                },
            })
        }
        SigKind::RsaX509 => {
            let k = key.rsa_public().ok_or_else(|| key_mismatch(m))?;
            check_rsa_bits(k.bits())?;
            Box::new(AsymVerify {
                input: Input::new(None, k.modulus_len())?,
                core: RsaX509Verifier { rsa: k.rsa.clone() },
            })
        }
        SigKind::RsaPss(h, p) => {
            let k = key.rsa_public().ok_or_else(|| key_mismatch(m))?;
            check_rsa_bits(k.bits())?;
            check_pss(k.bits(), &p)?;
            Box::new(AsymVerify {
                input: Input::new(h, p.hash.digest_len())?,
                core: RsaPssVerifier {
                    pkey: k.pkey.clone(),
                    params: p,
                    k: k.modulus_len(),
                },
            })
        }
        SigKind::EdDsa => {
            let k = key.ed_public().ok_or_else(|| key_mismatch(m))?;
            Box::new(AsymVerify {
                input: Input::new(None, EDDSA_MAX_INPUT)?,
                core: EdVerifier {
                    pkey: k.pkey.clone(),
                },
            })
        }
        SigKind::Hmac(h) => Box::new(hmac_op(m, key, h)?),
        SigKind::Cmac => Box::new(cmac_op(m, key)?),
    })
}

/// Converts a DER `ECDSA-Sig-Value` (what most KMS APIs return) into the PKCS#11 form r‖s,
/// each half padded to `field_len` bytes. A malformed signature is `CKR_DEVICE_ERROR`:
/// it came from the device, not from the caller.
pub fn ecdsa_der_to_raw(der: &[u8], field_len: usize) -> Result<Vec<u8>> {
    let bad = || {
        Error::new(
            CKR_DEVICE_ERROR,
            "backend returned a malformed ECDSA signature",
        )
    };
    let sig = EcdsaSig::from_der(der).map_err(|_| bad())?;
    let width = i32::try_from(field_len).map_err(|_| bad())?;
    let mut out = sig.r().to_vec_padded(width).map_err(|_| bad())?;
    out.extend_from_slice(&sig.s().to_vec_padded(width).map_err(|_| bad())?);
    Ok(out)
}

/// Converts a PKCS#11 r‖s ECDSA signature into DER, for backends that verify DER.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        bail!(CKR_SIGNATURE_LEN_RANGE, "r‖s signature of odd length");
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let sig = EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(s)?)?;
    Ok(sig.to_der()?)
}
