//! SQLite implementation of the metadata store (WAL, synchronous=FULL: every commit is durable).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

use super::{
    AccessKeyRecord, AliasRecord, CustomKeyStoreRecord, GrantRecord, IdentityPolicyRecord,
    ImportRecord, KeyRecord, MetadataStore, PrincipalKind, PrincipalRecord, Result, StoreError,
    TagRecord, VersionRecord,
};
use crate::model::{KeySpec, KeyState, KeyUsage, Origin, RotationType};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    description TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    key_usage TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deletion_date INTEGER,
    pending_window_days INTEGER,
    rotation_enabled INTEGER NOT NULL,
    rotation_period_days INTEGER,
    rotation_base INTEGER,
    current_version INTEGER NOT NULL,
    policy TEXT NOT NULL,
    revision INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS keys_by_scope ON keys(region, account, key_id);
CREATE TABLE IF NOT EXISTS custom_key_stores (
    id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    trust_anchor TEXT NOT NULL,
    sealed_password BLOB NOT NULL,
    connection_state TEXT NOT NULL,
    connection_error TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (region, account, name),
    UNIQUE (cluster_id)
);
CREATE TABLE IF NOT EXISTS key_versions (
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    version INTEGER NOT NULL,
    token_object_id BLOB NOT NULL UNIQUE,
    material_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    rotation_type TEXT,
    pending INTEGER NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (region, account, name)
);
CREATE INDEX IF NOT EXISTS aliases_by_key ON aliases(key_id);
CREATE TABLE IF NOT EXISTS principals (
    arn TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    principal_arn TEXT NOT NULL REFERENCES principals(arn),
    sealed_secret BLOB NOT NULL,
    active INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_policies (
    principal_arn TEXT NOT NULL REFERENCES principals(arn),
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (principal_arn, name)
);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    name TEXT,
    grantee_principal TEXT NOT NULL,
    retiring_principal TEXT,
    issuing_account TEXT NOT NULL,
    operations TEXT NOT NULL,
    constraints TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_by_key ON grants(key_id, grantee_principal);
CREATE INDEX IF NOT EXISTS grants_by_retiring ON grants(retiring_principal);
CREATE TABLE IF NOT EXISTS tags (
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
CREATE TABLE IF NOT EXISTS imports (
    key_id TEXT PRIMARY KEY REFERENCES keys(key_id),
    wrapping_object_id BLOB,
    wrapping_algorithm TEXT,
    wrapping_key_spec TEXT,
    nonce BLOB,
    parameters_valid_to INTEGER,
    expiration_model TEXT,
    valid_to INTEGER,
    check_value BLOB
);
CREATE INDEX IF NOT EXISTS imports_by_valid_to ON imports(valid_to);
"#;

const KEY_COLUMNS: &str = "key_id, region, account, description, key_spec, key_usage, origin, \
     state, created_at, deletion_date, pending_window_days, rotation_enabled, \
     rotation_period_days, rotation_base, current_version, policy, revision, custom_key_store_id";

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (and create if needed) the database file and apply the schema.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        // Columns added after the first release of the schema.
        let cols: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('keys')")
            .fetch_all(&pool)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<String, _>("name").ok())
            .collect();
        if !cols.iter().any(|c| c == "custom_key_store_id") {
            sqlx::query("ALTER TABLE keys ADD COLUMN custom_key_store_id TEXT")
                .execute(&pool)
                .await?;
        }
        Ok(SqliteStore { pool })
    }
}

fn map_unique(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::AlreadyExists;
        }
    }
    StoreError::Db(e)
}

fn parse<T>(v: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Result<T> {
    f(v).ok_or_else(|| StoreError::Corrupt(format!("{what} {v:?}")))
}

fn uuid_col(row: &SqliteRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|_| StoreError::Corrupt(format!("{col} {s:?}")))
}

fn key_from_row(row: &SqliteRow) -> Result<KeyRecord> {
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
    })
}

