//! Encryption and decryption: AES-GCM, AES-CBC-PAD, RSA-OAEP; single- and multi-part;
//! the length-query convention; tamper detection and operation-state errors. OpenSSL
//! opens what the module seals and seals what the module opens.

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use hsmux_tests::keys;
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::verify::{self, Oaep};
use hsmux_tests::*;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::symm::{self, Crypter, Mode};

const IV12: [u8; 12] = [
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
];
const IV16: [u8; 16] = [0x20; 16];

fn gcm<'a>(iv: &'a mut [u8], aad: &'a [u8], tag_bits: u64) -> Mechanism<'a> {
    Mechanism::AesGcm(GcmParams::new(iv, aad, tag_bits.into()).unwrap())
}

fn aes_key(s: &Session, value: &[u8]) -> ObjectHandle {
    keys::create_aes(s, value, &[])
}

fn openssl_gcm_seal(key: &[u8], iv: &[u8], aad: &[u8], pt: &[u8], tag_len: usize) -> Vec<u8> {
    let mut tag = vec![0u8; tag_len];
    let mut ct = symm::encrypt_aead(
        verify::aes_gcm_cipher(key.len()),
        key,
        Some(iv),
        aad,
        pt,
        &mut tag,
    )
    .unwrap();
    ct.extend(tag);
    ct
}

fn openssl_gcm_open(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    sealed: &[u8],
    tag_len: usize,
) -> Option<Vec<u8>> {
    let (ct, tag) = sealed.split_at(sealed.len().checked_sub(tag_len)?);
    symm::decrypt_aead(
        verify::aes_gcm_cipher(key.len()),
        key,
        Some(iv),
        aad,
        ct,
        tag,
    )
    .ok()
}

#[test]
fn aes_gcm_interoperates_with_openssl_both_ways() {
    let t = shared().token("gcm_openssl_both_ways");
    let s = t.login_user();
    for len in [16usize, 24, 32] {
        let value = verify::random_bytes(len);
        let key = aes_key(&s, &value);
        for pt_len in [0usize, 1, 16, 33, 1000] {
            let pt = verify::random_bytes(pt_len);
            let aad = b"associated data";
            let mut iv = IV12;
            let sealed = ok(
                s.encrypt(&gcm(&mut iv, aad, 128), key, &pt),
                "C_Encrypt(CKM_AES_GCM)",
            );
            assert_eq!(sealed.len(), pt_len + 16, "ciphertext || 16-byte tag");
            assert_eq!(
                openssl_gcm_open(&value, &IV12, aad, &sealed, 16).as_deref(),
                Some(&pt[..]),
                "OpenSSL cannot open the module's AES-{} GCM output ({pt_len} bytes)",
                len * 8
            );
            let theirs = openssl_gcm_seal(&value, &IV12, aad, &pt, 16);
            let mut iv = IV12;
            assert_eq!(
                ok(
                    s.decrypt(&gcm(&mut iv, aad, 128), key, &theirs),
                    "C_Decrypt(CKM_AES_GCM)"
                ),
                pt
            );
        }
    }
}

#[test]
fn aes_gcm_with_96_bit_tag_interoperates_with_openssl() {
    let t = shared().token("gcm_short_tag");
    let s = t.login_user();
    let value = verify::random_bytes(32);
    let key = aes_key(&s, &value);
    let pt = b"short tag";
    let mut iv = IV12;
    let sealed = ok(
        s.encrypt(&gcm(&mut iv, b"", 96), key, pt),
        "C_Encrypt(tag 96)",
    );
    assert_eq!(sealed.len(), pt.len() + 12);
    assert_eq!(
        openssl_gcm_open(&value, &IV12, b"", &sealed, 12).as_deref(),
        Some(&pt[..])
    );
    let mut iv = IV12;
    assert_eq!(
        ok(
            s.decrypt(&gcm(&mut iv, b"", 96), key, &sealed),
            "C_Decrypt(tag 96)"
        ),
        pt
    );
}

