use super::*;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Padding;
use openssl::sign::Verifier;

/// Re-encodes r‖s as DER so OpenSSL's EVP verifier can check it independently.
fn ecdsa_der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    EcdsaSig::from_private_components(
        BigNum::from_slice(r).unwrap(),
        BigNum::from_slice(s).unwrap(),
    )
    .unwrap()
    .to_der()
    .unwrap()
}

#[test]
fn ecdsa_signatures_verify_with_openssl_on_every_curve() {
    let msg = b"the quick brown fox";
    for curve in [key::Curve::P256, key::Curve::P384, key::Curve::P521] {
        let k = ec(curve);
        let ossl = ossl_public(&k.public);
        let hashed = [
            (CKM_ECDSA_SHA1, MessageDigest::sha1()),
            (CKM_ECDSA_SHA224, MessageDigest::sha224()),
            (CKM_ECDSA_SHA256, MessageDigest::sha256()),
            (CKM_ECDSA_SHA384, MessageDigest::sha384()),
            (CKM_ECDSA_SHA512, MessageDigest::sha512()),
        ];
        for (t, md) in hashed {
            let mut s = sign_init(&mech(t), &k.private).unwrap();
            assert_eq!(s.sig_len(), 2 * curve.field_len());
            let sig = s.sign(msg).unwrap();
            assert_eq!(sig.len(), 2 * curve.field_len());
            let mut v = Verifier::new(md, &ossl).unwrap();
            assert!(v.verify_oneshot(&ecdsa_der(&sig), msg).unwrap(), "{t:#x}");
            // Our verifier, with the public and with the private object.
            verify_init(&mech(t), &k.public)
                .unwrap()
                .verify(msg, &sig)
                .unwrap();
            let mut v = verify_init(&mech(t), &k.private).unwrap();
            v.update(&msg[..4]).unwrap();
            v.update(&msg[4..]).unwrap();
            v.finish(&sig).unwrap();
        }
        // Raw CKM_ECDSA over a digest equals what OpenSSL verifies for that digest.
        let dg = openssl::sha::sha384(msg);
        let sig = sign_init(&mech(CKM_ECDSA), &k.private)
            .unwrap()
            .sign(&dg)
            .unwrap();
        let ec = ossl.ec_key().unwrap();
        let (r, s) = sig.split_at(curve.field_len());
        let es = EcdsaSig::from_private_components(
            BigNum::from_slice(r).unwrap(),
            BigNum::from_slice(s).unwrap(),
        )
        .unwrap();
        assert!(es.verify(&dg, &ec).unwrap());
        verify_init(&mech(CKM_ECDSA), &k.public)
            .unwrap()
            .verify(&dg, &sig)
            .unwrap();
    }
}

#[test]
fn ecdsa_multi_part_sign_matches_openssl() {
    let k = ec(key::Curve::P256);
    let mut s = sign_init(&mech(CKM_ECDSA_SHA256), &k.private).unwrap();
    for c in [&b"abc"[..], b"", b"defgh"] {
        s.update(c).unwrap();
    }
    let sig = s.finish().unwrap();
    let pk = ossl_public(&k.public);
    let mut v = Verifier::new(MessageDigest::sha256(), &pk).unwrap();
    assert!(v.verify_oneshot(&ecdsa_der(&sig), b"abcdefgh").unwrap());
}

