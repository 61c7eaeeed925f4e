//! The module's raw C ABI, for what a safe client cannot express: NULL pointers,
//! length queries, too-small buffers, malformed mechanism parameters.
//!
//! The library is opened a second time with `libloading`; the dynamic loader hands back
//! the same instance, so raw calls see the same module state (sessions, login) as the
//! cryptoki client of the same process.

use cryptoki::mechanism::Mechanism;
use cryptoki_sys::*;
use std::ptr::{null_mut, NonNull};
use std::sync::OnceLock;

/// The module opened through `libloading`, with its 2.40 function list.
pub struct RawModule {
    lib: libloading::Library,
    list: NonNull<CK_FUNCTION_LIST>,
}

// SAFETY: the function list is static data of the loaded library, immutable and valid as
// long as `lib` stays loaded; PKCS#11 modules initialised with CKF_OS_LOCKING_OK are
// callable from any thread.
unsafe impl Send for RawModule {}
// SAFETY: as above; `RawModule` exposes only shared, read-only access.
unsafe impl Sync for RawModule {}

/// Signature of `C_GetFunctionList`.
pub type GetFunctionListFn = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;
/// Signature of `C_GetInterfaceList`.
pub type GetInterfaceListFn = unsafe extern "C" fn(*mut CK_INTERFACE, *mut CK_ULONG) -> CK_RV;
/// Signature of `C_GetInterface`.
pub type GetInterfaceFn = unsafe extern "C" fn(
    *mut CK_UTF8CHAR,
    *mut CK_VERSION,
    *mut *mut CK_INTERFACE,
    CK_FLAGS,
) -> CK_RV;

impl RawModule {
    /// Opens the module under test and fetches its C_GetFunctionList table.
    #[track_caller]
    pub fn load() -> RawModule {
        let path = crate::require_module();
        // SAFETY: loading a PKCS#11 module runs only its (trusted, under-test) initialisers.
        let lib = unsafe { libloading::Library::new(&path) }
            .unwrap_or_else(|e| panic!("dlopen {}: {e}", path.display()));
        let mut list: *mut CK_FUNCTION_LIST = null_mut();
        // SAFETY: the symbol has the C_GetFunctionList signature of PKCS#11 §5.2.
        let rv = unsafe {
            let get: libloading::Symbol<GetFunctionListFn> = lib
                .get(b"C_GetFunctionList\0")
                .expect("module exports C_GetFunctionList");
            get(&mut list)
        };
        assert_eq!(rv, CKR_OK, "C_GetFunctionList: {}", crate::rv_name(rv));
        let list = NonNull::new(list).expect("C_GetFunctionList returned a NULL list");
        RawModule { lib, list }
    }

    /// The CK_FUNCTION_LIST the module returned.
    pub fn functions(&self) -> &CK_FUNCTION_LIST {
        // SAFETY: non-null, points into the loaded library which `self.lib` keeps loaded.
        unsafe { self.list.as_ref() }
    }

    /// The exported `C_GetFunctionList` symbol.
    pub fn get_function_list_symbol(&self) -> GetFunctionListFn {
        // SAFETY: symbol type per PKCS#11; the fn pointer lives as long as `self.lib`.
        unsafe {
            *self
                .lib
                .get::<GetFunctionListFn>(b"C_GetFunctionList\0")
                .unwrap()
        }
    }

    /// The exported `C_GetInterfaceList` symbol, if any.
    pub fn get_interface_list_symbol(&self) -> Option<GetInterfaceListFn> {
        // SAFETY: as above.
        unsafe {
            self.lib
                .get::<GetInterfaceListFn>(b"C_GetInterfaceList\0")
                .ok()
                .map(|s| *s)
        }
    }

    /// The exported `C_GetInterface` symbol, if any.
    pub fn get_interface_symbol(&self) -> Option<GetInterfaceFn> {
        // SAFETY: as above.
        unsafe {
            self.lib
                .get::<GetInterfaceFn>(b"C_GetInterface\0")
                .ok()
                .map(|s| *s)
        }
    }
}

/// The process-wide raw handle on the module.
pub fn raw() -> &'static RawModule {
    static RAW: OnceLock<RawModule> = OnceLock::new();
    RAW.get_or_init(RawModule::load)
}

macro_rules! f {
    ($name:ident) => {
        raw()
            .functions()
            .$name
            .expect(concat!(stringify!($name), " is NULL in the function list"))
    };
}

/// How the caller passes the output buffer of a length-returning call.
#[derive(Clone, Copy, Debug)]
pub enum Out {
    /// NULL output pointer: a length query.
    Null,
    /// A buffer of this many bytes (and `*pulLen` set to it).
    Buf(usize),
}

