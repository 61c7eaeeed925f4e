//! Message digesting (C_Digest*) and random number generation (C_GenerateRandom).

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki_sys::*;
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::verify;
use hsmux_tests::*;

fn digests() -> [(Mechanism<'static>, MechanismType, usize); 5] {
    [
        (Mechanism::Sha1, MechanismType::SHA1, 20),
        (Mechanism::Sha224, MechanismType::SHA224, 28),
        (Mechanism::Sha256, MechanismType::SHA256, 32),
        (Mechanism::Sha384, MechanismType::SHA384, 48),
        (Mechanism::Sha512, MechanismType::SHA512, 64),
    ]
}

#[test]
fn each_digest_matches_openssl() {
    let t = shared().token("digest_each");
    let s = t.ro_session();
    for data in [&b""[..], b"abc", &[0xa5u8; 1000]] {
        for (mechanism, hash, len) in digests() {
            let got = ok(s.digest(&mechanism, data), &format!("C_Digest({hash})"));
            assert_eq!(got.len(), len);
            assert_eq!(
                got,
                verify::digest(verify::md_of(hash), data),
                "{hash} of {} bytes differs from OpenSSL",
                data.len()
            );
        }
    }
}

#[test]
fn sha256_of_abc_is_the_fips_180_test_vector() {
    let t = shared().token("digest_known_answer");
    let s = t.ro_session();
    let got = ok(s.digest(&Mechanism::Sha256, b"abc"), "C_Digest(CKM_SHA256)");
    let expected: Vec<u8> = (0..32)
        .map(|i| {
            u8::from_str_radix(
                &"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                    [2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn multi_part_digest_equals_single_part() {
    let t = shared().token("digest_multi_part");
    let s = t.ro_session();
    let parts: [&[u8]; 4] = [b"one", b"", &[7u8; 200], b"four"];
    let whole = parts.concat();
    for (mechanism, hash, _) in digests() {
        ok(s.digest_init(&mechanism), "C_DigestInit");
        for part in parts {
            ok(s.digest_update(part), "C_DigestUpdate");
        }
        let got = ok(s.digest_final(), "C_DigestFinal");
        assert_eq!(
            got,
            verify::digest(verify::md_of(hash), &whole),
            "multi-part {hash}"
        );
    }
}

#[test]
fn digest_works_without_login_in_a_read_only_session() {
    let t = shared().token("digest_public");
    let s = t.ro_session();
    ok(
        s.digest(&Mechanism::Sha384, b"public"),
        "C_Digest while not logged in",
    );
}

#[test]
fn digest_length_query_and_small_buffer_keep_the_operation_active() {
    let t = shared().token("digest_length_query");
    let s = t.ro_session();
    let data = b"length query";
    expect_rv(
        raw::init(Op::Digest, s.handle(), &raw::mech(&Mechanism::Sha512), 0),
        CKR_OK,
        "C_DigestInit",
    );
    let query = raw::digest(s.handle(), data, Out::Null);
    expect_rv(query.rv, CKR_OK, "C_Digest(NULL)");
    assert_eq!(query.len, 64);
    let small = raw::digest(s.handle(), data, Out::Buf(63));
    expect_rv(small.rv, CKR_BUFFER_TOO_SMALL, "C_Digest into 63 bytes");
    assert_eq!(small.len, 64);
    let out = raw::digest(s.handle(), data, Out::Buf(100));
    expect_rv(out.rv, CKR_OK, "C_Digest");
    assert_eq!(out.len, 64, "C_Digest reports the bytes written");
    assert_eq!(
        out.data,
        verify::digest(verify::md_of(MechanismType::SHA512), data)
    );
    expect_rv(
        raw::digest(s.handle(), data, Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Digest after a completed C_Digest",
    );

    expect_rv(
        raw::init(Op::Digest, s.handle(), &raw::mech(&Mechanism::Sha1), 0),
        CKR_OK,
        "C_DigestInit",
    );
    expect_rv(
        raw::digest_update(s.handle(), data),
        CKR_OK,
        "C_DigestUpdate",
    );
    let query = raw::digest_final(s.handle(), Out::Null);
    expect_rv(query.rv, CKR_OK, "C_DigestFinal(NULL)");
    assert_eq!(query.len, 20);
    let small = raw::digest_final(s.handle(), Out::Buf(19));
    expect_rv(
        small.rv,
        CKR_BUFFER_TOO_SMALL,
        "C_DigestFinal into 19 bytes",
    );
    let out = raw::digest_final(s.handle(), Out::Buf(20));
    expect_rv(out.rv, CKR_OK, "C_DigestFinal");
    assert_eq!(
        out.data,
        verify::digest(verify::md_of(MechanismType::SHA1), data)
    );
}

#[test]
fn digest_init_while_active_returns_operation_active() {
    let t = shared().token("digest_init_active");
    let s = t.ro_session();
    let m = raw::mech(&Mechanism::Sha256);
    expect_rv(
        raw::init(Op::Digest, s.handle(), &m, 0),
        CKR_OK,
        "C_DigestInit",
    );
    expect_rv(
        raw::init(Op::Digest, s.handle(), &m, 0),
        CKR_OPERATION_ACTIVE,
        "second C_DigestInit",
    );
    let out = raw::digest(s.handle(), b"abc", Out::Buf(32));
    expect_rv(out.rv, CKR_OK, "C_Digest of the first operation");
    assert_eq!(
        out.data,
        verify::digest(verify::md_of(MechanismType::SHA256), b"abc")
    );
}

#[test]
fn digest_without_init_returns_operation_not_initialized() {
    let t = shared().token("digest_no_init");
    let s = t.ro_session();
    expect_rv(
        raw::digest(s.handle(), b"x", Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Digest",
    );
    expect_rv(
        raw::digest_update(s.handle(), b"x"),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DigestUpdate",
    );
    expect_rv(
        raw::digest_final(s.handle(), Out::Buf(64)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DigestFinal",
    );
}

#[test]
fn digest_with_unsupported_or_non_digest_mechanism_returns_mechanism_invalid() {
    let t = shared().token("digest_bad_mechanism");
    let s = t.ro_session();
    let mut none: [u8; 0] = [];
    for m in [CKM_MD5, CKM_SHA256_HMAC, CKM_ECDSA, 0x8000_4242] {
        expect_rv(
            raw::init(
                Op::Digest,
                s.handle(),
                &raw::mech_with_bytes(m, &mut none),
                0,
            ),
            CKR_MECHANISM_INVALID,
            &format!("C_DigestInit({m:#x})"),
        );
    }
}

#[test]
fn generate_random_fills_buffers_of_any_length_with_fresh_bytes() {
    let t = shared().token("random_fill");
    let s = t.ro_session();
    for n in [1usize, 16, 32, 1000, 4096] {
        let (rv, a) = raw::generate_random(s.handle(), n);
        expect_rv(rv, CKR_OK, &format!("C_GenerateRandom({n})"));
        let (_, b) = raw::generate_random(s.handle(), n);
        if n >= 16 {
            assert_ne!(a, b, "two {n}-byte random outputs are equal");
            assert!(a.iter().any(|x| *x != 0), "{n} random bytes are all zero");
        }
    }
    let big = ok(s.generate_random_vec(65536), "C_GenerateRandom(65536)");
    let mut counts = [0usize; 256];
    for b in &big {
        counts[*b as usize] += 1;
    }
    // 256 bytes per value expected; a real RNG stays far inside these bounds.
    let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    assert!(
        min > 150 && max < 370,
        "byte histogram of 64 KiB of random data is implausible: min {min}, max {max}"
    );
}

#[test]
fn generate_random_of_zero_bytes_succeeds() {
    let t = shared().token("random_zero");
    let s = t.ro_session();
    expect_rv(
        raw::generate_random(s.handle(), 0).0,
        CKR_OK,
        "C_GenerateRandom(0)",
    );
}

#[test]
fn generate_random_works_without_login() {
    let t = shared().token("random_public");
    let s = t.ro_session();
    ok(
        s.generate_random_vec(32),
        "C_GenerateRandom while not logged in",
    );
}
