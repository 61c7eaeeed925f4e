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

/// Sets each byte's low bit so the byte has odd parity, as FIPS 46-3 wants of DES keys.
pub(crate) fn set_des_parity(key: &mut [u8]) {
    for b in key.iter_mut() {
        let high = (*b >> 1).count_ones();
        *b = (*b & 0xfe) | u8::from(high % 2 == 0);
    }
}

/// The DES weak and semi-weak keys (with parity), FIPS 74 / SP 800-67 3.3.2: encrypting
/// twice with a weak key, or once with each half of a semi-weak pair, is the identity.
const DES_WEAK_KEYS: [u64; 16] = [
    0x0101_0101_0101_0101,
    0xfefe_fefe_fefe_fefe,
    0xe0e0_e0e0_f1f1_f1f1,
    0x1f1f_1f1f_0e0e_0e0e,
    0x011f_011f_010e_010e,
    0x1f01_1f01_0e01_0e01,
    0x01e0_01e0_01f1_01f1,
    0xe001_e001_f101_f101,
    0x01fe_01fe_01fe_01fe,
    0xfe01_fe01_fe01_fe01,
    0x1fe0_1fe0_0ef1_0ef1,
    0xe01f_e01f_f10e_f10e,
    0x1ffe_1ffe_0efe_0efe,
    0xfe1f_fe1f_fe0e_fe0e,
    0xe0fe_e0fe_f1fe_f1fe,
    0xfee0_fee0_fef1_fef1,
];

/// Whether a parity-adjusted DES, DES2 or DES3 key value is fit to hand out: no component
/// is weak or semi-weak, and no two adjacent components are equal (K1 = K2 or K2 = K3
/// collapses triple DES to single DES).
pub(crate) fn des_key_acceptable(key: &[u8]) -> bool {
    let parts: Vec<&[u8]> = key.chunks(8).collect();
    let weak = parts.iter().any(|p| {
        <[u8; 8]>::try_from(*p)
            .map(|b| DES_WEAK_KEYS.contains(&u64::from_be_bytes(b)))
            .unwrap_or(true)
    });
    let degenerate = parts.windows(2).any(|w| w[0] == w[1]);
    !weak && !degenerate
}

/// A random DES key of `len` bytes (8, 16 or 24) with odd parity on every byte, drawn
/// again until [`des_key_acceptable`].
fn generate_des(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut value = Zeroizing::new(vec![0u8; len]);
    // A rejection has probability about 2^-52 per draw; the bound only guards a broken RNG.
    for _ in 0..64 {
        random(&mut value)?;
        set_des_parity(&mut value);
        if des_key_acceptable(&value) {
            return Ok(value);
        }
    }
    Err(Error::general("the RNG keeps producing weak DES keys"))
}

/// The template's `CKA_VALUE_LEN` for a variable-length secret: required, 1..=512 bytes.
fn secret_len(tmpl: &Attributes) -> Result<usize> {
    let len = tmpl
        .get_ulong(CKA_VALUE_LEN)?
        .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_VALUE_LEN is missing"))?;
    if len == 0 {
        bail!(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_VALUE_LEN must not be 0");
    }
    if len > GENERIC_MAX_LEN as CK_ULONG {
        bail!(CKR_KEY_SIZE_RANGE, "secret of {len} bytes");
    }
    Ok(len as usize)
}

/// Generates a secret key; returns `CKA_KEY_TYPE`, `CKA_VALUE`, `CKA_VALUE_LEN`.
pub fn generate_key(m: &Mechanism, tmpl: &Attributes) -> Result<Attributes> {
    let des = match m {
        Mechanism::DesKeyGen => Some((CKK_DES, 8)),
        Mechanism::Des2KeyGen => Some((CKK_DES2, 16)),
        Mechanism::Des3KeyGen => Some((CKK_DES3, 24)),
        _ => None,
    };
    if let Some((kt, len)) = des {
        check_key_type(tmpl, &[kt])?;
        // DES keys have a fixed length and no CKA_VALUE_LEN to ask for; a template that
        // names one anyway must name the right one.
        if let Some(l) = tmpl.get_ulong(CKA_VALUE_LEN)? {
            if l != len as CK_ULONG {
                bail!(
                    CKR_TEMPLATE_INCONSISTENT,
                    "CKA_VALUE_LEN {l} for a {len}-byte DES key"
                );
            }
        }
        let value = generate_des(len)?;
        let mut a = Attributes::new();
        a.set_ulong(CKA_KEY_TYPE, kt);
        a.set(CKA_VALUE, value.to_vec());
        a.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
        return Ok(a);
    }
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
            (kt, secret_len(tmpl)?)
        }
        Mechanism::Sha1KeyGen
        | Mechanism::Sha224KeyGen
        | Mechanism::Sha256KeyGen
        | Mechanism::Sha384KeyGen
        | Mechanism::Sha512KeyGen => {
            let kt = match m {
                Mechanism::Sha1KeyGen => CKK_SHA_1_HMAC,
                Mechanism::Sha224KeyGen => CKK_SHA224_HMAC,
                Mechanism::Sha256KeyGen => CKK_SHA256_HMAC,
                Mechanism::Sha384KeyGen => CKK_SHA384_HMAC,
                _ => CKK_SHA512_HMAC,
            };
            check_key_type(tmpl, &[kt])?;
            (kt, secret_len(tmpl)?)
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
