//! The SQL both engines share. Every statement is written once, with `$N` placeholders (which
//! SQLite accepts too), over a schema whose column types mean the same on both (TEXT, 64-bit
//! integers, byte strings; booleans as 0/1 integers). `sql_store!` expands the row readers and
//! the whole `MetadataStore` implementation for one engine; the engine module supplies
//! `NOW_MS` (the database clock in milliseconds, used for leases) and the inherent methods
//! `publish` (announce invalidations inside a transaction) and `settle` (after commit).

use super::StoreError;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    return StoreError::AlreadyExists;
                }
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                // PostgreSQL: connection exceptions (08), insufficient resources (53),
                // operator intervention incl. shutdown and statement timeout's 57014 (57).
                // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), also extended codes.
                let transient = code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57")
                    || matches!(code.parse::<i64>().map(|c| c & 0xff), Ok(5) | Ok(6));
                if transient {
                    StoreError::Unavailable(e.to_string())
                } else {
                    StoreError::Db(e.to_string())
                }
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Db(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => StoreError::Db(other.to_string()),
        }
    }
}

pub(super) fn parse<T>(v: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> super::Result<T> {
    f(v).ok_or_else(|| StoreError::Corrupt(format!("{what} {v:?}")))
}

pub(super) const KEY_COLUMNS: &str = "key_id, region, account, description, key_spec, \
     key_usage, origin, state, created_at, deletion_date, pending_window_days, \
     rotation_enabled, rotation_period_days, rotation_base, current_version, policy, revision, \
     custom_key_store_id, key_manager, mac, mrk_id, primary_region";

/// `KEY_COLUMNS` qualified with the table alias `k.`.
pub(super) fn key_columns_of_k() -> String {
    KEY_COLUMNS
        .split(',')
        .map(|c| format!("k.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

macro_rules! sql_store {
    ($store:ty, $db:ty, $row:ty) => {
        use sqlx::Row as _;
        use $crate::model::{KeyManager, KeySpec, KeyState, KeyUsage, Origin, RotationType};
        use $crate::store::sql::{key_columns_of_k, parse, KEY_COLUMNS};
        use $crate::store::{
            AccessKeyRecord, AliasRecord, CustomKeyStoreRecord, GrantRecord,
            IdentityPolicyRecord, ImportRecord, Invalidation, KeyRecord, KeyUsageRecord,
            MaterialRecord, MetadataStore, Millis, MultiRegion, PrincipalKind, PrincipalRecord, Result, StoreError, TagRecord,
            VersionRecord,
        };

        type Tx<'c> = sqlx::Transaction<'c, $db>;

        fn uuid_col(row: &$row, col: &str) -> Result<uuid::Uuid> {
            let s: String = row.try_get(col)?;
            uuid::Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt(format!("{col} {s:?}")))
        }

        fn key_from_row(row: &$row) -> Result<KeyRecord> {
            Ok(KeyRecord {
                key_id: uuid_col(row, "key_id")?,
                region: row.try_get("region")?,
                account: row.try_get("account")?,
                description: row.try_get("description")?,
                key_spec: parse(row.try_get("key_spec")?, "key_spec", KeySpec::parse)?,
                key_usage: parse(row.try_get("key_usage")?, "key_usage", KeyUsage::parse)?,
                origin: parse(row.try_get("origin")?, "origin", Origin::parse)?,
                state: parse(row.try_get("state")?, "state", KeyState::parse)?,
                created_at: row.try_get("created_at")?,
                deletion_date: row.try_get("deletion_date")?,
                pending_window_days: row.try_get("pending_window_days")?,
                rotation_enabled: row.try_get::<i64, _>("rotation_enabled")? != 0,
                rotation_period_days: row.try_get("rotation_period_days")?,
                rotation_base: row.try_get("rotation_base")?,
                current_version: row.try_get("current_version")?,
                policy: row.try_get("policy")?,
                revision: row.try_get("revision")?,
                custom_key_store_id: row.try_get("custom_key_store_id")?,
                key_manager: parse(row.try_get("key_manager")?, "key_manager", KeyManager::parse)?,
                mac: row.try_get("mac")?,
                multi_region: match (
                    row.try_get::<Option<String>, _>("mrk_id")?,
                    row.try_get::<Option<String>, _>("primary_region")?,
                ) {
                    (Some(m), Some(primary_region)) => Some(MultiRegion {
                        mrk: uuid::Uuid::parse_str(&m)
                            .map_err(|_| StoreError::Corrupt(format!("mrk_id {m:?}")))?,
                        primary_region,
                    }),
                    (None, None) => None,
                    _ => return Err(StoreError::Corrupt("half a multi-Region key".into())),
                },
            })
        }

        fn version_from_row(row: &$row) -> Result<VersionRecord> {
            let rt: Option<String> = row.try_get("rotation_type")?;
            Ok(VersionRecord {
                key_id: uuid_col(row, "key_id")?,
                version: row.try_get("version")?,
                token_object_id: row.try_get("token_object_id")?,
                material_id: row.try_get("material_id")?,
                created_at: row.try_get("created_at")?,
                rotation_type: match rt {
                    Some(s) => Some(parse(&s, "rotation_type", RotationType::parse)?),
                    None => None,
                },
                pending: row.try_get::<i64, _>("pending")? != 0,
            })
        }

        fn alias_from_row(row: &$row) -> Result<AliasRecord> {
            Ok(AliasRecord {
                region: row.try_get("region")?,
                account: row.try_get("account")?,
                name: row.try_get("name")?,
                key_id: uuid_col(row, "key_id")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn principal_from_row(row: &$row) -> Result<PrincipalRecord> {
            Ok(PrincipalRecord {
                arn: row.try_get("arn")?,
                account: row.try_get("account")?,
                kind: parse(row.try_get("kind")?, "kind", PrincipalKind::parse)?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn grant_from_row(row: &$row) -> Result<GrantRecord> {
            let ops: String = row.try_get("operations")?;
            Ok(GrantRecord {
                grant_id: row.try_get("grant_id")?,
                key_id: uuid_col(row, "key_id")?,
                name: row.try_get("name")?,
                grantee_principal: row.try_get("grantee_principal")?,
                retiring_principal: row.try_get("retiring_principal")?,
                issuing_account: row.try_get("issuing_account")?,
                operations: serde_json::from_str(&ops)
                    .map_err(|_| StoreError::Corrupt(format!("grant operations {ops:?}")))?,
                constraints: row.try_get("constraints")?,
                created_at: row.try_get("created_at")?,
                mac: row.try_get("mac")?,
            })
        }

        fn import_from_row(row: &$row) -> Result<ImportRecord> {
            Ok(ImportRecord {
                key_id: uuid_col(row, "key_id")?,
                wrapping_object_id: row.try_get("wrapping_object_id")?,
                wrapping_algorithm: row.try_get("wrapping_algorithm")?,
                wrapping_key_spec: row.try_get("wrapping_key_spec")?,
                nonce: row.try_get("nonce")?,
                parameters_valid_to: row.try_get("parameters_valid_to")?,
                materials: Vec::new(),
            })
        }

        fn material_from_row(row: &$row) -> Result<MaterialRecord> {
            let rt: Option<String> = row.try_get("rotation_type")?;
            Ok(MaterialRecord {
                key_id: uuid_col(row, "key_id")?,
                version: row.try_get("version")?,
                check_value: row.try_get("check_value")?,
                description: row.try_get("description")?,
                expiration_model: row.try_get("expiration_model")?,
                valid_to: row.try_get("valid_to")?,
                imported: row.try_get::<i64, _>("imported")? != 0,
                created_at: row.try_get("created_at")?,
                rotated_at: row.try_get("rotated_at")?,
                rotation_type: match rt {
                    Some(s) => Some(parse(&s, "rotation_type", RotationType::parse)?),
                    None => None,
                },
            })
        }

        fn store_row(r: &$row) -> Result<CustomKeyStoreRecord> {
            Ok(CustomKeyStoreRecord {
                id: r.try_get("id")?,
                region: r.try_get("region")?,
                account: r.try_get("account")?,
                name: r.try_get("name")?,
                cluster_id: r.try_get("cluster_id")?,
                trust_anchor: r.try_get("trust_anchor")?,
                sealed_password: r.try_get("sealed_password")?,
                connection_state: r.try_get("connection_state")?,
                connection_error: r.try_get("connection_error")?,
                created_at: r.try_get("created_at")?,
            })
        }

        /// Lock a key's row for the rest of the transaction (a row lock on PostgreSQL, the
        /// database's write lock on SQLite); `NotFound` if there is no such key.
        async fn lock_key(tx: &mut Tx<'_>, key_id: uuid::Uuid) -> Result<()> {
            let done = sqlx::query("UPDATE keys SET revision = revision WHERE key_id = $1")
                .bind(key_id.to_string())
                .execute(&mut **tx)
                .await?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            }
        }

        /// Lock a custom key store's row; false if there is none.
        async fn lock_key_store(tx: &mut Tx<'_>, id: &str) -> Result<bool> {
            let done = sqlx::query("UPDATE custom_key_stores SET id = id WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn count(tx: &mut Tx<'_>, sql: &str, key_id: uuid::Uuid) -> Result<i64> {
            let row = sqlx::query(sql)
                .bind(key_id.to_string())
                .fetch_one(&mut **tx)
                .await?;
            Ok(row.try_get::<i64, _>(0)?)
        }

        async fn insert_version_in(tx: &mut Tx<'_>, v: &VersionRecord) -> Result<()> {
            sqlx::query(
                "INSERT INTO key_versions (key_id, version, token_object_id, material_id, \
                 created_at, rotation_type, pending) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(v.key_id.to_string())
            .bind(v.version)
            .bind(&v.token_object_id)
            .bind(&v.material_id)
            .bind(v.created_at)
            .bind(v.rotation_type.map(|r| r.as_str()))
            .bind(v.pending as i64)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn insert_key_in(tx: &mut Tx<'_>, k: &KeyRecord, tags: &[TagRecord]) -> Result<()> {
            if let Some(store) = &k.custom_key_store_id {
                // Serializes with the store's deletion, which counts its keys.
                if !lock_key_store(tx, store).await? {
                    return Err(StoreError::NotFound);
                }
            }
            sqlx::query(&format!(
                "INSERT INTO keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
            ))
            .bind(k.key_id.to_string())
            .bind(&k.region)
            .bind(&k.account)
            .bind(&k.description)
            .bind(k.key_spec.as_str())
            .bind(k.key_usage.as_str())
            .bind(k.origin.as_str())
            .bind(k.state.as_str())
            .bind(k.created_at)
            .bind(k.deletion_date)
            .bind(k.pending_window_days)
            .bind(k.rotation_enabled as i64)
            .bind(k.rotation_period_days)
            .bind(k.rotation_base)
            .bind(k.current_version)
            .bind(&k.policy)
            .bind(k.revision)
            .bind(&k.custom_key_store_id)
            .bind(k.key_manager.as_str())
            .bind(&k.mac)
            .bind(k.multi_region.as_ref().map(|m| m.mrk.to_string()))
            .bind(k.multi_region.as_ref().map(|m| m.primary_region.clone()))
            .execute(&mut **tx)
            .await?;
            for t in tags {
                sqlx::query("INSERT INTO tags (key_id, tag_key, tag_value) VALUES ($1, $2, $3)")
                    .bind(k.key_id.to_string())
                    .bind(&t.key)
                    .bind(&t.value)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// The compare-and-swap of a key row: the new revision, `Conflict` if the row changed
        /// since `k` was read, `NotFound` if it is gone.
        async fn update_key_in(tx: &mut Tx<'_>, k: &KeyRecord) -> Result<i64> {
            let row = sqlx::query(
                "UPDATE keys SET description = $1, state = $2, deletion_date = $3, \
                 pending_window_days = $4, rotation_enabled = $5, rotation_period_days = $6, \
                 rotation_base = $7, current_version = $8, policy = $9, mac = $10, \
                 primary_region = $13, revision = revision + 1 \
                 WHERE key_id = $11 AND revision = $12 RETURNING revision",
            )
            .bind(&k.description)
            .bind(k.state.as_str())
            .bind(k.deletion_date)
            .bind(k.pending_window_days)
            .bind(k.rotation_enabled as i64)
            .bind(k.rotation_period_days)
            .bind(k.rotation_base)
            .bind(k.current_version)
            .bind(&k.policy)
            .bind(&k.mac)
            .bind(k.key_id.to_string())
            .bind(k.revision)
            .bind(k.multi_region.as_ref().map(|m| m.primary_region.clone()))
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                Some(r) => Ok(r.try_get::<i64, _>("revision")?),
                None => Err(missing_or_changed(tx, k.key_id).await),
            }
        }

        /// Why a conditional write on a key matched no row.
        async fn missing_or_changed(tx: &mut Tx<'_>, key_id: uuid::Uuid) -> StoreError {
            let found = sqlx::query("SELECT 1 FROM keys WHERE key_id = $1")
                .bind(key_id.to_string())
                .fetch_optional(&mut **tx)
                .await;
            match found {
                Ok(Some(_)) => StoreError::Conflict,
                Ok(None) => StoreError::NotFound,
                Err(e) => e.into(),
            }
        }

        fn alias_inv(region: &str, account: &str, name: &str) -> Invalidation {
            Invalidation::Alias {
                region: region.to_string(),
                account: account.to_string(),
                name: name.to_string(),
            }
        }

        impl $store {
            /// Delete one versioned row of a key (`sql` binds key id and version), announcing
            /// the key.
            async fn delete_of_key(&self, sql: &str, key_id: uuid::Uuid, version: i64) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(sql)
                    .bind(key_id.to_string())
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                self.commit_announcing(tx, &[Invalidation::Key(key_id)]).await?;
                Ok(())
            }

            /// Commit `tx` with `changes` announced in it, then let them settle.
            async fn commit_announcing(
                &self,
                mut tx: Tx<'_>,
                changes: &[Invalidation],
            ) -> Result<()> {
                let echo = self.publish(&mut tx, changes).await?;
                tx.commit().await?;
                self.settle(echo).await;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl MetadataStore for $store {
            async fn insert_key(
                &self,
                k: &KeyRecord,
                version: &VersionRecord,
                tags: &[TagRecord],
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                insert_key_in(&mut tx, k, tags).await?;
                insert_version_in(&mut tx, version).await?;
                self.commit_announcing(tx, &[Invalidation::Key(k.key_id)]).await?;
                Ok(())
            }

            async fn get_key(&self, key_id: uuid::Uuid) -> Result<Option<KeyRecord>> {
                let row =
                    sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id = $1"))
                        .bind(key_id.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                row.as_ref().map(key_from_row).transpose()
            }

            async fn list_keys(
                &self,
                region: &str,
                account: &str,
                after: Option<uuid::Uuid>,
                limit: i64,
            ) -> Result<Vec<KeyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM keys WHERE region = $1 AND account = $2 \
                     AND key_id > $3 AND state NOT IN ('Creating', 'Deleted') \
                     ORDER BY key_id LIMIT $4"
                ))
                .bind(region)
                .bind(account)
                .bind(after.map(|u| u.to_string()).unwrap_or_default())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn update_key(&self, key: &KeyRecord) -> Result<i64> {
                let mut tx = self.pool.begin().await?;
                let revision = update_key_in(&mut tx, key).await?;
                self.commit_announcing(tx, &[Invalidation::Key(key.key_id)]).await?;
                Ok(revision)
            }

            async fn delete_unfinished_key(&self, key_id: uuid::Uuid) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let id = key_id.to_string();
                // An AWS managed key gets its alias before it is complete.
                let aliases = sqlx::query(
                    "DELETE FROM aliases WHERE key_id = $1 RETURNING region, account, name",
                )
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
                let mut invs = vec![Invalidation::Key(key_id)];
                for r in &aliases {
                    invs.push(alias_inv(&r.try_get::<String, _>(0)?, &r.try_get::<String, _>(1)?, &r.try_get::<String, _>(2)?));
                }
                for sql in [
                    "DELETE FROM tags WHERE key_id = $1",
                    "DELETE FROM key_versions WHERE key_id = $1",
                    "DELETE FROM key_materials WHERE key_id = $1",
                    "DELETE FROM imports WHERE key_id = $1",
                    "DELETE FROM keys WHERE key_id = $1 AND state = 'Creating'",
                ] {
                    sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
                }
                self.commit_announcing(tx, &invs).await?;
                Ok(())
            }

            async fn unfinished_keys(&self) -> Result<Vec<KeyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM keys WHERE state = 'Creating' ORDER BY key_id"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn unfinished_material_removals(&self) -> Result<Vec<KeyRecord>> {
                let cols = key_columns_of_k();
                let rows = sqlx::query(&format!(
                    "SELECT {cols} FROM keys k WHERE k.origin = 'EXTERNAL' \
                     AND k.state = 'PendingImport' \
                     AND EXISTS (SELECT 1 FROM key_versions v \
                                 WHERE v.key_id = k.key_id AND v.pending = 0) \
                     ORDER BY k.key_id"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn insert_version(&self, version: &VersionRecord) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                insert_version_in(&mut tx, version).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn activate_version(&self, key: &KeyRecord, version: i64) -> Result<i64> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE key_versions SET pending = 0 WHERE key_id = $1 AND version = $2",
                )
                .bind(key.key_id.to_string())
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                let revision = update_key_in(&mut tx, key).await?;
                self.commit_announcing(tx, &[Invalidation::Key(key.key_id)]).await?;
                Ok(revision)
            }

            async fn delete_pending_version(&self, key_id: uuid::Uuid, version: i64) -> Result<()> {
                sqlx::query(
                    "DELETE FROM key_versions WHERE key_id = $1 AND version = $2 AND pending = 1",
                )
                .bind(key_id.to_string())
                .bind(version)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn versions(&self, key_id: uuid::Uuid) -> Result<Vec<VersionRecord>> {
                let rows =
                    sqlx::query("SELECT * FROM key_versions WHERE key_id = $1 ORDER BY version")
                        .bind(key_id.to_string())
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map(version_from_row).collect()
            }

            async fn pending_versions(&self) -> Result<Vec<VersionRecord>> {
                let rows = sqlx::query(
                    "SELECT * FROM key_versions WHERE pending = 1 ORDER BY key_id, version",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(version_from_row).collect()
            }

            async fn all_token_object_ids(&self) -> Result<Vec<Vec<u8>>> {
                let rows = sqlx::query(
                    "SELECT v.token_object_id FROM key_versions v \
                     JOIN keys k ON k.key_id = v.key_id WHERE k.custom_key_store_id IS NULL \
                     UNION ALL SELECT wrapping_object_id AS token_object_id FROM imports \
                     WHERE wrapping_object_id IS NOT NULL",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| r.try_get("token_object_id").map_err(StoreError::from))
                    .collect()
            }

            async fn insert_alias(&self, a: &AliasRecord, max_per_key: i64) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                lock_key(&mut tx, a.key_id).await?;
                let n = count(
                    &mut tx,
                    "SELECT COUNT(*) FROM aliases WHERE key_id = $1",
                    a.key_id,
                )
                .await?;
                if n >= max_per_key {
                    return Err(StoreError::LimitExceeded);
                }
                sqlx::query(
                    "INSERT INTO aliases (region, account, name, key_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&a.region)
                .bind(&a.account)
                .bind(&a.name)
                .bind(a.key_id.to_string())
                .bind(a.created_at)
                .bind(a.updated_at)
                .execute(&mut *tx)
                .await?;
                let inv = alias_inv(&a.region, &a.account, &a.name);
                self.commit_announcing(tx, &[inv]).await?;
                Ok(())
            }

            async fn update_alias(&self, a: &AliasRecord) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE aliases SET key_id = $1, updated_at = $2 \
                     WHERE region = $3 AND account = $4 AND name = $5",
                )
                .bind(a.key_id.to_string())
                .bind(a.updated_at)
                .bind(&a.region)
                .bind(&a.account)
                .bind(&a.name)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                let inv = alias_inv(&a.region, &a.account, &a.name);
                self.commit_announcing(tx, &[inv]).await?;
                Ok(())
            }

            async fn delete_alias(&self, region: &str, account: &str, name: &str) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "DELETE FROM aliases WHERE region = $1 AND account = $2 AND name = $3",
                )
                .bind(region)
                .bind(account)
                .bind(name)
                .execute(&mut *tx)
                .await?;
                self.commit_announcing(tx, &[alias_inv(region, account, name)]).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_alias(
                &self,
                region: &str,
                account: &str,
                name: &str,
            ) -> Result<Option<AliasRecord>> {
                let row = sqlx::query(
                    "SELECT * FROM aliases WHERE region = $1 AND account = $2 AND name = $3",
                )
                .bind(region)
                .bind(account)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(alias_from_row).transpose()
            }

            async fn list_aliases(
                &self,
                region: &str,
                account: &str,
                key_id: Option<uuid::Uuid>,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<AliasRecord>> {
                let rows = sqlx::query(
                    "SELECT * FROM aliases WHERE region = $1 AND account = $2 \
                     AND ($3 IS NULL OR key_id = $3) AND name > $4 ORDER BY name LIMIT $5",
                )
                .bind(region)
                .bind(account)
                .bind(key_id.map(|k| k.to_string()))
                .bind(after.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(alias_from_row).collect()
            }

            async fn count_aliases_for_key(&self, key_id: uuid::Uuid) -> Result<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM aliases WHERE key_id = $1")
                    .bind(key_id.to_string())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn put_tags(
                &self,
                key_id: uuid::Uuid,
                tags: &[TagRecord],
                max_tags: i64,
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                lock_key(&mut tx, key_id).await?;
                for t in tags {
                    sqlx::query(
                        "INSERT INTO tags (key_id, tag_key, tag_value) VALUES ($1, $2, $3) \
                         ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
                    )
                    .bind(key_id.to_string())
                    .bind(&t.key)
                    .bind(&t.value)
                    .execute(&mut *tx)
                    .await?;
                }
                let n = count(&mut tx, "SELECT COUNT(*) FROM tags WHERE key_id = $1", key_id)
                    .await?;
                if n > max_tags {
                    // Dropping the transaction rolls it back.
                    return Err(StoreError::LimitExceeded);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn remove_tags(&self, key_id: uuid::Uuid, tag_keys: &[String]) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                for k in tag_keys {
                    sqlx::query("DELETE FROM tags WHERE key_id = $1 AND tag_key = $2")
                        .bind(key_id.to_string())
                        .bind(k)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_tags(&self, key_id: uuid::Uuid) -> Result<Vec<TagRecord>> {
                let rows = sqlx::query(
                    "SELECT tag_key, tag_value FROM tags WHERE key_id = $1 ORDER BY tag_key",
                )
                .bind(key_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(TagRecord {
                            key: r.try_get("tag_key")?,
                            value: r.try_get("tag_value")?,
                        })
                    })
                    .collect()
            }

            async fn insert_principal(&self, p: &PrincipalRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO principals (arn, account, kind, name, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&p.arn)
                .bind(&p.account)
                .bind(p.kind.as_str())
                .bind(&p.name)
                .bind(p.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_principal(&self, arn: &str) -> Result<Option<PrincipalRecord>> {
                let row = sqlx::query("SELECT * FROM principals WHERE arn = $1")
                    .bind(arn)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(principal_from_row).transpose()
            }

            async fn list_principals(&self) -> Result<Vec<PrincipalRecord>> {
                let rows = sqlx::query("SELECT * FROM principals ORDER BY arn")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(principal_from_row).collect()
            }

            async fn insert_access_key(&self, k: &AccessKeyRecord) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO access_keys (access_key_id, principal_arn, sealed_secret, \
                     active, created_at, mac) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&k.access_key_id)
                .bind(&k.principal_arn)
                .bind(&k.sealed_secret)
                .bind(k.active as i64)
                .bind(k.created_at)
                .bind(&k.mac)
                .execute(&mut *tx)
                .await?;
                let inv = Invalidation::AccessKey(k.access_key_id.clone());
                self.commit_announcing(tx, &[inv]).await?;
                Ok(())
            }

            async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
                let row = sqlx::query("SELECT * FROM access_keys WHERE access_key_id = $1")
                    .bind(access_key_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok(AccessKeyRecord {
                        access_key_id: r.try_get("access_key_id")?,
                        principal_arn: r.try_get("principal_arn")?,
                        sealed_secret: r.try_get("sealed_secret")?,
                        active: r.try_get::<i64, _>("active")? != 0,
                        created_at: r.try_get("created_at")?,
                        mac: r.try_get("mac")?,
                    })
                })
                .transpose()
            }

            async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
                    .bind(access_key_id)
                    .execute(&mut *tx)
                    .await?;
                let inv = Invalidation::AccessKey(access_key_id.to_string());
                self.commit_announcing(tx, &[inv]).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn put_identity_policy(&self, p: &IdentityPolicyRecord) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO identity_policies (principal_arn, name, document, mac) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (principal_arn, name) \
                     DO UPDATE SET document = excluded.document, mac = excluded.mac",
                )
                .bind(&p.principal_arn)
                .bind(&p.name)
                .bind(&p.document)
                .bind(&p.mac)
                .execute(&mut *tx)
                .await?;
                let inv = Invalidation::Principal(p.principal_arn.clone());
                self.commit_announcing(tx, &[inv]).await?;
                Ok(())
            }

            async fn delete_identity_policy(&self, principal_arn: &str, name: &str) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "DELETE FROM identity_policies WHERE principal_arn = $1 AND name = $2",
                )
                .bind(principal_arn)
                .bind(name)
                .execute(&mut *tx)
                .await?;
                let inv = Invalidation::Principal(principal_arn.to_string());
                self.commit_announcing(tx, &[inv]).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn identity_policies(
                &self,
                principal_arn: &str,
            ) -> Result<Vec<IdentityPolicyRecord>> {
                let rows = sqlx::query(
                    "SELECT principal_arn, name, document, mac FROM identity_policies \
                     WHERE principal_arn = $1 ORDER BY name",
                )
                .bind(principal_arn)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(IdentityPolicyRecord {
                            principal_arn: r.try_get("principal_arn")?,
                            name: r.try_get("name")?,
                            document: r.try_get("document")?,
                            mac: r.try_get("mac")?,
                        })
                    })
                    .collect()
            }

            async fn insert_grant(&self, g: &GrantRecord, max_per_key: i64) -> Result<()> {
                let ops = serde_json::to_string(&g.operations)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let mut tx = self.pool.begin().await?;
                lock_key(&mut tx, g.key_id).await?;
                let n = count(&mut tx, "SELECT COUNT(*) FROM grants WHERE key_id = $1", g.key_id)
                    .await?;
                if n >= max_per_key {
                    return Err(StoreError::LimitExceeded);
                }
                sqlx::query(
                    "INSERT INTO grants (grant_id, key_id, name, grantee_principal, \
                     retiring_principal, issuing_account, operations, constraints, created_at, \
                     mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&g.grant_id)
                .bind(g.key_id.to_string())
                .bind(&g.name)
                .bind(&g.grantee_principal)
                .bind(&g.retiring_principal)
                .bind(&g.issuing_account)
                .bind(ops)
                .bind(&g.constraints)
                .bind(g.created_at)
                .bind(&g.mac)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>> {
                let row = sqlx::query("SELECT * FROM grants WHERE grant_id = $1")
                    .bind(grant_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(grant_from_row).transpose()
            }

            async fn grants_for_key(
                &self,
                key_id: uuid::Uuid,
                grantee: Option<&str>,
            ) -> Result<Vec<GrantRecord>> {
                let rows = sqlx::query(
                    "SELECT * FROM grants WHERE key_id = $1 \
                     AND ($2 IS NULL OR grantee_principal = $2) ORDER BY grant_id",
                )
                .bind(key_id.to_string())
                .bind(grantee)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(grant_from_row).collect()
            }

            async fn grants_retirable_by(
                &self,
                retiring_principal: &str,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<GrantRecord>> {
                let rows = sqlx::query(
                    "SELECT * FROM grants WHERE retiring_principal = $1 AND grant_id > $2 \
                     ORDER BY grant_id LIMIT $3",
                )
                .bind(retiring_principal)
                .bind(after.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(grant_from_row).collect()
            }

            async fn grants_page(
                &self,
                key_id: uuid::Uuid,
                grantee: Option<&str>,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<GrantRecord>> {
                let rows = sqlx::query(
                    "SELECT * FROM grants WHERE key_id = $1 \
                     AND ($2 IS NULL OR grantee_principal = $2) AND grant_id > $3 \
                     ORDER BY grant_id LIMIT $4",
                )
                .bind(key_id.to_string())
                .bind(grantee)
                .bind(after.unwrap_or(""))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(grant_from_row).collect()
            }

            async fn grants_named(&self, key_id: uuid::Uuid, name: &str) -> Result<Vec<GrantRecord>> {
                let rows = sqlx::query(
                    "SELECT * FROM grants WHERE key_id = $1 AND name = $2 ORDER BY grant_id",
                )
                .bind(key_id.to_string())
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(grant_from_row).collect()
            }

            async fn delete_grant(&self, grant_id: &str) -> Result<bool> {
                let done = sqlx::query("DELETE FROM grants WHERE grant_id = $1")
                    .bind(grant_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn count_grants_for_key(&self, key_id: uuid::Uuid) -> Result<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM grants WHERE key_id = $1")
                    .bind(key_id.to_string())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn due_deletions(&self, now: Millis) -> Result<Vec<KeyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM keys WHERE state = 'PendingDeletion' \
                     AND deletion_date <= $1 ORDER BY key_id"
                ))
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn due_rotations(&self, now: Millis) -> Result<Vec<KeyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM keys WHERE state = 'Enabled' \
                     AND rotation_enabled = 1 \
                     AND rotation_base + rotation_period_days * 86400000 <= $1 ORDER BY key_id"
                ))
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn deleted_keys_with_material(&self) -> Result<Vec<uuid::Uuid>> {
                let rows = sqlx::query(
                    "SELECT k.key_id FROM keys k WHERE k.state = 'Deleted' \
                     AND (EXISTS (SELECT 1 FROM key_versions v WHERE v.key_id = k.key_id) \
                          OR EXISTS (SELECT 1 FROM imports i WHERE i.key_id = k.key_id \
                                     AND i.wrapping_object_id IS NOT NULL)) \
                     ORDER BY k.key_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| uuid_col(r, "key_id")).collect()
            }

            async fn tombstone_key(&self, key: &KeyRecord) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE keys SET state = 'Deleted', mac = $3, revision = revision + 1 \
                     WHERE key_id = $1 AND revision = $2 AND state = 'PendingDeletion'",
                )
                .bind(key.key_id.to_string())
                .bind(key.revision)
                .bind(&key.mac)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(missing_or_changed(&mut tx, key.key_id).await);
                }
                let aliases = sqlx::query(
                    "DELETE FROM aliases WHERE key_id = $1 RETURNING region, account, name",
                )
                .bind(key.key_id.to_string())
                .fetch_all(&mut *tx)
                .await?;
                let mut invs = vec![Invalidation::Key(key.key_id)];
                for r in &aliases {
                    let (region, account, name): (String, String, String) =
                        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                    invs.push(alias_inv(&region, &account, &name));
                }
                for sql in [
                    "DELETE FROM grants WHERE key_id = $1",
                    "DELETE FROM tags WHERE key_id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(key.key_id.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                self.commit_announcing(tx, &invs).await?;
                Ok(())
            }

            async fn delete_version(&self, key_id: uuid::Uuid, version: i64) -> Result<()> {
                self.delete_of_key(
                    "DELETE FROM key_versions WHERE key_id = $1 AND version = $2",
                    key_id,
                    version,
                )
                .await
            }

            async fn insert_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO custom_key_stores (id, region, account, name, cluster_id, \
                     trust_anchor, sealed_password, connection_state, connection_error, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&s.id)
                .bind(&s.region)
                .bind(&s.account)
                .bind(&s.name)
                .bind(&s.cluster_id)
                .bind(&s.trust_anchor)
                .bind(&s.sealed_password)
                .bind(&s.connection_state)
                .bind(&s.connection_error)
                .bind(s.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn update_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()> {
                let done = sqlx::query(
                    "UPDATE custom_key_stores SET name = $1, cluster_id = $2, \
                     sealed_password = $3, connection_state = $4, connection_error = $5 \
                     WHERE id = $6",
                )
                .bind(&s.name)
                .bind(&s.cluster_id)
                .bind(&s.sealed_password)
                .bind(&s.connection_state)
                .bind(&s.connection_error)
                .bind(&s.id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    Ok(())
                } else {
                    Err(StoreError::NotFound)
                }
            }

            async fn delete_key_store(&self, id: &str) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                if !lock_key_store(&mut tx, id).await? {
                    return Ok(false);
                }
                let row = sqlx::query(
                    "SELECT COUNT(*) FROM keys WHERE custom_key_store_id = $1 \
                     AND state != 'Deleted'",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                if row.try_get::<i64, _>(0)? > 0 {
                    return Err(StoreError::InUse);
                }
                sqlx::query("DELETE FROM custom_key_stores WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn key_stores(&self) -> Result<Vec<CustomKeyStoreRecord>> {
                let rows = sqlx::query("SELECT * FROM custom_key_stores ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(store_row).collect()
            }

            async fn count_keys_in_store(&self, id: &str) -> Result<i64> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM keys WHERE custom_key_store_id = $1 \
                     AND state != 'Deleted'",
                )
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get("n")?)
            }

            async fn insert_external_key(&self, k: &KeyRecord, tags: &[TagRecord]) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                insert_key_in(&mut tx, k, tags).await?;
                sqlx::query("INSERT INTO imports (key_id) VALUES ($1)")
                    .bind(k.key_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                self.commit_announcing(tx, &[Invalidation::Key(k.key_id)]).await?;
                Ok(())
            }

            async fn multi_region_keys(&self, mrk: uuid::Uuid) -> Result<Vec<KeyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM keys WHERE mrk_id = $1 AND state != 'Deleted' \
                     ORDER BY region"
                ))
                .bind(mrk.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn insert_replica(
                &self,
                k: &KeyRecord,
                versions: &[VersionRecord],
                tags: &[TagRecord],
                materials: &[MaterialRecord],
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let id = k.key_id.to_string();
                let existing = sqlx::query("SELECT state FROM keys WHERE key_id = $1")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = existing {
                    let state: String = row.try_get("state")?;
                    if state != KeyState::Deleted.as_str() {
                        return Err(StoreError::AlreadyExists);
                    }
                    let left = count(
                        &mut tx,
                        "SELECT COUNT(*) FROM key_versions WHERE key_id = $1",
                        k.key_id,
                    )
                    .await?;
                    if left > 0 {
                        return Err(StoreError::InUse);
                    }
                    // The tombstone of a deleted replica in this region: replicating the
                    // primary here again makes the key anew (as AWS does).
                    for sql in [
                        "DELETE FROM key_last_usage WHERE key_id = $1",
                        "DELETE FROM key_materials WHERE key_id = $1",
                        "DELETE FROM imports WHERE key_id = $1",
                        "DELETE FROM keys WHERE key_id = $1",
                    ] {
                        sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
                    }
                }
                insert_key_in(&mut tx, k, tags).await?;
                for v in versions {
                    insert_version_in(&mut tx, v).await?;
                }
                if k.origin == Origin::External {
                    sqlx::query("INSERT INTO imports (key_id) VALUES ($1)")
                        .bind(&id)
                        .execute(&mut *tx)
                        .await?;
                    for m in materials {
                        sqlx::query(
                            "INSERT INTO key_materials (key_id, version, check_value, \
                             description, expiration_model, valid_to, imported, created_at, \
                             rotated_at, rotation_type) \
                             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9)",
                        )
                        .bind(&id)
                        .bind(m.version)
                        .bind(&m.check_value)
                        .bind(&m.description)
                        .bind(&m.expiration_model)
                        .bind(m.valid_to)
                        .bind(m.created_at)
                        .bind(m.rotated_at)
                        .bind(m.rotation_type.map(|r| r.as_str()))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                self.commit_announcing(tx, &[Invalidation::Key(k.key_id)]).await?;
                Ok(())
            }

            async fn update_keys(&self, keys: &[KeyRecord]) -> Result<Vec<i64>> {
                let mut tx = self.pool.begin().await?;
                let mut revisions = Vec::with_capacity(keys.len());
                for k in keys {
                    revisions.push(update_key_in(&mut tx, k).await?);
                }
                let invs: Vec<Invalidation> =
                    keys.iter().map(|k| Invalidation::Key(k.key_id)).collect();
                self.commit_announcing(tx, &invs).await?;
                Ok(revisions)
            }

            async fn activate_versions(
                &self,
                keys: &[KeyRecord],
                versions: &[i64],
            ) -> Result<Vec<i64>> {
                let mut tx = self.pool.begin().await?;
                let mut revisions = Vec::with_capacity(keys.len());
                for k in keys {
                    for v in versions {
                        let done = sqlx::query(
                            "UPDATE key_versions SET pending = 0 \
                             WHERE key_id = $1 AND version = $2",
                        )
                        .bind(k.key_id.to_string())
                        .bind(v)
                        .execute(&mut *tx)
                        .await?;
                        if done.rows_affected() != 1 {
                            return Err(StoreError::NotFound);
                        }
                    }
                    revisions.push(update_key_in(&mut tx, k).await?);
                }
                let invs: Vec<Invalidation> =
                    keys.iter().map(|k| Invalidation::Key(k.key_id)).collect();
                self.commit_announcing(tx, &invs).await?;
                Ok(revisions)
            }

            async fn keys_in_state(&self, state: KeyState) -> Result<Vec<KeyRecord>> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM keys WHERE state = $1 ORDER BY key_id"
                ))
                .bind(state.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn get_import(&self, key_id: uuid::Uuid) -> Result<Option<ImportRecord>> {
                let mut conn = self.pool.acquire().await?;
                let row = sqlx::query("SELECT * FROM imports WHERE key_id = $1")
                    .bind(key_id.to_string())
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(mut rec) = row.as_ref().map(import_from_row).transpose()? else {
                    return Ok(None);
                };
                let rows = sqlx::query(
                    "SELECT * FROM key_materials WHERE key_id = $1 ORDER BY version",
                )
                .bind(key_id.to_string())
                .fetch_all(&mut *conn)
                .await?;
                rec.materials = rows.iter().map(material_from_row).collect::<Result<_>>()?;
                Ok(Some(rec))
            }

            async fn set_import_parameters(&self, r: &ImportRecord) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE imports SET wrapping_object_id = $1, wrapping_algorithm = $2, \
                     wrapping_key_spec = $3, nonce = $4, parameters_valid_to = $5 \
                     WHERE key_id = $6",
                )
                .bind(&r.wrapping_object_id)
                .bind(&r.wrapping_algorithm)
                .bind(&r.wrapping_key_spec)
                .bind(&r.nonce)
                .bind(r.parameters_valid_to)
                .bind(r.key_id.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                self.commit_announcing(tx, &[Invalidation::Key(r.key_id)]).await?;
                Ok(())
            }

            async fn put_material(
                &self,
                m: &MaterialRecord,
                activate: bool,
                key: Option<&KeyRecord>,
            ) -> Result<Option<i64>> {
                let mut tx = self.pool.begin().await?;
                lock_key(&mut tx, m.key_id).await?;
                // At most one material pending rotation (above the current version).
                let others = sqlx::query(
                    "SELECT COUNT(*) FROM key_materials m JOIN keys k ON k.key_id = m.key_id \
                     WHERE m.key_id = $1 AND m.version > k.current_version AND m.version != $2 \
                     AND $2 > k.current_version",
                )
                .bind(m.key_id.to_string())
                .bind(m.version)
                .fetch_one(&mut *tx)
                .await?;
                if others.try_get::<i64, _>(0)? > 0 {
                    return Err(StoreError::Conflict);
                }
                sqlx::query(
                    "INSERT INTO key_materials (key_id, version, check_value, description, \
                     expiration_model, valid_to, imported, created_at, rotated_at, \
                     rotation_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (key_id, version) DO UPDATE SET \
                     check_value = excluded.check_value, description = excluded.description, \
                     expiration_model = excluded.expiration_model, valid_to = excluded.valid_to, \
                     imported = excluded.imported, rotated_at = excluded.rotated_at, \
                     rotation_type = excluded.rotation_type",
                )
                .bind(m.key_id.to_string())
                .bind(m.version)
                .bind(&m.check_value)
                .bind(&m.description)
                .bind(&m.expiration_model)
                .bind(m.valid_to)
                .bind(m.imported as i64)
                .bind(m.created_at)
                .bind(m.rotated_at)
                .bind(m.rotation_type.map(|r| r.as_str()))
                .execute(&mut *tx)
                .await?;
                if activate {
                    let done = sqlx::query(
                        "UPDATE key_versions SET pending = 0 \
                         WHERE key_id = $1 AND version = $2 AND pending = 1",
                    )
                    .bind(m.key_id.to_string())
                    .bind(m.version)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound);
                    }
                }
                let revision = match key {
                    Some(k) => Some(update_key_in(&mut tx, k).await?),
                    None => None,
                };
                self.commit_announcing(tx, &[Invalidation::Key(m.key_id)]).await?;
                Ok(revision)
            }

            async fn delete_material(&self, key_id: uuid::Uuid, version: i64) -> Result<()> {
                self.delete_of_key(
                    "DELETE FROM key_materials WHERE key_id = $1 AND version = $2",
                    key_id,
                    version,
                )
                .await
            }

            async fn rotate_to_material(
                &self,
                key: &KeyRecord,
                version: i64,
                at: Millis,
            ) -> Result<i64> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE key_materials SET rotated_at = $1, rotation_type = $2 \
                     WHERE key_id = $3 AND version = $4 AND imported = 1",
                )
                .bind(at)
                .bind(RotationType::OnDemand.as_str())
                .bind(key.key_id.to_string())
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                let revision = update_key_in(&mut tx, key).await?;
                self.commit_announcing(tx, &[Invalidation::Key(key.key_id)]).await?;
                Ok(revision)
            }

            async fn due_expirations(&self, now: Millis) -> Result<Vec<KeyRecord>> {
                let cols = key_columns_of_k();
                let rows = sqlx::query(&format!(
                    "SELECT {cols} FROM keys k WHERE k.state NOT IN ('Creating', 'Deleted') \
                     AND EXISTS (SELECT 1 FROM key_materials m WHERE m.key_id = k.key_id \
                                 AND m.imported = 1 \
                                 AND m.expiration_model = 'KEY_MATERIAL_EXPIRES' \
                                 AND m.valid_to <= $1) \
                     ORDER BY k.key_id"
                ))
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn record_key_usage(&self, uses: &[KeyUsageRecord]) -> Result<()> {
                if uses.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for u in uses {
                    sqlx::query(
                        "INSERT INTO key_last_usage (key_id, operation, used_at, event_id, \
                         request_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO UPDATE \
                         SET operation = excluded.operation, used_at = excluded.used_at, \
                         event_id = excluded.event_id, request_id = excluded.request_id \
                         WHERE excluded.used_at >= key_last_usage.used_at",
                    )
                    .bind(u.key_id.to_string())
                    .bind(&u.operation)
                    .bind(u.used_at)
                    .bind(&u.event_id)
                    .bind(&u.request_id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn key_last_usage(&self, key_id: uuid::Uuid) -> Result<Option<KeyUsageRecord>> {
                let row = sqlx::query("SELECT * FROM key_last_usage WHERE key_id = $1")
                    .bind(key_id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    Ok(KeyUsageRecord {
                        key_id: uuid_col(&r, "key_id")?,
                        operation: r.try_get("operation")?,
                        used_at: r.try_get("used_at")?,
                        event_id: r.try_get("event_id")?,
                        request_id: r.try_get("request_id")?,
                    })
                })
                .transpose()
            }

            async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<i64>> {
                let row = sqlx::query(&format!(
                    "INSERT INTO leases (name, holder, fence, expires_at) \
                     VALUES ($1, $2, 1, {NOW_MS} + $3) \
                     ON CONFLICT (name) DO UPDATE SET \
                       fence = CASE WHEN leases.holder = excluded.holder THEN leases.fence \
                               ELSE leases.fence + 1 END, \
                       holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= {NOW_MS} \
                     RETURNING fence"
                ))
                .bind(name)
                .bind(holder)
                .bind(ttl_ms)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| r.try_get::<i64, _>("fence").map_err(StoreError::from))
                    .transpose()
            }

            fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Invalidation>> {
                self.subscription()
            }

            fn cache_coherent(&self) -> bool {
                self.coherent()
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

pub(super) use sql_store;
