//! Conformance: key generation, wrapping, unwrapping and derivation — pkcs11test key.cc,
//! keypair.cc and tookan.cc (the key-extraction attacks), the Rust `cryptoki` suite's
//! wrap/derive cases and python-pkcs11's test_wrap, with RFC 3394/5649 vectors.
//!
//! What PKCS#11 makes mandatory and what it leaves advisory, for the attacks:
//! - mandatory: CKA_SENSITIVE keys never reveal CKA_VALUE (Tookan A3, and A4 for
//!   CKA_EXTRACTABLE=FALSE keys); CKA_SENSITIVE only goes FALSE→TRUE and CKA_EXTRACTABLE
//!   only TRUE→FALSE (A5a/A5b); a CKA_EXTRACTABLE=FALSE key is never wrapped (A1/A2 with
//!   the default, since both SoftHSM and hsmux default CKA_EXTRACTABLE to FALSE); a
//!   CKA_WRAP_WITH_TRUSTED key is wrapped only by CKA_TRUSTED keys.
//! - advisory: a token may also refuse to wrap an extractable but sensitive key, or refuse
//!   a key that both wraps and decrypts; PKCS#11 leaves that to CKA_WRAP_WITH_TRUSTED, so
//!   the tests accept either answer there.

use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki_sys::*;
use hsmux_tests::conformance::*;
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::verify::Curve;
use hsmux_tests::*;
use std::ptr::null_mut;

/// A readable, wrappable AES key with a known value (public session object).
fn plain_aes(value: &[u8]) -> Template {
    aes_key(value, &[CKA_ENCRYPT, CKA_DECRYPT])
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_EXTRACTABLE, true)
}

/// A wrapping key: wrap, unwrap, encrypt, decrypt.
fn kek(value: &[u8]) -> Template {
    aes_key(value, &[CKA_WRAP, CKA_UNWRAP, CKA_ENCRYPT, CKA_DECRYPT])
}

fn unwrap_template(key_type: CK_KEY_TYPE) -> Template {
    Template::new()
        .bytes(CKA_LABEL, b"unwrapped")
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, key_type)
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, false)
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_DECRYPT, true)
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_EXTRACTABLE, true)
}

/// pkcs11test ReadOnlySessionTest.{GenerateKeyInvalid, GenerateKeyPairInvalid}.
#[test]
fn key_generation_checks_session_mechanism_template_and_output_pointers() {
    let t = shared().token("keygen invalid");
    let s = t.ro_session();
    let h = s.handle();
    let fl = f();
    let mut aes = Template::new()
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_VALUE_LEN, 16);
    let mut gen = plain(CKM_AES_KEY_GEN);
    let mut key = CK_INVALID_HANDLE;
    expect_rv(
        generate_key(BOGUS_SESSION, &gen, &mut aes).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_GenerateKey(unknown session)",
    );
    let n = aes.count();
    // SAFETY (this block): NULL is passed only where the module must reject the call.
    unsafe {
        expect_rv_in(
            fl.C_GenerateKey.unwrap()(h, null_mut(), aes.ptr(), n, &mut key),
            &[CKR_ARGUMENTS_BAD, CKR_MECHANISM_INVALID],
            "C_GenerateKey(pMechanism NULL)",
        );
        expect_rv(
            fl.C_GenerateKey.unwrap()(h, &mut gen, null_mut(), 3, &mut key),
            CKR_ARGUMENTS_BAD,
            "C_GenerateKey(pTemplate NULL, 3)",
        );
        expect_rv(
            fl.C_GenerateKey.unwrap()(h, &mut gen, aes.ptr(), n, null_mut()),
            CKR_ARGUMENTS_BAD,
            "C_GenerateKey(phKey NULL)",
        );
    }
    let mut public = Template::new()
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_MODULUS_BITS, 1024)
        .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]);
    let mut private = Template::new()
        .bool(CKA_DECRYPT, true)
        .bool(CKA_PRIVATE, false);
    let mut rsa = plain(CKM_RSA_PKCS_KEY_PAIR_GEN);
    expect_rv(
        generate_key_pair(BOGUS_SESSION, &rsa, &mut public, &mut private).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_GenerateKeyPair(unknown session)",
    );
    let (np, nk) = (public.count(), private.count());
    let (mut hp, mut hk) = (CK_INVALID_HANDLE, CK_INVALID_HANDLE);
    // SAFETY (this block): as above.
    unsafe {
        let g = fl.C_GenerateKeyPair.unwrap();
        expect_rv_in(
            g(
                h,
                null_mut(),
                public.ptr(),
                np,
                private.ptr(),
                nk,
                &mut hp,
                &mut hk,
            ),
            &[CKR_ARGUMENTS_BAD, CKR_MECHANISM_INVALID],
            "C_GenerateKeyPair(pMechanism NULL)",
        );
        expect_rv(
            g(
                h,
                &mut rsa,
                null_mut(),
                4,
                private.ptr(),
                nk,
                &mut hp,
                &mut hk,
            ),
            CKR_ARGUMENTS_BAD,
            "C_GenerateKeyPair(public template NULL, 4)",
        );
        expect_rv(
            g(
                h,
                &mut rsa,
                public.ptr(),
                np,
                null_mut(),
                2,
                &mut hp,
                &mut hk,
            ),
            CKR_ARGUMENTS_BAD,
            "C_GenerateKeyPair(private template NULL, 2)",
        );
    }
}

