//! Digests: `C_Digest*`.

use super::*;

impl Module {
    /// `C_DigestInit`.
    pub fn digest_init(&self, h: CK_SESSION_HANDLE, mech: &Mechanism) -> Result<()> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        if ops.digest.is_some() {
            bail!(CKR_OPERATION_ACTIVE);
        }
        ops.digest = Some(Pending::new(hsmux_mech::digest_init(mech)?));
        Ok(())
    }

    /// `C_Digest`.
    pub fn digest(&self, h: CK_SESSION_HANDLE, data: &[u8], out: Out<'_>) -> Result<Produced> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        deliver(
            &mut ops.digest,
            out,
            Call::Single,
            |op| op.len(),
            |op| op.digest(data),
        )
    }

    /// `C_DigestUpdate`.
    pub fn digest_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        step(&mut ops.digest, Call::Update, |op| op.update(data))
    }

    /// `C_DigestKey`: feeds a secret key's value into the digest.
    pub fn digest_key(&self, h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> Result<()> {
        let (s, t) = self.session(h)?;
        let mut ops = s.ops();
        if ops.digest.is_none() {
            bail!(CKR_OPERATION_NOT_INITIALIZED);
        }
        let obj = match t.object(key) {
            Ok(o) => o,
            Err(_) => {
                ops.digest = None;
                bail!(CKR_KEY_HANDLE_INVALID);
            }
        };
        let value = match (obj.class(), obj.attrs.get(CKA_VALUE)) {
            (CKO_SECRET_KEY, Some(v)) => v.to_vec(),
            (CKO_SECRET_KEY, None) => {
                ops.digest = None;
                bail!(CKR_USER_NOT_LOGGED_IN, "key value sealed until C_Login")
            }
            _ => {
                ops.digest = None;
                bail!(CKR_KEY_INDIGESTIBLE, "only secret keys can be digested")
            }
        };
        let value = Zeroizing::new(value);
        step(&mut ops.digest, Call::Update, |op| op.update(&value))
    }

    /// `C_DigestFinal`.
    pub fn digest_final(&self, h: CK_SESSION_HANDLE, out: Out<'_>) -> Result<Produced> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        deliver(
            &mut ops.digest,
            out,
            Call::Final,
            |op| op.len(),
            |op| op.finish(),
        )
    }
}
