//! Asymmetric and HMAC operations: Sign, Verify, GetPublicKey, RSA Encrypt/Decrypt,
//! GenerateDataKeyPair(WithoutPlaintext), GenerateMac and VerifyMac.
//!
//! Private and HMAC keys stay in the token. The host hashes RAW messages, builds PKCS#1
//! DigestInfo, converts ECDSA signatures between the token's r‖s and DER (`keyformat`), and
//! does OAEP around raw RSA (`oaep`). Which token mechanism runs an algorithm is decided here
//! from the token's probed [`Capabilities`]; an algorithm the token cannot do answers
//! `UnsupportedOperation`, never a different algorithm.

use crate::operations::Action;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::authz::{AccountToken, Op, Permitted};
use super::blob::EncryptionContext;
use super::crypto::{require_symmetric, Decrypted, Encrypted};
use super::ids::KeyRef;
use super::keyformat::{self, Curve};
use super::{oaep, require_enabled, texts, token_object_id, Kms, KmsError, RequestContext, Result};
use crate::model::{
    DataKeyPairSpec, EncryptionAlgorithm, KeySpec, KeyUsage, MacAlgorithm, MessageType,
    SigningAlgorithm,
};
use crate::store::KeyRecord;
use crate::token::{
    Capabilities, FaultKind, HashAlg, MlDsaSet, MlKemSet, PairSpec, PairUse, SignMech, Token,
};

/// Largest RAW message Sign/Verify/GenerateMac/VerifyMac accept.
pub const MAX_MESSAGE: usize = 4096;

pub struct Signed {
    pub key_arn: String,
    pub signature: Vec<u8>,
}

pub struct PublicKeyInfo {
    pub key_arn: String,
    pub public_key: Vec<u8>,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
}

pub struct DataKeyPair {
    pub key_arn: String,
    pub public_key: Vec<u8>,
    /// None for GenerateDataKeyPairWithoutPlaintext.
    pub private_key_plaintext: Option<Zeroizing<Vec<u8>>>,
    pub private_key_ciphertext: Vec<u8>,
    pub material_id: String,
}

/// What CreateKey makes in the token for a spec and usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Material {
    Aes,
    Pair(PairSpec, PairUse),
    /// A generic secret of this many bytes.
    Hmac(usize),
}

pub(crate) fn curve(spec: KeySpec) -> Option<Curve> {
    match spec {
        KeySpec::EccNistP256 => Some(Curve::P256),
        KeySpec::EccNistP384 => Some(Curve::P384),
        KeySpec::EccNistP521 => Some(Curve::P521),
        KeySpec::EccSecgP256k1 => Some(Curve::Secp256k1),
        _ => None,
    }
}

fn unsupported(what: impl std::fmt::Display) -> KmsError {
    KmsError::UnsupportedOperation(texts::mechanism_unsupported(&what.to_string()))
}

