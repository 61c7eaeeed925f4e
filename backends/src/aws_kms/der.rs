//! The little DER the KMS backend needs: which hash a PKCS#1 DigestInfo names, curve
//! OIDs, and KMS's DER ECDSA signatures turned into PKCS#11's `r‖s`.

use crate::backend::{BackendError, BackendResult, HashAlg};

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
    pub fn hash(self) -> HashAlg {
        match self {
            Curve::P256 | Curve::Secp256k1 => HashAlg::Sha256,
            Curve::P384 => HashAlg::Sha384,
            Curve::P521 => HashAlg::Sha512,
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
        let mut di = HashAlg::Sha256.digest_info_prefix().to_vec();
        di.extend([7u8; 32]);
        assert_eq!(HashAlg::from_digest_info(&di), Some((HashAlg::Sha256, &[7u8; 32][..])));
        // One byte short: not a DigestInfo.
        assert_eq!(HashAlg::from_digest_info(&di[..di.len() - 1]), None);
        // Raw data.
        assert_eq!(HashAlg::from_digest_info(&[1, 2, 3]), None);
        let mut sha1 = HashAlg::Sha1.digest_info_prefix().to_vec();
        sha1.extend([0u8; 20]);
        assert_eq!(HashAlg::from_digest_info(&sha1).map(|x| x.0), Some(HashAlg::Sha1));
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
