//! What a token advertises is what it does: one module over a local token, a `pkcs11`
//! token over SoftHSMv2 and an `aws-kms` token over LocalStack, and for every slot and
//! every mechanism in its `C_GetMechanismList`, each operation its flags name is run for
//! real with matching keys and checked (signatures verified, ciphertexts decrypted,
//! wrapped keys unwrapped). A `C_*Init` that accepts a key must lead to a working
//! operation; a refusal must come at init, never at `C_Sign`.
//!
//! On a remote slot, signing with a private key (and RSA decryption) is what the service
//! does, so those flags must work with keys the service holds; the other flags describe
//! what hsmux does in software with session keys and public halves. Mechanisms a slot
//! leaves out, or lists without `CKF_SIGN`/`CKF_DECRYPT`, must be refused at init with
//! `CKR_MECHANISM_INVALID`.
//!
//! The whole module is one process-wide configuration, so this file holds one test.

use cryptoki_sys::*;
use hsmux_tests::conformance::{
    derive_key, generate_key, generate_key_pair, plain, unwrap_key, wrap, Template,
};
use hsmux_tests::raw::{self, Op, Out};
use hsmux_tests::rv_name;
use std::collections::BTreeMap;
use std::path::Path;
use std::ptr::null_mut;

const SO_PIN: &str = "honest-so-0000";
const PIN: &str = "honest-pin-1234";
const SOFTHSM_LIB: &str = "/usr/lib/softhsm/libsofthsm2.so";
const CKM_HSMUX_SERVICE_SYMMETRIC: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x4853_0001;
const CKK_HSMUX_SERVICE_SYMMETRIC: CK_KEY_TYPE = CKK_VENDOR_DEFINED | 0x4853_0001;

const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Mechanisms no slot has: each must be refused at `C_SignInit` and `C_EncryptInit`.
const ABSENT: [CK_MECHANISM_TYPE; 6] = [
    CKM_DSA,
    CKM_SHA3_256_RSA_PKCS,
    CKM_ECDSA_SHA3_256,
    CKM_AES_XTS,
    CKM_CHACHA20_POLY1305,
    CKM_MD5_RSA_PKCS,
];

/// One key the test made: its handle(s), type, size and where it lives.
#[derive(Clone, Debug)]
struct Key {
    /// Private or secret key.
    key: CK_OBJECT_HANDLE,
    /// Public half (asymmetric keys).
    public: Option<CK_OBJECT_HANDLE>,
    key_type: CK_KEY_TYPE,
    /// Bits for RSA/EC, bytes for secrets.
    size: usize,
    /// Held by the token's service (`CKA_TOKEN=true` on a remote slot).
    in_service: bool,
    what: String,
}

/// Counts for the closing note, per slot.
#[derive(Default, Debug)]
struct Tally {
    listed: usize,
    operations: usize,
    refused_at_init: usize,
    absent_refused: usize,
}

fn ok(rv: CK_RV, what: &str) {
    assert_eq!(rv, CKR_OK, "{what}: {}", rv_name(rv));
}

/// Refusals a `C_*Init` may give for a key it cannot use with a mechanism.
fn is_refusal(rv: CK_RV) -> bool {
    matches!(
        rv,
        CKR_MECHANISM_INVALID
            | CKR_MECHANISM_PARAM_INVALID
            | CKR_KEY_TYPE_INCONSISTENT
            | CKR_KEY_FUNCTION_NOT_PERMITTED
            | CKR_KEY_SIZE_RANGE
    )
}

fn softhsm(dir: &Path) -> bool {
    if !Path::new(SOFTHSM_LIB).exists() {
        return false;
    }
    hsmux_tests::setup_softhsm(dir);
    hsmux_tests::softhsm_token("honest-hsm", SO_PIN, PIN);
    true
}

