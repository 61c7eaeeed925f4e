//! Helpers for the conformance tests (`tests/conformance_*.rs`): owned C templates and the
//! raw calls the safe client cannot express (NULL pointers, odd lengths, calls that must
//! fail in a particular way), all through the same loaded module as [`crate::shared`].

use crate::raw::{self, Out, Ret};
use cryptoki_sys::*;
use std::ptr::null_mut;

/// The module's 2.40 function table.
pub fn f() -> &'static CK_FUNCTION_LIST {
    raw::raw().functions()
}

/// A slot ID no configuration will ever produce.
pub const BOGUS_SLOT: CK_SLOT_ID = 88_888;
/// A session handle the module never issued.
pub const BOGUS_SESSION: CK_SESSION_HANDLE = 99_999;
/// An object handle the module never issued.
pub const BOGUS_OBJECT: CK_OBJECT_HANDLE = 77_777;

/// Bytes from a hex string (test vectors).
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd-length hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// An owned `CK_ATTRIBUTE` array: values live as long as the template.
#[derive(Clone, Debug, Default)]
pub struct Template {
    entries: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
    c: Vec<CK_ATTRIBUTE>,
}

impl Template {
    /// An empty template.
    pub fn new() -> Template {
        Template::default()
    }

    /// Sets an attribute to raw bytes (replacing an earlier entry of the same type).
    pub fn bytes(mut self, kind: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Template {
        match self.entries.iter_mut().find(|(k, _)| *k == kind) {
            Some(entry) => entry.1 = value.to_vec(),
            None => self.entries.push((kind, value.to_vec())),
        }
        self
    }

    /// Appends an entry even if one of the same type exists (for malformed templates).
    pub fn duplicate(mut self, kind: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Template {
        self.entries.push((kind, value.to_vec()));
        self
    }

    /// Removes every entry of this type.
    pub fn without(mut self, kind: CK_ATTRIBUTE_TYPE) -> Template {
        self.entries.retain(|(k, _)| *k != kind);
        self
    }

    /// Adds a `CK_ULONG` attribute.
    pub fn ulong(self, kind: CK_ATTRIBUTE_TYPE, value: CK_ULONG) -> Template {
        self.bytes(kind, &value.to_ne_bytes())
    }

    /// Adds a `CK_BBOOL` attribute.
    pub fn bool(self, kind: CK_ATTRIBUTE_TYPE, value: bool) -> Template {
        self.bytes(kind, &raw::bool_bytes(value))
    }

    /// Number of entries (`ulCount`).
    pub fn count(&self) -> CK_ULONG {
        self.entries.len() as CK_ULONG
    }

    /// The C array, pointing into this template's values (NULL when empty).
    pub fn ptr(&mut self) -> CK_ATTRIBUTE_PTR {
        self.c = self
            .entries
            .iter_mut()
            .map(|(kind, value)| CK_ATTRIBUTE {
                type_: *kind,
                pValue: if value.is_empty() {
                    null_mut()
                } else {
                    value.as_mut_ptr().cast()
                },
                ulValueLen: value.len() as CK_ULONG,
            })
            .collect();
        if self.c.is_empty() {
            null_mut()
        } else {
            self.c.as_mut_ptr()
        }
    }
}

/// A data object (session object, public) with this label, application and value.
pub fn data_object(label: &str, app: &[u8], value: &[u8]) -> Template {
    Template::new()
        .ulong(CKA_CLASS, CKO_DATA)
        .bool(CKA_TOKEN, false)
        .bytes(CKA_APPLICATION, app)
        .bytes(CKA_VALUE, value)
        .bytes(CKA_LABEL, label.as_bytes())
}

/// A public session AES key with a known value and the given usage flags.
pub fn aes_key(value: &[u8], flags: &[CK_ATTRIBUTE_TYPE]) -> Template {
    let mut t = Template::new()
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, CKK_AES)
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, false)
        .bytes(CKA_VALUE, value);
    for flag in flags {
        t = t.bool(*flag, true);
    }
    t
}

/// A mechanism without parameters.
pub fn plain(mechanism: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism,
        pParameter: null_mut(),
        ulParameterLen: 0,
    }
}

/// C_CreateObject.
pub fn create_object(s: CK_SESSION_HANDLE, t: &mut Template) -> (CK_RV, CK_OBJECT_HANDLE) {
    let mut h = CK_INVALID_HANDLE;
    let n = t.count();
    // SAFETY: the template and the handle cell outlive the call.
    let rv = unsafe { f().C_CreateObject.unwrap()(s, t.ptr(), n, &mut h) };
    (rv, h)
}

/// C_CreateObject that must succeed.
#[track_caller]
pub fn create(s: CK_SESSION_HANDLE, mut t: Template, what: &str) -> CK_OBJECT_HANDLE {
    let (rv, h) = create_object(s, &mut t);
    crate::expect_rv(rv, CKR_OK, what);
    h
}

