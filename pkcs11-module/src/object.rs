//! Objects: which attributes each class has, their defaults, which are secret, which
//! may change, and how an object is laid out for the store.

use crate::{bail, Attributes, Error, Result};
use cryptoki_sys::*;
use hsmux_mech::KeyMaterial;
use std::sync::{Arc, OnceLock};

/// What the token layer keeps of a key a service holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteKey {
    /// The backend's reference, passed back in requests.
    pub key_ref: String,
    /// The key kind as the service describes it (`None` for certificates, data).
    pub kind: Option<hsmux_backends::KeyKind>,
}

/// One object as the token layer holds it. Immutable: a change makes a new `Object`.
pub struct Object {
    /// Its handle in this process.
    pub handle: CK_OBJECT_HANDLE,
    /// Every attribute (the secret ones only when `complete`).
    pub attrs: Attributes,
    /// Identity in the token's store, for token objects.
    pub store_id: Option<hsmux_backends::ObjectId>,
    /// The session that owns it, for session objects.
    pub owner: Option<CK_SESSION_HANDLE>,
    /// False while the secret part of a token object is sealed (no login yet).
    pub complete: bool,
    /// The backend's reference and key kind, for objects held by a remote service.
    pub remote: Option<RemoteKey>,
    key: OnceLock<Arc<KeyMaterial>>,
}

impl Object {
    /// A new object around checked attributes.
    pub fn new(
        handle: CK_OBJECT_HANDLE,
        attrs: Attributes,
        store_id: Option<hsmux_backends::ObjectId>,
        owner: Option<CK_SESSION_HANDLE>,
        complete: bool,
    ) -> Object {
        Object {
            handle,
            attrs,
            store_id,
            owner,
            complete,
            remote: None,
            key: OnceLock::new(),
        }
    }
    /// Marks the object as held by a remote service.
    pub fn with_remote(mut self, key: RemoteKey) -> Object {
        self.remote = Some(key);
        self
    }
    /// `CKA_CLASS`.
    pub fn class(&self) -> CK_OBJECT_CLASS {
        self.attrs
            .get_ulong(CKA_CLASS)
            .ok()
            .flatten()
            .unwrap_or(CK_UNAVAILABLE_INFORMATION)
    }
    /// A `CK_BBOOL` attribute, false when absent.
    pub fn flag(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        self.attrs.get_bool(t).ok().flatten().unwrap_or(false)
    }
    /// `CKA_PRIVATE`.
    pub fn is_private(&self) -> bool {
        self.flag(CKA_PRIVATE)
    }
    /// `CKA_TOKEN`.
    pub fn is_token(&self) -> bool {
        self.flag(CKA_TOKEN)
    }
    /// The parsed key, built once and kept with the object.
    pub fn key(&self) -> Result<Arc<KeyMaterial>> {
        if let Some(k) = self.key.get() {
            return Ok(k.clone());
        }
        if !self.complete {
            bail!(
                CKR_USER_NOT_LOGGED_IN,
                "the key's secret part is sealed until C_Login"
            );
        }
        let k = match (&self.remote, self.attrs.get(CKA_PUBLIC_KEY_INFO)) {
            // A service's key: only its public half is here (for local verify/encrypt).
            (Some(_), Some(spki)) if !spki.is_empty() => {
                Arc::new(KeyMaterial::from_public_key_der(spki)?)
            }
            (Some(_), _) => bail!(
                CKR_KEY_FUNCTION_NOT_PERMITTED,
                "the key is held by its service"
            ),
            (None, _) => Arc::new(KeyMaterial::from_attributes(&self.attrs)?),
        };
        Ok(self.key.get_or_init(|| k).clone())
    }
    /// Whether every `(type, value)` of a search template matches.
    pub fn matches(&self, template: &Attributes) -> bool {
        template.iter().all(|(t, v)| self.attrs.get(t) == Some(v))
    }
}

