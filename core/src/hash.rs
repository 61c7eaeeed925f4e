//! The one hash enum: SHA-1 and SHA-2 as PKCS#11 names them, with their sizes, their
//! DigestInfo headers and their `CKM_*`/`CKG_*` and OpenSSL names.

use cryptoki_sys::*;

/// One of the SHA-family hashes PKCS#11 names in mechanisms and parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1 (20 bytes).
    Sha1,
    /// SHA-224 (28 bytes).
    Sha224,
    /// SHA-256 (32 bytes).
    Sha256,
    /// SHA-384 (48 bytes).
    Sha384,
    /// SHA-512 (64 bytes).
    Sha512,
}

impl HashAlg {
    /// Every hash, shortest first.
    pub const ALL: [HashAlg; 5] = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// The hash and digest of a DER `DigestInfo` (a PKCS#1 v1.5 signature's input).
    pub fn from_digest_info(input: &[u8]) -> Option<(HashAlg, &[u8])> {
        HashAlg::ALL.into_iter().find_map(|h| {
            let digest = input.strip_prefix(h.digest_info_prefix())?;
            (digest.len() == h.digest_len()).then_some((h, digest))
        })
    }

    /// The hash named by a digest mechanism (`CKM_SHA256` …), as used in `hashAlg` fields.
    pub fn from_ckm(t: CK_MECHANISM_TYPE) -> Option<HashAlg> {
        Some(match t {
            CKM_SHA_1 => HashAlg::Sha1,
            CKM_SHA224 => HashAlg::Sha224,
            CKM_SHA256 => HashAlg::Sha256,
            CKM_SHA384 => HashAlg::Sha384,
            CKM_SHA512 => HashAlg::Sha512,
            _ => return None,
        })
    }
    /// The hash of an MGF1 generator (`CKG_MGF1_SHA256` …).
    pub fn from_mgf(g: CK_RSA_PKCS_MGF_TYPE) -> Option<HashAlg> {
        Some(match g {
            CKG_MGF1_SHA1 => HashAlg::Sha1,
            CKG_MGF1_SHA224 => HashAlg::Sha224,
            CKG_MGF1_SHA256 => HashAlg::Sha256,
            CKG_MGF1_SHA384 => HashAlg::Sha384,
            CKG_MGF1_SHA512 => HashAlg::Sha512,
            _ => return None,
        })
    }
    /// The digest mechanism of this hash.
    pub fn ckm(self) -> CK_MECHANISM_TYPE {
        match self {
            HashAlg::Sha1 => CKM_SHA_1,
            HashAlg::Sha224 => CKM_SHA224,
            HashAlg::Sha256 => CKM_SHA256,
            HashAlg::Sha384 => CKM_SHA384,
            HashAlg::Sha512 => CKM_SHA512,
        }
    }
    /// Output length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
    /// Internal block length in bytes (the HMAC key block).
    pub fn block_len(self) -> usize {
        match self {
            HashAlg::Sha1 | HashAlg::Sha224 | HashAlg::Sha256 => 64,
            HashAlg::Sha384 | HashAlg::Sha512 => 128,
        }
    }
    /// The DER `DigestInfo` header that precedes the hash in PKCS#1 v1.5 signatures.
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            HashAlg::Sha224 => &[
                0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x04, 0x05, 0x00, 0x04, 0x1c,
            ],
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    /// The OpenSSL digest.
    pub fn message_digest(self) -> openssl::hash::MessageDigest {
        use openssl::hash::MessageDigest as D;
        match self {
            HashAlg::Sha1 => D::sha1(),
            HashAlg::Sha224 => D::sha224(),
            HashAlg::Sha256 => D::sha256(),
            HashAlg::Sha384 => D::sha384(),
            HashAlg::Sha512 => D::sha512(),
        }
    }

    /// MGF1 over this hash (`CKG_MGF1_SHA256` …).
    pub fn mgf(self) -> CK_RSA_PKCS_MGF_TYPE {
        match self {
            HashAlg::Sha1 => CKG_MGF1_SHA1,
            HashAlg::Sha224 => CKG_MGF1_SHA224,
            HashAlg::Sha256 => CKG_MGF1_SHA256,
            HashAlg::Sha384 => CKG_MGF1_SHA384,
            HashAlg::Sha512 => CKG_MGF1_SHA512,
        }
    }

    /// The HMAC mechanism over this hash (`CKM_SHA256_HMAC` …).
    pub fn hmac_ckm(self) -> CK_MECHANISM_TYPE {
        match self {
            HashAlg::Sha1 => CKM_SHA_1_HMAC,
            HashAlg::Sha224 => CKM_SHA224_HMAC,
            HashAlg::Sha256 => CKM_SHA256_HMAC,
            HashAlg::Sha384 => CKM_SHA384_HMAC,
            HashAlg::Sha512 => CKM_SHA512_HMAC,
        }
    }
}
