//! Functions hsmux does not offer (yet): each answers `CKR_FUNCTION_NOT_SUPPORTED`
//! once the module is initialised, and names itself in the log.

use super::*;
use crate::bail;

macro_rules! not_supported {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            $(let _ = $arg;)*
            guard(stringify!($name), || {
                module()?;
                bail!(CKR_FUNCTION_NOT_SUPPORTED, "{} is not supported", stringify!($name))
            })
        }
    )*};
}

not_supported! {
    C_SignRecoverInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    C_SignRecover(h: CK_SESSION_HANDLE, d: CK_BYTE_PTR, l: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG_PTR);
    C_VerifyRecoverInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    C_VerifyRecover(h: CK_SESSION_HANDLE, s: CK_BYTE_PTR, sl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG_PTR);
    C_DigestEncryptUpdate(h: CK_SESSION_HANDLE, p: CK_BYTE_PTR, l: CK_ULONG, e: CK_BYTE_PTR, el: CK_ULONG_PTR);
    C_DecryptDigestUpdate(h: CK_SESSION_HANDLE, e: CK_BYTE_PTR, el: CK_ULONG, p: CK_BYTE_PTR, pl: CK_ULONG_PTR);
    C_SignEncryptUpdate(h: CK_SESSION_HANDLE, p: CK_BYTE_PTR, l: CK_ULONG, e: CK_BYTE_PTR, el: CK_ULONG_PTR);
    C_DecryptVerifyUpdate(h: CK_SESSION_HANDLE, e: CK_BYTE_PTR, el: CK_ULONG, p: CK_BYTE_PTR, pl: CK_ULONG_PTR);
    C_LoginUser(h: CK_SESSION_HANDLE, u: CK_USER_TYPE, p: CK_UTF8CHAR_PTR, pl: CK_ULONG, n: CK_UTF8CHAR_PTR, nl: CK_ULONG);
    C_SessionCancel(h: CK_SESSION_HANDLE, f: CK_FLAGS);
    C_MessageSignInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    C_SignMessage(h: CK_SESSION_HANDLE, p: CK_VOID_PTR, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG_PTR);
    C_SignMessageBegin(h: CK_SESSION_HANDLE, p: CK_VOID_PTR, pl: CK_ULONG);
    C_SignMessageNext(h: CK_SESSION_HANDLE, p: CK_VOID_PTR, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG_PTR);
    C_MessageSignFinal(h: CK_SESSION_HANDLE);
    C_MessageVerifyInit(h: CK_SESSION_HANDLE, m: CK_MECHANISM_PTR, k: CK_OBJECT_HANDLE);
    C_VerifyMessage(h: CK_SESSION_HANDLE, p: CK_VOID_PTR, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG);
    C_VerifyMessageBegin(h: CK_SESSION_HANDLE, p: CK_VOID_PTR, pl: CK_ULONG);
    C_VerifyMessageNext(h: CK_SESSION_HANDLE, p: CK_VOID_PTR, pl: CK_ULONG, d: CK_BYTE_PTR, dl: CK_ULONG, s: CK_BYTE_PTR, sl: CK_ULONG);
    C_MessageVerifyFinal(h: CK_SESSION_HANDLE);
}

/// Legacy parallel-function calls: always `CKR_FUNCTION_NOT_PARALLEL` for a valid session.
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionStatus(h: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_GetFunctionStatus", || {
        module()?.session(h)?;
        Ok(CKR_FUNCTION_NOT_PARALLEL)
    })
}

/// See [`C_GetFunctionStatus`].
#[no_mangle]
pub unsafe extern "C" fn C_CancelFunction(h: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_CancelFunction", || {
        module()?.session(h)?;
        Ok(CKR_FUNCTION_NOT_PARALLEL)
    })
}
