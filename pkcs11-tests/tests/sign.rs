//! Signing and MACing, verification: ECDSA, RSA PKCS#1 v1.5, RSA-PSS, HMAC; single- and
//! multi-part; the length-query convention; operation-state and key-permission errors.
//! Every signature the module makes is checked by OpenSSL with the public key read from
//! the token.

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::Session;
use cryptoki_sys::*;
use hsmux_tests::keys::{self, KeyPair};
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::verify::{self, Curve, Pss};
use hsmux_tests::*;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

const HASHES: [(MechanismType, CK_MECHANISM_TYPE, usize); 5] = [
    (MechanismType::SHA1, CKM_SHA_1, 20),
    (MechanismType::SHA224, CKM_SHA224, 28),
    (MechanismType::SHA256, CKM_SHA256, 32),
    (MechanismType::SHA384, CKM_SHA384, 48),
    (MechanismType::SHA512, CKM_SHA512, 64),
];

fn mgf_of(hash: CK_MECHANISM_TYPE) -> CK_RSA_PKCS_MGF_TYPE {
    match hash {
        CKM_SHA_1 => CKG_MGF1_SHA1,
        CKM_SHA224 => CKG_MGF1_SHA224,
        CKM_SHA256 => CKG_MGF1_SHA256,
        CKM_SHA384 => CKG_MGF1_SHA384,
        CKM_SHA512 => CKG_MGF1_SHA512,
        other => panic!("no MGF1 for {other:#x}"),
    }
}

fn ec_pair(s: &Session, curve: Curve) -> KeyPair {
    keys::gen_ec(s, curve, &[], &[])
}

fn rsa_pair(s: &Session) -> KeyPair {
    keys::gen_rsa(s, 2048, &[], &[])
}

#[test]
fn raw_ecdsa_signatures_verify_with_openssl_on_every_curve() {
    let t = shared().token("ecdsa_raw_all_curves");
    let s = t.login_user();
    for curve in Curve::ALL {
        let pair = ec_pair(&s, curve);
        let (_, public) = keys::ec_public_from_token(&s, pair.public);
        for md in [
            MessageDigest::sha256(),
            MessageDigest::sha384(),
            MessageDigest::sha512(),
        ] {
            let digest = verify::digest(md, b"raw ECDSA input");
            let sig = ok(
                s.sign(&Mechanism::Ecdsa, pair.private, &digest),
                "C_Sign(CKM_ECDSA)",
            );
            assert_eq!(sig.len(), 2 * curve.field_len(), "{curve:?} r||s length");
            assert!(
                verify::ecdsa_verify_digest(&public, &digest, &sig),
                "OpenSSL rejects CKM_ECDSA on {curve:?} over a {}-byte digest",
                digest.len()
            );
            ok(
                s.verify(&Mechanism::Ecdsa, pair.public, &digest, &sig),
                "C_Verify(CKM_ECDSA) of the module's own signature",
            );
        }
    }
}

#[test]
fn ecdsa_with_each_hash_verifies_with_openssl() {
    let t = shared().token("ecdsa_each_hash");
    let s = t.login_user();
    let mechanisms = [
        (Mechanism::EcdsaSha1, MessageDigest::sha1()),
        (Mechanism::EcdsaSha224, MessageDigest::sha224()),
        (Mechanism::EcdsaSha256, MessageDigest::sha256()),
        (Mechanism::EcdsaSha384, MessageDigest::sha384()),
        (Mechanism::EcdsaSha512, MessageDigest::sha512()),
    ];
    for curve in [Curve::P256, Curve::P521] {
        let pair = ec_pair(&s, curve);
        let (_, public) = keys::ec_public_from_token(&s, pair.public);
        let data = b"message hashed inside the module";
        for (mechanism, md) in &mechanisms {
            let sig = ok(
                s.sign(mechanism, pair.private, data),
                &format!("C_Sign({})", mechanism.mechanism_type()),
            );
            assert!(
                verify::ecdsa_verify_digest(&public, &verify::digest(*md, data), &sig),
                "OpenSSL rejects {} on {curve:?}",
                mechanism.mechanism_type()
            );
            ok(
                s.verify(mechanism, pair.public, data, &sig),
                "C_Verify of the module's own signature",
            );
        }
    }
}

