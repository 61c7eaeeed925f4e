//! hsmux backends: where keys live.
//!
//! Today this crate holds the persistent store of the embedded local token
//! ([`local`]). The remote backends (vendor PKCS#11 `.so`, KMIP, AWS KMS,
//! Google Cloud KMS, Azure Key Vault, Vault/OpenBao Transit) implement the
//! [`Backend`] trait that the token layer drives, each as a module behind a cargo
//! feature; the local store is always built.

#[cfg(feature = "aws-kms")]
pub mod aws_kms;
pub mod backend;
pub mod local;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod secret;

pub use backend::{
    Backend, BackendError, BackendResult, Capabilities, CipherRequest, Hash, KeyKind, KeySpec,
    KeyUsage, ObjectClass, RawAttributes, RemoteObject, SignRequest,
};

pub use local::{
    Changes, LocalStore, MasterKey, ObjectId, ObjectRecord, Stamp, StoreError, StoreResult,
    TokenMeta,
};

#[cfg(feature = "pkcs11")]
pub use pkcs11::{Pkcs11Backend, Pkcs11Settings};
pub use secret::resolve_secret;

#[cfg(feature = "aws-kms")]
pub use aws_kms::{AwsKmsBackend, AwsKmsSettings};
