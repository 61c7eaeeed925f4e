//! Several processes on one token directory, and fork safety.
//!
//! Cross-process tests re-run this test binary as a child (see `hsmux_tests::process`)
//! that opens the same token store through a config of its own.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki_sys::*;
use hsmux_tests::keys::{self, attr_bytes, data_template, merge};
use hsmux_tests::process::{child_role, in_fresh_process, run_child};
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::verify::{self, Curve};
use hsmux_tests::*;
use openssl::hash::MessageDigest;
use std::time::{Duration, Instant};

fn token_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

#[test]
fn token_objects_created_in_another_process_are_found_by_the_next_find() {
    const NAME: &str = "token_objects_created_in_another_process_are_found_by_the_next_find";
    if child_role(NAME).is_some() {
        let t = attach_child();
        let s = t.login_user();
        ok(
            s.create_object(&merge(
                data_template("from-child", b"child payload", true),
                &[Attribute::Token(true)],
            )),
            "child: C_CreateObject(token data)",
        );
        keys::gen_ec(
            &s,
            Curve::P256,
            &token_template("child-key"),
            &token_template("child-key"),
        );
        return;
    }
    let h = shared();
    let t = h.token("xproc_create");
    // The parent keeps a logged-in session open while the child writes.
    let s = t.login_user();
    assert!(keys::find(&s, &[Attribute::Label(b"from-child".to_vec())]).is_empty());
    run_child(NAME, "create", &h.child_env(&t));
    let found = keys::find(&s, &[Attribute::Label(b"from-child".to_vec())]);
    assert_eq!(
        found.len(),
        1,
        "the child's token data object is not visible here"
    );
    assert_eq!(
        attr_bytes(&s, found[0], AttributeType::Value),
        b"child payload"
    );
    let private = keys::find(
        &s,
        &[
            Attribute::Label(b"child-key".to_vec()),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
        ],
    );
    let public = keys::find(
        &s,
        &[
            Attribute::Label(b"child-key".to_vec()),
            Attribute::Class(ObjectClass::PUBLIC_KEY),
        ],
    );
    assert_eq!(
        (private.len(), public.len()),
        (1, 1),
        "the child's key pair"
    );
    let (_, public_key) = keys::ec_public_from_token(&s, public[0]);
    let sig = ok(
        s.sign(&Mechanism::EcdsaSha256, private[0], b"cross-process"),
        "C_Sign with the child's key",
    );
    assert!(verify::ecdsa_verify_digest(
        &public_key,
        &verify::digest(MessageDigest::sha256(), b"cross-process"),
        &sig
    ));
}

#[test]
fn token_objects_created_here_are_found_and_used_by_another_process() {
    const NAME: &str = "token_objects_created_here_are_found_and_used_by_another_process";
    if child_role(NAME).is_some() {
        let t = attach_child();
        let s = t.login_user();
        let data = keys::find(&s, &[Attribute::Label(b"from-parent".to_vec())]);
        assert_eq!(data.len(), 1, "child: parent's data object");
        assert_eq!(
            attr_bytes(&s, data[0], AttributeType::Value),
            b"parent payload"
        );
        let private = keys::find(
            &s,
            &[
                Attribute::Label(b"parent-key".to_vec()),
                Attribute::Class(ObjectClass::PRIVATE_KEY),
            ],
        );
        let public = keys::find(
            &s,
            &[
                Attribute::Label(b"parent-key".to_vec()),
                Attribute::Class(ObjectClass::PUBLIC_KEY),
            ],
        );
        assert_eq!(
            (private.len(), public.len()),
            (1, 1),
            "child: parent's key pair"
        );
        let (_, public_key) = keys::ec_public_from_token(&s, public[0]);
        let sig = ok(
            s.sign(&Mechanism::EcdsaSha384, private[0], b"child signs"),
            "child: C_Sign",
        );
        assert!(verify::ecdsa_verify_digest(
            &public_key,
            &verify::digest(MessageDigest::sha384(), b"child signs"),
            &sig
        ));
        let mac_key = keys::find(&s, &[Attribute::Label(b"parent-hmac".to_vec())]);
        assert_eq!(mac_key.len(), 1, "child: parent's HMAC key");
        let mac = ok(
            s.sign(&Mechanism::Sha256Hmac, mac_key[0], b"m"),
            "child: HMAC",
        );
        assert_eq!(
            mac,
            verify::hmac(
                cryptoki::mechanism::MechanismType::SHA256,
                &[0x42; 32],
                b"m"
            ),
            "child: HMAC with the parent's key"
        );
        return;
    }
    let h = shared();
    let t = h.token("xproc_use");
    let s = t.login_user();
    ok(
        s.create_object(&merge(
            data_template("from-parent", b"parent payload", true),
            &[Attribute::Token(true)],
        )),
        "C_CreateObject(token data)",
    );
    keys::gen_ec(
        &s,
        Curve::P384,
        &token_template("parent-key"),
        &token_template("parent-key"),
    );
    keys::create_generic_secret(&s, &[0x42; 32], &token_template("parent-hmac"));
    run_child(NAME, "use", &h.child_env(&t));
}