#[test]
fn aes_gcm_multi_part_equals_single_part() {
    let t = shared().token("gcm_multi_part");
    let s = t.login_user();
    let value = verify::random_bytes(16);
    let key = aes_key(&s, &value);
    let pt = verify::random_bytes(100);
    let aad = b"aad";
    let mut iv = IV12;
    let single = ok(s.encrypt(&gcm(&mut iv, aad, 128), key, &pt), "C_Encrypt");
    let mut iv = IV12;
    ok(
        s.encrypt_init(&gcm(&mut iv, aad, 128), key),
        "C_EncryptInit",
    );
    let mut multi = Vec::new();
    for chunk in [&pt[..1], &pt[1..17], &pt[17..17], &pt[17..]] {
        multi.extend(ok(s.encrypt_update(chunk), "C_EncryptUpdate"));
    }
    multi.extend(ok(s.encrypt_final(), "C_EncryptFinal"));
    assert_eq!(
        multi, single,
        "multi-part GCM output differs from single-part"
    );
    let mut iv = IV12;
    ok(
        s.decrypt_init(&gcm(&mut iv, aad, 128), key),
        "C_DecryptInit",
    );
    let mut opened = Vec::new();
    for chunk in single.chunks(7) {
        opened.extend(ok(s.decrypt_update(chunk), "C_DecryptUpdate"));
    }
    opened.extend(ok(s.decrypt_final(), "C_DecryptFinal"));
    assert_eq!(opened, pt);
}

#[test]
fn tampered_aes_gcm_input_returns_encrypted_data_invalid_and_ends_the_operation() {
    let t = shared().token("gcm_tamper");
    let s = t.login_user();
    let value = verify::random_bytes(32);
    let key = aes_key(&s, &value);
    let sealed = openssl_gcm_seal(&value, &IV12, b"aad", b"attack at dawn", 16);
    let cases: Vec<(&str, Vec<u8>, &[u8])> = vec![
        (
            "flipped ciphertext bit",
            {
                let mut c = sealed.clone();
                c[0] ^= 1;
                c
            },
            b"aad",
        ),
        (
            "flipped tag bit",
            {
                let mut c = sealed.clone();
                let last = c.len() - 1;
                c[last] ^= 1;
                c
            },
            b"aad",
        ),
        ("other AAD", sealed.clone(), b"AAD"),
        ("truncated", sealed[..sealed.len() - 1].to_vec(), b"aad"),
    ];
    for (what, input, aad) in cases {
        let mut iv = IV12;
        let m = gcm(&mut iv, aad, 128);
        expect_rv(
            raw::init(Op::Decrypt, s.handle(), &raw::mech(&m), key.handle()),
            CKR_OK,
            "C_DecryptInit",
        );
        let out = raw::decrypt(s.handle(), &input, Out::Buf(input.len() + 16));
        expect_rv(
            out.rv,
            CKR_ENCRYPTED_DATA_INVALID,
            &format!("C_Decrypt of GCM input with {what}"),
        );
        assert!(
            out.data.windows(6).all(|w| w != b"attack"),
            "plaintext released for a forged GCM input ({what})"
        );
        expect_rv(
            raw::decrypt(s.handle(), &sealed, Out::Buf(64)).rv,
            CKR_OPERATION_NOT_INITIALIZED,
            &format!("C_Decrypt after the {what} failure"),
        );
    }
    // Multi-part: the forgery surfaces at C_DecryptFinal, without plaintext.
    let mut bad = sealed.clone();
    bad[2] ^= 4;
    let mut iv = IV12;
    let m = gcm(&mut iv, b"aad", 128);
    expect_rv(
        raw::init(Op::Decrypt, s.handle(), &raw::mech(&m), key.handle()),
        CKR_OK,
        "C_DecryptInit",
    );
    let upd = raw::decrypt_update(s.handle(), &bad, Out::Buf(bad.len() + 16));
    expect_rv(upd.rv, CKR_OK, "C_DecryptUpdate");
    assert_eq!(
        upd.len, 0,
        "C_DecryptUpdate must hold GCM plaintext until the tag is checked"
    );
    expect_rv(
        raw::decrypt_final(s.handle(), Out::Buf(bad.len() + 16)).rv,
        CKR_ENCRYPTED_DATA_INVALID,
        "C_DecryptFinal of a forged GCM input",
    );
}

