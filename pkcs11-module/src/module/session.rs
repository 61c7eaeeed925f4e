//! Sessions: `C_OpenSession`, `C_CloseSession`, login and session state.

use super::*;

impl Module {
    /// `C_OpenSession`.
    pub fn open_session(&self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        let tok = self.token(slot)?;
        if flags & CKF_SERIAL_SESSION == 0 {
            bail!(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        let rw = flags & CKF_RW_SESSION != 0;
        let h = self
            .handles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            as CK_SESSION_HANDLE;
        tok.open_session(h, rw)?;
        let s = Arc::new(Session {
            handle: h,
            slot: slot as usize,
            rw,
            ops: Mutex::default(),
        });
        self.sessions.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(h, s.clone());
            m
        });
        Ok(h)
    }

    /// `C_CloseSession`.
    pub fn close_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let mut removed = None;
        self.sessions.rcu(|m| {
            let mut m = HashMap::clone(m);
            removed = m.remove(&h);
            m
        });
        let s = removed.ok_or_else(|| Error::rv(CKR_SESSION_HANDLE_INVALID))?;
        if let Ok(t) = self.slots[s.slot].token() {
            t.close_session(h);
        }
        Ok(())
    }

    /// `C_CloseAllSessions`.
    pub fn close_all(&self, slot: CK_SLOT_ID) -> Result<()> {
        let idx = self.token(slot)?.slot_id as usize;
        let mine: Vec<CK_SESSION_HANDLE> = self
            .sessions
            .load()
            .values()
            .filter(|s| s.slot == idx)
            .map(|s| s.handle)
            .collect();
        for h in mine {
            let _ = self.close_session(h);
        }
        Ok(())
    }

    /// `C_Login`; a context-specific login unlocks the session's pending operation.
    pub fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let (s, t) = self.session(h)?;
        if user == CKU_CONTEXT_SPECIFIC {
            let ops = s.ops();
            if ops.sign.is_none() && ops.decrypt.is_none() {
                bail!(
                    CKR_OPERATION_NOT_INITIALIZED,
                    "a context-specific login belongs to an operation"
                );
            }
        }
        t.login(user, pin)?;
        if user == CKU_CONTEXT_SPECIFIC {
            let mut ops = s.ops();
            ops.sign_auth = false;
            ops.decrypt_auth = false;
        }
        Ok(())
    }

    /// `CKS_*` state of a session.
    pub fn session_state(&self, h: CK_SESSION_HANDLE) -> Result<(CK_SLOT_ID, CK_STATE, CK_FLAGS)> {
        let (s, t) = self.session(h)?;
        let state = match (t.user(), s.rw) {
            (Some(CKU_SO), _) => CKS_RW_SO_FUNCTIONS,
            (Some(_), true) => CKS_RW_USER_FUNCTIONS,
            (Some(_), false) => CKS_RO_USER_FUNCTIONS,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (None, false) => CKS_RO_PUBLIC_SESSION,
        };
        let flags = CKF_SERIAL_SESSION | if s.rw { CKF_RW_SESSION } else { 0 };
        Ok((t.slot_id, state, flags))
    }
}
