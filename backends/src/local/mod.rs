//! The embedded local token's persistent store.
//!
//! The store knows nothing of PKCS#11: an object is an id, a `private` flag and
//! two opaque byte strings, `plain` (stored as given) and `sealed` (which the
//! caller produced with [`MasterKey::seal`]).
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/                  0700
//!   meta.json             0600  label, serial, flags, PIN failure counters and the
//!                               master key wrapped under each PIN's KEK (JSON, "format": 1)
//!   generation            0600  change counter, ASCII decimal + "\n"
//!   .lock                 0600  flock(LOCK_EX) around every read-modify-write
//!   objects/              0700
//!     <id>.obj            0600  one object (binary, see below)
//! ```
//!
//! Object file, version 1, integers little-endian:
//! `"HXOB" | version u8 = 1 | flags u8 (bit 0 = private) | id_len u8 | id |
//! plain_len u32 | plain | sealed_len u32 | sealed`.
//!
//! # Keys
//!
//! A random 256-bit master key seals private object material (AES-256-GCM,
//! `version ‖ nonce ‖ ciphertext ‖ tag`). It is stored only wrapped, the same way,
//! under a key-encryption key derived from the SO PIN and, once set, from the
//! user PIN: PBKDF2-HMAC-SHA256 with a random 16-byte salt per wrap and
//! [`DEFAULT_KDF_ITERATIONS`] iterations (each wrap records its own count, so
//! the default can be raised later). A wrong PIN shows as a GCM tag failure.
//! The wrap's AAD names the role and the token serial, so a wrap cannot be
//! moved between roles or tokens.
//!
//! # Concurrency
//!
//! Every file is replaced atomically (temporary file in the same directory,
//! fsync, rename, fsync of the directory) under the exclusive lock, so readers
//! never take the lock: they always see a whole old or a whole new file. Every
//! write of meta or objects then bumps `generation`, which other processes poll
//! with one small read ([`LocalStore::generation`]) before asking for
//! [`LocalStore::changes_since`]. PIN failure counters are read-modified-written
//! under the lock, so they are exact across processes; the slow KDF runs
//! outside the lock.

mod crypto;
mod format;
mod fsutil;
mod settings;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use crypto::MasterKey;
use crypto::{derive_kek, open_with, random_hex, seal_with, KDF_PBKDF2_SHA256, SALT_LEN};
use format::{
    decode_object, encode_object, from_hex, parse_generation, to_hex, valid_id, MetaFile, PinWrap,
    META_FORMAT,
};
use fsutil::{lock_exclusive, sync_dir, write_atomic, LockGuard, WriteOpts};
pub use settings::{LocalSettings, ENTRY};

/// PBKDF2-HMAC-SHA256 iterations used by [`LocalStore::open`] (OWASP 2023 figure).
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;
/// Consecutive wrong PINs after which a PIN is locked.
pub const MAX_PIN_FAILURES: u32 = 10;
/// Longest token label, in bytes (the size of `CK_TOKEN_INFO.label`).
pub const MAX_LABEL_LEN: usize = 32;

const META_FILE: &str = "meta.json";
const GENERATION_FILE: &str = "generation";
const LOCK_FILE: &str = ".lock";
const OBJECTS_DIR: &str = "objects";
const OBJ_EXT: &str = ".obj";
/// How often a PIN operation starts over when another process changed the PIN
/// data between its KDF and its commit.
const PIN_RETRIES: usize = 8;