#[test]
fn token_object_destroyed_in_another_process_disappears_here() {
    const NAME: &str = "token_object_destroyed_in_another_process_disappears_here";
    if child_role(NAME).is_some() {
        let t = attach_child();
        let s = t.login_user();
        let found = keys::find(&s, &[Attribute::Label(b"doomed".to_vec())]);
        assert_eq!(found.len(), 1, "child: the object to destroy");
        ok(s.destroy_object(found[0]), "child: C_DestroyObject");
        return;
    }
    let h = shared();
    let t = h.token("xproc_destroy");
    let s = t.login_user();
    ok(
        s.create_object(&merge(
            data_template("doomed", b"x", false),
            &[Attribute::Token(true)],
        )),
        "C_CreateObject",
    );
    ok(
        s.create_object(&merge(
            data_template("survivor", b"y", false),
            &[Attribute::Token(true)],
        )),
        "C_CreateObject",
    );
    run_child(NAME, "destroy", &h.child_env(&t));
    assert!(
        keys::find(&s, &[Attribute::Label(b"doomed".to_vec())]).is_empty(),
        "an object destroyed by another process is still found"
    );
    assert_eq!(
        keys::find(&s, &[Attribute::Label(b"survivor".to_vec())]).len(),
        1,
        "the other object must survive"
    );
}

#[test]
fn two_processes_creating_objects_at_once_lose_none() {
    const NAME: &str = "two_processes_creating_objects_at_once_lose_none";
    const PER_PROCESS: usize = 25;
    if let Some(role) = child_role(NAME) {
        let t = attach_child();
        let s = t.login_user();
        for i in 0..PER_PROCESS {
            ok(
                s.create_object(&merge(
                    data_template(&format!("{role}-{i}"), b"x", false),
                    &[Attribute::Token(true)],
                )),
                "child: C_CreateObject",
            );
        }
        return;
    }
    let h = shared();
    let t = h.token("xproc_concurrent");
    let env = h.child_env(&t);
    let env2 = env.clone();
    let a = std::thread::spawn(move || run_child(NAME, "a", &env));
    let b = std::thread::spawn(move || run_child(NAME, "b", &env2));
    a.join().expect("child a");
    b.join().expect("child b");
    let s = t.login_user();
    let all = keys::find(&s, &[Attribute::Class(ObjectClass::DATA)]);
    assert_eq!(
        all.len(),
        2 * PER_PROCESS,
        "objects created concurrently by two processes were lost"
    );
}

