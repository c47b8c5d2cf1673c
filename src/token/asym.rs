//! Asymmetric and HMAC keys in the token: key-pair and HMAC key generation, signatures over
//! host-computed digests, raw RSA (OAEP is done on the host, see `kms::oaep`), HMAC, public
//! key attributes, and exportable data key pairs (session objects destroyed after reading).

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, KeyType, MlDsaParameterSetType, MlKemParameterSetType, ObjectClass,
    ObjectHandle, ParameterSetType,
};
use cryptoki::session::Session;
use zeroize::Zeroizing;

use super::secret::SecretReader;
use super::{FaultKind, ObjectKind, Result, Token, TokenError};

/// `CKM_RSA_PKCS_OAEP` with `hash`, MGF1 of the same hash and no label (AWS's RSAES_OAEP_*).
pub(super) fn oaep(hash: HashAlg) -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        hash.mechanism(),
        hash.mgf(),
        PkcsOaepSource::empty(),
    ))
}

/// Whether the token does RSA-OAEP with a hash itself, learned on first use (SoftHSM 2.6.1:
/// SHA-1 only; Kryoptic: both). Where it cannot, OAEP is done on the host over raw RSA.
#[derive(Default)]
pub(super) struct OaepSupport {
    /// Per hash (SHA-1, SHA-256): 0 not known yet, 1 in the token, 2 not in the token.
    state: [std::sync::atomic::AtomicU8; 2],
}

impl OaepSupport {
    fn slot(hash: HashAlg) -> Option<usize> {
        match hash {
            HashAlg::Sha1 => Some(0),
            HashAlg::Sha256 => Some(1),
            _ => None,
        }
    }

    fn get(&self, hash: HashAlg) -> u8 {
        Self::slot(hash).map_or(2, |i| {
            self.state[i].load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    fn set(&self, hash: HashAlg, native: bool) {
        if let Some(i) = Self::slot(hash) {
            let v = if native { 1 } else { 2 };
            self.state[i].store(v, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Refusals that mean "this token does not do OAEP with that hash" (SoftHSM answers
/// CKR_MECHANISM_PARAM_INVALID, Kryoptic may answer CKR_GENERAL_ERROR).
fn is_oaep_refusal(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::MechanismInvalid
                | RvError::MechanismParamInvalid
                | RvError::FunctionNotSupported
                | RvError::ArgumentsBad
                | RvError::GeneralError,
            _
        )
    )
}

/// Encrypt with the public key `key` under native OAEP, recording whether the token can.
fn oaep_encrypt(
    support: &OaepSupport,
    s: &Session,
    key: ObjectHandle,
    hash: HashAlg,
    data: &[u8],
) -> Result<Option<Vec<u8>>> {
    let known = support.get(hash);
    if known == 2 {
        return Ok(None);
    }
    match s.encrypt(&oaep(hash), key, data) {
        Ok(ct) => {
            support.set(hash, true);
            Ok(Some(ct))
        }
        Err(e) if known == 0 && is_oaep_refusal(&e) => {
            tracing::info!(
                ?hash,
                "the token has no RSA-OAEP with this hash: OAEP on the host"
            );
            support.set(hash, false);
            Ok(None)
        }
        Err(e) => Err(TokenError::ck("C_Encrypt", e)),
    }
}

/// Hash functions, as used by PSS parameters and HMAC mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub(super) fn mechanism(self) -> MechanismType {
        match self {
            HashAlg::Sha1 => MechanismType::SHA1,
            HashAlg::Sha224 => MechanismType::SHA224,
            HashAlg::Sha256 => MechanismType::SHA256,
            HashAlg::Sha384 => MechanismType::SHA384,
            HashAlg::Sha512 => MechanismType::SHA512,
        }
    }

    pub(super) fn mgf(self) -> PkcsMgfType {
        match self {
            HashAlg::Sha1 => PkcsMgfType::MGF1_SHA1,
            HashAlg::Sha224 => PkcsMgfType::MGF1_SHA224,
            HashAlg::Sha256 => PkcsMgfType::MGF1_SHA256,
            HashAlg::Sha384 => PkcsMgfType::MGF1_SHA384,
            HashAlg::Sha512 => PkcsMgfType::MGF1_SHA512,
        }
    }

    pub(super) fn hmac_mechanism(self) -> MechanismType {
        match self {
            HashAlg::Sha1 => MechanismType::SHA1_HMAC,
            HashAlg::Sha224 => MechanismType::SHA224_HMAC,
            HashAlg::Sha256 => MechanismType::SHA256_HMAC,
            HashAlg::Sha384 => MechanismType::SHA384_HMAC,
            HashAlg::Sha512 => MechanismType::SHA512_HMAC,
        }
    }

    fn hmac(self) -> Mechanism<'static> {
        match self {
            HashAlg::Sha1 => Mechanism::Sha1Hmac,
            HashAlg::Sha224 => Mechanism::Sha224Hmac,
            HashAlg::Sha256 => Mechanism::Sha256Hmac,
            HashAlg::Sha384 => Mechanism::Sha384Hmac,
            HashAlg::Sha512 => Mechanism::Sha512Hmac,
        }
    }
}

/// A signature mechanism over a digest computed (and, for PKCS#1, DER-wrapped) on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMech {
    /// `CKM_ECDSA`: the signature is raw r‖s.
    Ecdsa,
    /// `CKM_RSA_PKCS` over a DigestInfo.
    RsaPkcs1,
    /// `CKM_RSA_PKCS_PSS` with MGF1 of the same hash and salt length = hash length.
    RsaPss(HashAlg),
    /// `CKM_EDDSA`, pure Ed25519 over the message (RFC 8032).
    Eddsa,
    /// `CKM_ML_DSA` (FIPS 204) over the message, empty context, hedged where the token can.
    MlDsa,
}

impl SignMech {
    pub(super) fn mechanism(self) -> Mechanism<'static> {
        match self {
            SignMech::Ecdsa => Mechanism::Ecdsa,
            SignMech::RsaPkcs1 => Mechanism::RsaPkcs,
            SignMech::RsaPss(h) => Mechanism::RsaPkcsPss(PkcsPssParams {
                hash_alg: h.mechanism(),
                mgf: h.mgf(),
                s_len: (h.output_len() as u64).into(),
            }),
            SignMech::Eddsa => Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            SignMech::MlDsa => {
                Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None))
            }
        }
    }
}

