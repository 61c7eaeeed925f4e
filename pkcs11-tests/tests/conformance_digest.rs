//! Conformance: message digests — pkcs11test digest.cc (vectors, length conventions, the
//! one-shot/multi-part rules, C_DigestKey) and dual.cc (a digest and an encryption active
//! in one session), plus rust-cryptoki's sha256_digest_multipart_with_key.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;
use hsmux_tests::conformance::*;
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::*;
use std::ptr::null_mut;

const DIGESTS: [(CK_MECHANISM_TYPE, usize); 5] = [
    (CKM_SHA_1, 20),
    (CKM_SHA224, 28),
    (CKM_SHA256, 32),
    (CKM_SHA384, 48),
    (CKM_SHA512, 64),
];

fn digest_init(s: CK_SESSION_HANDLE, m: CK_MECHANISM_TYPE) -> CK_RV {
    raw::init(Op::Digest, s, &plain(m), CK_INVALID_HANDLE)
}

/// pkcs11test ReadOnlySessionTest.DigestTestVectors (FIPS 180 examples, empty input
/// included).
#[test]
fn sha_digests_match_the_fips_180_examples() {
    let t = shared().token("digest vectors");
    let s = t.ro_session();
    let h = s.handle();
    let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    let cases: [(CK_MECHANISM_TYPE, &[u8], &str); 9] = [
        (CKM_SHA_1, b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        (CKM_SHA_1, b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (CKM_SHA_1, long, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
        (CKM_SHA256, b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (CKM_SHA256, long, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        (
            CKM_SHA384,
            b"abc",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            CKM_SHA384,
            b"",
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
        ),
        (
            CKM_SHA512,
            b"",
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
        ),
        (
            CKM_SHA512,
            long,
            "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c33596fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445",
        ),
    ];
    for (m, input, want) in cases {
        expect_rv(digest_init(h, m), CKR_OK, "C_DigestInit");
        let r = raw::digest(h, input, Out::Buf(64));
        expect_rv(r.rv, CKR_OK, "C_Digest");
        assert_eq!(
            r.data,
            hex(want),
            "{m:#x} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// pkcs11test DigestTest.{DigestGetSpace, DigestFinalGetSpace}: NULL output gives the
/// length; a 2-byte buffer gives CKR_BUFFER_TOO_SMALL, the length, and an untouched buffer.
#[test]
fn digest_short_buffers_report_the_length_and_stay_untouched() {
    let t = shared().token("digest get space");
    let s = t.ro_session();
    let h = s.handle();
    let data = verify::random_bytes(300);
    for (m, size) in DIGESTS {
        expect_rv(digest_init(h, m), CKR_OK, "C_DigestInit");
        let q = raw::digest(h, &data, Out::Null);
        expect_rv(q.rv, CKR_OK, "C_Digest(NULL)");
        assert_eq!(q.len, size);
        let mut buf = [0xabu8; 64];
        let mut len: CK_ULONG = 2;
        let mut input = data.clone();
        // SAFETY: `input`, `buf` and `len` are live; `len` understates `buf` on purpose.
        let rv = unsafe {
            f().C_Digest.unwrap()(
                h,
                input.as_mut_ptr(),
                input.len() as CK_ULONG,
                buf.as_mut_ptr(),
                &mut len,
            )
        };
        expect_rv(rv, CKR_BUFFER_TOO_SMALL, "C_Digest into 2 bytes");
        assert_eq!(len as usize, size);
        assert!(
            buf.iter().all(|b| *b == 0xab),
            "{m:#x}: the short buffer was written"
        );
        expect_rv(raw::digest(h, &data, Out::Buf(size)).rv, CKR_OK, "C_Digest");

        expect_rv(digest_init(h, m), CKR_OK, "C_DigestInit");
        expect_rv(raw::digest_update(h, &data), CKR_OK, "C_DigestUpdate");
        let q = raw::digest_final(h, Out::Null);
        expect_rv(q.rv, CKR_OK, "C_DigestFinal(NULL)");
        assert_eq!(q.len, size);
        let r = raw::digest_final(h, Out::Buf(2));
        expect_rv(r.rv, CKR_BUFFER_TOO_SMALL, "C_DigestFinal into 2 bytes");
        assert_eq!(r.len, size);
        expect_rv(
            raw::digest_final(h, Out::Buf(size)).rv,
            CKR_OK,
            "C_DigestFinal",
        );
    }
}

/// pkcs11test DigestTest.{DigestInvalid, DigestFinalInvalid}: CKR_ARGUMENTS_BAD (NULL length
/// pointer) from C_Digest or C_DigestFinal ends the digest, so the next call is
/// CKR_OPERATION_NOT_INITIALIZED.
#[test]
fn arguments_bad_from_digest_or_digest_final_ends_the_digest() {
    let t = shared().token("digest args bad");
    let s = t.ro_session();
    let h = s.handle();
    let mut data = verify::random_bytes(100);
    let mut buf = [0u8; 64];
    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    // SAFETY: NULL pulDigestLen is the input under test.
    let rv = unsafe {
        f().C_Digest.unwrap()(
            h,
            data.as_mut_ptr(),
            data.len() as CK_ULONG,
            buf.as_mut_ptr(),
            null_mut(),
        )
    };
    expect_rv(rv, CKR_ARGUMENTS_BAD, "C_Digest(pulDigestLen NULL)");
    expect_rv(
        raw::digest(h, &data, Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Digest after CKR_ARGUMENTS_BAD",
    );
    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    // SAFETY: as above.
    let rv = unsafe { f().C_DigestFinal.unwrap()(h, buf.as_mut_ptr(), null_mut()) };
    expect_rv(rv, CKR_ARGUMENTS_BAD, "C_DigestFinal(pulDigestLen NULL)");
    expect_rv(
        raw::digest_final(h, Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DigestFinal after CKR_ARGUMENTS_BAD",
    );
}

/// pkcs11test DigestTest.{DigestIntersperse, DigestFinalIntersperse}: after a multi-part
/// length query, C_Digest is CKR_OPERATION_ACTIVE; after a one-shot length query,
/// C_DigestFinal is CKR_OPERATION_ACTIVE; either refusal ends the digest.
#[test]
fn one_shot_and_multi_part_digest_calls_do_not_mix() {
    let t = shared().token("digest intersperse");
    let s = t.ro_session();
    let h = s.handle();
    let data = verify::random_bytes(100);
    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    expect_rv(raw::digest_update(h, &data[..1]), CKR_OK, "C_DigestUpdate");
    let q = raw::digest_final(h, Out::Null);
    expect_rv(q.rv, CKR_OK, "C_DigestFinal(NULL)");
    assert_eq!(q.len, 32);
    expect_rv(
        raw::digest(h, &data[1..], Out::Buf(64)).rv,
        CKR_OPERATION_ACTIVE,
        "C_Digest in the middle of a multi-part digest",
    );
    expect_rv(
        raw::digest_final(h, Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DigestFinal after the refused C_Digest",
    );

    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    let q = raw::digest(h, &data, Out::Null);
    expect_rv(q.rv, CKR_OK, "C_Digest(NULL)");
    expect_rv(
        raw::digest_final(h, Out::Buf(64)).rv,
        CKR_OPERATION_ACTIVE,
        "C_DigestFinal after a one-shot length query",
    );
    expect_rv(
        raw::digest(h, &data, Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Digest after the refused C_DigestFinal",
    );
}

/// pkcs11test DigestTest.{DigestInitInvalidSession, DigestInvalidSession,
/// DigestUpdateInvalidSession, DigestNoInit, DigestUpdateZeroLen} and
/// ReadOnlySessionTest.DigestInitInvalid.
#[test]
fn digest_calls_check_session_mechanism_init_and_accept_empty_updates() {
    let t = shared().token("digest session checks");
    let s = t.ro_session();
    let h = s.handle();
    expect_rv(
        digest_init(BOGUS_SESSION, CKM_SHA256),
        CKR_SESSION_HANDLE_INVALID,
        "C_DigestInit",
    );
    expect_rv(
        digest_init(h, 999),
        CKR_MECHANISM_INVALID,
        "C_DigestInit(999)",
    );
    expect_rv(
        raw::digest_update(h, b"x"),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DigestUpdate",
    );
    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    expect_rv(
        raw::digest(BOGUS_SESSION, b"x", Out::Buf(64)).rv,
        CKR_SESSION_HANDLE_INVALID,
        "C_Digest(unknown session)",
    );
    expect_rv(
        raw::digest_update(BOGUS_SESSION, b"x"),
        CKR_SESSION_HANDLE_INVALID,
        "C_DigestUpdate(unknown session)",
    );
    let rv = raw::digest_update(h, b"");
    expect_rv_in(rv, &[CKR_OK, CKR_ARGUMENTS_BAD], "C_DigestUpdate(0 bytes)");
    if rv == CKR_OK {
        let r = raw::digest_final(h, Out::Buf(64));
        expect_rv(r.rv, CKR_OK, "C_DigestFinal after an empty update");
        assert_eq!(
            r.data,
            hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }
}

/// pkcs11test DigestTest.{DigestKey, DigestKeyInvalid} and rust-cryptoki
/// sha256_digest_multipart_with_key: C_DigestKey adds a secret key's value to the digest,
/// even for a key made in a public session; a bad handle is CKR_KEY_HANDLE_INVALID; a
/// public key is CKR_KEY_INDIGESTIBLE; without C_DigestInit it is not initialised.
#[test]
fn digest_key_adds_a_secret_key_value_and_rejects_what_it_cannot_digest() {
    let t = shared().token("digest key");
    let s = t.login_user();
    let h = s.handle();
    let key = ok(
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::ValueLen(16.into()),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        ),
        "C_GenerateKey(extractable AES)",
    );
    let value = keys::attr_bytes(&s, key, cryptoki::object::AttributeType::Value);
    let data = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
    expect_rv(
        digest_key(h, key.handle()),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DigestKey",
    );
    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    expect_rv(raw::digest_update(h, &data), CKR_OK, "C_DigestUpdate");
    expect_rv(
        digest_key(BOGUS_SESSION, key.handle()),
        CKR_SESSION_HANDLE_INVALID,
        "C_DigestKey(unknown session)",
    );
    expect_rv(digest_key(h, key.handle()), CKR_OK, "C_DigestKey");
    let r = raw::digest_final(h, Out::Buf(64));
    expect_rv(r.rv, CKR_OK, "C_DigestFinal");
    assert_eq!(
        r.data,
        verify::digest(
            openssl::hash::MessageDigest::sha256(),
            &[&data[..], &value].concat()
        )
    );

    // A key made in a R/O public session (pkcs11test's SecretKey) can be digested too.
    let ro = t.ro_session();
    let mut tmpl = Template::new()
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_VALUE_LEN, 16);
    let (rv, public_key) = generate_key(ro.handle(), &plain(CKM_AES_KEY_GEN), &mut tmpl);
    expect_rv(rv, CKR_OK, "C_GenerateKey in a R/O public session");
    expect_rv(digest_init(ro.handle(), CKM_SHA_1), CKR_OK, "C_DigestInit");
    expect_rv(
        digest_key(ro.handle(), public_key),
        CKR_OK,
        "C_DigestKey(public session key)",
    );
    expect_rv(
        raw::digest_final(ro.handle(), Out::Buf(64)).rv,
        CKR_OK,
        "C_DigestFinal",
    );

    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    expect_rv(
        digest_key(h, BOGUS_OBJECT),
        CKR_KEY_HANDLE_INVALID,
        "C_DigestKey(unknown key)",
    );
    let _ = raw::digest_final(h, Out::Buf(64));
    let pair = keys::gen_ec(&s, verify::Curve::P256, &[], &[]);
    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    expect_rv(
        digest_key(h, pair.public.handle()),
        CKR_KEY_INDIGESTIBLE,
        "C_DigestKey(EC public key)",
    );
}

/// pkcs11test DualSecretKeyTest.DigestEncrypt: a digest and an encryption can be active in
/// one session at once (the dual-function call itself may be unsupported), and each
/// finishes with the right result.
#[test]
fn a_digest_and_an_encryption_run_side_by_side_in_one_session() {
    let t = shared().token("dual operations");
    let s = t.ro_session();
    let h = s.handle();
    let key = create(
        h,
        aes_key(&[0x42; 16], &[CKA_ENCRYPT, CKA_DECRYPT]),
        "AES key",
    );
    let pt = verify::random_bytes(64);
    expect_rv(digest_init(h, CKM_SHA256), CKR_OK, "C_DigestInit");
    expect_rv(
        raw::init(Op::Encrypt, h, &plain(CKM_AES_ECB), key),
        CKR_OK,
        "C_EncryptInit beside a digest",
    );
    let mut part = pt[..16].to_vec();
    let mut out = [0u8; 64];
    let mut len: CK_ULONG = 64;
    // SAFETY: live input, output and length.
    let rv = unsafe {
        f().C_DigestEncryptUpdate.unwrap()(h, part.as_mut_ptr(), 16, out.as_mut_ptr(), &mut len)
    };
    expect_rv_in(
        rv,
        &[CKR_OK, CKR_FUNCTION_NOT_SUPPORTED],
        "C_DigestEncryptUpdate",
    );
    if rv == CKR_FUNCTION_NOT_SUPPORTED {
        let mut ct = Vec::new();
        for block in pt.chunks(16) {
            expect_rv(raw::digest_update(h, block), CKR_OK, "C_DigestUpdate");
            let r = raw::encrypt_update(h, block, Out::Buf(64));
            expect_rv(r.rv, CKR_OK, "C_EncryptUpdate");
            ct.extend(r.data);
        }
        let r = raw::encrypt_final(h, Out::Buf(64));
        expect_rv(r.rv, CKR_OK, "C_EncryptFinal");
        ct.extend(r.data);
        let d = raw::digest_final(h, Out::Buf(64));
        expect_rv(d.rv, CKR_OK, "C_DigestFinal");
        assert_eq!(
            d.data,
            verify::digest(openssl::hash::MessageDigest::sha256(), &pt)
        );
        assert_eq!(
            Ok(pt.clone()),
            decrypt_raw(h, &plain(CKM_AES_ECB), key, &ct)
        );
    }
}
