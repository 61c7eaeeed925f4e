//! The module's global state: tokens (one per slot), sessions, and the operations a
//! session runs. Everything here is safe Rust; the ABI layer turns pointers into the
//! arguments these functions take.

use crate::config;
use crate::object::Origin;
use crate::remote::{RemoteCipher, RemoteSign, RemoteVerify};
use crate::token::Token;
use crate::{bail, Attributes, Error, Result};
use arc_swap::ArcSwap;
use cryptoki_sys::*;
use hsmux_backends::{Hash, KeyKind, KeySpec, KeyUsage};
use hsmux_mech::{
    CipherOp, DigestOp, GcmMessages, GcmStream, KeyMaterial, Mechanism, MessageParams, SignOp,
    VerifyOp,
};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

thread_local! {
    /// The slot the current call resolved, so its failure can be logged with its token.
    static CURRENT_SLOT: std::cell::Cell<Option<CK_SLOT_ID>> = const { std::cell::Cell::new(None) };
}

/// The slot the running call on this thread is about, if it got that far.
pub fn current_slot() -> Option<CK_SLOT_ID> {
    CURRENT_SLOT.with(|c| c.get())
}

/// Forgets the slot of the previous call on this thread.
pub fn clear_current_slot() {
    CURRENT_SLOT.with(|c| c.set(None));
}

/// Where the output of a producing call goes.
pub enum Out<'a> {
    /// The caller passed a NULL buffer: it asks for the length only.
    Query,
    /// The caller's buffer.
    Buf(&'a mut [u8]),
}

/// What a producing call did; the ABI writes the length and picks the `CK_RV`.
#[derive(Debug, PartialEq, Eq)]
pub enum Produced {
    /// Length only (a NULL buffer); the operation goes on.
    Len(usize),
    /// Output written.
    Written(usize),
    /// The buffer is too small for this many bytes; the operation goes on.
    TooSmall(usize),
}

/// An operation with output held back after a `CKR_BUFFER_TOO_SMALL`, so the retry
/// returns the same bytes without redoing (or re-randomising) the work.
pub struct Pending<T> {
    op: T,
    out: Option<Zeroizing<Vec<u8>>>,
    mode: Option<Call>,
}

impl<T> Pending<T> {
    fn new(op: T) -> Self {
        Pending {
            op,
            out: None,
            mode: None,
        }
    }
}

/// Which kind of call continues an operation: once an operation has been used in
/// single-part or in multi-part form, the other form is refused (`CKR_OPERATION_ACTIVE`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Call {
    /// `C_Encrypt`, `C_Sign`, `C_Digest`, `C_Verify`.
    Single,
    /// `C_*Update`.
    Update,
    /// `C_*Final`.
    Final,
}

impl Call {
    fn multi(self) -> bool {
        self != Call::Single
    }
}

/// Enforces one form per operation; a mixed call ends the operation.
fn check_form<T>(slot: &mut Option<Pending<T>>, call: Call) -> Result<&mut Pending<T>> {
    let mixed = match slot.as_ref() {
        None => bail!(CKR_OPERATION_NOT_INITIALIZED),
        Some(p) => p.mode.is_some_and(|m| m.multi() != call.multi()),
    };
    if mixed {
        *slot = None;
        bail!(
            CKR_OPERATION_ACTIVE,
            "single-part and multi-part calls cannot be mixed in one operation"
        );
    }
    slot.as_mut()
        .ok_or_else(|| Error::rv(CKR_OPERATION_NOT_INITIALIZED))
}

/// The one place that implements PKCS#11's output-buffer convention.
fn deliver<T>(
    slot: &mut Option<Pending<T>>,
    out: Out<'_>,
    call: Call,
    hint: impl FnOnce(&T) -> usize,
    compute: impl FnOnce(&mut T) -> Result<Vec<u8>>,
) -> Result<Produced> {
    deliver_with(slot, out, call, true, hint, compute)
}

