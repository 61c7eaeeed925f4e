//! Behaviour of the local token store, through its public API and the files it writes.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

use hsmux_backends::{LocalStore, MasterKey, ObjectId, ObjectRecord, Stamp, StoreError};

/// Low enough that a test runs in milliseconds.
const ITER: u32 = 10;
const SO: &[u8] = b"so-secret";
const USER: &[u8] = b"1234";

fn open(dir: &Path) -> LocalStore {
    LocalStore::open_with_kdf_iterations(dir, ITER).unwrap()
}

/// A token with both PINs set.
fn ready(dir: &Path) -> LocalStore {
    let store = open(dir);
    store.init_token(SO, "test token").unwrap();
    let mk = store.login_so(SO).unwrap();
    store.init_user_pin(&mk, USER).unwrap();
    store
}

fn record(id: &ObjectId, private: bool, plain: &[u8], sealed: &[u8]) -> ObjectRecord {
    ObjectRecord {
        id: id.clone(),
        private,
        plain: plain.to_vec(),
        sealed: sealed.to_vec(),
    }
}

fn same_key(a: &MasterKey, b: &MasterKey) -> bool {
    let blob = a.seal(b"aad", b"probe");
    b.open(b"aad", &blob)
        .is_ok_and(|pt| pt.as_slice() == b"probe")
}

#[test]
fn fresh_store_is_uninitialized_with_random_serial() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let meta = store.meta().unwrap();
    assert!(!meta.initialized);
    assert!(!meta.user_pin_initialized);
    assert_eq!(meta.max_pin_failures, 10);
    assert_eq!(meta.serial.len(), 16);
    assert!(meta.serial.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(matches!(
        store.login_so(SO),
        Err(StoreError::NotInitialized)
    ));
    assert!(matches!(
        store.login_user(USER),
        Err(StoreError::NotInitialized)
    ));

    // The serial is fixed at creation: reopening keeps it, another token differs.
    assert_eq!(open(tmp.path()).meta().unwrap().serial, meta.serial);
    let other = tempfile::tempdir().unwrap();
    assert_ne!(open(other.path()).meta().unwrap().serial, meta.serial);
}

#[test]
fn init_then_login_so_and_user_share_the_master_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.init_token(SO, "my token").unwrap();
    let meta = store.meta().unwrap();
    assert!(meta.initialized);
    assert!(!meta.user_pin_initialized);
    assert_eq!(meta.label, "my token");
    assert!(matches!(
        store.login_user(USER),
        Err(StoreError::UserPinNotInitialized)
    ));

    let so_key = store.login_so(SO).unwrap();
    store.init_user_pin(&so_key, USER).unwrap();
    assert!(store.meta().unwrap().user_pin_initialized);
    let user_key = store.login_user(USER).unwrap();
    assert!(same_key(&so_key, &user_key));

    // The SO PIN is not the user PIN and vice versa.
    assert!(matches!(
        store.login_user(SO),
        Err(StoreError::PinIncorrect)
    ));
    assert!(matches!(
        store.login_so(USER),
        Err(StoreError::PinIncorrect)
    ));
}

#[test]
fn label_is_cut_to_32_bytes_without_trailing_blanks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.init_token(SO, "padded label        ").unwrap();
    assert_eq!(store.meta().unwrap().label, "padded label");
    let long = "é".repeat(20); // 40 bytes
    store.init_token(SO, &long).unwrap();
    assert_eq!(store.meta().unwrap().label, "é".repeat(16));
}

