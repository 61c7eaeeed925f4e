#![cfg(feature = "pkcs11")]
//! The `pkcs11` backend against a real vendor library: SoftHSMv2.
//!
//! One SoftHSM configuration per test process (SoftHSM reads `SOFTHSM2_CONF` once, at its
//! `C_Initialize`), with one token per test so that tests running in parallel never
//! share a vendor login state. Tests that must own the whole process (fork, the
//! call-counting shim that sits in front of SoftHSM) re-run this binary as a child
//! process with only an ignored helper test selected.
#![cfg(feature = "pkcs11")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cryptoki_sys::*;
use hsmux_backends::{
    Backend, BackendError, CipherRequest, DecryptScheme, HashAlg, KeyKind, KeySpec, KeyUsage, Mgf,
    ObjectClass, PinSource, Pkcs11Backend, Pkcs11Settings, PssSalt, RemoteObject, SecretRef,
    SignRequest, SignScheme, SymmetricScheme,
};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};

const LIB: &str = "/usr/lib/softhsm/libsofthsm2.so";
const SO_PIN: &str = "so-pin-0000";
const PIN: &[u8] = b"user-pin-1234";
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// One token per test (parallel tests must not share a vendor login).
const TOKENS: &[&str] = &[
    "open-a",
    "open-b",
    "login-cfg",
    "login-pass",
    "login-badcfg",
    "ec",
    "rsa",
    "oaep",
    "aes",
    "hmac",
    "ed25519",
    "objects",
    "tool",
    "parallel",
    "errors",
    "caps",
    "ids",
    "helper",
];

struct Env {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    slots: HashMap<String, u64>,
}

/// Creates this process's SoftHSM configuration and tokens, once.
fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        assert!(
            Path::new(LIB).exists(),
            "{LIB} missing: apt-get install -y softhsm2"
        );
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        let reset = std::env::var("HSMUX_TEST_RESET_ON_FORK").is_ok_and(|v| v == "1");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\nlibrary.reset_on_fork = {reset}\n",
                tokens.display()
            ),
        )
        .unwrap();
        // Every test calls env() before loading SoftHSM, and SoftHSM reads this once.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let mut slots = HashMap::new();
        // A helper child process needs only its own token.
        let labels: &[&str] = if std::env::var_os("HSMUX_TEST_HELPER").is_some() {
            &["helper"]
        } else {
            TOKENS
        };
        for label in labels {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args([
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--so-pin",
                    SO_PIN,
                ])
                .arg("--pin")
                .arg(std::str::from_utf8(PIN).unwrap())
                .output()
                .expect("softhsm2-util runs (apt-get install -y softhsm2)");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "softhsm2-util: {text}");
            let slot: u64 = text
                .split_whitespace()
                .last()
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("no slot in {text:?}"));
            slots.insert(label.to_string(), slot);
        }
        Env {
            _dir: dir,
            conf,
            slots,
        }
    })
}

fn settings(label: &str) -> Pkcs11Settings {
    env();
    Pkcs11Settings {
        library: LIB.into(),
        token: Some(label.into()),
        slot: None,
        pin: Some(SecretRef::new(std::str::from_utf8(PIN).unwrap())),
        pin_source: PinSource::Config,
        cache_ttl_secs: None,
    }
}

fn open(label: &str) -> Pkcs11Backend {
    Pkcs11Backend::open(settings(label)).unwrap()
}

fn logged_in(label: &str) -> Pkcs11Backend {
    let b = open(label);
    b.login(PIN).unwrap();
    b
}

fn usage(sign: bool, decrypt: bool) -> KeyUsage {
    KeyUsage {
        sign,
        decrypt,
        ..KeyUsage::default()
    }
}

fn spec(kind: KeyKind, label: &str, id: &[u8], usage: KeyUsage) -> KeySpec {
    KeySpec {
        kind,
        label: label.into(),
        id: id.to_vec(),
        usage,
        extra: (Vec::new(), Vec::new()),
    }
}

/// Generates and returns (private, public).
fn keypair(
    b: &Pkcs11Backend,
    kind: KeyKind,
    label: &str,
    id: &[u8],
) -> (RemoteObject, RemoteObject) {
    let objs = b
        .generate(&spec(kind, label, id, usage(true, true)))
        .unwrap();
    assert_eq!(objs.len(), 2, "{objs:?}");
    let private = objs
        .iter()
        .find(|o| o.class == ObjectClass::PrivateKey)
        .expect("a private key")
        .clone();
    let public = objs
        .iter()
        .find(|o| o.class == ObjectClass::PublicKey)
        .expect("a public key")
        .clone();
    (private, public)
}

fn public_key(o: &RemoteObject) -> PKey<Public> {
    PKey::public_key_from_der(o.public_key_der.as_deref().expect("public_key_der")).unwrap()
}

/// A CK_ULONG as the `u64` of the backend contract (the same type on 64-bit Linux).
#[allow(clippy::useless_conversion)]
fn wide(v: CK_ULONG) -> u64 {
    u64::from(v)
}

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn attr(ty: CK_ATTRIBUTE_TYPE, v: Vec<u8>) -> (u64, Vec<u8>) {
    (wide(ty), v)
}

fn ecdsa_verifies(key: &PKey<Public>, digest: &[u8], sig: &[u8]) -> bool {
    let half = sig.len() / 2;
    let r = BigNum::from_slice(&sig[..half]).unwrap();
    let s = BigNum::from_slice(&sig[half..]).unwrap();
    let sig = EcdsaSig::from_private_components(r, s).unwrap();
    sig.verify(digest, &key.ec_key().unwrap()).unwrap()
}

fn digest_info_sha256(digest: &[u8]) -> Vec<u8> {
    let mut di = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    di.extend_from_slice(digest);
    di
}

fn ecdsa_req(digest: &[u8]) -> SignRequest {
    SignRequest::Ecdsa {
        hash: Some(HashAlg::Sha256),
        digest: digest.to_vec(),
    }
}

#[test]
fn open_by_label_and_by_slot_reach_the_same_token() {
    let e = env();
    let a = open("open-a");
    assert_eq!(a.kind(), "pkcs11");
    assert_eq!(a.vendor_slot(), e.slots["open-a"]);
    assert_eq!(a.vendor_label(), "open-a");
    let serial = a.serial();
    assert!(!serial.is_empty() && serial.len() <= 16 && serial.trim() == serial);

    let by_slot = Pkcs11Backend::open(Pkcs11Settings {
        token: None,
        slot: Some(e.slots["open-a"]),
        ..settings("open-a")
    })
    .unwrap();
    assert_eq!(by_slot.serial(), serial);
    assert_eq!(by_slot.vendor_label(), "open-a");

    let b = open("open-b");
    assert_ne!(b.serial(), serial, "two tokens, two serials");
    // The serial is the vendor's: softhsm2-util shows the same one.
    let shown = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &e.conf)
        .arg("--show-slots")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&serial));
}

