//! The metadata store: key metadata, key versions with their token object ids, aliases, tags
//! and policies. Never key material.
//!
//! `MetadataStore` is the contract; `sqlite::SqliteStore` is the embedded default for one node
//! and `postgres::PgStore` the shared database of several nodes. Both are the same SQL
//! (`sql.rs`, written once with `$N` placeholders that both engines accept) over versioned
//! migrations (`store/migrations/<engine>/`), and `tests/store_conformance.rs` runs one suite of
//! contract tests against both.
//!
//! The contract, for every engine:
//! - Every mutation of a key is a compare-and-swap on its `revision`; the store, not the
//!   caller, increments it and returns the new value. A CAS on a row that changed answers
//!   `Conflict`; on a row that does not exist, `NotFound`.
//! - Limits (aliases and grants per key, tags per key) and the "no keys left" rule of a custom
//!   key store's deletion are enforced inside the writing transaction, which first locks the
//!   parent row (`UPDATE … SET revision = revision`: a row lock on PostgreSQL, the write lock
//!   on SQLite), so two concurrent writers can never both pass the check.
//! - Singleton background work takes a lease (`try_lease`) timed by the database's clock;
//!   each grant of a lease carries a fencing number that increases with every new holder.
//! - Writes that change what a cache may hold (keys, aliases, import state, access keys,
//!   identity policies) publish an `Invalidation` in their transaction; `subscribe` delivers
//!   those of every node (PostgreSQL `NOTIFY`), `Flush` when some may have been missed.
//! - Errors are engine-neutral: a database that cannot be reached is `Unavailable`.

pub mod cached;
pub mod postgres;
mod sql;
pub mod sqlite;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{KeyManager, KeySpec, KeyState, KeyUsage, Origin, RotationType};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (alias exists, key id reused).
    #[error("already exists")]
    AlreadyExists,
    /// The record changed since it was read (revision mismatch).
    #[error("concurrent modification")]
    Conflict,
    /// The record to change does not exist (any more).
    #[error("not found")]
    NotFound,
    /// A per-key limit (aliases, grants, tags) would be exceeded; nothing was written.
    #[error("limit exceeded")]
    LimitExceeded,
    /// The record is still referenced (a custom key store that holds keys).
    #[error("in use")]
    InUse,
    /// The database cannot be reached or did not answer in time; nothing is known about the
    /// outcome of a write that was under way.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be parsed back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Any other database error (a bug or a schema mismatch).
    #[error("database error: {0}")]
    Db(String),
}

/// What a write changed, for the caches of every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    Key(Uuid),
    Alias {
        region: String,
        account: String,
        name: String,
    },
    AccessKey(String),
    Principal(String),
    /// Anything may have changed (a listener lost its connection): drop every cached entry.
    Flush,
}

