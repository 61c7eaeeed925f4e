//! Independent checks with OpenSSL: a signature is only trusted once OpenSSL verifies it
//! with the public key read from the token; ciphertexts are opened by OpenSSL.

use cryptoki::mechanism::MechanismType;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::md::{Md, MdRef};
use openssl::nid::Nid;
use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};

/// The NIST curves the module supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// secp256r1
    P256,
    /// secp384r1
    P384,
    /// secp521r1
    P521,
}

impl Curve {
    /// All supported curves.
    pub const ALL: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

    /// CKA_EC_PARAMS: the DER-encoded named-curve OID.
    pub fn params(self) -> Vec<u8> {
        match self {
            Curve::P256 => vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            Curve::P384 => vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
            Curve::P521 => vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
        }
    }

    /// The curve whose OID `params` encodes.
    pub fn from_params(params: &[u8]) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.params() == params)
    }

    /// OpenSSL's NID for the curve.
    pub fn nid(self) -> Nid {
        match self {
            Curve::P256 => Nid::X9_62_PRIME256V1,
            Curve::P384 => Nid::SECP384R1,
            Curve::P521 => Nid::SECP521R1,
        }
    }

    /// Bytes of one coordinate (and of r and s in a raw PKCS#11 ECDSA signature).
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The OpenSSL group.
    pub fn group(self) -> EcGroup {
        EcGroup::from_curve_name(self.nid()).unwrap()
    }

    /// A fresh OpenSSL key on this curve.
    pub fn generate(self) -> EcKey<Private> {
        EcKey::generate(&self.group()).unwrap()
    }
}

/// DER OCTET STRING around `bytes` (as CKA_EC_POINT holds the point).
pub fn der_octet_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04];
    let n = bytes.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(bytes);
    out
}

/// The contents of a DER OCTET STRING, or `None` if `der` is not exactly one.
pub fn der_octet_string_contents(der: &[u8]) -> Option<&[u8]> {
    if der.len() < 2 || der[0] != 0x04 {
        return None;
    }
    let (len, header) = match der[1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 if der.len() >= 3 => (der[2] as usize, 3),
        0x82 if der.len() >= 4 => (((der[2] as usize) << 8) | der[3] as usize, 4),
        _ => return None,
    };
    (der.len() == header + len).then(|| &der[header..])
}

/// DER INTEGER of a big-endian unsigned value (as CKA_SERIAL_NUMBER holds it).
pub fn der_integer(unsigned: &[u8]) -> Vec<u8> {
    let mut body: Vec<u8> = unsigned.iter().copied().skip_while(|b| *b == 0).collect();
    if body.is_empty() || body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    let mut out = vec![0x02, body.len() as u8];
    out.extend(body);
    out
}

/// Uncompressed point bytes of an OpenSSL EC key.
pub fn ec_point_bytes<T: openssl::pkey::HasPublic>(key: &EcKey<T>) -> Vec<u8> {
    let mut ctx = BigNumContext::new().unwrap();
    key.public_key()
        .to_bytes(key.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
        .unwrap()
}

/// An OpenSSL public key from the uncompressed point `point` on `curve`.
pub fn ec_public_key(curve: Curve, point: &[u8]) -> EcKey<Public> {
    let group = curve.group();
    let mut ctx = BigNumContext::new().unwrap();
    let point = EcPoint::from_bytes(&group, point, &mut ctx)
        .unwrap_or_else(|e| panic!("CKA_EC_POINT is not a point on {curve:?}: {e}"));
    let key = EcKey::from_public_key(&group, &point).unwrap();
    key.check_key()
        .expect("public point passes OpenSSL's key check");
    key
}

/// A PKCS#11 ECDSA signature (r || s, each `field_len` bytes) as a DER ECDSA-Sig-Value.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Vec<u8> {
    assert!(
        raw.len() & 1 == 0,
        "raw ECDSA signature has odd length {}",
        raw.len()
    );
    let (r, s) = raw.split_at(raw.len() / 2);
    EcdsaSig::from_private_components(
        BigNum::from_slice(r).unwrap(),
        BigNum::from_slice(s).unwrap(),
    )
    .unwrap()
    .to_der()
    .unwrap()
}

/// A DER ECDSA-Sig-Value as PKCS#11's r || s.
pub fn ecdsa_der_to_raw(der: &[u8], field_len: usize) -> Vec<u8> {
    let sig = EcdsaSig::from_der(der).unwrap();
    let mut out = sig.r().to_vec_padded(field_len as i32).unwrap();
    out.extend(sig.s().to_vec_padded(field_len as i32).unwrap());
    out
}

