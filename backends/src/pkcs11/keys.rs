//! Public-key encodings (vendor attributes → SubjectPublicKeyInfo) and the RSA
//! paddings we apply ourselves when a vendor's OAEP/PSS lacks a parameter set.

use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::hash::hash;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey};
use openssl::rsa::Rsa;
use zeroize::Zeroizing;

use crate::HashAlg;

/// DER of the Ed25519 OID (1.3.101.112), as `CKA_EC_PARAMS` of an Ed25519 key.
pub(crate) const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER OIDs of the NIST curves P-256, P-384 and P-521 (`CKA_EC_PARAMS`).
pub(crate) const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
pub(crate) const P521_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
/// `PrintableString "edwards25519"`, the older way vendors name the curve.
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

pub(crate) fn is_ed25519(params: &[u8]) -> bool {
    params == ED25519_OID || params == ED25519_NAME
}

/// SPKI of an RSA public key.
pub(crate) fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Option<Vec<u8>> {
    let n = BigNum::from_slice(modulus).ok()?;
    let e = BigNum::from_slice(exponent).ok()?;
    let rsa = Rsa::from_public_components(n, e).ok()?;
    PKey::from_rsa(rsa).ok()?.public_key_to_der().ok()
}

/// Modulus length in bits (leading zero bytes ignored).
pub(crate) fn modulus_bits(modulus: &[u8]) -> usize {
    BigNum::from_slice(modulus).map_or(0, |n| n.num_bits() as usize)
}

/// The named curve of a DER OID in `CKA_EC_PARAMS`.
fn curve(params: &[u8]) -> Option<EcGroup> {
    let oid = der_oid_to_text(params)?;
    let obj = openssl::asn1::Asn1Object::from_str(&oid).ok()?;
    let nid = obj.nid();
    if nid == Nid::UNDEF {
        return None;
    }
    EcGroup::from_curve_name(nid).ok()
}

/// Dotted text of a DER OBJECT IDENTIFIER (tag, short length, content).
fn der_oid_to_text(der: &[u8]) -> Option<String> {
    let (&tag, rest) = der.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x06 || len as usize != body.len() || body.is_empty() || len > 0x7f {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut cur: u64 = 0;
    for (i, b) in body.iter().enumerate() {
        cur = cur.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (cur / 40).min(2);
                arcs.push(first);
                arcs.push(cur - first * 40);
            } else {
                arcs.push(cur);
            }
            cur = 0;
        } else if i == body.len() - 1 {
            return None;
        }
    }
    Some(
        arcs.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The point inside `CKA_EC_POINT`: the DER OCTET STRING the standard asks for, or the
/// raw point some vendors return.
fn unwrap_point(v: &[u8]) -> Vec<&[u8]> {
    let mut candidates = Vec::with_capacity(2);
    if v.len() > 2 && v[0] == 0x04 {
        let (len, hdr) = match v[1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 if v.len() > 3 => (v[2] as usize, 3),
            _ => (usize::MAX, 0),
        };
        if hdr > 0 && hdr + len == v.len() {
            candidates.push(&v[hdr..]);
        }
    }
    candidates.push(v);
    candidates
}

/// SPKI of an EC public key on a named curve; `None` for curves OpenSSL lacks.
pub(crate) fn ec_spki(params: &[u8], point: &[u8]) -> Option<Vec<u8>> {
    let group = curve(params)?;
    let mut ctx = openssl::bn::BigNumContext::new().ok()?;
    for raw in unwrap_point(point) {
        if let Ok(p) = EcPoint::from_bytes(&group, raw, &mut ctx) {
            let key = EcKey::from_public_key(&group, &p).ok()?;
            return PKey::from_ec_key(key).ok()?.public_key_to_der().ok();
        }
    }
    None
}

/// SPKI of an Ed25519 public key.
pub(crate) fn ed25519_spki(point: &[u8]) -> Option<Vec<u8>> {
    unwrap_point(point)
        .into_iter()
        .filter(|raw| raw.len() == 32)
        .find_map(|raw| PKey::public_key_from_raw_bytes(raw, Id::ED25519).ok())
        .and_then(|k| k.public_key_to_der().ok())
}

/// A vendor's `CKA_PUBLIC_KEY_INFO`, if it is a SubjectPublicKeyInfo OpenSSL reads.
pub(crate) fn checked_spki(der: &[u8]) -> Option<Vec<u8>> {
    if der.is_empty() {
        return None;
    }
    PKey::public_key_from_der(der)
        .ok()?
        .public_key_to_der()
        .ok()
}

/// Length of an ECDSA signature `r‖s` on the curve of `params`.
pub(crate) fn ecdsa_sig_len(params: &[u8]) -> Option<usize> {
    let g = curve(params)?;
    Some((g.degree() as usize).div_ceil(8) * 2)
}


/// MGF1 (RFC 8017 B.2.1).
fn mgf1(h: HashAlg, seed: &[u8], len: usize) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + h.digest_len()));
    let mut counter: u32 = 0;
    let mut input = Zeroizing::new(Vec::with_capacity(seed.len() + 4));
    while out.len() < len {
        input.clear();
        input.extend_from_slice(seed);
        input.extend_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(&hash(h.message_digest(), &input).ok()?);
        counter += 1;
    }
    out.truncate(len);
    Some(out)
}