fn config(dir: &Path) -> String {
    let mut text = format!(
        "[[token]]\nlabel = \"honest-local\"\nbackend = \"local\"\npath = \"{}\"\n\
         pin_kdf_iterations = 10\n\n",
        dir.join("local").display()
    );
    assert!(
        softhsm(dir),
        "SoftHSMv2 ({SOFTHSM_LIB}) is needed: apt-get install softhsm2"
    );
    text.push_str(&format!(
        "[[token]]\nlabel = \"honest-hsm\"\nbackend = \"pkcs11\"\nlibrary = \"{SOFTHSM_LIB}\"\n\
         token = \"honest-hsm\"\npin = \"{PIN}\"\n\n"
    ));
    let endpoint = std::env::var("HSMUX_TEST_KMS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "HSMUX_TEST_KMS_ENDPOINT is not set: this test needs LocalStack. Run\n    \
             eval \"$(scripts/localstack.sh start && scripts/localstack.sh env)\""
        )
    });
    let run = format!("{}-{}", std::process::id(), dir.display().to_string().len());
    text.push_str(&format!(
        "[[token]]\nlabel = \"honest-kms\"\nbackend = \"aws-kms\"\nregion = \"us-east-1\"\n\
         endpoint = \"{endpoint}\"\ntag = \"hsmux-honesty={run}\"\ntimeout_ms = 20000\n\
         pin = \"{PIN}\"\n"
    ));
    text
}

fn attr(s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    hsmux_tests::conformance::attr(s, o, t).unwrap_or_default()
}

fn ulong(v: &[u8]) -> CK_ULONG {
    CK_ULONG::from_ne_bytes(v.try_into().unwrap_or([0; 8]))
}

fn pair(
    s: CK_SESSION_HANDLE,
    token: bool,
    gen: CK_MECHANISM_TYPE,
    public: Template,
    label: &str,
) -> Option<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
    let common = |t: Template| {
        t.bool(CKA_TOKEN, token)
            .bytes(CKA_LABEL, label.as_bytes())
            .bytes(CKA_ID, label.as_bytes())
    };
    // A service key has one use (KMS: SIGN_VERIFY or ENCRYPT_DECRYPT): `label` says which.
    let decrypting = label.contains("decrypt");
    let mut public = common(public).bool(CKA_VERIFY, !decrypting);
    let mut private = common(Template::new().bool(CKA_PRIVATE, true)).bool(CKA_SIGN, !decrypting);
    if decrypting {
        public = public.bool(CKA_ENCRYPT, true).bool(CKA_WRAP, true);
        private = private.bool(CKA_DECRYPT, true).bool(CKA_UNWRAP, true);
    }
    if gen == CKM_EC_KEY_PAIR_GEN && !token {
        private = private.bool(CKA_DERIVE, true);
    }
    let (rv, hp, hk) = generate_key_pair(s, &plain(gen), &mut public, &mut private);
    (rv == CKR_OK).then_some((hp, hk))
}

fn secret(
    s: CK_SESSION_HANDLE,
    token: bool,
    gen: CK_MECHANISM_TYPE,
    len: Option<usize>,
    label: &str,
) -> Option<CK_OBJECT_HANDLE> {
    let mut t = Template::new()
        .bool(CKA_TOKEN, token)
        .bool(CKA_PRIVATE, true)
        .bytes(CKA_LABEL, label.as_bytes())
        .bool(CKA_SIGN, true)
        .bool(CKA_VERIFY, true)
        .bool(CKA_ENCRYPT, true)
        .bool(CKA_DECRYPT, true);
    if !token {
        t = t
            .bool(CKA_WRAP, true)
            .bool(CKA_UNWRAP, true)
            .bool(CKA_DERIVE, true)
            .bool(CKA_EXTRACTABLE, true)
            .bool(CKA_SENSITIVE, false);
    }
    if let Some(n) = len {
        t = t.ulong(CKA_VALUE_LEN, n as CK_ULONG);
    }
    let (rv, h) = generate_key(s, &plain(gen), &mut t);
    (rv == CKR_OK).then_some(h)
}

