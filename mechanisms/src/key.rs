//! Keys parsed once from their object attributes and kept ready for every operation.

use crate::attr::Attributes;
use crate::{bail, Error, Result};
use cryptoki_sys::*;
use openssl::bn::{BigNum, BigNumContext, BigNumRef};
use openssl::ec::{EcGroup, EcKey, EcPoint, EcPointRef, PointConversionForm};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::Rsa;
use zeroize::Zeroizing;

/// A NIST prime curve we support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    /// P-256 / prime256v1 / secp256r1.
    P256,
    /// P-384 / secp384r1.
    P384,
    /// P-521 / secp521r1.
    P521,
}

const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
/// `CKA_EC_PARAMS` for Ed25519 as the id-Ed25519 OID (1.3.101.112).
pub const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// `CKA_EC_PARAMS` for Ed25519 as the printable-string curve name PKCS#11 3.0 also allows.
pub const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

impl Curve {
    /// The curve named by a `CKA_EC_PARAMS` DER OID.
    pub fn from_params(der: &[u8]) -> Option<Curve> {
        match der {
            OID_P256 => Some(Curve::P256),
            OID_P384 => Some(Curve::P384),
            OID_P521 => Some(Curve::P521),
            _ => None,
        }
    }
    /// The curve of an OpenSSL NID.
    pub(crate) fn from_nid(nid: Nid) -> Option<Curve> {
        match nid {
            Nid::X9_62_PRIME256V1 => Some(Curve::P256),
            Nid::SECP384R1 => Some(Curve::P384),
            Nid::SECP521R1 => Some(Curve::P521),
            _ => None,
        }
    }
    /// `CKA_EC_PARAMS`: the DER OID of the curve.
    pub fn params(self) -> &'static [u8] {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
            Curve::P521 => OID_P521,
        }
    }
    pub(crate) fn nid(self) -> Nid {
        match self {
            Curve::P256 => Nid::X9_62_PRIME256V1,
            Curve::P384 => Nid::SECP384R1,
            Curve::P521 => Nid::SECP521R1,
        }
    }
    /// Field size in bits, the PKCS#11 key size.
    pub fn bits(self) -> usize {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }
    /// Field size in bytes: the length of a coordinate, a scalar, and half a signature.
    pub fn field_len(self) -> usize {
        self.bits().div_ceil(8)
    }
    pub(crate) fn group(self) -> Result<EcGroup> {
        Ok(EcGroup::from_curve_name(self.nid())?)
    }
}

/// DER-encodes `data` as an OCTET STRING.
pub(crate) fn der_octet_string(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 6);
    out.push(0x04);
    let n = data.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(data);
    out
}

/// The content of a DER OCTET STRING that spans all of `der`, or `None`.
pub(crate) fn der_parse_octet_string(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x04 {
        return None;
    }
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let nlen = (l0 & 0x7f) as usize;
        if nlen == 0 || nlen > std::mem::size_of::<usize>() || rest.len() < nlen {
            return None;
        }
        let len = rest[..nlen]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[nlen..])
    };
    (rest.len() == len).then_some(rest)
}

/// An RSA public key.
pub struct RsaPublicKey {
    pub(crate) rsa: Rsa<Public>,
    pub(crate) pkey: PKey<Public>,
}

/// An RSA private key with its public half derived once for verify/encrypt.
pub struct RsaPrivateKey {
    pub(crate) rsa: Rsa<Private>,
    pub(crate) pkey: PKey<Private>,
    pub(crate) public: RsaPublicKey,
}

/// An EC (Weierstrass) public key.
pub struct EcPublicKey {
    pub(crate) curve: Curve,
    pub(crate) key: EcKey<Public>,
}

/// An EC private key with its public half derived once.
pub struct EcPrivateKey {
    pub(crate) key: EcKey<Private>,
    pub(crate) public: EcPublicKey,
}

/// An Ed25519 public key.
pub struct EdPublicKey {
    pub(crate) pkey: PKey<Public>,
    /// The `CKA_EC_PARAMS` the object carried, echoed in derived attributes.
    pub(crate) params: Vec<u8>,
}