/// Attributes of every key.
const KEY: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_KEY_TYPE,
    CKA_ID,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_DERIVE,
    CKA_LOCAL,
    CKA_KEY_GEN_MECHANISM,
    CKA_ALLOWED_MECHANISMS,
];
/// Attributes of every public key.
const PUBLIC: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_SUBJECT,
    CKA_ENCRYPT,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_WRAP,
    CKA_TRUSTED,
    CKA_PUBLIC_KEY_INFO,
];
/// Attributes of every private key.
const PRIVATE: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_SUBJECT,
    CKA_SENSITIVE,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_UNWRAP,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_PUBLIC_KEY_INFO,
];
/// Attributes of every secret key.
const SECRET: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_CHECK_VALUE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_VALUE,
    CKA_VALUE_LEN,
];
const RSA_PUBLIC: &[CK_ATTRIBUTE_TYPE] = &[CKA_MODULUS, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT];
const RSA_PRIVATE: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_MODULUS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_COEFFICIENT,
];
const EC_PUBLIC: &[CK_ATTRIBUTE_TYPE] = &[CKA_EC_PARAMS, CKA_EC_POINT];
const EC_PRIVATE: &[CK_ATTRIBUTE_TYPE] = &[CKA_EC_PARAMS, CKA_VALUE];

/// The attribute types an object of this class and key/certificate type may carry
/// besides the common ones, as the lists of its class, its kind and its type.
pub fn allowed(class: CK_OBJECT_CLASS, subtype: CK_ULONG) -> [&'static [CK_ATTRIBUTE_TYPE]; 3] {
    const DATA: &[CK_ATTRIBUTE_TYPE] = &[CKA_APPLICATION, CKA_OBJECT_ID, CKA_VALUE];
    const CERT_X509: &[CK_ATTRIBUTE_TYPE] = &[
        CKA_CERTIFICATE_TYPE,
        CKA_TRUSTED,
        CKA_CERTIFICATE_CATEGORY,
        CKA_CHECK_VALUE,
        CKA_START_DATE,
        CKA_END_DATE,
        CKA_PUBLIC_KEY_INFO,
        CKA_SUBJECT,
        CKA_ID,
        CKA_ISSUER,
        CKA_SERIAL_NUMBER,
        CKA_VALUE,
        CKA_URL,
        CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
        CKA_HASH_OF_ISSUER_PUBLIC_KEY,
        CKA_JAVA_MIDP_SECURITY_DOMAIN,
        CKA_NAME_HASH_ALGORITHM,
    ];
    match (class, subtype) {
        (CKO_DATA, _) => [DATA, &[], &[]],
        (CKO_CERTIFICATE, CKC_X_509) => [CERT_X509, &[], &[]],
        (CKO_PUBLIC_KEY, CKK_RSA) => [KEY, PUBLIC, RSA_PUBLIC],
        (CKO_PUBLIC_KEY, CKK_EC | CKK_EC_EDWARDS) => [KEY, PUBLIC, EC_PUBLIC],
        (CKO_PRIVATE_KEY, CKK_RSA) => [KEY, PRIVATE, RSA_PRIVATE],
        (CKO_PRIVATE_KEY, CKK_EC | CKK_EC_EDWARDS) => [KEY, PRIVATE, EC_PRIVATE],
        (CKO_SECRET_KEY, _) => [KEY, SECRET, &[]],
        _ => [&[], &[], &[]],
    }
}

/// Attributes every object has.
const COMMON: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_MODIFIABLE,
    CKA_LABEL,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_UNIQUE_ID,
];

/// Whether an object of this class/subtype may carry `t`.
pub fn is_valid_for(class: CK_OBJECT_CLASS, subtype: CK_ULONG, t: CK_ATTRIBUTE_TYPE) -> bool {
    COMMON.contains(&t) || allowed(class, subtype).iter().any(|list| list.contains(&t))
}

/// Attributes holding secret key material: never returned when sensitive or
/// unextractable, and always sealed at rest.
pub fn is_secret(class: CK_OBJECT_CLASS, t: CK_ATTRIBUTE_TYPE) -> bool {
    match class {
        CKO_PRIVATE_KEY => matches!(
            t,
            CKA_PRIVATE_EXPONENT
                | CKA_PRIME_1
                | CKA_PRIME_2
                | CKA_EXPONENT_1
                | CKA_EXPONENT_2
                | CKA_COEFFICIENT
                | CKA_VALUE
        ),
        CKO_SECRET_KEY => t == CKA_VALUE,
        _ => false,
    }
}