/// Waits for `pid` for at most `limit`; kills it and fails if it hangs.
fn wait_child(pid: libc::pid_t, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: plain syscall on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid failed");
        if r == pid {
            assert!(
                libc::WIFEXITED(status),
                "forked child died abnormally (signal {})",
                libc::WTERMSIG(status)
            );
            return libc::WEXITSTATUS(status);
        }
        if start.elapsed() > limit {
            // SAFETY: killing our own hung child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("forked child hung for {limit:?} (deadlock on state inherited through fork?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the forked child does; returns its exit code (0 = success).
fn forked_child(slot: CK_SLOT_ID, public: &openssl::ec::EcKey<openssl::pkey::Public>) -> i32 {
    let step = |code: i32, what: &str, rv: CK_RV| {
        if rv != CKR_OK {
            eprintln!("forked child: {what}: {}", rv_name(rv));
            Some(code)
        } else {
            None
        }
    };
    let rv = raw::initialize(Some(&mut raw::init_args(CKF_OS_LOCKING_OK)));
    if let Some(c) = step(10, "C_Initialize", rv) {
        return c;
    }
    let (rv, h) = raw::open_session(slot, CKF_SERIAL_SESSION);
    if let Some(c) = step(11, "C_OpenSession", rv) {
        return c;
    }
    if let Some(c) = step(12, "C_Login", raw::login(h, CKU_USER, USER_PIN.as_bytes())) {
        return c;
    }
    let mut label = b"fork-key".to_vec();
    let mut class = CKO_PRIVATE_KEY.to_ne_bytes();
    let mut template = [
        CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: label.as_mut_ptr().cast(),
            ulValueLen: label.len() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: class.as_mut_ptr().cast(),
            ulValueLen: class.len() as CK_ULONG,
        },
    ];
    if let Some(c) = step(13, "C_FindObjectsInit", raw::find_init(h, &mut template)) {
        return c;
    }
    let (rv, found) = raw::find(h, 4);
    if let Some(c) = step(14, "C_FindObjects", rv) {
        return c;
    }
    raw::find_final(h);
    if found.len() != 1 {
        eprintln!(
            "forked child: found {} private keys labelled fork-key",
            found.len()
        );
        return 15;
    }
    let digest = verify::digest(MessageDigest::sha256(), b"signed after fork");
    let mech = raw::mech(&Mechanism::Ecdsa);
    if let Some(c) = step(16, "C_SignInit", raw::init(Op::Sign, h, &mech, found[0])) {
        return c;
    }
    let out = raw::sign(h, &digest, Out::Buf(64));
    if let Some(c) = step(17, "C_Sign", out.rv) {
        return c;
    }
    if !verify::ecdsa_verify_digest(public, &digest, &out.data) {
        eprintln!("forked child: OpenSSL rejects the signature made after fork");
        return 18;
    }
    if let Some(c) = step(19, "C_Finalize", raw::finalize()) {
        return c;
    }
    0
}

#[test]
fn forked_child_reinitializes_and_signs_while_the_parent_keeps_working() {
    in_fresh_process(
        "forked_child_reinitializes_and_signs_while_the_parent_keeps_working",
        || {
            let h = Harness::create(1);
            let t = h.token("fork");
            let s = t.login_user();
            let pair = keys::gen_ec(
                &s,
                Curve::P256,
                &token_template("fork-key"),
                &token_template("fork-key"),
            );
            let (_, public) = keys::ec_public_from_token(&s, pair.public);
            ok(
                s.sign(&Mechanism::EcdsaSha256, pair.private, b"before fork"),
                "C_Sign before fork",
            );
            let slot = t.slot.id();
            raw::raw();
            // SAFETY: the child only calls the module and async-signal-tolerant code, then
            // leaves with _exit; the parent waits for it.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let code = forked_child(slot, &public);
                // SAFETY: end the forked child without running the parent's atexit/test code.
                unsafe { libc::_exit(code) };
            }
            let code = wait_child(pid, Duration::from_secs(60));
            let meaning = match code {
                0 => "ok",
                10 => "C_Initialize failed",
                11 => "C_OpenSession failed",
                12 => "C_Login failed",
                13 | 14 => "C_FindObjects* failed",
                15 => "key not found",
                16 | 17 => "sign failed",
                18 => "signature invalid",
                19 => "C_Finalize failed",
                _ => "unknown",
            };
            assert_eq!(
                code, 0,
                "forked child exited with {code}: {meaning} (its stderr above)"
            );
            let sig = ok(
                s.sign(&Mechanism::EcdsaSha256, pair.private, b"after fork"),
                "parent C_Sign after the fork",
            );
            assert!(verify::ecdsa_verify_digest(
                &public,
                &verify::digest(MessageDigest::sha256(), b"after fork"),
                &sig
            ));
        },
    );
}
