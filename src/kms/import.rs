//! Bring your own key: GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial
//! and the expiry of imported material.
//!
//! Architecture invariants:
//! - Imported material is unwrapped only inside the token (`C_UnwrapKey` with the wrapping
//!   key pair's private key); the host never holds it in plaintext and never calls decrypt on
//!   it. The wrapping private key is sensitive, non-extractable and may only unwrap.
//! - Asymmetric material (DER PKCS#8 private keys) is parsed by the token, never here; the
//!   public key is completed from public values only and the key pair is checked by a sign/
//!   verify round trip in the token before anything is kept (`token::unwrap_import_pair`).
//! - An import token is `version (1) ‖ nonce (16) ‖ HMAC-SHA256 (32)`; the MAC is computed in
//!   the token with the system key `IMPORT_MAC_KEY_ID` over the key id, the wrapping key's
//!   object id, the algorithm, the key spec, the parameters' expiry and the nonce. Only the
//!   newest parameters of a key are stored, so older tokens are superseded.
//! - Crash safety as for key creation: the pending version (intent) is stored before the
//!   token object is unwrapped and activated after; reconciliation undoes a pending import.
//! - Several materials (symmetric keys): each is a version of the key with its own token
//!   object and a `key_materials` row that outlives it, so the same material (same check
//!   value) comes back at the same version. Its `KeyMaterialId` is derived from the key id and
//!   the check value the token computed (`imported_material_id`). At most one material waits
//!   above the current version for on-demand rotation; the key is `Enabled` only while every
//!   material up to its current version is imported and unexpired.

use crate::operations::Action;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::asymmetric::curve;
use super::authz::{KeyToken, Op};
use super::ids::KeyRef;
use super::{
    key_object_label, material_id, state_error, texts, token_object_id, Kms, KmsError,
    RequestContext, Result, LABEL_PREFIX, MS_PER_DAY,
};
use crate::kms::keyformat::spki_der;
use crate::model::{
    ExpirationModel, ImportType, KeySpec, KeyState, KeyUsage, Origin, WrappingAlgorithm,
    WrappingKeySpec,
};
use crate::store::{ImportRecord, KeyRecord, MaterialRecord, Millis, StoreError, VersionRecord};
use crate::token::{
    Capabilities, FaultKind, HashAlg, ImportWrap, ImportedKind, ImportedPair, InvalidMaterial,
    PairUse,
};

/// `CKA_ID` of the token key that authenticates import tokens.
pub const IMPORT_MAC_KEY_ID: &[u8] = b"kms-bridge/system/import-token-mac/v1";
const IMPORT_MAC_KEY_LABEL: &str = "kms-bridge-system/import-token-mac/v1";
const TOKEN_FORMAT: u8 = 1;
const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;
const TOKEN_LEN: usize = 1 + NONCE_LEN + MAC_LEN;
/// Import parameters are valid for 24 hours.
const PARAMETERS_TTL: Millis = MS_PER_DAY;
/// `ValidTo` may be at most 365 days ahead.
const MAX_VALID_TO: Millis = 365 * MS_PER_DAY;

/// What GetParametersForImport returns.
#[derive(Debug)]
pub struct ImportParameters {
    pub key_arn: String,
    pub import_token: Vec<u8>,
    pub public_key: Vec<u8>,
    pub parameters_valid_to: Millis,
}

/// What ImportKeyMaterial asks.
#[derive(Debug)]
pub struct ImportInput {
    pub import_token: Vec<u8>,
    pub encrypted_key_material: Vec<u8>,
    pub expiration_model: Option<ExpirationModel>,
    pub valid_to: Option<Millis>,
    /// Default: `NEW_KEY_MATERIAL` for the first import, `EXISTING_KEY_MATERIAL` afterwards.
    pub import_type: Option<ImportType>,
    pub key_material_id: Option<String>,
    pub description: Option<String>,
}

/// What the token object of an imported key of this spec is, if the spec can be imported.
fn imported_kind(spec: KeySpec) -> Option<ImportedKind> {
    match spec {
        KeySpec::SymmetricDefault => Some(ImportedKind::Aes { len: 32 }),
        KeySpec::Hmac224 => Some(ImportedKind::Hmac { min: 28, max: 64 }),
        KeySpec::Hmac256 => Some(ImportedKind::Hmac { min: 32, max: 64 }),
        KeySpec::Hmac384 => Some(ImportedKind::Hmac { min: 48, max: 128 }),
        KeySpec::Hmac512 => Some(ImportedKind::Hmac { min: 64, max: 128 }),
        _ => None,
    }
}

/// What the token objects of an imported key are.
enum Imported {
    /// A secret key (AES, HMAC) from raw bytes.
    Secret(ImportedKind),
    /// A key pair from a DER PKCS#8 private key.
    Pair(ImportedPair, PairUse),
}

/// What an imported key of this spec and usage becomes, if it can be imported.
fn imported(spec: KeySpec, usage: KeyUsage) -> Option<Imported> {
    if let Some(kind) = imported_kind(spec) {
        return Some(Imported::Secret(kind));
    }
    let pair_use = match usage {
        KeyUsage::SignVerify => PairUse::Sign,
        KeyUsage::EncryptDecrypt => PairUse::Encrypt,
        _ => return None,
    };
    if let Some(bits) = spec.rsa_bits() {
        return Some(Imported::Pair(ImportedPair::Rsa { bits }, pair_use));
    }
    let c = curve(spec).filter(|_| pair_use == PairUse::Sign)?;
    Some(Imported::Pair(
        ImportedPair::Ec {
            params: c.ec_params().ok()?,
            generator: c.generator(),
            points_with_x: c.points_with_x(),
        },
        pair_use,
    ))
}