/// Validate a CreateKey KeySpec/KeyUsage combination as AWS does and decide what the token
/// must generate; `UnsupportedOperation` for what AWS allows but this server or token cannot do.
pub(crate) fn plan_material(
    caps: &Capabilities,
    spec: KeySpec,
    usage: Option<KeyUsage>,
) -> Result<(KeyUsage, Material)> {
    use KeyUsage as U;
    let invalid =
        |u: KeyUsage| KmsError::Validation(texts::key_usage_incompatible(u, spec.as_str()));
    if spec == KeySpec::SymmetricDefault {
        return match usage.unwrap_or(U::EncryptDecrypt) {
            U::EncryptDecrypt => Ok((U::EncryptDecrypt, Material::Aes)),
            u => Err(invalid(u)),
        };
    }
    let Some(usage) = usage else {
        return Err(KmsError::Validation(texts::KEY_USAGE_REQUIRED.into()));
    };
    if let Some(bits) = spec.rsa_bits() {
        let pair_use = match usage {
            U::EncryptDecrypt => PairUse::Encrypt,
            U::SignVerify => PairUse::Sign,
            u => return Err(invalid(u)),
        };
        if !caps.rsa_bits(bits) {
            return Err(unsupported(format!("KeySpec {spec}")));
        }
        return Ok((usage, Material::Pair(PairSpec::Rsa { bits }, pair_use)));
    }
    if let Some(c) = curve(spec) {
        let params = c.ec_params()?;
        let on_curve = caps.ec_curve(&params);
        return match usage {
            U::SignVerify if on_curve => Ok((
                usage,
                Material::Pair(PairSpec::Ec { params }, PairUse::Sign),
            )),
            U::SignVerify => Err(unsupported(format!("KeySpec {spec}"))),
            // AWS offers key agreement on the NIST curves (not secp256k1).
            U::KeyAgreement if spec != KeySpec::EccSecgP256k1 && on_curve => {
                if !caps.ecdh_derive {
                    return Err(unsupported("ECDH key agreement (CKM_ECDH1_DERIVE)"));
                }
                Ok((
                    usage,
                    Material::Pair(PairSpec::Ec { params }, PairUse::Agree),
                ))
            }
            U::KeyAgreement if spec != KeySpec::EccSecgP256k1 => {
                Err(unsupported(format!("KeySpec {spec}")))
            }
            u => Err(invalid(u)),
        };
    }
    let signing_only = |pair: PairSpec, available: bool| match usage {
        U::SignVerify if available => Ok((usage, Material::Pair(pair, PairUse::Sign))),
        U::SignVerify => Err(unsupported(format!("KeySpec {spec}"))),
        u => Err(invalid(u)),
    };
    let kem = |set: MlKemSet| match usage {
        U::EncapsulateDecapsulate if caps.ml_kem => {
            Ok((usage, Material::Pair(PairSpec::MlKem(set), PairUse::Kem)))
        }
        U::EncapsulateDecapsulate => Err(unsupported(format!("KeySpec {spec}"))),
        u => Err(invalid(u)),
    };
    match spec {
        KeySpec::MlKem512 => return kem(MlKemSet::MlKem512),
        KeySpec::MlKem768 => return kem(MlKemSet::MlKem768),
        KeySpec::MlKem1024 => return kem(MlKemSet::MlKem1024),
        KeySpec::EccNistEdwards25519 => return signing_only(PairSpec::Ed25519, caps.eddsa),
        KeySpec::MlDsa44 => return signing_only(PairSpec::MlDsa(MlDsaSet::MlDsa44), caps.ml_dsa),
        KeySpec::MlDsa65 => return signing_only(PairSpec::MlDsa(MlDsaSet::MlDsa65), caps.ml_dsa),
        KeySpec::MlDsa87 => return signing_only(PairSpec::MlDsa(MlDsaSet::MlDsa87), caps.ml_dsa),
        _ => {}
    }
    if let Some(alg) = spec.mac_algorithm() {
        return match usage {
            U::GenerateVerifyMac if caps.secret_keygen && caps.hmac(mac_hash(alg)) => {
                Ok((usage, Material::Hmac(mac_hash(alg).output_len())))
            }
            U::GenerateVerifyMac => Err(unsupported(format!("KeySpec {spec}"))),
            u => Err(invalid(u)),
        };
    }
    Err(KmsError::UnsupportedOperation(texts::key_spec_unsupported(
        spec.as_str(),
    )))
}

fn mac_hash(alg: MacAlgorithm) -> HashAlg {
    match alg {
        MacAlgorithm::HmacSha224 => HashAlg::Sha224,
        MacAlgorithm::HmacSha256 => HashAlg::Sha256,
        MacAlgorithm::HmacSha384 => HashAlg::Sha384,
        MacAlgorithm::HmacSha512 => HashAlg::Sha512,
    }
}

fn oaep_hash(alg: Option<EncryptionAlgorithm>) -> Option<HashAlg> {
    match alg {
        Some(EncryptionAlgorithm::RsaesOaepSha1) => Some(HashAlg::Sha1),
        Some(EncryptionAlgorithm::RsaesOaepSha256) => Some(HashAlg::Sha256),
        _ => None,
    }
}

