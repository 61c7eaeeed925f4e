//! The hsmux mechanism layer: what each `CKM_*` means, done in software.
//!
//! Parameters are parsed once from the C structs into [`mech::Mechanism`]; keys are
//! parsed once from their attributes into [`key::KeyMaterial`] and kept with the object;
//! operations are objects with `update`/`finish` so single- and multi-part calls share
//! one implementation.
//!
//! Entry points:
//! - [`Mechanism::from_raw`], [`mechanism_list`], [`mechanism_info`]: what exists.
//! - [`KeyMaterial::from_attributes`]: parse a key object once;
//!   [`KeyMaterial::from_public_key_der`] for a backend's SubjectPublicKeyInfo.
//! - [`sign_init`], [`verify_init`], [`encrypt_init`], [`decrypt_init`], [`digest_init`]:
//!   start an operation; drive it with the [`SignOp`], [`VerifyOp`], [`CipherOp`],
//!   [`DigestOp`] traits.
//! - [`generate_key_pair`], [`generate_key`], [`random`], [`public_attributes`]:
//!   key generation and the public view of a key.
//! - [`wrap()`] / [`unwrap()`]: `C_WrapKey` / `C_UnwrapKey` over `CKM_AES_KEY_WRAP`,
//!   `CKM_AES_KEY_WRAP_KWP`, `CKM_AES_CBC_PAD`, `CKM_AES_CBC`, `CKM_RSA_PKCS_OAEP`,
//!   `CKM_RSA_PKCS`. The bytes wrapped are a secret key's `CKA_VALUE` or a private key's
//!   PKCS#8 DER ([`KeyMaterial::to_pkcs8_der`]; turn unwrapped PKCS#8 back into
//!   attributes with [`private_key_attributes_from_pkcs8`]).
//! - [`derive_ecdh`]: `CKM_ECDH1_DERIVE` / `CKM_ECDH1_COFACTOR_DERIVE` with `CKD_NULL`,
//!   returning the raw shared secret; [`derive_ecdh_key`] also runs the `CKD_SHA*_KDF`
//!   X9.63 KDFs, given the wanted key length.
//! - [`ecdsa_der_to_raw`] / [`ecdsa_raw_to_der`]: between KMS DER signatures and the
//!   PKCS#11 r‖s form; [`Mechanism::hash`] and [`HashAlg::digest_info_prefix`] for
//!   hashing locally before a backend signs a digest.

pub mod attr;
mod cipher;
pub mod error;
mod hash;
pub mod key;
pub mod keygen;
pub mod mech;
pub mod ops;
pub mod wrap;

pub use attr::Attributes;
pub use error::{rv_name, Error, Result};
pub use key::KeyMaterial;
pub use keygen::*;
pub use mech::{mechanism_info, mechanism_list, HashAlg, MechInfo, Mechanism};
pub use ops::*;
pub use wrap::{derive_ecdh, derive_ecdh_key, unwrap, wrap};

#[cfg(test)]
mod tests;
