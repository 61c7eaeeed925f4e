//! PKCS#11 3.0 message-based AES-GCM: one key initialised once, then many messages,
//! each with its own IV, associated data and tag (`C_MessageEncryptInit` …).

use crate::aes::{aes_cipher, AesMode};
use crate::key::KeyMaterial;
use crate::{bail, Error, Result};
use cryptoki_sys::*;
use openssl::cipher_ctx::CipherCtx;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The per-message parameters of `CK_GCM_MESSAGE_PARAMS`, minus the buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageParams {
    /// Leading IV bits the caller fixes when the token generates the rest.
    pub iv_fixed_bits: usize,
    /// `CKG_*`: who makes the IV.
    pub generator: CK_GENERATOR_FUNCTION,
    /// Tag length in bits (a multiple of 8, 8..=128).
    pub tag_bits: usize,
}

/// A message-based AES-GCM context: the key and the IV counter of this operation.
pub struct GcmMessages {
    key: Arc<KeyMaterial>,
    counter: u64,
}

/// One message processed in parts (`C_EncryptMessageBegin` / `Next`).
pub struct GcmStream {
    ctx: CipherCtx,
    encrypt: bool,
}

fn tag_len(p: &MessageParams) -> Result<usize> {
    if p.tag_bits == 0 || p.tag_bits > 128 || p.tag_bits % 8 != 0 {
        bail!(
            CKR_MECHANISM_PARAM_INVALID,
            "GCM tag of {} bits",
            p.tag_bits
        );
    }
    Ok(p.tag_bits / 8)
}

impl GcmMessages {
    /// Starts a message-based operation with an AES key.
    pub fn new(key: &Arc<KeyMaterial>) -> Result<GcmMessages> {
        match key.as_ref() {
            KeyMaterial::Secret(s) if s.key_type() == CKK_AES => {}
            _ => bail!(
                CKR_KEY_TYPE_INCONSISTENT,
                "message-based AES-GCM needs an AES key"
            ),
        }
        Ok(GcmMessages {
            key: key.clone(),
            counter: 0,
        })
    }

    fn key_bytes(&self) -> &[u8] {
        match self.key.as_ref() {
            KeyMaterial::Secret(s) => s.value(),
            _ => &[],
        }
    }

    /// Completes `iv` as the generator asks: random or counter bits after the fixed prefix.
    fn make_iv(&mut self, p: &MessageParams, iv: &mut [u8]) -> Result<()> {
        if iv.is_empty() || iv.len() > 128 {
            bail!(CKR_MECHANISM_PARAM_INVALID, "GCM IV of {} bytes", iv.len());
        }
        if p.generator == CKG_NO_GENERATE {
            return Ok(());
        }
        if p.iv_fixed_bits % 8 != 0 || p.iv_fixed_bits / 8 >= iv.len() {
            bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "{} fixed IV bits in a {}-byte IV",
                p.iv_fixed_bits,
                iv.len()
            );
        }
        let free = &mut iv[p.iv_fixed_bits / 8..];
        match p.generator {
            CKG_GENERATE_RANDOM => crate::random(free)?,
            CKG_GENERATE | CKG_GENERATE_COUNTER => {
                // A per-operation counter in the low-order bytes: never repeats within
                // the 2^64 messages of one initialisation.
                self.counter = self
                    .counter
                    .checked_add(1)
                    .ok_or_else(|| Error::new(CKR_FUNCTION_FAILED, "IV counter exhausted"))?;
                free.fill(0);
                let c = self.counter.to_be_bytes();
                let n = free.len().min(8);
                let at = free.len() - n;
                free[at..].copy_from_slice(&c[8 - n..]);
            }
            g => bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "IV generator {g:#x} is not supported"
            ),
        }
        Ok(())
    }

    fn ctx(&self, encrypt: bool, iv: &[u8], aad: &[u8]) -> Result<CipherCtx> {
        let key = self.key_bytes();
        let mut ctx = CipherCtx::new()?;
        let c = aes_cipher(AesMode::Gcm, key.len())?;
        if encrypt {
            ctx.encrypt_init(Some(c), None, None)?;
        } else {
            ctx.decrypt_init(Some(c), None, None)?;
        }
        ctx.set_iv_length(iv.len())?;
        if encrypt {
            ctx.encrypt_init(None, Some(key), Some(iv))?;
        } else {
            ctx.decrypt_init(None, Some(key), Some(iv))?;
        }
        if !aad.is_empty() {
            ctx.cipher_update(aad, None)?;
        }
        Ok(ctx)
    }

    /// Encrypts one whole message: fills a generated IV, returns the ciphertext and
    /// writes the tag.
    pub fn seal(
        &mut self,
        p: &MessageParams,
        iv: &mut [u8],
        tag: &mut [u8],
        aad: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let mut s = self.begin(p, iv, aad, true)?;
        let mut out = s.next(data)?;
        out.extend(s.end(p, tag)?);
        Ok(out)
    }

    /// Decrypts one whole message and checks its tag.
    pub fn open(
        &mut self,
        p: &MessageParams,
        iv: &mut [u8],
        tag: &mut [u8],
        aad: &[u8],
        data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut s = self.begin(p, iv, aad, false)?;
        let mut out = Zeroizing::new(s.next(data)?);
        out.extend(s.end(p, tag)?);
        Ok(out)
    }

    /// Starts one message to be processed in parts.
    pub fn begin(
        &mut self,
        p: &MessageParams,
        iv: &mut [u8],
        aad: &[u8],
        encrypt: bool,
    ) -> Result<GcmStream> {
        tag_len(p)?;
        if encrypt {
            self.make_iv(p, iv)?;
        } else if iv.is_empty() || iv.len() > 128 {
            bail!(CKR_MECHANISM_PARAM_INVALID, "GCM IV of {} bytes", iv.len());
        }
        Ok(GcmStream {
            ctx: self.ctx(encrypt, iv, aad)?,
            encrypt,
        })
    }
}