/// [`deliver`], choosing whether a call that produced no output (a length query or
/// `CKR_BUFFER_TOO_SMALL`) already commits the operation to its single- or multi-part form.
fn deliver_with<T>(
    slot: &mut Option<Pending<T>>,
    out: Out<'_>,
    call: Call,
    commit_without_output: bool,
    hint: impl FnOnce(&T) -> usize,
    compute: impl FnOnce(&mut T) -> Result<Vec<u8>>,
) -> Result<Produced> {
    let ends = call != Call::Update;
    let p = check_form(slot, call)?;
    let buf = match out {
        Out::Query => {
            if commit_without_output {
                p.mode = Some(call);
            }
            return Ok(Produced::Len(
                p.out.as_ref().map_or_else(|| hint(&p.op), |v| v.len()),
            ));
        }
        Out::Buf(b) => b,
    };
    let data = match p.out.take() {
        Some(d) => d,
        None => match compute(&mut p.op) {
            Ok(d) => Zeroizing::new(d),
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        },
    };
    if buf.len() < data.len() {
        let n = data.len();
        p.out = Some(data);
        if commit_without_output {
            p.mode = Some(call);
        }
        return Ok(Produced::TooSmall(n));
    }
    buf[..data.len()].copy_from_slice(&data);
    p.mode = Some(call);
    if ends {
        *slot = None;
    }
    Ok(Produced::Written(data.len()))
}

/// Runs a step of an operation that produces nothing; any error ends the operation, and
/// so does the end of a single-part call or a final.
fn step<T, R>(
    slot: &mut Option<Pending<T>>,
    call: Call,
    f: impl FnOnce(&mut T) -> Result<R>,
) -> Result<R> {
    let p = check_form(slot, call)?;
    p.mode = Some(call);
    let r = f(&mut p.op);
    if r.is_err() || call != Call::Update {
        *slot = None;
    }
    r
}

/// Active operations of one session.
#[derive(Default)]
pub struct Ops {
    find: Option<(Vec<CK_OBJECT_HANDLE>, usize)>,
    sign: Option<Pending<Box<dyn SignOp>>>,
    verify: Option<Pending<Box<dyn VerifyOp>>>,
    encrypt: Option<Pending<Box<dyn CipherOp>>>,
    decrypt: Option<Pending<Box<dyn CipherOp>>>,
    digest: Option<Pending<Box<dyn DigestOp>>>,
    message: Option<MessageOp>,
    /// The key of the active sign/decrypt has `CKA_ALWAYS_AUTHENTICATE` and no
    /// `C_Login(CKU_CONTEXT_SPECIFIC)` has been made for this operation yet.
    sign_auth: bool,
    decrypt_auth: bool,
}

impl Ops {
    /// Refuses, and ends, a sign/decrypt whose key still waits for its per-operation login.
    fn require_auth(&mut self, sign: bool) -> Result<()> {
        let pending = if sign {
            self.sign_auth && self.sign.is_some()
        } else {
            self.decrypt_auth && self.decrypt.is_some()
        };
        if pending {
            if sign {
                self.sign = None;
            } else {
                self.decrypt = None;
            }
            bail!(
                CKR_USER_NOT_LOGGED_IN,
                "the key has CKA_ALWAYS_AUTHENTICATE: C_Login(CKU_CONTEXT_SPECIFIC) first"
            );
        }
        Ok(())
    }
}

/// A message-based (PKCS#11 3.0) AES-GCM operation.
struct MessageOp {
    gcm: GcmMessages,
    encrypt: bool,
    /// The message being processed in parts, if any.
    stream: Option<GcmStream>,
}

/// The kinds of operation a session runs, for ending one on a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Sign.
    Sign,
    /// Verify.
    Verify,
    /// Encrypt.
    Encrypt,
    /// Decrypt.
    Decrypt,
    /// Digest.
    Digest,
}