/// pkcs11test's SecretKey fixture generates CKM_DES_KEY_GEN keys for most of its cipher,
/// wrap, digest-key, latching and Tookan cases, and its cipher suite runs DES-ECB/CBC and
/// 3DES-ECB/CBC (with published vectors); SoftHSMv2 passes those, so a module without DES
/// fails every one of them at the fixture.
#[test]
fn des_and_triple_des_keys_generate_and_match_pkcs11test_vectors() {
    let t = shared().token("des fixture");
    let s = t.ro_session();
    let h = s.handle();
    for gen in [CKM_DES_KEY_GEN, CKM_DES3_KEY_GEN] {
        let mut tmpl = Template::new()
            .bool(CKA_ENCRYPT, true)
            .bool(CKA_DECRYPT, true)
            .bool(CKA_PRIVATE, false);
        let (rv, key) = generate_key(h, &plain(gen), &mut tmpl);
        expect_rv(rv, CKR_OK, &format!("C_GenerateKey({gen:#x})"));
        let pt = [0x5a; 32];
        let mut iv = [7u8; 8];
        for m in [
            plain(CKM_DES_ECB),
            raw::mech_with_bytes(CKM_DES_CBC, &mut iv),
        ]
        .into_iter()
        .filter(|_| gen == CKM_DES_KEY_GEN)
        .chain(
            [
                plain(CKM_DES3_ECB),
                raw::mech_with_bytes(CKM_DES3_CBC, &mut [7u8; 8]),
            ]
            .into_iter()
            .filter(|_| gen == CKM_DES3_KEY_GEN),
        ) {
            let ct = encrypt_raw(h, &m, key, &pt).expect("DES encrypt");
            assert_eq!(decrypt_raw(h, &m, key, &ct), Ok(pt.to_vec()));
        }
    }
    for (kt, key, pt, ct) in [
        (
            CKK_DES,
            "8000000000000000",
            "0000000000000000",
            "95a8d72813daa94d",
        ),
        (
            CKK_DES3,
            "800000000000000000000000000000000000000000000000",
            "0000000000000000",
            "95a8d72813daa94d",
        ),
        (
            CKK_DES3,
            "020202020202020202020202020202020202020202020202",
            "0202020202020202",
            "e127c2b61d98e6e2",
        ),
    ] {
        let k = create(
            h,
            Template::new()
                .ulong(CKA_CLASS, CKO_SECRET_KEY)
                .ulong(CKA_KEY_TYPE, kt)
                .bool(CKA_PRIVATE, false)
                .bool(CKA_ENCRYPT, true)
                .bytes(CKA_VALUE, &hex(key)),
            "C_CreateObject(DES key)",
        );
        let m = plain(if kt == CKK_DES {
            CKM_DES_ECB
        } else {
            CKM_DES3_ECB
        });
        assert_eq!(encrypt_raw(h, &m, k, &hex(pt)), Ok(hex(ct)));
    }
}

/// RFC 3394 §4.1 and RFC 5649 §6 (first example): C_WrapKey with CKM_AES_KEY_WRAP and
/// CKM_AES_KEY_WRAP_KWP gives the published bytes, and C_UnwrapKey restores the key
/// (python-pkcs11 test_wrap reads CKA_VALUE back from both).
#[test]
fn aes_key_wrap_and_kwp_match_the_rfc_vectors_and_unwrap_back() {
    let t = shared().token("key wrap vectors");
    let s = t.ro_session();
    let h = s.handle();
    for (mech, kek_hex, key_hex, key_type, wrapped) in [
        (
            CKM_AES_KEY_WRAP,
            "000102030405060708090a0b0c0d0e0f",
            "00112233445566778899aabbccddeeff",
            CKK_AES,
            "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5",
        ),
        (
            CKM_AES_KEY_WRAP_KWP,
            "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
            "c37b7e6492584340bed12207808941155068f738",
            CKK_GENERIC_SECRET,
            "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
        ),
    ] {
        let wrapping = create(h, kek(&hex(kek_hex)), "KEK");
        let target = create(
            h,
            Template::new()
                .ulong(CKA_CLASS, CKO_SECRET_KEY)
                .ulong(CKA_KEY_TYPE, key_type)
                .bool(CKA_PRIVATE, false)
                .bool(CKA_SENSITIVE, false)
                .bool(CKA_EXTRACTABLE, true)
                .bytes(CKA_VALUE, &hex(key_hex)),
            "key to wrap",
        );
        assert_eq!(
            wrap(h, &plain(mech), wrapping, target),
            Ok(hex(wrapped)),
            "{mech:#x}"
        );
        let (rv, back) = unwrap_key(
            h,
            &plain(mech),
            wrapping,
            &hex(wrapped),
            &mut unwrap_template(key_type),
        );
        expect_rv(rv, CKR_OK, &format!("C_UnwrapKey({mech:#x})"));
        assert_eq!(
            attr(h, back, CKA_VALUE),
            Some(hex(key_hex)),
            "{mech:#x}: unwrapped value"
        );
        assert!(
            !attr_bool(h, back, CKA_LOCAL),
            "an unwrapped key is not CKA_LOCAL"
        );
        assert!(!attr_bool(h, back, CKA_ALWAYS_SENSITIVE));
        assert!(!attr_bool(h, back, CKA_NEVER_EXTRACTABLE));
        // A tampered blob fails the integrity check.
        let mut bad = hex(wrapped);
        bad[3] ^= 0x40;
        expect_rv(
            unwrap_key(
                h,
                &plain(mech),
                wrapping,
                &bad,
                &mut unwrap_template(key_type),
            )
            .0,
            CKR_WRAPPED_KEY_INVALID,
            &format!("{mech:#x}: tampered wrapped key"),
        );
    }
}

/// pkcs11test ReadOnlySessionTest.WrapUnwrap (with AES for DES): a key that wraps and
/// decrypts can decrypt what it wrapped (the wrapped key was extractable and
/// non-sensitive, so nothing is exposed that CKA_VALUE would not show), and unwrapping
/// gives a key with the same value; also for CKM_AES_CBC_PAD with an IV.
#[test]
fn wrapping_an_extractable_key_round_trips_and_matches_decryption() {
    let t = shared().token("wrap unwrap");
    let s = t.ro_session();
    let h = s.handle();
    let k1_value = verify::random_bytes(32);
    let k1 = create(h, plain_aes(&k1_value), "k1 (extractable, not sensitive)");
    let k2 = create(
        h,
        kek(&verify::random_bytes(16)),
        "k2 (wrap, unwrap, decrypt)",
    );
    let mut iv = *b"0123456789abcdef";
    for m in [
        plain(CKM_AES_KEY_WRAP),
        raw::mech_with_bytes(CKM_AES_CBC_PAD, &mut iv),
    ] {
        let wrapped =
            wrap(h, &m, k2, k1).unwrap_or_else(|rv| panic!("{:#x}: {}", m.mechanism, rv_name(rv)));
        assert_eq!(
            decrypt_raw(h, &m, k2, &wrapped),
            Ok(k1_value.clone()),
            "decrypting the blob"
        );
        let (rv, k3) = unwrap_key(h, &m, k2, &wrapped, &mut unwrap_template(CKK_AES));
        expect_rv(rv, CKR_OK, "C_UnwrapKey");
        assert_eq!(attr(h, k3, CKA_VALUE), Some(k1_value.clone()));
    }
}