/// A PKCS #11 3.2 parameter set enum: its variants, their `CKP_*` values and public key
/// lengths in bytes.
macro_rules! parameter_sets {
    ($(#[$doc:meta])* $name:ident: $ckp:ident { $($variant:ident = $value:ident, $len:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];

            fn parameter_set(self) -> ParameterSetType {
                ParameterSetType::from(match self { $($name::$variant => $ckp::$value),+ })
            }

            fn from_parameter_set(p: ParameterSetType) -> Option<$name> {
                Self::ALL.iter().copied().find(|s| s.parameter_set() == p)
            }

            /// The public (encapsulation) key's length in bytes.
            pub fn public_len(self) -> usize {
                match self { $($name::$variant => $len),+ }
            }
        }
    };
}

parameter_sets!(
    /// The ML-DSA parameter sets (FIPS 204).
    MlDsaSet: MlDsaParameterSetType {
        MlDsa44 = ML_DSA_44, 1312,
        MlDsa65 = ML_DSA_65, 1952,
        MlDsa87 = ML_DSA_87, 2592,
    }
);

parameter_sets!(
    /// The ML-KEM parameter sets (FIPS 203).
    MlKemSet: MlKemParameterSetType {
        MlKem512 = ML_KEM_512, 800,
        MlKem768 = ML_KEM_768, 1184,
        MlKem1024 = ML_KEM_1024, 1568,
    }
);

impl MlKemSet {
    /// The ciphertext's length in bytes.
    pub fn ciphertext_len(self) -> usize {
        match self {
            MlKemSet::MlKem512 => 768,
            MlKemSet::MlKem768 => 1088,
            MlKemSet::MlKem1024 => 1568,
        }
    }
}

/// The length of an ML-KEM shared secret.
pub const ML_KEM_SECRET_LEN: usize = 32;

fn ml_kem_secret_template() -> [Attribute; 12] {
    readable_secret_template(ML_KEM_SECRET_LEN)
}

fn take_ml_kem_secret(
    secrets: &SecretReader,
    s: &Session,
    h: ObjectHandle,
) -> Result<Zeroizing<Vec<u8>>> {
    take_secret(
        Some(secrets),
        s,
        h,
        ML_KEM_SECRET_LEN,
        "the shared secret is not 32 bytes",
    )
}

