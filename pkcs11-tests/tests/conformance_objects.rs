//! Conformance: object management (create, copy, destroy, size, get/set attributes, find)
//! on the error paths pkcs11test (object.cc, cipher.cc, keypair.cc), the Rust `cryptoki`
//! suite and python-pkcs11 exercise. Most run in public (not logged-in) sessions, as
//! pkcs11test does: public session objects need no login.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki_sys::*;
use hsmux_tests::conformance::*;
use hsmux_tests::raw::{self, AttrQuery};
use hsmux_tests::*;
use std::ptr::null_mut;

const APP: &[u8] = b"conformance\0";

/// Two public session RSA-1024 key pairs' worth of template, as pkcs11test's KeyPair helper
/// builds them: label, usage flags and CKA_PRIVATE=FALSE on both halves.
fn public_rsa_pair(s: CK_SESSION_HANDLE, label: &[u8]) -> (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) {
    let mut public = Template::new()
        .bytes(CKA_LABEL, label)
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_MODULUS_BITS, 1024)
        .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]);
    let mut private = Template::new()
        .bytes(CKA_LABEL, label)
        .bool(CKA_DECRYPT, true)
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, false);
    let (rv, p, k) = generate_key_pair(
        s,
        &plain(CKM_RSA_PKCS_KEY_PAIR_GEN),
        &mut public,
        &mut private,
    );
    expect_rv(rv, CKR_OK, "C_GenerateKeyPair(public session objects)");
    (p, k)
}

fn public_secret(
    s: CK_SESSION_HANDLE,
    label: &[u8],
    gen: CK_MECHANISM_TYPE,
    len: CK_ULONG,
) -> CK_OBJECT_HANDLE {
    let mut t = Template::new()
        .bytes(CKA_LABEL, label)
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_DECRYPT, true)
        .bool(CKA_TOKEN, false)
        .bool(CKA_PRIVATE, false)
        .ulong(CKA_VALUE_LEN, len);
    let (rv, h) = generate_key(s, &plain(gen), &mut t);
    expect_rv(rv, CKR_OK, "C_GenerateKey(public session object)");
    h
}

/// pkcs11test ReadWriteSessionTest.CreateCopyDestroyObject: a copy made with an empty
/// template has every attribute of its original; changes to one never reach the other;
/// a copy may change CKA_VALUE; find and destroy see exactly the live copies.
#[test]
fn data_object_copies_are_independent_and_found_until_destroyed() {
    let t = shared().token("create copy destroy");
    let s = t.rw_session();
    let h = s.handle();
    let mut tmpl = data_object("OldLabel", APP, &[0xde, 0xad, 0xbe, 0xef]);
    let (rv, original) = create_object(h, &mut tmpl);
    expect_rv(rv, CKR_OK, "C_CreateObject(CKO_DATA) in a public session");
    let (rv, _) = raw::object_size(h, original);
    expect_rv(rv, CKR_OK, "C_GetObjectSize");

    // An empty template given as a real pointer with ulCount 0.
    let mut dummy = [CK_ATTRIBUTE::default()];
    let mut copy = CK_INVALID_HANDLE;
    // SAFETY: the module may read 0 entries of `dummy`; `copy` outlives the call.
    let rv = unsafe { f().C_CopyObject.unwrap()(h, original, dummy.as_mut_ptr(), 0, &mut copy) };
    expect_rv(rv, CKR_OK, "C_CopyObject with an empty template");
    assert_ne!(copy, original, "a copy is a new object");
    let (rv, _) = raw::object_size(h, copy);
    expect_rv(rv, CKR_OK, "C_GetObjectSize(copy)");
    for kind in [CKA_CLASS, CKA_TOKEN, CKA_APPLICATION, CKA_VALUE, CKA_LABEL] {
        assert_eq!(
            attr(h, copy, kind),
            attr(h, original, kind),
            "attribute {kind:#x} of the copy"
        );
    }
    assert_eq!(attr(h, copy, CKA_APPLICATION).as_deref(), Some(APP));

    let mut q = [AttrQuery::read(CKA_CERTIFICATE_TYPE, 256)];
    expect_rv(
        raw::get_attributes(h, copy, &mut q),
        CKR_ATTRIBUTE_TYPE_INVALID,
        "C_GetAttributeValue(CKA_CERTIFICATE_TYPE) of a data object",
    );
    assert!(
        q[0].unavailable(),
        "ulValueLen must be CK_UNAVAILABLE_INFORMATION"
    );

    expect_rv(
        raw::set_attribute(h, original, CKA_LABEL, b"NewLabel"),
        CKR_OK,
        "C_SetAttributeValue(CKA_LABEL)",
    );
    assert_eq!(
        attr(h, copy, CKA_LABEL).as_deref(),
        Some(&b"OldLabel"[..]),
        "copy unchanged"
    );
    assert_eq!(
        attr(h, original, CKA_LABEL).as_deref(),
        Some(&b"NewLabel"[..])
    );

    let (rv, second) = copy_object(
        h,
        original,
        &mut Template::new().bytes(CKA_VALUE, &[0xfa, 0xce, 0xfe, 0xed]),
    );
    expect_rv(rv, CKR_OK, "C_CopyObject changing CKA_VALUE");
    assert_eq!(
        attr(h, second, CKA_VALUE),
        Some(vec![0xfa, 0xce, 0xfe, 0xed])
    );

    let mut by_app = Template::new().bytes(CKA_APPLICATION, APP);
    let mut all = vec![original, copy, second];
    all.sort_unstable();
    assert_eq!(find_all(h, &mut by_app, 1), all);
    for gone in [second, copy, original] {
        expect_rv(destroy_object(h, gone), CKR_OK, "C_DestroyObject");
        all.retain(|x| *x != gone);
        assert_eq!(find_all(h, &mut by_app, 1), all, "after destroying {gone}");
    }
}