#[test]
fn ecdsa_multi_part_signature_verifies_with_openssl() {
    let t = shared().token("ecdsa_multi_part");
    let s = t.login_user();
    let pair = ec_pair(&s, Curve::P384);
    let (_, public) = keys::ec_public_from_token(&s, pair.public);
    let parts: [&[u8]; 4] = [b"first ", b"", b"second ", &[0x5a; 1000]];
    ok(
        s.sign_init(&Mechanism::EcdsaSha384, pair.private),
        "C_SignInit",
    );
    for part in parts {
        ok(s.sign_update(part), "C_SignUpdate");
    }
    let sig = ok(s.sign_final(), "C_SignFinal");
    let whole = parts.concat();
    assert!(
        verify::ecdsa_verify_digest(
            &public,
            &verify::digest(MessageDigest::sha384(), &whole),
            &sig
        ),
        "OpenSSL rejects the multi-part CKM_ECDSA_SHA384 signature"
    );
    ok(
        s.verify_init(&Mechanism::EcdsaSha384, pair.public),
        "C_VerifyInit",
    );
    for part in parts {
        ok(s.verify_update(part), "C_VerifyUpdate");
    }
    ok(s.verify_final(&sig), "C_VerifyFinal");
}

#[test]
fn raw_ecdsa_input_longer_than_the_order_is_truncated_like_openssl() {
    let t = shared().token("ecdsa_long_input");
    let s = t.login_user();
    let pair = ec_pair(&s, Curve::P256);
    let (_, public) = keys::ec_public_from_token(&s, pair.public);
    let input = verify::digest(MessageDigest::sha512(), b"64 bytes for a 32-byte curve");
    let sig = ok(
        s.sign(&Mechanism::Ecdsa, pair.private, &input),
        "C_Sign(CKM_ECDSA)",
    );
    assert!(
        verify::ecdsa_verify_digest(&public, &input, &sig),
        "CKM_ECDSA must use the leftmost bits of an over-long input, as OpenSSL does"
    );
}

#[test]
fn module_verifies_openssl_ecdsa_signatures_and_rejects_tampered_ones() {
    let t = shared().token("ecdsa_verify_openssl");
    let s = t.login_user();
    let key = Curve::P256.generate();
    let public = keys::import_ec_public(&s, Curve::P256, &key, &[]);
    let data = b"signed by OpenSSL";
    let pkey = PKey::from_ec_key(key).unwrap();
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &pkey).unwrap();
    let der = signer.sign_oneshot_to_vec(data).unwrap();
    let sig = verify::ecdsa_der_to_raw(&der, 32);
    ok(
        s.verify(&Mechanism::EcdsaSha256, public, data, &sig),
        "C_Verify(CKM_ECDSA_SHA256) of an OpenSSL signature",
    );
    let mut bad = sig.clone();
    bad[10] ^= 0x01;
    expect_rv(
        s.verify(&Mechanism::EcdsaSha256, public, data, &bad),
        CKR_SIGNATURE_INVALID,
        "C_Verify of a tampered ECDSA signature",
    );
    expect_rv(
        s.verify(&Mechanism::EcdsaSha256, public, b"other data", &sig),
        CKR_SIGNATURE_INVALID,
        "C_Verify of a signature over other data",
    );
}

#[test]
fn raw_rsa_pkcs_signature_recovers_the_digest_info_with_openssl() {
    let t = shared().token("rsa_pkcs_raw");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let public = keys::rsa_public_from_token(&s, pair.public);
    let info = verify::digest_info(
        MechanismType::SHA256,
        &verify::digest(MessageDigest::sha256(), b"raw RSA"),
    );
    let sig = ok(
        s.sign(&Mechanism::RsaPkcs, pair.private, &info),
        "C_Sign(CKM_RSA_PKCS)",
    );
    assert_eq!(sig.len(), 256);
    assert_eq!(
        verify::rsa_pkcs1_recover(&public, &sig).as_deref(),
        Some(&info[..]),
        "OpenSSL does not recover the signed DigestInfo"
    );
    ok(
        s.verify(&Mechanism::RsaPkcs, pair.public, &info, &sig),
        "C_Verify(CKM_RSA_PKCS)",
    );
}

#[test]
fn rsa_pkcs_with_each_hash_verifies_with_openssl() {
    let t = shared().token("rsa_pkcs_each_hash");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let public = keys::rsa_public_from_token(&s, pair.public);
    let data = b"RSA PKCS#1 v1.5 with a hash";
    for (mechanism, hash) in [
        (Mechanism::Sha1RsaPkcs, MechanismType::SHA1),
        (Mechanism::Sha224RsaPkcs, MechanismType::SHA224),
        (Mechanism::Sha256RsaPkcs, MechanismType::SHA256),
        (Mechanism::Sha384RsaPkcs, MechanismType::SHA384),
        (Mechanism::Sha512RsaPkcs, MechanismType::SHA512),
    ] {
        let sig = ok(s.sign(&mechanism, pair.private, data), "C_Sign");
        assert!(
            verify::rsa_verify_message(&public, hash, None, data, &sig),
            "OpenSSL rejects {}",
            mechanism.mechanism_type()
        );
        ok(s.verify(&mechanism, pair.public, data, &sig), "C_Verify");
    }
}

