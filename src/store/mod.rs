//! The metadata store: key metadata, key versions with their token object ids, aliases, tags
//! and policies. Never key material.
//!
//! `MetadataStore` is the interface; `sqlite::SqliteStore` is the embedded default. A
//! PostgreSQL implementation will share the same records (multi-node deployments share one
//! database and one HSM), which is why every mutation of a key is a compare-and-swap on its
//! `revision`.

pub mod cached;
pub mod sqlite;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{KeySpec, KeyState, KeyUsage, Origin, RotationType};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (alias exists, key id reused).
    #[error("already exists")]
    AlreadyExists,
    /// The record changed since it was read (revision mismatch) or is gone.
    #[error("concurrent modification")]
    Conflict,
    /// A stored value could not be parsed back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

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
}

impl KeyRecord {
    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.region, self.account, self.key_id
        )
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdentityPolicyRecord {
    pub principal_arn: String,
    pub name: String,
    pub document: String,
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

/// The import state of a key with origin `EXTERNAL` (one row per key).
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
    /// `KEY_MATERIAL_EXPIRES` / `KEY_MATERIAL_DOES_NOT_EXPIRE` of the imported material.
    pub expiration_model: Option<String>,
    pub valid_to: Option<Millis>,
    /// Key check value of the first material imported (computed in the token).
    pub check_value: Option<Vec<u8>>,
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
    /// Compare-and-swap on `key.revision`; stores `revision + 1`.
    async fn update_key(&self, key: &KeyRecord) -> Result<()>;
    /// Remove a key whose creation never completed (no token object).
    async fn delete_unfinished_key(&self, key_id: Uuid) -> Result<()>;
    /// Keys in state `Creating` (start-up reconciliation).
    async fn unfinished_keys(&self) -> Result<Vec<KeyRecord>>;

    /// Record a pending version (intent) before its token object is created.
    async fn insert_version(&self, version: &VersionRecord) -> Result<()>;
    /// Mark a version complete and, with `key` (CAS), make it current.
    async fn activate_version(&self, key: &KeyRecord, version: i64) -> Result<()>;
    async fn delete_pending_version(&self, key_id: Uuid, version: i64) -> Result<()>;
    async fn versions(&self, key_id: Uuid) -> Result<Vec<VersionRecord>>;
    async fn pending_versions(&self) -> Result<Vec<VersionRecord>>;
    /// Every token object id the store knows of.
    async fn all_token_object_ids(&self) -> Result<Vec<Vec<u8>>>;

    async fn insert_alias(&self, alias: &AliasRecord) -> Result<()>;
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

    async fn put_tags(&self, key_id: Uuid, tags: &[TagRecord]) -> Result<()>;
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

    async fn insert_grant(&self, g: &GrantRecord) -> Result<()>;
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
    /// Tombstoned keys that still have version rows (token objects not yet destroyed).
    async fn deleted_keys_with_material(&self) -> Result<Vec<Uuid>>;
    /// The point of no return of a deletion: compare-and-swap `PendingDeletion` → `Deleted`
    /// on the key's revision, removing its aliases, grants and tags, atomically.
    async fn tombstone_key(&self, key: &KeyRecord) -> Result<()>;
    /// Forget a version whose token object has been destroyed.
    async fn delete_version(&self, key_id: Uuid, version: i64) -> Result<()>;

    async fn insert_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()>;
    async fn update_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()>;
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
    /// Store the expiration of imported material and, if none is stored yet, its key check
    /// value (the first import's value is never replaced).
    async fn set_import_material(
        &self,
        key_id: Uuid,
        expiration_model: &str,
        valid_to: Option<Millis>,
        check_value: Option<&[u8]>,
    ) -> Result<()>;
    /// Keys holding imported material that expired at or before `now`.
    async fn due_expirations(&self, now: Millis) -> Result<Vec<KeyRecord>>;

    /// Is the store reachable?
    async fn ping(&self) -> Result<()>;
}