/// EME-OAEP decoding (RFC 8017 7.1.2 step 3) of the raw RSA result `em` (`k` bytes).
/// Every failure is the same `None`, and the checks are combined without early exit so
/// timing does not tell them apart.
pub(crate) fn oaep_decode(
    h: HashAlg,
    mgf: HashAlg,
    label: &[u8],
    em: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let k = em.len();
    let hlen = h.digest_len();
    if k < 2 * hlen + 2 {
        return None;
    }
    let lhash = hash(h.message_digest(), label).ok()?;
    let (y, rest) = (em[0], &em[1..]);
    let (masked_seed, masked_db) = rest.split_at(hlen);
    let seed_mask = mgf1(mgf, masked_db, hlen)?;
    let seed: Zeroizing<Vec<u8>> = Zeroizing::new(
        masked_seed
            .iter()
            .zip(seed_mask.iter())
            .map(|(a, b)| a ^ b)
            .collect(),
    );
    let db_mask = mgf1(mgf, &seed, k - hlen - 1)?;
    let db: Zeroizing<Vec<u8>> = Zeroizing::new(
        masked_db
            .iter()
            .zip(db_mask.iter())
            .map(|(a, b)| a ^ b)
            .collect(),
    );

    let mut bad: u8 = y;
    if !openssl::memcmp::eq(&db[..hlen], &lhash) {
        bad |= 1;
    }
    // Find the 0x01 after the zero padding without branching on secret data.
    let mut found: u8 = 0; // 0xff once the separator was seen
    let mut index: usize = 0;
    for (i, &b) in db[hlen..].iter().enumerate() {
        let is_one = ct_eq(b, 1);
        let is_zero = ct_eq(b, 0);
        let first = is_one & !found;
        index |= i & usize::from(first & 1).wrapping_neg();
        // A non-zero, non-one byte before the separator is a padding error.
        bad |= !found & !is_zero & !is_one;
        found |= is_one;
    }
    bad |= !found;
    if bad != 0 {
        return None;
    }
    Some(Zeroizing::new(db[hlen + index + 1..].to_vec()))
}

/// 0xff if a == b else 0, without a branch.
fn ct_eq(a: u8, b: u8) -> u8 {
    let x = u32::from(a ^ b);
    // x == 0 → (0 - 1) >> 8 has all low bits set.
    ((x.wrapping_sub(1) >> 8) & 0xff) as u8
}

