//! The KMS domain: keys, aliases, tags, policies, rotation and the symmetric cryptographic
//! operations. It decides; the protocol layer only translates.
//!
//! Architecture invariants:
//! - Key material exists only in the token; this layer handles token object ids and blobs.
//! - Every key state change is a compare-and-swap on the key's revision in the store.
//! - A token object is created only after the store holds the intent to create it
//!   (`Creating` key / pending version), so start-up reconciliation can finish or undo it.

pub mod authz;
pub mod blob;
pub mod error;
pub mod ids;
pub mod keyformat;

mod aliases;
mod asymmetric;
mod crypto;
mod grants;
mod import;
mod keys;
pub mod keystores;
pub mod managed;
mod multi_region;
mod oaep;
pub mod quota;
mod reconcile;
mod rotation;
pub mod scheduler;
pub mod sealed;
pub use crate::texts;
pub mod usage;

pub use aliases::AliasInfo;
pub use asymmetric::{
    verify_mac, verify_signature, DataKeyPair, PublicKeyInfo, Signed, MAX_MESSAGE,
};
pub use authz::{
    AccountPermit, AccountToken, KeyToken, Permitted, Requested, ServicePermit, Tokens,
};
pub use crypto::{DataKey, Decrypted, Encrypted, ReEncrypted};
pub use error::{KmsError, Result};
pub use grants::{validate_grant_tokens, CreateGrantInput, GrantConstraints, GrantInfo};
pub use import::{imported_material_id, ImportInput, ImportParameters, IMPORT_MAC_KEY_ID};
pub use keys::{CreateKeyInput, KeyInfo, MultiRegionView, Page, ScheduledDeletion};
pub use managed::ViaServices;
pub use multi_region::{ReplicateKeyInput, Replicated};
pub use reconcile::ReconcileReport;
pub use rotation::{ImportedEntry, RotationEntry, RotationStatus};

use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Principal;
use crate::model::KeyState;
use crate::store::{IdentityPolicyRecord, KeyRecord, MetadataStore, Millis};
use crate::token::Token;
use ids::KeyRef;

/// A source of time; tests may substitute their own.
pub trait Clock: Send + Sync + 'static {
    fn now_millis(&self) -> Millis;
}

/// The system clock plus an offset that only a debug endpoint can move (key lifecycle tests
/// advance days without sleeping). SigV4 always uses the real time.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    pub fn advance(&self, ms: Millis) -> Millis {
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst)
            + ms
    }
}