/// An Ed25519 private key with its public half derived once.
pub struct EdPrivateKey {
    pub(crate) pkey: PKey<Private>,
    pub(crate) public: EdPublicKey,
}

/// A secret key: its `CKK_*` type and value.
pub struct SecretKey {
    pub(crate) key_type: CK_KEY_TYPE,
    pub(crate) value: Zeroizing<Vec<u8>>,
}

/// A parsed key, ready for operations. OpenSSL clears private key memory when it frees it;
/// secret values are zeroized on drop.
pub enum KeyMaterial {
    /// RSA private key.
    RsaPrivate(RsaPrivateKey),
    /// RSA public key.
    RsaPublic(RsaPublicKey),
    /// EC private key on P-256/384/521.
    EcPrivate(EcPrivateKey),
    /// EC public key on P-256/384/521.
    EcPublic(EcPublicKey),
    /// Ed25519 private key.
    EdPrivate(EdPrivateKey),
    /// Ed25519 public key.
    EdPublic(EdPublicKey),
    /// Secret key (AES, generic secret, HMAC keys, any other `CKO_SECRET_KEY`).
    Secret(SecretKey),
}

impl std::fmt::Debug for KeyMaterial {
    // Names the kind and size only: the rest is secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            KeyMaterial::RsaPrivate(_) => "RsaPrivate",
            KeyMaterial::RsaPublic(_) => "RsaPublic",
            KeyMaterial::EcPrivate(_) => "EcPrivate",
            KeyMaterial::EcPublic(_) => "EcPublic",
            KeyMaterial::EdPrivate(_) => "EdPrivate",
            KeyMaterial::EdPublic(_) => "EdPublic",
            KeyMaterial::Secret(_) => "Secret",
        };
        write!(f, "KeyMaterial::{kind}({})", self.size())
    }
}

fn required<'a>(attrs: &'a Attributes, t: CK_ATTRIBUTE_TYPE, what: &str) -> Result<&'a [u8]> {
    match attrs.get(t) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => bail!(CKR_TEMPLATE_INCOMPLETE, "{what} ({t:#x}) is missing"),
    }
}

fn optional(attrs: &Attributes, t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    attrs.get(t).filter(|v| !v.is_empty())
}

fn bn(v: &[u8]) -> Result<BigNum> {
    Ok(BigNum::from_slice(v)?)
}

/// Largest RSA modulus we will even parse; operations enforce the advertised range.
const RSA_PARSE_MAX_BITS: i32 = 16384;

impl RsaPublicKey {
    pub(crate) fn from_components(n: BigNum, e: BigNum) -> Result<RsaPublicKey> {
        if n.num_bits() < 512 || n.num_bits() > RSA_PARSE_MAX_BITS || !n.is_bit_set(0) {
            bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "RSA modulus of {} bits is not usable",
                n.num_bits()
            );
        }
        if !e.is_bit_set(0) || e.num_bits() < 2 || e.num_bits() > 64 {
            bail!(CKR_ATTRIBUTE_VALUE_INVALID, "RSA public exponent invalid");
        }
        let rsa = Rsa::from_public_components(n, e)?;
        let pkey = PKey::from_rsa(rsa.clone())?;
        Ok(RsaPublicKey { rsa, pkey })
    }
    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        self.rsa.n().num_bits() as usize
    }
    /// Modulus length in bytes: the length of signatures and ciphertexts.
    pub fn modulus_len(&self) -> usize {
        self.rsa.size() as usize
    }
}

impl RsaPrivateKey {
    pub(crate) fn from_rsa(rsa: Rsa<Private>) -> Result<RsaPrivateKey> {
        let public = RsaPublicKey::from_components(rsa.n().to_owned()?, rsa.e().to_owned()?)?;
        let pkey = PKey::from_rsa(rsa.clone())?;
        Ok(RsaPrivateKey { rsa, pkey, public })
    }