/// Verifies a raw (r || s) ECDSA signature over an already-hashed `digest`.
pub fn ecdsa_verify_digest(key: &EcKey<Public>, digest: &[u8], raw_sig: &[u8]) -> bool {
    let sig = EcdsaSig::from_der(&ecdsa_raw_to_der(raw_sig)).unwrap();
    sig.verify(digest, key).unwrap_or(false)
}

/// The OpenSSL digest behind a PKCS#11 hash mechanism.
pub fn md_of(hash: MechanismType) -> MessageDigest {
    match hash {
        MechanismType::SHA1 => MessageDigest::sha1(),
        MechanismType::SHA224 => MessageDigest::sha224(),
        MechanismType::SHA256 => MessageDigest::sha256(),
        MechanismType::SHA384 => MessageDigest::sha384(),
        MechanismType::SHA512 => MessageDigest::sha512(),
        other => panic!("no digest for {other}"),
    }
}

/// The `openssl::md` handle of a PKCS#11 hash mechanism.
pub fn md_ref_of(hash: MechanismType) -> &'static MdRef {
    match hash {
        MechanismType::SHA1 => Md::sha1(),
        MechanismType::SHA224 => Md::sha224(),
        MechanismType::SHA256 => Md::sha256(),
        MechanismType::SHA384 => Md::sha384(),
        MechanismType::SHA512 => Md::sha512(),
        other => panic!("no digest for {other}"),
    }
}

/// Hash `data` with OpenSSL.
pub fn digest(md: MessageDigest, data: &[u8]) -> Vec<u8> {
    openssl::hash::hash(md, data).unwrap().to_vec()
}

/// An OpenSSL RSA public key from CKA_MODULUS and CKA_PUBLIC_EXPONENT.
pub fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> PKey<Public> {
    let rsa = Rsa::from_public_components(
        BigNum::from_slice(modulus).unwrap(),
        BigNum::from_slice(exponent).unwrap(),
    )
    .unwrap();
    PKey::from_rsa(rsa).unwrap()
}

/// RSA PSS parameters for OpenSSL.
#[derive(Clone, Copy, Debug)]
pub struct Pss {
    /// MGF1 hash.
    pub mgf1: MechanismType,
    /// Salt length in bytes.
    pub salt: usize,
}

/// Verifies an RSA signature over `message` hashed with `hash`, PKCS#1 v1.5 or PSS.
pub fn rsa_verify_message(
    key: &PKeyRef<Public>,
    hash: MechanismType,
    pss: Option<Pss>,
    message: &[u8],
    sig: &[u8],
) -> bool {
    let mut verifier = Verifier::new(md_of(hash), key).unwrap();
    if let Some(pss) = pss {
        verifier.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
        verifier
            .set_rsa_pss_saltlen(RsaPssSaltlen::custom(pss.salt as i32))
            .unwrap();
        verifier.set_rsa_mgf1_md(md_of(pss.mgf1)).unwrap();
    }
    verifier.verify_oneshot(sig, message).unwrap_or(false)
}

/// Verifies an RSA-PSS signature over a precomputed `digest` (CKM_RSA_PKCS_PSS).
pub fn rsa_pss_verify_digest(
    key: &PKeyRef<Public>,
    hash: MechanismType,
    pss: Pss,
    digest: &[u8],
    sig: &[u8],
) -> bool {
    let mut ctx = PkeyCtx::new(key).unwrap();
    ctx.verify_init().unwrap();
    ctx.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    ctx.set_signature_md(md_ref_of(hash)).unwrap();
    ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(pss.salt as i32))
        .unwrap();
    ctx.set_rsa_mgf1_md(md_ref_of(pss.mgf1)).unwrap();
    ctx.verify(digest, sig).unwrap_or(false)
}

/// Recovers the PKCS#1 v1.5 block contents of a raw CKM_RSA_PKCS signature.
pub fn rsa_pkcs1_recover(key: &PKeyRef<Public>, sig: &[u8]) -> Option<Vec<u8>> {
    let rsa = key.rsa().unwrap();
    let mut out = vec![0u8; rsa.size() as usize];
    let n = rsa.public_decrypt(sig, &mut out, Padding::PKCS1).ok()?;
    out.truncate(n);
    Some(out)
}

/// DER DigestInfo for `digest` made with `hash` (the input of raw CKM_RSA_PKCS signing).
pub fn digest_info(hash: MechanismType, digest: &[u8]) -> Vec<u8> {
    let prefix: &[u8] = match hash {
        MechanismType::SHA1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        MechanismType::SHA256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        MechanismType::SHA384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        MechanismType::SHA512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        other => panic!("no DigestInfo prefix for {other}"),
    };
    let mut out = prefix.to_vec();
    out.extend_from_slice(digest);
    out
}