#[test]
fn open_errors_name_the_library_label_and_slot() {
    let e = env();
    let missing = Pkcs11Backend::open(Pkcs11Settings {
        library: "/nonexistent/libvendor-pkcs11.so".into(),
        ..settings("open-a")
    })
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("/nonexistent/libvendor-pkcs11.so") && missing.contains("cannot load"),
        "{missing}"
    );

    // A shared object that is not a PKCS#11 module.
    let not_module = Pkcs11Backend::open(Pkcs11Settings {
        library: find_libc(),
        ..settings("open-a")
    })
    .unwrap_err()
    .to_string();
    assert!(not_module.contains("C_GetFunctionList"), "{not_module}");

    let unknown = Pkcs11Backend::open(settings("no-such-token"))
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("no vendor token labelled \"no-such-token\"")
            && unknown.contains("\"open-a\"")
            && unknown.contains(LIB),
        "{unknown}"
    );

    let bad_slot = 4_000_000_000u64;
    assert!(!e.slots.values().any(|s| *s == bad_slot));
    let no_slot = Pkcs11Backend::open(Pkcs11Settings {
        token: None,
        slot: Some(bad_slot),
        ..settings("open-a")
    })
    .unwrap_err()
    .to_string();
    assert!(no_slot.contains("4000000000"), "{no_slot}");
}

fn find_libc() -> PathBuf {
    for p in [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib64/libc.so.6",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("no libc.so.6 found")
}

#[test]
fn configured_pin_gates_the_application_login() {
    let b = open("login-cfg");
    assert_eq!(b.login(b"wrong-pin"), Err(BackendError::PinIncorrect));
    assert_eq!(
        b.login(&PIN[..PIN.len() - 1]),
        Err(BackendError::PinIncorrect)
    );
    b.login(PIN).unwrap();
    // And the vendor really is logged in: private objects can be made and used.
    let (private, _) = keypair(
        &b,
        KeyKind::Ec {
            params: P256.into(),
        },
        "cfg",
        b"c",
    );
    let d = hash(MessageDigest::sha256(), b"x").unwrap();
    b.sign(&private.key_ref, &ecdsa_req(&d)).unwrap();
}

#[test]
fn passed_through_pin_is_checked_by_the_vendor() {
    let b = Pkcs11Backend::open(Pkcs11Settings {
        pin: None,
        pin_source: PinSource::Application,
        ..settings("login-pass")
    })
    .unwrap();
    assert_eq!(b.login(b"wrong-pin"), Err(BackendError::PinIncorrect));
    b.login(PIN).unwrap();
    // Logging in twice is fine (the vendor says CKR_USER_ALREADY_LOGGED_IN).
    b.login(PIN).unwrap();
    let (private, _) = keypair(
        &b,
        KeyKind::Ec {
            params: P256.into(),
        },
        "pass",
        b"p",
    );
    let d = hash(MessageDigest::sha256(), b"x").unwrap();
    b.sign(&private.key_ref, &ecdsa_req(&d)).unwrap();
    // The application logs out and in again: the vendor, still logged in, does not
    // check the PIN, so the backend holds it to the one the vendor accepted.
    b.logout();
    assert_eq!(b.login(b"wrong-pin"), Err(BackendError::PinIncorrect));
    assert_eq!(b.login(&PIN[1..]), Err(BackendError::PinIncorrect));
    b.login(PIN).unwrap();
    // And the key_ref the token layer holds is still good (SoftHSM renumbers private
    // objects after a vendor logout, so the vendor must not have been logged out).
    b.sign(&private.key_ref, &ecdsa_req(&d)).unwrap();
    assert!(b.list().unwrap().contains(&private));
}

#[test]
fn vendor_refusing_the_configured_pin_is_reported_as_pin_incorrect_naming_the_config() {
    let b = Pkcs11Backend::open(Pkcs11Settings {
        pin: Some(SecretRef::new("not-the-vendor-pin")),
        ..settings("login-badcfg")
    })
    .unwrap();
    // The application gave the configured PIN, so it is not *its* PIN that is wrong.
    match b.login(b"not-the-vendor-pin") {
        Err(BackendError::Vendor(rv, m)) if rv == CKR_PIN_INCORRECT => {
            assert!(
                m.contains("login-badcfg") && m.contains("configured pin"),
                "{m}"
            )
        }
        other => panic!("expected the vendor's CKR_PIN_INCORRECT, got {other:?}"),
    }
}

#[test]
fn ec_p256_key_pair_is_listed_and_signs_verifiably() {
    let b = logged_in("ec");
    let (private, public) = keypair(
        &b,
        KeyKind::Ec {
            params: P256.into(),
        },
        "ec-key",
        &[1, 2, 3],
    );
    assert_eq!(private.id, vec![1, 2, 3]);
    assert_eq!(public.id, vec![1, 2, 3]);
    assert_eq!(private.label, "ec-key");
    assert_eq!(
        private.kind,
        Some(KeyKind::Ec {
            params: P256.into()
        })
    );
    assert!(private.never_extractable);
    assert!(private.usage.sign && !private.usage.decrypt);
    assert!(public.usage.verify);
    assert_eq!(private.public_key_der, public.public_key_der);
    let pk = public_key(&public);
    assert_eq!(pk.id(), Id::EC);
    assert_eq!(pk.bits(), 256);

    // list() describes both halves the same way generate() did.
    let listed = b.list().unwrap();
    let mine: Vec<&RemoteObject> = listed.iter().filter(|o| o.id == [1, 2, 3]).collect();
    assert_eq!(mine.len(), 2, "{listed:?}");
    assert!(mine.contains(&&private), "{mine:?} vs {private:?}");
    assert!(mine.contains(&&public));

    for msg in [&b"hello"[..], b"", &[0xffu8; 1000]] {
        let d = hash(MessageDigest::sha256(), msg).unwrap();
        let sig = b.sign(&private.key_ref, &ecdsa_req(&d)).unwrap();
        assert_eq!(sig.len(), 64);
        assert!(ecdsa_verifies(&pk, &d, &sig));
        let other = hash(MessageDigest::sha256(), b"other").unwrap();
        assert!(!ecdsa_verifies(&pk, &other, &sig));
    }
    // A SHA-384 digest on P-256 (truncated by ECDSA) also verifies.
    let d = hash(MessageDigest::sha384(), b"hello").unwrap();
    let sig = b.sign(&private.key_ref, &ecdsa_req(&d)).unwrap();
    assert!(ecdsa_verifies(&pk, &d, &sig));
}

#[test]
fn application_template_entries_override_ours() {
    let b = logged_in("ec");
    let mut s = spec(
        KeyKind::Ec {
            params: P256.into(),
        },
        "ours",
        b"ovr",
        usage(true, false),
    );
    s.extra = (
        vec![attr(CKA_LABEL, b"theirs-pub".to_vec())],
        vec![
            attr(CKA_LABEL, b"theirs-priv".to_vec()),
            attr(CKA_DERIVE, vec![CK_TRUE]),
        ],
    );
    let objs = b.generate(&s).unwrap();
    let private = objs
        .iter()
        .find(|o| o.class == ObjectClass::PrivateKey)
        .unwrap();
    let public = objs
        .iter()
        .find(|o| o.class == ObjectClass::PublicKey)
        .unwrap();
    assert_eq!(private.label, "theirs-priv");
    assert_eq!(public.label, "theirs-pub");
    assert!(private.usage.derive);
}

#[test]
fn rsa_2048_pkcs1_and_pss_signatures_verify() {
    let b = logged_in("rsa");
    let (private, public) = keypair(&b, KeyKind::Rsa { bits: 2048 }, "rsa-key", b"rsa1");
    assert_eq!(private.kind, Some(KeyKind::Rsa { bits: 2048 }));
    assert!(private.usage.sign && private.usage.decrypt);
    assert!(public.usage.verify && public.usage.encrypt);
    let pk = public_key(&private);
    assert_eq!(pk.rsa().unwrap().e().to_vec(), vec![1, 0, 1]);
    assert_eq!(pk.bits(), 2048);

    let msg = b"message to sign";
    let d = hash(MessageDigest::sha256(), msg).unwrap();
    let sig = b
        .sign(
            &private.key_ref,
            &SignRequest::RsaPkcs1 {
                hash: Some(HashAlg::Sha256),
                digest_info: digest_info_sha256(&d),
            },
        )
        .unwrap();
    assert_eq!(sig.len(), 256);
    let mut v = Verifier::new(MessageDigest::sha256(), &pk).unwrap();
    v.set_rsa_padding(Padding::PKCS1).unwrap();
    v.update(msg).unwrap();
    assert!(v.verify(&sig).unwrap());

    // Native PSS (hash = MGF hash), then a parameter set SoftHSM refuses (MGF1-SHA1
    // with SHA-256) that the backend pads itself and signs with raw RSA.
    for (h, mgf, salt) in [
        (HashAlg::Sha256, HashAlg::Sha256, 32usize),
        (HashAlg::Sha256, HashAlg::Sha256, 0),
        (HashAlg::Sha256, HashAlg::Sha1, 20),
    ] {
        let sig = b
            .sign(
                &private.key_ref,
                &SignRequest::RsaPss {
                    hash: h,
                    mgf,
                    salt_len: salt,
                    digest: d.to_vec(),
                },
            )
            .unwrap();
        let mut v = Verifier::new(MessageDigest::sha256(), &pk).unwrap();
        v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
        v.set_rsa_mgf1_md(if mgf == HashAlg::Sha1 {
            MessageDigest::sha1()
        } else {
            MessageDigest::sha256()
        })
        .unwrap();
        v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(salt as i32))
            .unwrap();
        v.update(msg).unwrap();
        assert!(v.verify(&sig).unwrap(), "PSS {h:?}/{mgf:?}/{salt}");
    }
}

