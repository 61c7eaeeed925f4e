//! Key management: C_GenerateKeyPair (RSA, EC) and C_GenerateKey (AES, generic secret).

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use hsmux_tests::keys::{self, attr_bool, attr_bytes, attr_ulong, KeyPair};
use hsmux_tests::raw::{self, AttrQuery};
use hsmux_tests::verify::{self, Curve};
use hsmux_tests::*;
use openssl::hash::MessageDigest;

/// Checks what every generated private key must report.
#[track_caller]
fn assert_generated_private_key(s: &Session, private: ObjectHandle, mechanism: CK_MECHANISM_TYPE) {
    assert!(attr_bool(s, private, AttributeType::Local), "CKA_LOCAL");
    assert_eq!(
        attr_ulong(s, private, AttributeType::KeyGenMechanism),
        mechanism,
        "CKA_KEY_GEN_MECHANISM"
    );
    assert!(
        attr_bool(s, private, AttributeType::Sensitive),
        "CKA_SENSITIVE"
    );
    assert!(
        attr_bool(s, private, AttributeType::AlwaysSensitive),
        "CKA_ALWAYS_SENSITIVE of a key generated sensitive"
    );
    assert!(
        !attr_bool(s, private, AttributeType::Extractable),
        "CKA_EXTRACTABLE"
    );
    assert!(
        attr_bool(s, private, AttributeType::NeverExtractable),
        "CKA_NEVER_EXTRACTABLE of a key generated non-extractable"
    );
    assert!(attr_bool(s, private, AttributeType::Private), "CKA_PRIVATE");
    assert!(attr_bool(s, private, AttributeType::Sign), "CKA_SIGN");
}

#[track_caller]
fn assert_shared_id(s: &Session, pair: KeyPair) {
    let public_id = attr_bytes(s, pair.public, AttributeType::Id);
    let private_id = attr_bytes(s, pair.private, AttributeType::Id);
    assert!(
        !public_id.is_empty(),
        "generated key pair has an empty CKA_ID"
    );
    assert_eq!(public_id, private_id, "both halves must share one CKA_ID");
}

fn rsa_key_pair_is_complete_and_signs_verifiably(name: &str, bits: u64) {
    let t = shared().token(name);
    let s = t.login_user();
    let pair = keys::gen_rsa(&s, bits, &[], &[Attribute::Extractable(false)]);
    assert_eq!(
        attr_ulong(&s, pair.public, AttributeType::Class),
        CKO_PUBLIC_KEY
    );
    assert_eq!(
        attr_ulong(&s, pair.private, AttributeType::Class),
        CKO_PRIVATE_KEY
    );
    assert_eq!(attr_ulong(&s, pair.public, AttributeType::KeyType), CKK_RSA);
    assert_eq!(
        attr_ulong(&s, pair.private, AttributeType::KeyType),
        CKK_RSA
    );
    let modulus = attr_bytes(&s, pair.public, AttributeType::Modulus);
    assert_eq!(modulus.len() as u64, bits / 8, "CKA_MODULUS length");
    assert!(modulus[0] & 0x80 != 0, "modulus must have its top bit set");
    assert_eq!(
        attr_ulong(&s, pair.public, AttributeType::ModulusBits),
        bits
    );
    assert_eq!(
        attr_bytes(&s, pair.public, AttributeType::PublicExponent),
        vec![1, 0, 1]
    );
    assert_eq!(
        attr_bytes(&s, pair.private, AttributeType::Modulus),
        modulus,
        "private key reports the same modulus"
    );
    assert!(
        attr_bool(&s, pair.public, AttributeType::Local),
        "public CKA_LOCAL"
    );
    assert_generated_private_key(&s, pair.private, CKM_RSA_PKCS_KEY_PAIR_GEN);
    assert_shared_id(&s, pair);
    let mut q = vec![AttrQuery::read(CKA_PRIVATE_EXPONENT, 1024)];
    expect_rv(
        raw::get_attributes(s.handle(), pair.private.handle(), &mut q),
        CKR_ATTRIBUTE_SENSITIVE,
        "CKA_PRIVATE_EXPONENT of a generated key",
    );

    let public = keys::rsa_public_from_token(&s, pair.public);
    let data = b"generated RSA key signs this";
    let sig = ok(
        s.sign(&Mechanism::Sha256RsaPkcs, pair.private, data),
        "C_Sign(CKM_SHA256_RSA_PKCS)",
    );
    assert_eq!(sig.len() as u64, bits / 8);
    assert!(
        verify::rsa_verify_message(&public, MechanismType::SHA256, None, data, &sig),
        "OpenSSL rejects a signature of the generated RSA-{bits} key"
    );
}

