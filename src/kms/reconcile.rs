//! Start-up reconciliation of the store with the token.
//!
//! The store records an intent (key in `Creating`, version `pending`) before the token object
//! is created and completes it afterwards. After a crash in between:
//! - intent with its token object present → completed now;
//! - intent without a token object → removed (the request never succeeded);
//! - a completed version whose object is missing → reported; the key shows `Unavailable` (not
//!   `Enabled`) while its current material is missing, and use answers KeyUnavailable;
//! - a token object of ours that no version names → reported as an orphan, never deleted here
//!   (`kms-bridge admin orphans --destroy` does it on an operator's word: after a database
//!   restore such an object may be a key's only remains);
//! - a pending import (EXTERNAL key) → undone: its object destroyed, the version removed.
//!   Import wrapping keys count as known objects (the store names them).
//!
//! Key material is a secret key (AES, HMAC) or a private key; a key pair's public object shares
//! the private key's `CKA_ID` and is created with it in one `C_GenerateKeyPair`, so only
//! material objects count here.

use std::collections::HashSet;

use super::{Kms, Result, LABEL_PREFIX};
use crate::model::{KeyState, Origin};
use crate::token::FoundObject;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub token_objects: usize,
    pub completed_keys: usize,
    pub removed_keys: usize,
    pub completed_versions: usize,
    pub removed_versions: usize,
    pub missing_material: Vec<String>,
    pub orphan_objects: Vec<String>,
}

impl Kms {
    /// Reconcile with `objects`, the token's key objects as `Token::load_objects` found them
    /// (that scan also fills the token's handle cache).
    /// Intents younger than `grace_ms` are left alone (another node sharing the database may
    /// still be working on them).
    pub async fn reconcile(
        &self,
        mut objects: Vec<FoundObject>,
        grace_ms: i64,
    ) -> Result<ReconcileReport> {
        let cutoff = self.now() - grace_ms;
        objects.retain(|o| o.kind.is_material());
        let mut present: HashSet<Vec<u8>> = objects.iter().map(|o| o.id.clone()).collect();
        let mut report = ReconcileReport {
            token_objects: objects.len(),
            ..Default::default()
        };

        for mut key in self.store.unfinished_keys().await? {
            if key.created_at > cutoff {
                continue;
            }
            if key.is_replica() {
                // A replica whose copies were under way: copy what is missing from the
                // primary (the material never leaves the token), or remove it.
                match self.complete_replica(key.clone(), None).await {
                    Ok(_) => {
                        // Its copies exist now (the scan above predates them).
                        for v in self.store.versions(key.key_id).await? {
                            present.insert(v.token_object_id);
                        }
                        tracing::warn!(key_id = %key.key_id, "completed a multi-Region replica interrupted by a crash");
                        report.completed_keys += 1;
                    }
                    Err(e) => {
                        tracing::warn!(key_id = %key.key_id, error = %e, "removed a multi-Region replica that could not be completed");
                        self.undo_replica(&key).await;
                        report.removed_keys += 1;
                    }
                }
                continue;
            }
            let versions = self.store.versions(key.key_id).await?;
            let first = versions.iter().find(|v| v.version == 1);
            match first {
                Some(v) if present.contains(&v.token_object_id) => {
                    key.state = KeyState::Enabled;
                    self.store.activate_version(&key, 1).await?;
                    tracing::warn!(key_id = %key.key_id, "completed key creation interrupted by a crash");
                    report.completed_keys += 1;
                }
                _ => {
                    self.store.delete_unfinished_key(key.key_id).await?;
                    tracing::warn!(key_id = %key.key_id, "removed key whose creation never reached the token");
                    report.removed_keys += 1;
                }
            }
        }

        let mut destroyed = HashSet::new();
        let mut set_versions = std::collections::BTreeSet::new();
        for v in self.store.pending_versions().await? {
            if v.created_at > cutoff {
                continue;
            }
            let Some(mut key) = self.store.get_key(v.key_id).await? else {
                continue;
            };
            if key.state == KeyState::Creating {
                // A replica still being created (on another node): not an interrupted intent.
                continue;
            }
            if let (Some(m), false) = (&key.multi_region, key.origin == Origin::External) {
                // A multi-Region set's rotation: finished or undone for the whole set.
                set_versions.insert((m.mrk, v.version));
                continue;
            }
            if key.origin == Origin::External {
                // An import interrupted by a crash never answered success (and its key check
                // value may not have been compared): undo it; the caller imports again.
                if present.contains(&v.token_object_id) {
                    self.token.destroy(v.token_object_id.clone()).await?;
                    destroyed.insert(v.token_object_id.clone());
                }
                self.store
                    .delete_pending_version(v.key_id, v.version)
                    .await?;
                tracing::warn!(key_id = %v.key_id, "removed an import interrupted by a crash");
                report.removed_versions += 1;
                continue;
            }
            if present.contains(&v.token_object_id) {
                key.current_version = key.current_version.max(v.version);
                self.store.activate_version(&key, v.version).await?;
                tracing::warn!(key_id = %v.key_id, version = v.version, "completed rotation interrupted by a crash");
                report.completed_versions += 1;
            } else {
                self.store
                    .delete_pending_version(v.key_id, v.version)
                    .await?;
                tracing::warn!(key_id = %v.key_id, version = v.version, "removed rotation that never reached the token");
                report.removed_versions += 1;
            }
        }

        for (mrk, version) in set_versions {
            let (completed, removed) = self
                .reconcile_set_version(mrk, version, &mut present)
                .await?;
            if completed > 0 {
                tracing::warn!(%mrk, version, "completed a multi-Region rotation interrupted by a crash");
            }
            if removed > 0 {
                tracing::warn!(%mrk, version, "removed a multi-Region rotation that never reached the token");
            }
            report.completed_versions += completed;
            report.removed_versions += removed;
        }
        let updating = self.finish_updates().await?;
        if updating > 0 {
            tracing::warn!(
                updating,
                "finished primary Region updates interrupted by a crash"
            );
        }

        let known = self.known_object_ids().await?;
        for id in &known {
            if !present.contains(id) {
                self.token.note_missing(id);
                tracing::error!(object_id = %hex::encode(id), "key material missing from the token");
                report.missing_material.push(hex::encode(id));
            }
        }
        for o in orphans(&objects, &known) {
            if !destroyed.contains(&o.id) {
                tracing::warn!(object_id = %hex::encode(&o.id), label = %o.label, "orphan token object: no key refers to it (`kms-bridge admin orphans` lists and destroys them)");
                report.orphan_objects.push(o.label.clone());
            }
        }
        Ok(report)
    }

