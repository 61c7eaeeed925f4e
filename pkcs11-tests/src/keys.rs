//! Templates and token-side helpers: generate, import, find and read keys.
//!
//! Defaults make session objects (CKA_TOKEN=FALSE) so tests leave nothing behind;
//! `extra` attributes replace defaults of the same type.

use crate::ok;
use crate::verify::{self, Curve};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use openssl::ec::EcKey;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;

/// The two halves of a generated key pair.
#[derive(Clone, Copy, Debug)]
pub struct KeyPair {
    /// The public-key object.
    pub public: ObjectHandle,
    /// The private-key object.
    pub private: ObjectHandle,
}

/// `base` with every attribute of `extra` replacing (or added to) the same type.
pub fn merge(base: Vec<Attribute>, extra: &[Attribute]) -> Vec<Attribute> {
    let mut out: Vec<Attribute> = base
        .into_iter()
        .filter(|a| {
            !extra
                .iter()
                .any(|e| e.attribute_type() == a.attribute_type())
        })
        .collect();
    out.extend_from_slice(extra);
    out
}

/// An object handle the module never issued.
pub fn bogus_handle() -> ObjectHandle {
    // SAFETY: the handle is only passed to the module, which must reject it.
    unsafe { ObjectHandle::new_from_raw(0x7fff_fff0) }
}

/// C_GenerateKeyPair for an EC key on `curve`.
pub fn gen_ec_result(
    session: &Session,
    curve: Curve,
    public_extra: &[Attribute],
    private_extra: &[Attribute],
) -> cryptoki::error::Result<KeyPair> {
    let public = merge(
        vec![
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::EcParams(curve.params()),
        ],
        public_extra,
    );
    let private = merge(
        vec![
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
        ],
        private_extra,
    );
    session
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        .map(|(public, private)| KeyPair { public, private })
}

/// C_GenerateKeyPair for an EC key on `curve`, failing the test on error.
#[track_caller]
pub fn gen_ec(
    session: &Session,
    curve: Curve,
    public_extra: &[Attribute],
    private_extra: &[Attribute],
) -> KeyPair {
    ok(
        gen_ec_result(session, curve, public_extra, private_extra),
        &format!("C_GenerateKeyPair(CKM_EC_KEY_PAIR_GEN, {curve:?})"),
    )
}

/// C_GenerateKeyPair for an RSA key of `bits`.
pub fn gen_rsa_result(
    session: &Session,
    bits: u64,
    public_extra: &[Attribute],
    private_extra: &[Attribute],
) -> cryptoki::error::Result<KeyPair> {
    let public = merge(
        vec![
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
            Attribute::ModulusBits(bits.into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        ],
        public_extra,
    );
    let private = merge(
        vec![
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::Decrypt(true),
        ],
        private_extra,
    );
    session
        .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
        .map(|(public, private)| KeyPair { public, private })
}

/// C_GenerateKeyPair for an RSA key of `bits`, failing the test on error.
#[track_caller]
pub fn gen_rsa(
    session: &Session,
    bits: u64,
    public_extra: &[Attribute],
    private_extra: &[Attribute],
) -> KeyPair {
    ok(
        gen_rsa_result(session, bits, public_extra, private_extra),
        &format!("C_GenerateKeyPair(CKM_RSA_PKCS_KEY_PAIR_GEN, {bits})"),
    )
}

/// C_GenerateKey for an AES key of `len` bytes.
#[track_caller]
pub fn gen_aes(session: &Session, len: u64, extra: &[Attribute]) -> ObjectHandle {
    let template = merge(
        vec![
            Attribute::Token(false),
            Attribute::ValueLen(len.into()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ],
        extra,
    );
    ok(
        session.generate_key(&Mechanism::AesKeyGen, &template),
        "C_GenerateKey(CKM_AES_KEY_GEN)",
    )
}

/// C_CreateObject for an AES key with a known value.
#[track_caller]
pub fn create_aes(session: &Session, value: &[u8], extra: &[Attribute]) -> ObjectHandle {
    let template = merge(
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(value.to_vec()),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ],
        extra,
    );
    ok(session.create_object(&template), "C_CreateObject(CKK_AES)")
}

/// C_CreateObject for a generic secret (HMAC) key with a known value.
#[track_caller]
pub fn create_generic_secret(session: &Session, value: &[u8], extra: &[Attribute]) -> ObjectHandle {
    let template = merge(
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Value(value.to_vec()),
            Attribute::Sign(true),
            Attribute::Verify(true),
        ],
        extra,
    );
    ok(
        session.create_object(&template),
        "C_CreateObject(CKK_GENERIC_SECRET)",
    )
}