/// Can keys of this spec be created with origin EXTERNAL here? Symmetric and HMAC keys
/// always; RSA private keys need the token's AES key wrap with padding unwrap (they are
/// imported only with RSA_AES_KEY_WRAP_*) and RSA PKCS#1 signatures (the key pair check); EC
/// private keys need ECDH derivation (to find the public point) and ECDSA.
pub(crate) fn importable(caps: &Capabilities, spec: KeySpec) -> bool {
    if imported_kind(spec).is_some() {
        true
    } else if spec.rsa_bits().is_some() {
        caps.rsa_oaep_unwrap && caps.aes_kwp_unwrap && caps.rsa_pkcs1
    } else {
        curve(spec).is_some_and(|c| c.ec_params().is_ok_and(|p| caps.ec_curve(&p)))
            && caps.ecdh_derive
            && caps.ecdsa
    }
}

/// The key specs that can be imported into this token, as a message fragment.
pub(crate) fn importable_specs(caps: &Capabilities) -> String {
    use KeySpec as S;
    let list: Vec<&str> = [
        S::SymmetricDefault,
        S::Hmac224,
        S::Hmac256,
        S::Hmac384,
        S::Hmac512,
        S::Rsa2048,
        S::Rsa3072,
        S::Rsa4096,
        S::EccNistP256,
        S::EccNistP384,
        S::EccNistP521,
        S::EccSecgP256k1,
    ]
    .into_iter()
    .filter(|s| importable(caps, *s))
    .map(|s| s.as_str())
    .collect();
    list.join(", ")
}

/// AWS's rules for wrapping algorithm × key spec: RSA private keys are too large for
/// RSAES_OAEP_* (RSA_AES_KEY_WRAP_* only), and ECC_NIST_P521 material too large for
/// RSAES_OAEP_* under an RSA_2048 wrapping key.
fn wrapping_fits(
    key_spec: KeySpec,
    alg: WrappingAlgorithm,
    wrap: ImportWrap,
    spec: WrappingKeySpec,
) -> Result<()> {
    if !matches!(wrap, ImportWrap::RsaOaep(_)) {
        return Ok(());
    }
    if key_spec.rsa_bits().is_some() {
        return Err(KmsError::UnsupportedOperation(
            texts::rsa_material_too_large_for_oaep(alg.as_str(), key_spec.as_str()),
        ));
    }
    if key_spec == KeySpec::EccNistP521 && spec == WrappingKeySpec::Rsa2048 {
        return Err(KmsError::UnsupportedOperation(
            texts::p521_material_too_large(alg.as_str()),
        ));
    }
    Ok(())
}

fn wrap_of(alg: WrappingAlgorithm) -> Option<ImportWrap> {
    match alg {
        WrappingAlgorithm::RsaesOaepSha1 => Some(ImportWrap::RsaOaep(HashAlg::Sha1)),
        WrappingAlgorithm::RsaesOaepSha256 => Some(ImportWrap::RsaOaep(HashAlg::Sha256)),
        WrappingAlgorithm::RsaAesKeyWrapSha1 => Some(ImportWrap::RsaAesKwp(HashAlg::Sha1)),
        WrappingAlgorithm::RsaAesKeyWrapSha256 => Some(ImportWrap::RsaAesKwp(HashAlg::Sha256)),
        WrappingAlgorithm::RsaesPkcs1V15 | WrappingAlgorithm::Sm2Pke => None,
    }
}

fn hash_of(wrap: ImportWrap) -> HashAlg {
    match wrap {
        ImportWrap::RsaOaep(h) | ImportWrap::RsaAesKwp(h) => h,
    }
}

/// The bytes the import token's MAC covers.
fn mac_input(key: &KeyRecord, rec: &ImportRecord, wrapping_id: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut m = b"kms-bridge import token v1\0".to_vec();
    m.extend_from_slice(key.key_id.as_bytes());
    for part in [
        wrapping_id,
        rec.wrapping_algorithm.as_deref().unwrap_or("").as_bytes(),
        rec.wrapping_key_spec.as_deref().unwrap_or("").as_bytes(),
    ] {
        m.extend_from_slice(&(part.len() as u32).to_be_bytes());
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&rec.parameters_valid_to.unwrap_or(0).to_be_bytes());
    m.extend_from_slice(nonce);
    m
}

fn require_external(key: &KeyRecord) -> Result<()> {
    if key.origin == Origin::External {
        Ok(())
    } else {
        Err(KmsError::UnsupportedOperation(texts::origin_not_valid(
            &key.arn(),
            key.origin,
        )))
    }
}

fn invalid_token() -> KmsError {
    KmsError::InvalidImportToken(texts::INVALID_IMPORT_TOKEN.into())
}

/// A stored key check value: SHA-256 of the token's check value (never the raw block).
fn check_digest(kcv: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"kms-bridge key check value\0");
    h.update(kcv);
    h.finalize().to_vec()
}

impl Kms {
    /// Make sure the import-token MAC key exists in the token (created once).
    async fn import_mac_key(&self, token: &KeyToken) -> Result<()> {
        self.import_mac
            .get_or_try_init(|| async {
                if token.ensure_import_mac_key(IMPORT_MAC_KEY_LABEL).await? {
                    tracing::info!("created the import-token MAC key in the token");
                }
                Ok::<(), KmsError>(())
            })
            .await
            .map(|_| ())
    }