/// C_CopyObject.
pub fn copy_object(
    s: CK_SESSION_HANDLE,
    o: CK_OBJECT_HANDLE,
    t: &mut Template,
) -> (CK_RV, CK_OBJECT_HANDLE) {
    let mut h = CK_INVALID_HANDLE;
    let n = t.count();
    // SAFETY: the template and the handle cell outlive the call.
    let rv = unsafe { f().C_CopyObject.unwrap()(s, o, t.ptr(), n, &mut h) };
    (rv, h)
}

/// C_DestroyObject.
pub fn destroy_object(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> CK_RV {
    // SAFETY: plain values.
    unsafe { f().C_DestroyObject.unwrap()(s, o) }
}

/// C_GenerateKey.
pub fn generate_key(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    t: &mut Template,
) -> (CK_RV, CK_OBJECT_HANDLE) {
    let mut h = CK_INVALID_HANDLE;
    let mut m = *m;
    let n = t.count();
    // SAFETY: mechanism, template and handle cell outlive the call.
    let rv = unsafe { f().C_GenerateKey.unwrap()(s, &mut m, t.ptr(), n, &mut h) };
    (rv, h)
}

/// C_GenerateKeyPair: (rv, public, private).
pub fn generate_key_pair(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    public: &mut Template,
    private: &mut Template,
) -> (CK_RV, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let (mut hp, mut hk) = (CK_INVALID_HANDLE, CK_INVALID_HANDLE);
    let mut m = *m;
    let (np, nk) = (public.count(), private.count());
    // SAFETY: mechanism, templates and handle cells outlive the call.
    let rv = unsafe {
        f().C_GenerateKeyPair.unwrap()(
            s,
            &mut m,
            public.ptr(),
            np,
            private.ptr(),
            nk,
            &mut hp,
            &mut hk,
        )
    };
    (rv, hp, hk)
}

/// C_WrapKey with the usual output conventions.
pub fn wrap_key(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    out: Out,
) -> Ret {
    let mut m = *m;
    let (mut buf, null) = match out {
        Out::Null => (Vec::new(), true),
        Out::Buf(n) => (vec![0u8; n], false),
    };
    let mut len = buf.len() as CK_ULONG;
    let p = if null { null_mut() } else { buf.as_mut_ptr() };
    // SAFETY: mechanism, buffer (or NULL) and length cell outlive the call.
    let rv = unsafe { f().C_WrapKey.unwrap()(s, &mut m, wrapping, key, p, &mut len) };
    if rv == CKR_OK && !null {
        buf.truncate((len as usize).min(buf.len()));
    }
    Ret {
        rv,
        len: len as usize,
        data: buf,
    }
}

/// C_WrapKey: length query, then the real call.
pub fn wrap(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
) -> Result<Vec<u8>, CK_RV> {
    let q = wrap_key(s, m, wrapping, key, Out::Null);
    if q.rv != CKR_OK {
        return Err(q.rv);
    }
    let r = wrap_key(s, m, wrapping, key, Out::Buf(q.len));
    if r.rv != CKR_OK {
        return Err(r.rv);
    }
    Ok(r.data)
}

/// C_UnwrapKey.
pub fn unwrap_key(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: &[u8],
    t: &mut Template,
) -> (CK_RV, CK_OBJECT_HANDLE) {
    let mut m = *m;
    let mut h = CK_INVALID_HANDLE;
    let mut w = wrapped.to_vec();
    let n = t.count();
    // SAFETY: mechanism, wrapped bytes, template and handle cell outlive the call.
    let rv = unsafe {
        f().C_UnwrapKey.unwrap()(
            s,
            &mut m,
            unwrapping,
            w.as_mut_ptr(),
            w.len() as CK_ULONG,
            t.ptr(),
            n,
            &mut h,
        )
    };
    (rv, h)
}

/// C_DeriveKey.
pub fn derive_key(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    t: &mut Template,
) -> (CK_RV, CK_OBJECT_HANDLE) {
    let mut m = *m;
    let mut h = CK_INVALID_HANDLE;
    let n = t.count();
    // SAFETY: mechanism (and its parameter), template and handle cell outlive the call.
    let rv = unsafe { f().C_DeriveKey.unwrap()(s, &mut m, base, t.ptr(), n, &mut h) };
    (rv, h)
}

/// C_SeedRandom.
pub fn seed_random(s: CK_SESSION_HANDLE, seed: &[u8]) -> CK_RV {
    let mut seed = seed.to_vec();
    // SAFETY: the seed buffer outlives the call.
    unsafe { f().C_SeedRandom.unwrap()(s, seed.as_mut_ptr(), seed.len() as CK_ULONG) }
}

/// C_WaitForSlotEvent: (rv, slot).
pub fn wait_for_slot_event(flags: CK_FLAGS) -> (CK_RV, CK_SLOT_ID) {
    let mut slot: CK_SLOT_ID = CK_INVALID_HANDLE;
    // SAFETY: the slot cell outlives the call; pReserved must be NULL.
    let rv = unsafe { f().C_WaitForSlotEvent.unwrap()(flags, &mut slot, null_mut()) };
    (rv, slot)
}

/// C_DigestKey.
pub fn digest_key(s: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    // SAFETY: plain values.
    unsafe { f().C_DigestKey.unwrap()(s, key) }
}

/// C_InitPIN.
pub fn init_pin(s: CK_SESSION_HANDLE, pin: &[u8]) -> CK_RV {
    let mut pin = pin.to_vec();
    // SAFETY: the PIN buffer outlives the call.
    unsafe { f().C_InitPIN.unwrap()(s, pin.as_mut_ptr(), pin.len() as CK_ULONG) }
}

/// C_SetPIN.
pub fn set_pin(s: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> CK_RV {
    let (mut old, mut new) = (old.to_vec(), new.to_vec());
    // SAFETY: both PIN buffers outlive the call.
    unsafe {
        f().C_SetPIN.unwrap()(
            s,
            old.as_mut_ptr(),
            old.len() as CK_ULONG,
            new.as_mut_ptr(),
            new.len() as CK_ULONG,
        )
    }
}

/// C_SignInit + C_Sign (into a generous buffer) through raw calls.
pub fn sign_raw(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    data: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let rv = raw::init(raw::Op::Sign, s, m, key);
    if rv != CKR_OK {
        return Err(rv);
    }
    let r = raw::sign(s, data, Out::Buf(1024));
    if r.rv != CKR_OK {
        return Err(r.rv);
    }
    Ok(r.data)
}

/// C_EncryptInit + C_Encrypt (into a generous buffer) through raw calls.
pub fn encrypt_raw(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    data: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let rv = raw::init(raw::Op::Encrypt, s, m, key);
    if rv != CKR_OK {
        return Err(rv);
    }
    let r = raw::encrypt(s, data, Out::Buf(data.len() + 1024));
    if r.rv != CKR_OK {
        return Err(r.rv);
    }
    Ok(r.data)
}

/// C_DecryptInit + C_Decrypt (into a generous buffer) through raw calls.
pub fn decrypt_raw(
    s: CK_SESSION_HANDLE,
    m: &CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    data: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let rv = raw::init(raw::Op::Decrypt, s, m, key);
    if rv != CKR_OK {
        return Err(rv);
    }
    let r = raw::decrypt(s, data, Out::Buf(data.len() + 1024));
    if r.rv != CKR_OK {
        return Err(r.rv);
    }
    Ok(r.data)
}

/// Reads one attribute's bytes through a raw C_GetAttributeValue (`None` if unavailable).
pub fn attr(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, kind: CK_ATTRIBUTE_TYPE) -> Option<Vec<u8>> {
    let mut q = [raw::AttrQuery::len_of(kind)];
    if raw::get_attributes(s, o, &mut q) != CKR_OK || q[0].unavailable() {
        return None;
    }
    let mut q = [raw::AttrQuery::read(kind, q[0].len as usize)];
    if raw::get_attributes(s, o, &mut q) != CKR_OK {
        return None;
    }
    q[0].value().map(<[u8]>::to_vec)
}

/// Reads a `CK_BBOOL` attribute (panics if unavailable).
#[track_caller]
pub fn attr_bool(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, kind: CK_ATTRIBUTE_TYPE) -> bool {
    let v = attr(s, o, kind).unwrap_or_else(|| panic!("attribute {kind:#x} unavailable"));
    assert_eq!(v.len(), 1, "attribute {kind:#x} is not a CK_BBOOL");
    v[0] != 0
}

/// Reads a `CK_ULONG` attribute (panics if unavailable).
#[track_caller]
pub fn attr_ulong(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, kind: CK_ATTRIBUTE_TYPE) -> CK_ULONG {
    let v = attr(s, o, kind).unwrap_or_else(|| panic!("attribute {kind:#x} unavailable"));
    CK_ULONG::from_ne_bytes(
        v.as_slice()
            .try_into()
            .unwrap_or_else(|_| panic!("attribute {kind:#x} is not a CK_ULONG")),
    )
}

/// Every handle matching `t`, fetched `stride` at a time.
#[track_caller]
pub fn find_all(s: CK_SESSION_HANDLE, t: &mut Template, stride: usize) -> Vec<CK_OBJECT_HANDLE> {
    let n = t.count();
    // SAFETY: the template outlives the call.
    let rv = unsafe { f().C_FindObjectsInit.unwrap()(s, t.ptr(), n) };
    crate::expect_rv(rv, CKR_OK, "C_FindObjectsInit");
    let mut all = Vec::new();
    loop {
        let (rv, batch) = raw::find(s, stride);
        crate::expect_rv(rv, CKR_OK, "C_FindObjects");
        assert!(
            batch.len() <= stride,
            "C_FindObjects returned more than asked"
        );
        if batch.is_empty() {
            break;
        }
        all.extend(batch);
    }
    crate::expect_rv(raw::find_final(s), CKR_OK, "C_FindObjectsFinal");
    all.sort_unstable();
    all
}

/// True when `field` is blank-padded printable text without NULs.
pub fn blank_padded(field: &[u8]) -> bool {
    !field.contains(&0) && std::str::from_utf8(field).is_ok()
}
