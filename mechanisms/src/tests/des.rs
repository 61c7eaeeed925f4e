use super::*;
use crate::keygen::{des_key_acceptable, set_des_parity};

fn iv8(t: CK_MECHANISM_TYPE, iv: &[u8; 8]) -> Mechanism {
    match t {
        CKM_DES_CBC => Mechanism::DesCbc(*iv),
        CKM_DES_CBC_PAD => Mechanism::DesCbcPad(*iv),
        CKM_DES3_CBC => Mechanism::Des3Cbc(*iv),
        CKM_DES3_CBC_PAD => Mechanism::Des3CbcPad(*iv),
        _ => panic!("{t:#x} is not a DES mode with an IV"),
    }
}

fn enc(m: &Mechanism, k: &Arc<KeyMaterial>, p: &[u8]) -> Vec<u8> {
    encrypt_init(m, k).unwrap().oneshot(p).unwrap()
}

fn dec(m: &Mechanism, k: &Arc<KeyMaterial>, c: &[u8]) -> Vec<u8> {
    decrypt_init(m, k).unwrap().oneshot(c).unwrap()
}

/// FIPS 81 appendix B: key 0123456789abcdef, IV 1234567890abcdef.
const FIPS81_KEY: &str = "0123456789abcdef";
const FIPS81_IV: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef];
const FIPS81_PLAIN: &[u8] = b"Now is the time for all ";

/// SP 800-67 rev. 1 appendix B: three distinct keys.
const SP800_67_KEY: &str = "0123456789abcdef 23456789abcdef01 456789abcdef0123";
const SP800_67_PLAIN: &[u8] = b"The qufck brown fox jump";
const SP800_67_CIPHER: &str = "a826fd8ce53b855f cce21c8112256fe6 68d5c05dd9b6b900";

#[test]
fn des_ecb_and_cbc_match_fips_81_and_the_pkcs11test_vectors() {
    let k = secret(CKK_DES, &h(FIPS81_KEY));
    let ecb = mech(CKM_DES_ECB);
    let want_ecb = h("3fa40e8a984d4815 6a271787ab8883f9 893d51ec4b563b53");
    assert_eq!(enc(&ecb, &k, FIPS81_PLAIN), want_ecb);
    assert_eq!(dec(&ecb, &k, &want_ecb), FIPS81_PLAIN);
    let cbc = iv8(CKM_DES_CBC, &FIPS81_IV);
    let want_cbc = h("e5c7cdde872bf27c 43e934008c389c0f 683788499a7c05f6");
    assert_eq!(enc(&cbc, &k, FIPS81_PLAIN), want_cbc);
    assert_eq!(dec(&cbc, &k, &want_cbc), FIPS81_PLAIN);
    // pkcs11test cipher.cc "DES-ECB" (keys without parity: parity is not checked).
    for (key, ct) in [
        ("8000000000000000", "95a8d72813daa94d"),
        ("4000000000000000", "0eec1487dd8c26d5"),
    ] {
        let k = secret(CKK_DES, &h(key));
        assert_eq!(enc(&ecb, &k, &[0; 8]), h(ct), "key {key}");
        assert_eq!(dec(&ecb, &k, &h(ct)), vec![0; 8]);
    }
}

#[test]
fn des3_ecb_matches_sp800_67_and_the_pkcs11test_vectors() {
    let m = mech(CKM_DES3_ECB);
    let k = secret(CKK_DES3, &h(SP800_67_KEY));
    assert_eq!(enc(&m, &k, SP800_67_PLAIN), h(SP800_67_CIPHER));
    assert_eq!(dec(&m, &k, &h(SP800_67_CIPHER)), SP800_67_PLAIN);
    // pkcs11test cipher.cc "3DES-ECB": equal thirds (single DES) are accepted on import.
    for (key, pt, ct) in [
        (
            "800000000000000000000000000000000000000000000000",
            "0000000000000000",
            "95a8d72813daa94d",
        ),
        (
            "020202020202020202020202020202020202020202020202",
            "0202020202020202",
            "e127c2b61d98e6e2",
        ),
    ] {
        let k = secret(CKK_DES3, &h(key));
        assert_eq!(enc(&m, &k, &h(pt)), h(ct), "key {key}");
        assert_eq!(dec(&m, &k, &h(ct)), h(pt));
    }
}

