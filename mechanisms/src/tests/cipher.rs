use super::*;

const GCM_KEY: &str = "feffe9928665731c6d6a8f9467308308";
const GCM_PLAIN: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

fn gcm_params(iv: &[u8], aad: &[u8], tag_bits: CK_ULONG) -> Result<mech::GcmParams> {
    mech::GcmParams::new(iv.to_vec(), aad.to_vec(), tag_bits)
}

fn gcm(iv: &[u8], aad: &[u8], tag_bits: CK_ULONG) -> Mechanism {
    Mechanism::AesGcm(gcm_params(iv, aad, tag_bits).unwrap())
}

#[test]
fn aes_gcm_matches_the_gcm_spec_vectors_with_12_and_60_byte_ivs() {
    let key = secret(CKK_AES, &h(GCM_KEY));
    let (p, aad) = (h(GCM_PLAIN), h(GCM_AAD));
    let cases = [
        (
            "cafebabefacedbaddecaf888",
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
            "5bc94fbc3221a5db94fae95ae7121a47",
        ),
        (
            "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728
             c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
            "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7
             01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
            "619cc5aefffe0bfa462af43c1699d050",
        ),
    ];
    for (iv, c, t) in cases {
        let m = gcm(&h(iv), &aad, 128);
        let mut want = h(c);
        want.extend_from_slice(&h(t));
        let mut e = encrypt_init(&m, &key).unwrap();
        assert_eq!(e.oneshot_len(p.len()), want.len());
        assert_eq!(e.oneshot(&p).unwrap(), want);
        let mut d = decrypt_init(&m, &key).unwrap();
        assert!(d.oneshot_len(want.len()) >= p.len());
        assert_eq!(d.oneshot(&want).unwrap(), p);
    }
}

#[test]
fn aes_gcm_multi_part_and_truncated_tags() {
    let key = secret(CKK_AES, &[7; 32]);
    let iv = [9u8; 12];
    let p: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let full = encrypt_init(&gcm(&iv, b"hdr", 128), &key)
        .unwrap()
        .oneshot(&p)
        .unwrap();
    let mut e = encrypt_init(&gcm(&iv, b"hdr", 128), &key).unwrap();
    let mut multi = Vec::new();
    for c in p.chunks(33) {
        let out = e.update(c).unwrap();
        assert!(out.len() <= e.update_len(c.len()) || out.len() <= c.len());
        multi.extend(out);
    }
    assert_eq!(e.finish_len(), 16);
    multi.extend(e.finish().unwrap());
    assert_eq!(multi, full);

    let mut d = decrypt_init(&gcm(&iv, b"hdr", 128), &key).unwrap();
    for c in full.chunks(100) {
        assert!(
            d.update(c).unwrap().is_empty(),
            "no plaintext before the tag"
        );
    }
    assert_eq!(d.finish_len(), p.len());
    assert_eq!(d.finish().unwrap(), p);

    // A 96-bit tag is the prefix of the 128-bit one.
    let short = encrypt_init(&gcm(&iv, b"hdr", 96), &key)
        .unwrap()
        .oneshot(&p)
        .unwrap();
    assert_eq!(short[..], full[..full.len() - 4]);
    let got = decrypt_init(&gcm(&iv, b"hdr", 96), &key)
        .unwrap()
        .oneshot(&short)
        .unwrap();
    assert_eq!(got, p);
    // No tag at all is legal in PKCS#11 (and unauthenticated).
    let none = encrypt_init(&gcm(&iv, b"", 0), &key)
        .unwrap()
        .oneshot(&p)
        .unwrap();
    assert_eq!(none.len(), p.len());
    assert_eq!(
        decrypt_init(&gcm(&iv, b"", 0), &key)
            .unwrap()
            .oneshot(&none)
            .unwrap(),
        p
    );
}

#[test]
fn aes_gcm_rejects_tampering_short_input_and_bad_params() {
    let key = secret(CKK_AES, &[7; 16]);
    let iv = [1u8; 12];
    let m = gcm(&iv, b"aad", 128);
    let mut ct = encrypt_init(&m, &key).unwrap().oneshot(b"secret").unwrap();
    for i in [0, ct.len() - 1] {
        ct[i] ^= 1;
        let r = decrypt_init(&m, &key).unwrap().oneshot(&ct);
        assert_eq!(rv(r), CKR_ENCRYPTED_DATA_INVALID, "byte {i}");
        ct[i] ^= 1;
    }
    let other_aad = gcm(&iv, b"aaD", 128);
    assert_eq!(
        rv(decrypt_init(&other_aad, &key).unwrap().oneshot(&ct)),
        CKR_ENCRYPTED_DATA_INVALID
    );
    assert_eq!(
        rv(decrypt_init(&m, &key).unwrap().oneshot(&ct[..15])),
        CKR_ENCRYPTED_DATA_LEN_RANGE
    );
    for bits in [129, 100, 7] {
        let r = gcm_params(&iv, b"", bits);
        assert_eq!(rv(r), CKR_MECHANISM_PARAM_INVALID, "tag bits {bits}");
    }
    let r = gcm_params(&[], b"", 128);
    assert_eq!(rv(r), CKR_MECHANISM_PARAM_INVALID);
    let r = gcm_params(&[0; 200], b"", 128);
    assert_eq!(rv(r), CKR_MECHANISM_PARAM_INVALID);
    // A null IV, a wrong ulParameterLen and the v2.30 layout are tested with the parser, in
    // the module's abi/mechanism.rs.
    assert_eq!(
        rv(Mechanism::from_type(CKM_AES_GCM)),
        CKR_MECHANISM_PARAM_INVALID
    );
    // Key type and mechanism/operation mismatches.
    let hk = secret(CKK_GENERIC_SECRET, &[0; 16]);
    assert_eq!(rv(encrypt_init(&m, &hk)), CKR_KEY_TYPE_INCONSISTENT);
    assert_eq!(
        rv(encrypt_init(&mech(CKM_ECDSA), &key)),
        CKR_MECHANISM_INVALID
    );
    assert_eq!(
        rv(decrypt_init(&mech(CKM_SHA256), &key)),
        CKR_MECHANISM_INVALID
    );
}

