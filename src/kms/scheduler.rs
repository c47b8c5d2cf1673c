//! Background lifecycle jobs: automatic rotation, scheduled deletion and the expiry of
//! imported key material.
//!
//! Claims are compare-and-swaps in the store, so several servers sharing one database run each
//! due job once: a rotation inserts version N+1 (a second claimant gets a unique-key conflict);
//! a deletion flips `PendingDeletion` → `Deleted` on the key's revision (a cancel in between
//! makes the flip fail, so deletion is never early and can be cancelled up to the last moment).
//! Destroying token objects happens after the flip and is resumed by the next run if the
//! process dies half-way.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{token_object_id, Kms, RequestContext};
use crate::audit::AuditLog;
use crate::auth::Principal;
use crate::model::RotationType;
use crate::store::{KeyRecord, PrincipalKind, StoreError};

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchedulerReport {
    pub rotated: usize,
    pub deleted: usize,
    pub expired: usize,
    /// Multi-Region primary keys whose waiting period started (their last replica is gone).
    pub primary_deletions_started: usize,
    pub destroyed_objects: usize,
    pub errors: usize,
}

fn service_context(key: &KeyRecord) -> RequestContext {
    RequestContext {
        region: key.region.clone(),
        account: key.account.clone(),
        access_key_id: String::new(),
        request_id: Uuid::new_v4().to_string(),
        principal: Principal {
            arn: "kms.amazonaws.com".into(),
            account: key.account.clone(),
            kind: PrincipalKind::Root,
            name: "kms".into(),
        },
        identity_policies: Arc::new(Vec::new()),
        source_ip: None,
        secure_transport: true,
        request: super::authz::Requested::charged(),
    }
}

fn service_event(
    name: &str,
    key: &KeyRecord,
    now: i64,
    error: Option<String>,
) -> Map<String, Value> {
    let mut rec = Map::new();
    rec.insert("eventVersion".into(), json!("1.08"));
    rec.insert(
        "userIdentity".into(),
        json!({"type": "AWSService", "invokedBy": "kms.amazonaws.com", "accountId": key.account}),
    );
    rec.insert("eventTime".into(), json!(crate::audit::event_time(now)));
    rec.insert("eventSource".into(), json!("kms.amazonaws.com"));
    rec.insert("eventName".into(), json!(name));
    rec.insert("awsRegion".into(), json!(key.region));
    rec.insert("sourceIPAddress".into(), json!("kms.amazonaws.com"));
    rec.insert("userAgent".into(), json!("kms.amazonaws.com"));
    if let Some(e) = error {
        rec.insert("errorCode".into(), json!("KMSInternalException"));
        rec.insert("errorMessage".into(), json!(e));
    }
    rec.insert("requestParameters".into(), Value::Null);
    rec.insert("responseElements".into(), Value::Null);
    rec.insert("requestID".into(), json!(Uuid::new_v4().to_string()));
    rec.insert("eventID".into(), json!(Uuid::new_v4().to_string()));
    rec.insert("readOnly".into(), json!(false));
    rec.insert(
        "resources".into(),
        json!([{"accountId": key.account, "type": "AWS::KMS::Key", "ARN": key.arn()}]),
    );
    rec.insert("eventType".into(), json!("AwsServiceEvent"));
    rec.insert("managementEvent".into(), json!(true));
    rec.insert("recipientAccountId".into(), json!(key.account));
    rec
}

