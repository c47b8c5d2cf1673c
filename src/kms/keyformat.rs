//! Key and signature encodings, with the RustCrypto `der`/`spki`/`pkcs1`/`pkcs8`/`sec1` crates:
//! SubjectPublicKeyInfo from token attributes, PKCS#8 private keys for data key pairs, DER
//! ECDSA signatures ↔ the token's raw r‖s, PKCS#1 v1.5 DigestInfo and the curves' OIDs.

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode};
use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::sec1::{EncodedPoint, FromEncodedPoint, ModulusSize, ToEncodedPoint};
use p256::elliptic_curve::{CurveArithmetic, FieldBytesSize};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use super::{KmsError, Result};
use crate::token::{ExportedPair, HashAlg, MlDsaSet, MlKemSet, PrivateParts, PublicParts};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// The elliptic curves of the ECC key specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    Secp256k1,
}

impl Curve {
    fn oid(self) -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap(match self {
            Curve::P256 => "1.2.840.10045.3.1.7",
            Curve::P384 => "1.3.132.0.34",
            Curve::P521 => "1.3.132.0.35",
            Curve::Secp256k1 => "1.3.132.0.10",
        })
    }

    /// Bytes of a field element / scalar.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// `CKA_EC_PARAMS`: the DER of the curve's OID.
    pub fn ec_params(self) -> Result<Vec<u8>> {
        self.oid().to_der().map_err(internal)
    }

    /// The curve's generator point, uncompressed (`04 ‖ x ‖ y`).
    pub fn generator(self) -> Vec<u8> {
        match self {
            Curve::P256 => generator_of::<p256::NistP256>(),
            Curve::P384 => generator_of::<p384::NistP384>(),
            Curve::P521 => generator_of::<p521::NistP521>(),
            Curve::Secp256k1 => generator_of::<k256::Secp256k1>(),
        }
    }

    /// For an x-coordinate: the `CKA_EC_POINT` values (DER OCTET STRING of the uncompressed
    /// point) of the curve's points with that x — none if x is not on the curve, else the two
    /// of opposite y. Public values only (used to complete an imported key's public key).
    pub fn points_with_x(self) -> fn(&[u8]) -> Vec<Vec<u8>> {
        match self {
            Curve::P256 => points_with_x_on::<p256::NistP256>,
            Curve::P384 => points_with_x_on::<p384::NistP384>,
            Curve::P521 => points_with_x_on::<p521::NistP521>,
            Curve::Secp256k1 => points_with_x_on::<k256::Secp256k1>,
        }
    }

    fn from_params(params: &[u8]) -> Option<Curve> {
        let oid = ObjectIdentifier::from_der(params).ok()?;
        [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1]
            .into_iter()
            .find(|c| c.oid() == oid)
    }
}

/// The peer's public key of DeriveSharedSecret: a DER SubjectPublicKeyInfo of an EC key on
/// `curve`; its point (compressed or not) checked to be on the curve and returned
/// uncompressed. None if it is anything else.
pub fn peer_point(spki: &[u8], curve: Curve) -> Option<Vec<u8>> {
    let info = SubjectPublicKeyInfoRef::from_der(spki).ok()?;
    if info.algorithm.oid != EC_PUBLIC_KEY {
        return None;
    }
    let params = info.algorithm.parameters?;
    if params.decode_as::<ObjectIdentifier>().ok()? != curve.oid() {
        return None;
    }
    let sec1 = info.subject_public_key.as_bytes()?;
    fn on_curve<C>(sec1: &[u8]) -> Option<Vec<u8>>
    where
        C: CurveArithmetic,
        C::AffinePoint: FromEncodedPoint<C> + ToEncodedPoint<C>,
        FieldBytesSize<C>: ModulusSize,
    {
        let p = p256::elliptic_curve::PublicKey::<C>::from_sec1_bytes(sec1).ok()?;
        Some(p.as_affine().to_encoded_point(false).as_bytes().to_vec())
    }
    match curve {
        Curve::P256 => on_curve::<p256::NistP256>(sec1),
        Curve::P384 => on_curve::<p384::NistP384>(sec1),
        Curve::P521 => on_curve::<p521::NistP521>(sec1),
        Curve::Secp256k1 => on_curve::<k256::Secp256k1>(sec1),
    }
}

