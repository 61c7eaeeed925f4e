//! Thread safety: many sessions of one token used from many threads at once.

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use hsmux_tests::keys::{self, data_template};
use hsmux_tests::verify::{self, Curve};
use hsmux_tests::*;
use openssl::hash::MessageDigest;
use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

const THREADS: usize = 8;

#[test]
fn eight_threads_sign_concurrently_in_their_own_sessions() {
    const PER_THREAD: usize = 40;
    let t = shared().token("threads_sign");
    let main = t.login_user();
    let pair = keys::gen_ec(&main, Curve::P256, &[], &[]);
    let (_, public) = keys::ec_public_from_token(&main, pair.public);
    let public = Arc::new(public);
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let t = t.clone();
            let public = Arc::clone(&public);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let s = t.rw_session();
                barrier.wait();
                for i in 0..PER_THREAD {
                    let msg = format!("thread {id} message {i}");
                    let sig = ok(
                        s.sign(&Mechanism::EcdsaSha256, pair.private, msg.as_bytes()),
                        "C_Sign in a worker thread",
                    );
                    assert!(
                        verify::ecdsa_verify_digest(
                            &public,
                            &verify::digest(MessageDigest::sha256(), msg.as_bytes()),
                            &sig
                        ),
                        "OpenSSL rejects a signature made concurrently ({msg})"
                    );
                    ok(
                        s.verify(&Mechanism::EcdsaSha256, pair.public, msg.as_bytes(), &sig),
                        "C_Verify in a worker thread",
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker thread panicked");
    }
}

#[test]
fn eight_threads_run_multi_part_operations_without_interfering() {
    const PER_THREAD: usize = 30;
    let t = shared().token("threads_multi_part");
    let main = t.login_user();
    let value = verify::random_bytes(32);
    let key = keys::create_aes(&main, &value, &[]);
    let mac_key = keys::create_generic_secret(&main, &value, &[]);
    let value = Arc::new(value);
    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let t = t.clone();
            let value = Arc::clone(&value);
            std::thread::spawn(move || {
                let s = t.rw_session();
                for i in 0..PER_THREAD {
                    let pt = format!("thread {id} block {i}").repeat(5).into_bytes();
                    let mut iv = [id as u8; 12];
                    iv[11] = i as u8;
                    let iv_copy = iv;
                    let mech = Mechanism::AesGcm(GcmParams::new(&mut iv, b"", 128.into()).unwrap());
                    ok(s.encrypt_init(&mech, key), "C_EncryptInit");
                    let mut sealed = Vec::new();
                    for chunk in pt.chunks(13) {
                        sealed.extend(ok(s.encrypt_update(chunk), "C_EncryptUpdate"));
                    }
                    sealed.extend(ok(s.encrypt_final(), "C_EncryptFinal"));
                    let (ct, tag) = sealed.split_at(sealed.len() - 16);
                    let opened = openssl::symm::decrypt_aead(
                        openssl::symm::Cipher::aes_256_gcm(),
                        &value,
                        Some(&iv_copy),
                        b"",
                        ct,
                        tag,
                    )
                    .expect("OpenSSL opens a concurrently sealed message");
                    assert_eq!(opened, pt);
                    ok(s.sign_init(&Mechanism::Sha256Hmac, mac_key), "C_SignInit");
                    for chunk in pt.chunks(7) {
                        ok(s.sign_update(chunk), "C_SignUpdate");
                    }
                    assert_eq!(
                        ok(s.sign_final(), "C_SignFinal"),
                        verify::hmac(cryptoki::mechanism::MechanismType::SHA256, &value, &pt)
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker thread panicked");
    }
}

#[test]
fn threads_creating_objects_concurrently_get_distinct_handles_and_lose_none() {
    const PER_THREAD: usize = 25;
    let t = shared().token("threads_create");
    let main = t.login_user();
    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let t = t.clone();
            std::thread::spawn(move || {
                let s = t.rw_session();
                let mut handles: Vec<ObjectHandle> = Vec::new();
                for i in 0..PER_THREAD {
                    let token = i % 2 == 0;
                    let template = keys::merge(
                        data_template(&format!("t{id}-{i}"), b"x", false),
                        &[Attribute::Token(token)],
                    );
                    handles.push(ok(s.create_object(&template), "C_CreateObject in a thread"));
                }
                // Keep the session (and its session objects) alive for the check.
                (s, handles)
            })
        })
        .collect();
    let results: Vec<_> = workers
        .into_iter()
        .map(|w| w.join().expect("worker thread panicked"))
        .collect();
    let all: BTreeSet<u64> = results
        .iter()
        .flat_map(|(_, handles)| handles.iter().map(|h| h.handle()))
        .collect();
    assert_eq!(
        all.len(),
        THREADS * PER_THREAD,
        "two objects got the same handle"
    );
    let found = keys::find(
        &main,
        &[Attribute::Class(cryptoki::object::ObjectClass::DATA)],
    );
    assert_eq!(found.len(), THREADS * PER_THREAD, "objects were lost");
}

#[test]
fn eight_threads_generate_and_use_their_own_keys() {
    let t = shared().token("threads_generate");
    let _login = t.login_user();
    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let t = t.clone();
            std::thread::spawn(move || {
                let s = t.rw_session();
                for round in 0..3 {
                    let pair = keys::gen_ec(&s, Curve::P256, &[], &[]);
                    let (_, public) = keys::ec_public_from_token(&s, pair.public);
                    let msg = format!("{id}/{round}");
                    let sig = ok(
                        s.sign(&Mechanism::EcdsaSha256, pair.private, msg.as_bytes()),
                        "C_Sign",
                    );
                    assert!(verify::ecdsa_verify_digest(
                        &public,
                        &verify::digest(MessageDigest::sha256(), msg.as_bytes()),
                        &sig
                    ));
                    ok(s.destroy_object(pair.private), "C_DestroyObject");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker thread panicked");
    }
}
