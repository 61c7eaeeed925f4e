//! Message-based AES-GCM (PKCS#11 3.0): one init, many messages with their own IV, AAD
//! and tag; checked against OpenSSL and for the operation-state rules.

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::aead::{GcmMessageParams, GeneratorFunction};
use cryptoki::mechanism::{Mechanism, MessageParam};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use hsmux_tests::keys;
use hsmux_tests::*;
use openssl::symm::{self, Cipher};

const KEY: [u8; 32] = [0x42; 32];

fn init_mech<'a>(iv: &'a mut [u8], tag: &'a mut [u8]) -> Mechanism<'a> {
    Mechanism::AesGcmMessage(
        GcmMessageParams::new(iv, 0.into(), GeneratorFunction::NoGenerate, tag).unwrap(),
    )
}

fn key(s: &Session) -> ObjectHandle {
    keys::create_aes(s, &KEY, &[])
}

fn rv_of(e: Error) -> RvError {
    match e {
        Error::Pkcs11(rv, _) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

#[test]
fn encrypt_message_matches_openssl_and_decrypts_back() {
    let t = shared().token("message_round_trip");
    let s = t.login_user();
    let k = key(&s);
    let (mut iv0, mut tag0) = ([0u8; 12], [0u8; 16]);
    s.message_encrypt_init(&init_mech(&mut iv0, &mut tag0), k)
        .unwrap();
    for (i, msg) in [
        &b"first message"[..],
        b"",
        b"a third, longer message of several blocks ......",
    ]
    .iter()
    .enumerate()
    {
        let mut iv = [i as u8 + 1; 12];
        let mut tag = [0u8; 16];
        let aad = format!("header {i}");
        let ct = {
            let p = MessageParam::AesGcmMessage(
                GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag)
                    .unwrap(),
            );
            s.encrypt_message(&p, aad.as_bytes(), msg).unwrap()
        };
        let mut want_tag = [0u8; 16];
        let want = symm::encrypt_aead(
            Cipher::aes_256_gcm(),
            &KEY,
            Some(&iv),
            aad.as_bytes(),
            msg,
            &mut want_tag,
        )
        .unwrap();
        assert_eq!(ct, want, "ciphertext of message {i}");
        assert_eq!(tag, want_tag, "tag of message {i}");
    }
    s.message_encrypt_final().unwrap();

    s.message_decrypt_init(&init_mech(&mut iv0, &mut tag0), k)
        .unwrap();
    let mut iv = [9u8; 12];
    let mut tag = [0u8; 16];
    let ct = symm::encrypt_aead(
        Cipher::aes_256_gcm(),
        &KEY,
        Some(&iv),
        b"aad",
        b"secret text",
        &mut tag,
    )
    .unwrap();
    let p = MessageParam::AesGcmMessage(
        GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag).unwrap(),
    );
    assert_eq!(s.decrypt_message(&p, b"aad", &ct).unwrap(), b"secret text");
    s.message_decrypt_final().unwrap();
}

#[test]
fn a_tampered_tag_or_aad_is_refused() {
    let t = shared().token("message_tamper");
    let s = t.login_user();
    let k = key(&s);
    let (mut iv0, mut tag0) = ([0u8; 12], [0u8; 16]);
    s.message_decrypt_init(&init_mech(&mut iv0, &mut tag0), k)
        .unwrap();
    let mut iv = [3u8; 12];
    let mut tag = [0u8; 16];
    let ct = symm::encrypt_aead(
        Cipher::aes_256_gcm(),
        &KEY,
        Some(&iv),
        b"aad",
        b"payload",
        &mut tag,
    )
    .unwrap();
    tag[15] ^= 0x80;
    let p = MessageParam::AesGcmMessage(
        GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag).unwrap(),
    );
    assert_eq!(
        rv_of(s.decrypt_message(&p, b"aad", &ct).unwrap_err()),
        RvError::EncryptedDataInvalid
    );
    let mut tag = [0u8; 16];
    let ct = symm::encrypt_aead(
        Cipher::aes_256_gcm(),
        &KEY,
        Some(&iv),
        b"aad",
        b"payload",
        &mut tag,
    )
    .unwrap();
    let p = MessageParam::AesGcmMessage(
        GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag).unwrap(),
    );
    assert_eq!(
        rv_of(s.decrypt_message(&p, b"AAD", &ct).unwrap_err()),
        RvError::EncryptedDataInvalid
    );
}