/// pkcs11test ReadOnlySessionTest.{WrapInvalid, UnwrapInvalid}. (pkcs11test expects
/// CKR_WRAPPING_KEY_HANDLE_INVALID for a bad *unwrapping* key; PKCS#11 names
/// CKR_UNWRAPPING_KEY_HANDLE_INVALID, so both are accepted.)
#[test]
fn wrap_and_unwrap_check_every_handle_pointer_and_length() {
    let t = shared().token("wrap invalid");
    let s = t.ro_session();
    let h = s.handle();
    let k1 = create(h, plain_aes(&[1; 16]), "k1");
    let k2 = create(h, kek(&[2; 16]), "k2");
    let kw = plain(CKM_AES_KEY_WRAP);
    let wrapped = wrap(h, &kw, k2, k1).expect("C_WrapKey");
    expect_rv(
        wrap_key(BOGUS_SESSION, &kw, k2, k1, Out::Buf(64)).rv,
        CKR_SESSION_HANDLE_INVALID,
        "C_WrapKey(unknown session)",
    );
    expect_rv(
        wrap_key(h, &kw, BOGUS_OBJECT, k1, Out::Buf(64)).rv,
        CKR_WRAPPING_KEY_HANDLE_INVALID,
        "C_WrapKey(unknown wrapping key)",
    );
    expect_rv(
        wrap_key(h, &kw, k2, BOGUS_OBJECT, Out::Buf(64)).rv,
        CKR_KEY_HANDLE_INVALID,
        "C_WrapKey(unknown key)",
    );
    let q = wrap_key(h, &kw, k2, k1, Out::Null);
    expect_rv(q.rv, CKR_OK, "C_WrapKey length query");
    assert_eq!(q.len, 24);
    let r = wrap_key(h, &kw, k2, k1, Out::Buf(1));
    expect_rv(r.rv, CKR_BUFFER_TOO_SMALL, "C_WrapKey into 1 byte");
    assert_eq!(r.len, 24, "C_WrapKey must report the needed length");
    let fl = f();
    let mut m = kw;
    let mut buf = [0u8; 64];
    let mut len: CK_ULONG = 64;
    let mut w = wrapped.clone();
    let mut tmpl = unwrap_template(CKK_AES);
    let n = tmpl.count();
    let mut out = CK_INVALID_HANDLE;
    // SAFETY (this block): NULL is passed only where the module must reject the call.
    unsafe {
        expect_rv_in(
            fl.C_WrapKey.unwrap()(h, null_mut(), k2, k1, buf.as_mut_ptr(), &mut len),
            &[CKR_ARGUMENTS_BAD, CKR_MECHANISM_INVALID],
            "C_WrapKey(pMechanism NULL)",
        );
        expect_rv(
            fl.C_WrapKey.unwrap()(h, &mut m, k2, k1, buf.as_mut_ptr(), null_mut()),
            CKR_ARGUMENTS_BAD,
            "C_WrapKey(pulWrappedKeyLen NULL)",
        );
        let u = fl.C_UnwrapKey.unwrap();
        let wl = w.len() as CK_ULONG;
        expect_rv(
            u(
                BOGUS_SESSION,
                &mut m,
                k2,
                w.as_mut_ptr(),
                wl,
                tmpl.ptr(),
                n,
                &mut out,
            ),
            CKR_SESSION_HANDLE_INVALID,
            "C_UnwrapKey(unknown session)",
        );
        expect_rv_in(
            u(
                h,
                null_mut(),
                k2,
                w.as_mut_ptr(),
                wl,
                tmpl.ptr(),
                n,
                &mut out,
            ),
            &[CKR_ARGUMENTS_BAD, CKR_MECHANISM_INVALID],
            "C_UnwrapKey(pMechanism NULL)",
        );
        expect_rv_in(
            u(
                h,
                &mut m,
                CK_INVALID_HANDLE,
                w.as_mut_ptr(),
                wl,
                tmpl.ptr(),
                n,
                &mut out,
            ),
            &[
                CKR_UNWRAPPING_KEY_HANDLE_INVALID,
                CKR_WRAPPING_KEY_HANDLE_INVALID,
            ],
            "C_UnwrapKey(unwrapping key 0)",
        );
        expect_rv(
            u(h, &mut m, k2, null_mut(), wl, tmpl.ptr(), n, &mut out),
            CKR_ARGUMENTS_BAD,
            "C_UnwrapKey(pWrappedKey NULL)",
        );
        expect_rv(
            u(h, &mut m, k2, w.as_mut_ptr(), wl, null_mut(), 5, &mut out),
            CKR_ARGUMENTS_BAD,
            "C_UnwrapKey(pTemplate NULL, 5)",
        );
        expect_rv(
            u(h, &mut m, k2, w.as_mut_ptr(), wl, tmpl.ptr(), n, null_mut()),
            CKR_ARGUMENTS_BAD,
            "C_UnwrapKey(phKey NULL)",
        );
    }
    expect_rv(
        unwrap_key(h, &kw, k2, &wrapped[..20], &mut unwrap_template(CKK_AES)).0,
        CKR_WRAPPED_KEY_LEN_RANGE,
        "C_UnwrapKey(CKM_AES_KEY_WRAP, 20 bytes)",
    );
}

/// Key usage on wrap/unwrap/derive: CKA_WRAP, CKA_UNWRAP and CKA_DERIVE FALSE give
/// CKR_KEY_FUNCTION_NOT_PERMITTED; CKA_ALLOWED_MECHANISMS limits the wrapping mechanism
/// (CKR_MECHANISM_INVALID).
#[test]
fn wrap_unwrap_and_derive_honour_usage_flags_and_allowed_mechanisms() {
    let t = shared().token("wrap usage");
    let s = t.login_user();
    let h = s.handle();
    let target = create(h, plain_aes(&[3; 16]), "key to wrap");
    let no_wrap = create(
        h,
        aes_key(&[4; 16], &[CKA_UNWRAP]).bool(CKA_WRAP, false),
        "no CKA_WRAP",
    );
    expect_rv(
        wrap_key(h, &plain(CKM_AES_KEY_WRAP), no_wrap, target, Out::Buf(64)).rv,
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_WrapKey with CKA_WRAP=FALSE",
    );
    let wrapper = create(h, kek(&[4; 16]), "wrapping key");
    let blob = wrap(h, &plain(CKM_AES_KEY_WRAP), wrapper, target).expect("C_WrapKey");
    expect_rv(
        unwrap_key(
            h,
            &plain(CKM_AES_KEY_WRAP),
            no_wrap,
            &blob,
            &mut unwrap_template(CKK_AES),
        )
        .0,
        CKR_OK,
        "C_UnwrapKey with CKA_UNWRAP=TRUE",
    );
    let no_unwrap = create(
        h,
        aes_key(&[4; 16], &[CKA_WRAP]).bool(CKA_UNWRAP, false),
        "no CKA_UNWRAP",
    );
    expect_rv(
        unwrap_key(
            h,
            &plain(CKM_AES_KEY_WRAP),
            no_unwrap,
            &blob,
            &mut unwrap_template(CKK_AES),
        )
        .0,
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_UnwrapKey with CKA_UNWRAP=FALSE",
    );
    let only_kw = create(
        h,
        kek(&[5; 16]).bytes(CKA_ALLOWED_MECHANISMS, &CKM_AES_KEY_WRAP.to_ne_bytes()),
        "KEK restricted to CKM_AES_KEY_WRAP",
    );
    assert!(wrap(h, &plain(CKM_AES_KEY_WRAP), only_kw, target).is_ok());
    expect_rv(
        wrap_key(
            h,
            &plain(CKM_AES_KEY_WRAP_KWP),
            only_kw,
            target,
            Out::Buf(64),
        )
        .rv,
        CKR_MECHANISM_INVALID,
        "C_WrapKey with a mechanism outside CKA_ALLOWED_MECHANISMS",
    );
    let pair = keys::gen_ec(&s, Curve::P256, &[], &[Attribute::Derive(false)]);
    let peer = Curve::P256.generate();
    let point = verify::ec_point_bytes(&peer);
    let params = Ecdh1DeriveParams::new(EcKdf::null(), &point);
    expect_rv(
        s.derive_key(
            &Mechanism::Ecdh1Derive(params),
            pair.private,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
            ],
        ),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_DeriveKey with CKA_DERIVE=FALSE",
    );
    expect_rv(
        s.derive_key(
            &Mechanism::Ecdh1Derive(params),
            keys::bogus_handle(),
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
            ],
        ),
        CKR_KEY_HANDLE_INVALID,
        "C_DeriveKey(unknown base key)",
    );
}

