//! Key and key-pair generation, randomness, and the attribute views of parsed keys.

use crate::attr::Attributes;
use crate::key::{
    der_octet_string, ec_params, is_ed25519_params, Curve, EcPrivateKey, KeyMaterial,
    RsaPrivateKey, ED25519_OID,
};
use crate::mech::{Mechanism, GENERIC_MAX_LEN, RSA_MAX_BITS, RSA_MIN_BITS};
use crate::{bail, Error, Result};
use cryptoki_sys::*;
use openssl::bn::BigNum;
use openssl::ec::EcKey;
use openssl::pkey::{Id, PKey};
use openssl::rsa::Rsa;
use zeroize::Zeroizing;

/// Fills `buf` from the OpenSSL CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<()> {
    // RAND_bytes counts in a C int.
    for chunk in buf.chunks_mut(1 << 30) {
        openssl::rand::rand_bytes(chunk)?;
    }
    Ok(())
}

/// Rejects a template `CKA_KEY_TYPE` that contradicts what the mechanism makes.
fn check_key_type(tmpl: &Attributes, allowed: &[CK_KEY_TYPE]) -> Result<Option<CK_KEY_TYPE>> {
    match tmpl.get_ulong(CKA_KEY_TYPE)? {
        Some(kt) if !allowed.contains(&kt) => bail!(
            CKR_TEMPLATE_INCONSISTENT,
            "CKA_KEY_TYPE {kt:#x} does not fit the generation mechanism"
        ),
        kt => Ok(kt),
    }
}

/// Private-key attributes (key type and value attributes) of a private key.
pub(crate) fn private_attributes(key: &KeyMaterial) -> Result<Attributes> {
    let mut a = Attributes::new();
    a.set_ulong(CKA_KEY_TYPE, key.key_type());
    match key {
        KeyMaterial::RsaPrivate(k) => {
            let r = &k.rsa;
            a.set(CKA_MODULUS, r.n().to_vec());
            a.set(CKA_PUBLIC_EXPONENT, r.e().to_vec());
            a.set(CKA_PRIVATE_EXPONENT, r.d().to_vec());
            let parts = [
                (CKA_PRIME_1, r.p()),
                (CKA_PRIME_2, r.q()),
                (CKA_EXPONENT_1, r.dmp1()),
                (CKA_EXPONENT_2, r.dmq1()),
                (CKA_COEFFICIENT, r.iqmp()),
            ];
            for (t, v) in parts {
                let v = v.ok_or_else(|| Error::general("RSA key without CRT parts"))?;
                a.set(t, v.to_vec());
            }
        }
        KeyMaterial::EcPrivate(k) => {
            a.set(CKA_EC_PARAMS, k.public.curve.params());
            a.set(CKA_VALUE, k.scalar()?.to_vec());
        }
        KeyMaterial::EdPrivate(k) => {
            a.set(CKA_EC_PARAMS, k.public.params.clone());
            a.set(CKA_VALUE, k.seed()?.to_vec());
        }
        _ => bail!(CKR_KEY_TYPE_INCONSISTENT, "not a private key"),
    }
    Ok(a)
}

/// The attributes a public-key object needs, from a public or private key:
/// `CKA_KEY_TYPE` and RSA `CKA_MODULUS`, `CKA_MODULUS_BITS`, `CKA_PUBLIC_EXPONENT`, or
/// EC/Edwards `CKA_EC_PARAMS`, `CKA_EC_POINT` (DER OCTET STRING).
pub fn public_attributes(key: &KeyMaterial) -> Result<Attributes> {
    let mut a = Attributes::new();
    a.set_ulong(CKA_KEY_TYPE, key.key_type());
    if let Some(k) = key.rsa_public() {
        a.set(CKA_MODULUS, k.rsa.n().to_vec());
        a.set(CKA_PUBLIC_EXPONENT, k.rsa.e().to_vec());
        a.set_ulong(CKA_MODULUS_BITS, k.bits() as CK_ULONG);
    } else if let Some(k) = key.ec_public() {
        a.set(CKA_EC_PARAMS, k.curve.params());
        a.set(CKA_EC_POINT, der_octet_string(&k.point()?));
    } else if let Some(k) = key.ed_public() {
        a.set(CKA_EC_PARAMS, k.params.clone());
        a.set(CKA_EC_POINT, der_octet_string(&k.raw()?));
    } else {
        bail!(CKR_KEY_TYPE_INCONSISTENT, "a secret key has no public part");
    }
    Ok(a)
}

