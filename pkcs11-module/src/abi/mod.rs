//! The C ABI: every `C_*` entry point, the 2.40 function list and the 3.0 interfaces.
//!
//! Each export is a short shell: it turns raw pointers into Rust values through the
//! helpers below and the parsers of `mechanism.rs` and `template.rs`, calls the module,
//! and maps the result to a `CK_RV`. Panics are caught here and never cross the boundary.
//! The PKCS#11 specification is the safety contract of every exported function, so they
//! carry no `# Safety` section of their own.
#![allow(clippy::missing_safety_doc, non_snake_case)]

mod crypto;
mod general;
mod keys;
mod lists;
mod mechanism;
mod message;
mod object;
mod session;
mod template;
mod unsupported;

pub use crypto::*;
pub use general::*;
pub use keys::*;
pub use lists::*;
pub use message::*;
pub use object::*;
pub use session::*;
pub use unsupported::*;

pub(crate) use mechanism::mechanism;
pub(crate) use template::template;

use crate::module::{Module, Out, Produced};
use crate::{Error, Result};
use arc_swap::ArcSwapOption;
use cryptoki_sys::*;
use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The initialised module, if any (with the PID that initialised it). Read by every
/// call without writing shared memory; replaced by `C_Initialize` / `C_Finalize`, which
/// `INSTALL` serialises.
static STATE: ArcSwapOption<Module> = ArcSwapOption::const_empty();
static INSTALL: Mutex<()> = Mutex::new(());

/// The module for the duration of one call.
pub(crate) struct ModuleRef(arc_swap::Guard<Option<Arc<Module>>>);

impl std::ops::Deref for ModuleRef {
    type Target = Module;
    fn deref(&self) -> &Module {
        // `module()` only builds a ModuleRef around a present module.
        self.0.as_deref().expect("ModuleRef holds a module")
    }
}

/// This process's ID, cached: glibc does not cache `getpid`, and every call checks it.
/// A fork handler clears it in the child, which then looks it up again.
static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_pid_in_child() {
    PID.store(0, Ordering::Relaxed);
}

pub(crate) fn this_pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            let p = std::process::id();
            PID.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which is
        // async-signal-safe as a fork child handler must be.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_pid_in_child)) };
        if rc != 0 {
            tracing::warn!("pthread_atfork failed ({rc}): forks are detected by getpid only");
        }
    });
}

/// The module of this process, or `CKR_CRYPTOKI_NOT_INITIALIZED`.
pub(crate) fn module() -> Result<ModuleRef> {
    let g = STATE.load();
    match &*g {
        Some(m) if m.pid == this_pid() => Ok(ModuleRef(g)),
        _ => Err(Error::rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

/// The label of the token a failed call was about, for its log line (none for calls
/// about no token, such as `C_Initialize`).
fn token_label() -> Option<String> {
    match (crate::module::current_slot(), module()) {
        (Some(slot), Ok(m)) => m.slot(slot).ok().map(|s| s.label.clone()),
        _ => None,
    }
}

/// Runs one exported call: catches panics, logs failures, returns the `CK_RV`.
pub(crate) fn guard(name: &'static str, f: impl FnOnce() -> Result<CK_RV>) -> CK_RV {
    crate::module::clear_current_slot();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(rv)) => rv,
        Ok(Err(e)) => {
            let label = token_label();
            let token = label.as_deref();
            match e.rv {
                CKR_GENERAL_ERROR | CKR_DEVICE_ERROR | CKR_FUNCTION_FAILED | CKR_DEVICE_MEMORY => {
                    tracing::warn!(
                        token,
                        function = name,
                        rv = crate::rv_name(e.rv),
                        "{}",
                        e.msg
                    )
                }
                _ => tracing::info!(
                    token,
                    function = name,
                    rv = crate::rv_name(e.rv),
                    "{}",
                    e.msg
                ),
            }
            e.rv
        }
        Err(_) => {
            tracing::error!(function = name, "internal panic caught at the C boundary");
            CKR_GENERAL_ERROR
        }
    }
}

/// Argument errors of a call on an active operation end that operation, like any other
/// failure but `CKR_BUFFER_TOO_SMALL`.
pub(crate) fn args_or_end<T>(
    m: &Module,
    h: CK_SESSION_HANDLE,
    kind: crate::module::OpKind,
    r: Result<T>,
) -> Result<T> {
    if r.is_err() {
        m.abort(h, kind);
    }
    r
}

/// A caller's input buffer; NULL is allowed only with length 0.
///
/// # Safety
/// `p` must point to `len` readable bytes that stay valid for `'a`.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::new(
            CKR_ARGUMENTS_BAD,
            "NULL buffer with a non-zero length",
        ));
    }
    // SAFETY: non-null, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len as usize) })
}

