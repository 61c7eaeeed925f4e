//! Conformance: symmetric encryption and decryption — pkcs11test's SecretKeyTest family
//! (cipher.cc: AES-ECB and AES-CBC on a key generated in a read-only public session), its
//! NIST vectors, and the AES-CTR/GCM/CBC-PAD/message-based cases of the Rust `cryptoki` and
//! python-pkcs11 suites. Operation-state rules are checked exactly: a call that fails with
//! anything but CKR_BUFFER_TOO_SMALL ends the operation; one-shot and multi-part calls do
//! not mix.

use cryptoki::mechanism::aead::{GcmMessageParams, GcmParams, GeneratorFunction};
use cryptoki::mechanism::{Mechanism, MessageParam};
use cryptoki_sys::*;
use hsmux_tests::conformance::*;
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::*;
use std::ptr::null_mut;

const BLOCK: usize = 16;
const BLOCKS: usize = 4;

/// A block mode under test, with its IV (if any) kept alive for the raw mechanism.
struct Mode {
    name: &'static str,
    mechanism: CK_MECHANISM_TYPE,
    iv: Option<[u8; 16]>,
}

impl Mode {
    fn all() -> [Mode; 2] {
        [
            Mode {
                name: "AES-ECB",
                mechanism: CKM_AES_ECB,
                iv: None,
            },
            Mode {
                name: "AES-CBC",
                mechanism: CKM_AES_CBC,
                iv: Some(*b"iv-for-the-tests"),
            },
        ]
    }

    fn mech(&mut self) -> CK_MECHANISM {
        match &mut self.iv {
            Some(iv) => raw::mech_with_bytes(self.mechanism, iv),
            None => plain(self.mechanism),
        }
    }
}

/// pkcs11test's SecretKey: generated in the given (possibly R/O, public) session as a
/// public session object with CKA_ENCRYPT and CKA_DECRYPT.
fn session_aes_key(s: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    let mut t = Template::new()
        .bytes(CKA_LABEL, b"conformance cipher")
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_DECRYPT, true)
        .ulong(CKA_VALUE_LEN, 16)
        .bool(CKA_PRIVATE, false);
    let (rv, key) = generate_key(s, &plain(CKM_AES_KEY_GEN), &mut t);
    expect_rv(
        rv,
        CKR_OK,
        "C_GenerateKey(CKM_AES_KEY_GEN) in a R/O public session",
    );
    key
}

fn plaintext() -> Vec<u8> {
    verify::random_bytes(BLOCK * BLOCKS)
}

fn enc_init(s: CK_SESSION_HANDLE, m: &mut Mode, key: CK_OBJECT_HANDLE) -> CK_RV {
    raw::init(Op::Encrypt, s, &m.mech(), key)
}

fn dec_init(s: CK_SESSION_HANDLE, m: &mut Mode, key: CK_OBJECT_HANDLE) -> CK_RV {
    raw::init(Op::Decrypt, s, &m.mech(), key)
}

/// pkcs11test SecretKeyTest.EncryptDecrypt and EncryptFailDecrypt (unpadded modes decrypt
/// a corrupted ciphertext to different plaintext without error).
#[test]
fn ecb_and_cbc_round_trip_with_a_key_made_in_a_read_only_public_session() {
    let t = shared().token("cipher round trip");
    let s = t.ro_session();
    let h = s.handle();
    let key = session_aes_key(h);
    for mut m in Mode::all() {
        let pt = plaintext();
        let ct = encrypt_raw(h, &m.mech(), key, &pt)
            .unwrap_or_else(|rv| panic!("{}: {}", m.name, rv_name(rv)));
        assert_eq!(ct.len(), pt.len(), "{}: ciphertext length", m.name);
        let back = decrypt_raw(h, &m.mech(), key, &ct)
            .unwrap_or_else(|rv| panic!("{}: {}", m.name, rv_name(rv)));
        assert_eq!(back, pt, "{}: round trip", m.name);
        let mut bad = ct.clone();
        bad[0] = bad[0].wrapping_add(1);
        let garbled =
            decrypt_raw(h, &m.mech(), key, &bad).expect("unpadded decrypt of a corrupted block");
        assert_eq!(garbled.len(), pt.len());
        assert_ne!(
            garbled, pt,
            "{}: corrupted ciphertext decrypted to the plaintext",
            m.name
        );
    }
}

