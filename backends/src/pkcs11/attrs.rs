//! Reading vendor attributes in as few `C_GetAttributeValue` calls as the vendor allows.

use std::ffi::c_void;
use std::ptr;

use cryptoki_sys::*;

use super::ffi::{VErr, VResult, Vendor};

/// Attribute values read from one object; `None` where the vendor has no value
/// (type invalid for the object, or sensitive).
pub(crate) struct Attrs {
    items: Vec<(CK_ATTRIBUTE_TYPE, Option<Vec<u8>>)>,
}

impl Attrs {
    pub fn get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|(t, _)| *t == ty)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn take(&mut self, ty: CK_ATTRIBUTE_TYPE) -> Option<Vec<u8>> {
        self.items
            .iter_mut()
            .find(|(t, _)| *t == ty)
            .and_then(|(_, v)| v.take())
    }

    pub fn bool(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        self.get(ty)
            .is_some_and(|v| v.first().is_some_and(|b| *b != 0))
    }

    pub fn ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
        self.get(ty).and_then(decode_ulong)
    }
}

/// A CK_ULONG attribute value (native byte order, as PKCS#11 stores it).
pub(crate) fn decode_ulong(v: &[u8]) -> Option<CK_ULONG> {
    let bytes: [u8; std::mem::size_of::<CK_ULONG>()] = v.try_into().ok()?;
    Some(CK_ULONG::from_ne_bytes(bytes))
}

/// A first guess at the size of an attribute, so one call usually suffices.
fn guess(ty: CK_ATTRIBUTE_TYPE) -> usize {
    match ty {
        CKA_CLASS
        | CKA_KEY_TYPE
        | CKA_CERTIFICATE_TYPE
        | CKA_VALUE_LEN
        | CKA_MODULUS_BITS
        | CKA_CERTIFICATE_CATEGORY => std::mem::size_of::<CK_ULONG>(),
        CKA_TOKEN
        | CKA_PRIVATE
        | CKA_SIGN
        | CKA_VERIFY
        | CKA_ENCRYPT
        | CKA_DECRYPT
        | CKA_WRAP
        | CKA_UNWRAP
        | CKA_DERIVE
        | CKA_NEVER_EXTRACTABLE
        | CKA_SENSITIVE
        | CKA_EXTRACTABLE
        | CKA_TRUSTED
        | CKA_MODIFIABLE => 1,
        CKA_MODULUS => 1024,
        CKA_PUBLIC_EXPONENT => 16,
        CKA_EC_PARAMS => 64,
        CKA_EC_POINT => 160,
        CKA_PUBLIC_KEY_INFO => 1200,
        CKA_VALUE => 4096,
        CKA_SUBJECT | CKA_ISSUER => 512,
        _ => 128,
    }
}

