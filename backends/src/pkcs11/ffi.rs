//! The vendor library: loading, process-wide `C_Initialize` bookkeeping, and every call
//! into the vendor's function list. All `unsafe` of the backend lives in this file.
//!
//! A library is loaded once per process and never unloaded: several hsmux tokens may
//! be served by one vendor library (one slot each), the application itself may use the
//! same library directly, and vendor libraries are commonly unsafe to `dlclose` (atexit
//! handlers, threads). `C_Initialize` is called when the first backend of this process
//! opens the library; `C_Finalize` only when the last one goes away and only if our
//! `C_Initialize` is the one that initialized it (so an application that initialized
//! the library itself keeps it). A forked child starts the count afresh and calls
//! `C_Initialize` again, as PKCS#11 requires of a child.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};

use cryptoki_sys::*;

/// A vendor call that did not return `CKR_OK`: its return value and which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VErr {
    pub rv: CK_RV,
    pub func: &'static str,
    /// The operation was initialised on the session before the failure (the session
    /// may hold operation state a misbehaving vendor did not clear).
    pub after_init: bool,
}

pub(crate) type VResult<T> = Result<T, VErr>;

fn verr(rv: CK_RV, func: &'static str) -> VErr {
    VErr {
        rv,
        func,
        after_init: false,
    }
}

/// Fetches an entry of the function list, or fails with `CKR_FUNCTION_NOT_SUPPORTED`
/// when the vendor left it empty.
macro_rules! vfn {
    ($v:expr, $name:ident) => {
        match $v.f.$name {
            Some(f) => f,
            None => return Err(verr(CKR_FUNCTION_NOT_SUPPORTED, stringify!($name))),
        }
    };
}

/// A mechanism and its parameters, borrowing what the parameters point at; the
/// vendor's `CK_MECHANISM` is built from it only for the duration of a call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mech<'a> {
    /// No parameter.
    Plain(CK_MECHANISM_TYPE),
    /// A byte-string parameter (an IV).
    Bytes(CK_MECHANISM_TYPE, &'a [u8]),
    /// `CKM_RSA_PKCS_PSS`.
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: CK_ULONG,
    },
    /// `CKM_RSA_PKCS_OAEP` with a `CKZ_DATA_SPECIFIED` label.
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        label: &'a [u8],
    },
    /// `CKM_AES_GCM`.
    Gcm {
        iv: &'a [u8],
        aad: &'a [u8],
        tag_bits: CK_ULONG,
    },
}

/// A pointer for a read-only input buffer (null when empty).
fn in_ptr<T>(b: &[u8]) -> *mut T {
    if b.is_empty() {
        ptr::null_mut()
    } else {
        b.as_ptr() as *mut T
    }
}

impl Mech<'_> {
    /// Calls `f` with the vendor form of this mechanism; the parameter structure lives
    /// on this stack frame, its pointers into the borrowed buffers.
    fn with_raw<R>(&self, f: impl FnOnce(&mut CK_MECHANISM) -> R) -> R {
        fn raw<P>(m: CK_MECHANISM_TYPE, p: &mut P) -> CK_MECHANISM {
            CK_MECHANISM {
                mechanism: m,
                pParameter: p as *mut P as *mut c_void,
                ulParameterLen: std::mem::size_of::<P>() as CK_ULONG,
            }
        }
        match *self {
            Mech::Plain(m) => f(&mut CK_MECHANISM {
                mechanism: m,
                pParameter: ptr::null_mut(),
                ulParameterLen: 0,
            }),
            Mech::Bytes(m, b) => f(&mut CK_MECHANISM {
                mechanism: m,
                pParameter: in_ptr(b),
                ulParameterLen: b.len() as CK_ULONG,
            }),
            Mech::Pss {
                hash,
                mgf,
                salt_len,
            } => {
                let mut p = CK_RSA_PKCS_PSS_PARAMS {
                    hashAlg: hash,
                    mgf,
                    sLen: salt_len,
                };
                f(&mut raw(CKM_RSA_PKCS_PSS, &mut p))
            }
            Mech::Oaep { hash, mgf, label } => {
                let mut p = CK_RSA_PKCS_OAEP_PARAMS {
                    hashAlg: hash,
                    mgf,
                    source: CKZ_DATA_SPECIFIED,
                    pSourceData: in_ptr(label),
                    ulSourceDataLen: label.len() as CK_ULONG,
                };
                f(&mut raw(CKM_RSA_PKCS_OAEP, &mut p))
            }
            Mech::Gcm { iv, aad, tag_bits } => {
                let mut p = CK_GCM_PARAMS {
                    pIv: in_ptr(iv),
                    ulIvLen: iv.len() as CK_ULONG,
                    ulIvBits: (iv.len() * 8) as CK_ULONG,
                    pAAD: in_ptr(aad),
                    ulAADLen: aad.len() as CK_ULONG,
                    ulTagBits: tag_bits,
                };
                f(&mut raw(CKM_AES_GCM, &mut p))
            }
        }
    }
}