    fn from_attributes(attrs: &Attributes) -> Result<RsaPrivateKey> {
        let n = bn(required(attrs, CKA_MODULUS, "CKA_MODULUS")?)?;
        let e = bn(required(attrs, CKA_PUBLIC_EXPONENT, "CKA_PUBLIC_EXPONENT")?)?;
        let d = bn(required(
            attrs,
            CKA_PRIVATE_EXPONENT,
            "CKA_PRIVATE_EXPONENT",
        )?)?;
        // Validates n and e before we hand them to OpenSSL.
        RsaPublicKey::from_components(n.to_owned()?, e.to_owned()?)?;
        if d.num_bits() == 0 || d.ucmp(&n) != std::cmp::Ordering::Less {
            bail!(CKR_ATTRIBUTE_VALUE_INVALID, "RSA private exponent invalid");
        }
        let p = optional(attrs, CKA_PRIME_1).map(bn).transpose()?;
        let q = optional(attrs, CKA_PRIME_2).map(bn).transpose()?;
        let rsa = match (p, q) {
            (Some(p), Some(q)) => {
                let mut ctx = BigNumContext::new()?;
                let mut pq = BigNum::new()?;
                pq.checked_mul(&p, &q, &mut ctx)?;
                if pq != n {
                    bail!(
                        CKR_ATTRIBUTE_VALUE_INVALID,
                        "RSA primes do not match the modulus"
                    );
                }
                // CRT parts are optional in PKCS#11: derive them so signing stays fast, and
                // refuse given ones that disagree (they would silently yield bad signatures).
                let (dp, dq, qi) = crt_params(&p, &q, &d, &e, &mut ctx)?;
                for (t, v) in [
                    (CKA_EXPONENT_1, &dp),
                    (CKA_EXPONENT_2, &dq),
                    (CKA_COEFFICIENT, &qi),
                ] {
                    if let Some(given) = optional(attrs, t) {
                        if bn(given)? != *v {
                            bail!(
                                CKR_ATTRIBUTE_VALUE_INVALID,
                                "RSA CRT part {t:#x} does not match the key"
                            );
                        }
                    }
                }
                Rsa::from_private_components(n, e, d, p, q, dp, dq, qi)?
            }
            _ => match recover_primes(&n, &e, &d)? {
                Some((p, q)) => {
                    let mut ctx = BigNumContext::new()?;
                    let (dp, dq, qi) = crt_params(&p, &q, &d, &e, &mut ctx)?;
                    Rsa::from_private_components(n, e, d, p, q, dp, dq, qi)?
                }
                None => bail!(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    "RSA private exponent does not match the public key"
                ),
            },
        };
        RsaPrivateKey::from_rsa(rsa)
    }
}

/// d mod (p-1), d mod (q-1), q^-1 mod p, after checking that d inverts e modulo both
/// p-1 and q-1 (so the key is consistent).
fn crt_params(
    p: &BigNumRef,
    q: &BigNumRef,
    d: &BigNumRef,
    e: &BigNumRef,
    ctx: &mut BigNumContext,
) -> Result<(BigNum, BigNum, BigNum)> {
    let one = BigNum::from_u32(1)?;
    let mut out = Vec::with_capacity(2);
    for prime in [p, q] {
        let mut m = BigNum::new()?;
        m.checked_sub(prime, &one)?;
        let mut dx = BigNum::new()?;
        dx.nnmod(d, &m, ctx)?;
        let mut check = BigNum::new()?;
        check.mod_mul(&dx, e, &m, ctx)?;
        if check != one {
            bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "RSA private exponent does not match the public exponent"
            );
        }
        out.push(dx);
    }
    let mut qi = BigNum::new()?;
    qi.mod_inverse(q, p, ctx)
        .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "RSA primes are not coprime"))?;
    let dq = out.pop().ok_or_else(|| Error::general("CRT"))?;
    let dp = out.pop().ok_or_else(|| Error::general("CRT"))?;
    Ok((dp, dq, qi))
}