#[test]
fn des3_cbc_is_ecb_chained_and_matches_sp800_20_tcbc() {
    // SP 800-20 TCBC variable-plaintext known answer, round 1: key 01..01 (x3), IV 0.
    let k = secret(CKK_DES3, &[1; 24]);
    let m = iv8(CKM_DES3_CBC, &[0; 8]);
    assert_eq!(enc(&m, &k, &h("8000000000000000")), h("95f8a5e5dd31d900"));
    // Three-key CBC, checked against CBC built by hand from the ECB known answer.
    let k = secret(CKK_DES3, &h(SP800_67_KEY));
    let iv = [0xf6, 0x9f, 0x24, 0x45, 0xdf, 0x4f, 0x9b, 0x17];
    let mut chained = Vec::new();
    let mut prev = iv.to_vec();
    for block in SP800_67_PLAIN.chunks(8) {
        let x: Vec<u8> = block.iter().zip(&prev).map(|(a, b)| a ^ b).collect();
        prev = enc(&mech(CKM_DES3_ECB), &k, &x);
        chained.extend_from_slice(&prev);
    }
    let m = iv8(CKM_DES3_CBC, &iv);
    let c = enc(&m, &k, SP800_67_PLAIN);
    assert_eq!(c, chained);
    assert_eq!(c, h("a5c282bad0de3774 becd2e04386b589f b5057d8552fc4336"));
    assert_eq!(dec(&m, &k, &c), SP800_67_PLAIN);
}

#[test]
fn des2_is_k1_k2_k1_and_single_des_is_k_k_k() {
    let k1k2 = h("0123456789abcdef 23456789abcdef01");
    let mut k1k2k1 = k1k2.clone();
    k1k2k1.extend_from_slice(&k1k2[..8]);
    let two = secret(CKK_DES2, &k1k2);
    let three = secret(CKK_DES3, &k1k2k1);
    let p: Vec<u8> = (0..40u8).collect();
    for m in [
        mech(CKM_DES3_ECB),
        iv8(CKM_DES3_CBC, &[7; 8]),
        iv8(CKM_DES3_CBC_PAD, &[7; 8]),
    ] {
        let c = enc(&m, &two, &p);
        assert_eq!(c, enc(&m, &three, &p), "{m:?}");
        assert_eq!(dec(&m, &two, &c), p);
    }
    // The 2-key result is not plain single DES under K1.
    let single = secret(CKK_DES, &k1k2[..8]);
    assert_ne!(
        enc(&mech(CKM_DES_ECB), &single, &p),
        enc(&mech(CKM_DES3_ECB), &two, &p)
    );
    let kkk = secret(CKK_DES3, &h(&FIPS81_KEY.repeat(3)));
    let k = secret(CKK_DES, &h(FIPS81_KEY));
    for (single, triple) in [
        (mech(CKM_DES_ECB), mech(CKM_DES3_ECB)),
        (iv8(CKM_DES_CBC, &FIPS81_IV), iv8(CKM_DES3_CBC, &FIPS81_IV)),
        (
            iv8(CKM_DES_CBC_PAD, &FIPS81_IV),
            iv8(CKM_DES3_CBC_PAD, &FIPS81_IV),
        ),
    ] {
        assert_eq!(enc(&single, &k, &p), enc(&triple, &kkk, &p));
    }
}