/// pkcs11test ReadWriteSessionTest.CreateObjectInvalid.
#[test]
fn create_object_with_no_or_incomplete_template_is_rejected() {
    let t = shared().token("create object invalid");
    let s = t.rw_session();
    let h = s.handle();
    let mut full = data_object("x", APP, b"v");
    expect_rv(
        create_object(BOGUS_SESSION, &mut full).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_CreateObject(unknown session)",
    );
    let mut out = CK_INVALID_HANDLE;
    // SAFETY: NULL template with a count is the input under test.
    let rv = unsafe { f().C_CreateObject.unwrap()(h, null_mut(), 4, &mut out) };
    expect_rv_in(
        rv,
        &[CKR_TEMPLATE_INCOMPLETE, CKR_ARGUMENTS_BAD],
        "C_CreateObject(NULL, 4)",
    );
    let n = 0;
    // SAFETY: a real template with ulCount 0.
    let rv = unsafe { f().C_CreateObject.unwrap()(h, full.ptr(), n, &mut out) };
    expect_rv_in(
        rv,
        &[CKR_TEMPLATE_INCOMPLETE, CKR_ARGUMENTS_BAD],
        "C_CreateObject(template, 0)",
    );
    expect_rv(
        create_object(h, &mut Template::new().bytes(CKA_VALUE, &[0xde, 0xad])).0,
        CKR_TEMPLATE_INCOMPLETE,
        "C_CreateObject with only CKA_VALUE",
    );
}

