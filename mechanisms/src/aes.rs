//! The AES `EVP_CIPHER`s, fetched once per process: the primitive under the cipher modes,
//! AES key wrap and message-based GCM.

use crate::{bail, Result};
use cryptoki_sys::*;
use openssl::cipher::{Cipher, CipherRef};
use std::sync::OnceLock;

#[derive(Clone, Copy)]
pub(crate) enum AesMode {
    Ecb = 0,
    Cbc = 1,
    Ctr = 2,
    Gcm = 3,
}

/// The `EVP_CIPHER` for an AES mode and key length, fetched once per process so that
/// initialising a context does no provider lookup.
pub(crate) fn aes_cipher(mode: AesMode, key_len: usize) -> Result<&'static CipherRef> {
    static CIPHERS: OnceLock<Vec<Option<Cipher>>> = OnceLock::new();
    let size = match key_len {
        16 => 0,
        24 => 1,
        32 => 2,
        n => bail!(CKR_KEY_SIZE_RANGE, "AES key of {n} bytes"),
    };
    let all = CIPHERS.get_or_init(|| {
        let mut v = Vec::new();
        for m in ["ECB", "CBC", "CTR", "GCM"] {
            for bits in [128, 192, 256] {
                v.push(Cipher::fetch(None, &format!("AES-{bits}-{m}"), None).ok());
            }
        }
        v
    });
    if let Some(Some(c)) = all.get(mode as usize * 3 + size) {
        return Ok(c);
    }
    Ok(match (mode, size) {
        (AesMode::Ecb, 0) => Cipher::aes_128_ecb(),
        (AesMode::Ecb, 1) => Cipher::aes_192_ecb(),
        (AesMode::Ecb, _) => Cipher::aes_256_ecb(),
        (AesMode::Cbc, 0) => Cipher::aes_128_cbc(),
        (AesMode::Cbc, 1) => Cipher::aes_192_cbc(),
        (AesMode::Cbc, _) => Cipher::aes_256_cbc(),
        (AesMode::Ctr, 0) => Cipher::aes_128_ctr(),
        (AesMode::Ctr, 1) => Cipher::aes_192_ctr(),
        (AesMode::Ctr, _) => Cipher::aes_256_ctr(),
        (AesMode::Gcm, 0) => Cipher::aes_128_gcm(),
        (AesMode::Gcm, 1) => Cipher::aes_192_gcm(),
        (AesMode::Gcm, _) => Cipher::aes_256_gcm(),
    })
}
