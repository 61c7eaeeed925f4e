//! Session management functions.

use super::*;
use crate::bail;

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _app: CK_VOID_PTR,
    _notify: CK_NOTIFY,
    ph: CK_SESSION_HANDLE_PTR,
) -> CK_RV {
    guard("C_OpenSession", || {
        let m = module()?;
        if ph.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL session handle pointer");
        }
        let h = m.open_session(slot, flags)?;
        // SAFETY: checked non-null.
        unsafe { put(ph, h)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(h: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_CloseSession", || {
        module()?.close_session(h)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard("C_CloseAllSessions", || {
        module()?.close_all(slot)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    h: CK_SESSION_HANDLE,
    info: CK_SESSION_INFO_PTR,
) -> CK_RV {
    guard("C_GetSessionInfo", || {
        let (slot, state, flags) = module()?.session_state(h)?;
        let i = CK_SESSION_INFO {
            slotID: slot,
            state,
            flags,
            ulDeviceError: 0,
        };
        // SAFETY: checked by `put`.
        unsafe { put(info, i)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    h: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: CK_UTF8CHAR_PTR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard("C_Login", || {
        let m = module()?;
        // SAFETY: as passed.
        let pin = unsafe { bytes(pin, pin_len)? };
        m.login(h, user, pin)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(h: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_Logout", || {
        let m = module()?;
        m.session(h)?.1.logout()?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetOperationState(
    h: CK_SESSION_HANDLE,
    _state: CK_BYTE_PTR,
    _len: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetOperationState", || {
        module()?.session(h)?;
        bail!(
            CKR_FUNCTION_NOT_SUPPORTED,
            "operation state cannot be exported: it may hold key material"
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetOperationState(
    h: CK_SESSION_HANDLE,
    _state: CK_BYTE_PTR,
    _len: CK_ULONG,
    _enc: CK_OBJECT_HANDLE,
    _auth: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard("C_SetOperationState", || {
        module()?.session(h)?;
        bail!(
            CKR_FUNCTION_NOT_SUPPORTED,
            "operation state cannot be imported"
        )
    })
}
