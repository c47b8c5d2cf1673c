//! kms-bridge: the AWS KMS API served from keys held in a PKCS#11 token.
//!
//! Layers (each the only one that touches its concern):
//! `api` (HTTP/JSON protocol) → `auth` (SigV4, principals) → `kms` (the domain, with
//! authorization in `kms::authz` using `policy`) → `token` (every cryptoki call) and `store`
//! (metadata, never key material).
//! `console` is the web console: HTML over the same path as the API after authentication.
//! `bench` is a client of the API (the load generator) beside the token's raw ceiling.

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod config;
pub mod console;
pub mod failpoint;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod fuzz;
pub mod kms;
pub mod metrics;
pub mod model;
pub mod operations;
pub mod policy;
pub mod store;
pub mod texts;
pub mod token;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::auth::{Authenticator, Principals};
use crate::config::{Database, Settings};
use crate::kms::sealed::TokenSealer;
use crate::kms::{Kms, OffsetClock};
use crate::store::cached::CachedStore;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::MetadataStore;
use crate::token::{Token, TokenConfig};

/// The token and the store, opened and ready.
pub struct Backends {
    pub token: Token,
    pub store: Arc<dyn MetadataStore>,
}

/// Open the token (logged in) and the metadata store named by the settings.
pub async fn open_backends(settings: &Settings) -> anyhow::Result<Backends> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let token_cfg = TokenConfig {
        module: settings.token.module.clone(),
        label: settings.token.label.clone(),
        pin: settings.token.pin.clone(),
        threads: settings.token.threads,
        working_copies: settings.token.working_copies,
        keygen: settings.token.keygen,
    };
    // Several nodes share the token: see `token::shared_with_other_processes`.
    crate::token::shared_with_other_processes(matches!(settings.database, Database::Postgres(_)));
    let token = tokio::task::spawn_blocking(move || Token::open(&token_cfg))
        .await
        .context("opening the token")?
        .context("opening the token")?;
    let what = || format!("opening database {}", settings.database.describe());
    // Key rows are sealed and verified with the token (`kms::sealed`).
    let sealer: Arc<dyn crate::store::RowSealer> = Arc::new(
        TokenSealer::open(token.clone())
            .await
            .context("opening the row MAC key")?,
    );
    let store: Arc<dyn MetadataStore> = match &settings.database {
        Database::Sqlite(path) => Arc::new(
            CachedStore::new(
                SqliteStore::open(path).await.with_context(what)?,
                settings.store_cache_ttl,
            )
            .with_sealer(sealer),
        ),
        Database::Postgres(opts) => Arc::new(
            CachedStore::new(
                PgStore::open(opts).await.with_context(what)?,
                settings.store_cache_ttl,
            )
            .with_sealer(sealer),
        ),
    };
    Ok(Backends { token, store })
}

/// Headers must arrive within `header_timeout` (slow clients do not hold connections).
pub(crate) fn bound_reads(
    http: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    header_timeout: std::time::Duration,
) {
    http.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
}

/// Read `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from a sourceable env file.
pub fn read_credentials_file(path: &Path) -> anyhow::Result<(String, Zeroizing<String>)> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading credentials file {}", path.display()))?,
    );
    let mut id = None;
    let mut secret = None;
    for line in text.lines() {
        let line = line.trim().trim_start_matches("export ");
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        match k.trim() {
            "AWS_ACCESS_KEY_ID" => id = Some(v.to_owned()),
            "AWS_SECRET_ACCESS_KEY" => secret = Some(Zeroizing::new(v.to_owned())),
            _ => {}
        }
    }
    match (id, secret) {
        (Some(i), Some(s)) if !i.is_empty() && !s.is_empty() => Ok((i, s)),
        _ => bail!(
            "{} must set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            path.display()
        ),
    }
}

