//! Preparing a token the same way on every module, through the C ABI only: C_InitToken,
//! C_InitPIN, the benchmark keys, and the many objects of the find and start-up tests.

use crate::p11::{Mech, Module, Rv, Template, P11};
use cryptoki_sys::*;
use std::time::Instant;

/// SO PIN of every bench token.
pub const SO_PIN: &str = "bench-so-8642";
/// User PIN of every bench token.
pub const USER_PIN: &str = "bench-user-1357";
/// DER OID of P-256 (prime256v1), the `CKA_EC_PARAMS` of the ECDSA key.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Label of the EC key pair.
pub const EC_LABEL: &str = "bench-ec";
/// Label of the RSA key pair.
pub const RSA_LABEL: &str = "bench-rsa";
/// Label of the AES key.
pub const AES_LABEL: &str = "bench-aes";

impl From<Rv> for String {
    fn from(rv: Rv) -> String {
        rv.to_string()
    }
}

/// Names the PKCS#11 call that failed.
pub trait Context<T> {
    /// The error as "`what`: CKR_…".
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T> Context<T> for P11<T> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|rv| format!("{what}: {rv}"))
    }
}

/// The slot whose initialised token carries `label`.
pub fn find_slot(module: &Module, label: &str) -> Result<CK_SLOT_ID, String> {
    for slot in module.slots().ctx("C_GetSlotList")? {
        let (l, initialised) = module.token_info(slot).ctx("C_GetTokenInfo")?;
        if initialised && l == label {
            return Ok(slot);
        }
    }
    Err(format!("no initialised token labelled {label:?}"))
}

/// Initialises the first uninitialised token as `label` with [`SO_PIN`] and [`USER_PIN`]
/// and returns its slot (SoftHSM renumbers the slot on C_InitToken, so it is looked up
/// again by label).
pub fn init_token(module: &Module, label: &str) -> Result<CK_SLOT_ID, String> {
    let mut free = None;
    for slot in module.slots().ctx("C_GetSlotList")? {
        let (l, initialised) = module.token_info(slot).ctx("C_GetTokenInfo")?;
        if initialised && l == label {
            return Err(format!(
                "a token labelled {label:?} is already initialised: use a fresh work directory"
            ));
        }
        if !initialised && free.is_none() {
            free = Some(slot);
        }
    }
    let free = free.ok_or("no uninitialised token to initialise")?;
    module.init_token(free, SO_PIN, label).ctx("C_InitToken")?;
    let slot = find_slot(module, label)?;
    let session = module.open_session(slot, true).ctx("C_OpenSession")?;
    module
        .login(session, CKU_SO, SO_PIN)
        .ctx("C_Login(CKU_SO)")?;
    module.init_pin(session, USER_PIN).ctx("C_InitPIN")?;
    module.logout(session).ctx("C_Logout")?;
    module.close_session(session).ctx("C_CloseSession")?;
    Ok(slot)
}

/// The keys every operation uses.
#[derive(Clone, Copy, Debug)]
pub struct Keys {
    /// EC P-256 private key.
    pub ec: CK_OBJECT_HANDLE,
    /// RSA-2048 private key.
    pub rsa: CK_OBJECT_HANDLE,
    /// AES-256 key.
    pub aes: CK_OBJECT_HANDLE,
}

/// Generates the EC P-256 and RSA-2048 key pairs and the AES-256 key as token objects.
pub fn generate_keys(module: &Module, session: CK_SESSION_HANDLE) -> Result<Keys, String> {
    let private = |label: &str| {
        Template::new()
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, true)
            .bool(CKA_SENSITIVE, true)
            .bool(CKA_SIGN, true)
            .bytes(CKA_LABEL, label.as_bytes())
            .bytes(CKA_ID, label.as_bytes())
    };
    let public = |label: &str| {
        Template::new()
            .bool(CKA_TOKEN, true)
            .bool(CKA_VERIFY, true)
            .bytes(CKA_LABEL, label.as_bytes())
            .bytes(CKA_ID, label.as_bytes())
    };
    let (_, ec) = module
        .generate_key_pair(
            session,
            &Mech::Plain(CKM_EC_KEY_PAIR_GEN),
            &public(EC_LABEL).bytes(CKA_EC_PARAMS, P256_OID),
            &private(EC_LABEL),
        )
        .ctx("C_GenerateKeyPair(EC P-256)")?;
    let (_, rsa) = module
        .generate_key_pair(
            session,
            &Mech::Plain(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &public(RSA_LABEL)
                .ulong(CKA_MODULUS_BITS, 2048)
                .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]),
            &private(RSA_LABEL),
        )
        .ctx("C_GenerateKeyPair(RSA-2048)")?;
    let aes = module
        .generate_key(
            session,
            &Mech::Plain(CKM_AES_KEY_GEN),
            &Template::new()
                .bool(CKA_TOKEN, true)
                .bool(CKA_PRIVATE, true)
                .bool(CKA_SENSITIVE, true)
                .bool(CKA_ENCRYPT, true)
                .bool(CKA_DECRYPT, true)
                .ulong(CKA_VALUE_LEN, 32)
                .bytes(CKA_LABEL, AES_LABEL.as_bytes())
                .bytes(CKA_ID, AES_LABEL.as_bytes()),
        )
        .ctx("C_GenerateKey(AES-256)")?;
    Ok(Keys { ec, rsa, aes })
}