/// `CKA_EC_PARAMS` of edwards25519: the DER of RFC 8410's id-Ed25519 (1.3.101.112).
pub const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// What kind of key pair to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairSpec {
    Rsa {
        bits: u32,
    },
    /// `params` = DER of the named curve's OID (`CKA_EC_PARAMS`).
    Ec {
        params: Vec<u8>,
    },
    /// Ed25519 (`CKK_EC_EDWARDS` on edwards25519).
    Ed25519,
    MlDsa(MlDsaSet),
    MlKem(MlKemSet),
}

/// What a key pair is for; the token objects only allow that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairUse {
    Sign,
    Encrypt,
    /// ECDH key agreement (`CKA_DERIVE` on the private key only).
    Agree,
    /// ML-KEM (`CKA_ENCAPSULATE` on the public key, `CKA_DECAPSULATE` on the private key).
    Kem,
}

/// Public key attributes as the token holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicParts {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    /// `point` is `CKA_EC_POINT`: the DER OCTET STRING around the uncompressed point.
    Ec {
        params: Vec<u8>,
        point: Vec<u8>,
    },
    /// The 32-byte Ed25519 public key (RFC 8032).
    Ed25519 {
        key: Vec<u8>,
    },
    /// The encoded ML-DSA public key (FIPS 204), `CKA_VALUE`.
    MlDsa {
        set: MlDsaSet,
        key: Vec<u8>,
    },
    /// The ML-KEM encapsulation key (FIPS 203), `CKA_VALUE`.
    MlKem {
        set: MlKemSet,
        key: Vec<u8>,
    },
}

/// Private key components of an exportable (data) key pair.
pub enum PrivateParts {
    Rsa {
        d: Zeroizing<Vec<u8>>,
        p: Zeroizing<Vec<u8>>,
        q: Zeroizing<Vec<u8>>,
        dp: Zeroizing<Vec<u8>>,
        dq: Zeroizing<Vec<u8>>,
        qinv: Zeroizing<Vec<u8>>,
    },
    Ec {
        scalar: Zeroizing<Vec<u8>>,
    },
}

pub struct ExportedPair {
    pub public: PublicParts,
    pub private: PrivateParts,
}

fn pair_templates(
    spec: &PairSpec,
    usage: PairUse,
    persistent: bool,
) -> (Mechanism<'static>, Vec<Attribute>, Vec<Attribute>) {
    let sign = usage == PairUse::Sign;
    let encrypt = usage == PairUse::Encrypt;
    let agree = usage == PairUse::Agree;
    let mut public = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Token(persistent),
        Attribute::Private(false),
        Attribute::Verify(sign),
        Attribute::Encrypt(encrypt),
        Attribute::Wrap(false),
    ];
    let mut private = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Token(persistent),
        Attribute::Private(true),
        Attribute::Sensitive(persistent),
        Attribute::Extractable(!persistent),
        Attribute::Sign(sign),
        Attribute::Decrypt(encrypt),
        Attribute::Unwrap(false),
        Attribute::Derive(agree),
    ];
    let mech = match spec {
        PairSpec::Rsa { bits } => {
            public.push(Attribute::KeyType(KeyType::RSA));
            public.push(Attribute::ModulusBits(u64::from(*bits).into()));
            public.push(Attribute::PublicExponent(vec![1, 0, 1]));
            private.push(Attribute::KeyType(KeyType::RSA));
            Mechanism::RsaPkcsKeyPairGen
        }
        PairSpec::Ec { params } => {
            public.push(Attribute::KeyType(KeyType::EC));
            public.push(Attribute::EcParams(params.clone()));
            private.push(Attribute::KeyType(KeyType::EC));
            Mechanism::EccKeyPairGen
        }
        PairSpec::Ed25519 => {
            public.push(Attribute::KeyType(KeyType::EC_EDWARDS));
            public.push(Attribute::EcParams(ED25519_PARAMS.to_vec()));
            private.push(Attribute::KeyType(KeyType::EC_EDWARDS));
            Mechanism::EccEdwardsKeyPairGen
        }
        PairSpec::MlDsa(set) => {
            public.push(Attribute::KeyType(KeyType::ML_DSA));
            public.push(Attribute::ParameterSet(set.parameter_set()));
            private.push(Attribute::KeyType(KeyType::ML_DSA));
            Mechanism::MlDsaKeyPairGen
        }
        PairSpec::MlKem(set) => {
            public.push(Attribute::KeyType(KeyType::ML_KEM));
            public.push(Attribute::ParameterSet(set.parameter_set()));
            public.push(Attribute::Encapsulate(usage == PairUse::Kem));
            private.push(Attribute::KeyType(KeyType::ML_KEM));
            private.push(Attribute::Decapsulate(usage == PairUse::Kem));
            Mechanism::MlKemKeyPairGen
        }
    };
    (mech, public, private)
}

