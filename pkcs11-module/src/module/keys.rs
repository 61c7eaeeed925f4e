//! Keys: generation (in software or in the service), wrapping, unwrapping, derivation.

use super::*;

impl Module {
    /// `C_GenerateKey`.
    pub fn generate_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        template: &Attributes,
    ) -> Result<CK_OBJECT_HANDLE> {
        let (s, t) = self.session(h)?;
        let mut tmpl = template.clone();
        default_class(&mut tmpl, CKO_SECRET_KEY)?;
        pre_check(t, &tmpl, s.rw)?;
        if t.service().is_some() && tmpl.bool_or(CKA_TOKEN, false)? {
            let len = tmpl.get_ulong(CKA_VALUE_LEN)?.unwrap_or(0) as usize;
            let kind = match mech {
                Mechanism::AesKeyGen => KeyKind::Aes { len },
                Mechanism::GenericSecretKeyGen if tmpl.bool_or(CKA_SIGN, true)? => {
                    let hash = match len {
                        48 => HashAlg::Sha384,
                        64 => HashAlg::Sha512,
                        _ => HashAlg::Sha256,
                    };
                    KeyKind::Hmac { hash, len }
                }
                Mechanism::GenericSecretKeyGen => KeyKind::GenericSecret { len },
                other => bail!(
                    CKR_MECHANISM_INVALID,
                    "mechanism {:#x} does not generate secret keys",
                    other.mech_type()
                ),
            };
            let spec = key_spec(kind, &Attributes::new(), &tmpl)?;
            let made = t.generate_remote(&spec)?;
            return made
                .iter()
                .find(|(c, _)| *c == CKO_SECRET_KEY)
                .map(|(_, h)| *h)
                .ok_or_else(|| {
                    Error::new(CKR_DEVICE_ERROR, "the service created no secret key object")
                });
        }
        let generated = hsmux_mech::generate_key(mech, &tmpl)?;
        t.create(
            &tmpl,
            &generated,
            Origin::Generated(mech.mech_type()),
            s.handle,
            s.rw,
        )
    }

    /// `C_GenerateKeyPair`: (public, private).
    pub fn generate_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        pub_t: &Attributes,
        priv_t: &Attributes,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let (s, t) = self.session(h)?;
        let (mut pt, mut st) = (pub_t.clone(), priv_t.clone());
        default_class(&mut pt, CKO_PUBLIC_KEY)?;
        default_class(&mut st, CKO_PRIVATE_KEY)?;
        pre_check(t, &pt, s.rw)?;
        pre_check(t, &st, s.rw)?;
        if t.service().is_some() && st.bool_or(CKA_TOKEN, false)? {
            let kind = match mech {
                Mechanism::RsaPkcsKeyPairGen => {
                    let bits = pt.get_ulong(CKA_MODULUS_BITS)?.ok_or_else(|| {
                        Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_MODULUS_BITS is missing")
                    })?;
                    KeyKind::Rsa {
                        bits: bits as usize,
                    }
                }
                Mechanism::EcKeyPairGen => KeyKind::Ec {
                    params: pt
                        .get(CKA_EC_PARAMS)
                        .ok_or_else(|| {
                            Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_EC_PARAMS is missing")
                        })?
                        .to_vec(),
                },
                Mechanism::EcEdwardsKeyPairGen => KeyKind::Ed25519,
                other => bail!(
                    CKR_MECHANISM_INVALID,
                    "mechanism {:#x} does not generate key pairs",
                    other.mech_type()
                ),
            };
            let spec = key_spec(kind, &pt, &st)?;
            let made = t.generate_remote(&spec)?;
            let find = |class| made.iter().find(|(c, _)| *c == class).map(|(_, h)| *h);
            return match (find(CKO_PUBLIC_KEY), find(CKO_PRIVATE_KEY)) {
                (Some(p), Some(k)) => Ok((p, k)),
                _ => Err(Error::new(
                    CKR_DEVICE_ERROR,
                    "the service did not return both halves of the new key",
                )),
            };
        }
        let (gp, gs) = hsmux_mech::generate_key_pair(mech, &pt, &st)?;
        // Both halves share one CKA_ID so clients can pair them.
        let id = match (pt.get(CKA_ID), st.get(CKA_ID)) {
            (Some(a), _) if !a.is_empty() => a.to_vec(),
            (_, Some(b)) if !b.is_empty() => b.to_vec(),
            _ => {
                let public = gp
                    .get(CKA_EC_POINT)
                    .or(gp.get(CKA_MODULUS))
                    .unwrap_or_default();
                openssl::sha::sha1(public).to_vec()
            }
        };
        pt.set_default(CKA_ID, id.clone());
        st.set_default(CKA_ID, id);
        let origin = Origin::Generated(mech.mech_type());
        // Build both before storing either, so a template error stores nothing.
        let pa = crate::object::build(&pt, &gp, origin)?;
        let sa = crate::object::build(&st, &gs, origin)?;
        let hp = t.insert(pa, s.handle, s.rw)?;
        match t.insert(sa, s.handle, s.rw) {
            Ok(hs) => Ok((hp, hs)),
            Err(e) => {
                let _ = t.destroy(hp, s.rw);
                Err(e)
            }
        }
    }

    /// A key object's parsed key, after the PKCS#11 usage checks; with whether it
    /// needs a context-specific login per operation.
    pub(super) fn usable_key(
        &self,
        t: &Token,
        key: CK_OBJECT_HANDLE,
        usage: Usage,
        mech: &Mechanism,
    ) -> Result<(Arc<KeyMaterial>, bool)> {
        let obj = self.key_object(t, key, usage, mech.mech_type())?;
        Ok((obj.key()?, obj.flag(CKA_ALWAYS_AUTHENTICATE)))
    }

    /// A key object after the PKCS#11 usage checks.
    pub(super) fn key_object(
        &self,
        t: &Token,
        key: CK_OBJECT_HANDLE,
        usage: Usage,
        m: CK_MECHANISM_TYPE,
    ) -> Result<Arc<crate::object::Object>> {
        let invalid = match usage {
            Usage::Wrap => CKR_WRAPPING_KEY_HANDLE_INVALID,
            Usage::Unwrap => CKR_UNWRAPPING_KEY_HANDLE_INVALID,
            _ => CKR_KEY_HANDLE_INVALID,
        };
        let obj = t
            .object(key)
            .map_err(|_| Error::new(invalid, format!("no key {key}")))?;
        let (attr, name) = match usage {
            Usage::Sign => (CKA_SIGN, "CKA_SIGN"),
            Usage::Verify => (CKA_VERIFY, "CKA_VERIFY"),
            Usage::Encrypt => (CKA_ENCRYPT, "CKA_ENCRYPT"),
            Usage::Decrypt => (CKA_DECRYPT, "CKA_DECRYPT"),
            Usage::Wrap => (CKA_WRAP, "CKA_WRAP"),
            Usage::Unwrap => (CKA_UNWRAP, "CKA_UNWRAP"),
            Usage::Derive => (CKA_DERIVE, "CKA_DERIVE"),
        };
        if !matches!(
            obj.class(),
            CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY
        ) {
            bail!(invalid, "object {key} is not a key");
        }
        if !obj.flag(attr) {
            bail!(CKR_KEY_FUNCTION_NOT_PERMITTED, "key {key} has {name}=false");
        }
        if let Some(allowed) = obj.attrs.get(CKA_ALLOWED_MECHANISMS) {
            let ok = allowed.is_empty()
                || allowed
                    .chunks_exact(hsmux_mech::attr::ULONG_LEN)
                    .any(|c| c.try_into().map(CK_ULONG::from_ne_bytes).ok() == Some(m));
            if !ok {
                bail!(
                    CKR_MECHANISM_INVALID,
                    "mechanism {m:#x} is not in the key's CKA_ALLOWED_MECHANISMS"
                );
            }
        }
        Ok(obj)
    }

    /// `C_WrapKey`: the wrapped bytes (computed anew for a length query).
    pub fn wrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
    ) -> Result<Vec<u8>> {
        let (_, t) = self.session(h)?;
        let (wk, _) = self.usable_key(t, wrapping, Usage::Wrap, mech)?;
        let obj = t
            .object(key)
            .map_err(|_| Error::new(CKR_KEY_HANDLE_INVALID, format!("no key {key}")))?;
        if !obj.flag(CKA_EXTRACTABLE) {
            bail!(CKR_KEY_UNEXTRACTABLE, "key {key} has CKA_EXTRACTABLE=false");
        }
        if obj.flag(CKA_WRAP_WITH_TRUSTED) && !t.object(wrapping)?.flag(CKA_TRUSTED) {
            bail!(
                CKR_KEY_NOT_WRAPPABLE,
                "key {key} may only be wrapped by a CKA_TRUSTED key"
            );
        }
        let bytes = match obj.class() {
            CKO_SECRET_KEY => Zeroizing::new(
                obj.attrs
                    .get(CKA_VALUE)
                    .ok_or_else(|| {
                        Error::new(CKR_USER_NOT_LOGGED_IN, "key value sealed until C_Login")
                    })?
                    .to_vec(),
            ),
            CKO_PRIVATE_KEY => obj.key()?.to_pkcs8_der()?,
            _ => bail!(
                CKR_KEY_NOT_WRAPPABLE,
                "only secret and private keys can be wrapped"
            ),
        };
        hsmux_mech::wrap(mech, &wk, &bytes)
    }

    /// `C_UnwrapKey`.
    pub fn unwrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        template: &Attributes,
    ) -> Result<CK_OBJECT_HANDLE> {
        let (s, t) = self.session(h)?;
        let (uk, _) = self.usable_key(t, unwrapping, Usage::Unwrap, mech)?;
        let class = template
            .get_ulong(CKA_CLASS)?
            .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "C_UnwrapKey needs CKA_CLASS"))?;
        pre_check(t, template, s.rw)?;
        let bytes = hsmux_mech::unwrap(mech, &uk, wrapped)?;
        let value = match class {
            CKO_SECRET_KEY => {
                let mut v = Attributes::new();
                v.set(CKA_VALUE, bytes.to_vec());
                v
            }
            CKO_PRIVATE_KEY => {
                hsmux_mech::private_key_attributes_from_pkcs8(&bytes).map_err(|e| {
                    Error::new(
                        CKR_WRAPPED_KEY_INVALID,
                        format!("not a PKCS#8 private key: {}", e.msg),
                    )
                })?
            }
            _ => bail!(
                CKR_TEMPLATE_INCONSISTENT,
                "only secret and private keys can be unwrapped"
            ),
        };
        if let (Some(want), Some(got)) = (
            template.get_ulong(CKA_KEY_TYPE)?,
            value.get_ulong(CKA_KEY_TYPE)?,
        ) {
            if want != got {
                bail!(
                    CKR_TEMPLATE_INCONSISTENT,
                    "wrapped key is of type {got:#x}, template says {want:#x}"
                );
            }
        }
        t.create(template, &value, Origin::Imported, s.handle, s.rw)
    }

    /// `C_DeriveKey` (ECDH).
    pub fn derive_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        base: CK_OBJECT_HANDLE,
        template: &Attributes,
    ) -> Result<CK_OBJECT_HANDLE> {
        let (s, t) = self.session(h)?;
        let base_obj = self.key_object(t, base, Usage::Derive, mech.mech_type())?;
        let bk = base_obj.key()?;
        let mut tmpl = template.clone();
        default_class(&mut tmpl, CKO_SECRET_KEY)?;
        tmpl.set_default(CKA_KEY_TYPE, CKK_GENERIC_SECRET.to_ne_bytes().to_vec());
        // A derived secret named by class and type alone is read back by its creator
        // (Java's ECDH does exactly that): readable unless the template says otherwise.
        tmpl.set_default(CKA_SENSITIVE, [CK_FALSE]);
        tmpl.set_default(CKA_EXTRACTABLE, [CK_TRUE]);
        pre_check(t, &tmpl, s.rw)?;
        let secret = match tmpl.get_ulong(CKA_VALUE_LEN)? {
            Some(len) => hsmux_mech::derive_ecdh_key(mech, &bk, len as usize)?,
            None => hsmux_mech::derive_ecdh(mech, &bk)?,
        };
        tmpl.remove(CKA_VALUE_LEN);
        let mut value = Attributes::new();
        value.set(CKA_VALUE, secret.to_vec());
        let origin = Origin::Derived {
            always_sensitive: base_obj.flag(CKA_ALWAYS_SENSITIVE),
            never_extractable: base_obj.flag(CKA_NEVER_EXTRACTABLE),
        };
        t.create(&tmpl, &value, origin, s.handle, s.rw)
    }
}