/// pkcs11test SecretKeyTest.EncryptDecryptGetSpace: NULL output → length; a buffer one byte
/// short → CKR_BUFFER_TOO_SMALL with the length, the buffer untouched, the operation alive.
#[test]
fn length_queries_and_short_buffers_keep_the_operation_and_leave_the_buffer_alone() {
    let t = shared().token("cipher get space");
    let s = t.ro_session();
    let h = s.handle();
    let key = session_aes_key(h);
    let n = BLOCK * BLOCKS;
    for mut m in Mode::all() {
        let pt = plaintext();
        expect_rv(enc_init(h, &mut m, key), CKR_OK, "C_EncryptInit");
        let q = raw::encrypt(h, &pt, Out::Null);
        expect_rv(q.rv, CKR_OK, "C_Encrypt(NULL)");
        assert_eq!(q.len, n, "{}: C_Encrypt length query", m.name);
        let mut buf = vec![0xab; n - 1];
        let mut len = buf.len() as CK_ULONG;
        let mut data = pt.clone();
        // SAFETY: `data`, `buf` and `len` are live; `len` says how much `buf` holds.
        let rv = unsafe {
            f().C_Encrypt.unwrap()(
                h,
                data.as_mut_ptr(),
                n as CK_ULONG,
                buf.as_mut_ptr(),
                &mut len,
            )
        };
        expect_rv(
            rv,
            CKR_BUFFER_TOO_SMALL,
            "C_Encrypt into a buffer one byte short",
        );
        assert_eq!(
            len as usize, n,
            "{}: required length after BUFFER_TOO_SMALL",
            m.name
        );
        assert!(
            buf.iter().all(|b| *b == 0xab),
            "{}: short buffer was written",
            m.name
        );
        let ct = raw::encrypt(h, &pt, Out::Buf(n));
        expect_rv(ct.rv, CKR_OK, "C_Encrypt after BUFFER_TOO_SMALL");

        expect_rv(dec_init(h, &mut m, key), CKR_OK, "C_DecryptInit");
        let q = raw::decrypt(h, &ct.data, Out::Null);
        expect_rv(q.rv, CKR_OK, "C_Decrypt(NULL)");
        assert_eq!(q.len, n, "{}: C_Decrypt length query", m.name);
        let mut buf = vec![0xab; n - 1];
        let mut len = buf.len() as CK_ULONG;
        let mut data = ct.data.clone();
        // SAFETY: as above.
        let rv = unsafe {
            f().C_Decrypt.unwrap()(
                h,
                data.as_mut_ptr(),
                n as CK_ULONG,
                buf.as_mut_ptr(),
                &mut len,
            )
        };
        expect_rv(
            rv,
            CKR_BUFFER_TOO_SMALL,
            "C_Decrypt into a buffer one byte short",
        );
        assert_eq!(len as usize, n);
        assert!(
            buf.iter().all(|b| *b == 0xab),
            "{}: short buffer was written",
            m.name
        );
        let back = raw::decrypt(h, &ct.data, Out::Buf(n));
        expect_rv(back.rv, CKR_OK, "C_Decrypt after BUFFER_TOO_SMALL");
        assert_eq!(back.data, pt);
    }
}

/// pkcs11test SecretKeyTest.EncryptDecryptParts and EncryptFinalImmediate: block-by-block
/// updates each return one block, the final part is empty, and the result equals the
/// single-part one; C_EncryptFinal straight after C_EncryptInit returns nothing.
#[test]
fn block_by_block_updates_equal_single_part_and_final_may_come_first() {
    let t = shared().token("cipher parts");
    let s = t.ro_session();
    let h = s.handle();
    let key = session_aes_key(h);
    for mut m in Mode::all() {
        let pt = plaintext();
        expect_rv(enc_init(h, &mut m, key), CKR_OK, "C_EncryptInit");
        let mut ct = Vec::new();
        for block in pt.chunks(BLOCK) {
            let r = raw::encrypt_update(h, block, Out::Buf(256));
            expect_rv(r.rv, CKR_OK, "C_EncryptUpdate(one block)");
            assert_eq!(
                r.data.len(),
                BLOCK,
                "{}: one block in, one block out",
                m.name
            );
            ct.extend(r.data);
        }
        let r = raw::encrypt_final(h, Out::Buf(256));
        expect_rv(r.rv, CKR_OK, "C_EncryptFinal");
        assert!(
            r.data.is_empty(),
            "{}: unpadded final part must be empty",
            m.name
        );
        assert_eq!(
            Ok(ct.clone()),
            encrypt_raw(h, &m.mech(), key, &pt),
            "{}: parts = one shot",
            m.name
        );

        expect_rv(dec_init(h, &mut m, key), CKR_OK, "C_DecryptInit");
        let mut back = Vec::new();
        for block in ct.chunks(BLOCK) {
            let r = raw::decrypt_update(h, block, Out::Buf(256));
            expect_rv(r.rv, CKR_OK, "C_DecryptUpdate(one block)");
            assert_eq!(
                r.data.len(),
                BLOCK,
                "{}: one block in, one block out",
                m.name
            );
            back.extend(r.data);
        }
        let r = raw::decrypt_final(h, Out::Buf(256));
        expect_rv(r.rv, CKR_OK, "C_DecryptFinal");
        assert!(r.data.is_empty());
        assert_eq!(back, pt);

        expect_rv(enc_init(h, &mut m, key), CKR_OK, "C_EncryptInit");
        let r = raw::encrypt_final(h, Out::Buf(256));
        expect_rv(r.rv, CKR_OK, "C_EncryptFinal with no data");
        assert!(r.data.is_empty());
        expect_rv(
            raw::encrypt_final(h, Out::Buf(256)).rv,
            CKR_OPERATION_NOT_INITIALIZED,
            "C_EncryptFinal after the operation ended",
        );
    }
}