/// PKCS#11 3.0 §4.1.1 (rules for creating objects), with the template shapes independent
/// suites send: missing required attributes → CKR_TEMPLATE_INCOMPLETE; the same attribute
/// twice with different values → CKR_TEMPLATE_INCONSISTENT; a malformed value →
/// CKR_ATTRIBUTE_VALUE_INVALID; a read-only attribute → CKR_ATTRIBUTE_READ_ONLY; an
/// attribute the class does not have → CKR_ATTRIBUTE_TYPE_INVALID.
#[test]
fn inconsistent_incomplete_and_malformed_templates_get_their_own_codes() {
    let t = shared().token("template rules");
    let s = t.login_user();
    let h = s.handle();
    let aes = || aes_key(&[7u8; 16], &[CKA_ENCRYPT]);
    let mut problems = Vec::new();
    let mut check = |what: &str, mut tmpl: Template, allowed: &[CK_RV]| {
        let (rv, obj) = create_object(h, &mut tmpl);
        if !allowed.contains(&rv) {
            problems.push(format!(
                "{what}: got {}, expected one of {:?}",
                rv_name(rv),
                allowed.iter().map(|r| rv_name(*r)).collect::<Vec<_>>()
            ));
        }
        if rv == CKR_OK {
            destroy_object(h, obj);
        }
    };
    check(
        "secret key without CKA_KEY_TYPE",
        aes().without(CKA_KEY_TYPE),
        &[CKR_TEMPLATE_INCOMPLETE],
    );
    check(
        "secret key without CKA_VALUE",
        aes().without(CKA_VALUE),
        &[CKR_TEMPLATE_INCOMPLETE],
    );
    check(
        "RSA public key without CKA_MODULUS",
        Template::new()
            .ulong(CKA_CLASS, CKO_PUBLIC_KEY)
            .ulong(CKA_KEY_TYPE, CKK_RSA)
            .bool(CKA_TOKEN, false)
            .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]),
        &[CKR_TEMPLATE_INCOMPLETE],
    );
    check(
        "EC public key without CKA_EC_POINT",
        Template::new()
            .ulong(CKA_CLASS, CKO_PUBLIC_KEY)
            .ulong(CKA_KEY_TYPE, CKK_EC)
            .bool(CKA_TOKEN, false)
            .bytes(CKA_EC_PARAMS, &verify::Curve::P256.params()),
        &[CKR_TEMPLATE_INCOMPLETE],
    );
    // §4.1.1: "the template specifies two different values for the same attribute".
    check(
        "CKA_TOKEN given twice, FALSE then TRUE",
        aes().duplicate(CKA_TOKEN, &[CK_TRUE]),
        &[CKR_TEMPLATE_INCONSISTENT],
    );
    check(
        "CKA_CLASS of 4 bytes",
        aes().bytes(CKA_CLASS, &[4, 0, 0, 0]),
        &[CKR_ATTRIBUTE_VALUE_INVALID],
    );
    check(
        "CKA_ENCRYPT of 2 bytes",
        aes().bytes(CKA_ENCRYPT, &[1, 1]),
        &[CKR_ATTRIBUTE_VALUE_INVALID],
    );
    // An undefined class is an invalid value; some modules call it inconsistent.
    check(
        "CKA_CLASS 0x7777",
        aes().ulong(CKA_CLASS, 0x7777),
        &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_TEMPLATE_INCONSISTENT],
    );
    check(
        "CKA_KEY_TYPE 0x7777 on a secret key",
        aes().ulong(CKA_KEY_TYPE, 0x7777),
        &[CKR_ATTRIBUTE_VALUE_INVALID, CKR_TEMPLATE_INCONSISTENT],
    );
    for read_only in [CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE] {
        check(
            &format!("secret key template setting read-only {read_only:#x}"),
            aes().bool(read_only, false),
            &[CKR_ATTRIBUTE_READ_ONLY],
        );
    }
    check(
        "secret key template setting CKA_KEY_GEN_MECHANISM",
        aes().ulong(CKA_KEY_GEN_MECHANISM, CKM_AES_KEY_GEN),
        &[CKR_ATTRIBUTE_READ_ONLY],
    );
    // An attribute the class does not define is a type error (or an inconsistency).
    check(
        "data object with CKA_SENSITIVE",
        data_object("d", APP, b"v").bool(CKA_SENSITIVE, true),
        &[CKR_ATTRIBUTE_TYPE_INVALID, CKR_TEMPLATE_INCONSISTENT],
    );
    check(
        "data object with CKA_KEY_TYPE",
        data_object("d", APP, b"v").ulong(CKA_KEY_TYPE, CKK_AES),
        &[CKR_ATTRIBUTE_TYPE_INVALID, CKR_TEMPLATE_INCONSISTENT],
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// pkcs11test DataObjectTest.CopyDestroyObjectInvalid.
#[test]
fn size_copy_and_destroy_check_session_object_and_read_only_class() {
    let t = shared().token("copy destroy invalid");
    let s = t.rw_session();
    let h = s.handle();
    let obj = create(h, data_object("Label", APP, b"v"), "C_CreateObject");
    expect_rv(
        raw::object_size(BOGUS_SESSION, obj).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_GetObjectSize(unknown session)",
    );
    expect_rv(
        raw::object_size(h, BOGUS_OBJECT).0,
        CKR_OBJECT_HANDLE_INVALID,
        "C_GetObjectSize(unknown object)",
    );
    expect_rv(
        copy_object(
            h,
            obj,
            &mut Template::new().ulong(CKA_CLASS, CKO_PUBLIC_KEY),
        )
        .0,
        CKR_ATTRIBUTE_READ_ONLY,
        "C_CopyObject changing CKA_CLASS",
    );
    expect_rv(
        copy_object(h, BOGUS_OBJECT, &mut Template::new()).0,
        CKR_OBJECT_HANDLE_INVALID,
        "C_CopyObject(unknown object)",
    );
    expect_rv(
        destroy_object(BOGUS_SESSION, obj),
        CKR_SESSION_HANDLE_INVALID,
        "C_DestroyObject(unknown session)",
    );
    expect_rv(
        destroy_object(h, BOGUS_OBJECT),
        CKR_OBJECT_HANDLE_INVALID,
        "C_DestroyObject(unknown object)",
    );
    expect_rv(destroy_object(h, obj), CKR_OK, "C_DestroyObject");
    expect_rv(
        destroy_object(h, obj),
        CKR_OBJECT_HANDLE_INVALID,
        "C_DestroyObject twice",
    );
}

/// pkcs11test DataObjectTest.{GetMultipleAttributes, GetSetAttributeInvalid}.
#[test]
fn get_and_set_attribute_value_report_each_error_precisely() {
    let t = shared().token("get set invalid");
    let s = t.rw_session();
    let h = s.handle();
    let obj = create(
        h,
        data_object("Label", APP, &[0xde, 0xad, 0xbe, 0xef]),
        "C_CreateObject",
    );

    let mut q = [
        AttrQuery::read(CKA_LABEL, 128),
        AttrQuery::read(CKA_CLASS, 8),
        AttrQuery::read(CKA_TOKEN, 1),
        AttrQuery::read(CKA_VALUE, 128),
    ];
    expect_rv(
        raw::get_attributes(h, obj, &mut q),
        CKR_OK,
        "C_GetAttributeValue(4 attributes)",
    );
    assert_eq!(q[0].value(), Some(&b"Label"[..]));
    assert_eq!(q[1].value(), Some(&CKO_DATA.to_ne_bytes()[..]));
    assert_eq!(q[2].value(), Some(&[CK_FALSE][..]));
    assert_eq!(q[3].value(), Some(&[0xde, 0xad, 0xbe, 0xef][..]));

    let mut one = [AttrQuery::read(CKA_LABEL, 256)];
    expect_rv(
        raw::get_attributes(BOGUS_SESSION, obj, &mut one),
        CKR_SESSION_HANDLE_INVALID,
        "C_GetAttributeValue(unknown session)",
    );
    expect_rv(
        raw::get_attributes(h, BOGUS_OBJECT, &mut one),
        CKR_OBJECT_HANDLE_INVALID,
        "C_GetAttributeValue(unknown object)",
    );
    // SAFETY: NULL template with a count is the input under test.
    let rv = unsafe { f().C_GetAttributeValue.unwrap()(h, obj, null_mut(), 1) };
    expect_rv_in(
        rv,
        &[CKR_ARGUMENTS_BAD, CKR_TEMPLATE_INCOMPLETE],
        "C_GetAttributeValue(NULL, 1)",
    );
    let mut short = [AttrQuery::read(CKA_LABEL, 1)];
    expect_rv(
        raw::get_attributes(h, obj, &mut short),
        CKR_BUFFER_TOO_SMALL,
        "C_GetAttributeValue(CKA_LABEL into 1 byte)",
    );
    assert!(
        short[0].unavailable(),
        "a too-small entry's ulValueLen must be CK_UNAVAILABLE_INFORMATION, got {}",
        short[0].len
    );

    expect_rv(
        raw::set_attribute(BOGUS_SESSION, obj, CKA_LABEL, b"NewLabel"),
        CKR_SESSION_HANDLE_INVALID,
        "C_SetAttributeValue(unknown session)",
    );
    expect_rv(
        raw::set_attribute(h, BOGUS_OBJECT, CKA_LABEL, b"NewLabel"),
        CKR_OBJECT_HANDLE_INVALID,
        "C_SetAttributeValue(unknown object)",
    );
    expect_rv(
        raw::set_attribute(h, obj, CKA_CLASS, &CKO_PUBLIC_KEY.to_ne_bytes()),
        CKR_ATTRIBUTE_READ_ONLY,
        "C_SetAttributeValue(CKA_CLASS)",
    );
    assert_eq!(
        attr(h, obj, CKA_LABEL).as_deref(),
        Some(&b"Label"[..]),
        "nothing changed"
    );
}

/// rust-cryptoki get_attributes_test / get_attribute_info_test: one C_GetAttributeValue
/// call may mix filled buffers with NULL length queries; a sensitive attribute among them
/// is CK_UNAVAILABLE_INFORMATION while the rest are answered; an attribute the key type
/// lacks is reported as CKR_ATTRIBUTE_TYPE_INVALID.
#[test]
fn one_get_attribute_call_mixes_reads_length_queries_and_unavailable_entries() {
    let t = shared().token("mixed attribute reads");
    let s = t.login_user();
    let h = s.handle();
    let pair = keys::gen_rsa(
        &s,
        2048,
        &[Attribute::Private(false)],
        &[Attribute::Extractable(false)],
    );
    let (public, private) = (pair.public.handle(), pair.private.handle());
    let mut q = [
        AttrQuery::read(CKA_CLASS, 8),
        AttrQuery::read(CKA_KEY_TYPE, 8),
        AttrQuery::read(CKA_TOKEN, 1),
        AttrQuery::len_of(CKA_MODULUS),
        AttrQuery::len_of(CKA_PUBLIC_EXPONENT),
        AttrQuery::read(CKA_VERIFY, 1),
        AttrQuery::read(CKA_MODULUS_BITS, 8),
    ];
    expect_rv(
        raw::get_attributes(h, public, &mut q),
        CKR_OK,
        "mixed C_GetAttributeValue",
    );
    assert_eq!(q[0].value(), Some(&CKO_PUBLIC_KEY.to_ne_bytes()[..]));
    assert_eq!(q[1].value(), Some(&CKK_RSA.to_ne_bytes()[..]));
    assert_eq!(q[3].len, 256, "CKA_MODULUS length of a 2048-bit key");
    assert!(
        q[4].len >= 1 && q[4].len <= 8,
        "CKA_PUBLIC_EXPONENT length {}",
        q[4].len
    );
    assert_eq!(q[6].value(), Some(&(2048 as CK_ULONG).to_ne_bytes()[..]));

    let mut q = [
        AttrQuery::len_of(CKA_PUBLIC_EXPONENT),
        AttrQuery::len_of(CKA_MODULUS),
        AttrQuery::len_of(CKA_PRIVATE_EXPONENT),
    ];
    expect_rv(
        raw::get_attributes(h, private, &mut q),
        CKR_ATTRIBUTE_SENSITIVE,
        "length query including CKA_PRIVATE_EXPONENT of a sensitive key",
    );
    assert!(
        !q[0].unavailable(),
        "CKA_PUBLIC_EXPONENT of the private key must be answered"
    );
    assert_eq!(q[1].len, 256, "CKA_MODULUS length on the private key");
    assert!(
        q[2].unavailable(),
        "CKA_PRIVATE_EXPONENT must be CK_UNAVAILABLE_INFORMATION"
    );

    let info = ok(
        s.get_attribute_info(pair.private, &[AttributeType::PrivateExponent]),
        "cryptoki get_attribute_info",
    );
    assert!(
        matches!(info[0], AttributeInfo::Sensitive),
        "got {:?}",
        info[0]
    );

    let mut q = [AttrQuery::read(CKA_EC_POINT, 256)];
    expect_rv(
        raw::get_attributes(h, public, &mut q),
        CKR_ATTRIBUTE_TYPE_INVALID,
        "CKA_EC_POINT of an RSA key",
    );
    assert!(q[0].unavailable());
    let got = ok(
        s.get_attributes(pair.public, &[AttributeType::EcPoint]),
        "cryptoki get_attributes",
    );
    assert!(
        got.is_empty(),
        "cryptoki must drop the unavailable attribute, got {got:?}"
    );
}

/// rust-cryptoki import_export / ro_rw_session_test: an RSA public key with an arbitrary
/// 8192-bit modulus imports as a public token object, is found again by its whole
/// template, and reports the modulus length.
#[test]
fn rsa_public_key_with_an_arbitrary_modulus_imports_and_is_found_by_its_template() {
    let t = shared().token("import export");
    let s = t.login_user();
    let template = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::PublicExponent(vec![1, 0, 1]),
        Attribute::Modulus(vec![0xff; 1024]),
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Verify(true),
    ];
    let ro = t.ro_session();
    expect_rv(
        ro.create_object(&template),
        CKR_SESSION_READ_ONLY,
        "C_CreateObject(token object) in a R/O session",
    );
    let created = ok(
        s.create_object(&template),
        "C_CreateObject(RSA public, 8192-bit modulus)",
    );
    let found = ok(
        s.find_objects(&template),
        "C_FindObjects by the full template",
    );
    assert_eq!(found, vec![created]);
    let info = ok(
        s.get_attribute_info(created, &[AttributeType::Modulus]),
        "length of CKA_MODULUS",
    );
    assert!(
        matches!(info[0], AttributeInfo::Available(1024)),
        "got {:?}",
        info[0]
    );
    ok(s.destroy_object(created), "C_DestroyObject");
}