#[test]
fn rsa_pkcs_multi_part_signature_verifies_with_openssl() {
    let t = shared().token("rsa_pkcs_multi_part");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let public = keys::rsa_public_from_token(&s, pair.public);
    ok(
        s.sign_init(&Mechanism::Sha512RsaPkcs, pair.private),
        "C_SignInit",
    );
    for part in [&b"one"[..], b"two", &[9u8; 4000]] {
        ok(s.sign_update(part), "C_SignUpdate");
    }
    let sig = ok(s.sign_final(), "C_SignFinal");
    let whole = [&b"one"[..], b"two", &[9u8; 4000]].concat();
    assert!(verify::rsa_verify_message(
        &public,
        MechanismType::SHA512,
        None,
        &whole,
        &sig
    ));
}

#[test]
fn raw_rsa_pss_signatures_verify_with_openssl() {
    let t = shared().token("rsa_pss_raw");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let public = keys::rsa_public_from_token(&s, pair.public);
    for (hash, ck_hash, len) in HASHES {
        let digest = verify::digest(verify::md_of(hash), b"PSS over a digest");
        let params = PkcsPssParams {
            hash_alg: hash,
            mgf: PkcsMgfType::try_from(mgf_of(ck_hash)).unwrap(),
            s_len: (len as u64).into(),
        };
        let sig = ok(
            s.sign(&Mechanism::RsaPkcsPss(params), pair.private, &digest),
            &format!("C_Sign(CKM_RSA_PKCS_PSS, {hash})"),
        );
        assert!(
            verify::rsa_pss_verify_digest(
                &public,
                hash,
                Pss {
                    mgf1: hash,
                    salt: len
                },
                &digest,
                &sig
            ),
            "OpenSSL rejects CKM_RSA_PKCS_PSS with {hash}"
        );
        ok(
            s.verify(&Mechanism::RsaPkcsPss(params), pair.public, &digest, &sig),
            "C_Verify(CKM_RSA_PKCS_PSS)",
        );
    }
}

#[test]
fn rsa_pss_with_each_hash_verifies_with_openssl() {
    let t = shared().token("rsa_pss_each_hash");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let public = keys::rsa_public_from_token(&s, pair.public);
    let data = b"PSS with the hash inside the module";
    let combined = [
        CKM_SHA1_RSA_PKCS_PSS,
        CKM_SHA224_RSA_PKCS_PSS,
        CKM_SHA256_RSA_PKCS_PSS,
        CKM_SHA384_RSA_PKCS_PSS,
        CKM_SHA512_RSA_PKCS_PSS,
    ];
    for ((hash, ck_hash, len), mechanism) in HASHES.into_iter().zip(combined) {
        let mut params = raw::pss_params(ck_hash, mgf_of(ck_hash), len as CK_ULONG);
        let mech = raw::mech_with(mechanism, &mut params);
        let sig = raw::sign_once(s.handle(), &mech, pair.private.handle(), data)
            .unwrap_or_else(|rv| panic!("C_Sign({mechanism:#x}): {}", rv_name(rv)));
        assert!(
            verify::rsa_verify_message(
                &public,
                hash,
                Some(Pss {
                    mgf1: hash,
                    salt: len
                }),
                data,
                &sig
            ),
            "OpenSSL rejects the {hash} RSA-PSS signature"
        );
        expect_rv(
            raw::init(Op::Verify, s.handle(), &mech, pair.public.handle()),
            CKR_OK,
            "C_VerifyInit",
        );
        expect_rv(raw::verify(s.handle(), data, &sig), CKR_OK, "C_Verify");
    }
}

#[test]
fn rsa_pss_with_zero_salt_and_other_mgf_verifies_with_openssl() {
    let t = shared().token("rsa_pss_params_variety");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let public = keys::rsa_public_from_token(&s, pair.public);
    let data = b"unusual PSS parameters";
    for (salt, mgf) in [(0usize, MechanismType::SHA256), (20, MechanismType::SHA1)] {
        let params = PkcsPssParams {
            hash_alg: MechanismType::SHA256,
            mgf: if mgf == MechanismType::SHA1 {
                PkcsMgfType::MGF1_SHA1
            } else {
                PkcsMgfType::MGF1_SHA256
            },
            s_len: (salt as u64).into(),
        };
        let sig = ok(
            s.sign(&Mechanism::Sha256RsaPkcsPss(params), pair.private, data),
            "C_Sign(CKM_SHA256_RSA_PKCS_PSS)",
        );
        assert!(
            verify::rsa_verify_message(
                &public,
                MechanismType::SHA256,
                Some(Pss { mgf1: mgf, salt }),
                data,
                &sig
            ),
            "OpenSSL rejects RSA-PSS with salt {salt} and MGF1-{mgf}"
        );
    }
}

