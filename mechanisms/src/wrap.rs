//! `C_WrapKey` / `C_UnwrapKey` over any wrapping cipher (AES key wrap, AES-CBC,
//! DES/3DES ECB and CBC, RSA: the `cipher` and `keywrap` modules) and ECDH derivation.

use crate::key::{EcPublicKey, KeyMaterial};
use crate::mech::{EcdhParams, Mechanism};
use crate::{bail, Error, Result};
use cryptoki_sys::*;
use openssl::derive::Deriver;
use openssl::pkey::PKey;
use std::sync::Arc;
use zeroize::Zeroizing;

fn is_wrap_mech(m: &Mechanism) -> bool {
    matches!(
        m,
        Mechanism::AesKeyWrap(_)
            | Mechanism::AesKeyWrapKwp(_)
            | Mechanism::AesCbcPad(_)
            | Mechanism::AesCbc(_)
            | Mechanism::DesEcb
            | Mechanism::DesCbc(_)
            | Mechanism::DesCbcPad(_)
            | Mechanism::Des3Ecb
            | Mechanism::Des3Cbc(_)
            | Mechanism::Des3CbcPad(_)
            | Mechanism::RsaPkcsOaep(_)
            | Mechanism::RsaPkcs
    )
}

/// Wraps `key_bytes` (a secret key's `CKA_VALUE`, or a private key's PKCS#8 DER) under
/// `wrapping_key`. Errors use the `C_WrapKey` return values.
pub fn wrap(m: &Mechanism, wrapping_key: &Arc<KeyMaterial>, key_bytes: &[u8]) -> Result<Vec<u8>> {
    if !is_wrap_mech(m) {
        bail!(
            CKR_MECHANISM_INVALID,
            "{:#x} cannot wrap keys",
            m.mech_type()
        );
    }
    let map = |e: Error| match e.rv {
        CKR_KEY_TYPE_INCONSISTENT => Error::new(CKR_WRAPPING_KEY_TYPE_INCONSISTENT, e.msg),
        CKR_KEY_SIZE_RANGE => Error::new(CKR_WRAPPING_KEY_SIZE_RANGE, e.msg),
        // The data here is the key being wrapped: its size does not fit the mechanism.
        CKR_DATA_LEN_RANGE => Error::new(CKR_KEY_SIZE_RANGE, e.msg),
        _ => e,
    };
    let mut op = crate::cipher::encrypt_init(m, wrapping_key).map_err(map)?;
    op.oneshot(key_bytes).map_err(map)
}

/// Unwraps `wrapped` with `unwrapping_key`, returning the key bytes (secret value or
/// PKCS#8 DER, as the token layer wrapped them). Errors use the `C_UnwrapKey` return values.
pub fn unwrap(
    m: &Mechanism,
    unwrapping_key: &Arc<KeyMaterial>,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if !is_wrap_mech(m) {
        bail!(
            CKR_MECHANISM_INVALID,
            "{:#x} cannot unwrap keys",
            m.mech_type()
        );
    }
    let map = |e: Error| match e.rv {
        CKR_KEY_TYPE_INCONSISTENT => Error::new(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, e.msg),
        CKR_KEY_SIZE_RANGE => Error::new(CKR_UNWRAPPING_KEY_SIZE_RANGE, e.msg),
        CKR_ENCRYPTED_DATA_INVALID => Error::new(CKR_WRAPPED_KEY_INVALID, e.msg),
        CKR_ENCRYPTED_DATA_LEN_RANGE => Error::new(CKR_WRAPPED_KEY_LEN_RANGE, e.msg),
        _ => e,
    };
    let mut op = crate::cipher::decrypt_init(m, unwrapping_key).map_err(map)?;
    Ok(Zeroizing::new(op.oneshot(wrapped).map_err(map)?))
}

fn ecdh_params(m: &Mechanism) -> Result<&EcdhParams> {
    match m {
        Mechanism::Ecdh1Derive(p) | Mechanism::Ecdh1CofactorDerive(p) => Ok(p),
        _ => bail!(
            CKR_MECHANISM_INVALID,
            "{:#x} is not an ECDH mechanism",
            m.mech_type()
        ),
    }
}

