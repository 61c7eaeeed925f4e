//! Message-based encryption (PKCS#11 3.0): `C_Message*`.

use super::*;

impl Module {
    /// `C_MessageEncryptInit` / `C_MessageDecryptInit` (AES-GCM).
    pub fn message_init(
        &self,
        h: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        key: CK_OBJECT_HANDLE,
        encrypt: bool,
    ) -> Result<()> {
        let (s, t) = self.session(h)?;
        let mut ops = s.ops();
        if ops.message.is_some() {
            bail!(CKR_OPERATION_ACTIVE);
        }
        if mech != CKM_AES_GCM {
            bail!(
                CKR_MECHANISM_INVALID,
                "message-based encryption is offered for CKM_AES_GCM only"
            );
        }
        let usage = if encrypt {
            Usage::Encrypt
        } else {
            Usage::Decrypt
        };
        let obj = self.key_object(t, key, usage, mech)?;
        let gcm = GcmMessages::new(&obj.key()?)?;
        ops.message = Some(MessageOp {
            gcm,
            encrypt,
            stream: None,
        });
        Ok(())
    }

    pub(super) fn message_op(ops: &mut Ops, encrypt: bool) -> Result<&mut MessageOp> {
        match ops.message.as_mut() {
            Some(m) if m.encrypt == encrypt => Ok(m),
            _ => Err(Error::rv(CKR_OPERATION_NOT_INITIALIZED)),
        }
    }

    /// `C_EncryptMessage` / `C_DecryptMessage`: one whole message. GCM output is as long
    /// as its input, so buffer sizes are settled before any work is done.
    #[allow(clippy::too_many_arguments)]
    pub fn message_one(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        p: &MessageParams,
        iv: &mut [u8],
        tag: &mut [u8],
        aad: &[u8],
        data: &[u8],
        out: Out<'_>,
    ) -> Result<Produced> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        let m = Self::message_op(&mut ops, encrypt)?;
        if m.stream.is_some() {
            bail!(
                CKR_OPERATION_ACTIVE,
                "a message is being processed in parts"
            );
        }
        let buf = match out {
            Out::Query => return Ok(Produced::Len(data.len())),
            Out::Buf(b) if b.len() < data.len() => return Ok(Produced::TooSmall(data.len())),
            Out::Buf(b) => b,
        };
        let result = if encrypt {
            Zeroizing::new(m.gcm.seal(p, iv, tag, aad, data)?)
        } else {
            m.gcm.open(p, iv, tag, aad, data)?
        };
        buf[..result.len()].copy_from_slice(&result);
        Ok(Produced::Written(result.len()))
    }

    /// `C_EncryptMessageBegin` / `C_DecryptMessageBegin`.
    pub fn message_begin(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        p: &MessageParams,
        iv: &mut [u8],
        aad: &[u8],
    ) -> Result<()> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        let m = Self::message_op(&mut ops, encrypt)?;
        if m.stream.is_some() {
            bail!(CKR_OPERATION_ACTIVE, "the previous message has not ended");
        }
        m.stream = Some(m.gcm.begin(p, iv, aad, encrypt)?);
        Ok(())
    }

    /// `C_EncryptMessageNext` / `C_DecryptMessageNext`; `end` finishes the message.
    #[allow(clippy::too_many_arguments)]
    pub fn message_next(
        &self,
        h: CK_SESSION_HANDLE,
        encrypt: bool,
        p: &MessageParams,
        tag: &mut [u8],
        data: &[u8],
        out: Out<'_>,
        end: bool,
    ) -> Result<Produced> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        let m = Self::message_op(&mut ops, encrypt)?;
        let stream = m
            .stream
            .as_mut()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED, "no message begun"))?;
        let buf = match out {
            Out::Query => return Ok(Produced::Len(data.len())),
            Out::Buf(b) if b.len() < data.len() => return Ok(Produced::TooSmall(data.len())),
            Out::Buf(b) => b,
        };
        let mut result = Zeroizing::new(stream.next(data)?);
        if end {
            let tail = stream.end(p, tag);
            m.stream = None;
            result.extend(tail?);
        }
        buf[..result.len()].copy_from_slice(&result);
        Ok(Produced::Written(result.len()))
    }

    /// `C_MessageEncryptFinal` / `C_MessageDecryptFinal`.
    pub fn message_final(&self, h: CK_SESSION_HANDLE, encrypt: bool) -> Result<()> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        Self::message_op(&mut ops, encrypt)?;
        ops.message = None;
        Ok(())
    }
}