#[test]
fn rsa_2048_key_pair_is_complete_and_signs_verifiably() {
    rsa_key_pair_is_complete_and_signs_verifiably("rsa_2048_key_pair", 2048);
}

#[test]
fn rsa_3072_key_pair_is_complete_and_signs_verifiably() {
    rsa_key_pair_is_complete_and_signs_verifiably("rsa_3072_key_pair", 3072);
}

#[test]
fn rsa_4096_key_pair_is_complete_and_signs_verifiably() {
    rsa_key_pair_is_complete_and_signs_verifiably("rsa_4096_key_pair", 4096);
}

fn ec_key_pair_is_complete_and_signs_verifiably(name: &str, curve: Curve) {
    let t = shared().token(name);
    let s = t.login_user();
    let pair = keys::gen_ec(&s, curve, &[], &[Attribute::Extractable(false)]);
    assert_eq!(attr_ulong(&s, pair.public, AttributeType::KeyType), CKK_EC);
    assert_eq!(attr_ulong(&s, pair.private, AttributeType::KeyType), CKK_EC);
    assert_eq!(
        attr_bytes(&s, pair.public, AttributeType::EcParams),
        curve.params()
    );
    assert_eq!(
        attr_bytes(&s, pair.private, AttributeType::EcParams),
        curve.params(),
        "private key reports its curve"
    );
    let point_der = attr_bytes(&s, pair.public, AttributeType::EcPoint);
    let point = verify::der_octet_string_contents(&point_der)
        .expect("CKA_EC_POINT must be a DER OCTET STRING");
    assert_eq!(
        point.len(),
        1 + 2 * curve.field_len(),
        "uncompressed point length"
    );
    assert_eq!(point[0], 0x04, "uncompressed point");
    assert_generated_private_key(&s, pair.private, CKM_EC_KEY_PAIR_GEN);
    assert_shared_id(&s, pair);
    let mut q = vec![AttrQuery::read(CKA_VALUE, 256)];
    expect_rv(
        raw::get_attributes(s.handle(), pair.private.handle(), &mut q),
        CKR_ATTRIBUTE_SENSITIVE,
        "CKA_VALUE of a generated EC key",
    );

    let (_, public) = keys::ec_public_from_token(&s, pair.public);
    let data = b"generated EC key signs this";
    let sig = ok(
        s.sign(
            &Mechanism::Ecdsa,
            pair.private,
            &verify::digest(MessageDigest::sha256(), data),
        ),
        "C_Sign(CKM_ECDSA)",
    );
    assert_eq!(sig.len(), 2 * curve.field_len());
    assert!(
        verify::ecdsa_verify_digest(
            &public,
            &verify::digest(MessageDigest::sha256(), data),
            &sig
        ),
        "OpenSSL rejects a signature of the generated {curve:?} key"
    );
}

#[test]
fn ec_p256_key_pair_is_complete_and_signs_verifiably() {
    ec_key_pair_is_complete_and_signs_verifiably("ec_p256_key_pair", Curve::P256);
}

#[test]
fn ec_p384_key_pair_is_complete_and_signs_verifiably() {
    ec_key_pair_is_complete_and_signs_verifiably("ec_p384_key_pair", Curve::P384);
}

#[test]
fn ec_p521_key_pair_is_complete_and_signs_verifiably() {
    ec_key_pair_is_complete_and_signs_verifiably("ec_p521_key_pair", Curve::P521);
}