    async fn import_mac(&self, token: &KeyToken, input: Vec<u8>) -> Result<Vec<u8>> {
        self.import_mac_key(token).await?;
        Ok(token.import_mac(input).await?)
    }

    /// The wrapping algorithms this token can unwrap with, as a message fragment.
    fn supported_wrapping(&self) -> String {
        let caps = self.capabilities();
        let known_bad = self
            .import_unsupported
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let list: Vec<&str> = [
            WrappingAlgorithm::RsaesOaepSha1,
            WrappingAlgorithm::RsaesOaepSha256,
            WrappingAlgorithm::RsaAesKeyWrapSha1,
            WrappingAlgorithm::RsaAesKeyWrapSha256,
        ]
        .into_iter()
        .filter(|a| !known_bad.contains(a))
        .filter(|a| {
            caps.rsa_oaep_unwrap
                && (matches!(wrap_of(*a), Some(ImportWrap::RsaOaep(_))) || caps.aes_kwp_unwrap)
        })
        .map(|a| a.as_str())
        .collect();
        if list.is_empty() {
            "none".into()
        } else {
            list.join(", ")
        }
    }

    fn unsupported_wrapping(&self, alg: WrappingAlgorithm, why: &str) -> KmsError {
        KmsError::UnsupportedOperation(texts::wrapping_unsupported(
            alg.as_str(),
            why,
            &self.supported_wrapping(),
        ))
    }

    pub async fn get_parameters_for_import(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        alg: WrappingAlgorithm,
        spec: WrappingKeySpec,
    ) -> Result<ImportParameters> {
        let op = Op::new(Action::GetParametersForImport)
            .fact("kms:WrappingAlgorithm", alg.as_str())
            .fact("kms:WrappingKeySpec", spec.as_str());
        let k = self.resolve(ctx, key, op).await?;
        require_external(&k)?;
        let token = k.token(self)?;
        let k = k.into_record();
        if !matches!(
            k.state,
            KeyState::PendingImport | KeyState::Enabled | KeyState::Disabled
        ) {
            return Err(state_error(&k.arn(), k.state));
        }
        if alg == WrappingAlgorithm::RsaesPkcs1V15 {
            return Err(KmsError::Validation(texts::PKCS1_V1_5_WRAPPING.into()));
        }
        let bits = match spec {
            WrappingKeySpec::Rsa2048 => 2048,
            WrappingKeySpec::Rsa3072 => 3072,
            WrappingKeySpec::Rsa4096 => 4096,
            WrappingKeySpec::Sm2 => {
                return Err(KmsError::UnsupportedOperation(texts::SM2_CHINA_ONLY.into()))
            }
        };
        let wrap = wrap_of(alg)
            .ok_or_else(|| self.unsupported_wrapping(alg, "available only in China Regions"))?;
        wrapping_fits(k.key_spec, alg, wrap, spec)?;
        let caps = self.capabilities();
        if !caps.rsa_oaep_unwrap {
            return Err(self.unsupported_wrapping(alg, "the token has no CKM_RSA_PKCS_OAEP unwrap"));
        }
        if matches!(wrap, ImportWrap::RsaAesKwp(_)) && !caps.aes_kwp_unwrap {
            return Err(
                self.unsupported_wrapping(alg, "the token has no CKM_AES_KEY_WRAP_PAD unwrap")
            );
        }
        if !caps.rsa_bits(bits) {
            return Err(KmsError::UnsupportedOperation(
                texts::wrapping_key_spec_unsupported(spec.as_str()),
            ));
        }
        let hash = hash_of(wrap);
        let no_hash = || format!("the token cannot do RSA-OAEP with {hash:?}");
        if self
            .import_unsupported
            .lock()
            .map(|s| s.contains(&alg))
            .unwrap_or(false)
        {
            return Err(self.unsupported_wrapping(alg, &no_hash()));
        }
        self.import_mac_key(&token).await?;

        let nonce = token.random(NONCE_LEN).await?;
        let mut wrapping_id = k.key_id.as_bytes().to_vec();
        wrapping_id.extend_from_slice(b"wrap");
        wrapping_id.extend_from_slice(&nonce[..8]);
        let label = format!(
            "{LABEL_PREFIX}{}/wrapping/{}",
            k.key_id,
            hex::encode(&nonce[..8])
        );
        let public = token
            .generate_wrapping_pair(wrapping_id.clone(), label, bits, hash)
            .await?;
        let Some(public) = public else {
            if let Ok(mut s) = self.import_unsupported.lock() {
                s.insert(alg);
            }
            return Err(self.unsupported_wrapping(alg, &no_hash()));
        };
        crate::failpoint::hit("import_parameters.after_wrapping_key");
        let public_key = spki_der(&public)?;

        let valid_to = self.now() + PARAMETERS_TTL;
        let old = self
            .store
            .get_import(k.key_id)
            .await?
            .unwrap_or(ImportRecord {
                key_id: k.key_id,
                ..Default::default()
            });
        let rec = ImportRecord {
            wrapping_object_id: Some(wrapping_id.clone()),
            wrapping_algorithm: Some(alg.as_str().into()),
            wrapping_key_spec: Some(spec.as_str().into()),
            nonce: Some(nonce.to_vec()),
            parameters_valid_to: Some(valid_to),
            ..old.clone()
        };
        let mac = self
            .import_mac(&token, mac_input(&k, &rec, &wrapping_id, &nonce))
            .await?;
        if let Err(e) = self.store.set_import_parameters(&rec).await {
            let _ = token.destroy(wrapping_id).await;
            return Err(e.into());
        }
        crate::failpoint::hit("import_parameters.after_store");
        // The previous parameters are superseded: their wrapping key goes.
        if let Some(old_id) = old.wrapping_object_id.filter(|o| *o != wrapping_id) {
            if let Err(e) = token.destroy(old_id).await {
                tracing::warn!(key_id = %k.key_id, error = %e, "could not destroy a superseded wrapping key");
            }
        }
        let mut import_token = Vec::with_capacity(TOKEN_LEN);
        import_token.push(TOKEN_FORMAT);
        import_token.extend_from_slice(&nonce);
        import_token.extend_from_slice(&mac);
        Ok(ImportParameters {
            key_arn: k.arn(),
            import_token,
            public_key,
            parameters_valid_to: valid_to,
        })
    }