#[test]
fn malformed_aes_gcm_parameters_return_mechanism_param_invalid() {
    let t = shared().token("gcm_bad_params");
    let s = t.login_user();
    let key = aes_key(&s, &[3u8; 16]).handle();
    let mut iv = IV12;
    let mut params = CK_GCM_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: 12,
        ulIvBits: 96,
        pAAD: std::ptr::null_mut(),
        ulAADLen: 0,
        ulTagBits: 200,
    };
    expect_rv(
        raw::init(
            Op::Encrypt,
            s.handle(),
            &raw::mech_with(CKM_AES_GCM, &mut params),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_AES_GCM with ulTagBits=200",
    );
    params.ulTagBits = 128;
    params.ulIvLen = 0;
    params.ulIvBits = 0;
    expect_rv(
        raw::init(
            Op::Encrypt,
            s.handle(),
            &raw::mech_with(CKM_AES_GCM, &mut params),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_AES_GCM with an empty IV",
    );
    let mut short = [0u8; 3];
    expect_rv(
        raw::init(
            Op::Encrypt,
            s.handle(),
            &raw::mech_with_bytes(CKM_AES_GCM, &mut short),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_AES_GCM with a 3-byte parameter",
    );
    expect_rv(
        raw::init(
            Op::Decrypt,
            s.handle(),
            &raw::mech_with_bytes(CKM_AES_GCM, &mut []),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_AES_GCM without parameters",
    );
}

fn openssl_cbc(mode: Mode, key: &[u8], iv: &[u8], data: &[u8], pad: bool) -> Option<Vec<u8>> {
    let cipher = verify::aes_cbc_cipher(key.len());
    let mut c = Crypter::new(cipher, mode, key, Some(iv)).unwrap();
    c.pad(pad);
    let mut out = vec![0u8; data.len() + 32];
    let mut n = c.update(data, &mut out).ok()?;
    n += c.finalize(&mut out[n..]).ok()?;
    out.truncate(n);
    Some(out)
}

#[test]
fn aes_cbc_pad_interoperates_with_openssl_both_ways() {
    let t = shared().token("cbc_openssl_both_ways");
    let s = t.login_user();
    for len in [16usize, 24, 32] {
        let value = verify::random_bytes(len);
        let key = aes_key(&s, &value);
        for pt_len in [0usize, 1, 15, 16, 17, 100] {
            let pt = verify::random_bytes(pt_len);
            let ct = ok(
                s.encrypt(&Mechanism::AesCbcPad(IV16), key, &pt),
                "C_Encrypt(CKM_AES_CBC_PAD)",
            );
            assert_eq!(ct.len(), (pt_len / 16 + 1) * 16, "PKCS#7-padded length");
            assert_eq!(
                openssl_cbc(Mode::Decrypt, &value, &IV16, &ct, true).as_deref(),
                Some(&pt[..]),
                "OpenSSL cannot decrypt the module's AES-{}-CBC output ({pt_len} bytes)",
                len * 8
            );
            let theirs = openssl_cbc(Mode::Encrypt, &value, &IV16, &pt, true).unwrap();
            assert_eq!(
                theirs, ct,
                "CBC-PAD is deterministic: module and OpenSSL must agree"
            );
            assert_eq!(
                ok(
                    s.decrypt(&Mechanism::AesCbcPad(IV16), key, &theirs),
                    "C_Decrypt(CKM_AES_CBC_PAD)"
                ),
                pt
            );
        }
    }
}

#[test]
fn aes_cbc_pad_multi_part_with_odd_chunks_equals_single_part() {
    let t = shared().token("cbc_multi_part");
    let s = t.login_user();
    let value = verify::random_bytes(32);
    let key = aes_key(&s, &value);
    let pt = verify::random_bytes(81);
    let single = ok(
        s.encrypt(&Mechanism::AesCbcPad(IV16), key, &pt),
        "C_Encrypt",
    );
    ok(
        s.encrypt_init(&Mechanism::AesCbcPad(IV16), key),
        "C_EncryptInit",
    );
    let mut multi = Vec::new();
    for range in [0..1, 1..16, 16..32, 32..65, 65..81] {
        let out = ok(s.encrypt_update(&pt[range]), "C_EncryptUpdate");
        assert!(
            out.len() & 15 == 0,
            "C_EncryptUpdate emits whole blocks only"
        );
        multi.extend(out);
    }
    multi.extend(ok(s.encrypt_final(), "C_EncryptFinal"));
    assert_eq!(multi, single);
    ok(
        s.decrypt_init(&Mechanism::AesCbcPad(IV16), key),
        "C_DecryptInit",
    );
    let mut opened = Vec::new();
    for chunk in single.chunks(5) {
        opened.extend(ok(s.decrypt_update(chunk), "C_DecryptUpdate"));
    }
    opened.extend(ok(s.decrypt_final(), "C_DecryptFinal"));
    assert_eq!(opened, pt);
}

#[test]
fn aes_cbc_pad_ciphertext_of_bad_length_returns_encrypted_data_len_range() {
    let t = shared().token("cbc_bad_len");
    let s = t.login_user();
    let key = aes_key(&s, &[9u8; 16]);
    for n in [17usize, 15] {
        expect_rv(
            s.decrypt(&Mechanism::AesCbcPad(IV16), key, &vec![0u8; n]),
            CKR_ENCRYPTED_DATA_LEN_RANGE,
            &format!("C_Decrypt(CKM_AES_CBC_PAD) of {n} bytes"),
        );
    }
    expect_rv(
        s.decrypt(&Mechanism::AesCbcPad(IV16), key, &[]),
        CKR_ENCRYPTED_DATA_LEN_RANGE,
        "C_Decrypt(CKM_AES_CBC_PAD) of 0 bytes",
    );
}

#[test]
fn aes_cbc_pad_with_invalid_padding_returns_encrypted_data_invalid() {
    let t = shared().token("cbc_bad_padding");
    let s = t.login_user();
    let value = verify::random_bytes(16);
    let key = aes_key(&s, &value);
    for last in [0x00u8, 0x11, 0xff] {
        let mut block = [0x41u8; 32];
        block[31] = last;
        let ct = openssl_cbc(Mode::Encrypt, &value, &IV16, &block, false).unwrap();
        expect_rv(
            raw::init(
                Op::Decrypt,
                s.handle(),
                &raw::mech(&Mechanism::AesCbcPad(IV16)),
                key.handle(),
            ),
            CKR_OK,
            "C_DecryptInit",
        );
        expect_rv(
            raw::decrypt(s.handle(), &ct, Out::Buf(64)).rv,
            CKR_ENCRYPTED_DATA_INVALID,
            &format!("C_Decrypt with final padding byte {last:#04x}"),
        );
        expect_rv(
            raw::decrypt(s.handle(), &ct, Out::Buf(64)).rv,
            CKR_OPERATION_NOT_INITIALIZED,
            "C_Decrypt after the padding failure",
        );
    }
}

#[test]
fn aes_cbc_pad_with_wrong_iv_length_returns_mechanism_param_invalid() {
    let t = shared().token("cbc_bad_iv");
    let s = t.login_user();
    let key = aes_key(&s, &[9u8; 16]).handle();
    let mut iv8 = [0u8; 8];
    expect_rv(
        raw::init(
            Op::Encrypt,
            s.handle(),
            &raw::mech_with_bytes(CKM_AES_CBC_PAD, &mut iv8),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_AES_CBC_PAD with an 8-byte IV",
    );
    expect_rv(
        raw::init(
            Op::Decrypt,
            s.handle(),
            &raw::mech_with_bytes(CKM_AES_CBC_PAD, &mut []),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_AES_CBC_PAD without an IV",
    );
}

const OAEP_HASHES: [(MechanismType, PkcsMgfType); 5] = [
    (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
    (MechanismType::SHA224, PkcsMgfType::MGF1_SHA224),
    (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
    (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
    (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
];

fn oaep<'a>(hash: MechanismType, mgf: PkcsMgfType, label: &'a [u8]) -> Mechanism<'a> {
    let source = if label.is_empty() {
        PkcsOaepSource::empty()
    } else {
        PkcsOaepSource::data_specified(label)
    };
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, source))
}

#[test]
fn rsa_oaep_decrypts_what_openssl_encrypts_for_each_hash_with_and_without_label() {
    let t = shared().token("oaep_openssl_to_module");
    let s = t.login_user();
    let pair = keys::gen_rsa(&s, 2048, &[], &[]);
    let public = keys::rsa_public_from_token(&s, pair.public);
    for (hash, mgf) in OAEP_HASHES {
        for label in [&b""[..], b"a label"] {
            let pt = b"OAEP secret";
            let ct = verify::rsa_oaep_encrypt(
                &public,
                Oaep {
                    hash,
                    mgf1: hash,
                    label,
                },
                pt,
            );
            assert_eq!(
                ok(
                    s.decrypt(&oaep(hash, mgf, label), pair.private, &ct),
                    &format!(
                        "C_Decrypt(CKM_RSA_PKCS_OAEP, {hash}, label {:?})",
                        String::from_utf8_lossy(label)
                    ),
                ),
                pt
            );
        }
    }
}

#[test]
fn rsa_oaep_ciphertext_from_the_module_decrypts_with_openssl() {
    let t = shared().token("oaep_module_to_openssl");
    let s = t.login_user();
    let rsa = Rsa::generate(2048).unwrap();
    let public = keys::import_rsa_public(&s, &rsa, &[]);
    let private = PKey::from_rsa(rsa).unwrap();
    for (hash, mgf) in OAEP_HASHES {
        for label in [&b""[..], b"lbl"] {
            let pt = b"sealed by the module";
            let ct = ok(
                s.encrypt(&oaep(hash, mgf, label), public, pt),
                "C_Encrypt(CKM_RSA_PKCS_OAEP)",
            );
            assert_eq!(ct.len(), 256);
            assert_eq!(
                verify::rsa_oaep_decrypt(
                    &private,
                    Oaep {
                        hash,
                        mgf1: hash,
                        label
                    },
                    &ct
                )
                .as_deref(),
                Some(&pt[..]),
                "OpenSSL cannot open OAEP({hash}, label {:?}) from the module",
                String::from_utf8_lossy(label)
            );
        }
    }
}

#[test]
fn rsa_oaep_with_the_wrong_label_returns_encrypted_data_invalid() {
    let t = shared().token("oaep_wrong_label");
    let s = t.login_user();
    let pair = keys::gen_rsa(&s, 2048, &[], &[]);
    let public = keys::rsa_public_from_token(&s, pair.public);
    let ct = verify::rsa_oaep_encrypt(
        &public,
        Oaep {
            hash: MechanismType::SHA256,
            mgf1: MechanismType::SHA256,
            label: b"right",
        },
        b"x",
    );
    expect_rv(
        s.decrypt(
            &oaep(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, b"wrong"),
            pair.private,
            &ct,
        ),
        CKR_ENCRYPTED_DATA_INVALID,
        "C_Decrypt(OAEP) with the wrong label",
    );
    expect_rv(
        s.decrypt(
            &oaep(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, b"right"),
            pair.private,
            &ct,
        ),
        CKR_ENCRYPTED_DATA_INVALID,
        "C_Decrypt(OAEP) with the wrong hash",
    );
}

#[test]
fn rsa_oaep_plaintext_too_long_returns_data_len_range() {
    let t = shared().token("oaep_too_long");
    let s = t.login_user();
    let pair = keys::gen_rsa(&s, 2048, &[], &[]);
    let m = oaep(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, b"");
    // 2048-bit modulus, SHA-256: at most 256 - 2*32 - 2 = 190 bytes.
    ok(
        s.encrypt(&m, pair.public, &[7u8; 190]),
        "C_Encrypt of 190 bytes",
    );
    expect_rv(
        s.encrypt(&m, pair.public, &[7u8; 191]),
        CKR_DATA_LEN_RANGE,
        "C_Encrypt(OAEP-SHA256) of 191 bytes",
    );
    // The failed C_Encrypt ended the operation.
    expect_rv(
        raw::encrypt(s.handle(), &[7u8; 16], Out::Buf(256)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Encrypt after the CKR_DATA_LEN_RANGE failure",
    );
}

#[test]
fn malformed_oaep_parameters_return_mechanism_param_invalid() {
    let t = shared().token("oaep_bad_params");
    let s = t.login_user();
    let pair = keys::gen_rsa(&s, 2048, &[], &[]);
    let key = pair.public.handle();
    let mut short = [0u8; 3];
    expect_rv(
        raw::init(
            Op::Encrypt,
            s.handle(),
            &raw::mech_with_bytes(CKM_RSA_PKCS_OAEP, &mut short),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_RSA_PKCS_OAEP with a 3-byte parameter",
    );
    expect_rv(
        raw::init(
            Op::Encrypt,
            s.handle(),
            &raw::mech_with_bytes(CKM_RSA_PKCS_OAEP, &mut []),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_RSA_PKCS_OAEP without parameters",
    );
    let mut bad_hash = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_AES_GCM,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: std::ptr::null_mut(),
        ulSourceDataLen: 0,
    };
    expect_rv(
        raw::init(
            Op::Encrypt,
            s.handle(),
            &raw::mech_with(CKM_RSA_PKCS_OAEP, &mut bad_hash),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_RSA_PKCS_OAEP with hashAlg=CKM_AES_GCM",
    );
    let mut bad_source = CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: 0x99,
        pSourceData: std::ptr::null_mut(),
        ulSourceDataLen: 0,
    };
    expect_rv(
        raw::init(
            Op::Encrypt,
            s.handle(),
            &raw::mech_with(CKM_RSA_PKCS_OAEP, &mut bad_source),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CKM_RSA_PKCS_OAEP with source=0x99",
    );
}

#[test]
fn encrypt_length_query_returns_the_length_and_keeps_the_operation_active() {
    let t = shared().token("encrypt_length_query");
    let s = t.login_user();
    let value = verify::random_bytes(16);
    let key = aes_key(&s, &value);
    let pt = [5u8; 40];
    let mut iv = IV12;
    let m = gcm(&mut iv, b"", 128);
    expect_rv(
        raw::init(Op::Encrypt, s.handle(), &raw::mech(&m), key.handle()),
        CKR_OK,
        "C_EncryptInit",
    );
    let query = raw::encrypt(s.handle(), &pt, Out::Null);
    expect_rv(query.rv, CKR_OK, "C_Encrypt(NULL)");
    assert!(
        query.len >= 56,
        "length query returned {} for 40 bytes + tag",
        query.len
    );
    let out = raw::encrypt(s.handle(), &pt, Out::Buf(query.len));
    expect_rv(out.rv, CKR_OK, "C_Encrypt after the length query");
    assert_eq!(out.len, 56);
    assert_eq!(
        openssl_gcm_open(&value, &IV12, b"", &out.data, 16).as_deref(),
        Some(&pt[..])
    );
}

#[test]
fn encrypt_with_too_small_buffer_returns_buffer_too_small_and_keeps_the_operation_active() {
    let t = shared().token("encrypt_small_buffer");
    let s = t.login_user();
    let value = verify::random_bytes(32);
    let key = aes_key(&s, &value);
    let pt = [6u8; 32];
    let m = Mechanism::AesCbcPad(IV16);
    expect_rv(
        raw::init(Op::Encrypt, s.handle(), &raw::mech(&m), key.handle()),
        CKR_OK,
        "C_EncryptInit",
    );
    let small = raw::encrypt(s.handle(), &pt, Out::Buf(10));
    expect_rv(small.rv, CKR_BUFFER_TOO_SMALL, "C_Encrypt into 10 bytes");
    assert!(small.len >= 48, "needed length reported as {}", small.len);
    let out = raw::encrypt(s.handle(), &pt, Out::Buf(small.len));
    expect_rv(out.rv, CKR_OK, "C_Encrypt after CKR_BUFFER_TOO_SMALL");
    assert_eq!(out.len, 48);
    assert_eq!(
        openssl_cbc(Mode::Decrypt, &value, &IV16, &out.data, true).as_deref(),
        Some(&pt[..])
    );
}

#[test]
fn encrypt_final_length_query_keeps_the_operation_active() {
    let t = shared().token("encrypt_final_length");
    let s = t.login_user();
    let value = verify::random_bytes(16);
    let key = aes_key(&s, &value);
    let m = Mechanism::AesCbcPad(IV16);
    expect_rv(
        raw::init(Op::Encrypt, s.handle(), &raw::mech(&m), key.handle()),
        CKR_OK,
        "C_EncryptInit",
    );
    let upd = raw::encrypt_update(s.handle(), b"five!", Out::Buf(32));
    expect_rv(upd.rv, CKR_OK, "C_EncryptUpdate");
    assert_eq!(upd.len, 0, "5 bytes make no whole block yet");
    let query = raw::encrypt_final(s.handle(), Out::Null);
    expect_rv(query.rv, CKR_OK, "C_EncryptFinal(NULL)");
    assert!(query.len >= 16);
    let small = raw::encrypt_final(s.handle(), Out::Buf(4));
    expect_rv(
        small.rv,
        CKR_BUFFER_TOO_SMALL,
        "C_EncryptFinal into 4 bytes",
    );
    let out = raw::encrypt_final(s.handle(), Out::Buf(16));
    expect_rv(out.rv, CKR_OK, "C_EncryptFinal");
    assert_eq!(
        openssl_cbc(Mode::Decrypt, &value, &IV16, &out.data, true).as_deref(),
        Some(&b"five!"[..])
    );
}

#[test]
fn decrypt_length_query_and_small_buffer_keep_the_operation_active() {
    let t = shared().token("decrypt_length_query");
    let s = t.login_user();
    let value = verify::random_bytes(32);
    let key = aes_key(&s, &value);
    let pt = b"twenty-one bytes long";
    let sealed = openssl_gcm_seal(&value, &IV12, b"", pt, 16);
    let mut iv = IV12;
    let m = gcm(&mut iv, b"", 128);
    expect_rv(
        raw::init(Op::Decrypt, s.handle(), &raw::mech(&m), key.handle()),
        CKR_OK,
        "C_DecryptInit",
    );
    let query = raw::decrypt(s.handle(), &sealed, Out::Null);
    expect_rv(query.rv, CKR_OK, "C_Decrypt(NULL)");
    assert!(query.len >= pt.len(), "length query returned {}", query.len);
    let small = raw::decrypt(s.handle(), &sealed, Out::Buf(1));
    expect_rv(small.rv, CKR_BUFFER_TOO_SMALL, "C_Decrypt into 1 byte");
    assert!(small.len >= pt.len());
    let out = raw::decrypt(s.handle(), &sealed, Out::Buf(small.len));
    expect_rv(out.rv, CKR_OK, "C_Decrypt");
    assert_eq!(out.data, pt);

    let pair = keys::gen_rsa(&s, 2048, &[], &[]);
    let public = keys::rsa_public_from_token(&s, pair.public);
    let ct = verify::rsa_oaep_encrypt(
        &public,
        Oaep {
            hash: MechanismType::SHA256,
            mgf1: MechanismType::SHA256,
            label: b"",
        },
        pt,
    );
    let m = oaep(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, b"");
    expect_rv(
        raw::init(
            Op::Decrypt,
            s.handle(),
            &raw::mech(&m),
            pair.private.handle(),
        ),
        CKR_OK,
        "C_DecryptInit(OAEP)",
    );
    let query = raw::decrypt(s.handle(), &ct, Out::Null);
    expect_rv(query.rv, CKR_OK, "C_Decrypt(OAEP, NULL)");
    assert!(query.len >= pt.len());
    let small = raw::decrypt(s.handle(), &ct, Out::Buf(1));
    expect_rv(
        small.rv,
        CKR_BUFFER_TOO_SMALL,
        "C_Decrypt(OAEP) into 1 byte",
    );
    let out = raw::decrypt(s.handle(), &ct, Out::Buf(small.len.max(pt.len())));
    expect_rv(out.rv, CKR_OK, "C_Decrypt(OAEP)");
    assert_eq!(out.data, pt);
}

#[test]
fn init_while_an_encryption_is_active_returns_operation_active() {
    let t = shared().token("encrypt_init_active");
    let s = t.login_user();
    let key = aes_key(&s, &[1u8; 16]).handle();
    let m = raw::mech(&Mechanism::AesCbcPad(IV16));
    expect_rv(
        raw::init(Op::Encrypt, s.handle(), &m, key),
        CKR_OK,
        "C_EncryptInit",
    );
    expect_rv(
        raw::init(Op::Encrypt, s.handle(), &m, key),
        CKR_OPERATION_ACTIVE,
        "second C_EncryptInit",
    );
    expect_rv(
        raw::encrypt(s.handle(), b"x", Out::Buf(16)).rv,
        CKR_OK,
        "C_Encrypt of the first operation",
    );
    expect_rv(
        raw::init(Op::Decrypt, s.handle(), &m, key),
        CKR_OK,
        "C_DecryptInit",
    );
    expect_rv(
        raw::init(Op::Decrypt, s.handle(), &m, key),
        CKR_OPERATION_ACTIVE,
        "second C_DecryptInit",
    );
}

#[test]
fn encrypt_or_decrypt_without_init_returns_operation_not_initialized() {
    let t = shared().token("encrypt_no_init");
    let s = t.login_user();
    expect_rv(
        raw::encrypt(s.handle(), b"x", Out::Buf(32)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Encrypt",
    );
    expect_rv(
        raw::encrypt_update(s.handle(), b"x", Out::Buf(32)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_EncryptUpdate",
    );
    expect_rv(
        raw::encrypt_final(s.handle(), Out::Buf(32)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_EncryptFinal",
    );
    expect_rv(
        raw::decrypt(s.handle(), &[0; 16], Out::Buf(32)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_Decrypt",
    );
    expect_rv(
        raw::decrypt_update(s.handle(), &[0; 16], Out::Buf(32)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DecryptUpdate",
    );
    expect_rv(
        raw::decrypt_final(s.handle(), Out::Buf(32)).rv,
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DecryptFinal",
    );
}

#[test]
fn encrypt_init_with_invalid_key_handle_returns_key_handle_invalid() {
    let t = shared().token("encrypt_bad_key_handle");
    let s = t.login_user();
    expect_rv(
        s.encrypt_init(&Mechanism::AesCbcPad(IV16), keys::bogus_handle()),
        CKR_KEY_HANDLE_INVALID,
        "C_EncryptInit with a never-issued handle",
    );
    expect_rv(
        s.decrypt_init(&Mechanism::AesCbcPad(IV16), keys::bogus_handle()),
        CKR_KEY_HANDLE_INVALID,
        "C_DecryptInit with a never-issued handle",
    );
}

#[test]
fn key_without_cka_encrypt_or_decrypt_returns_key_function_not_permitted() {
    let t = shared().token("encrypt_not_permitted");
    let s = t.login_user();
    let enc_only = keys::create_aes(&s, &[2u8; 16], &[Attribute::Decrypt(false)]);
    let dec_only = keys::create_aes(&s, &[2u8; 16], &[Attribute::Encrypt(false)]);
    expect_rv(
        s.decrypt_init(&Mechanism::AesCbcPad(IV16), enc_only),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_DecryptInit with CKA_DECRYPT=FALSE",
    );
    expect_rv(
        s.encrypt_init(&Mechanism::AesCbcPad(IV16), dec_only),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_EncryptInit with CKA_ENCRYPT=FALSE",
    );
    let pair = keys::gen_rsa(
        &s,
        2048,
        &[Attribute::Encrypt(false)],
        &[Attribute::Decrypt(false)],
    );
    let m = oaep(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, b"");
    expect_rv(
        s.encrypt_init(&m, pair.public),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_EncryptInit(OAEP) with CKA_ENCRYPT=FALSE",
    );
    expect_rv(
        s.decrypt_init(&m, pair.private),
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "C_DecryptInit(OAEP) with CKA_DECRYPT=FALSE",
    );
}

#[test]
fn allowed_mechanisms_restrict_what_a_key_encrypts_with() {
    let t = shared().token("allowed_mechanisms_encrypt");
    let s = t.login_user();
    let key = keys::create_aes(
        &s,
        &[4u8; 16],
        &[Attribute::AllowedMechanisms(vec![MechanismType::AES_GCM])],
    );
    expect_rv(
        s.encrypt_init(&Mechanism::AesCbcPad(IV16), key),
        CKR_MECHANISM_INVALID,
        "CKM_AES_CBC_PAD outside CKA_ALLOWED_MECHANISMS",
    );
    let mut iv = IV12;
    ok(
        s.encrypt(&gcm(&mut iv, b"", 128), key, b"ok"),
        "C_Encrypt with the allowed mechanism",
    );
}

#[test]
fn key_of_the_wrong_type_returns_key_type_inconsistent() {
    let t = shared().token("encrypt_wrong_key_type");
    let s = t.login_user();
    let aes = keys::create_aes(&s, &[4u8; 16], &[]);
    let pair = keys::gen_rsa(&s, 2048, &[], &[]);
    expect_rv(
        s.encrypt_init(
            &oaep(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, b""),
            aes,
        ),
        CKR_KEY_TYPE_INCONSISTENT,
        "CKM_RSA_PKCS_OAEP with an AES key",
    );
    expect_rv(
        s.encrypt_init(&Mechanism::AesCbcPad(IV16), pair.public),
        CKR_KEY_TYPE_INCONSISTENT,
        "CKM_AES_CBC_PAD with an RSA public key",
    );
}
