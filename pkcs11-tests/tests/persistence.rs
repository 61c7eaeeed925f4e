//! Token persistence: token objects, labels and PINs survive C_Finalize/C_Initialize and
//! a new process; session objects do not; the store on disk never holds key material or
//! PINs in plaintext.

use cryptoki::context::{CInitializeArgs, CInitializeFlags};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki_sys::*;
use hsmux_tests::keys::{self, attr_bool, attr_bytes, data_template, merge};
use hsmux_tests::process::{child_role, in_fresh_process, run_child};
use hsmux_tests::verify::{self, Curve};
use hsmux_tests::*;
use openssl::hash::MessageDigest;
use std::path::Path;

const HMAC_KEY: [u8; 32] = [0x3c; 32];

fn token_attrs(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

#[test]
fn token_objects_survive_finalize_and_initialize_and_session_objects_do_not() {
    in_fresh_process(
        "token_objects_survive_finalize_and_initialize_and_session_objects_do_not",
        || {
            let h = Harness::create(2);
            let t = h.token("persist-reinit");
            let (ec_point, mac) = {
                let s = t.login_user();
                let pair = keys::gen_ec(&s, Curve::P256, &token_attrs("ec"), &token_attrs("ec"));
                let hmac = keys::create_generic_secret(&s, &HMAC_KEY, &token_attrs("hmac"));
                ok(
                    s.create_object(&merge(
                        data_template("data", b"persisted value", true),
                        &[Attribute::Token(true)],
                    )),
                    "C_CreateObject(token data)",
                );
                ok(
                    s.create_object(&data_template("session-only", b"gone", false)),
                    "C_CreateObject(session data)",
                );
                (
                    attr_bytes(&s, pair.public, AttributeType::EcPoint),
                    ok(s.sign(&Mechanism::Sha256Hmac, hmac, b"m"), "C_Sign(HMAC)"),
                )
            };
            ok(h.pkcs11.clone().finalize(), "C_Finalize");
            ok(
                h.pkcs11
                    .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)),
                "C_Initialize again",
            );
            let info = t.info();
            assert!(info.token_initialized(), "token lost CKF_TOKEN_INITIALIZED");
            assert_eq!(info.label(), "persist-reinit");
            assert!(info.user_pin_initialized(), "token lost its user PIN");
            let s = t.login_user();
            assert!(
                keys::find(&s, &[Attribute::Label(b"session-only".to_vec())]).is_empty(),
                "a session object survived C_Finalize"
            );
            let data = keys::find(&s, &[Attribute::Label(b"data".to_vec())]);
            assert_eq!(data.len(), 1, "token data object lost");
            assert_eq!(
                attr_bytes(&s, data[0], AttributeType::Value),
                b"persisted value"
            );
            assert!(attr_bool(&s, data[0], AttributeType::Private));
            let hmac = keys::find(&s, &[Attribute::Label(b"hmac".to_vec())]);
            assert_eq!(hmac.len(), 1, "token HMAC key lost");
            assert_eq!(
                ok(
                    s.sign(&Mechanism::Sha256Hmac, hmac[0], b"m"),
                    "C_Sign(HMAC)"
                ),
                mac,
                "the persisted HMAC key computes a different MAC"
            );
            let public = keys::find(
                &s,
                &[
                    Attribute::Label(b"ec".to_vec()),
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                ],
            );
            let private = keys::find(
                &s,
                &[
                    Attribute::Label(b"ec".to_vec()),
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                ],
            );
            assert_eq!((public.len(), private.len()), (1, 1), "token key pair lost");
            assert_eq!(attr_bytes(&s, public[0], AttributeType::EcPoint), ec_point);
            assert!(attr_bool(&s, private[0], AttributeType::Sensitive));
            assert!(attr_bool(&s, private[0], AttributeType::Local));
            let (_, key) = keys::ec_public_from_token(&s, public[0]);
            let sig = ok(
                s.sign(&Mechanism::EcdsaSha256, private[0], b"after restart"),
                "C_Sign with the persisted key",
            );
            assert!(verify::ecdsa_verify_digest(
                &key,
                &verify::digest(MessageDigest::sha256(), b"after restart"),
                &sig
            ));
            // The other configured token was never initialised and still is not.
            let other = h.slots().iter().find(|s| **s != t.slot).copied().unwrap();
            assert!(!ok(h.pkcs11.get_token_info(other), "C_GetTokenInfo").token_initialized());
        },
    );
}