/// Recovers p and q from (n, e, d) (NIST SP 800-56B C.2), so keys imported without CRT
/// parts still sign at CRT speed and export as PKCS#8. `None` when d does not fit e.
fn recover_primes(n: &BigNumRef, e: &BigNumRef, d: &BigNumRef) -> Result<Option<(BigNum, BigNum)>> {
    let mut ctx = BigNumContext::new()?;
    let one = BigNum::from_u32(1)?;
    let mut n1 = BigNum::new()?;
    n1.checked_sub(n, &one)?;
    // k = d*e - 1 = 2^t * r with r odd.
    let mut k = BigNum::new()?;
    k.checked_mul(d, e, &mut ctx)?;
    let de = k.to_owned()?;
    k.checked_sub(&de, &one)?;
    if k.num_bits() == 0 || k.is_bit_set(0) {
        return Ok(None);
    }
    let mut t = 0;
    while !k.is_bit_set(t) {
        t += 1;
    }
    let mut r = BigNum::new()?;
    r.rshift(&k, t)?;
    for g in 2u32..200 {
        let g = BigNum::from_u32(g)?;
        let mut y = BigNum::new()?;
        y.mod_exp(&g, &r, n, &mut ctx)?;
        if y == one || y == n1 {
            continue;
        }
        for _ in 0..t {
            let mut x = BigNum::new()?;
            x.mod_sqr(&y, n, &mut ctx)?;
            if x == one {
                // y is a non-trivial square root of 1: gcd(y-1, n) is a factor.
                let mut y1 = BigNum::new()?;
                y1.checked_sub(&y, &one)?;
                let mut p = BigNum::new()?;
                p.gcd(&y1, n, &mut ctx)?;
                let mut q = BigNum::new()?;
                let mut rem = BigNum::new()?;
                q.div_rem(&mut rem, n, &p, &mut ctx)?;
                if rem.num_bits() != 0 || p == one || q == one {
                    return Ok(None);
                }
                // OpenSSL's CRT code wants p > q, as keys it generates have.
                return Ok(Some(if p.ucmp(&q) == std::cmp::Ordering::Less {
                    (q, p)
                } else {
                    (p, q)
                }));
            }
            if x == n1 {
                break;
            }
            y = x;
        }
    }
    Ok(None)
}

impl EcPublicKey {
    pub(crate) fn from_point(curve: Curve, point: &EcPointRef) -> Result<EcPublicKey> {
        let group = curve.group()?;
        let key = EcKey::from_public_key(&group, point)?;
        key.check_key()
            .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "EC point not valid"))?;
        Ok(EcPublicKey { curve, key })
    }

    /// Parses `CKA_EC_POINT`: a DER OCTET STRING around the point, or the bare point.
    pub(crate) fn parse_point(curve: Curve, v: &[u8]) -> Result<EcPoint> {
        let group = curve.group()?;
        let mut ctx = BigNumContext::new()?;
        let bare_len = 1 + 2 * curve.field_len();
        // A bare uncompressed point also starts with 0x04, so the length decides first.
        let candidates: [Option<&[u8]>; 2] = if v.len() == bare_len {
            [Some(v), der_parse_octet_string(v)]
        } else {
            [der_parse_octet_string(v), Some(v)]
        };
        for c in candidates.into_iter().flatten() {
            if let Ok(p) = EcPoint::from_bytes(&group, c, &mut ctx) {
                return Ok(p);
            }
        }
        bail!(
            CKR_ATTRIBUTE_VALUE_INVALID,
            "CKA_EC_POINT is not a point on the curve"
        )
    }

    /// The uncompressed point 04‖X‖Y.
    pub fn point(&self) -> Result<Vec<u8>> {
        let mut ctx = BigNumContext::new()?;
        Ok(self.key.public_key().to_bytes(
            self.key.group(),
            PointConversionForm::UNCOMPRESSED,
            &mut ctx,
        )?)
    }
    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }
}

impl EcPrivateKey {
    pub(crate) fn from_key(curve: Curve, key: EcKey<Private>) -> Result<EcPrivateKey> {
        let public = EcPublicKey::from_point(curve, key.public_key())?;
        Ok(EcPrivateKey { key, public })
    }

    fn from_scalar(curve: Curve, value: &[u8]) -> Result<EcPrivateKey> {
        let group = curve.group()?;
        let mut ctx = BigNumContext::new()?;
        let d = BigNum::from_slice(value)?;
        let mut order = BigNum::new()?;
        group.order(&mut order, &mut ctx)?;
        if d.num_bits() == 0 || d.ucmp(&order) != std::cmp::Ordering::Less {
            bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "EC private scalar out of range"
            );
        }
        let mut pubpt = EcPoint::new(&group)?;
        pubpt.mul_generator2(&group, &d, &mut ctx)?;
        let key = EcKey::from_private_components(&group, &d, &pubpt)?;
        EcPrivateKey::from_key(curve, key)
    }

    /// The private scalar, big-endian, padded to the field length.
    pub(crate) fn scalar(&self) -> Result<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(
            self.key
                .private_key()
                .to_vec_padded(self.public.curve.field_len() as i32)?,
        ))
    }
}