pub(super) fn read_public(s: &Session, h: ObjectHandle) -> Result<PublicParts> {
    let attrs = s
        .get_attributes(
            h,
            &[
                AttributeType::KeyType,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcParams,
                AttributeType::EcPoint,
            ],
        )
        .map_err(|e| TokenError::ck("C_GetAttributeValue", e))?;
    let (mut kind, mut n, mut e, mut params, mut point) = (None, None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(k) => kind = Some(k),
            Attribute::Modulus(v) => n = Some(v),
            Attribute::PublicExponent(v) => e = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    if kind == Some(KeyType::ML_DSA) || kind == Some(KeyType::ML_KEM) {
        return read_lattice_public(s, h, kind == Some(KeyType::ML_KEM));
    }
    match (n, e, params, point) {
        (Some(modulus), Some(exponent), _, _) => Ok(PublicParts::Rsa { modulus, exponent }),
        (_, _, Some(_), Some(point)) if kind == Some(KeyType::EC_EDWARDS) => {
            // CKA_EC_POINT of an Edwards key: the 32 bytes, or a DER OCTET STRING of them
            // (tokens differ).
            let key = match point.as_slice() {
                [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.to_vec(),
                raw if raw.len() == 32 => raw.to_vec(),
                _ => return Err(TokenError::Rejected("Ed25519 public key of another length")),
            };
            Ok(PublicParts::Ed25519 { key })
        }
        (_, _, Some(params), Some(point)) => Ok(PublicParts::Ec { params, point }),
        _ => Err(TokenError::Rejected(
            "public key object has no RSA or EC attributes",
        )),
    }
}

/// An ML-DSA or ML-KEM public key: its parameter set and encoded value.
fn read_lattice_public(s: &Session, h: ObjectHandle, kem: bool) -> Result<PublicParts> {
    let attrs = s
        .get_attributes(h, &[AttributeType::ParameterSet, AttributeType::Value])
        .map_err(|e| TokenError::ck("C_GetAttributeValue", e))?;
    let (mut set, mut key) = (None, None);
    for a in attrs {
        match a {
            Attribute::ParameterSet(p) => set = Some(p),
            Attribute::Value(v) => key = Some(v),
            _ => {}
        }
    }
    let unknown = TokenError::Rejected("lattice public key without a known parameter set");
    let (Some(set), Some(key)) = (set, key) else {
        return Err(unknown);
    };
    if kem {
        match MlKemSet::from_parameter_set(set) {
            Some(set) if key.len() == set.public_len() => Ok(PublicParts::MlKem { set, key }),
            _ => Err(unknown),
        }
    } else {
        match MlDsaSet::from_parameter_set(set) {
            Some(set) if key.len() == set.public_len() => Ok(PublicParts::MlDsa { set, key }),
            _ => Err(unknown),
        }
    }
}

fn read_private(secrets: &SecretReader, s: &Session, h: ObjectHandle) -> Result<PrivateParts> {
    // Straight into wiping buffers (see `token::secret`), never through cryptoki's copies.
    let parts = secrets.read(
        s,
        h,
        &[
            AttributeType::PrivateExponent,
            AttributeType::Prime1,
            AttributeType::Prime2,
            AttributeType::Exponent1,
            AttributeType::Exponent2,
            AttributeType::Coefficient,
            AttributeType::Value,
        ],
    )?;
    let Ok([d, p, q, dp, dq, qinv, value]) = <[Option<Zeroizing<Vec<u8>>>; 7]>::try_from(parts)
    else {
        return Err(TokenError::Rejected(
            "private key components are not readable",
        ));
    };
    match (d, p, q, dp, dq, qinv, value) {
        (Some(d), Some(p), Some(q), Some(dp), Some(dq), Some(qinv), _) => Ok(PrivateParts::Rsa {
            d,
            p,
            q,
            dp,
            dq,
            qinv,
        }),
        (.., Some(scalar)) => Ok(PrivateParts::Ec { scalar }),
        _ => Err(TokenError::Rejected(
            "private key components are not readable",
        )),
    }
}

/// The x-coordinate of the public point of the EC private key `private` (which must allow
/// `CKA_DERIVE`), computed in the token: `CKM_ECDH1_DERIVE` (`CKD_NULL`) with the curve's
/// generator `generator` (uncompressed) as the peer's public key gives the x-coordinate of
/// d·G, which is the public key's x. That value is public. The private scalar never leaves the
/// token.
pub(super) fn ec_public_x(s: &Session, private: ObjectHandle, generator: &[u8]) -> Result<Vec<u8>> {
    ecdh_x(None, s, private, generator).map(|x| x.to_vec())
}

/// A secret the caller receives (an ECDH x-coordinate, an ML-KEM shared secret): a readable
/// session generic secret of `len` bytes that may do nothing in the token.
fn readable_secret_template(len: usize) -> [Attribute; 12] {
    [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen((len as u64).into()),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ]
}

/// Read a secret session object (`readable_secret_template`) into a wiping buffer and destroy
/// it; `Rejected(why)` unless it has `len` bytes. With `secrets`, the value is read straight
/// into the wiping buffer (`token::secret`); without, through cryptoki (public values only).
fn take_secret(
    secrets: Option<&SecretReader>,
    s: &Session,
    h: ObjectHandle,
    len: usize,
    why: &'static str,
) -> Result<Zeroizing<Vec<u8>>> {
    let value = match secrets {
        Some(secrets) => secrets
            .read(s, h, &[AttributeType::Value])
            .map(|v| v.into_iter().next().flatten()),
        None => s
            .get_attributes(h, &[AttributeType::Value])
            .map_err(|e| TokenError::ck("C_GetAttributeValue", e))
            .map(|attrs| {
                attrs.into_iter().find_map(|a| match a {
                    Attribute::Value(v) => Some(Zeroizing::new(v)),
                    _ => None,
                })
            }),
    };
    let _ = s.destroy_object(h);
    match value? {
        Some(v) if v.len() == len => Ok(v),
        _ => Err(TokenError::Rejected(why)),
    }
}

/// ECDH in the token (`CKM_ECDH1_DERIVE`, `CKD_NULL`): the x-coordinate of d·P for the peer's
/// uncompressed point `peer`. Derived as a non-sensitive, extractable session secret (the
/// caller asked for this value), read and destroyed at once.
fn ecdh_x(
    secrets: Option<&SecretReader>,
    s: &Session,
    private: ObjectHandle,
    peer: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let field_len = peer.len().saturating_sub(1) / 2;
    let params = Ecdh1DeriveParams::new(EcKdf::null(), peer);
    let derived = s
        .derive_key(
            &Mechanism::Ecdh1Derive(params),
            private,
            &readable_secret_template(field_len),
        )
        .map_err(|e| TokenError::ck("C_DeriveKey", e))?;
    take_secret(
        secrets,
        s,
        derived,
        field_len,
        "ECDH gave no x-coordinate of the curve's length",
    )
}

/// Verification failures the token reports as a rejected signature.
fn is_bad_signature(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SignatureInvalid
                | RvError::SignatureLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange,
            _
        )
    )
}