/// The token mechanism and its input for a signing algorithm and message: RAW messages are
/// hashed here, DIGEST messages must have the hash's length; PKCS#1 gets its DigestInfo.
fn sign_input(
    caps: &Capabilities,
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
) -> Result<(SignMech, Vec<u8>)> {
    use SigningAlgorithm as S;
    let wrong_type = || {
        Err(KmsError::Validation(texts::message_type_invalid(
            message_type.as_str(),
            alg.as_str(),
        )))
    };
    // Algorithms that sign the message itself: the token gets it whole.
    match alg {
        S::Ed25519Sha512 | S::MlDsaShake256 => {
            let (mech, available) = if alg == S::Ed25519Sha512 {
                (SignMech::Eddsa, caps.eddsa)
            } else {
                (SignMech::MlDsa, caps.ml_dsa)
            };
            if !available {
                return Err(unsupported(format!("Signing algorithm {alg}")));
            }
            return match message_type {
                MessageType::Raw => Ok((mech, message.to_vec())),
                // PKCS #11 3.2's CKM_ML_DSA signs messages; it takes no external μ.
                MessageType::ExternalMu if mech == SignMech::MlDsa => {
                    Err(unsupported("MessageType EXTERNAL_MU"))
                }
                _ => wrong_type(),
            };
        }
        // Ed25519ph over the caller's SHA-512 digest: CKM_EDDSA with phFlag hashes its input
        // itself, so a digest cannot be signed in the token.
        S::Ed25519PhSha512 => {
            return match message_type {
                MessageType::Digest if message.len() == HashAlg::Sha512.output_len() => {
                    Err(unsupported(format!("Signing algorithm {alg}")))
                }
                MessageType::Digest => Err(KmsError::Validation(texts::digest_invalid_length(
                    alg.as_str(),
                ))),
                _ => wrong_type(),
            };
        }
        _ => {}
    }
    let (mech, hash, available) = match alg {
        S::EcdsaSha256 => (SignMech::Ecdsa, HashAlg::Sha256, caps.ecdsa),
        S::EcdsaSha384 => (SignMech::Ecdsa, HashAlg::Sha384, caps.ecdsa),
        S::EcdsaSha512 => (SignMech::Ecdsa, HashAlg::Sha512, caps.ecdsa),
        S::RsassaPkcs1V15Sha256 => (SignMech::RsaPkcs1, HashAlg::Sha256, caps.rsa_pkcs1),
        S::RsassaPkcs1V15Sha384 => (SignMech::RsaPkcs1, HashAlg::Sha384, caps.rsa_pkcs1),
        S::RsassaPkcs1V15Sha512 => (SignMech::RsaPkcs1, HashAlg::Sha512, caps.rsa_pkcs1),
        S::RsassaPssSha256 => (
            SignMech::RsaPss(HashAlg::Sha256),
            HashAlg::Sha256,
            caps.rsa_pss,
        ),
        S::RsassaPssSha384 => (
            SignMech::RsaPss(HashAlg::Sha384),
            HashAlg::Sha384,
            caps.rsa_pss,
        ),
        S::RsassaPssSha512 => (
            SignMech::RsaPss(HashAlg::Sha512),
            HashAlg::Sha512,
            caps.rsa_pss,
        ),
        other => return Err(unsupported(format!("Signing algorithm {other}"))),
    };
    if !available {
        return Err(unsupported(format!("Signing algorithm {alg}")));
    }
    let digest = match message_type {
        MessageType::Raw => oaep::hash(hash, &[message]),
        MessageType::Digest if message.len() == hash.output_len() => message.to_vec(),
        MessageType::Digest => {
            return Err(KmsError::Validation(texts::digest_invalid_length(
                alg.as_str(),
            )))
        }
        MessageType::ExternalMu => {
            return Err(KmsError::Validation(texts::message_type_invalid(
                message_type.as_str(),
                alg.as_str(),
            )))
        }
    };
    Ok(match mech {
        SignMech::RsaPkcs1 => (mech, keyformat::digest_info(hash, &digest)),
        _ => (mech, digest),
    })
}

/// AWS's KMSInvalidSignatureException has no message.
fn invalid_signature() -> KmsError {
    KmsError::InvalidSignature(String::new())
}

/// Verify a signature with the public key object `object_id`: the production Verify path
/// after authorization and key checks (tests run published vectors through it).
pub async fn verify_signature(
    token: &Token,
    spec: KeySpec,
    object_id: Vec<u8>,
    alg: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    let (mech, input) = sign_input(token.capabilities(), alg, message_type, message)?;
    let signature = match (mech, curve(spec)) {
        (SignMech::Ecdsa, Some(c)) => {
            keyformat::ecdsa_from_der(signature, c.field_len()).ok_or_else(invalid_signature)?
        }
        (SignMech::Ecdsa, None) => return Err(invalid_signature()),
        _ => signature.to_vec(),
    };
    if token.verify(object_id, mech, input, signature).await? {
        Ok(())
    } else {
        Err(invalid_signature())
    }
}