fn oaep_encrypt(pk: &PKey<Public>, md: MessageDigest, label: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut enc = openssl::encrypt::Encrypter::new(pk).unwrap();
    enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    enc.set_rsa_oaep_md(md).unwrap();
    enc.set_rsa_mgf1_md(md).unwrap();
    if !label.is_empty() {
        enc.set_rsa_oaep_label(label).unwrap();
    }
    let mut ct = vec![0u8; enc.encrypt_len(msg).unwrap()];
    let n = enc.encrypt(msg, &mut ct).unwrap();
    ct.truncate(n);
    ct
}

#[test]
fn rsa_decrypts_openssl_ciphertexts_oaep_pkcs1_and_raw() {
    let b = logged_in("oaep");
    let (private, _) = keypair(&b, KeyKind::Rsa { bits: 2048 }, "oaep-key", b"oaep");
    let pk = public_key(&private);
    let secret = b"the session key, 32 bytes long!!";
    for (h, md, label) in [
        (HashAlg::Sha1, MessageDigest::sha1(), &b""[..]),
        (HashAlg::Sha256, MessageDigest::sha256(), &b""[..]),
        (HashAlg::Sha256, MessageDigest::sha256(), &b"a label"[..]),
        (HashAlg::Sha1, MessageDigest::sha1(), &b"a label"[..]),
    ] {
        let ct = oaep_encrypt(&pk, md, label, secret);
        let req = |label: &[u8]| CipherRequest::RsaOaep {
            hash: h,
            mgf: h,
            label: label.to_vec(),
            data: ct.clone(),
        };
        let pt = b.decrypt(&private.key_ref, &req(label)).unwrap();
        assert_eq!(pt, secret, "OAEP {h:?} label {label:?}");
        // The same ciphertext under another label is refused as a ciphertext error.
        let wrong = b.decrypt(&private.key_ref, &req(b"wrong"));
        assert!(
            matches!(wrong, Err(BackendError::InvalidCiphertext(_))),
            "{h:?}: {wrong:?}"
        );
    }

    let rsa = pk.rsa().unwrap();
    let mut ct = vec![0u8; 256];
    rsa.public_encrypt(secret, &mut ct, Padding::PKCS1).unwrap();
    let pt = b
        .decrypt(&private.key_ref, &CipherRequest::RsaPkcs1 { data: ct })
        .unwrap();
    assert_eq!(pt, secret);

    let mut block = vec![0u8; 256];
    block[255] = 7;
    block[1] = 0x42;
    let mut ct = vec![0u8; 256];
    rsa.public_encrypt(&block, &mut ct, Padding::NONE).unwrap();
    let pt = b
        .decrypt(&private.key_ref, &CipherRequest::RsaRaw { data: ct })
        .unwrap();
    assert_eq!(&pt[pt.len() - 255..], &block[1..]);
}

#[test]
fn aes_keys_encrypt_and_decrypt_gcm_and_cbc() {
    let b = logged_in("aes");
    let objs = b
        .generate(&spec(
            KeyKind::Aes { len: 32 },
            "aes-key",
            b"aes1",
            KeyUsage {
                encrypt: true,
                decrypt: true,
                ..KeyUsage::default()
            },
        ))
        .unwrap();
    assert_eq!(objs.len(), 1);
    let key = &objs[0];
    assert_eq!(key.class, ObjectClass::SecretKey);
    assert_eq!(key.kind, Some(KeyKind::Aes { len: 32 }));
    assert!(key.usage.encrypt && key.usage.decrypt && !key.usage.sign);
    assert!(key.never_extractable);
    assert!(b.list().unwrap().contains(key));

    let gcm = |data: Vec<u8>| CipherRequest::AesGcm {
        iv: vec![9u8; 12],
        aad: b"header".to_vec(),
        tag_bits: 128,
        data,
    };
    let msg = b"attack at dawn, bring snacks".to_vec();
    let ct = b.encrypt(&key.key_ref, &gcm(msg.clone())).unwrap();
    assert_eq!(ct.len(), msg.len() + 16);
    assert_eq!(b.decrypt(&key.key_ref, &gcm(ct.clone())).unwrap(), msg);
    let mut bad = ct.clone();
    bad[0] ^= 1;
    assert!(
        b.decrypt(&key.key_ref, &gcm(bad)).is_err(),
        "a flipped bit fails the tag"
    );

    let cbc = |data: Vec<u8>| CipherRequest::AesCbcPad {
        iv: [3u8; 16],
        data,
    };
    for len in [0usize, 15, 16, 100] {
        let msg = vec![0x5au8; len];
        let ct = b.encrypt(&key.key_ref, &cbc(msg.clone())).unwrap();
        assert_eq!(ct.len(), (len / 16 + 1) * 16);
        assert_eq!(b.decrypt(&key.key_ref, &cbc(ct)).unwrap(), msg);
    }
}

