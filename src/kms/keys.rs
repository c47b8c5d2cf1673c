//! Key lifecycle and metadata: CreateKey, DescribeKey, ListKeys, Enable/DisableKey,
//! Schedule/CancelKeyDeletion, UpdateKeyDescription, tags and the stored key policy.

use crate::operations::Action;
use uuid::Uuid;

use super::asymmetric::plan_material;
use super::authz::Op;
use super::ids::KeyRef;
use super::{
    key_object_label, material_id, page_limit, require_not_pending_deletion, state_error, texts,
    token_object_id, Kms, KmsError, RequestContext, Result, MS_PER_DAY,
};
use crate::model::{KeyManager, KeySpec, KeyState, KeyUsage, Origin};
use crate::policy::{Context, Policy, PolicyKind};
use crate::store::{KeyRecord, MultiRegion, StoreError, TagRecord, VersionRecord};

/// Maximum tags on one key.
pub const MAX_TAGS: usize = 50;
/// Maximum key policy size in bytes.
pub const MAX_POLICY_BYTES: usize = 32_768;

#[derive(Debug, Default)]
pub struct CreateKeyInput {
    pub bypass_policy_lockout_safety_check: bool,
    pub description: Option<String>,
    pub key_usage: Option<KeyUsage>,
    pub key_spec: Option<KeySpec>,
    pub origin: Option<Origin>,
    pub custom_key_store_id: Option<String>,
    pub multi_region: bool,
    pub policy: Option<String>,
    pub tags: Vec<TagRecord>,
}

/// A key's metadata as the caller sees it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub arn: String,
    pub record: KeyRecord,
    pub current_material_id: String,
    /// The state as callers see it (Unavailable while the key's custom key store is disconnected).
    pub state: KeyState,
    /// For keys in a custom key store: the token label (CloudHsmClusterId).
    pub cluster_id: Option<String>,
    /// Imported keys: the expiration model and `ValidTo` of the current material.
    pub expiration: Option<(String, Option<i64>)>,
    /// Multi-Region keys: `MultiRegionConfiguration`.
    pub multi_region: Option<MultiRegionView>,
}

/// A multi-Region key's `MultiRegionConfiguration`: its role, the primary key and every
/// replica, as (key ARN, region).
#[derive(Debug, Clone)]
pub struct MultiRegionView {
    pub primary: bool,
    pub primary_key: (String, String),
    pub replicas: Vec<(String, String)>,
}

impl KeyInfo {
    pub(super) fn new(record: KeyRecord) -> KeyInfo {
        KeyInfo {
            expiration: None,
            arn: record.arn(),
            current_material_id: material_id(&record.material_key(), record.current_version as u32),
            state: record.state,
            cluster_id: None,
            multi_region: None,
            record,
        }
    }
}

/// `ExpirationModel` and `ValidTo` of an imported key: the earliest `ValidTo` of the imported
/// materials it keeps (up to its current version), `KEY_MATERIAL_DOES_NOT_EXPIRE` when none
/// expires; None before the first import.
fn expiration(
    materials: &[crate::store::MaterialRecord],
    current_version: i64,
) -> Option<(String, Option<i64>)> {
    let kept: Vec<_> = materials
        .iter()
        .filter(|m| m.version <= current_version && m.imported)
        .collect();
    if kept.is_empty() {
        return None;
    }
    let expires = crate::model::ExpirationModel::KeyMaterialExpires.as_str();
    let valid_to = kept
        .iter()
        .filter(|m| m.expiration_model == expires)
        .filter_map(|m| m.valid_to)
        .min();
    let model = match valid_to {
        Some(_) => expires,
        None => crate::model::ExpirationModel::KeyMaterialDoesNotExpire.as_str(),
    };
    Some((model.to_string(), valid_to))
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

#[derive(Debug)]
pub struct ScheduledDeletion {
    pub arn: String,
    /// `PendingDeletion`, or `PendingReplicaDeletion` for a multi-Region primary key with
    /// replicas (whose deletion date is not known yet).
    pub state: KeyState,
    pub deletion_date: Option<i64>,
    pub pending_window_days: i64,
}

/// A new multi-Region set id: 128 random bits (the key id is `mrk-` + their 32 hex digits).
fn new_mrk_id() -> Result<Uuid> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b)
        .map_err(|e| KmsError::Internal(format!("no random bytes for a key id: {e}")))?;
    Ok(Uuid::from_bytes(b))
}