/// rust-cryptoki import_export (its branch for every module but SoftHSM): a key created
/// without CKA_ALLOWED_MECHANISMS does not report an (empty) CKA_ALLOWED_MECHANISMS.
/// PKCS#11 allows either answer; the suite accepts only "unavailable" from hsmux.
#[test]
#[ignore = "hsmux: CKA_ALLOWED_MECHANISMS never set is returned as an empty list; rust-cryptoki import_export expects it unavailable for non-SoftHSM modules"]
fn allowed_mechanisms_never_set_is_not_reported() {
    let t = shared().token("allowed mechanisms absent");
    let s = t.login_user();
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let public = keys::import_rsa_public(&s, &rsa, &[]);
    let got = ok(
        s.get_attributes(public, &[AttributeType::AllowedMechanisms]),
        "C_GetAttributeValue(CKA_ALLOWED_MECHANISMS)",
    );
    assert!(
        got.is_empty(),
        "expected no CKA_ALLOWED_MECHANISMS, got {got:?}"
    );
}

/// pkcs11test ReadWriteSessionTest.FindObjectSubset: in a public session, objects tagged
/// with one label are selected by label plus key type, or label plus class, whatever the
/// batch size.
#[test]
fn find_objects_selects_by_label_and_key_type_or_class() {
    let t = shared().token("find subset");
    let s = t.rw_session();
    let h = s.handle();
    let label = b"find-subset";
    let g1 = public_secret(h, label, CKM_GENERIC_SECRET_KEY_GEN, 24);
    let g2 = public_secret(h, label, CKM_GENERIC_SECRET_KEY_GEN, 24);
    let a3 = public_secret(h, label, CKM_AES_KEY_GEN, 16);
    let (p1, k1) = public_rsa_pair(h, label);
    let (p2, k2) = public_rsa_pair(h, label);
    let sorted = |mut v: Vec<CK_OBJECT_HANDLE>| {
        v.sort_unstable();
        v
    };
    let by_label = || Template::new().bytes(CKA_LABEL, label);
    for stride in [1, 10] {
        assert_eq!(
            find_all(h, &mut by_label(), stride),
            sorted(vec![g1, g2, a3, p1, k1, p2, k2]),
            "label only, stride {stride}"
        );
    }
    assert_eq!(
        find_all(
            h,
            &mut by_label().ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
            1
        ),
        sorted(vec![g1, g2])
    );
    assert_eq!(
        find_all(h, &mut by_label().ulong(CKA_KEY_TYPE, CKK_AES), 1),
        vec![a3]
    );
    assert_eq!(
        find_all(h, &mut by_label().ulong(CKA_CLASS, CKO_PUBLIC_KEY), 1),
        sorted(vec![p1, p2])
    );
    assert_eq!(
        find_all(h, &mut by_label().ulong(CKA_CLASS, CKO_PRIVATE_KEY), 1),
        sorted(vec![k1, k2])
    );
    // An attribute no object has matches nothing rather than failing.
    assert!(find_all(h, &mut by_label().ulong(CKA_CERTIFICATE_TYPE, CKC_X_509), 3).is_empty());
}

