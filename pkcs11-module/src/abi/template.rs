//! A caller's `CK_ATTRIBUTE` template copied out of C memory into [`Attributes`].

use crate::{bail, Attributes, Result};
use cryptoki_sys::*;

/// Copies a caller's template. Values are copied verbatim; their shape is checked later by
/// the object layer, which knows each attribute's type.
///
/// # Safety
/// `ptr` must point to `count` valid `CK_ATTRIBUTE`s whose `pValue` point to
/// `ulValueLen` readable bytes (or are null with length 0).
pub(crate) unsafe fn template(ptr: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Attributes> {
    let mut out = Attributes::new();
    if count == 0 {
        return Ok(out);
    }
    if ptr.is_null() {
        bail!(
            CKR_ARGUMENTS_BAD,
            "template pointer is null with count {count}"
        );
    }
    // SAFETY: the caller guarantees `count` readable entries at `ptr`.
    let slice = unsafe { std::slice::from_raw_parts(ptr, count as usize) };
    for a in slice {
        let len = a.ulValueLen as usize;
        let value = if len == 0 {
            Vec::new()
        } else if a.pValue.is_null() || a.ulValueLen == CK_UNAVAILABLE_INFORMATION {
            bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "attribute {:#x} has a null value with length {}",
                a.type_,
                a.ulValueLen
            );
        } else {
            // SAFETY: the caller guarantees `len` readable bytes at `pValue`.
            unsafe { std::slice::from_raw_parts(a.pValue as *const u8, len) }.to_vec()
        };
        if out.has(a.type_) {
            bail!(
                CKR_TEMPLATE_INCONSISTENT,
                "attribute {:#x} appears twice in the template",
                a.type_
            );
        }
        out.set(a.type_, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rv<T>(r: Result<T>) -> CK_RV {
        r.err().map_or(CKR_OK, |e| e.rv)
    }

    #[test]
    fn duplicate_template_entries_are_inconsistent() {
        let t = [CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: std::ptr::null_mut(),
            ulValueLen: 0,
        }; 2];
        // SAFETY: two valid entries with empty values.
        let e = unsafe { template(t.as_ptr(), 2) }.unwrap_err();
        assert_eq!(e.rv, CKR_TEMPLATE_INCONSISTENT);
    }

    #[test]
    fn values_are_copied_and_null_ones_refused() {
        let label = *b"key";
        let mut t = [
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: label.as_ptr() as *mut _,
                ulValueLen: 3,
            },
            CK_ATTRIBUTE {
                type_: CKA_ID,
                pValue: std::ptr::null_mut(),
                ulValueLen: 0,
            },
        ];
        // SAFETY: both entries point to as many bytes as they say.
        let a = unsafe { template(t.as_ptr(), 2) }.unwrap();
        assert_eq!(a.get(CKA_LABEL), Some(&b"key"[..]));
        assert_eq!(a.get(CKA_ID), Some(&[][..]));
        t[1].ulValueLen = 4;
        // SAFETY: the null value is the case under test and is never read.
        let r = unsafe { template(t.as_ptr(), 2) };
        assert_eq!(rv(r), CKR_ATTRIBUTE_VALUE_INVALID);
        // SAFETY: a null template with no entries is never read.
        assert!(unsafe { template(std::ptr::null(), 0) }.unwrap().is_empty());
        // SAFETY: the null template is the case under test and is never read.
        let r = unsafe { template(std::ptr::null(), 1) };
        assert_eq!(rv(r), CKR_ARGUMENTS_BAD);
    }
}