/// The `MultiRegionConfiguration` of `key`, one of the members `set` (ordered by region).
pub(super) fn multi_region_view(key: &KeyRecord, set: &[KeyRecord]) -> MultiRegionView {
    let primary_region = key
        .multi_region
        .as_ref()
        .map(|m| m.primary_region.clone())
        .unwrap_or_default();
    let arn_in = |region: &str| {
        format!(
            "arn:aws:kms:{region}:{}:key/{}",
            key.account,
            key.public_id()
        )
    };
    MultiRegionView {
        primary: key.region == primary_region,
        primary_key: (arn_in(&primary_region), primary_region.clone()),
        replicas: set
            .iter()
            .filter(|k| k.region != primary_region)
            .map(|k| (arn_in(&k.region), k.region.clone()))
            .collect(),
    }
}

pub fn default_policy(account: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}

pub(super) fn validate_policy(policy: &str) -> Result<Policy> {
    if policy.len() > MAX_POLICY_BYTES {
        return Err(KmsError::LimitExceeded(texts::policy_too_large(
            MAX_POLICY_BYTES,
        )));
    }
    Policy::parse(policy, PolicyKind::Key).map_err(|e| {
        tracing::debug!(reason = %e, "key policy refused");
        KmsError::MalformedPolicyDocument(texts::malformed_policy(&e))
    })
}

pub(super) fn validate_tags(tags: &[TagRecord]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        // Lengths are model constraints (ValidationException), the rest TagException.
        let n = seen.len() + 1;
        let len = t.key.chars().count();
        if len == 0 || len > 128 {
            let bound = if len == 0 {
                texts::length_at_least(1)
            } else {
                texts::length_at_most(128)
            };
            return Err(KmsError::Validation(texts::validation(&[
                texts::constraint(&t.key, &format!("tags.{n}.member.tagKey"), &bound),
            ])));
        }
        if t.value.chars().count() > 256 {
            return Err(KmsError::Validation(texts::validation(&[
                texts::constraint(
                    &t.value,
                    &format!("tags.{n}.member.tagValue"),
                    &texts::length_at_most(256),
                ),
            ])));
        }
        if t.key
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
        {
            return Err(KmsError::Tag(texts::RESERVED_TAG_PREFIX.into()));
        }
        if !seen.insert(t.key.as_str()) {
            return Err(KmsError::Tag(texts::DUPLICATE_TAG_KEYS.into()));
        }
    }
    Ok(())
}

