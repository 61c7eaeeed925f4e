//! Message-based encryption and decryption (PKCS#11 3.0), for AES-GCM.

use super::*;
use crate::bail;
use hsmux_mech::MessageParams;

/// The caller's `CK_GCM_MESSAGE_PARAMS`: values plus its IV and tag buffers.
struct GcmMessageArgs<'a> {
    p: MessageParams,
    iv: &'a mut [u8],
    tag: &'a mut [u8],
}

/// # Safety
/// `param` NULL or a `CK_GCM_MESSAGE_PARAMS` of `len` bytes whose buffers are valid.
unsafe fn gcm_args<'a>(param: CK_VOID_PTR, len: CK_ULONG) -> Result<GcmMessageArgs<'a>> {
    if param.is_null() || len as usize != std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>() {
        bail!(
            CKR_MECHANISM_PARAM_INVALID,
            "expected CK_GCM_MESSAGE_PARAMS"
        );
    }
    // SAFETY: non-NULL and of the struct's size, per the check above.
    let g = unsafe { &*(param as *const CK_GCM_MESSAGE_PARAMS) };
    if g.pIv.is_null() || g.ulIvLen == 0 || (g.pTag.is_null() && g.ulTagBits > 0) {
        bail!(
            CKR_MECHANISM_PARAM_INVALID,
            "GCM message parameters without IV or tag buffer"
        );
    }
    let tag_len = (g.ulTagBits as usize).div_ceil(8);
    // SAFETY: the caller promises ulIvLen bytes at pIv and ulTagBits/8 bytes at pTag.
    let (iv, tag) = unsafe {
        (
            std::slice::from_raw_parts_mut(g.pIv, g.ulIvLen as usize),
            if tag_len == 0 {
                &mut [][..]
            } else {
                std::slice::from_raw_parts_mut(g.pTag, tag_len)
            },
        )
    };
    Ok(GcmMessageArgs {
        p: MessageParams {
            iv_fixed_bits: g.ulIvFixedBits as usize,
            generator: g.ivGenerator,
            tag_bits: g.ulTagBits as usize,
        },
        iv,
        tag,
    })
}

macro_rules! message_fns {
    ($init:ident, $one:ident, $begin:ident, $next:ident, $fin:ident, $enc:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn $init(
            h: CK_SESSION_HANDLE,
            mech: CK_MECHANISM_PTR,
            key: CK_OBJECT_HANDLE,
        ) -> CK_RV {
            guard(stringify!($init), || {
                let m = module()?;
                m.session(h)?;
                if mech.is_null() {
                    bail!(CKR_ARGUMENTS_BAD, "NULL mechanism");
                }
                // SAFETY: non-NULL per the check; the per-message parameters come later.
                let t = unsafe { (*mech).mechanism };
                m.message_init(h, t, key, $enc)?;
                Ok(CKR_OK)
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $one(
            h: CK_SESSION_HANDLE,
            param: CK_VOID_PTR,
            param_len: CK_ULONG,
            aad: CK_BYTE_PTR,
            aad_len: CK_ULONG,
            data: CK_BYTE_PTR,
            data_len: CK_ULONG,
            outp: CK_BYTE_PTR,
            out_len: CK_ULONG_PTR,
        ) -> CK_RV {
            guard(stringify!($one), || {
                let m = module()?;
                m.session(h)?;
                // SAFETY: buffers and parameters as passed; `input` copies on overlap.
                let (a, aad, data, o) = unsafe {
                    (
                        gcm_args(param, param_len)?,
                        bytes(aad, aad_len)?,
                        input(data, data_len, outp, out_len)?,
                        out(outp, out_len)?,
                    )
                };
                let p = m.message_one(h, $enc, &a.p, a.iv, a.tag, aad, &data, o)?;
                // SAFETY: `out` checked the length pointer.
                unsafe { produced(out_len, p) }
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $begin(
            h: CK_SESSION_HANDLE,
            param: CK_VOID_PTR,
            param_len: CK_ULONG,
            aad: CK_BYTE_PTR,
            aad_len: CK_ULONG,
        ) -> CK_RV {
            guard(stringify!($begin), || {
                let m = module()?;
                m.session(h)?;
                // SAFETY: buffers and parameters as passed.
                let (a, aad) = unsafe { (gcm_args(param, param_len)?, bytes(aad, aad_len)?) };
                m.message_begin(h, $enc, &a.p, a.iv, aad)?;
                Ok(CKR_OK)
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $next(
            h: CK_SESSION_HANDLE,
            param: CK_VOID_PTR,
            param_len: CK_ULONG,
            data: CK_BYTE_PTR,
            data_len: CK_ULONG,
            outp: CK_BYTE_PTR,
            out_len: CK_ULONG_PTR,
            flags: CK_FLAGS,
        ) -> CK_RV {
            guard(stringify!($next), || {
                let m = module()?;
                m.session(h)?;
                // SAFETY: buffers and parameters as passed; `input` copies on overlap.
                let (a, data, o) = unsafe {
                    (
                        gcm_args(param, param_len)?,
                        input(data, data_len, outp, out_len)?,
                        out(outp, out_len)?,
                    )
                };
                let p = m.message_next(
                    h,
                    $enc,
                    &a.p,
                    a.tag,
                    &data,
                    o,
                    flags & CKF_END_OF_MESSAGE != 0,
                )?;
                // SAFETY: `out` checked the length pointer.
                unsafe { produced(out_len, p) }
            })
        }

        #[no_mangle]
        pub unsafe extern "C" fn $fin(h: CK_SESSION_HANDLE) -> CK_RV {
            guard(stringify!($fin), || {
                module()?.message_final(h, $enc)?;
                Ok(CKR_OK)
            })
        }
    };
}

message_fns!(
    C_MessageEncryptInit,
    C_EncryptMessage,
    C_EncryptMessageBegin,
    C_EncryptMessageNext,
    C_MessageEncryptFinal,
    true
);
message_fns!(
    C_MessageDecryptInit,
    C_DecryptMessage,
    C_DecryptMessageBegin,
    C_DecryptMessageNext,
    C_MessageDecryptFinal,
    false
);