#[test]
fn hmac_with_each_hash_matches_openssl_and_verifies() {
    let t = shared().token("hmac_each_hash");
    let s = t.login_user();
    let value = verify::random_bytes(64);
    let key = keys::create_generic_secret(&s, &value, &[]);
    let data = b"HMAC input";
    for (mechanism, hash) in [
        (Mechanism::Sha1Hmac, MechanismType::SHA1),
        (Mechanism::Sha224Hmac, MechanismType::SHA224),
        (Mechanism::Sha256Hmac, MechanismType::SHA256),
        (Mechanism::Sha384Hmac, MechanismType::SHA384),
        (Mechanism::Sha512Hmac, MechanismType::SHA512),
    ] {
        let mac = ok(s.sign(&mechanism, key, data), "C_Sign(HMAC)");
        assert_eq!(
            mac,
            verify::hmac(hash, &value, data),
            "{} differs from OpenSSL",
            mechanism.mechanism_type()
        );
        ok(s.verify(&mechanism, key, data, &mac), "C_Verify(HMAC)");
        let mut bad = mac.clone();
        bad[0] ^= 0x80;
        expect_rv(
            s.verify(&mechanism, key, data, &bad),
            CKR_SIGNATURE_INVALID,
            "C_Verify of a tampered HMAC",
        );
        expect_rv(
            s.verify(&mechanism, key, data, &mac[..mac.len() - 1]),
            CKR_SIGNATURE_LEN_RANGE,
            "C_Verify of a truncated HMAC",
        );
    }
}

#[test]
fn hmac_multi_part_equals_single_part() {
    let t = shared().token("hmac_multi_part");
    let s = t.login_user();
    let value = verify::random_bytes(32);
    let key = keys::create_generic_secret(&s, &value, &[]);
    ok(s.sign_init(&Mechanism::Sha256Hmac, key), "C_SignInit");
    for part in [&b"a"[..], b"bc", &[1u8; 300]] {
        ok(s.sign_update(part), "C_SignUpdate");
    }
    let mac = ok(s.sign_final(), "C_SignFinal");
    let whole = [&b"a"[..], b"bc", &[1u8; 300]].concat();
    assert_eq!(mac, verify::hmac(MechanismType::SHA256, &value, &whole));
}

#[test]
fn tampered_signatures_return_signature_invalid() {
    let t = shared().token("tampered_signatures");
    let s = t.login_user();
    let ec = ec_pair(&s, Curve::P256);
    let rsa = rsa_pair(&s);
    let data = b"original data";
    for (mechanism, pair) in [
        (Mechanism::EcdsaSha256, ec),
        (Mechanism::Sha256RsaPkcs, rsa),
    ] {
        let sig = ok(s.sign(&mechanism, pair.private, data), "C_Sign");
        ok(
            s.verify(&mechanism, pair.public, data, &sig),
            "C_Verify of the genuine signature",
        );
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        expect_rv(
            s.verify(&mechanism, pair.public, data, &bad),
            CKR_SIGNATURE_INVALID,
            &format!(
                "C_Verify({}) with a flipped bit",
                mechanism.mechanism_type()
            ),
        );
        expect_rv(
            s.verify(&mechanism, pair.public, b"other data", &sig),
            CKR_SIGNATURE_INVALID,
            &format!("C_Verify({}) over other data", mechanism.mechanism_type()),
        );
        // Multi-part verify reports the same.
        ok(s.verify_init(&mechanism, pair.public), "C_VerifyInit");
        ok(s.verify_update(data), "C_VerifyUpdate");
        expect_rv(
            s.verify_final(&bad),
            CKR_SIGNATURE_INVALID,
            "C_VerifyFinal with a flipped bit",
        );
    }
}

#[test]
fn signatures_of_wrong_length_return_signature_len_range() {
    let t = shared().token("signature_len_range");
    let s = t.login_user();
    let ec = ec_pair(&s, Curve::P256);
    let rsa = rsa_pair(&s);
    let data = b"data";
    let ec_sig = ok(s.sign(&Mechanism::EcdsaSha256, ec.private, data), "C_Sign");
    expect_rv(
        s.verify(&Mechanism::EcdsaSha256, ec.public, data, &ec_sig[..63]),
        CKR_SIGNATURE_LEN_RANGE,
        "C_Verify(ECDSA P-256) with a 63-byte signature",
    );
    let mut long = ec_sig.clone();
    long.push(0);
    expect_rv(
        s.verify(&Mechanism::EcdsaSha256, ec.public, data, &long),
        CKR_SIGNATURE_LEN_RANGE,
        "C_Verify(ECDSA P-256) with a 65-byte signature",
    );
    let rsa_sig = ok(
        s.sign(&Mechanism::Sha256RsaPkcs, rsa.private, data),
        "C_Sign",
    );
    expect_rv(
        s.verify(&Mechanism::Sha256RsaPkcs, rsa.public, data, &rsa_sig[..255]),
        CKR_SIGNATURE_LEN_RANGE,
        "C_Verify(RSA-2048) with a 255-byte signature",
    );
    ok(
        s.verify_init(&Mechanism::Sha256RsaPkcs, rsa.public),
        "C_VerifyInit",
    );
    ok(s.verify_update(data), "C_VerifyUpdate");
    expect_rv(
        s.verify_final(&[0u8; 300]),
        CKR_SIGNATURE_LEN_RANGE,
        "C_VerifyFinal(RSA-2048) with a 300-byte signature",
    );
}