const NIST_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const NIST_PLAIN: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                          30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";

fn iv_mech(t: CK_MECHANISM_TYPE, iv: &[u8; 16]) -> Mechanism {
    match t {
        CKM_AES_CBC => Mechanism::AesCbc(*iv),
        CKM_AES_CBC_PAD => Mechanism::AesCbcPad(*iv),
        _ => panic!("{t:#x} is not an AES mode with an IV"),
    }
}

#[test]
fn aes_cbc_ecb_ctr_match_sp800_38a() {
    let key = secret(CKK_AES, &h(NIST_KEY));
    let p = h(NIST_PLAIN);
    let mut iv = [0u8; 16];
    iv.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    let cbc = h(
        "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
                 73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7",
    );
    let m = iv_mech(CKM_AES_CBC, &iv);
    assert_eq!(encrypt_init(&m, &key).unwrap().oneshot(&p).unwrap(), cbc);
    assert_eq!(decrypt_init(&m, &key).unwrap().oneshot(&cbc).unwrap(), p);

    let ecb = h(
        "3ad77bb40d7a3660a89ecaf32466ef97 f5d3d58503b9699de785895a96fdbaaf
                 43b1cd7f598ece23881b00e3ed030688 7b0c785e27e8ad3f8223207104725dd4",
    );
    let m = mech(CKM_AES_ECB);
    assert_eq!(encrypt_init(&m, &key).unwrap().oneshot(&p).unwrap(), ecb);
    assert_eq!(decrypt_init(&m, &key).unwrap().oneshot(&ecb).unwrap(), p);

    let ctr = h(
        "874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff
                 5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee",
    );
    let cb = h("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
    let m = Mechanism::AesCtr(mech::CtrParams::new(128, cb).unwrap());
    assert_eq!(encrypt_init(&m, &key).unwrap().oneshot(&p).unwrap(), ctr);
    let mut d = decrypt_init(&m, &key).unwrap();
    let mut got = Vec::new();
    for c in ctr.chunks(5) {
        got.extend(d.update(c).unwrap());
    }
    got.extend(d.finish().unwrap());
    assert_eq!(got, p);
}

#[test]
fn aes_ctr_refuses_to_wrap_its_counter() {
    let key = secret(CKK_AES, &[3; 16]);
    let mut cb = [0u8; 16];
    cb[15] = 0xfe; // low 2 bits = 2: two blocks left in a 2-bit counter
    let m = Mechanism::AesCtr(mech::CtrParams::new(2, cb).unwrap());
    assert!(encrypt_init(&m, &key).unwrap().oneshot(&[0; 32]).is_ok());
    assert_eq!(
        rv(encrypt_init(&m, &key).unwrap().oneshot(&[0; 33])),
        CKR_DATA_LEN_RANGE
    );
    let mut e = encrypt_init(&m, &key).unwrap();
    e.update(&[0; 20]).unwrap();
    assert_eq!(rv(e.update(&[0; 13])), CKR_DATA_LEN_RANGE);
    for bits in [0, 129] {
        let r = mech::CtrParams::new(bits, cb);
        assert_eq!(rv(r), CKR_MECHANISM_PARAM_INVALID);
    }
}

#[test]
fn aes_cbc_pad_round_trips_every_length_in_any_chunking() {
    let key = secret(CKK_AES, &[5; 24]);
    let iv = [8u8; 16];
    let m = iv_mech(CKM_AES_CBC_PAD, &iv);
    for len in 0..50usize {
        let p: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut e = encrypt_init(&m, &key).unwrap();
        assert!(e.oneshot_len(len) >= (len / 16 + 1) * 16);
        let c = e.oneshot(&p).unwrap();
        assert_eq!(c.len(), (len / 16 + 1) * 16);
        assert_eq!(decrypt_init(&m, &key).unwrap().oneshot(&c).unwrap(), p);
        for step in [1, 5, 16, 17] {
            let mut e = encrypt_init(&m, &key).unwrap();
            let mut c2 = Vec::new();
            for ch in p.chunks(step) {
                let bound = e.update_len(ch.len());
                let out = e.update(ch).unwrap();
                assert!(out.len() <= bound);
                c2.extend(out);
            }
            c2.extend(e.finish().unwrap());
            assert_eq!(c2, c, "len {len} step {step}");
            let mut d = decrypt_init(&m, &key).unwrap();
            let mut p2 = Vec::new();
            for ch in c.chunks(step) {
                let bound = d.update_len(ch.len());
                let out = d.update(ch).unwrap();
                assert!(out.len() <= bound);
                p2.extend(out);
            }
            // The last block is held back until finish: it carries the padding.
            assert!(p2.len() + 16 > p.len() || p.is_empty());
            let fin = d.finish().unwrap();
            assert!(fin.len() <= d.finish_len());
            p2.extend(fin);
            assert_eq!(p2, p, "len {len} step {step}");
        }
    }
}

#[test]
fn aes_cbc_pad_decrypt_errors() {
    let key = secret(CKK_AES, &[5; 16]);
    let m = iv_mech(CKM_AES_CBC_PAD, &[0; 16]);
    // A block that decrypts to a bad pad byte: encrypt 16 bytes of 0x00 with CBC no-pad.
    let raw = encrypt_init(&iv_mech(CKM_AES_CBC, &[0; 16]), &key)
        .unwrap()
        .oneshot(&[0; 16])
        .unwrap();
    assert_eq!(
        rv(decrypt_init(&m, &key).unwrap().oneshot(&raw)),
        CKR_ENCRYPTED_DATA_INVALID
    );
    assert_eq!(
        rv(decrypt_init(&m, &key).unwrap().oneshot(&raw[..15])),
        CKR_ENCRYPTED_DATA_LEN_RANGE
    );
    assert_eq!(
        rv(decrypt_init(&m, &key).unwrap().oneshot(&[])),
        CKR_ENCRYPTED_DATA_LEN_RANGE
    );
    let mut d = decrypt_init(&m, &key).unwrap();
    d.update(&raw[..10]).unwrap();
    assert_eq!(rv(d.finish()), CKR_ENCRYPTED_DATA_LEN_RANGE);
    // An IV of the wrong length is tested with the parser, in the module's abi/mechanism.rs.
    assert_eq!(
        rv(Mechanism::from_type(CKM_AES_CBC_PAD)),
        CKR_MECHANISM_PARAM_INVALID
    );
}

#[test]
fn aes_cbc_and_ecb_without_padding_need_whole_blocks() {
    let key = secret(CKK_AES, &[5; 32]);
    for m in [iv_mech(CKM_AES_CBC, &[1; 16]), mech(CKM_AES_ECB)] {
        assert_eq!(
            rv(encrypt_init(&m, &key).unwrap().oneshot(&[0; 17])),
            CKR_DATA_LEN_RANGE
        );
        assert_eq!(
            rv(decrypt_init(&m, &key).unwrap().oneshot(&[0; 31])),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
        let mut e = encrypt_init(&m, &key).unwrap();
        assert_eq!(e.update(&[0; 20]).unwrap().len(), 16);
        assert_eq!(rv(e.finish()), CKR_DATA_LEN_RANGE);
        let mut e = encrypt_init(&m, &key).unwrap();
        let mut c = e.update(&[1; 20]).unwrap();
        c.extend(e.update(&[1; 12]).unwrap());
        c.extend(e.finish().unwrap());
        assert_eq!(c.len(), 32);
        assert_eq!(
            decrypt_init(&m, &key).unwrap().oneshot(&c).unwrap(),
            vec![1; 32]
        );
        // An empty message is a whole number of blocks.
        assert_eq!(
            encrypt_init(&m, &key).unwrap().oneshot(&[]).unwrap(),
            vec![]
        );
    }
}

#[test]
fn aes_keys_must_be_16_24_or_32_bytes() {
    let mut a = Attributes::new();
    a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_AES);
    a.set(CKA_VALUE, vec![0; 20]);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    a.remove(CKA_VALUE);
    assert_eq!(
        rv(KeyMaterial::from_attributes(&a)),
        CKR_TEMPLATE_INCOMPLETE
    );
}

#[test]
fn aes_gcm_takes_ivs_of_1_to_128_bytes() {
    let key = secret(CKK_AES, &[7; 16]);
    for n in [1usize, 16, 64, 128] {
        let iv = vec![0x42u8; n];
        let m = gcm(&iv, b"a", 128);
        let c = encrypt_init(&m, &key).unwrap().oneshot(b"x").unwrap();
        assert_eq!(decrypt_init(&m, &key).unwrap().oneshot(&c).unwrap(), b"x");
    }
    let r = gcm_params(&[0; 129], b"", 128);
    assert_eq!(rv(r), CKR_MECHANISM_PARAM_INVALID);
}
