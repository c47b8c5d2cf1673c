//! Configuration: defaults, then an optional TOML file, then `KMS_BRIDGE_*` environment
//! variables (nested keys with `__`, e.g. `KMS_BRIDGE_TOKEN__LABEL`). Validated once at
//! start-up; a bad value stops the process with a clear message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use secrecy::SecretString;
use serde::Deserialize;

pub use crate::kms::quota::QuotaSettings;

#[derive(Debug, Deserialize)]
struct Raw {
    listen: String,
    data_dir: PathBuf,
    database: Option<String>,
    database_pool_size: u32,
    database_statement_timeout_ms: u64,
    database_acquire_timeout_ms: u64,
    database_connect_retries: u32,
    node_id: Option<String>,
    account_id: String,
    regions: Vec<String>,
    #[serde(default)]
    service_principals: Vec<String>,
    max_body_bytes: usize,
    max_connections: usize,
    header_read_timeout_ms: u64,
    body_read_timeout_ms: u64,
    bootstrap_credentials: Option<PathBuf>,
    metrics_listen: Option<String>,
    allow_insecure_http: bool,
    scheduler_interval_seconds: u64,
    store_cache_ttl_ms: u64,
    debug_clock: bool,
    console: bool,
    audit: RawAudit,
    #[serde(default)]
    quotas: QuotaSettings,
    tls: Option<RawTls>,
    token: RawToken,
}

#[derive(Debug, Deserialize)]
struct RawAudit {
    dir: Option<PathBuf>,
    max_file_bytes: u64,
}

#[derive(Debug, Deserialize)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct RawToken {
    module: PathBuf,
    label: String,
    threads: Option<usize>,
    working_copies: usize,
    keygen_threads: usize,
    keygen_queue: usize,
    pin_env: Option<String>,
    pin_file: Option<PathBuf>,
}

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    /// This process's name among the nodes sharing a database (leases, logs).
    pub node_id: String,
    pub account_id: String,
    pub regions: Vec<String>,
    /// Principals standing for AWS services (`<service>=<principal ARN>`): their requests
    /// carry `kms:ViaService` (AWS managed keys; see `kms::managed`).
    pub service_principals: crate::kms::ViaServices,
    pub max_body_bytes: usize,
    /// Open client connections at most; more are closed at once.
    pub max_connections: usize,
    /// A request's headers must arrive within this; its body within `body_read_timeout`.
    pub header_read_timeout: std::time::Duration,
    pub body_read_timeout: std::time::Duration,
    /// Sourceable `AWS_ACCESS_KEY_ID=…`/`AWS_SECRET_ACCESS_KEY=…` file: the dev admin's key.
    pub bootstrap_credentials: Option<PathBuf>,
    /// Listener for /metrics, /healthz and /readyz (none = not served).
    pub metrics_listen: Option<SocketAddr>,
    /// How often due rotations and deletions are looked for.
    pub scheduler_interval_seconds: u64,
    /// How long a key, alias or import record read from the store may be served from memory
    /// (writes through this process invalidate at once; the bound is for writes by other
    /// processes sharing the database). 0 = no cache.
    pub store_cache_ttl: std::time::Duration,
    /// Testing only: `POST /debug/clock/advance?seconds=N` on the metrics listener moves the
    /// key-lifecycle clock forward and runs the scheduler.
    pub debug_clock: bool,
    /// The web console at `/console/` on the API listener (`console = false` turns it off).
    pub console: bool,
    pub audit_dir: PathBuf,
    pub audit_max_file_bytes: u64,
    pub quotas: QuotaSettings,
    pub tls: Option<TlsSettings>,
    pub token: TokenSettings,
}

/// The metadata store: a SQLite file (one node) or a PostgreSQL database (several nodes).
#[derive(Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(crate::store::postgres::PgOptions),
}

impl Database {
    /// For messages: the file, or the database URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(p) => p.display().to_string(),
            Database::Postgres(o) => redact_url(&o.url),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Database::Postgres(o) => f
                .debug_struct("Postgres")
                .field("url", &redact_url(&o.url))
                .field("pool_size", &o.pool_size)
                .field("statement_timeout", &o.statement_timeout)
                .field("acquire_timeout", &o.acquire_timeout)
                .field("connect_retries", &o.connect_retries)
                .finish(),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; query parameters dropped
/// (they may hold a password too).
fn redact_url(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &base[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &base[..s + 3], &base[at..])
        }
        _ => base.to_string(),
    }
}

/// TLS for the API listener: certificate chain and key (PEM); with `client_ca`, clients must
/// present a certificate signed by it (mTLS).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