/// Generates a key pair; returns only the generated attributes, (public, private).
pub fn generate_key_pair(
    m: &Mechanism,
    pub_tmpl: &Attributes,
    priv_tmpl: &Attributes,
) -> Result<(Attributes, Attributes)> {
    let key = match m {
        Mechanism::RsaPkcsKeyPairGen => {
            check_key_type(pub_tmpl, &[CKK_RSA])?;
            check_key_type(priv_tmpl, &[CKK_RSA])?;
            let bits = pub_tmpl.get_ulong(CKA_MODULUS_BITS)?.ok_or_else(|| {
                Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_MODULUS_BITS is missing")
            })?;
            if !(RSA_MIN_BITS as CK_ULONG..=RSA_MAX_BITS as CK_ULONG).contains(&bits) {
                bail!(CKR_KEY_SIZE_RANGE, "RSA modulus of {bits} bits");
            }
            let e = match pub_tmpl.get(CKA_PUBLIC_EXPONENT) {
                Some(v) if !v.is_empty() => {
                    let e = BigNum::from_slice(v)?;
                    if !e.is_bit_set(0) || e.num_bits() < 2 || e.num_bits() > 64 {
                        bail!(
                            CKR_ATTRIBUTE_VALUE_INVALID,
                            "CKA_PUBLIC_EXPONENT must be odd, >= 3 and < 2^64"
                        );
                    }
                    e
                }
                _ => BigNum::from_u32(65537)?,
            };
            let rsa = Rsa::generate_with_e(bits as u32, &e)?;
            KeyMaterial::RsaPrivate(RsaPrivateKey::from_rsa(rsa)?)
        }
        Mechanism::EcKeyPairGen => {
            check_key_type(pub_tmpl, &[CKK_EC])?;
            check_key_type(priv_tmpl, &[CKK_EC])?;
            let params = pub_tmpl
                .get(CKA_EC_PARAMS)
                .or_else(|| priv_tmpl.get(CKA_EC_PARAMS))
                .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is missing"))?;
            let curve = ec_params(params).map_err(|e| {
                if e.rv == CKR_ATTRIBUTE_VALUE_INVALID {
                    Error::new(CKR_DOMAIN_PARAMS_INVALID, e.msg)
                } else {
                    e
                }
            })?;
            let key = EcKey::generate(&*curve.group()?)?;
            KeyMaterial::EcPrivate(EcPrivateKey::from_key(curve, key)?)
        }
        Mechanism::EcEdwardsKeyPairGen => {
            check_key_type(pub_tmpl, &[CKK_EC_EDWARDS])?;
            check_key_type(priv_tmpl, &[CKK_EC_EDWARDS])?;
            let params = pub_tmpl
                .get(CKA_EC_PARAMS)
                .or_else(|| priv_tmpl.get(CKA_EC_PARAMS))
                .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is missing"))?;
            if !is_ed25519_params(params) {
                bail!(CKR_CURVE_NOT_SUPPORTED, "only Ed25519 is supported");
            }
            let pkey = PKey::generate_ed25519()?;
            KeyMaterial::EdPrivate(crate::key::EdPrivateKey::from_pkey(pkey, params.to_vec())?)
        }
        _ => bail!(
            CKR_MECHANISM_INVALID,
            "{:#x} does not generate key pairs",
            m.mech_type()
        ),
    };
    Ok((public_attributes(&key)?, private_attributes(&key)?))
}

/// Generates a secret key; returns `CKA_KEY_TYPE`, `CKA_VALUE`, `CKA_VALUE_LEN`.
pub fn generate_key(m: &Mechanism, tmpl: &Attributes) -> Result<Attributes> {
    let (kt, len) = match m {
        Mechanism::AesKeyGen => {
            check_key_type(tmpl, &[CKK_AES])?;
            let len = tmpl
                .get_ulong(CKA_VALUE_LEN)?
                .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_VALUE_LEN is missing"))?;
            if !matches!(len, 16 | 24 | 32) {
                bail!(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    "AES CKA_VALUE_LEN must be 16, 24 or 32, got {len}"
                );
            }
            (CKK_AES, len as usize)
        }
        Mechanism::GenericSecretKeyGen => {
            let kt = check_key_type(
                tmpl,
                &[
                    CKK_GENERIC_SECRET,
                    CKK_SHA_1_HMAC,
                    CKK_SHA224_HMAC,
                    CKK_SHA256_HMAC,
                    CKK_SHA384_HMAC,
                    CKK_SHA512_HMAC,
                ],
            )?
            .unwrap_or(CKK_GENERIC_SECRET);
            let len = tmpl
                .get_ulong(CKA_VALUE_LEN)?
                .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_VALUE_LEN is missing"))?;
            if len == 0 {
                bail!(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_VALUE_LEN must not be 0");
            }
            if len > GENERIC_MAX_LEN as CK_ULONG {
                bail!(CKR_KEY_SIZE_RANGE, "generic secret of {len} bytes");
            }
            (kt, len as usize)
        }
        _ => bail!(
            CKR_MECHANISM_INVALID,
            "{:#x} does not generate secret keys",
            m.mech_type()
        ),
    };
    let mut value = Zeroizing::new(vec![0u8; len]);
    random(&mut value)?;
    let mut a = Attributes::new();
    a.set_ulong(CKA_KEY_TYPE, kt);
    a.set(CKA_VALUE, value.to_vec());
    a.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
    Ok(a)
}

/// Key-type and value attributes (as [`generate_key_pair`] returns for the private key)
/// of a PKCS#8 `PrivateKeyInfo`, for unwrapping private keys.
pub fn private_key_attributes_from_pkcs8(der: &[u8]) -> Result<Attributes> {
    let pkey = PKey::private_key_from_pkcs8(der)
        .map_err(|_| Error::new(CKR_WRAPPED_KEY_INVALID, "not a PKCS#8 private key"))?;
    let key = match pkey.id() {
        Id::RSA => KeyMaterial::RsaPrivate(RsaPrivateKey::from_rsa(pkey.rsa()?)?),
        Id::EC => {
            let ec = pkey.ec_key()?;
            let curve = ec
                .group()
                .curve_name()
                .and_then(Curve::from_nid)
                .ok_or_else(|| Error::new(CKR_CURVE_NOT_SUPPORTED, "EC curve not supported"))?;
            KeyMaterial::EcPrivate(EcPrivateKey::from_key(curve, ec)?)
        }
        Id::ED25519 => KeyMaterial::EdPrivate(crate::key::EdPrivateKey::from_pkey(
            pkey,
            ED25519_OID.to_vec(),
        )?),
        _ => bail!(
            CKR_WRAPPED_KEY_INVALID,
            "PKCS#8 key algorithm not supported"
        ),
    };
    private_attributes(&key)
}