/// Verify a MAC with the HMAC key object `object_id`: recomputed in the token, compared here in
/// constant time; a MAC of any other length (truncated) is rejected. The production VerifyMac
/// path after authorization and key checks.
pub async fn verify_mac(
    token: &Token,
    object_id: Vec<u8>,
    alg: MacAlgorithm,
    message: &[u8],
    mac: &[u8],
) -> Result<()> {
    let expected = compute_mac(token, object_id, alg, message).await?;
    if expected.len() == mac.len() && bool::from(expected.as_slice().ct_eq(mac)) {
        Ok(())
    } else {
        // AWS's answer carries no message.
        Err(KmsError::InvalidMac(String::new()))
    }
}

pub(super) async fn compute_mac(
    token: &Token,
    object_id: Vec<u8>,
    alg: MacAlgorithm,
    message: &[u8],
) -> Result<Vec<u8>> {
    let hash = mac_hash(alg);
    if !token.capabilities().hmac(hash) {
        return Err(unsupported(format!("MAC algorithm {alg}")));
    }
    Ok(token.hmac(object_id, hash, message.to_vec()).await?)
}

fn object_id(key: &KeyRecord) -> Vec<u8> {
    token_object_id(&key.key_id, key.current_version as u32)
}

fn wrong_usage(key: &KeyRecord, operation: &str) -> KmsError {
    KmsError::InvalidKeyUsage(texts::key_usage_not_valid(
        &key.arn(),
        key.key_usage,
        operation,
    ))
}

/// A signing key that supports `alg`.
fn require_signing(key: &KeyRecord, alg: SigningAlgorithm, operation: &str) -> Result<()> {
    if key.key_usage != KeyUsage::SignVerify {
        return Err(wrong_usage(key, operation));
    }
    let valid = key.key_spec.signing_algorithms(key.key_usage);
    if !valid.contains(&alg) {
        return Err(KmsError::InvalidKeyUsage(texts::algorithm_incompatible(
            alg.as_str(),
            key.key_spec.as_str(),
        )));
    }
    Ok(())
}

/// An HMAC key of algorithm `alg`.
fn require_mac(key: &KeyRecord, alg: MacAlgorithm, operation: &str) -> Result<()> {
    if key.key_usage != KeyUsage::GenerateVerifyMac {
        return Err(wrong_usage(key, operation));
    }
    match key.key_spec.mac_algorithm() {
        Some(a) if a == alg => Ok(()),
        _ => Err(KmsError::InvalidKeyUsage(texts::algorithm_incompatible(
            alg.as_str(),
            key.key_spec.as_str(),
        ))),
    }
}

/// An RSA encryption key, an OAEP algorithm and no encryption context.
fn require_rsa_encryption(
    key: &KeyRecord,
    alg: Option<EncryptionAlgorithm>,
    enc_ctx: &EncryptionContext,
    operation: &str,
) -> Result<HashAlg> {
    if key.key_usage != KeyUsage::EncryptDecrypt || key.key_spec.rsa_bits().is_none() {
        return Err(wrong_usage(key, operation));
    }
    let hash = oaep_hash(alg).ok_or_else(|| {
        KmsError::InvalidKeyUsage(texts::algorithm_incompatible(
            alg.map_or("SYMMETRIC_DEFAULT", |a| a.as_str()),
            key.key_spec.as_str(),
        ))
    })?;
    if !enc_ctx.is_empty() {
        return Err(KmsError::Validation(
            texts::ENCRYPTION_CONTEXT_ASYMMETRIC.into(),
        ));
    }
    Ok(hash)
}

