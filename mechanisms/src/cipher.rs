//! Encryption and decryption: AES and DES modes over `EVP_CIPHER_CTX`, RSA over
//! `RSA`/`EVP_PKEY`.

use crate::aes::{aes_cipher, AesMode};
use crate::key::{KeyMaterial, RsaPrivateKey, RsaPublicKey};
use crate::mech::{CtrParams, GcmParams, Mechanism, OaepParams};
use crate::op::{check_rsa_bits, CipherOp};
use crate::{bail, Error, Result};
use cryptoki_sys::*;
use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use std::sync::{Arc, OnceLock};
use zeroize::Zeroizing;

/// AES block length.
const BLOCK: usize = 16;
/// DES block length.
const DES_BLOCK: usize = 8;
/// Largest chunk handed to one `EVP_CipherUpdate`, whose length is a C `int`.
const CHUNK: usize = 1 << 30;

/// The DES-EDE3 `EVP_CIPHER` in ECB or CBC mode, fetched once per process.
///
/// Every DES key runs through three-key DES-EDE3: a `CKK_DES2` key K1‖K2 as K1‖K2‖K1 and a
/// single-DES key K as K‖K‖K, which compute exactly two-key 3DES and DES. OpenSSL 3
/// keeps single DES in its legacy provider only; this way we need no provider beyond the
/// default one and leave the application's OpenSSL state alone.
pub(crate) fn des_cipher(cbc: bool) -> &'static CipherRef {
    static CIPHERS: OnceLock<[Option<Cipher>; 2]> = OnceLock::new();
    let all = CIPHERS.get_or_init(|| {
        [
            Cipher::fetch(None, "DES-EDE3-ECB", None).ok(),
            Cipher::fetch(None, "DES-EDE3-CBC", None).ok(),
        ]
    });
    match (&all[cbc as usize], cbc) {
        (Some(c), _) => c,
        (None, false) => Cipher::des_ede3(),
        (None, true) => Cipher::des_ede3_cbc(),
    }
}

/// The 24-byte DES-EDE3 key of a DES key fit for the mechanism: `CKK_DES` for single-DES
/// mechanisms, `CKK_DES2` or `CKK_DES3` for triple-DES ones. `None` for any other key.
pub(crate) fn des_ede3_key(key: &KeyMaterial, single: bool) -> Option<Zeroizing<Vec<u8>>> {
    let KeyMaterial::Secret(s) = key else {
        return None;
    };
    let v = &s.value[..];
    let parts: [&[u8]; 3] = match (s.key_type, v.len(), single) {
        (CKK_DES, 8, true) => [v, v, v],
        (CKK_DES2, 16, false) => [&v[..8], &v[8..], &v[..8]],
        (CKK_DES3, 24, false) => return Some(Zeroizing::new(v.to_vec())),
        _ => return None,
    };
    Some(Zeroizing::new(parts.concat()))
}

/// `CKA_CHECK_VALUE` of an AES or DES key (PKCS#11 3.0 §6.1, §6.6): the first three bytes
/// of encrypting one all-zero block under the key in ECB mode. `None` for other key types,
/// whose check value is not defined by a cipher.
pub fn block_cipher_check_value(key_type: CK_KEY_TYPE, value: &[u8]) -> Result<Option<Vec<u8>>> {
    let (cipher, key, block) = match key_type {
        CKK_AES => (aes_cipher(AesMode::Ecb, value.len())?, None, BLOCK),
        CKK_DES | CKK_DES2 | CKK_DES3 => {
            let single = key_type == CKK_DES;
            let km = KeyMaterial::Secret(crate::key::SecretKey {
                key_type,
                value: Zeroizing::new(value.to_vec()),
            });
            let k = des_ede3_key(&km, single).ok_or_else(|| {
                Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "DES key of the wrong length")
            })?;
            (des_cipher(false), Some(k), DES_BLOCK)
        }
        _ => return Ok(None),
    };
    let key = key.as_ref().map(|k| &k[..]).unwrap_or(value);
    let mut ctx = cipher_ctx(cipher, key, None, true)?;
    ctx.set_padding(false);
    let mut out = Vec::with_capacity(2 * BLOCK);
    ctx_update(&mut ctx, &[0u8; BLOCK][..block], &mut out)?;
    out.truncate(3);
    Ok(Some(out))
}