/// Result of a length-returning call.
#[derive(Clone, Debug)]
pub struct Ret {
    /// The return value.
    pub rv: CK_RV,
    /// `*pulLen` after the call.
    pub len: usize,
    /// The output bytes (truncated to `len` on success).
    pub data: Vec<u8>,
}

fn with_out(out: Out, call: impl FnOnce(*mut u8, *mut CK_ULONG) -> CK_RV) -> Ret {
    let (mut buf, null) = match out {
        Out::Null => (Vec::new(), true),
        Out::Buf(n) => (vec![0u8; n], false),
    };
    let mut len = buf.len() as CK_ULONG;
    let ptr = if null { null_mut() } else { buf.as_mut_ptr() };
    let rv = call(ptr, &mut len);
    if rv == CKR_OK && !null {
        buf.truncate((len as usize).min(buf.len()));
    }
    Ret {
        rv,
        len: len as usize,
        data: buf,
    }
}

/// The C struct of a cryptoki mechanism (borrowing its parameters).
pub fn mech(mechanism: &Mechanism) -> CK_MECHANISM {
    CK_MECHANISM::from(mechanism)
}

/// A mechanism with arbitrary parameter bytes (for malformed-parameter tests).
pub fn mech_with_bytes(mechanism: CK_MECHANISM_TYPE, params: &mut [u8]) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism,
        pParameter: if params.is_empty() {
            null_mut()
        } else {
            params.as_mut_ptr().cast()
        },
        ulParameterLen: params.len() as CK_ULONG,
    }
}

/// A mechanism whose parameter is the C struct `params`.
pub fn mech_with<T>(mechanism: CK_MECHANISM_TYPE, params: &mut T) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism,
        pParameter: (params as *mut T).cast(),
        ulParameterLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

/// Which operation an `*Init` call starts.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// C_SignInit
    Sign,
    /// C_VerifyInit
    Verify,
    /// C_EncryptInit
    Encrypt,
    /// C_DecryptInit
    Decrypt,
    /// C_DigestInit (key ignored)
    Digest,
}

/// C_{Sign,Verify,Encrypt,Decrypt,Digest}Init with a raw mechanism struct.
pub fn init(
    op: Op,
    session: CK_SESSION_HANDLE,
    mech: &CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    let mut m = *mech;
    // SAFETY: `m` and the parameter it points to outlive the call.
    unsafe {
        match op {
            Op::Sign => f!(C_SignInit)(session, &mut m, key),
            Op::Verify => f!(C_VerifyInit)(session, &mut m, key),
            Op::Encrypt => f!(C_EncryptInit)(session, &mut m, key),
            Op::Decrypt => f!(C_DecryptInit)(session, &mut m, key),
            Op::Digest => f!(C_DigestInit)(session, &mut m),
        }
    }
}