fn generator_of<C>() -> Vec<u8>
where
    C: CurveArithmetic,
    C::AffinePoint: ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let g: C::AffinePoint = C::ProjectivePoint::generator().into();
    g.to_encoded_point(false).as_bytes().to_vec()
}

fn points_with_x_on<C>(x: &[u8]) -> Vec<Vec<u8>>
where
    C: CurveArithmetic,
    C::AffinePoint: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    [0x02u8, 0x03]
        .into_iter()
        .filter_map(|tag| {
            let compressed = EncodedPoint::<C>::from_bytes([&[tag], x].concat()).ok()?;
            let point: Option<C::AffinePoint> =
                C::AffinePoint::from_encoded_point(&compressed).into();
            ec_point_attribute(point?.to_encoded_point(false).as_bytes()).ok()
        })
        .collect()
}

fn internal(e: impl std::fmt::Display) -> KmsError {
    KmsError::Internal(format!("key encoding: {e}"))
}

/// Encode into an exactly-sized zeroizing buffer (no reallocation copies left behind).
fn encode_secret(v: &impl Encode) -> Result<Zeroizing<Vec<u8>>> {
    let len = usize::try_from(v.encoded_len().map_err(internal)?).map_err(internal)?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    v.encode_to_slice(&mut out).map_err(internal)?;
    Ok(out)
}

/// The uncompressed point inside `CKA_EC_POINT` (a DER OCTET STRING; some tokens give it raw).
fn ec_point(curve: Curve, attr: &[u8]) -> Result<&[u8]> {
    let point = OctetStringRef::from_der(attr)
        .map(|o| o.as_bytes())
        .unwrap_or(attr);
    if point.len() != 1 + 2 * curve.field_len() || point[0] != 4 {
        return Err(internal(
            "CKA_EC_POINT is not an uncompressed point of its curve",
        ));
    }
    Ok(point)
}

/// `CKA_EC_POINT` for an uncompressed point (used to import test keys).
pub fn ec_point_attribute(point: &[u8]) -> Result<Vec<u8>> {
    OctetStringRef::new(point)
        .and_then(|o| o.to_der())
        .map_err(internal)
}

/// DER SubjectPublicKeyInfo (RFC 5280) of a public key as the token holds it.
pub fn spki_der(key: &PublicParts) -> Result<Vec<u8>> {
    match key {
        PublicParts::Rsa { modulus, exponent } => {
            let pkcs1 = pkcs1::RsaPublicKey {
                modulus: UintRef::new(modulus).map_err(internal)?,
                public_exponent: UintRef::new(exponent).map_err(internal)?,
            }
            .to_der()
            .map_err(internal)?;
            SubjectPublicKeyInfoRef {
                algorithm: AlgorithmIdentifierRef {
                    oid: RSA_ENCRYPTION,
                    parameters: Some(AnyRef::NULL),
                },
                subject_public_key: BitStringRef::from_bytes(&pkcs1).map_err(internal)?,
            }
            .to_der()
            .map_err(internal)
        }
        PublicParts::Ec { params, point } => {
            let curve = Curve::from_params(params).ok_or_else(|| internal("unknown curve"))?;
            let oid = curve.oid();
            SubjectPublicKeyInfoRef {
                algorithm: AlgorithmIdentifierRef {
                    oid: EC_PUBLIC_KEY,
                    parameters: Some(AnyRef::from(&oid)),
                },
                subject_public_key: BitStringRef::from_bytes(ec_point(curve, point)?)
                    .map_err(internal)?,
            }
            .to_der()
            .map_err(internal)
        }
        // RFC 8410: no parameters, the key's 32 bytes.
        PublicParts::Ed25519 { key } => bare_spki(ID_ED25519, key),
        // ML-DSA in X.509 (IETF LAMPS profile): no parameters, the encoded public key.
        PublicParts::MlDsa { set, key } => bare_spki(
            match set {
                MlDsaSet::MlDsa44 => ID_ML_DSA_44,
                MlDsaSet::MlDsa65 => ID_ML_DSA_65,
                MlDsaSet::MlDsa87 => ID_ML_DSA_87,
            },
            key,
        ),
        // ML-KEM in X.509 (IETF LAMPS profile): no parameters, the encapsulation key.
        PublicParts::MlKem { set, key } => bare_spki(
            match set {
                MlKemSet::MlKem512 => ID_ML_KEM_512,
                MlKemSet::MlKem768 => ID_ML_KEM_768,
                MlKemSet::MlKem1024 => ID_ML_KEM_1024,
            },
            key,
        ),
    }
}