/// Runs `input` through `ctx`, appending to `out`, in chunks OpenSSL's `int` can count.
pub(crate) fn ctx_update(ctx: &mut CipherCtx, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    for chunk in input.chunks(CHUNK) {
        let base = out.len();
        out.resize(base + chunk.len() + BLOCK, 0);
        let n = ctx.cipher_update(chunk, Some(&mut out[base..]))?;
        out.truncate(base + n);
    }
    Ok(())
}

fn aes_key(key: &KeyMaterial) -> Option<&[u8]> {
    match key {
        KeyMaterial::Secret(s) if s.key_type == CKK_AES => Some(&s.value[..]),
        _ => None,
    }
}

fn new_ctx(mode: AesMode, key: &[u8], iv: Option<&[u8]>, encrypt: bool) -> Result<CipherCtx> {
    cipher_ctx(aes_cipher(mode, key.len())?, key, iv, encrypt)
}

fn cipher_ctx(
    cipher: &CipherRef,
    key: &[u8],
    iv: Option<&[u8]>,
    encrypt: bool,
) -> Result<CipherCtx> {
    let mut ctx = CipherCtx::new()?;
    if encrypt {
        ctx.encrypt_init(Some(cipher), Some(key), iv)?;
    } else {
        ctx.decrypt_init(Some(cipher), Some(key), iv)?;
    }
    Ok(ctx)
}

/// ECB, CBC and CBC-PAD (AES or DES). OpenSSL buffers partial blocks (and, decrypting
/// with padding, the last full block); `held` mirrors how many bytes it holds so lengths
/// are exact.
struct BlockOp {
    ctx: CipherCtx,
    block: usize,
    encrypt: bool,
    pad: bool,
    held: usize,
}

impl BlockOp {
    fn new(mode: AesMode, key: &[u8], iv: Option<&[u8]>, pad: bool, encrypt: bool) -> Result<Self> {
        let ctx = new_ctx(mode, key, iv, encrypt)?;
        Ok(Self::with_ctx(ctx, BLOCK, pad, encrypt))
    }
    fn des(cbc: bool, key: &[u8], iv: Option<&[u8]>, pad: bool, encrypt: bool) -> Result<Self> {
        let ctx = cipher_ctx(des_cipher(cbc), key, iv, encrypt)?;
        Ok(Self::with_ctx(ctx, DES_BLOCK, pad, encrypt))
    }
    fn with_ctx(mut ctx: CipherCtx, block: usize, pad: bool, encrypt: bool) -> Self {
        ctx.set_padding(pad);
        BlockOp {
            ctx,
            block,
            encrypt,
            pad,
            held: 0,
        }
    }
    fn len_error(&self) -> Error {
        if self.encrypt {
            Error::new(
                CKR_DATA_LEN_RANGE,
                "input is not a multiple of the block size",
            )
        } else {
            Error::new(
                CKR_ENCRYPTED_DATA_LEN_RANGE,
                "ciphertext is not a whole number of blocks",
            )
        }
    }
    fn finish_into(&mut self, out: &mut Vec<u8>) -> Result<()> {
        if !self.pad && self.held != 0 {
            return Err(self.len_error());
        }
        if self.pad && !self.encrypt && self.held != self.block {
            return Err(self.len_error());
        }
        let base = out.len();
        out.resize(base + self.block, 0);
        let n = match self.ctx.cipher_final(&mut out[base..]) {
            Ok(n) => n,
            Err(_) if !self.encrypt => {
                bail!(CKR_ENCRYPTED_DATA_INVALID, "bad padding")
            }
            Err(e) => return Err(e.into()),
        };
        out.truncate(base + n);
        self.held = 0;
        Ok(())
    }
}

