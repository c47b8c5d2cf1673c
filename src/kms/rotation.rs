//! Key rotation: Enable/DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
//! ListKeyRotations. A rotation adds a key version (a new token object); old versions stay in
//! the token and keep decrypting what they encrypted.

use super::authz::{Op, Permitted};
use super::ids::KeyRef;
use super::texts;
use super::{
    material_id, page_limit, require_enabled, token_object_id, token_object_label, Kms, KmsError,
    Page, RequestContext, Result, MS_PER_DAY,
};
use crate::model::{KeyMaterialState, KeySpec, KeyState, Origin, RotationType};
use crate::operations::Action;
use crate::store::{KeyRecord, Millis, StoreError, VersionRecord};

/// On-demand rotations allowed per key.
pub const MAX_ON_DEMAND_ROTATIONS: usize = 25;
pub const DEFAULT_ROTATION_PERIOD_DAYS: i64 = 365;

#[derive(Debug)]
pub struct RotationStatus {
    pub arn: String,
    pub enabled: bool,
    pub period_days: Option<i64>,
    pub next_rotation: Option<Millis>,
}

#[derive(Debug)]
pub struct RotationEntry {
    pub key_id: String,
    pub material_id: String,
    /// When the material became current by a rotation (None: the first, or pending).
    pub rotation_date: Option<Millis>,
    pub rotation_type: Option<RotationType>,
    pub state: KeyMaterialState,
    /// Imported material (symmetric EXTERNAL keys) only.
    pub import: Option<ImportedEntry>,
}

/// What a ListKeyRotations entry says of imported material.
#[derive(Debug)]
pub struct ImportedEntry {
    pub imported: bool,
    pub description: Option<String>,
    pub expiration_model: String,
    pub valid_to: Option<Millis>,
}

/// Which rotations a key has: automatic and on-demand (`AWS_KMS`), or on-demand rotation to
/// imported material only (symmetric `EXTERNAL` keys: `imported_too`).
fn require_rotatable(key: &KeyRecord, imported_too: bool) -> Result<()> {
    // As recorded against AWS (LocalStack's snapshots of RotateKeyOnDemand): a key that is not
    // symmetric gets UnsupportedOperationException without a message; a symmetric key of
    // another origin, AWS's origin text.
    if key.key_spec != KeySpec::SymmetricDefault {
        return Err(KmsError::UnsupportedOperation(String::new()));
    }
    let imported = imported_too && key.origin == Origin::External;
    if key.origin != Origin::AwsKms && !imported {
        return Err(KmsError::UnsupportedOperation(texts::origin_not_valid(
            &key.arn(),
            key.origin,
        )));
    }
    Ok(())
}

fn validate_period(days: Option<i64>) -> Result<i64> {
    let d = days.unwrap_or(DEFAULT_ROTATION_PERIOD_DAYS);
    if (90..=2560).contains(&d) {
        Ok(d)
    } else {
        let bound = if d < 90 {
            super::texts::at_least(90)
        } else {
            super::texts::at_most(2560)
        };
        Err(KmsError::Validation(super::texts::validation(&[
            super::texts::constraint(&d.to_string(), "rotationPeriodInDays", &bound),
        ])))
    }
}