/// pkcs11test DataObjectTest.{FindObject, FindNoObject, FindObjectInvalid}, plus
/// C_FindObjects with ulMaxObjectCount 0 (which must not lose results).
#[test]
fn find_objects_protocol_errors_and_zero_count_batches() {
    let t = shared().token("find protocol");
    let s = t.rw_session();
    let h = s.handle();
    let obj = create(h, data_object("Label", APP, b"v"), "C_CreateObject");
    let exact = || {
        Template::new()
            .ulong(CKA_CLASS, CKO_DATA)
            .bytes(CKA_APPLICATION, APP)
            .bytes(CKA_LABEL, b"Label")
    };
    let suffix = Template::new()
        .ulong(CKA_CLASS, CKO_DATA)
        .bytes(CKA_APPLICATION, APP)
        .bytes(CKA_LABEL, b"LabelSuffix");
    assert!(
        find_all(h, &mut suffix.clone(), 5).is_empty(),
        "a longer label must not match"
    );

    let (rv, _) = raw::find(h, 5);
    expect_rv(
        rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_FindObjects before C_FindObjectsInit",
    );
    expect_rv(
        raw::find_final(h),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_FindObjectsFinal before init",
    );
    let mut tmpl = exact();
    let n = tmpl.count();
    // SAFETY: the template outlives the call.
    let rv = unsafe { f().C_FindObjectsInit.unwrap()(BOGUS_SESSION, tmpl.ptr(), n) };
    expect_rv(
        rv,
        CKR_SESSION_HANDLE_INVALID,
        "C_FindObjectsInit(unknown session)",
    );
    // SAFETY: as above.
    let rv = unsafe { f().C_FindObjectsInit.unwrap()(h, tmpl.ptr(), n) };
    expect_rv(rv, CKR_OK, "C_FindObjectsInit");
    expect_rv(
        raw::find(BOGUS_SESSION, 5).0,
        CKR_SESSION_HANDLE_INVALID,
        "C_FindObjects(unknown)",
    );
    let mut handles = [CK_INVALID_HANDLE; 5];
    let mut count: CK_ULONG = 77;
    // SAFETY: a zero-sized request into a live array and count cell.
    let rv = unsafe { f().C_FindObjects.unwrap()(h, handles.as_mut_ptr(), 0, &mut count) };
    expect_rv_in(
        rv,
        &[CKR_OK, CKR_ARGUMENTS_BAD],
        "C_FindObjects(ulMaxObjectCount 0)",
    );
    if rv == CKR_OK {
        assert_eq!(
            count, 0,
            "C_FindObjects(ulMaxObjectCount 0) must return no handles"
        );
    }
    let (rv, got) = raw::find(h, 5);
    expect_rv(rv, CKR_OK, "C_FindObjects");
    assert_eq!(got, vec![obj], "the match survives a zero-count call");
    let (rv, got) = raw::find(h, 5);
    expect_rv(rv, CKR_OK, "C_FindObjects after the last match");
    assert!(got.is_empty());
    expect_rv(
        raw::find_final(BOGUS_SESSION),
        CKR_SESSION_HANDLE_INVALID,
        "C_FindObjectsFinal(unknown)",
    );
    expect_rv(raw::find_final(h), CKR_OK, "C_FindObjectsFinal");
    expect_rv(
        raw::find(h, 5).0,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_FindObjects after final",
    );
}