impl CipherOp for BlockOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.update_len(data.len()) + BLOCK);
        ctx_update(&mut self.ctx, data, &mut out)?;
        self.held = (self.held + data.len()).saturating_sub(out.len());
        Ok(out)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.block);
        self.finish_into(&mut out)?;
        Ok(out)
    }
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let whole = data.len() % self.block == 0;
        if (!self.pad && !whole) || (self.pad && !self.encrypt && (!whole || data.is_empty())) {
            return Err(self.len_error());
        }
        let mut out = Vec::with_capacity(data.len() + 2 * BLOCK);
        ctx_update(&mut self.ctx, data, &mut out)?;
        self.held = (self.held + data.len()).saturating_sub(out.len());
        self.finish_into(&mut out)?;
        Ok(out)
    }
    fn update_len(&self, in_len: usize) -> usize {
        let total = self.held.saturating_add(in_len);
        total - total % self.block
    }
    fn finish_len(&self) -> usize {
        if self.pad {
            self.block
        } else {
            0
        }
    }
    fn oneshot_len(&self, in_len: usize) -> usize {
        if self.pad && self.encrypt {
            (in_len - in_len % self.block).saturating_add(self.block)
        } else {
            in_len
        }
    }
}

/// AES-CTR with a counter of `counter_bits` low bits: running past the counter space would
/// repeat the key stream (PKCS#11 forbids wrapping), so that is `CKR_DATA_LEN_RANGE`.
struct CtrOp {
    ctx: CipherCtx,
    /// Blocks (including a partial one) still available before the counter wraps.
    blocks_left: Option<u128>,
    /// Bytes already processed.
    done: u128,
    encrypt: bool,
}

impl CtrOp {
    fn new(key: &[u8], p: &CtrParams, encrypt: bool) -> Result<CtrOp> {
        let ctx = new_ctx(AesMode::Ctr, key, Some(&p.cb), true)?;
        let blocks_left = if p.counter_bits >= 128 {
            None
        } else {
            let ctr = u128::from_be_bytes(p.cb) & ((1u128 << p.counter_bits) - 1);
            Some((1u128 << p.counter_bits) - ctr)
        };
        Ok(CtrOp {
            ctx,
            blocks_left,
            done: 0,
            encrypt,
        })
    }
}

impl CipherOp for CtrOp {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let total = self.done.saturating_add(data.len() as u128);
        if let Some(left) = self.blocks_left {
            if total.div_ceil(BLOCK as u128) > left {
                bail!(
                    if self.encrypt {
                        CKR_DATA_LEN_RANGE
                    } else {
                        CKR_ENCRYPTED_DATA_LEN_RANGE
                    },
                    "AES-CTR counter would wrap"
                );
            }
        }
        let mut out = Vec::with_capacity(data.len() + BLOCK);
        ctx_update(&mut self.ctx, data, &mut out)?;
        self.done = total;
        Ok(out)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.update(data)
    }
    fn update_len(&self, in_len: usize) -> usize {
        in_len
    }
    fn finish_len(&self) -> usize {
        0
    }
    fn oneshot_len(&self, in_len: usize) -> usize {
        in_len
    }
}

fn gcm_ctx(key: &[u8], p: &GcmParams, encrypt: bool) -> Result<CipherCtx> {
    let cipher = aes_cipher(AesMode::Gcm, key.len())?;
    let mut ctx = CipherCtx::new()?;
    if encrypt {
        ctx.encrypt_init(Some(cipher), None, None)?;
    } else {
        ctx.decrypt_init(Some(cipher), None, None)?;
    }
    if p.iv.len() != 12 {
        ctx.set_iv_length(p.iv.len())
            .map_err(|_| Error::new(CKR_MECHANISM_PARAM_INVALID, "GCM IV length unsupported"))?;
    }
    if encrypt {
        ctx.encrypt_init(None, Some(key), Some(&p.iv))?;
    } else {
        ctx.decrypt_init(None, Some(key), Some(&p.iv))?;
    }
    for chunk in p.aad.chunks(CHUNK) {
        ctx.cipher_update(chunk, None)?;
    }
    Ok(ctx)
}

