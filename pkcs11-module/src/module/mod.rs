//! The module's global state: tokens (one per slot), sessions, and the operations a
//! session runs. Everything here is safe Rust; the ABI layer turns pointers into the
//! arguments these functions take.

use crate::config;
use crate::object::Origin;
use crate::service::{RemoteCipher, RemoteSign, RemoteVerify};
use crate::token::Token;
use crate::{bail, Attributes, Error, Result};
use arc_swap::ArcSwap;
use cryptoki_sys::*;
use hsmux_backends::{HashAlg, KeyKind, KeySpec, KeyUsage};
use hsmux_mech::{
    CipherOp, DigestOp, GcmMessages, GcmStream, KeyMaterial, Mechanism, MessageParams, SignOp,
    VerifyOp,
};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

mod cipher;
mod digest;
mod keys;
mod message;
mod object;
mod session;
mod sign;

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
    /// One slot per `[[token]]`, in config order.
    pub slots: Vec<Slot>,
    /// Read on every call, written on open/close: a lookup writes nothing shared.
    sessions: ArcSwap<HashMap<CK_SESSION_HANDLE, Arc<Session>>>,
    handles: Arc<AtomicU64>,
}

/// How long a slot whose backend could not open waits before a call tries it again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// One configured slot, and its token once the backend has opened. A `[[token]]` whose
/// backend cannot open (library missing, vendor token not found, secret unset, a mistake
/// in its table) leaves only its own slot without a token; every other slot works, and
/// the backend is tried again on use, so one that comes back is picked up without a
/// restart.
pub struct Slot {
    /// Slot ID (config order).
    pub id: CK_SLOT_ID,
    /// The `label` of its `[[token]]`.
    pub label: String,
    /// The `backend = "…"` name.
    pub backend: String,
    config: config::TokenConfig,
    token: std::sync::OnceLock<Arc<Token>>,
    down: Mutex<Down>,
    /// The token appeared after `C_Initialize`: a slot event not yet reported.
    arrived: std::sync::atomic::AtomicBool,
    handles: Arc<AtomicU64>,
}

/// Why a slot has no token, and when its backend is tried again (`None`: not before the
/// configuration changes).
struct Down {
    error: String,
    retry_at: Option<std::time::Instant>,
}

impl Slot {
    fn new(id: CK_SLOT_ID, config: config::TokenConfig, handles: Arc<AtomicU64>) -> Slot {
        let slot = Slot {
            id,
            label: config.label.clone(),
            backend: config.backend.clone(),
            config,
            token: std::sync::OnceLock::new(),
            down: Mutex::new(Down {
                error: String::new(),
                retry_at: Some(std::time::Instant::now()),
            }),
            arrived: std::sync::atomic::AtomicBool::new(false),
            handles,
        };
        slot.try_open();
        slot
    }

    /// The token, opening the backend again when it was down and the wait is over.
    pub fn token(&self) -> Result<&Arc<Token>> {
        if let Some(t) = self.token.get() {
            return Ok(t);
        }
        self.try_open();
        self.token.get().ok_or_else(|| {
            let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
            Error::new(
                CKR_TOKEN_NOT_PRESENT,
                format!("{}; its slot has no token", down.error),
            )
        })
    }

    /// Whether the slot has its token (trying the backend again when due).
    pub fn present(&self) -> bool {
        self.token().is_ok()
    }

    /// Why the slot has no token, if it has none.
    pub fn problem(&self) -> Option<String> {
        if self.present() {
            return None;
        }
        Some(
            self.down
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .error
                .clone(),
        )
    }

    fn try_open(&self) {
        // Held across the open (a library load or a directory read, never the network)
        // so that two threads never open the same backend twice.
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let due = down
            .retry_at
            .is_some_and(|at| std::time::Instant::now() >= at);
        if self.token.get().is_some() || !due {
            return;
        }
        match self.config.open() {
            Ok(opened) => {
                let t = Token::open(self.id, &self.label, opened, self.handles.clone());
                let _ = self.token.set(Arc::new(t));
                if !down.error.is_empty() {
                    tracing::info!(token = %self.label, "token \"{}\" is present now", self.label);
                    self.arrived
                        .store(true, std::sync::atomic::Ordering::Release);
                }
                down.error.clear();
            }
            Err(e) => {
                if e.msg != down.error {
                    tracing::warn!(
                        token = %self.label,
                        "slot {} has no token: {}; the other slots work{}",
                        self.id,
                        e.msg,
                        if self.config.problem.is_some() {
                            ""
                        } else {
                            ", and hsmux tries the backend again on use"
                        }
                    );
                }
                down.error = e.msg;
                down.retry_at = if self.config.problem.is_some() {
                    None
                } else {
                    Some(std::time::Instant::now() + RETRY_AFTER)
                };
            }
        }
    }
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
        if cfg.token.is_empty() {
            tracing::warn!(
                ?source,
                "the configuration has no [[token]]: hsmux shows no slot"
            );
        }
        let slots = cfg
            .token
            .into_iter()
            .enumerate()
            .map(|(i, t)| Slot::new(i as CK_SLOT_ID, t, handles.clone()))
            .collect();
        Ok(Module {
            pid: std::process::id(),
            slots,
            sessions: ArcSwap::default(),
            handles,
        })
    }

    /// A slot whose token appeared since the last call (`C_WaitForSlotEvent`), trying
    /// the backends of slots without a token on the way.
    pub fn slot_event(&self) -> Option<CK_SLOT_ID> {
        self.slots.iter().find_map(|s| {
            (s.present() && s.arrived.swap(false, std::sync::atomic::Ordering::AcqRel))
                .then_some(s.id)
        })
    }

    /// The slot of a slot ID.
    pub fn slot(&self, slot: CK_SLOT_ID) -> Result<&Slot> {
        CURRENT_SLOT.with(|c| c.set(Some(slot)));
        self.slots
            .get(slot as usize)
            .ok_or_else(|| Error::rv(CKR_SLOT_ID_INVALID))
    }

    /// The token of a slot ID (`CKR_TOKEN_NOT_PRESENT` while its backend cannot open).
    pub fn token(&self, slot: CK_SLOT_ID) -> Result<&Arc<Token>> {
        self.slot(slot)?.token()
    }

    /// A session and its token.
    pub fn session(&self, h: CK_SESSION_HANDLE) -> Result<(Arc<Session>, &Arc<Token>)> {
        let s = self
            .sessions
            .load()
            .get(&h)
            .cloned()
            .ok_or_else(|| Error::rv(CKR_SESSION_HANDLE_INVALID))?;
        CURRENT_SLOT.with(|c| c.set(Some(s.slot as CK_SLOT_ID)));
        // A session exists only on a slot whose token opened, and a token never closes.
        let t = self.slots[s.slot].token()?;
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