fn pair_spec(spec: DataKeyPairSpec, caps: &Capabilities) -> Result<PairSpec> {
    let curve = match spec {
        DataKeyPairSpec::Rsa2048 => return rsa_pair(2048, caps, spec),
        DataKeyPairSpec::Rsa3072 => return rsa_pair(3072, caps, spec),
        DataKeyPairSpec::Rsa4096 => return rsa_pair(4096, caps, spec),
        DataKeyPairSpec::EccNistP256 => Curve::P256,
        DataKeyPairSpec::EccNistP384 => Curve::P384,
        DataKeyPairSpec::EccNistP521 => Curve::P521,
        DataKeyPairSpec::EccSecgP256k1 => Curve::Secp256k1,
        other => return Err(unsupported(format!("KeyPairSpec {other}"))),
    };
    let params = curve.ec_params()?;
    if !caps.ec_curve(&params) {
        return Err(unsupported(format!("KeyPairSpec {spec}")));
    }
    Ok(PairSpec::Ec { params })
}

fn rsa_pair(bits: u32, caps: &Capabilities, spec: DataKeyPairSpec) -> Result<PairSpec> {
    if caps.rsa_bits(bits) {
        Ok(PairSpec::Rsa { bits })
    } else {
        Err(unsupported(format!("KeyPairSpec {spec}")))
    }
}

/// Token failures on key generation that mean "this token cannot make that key".
fn generation_error(e: crate::token::TokenError, what: &str) -> KmsError {
    match e.refusal() {
        crate::token::Refusal::Unsupported => unsupported(what),
        _ => e.into(),
    }
}

impl Kms {
    /// Generate a new key's material in the token as planned by `plan_material`.
    pub(crate) async fn generate_material(
        &self,
        token: &AccountToken,
        material: Material,
        id: Vec<u8>,
        label: String,
        spec: KeySpec,
    ) -> Result<()> {
        let what = format!("KeySpec {spec}");
        match material {
            Material::Aes => token.generate_aes_key(id, label).await?,
            Material::Pair(p, u) => token
                .generate_key_pair(id, label, p, u)
                .await
                .map_err(|e| generation_error(e, &what))?,
            Material::Hmac(len) => token
                .generate_hmac_key(id, label, len)
                .await
                .map_err(|e| generation_error(e, &what))?,
        }
        Ok(())
    }

    pub(crate) fn capabilities(&self) -> &Capabilities {
        self.token.capabilities()
    }

    pub async fn sign(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        message: Zeroizing<Vec<u8>>,
        message_type: Option<MessageType>,
        alg: SigningAlgorithm,
    ) -> Result<Signed> {
        let mt = message_type.unwrap_or(MessageType::Raw);
        let op = Op::new(Action::Sign)
            .fact("kms:SigningAlgorithm", alg.as_str())
            .fact("kms:MessageType", mt.as_str());
        let k = self.resolve(ctx, key, op).await?;
        require_signing(&k, alg, "Sign")?;
        require_enabled(&k)?;
        let (mech, input) = sign_input(self.capabilities(), alg, mt, &message)?;
        let raw = k.token(self)?.sign(object_id(&k), mech, input).await?;
        let signature = match mech {
            SignMech::Ecdsa => keyformat::ecdsa_to_der(&raw)?,
            _ => raw,
        };
        Ok(Signed {
            key_arn: k.arn(),
            signature,
        })
    }

    /// Verify; `Ok(key ARN)` if valid, `InvalidSignature` if not.
    pub async fn verify(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        message: Zeroizing<Vec<u8>>,
        message_type: Option<MessageType>,
        signature: &[u8],
        alg: SigningAlgorithm,
    ) -> Result<String> {
        let mt = message_type.unwrap_or(MessageType::Raw);
        let op = Op::new(Action::Verify)
            .fact("kms:SigningAlgorithm", alg.as_str())
            .fact("kms:MessageType", mt.as_str());
        let k = self.resolve(ctx, key, op).await?;
        require_signing(&k, alg, "Verify")?;
        require_enabled(&k)?;
        k.token(self)?
            .verify_signature(k.key_spec, object_id(&k), alg, mt, &message, signature)
            .await?;
        Ok(k.arn())
    }

    pub async fn get_public_key(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
    ) -> Result<PublicKeyInfo> {
        let k = self
            .resolve(ctx, key, Op::new(Action::GetPublicKey))
            .await?;
        if !k.key_spec.is_asymmetric() {
            return Err(KmsError::UnsupportedOperation(texts::not_asymmetric(
                &k.arn(),
            )));
        }
        require_enabled(&k)?;
        let parts = k.token(self)?.public_key(object_id(&k)).await?;
        Ok(PublicKeyInfo {
            key_arn: k.arn(),
            public_key: keyformat::spki_der(&parts)?,
            key_spec: k.key_spec,
            key_usage: k.key_usage,
        })
    }

