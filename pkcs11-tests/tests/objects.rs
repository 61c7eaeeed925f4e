//! Object management: C_CreateObject, C_CopyObject, C_DestroyObject, C_GetObjectSize,
//! C_GetAttributeValue, C_SetAttributeValue, C_FindObjects*; visibility and
//! sensitivity rules.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass};
use cryptoki_sys::*;
use hsmux_tests::keys::{self, attr_bool, attr_bytes, attr_ulong, data_template, merge};
use hsmux_tests::raw::{self, AttrQuery};
use hsmux_tests::verify::{self, Curve};
use hsmux_tests::*;
use openssl::rsa::Rsa;

#[test]
fn data_object_round_trips_label_application_and_value() {
    let t = shared().token("data_object_round_trip");
    let s = t.login_user();
    let h = ok(
        s.create_object(&data_template(
            "a-data-object",
            b"\x00\x01payload\xff",
            false,
        )),
        "C_CreateObject(CKO_DATA)",
    );
    assert_eq!(attr_ulong(&s, h, AttributeType::Class), CKO_DATA);
    assert_eq!(attr_bytes(&s, h, AttributeType::Label), b"a-data-object");
    assert_eq!(
        attr_bytes(&s, h, AttributeType::Application),
        b"hsmux-tests"
    );
    assert_eq!(
        attr_bytes(&s, h, AttributeType::Value),
        b"\x00\x01payload\xff"
    );
    assert!(!attr_bool(&s, h, AttributeType::Token), "CKA_TOKEN");
    assert!(!attr_bool(&s, h, AttributeType::Private), "CKA_PRIVATE");
}

#[test]
fn certificate_object_round_trips_value_subject_issuer_and_serial() {
    let t = shared().token("certificate_round_trip");
    let s = t.login_user();
    let cert = verify::self_signed_cert("hsmux test cert");
    let h = ok(
        s.create_object(&keys::certificate_template(&cert, "a-cert")),
        "C_CreateObject(CKO_CERTIFICATE)",
    );
    assert_eq!(attr_ulong(&s, h, AttributeType::Class), CKO_CERTIFICATE);
    assert_eq!(attr_ulong(&s, h, AttributeType::CertificateType), CKC_X_509);
    assert_eq!(attr_bytes(&s, h, AttributeType::Value), cert.der);
    assert_eq!(attr_bytes(&s, h, AttributeType::Subject), cert.subject);
    assert_eq!(attr_bytes(&s, h, AttributeType::Issuer), cert.issuer);
    assert_eq!(attr_bytes(&s, h, AttributeType::SerialNumber), cert.serial);
    let found = keys::find(
        &s,
        &[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Subject(cert.subject.clone()),
        ],
    );
    assert_eq!(found, vec![h], "certificate found by subject");
}

#[test]
fn aes_key_object_reports_class_key_type_and_value_len() {
    let t = shared().token("aes_object_attrs");
    let s = t.login_user();
    let h = keys::create_aes(&s, &[0x11; 32], &[]);
    assert_eq!(attr_ulong(&s, h, AttributeType::Class), CKO_SECRET_KEY);
    assert_eq!(attr_ulong(&s, h, AttributeType::KeyType), CKK_AES);
    assert_eq!(attr_ulong(&s, h, AttributeType::ValueLen), 32);
    assert!(
        !attr_bool(&s, h, AttributeType::Local),
        "imported key is not CKA_LOCAL"
    );
}

#[test]
fn imported_ec_private_key_signs_verifiably_with_openssl() {
    let t = shared().token("import_ec_private");
    let s = t.login_user();
    for curve in Curve::ALL {
        let key = curve.generate();
        let private = keys::import_ec_private(&s, curve, &key, &[]);
        let data = b"imported EC key signs this";
        let sig = ok(
            s.sign(&Mechanism::EcdsaSha256, private, data),
            "C_Sign(CKM_ECDSA_SHA256)",
        );
        assert_eq!(
            sig.len(),
            2 * curve.field_len(),
            "{curve:?} signature length"
        );
        let public = openssl::ec::EcKey::from_public_key(key.group(), key.public_key()).unwrap();
        assert!(
            verify::ecdsa_verify_digest(
                &public,
                &verify::digest(openssl::hash::MessageDigest::sha256(), data),
                &sig
            ),
            "OpenSSL rejects the signature of the imported {curve:?} key"
        );
    }
}