fn all_des_mechs() -> Vec<(Mechanism, Arc<KeyMaterial>)> {
    let des = secret(CKK_DES, &h(FIPS81_KEY));
    let des2 = secret(CKK_DES2, &h("0123456789abcdef 23456789abcdef01"));
    let des3 = secret(CKK_DES3, &h(SP800_67_KEY));
    vec![
        (mech(CKM_DES_ECB), des.clone()),
        (iv8(CKM_DES_CBC, &FIPS81_IV), des.clone()),
        (iv8(CKM_DES_CBC_PAD, &FIPS81_IV), des),
        (mech(CKM_DES3_ECB), des3.clone()),
        (iv8(CKM_DES3_CBC, &[3; 8]), des3.clone()),
        (iv8(CKM_DES3_CBC_PAD, &[3; 8]), des3),
        (iv8(CKM_DES3_CBC_PAD, &[4; 8]), des2),
    ]
}

#[test]
fn des_multi_part_equals_single_part_in_any_chunking() {
    for (m, k) in all_des_mechs() {
        let pad = matches!(m, Mechanism::DesCbcPad(_) | Mechanism::Des3CbcPad(_));
        let lens: &[usize] = if pad {
            &[0, 1, 7, 8, 9, 23, 64]
        } else {
            &[0, 8, 24, 64]
        };
        for &len in lens {
            let p: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let mut e = encrypt_init(&m, &k).unwrap();
            let want_len = if pad { (len / 8 + 1) * 8 } else { len };
            assert_eq!(e.oneshot_len(len), want_len, "{m:?} len {len}");
            let c = e.oneshot(&p).unwrap();
            assert_eq!(c.len(), want_len);
            for step in [1, 3, 8, 13] {
                let mut e = encrypt_init(&m, &k).unwrap();
                let mut c2 = Vec::new();
                for ch in p.chunks(step) {
                    let bound = e.update_len(ch.len());
                    let out = e.update(ch).unwrap();
                    assert!(out.len() <= bound);
                    assert_eq!(out.len() % 8, 0);
                    c2.extend(out);
                }
                let fin = e.finish().unwrap();
                assert!(fin.len() <= e.finish_len());
                c2.extend(fin);
                assert_eq!(c2, c, "{m:?} len {len} step {step}");
                let mut d = decrypt_init(&m, &k).unwrap();
                let mut p2 = Vec::new();
                for ch in c.chunks(step) {
                    let bound = d.update_len(ch.len());
                    let out = d.update(ch).unwrap();
                    assert!(out.len() <= bound);
                    p2.extend(out);
                }
                p2.extend(d.finish().unwrap());
                assert_eq!(p2, p, "{m:?} len {len} step {step}");
            }
        }
    }
}

#[test]
fn des_without_padding_needs_whole_blocks() {
    for (m, k) in all_des_mechs() {
        if matches!(m, Mechanism::DesCbcPad(_) | Mechanism::Des3CbcPad(_)) {
            continue;
        }
        for n in [1, 7, 9, 15] {
            assert_eq!(
                rv(encrypt_init(&m, &k).unwrap().oneshot(&vec![0; n])),
                CKR_DATA_LEN_RANGE,
                "{m:?} {n}"
            );
            assert_eq!(
                rv(decrypt_init(&m, &k).unwrap().oneshot(&vec![0; n])),
                CKR_ENCRYPTED_DATA_LEN_RANGE,
                "{m:?} {n}"
            );
        }
        let mut e = encrypt_init(&m, &k).unwrap();
        assert_eq!(e.update(&[0; 12]).unwrap().len(), 8);
        assert_eq!(rv(e.finish()), CKR_DATA_LEN_RANGE);
        let mut d = decrypt_init(&m, &k).unwrap();
        assert_eq!(d.update(&[0; 12]).unwrap().len(), 8);
        assert_eq!(rv(d.finish()), CKR_ENCRYPTED_DATA_LEN_RANGE);
    }
}