/// The keys of one slot: service keys where the service makes them, and session keys
/// of every type for what runs in software.
fn make_keys(s: CK_SESSION_HANDLE, remote: bool) -> Vec<Key> {
    let mut keys = Vec::new();
    // Service key names outlive the process (KMS aliases): each run uses its own.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000_000);
    for token in [true, false] {
        let in_service = token && remote;
        let tag = if token {
            format!("token-{run}")
        } else {
            "session".to_string()
        };
        for (params, bits) in [(P256, 256), (P384, 384), (P521, 521)] {
            let t = Template::new().bytes(CKA_EC_PARAMS, params);
            let label = format!("honest-ec{bits}-{tag}");
            if let Some((hp, hk)) = pair(s, token, CKM_EC_KEY_PAIR_GEN, t, &label) {
                keys.push(Key {
                    key: hk,
                    public: Some(hp),
                    key_type: CKK_EC,
                    size: bits,
                    in_service,
                    what: label,
                });
            }
        }
        for role in ["sign", "decrypt"] {
            let t = Template::new()
                .ulong(CKA_MODULUS_BITS, 2048)
                .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]);
            let label = format!("honest-rsa-{role}-{tag}");
            if let Some((hp, hk)) = pair(s, token, CKM_RSA_PKCS_KEY_PAIR_GEN, t, &label) {
                keys.push(Key {
                    key: hk,
                    public: Some(hp),
                    key_type: CKK_RSA,
                    size: 2048,
                    in_service,
                    what: label,
                });
            }
        }
        let t = Template::new().bytes(CKA_EC_PARAMS, ED25519);
        let label = format!("honest-ed25519-{tag}");
        if let Some((hp, hk)) = pair(s, token, CKM_EC_EDWARDS_KEY_PAIR_GEN, t, &label) {
            keys.push(Key {
                key: hk,
                public: Some(hp),
                key_type: CKK_EC_EDWARDS,
                size: 255,
                in_service,
                what: label,
            });
        }
        let secrets: &[(CK_MECHANISM_TYPE, Option<usize>, &str)] = &[
            (CKM_AES_KEY_GEN, Some(32), "aes256"),
            (CKM_AES_KEY_GEN, Some(16), "aes128"),
            (CKM_GENERIC_SECRET_KEY_GEN, Some(32), "generic"),
            (CKM_SHA256_KEY_GEN, Some(32), "hmac256"),
            (CKM_SHA384_KEY_GEN, Some(48), "hmac384"),
            (CKM_SHA512_KEY_GEN, Some(64), "hmac512"),
            (CKM_DES_KEY_GEN, None, "des"),
            (CKM_DES2_KEY_GEN, None, "des2"),
            (CKM_DES3_KEY_GEN, None, "des3"),
        ];
        for (gen, len, name) in secrets {
            let label = format!("honest-{name}-{tag}");
            if let Some(h) = secret(s, token, *gen, *len, &label) {
                let key_type = ulong(&attr(s, h, CKA_KEY_TYPE));
                keys.push(Key {
                    key: h,
                    public: None,
                    key_type,
                    size: len.unwrap_or(0),
                    in_service,
                    what: label,
                });
            }
        }
    }
    keys
}

/// Which key type a mechanism works with.
fn key_type_of(m: CK_MECHANISM_TYPE) -> Option<CK_KEY_TYPE> {
    Some(match m {
        CKM_ECDSA..=CKM_ECDSA_SHA512 | CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => CKK_EC,
        CKM_EDDSA => CKK_EC_EDWARDS,
        CKM_RSA_PKCS
        | CKM_RSA_X_509
        | CKM_RSA_PKCS_OAEP
        | CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS
        | CKM_SHA224_RSA_PKCS
        | CKM_SHA256_RSA_PKCS
        | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => CKK_RSA,
        CKM_SHA_1_HMAC | CKM_SHA224_HMAC | CKM_SHA256_HMAC | CKM_SHA384_HMAC | CKM_SHA512_HMAC => {
            CKK_GENERIC_SECRET
        }
        CKM_AES_ECB..=CKM_AES_CBC_PAD
        | CKM_AES_CTR
        | CKM_AES_GCM
        | CKM_AES_CMAC
        | CKM_AES_KEY_WRAP
        | CKM_AES_KEY_WRAP_KWP => CKK_AES,
        CKM_DES_ECB | CKM_DES_CBC | CKM_DES_CBC_PAD => CKK_DES,
        CKM_DES3_ECB | CKM_DES3_CBC | CKM_DES3_CBC_PAD => CKK_DES3,
        CKM_HSMUX_SERVICE_SYMMETRIC => CKK_HSMUX_SERVICE_SYMMETRIC,
        _ => return None,
    })
}

fn sha(m: CK_MECHANISM_TYPE) -> Option<openssl::hash::MessageDigest> {
    use openssl::hash::MessageDigest as D;
    Some(match m {
        CKM_SHA_1 => D::sha1(),
        CKM_SHA224 => D::sha224(),
        CKM_SHA256 => D::sha256(),
        CKM_SHA384 => D::sha384(),
        CKM_SHA512 => D::sha512(),
        _ => return None,
    })
}