#[test]
fn imported_rsa_private_key_signs_verifiably_with_openssl() {
    let t = shared().token("import_rsa_private");
    let s = t.login_user();
    let rsa = Rsa::generate(2048).unwrap();
    let private = keys::import_rsa_private(&s, &rsa, &[]);
    let data = b"imported RSA key signs this";
    let sig = ok(
        s.sign(&Mechanism::Sha256RsaPkcs, private, data),
        "C_Sign(CKM_SHA256_RSA_PKCS)",
    );
    let public = verify::rsa_public_key(&rsa.n().to_vec(), &rsa.e().to_vec());
    assert!(
        verify::rsa_verify_message(
            &public,
            cryptoki::mechanism::MechanismType::SHA256,
            None,
            data,
            &sig
        ),
        "OpenSSL rejects the imported RSA key's signature"
    );
}

#[test]
fn imported_public_keys_report_their_public_attributes() {
    let t = shared().token("import_public_keys");
    let s = t.login_user();
    let ec = Curve::P384.generate();
    let h = keys::import_ec_public(&s, Curve::P384, &ec, &[]);
    assert_eq!(attr_ulong(&s, h, AttributeType::Class), CKO_PUBLIC_KEY);
    assert_eq!(attr_ulong(&s, h, AttributeType::KeyType), CKK_EC);
    assert_eq!(
        attr_bytes(&s, h, AttributeType::EcParams),
        Curve::P384.params()
    );
    assert_eq!(
        attr_bytes(&s, h, AttributeType::EcPoint),
        verify::der_octet_string(&verify::ec_point_bytes(&ec))
    );
    let rsa = Rsa::generate(2048).unwrap();
    let h = keys::import_rsa_public(&s, &rsa, &[]);
    assert_eq!(attr_ulong(&s, h, AttributeType::KeyType), CKK_RSA);
    assert_eq!(attr_bytes(&s, h, AttributeType::Modulus), rsa.n().to_vec());
    assert_eq!(attr_ulong(&s, h, AttributeType::ModulusBits), 2048);
}

#[test]
fn sensitive_private_key_value_is_unavailable_while_other_attributes_are_filled() {
    let t = shared().token("sensitive_value_hidden");
    let s = t.login_user();
    let key = Curve::P256.generate();
    let h = keys::import_ec_private(&s, Curve::P256, &key, &[Attribute::Label(b"sens".to_vec())]);
    let mut q = vec![
        AttrQuery::read(CKA_LABEL, 64),
        AttrQuery::read(CKA_VALUE, 256),
        AttrQuery::read(CKA_KEY_TYPE, 8),
    ];
    let rv = raw::get_attributes(s.handle(), h.handle(), &mut q);
    expect_rv(
        rv,
        CKR_ATTRIBUTE_SENSITIVE,
        "C_GetAttributeValue(CKA_VALUE of sensitive key)",
    );
    assert!(
        q[1].unavailable(),
        "CKA_VALUE length must be CK_UNAVAILABLE_INFORMATION"
    );
    assert_eq!(q[0].value(), Some(&b"sens"[..]), "CKA_LABEL still filled");
    assert_eq!(
        q[2].value(),
        Some(&raw::ulong_bytes(CKK_EC)[..]),
        "CKA_KEY_TYPE still filled"
    );
    // A length query must not leak either.
    let mut q = vec![AttrQuery::len_of(CKA_VALUE)];
    expect_rv(
        raw::get_attributes(s.handle(), h.handle(), &mut q),
        CKR_ATTRIBUTE_SENSITIVE,
        "length query of CKA_VALUE of a sensitive key",
    );
    assert!(q[0].unavailable());
}

#[test]
fn sensitive_rsa_private_components_are_all_unavailable() {
    let t = shared().token("sensitive_rsa_parts");
    let s = t.login_user();
    let rsa = Rsa::generate(2048).unwrap();
    let h = keys::import_rsa_private(&s, &rsa, &[]);
    for kind in [
        CKA_PRIVATE_EXPONENT,
        CKA_PRIME_1,
        CKA_PRIME_2,
        CKA_EXPONENT_1,
        CKA_EXPONENT_2,
        CKA_COEFFICIENT,
    ] {
        let mut q = vec![AttrQuery::read(kind, 1024)];
        expect_rv(
            raw::get_attributes(s.handle(), h.handle(), &mut q),
            CKR_ATTRIBUTE_SENSITIVE,
            &format!("C_GetAttributeValue({kind:#x})"),
        );
        assert!(q[0].unavailable(), "{kind:#x} must be unavailable");
    }
    assert_eq!(
        attr_bytes(&s, h, AttributeType::Modulus),
        rsa.n().to_vec(),
        "the modulus of a private key is public"
    );
}