/// AES-GCM encryption: ciphertext streams out, the tag comes at finish.
struct GcmEncrypt {
    ctx: CipherCtx,
    tag_len: usize,
}

impl GcmEncrypt {
    fn finish_into(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let mut scratch = [0u8; BLOCK];
        self.ctx.cipher_final(&mut scratch)?;
        if self.tag_len > 0 {
            let base = out.len();
            out.resize(base + self.tag_len, 0);
            self.ctx.tag(&mut out[base..])?;
        }
        Ok(())
    }
}

impl CipherOp for GcmEncrypt {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() + BLOCK);
        ctx_update(&mut self.ctx, data, &mut out)?;
        Ok(out)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.tag_len);
        self.finish_into(&mut out)?;
        Ok(out)
    }
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() + BLOCK + self.tag_len);
        ctx_update(&mut self.ctx, data, &mut out)?;
        self.finish_into(&mut out)?;
        Ok(out)
    }
    fn update_len(&self, in_len: usize) -> usize {
        in_len
    }
    fn finish_len(&self) -> usize {
        self.tag_len
    }
    fn oneshot_len(&self, in_len: usize) -> usize {
        in_len.saturating_add(self.tag_len)
    }
}

/// AES-GCM decryption: the tag is the last bytes of the input, so nothing is released
/// before finish has seen and checked it.
struct GcmDecrypt {
    ctx: CipherCtx,
    tag_len: usize,
    buf: Vec<u8>,
}

impl GcmDecrypt {
    fn open(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if data.len() < self.tag_len {
            bail!(
                CKR_ENCRYPTED_DATA_LEN_RANGE,
                "GCM input shorter than its {}-byte tag",
                self.tag_len
            );
        }
        let (ct, tag) = data.split_at(data.len() - self.tag_len);
        let mut out = Zeroizing::new(Vec::with_capacity(ct.len() + BLOCK));
        ctx_update(&mut self.ctx, ct, &mut out)?;
        if self.tag_len > 0 {
            self.ctx.set_tag(tag)?;
            let mut scratch = [0u8; BLOCK];
            if self.ctx.cipher_final(&mut scratch).is_err() {
                bail!(CKR_ENCRYPTED_DATA_INVALID, "GCM tag mismatch");
            }
        }
        Ok(std::mem::take(&mut *out))
    }
}

impl CipherOp for GcmDecrypt {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = std::mem::take(&mut self.buf);
        self.open(&data)
    }
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.open(data)
        } else {
            self.update(data)?;
            self.finish()
        }
    }
    fn update_len(&self, _in_len: usize) -> usize {
        0
    }
    fn finish_len(&self) -> usize {
        self.buf.len().saturating_sub(self.tag_len)
    }
    fn oneshot_len(&self, in_len: usize) -> usize {
        in_len.saturating_sub(self.tag_len)
    }
}

/// How an RSA cipher mechanism pads.
#[derive(Clone)]
enum RsaPad {
    Pkcs1,
    Oaep(OaepParams),
    Raw,
}

impl RsaPad {
    /// Longest plaintext for a k-byte modulus.
    fn max_input(&self, k: usize) -> usize {
        match self {
            RsaPad::Pkcs1 => k.saturating_sub(11),
            RsaPad::Oaep(p) => k.saturating_sub(2 * p.hash.digest_len() + 2),
            RsaPad::Raw => k,
        }
    }
}

fn set_oaep<T>(ctx: &mut PkeyCtx<T>, p: &OaepParams) -> Result<()> {
    ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
    ctx.set_rsa_oaep_md(crate::hash::md(p.hash))?;
    ctx.set_rsa_mgf1_md(crate::hash::md(p.mgf))?;
    if !p.label.is_empty() {
        ctx.set_rsa_oaep_label(&p.label)?;
    }
    Ok(())
}

/// RSA public-key encryption of one block. Single-part in PKCS#11; multi-part calls are
/// buffered up to the block limit.
struct RsaEncrypt {
    key: RsaPublicKey,
    pad: RsaPad,
    buf: Vec<u8>,
}