#[test]
fn des_cbc_pad_decrypt_errors() {
    for (t, k) in [
        (CKM_DES_CBC_PAD, secret(CKK_DES, &h(FIPS81_KEY))),
        (CKM_DES3_CBC_PAD, secret(CKK_DES3, &h(SP800_67_KEY))),
    ] {
        let m = iv8(t, &[0; 8]);
        let nopad = if t == CKM_DES_CBC_PAD {
            iv8(CKM_DES_CBC, &[0; 8])
        } else {
            iv8(CKM_DES3_CBC, &[0; 8])
        };
        // A block ending in 0x00 is no valid padding.
        let raw = enc(&nopad, &k, &[0; 8]);
        assert_eq!(
            rv(decrypt_init(&m, &k).unwrap().oneshot(&raw)),
            CKR_ENCRYPTED_DATA_INVALID
        );
        let good = enc(&m, &k, b"abc");
        assert_eq!(good.len(), 8);
        assert_eq!(
            rv(decrypt_init(&m, &k).unwrap().oneshot(&good[..7])),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
        assert_eq!(
            rv(decrypt_init(&m, &k).unwrap().oneshot(&[])),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
        let mut d = decrypt_init(&m, &k).unwrap();
        d.update(&good[..5]).unwrap();
        assert_eq!(rv(d.finish()), CKR_ENCRYPTED_DATA_LEN_RANGE);
        assert_eq!(dec(&m, &k, &good), b"abc");
    }
}

#[test]
fn des_parameters_and_key_types_are_checked() {
    // The IV's length is tested with the parser, in the module's abi/mechanism.rs.
    for t in [CKM_DES_CBC, CKM_DES_CBC_PAD, CKM_DES3_CBC, CKM_DES3_CBC_PAD] {
        assert_eq!(rv(Mechanism::from_type(t)), CKR_MECHANISM_PARAM_INVALID);
        assert_eq!(iv8(t, &[0u8; 8]).mech_type(), t);
    }
    let des = secret(CKK_DES, &[0x13; 8]);
    let des2 = secret(CKK_DES2, &[0x13; 16]);
    let des3 = secret(CKK_DES3, &[0x13; 24]);
    let aes = secret(CKK_AES, &[0x13; 24]);
    let generic = secret(CKK_GENERIC_SECRET, &[0x13; 24]);
    let refused = [
        (mech(CKM_DES_ECB), &des2),
        (mech(CKM_DES_ECB), &des3),
        (mech(CKM_DES_ECB), &generic),
        (mech(CKM_DES3_ECB), &des),
        (mech(CKM_DES3_ECB), &aes),
        (mech(CKM_DES3_ECB), &generic),
        (iv8(CKM_DES3_CBC_PAD, &[0; 8]), &des),
        (mech(CKM_AES_ECB), &des3),
        (mech(CKM_RSA_PKCS), &des3),
    ];
    for (m, k) in refused {
        assert_eq!(rv(encrypt_init(&m, k)), CKR_KEY_TYPE_INCONSISTENT, "{m:?}");
        assert_eq!(rv(decrypt_init(&m, k)), CKR_KEY_TYPE_INCONSISTENT, "{m:?}");
    }
    for k in [&des, &des2, &des3] {
        assert_eq!(
            rv(sign_init(&mech(CKM_SHA256_HMAC), k)),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(sign_init(&mech(CKM_AES_CMAC), k)),
            CKR_KEY_TYPE_INCONSISTENT
        );
    }
    // Values must have the type's length; parity bits are not looked at.
    for (kt, bad) in [
        (CKK_DES, 7),
        (CKK_DES, 16),
        (CKK_DES2, 8),
        (CKK_DES2, 24),
        (CKK_DES3, 16),
        (CKK_DES3, 32),
    ] {
        let mut a = Attributes::new();
        a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        a.set_ulong(CKA_KEY_TYPE, kt);
        a.set(CKA_VALUE, vec![1; bad]);
        assert_eq!(
            rv(KeyMaterial::from_attributes(&a)),
            CKR_ATTRIBUTE_VALUE_INVALID,
            "{kt:#x} {bad}"
        );
    }
    let even_parity = secret(CKK_DES3, &[0; 24]);
    assert_eq!(even_parity.size(), 24);
    assert_eq!(even_parity.key_type(), CKK_DES3);
    assert_eq!(key::des_key_len(CKK_DES2), Some(16));
    assert_eq!(key::des_key_len(CKK_AES), None);
}

#[test]
fn des_wrap_and_unwrap() {
    let des = secret(CKK_DES, &h(FIPS81_KEY));
    let des3 = secret(CKK_DES3, &h(SP800_67_KEY));
    let target3 = h(SP800_67_KEY);
    // pkcs11test key.cc: a DES key wrapped with CKM_DES_ECB, then decrypted and unwrapped.
    let ecb = mech(CKM_DES_ECB);
    let target = h("0123456789abcdef");
    let w = wrap(&ecb, &des, &[0x4c; 8]).unwrap();
    assert_eq!(w.len(), 8);
    assert_eq!(dec(&ecb, &des, &w), vec![0x4c; 8]);
    assert_eq!(&unwrap(&ecb, &des, &w).unwrap()[..], &[0x4c; 8]);
    let cases = [
        (mech(CKM_DES3_ECB), &des3, false),
        (iv8(CKM_DES3_CBC, &[9; 8]), &des3, false),
        (iv8(CKM_DES3_CBC_PAD, &[9; 8]), &des3, true),
        (mech(CKM_DES_ECB), &des, false),
        (iv8(CKM_DES_CBC, &[9; 8]), &des, false),
        (iv8(CKM_DES_CBC_PAD, &[9; 8]), &des, true),
    ];
    for (m, k, pad) in cases {
        assert_ne!(mechanism_info(m.mech_type()).unwrap().flags & CKF_WRAP, 0);
        for t in [&target[..], &target3[..]] {
            let w = wrap(&m, k, t).unwrap();
            assert_eq!(w.len(), if pad { t.len() + 8 } else { t.len() });
            assert_eq!(w, enc(&m, k, t), "wrapping is encrypting the value");
            assert_eq!(&unwrap(&m, k, &w).unwrap()[..], t, "{m:?}");
            assert_eq!(
                rv(unwrap(&m, k, &w[..w.len() - 1])),
                CKR_WRAPPED_KEY_LEN_RANGE,
                "{m:?}"
            );
        }
        if pad {
            assert!(wrap(&m, k, &[1; 20]).is_ok());
            let raw = enc(
                &match m {
                    Mechanism::DesCbcPad(iv) => iv8(CKM_DES_CBC, &iv),
                    Mechanism::Des3CbcPad(iv) => iv8(CKM_DES3_CBC, &iv),
                    _ => unreachable!(),
                },
                k,
                &[0; 16],
            );
            assert_eq!(rv(unwrap(&m, k, &raw)), CKR_WRAPPED_KEY_INVALID);
        } else {
            assert_eq!(rv(wrap(&m, k, &[1; 20])), CKR_KEY_SIZE_RANGE, "{m:?}");
        }
        let aes = secret(CKK_AES, &[1; 16]);
        assert_eq!(
            rv(wrap(&m, &aes, &target)),
            CKR_WRAPPING_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            rv(unwrap(&m, &aes, &[0; 16])),
            CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT
        );
    }
    // DES keys travel under AES key wrap too (a 24-byte DES3 value is whole semiblocks).
    let aes = secret(CKK_AES, &[1; 16]);
    let w = wrap(&mech(CKM_AES_KEY_WRAP), &aes, &target3).unwrap();
    assert_eq!(
        &unwrap(&mech(CKM_AES_KEY_WRAP), &aes, &w).unwrap()[..],
        &target3[..]
    );
}

fn is_odd_parity(key: &[u8]) -> bool {
    key.iter().all(|b| b.count_ones() % 2 == 1)
}

#[test]
fn des_parity_and_degenerate_key_checks() {
    let mut k = [0x00, 0x01, 0xfe, 0xff, 0x80, 0x81, 0x12, 0x13];
    set_des_parity(&mut k);
    assert_eq!(k, [0x01, 0x01, 0xfe, 0xfe, 0x80, 0x80, 0x13, 0x13]);
    assert!(is_odd_parity(&k));

    let a = h("0123456789abcdef");
    let b = h("23456789abcdef01");
    let c = h("456789abcdef0123");
    assert!(des_key_acceptable(&a));
    assert!(des_key_acceptable(&[&a[..], &b, &c].concat()));
    assert!(des_key_acceptable(&[&a[..], &b].concat()));
    // K1 = K3 is two-key 3DES, a legitimate keying option.
    assert!(des_key_acceptable(&[&a[..], &b, &a].concat()));
    assert!(!des_key_acceptable(&[&a[..], &a, &c].concat()), "K1 = K2");
    assert!(!des_key_acceptable(&[&a[..], &b, &b].concat()), "K2 = K3");
    assert!(!des_key_acceptable(&[&a[..], &a].concat()), "DES2 K1 = K2");
    for weak in ["0101010101010101", "fefefefefefefefe", "1f1f1f1f0e0e0e0e"] {
        assert!(!des_key_acceptable(&h(weak)), "{weak}");
        assert!(!des_key_acceptable(&[&a[..], &h(weak), &c].concat()));
    }
    for semi in ["01fe01fe01fe01fe", "e0fee0fef1fef1fe", "1fe01fe00ef10ef1"] {
        assert!(!des_key_acceptable(&h(semi)), "{semi}");
    }
}

#[test]
fn des_key_generation() {
    let none = Attributes::new();
    for (t, kt, len) in [
        (CKM_DES_KEY_GEN, CKK_DES, 8),
        (CKM_DES2_KEY_GEN, CKK_DES2, 16),
        (CKM_DES3_KEY_GEN, CKK_DES3, 24),
    ] {
        let m = mech(t);
        let mut seen = Vec::new();
        for _ in 0..20 {
            let a = generate_key(&m, &none).unwrap();
            assert_eq!(a.get_ulong(CKA_KEY_TYPE).unwrap(), Some(kt));
            assert_eq!(a.get_ulong(CKA_VALUE_LEN).unwrap(), Some(len as CK_ULONG));
            let v = a.get(CKA_VALUE).unwrap().to_vec();
            assert_eq!(v.len(), len);
            assert!(is_odd_parity(&v), "{v:02x?}");
            assert!(des_key_acceptable(&v));
            assert!(!seen.contains(&v));
            seen.push(v);
            // The generated key works with its mechanisms.
            let k = Arc::new(KeyMaterial::from_attributes(&with_class(a, CKO_SECRET_KEY)).unwrap());
            let em = if kt == CKK_DES {
                mech(CKM_DES_ECB)
            } else {
                mech(CKM_DES3_ECB)
            };
            assert_eq!(dec(&em, &k, &enc(&em, &k, &[5; 16])), vec![5; 16]);
        }
        let mut tmpl = Attributes::new();
        tmpl.set_ulong(CKA_KEY_TYPE, kt);
        tmpl.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
        assert!(generate_key(&m, &tmpl).is_ok());
        tmpl.set_ulong(CKA_VALUE_LEN, 32);
        assert_eq!(rv(generate_key(&m, &tmpl)), CKR_TEMPLATE_INCONSISTENT);
        let mut tmpl = Attributes::new();
        tmpl.set_ulong(CKA_KEY_TYPE, CKK_AES);
        assert_eq!(rv(generate_key(&m, &tmpl)), CKR_TEMPLATE_INCONSISTENT);
        assert_eq!(
            rv(generate_key_pair(&m, &none, &none)),
            CKR_MECHANISM_INVALID
        );
    }
}

#[test]
fn sha_key_gen_makes_hmac_keys_of_the_matching_type() {
    let all = [
        (CKM_SHA_1_KEY_GEN, CKK_SHA_1_HMAC, CKM_SHA_1_HMAC, "SHA1"),
        (
            CKM_SHA224_KEY_GEN,
            CKK_SHA224_HMAC,
            CKM_SHA224_HMAC,
            "SHA224",
        ),
        (
            CKM_SHA256_KEY_GEN,
            CKK_SHA256_HMAC,
            CKM_SHA256_HMAC,
            "SHA256",
        ),
        (
            CKM_SHA384_KEY_GEN,
            CKK_SHA384_HMAC,
            CKM_SHA384_HMAC,
            "SHA384",
        ),
        (
            CKM_SHA512_KEY_GEN,
            CKK_SHA512_HMAC,
            CKM_SHA512_HMAC,
            "SHA512",
        ),
    ];
    for (gen, kt, hmac, md) in all {
        let m = mech(gen);
        assert_eq!(m.mech_type(), gen);
        assert_eq!(
            mechanism_info(gen),
            Some(MechInfo {
                min_key: 1,
                max_key: 512,
                flags: CKF_GENERATE
            })
        );
        let mut t = Attributes::new();
        assert_eq!(rv(generate_key(&m, &t)), CKR_TEMPLATE_INCOMPLETE);
        t.set_ulong(CKA_VALUE_LEN, 0);
        assert_eq!(rv(generate_key(&m, &t)), CKR_ATTRIBUTE_VALUE_INVALID);
        t.set_ulong(CKA_VALUE_LEN, 513);
        assert_eq!(rv(generate_key(&m, &t)), CKR_KEY_SIZE_RANGE);
        for other in [CKK_GENERIC_SECRET, CKK_AES, CKK_SHA_1_HMAC, CKK_SHA512_HMAC] {
            if other == kt {
                continue;
            }
            let mut t = t.clone();
            t.set_ulong(CKA_VALUE_LEN, 32);
            t.set_ulong(CKA_KEY_TYPE, other);
            assert_eq!(rv(generate_key(&m, &t)), CKR_TEMPLATE_INCONSISTENT);
        }
        for len in [1usize, 32, 512] {
            t.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
            t.set_ulong(CKA_KEY_TYPE, kt);
            let a = generate_key(&m, &t).unwrap();
            assert_eq!(a.get_ulong(CKA_KEY_TYPE).unwrap(), Some(kt));
            assert_eq!(a.get_ulong(CKA_VALUE_LEN).unwrap(), Some(len as CK_ULONG));
            let value = a.get(CKA_VALUE).unwrap().to_vec();
            assert_eq!(value.len(), len);
            let k = Arc::new(KeyMaterial::from_attributes(&with_class(a, CKO_SECRET_KEY)).unwrap());
            // The matching HMAC accepts the key and computes HMAC under it.
            let mac = sign_init(&mech(hmac), &k).unwrap().sign(b"msg").unwrap();
            let want = {
                let pk = openssl::pkey::PKey::hmac(&value).unwrap();
                let md = openssl::hash::MessageDigest::from_name(md).unwrap();
                let mut s = openssl::sign::Signer::new(md, &pk).unwrap();
                s.update(b"msg").unwrap();
                s.sign_to_vec().unwrap()
            };
            assert_eq!(mac, want, "{gen:#x} len {len}");
            assert!(verify_init(&mech(hmac), &k)
                .unwrap()
                .verify(b"msg", &mac)
                .is_ok());
            // Other HMACs and ciphers refuse it.
            for (_, _, other, _) in all {
                if other != hmac {
                    assert_eq!(rv(sign_init(&mech(other), &k)), CKR_KEY_TYPE_INCONSISTENT);
                }
            }
            assert_eq!(
                rv(encrypt_init(&mech(CKM_DES3_ECB), &k)),
                CKR_KEY_TYPE_INCONSISTENT
            );
            assert_eq!(
                rv(encrypt_init(&mech(CKM_AES_ECB), &k)),
                CKR_KEY_TYPE_INCONSISTENT
            );
        }
    }
    // The key generators only generate.
    let mut t = Attributes::new();
    t.set_ulong(CKA_VALUE_LEN, 32);
    let k = secret(CKK_SHA256_HMAC, &[1; 32]);
    assert_eq!(
        rv(sign_init(&mech(CKM_SHA256_KEY_GEN), &k)),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(
        rv(generate_key_pair(&mech(CKM_SHA256_KEY_GEN), &t, &t)),
        CKR_MECHANISM_INVALID
    );
}

#[test]
fn des_mechanism_info() {
    let list = mechanism_list();
    let ed_wu = CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP;
    for (t, min, max, flags) in [
        (CKM_DES_KEY_GEN, 8, 8, CKF_GENERATE),
        (CKM_DES2_KEY_GEN, 16, 16, CKF_GENERATE),
        (CKM_DES3_KEY_GEN, 24, 24, CKF_GENERATE),
        (CKM_DES_ECB, 8, 8, ed_wu),
        (CKM_DES_CBC, 8, 8, ed_wu),
        (CKM_DES_CBC_PAD, 8, 8, ed_wu),
        (CKM_DES3_ECB, 16, 24, ed_wu),
        (CKM_DES3_CBC, 16, 24, ed_wu),
        (CKM_DES3_CBC_PAD, 16, 24, ed_wu),
    ] {
        assert!(list.contains(&t), "{t:#x}");
        assert_eq!(
            mechanism_info(t),
            Some(MechInfo {
                min_key: min,
                max_key: max,
                flags
            }),
            "{t:#x}"
        );
    }
    // Not implemented, so not listed.
    for t in [CKM_DES3_MAC, CKM_DES3_CMAC, CKM_DES_MAC, CKM_DES_OFB64] {
        assert!(mechanism_info(t).is_none());
        assert_eq!(rv(Mechanism::from_type(t)), CKR_MECHANISM_INVALID);
    }
}

#[test]
fn check_values_encrypt_a_zero_block() {
    // DES: ECB of 00..00 under the FIPS 81 key, checked against the ECB mechanism.
    let k = h(FIPS81_KEY);
    let full = enc(&mech(CKM_DES_ECB), &secret(CKK_DES, &k), &[0; 8]);
    assert_eq!(
        block_cipher_check_value(CKK_DES, &k).unwrap(),
        Some(full[..3].to_vec())
    );
    // pkcs11test's DES3 vector: key 80 00.., zero block -> 95a8d7...
    assert_eq!(
        block_cipher_check_value(
            CKK_DES3,
            &h("80000000000000000000000000000000 0000000000000000")
        )
        .unwrap(),
        Some(h("95a8d7"))
    );
    let k2 = h("0123456789abcdef 23456789abcdef01");
    let full = enc(&mech(CKM_DES3_ECB), &secret(CKK_DES2, &k2), &[0; 8]);
    assert_eq!(
        block_cipher_check_value(CKK_DES2, &k2).unwrap(),
        Some(full[..3].to_vec())
    );
    // AES-128 of a zero block under the zero key: 66e94bd4ef8a2c3b884cfa59ca342b2e.
    assert_eq!(
        block_cipher_check_value(CKK_AES, &[0; 16]).unwrap(),
        Some(h("66e94b"))
    );
    assert_eq!(
        block_cipher_check_value(CKK_GENERIC_SECRET, &[0; 16]).unwrap(),
        None
    );
    assert_eq!(
        rv(block_cipher_check_value(CKK_DES3, &[0; 16])),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    assert_eq!(
        rv(block_cipher_check_value(CKK_AES, &[0; 20])),
        CKR_KEY_SIZE_RANGE
    );
}