/// Attributes only the token sets: a template may not name them (`CKR_ATTRIBUTE_READ_ONLY`).
fn token_set_only(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_LOCAL
            | CKA_KEY_GEN_MECHANISM
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_UNIQUE_ID
    )
}

/// Attributes `C_SetAttributeValue` may never change after creation.
fn fixed_after_creation(t: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        t,
        CKA_CLASS
            | CKA_TOKEN
            | CKA_PRIVATE
            | CKA_MODIFIABLE
            | CKA_COPYABLE
            | CKA_DESTROYABLE
            | CKA_KEY_TYPE
            | CKA_CERTIFICATE_TYPE
            | CKA_LOCAL
            | CKA_KEY_GEN_MECHANISM
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_UNIQUE_ID
            | CKA_MODULUS
            | CKA_MODULUS_BITS
            | CKA_PUBLIC_EXPONENT
            | CKA_PRIVATE_EXPONENT
            | CKA_PRIME_1
            | CKA_PRIME_2
            | CKA_EXPONENT_1
            | CKA_EXPONENT_2
            | CKA_COEFFICIENT
            | CKA_EC_PARAMS
            | CKA_EC_POINT
            | CKA_VALUE_LEN
            | CKA_ALWAYS_AUTHENTICATE
            | CKA_WRAP_TEMPLATE
            | CKA_UNWRAP_TEMPLATE
            | CKA_CHECK_VALUE
    )
}

fn subtype_of(attrs: &Attributes, class: CK_OBJECT_CLASS) -> Result<CK_ULONG> {
    Ok(match class {
        CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY => attrs
            .get_ulong(CKA_KEY_TYPE)?
            .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "a key needs CKA_KEY_TYPE"))?,
        CKO_CERTIFICATE => attrs.get_ulong(CKA_CERTIFICATE_TYPE)?.ok_or_else(|| {
            Error::new(
                CKR_TEMPLATE_INCOMPLETE,
                "a certificate needs CKA_CERTIFICATE_TYPE",
            )
        })?,
        _ => 0,
    })
}

/// The class and subtype (key or certificate type) of a template.
pub fn class_of(attrs: &Attributes) -> Result<(CK_OBJECT_CLASS, CK_ULONG)> {
    let class = attrs
        .get_ulong(CKA_CLASS)?
        .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_CLASS is missing"))?;
    let subtype = subtype_of(attrs, class)?;
    match (class, subtype) {
        (CKO_DATA, _)
        | (CKO_CERTIFICATE, CKC_X_509)
        | (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, CKK_RSA | CKK_EC | CKK_EC_EDWARDS)
        | (
            CKO_SECRET_KEY,
            CKK_AES | CKK_DES | CKK_DES2 | CKK_DES3 | CKK_GENERIC_SECRET | CKK_SHA_1_HMAC
            | CKK_SHA224_HMAC | CKK_SHA256_HMAC | CKK_SHA384_HMAC | CKK_SHA512_HMAC,
        ) => Ok((class, subtype)),
        (CKO_CERTIFICATE, t) => bail!(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "certificate type {t:#x} is not supported"
        ),
        (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY, t) => {
            bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "key type {t:#x} is not supported for class {class:#x}"
            )
        }
        _ => bail!(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "object class {class:#x} is not supported"
        ),
    }
}

/// How an object comes to be; decides which attributes the caller may set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Origin {
    /// `C_CreateObject`: the caller supplies the value.
    Created,
    /// `C_GenerateKey(Pair)`: the token made the value (`CKA_LOCAL`).
    Generated(CK_MECHANISM_TYPE),
    /// `C_UnwrapKey` / `C_DeriveKey`: value from a wrapped blob or a derivation.
    Imported,
    /// `C_DeriveKey`: the base key's sensitivity history carries over.
    Derived {
        /// The base key's `CKA_ALWAYS_SENSITIVE`.
        always_sensitive: bool,
        /// The base key's `CKA_NEVER_EXTRACTABLE`.
        never_extractable: bool,
    },
}