#[test]
fn ecdsa_error_codes() {
    let k = ec(key::Curve::P256);
    let dg = [1u8; 32];
    let mut sig = sign_init(&mech(CKM_ECDSA), &k.private)
        .unwrap()
        .sign(&dg)
        .unwrap();
    let mut v = verify_init(&mech(CKM_ECDSA), &k.public).unwrap();
    assert_eq!(rv(v.verify(&dg, &sig[..63])), CKR_SIGNATURE_LEN_RANGE);
    sig[10] ^= 1;
    let mut v = verify_init(&mech(CKM_ECDSA), &k.public).unwrap();
    assert_eq!(rv(v.verify(&dg, &sig)), CKR_SIGNATURE_INVALID);
    // r = s = 0 is out of range, not an internal error.
    let mut v = verify_init(&mech(CKM_ECDSA), &k.public).unwrap();
    assert_eq!(rv(v.verify(&dg, &[0; 64])), CKR_SIGNATURE_INVALID);
    let mut s = sign_init(&mech(CKM_ECDSA), &k.private).unwrap();
    assert_eq!(rv(s.sign(&[0; 65])), CKR_DATA_LEN_RANGE);
    let mut s = sign_init(&mech(CKM_ECDSA), &k.private).unwrap();
    s.update(&[0; 60]).unwrap();
    assert_eq!(rv(s.update(&[0; 5])), CKR_DATA_LEN_RANGE);
    // Wrong key kinds.
    assert_eq!(
        rv(sign_init(&mech(CKM_ECDSA), &k.public)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        rv(sign_init(&mech(CKM_ECDSA), &rsa().private)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        rv(verify_init(&mech(CKM_ECDSA_SHA256), &rsa().public)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        rv(sign_init(&mech(CKM_SHA256_RSA_PKCS), &k.private)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        rv(sign_init(&mech(CKM_AES_ECB), &k.private)),
        CKR_MECHANISM_INVALID
    );
}

#[test]
fn rsa_pkcs1_signatures_verify_with_openssl() {
    let k = rsa();
    let ossl = ossl_public(&k.public);
    let msg = b"sign me";
    let cases = [
        (CKM_SHA1_RSA_PKCS, MessageDigest::sha1()),
        (CKM_SHA224_RSA_PKCS, MessageDigest::sha224()),
        (CKM_SHA256_RSA_PKCS, MessageDigest::sha256()),
        (CKM_SHA384_RSA_PKCS, MessageDigest::sha384()),
        (CKM_SHA512_RSA_PKCS, MessageDigest::sha512()),
    ];
    for (t, md) in cases {
        let mut s = sign_init(&mech(t), &k.private).unwrap();
        assert_eq!(s.sig_len(), 256);
        let sig = s.sign(msg).unwrap();
        let mut v = Verifier::new(md, &ossl).unwrap();
        assert!(v.verify_oneshot(&sig, msg).unwrap(), "{t:#x}");
        verify_init(&mech(t), &k.public)
            .unwrap()
            .verify(msg, &sig)
            .unwrap();
        verify_init(&mech(t), &k.private)
            .unwrap()
            .verify(msg, &sig)
            .unwrap();
    }
    // CKM_RSA_PKCS over a DigestInfo is the same deterministic signature.
    let mut di = HashAlg::Sha256.digest_info_prefix().to_vec();
    di.extend_from_slice(&openssl::sha::sha256(msg));
    let raw = sign_init(&mech(CKM_RSA_PKCS), &k.private)
        .unwrap()
        .sign(&di)
        .unwrap();
    let hashed = sign_init(&mech(CKM_SHA256_RSA_PKCS), &k.private)
        .unwrap()
        .sign(msg)
        .unwrap();
    assert_eq!(raw, hashed);
    verify_init(&mech(CKM_RSA_PKCS), &k.public)
        .unwrap()
        .verify(&di, &raw)
        .unwrap();
}

#[test]
fn rsa_pkcs1_error_codes() {
    let k = rsa();
    let m = mech(CKM_RSA_PKCS);
    assert!(sign_init(&m, &k.private).unwrap().sign(&[1; 245]).is_ok());
    assert_eq!(
        rv(sign_init(&m, &k.private).unwrap().sign(&[1; 246])),
        CKR_DATA_LEN_RANGE
    );
    assert_eq!(
        rv(sign_init(&m, &k.private).unwrap().sign(&[1; 300])),
        CKR_DATA_LEN_RANGE
    );
    let mut sig = sign_init(&mech(CKM_SHA256_RSA_PKCS), &k.private)
        .unwrap()
        .sign(b"x")
        .unwrap();
    let v = |s: &[u8]| {
        verify_init(&mech(CKM_SHA256_RSA_PKCS), &k.public)
            .unwrap()
            .verify(b"x", s)
    };
    assert_eq!(rv(v(&sig[..255])), CKR_SIGNATURE_LEN_RANGE);
    sig[100] ^= 1;
    assert_eq!(rv(v(&sig)), CKR_SIGNATURE_INVALID);
    assert_eq!(rv(v(&[0xff; 256])), CKR_SIGNATURE_INVALID);
    // A signature over another hash of the same data must not verify.
    let sig1 = sign_init(&mech(CKM_SHA1_RSA_PKCS), &k.private)
        .unwrap()
        .sign(b"x")
        .unwrap();
    assert_eq!(rv(v(&sig1)), CKR_SIGNATURE_INVALID);
    assert_eq!(rv(sign_init(&m, &k.public)), CKR_KEY_TYPE_INCONSISTENT);
}

/// The PSS mechanism `t` with these parameters; `hash` must match the hash `t` names.
fn pss(
    t: CK_MECHANISM_TYPE,
    hash: CK_MECHANISM_TYPE,
    mgf: CK_ULONG,
    slen: CK_ULONG,
) -> Result<Mechanism> {
    let p = |expect| {
        let c = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: hash,
            mgf,
            sLen: slen,
        };
        PssParams::from_c(c, expect)
    };
    Ok(match t {
        CKM_RSA_PKCS_PSS => Mechanism::RsaPkcsPss(p(None)?),
        CKM_SHA1_RSA_PKCS_PSS => Mechanism::Sha1RsaPkcsPss(p(Some(HashAlg::Sha1))?),
        CKM_SHA224_RSA_PKCS_PSS => Mechanism::Sha224RsaPkcsPss(p(Some(HashAlg::Sha224))?),
        CKM_SHA256_RSA_PKCS_PSS => Mechanism::Sha256RsaPkcsPss(p(Some(HashAlg::Sha256))?),
        CKM_SHA384_RSA_PKCS_PSS => Mechanism::Sha384RsaPkcsPss(p(Some(HashAlg::Sha384))?),
        CKM_SHA512_RSA_PKCS_PSS => Mechanism::Sha512RsaPkcsPss(p(Some(HashAlg::Sha512))?),
        _ => panic!("{t:#x} is not a PSS mechanism"),
    })
}

#[test]
fn rsa_pss_signatures_verify_with_openssl() {
    let k = rsa();
    let ossl = ossl_public(&k.public);
    let msg = b"pss message";
    let cases = [
        (
            CKM_SHA1_RSA_PKCS_PSS,
            CKM_SHA_1,
            CKG_MGF1_SHA1,
            MessageDigest::sha1(),
            20,
        ),
        (
            CKM_SHA224_RSA_PKCS_PSS,
            CKM_SHA224,
            CKG_MGF1_SHA224,
            MessageDigest::sha224(),
            28,
        ),
        (
            CKM_SHA256_RSA_PKCS_PSS,
            CKM_SHA256,
            CKG_MGF1_SHA256,
            MessageDigest::sha256(),
            32,
        ),
        (
            CKM_SHA384_RSA_PKCS_PSS,
            CKM_SHA384,
            CKG_MGF1_SHA384,
            MessageDigest::sha384(),
            48,
        ),
        (
            CKM_SHA512_RSA_PKCS_PSS,
            CKM_SHA512,
            CKG_MGF1_SHA512,
            MessageDigest::sha512(),
            64,
        ),
    ];
    for (t, hash, mgf, md, slen) in cases {
        let m = pss(t, hash, mgf, slen).unwrap();
        let sig = sign_init(&m, &k.private).unwrap().sign(msg).unwrap();
        assert_eq!(sig.len(), 256);
        let mut v = Verifier::new(md, &ossl).unwrap();
        v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
        v.set_rsa_mgf1_md(md).unwrap();
        v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(slen as i32))
            .unwrap();
        assert!(v.verify_oneshot(&sig, msg).unwrap(), "{t:#x}");
        verify_init(&m, &k.public)
            .unwrap()
            .verify(msg, &sig)
            .unwrap();
    }
    // Raw PSS over a digest, with an MGF hash different from the message hash.
    let m = pss(CKM_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA1, 0).unwrap();
    let dg = openssl::sha::sha256(msg);
    let sig = sign_init(&m, &k.private).unwrap().sign(&dg).unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &ossl).unwrap();
    v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    v.set_rsa_mgf1_md(MessageDigest::sha1()).unwrap();
    v.set_rsa_pss_saltlen(openssl::sign::RsaPssSaltlen::custom(0))
        .unwrap();
    assert!(v.verify_oneshot(&sig, msg).unwrap());
    verify_init(&m, &k.private)
        .unwrap()
        .verify(&dg, &sig)
        .unwrap();
}

#[test]
fn rsa_pss_error_codes() {
    let k = rsa();
    let m = pss(CKM_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 32).unwrap();
    assert_eq!(
        rv(sign_init(&m, &k.private).unwrap().sign(&[0; 31])),
        CKR_DATA_LEN_RANGE
    );
    assert_eq!(
        rv(sign_init(&m, &k.private).unwrap().sign(&[0; 33])),
        CKR_DATA_LEN_RANGE
    );
    let mut sig = sign_init(&m, &k.private).unwrap().sign(&[0; 32]).unwrap();
    sig[0] ^= 0x40;
    assert_eq!(
        rv(verify_init(&m, &k.public).unwrap().verify(&[0; 32], &sig)),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(
        rv(verify_init(&m, &k.public)
            .unwrap()
            .verify(&[0; 32], &sig[1..])),
        CKR_SIGNATURE_LEN_RANGE
    );
    // hashAlg must match the mechanism's hash; unknown hash / mgf; an absurd salt length.
    // A struct of the wrong size is tested with the parser, in the module's abi/mechanism.rs.
    assert_eq!(
        rv(pss(
            CKM_SHA256_RSA_PKCS_PSS,
            CKM_SHA384,
            CKG_MGF1_SHA256,
            32
        )),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(pss(CKM_RSA_PKCS_PSS, CKM_MD5, CKG_MGF1_SHA256, 32)),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(pss(CKM_RSA_PKCS_PSS, CKM_SHA256, 0x99, 32)),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(pss(CKM_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 2049)),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(Mechanism::from_type(CKM_SHA256_RSA_PKCS_PSS)),
        CKR_MECHANISM_PARAM_INVALID
    );
    // A salt that cannot fit a 2048-bit modulus: emLen 256 - 32 - 2 = 222 is the max.
    let big = pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 223).unwrap();
    assert_eq!(rv(sign_init(&big, &k.private)), CKR_MECHANISM_PARAM_INVALID);
    let max = pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 222).unwrap();
    let sig = sign_init(&max, &k.private).unwrap().sign(b"m").unwrap();
    verify_init(&max, &k.public)
        .unwrap()
        .verify(b"m", &sig)
        .unwrap();
}