#[test]
fn sign_length_query_returns_the_length_and_keeps_the_operation_active() {
    let t = shared().token("sign_length_query");
    let s = t.login_user();
    let pair = ec_pair(&s, Curve::P384);
    let (_, public) = keys::ec_public_from_token(&s, pair.public);
    let digest = verify::digest(MessageDigest::sha384(), b"length query");
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech(&Mechanism::Ecdsa),
            pair.private.handle(),
        ),
        CKR_OK,
        "C_SignInit",
    );
    let query = raw::sign(s.handle(), &digest, Out::Null);
    expect_rv(query.rv, CKR_OK, "C_Sign(NULL) length query");
    assert_eq!(query.len, 96, "P-384 signature length");
    let out = raw::sign(s.handle(), &digest, Out::Buf(query.len));
    expect_rv(out.rv, CKR_OK, "C_Sign after the length query");
    assert!(verify::ecdsa_verify_digest(&public, &digest, &out.data));
    expect_rv(
        raw::sign(s.handle(), &digest, Out::Buf(96)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Sign after a completed C_Sign",
    );
}

#[test]
fn sign_with_too_small_buffer_returns_buffer_too_small_and_keeps_the_operation_active() {
    let t = shared().token("sign_buffer_too_small");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let public = keys::rsa_public_from_token(&s, pair.public);
    let data = b"small buffer";
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech(&Mechanism::Sha256RsaPkcs),
            pair.private.handle(),
        ),
        CKR_OK,
        "C_SignInit",
    );
    let small = raw::sign(s.handle(), data, Out::Buf(10));
    expect_rv(small.rv, CKR_BUFFER_TOO_SMALL, "C_Sign into 10 bytes");
    assert_eq!(small.len, 256, "C_Sign must report the needed length");
    let out = raw::sign(s.handle(), data, Out::Buf(256));
    expect_rv(out.rv, CKR_OK, "C_Sign after CKR_BUFFER_TOO_SMALL");
    assert!(verify::rsa_verify_message(
        &public,
        MechanismType::SHA256,
        None,
        data,
        &out.data
    ));
}

#[test]
fn sign_final_length_query_and_small_buffer_keep_the_operation_active() {
    let t = shared().token("sign_final_length");
    let s = t.login_user();
    let value = verify::random_bytes(64);
    let key = keys::create_generic_secret(&s, &value, &[]);
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech(&Mechanism::Sha384Hmac),
            key.handle(),
        ),
        CKR_OK,
        "C_SignInit",
    );
    expect_rv(
        raw::sign_update(s.handle(), b"part"),
        CKR_OK,
        "C_SignUpdate",
    );
    let query = raw::sign_final(s.handle(), Out::Null);
    expect_rv(query.rv, CKR_OK, "C_SignFinal(NULL)");
    assert_eq!(query.len, 48);
    let small = raw::sign_final(s.handle(), Out::Buf(47));
    expect_rv(small.rv, CKR_BUFFER_TOO_SMALL, "C_SignFinal into 47 bytes");
    assert_eq!(small.len, 48);
    let out = raw::sign_final(s.handle(), Out::Buf(64));
    expect_rv(out.rv, CKR_OK, "C_SignFinal");
    assert_eq!(out.len, 48, "C_SignFinal reports the bytes written");
    assert_eq!(
        out.data,
        verify::hmac(MechanismType::SHA384, &value, b"part")
    );
}

#[test]
fn init_while_an_operation_is_active_returns_operation_active() {
    let t = shared().token("sign_init_active");
    let s = t.login_user();
    let pair = ec_pair(&s, Curve::P256);
    let m = raw::mech(&Mechanism::EcdsaSha256);
    expect_rv(
        raw::init(Op::Sign, s.handle(), &m, pair.private.handle()),
        CKR_OK,
        "C_SignInit",
    );
    expect_rv(
        raw::init(Op::Sign, s.handle(), &m, pair.private.handle()),
        CKR_OPERATION_ACTIVE,
        "second C_SignInit",
    );
    // The first operation is untouched by the rejected init.
    expect_rv(raw::sign_update(s.handle(), b"x"), CKR_OK, "C_SignUpdate");
    let out = raw::sign_final(s.handle(), Out::Buf(64));
    expect_rv(out.rv, CKR_OK, "C_SignFinal");
    expect_rv(
        raw::init(Op::Verify, s.handle(), &m, pair.public.handle()),
        CKR_OK,
        "C_VerifyInit",
    );
    expect_rv(
        raw::init(Op::Verify, s.handle(), &m, pair.public.handle()),
        CKR_OPERATION_ACTIVE,
        "second C_VerifyInit",
    );
    expect_rv(raw::verify(s.handle(), b"x", &out.data), CKR_OK, "C_Verify");
    expect_rv(
        raw::init(Op::Sign, s.handle(), &m, pair.private.handle()),
        CKR_OK,
        "C_SignInit once the earlier operations finished",
    );
}