#[test]
fn token_label_pins_and_objects_persist_into_a_new_process() {
    const NAME: &str = "token_label_pins_and_objects_persist_into_a_new_process";
    if child_role(NAME).is_some() {
        let t = attach_child();
        assert_eq!(t.info().label(), "persist-xproc");
        let s = t.rw_session();
        expect_rv(
            s.login(UserType::User, Some(&pin(USER_PIN))),
            CKR_PIN_INCORRECT,
            "child: the old user PIN",
        );
        ok(
            s.login(UserType::User, Some(&pin("changed-pin-42"))),
            "child: C_Login with the PIN changed by the parent",
        );
        assert!(
            keys::find(&s, &[Attribute::Label(b"hmac".to_vec())]).is_empty(),
            "child: the HMAC key still has its old label"
        );
        let key = keys::find(&s, &[Attribute::Label(b"hmac-renamed".to_vec())]);
        assert_eq!(key.len(), 1, "child: HMAC key under its new label");
        assert_eq!(
            ok(s.sign(&Mechanism::Sha256Hmac, key[0], b"m"), "child: HMAC"),
            verify::hmac(MechanismType::SHA256, &HMAC_KEY, b"m")
        );
        let cert = keys::find(&s, &[Attribute::Class(ObjectClass::CERTIFICATE)]);
        assert_eq!(cert.len(), 1, "child: certificate");
        assert_eq!(
            attr_bytes(&s, cert[0], AttributeType::Value),
            std::fs::read(std::env::var("HSMUX_TESTS_CERT").unwrap()).unwrap()
        );
        ok(s.logout(), "child: C_Logout");
        ok(
            s.login(UserType::So, Some(&pin(SO_PIN))),
            "child: C_Login(SO) with the SO PIN",
        );
        return;
    }
    let h = shared();
    let t = h.token("persist-xproc");
    let s = t.login_user();
    let hmac = keys::create_generic_secret(&s, &HMAC_KEY, &token_attrs("hmac"));
    ok(
        s.update_attributes(hmac, &[Attribute::Label(b"hmac-renamed".to_vec())]),
        "C_SetAttributeValue(CKA_LABEL) on a token object",
    );
    let cert = verify::self_signed_cert("persisted");
    ok(
        s.create_object(&merge(
            keys::certificate_template(&cert, "cert"),
            &[Attribute::Token(true)],
        )),
        "C_CreateObject(token certificate)",
    );
    ok(
        s.set_pin(&pin(USER_PIN), &pin("changed-pin-42")),
        "C_SetPIN",
    );
    drop(s);
    let cert_path = h.dir.path().join("persisted-cert.der");
    std::fs::write(&cert_path, &cert.der).unwrap();
    let mut env = h.child_env(&t);
    env.push(("HSMUX_TESTS_CERT", cert_path.display().to_string()));
    run_child(NAME, "check", &env);
}

fn base64(data: &[u8], url: bool) -> String {
    let standard = openssl::base64::encode_block(data);
    if url {
        standard.replace('+', "-").replace('/', "_")
    } else {
        standard
    }
}

/// Encodings of `secret` a store might use: raw, hex, and base64 at every alignment.
fn encodings(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("raw".to_string(), secret.to_vec()),
        (
            "hex".to_string(),
            secret
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ),
        (
            "HEX".to_string(),
            secret
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
                .into_bytes(),
        ),
    ];
    for offset in 0..3 {
        for url in [false, true] {
            let encoded = base64(&secret[offset..], url);
            // Trim the edges that depend on neighbouring bytes or padding.
            let core = encoded.trim_end_matches('=');
            let core = &core[..core.len().saturating_sub(2)];
            out.push((
                format!("base64{} at offset {offset}", if url { "url" } else { "" }),
                core.as_bytes().to_vec(),
            ));
        }
    }
    out
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn store_files_never_hold_key_values_or_pins_in_plaintext() {
    let h = shared();
    let t = h.token("store_plaintext");
    let aes_value = verify::random_bytes(32);
    let hmac_value = verify::random_bytes(40);
    let ec_key = Curve::P256.generate();
    let ec_scalar = ec_key.private_key().to_vec_padded(32).unwrap();
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let rsa_d = rsa.d().to_vec();
    let rsa_p = rsa.p().unwrap().to_vec();
    {
        let s = t.login_user();
        keys::create_aes(&s, &aes_value, &token_attrs("aes"));
        keys::create_generic_secret(
            &s,
            &hmac_value,
            &merge(
                token_attrs("hmac"),
                &[Attribute::Sensitive(false), Attribute::Extractable(true)],
            ),
        );
        keys::import_ec_private(&s, Curve::P256, &ec_key, &token_attrs("ec"));
        keys::import_rsa_private(&s, &rsa, &token_attrs("rsa"));
        // A generated key must be findable again (so the store really holds the objects).
        keys::gen_ec(&s, Curve::P256, &token_attrs("gen"), &token_attrs("gen"));
        assert_eq!(
            keys::find(
                &s,
                &[
                    Attribute::Token(true),
                    Attribute::Class(ObjectClass::SECRET_KEY)
                ]
            )
            .len(),
            2
        );
    }
    let files = files_under(&t.store);
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        total > 0,
        "no store files under the token path {}: token objects must persist there",
        t.store.display()
    );
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("AES CKA_VALUE", aes_value),
        (
            "generic secret CKA_VALUE (extractable, non-sensitive)",
            hmac_value,
        ),
        ("EC private scalar", ec_scalar),
        ("RSA private exponent", rsa_d),
        ("RSA prime p", rsa_p),
        ("user PIN", USER_PIN.as_bytes().to_vec()),
        ("SO PIN", SO_PIN.as_bytes().to_vec()),
    ];
    let mut leaks = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_default();
        for (what, secret) in &secrets {
            for (encoding, needle) in encodings(secret) {
                if needle.len() >= 8 && bytes.windows(needle.len()).any(|w| w == &needle[..]) {
                    leaks.push(format!("{what} ({encoding}) in {}", file.display()));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "plaintext secrets in the store:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn session_objects_never_reach_the_store() {
    let h = shared();
    let t = h.token("session_not_stored");
    let marker = verify::random_bytes(24);
    let s = t.login_user();
    ok(
        s.create_object(&data_template("ephemeral", &marker, false)),
        "C_CreateObject(session data object)",
    );
    let hex: Vec<u8> = marker
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes();
    for file in files_under(&t.store) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == &marker[..])
                && !bytes.windows(hex.len()).any(|w| w == &hex[..]),
            "a session object's value was written to {}",
            file.display()
        );
    }
    drop(s);
}