/// pkcs11test {ReadOnly,ReadWrite}SessionTest.{EnumerateObjects, ConsistentObjects}: a
/// public session sees only CKA_PRIVATE=FALSE objects, each with a size, the same set
/// whatever the batch size; python-pkcs11 test_destroy_object: an empty template lists
/// every visible object.
#[test]
fn public_sessions_enumerate_only_public_objects_consistently() {
    let t = shared().token("enumerate objects");
    {
        let user = t.login_user();
        create(
            user.handle(),
            data_object("secret", APP, b"x")
                .bool(CKA_TOKEN, true)
                .bool(CKA_PRIVATE, true),
            "private token data object",
        );
        create(
            user.handle(),
            data_object("shown", APP, b"x")
                .bool(CKA_TOKEN, true)
                .bool(CKA_PRIVATE, false),
            "public token data object",
        );
        keys::gen_ec(
            &user,
            verify::Curve::P256,
            &[Attribute::Token(true)],
            &[Attribute::Token(true)],
        );
    }
    for s in [t.ro_session(), t.rw_session()] {
        let h = s.handle();
        let one = find_all(h, &mut Template::new(), 1);
        assert_eq!(one, find_all(h, &mut Template::new(), 10));
        assert_eq!(one, find_all(h, &mut Template::new(), 1024));
        assert!(
            one.len() >= 2,
            "the public data object and public key are visible"
        );
        for o in one {
            expect_rv(raw::object_size(h, o).0, CKR_OK, "C_GetObjectSize");
            assert!(
                !attr_bool(h, o, CKA_PRIVATE),
                "object {o} is private but visible"
            );
        }
    }
}

/// pkcs11test ReadWriteSessionTest.SetLatchingAttribute: a key generated in a public
/// session (CKA_PRIVATE=FALSE) can be made sensitive, never insensitive again.
#[test]
fn sensitive_latches_on_a_key_generated_without_login() {
    let t = shared().token("latching sensitive");
    let s = t.rw_session();
    let h = s.handle();
    let mut tmpl = Template::new()
        .bytes(CKA_LABEL, b"latch")
        .bool(CKA_PRIVATE, false)
        .bool(CKA_TOKEN, false)
        .ulong(CKA_VALUE_LEN, 16);
    let (rv, key) = generate_key(h, &plain(CKM_AES_KEY_GEN), &mut tmpl);
    expect_rv(
        rv,
        CKR_OK,
        "C_GenerateKey(CKA_PRIVATE=FALSE) in a public session",
    );
    expect_rv(
        raw::set_attribute(h, key, CKA_SENSITIVE, &[CK_TRUE]),
        CKR_OK,
        "CKA_SENSITIVE→TRUE",
    );
    assert!(attr_bool(h, key, CKA_SENSITIVE));
    expect_rv(
        raw::set_attribute(h, key, CKA_SENSITIVE, &[CK_FALSE]),
        CKR_ATTRIBUTE_READ_ONLY,
        "CKA_SENSITIVE→FALSE",
    );
    assert!(attr_bool(h, key, CKA_SENSITIVE));
}