macro_rules! one_shot {
    ($(#[$doc:meta])* $name:ident, $c:ident) => {
        $(#[$doc])*
        pub fn $name(session: CK_SESSION_HANDLE, input: &[u8], out: Out) -> Ret {
            with_out(out, |ptr, len| {
                // SAFETY: input/output buffers and the length cell outlive the call; a NULL
                // output pointer is the documented length query.
                unsafe { f!($c)(session, input.as_ptr() as *mut u8, input.len() as CK_ULONG, ptr, len) }
            })
        }
    };
}

macro_rules! finals {
    ($(#[$doc:meta])* $name:ident, $c:ident) => {
        $(#[$doc])*
        pub fn $name(session: CK_SESSION_HANDLE, out: Out) -> Ret {
            // SAFETY: output buffer and length cell outlive the call.
            with_out(out, |ptr, len| unsafe { f!($c)(session, ptr, len) })
        }
    };
}

macro_rules! update_in {
    ($(#[$doc:meta])* $name:ident, $c:ident) => {
        $(#[$doc])*
        pub fn $name(session: CK_SESSION_HANDLE, input: &[u8]) -> CK_RV {
            // SAFETY: input buffer outlives the call and is only read.
            unsafe { f!($c)(session, input.as_ptr() as *mut u8, input.len() as CK_ULONG) }
        }
    };
}

one_shot!(/// C_Sign.
    sign, C_Sign);
one_shot!(/// C_Encrypt.
    encrypt, C_Encrypt);
one_shot!(/// C_Decrypt.
    decrypt, C_Decrypt);
one_shot!(/// C_Digest.
    digest, C_Digest);
one_shot!(/// C_EncryptUpdate.
    encrypt_update, C_EncryptUpdate);
one_shot!(/// C_DecryptUpdate.
    decrypt_update, C_DecryptUpdate);
finals!(/// C_SignFinal.
    sign_final, C_SignFinal);
finals!(/// C_EncryptFinal.
    encrypt_final, C_EncryptFinal);
finals!(/// C_DecryptFinal.
    decrypt_final, C_DecryptFinal);
finals!(/// C_DigestFinal.
    digest_final, C_DigestFinal);
update_in!(/// C_SignUpdate.
    sign_update, C_SignUpdate);
update_in!(/// C_VerifyUpdate.
    verify_update, C_VerifyUpdate);
update_in!(/// C_DigestUpdate.
    digest_update, C_DigestUpdate);
update_in!(/// C_VerifyFinal (the input is the signature).
    verify_final, C_VerifyFinal);

/// C_Verify.
pub fn verify(session: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> CK_RV {
    // SAFETY: both buffers outlive the call and are only read.
    unsafe {
        f!(C_Verify)(
            session,
            data.as_ptr() as *mut u8,
            data.len() as CK_ULONG,
            signature.as_ptr() as *mut u8,
            signature.len() as CK_ULONG,
        )
    }
}

/// C_OpenSession with explicit flags.
pub fn open_session(slot: CK_SLOT_ID, flags: CK_FLAGS) -> (CK_RV, CK_SESSION_HANDLE) {
    let mut handle: CK_SESSION_HANDLE = 0;
    // SAFETY: `handle` outlives the call; no notify callback.
    let rv = unsafe { f!(C_OpenSession)(slot, flags, null_mut(), None, &mut handle) };
    (rv, handle)
}

/// C_CloseSession.
pub fn close_session(session: CK_SESSION_HANDLE) -> CK_RV {
    // SAFETY: plain value arguments.
    unsafe { f!(C_CloseSession)(session) }
}

/// C_CloseAllSessions.
pub fn close_all_sessions(slot: CK_SLOT_ID) -> CK_RV {
    // SAFETY: plain value arguments.
    unsafe { f!(C_CloseAllSessions)(slot) }
}

/// C_GetSessionInfo.
pub fn session_info(session: CK_SESSION_HANDLE) -> (CK_RV, CK_SESSION_INFO) {
    let mut info = CK_SESSION_INFO::default();
    // SAFETY: `info` outlives the call.
    let rv = unsafe { f!(C_GetSessionInfo)(session, &mut info) };
    (rv, info)
}

/// C_Login with raw PIN bytes.
pub fn login(session: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> CK_RV {
    // SAFETY: the PIN buffer outlives the call and is only read.
    unsafe {
        f!(C_Login)(
            session,
            user,
            pin.as_ptr() as *mut u8,
            pin.len() as CK_ULONG,
        )
    }
}

/// C_Logout.
pub fn logout(session: CK_SESSION_HANDLE) -> CK_RV {
    // SAFETY: plain value arguments.
    unsafe { f!(C_Logout)(session) }
}

/// C_GetObjectSize.
pub fn object_size(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> (CK_RV, CK_ULONG) {
    let mut size: CK_ULONG = 0;
    // SAFETY: `size` outlives the call.
    let rv = unsafe { f!(C_GetObjectSize)(session, object, &mut size) };
    (rv, size)
}

/// C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal pieces.
pub fn find_init(session: CK_SESSION_HANDLE, template: &mut [CK_ATTRIBUTE]) -> CK_RV {
    // SAFETY: the template (and the values it points to) outlive the call.
    unsafe {
        f!(C_FindObjectsInit)(
            session,
            if template.is_empty() {
                null_mut()
            } else {
                template.as_mut_ptr()
            },
            template.len() as CK_ULONG,
        )
    }
}

/// C_FindObjects returning at most `max` handles.
pub fn find(session: CK_SESSION_HANDLE, max: usize) -> (CK_RV, Vec<CK_OBJECT_HANDLE>) {
    let mut handles = vec![0 as CK_OBJECT_HANDLE; max];
    let mut count: CK_ULONG = 0;
    // SAFETY: the handle array has room for `max` entries.
    let rv =
        unsafe { f!(C_FindObjects)(session, handles.as_mut_ptr(), max as CK_ULONG, &mut count) };
    handles.truncate((count as usize).min(max));
    (rv, handles)
}

/// C_FindObjectsFinal.
pub fn find_final(session: CK_SESSION_HANDLE) -> CK_RV {
    // SAFETY: plain value arguments.
    unsafe { f!(C_FindObjectsFinal)(session) }
}

/// One entry of a raw C_GetAttributeValue template.
#[derive(Clone, Debug)]
pub struct AttrQuery {
    /// CKA_* type.
    pub kind: CK_ATTRIBUTE_TYPE,
    /// `None` sends a NULL pValue (length query); `Some(n)` an n-byte buffer.
    pub buf: Option<Vec<u8>>,
    /// `ulValueLen` after the call.
    pub len: CK_ULONG,
}

impl AttrQuery {
    /// A length query (pValue NULL).
    pub fn len_of(kind: CK_ATTRIBUTE_TYPE) -> AttrQuery {
        AttrQuery {
            kind,
            buf: None,
            len: 0,
        }
    }

    /// A read into an `n`-byte buffer.
    pub fn read(kind: CK_ATTRIBUTE_TYPE, n: usize) -> AttrQuery {
        AttrQuery {
            kind,
            buf: Some(vec![0; n]),
            len: 0,
        }
    }

    /// The value read, if the module filled it.
    pub fn value(&self) -> Option<&[u8]> {
        match &self.buf {
            Some(buf)
                if self.len != CK_UNAVAILABLE_INFORMATION && (self.len as usize) <= buf.len() =>
            {
                Some(&buf[..self.len as usize])
            }
            _ => None,
        }
    }

    /// True when the module marked this entry CK_UNAVAILABLE_INFORMATION.
    pub fn unavailable(&self) -> bool {
        self.len == CK_UNAVAILABLE_INFORMATION
    }
}

/// C_GetAttributeValue over `queries`, updating each entry's length.
pub fn get_attributes(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    queries: &mut [AttrQuery],
) -> CK_RV {
    let mut template: Vec<CK_ATTRIBUTE> = queries
        .iter_mut()
        .map(|q| match &mut q.buf {
            Some(buf) => CK_ATTRIBUTE {
                type_: q.kind,
                pValue: buf.as_mut_ptr().cast(),
                ulValueLen: buf.len() as CK_ULONG,
            },
            None => CK_ATTRIBUTE {
                type_: q.kind,
                pValue: null_mut(),
                ulValueLen: 0,
            },
        })
        .collect();
    // SAFETY: every pValue is NULL or a live buffer of ulValueLen bytes.
    let rv = unsafe {
        f!(C_GetAttributeValue)(
            session,
            object,
            template.as_mut_ptr(),
            template.len() as CK_ULONG,
        )
    };
    for (q, t) in queries.iter_mut().zip(&template) {
        q.len = t.ulValueLen;
    }
    rv
}

/// C_SetAttributeValue with one attribute of raw bytes.
pub fn set_attribute(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    kind: CK_ATTRIBUTE_TYPE,
    value: &[u8],
) -> CK_RV {
    let mut value = value.to_vec();
    let mut template = [CK_ATTRIBUTE {
        type_: kind,
        pValue: value.as_mut_ptr().cast(),
        ulValueLen: value.len() as CK_ULONG,
    }];
    // SAFETY: the template and its value outlive the call.
    unsafe { f!(C_SetAttributeValue)(session, object, template.as_mut_ptr(), 1) }
}

/// C_GenerateRandom into `n` bytes.
pub fn generate_random(session: CK_SESSION_HANDLE, n: usize) -> (CK_RV, Vec<u8>) {
    let mut buf = vec![0u8; n];
    // SAFETY: `buf` has room for `n` bytes.
    let rv = unsafe { f!(C_GenerateRandom)(session, buf.as_mut_ptr(), n as CK_ULONG) };
    (rv, buf)
}

/// A CK_BBOOL attribute value.
pub fn bool_bytes(value: bool) -> [u8; 1] {
    [if value { CK_TRUE } else { CK_FALSE }]
}

/// A CK_ULONG attribute value in native byte order.
pub fn ulong_bytes(value: CK_ULONG) -> Vec<u8> {
    value.to_ne_bytes().to_vec()
}

/// C_Initialize with `args` (NULL when `None`).
pub fn initialize(args: Option<&mut CK_C_INITIALIZE_ARGS>) -> CK_RV {
    let ptr = match args {
        Some(args) => (args as *mut CK_C_INITIALIZE_ARGS).cast(),
        None => null_mut(),
    };
    // SAFETY: `ptr` is NULL or a live CK_C_INITIALIZE_ARGS.
    unsafe { f!(C_Initialize)(ptr) }
}

/// CK_C_INITIALIZE_ARGS with only `flags` set.
pub fn init_args(flags: CK_FLAGS) -> CK_C_INITIALIZE_ARGS {
    CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags,
        pReserved: null_mut(),
    }
}

/// C_Finalize(NULL).
pub fn finalize() -> CK_RV {
    // SAFETY: NULL is the only valid pReserved.
    unsafe { f!(C_Finalize)(null_mut()) }
}

/// C_GetInfo.
pub fn get_info() -> (CK_RV, CK_INFO) {
    let mut info = CK_INFO::default();
    // SAFETY: `info` outlives the call.
    let rv = unsafe { f!(C_GetInfo)(&mut info) };
    (rv, info)
}

/// C_GetSlotList(tokenPresent, NULL, &count): the slot count.
pub fn slot_count(token_present: bool) -> (CK_RV, CK_ULONG) {
    let mut count: CK_ULONG = 0;
    // SAFETY: a NULL list with a live count cell is the documented length query.
    let rv = unsafe { f!(C_GetSlotList)(bool_bytes(token_present)[0], null_mut(), &mut count) };
    (rv, count)
}

/// C_GetTokenInfo.
pub fn token_info(slot: CK_SLOT_ID) -> (CK_RV, CK_TOKEN_INFO) {
    let mut info = CK_TOKEN_INFO::default();
    // SAFETY: `info` outlives the call.
    let rv = unsafe { f!(C_GetTokenInfo)(slot, &mut info) };
    (rv, info)
}

/// C_GetSlotInfo.
pub fn slot_info(slot: CK_SLOT_ID) -> (CK_RV, CK_SLOT_INFO) {
    let mut info = CK_SLOT_INFO::default();
    // SAFETY: `info` outlives the call.
    let rv = unsafe { f!(C_GetSlotInfo)(slot, &mut info) };
    (rv, info)
}

/// C_InitToken with a blank-padded 32-byte label.
pub fn init_token(slot: CK_SLOT_ID, so_pin: &str, label: &str) -> CK_RV {
    let mut padded = [b' '; 32];
    let n = label.len().min(32);
    padded[..n].copy_from_slice(&label.as_bytes()[..n]);
    // SAFETY: PIN and label buffers outlive the call; the label is exactly 32 bytes.
    unsafe {
        f!(C_InitToken)(
            slot,
            so_pin.as_ptr() as *mut u8,
            so_pin.len() as CK_ULONG,
            padded.as_mut_ptr(),
        )
    }
}

/// C_SignInit + C_Sign (length query, then the real call) with a raw mechanism.
pub fn sign_once(
    session: CK_SESSION_HANDLE,
    mech: &CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
    data: &[u8],
) -> Result<Vec<u8>, CK_RV> {
    let rv = init(Op::Sign, session, mech, key);
    if rv != CKR_OK {
        return Err(rv);
    }
    let query = sign(session, data, Out::Null);
    if query.rv != CKR_OK {
        return Err(query.rv);
    }
    let out = sign(session, data, Out::Buf(query.len));
    if out.rv != CKR_OK {
        return Err(out.rv);
    }
    Ok(out.data)
}

/// CK_RSA_PKCS_PSS_PARAMS.
pub fn pss_params(
    hash: CK_MECHANISM_TYPE,
    mgf: CK_RSA_PKCS_MGF_TYPE,
    salt: CK_ULONG,
) -> CK_RSA_PKCS_PSS_PARAMS {
    CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: hash,
        mgf,
        sLen: salt,
    }
}

/// C_GetMechanismList (count query, then the list); every type, known to cryptoki or not.
pub fn mechanism_list(slot: CK_SLOT_ID) -> (CK_RV, Vec<CK_MECHANISM_TYPE>) {
    let mut count: CK_ULONG = 0;
    // SAFETY: NULL list with a live count is the documented length query.
    let rv = unsafe { f!(C_GetMechanismList)(slot, null_mut(), &mut count) };
    if rv != CKR_OK {
        return (rv, Vec::new());
    }
    let mut list = vec![0 as CK_MECHANISM_TYPE; count as usize];
    // SAFETY: `list` holds `count` entries.
    let rv = unsafe { f!(C_GetMechanismList)(slot, list.as_mut_ptr(), &mut count) };
    list.truncate(count as usize);
    (rv, list)
}

/// C_GetMechanismInfo.
pub fn mechanism_info(
    slot: CK_SLOT_ID,
    mechanism: CK_MECHANISM_TYPE,
) -> (CK_RV, CK_MECHANISM_INFO) {
    let mut info = CK_MECHANISM_INFO::default();
    // SAFETY: `info` outlives the call.
    let rv = unsafe { f!(C_GetMechanismInfo)(slot, mechanism, &mut info) };
    (rv, info)
}