#[test]
fn non_extractable_secret_key_value_is_unavailable() {
    let t = shared().token("unextractable_value_hidden");
    let s = t.login_user();
    let h = keys::create_aes(
        &s,
        &[0x5a; 16],
        &[Attribute::Sensitive(false), Attribute::Extractable(false)],
    );
    let mut q = vec![
        AttrQuery::read(CKA_VALUE, 64),
        AttrQuery::read(CKA_VALUE_LEN, 8),
    ];
    expect_rv(
        raw::get_attributes(s.handle(), h.handle(), &mut q),
        CKR_ATTRIBUTE_SENSITIVE,
        "CKA_VALUE of a CKA_EXTRACTABLE=FALSE key",
    );
    assert!(q[0].unavailable());
    assert_eq!(q[1].value(), Some(&raw::ulong_bytes(16)[..]));
}

#[test]
fn extractable_non_sensitive_secret_key_value_is_returned() {
    let t = shared().token("extractable_value_shown");
    let s = t.login_user();
    let value = verify::random_bytes(32);
    let h = keys::create_aes(
        &s,
        &value,
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    assert_eq!(attr_bytes(&s, h, AttributeType::Value), value);
}

#[test]
fn invalid_attribute_type_is_unavailable_while_other_attributes_are_filled() {
    let t = shared().token("attr_type_invalid");
    let s = t.login_user();
    let h = ok(
        s.create_object(&data_template("typeinv", b"v", false)),
        "C_CreateObject",
    );
    let mut q = vec![
        AttrQuery::read(CKA_LABEL, 64),
        AttrQuery::read(CKA_MODULUS, 64),
        AttrQuery::read(CKA_VENDOR_DEFINED | 0x4242, 64),
        AttrQuery::read(CKA_VALUE, 64),
    ];
    expect_rv(
        raw::get_attributes(s.handle(), h.handle(), &mut q),
        CKR_ATTRIBUTE_TYPE_INVALID,
        "C_GetAttributeValue with attributes the object lacks",
    );
    assert!(q[1].unavailable(), "CKA_MODULUS of a data object");
    assert!(q[2].unavailable(), "unknown vendor attribute");
    assert_eq!(
        q[0].value(),
        Some(&b"typeinv"[..]),
        "CKA_LABEL still filled"
    );
    assert_eq!(q[3].value(), Some(&b"v"[..]), "CKA_VALUE still filled");
}

#[test]
fn too_small_attribute_buffer_returns_buffer_too_small_while_other_attributes_are_filled() {
    let t = shared().token("attr_buffer_small");
    let s = t.login_user();
    let h = ok(
        s.create_object(&data_template("a-long-label", b"value", false)),
        "C_CreateObject",
    );
    let mut q = vec![
        AttrQuery::read(CKA_LABEL, 3),
        AttrQuery::read(CKA_VALUE, 64),
    ];
    expect_rv(
        raw::get_attributes(s.handle(), h.handle(), &mut q),
        CKR_BUFFER_TOO_SMALL,
        "C_GetAttributeValue with a 3-byte label buffer",
    );
    assert!(
        q[0].unavailable(),
        "too-small entry must be CK_UNAVAILABLE_INFORMATION"
    );
    assert_eq!(q[1].value(), Some(&b"value"[..]), "CKA_VALUE still filled");
}

#[test]
fn null_attribute_buffer_returns_the_value_length() {
    let t = shared().token("attr_length_query");
    let s = t.login_user();
    let h = ok(
        s.create_object(&data_template("twelve-bytes", b"0123456789", false)),
        "C_CreateObject",
    );
    let mut q = vec![AttrQuery::len_of(CKA_LABEL), AttrQuery::len_of(CKA_VALUE)];
    expect_rv(
        raw::get_attributes(s.handle(), h.handle(), &mut q),
        CKR_OK,
        "C_GetAttributeValue length query",
    );
    assert_eq!(q[0].len, 12);
    assert_eq!(q[1].len, 10);
}

#[test]
fn private_objects_are_invisible_before_login() {
    let t = shared().token("private_invisible");
    let (private, _public) = {
        let s = t.login_user();
        let private = ok(
            s.create_object(&merge(
                data_template("private-obj", b"secret", true),
                &[Attribute::Token(true)],
            )),
            "C_CreateObject(private token data)",
        );
        let public = ok(
            s.create_object(&merge(
                data_template("public-obj", b"open", false),
                &[Attribute::Token(true)],
            )),
            "C_CreateObject(public token data)",
        );
        (private, public)
    };
    let s = t.rw_session();
    let found = keys::find(&s, &[Attribute::Class(ObjectClass::DATA)]);
    assert!(
        !found.contains(&private),
        "a private object is visible before login"
    );
    let labels: Vec<Vec<u8>> = found
        .iter()
        .map(|h| attr_bytes(&s, *h, AttributeType::Label))
        .collect();
    assert_eq!(
        labels,
        vec![b"public-obj".to_vec()],
        "only the public object is found"
    );
    assert_eq!(found.len(), 1, "exactly the public object is found");
    let mut q = vec![AttrQuery::read(CKA_VALUE, 64)];
    let rv = raw::get_attributes(s.handle(), private.handle(), &mut q);
    assert_ne!(
        rv, CKR_OK,
        "reading a private object's value before login must fail"
    );
    assert!(
        q[0].value() != Some(&b"secret"[..]),
        "private value leaked before login"
    );
    ok(
        s.login(cryptoki::session::UserType::User, Some(&pin(USER_PIN))),
        "C_Login",
    );
    let found = keys::find(&s, &[Attribute::Class(ObjectClass::DATA)]);
    assert_eq!(found.len(), 2, "both objects visible after login");
}

#[test]
fn creating_private_object_without_login_returns_user_not_logged_in() {
    let t = shared().token("private_create_no_login");
    let s = t.rw_session();
    expect_rv(
        s.create_object(&data_template("p", b"x", true)),
        CKR_USER_NOT_LOGGED_IN,
        "C_CreateObject(CKA_PRIVATE=TRUE) while public",
    );
}

#[test]
fn read_only_session_cannot_create_token_object_but_can_create_session_object() {
    let t = shared().token("ro_session_create");
    let _login = t.login_user();
    let ro = t.ro_session();
    expect_rv(
        ro.create_object(&merge(
            data_template("tok", b"x", false),
            &[Attribute::Token(true)],
        )),
        CKR_SESSION_READ_ONLY,
        "C_CreateObject(CKA_TOKEN=TRUE) in a R/O session",
    );
    ok(
        ro.create_object(&data_template("sess", b"x", false)),
        "C_CreateObject(session object) in a R/O session",
    );
}

#[test]
fn read_only_session_cannot_destroy_or_modify_token_objects() {
    let t = shared().token("ro_session_modify");
    let rw = t.login_user();
    let h = ok(
        rw.create_object(&merge(
            data_template("tok", b"x", false),
            &[Attribute::Token(true)],
        )),
        "C_CreateObject",
    );
    let ro = t.ro_session();
    expect_rv(
        ro.update_attributes(h, &[Attribute::Label(b"changed".to_vec())]),
        CKR_SESSION_READ_ONLY,
        "C_SetAttributeValue on a token object in a R/O session",
    );
    expect_rv(
        ro.destroy_object(h),
        CKR_SESSION_READ_ONLY,
        "C_DestroyObject of a token object in a R/O session",
    );
}

#[test]
fn session_objects_are_shared_by_sessions_and_vanish_with_their_session() {
    let t = shared().token("session_object_lifetime");
    let a = t.login_user();
    let b = t.rw_session();
    let h = ok(
        a.create_object(&data_template("sess-obj", b"x", false)),
        "C_CreateObject(session object)",
    );
    let label = [Attribute::Label(b"sess-obj".to_vec())];
    assert_eq!(
        keys::find(&b, &label),
        vec![h],
        "visible from another session"
    );
    drop(a);
    assert!(
        keys::find(&b, &label).is_empty(),
        "session object must vanish when its session closes"
    );
}

#[test]
fn token_objects_outlive_the_session_that_created_them() {
    let t = shared().token("token_object_lifetime");
    let keep = t.login_user();
    {
        let a = t.rw_session();
        ok(
            a.create_object(&merge(
                data_template("tok-obj", b"x", false),
                &[Attribute::Token(true)],
            )),
            "C_CreateObject(token object)",
        );
    }
    assert_eq!(
        keys::find(&keep, &[Attribute::Label(b"tok-obj".to_vec())]).len(),
        1
    );
}

#[test]
fn destroyed_object_is_gone_and_its_handle_is_invalid() {
    let t = shared().token("destroy_object");
    let s = t.login_user();
    let h = ok(
        s.create_object(&data_template("doomed", b"x", false)),
        "C_CreateObject",
    );
    ok(s.destroy_object(h), "C_DestroyObject");
    assert!(keys::find(&s, &[Attribute::Label(b"doomed".to_vec())]).is_empty());
    expect_rv(
        s.get_attributes(h, &[AttributeType::Label]),
        CKR_OBJECT_HANDLE_INVALID,
        "C_GetAttributeValue on a destroyed object",
    );
    expect_rv(
        s.destroy_object(h),
        CKR_OBJECT_HANDLE_INVALID,
        "C_DestroyObject twice",
    );
}

#[test]
fn unknown_object_handle_returns_object_handle_invalid() {
    let t = shared().token("bogus_object_handle");
    let s = t.login_user();
    expect_rv(
        s.get_attributes(keys::bogus_handle(), &[AttributeType::Label]),
        CKR_OBJECT_HANDLE_INVALID,
        "C_GetAttributeValue",
    );
    expect_rv(
        s.update_attributes(keys::bogus_handle(), &[Attribute::Label(b"x".to_vec())]),
        CKR_OBJECT_HANDLE_INVALID,
        "C_SetAttributeValue",
    );
    expect_rv(
        s.destroy_object(keys::bogus_handle()),
        CKR_OBJECT_HANDLE_INVALID,
        "C_DestroyObject",
    );
    expect_rv(
        s.copy_object(keys::bogus_handle(), &[]),
        CKR_OBJECT_HANDLE_INVALID,
        "C_CopyObject",
    );
    expect_rv(
        raw::object_size(s.handle(), keys::bogus_handle().handle()).0,
        CKR_OBJECT_HANDLE_INVALID,
        "C_GetObjectSize",
    );
}

#[test]
fn copy_object_applies_template_and_leaves_original_unchanged() {
    let t = shared().token("copy_object");
    let s = t.login_user();
    let original = ok(
        s.create_object(&data_template("original", b"shared value", false)),
        "C_CreateObject",
    );
    let copy = ok(
        s.copy_object(original, &[Attribute::Label(b"the-copy".to_vec())]),
        "C_CopyObject",
    );
    assert_ne!(copy, original, "the copy is a new object");
    assert_eq!(attr_bytes(&s, copy, AttributeType::Label), b"the-copy");
    assert_eq!(attr_bytes(&s, copy, AttributeType::Value), b"shared value");
    assert_eq!(attr_bytes(&s, original, AttributeType::Label), b"original");
    ok(s.destroy_object(original), "C_DestroyObject(original)");
    assert_eq!(
        attr_bytes(&s, copy, AttributeType::Value),
        b"shared value",
        "the copy survives the original"
    );
}

#[test]
fn copied_key_is_usable_and_keeps_its_value() {
    let t = shared().token("copy_key");
    let s = t.login_user();
    let value = verify::random_bytes(32);
    let key = keys::create_generic_secret(&s, &value, &[]);
    let copy = ok(
        s.copy_object(
            key,
            &[Attribute::Token(true), Attribute::Label(b"copied".to_vec())],
        ),
        "C_CopyObject to a token object",
    );
    assert!(attr_bool(&s, copy, AttributeType::Token));
    let mac = ok(
        s.sign(&Mechanism::Sha256Hmac, copy, b"data"),
        "C_Sign with the copy",
    );
    assert_eq!(
        mac,
        verify::hmac(cryptoki::mechanism::MechanismType::SHA256, &value, b"data")
    );
}

#[test]
fn copy_object_cannot_make_a_sensitive_key_non_sensitive() {
    let t = shared().token("copy_unsensitive");
    let s = t.login_user();
    let key = keys::create_aes(
        &s,
        &[1u8; 16],
        &[Attribute::Sensitive(true), Attribute::Extractable(true)],
    );
    expect_rv(
        s.copy_object(key, &[Attribute::Sensitive(false)]),
        CKR_ATTRIBUTE_READ_ONLY,
        "C_CopyObject with CKA_SENSITIVE=FALSE of a sensitive key",
    );
    let copy = ok(
        s.copy_object(key, &[Attribute::Extractable(false)]),
        "C_CopyObject with CKA_EXTRACTABLE=FALSE (the allowed direction)",
    );
    assert!(!attr_bool(&s, copy, AttributeType::Extractable));
    assert!(attr_bool(&s, copy, AttributeType::Sensitive));
    expect_rv(
        s.copy_object(copy, &[Attribute::Extractable(true)]),
        CKR_ATTRIBUTE_READ_ONLY,
        "C_CopyObject with CKA_EXTRACTABLE=TRUE of a non-extractable key",
    );
}

#[test]
fn find_objects_matches_class_label_and_id() {
    let t = shared().token("find_by_template");
    let s = t.login_user();
    let a = keys::create_aes(
        &s,
        &[1u8; 16],
        &[Attribute::Label(b"k1".to_vec()), Attribute::Id(vec![1])],
    );
    let b = keys::create_aes(
        &s,
        &[2u8; 16],
        &[Attribute::Label(b"k2".to_vec()), Attribute::Id(vec![2])],
    );
    let d = ok(
        s.create_object(&data_template("k1", b"x", false)),
        "C_CreateObject",
    );
    let mut all = keys::find(&s, &[]);
    all.sort_by_key(|h| h.handle());
    let mut expected = vec![a, b, d];
    expected.sort_by_key(|h| h.handle());
    assert_eq!(all, expected, "empty template finds every visible object");
    assert_eq!(keys::find(&s, &[Attribute::Id(vec![2])]), vec![b]);
    let mut k1 = keys::find(&s, &[Attribute::Label(b"k1".to_vec())]);
    k1.sort_by_key(|h| h.handle());
    let mut ad = vec![a, d];
    ad.sort_by_key(|h| h.handle());
    assert_eq!(k1, ad);
    assert_eq!(
        keys::find(
            &s,
            &[
                Attribute::Label(b"k1".to_vec()),
                Attribute::Class(ObjectClass::SECRET_KEY)
            ]
        ),
        vec![a]
    );
    assert_eq!(
        keys::find(
            &s,
            &[Attribute::KeyType(KeyType::AES), Attribute::Id(vec![9])]
        ),
        vec![]
    );
}

#[test]
fn find_objects_in_batches_returns_each_match_once() {
    let t = shared().token("find_batches");
    let s = t.login_user();
    let mut created = Vec::new();
    for i in 0..7u8 {
        created.push(
            ok(
                s.create_object(&data_template("batch", &[i], false)),
                "C_CreateObject",
            )
            .handle(),
        );
    }
    let mut label = b"batch".to_vec();
    let mut template = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: label.as_mut_ptr().cast(),
        ulValueLen: label.len() as CK_ULONG,
    }];
    expect_rv(
        raw::find_init(s.handle(), &mut template),
        CKR_OK,
        "C_FindObjectsInit",
    );
    let mut got = Vec::new();
    loop {
        let (rv, batch) = raw::find(s.handle(), 3);
        expect_rv(rv, CKR_OK, "C_FindObjects(max 3)");
        assert!(batch.len() <= 3);
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    expect_rv(raw::find_final(s.handle()), CKR_OK, "C_FindObjectsFinal");
    got.sort();
    created.sort();
    assert_eq!(got, created);
}