#[test]
fn sign_or_verify_without_init_returns_operation_not_initialized() {
    let t = shared().token("sign_no_init");
    let s = t.login_user();
    expect_rv(
        raw::sign(s.handle(), b"x", Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Sign",
    );
    expect_rv(
        raw::sign_update(s.handle(), b"x"),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_SignUpdate",
    );
    expect_rv(
        raw::sign_final(s.handle(), Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_SignFinal",
    );
    expect_rv(
        raw::verify(s.handle(), b"x", &[0; 64]),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Verify",
    );
    expect_rv(
        raw::verify_update(s.handle(), b"x"),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_VerifyUpdate",
    );
    expect_rv(
        raw::verify_final(s.handle(), &[0; 64]),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_VerifyFinal",
    );
}

#[test]
fn sign_init_with_invalid_key_handle_returns_key_handle_invalid() {
    let t = shared().token("sign_bad_key_handle");
    let s = t.login_user();
    expect_rv(
        s.sign_init(&Mechanism::EcdsaSha256, keys::bogus_handle()),
        CKR_KEY_HANDLE_INVALID,
        "C_SignInit with a never-issued handle",
    );
    expect_rv(
        s.verify_init(&Mechanism::EcdsaSha256, keys::bogus_handle()),
        CKR_KEY_HANDLE_INVALID,
        "C_VerifyInit with a never-issued handle",
    );
    let pair = ec_pair(&s, Curve::P256);
    ok(s.destroy_object(pair.private), "C_DestroyObject");
    expect_rv(
        s.sign_init(&Mechanism::EcdsaSha256, pair.private),
        CKR_KEY_HANDLE_INVALID,
        "C_SignInit with a destroyed key",
    );
}

#[test]
fn key_without_cka_sign_or_verify_returns_key_function_not_permitted() {
    let t = shared().token("sign_not_permitted");
    let s = t.login_user();
    let pair = keys::gen_ec(
        &s,
        Curve::P256,
        &[Attribute::Verify(false)],
        &[Attribute::Sign(false)],
    );
    expect_rv(
        s.sign_init(&Mechanism::EcdsaSha256, pair.private),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_SignInit with CKA_SIGN=FALSE",
    );
    expect_rv(
        s.verify_init(&Mechanism::EcdsaSha256, pair.public),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_VerifyInit with CKA_VERIFY=FALSE",
    );
    let hmac = keys::create_generic_secret(&s, &[1u8; 32], &[Attribute::Sign(false)]);
    expect_rv(
        s.sign_init(&Mechanism::Sha256Hmac, hmac),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_SignInit(HMAC) with CKA_SIGN=FALSE",
    );
}

#[test]
fn allowed_mechanisms_restrict_what_a_key_signs_with() {
    let t = shared().token("allowed_mechanisms_sign");
    let s = t.login_user();
    let pair = keys::gen_ec(
        &s,
        Curve::P256,
        &[],
        &[Attribute::AllowedMechanisms(vec![
            MechanismType::ECDSA_SHA256,
        ])],
    );
    match keys::attr(&s, pair.private, AttributeType::AllowedMechanisms) {
        Some(Attribute::AllowedMechanisms(list)) => {
            assert_eq!(
                list,
                vec![MechanismType::ECDSA_SHA256],
                "CKA_ALLOWED_MECHANISMS"
            )
        }
        other => panic!("CKA_ALLOWED_MECHANISMS reads back as {other:?}"),
    }
    expect_rv(
        s.sign_init(&Mechanism::EcdsaSha384, pair.private),
        CKR_MECHANISM_INVALID,
        "C_SignInit with a mechanism outside CKA_ALLOWED_MECHANISMS",
    );
    expect_rv(
        s.sign_init(&Mechanism::Ecdsa, pair.private),
        CKR_MECHANISM_INVALID,
        "C_SignInit(CKM_ECDSA) outside CKA_ALLOWED_MECHANISMS",
    );
    ok(
        s.sign(&Mechanism::EcdsaSha256, pair.private, b"allowed"),
        "C_Sign with the allowed mechanism",
    );
}

#[test]
fn key_of_the_wrong_type_returns_key_type_inconsistent() {
    let t = shared().token("sign_wrong_key_type");
    let s = t.login_user();
    let ec = ec_pair(&s, Curve::P256);
    let rsa = rsa_pair(&s);
    let hmac = keys::create_generic_secret(&s, &[1u8; 32], &[]);
    expect_rv(
        s.sign_init(&Mechanism::EcdsaSha256, rsa.private),
        CKR_KEY_TYPE_INCONSISTENT,
        "CKM_ECDSA_SHA256 with an RSA key",
    );
    expect_rv(
        s.sign_init(&Mechanism::Sha256RsaPkcs, ec.private),
        CKR_KEY_TYPE_INCONSISTENT,
        "CKM_SHA256_RSA_PKCS with an EC key",
    );
    expect_rv(
        s.sign_init(&Mechanism::EcdsaSha256, hmac),
        CKR_KEY_TYPE_INCONSISTENT,
        "CKM_ECDSA_SHA256 with a generic secret",
    );
    expect_rv(
        s.sign_init(&Mechanism::Sha256Hmac, ec.private),
        CKR_KEY_TYPE_INCONSISTENT,
        "CKM_SHA256_HMAC with an EC key",
    );
}

#[test]
fn signing_with_a_public_key_is_rejected() {
    let t = shared().token("sign_with_public");
    let s = t.login_user();
    let pair = ec_pair(&s, Curve::P256);
    expect_rv_in(
        s.sign_init(&Mechanism::EcdsaSha256, pair.public),
        &[CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED],
        "C_SignInit with a public key",
    );
}

#[test]
fn malformed_pss_parameters_return_mechanism_param_invalid() {
    let t = shared().token("pss_bad_params");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let key = pair.private.handle();
    let mut short = [0u8; 3];
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech_with_bytes(CKM_RSA_PKCS_PSS, &mut short),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_RSA_PKCS_PSS with a 3-byte parameter",
    );
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech_with_bytes(CKM_SHA256_RSA_PKCS_PSS, &mut []),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_SHA256_RSA_PKCS_PSS without parameters",
    );
    let mut bad_mgf = raw::pss_params(CKM_SHA256, 0x4242, 32);
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech_with(CKM_SHA256_RSA_PKCS_PSS, &mut bad_mgf),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_SHA256_RSA_PKCS_PSS with an unknown MGF",
    );
    let mut bad_hash = raw::pss_params(CKM_AES_GCM, CKG_MGF1_SHA256, 32);
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech_with(CKM_RSA_PKCS_PSS, &mut bad_hash),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_RSA_PKCS_PSS with hashAlg=CKM_AES_GCM",
    );
    // The session is usable afterwards: the rejected inits started nothing.
    let mut good = raw::pss_params(CKM_SHA256, CKG_MGF1_SHA256, 32);
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech_with(CKM_SHA256_RSA_PKCS_PSS, &mut good),
            key,
        ),
        CKR_OK,
        "C_SignInit with valid PSS parameters",
    );
}

