//! The `pkcs11` backend: a token served by a vendor's PKCS#11 library (Thales Luna,
//! nShield, Utimaco, SoftHSM, …).
//!
//! hsmux loads the vendor `.so` itself (no `cryptoki` wrapper: we control buffers and
//! the number of calls), finds the configured vendor slot, and routes the token's key
//! operations to it. Per signature the vendor sees exactly `C_SignInit` + one `C_Sign`
//! with an output buffer sized from the key, on a vendor session of its own: sessions
//! come from a pool whose lock is held only to pop and push a handle, never across a
//! vendor call, so threads sign in parallel.
//!
//! Where a vendor's RSA-OAEP or RSA-PSS refuses a parameter set (SoftHSM 2.6 only does
//! OAEP with SHA-1 and no label, and PSS only with MGF1 over the same hash), the
//! backend pads in software and uses the vendor's raw RSA (`CKM_RSA_X_509`) when the
//! vendor offers it; the refusal is remembered so the next call goes straight there.
//! An OAEP label is always checked here when raw RSA is available, because SoftHSM 2.6
//! accepts a label and ignores it.
//!
//! Login: with `pin_from_application` (or no configured PIN) the application's PIN goes
//! to the vendor's `C_Login`. With a configured PIN the application must present that
//! PIN (compared in constant time) and the vendor is logged in with it, on `login` and
//! before `list`. Either way the vendor then stays logged in for the backend's life:
//! a vendor logout makes SoftHSM (and other vendors) give private objects new handles,
//! which would invalidate the token layer's cached `key_ref`s. When the vendor answers
//! `CKR_USER_ALREADY_LOGGED_IN` (so it did not check the PIN), a passed-through PIN is
//! compared with a salted digest of the one it last accepted. `list` shows what the
//! vendor shows: before a pass-through login, only public objects.
//!
//! Sessions: one vendor session stays open for the backend's life and is never used,
//! because a vendor logs out (and SoftHSM forgets every object handle) when an
//! application's last session closes. A session whose operation failed half-way is
//! closed rather than pooled. Object handles are the `key_ref`s; they stay valid while
//! the backend lives.

mod attrs;
mod ffi;
mod keys;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::backend::{
    Backend, BackendError, BackendResult, Capabilities, CipherRequest, DecryptScheme, HashAlg,
    KeyKind, KeySpec, KeyUsage, MacScheme, Mgf, ObjectClass, PssSalt, RemoteObject, SignRequest, SignScheme,
    SymmetricScheme,
};
use crate::registry::{Entry, OpenContext, Opened, SettingError, Settings};
use crate::secret::SecretRef;
use attrs::Attrs;
use serde::Deserialize;
use std::time::Duration;
use ffi::{padded_str, rv_name, Mech, Op, VErr, VResult, Vendor};

/// Where a `pkcs11` token's `C_Login` PIN goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinSource {
    /// The configured `pin` is what applications must present, and what hsmux gives
    /// the vendor.
    #[default]
    Config,
    /// The application's PIN is passed through to the vendor.
    Application,
}

/// Keys of a `backend = "pkcs11"` token: how to reach one vendor token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Settings {
    /// The vendor's PKCS#11 library.
    pub library: PathBuf,
    /// Select the vendor slot whose token has this label…
    pub token: Option<String>,
    /// …or this slot id (exactly one of the two).
    pub slot: Option<u64>,
    /// The vendor user PIN: `env:NAME`, `file:PATH` or a literal.
    pub pin: Option<SecretRef>,
    /// `config` (default) or `application`.
    #[serde(default)]
    pub pin_source: PinSource,
    /// Seconds the object list is trusted before it is fetched again (default 300).
    pub cache_ttl_secs: Option<u64>,
}

impl Settings for Pkcs11Settings {
    fn check(&self) -> Result<(), SettingError> {
        if self.token.is_some() == self.slot.is_some() {
            return Err(SettingError::key(
                "token",
                "or `slot`: give exactly one of them",
            ));
        }
        if self.pin_source == PinSource::Application && self.pin.is_some() {
            return Err(SettingError::key(
                "pin",
                "must not be set with pin_source = \"application\"",
            ));
        }
        Ok(())
    }
}

fn open_token(s: Pkcs11Settings, _ctx: &OpenContext<'_>) -> Result<Opened, SettingError> {
    let list_ttl = Duration::from_secs(s.cache_ttl_secs.unwrap_or(300));
    Ok(Opened::Service {
        backend: Arc::new(Pkcs11Backend::open(s)?),
        list_ttl,
    })
}

/// The registration of the `pkcs11` backend.
pub static ENTRY: Entry<Pkcs11Settings> = Entry { open: open_token };

/// What a sign/decrypt needs to size its output without asking the vendor.
#[derive(Debug, Clone, Copy)]
enum KeyInfo {
    Rsa { bits: usize },
    Ec { sig_len: usize },
}

/// Output room when a key's size is not known: RSA-16384, and ECDSA on P-521.
const MAX_RSA_BYTES: usize = 2048;
const MAX_ECDSA_SIG: usize = 132;

struct VendorCaps {
    caps: Capabilities,
    rsa_x509: bool,
}

/// A token served by a vendor PKCS#11 library.
pub struct Pkcs11Backend {
    vendor: Arc<Vendor>,
    slot: CK_SLOT_ID,
    serial: String,
    label: String,
    pin: Option<Zeroizing<Vec<u8>>>,
    pin_from_application: bool,
    /// Idle vendor sessions; the lock is held only to pop or push.
    idle: Mutex<Vec<CK_SESSION_HANDLE>>,
    /// A session kept open for the backend's life and never used: a vendor logs out,
    /// and SoftHSM forgets its object handles, when an application's last session
    /// closes, and a spoiled pooled session may be the last one.
    anchor: OnceLock<CK_SESSION_HANDLE>,
    /// Sizes of keys seen by `list`/`generate`, by vendor handle.
    sizes: RwLock<HashMap<CK_OBJECT_HANDLE, KeyInfo>>,
    caps: OnceLock<VendorCaps>,
    /// Salted digest of the last passed-through PIN the vendor accepted.
    verified_pin: Mutex<Option<[u8; 32]>>,
    pin_salt: [u8; 16],
    /// The vendor refused the configured PIN: it is not presented again (every try would
    /// count against the real token's retry limit) until the configuration changes.
    pin_refused: std::sync::atomic::AtomicBool,
    /// Bit per (hash, mgf) the vendor's own OAEP refused.
    oaep_refused: AtomicU64,
    /// Bit per (hash, mgf) the vendor's own PSS refused.
    pss_refused: AtomicU64,
    /// The process that opened us (a backend inherited by a fork child is inert).
    pid: u32,
}

impl fmt::Debug for Pkcs11Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Backend")
            .field("library", &self.vendor.path)
            .field("slot", &self.slot)
            .field("token", &self.label)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// A CK_ULONG as the `u64` of the backend contract (the same type on 64-bit Linux).