/// The hash a hash-then-sign or MAC mechanism names.
fn hash_of(m: CK_MECHANISM_TYPE) -> Option<CK_MECHANISM_TYPE> {
    Some(match m {
        CKM_ECDSA_SHA1 | CKM_SHA1_RSA_PKCS | CKM_SHA1_RSA_PKCS_PSS | CKM_SHA_1_HMAC => CKM_SHA_1,
        CKM_ECDSA_SHA224 | CKM_SHA224_RSA_PKCS | CKM_SHA224_RSA_PKCS_PSS | CKM_SHA224_HMAC => {
            CKM_SHA224
        }
        CKM_ECDSA_SHA256 | CKM_SHA256_RSA_PKCS | CKM_SHA256_RSA_PKCS_PSS | CKM_SHA256_HMAC => {
            CKM_SHA256
        }
        CKM_ECDSA_SHA384 | CKM_SHA384_RSA_PKCS | CKM_SHA384_RSA_PKCS_PSS | CKM_SHA384_HMAC => {
            CKM_SHA384
        }
        CKM_ECDSA_SHA512 | CKM_SHA512_RSA_PKCS | CKM_SHA512_RSA_PKCS_PSS | CKM_SHA512_HMAC => {
            CKM_SHA512
        }
        _ => return None,
    })
}

fn mgf_of(h: CK_MECHANISM_TYPE) -> CK_RSA_PKCS_MGF_TYPE {
    match h {
        CKM_SHA_1 => CKG_MGF1_SHA1,
        CKM_SHA224 => CKG_MGF1_SHA224,
        CKM_SHA384 => CKG_MGF1_SHA384,
        CKM_SHA512 => CKG_MGF1_SHA512,
        _ => CKG_MGF1_SHA256,
    }
}

/// A mechanism with the parameters a correct application passes, kept alive with it.
struct Mech {
    m: CK_MECHANISM,
    _params: Box<dyn std::any::Any>,
}

const IV16: [u8; 16] = *b"0123456789abcdef";

fn mech(m: CK_MECHANISM_TYPE) -> Mech {
    fn with<T: 'static>(m: CK_MECHANISM_TYPE, p: T) -> Mech {
        let mut b = Box::new(p);
        let ptr: *mut T = &mut *b;
        Mech {
            m: CK_MECHANISM {
                mechanism: m,
                pParameter: ptr as *mut _,
                ulParameterLen: std::mem::size_of::<T>() as CK_ULONG,
            },
            _params: b,
        }
    }
    fn bytes(m: CK_MECHANISM_TYPE, v: Vec<u8>) -> Mech {
        let mut b = Box::new(v);
        Mech {
            m: CK_MECHANISM {
                mechanism: m,
                pParameter: b.as_mut_ptr() as *mut _,
                ulParameterLen: b.len() as CK_ULONG,
            },
            _params: b,
        }
    }
    match m {
        CKM_RSA_PKCS_PSS => with(m, raw::pss_params(CKM_SHA256, CKG_MGF1_SHA256, 32)),
        CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            let h = hash_of(m).unwrap();
            let len = sha(h).unwrap().size() as CK_ULONG;
            with(m, raw::pss_params(h, mgf_of(h), len))
        }
        CKM_RSA_PKCS_OAEP => with(
            m,
            CK_RSA_PKCS_OAEP_PARAMS {
                hashAlg: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                source: CKZ_DATA_SPECIFIED,
                pSourceData: null_mut(),
                ulSourceDataLen: 0,
            },
        ),
        CKM_AES_CBC | CKM_AES_CBC_PAD => bytes(m, IV16.to_vec()),
        CKM_DES_CBC | CKM_DES_CBC_PAD | CKM_DES3_CBC | CKM_DES3_CBC_PAD => {
            bytes(m, IV16[..8].to_vec())
        }
        CKM_AES_CTR => with(
            m,
            CK_AES_CTR_PARAMS {
                ulCounterBits: 128,
                cb: IV16,
            },
        ),
        CKM_AES_GCM => {
            // The IV and AAD live in statics: the parameter struct points at them.
            static GCM_IV: [u8; 12] = *b"honest-iv-12";
            static GCM_AAD: [u8; 3] = *b"aad";
            with(
                m,
                CK_GCM_PARAMS {
                    pIv: GCM_IV.as_ptr() as *mut u8,
                    ulIvLen: 12,
                    ulIvBits: 96,
                    pAAD: GCM_AAD.as_ptr() as *mut u8,
                    ulAADLen: 3,
                    ulTagBits: 128,
                },
            )
        }
        CKM_HSMUX_SERVICE_SYMMETRIC => bytes(m, b"context".to_vec()),
        _ => Mech {
            m: plain(m),
            _params: Box::new(()),
        },
    }
}