/// Reads `types` of `obj`: first all at once into guessed buffers; if the vendor
/// objects, a length query for all then one fetch of those it has; if that fails too,
/// one attribute at a time.
pub(crate) fn read(
    v: &Vendor,
    s: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
) -> VResult<Attrs> {
    let mut bufs: Vec<Vec<u8>> = types.iter().map(|t| vec![0u8; guess(*t)]).collect();
    let mut t = template(types, &mut bufs);
    let rv = v.get_attributes(s, obj, &mut t);
    match rv {
        CKR_OK => return Ok(collect(types, bufs, &t)),
        CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID | CKR_BUFFER_TOO_SMALL => {}
        rv => return Err(err(rv)),
    }

    // Length query, then one fetch of what exists.
    let mut t: Vec<CK_ATTRIBUTE> = types
        .iter()
        .map(|ty| CK_ATTRIBUTE {
            type_: *ty,
            pValue: ptr::null_mut(),
            ulValueLen: 0,
        })
        .collect();
    let rv = v.get_attributes(s, obj, &mut t);
    if matches!(
        rv,
        CKR_OK | CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID
    ) {
        let present: Vec<CK_ATTRIBUTE_TYPE> = t
            .iter()
            .filter(|a| a.ulValueLen != CK_UNAVAILABLE_INFORMATION && a.ulValueLen < (1 << 24))
            .map(|a| a.type_)
            .collect();
        let mut bufs: Vec<Vec<u8>> = t
            .iter()
            .filter(|a| a.ulValueLen != CK_UNAVAILABLE_INFORMATION && a.ulValueLen < (1 << 24))
            .map(|a| vec![0u8; a.ulValueLen as usize])
            .collect();
        let mut ft = template(&present, &mut bufs);
        if v.get_attributes(s, obj, &mut ft) == CKR_OK {
            let got = collect(&present, bufs, &ft);
            let items = types
                .iter()
                .map(|ty| {
                    let val = got
                        .items
                        .iter()
                        .find(|(t, _)| t == ty)
                        .and_then(|(_, v)| v.clone());
                    (*ty, val)
                })
                .collect();
            return Ok(Attrs { items });
        }
    } else if rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_SESSION_HANDLE_INVALID {
        return Err(err(rv));
    }

    // One at a time.
    let mut items = Vec::with_capacity(types.len());
    for ty in types {
        items.push((*ty, read_one(v, s, obj, *ty)?));
    }
    Ok(Attrs { items })
}

fn read_one(
    v: &Vendor,
    s: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    ty: CK_ATTRIBUTE_TYPE,
) -> VResult<Option<Vec<u8>>> {
    let mut buf = vec![0u8; guess(ty)];
    for _ in 0..3 {
        let mut bufs = vec![std::mem::take(&mut buf)];
        let mut t = template(&[ty], &mut bufs);
        let rv = v.get_attributes(s, obj, &mut t);
        let len = t[0].ulValueLen;
        buf = bufs.pop().unwrap_or_default();
        match rv {
            CKR_OK if len != CK_UNAVAILABLE_INFORMATION && (len as usize) <= buf.len() => {
                buf.truncate(len as usize);
                return Ok(Some(buf));
            }
            CKR_OK | CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID => return Ok(None),
            CKR_BUFFER_TOO_SMALL => {
                let mut q = [CK_ATTRIBUTE {
                    type_: ty,
                    pValue: ptr::null_mut(),
                    ulValueLen: 0,
                }];
                let rv = v.get_attributes(s, obj, &mut q);
                let n = q[0].ulValueLen;
                if rv != CKR_OK || n == CK_UNAVAILABLE_INFORMATION || n >= (1 << 24) {
                    return Ok(None);
                }
                buf = vec![0u8; n as usize];
            }
            rv => return Err(err(rv)),
        }
    }
    Ok(None)
}

/// Output templates over `bufs` (one per type, each its own length).
fn template(types: &[CK_ATTRIBUTE_TYPE], bufs: &mut [Vec<u8>]) -> Vec<CK_ATTRIBUTE> {
    types
        .iter()
        .zip(bufs.iter_mut())
        .map(|(ty, b)| CK_ATTRIBUTE {
            type_: *ty,
            pValue: if b.is_empty() {
                ptr::null_mut()
            } else {
                b.as_mut_ptr() as *mut c_void
            },
            ulValueLen: b.len() as CK_ULONG,
        })
        .collect()
}

fn collect(types: &[CK_ATTRIBUTE_TYPE], bufs: Vec<Vec<u8>>, t: &[CK_ATTRIBUTE]) -> Attrs {
    let items = types
        .iter()
        .zip(bufs)
        .zip(t)
        .map(|((ty, mut b), a)| {
            if a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen as usize > b.len() {
                (*ty, None)
            } else {
                b.truncate(a.ulValueLen as usize);
                (*ty, Some(b))
            }
        })
        .collect();
    Attrs { items }
}

fn err(rv: CK_RV) -> VErr {
    VErr {
        rv,
        func: "C_GetAttributeValue",
        after_init: false,
    }
}
