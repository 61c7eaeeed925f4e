//! Object attributes as owned Rust values: a map from `CKA_*` to its raw value bytes.
//!
//! Raw `(type, pValue, ulValueLen)` triples never travel past the ABI edge; the module
//! copies a template into [`Attributes`] once and works on that.

use crate::{bail, Result};
use cryptoki_sys::*;
use std::collections::BTreeMap;
use zeroize::Zeroize;

/// Size of a `CK_ULONG` on the wire of this platform.
pub const ULONG_LEN: usize = std::mem::size_of::<CK_ULONG>();

/// An ordered attribute map. Values are zeroized when dropped or replaced.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes(BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>);

impl Drop for Attributes {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            v.zeroize();
        }
    }
}

impl std::fmt::Debug for Attributes {
    // Lists types only: values may be secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.keys().map(|k| format!("{k:#x}")))
            .finish()
    }
}

impl Attributes {
    /// An empty map.
    pub fn new() -> Attributes {
        Attributes(BTreeMap::new())
    }

    /// The raw value of `t`.
    pub fn get(&self, t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.0.get(&t).map(|v| v.as_slice())
    }
    /// Whether `t` is present.
    pub fn has(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        self.0.contains_key(&t)
    }
    /// `t` as a `CK_BBOOL`; a value of the wrong length is `CKR_ATTRIBUTE_VALUE_INVALID`.
    pub fn get_bool(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
        match self.get(t) {
            None => Ok(None),
            Some([b]) => Ok(Some(*b != 0)),
            Some(v) => bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "attribute {t:#x} must be a CK_BBOOL, got {} bytes",
                v.len()
            ),
        }
    }
    /// `t` as a `CK_BBOOL`, or `default` when absent.
    pub fn bool_or(&self, t: CK_ATTRIBUTE_TYPE, default: bool) -> Result<bool> {
        Ok(self.get_bool(t)?.unwrap_or(default))
    }
    /// `t` as a `CK_ULONG`; a value of the wrong length is `CKR_ATTRIBUTE_VALUE_INVALID`.
    pub fn get_ulong(&self, t: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
        match self.get(t) {
            None => Ok(None),
            Some(v) if v.len() == ULONG_LEN => {
                let mut b = [0u8; ULONG_LEN];
                b.copy_from_slice(v);
                Ok(Some(CK_ULONG::from_ne_bytes(b)))
            }
            Some(v) => bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "attribute {t:#x} must be a CK_ULONG, got {} bytes",
                v.len()
            ),
        }
    }
    /// Sets the raw value of `t`, zeroizing any previous value.
    pub fn set(&mut self, t: CK_ATTRIBUTE_TYPE, v: impl Into<Vec<u8>>) {
        if let Some(mut old) = self.0.insert(t, v.into()) {
            old.zeroize();
        }
    }
    /// Sets `t` to a `CK_BBOOL`.
    pub fn set_bool(&mut self, t: CK_ATTRIBUTE_TYPE, b: bool) {
        self.set(t, vec![if b { CK_TRUE } else { CK_FALSE }]);
    }
    /// Sets `t` to a `CK_ULONG`.
    pub fn set_ulong(&mut self, t: CK_ATTRIBUTE_TYPE, v: CK_ULONG) {
        self.set(t, v.to_ne_bytes().to_vec());
    }
    /// Sets `t` only if it is not present yet.
    pub fn set_default(&mut self, t: CK_ATTRIBUTE_TYPE, v: impl Into<Vec<u8>>) {
        self.0.entry(t).or_insert_with(|| v.into());
    }
    /// Removes `t`, returning its value.
    pub fn remove(&mut self, t: CK_ATTRIBUTE_TYPE) -> Option<Vec<u8>> {
        self.0.remove(&t)
    }
    /// Copies every attribute of `other` into `self`, replacing existing ones.
    pub fn merge(&mut self, other: &Attributes) {
        for (t, v) in other.iter() {
            self.set(t, v.to_vec());
        }
    }
    /// Iterates `(type, value)` in type order.
    pub fn iter(&self) -> impl Iterator<Item = (CK_ATTRIBUTE_TYPE, &[u8])> {
        self.0.iter().map(|(t, v)| (*t, v.as_slice()))
    }
    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_and_ulong_round_trip_and_reject_wrong_lengths() {
        let mut a = Attributes::new();
        a.set_bool(CKA_SIGN, true);
        a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        assert_eq!(a.get_bool(CKA_SIGN).unwrap(), Some(true));
        assert_eq!(a.get_ulong(CKA_CLASS).unwrap(), Some(CKO_PRIVATE_KEY));
        a.set(CKA_DECRYPT, vec![1, 2]);
        assert_eq!(
            a.get_bool(CKA_DECRYPT).unwrap_err().rv,
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        assert_eq!(
            a.get_ulong(CKA_SIGN).unwrap_err().rv,
            CKR_ATTRIBUTE_VALUE_INVALID
        );
    }
}