    pub async fn import_key_material(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        input: ImportInput,
    ) -> Result<(String, String)> {
        let model = input
            .expiration_model
            .unwrap_or(ExpirationModel::KeyMaterialExpires);
        let now = self.now();
        let valid_to = match (model, input.valid_to) {
            (ExpirationModel::KeyMaterialExpires, None) => {
                return Err(KmsError::Validation(texts::VALID_TO_REQUIRED.into()))
            }
            (ExpirationModel::KeyMaterialExpires, Some(t)) if t <= now => {
                return Err(KmsError::Validation(texts::VALID_TO_IN_PAST.into()))
            }
            (ExpirationModel::KeyMaterialExpires, Some(t)) if t > now + MAX_VALID_TO => {
                return Err(KmsError::Validation(texts::VALID_TO_TOO_FAR.into()))
            }
            (ExpirationModel::KeyMaterialDoesNotExpire, Some(_)) => {
                return Err(KmsError::Validation(texts::VALID_TO_WITHOUT_EXPIRY.into()))
            }
            (_, t) => t,
        };
        let op = Op::new(Action::ImportKeyMaterial).fact("kms:ExpirationModel", model.as_str());
        let op = match valid_to {
            Some(t) => op.fact("kms:ValidTo", (t / 1000).to_string()),
            None => op,
        };
        let k = self.resolve(ctx, key, op).await?;
        require_external(&k)?;
        let token = k.token(self)?;
        let k = k.into_record();
        let what = imported(k.key_spec, k.key_usage)
            .filter(|_| importable(self.capabilities(), k.key_spec))
            .ok_or_else(|| {
                KmsError::UnsupportedOperation(texts::import_unsupported(
                    k.key_spec.as_str(),
                    &importable_specs(self.capabilities()),
                ))
            })?;
        if !matches!(k.state, KeyState::PendingImport | KeyState::Enabled) {
            return Err(state_error(&k.arn(), k.state));
        }
        // Several materials are for symmetric encryption keys only; an asymmetric or HMAC key
        // has its one material for good.
        if k.key_spec != KeySpec::SymmetricDefault
            && (input.import_type.is_some()
                || input.key_material_id.is_some()
                || input.description.is_some())
        {
            return Err(KmsError::Validation(
                texts::MATERIAL_OPTIONS_SYMMETRIC_ONLY.into(),
            ));
        }
        if input.import_type == Some(ImportType::NewKeyMaterial) && input.key_material_id.is_some()
        {
            return Err(KmsError::Validation(texts::MATERIAL_ID_WITH_NEW.into()));
        }

        // The import token: authentic, for this key, current, unexpired.
        let t = &input.import_token;
        if t.len() != TOKEN_LEN || t[0] != TOKEN_FORMAT {
            return Err(invalid_token());
        }
        let (nonce, mac) = t[1..].split_at(NONCE_LEN);
        let rec = self
            .store
            .get_import(k.key_id)
            .await?
            .ok_or_else(invalid_token)?;
        let (Some(wrapping_id), Some(current)) = (rec.wrapping_object_id.clone(), &rec.nonce)
        else {
            return Err(invalid_token());
        };
        let expected = self
            .import_mac(&token, mac_input(&k, &rec, &wrapping_id, nonce))
            .await?;
        if !bool::from(expected.ct_eq(mac)) || !bool::from(current.as_slice().ct_eq(nonce)) {
            return Err(invalid_token());
        }
        if rec.parameters_valid_to.unwrap_or(0) < now {
            return Err(KmsError::ExpiredImportToken(
                texts::EXPIRED_IMPORT_TOKEN.into(),
            ));
        }
        let wrap = rec
            .wrapping_algorithm
            .as_deref()
            .and_then(WrappingAlgorithm::parse)
            .and_then(wrap_of)
            .ok_or_else(invalid_token)?;
        if !encrypted_size_fits(
            rec.wrapping_key_spec.as_deref(),
            wrap,
            input.encrypted_key_material.len(),
        ) {
            return Err(KmsError::Validation(
                texts::INVALID_ENCRYPTED_KEY_SIZE.into(),
            ));
        }
        let wrapped = Wrapped {
            wrapping_id,
            wrap,
            material: input.encrypted_key_material,
            what,
        };

        // Which material is it? A session copy is unwrapped in the token, its check value
        // computed there, and destroyed.
        let kcv = self
            .unwrap_material(&token, &k, &wrapped, k.current_version, false)
            .await?;
        let id = imported_material_id(&k.material_key(), &kcv);
        let found = rec.materials.iter().find(|m| m.check_value == kcv).cloned();
        let import_type = input.import_type.unwrap_or(if rec.materials.is_empty() {
            ImportType::NewKeyMaterial
        } else {
            ImportType::ExistingKeyMaterial
        });
        let material = match import_type {
            ImportType::ExistingKeyMaterial => {
                if input
                    .key_material_id
                    .as_ref()
                    .is_some_and(|given| *given != id)
                {
                    let given = input.key_material_id.unwrap_or_default();
                    return Err(KmsError::IncorrectKeyMaterial(texts::material_id_mismatch(
                        &given,
                    )));
                }
                let Some(mut m) = found else {
                    return Err(incorrect_material());
                };
                m.expiration_model = model.as_str().into();
                m.valid_to = valid_to;
                if input.description.is_some() {
                    m.description = input.description;
                }
                if m.imported {
                    // In the token already: only its expiration (and description) change.
                    self.store.put_material(&m, false, None).await?;
                    return Ok((k.arn(), id));
                }
                m
            }
            ImportType::NewKeyMaterial => {
                if found.is_some() {
                    return Err(KmsError::IncorrectKeyMaterial(
                        texts::material_already_associated(&id, &k.arn()),
                    ));
                }
                if let Some(p) = pending_rotation(&k, &rec.materials) {
                    return Err(KmsError::InvalidState(texts::new_material_while_pending(
                        &id,
                        &k.arn(),
                        &imported_material_id(&k.material_key(), &p.check_value),
                    )));
                }
                let version = match rec.materials.iter().map(|m| m.version).max() {
                    None => k.current_version,
                    Some(v) => v.max(k.current_version) + 1,
                };
                MaterialRecord {
                    key_id: k.key_id,
                    version,
                    check_value: kcv,
                    description: input.description,
                    expiration_model: model.as_str().into(),
                    valid_to,
                    imported: true,
                    created_at: now,
                    rotated_at: None,
                    rotation_type: None,
                }
            }
        };
        let arn = k.arn();
        self.import_into_token(&token, k, material, &wrapped, &id)
            .await?;
        Ok((arn, id))
    }