impl Invalidation {
    /// One line of a notification payload.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::Key(k) => format!("k {k}"),
            Invalidation::Alias {
                region,
                account,
                name,
            } => format!("a {region} {account} {name}"),
            Invalidation::AccessKey(id) => format!("ak {id}"),
            Invalidation::Principal(arn) => format!("p {arn}"),
            Invalidation::Flush => "*".into(),
        }
    }

    /// The inverse of `encode`; an unreadable line is a `Flush` (never a missed invalidation).
    pub fn decode(line: &str) -> Invalidation {
        let mut parts = line.splitn(2, ' ');
        let (kind, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        match kind {
            "k" => Uuid::parse_str(rest).map_or(Invalidation::Flush, Invalidation::Key),
            "a" => {
                let f: Vec<&str> = rest.splitn(3, ' ').collect();
                match f.as_slice() {
                    [r, a, n] => Invalidation::Alias {
                        region: (*r).into(),
                        account: (*a).into(),
                        name: (*n).into(),
                    },
                    _ => Invalidation::Flush,
                }
            }
            "ak" if !rest.is_empty() => Invalidation::AccessKey(rest.into()),
            "p" if !rest.is_empty() => Invalidation::Principal(rest.into()),
            _ => Invalidation::Flush,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Apply a store's announcements to `target` (a cache) until the cache is dropped or the
/// store stops announcing; falling behind counts as `Flush`. Spawned on the current runtime.
pub fn follow_invalidations<T: Send + Sync + 'static>(
    mut rx: tokio::sync::broadcast::Receiver<Invalidation>,
    target: std::sync::Weak<T>,
    apply: fn(&T, &Invalidation),
) {
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(RecvError::Lagged(_)) => Invalidation::Flush,
                Err(RecvError::Closed) => return,
            };
            let Some(t) = target.upgrade() else { return };
            apply(&t, &change);
        }
    });
}

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub key_id: Uuid,
    pub region: String,
    pub account: String,
    pub description: String,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
    pub origin: Origin,
    pub state: KeyState,
    pub created_at: Millis,
    pub deletion_date: Option<Millis>,
    pub pending_window_days: Option<i64>,
    pub rotation_enabled: bool,
    pub rotation_period_days: Option<i64>,
    /// When automatic rotation was enabled or the key last rotated automatically.
    pub rotation_base: Option<Millis>,
    pub current_version: i64,
    pub policy: String,
    /// Incremented on every update; updates are compare-and-swap on it.
    pub revision: i64,
    /// The custom key store (another token) holding the material; None = the default token.
    pub custom_key_store_id: Option<String>,
    /// `AWS` for AWS managed keys (`alias/aws/<service>`); fixed at creation.
    pub key_manager: KeyManager,
    /// Integrity MAC over the row's contents (`Sealed`), made in the token
    /// (`kms::sealed`, applied by `cached::CachedStore`); stored as given (`tombstone_key` stores the one given for the row in state `Deleted`).
    pub mac: Vec<u8>,
    /// For a multi-Region key: the set it belongs to and where its primary is.
    pub multi_region: Option<MultiRegion>,
}

/// A multi-Region key's membership in its set of related keys (one row per region). Every
/// member of a set shares `mrk` — the set's external key id is `mrk-` + its 32 hex digits —
/// and the row's own `key_id` is derived from (`mrk`, region) (`kms::ids::mrk_row_id`), so
/// the key id and a ciphertext find the member in any region without an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRegion {
    pub mrk: Uuid,
    /// The region of the set's primary key (the same in every member's row).
    pub primary_region: String,
}

impl KeyRecord {
    /// The key id as callers see it: `mrk-<32 hex>` for a multi-Region key, else the UUID.
    pub fn public_id(&self) -> String {
        match &self.multi_region {
            Some(m) => format!("mrk-{}", m.mrk.simple()),
            None => self.key_id.to_string(),
        }
    }

    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.region,
            self.account,
            self.public_id()
        )
    }

    /// The identity of the key's material: the set's `mrk` for a multi-Region key (every
    /// member holds the same material, so ciphertexts and material ids name the set), else the
    /// key id.
    pub fn material_key(&self) -> Uuid {
        self.multi_region.as_ref().map_or(self.key_id, |m| m.mrk)
    }

    /// A multi-Region primary key?
    pub fn is_primary(&self) -> bool {
        self.multi_region
            .as_ref()
            .is_some_and(|m| m.primary_region == self.region)
    }

    /// A multi-Region replica key?
    pub fn is_replica(&self) -> bool {
        self.multi_region
            .as_ref()
            .is_some_and(|m| m.primary_region != self.region)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    pub key_id: Uuid,
    pub version: i64,
    /// `CKA_ID` of the token object holding this version's material.
    pub token_object_id: Vec<u8>,
    pub material_id: String,
    pub created_at: Millis,
    /// None for the original material.
    pub rotation_type: Option<RotationType>,
    /// True while the token object may not exist yet (write-ahead intent).
    pub pending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AliasRecord {
    pub region: String,
    pub account: String,
    pub name: String,
    pub key_id: Uuid,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TagRecord {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Role,
    Root,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Role => "role",
            PrincipalKind::Root => "root",
        }
    }

    pub fn parse(s: &str) -> Option<PrincipalKind> {
        match s {
            "user" => Some(PrincipalKind::User),
            "role" => Some(PrincipalKind::Role),
            "root" => Some(PrincipalKind::Root),
            _ => None,
        }
    }
}