#[test]
fn wrong_user_pin_is_counted_and_locks_at_max() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    for n in 1..=10 {
        assert!(matches!(
            store.login_user(b"wrong"),
            Err(StoreError::PinIncorrect)
        ));
        assert_eq!(store.meta().unwrap().user_pin_failures, n);
    }
    // Locked: even the right PIN is refused, and the counter stays.
    assert!(matches!(store.login_user(USER), Err(StoreError::PinLocked)));
    assert!(matches!(
        store.login_user(b"wrong"),
        Err(StoreError::PinLocked)
    ));
    assert!(matches!(
        store.set_user_pin(USER, b"5678"),
        Err(StoreError::PinLocked)
    ));
    assert_eq!(store.meta().unwrap().user_pin_failures, 10);
    // The SO is unaffected and can unlock by setting a new user PIN.
    assert_eq!(store.meta().unwrap().so_pin_failures, 0);
    let mk = store.login_so(SO).unwrap();
    store.init_user_pin(&mk, b"fresh").unwrap();
    assert_eq!(store.meta().unwrap().user_pin_failures, 0);
    assert!(same_key(&mk, &store.login_user(b"fresh").unwrap()));
}

#[test]
fn wrong_so_pin_is_counted_and_locks_at_max() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    for n in 1..=10 {
        assert!(matches!(
            store.login_so(b"nope"),
            Err(StoreError::PinIncorrect)
        ));
        assert_eq!(store.meta().unwrap().so_pin_failures, n);
    }
    assert!(matches!(store.login_so(SO), Err(StoreError::PinLocked)));
    assert!(matches!(
        store.set_so_pin(SO, b"x"),
        Err(StoreError::PinLocked)
    ));
    // The user PIN still works.
    assert_eq!(store.meta().unwrap().user_pin_failures, 0);
    store.login_user(USER).unwrap();
}

#[test]
fn success_resets_the_failure_counter() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    for _ in 0..9 {
        store.login_user(b"bad").unwrap_err();
        store.login_so(b"bad").unwrap_err();
    }
    assert_eq!(store.meta().unwrap().user_pin_failures, 9);
    store.login_user(USER).unwrap();
    assert_eq!(store.meta().unwrap().user_pin_failures, 0);
    assert_eq!(store.meta().unwrap().so_pin_failures, 9);
    store.login_so(SO).unwrap();
    assert_eq!(store.meta().unwrap().so_pin_failures, 0);
    // A fresh budget of ten: nine more wrong tries do not lock.
    for _ in 0..9 {
        store.login_user(b"bad").unwrap_err();
    }
    store.login_user(USER).unwrap();
}

#[test]
fn failures_are_counted_exactly_across_instances() {
    let tmp = tempfile::tempdir().unwrap();
    ready(tmp.path());
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let dir = tmp.path().to_path_buf();
            let start = start.clone();
            std::thread::spawn(move || {
                let store = open(&dir);
                start.wait();
                for _ in 0..2 {
                    assert!(matches!(
                        store.login_user(b"wrong"),
                        Err(StoreError::PinIncorrect)
                    ));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(open(tmp.path()).meta().unwrap().user_pin_failures, 8);
}

#[test]
fn init_user_pin_keeps_the_master_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    let id = LocalStore::new_object_id();
    let mk = store.login_user(USER).unwrap();
    let sealed = mk.seal(id.0.as_bytes(), b"private key bytes");
    store
        .put_object(&record(&id, true, b"attrs", &sealed))
        .unwrap();
    drop(mk);

    // The user forgets the PIN; the SO resets it.
    let so_key = store.login_so(SO).unwrap();
    store.init_user_pin(&so_key, b"new user pin").unwrap();
    assert!(matches!(
        store.login_user(USER),
        Err(StoreError::PinIncorrect)
    ));
    let mk = store.login_user(b"new user pin").unwrap();
    let (rec, _) = store.load_all().unwrap().pop().unwrap();
    let pt = mk.open(id.0.as_bytes(), &rec.sealed).unwrap();
    assert_eq!(pt.as_slice(), b"private key bytes");
}

#[test]
fn init_user_pin_rejects_a_master_key_of_another_initialisation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    let stale = store.login_so(SO).unwrap();
    store.init_token(SO, "again").unwrap();
    assert!(matches!(
        store.init_user_pin(&stale, USER),
        Err(StoreError::Corrupt(_))
    ));
    assert!(!store.meta().unwrap().user_pin_initialized);
}

#[test]
fn set_user_pin_rewraps_under_the_new_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    let before = store.login_user(USER).unwrap();
    assert!(matches!(
        store.set_user_pin(b"wrong", b"5678"),
        Err(StoreError::PinIncorrect)
    ));
    assert_eq!(store.meta().unwrap().user_pin_failures, 1);
    store.login_user(USER).unwrap(); // unchanged by the failed attempt

    store.set_user_pin(USER, b"5678").unwrap();
    assert_eq!(store.meta().unwrap().user_pin_failures, 0);
    assert!(matches!(
        store.login_user(USER),
        Err(StoreError::PinIncorrect)
    ));
    assert!(same_key(&before, &store.login_user(b"5678").unwrap()));
    store.login_so(SO).unwrap(); // the SO PIN is untouched
}