#[test]
fn find_objects_init_while_active_returns_operation_active() {
    let t = shared().token("find_init_active");
    let s = t.login_user();
    expect_rv(
        raw::find_init(s.handle(), &mut []),
        CKR_OK,
        "C_FindObjectsInit",
    );
    expect_rv(
        raw::find_init(s.handle(), &mut []),
        CKR_OPERATION_ACTIVE,
        "second C_FindObjectsInit",
    );
    expect_rv(raw::find_final(s.handle()), CKR_OK, "C_FindObjectsFinal");
    expect_rv(
        raw::find_init(s.handle(), &mut []),
        CKR_OK,
        "C_FindObjectsInit after Final",
    );
    expect_rv(raw::find_final(s.handle()), CKR_OK, "C_FindObjectsFinal");
}

#[test]
fn find_objects_without_init_returns_operation_not_initialized() {
    let t = shared().token("find_no_init");
    let s = t.login_user();
    expect_rv(
        raw::find(s.handle(), 4).0,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_FindObjects without Init",
    );
    expect_rv(
        raw::find_final(s.handle()),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_FindObjectsFinal without Init",
    );
}

#[test]
fn get_object_size_reports_a_size() {
    let t = shared().token("object_size");
    let s = t.login_user();
    let h = ok(
        s.create_object(&data_template("sized", &[0u8; 100], false)),
        "C_CreateObject",
    );
    let (rv, size) = raw::object_size(s.handle(), h.handle());
    expect_rv(rv, CKR_OK, "C_GetObjectSize");
    assert!(
        size == CK_UNAVAILABLE_INFORMATION || size >= 100,
        "object with a 100-byte value reports size {size}"
    );
}