/// Tookan attack A1 (pkcs11test ReadWriteSessionTest.TookanAttackA1 with AES-KW and
/// AES-CBC-PAD): a sensitive key made without CKA_EXTRACTABLE cannot be wrapped by a key
/// that could then decrypt the blob.
#[test]
fn tookan_a1_sensitive_key_cannot_be_wrapped_out_with_a_wrap_and_decrypt_key() {
    let t = shared().token("tookan a1");
    let s = t.rw_session();
    let h = s.handle();
    let mut tmpl = Template::new()
        .bytes(CKA_LABEL, b"k1")
        .bool(CKA_SENSITIVE, true)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_VALUE_LEN, 16);
    let (rv, k1) = generate_key(h, &plain(CKM_AES_KEY_GEN), &mut tmpl);
    expect_rv(rv, CKR_OK, "k1");
    let k2 = create(
        h,
        aes_key(&[9; 16], &[CKA_WRAP, CKA_DECRYPT]),
        "k2 (wrap + decrypt)",
    );
    let mut iv = [0u8; 16];
    for m in [
        plain(CKM_AES_KEY_WRAP),
        raw::mech_with_bytes(CKM_AES_CBC_PAD, &mut iv),
    ] {
        expect_rv_in(
            wrap_key(h, &m, k2, k1, Out::Buf(256)).rv,
            &[CKR_KEY_UNEXTRACTABLE, CKR_KEY_NOT_WRAPPABLE],
            &format!(
                "Tookan A1: C_WrapKey({:#x}) of a sensitive key",
                m.mechanism
            ),
        );
    }
}

/// Tookan attack A2 (pkcs11test RWEitherSessionTest.TookanAttackA2): the same with an RSA
/// pair whose public half wraps and private half decrypts.
#[test]
fn tookan_a2_sensitive_key_cannot_be_wrapped_out_with_an_rsa_pair() {
    let t = shared().token("tookan a2");
    let s = t.login_user();
    let h = s.handle();
    let mut tmpl = Template::new()
        .bool(CKA_SENSITIVE, true)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_VALUE_LEN, 16);
    let (rv, k1) = generate_key(h, &plain(CKM_AES_KEY_GEN), &mut tmpl);
    expect_rv(rv, CKR_OK, "k1");
    let pair = keys::gen_rsa(
        &s,
        1024,
        &[Attribute::Wrap(true)],
        &[Attribute::Decrypt(true)],
    );
    let mut oaep = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA_1,
        mgf: CKG_MGF1_SHA1,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: null_mut(),
        ulSourceDataLen: 0,
    };
    for m in [
        plain(CKM_RSA_PKCS),
        raw::mech_with(CKM_RSA_PKCS_OAEP, &mut oaep),
    ] {
        expect_rv_in(
            wrap_key(h, &m, pair.public.handle(), k1, Out::Buf(512)).rv,
            &[CKR_KEY_UNEXTRACTABLE, CKR_KEY_NOT_WRAPPABLE],
            &format!(
                "Tookan A2: C_WrapKey({:#x}) of a sensitive key",
                m.mechanism
            ),
        );
    }
}

/// Tookan attacks A3, A4, A5a, A5b (pkcs11test tookan.cc): no CKA_VALUE from a sensitive or
/// an unextractable key; no way back to insensitive or extractable.
#[test]
fn tookan_a3_to_a5_values_stay_hidden_and_protections_stay_on() {
    let t = shared().token("tookan a3-a5");
    let s = t.rw_session();
    let h = s.handle();
    let gen = |sensitive: bool, extractable: Option<bool>| {
        let mut tmpl = Template::new()
            .bool(CKA_SENSITIVE, sensitive)
            .bool(CKA_PRIVATE, false)
            .ulong(CKA_VALUE_LEN, 16);
        if let Some(e) = extractable {
            tmpl = tmpl.bool(CKA_EXTRACTABLE, e);
        }
        let (rv, k) = generate_key(h, &plain(CKM_AES_KEY_GEN), &mut tmpl);
        expect_rv(rv, CKR_OK, "C_GenerateKey");
        k
    };
    let value_rv = |k| {
        let mut q = [raw::AttrQuery::read(CKA_VALUE, 4096)];
        (raw::get_attributes(h, k, &mut q), q[0].unavailable())
    };
    let a3 = gen(true, None);
    assert_eq!(
        value_rv(a3),
        (CKR_ATTRIBUTE_SENSITIVE, true),
        "A3: CKA_VALUE of a sensitive key"
    );
    let a4 = gen(false, Some(false));
    assert_eq!(
        value_rv(a4),
        (CKR_ATTRIBUTE_SENSITIVE, true),
        "A4: CKA_VALUE of an unextractable key"
    );
    expect_rv(
        raw::set_attribute(h, a3, CKA_SENSITIVE, &[CK_FALSE]),
        CKR_ATTRIBUTE_READ_ONLY,
        "A5a: CKA_SENSITIVE TRUE→FALSE",
    );
    assert!(attr_bool(h, a3, CKA_SENSITIVE));
    expect_rv(
        raw::set_attribute(h, a4, CKA_EXTRACTABLE, &[CK_TRUE]),
        CKR_ATTRIBUTE_READ_ONLY,
        "A5b: CKA_EXTRACTABLE FALSE→TRUE",
    );
    assert!(!attr_bool(h, a4, CKA_EXTRACTABLE));
}

