//! File-system primitives: the token lock, atomic replacement, private modes.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::crypto::random_hex;

/// Mode of every file the store creates.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of every directory the store creates.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Prefix of temporary files; never a valid object file name.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

/// Holds an exclusive `flock` on the token's lock file until dropped.
///
/// `flock` locks belong to the open file description, so two `LocalStore`s in
/// one process exclude each other exactly as two processes do.
pub(crate) struct LockGuard {
    _file: File,
}

/// Blocks until the exclusive lock on `path` is held.
pub(crate) fn lock_exclusive(path: &Path) -> io::Result<LockGuard> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    loop {
        // SAFETY: `file` owns a valid open descriptor for the whole call;
        // flock takes no pointers.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(LockGuard { _file: file });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Creates `dir` (and missing parents) with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// fsyncs a directory so a rename or unlink inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How [`write_atomic`] treats durability and timestamps.
pub(crate) struct WriteOpts {
    /// fsync the file before the rename and the directory after it.
    pub durable: bool,
    /// The new file's mtime is made strictly later than this (the replaced
    /// version's), so that inode + mtime + size never repeats for one path even
    /// when a freed inode number is reused within one clock tick.
    pub after_mtime: Option<SystemTime>,
}

/// Replaces `dir/name` with `data` through a temporary file in `dir` and a
/// rename; returns the new file's metadata. The temporary file is removed on
/// error. The caller holds the token lock.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    data: &[u8],
    opts: WriteOpts,
) -> io::Result<Metadata> {
    let tmp = dir.join(format!("{TMP_PREFIX}{}", random_hex(8)));
    let result = write_then_rename(&tmp, &dir.join(name), data, &opts);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    let meta = result?;
    if opts.durable {
        sync_dir(dir)?;
    }
    Ok(meta)
}

fn write_then_rename(
    tmp: &Path,
    target: &Path,
    data: &[u8],
    opts: &WriteOpts,
) -> io::Result<Metadata> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(tmp)?;
    file.write_all(data)?;
    if let Some(prev) = opts.after_mtime {
        let now = file.metadata()?.modified()?;
        if now <= prev {
            // 1 ms survives file systems with coarse timestamps.
            file.set_modified(prev + Duration::from_millis(1))?;
        }
    }
    if opts.durable {
        file.sync_all()?;
    }
    fs::rename(tmp, target)?;
    // fstat after the rename: the same inode, so the stamp matches the file now in place.
    file.metadata()
}

/// Removes leftover temporary files in `dir` (only safe under the token lock,
/// since every temporary file is written under it).
pub(crate) fn remove_temp_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}
