//! Multi-Region keys: CreateKey `MultiRegion=true` (in `keys.rs`), ReplicateKey,
//! UpdatePrimaryRegion, and what keeps a set of related keys one key in several regions —
//! shared material and rotation, the primary's deletion waiting for its replicas.
//!
//! A set is identified by a random 128-bit id; its key id is `mrk-` + the id's 32 hex digits
//! in every region. Each member (the primary and one replica per region) is a key row of its
//! own whose `key_id` is derived from (set id, region) (`ids::mrk_row_id`): versions, aliases,
//! tags, grants, policy, description and state are per member, and everything that names a
//! key by `Uuid` (the store, the caches, grants) works unchanged. A ciphertext of a
//! multi-Region key names the set (blob format 2), so the member of whichever region decrypts
//! it finds its own copy of the material.
//!
//! Material: every member holds the same key material, each in token objects of its own
//! (`CKA_ID` from the member's row id). A replica's copy is made inside the token with
//! `C_CopyObject` (`Token::copy_key`), never outside it; a rotation generates the new version
//! in the primary's object and copies it to every member before any member uses it (all
//! members' versions are activated in one transaction). Keys of custom key stores cannot be
//! multi-Region, so every member lives in the default token. Imported material is not copied:
//! a replica of an `EXTERNAL` key starts `PendingImport` and takes only the primary's material
//! (its import record holds the primary's key check value).
//!
//! Crash safety follows the write-ahead intent pattern: a replica is inserted `Creating` with
//! a pending version per version of the primary before anything is copied; a rotation inserts
//! the pending version of every member before the material exists. Start-up reconciliation
//! finishes (copies what is missing from a member that has it) or removes them.

use crate::operations::Action;
use std::collections::BTreeSet;

use uuid::Uuid;

use super::authz::{KeyToken, Op, Permitted, ServicePermit};
use super::ids::{mrk_row_id, KeyRef};
use super::keys::{default_policy, validate_policy, validate_tags, KeyInfo, MAX_TAGS};
use super::{
    key_object_label, material_id, state_error, texts, token_object_id, visible, Kms, KmsError,
    RequestContext, Result, MS_PER_DAY,
};
use crate::model::{KeyState, Origin, RotationType};
use crate::policy::Context;
use crate::store::{KeyRecord, StoreError, TagRecord, VersionRecord};

/// Compare-and-swap attempts before giving up on a contended key.
const ATTEMPTS: usize = 64;

/// ReplicateKey's members besides the key.
#[derive(Debug, Default)]
pub struct ReplicateKeyInput {
    pub replica_region: String,
    pub policy: Option<String>,
    pub bypass_policy_lockout_safety_check: bool,
    pub description: Option<String>,
    pub tags: Vec<TagRecord>,
}

/// ReplicateKey's answer: the new replica (as it was recorded: `Creating`), its key policy and
/// its tags.
#[derive(Debug)]
pub struct Replicated {
    pub metadata: KeyInfo,
    pub policy: String,
    pub tags: Vec<TagRecord>,
}

fn conflict() -> KmsError {
    KmsError::Conflict(texts::CONCURRENT_MODIFICATION.into())
}

fn not_found(arn: &str) -> KmsError {
    KmsError::NotFound(texts::key_not_found(arn))
}

fn version_u32(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| KmsError::Internal(format!("key version {v} out of range")))
}

impl Kms {
    /// Is `region` one this deployment serves? (A replica elsewhere is refused as AWS refuses
    /// a Region that is not enabled.)
    fn require_served_region(&self, region: &str) -> Result<()> {
        if self.regions.iter().any(|r| r == region) {
            Ok(())
        } else {
            Err(KmsError::UnsupportedOperation(texts::region_not_enabled(
                region,
            )))
        }
    }