#[test]
fn combined_pss_mechanism_with_mismatched_hash_returns_mechanism_param_invalid() {
    let t = shared().token("pss_hash_mismatch");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let mut params = raw::pss_params(CKM_SHA_1, CKG_MGF1_SHA1, 20);
    expect_rv(
        raw::init(
            Op::Sign,
            s.handle(),
            &raw::mech_with(CKM_SHA256_RSA_PKCS_PSS, &mut params),
            pair.private.handle(),
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_SHA256_RSA_PKCS_PSS with hashAlg=CKM_SHA_1",
    );
}

#[test]
fn failed_sign_terminates_the_operation() {
    let t = shared().token("failed_sign_terminates");
    let s = t.login_user();
    let pair = rsa_pair(&s);
    let m = raw::mech(&Mechanism::RsaPkcs);
    expect_rv(
        raw::init(Op::Sign, s.handle(), &m, pair.private.handle()),
        CKR_OK,
        "C_SignInit",
    );
    expect_rv(
        raw::sign(s.handle(), &[1u8; 300], Out::Buf(256)).rv,
        CKR_DATA_LEN_RANGE,
        "CKM_RSA_PKCS over 300 bytes with a 2048-bit key",
    );
    expect_rv(
        raw::sign(s.handle(), &[1u8; 20], Out::Buf(256)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Sign after a failed C_Sign",
    );
    expect_rv(
        raw::init(Op::Sign, s.handle(), &m, pair.private.handle()),
        CKR_OK,
        "C_SignInit after the failure",
    );
}

#[test]
fn failed_verify_terminates_the_operation() {
    let t = shared().token("failed_verify_terminates");
    let s = t.login_user();
    let pair = ec_pair(&s, Curve::P256);
    let m = raw::mech(&Mechanism::EcdsaSha256);
    expect_rv(
        raw::init(Op::Verify, s.handle(), &m, pair.public.handle()),
        CKR_OK,
        "C_VerifyInit",
    );
    expect_rv(
        raw::verify_update(s.handle(), b"data"),
        CKR_OK,
        "C_VerifyUpdate",
    );
    expect_rv(
        raw::verify_final(s.handle(), &[1u8; 64]),
        CKR_SIGNATURE_INVALID,
        "C_VerifyFinal with a bogus signature",
    );
    expect_rv(
        raw::verify_update(s.handle(), b"more"),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_VerifyUpdate after a failed C_VerifyFinal",
    );
    expect_rv(
        raw::init(Op::Verify, s.handle(), &m, pair.public.handle()),
        CKR_OK,
        "C_VerifyInit again",
    );
    expect_rv(
        raw::verify(s.handle(), b"data", &[1u8; 64]),
        CKR_SIGNATURE_INVALID,
        "C_Verify with a bogus signature",
    );
    expect_rv(
        raw::verify(s.handle(), b"data", &[1u8; 64]),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Verify after a failed C_Verify",
    );
}

#[test]
fn private_key_is_unusable_after_logout() {
    let t = shared().token("sign_after_logout");
    let s = t.login_user();
    let pair = ec_pair(&s, Curve::P256);
    ok(s.logout(), "C_Logout");
    expect_rv_in(
        s.sign_init(&Mechanism::EcdsaSha256, pair.private),
        &[
            CKR_KEY_HANDLE_INVALID,
            CKR_USER_NOT_LOGGED_IN,
            CKR_OBJECT_HANDLE_INVALID,
        ],
        "C_SignInit with a private key after C_Logout",
    );
}

#[test]
fn openssl_rsa_key_imported_into_the_module_signs_identically() {
    let t = shared().token("rsa_import_deterministic");
    let s = t.login_user();
    let rsa = Rsa::generate(2048).unwrap();
    let private = keys::import_rsa_private(&s, &rsa, &[]);
    let data = b"PKCS#1 v1.5 is deterministic";
    let sig = ok(s.sign(&Mechanism::Sha384RsaPkcs, private, data), "C_Sign");
    let pkey = PKey::from_rsa(rsa).unwrap();
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha384(), &pkey).unwrap();
    assert_eq!(
        sig,
        signer.sign_oneshot_to_vec(data).unwrap(),
        "module and OpenSSL disagree on a deterministic RSA signature"
    );
}

#[test]
fn always_authenticate_key_needs_a_context_specific_login_per_operation() {
    let t = shared().token("always_authenticate");
    let s = t.login_user();
    let pair = keys::gen_ec(&s, Curve::P256, &[], &[Attribute::AlwaysAuthenticate(true)]);
    assert!(
        keys::attr_bool(&s, pair.private, AttributeType::AlwaysAuthenticate),
        "CKA_ALWAYS_AUTHENTICATE from the template is not kept"
    );
    let m = raw::mech(&Mechanism::EcdsaSha256);
    let key = pair.private.handle();
    expect_rv(
        raw::init(Op::Sign, s.handle(), &m, key),
        CKR_OK,
        "C_SignInit",
    );
    expect_rv(
        raw::sign(s.handle(), b"x", Out::Buf(64)).rv,
        CKR_USER_NOT_LOGGED_IN,
        "C_Sign without C_Login(CKU_CONTEXT_SPECIFIC)",
    );
    expect_rv(
        raw::init(Op::Sign, s.handle(), &m, key),
        CKR_OK,
        "C_SignInit",
    );
    expect_rv(
        raw::login(s.handle(), CKU_CONTEXT_SPECIFIC, USER_PIN.as_bytes()),
        CKR_OK,
        "C_Login(CKU_CONTEXT_SPECIFIC)",
    );
    let out = raw::sign(s.handle(), b"x", Out::Buf(64));
    expect_rv(out.rv, CKR_OK, "C_Sign after the context-specific login");
    let (_, public) = keys::ec_public_from_token(&s, pair.public);
    assert!(verify::ecdsa_verify_digest(
        &public,
        &verify::digest(MessageDigest::sha256(), b"x"),
        &out.data
    ));
    expect_rv(
        raw::init(Op::Sign, s.handle(), &m, key),
        CKR_OK,
        "C_SignInit",
    );
    expect_rv(
        raw::sign(s.handle(), b"y", Out::Buf(64)).rv,
        CKR_USER_NOT_LOGGED_IN,
        "the context-specific login covers one operation only",
    );
}

#[test]
fn clearing_cka_sign_on_a_key_takes_effect_at_once() {
    let t = shared().token("sign_cleared");
    let s = t.login_user();
    let pair = ec_pair(&s, Curve::P256);
    ok(
        s.sign(&Mechanism::EcdsaSha256, pair.private, b"before"),
        "C_Sign while CKA_SIGN=TRUE",
    );
    ok(
        s.update_attributes(pair.private, &[Attribute::Sign(false)]),
        "C_SetAttributeValue(CKA_SIGN=FALSE)",
    );
    expect_rv(
        s.sign_init(&Mechanism::EcdsaSha256, pair.private),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_SignInit after CKA_SIGN was cleared",
    );
}