impl Token {
    /// Generate a persistent key pair with this `CKA_ID` and label on both objects. The private
    /// key is sensitive and non-extractable; each object allows only `usage`.
    pub async fn generate_key_pair(
        &self,
        id: Vec<u8>,
        label: String,
        spec: PairSpec,
        usage: PairUse,
    ) -> Result<()> {
        self.run_keygen(move |inner, s| {
            let (mech, mut public, mut private) = pair_templates(&spec, usage, true);
            for t in [&mut public, &mut private] {
                t.push(Attribute::Id(id.clone()));
                t.push(Attribute::Label(label.clone().into_bytes()));
            }
            let (pub_h, priv_h) = s
                .generate_key_pair(&mech, &public, &private)
                .map_err(|e| TokenError::ck("C_GenerateKeyPair", e))?;
            inner.cache_insert(ObjectKind::Public, id.clone(), pub_h);
            inner.cache_insert(ObjectKind::Private, id, priv_h);
            Ok(())
        })
        .await
    }

    /// Make sure the system HMAC key with this `CKA_ID` exists (`generate_hmac_key` if it
    /// does not); true when it was created now.
    pub async fn ensure_hmac_key(&self, id: &[u8], label: &str, len: usize) -> Result<bool> {
        if self.exists(id.to_vec()).await? {
            return Ok(false);
        }
        self.generate_hmac_key(id.to_vec(), label.to_owned(), len)
            .await?;
        Ok(true)
    }