/// Build the rustls server configuration (with client-certificate verification for mTLS).
fn tls_config(tls: &crate::config::TlsSettings) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("reading {}", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", tls.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key)
        .with_context(|| format!("reading the private key {}", tls.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading {}", ca.display()))?
            {
                roots
                    .add(c.with_context(|| format!("parsing {}", ca.display()))?)
                    .context("adding the client CA")?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Open the token and the store, reconcile them, and serve until `shutdown` resolves.
pub async fn serve(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    metrics::init();
    let Backends { token, store } = open_backends(&settings).await?;
    tracing::info!(label = token.label(), capabilities = ?token.capabilities(), "token logged in");
    // One scan of the token before anything uses it: it fills the handle cache, so no later
    // call searches the token (a search is linear in the number of objects).
    let started = std::time::Instant::now();
    let objects = token.load_objects().await.context("scanning the token")?;
    tracing::info!(objects = objects.len(), took = ?started.elapsed(), "token objects loaded");
    let principals = Arc::new(
        Principals::open(token.clone(), store.clone())
            .await
            .context("opening the credential store")?,
    );
    if let Some(path) = &settings.bootstrap_credentials {
        let (id, secret) = read_credentials_file(path)?;
        let arn = principals
            .bootstrap_admin(&settings.account_id, "dev-admin", &id, secret)
            .await
            .context("bootstrapping the dev admin")?;
        tracing::info!(%arn, access_key_id = %id, "bootstrap administrator ready");
    }
    let anchor = audit::Anchor::open(token.clone(), &settings.audit_dir)
        .await
        .context("opening the audit head anchor")?;
    let audit = audit::AuditLog::open_with(
        settings.audit_dir.clone(),
        settings.audit_max_file_bytes,
        settings.audit_prewrite_bytes,
        Some(anchor),
    )
    .with_context(|| {
        format!(
            "opening the audit trail in {}",
            settings.audit_dir.display()
        )
    })?;
    let clock = Arc::new(OffsetClock::default());
    let scheduler_store = store.clone();
    let kms = Kms::new(
        token,
        store,
        clock.clone(),
        settings.quotas.clone(),
        settings.token.module.clone(),
    )
    .with_regions(settings.regions.clone())
    .with_service_principals(settings.service_principals.clone());
    // With a shared database another node may be creating a key right now: only intents old
    // enough to be abandoned are completed or removed.
    let grace_ms = match settings.database {
        Database::Sqlite(_) => 0,
        Database::Postgres(_) => 120_000,
    };
    let report = kms
        .reconcile(objects, grace_ms)
        .await
        .context("reconciling store and token")?;
    tracing::info!(?report, "reconciled metadata store with token");
    kms.restore_key_stores()
        .await
        .context("reconnecting custom key stores")?;

    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("binding {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = Arc::new(api::AppState {
        kms,
        auth: Authenticator::new(principals, settings.regions.clone()),
        audit,
        max_body_bytes: settings.max_body_bytes,
        body_read_timeout: settings.body_read_timeout,
        secure_transport: settings.tls.is_some(),
        debug_clock: settings.debug_clock.then_some(clock),
    });
    {
        let state = state.clone();
        let every = std::time::Duration::from_secs(settings.scheduler_interval_seconds);
        let lease_ms = (every.as_millis() as i64).saturating_mul(3).max(10_000);
        let node_id = settings.node_id.clone();
        let store = scheduler_store;
        tokio::spawn(async move {
            let mut held = 0;
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // One node of those sharing the database runs the jobs: the holder of the
                // lease, renewed every tick and taken over by another node when it lapses.
                match store.try_lease("scheduler", &node_id, lease_ms).await {
                    Ok(Some(fence)) => {
                        if fence != held {
                            tracing::info!(fence, node = %node_id, "scheduler lease taken");
                            held = fence;
                        }
                    }
                    Ok(None) => {
                        held = 0;
                        continue;
                    }
                    Err(e) => {
                        held = 0;
                        tracing::warn!(error = %e, "scheduler lease not renewed; skipping run");
                        continue;
                    }
                }
                let report = state.kms.run_scheduled_jobs(&state.audit).await;
                if report != Default::default() {
                    tracing::info!(?report, "scheduled jobs ran");
                }
            }
        });
    }

    {
        // GetKeyLastUsage: noted uses go to the store once a second.
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                state.kms.flush_usage().await;
            }
        });
    }

    let handle = axum_server::Handle::new();
    if let Some(m) = settings.metrics_listen {
        let ml = tokio::net::TcpListener::bind(m)
            .await
            .with_context(|| format!("binding metrics listener {m}"))?;
        // Scripts and tests read this line to learn the metrics address.
        println!("kms-bridge metrics on http://{}", ml.local_addr()?);
        let router = api::ops_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(ml, router).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let audit_log = state.audit.clone();
    let mut router = api::router(state.clone());
    if settings.console {
        router = router.merge(console::router(state).context("starting the console")?);
    }
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            handle.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
        });
    }
    let limits = api::limits::ConnectionLimit::new(settings.max_connections);
    match &settings.tls {
        Some(tls) => {
            let cfg =
                axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config(tls)?));
            // Tests and scripts read this line to learn the bound address.
            println!("kms-bridge listening on https://{addr}");
            let mut server = axum_server::from_tcp_rustls(listener, cfg)
                .map(|tls| tls.acceptor(limits.clone()))
                .handle(handle);
            bound_reads(server.http_builder(), settings.header_read_timeout);
            server.serve(app).await.context("serving")?;
        }
        None => {
            println!("kms-bridge listening on http://{addr}");
            let mut server = axum_server::from_tcp(listener)
                .acceptor(limits)
                .handle(handle);
            bound_reads(server.http_builder(), settings.header_read_timeout);
            server.serve(app).await.context("serving")?;
        }
    }
    // The audit writer fsyncs every batch before acknowledging it, so nothing is pending here;
    // it is stopped (its last head anchored) before the token goes away. Token sessions close
    // when the last handle drops.
    audit_log.close().await;
    tracing::info!("shut down");
    Ok(())
}
