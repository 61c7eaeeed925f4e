//! Conformance: signatures and MACs — pkcs11test sign.cc and hmac.cc (key pairs and HMAC
//! keys made in read-only public sessions, RFC test vectors, corrupted and short
//! signatures), the Rust `cryptoki` suite's AES-CMAC, HMAC key-generation and EdDSA cases,
//! and the operation-state rules for signing.

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;
use hsmux_tests::conformance::*;
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::*;
use std::ptr::null_mut;

/// pkcs11test's KeyPair helper: RSA-1024 generated in the given (R/O, public) session with
/// CKA_PRIVATE=FALSE on both halves.
fn public_session_rsa(s: CK_SESSION_HANDLE) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let mut public = Template::new()
        .bytes(CKA_LABEL, b"conformance sign")
        .bool(CKA_VERIFY, true)
        .ulong(CKA_MODULUS_BITS, 1024)
        .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1])
        .bool(CKA_PRIVATE, false);
    let mut private = Template::new()
        .bytes(CKA_LABEL, b"conformance sign")
        .bool(CKA_SIGN, true)
        .bool(CKA_PRIVATE, false);
    let (rv, p, k) = generate_key_pair(
        s,
        &plain(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &mut public,
        &mut private,
    );
    expect_rv(
        rv,
        CKR_OK,
        "C_GenerateKeyPair in a R/O public session (CKA_PRIVATE=FALSE)",
    );
    (p, k)
}

/// pkcs11test SignTest.{SignVerify, SignFailVerifyWrong, SignFailVerifyShort} for RSA,
/// SHA1-RSA, SHA256-RSA, SHA384-RSA and SHA512-RSA.
#[test]
fn rsa_signatures_verify_and_corrupted_or_short_ones_are_rejected() {
    let t = shared().token("sign verify rsa");
    let s = t.ro_session();
    let h = s.handle();
    let (public, private) = public_session_rsa(h);
    for (m, max) in [
        (CKM_RSA_PKCS, 64),
        (CKM_SHA1_RSA_PKCS, 1024),
        (CKM_SHA256_RSA_PKCS, 1024),
        (CKM_SHA384_RSA_PKCS, 1024),
        (CKM_SHA512_RSA_PKCS, 1024),
    ] {
        let data = verify::random_bytes(1 + rand_below(max - 1));
        let sig = sign_raw(h, &plain(m), private, &data)
            .unwrap_or_else(|rv| panic!("{m:#x}: C_Sign {}", rv_name(rv)));
        assert_eq!(sig.len(), 128);
        expect_rv(
            raw::init(Op::Verify, h, &plain(m), public),
            CKR_OK,
            "C_VerifyInit",
        );
        expect_rv(
            raw::verify(h, &data, &sig),
            CKR_OK,
            &format!("{m:#x}: C_Verify"),
        );
        let mut bad = sig.clone();
        bad[0] = bad[0].wrapping_add(1);
        expect_rv(
            raw::init(Op::Verify, h, &plain(m), public),
            CKR_OK,
            "C_VerifyInit",
        );
        expect_rv(
            raw::verify(h, &data, &bad),
            CKR_SIGNATURE_INVALID,
            &format!("{m:#x}: corrupted"),
        );
        expect_rv(
            raw::init(Op::Verify, h, &plain(m), public),
            CKR_OK,
            "C_VerifyInit",
        );
        expect_rv(
            raw::verify(h, &data, &sig[..4]),
            CKR_SIGNATURE_LEN_RANGE,
            &format!("{m:#x}: 4-byte signature"),
        );
    }
}

fn rand_below(n: usize) -> usize {
    let b = verify::random_bytes(4);
    u32::from_le_bytes(b.try_into().unwrap()) as usize % n.max(1)
}