/// One session.
pub struct Session {
    /// Its handle.
    pub handle: CK_SESSION_HANDLE,
    /// Index of its token in [`Module::tokens`].
    pub slot: usize,
    /// Opened with `CKF_RW_SESSION`.
    pub rw: bool,
    ops: Mutex<Ops>,
}

impl Session {
    fn ops(&self) -> MutexGuard<'_, Ops> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The state between `C_Initialize` and `C_Finalize`.
pub struct Module {
    /// The process that initialised it (a forked child must initialise anew).
    pub pid: u32,
    /// One token per slot, in config order.
    pub tokens: Vec<Arc<Token>>,
    /// Read on every call, written on open/close: a lookup writes nothing shared.
    sessions: ArcSwap<HashMap<CK_SESSION_HANDLE, Arc<Session>>>,
    handles: Arc<AtomicU64>,
}

/// What a key is used for, with the attribute that permits it.
#[derive(Clone, Copy)]
pub enum Usage {
    /// `CKA_SIGN`.
    Sign,
    /// `CKA_VERIFY`.
    Verify,
    /// `CKA_ENCRYPT`.
    Encrypt,
    /// `CKA_DECRYPT`.
    Decrypt,
    /// `CKA_WRAP`.
    Wrap,
    /// `CKA_UNWRAP`.
    Unwrap,
    /// `CKA_DERIVE`.
    Derive,
}

impl Module {
    /// Loads the configuration and opens every token. No network I/O.
    pub fn new() -> Result<Module> {
        let (cfg, source) = match config::load() {
            Ok(c) => c,
            Err(e) => {
                // The broken file cannot say where to log: stderr, so the error is seen.
                crate::logging::init(&config::default_config());
                return Err(e);
            }
        };
        crate::logging::init(&cfg);
        tracing::debug!(?source, tokens = cfg.token.len(), "configuration loaded");
        let handles = Arc::new(AtomicU64::new(1));
        let mut tokens = Vec::new();
        for (i, t) in cfg.token.iter().enumerate() {
            let tok = Token::open(i as CK_SLOT_ID, &t.label, t.open()?, handles.clone());
            tokens.push(Arc::new(tok));
        }
        Ok(Module {
            pid: std::process::id(),
            tokens,
            sessions: ArcSwap::default(),
            handles,
        })
    }

    /// The token of a slot ID.
    pub fn token(&self, slot: CK_SLOT_ID) -> Result<&Arc<Token>> {
        CURRENT_SLOT.with(|c| c.set(Some(slot)));
        self.tokens
            .get(slot as usize)
            .ok_or_else(|| Error::rv(CKR_SLOT_ID_INVALID))
    }

    /// A session and its token.
    pub fn session(&self, h: CK_SESSION_HANDLE) -> Result<(Arc<Session>, &Arc<Token>)> {
        let s = self
            .sessions
            .load()
            .get(&h)
            .cloned()
            .ok_or_else(|| Error::rv(CKR_SESSION_HANDLE_INVALID))?;
        let t = &self.tokens[s.slot];
        CURRENT_SLOT.with(|c| c.set(Some(t.slot_id)));
        Ok((s, t))
    }

    /// Ends an operation after a call on it failed before reaching it (bad arguments).
    pub fn abort(&self, h: CK_SESSION_HANDLE, kind: OpKind) {
        if let Ok((s, _)) = self.session(h) {
            let mut ops = s.ops();
            match kind {
                OpKind::Sign => ops.sign = None,
                OpKind::Verify => ops.verify = None,
                OpKind::Encrypt => ops.encrypt = None,
                OpKind::Decrypt => ops.decrypt = None,
                OpKind::Digest => ops.digest = None,
            }
        }
    }

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
        self.tokens[s.slot].close_session(h);
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

    // ---- objects -------------------------------------------------------------------

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

    // ---- keys ----------------------------------------------------------------------