/// pkcs11test ReadOnlySessionTest.CreateSecretKeyAttributes and CreateKeyPairObjects: key
/// material that came from outside is neither local nor ever-sensitive nor
/// never-extractable, and has no generation mechanism.
#[test]
fn imported_keys_are_not_local_never_extractable_or_always_sensitive() {
    let t = shared().token("imported key provenance");
    let s = t.login_user();
    let h = s.handle();
    let aes = create(
        h,
        aes_key(&[0x2b; 16], &[CKA_ENCRYPT, CKA_DECRYPT]),
        "C_CreateObject(AES)",
    );
    let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
    let private = keys::import_rsa_private(
        &s,
        &rsa,
        &[Attribute::Sensitive(true), Attribute::Extractable(true)],
    )
    .handle();
    for key in [aes, private] {
        assert!(
            !attr_bool(h, key, CKA_ALWAYS_SENSITIVE),
            "CKA_ALWAYS_SENSITIVE of {key}"
        );
        assert!(
            !attr_bool(h, key, CKA_NEVER_EXTRACTABLE),
            "CKA_NEVER_EXTRACTABLE of {key}"
        );
        assert!(!attr_bool(h, key, CKA_LOCAL), "CKA_LOCAL of {key}");
        assert_eq!(
            attr_ulong(h, key, CKA_KEY_GEN_MECHANISM),
            CK_UNAVAILABLE_INFORMATION,
            "CKA_KEY_GEN_MECHANISM of {key}"
        );
    }
}

/// rust-cryptoki session_copy_object: a non-extractable key copies with an empty or a
/// label-only template, but a copy cannot make it extractable.
#[test]
fn copy_cannot_make_an_unextractable_key_extractable() {
    let t = shared().token("copy extractable");
    let s = t.login_user();
    let key = ok(
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Encrypt(true),
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::ValueLen(16.into()),
                Attribute::Label(b"original".to_vec()),
            ],
        ),
        "C_GenerateKey",
    );
    let c = ok(s.copy_object(key, &[]), "C_CopyObject(empty template)");
    ok(s.destroy_object(c), "C_DestroyObject(copy)");
    let c = ok(
        s.copy_object(key, &[Attribute::Label(b"copy".to_vec())]),
        "C_CopyObject(label)",
    );
    ok(s.destroy_object(c), "C_DestroyObject(copy)");
    expect_rv(
        s.copy_object(key, &[Attribute::Extractable(true)]),
        CKR_ATTRIBUTE_READ_ONLY,
        "C_CopyObject(CKA_EXTRACTABLE=TRUE) of a non-extractable key",
    );
}

/// rust-cryptoki unique_id: a template supplying CKA_UNIQUE_ID is refused with
/// CKR_ATTRIBUTE_TYPE_INVALID. (PKCS#11 3.0 §4.1.1 would also allow
/// CKR_ATTRIBUTE_READ_ONLY for an attribute that "MUST not be specified"; the suite accepts
/// only the former.)
#[test]
#[ignore = "hsmux: C_CreateObject with CKA_UNIQUE_ID returns CKR_ATTRIBUTE_READ_ONLY; rust-cryptoki unique_id requires CKR_ATTRIBUTE_TYPE_INVALID"]
fn create_object_with_unique_id_returns_attribute_type_invalid() {
    let t = shared().token("unique id in template");
    let s = t.login_user();
    expect_rv(
        create_object(
            s.handle(),
            &mut aes_key(&[0x2b; 16], &[CKA_ENCRYPT]).bytes(CKA_UNIQUE_ID, &[0, 0, 0, 1]),
        )
        .0,
        CKR_ATTRIBUTE_TYPE_INVALID,
        "C_CreateObject with CKA_UNIQUE_ID",
    );
}

/// rust-cryptoki unique_id (and PKCS#11 3.0 CKA_UNIQUE_ID): the token assigns a unique ID
/// to every object, a template cannot supply one, and it cannot be changed.
#[test]
fn unique_id_is_assigned_by_the_token_distinct_and_immutable() {
    let t = shared().token("unique id");
    let s = t.login_user();
    let h = s.handle();
    let (rv, _) = create_object(
        h,
        &mut aes_key(&[0x2b; 16], &[CKA_ENCRYPT]).bytes(CKA_UNIQUE_ID, &[0, 0, 0, 1]),
    );
    expect_rv_in(
        rv,
        &[CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_READ_ONLY],
        "C_CreateObject with CKA_UNIQUE_ID",
    );
    let a = keys::gen_aes(&s, 32, &[]).handle();
    let b = keys::gen_aes(&s, 32, &[]).handle();
    let ua = attr(h, a, CKA_UNIQUE_ID).expect("CKA_UNIQUE_ID of a generated key");
    let ub = attr(h, b, CKA_UNIQUE_ID).expect("CKA_UNIQUE_ID of a second key");
    assert!(!ua.is_empty());
    assert_ne!(ua, ub, "two objects share a CKA_UNIQUE_ID");
    let (rv, c) = copy_object(h, a, &mut Template::new());
    expect_rv(rv, CKR_OK, "C_CopyObject");
    assert_ne!(
        attr(h, c, CKA_UNIQUE_ID),
        Some(ua.clone()),
        "a copy gets its own unique ID"
    );
    let rv = raw::set_attribute(h, a, CKA_UNIQUE_ID, &[1, 2, 3]);
    assert_ne!(rv, CKR_OK, "C_SetAttributeValue(CKA_UNIQUE_ID) must fail");
    assert_eq!(attr(h, a, CKA_UNIQUE_ID), Some(ua));
}

