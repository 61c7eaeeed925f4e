//! The operations a `C_*Init` starts, as traits every mechanism implements: the leaf the
//! signature, cipher and wrap modules share, so none of them depends on another for them.

use crate::mech::{RSA_MAX_BITS, RSA_MIN_BITS};
use crate::{bail, Result};
use cryptoki_sys::*;

/// A signing (or MAC) operation.
pub trait SignOp: Send {
    /// Feeds more data (multi-part).
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Produces the signature over everything fed.
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// Single-part sign.
    fn sign(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.update(data)?;
        self.finish()
    }
    /// Exact signature length.
    fn sig_len(&self) -> usize;
}

/// A verification operation.
pub trait VerifyOp: Send {
    /// Feeds more data (multi-part).
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Checks `sig` over everything fed.
    fn finish(&mut self, sig: &[u8]) -> Result<()>;
    /// Single-part verify.
    fn verify(&mut self, data: &[u8], sig: &[u8]) -> Result<()> {
        self.update(data)?;
        self.finish(sig)
    }
}

/// An encryption or decryption operation (one type per direction).
pub trait CipherOp: Send {
    /// Processes more input; may hold some back.
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>>;
    /// Returns whatever is left (padding, tag, held-back block).
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// Single-part encrypt/decrypt.
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>>;
    /// Upper bound of `update` output for `in_len` more bytes.
    fn update_len(&self, in_len: usize) -> usize;
    /// Upper bound of `finish` output.
    fn finish_len(&self) -> usize;
    /// Upper bound of `oneshot` output for `in_len` bytes.
    fn oneshot_len(&self, in_len: usize) -> usize;
}

/// A digest operation.
#[allow(clippy::len_without_is_empty)] // A digest is never empty.
pub trait DigestOp: Send {
    /// Feeds more data.
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Produces the digest.
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// Single-part digest.
    fn digest(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.update(data)?;
        self.finish()
    }
    /// Digest length.
    fn len(&self) -> usize;
}

/// Checks an RSA key size against the advertised range.
pub(crate) fn check_rsa_bits(bits: usize) -> Result<()> {
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        bail!(CKR_KEY_SIZE_RANGE, "RSA key of {bits} bits");
    }
    Ok(())
}