/// The curve `CKA_EC_PARAMS` names, or the precise error for an unknown one.
pub(crate) fn ec_params(v: &[u8]) -> Result<Curve> {
    Curve::from_params(v).ok_or_else(|| {
        if v.first() == Some(&0x06) || v.first() == Some(&0x13) {
            Error::new(CKR_CURVE_NOT_SUPPORTED, "EC curve not supported")
        } else {
            Error::new(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "CKA_EC_PARAMS is not a curve OID",
            )
        }
    })
}

/// Whether `CKA_EC_PARAMS` names Ed25519.
pub(crate) fn is_ed25519_params(v: &[u8]) -> bool {
    v == ED25519_OID || v == ED25519_NAME
}

impl EdPublicKey {
    pub(crate) fn from_raw(raw: &[u8], params: Vec<u8>) -> Result<EdPublicKey> {
        let pkey = PKey::public_key_from_raw_bytes(raw, Id::ED25519)
            .map_err(|_| Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "Ed25519 point invalid"))?;
        Ok(EdPublicKey { pkey, params })
    }
    /// The 32-byte public key.
    pub fn raw(&self) -> Result<Vec<u8>> {
        Ok(self.pkey.raw_public_key()?)
    }
}

impl EdPrivateKey {
    pub(crate) fn from_pkey(pkey: PKey<Private>, params: Vec<u8>) -> Result<EdPrivateKey> {
        let raw = pkey.raw_public_key()?;
        let public = EdPublicKey::from_raw(&raw, params)?;
        Ok(EdPrivateKey { pkey, public })
    }
    /// The 32-byte seed.
    pub(crate) fn seed(&self) -> Result<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(self.pkey.raw_private_key()?))
    }
}

/// The fixed `CKA_VALUE` length of a DES key type (`CKK_DES` 8, `CKK_DES2` 16,
/// `CKK_DES3` 24), `None` for other types.
pub fn des_key_len(kt: CK_KEY_TYPE) -> Option<usize> {
    match kt {
        CKK_DES => Some(8),
        CKK_DES2 => Some(16),
        CKK_DES3 => Some(24),
        _ => None,
    }
}

