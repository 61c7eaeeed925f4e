//! `CKM_*` values and their parameters, validated once as the ABI copies them out of C.

pub use hsmux_core::HashAlg;

use crate::{bail, Error, Result};
use cryptoki_sys::*;

/// Vendor mechanism of hsmux: encrypt/decrypt in a key service's own authenticated
/// symmetric format (e.g. a KMS `SYMMETRIC_DEFAULT` key). Only tokens of such services
/// offer it; the optional parameter is additional data bound to the ciphertext.
pub const CKM_HSMUX_SERVICE_SYMMETRIC: CK_MECHANISM_TYPE = CKM_VENDOR_DEFINED | 0x4853_0001;

/// `CK_RSA_PKCS_PSS_PARAMS`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PssParams {
    /// Hash of the message (and the length the raw mechanism expects as input).
    pub hash: HashAlg,
    /// Hash of MGF1.
    pub mgf: HashAlg,
    /// Salt length in bytes.
    pub salt_len: usize,
}

/// `CK_RSA_PKCS_OAEP_PARAMS`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OaepParams {
    /// Hash of the label.
    pub hash: HashAlg,
    /// Hash of MGF1.
    pub mgf: HashAlg,
    /// The label (`CKZ_DATA_SPECIFIED` source data); empty when none.
    pub label: Vec<u8>,
}

/// `CK_GCM_PARAMS`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcmParams {
    /// The IV, 1..=128 bytes.
    pub iv: Vec<u8>,
    /// Additional authenticated data.
    pub aad: Vec<u8>,
    /// Tag length in bytes (0..=16), appended to the ciphertext.
    pub tag_len: usize,
}

/// `CK_AES_CTR_PARAMS`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtrParams {
    /// How many low-order bits of `cb` are the counter (1..=128).
    pub counter_bits: u32,
    /// The initial counter block.
    pub cb: [u8; 16],
}

/// `CK_ECDH1_DERIVE_PARAMS`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdhParams {
    /// `CKD_NULL` or one of the `CKD_SHA*_KDF`.
    pub kdf: CK_EC_KDF_TYPE,
    /// KDF shared info (empty for `CKD_NULL`).
    pub shared_data: Vec<u8>,
    /// The peer's public point, as the caller sent it (raw or DER OCTET STRING).
    pub public_data: Vec<u8>,
}

