//! A PKCS#11 module driven through its C ABI (`C_GetFunctionList`), with thin wrappers
//! that return `Result<_, Rv>`.
//!
//! The bench calls the raw function list rather than a high-level client so that one
//! measured operation is exactly the calls a C client makes (e.g. `C_SignInit` +
//! one `C_Sign` into a large enough buffer, no length query). All `unsafe` code of the
//! bench is in this file.

use cryptoki_sys::*;
use std::ffi::c_void;
use std::fmt;
use std::path::Path;
use std::ptr;

/// A `CK_RV` other than `CKR_OK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rv(pub CK_RV);

/// Result of one PKCS#11 call.
pub type P11<T> = Result<T, Rv>;

impl fmt::Display for Rv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            CKR_ARGUMENTS_BAD => "CKR_ARGUMENTS_BAD",
            CKR_ATTRIBUTE_TYPE_INVALID => "CKR_ATTRIBUTE_TYPE_INVALID",
            CKR_ATTRIBUTE_VALUE_INVALID => "CKR_ATTRIBUTE_VALUE_INVALID",
            CKR_BUFFER_TOO_SMALL => "CKR_BUFFER_TOO_SMALL",
            CKR_CRYPTOKI_ALREADY_INITIALIZED => "CKR_CRYPTOKI_ALREADY_INITIALIZED",
            CKR_DEVICE_ERROR => "CKR_DEVICE_ERROR",
            CKR_FUNCTION_FAILED => "CKR_FUNCTION_FAILED",
            CKR_FUNCTION_NOT_SUPPORTED => "CKR_FUNCTION_NOT_SUPPORTED",
            CKR_GENERAL_ERROR => "CKR_GENERAL_ERROR",
            CKR_HOST_MEMORY => "CKR_HOST_MEMORY",
            CKR_KEY_HANDLE_INVALID => "CKR_KEY_HANDLE_INVALID",
            CKR_KEY_TYPE_INCONSISTENT => "CKR_KEY_TYPE_INCONSISTENT",
            CKR_MECHANISM_INVALID => "CKR_MECHANISM_INVALID",
            CKR_MECHANISM_PARAM_INVALID => "CKR_MECHANISM_PARAM_INVALID",
            CKR_OBJECT_HANDLE_INVALID => "CKR_OBJECT_HANDLE_INVALID",
            CKR_OPERATION_ACTIVE => "CKR_OPERATION_ACTIVE",
            CKR_PIN_INCORRECT => "CKR_PIN_INCORRECT",
            CKR_SESSION_HANDLE_INVALID => "CKR_SESSION_HANDLE_INVALID",
            CKR_SESSION_READ_ONLY => "CKR_SESSION_READ_ONLY",
            CKR_SLOT_ID_INVALID => "CKR_SLOT_ID_INVALID",
            CKR_TEMPLATE_INCOMPLETE => "CKR_TEMPLATE_INCOMPLETE",
            CKR_TEMPLATE_INCONSISTENT => "CKR_TEMPLATE_INCONSISTENT",
            CKR_TOKEN_NOT_PRESENT => "CKR_TOKEN_NOT_PRESENT",
            CKR_USER_NOT_LOGGED_IN => "CKR_USER_NOT_LOGGED_IN",
            CKR_USER_ALREADY_LOGGED_IN => "CKR_USER_ALREADY_LOGGED_IN",
            CKR_CRYPTOKI_NOT_INITIALIZED => "CKR_CRYPTOKI_NOT_INITIALIZED",
            _ => return write!(f, "CK_RV 0x{:08x}", self.0),
        };
        f.write_str(name)
    }
}

fn check(rv: CK_RV) -> P11<()> {
    if rv == CKR_OK {
        Ok(())
    } else {
        Err(Rv(rv))
    }
}

/// `CK_ULONG` from a length (lengths here are buffer sizes, far below `CK_ULONG::MAX`).
fn ulong(n: usize) -> CK_ULONG {
    n as CK_ULONG
}

/// Calls one entry of the function list; a missing entry is `CKR_FUNCTION_NOT_SUPPORTED`.
macro_rules! call {
    ($module:expr, $f:ident ( $($arg:expr),* $(,)? )) => {{
        let f = $module.functions().$f.ok_or(Rv(CKR_FUNCTION_NOT_SUPPORTED))?;
        // SAFETY: every caller passes pointers into live, correctly sized Rust buffers
        // (or null where the spec allows it) that outlive the call, with their true lengths.
        check(unsafe { f($($arg),*) })
    }};
}