#[test]
fn key_pair_generated_with_template_id_carries_it_on_both_halves() {
    let t = shared().token("keypair_template_id");
    let s = t.login_user();
    let id = vec![0xca, 0xfe, 0x01];
    let pair = keys::gen_ec(
        &s,
        Curve::P256,
        &[Attribute::Id(id.clone()), Attribute::Label(b"pub".to_vec())],
        &[
            Attribute::Id(id.clone()),
            Attribute::Label(b"priv".to_vec()),
        ],
    );
    assert_eq!(attr_bytes(&s, pair.public, AttributeType::Id), id);
    assert_eq!(attr_bytes(&s, pair.private, AttributeType::Id), id);
    assert_eq!(attr_bytes(&s, pair.public, AttributeType::Label), b"pub");
    assert_eq!(attr_bytes(&s, pair.private, AttributeType::Label), b"priv");
    let mut found = keys::find(&s, &[Attribute::Id(id)]);
    found.sort_by_key(|h| h.handle());
    let mut expected = vec![pair.public, pair.private];
    expected.sort_by_key(|h| h.handle());
    assert_eq!(found, expected, "both halves found by CKA_ID");
}

#[test]
fn always_sensitive_and_never_extractable_follow_the_generation_template() {
    let t = shared().token("always_never_flags");
    let s = t.login_user();
    let soft = keys::gen_ec(
        &s,
        Curve::P256,
        &[],
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    assert!(!attr_bool(&s, soft.private, AttributeType::AlwaysSensitive));
    assert!(!attr_bool(
        &s,
        soft.private,
        AttributeType::NeverExtractable
    ));
    let aes_soft = keys::gen_aes(
        &s,
        32,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    assert!(!attr_bool(&s, aes_soft, AttributeType::AlwaysSensitive));
    assert!(!attr_bool(&s, aes_soft, AttributeType::NeverExtractable));
    let aes_hard = keys::gen_aes(
        &s,
        32,
        &[Attribute::Sensitive(true), Attribute::Extractable(false)],
    );
    assert!(attr_bool(&s, aes_hard, AttributeType::AlwaysSensitive));
    assert!(attr_bool(&s, aes_hard, AttributeType::NeverExtractable));
    // Becoming sensitive later does not make a key "always" sensitive.
    ok(
        s.update_attributes(
            aes_soft,
            &[Attribute::Sensitive(true), Attribute::Extractable(false)],
        ),
        "C_SetAttributeValue(CKA_SENSITIVE=TRUE, CKA_EXTRACTABLE=FALSE)",
    );
    assert!(!attr_bool(&s, aes_soft, AttributeType::AlwaysSensitive));
    assert!(!attr_bool(&s, aes_soft, AttributeType::NeverExtractable));
}

fn aes_key_encrypts_compatibly_with_openssl(name: &str, len: usize) {
    let t = shared().token(name);
    let s = t.login_user();
    let key = keys::gen_aes(
        &s,
        len as u64,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    assert_eq!(attr_ulong(&s, key, AttributeType::Class), CKO_SECRET_KEY);
    assert_eq!(attr_ulong(&s, key, AttributeType::KeyType), CKK_AES);
    assert_eq!(attr_ulong(&s, key, AttributeType::ValueLen), len as u64);
    assert!(attr_bool(&s, key, AttributeType::Local), "CKA_LOCAL");
    assert_eq!(
        attr_ulong(&s, key, AttributeType::KeyGenMechanism),
        CKM_AES_KEY_GEN
    );
    let value = attr_bytes(&s, key, AttributeType::Value);
    assert_eq!(value.len(), len);
    assert!(value.iter().any(|b| *b != 0), "all-zero key");
    let mut iv = [7u8; 12];
    let plaintext = b"AES key from C_GenerateKey";
    let ct = ok(
        s.encrypt(
            &Mechanism::AesGcm(GcmParams::new(&mut iv, b"", 128.into()).unwrap()),
            key,
            plaintext,
        ),
        "C_Encrypt(CKM_AES_GCM)",
    );
    let (body, tag) = ct.split_at(ct.len() - 16);
    let opened = openssl::symm::decrypt_aead(
        verify::aes_gcm_cipher(len),
        &value,
        Some(&[7u8; 12]),
        b"",
        body,
        tag,
    )
    .expect("OpenSSL opens the module's AES-GCM ciphertext with CKA_VALUE");
    assert_eq!(opened, plaintext);
}

#[test]
fn aes_128_key_encrypts_compatibly_with_openssl() {
    aes_key_encrypts_compatibly_with_openssl("aes_128_generated", 16);
}

#[test]
fn aes_192_key_encrypts_compatibly_with_openssl() {
    aes_key_encrypts_compatibly_with_openssl("aes_192_generated", 24);
}

#[test]
fn aes_256_key_encrypts_compatibly_with_openssl() {
    aes_key_encrypts_compatibly_with_openssl("aes_256_generated", 32);
}

#[test]
fn generated_keys_differ() {
    let t = shared().token("generated_keys_differ");
    let s = t.login_user();
    let extract = [Attribute::Sensitive(false), Attribute::Extractable(true)];
    let a = attr_bytes(&s, keys::gen_aes(&s, 32, &extract), AttributeType::Value);
    let b = attr_bytes(&s, keys::gen_aes(&s, 32, &extract), AttributeType::Value);
    assert_ne!(a, b, "two generated AES keys are equal");
    let p = keys::gen_ec(&s, Curve::P256, &[], &[]);
    let q = keys::gen_ec(&s, Curve::P256, &[], &[]);
    assert_ne!(
        attr_bytes(&s, p.public, AttributeType::EcPoint),
        attr_bytes(&s, q.public, AttributeType::EcPoint),
        "two generated EC keys are equal"
    );
}

#[test]
fn generic_secret_key_macs_compatibly_with_openssl() {
    let t = shared().token("generic_secret_generated");
    let s = t.login_user();
    let key = ok(
        s.generate_key(
            &Mechanism::GenericSecretKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        ),
        "C_GenerateKey(CKM_GENERIC_SECRET_KEY_GEN)",
    );
    assert_eq!(
        attr_ulong(&s, key, AttributeType::KeyType),
        CKK_GENERIC_SECRET
    );
    assert_eq!(attr_ulong(&s, key, AttributeType::ValueLen), 32);
    let value = attr_bytes(&s, key, AttributeType::Value);
    let mac = ok(
        s.sign(&Mechanism::Sha256Hmac, key, b"msg"),
        "C_Sign(CKM_SHA256_HMAC)",
    );
    assert_eq!(mac, verify::hmac(MechanismType::SHA256, &value, b"msg"));
}

#[test]
fn generate_aes_key_with_invalid_length_is_rejected() {
    let t = shared().token("gen_aes_bad_len");
    let s = t.login_user();
    expect_rv_in(
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::Token(false), Attribute::ValueLen(20.into())],
        ),
        &[
            CKR_ATTRIBUTE_VALUE_INVALID,
            CKR_KEY_SIZE_RANGE,
            CKR_TEMPLATE_INCONSISTENT,
        ],
        "C_GenerateKey(CKM_AES_KEY_GEN, CKA_VALUE_LEN=20)",
    );
}

#[test]
fn generate_aes_key_without_value_len_returns_template_incomplete() {
    let t = shared().token("gen_aes_no_len");
    let s = t.login_user();
    expect_rv(
        s.generate_key(&Mechanism::AesKeyGen, &[Attribute::Token(false)]),
        CKR_TEMPLATE_INCOMPLETE,
        "C_GenerateKey(CKM_AES_KEY_GEN) without CKA_VALUE_LEN",
    );
}

#[test]
fn generate_rsa_without_modulus_bits_returns_template_incomplete() {
    let t = shared().token("gen_rsa_no_bits");
    let s = t.login_user();
    expect_rv(
        s.generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::Token(false), Attribute::Verify(true)],
            &[Attribute::Token(false), Attribute::Sign(true)],
        ),
        CKR_TEMPLATE_INCOMPLETE,
        "C_GenerateKeyPair(RSA) without CKA_MODULUS_BITS",
    );
}