    /// Encrypt with an RSA key (Encrypt and ReEncrypt's destination route RSA keys here after
    /// authorization; `operation` is what a key usage error names).
    pub(crate) async fn rsa_encrypt(
        &self,
        k: &Permitted,
        plaintext: Zeroizing<Vec<u8>>,
        enc_ctx: &EncryptionContext,
        alg: Option<EncryptionAlgorithm>,
        operation: &str,
    ) -> Result<Encrypted> {
        let hash = require_rsa_encryption(k, alg, enc_ctx, operation)?;
        require_enabled(k)?;
        let bytes = k.key_spec.rsa_bits().unwrap_or(0) as usize / 8;
        let max = oaep::max_message_len(hash, bytes);
        if plaintext.len() > max {
            return Err(KmsError::Validation(texts::plaintext_too_large(
                alg.map_or("", |a| a.as_str()),
                k.key_spec.as_str(),
                max,
            )));
        }
        // OAEP in the token where it can; else padded here and raw RSA in the token.
        let token = k.token(self)?;
        let native = token
            .rsa_oaep_encrypt(object_id(k), hash, plaintext.clone())
            .await?;
        let mut ct = match native {
            Some(ct) => ct,
            None if self.capabilities().rsa_raw => {
                let seed = token.random(hash.output_len()).await?;
                let em = oaep::encode(hash, bytes, &plaintext, &seed)
                    .ok_or_else(|| KmsError::Internal("OAEP encoding failed".into()))?;
                token.rsa_public_raw(object_id(k), em).await?
            }
            None => return Err(unsupported("RSA encryption")),
        };
        if ct.len() < bytes {
            ct.splice(0..0, std::iter::repeat(0).take(bytes - ct.len()));
        }
        Ok(Encrypted {
            key_arn: k.arn(),
            ciphertext_blob: ct,
            material_id: None,
            algorithm: alg.unwrap_or(EncryptionAlgorithm::RsaesOaepSha256),
        })
    }

    /// Decrypt an RSA ciphertext: raw RSA in the token, OAEP decoding here; every failure is
    /// the same `InvalidCiphertext`.
    /// `action`: `kms:Decrypt`, or `kms:ReEncryptFrom` for the source of a ReEncrypt.
    pub(crate) async fn rsa_decrypt(
        &self,
        ctx: &RequestContext,
        key: Option<&KeyRef>,
        ciphertext: Vec<u8>,
        enc_ctx: &EncryptionContext,
        alg: Option<EncryptionAlgorithm>,
        action: Action,
    ) -> Result<Decrypted> {
        let key =
            key.ok_or_else(|| KmsError::Validation(texts::ASYMMETRIC_DECRYPT_NEEDS_KEY_ID.into()))?;
        let op = Op::new(action).fact(
            "kms:EncryptionAlgorithm",
            alg.map_or("SYMMETRIC_DEFAULT", |a| a.as_str()),
        );
        let k = self.resolve(ctx, key, op).await?;
        if k.key_spec == KeySpec::SymmetricDefault {
            require_symmetric(&k, alg, "Decrypt")?;
        }
        let hash = require_rsa_encryption(&k, alg, enc_ctx, "Decrypt")?;
        require_enabled(&k)?;
        let invalid = || KmsError::InvalidCiphertext(String::new());
        let bad_input = |e: crate::token::TokenError| match e.kind() {
            FaultKind::BadInput => invalid(),
            _ => e.into(),
        };
        let token = k.token(self)?;
        let native = token
            .rsa_oaep_decrypt(object_id(&k), hash, ciphertext.clone())
            .await
            .map_err(bad_input)?;
        let plaintext = match native {
            Some(pt) => pt,
            None if self.capabilities().rsa_raw => {
                let em = token
                    .rsa_private_raw(object_id(&k), ciphertext)
                    .await
                    .map_err(bad_input)?;
                oaep::decode(hash, &em).ok_or_else(invalid)?
            }
            None => return Err(unsupported("RSA decryption")),
        };
        Ok(Decrypted {
            key_arn: k.arn(),
            plaintext,
            material_id: None,
            algorithm: alg.unwrap_or(EncryptionAlgorithm::RsaesOaepSha256),
        })
    }