#[test]
fn the_token_generates_fresh_ivs_keeping_the_fixed_prefix() {
    let t = shared().token("message_iv_generation");
    let s = t.login_user();
    let k = key(&s);
    let (mut iv0, mut tag0) = ([0u8; 12], [0u8; 16]);
    s.message_encrypt_init(&init_mech(&mut iv0, &mut tag0), k)
        .unwrap();
    let mut seen = Vec::new();
    for generator in [
        GeneratorFunction::GenerateRandom,
        GeneratorFunction::GenerateCounter,
        GeneratorFunction::GenerateCounter,
    ] {
        let mut iv = [0xAB; 12];
        let mut tag = [0u8; 16];
        let ct = {
            let p = MessageParam::AesGcmMessage(
                GcmMessageParams::new(&mut iv, 32.into(), generator, &mut tag).unwrap(),
            );
            s.encrypt_message(&p, b"", b"same plaintext").unwrap()
        };
        assert_eq!(&iv[..4], &[0xAB; 4], "the fixed 32 bits stay");
        assert!(!seen.contains(&iv), "an IV repeated");
        let mut want_tag = [0u8; 16];
        let want = symm::encrypt_aead(
            Cipher::aes_256_gcm(),
            &KEY,
            Some(&iv),
            b"",
            b"same plaintext",
            &mut want_tag,
        )
        .unwrap();
        assert_eq!(
            (ct, tag),
            (want, want_tag),
            "output under the IV the token reported"
        );
        seen.push(iv);
    }
}

#[test]
fn parts_equal_the_whole_message() {
    let t = shared().token("message_parts");
    let s = t.login_user();
    let k = key(&s);
    let (mut iv0, mut tag0) = ([0u8; 12], [0u8; 16]);
    s.message_encrypt_init(&init_mech(&mut iv0, &mut tag0), k)
        .unwrap();
    let mut iv = [5u8; 12];
    let mut tag = [0u8; 16];
    s.encrypt_message_begin(
        MessageParam::AesGcmMessage(
            GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag)
                .unwrap(),
        ),
        b"aad",
    )
    .unwrap();
    let mut ct = s
        .encrypt_message_next(
            MessageParam::AesGcmMessage(
                GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag)
                    .unwrap(),
            ),
            b"0123456789",
            false,
        )
        .unwrap();
    ct.extend(
        s.encrypt_message_next(
            MessageParam::AesGcmMessage(
                GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag)
                    .unwrap(),
            ),
            b"abcdef",
            true,
        )
        .unwrap(),
    );
    let mut want_tag = [0u8; 16];
    let want = symm::encrypt_aead(
        Cipher::aes_256_gcm(),
        &KEY,
        Some(&[5u8; 12]),
        b"aad",
        b"0123456789abcdef",
        &mut want_tag,
    )
    .unwrap();
    assert_eq!(ct, want);
    assert_eq!(tag, want_tag);
}

#[test]
fn operation_state_rules_hold() {
    let t = shared().token("message_state");
    let s = t.login_user();
    let k = key(&s);
    let (mut iv, mut tag) = ([0u8; 12], [0u8; 16]);
    let (mut iv1, mut tag1) = ([1u8; 12], [0u8; 16]);
    let p = MessageParam::AesGcmMessage(
        GcmMessageParams::new(&mut iv1, 0.into(), GeneratorFunction::NoGenerate, &mut tag1)
            .unwrap(),
    );
    assert_eq!(
        rv_of(s.encrypt_message(&p, b"", b"x").unwrap_err()),
        RvError::OperationNotInitialized
    );
    s.message_encrypt_init(&init_mech(&mut iv, &mut tag), k)
        .unwrap();
    assert_eq!(
        rv_of(
            s.message_encrypt_init(&init_mech(&mut iv, &mut tag), k)
                .unwrap_err()
        ),
        RvError::OperationActive
    );
    s.message_encrypt_final().unwrap();
    assert_eq!(
        rv_of(s.message_encrypt_final().unwrap_err()),
        RvError::OperationNotInitialized
    );
    let cbc = Mechanism::AesCbcPad([0u8; 16]);
    assert_eq!(
        rv_of(s.message_encrypt_init(&cbc, k).unwrap_err()),
        RvError::MechanismInvalid
    );
}
