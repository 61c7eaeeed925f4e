//! Reading vendor attributes in as few `C_GetAttributeValue` calls as the vendor allows.

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
    match v.get_attributes(s, obj, types, &mut bufs) {
        (CKR_OK, lens) => return Ok(collect(types, bufs, &lens)),
        (CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID | CKR_BUFFER_TOO_SMALL, _) => {}
        (rv, _) => return Err(err(rv)),
    }

    // Length query, then one fetch of what exists.
    let mut empty: Vec<Vec<u8>> = vec![Vec::new(); types.len()];
    let (rv, lens) = v.get_attributes(s, obj, types, &mut empty);
    match rv {
        CKR_OK | CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID => {
            let present: Vec<(CK_ATTRIBUTE_TYPE, usize)> = types
                .iter()
                .zip(&lens)
                .filter(|(_, n)| **n != CK_UNAVAILABLE_INFORMATION && **n < MAX_LEN)
                .map(|(t, n)| (*t, *n as usize))
                .collect();
            let ptypes: Vec<CK_ATTRIBUTE_TYPE> = present.iter().map(|(t, _)| *t).collect();
            let mut bufs: Vec<Vec<u8>> = present.iter().map(|(_, n)| vec![0u8; *n]).collect();
            if let (CKR_OK, lens) = v.get_attributes(s, obj, &ptypes, &mut bufs) {
                let mut got = collect(&ptypes, bufs, &lens);
                let mut items = Vec::with_capacity(types.len());
                for ty in types {
                    let val = match got.take(*ty) {
                        Some(val) => Some(val),
                        // Some vendors stop at the first invalid attribute and report
                        // the rest unavailable too: ask for each missing one alone.
                        None => read_one(v, s, obj, *ty)?,
                    };
                    items.push((*ty, val));
                }
                return Ok(Attrs { items });
            }
        }
        CKR_OBJECT_HANDLE_INVALID | CKR_SESSION_HANDLE_INVALID => return Err(err(rv)),
        _ => {}
    }

    // One at a time.
    let mut items = Vec::with_capacity(types.len());
    for ty in types {
        items.push((*ty, read_one(v, s, obj, *ty)?));
    }
    Ok(Attrs { items })
}

/// Larger attribute lengths than this are taken for vendor nonsense.
const MAX_LEN: CK_ULONG = 1 << 24;

fn read_one(
    v: &Vendor,
    s: CK_SESSION_HANDLE,
    obj: CK_OBJECT_HANDLE,
    ty: CK_ATTRIBUTE_TYPE,
) -> VResult<Option<Vec<u8>>> {
    let mut bufs = vec![vec![0u8; guess(ty)]];
    for _ in 0..3 {
        let (rv, lens) = v.get_attributes(s, obj, &[ty], &mut bufs);
        let len = lens.first().copied().unwrap_or(CK_UNAVAILABLE_INFORMATION);
        match rv {
            CKR_OK if len != CK_UNAVAILABLE_INFORMATION && (len as usize) <= bufs[0].len() => {
                let mut b = std::mem::take(&mut bufs[0]);
                b.truncate(len as usize);
                return Ok(Some(b));
            }
            CKR_OK | CKR_ATTRIBUTE_SENSITIVE | CKR_ATTRIBUTE_TYPE_INVALID => return Ok(None),
            CKR_BUFFER_TOO_SMALL => {
                let (rv, lens) = v.get_attributes(s, obj, &[ty], &mut [Vec::new()]);
                let n = lens.first().copied().unwrap_or(CK_UNAVAILABLE_INFORMATION);
                if rv != CKR_OK || n == CK_UNAVAILABLE_INFORMATION || n >= MAX_LEN {
                    return Ok(None);
                }
                bufs[0] = vec![0u8; n as usize];
            }
            rv => return Err(err(rv)),
        }
    }
    Ok(None)
}

/// Values out of filled buffers, by the lengths the vendor reported.
fn collect(types: &[CK_ATTRIBUTE_TYPE], bufs: Vec<Vec<u8>>, lens: &[CK_ULONG]) -> Attrs {
    let items = types
        .iter()
        .zip(bufs)
        .zip(lens)
        .map(|((ty, mut b), n)| {
            if *n == CK_UNAVAILABLE_INFORMATION || *n as usize > b.len() {
                (*ty, None)
            } else {
                b.truncate(*n as usize);
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