    pub async fn generate_data_key_pair(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        spec: DataKeyPairSpec,
        enc_ctx: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKeyPair> {
        let action = if with_plaintext {
            Action::GenerateDataKeyPair
        } else {
            Action::GenerateDataKeyPairWithoutPlaintext
        };
        let op = Op::new(action).with_context(enc_ctx).data_key_pair(spec);
        let k = self.resolve(ctx, key, op).await?;
        require_symmetric(&k, None, action.name())?;
        require_enabled(&k)?;
        let pair_spec = pair_spec(spec, self.capabilities())?;
        let pair = k
            .token(self)?
            .generate_exportable_pair(pair_spec)
            .await
            .map_err(|e| generation_error(e, &format!("KeyPairSpec {spec}")))?;
        let public_key = keyformat::spki_der(&pair.public)?;
        let pkcs8 = keyformat::pkcs8_der(&pair)?;
        drop(pair);
        let private_key_plaintext = with_plaintext.then(|| pkcs8.clone());
        let (private_key_ciphertext, material_id) = self.seal(&k, enc_ctx, pkcs8).await?;
        Ok(DataKeyPair {
            key_arn: k.arn(),
            public_key,
            private_key_plaintext,
            private_key_ciphertext,
            material_id,
        })
    }

    pub async fn generate_mac(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        message: Zeroizing<Vec<u8>>,
        alg: MacAlgorithm,
    ) -> Result<(String, Vec<u8>)> {
        let op = Op::new(Action::GenerateMac).fact("kms:MacAlgorithm", alg.as_str());
        let k = self.resolve(ctx, key, op).await?;
        require_mac(&k, alg, "GenerateMac")?;
        require_enabled(&k)?;
        let mac = k.token(self)?.mac(object_id(&k), alg, &message).await?;
        Ok((k.arn(), mac))
    }

    /// DeriveSharedSecret (ECDH): the shared secret of the key's private key and the peer's
    /// public key (DER SubjectPublicKeyInfo on the key's curve), computed in the token.
    pub async fn derive_shared_secret(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        peer_public_key: &[u8],
    ) -> Result<(String, Zeroizing<Vec<u8>>)> {
        let op = Op::new(Action::DeriveSharedSecret).fact("kms:KeyAgreementAlgorithm", "ECDH");
        let k = self.resolve(ctx, key, op).await?;
        if k.key_usage != KeyUsage::KeyAgreement {
            return Err(wrong_usage(&k, "DeriveSharedSecret"));
        }
        require_enabled(&k)?;
        let c = curve(k.key_spec).ok_or_else(|| wrong_usage(&k, "DeriveSharedSecret"))?;
        // AWS answers a public key it cannot use (not DER SPKI, another curve) with a
        // ValidationException that carries no message (recorded in LocalStack's AWS snapshots).
        let point = keyformat::peer_point(peer_public_key, c)
            .ok_or_else(|| KmsError::Validation(String::new()))?;
        let secret = k.token(self)?.ecdh(object_id(&k), point).await?;
        Ok((k.arn(), secret))
    }

    /// Encapsulate (ML-KEM): a shared secret and its ciphertext from the key's encapsulation
    /// key, made in the token.
    pub async fn encapsulate(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
    ) -> Result<(String, Vec<u8>, Zeroizing<Vec<u8>>)> {
        let op = Op::new(Action::Encapsulate);
        let k = self.resolve(ctx, key, op).await?;
        if k.key_usage != KeyUsage::EncapsulateDecapsulate {
            return Err(wrong_usage(&k, "Encapsulate"));
        }
        require_enabled(&k)?;
        let (ciphertext, secret) = k.token(self)?.ml_kem_encapsulate(object_id(&k)).await?;
        Ok((k.arn(), ciphertext, secret))
    }

    /// Decapsulate (ML-KEM): the shared secret of a ciphertext, recovered in the token.
    pub async fn decapsulate(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        ciphertext: Vec<u8>,
    ) -> Result<(String, Zeroizing<Vec<u8>>)> {
        let op = Op::new(Action::Decapsulate);
        let k = self.resolve(ctx, key, op).await?;
        if k.key_usage != KeyUsage::EncapsulateDecapsulate {
            return Err(wrong_usage(&k, "Decapsulate"));
        }
        require_enabled(&k)?;
        let set = match k.key_spec {
            KeySpec::MlKem512 => MlKemSet::MlKem512,
            KeySpec::MlKem768 => MlKemSet::MlKem768,
            KeySpec::MlKem1024 => MlKemSet::MlKem1024,
            _ => return Err(wrong_usage(&k, "Decapsulate")),
        };
        // AWS's InvalidCiphertextException carries no message.
        if ciphertext.len() != set.ciphertext_len() {
            return Err(KmsError::InvalidCiphertext(String::new()));
        }
        let secret = k
            .token(self)?
            .ml_kem_decapsulate(object_id(&k), ciphertext)
            .await
            .map_err(|e| match e.kind() {
                FaultKind::BadInput => KmsError::InvalidCiphertext(String::new()),
                _ => e.into(),
            })?;
        Ok((k.arn(), secret))
    }

    /// VerifyMac; `Ok(key ARN)` if valid, `InvalidMac` if not.
    pub async fn verify_mac(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        message: Zeroizing<Vec<u8>>,
        mac: &[u8],
        alg: MacAlgorithm,
    ) -> Result<String> {
        let op = Op::new(Action::VerifyMac).fact("kms:MacAlgorithm", alg.as_str());
        let k = self.resolve(ctx, key, op).await?;
        require_mac(&k, alg, "VerifyMac")?;
        require_enabled(&k)?;
        k.token(self)?
            .verify_mac(object_id(&k), alg, &message, mac)
            .await?;
        Ok(k.arn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_caps() -> Capabilities {
        Capabilities::everything()
    }

    #[test]
    fn key_spec_usage_combinations() {
        let caps = all_caps();
        let ok = |s, u| plan_material(&caps, s, u).is_ok();
        let validation = |s, u| matches!(plan_material(&caps, s, u), Err(KmsError::Validation(_)));
        use KeySpec as S;
        use KeyUsage as U;
        assert!(ok(S::SymmetricDefault, None));
        assert!(validation(S::SymmetricDefault, Some(U::SignVerify)));
        for s in [S::Rsa2048, S::Rsa3072, S::Rsa4096] {
            assert!(ok(s, Some(U::EncryptDecrypt)) && ok(s, Some(U::SignVerify)));
            assert!(validation(s, None) && validation(s, Some(U::GenerateVerifyMac)));
        }
        for s in [
            S::EccNistP256,
            S::EccNistP384,
            S::EccNistP521,
            S::EccSecgP256k1,
        ] {
            assert!(ok(s, Some(U::SignVerify)));
            assert!(validation(s, None) && validation(s, Some(U::EncryptDecrypt)));
        }
        for s in [S::Hmac224, S::Hmac256, S::Hmac384, S::Hmac512] {
            assert!(ok(s, Some(U::GenerateVerifyMac)));
            assert!(validation(s, None) && validation(s, Some(U::SignVerify)));
        }
        assert_eq!(
            plan_material(&caps, S::Hmac384, Some(U::GenerateVerifyMac))
                .unwrap()
                .1,
            Material::Hmac(48)
        );
        let mut no_rsa = all_caps();
        no_rsa.rsa_keygen = None;
        assert!(matches!(
            plan_material(&no_rsa, S::Rsa2048, Some(U::SignVerify)),
            Err(KmsError::UnsupportedOperation(_))
        ));
    }

    #[test]
    fn digest_lengths_are_checked() {
        let caps = all_caps();
        let alg = SigningAlgorithm::EcdsaSha384;
        assert!(sign_input(&caps, alg, MessageType::Digest, &[0; 48]).is_ok());
        for len in [32, 47, 49, 64] {
            assert!(matches!(
                sign_input(&caps, alg, MessageType::Digest, &vec![0; len]),
                Err(KmsError::Validation(_))
            ));
        }
        let (_, input) = sign_input(&caps, alg, MessageType::Raw, b"abc").unwrap();
        assert_eq!(input.len(), 48);
    }
}
