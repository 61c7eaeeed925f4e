//! Signatures and MACs: `C_Sign*` and `C_Verify*`.

use super::*;

impl Module {
    /// `C_SignInit`.
    pub fn sign_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let (s, t) = self.session(h)?;
        let mut ops = s.ops();
        if ops.sign.is_some() {
            bail!(CKR_OPERATION_ACTIVE);
        }
        let obj = self.key_object(t, key, Usage::Sign, mech.mech_type())?;
        let op: Box<dyn SignOp> = match (&obj.remote, t.service()) {
            (Some(remote), Some(b)) if obj.class() != CKO_PUBLIC_KEY => {
                let public = obj.key().ok();
                Box::new(RemoteSign::new(b, remote, mech, public.as_deref())?)
            }
            _ => hsmux_mech::sign_init(mech, &obj.key()?)?,
        };
        ops.sign = Some(Pending::new(op));
        ops.sign_auth = obj.flag(CKA_ALWAYS_AUTHENTICATE);
        Ok(())
    }

    /// `C_Sign`.
    pub fn sign(&self, h: CK_SESSION_HANDLE, data: &[u8], out: Out<'_>) -> Result<Produced> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        ops.require_auth(true)?;
        // pkcs11-tool --test-ec calls C_Sign with a short buffer and then collects the
        // signature with C_SignFinal: a signature is committed to a form only once
        // output has been delivered.
        deliver_with(
            &mut ops.sign,
            out,
            Call::Single,
            false,
            |op| op.sig_len(),
            |op| op.sign(data),
        )
    }

    /// `C_SignUpdate`.
    pub fn sign_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        ops.require_auth(true)?;
        step(&mut ops.sign, Call::Update, |op| op.update(data))
    }

    /// `C_SignFinal`.
    pub fn sign_final(&self, h: CK_SESSION_HANDLE, out: Out<'_>) -> Result<Produced> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        ops.require_auth(true)?;
        deliver(
            &mut ops.sign,
            out,
            Call::Final,
            |op| op.sig_len(),
            |op| op.finish(),
        )
    }

    /// `C_VerifyInit`.
    pub fn verify_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        let (s, t) = self.session(h)?;
        let mut ops = s.ops();
        if ops.verify.is_some() {
            bail!(CKR_OPERATION_ACTIVE);
        }
        let obj = self.key_object(t, key, Usage::Verify, mech.mech_type())?;
        ops.verify = Some(Pending::new(match (&obj.remote, t.service()) {
            // A MAC key in the service verifies there; public halves verify here.
            (Some(remote), Some(b)) if obj.class() == CKO_SECRET_KEY => {
                Box::new(RemoteVerify::new(b, remote, mech)?)
            }
            _ => hsmux_mech::verify_init(mech, &obj.key()?)?,
        }));
        Ok(())
    }

    /// `C_Verify`.
    pub fn verify(&self, h: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> Result<()> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        step(&mut ops.verify, Call::Single, |op| op.verify(data, sig))
    }

    /// `C_VerifyUpdate`.
    pub fn verify_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        step(&mut ops.verify, Call::Update, |op| op.update(data))
    }

    /// `C_VerifyFinal`.
    pub fn verify_final(&self, h: CK_SESSION_HANDLE, sig: &[u8]) -> Result<()> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        step(&mut ops.verify, Call::Final, |op| op.finish(sig))
    }
}
