//! hsmux backends: where keys live.
//!
//! [`backend`] is the contract between the token layer and a key service: blocking,
//! `Send + Sync`, one instance per configured token. Each service is a folder of its
//! own here with its settings (a serde struct, declared once), its [`Backend`]
//! implementation and one registration line in [`backends!`] below; the module's
//! configuration dispatches on the `backend = "…"` name through [`registry`].
//!
//! The embedded keystore ([`local`]) registers the same way but opens to a
//! [`LocalStore`], not a [`Backend`]: its objects are complete PKCS#11 objects that
//! hsmux keeps itself (every attribute, including `CKA_VALUE`, sealed under the user's
//! PIN) and its keys are used in-process by the mechanism layer, so there is no service
//! call to describe — a `Backend` would have to carry every PKCS#11 attribute rule and
//! every mechanism back through its interface.

pub mod backend;
pub mod local;
pub mod registry;
pub mod secret;

/// Declares the backends: one line each, `module: "name", feature "cargo-feature";`.
/// The module is compiled, and its `ENTRY` registered under `name`, only with its
/// feature; without it the name is still known, so a configuration naming it gets an
/// error that says which feature to build.
macro_rules! backends {
    ($($module:ident: $name:literal, feature $feature:tt;)*) => {
        $(#[cfg(feature = $feature)] pub mod $module;)*

        /// Every backend this crate knows, the embedded keystore first.
        pub static BACKENDS: &[registry::Registration] = &[
            registry::Registration {
                name: "local",
                feature: "local",
                entry: Some(&local::ENTRY),
            },
            $(registry::Registration {
                name: $name,
                feature: $feature,
                entry: {
                    #[cfg(feature = $feature)]
                    let entry: Option<&'static dyn registry::Registered> = Some(&$module::ENTRY);
                    #[cfg(not(feature = $feature))]
                    let entry: Option<&'static dyn registry::Registered> = None;
                    entry
                },
            },)*
        ];
    };
}

backends! {
    pkcs11: "pkcs11", feature "pkcs11";
    aws_kms: "aws-kms", feature "aws-kms";
}

pub use backend::{
    Backend, BackendError, BackendResult, Capabilities, CipherRequest, DecryptScheme, HashAlg,
    KeyKind, KeySpec, KeyUsage, MacScheme, Mgf, ObjectClass, PssSalt, RawAttributes, RemoteObject,
    SignRequest, SignScheme, SymmetricScheme,
};

pub use local::{
    Changes, LocalSettings, LocalStore, MasterKey, ObjectId, ObjectRecord, Stamp, StoreError,
    StoreResult, TokenMeta,
};

pub use registry::{OpenContext, Opened, SettingError, Settings};
pub use secret::{resolve_secret, SecretRef};

#[cfg(feature = "pkcs11")]
pub use pkcs11::{PinSource, Pkcs11Backend, Pkcs11Settings};

#[cfg(feature = "aws-kms")]
pub use aws_kms::{AwsKmsBackend, AwsKmsSettings};