impl SecretKey {
    /// The `CKK_*` of the key.
    pub fn key_type(&self) -> CK_KEY_TYPE {
        self.key_type
    }
    /// The key bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

impl KeyMaterial {
    /// Builds the parsed key from an object's attributes.
    pub fn from_attributes(attrs: &Attributes) -> Result<KeyMaterial> {
        let class = attrs
            .get_ulong(CKA_CLASS)?
            .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_CLASS is missing"))?;
        let kt = attrs
            .get_ulong(CKA_KEY_TYPE)?
            .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_KEY_TYPE is missing"))?;
        Ok(match (class, kt) {
            (CKO_SECRET_KEY, _) => {
                let v = attrs
                    .get(CKA_VALUE)
                    .ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_VALUE is missing"))?;
                if kt == CKK_AES && !matches!(v.len(), 16 | 24 | 32) {
                    bail!(CKR_ATTRIBUTE_VALUE_INVALID, "AES key of {} bytes", v.len());
                }
                // Parity bits are not checked: most tokens ignore them, and DES ignores them.
                if let Some(want) = des_key_len(kt) {
                    if v.len() != want {
                        bail!(
                            CKR_ATTRIBUTE_VALUE_INVALID,
                            "DES key type {kt:#x} needs {want} bytes, got {}",
                            v.len()
                        );
                    }
                }
                KeyMaterial::Secret(SecretKey {
                    key_type: kt,
                    value: Zeroizing::new(v.to_vec()),
                })
            }
            (CKO_PRIVATE_KEY, CKK_RSA) => {
                KeyMaterial::RsaPrivate(RsaPrivateKey::from_attributes(attrs)?)
            }
            (CKO_PUBLIC_KEY, CKK_RSA) => KeyMaterial::RsaPublic(RsaPublicKey::from_components(
                bn(required(attrs, CKA_MODULUS, "CKA_MODULUS")?)?,
                bn(required(attrs, CKA_PUBLIC_EXPONENT, "CKA_PUBLIC_EXPONENT")?)?,
            )?),
            (CKO_PRIVATE_KEY, CKK_EC) => {
                let curve = ec_params(required(attrs, CKA_EC_PARAMS, "CKA_EC_PARAMS")?)?;
                let v = required(attrs, CKA_VALUE, "CKA_VALUE")?;
                KeyMaterial::EcPrivate(EcPrivateKey::from_scalar(curve, v)?)
            }
            (CKO_PUBLIC_KEY, CKK_EC) => {
                let curve = ec_params(required(attrs, CKA_EC_PARAMS, "CKA_EC_PARAMS")?)?;
                let pt = EcPublicKey::parse_point(
                    curve,
                    required(attrs, CKA_EC_POINT, "CKA_EC_POINT")?,
                )?;
                KeyMaterial::EcPublic(EcPublicKey::from_point(curve, &pt)?)
            }
            (CKO_PRIVATE_KEY, CKK_EC_EDWARDS) => {
                let params = required(attrs, CKA_EC_PARAMS, "CKA_EC_PARAMS")?;
                if !is_ed25519_params(params) {
                    bail!(CKR_CURVE_NOT_SUPPORTED, "only Ed25519 is supported");
                }
                let v = required(attrs, CKA_VALUE, "CKA_VALUE")?;
                let pkey = PKey::private_key_from_raw_bytes(v, Id::ED25519).map_err(|_| {
                    Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "Ed25519 key must be 32 bytes")
                })?;
                KeyMaterial::EdPrivate(EdPrivateKey::from_pkey(pkey, params.to_vec())?)
            }
            (CKO_PUBLIC_KEY, CKK_EC_EDWARDS) => {
                let params = required(attrs, CKA_EC_PARAMS, "CKA_EC_PARAMS")?;
                if !is_ed25519_params(params) {
                    bail!(CKR_CURVE_NOT_SUPPORTED, "only Ed25519 is supported");
                }
                let v = required(attrs, CKA_EC_POINT, "CKA_EC_POINT")?;
                // The spec says DER OCTET STRING; some clients send the bare 32 bytes.
                let raw = if v.len() == 32 {
                    v
                } else {
                    der_parse_octet_string(v).ok_or_else(|| {
                        Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "CKA_EC_POINT malformed")
                    })?
                };
                KeyMaterial::EdPublic(EdPublicKey::from_raw(raw, params.to_vec())?)
            }
            (CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, _) => bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "key type {kt:#x} is not supported"
            ),
            _ => bail!(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "object class {class:#x} is not a key"
            ),
        })
    }

    /// Key size in PKCS#11 mechanism-info terms: RSA modulus bits, EC field bits,
    /// secret length in bytes.
    pub fn size(&self) -> usize {
        match self {
            KeyMaterial::RsaPrivate(k) => k.public.bits(),
            KeyMaterial::RsaPublic(k) => k.bits(),
            KeyMaterial::EcPrivate(k) => k.public.curve.bits(),
            KeyMaterial::EcPublic(k) => k.curve.bits(),
            KeyMaterial::EdPrivate(_) | KeyMaterial::EdPublic(_) => 256,
            KeyMaterial::Secret(k) => k.value.len(),
        }
    }

    /// The `CKK_*` of the key.
    pub fn key_type(&self) -> CK_KEY_TYPE {
        match self {
            KeyMaterial::RsaPrivate(_) | KeyMaterial::RsaPublic(_) => CKK_RSA,
            KeyMaterial::EcPrivate(_) | KeyMaterial::EcPublic(_) => CKK_EC,
            KeyMaterial::EdPrivate(_) | KeyMaterial::EdPublic(_) => CKK_EC_EDWARDS,
            KeyMaterial::Secret(k) => k.key_type,
        }
    }

    /// The `CKO_*` of the key.
    pub fn class(&self) -> CK_OBJECT_CLASS {
        match self {
            KeyMaterial::RsaPrivate(_) | KeyMaterial::EcPrivate(_) | KeyMaterial::EdPrivate(_) => {
                CKO_PRIVATE_KEY
            }
            KeyMaterial::RsaPublic(_) | KeyMaterial::EcPublic(_) | KeyMaterial::EdPublic(_) => {
                CKO_PUBLIC_KEY
            }
            KeyMaterial::Secret(_) => CKO_SECRET_KEY,
        }
    }

    /// The RSA public key of an RSA public or private key.
    pub(crate) fn rsa_public(&self) -> Option<&RsaPublicKey> {
        match self {
            KeyMaterial::RsaPrivate(k) => Some(&k.public),
            KeyMaterial::RsaPublic(k) => Some(k),
            _ => None,
        }
    }

    /// The EC public key of an EC public or private key.
    pub(crate) fn ec_public(&self) -> Option<&EcPublicKey> {
        match self {
            KeyMaterial::EcPrivate(k) => Some(&k.public),
            KeyMaterial::EcPublic(k) => Some(k),
            _ => None,
        }
    }

    /// The Ed25519 public key of an Ed25519 public or private key.
    pub(crate) fn ed_public(&self) -> Option<&EdPublicKey> {
        match self {
            KeyMaterial::EdPrivate(k) => Some(&k.public),
            KeyMaterial::EdPublic(k) => Some(k),
            _ => None,
        }
    }

    /// The DER SubjectPublicKeyInfo of an asymmetric key (for `CKA_PUBLIC_KEY_INFO`).
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        if let Some(k) = self.rsa_public() {
            return Ok(k.pkey.public_key_to_der()?);
        }
        if let Some(k) = self.ec_public() {
            return Ok(PKey::from_ec_key(k.key.clone())?.public_key_to_der()?);
        }
        if let Some(k) = self.ed_public() {
            return Ok(k.pkey.public_key_to_der()?);
        }
        bail!(CKR_KEY_TYPE_INCONSISTENT, "a secret key has no public key")
    }

    /// Parses a DER SubjectPublicKeyInfo (RSA, P-256/384/521, Ed25519), as backends
    /// report public keys; [`crate::public_attributes`] then gives the object attributes.
    pub fn from_public_key_der(der: &[u8]) -> Result<KeyMaterial> {
        let invalid = || Error::new(CKR_ATTRIBUTE_VALUE_INVALID, "not a supported public key");
        let pkey = PKey::public_key_from_der(der).map_err(|_| invalid())?;
        Ok(match pkey.id() {
            Id::RSA => {
                let rsa = pkey.rsa()?;
                KeyMaterial::RsaPublic(RsaPublicKey::from_components(
                    rsa.n().to_owned()?,
                    rsa.e().to_owned()?,
                )?)
            }
            Id::EC => {
                let ec = pkey.ec_key()?;
                let curve = ec
                    .group()
                    .curve_name()
                    .and_then(Curve::from_nid)
                    .ok_or_else(|| Error::new(CKR_CURVE_NOT_SUPPORTED, "EC curve not supported"))?;
                KeyMaterial::EcPublic(EcPublicKey::from_point(curve, ec.public_key())?)
            }
            Id::ED25519 => KeyMaterial::EdPublic(EdPublicKey::from_raw(
                &pkey.raw_public_key()?,
                ED25519_OID.to_vec(),
            )?),
            _ => return Err(invalid()),
        })
    }

    /// The PKCS#8 `PrivateKeyInfo` DER of a private key, for wrapping.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let der = match self {
            KeyMaterial::RsaPrivate(k) => k.pkey.private_key_to_pkcs8()?,
            KeyMaterial::EcPrivate(k) => {
                PKey::from_ec_key(k.key.clone())?.private_key_to_pkcs8()?
            }
            KeyMaterial::EdPrivate(k) => k.pkey.private_key_to_pkcs8()?,
            _ => bail!(
                CKR_KEY_NOT_WRAPPABLE,
                "only private keys have a PKCS#8 encoding"
            ),
        };
        Ok(Zeroizing::new(der))
    }
}
