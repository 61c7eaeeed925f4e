//! A caller's `CK_MECHANISM` read out of C memory into a [`Mechanism`].
//!
//! This file only reads the parameter structs and copies the buffers they point to; the
//! constructors of hsmux-mech (`PssParams::from_c`, `GcmParams::new`, ...) decide which
//! values are valid.

use crate::{bail, Error, Result};
use cryptoki_sys::*;
use hsmux_mech::mech::{
    CtrParams, EcdhParams, GcmParams, HashAlg, Mechanism, OaepParams, PssParams,
    CKM_HSMUX_SERVICE_SYMMETRIC,
};
use std::mem::size_of;

/// Reads a parameter struct of exactly `size_of::<T>()` bytes.
///
/// # Safety
/// `m.pParameter`, when not null, must point to `m.ulParameterLen` readable bytes.
unsafe fn param_struct<T: Copy>(m: &CK_MECHANISM) -> Result<T> {
    if m.pParameter.is_null() || m.ulParameterLen as usize != size_of::<T>() {
        bail!(
            CKR_MECHANISM_PARAM_INVALID,
            "mechanism {:#x} needs a {}-byte parameter, got {} bytes{}",
            m.mechanism,
            size_of::<T>(),
            m.ulParameterLen,
            if m.pParameter.is_null() {
                " (null)"
            } else {
                ""
            }
        );
    }
    // SAFETY: non-null and the caller vouches for ulParameterLen == size_of::<T>() readable
    // bytes; read_unaligned because C callers need not align the struct for us.
    Ok(unsafe { std::ptr::read_unaligned(m.pParameter as *const T) })
}

/// Copies a (pointer, length) buffer out of a parameter struct.
///
/// # Safety
/// `ptr`, when not null, must point to `len` readable bytes.
unsafe fn param_bytes(ptr: *const u8, len: CK_ULONG, what: &str) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() || len > isize::MAX as CK_ULONG {
        bail!(
            CKR_MECHANISM_PARAM_INVALID,
            "{what}: null pointer or absurd length {len}"
        );
    }
    // SAFETY: non-null, length in range, and the caller vouches for `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len as usize) }.to_vec())
}

/// Reads a fixed-size byte parameter (an IV), which may be optional.
///
/// # Safety
/// `m.pParameter`, when not null, must point to `m.ulParameterLen` readable bytes.
unsafe fn param_array<const N: usize>(m: &CK_MECHANISM, optional: bool) -> Result<Option<[u8; N]>> {
    if optional && (m.pParameter.is_null() || m.ulParameterLen == 0) {
        return Ok(None);
    }
    if m.pParameter.is_null() || m.ulParameterLen as usize != N {
        bail!(
            CKR_MECHANISM_PARAM_INVALID,
            "mechanism {:#x} needs a {N}-byte parameter, got {}",
            m.mechanism,
            m.ulParameterLen
        );
    }
    // SAFETY: non-null with exactly N readable bytes, as the caller vouches.
    Ok(Some(unsafe {
        std::ptr::read_unaligned(m.pParameter as *const [u8; N])
    }))
}

/// The PKCS#11 v2.30 layout of `CK_GCM_PARAMS` (no `ulIvBits`), still sent by old clients.
#[repr(C)]
#[derive(Clone, Copy)]
struct GcmParamsV230 {
    p_iv: *mut CK_BYTE,
    ul_iv_len: CK_ULONG,
    p_aad: *mut CK_BYTE,
    ul_aad_len: CK_ULONG,
    ul_tag_bits: CK_ULONG,
}