    /// Put `m` into the token at its version and record it: intent (pending version) first,
    /// then the token object, then — in one transaction — the material, the completed version
    /// and, when every material the key needs is there again, the key's state `Enabled`.
    async fn import_into_token(
        &self,
        token: &KeyToken,
        k: KeyRecord,
        mut m: MaterialRecord,
        wrapped: &Wrapped,
        id: &str,
    ) -> Result<()> {
        let _ = self.clear_leftover_versions(token, &k).await?;
        let v32 = u32::try_from(m.version)
            .map_err(|_| KmsError::LimitExceeded(texts::TOO_MANY_KEY_MATERIALS.into()))?;
        let version = VersionRecord {
            key_id: k.key_id,
            version: m.version,
            token_object_id: token_object_id(&k.key_id, v32),
            material_id: id.to_string(),
            created_at: self.now(),
            rotation_type: None,
            pending: true,
        };
        // Intent first, then material, then completion: see reconcile.rs.
        self.store
            .insert_version(&version)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => KmsError::Conflict(texts::IMPORT_IN_PROGRESS.into()),
                e => e.into(),
            })?;
        crate::failpoint::hit("import.after_intent");
        let (key_id, version_no) = (k.key_id, m.version);
        let undo = |why: &'static str| async move {
            if let Err(e) = token.destroy(token_object_id(&key_id, v32)).await {
                tracing::error!(%key_id, error = %e, why, "could not destroy unfinished imported material; reconciliation will");
                return;
            }
            if let Err(e) = self.store.delete_pending_version(key_id, version_no).await {
                tracing::error!(%key_id, error = %e, why, "could not undo a pending import; reconciliation will");
            }
        };
        let kcv = match self
            .unwrap_material(token, &k, wrapped, m.version, true)
            .await
        {
            Ok(kcv) => {
                crate::failpoint::hit("import.after_unwrap");
                kcv
            }
            Err(e) => {
                if let Err(e) = self.store.delete_pending_version(k.key_id, m.version).await {
                    tracing::error!(key_id = %k.key_id, error = %e, "could not undo a pending import; reconciliation will");
                }
                return Err(e);
            }
        };
        if kcv != m.check_value {
            // The same ciphertext unwrapped to other material a moment ago: refuse it.
            undo("material changed between unwraps").await;
            return Err(incorrect_material());
        }
        crate::failpoint::hit("import.after_check_value");
        m.imported = true;
        let mut key = k;
        for _ in 0..8 {
            let rec = self.store.get_import(key.key_id).await?.unwrap_or_default();
            let others: Vec<&MaterialRecord> = rec
                .materials
                .iter()
                .filter(|o| o.version != m.version)
                .collect();
            let permanent = m.version <= key.current_version;
            if !permanent {
                if let Some(p) = others.iter().find(|o| o.version > key.current_version) {
                    undo("another material became pending").await;
                    return Err(KmsError::InvalidState(texts::new_material_while_pending(
                        id,
                        &key.arn(),
                        &imported_material_id(&key.material_key(), &p.check_value),
                    )));
                }
            }
            let complete = others
                .iter()
                .filter(|o| o.version <= key.current_version)
                .all(|o| o.imported);
            let enable = permanent && complete && key.state == KeyState::PendingImport;
            if enable {
                key.state = KeyState::Enabled;
            }
            match self
                .store
                .put_material(&m, true, enable.then_some(&key))
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => {
                    key = self
                        .store
                        .get_key(key.key_id)
                        .await?
                        .ok_or_else(|| KmsError::NotFound(texts::key_not_found(&key.arn())))?;
                    key = self.with_expiry(key).await?;
                }
                Err(e) => {
                    undo("recording the material failed").await;
                    return Err(e.into());
                }
            }
        }
        undo("concurrent changes").await;
        Err(KmsError::Conflict(texts::CONCURRENT_MODIFICATION.into()))
    }

    /// Token objects of a key that no imported material names any more (a delete or expiry a
    /// crash interrupted between the store and the token): destroyed, their versions removed.
    /// The object ids destroyed.
    pub(crate) async fn clear_leftover_versions(
        &self,
        token: &KeyToken,
        k: &KeyRecord,
    ) -> Result<Vec<Vec<u8>>> {
        let rec = self.store.get_import(k.key_id).await?.unwrap_or_default();
        let mut destroyed = Vec::new();
        for v in self.store.versions(k.key_id).await? {
            let live = rec
                .materials
                .iter()
                .any(|m| m.version == v.version && m.imported);
            if !v.pending && !live {
                token.destroy(v.token_object_id.clone()).await?;
                crate::failpoint::hit("delete_material.after_destroy");
                self.store.delete_version(k.key_id, v.version).await?;
                destroyed.push(v.token_object_id);
            }
        }
        Ok(destroyed)
    }

    /// Unwrap imported material in the token at `version` (a token object if `persistent`,
    /// else a session copy that is destroyed) and return its stored check value: SHA-256 of
    /// the token's key check value (secret keys) or of the public key's DER SPKI (key pairs).
    /// A ciphertext that does not unwrap → `InvalidCiphertextException`; a private key that is
    /// not valid PKCS#8 of the key's spec → `IncorrectKeyMaterialException`.
    async fn unwrap_material(
        &self,
        token: &KeyToken,
        k: &KeyRecord,
        w: &Wrapped,
        version: i64,
        persistent: bool,
    ) -> Result<Vec<u8>> {
        let v32 = u32::try_from(version)
            .map_err(|_| KmsError::LimitExceeded(texts::TOO_MANY_KEY_MATERIALS.into()))?;
        let (object_id, label) = (token_object_id(&k.key_id, v32), key_object_label(k, v32));
        let bad_ciphertext = |e: crate::token::TokenError| {
            tracing::info!(key_id = %k.key_id, error = %e, "key material import rejected");
            if e.kind() == FaultKind::BadInput {
                // AWS's InvalidCiphertextException carries no message (recorded for Decrypt;
                // local-kms answers ImportKeyMaterial the same way).
                KmsError::InvalidCiphertext(String::new())
            } else {
                e.into()
            }
        };
        let (pair, usage) = match &w.what {
            Imported::Secret(kind) => {
                let kcv = token
                    .unwrap_import(
                        w.wrapping_id.clone(),
                        w.wrap,
                        w.material.clone(),
                        *kind,
                        object_id,
                        label,
                        persistent,
                    )
                    .await
                    .map_err(bad_ciphertext)?;
                return Ok(check_digest(&kcv));
            }
            Imported::Pair(pair, usage) => (pair.clone(), *usage),
        };
        let unwrapped = token
            .unwrap_import_pair(
                w.wrapping_id.clone(),
                w.wrap,
                w.material.clone(),
                pair,
                usage,
                object_id.clone(),
                label,
                persistent,
            )
            .await
            .map_err(bad_ciphertext)?;
        let public = match unwrapped {
            Ok(public) => public,
            Err(InvalidMaterial(why)) => {
                tracing::info!(key_id = %k.key_id, why, "asymmetric key material rejected");
                return Err(KmsError::IncorrectKeyMaterial(texts::material_not_pkcs8(
                    k.key_spec.as_str(),
                )));
            }
        };
        match spki_der(&public) {
            Ok(spki) => Ok(check_digest(&spki)),
            Err(e) => {
                if persistent {
                    let _ = token.destroy(object_id).await;
                }
                Err(e)
            }
        }
    }

    pub async fn delete_imported_key_material(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        key_material_id: Option<&str>,
    ) -> Result<(String, String)> {
        let k = self
            .resolve(ctx, key, Op::new(Action::DeleteImportedKeyMaterial))
            .await?;
        require_external(&k)?;
        let token = k.token(self)?;
        let k = k.into_record();
        if !matches!(
            k.state,
            KeyState::Enabled
                | KeyState::Disabled
                | KeyState::PendingDeletion
                | KeyState::PendingImport
        ) {
            return Err(state_error(&k.arn(), k.state));
        }
        let rec = self.store.get_import(k.key_id).await?.unwrap_or_default();
        let target = match key_material_id {
            Some(id) => rec
                .materials
                .iter()
                .find(|m| imported_material_id(&k.material_key(), &m.check_value) == id)
                .ok_or_else(|| KmsError::NotFound(texts::material_not_found(id, &k.arn())))?,
            None => rec
                .materials
                .iter()
                .find(|m| m.version == k.current_version)
                .ok_or_else(|| state_error(&k.arn(), KeyState::PendingImport))?,
        };
        if !target.imported {
            return Err(state_error(&k.arn(), KeyState::PendingImport));
        }
        let id = imported_material_id(&k.material_key(), &target.check_value);
        self.remove_material(&token, k.clone(), target.clone())
            .await?;
        Ok((k.arn(), id))
    }

    /// Take one imported material out of the token (DeleteImportedKeyMaterial, expiry). One
    /// pending rotation is forgotten entirely; a material the key keeps is marked not imported
    /// — with the key's state `PendingImport` (unless pending deletion), in one transaction —
    /// before its object is destroyed and its version removed (a crash in between leaves a
    /// version no imported material names; the next import removes it).
    pub(crate) async fn remove_material(
        &self,
        token: &KeyToken,
        key: KeyRecord,
        m: MaterialRecord,
    ) -> Result<()> {
        let v32 = u32::try_from(m.version).unwrap_or(u32::MAX);
        let key_id = key.key_id;
        if m.version > key.current_version {
            self.store.delete_material(key.key_id, m.version).await?;
        } else {
            let mut key = key;
            let mut gone = MaterialRecord {
                imported: false,
                ..m.clone()
            };
            let mut done = false;
            for _ in 0..8 {
                let change = matches!(key.state, KeyState::Enabled | KeyState::Disabled);
                if change {
                    key.state = KeyState::PendingImport;
                }
                match self
                    .store
                    .put_material(&gone, false, change.then_some(&key))
                    .await
                {
                    Ok(_) => {
                        done = true;
                        break;
                    }
                    Err(StoreError::Conflict) => {
                        key =
                            self.store.get_key(key.key_id).await?.ok_or_else(|| {
                                KmsError::NotFound(texts::key_not_found(&key.arn()))
                            })?;
                        if let Some(fresh) =
                            self.store.get_import(key.key_id).await?.and_then(|r| {
                                r.materials.into_iter().find(|x| x.version == m.version)
                            })
                        {
                            gone = MaterialRecord {
                                imported: false,
                                ..fresh
                            };
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !done {
                return Err(KmsError::Conflict(texts::CONCURRENT_MODIFICATION.into()));
            }
        }
        crate::failpoint::hit("delete_material.after_state");
        token.destroy(token_object_id(&key_id, v32)).await?;
        crate::failpoint::hit("delete_material.after_destroy");
        self.store.delete_version(key_id, m.version).await?;
        Ok(())
    }

    /// Destroy the import wrapping key of a deleted key (a failure leaves an orphan that
    /// reconciliation reports).
    pub(crate) async fn destroy_wrapping_key(&self, token: &KeyToken, k: &KeyRecord) {
        if k.origin != Origin::External {
            return;
        }
        let result = async {
            if let Some(rec) = self.store.get_import(k.key_id).await? {
                if let Some(id) = rec.wrapping_object_id.clone() {
                    token.destroy(id).await?;
                    let cleared = ImportRecord {
                        key_id: k.key_id,
                        ..Default::default()
                    };
                    self.store.set_import_parameters(&cleared).await?;
                }
            }
            Ok::<(), KmsError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(key_id = %k.key_id, error = %e, "could not destroy the wrapping key of a deleted key");
        }
    }

    /// A key as requests see it: an imported key lacks material — one it keeps (up to its
    /// current version) is deleted or past its `ValidTo` — is `PendingImport`, even before the
    /// expiry job has destroyed it.
    pub(crate) async fn with_expiry(&self, mut k: KeyRecord) -> Result<KeyRecord> {
        if k.origin == Origin::External && matches!(k.state, KeyState::Enabled | KeyState::Disabled)
        {
            if let Some(rec) = self.store.get_import(k.key_id).await? {
                let now = self.now();
                let lacking = rec
                    .materials
                    .iter()
                    .filter(|m| m.version <= k.current_version)
                    .any(|m| !m.imported || expired(m, now));
                if lacking {
                    k.state = KeyState::PendingImport;
                }
            }
        }
        Ok(k)
    }

    /// The expiry job for one key: each imported material past its `ValidTo` is taken out of
    /// the token (`remove_material`). Returns the number of destroyed objects.
    pub(crate) async fn expire_material(&self, token: &KeyToken, key: KeyRecord) -> Result<usize> {
        let now = self.now();
        let rec = self.store.get_import(key.key_id).await?.unwrap_or_default();
        let mut n = 0;
        for m in rec
            .materials
            .into_iter()
            .filter(|m| m.imported && expired(m, now))
        {
            let key = self
                .store
                .get_key(key.key_id)
                .await?
                .ok_or_else(|| KmsError::NotFound(texts::key_not_found(&key.arn())))?;
            self.remove_material(token, key, m).await?;
            n += 1;
        }
        Ok(n)
    }

    /// The `KeyMaterialId` of a key's material at `version`: for imported material derived
    /// from the key id and the material's check value, else from the key id and the version.
    pub(crate) async fn material_id_of(&self, k: &KeyRecord, version: i64) -> Result<String> {
        if k.origin == Origin::External {
            if let Some(rec) = self.store.get_import(k.key_id).await? {
                if let Some(m) = rec.materials.iter().find(|m| m.version == version) {
                    return Ok(imported_material_id(&k.material_key(), &m.check_value));
                }
            }
        }
        Ok(material_id(&k.material_key(), version as u32))
    }
}

/// Has this material passed its `ValidTo`?
pub(crate) fn expired(m: &MaterialRecord, now: Millis) -> bool {
    m.expiration_model == ExpirationModel::KeyMaterialExpires.as_str()
        && m.valid_to.is_some_and(|t| t <= now)
}

/// The material waiting for on-demand rotation (above the key's current version), if any.
fn pending_rotation<'a>(
    k: &KeyRecord,
    materials: &'a [MaterialRecord],
) -> Option<&'a MaterialRecord> {
    materials.iter().find(|m| m.version > k.current_version)
}

/// The public identifier of imported key material (64 lowercase hex characters): derived from
/// the key id and the material's check value, which the token computed (never from the
/// material itself). The same material imported into the same key has the same id.
pub fn imported_material_id(key_id: &Uuid, check_value: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"kms-bridge imported key material\0");
    h.update(key_id.as_bytes());
    h.update(check_value);
    hex::encode(h.finalize())
}

