use super::*;

#[test]
fn every_listed_mechanism_has_info_and_parses_back_to_its_type() {
    let list = mechanism_list();
    assert!(list.len() >= 40);
    for t in &list {
        let info = mechanism_info(*t).unwrap();
        assert_eq!(info.flags & CKF_HW, 0, "{t:#x}");
        assert_ne!(info.flags, 0, "{t:#x}");
        assert!(info.min_key <= info.max_key, "{t:#x}");
        match Mechanism::from_type(*t) {
            Ok(m) => assert_eq!(m.mech_type(), *t),
            Err(e) => assert_eq!(e.rv, CKR_MECHANISM_PARAM_INVALID, "{t:#x}"),
        }
    }
    let mut dedup = list.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), list.len());
    assert!(mechanism_info(CKM_MD5).is_none());
}

#[test]
fn mechanism_info_flags_and_sizes() {
    let ecdsa = mechanism_info(CKM_ECDSA).unwrap();
    assert_eq!(
        ecdsa.flags,
        CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS
    );
    assert_eq!((ecdsa.min_key, ecdsa.max_key), (256, 521));
    let gen = mechanism_info(CKM_EC_KEY_PAIR_GEN).unwrap();
    assert_ne!(gen.flags & CKF_GENERATE_KEY_PAIR, 0);
    let rsa = mechanism_info(CKM_RSA_PKCS).unwrap();
    for f in [
        CKF_SIGN,
        CKF_VERIFY,
        CKF_ENCRYPT,
        CKF_DECRYPT,
        CKF_WRAP,
        CKF_UNWRAP,
    ] {
        assert_ne!(rsa.flags & f, 0);
    }
    assert!(rsa.min_key <= 2048 && rsa.max_key >= 4096);
    let gcm = mechanism_info(CKM_AES_GCM).unwrap();
    assert_eq!(
        gcm.flags,
        CKF_ENCRYPT | CKF_DECRYPT | CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT | CKF_MULTI_MESSAGE
    );
    assert_eq!((gcm.min_key, gcm.max_key), (16, 32));
    assert_eq!(mechanism_info(CKM_SHA256).unwrap().flags, CKF_DIGEST);
    assert_eq!(mechanism_info(CKM_AES_KEY_GEN).unwrap().flags, CKF_GENERATE);
    assert_ne!(
        mechanism_info(CKM_ECDH1_DERIVE).unwrap().flags & CKF_DERIVE,
        0
    );
    assert_ne!(
        mechanism_info(CKM_AES_KEY_WRAP_KWP).unwrap().flags & CKF_WRAP,
        0
    );
}

#[test]
fn from_type_knows_parameterless_mechanisms_and_rejects_unknown_ones() {
    assert_eq!(rv(Mechanism::from_type(CKM_MD5)), CKR_MECHANISM_INVALID);
    assert_eq!(Mechanism::from_type(CKM_SHA256).unwrap(), Mechanism::Sha256);
}

#[test]
fn parameter_constructors_validate_and_keep_every_value() {
    assert_eq!(
        OaepParams::new(CKM_SHA384, CKG_MGF1_SHA1, b"lbl".to_vec()).unwrap(),
        OaepParams {
            hash: HashAlg::Sha384,
            mgf: HashAlg::Sha1,
            label: b"lbl".to_vec()
        }
    );
    let pss = CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA512,
        sLen: 17,
    };
    let m = Mechanism::Sha256RsaPkcsPss(PssParams::from_c(pss, Some(HashAlg::Sha256)).unwrap());
    assert_eq!(
        m.pss_params().unwrap(),
        &PssParams {
            hash: HashAlg::Sha256,
            mgf: HashAlg::Sha512,
            salt_len: 17
        }
    );
    assert_eq!(m.hash(), Some(HashAlg::Sha256));
    let peer = vec![4u8; 65];
    assert_eq!(
        mech::EcdhParams::new(CKD_NULL, vec![], peer.clone()).unwrap(),
        mech::EcdhParams {
            kdf: CKD_NULL,
            shared_data: vec![],
            public_data: peer.clone()
        }
    );
    assert_eq!(
        rv(mech::EcdhParams::new(CKD_NULL, vec![], vec![])),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(mech::EcdhParams::new(0x77, vec![], peer)),
        CKR_MECHANISM_PARAM_INVALID
    );
    let cb = [9u8; 16];
    assert_eq!(
        mech::CtrParams::new(32, cb).unwrap(),
        mech::CtrParams {
            counter_bits: 32,
            cb
        }
    );
    assert_eq!(
        mech::GcmParams::new(vec![1; 12], b"aad".to_vec(), 96).unwrap(),
        mech::GcmParams {
            iv: vec![1; 12],
            aad: b"aad".to_vec(),
            tag_len: 12
        }
    );
}

#[test]
fn keys_and_mechanisms_are_shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<KeyMaterial>();
    send_sync::<Mechanism>();
    // One parsed key, four threads signing at once, every signature valid.
    let k = ec(key::Curve::P256);
    let handles: Vec<_> = (0..4u8)
        .map(|i| {
            let key = k.private.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| {
                        sign_init(&mech(CKM_ECDSA), &key)
                            .unwrap()
                            .sign(&[i; 32])
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (i, hd) in handles.into_iter().enumerate() {
        for sig in hd.join().unwrap() {
            verify_init(&mech(CKM_ECDSA), &k.public)
                .unwrap()
                .verify(&[i as u8; 32], &sig)
                .unwrap();
        }
    }
}