    /// Generate a persistent, non-extractable generic secret of `len` bytes for HMAC.
    pub async fn generate_hmac_key(&self, id: Vec<u8>, label: String, len: usize) -> Result<()> {
        self.run(move |inner, s| {
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::ValueLen((len as u64).into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
                Attribute::Id(id.clone()),
                Attribute::Label(label.into_bytes()),
            ];
            let h = s
                .generate_key(&Mechanism::GenericSecretKeyGen, &template)
                .map_err(|e| TokenError::ck("C_GenerateKey", e))?;
            inner.cache_insert(ObjectKind::Secret, id, h);
            Ok(())
        })
        .await
    }

    /// The public attributes of a key pair.
    pub async fn public_key(&self, id: Vec<u8>) -> Result<PublicParts> {
        self.run(move |inner, s| read_public(s, inner.handle(s, ObjectKind::Public, &id)?))
            .await
    }

    /// Sign `input` (a digest, or a DigestInfo for PKCS#1) with the private key.
    pub async fn sign(&self, id: Vec<u8>, mech: SignMech, input: Vec<u8>) -> Result<Vec<u8>> {
        self.run_known("sign", move |inner, s| {
            let key = inner.working(s, ObjectKind::Private, &id)?;
            s.sign(&mech.mechanism(), key, &input)
                .map_err(|e| TokenError::ck("C_Sign", e))
        })
        .await
    }

    /// Verify a signature over `input` with the public key: `Ok(false)` when the token rejects
    /// the signature.
    pub async fn verify(
        &self,
        id: Vec<u8>,
        mech: SignMech,
        input: Vec<u8>,
        signature: Vec<u8>,
    ) -> Result<bool> {
        self.run_known("verify", move |inner, s| {
            let key = inner.working(s, ObjectKind::Public, &id)?;
            match s.verify(&mech.mechanism(), key, &input, &signature) {
                Ok(()) => Ok(true),
                Err(e) if is_bad_signature(&e) => Ok(false),
                Err(e) => Err(TokenError::ck("C_Verify", e)),
            }
        })
        .await
    }

    /// Raw RSA with the private key (`CKM_RSA_X_509`): `block` must be exactly the modulus
    /// length and numerically below the modulus, else `Rejected`.
    pub async fn rsa_private_raw(&self, id: Vec<u8>, block: Vec<u8>) -> Result<Zeroizing<Vec<u8>>> {
        self.run_known("rsa_decrypt_raw", move |inner, s| {
            let key = inner.working(s, ObjectKind::Private, &id)?;
            let modulus = match s.get_attributes(key, &[AttributeType::Modulus]) {
                Ok(attrs) => attrs.into_iter().find_map(|a| match a {
                    Attribute::Modulus(n) => Some(n),
                    _ => None,
                }),
                Err(e) => return Err(TokenError::ck("C_GetAttributeValue", e)),
            }
            .ok_or(TokenError::Rejected("RSA private key has no modulus"))?;
            if block.len() != modulus.len() || block.as_slice() >= modulus.as_slice() {
                return Err(TokenError::Rejected(
                    "ciphertext is not an RSA block of this key",
                ));
            }
            s.decrypt(&Mechanism::RsaX509, key, &block)
                .map(Zeroizing::new)
                .map_err(|e| TokenError::ck("C_Decrypt", e))
        })
        .await
    }

    /// RSA-OAEP encryption in the token with the public key `id`; `None` when the token has no
    /// OAEP with `hash` (then the caller pads on the host and uses `rsa_public_raw`).
    pub async fn rsa_oaep_encrypt(
        &self,
        id: Vec<u8>,
        hash: HashAlg,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        self.run_known("rsa_encrypt_oaep", move |inner, s| {
            let key = inner.working(s, ObjectKind::Public, &id)?;
            oaep_encrypt(&inner.oaep, s, key, hash, &plaintext)
        })
        .await
    }