/// A supported mechanism with its owned, parsed parameters: one variant per `CKM_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// `CKM_SHA_1`
    Sha1,
    /// `CKM_SHA224`
    Sha224,
    /// `CKM_SHA256`
    Sha256,
    /// `CKM_SHA384`
    Sha384,
    /// `CKM_SHA512`
    Sha512,
    /// `CKM_ECDSA`: the input is already a hash.
    Ecdsa,
    /// `CKM_ECDSA_SHA1`
    EcdsaSha1,
    /// `CKM_ECDSA_SHA224`
    EcdsaSha224,
    /// `CKM_ECDSA_SHA256`
    EcdsaSha256,
    /// `CKM_ECDSA_SHA384`
    EcdsaSha384,
    /// `CKM_ECDSA_SHA512`
    EcdsaSha512,
    /// `CKM_RSA_PKCS`: PKCS#1 v1.5 without hashing (sign) or type-2 padding (encrypt).
    RsaPkcs,
    /// `CKM_SHA1_RSA_PKCS`
    Sha1RsaPkcs,
    /// `CKM_SHA224_RSA_PKCS`
    Sha224RsaPkcs,
    /// `CKM_SHA256_RSA_PKCS`
    Sha256RsaPkcs,
    /// `CKM_SHA384_RSA_PKCS`
    Sha384RsaPkcs,
    /// `CKM_SHA512_RSA_PKCS`
    Sha512RsaPkcs,
    /// `CKM_RSA_PKCS_PSS`: the input is already a hash.
    RsaPkcsPss(PssParams),
    /// `CKM_SHA1_RSA_PKCS_PSS`
    Sha1RsaPkcsPss(PssParams),
    /// `CKM_SHA224_RSA_PKCS_PSS`
    Sha224RsaPkcsPss(PssParams),
    /// `CKM_SHA256_RSA_PKCS_PSS`
    Sha256RsaPkcsPss(PssParams),
    /// `CKM_SHA384_RSA_PKCS_PSS`
    Sha384RsaPkcsPss(PssParams),
    /// `CKM_SHA512_RSA_PKCS_PSS`
    Sha512RsaPkcsPss(PssParams),
    /// `CKM_RSA_PKCS_OAEP`
    RsaPkcsOaep(OaepParams),
    /// `CKM_RSA_X_509`: raw RSA.
    RsaX509,
    /// `CKM_SHA_1_HMAC`
    Sha1Hmac,
    /// `CKM_SHA224_HMAC`
    Sha224Hmac,
    /// `CKM_SHA256_HMAC`
    Sha256Hmac,
    /// `CKM_SHA384_HMAC`
    Sha384Hmac,
    /// `CKM_SHA512_HMAC`
    Sha512Hmac,
    /// `CKM_AES_GCM`
    AesGcm(GcmParams),
    /// `CKM_AES_CBC_PAD` with its IV.
    AesCbcPad([u8; 16]),
    /// `CKM_AES_CBC` with its IV.
    AesCbc([u8; 16]),
    /// `CKM_AES_ECB`
    AesEcb,
    /// `CKM_AES_CTR`
    AesCtr(CtrParams),
    /// `CKM_AES_CMAC` (full 16-byte MAC).
    AesCmac,
    /// `CKM_AES_KEY_WRAP` (RFC 3394) with an optional alternative IV.
    AesKeyWrap(Option<[u8; 8]>),
    /// `CKM_AES_KEY_WRAP_KWP` (RFC 5649) with an optional alternative IV.
    AesKeyWrapKwp(Option<[u8; 4]>),
    /// `CKM_EDDSA` (pure Ed25519; no prehash, no context).
    EdDsa,
    /// `CKM_ECDH1_DERIVE`
    Ecdh1Derive(EcdhParams),
    /// `CKM_ECDH1_COFACTOR_DERIVE`
    Ecdh1CofactorDerive(EcdhParams),
    /// `CKM_RSA_PKCS_KEY_PAIR_GEN`
    RsaPkcsKeyPairGen,
    /// `CKM_EC_KEY_PAIR_GEN`
    EcKeyPairGen,
    /// `CKM_EC_EDWARDS_KEY_PAIR_GEN`
    EcEdwardsKeyPairGen,
    /// `CKM_AES_KEY_GEN`
    AesKeyGen,
    /// `CKM_GENERIC_SECRET_KEY_GEN`
    GenericSecretKeyGen,
    /// [`CKM_HSMUX_SERVICE_SYMMETRIC`]: a key service's own authenticated symmetric
    /// format; the parameter, if any, is additional data bound to the ciphertext.
    ServiceSymmetric(Vec<u8>),
    /// `CKM_DES_ECB`: single DES, run as DES-EDE3 with the key repeated.
    DesEcb,
    /// `CKM_DES_CBC` with its IV.
    DesCbc([u8; 8]),
    /// `CKM_DES_CBC_PAD` with its IV.
    DesCbcPad([u8; 8]),
    /// `CKM_DES3_ECB` (`CKK_DES3` or `CKK_DES2` keys).
    Des3Ecb,
    /// `CKM_DES3_CBC` with its IV.
    Des3Cbc([u8; 8]),
    /// `CKM_DES3_CBC_PAD` with its IV.
    Des3CbcPad([u8; 8]),
    /// `CKM_DES_KEY_GEN`
    DesKeyGen,
    /// `CKM_DES2_KEY_GEN`
    Des2KeyGen,
    /// `CKM_DES3_KEY_GEN`
    Des3KeyGen,
    /// `CKM_SHA_1_KEY_GEN`: `CKK_SHA_1_HMAC` keys.
    Sha1KeyGen,
    /// `CKM_SHA224_KEY_GEN`: `CKK_SHA224_HMAC` keys.
    Sha224KeyGen,
    /// `CKM_SHA256_KEY_GEN`: `CKK_SHA256_HMAC` keys.
    Sha256KeyGen,
    /// `CKM_SHA384_KEY_GEN`: `CKK_SHA384_HMAC` keys.
    Sha384KeyGen,
    /// `CKM_SHA512_KEY_GEN`: `CKK_SHA512_HMAC` keys.
    Sha512KeyGen,
}