#[test]
fn set_attribute_value_changes_label_and_id_visibly_to_find() {
    let t = shared().token("set_label");
    let s = t.login_user();
    let h = keys::create_aes(&s, &[3u8; 16], &[Attribute::Label(b"before".to_vec())]);
    ok(
        s.update_attributes(
            h,
            &[
                Attribute::Label(b"after".to_vec()),
                Attribute::Id(vec![0xab, 0xcd]),
            ],
        ),
        "C_SetAttributeValue(CKA_LABEL, CKA_ID)",
    );
    assert_eq!(attr_bytes(&s, h, AttributeType::Label), b"after");
    assert_eq!(
        keys::find(&s, &[Attribute::Label(b"after".to_vec())]),
        vec![h]
    );
    assert_eq!(keys::find(&s, &[Attribute::Id(vec![0xab, 0xcd])]), vec![h]);
    assert!(keys::find(&s, &[Attribute::Label(b"before".to_vec())]).is_empty());
}

#[test]
fn set_attribute_on_non_modifiable_object_returns_attribute_read_only() {
    let t = shared().token("set_not_modifiable");
    let s = t.login_user();
    let h = ok(
        s.create_object(&merge(
            data_template("frozen", b"x", false),
            &[Attribute::Modifiable(false)],
        )),
        "C_CreateObject(CKA_MODIFIABLE=FALSE)",
    );
    // PKCS#11 3.0 also allows CKR_ACTION_PROHIBITED for a read-only object.
    expect_rv_in(
        s.update_attributes(h, &[Attribute::Label(b"thawed".to_vec())]),
        &[CKR_ATTRIBUTE_READ_ONLY, CKR_ACTION_PROHIBITED],
        "C_SetAttributeValue on a CKA_MODIFIABLE=FALSE object",
    );
    assert_eq!(attr_bytes(&s, h, AttributeType::Label), b"frozen");
}

