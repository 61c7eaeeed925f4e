//! The hsmux mechanism layer: what each `CKM_*` means, done in software.
//!
//! Parameters are validated once into [`mech::Mechanism`] by the constructors of their
//! types, from values the module's ABI copied out of the C structs (no C pointer reaches
//! this crate); keys are parsed once from their attributes into [`key::KeyMaterial`] and
//! kept with the object; operations are objects with `update`/`finish` so single- and
//! multi-part calls share one implementation.
//!
//! Entry points:
//! - [`mechanism_list`], [`mechanism_info`]: what exists; [`Mechanism::from_type`] for
//!   mechanisms without parameter, and the rules of each parameter:
//!   [`PssParams::from_c`], [`OaepParams::new`], [`mech::GcmParams::new`],
//!   [`mech::CtrParams::new`], [`mech::EcdhParams::new`], [`Mechanism::eddsa`].
//! - [`KeyMaterial::from_attributes`]: parse a key object once;
//!   [`KeyMaterial::from_public_key_der`] for a backend's SubjectPublicKeyInfo.
//! - [`sign_init`], [`verify_init`], [`encrypt_init`], [`decrypt_init`], [`digest_init`]:
//!   start an operation; drive it with the [`SignOp`], [`VerifyOp`], [`CipherOp`],
//!   [`DigestOp`] traits.
//! - [`generate_key_pair`], [`generate_key`], [`random`], [`public_attributes`]:
//!   key generation and the public view of a key.
//! - [`wrap()`] / [`unwrap()`]: `C_WrapKey` / `C_UnwrapKey` over `CKM_AES_KEY_WRAP`,
//!   `CKM_AES_KEY_WRAP_KWP`, `CKM_AES_CBC_PAD`, `CKM_AES_CBC`, `CKM_DES3_ECB`,
//!   `CKM_DES3_CBC`, `CKM_DES3_CBC_PAD`, `CKM_DES_ECB`, `CKM_DES_CBC`, `CKM_DES_CBC_PAD`,
//!   `CKM_RSA_PKCS_OAEP`, `CKM_RSA_PKCS`. Modes without padding wrap only values that are
//!   a whole number of blocks. The bytes wrapped are a secret key's `CKA_VALUE` or a private key's
//!   PKCS#8 DER ([`KeyMaterial::to_pkcs8_der`]; turn unwrapped PKCS#8 back into
//!   attributes with [`private_key_attributes_from_pkcs8`]).
//! - [`block_cipher_check_value`]: `CKA_CHECK_VALUE` of AES and DES keys.
//! - [`derive_ecdh`]: `CKM_ECDH1_DERIVE` / `CKM_ECDH1_COFACTOR_DERIVE` with `CKD_NULL`,
//!   returning the raw shared secret; [`derive_ecdh_key`] also runs the `CKD_SHA*_KDF`
//!   X9.63 KDFs, given the wanted key length.
//! - [`ecdsa_der_to_raw`] / [`ecdsa_raw_to_der`]: between KMS DER signatures and the
//!   PKCS#11 r‖s form; [`Mechanism::hash`] and [`HashAlg::digest_info_prefix`] for
//!   hashing locally before a backend signs a digest.
//!
//! Mechanisms (S/V sign/verify, E/D encrypt/decrypt, W/U wrap/unwrap, G generate, Dg digest,
//! Dv derive; every sign/verify/encrypt/decrypt/digest mechanism also takes multi-part
//! calls, buffering where the algorithm cannot stream):
//!
//! | mechanism | ops | notes |
//! |---|---|---|
//! | `CKM_SHA_1`, `CKM_SHA224/256/384/512` | Dg | |
//! | `CKM_ECDSA` | S/V | input is a hash, ≤ 64 bytes; signature r‖s |
//! | `CKM_ECDSA_SHA1/224/256/384/512` | S/V | P-256, P-384, P-521 |
//! | `CKM_RSA_PKCS` | S/V E/D W/U | raw input ≤ k-11 (sign) / type-2 padding (encrypt) |
//! | `CKM_SHA1/224/256/384/512_RSA_PKCS` | S/V | |
//! | `CKM_RSA_PKCS_PSS`, `CKM_SHA*_RSA_PKCS_PSS` | S/V | params required; raw form takes the hash |
//! | `CKM_RSA_PKCS_OAEP` | E/D W/U | any SHA hash, any MGF1 hash, optional label |
//! | `CKM_RSA_X_509` | S/V E/D | raw RSA; RSA keys 1024..=8192 bits |
//! | `CKM_SHA_1_HMAC`, `CKM_SHA224/256/384/512_HMAC` | S/V | generic or matching HMAC key, 1..=512 bytes |
//! | `CKM_AES_GCM` | E/D | IV 1..=128 bytes, tag 0..=128 bits appended |
//! | `CKM_AES_CBC_PAD`, `CKM_AES_CBC` | E/D W/U | |
//! | `CKM_AES_ECB`, `CKM_AES_CTR` | E/D | CTR refuses to wrap its counter |
//! | `CKM_AES_CMAC` | S/V | 16-byte MAC |
//! | `CKM_AES_KEY_WRAP`, `CKM_AES_KEY_WRAP_KWP` | E/D W/U | RFC 3394 / RFC 5649, optional IV |
//! | `CKM_EDDSA` | S/V | pure Ed25519 only |
//! | `CKM_ECDH1_DERIVE`, `CKM_ECDH1_COFACTOR_DERIVE` | Dv | `CKD_NULL`, `CKD_SHA*_KDF` |
//! | `CKM_RSA_PKCS_KEY_PAIR_GEN`, `CKM_EC_KEY_PAIR_GEN`, `CKM_EC_EDWARDS_KEY_PAIR_GEN` | G | |
//! | `CKM_DES3_ECB`, `CKM_DES3_CBC`, `CKM_DES3_CBC_PAD` | E/D W/U | `CKK_DES3` (24 bytes) or `CKK_DES2` (16, used as K1‖K2‖K1); 8-byte IV |
//! | `CKM_DES_ECB`, `CKM_DES_CBC`, `CKM_DES_CBC_PAD` | E/D W/U | `CKK_DES` (8 bytes), run as DES-EDE3 with K‖K‖K: no legacy provider |
//! | `CKM_AES_KEY_GEN`, `CKM_GENERIC_SECRET_KEY_GEN` | G | |
//! | `CKM_DES_KEY_GEN`, `CKM_DES2_KEY_GEN`, `CKM_DES3_KEY_GEN` | G | odd parity; weak, semi-weak, K1=K2 and K2=K3 keys drawn again |
//! | `CKM_SHA_1_KEY_GEN`, `CKM_SHA224/256/384/512_KEY_GEN` | G | `CKK_SHA*_HMAC` keys, `CKA_VALUE_LEN` 1..=512 required |
//!
//! Secret-key sizes in [`mechanism_info`] are bytes; for DES, where PKCS#11 leaves the
//! fields unused, they are the `CKA_VALUE` lengths the mechanism takes (DES3 modes 16..=24).
//! DES parity bits are set on generation and not checked on import.

mod aes;
pub mod attr;
mod cipher;
mod hash;
pub mod key;
pub mod keygen;
mod keywrap;
pub mod mech;
pub mod message;
mod op;
pub mod ops;
pub mod wrap;

pub use attr::Attributes;
pub use cipher::{block_cipher_check_value, decrypt_init, encrypt_init};
pub use hsmux_core::{bail, rv_name, Error, Result};
pub use key::KeyMaterial;
pub use keygen::*;
pub use mech::{
    mechanism_info, mechanism_list, HashAlg, MechInfo, Mechanism, OaepParams, PssParams,
    CKM_HSMUX_SERVICE_SYMMETRIC,
};
pub use message::{GcmMessages, GcmStream, MessageParams};
pub use ops::*;
pub use wrap::{derive_ecdh, derive_ecdh_key, unwrap, wrap};

#[cfg(test)]
mod tests;