pub struct TokenSettings {
    pub module: PathBuf,
    pub label: String,
    /// Threads making token calls (default: the number of CPUs, at least 2). Raise it for a
    /// network HSM, whose calls wait on the network rather than on a CPU.
    pub threads: usize,
    /// Most session-object working copies of keys kept in the token (0 = none).
    pub working_copies: usize,
    /// Key pair generation's own threads and queue (`token.keygen_threads`, `keygen_queue`).
    pub keygen: crate::token::KeygenLane,
    /// The user PIN: never logged (`Debug` is redacted).
    pub pin: SecretString,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("module", &self.module)
            .field("label", &self.label)
            .field("threads", &self.threads)
            .field("working_copies", &self.working_copies)
            .field("keygen", &self.keygen)
            .field("pin", &"<redacted>")
            .finish()
    }
}

pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

impl Settings {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut b = config::Config::builder()
            .set_default("listen", "127.0.0.1:4599")?
            .set_default("data_dir", "data")?
            .set_default("account_id", "111122223333")?
            .set_default("regions", vec!["us-east-1"])?
            .set_default("max_body_bytes", 262_144)?
            .set_default("max_connections", 1024)?
            .set_default("header_read_timeout_ms", 10_000)?
            .set_default("body_read_timeout_ms", 30_000)?
            .set_default("allow_insecure_http", false)?
            .set_default("scheduler_interval_seconds", 60)?
            .set_default("store_cache_ttl_ms", 5000)?
            .set_default("database_pool_size", 16)?
            .set_default("database_statement_timeout_ms", 5000)?
            .set_default("database_acquire_timeout_ms", 5000)?
            .set_default("database_connect_retries", 20)?
            .set_default("debug_clock", false)?
            .set_default("console", true)?
            .set_default("audit.max_file_bytes", 64 * 1024 * 1024)?
            .set_default("token.module", DEFAULT_MODULE)?
            .set_default("token.label", "kms-bridge")?
            .set_default("token.working_copies", 16_384)?
            .set_default("token.keygen_threads", 1)?
            .set_default("token.keygen_queue", 8)?;
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).required(true));
        }
        b = b.add_source(
            config::Environment::with_prefix("KMS_BRIDGE")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("regions")
                .with_list_parse_key("service_principals")
                .try_parsing(true),
        );
        let raw: Raw = b
            .build()
            .context("reading configuration")?
            .try_deserialize()
            .context("invalid configuration")?;
        Settings::validate(raw)
    }

    fn validate(raw: Raw) -> anyhow::Result<Settings> {
        let listen: SocketAddr = raw.listen.parse().with_context(|| {
            format!(
                "listen: {:?} is not an address like 127.0.0.1:4599",
                raw.listen
            )
        })?;
        if raw.account_id.len() != 12 || !raw.account_id.bytes().all(|b| b.is_ascii_digit()) {
            bail!("account_id: {:?} must be 12 digits", raw.account_id);
        }
        if raw.regions.is_empty() {
            bail!("regions: at least one region is required");
        }
        for r in &raw.regions {
            if !valid_region(r) {
                bail!("regions: {r:?} is not a region name like us-east-1");
            }
        }
        let service_principals = crate::kms::ViaServices::parse(&raw.service_principals)
            .map_err(|e| anyhow::anyhow!("service_principals: {e}"))?;
        if raw.max_connections == 0 {
            bail!("max_connections: must be at least 1");
        }
        if raw.header_read_timeout_ms == 0 || raw.body_read_timeout_ms == 0 {
            bail!("header_read_timeout_ms, body_read_timeout_ms: must be positive");
        }
        if raw.max_body_bytes < 16_384 {
            bail!("max_body_bytes: must be at least 16384");
        }
        if raw.token.label.is_empty() || raw.token.label.len() > 32 {
            bail!("token.label: must be 1 to 32 characters");
        }
        if !raw.token.module.is_file() {
            bail!(
                "token.module: PKCS#11 module {} does not exist (install softhsm2 or set KMS_BRIDGE_TOKEN__MODULE)",
                raw.token.module.display()
            );
        }
        let tls = match raw.tls {
            Some(t) => {
                for (what, p) in [
                    ("tls.cert", Some(&t.cert)),
                    ("tls.key", Some(&t.key)),
                    ("tls.client_ca", t.client_ca.as_ref()),
                ] {
                    if let Some(p) = p {
                        if !p.is_file() {
                            bail!("{what}: {} does not exist", p.display());
                        }
                    }
                }
                Some(TlsSettings {
                    cert: t.cert,
                    key: t.key,
                    client_ca: t.client_ca,
                })
            }
            None => None,
        };
        if tls.is_none() && !listen.ip().is_loopback() && !raw.allow_insecure_http {
            bail!(
                "listen: {listen} is not a loopback address; configure tls (tls.cert, tls.key) or set allow_insecure_http = true"
            );
        }
        let metrics_listen = match raw.metrics_listen.as_deref() {
            None | Some("") => None,
            Some(m) => Some(
                m.parse::<SocketAddr>()
                    .with_context(|| format!("metrics_listen: {m:?} is not an address"))?,
            ),
        };
        if raw.debug_clock && !metrics_listen.is_some_and(|m| m.ip().is_loopback()) {
            bail!("debug_clock: only for tests, and only with a loopback metrics_listen");
        }
        for group in crate::kms::quota::QuotaGroup::ALL {
            let (name, v) = (group.name(), raw.quotas.rate(group));
            if !(v >= 0.0 && v.is_finite()) {
                bail!("quotas.{name}: {v} must be a non-negative number of requests per second");
            }
        }
        if raw.store_cache_ttl_ms > 3_600_000 {
            bail!("store_cache_ttl_ms: at most 3600000 (one hour)");
        }
        if raw.audit.max_file_bytes < 4096 {
            bail!("audit.max_file_bytes: must be at least 4096");
        }
        let audit_dir = raw
            .audit
            .dir
            .clone()
            .unwrap_or_else(|| raw.data_dir.join("audit"));
        let threads = match raw.token.threads {
            Some(n) if (1..=1024).contains(&n) => n,
            Some(n) => bail!("token.threads: {n} must be between 1 and 1024"),
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
        };
        if !(1..=64).contains(&raw.token.keygen_threads) {
            bail!(
                "token.keygen_threads: {} must be between 1 and 64",
                raw.token.keygen_threads
            );
        }
        if raw.token.keygen_queue > 4096 {
            bail!(
                "token.keygen_queue: {} must be at most 4096",
                raw.token.keygen_queue
            );
        }
        let pin = read_pin(&raw.token)?;
        let database = match raw.database.as_deref() {
            None | Some("") => Database::Sqlite(raw.data_dir.join("kms-bridge.db")),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                if !(1..=1000).contains(&raw.database_pool_size) {
                    bail!("database_pool_size: must be between 1 and 1000");
                }
                if raw.database_statement_timeout_ms == 0 || raw.database_acquire_timeout_ms == 0 {
                    bail!("database_statement_timeout_ms, database_acquire_timeout_ms: must be positive");
                }
                Database::Postgres(crate::store::postgres::PgOptions {
                    url: url.to_string(),
                    pool_size: raw.database_pool_size,
                    statement_timeout: std::time::Duration::from_millis(
                        raw.database_statement_timeout_ms,
                    ),
                    acquire_timeout: std::time::Duration::from_millis(
                        raw.database_acquire_timeout_ms,
                    ),
                    connect_retries: raw.database_connect_retries.max(1),
                })
            }
            Some(path) => Database::Sqlite(PathBuf::from(path)),
        };
        let node_id = match raw.node_id {
            Some(n) if !n.is_empty() => n,
            _ => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "node".into());
                format!("{host}:{}", std::process::id())
            }
        };
        Ok(Settings {
            listen,
            data_dir: raw.data_dir,
            database,
            node_id,
            account_id: raw.account_id,
            regions: raw.regions,
            service_principals,
            max_body_bytes: raw.max_body_bytes,
            max_connections: raw.max_connections,
            header_read_timeout: std::time::Duration::from_millis(raw.header_read_timeout_ms),
            body_read_timeout: std::time::Duration::from_millis(raw.body_read_timeout_ms),
            bootstrap_credentials: raw.bootstrap_credentials,
            metrics_listen,
            scheduler_interval_seconds: raw.scheduler_interval_seconds.max(1),
            store_cache_ttl: std::time::Duration::from_millis(raw.store_cache_ttl_ms),
            debug_clock: raw.debug_clock,
            console: raw.console,
            audit_dir,
            audit_max_file_bytes: raw.audit.max_file_bytes,
            quotas: raw.quotas,
            tls,
            token: TokenSettings {
                module: raw.token.module,
                label: raw.token.label,
                threads,
                working_copies: raw.token.working_copies,
                keygen: crate::token::KeygenLane {
                    threads: raw.token.keygen_threads,
                    queue: raw.token.keygen_queue,
                },
                pin,
            },
        })
    }
}

fn read_pin(t: &RawToken) -> anyhow::Result<SecretString> {
    if let Some(path) = &t.pin_file {
        let mut s = std::fs::read_to_string(path)
            .with_context(|| format!("token.pin_file: cannot read {}", path.display()))?;
        let trimmed_len = s.trim_end_matches(['\r', '\n']).len();
        s.truncate(trimmed_len);
        if s.is_empty() {
            bail!("token.pin_file: {} is empty", path.display());
        }
        return Ok(SecretString::from(s));
    }
    let var = t.pin_env.as_deref().unwrap_or("KMS_BRIDGE_TOKEN_PIN");
    match std::env::var(var) {
        Ok(s) if !s.is_empty() => Ok(SecretString::from(s)),
        _ => bail!("token PIN: set token.pin_file or the environment variable {var}"),
    }
}

/// `^([a-z]+-){2,3}\d+$`, as the service model's region pattern.
fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    (3..=4).contains(&parts.len())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::valid_region;

    #[test]
    fn region_names() {
        for ok in ["us-east-1", "eu-central-2", "us-gov-west-1"] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in ["", "us", "us-east", "US-east-1", "us-east-x", "us--1"] {
            assert!(!valid_region(bad), "{bad}");
        }
    }
}
