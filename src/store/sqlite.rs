//! SQLite implementation of the metadata store (WAL, synchronous=FULL: every commit is durable).
//! One node only: nothing else writes the file, so there is nothing to hear from.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

/// The database clock in milliseconds since the epoch.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open (and create if needed) the database file and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        // Processes opening a new file at once (a server and the admin CLI) can find it locked
        // while another one switches it to WAL or records a migration (SQLite answers BUSY at
        // once there, whatever busy_timeout says); the loser finds the work done when it tries
        // again.
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            match Self::try_open(path).await {
                Err(StoreError::Unavailable(e)) if attempt < 20 => {
                    tracing::debug!(error = %e, attempt, "database busy while opening; retrying");
                    tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn try_open(path: &Path) -> Result<SqliteStore> {
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
        // Databases made before versioned migrations lack a column that version 1's indexes
        // use; add it first, then let the (idempotent) first migration adopt the database.
        let cols: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('keys')")
            .fetch_all(&pool)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<String, _>("name").ok())
            .collect();
        if !cols.is_empty() && !cols.iter().any(|c| c == "custom_key_store_id") {
            sqlx::query("ALTER TABLE keys ADD COLUMN custom_key_store_id TEXT")
                .execute(&pool)
                .await?;
        }
        match sqlx::migrate!("./src/store/migrations/sqlite")
            .run(&pool)
            .await
        {
            Ok(()) => Ok(SqliteStore { pool }),
            // A concurrent opener recorded the same migration first, or applied an
            // `ALTER TABLE … ADD COLUMN` (not idempotent in SQLite) while this one waited for
            // the write lock: once more, and the migration is found applied.
            Err(e) => Err(match StoreError::from(e) {
                StoreError::AlreadyExists => StoreError::Unavailable("migration raced".into()),
                StoreError::Db(m) if m.contains("duplicate column name") => {
                    StoreError::Unavailable(format!("migration raced: {m}"))
                }
                other => other,
            }),
        }
    }

    async fn publish(&self, _tx: &mut Tx<'_>, _changes: &[Invalidation]) -> Result<()> {
        Ok(())
    }

    async fn settle(&self, _echo: ()) {}

    fn subscription(&self) -> Option<tokio::sync::broadcast::Receiver<Invalidation>> {
        None
    }

    fn coherent(&self) -> bool {
        true
    }
}

super::sql::sql_store!(SqliteStore, sqlx::Sqlite, SqliteRow);