/// pkcs11test SecretKeyTest.EncryptDecryptInitInvalid.
#[test]
fn cipher_init_rejects_unknown_mechanisms_handles_wrong_key_types_and_double_init() {
    let t = shared().token("cipher init invalid");
    let s = t.ro_session();
    let h = s.handle();
    let key = session_aes_key(h);
    for op in [Op::Encrypt, Op::Decrypt] {
        for mut m in Mode::all() {
            expect_rv(
                raw::init(op, h, &plain(999), key),
                CKR_MECHANISM_INVALID,
                "init(999)",
            );
            expect_rv(
                raw::init(op, BOGUS_SESSION, &m.mech(), key),
                CKR_SESSION_HANDLE_INVALID,
                "init(unknown session)",
            );
            expect_rv(
                raw::init(op, h, &m.mech(), BOGUS_OBJECT),
                CKR_KEY_HANDLE_INVALID,
                "init(unknown key)",
            );
            expect_rv(
                raw::init(op, h, &plain(CKM_RSA_PKCS), key),
                CKR_KEY_TYPE_INCONSISTENT,
                "init(CKM_RSA_PKCS, AES key)",
            );
            expect_rv(raw::init(op, h, &m.mech(), key), CKR_OK, "init");
            expect_rv(
                raw::init(op, h, &m.mech(), key),
                CKR_OPERATION_ACTIVE,
                "init twice",
            );
            // End it for the next round.
            let _ = match op {
                Op::Encrypt => raw::encrypt_final(h, Out::Buf(64)),
                _ => raw::decrypt_final(h, Out::Buf(64)),
            };
        }
    }
    // SAFETY: NULL mechanism is the input under test.
    let rv = unsafe { f().C_EncryptInit.unwrap()(h, null_mut(), key) };
    expect_rv_in(
        rv,
        &[CKR_ARGUMENTS_BAD, CKR_MECHANISM_INVALID],
        "C_EncryptInit(NULL)",
    );
}

