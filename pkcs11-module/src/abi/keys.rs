//! Key management and random number functions.

use super::*;
use crate::bail;

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    h: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_PTR,
    tmpl: CK_ATTRIBUTE_PTR,
    n: CK_ULONG,
    ph: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_GenerateKey", || {
        let m = module()?;
        m.session(h)?;
        if ph.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL key handle pointer");
        }
        // SAFETY: mechanism and template as passed.
        let (mech, t) = unsafe { (mechanism(mech)?, template(tmpl, n)?) };
        let k = m.generate_key(h, &mech, &t)?;
        // SAFETY: checked non-null.
        unsafe { put(ph, k)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_PTR,
    pub_t: CK_ATTRIBUTE_PTR,
    pub_n: CK_ULONG,
    priv_t: CK_ATTRIBUTE_PTR,
    priv_n: CK_ULONG,
    ph_pub: CK_OBJECT_HANDLE_PTR,
    ph_priv: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_GenerateKeyPair", || {
        let m = module()?;
        m.session(h)?;
        if ph_pub.is_null() || ph_priv.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL key handle pointer");
        }
        // SAFETY: mechanism and templates as passed.
        let (mech, pt, st) = unsafe {
            (
                mechanism(mech)?,
                template(pub_t, pub_n)?,
                template(priv_t, priv_n)?,
            )
        };
        let (hp, hs) = m.generate_key_pair(h, &mech, &pt, &st)?;
        // SAFETY: checked non-null.
        unsafe {
            put(ph_pub, hp)?;
            put(ph_priv, hs)?;
        }
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    h: CK_SESSION_HANDLE,
    seed: CK_BYTE_PTR,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_SeedRandom", || {
        module()?.session(h)?;
        // SAFETY: buffer as passed.
        let seed = unsafe { bytes(seed, len)? };
        // Mixed into OpenSSL's generator with no entropy credited: a caller can add
        // unpredictability, never take it away.
        for chunk in seed.chunks(i32::MAX as usize) {
            // SAFETY: `chunk` is a live buffer of exactly `chunk.len()` bytes.
            unsafe {
                openssl_sys::RAND_add(chunk.as_ptr().cast(), chunk.len() as std::ffi::c_int, 0.0)
            };
        }
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    h: CK_SESSION_HANDLE,
    p: CK_BYTE_PTR,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_GenerateRandom", || {
        module()?.session(h)?;
        if len == 0 {
            return Ok(CKR_OK);
        }
        if p.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL buffer");
        }
        // SAFETY: the caller promises `len` writable bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(p, len as usize) };
        hsmux_mech::random(buf)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    h: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_PTR,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    outp: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_WrapKey", || {
        let m = module()?;
        m.session(h)?;
        // SAFETY: mechanism and output buffer as passed.
        let (mech, o) = unsafe { (mechanism(mech)?, out(outp, out_len)?) };
        let wrapped = m.wrap_key(h, &mech, wrapping, key)?;
        let n = wrapped.len();
        let p = match o {
            Out::Query => Produced::Len(n),
            Out::Buf(b) if b.len() < n => Produced::TooSmall(n),
            Out::Buf(b) => {
                b[..n].copy_from_slice(&wrapped);
                Produced::Written(n)
            }
        };
        // SAFETY: `out` checked the length pointer.
        unsafe { produced(out_len, p) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    h: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_PTR,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: CK_BYTE_PTR,
    wrapped_len: CK_ULONG,
    tmpl: CK_ATTRIBUTE_PTR,
    n: CK_ULONG,
    ph: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_UnwrapKey", || {
        let m = module()?;
        m.session(h)?;
        if ph.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL key handle pointer");
        }
        // SAFETY: mechanism, buffer and template as passed.
        let (mech, wrapped, t) = unsafe {
            (
                mechanism(mech)?,
                bytes(wrapped, wrapped_len)?,
                template(tmpl, n)?,
            )
        };
        let k = m.unwrap_key(h, &mech, unwrapping, wrapped, &t)?;
        // SAFETY: checked non-null.
        unsafe { put(ph, k)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    h: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_PTR,
    base: CK_OBJECT_HANDLE,
    tmpl: CK_ATTRIBUTE_PTR,
    n: CK_ULONG,
    ph: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_DeriveKey", || {
        let m = module()?;
        m.session(h)?;
        if ph.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL key handle pointer");
        }
        // SAFETY: mechanism and template as passed.
        let (mech, t) = unsafe { (mechanism(mech)?, template(tmpl, n)?) };
        let k = m.derive_key(h, &mech, base, &t)?;
        // SAFETY: checked non-null.
        unsafe { put(ph, k)? };
        Ok(CKR_OK)
    })
}
