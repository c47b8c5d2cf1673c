//! PostgreSQL implementation of the metadata store: the one database several kms-bridge nodes
//! share. The SQL is `sql.rs`'s, the same as SQLite's; what is PostgreSQL's own is here:
//!
//! - Connecting: a pool of `pool_size` connections, each with a `statement_timeout`; start-up
//!   retries with exponential backoff while the database is not reachable yet; migrations run
//!   under sqlx's advisory lock, so nodes may start at the same time.
//! - Invalidations: every write that changes what a cache may hold sends `pg_notify` on the
//!   channel `kms_bridge` inside its transaction, so the notification exists if and only if the
//!   write committed. Its payload starts with this node's origin and a sequence number.
//!   A listener task (its own connection) turns other nodes' payloads into `Invalidation`s on
//!   a broadcast channel. When the listener's connection breaks it may miss notifications, so
//!   the store reports itself not `cache_coherent` (caches read through) until it listens
//!   again, and then announces `Flush`.
//! - Read-your-writes across nodes: after its commit, a writer waits (briefly, bounded) until
//!   its own notification came back through its own listener. PostgreSQL delivers a
//!   notification to every listening session at the same commit, so by then the other nodes'
//!   listeners have it on their connections; what remains is their local delivery to the cache
//!   (the listener task, then the cache's follower task: at once on an idle machine, a few ms
//!   when the CPUs are saturated — measured by `tests/cluster.rs`). A bound that holds under
//!   any load needs the other nodes to acknowledge (not done yet).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::{broadcast, oneshot};

/// The database clock in milliseconds since the epoch.
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// The notification channel.
const CHANNEL: &str = "kms_bridge";

/// PostgreSQL refuses payloads of 8000 bytes or more; above this a write announces `Flush`.
const MAX_PAYLOAD: usize = 7900;

/// How long a writer waits for its own notification to come back.
const ECHO_WAIT: Duration = Duration::from_secs(2);

/// Connection settings (from the `database*` settings).
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub url: String,
    pub pool_size: u32,
    /// Per statement, enforced by the server.
    pub statement_timeout: Duration,
    /// Waiting for a pooled connection (or a new one).
    pub acquire_timeout: Duration,
    /// Attempts at start-up before giving up (with backoff from 100 ms to 5 s).
    pub connect_retries: u32,
}

type Echoes = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

pub struct PgStore {
    pool: PgPool,
    /// Identifies this process's notifications.
    origin: String,
    seq: AtomicU64,
    events: broadcast::Sender<Invalidation>,
    coherent: Arc<AtomicBool>,
    echoes: Echoes,
    listener: tokio::task::JoinHandle<()>,
}

/// A writer's claim on its own notification's return.
pub struct Echo {
    seq: u64,
    rx: oneshot::Receiver<()>,
    echoes: Echoes,
}

impl Drop for Echo {
    fn drop(&mut self) {
        lock(&self.echoes).remove(&self.seq);
    }
}

fn lock(e: &Echoes) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
    // Single inserts and removals: a panic elsewhere cannot leave the map inconsistent.
    e.lock().unwrap_or_else(|p| p.into_inner())
}

