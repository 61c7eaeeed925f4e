use super::*;

#[test]
fn rsa_key_pair_generation_returns_exactly_the_generated_attributes() {
    let k = rsa();
    let pub_types: Vec<_> = k.pub_attrs.iter().map(|(t, _)| t).collect();
    let mut want = vec![
        CKA_KEY_TYPE,
        CKA_MODULUS,
        CKA_MODULUS_BITS,
        CKA_PUBLIC_EXPONENT,
    ];
    want.sort();
    assert_eq!(pub_types, want);
    let priv_types: Vec<_> = k.priv_attrs.iter().map(|(t, _)| t).collect();
    let mut want = vec![
        CKA_KEY_TYPE,
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_PRIVATE_EXPONENT,
        CKA_PRIME_1,
        CKA_PRIME_2,
        CKA_EXPONENT_1,
        CKA_EXPONENT_2,
        CKA_COEFFICIENT,
    ];
    want.sort();
    assert_eq!(priv_types, want);
    assert_eq!(k.pub_attrs.get_ulong(CKA_KEY_TYPE).unwrap(), Some(CKK_RSA));
    assert_eq!(k.pub_attrs.get_ulong(CKA_MODULUS_BITS).unwrap(), Some(2048));
    assert_eq!(k.pub_attrs.get(CKA_MODULUS).unwrap().len(), 256);
    assert_eq!(k.pub_attrs.get(CKA_PUBLIC_EXPONENT).unwrap(), &[1, 0, 1]);
    assert_eq!(k.private.size(), 2048);
    assert_eq!(k.public.size(), 2048);
    assert_eq!(k.private.class(), CKO_PRIVATE_KEY);
    assert_eq!(k.public.key_type(), CKK_RSA);
}

#[test]
fn rsa_key_pair_generation_errors_and_custom_exponent() {
    let m = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
    let none = Attributes::new();
    assert_eq!(
        rv(generate_key_pair(&m, &none, &none)),
        CKR_TEMPLATE_INCOMPLETE
    );
    let mut t = Attributes::new();
    t.set_ulong(CKA_MODULUS_BITS, 512);
    assert_eq!(rv(generate_key_pair(&m, &t, &none)), CKR_KEY_SIZE_RANGE);
    t.set_ulong(CKA_MODULUS_BITS, 1024);
    t.set(CKA_PUBLIC_EXPONENT, vec![4]);
    assert_eq!(
        rv(generate_key_pair(&m, &t, &none)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    t.set(CKA_PUBLIC_EXPONENT, vec![3]);
    let (pa, _) = generate_key_pair(&m, &t, &none).unwrap();
    assert_eq!(pa.get(CKA_PUBLIC_EXPONENT).unwrap(), &[3]);
    assert_eq!(pa.get_ulong(CKA_MODULUS_BITS).unwrap(), Some(1024));
    t.set_ulong(CKA_KEY_TYPE, CKK_EC);
    assert_eq!(
        rv(generate_key_pair(&m, &t, &none)),
        CKR_TEMPLATE_INCONSISTENT
    );
    assert_eq!(
        rv(generate_key_pair(&mech(CKM_AES_KEY_GEN), &t, &none)),
        CKR_MECHANISM_INVALID
    );
}

#[test]
fn rsa_private_keys_without_crt_parts_are_completed() {
    let k = rsa();
    let mut a = with_class(k.priv_attrs.clone(), CKO_PRIVATE_KEY);
    for t in [CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT] {
        a.remove(t);
    }
    let with_primes = Arc::new(KeyMaterial::from_attributes(&a).unwrap());
    a.remove(CKA_PRIME_1);
    a.remove(CKA_PRIME_2);
    let bare = Arc::new(KeyMaterial::from_attributes(&a).unwrap());
    // PKCS#1 v1.5 is deterministic: all three must produce the same signature, and the
    // recovered key must export the same CRT parts.
    let m = mech(CKM_SHA256_RSA_PKCS);
    let want = sign_init(&m, &k.private).unwrap().sign(b"z").unwrap();
    for key in [&with_primes, &bare] {
        assert_eq!(sign_init(&m, key).unwrap().sign(b"z").unwrap(), want);
    }
    let recovered = keygen::private_attributes(&bare).unwrap();
    assert_eq!(recovered, k.priv_attrs);
    // A private exponent that does not belong to the modulus is refused.
    let mut wrong = a.clone();
    let mut d = wrong.get(CKA_PRIVATE_EXPONENT).unwrap().to_vec();
    d[100] ^= 1;
    wrong.set(CKA_PRIVATE_EXPONENT, d);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&wrong)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    let mut wrong = with_class(k.priv_attrs.clone(), CKO_PRIVATE_KEY);
    let mut dp = wrong.get(CKA_EXPONENT_1).unwrap().to_vec();
    dp[10] ^= 1;
    wrong.set(CKA_EXPONENT_1, dp);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&wrong)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    let mut wrong = with_class(k.priv_attrs.clone(), CKO_PRIVATE_KEY);
    let mut d = wrong.get(CKA_PRIVATE_EXPONENT).unwrap().to_vec();
    d[200] ^= 1;
    wrong.set(CKA_PRIVATE_EXPONENT, d);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&wrong)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    let mut wrong = with_class(k.priv_attrs.clone(), CKO_PRIVATE_KEY);
    wrong.set(CKA_PRIME_1, vec![7]);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&wrong)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    let mut missing = a.clone();
    missing.remove(CKA_MODULUS);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&missing)),
        CKR_TEMPLATE_INCOMPLETE
    );
}