/// rust-cryptoki validation: CKA_OBJECT_VALIDATION_FLAGS (3.2) is not something a template
/// can set on a token without validated objects, nor something it reports.
#[test]
fn object_validation_flags_cannot_be_set_and_are_not_reported() {
    let t = shared().token("validation flags");
    let s = t.login_user();
    let h = s.handle();
    expect_rv(
        create_object(
            h,
            &mut aes_key(&[0x2b; 16], &[CKA_ENCRYPT]).ulong(CKA_OBJECT_VALIDATION_FLAGS, 3),
        )
        .0,
        CKR_ATTRIBUTE_TYPE_INVALID,
        "C_CreateObject with CKA_OBJECT_VALIDATION_FLAGS",
    );
    let key = keys::gen_aes(&s, 32, &[]);
    let got = ok(
        s.get_attributes(key, &[AttributeType::ObjectValidationFlags]),
        "C_GetAttributeValue(CKA_OBJECT_VALIDATION_FLAGS)",
    );
    assert!(got.is_empty(), "unexpected {got:?}");
    assert_ne!(
        raw::set_attribute(
            h,
            key.handle(),
            CKA_OBJECT_VALIDATION_FLAGS,
            &(3 as CK_ULONG).to_ne_bytes()
        ),
        CKR_OK
    );
    // rust-cryptoki's is_fips probe: a search for CKO_VALIDATION objects answers normally.
    assert!(find_all(h, &mut Template::new().ulong(CKA_CLASS, CKO_VALIDATION), 4).is_empty());
}

/// python-pkcs11 test_generate_key / test_create_object: defaults a binding reads back.
#[test]
fn generated_and_created_keys_report_the_defaults_bindings_read() {
    let t = shared().token("binding defaults");
    let s = t.login_user();
    let h = s.handle();
    let key = ok(
        s.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Id(vec![]),
                Attribute::Label(vec![]),
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::ValueLen(16.into()),
            ],
        ),
        "C_GenerateKey",
    )
    .handle();
    assert_eq!(attr(h, key, CKA_LABEL), Some(vec![]), "empty CKA_LABEL");
    assert!(attr_bool(h, key, CKA_LOCAL));
    assert!(attr_bool(h, key, CKA_MODIFIABLE));
    assert!(!attr_bool(h, key, CKA_TOKEN));
    expect_rv(
        raw::set_attribute(h, key, CKA_LABEL, b"DEMO"),
        CKR_OK,
        "set CKA_LABEL",
    );
    assert_eq!(attr(h, key, CKA_LABEL), Some(b"DEMO".to_vec()));
    let created = create(
        h,
        Template::new()
            .ulong(CKA_CLASS, CKO_SECRET_KEY)
            .ulong(CKA_KEY_TYPE, CKK_AES)
            .bytes(CKA_VALUE, &[b'1'; 16]),
        "C_CreateObject(class, key type, value only)",
    );
    assert_eq!(attr_ulong(h, created, CKA_VALUE_LEN), 16);
    assert!(
        !attr_bool(h, created, CKA_TOKEN),
        "CKA_TOKEN defaults to FALSE"
    );
}

/// PKCS#11 C_Logout: "any of the application's handles to private objects become invalid
/// (even if a user is later logged back into the token, those handles remain invalid). In
/// addition, all private session objects from sessions belonging to the application are
/// destroyed." Public session objects stay.
#[test]
fn logout_invalidates_private_handles_and_destroys_private_session_objects() {
    let t = shared().token("private object view");
    let s = t.login_user();
    let h = s.handle();
    let private = create(
        h,
        data_object("hidden", APP, b"secret").bool(CKA_PRIVATE, true),
        "private session data object",
    );
    let public = create(
        h,
        data_object("shown", APP, b"open"),
        "public session data object",
    );
    let mut by_app = Template::new().bytes(CKA_APPLICATION, APP);
    let mut both = vec![private, public];
    both.sort_unstable();
    assert_eq!(find_all(h, &mut by_app, 10), both);
    ok(s.logout(), "C_Logout");
    let mut q = [AttrQuery::read(CKA_VALUE, 64)];
    expect_rv_in(
        raw::get_attributes(h, private, &mut q),
        &[CKR_OBJECT_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN],
        "C_GetAttributeValue of a private object after C_Logout",
    );
    assert_ne!(
        q[0].value(),
        Some(&b"secret"[..]),
        "private value leaked after logout"
    );
    assert_eq!(
        find_all(h, &mut by_app, 10),
        vec![public],
        "only the public object is visible"
    );
    ok(
        s.login(cryptoki::session::UserType::User, Some(&pin(USER_PIN))),
        "C_Login",
    );
    expect_rv(
        raw::get_attributes(h, private, &mut q),
        CKR_OBJECT_HANDLE_INVALID,
        "the old private handle after logging in again",
    );
    assert_eq!(
        find_all(h, &mut by_app, 10),
        vec![public],
        "the private session object is gone"
    );
}
