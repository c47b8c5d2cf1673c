//! The KMS domain: keys, aliases, tags, policies, rotation and the symmetric cryptographic
//! operations. It decides; the protocol layer only translates.
//!
//! Architecture invariants:
//! - Key material exists only in the token; this layer handles token object ids and blobs.
//! - Every key state change is a compare-and-swap on the key's revision in the store.
//! - A token object is created only after the store holds the intent to create it
//!   (`Creating` key / pending version), so start-up reconciliation can finish or undo it.

pub mod blob;
pub mod error;
pub mod ids;

mod aliases;
mod crypto;
mod keys;
mod reconcile;
mod rotation;

pub use aliases::AliasInfo;
pub use crypto::{DataKey, Decrypted, Encrypted, ReEncrypted};
pub use error::{KmsError, Result};
pub use keys::{CreateKeyInput, KeyInfo, Page, ScheduledDeletion};
pub use reconcile::ReconcileReport;
pub use rotation::{RotationEntry, RotationStatus};

use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::KeyState;
use crate::store::{KeyRecord, MetadataStore, Millis};
use crate::token::Token;
use ids::KeyRef;

/// A source of time; tests may substitute their own.
pub trait Clock: Send + Sync + 'static {
    fn now_millis(&self) -> Millis;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// Who is calling, where: built by the protocol/authentication layers for each request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub region: String,
    pub account: String,
    pub access_key_id: String,
    pub request_id: String,
}

impl RequestContext {
    pub fn key_arn(&self, id: &Uuid) -> String {
        ids::key_arn(&self.region, &self.account, id)
    }
}

/// The KMS service.
pub struct Kms {
    token: Token,
    store: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
}

/// Prefix of every token object label this service creates.
pub const LABEL_PREFIX: &str = "kms-bridge/";

const MS_PER_DAY: Millis = 86_400_000;

impl Kms {
    pub fn new(token: Token, store: Arc<dyn MetadataStore>, clock: Arc<dyn Clock>) -> Kms {
        Kms {
            token,
            store,
            clock,
        }
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// Look up the key a request names. `allow_alias` is false for operations that AWS
    /// only lets you call with a key id or key ARN.
    async fn resolve(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        allow_alias: bool,
    ) -> Result<KeyRecord> {
        let scoped = |region: &str, account: &str, what: &str| -> Result<()> {
            if region != ctx.region || account != ctx.account {
                return Err(KmsError::NotFound(format!("Invalid arn {what}")));
            }
            Ok(())
        };
        let id = match key {
            KeyRef::Id(id) => *id,
            KeyRef::KeyArn {
                region,
                account,
                id,
            } => {
                scoped(region, account, &ids::key_arn(region, account, id))?;
                *id
            }
            KeyRef::Alias(_) | KeyRef::AliasArn { .. } if !allow_alias => {
                return Err(KmsError::NotFound(
                    "This operation requires a key ID or key ARN, not an alias".into(),
                ));
            }
            KeyRef::Alias(alias) => self.alias_target(ctx, alias.as_str()).await?,
            KeyRef::AliasArn {
                region,
                account,
                alias,
            } => {
                scoped(
                    region,
                    account,
                    &ids::alias_arn(region, account, alias.as_str()),
                )?;
                self.alias_target(ctx, alias.as_str()).await?
            }
        };
        self.load_key(ctx, id)
            .await?
            .ok_or_else(|| KmsError::NotFound(format!("Key '{}' does not exist", ctx.key_arn(&id))))
    }

    /// A key visible to this caller (right region and account, creation finished).
    async fn load_key(&self, ctx: &RequestContext, id: Uuid) -> Result<Option<KeyRecord>> {
        Ok(self.store.get_key(id).await?.filter(|k| {
            k.region == ctx.region && k.account == ctx.account && k.state != KeyState::Creating
        }))
    }

    async fn alias_target(&self, ctx: &RequestContext, alias: &str) -> Result<Uuid> {
        self.store
            .get_alias(&ctx.region, &ctx.account, alias)
            .await?
            .map(|a| a.key_id)
            .ok_or_else(|| {
                KmsError::NotFound(format!(
                    "Alias {} is not found.",
                    ids::alias_arn(&ctx.region, &ctx.account, alias)
                ))
            })
    }

    /// Re-read, change and compare-and-swap a key, retrying on concurrent updates.
    async fn update_key<F>(
        &self,
        ctx: &RequestContext,
        mut key: KeyRecord,
        mut f: F,
    ) -> Result<KeyRecord>
    where
        F: FnMut(&mut KeyRecord) -> Result<()>,
    {
        for _ in 0..8 {
            f(&mut key)?;
            match self.store.update_key(&key).await {
                Ok(()) => {
                    key.revision += 1;
                    return Ok(key);
                }
                Err(crate::store::StoreError::Conflict) => {
                    key = self.load_key(ctx, key.key_id).await?.ok_or_else(|| {
                        KmsError::NotFound(format!(
                            "Key '{}' does not exist",
                            ctx.key_arn(&key.key_id)
                        ))
                    })?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(KmsError::Conflict(
            "The key is being modified concurrently; retry.".into(),
        ))
    }
}

/// The `CKA_ID` of a key version's token object: key id bytes ‖ version (big-endian).
pub fn token_object_id(key_id: &Uuid, version: u32) -> Vec<u8> {
    let mut id = Vec::with_capacity(20);
    id.extend_from_slice(key_id.as_bytes());
    id.extend_from_slice(&version.to_be_bytes());
    id
}

pub fn token_object_label(key_id: &Uuid, version: u32) -> String {
    format!("{LABEL_PREFIX}{key_id}/v{version}")
}

/// The public, stable identifier of one version of key material (64 hex characters).
pub fn material_id(key_id: &Uuid, version: u32) -> String {
    let mut h = Sha256::new();
    h.update(b"kms-bridge key material\0");
    h.update(key_id.as_bytes());
    h.update(version.to_be_bytes());
    hex::encode(h.finalize())
}

/// The error AWS gives when a key's state forbids an operation.
fn state_error(arn: &str, state: KeyState) -> KmsError {
    match state {
        KeyState::Disabled => KmsError::Disabled(format!("{arn} is disabled.")),
        KeyState::PendingDeletion => KmsError::InvalidState(format!("{arn} is pending deletion.")),
        KeyState::PendingImport => KmsError::InvalidState(format!("{arn} is pending import.")),
        KeyState::Unavailable => KmsError::InvalidState(format!("{arn} is unavailable.")),
        KeyState::Creating => KmsError::InvalidState(format!("{arn} is creating.")),
        KeyState::Enabled => KmsError::Internal(format!("{arn}: enabled key rejected")),
    }
}

/// Cryptographic operations need an enabled key.
fn require_enabled(ctx: &RequestContext, key: &KeyRecord) -> Result<()> {
    if key.state == KeyState::Enabled {
        Ok(())
    } else {
        Err(state_error(&ctx.key_arn(&key.key_id), key.state))
    }
}

/// Management operations that are refused while a key is pending deletion.
fn require_not_pending_deletion(ctx: &RequestContext, key: &KeyRecord) -> Result<()> {
    if key.state == KeyState::PendingDeletion {
        Err(state_error(&ctx.key_arn(&key.key_id), key.state))
    } else {
        Ok(())
    }
}

/// Validate a `Limit` against an operation's range and default.
fn page_limit(limit: Option<i64>, max: i64, default: i64) -> Result<i64> {
    match limit {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(l) => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{l}' at 'limit' failed to satisfy constraint: \
             Member must have value between 1 and {max}"
        ))),
    }
}