impl PgStore {
    /// Connect (retrying while the database is not reachable), migrate, start listening.
    pub async fn open(opts: &PgOptions) -> Result<PgStore> {
        let timeout_ms = opts.statement_timeout.as_millis().to_string();
        let connect = PgConnectOptions::from_str(&opts.url)?
            .application_name("kms-bridge")
            .options([("statement_timeout", timeout_ms.as_str())]);
        let pool_opts = PgPoolOptions::new()
            .max_connections(opts.pool_size.max(1))
            .acquire_timeout(opts.acquire_timeout);
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        let pool = loop {
            attempt += 1;
            match pool_opts.clone().connect_with(connect.clone()).await {
                Ok(pool) => break pool,
                Err(e) if attempt < opts.connect_retries.max(1) => {
                    tracing::warn!(attempt, error = %e, "database not reachable yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e.into()),
            }
        };
        sqlx::migrate!("./src/store/migrations/postgres")
            .run(&pool)
            .await?;

        let origin = uuid::Uuid::new_v4().simple().to_string();
        let (events, _) = broadcast::channel(4096);
        let coherent = Arc::new(AtomicBool::new(false));
        let echoes: Echoes = Arc::default();
        // The listener holds a connection for good: give it its own pool of one.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(opts.acquire_timeout)
            .connect_lazy_with(connect.clone());
        let mut listener = PgListener::connect_with(&listen_pool).await?;
        listener.listen(CHANNEL).await?;
        coherent.store(true, Ordering::SeqCst);
        let task = tokio::spawn(listen(
            listen_pool,
            listener,
            origin.clone(),
            events.clone(),
            coherent.clone(),
            echoes.clone(),
        ));
        Ok(PgStore {
            pool,
            origin,
            seq: AtomicU64::new(1),
            events,
            coherent,
            echoes,
            listener: task,
        })
    }

    async fn publish(&self, tx: &mut Tx<'_>, changes: &[Invalidation]) -> Result<Option<Echo>> {
        if changes.is_empty() {
            return Ok(None);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut payload = format!("o {} {seq}", self.origin);
        for c in changes {
            payload.push('\n');
            payload.push_str(&c.encode());
        }
        if payload.len() > MAX_PAYLOAD {
            payload = format!("o {} {seq}\n*", self.origin);
        }
        let (done, rx) = oneshot::channel();
        lock(&self.echoes).insert(seq, done);
        let echo = Echo {
            seq,
            rx,
            echoes: self.echoes.clone(),
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&mut **tx)
            .await?;
        Ok(Some(echo))
    }

    /// After a commit: wait until the write's notification has come back (bounded), so that
    /// the other nodes have it too when the caller answers.
    async fn settle(&self, echo: Option<Echo>) {
        let Some(mut echo) = echo else { return };
        if !self.coherent.load(Ordering::SeqCst) {
            return; // nobody's cache is trusted until the listeners are back
        }
        if tokio::time::timeout(ECHO_WAIT, &mut echo.rx).await.is_err() {
            tracing::warn!("own invalidation did not come back in time");
        }
    }

    fn subscription(&self) -> Option<broadcast::Receiver<Invalidation>> {
        Some(self.events.subscribe())
    }

    fn coherent(&self) -> bool {
        self.coherent.load(Ordering::SeqCst)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// The listener task: other nodes' notifications → `events`; this node's → its echo waiters.
async fn listen(
    pool: PgPool,
    mut listener: PgListener,
    origin: String,
    events: broadcast::Sender<Invalidation>,
    coherent: Arc<AtomicBool>,
    echoes: Echoes,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                let mut lines = n.payload().lines();
                let head: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
                match head.as_slice() {
                    ["o", o, seq] if *o == origin => {
                        let waiter = seq.parse().ok().and_then(|s| lock(&echoes).remove(&s));
                        if let Some(done) = waiter {
                            let _ = done.send(());
                        }
                    }
                    ["o", _, _] => {
                        for line in lines {
                            let _ = events.send(Invalidation::decode(line));
                        }
                    }
                    _ => {
                        let _ = events.send(Invalidation::Flush);
                    }
                }
            }
            Ok(None) => {
                // The connection was lost and has already been re-established (and LISTEN
                // re-issued); what was sent in between is lost.
                tracing::warn!("invalidation listener reconnected; flushing caches");
                let _ = events.send(Invalidation::Flush);
            }
            Err(e) => {
                // Not listening: caches must not be trusted until we are again.
                coherent.store(false, Ordering::SeqCst);
                let _ = events.send(Invalidation::Flush);
                lock(&echoes).clear();
                tracing::warn!(error = %e, "invalidation listener down; caches bypassed");
                // A fresh listener on a fresh connection (the old one may be half-closed).
                loop {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    let fresh = match PgListener::connect_with(&pool).await {
                        Ok(mut l) => l.listen(CHANNEL).await.map(|()| l),
                        Err(e) => Err(e),
                    };
                    if let Ok(l) = fresh {
                        listener = l;
                        backoff = Duration::from_millis(50);
                        coherent.store(true, Ordering::SeqCst);
                        let _ = events.send(Invalidation::Flush);
                        tracing::info!("invalidation listener listening again");
                        break;
                    }
                }
            }
        }
    }
}

super::sql::sql_store!(PgStore, sqlx::Postgres, PgRow);