impl GcmStream {
    /// Processes a part; GCM output is as long as its input.
    pub fn next(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = vec![0u8; data.len() + 16];
        let n = self.ctx.cipher_update(data, Some(&mut out))?;
        out.truncate(n);
        Ok(out)
    }

    /// Ends the message: writes the tag (encrypt) or checks it (decrypt).
    pub fn end(&mut self, p: &MessageParams, tag: &mut [u8]) -> Result<Vec<u8>> {
        let n = tag_len(p)?;
        if tag.len() < n {
            bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "tag buffer of {} bytes for a {}-byte tag",
                tag.len(),
                n
            );
        }
        let mut out = vec![0u8; 16];
        if self.encrypt {
            let k = self.ctx.cipher_final(&mut out)?;
            out.truncate(k);
            self.ctx.tag(&mut tag[..n])?;
        } else {
            self.ctx.set_tag(&tag[..n])?;
            let k = self
                .ctx
                .cipher_final(&mut out)
                .map_err(|_| Error::new(CKR_ENCRYPTED_DATA_INVALID, "GCM tag mismatch"))?;
            out.truncate(k);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Attributes;

    fn key(v: &[u8]) -> Arc<KeyMaterial> {
        let mut a = Attributes::new();
        a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        a.set_ulong(CKA_KEY_TYPE, CKK_AES);
        a.set(CKA_VALUE, v.to_vec());
        Arc::new(KeyMaterial::from_attributes(&a).unwrap())
    }

    const P: MessageParams = MessageParams {
        iv_fixed_bits: 0,
        generator: CKG_NO_GENERATE,
        tag_bits: 128,
    };

    #[test]
    fn nist_test_case_3_in_message_form() {
        // GCM spec test case 3 (AES-128, 96-bit IV, no AAD).
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let k = key(&hex("feffe9928665731c6d6a8f9467308308"));
        let mut iv = hex("cafebabefacedbaddecaf888");
        let pt = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
        let mut tag = [0u8; 16];
        let mut m = GcmMessages::new(&k).unwrap();
        let ct = m.seal(&P, &mut iv, &mut tag, &[], &pt).unwrap();
        assert_eq!(ct, hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"));
        assert_eq!(tag.to_vec(), hex("4d5c2af327cd64a62cf35abd2ba6fab4"));
        let back = m.open(&P, &mut iv, &mut tag, &[], &ct).unwrap();
        assert_eq!(back.as_slice(), pt.as_slice());
        tag[0] ^= 1;
        assert_eq!(
            m.open(&P, &mut iv, &mut tag, &[], &ct).unwrap_err().rv,
            CKR_ENCRYPTED_DATA_INVALID
        );
    }

    #[test]
    fn generated_ivs_keep_the_fixed_part_and_never_repeat() {
        let k = key(&[7u8; 32]);
        let mut m = GcmMessages::new(&k).unwrap();
        let p = MessageParams {
            iv_fixed_bits: 32,
            generator: CKG_GENERATE_COUNTER,
            tag_bits: 96,
        };
        let (mut a, mut b) = ([0xAAu8; 12], [0xAAu8; 12]);
        let mut tag = [0u8; 12];
        m.seal(&p, &mut a, &mut tag, b"x", b"hello").unwrap();
        m.seal(&p, &mut b, &mut tag, b"x", b"hello").unwrap();
        assert_eq!(&a[..4], &[0xAA; 4]);
        assert_ne!(a, b);
        let bad = MessageParams { tag_bits: 100, ..p };
        assert_eq!(
            m.seal(&bad, &mut a, &mut tag, b"", b"").unwrap_err().rv,
            CKR_MECHANISM_PARAM_INVALID
        );
    }

    #[test]
    fn parts_equal_the_whole() {
        let k = key(&[9u8; 16]);
        let mut m = GcmMessages::new(&k).unwrap();
        let (mut iv, mut t1, mut t2) = ([1u8; 12], [0u8; 16], [0u8; 16]);
        let whole = m
            .seal(&P, &mut iv, &mut t1, b"aad", b"0123456789abcdef0123")
            .unwrap();
        let mut s = m.begin(&P, &mut iv, b"aad", true).unwrap();
        let mut parts = s.next(b"0123456789").unwrap();
        parts.extend(s.next(b"abcdef0123").unwrap());
        parts.extend(s.end(&P, &mut t2).unwrap());
        assert_eq!(whole, parts);
        assert_eq!(t1, t2);
    }

    #[test]
    fn non_aes_keys_are_refused() {
        let mut a = Attributes::new();
        a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        a.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        a.set(CKA_VALUE, vec![1u8; 32]);
        let k = Arc::new(KeyMaterial::from_attributes(&a).unwrap());
        assert_eq!(
            GcmMessages::new(&k).err().unwrap().rv,
            CKR_KEY_TYPE_INCONSISTENT
        );
    }
}