const BOOL_ATTRS: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_TRUSTED,
    CKA_DERIVE,
    CKA_LOCAL,
    CKA_ENCRYPT,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_WRAP,
    CKA_SENSITIVE,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_UNWRAP,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_ALWAYS_AUTHENTICATE,
];
const ULONG_ATTRS: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_KEY_TYPE,
    CKA_CERTIFICATE_TYPE,
    CKA_CERTIFICATE_CATEGORY,
    CKA_MODULUS_BITS,
    CKA_VALUE_LEN,
    CKA_KEY_GEN_MECHANISM,
    CKA_JAVA_MIDP_SECURITY_DOMAIN,
    CKA_NAME_HASH_ALGORITHM,
];

/// Checks the shape of each value (booleans one byte, ulongs one CK_ULONG, dates 8 bytes).
pub fn check_shapes(attrs: &Attributes) -> Result<()> {
    for (t, v) in attrs.iter() {
        let ok = if BOOL_ATTRS.contains(&t) {
            v.len() == 1
        } else if ULONG_ATTRS.contains(&t) {
            v.len() == hsmux_mech::attr::ULONG_LEN
        } else if t == CKA_START_DATE || t == CKA_END_DATE {
            v.is_empty() || v.len() == 8
        } else if t == CKA_ALLOWED_MECHANISMS {
            v.len() % hsmux_mech::attr::ULONG_LEN == 0
        } else {
            true
        };
        if !ok {
            bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "attribute {t:#x} has a value of the wrong size ({} bytes)",
                v.len()
            );
        }
    }
    Ok(())
}