/// With a key of known value (imported through `create_object`), the vendor's results
/// match OpenSSL's byte for byte.
#[test]
fn imported_secret_keys_match_openssl_results() {
    let b = logged_in("hmac");
    let aes_key = [0x11u8; 16];
    let aes = b
        .create_object(&[
            attr(CKA_CLASS, ulong(CKO_SECRET_KEY)),
            attr(CKA_KEY_TYPE, ulong(CKK_AES)),
            attr(CKA_TOKEN, vec![CK_TRUE]),
            attr(CKA_SENSITIVE, vec![CK_TRUE]),
            attr(CKA_ENCRYPT, vec![CK_TRUE]),
            attr(CKA_DECRYPT, vec![CK_TRUE]),
            attr(CKA_LABEL, b"imported-aes".to_vec()),
            attr(CKA_ID, b"ia".to_vec()),
            attr(CKA_VALUE, aes_key.to_vec()),
        ])
        .unwrap();
    assert_eq!(aes.kind, Some(KeyKind::Aes { len: 16 }));
    assert!(!aes.never_extractable, "imported, so not never-extractable");
    let (iv, aad, msg) = ([7u8; 12], b"aad", b"plaintext of some length");
    let mut tag = [0u8; 16];
    let mut expected = openssl::symm::encrypt_aead(
        openssl::symm::Cipher::aes_128_gcm(),
        &aes_key,
        Some(&iv),
        aad,
        msg,
        &mut tag,
    )
    .unwrap();
    expected.extend_from_slice(&tag);
    let got = b
        .encrypt(
            &aes.key_ref,
            &CipherRequest::AesGcm {
                iv: iv.to_vec(),
                aad: aad.to_vec(),
                tag_bits: 128,
                data: msg.to_vec(),
            },
        )
        .unwrap();
    assert_eq!(got, expected);

    // SoftHSM wants HMAC keys at least as long as the hash output.
    let hmac_key = b"an hmac key of sixty-four bytes, as SHA-512 HMAC needs in SoftHSM".to_vec();
    let mac_key = b
        .create_object(&[
            attr(CKA_CLASS, ulong(CKO_SECRET_KEY)),
            attr(CKA_KEY_TYPE, ulong(CKK_GENERIC_SECRET)),
            attr(CKA_TOKEN, vec![CK_TRUE]),
            attr(CKA_SIGN, vec![CK_TRUE]),
            attr(CKA_VERIFY, vec![CK_TRUE]),
            attr(CKA_LABEL, b"imported-hmac".to_vec()),
            attr(CKA_VALUE, hmac_key.clone()),
        ])
        .unwrap();
    assert_eq!(
        mac_key.kind,
        Some(KeyKind::GenericSecret {
            len: hmac_key.len()
        })
    );
    for (h, md) in [
        (HashAlg::Sha256, MessageDigest::sha256()),
        (HashAlg::Sha512, MessageDigest::sha512()),
        (HashAlg::Sha1, MessageDigest::sha1()),
    ] {
        let req = SignRequest::Hmac {
            hash: h,
            message: b"mac me".to_vec(),
        };
        let mac = b.sign(&mac_key.key_ref, &req).unwrap();
        let k = PKey::hmac(&hmac_key).unwrap();
        let mut signer = openssl::sign::Signer::new(md, &k).unwrap();
        signer.update(b"mac me").unwrap();
        assert_eq!(mac, signer.sign_to_vec().unwrap(), "{h:?}");
        assert!(b.verify(&mac_key.key_ref, &req, &mac).unwrap());
        let mut bad = mac.clone();
        bad[0] ^= 1;
        assert!(!b.verify(&mac_key.key_ref, &req, &bad).unwrap());
    }
}

#[test]
fn ed25519_key_pair_signs_verifiably() {
    let b = logged_in("ed25519");
    if !b.capabilities().signatures.contains(&SignScheme::EdDsa) {
        panic!("SoftHSM 2.6 offers CKM_EDDSA; capabilities say it does not");
    }
    let (private, public) = keypair(&b, KeyKind::Ed25519, "ed-key", b"ed");
    assert_eq!(private.kind, Some(KeyKind::Ed25519));
    assert_eq!(private.public_key_der, public.public_key_der);
    let pk = public_key(&public);
    assert_eq!(pk.id(), Id::ED25519);
    let sig = b
        .sign(
            &private.key_ref,
            &SignRequest::EdDsa {
                message: b"ed message".to_vec(),
            },
        )
        .unwrap();
    assert_eq!(sig.len(), 64);
    let mut v = Verifier::new_without_digest(&pk).unwrap();
    assert!(v.verify_oneshot(&sig, b"ed message").unwrap());
}

fn self_signed_cert() -> openssl::x509::X509 {
    let key = PKey::from_ec_key(
        openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "hsmux test").unwrap();
    let name = name.build();
    let mut x = openssl::x509::X509Builder::new().unwrap();
    x.set_version(2).unwrap();
    x.set_subject_name(&name).unwrap();
    x.set_issuer_name(&name).unwrap();
    x.set_pubkey(&key).unwrap();
    let serial = BigNum::from_u32(4242).unwrap().to_asn1_integer().unwrap();
    x.set_serial_number(&serial).unwrap();
    x.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    x.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    x.sign(&key, MessageDigest::sha256()).unwrap();
    x.build()
}

#[test]
fn certificate_object_is_created_listed_and_destroyed() {
    let b = logged_in("objects");
    let cert = self_signed_cert();
    let der = cert.to_der().unwrap();
    let subject = cert.subject_name().to_der().unwrap();
    let created = b
        .create_object(&[
            attr(CKA_CLASS, ulong(CKO_CERTIFICATE)),
            attr(CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)),
            attr(CKA_TOKEN, vec![CK_TRUE]),
            attr(CKA_ID, b"cert1".to_vec()),
            attr(CKA_LABEL, b"my cert".to_vec()),
            attr(CKA_SUBJECT, subject.clone()),
            attr(CKA_VALUE, der.clone()),
        ])
        .unwrap();
    assert_eq!(created.class, ObjectClass::Certificate);
    assert_eq!(created.id, b"cert1");
    assert_eq!(created.label, "my cert");
    assert_eq!(created.value.as_deref(), Some(&der[..]));
    assert_eq!(created.kind, None);
    let extra: HashMap<u64, Vec<u8>> = created.extra.iter().cloned().collect();
    assert_eq!(extra.get(&wide(CKA_SUBJECT)), Some(&subject));
    assert_eq!(
        extra.get(&wide(CKA_CERTIFICATE_TYPE)),
        Some(&ulong(CKC_X_509))
    );

    let data = b
        .create_object(&[
            attr(CKA_CLASS, ulong(CKO_DATA)),
            attr(CKA_TOKEN, vec![CK_TRUE]),
            attr(CKA_LABEL, b"blob".to_vec()),
            attr(CKA_APPLICATION, b"hsmux-test".to_vec()),
            attr(CKA_VALUE, b"opaque".to_vec()),
        ])
        .unwrap();
    assert_eq!(data.class, ObjectClass::Data);
    assert_eq!(data.value.as_deref(), Some(&b"opaque"[..]));

    let listed = b.list().unwrap();
    assert!(listed.contains(&created), "{listed:?}");
    assert!(listed.contains(&data));

    b.destroy(&created.key_ref).unwrap();
    let listed = b.list().unwrap();
    assert!(!listed.iter().any(|o| o.key_ref == created.key_ref));
    assert!(listed.contains(&data));
    assert!(matches!(
        b.destroy(&created.key_ref),
        Err(BackendError::NotFound(_))
    ));
}

