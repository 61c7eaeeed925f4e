//! Encryption and decryption: `C_Encrypt*` and `C_Decrypt*`.

use super::*;

impl Module {
    /// `C_EncryptInit` / `C_DecryptInit`.
    pub fn cipher_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        key: CK_OBJECT_HANDLE,
        encrypt: bool,
    ) -> Result<()> {
        let (s, t) = self.session(h)?;
        let mut ops = s.ops();
        let slot = if encrypt {
            &mut ops.encrypt
        } else {
            &mut ops.decrypt
        };
        if slot.is_some() {
            bail!(CKR_OPERATION_ACTIVE);
        }
        let usage = if encrypt {
            Usage::Encrypt
        } else {
            Usage::Decrypt
        };
        let obj = self.key_object(t, key, usage, mech.mech_type())?;
        let auth = obj.flag(CKA_ALWAYS_AUTHENTICATE);
        let op: Box<dyn CipherOp> = match (&obj.remote, t.service()) {
            (Some(remote), Some(b)) if obj.class() != CKO_PUBLIC_KEY => {
                let public = obj.key().ok();
                Box::new(RemoteCipher::new(
                    b,
                    remote,
                    mech,
                    encrypt,
                    public.as_deref(),
                )?)
            }
            _ if encrypt => hsmux_mech::encrypt_init(mech, &obj.key()?)?,
            _ => hsmux_mech::decrypt_init(mech, &obj.key()?)?,
        };
        *slot = Some(Pending::new(op));
        if !encrypt {
            ops.decrypt_auth = auth;
        }
        Ok(())
    }

    pub(super) fn cipher_slot(
        ops: &mut Ops,
        encrypt: bool,
    ) -> &mut Option<Pending<Box<dyn CipherOp>>> {
        if encrypt {
            &mut ops.encrypt
        } else {
            &mut ops.decrypt
        }
    }

    /// `C_Encrypt` / `C_Decrypt`.
    pub fn cipher(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        data: &[u8],
        out: Out<'_>,
    ) -> Result<Produced> {
        self.cipher_call(h, encrypt, Call::Single, data, out)
    }

    /// `C_EncryptUpdate` / `C_DecryptUpdate`.
    pub fn cipher_update(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        data: &[u8],
        out: Out<'_>,
    ) -> Result<Produced> {
        self.cipher_call(h, encrypt, Call::Update, data, out)
    }

    /// `C_EncryptFinal` / `C_DecryptFinal`.
    pub fn cipher_final(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        out: Out<'_>,
    ) -> Result<Produced> {
        self.cipher_call(h, encrypt, Call::Final, &[], out)
    }

    pub(super) fn cipher_call(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        call: Call,
        data: &[u8],
        out: Out<'_>,
    ) -> Result<Produced> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        if !encrypt {
            ops.require_auth(false)?;
        }
        let slot = Self::cipher_slot(&mut ops, encrypt);
        let len = data.len();
        match call {
            Call::Single => deliver(
                slot,
                out,
                call,
                |op| op.oneshot_len(len),
                |op| op.oneshot(data),
            ),
            Call::Update => deliver(
                slot,
                out,
                call,
                |op| op.update_len(len),
                |op| op.update(data),
            ),
            Call::Final => deliver(slot, out, call, |op| op.finish_len(), |op| op.finish()),
        }
    }
}