/// Validates a creation template and fills in defaults. `generated` holds what the
/// mechanism produced (key values), which the template may not contradict.
pub fn build(template: &Attributes, generated: &Attributes, origin: Origin) -> Result<Attributes> {
    check_shapes(template)?;
    let mut a = template.clone();
    for (t, v) in generated.iter() {
        if origin != Origin::Created {
            // Parameters (key type, size, curve, exponent) may be restated; key values may not.
            let class = template.get_ulong(CKA_CLASS)?.unwrap_or(CKO_PRIVATE_KEY);
            if template.has(t) && (is_secret(class, t) || t == CKA_MODULUS || t == CKA_EC_POINT) {
                bail!(
                    CKR_TEMPLATE_INCONSISTENT,
                    "attribute {t:#x} is set by the token and may not be in the template"
                );
            }
        }
        a.set(t, v.to_vec());
    }
    let (class, subtype) = class_of(&a)?;
    for (t, _) in template.iter() {
        if !is_valid_for(class, subtype, t) {
            bail!(
                CKR_ATTRIBUTE_TYPE_INVALID,
                "attribute {t:#x} is not valid for class {class:#x} type {subtype:#x}"
            );
        }
        if token_set_only(t) {
            bail!(
                CKR_ATTRIBUTE_READ_ONLY,
                "attribute {t:#x} is set by the token only"
            );
        }
        if origin == Origin::Created
            && (t == CKA_VALUE_LEN || t == CKA_MODULUS_BITS)
            && class != CKO_DATA
        {
            bail!(
                CKR_ATTRIBUTE_READ_ONLY,
                "attribute {t:#x} is computed from the key value"
            );
        }
    }
    let is_key = matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY);
    let secret_class = matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY);

    a.set_default(CKA_TOKEN, [CK_FALSE]);
    a.set_default(CKA_PRIVATE, [if secret_class { CK_TRUE } else { CK_FALSE }]);
    a.set_default(CKA_MODIFIABLE, [CK_TRUE]);
    a.set_default(CKA_COPYABLE, [CK_TRUE]);
    a.set_default(CKA_DESTROYABLE, [CK_TRUE]);
    a.set_default(CKA_LABEL, Vec::new());
    a.set(CKA_UNIQUE_ID, unique_id());
    match class {
        CKO_DATA => {
            a.set_default(CKA_APPLICATION, Vec::new());
            a.set_default(CKA_OBJECT_ID, Vec::new());
            a.set_default(CKA_VALUE, Vec::new());
        }
        CKO_CERTIFICATE => {
            for t in [CKA_SUBJECT, CKA_VALUE] {
                if !a.has(t) {
                    bail!(
                        CKR_TEMPLATE_INCOMPLETE,
                        "an X.509 certificate needs attribute {t:#x}"
                    );
                }
            }
            a.set_default(CKA_TRUSTED, [CK_FALSE]);
            a.set_ulong_default(
                CKA_CERTIFICATE_CATEGORY,
                CK_CERTIFICATE_CATEGORY_UNSPECIFIED,
            );
            for t in [
                CKA_ID,
                CKA_ISSUER,
                CKA_SERIAL_NUMBER,
                CKA_URL,
                CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
                CKA_HASH_OF_ISSUER_PUBLIC_KEY,
                CKA_START_DATE,
                CKA_END_DATE,
            ] {
                a.set_default(t, Vec::new());
            }
            a.set_ulong_default(CKA_JAVA_MIDP_SECURITY_DOMAIN, 0);
            a.set_ulong_default(CKA_NAME_HASH_ALGORITHM, CKM_SHA_1);
            let check = openssl::sha::sha1(a.get(CKA_VALUE).unwrap_or_default())[..3].to_vec();
            a.set_default(CKA_CHECK_VALUE, check);
        }
        _ => {}
    }
    if is_key {
        a.set_default(CKA_ID, Vec::new());
        a.set_default(CKA_START_DATE, Vec::new());
        a.set_default(CKA_END_DATE, Vec::new());
        // EC private keys exist to sign and to agree keys: ECDH is on unless refused
        // (Java's key pair generation leaves CKA_DERIVE out and then derives).
        let derive = class == CKO_PRIVATE_KEY && subtype == CKK_EC;
        a.set_default(CKA_DERIVE, [if derive { CK_TRUE } else { CK_FALSE }]);
        a.set_default(CKA_ALLOWED_MECHANISMS, Vec::new());
        match origin {
            Origin::Generated(m) => {
                a.set_bool(CKA_LOCAL, true);
                a.set_ulong(CKA_KEY_GEN_MECHANISM, m);
            }
            _ => {
                a.set_bool(CKA_LOCAL, false);
                a.set_ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
            }
        }
    }
    // EC and Edwards keys cannot encrypt or wrap: only RSA and secret keys default to it.
    let ciphers = !matches!(subtype, CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY);
    let cipher_default = [if ciphers { CK_TRUE } else { CK_FALSE }];
    match class {
        CKO_PUBLIC_KEY => {
            a.set_default(CKA_VERIFY, [CK_TRUE]);
            for t in [CKA_ENCRYPT, CKA_WRAP] {
                a.set_default(t, cipher_default);
            }
            a.set_default(CKA_VERIFY_RECOVER, [CK_FALSE]);
            a.set_default(CKA_TRUSTED, [CK_FALSE]);
            a.set_default(CKA_SUBJECT, Vec::new());
        }
        CKO_PRIVATE_KEY | CKO_SECRET_KEY => {
            a.set_default(CKA_SIGN, [CK_TRUE]);
            for t in [CKA_DECRYPT, CKA_UNWRAP] {
                a.set_default(t, cipher_default);
            }
            if class == CKO_SECRET_KEY {
                for t in [CKA_ENCRYPT, CKA_VERIFY, CKA_WRAP] {
                    a.set_default(t, [CK_TRUE]);
                }
                a.set_default(CKA_TRUSTED, [CK_FALSE]);
            } else {
                a.set_default(CKA_SIGN_RECOVER, [CK_FALSE]);
                a.set_default(CKA_ALWAYS_AUTHENTICATE, [CK_FALSE]);
                a.set_default(CKA_SUBJECT, Vec::new());
            }
            a.set_default(CKA_SENSITIVE, [CK_TRUE]);
            // A key its creator asked to be readable is also wrappable unless the
            // template says otherwise; sensitive keys stay inside unless allowed out.
            let sensitive = a.bool_or(CKA_SENSITIVE, true)?;
            a.set_default(
                CKA_EXTRACTABLE,
                [if sensitive { CK_FALSE } else { CK_TRUE }],
            );
            a.set_default(CKA_WRAP_WITH_TRUSTED, [CK_FALSE]);
            let extractable = a.bool_or(CKA_EXTRACTABLE, false)?;
            // Generated keys start the bookkeeping; derived keys inherit it from their base.
            let (always, never) = match origin {
                Origin::Generated(_) => (true, true),
                Origin::Derived {
                    always_sensitive,
                    never_extractable,
                } => (always_sensitive, never_extractable),
                Origin::Created | Origin::Imported => (false, false),
            };
            a.set_bool(CKA_ALWAYS_SENSITIVE, always && sensitive);
            a.set_bool(CKA_NEVER_EXTRACTABLE, never && !extractable);
        }
        _ => {}
    }
    if is_key {
        // Parsing proves the value is a usable key and yields derived sizes.
        let km = KeyMaterial::from_attributes(&a)?;
        match class {
            CKO_SECRET_KEY => {
                a.set_ulong(CKA_VALUE_LEN, km.size() as CK_ULONG);
                let check = secret_check_value(subtype, a.get(CKA_VALUE).unwrap_or_default())?;
                match template.get(CKA_CHECK_VALUE) {
                    None => a.set(CKA_CHECK_VALUE, check),
                    Some([]) => {}
                    Some(given) if given == check.as_slice() => {}
                    Some(_) => bail!(
                        CKR_ATTRIBUTE_VALUE_INVALID,
                        "CKA_CHECK_VALUE does not match the key"
                    ),
                }
            }
            CKO_PUBLIC_KEY if subtype == CKK_RSA => {
                a.set_ulong(CKA_MODULUS_BITS, km.size() as CK_ULONG)
            }
            _ => {}
        }
    }
    Ok(a)
}