const ID_ML_KEM_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.4.1");
const ID_ML_KEM_768: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.4.2");
const ID_ML_KEM_1024: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.4.3");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ID_ML_DSA_44: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.17");
const ID_ML_DSA_65: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18");
const ID_ML_DSA_87: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.19");

/// A SubjectPublicKeyInfo whose algorithm has no parameters.
fn bare_spki(oid: ObjectIdentifier, key: &[u8]) -> Result<Vec<u8>> {
    SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid,
            parameters: None,
        },
        subject_public_key: BitStringRef::from_bytes(key).map_err(internal)?,
    }
    .to_der()
    .map_err(internal)
}

/// DER PKCS#8 PrivateKeyInfo (RFC 5958) of an exported key pair: RSAPrivateKey (RFC 8017) or
/// ECPrivateKey (RFC 5915, with the curve and public key) inside.
pub fn pkcs8_der(pair: &ExportedPair) -> Result<Zeroizing<Vec<u8>>> {
    fn uint(b: &[u8]) -> Result<UintRef<'_>> {
        UintRef::new(b).map_err(internal)
    }
    match (&pair.public, &pair.private) {
        (
            PublicParts::Rsa { modulus, exponent },
            PrivateParts::Rsa {
                d,
                p,
                q,
                dp,
                dq,
                qinv,
            },
        ) => {
            let inner = encode_secret(&pkcs1::RsaPrivateKey {
                modulus: uint(modulus)?,
                public_exponent: uint(exponent)?,
                private_exponent: uint(d)?,
                prime1: uint(p)?,
                prime2: uint(q)?,
                exponent1: uint(dp)?,
                exponent2: uint(dq)?,
                coefficient: uint(qinv)?,
                other_prime_infos: None,
            })?;
            encode_secret(&pkcs8::PrivateKeyInfo {
                algorithm: AlgorithmIdentifierRef {
                    oid: RSA_ENCRYPTION,
                    parameters: Some(AnyRef::NULL),
                },
                private_key: &inner,
                public_key: None,
            })
        }
        (PublicParts::Ec { params, point }, PrivateParts::Ec { scalar }) => {
            let curve = Curve::from_params(params).ok_or_else(|| internal("unknown curve"))?;
            let n = curve.field_len();
            if scalar.len() > n {
                return Err(internal("EC private value longer than the curve's scalars"));
            }
            let mut fixed = Zeroizing::new(vec![0u8; n]);
            fixed[n - scalar.len()..].copy_from_slice(scalar);
            let oid = curve.oid();
            let inner = encode_secret(&sec1::EcPrivateKey {
                private_key: &fixed,
                parameters: Some(sec1::EcParameters::NamedCurve(oid)),
                public_key: Some(ec_point(curve, point)?),
            })?;
            encode_secret(&pkcs8::PrivateKeyInfo {
                algorithm: AlgorithmIdentifierRef {
                    oid: EC_PUBLIC_KEY,
                    parameters: Some(AnyRef::from(&oid)),
                },
                private_key: &inner,
                public_key: None,
            })
        }
        _ => Err(internal("mismatched key pair components")),
    }
}