    /// `C_GenerateKey`.
    pub fn generate_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        template: &Attributes,
    ) -> Result<CK_OBJECT_HANDLE> {
        let (s, t) = self.session(h)?;
        let mut tmpl = template.clone();
        default_class(&mut tmpl, CKO_SECRET_KEY)?;
        pre_check(t, &tmpl, s.rw)?;
        if t.service().is_some() && tmpl.bool_or(CKA_TOKEN, false)? {
            let len = tmpl.get_ulong(CKA_VALUE_LEN)?.unwrap_or(0) as usize;
            let kind = match mech {
                Mechanism::AesKeyGen => KeyKind::Aes { len },
                Mechanism::GenericSecretKeyGen if tmpl.bool_or(CKA_SIGN, true)? => {
                    let hash = match len {
                        48 => Hash::Sha384,
                        64 => Hash::Sha512,
                        _ => Hash::Sha256,
                    };
                    KeyKind::Hmac { hash, len }
                }
                Mechanism::GenericSecretKeyGen => KeyKind::GenericSecret { len },
                other => bail!(
                    CKR_MECHANISM_INVALID,
                    "mechanism {:#x} does not generate secret keys",
                    other.mech_type()
                ),
            };
            let spec = key_spec(kind, &Attributes::new(), &tmpl)?;
            let made = t.generate_remote(&spec)?;
            return made
                .iter()
                .find(|(c, _)| *c == CKO_SECRET_KEY)
                .map(|(_, h)| *h)
                .ok_or_else(|| {
                    Error::new(CKR_DEVICE_ERROR, "the service created no secret key object")
                });
        }
        let generated = hsmux_mech::generate_key(mech, &tmpl)?;
        t.create(
            &tmpl,
            &generated,
            Origin::Generated(mech.mech_type()),
            s.handle,
            s.rw,
        )
    }