/// Applies `C_SetAttributeValue` changes to a copy of `current`, enforcing what may change.
pub fn apply_changes(current: &Attributes, changes: &Attributes, so: bool) -> Result<Attributes> {
    check_shapes(changes)?;
    let (class, subtype) = class_of(current)?;
    if !current.bool_or(CKA_MODIFIABLE, true)? {
        bail!(CKR_ACTION_PROHIBITED, "the object has CKA_MODIFIABLE=false");
    }
    let mut a = current.clone();
    for (t, v) in changes.iter() {
        if !is_valid_for(class, subtype, t) {
            bail!(
                CKR_ATTRIBUTE_TYPE_INVALID,
                "attribute {t:#x} is not valid for this object"
            );
        }
        let same = current.get(t) == Some(v);
        if fixed_after_creation(t) && !same {
            bail!(
                CKR_ATTRIBUTE_READ_ONLY,
                "attribute {t:#x} cannot change after creation"
            );
        }
        let value_attr = is_secret(class, t) || (class == CKO_CERTIFICATE && t == CKA_VALUE);
        if value_attr && !same {
            bail!(
                CKR_ATTRIBUTE_READ_ONLY,
                "attribute {t:#x} cannot change after creation"
            );
        }
        let now = |x: CK_ATTRIBUTE_TYPE| current.bool_or(x, false);
        let want = v.first().copied().unwrap_or(0) != 0;
        match t {
            // One-way switches: a key can become more protected, never less.
            CKA_SENSITIVE if now(CKA_SENSITIVE)? && !want => {
                bail!(
                    CKR_ATTRIBUTE_READ_ONLY,
                    "CKA_SENSITIVE cannot be turned off"
                )
            }
            CKA_EXTRACTABLE if !now(CKA_EXTRACTABLE)? && want => {
                bail!(
                    CKR_ATTRIBUTE_READ_ONLY,
                    "CKA_EXTRACTABLE cannot be turned back on"
                )
            }
            CKA_WRAP_WITH_TRUSTED if now(CKA_WRAP_WITH_TRUSTED)? && !want => {
                bail!(
                    CKR_ATTRIBUTE_READ_ONLY,
                    "CKA_WRAP_WITH_TRUSTED cannot be turned off"
                )
            }
            CKA_TRUSTED if !so && want != now(CKA_TRUSTED)? => {
                bail!(
                    CKR_ATTRIBUTE_READ_ONLY,
                    "only the SO may change CKA_TRUSTED"
                )
            }
            _ => {}
        }
        a.set(t, v.to_vec());
    }
    Ok(a)
}

