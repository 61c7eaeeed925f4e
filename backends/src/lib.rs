//! hsmux backends: where keys live.
//!
//! Today this crate holds the persistent store of the embedded local token
//! ([`local`]). The remote backends (vendor PKCS#11 `.so`, KMIP, AWS KMS,
//! Google Cloud KMS, Azure Key Vault, Vault/OpenBao Transit) will join it as
//! modules behind cargo features, together with the `Backend` trait that the
//! token layer drives; the local store is always built.

pub mod local;

pub use local::{
    Changes, LocalStore, MasterKey, ObjectId, ObjectRecord, Stamp, StoreError, StoreResult,
    TokenMeta,
};