#[test]
fn ec_key_pair_generation_on_each_curve() {
    for (curve, flen, point_der_len) in [
        (key::Curve::P256, 32, 67),
        (key::Curve::P384, 48, 99),
        (key::Curve::P521, 66, 136),
    ] {
        let k = ec(curve);
        let pub_types: Vec<_> = k.pub_attrs.iter().map(|(t, _)| t).collect();
        assert_eq!(pub_types, vec![CKA_KEY_TYPE, CKA_EC_PARAMS, CKA_EC_POINT]);
        let priv_types: Vec<_> = k.priv_attrs.iter().map(|(t, _)| t).collect();
        let mut want = vec![CKA_KEY_TYPE, CKA_VALUE, CKA_EC_PARAMS];
        want.sort();
        assert_eq!(priv_types, want);
        assert_eq!(k.priv_attrs.get_ulong(CKA_KEY_TYPE).unwrap(), Some(CKK_EC));
        assert_eq!(k.priv_attrs.get(CKA_VALUE).unwrap().len(), flen);
        let point = k.pub_attrs.get(CKA_EC_POINT).unwrap();
        assert_eq!(point.len(), point_der_len);
        assert_eq!(point[0], 0x04);
        assert_eq!(point[point_der_len - 2 * flen - 1], 0x04, "uncompressed");
        assert_eq!(k.private.size(), curve.bits());
        assert_eq!(public_attributes(&k.private).unwrap(), k.pub_attrs);
    }
}

#[test]
fn ec_point_is_accepted_bare_or_der_wrapped() {
    let k = ec(key::Curve::P256);
    let der = k.pub_attrs.get(CKA_EC_POINT).unwrap();
    let sig = sign_init(&mech(CKM_ECDSA), &k.private)
        .unwrap()
        .sign(&[5; 32])
        .unwrap();
    for point in [der.to_vec(), der[2..].to_vec()] {
        let mut a = with_class(k.pub_attrs.clone(), CKO_PUBLIC_KEY);
        a.set(CKA_EC_POINT, point);
        let pk = Arc::new(KeyMaterial::from_attributes(&a).unwrap());
        verify_init(&mech(CKM_ECDSA), &pk)
            .unwrap()
            .verify(&[5; 32], &sig)
            .unwrap();
    }
    let mut a = with_class(k.pub_attrs.clone(), CKO_PUBLIC_KEY);
    let mut off = der[2..].to_vec();
    off[40] ^= 1;
    a.set(CKA_EC_POINT, off);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
}

#[test]
fn ec_errors_for_unknown_curves_and_bad_scalars() {
    let m = mech(CKM_EC_KEY_PAIR_GEN);
    let none = Attributes::new();
    assert_eq!(
        rv(generate_key_pair(&m, &none, &none)),
        CKR_TEMPLATE_INCOMPLETE
    );
    // secp256k1 is a well-formed OID we do not support.
    let k1 = ec_params_attr(&h("06052b8104000a"));
    assert_eq!(
        rv(generate_key_pair(&m, &k1, &none)),
        CKR_CURVE_NOT_SUPPORTED
    );
    let junk = ec_params_attr(&[1, 2, 3]);
    assert_eq!(
        rv(generate_key_pair(&m, &junk, &none)),
        CKR_DOMAIN_PARAMS_INVALID
    );
    let k = ec(key::Curve::P256);
    let mut a = with_class(k.priv_attrs.clone(), CKO_PRIVATE_KEY);
    a.set(CKA_VALUE, vec![0; 32]);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    a.set(CKA_VALUE, vec![0xff; 32]);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    a.set(CKA_EC_PARAMS, h("06052b8104000a"));
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_CURVE_NOT_SUPPORTED
    );
    a.remove(CKA_EC_PARAMS);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_TEMPLATE_INCOMPLETE
    );
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_TEMPLATE_INCOMPLETE
    );
    a.set_ulong(CKA_KEY_TYPE, CKK_DSA);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
}

#[test]
fn ed25519_key_generation_accepts_both_param_forms() {
    for params in [key::ED25519_OID, key::ED25519_NAME] {
        let k = pair(CKM_EC_EDWARDS_KEY_PAIR_GEN, ec_params_attr(params));
        assert_eq!(k.pub_attrs.get(CKA_EC_PARAMS).unwrap(), params);
        assert_eq!(k.pub_attrs.get(CKA_EC_POINT).unwrap().len(), 34);
        assert_eq!(k.priv_attrs.get(CKA_VALUE).unwrap().len(), 32);
        assert_eq!(
            k.priv_attrs.get_ulong(CKA_KEY_TYPE).unwrap(),
            Some(CKK_EC_EDWARDS)
        );
    }
    let p256 = ec_params_attr(key::Curve::P256.params());
    assert_eq!(
        rv(generate_key_pair(
            &mech(CKM_EC_EDWARDS_KEY_PAIR_GEN),
            &p256,
            &Attributes::new()
        )),
        CKR_CURVE_NOT_SUPPORTED
    );
}