fn generic_secret(s: CK_SESSION_HANDLE, value: &[u8]) -> CK_OBJECT_HANDLE {
    create(
        s,
        Template::new()
            .bytes(CKA_LABEL, b"hmac")
            .bool(CKA_SIGN, true)
            .bool(CKA_VERIFY, true)
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
            .bool(CKA_PRIVATE, false)
            .bytes(CKA_VALUE, value),
        "C_CreateObject(CKK_GENERIC_SECRET) in a R/O public session",
    )
}

/// pkcs11test ReadOnlySessionTest.HmacTestVectors (RFC 2202 / RFC 4231 cases 1 and 2) and
/// HmacTest.{SignVerify, SignFailVerify} with 64–127-byte keys; a truncated MAC is
/// CKR_SIGNATURE_LEN_RANGE.
#[test]
fn hmac_matches_rfc_vectors_and_rejects_corrupted_or_truncated_macs() {
    let t = shared().token("hmac vectors");
    let s = t.ro_session();
    let h = s.handle();
    let cases: [(CK_MECHANISM_TYPE, &str, &str, &str); 8] = [
        (CKM_SHA_1_HMAC, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265", "b617318655057264e28bc0b6fb378c8ef146be00"),
        (CKM_SHA_1_HMAC, "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        (CKM_SHA256_HMAC, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (CKM_SHA256_HMAC, "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (CKM_SHA384_HMAC, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265", "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"),
        (CKM_SHA384_HMAC, "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f", "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
        (CKM_SHA512_HMAC, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265", "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
        (CKM_SHA512_HMAC, "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f", "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
    ];
    for (m, key, data, mac) in cases {
        let k = generic_secret(h, &hex(key));
        assert_eq!(
            sign_raw(h, &plain(m), k, &hex(data)),
            Ok(hex(mac)),
            "{m:#x} vector"
        );
    }
    for (m, size) in [
        (CKM_SHA_1_HMAC, 20),
        (CKM_SHA256_HMAC, 32),
        (CKM_SHA384_HMAC, 48),
        (CKM_SHA512_HMAC, 64),
    ] {
        let k = generic_secret(h, &verify::random_bytes(64 + rand_below(64)));
        let data = verify::random_bytes(rand_below(1024));
        let mac = sign_raw(h, &plain(m), k, &data).expect("C_Sign(HMAC)");
        assert_eq!(mac.len(), size);
        expect_rv(
            raw::init(Op::Verify, h, &plain(m), k),
            CKR_OK,
            "C_VerifyInit",
        );
        expect_rv(raw::verify(h, &data, &mac), CKR_OK, "C_Verify(HMAC)");
        let mut bad = mac.clone();
        bad[0] = bad[0].wrapping_add(1);
        expect_rv(
            raw::init(Op::Verify, h, &plain(m), k),
            CKR_OK,
            "C_VerifyInit",
        );
        expect_rv(
            raw::verify(h, &data, &bad),
            CKR_SIGNATURE_INVALID,
            "corrupted HMAC",
        );
        expect_rv(
            raw::init(Op::Verify, h, &plain(m), k),
            CKR_OK,
            "C_VerifyInit",
        );
        expect_rv(
            raw::verify(h, &data, &mac[..size - 1]),
            CKR_SIGNATURE_LEN_RANGE,
            "truncated HMAC",
        );
    }
}

/// rust-cryptoki sign_verify_sha{1,224,256,384,512}_hmac: CKM_SHA*_KEY_GEN (PKCS#11 3.0)
/// make HMAC keys of CKA_VALUE_LEN bytes that sign and verify with the matching HMAC.
#[test]
fn sha_key_generation_mechanisms_make_working_hmac_keys() {
    let t = shared().token("sha key gen");
    let s = t.login_user();
    for (gen, mac) in [
        (Mechanism::Sha1KeyGen, Mechanism::Sha1Hmac),
        (Mechanism::Sha224KeyGen, Mechanism::Sha224Hmac),
        (Mechanism::Sha256KeyGen, Mechanism::Sha256Hmac),
        (Mechanism::Sha384KeyGen, Mechanism::Sha384Hmac),
        (Mechanism::Sha512KeyGen, Mechanism::Sha512Hmac),
    ] {
        let key = ok(
            s.generate_key(
                &gen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Sign(true),
                    Attribute::Verify(true),
                    Attribute::ValueLen(256.into()),
                ],
            ),
            &format!("C_GenerateKey({gen:?})"),
        );
        let data = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        let sig = ok(s.sign(&mac, key, &data), "C_Sign");
        ok(s.verify(&mac, key, &data, &sig), "C_Verify");
    }
}

/// rust-cryptoki aes_cmac_sign / aes_cmac_verify (RFC 4493 examples 1–4) with a sensitive
/// private token key; multi-part equals single-part; a wrong MAC is CKR_SIGNATURE_INVALID.
#[test]
fn aes_cmac_matches_rfc_4493_single_and_multi_part() {
    let t = shared().token("aes cmac");
    let s = t.login_user();
    let h = s.handle();
    let key = create(
        h,
        Template::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_AES)
            .bool(CKA_TOKEN, true)
            .bool(CKA_SENSITIVE, true)
            .bool(CKA_PRIVATE, true)
            .bytes(CKA_VALUE, &hex("2b7e151628aed2a6abf7158809cf4f3c"))
            .bool(CKA_SIGN, true)
            .bool(CKA_VERIFY, true),
        "C_CreateObject(AES, sign+verify)",
    );
    let msg = hex(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
         30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
    );
    for (len, mac) in [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ] {
        let m = plain(CKM_AES_CMAC);
        assert_eq!(
            sign_raw(h, &m, key, &msg[..len]),
            Ok(hex(mac)),
            "CMAC of {len} bytes"
        );
        expect_rv(
            raw::init(Op::Verify, h, &m, key),
            CKR_OK,
            "C_VerifyInit(CMAC)",
        );
        expect_rv(
            raw::verify(h, &msg[..len], &hex(mac)),
            CKR_OK,
            "C_Verify(CMAC)",
        );
        expect_rv(raw::init(Op::Sign, h, &m, key), CKR_OK, "C_SignInit(CMAC)");
        for chunk in msg[..len].chunks(7) {
            expect_rv(raw::sign_update(h, chunk), CKR_OK, "C_SignUpdate(CMAC)");
        }
        let r = raw::sign_final(h, Out::Buf(64));
        expect_rv(r.rv, CKR_OK, "C_SignFinal(CMAC)");
        assert_eq!(r.data, hex(mac), "multi-part CMAC of {len} bytes");
        let mut wrong = hex(mac);
        wrong[15] ^= 1;
        expect_rv(
            raw::init(Op::Verify, h, &m, key),
            CKR_OK,
            "C_VerifyInit(CMAC)",
        );
        expect_rv(
            raw::verify(h, &msg[..len], &wrong),
            CKR_SIGNATURE_INVALID,
            "wrong CMAC",
        );
    }
}

const ED25519_PRINTABLE: &[u8] = b"\x13\x0cedwards25519";
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// rust-cryptoki sign_verify_eddsa: Ed25519 key pairs named by the PrintableString
/// "edwards25519" (as SoftHSM and the suite write it) or by OID; CKM_EDDSA without
/// parameters and with CK_EDDSA_PARAMS{phFlag=FALSE, no context} (plain Ed25519) both work.
#[test]
fn ed25519_by_curve_name_or_oid_signs_with_and_without_eddsa_params() {
    let t = shared().token("eddsa");
    let s = t.login_user();
    let h = s.handle();
    for params in [ED25519_PRINTABLE, ED25519_OID] {
        let (p, k) = ok(
            s.generate_key_pair(
                &Mechanism::EccEdwardsKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Verify(true),
                    Attribute::EcParams(params.to_vec()),
                ],
                &[Attribute::Token(true), Attribute::Sign(true)],
            ),
            &format!("C_GenerateKeyPair(CKM_EC_EDWARDS_KEY_PAIR_GEN, {params:02x?})"),
        );
        let data = [0xff, 0x55, 0xdd];
        let pure = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let sig = ok(s.sign(&pure, k, &data), "C_Sign(CKM_EDDSA, no parameters)");
        assert_eq!(sig.len(), 64);
        ok(s.verify(&pure, p, &data, &sig), "C_Verify(CKM_EDDSA)");
        let mut ep = CK_EDDSA_PARAMS {
            phFlag: CK_FALSE,
            ulContextDataLen: 0,
            pContextData: null_mut(),
        };
        let m = raw::mech_with(CKM_EDDSA, &mut ep);
        let sig2 = sign_raw(h, &m, k.handle(), &data).expect("C_Sign(CKM_EDDSA, phFlag FALSE)");
        assert_eq!(sig2, sig, "Ed25519 is deterministic: both forms sign alike");
    }
}

/// RFC 8032 §7.1 TEST 2: an imported Ed25519 private key signs the one-byte message 0x72
/// to the published signature.
#[test]
fn imported_ed25519_key_reproduces_rfc_8032_test_2() {
    let t = shared().token("eddsa rfc8032");
    let s = t.login_user();
    let h = s.handle();
    let key = create(
        h,
        Template::new()
            .ulong(CKA_CLASS, CKO_PRIVATE_KEY)
            .ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS)
            .bool(CKA_TOKEN, false)
            .bool(CKA_SIGN, true)
            .bytes(CKA_EC_PARAMS, ED25519_PRINTABLE)
            .bytes(
                CKA_VALUE,
                &hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
            ),
        "C_CreateObject(CKK_EC_EDWARDS private key)",
    );
    assert_eq!(
        sign_raw(h, &plain(CKM_EDDSA), key, &[0x72]),
        Ok(hex(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ))
    );
}

/// rust-cryptoki sign_verify_eddsa_with_ed25519_schemes: Ed25519ph and Ed25519ctx.
#[test]
#[ignore = "hsmux: CKM_EDDSA with phFlag=TRUE or a context (Ed25519ph/Ed25519ctx) is refused (OpenSSL 3.0 lacks them); rust-cryptoki's ed25519_schemes test signs with both"]
fn ed25519ph_and_ed25519ctx_sign_and_verify() {
    let t = shared().token("eddsa schemes");
    let s = t.login_user();
    let (p, k) = ok(
        s.generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Verify(true),
                Attribute::EcParams(ED25519_PRINTABLE.to_vec()),
            ],
            &[Attribute::Sign(true)],
        ),
        "C_GenerateKeyPair(Ed25519)",
    );
    let data = [0xff, 0x55, 0xdd];
    for scheme in [
        EddsaSignatureScheme::Ed25519ph(&[]),
        EddsaSignatureScheme::Ed25519ph(b"context"),
        EddsaSignatureScheme::Ed25519ctx(b"context"),
    ] {
        let m = Mechanism::Eddsa(EddsaParams::new(scheme));
        let sig = ok(s.sign(&m, k, &data), "C_Sign(Ed25519 variant)");
        ok(s.verify(&m, p, &data, &sig), "C_Verify(Ed25519 variant)");
    }
}