#[test]
fn set_read_only_attributes_returns_attribute_read_only() {
    let t = shared().token("set_read_only_attrs");
    let s = t.login_user();
    let key = keys::gen_aes(&s, 16, &[]);
    let cases: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>, &str)> = vec![
        (CKA_CLASS, raw::ulong_bytes(CKO_DATA), "CKA_CLASS"),
        (
            CKA_KEY_TYPE,
            raw::ulong_bytes(CKK_GENERIC_SECRET),
            "CKA_KEY_TYPE",
        ),
        (CKA_LOCAL, raw::bool_bytes(false).to_vec(), "CKA_LOCAL"),
        (
            CKA_ALWAYS_SENSITIVE,
            raw::bool_bytes(false).to_vec(),
            "CKA_ALWAYS_SENSITIVE",
        ),
        (
            CKA_NEVER_EXTRACTABLE,
            raw::bool_bytes(false).to_vec(),
            "CKA_NEVER_EXTRACTABLE",
        ),
        (
            CKA_KEY_GEN_MECHANISM,
            raw::ulong_bytes(CKM_SHA256),
            "CKA_KEY_GEN_MECHANISM",
        ),
        (CKA_TOKEN, raw::bool_bytes(true).to_vec(), "CKA_TOKEN"),
        (CKA_PRIVATE, raw::bool_bytes(false).to_vec(), "CKA_PRIVATE"),
        (CKA_VALUE_LEN, raw::ulong_bytes(32), "CKA_VALUE_LEN"),
        (CKA_VALUE, vec![0u8; 16], "CKA_VALUE"),
    ];
    let mut wrong = Vec::new();
    for (kind, value, name) in cases {
        let rv = raw::set_attribute(s.handle(), key.handle(), kind, &value);
        if rv != CKR_ATTRIBUTE_READ_ONLY {
            wrong.push(format!(
                "{name}: expected CKR_ATTRIBUTE_READ_ONLY, got {}",
                rv_name(rv)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "C_SetAttributeValue:\n{}",
        wrong.join("\n")
    );
    assert_eq!(attr_ulong(&s, key, AttributeType::Class), CKO_SECRET_KEY);
}

#[test]
fn sensitive_can_be_set_true_but_never_back_to_false() {
    let t = shared().token("sensitive_one_way");
    let s = t.login_user();
    let h = keys::create_aes(&s, &[4u8; 16], &[Attribute::Sensitive(false)]);
    ok(
        s.update_attributes(h, &[Attribute::Sensitive(true)]),
        "CKA_SENSITIVE false -> true",
    );
    assert!(attr_bool(&s, h, AttributeType::Sensitive));
    expect_rv(
        s.update_attributes(h, &[Attribute::Sensitive(false)]),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_SENSITIVE true -> false",
    );
    assert!(attr_bool(&s, h, AttributeType::Sensitive));
    let mut q = vec![AttrQuery::read(CKA_VALUE, 64)];
    expect_rv(
        raw::get_attributes(s.handle(), h.handle(), &mut q),
        CKR_ATTRIBUTE_SENSITIVE,
        "CKA_VALUE once the key became sensitive",
    );
}

#[test]
fn extractable_can_be_set_false_but_never_back_to_true() {
    let t = shared().token("extractable_one_way");
    let s = t.login_user();
    let h = keys::create_aes(
        &s,
        &[5u8; 16],
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    ok(
        s.update_attributes(h, &[Attribute::Extractable(false)]),
        "CKA_EXTRACTABLE true -> false",
    );
    assert!(!attr_bool(&s, h, AttributeType::Extractable));
    expect_rv(
        s.update_attributes(h, &[Attribute::Extractable(true)]),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_EXTRACTABLE false -> true",
    );
    assert!(!attr_bool(&s, h, AttributeType::Extractable));
}

#[test]
fn create_object_without_class_returns_template_incomplete() {
    let t = shared().token("create_no_class");
    let s = t.login_user();
    expect_rv(
        s.create_object(&[Attribute::Token(false), Attribute::Label(b"x".to_vec())]),
        CKR_TEMPLATE_INCOMPLETE,
        "C_CreateObject without CKA_CLASS",
    );
    expect_rv(
        s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
        ]),
        CKR_TEMPLATE_INCOMPLETE,
        "C_CreateObject of an AES key without CKA_VALUE",
    );
}

#[test]
fn create_aes_key_with_invalid_length_is_rejected() {
    let t = shared().token("create_aes_bad_len");
    let s = t.login_user();
    expect_rv_in(
        s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(vec![0u8; 7]),
        ]),
        &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_TEMPLATE_INCONSISTENT],
        "C_CreateObject of a 7-byte AES key",
    );
}