/// CKA_WRAP_WITH_TRUSTED: such a key is wrapped only by a CKA_TRUSTED wrapping key (which
/// only the SO can mark); CKR_KEY_NOT_WRAPPABLE otherwise. A user cannot mark a key trusted.
#[test]
fn wrap_with_trusted_keys_are_wrapped_only_by_trusted_keys() {
    let t = shared().token("wrap with trusted");
    let trusted = {
        let so = t.login_so();
        let h = create(
            so.handle(),
            kek(&[0x77; 16])
                .bool(CKA_TOKEN, true)
                .bool(CKA_TRUSTED, true),
            "SO creates a CKA_TRUSTED public wrapping key",
        );
        assert!(attr_bool(so.handle(), h, CKA_TRUSTED));
        h
    };
    let s = t.login_user();
    let h = s.handle();
    let guarded = create(
        h,
        plain_aes(&[0x31; 16])
            .bool(CKA_WRAP_WITH_TRUSTED, true)
            .bool(CKA_SENSITIVE, true),
        "extractable key with CKA_WRAP_WITH_TRUSTED",
    );
    let untrusted = create(h, kek(&[0x66; 16]), "ordinary wrapping key");
    expect_rv(
        wrap_key(
            h,
            &plain(CKM_AES_KEY_WRAP),
            untrusted,
            guarded,
            Out::Buf(64),
        )
        .rv,
        CKR_KEY_NOT_WRAPPABLE,
        "C_WrapKey of a CKA_WRAP_WITH_TRUSTED key by an untrusted key",
    );
    let blob = wrap(h, &plain(CKM_AES_KEY_WRAP), trusted, guarded);
    assert!(
        blob.is_ok(),
        "a trusted key must wrap it: {:?}",
        blob.map_err(rv_name)
    );
    expect_rv(
        raw::set_attribute(h, untrusted, CKA_TRUSTED, &[CK_TRUE]),
        CKR_ATTRIBUTE_READ_ONLY,
        "a user setting CKA_TRUSTED",
    );
    expect_rv(
        raw::set_attribute(h, guarded, CKA_WRAP_WITH_TRUSTED, &[CK_FALSE]),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_WRAP_WITH_TRUSTED TRUE→FALSE",
    );
    // Advisory: wrapping an extractable-but-sensitive key with a key that also decrypts
    // is allowed or refused at the token's discretion.
    let both = create(
        h,
        aes_key(&[0x12; 16], &[CKA_WRAP, CKA_DECRYPT]),
        "wrap+decrypt key",
    );
    let sensitive = create(
        h,
        plain_aes(&[0x13; 16]).bool(CKA_SENSITIVE, true),
        "sensitive, extractable",
    );
    expect_rv_in(
        wrap_key(h, &plain(CKM_AES_KEY_WRAP), both, sensitive, Out::Buf(64)).rv,
        &[CKR_OK, CKR_KEY_NOT_WRAPPABLE],
        "C_WrapKey(extractable sensitive key, wrap+decrypt key)",
    );
}

/// pkcs11test's WrapUnwrap relies on a secret key generated with CKA_SENSITIVE=FALSE and no
/// CKA_EXTRACTABLE being wrappable, while TookanAttackA1 needs one generated with
/// CKA_SENSITIVE=TRUE and no CKA_EXTRACTABLE to be refused. PKCS#11 lets the default of
/// CKA_EXTRACTABLE depend on other attributes ("token-specific"); defaulting it to
/// !CKA_SENSITIVE satisfies both (SoftHSM defaults it to FALSE and fails WrapUnwrap,
/// WrapInvalid and UnwrapInvalid).
#[test]
fn non_sensitive_key_without_extractable_can_be_wrapped() {
    let t = shared().token("extractable default");
    let s = t.ro_session();
    let h = s.handle();
    let mut tmpl = Template::new()
        .bytes(CKA_LABEL, b"k1")
        .bool(CKA_SENSITIVE, false)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_VALUE_LEN, 16);
    let (rv, k1) = generate_key(h, &plain(CKM_AES_KEY_GEN), &mut tmpl);
    expect_rv(rv, CKR_OK, "k1");
    let k2 = create(h, kek(&[2; 16]), "k2");
    let r = wrap(h, &plain(CKM_AES_KEY_WRAP), k2, k1);
    assert!(
        r.is_ok(),
        "C_WrapKey of a non-sensitive key: {:?}",
        r.map_err(rv_name)
    );
}

/// rust-cryptoki wrap_and_unwrap_key / wrap_and_unwrap_key_oaep: an AES-256 token key
/// wrapped by an RSA-2048 public key (CKM_RSA_PKCS, and OAEP SHA-1) is 256 bytes, and the
/// key unwrapped with the private half encrypts exactly like the original.
#[test]
fn rsa_pkcs_and_oaep_wrap_an_aes_key_that_unwraps_to_the_same_key() {
    let t = shared().token("rsa wrap");
    let s = t.login_user();
    let original = ok(
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(32.into()),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
            ],
        ),
        "C_GenerateKey(extractable AES-256)",
    );
    let block: Vec<u8> = (1..=16).collect();
    let want = ok(
        s.encrypt(&Mechanism::AesEcb, original, &block),
        "C_Encrypt(original)",
    );
    let (public, private) = ok(
        s.generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::ModulusBits(2048.into()),
                Attribute::Wrap(true),
            ],
            &[Attribute::Token(true), Attribute::Unwrap(true)],
        ),
        "C_GenerateKeyPair(RSA-2048 wrap/unwrap)",
    );
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    );
    for m in [Mechanism::RsaPkcs, Mechanism::RsaPkcsOaep(oaep)] {
        let wrapped = ok(s.wrap_key(&m, public, original), "C_WrapKey(RSA)");
        assert_eq!(wrapped.len(), 256);
        let unwrapped = ok(
            s.unwrap_key(
                &m,
                private,
                &wrapped,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Encrypt(true),
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                ],
            ),
            "C_UnwrapKey(RSA)",
        );
        assert_eq!(
            ok(
                s.encrypt(&Mechanism::AesEcb, unwrapped, &block),
                "C_Encrypt(unwrapped)"
            ),
            want
        );
    }
}