/// Applies a `C_CopyObject` template: like a change, but CKA_TOKEN/CKA_PRIVATE/CKA_MODIFIABLE may be set.
pub fn apply_copy(current: &Attributes, changes: &Attributes) -> Result<Attributes> {
    if !current.bool_or(CKA_COPYABLE, true)? {
        bail!(CKR_ACTION_PROHIBITED, "the object has CKA_COPYABLE=false");
    }
    let mut relaxed = current.clone();
    let mut rest = Attributes::new();
    for (t, v) in changes.iter() {
        match t {
            CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE | CKA_DESTROYABLE => {
                if v.len() != 1 {
                    bail!(
                        CKR_ATTRIBUTE_VALUE_INVALID,
                        "attribute {t:#x} must be a CK_BBOOL"
                    );
                }
                // CKA_MODIFIABLE may go true→false only, so a read-only original stays read-only.
                if t == CKA_MODIFIABLE && v[0] != 0 && !current.bool_or(CKA_MODIFIABLE, true)? {
                    bail!(
                        CKR_ATTRIBUTE_READ_ONLY,
                        "a copy cannot be more modifiable than its original"
                    );
                }
                relaxed.set(t, v.to_vec());
            }
            _ => rest.set(t, v.to_vec()),
        }
    }
    // Changes to other attributes follow the C_SetAttributeValue rules, even on
    // non-modifiable originals (the copy is a new object).
    relaxed.set_bool(CKA_MODIFIABLE, true);
    let mut out = apply_changes(&relaxed, &rest, false)?;
    out.set(
        CKA_MODIFIABLE,
        changes
            .get(CKA_MODIFIABLE)
            .or(current.get(CKA_MODIFIABLE))
            .unwrap_or(&[CK_TRUE])
            .to_vec(),
    );
    out.set(CKA_UNIQUE_ID, unique_id());
    Ok(out)
}

/// `CKA_CHECK_VALUE` of a secret key: the first three bytes of ECB encryption of a zero
/// block for block-cipher keys, of the SHA-1 of the value for other secrets.
fn secret_check_value(key_type: CK_KEY_TYPE, value: &[u8]) -> Result<Vec<u8>> {
    Ok(hsmux_mech::block_cipher_check_value(key_type, value)?
        .unwrap_or_else(|| openssl::sha::sha1(value)[..3].to_vec()))
}

fn unique_id() -> Vec<u8> {
    let mut b = [0u8; 16];
    let _ = hsmux_mech::random(&mut b);
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<String>()
        .into_bytes()
}

/// What `C_GetAttributeValue` may reveal of `t`.
pub enum Reveal<'a> {
    /// The value.
    Value(&'a [u8]),
    /// `CKR_ATTRIBUTE_SENSITIVE`.
    Sensitive,
    /// `CKR_ATTRIBUTE_TYPE_INVALID`.
    Invalid,
}

/// The rule for one attribute read.
pub fn reveal(obj: &Object, t: CK_ATTRIBUTE_TYPE) -> Reveal<'_> {
    let class = obj.class();
    if is_secret(class, t) && (obj.flag(CKA_SENSITIVE) || !obj.flag(CKA_EXTRACTABLE)) {
        return Reveal::Sensitive;
    }
    match obj.attrs.get(t) {
        Some(v) => Reveal::Value(v),
        None if is_secret(class, t) && !obj.complete => Reveal::Sensitive,
        None => Reveal::Invalid,
    }
}

/// Serialises attributes for the store: `count:u32 (type:u64 len:u32 bytes)*`, little endian.
pub fn encode(
    attrs: &Attributes,
    pick: impl Fn(CK_ATTRIBUTE_TYPE) -> bool,
) -> zeroize::Zeroizing<Vec<u8>> {
    let chosen: Vec<_> = attrs.iter().filter(|(t, _)| pick(*t)).collect();
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(
        4 + chosen.iter().map(|(_, v)| 12 + v.len()).sum::<usize>(),
    ));
    out.extend_from_slice(&(chosen.len() as u32).to_le_bytes());
    for (t, v) in chosen {
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// Parses what [`encode`] wrote, adding to `into`.
pub fn decode(bytes: &[u8], into: &mut Attributes) -> Result<()> {
    let corrupt = || Error::new(CKR_DEVICE_ERROR, "stored object is malformed");
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&[u8]> {
        if rest.len() < n {
            return Err(corrupt());
        }
        let (h, t) = rest.split_at(n);
        rest = t;
        Ok(h)
    };
    if bytes.is_empty() {
        return Ok(());
    }
    let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt())?);
    for _ in 0..count {
        let t = u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt())?);
        let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt())?) as usize;
        into.set(t, take(len)?.to_vec());
    }
    Ok(())
}