/// A loaded PKCS#11 module. The library stays loaded for the life of the value.
pub struct Module {
    list: *const CK_FUNCTION_LIST,
    _lib: libloading::Library,
}

// SAFETY: the function list is immutable data owned by the library, which lives as long as
// `Module`; the module is initialised with CKF_OS_LOCKING_OK, so PKCS#11 allows calling it
// from any thread.
unsafe impl Send for Module {}
// SAFETY: as above; `Module` has no interior state of its own.
unsafe impl Sync for Module {}

impl Module {
    /// `dlopen`s the module and fetches its function list.
    pub fn load(path: &Path) -> Result<Module, String> {
        // SAFETY: loading a PKCS#11 module runs its library initialisers, which is the
        // point; the path is the one the user asked to benchmark.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("loading {}: {e}", path.display()))?;
        let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
        // SAFETY: C_GetFunctionList has this signature in every PKCS#11 version.
        let get = unsafe {
            lib.get::<unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV>(
                b"C_GetFunctionList\0",
            )
        }
        .map_err(|e| format!("{}: no C_GetFunctionList: {e}", path.display()))?;
        // SAFETY: `list` is a valid out-pointer for the duration of the call.
        let rv = unsafe { get(&mut list) };
        if rv != CKR_OK || list.is_null() {
            return Err(format!(
                "{}: C_GetFunctionList failed: {}",
                path.display(),
                Rv(rv)
            ));
        }
        Ok(Module { list, _lib: lib })
    }

    fn functions(&self) -> &CK_FUNCTION_LIST {
        // SAFETY: checked non-null in `load`; it points into the library, which is loaded
        // while `self` lives.
        unsafe { &*self.list }
    }