/// C_WrapKey of a private key (PKCS#8 inside AES-KWP) and C_UnwrapKey back: the unwrapped
/// EC key signs verifiably for the original public key; a template naming another key type
/// is CKR_TEMPLATE_INCONSISTENT.
#[test]
fn private_keys_wrap_with_kwp_and_unwrap_into_working_keys() {
    let t = shared().token("wrap private key");
    let s = t.login_user();
    let h = s.handle();
    let pair = keys::gen_ec(&s, Curve::P256, &[], &[Attribute::Extractable(true)]);
    let wrapper = create(h, kek(&[0x44; 32]), "KEK");
    let kwp = plain(CKM_AES_KEY_WRAP_KWP);
    let blob =
        wrap(h, &kwp, wrapper, pair.private.handle()).expect("C_WrapKey(EC private key, KWP)");
    let tmpl = || {
        Template::new()
            .ulong(CKA_CLASS, CKO_PRIVATE_KEY)
            .ulong(CKA_KEY_TYPE, CKK_EC)
            .bool(CKA_TOKEN, false)
            .bool(CKA_SIGN, true)
    };
    expect_rv(
        unwrap_key(
            h,
            &kwp,
            wrapper,
            &blob,
            &mut tmpl().ulong(CKA_KEY_TYPE, CKK_RSA),
        )
        .0,
        CKR_TEMPLATE_INCONSISTENT,
        "C_UnwrapKey of an EC key with CKA_KEY_TYPE=CKK_RSA",
    );
    let (rv, back) = unwrap_key(h, &kwp, wrapper, &blob, &mut tmpl());
    expect_rv(rv, CKR_OK, "C_UnwrapKey(EC private key)");
    let sig = sign_raw(h, &plain(CKM_ECDSA_SHA256), back, b"unwrapped").expect("C_Sign");
    let (_, public) = keys::ec_public_from_token(&s, pair.public);
    assert!(verify::ecdsa_verify_digest(
        &public,
        &verify::digest(openssl::hash::MessageDigest::sha256(), b"unwrapped"),
        &sig
    ));
    assert!(!attr_bool(h, back, CKA_LOCAL));
    assert!(!attr_bool(h, back, CKA_NEVER_EXTRACTABLE));
}

fn ecdh_value(
    s: &cryptoki::session::Session,
    private: cryptoki::object::ObjectHandle,
    peer_point: &[u8],
    template: &[Attribute],
) -> Vec<u8> {
    let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point);
    let k = ok(
        s.derive_key(&Mechanism::Ecdh1Derive(params), private, template),
        "C_DeriveKey(ECDH)",
    );
    keys::attr_bytes(s, k, AttributeType::Value)
}

/// rust-cryptoki derive_key and Java's SunPKCS11 ECDH: a secret derived with a minimal
/// template (class and key type only) is readable; both parties get the same 32 bytes on
/// P-256, equal to OpenSSL's; the peer point may be raw or DER-wrapped (CKA_EC_POINT as
/// stored, which is what rust-cryptoki passes).
#[test]
fn ecdh_derives_the_shared_secret_from_raw_or_der_points_with_a_minimal_template() {
    let t = shared().token("ecdh");
    let s = t.login_user();
    let a = keys::gen_ec(
        &s,
        Curve::P256,
        &[Attribute::Derive(true)],
        &[Attribute::Derive(true)],
    );
    let b = keys::gen_ec(
        &s,
        Curve::P256,
        &[Attribute::Derive(true)],
        &[Attribute::Derive(true)],
    );
    let minimal = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
    ];
    let b_der = keys::attr_bytes(&s, b.public, AttributeType::EcPoint);
    let a_der = keys::attr_bytes(&s, a.public, AttributeType::EcPoint);
    let b_raw = verify::der_octet_string_contents(&b_der).unwrap().to_vec();
    let ab = ecdh_value(&s, a.private, &b_raw, &minimal);
    assert_eq!(ab.len(), 32);
    assert_eq!(
        ecdh_value(&s, a.private, &b_der, &minimal),
        ab,
        "DER-wrapped peer point"
    );
    let ba = ecdh_value(
        &s,
        b.private,
        &a_der,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Token(false),
        ],
    );
    assert_eq!(ab, ba, "both sides derive the same secret");
    let peer = Curve::P256.generate();
    let ours = ecdh_value(&s, a.private, &verify::ec_point_bytes(&peer), &minimal);
    let (_, a_pub) = keys::ec_public_from_token(&s, a.public);
    let peer_pkey = openssl::pkey::PKey::from_ec_key(peer).unwrap();
    let a_pkey = openssl::pkey::PKey::from_ec_key(a_pub).unwrap();
    let mut deriver = openssl::derive::Deriver::new(&peer_pkey).unwrap();
    deriver.set_peer(&a_pkey).unwrap();
    assert_eq!(
        ours,
        deriver.derive_to_vec().unwrap(),
        "ECDH differs from OpenSSL"
    );
}

/// PKCS#11 (ECDH "rules about key sensitivity and extractability"): a derived key is not
/// local; CKA_ALWAYS_SENSITIVE follows the base key's and then the new CKA_SENSITIVE,
/// CKA_NEVER_EXTRACTABLE the base key's and then !CKA_EXTRACTABLE.
#[test]
fn derived_keys_inherit_always_sensitive_and_never_extractable_from_the_base() {
    let t = shared().token("derive bookkeeping");
    let s = t.login_user();
    let h = s.handle();
    let a = keys::gen_ec(
        &s,
        Curve::P256,
        &[],
        &[Attribute::Derive(true), Attribute::Extractable(false)],
    );
    assert!(attr_bool(h, a.private.handle(), CKA_ALWAYS_SENSITIVE));
    assert!(attr_bool(h, a.private.handle(), CKA_NEVER_EXTRACTABLE));
    let point = verify::ec_point_bytes(&Curve::P256.generate());
    let params = Ecdh1DeriveParams::new(EcKdf::null(), &point);
    let guarded = ok(
        s.derive_key(
            &Mechanism::Ecdh1Derive(params),
            a.private,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ],
        ),
        "C_DeriveKey(sensitive, unextractable)",
    )
    .handle();
    assert!(
        !attr_bool(h, guarded, CKA_LOCAL),
        "a derived key is not CKA_LOCAL"
    );
    assert!(
        attr_bool(h, guarded, CKA_ALWAYS_SENSITIVE),
        "CKA_ALWAYS_SENSITIVE"
    );
    assert!(
        attr_bool(h, guarded, CKA_NEVER_EXTRACTABLE),
        "CKA_NEVER_EXTRACTABLE"
    );
    let open = ok(
        s.derive_key(
            &Mechanism::Ecdh1Derive(params),
            a.private,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
            ],
        ),
        "C_DeriveKey(defaults)",
    )
    .handle();
    assert!(!attr_bool(h, open, CKA_ALWAYS_SENSITIVE));
    assert!(!attr_bool(h, open, CKA_NEVER_EXTRACTABLE));
}