#[allow(clippy::useless_conversion)]
fn wide(v: CK_ULONG) -> u64 {
    u64::from(v)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A vendor return value as the error the token layer acts on.
fn map_err(e: VErr) -> BackendError {
    let detail = || {
        format!(
            "{} returned {:#x}{}",
            e.func,
            e.rv,
            rv_name(e.rv).map(|n| format!(" ({n})")).unwrap_or_default()
        )
    };
    match e.rv {
        CKR_KEY_HANDLE_INVALID | CKR_OBJECT_HANDLE_INVALID => BackendError::NotFound(detail()),
        CKR_KEY_FUNCTION_NOT_PERMITTED => BackendError::NotPermitted(detail()),
        CKR_MECHANISM_INVALID => BackendError::Unsupported(detail()),
        CKR_ENCRYPTED_DATA_INVALID | CKR_ENCRYPTED_DATA_LEN_RANGE => {
            BackendError::InvalidCiphertext(detail())
        }
        CKR_DATA_LEN_RANGE | CKR_DATA_INVALID => BackendError::InvalidInput(detail()),
        CKR_PIN_INCORRECT => BackendError::PinIncorrect,
        CKR_PIN_LOCKED => BackendError::PinLocked,
        rv => BackendError::Vendor(wide(rv), e.func.to_string()),
    }
}

/// The session cannot be trusted for another operation.
fn session_spoiled(e: &VErr) -> bool {
    e.after_init
        || matches!(
            e.rv,
            CKR_SESSION_HANDLE_INVALID
                | CKR_SESSION_CLOSED
                | CKR_OPERATION_ACTIVE
                | CKR_DEVICE_ERROR
                | CKR_DEVICE_REMOVED
                | CKR_TOKEN_NOT_PRESENT
                | CKR_CRYPTOKI_NOT_INITIALIZED
        )
}

/// The vendor refused a parameter set (not the key or the data).
fn params_refused(e: &VErr) -> bool {
    !e.after_init
        && matches!(
            e.rv,
            CKR_MECHANISM_PARAM_INVALID | CKR_ARGUMENTS_BAD | CKR_MECHANISM_INVALID
        )
}

fn handle(key_ref: &str) -> BackendResult<CK_OBJECT_HANDLE> {
    key_ref.parse().map_err(|_| {
        BackendError::NotFound(format!(
            "key reference {key_ref:?} is not a vendor object handle"
        ))
    })
}

fn hash_index(h: HashAlg) -> u32 {
    match h {
        HashAlg::Sha1 => 0,
        HashAlg::Sha224 => 1,
        HashAlg::Sha256 => 2,
        HashAlg::Sha384 => 3,
        HashAlg::Sha512 => 4,
    }
}




fn bool_attr(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

fn ulong_attr(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// Our template entries, then the application's (which win where both name a type).
fn merge(
    mut ours: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
    app: &[(u64, Vec<u8>)],
) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    for (ty, v) in app {
        let ty = *ty as CK_ATTRIBUTE_TYPE;
        match ours.iter_mut().find(|(t, _)| *t == ty) {
            Some(slot) => slot.1 = v.clone(),
            None => ours.push((ty, v.clone())),
        }
    }
    ours
}

fn borrowed(t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Vec<(CK_ATTRIBUTE_TYPE, &[u8])> {
    t.iter().map(|(ty, v)| (*ty, v.as_slice())).collect()
}

/// A vendor session out of the pool; goes back on drop unless spoiled.
struct Lease<'a> {
    b: &'a Pkcs11Backend,
    s: CK_SESSION_HANDLE,
    keep: bool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.keep {
            lock(&self.b.idle).push(self.s);
        } else {
            self.b.vendor.close_session(self.s);
        }
    }
}

impl Pkcs11Backend {
    /// Checks the settings, resolves the PIN, loads the library, initialises it
    /// (`CKF_OS_LOCKING_OK`) and finds the slot. Does not log in: hsmux's `C_Initialize`
    /// stays fast and cannot fail on a PIN. Errors name the setting to change.
    pub fn open(settings: Pkcs11Settings) -> Result<Pkcs11Backend, SettingError> {
        settings.check()?;
        let pin = match &settings.pin {
            Some(p) => Some(p.resolve().map_err(|e| SettingError::key("pin", e))?),
            None => None,
        };
        let vendor =
            Vendor::acquire(&settings.library).map_err(|e| SettingError::key("library", e))?;
        let pid = std::process::id();
        let mut pin_salt = [0u8; 16];
        let found = openssl::rand::rand_bytes(&mut pin_salt)
            .map_err(|e| SettingError::token(format!("random salt: {e}")))
            .and_then(|()| Self::find_slot(&vendor, &settings));
        match found {
            Ok((slot, info)) => Ok(Pkcs11Backend {
                slot,
                serial: padded_str(&info.serialNumber),
                label: padded_str(&info.label),
                vendor,
                pin,
                pin_from_application: settings.pin_source == PinSource::Application,
                idle: Mutex::new(Vec::new()),
                anchor: OnceLock::new(),
                sizes: RwLock::new(HashMap::new()),
                caps: OnceLock::new(),
                verified_pin: Mutex::new(None),
                pin_salt,
                pin_refused: std::sync::atomic::AtomicBool::new(false),
                oaep_refused: AtomicU64::new(0),
                pss_refused: AtomicU64::new(0),
                pid,
            }),
            Err(e) => {
                vendor.release(pid);
                Err(e)
            }
        }
    }

    fn find_slot(
        vendor: &Vendor,
        settings: &Pkcs11Settings,
    ) -> Result<(CK_SLOT_ID, CK_TOKEN_INFO), SettingError> {
        let lib = vendor.path.display();
        let ctx = |e: VErr| {
            SettingError::key(
                "library",
                format!(
                    "{lib}: {} returned {}",
                    e.func,
                    rv_name(e.rv).map_or_else(|| format!("{:#x}", e.rv), str::to_string)
                ),
            )
        };
        let slots = vendor.slots().map_err(ctx)?;
        match (&settings.token, settings.slot) {
            (Some(label), None) => {
                let mut seen = Vec::new();
                let mut found = Vec::new();
                for s in slots {
                    let info = vendor.token_info(s).map_err(ctx)?;
                    let l = padded_str(&info.label);
                    if l == *label {
                        found.push((s, info));
                    }
                    seen.push(format!("{l:?}"));
                }
                match found.len() {
                    1 => Ok(found.remove(0)),
                    0 => Err(SettingError::key("token", format!(
                        "library {lib}: no vendor token labelled {label:?} (labels seen: {})",
                        if seen.is_empty() {
                            "none".to_string()
                        } else {
                            seen.join(", ")
                        }
                    ))),
                    n => Err(SettingError::key("token", format!(
                        "library {lib}: {n} vendor tokens are labelled {label:?}; select one by slot"
                    ))),
                }
            }
            (None, Some(id)) => {
                let id = id as CK_SLOT_ID;
                if !slots.contains(&id) {
                    let seen: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
                    return Err(SettingError::key("slot", format!(
                        "library {lib}: no vendor slot {id} with a token (slots with tokens: {})",
                        if seen.is_empty() {
                            "none".to_string()
                        } else {
                            seen.join(", ")
                        }
                    )));
                }
                Ok((id, vendor.token_info(id).map_err(ctx)?))
            }
            _ => Err(SettingError::key(
                "token",
                "or `slot`: give exactly one of them",
            )),
        }
    }

    /// The vendor slot this backend serves.
    pub fn vendor_slot(&self) -> u64 {
        wide(self.slot)
    }

    /// The vendor token's label.
    pub fn vendor_label(&self) -> &str {
        &self.label
    }

    fn lease(&self) -> VResult<Lease<'_>> {
        if self.anchor.get().is_none() {
            let s = self.vendor.open_session(self.slot)?;
            if self.anchor.set(s).is_err() {
                // Another thread anchored first; ours joins the pool.
                lock(&self.idle).push(s);
            }
        }
        let pooled = lock(&self.idle).pop();
        let s = match pooled {
            Some(s) => s,
            None => self.vendor.open_session(self.slot)?,
        };
        Ok(Lease {
            b: self,
            s,
            keep: true,
        })
    }

    /// Runs `f` on a vendor session of this thread's own; once more on a fresh
    /// session if the pooled one turned out to be dead.
    fn run<T>(&self, mut f: impl FnMut(CK_SESSION_HANDLE) -> VResult<T>) -> VResult<T> {
        let mut retried = false;
        loop {
            let mut l = self.lease()?;
            match f(l.s) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if session_spoiled(&e) {
                        l.keep = false;
                    }
                    let dead = matches!(e.rv, CKR_SESSION_HANDLE_INVALID | CKR_SESSION_CLOSED);
                    if dead && !retried && !e.after_init {
                        // The vendor forgot our sessions (restarted, re-initialised):
                        // the rest of the pool is as dead as this one.
                        let stale = std::mem::take(&mut *lock(&self.idle));
                        for s in stale {
                            self.vendor.close_session(s);
                        }
                        retried = true;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    fn one_shot(
        &self,
        op: Op,
        mech: &Mech<'_>,
        key: CK_OBJECT_HANDLE,
        input: &[u8],
        out_len: usize,
    ) -> VResult<Vec<u8>> {
        self.run(|s| self.vendor.one_shot(op, s, mech, key, input, out_len))
    }

    fn vendor_login(&self, pin: &[u8], configured: bool) -> BackendResult<()> {
        let refused = || {
            BackendError::Vendor(
                CKR_PIN_INCORRECT,
                format!(
                    "vendor token {:?} (library {}) refused the configured pin; hsmux does not \
                     present it again until the configuration changes (key `pin`)",
                    self.label,
                    self.vendor.path.display()
                ),
            )
        };
        if configured && self.pin_refused.load(Ordering::Acquire) {
            return Err(refused());
        }
        let r = self.run(|s| match self.vendor.login(s, pin) {
            rv @ (CKR_OK | CKR_USER_ALREADY_LOGGED_IN) => Ok(rv),
            rv => Err(VErr {
                rv,
                func: "C_Login",
                after_init: false,
            }),
        });
        match r {
            Ok(_) if configured => Ok(()),
            // The vendor checked this PIN: later application logins are held to it.
            Ok(CKR_OK) => {
                *lock(&self.verified_pin) = Some(self.pin_digest(pin));
                Ok(())
            }
            // The vendor did not look at the PIN; hold it to the one it last accepted.
            Ok(_) => match *lock(&self.verified_pin) {
                Some(known) if !openssl::memcmp::eq(&known, &self.pin_digest(pin)) => {
                    Err(BackendError::PinIncorrect)
                }
                _ => Ok(()),
            },
            // The application's C_Login is answered with the vendor's own verdict; the
            // message says it was the configured PIN the vendor refused.
            Err(e) if configured && e.rv == CKR_PIN_INCORRECT => {
                self.pin_refused.store(true, Ordering::Release);
                let e = refused();
                // A configuration error, not a user's typo.
                tracing::warn!("{e}");
                Err(e)
            }
            Err(e) => Err(map_err(e)),
        }
    }

    /// A salted digest of a PIN, so a passed-through PIN is not kept in memory.
    fn pin_digest(&self, pin: &[u8]) -> [u8; 32] {
        let mut h = openssl::sha::Sha256::new();
        h.update(&self.pin_salt);
        h.update(pin);
        h.finish()
    }

    /// The vendor PIN belongs to the configuration (not the application).
    fn configured_pin(&self) -> Option<&[u8]> {
        if self.pin_from_application {
            None
        } else {
            self.pin.as_deref().map(|p| p.as_slice())
        }
    }

    fn vendor_caps(&self) -> Option<&VendorCaps> {
        if let Some(c) = self.caps.get() {
            return Some(c);
        }
        let mechs = self.vendor.mechanisms(self.slot).ok()?;
        let info = |m: CK_MECHANISM_TYPE| {
            if mechs.contains(&m) {
                Some(self.vendor.mechanism_info(self.slot, m).ok())
            } else {
                None
            }
        };
        // Present, and (when the vendor describes it) allowed for `flag`.
        let can = |m: CK_MECHANISM_TYPE, flag: CK_FLAGS| match info(m) {
            Some(Some(i)) => i.flags & flag != 0,
            Some(None) => true,
            None => false,
        };
        let sizes = |m: CK_MECHANISM_TYPE| match info(m) {
            Some(Some(i)) => Some((i.ulMinKeySize as usize, i.ulMaxKeySize as usize)),
            Some(None) => Some((0, usize::MAX)),
            None => None,
        };
        let mut generate = Vec::new();
        if let Some((lo, hi)) = sizes(CKM_RSA_PKCS_KEY_PAIR_GEN) {
            for bits in [2048, 3072, 4096] {
                if bits >= lo && bits <= hi {
                    generate.push(KeyKind::Rsa { bits });
                }
            }
        }
        if let Some((lo, hi)) = sizes(CKM_EC_KEY_PAIR_GEN) {
            for (bits, oid) in [
                (256, keys::P256_OID),
                (384, keys::P384_OID),
                (521, keys::P521_OID),
            ] {
                if bits >= lo && bits <= hi {
                    generate.push(KeyKind::Ec {
                        params: oid.to_vec(),
                    });
                }
            }
        }
        if sizes(CKM_EC_EDWARDS_KEY_PAIR_GEN).is_some() {
            generate.push(KeyKind::Ed25519);
        }
        if let Some((lo, hi)) = sizes(CKM_AES_KEY_GEN) {
            // Sizes are in bytes for AES; some vendors report bits.
            let (lo, hi) = if lo >= 128 {
                (lo / 8, hi / 8)
            } else {
                (lo, hi)
            };
            for len in [16, 24, 32] {
                if len >= lo && len <= hi {
                    generate.push(KeyKind::Aes { len });
                }
            }
        }
        if sizes(CKM_GENERIC_SECRET_KEY_GEN).is_some() {
            generate.push(KeyKind::GenericSecret { len: 32 });
        }
        const ALL: [HashAlg; 5] = [
            HashAlg::Sha1,
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ];
        // The module hashes; the vendor signs the digest with raw ECDSA / PKCS#1 v1.5.
        // PSS and OAEP are padded here around raw RSA when the vendor has it, so every
        // parameter set works; with only the vendor's own PSS/OAEP, MGF1 follows the hash.
        let raw_rsa_sign = can(CKM_RSA_X_509, CKF_SIGN);
        let raw_rsa_decrypt = can(CKM_RSA_X_509, CKF_DECRYPT);
        // Raw input (`None`) and every hash.
        let hashes = || std::iter::once(None).chain(ALL.map(Some));
        let mut signatures = Vec::new();
        if can(CKM_ECDSA, CKF_SIGN) {
            signatures.extend(hashes().map(|hash| SignScheme::Ecdsa {
                hash,
                curves: Vec::new(),
            }));
        }
        if can(CKM_RSA_PKCS, CKF_SIGN) {
            signatures.extend(hashes().map(|hash| SignScheme::RsaPkcs1 { hash }));
        }
        if raw_rsa_sign || can(CKM_RSA_PKCS_PSS, CKF_SIGN) {
            signatures.extend(ALL.map(|hash| SignScheme::RsaPss {
                hash,
                salt: PssSalt::Any,
                mgf: if raw_rsa_sign { Mgf::Any } else { Mgf::SameHash },
            }));
        }
        if can(CKM_EDDSA, CKF_SIGN) {
            signatures.push(SignScheme::EdDsa);
        }
        let macs = ALL
            .into_iter()
            .filter(|h| can(h.hmac_ckm(), CKF_SIGN))
            .map(|hash| MacScheme {
                hash,
                // Vendors state HMAC key sizes in bytes (SoftHSM: at least the hash length).
                min_key_len: sizes(hash.hmac_ckm()).map_or(0, |(lo, _)| lo),
            })
            .collect();
        let mut decryption = Vec::new();
        if raw_rsa_decrypt || can(CKM_RSA_PKCS_OAEP, CKF_DECRYPT) {
            decryption.extend(ALL.map(|hash| DecryptScheme::RsaOaep {
                hash,
                mgf: if raw_rsa_decrypt { Mgf::Any } else { Mgf::SameHash },
                label: raw_rsa_decrypt,
            }));
        }
        if can(CKM_RSA_PKCS, CKF_DECRYPT) {
            decryption.push(DecryptScheme::RsaPkcs1);
        }
        if raw_rsa_decrypt {
            decryption.push(DecryptScheme::RsaRaw);
        }
        let symmetric = [
            (CKM_AES_GCM, SymmetricScheme::AesGcm),
            (CKM_AES_CBC_PAD, SymmetricScheme::AesCbcPad),
        ]
        .into_iter()
        .filter(|(m, _)| can(*m, CKF_ENCRYPT) && can(*m, CKF_DECRYPT))
        .map(|(_, s)| s)
        .collect();
        let caps = Capabilities {
            signatures,
            macs,
            decryption,
            symmetric,
            generate,
            destroy: true,
            create_objects: true,
        };
        let rsa_x509 = mechs.contains(&CKM_RSA_X_509);
        Some(self.caps.get_or_init(|| VendorCaps { caps, rsa_x509 }))
    }

    fn has_raw_rsa(&self) -> bool {
        self.vendor_caps().is_some_and(|c| c.rsa_x509)
    }

    fn key_info(&self, key: CK_OBJECT_HANDLE) -> Option<KeyInfo> {
        self.sizes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
    }

    fn remember(&self, key: CK_OBJECT_HANDLE, info: KeyInfo) {
        self.sizes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, info);
    }

    /// Output room for an RSA operation with `key`.
    fn rsa_len(&self, key: CK_OBJECT_HANDLE) -> usize {
        match self.key_info(key) {
            Some(KeyInfo::Rsa { bits }) => bits.div_ceil(8),
            _ => MAX_RSA_BYTES,
        }
    }

    /// Exact modulus size of an RSA key, asking the vendor if we have not seen it.
    fn rsa_bits(&self, key: CK_OBJECT_HANDLE) -> BackendResult<usize> {
        if let Some(KeyInfo::Rsa { bits }) = self.key_info(key) {
            return Ok(bits);
        }
        let a = self
            .run(|s| attrs::read(&self.vendor, s, key, &[CKA_MODULUS]))
            .map_err(map_err)?;
        let bits = a.get(CKA_MODULUS).map_or(0, keys::modulus_bits);
        if bits == 0 {
            return Err(BackendError::InvalidInput(
                "the vendor key has no RSA modulus".into(),
            ));
        }
        self.remember(key, KeyInfo::Rsa { bits });
        Ok(bits)
    }

    /// Describes one vendor object; `None` for classes and key types hsmux does not use.
    fn describe(&self, s: CK_SESSION_HANDLE, h: CK_OBJECT_HANDLE) -> VResult<Option<RemoteObject>> {
        let v = &self.vendor;
        let head = attrs::read(v, s, h, &[CKA_CLASS, CKA_KEY_TYPE])?;
        let Some(class) = head.ulong(CKA_CLASS) else {
            return Ok(None);
        };
        let key_type = head.ulong(CKA_KEY_TYPE);
        // Vendor handles are per process: the identity is settled from what the object
        // is once its public half is known (see `settle_identity`); a secret key adds its
        // check value.
        let obj = |class, id, label: Option<Vec<u8>>| RemoteObject {
            unique_id: String::new(),
            key_ref: h.to_string(),
            class,
            id,
            label: String::from_utf8_lossy(label.as_deref().unwrap_or_default()).into_owned(),
            kind: None,
            public_key_der: None,
            value: None,
            usage: KeyUsage::default(),
            never_extractable: false,
            extra: Vec::new(),
        };
        match (class, key_type) {
            (CKO_PRIVATE_KEY | CKO_PUBLIC_KEY, Some(kt)) => {
                let private = class == CKO_PRIVATE_KEY;
                let mut types = vec![CKA_ID, CKA_LABEL];
                if private {
                    types.extend([
                        CKA_SIGN,
                        CKA_DECRYPT,
                        CKA_UNWRAP,
                        CKA_DERIVE,
                        CKA_NEVER_EXTRACTABLE,
                    ]);
                } else {
                    types.extend([CKA_VERIFY, CKA_ENCRYPT, CKA_WRAP]);
                }
                match kt {
                    CKK_RSA => types.extend([CKA_MODULUS, CKA_PUBLIC_EXPONENT]),
                    CKK_EC | CKK_EC_EDWARDS if private => {
                        types.extend([CKA_EC_PARAMS, CKA_PUBLIC_KEY_INFO])
                    }
                    CKK_EC | CKK_EC_EDWARDS => types.extend([CKA_EC_PARAMS, CKA_EC_POINT]),
                    _ => return Ok(None),
                }
                let mut a = attrs::read(v, s, h, &types)?;
                let mut o = obj(
                    if private {
                        ObjectClass::PrivateKey
                    } else {
                        ObjectClass::PublicKey
                    },
                    a.take(CKA_ID).unwrap_or_default(),
                    a.take(CKA_LABEL),
                );
                o.usage = if private {
                    KeyUsage {
                        sign: a.bool(CKA_SIGN),
                        decrypt: a.bool(CKA_DECRYPT),
                        unwrap: a.bool(CKA_UNWRAP),
                        derive: a.bool(CKA_DERIVE),
                        ..KeyUsage::default()
                    }
                } else {
                    KeyUsage {
                        verify: a.bool(CKA_VERIFY),
                        encrypt: a.bool(CKA_ENCRYPT),
                        wrap: a.bool(CKA_WRAP),
                        ..KeyUsage::default()
                    }
                };
                o.never_extractable = private && a.bool(CKA_NEVER_EXTRACTABLE);
                self.key_material(h, kt, private, &a, &mut o);
                Ok(Some(o))
            }
            (CKO_SECRET_KEY, Some(kt)) => {
                let a = attrs::read(
                    v,
                    s,
                    h,
                    &[
                        CKA_ID,
                        CKA_LABEL,
                        CKA_SIGN,
                        CKA_VERIFY,
                        CKA_ENCRYPT,
                        CKA_DECRYPT,
                        CKA_WRAP,
                        CKA_UNWRAP,
                        CKA_DERIVE,
                        CKA_NEVER_EXTRACTABLE,
                        CKA_VALUE_LEN,
                        CKA_CHECK_VALUE,
                    ],
                )?;
                let len = a.ulong(CKA_VALUE_LEN).unwrap_or(0) as usize;
                let kind = match kt {
                    CKK_AES => KeyKind::Aes { len },
                    CKK_GENERIC_SECRET => KeyKind::GenericSecret { len },
                    CKK_SHA_1_HMAC => KeyKind::Hmac {
                        hash: HashAlg::Sha1,
                        len,
                    },
                    CKK_SHA224_HMAC => KeyKind::Hmac {
                        hash: HashAlg::Sha224,
                        len,
                    },
                    CKK_SHA256_HMAC => KeyKind::Hmac {
                        hash: HashAlg::Sha256,
                        len,
                    },
                    CKK_SHA384_HMAC => KeyKind::Hmac {
                        hash: HashAlg::Sha384,
                        len,
                    },
                    CKK_SHA512_HMAC => KeyKind::Hmac {
                        hash: HashAlg::Sha512,
                        len,
                    },
                    _ => return Ok(None),
                };
                let mut a = a;
                let mut o = obj(
                    ObjectClass::SecretKey,
                    a.take(CKA_ID).unwrap_or_default(),
                    a.take(CKA_LABEL),
                );
                o.kind = Some(kind);
                o.usage = KeyUsage {
                    sign: a.bool(CKA_SIGN),
                    verify: a.bool(CKA_VERIFY),
                    encrypt: a.bool(CKA_ENCRYPT),
                    decrypt: a.bool(CKA_DECRYPT),
                    wrap: a.bool(CKA_WRAP),
                    unwrap: a.bool(CKA_UNWRAP),
                    derive: a.bool(CKA_DERIVE),
                };
                o.never_extractable = a.bool(CKA_NEVER_EXTRACTABLE);
                if let Some(kcv) = a.get(CKA_CHECK_VALUE).filter(|v| !v.is_empty()) {
                    o.unique_id = format!("kcv:{}", hex(kcv));
                }
                Ok(Some(o))
            }
            (CKO_CERTIFICATE, _) => {
                let extra_types = [
                    CKA_CERTIFICATE_TYPE,
                    CKA_SUBJECT,
                    CKA_ISSUER,
                    CKA_SERIAL_NUMBER,
                    CKA_PRIVATE,
                ];
                let mut types = vec![CKA_ID, CKA_LABEL, CKA_VALUE];
                types.extend(extra_types);
                let mut a = attrs::read(v, s, h, &types)?;
                let mut o = obj(
                    ObjectClass::Certificate,
                    a.take(CKA_ID).unwrap_or_default(),
                    a.take(CKA_LABEL),
                );
                o.value = a.take(CKA_VALUE);
                o.extra = extras(&mut a, &extra_types);
                Ok(Some(o))
            }
            (CKO_DATA, _) => {
                let extra_types = [CKA_APPLICATION, CKA_OBJECT_ID, CKA_PRIVATE];
                let mut types = vec![CKA_LABEL, CKA_VALUE];
                types.extend(extra_types);
                let mut a = attrs::read(v, s, h, &types)?;
                let mut o = obj(ObjectClass::Data, Vec::new(), a.take(CKA_LABEL));
                o.value = a.take(CKA_VALUE);
                o.extra = extras(&mut a, &extra_types);
                Ok(Some(o))
            }
            _ => Ok(None),
        }
    }

    /// Kind and public key of an asymmetric key; remembers its output size.
    fn key_material(
        &self,
        h: CK_OBJECT_HANDLE,
        kt: CK_KEY_TYPE,
        private: bool,
        a: &Attrs,
        o: &mut RemoteObject,
    ) {
        match kt {
            CKK_RSA => {
                let (n, e) = (a.get(CKA_MODULUS), a.get(CKA_PUBLIC_EXPONENT));
                let bits = n.map_or(0, keys::modulus_bits);
                o.kind = Some(KeyKind::Rsa { bits });
                if let (Some(n), Some(e)) = (n, e) {
                    o.public_key_der = keys::rsa_spki(n, e);
                }
                if private && bits > 0 {
                    self.remember(h, KeyInfo::Rsa { bits });
                }
            }
            _ => {
                let params = a.get(CKA_EC_PARAMS).unwrap_or_default();
                let ed = kt == CKK_EC_EDWARDS;
                o.kind = Some(if ed && keys::is_ed25519(params) {
                    KeyKind::Ed25519
                } else {
                    KeyKind::Ec {
                        params: params.to_vec(),
                    }
                });
                o.public_key_der = if private {
                    a.get(CKA_PUBLIC_KEY_INFO).and_then(keys::checked_spki)
                } else if ed {
                    a.get(CKA_EC_POINT).and_then(keys::ed25519_spki)
                } else {
                    a.get(CKA_EC_POINT).and_then(|p| keys::ec_spki(params, p))
                };
                if private && !ed {
                    if let Some(sig_len) = keys::ecdsa_sig_len(params) {
                        self.remember(h, KeyInfo::Ec { sig_len });
                    }
                }
            }
        }
    }

    /// The public key with `id` of the same kind as `private`, searched on the vendor.
    fn find_public(
        &self,
        s: CK_SESSION_HANDLE,
        private: &RemoteObject,
    ) -> VResult<Option<RemoteObject>> {
        if private.id.is_empty() {
            return Ok(None);
        }
        let class = ulong_attr(CKO_PUBLIC_KEY);
        let found = self
            .vendor
            .find(s, &[(CKA_CLASS, &class), (CKA_ID, &private.id)])?;
        for h in found {
            if let Some(p) = self.describe(s, h)? {
                if same_family(&p, private) && p.public_key_der.is_some() {
                    return Ok(Some(p));
                }
            }
        }
        Ok(None)
    }

    /// Describes a newly made object; an EC private key gets its public key from the
    /// public object with its id.
    fn describe_new(
        &self,
        s: CK_SESSION_HANDLE,
        h: CK_OBJECT_HANDLE,
    ) -> VResult<Option<RemoteObject>> {
        let Some(mut o) = self.describe(s, h)? else {
            return Ok(None);
        };
        if o.class == ObjectClass::PrivateKey && o.public_key_der.is_none() {
            if let Some(p) = self.find_public(s, &o)? {
                adopt_public(&mut o, &p);
            }
        }
        Ok(Some(o))
    }

    /// The vendor objects of a new key, before [`settle_identity`].
    fn generate_objects(&self, spec: &KeySpec) -> BackendResult<Vec<RemoteObject>> {
        let id = if spec.id.is_empty() {
            let mut id = vec![0u8; 16];
            openssl::rand::rand_bytes(&mut id)
                .map_err(|e| BackendError::Other(format!("random key id: {e}")))?;
            id
        } else {
            spec.id.clone()
        };
        let label = spec.label.as_bytes().to_vec();
        let u = spec.usage;
        let common = |private: bool| {
            let mut t = vec![
                (CKA_TOKEN, bool_attr(true)),
                (CKA_PRIVATE, bool_attr(private)),
                (CKA_LABEL, label.clone()),
                (CKA_ID, id.clone()),
            ];
            if private {
                t.push((CKA_SENSITIVE, bool_attr(true)));
                t.push((CKA_EXTRACTABLE, bool_attr(false)));
            }
            t
        };
        let (pub_extra, priv_extra) = &spec.extra;
        let pair = |mech: CK_MECHANISM_TYPE,
                    mut public: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
                    mut private: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
                    rsa: bool| {
            // Every usage flag explicit: vendors default the unnamed ones (SoftHSM to true).
            public.extend([
                (CKA_VERIFY, bool_attr(u.sign || u.verify)),
                (CKA_ENCRYPT, bool_attr(rsa && (u.decrypt || u.encrypt))),
                (CKA_WRAP, bool_attr(rsa && (u.unwrap || u.wrap))),
                (CKA_DERIVE, bool_attr(false)),
            ]);
            private.extend([
                (CKA_SIGN, bool_attr(u.sign)),
                (CKA_DECRYPT, bool_attr(rsa && u.decrypt)),
                (CKA_UNWRAP, bool_attr(rsa && u.unwrap)),
                (CKA_DERIVE, bool_attr(!rsa && u.derive)),
            ]);
            let public = merge(public, pub_extra);
            let private = merge(private, priv_extra);
            self.run(|s| {
                let (hpub, hpriv) = self.vendor.generate_key_pair(
                    s,
                    mech,
                    &borrowed(&public),
                    &borrowed(&private),
                )?;
                let p = self.describe(s, hpub)?;
                let k = self.describe(s, hpriv)?;
                Ok((p, k))
            })
        };
        let secret = |mech: CK_MECHANISM_TYPE, key_type: CK_KEY_TYPE, len: usize| {
            let mut t = common(true);
            t.extend([
                (CKA_CLASS, ulong_attr(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ulong_attr(key_type)),
                (CKA_VALUE_LEN, ulong_attr(len as CK_ULONG)),
                (CKA_SIGN, bool_attr(u.sign)),
                (CKA_VERIFY, bool_attr(u.verify || u.sign)),
                (CKA_DERIVE, bool_attr(u.derive)),
                (CKA_ENCRYPT, bool_attr(key_type == CKK_AES && u.encrypt)),
                (CKA_DECRYPT, bool_attr(key_type == CKK_AES && u.decrypt)),
                (CKA_WRAP, bool_attr(key_type == CKK_AES && u.wrap)),
                (CKA_UNWRAP, bool_attr(key_type == CKK_AES && u.unwrap)),
            ]);
            let t = merge(t, priv_extra);
            self.run(|s| {
                let h = self.vendor.generate_key(s, mech, &borrowed(&t))?;
                self.describe(s, h)
            })
        };
        let made = match &spec.kind {
            KeyKind::Rsa { bits } => {
                let mut public = common(false);
                public.push((CKA_MODULUS_BITS, ulong_attr(*bits as CK_ULONG)));
                public.push((CKA_PUBLIC_EXPONENT, vec![0x01, 0x00, 0x01]));
                pair(CKM_RSA_PKCS_KEY_PAIR_GEN, public, common(true), true)
            }
            KeyKind::Ec { params } => {
                let mut public = common(false);
                public.push((CKA_EC_PARAMS, params.clone()));
                pair(CKM_EC_KEY_PAIR_GEN, public, common(true), false)
            }
            KeyKind::Ed25519 => {
                let mut public = common(false);
                public.push((CKA_EC_PARAMS, keys::ED25519_OID.to_vec()));
                pair(CKM_EC_EDWARDS_KEY_PAIR_GEN, public, common(true), false)
            }
            KeyKind::Aes { len } => {
                return secret(CKM_AES_KEY_GEN, CKK_AES, *len)
                    .map_err(map_err)?
                    .map(|o| vec![o])
                    .ok_or_else(|| {
                        BackendError::Other("the vendor made an unreadable AES key".into())
                    })
            }
            KeyKind::GenericSecret { len } => {
                return secret(CKM_GENERIC_SECRET_KEY_GEN, CKK_GENERIC_SECRET, *len)
                    .map_err(map_err)?
                    .map(|o| vec![o])
                    .ok_or_else(|| {
                        BackendError::Other("the vendor made an unreadable secret".into())
                    })
            }
            KeyKind::Hmac { hash, len } => {
                let len = if *len == 0 { hash.digest_len() } else { *len };
                return secret(CKM_GENERIC_SECRET_KEY_GEN, CKK_GENERIC_SECRET, len)
                    .map_err(map_err)?
                    .map(|o| vec![o])
                    .ok_or_else(|| {
                        BackendError::Other("the vendor made an unreadable secret".into())
                    });
            }
            KeyKind::ServiceSymmetric => {
                return Err(BackendError::Unsupported(
                    "a PKCS#11 token has no service-format keys".into(),
                ))
            }
        };
        match made.map_err(map_err)? {
            (Some(public), Some(mut private)) => {
                if private.public_key_der.is_none() {
                    adopt_public(&mut private, &public);
                }
                Ok(vec![private, public])
            }
            _ => Err(BackendError::Other(
                "the vendor made a key pair it cannot describe".into(),
            )),
        }
    }

    fn sign_pss(
        &self,
        key: CK_OBJECT_HANDLE,
        hash: HashAlg,
        mgf: HashAlg,
        salt_len: usize,
        digest: &[u8],
    ) -> BackendResult<Vec<u8>> {
        let bit = 1u64 << (hash_index(hash) * 5 + hash_index(mgf));
        if self.pss_refused.load(Ordering::Relaxed) & bit == 0 {
            let m = Mech::Pss {
                hash: hash.ckm(),
                mgf: mgf.mgf(),
                salt_len: salt_len as CK_ULONG,
            };
            match self.one_shot(Op::Sign, &m, key, digest, self.rsa_len(key)) {
                Ok(sig) => return Ok(sig),
                Err(e) if params_refused(&e) && self.has_raw_rsa() => {
                    self.pss_refused.fetch_or(bit, Ordering::Relaxed);
                }
                Err(e) => return Err(map_err(e)),
            }
        }
        let bits = self.rsa_bits(key)?;
        let em = keys::pss_encode(hash, mgf, salt_len, digest, bits).ok_or_else(|| {
            BackendError::InvalidInput(format!(
                "PSS: digest of {} bytes with a {salt_len}-byte salt does not fit a {bits}-bit key",
                digest.len()
            ))
        })?;
        let m = Mech::Plain(CKM_RSA_X_509);
        self.one_shot(Op::Sign, &m, key, &em, bits.div_ceil(8))
            .map_err(map_err)
    }

    fn decrypt_oaep(
        &self,
        key: CK_OBJECT_HANDLE,
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
        data: &[u8],
    ) -> BackendResult<Vec<u8>> {
        if !label.is_empty() && self.has_raw_rsa() {
            // Some vendors (SoftHSM 2.6) take an OAEP label and silently ignore it, so
            // a label is checked here, unless the vendor refuses raw RSA for the key.
            match self.oaep_in_software(key, hash, mgf, label, data) {
                Err(BackendError::NotPermitted(_) | BackendError::Unsupported(_)) => {}
                r => return r,
            }
            return self
                .oaep_native(key, hash, mgf, label, data)
                .map_err(map_err);
        }
        let bit = 1u64 << (hash_index(hash) * 5 + hash_index(mgf));
        if self.oaep_refused.load(Ordering::Relaxed) & bit == 0 {
            match self.oaep_native(key, hash, mgf, label, data) {
                Ok(pt) => return Ok(pt),
                Err(e) if params_refused(&e) && self.has_raw_rsa() => {
                    self.oaep_refused.fetch_or(bit, Ordering::Relaxed);
                }
                Err(e) => return Err(map_err(e)),
            }
        }
        self.oaep_in_software(key, hash, mgf, label, data)
    }

    fn oaep_native(
        &self,
        key: CK_OBJECT_HANDLE,
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
        data: &[u8],
    ) -> VResult<Vec<u8>> {
        let m = Mech::Oaep {
            hash: hash.ckm(),
            mgf: mgf.mgf(),
            label,
        };
        self.one_shot(Op::Decrypt, &m, key, data, self.rsa_len(key))
    }

    /// Raw RSA at the vendor, OAEP decoding here.
    fn oaep_in_software(
        &self,
        key: CK_OBJECT_HANDLE,
        hash: HashAlg,
        mgf: HashAlg,
        label: &[u8],
        data: &[u8],
    ) -> BackendResult<Vec<u8>> {
        let k = self.rsa_bits(key)?.div_ceil(8);
        if data.len() != k {
            return Err(BackendError::InvalidCiphertext(format!(
                "OAEP ciphertext of {} bytes for a {k}-byte modulus",
                data.len()
            )));
        }
        let m = Mech::Plain(CKM_RSA_X_509);
        let raw = Zeroizing::new(
            self.one_shot(Op::Decrypt, &m, key, data, k)
                .map_err(map_err)?,
        );
        if raw.len() > k {
            return Err(BackendError::InvalidCiphertext(
                "raw RSA result too long".into(),
            ));
        }
        let mut em = Zeroizing::new(vec![0u8; k - raw.len()]);
        em.extend_from_slice(&raw);
        keys::oaep_decode(hash, mgf, label, &em)
            .map(|pt| pt.to_vec())
            .ok_or_else(|| BackendError::InvalidCiphertext("OAEP decoding failed".into()))
    }

    /// AES-GCM or AES-CBC-PAD with a vendor secret key, either direction.
    fn aes(
        &self,
        op: Op,
        key: CK_OBJECT_HANDLE,
        req: &CipherRequest,
    ) -> BackendResult<Option<Vec<u8>>> {
        match req {
            CipherRequest::AesGcm {
                iv,
                aad,
                tag_bits,
                data,
            } => {
                let m = Mech::Gcm {
                    iv,
                    aad,
                    tag_bits: *tag_bits as CK_ULONG,
                };
                let room = match op {
                    Op::Encrypt => data.len() + tag_bits.div_ceil(8),
                    _ => data.len(),
                };
                self.one_shot(op, &m, key, data, room)
                    .map(Some)
                    .map_err(map_err)
            }
            CipherRequest::AesCbcPad { iv, data } => {
                let m = Mech::Bytes(CKM_AES_CBC_PAD, iv);
                self.one_shot(op, &m, key, data, data.len() + 16)
                    .map(Some)
                    .map_err(map_err)
            }
            _ => Ok(None),
        }
    }
}

/// The raw values of `types` that the object has, for `RemoteObject::extra`.
fn extras(a: &mut Attrs, types: &[CK_ATTRIBUTE_TYPE]) -> Vec<(u64, Vec<u8>)> {
    types
        .iter()
        .filter_map(|t| a.take(*t).map(|v| (wide(*t), v)))
        .collect()
}

/// Both halves are of one key family (RSA / the same curve / Ed25519).
fn same_family(a: &RemoteObject, b: &RemoteObject) -> bool {
    match (&a.kind, &b.kind) {
        (Some(KeyKind::Rsa { .. }), Some(KeyKind::Rsa { .. })) => true,
        // A vendor may withhold CKA_EC_PARAMS on the private half.
        (Some(KeyKind::Ec { params: x }), Some(KeyKind::Ec { params: y })) => {
            x == y || x.is_empty() || y.is_empty()
        }
        (Some(KeyKind::Ed25519), Some(KeyKind::Ed25519)) => true,
        _ => false,
    }
}

/// A private key takes the public key (and, where the vendor hid the modulus or the
/// curve, the kind) of its public half.
fn adopt_public(private: &mut RemoteObject, public: &RemoteObject) {
    private.public_key_der.clone_from(&public.public_key_der);
    let unknown = match &private.kind {
        Some(KeyKind::Rsa { bits }) => *bits == 0,
        Some(KeyKind::Ec { params }) => params.is_empty(),
        _ => false,
    };
    if unknown {
        private.kind.clone_from(&public.kind);
    }
}

/// Gives private keys without a public key the one of the public object with their id.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Gives every object its lasting identity, a fingerprint of class, key kind, `CKA_ID`,
/// label and public key (or check value, certificate or data value): a key destroyed and
/// made again under the same name has another public key, so another identity. Objects
/// alike in all of that are told apart by their order in `objects`. (A vendor's own
/// `CKA_UNIQUE_ID` would be better still; SoftHSM 2.6 has none, and asking for it costs
/// every object two more vendor calls.)
fn settle_identity(objects: &mut [RemoteObject]) {
    pair_halves(objects);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for o in objects.iter_mut() {
        let mut h = openssl::sha::Sha256::new();
        let mut part = |b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        part(&[o.class as u8]);
        part(format!("{:?}", o.kind).as_bytes());
        part(&o.id);
        part(o.label.as_bytes());
        part(o.public_key_der.as_deref().unwrap_or_default());
        part(&o.value.as_deref().map(openssl::sha::sha256).unwrap_or_default());
        part(o.unique_id.as_bytes());
        let fp = format!("fp:{}", hex(&h.finish()[..16]));
        let n = seen.entry(fp.clone()).or_insert(0);
        *n += 1;
        o.unique_id = if *n == 1 { fp } else { format!("{fp}#{n}") };
    }
}

fn pair_halves(objects: &mut [RemoteObject]) {
    let publics: Vec<RemoteObject> = objects
        .iter()
        .filter(|o| {
            o.class == ObjectClass::PublicKey && o.public_key_der.is_some() && !o.id.is_empty()
        })
        .cloned()
        .collect();
    for o in objects.iter_mut() {
        if o.class == ObjectClass::PrivateKey && o.public_key_der.is_none() {
            // Only an unambiguous partner: two public keys with this CKA_ID could be
            // either key's, and the wrong public value is worse than none.
            let mut partners = publics.iter().filter(|p| p.id == o.id && same_family(p, o));
            if let (Some(p), None) = (partners.next(), partners.next()) {
                adopt_public(o, p);
            }
        }
    }
}

impl Backend for Pkcs11Backend {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn serial(&self) -> String {
        self.serial.clone()
    }

    fn capabilities(&self) -> Capabilities {
        self.vendor_caps()
            .map(|c| c.caps.clone())
            .unwrap_or_default()
    }

    fn login(&self, pin: &[u8]) -> BackendResult<()> {
        match self.configured_pin() {
            Some(cfg) => {
                // Length is not secret; the bytes are compared in constant time.
                if cfg.len() != pin.len() || !openssl::memcmp::eq(cfg, pin) {
                    return Err(BackendError::PinIncorrect);
                }
                self.vendor_login(cfg, true)
            }
            None => self.vendor_login(pin, false),
        }
    }

    fn logout(&self) {
        // The vendor stays logged in. A vendor logout makes SoftHSM (and other vendors)
        // renumber private objects, which would invalidate every key_ref the token
        // layer holds; the token layer refuses private-key use until the application
        // logs in again, and that login is checked (see `login`).
    }

    fn list(&self) -> BackendResult<Vec<RemoteObject>> {
        if let Some(cfg) = self.configured_pin() {
            self.vendor_login(cfg, true)?;
        }
        let mut objects = self
            .run(|s| {
                let mut out = Vec::new();
                for h in self.vendor.find(s, &[])? {
                    match self.describe(s, h) {
                        Ok(Some(o)) => out.push(o),
                        Ok(None) => {}
                        // Destroyed by someone else while we were listing.
                        Err(e)
                            if matches!(
                                e.rv,
                                CKR_OBJECT_HANDLE_INVALID | CKR_KEY_HANDLE_INVALID
                            ) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            })
            .map_err(map_err)?;
        settle_identity(&mut objects);
        Ok(objects)
    }

    fn sign(&self, key_ref: &str, req: &SignRequest) -> BackendResult<Vec<u8>> {
        let key = handle(key_ref)?;
        let (m, input, room) = match req {
            SignRequest::Ecdsa { digest, .. } => {
                let room = match self.key_info(key) {
                    Some(KeyInfo::Ec { sig_len }) => sig_len,
                    _ => MAX_ECDSA_SIG,
                };
                (Mech::Plain(CKM_ECDSA), digest, room)
            }
            SignRequest::RsaPkcs1 { digest_info, .. } => {
                (Mech::Plain(CKM_RSA_PKCS), digest_info, self.rsa_len(key))
            }
            SignRequest::RsaPss {
                hash,
                mgf,
                salt_len,
                digest,
            } => return self.sign_pss(key, *hash, *mgf, *salt_len, digest),
            SignRequest::Hmac { hash, message } => {
                (Mech::Plain(hash.hmac_ckm()), message, hash.digest_len())
            }
            SignRequest::EdDsa { message } => (Mech::Plain(CKM_EDDSA), message, 64),
        };
        self.one_shot(Op::Sign, &m, key, input, room)
            .map_err(map_err)
    }

    fn verify(&self, key_ref: &str, req: &SignRequest, signature: &[u8]) -> BackendResult<bool> {
        let key = handle(key_ref)?;
        let SignRequest::Hmac { hash, message } = req else {
            return Err(BackendError::Unsupported(
                "only HMAC is verified in the vendor token".into(),
            ));
        };
        let m = Mech::Plain(hash.hmac_ckm());
        self.run(|s| self.vendor.verify(s, &m, key, message, signature))
            .map_err(map_err)
    }

    fn decrypt(&self, key_ref: &str, req: &CipherRequest) -> BackendResult<Vec<u8>> {
        let key = handle(key_ref)?;
        let (mech, data) = match req {
            CipherRequest::RsaOaep {
                hash,
                mgf,
                label,
                data,
            } => return self.decrypt_oaep(key, *hash, *mgf, label, data),
            CipherRequest::RsaPkcs1 { data } => (CKM_RSA_PKCS, data),
            CipherRequest::RsaRaw { data } => (CKM_RSA_X_509, data),
            CipherRequest::ServiceSymmetric { .. } => {
                return Err(BackendError::Unsupported(
                    "a PKCS#11 token has no service ciphertext format".into(),
                ))
            }
            aes => {
                return self
                    .aes(Op::Decrypt, key, aes)?
                    .ok_or_else(|| BackendError::Unsupported("cipher".into()))
            }
        };
        let m = Mech::Plain(mech);
        self.one_shot(Op::Decrypt, &m, key, data, self.rsa_len(key))
            .map_err(map_err)
    }

    fn encrypt(&self, key_ref: &str, req: &CipherRequest) -> BackendResult<Vec<u8>> {
        let key = handle(key_ref)?;
        self.aes(Op::Encrypt, key, req)?.ok_or_else(|| {
            BackendError::Unsupported(
                "encryption in the vendor token is for AES keys (public-key encryption is done by hsmux)"
                    .into(),
            )
        })
    }

    fn generate(&self, spec: &KeySpec) -> BackendResult<Vec<RemoteObject>> {
        let mut objects = self.generate_objects(spec)?;
        settle_identity(&mut objects);
        Ok(objects)
    }

    fn create_object(&self, attrs: &[(u64, Vec<u8>)]) -> BackendResult<RemoteObject> {
        let t: Vec<(CK_ATTRIBUTE_TYPE, &[u8])> = attrs
            .iter()
            .map(|(ty, v)| (*ty as CK_ATTRIBUTE_TYPE, v.as_slice()))
            .collect();
        self.run(|s| {
            let h = self.vendor.create_object(s, &t)?;
            match self.describe_new(s, h) {
                Ok(Some(mut o)) => {
                    settle_identity(std::slice::from_mut(&mut o));
                    Ok(Ok(o))
                }
                // We could not track it: do not leave it behind.
                Ok(None) => {
                    let _ = self.vendor.destroy_object(s, h);
                    Ok(Err(BackendError::Unsupported(
                        "object class or key type hsmux does not serve".into(),
                    )))
                }
                Err(e) => Err(e),
            }
        })
        .map_err(map_err)?
    }

    fn destroy(&self, key_ref: &str) -> BackendResult<()> {
        let h = handle(key_ref)?;
        self.run(|s| self.vendor.destroy_object(s, h))
            .map_err(map_err)?;
        self.sizes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&h);
        Ok(())
    }
}

impl Drop for Pkcs11Backend {
    fn drop(&mut self) {
        // A backend inherited across fork must not touch the parent's sessions.
        if self.pid != std::process::id() {
            return;
        }
        let idle = std::mem::take(&mut *lock(&self.idle));
        for s in idle.into_iter().chain(self.anchor.get().copied()) {
            self.vendor.close_session(s);
        }
        self.vendor.release(self.pid);
    }
}