    /// `C_Initialize` with `CKF_OS_LOCKING_OK` (multi-threaded, the module's own locks).
    pub fn initialize(&self) -> P11<()> {
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: ptr::null_mut(),
        };
        call!(self, C_Initialize(&mut args as *mut _ as *mut c_void))
    }

    /// `C_Finalize`.
    pub fn finalize(&self) -> P11<()> {
        call!(self, C_Finalize(ptr::null_mut()))
    }

    /// `C_GetSlotList(tokenPresent = TRUE)`.
    pub fn slots(&self) -> P11<Vec<CK_SLOT_ID>> {
        let mut count: CK_ULONG = 0;
        call!(self, C_GetSlotList(CK_TRUE, ptr::null_mut(), &mut count))?;
        let mut slots = vec![0; count as usize];
        call!(self, C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut count))?;
        slots.truncate(count as usize);
        Ok(slots)
    }

    /// `C_GetTokenInfo`: the label (trailing blanks trimmed) and whether the token is
    /// initialised.
    pub fn token_info(&self, slot: CK_SLOT_ID) -> P11<(String, bool)> {
        let mut info = CK_TOKEN_INFO::default();
        call!(self, C_GetTokenInfo(slot, &mut info))?;
        let label = String::from_utf8_lossy(&info.label)
            .trim_end_matches([' ', '\0'])
            .to_string();
        Ok((label, info.flags & CKF_TOKEN_INITIALIZED != 0))
    }

    /// `C_InitToken` with `label` padded to 32 bytes.
    pub fn init_token(&self, slot: CK_SLOT_ID, so_pin: &str, label: &str) -> P11<()> {
        let mut padded = [b' '; 32];
        let n = label.len().min(32);
        padded[..n].copy_from_slice(&label.as_bytes()[..n]);
        call!(
            self,
            C_InitToken(
                slot,
                so_pin.as_ptr() as *mut u8,
                ulong(so_pin.len()),
                padded.as_mut_ptr()
            )
        )
    }

    /// `C_OpenSession`, read/write or read-only.
    pub fn open_session(&self, slot: CK_SLOT_ID, rw: bool) -> P11<CK_SESSION_HANDLE> {
        let mut flags = CKF_SERIAL_SESSION;
        if rw {
            flags |= CKF_RW_SESSION;
        }
        let mut session: CK_SESSION_HANDLE = 0;
        call!(
            self,
            C_OpenSession(slot, flags, ptr::null_mut(), None, &mut session)
        )?;
        Ok(session)
    }

    /// `C_CloseSession`.
    pub fn close_session(&self, session: CK_SESSION_HANDLE) -> P11<()> {
        call!(self, C_CloseSession(session))
    }

    /// `C_Login`.
    pub fn login(&self, session: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> P11<()> {
        call!(
            self,
            C_Login(session, user, pin.as_ptr() as *mut u8, ulong(pin.len()))
        )
    }

    /// `C_Logout`.
    pub fn logout(&self, session: CK_SESSION_HANDLE) -> P11<()> {
        call!(self, C_Logout(session))
    }

    /// `C_InitPIN` (SO session).
    pub fn init_pin(&self, session: CK_SESSION_HANDLE, pin: &str) -> P11<()> {
        call!(
            self,
            C_InitPIN(session, pin.as_ptr() as *mut u8, ulong(pin.len()))
        )
    }

    /// `C_GenerateKey`.
    pub fn generate_key(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mech,
        template: &Template,
    ) -> P11<CK_OBJECT_HANDLE> {
        let f = self
            .functions()
            .C_GenerateKey
            .ok_or(Rv(CKR_FUNCTION_NOT_SUPPORTED))?;
        let mut key: CK_OBJECT_HANDLE = 0;
        mechanism.with_raw(|m| {
            // SAFETY: `m` and the template's attributes point at live buffers; `key` is a
            // valid out-pointer.
            check(unsafe { f(session, m, template.ptr(), template.len(), &mut key) })
        })?;
        Ok(key)
    }

    /// `C_GenerateKeyPair`: (public, private).
    pub fn generate_key_pair(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mech,
        public: &Template,
        private: &Template,
    ) -> P11<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let f = self
            .functions()
            .C_GenerateKeyPair
            .ok_or(Rv(CKR_FUNCTION_NOT_SUPPORTED))?;
        let (mut pubk, mut privk): (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) = (0, 0);
        mechanism.with_raw(|m| {
            // SAFETY: both templates and `m` point at live buffers; the two handles are
            // valid out-pointers.
            check(unsafe {
                f(
                    session,
                    m,
                    public.ptr(),
                    public.len(),
                    private.ptr(),
                    private.len(),
                    &mut pubk,
                    &mut privk,
                )
            })
        })?;
        Ok((pubk, privk))
    }

    /// `C_CreateObject`.
    pub fn create_object(
        &self,
        session: CK_SESSION_HANDLE,
        template: &Template,
    ) -> P11<CK_OBJECT_HANDLE> {
        let mut object: CK_OBJECT_HANDLE = 0;
        call!(
            self,
            C_CreateObject(session, template.ptr(), template.len(), &mut object)
        )?;
        Ok(object)
    }

    /// `C_FindObjectsInit` + one `C_FindObjects` of up to `out.len()` handles +
    /// `C_FindObjectsFinal`: the number of handles found.
    pub fn find(
        &self,
        session: CK_SESSION_HANDLE,
        template: &Template,
        out: &mut [CK_OBJECT_HANDLE],
    ) -> P11<usize> {
        call!(
            self,
            C_FindObjectsInit(session, template.ptr(), template.len())
        )?;
        let mut count: CK_ULONG = 0;
        let found = (|| {
            call!(
                self,
                C_FindObjects(session, out.as_mut_ptr(), ulong(out.len()), &mut count)
            )
        })();
        let finished = (|| call!(self, C_FindObjectsFinal(session)))();
        found?;
        finished?;
        Ok(count as usize)
    }

    /// `C_GetAttributeValue` into the buffers of `template` (lengths reset first).
    pub fn get_attributes(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        template: &mut ReadTemplate,
    ) -> P11<()> {
        template.reset();
        call!(
            self,
            C_GetAttributeValue(
                session,
                object,
                template.raw.as_mut_ptr(),
                ulong(template.raw.len())
            )
        )
    }

    /// `C_SignInit` + `C_Sign` into `out`: the signature length.
    pub fn sign(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mech,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> P11<usize> {
        self.keyed_init(self.functions().C_SignInit, session, mechanism, key)?;
        self.one_shot(self.functions().C_Sign, session, data, out)
    }

    /// `C_EncryptInit` + `C_Encrypt` into `out`: the ciphertext length.
    pub fn encrypt(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mech,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> P11<usize> {
        self.keyed_init(self.functions().C_EncryptInit, session, mechanism, key)?;
        self.one_shot(self.functions().C_Encrypt, session, data, out)
    }

    /// `C_DigestInit` + `C_Digest` into `out`: the digest length.
    pub fn digest(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: &Mech,
        data: &[u8],
        out: &mut [u8],
    ) -> P11<usize> {
        let init = self
            .functions()
            .C_DigestInit
            .ok_or(Rv(CKR_FUNCTION_NOT_SUPPORTED))?;
        // SAFETY: `m` points at a live mechanism for the call.
        mechanism.with_raw(|m| check(unsafe { init(session, m) }))?;
        self.one_shot(self.functions().C_Digest, session, data, out)
    }

    /// A `C_*Init` that takes a mechanism and a key (sign, encrypt: one C type).
    fn keyed_init(
        &self,
        init: CK_C_SignInit,
        session: CK_SESSION_HANDLE,
        mechanism: &Mech,
        key: CK_OBJECT_HANDLE,
    ) -> P11<()> {
        let init = init.ok_or(Rv(CKR_FUNCTION_NOT_SUPPORTED))?;
        // SAFETY: `m` points at a live mechanism (and its parameter) for the call.
        mechanism.with_raw(|m| check(unsafe { init(session, m, key) }))
    }

    /// A single-part call from `data` into `out` (sign, encrypt, digest: one C type):
    /// the output length.
    fn one_shot(
        &self,
        f: CK_C_Sign,
        session: CK_SESSION_HANDLE,
        data: &[u8],
        out: &mut [u8],
    ) -> P11<usize> {
        let f = f.ok_or(Rv(CKR_FUNCTION_NOT_SUPPORTED))?;
        let mut len = ulong(out.len());
        // SAFETY: `data` and `out` are live buffers passed with their true lengths.
        check(unsafe {
            f(
                session,
                data.as_ptr() as *mut u8,
                ulong(data.len()),
                out.as_mut_ptr(),
                &mut len,
            )
        })?;
        Ok(len as usize)
    }

    /// `C_GenerateRandom` filling `out`.
    pub fn generate_random(&self, session: CK_SESSION_HANDLE, out: &mut [u8]) -> P11<()> {
        call!(
            self,
            C_GenerateRandom(session, out.as_mut_ptr(), ulong(out.len()))
        )
    }
}

/// A mechanism and its parameters; the raw `CK_MECHANISM` is built on the stack for each
/// call, so no raw pointer outlives the data it points at.
pub enum Mech<'a> {
    /// A mechanism without parameters.
    Plain(CK_MECHANISM_TYPE),
    /// An RSA-PSS mechanism with `CK_RSA_PKCS_PSS_PARAMS`.
    Pss {
        /// The `CKM_*_RSA_PKCS_PSS` mechanism.
        mechanism: CK_MECHANISM_TYPE,
        /// `hashAlg`.
        hash: CK_MECHANISM_TYPE,
        /// `mgf`.
        mgf: CK_RSA_PKCS_MGF_TYPE,
        /// `sLen`.
        salt_len: CK_ULONG,
    },
    /// `CKM_AES_GCM` with `CK_GCM_PARAMS`.
    Gcm {
        /// The IV.
        iv: &'a [u8],
        /// Tag length in bits.
        tag_bits: CK_ULONG,
    },
}

