//! Start-up reconciliation of the store with the token.
//!
//! The store records an intent (key in `Creating`, version `pending`) before the token object
//! is created and completes it afterwards. After a crash in between:
//! - intent with its token object present → completed now;
//! - intent without a token object → removed (the request never succeeded);
//! - a completed version whose object is missing → reported (served as KeyUnavailable);
//! - a token object of ours that no version names → reported as an orphan, never deleted;
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
        let present: HashSet<Vec<u8>> = objects.iter().map(|o| o.id.clone()).collect();
        let mut report = ReconcileReport {
            token_objects: objects.len(),
            ..Default::default()
        };

        for mut key in self.store.unfinished_keys().await? {
            if key.created_at > cutoff {
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
        for v in self.store.pending_versions().await? {
            if v.created_at > cutoff {
                continue;
            }
            let Some(mut key) = self.store.get_key(v.key_id).await? else {
                continue;
            };
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

        let known: HashSet<Vec<u8>> = self
            .store
            .all_token_object_ids()
            .await?
            .into_iter()
            .collect();
        for id in &known {
            if !present.contains(id) {
                tracing::error!(object_id = %hex::encode(id), "key material missing from the token");
                report.missing_material.push(hex::encode(id));
            }
        }
        for o in &objects {
            if o.label.starts_with(LABEL_PREFIX)
                && !known.contains(&o.id)
                && !destroyed.contains(&o.id)
            {
                tracing::warn!(object_id = %hex::encode(&o.id), label = %o.label, "orphan token object: no key refers to it");
                report.orphan_objects.push(o.label.clone());
            }
        }
        Ok(report)
    }
}