    /// `C_GenerateKeyPair`: (public, private).
    pub fn generate_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        pub_t: &Attributes,
        priv_t: &Attributes,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let (s, t) = self.session(h)?;
        let (mut pt, mut st) = (pub_t.clone(), priv_t.clone());
        default_class(&mut pt, CKO_PUBLIC_KEY)?;
        default_class(&mut st, CKO_PRIVATE_KEY)?;
        pre_check(t, &pt, s.rw)?;
        pre_check(t, &st, s.rw)?;
        if t.service().is_some() && st.bool_or(CKA_TOKEN, false)? {
            let kind = match mech {
                Mechanism::RsaPkcsKeyPairGen => {
                    let bits = pt.get_ulong(CKA_MODULUS_BITS)?.ok_or_else(|| {
                        Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_MODULUS_BITS is missing")
                    })?;
                    KeyKind::Rsa {
                        bits: bits as usize,
                    }
                }
                Mechanism::EcKeyPairGen => KeyKind::Ec {
                    params: pt
                        .get(CKA_EC_PARAMS)
                        .ok_or_else(|| {
                            Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is missing")
                        })?
                        .to_vec(),
                },
                Mechanism::EcEdwardsKeyPairGen => KeyKind::Ed25519,
                other => bail!(
                    CKR_MECHANISM_INVALID,
                    "mechanism {:#x} does not generate key pairs",
                    other.mech_type()
                ),
            };
            let spec = key_spec(kind, &pt, &st)?;
            let made = t.generate_remote(&spec)?;
            let find = |class| made.iter().find(|(c, _)| *c == class).map(|(_, h)| *h);
            return match (find(CKO_PUBLIC_KEY), find(CKO_PRIVATE_KEY)) {
                (Some(p), Some(k)) => Ok((p, k)),
                _ => Err(Error::new(
                    CKR_DEVICE_ERROR,
                    "the service did not return both halves of the new key",
                )),
            };
        }
        let (gp, gs) = hsmux_mech::generate_key_pair(mech, &pt, &st)?;
        // Both halves share one CKA_ID so clients can pair them.
        let id = match (pt.get(CKA_ID), st.get(CKA_ID)) {
            (Some(a), _) if !a.is_empty() => a.to_vec(),
            (_, Some(b)) if !b.is_empty() => b.to_vec(),
            _ => {
                let public = gp
                    .get(CKA_EC_POINT)
                    .or(gp.get(CKA_MODULUS))
                    .unwrap_or_default();
                openssl::sha::sha1(public).to_vec()
            }
        };
        pt.set_default(CKA_ID, id.clone());
        st.set_default(CKA_ID, id);
        let origin = Origin::Generated(mech.mech_type());
        // Build both before storing either, so a template error stores nothing.
        let pa = crate::object::build(&pt, &gp, origin)?;
        let sa = crate::object::build(&st, &gs, origin)?;
        let hp = t.insert(pa, s.handle, s.rw)?;
        match t.insert(sa, s.handle, s.rw) {
            Ok(hs) => Ok((hp, hs)),
            Err(e) => {
                let _ = t.destroy(hp, s.rw);
                Err(e)
            }
        }
    }

    /// A key object's parsed key, after the PKCS#11 usage checks; with whether it
    /// needs a context-specific login per operation.
    fn usable_key(
        &self,
        t: &Token,
        key: CK_OBJECT_HANDLE,
        usage: Usage,
        mech: &Mechanism,
    ) -> Result<(Arc<KeyMaterial>, bool)> {
        let obj = self.key_object(t, key, usage, mech.mech_type())?;
        Ok((obj.key()?, obj.flag(CKA_ALWAYS_AUTHENTICATE)))
    }

    /// A key object after the PKCS#11 usage checks.
    fn key_object(
        &self,
        t: &Token,
        key: CK_OBJECT_HANDLE,
        usage: Usage,
        m: CK_MECHANISM_TYPE,
    ) -> Result<Arc<crate::object::Object>> {
        let invalid = match usage {
            Usage::Wrap => CKR_WRAPPING_KEY_HANDLE_INVALID,
            Usage::Unwrap => CKR_UNWRAPPING_KEY_HANDLE_INVALID,
            _ => CKR_KEY_HANDLE_INVALID,
        };
        let obj = t
            .object(key)
            .map_err(|_| Error::new(invalid, format!("no key {key}")))?;
        let (attr, name) = match usage {
            Usage::Sign => (CKA_SIGN, "CKA_SIGN"),
            Usage::Verify => (CKA_VERIFY, "CKA_VERIFY"),
            Usage::Encrypt => (CKA_ENCRYPT, "CKA_ENCRYPT"),
            Usage::Decrypt => (CKA_DECRYPT, "CKA_DECRYPT"),
            Usage::Wrap => (CKA_WRAP, "CKA_WRAP"),
            Usage::Unwrap => (CKA_UNWRAP, "CKA_UNWRAP"),
            Usage::Derive => (CKA_DERIVE, "CKA_DERIVE"),
        };
        if !matches!(
            obj.class(),
            CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY
        ) {
            bail!(invalid, "object {key} is not a key");
        }
        if !obj.flag(attr) {
            bail!(CKR_KEY_FUNCTION_NOT_PERMITTED, "key {key} has {name}=false");
        }
        if let Some(allowed) = obj.attrs.get(CKA_ALLOWED_MECHANISMS) {
            let ok = allowed.is_empty()
                || allowed
                    .chunks_exact(hsmux_mech::attr::ULONG_LEN)
                    .any(|c| c.try_into().map(CK_ULONG::from_ne_bytes).ok() == Some(m));
            if !ok {
                bail!(
                    CKR_MECHANISM_INVALID,
                    "mechanism {m:#x} is not in the key's CKA_ALLOWED_MECHANISMS"
                );
            }
        }
        Ok(obj)
    }

    /// `C_WrapKey`: the wrapped bytes (computed anew for a length query).
    pub fn wrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
    ) -> Result<Vec<u8>> {
        let (_, t) = self.session(h)?;
        let (wk, _) = self.usable_key(t, wrapping, Usage::Wrap, mech)?;
        let obj = t
            .object(key)
            .map_err(|_| Error::new(CKR_KEY_HANDLE_INVALID, format!("no key {key}")))?;
        if !obj.flag(CKA_EXTRACTABLE) {
            bail!(CKR_KEY_UNEXTRACTABLE, "key {key} has CKA_EXTRACTABLE=false");
        }
        if obj.flag(CKA_WRAP_WITH_TRUSTED) && !t.object(wrapping)?.flag(CKA_TRUSTED) {
            bail!(
                CKR_KEY_NOT_WRAPPABLE,
                "key {key} may only be wrapped by a CKA_TRUSTED key"
            );
        }
        let bytes = match obj.class() {
            CKO_SECRET_KEY => Zeroizing::new(
                obj.attrs
                    .get(CKA_VALUE)
                    .ok_or_else(|| {
                        Error::new(CKR_USER_NOT_LOGGED_IN, "key value sealed until C_Login")
                    })?
                    .to_vec(),
            ),
            CKO_PRIVATE_KEY => obj.key()?.to_pkcs8_der()?,
            _ => bail!(
                CKR_KEY_NOT_WRAPPABLE,
                "only secret and private keys can be wrapped"
            ),
        };
        hsmux_mech::wrap(mech, &wk, &bytes)
    }

    /// `C_UnwrapKey`.
    pub fn unwrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        template: &Attributes,
    ) -> Result<CK_OBJECT_HANDLE> {
        let (s, t) = self.session(h)?;
        let (uk, _) = self.usable_key(t, unwrapping, Usage::Unwrap, mech)?;
        let class = template
            .get_ulong(CKA_CLASS)?
            .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "C_UnwrapKey needs CKA_CLASS"))?;
        pre_check(t, template, s.rw)?;
        let bytes = hsmux_mech::unwrap(mech, &uk, wrapped)?;
        let value = match class {
            CKO_SECRET_KEY => {
                let mut v = Attributes::new();
                v.set(CKA_VALUE, bytes.to_vec());
                v
            }
            CKO_PRIVATE_KEY => {
                hsmux_mech::private_key_attributes_from_pkcs8(&bytes).map_err(|e| {
                    Error::new(
                        CKR_WRAPPED_KEY_INVALID,
                        format!("not a PKCS#8 private key: {}", e.msg),
                    )
                })?
            }
            _ => bail!(
                CKR_TEMPLATE_INCONSISTENT,
                "only secret and private keys can be unwrapped"
            ),
        };
        if let (Some(want), Some(got)) = (
            template.get_ulong(CKA_KEY_TYPE)?,
            value.get_ulong(CKA_KEY_TYPE)?,
        ) {
            if want != got {
                bail!(
                    CKR_TEMPLATE_INCONSISTENT,
                    "wrapped key is of type {got:#x}, template says {want:#x}"
                );
            }
        }
        t.create(template, &value, Origin::Imported, s.handle, s.rw)
    }

    /// `C_DeriveKey` (ECDH).
    pub fn derive_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        base: CK_OBJECT_HANDLE,
        template: &Attributes,
    ) -> Result<CK_OBJECT_HANDLE> {
        let (s, t) = self.session(h)?;
        let base_obj = self.key_object(t, base, Usage::Derive, mech.mech_type())?;
        let bk = base_obj.key()?;
        let mut tmpl = template.clone();
        default_class(&mut tmpl, CKO_SECRET_KEY)?;
        tmpl.set_default(CKA_KEY_TYPE, CKK_GENERIC_SECRET.to_ne_bytes().to_vec());
        // A derived secret named by class and type alone is read back by its creator
        // (Java's ECDH does exactly that): readable unless the template says otherwise.
        tmpl.set_default(CKA_SENSITIVE, [CK_FALSE]);
        tmpl.set_default(CKA_EXTRACTABLE, [CK_TRUE]);
        pre_check(t, &tmpl, s.rw)?;
        let secret = match tmpl.get_ulong(CKA_VALUE_LEN)? {
            Some(len) => hsmux_mech::derive_ecdh_key(mech, &bk, len as usize)?,
            None => hsmux_mech::derive_ecdh(mech, &bk)?,
        };
        tmpl.remove(CKA_VALUE_LEN);
        let mut value = Attributes::new();
        value.set(CKA_VALUE, secret.to_vec());
        let origin = Origin::Derived {
            always_sensitive: base_obj.flag(CKA_ALWAYS_SENSITIVE),
            never_extractable: base_obj.flag(CKA_NEVER_EXTRACTABLE),
        };
        t.create(&tmpl, &value, origin, s.handle, s.rw)
    }

    // ---- sign / verify -------------------------------------------------------------

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

    // ---- encrypt / decrypt ---------------------------------------------------------

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

    fn cipher_slot(ops: &mut Ops, encrypt: bool) -> &mut Option<Pending<Box<dyn CipherOp>>> {
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

    fn cipher_call(
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

    // ---- message-based encryption (3.0) ------------------------------------------

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

    fn message_op(ops: &mut Ops, encrypt: bool) -> Result<&mut MessageOp> {
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

    // ---- digest --------------------------------------------------------------------

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

/// A service key request from PKCS#11 templates (public, private-or-secret).
fn key_spec(kind: KeyKind, public: &Attributes, private: &Attributes) -> Result<KeySpec> {
    let pick = |t| {
        private
            .get(t)
            .filter(|v| !v.is_empty())
            .or_else(|| public.get(t).filter(|v| !v.is_empty()))
    };
    let label = String::from_utf8(pick(CKA_LABEL).unwrap_or_default().to_vec())
        .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_LABEL is not UTF-8"))?;
    let usage = KeyUsage {
        sign: private.bool_or(CKA_SIGN, true)?,
        verify: public.bool_or(CKA_VERIFY, true)? && private.bool_or(CKA_VERIFY, true)?,
        encrypt: public.bool_or(CKA_ENCRYPT, false)? || private.bool_or(CKA_ENCRYPT, false)?,
        decrypt: private.bool_or(CKA_DECRYPT, false)?,
        wrap: public.bool_or(CKA_WRAP, false)? || private.bool_or(CKA_WRAP, false)?,
        unwrap: private.bool_or(CKA_UNWRAP, false)?,
        derive: private.bool_or(CKA_DERIVE, false)?,
    };
    let raw = |a: &Attributes| a.iter().map(|(t, v)| (t, v.to_vec())).collect::<Vec<_>>();
    Ok(KeySpec {
        kind,
        label,
        id: pick(CKA_ID).unwrap_or_default().to_vec(),
        usage,
        extra: (raw(public), raw(private)),
    })
}

fn default_class(t: &mut Attributes, class: CK_OBJECT_CLASS) -> Result<()> {
    match t.get_ulong(CKA_CLASS)? {
        None => t.set_ulong(CKA_CLASS, class),
        Some(c) if c == class => {}
        Some(c) => bail!(
            CKR_TEMPLATE_INCONSISTENT,
            "CKA_CLASS {c:#x} where {class:#x} is generated"
        ),
    }
    Ok(())
}

/// Refuses early what would fail after an expensive key generation.
fn pre_check(t: &Token, tmpl: &Attributes, rw: bool) -> Result<()> {
    crate::object::check_shapes(tmpl)?;
    if tmpl.bool_or(CKA_TOKEN, false)? && !rw {
        bail!(CKR_SESSION_READ_ONLY, "token objects need a R/W session");
    }
    let private_default = matches!(
        tmpl.get_ulong(CKA_CLASS)?,
        Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY)
    );
    if tmpl.bool_or(CKA_PRIVATE, private_default)? && t.user() != Some(CKU_USER) {
        bail!(
            CKR_USER_NOT_LOGGED_IN,
            "private keys need the user logged in"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<u8>);

    #[test]
    fn too_small_keeps_the_result_and_the_operation() {
        let mut slot = Some(Pending::new(Fixed(vec![1, 2, 3, 4])));
        let mut calls = 0;
        let mut run = |slot: &mut Option<Pending<Fixed>>, out: Out<'_>| {
            deliver(
                slot,
                out,
                Call::Single,
                |f| f.0.len(),
                |f| {
                    calls += 1;
                    Ok(f.0.clone())
                },
            )
        };
        assert_eq!(run(&mut slot, Out::Query).unwrap(), Produced::Len(4));
        let mut small = [0u8; 2];
        assert_eq!(
            run(&mut slot, Out::Buf(&mut small)).unwrap(),
            Produced::TooSmall(4)
        );
        assert!(slot.is_some());
        let mut big = [0u8; 8];
        assert_eq!(
            run(&mut slot, Out::Buf(&mut big)).unwrap(),
            Produced::Written(4)
        );
        assert!(slot.is_none());
        assert_eq!(&big[..4], &[1, 2, 3, 4]);
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_failed_step_ends_the_operation() {
        let mut slot = Some(Pending::new(Fixed(vec![])));
        let e = deliver(
            &mut slot,
            Out::Buf(&mut [0u8; 4]),
            Call::Single,
            |_| 0,
            |_| Err(Error::rv(CKR_DATA_LEN_RANGE)),
        );
        assert_eq!(e.unwrap_err().rv, CKR_DATA_LEN_RANGE);
        assert!(slot.is_none());
        let e = deliver(&mut slot, Out::Query, Call::Single, |_| 0, |_| Ok(vec![]));
        assert_eq!(e.unwrap_err().rv, CKR_OPERATION_NOT_INITIALIZED);
    }

    #[test]
    fn a_short_single_part_signature_buffer_leaves_the_form_open() {
        // pkcs11-tool --test-ec: C_Sign with a short buffer, then C_SignFinal collects it.
        let mut slot = Some(Pending::new(Fixed(vec![1, 2, 3])));
        let r = deliver_with(
            &mut slot,
            Out::Buf(&mut [0u8; 1]),
            Call::Single,
            false,
            |_| 3,
            |f| Ok(f.0.clone()),
        );
        assert_eq!(r.unwrap(), Produced::TooSmall(3));
        let mut buf = [0u8; 3];
        let r = deliver(
            &mut slot,
            Out::Buf(&mut buf),
            Call::Final,
            |_| 3,
            |_| Ok(vec![9]),
        );
        assert_eq!(r.unwrap(), Produced::Written(3));
        assert_eq!(
            buf,
            [1, 2, 3],
            "the held-back output is delivered, not recomputed"
        );
    }

    #[test]
    fn single_and_multi_part_calls_do_not_mix() {
        let mut slot = Some(Pending::new(Fixed(vec![1])));
        deliver(
            &mut slot,
            Out::Buf(&mut [0u8; 4]),
            Call::Update,
            |_| 1,
            |f| Ok(f.0.clone()),
        )
        .unwrap();
        let e = deliver(
            &mut slot,
            Out::Query,
            Call::Single,
            |_| 1,
            |f| Ok(f.0.clone()),
        );
        assert_eq!(e.unwrap_err().rv, CKR_OPERATION_ACTIVE);
        assert!(slot.is_none(), "a refused mixed call ends the operation");
        let mut slot = Some(Pending::new(Fixed(vec![1])));
        deliver(
            &mut slot,
            Out::Query,
            Call::Single,
            |_| 1,
            |f| Ok(f.0.clone()),
        )
        .unwrap();
        let e = deliver(
            &mut slot,
            Out::Buf(&mut [0u8; 4]),
            Call::Update,
            |_| 1,
            |f| Ok(f.0.clone()),
        );
        assert_eq!(e.unwrap_err().rv, CKR_OPERATION_ACTIVE);
    }
}