impl RsaEncrypt {
    fn seal(&self, data: &[u8]) -> Result<Vec<u8>> {
        let k = self.key.modulus_len();
        if data.len() > self.pad.max_input(k) {
            bail!(
                CKR_DATA_LEN_RANGE,
                "RSA plaintext of {} bytes exceeds {}",
                data.len(),
                self.pad.max_input(k)
            );
        }
        let mut out = vec![0u8; k];
        match &self.pad {
            RsaPad::Pkcs1 => {
                self.key
                    .rsa
                    .public_encrypt(data, &mut out, Padding::PKCS1)?;
            }
            RsaPad::Raw => {
                let mut block = vec![0u8; k];
                block[k - data.len()..].copy_from_slice(data);
                if self
                    .key
                    .rsa
                    .public_encrypt(&block, &mut out, Padding::NONE)
                    .is_err()
                {
                    bail!(CKR_DATA_INVALID, "raw RSA input not below the modulus");
                }
            }
            RsaPad::Oaep(p) => {
                let mut ctx = PkeyCtx::new(&self.key.pkey)?;
                ctx.encrypt_init()?;
                set_oaep(&mut ctx, p)?;
                out.clear();
                ctx.encrypt_to_vec(data, &mut out)?;
            }
        }
        Ok(out)
    }
}

impl CipherOp for RsaEncrypt {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.len().saturating_add(data.len()) > self.pad.max_input(self.key.modulus_len()) {
            bail!(CKR_DATA_LEN_RANGE, "RSA plaintext too long");
        }
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = std::mem::take(&mut self.buf);
        self.seal(&data)
    }
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.seal(data)
        } else {
            self.update(data)?;
            self.finish()
        }
    }
    fn update_len(&self, _in_len: usize) -> usize {
        0
    }
    fn finish_len(&self) -> usize {
        self.key.modulus_len()
    }
    fn oneshot_len(&self, _in_len: usize) -> usize {
        self.key.modulus_len()
    }
}

/// RSA private-key decryption of one block.
struct RsaDecrypt {
    key: RsaPrivateKey,
    pad: RsaPad,
    buf: Vec<u8>,
}

impl RsaDecrypt {
    fn open(&self, data: &[u8]) -> Result<Vec<u8>> {
        let k = self.key.public.modulus_len();
        if data.len() != k {
            bail!(
                CKR_ENCRYPTED_DATA_LEN_RANGE,
                "RSA ciphertext must be {k} bytes, got {}",
                data.len()
            );
        }
        let mut out = Zeroizing::new(vec![0u8; k]);
        let res = match &self.pad {
            RsaPad::Pkcs1 => self.key.rsa.private_decrypt(data, &mut out, Padding::PKCS1),
            RsaPad::Raw => self.key.rsa.private_decrypt(data, &mut out, Padding::NONE),
            RsaPad::Oaep(p) => {
                let mut ctx = PkeyCtx::new(&self.key.pkey)?;
                ctx.decrypt_init()?;
                set_oaep(&mut ctx, p)?;
                ctx.decrypt(data, Some(&mut out))
            }
        };
        match res {
            Ok(n) => {
                out.truncate(n);
                Ok(std::mem::take(&mut *out))
            }
            Err(_) => bail!(CKR_ENCRYPTED_DATA_INVALID, "RSA decryption failed"),
        }
    }
}

impl CipherOp for RsaDecrypt {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.len().saturating_add(data.len()) > self.key.public.modulus_len() {
            bail!(CKR_ENCRYPTED_DATA_LEN_RANGE, "RSA ciphertext too long");
        }
        self.buf.extend_from_slice(data);
        Ok(Vec::new())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let data = std::mem::take(&mut self.buf);
        self.open(&data)
    }
    fn oneshot(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.open(data)
        } else {
            self.update(data)?;
            self.finish()
        }
    }
    fn update_len(&self, _in_len: usize) -> usize {
        0
    }
    fn finish_len(&self) -> usize {
        self.key.public.modulus_len()
    }
    fn oneshot_len(&self, _in_len: usize) -> usize {
        self.key.public.modulus_len()
    }
}