/// The template importing an OpenSSL EC private key.
pub fn ec_private_template(curve: Curve, key: &EcKey<Private>) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::EcParams(curve.params()),
        Attribute::Value(
            key.private_key()
                .to_vec_padded(curve.field_len() as i32)
                .unwrap(),
        ),
    ]
}

/// C_CreateObject importing an OpenSSL EC private key.
#[track_caller]
pub fn import_ec_private(
    session: &Session,
    curve: Curve,
    key: &EcKey<Private>,
    extra: &[Attribute],
) -> ObjectHandle {
    ok(
        session.create_object(&merge(ec_private_template(curve, key), extra)),
        "C_CreateObject(CKO_PRIVATE_KEY, CKK_EC)",
    )
}

/// C_CreateObject importing an OpenSSL EC public key.
#[track_caller]
pub fn import_ec_public<T: openssl::pkey::HasPublic>(
    session: &Session,
    curve: Curve,
    key: &EcKey<T>,
    extra: &[Attribute],
) -> ObjectHandle {
    let template = merge(
        vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::EcParams(curve.params()),
            Attribute::EcPoint(verify::der_octet_string(&verify::ec_point_bytes(key))),
        ],
        extra,
    );
    ok(
        session.create_object(&template),
        "C_CreateObject(CKO_PUBLIC_KEY, CKK_EC)",
    )
}

/// The template importing an OpenSSL RSA private key.
pub fn rsa_private_template(key: &Rsa<Private>) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Decrypt(true),
        Attribute::Modulus(key.n().to_vec()),
        Attribute::PublicExponent(key.e().to_vec()),
        Attribute::PrivateExponent(key.d().to_vec()),
        Attribute::Prime1(key.p().unwrap().to_vec()),
        Attribute::Prime2(key.q().unwrap().to_vec()),
        Attribute::Exponent1(key.dmp1().unwrap().to_vec()),
        Attribute::Exponent2(key.dmq1().unwrap().to_vec()),
        Attribute::Coefficient(key.iqmp().unwrap().to_vec()),
    ]
}

/// C_CreateObject importing an OpenSSL RSA private key.
#[track_caller]
pub fn import_rsa_private(
    session: &Session,
    key: &Rsa<Private>,
    extra: &[Attribute],
) -> ObjectHandle {
    ok(
        session.create_object(&merge(rsa_private_template(key), extra)),
        "C_CreateObject(CKO_PRIVATE_KEY, CKK_RSA)",
    )
}

/// C_CreateObject importing an OpenSSL RSA public key.
#[track_caller]
pub fn import_rsa_public<T: openssl::pkey::HasPublic>(
    session: &Session,
    key: &Rsa<T>,
    extra: &[Attribute],
) -> ObjectHandle {
    let template = merge(
        vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
            Attribute::Modulus(key.n().to_vec()),
            Attribute::PublicExponent(key.e().to_vec()),
        ],
        extra,
    );
    ok(
        session.create_object(&template),
        "C_CreateObject(CKO_PUBLIC_KEY, CKK_RSA)",
    )
}

/// The template of an X.509 certificate object.
pub fn certificate_template(cert: &verify::TestCert, label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(cert.der.clone()),
        Attribute::Subject(cert.subject.clone()),
        Attribute::Issuer(cert.issuer.clone()),
        Attribute::SerialNumber(cert.serial.clone()),
    ]
}

/// The template of a data object.
pub fn data_template(label: &str, value: &[u8], private: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(false),
        Attribute::Private(private),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Application(b"hsmux-tests".to_vec()),
        Attribute::Value(value.to_vec()),
    ]
}

/// Every object matching `template`.
#[track_caller]
pub fn find(session: &Session, template: &[Attribute]) -> Vec<ObjectHandle> {
    ok(session.find_objects(template), "C_FindObjects*")
}

