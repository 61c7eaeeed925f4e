//! Encryption, decryption, digest, signature and verification functions.

use super::*;
use crate::module::OpKind;

macro_rules! cipher_fns {
    ($init:ident, $one:ident, $upd:ident, $fin:ident, $enc:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn $init(
            h: CK_SESSION_HANDLE,
            mech: CK_MECHANISM_PTR,
            key: CK_OBJECT_HANDLE,
        ) -> CK_RV {
            guard(stringify!($init), || {
                let m = module()?;
                m.session(h)?;
                // SAFETY: mechanism as passed.
                let mech = unsafe { mechanism(mech)? };
                m.cipher_init(h, &mech, key, $enc)?;
                Ok(CKR_OK)
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $one(
            h: CK_SESSION_HANDLE,
            data: CK_BYTE_PTR,
            len: CK_ULONG,
            outp: CK_BYTE_PTR,
            out_len: CK_ULONG_PTR,
        ) -> CK_RV {
            guard(stringify!($one), || {
                let m = module()?;
                let kind = if $enc {
                    OpKind::Encrypt
                } else {
                    OpKind::Decrypt
                };
                // SAFETY: buffers as passed; `input` copies when they overlap.
                let args = unsafe {
                    input(data, len, outp, out_len).and_then(|d| Ok((d, out(outp, out_len)?)))
                };
                let (data, o) = args_or_end(&m, h, kind, args)?;
                let p = m.cipher(h, $enc, &data, o)?;
                // SAFETY: `out` checked the length pointer.
                unsafe { produced(out_len, p) }
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $upd(
            h: CK_SESSION_HANDLE,
            data: CK_BYTE_PTR,
            len: CK_ULONG,
            outp: CK_BYTE_PTR,
            out_len: CK_ULONG_PTR,
        ) -> CK_RV {
            guard(stringify!($upd), || {
                let m = module()?;
                let kind = if $enc {
                    OpKind::Encrypt
                } else {
                    OpKind::Decrypt
                };
                // SAFETY: buffers as passed; `input` copies when they overlap.
                let args = unsafe {
                    input(data, len, outp, out_len).and_then(|d| Ok((d, out(outp, out_len)?)))
                };
                let (data, o) = args_or_end(&m, h, kind, args)?;
                let p = m.cipher_update(h, $enc, &data, o)?;
                // SAFETY: `out` checked the length pointer.
                unsafe { produced(out_len, p) }
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $fin(
            h: CK_SESSION_HANDLE,
            outp: CK_BYTE_PTR,
            out_len: CK_ULONG_PTR,
        ) -> CK_RV {
            guard(stringify!($fin), || {
                let m = module()?;
                let kind = if $enc {
                    OpKind::Encrypt
                } else {
                    OpKind::Decrypt
                };
                // SAFETY: buffer as passed.
                let o = args_or_end(&m, h, kind, unsafe { out(outp, out_len) })?;
                let p = m.cipher_final(h, $enc, o)?;
                // SAFETY: `out` checked the length pointer.
                unsafe { produced(out_len, p) }
            })
        }
    };
}

cipher_fns!(
    C_EncryptInit,
    C_Encrypt,
    C_EncryptUpdate,
    C_EncryptFinal,
    true
);
cipher_fns!(
    C_DecryptInit,
    C_Decrypt,
    C_DecryptUpdate,
    C_DecryptFinal,
    false
);

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(h: CK_SESSION_HANDLE, mech: CK_MECHANISM_PTR) -> CK_RV {
    guard("C_DigestInit", || {
        let m = module()?;
        m.session(h)?;
        // SAFETY: mechanism as passed.
        let mech = unsafe { mechanism(mech)? };
        m.digest_init(h, &mech)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    outp: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_Digest", || {
        let m = module()?;
        // SAFETY: buffers as passed; `input` copies when they overlap.
        let args =
            unsafe { input(data, len, outp, out_len).and_then(|d| Ok((d, out(outp, out_len)?))) };
        let (data, o) = args_or_end(&m, h, OpKind::Digest, args)?;
        let p = m.digest(h, &data, o)?;
        // SAFETY: `out` checked the length pointer.
        unsafe { produced(out_len, p) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_DigestUpdate", || {
        let m = module()?;
        // SAFETY: buffer as passed.
        let data = args_or_end(&m, h, OpKind::Digest, unsafe { bytes(data, len) })?;
        m.digest_update(h, data)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    guard("C_DigestKey", || {
        module()?.digest_key(h, key)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    h: CK_SESSION_HANDLE,
    outp: CK_BYTE_PTR,
    out_len: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_DigestFinal", || {
        let m = module()?;
        // SAFETY: buffer as passed.
        let o = args_or_end(&m, h, OpKind::Digest, unsafe { out(outp, out_len) })?;
        let p = m.digest_final(h, o)?;
        // SAFETY: `out` checked the length pointer.
        unsafe { produced(out_len, p) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    h: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_PTR,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_SignInit", || {
        let m = module()?;
        m.session(h)?;
        // SAFETY: mechanism as passed.
        let mech = unsafe { mechanism(mech)? };
        m.sign_init(h, &mech, key)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    sig: CK_BYTE_PTR,
    sig_len: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_Sign", || {
        let m = module()?;
        // SAFETY: buffers as passed; `input` copies when they overlap.
        let args =
            unsafe { input(data, len, sig, sig_len).and_then(|d| Ok((d, out(sig, sig_len)?))) };
        let (data, o) = args_or_end(&m, h, OpKind::Sign, args)?;
        let p = m.sign(h, &data, o)?;
        // SAFETY: `out` checked the length pointer.
        unsafe { produced(sig_len, p) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_SignUpdate", || {
        let m = module()?;
        // SAFETY: buffer as passed.
        let data = args_or_end(&m, h, OpKind::Sign, unsafe { bytes(data, len) })?;
        m.sign_update(h, data)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    h: CK_SESSION_HANDLE,
    sig: CK_BYTE_PTR,
    sig_len: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_SignFinal", || {
        let m = module()?;
        // SAFETY: buffer as passed.
        let o = args_or_end(&m, h, OpKind::Sign, unsafe { out(sig, sig_len) })?;
        let p = m.sign_final(h, o)?;
        // SAFETY: `out` checked the length pointer.
        unsafe { produced(sig_len, p) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    h: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_PTR,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_VerifyInit", || {
        let m = module()?;
        m.session(h)?;
        // SAFETY: mechanism as passed.
        let mech = unsafe { mechanism(mech)? };
        m.verify_init(h, &mech, key)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
    sig: CK_BYTE_PTR,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard("C_Verify", || {
        let m = module()?;
        // SAFETY: buffers as passed (both read-only).
        let args = unsafe { bytes(data, len).and_then(|d| Ok((d, bytes(sig, sig_len)?))) };
        let (data, sig) = args_or_end(&m, h, OpKind::Verify, args)?;
        m.verify(h, data, sig)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    h: CK_SESSION_HANDLE,
    data: CK_BYTE_PTR,
    len: CK_ULONG,
) -> CK_RV {
    guard("C_VerifyUpdate", || {
        let m = module()?;
        // SAFETY: buffer as passed.
        let data = args_or_end(&m, h, OpKind::Verify, unsafe { bytes(data, len) })?;
        m.verify_update(h, data)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    h: CK_SESSION_HANDLE,
    sig: CK_BYTE_PTR,
    sig_len: CK_ULONG,
) -> CK_RV {
    guard("C_VerifyFinal", || {
        let m = module()?;
        // SAFETY: buffer as passed.
        let sig = args_or_end(&m, h, OpKind::Verify, unsafe { bytes(sig, sig_len) })?;
        m.verify_final(h, sig)?;
        Ok(CKR_OK)
    })
}