#[test]
fn set_so_pin_rewraps_under_the_new_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    let before = store.login_so(SO).unwrap();
    assert!(matches!(
        store.set_so_pin(b"wrong", b"new so"),
        Err(StoreError::PinIncorrect)
    ));
    assert_eq!(store.meta().unwrap().so_pin_failures, 1);
    store.set_so_pin(SO, b"new so").unwrap();
    assert_eq!(store.meta().unwrap().so_pin_failures, 0);
    assert!(matches!(store.login_so(SO), Err(StoreError::PinIncorrect)));
    assert!(same_key(&before, &store.login_so(b"new so").unwrap()));
    store.login_user(USER).unwrap(); // the user PIN is untouched
}

#[test]
fn pin_change_is_seen_by_another_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ready(tmp.path());
    let b = open(tmp.path());
    a.set_user_pin(USER, b"changed").unwrap();
    assert!(matches!(b.login_user(USER), Err(StoreError::PinIncorrect)));
    b.login_user(b"changed").unwrap();
}

#[test]
fn reinit_wipes_objects_and_the_user_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    let serial = store.meta().unwrap().serial;
    let old = store.login_user(USER).unwrap();
    for _ in 0..3 {
        let id = LocalStore::new_object_id();
        store.put_object(&record(&id, false, b"p", b"s")).unwrap();
    }
    assert_eq!(store.load_all().unwrap().len(), 3);

    store.login_so(SO).unwrap();
    store.init_token(b"other so", "relabelled").unwrap();
    assert!(store.load_all().unwrap().is_empty());
    let entries = fs::read_dir(tmp.path().join("objects")).unwrap().count();
    assert_eq!(entries, 0, "object files left behind");
    let meta = store.meta().unwrap();
    assert_eq!(meta.label, "relabelled");
    assert_eq!(meta.serial, serial);
    assert!(!meta.user_pin_initialized);
    assert!(matches!(
        store.login_user(USER),
        Err(StoreError::UserPinNotInitialized)
    ));
    assert!(matches!(store.login_so(SO), Err(StoreError::PinIncorrect)));
    let new = store.login_so(b"other so").unwrap();
    assert!(
        !same_key(&old, &new),
        "re-init must create a new master key"
    );
}

#[test]
fn put_then_load_all_roundtrips() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut expected = Vec::new();
    for i in 0..20u8 {
        let id = LocalStore::new_object_id();
        assert_eq!(id.0.len(), 32);
        let rec = record(&id, i % 2 == 0, &[i; 7], &vec![i; i as usize]);
        let stamp = store.put_object(&rec).unwrap();
        expected.push((rec, stamp));
    }
    expected.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let loaded = open(tmp.path()).load_all().unwrap();
    assert_eq!(loaded, expected);
}