#[test]
fn create_object_with_unknown_attribute_returns_attribute_type_invalid() {
    let t = shared().token("create_unknown_attr");
    let s = t.login_user();
    let mut template = data_template("x", b"y", false);
    template.push(Attribute::VendorDefined((
        AttributeType::VendorDefined(CKA_VENDOR_DEFINED | 0x7777),
        vec![1],
    )));
    expect_rv(
        s.create_object(&template),
        CKR_ATTRIBUTE_TYPE_INVALID,
        "C_CreateObject with an unknown vendor attribute",
    );
}

#[test]
fn ec_private_key_for_unsupported_curve_is_rejected() {
    let t = shared().token("create_ec_bad_curve");
    let s = t.login_user();
    // secp256k1
    let params = vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
    let template = merge(
        keys::ec_private_template(Curve::P256, &Curve::P256.generate()),
        &[Attribute::EcParams(params)],
    );
    expect_rv_in(
        s.create_object(&template),
        &[
            CKR_CURVE_NOT_SUPPORTED,
            CKR_ATTRIBUTE_VALUE_INVALID,
            CKR_DOMAIN_PARAMS_INVALID,
            CKR_TEMPLATE_INCONSISTENT,
        ],
        "C_CreateObject of an EC key on secp256k1",
    );
}