fn oaep(hash: CK_MECHANISM_TYPE, mgf: CK_ULONG, label: &[u8]) -> Result<Mechanism> {
    OaepParams::new(hash, mgf, label.to_vec()).map(Mechanism::RsaPkcsOaep)
}

#[test]
fn rsa_oaep_round_trips_and_openssl_decrypts_it() {
    let k = rsa();
    let priv_pkey = PKey::private_key_from_pkcs8(&k.private.to_pkcs8_der().unwrap()).unwrap();
    let cases = [
        (
            CKM_SHA_1,
            CKG_MGF1_SHA1,
            &b""[..],
            openssl::md::Md::sha1(),
            openssl::md::Md::sha1(),
        ),
        (
            CKM_SHA256,
            CKG_MGF1_SHA256,
            b"label",
            openssl::md::Md::sha256(),
            openssl::md::Md::sha256(),
        ),
        (
            CKM_SHA512,
            CKG_MGF1_SHA1,
            b"l",
            openssl::md::Md::sha512(),
            openssl::md::Md::sha1(),
        ),
        (
            CKM_SHA384,
            CKG_MGF1_SHA224,
            b"",
            openssl::md::Md::sha384(),
            openssl::md::Md::sha224(),
        ),
    ];
    for (hash, mgf, label, md, mgf_md) in cases {
        let m = oaep(hash, mgf, label).unwrap();
        let mut e = encrypt_init(&m, &k.public).unwrap();
        assert_eq!(e.oneshot_len(10), 256);
        let c = e.oneshot(b"top secret").unwrap();
        assert_eq!(c.len(), 256);
        let mut d = decrypt_init(&m, &k.private).unwrap();
        assert_eq!(d.oneshot(&c).unwrap(), b"top secret");
        // Independent decryption with OpenSSL's EVP interface.
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&priv_pkey).unwrap();
        ctx.decrypt_init().unwrap();
        ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        ctx.set_rsa_oaep_md(md).unwrap();
        ctx.set_rsa_mgf1_md(mgf_md).unwrap();
        if !label.is_empty() {
            ctx.set_rsa_oaep_label(label).unwrap();
        }
        let mut out = vec![];
        ctx.decrypt_to_vec(&c, &mut out).unwrap();
        assert_eq!(out, b"top secret");
    }
}