/// Errors of the local store.
#[derive(Debug)]
pub enum StoreError {
    /// A file-system error; the message names the path.
    Io(io::Error),
    /// A file that does not parse or does not authenticate.
    Corrupt(String),
    /// The PIN did not unwrap the master key (the attempt was counted).
    PinIncorrect,
    /// The PIN has reached the failure limit.
    PinLocked,
    /// The token has no SO PIN yet (`init_token` never ran).
    NotInitialized,
    /// The token has no user PIN yet (`init_user_pin` never ran).
    UserPinNotInitialized,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "token store I/O error: {e}"),
            StoreError::Corrupt(why) => write!(f, "token store corrupt: {why}"),
            StoreError::PinIncorrect => f.write_str("PIN incorrect"),
            StoreError::PinLocked => f.write_str("PIN locked"),
            StoreError::NotInitialized => f.write_str("token not initialized"),
            StoreError::UserPinNotInitialized => f.write_str("user PIN not initialized"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Wraps an I/O error with the path it concerns.
fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |e| StoreError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Token-level state as kept in `meta.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenMeta {
    /// At most 32 bytes, as set by `init_token` (trailing blanks removed).
    pub label: String,
    /// SO PIN set via `init_token`.
    pub initialized: bool,
    /// User PIN set via `init_user_pin`.
    pub user_pin_initialized: bool,
    /// Consecutive wrong user PINs, reset on success.
    pub user_pin_failures: u32,
    /// Consecutive wrong SO PINs, reset on success.
    pub so_pin_failures: u32,
    /// At this count a PIN is locked: login returns `PinLocked` even with the right PIN.
    pub max_pin_failures: u32,
    /// 16 hex chars, random, fixed when the store directory is first created.
    pub serial: String,
}

impl From<&MetaFile> for TokenMeta {
    fn from(m: &MetaFile) -> TokenMeta {
        TokenMeta {
            label: m.label.clone(),
            initialized: m.initialized,
            user_pin_initialized: m.user_pin_initialized,
            user_pin_failures: m.user_pin_failures,
            so_pin_failures: m.so_pin_failures,
            max_pin_failures: m.max_pin_failures,
            serial: m.serial.clone(),
        }
    }
}

/// Identifier of a stored object: ASCII hex, at most 64 digits (new ones are 32).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub String);

/// One stored object: `plain` is written as given, `sealed` should come from [`MasterKey::seal`].
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// The object's id (also its file name).
    pub id: ObjectId,
    /// Whether the object is private (only readable after login).
    pub private: bool,
    /// Non-secret part, stored in the clear.
    pub plain: Vec<u8>,
    /// Secret part, already sealed by the caller.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for ObjectRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRecord")
            .field("id", &self.id)
            .field("private", &self.private)
            .field("plain_len", &self.plain.len())
            .field("sealed_len", &self.sealed.len())
            .finish()
    }
}

/// Identity of one stored version of an object file (device, inode, size,
/// mtime); changes whenever the file is rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_sec: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_sec: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}

/// What changed on disk relative to what a caller knew.
#[derive(Debug, Default)]
pub struct Changes {
    /// New or rewritten objects, with their current stamps.
    pub updated: Vec<(ObjectRecord, Stamp)>,
    /// Objects that no longer exist.
    pub removed: Vec<ObjectId>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    So,
    User,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::So => "so",
            Role::User => "user",
        }
    }
}

/// A local token directory. Cheap to hold; every call goes to disk.
#[derive(Debug)]
pub struct LocalStore {
    dir: PathBuf,
    objects: PathBuf,
    kdf_iterations: u32,
    /// Consecutive wrong PINs that lock a PIN (the configuration's `pin_retries`).
    max_pin_failures: u32,
}

impl LocalStore {
    /// Opens (creating dir, 0700, and an uninitialized meta file if missing) the token at `dir`.
    pub fn open(dir: &Path) -> StoreResult<LocalStore> {
        Self::open_with_kdf_iterations(dir, DEFAULT_KDF_ITERATIONS)
    }

    /// Same as [`LocalStore::open`], with the PBKDF2-HMAC-SHA256 iteration count used for
    /// PINs set through this instance (tests use a low one). Existing PIN wraps keep
    /// the count they were made with.
    pub fn open_with_kdf_iterations(dir: &Path, iterations: u32) -> StoreResult<LocalStore> {
        let store = LocalStore {
            dir: dir.to_path_buf(),
            objects: dir.join(OBJECTS_DIR),
            kdf_iterations: iterations.max(1),
            max_pin_failures: MAX_PIN_FAILURES,
        };
        fsutil::create_private_dir(&store.objects).map_err(io_at(&store.objects))?;
        let _lock = store.lock()?;
        let meta_path = store.dir.join(META_FILE);
        let fresh = match fs::read(&meta_path) {
            Ok(bytes) => {
                MetaFile::parse(&bytes)?;
                false
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let meta = MetaFile {
                    format: META_FORMAT,
                    label: String::new(),
                    serial: random_hex(8),
                    initialized: false,
                    user_pin_initialized: false,
                    user_pin_failures: 0,
                    so_pin_failures: 0,
                    max_pin_failures: MAX_PIN_FAILURES,
                    master_check: None,
                    so_pin: None,
                    user_pin: None,
                };
                store.write_file(&store.dir, META_FILE, &meta.to_bytes(), true, None)?;
                true
            }
            Err(e) => return Err(io_at(&meta_path)(e)),
        };
        // The generation file is written without fsync (it is a change hint); a
        // crash can leave it empty, so repair it here. Start from the clock so
        // a repaired counter does not repeat a value seen before the crash.
        if store.read_generation().is_err() {
            let start = if fresh {
                0
            } else {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            };
            store.write_generation(start)?;
        }
        // Temporary files are only written under the lock we hold: any left
        // now belong to a crashed writer.
        for d in [&store.dir, &store.objects] {
            fsutil::remove_temp_files(d).map_err(io_at(d))?;
        }
        Ok(store)
    }

    /// The token directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the meta file (one small read, no lock).
    pub fn meta(&self) -> StoreResult<TokenMeta> {
        Ok(TokenMeta::from(&self.read_meta()?))
    }

    /// Cheap change counter (one small read, no lock): bumped by every write of meta or objects by any process.
    pub fn generation(&self) -> StoreResult<u64> {
        self.read_generation()
    }

    /// (Re)initialises the token: deletes every object, creates a new master key wrapped
    /// under `so_pin`, sets `label`, removes the user PIN and resets the counters.
    ///
    /// Does not check the old SO PIN: on an initialised token the caller calls
    /// [`LocalStore::login_so`] first. The label is cut to 32 bytes (at a char
    /// boundary) after trailing blanks are removed.
    pub fn init_token(&self, so_pin: &[u8], label: &str) -> StoreResult<()> {
        let serial = self.read_meta()?.serial;
        let master = MasterKey::generate();
        let so_wrap = self.make_wrap(so_pin, &master, &serial, Role::So)?;
        let check = to_hex(&master.seal(&check_aad(&serial), b""));

        let _lock = self.lock()?;
        let mut meta = self.read_meta()?;
        // Objects go first: a crash before the meta write leaves an empty
        // token under the old PINs, never objects under a lost master key.
        self.remove_all_objects()?;
        meta.label = clean_label(label);
        meta.initialized = true;
        meta.user_pin_initialized = false;
        meta.user_pin = None;
        meta.user_pin_failures = 0;
        meta.so_pin_failures = 0;
        meta.max_pin_failures = self.max_pin_failures;
        meta.master_check = Some(check);
        meta.so_pin = Some(so_wrap);
        self.write_meta(&meta)
    }

    /// Derives the KEK from the SO PIN and unwraps the master key, counting failures.
    pub fn login_so(&self, so_pin: &[u8]) -> StoreResult<MasterKey> {
        self.verify_pin(Role::So, so_pin, None)
    }

    /// Derives the KEK from the user PIN and unwraps the master key, counting failures.
    pub fn login_user(&self, pin: &[u8]) -> StoreResult<MasterKey> {
        self.verify_pin(Role::User, pin, None)
    }

    /// Sets or resets the user PIN: wraps `master` (from [`LocalStore::login_so`]) under
    /// `new_pin`, unlocks and resets the user counter.
    ///
    /// `Corrupt` if `master` is not this token's master key (the token was
    /// re-initialised since that login).
    pub fn init_user_pin(&self, master: &MasterKey, new_pin: &[u8]) -> StoreResult<()> {
        let seen = self.read_meta()?;
        check_master(&seen, master)?;
        let wrap = self.make_wrap(new_pin, master, &seen.serial, Role::User)?;

        let _lock = self.lock()?;
        let mut meta = self.read_meta()?;
        check_master(&meta, master)?;
        meta.user_pin = Some(wrap);
        meta.user_pin_initialized = true;
        meta.user_pin_failures = 0;
        self.write_meta(&meta)
    }

    /// Changes the user PIN: verifies `old` (counting failures like login), re-wraps the master key under `new`.
    pub fn set_user_pin(&self, old: &[u8], new: &[u8]) -> StoreResult<()> {
        self.verify_pin(Role::User, old, Some(new)).map(drop)
    }

    /// Changes the SO PIN: verifies `old` (counting failures like login), re-wraps the master key under `new`.
    pub fn set_so_pin(&self, old: &[u8], new: &[u8]) -> StoreResult<()> {
        self.verify_pin(Role::So, old, Some(new)).map(drop)
    }

    /// All object records with their stamps, sorted by id.
    pub fn load_all(&self) -> StoreResult<Vec<(ObjectRecord, Stamp)>> {
        let ids: Vec<ObjectId> = self.list_objects()?.into_iter().map(|(id, _)| id).collect();
        // Opening thousands of small files is system-call bound: spread it over the
        // cores (start-up of a large token is a measured target).
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        let chunk = ids.len().div_ceil(workers).max(256);
        let read = |part: &[ObjectId]| -> StoreResult<Vec<(ObjectRecord, Stamp)>> {
            let mut out = Vec::with_capacity(part.len());
            for id in part {
                if let Some(found) = self.read_object(id)? {
                    out.push(found);
                }
            }
            Ok(out)
        };
        if ids.len() <= chunk {
            return read(&ids);
        }
        let parts: Vec<StoreResult<Vec<(ObjectRecord, Stamp)>>> = std::thread::scope(|s| {
            let handles: Vec<_> = ids
                .chunks(chunk)
                .map(|part| s.spawn(move || read(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(StoreError::Corrupt("object reader panicked".into()))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(ids.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// Compared with what the caller already has (id → stamp): the records that are
    /// new or rewritten, and the ids that are gone. Costs one `stat` per object plus a
    /// read of each changed one.
    pub fn changes_since(&self, known: &HashMap<ObjectId, Stamp>) -> StoreResult<Changes> {
        let mut changes = Changes::default();
        let mut present = HashSet::new();
        for (id, entry) in self.list_objects()? {
            // fstatat relative to the open directory: no path walk per object.
            let stamp = match entry.metadata() {
                Ok(m) => Stamp::of(&m),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_at(&entry.path())(e)),
            };
            if known.get(&id) != Some(&stamp) {
                match self.read_object(&id)? {
                    Some(found) => changes.updated.push(found),
                    None => continue,
                }
            }
            present.insert(id);
        }
        changes.removed = known
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        changes.removed.sort();
        Ok(changes)
    }

    /// Writes (creates or replaces) a record atomically; returns its new stamp.
    pub fn put_object(&self, rec: &ObjectRecord) -> StoreResult<Stamp> {
        let path = self.object_path(&rec.id)?;
        if rec.plain.len() > u32::MAX as usize || rec.sealed.len() > u32::MAX as usize {
            return Err(io_at(&path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "object larger than 4 GiB",
            )));
        }
        let data = encode_object(rec);
        let _lock = self.lock()?;
        let prev = match fs::symlink_metadata(&path) {
            Ok(m) => Some(m.modified().map_err(io_at(&path))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_at(&path)(e)),
        };
        let meta = self.write_file(&self.objects, &object_file_name(&rec.id), &data, true, prev)?;
        self.bump_generation()?;
        Ok(Stamp::of(&meta))
    }

    /// Deletes an object; a missing one is not an error.
    pub fn delete_object(&self, id: &ObjectId) -> StoreResult<()> {
        let path = self.object_path(id)?;
        let _lock = self.lock()?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at(&path)(e)),
        }
        sync_dir(&self.objects).map_err(io_at(&self.objects))?;
        self.bump_generation()
    }

    /// A fresh random id: 32 lowercase hex digits.
    pub fn new_object_id() -> ObjectId {
        ObjectId(random_hex(16))
    }

    // ---- internals ----

    fn lock(&self) -> StoreResult<LockGuard> {
        let path = self.dir.join(LOCK_FILE);
        lock_exclusive(&path).map_err(io_at(&path))
    }

    fn read_meta(&self) -> StoreResult<MetaFile> {
        let path = self.dir.join(META_FILE);
        let bytes = fs::read(&path).map_err(io_at(&path))?;
        let mut meta = MetaFile::parse(&bytes)?;
        // The limit in force is this instance's (the configuration's), whatever an
        // instance that wrote the file had.
        meta.max_pin_failures = self.max_pin_failures;
        Ok(meta)
    }

    /// Sets how many consecutive wrong PINs lock a PIN (at least 1).
    pub fn with_pin_retries(mut self, retries: u32) -> LocalStore {
        self.max_pin_failures = retries.max(1);
        self
    }

    /// Replaces meta.json durably and bumps the generation. Caller holds the lock.
    fn write_meta(&self, meta: &MetaFile) -> StoreResult<()> {
        self.write_file(&self.dir, META_FILE, &meta.to_bytes(), true, None)?;
        self.bump_generation()
    }

    fn write_file(
        &self,
        dir: &Path,
        name: &str,
        data: &[u8],
        durable: bool,
        after_mtime: Option<std::time::SystemTime>,
    ) -> StoreResult<Metadata> {
        let opts = WriteOpts {
            durable,
            after_mtime,
        };
        write_atomic(dir, name, data, opts).map_err(io_at(&dir.join(name)))
    }

    fn read_generation(&self) -> StoreResult<u64> {
        let path = self.dir.join(GENERATION_FILE);
        let bytes = fs::read(&path).map_err(io_at(&path))?;
        parse_generation(&bytes).ok_or_else(|| {
            StoreError::Corrupt(format!("{}: not a decimal counter", path.display()))
        })
    }

    /// Not fsynced: the counter only tells running processes that something
    /// changed; a process that starts after a crash reloads everything anyway.
    fn write_generation(&self, value: u64) -> StoreResult<()> {
        let data = format!("{value}\n");
        self.write_file(&self.dir, GENERATION_FILE, data.as_bytes(), false, None)
            .map(drop)
    }

    /// Caller holds the lock.
    fn bump_generation(&self) -> StoreResult<()> {
        let current = self.read_generation().unwrap_or(0);
        self.write_generation(current.wrapping_add(1))
    }

    fn object_path(&self, id: &ObjectId) -> StoreResult<PathBuf> {
        if !valid_id(&id.0) {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid object id {:?}: expected 1 to 64 hex digits", id.0),
            )));
        }
        Ok(self.objects.join(object_file_name(id)))
    }

    /// Object files present now, sorted by id; anything else in the directory is ignored.
    fn list_objects(&self) -> StoreResult<Vec<(ObjectId, fs::DirEntry)>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.objects).map_err(io_at(&self.objects))?;
        for entry in rd {
            let entry = entry.map_err(io_at(&self.objects))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(OBJ_EXT)) else {
                continue;
            };
            if valid_id(stem) {
                out.push((ObjectId(stem.to_owned()), entry));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Reads one object and the stamp of exactly the version read; `None` if it vanished.
    fn read_object(&self, id: &ObjectId) -> StoreResult<Option<(ObjectRecord, Stamp)>> {
        let path = self.object_path(id)?;
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let meta = file.metadata().map_err(io_at(&path))?;
        let bytes = read_exact_len(&mut file, meta.len()).map_err(io_at(&path))?;
        let rec = decode_object(&bytes, id)?;
        Ok(Some((rec, Stamp::of(&meta))))
    }

    /// Caller holds the lock.
    fn remove_all_objects(&self) -> StoreResult<()> {
        let rd = fs::read_dir(&self.objects).map_err(io_at(&self.objects))?;
        for entry in rd {
            let entry = entry.map_err(io_at(&self.objects))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(OBJ_EXT) || name.starts_with(fsutil::TMP_PREFIX) {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&path)(e)),
                    _ => {}
                }
            }
        }
        sync_dir(&self.objects).map_err(io_at(&self.objects))
    }

    /// Wraps `master` under a fresh KEK derived from `pin`.
    fn make_wrap(
        &self,
        pin: &[u8],
        master: &MasterKey,
        serial: &str,
        role: Role,
    ) -> StoreResult<PinWrap> {
        let mut salt = [0u8; SALT_LEN];
        crypto::fill_random(&mut salt);
        let kek = derive_kek(pin, &salt, self.kdf_iterations)?;
        let wrapped = seal_with(&kek, &wrap_aad(serial, role), master.as_bytes());
        Ok(PinWrap {
            kdf: KDF_PBKDF2_SHA256.to_owned(),
            iterations: self.kdf_iterations,
            salt: to_hex(&salt),
            wrapped_key: to_hex(&wrapped),
        })
    }

    /// Verifies `pin` for `role` and commits the outcome under the lock: a failure
    /// is counted, a success resets the counter and, with `new_pin`, re-wraps the
    /// master key under it. The KDF runs before the lock is taken; if another
    /// process changed this PIN meanwhile, the attempt starts over uncounted.
    fn verify_pin(&self, role: Role, pin: &[u8], new_pin: Option<&[u8]>) -> StoreResult<MasterKey> {
        for _ in 0..PIN_RETRIES {
            let seen = self.read_meta()?;
            let wrap = usable_wrap(&seen, role)?;
            let master = unwrap_master(pin, &wrap, &seen.serial, role)?;
            let replacement = match (&master, new_pin) {
                (Some(mk), Some(new)) => Some(self.make_wrap(new, mk, &seen.serial, role)?),
                _ => None,
            };

            let _lock = self.lock()?;
            let mut meta = self.read_meta()?;
            // Also returns PinLocked if parallel attempts reached the limit meanwhile.
            if usable_wrap(&meta, role)? != wrap || meta.serial != seen.serial {
                continue;
            }
            let Some(master) = master else {
                *failures_mut(&mut meta, role) += 1;
                self.write_meta(&meta)?;
                return Err(StoreError::PinIncorrect);
            };
            let mut dirty = std::mem::take(failures_mut(&mut meta, role)) != 0;
            if let Some(w) = replacement {
                *wrap_mut(&mut meta, role) = Some(w);
                dirty = true;
            }
            if dirty {
                self.write_meta(&meta)?;
            }
            return Ok(master);
        }
        Err(StoreError::Corrupt(format!(
            "the {} PIN kept changing during {PIN_RETRIES} attempts",
            role.name()
        )))
    }
}

fn object_file_name(id: &ObjectId) -> String {
    format!("{}{OBJ_EXT}", id.0)
}

fn wrap_aad(serial: &str, role: Role) -> Vec<u8> {
    format!("hsmux-local-v1:master-key:{}:{serial}", role.name()).into_bytes()
}

fn check_aad(serial: &str) -> Vec<u8> {
    format!("hsmux-local-v1:master-check:{serial}").into_bytes()
}

/// The wrap a login for `role` would use, or why none can be attempted.
fn usable_wrap(meta: &MetaFile, role: Role) -> StoreResult<PinWrap> {
    if !meta.initialized {
        return Err(StoreError::NotInitialized);
    }
    let (failures, wrap) = match role {
        Role::So => (meta.so_pin_failures, &meta.so_pin),
        Role::User => {
            if !meta.user_pin_initialized {
                return Err(StoreError::UserPinNotInitialized);
            }
            (meta.user_pin_failures, &meta.user_pin)
        }
    };
    if failures >= meta.max_pin_failures {
        return Err(StoreError::PinLocked);
    }
    wrap.clone()
        .ok_or_else(|| StoreError::Corrupt(format!("meta.json: no {} PIN wrap", role.name())))
}

fn failures_mut(meta: &mut MetaFile, role: Role) -> &mut u32 {
    match role {
        Role::So => &mut meta.so_pin_failures,
        Role::User => &mut meta.user_pin_failures,
    }
}

fn wrap_mut(meta: &mut MetaFile, role: Role) -> &mut Option<PinWrap> {
    match role {
        Role::So => &mut meta.so_pin,
        Role::User => &mut meta.user_pin,
    }
}

/// `Some(master)` if `pin` opens `wrap`, `None` if it is the wrong PIN.
fn unwrap_master(
    pin: &[u8],
    wrap: &PinWrap,
    serial: &str,
    role: Role,
) -> StoreResult<Option<MasterKey>> {
    if wrap.kdf != KDF_PBKDF2_SHA256 || wrap.iterations == 0 {
        return Err(StoreError::Corrupt(format!(
            "meta.json: unsupported KDF {:?} with {} iterations",
            wrap.kdf, wrap.iterations
        )));
    }
    let salt = from_hex(&wrap.salt, "salt")?;
    let wrapped = from_hex(&wrap.wrapped_key, "wrapped_key")?;
    let kek = derive_kek(pin, &salt, wrap.iterations)?;
    match open_with(&kek, &wrap_aad(serial, role), &wrapped) {
        Ok(bytes) => MasterKey::from_slice(&bytes).map(Some),
        Err(_) => Ok(None),
    }
}

/// Whether `master` is the key this token was initialised with.
fn check_master(meta: &MetaFile, master: &MasterKey) -> StoreResult<()> {
    if !meta.initialized {
        return Err(StoreError::NotInitialized);
    }
    let check = meta
        .master_check
        .as_deref()
        .ok_or_else(|| StoreError::Corrupt("meta.json: no master_check".into()))?;
    master
        .open(&check_aad(&meta.serial), &from_hex(check, "master_check")?)
        .map(drop)
        .map_err(|_| {
            StoreError::Corrupt(
                "the master key does not belong to this token (re-initialised since login?)".into(),
            )
        })
}

fn clean_label(label: &str) -> String {
    let label = label.trim_end_matches(' ');
    let mut end = label.len().min(MAX_LABEL_LEN);
    while !label.is_char_boundary(end) {
        end -= 1;
    }
    label[..end].to_owned()
}

/// Reads a file whose size is known. Object files are never written in place
/// (only replaced by rename), so the size from `fstat` of the open descriptor
/// is final; one `read` usually suffices.
fn read_exact_len(file: &mut File, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact(&mut buf)?;
    Ok(buf)
}