#[test]
fn changes_since_sees_another_instances_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = open(tmp.path());
    let reader = open(tmp.path());
    let ids: Vec<ObjectId> = (0..3).map(|_| LocalStore::new_object_id()).collect();
    for id in &ids {
        writer.put_object(&record(id, false, b"v1", b"")).unwrap();
    }
    let mut known: HashMap<ObjectId, Stamp> = reader
        .load_all()
        .unwrap()
        .into_iter()
        .map(|(r, s)| (r.id, s))
        .collect();
    assert_eq!(known.len(), 3);
    let nothing = reader.changes_since(&known).unwrap();
    assert!(nothing.updated.is_empty() && nothing.removed.is_empty());

    let gen_before = reader.generation().unwrap();
    // Rewrite with identical size and bytes, delete one, add one.
    writer
        .put_object(&record(&ids[0], false, b"v2", b""))
        .unwrap();
    writer.delete_object(&ids[1]).unwrap();
    let added = LocalStore::new_object_id();
    writer
        .put_object(&record(&added, true, b"new", b"x"))
        .unwrap();
    assert!(reader.generation().unwrap() > gen_before);

    let changes = reader.changes_since(&known).unwrap();
    let mut updated: Vec<_> = changes.updated.iter().map(|(r, _)| r.clone()).collect();
    updated.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = vec![
        record(&ids[0], false, b"v2", b""),
        record(&added, true, b"new", b"x"),
    ];
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(updated, want);
    assert_eq!(changes.removed, vec![ids[1].clone()]);

    for (r, s) in changes.updated {
        known.insert(r.id, s);
    }
    for id in changes.removed {
        known.remove(&id);
    }
    let again = reader.changes_since(&known).unwrap();
    assert!(again.updated.is_empty() && again.removed.is_empty());
}

#[test]
fn every_rewrite_gets_a_new_stamp_even_in_a_tight_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let id = LocalStore::new_object_id();
    let rec = record(&id, false, b"same bytes", b"same");
    let mut seen: Vec<Stamp> = Vec::new();
    for _ in 0..50 {
        let stamp = store.put_object(&rec).unwrap();
        assert!(!seen.contains(&stamp), "stamp repeated: {stamp:?}");
        seen.push(stamp);
        // The stamp returned is the one a reader sees.
        let known = HashMap::from([(id.clone(), stamp)]);
        assert!(store.changes_since(&known).unwrap().updated.is_empty());
    }
}

/// Freed inode numbers are reused at once on ext4 and coarse clocks tick every
/// few ms, so a stamp could repeat unless each version's mtime is strictly later
/// than the one it replaces. A file dated in the future must not make a rewrite
/// go back in time.
#[test]
fn a_rewrite_is_dated_after_the_version_it_replaces() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let id = LocalStore::new_object_id();
    let rec = record(&id, false, b"x", b"");
    store.put_object(&rec).unwrap();
    let path = tmp.path().join("objects").join(format!("{}.obj", id.0));
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(future)
        .unwrap();
    let old = store.load_all().unwrap()[0].1;
    let new = store.put_object(&rec).unwrap();
    assert_ne!(old, new);
    assert!(fs::metadata(&path).unwrap().modified().unwrap() > future);
}

#[test]
fn generation_counts_every_write() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let g0 = store.generation().unwrap();
    store.init_token(SO, "t").unwrap();
    let g1 = store.generation().unwrap();
    assert!(g1 > g0);
    let id = LocalStore::new_object_id();
    store.put_object(&record(&id, false, b"", b"")).unwrap();
    let g2 = store.generation().unwrap();
    assert!(g2 > g1);
    store.delete_object(&id).unwrap();
    let g3 = store.generation().unwrap();
    assert!(g3 > g2);
    store.login_so(b"wrong").unwrap_err();
    let g4 = open(tmp.path()).generation().unwrap();
    assert!(g4 > g3, "a counted failure changes meta");
    // Deleting what is not there changes nothing.
    store.delete_object(&id).unwrap();
    assert_eq!(store.generation().unwrap(), g4);
}

#[test]
fn files_are_0600_and_directories_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("token");
    let store = ready(&dir);
    let id = LocalStore::new_object_id();
    store.put_object(&record(&id, true, b"a", b"b")).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("objects")), 0o700);
    for f in ["meta.json", "generation", ".lock"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    assert_eq!(
        mode(&dir.join("objects").join(format!("{}.obj", id.0))),
        0o600
    );
    // No temporary file is left behind.
    for d in [&dir, &dir.join("objects")] {
        for e in fs::read_dir(d).unwrap() {
            let name = e.unwrap().file_name();
            assert!(!name.to_string_lossy().starts_with(".tmp"), "{name:?}");
        }
    }
}

