use super::*;

#[test]
fn sha_digests_match_fips_180_abc_vectors() {
    let cases = [
        (CKM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            CKM_SHA224,
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
        ),
        (
            CKM_SHA256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            CKM_SHA384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            CKM_SHA512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];
    for (t, want) in cases {
        let mut d = digest_init(&mech(t)).unwrap();
        assert_eq!(d.len(), want.len() / 2);
        assert_eq!(d.digest(b"abc").unwrap(), h(want), "{t:#x}");
        let mut d = digest_init(&mech(t)).unwrap();
        d.update(b"a").unwrap();
        d.update(b"").unwrap();
        d.update(b"bc").unwrap();
        assert_eq!(d.finish().unwrap(), h(want), "{t:#x} multi-part");
    }
}

#[test]
fn digest_init_rejects_non_digest_mechanisms() {
    assert_eq!(rv(digest_init(&mech(CKM_ECDSA))), CKR_MECHANISM_INVALID);
    assert_eq!(
        rv(digest_init(&mech(CKM_SHA256_HMAC))),
        CKR_MECHANISM_INVALID
    );
}

const JEFE_MSG: &[u8] = b"what do ya want for nothing?";

#[test]
fn hmac_matches_rfc_4231_and_rfc_2202() {
    let cases = [
        (CKM_SHA_1_HMAC, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        (
            CKM_SHA224_HMAC,
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
        ),
        (
            CKM_SHA256_HMAC,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            CKM_SHA384_HMAC,
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649",
        ),
        (
            CKM_SHA512_HMAC,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ),
    ];
    let key = secret(CKK_GENERIC_SECRET, b"Jefe");
    for (t, want) in cases {
        let mut s = sign_init(&mech(t), &key).unwrap();
        assert_eq!(s.sig_len(), want.len() / 2);
        assert_eq!(s.sign(JEFE_MSG).unwrap(), h(want), "{t:#x}");
        let mut s = sign_init(&mech(t), &key).unwrap();
        for chunk in JEFE_MSG.chunks(5) {
            s.update(chunk).unwrap();
        }
        assert_eq!(s.finish().unwrap(), h(want), "{t:#x} multi-part");
        verify_init(&mech(t), &key)
            .unwrap()
            .verify(JEFE_MSG, &h(want))
            .unwrap();
    }
}

#[test]
fn hmac_hashes_keys_longer_than_a_block_rfc_4231_case_6() {
    let key = secret(CKK_SHA256_HMAC, &[0xaa; 131]);
    let mac = sign_init(&mech(CKM_SHA256_HMAC), &key)
        .unwrap()
        .sign(b"Test Using Larger Than Block-Size Key - Hash Key First")
        .unwrap();
    assert_eq!(
        mac,
        h("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    );
}

#[test]
fn hmac_verify_rejects_wrong_mac_and_wrong_length() {
    let key = secret(CKK_GENERIC_SECRET, b"Jefe");
    let m = mech(CKM_SHA256_HMAC);
    let mut good = sign_init(&m, &key).unwrap().sign(JEFE_MSG).unwrap();
    good[31] ^= 1;
    let mut v = verify_init(&m, &key).unwrap();
    assert_eq!(rv(v.verify(JEFE_MSG, &good)), CKR_SIGNATURE_INVALID);
    let mut v = verify_init(&m, &key).unwrap();
    assert_eq!(rv(v.verify(JEFE_MSG, &good[..31])), CKR_SIGNATURE_LEN_RANGE);
    let mut v = verify_init(&m, &key).unwrap();
    v.update(JEFE_MSG).unwrap();
    assert_eq!(rv(v.finish(&[])), CKR_SIGNATURE_LEN_RANGE);
}

#[test]
fn hmac_checks_key_type() {
    let aes = secret(CKK_AES, &[1; 16]);
    assert_eq!(
        rv(sign_init(&mech(CKM_SHA256_HMAC), &aes)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    let k256 = secret(CKK_SHA256_HMAC, &[1; 32]);
    assert!(sign_init(&mech(CKM_SHA256_HMAC), &k256).is_ok());
    assert_eq!(
        rv(sign_init(&mech(CKM_SHA_1_HMAC), &k256)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        rv(verify_init(&mech(CKM_SHA512_HMAC), &k256)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    let empty = secret(CKK_GENERIC_SECRET, &[]);
    assert_eq!(
        rv(sign_init(&mech(CKM_SHA256_HMAC), &empty)),
        CKR_KEY_SIZE_RANGE
    );
    let ec = ec(key::Curve::P256);
    assert_eq!(
        rv(sign_init(&mech(CKM_SHA256_HMAC), &ec.private)),
        CKR_KEY_TYPE_INCONSISTENT
    );
}

const NIST_AES128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const NIST_PLAIN: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                          30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";

#[test]
fn aes_cmac_matches_rfc_4493_in_one_and_many_parts() {
    let key = secret(CKK_AES, &h(NIST_AES128));
    let m = h(NIST_PLAIN);
    let cases = [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ];
    for (len, want) in cases {
        let mut s = sign_init(&mech(CKM_AES_CMAC), &key).unwrap();
        assert_eq!(s.sig_len(), 16);
        assert_eq!(s.sign(&m[..len]).unwrap(), h(want), "len {len}");
        for step in [1, 7, 16, 17] {
            let mut s = sign_init(&mech(CKM_AES_CMAC), &key).unwrap();
            for c in m[..len].chunks(step) {
                s.update(c).unwrap();
            }
            assert_eq!(s.finish().unwrap(), h(want), "len {len} step {step}");
        }
        let mut v = verify_init(&mech(CKM_AES_CMAC), &key).unwrap();
        v.verify(&m[..len], &h(want)).unwrap();
    }
    let mut bad = h("51f0bebf7e3b9d92fc49741779363cfe");
    bad[0] ^= 0x80;
    let mut v = verify_init(&mech(CKM_AES_CMAC), &key).unwrap();
    assert_eq!(rv(v.verify(&m, &bad)), CKR_SIGNATURE_INVALID);
    let mut v = verify_init(&mech(CKM_AES_CMAC), &key).unwrap();
    assert_eq!(rv(v.verify(&m, &bad[..8])), CKR_SIGNATURE_LEN_RANGE);
    let hk = secret(CKK_GENERIC_SECRET, &[0; 16]);
    assert_eq!(
        rv(sign_init(&mech(CKM_AES_CMAC), &hk)),
        CKR_KEY_TYPE_INCONSISTENT
    );
}