#[test]
fn generated_key_is_visible_to_pkcs11_tool() {
    let e = env();
    let b = logged_in("tool");
    keypair(
        &b,
        KeyKind::Ec {
            params: P256.into(),
        },
        "seen-by-pkcs11-tool",
        b"\x42\x43",
    );
    let out = Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &e.conf)
        .args(["--module", LIB, "--token-label", "tool", "--login", "--pin"])
        .arg(std::str::from_utf8(PIN).unwrap())
        .arg("--list-objects")
        .output()
        .expect("pkcs11-tool runs (apt-get install -y opensc)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.matches("seen-by-pkcs11-tool").count() >= 2,
        "both halves listed: {text}"
    );
    assert!(text.contains("ID:         4243"), "{text}");
}

#[test]
fn four_threads_sign_in_parallel() {
    let b = Arc::new(logged_in("parallel"));
    let (private, public) = keypair(
        &b,
        KeyKind::Ec {
            params: P256.into(),
        },
        "par",
        b"par",
    );
    let pk = public_key(&public);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let b = Arc::clone(&b);
            let key = private.key_ref.clone();
            let pk = pk.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let d = hash(MessageDigest::sha256(), format!("{t}/{i}").as_bytes()).unwrap();
                    let sig = b.sign(&key, &ecdsa_req(&d)).unwrap();
                    assert!(ecdsa_verifies(&pk, &d, &sig));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn vendor_errors_map_to_precise_errors() {
    let b = logged_in("errors");
    let (private, public) = keypair(
        &b,
        KeyKind::Ec {
            params: P256.into(),
        },
        "err",
        b"err",
    );
    let d = hash(MessageDigest::sha256(), b"x").unwrap();

    // A key that may not sign.
    let objs = b
        .generate(&spec(
            KeyKind::Ec {
                params: P256.into(),
            },
            "nosign",
            b"ns",
            KeyUsage {
                derive: true,
                ..KeyUsage::default()
            },
        ))
        .unwrap();
    let nosign = objs
        .iter()
        .find(|o| o.class == ObjectClass::PrivateKey)
        .unwrap();
    assert!(!nosign.usage.sign && nosign.usage.derive);
    assert!(matches!(
        b.sign(&nosign.key_ref, &ecdsa_req(&d)),
        Err(BackendError::NotPermitted(_))
    ));

    // Not a handle at all.
    assert!(matches!(
        b.sign("arn:aws:kms:nope", &ecdsa_req(&d)),
        Err(BackendError::NotFound(_))
    ));
    // A public key cannot sign.
    assert!(matches!(
        b.sign(&public.key_ref, &ecdsa_req(&d)),
        Err(BackendError::NotPermitted(_))
    ));
    // HMAC with an EC key: the vendor's own code and function, passed through.
    match b.sign(
        &private.key_ref,
        &SignRequest::Hmac {
            hash: HashAlg::Sha256,
            message: b"m".to_vec(),
        },
    ) {
        Err(BackendError::Vendor(rv, f)) => {
            assert_eq!(rv, wide(CKR_KEY_TYPE_INCONSISTENT));
            assert_eq!(f, "C_SignInit");
        }
        other => panic!("expected a vendor error, got {other:?}"),
    }
    // SoftHSM accepts EdDSA on an EC key at C_SignInit and fails in C_Sign: the
    // session may hold a broken operation, so the backend closes it. That must not
    // log the vendor out or lose the object handles (SoftHSM does both when an
    // application's last session closes).
    match b.sign(
        &private.key_ref,
        &SignRequest::EdDsa {
            message: b"m".to_vec(),
        },
    ) {
        Err(BackendError::Vendor(_, f)) => assert_eq!(f, "C_Sign"),
        other => panic!("expected a vendor error from C_Sign, got {other:?}"),
    }
    // The backend still works after errors (spoiled sessions are not reused).
    let sig = b.sign(&private.key_ref, &ecdsa_req(&d)).unwrap();
    assert!(ecdsa_verifies(&public_key(&public), &d, &sig));

    // Destroyed key: NotFound.
    b.destroy(&private.key_ref).unwrap();
    assert!(matches!(
        b.sign(&private.key_ref, &ecdsa_req(&d)),
        Err(BackendError::NotFound(_))
    ));
    assert!(!b
        .list()
        .unwrap()
        .iter()
        .any(|o| o.key_ref == private.key_ref));
}

#[test]
fn capabilities_follow_the_vendor_mechanism_list() {
    let b = open("caps");
    let c = b.capabilities();
    let all = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];
    for hash in all {
        for scheme in [
            SignScheme::Ecdsa {
                hash: Some(hash),
                curves: vec![],
            },
            SignScheme::RsaPkcs1 { hash: Some(hash) },
            // SoftHSM has raw RSA: PSS is padded here with any salt and MGF1.
            SignScheme::RsaPss {
                hash,
                salt: PssSalt::Any,
                mgf: Mgf::Any,
            },
        ] {
            assert!(c.signatures.contains(&scheme), "{scheme:?}");
        }
        assert!(c.decryption.contains(&DecryptScheme::RsaOaep {
            hash,
            mgf: Mgf::Any,
            label: true
        }));
    }
    assert!(c.signatures.contains(&SignScheme::EdDsa));
    assert!(c.signatures.contains(&SignScheme::RsaPkcs1 { hash: None }));
    let macs: Vec<HashAlg> = c.macs.iter().map(|m| m.hash).collect();
    assert_eq!(macs, all.to_vec());
    // SoftHSM takes HMAC keys no shorter than the hash.
    assert!(
        c.macs.iter().all(|m| m.min_key_len == m.hash.digest_len()),
        "{:?}",
        c.macs
    );
    assert!(c.decryption.contains(&DecryptScheme::RsaPkcs1));
    assert!(c.decryption.contains(&DecryptScheme::RsaRaw));
    assert!(c.symmetric.contains(&SymmetricScheme::AesGcm));
    assert!(c.symmetric.contains(&SymmetricScheme::AesCbcPad));
    assert!(!c.symmetric.contains(&SymmetricScheme::ServiceSymmetric));
    assert!(c.destroy && c.create_objects);
    assert!(c.generate.contains(&KeyKind::Rsa { bits: 2048 }));
    assert!(c.generate.contains(&KeyKind::Ec {
        params: P256.into()
    }));
    assert!(c.generate.contains(&KeyKind::Aes { len: 32 }));
    assert!(c.generate.contains(&KeyKind::Ed25519));
    // Read once: the same answer again.
    assert_eq!(b.capabilities(), c);
}

// ---- tests that need a process of their own -------------------------------------