impl PssParams {
    /// Validates a `CK_RSA_PKCS_PSS_PARAMS`; `expect` is the hash a `CKM_SHA*_RSA_PKCS_PSS`
    /// mechanism fixes, which `hashAlg` must name.
    pub fn from_c(p: CK_RSA_PKCS_PSS_PARAMS, expect: Option<HashAlg>) -> Result<PssParams> {
        let hash = HashAlg::from_ckm(p.hashAlg).ok_or_else(|| {
            Error::new(
                CKR_MECHANISM_PARAM_INVALID,
                format!("PSS hashAlg {:#x} unsupported", p.hashAlg),
            )
        })?;
        if let Some(e) = expect {
            if e != hash {
                bail!(
                    CKR_MECHANISM_PARAM_INVALID,
                    "PSS hashAlg {:#x} does not match the mechanism's hash",
                    p.hashAlg
                );
            }
        }
        let mgf = HashAlg::from_mgf(p.mgf).ok_or_else(|| {
            Error::new(
                CKR_MECHANISM_PARAM_INVALID,
                format!("PSS mgf {:#x} unsupported", p.mgf),
            )
        })?;
        // Larger than any modulus we accept; the exact bound depends on the key, checked at init.
        if p.sLen > 2048 {
            bail!(CKR_MECHANISM_PARAM_INVALID, "PSS sLen {} too large", p.sLen);
        }
        Ok(PssParams {
            hash,
            mgf,
            salt_len: p.sLen as usize,
        })
    }
}

impl OaepParams {
    /// Validates the `hashAlg` and `mgf` of a `CK_RSA_PKCS_OAEP_PARAMS`; `label` is its
    /// source data, already copied out.
    pub fn new(
        hash_alg: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        label: Vec<u8>,
    ) -> Result<OaepParams> {
        let hash = HashAlg::from_ckm(hash_alg).ok_or_else(|| {
            Error::new(
                CKR_MECHANISM_PARAM_INVALID,
                format!("OAEP hashAlg {hash_alg:#x} unsupported"),
            )
        })?;
        let mgf = HashAlg::from_mgf(mgf).ok_or_else(|| {
            Error::new(
                CKR_MECHANISM_PARAM_INVALID,
                format!("OAEP mgf {mgf:#x} unsupported"),
            )
        })?;
        Ok(OaepParams { hash, mgf, label })
    }
}

impl GcmParams {
    /// The longest IV accepted: OpenSSL 3.0's GCM takes IVs of up to 128 bytes; longer
    /// ones (legal in PKCS#11, unseen in practice) would need our own GHASH.
    pub const MAX_IV_LEN: usize = 128;

    /// Validates the IV length and `ulTagBits` of a `CK_GCM_PARAMS`.
    pub fn new(iv: Vec<u8>, aad: Vec<u8>, tag_bits: CK_ULONG) -> Result<GcmParams> {
        if iv.is_empty() || iv.len() > Self::MAX_IV_LEN {
            bail!(CKR_MECHANISM_PARAM_INVALID, "GCM IV length {}", iv.len());
        }
        if tag_bits > 128 || tag_bits % 8 != 0 {
            bail!(CKR_MECHANISM_PARAM_INVALID, "GCM tag bits {tag_bits}");
        }
        Ok(GcmParams {
            iv,
            aad,
            tag_len: (tag_bits / 8) as usize,
        })
    }
}

impl CtrParams {
    /// Validates the `ulCounterBits` of a `CK_AES_CTR_PARAMS`.
    pub fn new(counter_bits: CK_ULONG, cb: [u8; 16]) -> Result<CtrParams> {
        if counter_bits == 0 || counter_bits > 128 {
            bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "CTR counter bits {counter_bits}"
            );
        }
        Ok(CtrParams {
            counter_bits: counter_bits as u32,
            cb,
        })
    }
}