impl Mech<'_> {
    fn with_raw<R>(&self, f: impl FnOnce(*mut CK_MECHANISM) -> R) -> R {
        match *self {
            Mech::Plain(mechanism) => {
                let mut raw = CK_MECHANISM {
                    mechanism,
                    pParameter: ptr::null_mut(),
                    ulParameterLen: 0,
                };
                f(&mut raw)
            }
            Mech::Pss {
                mechanism,
                hash,
                mgf,
                salt_len,
            } => {
                let mut params = CK_RSA_PKCS_PSS_PARAMS {
                    hashAlg: hash,
                    mgf,
                    sLen: salt_len,
                };
                let mut raw = CK_MECHANISM {
                    mechanism,
                    pParameter: &mut params as *mut _ as *mut c_void,
                    ulParameterLen: ulong(std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>()),
                };
                f(&mut raw)
            }
            Mech::Gcm { iv, tag_bits } => {
                let mut params = CK_GCM_PARAMS {
                    pIv: iv.as_ptr() as *mut u8,
                    ulIvLen: ulong(iv.len()),
                    ulIvBits: ulong(iv.len() * 8),
                    pAAD: ptr::null_mut(),
                    ulAADLen: 0,
                    ulTagBits: tag_bits,
                };
                let mut raw = CK_MECHANISM {
                    mechanism: CKM_AES_GCM,
                    pParameter: &mut params as *mut _ as *mut c_void,
                    ulParameterLen: ulong(std::mem::size_of::<CK_GCM_PARAMS>()),
                };
                f(&mut raw)
            }
        }
    }
}