fn rsa_pad(m: &Mechanism) -> Option<RsaPad> {
    match m {
        Mechanism::RsaPkcs => Some(RsaPad::Pkcs1),
        Mechanism::RsaX509 => Some(RsaPad::Raw),
        Mechanism::RsaPkcsOaep(p) => Some(RsaPad::Oaep(p.clone())),
        _ => None,
    }
}

fn clone_public(k: &RsaPublicKey) -> RsaPublicKey {
    RsaPublicKey {
        rsa: k.rsa.clone(),
        pkey: k.pkey.clone(),
    }
}

fn cipher_init(m: &Mechanism, key: &KeyMaterial, encrypt: bool) -> Result<Box<dyn CipherOp>> {
    let mismatch = || {
        Error::new(
            CKR_KEY_TYPE_INCONSISTENT,
            format!("key type does not fit mechanism {:#x}", m.mech_type()),
        )
    };
    if let Some(pad) = rsa_pad(m) {
        if encrypt {
            let k = key.rsa_public().ok_or_else(mismatch)?;
            check_rsa_bits(k.bits())?;
            if pad.max_input(k.modulus_len()) == 0 {
                bail!(CKR_KEY_SIZE_RANGE, "modulus too small for this OAEP hash");
            }
            return Ok(Box::new(RsaEncrypt {
                key: clone_public(k),
                pad,
                buf: Vec::new(),
            }));
        }
        let KeyMaterial::RsaPrivate(k) = key else {
            return Err(mismatch());
        };
        check_rsa_bits(k.public.bits())?;
        return Ok(Box::new(RsaDecrypt {
            key: RsaPrivateKey {
                rsa: k.rsa.clone(),
                pkey: k.pkey.clone(),
                public: clone_public(&k.public),
            },
            pad,
            buf: Vec::new(),
        }));
    }
    let des = match m {
        Mechanism::DesEcb => Some((true, None, false)),
        Mechanism::DesCbc(iv) => Some((true, Some(iv), false)),
        Mechanism::DesCbcPad(iv) => Some((true, Some(iv), true)),
        Mechanism::Des3Ecb => Some((false, None, false)),
        Mechanism::Des3Cbc(iv) => Some((false, Some(iv), false)),
        Mechanism::Des3CbcPad(iv) => Some((false, Some(iv), true)),
        _ => None,
    };
    if let Some((single, iv, pad)) = des {
        let k = des_ede3_key(key, single).ok_or_else(mismatch)?;
        let iv = iv.map(|v| &v[..]);
        return Ok(Box::new(BlockOp::des(iv.is_some(), &k, iv, pad, encrypt)?));
    }
    let is_aes = matches!(
        m,
        Mechanism::AesGcm(_)
            | Mechanism::AesCbcPad(_)
            | Mechanism::AesCbc(_)
            | Mechanism::AesEcb
            | Mechanism::AesCtr(_)
            | Mechanism::AesKeyWrap(_)
            | Mechanism::AesKeyWrapKwp(_)
    );
    if !is_aes {
        bail!(
            CKR_MECHANISM_INVALID,
            "{:#x} cannot encrypt or decrypt",
            m.mech_type()
        );
    }
    let k = aes_key(key).ok_or_else(mismatch)?;
    Ok(match m {
        Mechanism::AesGcm(p) => {
            let ctx = gcm_ctx(k, p, encrypt)?;
            if encrypt {
                Box::new(GcmEncrypt {
                    ctx,
                    tag_len: p.tag_len,
                })
            } else {
                Box::new(GcmDecrypt {
                    ctx,
                    tag_len: p.tag_len,
                    buf: Vec::new(),
                })
            }
        }
        Mechanism::AesCbcPad(iv) => {
            Box::new(BlockOp::new(AesMode::Cbc, k, Some(iv), true, encrypt)?)
        }
        Mechanism::AesCbc(iv) => Box::new(BlockOp::new(AesMode::Cbc, k, Some(iv), false, encrypt)?),
        Mechanism::AesEcb => Box::new(BlockOp::new(AesMode::Ecb, k, None, false, encrypt)?),
        Mechanism::AesCtr(p) => Box::new(CtrOp::new(k, p, encrypt)?),
        Mechanism::AesKeyWrap(_) | Mechanism::AesKeyWrapKwp(_) => {
            Box::new(crate::keywrap::KeyWrapOp::new(m, k, encrypt)?)
        }
        _ => return Err(Error::general("unreachable AES mechanism")),
    })
}