#[test]
fn secret_key_generation() {
    let none = Attributes::new();
    let m = mech(CKM_AES_KEY_GEN);
    assert_eq!(rv(generate_key(&m, &none)), CKR_TEMPLATE_INCOMPLETE);
    for len in [16, 24, 32] {
        let mut t = Attributes::new();
        t.set_ulong(CKA_VALUE_LEN, len);
        let a = generate_key(&m, &t).unwrap();
        assert_eq!(a.get_ulong(CKA_KEY_TYPE).unwrap(), Some(CKK_AES));
        assert_eq!(a.get_ulong(CKA_VALUE_LEN).unwrap(), Some(len));
        assert_eq!(a.get(CKA_VALUE).unwrap().len(), len as usize);
        assert_eq!(a.len(), 3);
    }
    let mut t = Attributes::new();
    t.set_ulong(CKA_VALUE_LEN, 20);
    assert_eq!(rv(generate_key(&m, &t)), CKR_ATTRIBUTE_VALUE_INVALID);

    let g = mech(CKM_GENERIC_SECRET_KEY_GEN);
    t.set_ulong(CKA_VALUE_LEN, 1);
    assert_eq!(
        generate_key(&g, &t)
            .unwrap()
            .get_ulong(CKA_KEY_TYPE)
            .unwrap(),
        Some(CKK_GENERIC_SECRET)
    );
    t.set_ulong(CKA_VALUE_LEN, 0);
    assert_eq!(rv(generate_key(&g, &t)), CKR_ATTRIBUTE_VALUE_INVALID);
    t.set_ulong(CKA_VALUE_LEN, 513);
    assert_eq!(rv(generate_key(&g, &t)), CKR_KEY_SIZE_RANGE);
    t.set_ulong(CKA_VALUE_LEN, 64);
    t.set_ulong(CKA_KEY_TYPE, CKK_SHA256_HMAC);
    let a = generate_key(&g, &t).unwrap();
    assert_eq!(a.get_ulong(CKA_KEY_TYPE).unwrap(), Some(CKK_SHA256_HMAC));
    t.set_ulong(CKA_KEY_TYPE, CKK_AES);
    assert_eq!(rv(generate_key(&g, &t)), CKR_TEMPLATE_INCONSISTENT);
    assert_eq!(
        rv(generate_key(&mech(CKM_ECDSA), &t)),
        CKR_MECHANISM_INVALID
    );

    // Two keys never repeat; random() fills any length.
    let mut a = [0u8; 64];
    let mut b = [0u8; 64];
    random(&mut a).unwrap();
    random(&mut b).unwrap();
    assert_ne!(a, b);
    random(&mut []).unwrap();
}

#[test]
fn key_material_debug_does_not_print_secrets() {
    let k = secret(CKK_AES, &[0x42; 16]);
    let s = format!("{k:?}");
    assert_eq!(s, "KeyMaterial::Secret(16)");
}

#[test]
fn pkcs8_round_trips_for_every_private_key_kind() {
    let ed = pair(
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        ec_params_attr(key::ED25519_OID),
    );
    let p384 = ec(key::Curve::P384);
    for k in [rsa(), &p384, &ed] {
        let der = k.private.to_pkcs8_der().unwrap();
        let attrs = private_key_attributes_from_pkcs8(&der).unwrap();
        assert_eq!(attrs, k.priv_attrs);
        // OpenSSL reads it as well.
        openssl::pkey::PKey::private_key_from_pkcs8(&der).unwrap();
    }
    assert_eq!(
        rv(private_key_attributes_from_pkcs8(b"\x30\x03\x02\x01\x00")),
        CKR_WRAPPED_KEY_INVALID
    );
    assert_eq!(rv(rsa().public.to_pkcs8_der()), CKR_KEY_NOT_WRAPPABLE);
    assert_eq!(
        rv(secret(CKK_AES, &[0; 16]).to_pkcs8_der()),
        CKR_KEY_NOT_WRAPPABLE
    );
}

#[test]
fn public_keys_parse_from_spki_der() {
    let ed = pair(
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        ec_params_attr(key::ED25519_OID),
    );
    let p256 = ec(key::Curve::P256);
    for k in [rsa(), &p256, &ed] {
        let der = k.private.public_key_der().unwrap();
        let pk = KeyMaterial::from_public_key_der(&der).unwrap();
        assert_eq!(pk.class(), CKO_PUBLIC_KEY);
        assert_eq!(public_attributes(&pk).unwrap(), k.pub_attrs);
    }
    assert_eq!(
        rv(KeyMaterial::from_public_key_der(b"\x30\x00")),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
}