/// Runs one ignored helper test of this binary in a child process.
fn run_helper(name: &str, envs: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("SOFTHSM2_CONF")
    .env("HSMUX_TEST_HELPER", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "helper {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "helper {name} did not run:\n{text}"
    );
    text
}

#[test]
fn forked_child_opens_a_working_backend() {
    // SoftHSM's default: the child's C_Initialize says CKR_CRYPTOKI_ALREADY_INITIALIZED.
    run_helper("helper_fork", &[("HSMUX_TEST_RESET_ON_FORK", "0")]);
    // reset_on_fork: the child's C_Initialize starts the vendor afresh (logged out).
    run_helper("helper_fork", &[("HSMUX_TEST_RESET_ON_FORK", "1")]);
}

#[test]
#[ignore = "run in a child process by forked_child_opens_a_working_backend"]
fn helper_fork() {
    let parent = logged_in("helper");
    let (private, public) = keypair(
        &parent,
        KeyKind::Ec {
            params: P256.into(),
        },
        "forked",
        b"fk",
    );
    let pk = public_key(&public);
    let d = hash(MessageDigest::sha256(), b"before fork").unwrap();
    parent.sign(&private.key_ref, &ecdsa_req(&d)).unwrap();

    // SAFETY: this process runs one test on one thread; the child only calls into
    // the backend and SoftHSM, then leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let child = Pkcs11Backend::open(settings("helper")).expect("open in child");
            child.login(PIN).expect("login in child");
            // The parent's backend, inherited, must not tear down the child's vendor.
            drop(parent);
            let key = child
                .list()
                .unwrap()
                .into_iter()
                .find(|o| o.label == "forked" && o.class == ObjectClass::PrivateKey)
                .expect("key listed in child");
            let d = hash(MessageDigest::sha256(), b"in child").unwrap();
            let sig = child
                .sign(&key.key_ref, &ecdsa_req(&d))
                .expect("sign in child");
            ecdsa_verifies(&pk, &d, &sig)
        }));
        let code = match code {
            Ok(true) => 0,
            Ok(false) => 2,
            Err(_) => 3,
        };
        // SAFETY: leaves the child without running the test harness's exit path.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child we just forked.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "child crashed: {status}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child failed");
    // The parent is unaffected by its child.
    let d = hash(MessageDigest::sha256(), b"after fork").unwrap();
    let sig = parent.sign(&private.key_ref, &ecdsa_req(&d)).unwrap();
    assert!(ecdsa_verifies(&pk, &d, &sig));
}

/// A PKCS#11 module in front of SoftHSM that counts every call and can hold `C_Sign`
/// until a number of callers are inside it at once.
const SHIM_C: &str = r#"
#include <dlfcn.h>
#include <string.h>
#include <time.h>
typedef unsigned long UL;
struct list { unsigned char ver[2]; void *f[68]; };
static struct list real, ours;
static UL counts[68];
static int inside, max_inside, rendezvous, single_attrs;
#define P1 UL a
#define P2 UL a, UL b
#define P3 UL a, UL b, UL c
#define P4 UL a, UL b, UL c, UL d
#define P5 UL a, UL b, UL c, UL d, UL e
#define P6 UL a, UL b, UL c, UL d, UL e, UL f
#define P8 UL a, UL b, UL c, UL d, UL e, UL f, UL g, UL h
#define A1 a
#define A2 a, b
#define A3 a, b, c
#define A4 a, b, c, d
#define A5 a, b, c, d, e
#define A6 a, b, c, d, e, f
#define A8 a, b, c, d, e, f, g, h
#define W(i, n) static UL w##i(P##n) { \
    __atomic_fetch_add(&counts[i], 1, __ATOMIC_SEQ_CST); \
    return ((UL (*)(P##n))real.f[i])(A##n); }
W(0,1) W(1,1) W(2,1) W(3,1) W(4,3) W(5,2) W(6,2) W(7,3) W(8,3) W(9,4) W(10,3) W(11,5)
W(12,5) W(13,1) W(14,1) W(15,2) W(16,3) W(17,5) W(18,4) W(19,1) W(20,4) W(21,5) W(22,2)
W(23,3) W(25,4) W(26,3) W(27,4) W(28,1) W(29,3) W(30,5) W(31,5) W(32,3) W(33,3)
W(34,5) W(35,5) W(36,3) W(37,2) W(38,5) W(39,3) W(40,2) W(41,3) W(42,3) W(44,3)
W(45,3) W(46,3) W(47,5) W(48,3) W(49,5) W(50,3) W(51,3) W(52,3) W(53,5) W(54,5) W(55,5)
W(56,5) W(57,5) W(58,5) W(59,8) W(60,6) W(61,8) W(62,6) W(63,3) W(64,3) W(65,1) W(66,1)
W(67,3)
/* C_GetAttributeValue; in single_attrs mode it behaves like vendors that refuse a
   template of several attributes when one is invalid, filling none of them. */
struct attr { UL type; void *p; UL len; };
static UL w24(P4) {
    __atomic_fetch_add(&counts[24], 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&single_attrs, __ATOMIC_SEQ_CST) && d > 1) {
        struct attr *t = (struct attr *)c;
        for (UL i = 0; i < d; i++) t[i].len = (UL)-1;
        return 0x12; /* CKR_ATTRIBUTE_TYPE_INVALID */
    }
    return ((UL (*)(P4))real.f[24])(A4);
}
static UL w43(P5) {
    __atomic_fetch_add(&counts[43], 1, __ATOMIC_SEQ_CST);
    int now = __atomic_add_fetch(&inside, 1, __ATOMIC_SEQ_CST);
    int seen = __atomic_load_n(&max_inside, __ATOMIC_SEQ_CST);
    while (now > seen && !__atomic_compare_exchange_n(&max_inside, &seen, now, 0,
                                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    int want = __atomic_load_n(&rendezvous, __ATOMIC_SEQ_CST);
    for (int i = 0; want > 1 && i < 5000; i++) {
        if (__atomic_load_n(&inside, __ATOMIC_SEQ_CST) >= want) break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, 0);
    }
    UL rv = ((UL (*)(P5))real.f[43])(A5);
    __atomic_sub_fetch(&inside, 1, __ATOMIC_SEQ_CST);
    return rv;
}
static void *wrappers[68] = {
    w0,w1,w2,w3,w4,w5,w6,w7,w8,w9,w10,w11,w12,w13,w14,w15,w16,w17,w18,w19,w20,w21,w22,w23,
    w24,w25,w26,w27,w28,w29,w30,w31,w32,w33,w34,w35,w36,w37,w38,w39,w40,w41,w42,w43,w44,w45,
    w46,w47,w48,w49,w50,w51,w52,w53,w54,w55,w56,w57,w58,w59,w60,w61,w62,w63,w64,w65,w66,w67 };
UL C_GetFunctionList(struct list **pp) {
    if (!ours.f[0]) {
        void *h = dlopen(TARGET, RTLD_NOW | RTLD_LOCAL);
        if (!h) return 5;
        UL (*get)(struct list **) = (UL (*)(struct list **))dlsym(h, "C_GetFunctionList");
        struct list *r = 0;
        if (!get || get(&r) || !r) return 5;
        real = *r;
        memcpy(ours.ver, r->ver, 2);
        for (int i = 0; i < 68; i++) ours.f[i] = real.f[i] ? wrappers[i] : 0;
    }
    *pp = &ours;
    return 0;
}
UL shim_count(int i) { return __atomic_load_n(&counts[i], __ATOMIC_SEQ_CST); }
void shim_reset(void) { for (int i = 0; i < 68; i++) __atomic_store_n(&counts[i], 0, __ATOMIC_SEQ_CST); }
void shim_rendezvous(int n) { __atomic_store_n(&rendezvous, n, __ATOMIC_SEQ_CST);
                              __atomic_store_n(&max_inside, 0, __ATOMIC_SEQ_CST); }
void shim_single_attrs(int on) { __atomic_store_n(&single_attrs, on, __ATOMIC_SEQ_CST); }
int shim_max_inside(void) { return __atomic_load_n(&max_inside, __ATOMIC_SEQ_CST); }
"#;

/// Names of the function-list entries, by index, for messages.
const FN_NAMES: [&str; 68] = [
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_WrapKey",
    "C_UnwrapKey",
    "C_DeriveKey",
    "C_SeedRandom",
    "C_GenerateRandom",
    "C_GetFunctionStatus",
    "C_CancelFunction",
    "C_WaitForSlotEvent",
];
const SIGN_INIT: usize = 42;
const SIGN: usize = 43;

struct Shim {
    path: PathBuf,
    lib: libloading::Library,
}

impl Shim {
    fn build(dir: &Path) -> Shim {
        let src = dir.join("shim.c");
        let path = dir.join("libcountshim.so");
        std::fs::write(&src, SHIM_C).unwrap();
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&path)
            .arg(format!("-DTARGET=\"{LIB}\""))
            .arg(&src)
            .arg("-ldl")
            .output()
            .expect("a C compiler (cc)");
        assert!(
            out.status.success(),
            "cc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // SAFETY: our own freshly built shim; its initialisers do nothing.
        let lib = unsafe { libloading::Library::new(&path) }.unwrap();
        Shim { path, lib }
    }

    fn counts(&self) -> Vec<u64> {
        // SAFETY: the shim exports `unsigned long shim_count(int)`.
        let f: libloading::Symbol<'_, unsafe extern "C" fn(i32) -> u64> =
            unsafe { self.lib.get(b"shim_count\0") }.unwrap();
        // SAFETY: in range 0..68, as the shim's table.
        (0..68).map(|i| unsafe { f(i) }).collect()
    }

    fn reset(&self) {
        // SAFETY: the shim exports `void shim_reset(void)`.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn()> =
                self.lib.get(b"shim_reset\0").unwrap();
            f()
        }
    }

    fn rendezvous(&self, n: i32) {
        // SAFETY: the shim exports `void shim_rendezvous(int)`.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn(i32)> =
                self.lib.get(b"shim_rendezvous\0").unwrap();
            f(n)
        }
    }

    fn single_attrs(&self, on: bool) {
        // SAFETY: the shim exports `void shim_single_attrs(int)`.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn(i32)> =
                self.lib.get(b"shim_single_attrs\0").unwrap();
            f(i32::from(on))
        }
    }

    fn max_inside(&self) -> i32 {
        // SAFETY: the shim exports `int shim_max_inside(void)`.
        unsafe {
            let f: libloading::Symbol<'_, unsafe extern "C" fn() -> i32> =
                self.lib.get(b"shim_max_inside\0").unwrap();
            f()
        }
    }
}

