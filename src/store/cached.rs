//! A read-through cache in front of any `MetadataStore` for the lookups every cryptographic
//! request makes: key records, aliases and import records. Everything else is forwarded.
//!
//! Row integrity (with a `RowSealer`, `with_sealer`): every key, grant, identity-policy and
//! access-key row written is sealed with its MAC and every such row read from the engine is
//! verified before it is used or cached — so a key row is verified once per cache fill. A row that fails is refused (`Corrupt`; listings and
//! the scheduler's queries leave it out), logged and counted (see `kms::sealed`).
//!
//! Coherence: every write that goes through this wrapper invalidates what it touches before it
//! returns (a failed compare-and-swap too, so the retry re-reads). A reader that raced with an
//! invalidation does not put its (possibly older) row into the cache: each cache carries a
//! generation that invalidations bump, and a row read under an older generation is returned
//! but not kept. Writers outside this process (other nodes sharing a database, or the admin
//! CLI) become visible after at most `ttl`; `ttl = 0` turns the cache off.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    AccessKeyRecord, AliasRecord, CustomKeyStoreRecord, GrantRecord, IdentityPolicyRecord,
    ImportRecord, KeyRecord, MaterialRecord, Millis, PrincipalRecord, Result, TagRecord,
    VersionRecord,
};
use super::{Invalidation, MetadataStore, RowSealer, Sealed, StoreError};

/// Entries kept per cache before it starts over (bounds memory; 10,000 keys fit).
const CAPACITY: usize = 50_000;

/// A TTL cache whose invalidations win over racing reads (see the module docs); also the
/// credential and identity-policy cache of `auth::Principals`.
pub(crate) struct Table<K, V> {
    ttl: Duration,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    generation: u64,
    entries: HashMap<K, (Instant, Option<V>)>,
}

impl<K: Eq + Hash + Clone, V: Clone> Table<K, V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Table {
            ttl,
            inner: Mutex::new(Inner {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removals): keep using it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh entry (`Some(row)`; the row itself may be `None` = known absent) or the
    /// generation to pass to `put` after reading the store.
    pub(crate) fn get<Q>(&self, key: &Q) -> std::result::Result<Option<V>, u64>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let g = self.lock();
        match g.entries.get(key) {
            Some((at, v)) if at.elapsed() < self.ttl => Ok(v.clone()),
            _ => Err(g.generation),
        }
    }

    pub(crate) fn put(&self, key: K, value: Option<V>, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if g.entries.len() >= CAPACITY {
            g.entries.clear();
        }
        g.entries.insert(key, (Instant::now(), value));
    }

    pub(crate) fn invalidate<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut g = self.lock();
        g.generation += 1;
        g.entries.remove(key);
    }

    pub(crate) fn clear(&self) {
        let mut g = self.lock();
        g.generation += 1;
        g.entries.clear();
    }
}

type AliasKey = (String, String, String);

struct Tables {
    keys: Table<Uuid, KeyRecord>,
    imports: Table<Uuid, ImportRecord>,
    aliases: Table<AliasKey, AliasRecord>,
}

impl Tables {
    fn apply(&self, change: &Invalidation) {
        match change {
            Invalidation::Key(k) => {
                self.keys.invalidate(k);
                self.imports.invalidate(k);
            }
            Invalidation::Alias {
                region,
                account,
                name,
            } => self
                .aliases
                .invalidate(&(region.clone(), account.clone(), name.clone())),
            Invalidation::AccessKey(_) | Invalidation::Principal(_) => {}
            Invalidation::Flush => {
                self.keys.clear();
                self.imports.clear();
                self.aliases.clear();
            }
        }
    }
}

/// `inner` with cached key, alias and import lookups.
pub struct CachedStore<S> {
    inner: S,
    t: Arc<Tables>,
    sealer: Option<Arc<dyn RowSealer>>,
}

impl<S: MetadataStore> CachedStore<S> {
    /// Wrap `inner`; if it announces other writers' changes, a task applies them (it ends
    /// with the cache). Must be called within a Tokio runtime if it does.
    pub fn new(inner: S, ttl: Duration) -> Self {
        let t = Arc::new(Tables {
            keys: Table::new(ttl),
            imports: Table::new(ttl),
            aliases: Table::new(ttl),
        });
        if let Some(rx) = inner.subscribe() {
            super::follow_invalidations(rx, Arc::downgrade(&t), Tables::apply);
        }
        CachedStore {
            inner,
            t,
            sealer: None,
        }
    }

