//! On-disk formats: `meta.json`, object files and the generation file.

use serde::{Deserialize, Serialize};

use super::{ObjectId, ObjectRecord, StoreError, StoreResult};

/// Format version of `meta.json`.
pub(crate) const META_FORMAT: u32 = 1;

/// Magic bytes that start every object file.
const OBJ_MAGIC: &[u8; 4] = b"HXOB";
/// Format version of object files.
const OBJ_FORMAT: u8 = 1;
const OBJ_FLAG_PRIVATE: u8 = 0x01;
/// Longest object id accepted; also bounds the file name length.
pub(crate) const MAX_ID_LEN: usize = 64;

/// Contents of `meta.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub(crate) struct MetaFile {
    pub format: u32,
    pub label: String,
    pub serial: String,
    pub initialized: bool,
    pub user_pin_initialized: bool,
    pub user_pin_failures: u32,
    pub so_pin_failures: u32,
    pub max_pin_failures: u32,
    /// `seal(master, check_aad, "")` in hex: tells whether a master key belongs to this token.
    #[serde(default)]
    pub master_check: Option<String>,
    #[serde(default)]
    pub so_pin: Option<PinWrap>,
    #[serde(default)]
    pub user_pin: Option<PinWrap>,
}

/// The master key wrapped under the KEK derived from one PIN.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct PinWrap {
    pub kdf: String,
    pub iterations: u32,
    /// Hex.
    pub salt: String,
    /// Hex of a sealed blob (same layout as [`super::MasterKey::seal`]).
    pub wrapped_key: String,
}

impl MetaFile {
    pub(crate) fn parse(bytes: &[u8]) -> StoreResult<MetaFile> {
        let meta: MetaFile = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Corrupt(format!("meta.json: {e}")))?;
        if meta.format != META_FORMAT {
            return Err(StoreError::Corrupt(format!(
                "meta.json: unsupported format {}",
                meta.format
            )));
        }
        Ok(meta)
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("MetaFile always serializes");
        out.push(b'\n');
        out
    }
}

/// Lowercase hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Parses hex (either case); `what` names the field in the error.
pub(crate) fn from_hex(s: &str, what: &str) -> StoreResult<Vec<u8>> {
    let bad = || StoreError::Corrupt(format!("meta.json: {what} is not hex"));
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            Ok((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Whether `id` may name a file: 1..=64 ASCII hex digits, nothing else.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Object file layout, version 1 (all integers little-endian):
///
/// ```text
/// "HXOB" | version u8 = 1 | flags u8 (bit 0 = private) | id_len u8 | id (ASCII hex)
///        | plain_len u32 | plain | sealed_len u32 | sealed
/// ```
pub(crate) fn encode_object(rec: &ObjectRecord) -> Vec<u8> {
    let id = rec.id.0.as_bytes();
    let mut out = Vec::with_capacity(4 + 3 + id.len() + 8 + rec.plain.len() + rec.sealed.len());
    out.extend_from_slice(OBJ_MAGIC);
    out.push(OBJ_FORMAT);
    out.push(if rec.private { OBJ_FLAG_PRIVATE } else { 0 });
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&(rec.plain.len() as u32).to_le_bytes());
    out.extend_from_slice(&rec.plain);
    out.extend_from_slice(&(rec.sealed.len() as u32).to_le_bytes());
    out.extend_from_slice(&rec.sealed);
    out
}

/// Parses an object file; `expected` is the id taken from its file name.
pub(crate) fn decode_object(bytes: &[u8], expected: &ObjectId) -> StoreResult<ObjectRecord> {
    let corrupt = |why: &str| StoreError::Corrupt(format!("object {}: {why}", expected.0));
    let mut r = Reader { buf: bytes };
    if r.take(4).ok_or_else(|| corrupt("truncated header"))? != OBJ_MAGIC {
        return Err(corrupt("bad magic"));
    }
    let version = r.byte().ok_or_else(|| corrupt("truncated header"))?;
    if version != OBJ_FORMAT {
        return Err(corrupt(&format!("unsupported format {version}")));
    }
    let flags = r.byte().ok_or_else(|| corrupt("truncated header"))?;
    if flags & !OBJ_FLAG_PRIVATE != 0 {
        return Err(corrupt(&format!("unknown flags {flags:#x}")));
    }
    let id_len = r.byte().ok_or_else(|| corrupt("truncated header"))? as usize;
    let id = r.take(id_len).ok_or_else(|| corrupt("truncated id"))?;
    if id != expected.0.as_bytes() {
        return Err(corrupt("id inside the file differs from its name"));
    }
    let plain = r.chunk().ok_or_else(|| corrupt("truncated plain part"))?;
    let sealed = r.chunk().ok_or_else(|| corrupt("truncated sealed part"))?;
    if !r.buf.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(ObjectRecord {
        id: expected.clone(),
        private: flags & OBJ_FLAG_PRIVATE != 0,
        plain: plain.to_vec(),
        sealed: sealed.to_vec(),
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn chunk(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }
}

/// Parses the generation file (`<decimal>\n`).
pub(crate) fn parse_generation(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_roundtrip_and_strictness() {
        let rec = ObjectRecord {
            id: ObjectId("00ff".into()),
            private: true,
            plain: b"attrs".to_vec(),
            sealed: vec![1, 2, 3],
        };
        let bytes = encode_object(&rec);
        assert_eq!(decode_object(&bytes, &rec.id).unwrap(), rec);
        // Truncation, trailing garbage and a renamed file are all detected.
        assert!(decode_object(&bytes[..bytes.len() - 1], &rec.id).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_object(&longer, &rec.id).is_err());
        assert!(decode_object(&bytes, &ObjectId("00fe".into())).is_err());
    }

    #[test]
    fn hex_roundtrip() {
        assert_eq!(to_hex(&[0, 0xab, 0x7f]), "00ab7f");
        assert_eq!(from_hex("00AB7f", "x").unwrap(), vec![0, 0xab, 0x7f]);
        assert!(from_hex("0g", "x").is_err());
        assert!(from_hex("abc", "x").is_err());
    }

    #[test]
    fn id_validation() {
        assert!(valid_id("0123456789abcdefABCDEF"));
        for bad in ["", "../x", "a/b", "ab.obj", "zz", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad:?} accepted");
        }
    }
}
