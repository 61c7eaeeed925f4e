//! Rough per-operation timings of the hot paths; run with
//! `cargo test --release -p hsmux-mech -- --ignored --nocapture per_op`.

use super::*;
use std::time::Instant;

fn time(name: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name}: {:.2} µs/op",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

#[test]
#[ignore]
fn per_op_timings() {
    let k = ec(key::Curve::P256);
    let dg = [7u8; 32];
    time("ECDSA P-256 sign (init+sign)", 20000, || {
        sign_init(&mech(CKM_ECDSA), &k.private)
            .unwrap()
            .sign(&dg)
            .unwrap();
    });
    let eck = openssl::ec::EcKey::private_key_from_der(
        &openssl::pkey::PKey::private_key_from_pkcs8(&k.private.to_pkcs8_der().unwrap())
            .unwrap()
            .ec_key()
            .unwrap()
            .private_key_to_der()
            .unwrap(),
    )
    .unwrap();
    time("ECDSA P-256 raw EcdsaSig::sign", 20000, || {
        openssl::ecdsa::EcdsaSig::sign(&dg, &eck).unwrap();
    });
    time("ECDSA_SHA256 P-256 sign 1 KiB", 20000, || {
        sign_init(&mech(CKM_ECDSA_SHA256), &k.private)
            .unwrap()
            .sign(&[0; 1024])
            .unwrap();
    });
    let aes = secret(CKK_AES, &[1; 32]);
    let iv = [2u8; 12];
    let gcm = || Mechanism::AesGcm(mech::GcmParams::new(iv.to_vec(), vec![], 128).unwrap());
    let data = vec![3u8; 1024];
    time(
        "AES-256-GCM 1 KiB encrypt (params+init+oneshot)",
        200000,
        || {
            let m = gcm();
            encrypt_init(&m, &aes).unwrap().oneshot(&data).unwrap();
        },
    );
    let m = gcm();
    let ct = encrypt_init(&m, &aes).unwrap().oneshot(&data).unwrap();
    time("AES-256-GCM 1 KiB decrypt (init+oneshot)", 200000, || {
        decrypt_init(&m, &aes).unwrap().oneshot(&ct).unwrap();
    });
    let r = rsa();
    time("RSA-2048 SHA256_RSA_PKCS sign", 500, || {
        sign_init(&mech(CKM_SHA256_RSA_PKCS), &r.private)
            .unwrap()
            .sign(b"x")
            .unwrap();
    });
    time("RSA-2048 PSS sign", 500, || {
        let p = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            sLen: 32,
        };
        let m = Mechanism::Sha256RsaPkcsPss(PssParams::from_c(p, Some(HashAlg::Sha256)).unwrap());
        sign_init(&m, &r.private).unwrap().sign(b"x").unwrap();
    });
    let hk = secret(CKK_GENERIC_SECRET, &[1; 32]);
    time("HMAC-SHA256 1 KiB", 100000, || {
        sign_init(&mech(CKM_SHA256_HMAC), &hk)
            .unwrap()
            .sign(&data)
            .unwrap();
    });
}