impl EcdhParams {
    /// Validates a `CK_ECDH1_DERIVE_PARAMS` whose two buffers are already copied out.
    pub fn new(
        kdf: CK_EC_KDF_TYPE,
        shared_data: Vec<u8>,
        public_data: Vec<u8>,
    ) -> Result<EcdhParams> {
        if public_data.is_empty() {
            bail!(CKR_MECHANISM_PARAM_INVALID, "ECDH peer public data missing");
        }
        match kdf {
            CKD_NULL if shared_data.is_empty() => {}
            CKD_SHA1_KDF | CKD_SHA224_KDF | CKD_SHA256_KDF | CKD_SHA384_KDF | CKD_SHA512_KDF => {}
            k => bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "ECDH kdf {k:#x} (or CKD_NULL with shared data) unsupported"
            ),
        }
        Ok(EcdhParams {
            kdf,
            shared_data,
            public_data,
        })
    }
}

impl Mechanism {
    /// `CKM_EDDSA` given the `phFlag` and `ulContextDataLen` of its `CK_EDDSA_PARAMS`.
    pub fn eddsa(ph_flag: CK_BBOOL, context_len: CK_ULONG) -> Result<Mechanism> {
        // OpenSSL 3.0 has no Ed25519ph/Ed25519ctx through EVP.
        if ph_flag != CK_FALSE || context_len != 0 {
            bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "Ed25519ph / Ed25519ctx are not supported"
            );
        }
        Ok(Mechanism::EdDsa)
    }

    /// The mechanism for a `CKM_*` that takes no parameter.
    ///
    /// Mechanisms that need parameters are `CKR_MECHANISM_PARAM_INVALID`; unknown ones
    /// `CKR_MECHANISM_INVALID`.
    pub fn from_type(t: CK_MECHANISM_TYPE) -> Result<Mechanism> {
        Ok(match t {
            CKM_SHA_1 => Mechanism::Sha1,
            CKM_SHA224 => Mechanism::Sha224,
            CKM_SHA256 => Mechanism::Sha256,
            CKM_SHA384 => Mechanism::Sha384,
            CKM_SHA512 => Mechanism::Sha512,
            CKM_ECDSA => Mechanism::Ecdsa,
            CKM_ECDSA_SHA1 => Mechanism::EcdsaSha1,
            CKM_ECDSA_SHA224 => Mechanism::EcdsaSha224,
            CKM_ECDSA_SHA256 => Mechanism::EcdsaSha256,
            CKM_ECDSA_SHA384 => Mechanism::EcdsaSha384,
            CKM_ECDSA_SHA512 => Mechanism::EcdsaSha512,
            CKM_RSA_PKCS => Mechanism::RsaPkcs,
            CKM_SHA1_RSA_PKCS => Mechanism::Sha1RsaPkcs,
            CKM_SHA224_RSA_PKCS => Mechanism::Sha224RsaPkcs,
            CKM_SHA256_RSA_PKCS => Mechanism::Sha256RsaPkcs,
            CKM_SHA384_RSA_PKCS => Mechanism::Sha384RsaPkcs,
            CKM_SHA512_RSA_PKCS => Mechanism::Sha512RsaPkcs,
            CKM_RSA_X_509 => Mechanism::RsaX509,
            CKM_SHA_1_HMAC => Mechanism::Sha1Hmac,
            CKM_SHA224_HMAC => Mechanism::Sha224Hmac,
            CKM_SHA256_HMAC => Mechanism::Sha256Hmac,
            CKM_SHA384_HMAC => Mechanism::Sha384Hmac,
            CKM_SHA512_HMAC => Mechanism::Sha512Hmac,
            CKM_AES_ECB => Mechanism::AesEcb,
            CKM_AES_CMAC => Mechanism::AesCmac,
            CKM_AES_KEY_WRAP => Mechanism::AesKeyWrap(None),
            CKM_AES_KEY_WRAP_KWP => Mechanism::AesKeyWrapKwp(None),
            CKM_EDDSA => Mechanism::EdDsa,
            CKM_RSA_PKCS_KEY_PAIR_GEN => Mechanism::RsaPkcsKeyPairGen,
            CKM_EC_KEY_PAIR_GEN => Mechanism::EcKeyPairGen,
            CKM_EC_EDWARDS_KEY_PAIR_GEN => Mechanism::EcEdwardsKeyPairGen,
            CKM_AES_KEY_GEN => Mechanism::AesKeyGen,
            CKM_GENERIC_SECRET_KEY_GEN => Mechanism::GenericSecretKeyGen,
            CKM_DES_ECB => Mechanism::DesEcb,
            CKM_DES3_ECB => Mechanism::Des3Ecb,
            CKM_DES_KEY_GEN => Mechanism::DesKeyGen,
            CKM_DES2_KEY_GEN => Mechanism::Des2KeyGen,
            CKM_DES3_KEY_GEN => Mechanism::Des3KeyGen,
            CKM_SHA_1_KEY_GEN => Mechanism::Sha1KeyGen,
            CKM_SHA224_KEY_GEN => Mechanism::Sha224KeyGen,
            CKM_SHA256_KEY_GEN => Mechanism::Sha256KeyGen,
            CKM_SHA384_KEY_GEN => Mechanism::Sha384KeyGen,
            CKM_SHA512_KEY_GEN => Mechanism::Sha512KeyGen,
            CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
            | CKM_RSA_PKCS_OAEP
            | CKM_AES_GCM
            | CKM_AES_CBC_PAD
            | CKM_AES_CBC
            | CKM_AES_CTR
            | CKM_DES_CBC
            | CKM_DES_CBC_PAD
            | CKM_DES3_CBC
            | CKM_DES3_CBC_PAD
            | CKM_ECDH1_DERIVE
            | CKM_ECDH1_COFACTOR_DERIVE => bail!(
                CKR_MECHANISM_PARAM_INVALID,
                "mechanism {t:#x} requires a parameter"
            ),
            _ => bail!(CKR_MECHANISM_INVALID, "mechanism {t:#x} is not supported"),
        })
    }

    /// The `CKM_*` value.
    pub fn mech_type(&self) -> CK_MECHANISM_TYPE {
        match self {
            Mechanism::Sha1 => CKM_SHA_1,
            Mechanism::Sha224 => CKM_SHA224,
            Mechanism::Sha256 => CKM_SHA256,
            Mechanism::Sha384 => CKM_SHA384,
            Mechanism::Sha512 => CKM_SHA512,
            Mechanism::Ecdsa => CKM_ECDSA,
            Mechanism::EcdsaSha1 => CKM_ECDSA_SHA1,
            Mechanism::EcdsaSha224 => CKM_ECDSA_SHA224,
            Mechanism::EcdsaSha256 => CKM_ECDSA_SHA256,
            Mechanism::EcdsaSha384 => CKM_ECDSA_SHA384,
            Mechanism::EcdsaSha512 => CKM_ECDSA_SHA512,
            Mechanism::RsaPkcs => CKM_RSA_PKCS,
            Mechanism::Sha1RsaPkcs => CKM_SHA1_RSA_PKCS,
            Mechanism::Sha224RsaPkcs => CKM_SHA224_RSA_PKCS,
            Mechanism::Sha256RsaPkcs => CKM_SHA256_RSA_PKCS,
            Mechanism::Sha384RsaPkcs => CKM_SHA384_RSA_PKCS,
            Mechanism::Sha512RsaPkcs => CKM_SHA512_RSA_PKCS,
            Mechanism::RsaPkcsPss(_) => CKM_RSA_PKCS_PSS,
            Mechanism::Sha1RsaPkcsPss(_) => CKM_SHA1_RSA_PKCS_PSS,
            Mechanism::Sha224RsaPkcsPss(_) => CKM_SHA224_RSA_PKCS_PSS,
            Mechanism::Sha256RsaPkcsPss(_) => CKM_SHA256_RSA_PKCS_PSS,
            Mechanism::Sha384RsaPkcsPss(_) => CKM_SHA384_RSA_PKCS_PSS,
            Mechanism::Sha512RsaPkcsPss(_) => CKM_SHA512_RSA_PKCS_PSS,
            Mechanism::RsaPkcsOaep(_) => CKM_RSA_PKCS_OAEP,
            Mechanism::RsaX509 => CKM_RSA_X_509,
            Mechanism::Sha1Hmac => CKM_SHA_1_HMAC,
            Mechanism::Sha224Hmac => CKM_SHA224_HMAC,
            Mechanism::Sha256Hmac => CKM_SHA256_HMAC,
            Mechanism::Sha384Hmac => CKM_SHA384_HMAC,
            Mechanism::Sha512Hmac => CKM_SHA512_HMAC,
            Mechanism::AesGcm(_) => CKM_AES_GCM,
            Mechanism::AesCbcPad(_) => CKM_AES_CBC_PAD,
            Mechanism::AesCbc(_) => CKM_AES_CBC,
            Mechanism::AesEcb => CKM_AES_ECB,
            Mechanism::AesCtr(_) => CKM_AES_CTR,
            Mechanism::AesCmac => CKM_AES_CMAC,
            Mechanism::AesKeyWrap(_) => CKM_AES_KEY_WRAP,
            Mechanism::AesKeyWrapKwp(_) => CKM_AES_KEY_WRAP_KWP,
            Mechanism::EdDsa => CKM_EDDSA,
            Mechanism::Ecdh1Derive(_) => CKM_ECDH1_DERIVE,
            Mechanism::Ecdh1CofactorDerive(_) => CKM_ECDH1_COFACTOR_DERIVE,
            Mechanism::RsaPkcsKeyPairGen => CKM_RSA_PKCS_KEY_PAIR_GEN,
            Mechanism::EcKeyPairGen => CKM_EC_KEY_PAIR_GEN,
            Mechanism::EcEdwardsKeyPairGen => CKM_EC_EDWARDS_KEY_PAIR_GEN,
            Mechanism::AesKeyGen => CKM_AES_KEY_GEN,
            Mechanism::GenericSecretKeyGen => CKM_GENERIC_SECRET_KEY_GEN,
            Mechanism::ServiceSymmetric(_) => CKM_HSMUX_SERVICE_SYMMETRIC,
            Mechanism::DesEcb => CKM_DES_ECB,
            Mechanism::DesCbc(_) => CKM_DES_CBC,
            Mechanism::DesCbcPad(_) => CKM_DES_CBC_PAD,
            Mechanism::Des3Ecb => CKM_DES3_ECB,
            Mechanism::Des3Cbc(_) => CKM_DES3_CBC,
            Mechanism::Des3CbcPad(_) => CKM_DES3_CBC_PAD,
            Mechanism::DesKeyGen => CKM_DES_KEY_GEN,
            Mechanism::Des2KeyGen => CKM_DES2_KEY_GEN,
            Mechanism::Des3KeyGen => CKM_DES3_KEY_GEN,
            Mechanism::Sha1KeyGen => CKM_SHA_1_KEY_GEN,
            Mechanism::Sha224KeyGen => CKM_SHA224_KEY_GEN,
            Mechanism::Sha256KeyGen => CKM_SHA256_KEY_GEN,
            Mechanism::Sha384KeyGen => CKM_SHA384_KEY_GEN,
            Mechanism::Sha512KeyGen => CKM_SHA512_KEY_GEN,
        }
    }

    /// The hash a hash-then-sign (or digest, or HMAC) mechanism applies to the message, if any.
    ///
    /// Backends that sign a prehashed digest use this to hash locally first.
    pub fn hash(&self) -> Option<HashAlg> {
        Some(match self {
            Mechanism::Sha1
            | Mechanism::EcdsaSha1
            | Mechanism::Sha1RsaPkcs
            | Mechanism::Sha1RsaPkcsPss(_)
            | Mechanism::Sha1Hmac => HashAlg::Sha1,
            Mechanism::Sha224
            | Mechanism::EcdsaSha224
            | Mechanism::Sha224RsaPkcs
            | Mechanism::Sha224RsaPkcsPss(_)
            | Mechanism::Sha224Hmac => HashAlg::Sha224,
            Mechanism::Sha256
            | Mechanism::EcdsaSha256
            | Mechanism::Sha256RsaPkcs
            | Mechanism::Sha256RsaPkcsPss(_)
            | Mechanism::Sha256Hmac => HashAlg::Sha256,
            Mechanism::Sha384
            | Mechanism::EcdsaSha384
            | Mechanism::Sha384RsaPkcs
            | Mechanism::Sha384RsaPkcsPss(_)
            | Mechanism::Sha384Hmac => HashAlg::Sha384,
            Mechanism::Sha512
            | Mechanism::EcdsaSha512
            | Mechanism::Sha512RsaPkcs
            | Mechanism::Sha512RsaPkcsPss(_)
            | Mechanism::Sha512Hmac => HashAlg::Sha512,
            _ => return None,
        })
    }

    /// The PSS parameters of a PSS mechanism.
    pub fn pss_params(&self) -> Option<&PssParams> {
        match self {
            Mechanism::RsaPkcsPss(p)
            | Mechanism::Sha1RsaPkcsPss(p)
            | Mechanism::Sha224RsaPkcsPss(p)
            | Mechanism::Sha256RsaPkcsPss(p)
            | Mechanism::Sha384RsaPkcsPss(p)
            | Mechanism::Sha512RsaPkcsPss(p) => Some(p),
            _ => None,
        }
    }
}