    /// RSA-OAEP decryption in the token with the private key `id`; `None` when the token has
    /// no OAEP with `hash`. A ciphertext that does not decrypt is reported with kind
    /// `BadInput`.
    pub async fn rsa_oaep_decrypt(
        &self,
        id: Vec<u8>,
        hash: HashAlg,
        ciphertext: Vec<u8>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        self.run_known("rsa_decrypt_oaep", move |inner, s| {
            let round_trip = || -> Result<bool> {
                let public = inner.working(s, ObjectKind::Public, &id)?;
                let private = inner.working(s, ObjectKind::Private, &id)?;
                let probe = [0x5au8; 16];
                Ok(match oaep_encrypt(&inner.oaep, s, public, hash, &probe)? {
                    Some(ct) => matches!(s.decrypt(&oaep(hash), private, &ct),
                        Ok(pt) if pt == probe),
                    None => false,
                })
            };
            if inner.oaep.get(hash) == 0 {
                // Learn it with the key's public half first.
                round_trip()?;
            }
            if inner.oaep.get(hash) != 1 {
                return Ok(None);
            }
            let key = inner.working(s, ObjectKind::Private, &id)?;
            match s.decrypt(&oaep(hash), key, &ciphertext) {
                Ok(pt) => Ok(Some(Zeroizing::new(pt))),
                Err(
                    e @ CkError::Pkcs11(
                        RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::DataInvalid
                        | RvError::DataLenRange,
                        _,
                    ),
                ) => Err(TokenError::Pkcs11 {
                    op: "C_Decrypt",
                    kind: FaultKind::BadInput,
                    source: e,
                }),
                // A bad ciphertext or a failing token (SoftHSM may answer CKR_GENERAL_ERROR,
                // Kryoptic answers CKR_DEVICE_ERROR for a bad padding): a round trip with the
                // same key tells them apart.
                Err(e @ CkError::Pkcs11(RvError::GeneralError | RvError::DeviceError, _)) => {
                    Err(super::bad_input_or_device("C_Decrypt", e, round_trip()?))
                }
                Err(e) => Err(TokenError::ck("C_Decrypt", e)),
            }
        })
        .await
    }

    /// Raw RSA with the public key (`CKM_RSA_X_509`).
    pub async fn rsa_public_raw(&self, id: Vec<u8>, block: Zeroizing<Vec<u8>>) -> Result<Vec<u8>> {
        self.run_known("rsa_encrypt_raw", move |inner, s| {
            let key = inner.working(s, ObjectKind::Public, &id)?;
            s.encrypt(&Mechanism::RsaX509, key, &block)
                .map_err(|e| TokenError::ck("C_Encrypt", e))
        })
        .await
    }