/// Reads one attribute; `None` when the module reports it unavailable.
#[track_caller]
pub fn attr(session: &Session, object: ObjectHandle, kind: AttributeType) -> Option<Attribute> {
    ok(
        session.get_attributes(object, &[kind]),
        &format!("C_GetAttributeValue({kind})"),
    )
    .into_iter()
    .next()
}

/// Reads a byte-array attribute, failing if unavailable.
#[track_caller]
pub fn attr_bytes(session: &Session, object: ObjectHandle, kind: AttributeType) -> Vec<u8> {
    match attr(session, object, kind) {
        Some(
            Attribute::Value(v)
            | Attribute::Label(v)
            | Attribute::Id(v)
            | Attribute::EcParams(v)
            | Attribute::EcPoint(v)
            | Attribute::Modulus(v)
            | Attribute::PublicExponent(v)
            | Attribute::Subject(v)
            | Attribute::Issuer(v)
            | Attribute::SerialNumber(v)
            | Attribute::Application(v)
            | Attribute::ObjectId(v)
            | Attribute::PublicKeyInfo(v),
        ) => v,
        Some(other) => panic!("{kind}: unexpected attribute shape {other:?}"),
        None => panic!("{kind} unavailable"),
    }
}

/// Reads a CK_BBOOL attribute, failing if unavailable.
#[track_caller]
pub fn attr_bool(session: &Session, object: ObjectHandle, kind: AttributeType) -> bool {
    match attr(session, object, kind) {
        Some(
            Attribute::Token(b)
            | Attribute::Private(b)
            | Attribute::Sensitive(b)
            | Attribute::Extractable(b)
            | Attribute::AlwaysSensitive(b)
            | Attribute::NeverExtractable(b)
            | Attribute::Local(b)
            | Attribute::Modifiable(b)
            | Attribute::Copyable(b)
            | Attribute::Destroyable(b)
            | Attribute::Sign(b)
            | Attribute::Verify(b)
            | Attribute::Encrypt(b)
            | Attribute::Decrypt(b)
            | Attribute::Wrap(b)
            | Attribute::Unwrap(b)
            | Attribute::Derive(b)
            | Attribute::AlwaysAuthenticate(b)
            | Attribute::Trusted(b),
        ) => b,
        Some(other) => panic!("{kind}: unexpected attribute shape {other:?}"),
        None => panic!("{kind} unavailable"),
    }
}

/// Reads a CK_ULONG attribute, failing if unavailable.
#[track_caller]
pub fn attr_ulong(session: &Session, object: ObjectHandle, kind: AttributeType) -> u64 {
    match attr(session, object, kind) {
        Some(Attribute::ValueLen(v) | Attribute::ModulusBits(v)) => v.into(),
        Some(Attribute::Class(c)) => *c,
        Some(Attribute::KeyType(k)) => *k,
        Some(Attribute::KeyGenMechanism(m)) => *m,
        Some(Attribute::CertificateType(c)) => *c,
        Some(other) => panic!("{kind}: unexpected attribute shape {other:?}"),
        None => panic!("{kind} unavailable"),
    }
}

/// The OpenSSL public key of an EC public-key object (CKA_EC_PARAMS + CKA_EC_POINT).
#[track_caller]
pub fn ec_public_from_token(session: &Session, public: ObjectHandle) -> (Curve, EcKey<Public>) {
    let params = attr_bytes(session, public, AttributeType::EcParams);
    let curve = Curve::from_params(&params)
        .unwrap_or_else(|| panic!("CKA_EC_PARAMS {params:02x?} is no supported named curve"));
    let point_der = attr_bytes(session, public, AttributeType::EcPoint);
    let point = verify::der_octet_string_contents(&point_der)
        .unwrap_or_else(|| panic!("CKA_EC_POINT is not a DER OCTET STRING: {point_der:02x?}"));
    (curve, verify::ec_public_key(curve, point))
}

/// The OpenSSL public key of an RSA public-key object (CKA_MODULUS + CKA_PUBLIC_EXPONENT).
#[track_caller]
pub fn rsa_public_from_token(session: &Session, public: ObjectHandle) -> PKey<Public> {
    verify::rsa_public_key(
        &attr_bytes(session, public, AttributeType::Modulus),
        &attr_bytes(session, public, AttributeType::PublicExponent),
    )
}
