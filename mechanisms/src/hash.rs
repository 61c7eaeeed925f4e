//! Hashes and HMAC over OpenSSL `EVP_MD`s fetched once per process.

use crate::mech::HashAlg;
use crate::Result;
use openssl::md::{Md, MdRef};
use openssl::md_ctx::MdCtx;
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// The `EVP_MD` of `alg`. Fetched once: the implicit fetch inside every `EVP_DigestInit`
/// with a legacy `EVP_MD` costs a provider lookup per operation.
pub(crate) fn md(alg: HashAlg) -> &'static MdRef {
    static MDS: OnceLock<[Option<Md>; 5]> = OnceLock::new();
    let mds = MDS.get_or_init(|| {
        ["SHA1", "SHA2-224", "SHA2-256", "SHA2-384", "SHA2-512"]
            .map(|name| Md::fetch(None, name, None).ok())
    });
    let i = alg as usize;
    match &mds[i] {
        Some(m) => m,
        None => match alg {
            HashAlg::Sha1 => Md::sha1(),
            HashAlg::Sha224 => Md::sha224(),
            HashAlg::Sha256 => Md::sha256(),
            HashAlg::Sha384 => Md::sha384(),
            HashAlg::Sha512 => Md::sha512(),
        },
    }
}

/// A running hash.
pub(crate) struct Hash {
    ctx: MdCtx,
    alg: HashAlg,
}

impl Hash {
    pub(crate) fn new(alg: HashAlg) -> Result<Hash> {
        let mut ctx = MdCtx::new()?;
        ctx.digest_init(md(alg))?;
        Ok(Hash { ctx, alg })
    }
    pub(crate) fn update(&mut self, data: &[u8]) -> Result<()> {
        Ok(self.ctx.digest_update(data)?)
    }
    /// Finishes and re-arms the context, so a finished hash can be reused.
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.alg.digest_len()];
        let n = self.ctx.digest_final(&mut out)?;
        out.truncate(n);
        self.ctx.digest_init(md(self.alg))?;
        Ok(out)
    }
    pub(crate) fn alg(&self) -> HashAlg {
        self.alg
    }
}

/// One-shot hash of `data`.
pub(crate) fn digest(alg: HashAlg, data: &[u8]) -> Result<Vec<u8>> {
    let mut h = Hash::new(alg)?;
    h.update(data)?;
    h.finish()
}

/// HMAC (RFC 2104) built from two hash contexts; avoids OpenSSL's per-call MAC fetch and
/// keeps no borrowed key object.
pub(crate) struct Hmac {
    inner: Hash,
    /// K0 ⊕ ipad, kept to re-arm the inner hash after finish.
    ipad: Zeroizing<Vec<u8>>,
    /// K0 ⊕ opad, kept for the outer hash at finish.
    opad: Zeroizing<Vec<u8>>,
}

impl Hmac {
    pub(crate) fn new(alg: HashAlg, key: &[u8]) -> Result<Hmac> {
        let block = alg.block_len();
        let mut k0 = Zeroizing::new(vec![0u8; block]);
        if key.len() > block {
            let kh = Zeroizing::new(digest(alg, key)?);
            k0[..kh.len()].copy_from_slice(&kh);
        } else {
            k0[..key.len()].copy_from_slice(key);
        }
        let ipad: Zeroizing<Vec<u8>> = Zeroizing::new(k0.iter().map(|b| b ^ 0x36).collect());
        let opad: Zeroizing<Vec<u8>> = Zeroizing::new(k0.iter().map(|b| b ^ 0x5c).collect());
        let mut inner = Hash::new(alg)?;
        inner.update(&ipad)?;
        Ok(Hmac { inner, ipad, opad })
    }
    pub(crate) fn update(&mut self, data: &[u8]) -> Result<()> {
        self.inner.update(data)
    }
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>> {
        let ih = self.inner.finish()?;
        let mut outer = Hash::new(self.inner.alg())?;
        outer.update(&self.opad)?;
        outer.update(&ih)?;
        // Re-arm so the object stays usable after finish.
        self.inner.update(&self.ipad)?;
        outer.finish()
    }
    pub(crate) fn len(&self) -> usize {
        self.inner.alg().digest_len()
    }
}

/// Constant-time comparison that first rejects a length mismatch (which is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}