/// PKCS#11 "A call to C_Sign always terminates the active signing operation unless it
/// returns CKR_BUFFER_TOO_SMALL or is a successful length query" — also when the failure is
/// CKR_ARGUMENTS_BAD (as pkcs11test's EncryptErrors expects of the cipher twins).
#[test]
fn arguments_bad_from_sign_or_verify_ends_the_operation() {
    let t = shared().token("sign args bad");
    let s = t.login_user();
    let h = s.handle();
    let key = generic_secret(h, &[7u8; 32]);
    let m = plain(CKM_SHA256_HMAC);
    let mut data = *b"some data";
    let pd = data.as_mut_ptr();
    let fl = f();
    let mut problems = Vec::new();
    // SAFETY (each call): pointers are to live locals or NULL where the module must
    // reject the call.
    let calls: [(&str, Op, &dyn Fn() -> CK_RV); 4] = [
        ("C_Sign(pulSignatureLen NULL)", Op::Sign, &|| unsafe {
            fl.C_Sign.unwrap()(h, pd, 9, null_mut(), null_mut())
        }),
        ("C_SignUpdate(pPart NULL)", Op::Sign, &|| unsafe {
            fl.C_SignUpdate.unwrap()(h, null_mut(), 9)
        }),
        ("C_SignFinal(NULL, NULL)", Op::Sign, &|| unsafe {
            fl.C_SignFinal.unwrap()(h, null_mut(), null_mut())
        }),
        ("C_Verify(pSignature NULL)", Op::Verify, &|| unsafe {
            fl.C_Verify.unwrap()(h, pd, 9, null_mut(), 32)
        }),
    ];
    for (what, op, call) in calls {
        expect_rv(raw::init(op, h, &m, key), CKR_OK, "init");
        let rv = call();
        if rv != CKR_ARGUMENTS_BAD {
            problems.push(format!("{what} returned {}", rv_name(rv)));
        }
        let again = raw::init(op, h, &m, key);
        if again != CKR_OK {
            problems.push(format!(
                "init after {what}: {} (operation not ended)",
                rv_name(again)
            ));
        }
        let _ = raw::sign_final(h, Out::Buf(64));
        let _ = raw::verify_final(h, &[0u8; 32]);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// PKCS#11 3.0 §5.11: "C_Sign cannot be used to terminate a multi-part operation, and must
/// be called after C_SignInit without intervening C_SignUpdate calls" — refused with
/// CKR_OPERATION_ACTIVE, as pkcs11test expects of the encryption twins.
#[test]
fn single_part_sign_and_verify_refuse_to_finish_a_multi_part_operation() {
    let t = shared().token("sign mode policing");
    let s = t.login_user();
    let h = s.handle();
    let key = generic_secret(h, &[9u8; 32]);
    let m = plain(CKM_SHA256_HMAC);
    expect_rv(raw::init(Op::Sign, h, &m, key), CKR_OK, "C_SignInit");
    expect_rv(raw::sign_update(h, b"part"), CKR_OK, "C_SignUpdate");
    expect_rv(
        raw::sign(h, b"rest", Out::Buf(64)).rv,
        CKR_OPERATION_ACTIVE,
        "C_Sign after C_SignUpdate",
    );
    let _ = raw::sign_final(h, Out::Buf(64));
    let mac = sign_raw(h, &m, key, b"whole").expect("C_Sign");
    expect_rv(raw::init(Op::Verify, h, &m, key), CKR_OK, "C_VerifyInit");
    expect_rv(raw::verify_update(h, b"part"), CKR_OK, "C_VerifyUpdate");
    expect_rv(
        raw::verify(h, b"whole", &mac),
        CKR_OPERATION_ACTIVE,
        "C_Verify after C_VerifyUpdate",
    );
}

/// An operation that fails (here: an RSA key used with an input too long for raw
/// CKM_RSA_PKCS) is over; pkcs11test and the spec's "always terminates" rule.
#[test]
fn a_failed_rsa_sign_ends_the_operation() {
    let t = shared().token("sign failure ends op");
    let s = t.ro_session();
    let h = s.handle();
    let (_, private) = public_session_rsa(h);
    expect_rv(
        raw::init(Op::Sign, h, &plain(CKM_RSA_PKCS), private),
        CKR_OK,
        "C_SignInit",
    );
    let r = raw::sign(h, &[0x11; 120], Out::Buf(256));
    expect_rv(
        r.rv,
        CKR_DATA_LEN_RANGE,
        "C_Sign(CKM_RSA_PKCS, 120 bytes on a 1024-bit key)",
    );
    expect_rv(
        raw::sign(h, &[0x11; 10], Out::Buf(256)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Sign after the failure",
    );
}