impl Kms {
    pub async fn create_key(&self, ctx: &RequestContext, input: CreateKeyInput) -> Result<KeyInfo> {
        let spec = input.key_spec.unwrap_or(KeySpec::SymmetricDefault);
        let usage = input.key_usage.unwrap_or(KeyUsage::EncryptDecrypt);
        let origin = input.origin.unwrap_or(Origin::AwsKms);
        let mut facts = Context::new();
        facts.set("kms:KeySpec", spec.as_str());
        facts.set("kms:CustomerMasterKeySpec", spec.as_str());
        facts.set("kms:KeyUsage", usage.as_str());
        facts.set("kms:CustomerMasterKeyUsage", usage.as_str());
        facts.set("kms:KeyOrigin", origin.as_str());
        facts.set_bool("kms:MultiRegion", input.multi_region);
        facts.set_bool(
            "kms:BypassPolicyLockoutSafetyCheck",
            input.bypass_policy_lockout_safety_check,
        );
        facts.set_multi(
            "aws:TagKeys",
            input.tags.iter().map(|t| t.key.clone()).collect(),
        );
        for t in &input.tags {
            facts.set(&format!("aws:RequestTag/{}", t.key), t.value.clone());
        }
        let permit = self.authorize_account(ctx, Action::CreateKey, "*", facts)?;
        let description = input.description.unwrap_or_default();
        if description.chars().count() > 8192 {
            return Err(KmsError::Validation(texts::description_too_long(
                &description,
            )));
        }
        let store_token = match &input.custom_key_store_id {
            Some(id) => {
                if spec != KeySpec::SymmetricDefault
                    || input
                        .key_usage
                        .is_some_and(|u| u != KeyUsage::EncryptDecrypt)
                {
                    return Err(KmsError::UnsupportedOperation(
                        texts::CUSTOM_KEY_STORE_SYMMETRIC_ONLY.into(),
                    ));
                }
                if input.origin.is_some_and(|o| o != Origin::AwsCloudHsm) {
                    return Err(KmsError::Validation(texts::CUSTOM_KEY_STORE_ORIGIN.into()));
                }
                Some(self.connected_store(ctx, &permit, id).await?)
            }
            None if origin == Origin::AwsCloudHsm => {
                return Err(KmsError::Validation(texts::CLOUDHSM_NEEDS_STORE.into()))
            }
            None => None,
        };
        let origin = if store_token.is_some() {
            Origin::AwsCloudHsm
        } else {
            origin
        };
        if input.multi_region && store_token.is_some() {
            // AWS: "you cannot create a multi-Region key in a custom key store" (CreateKey's
            // MultiRegion documentation); its exception text is not published.
            return Err(KmsError::UnsupportedOperation(
                texts::MULTI_REGION_IN_CUSTOM_KEY_STORE.into(),
            ));
        }
        let (usage, material) = plan_material(self.capabilities(), spec, input.key_usage)?;
        match origin {
            Origin::AwsKms | Origin::AwsCloudHsm => {}
            Origin::External if super::import::importable(self.capabilities(), spec) => {}
            Origin::External => {
                return Err(KmsError::UnsupportedOperation(
                    texts::external_key_spec_unsupported(
                        spec.as_str(),
                        &super::import::importable_specs(self.capabilities()),
                    ),
                ))
            }
            _ => {
                return Err(KmsError::UnsupportedOperation(texts::origin_unsupported(
                    origin,
                )))
            }
        }
        let (policy, parsed) = match input.policy {
            Some(p) => {
                let parsed = validate_policy(&p)?;
                (p, Some(parsed))
            }
            None => (default_policy(&ctx.account), None),
        };
        validate_tags(&input.tags)?;
        if input.tags.len() > MAX_TAGS {
            return Err(KmsError::Tag(texts::TOO_MANY_TAGS.into()));
        }

        let now = self.now();
        // A multi-Region primary: a new set, whose member in this region this key is.
        let multi_region = match input.multi_region {
            true => Some(MultiRegion {
                mrk: new_mrk_id()?,
                primary_region: ctx.region.clone(),
            }),
            false => None,
        };
        let key_id = match &multi_region {
            Some(m) => super::ids::mrk_row_id(&m.mrk, &ctx.region),
            None => Uuid::new_v4(),
        };
        let mut key = KeyRecord {
            key_id,
            region: ctx.region.clone(),
            account: ctx.account.clone(),
            description,
            key_spec: spec,
            key_usage: usage,
            origin,
            state: KeyState::Creating,
            created_at: now,
            deletion_date: None,
            pending_window_days: None,
            rotation_enabled: false,
            rotation_period_days: None,
            rotation_base: None,
            current_version: 1,
            policy,
            revision: 0,
            custom_key_store_id: input.custom_key_store_id.clone(),
            key_manager: KeyManager::Customer,
            mac: Vec::new(),
            multi_region,
        };
        if let Some(parsed) = &parsed {
            if !input.bypass_policy_lockout_safety_check
                && !self.policy_allows_put_key_policy(ctx, &key, parsed)?
            {
                return Err(KmsError::MalformedPolicyDocument(
                    texts::POLICY_LOCKOUT.into(),
                ));
            }
        }
        if origin == Origin::External {
            // No material until ImportKeyMaterial; nothing is created in the token.
            key.state = KeyState::PendingImport;
            self.store.insert_external_key(&key, &input.tags).await?;
            return Ok(KeyInfo::new(key));
        }
        let object_id = token_object_id(&key_id, 1);
        let label = key_object_label(&key, 1);
        let version = VersionRecord {
            key_id,
            version: 1,
            token_object_id: object_id.clone(),
            material_id: material_id(&key.material_key(), 1),
            created_at: now,
            rotation_type: None,
            pending: true,
        };
        // Intent first, then material, then completion: see reconcile.rs.
        self.store.insert_key(&key, &version, &input.tags).await?;
        crate::failpoint::hit("create_key.after_intent");
        let made = match &store_token {
            Some(t) => t
                .generate_aes_key(object_id, label)
                .await
                .map_err(KmsError::from),
            None => {
                self.generate_material(&permit.token(self), material, object_id, label, spec)
                    .await
            }
        };
        if let Err(e) = made {
            if let Err(undo) = self.store.delete_unfinished_key(key_id).await {
                tracing::error!(%key_id, error = %undo, "could not undo unfinished key; reconciliation will");
            }
            return Err(e);
        }
        crate::failpoint::hit("create_key.after_material");
        key.state = KeyState::Enabled;
        key.revision = self.store.activate_version(&key, 1).await?;
        self.key_info(key).await
    }

