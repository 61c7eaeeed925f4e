//! AES key wrap (RFC 3394) and key wrap with padding (RFC 5649), as cipher operations.

use crate::aes::{aes_cipher, AesMode};
use crate::mech::Mechanism;
use crate::op::CipherOp;
use crate::{bail, Error, Result};
use cryptoki_sys::*;
use openssl::cipher_ctx::CipherCtx;
use zeroize::Zeroizing;

const KW_IV: [u8; 8] = [0xa6; 8];
const KWP_IV: [u8; 4] = [0xa6, 0x59, 0x59, 0xa6];

/// One AES block operation at a time, as the key-wrap rounds need.
struct Aes {
    ctx: CipherCtx,
}

impl Aes {
    fn new(key: &[u8], encrypt: bool) -> Result<Aes> {
        let cipher = aes_cipher(AesMode::Ecb, key.len())?;
        let mut ctx = CipherCtx::new()?;
        if encrypt {
            ctx.encrypt_init(Some(cipher), Some(key), None)?;
        } else {
            ctx.decrypt_init(Some(cipher), Some(key), None)?;
        }
        ctx.set_padding(false);
        Ok(Aes { ctx })
    }
    fn block(&mut self, b: &mut [u8; 16]) -> Result<()> {
        let mut out = Zeroizing::new([0u8; 32]);
        let n = self.ctx.cipher_update(&b[..], Some(&mut out[..]))?;
        if n != 16 {
            return Err(Error::general("AES-ECB returned a partial block"));
        }
        b.copy_from_slice(&out[..16]);
        Ok(())
    }
}

/// RFC 3394 W: wraps 64-bit blocks `r` (at least two) under the initial value `a`.
fn kw_wrap(aes: &mut Aes, a: [u8; 8], p: &[u8]) -> Result<Vec<u8>> {
    let n = p.len() / 8;
    let mut a = a;
    let mut r = Zeroizing::new(p.to_vec());
    let mut b = Zeroizing::new([0u8; 16]);
    for j in 0..6u64 {
        for i in 0..n {
            b[..8].copy_from_slice(&a);
            b[8..].copy_from_slice(&r[8 * i..8 * i + 8]);
            aes.block(&mut b)?;
            let t = (n as u64) * j + i as u64 + 1;
            a.copy_from_slice(&b[..8]);
            for (x, y) in a.iter_mut().zip(t.to_be_bytes()) {
                *x ^= y;
            }
            r[8 * i..8 * i + 8].copy_from_slice(&b[8..]);
        }
    }
    let mut out = Vec::with_capacity(p.len() + 8);
    out.extend_from_slice(&a);
    out.extend_from_slice(&r);
    Ok(out)
}

/// RFC 3394 W⁻¹: returns the recovered initial value and the plaintext blocks.
fn kw_unwrap(aes: &mut Aes, c: &[u8]) -> Result<([u8; 8], Zeroizing<Vec<u8>>)> {
    let n = c.len() / 8 - 1;
    let mut a = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    let mut r = Zeroizing::new(c[8..].to_vec());
    let mut b = Zeroizing::new([0u8; 16]);
    for j in (0..6u64).rev() {
        for i in (0..n).rev() {
            let t = (n as u64) * j + i as u64 + 1;
            for (x, y) in a.iter_mut().zip(t.to_be_bytes()) {
                *x ^= y;
            }
            b[..8].copy_from_slice(&a);
            b[8..].copy_from_slice(&r[8 * i..8 * i + 8]);
            aes.block(&mut b)?;
            a.copy_from_slice(&b[..8]);
            r[8 * i..8 * i + 8].copy_from_slice(&b[8..]);
        }
    }
    Ok((a, r))
}

/// AES key wrap (RFC 3394) of `p`, a multiple of 8 bytes, at least 16.
pub(crate) fn aes_kw_wrap(key: &[u8], iv: Option<[u8; 8]>, p: &[u8]) -> Result<Vec<u8>> {
    if p.len() < 16 || p.len() % 8 != 0 {
        bail!(
            CKR_DATA_LEN_RANGE,
            "AES key wrap input must be a multiple of 8 bytes, at least 16"
        );
    }
    kw_wrap(&mut Aes::new(key, true)?, iv.unwrap_or(KW_IV), p)
}

/// AES key unwrap (RFC 3394).
pub(crate) fn aes_kw_unwrap(
    key: &[u8],
    iv: Option<[u8; 8]>,
    c: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if c.len() < 24 || c.len() % 8 != 0 {
        bail!(
            CKR_ENCRYPTED_DATA_LEN_RANGE,
            "AES key wrap ciphertext must be a multiple of 8 bytes, at least 24"
        );
    }
    let (a, r) = kw_unwrap(&mut Aes::new(key, false)?, c)?;
    if !openssl::memcmp::eq(&a, &iv.unwrap_or(KW_IV)) {
        bail!(
            CKR_ENCRYPTED_DATA_INVALID,
            "AES key wrap integrity check failed"
        );
    }
    Ok(r)
}