#[test]
fn generate_ec_without_ec_params_returns_template_incomplete() {
    let t = shared().token("gen_ec_no_params");
    let s = t.login_user();
    expect_rv(
        s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::Token(false), Attribute::Verify(true)],
            &[Attribute::Token(false), Attribute::Sign(true)],
        ),
        CKR_TEMPLATE_INCOMPLETE,
        "C_GenerateKeyPair(EC) without CKA_EC_PARAMS",
    );
}

#[test]
fn generate_ec_key_on_unsupported_curve_is_rejected() {
    let t = shared().token("gen_ec_bad_curve");
    let s = t.login_user();
    // secp256k1
    let params = vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
    expect_rv_in(
        keys::gen_ec_result(&s, Curve::P256, &[Attribute::EcParams(params)], &[]),
        &[
            CKR_CURVE_NOT_SUPPORTED,
            CKR_ATTRIBUTE_VALUE_INVALID,
            CKR_DOMAIN_PARAMS_INVALID,
        ],
        "C_GenerateKeyPair on secp256k1",
    );
}

#[test]
fn generate_with_mechanism_of_the_other_kind_returns_mechanism_invalid() {
    let t = shared().token("gen_wrong_mechanism");
    let s = t.login_user();
    expect_rv(
        s.generate_key(&Mechanism::RsaPkcsKeyPairGen, &[Attribute::Token(false)]),
        CKR_MECHANISM_INVALID,
        "C_GenerateKey(CKM_RSA_PKCS_KEY_PAIR_GEN)",
    );
    expect_rv(
        s.generate_key_pair(
            &Mechanism::AesKeyGen,
            &[Attribute::Token(false)],
            &[Attribute::Token(false)],
        ),
        CKR_MECHANISM_INVALID,
        "C_GenerateKeyPair(CKM_AES_KEY_GEN)",
    );
    expect_rv(
        s.generate_key(&Mechanism::Sha256, &[Attribute::Token(false)]),
        CKR_MECHANISM_INVALID,
        "C_GenerateKey(CKM_SHA256)",
    );
}

