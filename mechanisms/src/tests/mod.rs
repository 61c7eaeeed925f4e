//! Crate tests: known answers, round trips, independent checks with OpenSSL, error codes.

mod asym;
mod bench;
mod cipher;
mod des;
mod keys;
mod mac;
mod mechs;
mod wrap;

use crate::*;
use cryptoki_sys::*;
use std::sync::{Arc, OnceLock};

/// Hex to bytes, ignoring whitespace.
pub(crate) fn h(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub(crate) fn mech(t: CK_MECHANISM_TYPE) -> Mechanism {
    Mechanism::from_type(t).unwrap()
}

pub(crate) fn secret(kt: CK_KEY_TYPE, value: &[u8]) -> Arc<KeyMaterial> {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    a.set_ulong(CKA_KEY_TYPE, kt);
    a.set(CKA_VALUE, value.to_vec());
    Arc::new(KeyMaterial::from_attributes(&a).unwrap())
}

pub(crate) fn with_class(mut a: Attributes, class: CK_OBJECT_CLASS) -> Attributes {
    a.set_ulong(CKA_CLASS, class);
    a
}

/// A generated key pair as parsed objects: (private, public, raw attributes).
pub(crate) struct Pair {
    pub private: Arc<KeyMaterial>,
    pub public: Arc<KeyMaterial>,
    pub pub_attrs: Attributes,
    pub priv_attrs: Attributes,
}

pub(crate) fn pair(m: CK_MECHANISM_TYPE, pub_tmpl: Attributes) -> Pair {
    let (pa, sa) = generate_key_pair(&mech(m), &pub_tmpl, &Attributes::new()).unwrap();
    let public =
        Arc::new(KeyMaterial::from_attributes(&with_class(pa.clone(), CKO_PUBLIC_KEY)).unwrap());
    let private =
        Arc::new(KeyMaterial::from_attributes(&with_class(sa.clone(), CKO_PRIVATE_KEY)).unwrap());
    Pair {
        private,
        public,
        pub_attrs: pa,
        priv_attrs: sa,
    }
}

/// One RSA-2048 key for all tests: generation is slow in debug builds.
pub(crate) fn rsa() -> &'static Pair {
    static K: OnceLock<Pair> = OnceLock::new();
    K.get_or_init(|| {
        let mut t = Attributes::new();
        t.set_ulong(CKA_MODULUS_BITS, 2048);
        pair(CKM_RSA_PKCS_KEY_PAIR_GEN, t)
    })
}

pub(crate) fn ec_params_attr(params: &[u8]) -> Attributes {
    let mut t = Attributes::new();
    t.set(CKA_EC_PARAMS, params.to_vec());
    t
}

pub(crate) fn ec(curve: key::Curve) -> Pair {
    pair(CKM_EC_KEY_PAIR_GEN, ec_params_attr(curve.params()))
}

/// The OpenSSL public key of a public-key object, for independent verification.
pub(crate) fn ossl_public(k: &KeyMaterial) -> openssl::pkey::PKey<openssl::pkey::Public> {
    openssl::pkey::PKey::public_key_from_der(&k.public_key_der().unwrap()).unwrap()
}

pub(crate) fn rv<T>(r: Result<T>) -> CK_RV {
    match r {
        Ok(_) => CKR_OK,
        Err(e) => e.rv,
    }
}