impl Kms {
    pub async fn enable_key_rotation(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        period_days: Option<i64>,
    ) -> Result<()> {
        let period = validate_period(period_days)?;
        let op =
            Op::new(Action::EnableKeyRotation).fact("kms:RotationPeriodInDays", period.to_string());
        let k = self.resolve(ctx, key, op).await?;
        let now = self.now();
        // Automatic rotation is a shared property of a multi-Region key: set on its primary.
        self.update_shared(ctx, k, |k| {
            require_rotatable(k, false)?;
            require_enabled(k)?;
            Kms::require_not_replica(k)?;
            k.rotation_enabled = true;
            k.rotation_period_days = Some(period);
            k.rotation_base = Some(now);
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn disable_key_rotation(&self, ctx: &RequestContext, key: &KeyRef) -> Result<()> {
        let k = self
            .resolve(ctx, key, Op::new(Action::DisableKeyRotation))
            .await?;
        self.update_shared(ctx, k, |k| {
            require_rotatable(k, false)?;
            require_enabled(k)?;
            Kms::require_not_replica(k)?;
            k.rotation_enabled = false;
            k.rotation_period_days = None;
            k.rotation_base = None;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn get_key_rotation_status(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
    ) -> Result<RotationStatus> {
        let k = self
            .resolve(ctx, key, Op::new(Action::GetKeyRotationStatus))
            .await?;
        require_rotatable(&k, false)?;
        // A key pending deletion reports rotation off; the setting returns on cancel.
        let enabled = k.rotation_enabled
            && !matches!(
                k.state,
                KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
            );
        let next_rotation = match (enabled, k.rotation_base, k.rotation_period_days) {
            (true, Some(base), Some(days)) => Some(base + days * MS_PER_DAY),
            _ => None,
        };
        Ok(RotationStatus {
            arn: k.arn(),
            enabled,
            period_days: if enabled {
                k.rotation_period_days
            } else {
                None
            },
            next_rotation,
        })
    }

    pub async fn rotate_key_on_demand(&self, ctx: &RequestContext, key: &KeyRef) -> Result<String> {
        let k = self
            .resolve(ctx, key, Op::new(Action::RotateKeyOnDemand))
            .await?;
        // AWS checks the state before the key type.
        require_enabled(&k)?;
        require_rotatable(&k, true)?;
        // A multi-Region key's set is rotated on its primary.
        Kms::require_not_replica(&k)?;
        if k.origin == Origin::External {
            let k = self.rotate_to_imported(ctx, k.into_record()).await?;
            return Ok(k.arn());
        }
        let versions = self.store.versions(k.key_id).await?;
        let on_demand = versions
            .iter()
            .filter(|v| v.rotation_type == Some(RotationType::OnDemand))
            .count();
        if on_demand >= MAX_ON_DEMAND_ROTATIONS {
            return Err(KmsError::LimitExceeded(
                super::texts::on_demand_rotation_limit(&k.arn()),
            ));
        }
        let k = self.rotate(ctx, k, RotationType::OnDemand).await?;
        Ok(k.arn())
    }

    /// On-demand rotation of an imported key: the material pending rotation (imported, not
    /// expired) becomes current; the key's earlier materials keep decrypting.
    async fn rotate_to_imported(
        &self,
        ctx: &RequestContext,
        mut key: KeyRecord,
    ) -> Result<KeyRecord> {
        for _ in 0..8 {
            let rec = self.store.get_import(key.key_id).await?.unwrap_or_default();
            let now = self.now();
            let pending = rec.materials.iter().find(|m| {
                m.version > key.current_version && m.imported && !super::import::expired(m, now)
            });
            let Some(pending) = pending else {
                return Err(KmsError::InvalidState(
                    super::texts::no_material_pending_rotation(&key.arn()),
                ));
            };
            let on_demand = rec
                .materials
                .iter()
                .filter(|m| m.rotation_type == Some(RotationType::OnDemand))
                .count();
            if on_demand >= MAX_ON_DEMAND_ROTATIONS {
                return Err(KmsError::LimitExceeded(
                    super::texts::on_demand_rotation_limit(&key.arn()),
                ));
            }
            let mut rotated = key.clone();
            rotated.current_version = pending.version;
            match self
                .store
                .rotate_to_material(&rotated, pending.version, now)
                .await
            {
                Ok(revision) => {
                    rotated.revision = revision;
                    return Ok(rotated);
                }
                Err(StoreError::Conflict) | Err(StoreError::NotFound) => {
                    key = self
                        .load_key(ctx, key.key_id)
                        .await?
                        .ok_or_else(|| KmsError::NotFound(texts::key_not_found(&key.arn())))?;
                    require_enabled(&key)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(KmsError::Conflict(texts::CONCURRENT_MODIFICATION.into()))
    }

    /// Add a version: record the intent, create the token object, then make it current.
    pub(crate) async fn rotate(
        &self,
        ctx: &RequestContext,
        key: Permitted,
        rotation_type: RotationType,
    ) -> Result<KeyRecord> {
        let token = key.token(self)?;
        let mut key = key.into_record();
        if key.multi_region.is_some() {
            return self.rotate_set(&token, key, rotation_type).await;
        }
        let version = key.current_version + 1;
        let v32 = u32::try_from(version)
            .map_err(|_| KmsError::LimitExceeded(texts::TOO_MANY_KEY_VERSIONS.into()))?;
        let now = self.now();
        let object_id = token_object_id(&key.key_id, v32);
        let rec = VersionRecord {
            key_id: key.key_id,
            version,
            token_object_id: object_id.clone(),
            material_id: material_id(&key.key_id, v32),
            created_at: now,
            rotation_type: Some(rotation_type),
            pending: true,
        };
        match self.store.insert_version(&rec).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => {
                return Err(KmsError::Conflict(texts::already_rotating(&key.arn())))
            }
            Err(e) => return Err(e.into()),
        }
        crate::failpoint::hit("rotate.after_intent");
        if let Err(e) = token
            .generate_aes_key(object_id, token_object_label(&key.key_id, v32))
            .await
        {
            if let Err(undo) = self.store.delete_pending_version(key.key_id, version).await {
                tracing::error!(key_id = %key.key_id, error = %undo, "could not undo pending version; reconciliation will");
            }
            return Err(e.into());
        }
        crate::failpoint::hit("rotate.after_material");
        key.current_version = version;
        if rotation_type == RotationType::Automatic {
            key.rotation_base = Some(now);
        }
        match self.store.activate_version(&key, version).await {
            Ok(revision) => {
                key.revision = revision;
                Ok(key)
            }
            // Someone else changed the key meanwhile (even disabled it): the new material exists,
            // so finish the switch on a fresh copy rather than leave a pending version behind.
            Err(StoreError::Conflict) => {
                let fresh = self
                    .load_key(ctx, key.key_id)
                    .await?
                    .ok_or_else(|| KmsError::NotFound(texts::key_not_found(&key.arn())))?;
                let base = key.rotation_base;
                let k = self
                    .update_record(ctx, fresh, |k| {
                        k.current_version = k.current_version.max(version);
                        if rotation_type == RotationType::Automatic {
                            k.rotation_base = base;
                        }
                        Ok(())
                    })
                    .await?;
                match self.store.activate_version(&k, version).await {
                    Ok(revision) => Ok(KeyRecord { revision, ..k }),
                    Err(StoreError::Conflict) => Ok(k),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_key_rotations(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        include_all_material: bool,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<RotationEntry>> {
        let limit = page_limit(limit, 1000, 100)? as usize;
        let k = self
            .resolve(ctx, key, Op::new(Action::ListKeyRotations))
            .await?;
        if include_all_material && k.key_spec != KeySpec::SymmetricDefault {
            return Err(KmsError::Validation(
                texts::INCLUDE_KEY_MATERIAL_SYMMETRIC_ONLY.into(),
            ));
        }
        require_rotatable(&k, true)?;
        let after: i64 = match marker {
            Some(m) => m
                .parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| KmsError::InvalidMarker(texts::invalid_marker(m)))?,
            None => 0,
        };
        let state = |version: i64| match version.cmp(&k.current_version) {
            std::cmp::Ordering::Equal => KeyMaterialState::Current,
            std::cmp::Ordering::Less => KeyMaterialState::NonCurrent,
            std::cmp::Ordering::Greater => KeyMaterialState::PendingRotation,
        };
        let mut entries: Vec<(i64, RotationEntry)> = Vec::new();
        if k.origin == Origin::External {
            let rec = self.store.get_import(k.key_id).await?.unwrap_or_default();
            for m in rec.materials {
                if m.version <= after || !(include_all_material || m.rotation_type.is_some()) {
                    continue;
                }
                entries.push((
                    m.version,
                    RotationEntry {
                        key_id: k.key_id.to_string(),
                        material_id: super::import::imported_material_id(
                            &k.material_key(),
                            &m.check_value,
                        ),
                        rotation_date: m.rotated_at,
                        rotation_type: m.rotation_type,
                        state: state(m.version),
                        import: Some(ImportedEntry {
                            imported: m.imported,
                            description: m.description,
                            expiration_model: m.expiration_model,
                            valid_to: m.valid_to,
                        }),
                    },
                ));
            }
        } else {
            for v in self.store.versions(k.key_id).await? {
                if v.pending
                    || v.version <= after
                    || !(include_all_material || v.rotation_type.is_some())
                {
                    continue;
                }
                entries.push((
                    v.version,
                    RotationEntry {
                        key_id: k.public_id(),
                        material_id: v.material_id,
                        rotation_date: v.rotation_type.map(|_| v.created_at),
                        rotation_type: v.rotation_type,
                        state: state(v.version),
                        import: None,
                    },
                ));
            }
        }
        let next_marker = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(v, _)| v.to_string())
        } else {
            None
        };
        Ok(Page {
            items: entries.into_iter().map(|(_, e)| e).collect(),
            next_marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_period_bounds() {
        assert_eq!(validate_period(None).unwrap(), 365);
        assert_eq!(validate_period(Some(90)).unwrap(), 90);
        assert_eq!(validate_period(Some(2560)).unwrap(), 2560);
        assert!(matches!(
            validate_period(Some(89)),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            validate_period(Some(2561)),
            Err(KmsError::Validation(_))
        ));
    }
}