#[test]
fn generate_token_key_in_read_only_session_returns_session_read_only() {
    let t = shared().token("gen_token_ro");
    let _login = t.login_user();
    let ro = t.ro_session();
    expect_rv(
        keys::gen_ec_result(
            &ro,
            Curve::P256,
            &[Attribute::Token(true)],
            &[Attribute::Token(true)],
        ),
        CKR_SESSION_READ_ONLY,
        "C_GenerateKeyPair(token objects) in a R/O session",
    );
    expect_rv(
        ro.generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::Token(true), Attribute::ValueLen(16.into())],
        ),
        CKR_SESSION_READ_ONLY,
        "C_GenerateKey(token object) in a R/O session",
    );
}

#[test]
fn generate_private_key_without_login_returns_user_not_logged_in() {
    let t = shared().token("gen_no_login");
    let s = t.rw_session();
    expect_rv(
        keys::gen_ec_result(&s, Curve::P256, &[], &[]),
        CKR_USER_NOT_LOGGED_IN,
        "C_GenerateKeyPair(CKA_PRIVATE=TRUE) while public",
    );
}

#[test]
fn generated_token_key_pair_is_found_from_a_new_session() {
    let t = shared().token("gen_token_found");
    let s = t.login_user();
    let pair = keys::gen_ec(
        &s,
        Curve::P384,
        &[
            Attribute::Token(true),
            Attribute::Label(b"persisted".to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Label(b"persisted".to_vec()),
        ],
    );
    let id = attr_bytes(&s, pair.private, AttributeType::Id);
    drop(s);
    let s = t.login_user();
    let found = keys::find(&s, &[Attribute::Label(b"persisted".to_vec())]);
    assert_eq!(found.len(), 2, "both halves of the token key pair");
    for h in found {
        assert_eq!(attr_bytes(&s, h, AttributeType::Id), id);
        assert!(attr_bool(&s, h, AttributeType::Token));
    }
}

#[test]
fn ec_keys_default_to_sign_and_verify_only_rsa_keys_also_to_encrypt_and_wrap() {
    let t = shared().token("default-usage");
    let s = t.login_user();
    // Templates that name neither encryption nor wrapping: the defaults decide.
    let ec = keys::gen_ec(&s, Curve::P256, &[], &[]);
    for (object, attr) in [
        (ec.public, AttributeType::Encrypt),
        (ec.public, AttributeType::Wrap),
        (ec.private, AttributeType::Decrypt),
        (ec.private, AttributeType::Unwrap),
    ] {
        assert!(
            !attr_bool(&s, object, attr),
            "EC {attr:?} defaults to false"
        );
    }
    assert!(attr_bool(&s, ec.private, AttributeType::Sign));
    assert!(attr_bool(&s, ec.public, AttributeType::Verify));
    let rsa = keys::gen_rsa(&s, 2048, &[], &[]);
    for (object, attr) in [
        (rsa.public, AttributeType::Encrypt),
        (rsa.public, AttributeType::Wrap),
        (rsa.private, AttributeType::Decrypt),
        (rsa.private, AttributeType::Unwrap),
    ] {
        assert!(attr_bool(&s, object, attr), "RSA {attr:?} defaults to true");
    }
}