    /// Seal the rows written and verify the rows read (`store::Sealed`) with `sealer`.
    pub fn with_sealer(mut self, sealer: Arc<dyn RowSealer>) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// `row` as it is to be stored: with its MAC when sealing.
    async fn sealed<T: Sealed>(&self, row: &T) -> Result<T> {
        let mut row = row.clone();
        if let Some(s) = &self.sealer {
            row.set_mac(s.mac(row.mac_input()).await?);
        }
        Ok(row)
    }

    /// `Ok(row)` unless sealing is on and its MAC does not verify.
    async fn verified<T: Sealed>(&self, row: T) -> Result<T> {
        use subtle::ConstantTimeEq;
        let Some(s) = &self.sealer else {
            return Ok(row);
        };
        // A row without a MAC fails without asking the token.
        if !row.mac().is_empty() {
            let expected = s.mac(row.mac_input()).await?;
            if bool::from(expected.ct_eq(row.mac())) {
                return Ok(row);
            }
        }
        crate::metrics::ROW_INTEGRITY_FAILURES.inc();
        let what = row.describe();
        tracing::error!(row = %what, "row fails its integrity check (changed outside kms-bridge?): refused");
        Err(StoreError::Corrupt(format!(
            "{what} fails its integrity check"
        )))
    }

    async fn verified_opt<T: Sealed>(&self, row: Option<T>) -> Result<Option<T>> {
        match row {
            Some(r) => Ok(Some(self.verified(r).await?)),
            None => Ok(None),
        }
    }