impl Clock for OffsetClock {
    fn now_millis(&self) -> Millis {
        SystemClock.now_millis() + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
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
#[derive(Debug)]
pub struct RequestContext {
    pub region: String,
    /// The caller's account: where keys it creates live and whose keys it lists.
    pub account: String,
    pub access_key_id: String,
    pub request_id: String,
    pub principal: Principal,
    pub identity_policies: Arc<Vec<IdentityPolicyRecord>>,
    pub source_ip: Option<String>,
    pub secure_transport: bool,
    /// The operation and what authorization derives from its row: the dry run (stopped with
    /// `KmsError::DryRun` after the operation's last action) and the quota charge.
    pub request: authz::Requested,
}

impl RequestContext {
    /// The same caller acting in another region (a multi-Region operation's other side: its
    /// permissions there are checked with this). Its quota was charged already.
    pub(crate) fn in_region(&self, region: &str) -> RequestContext {
        RequestContext {
            region: region.to_owned(),
            account: self.account.clone(),
            access_key_id: self.access_key_id.clone(),
            request_id: self.request_id.clone(),
            principal: self.principal.clone(),
            identity_policies: self.identity_policies.clone(),
            source_ip: self.source_ip.clone(),
            secure_transport: self.secure_transport,
            request: authz::Requested::charged(),
        }
    }
}

/// The KMS service.
pub struct Kms {
    /// Reached only through a permit (`authz`).
    token: authz::Tokens,
    store: Arc<dyn MetadataStore>,
    clock: Arc<dyn Clock>,
    policies: authz::PolicyCache,
    quotas: quota::Quotas,
    key_stores: keystores::KeyStores,
    /// The import-token MAC key has been checked or created.
    import_mac: tokio::sync::OnceCell<()>,
    /// Wrapping algorithms the token turned out not to support (learned by trying).
    import_unsupported:
        std::sync::Mutex<std::collections::HashSet<crate::model::WrappingAlgorithm>>,
    /// Key uses not yet written to the store (GetKeyLastUsage).
    usage: usage::Pending,
    /// The regions this deployment serves (where multi-Region keys may have replicas).
    regions: Vec<String>,
    /// Principals standing for AWS services (`kms:ViaService`; see `managed`).
    via_services: managed::ViaServices,
}

/// Prefix of every token object label this service creates.
pub const LABEL_PREFIX: &str = "kms-bridge/";

const MS_PER_DAY: Millis = 86_400_000;

impl Kms {
    pub fn new(
        token: Token,
        store: Arc<dyn MetadataStore>,
        clock: Arc<dyn Clock>,
        quotas: quota::QuotaSettings,
        module: std::path::PathBuf,
    ) -> Kms {
        let (threads, working_copies, keygen) = (
            token.threads(),
            token.max_working_copies(),
            token.keygen_lane(),
        );
        Kms {
            token: authz::Tokens::new(token),
            store,
            clock,
            policies: authz::PolicyCache::default(),
            quotas: quota::Quotas::new(quotas),
            key_stores: keystores::KeyStores::new(module, threads, working_copies, keygen),
            import_mac: tokio::sync::OnceCell::new(),
            import_unsupported: Default::default(),
            usage: Default::default(),
            regions: Vec::new(),
            via_services: Default::default(),
        }
    }

    /// The regions this deployment serves (`regions` in the configuration).
    pub fn with_regions(mut self, regions: Vec<String>) -> Kms {
        self.regions = regions;
        self
    }

    /// The principals whose requests come "through" an AWS service (`service_principals`).
    pub fn with_service_principals(mut self, via_services: managed::ViaServices) -> Kms {
        self.via_services = via_services;
        self
    }

    /// Is the service able to serve: token session usable and store reachable?
    pub async fn ready(&self) -> std::result::Result<(), String> {
        self.token
            .check()
            .await
            .map_err(|e| format!("token: {e}"))?;
        self.store.ping().await.map_err(|e| format!("store: {e}"))?;
        if !self.store.cache_coherent() {
            return Err("store: not hearing other nodes' changes (listener reconnecting)".into());
        }
        Ok(())
    }

    /// The tokens (their capabilities; every other use needs a permit: see `authz`).
    pub fn tokens(&self) -> &authz::Tokens {
        &self.token
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// Find the key a request names (no authorization: see `authz::resolve`). Keys of other
    /// accounts are found by ARN only, and only when `cross_account` is true.
    async fn lookup(
        &self,
        ctx: &RequestContext,
        key: &KeyRef,
        cross_account: bool,
    ) -> Result<KeyRecord> {
        let scoped = |region: &str, account: &str, what: &str| -> Result<()> {
            if region != ctx.region {
                return Err(KmsError::NotFound(texts::invalid_arn(region)));
            }
            if account != ctx.account && !cross_account {
                return Err(KmsError::NotFound(texts::invalid_arn(what)));
            }
            Ok(())
        };
        // (account, the row's id, the id as the request named it: None for an alias).
        let (account, row_id, name) = match key {
            KeyRef::Id(id) => (ctx.account.clone(), id.in_region(&ctx.region), Some(*id)),
            KeyRef::KeyArn {
                region,
                account,
                id,
            } => {
                scoped(region, account, &ids::key_arn(region, account, id))?;
                (account.clone(), id.in_region(region), Some(*id))
            }
            KeyRef::Alias(alias) => (
                ctx.account.clone(),
                self.alias_target(ctx, &ctx.account, alias.as_str()).await?,
                None,
            ),
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
                (
                    account.clone(),
                    self.alias_target(ctx, account, alias.as_str()).await?,
                    None,
                )
            }
        };
        let not_found = || {
            let id = name.unwrap_or(ids::KeyName::Uuid(row_id));
            KmsError::NotFound(texts::key_not_found(&ids::key_arn(
                &ctx.region,
                &account,
                &id,
            )))
        };
        let k = self
            .store
            .get_key(row_id)
            .await?
            .filter(|k| k.region == ctx.region && k.account == account && visible(k))
            .ok_or_else(not_found)?;
        // A multi-Region key is named by its mrk- id, a single-Region key by its UUID (a
        // member's row id is internal).
        if name.is_some_and(|n| k.multi_region.is_some() != matches!(n, ids::KeyName::Mrk(_))) {
            return Err(not_found());
        }
        self.with_expiry(k).await
    }

    /// A key in the caller's region (any account: authorization decides), creation finished.
    async fn load_key(&self, ctx: &RequestContext, id: Uuid) -> Result<Option<KeyRecord>> {
        match self
            .store
            .get_key(id)
            .await?
            .filter(|k| k.region == ctx.region && visible(k))
        {
            Some(k) => Ok(Some(self.with_expiry(k).await?)),
            None => Ok(None),
        }
    }

    async fn alias_target(&self, ctx: &RequestContext, account: &str, alias: &str) -> Result<Uuid> {
        if let Some(a) = self.store.get_alias(&ctx.region, account, alias).await? {
            return Ok(a.key_id);
        }
        // A predefined alias of an AWS managed key not created yet: created on first use.
        if let Some(id) = self.managed_alias_target(ctx, account, alias).await? {
            return Ok(id);
        }
        Err(KmsError::NotFound(texts::alias_not_found(&ids::alias_arn(
            &ctx.region,
            account,
            alias,
        ))))
    }

    /// Re-read, change and compare-and-swap a key, retrying on concurrent updates.
    async fn update_key<F>(&self, ctx: &RequestContext, key: Permitted, f: F) -> Result<KeyRecord>
    where
        F: FnMut(&mut KeyRecord) -> Result<()>,
    {
        self.update_record(ctx, key.into_record(), f).await
    }

    /// `update_key` for a record whose operation was authorized already.
    async fn update_record<F>(
        &self,
        ctx: &RequestContext,
        mut key: KeyRecord,
        mut f: F,
    ) -> Result<KeyRecord>
    where
        F: FnMut(&mut KeyRecord) -> Result<()>,
    {
        // Concurrent writers of one key (Enable/Disable races, on one node or several) retry
        // here on a fresh copy, with a growing random pause: AWS answers them all, never
        // ConflictException.
        for attempt in 0..64u64 {
            if attempt > 0 {
                let spread = 200 * attempt.min(25);
                let jitter = (Uuid::new_v4().as_u128() % u128::from(spread)) as u64;
                tokio::time::sleep(std::time::Duration::from_micros(jitter)).await;
            }
            f(&mut key)?;
            match self.store.update_key(&key).await {
                Ok(revision) => {
                    key.revision = revision;
                    return Ok(key);
                }
                Err(crate::store::StoreError::NotFound) => {
                    return Err(KmsError::NotFound(texts::key_not_found(&key.arn())));
                }
                Err(crate::store::StoreError::Conflict) => {
                    key = self
                        .load_key(ctx, key.key_id)
                        .await?
                        .ok_or_else(|| KmsError::NotFound(texts::key_not_found(&key.arn())))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(KmsError::Conflict(texts::CONCURRENT_MODIFICATION.into()))
    }
}

/// The `CKA_ID` of a key version's token object: key id bytes ‖ version (big-endian). (A
/// multi-Region key's row id differs per region, so each member has objects of its own.)
pub fn token_object_id(key_id: &Uuid, version: u32) -> Vec<u8> {
    let mut id = Vec::with_capacity(20);
    id.extend_from_slice(key_id.as_bytes());
    id.extend_from_slice(&version.to_be_bytes());
    id
}

pub fn token_object_label(key_id: &Uuid, version: u32) -> String {
    format!("{LABEL_PREFIX}{key_id}/v{version}")
}

/// The label of a key's version object: `kms-bridge/<key id>/v<n>`, and for a multi-Region
/// key `kms-bridge/mrk-…@<region>/v<n>` — after a database restore the label is what tells
/// whose an object is.
pub fn key_object_label(key: &crate::store::KeyRecord, version: u32) -> String {
    match &key.multi_region {
        Some(_) => format!(
            "{LABEL_PREFIX}{}@{}/v{version}",
            key.public_id(),
            key.region
        ),
        None => token_object_label(&key.key_id, version),
    }
}

/// The public, stable identifier of one version of key material (64 hex characters).
pub fn material_id(key_id: &Uuid, version: u32) -> String {
    let mut h = Sha256::new();
    h.update(b"kms-bridge key material\0");
    h.update(key_id.as_bytes());
    h.update(version.to_be_bytes());
    hex::encode(h.finalize())
}

/// May requests see this key? Never a tombstone; a key being created only when it is a
/// multi-Region replica (ReplicateKey answered with it in state `Creating`; a CreateKey
/// intent is invisible until it completes).
fn visible(k: &KeyRecord) -> bool {
    match k.state {
        KeyState::Deleted => false,
        KeyState::Creating => k.is_replica(),
        _ => true,
    }
}

/// The error AWS gives when a key's state forbids an operation.
fn state_error(arn: &str, state: KeyState) -> KmsError {
    match state {
        KeyState::Disabled => KmsError::Disabled(texts::disabled(arn)),
        KeyState::PendingDeletion => KmsError::InvalidState(texts::pending_deletion(arn)),
        KeyState::PendingReplicaDeletion => {
            KmsError::InvalidState(texts::pending_replica_deletion(arn))
        }
        KeyState::PendingImport => KmsError::InvalidState(texts::pending_import(arn)),
        KeyState::Unavailable => KmsError::InvalidState(texts::unavailable(arn)),
        KeyState::Creating => KmsError::InvalidState(texts::creating(arn)),
        KeyState::Updating => KmsError::InvalidState(texts::updating(arn)),
        KeyState::Deleted => KmsError::NotFound(texts::key_not_found(arn)),
        KeyState::Enabled => KmsError::Internal(format!("{arn}: enabled key rejected")),
    }
}

/// Cryptographic operations need an enabled key (a multi-Region key whose primary Region is
/// being updated stays usable, as on AWS).
fn require_enabled(key: &KeyRecord) -> Result<()> {
    if matches!(key.state, KeyState::Enabled | KeyState::Updating) {
        Ok(())
    } else {
        Err(state_error(&key.arn(), key.state))
    }
}

/// Management operations that are refused while a key is pending deletion.
fn require_not_pending_deletion(key: &KeyRecord) -> Result<()> {
    if matches!(
        key.state,
        KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
    ) {
        Err(state_error(&key.arn(), key.state))
    } else {
        Ok(())
    }
}

/// Validate a `Limit` against an operation's range and default.
fn page_limit(limit: Option<i64>, max: i64, default: i64) -> Result<i64> {
    match limit {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(l) => Err(KmsError::Validation(texts::validation(&[
            texts::constraint(
                &l.to_string(),
                "limit",
                &if l < 1 {
                    texts::at_least(1)
                } else {
                    texts::at_most(max)
                },
            ),
        ]))),
    }
}