/// Which of the vendor's one-shot operations to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Sign,
    Encrypt,
    Decrypt,
}

/// One loaded vendor library.
pub(crate) struct Vendor {
    /// The path as configured, for messages.
    pub path: PathBuf,
    f: CK_FUNCTION_LIST,
    state: Mutex<InitState>,
    _lib: libloading::Library,
}

struct InitState {
    /// The process that the counts below belong to.
    pid: u32,
    /// Open backends of this process using the library.
    users: usize,
    /// Our `C_Initialize` returned `CKR_OK` (so ours is the `C_Finalize` to call).
    we_initialized: bool,
}

/// Libraries loaded by this process, by canonical path; never removed.
static LOADED: Mutex<Vec<(PathBuf, Arc<Vendor>)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads a blank-padded fixed-size PKCS#11 string.
pub(crate) fn padded_str(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches([' ', '\0'])
        .trim_start()
        .to_string()
}

impl Vendor {
    /// Loads the library (or reuses this process's copy) and makes sure the vendor is
    /// initialised for this process; counts one more user. Errors name the library.
    pub fn acquire(path: &Path) -> Result<Arc<Vendor>, String> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let vendor = {
            let mut loaded = lock(&LOADED);
            match loaded.iter().find(|(p, _)| *p == key) {
                Some((_, v)) => Arc::clone(v),
                None => {
                    let v = Arc::new(Vendor::load(path)?);
                    loaded.push((key, Arc::clone(&v)));
                    v
                }
            }
        };
        vendor.initialize()?;
        Ok(vendor)
    }

    fn load(path: &Path) -> Result<Vendor, String> {
        let shown = path.display();
        // SAFETY: loading a shared object runs its initialisers; the library is the one
        // the administrator configured as a PKCS#11 module, which is what we are for.
        let lib = unsafe {
            libloading::os::unix::Library::open(
                Some(path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
            )
        }
        .map_err(|e| format!("library {shown}: cannot load: {e}"))?;
        let lib = libloading::Library::from(lib);
        type GetFunctionList = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;
        // SAFETY: `C_GetFunctionList` has this signature in every PKCS#11 version.
        let get: libloading::Symbol<'_, GetFunctionList> =
            unsafe { lib.get(b"C_GetFunctionList\0") }.map_err(|e| {
                format!("library {shown}: not a PKCS#11 module (no C_GetFunctionList): {e}")
            })?;
        let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
        // SAFETY: `list` is a valid out-pointer; the vendor stores a pointer to its
        // static function table there.
        let rv = unsafe { get(&mut list) };
        if rv != CKR_OK || list.is_null() {
            return Err(format!(
                "library {shown}: C_GetFunctionList failed ({rv:#x})"
            ));
        }
        // SAFETY: the vendor returned a non-null pointer to its function table, which
        // lives as long as the library stays loaded (forever: we never unload it). The
        // table is plain data (a version and function pointers), so a copy is valid.
        let f = unsafe { *list };
        let vendor = Vendor {
            path: path.to_path_buf(),
            f,
            state: Mutex::new(InitState {
                pid: 0,
                users: 0,
                we_initialized: false,
            }),
            _lib: lib,
        };
        let required = [
            ("C_Initialize", vendor.f.C_Initialize.is_some()),
            ("C_GetSlotList", vendor.f.C_GetSlotList.is_some()),
            ("C_GetTokenInfo", vendor.f.C_GetTokenInfo.is_some()),
            ("C_OpenSession", vendor.f.C_OpenSession.is_some()),
            ("C_CloseSession", vendor.f.C_CloseSession.is_some()),
            ("C_Login", vendor.f.C_Login.is_some()),
            ("C_FindObjectsInit", vendor.f.C_FindObjectsInit.is_some()),
            ("C_FindObjects", vendor.f.C_FindObjects.is_some()),
            ("C_FindObjectsFinal", vendor.f.C_FindObjectsFinal.is_some()),
            (
                "C_GetAttributeValue",
                vendor.f.C_GetAttributeValue.is_some(),
            ),
            ("C_SignInit", vendor.f.C_SignInit.is_some()),
            ("C_Sign", vendor.f.C_Sign.is_some()),
        ];
        if let Some((name, _)) = required.iter().find(|(_, present)| !present) {
            return Err(format!("library {shown}: its function list has no {name}"));
        }
        Ok(vendor)
    }

    /// `C_Initialize` once per process (again in a forked child).
    fn initialize(&self) -> Result<(), String> {
        let pid = std::process::id();
        let mut st = lock(&self.state);
        if st.pid != pid {
            // First use in this process, or a child inherited the parent's counts.
            *st = InitState {
                pid,
                users: 0,
                we_initialized: false,
            };
        }
        if st.users == 0 && !st.we_initialized {
            let init = match self.f.C_Initialize {
                Some(f) => f,
                None => return Err(format!("library {}: no C_Initialize", self.path.display())),
            };
            let mut args = CK_C_INITIALIZE_ARGS {
                CreateMutex: None,
                DestroyMutex: None,
                LockMutex: None,
                UnlockMutex: None,
                flags: CKF_OS_LOCKING_OK,
                pReserved: ptr::null_mut(),
            };
            // SAFETY: `args` is a valid CK_C_INITIALIZE_ARGS that outlives the call.
            let rv = unsafe { init(&mut args as *mut CK_C_INITIALIZE_ARGS as *mut c_void) };
            match rv {
                CKR_OK => st.we_initialized = true,
                // The application (or our parent process) initialised it: fine.
                CKR_CRYPTOKI_ALREADY_INITIALIZED => {}
                rv => {
                    return Err(format!(
                        "library {}: C_Initialize failed ({rv:#x}{})",
                        self.path.display(),
                        rv_name(rv).map(|n| format!(" {n}")).unwrap_or_default()
                    ))
                }
            }
        }
        st.users += 1;
        Ok(())
    }

    /// One user of this process is gone; finalises the vendor after the last one if
    /// we initialised it. A backend inherited across `fork` does nothing here.
    pub fn release(&self, opened_in: u32) {
        let mut st = lock(&self.state);
        if st.pid != opened_in || opened_in != std::process::id() || st.users == 0 {
            return;
        }
        st.users -= 1;
        if st.users == 0 && st.we_initialized {
            st.we_initialized = false;
            if let Some(fin) = self.f.C_Finalize {
                // SAFETY: C_Finalize takes a reserved pointer that must be NULL.
                unsafe { fin(ptr::null_mut()) };
            }
        }
    }

    /// Slots with a token present.
    pub fn slots(&self) -> VResult<Vec<CK_SLOT_ID>> {
        let f = vfn!(self, C_GetSlotList);
        loop {
            let mut n: CK_ULONG = 0;
            // SAFETY: a NULL list asks only for the count, written to `n`.
            let rv = unsafe { f(CK_TRUE, ptr::null_mut(), &mut n) };
            if rv != CKR_OK {
                return Err(verr(rv, "C_GetSlotList"));
            }
            let mut slots: Vec<CK_SLOT_ID> = vec![0; n as usize];
            // SAFETY: `slots` has room for `n` entries, as `n` says.
            let rv = unsafe { f(CK_TRUE, slots.as_mut_ptr(), &mut n) };
            match rv {
                CKR_OK => {
                    slots.truncate(n as usize);
                    return Ok(slots);
                }
                // A token appeared between the two calls: ask again.
                CKR_BUFFER_TOO_SMALL => continue,
                rv => return Err(verr(rv, "C_GetSlotList")),
            }
        }
    }

    pub fn token_info(&self, slot: CK_SLOT_ID) -> VResult<CK_TOKEN_INFO> {
        let f = vfn!(self, C_GetTokenInfo);
        let mut info = CK_TOKEN_INFO::default();
        // SAFETY: `info` is a valid out-structure.
        let rv = unsafe { f(slot, &mut info) };
        if rv != CKR_OK {
            return Err(verr(rv, "C_GetTokenInfo"));
        }
        Ok(info)
    }

    pub fn mechanisms(&self, slot: CK_SLOT_ID) -> VResult<Vec<CK_MECHANISM_TYPE>> {
        let f = vfn!(self, C_GetMechanismList);
        loop {
            let mut n: CK_ULONG = 0;
            // SAFETY: a NULL list asks only for the count.
            let rv = unsafe { f(slot, ptr::null_mut(), &mut n) };
            if rv != CKR_OK {
                return Err(verr(rv, "C_GetMechanismList"));
            }
            let mut list: Vec<CK_MECHANISM_TYPE> = vec![0; n as usize];
            // SAFETY: `list` has room for `n` entries.
            let rv = unsafe { f(slot, list.as_mut_ptr(), &mut n) };
            match rv {
                CKR_OK => {
                    list.truncate(n as usize);
                    return Ok(list);
                }
                CKR_BUFFER_TOO_SMALL => continue,
                rv => return Err(verr(rv, "C_GetMechanismList")),
            }
        }
    }

    pub fn mechanism_info(
        &self,
        slot: CK_SLOT_ID,
        mech: CK_MECHANISM_TYPE,
    ) -> VResult<CK_MECHANISM_INFO> {
        let f = vfn!(self, C_GetMechanismInfo);
        let mut info = CK_MECHANISM_INFO::default();
        // SAFETY: `info` is a valid out-structure.
        let rv = unsafe { f(slot, mech, &mut info) };
        if rv != CKR_OK {
            return Err(verr(rv, "C_GetMechanismInfo"));
        }
        Ok(info)
    }

    /// A read/write user session on `slot`.
    pub fn open_session(&self, slot: CK_SLOT_ID) -> VResult<CK_SESSION_HANDLE> {
        let f = vfn!(self, C_OpenSession);
        let mut h: CK_SESSION_HANDLE = 0;
        // SAFETY: no notification callback; `h` is a valid out-pointer.
        let rv = unsafe {
            f(
                slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                ptr::null_mut(),
                None,
                &mut h,
            )
        };
        if rv != CKR_OK {
            return Err(verr(rv, "C_OpenSession"));
        }
        Ok(h)
    }

    pub fn close_session(&self, s: CK_SESSION_HANDLE) {
        if let Some(f) = self.f.C_CloseSession {
            // SAFETY: plain handle argument; an invalid handle is reported, not UB.
            unsafe { f(s) };
        }
    }

    /// `C_Login(CKU_USER)`; the raw return value.
    pub fn login(&self, s: CK_SESSION_HANDLE, pin: &[u8]) -> CK_RV {
        let Some(f) = self.f.C_Login else {
            return CKR_FUNCTION_NOT_SUPPORTED;
        };
        // SAFETY: `pin` is valid for `pin.len()` bytes; the vendor only reads it.
        unsafe {
            f(
                s,
                CKU_USER,
                pin.as_ptr() as *mut CK_UTF8CHAR,
                pin.len() as CK_ULONG,
            )
        }
    }

    /// Every object matching `template` (empty: every object the session can see).
    pub fn find(
        &self,
        s: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, &[u8])],
    ) -> VResult<Vec<CK_OBJECT_HANDLE>> {
        let init = vfn!(self, C_FindObjectsInit);
        let find = vfn!(self, C_FindObjects);
        let fin = vfn!(self, C_FindObjectsFinal);
        let mut attrs = to_ck_attrs(template);
        // SAFETY: `attrs` points into `template`, both alive for the call; the vendor
        // only reads a search template.
        let rv = unsafe { init(s, attrs.as_mut_ptr(), attrs.len() as CK_ULONG) };
        if rv != CKR_OK {
            return Err(verr(rv, "C_FindObjectsInit"));
        }
        let mut out = Vec::new();
        let mut batch: [CK_OBJECT_HANDLE; 128] = [0; 128];
        let result = loop {
            let mut n: CK_ULONG = 0;
            // SAFETY: `batch` has room for the 128 handles we say it has.
            let rv = unsafe { find(s, batch.as_mut_ptr(), batch.len() as CK_ULONG, &mut n) };
            if rv != CKR_OK {
                break Err(verr(rv, "C_FindObjects"));
            }
            let n = (n as usize).min(batch.len());
            out.extend_from_slice(&batch[..n]);
            if n < batch.len() {
                break Ok(out);
            }
        };
        // SAFETY: plain handle argument; ends the search started above.
        let rv = unsafe { fin(s) };
        match result {
            Ok(found) if rv == CKR_OK => Ok(found),
            Ok(_) => Err(verr(rv, "C_FindObjectsFinal")),
            Err(e) => Err(e),
        }
    }

    /// `C_GetAttributeValue` of `types` into `bufs` (one per type; an empty buffer
    /// asks only for the length). Returns the vendor's return value and the length it
    /// reported for each type (`CK_UNAVAILABLE_INFORMATION` where it has none).
    pub fn get_attributes(
        &self,
        s: CK_SESSION_HANDLE,
        obj: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
        bufs: &mut [Vec<u8>],
    ) -> (CK_RV, Vec<CK_ULONG>) {
        let Some(f) = self.f.C_GetAttributeValue else {
            return (CKR_FUNCTION_NOT_SUPPORTED, Vec::new());
        };
        let mut t: Vec<CK_ATTRIBUTE> = types
            .iter()
            .zip(bufs.iter_mut())
            .map(|(ty, b)| CK_ATTRIBUTE {
                type_: *ty,
                pValue: if b.is_empty() {
                    ptr::null_mut()
                } else {
                    b.as_mut_ptr() as *mut c_void
                },
                ulValueLen: b.len() as CK_ULONG,
            })
            .collect();
        // SAFETY: every `pValue` is null or points at a live, writable buffer of
        // `ulValueLen` bytes borrowed for the call; the vendor writes at most that.
        let rv = unsafe { f(s, obj, t.as_mut_ptr(), t.len() as CK_ULONG) };
        (rv, t.iter().map(|a| a.ulValueLen).collect())
    }

    /// One-shot sign / encrypt / decrypt: `*Init` then exactly one call with `out_len`
    /// bytes of output room (a second only if the vendor says the room was short).
    pub fn one_shot(
        &self,
        op: Op,
        s: CK_SESSION_HANDLE,
        mech: &Mech<'_>,
        key: CK_OBJECT_HANDLE,
        input: &[u8],
        out_len: usize,
    ) -> VResult<Vec<u8>> {
        type Init =
            unsafe extern "C" fn(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE) -> CK_RV;
        type Run = unsafe extern "C" fn(
            CK_SESSION_HANDLE,
            *mut CK_BYTE,
            CK_ULONG,
            *mut CK_BYTE,
            *mut CK_ULONG,
        ) -> CK_RV;
        let (init, run, init_name, run_name): (Init, Run, _, _) = match op {
            Op::Sign => (
                vfn!(self, C_SignInit),
                vfn!(self, C_Sign),
                "C_SignInit",
                "C_Sign",
            ),
            Op::Encrypt => (
                vfn!(self, C_EncryptInit),
                vfn!(self, C_Encrypt),
                "C_EncryptInit",
                "C_Encrypt",
            ),
            Op::Decrypt => (
                vfn!(self, C_DecryptInit),
                vfn!(self, C_Decrypt),
                "C_DecryptInit",
                "C_Decrypt",
            ),
        };
        // SAFETY: the mechanism and its parameter structure are valid for the call and
        // point only into buffers borrowed by `mech`; the vendor copies what it needs.
        let rv = mech.with_raw(|m| unsafe { init(s, m, key) });
        if rv != CKR_OK {
            return Err(verr(rv, init_name));
        }
        let mut out = vec![0u8; out_len];
        for _ in 0..2 {
            let mut len = out.len() as CK_ULONG;
            // SAFETY: `input` is valid for reading `input.len()` bytes (the vendor does
            // not write to it); `out` is writable for `len` bytes.
            let rv = unsafe {
                run(
                    s,
                    input.as_ptr() as *mut CK_BYTE,
                    input.len() as CK_ULONG,
                    out.as_mut_ptr(),
                    &mut len,
                )
            };
            match rv {
                CKR_OK => {
                    out.truncate((len as usize).min(out.len()));
                    return Ok(out);
                }
                // The operation stays active; the vendor told us the size it needs.
                CKR_BUFFER_TOO_SMALL if (len as usize) > out.len() && len < (1 << 24) => {
                    out.resize(len as usize, 0);
                }
                rv => {
                    return Err(VErr {
                        rv,
                        func: run_name,
                        after_init: true,
                    })
                }
            }
        }
        Err(VErr {
            rv: CKR_BUFFER_TOO_SMALL,
            func: run_name,
            after_init: true,
        })
    }

    /// `C_VerifyInit` + `C_Verify`; `Ok(false)` for a wrong signature.
    pub fn verify(
        &self,
        s: CK_SESSION_HANDLE,
        mech: &Mech<'_>,
        key: CK_OBJECT_HANDLE,
        input: &[u8],
        signature: &[u8],
    ) -> VResult<bool> {
        let init = vfn!(self, C_VerifyInit);
        let run = vfn!(self, C_Verify);
        // SAFETY: as in `one_shot`.
        let rv = mech.with_raw(|m| unsafe { init(s, m, key) });
        if rv != CKR_OK {
            return Err(verr(rv, "C_VerifyInit"));
        }
        // SAFETY: both buffers are valid for reading their lengths; the vendor only reads.
        let rv = unsafe {
            run(
                s,
                input.as_ptr() as *mut CK_BYTE,
                input.len() as CK_ULONG,
                signature.as_ptr() as *mut CK_BYTE,
                signature.len() as CK_ULONG,
            )
        };
        match rv {
            CKR_OK => Ok(true),
            CKR_SIGNATURE_INVALID | CKR_SIGNATURE_LEN_RANGE => Ok(false),
            rv => Err(VErr {
                rv,
                func: "C_Verify",
                after_init: true,
            }),
        }
    }

    pub fn generate_key_pair(
        &self,
        s: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        public: &[(CK_ATTRIBUTE_TYPE, &[u8])],
        private: &[(CK_ATTRIBUTE_TYPE, &[u8])],
    ) -> VResult<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let f = vfn!(self, C_GenerateKeyPair);
        let mut mech = CK_MECHANISM {
            mechanism: mech,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut pub_t = to_ck_attrs(public);
        let mut priv_t = to_ck_attrs(private);
        let (mut hpub, mut hpriv): (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) = (0, 0);
        // SAFETY: both templates point into the caller's slices, alive for the call and
        // only read by the vendor; the handles are valid out-pointers.
        let rv = unsafe {
            f(
                s,
                &mut mech,
                pub_t.as_mut_ptr(),
                pub_t.len() as CK_ULONG,
                priv_t.as_mut_ptr(),
                priv_t.len() as CK_ULONG,
                &mut hpub,
                &mut hpriv,
            )
        };
        if rv != CKR_OK {
            return Err(verr(rv, "C_GenerateKeyPair"));
        }
        Ok((hpub, hpriv))
    }

    pub fn generate_key(
        &self,
        s: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        template: &[(CK_ATTRIBUTE_TYPE, &[u8])],
    ) -> VResult<CK_OBJECT_HANDLE> {
        let f = vfn!(self, C_GenerateKey);
        let mut mech = CK_MECHANISM {
            mechanism: mech,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut t = to_ck_attrs(template);
        let mut h: CK_OBJECT_HANDLE = 0;
        // SAFETY: as in `generate_key_pair`.
        let rv = unsafe { f(s, &mut mech, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h) };
        if rv != CKR_OK {
            return Err(verr(rv, "C_GenerateKey"));
        }
        Ok(h)
    }

    pub fn create_object(
        &self,
        s: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, &[u8])],
    ) -> VResult<CK_OBJECT_HANDLE> {
        let f = vfn!(self, C_CreateObject);
        let mut t = to_ck_attrs(template);
        let mut h: CK_OBJECT_HANDLE = 0;
        // SAFETY: the template points into the caller's slices, alive for the call and
        // only read by the vendor; `h` is a valid out-pointer.
        let rv = unsafe { f(s, t.as_mut_ptr(), t.len() as CK_ULONG, &mut h) };
        if rv != CKR_OK {
            return Err(verr(rv, "C_CreateObject"));
        }
        Ok(h)
    }

    pub fn destroy_object(&self, s: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> VResult<()> {
        let f = vfn!(self, C_DestroyObject);
        // SAFETY: plain handle arguments.
        let rv = unsafe { f(s, obj) };
        if rv != CKR_OK {
            return Err(verr(rv, "C_DestroyObject"));
        }
        Ok(())
    }
}

/// Input templates: `(type, value)` pairs as CK_ATTRIBUTEs pointing into the values.
/// The vendor reads input templates only, so the `*mut` is never written through.
fn to_ck_attrs(template: &[(CK_ATTRIBUTE_TYPE, &[u8])]) -> Vec<CK_ATTRIBUTE> {
    template
        .iter()
        .map(|(ty, v)| CK_ATTRIBUTE {
            type_: *ty,
            pValue: in_ptr(v),
            ulValueLen: v.len() as CK_ULONG,
        })
        .collect()
}

/// The symbolic name of a vendor return value, or `None` for one hsmux does not know.
pub(crate) fn rv_name(rv: CK_RV) -> Option<&'static str> {
    Some(hsmux_core::rv_name(rv)).filter(|n| !n.starts_with("CKR_VENDOR_OR_UNKNOWN"))
}