    /// `kms-bridge admin orphans`: the token's key material objects of ours that no key
    /// version or import names (with `destroy`: those it destroyed). Never automatic: an object
    /// without metadata may be all that is left of a key after a database restore (its label
    /// names the key), so only an operator decides it is garbage.
    pub async fn orphan_objects(&self, destroy: bool) -> Result<Vec<FoundObject>> {
        let objects: Vec<FoundObject> = self
            .token
            .load_objects()
            .await?
            .into_iter()
            .filter(|o| o.kind.is_material())
            .collect();
        let known = self.known_object_ids().await?;
        let found: Vec<FoundObject> = orphans(&objects, &known).cloned().collect();
        if !destroy {
            return Ok(found);
        }
        let mut destroyed = Vec::with_capacity(found.len());
        for o in found {
            // Checked again right before: a key made since the scan keeps its object.
            if self.store.all_token_object_ids().await?.contains(&o.id) {
                continue;
            }
            self.token.destroy(o.id.clone()).await?;
            tracing::warn!(object_id = %hex::encode(&o.id), label = %o.label, "destroyed orphan token object");
            destroyed.push(o);
        }
        Ok(destroyed)
    }
}

impl Kms {
    /// Every token object id the store names (key versions of the default token, import
    /// wrapping keys).
    async fn known_object_ids(&self) -> Result<HashSet<Vec<u8>>> {
        Ok(self
            .store
            .all_token_object_ids()
            .await?
            .into_iter()
            .collect())
    }
}

/// Material objects labelled as ours (`kms-bridge/<key>/v<n>`) that `known` does not name.
fn orphans<'a>(
    objects: &'a [FoundObject],
    known: &'a HashSet<Vec<u8>>,
) -> impl Iterator<Item = &'a FoundObject> {
    objects
        .iter()
        .filter(move |o| o.label.starts_with(LABEL_PREFIX) && !known.contains(&o.id))
}
