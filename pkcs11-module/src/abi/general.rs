//! General-purpose, slot and token management functions.

use super::*;
use crate::bail;

const MANUFACTURER: &str = "hsmux";
const VERSION: CK_VERSION = CK_VERSION { major: 0, minor: 1 };

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(args: CK_VOID_PTR) -> CK_RV {
    guard("C_Initialize", || {
        if !args.is_null() {
            // SAFETY: a non-NULL argument is a CK_C_INITIALIZE_ARGS per the spec.
            let a = unsafe { &*(args as *const CK_C_INITIALIZE_ARGS) };
            if !a.pReserved.is_null() {
                bail!(CKR_ARGUMENTS_BAD, "pReserved must be NULL");
            }
            let given = [
                a.CreateMutex.is_some(),
                a.DestroyMutex.is_some(),
                a.LockMutex.is_some(),
                a.UnlockMutex.is_some(),
            ];
            if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
                bail!(
                    CKR_ARGUMENTS_BAD,
                    "mutex callbacks must be given all or none"
                );
            }
            // With or without CKF_OS_LOCKING_OK we use the OS's locks: the module is
            // thread-safe in every mode, which the spec permits when callbacks are
            // absent and which is harmless when they are given.
        }
        if initialised_here() {
            bail!(CKR_CRYPTOKI_ALREADY_INITIALIZED);
        }
        install(Module::new()?)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: CK_VOID_PTR) -> CK_RV {
    guard("C_Finalize", || {
        if !reserved.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "pReserved must be NULL");
        }
        uninstall()?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(info: CK_INFO_PTR) -> CK_RV {
    guard("C_GetInfo", || {
        module()?;
        let mut i = CK_INFO {
            cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
            manufacturerID: [0; 32],
            flags: 0,
            libraryDescription: [0; 32],
            libraryVersion: VERSION,
        };
        pad(&mut i.manufacturerID, MANUFACTURER);
        pad(&mut i.libraryDescription, "hsmux PKCS#11 aggregator");
        // SAFETY: checked by `put`.
        unsafe { put(info, i)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    present: CK_BBOOL,
    list: CK_SLOT_ID_PTR,
    count: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetSlotList", || {
        let m = module()?;
        // Every configured slot lists; with `present`, only those whose token opened.
        let ids: Vec<CK_SLOT_ID> = m
            .slots
            .iter()
            .filter(|s| present == CK_FALSE || s.present())
            .map(|s| s.id)
            .collect();
        // SAFETY: pointers as the caller passed them, checked in `fill_list`.
        unsafe { fill_list(list, count, &ids) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: CK_SLOT_INFO_PTR) -> CK_RV {
    guard("C_GetSlotInfo", || {
        let m = module()?;
        let s = m.slot(slot)?;
        let mut i = CK_SLOT_INFO {
            slotDescription: [0; 64],
            manufacturerID: [0; 32],
            flags: if s.present() { CKF_TOKEN_PRESENT } else { 0 },
            hardwareVersion: VERSION,
            firmwareVersion: VERSION,
        };
        pad(
            &mut i.slotDescription,
            &format!("hsmux {}: {}", s.backend, s.label),
        );
        pad(&mut i.manufacturerID, MANUFACTURER);
        // SAFETY: checked by `put`.
        unsafe { put(info, i)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: CK_TOKEN_INFO_PTR) -> CK_RV {
    guard("C_GetTokenInfo", || {
        let m = module()?;
        let t = m.token(slot)?;
        let st = t.status()?;
        let mut i = CK_TOKEN_INFO {
            label: [0; 32],
            manufacturerID: [0; 32],
            model: [0; 16],
            serialNumber: [0; 16],
            flags: st.flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: st.sessions.0 as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: st.sessions.1 as CK_ULONG,
            ulMaxPinLen: *crate::token::PIN_LEN.end() as CK_ULONG,
            ulMinPinLen: *crate::token::PIN_LEN.start() as CK_ULONG,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: VERSION,
            firmwareVersion: VERSION,
            utcTime: [b' '; 16],
        };
        pad(&mut i.label, &st.label);
        pad(&mut i.manufacturerID, MANUFACTURER);
        pad(&mut i.model, t.model());
        pad(&mut i.serialNumber, &st.serial);
        // SAFETY: checked by `put`.
        unsafe { put(info, i)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: CK_MECHANISM_TYPE_PTR,
    count: CK_ULONG_PTR,
) -> CK_RV {
    guard("C_GetMechanismList", || {
        let m = module()?;
        let mechs: Vec<CK_MECHANISM_TYPE> = m
            .token(slot)?
            .mechanisms()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        // SAFETY: pointers as the caller passed them, checked in `fill_list`.
        unsafe { fill_list(list, count, &mechs) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    t: CK_MECHANISM_TYPE,
    info: CK_MECHANISM_INFO_PTR,
) -> CK_RV {
    guard("C_GetMechanismInfo", || {
        let m = module()?;
        let mi = m
            .token(slot)?
            .mechanisms()
            .into_iter()
            .find(|(x, _)| *x == t)
            .map(|(_, i)| i)
            .ok_or_else(|| Error::rv(CKR_MECHANISM_INVALID))?;
        let i = CK_MECHANISM_INFO {
            ulMinKeySize: mi.min_key,
            ulMaxKeySize: mi.max_key,
            flags: mi.flags,
        };
        // SAFETY: checked by `put`.
        unsafe { put(info, i)? };
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    pin: CK_UTF8CHAR_PTR,
    pin_len: CK_ULONG,
    label: CK_UTF8CHAR_PTR,
) -> CK_RV {
    guard("C_InitToken", || {
        let m = module()?;
        let t = m.token(slot)?;
        if label.is_null() {
            bail!(CKR_ARGUMENTS_BAD, "NULL label");
        }
        // SAFETY: the label is a 32-byte blank-padded field; the PIN as passed.
        let (label, pin) = unsafe { (bytes(label, 32)?, bytes(pin, pin_len)?) };
        let label = String::from_utf8_lossy(label)
            .trim_end_matches([' ', '\0'])
            .to_string();
        t.init_token(pin, &label)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(
    h: CK_SESSION_HANDLE,
    pin: CK_UTF8CHAR_PTR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard("C_InitPIN", || {
        let m = module()?;
        let (s, t) = m.session(h)?;
        if !s.rw {
            bail!(CKR_SESSION_READ_ONLY);
        }
        // SAFETY: as passed.
        let pin = unsafe { bytes(pin, pin_len)? };
        t.init_pin(pin)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    h: CK_SESSION_HANDLE,
    old: CK_UTF8CHAR_PTR,
    old_len: CK_ULONG,
    new: CK_UTF8CHAR_PTR,
    new_len: CK_ULONG,
) -> CK_RV {
    guard("C_SetPIN", || {
        let m = module()?;
        let (s, t) = m.session(h)?;
        if !s.rw {
            bail!(CKR_SESSION_READ_ONLY);
        }
        // SAFETY: as passed.
        let (old, new) = unsafe { (bytes(old, old_len)?, bytes(new, new_len)?) };
        t.set_pin(old, new)?;
        Ok(CKR_OK)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    slot: CK_SLOT_ID_PTR,
    reserved: CK_VOID_PTR,
) -> CK_RV {
    guard("C_WaitForSlotEvent", || {
        let m = module()?;
        if slot.is_null() || !reserved.is_null() {
            bail!(CKR_ARGUMENTS_BAD);
        }
        // The one event: a token whose backend could not open at C_Initialize appeared.
        if flags & CKF_DONT_BLOCK != 0 {
            return Ok(match m.slot_event() {
                Some(id) => {
                    // SAFETY: checked non-null above; the caller passes a writable slot ID.
                    unsafe { *slot = id };
                    CKR_OK
                }
                None => CKR_NO_EVENT,
            });
        }
        bail!(
            CKR_FUNCTION_NOT_SUPPORTED,
            "a blocking wait is not supported: poll with CKF_DONT_BLOCK"
        )
    })
}