trait SetUlongDefault {
    fn set_ulong_default(&mut self, t: CK_ATTRIBUTE_TYPE, v: CK_ULONG);
}
impl SetUlongDefault for Attributes {
    fn set_ulong_default(&mut self, t: CK_ATTRIBUTE_TYPE, v: CK_ULONG) {
        self.set_default(t, v.to_ne_bytes().to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips() {
        let mut a = Attributes::new();
        a.set_ulong(CKA_CLASS, CKO_DATA);
        a.set(CKA_LABEL, b"x".to_vec());
        a.set(CKA_VALUE, Vec::new());
        let mut b = Attributes::new();
        decode(&encode(&a, |_| true), &mut b).unwrap();
        assert_eq!(a, b);
        assert!(decode(&[1, 0, 0, 0, 9], &mut b).is_err());
    }

    #[test]
    fn sensitive_can_only_be_switched_on() {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set_ulong(CKA_KEY_TYPE, CKK_AES);
        t.set(CKA_VALUE, vec![7u8; 16]);
        t.set_bool(CKA_SENSITIVE, false);
        t.set_bool(CKA_EXTRACTABLE, true);
        let a = build(&t, &Attributes::new(), Origin::Created).unwrap();
        assert_eq!(a.get_ulong(CKA_VALUE_LEN).unwrap(), Some(16));
        let mut on = Attributes::new();
        on.set_bool(CKA_SENSITIVE, true);
        let b = apply_changes(&a, &on, false).unwrap();
        let mut off = Attributes::new();
        off.set_bool(CKA_SENSITIVE, false);
        assert_eq!(
            apply_changes(&b, &off, false).unwrap_err().rv,
            CKR_ATTRIBUTE_READ_ONLY
        );
        let mut ext = Attributes::new();
        ext.set_bool(CKA_EXTRACTABLE, false);
        let c = apply_changes(&b, &ext, false).unwrap();
        ext.set_bool(CKA_EXTRACTABLE, true);
        assert_eq!(
            apply_changes(&c, &ext, false).unwrap_err().rv,
            CKR_ATTRIBUTE_READ_ONLY
        );
    }

    #[test]
    fn aes_keys_get_the_standard_check_value_and_wrong_ones_are_refused() {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set_ulong(CKA_KEY_TYPE, CKK_AES);
        t.set(CKA_VALUE, vec![0u8; 16]);
        let a = build(&t, &Attributes::new(), Origin::Created).unwrap();
        // AES-128 of the zero block under the zero key starts 66 e9 4b.
        assert_eq!(a.get(CKA_CHECK_VALUE), Some(&[0x66, 0xe9, 0x4b][..]));
        t.set(CKA_CHECK_VALUE, vec![1, 2, 3]);
        assert_eq!(
            build(&t, &Attributes::new(), Origin::Created)
                .unwrap_err()
                .rv,
            CKR_ATTRIBUTE_VALUE_INVALID
        );
    }

    #[test]
    fn token_only_attributes_and_foreign_attributes_are_refused() {
        let mut t = Attributes::new();
        t.set_ulong(CKA_CLASS, CKO_DATA);
        t.set_bool(CKA_LOCAL, true);
        assert_eq!(
            build(&t, &Attributes::new(), Origin::Created)
                .unwrap_err()
                .rv,
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        t.remove(CKA_LOCAL);
        t.set(CKA_MODULUS, vec![1]);
        assert_eq!(
            build(&t, &Attributes::new(), Origin::Created)
                .unwrap_err()
                .rv,
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        t.remove(CKA_MODULUS);
        assert!(build(&t, &Attributes::new(), Origin::Created).is_ok());
    }
}
