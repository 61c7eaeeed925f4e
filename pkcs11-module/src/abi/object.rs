//! Object management functions.

use super::*;
use crate::bail;
use crate::object::{reveal, Reveal};

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    h: CK_SESSION_HANDLE,
    tmpl: CK_ATTRIBUTE_PTR,
    n: CK_ULONG,
    ph: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_CreateObject", || {
        let m = module()?;
        if ph.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL object handle pointer");
        }
        // SAFETY: template as passed.
        let t = unsafe { template(tmpl, n)? };
        let o = m.create_object(h, &t)?;
        // SAFETY: checked non-null.
        unsafe { put(ph, o)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    h: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    tmpl: CK_ATTRIBUTE_PTR,
    n: CK_ULONG,
    ph: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard("C_CopyObject", || {
        let m = module()?;
        let (s, t) = m.session(h)?;
        if ph.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL object handle pointer");
        }
        // SAFETY: template as passed.
        let tmpl = unsafe { template(tmpl, n)? };
        let o = t.copy(obj, &tmpl, s.handle, s.rw)?;
        // SAFETY: checked non-null.
        unsafe { put(ph, o)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> CK_RV {
    guard("C_DestroyObject", || {
        let m = module()?;
        let (s, t) = m.session(h)?;
        t.destroy(obj, s.rw)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    h: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    size: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetObjectSize", || {
        let m = module()?;
        let o = m.session(h)?.1.object(obj)?;
        let n: usize = o.attrs.iter().map(|(_, v)| v.len() + 16).sum();
        // SAFETY: checked by `put`.
        unsafe { put(size, n as CK_ULONG)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    h: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    tmpl: CK_ATTRIBUTE_PTR,
    n: CK_ULONG,
) -> CK_RV {
    guard("C_GetAttributeValue", || {
        let m = module()?;
        let o = m.session(h)?.1.object(obj)?;
        if tmpl.is_null() && n > 0 {
            bail!(CKR_ARGUMENTS_BAD, "NULL template");
        }
        if n == 0 {
            return Ok(CKR_OK);
        }
        // SAFETY: the caller passes `n` writable CK_ATTRIBUTEs.
        let attrs = unsafe { std::slice::from_raw_parts_mut(tmpl, n as usize) };
        let mut rv = CKR_OK;
        // Every attribute is answered; the call's result reports the last problem seen.
        for a in attrs.iter_mut() {
            match reveal(&o, a.type_) {
                Reveal::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    rv = CKR_ATTRIBUTE_SENSITIVE;
                }
                Reveal::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    rv = CKR_ATTRIBUTE_TYPE_INVALID;
                }
                Reveal::Value(v) => {
                    if a.pValue.is_null() {
                        a.ulValueLen = v.len() as CK_ULONG;
                    } else if (a.ulValueLen as usize) < v.len() {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        rv = CKR_BUFFER_TOO_SMALL;
                    } else {
                        // SAFETY: the caller promises ulValueLen writable bytes at pValue.
                        unsafe {
                            std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len())
                        };
                        a.ulValueLen = v.len() as CK_ULONG;
                    }
                }
            }
        }
        Ok(rv)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    h: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    tmpl: CK_ATTRIBUTE_PTR,
    n: CK_ULONG,
) -> CK_RV {
    guard("C_SetAttributeValue", || {
        let m = module()?;
        let (s, t) = m.session(h)?;
        // SAFETY: template as passed.
        let changes = unsafe { template(tmpl, n)? };
        t.update(obj, &changes, s.rw)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    h: CK_SESSION_HANDLE,
    tmpl: CK_ATTRIBUTE_PTR,
    n: CK_ULONG,
) -> CK_RV {
    guard("C_FindObjectsInit", || {
        let m = module()?;
        // SAFETY: template as passed.
        let t = unsafe { template(tmpl, n)? };
        m.find_init(h, &t)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    h: CK_SESSION_HANDLE,
    ph: CK_OBJECT_HANDLE_PTR,
    max: CK_ULONG,
    count: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_FindObjects", || {
        let m = module()?;
        if count.is_null() || (ph.is_null() && max > 0) {
            bail!(CKR_ARGUMENTS_BAD, "NULL output pointer");
        }
        let out: &mut [CK_OBJECT_HANDLE] = if max == 0 {
            &mut []
        } else {
            // SAFETY: the caller promises `max` writable handles.
            unsafe { std::slice::from_raw_parts_mut(ph, max as usize) }
        };
        let n = m.find_next(h, out)?;
        // SAFETY: checked non-null.
        unsafe { put(count, n as CK_ULONG)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    guard("C_FindObjectsFinal", || {
        module()?.find_final(h)?;
        Ok(CKR_OK)
    })
}