/// Label of the `i`-th AES key of the find test.
pub fn find_key_label(i: usize) -> String {
    format!("find-{i:05}")
}

/// Label of the `i`-th data object of the start-up test.
pub fn data_object_label(i: usize) -> String {
    format!("obj-{i:05}")
}

/// Creates `count` private AES-256 token keys (C_CreateObject, random values) labelled
/// [`find_key_label`]; returns the seconds it took.
pub fn create_find_keys(
    module: &Module,
    session: CK_SESSION_HANDLE,
    count: usize,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut value = [0u8; 32];
    for i in 0..count {
        module
            .generate_random(session, &mut value)
            .ctx("C_GenerateRandom")?;
        let label = find_key_label(i);
        let template = Template::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_AES)
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, true)
            .bool(CKA_SENSITIVE, true)
            .bool(CKA_ENCRYPT, true)
            .bool(CKA_DECRYPT, true)
            .bytes(CKA_VALUE, &value)
            .bytes(CKA_LABEL, label.as_bytes())
            .bytes(CKA_ID, label.as_bytes());
        module
            .create_object(session, &template)
            .ctx("C_CreateObject(AES key)")?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Creates `count` public data objects (`CKO_DATA`, 32-byte value) labelled
/// [`data_object_label`]: the cheapest token object both modules store. Returns seconds.
pub fn create_data_objects(
    module: &Module,
    session: CK_SESSION_HANDLE,
    count: usize,
) -> Result<f64, String> {
    let start = Instant::now();
    for i in 0..count {
        let label = data_object_label(i);
        let mut value = [0u8; 32];
        value[..label.len().min(32)].copy_from_slice(&label.as_bytes()[..label.len().min(32)]);
        let template = Template::new()
            .ulong(CKA_CLASS, CKO_DATA)
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, false)
            .bytes(CKA_APPLICATION, b"hsmux-bench")
            .bytes(CKA_LABEL, label.as_bytes())
            .bytes(CKA_VALUE, &value);
        module
            .create_object(session, &template)
            .ctx("C_CreateObject(data object)")?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The keys of a token prepared earlier (or outside hsmux, such as a KMS account), found
/// by label: the EC private key must be there; an absent RSA or AES key is
/// `CK_INVALID_HANDLE` (operations on it are not asked for).
pub fn lookup_keys(module: &Module, session: CK_SESSION_HANDLE) -> Result<Keys, String> {
    let find = |class: CK_OBJECT_CLASS, label: &str| -> Result<CK_OBJECT_HANDLE, String> {
        let template = Template::new()
            .ulong(CKA_CLASS, class)
            .bytes(CKA_LABEL, label.as_bytes());
        let mut handles = [0; 2];
        match module
            .find(session, &template, &mut handles)
            .ctx("C_FindObjects")?
        {
            0 => Ok(CK_INVALID_HANDLE),
            1 => Ok(handles[0]),
            n => Err(format!("{n} objects labelled {label:?}, expected one")),
        }
    };
    let ec = find(CKO_PRIVATE_KEY, EC_LABEL)?;
    if ec == CK_INVALID_HANDLE {
        return Err(format!("no private key labelled {EC_LABEL:?} on the token"));
    }
    Ok(Keys {
        ec,
        rsa: find(CKO_PRIVATE_KEY, RSA_LABEL)?,
        aes: find(CKO_SECRET_KEY, AES_LABEL)?,
    })
}