/// Parses a caller's `CK_MECHANISM`.
///
/// # Safety
/// `m`, when not null, must point to a valid `CK_MECHANISM` whose `pParameter` (when not
/// null) points to `ulParameterLen` readable bytes, and any pointers inside the parameter
/// struct point to as many readable bytes as their length fields say.
pub(crate) unsafe fn mechanism(m: *const CK_MECHANISM) -> Result<Mechanism> {
    if m.is_null() {
        bail!(CKR_ARGUMENTS_BAD, "mechanism pointer is null");
    }
    // SAFETY: non-null, and the caller vouches that it points to a CK_MECHANISM.
    let m = unsafe { std::ptr::read_unaligned(m) };
    let t = m.mechanism;
    let hashed_pss = |h: HashAlg| -> Result<PssParams> {
        // SAFETY: forwarded caller guarantee on m.pParameter.
        PssParams::from_c(unsafe { param_struct(&m) }?, Some(h))
    };
    Ok(match t {
        CKM_RSA_PKCS_PSS => {
            // SAFETY: forwarded caller guarantee on m.pParameter.
            Mechanism::RsaPkcsPss(PssParams::from_c(unsafe { param_struct(&m) }?, None)?)
        }
        CKM_SHA1_RSA_PKCS_PSS => Mechanism::Sha1RsaPkcsPss(hashed_pss(HashAlg::Sha1)?),
        CKM_SHA224_RSA_PKCS_PSS => Mechanism::Sha224RsaPkcsPss(hashed_pss(HashAlg::Sha224)?),
        CKM_SHA256_RSA_PKCS_PSS => Mechanism::Sha256RsaPkcsPss(hashed_pss(HashAlg::Sha256)?),
        CKM_SHA384_RSA_PKCS_PSS => Mechanism::Sha384RsaPkcsPss(hashed_pss(HashAlg::Sha384)?),
        CKM_SHA512_RSA_PKCS_PSS => Mechanism::Sha512RsaPkcsPss(hashed_pss(HashAlg::Sha512)?),
        CKM_HSMUX_SERVICE_SYMMETRIC => {
            // SAFETY: the caller vouches for ulParameterLen bytes at pParameter.
            Mechanism::ServiceSymmetric(unsafe {
                param_bytes(
                    m.pParameter as *const u8,
                    m.ulParameterLen,
                    "additional data",
                )
            }?)
        }
        CKM_RSA_PKCS_OAEP => {
            // SAFETY: forwarded caller guarantee on m.pParameter.
            let p: CK_RSA_PKCS_OAEP_PARAMS = unsafe { param_struct(&m) }?;
            // Some clients send source 0 when there is no label; accept that too.
            let label = match p.source {
                CKZ_DATA_SPECIFIED => {
                    // SAFETY: the caller vouches for ulSourceDataLen bytes at pSourceData.
                    unsafe {
                        param_bytes(
                            p.pSourceData as *const u8,
                            p.ulSourceDataLen,
                            "OAEP source data",
                        )
                    }?
                }
                0 if p.ulSourceDataLen == 0 => Vec::new(),
                s => bail!(
                    CKR_MECHANISM_PARAM_INVALID,
                    "OAEP source {s:#x} unsupported"
                ),
            };
            Mechanism::RsaPkcsOaep(OaepParams::new(p.hashAlg, p.mgf, label)?)
        }
        CKM_AES_GCM => {
            let (iv_ptr, iv_len, aad_ptr, aad_len, tag_bits) =
                if m.ulParameterLen as usize == size_of::<GcmParamsV230>() {
                    // SAFETY: forwarded caller guarantee on m.pParameter.
                    let p: GcmParamsV230 = unsafe { param_struct(&m) }?;
                    (p.p_iv, p.ul_iv_len, p.p_aad, p.ul_aad_len, p.ul_tag_bits)
                } else {
                    // SAFETY: forwarded caller guarantee on m.pParameter.
                    let p: CK_GCM_PARAMS = unsafe { param_struct(&m) }?;
                    (p.pIv, p.ulIvLen, p.pAAD, p.ulAADLen, p.ulTagBits)
                };
            // An absurd IV length is refused before any copy of that size.
            if iv_len as usize > GcmParams::MAX_IV_LEN {
                bail!(CKR_MECHANISM_PARAM_INVALID, "GCM IV length {iv_len}");
            }
            // SAFETY: the caller vouches for the lengths of pIv and pAAD.
            let iv = unsafe { param_bytes(iv_ptr, iv_len, "GCM IV") }?;
            // SAFETY: as above.
            let aad = unsafe { param_bytes(aad_ptr, aad_len, "GCM AAD") }?;
            Mechanism::AesGcm(GcmParams::new(iv, aad, tag_bits)?)
        }
        CKM_AES_CBC_PAD | CKM_AES_CBC => {
            // SAFETY: forwarded caller guarantee on m.pParameter.
            let iv = unsafe { param_array::<16>(&m, false) }?
                .ok_or_else(|| Error::rv(CKR_MECHANISM_PARAM_INVALID))?;
            if t == CKM_AES_CBC {
                Mechanism::AesCbc(iv)
            } else {
                Mechanism::AesCbcPad(iv)
            }
        }
        CKM_DES_CBC | CKM_DES_CBC_PAD | CKM_DES3_CBC | CKM_DES3_CBC_PAD => {
            // SAFETY: forwarded caller guarantee on m.pParameter.
            let iv = unsafe { param_array::<8>(&m, false) }?
                .ok_or_else(|| Error::rv(CKR_MECHANISM_PARAM_INVALID))?;
            match t {
                CKM_DES_CBC => Mechanism::DesCbc(iv),
                CKM_DES_CBC_PAD => Mechanism::DesCbcPad(iv),
                CKM_DES3_CBC => Mechanism::Des3Cbc(iv),
                _ => Mechanism::Des3CbcPad(iv),
            }
        }
        CKM_AES_CTR => {
            // SAFETY: forwarded caller guarantee on m.pParameter.
            let p: CK_AES_CTR_PARAMS = unsafe { param_struct(&m) }?;
            Mechanism::AesCtr(CtrParams::new(p.ulCounterBits, p.cb)?)
        }
        CKM_AES_KEY_WRAP => {
            // SAFETY: forwarded caller guarantee on m.pParameter.
            Mechanism::AesKeyWrap(unsafe { param_array::<8>(&m, true) }?)
        }
        CKM_AES_KEY_WRAP_KWP => {
            // SAFETY: forwarded caller guarantee on m.pParameter.
            Mechanism::AesKeyWrapKwp(unsafe { param_array::<4>(&m, true) }?)
        }
        CKM_EDDSA => {
            if !m.pParameter.is_null() && m.ulParameterLen != 0 {
                // SAFETY: forwarded caller guarantee on m.pParameter.
                let p: CK_EDDSA_PARAMS = unsafe { param_struct(&m) }?;
                Mechanism::eddsa(p.phFlag, p.ulContextDataLen)?
            } else {
                Mechanism::EdDsa
            }
        }
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => {
            // SAFETY: forwarded caller guarantee on m.pParameter.
            let p: CK_ECDH1_DERIVE_PARAMS = unsafe { param_struct(&m) }?;
            // SAFETY: the caller vouches for the lengths of the two buffers.
            let shared_data =
                unsafe { param_bytes(p.pSharedData, p.ulSharedDataLen, "ECDH shared data") }?;
            // SAFETY: as above.
            let public_data =
                unsafe { param_bytes(p.pPublicData, p.ulPublicDataLen, "ECDH public data") }?;
            let p = EcdhParams::new(p.kdf, shared_data, public_data)?;
            if t == CKM_ECDH1_DERIVE {
                Mechanism::Ecdh1Derive(p)
            } else {
                Mechanism::Ecdh1CofactorDerive(p)
            }
        }
        // Parameterless mechanisms ignore whatever parameter a client sends, as other
        // modules do: there is nothing in it we could misread.
        other => Mechanism::from_type(other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `t` with `p` as its parameter, as a C caller passes it.
    fn mech_with<T>(t: CK_MECHANISM_TYPE, p: &T) -> Result<Mechanism> {
        let m = CK_MECHANISM {
            mechanism: t,
            pParameter: p as *const T as *mut _,
            ulParameterLen: size_of::<T>() as CK_ULONG,
        };
        // SAFETY: the parameter points to a live T of the stated size.
        unsafe { mechanism(&m) }
    }

    fn rv<T>(r: Result<T>) -> CK_RV {
        r.err().map_or(CKR_OK, |e| e.rv)
    }

    fn gcm_params(iv: &[u8], aad: &[u8], tag_bits: CK_ULONG) -> CK_GCM_PARAMS {
        CK_GCM_PARAMS {
            pIv: iv.as_ptr() as *mut _,
            ulIvLen: iv.len() as CK_ULONG,
            ulIvBits: (iv.len() * 8) as CK_ULONG,
            pAAD: aad.as_ptr() as *mut _,
            ulAADLen: aad.len() as CK_ULONG,
            ulTagBits: tag_bits,
        }
    }

    #[test]
    fn rejects_null_and_unknown_mechanisms() {
        // SAFETY: null is the case under test.
        let r = unsafe { mechanism(std::ptr::null()) };
        assert_eq!(rv(r), CKR_ARGUMENTS_BAD);
        let m = CK_MECHANISM {
            mechanism: CKM_MD5,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        // SAFETY: a valid struct without parameter.
        assert_eq!(rv(unsafe { mechanism(&m) }), CKR_MECHANISM_INVALID);
        let m = CK_MECHANISM {
            mechanism: CKM_SHA256,
            ..m
        };
        // SAFETY: as above.
        assert_eq!(unsafe { mechanism(&m) }.unwrap(), Mechanism::Sha256);
        // A parameterless mechanism ignores a parameter; the others need theirs.
        assert_eq!(mech_with(CKM_SHA256, &[1u8; 3]).unwrap(), Mechanism::Sha256);
        let m = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            ..m
        };
        // SAFETY: as above.
        assert_eq!(rv(unsafe { mechanism(&m) }), CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn parses_every_parameter_struct() {
        let label = b"lbl";
        let oaep = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA384,
            mgf: CKG_MGF1_SHA1,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: label.as_ptr() as *mut _,
            ulSourceDataLen: 3,
        };
        assert_eq!(
            mech_with(CKM_RSA_PKCS_OAEP, &oaep).unwrap(),
            Mechanism::RsaPkcsOaep(OaepParams {
                hash: HashAlg::Sha384,
                mgf: HashAlg::Sha1,
                label: label.to_vec()
            })
        );
        let pss = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA512,
            sLen: 17,
        };
        let m = mech_with(CKM_SHA256_RSA_PKCS_PSS, &pss).unwrap();
        assert_eq!(
            m.pss_params().unwrap(),
            &PssParams {
                hash: HashAlg::Sha256,
                mgf: HashAlg::Sha512,
                salt_len: 17
            }
        );
        assert_eq!(m.hash(), Some(HashAlg::Sha256));
        let peer = [4u8; 65];
        let ecdh = CK_ECDH1_DERIVE_PARAMS {
            kdf: CKD_NULL,
            ulSharedDataLen: 0,
            pSharedData: std::ptr::null_mut(),
            ulPublicDataLen: 65,
            pPublicData: peer.as_ptr() as *mut _,
        };
        let m = mech_with(CKM_ECDH1_COFACTOR_DERIVE, &ecdh).unwrap();
        assert_eq!(m.mech_type(), CKM_ECDH1_COFACTOR_DERIVE);
        let no_peer = CK_ECDH1_DERIVE_PARAMS {
            ulPublicDataLen: 0,
            ..ecdh
        };
        assert_eq!(
            rv(mech_with(CKM_ECDH1_DERIVE, &no_peer)),
            CKR_MECHANISM_PARAM_INVALID
        );
        let bad_kdf = CK_ECDH1_DERIVE_PARAMS { kdf: 0x77, ..ecdh };
        assert_eq!(
            rv(mech_with(CKM_ECDH1_DERIVE, &bad_kdf)),
            CKR_MECHANISM_PARAM_INVALID
        );
        let iv8 = [1u8; 8];
        assert_eq!(
            mech_with(CKM_AES_KEY_WRAP, &iv8).unwrap(),
            Mechanism::AesKeyWrap(Some(iv8))
        );
        assert_eq!(
            rv(mech_with(CKM_AES_KEY_WRAP, &[0u8; 7])),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            mech_with(CKM_AES_KEY_WRAP_KWP, &[2u8; 4]).unwrap(),
            Mechanism::AesKeyWrapKwp(Some([2; 4]))
        );
        let ctr = CK_AES_CTR_PARAMS {
            ulCounterBits: 32,
            cb: [5; 16],
        };
        assert_eq!(
            mech_with(CKM_AES_CTR, &ctr).unwrap(),
            Mechanism::AesCtr(CtrParams::new(32, [5; 16]).unwrap())
        );
        let ctr = CK_AES_CTR_PARAMS {
            ulCounterBits: 0,
            ..ctr
        };
        assert_eq!(
            rv(mech_with(CKM_AES_CTR, &ctr)),
            CKR_MECHANISM_PARAM_INVALID
        );
        let iv = [7u8; 12];
        assert_eq!(
            mech_with(CKM_AES_GCM, &gcm_params(&iv, b"aad", 96)).unwrap(),
            Mechanism::AesGcm(GcmParams::new(iv.to_vec(), b"aad".to_vec(), 96).unwrap())
        );
        assert_eq!(
            rv(mech_with(CKM_AES_GCM, &gcm_params(&iv, b"", 100))),
            CKR_MECHANISM_PARAM_INVALID
        );
        assert_eq!(
            mech_with(CKM_AES_CBC, &[3u8; 16]).unwrap(),
            Mechanism::AesCbc([3; 16])
        );
        assert_eq!(
            mech_with(CKM_AES_CBC_PAD, &[3u8; 16]).unwrap(),
            Mechanism::AesCbcPad([3; 16])
        );
        assert_eq!(
            mech_with(CKM_HSMUX_SERVICE_SYMMETRIC, b"ad").unwrap(),
            Mechanism::ServiceSymmetric(b"ad".to_vec())
        );
    }

    #[test]
    fn pss_needs_its_struct_and_the_hash_of_the_mechanism() {
        assert_eq!(
            rv(mech_with(CKM_RSA_PKCS_PSS, &[0u8; 16])),
            CKR_MECHANISM_PARAM_INVALID
        );
        let cases = [
            (CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1, HashAlg::Sha1),
            (CKM_SHA224_RSA_PKCS_PSS, CKM_SHA224, HashAlg::Sha224),
            (CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, HashAlg::Sha256),
            (CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, HashAlg::Sha384),
            (CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, HashAlg::Sha512),
        ];
        for (t, hash, alg) in cases {
            let p = CK_RSA_PKCS_PSS_PARAMS {
                hashAlg: hash,
                mgf: CKG_MGF1_SHA256,
                sLen: 20,
            };
            let m = mech_with(t, &p).unwrap();
            assert_eq!((m.mech_type(), m.hash()), (t, Some(alg)));
            let other = CK_RSA_PKCS_PSS_PARAMS {
                hashAlg: if hash == CKM_SHA256 {
                    CKM_SHA384
                } else {
                    CKM_SHA256
                },
                ..p
            };
            assert_eq!(
                rv(mech_with(t, &other)),
                CKR_MECHANISM_PARAM_INVALID,
                "{t:#x}"
            );
        }
        // The raw mechanism takes any hash.
        let p = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA384,
            mgf: CKG_MGF1_SHA256,
            sLen: 20,
        };
        let m = mech_with(CKM_RSA_PKCS_PSS, &p).unwrap();
        assert_eq!(m.pss_params().unwrap().hash, HashAlg::Sha384);
    }

    #[test]
    fn oaep_takes_a_specified_or_absent_source_only() {
        let bad_source = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: 2,
            pSourceData: std::ptr::null_mut(),
            ulSourceDataLen: 0,
        };
        assert_eq!(
            rv(mech_with(CKM_RSA_PKCS_OAEP, &bad_source)),
            CKR_MECHANISM_PARAM_INVALID
        );
        let null_label = CK_RSA_PKCS_OAEP_PARAMS {
            source: CKZ_DATA_SPECIFIED,
            ulSourceDataLen: 4,
            ..bad_source
        };
        assert_eq!(
            rv(mech_with(CKM_RSA_PKCS_OAEP, &null_label)),
            CKR_MECHANISM_PARAM_INVALID
        );
        let no_source = CK_RSA_PKCS_OAEP_PARAMS {
            source: 0,
            ..bad_source
        };
        assert!(mech_with(CKM_RSA_PKCS_OAEP, &no_source).is_ok());
        let no_label = CK_RSA_PKCS_OAEP_PARAMS {
            ulSourceDataLen: 0,
            ..null_label
        };
        let no_label = mech_with(CKM_RSA_PKCS_OAEP, &no_label).unwrap();
        assert!(matches!(no_label, Mechanism::RsaPkcsOaep(p) if p.label.is_empty()));
    }

    #[test]
    fn gcm_refuses_a_null_iv_and_a_wrong_parameter_length() {
        let iv = [1u8; 12];
        let mut p = gcm_params(&iv, b"", 128);
        p.pIv = std::ptr::null_mut();
        assert_eq!(rv(mech_with(CKM_AES_GCM, &p)), CKR_MECHANISM_PARAM_INVALID);
        // Wrong ulParameterLen.
        assert_eq!(
            rv(mech_with(CKM_AES_GCM, &[0u8; 47])),
            CKR_MECHANISM_PARAM_INVALID
        );
    }

    #[test]
    fn gcm_accepts_the_pkcs11_v2_30_parameter_layout() {
        #[repr(C)]
        struct Old {
            iv: *const u8,
            iv_len: CK_ULONG,
            aad: *const u8,
            aad_len: CK_ULONG,
            tag_bits: CK_ULONG,
        }
        // The IV and AAD of test case 4 of the GCM spec.
        let iv: [u8; 12] = [
            0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88,
        ];
        let aad: [u8; 20] = [
            0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef, 0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad,
            0xbe, 0xef, 0xab, 0xad, 0xda, 0xd2,
        ];
        let old = Old {
            iv: iv.as_ptr(),
            iv_len: 12,
            aad: aad.as_ptr(),
            aad_len: aad.len() as CK_ULONG,
            tag_bits: 128,
        };
        let m = mech_with(CKM_AES_GCM, &old).unwrap();
        assert_eq!(
            m,
            mech_with(CKM_AES_GCM, &gcm_params(&iv, &aad, 128)).unwrap()
        );
        assert_eq!(
            m,
            Mechanism::AesGcm(GcmParams::new(iv.to_vec(), aad.to_vec(), 128).unwrap())
        );
    }

    #[test]
    fn cbc_ivs_have_the_block_size() {
        assert_eq!(
            rv(mech_with(CKM_AES_CBC_PAD, &[0u8; 8])),
            CKR_MECHANISM_PARAM_INVALID
        );
        for t in [CKM_DES_CBC, CKM_DES_CBC_PAD, CKM_DES3_CBC, CKM_DES3_CBC_PAD] {
            assert_eq!(rv(mech_with(t, &[0u8; 16])), CKR_MECHANISM_PARAM_INVALID);
            assert_eq!(mech_with(t, &[0u8; 8]).unwrap().mech_type(), t);
        }
    }

    #[test]
    fn eddsa_takes_pure_ed25519_parameters_only() {
        // Ed25519ph is not available.
        let ph = CK_EDDSA_PARAMS {
            phFlag: CK_TRUE,
            ulContextDataLen: 0,
            pContextData: std::ptr::null_mut(),
        };
        assert_eq!(rv(mech_with(CKM_EDDSA, &ph)), CKR_MECHANISM_PARAM_INVALID);
        let pure = CK_EDDSA_PARAMS {
            phFlag: CK_FALSE,
            ..ph
        };
        assert_eq!(mech_with(CKM_EDDSA, &pure).unwrap(), Mechanism::EdDsa);
        assert_eq!(
            rv(mech_with(CKM_EDDSA, &[0u8; 3])),
            CKR_MECHANISM_PARAM_INVALID
        );
    }
}