/// HMAC with OpenSSL.
pub fn hmac(hash: MechanismType, key: &[u8], data: &[u8]) -> Vec<u8> {
    let pkey = PKey::hmac(key).unwrap();
    let mut signer = Signer::new(md_of(hash), &pkey).unwrap();
    signer.sign_oneshot_to_vec(data).unwrap()
}

/// OAEP parameters for OpenSSL.
#[derive(Clone, Copy, Debug)]
pub struct Oaep<'a> {
    /// OAEP hash.
    pub hash: MechanismType,
    /// MGF1 hash.
    pub mgf1: MechanismType,
    /// Label (empty for none).
    pub label: &'a [u8],
}

/// RSA-OAEP encryption with OpenSSL.
pub fn rsa_oaep_encrypt<T: openssl::pkey::HasPublic>(
    key: &PKeyRef<T>,
    oaep: Oaep<'_>,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut ctx = PkeyCtx::new(key).unwrap();
    ctx.encrypt_init().unwrap();
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    ctx.set_rsa_oaep_md(md_ref_of(oaep.hash)).unwrap();
    ctx.set_rsa_mgf1_md(md_ref_of(oaep.mgf1)).unwrap();
    if !oaep.label.is_empty() {
        ctx.set_rsa_oaep_label(oaep.label).unwrap();
    }
    let mut out = Vec::new();
    ctx.encrypt_to_vec(plaintext, &mut out).unwrap();
    out
}

/// RSA-OAEP decryption with OpenSSL; `None` if it does not decrypt.
pub fn rsa_oaep_decrypt(
    key: &PKeyRef<Private>,
    oaep: Oaep<'_>,
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    let mut ctx = PkeyCtx::new(key).unwrap();
    ctx.decrypt_init().unwrap();
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    ctx.set_rsa_oaep_md(md_ref_of(oaep.hash)).unwrap();
    ctx.set_rsa_mgf1_md(md_ref_of(oaep.mgf1)).unwrap();
    if !oaep.label.is_empty() {
        ctx.set_rsa_oaep_label(oaep.label).unwrap();
    }
    let mut out = Vec::new();
    ctx.decrypt_to_vec(ciphertext, &mut out).ok()?;
    Some(out)
}

/// The OpenSSL AES-GCM cipher for a key of `len` bytes.
pub fn aes_gcm_cipher(len: usize) -> openssl::symm::Cipher {
    match len {
        16 => openssl::symm::Cipher::aes_128_gcm(),
        24 => openssl::symm::Cipher::aes_192_gcm(),
        32 => openssl::symm::Cipher::aes_256_gcm(),
        n => panic!("no AES-{} key", n * 8),
    }
}

/// The OpenSSL AES-CBC cipher for a key of `len` bytes.
pub fn aes_cbc_cipher(len: usize) -> openssl::symm::Cipher {
    match len {
        16 => openssl::symm::Cipher::aes_128_cbc(),
        24 => openssl::symm::Cipher::aes_192_cbc(),
        32 => openssl::symm::Cipher::aes_256_cbc(),
        n => panic!("no AES-{} key", n * 8),
    }
}

/// `n` random bytes from OpenSSL.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    openssl::rand::rand_bytes(&mut buf).unwrap();
    buf
}

/// A self-signed X.509 certificate (DER) for `cn`, with its subject, issuer and serial.
pub struct TestCert {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject Name, DER.
    pub subject: Vec<u8>,
    /// Issuer Name, DER.
    pub issuer: Vec<u8>,
    /// Serial number as a DER INTEGER.
    pub serial: Vec<u8>,
}

/// Makes a self-signed P-256 certificate for `cn`.
pub fn self_signed_cert(cn: &str) -> TestCert {
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = PKey::from_ec_key(Curve::P256.generate()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let serial_bytes = [0x01, 0x23, 0x45, 0x67, 0x89];
    let serial = Asn1Integer::from_bn(&BigNum::from_slice(&serial_bytes).unwrap()).unwrap();
    let mut builder = X509Builder::new().unwrap();
    builder.set_version(2).unwrap();
    builder.set_serial_number(&serial).unwrap();
    builder.set_subject_name(&name).unwrap();
    builder.set_issuer_name(&name).unwrap();
    builder.set_pubkey(&key).unwrap();
    builder
        .set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    builder
        .set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    builder.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = builder.build();
    TestCert {
        der: cert.to_der().unwrap(),
        subject: cert.subject_name().to_der().unwrap(),
        issuer: cert.issuer_name().to_der().unwrap(),
        serial: der_integer(&serial_bytes),
    }
}