/// What `C_GetMechanismInfo` reports for one mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MechInfo {
    /// Minimum key size (RSA/EC: bits; AES/DES/HMAC/generic: bytes).
    pub min_key: CK_ULONG,
    /// Maximum key size, same unit.
    pub max_key: CK_ULONG,
    /// `CKF_*` operation flags.
    pub flags: CK_FLAGS,
}

/// RSA modulus sizes (bits) we accept for operations and key generation.
pub(crate) const RSA_MIN_BITS: usize = 1024;
/// Upper RSA modulus size (bits).
pub(crate) const RSA_MAX_BITS: usize = 8192;
/// HMAC / generic secret key sizes (bytes).
pub(crate) const GENERIC_MAX_LEN: usize = 512;

const EC_FLAGS: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
const SV: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const ED: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const WU: CK_FLAGS = CKF_WRAP | CKF_UNWRAP;

/// Every mechanism this layer implements, with its info, in list order.
const TABLE: &[(CK_MECHANISM_TYPE, MechInfo)] = &{
    const fn i(min_key: usize, max_key: usize, flags: CK_FLAGS) -> MechInfo {
        MechInfo {
            min_key: min_key as CK_ULONG,
            max_key: max_key as CK_ULONG,
            flags,
        }
    }
    const R0: usize = RSA_MIN_BITS;
    const R1: usize = RSA_MAX_BITS;
    const G: usize = GENERIC_MAX_LEN;
    [
        (CKM_SHA_1, i(0, 0, CKF_DIGEST)),
        (CKM_SHA224, i(0, 0, CKF_DIGEST)),
        (CKM_SHA256, i(0, 0, CKF_DIGEST)),
        (CKM_SHA384, i(0, 0, CKF_DIGEST)),
        (CKM_SHA512, i(0, 0, CKF_DIGEST)),
        (
            CKM_EC_KEY_PAIR_GEN,
            i(256, 521, CKF_GENERATE_KEY_PAIR | EC_FLAGS),
        ),
        (CKM_ECDSA, i(256, 521, SV | EC_FLAGS)),
        (CKM_ECDSA_SHA1, i(256, 521, SV | EC_FLAGS)),
        (CKM_ECDSA_SHA224, i(256, 521, SV | EC_FLAGS)),
        (CKM_ECDSA_SHA256, i(256, 521, SV | EC_FLAGS)),
        (CKM_ECDSA_SHA384, i(256, 521, SV | EC_FLAGS)),
        (CKM_ECDSA_SHA512, i(256, 521, SV | EC_FLAGS)),
        (CKM_ECDH1_DERIVE, i(256, 521, CKF_DERIVE | EC_FLAGS)),
        (
            CKM_ECDH1_COFACTOR_DERIVE,
            i(256, 521, CKF_DERIVE | EC_FLAGS),
        ),
        (
            CKM_EC_EDWARDS_KEY_PAIR_GEN,
            i(
                256,
                256,
                CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_CURVENAME,
            ),
        ),
        (
            CKM_EDDSA,
            i(
                256,
                256,
                SV | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_CURVENAME,
            ),
        ),
        (CKM_RSA_PKCS_KEY_PAIR_GEN, i(R0, R1, CKF_GENERATE_KEY_PAIR)),
        (CKM_RSA_PKCS, i(R0, R1, SV | ED | WU)),
        (CKM_SHA1_RSA_PKCS, i(R0, R1, SV)),
        (CKM_SHA224_RSA_PKCS, i(R0, R1, SV)),
        (CKM_SHA256_RSA_PKCS, i(R0, R1, SV)),
        (CKM_SHA384_RSA_PKCS, i(R0, R1, SV)),
        (CKM_SHA512_RSA_PKCS, i(R0, R1, SV)),
        (CKM_RSA_PKCS_PSS, i(R0, R1, SV)),
        (CKM_SHA1_RSA_PKCS_PSS, i(R0, R1, SV)),
        (CKM_SHA224_RSA_PKCS_PSS, i(R0, R1, SV)),
        (CKM_SHA256_RSA_PKCS_PSS, i(R0, R1, SV)),
        (CKM_SHA384_RSA_PKCS_PSS, i(R0, R1, SV)),
        (CKM_SHA512_RSA_PKCS_PSS, i(R0, R1, SV)),
        (CKM_RSA_PKCS_OAEP, i(R0, R1, ED | WU)),
        (CKM_RSA_X_509, i(R0, R1, SV | ED)),
        (CKM_GENERIC_SECRET_KEY_GEN, i(1, G, CKF_GENERATE)),
        (CKM_SHA_1_HMAC, i(1, G, SV)),
        (CKM_SHA224_HMAC, i(1, G, SV)),
        (CKM_SHA256_HMAC, i(1, G, SV)),
        (CKM_SHA384_HMAC, i(1, G, SV)),
        (CKM_SHA512_HMAC, i(1, G, SV)),
        (CKM_SHA_1_KEY_GEN, i(1, G, CKF_GENERATE)),
        (CKM_SHA224_KEY_GEN, i(1, G, CKF_GENERATE)),
        (CKM_SHA256_KEY_GEN, i(1, G, CKF_GENERATE)),
        (CKM_SHA384_KEY_GEN, i(1, G, CKF_GENERATE)),
        (CKM_SHA512_KEY_GEN, i(1, G, CKF_GENERATE)),
        (CKM_AES_KEY_GEN, i(16, 32, CKF_GENERATE)),
        (
            CKM_AES_GCM,
            i(
                16,
                32,
                ED | CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT | CKF_MULTI_MESSAGE,
            ),
        ),
        (CKM_AES_CBC_PAD, i(16, 32, ED | WU)),
        (CKM_AES_CBC, i(16, 32, ED | WU)),
        (CKM_AES_ECB, i(16, 32, ED)),
        (CKM_AES_CTR, i(16, 32, ED)),
        (CKM_AES_CMAC, i(16, 32, SV)),
        (CKM_AES_KEY_WRAP, i(16, 32, ED | WU)),
        (CKM_AES_KEY_WRAP_KWP, i(16, 32, ED | WU)),
        // PKCS#11 leaves the size fields of the DES mechanisms unused; we report the
        // key lengths in bytes, as for AES. DES3 modes take CKK_DES2 (16) and CKK_DES3 (24).
        (CKM_DES3_KEY_GEN, i(24, 24, CKF_GENERATE)),
        (CKM_DES2_KEY_GEN, i(16, 16, CKF_GENERATE)),
        (CKM_DES3_ECB, i(16, 24, ED | WU)),
        (CKM_DES3_CBC, i(16, 24, ED | WU)),
        (CKM_DES3_CBC_PAD, i(16, 24, ED | WU)),
        (CKM_DES_KEY_GEN, i(8, 8, CKF_GENERATE)),
        (CKM_DES_ECB, i(8, 8, ED | WU)),
        (CKM_DES_CBC, i(8, 8, ED | WU)),
        (CKM_DES_CBC_PAD, i(8, 8, ED | WU)),
    ]
};

/// Every supported `CKM_*`, exactly the ones that work.
pub fn mechanism_list() -> Vec<CK_MECHANISM_TYPE> {
    TABLE.iter().map(|(t, _)| *t).collect()
}

/// `C_GetMechanismInfo` for `t`, or `None` when unsupported.
pub fn mechanism_info(t: CK_MECHANISM_TYPE) -> Option<MechInfo> {
    TABLE.iter().find(|(m, _)| *m == t).map(|(_, i)| *i)
}