/// An IAM-style principal (`arn:aws:iam::<account>:user/<name>`, `…:role/<name>`, `…:root`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalRecord {
    pub arn: String,
    pub account: String,
    pub kind: PrincipalKind,
    pub name: String,
    pub created_at: Millis,
}

/// An access key; the secret is sealed by a key in the token, never stored in plaintext.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub principal_arn: String,
    pub sealed_secret: Vec<u8>,
    pub active: bool,
    pub created_at: Millis,
    /// Integrity MAC (see `Sealed`).
    pub mac: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdentityPolicyRecord {
    pub principal_arn: String,
    pub name: String,
    pub document: String,
    /// Integrity MAC (see `Sealed`).
    pub mac: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GrantRecord {
    pub grant_id: String,
    pub key_id: Uuid,
    pub name: Option<String>,
    pub grantee_principal: String,
    pub retiring_principal: Option<String>,
    pub issuing_account: String,
    pub operations: Vec<String>,
    /// JSON of the grant constraints (`EncryptionContextEquals` / `EncryptionContextSubset`).
    pub constraints: Option<String>,
    pub created_at: Millis,
    /// Integrity MAC (see `Sealed`).
    pub mac: Vec<u8>,
}

/// A custom key store: another PKCS#11 token (AWS_CLOUDHSM semantics mapped onto a token:
/// the cluster id is the token label, the key store password is its user PIN, sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomKeyStoreRecord {
    pub id: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub cluster_id: String,
    pub trust_anchor: String,
    pub sealed_password: Vec<u8>,
    /// DISCONNECTED, CONNECTED or FAILED (the desired/last state, restored at start-up).
    pub connection_state: String,
    pub connection_error: Option<String>,
    pub created_at: Millis,
}

/// The newest successful cryptographic use of a key (GetKeyLastUsage).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyUsageRecord {
    pub key_id: Uuid,
    /// The operation, as `KeyLastUsageTrackingOperation` names it (`Encrypt`, …).
    pub operation: String,
    pub used_at: Millis,
    /// The audit record's `eventID`.
    pub event_id: String,
    pub request_id: String,
}

/// The import state of a key with origin `EXTERNAL` (one row per key) and its key materials.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportRecord {
    pub key_id: Uuid,
    /// `CKA_ID` of the current wrapping key pair (GetParametersForImport), if any.
    pub wrapping_object_id: Option<Vec<u8>>,
    pub wrapping_algorithm: Option<String>,
    pub wrapping_key_spec: Option<String>,
    /// Nonce of the current import token; older tokens are superseded.
    pub nonce: Option<Vec<u8>>,
    pub parameters_valid_to: Option<Millis>,
    /// Every key material imported into the key (ordered by version), also those deleted or
    /// expired since (`imported` false).
    pub materials: Vec<MaterialRecord>,
}

/// One key material of an `EXTERNAL` key. The row outlives the material's token object: a
/// deleted or expired material comes back (same check value) at the same `version`, so the
/// ciphertexts that name that version decrypt again.
#[derive(Debug, Clone, PartialEq)]
pub struct MaterialRecord {
    pub key_id: Uuid,
    /// The version (token object, ciphertext header) this material is.
    pub version: i64,
    /// SHA-256 of the key check value computed in the token (never the material).
    pub check_value: Vec<u8>,
    /// `KeyMaterialDescription`.
    pub description: Option<String>,
    /// `KEY_MATERIAL_EXPIRES` / `KEY_MATERIAL_DOES_NOT_EXPIRE`.
    pub expiration_model: String,
    pub valid_to: Option<Millis>,
    /// The material is in the token now (`ImportState` `IMPORTED`, else `PENDING_IMPORT`).
    pub imported: bool,
    /// When it was first imported.
    pub created_at: Millis,
    /// When on-demand rotation made it current (None: the first material, or pending rotation).
    pub rotated_at: Option<Millis>,
    pub rotation_type: Option<RotationType>,
}