fn version_from_row(row: &SqliteRow) -> Result<VersionRecord> {
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

fn alias_from_row(row: &SqliteRow) -> Result<AliasRecord> {
    Ok(AliasRecord {
        region: row.try_get("region")?,
        account: row.try_get("account")?,
        name: row.try_get("name")?,
        key_id: uuid_col(row, "key_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn principal_from_row(row: &SqliteRow) -> Result<PrincipalRecord> {
    Ok(PrincipalRecord {
        arn: row.try_get("arn")?,
        account: row.try_get("account")?,
        kind: parse(row.try_get("kind")?, "kind", PrincipalKind::parse)?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn grant_from_row(row: &SqliteRow) -> Result<GrantRecord> {
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
    })
}

async fn insert_version_in<'e, E>(exec: E, v: &VersionRecord) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO key_versions (key_id, version, token_object_id, material_id, created_at, \
         rotation_type, pending) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(v.key_id.to_string())
    .bind(v.version)
    .bind(&v.token_object_id)
    .bind(&v.material_id)
    .bind(v.created_at)
    .bind(v.rotation_type.map(|r| r.as_str()))
    .bind(v.pending as i64)
    .execute(exec)
    .await
    .map_err(map_unique)?;
    Ok(())
}

async fn insert_key_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    k: &KeyRecord,
    tags: &[TagRecord],
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
    .execute(&mut **tx)
    .await
    .map_err(map_unique)?;
    for t in tags {
        sqlx::query("INSERT INTO tags (key_id, tag_key, tag_value) VALUES (?, ?, ?)")
            .bind(k.key_id.to_string())
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut **tx)
            .await
            .map_err(map_unique)?;
    }
    Ok(())
}

fn import_from_row(row: &SqliteRow) -> Result<ImportRecord> {
    Ok(ImportRecord {
        key_id: uuid_col(row, "key_id")?,
        wrapping_object_id: row.try_get("wrapping_object_id")?,
        wrapping_algorithm: row.try_get("wrapping_algorithm")?,
        wrapping_key_spec: row.try_get("wrapping_key_spec")?,
        nonce: row.try_get("nonce")?,
        parameters_valid_to: row.try_get("parameters_valid_to")?,
        expiration_model: row.try_get("expiration_model")?,
        valid_to: row.try_get("valid_to")?,
        check_value: row.try_get("check_value")?,
    })
}

async fn update_key_in<'e, E>(exec: E, k: &KeyRecord) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let done = sqlx::query(
        "UPDATE keys SET description = ?, state = ?, deletion_date = ?, pending_window_days = ?, \
         rotation_enabled = ?, rotation_period_days = ?, rotation_base = ?, current_version = ?, \
         policy = ?, revision = revision + 1 WHERE key_id = ? AND revision = ?",
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
    .bind(k.key_id.to_string())
    .bind(k.revision)
    .execute(exec)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn insert_key(
        &self,
        k: &KeyRecord,
        version: &VersionRecord,
        tags: &[TagRecord],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_key_in(&mut tx, k, tags).await?;
        insert_version_in(&mut *tx, version).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_key(&self, key_id: Uuid) -> Result<Option<KeyRecord>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id = ?"))
            .bind(key_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(
        &self,
        region: &str,
        account: &str,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE region = ? AND account = ? AND key_id > ? \
             AND state NOT IN ('Creating', 'Deleted') ORDER BY key_id LIMIT ?"
        ))
        .bind(region)
        .bind(account)
        .bind(after.map(|u| u.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn update_key(&self, key: &KeyRecord) -> Result<()> {
        update_key_in(&self.pool, key).await
    }

    async fn delete_unfinished_key(&self, key_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let id = key_id.to_string();
        for sql in [
            "DELETE FROM tags WHERE key_id = ?",
            "DELETE FROM key_versions WHERE key_id = ?",
            "DELETE FROM keys WHERE key_id = ? AND state = 'Creating'",
        ] {
            sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn unfinished_keys(&self) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE state = 'Creating'"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn insert_version(&self, version: &VersionRecord) -> Result<()> {
        insert_version_in(&self.pool, version).await
    }

    async fn activate_version(&self, key: &KeyRecord, version: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE key_versions SET pending = 0 WHERE key_id = ? AND version = ?")
            .bind(key.key_id.to_string())
            .bind(version)
            .execute(&mut *tx)
            .await?;
        update_key_in(&mut *tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_pending_version(&self, key_id: Uuid, version: i64) -> Result<()> {
        sqlx::query("DELETE FROM key_versions WHERE key_id = ? AND version = ? AND pending = 1")
            .bind(key_id.to_string())
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn versions(&self, key_id: Uuid) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query("SELECT * FROM key_versions WHERE key_id = ? ORDER BY version")
            .bind(key_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn pending_versions(&self) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query("SELECT * FROM key_versions WHERE pending = 1")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn all_token_object_ids(&self) -> Result<Vec<Vec<u8>>> {
        let rows = sqlx::query(
            "SELECT v.token_object_id FROM key_versions v JOIN keys k ON k.key_id = v.key_id \
             WHERE k.custom_key_store_id IS NULL UNION ALL \
             SELECT wrapping_object_id AS token_object_id FROM imports \
             WHERE wrapping_object_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("token_object_id").map_err(StoreError::from))
            .collect()
    }

    async fn insert_alias(&self, a: &AliasRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO aliases (region, account, name, key_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.region)
        .bind(&a.account)
        .bind(&a.name)
        .bind(a.key_id.to_string())
        .bind(a.created_at)
        .bind(a.updated_at)
        .execute(&self.pool)
        .await
        .map_err(map_unique)?;
        Ok(())
    }

    async fn update_alias(&self, a: &AliasRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE aliases SET key_id = ?, updated_at = ? WHERE region = ? AND account = ? AND name = ?",
        )
        .bind(a.key_id.to_string())
        .bind(a.updated_at)
        .bind(&a.region)
        .bind(&a.account)
        .bind(&a.name)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn delete_alias(&self, region: &str, account: &str, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM aliases WHERE region = ? AND account = ? AND name = ?")
            .bind(region)
            .bind(account)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_alias(
        &self,
        region: &str,
        account: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>> {
        let row =
            sqlx::query("SELECT * FROM aliases WHERE region = ? AND account = ? AND name = ?")
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
        key_id: Option<Uuid>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AliasRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM aliases WHERE region = ? AND account = ? AND (? IS NULL OR key_id = ?) \
             AND name > ? ORDER BY name LIMIT ?",
        )
        .bind(region)
        .bind(account)
        .bind(key_id.map(|k| k.to_string()))
        .bind(key_id.map(|k| k.to_string()))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alias_from_row).collect()
    }

    async fn count_aliases_for_key(&self, key_id: Uuid) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM aliases WHERE key_id = ?")
            .bind(key_id.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn put_tags(&self, key_id: Uuid, tags: &[TagRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for t in tags {
            sqlx::query(
                "INSERT INTO tags (key_id, tag_key, tag_value) VALUES (?, ?, ?) \
                 ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
            )
            .bind(key_id.to_string())
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn remove_tags(&self, key_id: Uuid, tag_keys: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for k in tag_keys {
            sqlx::query("DELETE FROM tags WHERE key_id = ? AND tag_key = ?")
                .bind(key_id.to_string())
                .bind(k)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_tags(&self, key_id: Uuid) -> Result<Vec<TagRecord>> {
        let rows =
            sqlx::query("SELECT tag_key, tag_value FROM tags WHERE key_id = ? ORDER BY tag_key")
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
            "INSERT INTO principals (arn, account, kind, name, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&p.arn)
        .bind(&p.account)
        .bind(p.kind.as_str())
        .bind(&p.name)
        .bind(p.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_unique)?;
        Ok(())
    }

    async fn get_principal(&self, arn: &str) -> Result<Option<PrincipalRecord>> {
        let row = sqlx::query("SELECT * FROM principals WHERE arn = ?")
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
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, principal_arn, sealed_secret, active, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&k.access_key_id)
        .bind(&k.principal_arn)
        .bind(&k.sealed_secret)
        .bind(k.active as i64)
        .bind(k.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_unique)?;
        Ok(())
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        let row = sqlx::query("SELECT * FROM access_keys WHERE access_key_id = ?")
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
            })
        })
        .transpose()
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM access_keys WHERE access_key_id = ?")
            .bind(access_key_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_identity_policy(&self, p: &IdentityPolicyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO identity_policies (principal_arn, name, document) VALUES (?, ?, ?) \
             ON CONFLICT (principal_arn, name) DO UPDATE SET document = excluded.document",
        )
        .bind(&p.principal_arn)
        .bind(&p.name)
        .bind(&p.document)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_identity_policy(&self, principal_arn: &str, name: &str) -> Result<bool> {
        let done =
            sqlx::query("DELETE FROM identity_policies WHERE principal_arn = ? AND name = ?")
                .bind(principal_arn)
                .bind(name)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn identity_policies(&self, principal_arn: &str) -> Result<Vec<IdentityPolicyRecord>> {
        let rows = sqlx::query(
            "SELECT principal_arn, name, document FROM identity_policies WHERE principal_arn = ? ORDER BY name",
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
                })
            })
            .collect()
    }

    async fn insert_grant(&self, g: &GrantRecord) -> Result<()> {
        let ops =
            serde_json::to_string(&g.operations).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO grants (grant_id, key_id, name, grantee_principal, retiring_principal, \
             issuing_account, operations, constraints, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await
        .map_err(map_unique)?;
        Ok(())
    }

    async fn get_grant(&self, grant_id: &str) -> Result<Option<GrantRecord>> {
        let row = sqlx::query("SELECT * FROM grants WHERE grant_id = ?")
            .bind(grant_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn grants_for_key(
        &self,
        key_id: Uuid,
        grantee: Option<&str>,
    ) -> Result<Vec<GrantRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM grants WHERE key_id = ? AND (? IS NULL OR grantee_principal = ?) \
             ORDER BY grant_id",
        )
        .bind(key_id.to_string())
        .bind(grantee)
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
            "SELECT * FROM grants WHERE retiring_principal = ? AND grant_id > ? \
             ORDER BY grant_id LIMIT ?",
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
        key_id: Uuid,
        grantee: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<GrantRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM grants WHERE key_id = ? AND (? IS NULL OR grantee_principal = ?) \
             AND grant_id > ? ORDER BY grant_id LIMIT ?",
        )
        .bind(key_id.to_string())
        .bind(grantee)
        .bind(grantee)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn grants_named(&self, key_id: Uuid, name: &str) -> Result<Vec<GrantRecord>> {
        let rows = sqlx::query("SELECT * FROM grants WHERE key_id = ? AND name = ?")
            .bind(key_id.to_string())
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    async fn delete_grant(&self, grant_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM grants WHERE grant_id = ?")
            .bind(grant_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_grants_for_key(&self, key_id: Uuid) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM grants WHERE key_id = ?")
            .bind(key_id.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn due_deletions(&self, now: super::Millis) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE state = 'PendingDeletion' AND deletion_date <= ?"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn due_rotations(&self, now: super::Millis) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE state = 'Enabled' AND rotation_enabled = 1 \
             AND rotation_base + rotation_period_days * 86400000 <= ?"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn deleted_keys_with_material(&self) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT DISTINCT k.key_id FROM keys k JOIN key_versions v ON v.key_id = k.key_id \
             WHERE k.state = 'Deleted'",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| uuid_col(r, "key_id")).collect()
    }

    async fn tombstone_key(&self, key: &KeyRecord) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE keys SET state = 'Deleted', revision = revision + 1 \
             WHERE key_id = ? AND revision = ? AND state = 'PendingDeletion'",
        )
        .bind(key.key_id.to_string())
        .bind(key.revision)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
        for sql in [
            "DELETE FROM aliases WHERE key_id = ?",
            "DELETE FROM grants WHERE key_id = ?",
            "DELETE FROM tags WHERE key_id = ?",
        ] {
            sqlx::query(sql)
                .bind(key.key_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_version(&self, key_id: Uuid, version: i64) -> Result<()> {
        sqlx::query("DELETE FROM key_versions WHERE key_id = ? AND version = ?")
            .bind(key_id.to_string())
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO custom_key_stores (id, region, account, name, cluster_id, trust_anchor, \
             sealed_password, connection_state, connection_error, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .await
        .map_err(map_unique)?;
        Ok(())
    }

    async fn update_key_store(&self, s: &CustomKeyStoreRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE custom_key_stores SET name = ?, cluster_id = ?, sealed_password = ?, \
             connection_state = ?, connection_error = ? WHERE id = ?",
        )
        .bind(&s.name)
        .bind(&s.cluster_id)
        .bind(&s.sealed_password)
        .bind(&s.connection_state)
        .bind(&s.connection_error)
        .bind(&s.id)
        .execute(&self.pool)
        .await
        .map_err(map_unique)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn delete_key_store(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM custom_key_stores WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn key_stores(&self) -> Result<Vec<CustomKeyStoreRecord>> {
        let rows = sqlx::query("SELECT * FROM custom_key_stores ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
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
            })
            .collect()
    }

    async fn count_keys_in_store(&self, id: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM keys WHERE custom_key_store_id = ? AND state != 'Deleted'",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    async fn insert_external_key(&self, k: &KeyRecord, tags: &[TagRecord]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_key_in(&mut tx, k, tags).await?;
        sqlx::query("INSERT INTO imports (key_id) VALUES (?)")
            .bind(k.key_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_unique)?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_import(&self, key_id: Uuid) -> Result<Option<ImportRecord>> {
        let row = sqlx::query("SELECT * FROM imports WHERE key_id = ?")
            .bind(key_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(import_from_row).transpose()
    }

    async fn set_import_parameters(&self, r: &ImportRecord) -> Result<()> {
        sqlx::query(
            "UPDATE imports SET wrapping_object_id = ?, wrapping_algorithm = ?, \
             wrapping_key_spec = ?, nonce = ?, parameters_valid_to = ? WHERE key_id = ?",
        )
        .bind(&r.wrapping_object_id)
        .bind(&r.wrapping_algorithm)
        .bind(&r.wrapping_key_spec)
        .bind(&r.nonce)
        .bind(r.parameters_valid_to)
        .bind(r.key_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_import_material(
        &self,
        key_id: Uuid,
        expiration_model: &str,
        valid_to: Option<super::Millis>,
        check_value: Option<&[u8]>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE imports SET expiration_model = ?, valid_to = ?, \
             check_value = COALESCE(check_value, ?) WHERE key_id = ?",
        )
        .bind(expiration_model)
        .bind(valid_to)
        .bind(check_value)
        .bind(key_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn due_expirations(&self, now: super::Millis) -> Result<Vec<KeyRecord>> {
        let cols = KEY_COLUMNS
            .split(", ")
            .map(|c| format!("k.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {cols} FROM keys k JOIN imports i ON i.key_id = k.key_id \
             WHERE k.state NOT IN ('Creating', 'Deleted') \
             AND i.expiration_model = 'KEY_MATERIAL_EXPIRES' AND i.valid_to <= ? \
             AND EXISTS (SELECT 1 FROM key_versions v WHERE v.key_id = k.key_id AND v.pending = 0)"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