/// ECDH with an X9.63 KDF into an AES key of CKA_VALUE_LEN bytes: both parties' keys
/// encrypt alike. Malformed ECDH parameters are CKR_MECHANISM_PARAM_INVALID.
#[test]
fn ecdh_with_a_kdf_derives_matching_aes_keys_and_rejects_bad_parameters() {
    let t = shared().token("ecdh kdf");
    let s = t.login_user();
    let h = s.handle();
    let a = keys::gen_ec(&s, Curve::P384, &[], &[Attribute::Derive(true)]);
    let b = keys::gen_ec(&s, Curve::P384, &[], &[Attribute::Derive(true)]);
    let aes = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(16.into()),
        Attribute::Encrypt(true),
    ];
    let point = |k| {
        let der = keys::attr_bytes(&s, k, AttributeType::EcPoint);
        verify::der_octet_string_contents(&der).unwrap().to_vec()
    };
    let (pa, pb) = (point(a.public), point(b.public));
    let ka = ok(
        s.derive_key(
            &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::sha256(b"conformance"), &pb)),
            a.private,
            &aes,
        ),
        "C_DeriveKey(ECDH, SHA256 KDF)",
    );
    let kb = ok(
        s.derive_key(
            &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::sha256(b"conformance"), &pa)),
            b.private,
            &aes,
        ),
        "C_DeriveKey(ECDH, SHA256 KDF)",
    );
    assert_eq!(keys::attr_ulong(&s, ka, AttributeType::ValueLen), 16);
    let block = [0x42u8; 16];
    assert_eq!(
        ok(s.encrypt(&Mechanism::AesEcb, ka, &block), "C_Encrypt"),
        ok(s.encrypt(&Mechanism::AesEcb, kb, &block), "C_Encrypt")
    );
    let mut out_tmpl = Template::new()
        .ulong(CKA_CLASS, CKO_SECRET_KEY)
        .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    let mut short = [0u8; 4];
    expect_rv(
        derive_key(
            h,
            &raw::mech_with_bytes(CKM_ECDH1_DERIVE, &mut short),
            a.private.handle(),
            &mut out_tmpl,
        )
        .0,
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_ECDH1_DERIVE with a 4-byte parameter",
    );
    expect_rv(
        derive_key(
            h,
            &plain(CKM_ECDH1_DERIVE),
            a.private.handle(),
            &mut out_tmpl,
        )
        .0,
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_ECDH1_DERIVE without parameters",
    );
    let mut pb_copy = pb.clone();
    let mut bad_kdf = CK_ECDH1_DERIVE_PARAMS {
        kdf: 0x7777,
        ulSharedDataLen: 0,
        pSharedData: null_mut(),
        ulPublicDataLen: pb_copy.len() as CK_ULONG,
        pPublicData: pb_copy.as_mut_ptr(),
    };
    expect_rv(
        derive_key(
            h,
            &raw::mech_with(CKM_ECDH1_DERIVE, &mut bad_kdf),
            a.private.handle(),
            &mut out_tmpl,
        )
        .0,
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_ECDH1_DERIVE with kdf 0x7777",
    );
}

/// pkcs11test KeyPairTest fixture and ReadWriteSessionTest.CreateCopyDestroyObject's spirit:
/// a R/W public session may create public *token* objects (PKCS#11 §5 session states: "R/W
/// Public Session: read/write access to all public objects"), data objects and RSA key
/// pairs alike — pkcs11test's KeyPairTest makes its CKA_TOKEN=TRUE, CKA_PRIVATE=FALSE pair
/// without logging in.
#[test]
#[ignore = "hsmux: C_GenerateKey/C_GenerateKeyPair of CKA_TOKEN=TRUE, CKA_PRIVATE=FALSE keys in a R/W public session return CKR_USER_NOT_LOGGED_IN (C_CreateObject of a public token data object works)"]
fn public_token_objects_can_be_created_without_login() {
    let t = shared().token("public token objects");
    let s = t.rw_session();
    let h = s.handle();
    let (rv, d) = create_object(
        h,
        &mut data_object("public token data", b"app", b"v")
            .bool(CKA_TOKEN, true)
            .bool(CKA_PRIVATE, false),
    );
    expect_rv(
        rv,
        CKR_OK,
        "C_CreateObject(public token data object) in a R/W public session",
    );
    expect_rv(destroy_object(h, d), CKR_OK, "C_DestroyObject");
    let mut secret = Template::new()
        .bool(CKA_TOKEN, true)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_VALUE_LEN, 16);
    let (rv, k) = generate_key(h, &plain(CKM_AES_KEY_GEN), &mut secret);
    let secret_rv = rv;
    if rv == CKR_OK {
        destroy_object(h, k);
    }
    let mut public = Template::new()
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_TOKEN, true)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_MODULUS_BITS, 1024)
        .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]);
    let mut private = Template::new()
        .bool(CKA_DECRYPT, true)
        .bool(CKA_TOKEN, true)
        .bool(CKA_PRIVATE, false);
    let (rv, p, k) = generate_key_pair(
        h,
        &plain(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &mut public,
        &mut private,
    );
    expect_rv(
        secret_rv,
        CKR_OK,
        "C_GenerateKey(public token AES key) in a R/W public session",
    );
    expect_rv(
        rv,
        CKR_OK,
        "C_GenerateKeyPair(public token pair) in a R/W public session",
    );
    for o in [p, k] {
        expect_rv(destroy_object(h, o), CKR_OK, "C_DestroyObject");
    }
}

/// pkcs11test KeyPairTest.EncryptDecrypt (RSA-1024 pair made in a public R/W session,
/// CKM_RSA_PKCS, decrypted into a buffer exactly as long as the plaintext; session objects
/// here, see above for token ones), ReadWriteSessionTest.PublicExponent4Bytes and
/// AsymmetricTokenKeyPair.
#[test]
fn rsa_pkcs_encryption_round_trips_into_an_exact_buffer_and_keygen_edge_templates() {
    let t = shared().token("rsa keypair");
    let s = t.rw_session();
    let h = s.handle();
    let mut public = Template::new()
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_MODULUS_BITS, 1024)
        .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]);
    let mut private = Template::new()
        .bool(CKA_DECRYPT, true)
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, false);
    let (rv, p, k) = generate_key_pair(
        h,
        &plain(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &mut public,
        &mut private,
    );
    expect_rv(rv, CKR_OK, "C_GenerateKeyPair(public session objects)");
    let pt = b"0123456789";
    let ct = encrypt_raw(h, &plain(CKM_RSA_PKCS), p, pt).expect("C_Encrypt(CKM_RSA_PKCS)");
    assert_eq!(ct.len(), 128);
    expect_rv(
        raw::init(Op::Decrypt, h, &plain(CKM_RSA_PKCS), k),
        CKR_OK,
        "C_DecryptInit",
    );
    let r = raw::decrypt(h, &ct, Out::Buf(pt.len()));
    expect_rv(r.rv, CKR_OK, "C_Decrypt into a 10-byte buffer");
    assert_eq!(r.data, pt);
    for o in [p, k] {
        expect_rv(destroy_object(h, o), CKR_OK, "C_DestroyObject");
    }

    let mut public = Template::new()
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_MODULUS_BITS, 1024)
        .bytes(CKA_PUBLIC_EXPONENT, &[0, 1, 0, 1]);
    let mut private = Template::new()
        .bool(CKA_DECRYPT, true)
        .bool(CKA_PRIVATE, false);
    expect_rv(
        generate_key_pair(
            h,
            &plain(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &mut public,
            &mut private,
        )
        .0,
        CKR_OK,
        "C_GenerateKeyPair with public exponent 00 01 00 01",
    );

    // The token half needs no login in pkcs11test; that is checked separately above.
    let _user = t.login_user();
    let mut public = Template::new()
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_MODULUS_BITS, 1024)
        .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]);
    let mut private = Template::new()
        .bool(CKA_DECRYPT, true)
        .bool(CKA_TOKEN, true)
        .bool(CKA_PRIVATE, false);
    expect_rv_in(
        generate_key_pair(
            h,
            &plain(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &mut public,
            &mut private,
        )
        .0,
        &[CKR_OK, CKR_TEMPLATE_INCONSISTENT],
        "C_GenerateKeyPair with a token private half and a session public half",
    );
}