#[test]
fn each_signature_is_one_sign_init_and_one_sign_and_threads_overlap() {
    run_helper("helper_vendor_calls", &[]);
}

#[test]
fn a_refused_configured_pin_is_presented_to_the_vendor_once() {
    run_helper("helper_refused_pin", &[]);
}

#[test]
#[ignore = "run in a child process by a_refused_configured_pin_is_presented_to_the_vendor_once"]
fn helper_refused_pin() {
    env();
    let dir = tempfile::tempdir().unwrap();
    let shim = Shim::build(dir.path());
    let b = Pkcs11Backend::open(Pkcs11Settings {
        library: shim.path.clone(),
        pin: Some(SecretRef::new("not-the-vendor-pin")),
        ..settings("helper")
    })
    .unwrap();
    shim.reset();
    for _ in 0..3 {
        match b.login(b"not-the-vendor-pin") {
            Err(BackendError::Vendor(CKR_PIN_INCORRECT, m)) => assert!(m.contains("`pin`"), "{m}"),
            other => panic!("expected CKR_PIN_INCORRECT, got {other:?}"),
        }
    }
    assert!(b.list().is_err(), "listing logs in with the refused pin");
    // C_Login is the 19th entry of the function list.
    assert_eq!(shim.counts()[18], 1, "the vendor saw the refused PIN once");
}