#[test]
fn object_handles_are_valid_in_every_session_of_the_same_login_state() {
    let t = shared().token("handles_across_sessions");
    let a = t.login_user();
    let b = t.ro_session();
    let h = ok(
        a.create_object(&merge(
            data_template("shared-handle", b"v", true),
            &[Attribute::Token(true)],
        )),
        "C_CreateObject",
    );
    assert_eq!(attr_bytes(&b, h, AttributeType::Label), b"shared-handle");
    assert_eq!(
        keys::find(&b, &[Attribute::Label(b"shared-handle".to_vec())]),
        vec![h]
    );
}

#[test]
fn non_copyable_object_cannot_be_copied() {
    let t = shared().token("not_copyable");
    let s = t.login_user();
    let h = ok(
        s.create_object(&merge(
            data_template("no-copy", b"v", false),
            &[Attribute::Copyable(false)],
        )),
        "C_CreateObject(CKA_COPYABLE=FALSE)",
    );
    expect_rv(
        s.copy_object(h, &[]),
        CKR_ACTION_PROHIBITED,
        "C_CopyObject of a CKA_COPYABLE=FALSE object",
    );
}

#[test]
fn non_destroyable_object_cannot_be_destroyed() {
    let t = shared().token("not_destroyable");
    let s = t.login_user();
    let h = ok(
        s.create_object(&merge(
            data_template("no-destroy", b"v", false),
            &[Attribute::Destroyable(false)],
        )),
        "C_CreateObject(CKA_DESTROYABLE=FALSE)",
    );
    expect_rv(
        s.destroy_object(h),
        CKR_ACTION_PROHIBITED,
        "C_DestroyObject of a CKA_DESTROYABLE=FALSE object",
    );
    assert_eq!(
        keys::find(&s, &[Attribute::Label(b"no-destroy".to_vec())]),
        vec![h]
    );
}

#[test]
fn non_extractable_key_cannot_be_wrapped_out() {
    let t = shared().token("wrap_unextractable");
    let s = t.login_user();
    let wrapping = keys::create_aes(&s, &[0x77; 16], &[Attribute::Wrap(true)]);
    let secret = keys::create_aes(
        &s,
        &[0x88; 32],
        &[Attribute::Extractable(false), Attribute::Sensitive(true)],
    );
    expect_rv_in(
        s.wrap_key(&Mechanism::AesKeyWrap, wrapping, secret),
        &[CKR_KEY_UNEXTRACTABLE, CKR_FUNCTION_NOT_SUPPORTED],
        "C_WrapKey of a CKA_EXTRACTABLE=FALSE key",
    );
}