/// Z, the raw shared secret (x-coordinate padded to the field length).
fn ecdh_z(p: &EcdhParams, base: &KeyMaterial) -> Result<Zeroizing<Vec<u8>>> {
    let KeyMaterial::EcPrivate(k) = base else {
        bail!(CKR_KEY_TYPE_INCONSISTENT, "ECDH needs an EC private key");
    };
    let curve = k.public.curve;
    let pt = EcPublicKey::parse_point(curve, &p.public_data)
        .map_err(|_| Error::new(CKR_MECHANISM_PARAM_INVALID, "peer point not on the curve"))?;
    let peer = EcPublicKey::from_point(curve, &pt)
        .map_err(|_| Error::new(CKR_MECHANISM_PARAM_INVALID, "peer point invalid"))?;
    let ours = PKey::from_ec_key(k.key.clone())?;
    let theirs = PKey::from_ec_key(peer.key)?;
    let mut d = Deriver::new(&ours)?;
    d.set_peer(&theirs)?;
    let mut z = Zeroizing::new(vec![0u8; curve.field_len()]);
    let n = d.derive(&mut z)?;
    z.truncate(n);
    Ok(z)
}

/// ECDH (`CKM_ECDH1_DERIVE`, `CKM_ECDH1_COFACTOR_DERIVE`; the two agree on the prime
/// curves we support, whose cofactor is 1) with `CKD_NULL`: returns the shared secret's
/// x-coordinate, padded to the field length. Use [`derive_ecdh_key`] for the KDFs.
pub fn derive_ecdh(m: &Mechanism, base: &Arc<KeyMaterial>) -> Result<Zeroizing<Vec<u8>>> {
    let p = ecdh_params(m)?;
    if p.kdf != CKD_NULL {
        bail!(
            CKR_MECHANISM_PARAM_INVALID,
            "kdf {:#x} needs the key length: use derive_ecdh_key",
            p.kdf
        );
    }
    ecdh_z(p, base)
}

/// ECDH producing `key_len` bytes of key value: with `CKD_NULL` the leading `key_len`
/// bytes of the shared secret (which must be that long), with `CKD_SHA*_KDF` the ANSI
/// X9.63 KDF over the secret and `pSharedData`.
pub fn derive_ecdh_key(
    m: &Mechanism,
    base: &Arc<KeyMaterial>,
    key_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let p = ecdh_params(m)?;
    let z = ecdh_z(p, base)?;
    let hash = match p.kdf {
        CKD_NULL => {
            if key_len == 0 || key_len > z.len() {
                // The length comes from the template's CKA_VALUE_LEN.
                bail!(
                    CKR_TEMPLATE_INCONSISTENT,
                    "a {key_len}-byte key cannot come from a {}-byte secret",
                    z.len()
                );
            }
            return Ok(Zeroizing::new(z[..key_len].to_vec()));
        }
        CKD_SHA1_KDF => crate::mech::HashAlg::Sha1,
        CKD_SHA224_KDF => crate::mech::HashAlg::Sha224,
        CKD_SHA256_KDF => crate::mech::HashAlg::Sha256,
        CKD_SHA384_KDF => crate::mech::HashAlg::Sha384,
        CKD_SHA512_KDF => crate::mech::HashAlg::Sha512,
        k => bail!(CKR_MECHANISM_PARAM_INVALID, "kdf {k:#x} unsupported"),
    };
    if key_len == 0 || key_len > 1 << 16 {
        bail!(CKR_KEY_SIZE_RANGE, "derived key of {key_len} bytes");
    }
    let mut out = Zeroizing::new(Vec::with_capacity(key_len + hash.digest_len()));
    let mut counter: u32 = 1;
    while out.len() < key_len {
        let mut h = crate::hash::Hash::new(hash)?;
        h.update(&z)?;
        h.update(&counter.to_be_bytes())?;
        h.update(&p.shared_data)?;
        let block = Zeroizing::new(h.finish()?);
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(key_len);
    Ok(out)
}