impl Kms {
    /// Run every due job once.
    pub async fn run_scheduled_jobs(&self, audit: &AuditLog) -> SchedulerReport {
        let mut report = SchedulerReport::default();
        // The service's own jobs.
        let service = self.service_permit();
        let now = self.now();
        let count = |job: &str, ok: bool| {
            crate::metrics::SCHEDULER_RUNS
                .with_label_values(&[job, if ok { "success" } else { "error" }])
                .inc();
        };

        match self.store.due_rotations(now).await {
            Ok(keys) => {
                // A multi-Region replica shares its primary's rotation, which rotates it too.
                for key in keys.into_iter().filter(|k| !k.is_replica()) {
                    let ctx = service_context(&key);
                    let result = self
                        .rotate(&ctx, service.permit(key.clone()), RotationType::Automatic)
                        .await;
                    let error = result.as_ref().err().map(|e| e.to_string());
                    match &result {
                        Ok(_) => report.rotated += 1,
                        // Another server claimed it first (or a rotation is still pending).
                        Err(super::KmsError::Conflict(m)) => {
                            tracing::warn!(key_id = %key.key_id, reason = %m, "scheduled rotation skipped");
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(key_id = %key.key_id, error = %e, "scheduled rotation failed");
                            report.errors += 1;
                        }
                    }
                    count("rotate", error.is_none());
                    if let Err(e) = audit
                        .append(service_event("RotateKey", &key, now, error))
                        .await
                    {
                        tracing::error!(error = %e, "audit record of a rotation not written");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "listing due rotations failed");
                report.errors += 1;
            }
        }

        match self.store.due_deletions(now).await {
            Ok(keys) => {
                for key in keys {
                    match self.store.tombstone_key(&key).await {
                        Ok(()) => {
                            crate::failpoint::hit("deletion.after_tombstone");
                            report.deleted += 1;
                            count("delete", true);
                            if let Ok(token) = service.key_token(self, &key) {
                                self.destroy_wrapping_key(&token, &key).await;
                            }
                            tracing::info!(key_id = %key.key_id, "key deleted as scheduled");
                            if let Err(e) = audit
                                .append(service_event("DeleteKey", &key, now, None))
                                .await
                            {
                                tracing::error!(error = %e, "audit record of a deletion not written");
                            }
                        }
                        Err(StoreError::Conflict) => {} // cancelled or claimed meanwhile
                        Err(e) => {
                            count("delete", false);
                            tracing::error!(key_id = %key.key_id, error = %e, "scheduled deletion failed");
                            report.errors += 1;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "listing due deletions failed");
                report.errors += 1;
            }
        }

        // Multi-Region primary keys whose last replica is gone: their waiting period starts.
        match self.start_primary_deletions().await {
            Ok(n) => report.primary_deletions_started += n,
            Err(e) => {
                tracing::error!(error = %e, "starting the deletion of primary keys failed");
                report.errors += 1;
            }
        }
        // Keys left `Updating` by an interrupted UpdatePrimaryRegion.
        if let Err(e) = self.finish_updates().await {
            tracing::error!(error = %e, "finishing primary Region updates failed");
            report.errors += 1;
        }

        // Imported material past its ValidTo: key → PendingImport, material destroyed.
        match self.store.due_expirations(now).await {
            Ok(keys) => {
                for key in keys {
                    let result = match service.key_token(self, &key) {
                        Ok(token) => self.expire_material(&token, key.clone()).await,
                        Err(e) => Err(e),
                    };
                    let error = result.as_ref().err().map(|e| e.to_string());
                    match &result {
                        Ok(n) => {
                            report.expired += 1;
                            report.destroyed_objects += n;
                            tracing::info!(key_id = %key.key_id, "imported key material expired and was destroyed");
                        }
                        Err(e) => {
                            tracing::error!(key_id = %key.key_id, error = %e, "expiring imported key material failed; will retry");
                            report.errors += 1;
                        }
                    }
                    count("expire", error.is_none());
                    if let Err(e) = audit
                        .append(service_event("DeleteExpiredKeyMaterial", &key, now, error))
                        .await
                    {
                        tracing::error!(error = %e, "audit record of a material expiry not written");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "listing expired key material failed");
                report.errors += 1;
            }
        }

        // Destroy the material of tombstoned keys (also finishes a destroy a crash interrupted).
        match self.store.deleted_keys_with_material().await {
            Ok(ids) => {
                for id in ids {
                    match self.destroy_material(id).await {
                        Ok(n) => report.destroyed_objects += n,
                        Err(e) => {
                            tracing::error!(key_id = %id, error = %e, "destroying key material failed; will retry");
                            report.errors += 1;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "listing deleted keys failed");
                report.errors += 1;
            }
        }
        report
    }

    /// Destroy a deleted key's material (versions, an import's wrapping key), each object
    /// before the row naming it, so a crash half-way is finished by the next call.
    pub(super) async fn destroy_material(&self, key_id: Uuid) -> super::Result<usize> {
        let Some(key) = self.store.get_key(key_id).await? else {
            return Ok(0);
        };
        // Finishing a deletion is the service's work, whoever notices it is due.
        let token = self.service_permit().key_token(self, &key);
        // An import's wrapping key too (its destroy right after the tombstone may have been
        // cut short by a crash).
        if let Ok(token) = &token {
            self.destroy_wrapping_key(token, &key).await;
        }
        // A disconnected custom key store keeps the material until it is connected again.
        let token = token?;
        let mut n = 0;
        for v in self.store.versions(key_id).await? {
            let version = u32::try_from(v.version).unwrap_or(u32::MAX);
            token.destroy(token_object_id(&key_id, version)).await?;
            crate::failpoint::hit("deletion.after_destroy");
            self.store.delete_version(key_id, v.version).await?;
            n += 1;
        }
        Ok(n)
    }
}