/// EMSA-PSS encoding (RFC 8017 9.1.1) of `digest` for a modulus of `mod_bits` bits,
/// left-padded with zeros to the modulus length, ready for raw RSA.
pub(crate) fn pss_encode(
    h: HashAlg,
    mgf: HashAlg,
    salt_len: usize,
    digest: &[u8],
    mod_bits: usize,
) -> Option<Vec<u8>> {
    let hlen = h.digest_len();
    let em_bits = mod_bits.checked_sub(1)?;
    let em_len = em_bits.div_ceil(8);
    if digest.len() != hlen || em_len < hlen + salt_len + 2 {
        return None;
    }
    let mut salt = vec![0u8; salt_len];
    openssl::rand::rand_bytes(&mut salt).ok()?;
    let mut m = Vec::with_capacity(8 + hlen + salt_len);
    m.extend_from_slice(&[0u8; 8]);
    m.extend_from_slice(digest);
    m.extend_from_slice(&salt);
    let hh = hash(h.message_digest(), &m).ok()?;
    let db_len = em_len - hlen - 1;
    let mut db = vec![0u8; db_len];
    db[db_len - salt_len - 1] = 1;
    db[db_len - salt_len..].copy_from_slice(&salt);
    let mask = mgf1(mgf, &hh, db_len)?;
    for (d, m) in db.iter_mut().zip(mask.iter()) {
        *d ^= m;
    }
    db[0] &= 0xff >> (8 * em_len - em_bits);
    let k = mod_bits.div_ceil(8);
    let mut out = vec![0u8; k - em_len];
    out.extend_from_slice(&db);
    out.extend_from_slice(&hh);
    out.push(0xbc);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::hash::MessageDigest;
    use openssl::encrypt::Encrypter;
    use openssl::rsa::Padding;

    #[test]
    fn oid_text() {
        assert_eq!(
            der_oid_to_text(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]).unwrap(),
            "1.2.840.10045.3.1.7"
        );
        assert!(der_oid_to_text(&[0x06, 0x02, 0x2a]).is_none());
        assert_eq!(
            ecdsa_sig_len(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]),
            Some(132)
        );
    }

    /// Our OAEP decoding accepts what OpenSSL's OAEP produces, for mixed hashes and a
    /// label, and refuses a ciphertext under another label.
    #[test]
    fn oaep_decode_matches_openssl() {
        let rsa = Rsa::generate(2048).unwrap();
        let key = PKey::from_rsa(rsa.clone()).unwrap();
        for (h, mgf, label) in [
            (HashAlg::Sha256, HashAlg::Sha256, &b""[..]),
            (HashAlg::Sha384, HashAlg::Sha1, &b"label"[..]),
        ] {
            let mut enc = Encrypter::new(&key).unwrap();
            enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            enc.set_rsa_oaep_md(h.message_digest()).unwrap();
            enc.set_rsa_mgf1_md(mgf.message_digest()).unwrap();
            if !label.is_empty() {
                enc.set_rsa_oaep_label(label).unwrap();
            }
            let mut ct = vec![0u8; enc.encrypt_len(b"hello").unwrap()];
            let n = enc.encrypt(b"hello", &mut ct).unwrap();
            ct.truncate(n);
            let mut em = vec![0u8; 256];
            let n = rsa.private_decrypt(&ct, &mut em, Padding::NONE).unwrap();
            assert_eq!(n, 256);
            assert_eq!(
                oaep_decode(h, mgf, label, &em).unwrap().as_slice(),
                b"hello"
            );
            assert!(oaep_decode(h, mgf, b"other", &em).is_none());
        }
    }

    /// A PSS encoding signed with raw RSA verifies as PSS in OpenSSL.
    #[test]
    fn pss_encode_verifies_in_openssl() {
        let rsa = Rsa::generate(2047).unwrap();
        let key = PKey::from_rsa(rsa.clone()).unwrap();
        let digest = hash(MessageDigest::sha256(), b"msg").unwrap();
        let em = pss_encode(HashAlg::Sha256, HashAlg::Sha1, 20, &digest, 2047).unwrap();
        let mut sig = vec![0u8; 256];
        rsa.private_encrypt(&em, &mut sig, Padding::NONE).unwrap();
        let mut v = openssl::sign::Verifier::new(MessageDigest::sha256(), &key).unwrap();
        v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
        v.set_rsa_mgf1_md(MessageDigest::sha1()).unwrap();
        v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(20))
            .unwrap();
        v.update(b"msg").unwrap();
        assert!(v.verify(&sig).unwrap());
    }
}