/// A service key request from PKCS#11 templates (public, private-or-secret).
fn key_spec(kind: KeyKind, public: &Attributes, private: &Attributes) -> Result<KeySpec> {
    let pick = |t| {
        private
            .get(t)
            .filter(|v| !v.is_empty())
            .or_else(|| public.get(t).filter(|v| !v.is_empty()))
    };
    let label = String::from_utf8(pick(CKA_LABEL).unwrap_or_default().to_vec())
        .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_LABEL is not UTF-8"))?;
    let usage = KeyUsage {
        sign: private.bool_or(CKA_SIGN, true)?,
        verify: public.bool_or(CKA_VERIFY, true)? && private.bool_or(CKA_VERIFY, true)?,
        encrypt: public.bool_or(CKA_ENCRYPT, false)? || private.bool_or(CKA_ENCRYPT, false)?,
        decrypt: private.bool_or(CKA_DECRYPT, false)?,
        wrap: public.bool_or(CKA_WRAP, false)? || private.bool_or(CKA_WRAP, false)?,
        unwrap: private.bool_or(CKA_UNWRAP, false)?,
        derive: private.bool_or(CKA_DERIVE, false)?,
    };
    let raw = |a: &Attributes| a.iter().map(|(t, v)| (t, v.to_vec())).collect::<Vec<_>>();
    Ok(KeySpec {
        kind,
        label,
        id: pick(CKA_ID).unwrap_or_default().to_vec(),
        usage,
        extra: (raw(public), raw(private)),
    })
}

fn default_class(t: &mut Attributes, class: CK_OBJECT_CLASS) -> Result<()> {
    match t.get_ulong(CKA_CLASS)? {
        None => t.set_ulong(CKA_CLASS, class),
        Some(c) if c == class => {}
        Some(c) => bail!(
            CKR_TEMPLATE_INCONSISTENT,
            "CKA_CLASS {c:#x} where {class:#x} is generated"
        ),
    }
    Ok(())
}

/// Refuses early what would fail after an expensive key generation.
fn pre_check(t: &Token, tmpl: &Attributes, rw: bool) -> Result<()> {
    crate::object::check_shapes(tmpl)?;
    if tmpl.bool_or(CKA_TOKEN, false)? && !rw {
        bail!(CKR_SESSION_READ_ONLY, "token objects need a R/W session");
    }
    let private_default = matches!(
        tmpl.get_ulong(CKA_CLASS)?,
        Some(CKO_PRIVATE_KEY | CKO_SECRET_KEY)
    );
    if tmpl.bool_or(CKA_PRIVATE, private_default)? && t.user() != Some(CKU_USER) {
        bail!(
            CKR_USER_NOT_LOGGED_IN,
            "private keys need the user logged in"
        );
    }
    Ok(())
}
