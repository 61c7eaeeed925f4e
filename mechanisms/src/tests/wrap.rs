use super::*;
use crate::keywrap::{aes_kw_unwrap, aes_kw_wrap, aes_kwp_unwrap, aes_kwp_wrap};

#[test]
fn aes_key_wrap_matches_rfc_3394_and_rfc_5649() {
    let kek = h("000102030405060708090A0B0C0D0E0F");
    let data = h("00112233445566778899AABBCCDDEEFF");
    let want = h("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
    assert_eq!(aes_kw_wrap(&kek, None, &data).unwrap(), want);
    assert_eq!(&aes_kw_unwrap(&kek, None, &want).unwrap()[..], &data[..]);
    // RFC 3394 4.6: 256-bit data with a 256-bit KEK.
    let kek256 = h("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
    let data256 = h("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
    let want256 =
        h("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21");
    assert_eq!(aes_kw_wrap(&kek256, None, &data256).unwrap(), want256);

    let kek = h("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
    let k20 = h("c37b7e6492584340bed12207808941155068f738");
    let w20 = h("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
    assert_eq!(aes_kwp_wrap(&kek, None, &k20).unwrap(), w20);
    assert_eq!(&aes_kwp_unwrap(&kek, None, &w20).unwrap()[..], &k20[..]);
    let k7 = h("466f7250617369");
    let w7 = h("afbeb0f07dfbf5419200f2ccb50bb24f");
    assert_eq!(aes_kwp_wrap(&kek, None, &k7).unwrap(), w7);
    assert_eq!(&aes_kwp_unwrap(&kek, None, &w7).unwrap()[..], &k7[..]);
}

#[test]
fn wrap_and_unwrap_every_wrapping_mechanism() {
    let aes = secret(CKK_AES, &[9; 32]);
    let target = [0x5a; 32];
    let mechs = [
        mech(CKM_AES_KEY_WRAP),
        Mechanism::AesKeyWrap(Some([0x11; 8])),
        mech(CKM_AES_KEY_WRAP_KWP),
        Mechanism::AesCbcPad([3; 16]),
        Mechanism::AesCbc([3; 16]),
    ];
    for m in &mechs {
        let w = wrap(m, &aes, &target).unwrap();
        assert_ne!(&w[..], &target[..]);
        assert_eq!(&unwrap(m, &aes, &w).unwrap()[..], &target[..], "{m:?}");
        let mut bad = w.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        if !matches!(m, Mechanism::AesCbc(_)) {
            assert_eq!(rv(unwrap(m, &aes, &bad)), CKR_WRAPPED_KEY_INVALID, "{m:?}");
        }
        assert_eq!(
            rv(unwrap(m, &aes, &w[..w.len() - 1])),
            CKR_WRAPPED_KEY_LEN_RANGE,
            "{m:?}"
        );
        assert_eq!(
            rv(wrap(m, &rsa().public, &target)),
            CKR_WRAPPING_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(unwrap(m, &rsa().private, &w)),
            CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT
        );
    }
    // A key length the mechanism cannot carry.
    assert_eq!(
        rv(wrap(&mech(CKM_AES_KEY_WRAP), &aes, &[1; 20])),
        CKR_KEY_SIZE_RANGE
    );
    assert!(wrap(&mech(CKM_AES_KEY_WRAP_KWP), &aes, &[1; 20]).is_ok());
    assert_eq!(rv(wrap(&mechs[4], &aes, &[1; 20])), CKR_KEY_SIZE_RANGE);
    // Different IV, different integrity value.
    let w = wrap(&mechs[0], &aes, &target).unwrap();
    assert_eq!(rv(unwrap(&mechs[1], &aes, &w)), CKR_WRAPPED_KEY_INVALID);
    assert_eq!(
        rv(wrap(&mech(CKM_AES_ECB), &aes, &target)),
        CKR_MECHANISM_INVALID
    );

    // RSA wraps a secret and a PKCS#8 private key (OAEP carries long data only with
    // a small hash, PKCS#1 v1.5 up to k-11).
    let k = rsa();
    let oaep =
        Mechanism::RsaPkcsOaep(OaepParams::new(CKM_SHA256, CKG_MGF1_SHA256, vec![]).unwrap());
    for m in [oaep, mech(CKM_RSA_PKCS)] {
        let w = wrap(&m, &k.public, &target).unwrap();
        assert_eq!(w.len(), 256);
        assert_eq!(&unwrap(&m, &k.private, &w).unwrap()[..], &target[..]);
        assert_eq!(
            rv(unwrap(&m, &k.public, &w)),
            CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(rv(wrap(&m, &k.public, &[0; 250])), CKR_KEY_SIZE_RANGE);
    }
    // A private EC key travels as PKCS#8 under AES key wrap with padding.
    let ec = ec(key::Curve::P256);
    let der = ec.private.to_pkcs8_der().unwrap();
    let w = wrap(&mech(CKM_AES_KEY_WRAP_KWP), &aes, &der).unwrap();
    let back = unwrap(&mech(CKM_AES_KEY_WRAP_KWP), &aes, &w).unwrap();
    assert_eq!(
        private_key_attributes_from_pkcs8(&back).unwrap(),
        ec.priv_attrs
    );
}

#[test]
fn aes_key_wrap_also_works_as_a_cipher() {
    let aes = secret(CKK_AES, &h("000102030405060708090A0B0C0D0E0F"));
    let m = mech(CKM_AES_KEY_WRAP);
    let mut e = encrypt_init(&m, &aes).unwrap();
    assert_eq!(e.oneshot_len(16), 24);
    e.update(&h("0011223344556677")).unwrap();
    e.update(&h("8899AABBCCDDEEFF")).unwrap();
    assert_eq!(e.finish_len(), 24);
    let c = e.finish().unwrap();
    assert_eq!(c, h("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"));
    let mut d = decrypt_init(&m, &aes).unwrap();
    assert_eq!(
        d.oneshot(&c).unwrap(),
        h("00112233445566778899AABBCCDDEEFF")
    );
    assert_eq!(
        rv(encrypt_init(&m, &aes).unwrap().oneshot(&[0; 12])),
        CKR_DATA_LEN_RANGE
    );
}

fn ecdh(peer: &[u8], kdf: CK_EC_KDF_TYPE, shared: &[u8]) -> Result<Mechanism> {
    mech::EcdhParams::new(kdf, shared.to_vec(), peer.to_vec()).map(Mechanism::Ecdh1Derive)
}

#[test]
fn ecdh_agrees_both_ways_and_with_openssl() {
    for curve in [key::Curve::P256, key::Curve::P521] {
        let a = ec(curve);
        let b = ec(curve);
        let a_pt = a.pub_attrs.get(CKA_EC_POINT).unwrap();
        let b_pt = b.pub_attrs.get(CKA_EC_POINT).unwrap();
        let za = derive_ecdh(&ecdh(b_pt, CKD_NULL, &[]).unwrap(), &a.private).unwrap();
        // The bare point is accepted as well as the DER OCTET STRING.
        let zb = derive_ecdh(
            &ecdh(
                &a_pt[a_pt.len() - (1 + 2 * curve.field_len())..],
                CKD_NULL,
                &[],
            )
            .unwrap(),
            &b.private,
        )
        .unwrap();
        assert_eq!(za.len(), curve.field_len());
        assert_eq!(za, zb);
        let ours = openssl::pkey::PKey::private_key_from_pkcs8(&a.private.to_pkcs8_der().unwrap())
            .unwrap();
        let theirs = ossl_public(&b.public);
        let mut d = openssl::derive::Deriver::new(&ours).unwrap();
        d.set_peer(&theirs).unwrap();
        assert_eq!(d.derive_to_vec().unwrap(), za.to_vec());
    }
}

#[test]
fn ecdh_kdfs_and_errors() {
    let a = ec(key::Curve::P256);
    let b = ec(key::Curve::P256);
    let b_pt = b.pub_attrs.get(CKA_EC_POINT).unwrap();
    let z = derive_ecdh(&ecdh(b_pt, CKD_NULL, &[]).unwrap(), &a.private).unwrap();
    let m = ecdh(b_pt, CKD_SHA256_KDF, b"info").unwrap();
    let k = derive_ecdh_key(&m, &a.private, 40).unwrap();
    // X9.63: SHA-256(Z || 00000001 || info) || SHA-256(Z || 00000002 || info), truncated.
    let mut want = Vec::new();
    for c in [1u32, 2] {
        let mut x = z.to_vec();
        x.extend_from_slice(&c.to_be_bytes());
        x.extend_from_slice(b"info");
        want.extend_from_slice(&openssl::sha::sha256(&x));
    }
    assert_eq!(&k[..], &want[..40]);
    assert_eq!(rv(derive_ecdh(&m, &a.private)), CKR_MECHANISM_PARAM_INVALID);
    let null = ecdh(b_pt, CKD_NULL, &[]).unwrap();
    assert_eq!(
        &derive_ecdh_key(&null, &a.private, 16).unwrap()[..],
        &z[..16]
    );
    assert_eq!(
        rv(derive_ecdh_key(&null, &a.private, 33)),
        CKR_TEMPLATE_INCONSISTENT
    );
    let mut off = b_pt.to_vec();
    off[20] ^= 1;
    let bad = ecdh(&off, CKD_NULL, &[]).unwrap();
    assert_eq!(
        rv(derive_ecdh(&bad, &a.private)),
        CKR_MECHANISM_PARAM_INVALID
    );
    let p384 = ec(key::Curve::P384);
    assert_eq!(
        rv(derive_ecdh(&null, &p384.private)),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(rv(derive_ecdh(&null, &a.public)), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(
        rv(derive_ecdh(&mech(CKM_ECDSA), &a.private)),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(rv(ecdh(b_pt, CKD_NULL, b"x")), CKR_MECHANISM_PARAM_INVALID);
}