/// Ecdsa-Sig-Value (RFC 3279 §2.2.3).
#[derive(der::Sequence)]
struct EcdsaSig<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// The token's raw r‖s → DER, as KMS returns ECDSA signatures.
pub fn ecdsa_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return Err(internal("ECDSA signature from the token has an odd length"));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    EcdsaSig {
        r: UintRef::new(r).map_err(internal)?,
        s: UintRef::new(s).map_err(internal)?,
    }
    .to_der()
    .map_err(internal)
}

/// Strict DER (no BER, no trailing bytes, minimal non-negative integers) → fixed-width r‖s for
/// the token. `None` if the signature is malformed or an integer is zero or too long.
pub fn ecdsa_from_der(der: &[u8], field_len: usize) -> Option<Vec<u8>> {
    let sig = EcdsaSig::from_der(der).ok()?;
    let mut raw = vec![0u8; 2 * field_len];
    for (i, v) in [sig.r.as_bytes(), sig.s.as_bytes()].into_iter().enumerate() {
        if v.len() > field_len || v.iter().all(|b| *b == 0) {
            return None;
        }
        let end = (i + 1) * field_len;
        raw[end - v.len()..end].copy_from_slice(v);
    }
    Some(raw)
}

/// DER DigestInfo (RFC 8017 §9.2) for RSASSA-PKCS1-v1_5: the fixed prefix ‖ digest.
pub fn digest_info(hash: HashAlg, digest: &[u8]) -> Vec<u8> {
    let prefix: &[u8] = match hash {
        HashAlg::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        HashAlg::Sha224 => &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x04, 0x05, 0x00, 0x04, 0x1c,
        ],
        HashAlg::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlg::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlg::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    };
    [prefix, digest].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_round_trip_and_strictness() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading 0x00 in DER
        raw[63] = 1;
        let der = ecdsa_to_der(&raw).unwrap();
        assert_eq!(ecdsa_from_der(&der, 32).unwrap(), raw);
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(ecdsa_from_der(&trailing, 32).is_none());
        // r = 0 and a BER long-form length are rejected.
        assert!(ecdsa_from_der(&[0x30, 0x06, 2, 1, 0, 2, 1, 1], 32).is_none());
        assert!(ecdsa_from_der(&[0x30, 0x81, 0x06, 2, 1, 1, 2, 1, 1], 32).is_none());
    }

    #[test]
    fn points_with_x_are_the_two_points_of_opposite_y() {
        for c in [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1] {
            let n = c.field_len();
            let g = c.generator();
            assert_eq!((g.len(), g[0]), (1 + 2 * n, 4), "{c:?}");
            let points = c.points_with_x()(&g[1..1 + n]);
            assert_eq!(points.len(), 2, "{c:?}");
            assert!(points.contains(&ec_point_attribute(&g).unwrap()), "{c:?}");
            let ys: Vec<&[u8]> = points
                .iter()
                .map(|p| ec_point(c, p).map(|p| &p[1 + n..]).unwrap())
                .collect();
            assert_ne!(ys[0], ys[1]);
            assert!(ys.iter().all(|y| y.len() == n));
            // Not every x is on the curve; a wrong-length x never is.
            let off_curve = (0u8..32).any(|i| {
                let mut x = vec![0u8; n];
                x[n - 1] = i;
                c.points_with_x()(&x).is_empty()
            });
            assert!(off_curve, "{c:?}");
            assert!(c.points_with_x()(&g[1..n]).is_empty());
        }
    }

    #[test]
    fn digest_info_matches_der_lengths() {
        for h in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let di = digest_info(h, &vec![0; h.output_len()]);
            assert_eq!(di[1] as usize + 2, di.len());
        }
    }
}