/// The input a correct application signs with `m` and a key of `bits`.
fn sign_input(m: CK_MECHANISM_TYPE, bits: usize) -> Vec<u8> {
    let msg = b"what a token advertises is what it does".to_vec();
    match m {
        // A digest as long as the curve's own hash.
        CKM_ECDSA => {
            let d = match bits {
                256 => openssl::hash::MessageDigest::sha256(),
                384 => openssl::hash::MessageDigest::sha384(),
                _ => openssl::hash::MessageDigest::sha512(),
            };
            openssl::hash::hash(d, &msg).unwrap().to_vec()
        }
        CKM_RSA_PKCS => {
            let mut di = vec![
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ];
            di.extend(openssl::sha::sha256(&msg));
            di
        }
        CKM_RSA_PKCS_PSS => openssl::sha::sha256(&msg).to_vec(),
        CKM_RSA_X_509 => {
            let mut v = vec![0u8; 256];
            v[255] = 7;
            v
        }
        _ => msg,
    }
}

/// Runs one signature with `key` and verifies it with `verifier`; `Err(rv)` when init
/// refused, panics when an accepted operation then fails.
fn sign_and_verify(
    s: CK_SESSION_HANDLE,
    m: CK_MECHANISM_TYPE,
    key: &Key,
    verifier: CK_OBJECT_HANDLE,
    slot: &str,
) -> Result<(), CK_RV> {
    let mech = mech(m);
    let input = sign_input(m, key.size);
    let rv = raw::init(Op::Sign, s, &mech.m, key.key);
    if rv != CKR_OK {
        return Err(rv);
    }
    let q = raw::sign(s, &input, Out::Null);
    assert_eq!(
        q.rv,
        CKR_OK,
        "{slot}: C_Sign length query {m:#x} {}: {}",
        key.what,
        rv_name(q.rv)
    );
    let sig = raw::sign(s, &input, Out::Buf(q.len));
    assert_eq!(
        sig.rv,
        CKR_OK,
        "{slot}: C_SignInit accepted {m:#x} with {} but C_Sign failed: {}",
        key.what,
        rv_name(sig.rv)
    );
    ok(
        raw::init(Op::Verify, s, &mech.m, verifier),
        &format!("{slot}: C_VerifyInit {m:#x}"),
    );
    ok(
        raw::verify(s, &input, &sig.data),
        &format!("{slot}: {m:#x} signature by {} verifies", key.what),
    );
    Ok(())
}

fn cipher_input(m: CK_MECHANISM_TYPE) -> Vec<u8> {
    match m {
        CKM_RSA_X_509 => sign_input(m, 2048),
        CKM_AES_ECB | CKM_AES_CBC | CKM_AES_KEY_WRAP | CKM_DES_ECB | CKM_DES_CBC | CKM_DES3_ECB
        | CKM_DES3_CBC => b"exactly thirty-two bytes of text".to_vec(),
        _ => b"an odd-length plaintext, 37 bytes..".to_vec(),
    }
}

fn encrypt_and_decrypt(
    s: CK_SESSION_HANDLE,
    m: CK_MECHANISM_TYPE,
    encryptor: CK_OBJECT_HANDLE,
    key: &Key,
    slot: &str,
) -> Result<(), CK_RV> {
    let mech = mech(m);
    let plain = cipher_input(m);
    let rv = raw::init(Op::Encrypt, s, &mech.m, encryptor);
    if rv != CKR_OK {
        return Err(rv);
    }
    let q = raw::encrypt(s, &plain, Out::Null);
    let ct = raw::encrypt(s, &plain, Out::Buf(q.len.max(1)));
    assert_eq!(
        ct.rv,
        CKR_OK,
        "{slot}: C_Encrypt {m:#x} with {}: {}",
        key.what,
        rv_name(ct.rv)
    );
    let rv = raw::init(Op::Decrypt, s, &mech.m, key.key);
    if rv != CKR_OK {
        return Err(rv);
    }
    let q = raw::decrypt(s, &ct.data, Out::Null);
    assert_eq!(
        q.rv,
        CKR_OK,
        "{slot}: C_Decrypt length {m:#x}: {}",
        rv_name(q.rv)
    );
    let pt = raw::decrypt(s, &ct.data, Out::Buf(q.len.max(1)));
    assert_eq!(
        pt.rv,
        CKR_OK,
        "{slot}: C_DecryptInit accepted {m:#x} with {} but C_Decrypt failed: {}",
        key.what,
        rv_name(pt.rv)
    );
    assert_eq!(
        pt.data, plain,
        "{slot}: {m:#x} round trip with {}",
        key.what
    );
    Ok(())
}