/// Wrapped material of one ImportKeyMaterial request and what it must become.
struct Wrapped {
    wrapping_id: Vec<u8>,
    wrap: ImportWrap,
    material: Vec<u8>,
    what: Imported,
}

/// Can `len` bytes be material wrapped under the import parameters' RSA key (`spec`) with
/// `wrap`? RSA-OAEP gives exactly the modulus' length; RSA-AES key wrap gives the RSA-wrapped AES
/// key (the modulus' length) and then AES-KWP output (a multiple of 8, at least 16).
fn encrypted_size_fits(spec: Option<&str>, wrap: ImportWrap, len: usize) -> bool {
    let Some(modulus) = spec.and_then(WrappingKeySpec::parse).and_then(|s| match s {
        WrappingKeySpec::Rsa2048 => Some(256),
        WrappingKeySpec::Rsa3072 => Some(384),
        WrappingKeySpec::Rsa4096 => Some(512),
        WrappingKeySpec::Sm2 => None,
    }) else {
        // Parameters without an RSA wrapping key are refused as an invalid token elsewhere.
        return true;
    };
    match wrap {
        ImportWrap::RsaOaep(_) => len == modulus,
        ImportWrap::RsaAesKwp(_) => len >= modulus + 16 && (len - modulus) % 8 == 0,
    }
}

