//! Objects: `C_CreateObject` and the find operation.

use super::*;

impl Module {
    /// `C_CreateObject`.
    pub fn create_object(
        &self,
        h: CK_SESSION_HANDLE,
        template: &Attributes,
    ) -> Result<CK_OBJECT_HANDLE> {
        let (s, t) = self.session(h)?;
        t.create(
            template,
            &Attributes::new(),
            Origin::Created,
            s.handle,
            s.rw,
        )
    }

    /// `C_FindObjectsInit`.
    pub fn find_init(&self, h: CK_SESSION_HANDLE, template: &Attributes) -> Result<()> {
        let (s, t) = self.session(h)?;
        let mut ops = s.ops();
        if ops.find.is_some() {
            bail!(CKR_OPERATION_ACTIVE);
        }
        ops.find = Some((t.find(template)?, 0));
        Ok(())
    }

    /// `C_FindObjects`: up to `max` more handles.
    pub fn find_next(&self, h: CK_SESSION_HANDLE, out: &mut [CK_OBJECT_HANDLE]) -> Result<usize> {
        let (s, _) = self.session(h)?;
        let mut ops = s.ops();
        let (found, pos) = ops
            .find
            .as_mut()
            .ok_or_else(|| Error::rv(CKR_OPERATION_NOT_INITIALIZED))?;
        let n = out.len().min(found.len() - *pos);
        out[..n].copy_from_slice(&found[*pos..*pos + n]);
        *pos += n;
        Ok(n)
    }

    /// `C_FindObjectsFinal`.
    pub fn find_final(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let (s, _) = self.session(h)?;
        let found = s.ops().find.take();
        found
            .map(|_| ())
            .ok_or_else(|| Error::rv(CKR_OPERATION_NOT_INITIALIZED))
    }
}