    /// The rows of a listing that verify (the others are logged and left out).
    async fn verified_all<T: Sealed>(&self, rows: Vec<T>) -> Result<Vec<T>> {
        if self.sealer.is_none() {
            return Ok(rows);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match self.verified(r).await {
                Ok(r) => out.push(r),
                Err(StoreError::Corrupt(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn read_key(&self, key_id: Uuid) -> Result<Option<KeyRecord>> {
        let row = self.inner.get_key(key_id).await?;
        self.verified_opt(row).await
    }

    fn forget_key(&self, key_id: &Uuid) {
        self.t.apply(&Invalidation::Key(*key_id));
    }

    fn forget_keys(&self, keys: &[KeyRecord]) {
        for k in keys {
            self.forget_key(&k.key_id);
        }
    }

    async fn sealed_keys(&self, keys: &[KeyRecord]) -> Result<Vec<KeyRecord>> {
        let mut sealed = Vec::with_capacity(keys.len());
        for k in keys {
            sealed.push(self.sealed(k).await?);
        }
        Ok(sealed)
    }

    /// May cached entries be served now?
    fn trusted(&self) -> bool {
        self.inner.cache_coherent()
    }
}

/// Run a write, invalidating before and after it: before, so that no reader keeps serving
/// the old row while the write is under way; after, so that a row read during the write is
/// not kept.
macro_rules! writing {
    ($forget:expr, $call:expr) => {{
        $forget;
        let r = $call.await;
        $forget;
        r
    }};
}

#[async_trait]
impl<S: MetadataStore> MetadataStore for CachedStore<S> {
    async fn insert_key(
        &self,
        key: &KeyRecord,
        version: &VersionRecord,
        tags: &[TagRecord],
    ) -> Result<()> {
        let key = self.sealed(key).await?;
        writing!(
            self.forget_key(&key.key_id),
            self.inner.insert_key(&key, version, tags)
        )
    }

    async fn get_key(&self, key_id: Uuid) -> Result<Option<KeyRecord>> {
        if !self.trusted() {
            return self.read_key(key_id).await;
        }
        match self.t.keys.get(&key_id) {
            Ok(v) => Ok(v),
            Err(generation) => {
                let v = self.read_key(key_id).await?;
                self.t.keys.put(key_id, v.clone(), generation);
                Ok(v)
            }
        }
    }

    async fn list_keys(
        &self,
        region: &str,
        account: &str,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<KeyRecord>> {
        let rows = self.inner.list_keys(region, account, after, limit).await?;
        self.verified_all(rows).await
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<i64> {
        let key = self.sealed(key).await?;
        writing!(self.forget_key(&key.key_id), self.inner.update_key(&key))
    }

    async fn delete_unfinished_key(&self, key_id: Uuid) -> Result<()> {
        // An unfinished AWS managed key may have its alias already.
        writing!(
            {
                self.forget_key(&key_id);
                self.t.aliases.clear();
            },
            self.inner.delete_unfinished_key(key_id)
        )
    }

    async fn unfinished_keys(&self) -> Result<Vec<KeyRecord>> {
        let rows = self.inner.unfinished_keys().await?;
        self.verified_all(rows).await
    }

    async fn unfinished_material_removals(&self) -> Result<Vec<KeyRecord>> {
        let rows = self.inner.unfinished_material_removals().await?;
        self.verified_all(rows).await
    }

    async fn insert_version(&self, version: &VersionRecord) -> Result<()> {
        self.inner.insert_version(version).await
    }

    async fn activate_version(&self, key: &KeyRecord, version: i64) -> Result<i64> {
        let key = self.sealed(key).await?;
        writing!(
            self.forget_key(&key.key_id),
            self.inner.activate_version(&key, version)
        )
    }

    async fn delete_pending_version(&self, key_id: Uuid, version: i64) -> Result<()> {
        self.inner.delete_pending_version(key_id, version).await
    }

    async fn versions(&self, key_id: Uuid) -> Result<Vec<VersionRecord>> {
        self.inner.versions(key_id).await
    }

    async fn pending_versions(&self) -> Result<Vec<VersionRecord>> {
        self.inner.pending_versions().await
    }

    async fn all_token_object_ids(&self) -> Result<Vec<Vec<u8>>> {
        self.inner.all_token_object_ids().await
    }

    async fn insert_alias(&self, alias: &AliasRecord, max_per_key: i64) -> Result<()> {
        writing!(
            self.t.aliases.clear(),
            self.inner.insert_alias(alias, max_per_key)
        )
    }

    async fn update_alias(&self, alias: &AliasRecord) -> Result<()> {
        writing!(self.t.aliases.clear(), self.inner.update_alias(alias))
    }

    async fn delete_alias(&self, region: &str, account: &str, name: &str) -> Result<bool> {
        writing!(
            self.t.aliases.clear(),
            self.inner.delete_alias(region, account, name)
        )
    }

    async fn get_alias(
        &self,
        region: &str,
        account: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>> {
        if !self.trusted() {
            return self.inner.get_alias(region, account, name).await;
        }
        let k = (region.to_owned(), account.to_owned(), name.to_owned());
        match self.t.aliases.get(&k) {
            Ok(v) => Ok(v),
            Err(generation) => {
                let v = self.inner.get_alias(region, account, name).await?;
                self.t.aliases.put(k, v.clone(), generation);
                Ok(v)
            }
        }
    }

    async fn list_aliases(
        &self,
        region: &str,
        account: &str,
        key_id: Option<Uuid>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AliasRecord>> {
        self.inner
            .list_aliases(region, account, key_id, after, limit)
            .await
    }

    async fn count_aliases_for_key(&self, key_id: Uuid) -> Result<i64> {
        self.inner.count_aliases_for_key(key_id).await
    }

    async fn put_tags(&self, key_id: Uuid, tags: &[TagRecord], max_tags: i64) -> Result<()> {
        self.inner.put_tags(key_id, tags, max_tags).await
    }

    async fn remove_tags(&self, key_id: Uuid, tag_keys: &[String]) -> Result<()> {
        self.inner.remove_tags(key_id, tag_keys).await
    }

    async fn list_tags(&self, key_id: Uuid) -> Result<Vec<TagRecord>> {
        self.inner.list_tags(key_id).await
    }

    async fn insert_principal(&self, p: &PrincipalRecord) -> Result<()> {
        self.inner.insert_principal(p).await
    }

    async fn get_principal(&self, arn: &str) -> Result<Option<PrincipalRecord>> {
        self.inner.get_principal(arn).await
    }

    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>> {
        self.inner.list_principals().await
    }

    async fn insert_access_key(&self, k: &AccessKeyRecord) -> Result<()> {
        self.inner.insert_access_key(&self.sealed(k).await?).await
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        let row = self.inner.get_access_key(access_key_id).await?;
        self.verified_opt(row).await
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
        self.inner.delete_access_key(access_key_id).await
    }

    async fn put_identity_policy(&self, p: &IdentityPolicyRecord) -> Result<()> {
        self.inner.put_identity_policy(&self.sealed(p).await?).await
    }

    async fn delete_identity_policy(&self, principal_arn: &str, name: &str) -> Result<bool> {
        self.inner.delete_identity_policy(principal_arn, name).await
    }

    async fn identity_policies(&self, principal_arn: &str) -> Result<Vec<IdentityPolicyRecord>> {
        let rows = self.inner.identity_policies(principal_arn).await?;
        self.verified_all(rows).await
    }

    async fn insert_grant(&self, g: &GrantRecord, max_per_key: i64) -> Result<()> {
        self.inner
            .insert_grant(&self.sealed(g).await?, max_per_key)
            .await
    }

    async fn get_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>> {
        let row = self.inner.get_grant(grant_id).await?;
        self.verified_opt(row).await
    }

    async fn grants_for_key(
        &self,
        key_id: Uuid,
        grantee: Option<&str>,
    ) -> Result<Vec<GrantRecord>> {
        let rows = self.inner.grants_for_key(key_id, grantee).await?;
        self.verified_all(rows).await
    }

    async fn grants_retirable_by(
        &self,
        retiring_principal: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<GrantRecord>> {
        let rows = self
            .inner
            .grants_retirable_by(retiring_principal, after, limit)
            .await?;
        self.verified_all(rows).await
    }

    async fn grants_page(
        &self,
        key_id: Uuid,
        grantee: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<GrantRecord>> {
        let rows = self
            .inner
            .grants_page(key_id, grantee, after, limit)
            .await?;
        self.verified_all(rows).await
    }

    async fn grants_named(&self, key_id: Uuid, name: &str) -> Result<Vec<GrantRecord>> {
        let rows = self.inner.grants_named(key_id, name).await?;
        self.verified_all(rows).await
    }

    async fn delete_grant(&self, grant_id: &str) -> Result<bool> {
        self.inner.delete_grant(grant_id).await
    }

    async fn count_grants_for_key(&self, key_id: Uuid) -> Result<i64> {
        self.inner.count_grants_for_key(key_id).await
    }

    async fn due_deletions(&self, now: Millis) -> Result<Vec<KeyRecord>> {
        let rows = self.inner.due_deletions(now).await?;
        self.verified_all(rows).await
    }

    async fn due_rotations(&self, now: Millis) -> Result<Vec<KeyRecord>> {
        let rows = self.inner.due_rotations(now).await?;
        self.verified_all(rows).await
    }

    async fn deleted_keys_with_material(&self) -> Result<Vec<Uuid>> {
        self.inner.deleted_keys_with_material().await
    }

    async fn tombstone_key(&self, key: &KeyRecord) -> Result<()> {
        // Sealed as it will be stored: in state `Deleted` (the revision is checked as given).
        let mut deleted = key.clone();
        deleted.state = crate::model::KeyState::Deleted;
        let key = KeyRecord {
            mac: self.sealed(&deleted).await?.mac,
            ..key.clone()
        };
        // The tombstone removes the key's aliases too.
        writing!(
            {
                self.forget_key(&key.key_id);
                self.t.aliases.clear();
            },
            self.inner.tombstone_key(&key)
        )
    }

    async fn delete_version(&self, key_id: Uuid, version: i64) -> Result<()> {
        writing!(
            self.forget_key(&key_id),
            self.inner.delete_version(key_id, version)
        )
    }

    async fn insert_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()> {
        self.inner.insert_key_store(s).await
    }

    async fn update_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()> {
        self.inner.update_key_store(s).await
    }

    async fn delete_key_store(&self, id: &str) -> Result<bool> {
        self.inner.delete_key_store(id).await
    }

    async fn key_stores(&self) -> Result<Vec<CustomKeyStoreRecord>> {
        self.inner.key_stores().await
    }

    async fn count_keys_in_store(&self, id: &str) -> Result<i64> {
        self.inner.count_keys_in_store(id).await
    }

    async fn insert_external_key(&self, key: &KeyRecord, tags: &[TagRecord]) -> Result<()> {
        let key = self.sealed(key).await?;
        writing!(
            self.forget_key(&key.key_id),
            self.inner.insert_external_key(&key, tags)
        )
    }

    async fn multi_region_keys(&self, mrk: Uuid) -> Result<Vec<KeyRecord>> {
        let rows = self.inner.multi_region_keys(mrk).await?;
        self.verified_all(rows).await
    }

    async fn insert_replica(
        &self,
        key: &KeyRecord,
        versions: &[VersionRecord],
        tags: &[TagRecord],
        materials: &[MaterialRecord],
    ) -> Result<()> {
        let key = self.sealed(key).await?;
        writing!(
            self.forget_key(&key.key_id),
            self.inner.insert_replica(&key, versions, tags, materials)
        )
    }

    async fn update_keys(&self, keys: &[KeyRecord]) -> Result<Vec<i64>> {
        let sealed = self.sealed_keys(keys).await?;
        writing!(self.forget_keys(&sealed), self.inner.update_keys(&sealed))
    }

    async fn activate_versions(&self, keys: &[KeyRecord], versions: &[i64]) -> Result<Vec<i64>> {
        let sealed = self.sealed_keys(keys).await?;
        writing!(
            self.forget_keys(&sealed),
            self.inner.activate_versions(&sealed, versions)
        )
    }

    async fn keys_in_state(&self, state: crate::model::KeyState) -> Result<Vec<KeyRecord>> {
        let rows = self.inner.keys_in_state(state).await?;
        self.verified_all(rows).await
    }

    async fn get_import(&self, key_id: Uuid) -> Result<Option<ImportRecord>> {
        if !self.trusted() {
            return self.inner.get_import(key_id).await;
        }
        match self.t.imports.get(&key_id) {
            Ok(v) => Ok(v),
            Err(generation) => {
                let v = self.inner.get_import(key_id).await?;
                self.t.imports.put(key_id, v.clone(), generation);
                Ok(v)
            }
        }
    }

    async fn set_import_parameters(&self, rec: &ImportRecord) -> Result<()> {
        writing!(
            self.forget_key(&rec.key_id),
            self.inner.set_import_parameters(rec)
        )
    }

    async fn put_material(
        &self,
        material: &MaterialRecord,
        activate: bool,
        key: Option<&KeyRecord>,
    ) -> Result<Option<i64>> {
        let key = match key {
            Some(k) => Some(self.sealed(k).await?),
            None => None,
        };
        writing!(
            self.forget_key(&material.key_id),
            self.inner.put_material(material, activate, key.as_ref())
        )
    }

    async fn delete_material(&self, key_id: Uuid, version: i64) -> Result<()> {
        writing!(
            self.forget_key(&key_id),
            self.inner.delete_material(key_id, version)
        )
    }

    async fn rotate_to_material(&self, key: &KeyRecord, version: i64, at: Millis) -> Result<i64> {
        let key = self.sealed(key).await?;
        writing!(
            self.forget_key(&key.key_id),
            self.inner.rotate_to_material(&key, version, at)
        )
    }

    async fn due_expirations(&self, now: Millis) -> Result<Vec<KeyRecord>> {
        let rows = self.inner.due_expirations(now).await?;
        self.verified_all(rows).await
    }

    async fn record_key_usage(&self, uses: &[super::KeyUsageRecord]) -> Result<()> {
        self.inner.record_key_usage(uses).await
    }

    async fn key_last_usage(&self, key_id: Uuid) -> Result<Option<super::KeyUsageRecord>> {
        self.inner.key_last_usage(key_id).await
    }

    async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<i64>> {
        self.inner.try_lease(name, holder, ttl_ms).await
    }

    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Invalidation>> {
        self.inner.subscribe()
    }

    fn cache_coherent(&self) -> bool {
        self.inner.cache_coherent()
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeySpec, KeyState, KeyUsage, Origin};
    use crate::store::sqlite::SqliteStore;
    use crate::store::StoreError;

    fn key(id: Uuid) -> (KeyRecord, VersionRecord) {
        let k = KeyRecord {
            key_id: id,
            region: "us-east-1".into(),
            account: "111122223333".into(),
            description: "first".into(),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            state: KeyState::Enabled,
            created_at: 1,
            deletion_date: None,
            pending_window_days: None,
            rotation_enabled: false,
            rotation_period_days: None,
            rotation_base: None,
            current_version: 1,
            policy: "{}".into(),
            revision: 0,
            custom_key_store_id: None,
            key_manager: crate::model::KeyManager::Customer,
            mac: Vec::new(),
            multi_region: None,
        };
        let v = VersionRecord {
            key_id: id,
            version: 1,
            token_object_id: id.as_bytes().to_vec(),
            material_id: id.to_string(),
            created_at: 1,
            rotation_type: None,
            pending: false,
        };
        (k, v)
    }

    struct TempDb(std::path::PathBuf);
    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn stores(ttl: Duration) -> (TempDb, CachedStore<SqliteStore>, SqliteStore) {
        let dir = std::env::temp_dir().join(format!("kms-bridge-cache-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db");
        let cached = CachedStore::new(SqliteStore::open(&path).await.unwrap(), ttl);
        // A second handle on the same database: another node, or the admin CLI.
        let other = SqliteStore::open(&path).await.unwrap();
        (TempDb(dir), cached, other)
    }

    #[tokio::test]
    async fn writes_through_the_cache_are_seen_at_once() {
        let (_dir, store, _) = stores(Duration::from_secs(3600)).await;
        let (mut k, v) = key(Uuid::new_v4());
        assert!(store.get_key(k.key_id).await.unwrap().is_none());
        store.insert_key(&k, &v, &[]).await.unwrap();
        assert_eq!(store.get_key(k.key_id).await.unwrap().unwrap().revision, 0);
        k.description = "second".into();
        store.update_key(&k).await.unwrap();
        let read = store.get_key(k.key_id).await.unwrap().unwrap();
        assert_eq!((read.description.as_str(), read.revision), ("second", 1));

        let alias = AliasRecord {
            region: k.region.clone(),
            account: k.account.clone(),
            name: "alias/a".into(),
            key_id: k.key_id,
            created_at: 1,
            updated_at: 1,
        };
        let get = || store.get_alias(&alias.region, &alias.account, &alias.name);
        assert!(get().await.unwrap().is_none());
        store.insert_alias(&alias, 50).await.unwrap();
        assert_eq!(get().await.unwrap().unwrap().key_id, k.key_id);
        store
            .delete_alias(&alias.region, &alias.account, &alias.name)
            .await
            .unwrap();
        assert!(get().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn writes_elsewhere_are_seen_within_the_ttl_and_conflicts_reread() {
        let ttl = Duration::from_millis(300);
        let (_dir, store, other) = stores(ttl).await;
        let (mut k, v) = key(Uuid::new_v4());
        store.insert_key(&k, &v, &[]).await.unwrap();
        assert_eq!(store.get_key(k.key_id).await.unwrap().unwrap().revision, 0);

        // Another writer disables the key: served from memory until the TTL runs out…
        let mut theirs = k.clone();
        theirs.state = KeyState::Disabled;
        other.update_key(&theirs).await.unwrap();
        let cached = store.get_key(k.key_id).await.unwrap().unwrap();
        assert_eq!(cached.state, KeyState::Enabled);
        // …and a compare-and-swap against the stale copy fails and drops it.
        k.description = "mine".into();
        assert!(matches!(
            store.update_key(&k).await,
            Err(StoreError::Conflict)
        ));
        let fresh = store.get_key(k.key_id).await.unwrap().unwrap();
        assert_eq!((fresh.state, fresh.revision), (KeyState::Disabled, 1));

        // A change elsewhere with no local write is visible after the TTL.
        let mut theirs = fresh.clone();
        theirs.state = KeyState::Enabled;
        other.update_key(&theirs).await.unwrap();
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        let later = store.get_key(k.key_id).await.unwrap().unwrap();
        assert_eq!((later.state, later.revision), (KeyState::Enabled, 2));
    }

    #[tokio::test]
    async fn zero_ttl_caches_nothing() {
        let (_dir, store, other) = stores(Duration::ZERO).await;
        let (k, v) = key(Uuid::new_v4());
        store.insert_key(&k, &v, &[]).await.unwrap();
        assert!(store.get_key(k.key_id).await.unwrap().is_some());
        let mut theirs = k.clone();
        theirs.state = KeyState::Disabled;
        other.update_key(&theirs).await.unwrap();
        let read = store.get_key(k.key_id).await.unwrap().unwrap();
        assert_eq!(read.state, KeyState::Disabled);
    }
}