/// pkcs11test SecretKeyTest.{EncryptErrors, DecryptErrors, EncryptUpdateErrors,
/// DecryptUpdateErrors}: after C_Encrypt / C_EncryptUpdate (and the decrypt twins) fail with
/// CKR_ARGUMENTS_BAD the operation is over, so a new C_*Init succeeds. (PKCS#11: "A call to
/// C_Encrypt always terminates the active encryption operation unless it returns
/// CKR_BUFFER_TOO_SMALL or is a successful call ... to determine the length".)
#[test]
fn arguments_bad_from_a_cipher_call_ends_the_operation() {
    let t = shared().token("cipher args bad ends op");
    let s = t.ro_session();
    let h = s.handle();
    let key = session_aes_key(h);
    let pt = plaintext();
    let n = pt.len() as CK_ULONG;
    let fl = f();
    for mut m in Mode::all() {
        let ct = encrypt_raw(h, &m.mech(), key, &pt).expect("encrypt");
        let mut input = pt.clone();
        let mut cin = ct.clone();
        let mut buf = [0u8; 256];
        let mut len: CK_ULONG = buf.len() as CK_ULONG;
        type Call<'a> = (&'a str, Op, Box<dyn FnMut() -> CK_RV + 'a>);
        let p_in = input.as_mut_ptr();
        let p_cin = cin.as_mut_ptr();
        let p_buf = buf.as_mut_ptr();
        let p_len: *mut CK_ULONG = &mut len;
        // SAFETY (each closure): pointers are to live locals or NULL where the module must
        // reject the call; `p_len` is re-armed before every use.
        let calls: Vec<Call> = vec![
            (
                "C_Encrypt(out NULL, len NULL)",
                Op::Encrypt,
                Box::new(|| unsafe { fl.C_Encrypt.unwrap()(h, p_in, n, null_mut(), null_mut()) }),
            ),
            (
                "C_Encrypt(data NULL)",
                Op::Encrypt,
                Box::new(|| unsafe {
                    *p_len = 256;
                    fl.C_Encrypt.unwrap()(h, null_mut(), BLOCK as CK_ULONG, p_buf, p_len)
                }),
            ),
            (
                "C_EncryptUpdate(out NULL, len NULL)",
                Op::Encrypt,
                Box::new(|| unsafe {
                    fl.C_EncryptUpdate.unwrap()(h, p_in, n, null_mut(), null_mut())
                }),
            ),
            (
                "C_EncryptUpdate(data NULL)",
                Op::Encrypt,
                Box::new(|| unsafe {
                    *p_len = 256;
                    fl.C_EncryptUpdate.unwrap()(h, null_mut(), BLOCK as CK_ULONG, p_buf, p_len)
                }),
            ),
            (
                "C_EncryptFinal(NULL, NULL)",
                Op::Encrypt,
                Box::new(|| unsafe { fl.C_EncryptFinal.unwrap()(h, null_mut(), null_mut()) }),
            ),
            (
                "C_Decrypt(out NULL, len NULL)",
                Op::Decrypt,
                Box::new(|| unsafe { fl.C_Decrypt.unwrap()(h, p_cin, n, null_mut(), null_mut()) }),
            ),
            (
                "C_Decrypt(data NULL)",
                Op::Decrypt,
                Box::new(|| unsafe {
                    *p_len = 256;
                    fl.C_Decrypt.unwrap()(h, null_mut(), BLOCK as CK_ULONG, p_buf, p_len)
                }),
            ),
            (
                "C_DecryptUpdate(out NULL, len NULL)",
                Op::Decrypt,
                Box::new(|| unsafe {
                    fl.C_DecryptUpdate.unwrap()(h, p_cin, n, null_mut(), null_mut())
                }),
            ),
            (
                "C_DecryptUpdate(data NULL)",
                Op::Decrypt,
                Box::new(|| unsafe {
                    *p_len = 256;
                    fl.C_DecryptUpdate.unwrap()(h, null_mut(), BLOCK as CK_ULONG, p_buf, p_len)
                }),
            ),
            (
                "C_DecryptFinal(NULL, NULL)",
                Op::Decrypt,
                Box::new(|| unsafe { fl.C_DecryptFinal.unwrap()(h, null_mut(), null_mut()) }),
            ),
        ];
        let mut problems = Vec::new();
        for (what, op, mut call) in calls {
            expect_rv(raw::init(op, h, &m.mech(), key), CKR_OK, "init");
            let rv = call();
            if rv != CKR_ARGUMENTS_BAD {
                problems.push(format!("{}: {what} returned {}", m.name, rv_name(rv)));
            }
            let again = raw::init(op, h, &m.mech(), key);
            if again != CKR_OK {
                problems.push(format!(
                    "{}: C_*Init after {what} returned {} (operation not ended)",
                    m.name,
                    rv_name(again)
                ));
            }
            let _ = match op {
                Op::Encrypt => raw::encrypt_final(h, Out::Buf(256)),
                _ => raw::decrypt_final(h, Out::Buf(256)),
            };
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

/// pkcs11test SecretKeyTest.{EncryptErrors, DecryptErrors, EncryptFinalErrors2,
/// DecryptFinalErrors2}: an unknown session is reported without touching the real one; a
/// partial block is CKR_DATA_LEN_RANGE on encryption and CKR_ENCRYPTED_DATA_LEN_RANGE on
/// decryption, and ends the operation.
#[test]
fn partial_blocks_are_length_errors_that_end_the_operation() {
    let t = shared().token("cipher partial block");
    let s = t.ro_session();
    let h = s.handle();
    let key = session_aes_key(h);
    let pt = plaintext();
    for mut m in Mode::all() {
        let ct = encrypt_raw(h, &m.mech(), key, &pt).expect("encrypt");
        expect_rv(enc_init(h, &mut m, key), CKR_OK, "C_EncryptInit");
        expect_rv(
            raw::encrypt(BOGUS_SESSION, &pt, Out::Buf(256)).rv,
            CKR_SESSION_HANDLE_INVALID,
            "C_Encrypt(unknown session)",
        );
        let r = raw::encrypt(h, &pt[..BLOCK - 1], Out::Buf(256));
        expect_rv(
            r.rv,
            CKR_DATA_LEN_RANGE,
            &format!("{}: C_Encrypt(15 bytes)", m.name),
        );
        expect_rv(
            raw::encrypt(h, &pt, Out::Buf(256)).rv,
            CKR_OPERATION_NOT_INITIALIZED,
            "C_Encrypt after a failed C_Encrypt",
        );

        expect_rv(dec_init(h, &mut m, key), CKR_OK, "C_DecryptInit");
        let r = raw::decrypt(h, &ct[..BLOCK - 1], Out::Buf(256));
        expect_rv(
            r.rv,
            CKR_ENCRYPTED_DATA_LEN_RANGE,
            &format!("{}: C_Decrypt(15 bytes)", m.name),
        );
        expect_rv(
            raw::decrypt(h, &ct, Out::Buf(256)).rv,
            CKR_OPERATION_NOT_INITIALIZED,
            "C_Decrypt after a failed C_Decrypt",
        );

        // Multi-part: a trailing partial block fails at the update or at the final call.
        expect_rv(enc_init(h, &mut m, key), CKR_OK, "C_EncryptInit");
        expect_rv(
            raw::encrypt_update(h, &pt, Out::Buf(256)).rv,
            CKR_OK,
            "C_EncryptUpdate",
        );
        expect_rv(
            raw::encrypt_final(BOGUS_SESSION, Out::Buf(256)).rv,
            CKR_SESSION_HANDLE_INVALID,
            "C_EncryptFinal(unknown session)",
        );
        let u = raw::encrypt_update(h, &pt[..BLOCK - 1], Out::Buf(256));
        let rv = if u.rv == CKR_OK {
            raw::encrypt_final(h, Out::Buf(256)).rv
        } else {
            u.rv
        };
        expect_rv(
            rv,
            CKR_DATA_LEN_RANGE,
            &format!("{}: trailing partial block", m.name),
        );
        expect_rv(
            raw::encrypt_final(h, Out::Buf(256)).rv,
            CKR_OPERATION_NOT_INITIALIZED,
            "C_EncryptFinal after the failure",
        );

        expect_rv(dec_init(h, &mut m, key), CKR_OK, "C_DecryptInit");
        expect_rv(
            raw::decrypt_update(h, &ct, Out::Buf(256)).rv,
            CKR_OK,
            "C_DecryptUpdate",
        );
        expect_rv(
            raw::decrypt_final(BOGUS_SESSION, Out::Buf(256)).rv,
            CKR_SESSION_HANDLE_INVALID,
            "C_DecryptFinal(unknown session)",
        );
        let u = raw::decrypt_update(h, &ct[..BLOCK - 1], Out::Buf(256));
        let rv = if u.rv == CKR_OK {
            raw::decrypt_final(h, Out::Buf(256)).rv
        } else {
            u.rv
        };
        expect_rv(
            rv,
            CKR_ENCRYPTED_DATA_LEN_RANGE,
            &format!("{}: trailing partial block", m.name),
        );
        expect_rv(
            raw::decrypt_final(h, Out::Buf(256)).rv,
            CKR_OPERATION_NOT_INITIALIZED,
            "C_DecryptFinal after the failure",
        );
    }
}

/// pkcs11test SecretKeyTest.{EncryptModePolicing1, EncryptModePolicing2}: once
/// C_EncryptUpdate has run, C_Encrypt is refused; once C_Encrypt has answered a length
/// query, C_EncryptUpdate is refused — both with CKR_OPERATION_ACTIVE.
#[test]
fn single_part_and_multi_part_calls_do_not_mix() {
    let t = shared().token("cipher mode policing");
    let s = t.ro_session();
    let h = s.handle();
    let key = session_aes_key(h);
    let pt = plaintext();
    for mut m in Mode::all() {
        expect_rv(enc_init(h, &mut m, key), CKR_OK, "C_EncryptInit");
        expect_rv(
            raw::encrypt_update(h, &pt, Out::Buf(256)).rv,
            CKR_OK,
            "C_EncryptUpdate",
        );
        expect_rv(
            raw::encrypt(h, &pt, Out::Buf(256)).rv,
            CKR_OPERATION_ACTIVE,
            &format!("{}: C_Encrypt after C_EncryptUpdate", m.name),
        );
        let _ = raw::encrypt_final(h, Out::Buf(256));

        expect_rv(enc_init(h, &mut m, key), CKR_OK, "C_EncryptInit");
        expect_rv(
            raw::encrypt(h, &pt, Out::Null).rv,
            CKR_OK,
            "C_Encrypt(NULL)",
        );
        expect_rv(
            raw::encrypt_update(h, &pt, Out::Buf(256)).rv,
            CKR_OPERATION_ACTIVE,
            &format!("{}: C_EncryptUpdate after a C_Encrypt length query", m.name),
        );
        let _ = raw::encrypt(h, &pt, Out::Buf(256));
        let _ = raw::encrypt_final(h, Out::Buf(256));
    }
}

/// pkcs11test SecretKeyTest.{EncryptInvalidIV, DecryptInvalidIV} (and its disabled NULL-IV
/// case): a CBC IV that is not 16 bytes, or a NULL one, is CKR_MECHANISM_PARAM_INVALID.
#[test]
fn cbc_with_a_short_or_null_iv_returns_mechanism_param_invalid() {
    let t = shared().token("cipher bad iv");
    let s = t.ro_session();
    let h = s.handle();
    let key = session_aes_key(h);
    for mech in [CKM_AES_CBC, CKM_AES_CBC_PAD] {
        for op in [Op::Encrypt, Op::Decrypt] {
            let mut short = [0u8; 15];
            expect_rv(
                raw::init(op, h, &raw::mech_with_bytes(mech, &mut short), key),
                CKR_MECHANISM_PARAM_INVALID,
                &format!("{mech:#x} with a 15-byte IV"),
            );
            let null_iv = CK_MECHANISM {
                mechanism: mech,
                pParameter: null_mut(),
                ulParameterLen: 16,
            };
            expect_rv(
                raw::init(op, h, &null_iv, key),
                CKR_MECHANISM_PARAM_INVALID,
                &format!("{mech:#x} with a NULL 16-byte IV"),
            );
        }
    }
}

/// pkcs11test ReadOnlySessionTest.SecretKeyTestVectors (NIST SP 800-38A F.1.1 and F.2.1)
/// and rust-cryptoki aes_cbc_encrypt / aes_cbc_pad_encrypt (zero key, zero IV).
#[test]
fn aes_ecb_cbc_and_cbc_pad_match_published_vectors() {
    let t = shared().token("cipher vectors");
    let s = t.ro_session();
    let h = s.handle();
    let nist = hex("2b7e151628aed2a6abf7158809cf4f3c");
    let key = create(h, aes_key(&nist, &[CKA_ENCRYPT, CKA_DECRYPT]), "NIST key");
    let cases: [(CK_MECHANISM_TYPE, &str, &str, &str); 4] = [
        (
            CKM_AES_ECB,
            "",
            "6bc1bee22e409f96e93d7e117393172a",
            "3ad77bb40d7a3660a89ecaf32466ef97",
        ),
        (
            CKM_AES_ECB,
            "",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "f5d3d58503b9699de785895a96fdbaaf",
        ),
        (
            CKM_AES_CBC,
            "000102030405060708090a0b0c0d0e0f",
            "6bc1bee22e409f96e93d7e117393172a",
            "7649abac8119b246cee98e9b12e9197d",
        ),
        (
            CKM_AES_CBC,
            "7649abac8119b246cee98e9b12e9197d",
            "ae2d8a571e03ac9c9eb76fac45af8e51",
            "5086cb9b507219ee95db113a917678b2",
        ),
    ];
    for (mech, iv, pt, ct) in cases {
        let mut iv = hex(iv);
        let m = if iv.is_empty() {
            plain(mech)
        } else {
            raw::mech_with_bytes(mech, &mut iv)
        };
        assert_eq!(
            encrypt_raw(h, &m, key, &hex(pt)),
            Ok(hex(ct)),
            "{mech:#x} vector {pt}"
        );
        assert_eq!(
            decrypt_raw(h, &m, key, &hex(ct)),
            Ok(hex(pt)),
            "{mech:#x} vector {ct}"
        );
    }
    let zero = create(h, aes_key(&[0; 16], &[CKA_ENCRYPT]), "zero key");
    let two_blocks = "66e94bd4ef8a2c3b884cfa59ca342b2ef795bd4a52e29ed713d313fa20e98dbc";
    let mut iv = [0u8; 16];
    assert_eq!(
        encrypt_raw(
            h,
            &raw::mech_with_bytes(CKM_AES_CBC, &mut iv),
            zero,
            &[0; 32]
        ),
        Ok(hex(two_blocks))
    );
    assert_eq!(
        encrypt_raw(
            h,
            &raw::mech_with_bytes(CKM_AES_CBC_PAD, &mut iv),
            zero,
            &[0; 32]
        ),
        Ok(hex(&format!(
            "{two_blocks}5c047616756fdc1c32e0df6e8c59bb2a"
        )))
    );
}

fn ctr_params(counter: [u8; 16], bits: CK_ULONG) -> CK_AES_CTR_PARAMS {
    CK_AES_CTR_PARAMS {
        ulCounterBits: bits,
        cb: counter,
    }
}

/// NIST SP 800-38A F.5.1 (CTR-AES128), single- and multi-part with odd chunk sizes, and
/// CKR_MECHANISM_PARAM_INVALID for a counter width of 0 or above 128 bits.
#[test]
fn aes_ctr_matches_nist_and_streams_in_odd_chunks() {
    let t = shared().token("cipher ctr");
    let s = t.ro_session();
    let h = s.handle();
    let key = create(
        h,
        aes_key(
            &hex("2b7e151628aed2a6abf7158809cf4f3c"),
            &[CKA_ENCRYPT, CKA_DECRYPT],
        ),
        "NIST key",
    );
    let counter: [u8; 16] = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").try_into().unwrap();
    let pt = hex(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
         30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
    );
    let ct = hex(
        "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
         5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee",
    );
    let mut p = ctr_params(counter, 128);
    let m = raw::mech_with(CKM_AES_CTR, &mut p);
    assert_eq!(
        encrypt_raw(h, &m, key, &pt),
        Ok(ct.clone()),
        "CTR-AES128 encrypt"
    );
    assert_eq!(
        decrypt_raw(h, &m, key, &ct),
        Ok(pt.clone()),
        "CTR-AES128 decrypt"
    );
    expect_rv(
        raw::init(Op::Encrypt, h, &m, key),
        CKR_OK,
        "C_EncryptInit(CTR)",
    );
    let mut out = Vec::new();
    for chunk in pt.chunks(7) {
        let r = raw::encrypt_update(h, chunk, Out::Buf(64));
        expect_rv(r.rv, CKR_OK, "C_EncryptUpdate(CTR, 7 bytes)");
        out.extend(r.data);
    }
    let r = raw::encrypt_final(h, Out::Buf(64));
    expect_rv(r.rv, CKR_OK, "C_EncryptFinal(CTR)");
    out.extend(r.data);
    assert_eq!(out, ct, "multi-part CTR");
    for bits in [0, 129] {
        let mut p = ctr_params(counter, bits);
        expect_rv(
            raw::init(Op::Encrypt, h, &raw::mech_with(CKM_AES_CTR, &mut p), key),
            CKR_MECHANISM_PARAM_INVALID,
            &format!("CTR with ulCounterBits {bits}"),
        );
    }
    let mut short = [0u8; 8];
    expect_rv(
        raw::init(
            Op::Encrypt,
            h,
            &raw::mech_with_bytes(CKM_AES_CTR, &mut short),
            key,
        ),
        CKR_MECHANISM_PARAM_INVALID,
        "CTR with an 8-byte parameter",
    );
}

/// rust-cryptoki aes_gcm_no_aad / aes_gcm_with_aad (zero key and IV, 96-bit tag) and
/// encrypt_decrypt_multipart (GCM in 16-byte parts, with the suite's 2-byte IV).
#[test]
fn aes_gcm_matches_known_answers_and_works_in_parts_with_a_short_iv() {
    let t = shared().token("cipher gcm");
    let s = t.login_user();
    let key = keys::create_aes(&s, &[0; 16], &[]);
    let mut iv = [0u8; 12];
    let sealed = ok(
        s.encrypt(
            &Mechanism::AesGcm(GcmParams::new(&mut iv, &[], 96.into()).unwrap()),
            key,
            &[0; 32],
        ),
        "C_Encrypt(GCM, no AAD)",
    );
    assert_eq!(
        sealed,
        hex("0388dace60b6a392f328c2b971b2fe78f795aaab494b5923f7fd89ff948bc1e040490af4805606b2a3a2e793")
    );
    let sealed = ok(
        s.encrypt(
            &Mechanism::AesGcm(GcmParams::new(&mut iv, &[0; 16], 96.into()).unwrap()),
            key,
            &[0; 16],
        ),
        "C_Encrypt(GCM, 16-byte AAD)",
    );
    assert_eq!(
        sealed,
        hex("0388dace60b6a392f328c2b971b2fe78d24e503a1bb037071c71b35d")
    );

    let data: Vec<u8> = (0..48u8).collect();
    let mut iv2 = [0u8, 12];
    ok(s.generate_random_slice(&mut iv2), "C_GenerateRandom(2)");
    ok(
        s.encrypt_init(
            &Mechanism::AesGcm(GcmParams::new(&mut iv2, &[], 128.into()).unwrap()),
            key,
        ),
        "C_EncryptInit(GCM, 2-byte IV)",
    );
    let mut enc = Vec::new();
    for part in data.chunks(16) {
        enc.extend(ok(s.encrypt_update(part), "C_EncryptUpdate(GCM)"));
    }
    enc.extend(ok(s.encrypt_final(), "C_EncryptFinal(GCM)"));
    assert_eq!(enc.len(), data.len() + 16);
    ok(
        s.decrypt_init(
            &Mechanism::AesGcm(GcmParams::new(&mut iv2, &[], 128.into()).unwrap()),
            key,
        ),
        "C_DecryptInit(GCM)",
    );
    let mut dec = Vec::new();
    for part in enc.chunks(16) {
        dec.extend(ok(s.decrypt_update(part), "C_DecryptUpdate(GCM)"));
    }
    dec.extend(ok(s.decrypt_final(), "C_DecryptFinal(GCM)"));
    assert_eq!(dec, data);
}

/// rust-cryptoki encrypt_decrypt_gcm_message_{no_aad, with_aad}: the 3.0 message-based
/// interface gives the same answers as single-part GCM, with the tag returned separately.
#[test]
fn message_based_gcm_matches_the_single_part_known_answers() {
    let t = shared().token("cipher gcm message");
    let s = t.login_user();
    assert!(
        t.pkcs11
            .is_fn_supported(cryptoki::context::Function::MessageEncryptInit),
        "a 3.0 module lists C_MessageEncryptInit"
    );
    let key = keys::create_aes(&s, &[0; 16], &[]);
    for (aad, pt, ct, tag) in [
        (
            &[][..],
            &[0u8; 32][..],
            "0388dace60b6a392f328c2b971b2fe78f795aaab494b5923f7fd89ff948bc1e0",
            "40490af4805606b2a3a2e793",
        ),
        (
            &[0u8; 16][..],
            &[0u8; 16][..],
            "0388dace60b6a392f328c2b971b2fe78",
            "d24e503a1bb037071c71b35d",
        ),
    ] {
        let mut iv = [0u8; 12];
        let mut out_tag = [0u8; 12];
        let param = GcmMessageParams::new(
            &mut iv,
            96.into(),
            GeneratorFunction::NoGenerate,
            &mut out_tag,
        )
        .unwrap();
        ok(
            s.message_encrypt_init(&Mechanism::AesGcmMessage(param), key),
            "C_MessageEncryptInit",
        );
        let got = ok(
            s.encrypt_message(&MessageParam::AesGcmMessage(param), aad, pt),
            "C_EncryptMessage",
        );
        ok(s.message_encrypt_final(), "C_MessageEncryptFinal");
        assert_eq!(got, hex(ct));
        assert_eq!(out_tag.to_vec(), hex(tag));
        let param = GcmMessageParams::new(
            &mut iv,
            96.into(),
            GeneratorFunction::NoGenerate,
            &mut out_tag,
        )
        .unwrap();
        ok(
            s.message_decrypt_init(&Mechanism::AesGcmMessage(param), key),
            "C_MessageDecryptInit",
        );
        let back = ok(
            s.decrypt_message(&MessageParam::AesGcmMessage(param), aad, &got),
            "C_DecryptMessage",
        );
        ok(s.message_decrypt_final(), "C_MessageDecryptFinal");
        assert_eq!(back, pt);
    }
}

/// python-pkcs11 test_partial_decrypt: while a multi-part decryption is running, a second
/// C_DecryptInit in the same session is CKR_OPERATION_ACTIVE; test_encrypt_whacky_sizes:
/// CBC-PAD updates of any sizes round-trip.
#[test]
fn cbc_pad_streams_in_uneven_parts_and_a_second_decryption_is_refused() {
    let t = shared().token("cipher cbc pad stream");
    let s = t.login_user();
    let key = keys::gen_aes(&s, 16, &[]);
    let iv = *b"0000000000000000";
    let parts: Vec<Vec<u8>> = "HELLO WORLD"
        .chars()
        .map(|c| vec![c as u8; c as usize])
        .collect();
    ok(
        s.encrypt_init(&Mechanism::AesCbcPad(iv), key),
        "C_EncryptInit",
    );
    let mut enc = Vec::new();
    for p in &parts {
        enc.extend(ok(s.encrypt_update(p), "C_EncryptUpdate"));
    }
    enc.extend(ok(s.encrypt_final(), "C_EncryptFinal"));
    assert_eq!(enc.len() % 16, 0);
    ok(
        s.decrypt_init(&Mechanism::AesCbcPad(iv), key),
        "C_DecryptInit",
    );
    let mut dec = ok(s.decrypt_update(&enc[..16]), "C_DecryptUpdate");
    expect_rv(
        s.decrypt_init(&Mechanism::AesCbcPad(iv), key),
        CKR_OPERATION_ACTIVE,
        "second C_DecryptInit while decrypting",
    );
    dec.extend(ok(s.decrypt_update(&enc[16..]), "C_DecryptUpdate"));
    dec.extend(ok(s.decrypt_final(), "C_DecryptFinal"));
    assert_eq!(dec, parts.concat());
}

/// rust-cryptoki encrypt_decrypt_multipart_{not_initialized, already_initialized}.
#[test]
fn multi_part_cipher_calls_without_init_or_with_double_init_are_refused() {
    let t = shared().token("cipher multipart state");
    let s = t.login_user();
    let data = [0x55u8; 16];
    expect_rv(
        s.encrypt_update(&data),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_EncryptUpdate",
    );
    expect_rv(
        s.encrypt_final(),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_EncryptFinal",
    );
    expect_rv(
        s.decrypt_update(&data),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DecryptUpdate",
    );
    expect_rv(
        s.decrypt_final(),
        CKR_OPERATION_NOT_INITIALIZED,
        "C_DecryptFinal",
    );
    let key = keys::gen_aes(&s, 16, &[]);
    ok(s.encrypt_init(&Mechanism::AesEcb, key), "C_EncryptInit");
    expect_rv(
        s.encrypt_init(&Mechanism::AesEcb, key),
        CKR_OPERATION_ACTIVE,
        "C_EncryptInit twice",
    );
    // As rust-cryptoki does: end the encryption first (PKCS#11 lets a token refuse to run
    // two operations of different kinds in one session).
    let _ = s.encrypt_final();
    ok(s.decrypt_init(&Mechanism::AesEcb, key), "C_DecryptInit");
    expect_rv(
        s.decrypt_init(&Mechanism::AesEcb, key),
        CKR_OPERATION_ACTIVE,
        "C_DecryptInit twice",
    );
}

/// OpenSC p11test secret-key tests: a 42-byte message through CKM_AES_CBC_PAD, CKM_AES_CTR
/// with a 64-bit counter, and CKM_AES_GCM with a 16-byte IV whose CK_GCM_PARAMS.ulIvBits
/// says 64 (ulIvLen is what counts; PKCS#11 3.0 says not to use ulIvBits) and 8 bytes of
/// AAD — each matching OpenSSL.
#[test]
fn p11test_secret_key_parameter_shapes_match_openssl() {
    let t = shared().token("cipher p11test shapes");
    let s = t.login_user();
    let h = s.handle();
    let value = verify::random_bytes(16);
    let key = create(
        h,
        aes_key(&value, &[CKA_ENCRYPT, CKA_DECRYPT]),
        "AES-128 key",
    );
    let msg = &b"Simple message for signing & verifying. It needs"[..42];
    let mut iv: [u8; 16] = core::array::from_fn(|i| i as u8);
    let cbc = openssl::symm::encrypt(openssl::symm::Cipher::aes_128_cbc(), &value, Some(&iv), msg)
        .unwrap();
    let m = raw::mech_with_bytes(CKM_AES_CBC_PAD, &mut iv);
    assert_eq!(
        encrypt_raw(h, &m, key, msg),
        Ok(cbc.clone()),
        "CBC-PAD of 42 bytes"
    );
    assert_eq!(decrypt_raw(h, &m, key, &cbc), Ok(msg.to_vec()));

    let counter: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0];
    let ctr = openssl::symm::encrypt(
        openssl::symm::Cipher::aes_128_ctr(),
        &value,
        Some(&counter),
        msg,
    )
    .unwrap();
    let mut p = ctr_params(counter, 64);
    let m = raw::mech_with(CKM_AES_CTR, &mut p);
    assert_eq!(
        encrypt_raw(h, &m, key, msg),
        Ok(ctr.clone()),
        "CTR with a 64-bit counter"
    );
    assert_eq!(decrypt_raw(h, &m, key, &ctr), Ok(msg.to_vec()));

    let mut iv: [u8; 16] = core::array::from_fn(|i| i as u8);
    let mut aad = [0x00u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80];
    let mut tag = [0u8; 16];
    let mut sealed = openssl::symm::encrypt_aead(
        openssl::symm::Cipher::aes_128_gcm(),
        &value,
        Some(&iv),
        &aad,
        msg,
        &mut tag,
    )
    .unwrap();
    sealed.extend(tag);
    let mut gcm = CK_GCM_PARAMS {
        pIv: iv.as_mut_ptr(),
        ulIvLen: 16,
        ulIvBits: 64,
        pAAD: aad.as_mut_ptr(),
        ulAADLen: aad.len() as CK_ULONG,
        ulTagBits: 128,
    };
    let m = raw::mech_with(CKM_AES_GCM, &mut gcm);
    assert_eq!(
        encrypt_raw(h, &m, key, msg),
        Ok(sealed.clone()),
        "GCM with ulIvBits 64, ulIvLen 16"
    );
    assert_eq!(decrypt_raw(h, &m, key, &sealed), Ok(msg.to_vec()));
}