    /// ML-KEM encapsulation with the public key `id`: the ciphertext and the shared secret
    /// (a session object, read and destroyed here).
    pub async fn ml_kem_encapsulate(&self, id: Vec<u8>) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>)> {
        self.run_known("encapsulate_ml_kem", move |inner, s| {
            let key = inner.working(s, ObjectKind::Public, &id)?;
            let (ciphertext, secret) = s
                .encapsulate_key(&Mechanism::MlKem, key, &ml_kem_secret_template())
                .map_err(|e| TokenError::ck("C_EncapsulateKey", e))?;
            Ok((ciphertext, take_ml_kem_secret(&inner.secrets, s, secret)?))
        })
        .await
    }

    /// ML-KEM decapsulation with the private key `id`. A ciphertext of the wrong length is
    /// reported with kind `BadInput`; a malformed one of the right length gives a secret that
    /// matches nothing (ML-KEM's implicit rejection).
    pub async fn ml_kem_decapsulate(
        &self,
        id: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.run_known("decapsulate_ml_kem", move |inner, s| {
            let key = inner.working(s, ObjectKind::Private, &id)?;
            match s.decapsulate_key(
                &Mechanism::MlKem,
                key,
                &ml_kem_secret_template(),
                &ciphertext,
            ) {
                Ok(secret) => take_ml_kem_secret(&inner.secrets, s, secret),
                Err(
                    e @ CkError::Pkcs11(
                        RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::DataLenRange
                        | RvError::ArgumentsBad,
                        _,
                    ),
                ) => Err(TokenError::Pkcs11 {
                    op: "C_DecapsulateKey",
                    kind: FaultKind::BadInput,
                    source: e,
                }),
                Err(e) => Err(TokenError::ck("C_DecapsulateKey", e)),
            }
        })
        .await
    }

    /// ECDH with the private key `id` and the peer's uncompressed point: the shared secret
    /// (the x-coordinate), as DeriveSharedSecret returns it.
    pub async fn ecdh(&self, id: Vec<u8>, peer_point: Vec<u8>) -> Result<Zeroizing<Vec<u8>>> {
        self.run_known("derive_ecdh", move |inner, s| {
            let key = inner.working(s, ObjectKind::Private, &id)?;
            ecdh_x(Some(&inner.secrets), s, key, &peer_point)
        })
        .await
    }

    /// HMAC of `message` with a secret key.
    pub async fn hmac(&self, id: Vec<u8>, hash: HashAlg, message: Vec<u8>) -> Result<Vec<u8>> {
        self.run_known("hmac", move |inner, s| {
            let key = inner.working(s, ObjectKind::Secret, &id)?;
            s.sign(&hash.hmac(), key, &message)
                .map_err(|e| TokenError::ck("C_Sign", e))
        })
        .await
    }

    /// Generate a key pair in the token as extractable session objects, read its components and
    /// destroy the objects: the token's key generation for data key pairs.
    pub async fn generate_exportable_pair(&self, spec: PairSpec) -> Result<ExportedPair> {
        self.run_keygen(move |inner, s| {
            let (mech, public, private) = pair_templates(&spec, PairUse::Sign, false);
            let (pub_h, priv_h) = s
                .generate_key_pair(&mech, &public, &private)
                .map_err(|e| TokenError::ck("C_GenerateKeyPair", e))?;
            let pair = read_public(s, pub_h).and_then(|public| {
                Ok(ExportedPair {
                    public,
                    private: read_private(&inner.secrets, s, priv_h)?,
                })
            });
            for h in [priv_h, pub_h] {
                if let Err(e) = s.destroy_object(h) {
                    tracing::warn!(error = %e, "could not destroy a data key pair session object");
                }
            }
            pair
        })
        .await
    }

    /// Test support: import a public key as a session object with this `CKA_ID`, so tests can
    /// run the production verification path (`kms::verify_signature`) over published test
    /// vectors. Never used by the server.
    pub async fn import_public_key_for_tests(&self, id: Vec<u8>, key: PublicParts) -> Result<()> {
        self.run(move |inner, s| {
            let mut t = vec![
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::Encrypt(true),
                Attribute::Id(id.clone()),
            ];
            match key {
                PublicParts::Rsa { modulus, exponent } => t.extend([
                    Attribute::KeyType(KeyType::RSA),
                    Attribute::Modulus(modulus),
                    Attribute::PublicExponent(exponent),
                ]),
                PublicParts::Ec { params, point } => t.extend([
                    Attribute::KeyType(KeyType::EC),
                    Attribute::EcParams(params),
                    Attribute::EcPoint(point),
                ]),
                PublicParts::Ed25519 { .. }
                | PublicParts::MlDsa { .. }
                | PublicParts::MlKem { .. } => {
                    return Err(TokenError::Rejected("test vectors are RSA and EC only"))
                }
            }
            let h = s
                .create_object(&t)
                .map_err(|e| TokenError::ck("C_CreateObject", e))?;
            inner.cache_insert(ObjectKind::Public, id, h);
            Ok(())
        })
        .await
    }

    /// Test support: import an HMAC key as a session object with this `CKA_ID`, so tests can
    /// run the production MAC verification path (`kms::verify_mac`). Never used by the server.
    pub async fn import_hmac_key_for_tests(
        &self,
        id: Vec<u8>,
        key: Zeroizing<Vec<u8>>,
    ) -> Result<()> {
        self.run(move |inner, s| {
            let t = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Verify(true),
                Attribute::Value(key.to_vec()),
                Attribute::Id(id.clone()),
            ];
            let h = s
                .create_object(&t)
                .map_err(|e| TokenError::ck("C_CreateObject", e))?;
            inner.cache_insert(ObjectKind::Secret, id, h);
            Ok(())
        })
        .await
    }
}