/// rust-cryptoki encrypt_decrypt and rsa_pkcs_oaep_{empty, with_data}: PKCS#1 v1.5 and OAEP
/// (with and without a label) round trip; CKM_RSA_PKCS interoperates with OpenSSL; raw
/// CKM_RSA_X_509 round-trips a full-width block.
#[test]
fn rsa_encryption_mechanisms_round_trip_and_interoperate() {
    let t = shared().token("rsa encryption");
    let s = t.login_user();
    let h = s.handle();
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let private = keys::import_rsa_private(&s, &rsa, &[]).handle();
    let public = keys::import_rsa_public(&s, &rsa, &[]).handle();
    let ct =
        encrypt_raw(h, &plain(CKM_RSA_PKCS), public, b"Hello").expect("C_Encrypt(CKM_RSA_PKCS)");
    let mut out = vec![0u8; 256];
    let n = rsa
        .private_decrypt(&ct, &mut out, openssl::rsa::Padding::PKCS1)
        .unwrap();
    assert_eq!(
        &out[..n],
        b"Hello",
        "OpenSSL opens the module's PKCS#1 v1.5 ciphertext"
    );
    let mut theirs = vec![0u8; 256];
    let n = rsa
        .public_encrypt(b"from openssl", &mut theirs, openssl::rsa::Padding::PKCS1)
        .unwrap();
    assert_eq!(
        decrypt_raw(h, &plain(CKM_RSA_PKCS), private, &theirs[..n]),
        Ok(b"from openssl".to_vec())
    );
    let mut label = [1u8, 2, 3, 4, 5, 6, 7, 8];
    for with_label in [false, true] {
        let mut p = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA_1,
            mgf: CKG_MGF1_SHA1,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: if with_label {
                label.as_mut_ptr().cast()
            } else {
                null_mut()
            },
            ulSourceDataLen: if with_label { 8 } else { 0 },
        };
        let m = raw::mech_with(CKM_RSA_PKCS_OAEP, &mut p);
        let ct = encrypt_raw(h, &m, public, b"Hello").expect("C_Encrypt(OAEP)");
        assert_eq!(
            decrypt_raw(h, &m, private, &ct),
            Ok(b"Hello".to_vec()),
            "OAEP label {with_label}"
        );
    }
    let mut block = verify::random_bytes(256);
    block[0] = 0;
    let ct =
        encrypt_raw(h, &plain(CKM_RSA_X_509), public, &block).expect("C_Encrypt(CKM_RSA_X_509)");
    assert_eq!(ct.len(), 256);
    assert_eq!(
        decrypt_raw(h, &plain(CKM_RSA_X_509), private, &ct),
        Ok(block)
    );
}

/// Generated keys record their provenance: CKA_LOCAL and CKA_KEY_GEN_MECHANISM; the
/// one-way CKA_SENSITIVE/CKA_EXTRACTABLE switches never make CKA_ALWAYS_SENSITIVE or
/// CKA_NEVER_EXTRACTABLE true after the fact, and a copy keeps all four.
#[test]
fn always_sensitive_and_never_extractable_never_turn_true_later() {
    let t = shared().token("provenance bookkeeping");
    let s = t.login_user();
    let h = s.handle();
    let key = keys::gen_aes(
        &s,
        16,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    )
    .handle();
    assert!(attr_bool(h, key, CKA_LOCAL));
    assert_eq!(attr_ulong(h, key, CKA_KEY_GEN_MECHANISM), CKM_AES_KEY_GEN);
    assert!(!attr_bool(h, key, CKA_ALWAYS_SENSITIVE));
    assert!(!attr_bool(h, key, CKA_NEVER_EXTRACTABLE));
    expect_rv(
        raw::set_attribute(h, key, CKA_SENSITIVE, &[CK_TRUE]),
        CKR_OK,
        "CKA_SENSITIVE→TRUE",
    );
    expect_rv(
        raw::set_attribute(h, key, CKA_EXTRACTABLE, &[CK_FALSE]),
        CKR_OK,
        "CKA_EXTRACTABLE→FALSE",
    );
    assert!(
        !attr_bool(h, key, CKA_ALWAYS_SENSITIVE),
        "CKA_ALWAYS_SENSITIVE became TRUE"
    );
    assert!(
        !attr_bool(h, key, CKA_NEVER_EXTRACTABLE),
        "CKA_NEVER_EXTRACTABLE became TRUE"
    );
    let (rv, copy) = copy_object(h, key, &mut Template::new());
    expect_rv(rv, CKR_OK, "C_CopyObject");
    for a in [
        CKA_SENSITIVE,
        CKA_EXTRACTABLE,
        CKA_ALWAYS_SENSITIVE,
        CKA_NEVER_EXTRACTABLE,
        CKA_LOCAL,
    ] {
        assert_eq!(attr_bool(h, copy, a), attr_bool(h, key, a), "copy's {a:#x}");
    }
    let ec = keys::gen_ec(&s, Curve::P256, &[], &[]);
    assert_eq!(
        attr_ulong(h, ec.private.handle(), CKA_KEY_GEN_MECHANISM),
        CKM_EC_KEY_PAIR_GEN
    );
    assert_eq!(
        attr_ulong(h, ec.public.handle(), CKA_KEY_GEN_MECHANISM),
        CKM_EC_KEY_PAIR_GEN
    );
}