/// Needs LocalStack (its aws-kms slot): `scripts/test.sh` skips `localstack::` tests when
/// LocalStack cannot start outside CI.
mod localstack {
    use super::*;

    #[test]
    fn every_advertised_mechanism_works_and_the_rest_is_refused_at_init() {
        let dir = tempfile::Builder::new()
            .prefix("hsmux-honesty-")
            .tempdir()
            .unwrap();
        let cfg = dir.path().join("hsmux.toml");
        std::fs::write(&cfg, config(dir.path())).unwrap();
        std::env::set_var("HSMUX_CONFIG", &cfg);
        let mut args = raw::init_args(CKF_OS_LOCKING_OK);
        ok(raw::initialize(Some(&mut args)), "C_Initialize");

        let mut tallies = BTreeMap::new();
        for (slot, label, remote) in [
            (0, "honest-local", false),
            (1, "honest-hsm", true),
            (2, "honest-kms", true),
        ] {
            if !remote {
                ok(raw::init_token(slot, SO_PIN, label), "C_InitToken (local)");
                let (rv, s) = raw::open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION);
                ok(rv, "C_OpenSession");
                ok(raw::login(s, CKU_SO, SO_PIN.as_bytes()), "C_Login(SO)");
                ok(
                    hsmux_tests::conformance::init_pin(s, PIN.as_bytes()),
                    "C_InitPIN",
                );
                ok(raw::close_session(s), "C_CloseSession");
            }
            let (rv, s) = raw::open_session(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION);
            ok(rv, "C_OpenSession");
            ok(
                raw::login(s, CKU_USER, PIN.as_bytes()),
                &format!("{label}: C_Login"),
            );
            let tally = check_slot(s, slot, label, remote);
            println!("{label}: {tally:?}");
            tallies.insert(label, tally);
            ok(raw::close_session(s), "C_CloseSession");
        }
        ok(raw::finalize(), "C_Finalize");
        for (label, t) in &tallies {
            assert!(
                t.listed > 30 && t.operations > t.listed / 2,
                "{label}: {t:?}"
            );
        }
    }

    fn check_slot(s: CK_SESSION_HANDLE, slot: CK_SLOT_ID, label: &str, remote: bool) -> Tally {
        let (rv, list) = raw::mechanism_list(slot);
        ok(rv, "C_GetMechanismList");
        let keys = make_keys(s, remote);
        let service_keys: Vec<&Key> = keys.iter().filter(|k| k.in_service).collect();
        if remote {
            assert!(
                service_keys.iter().any(|k| k.key_type == CKK_EC)
                    && service_keys.iter().any(|k| k.key_type == CKK_RSA),
                "{label}: the service made no EC or RSA key: {keys:?}"
            );
        }
        let mut t = Tally {
            listed: list.len(),
            ..Tally::default()
        };
        for &m in &list {
            let (rv, info) = raw::mechanism_info(slot, m);
            ok(rv, &format!("{label}: C_GetMechanismInfo {m:#x}"));
            let flags = info.flags;
            let what = format!("{label}: mechanism {m:#x}");
            if flags & CKF_DIGEST != 0 {
                ok(
                    raw::init(Op::Digest, s, &plain(m), 0),
                    &format!("{what}: C_DigestInit"),
                );
                let out = raw::digest(s, b"abc", Out::Buf(64));
                ok(out.rv, &format!("{what}: C_Digest"));
                assert_eq!(
                    out.data,
                    openssl::hash::hash(sha(m).unwrap(), b"abc")
                        .unwrap()
                        .to_vec()
                );
                t.operations += 1;
            }
            let kt = key_type_of(m);
            let candidates: Vec<&Key> = keys
                .iter()
                .filter(|k| {
                    Some(k.key_type) == kt
                        || (kt == Some(CKK_GENERIC_SECRET)
                            && matches!(
                                k.key_type,
                                CKK_SHA256_HMAC | CKK_SHA384_HMAC | CKK_SHA512_HMAC
                            ))
                })
                .collect();
            // On a remote slot, private-key signatures and RSA decryption are the service's.
            let service_op =
                remote && kt.is_some_and(|k| matches!(k, CKK_EC | CKK_RSA | CKK_EC_EDWARDS));
            // Signatures (and MACs): with a service key on a remote slot when the service
            // signs; a mechanism listed without CKF_SIGN must refuse every such key at init.
            if flags & CKF_SIGN != 0 || service_op {
                let mut worked = 0;
                for k in candidates.iter().filter(|k| !service_op || k.in_service) {
                    match sign_and_verify(s, m, k, k.public.unwrap_or(k.key), label) {
                        Ok(()) => worked += 1,
                        Err(rv) => {
                            assert!(
                                is_refusal(rv),
                                "{what} sign with {}: init gave {}",
                                k.what,
                                rv_name(rv)
                            );
                            t.refused_at_init += 1;
                        }
                    }
                }
                if flags & CKF_SIGN != 0 {
                    assert!(
                        worked > 0,
                        "{what} advertises CKF_SIGN but no matching key signs: {candidates:?}"
                    );
                } else {
                    assert_eq!(
                        worked, 0,
                        "{what} signs with a service key but does not advertise CKF_SIGN"
                    );
                }
                t.operations += worked;
            }
            // Decryption the same way; encryption alone (public keys) runs in software.
            let decrypts = flags & CKF_DECRYPT != 0;
            if decrypts || (service_op && kt == Some(CKK_RSA)) {
                let mut worked = 0;
                for k in candidates.iter().filter(|k| !service_op || k.in_service) {
                    match encrypt_and_decrypt(s, m, k.public.unwrap_or(k.key), k, label) {
                        Ok(()) => worked += 1,
                        Err(rv) => {
                            assert!(
                                is_refusal(rv),
                                "{what} decrypt with {}: init gave {}",
                                k.what,
                                rv_name(rv)
                            );
                            t.refused_at_init += 1;
                        }
                    }
                }
                if decrypts {
                    assert!(
                    worked > 0,
                    "{what} advertises CKF_DECRYPT but no matching key decrypts: {candidates:?}"
                );
                } else {
                    assert_eq!(
                        worked, 0,
                        "{what} decrypts with a service key but does not advertise CKF_DECRYPT"
                    );
                }
                t.operations += worked;
            }
            if flags & CKF_ENCRYPT != 0 && !decrypts {
                let worked = candidates
                    .iter()
                    .filter(|k| {
                        let mech = mech(m);
                        let input = cipher_input(m);
                        raw::init(Op::Encrypt, s, &mech.m, k.public.unwrap_or(k.key)) == CKR_OK && {
                            let out = raw::encrypt(s, &input, Out::Buf(4096));
                            assert_eq!(
                                out.rv,
                                CKR_OK,
                                "{what}: C_EncryptInit accepted {} but C_Encrypt failed: {}",
                                k.what,
                                rv_name(out.rv)
                            );
                            !out.data.is_empty()
                        }
                    })
                    .count();
                assert!(
                    worked > 0,
                    "{what} advertises CKF_ENCRYPT but no matching key encrypts"
                );
                t.operations += worked;
            }
            if flags & CKF_WRAP != 0 || flags & CKF_UNWRAP != 0 {
                let target = keys
                    .iter()
                    .find(|k| !k.in_service && k.what.starts_with("honest-aes256-session"))
                    .expect("a session AES key to wrap");
                let mut worked = 0;
                for k in &candidates {
                    if k.in_service && k.key_type != CKK_RSA {
                        continue;
                    }
                    let mech = mech(m);
                    let wrapping = k.public.unwrap_or(k.key);
                    let Ok(blob) = wrap(s, &mech.m, wrapping, target.key) else {
                        continue;
                    };
                    let mut tmpl = Template::new()
                        .ulong(CKA_CLASS, CKO_SECRET_KEY)
                        .ulong(CKA_KEY_TYPE, CKK_AES)
                        .bool(CKA_TOKEN, false)
                        .bool(CKA_EXTRACTABLE, true)
                        .bool(CKA_SENSITIVE, false);
                    if matches!(
                        m,
                        CKM_RSA_X_509
                            | CKM_AES_ECB
                            | CKM_AES_CBC
                            | CKM_DES_ECB
                            | CKM_DES_CBC
                            | CKM_DES3_ECB
                            | CKM_DES3_CBC
                    ) {
                        tmpl = tmpl.ulong(CKA_VALUE_LEN, 32);
                    }
                    let (rv, h) = unwrap_key(s, &mech.m, k.key, &blob, &mut tmpl);
                    if k.in_service && flags & CKF_UNWRAP == 0 {
                        // Not claimed for keys the service holds: refused, never half done.
                        assert_ne!(rv, CKR_OK, "{what}: unwraps with {} unadvertised", k.what);
                        t.refused_at_init += 1;
                        continue;
                    }
                    assert_eq!(
                        rv,
                        CKR_OK,
                        "{what}: wrapped with {} but C_UnwrapKey failed: {}",
                        k.what,
                        rv_name(rv)
                    );
                    assert_eq!(
                        attr(s, h, CKA_VALUE),
                        attr(s, target.key, CKA_VALUE),
                        "{what}: unwrapped key"
                    );
                    worked += 1;
                }
                assert!(worked > 0, "{what} advertises wrap/unwrap but no key could");
                t.operations += worked;
            }
            if flags & CKF_DERIVE != 0 {
                let ours = candidates
                    .iter()
                    .find(|k| !k.in_service && k.size == 256)
                    .expect("a session P-256 key");
                let theirs = candidates
                    .iter()
                    .rfind(|k| !k.in_service && k.size == 256)
                    .unwrap();
                let point = attr(s, theirs.public.unwrap(), CKA_EC_POINT);
                let mut point = point.clone();
                let mut params = CK_ECDH1_DERIVE_PARAMS {
                    kdf: CKD_NULL,
                    ulSharedDataLen: 0,
                    pSharedData: null_mut(),
                    ulPublicDataLen: point.len() as CK_ULONG,
                    pPublicData: point.as_mut_ptr(),
                };
                let mech = raw::mech_with(m, &mut params);
                let mut tmpl = Template::new()
                    .ulong(CKA_CLASS, CKO_SECRET_KEY)
                    .ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
                    .ulong(CKA_VALUE_LEN, 32)
                    .bool(CKA_TOKEN, false)
                    .bool(CKA_SENSITIVE, false)
                    .bool(CKA_EXTRACTABLE, true);
                let (rv, h) = derive_key(s, &mech, ours.key, &mut tmpl);
                ok(rv, &format!("{what}: C_DeriveKey"));
                assert_eq!(attr(s, h, CKA_VALUE).len(), 32, "{what}: derived secret");
                t.operations += 1;
            }
            if flags & CKF_GENERATE != 0 {
                let len = match m {
                    CKM_AES_KEY_GEN => Some(16),
                    CKM_GENERIC_SECRET_KEY_GEN | CKM_SHA_1_KEY_GEN..=CKM_SHA512_KEY_GEN => Some(32),
                    _ => None,
                };
                assert!(
                    secret(s, false, m, len, "honest-gen").is_some(),
                    "{what}: C_GenerateKey (session)"
                );
                t.operations += 1;
            }
            if flags & CKF_GENERATE_KEY_PAIR != 0 {
                let public = match m {
                    CKM_EC_KEY_PAIR_GEN => Template::new().bytes(CKA_EC_PARAMS, P256),
                    CKM_EC_EDWARDS_KEY_PAIR_GEN => Template::new().bytes(CKA_EC_PARAMS, ED25519),
                    _ => Template::new()
                        .ulong(CKA_MODULUS_BITS, 2048)
                        .bytes(CKA_PUBLIC_EXPONENT, &[1, 0, 1]),
                };
                assert!(
                    pair(s, false, m, public, "honest-genpair").is_some(),
                    "{what}: C_GenerateKeyPair (session)"
                );
                t.operations += 1;
            }
        }
        for m in ABSENT {
            assert!(!list.contains(&m));
            for k in keys.iter().take(4) {
                for op in [Op::Sign, Op::Encrypt] {
                    let mech = plain(m);
                    let target = if matches!(op, Op::Encrypt) {
                        k.public.unwrap_or(k.key)
                    } else {
                        k.key
                    };
                    let rv = raw::init(op, s, &mech, target);
                    assert_eq!(
                        rv,
                        CKR_MECHANISM_INVALID,
                        "{label}: absent {m:#x}: {}",
                        rv_name(rv)
                    );
                    t.absent_refused += 1;
                }
            }
        }
        t
    }
}