#[test]
fn concurrent_writers_lose_no_object() {
    const THREADS: usize = 8;
    const PUTS: usize = 50;
    let tmp = tempfile::tempdir().unwrap();
    let g0 = open(tmp.path()).generation().unwrap();
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let dir = tmp.path().to_path_buf();
            let start = start.clone();
            std::thread::spawn(move || {
                let store = open(&dir);
                start.wait();
                (0..PUTS)
                    .map(|i| {
                        let id = LocalStore::new_object_id();
                        let rec = record(&id, false, format!("{t}/{i}").as_bytes(), b"s");
                        store.put_object(&rec).unwrap();
                        rec
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut written: Vec<ObjectRecord> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    written.sort_by(|a, b| a.id.cmp(&b.id));
    let store = open(tmp.path());
    let loaded: Vec<ObjectRecord> = store
        .load_all()
        .unwrap()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(loaded.len(), THREADS * PUTS);
    assert_eq!(loaded, written);
    assert_eq!(
        store.generation().unwrap() - g0,
        (THREADS * PUTS) as u64,
        "a generation bump was lost"
    );
}

#[test]
fn tampered_sealed_blob_fails_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    let mk = store.login_user(USER).unwrap();
    let id = LocalStore::new_object_id();
    let sealed = mk.seal(id.0.as_bytes(), b"secret");
    assert_eq!(sealed.len(), 1 + 12 + 6 + 16);
    assert_eq!(sealed[0], 1);
    store.put_object(&record(&id, true, b"", &sealed)).unwrap();

    // Flip the last byte of the file: the GCM tag of the sealed part.
    let path = tmp.path().join("objects").join(format!("{}.obj", id.0));
    let mut bytes = fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&path, bytes).unwrap();
    let (rec, _) = store.load_all().unwrap().pop().unwrap();
    assert!(matches!(
        mk.open(id.0.as_bytes(), &rec.sealed),
        Err(StoreError::Corrupt(_))
    ));

    // Untampered, but presented under another object id, or truncated.
    let other = LocalStore::new_object_id();
    assert!(mk.open(other.0.as_bytes(), &sealed).is_err());
    assert!(mk.open(id.0.as_bytes(), &sealed[..10]).is_err());
    assert_eq!(
        mk.open(id.0.as_bytes(), &sealed).unwrap().as_slice(),
        b"secret"
    );
}

#[test]
fn sealing_uses_a_fresh_nonce_each_time() {
    let tmp = tempfile::tempdir().unwrap();
    let mk = ready(tmp.path()).login_user(USER).unwrap();
    assert_ne!(mk.seal(b"", b"same"), mk.seal(b"", b"same"));
    assert_eq!(format!("{mk:?}"), "MasterKey(..)");
}

#[test]
fn traversal_and_non_hex_ids_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("token");
    let store = open(&dir);
    for bad in [
        "../meta",
        "..",
        "",
        "a/b",
        "/etc/passwd",
        "abc.obj",
        "xyz",
        &"a".repeat(65),
    ] {
        let id = ObjectId(bad.to_owned());
        match store.put_object(&record(&id, false, b"", b"")) {
            Err(StoreError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput),
            other => panic!("{bad:?} accepted: {:?}", other.map(|_| ())),
        }
        assert!(store.delete_object(&id).is_err(), "{bad:?}");
    }
    assert!(!tmp.path().join("meta.obj").exists());
    assert!(dir.join("meta.json").exists());
    assert!(store.load_all().unwrap().is_empty());
}

#[test]
fn foreign_files_in_objects_are_ignored_and_corrupt_ones_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let objects = tmp.path().join("objects");
    fs::write(objects.join("README"), b"hello").unwrap();
    fs::write(objects.join("zz.obj"), b"hello").unwrap();
    let id = LocalStore::new_object_id();
    store.put_object(&record(&id, false, b"ok", b"")).unwrap();
    assert_eq!(store.load_all().unwrap().len(), 1);

    let path = objects.join(format!("{}.obj", id.0));
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(store.load_all(), Err(StoreError::Corrupt(_))));
}

