//! The little DER the KMS backend needs: which hash a PKCS#1 DigestInfo names, curve
//! OIDs, and KMS's DER ECDSA signatures turned into PKCS#11's `r‖s`.

use crate::backend::{BackendError, BackendResult, Hash};

/// The curves KMS signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (`ECC_NIST_P256`).
    P256,
    /// NIST P-384 (`ECC_NIST_P384`).
    P384,
    /// NIST P-521 (`ECC_NIST_P521`).
    P521,
    /// secp256k1 (`ECC_SECG_P256K1`).
    Secp256k1,
}

impl Curve {
    /// The DER OID of the named curve, as in `CKA_EC_PARAMS`.
    pub fn params(self) -> &'static [u8] {
        match self {
            Curve::P256 => &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            Curve::P384 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
            Curve::P521 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
            Curve::Secp256k1 => &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
        }
    }

    /// The curve whose OID is `params`.
    pub fn from_params(params: &[u8]) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1]
            .into_iter()
            .find(|c| c.params() == params)
    }

    /// Field length in bytes: the length of `r` and of `s` in `r‖s`.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The one hash KMS pairs with the curve (its only ECDSA signing algorithm).
    pub fn hash(self) -> Hash {
        match self {
            Curve::P256 | Curve::Secp256k1 => Hash::Sha256,
            Curve::P384 => Hash::Sha384,
            Curve::P521 => Hash::Sha512,
        }
    }

    /// KMS `KeySpec`.
    pub fn key_spec(self) -> &'static str {
        match self {
            Curve::P256 => "ECC_NIST_P256",
            Curve::P384 => "ECC_NIST_P384",
            Curve::P521 => "ECC_NIST_P521",
            Curve::Secp256k1 => "ECC_SECG_P256K1",
        }
    }

    /// The curve of a KMS `KeySpec`.
    pub fn from_key_spec(spec: &str) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1]
            .into_iter()
            .find(|c| c.key_spec() == spec)
    }
}

/// DER DigestInfo prefixes (AlgorithmIdentifier with NULL parameters, as RFC 8017
/// §9.2 writes them) of the hashes KMS signs with PKCS#1 v1.5, and of the others so
/// that they are refused by name.
const DIGEST_INFO_PREFIXES: [(Hash, &[u8]); 5] = [
    (
        Hash::Sha1,
        &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
    ),
    (
        Hash::Sha224,
        &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x04, 0x05, 0x00, 0x04, 0x1c,
        ],
    ),
    (
        Hash::Sha256,
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
    ),
    (
        Hash::Sha384,
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
    ),
    (
        Hash::Sha512,
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    ),
];

/// Splits a DER DigestInfo into its hash and digest. `None` when the input is not
/// exactly a DigestInfo of a known hash in its canonical encoding: KMS re-encodes the
/// DigestInfo itself, so anything else would be signed as different bytes.
pub fn parse_digest_info(input: &[u8]) -> Option<(Hash, &[u8])> {
    DIGEST_INFO_PREFIXES.iter().find_map(|(hash, prefix)| {
        let digest = input.strip_prefix(*prefix)?;
        (digest.len() == hash.output_len()).then_some((*hash, digest))
    })
}

/// KMS's DER `ECDSA-Sig-Value` → `r‖s`, each left-padded to the curve's field length.
pub fn ecdsa_der_to_raw(der: &[u8], curve: Curve) -> BackendResult<Vec<u8>> {
    let sig = openssl::ecdsa::EcdsaSig::from_der(der).map_err(|e| {
        BackendError::Other(format!("KMS returned an unreadable ECDSA signature: {e}"))
    })?;
    let n = i32::try_from(curve.field_len()).unwrap_or(66);
    let pad = |b: &openssl::bn::BigNumRef| {
        b.to_vec_padded(n).map_err(|e| {
            BackendError::Other(format!(
                "KMS returned an ECDSA signature too long for the curve: {e}"
            ))
        })
    };
    let mut out = pad(sig.r())?;
    out.extend(pad(sig.s())?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_info_names_its_hash() {
        let mut di = DIGEST_INFO_PREFIXES[2].1.to_vec();
        di.extend([7u8; 32]);
        assert_eq!(parse_digest_info(&di), Some((Hash::Sha256, &[7u8; 32][..])));
        // One byte short: not a DigestInfo.
        assert_eq!(parse_digest_info(&di[..di.len() - 1]), None);
        // Raw data.
        assert_eq!(parse_digest_info(&[1, 2, 3]), None);
        let mut sha1 = DIGEST_INFO_PREFIXES[0].1.to_vec();
        sha1.extend([0u8; 20]);
        assert_eq!(parse_digest_info(&sha1).map(|x| x.0), Some(Hash::Sha1));
    }

    #[test]
    fn der_signature_is_padded_to_the_field() {
        use openssl::bn::BigNum;
        let r = BigNum::from_u32(5).unwrap();
        let s = BigNum::from_slice(&[0xff; 66][..65]).unwrap();
        let der = openssl::ecdsa::EcdsaSig::from_private_components(r, s)
            .unwrap()
            .to_der()
            .unwrap();
        let raw = ecdsa_der_to_raw(&der, Curve::P521).unwrap();
        assert_eq!(raw.len(), 132);
        assert_eq!(raw[65], 5);
        assert_eq!(raw[66], 0);
        assert!(ecdsa_der_to_raw(&der, Curve::P256).is_err());
    }
}