fn incorrect_material() -> KmsError {
    KmsError::IncorrectKeyMaterial(texts::INCORRECT_KEY_MATERIAL.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_algorithms_map_to_token_mechanisms() {
        assert_eq!(
            wrap_of(WrappingAlgorithm::RsaesOaepSha1),
            Some(ImportWrap::RsaOaep(HashAlg::Sha1))
        );
        assert_eq!(
            wrap_of(WrappingAlgorithm::RsaAesKeyWrapSha256),
            Some(ImportWrap::RsaAesKwp(HashAlg::Sha256))
        );
        assert_eq!(wrap_of(WrappingAlgorithm::RsaesPkcs1V15), None);
        let caps = Capabilities::everything();
        for spec in [
            KeySpec::SymmetricDefault,
            KeySpec::Hmac256,
            KeySpec::Rsa2048,
            KeySpec::EccNistP521,
            KeySpec::EccSecgP256k1,
        ] {
            assert!(importable(&caps, spec), "{spec}");
        }
        let mut no_ecdh = caps.clone();
        no_ecdh.ecdh_derive = false;
        assert!(!importable(&no_ecdh, KeySpec::EccNistP256));
        assert!(!importable_specs(&no_ecdh).contains("ECC"));
        assert!(importable(
            &Capabilities::default(),
            KeySpec::SymmetricDefault
        ));
        assert!(!importable(&Capabilities::default(), KeySpec::Rsa2048));
    }

    #[test]
    fn wrapping_algorithms_fit_key_material_as_aws_allows() {
        use WrappingAlgorithm as A;
        let fits = |key: KeySpec, alg: A, spec: WrappingKeySpec| {
            wrap_of(alg).is_some_and(|w| wrapping_fits(key, alg, w, spec).is_ok())
        };
        for rsa in [KeySpec::Rsa2048, KeySpec::Rsa4096] {
            assert!(!fits(rsa, A::RsaesOaepSha1, WrappingKeySpec::Rsa4096));
            assert!(!fits(rsa, A::RsaesOaepSha256, WrappingKeySpec::Rsa4096));
            assert!(fits(rsa, A::RsaAesKeyWrapSha1, WrappingKeySpec::Rsa2048));
        }
        assert!(!fits(
            KeySpec::EccNistP521,
            A::RsaesOaepSha1,
            WrappingKeySpec::Rsa2048
        ));
        assert!(fits(
            KeySpec::EccNistP521,
            A::RsaesOaepSha1,
            WrappingKeySpec::Rsa3072
        ));
        assert!(fits(
            KeySpec::EccNistP521,
            A::RsaAesKeyWrapSha1,
            WrappingKeySpec::Rsa2048
        ));
        assert!(fits(
            KeySpec::EccNistP256,
            A::RsaesOaepSha1,
            WrappingKeySpec::Rsa2048
        ));
        assert!(fits(
            KeySpec::SymmetricDefault,
            A::RsaesOaepSha256,
            WrappingKeySpec::Rsa2048
        ));
    }

    #[test]
    fn check_digest_is_not_the_check_value() {
        let d = check_digest(b"0123456789abcdef");
        assert_eq!(d.len(), 32);
        assert_ne!(&d[..16], b"0123456789abcdef");
    }
}