/// An attribute template for input (create, generate, find). Values are stored in
/// 8-byte-aligned buffers so a module may read a `CK_ULONG` in place.
pub struct Template {
    values: Vec<Vec<u64>>,
    raw: Vec<CK_ATTRIBUTE>,
}

impl Default for Template {
    fn default() -> Self {
        Self::new()
    }
}

impl Template {
    /// An empty template.
    pub fn new() -> Template {
        Template {
            values: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// Adds a byte-string attribute.
    pub fn bytes(mut self, kind: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Template {
        let mut words = vec![0u64; value.len().div_ceil(8).max(1)];
        // SAFETY: `words` holds at least `value.len()` bytes; u64 has no invalid bit
        // patterns, so viewing it as bytes to copy into is sound.
        unsafe {
            ptr::copy_nonoverlapping(value.as_ptr(), words.as_mut_ptr() as *mut u8, value.len())
        };
        // The heap buffer of `words` does not move when `values` grows, so the pointer
        // stays valid for as long as the template lives.
        self.raw.push(CK_ATTRIBUTE {
            type_: kind,
            pValue: words.as_mut_ptr() as *mut c_void,
            ulValueLen: ulong(value.len()),
        });
        self.values.push(words);
        self
    }

    /// Adds a `CK_BBOOL` attribute.
    pub fn bool(self, kind: CK_ATTRIBUTE_TYPE, value: bool) -> Template {
        self.bytes(kind, &[if value { CK_TRUE } else { CK_FALSE }])
    }

    /// Adds a `CK_ULONG` attribute.
    pub fn ulong(self, kind: CK_ATTRIBUTE_TYPE, value: CK_ULONG) -> Template {
        self.bytes(kind, &value.to_ne_bytes())
    }

    fn ptr(&self) -> *mut CK_ATTRIBUTE {
        self.raw.as_ptr() as *mut CK_ATTRIBUTE
    }

    fn len(&self) -> CK_ULONG {
        ulong(self.raw.len())
    }
}

/// An attribute template for `C_GetAttributeValue`, owning one output buffer per
/// attribute.
pub struct ReadTemplate {
    buffers: Vec<Vec<u8>>,
    raw: Vec<CK_ATTRIBUTE>,
}

impl ReadTemplate {
    /// Asks for `kinds`, each into a buffer of `capacity` bytes.
    pub fn new(kinds: &[CK_ATTRIBUTE_TYPE], capacity: usize) -> ReadTemplate {
        let mut buffers: Vec<Vec<u8>> = kinds.iter().map(|_| vec![0u8; capacity]).collect();
        let raw = kinds
            .iter()
            .zip(buffers.iter_mut())
            .map(|(&kind, buf)| CK_ATTRIBUTE {
                type_: kind,
                pValue: buf.as_mut_ptr() as *mut c_void,
                ulValueLen: ulong(buf.len()),
            })
            .collect();
        ReadTemplate { buffers, raw }
    }

    fn reset(&mut self) {
        for (attr, buf) in self.raw.iter_mut().zip(&self.buffers) {
            attr.ulValueLen = ulong(buf.len());
        }
    }

    /// The value of attribute `i` after a successful read.
    pub fn value(&self, i: usize) -> &[u8] {
        let len = (self.raw[i].ulValueLen as usize).min(self.buffers[i].len());
        &self.buffers[i][..len]
    }
}
