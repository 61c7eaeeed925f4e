//! AES-256-GCM sealing, PIN key derivation and randomness for the local store.

use openssl::hash::MessageDigest;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use zeroize::Zeroizing;

use super::{StoreError, StoreResult};

/// Version byte that starts every sealed blob; bump it when the layout changes.
const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of AES-256 keys: the master key and the PIN-derived KEKs.
pub(crate) const KEY_LEN: usize = 32;
/// Length of the random salt of each PIN wrap.
pub(crate) const SALT_LEN: usize = 16;

/// Name of the only KDF this version writes, as recorded in `meta.json`.
pub(crate) const KDF_PBKDF2_SHA256: &str = "pbkdf2-hmac-sha256";

/// The token's 256-bit master key: seals every private object blob.
///
/// Zeroized on drop; its `Debug` never shows the key.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub(crate) fn generate() -> MasterKey {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut key[..]);
        MasterKey(key)
    }

    /// Rebuilds the key from unwrapped bytes; anything but 32 bytes is corruption.
    pub(crate) fn from_slice(bytes: &[u8]) -> StoreResult<MasterKey> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("master key has {} bytes", bytes.len())))?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// AES-256-GCM seal with a fresh random 12-byte nonce; output = version byte ‖ nonce ‖ ciphertext ‖ tag. `aad` binds the blob to its object id.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.0, aad, plaintext)
    }

    /// Opens a blob made by [`MasterKey::seal`] with the same `aad`; `Corrupt` on any tag or format failure.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> StoreResult<Zeroizing<Vec<u8>>> {
        open_with(&self.0, aad, sealed)
    }
}

/// Seals under any 32-byte key (the master key, or a KEK wrapping it).
pub(crate) fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut tag = [0u8; TAG_LEN];
    // AES-256-GCM with a 32-byte key and 12-byte nonce cannot fail short of a
    // broken libcrypto; the signature promised to callers has no error path.
    let ct = encrypt_aead(
        Cipher::aes_256_gcm(),
        key,
        Some(&nonce),
        aad,
        plaintext,
        &mut tag,
    )
    .expect("AES-256-GCM encryption failed inside OpenSSL");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len() + TAG_LEN);
    out.push(SEAL_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out.extend_from_slice(&tag);
    out
}

/// Opens a blob made by [`seal_with`]; every failure is `Corrupt`.
pub(crate) fn open_with(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> StoreResult<Zeroizing<Vec<u8>>> {
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
        return Err(StoreError::Corrupt(format!(
            "sealed blob too short ({} bytes)",
            sealed.len()
        )));
    }
    if sealed[0] != SEAL_VERSION {
        return Err(StoreError::Corrupt(format!(
            "sealed blob has unknown version {}",
            sealed[0]
        )));
    }
    let nonce = &sealed[1..1 + NONCE_LEN];
    let (ct, tag) = sealed[1 + NONCE_LEN..].split_at(sealed.len() - 1 - NONCE_LEN - TAG_LEN);
    decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), aad, ct, tag)
        .map(Zeroizing::new)
        .map_err(|_| StoreError::Corrupt("sealed blob failed authentication".into()))
}

/// PBKDF2-HMAC-SHA256 of the PIN: the key-encryption key of one PIN wrap.
pub(crate) fn derive_kek(
    pin: &[u8],
    salt: &[u8],
    iterations: u32,
) -> StoreResult<Zeroizing<[u8; KEY_LEN]>> {
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    openssl::pkcs5::pbkdf2_hmac(
        pin,
        salt,
        iterations as usize,
        MessageDigest::sha256(),
        &mut kek[..],
    )
    .map_err(|e| StoreError::Corrupt(format!("PBKDF2 failed: {e}")))?;
    Ok(kek)
}

/// Fills `buf` from OpenSSL's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) {
    // The CSPRNG only fails when it cannot be seeded at all; continuing with
    // predictable keys or nonces would be far worse than stopping.
    openssl::rand::rand_bytes(buf).expect("OpenSSL CSPRNG failed");
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf);
    super::format::to_hex(&buf)
}
