//! GetKeyLastUsage: the newest successful cryptographic use of each key.
//!
//! A use is noted in memory when its answer is ready (after its audit record is durable, whose
//! `eventID` it names) and written to the store in batches once a second (`flush_usage`), the
//! newest per key winning whichever node writes last; a node's own unwritten uses are merged
//! into its answers, so it reads its own writes. Other nodes see a use within about a second,
//! the eventual consistency AWS documents for this operation.

use crate::operations::{Action, Operation};
use std::collections::HashMap;

use uuid::Uuid;

use super::authz::Op;
use super::ids::KeyRef;
use super::{Kms, KmsError, RequestContext, Result};
use crate::store::{KeyRecord, KeyUsageRecord};

#[derive(Default)]
pub(super) struct Pending(std::sync::Mutex<HashMap<Uuid, KeyUsageRecord>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, KeyUsageRecord>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keep_newest(map: &mut HashMap<Uuid, KeyUsageRecord>, u: KeyUsageRecord) {
        match map.get(&u.key_id) {
            Some(old) if old.used_at > u.used_at => {}
            _ => {
                map.insert(u.key_id, u);
            }
        }
    }
}

/// The store's key id of a key ARN (`arn:aws:kms:<region>:…:key/<id>`; a multi-Region key's
/// row in that region).
fn key_id_of(arn: &str) -> Option<Uuid> {
    let id = arn.rsplit('/').next()?;
    if !id.starts_with("mrk-") {
        return Uuid::parse_str(id).ok();
    }
    let region = arn.split(':').nth(3)?;
    Some(super::ids::parse_key_name(id)?.in_region(region))
}

/// What GetKeyLastUsage answers.
pub struct LastUsage {
    pub key: KeyRecord,
    pub last: Option<KeyUsageRecord>,
}

impl Kms {
    /// Note a successful use of the keys (ARNs) an answer names, if GetKeyLastUsage tracks
    /// the operation (the table's `tracked`).
    pub fn note_usage(
        &self,
        operation: Operation,
        key_arns: &[&str],
        request_id: &str,
        event_id: &str,
    ) {
        if !operation.flags().tracked {
            return;
        }
        let now = self.now();
        let mut map = self.usage.lock();
        for id in key_arns.iter().filter_map(|a| key_id_of(a)) {
            Pending::keep_newest(
                &mut map,
                KeyUsageRecord {
                    key_id: id,
                    operation: operation.name().to_string(),
                    used_at: now,
                    event_id: event_id.to_string(),
                    request_id: request_id.to_string(),
                },
            );
        }
    }

    /// Write the noted uses (kept for the next try if the store refuses).
    pub async fn flush_usage(&self) {
        let batch: Vec<KeyUsageRecord> = {
            let mut map = self.usage.lock();
            if map.is_empty() {
                return;
            }
            map.drain().map(|(_, u)| u).collect()
        };
        if let Err(e) = self.store.record_key_usage(&batch).await {
            tracing::warn!(error = %e, uses = batch.len(), "key usage not recorded yet; will retry");
            let mut map = self.usage.lock();
            for u in batch {
                Pending::keep_newest(&mut map, u);
            }
        }
    }

    pub async fn get_key_last_usage(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
    ) -> Result<LastUsage> {
        if matches!(key, KeyRef::Alias(_) | KeyRef::AliasArn { .. }) {
            // As every operation that takes only a key id or ARN (no recording of this one).
            return Err(KmsError::InvalidArn(
                super::texts::ALIAS_NOT_SUPPORTED.into(),
            ));
        }
        let k = self
            .resolve(ctx, key, Op::new(Action::GetKeyLastUsage))
            .await?;
        let stored = self.store.key_last_usage(k.key_id).await?;
        let local = self.usage.lock().get(&k.key_id).cloned();
        let last = match (stored, local) {
            (Some(s), Some(l)) => Some(if l.used_at >= s.used_at { l } else { s }),
            (s, l) => s.or(l),
        };
        Ok(LastUsage {
            key: (*k).clone(),
            last,
        })
    }
}