    /// KeyInfo with the state callers see and, for custom key store keys, the cluster id.
    pub(super) async fn key_info(&self, record: KeyRecord) -> Result<KeyInfo> {
        let mut info = KeyInfo::new(record);
        info.state = self.visible_state(&info.record);
        if let Some(m) = &info.record.multi_region {
            let set = self.store.multi_region_keys(m.mrk).await?;
            info.multi_region = Some(multi_region_view(&info.record, &set));
        }
        if info.record.origin == Origin::External {
            info.current_material_id = self
                .material_id_of(&info.record, info.record.current_version)
                .await?;
        }
        if let Some(id) = &info.record.custom_key_store_id {
            info.cluster_id = self
                .store
                .key_stores()
                .await?
                .into_iter()
                .find(|s| &s.id == id)
                .map(|s| s.cluster_id);
        }
        Ok(info)
    }

    pub async fn describe_key(&self, ctx: &RequestContext, key: &KeyRef) -> Result<KeyInfo> {
        let k = self.resolve(ctx, key, Op::new(Action::DescribeKey)).await?;
        let mut info = self.key_info(k.into_record()).await?;
        if info.record.origin == Origin::External && info.record.state != KeyState::PendingImport {
            if let Some(rec) = self.store.get_import(info.record.key_id).await? {
                info.expiration = expiration(&rec.materials, info.record.current_version);
            }
        }
        Ok(info)
    }