#[test]
fn corrupt_meta_is_reported_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    ready(tmp.path());
    fs::write(tmp.path().join("meta.json"), b"{ not json").unwrap();
    assert!(matches!(
        LocalStore::open_with_kdf_iterations(tmp.path(), ITER),
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(
        fs::read(tmp.path().join("meta.json")).unwrap(),
        b"{ not json"
    );
}

#[test]
fn open_repairs_generation_and_removes_stale_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let before = store.generation().unwrap();
    fs::write(tmp.path().join("generation"), b"").unwrap();
    assert!(matches!(store.generation(), Err(StoreError::Corrupt(_))));
    fs::write(tmp.path().join("objects").join(".tmp-deadbeef"), b"x").unwrap();
    let store = open(tmp.path());
    assert!(store.generation().unwrap() > before);
    assert!(!tmp.path().join("objects").join(".tmp-deadbeef").exists());
}

#[test]
fn io_errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    fs::remove_file(tmp.path().join("meta.json")).unwrap();
    let err = store.meta().unwrap_err();
    assert!(matches!(err, StoreError::Io(_)));
    assert!(err.to_string().contains("meta.json"), "{err}");
}

/// Not a pass/fail check: prints how long one login takes with the default KDF.
/// `cargo test -p hsmux-backends --release -- --ignored --nocapture default_kdf`
#[test]
#[ignore]
fn default_kdf_login_timing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path()).unwrap();
    store.init_token(SO, "timing").unwrap();
    let t = std::time::Instant::now();
    for _ in 0..5 {
        store.login_so(SO).unwrap();
    }
    eprintln!("one login: {:?}", t.elapsed() / 5);
}

/// Not a pass/fail check: prints the cost of `load_all`, `changes_since` and
/// `generation` on 10,000 objects.
/// `cargo test -p hsmux-backends --release -- --ignored --nocapture ten_thousand`
#[test]
#[ignore]
fn ten_thousand_objects_timing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let t = std::time::Instant::now();
    for i in 0..10_000u32 {
        let id = LocalStore::new_object_id();
        let plain = vec![i as u8; 300];
        store
            .put_object(&record(&id, true, &plain, &[7u8; 180]))
            .unwrap();
    }
    eprintln!("10k put_object: {:?}", t.elapsed());
    let mut all = Vec::new();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        all = open(tmp.path()).load_all().unwrap();
        eprintln!("load_all of {}: {:?}", all.len(), t.elapsed());
    }
    let known: HashMap<ObjectId, Stamp> = all.into_iter().map(|(r, s)| (r.id, s)).collect();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let changes = store.changes_since(&known).unwrap();
        assert!(changes.updated.is_empty() && changes.removed.is_empty());
        eprintln!("changes_since with nothing changed: {:?}", t.elapsed());
    }
    let t = std::time::Instant::now();
    for _ in 0..1000 {
        store.generation().unwrap();
    }
    eprintln!("generation(): {:?}", t.elapsed() / 1000);
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LocalStore>();
    check::<MasterKey>();
}

const CHILD_DIR_ENV: &str = "HSMUX_STORE_TEST_CHILD_DIR";

/// Body of the child processes of `separate_processes_share_one_token`; does
/// nothing when run on its own.
#[test]
#[ignore]
fn child_process_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let store = open(Path::new(&dir));
    for i in 0..30u32 {
        let id = LocalStore::new_object_id();
        store
            .put_object(&record(&id, false, &i.to_le_bytes(), b""))
            .unwrap();
        if i % 10 == 0 {
            assert!(matches!(
                store.login_user(b"wrong"),
                Err(StoreError::PinIncorrect)
            ));
        }
    }
}

#[test]
fn separate_processes_share_one_token() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ready(tmp.path());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_process_writer", "--ignored", "--quiet"])
                .env(CHILD_DIR_ENV, tmp.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(store.load_all().unwrap().len(), 90);
    assert_eq!(store.meta().unwrap().user_pin_failures, 9);
}