/// Makes the integrity MACs of rows (`kms::sealed::TokenSealer`: in the token).
#[async_trait]
pub trait RowSealer: Send + Sync + 'static {
    async fn mac(&self, input: Vec<u8>) -> Result<Vec<u8>>;
}

/// Length-prefixed fields of a row's MAC input (an absent optional member differs from an
/// empty one).
struct MacInput(Vec<u8>);

impl MacInput {
    fn new(kind: &str) -> MacInput {
        MacInput(format!("kms-bridge {kind} row v1").into_bytes())
    }
    fn field(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(&(b.len() as u64).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    fn text(self, s: &str) -> Self {
        self.field(s.as_bytes())
    }
    fn int(self, v: i64) -> Self {
        self.field(&v.to_be_bytes())
    }
    fn opt_int(self, v: Option<i64>) -> Self {
        self.field(&v.map(|v| v.to_be_bytes().to_vec()).unwrap_or_default())
    }
    fn opt_text(self, v: Option<&str>) -> Self {
        match v {
            None => self.field(&[0]),
            Some(s) => self.field(&[&[1u8][..], s.as_bytes()].concat()),
        }
    }
}

/// `Sealed::mac`/`set_mac` of a row whose MAC is its `mac` member.
macro_rules! mac_member {
    () => {
        fn mac(&self) -> &[u8] {
            &self.mac
        }
        fn set_mac(&mut self, mac: Vec<u8>) {
            self.mac = mac;
        }
    };
}

/// A row whose security-relevant contents are integrity-protected by a MAC made in the token
/// (`RowSealer`; applied by `cached::CachedStore`).
pub trait Sealed: Clone + Send + Sync {
    /// The bytes the MAC covers: every member but the revision (keys) and the MAC itself.
    fn mac_input(&self) -> Vec<u8>;
    fn mac(&self) -> &[u8];
    fn set_mac(&mut self, mac: Vec<u8>);
    /// What the row is, for the log (no secrets).
    fn describe(&self) -> String;
}

impl Sealed for KeyRecord {
    fn mac_input(&self) -> Vec<u8> {
        let m = MacInput::new("key")
            .field(self.key_id.as_bytes())
            .text(&self.region)
            .text(&self.account)
            .text(&self.description)
            .text(self.key_spec.as_str())
            .text(self.key_usage.as_str())
            .text(self.origin.as_str())
            .text(self.state.as_str())
            .int(self.created_at)
            .opt_int(self.deletion_date)
            .opt_int(self.pending_window_days)
            .field(&[u8::from(self.rotation_enabled)])
            .opt_int(self.rotation_period_days)
            .opt_int(self.rotation_base)
            .int(self.current_version)
            .text(&self.policy)
            .opt_text(self.custom_key_store_id.as_deref());
        // Added after rows were sealed without them: single-Region, customer managed keys keep
        // the MAC input they had before.
        let m = match &self.multi_region {
            Some(mr) => m
                .text("multi-Region")
                .field(mr.mrk.as_bytes())
                .text(&mr.primary_region),
            None => m,
        };
        match self.key_manager {
            KeyManager::Customer => m.0,
            KeyManager::Aws => m.text("key manager AWS").0,
        }
    }
    mac_member!();
    fn describe(&self) -> String {
        format!("key {}", self.key_id)
    }
}

impl Sealed for AccessKeyRecord {
    fn mac_input(&self) -> Vec<u8> {
        MacInput::new("access key")
            .text(&self.access_key_id)
            .text(&self.principal_arn)
            .field(&self.sealed_secret)
            .field(&[u8::from(self.active)])
            .int(self.created_at)
            .0
    }
    mac_member!();
    fn describe(&self) -> String {
        format!("access key {}", self.access_key_id)
    }
}

impl Sealed for IdentityPolicyRecord {
    fn mac_input(&self) -> Vec<u8> {
        MacInput::new("identity policy")
            .text(&self.principal_arn)
            .text(&self.name)
            .text(&self.document)
            .0
    }
    mac_member!();
    fn describe(&self) -> String {
        format!("identity policy {} of {}", self.name, self.principal_arn)
    }
}

impl Sealed for GrantRecord {
    fn mac_input(&self) -> Vec<u8> {
        let mut m = MacInput::new("grant")
            .text(&self.grant_id)
            .field(self.key_id.as_bytes())
            .opt_text(self.name.as_deref())
            .text(&self.grantee_principal)
            .opt_text(self.retiring_principal.as_deref())
            .text(&self.issuing_account)
            .int(self.operations.len() as i64);
        for op in &self.operations {
            m = m.text(op);
        }
        m.opt_text(self.constraints.as_deref())
            .int(self.created_at)
            .0
    }
    mac_member!();
    fn describe(&self) -> String {
        format!("grant {} of key {}", self.grant_id, self.key_id)
    }
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Insert a new key in state `Creating` with its first (pending) version and tags, atomically.
    async fn insert_key(
        &self,
        key: &KeyRecord,
        version: &VersionRecord,
        tags: &[TagRecord],
    ) -> Result<()>;
    async fn get_key(&self, key_id: Uuid) -> Result<Option<KeyRecord>>;
    /// Keys of one account and region ordered by key id, starting after `after`.
    async fn list_keys(
        &self,
        region: &str,
        account: &str,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<KeyRecord>>;
    /// Compare-and-swap on `key.revision`; stores and returns the new revision.
    async fn update_key(&self, key: &KeyRecord) -> Result<i64>;
    /// Remove a key whose creation never completed (no token object).
    async fn delete_unfinished_key(&self, key_id: Uuid) -> Result<()>;
    /// Keys in state `Creating` (start-up reconciliation).
    async fn unfinished_keys(&self) -> Result<Vec<KeyRecord>>;
    /// Imported keys that may hold a material removal (DeleteImportedKeyMaterial, expiry)
    /// a crash interrupted: state `PendingImport` with completed versions (some of which may
    /// be of materials still imported).
    async fn unfinished_material_removals(&self) -> Result<Vec<KeyRecord>>;

    /// Record a pending version (intent) before its token object is created.
    async fn insert_version(&self, version: &VersionRecord) -> Result<()>;
    /// Mark a version complete and, with `key` (CAS), make it current; the new revision.
    async fn activate_version(&self, key: &KeyRecord, version: i64) -> Result<i64>;
    async fn delete_pending_version(&self, key_id: Uuid, version: i64) -> Result<()>;
    async fn versions(&self, key_id: Uuid) -> Result<Vec<VersionRecord>>;
    async fn pending_versions(&self) -> Result<Vec<VersionRecord>>;
    /// Every token object id the store knows of.
    async fn all_token_object_ids(&self) -> Result<Vec<Vec<u8>>>;

    /// Insert an alias unless its key already has `max_per_key` aliases (`LimitExceeded`).
    async fn insert_alias(&self, alias: &AliasRecord, max_per_key: i64) -> Result<()>;
    async fn update_alias(&self, alias: &AliasRecord) -> Result<()>;
    async fn delete_alias(&self, region: &str, account: &str, name: &str) -> Result<bool>;
    async fn get_alias(
        &self,
        region: &str,
        account: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>>;
    async fn list_aliases(
        &self,
        region: &str,
        account: &str,
        key_id: Option<Uuid>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AliasRecord>>;
    async fn count_aliases_for_key(&self, key_id: Uuid) -> Result<i64>;

    /// Add or replace tags unless the key would hold more than `max_tags` (`LimitExceeded`).
    async fn put_tags(&self, key_id: Uuid, tags: &[TagRecord], max_tags: i64) -> Result<()>;
    async fn remove_tags(&self, key_id: Uuid, tag_keys: &[String]) -> Result<()>;
    async fn list_tags(&self, key_id: Uuid) -> Result<Vec<TagRecord>>;

    async fn insert_principal(&self, p: &PrincipalRecord) -> Result<()>;
    async fn get_principal(&self, arn: &str) -> Result<Option<PrincipalRecord>>;
    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>>;
    async fn insert_access_key(&self, k: &AccessKeyRecord) -> Result<()>;
    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>>;
    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool>;
    async fn put_identity_policy(&self, p: &IdentityPolicyRecord) -> Result<()>;
    async fn delete_identity_policy(&self, principal_arn: &str, name: &str) -> Result<bool>;
    async fn identity_policies(&self, principal_arn: &str) -> Result<Vec<IdentityPolicyRecord>>;

    /// Insert a grant unless its key already has `max_per_key` grants (`LimitExceeded`).
    async fn insert_grant(&self, g: &GrantRecord, max_per_key: i64) -> Result<()>;
    async fn get_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>>;
    /// Grants of a key, ordered by grant id, optionally for one grantee.
    async fn grants_for_key(&self, key_id: Uuid, grantee: Option<&str>)
        -> Result<Vec<GrantRecord>>;
    /// Up to `limit` grants a principal may retire, ordered by grant id, after `after`.
    async fn grants_retirable_by(
        &self,
        retiring_principal: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<GrantRecord>>;
    /// Up to `limit` grants of a key (optionally of one grantee), ordered by id, after `after`.
    async fn grants_page(
        &self,
        key_id: Uuid,
        grantee: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<GrantRecord>>;
    /// Grants of a key with this name (CreateGrant idempotency).
    async fn grants_named(&self, key_id: Uuid, name: &str) -> Result<Vec<GrantRecord>>;
    async fn delete_grant(&self, grant_id: &str) -> Result<bool>;
    async fn count_grants_for_key(&self, key_id: Uuid) -> Result<i64>;

    /// Keys pending deletion whose deletion date has come.
    async fn due_deletions(&self, now: Millis) -> Result<Vec<KeyRecord>>;
    /// Enabled keys with automatic rotation whose period has elapsed since `rotation_base`.
    async fn due_rotations(&self, now: Millis) -> Result<Vec<KeyRecord>>;
    /// Tombstoned keys that still have version rows or an import wrapping key (token objects
    /// not yet destroyed).
    async fn deleted_keys_with_material(&self) -> Result<Vec<Uuid>>;
    /// The point of no return of a deletion: compare-and-swap `PendingDeletion` → `Deleted`
    /// on the key's revision, removing its aliases, grants and tags, atomically.
    async fn tombstone_key(&self, key: &KeyRecord) -> Result<()>;
    /// Forget a version whose token object has been destroyed.
    async fn delete_version(&self, key_id: Uuid, version: i64) -> Result<()>;

    async fn insert_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()>;
    async fn update_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()>;
    /// Delete a key store that holds no (undeleted) keys; `InUse` if it still does.
    async fn delete_key_store(&self, id: &str) -> Result<bool>;
    async fn key_stores(&self) -> Result<Vec<CustomKeyStoreRecord>>;
    /// Keys (not yet deleted) whose material lives in a custom key store.
    async fn count_keys_in_store(&self, id: &str) -> Result<i64>;
    /// Insert a key that has no material yet (origin `EXTERNAL`, state `PendingImport`), with
    /// its (empty) import record and tags, atomically.
    async fn insert_external_key(&self, key: &KeyRecord, tags: &[TagRecord]) -> Result<()>;
    async fn get_import(&self, key_id: Uuid) -> Result<Option<ImportRecord>>;
    /// Store the import parameters of `rec` (wrapping key, algorithm, spec, nonce, expiry);
    /// the material columns are left alone.
    async fn set_import_parameters(&self, rec: &ImportRecord) -> Result<()>;
    /// Write a key material row (insert or replace) in one transaction with, if `activate`,
    /// the completion of its pending version (`NotFound` if there is none) and, if `key` is
    /// given, that key's compare-and-swap (the new revision). A material above the key's
    /// current version (pending rotation) while another one is pending: `Conflict`.
    async fn put_material(
        &self,
        material: &MaterialRecord,
        activate: bool,
        key: Option<&KeyRecord>,
    ) -> Result<Option<i64>>;
    /// Forget a key material entirely (one pending rotation that was deleted or expired).
    async fn delete_material(&self, key_id: Uuid, version: i64) -> Result<()>;
    /// On-demand rotation to imported material: `key` (its `current_version` = `version`) is
    /// compare-and-swapped and the material marked rotated at `at`, atomically; `NotFound` if
    /// the material is not imported.
    async fn rotate_to_material(&self, key: &KeyRecord, version: i64, at: Millis) -> Result<i64>;
    /// Keys holding imported material (in the token) that expired at or before `now`.
    async fn due_expirations(&self, now: Millis) -> Result<Vec<KeyRecord>>;

    /// The members of a multi-Region key's set that are not deleted (one still being created
    /// too), ordered by region.
    async fn multi_region_keys(&self, mrk: Uuid) -> Result<Vec<KeyRecord>>;
    /// Insert a multi-Region replica key (state `Creating`) with its pending versions, its
    /// tags and, for imported key material (origin `EXTERNAL`), its import record and
    /// `materials` (the set's materials, not imported yet: only they may be imported into the
    /// replica), atomically. A tombstone of an earlier replica with the same key id is
    /// replaced once its material is gone (`InUse` while versions remain); any other row with
    /// that id is `AlreadyExists`.
    async fn insert_replica(
        &self,
        key: &KeyRecord,
        versions: &[VersionRecord],
        tags: &[TagRecord],
        materials: &[MaterialRecord],
    ) -> Result<()>;
    /// Compare-and-swap several keys in one transaction (all or none); their new revisions,
    /// in order.
    async fn update_keys(&self, keys: &[KeyRecord]) -> Result<Vec<i64>>;
    /// Mark `versions` of every key in `keys` complete and compare-and-swap the keys, in one
    /// transaction; `NotFound` if a version row is missing.
    async fn activate_versions(&self, keys: &[KeyRecord], versions: &[i64]) -> Result<Vec<i64>>;
    /// Every key (any region and account) in `state`, ordered by key id.
    async fn keys_in_state(&self, state: KeyState) -> Result<Vec<KeyRecord>>;

    /// Record uses of keys; per key the newest (by `used_at`) is kept, whatever the order in
    /// which nodes write.
    async fn record_key_usage(&self, uses: &[KeyUsageRecord]) -> Result<()>;
    async fn key_last_usage(&self, key_id: Uuid) -> Result<Option<KeyUsageRecord>>;

    /// Take or renew the lease `name` for `holder` for `ttl_ms` by the database's clock. Some
    /// (fencing number) if `holder` holds it now; the number grows with every change of holder.
    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<i64>>;

    /// Invalidations published by every node's writes (None: this engine has no other
    /// writers to hear from).
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Invalidation>> {
        None
    }

    /// May a cache serve what it holds? False while this node may have missed other nodes'
    /// invalidations (its listener is reconnecting): caches then read through.
    fn cache_coherent(&self) -> bool {
        true
    }

    /// Is the store reachable?
    async fn ping(&self) -> Result<()>;
}