    pub async fn replicate_key(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        input: ReplicateKeyInput,
    ) -> Result<Replicated> {
        let region = input.replica_region;
        let op = Op::new(Action::ReplicateKey).fact("kms:ReplicaRegion", region.clone());
        let primary = self.resolve(ctx, key, op).await?;
        // The primary's objects and its set's: the replica's copies are made with it.
        let token = primary.token(self)?;
        let primary = primary.into_record();
        let Some(m) = primary
            .multi_region
            .clone()
            .filter(|_| primary.is_primary())
        else {
            return Err(KmsError::UnsupportedOperation(
                texts::not_multi_region_primary(&primary.arn()),
            ));
        };
        if primary.state != KeyState::Enabled {
            return Err(state_error(&primary.arn(), primary.state));
        }
        self.require_served_region(&region)?;
        let set = self.store.multi_region_keys(m.mrk).await?;
        if region == primary.region || set.iter().any(|k| k.region == region) {
            return Err(KmsError::AlreadyExists(texts::replica_exists(
                &primary.public_id(),
                &region,
            )));
        }

        // The replica Region's side: kms:CreateKey (and kms:TagResource for tags) in the
        // caller's IAM policies there.
        let rctx = ctx.in_region(&region);
        let mut facts = Context::new();
        facts.set("kms:KeySpec", primary.key_spec.as_str());
        facts.set("kms:CustomerMasterKeySpec", primary.key_spec.as_str());
        facts.set("kms:KeyUsage", primary.key_usage.as_str());
        facts.set("kms:CustomerMasterKeyUsage", primary.key_usage.as_str());
        facts.set("kms:KeyOrigin", primary.origin.as_str());
        facts.set_bool("kms:MultiRegion", true);
        facts.set("kms:MultiRegionKeyType", "REPLICA");
        facts.set_bool(
            "kms:BypassPolicyLockoutSafetyCheck",
            input.bypass_policy_lockout_safety_check,
        );
        let tag_keys: Vec<String> = input.tags.iter().map(|t| t.key.clone()).collect();
        facts.set_multi("aws:TagKeys", tag_keys.clone());
        for t in &input.tags {
            facts.set(&format!("aws:RequestTag/{}", t.key), t.value.clone());
        }
        self.authorize_account(&rctx, Action::CreateKey, "*", facts)?;

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
        let replica = KeyRecord {
            key_id: mrk_row_id(&m.mrk, &region),
            region: region.clone(),
            account: primary.account.clone(),
            description: input.description.unwrap_or_default(),
            key_spec: primary.key_spec,
            key_usage: primary.key_usage,
            origin: primary.origin,
            state: KeyState::Creating,
            created_at: now,
            deletion_date: None,
            pending_window_days: None,
            // Shared properties: the automatic rotation setting is the primary's.
            rotation_enabled: primary.rotation_enabled,
            rotation_period_days: primary.rotation_period_days,
            rotation_base: primary.rotation_base,
            current_version: primary.current_version,
            policy: policy.clone(),
            revision: 0,
            custom_key_store_id: None,
            key_manager: primary.key_manager,
            mac: Vec::new(),
            multi_region: Some(m.clone()),
        };
        if !input.tags.is_empty() {
            let mut facts = Context::new();
            facts.set_multi("aws:TagKeys", tag_keys);
            for t in &input.tags {
                facts.set(&format!("aws:RequestTag/{}", t.key), t.value.clone());
            }
            self.authorize_account(&rctx, Action::TagResource, &replica.arn(), facts)?;
        }
        if let Some(parsed) = &parsed {
            if !input.bypass_policy_lockout_safety_check
                && !self.policy_allows_put_key_policy(&rctx, &replica, parsed)?
            {
                return Err(KmsError::MalformedPolicyDocument(
                    texts::POLICY_LOCKOUT.into(),
                ));
            }
        }

        // Intent: the replica `Creating`, one pending version per version of the primary (or,
        // for imported material, none: the same materials are imported into the replica).
        let (versions, materials) = if primary.origin == Origin::External {
            let rec = self.store.get_import(primary.key_id).await?;
            let materials = rec
                .map(|r| r.materials)
                .unwrap_or_default()
                .into_iter()
                .map(|m| crate::store::MaterialRecord {
                    key_id: replica.key_id,
                    imported: false,
                    ..m
                })
                .collect();
            (Vec::new(), materials)
        } else {
            let versions = self
                .store
                .versions(primary.key_id)
                .await?
                .into_iter()
                .filter(|v| !v.pending)
                .map(|v| replica_version(&replica, &v))
                .collect::<Result<Vec<_>>>()?;
            (versions, Vec::new())
        };
        let mut retried = false;
        loop {
            match self
                .store
                .insert_replica(&replica, &versions, &input.tags, &materials)
                .await
            {
                Ok(()) => break,
                // A replica deleted here before whose material is still being destroyed:
                // finish that first (the tombstone is past its point of no return).
                Err(StoreError::InUse) if !retried => {
                    retried = true;
                    self.destroy_material(replica.key_id).await?;
                }
                Err(StoreError::AlreadyExists | StoreError::InUse) => {
                    return Err(KmsError::AlreadyExists(texts::replica_exists(
                        &primary.public_id(),
                        &region,
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        // What ReplicateKey answers is the replica as recorded: `Creating`, as on AWS.
        let metadata = self.key_info(replica.clone()).await?;
        let copies: Vec<i64> = versions.iter().map(|v| v.version).collect();
        if let Err(e) = self
            .complete_replica(&token, replica.clone(), Some(&copies))
            .await
        {
            tracing::error!(key_id = %replica.key_id, error = %e, "replica could not be completed; undoing it");
            self.undo_replica(&token, &replica).await;
            return Err(e);
        }
        Ok(Replicated {
            metadata,
            policy,
            tags: input.tags,
        })
    }

    /// Give a replica in state `Creating` its material — copies, inside the token, of the
    /// primary's versions for `versions` (None: every pending version, as after a crash) — and
    /// make it usable (`Enabled`, or `PendingImport` for imported material); then copy what
    /// rotations that began before the replica existed added meanwhile. (A rotation that saw
    /// the replica gives it its version itself: ReplicateKey names only the versions it
    /// inserted.)
    pub(super) async fn complete_replica(
        &self,
        token: &KeyToken,
        replica: KeyRecord,
        versions: Option<&[i64]>,
    ) -> Result<KeyRecord> {
        if replica.origin == Origin::External {
            return self.activate_member(replica.key_id, &[], true).await;
        }
        let source = self.set_primary(&replica).await?;
        let pending: Vec<i64> = match versions {
            Some(v) => v.to_vec(),
            None => self
                .store
                .versions(replica.key_id)
                .await?
                .into_iter()
                .filter(|v| v.pending)
                .map(|v| v.version)
                .collect(),
        };
        self.copy_versions(token, &source, &replica, &pending)
            .await?;
        let mut done = self.activate_member(replica.key_id, &pending, true).await?;
        // A rotation that read the set before this replica was inserted did not give it its
        // version: take it from the primary once it is complete (bounded wait).
        for _ in 0..200 {
            let mine: BTreeSet<i64> = self
                .store
                .versions(replica.key_id)
                .await?
                .into_iter()
                .map(|v| v.version)
                .collect();
            let missing: Vec<VersionRecord> = self
                .store
                .versions(source.key_id)
                .await?
                .into_iter()
                .filter(|v| !mine.contains(&v.version))
                .collect();
            if missing.is_empty() {
                return Ok(done);
            }
            if missing.iter().any(|v| v.pending) {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                continue;
            }
            let mut added = Vec::new();
            for v in &missing {
                match self.store.insert_version(&replica_version(&done, v)?).await {
                    Ok(()) | Err(StoreError::AlreadyExists) => added.push(v.version),
                    Err(e) => return Err(e.into()),
                }
            }
            self.copy_versions(token, &source, &done, &added).await?;
            done = self.activate_member(replica.key_id, &added, false).await?;
        }
        tracing::warn!(key_id = %replica.key_id, "a rotation of the primary key did not finish; the replica takes its version when it does (reconciliation)");
        Ok(done)
    }

    /// The primary key of `member`'s set, as the store has it now.
    async fn set_primary(&self, member: &KeyRecord) -> Result<KeyRecord> {
        let m = member
            .multi_region
            .as_ref()
            .ok_or_else(|| KmsError::Internal("not a multi-Region key".into()))?;
        self.store
            .multi_region_keys(m.mrk)
            .await?
            .into_iter()
            .find(|k| k.is_primary())
            .ok_or_else(|| not_found(&member.arn()))
    }

    /// Copy `versions` of `source`'s material into `member`'s own token objects.
    async fn copy_versions(
        &self,
        token: &KeyToken,
        source: &KeyRecord,
        member: &KeyRecord,
        versions: &[i64],
    ) -> Result<()> {
        for &v in versions {
            let v32 = version_u32(v)?;
            token
                .copy_key(
                    token_object_id(&source.key_id, v32),
                    token_object_id(&member.key_id, v32),
                    key_object_label(member, v32),
                )
                .await?;
        }
        Ok(())
    }

    /// Mark `versions` of a member complete (its current version at least the newest of
    /// them), and with `finish` end its creation; compare-and-swap, retried on a fresh copy.
    async fn activate_member(
        &self,
        key_id: Uuid,
        versions: &[i64],
        finish: bool,
    ) -> Result<KeyRecord> {
        for _ in 0..ATTEMPTS {
            let mut k = self
                .store
                .get_key(key_id)
                .await?
                .ok_or_else(|| KmsError::NotFound(texts::key_not_found(&key_id.to_string())))?;
            if let Some(&top) = versions.iter().max() {
                k.current_version = k.current_version.max(top);
            }
            if finish && k.state == KeyState::Creating {
                k.state = if k.origin == Origin::External {
                    KeyState::PendingImport
                } else {
                    KeyState::Enabled
                };
            }
            match self
                .store
                .activate_versions(std::slice::from_ref(&k), versions)
                .await
            {
                Ok(revisions) => {
                    k.revision = revisions.first().copied().unwrap_or(k.revision);
                    return Ok(k);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict())
    }

    /// Remove a replica whose creation failed: its copies in the token, then its row.
    pub(super) async fn undo_replica(&self, token: &KeyToken, replica: &KeyRecord) {
        match self.store.versions(replica.key_id).await {
            Ok(versions) => {
                for v in versions {
                    if let Err(e) = token.destroy(v.token_object_id.clone()).await {
                        tracing::error!(key_id = %replica.key_id, error = %e, "could not destroy a replica's copy; it is reported as an orphan");
                    }
                }
            }
            Err(e) => {
                tracing::error!(key_id = %replica.key_id, error = %e, "could not list a replica's versions")
            }
        }
        if let Err(e) = self.store.delete_unfinished_key(replica.key_id).await {
            tracing::error!(key_id = %replica.key_id, error = %e, "could not undo an unfinished replica; reconciliation will");
        }
    }

    pub async fn update_primary_region(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        region: String,
    ) -> Result<()> {
        let op = Op::new(Action::UpdatePrimaryRegion).fact("kms:PrimaryRegion", region.clone());
        let primary = self.resolve(ctx, key, op).await?.into_record();
        let Some(m) = primary
            .multi_region
            .clone()
            .filter(|_| primary.is_primary())
        else {
            return Err(KmsError::UnsupportedOperation(
                texts::not_multi_region_primary(&primary.arn()),
            ));
        };
        require_updatable(&primary)?;
        self.require_served_region(&region)?;
        if region == primary.region {
            // Already the primary Region: nothing to change.
            return Ok(());
        }
        let replica_arn = format!(
            "arn:aws:kms:{region}:{}:key/{}",
            primary.account,
            primary.public_id()
        );
        let replica = self
            .store
            .get_key(mrk_row_id(&m.mrk, &region))
            .await?
            .filter(|k| k.account == primary.account && visible(k))
            .ok_or_else(|| not_found(&replica_arn))?;
        // The new primary's side: kms:UpdatePrimaryRegion in its own key policy, there.
        let rctx = ctx.in_region(&region);
        let op = Op::new(Action::UpdatePrimaryRegion).fact("kms:PrimaryRegion", region.clone());
        let replica = self.authorize(&rctx, replica, op).await?.into_record();
        require_updatable(&replica)?;

        // The swap, with both keys `Updating`, in one transaction over the whole set …
        let (old, new) = (primary.key_id, replica.key_id);
        let mut swapped = None;
        for _ in 0..ATTEMPTS {
            let mut set = self.store.multi_region_keys(m.mrk).await?;
            for k in &set {
                if k.key_id == old && !k.is_primary() {
                    // Someone else moved the primary meanwhile.
                    return Err(KmsError::UnsupportedOperation(
                        texts::not_multi_region_primary(&k.arn()),
                    ));
                }
                if k.key_id == old || k.key_id == new {
                    require_updatable(k)?;
                }
            }
            for k in &mut set {
                if let Some(mr) = k.multi_region.as_mut() {
                    mr.primary_region = region.clone();
                }
                if k.key_id == old || k.key_id == new {
                    k.state = KeyState::Updating;
                }
            }
            match self.store.update_keys(&set).await {
                Ok(_) => {
                    swapped = Some(());
                    break;
                }
                Err(StoreError::Conflict | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        swapped.ok_or_else(conflict)?;
        // … then `Enabled` again (a crash in between is finished by reconciliation and the
        // scheduler: `finish_updates`).
        self.finish_update(&[old, new]).await
    }

    /// `Updating` → `Enabled` for these keys.
    async fn finish_update(&self, ids: &[Uuid]) -> Result<()> {
        for _ in 0..ATTEMPTS {
            let mut keys = Vec::new();
            for id in ids {
                if let Some(mut k) = self.store.get_key(*id).await? {
                    if k.state == KeyState::Updating {
                        k.state = KeyState::Enabled;
                        keys.push(k);
                    }
                }
            }
            if keys.is_empty() {
                return Ok(());
            }
            match self.store.update_keys(&keys).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict())
    }

    /// Keys left `Updating` by an interrupted UpdatePrimaryRegion: `Enabled` again (the swap
    /// itself was one transaction). Returns how many.
    pub(super) async fn finish_updates(&self) -> Result<usize> {
        let ids: Vec<Uuid> = self
            .store
            .keys_in_state(KeyState::Updating)
            .await?
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        self.finish_update(&ids).await?;
        Ok(ids.len())
    }

    /// Refuse a change of the rotation setting (a shared property) on a replica key.
    pub(super) fn require_not_replica(key: &KeyRecord) -> Result<()> {
        if key.is_replica() {
            return Err(KmsError::UnsupportedOperation(
                texts::not_multi_region_primary(&key.arn()),
            ));
        }
        Ok(())
    }

    /// `update_key` for a change of shared properties (automatic rotation): made on the
    /// primary key by `f` and copied to every member of its set, in one transaction.
    pub(super) async fn update_shared<F>(
        &self,
        ctx: &RequestContext,
        key: Permitted,
        mut f: F,
    ) -> Result<KeyRecord>
    where
        F: FnMut(&mut KeyRecord) -> Result<()>,
    {
        let Some(m) = key.multi_region.clone() else {
            return self.update_key(ctx, key, f).await;
        };
        let id = key.key_id;
        for _ in 0..ATTEMPTS {
            let mut set = self.store.multi_region_keys(m.mrk).await?;
            let p = set
                .iter_mut()
                .find(|k| k.key_id == id)
                .ok_or_else(|| not_found(&key.arn()))?;
            f(p)?;
            let p = p.clone();
            for k in set.iter_mut().filter(|k| k.key_id != id) {
                k.rotation_enabled = p.rotation_enabled;
                k.rotation_period_days = p.rotation_period_days;
                k.rotation_base = p.rotation_base;
            }
            match self.store.update_keys(&set).await {
                Ok(revisions) => {
                    let at = set.iter().position(|k| k.key_id == id).unwrap_or(0);
                    return Ok(KeyRecord {
                        revision: revisions.get(at).copied().unwrap_or(p.revision),
                        ..p
                    });
                }
                Err(StoreError::Conflict | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict())
    }

    /// Rotate a multi-Region key's set (`key` is its primary): the new version is generated
    /// in the primary's object and copied inside the token to every member before all of them
    /// make it current in one transaction, so no member encrypts under a version another
    /// member cannot decrypt.
    pub(super) async fn rotate_set(
        &self,
        token: &KeyToken,
        key: KeyRecord,
        rotation_type: RotationType,
    ) -> Result<KeyRecord> {
        let m = key
            .multi_region
            .clone()
            .ok_or_else(|| KmsError::Internal("not a multi-Region key".into()))?;
        let version = key.current_version + 1;
        let v32 = u32::try_from(version)
            .map_err(|_| KmsError::LimitExceeded(texts::TOO_MANY_KEY_VERSIONS.into()))?;
        let now = self.now();
        let record = |k: &KeyRecord| VersionRecord {
            key_id: k.key_id,
            version,
            token_object_id: token_object_id(&k.key_id, v32),
            material_id: material_id(&m.mrk, v32),
            created_at: now,
            rotation_type: Some(rotation_type),
            pending: true,
        };
        // The claim: the primary's pending version (a second rotation fails here) …
        match self.store.insert_version(&record(&key)).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => {
                return Err(KmsError::Conflict(texts::already_rotating(&key.arn())))
            }
            Err(e) => return Err(e.into()),
        }
        // … then every related key's, read after the claim (a replica made later copies the
        // version itself: `complete_replica`).
        let mut members = vec![key.clone()];
        let result = async {
            for k in self.store.multi_region_keys(m.mrk).await? {
                if k.key_id != key.key_id {
                    self.store.insert_version(&record(&k)).await?;
                    members.push(k);
                }
            }
            token
                .generate_aes_key(
                    token_object_id(&key.key_id, v32),
                    key_object_label(&key, v32),
                )
                .await?;
            for k in &members[1..] {
                self.copy_versions(token, &key, k, &[version]).await?;
            }
            Ok::<(), KmsError>(())
        }
        .await;
        if let Err(e) = result {
            for k in &members {
                let _ = token.destroy(token_object_id(&k.key_id, v32)).await;
                if let Err(undo) = self.store.delete_pending_version(k.key_id, version).await {
                    tracing::error!(key_id = %k.key_id, error = %undo, "could not undo pending version; reconciliation will");
                }
            }
            return Err(e);
        }
        let ids: Vec<Uuid> = members.iter().map(|k| k.key_id).collect();
        self.activate_rotation(&ids, version, rotation_type, now)
            .await?
            .into_iter()
            .find(|k| k.key_id == key.key_id)
            .ok_or_else(|| not_found(&key.arn()))
    }

    /// Make `version` current on every member of `ids` still there, in one transaction.
    async fn activate_rotation(
        &self,
        ids: &[Uuid],
        version: i64,
        rotation_type: RotationType,
        now: i64,
    ) -> Result<Vec<KeyRecord>> {
        for _ in 0..ATTEMPTS {
            let mut keys = Vec::with_capacity(ids.len());
            for id in ids {
                match self.store.get_key(*id).await? {
                    Some(k) if k.state != KeyState::Deleted => keys.push(k),
                    _ => {}
                }
            }
            for k in &mut keys {
                k.current_version = k.current_version.max(version);
                if rotation_type == RotationType::Automatic {
                    k.rotation_base = Some(now);
                }
            }
            match self.store.activate_versions(&keys, &[version]).await {
                Ok(revisions) => {
                    for (k, r) in keys.iter_mut().zip(revisions) {
                        k.revision = r;
                    }
                    return Ok(keys);
                }
                // Changed meanwhile (or a member deleted, its rows gone): again, afresh.
                Err(StoreError::Conflict | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(conflict())
    }

    /// Primary keys waiting in `PendingReplicaDeletion` whose last replica is gone: their
    /// waiting period starts now (`PendingDeletion`). Returns how many.
    pub(super) async fn start_primary_deletions(&self) -> Result<usize> {
        let mut started = 0;
        for mut key in self
            .store
            .keys_in_state(KeyState::PendingReplicaDeletion)
            .await?
        {
            let Some(m) = key.multi_region.clone() else {
                continue;
            };
            let set = self.store.multi_region_keys(m.mrk).await?;
            if set.iter().any(|k| k.key_id != key.key_id) {
                continue;
            }
            let days = key.pending_window_days.unwrap_or(30);
            key.state = KeyState::PendingDeletion;
            key.deletion_date = Some(self.now() + days * MS_PER_DAY);
            match self.store.update_key(&key).await {
                Ok(_) => {
                    started += 1;
                    tracing::info!(key_id = %key.key_id, "the last replica is deleted: the primary key's waiting period starts");
                }
                // Cancelled (or changed) meanwhile: the next run sees it afresh.
                Err(StoreError::Conflict | StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(started)
    }

    /// Reconciliation of a multi-Region key's pending `version` (a rotation interrupted by a
    /// crash): if some member's object exists, copy it to the members that lack it and
    /// activate the version everywhere; else remove the pending versions. Returns (completed,
    /// removed) version rows.
    pub(super) async fn reconcile_set_version(
        &self,
        service: &ServicePermit,
        mrk: Uuid,
        version: i64,
        present: &mut std::collections::HashSet<Vec<u8>>,
    ) -> Result<(usize, usize)> {
        let v32 = version_u32(version)?;
        let set = self.store.multi_region_keys(mrk).await?;
        let mut pending = Vec::new();
        for k in &set {
            if self
                .store
                .versions(k.key_id)
                .await?
                .iter()
                .any(|v| v.version == version && v.pending)
            {
                pending.push(k.clone());
            }
        }
        let rotation_type = match pending.first() {
            Some(k) => self
                .store
                .versions(k.key_id)
                .await?
                .into_iter()
                .find(|v| v.version == version)
                .and_then(|v| v.rotation_type.map(|t| (t, v.created_at))),
            None => None,
        };
        let source = set
            .iter()
            .find(|k| present.contains(&token_object_id(&k.key_id, v32)));
        let Some(source) = source else {
            for k in &pending {
                self.store.delete_pending_version(k.key_id, version).await?;
            }
            return Ok((0, pending.len()));
        };
        let token = service.key_token(self, source)?;
        for k in &pending {
            if k.key_id != source.key_id {
                self.copy_versions(&token, source, k, &[version]).await?;
                present.insert(token_object_id(&k.key_id, v32));
            }
        }
        let ids: Vec<Uuid> = pending.iter().map(|k| k.key_id).collect();
        // An automatic rotation moves the schedule to when it began.
        let (kind, at) = rotation_type.unwrap_or((RotationType::OnDemand, self.now()));
        self.activate_rotation(&ids, version, kind, at).await?;
        Ok((pending.len(), 0))
    }
}

/// The version row of `replica` for the primary's version `v` (same material id, dates and
/// rotation type; its own token object), pending.
fn replica_version(replica: &KeyRecord, v: &VersionRecord) -> Result<VersionRecord> {
    let v32 = version_u32(v.version)?;
    Ok(VersionRecord {
        key_id: replica.key_id,
        version: v.version,
        token_object_id: token_object_id(&replica.key_id, v32),
        material_id: v.material_id.clone(),
        created_at: v.created_at,
        rotation_type: v.rotation_type,
        pending: true,
    })
}

/// UpdatePrimaryRegion needs both keys enabled (or already updating).
fn require_updatable(k: &KeyRecord) -> Result<()> {
    match k.state {
        KeyState::Enabled | KeyState::Updating => Ok(()),
        s => Err(state_error(&k.arn(), s)),
    }
}