/// AES key wrap with padding (RFC 5649) of 1 byte or more.
pub(crate) fn aes_kwp_wrap(key: &[u8], iv: Option<[u8; 4]>, p: &[u8]) -> Result<Vec<u8>> {
    let mli = u32::try_from(p.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::new(CKR_DATA_LEN_RANGE, "AES-KWP input must be 1..2^32 bytes"))?;
    let mut a = [0u8; 8];
    a[..4].copy_from_slice(&iv.unwrap_or(KWP_IV));
    a[4..].copy_from_slice(&mli.to_be_bytes());
    let mut padded = Zeroizing::new(p.to_vec());
    padded.resize(p.len().div_ceil(8) * 8, 0);
    let mut aes = Aes::new(key, true)?;
    if padded.len() == 8 {
        let mut b = Zeroizing::new([0u8; 16]);
        b[..8].copy_from_slice(&a);
        b[8..].copy_from_slice(&padded);
        aes.block(&mut b)?;
        return Ok(b.to_vec());
    }
    kw_wrap(&mut aes, a, &padded)
}

/// AES key unwrap with padding (RFC 5649).
pub(crate) fn aes_kwp_unwrap(
    key: &[u8],
    iv: Option<[u8; 4]>,
    c: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if c.len() < 16 || c.len() % 8 != 0 {
        bail!(
            CKR_ENCRYPTED_DATA_LEN_RANGE,
            "AES-KWP ciphertext must be a multiple of 8 bytes, at least 16"
        );
    }
    let mut aes = Aes::new(key, false)?;
    let (a, mut p) = if c.len() == 16 {
        let mut b = Zeroizing::new([0u8; 16]);
        b.copy_from_slice(c);
        aes.block(&mut b)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        (a, Zeroizing::new(b[8..].to_vec()))
    } else {
        kw_unwrap(&mut aes, c)?
    };
    let mli = u32::from_be_bytes([a[4], a[5], a[6], a[7]]) as usize;
    let n = p.len();
    let iv_ok = openssl::memcmp::eq(&a[..4], &iv.unwrap_or(KWP_IV));
    let len_ok = mli <= n && mli + 8 > n;
    let pad_ok = len_ok && p[mli..].iter().all(|b| *b == 0);
    if !(iv_ok && len_ok && pad_ok) {
        bail!(CKR_ENCRYPTED_DATA_INVALID, "AES-KWP integrity check failed");
    }
    p.truncate(mli);
    Ok(p)
}

/// `CKM_AES_KEY_WRAP[_KWP]` as an encrypt/decrypt operation: input is buffered and
/// wrapped at finish, since the algorithm needs all of it.
pub(crate) struct KeyWrapOp {
    key: Zeroizing<Vec<u8>>,
    mech: Mechanism,
    encrypt: bool,
    buf: Zeroizing<Vec<u8>>,
}

impl KeyWrapOp {
    pub(crate) fn new(m: &Mechanism, key: &[u8], encrypt: bool) -> Result<KeyWrapOp> {
        aes_cipher(AesMode::Ecb, key.len())?;
        Ok(KeyWrapOp {
            key: Zeroizing::new(key.to_vec()),
            mech: m.clone(),
            encrypt,
            buf: Zeroizing::new(Vec::new()),
        })
    }
    fn run(&self, data: &[u8]) -> Result<Vec<u8>> {
        match (&self.mech, self.encrypt) {
            (Mechanism::AesKeyWrap(iv), true) => aes_kw_wrap(&self.key, *iv, data),
            (Mechanism::AesKeyWrap(iv), false) => {
                Ok(std::mem::take(&mut *aes_kw_unwrap(&self.key, *iv, data)?))
            }
            (Mechanism::AesKeyWrapKwp(iv), true) => aes_kwp_wrap(&self.key, *iv, data),
            (Mechanism::AesKeyWrapKwp(iv), false) => {
                Ok(std::mem::take(&mut *aes_kwp_unwrap(&self.key, *iv, data)?))
            }
            _ => Err(Error::general("key wrap op with a non-wrap mechanism")),
        }
    }
}

impl CipherOp for KeyWrapOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = std::mem::take(&mut *self.buf);
        let data = Zeroizing::new(data);
        self.run(&data)
    }
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.run(data)
        } else {
            self.update(data)?;
            self.finish()
        }
    }
    fn update_len(&self, _in_len: usize) -> usize {
        0
    }
    fn finish_len(&self) -> usize {
        self.oneshot_len(self.buf.len())
    }
    fn oneshot_len(&self, in_len: usize) -> usize {
        if self.encrypt {
            in_len.div_ceil(8).saturating_mul(8).saturating_add(8)
        } else {
            in_len.saturating_sub(8)
        }
    }
}