    pub async fn list_keys(
        &self,
        ctx: &RequestContext,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<KeyInfo>> {
        let limit = page_limit(limit, 1000, 100)?;
        self.authorize_account(ctx, Action::ListKeys, "*", Context::new())?;
        let after = match marker {
            Some(m) => Some(
                Uuid::parse_str(m)
                    .map_err(|_| KmsError::InvalidMarker(texts::invalid_marker(m)))?,
            ),
            None => None,
        };
        let mut rows = self
            .store
            .list_keys(&ctx.region, &ctx.account, after, limit + 1)
            .await?;
        let next_marker = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|k| k.key_id.to_string())
        } else {
            None
        };
        Ok(Page {
            items: rows.into_iter().map(KeyInfo::new).collect(),
            next_marker,
        })
    }

    pub async fn enable_key(&self, ctx: &RequestContext, key: &KeyRef) -> Result<()> {
        let k = self.resolve(ctx, key, Op::new(Action::EnableKey)).await?;
        self.update_key(ctx, k, |k| match k.state {
            KeyState::Enabled | KeyState::Disabled => {
                k.state = KeyState::Enabled;
                Ok(())
            }
            s => Err(state_error(&k.arn(), s)),
        })
        .await?;
        Ok(())
    }

    pub async fn disable_key(&self, ctx: &RequestContext, key: &KeyRef) -> Result<()> {
        let k = self.resolve(ctx, key, Op::new(Action::DisableKey)).await?;
        self.update_key(ctx, k, |k| match k.state {
            KeyState::Enabled | KeyState::Disabled => {
                k.state = KeyState::Disabled;
                Ok(())
            }
            s => Err(state_error(&k.arn(), s)),
        })
        .await?;
        Ok(())
    }

    pub async fn schedule_key_deletion(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        pending_window_days: Option<i64>,
    ) -> Result<ScheduledDeletion> {
        let days = pending_window_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(KmsError::Validation(texts::PENDING_WINDOW_RANGE.into()));
        }
        let op = Op::new(Action::ScheduleKeyDeletion).fact(
            "kms:ScheduleKeyDeletionPendingWindowInDays",
            days.to_string(),
        );
        let k = self.resolve(ctx, key, op).await?;
        // A multi-Region primary key outlives its replicas: it waits in
        // PendingReplicaDeletion until the last one is deleted, then its window starts.
        let has_replicas = match &k.multi_region {
            Some(m) if k.is_primary() => self
                .store
                .multi_region_keys(m.mrk)
                .await?
                .iter()
                .any(|r| r.key_id != k.key_id),
            _ => false,
        };
        let deletion_date = self.now() + days * MS_PER_DAY;
        let k = self
            .update_key(ctx, k, |k| {
                require_not_pending_deletion(k)?;
                if matches!(k.state, KeyState::Creating | KeyState::Updating) {
                    return Err(state_error(&k.arn(), k.state));
                }
                if has_replicas {
                    k.state = KeyState::PendingReplicaDeletion;
                    k.deletion_date = None;
                } else {
                    k.state = KeyState::PendingDeletion;
                    k.deletion_date = Some(deletion_date);
                }
                k.pending_window_days = Some(days);
                Ok(())
            })
            .await?;
        Ok(ScheduledDeletion {
            arn: k.arn(),
            state: k.state,
            deletion_date: k.deletion_date,
            pending_window_days: days,
        })
    }

    pub async fn cancel_key_deletion(&self, ctx: &RequestContext, key: &KeyRef) -> Result<String> {
        let k = self
            .resolve(ctx, key, Op::new(Action::CancelKeyDeletion))
            .await?;
        let k = self
            .update_key(ctx, k, |k| {
                if !matches!(
                    k.state,
                    KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
                ) {
                    return Err(KmsError::InvalidState(texts::not_pending_deletion(
                        &k.arn(),
                    )));
                }
                k.state = KeyState::Disabled;
                k.deletion_date = None;
                k.pending_window_days = None;
                Ok(())
            })
            .await?;
        Ok(k.arn())
    }

    pub async fn update_key_description(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        description: String,
    ) -> Result<()> {
        if description.chars().count() > 8192 {
            return Err(KmsError::Validation(texts::description_too_long(
                &description,
            )));
        }
        let k = self
            .resolve(ctx, key, Op::new(Action::UpdateKeyDescription))
            .await?;
        self.update_key(ctx, k, |k| {
            require_not_pending_deletion(k)?;
            k.description = description.clone();
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn tag_resource(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        tags: Vec<TagRecord>,
    ) -> Result<()> {
        validate_tags(&tags)?;
        let mut op = Op::new(Action::TagResource)
            .facts_multi("aws:TagKeys", tags.iter().map(|t| t.key.clone()).collect());
        for t in &tags {
            op = op.fact(&format!("aws:RequestTag/{}", t.key), t.value.clone());
        }
        let k = self.resolve(ctx, key, op).await?;
        require_not_pending_deletion(&k)?;
        // The limit holds for the tags after the write, checked in its transaction.
        match self.store.put_tags(k.key_id, &tags, MAX_TAGS as i64).await {
            Ok(()) => Ok(()),
            Err(StoreError::LimitExceeded) => Err(KmsError::Tag(texts::TOO_MANY_TAGS.into())),
            Err(StoreError::NotFound) => Err(KmsError::NotFound(texts::key_not_found(&k.arn()))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn untag_resource(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        tag_keys: Vec<String>,
    ) -> Result<()> {
        let op = Op::new(Action::UntagResource).facts_multi("aws:TagKeys", tag_keys.clone());
        let k = self.resolve(ctx, key, op).await?;
        require_not_pending_deletion(&k)?;
        self.store.remove_tags(k.key_id, &tag_keys).await?;
        Ok(())
    }

    pub async fn list_resource_tags(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<TagRecord>> {
        let limit = page_limit(limit, 50, 50)? as usize;
        let k = self
            .resolve(ctx, key, Op::new(Action::ListResourceTags))
            .await?;
        let tags = self.store.list_tags(k.key_id).await?;
        let start = match marker {
            Some(m) => {
                // Markers are tag keys this server handed out.
                let at = tags
                    .iter()
                    .position(|t| t.key == m)
                    .ok_or_else(|| KmsError::InvalidMarker(texts::invalid_marker(m)))?;
                at + 1
            }
            None => 0,
        };
        let rest = &tags[start..];
        let items: Vec<TagRecord> = rest.iter().take(limit).cloned().collect();
        let next_marker = (rest.len() > limit)
            .then(|| items.last().map(|t| t.key.clone()))
            .flatten();
        Ok(Page { items, next_marker })
    }

    pub async fn get_key_policy(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        policy_name: Option<&str>,
    ) -> Result<String> {
        let k = self
            .resolve(ctx, key, Op::new(Action::GetKeyPolicy))
            .await?;
        match policy_name.unwrap_or("default") {
            "default" => Ok(k.into_record().policy),
            _ => Err(KmsError::NotFound(texts::NO_SUCH_POLICY.into())),
        }
    }

    pub async fn put_key_policy(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        policy_name: Option<&str>,
        policy: String,
        bypass_lockout_check: bool,
    ) -> Result<()> {
        if policy_name.is_some_and(|n| n != "default") {
            return Err(KmsError::UnsupportedOperation(
                texts::ONLY_DEFAULT_POLICY.into(),
            ));
        }
        let parsed = validate_policy(&policy)?;
        let op = Op::new(Action::PutKeyPolicy).fact(
            "kms:BypassPolicyLockoutSafetyCheck",
            bypass_lockout_check.to_string(),
        );
        let k = self.resolve(ctx, key, op).await?;
        if !bypass_lockout_check && !self.policy_allows_put_key_policy(ctx, &k, &parsed)? {
            return Err(KmsError::MalformedPolicyDocument(
                texts::POLICY_LOCKOUT.into(),
            ));
        }
        self.update_key(ctx, k, |k| {
            k.policy = policy.clone();
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn list_key_policies(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
    ) -> Result<Vec<String>> {
        self.resolve(ctx, key, Op::new(Action::ListKeyPolicies))
            .await?;
        Ok(vec!["default".to_owned()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_json_naming_the_root() {
        let p = default_policy("111122223333");
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["Id"], "key-default-1");
        assert_eq!(
            v["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111122223333:root"
        );
        assert_eq!(v["Statement"][0]["Action"], "kms:*");
        assert!(validate_policy(&p).is_ok());
    }

    #[test]
    fn policy_validation() {
        assert!(matches!(
            validate_policy("{"),
            Err(KmsError::MalformedPolicyDocument(_))
        ));
        assert!(matches!(
            validate_policy("[]"),
            Err(KmsError::MalformedPolicyDocument(_))
        ));
        let big = format!(
            "{{\"Statement\":[],\"x\":\"{}\"}}",
            "a".repeat(MAX_POLICY_BYTES)
        );
        assert!(matches!(
            validate_policy(&big),
            Err(KmsError::LimitExceeded(_))
        ));
    }

    #[test]
    fn tag_validation() {
        let t = |k: &str, v: &str| TagRecord {
            key: k.into(),
            value: v.into(),
        };
        assert!(validate_tags(&[t("a", ""), t("b", "x")]).is_ok());
        assert!(validate_tags(&[t("", "x")]).is_err());
        assert!(validate_tags(&[t("aws:x", "x")]).is_err());
        assert!(validate_tags(&[t("a", "1"), t("a", "2")]).is_err());
        assert!(validate_tags(&[t("a", &"v".repeat(257))]).is_err());
    }
}
