//! One token: login state, its objects (cached in memory, persisted in the store) and the
//! PKCS#11 rules that govern them. Knows nothing of C pointers.

use crate::object::{self, Object, Origin, RemoteKey};
use crate::service;
use crate::{bail, Attributes, Error, Result};
use cryptoki_sys::*;
use hsmux_backends::{
    KeySpec, LocalStore, MasterKey, ObjectId, ObjectRecord, Opened, RemoteObject, Stamp, StoreError,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Minimum and maximum PIN lengths the token accepts.
pub const PIN_LEN: std::ops::RangeInclusive<usize> = 4..=255;

/// Who is logged in to a token (application-wide, as PKCS#11 says).
#[derive(Default)]
struct Login {
    user: Option<CK_USER_TYPE>,
    master: Option<Arc<MasterKey>>,
}

#[derive(Default)]
struct Objects {
    live: HashMap<CK_OBJECT_HANDLE, Arc<Object>>,
    by_store: HashMap<ObjectId, CK_OBJECT_HANDLE>,
    stamps: HashMap<ObjectId, Stamp>,
    /// Records with a sealed part, kept to unseal them at each login.
    sealed: HashMap<ObjectId, ObjectRecord>,
    /// Remote objects by (class, the backend's lasting identity), so a re-listing keeps
    /// handles and a reference the service gives to another object gets a new handle.
    by_ref: HashMap<(u8, String), CK_OBJECT_HANDLE>,
    generation: Option<u64>,
}

/// Token-level facts for `C_GetTokenInfo`.
pub struct TokenStatus {
    /// Label (padded by the ABI layer).
    pub label: String,
    /// Serial number.
    pub serial: String,
    /// `CKF_*` token flags.
    pub flags: CK_FLAGS,
    /// Open sessions, and how many of them are R/W.
    pub sessions: (usize, usize),
    /// Local tokens: consecutive wrong user PINs so far, and how many lock the PIN.
    pub user_pin_tries: Option<(u32, u32)>,
}

/// One slot's token.
pub struct Token {
    /// Slot ID (config order).
    pub slot_id: CK_SLOT_ID,
    /// Label from the configuration.
    pub config_label: String,
    kind: Kind,
    login: RwLock<Login>,
    objects: RwLock<Objects>,
    sessions: Mutex<HashMap<CK_SESSION_HANDLE, bool>>,
    handles: Arc<AtomicU64>,
}

/// Where a token's objects live.
enum Kind {
    /// The embedded store.
    Local(LocalStore),
    /// A remote service.
    Remote(Remote),
}

struct Remote {
    service: service::Service,
    ttl: Duration,
    /// When the object list was last fetched, and whether the user was logged in then.
    listed: Mutex<Option<(Instant, bool)>>,
}

fn store_err(e: StoreError) -> Error {
    match e {
        StoreError::PinIncorrect => Error::rv(CKR_PIN_INCORRECT),
        StoreError::PinLocked => Error::new(CKR_PIN_LOCKED, "too many wrong PINs"),
        StoreError::NotInitialized => Error::new(
            CKR_USER_PIN_NOT_INITIALIZED,
            "token is not initialised (C_InitToken)",
        ),
        StoreError::UserPinNotInitialized => {
            Error::new(CKR_USER_PIN_NOT_INITIALIZED, "user PIN not set (C_InitPIN)")
        }
        other => Error::new(CKR_DEVICE_ERROR, format!("local store: {other}")),
    }
}

fn check_pin_len(pin: &[u8]) -> Result<()> {
    if !PIN_LEN.contains(&pin.len()) {
        bail!(
            CKR_PIN_LEN_RANGE,
            "PIN must be {} to {} bytes",
            PIN_LEN.start(),
            PIN_LEN.end()
        );
    }
    Ok(())
}

impl Token {
    /// A token over what its backend's registry entry opened: the embedded store, or a
    /// service whose object list lives `list_ttl` between listings.
    pub fn open(
        slot_id: CK_SLOT_ID,
        label: &str,
        opened: Opened,
        handles: Arc<AtomicU64>,
    ) -> Token {
        let kind = match opened {
            Opened::Store(store) => Kind::Local(store),
            Opened::Service { backend, list_ttl } => Kind::Remote(Remote {
                service: service::Service::new(backend),
                ttl: list_ttl,
                listed: Mutex::new(None),
            }),
        };
        Token {
            slot_id,
            config_label: label.to_string(),
            kind,
            login: RwLock::default(),
            objects: RwLock::default(),
            sessions: Mutex::default(),
            handles,
        }
    }

    fn store(&self) -> Result<&LocalStore> {
        match &self.kind {
            Kind::Local(s) => Ok(s),
            Kind::Remote(r) => bail!(
                CKR_FUNCTION_NOT_SUPPORTED,
                "the {} token is managed by its service, not by PKCS#11 token administration",
                r.service.backend.kind()
            ),
        }
    }

    fn remote(&self) -> Option<&Remote> {
        match &self.kind {
            Kind::Remote(r) => Some(r),
            Kind::Local(_) => None,
        }
    }

    /// The backend of a remote token, with its capabilities.
    pub fn service(&self) -> Option<&service::Service> {
        self.remote().map(|r| &r.service)
    }

    /// The model string of `C_GetTokenInfo`: the backend kind.
    pub fn model(&self) -> &'static str {
        match &self.kind {
            Kind::Local(_) => "local",
            Kind::Remote(r) => r.service.backend.kind(),
        }
    }

    /// The mechanisms this token can do: everything in software for local and session
    /// keys, narrowed for private/secret-key operations to what the service can do.
    pub fn mechanisms(&self) -> Vec<(CK_MECHANISM_TYPE, hsmux_mech::MechInfo)> {
        let all = hsmux_mech::mechanism_list()
            .into_iter()
            .filter_map(|m| hsmux_mech::mechanism_info(m).map(|i| (m, i)));
        match self.remote() {
            None => all.collect(),
            Some(r) => all
                .chain(
                    r.service
                        .caps
                        .symmetric
                        .contains(&hsmux_backends::SymmetricScheme::ServiceSymmetric)
                        .then_some((
                            service::CKM_HSMUX_SERVICE_SYMMETRIC,
                            hsmux_mech::MechInfo {
                                min_key: 0,
                                max_key: 0,
                                flags: CKF_ENCRYPT | CKF_DECRYPT,
                            },
                        )),
                )
                .map(|(m, mut i)| {
                    // Private keys of this token sign only where the service can;
                    // verification and session keys stay in software.
                    if service::is_asymmetric_sign(m) && !service::can_sign(&r.service.caps, m) {
                        i.flags &= !CKF_SIGN;
                    }
                    if matches!(m, CKM_RSA_PKCS | CKM_RSA_PKCS_OAEP | CKM_RSA_X_509) {
                        if !service::can_decrypt(&r.service.caps, m) {
                            i.flags &= !CKF_DECRYPT;
                        }
                        // C_UnwrapKey under a key the service holds is not done yet (it
                        // arrives with bring-your-own-key), so the slot does not claim it.
                        i.flags &= !CKF_UNWRAP;
                    }
                    (m, i)
                })
                .collect(),
        }
    }

    fn next_handle(&self) -> CK_ULONG {
        self.handles.fetch_add(1, Ordering::Relaxed) as CK_ULONG
    }

    /// Who is logged in.
    pub fn user(&self) -> Option<CK_USER_TYPE> {
        self.login.read().unwrap_or_else(|e| e.into_inner()).user
    }

    fn master(&self) -> Option<Arc<MasterKey>> {
        self.login
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .master
            .clone()
    }

    /// Facts for `C_GetTokenInfo`.
    pub fn status(&self) -> Result<TokenStatus> {
        if let Some(r) = self.remote() {
            let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(TokenStatus {
                label: self.config_label.clone(),
                serial: r.service.backend.serial(),
                flags: CKF_RNG
                    | CKF_LOGIN_REQUIRED
                    | CKF_TOKEN_INITIALIZED
                    | CKF_USER_PIN_INITIALIZED,
                sessions: (s.len(), s.values().filter(|rw| **rw).count()),
                user_pin_tries: None,
            });
        }
        let meta = self.store()?.meta().map_err(store_err)?;
        let mut flags = CKF_RNG | CKF_LOGIN_REQUIRED;
        if meta.initialized {
            flags |= CKF_TOKEN_INITIALIZED;
        }
        if meta.user_pin_initialized {
            flags |= CKF_USER_PIN_INITIALIZED;
        }
        let counter = |fails: u32, low, last, locked| match fails {
            0 => 0,
            f if f >= meta.max_pin_failures => locked,
            f if f + 1 == meta.max_pin_failures => last | low,
            _ => low,
        };
        flags |= counter(
            meta.user_pin_failures,
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        );
        flags |= counter(
            meta.so_pin_failures,
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        );
        let s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(TokenStatus {
            label: if meta.initialized {
                meta.label
            } else {
                self.config_label.clone()
            },
            serial: meta.serial,
            flags,
            sessions: (s.len(), s.values().filter(|rw| **rw).count()),
            user_pin_tries: Some((meta.user_pin_failures, meta.max_pin_failures)),
        })
    }

    /// Registers a new session of this token.
    pub fn open_session(&self, handle: CK_SESSION_HANDLE, rw: bool) -> Result<()> {
        if !rw && self.user() == Some(CKU_SO) {
            bail!(CKR_SESSION_READ_WRITE_SO_EXISTS);
        }
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle, rw);
        Ok(())
    }

    /// Forgets a session: destroys its session objects; the last one logs the token out.
    pub fn close_session(&self, handle: CK_SESSION_HANDLE) {
        let last = {
            let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            s.remove(&handle);
            s.is_empty()
        };
        {
            let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
            o.live.retain(|_, obj| obj.owner != Some(handle));
        }
        if last {
            self.drop_login();
        }
    }

    /// `C_InitToken`.
    pub fn init_token(&self, so_pin: &[u8], label: &str) -> Result<()> {
        if !self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
        {
            bail!(CKR_SESSION_EXISTS, "C_InitToken with sessions open");
        }
        check_pin_len(so_pin)?;
        let meta = self.store()?.meta().map_err(store_err)?;
        if meta.initialized {
            // Re-initialising wipes every key: only the SO may do it.
            self.store()?.login_so(so_pin).map_err(store_err)?;
        }
        self.store()?.init_token(so_pin, label).map_err(store_err)?;
        // Documented, not silent: the token's label is C_InitToken's from now on; the
        // config's `label` still names the slot.
        if label.trim_end() != self.config_label {
            tracing::info!(
                token = %self.config_label,
                "C_InitToken labelled the token {:?}; clients see that as the token label, and \
                 the config's `label` {:?} as the slot's",
                label.trim_end(),
                self.config_label
            );
        }
        self.drop_login();
        *self.objects.write().unwrap_or_else(|e| e.into_inner()) = Objects::default();
        Ok(())
    }

    /// `C_Login`.
    pub fn login(&self, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let current = self.user();
        if let Some(r) = self.remote() {
            return self.login_remote(r, user, current, pin);
        }
        match user {
            CKU_SO => {
                match current {
                    Some(CKU_SO) => bail!(CKR_USER_ALREADY_LOGGED_IN),
                    Some(_) => bail!(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
                    None => {}
                }
                if self
                    .sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .any(|rw| !rw)
                {
                    bail!(CKR_SESSION_READ_ONLY_EXISTS);
                }
                let mk = self.store()?.login_so(pin).map_err(store_err)?;
                self.set_login(CKU_SO, mk)
            }
            CKU_USER => {
                match current {
                    Some(CKU_USER) => bail!(CKR_USER_ALREADY_LOGGED_IN),
                    Some(_) => bail!(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
                    None => {}
                }
                let mk = self.store()?.login_user(pin).map_err(store_err)?;
                self.set_login(CKU_USER, mk)
            }
            CKU_CONTEXT_SPECIFIC => {
                if current != Some(CKU_USER) {
                    bail!(CKR_USER_NOT_LOGGED_IN);
                }
                self.store()?.login_user(pin).map_err(store_err)?;
                Ok(())
            }
            _ => bail!(CKR_USER_TYPE_INVALID),
        }
    }

    fn login_remote(
        &self,
        r: &Remote,
        user: CK_USER_TYPE,
        current: Option<CK_USER_TYPE>,
        pin: &[u8],
    ) -> Result<()> {
        match (user, current) {
            (CKU_USER, Some(CKU_USER)) => bail!(CKR_USER_ALREADY_LOGGED_IN),
            (CKU_USER, None) => {
                r.service
                    .backend
                    .login(pin)
                    .map_err(|e| service::backend_err(e, "login"))?;
                self.login.write().unwrap_or_else(|e| e.into_inner()).user = Some(CKU_USER);
                // Private objects become listable now.
                self.refresh()
            }
            (CKU_CONTEXT_SPECIFIC, Some(CKU_USER)) => r
                .service
                .backend
                .login(pin)
                .map_err(|e| service::backend_err(e, "login")),
            (CKU_CONTEXT_SPECIFIC, _) => bail!(CKR_USER_NOT_LOGGED_IN),
            (CKU_SO, _) => bail!(
                CKR_USER_TYPE_INVALID,
                "a {} token has no security officer: it is administered in its service",
                r.service.backend.kind()
            ),
            _ => bail!(CKR_USER_TYPE_INVALID),
        }
    }

    fn set_login(&self, user: CK_USER_TYPE, mk: MasterKey) -> Result<()> {
        let mk = Arc::new(mk);
        {
            let mut l = self.login.write().unwrap_or_else(|e| e.into_inner());
            l.user = Some(user);
            l.master = Some(mk.clone());
        }
        self.refresh()?;
        // Unseal what was sealed, keeping the handles of public objects.
        let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
        let sealed: Vec<ObjectRecord> = o.sealed.values().cloned().collect();
        for rec in sealed {
            let keep = o.by_store.get(&rec.id).copied();
            self.admit(&mut o, &rec, Some(&mk), keep);
        }
        Ok(())
    }

    /// `C_Logout`.
    pub fn logout(&self) -> Result<()> {
        if self.user().is_none() {
            bail!(CKR_USER_NOT_LOGGED_IN);
        }
        self.drop_login();
        Ok(())
    }

    fn drop_login(&self) {
        let was = {
            let mut l = self.login.write().unwrap_or_else(|e| e.into_inner());
            let was = l.user.take();
            l.master = None;
            was
        };
        if was.is_none() {
            return;
        }
        let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
        // Private session objects die with the login; sealed token objects go back to sealed.
        o.live
            .retain(|_, obj| !(obj.owner.is_some() && obj.is_private()));
        let sealed: Vec<ObjectRecord> = o.sealed.values().cloned().collect();
        for rec in sealed {
            if let Some(h) = o.by_store.remove(&rec.id) {
                o.live.remove(&h);
                let keep = if rec.private { None } else { Some(h) };
                self.admit(&mut o, &rec, None, keep);
            }
        }
    }

    /// `C_InitPIN`: the SO sets the user PIN.
    pub fn init_pin(&self, pin: &[u8]) -> Result<()> {
        check_pin_len(pin)?;
        let l = self.login.read().unwrap_or_else(|e| e.into_inner());
        match (&l.user, &l.master) {
            (Some(CKU_SO), Some(mk)) => self.store()?.init_user_pin(mk, pin).map_err(store_err),
            _ => bail!(CKR_USER_NOT_LOGGED_IN, "C_InitPIN needs the SO logged in"),
        }
    }

    /// `C_SetPIN`: the SO's PIN when the SO is logged in, else the user's.
    pub fn set_pin(&self, old: &[u8], new: &[u8]) -> Result<()> {
        check_pin_len(new)?;
        match self.user() {
            Some(CKU_SO) => self.store()?.set_so_pin(old, new).map_err(store_err),
            _ => self.store()?.set_user_pin(old, new).map_err(store_err),
        }
    }

    /// Decodes a record into a live object (when it may be), keeping `keep` as its handle.
    fn admit(
        &self,
        o: &mut Objects,
        rec: &ObjectRecord,
        mk: Option<&MasterKey>,
        keep: Option<CK_OBJECT_HANDLE>,
    ) {
        let mut attrs = Attributes::new();
        let mut complete = true;
        let result = (|| -> Result<bool> {
            object::decode(&rec.plain, &mut attrs)?;
            if !rec.sealed.is_empty() {
                match mk {
                    Some(mk) => {
                        let plain = mk
                            .open(rec.id.0.as_bytes(), &rec.sealed)
                            .map_err(store_err)?;
                        object::decode(&plain, &mut attrs)?;
                    }
                    None if rec.private => return Ok(false),
                    None => complete = false,
                }
            }
            Ok(true)
        })();
        match result {
            Ok(true) => {
                let h = keep.unwrap_or_else(|| self.next_handle());
                let obj = Object::new(h, attrs, Some(rec.id.clone()), None, complete);
                o.by_store.insert(rec.id.clone(), h);
                o.live.insert(h, Arc::new(obj));
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(token = %self.config_label, object = %rec.id.0, "skipping unreadable object: {e}")
            }
        }
    }

    fn forget_stored(o: &mut Objects, id: &ObjectId) -> Option<CK_OBJECT_HANDLE> {
        o.stamps.remove(id);
        o.sealed.remove(id);
        let h = o.by_store.remove(id)?;
        o.live.remove(&h);
        Some(h)
    }

    /// Brings the object cache up to date with the store (other processes may write it).
    pub fn refresh(&self) -> Result<()> {
        if let Some(r) = self.remote() {
            return self.refresh_remote(r);
        }
        let gen = self.store()?.generation().map_err(store_err)?;
        if self
            .objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation
            == Some(gen)
        {
            return Ok(());
        }
        let mk = self.master();
        let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
        if o.generation == Some(gen) {
            return Ok(());
        }
        let updated = if o.generation.is_none() {
            self.store()?.load_all().map_err(store_err)?
        } else {
            let ch = self.store()?.changes_since(&o.stamps).map_err(store_err)?;
            for id in &ch.removed {
                Self::forget_stored(&mut o, id);
            }
            ch.updated
        };
        for (rec, stamp) in updated {
            let keep = Self::forget_stored(&mut o, &rec.id);
            o.stamps.insert(rec.id.clone(), stamp);
            if !rec.sealed.is_empty() {
                o.sealed.insert(rec.id.clone(), rec.clone());
            }
            self.admit(&mut o, &rec, mk.as_deref(), keep);
        }
        o.generation = Some(gen);
        Ok(())
    }

    fn refresh_remote(&self, r: &Remote) -> Result<()> {
        let user = self.user() == Some(CKU_USER);
        {
            let listed = r.listed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, as_user)) = *listed {
                if as_user == user && at.elapsed() < r.ttl {
                    return Ok(());
                }
            }
        }
        // The listing is a network call: no object lock is held across it.
        let objects = match r.service.backend.list() {
            Ok(v) => v,
            Err(e) if !user => {
                tracing::info!(token = %self.config_label, "listing before login failed: {e}");
                Vec::new()
            }
            Err(e) => return Err(service::backend_err(e, "list")),
        };
        let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        let mut skipped = std::collections::HashSet::new();
        for ro in &objects {
            match self.admit_remote(&mut o, ro, r.service.caps.destroy) {
                Ok(h) => {
                    seen.insert(h);
                }
                // One line per key and listing, whichever of its objects failed.
                Err(e) if skipped.insert(ro.key_ref.clone()) => tracing::warn!(
                    token = %self.config_label,
                    key = %ro.key_ref,
                    "skipping key \"{}\" ({}, {:?} {:?}): hsmux cannot show it as a PKCS#11 \
                     object: {e}",
                    ro.label,
                    ro.key_ref,
                    ro.class,
                    ro.kind
                ),
                Err(_) => {}
            }
        }
        o.live
            .retain(|h, obj| obj.remote.is_none() || seen.contains(h));
        o.by_ref.retain(|_, h| seen.contains(h));
        *r.listed.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), user));
        Ok(())
    }

    /// Installs (or replaces, keeping its handle) one remote object.
    fn admit_remote(
        &self,
        o: &mut Objects,
        ro: &RemoteObject,
        destroyable: bool,
    ) -> Result<CK_OBJECT_HANDLE> {
        let attrs = service::describe(ro, destroyable)?;
        let key = (ro.class as u8, ro.unique_id.clone());
        let h = match o.by_ref.get(&key) {
            Some(h) => *h,
            None => self.next_handle(),
        };
        o.by_ref.insert(key, h);
        o.live.insert(
            h,
            Arc::new(
                Object::new(h, attrs, None, None, true).with_remote(RemoteKey {
                    key_ref: ro.key_ref.clone(),
                    kind: ro.kind.clone(),
                }),
            ),
        );
        Ok(h)
    }

    /// Creates a key in the remote service; returns the new objects' handles in the
    /// order the service listed them.
    pub fn generate_remote(
        &self,
        spec: &KeySpec,
    ) -> Result<Vec<(CK_OBJECT_CLASS, CK_OBJECT_HANDLE)>> {
        let r = self
            .remote()
            .ok_or_else(|| Error::general("not a remote token"))?;
        if self.user() != Some(CKU_USER) {
            bail!(
                CKR_USER_NOT_LOGGED_IN,
                "creating keys needs the user logged in"
            );
        }
        let created = r
            .service
            .backend
            .generate(spec)
            .map_err(|e| service::backend_err(e, "generate"))?;
        let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for ro in &created {
            let h = self.admit_remote(&mut o, ro, r.service.caps.destroy)?;
            out.push((o.live[&h].class(), h));
        }
        Ok(out)
    }

    /// The object behind `h` if this session may see it.
    pub fn object(&self, h: CK_OBJECT_HANDLE) -> Result<Arc<Object>> {
        let user = self.user() == Some(CKU_USER);
        let o = self.objects.read().unwrap_or_else(|e| e.into_inner());
        match o.live.get(&h) {
            Some(obj) if user || !obj.is_private() => Ok(obj.clone()),
            _ => bail!(CKR_OBJECT_HANDLE_INVALID, "no object {h}"),
        }
    }

    /// Handles of visible objects matching `template`, in handle order.
    pub fn find(&self, template: &Attributes) -> Result<Vec<CK_OBJECT_HANDLE>> {
        self.refresh()?;
        let user = self.user() == Some(CKU_USER);
        let o = self.objects.read().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<_> = o
            .live
            .values()
            .filter(|obj| (user || !obj.is_private()) && obj.matches(template))
            .map(|obj| obj.handle)
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// Checks the session may create or change an object with these attributes.
    fn check_write(&self, attrs: &Attributes, rw: bool) -> Result<()> {
        let token = attrs.bool_or(CKA_TOKEN, false)?;
        let private = attrs.bool_or(CKA_PRIVATE, false)?;
        if token && !rw {
            bail!(CKR_SESSION_READ_ONLY, "token objects need a R/W session");
        }
        if private && self.user() != Some(CKU_USER) {
            bail!(
                CKR_USER_NOT_LOGGED_IN,
                "private objects need the user logged in"
            );
        }
        Ok(())
    }

    /// Adds a new object built from checked attributes.
    pub fn insert(
        &self,
        attrs: Attributes,
        session: CK_SESSION_HANDLE,
        rw: bool,
    ) -> Result<CK_OBJECT_HANDLE> {
        self.check_write(&attrs, rw)?;
        if !attrs.bool_or(CKA_TOKEN, false)? {
            let h = self.next_handle();
            let obj = Object::new(h, attrs, None, Some(session), true);
            self.objects
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .live
                .insert(h, Arc::new(obj));
            return Ok(h);
        }
        if let Some(r) = self.remote() {
            if !r.service.caps.create_objects {
                bail!(
                    CKR_TEMPLATE_INCONSISTENT,
                    "a {} token cannot store objects created by applications; use CKA_TOKEN=false",
                    r.service.backend.kind()
                );
            }
            let raw: Vec<(u64, Vec<u8>)> = attrs
                .iter()
                .filter(|(t, _)| *t != CKA_UNIQUE_ID)
                .map(|(t, v)| (t, v.to_vec()))
                .collect();
            let ro = r
                .service
                .backend
                .create_object(&raw)
                .map_err(|e| service::backend_err(e, "create object"))?;
            let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
            return self.admit_remote(&mut o, &ro, r.service.caps.destroy);
        }
        let id = LocalStore::new_object_id();
        let h = self.next_handle();
        self.persist(&id, attrs, h)?;
        Ok(h)
    }

    /// Writes a token object to the store and installs it under handle `h`.
    fn persist(&self, id: &ObjectId, attrs: Attributes, h: CK_OBJECT_HANDLE) -> Result<()> {
        let (class, _) = object::class_of(&attrs)?;
        let private = attrs.bool_or(CKA_PRIVATE, false)?;
        let has_secret = attrs.iter().any(|(t, _)| object::is_secret(class, t));
        let rec = if private || has_secret {
            let mk = self.master().ok_or_else(|| {
                Error::new(CKR_USER_NOT_LOGGED_IN, "storing key material needs a login")
            })?;
            let plain = if private {
                Vec::new()
            } else {
                object::encode(&attrs, |t| !object::is_secret(class, t)).to_vec()
            };
            let secret = object::encode(&attrs, |t| private || object::is_secret(class, t));
            ObjectRecord {
                id: id.clone(),
                private,
                plain,
                sealed: mk.seal(id.0.as_bytes(), &secret),
            }
        } else {
            ObjectRecord {
                id: id.clone(),
                private,
                plain: object::encode(&attrs, |_| true).to_vec(),
                sealed: Vec::new(),
            }
        };
        let stamp = self.store()?.put_object(&rec).map_err(store_err)?;
        let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
        o.stamps.insert(id.clone(), stamp);
        if rec.sealed.is_empty() {
            o.sealed.remove(id);
        } else {
            o.sealed.insert(id.clone(), rec);
        }
        o.by_store.insert(id.clone(), h);
        o.live.insert(
            h,
            Arc::new(Object::new(h, attrs, Some(id.clone()), None, true)),
        );
        Ok(())
    }

    /// `C_SetAttributeValue`.
    pub fn update(&self, h: CK_OBJECT_HANDLE, changes: &Attributes, rw: bool) -> Result<()> {
        let obj = self.object(h)?;
        if !obj.complete {
            bail!(CKR_USER_NOT_LOGGED_IN, "object is sealed until C_Login");
        }
        let attrs = object::apply_changes(&obj.attrs, changes, self.user() == Some(CKU_SO))?;
        self.check_write(&attrs, rw)?;
        match &obj.store_id {
            Some(id) => self.persist(id, attrs, h),
            None => {
                let new = Object::new(h, attrs, None, obj.owner, true);
                self.objects
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .live
                    .insert(h, Arc::new(new));
                Ok(())
            }
        }
    }

    /// `C_CopyObject`.
    pub fn copy(
        &self,
        h: CK_OBJECT_HANDLE,
        template: &Attributes,
        session: CK_SESSION_HANDLE,
        rw: bool,
    ) -> Result<CK_OBJECT_HANDLE> {
        let obj = self.object(h)?;
        if !obj.complete {
            bail!(CKR_USER_NOT_LOGGED_IN, "object is sealed until C_Login");
        }
        let attrs = object::apply_copy(&obj.attrs, template)?;
        self.insert(attrs, session, rw)
    }

    /// `C_DestroyObject`.
    pub fn destroy(&self, h: CK_OBJECT_HANDLE, rw: bool) -> Result<()> {
        let obj = self.object(h)?;
        if !obj.flag(CKA_DESTROYABLE) && obj.attrs.has(CKA_DESTROYABLE) {
            bail!(
                CKR_ACTION_PROHIBITED,
                "the object has CKA_DESTROYABLE=false"
            );
        }
        if let (Some(key), Some(r)) = (&obj.remote, self.remote()) {
            if !rw {
                bail!(CKR_SESSION_READ_ONLY, "token objects need a R/W session");
            }
            let key_ref = &key.key_ref;
            r.service
                .backend
                .destroy(key_ref)
                .map_err(|e| service::backend_err(e, "destroy"))?;
            // Every object of that service key (both halves of a pair) goes with it.
            let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
            o.live
                .retain(|_, x| x.remote.as_ref().map(|k| &k.key_ref) != Some(key_ref));
            let o = &mut *o;
            o.by_ref.retain(|_, h| o.live.contains_key(h));
            return Ok(());
        }
        if let Some(id) = &obj.store_id {
            if !rw {
                bail!(CKR_SESSION_READ_ONLY, "token objects need a R/W session");
            }
            self.store()?.delete_object(id).map_err(store_err)?;
            let mut o = self.objects.write().unwrap_or_else(|e| e.into_inner());
            Self::forget_stored(&mut o, id);
        } else {
            self.objects
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .live
                .remove(&h);
        }
        Ok(())
    }

    /// Builds and inserts a new object from a template and mechanism output.
    pub fn create(
        &self,
        template: &Attributes,
        generated: &Attributes,
        origin: Origin,
        session: CK_SESSION_HANDLE,
        rw: bool,
    ) -> Result<CK_OBJECT_HANDLE> {
        let attrs = object::build(template, generated, origin)?;
        self.insert(attrs, session, rw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsmux_backends::{
        Backend, BackendResult, CipherRequest, HashAlg, KeyKind, KeyUsage, ObjectClass, SignRequest,
    };
    use std::io::Write;

    /// A service whose one key has a public key that is not DER.
    struct Odd;

    impl Backend for Odd {
        fn kind(&self) -> &'static str {
            "odd"
        }
        fn serial(&self) -> String {
            "0".into()
        }
        fn capabilities(&self) -> hsmux_backends::Capabilities {
            Default::default()
        }
        fn login(&self, _pin: &[u8]) -> BackendResult<()> {
            Ok(())
        }
        fn list(&self) -> BackendResult<Vec<RemoteObject>> {
            let half = |class| RemoteObject {
                key_ref: "arn:odd".into(),
                unique_id: format!("arn:odd/{class:?}"),
                class,
                id: vec![1],
                label: "odd-key".into(),
                kind: Some(KeyKind::Hmac {
                    hash: HashAlg::Sha256,
                    len: 32,
                }),
                public_key_der: Some(b"not DER".to_vec()),
                value: None,
                usage: KeyUsage::default(),
                never_extractable: true,
                extra: vec![],
            };
            Ok(vec![
                half(ObjectClass::PrivateKey),
                half(ObjectClass::PublicKey),
            ])
        }
        fn sign(&self, _: &str, _: &SignRequest) -> BackendResult<Vec<u8>> {
            unreachable!("nothing signs with the odd key")
        }
        fn decrypt(&self, _: &str, _: &CipherRequest) -> BackendResult<Vec<u8>> {
            unreachable!("nothing decrypts with the odd key")
        }
    }

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_key_the_service_describes_oddly_is_skipped_with_one_line_naming_it() {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let t = Token::open(
            0,
            "odd",
            Opened::Service {
                backend: Arc::new(Odd),
                list_ttl: Duration::from_secs(300),
            },
            Arc::new(AtomicU64::new(1)),
        );
        tracing::subscriber::with_default(subscriber, || t.refresh().unwrap());
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("skipping key"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one line for the key, not one per object: {text}"
        );
        for part in [
            "WARN",
            "\"odd-key\"",
            "arn:odd",
            "Hmac",
            "Sha256",
            "token=odd",
        ] {
            assert!(lines[0].contains(part), "{part} in {}", lines[0]);
        }
        assert!(t.find(&Attributes::new()).unwrap().is_empty());
    }
}