#[test]
#[ignore = "run in a child process by each_signature_is_one_sign_init_and_one_sign_and_threads_overlap"]
fn helper_vendor_calls() {
    env();
    let dir = tempfile::tempdir().unwrap();
    let shim = Shim::build(dir.path());
    let b = Arc::new(
        Pkcs11Backend::open(Pkcs11Settings {
            library: shim.path.clone(),
            ..settings("helper")
        })
        .unwrap(),
    );
    b.login(PIN).unwrap();
    let (ec, _) = keypair(
        &b,
        KeyKind::Ec {
            params: P256.into(),
        },
        "count-ec",
        b"ce",
    );
    let (rsa, _) = keypair(&b, KeyKind::Rsa { bits: 2048 }, "count-rsa", b"cr");

    // Listing reads each key's attributes in two calls (class + key type, then the
    // rest), whatever their number.
    shim.reset();
    let listed = b.list().unwrap();
    assert_eq!(listed.len(), 4);
    let counts = shim.counts();
    assert_eq!(
        counts[24],
        2 * listed.len() as u64,
        "C_GetAttributeValue calls"
    );
    assert_eq!(counts[26], 1, "one C_FindObjectsInit");

    // A vendor that refuses multi-attribute templates gets one attribute at a time,
    // and the objects come out the same.
    shim.single_attrs(true);
    let one_by_one = b.list().unwrap();
    shim.single_attrs(false);
    assert_eq!(one_by_one, listed);

    shim.reset();
    let d = hash(MessageDigest::sha256(), b"counted").unwrap();
    let n = 100u64;
    for _ in 0..n {
        b.sign(&ec.key_ref, &ecdsa_req(&d)).unwrap();
        b.sign(
            &rsa.key_ref,
            &SignRequest::RsaPkcs1 {
                hash: Some(HashAlg::Sha256),
                digest_info: digest_info_sha256(&d),
            },
        )
        .unwrap();
        b.sign(
            &rsa.key_ref,
            &SignRequest::RsaPss {
                hash: HashAlg::Sha256,
                mgf: HashAlg::Sha256,
                salt_len: 32,
                digest: d.to_vec(),
            },
        )
        .unwrap();
    }
    let counts = shim.counts();
    let others: Vec<String> = counts
        .iter()
        .enumerate()
        .filter(|(i, c)| **c > 0 && *i != SIGN_INIT && *i != SIGN)
        .map(|(i, c)| format!("{} x{c}", FN_NAMES[i]))
        .collect();
    assert_eq!(counts[SIGN_INIT], 3 * n);
    assert_eq!(
        counts[SIGN],
        3 * n,
        "one C_Sign per signature, no length query"
    );
    assert!(
        others.is_empty(),
        "other vendor calls while signing: {others:?}"
    );
    println!(
        "vendor calls per signature: {} (C_SignInit + C_Sign)",
        (counts[SIGN_INIT] + counts[SIGN]) / (3 * n)
    );

    // Two threads are inside the vendor's C_Sign at once: no lock is held across it.
    shim.rendezvous(2);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let b = Arc::clone(&b);
            let key = ec.key_ref.clone();
            std::thread::spawn(move || b.sign(&key, &ecdsa_req(&d)).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(shim.max_inside(), 2, "the two signatures did not overlap");
}

/// Throughput of ECDSA P-256 signing through the backend vs the same SoftHSM called
/// directly (one thread each way): `cargo test --release -p hsmux-backends --test
/// pkcs11_softhsm -- --ignored bench_ --nocapture`.
#[test]
#[ignore = "benchmark"]
fn bench_sign_overhead() {
    let b = logged_in("helper");
    let (ec, _) = keypair(
        &b,
        KeyKind::Ec {
            params: P256.into(),
        },
        "bench",
        b"bench",
    );
    let d = hash(MessageDigest::sha256(), b"bench").unwrap();
    let n = 3000;

    // Direct: the same library (already initialised by the backend), one session.
    // SAFETY: the vendor library path; loading it again only bumps its refcount.
    let lib = unsafe { libloading::Library::new(LIB) }.unwrap();
    let get: libloading::Symbol<'_, unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
        // SAFETY: C_GetFunctionList's signature.
        unsafe { lib.get(b"C_GetFunctionList\0") }.unwrap();
    let mut fl: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: valid out-pointer; the table is static in the library.
    let f = unsafe {
        assert_eq!(get(&mut fl), CKR_OK);
        *fl
    };
    let slot = b.vendor_slot() as CK_SLOT_ID;
    let mut s: CK_SESSION_HANDLE = 0;
    let key: CK_OBJECT_HANDLE = ec.key_ref.parse().unwrap();
    // SAFETY: plain vendor calls with valid pointers to locals.
    unsafe {
        assert_eq!(
            f.C_OpenSession.unwrap()(
                slot,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                std::ptr::null_mut(),
                None,
                &mut s
            ),
            CKR_OK
        );
    }
    let direct = || {
        let mut mech = CK_MECHANISM {
            mechanism: CKM_ECDSA,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut sig = [0u8; 64];
        let mut len: CK_ULONG = 64;
        // SAFETY: valid mechanism, key, and buffers.
        unsafe {
            assert_eq!(f.C_SignInit.unwrap()(s, &mut mech, key), CKR_OK);
            assert_eq!(
                f.C_Sign.unwrap()(s, d.as_ptr() as *mut u8, 32, sig.as_mut_ptr(), &mut len),
                CKR_OK
            );
        }
    };
    let via = || {
        b.sign(&ec.key_ref, &ecdsa_req(&d)).unwrap();
    };
    for _ in 0..200 {
        direct();
        via();
    }
    // Interleaved blocks of 100, alternating which goes first, so that load from
    // elsewhere on the machine falls on both sides alike.
    let mut total = (0f64, 0f64);
    for block in 0..n / 100 {
        let time = |f: &dyn Fn()| {
            let t = std::time::Instant::now();
            for _ in 0..100 {
                f();
            }
            t.elapsed().as_secs_f64()
        };
        if block % 2 == 0 {
            total.0 += time(&direct);
            total.1 += time(&via);
        } else {
            total.1 += time(&via);
            total.0 += time(&direct);
        }
    }
    let best = total;
    println!(
        "ECDSA P-256, {n} signatures: SoftHSM direct {:.1} us/sig, via backend {:.1} us/sig ({:+.1}%)",
        best.0 / n as f64 * 1e6,
        best.1 / n as f64 * 1e6,
        (best.1 / best.0 - 1.0) * 100.0
    );
}

/// `unique_id class label spki-digest` of every key object the backend lists.
fn identities(b: &Pkcs11Backend) -> Vec<(String, String)> {
    b.list()
        .unwrap()
        .into_iter()
        .filter(|o| o.kind.is_some())
        .map(|o| {
            let what = format!(
                "{:?} {} {:02x?}",
                o.class,
                o.label,
                &openssl::sha::sha256(o.public_key_der.as_deref().unwrap_or_default())[..6]
            );
            (o.unique_id, what)
        })
        .collect()
}

/// Prints the identities of the "ids" token as another process sees them.
#[test]
#[ignore = "helper: run by unique_ids_follow_keys_across_processes_and_destroys"]
fn helper_identities() {
    let conf = std::env::var("HSMUX_TEST_IDS_CONF").expect("run by its parent test");
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let b = Pkcs11Backend::open(Pkcs11Settings {
        library: LIB.into(),
        token: Some("ids".into()),
        slot: None,
        pin: Some(SecretRef::new(std::str::from_utf8(PIN).unwrap())),
        pin_source: PinSource::Config,
        cache_ttl_secs: None,
    })
    .unwrap();
    b.login(PIN).unwrap();
    let all = b.list().unwrap();
    println!("OBJECTS {}", all.len());
    for (id, what) in identities(&b) {
        println!("IDENTITY\t{id}\t{what}");
    }
}

#[test]
fn unique_ids_follow_keys_across_processes_and_destroys() {
    let b = logged_in("ids");
    let ec = || KeyKind::Ec {
        params: P256.into(),
    };
    // Every key has the same label, and the key made after a destroy takes the
    // destroyed key's CKA_ID too (a key "re-created" under its old name).
    let make = |n: u8| {
        b.generate(&spec(ec(), "same", &[n], usage(true, false)))
            .unwrap_or_else(|e| panic!("key {n}: {e}"))
    };
    let first = make(1);
    make(2);
    make(3);
    let doomed: Vec<String> = first.iter().map(|o| o.unique_id.clone()).collect();
    let private = first
        .iter()
        .find(|o| o.class == ObjectClass::PrivateKey)
        .unwrap();
    b.destroy(&private.key_ref).unwrap();
    for o in first.iter().filter(|o| o.class == ObjectClass::PublicKey) {
        let _ = b.destroy(&o.key_ref);
    }
    make(1);
    let ours: HashMap<String, String> = identities(&b).into_iter().collect();
    assert_eq!(
        ours.len(),
        6,
        "three key pairs, each object its own id: {ours:?}"
    );
    for id in &doomed {
        assert!(
            !ours.contains_key(id),
            "a destroyed key's id {id} was given to another key"
        );
    }
    // A fresh process numbers SoftHSM's handles anew: the ids must not move.
    let conf = env().conf.display().to_string();
    let text = run_helper("helper_identities", &[("HSMUX_TEST_IDS_CONF", &conf)]);
    let theirs: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("IDENTITY\t"))
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, what)| (id.to_string(), what.to_string()))
        .collect();
    assert_eq!(
        theirs, ours,
        "every id names the same key in both processes"
    );
}