/// Starts an encryption.
pub fn encrypt_init(m: &Mechanism, key: &Arc<KeyMaterial>) -> Result<Box<dyn CipherOp>> {
    cipher_init(m, key, true)
}

/// Starts a decryption.
pub fn decrypt_init(m: &Mechanism, key: &Arc<KeyMaterial>) -> Result<Box<dyn CipherOp>> {
    cipher_init(m, key, false)
}

/// AES-CMAC (NIST SP 800-38B) over a CBC context with a zero IV: the CBC chain is the MAC
/// state, and the last block gets the K1/K2 subkey before it goes through.
pub(crate) struct Cmac {
    ctx: CipherCtx,
    k1: Zeroizing<[u8; BLOCK]>,
    k2: Zeroizing<[u8; BLOCK]>,
    /// The last 1..=16 bytes seen, held back because the final block is treated specially.
    pending: Vec<u8>,
}

fn dbl(b: &[u8; BLOCK]) -> [u8; BLOCK] {
    let v = u128::from_be_bytes(*b);
    let r = (v << 1) ^ if v >> 127 == 1 { 0x87 } else { 0 };
    r.to_be_bytes()
}

impl Cmac {
    pub(crate) fn new(key: &[u8]) -> Result<Cmac> {
        let mut ecb = new_ctx(AesMode::Ecb, key, None, true)?;
        ecb.set_padding(false);
        let mut l = Zeroizing::new(Vec::with_capacity(2 * BLOCK));
        ctx_update(&mut ecb, &[0u8; BLOCK], &mut l)?;
        let mut lb = Zeroizing::new([0u8; BLOCK]);
        lb.copy_from_slice(
            l.get(..BLOCK)
                .ok_or_else(|| Error::general("short AES output"))?,
        );
        let k1 = Zeroizing::new(dbl(&lb));
        let k2 = Zeroizing::new(dbl(&k1));
        let mut ctx = new_ctx(AesMode::Cbc, key, Some(&[0u8; BLOCK]), true)?;
        ctx.set_padding(false);
        Ok(Cmac {
            ctx,
            k1,
            k2,
            pending: Vec::with_capacity(BLOCK),
        })
    }

    pub(crate) fn update(&mut self, data: &[u8]) -> Result<()> {
        let total = self.pending.len().saturating_add(data.len());
        if total <= BLOCK {
            self.pending.extend_from_slice(data);
            return Ok(());
        }
        // Process every whole block except the last (which may be full).
        let keep = total - (total - 1) / BLOCK * BLOCK;
        let (now, later) = data.split_at(data.len() - keep.min(data.len()));
        let mut sink = Vec::new();
        let mut head = std::mem::take(&mut self.pending);
        head.extend_from_slice(now);
        for chunk in head.chunks(CHUNK) {
            sink.clear();
            ctx_update(&mut self.ctx, chunk, &mut sink)?;
        }
        self.pending.extend_from_slice(later);
        Ok(())
    }

    pub(crate) fn finish(&mut self) -> Result<Vec<u8>> {
        let mut last = [0u8; BLOCK];
        let n = self.pending.len();
        last[..n].copy_from_slice(&self.pending);
        let sub = if n == BLOCK {
            &self.k1
        } else {
            last[n] = 0x80;
            &self.k2
        };
        for (a, b) in last.iter_mut().zip(sub.iter()) {
            *a ^= b;
        }
        let mut out = Vec::with_capacity(2 * BLOCK);
        ctx_update(&mut self.ctx, &last, &mut out)?;
        self.pending.clear();
        out.truncate(BLOCK);
        Ok(out)
    }
}