#[test]
fn rsa_oaep_error_codes() {
    let k = rsa();
    let m = oaep(CKM_SHA256, CKG_MGF1_SHA256, b"").unwrap();
    // 256 - 2*32 - 2 = 190 bytes is the longest plaintext.
    assert!(encrypt_init(&m, &k.public)
        .unwrap()
        .oneshot(&[1; 190])
        .is_ok());
    assert_eq!(
        rv(encrypt_init(&m, &k.public).unwrap().oneshot(&[1; 191])),
        CKR_DATA_LEN_RANGE
    );
    let mut c = encrypt_init(&m, &k.public).unwrap().oneshot(b"hi").unwrap();
    assert_eq!(
        rv(decrypt_init(&m, &k.private).unwrap().oneshot(&c[1..])),
        CKR_ENCRYPTED_DATA_LEN_RANGE
    );
    let other_label = oaep(CKM_SHA256, CKG_MGF1_SHA256, b"x").unwrap();
    assert_eq!(
        rv(decrypt_init(&other_label, &k.private).unwrap().oneshot(&c)),
        CKR_ENCRYPTED_DATA_INVALID
    );
    c[5] ^= 1;
    assert_eq!(
        rv(decrypt_init(&m, &k.private).unwrap().oneshot(&c)),
        CKR_ENCRYPTED_DATA_INVALID
    );
    assert_eq!(rv(decrypt_init(&m, &k.public)), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(
        rv(oaep(CKM_MD5, CKG_MGF1_SHA256, b"")),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(rv(oaep(CKM_SHA256, 77, b"")), CKR_MECHANISM_PARAM_INVALID);
    // Source values and a null label are fields of the C struct, tested with the parser in
    // the module's abi/mechanism.rs.
}

#[test]
fn rsa_pkcs1_and_raw_encryption_round_trip() {
    let k = rsa();
    let m = mech(CKM_RSA_PKCS);
    let c = encrypt_init(&m, &k.public)
        .unwrap()
        .oneshot(b"key bytes")
        .unwrap();
    assert_eq!(c.len(), 256);
    assert_eq!(
        decrypt_init(&m, &k.private).unwrap().oneshot(&c).unwrap(),
        b"key bytes"
    );
    // OpenSSL decrypts it too.
    let ossl = openssl::rsa::Rsa::private_key_from_der(
        &PKey::private_key_from_pkcs8(&k.private.to_pkcs8_der().unwrap())
            .unwrap()
            .rsa()
            .unwrap()
            .private_key_to_der()
            .unwrap(),
    )
    .unwrap();
    let mut out = vec![0; 256];
    let n = ossl.private_decrypt(&c, &mut out, Padding::PKCS1).unwrap();
    assert_eq!(&out[..n], b"key bytes");
    assert_eq!(
        rv(encrypt_init(&m, &k.public).unwrap().oneshot(&[0; 246])),
        CKR_DATA_LEN_RANGE
    );
    let mut bad = c.clone();
    bad[0] ^= 0x01;
    assert_eq!(
        rv(decrypt_init(&m, &k.private).unwrap().oneshot(&bad)),
        CKR_ENCRYPTED_DATA_INVALID
    );

    let x = mech(CKM_RSA_X_509);
    let c = encrypt_init(&x, &k.public)
        .unwrap()
        .oneshot(b"raw")
        .unwrap();
    let p = decrypt_init(&x, &k.private).unwrap().oneshot(&c).unwrap();
    assert_eq!(p.len(), 256);
    assert_eq!(&p[253..], b"raw");
    assert!(p[..253].iter().all(|b| *b == 0));
    assert_eq!(
        rv(encrypt_init(&x, &k.public).unwrap().oneshot(&[0xff; 256])),
        CKR_DATA_INVALID
    );
    assert_eq!(
        rv(encrypt_init(&x, &k.public).unwrap().oneshot(&[0x01; 257])),
        CKR_DATA_LEN_RANGE
    );
}

#[test]
fn rsa_x509_sign_is_textbook_rsa() {
    let k = rsa();
    let x = mech(CKM_RSA_X_509);
    let sig = sign_init(&x, &k.private).unwrap().sign(b"abc").unwrap();
    assert_eq!(sig.len(), 256);
    verify_init(&x, &k.public)
        .unwrap()
        .verify(b"abc", &sig)
        .unwrap();
    // Leading zeros are not significant in raw RSA.
    verify_init(&x, &k.public)
        .unwrap()
        .verify(b"\0\0abc", &sig)
        .unwrap();
    assert_eq!(
        rv(verify_init(&x, &k.public).unwrap().verify(b"abd", &sig)),
        CKR_SIGNATURE_INVALID
    );
    // sig^e mod n with OpenSSL's raw public operation gives back the input.
    let pk = ossl_public(&k.public).rsa().unwrap();
    let mut out = vec![0; 256];
    pk.public_decrypt(&sig, &mut out, Padding::NONE).unwrap();
    assert_eq!(&out[253..], b"abc");
}

#[test]
fn eddsa_matches_rfc_8032_test_1_and_round_trips() {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
    a.set(CKA_EC_PARAMS, key::ED25519_NAME.to_vec());
    a.set(
        CKA_VALUE,
        h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
    );
    let sk = Arc::new(KeyMaterial::from_attributes(&a).unwrap());
    let want = h("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    let mut s = sign_init(&mech(CKM_EDDSA), &sk).unwrap();
    assert_eq!(s.sig_len(), 64);
    assert_eq!(s.sign(b"").unwrap(), want);
    let pa = public_attributes(&sk).unwrap();
    let pt = h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    let mut der = vec![0x04, 0x20];
    der.extend_from_slice(&pt);
    assert_eq!(pa.get(CKA_EC_POINT).unwrap(), &der[..]);
    // Public key objects with the DER point or the bare 32 bytes.
    for point in [der.clone(), pt.clone()] {
        let mut p = Attributes::new();
        p.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        p.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
        p.set(CKA_EC_PARAMS, key::ED25519_OID.to_vec());
        p.set(CKA_EC_POINT, point);
        let pk = Arc::new(KeyMaterial::from_attributes(&p).unwrap());
        verify_init(&mech(CKM_EDDSA), &pk)
            .unwrap()
            .verify(b"", &want)
            .unwrap();
    }
    let mut bad = want.clone();
    bad[3] ^= 1;
    assert_eq!(
        rv(verify_init(&mech(CKM_EDDSA), &sk)
            .unwrap()
            .verify(b"", &bad)),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(
        rv(verify_init(&mech(CKM_EDDSA), &sk)
            .unwrap()
            .verify(b"", &want[1..])),
        CKR_SIGNATURE_LEN_RANGE
    );
    // Generated keys, multi-part input, verified by OpenSSL.
    let k = pair(
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        ec_params_attr(key::ED25519_OID),
    );
    let mut s = sign_init(&mech(CKM_EDDSA), &k.private).unwrap();
    s.update(b"hello ").unwrap();
    s.update(b"world").unwrap();
    let sig = s.finish().unwrap();
    let pk = ossl_public(&k.public);
    let mut v = Verifier::new_without_digest(&pk).unwrap();
    assert!(v.verify_oneshot(&sig, b"hello world").unwrap());
    assert_eq!(
        rv(sign_init(&mech(CKM_EDDSA), &ec(key::Curve::P256).private)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    // Ed25519ph and Ed25519ctx are not available.
    assert_eq!(
        rv(Mechanism::eddsa(CK_TRUE, 0)),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(Mechanism::eddsa(CK_FALSE, 5)),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(Mechanism::eddsa(CK_FALSE, 0).unwrap(), Mechanism::EdDsa);
}

#[test]
fn ecdsa_der_and_raw_conversions_round_trip() {
    let k = ec(key::Curve::P521);
    let sig = sign_init(&mech(CKM_ECDSA_SHA512), &k.private)
        .unwrap()
        .sign(b"m")
        .unwrap();
    let der = ecdsa_raw_to_der(&sig).unwrap();
    assert_eq!(der, ecdsa_der(&sig));
    assert_eq!(ecdsa_der_to_raw(&der, 66).unwrap(), sig);
    assert_eq!(rv(ecdsa_der_to_raw(&der, 20)), CKR_DEVICE_ERROR);
    assert_eq!(rv(ecdsa_der_to_raw(b"junk", 66)), CKR_DEVICE_ERROR);
    assert_eq!(rv(ecdsa_raw_to_der(&sig[1..])), CKR_SIGNATURE_LEN_RANGE);
}