/// An input that may share memory with the output (in-place encryption is allowed):
/// copied when the two overlap, so no `&` and `&mut` alias.
///
/// # Safety
/// As for [`bytes`], and `out`/`out_len` as the caller passed them.
pub(crate) unsafe fn input<'a>(
    p: *const u8,
    len: CK_ULONG,
    out: *const u8,
    out_len: *const CK_ULONG,
) -> Result<Cow<'a, [u8]>> {
    // SAFETY: forwarded contract.
    let data = unsafe { bytes(p, len)? };
    if out.is_null() || out_len.is_null() || data.is_empty() {
        return Ok(Cow::Borrowed(data));
    }
    // SAFETY: out_len is non-null and points to the caller's length.
    let olen = unsafe { *out_len } as usize;
    let (a, b) = (p as usize, out as usize);
    let overlap = a < b.saturating_add(olen) && b < a.saturating_add(data.len());
    Ok(if overlap {
        Cow::Owned(data.to_vec())
    } else {
        Cow::Borrowed(data)
    })
}

/// The output side of a producing call.
///
/// # Safety
/// `len` must be NULL or point to a `CK_ULONG`; `p` NULL or `*len` writable bytes.
pub(crate) unsafe fn out<'a>(p: *mut u8, len: *mut CK_ULONG) -> Result<Out<'a>> {
    if len.is_null() {
        return Err(Error::new(CKR_ARGUMENTS_BAD, "NULL length pointer"));
    }
    if p.is_null() {
        return Ok(Out::Query);
    }
    // SAFETY: both non-null; the caller promises `*len` writable bytes at `p`.
    Ok(Out::Buf(unsafe {
        std::slice::from_raw_parts_mut(p, *len as usize)
    }))
}

/// Writes the produced length and picks `CKR_OK` or `CKR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `len` was checked non-null by [`out`].
pub(crate) unsafe fn produced(len: *mut CK_ULONG, p: Produced) -> Result<CK_RV> {
    let (n, rv) = match p {
        Produced::Len(n) | Produced::Written(n) => (n, CKR_OK),
        Produced::TooSmall(n) => (n, CKR_BUFFER_TOO_SMALL),
    };
    // SAFETY: checked non-null by `out`.
    unsafe { *len = n as CK_ULONG };
    Ok(rv)
}

/// Writes one value through a caller's pointer.
///
/// # Safety
/// `p` must be NULL or valid for a write of `T`.
pub(crate) unsafe fn put<T>(p: *mut T, v: T) -> Result<()> {
    if p.is_null() {
        return Err(Error::new(CKR_ARGUMENTS_BAD, "NULL output pointer"));
    }
    // SAFETY: non-null and writable per the caller.
    unsafe { p.write(v) };
    Ok(())
}

/// Copies `s` into a blank-padded fixed-size field, cutting at a character boundary.
pub(crate) fn pad(dst: &mut [CK_UTF8CHAR], s: &str) {
    dst.fill(b' ');
    let mut end = s.len().min(dst.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    dst[..end].copy_from_slice(&s.as_bytes()[..end]);
}

/// Fills a caller's array per the spec's two-call convention (NULL list → count).
///
/// # Safety
/// `count` NULL or valid; `list` NULL or `*count` writable elements.
pub(crate) unsafe fn fill_list<T: Copy>(
    list: *mut T,
    count: *mut CK_ULONG,
    items: &[T],
) -> Result<CK_RV> {
    if count.is_null() {
        return Err(Error::new(CKR_ARGUMENTS_BAD, "NULL count pointer"));
    }
    // SAFETY: non-null per the check above.
    let cap = unsafe { *count } as usize;
    // SAFETY: non-null per the check above.
    unsafe { *count = items.len() as CK_ULONG };
    if list.is_null() {
        return Ok(CKR_OK);
    }
    if cap < items.len() {
        return Ok(CKR_BUFFER_TOO_SMALL);
    }
    // SAFETY: the caller promises `cap >= items.len()` writable elements.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), list, items.len()) };
    Ok(CKR_OK)
}

pub(crate) fn install(m: Module) -> Result<()> {
    watch_forks();
    let _serial = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = STATE.load_full() {
        if old.pid == this_pid() {
            return Err(Error::rv(CKR_CRYPTOKI_ALREADY_INITIALIZED));
        }
        // Inherited across fork(): its locks and handles belong to the parent. Leak it
        // rather than run destructors on state another process owns.
        std::mem::forget(old);
        if let Some(inherited) = STATE.swap(None) {
            std::mem::forget(inherited);
        }
    }
    STATE.store(Some(Arc::new(m)));
    Ok(())
}

pub(crate) fn uninstall() -> Result<()> {
    let _serial = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    match STATE.swap(None) {
        Some(m) if m.pid == this_pid() => Ok(()),
        Some(m) => {
            std::mem::forget(m);
            Err(Error::rv(CKR_CRYPTOKI_NOT_INITIALIZED))
        }
        None => Err(Error::rv(CKR_CRYPTOKI_NOT_INITIALIZED)),
    }
}

/// Whether this process already initialised the module (a forked child has not).
pub(crate) fn initialised_here() -> bool {
    module().is_ok()
}
