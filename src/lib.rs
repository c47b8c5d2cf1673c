//! kms-bridge: the AWS KMS API served from keys held in a PKCS#11 token.
//!
//! Layers (each the only one that touches its concern):
//! `api` (HTTP/JSON protocol) → `auth` (SigV4, principals) → `kms` (the domain, with
//! authorization in `kms::authz` using `policy`) → `token` (every cryptoki call) and `store`
//! (metadata, never key material).

pub mod admin;
pub mod api;
pub mod auth;
pub mod config;
pub mod kms;
pub mod model;
pub mod policy;
pub mod store;
pub mod token;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use crate::auth::{Authenticator, Principals};
use crate::config::Settings;
use crate::kms::{Kms, SystemClock};
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
    };
    let token = tokio::task::spawn_blocking(move || Token::open(&token_cfg))
        .await
        .context("opening the token")?
        .context("opening the token")?;
    let store = SqliteStore::open(&settings.database)
        .await
        .with_context(|| format!("opening database {}", settings.database.display()))?;
    Ok(Backends {
        token,
        store: Arc::new(store),
    })
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

/// Open the token and the store, reconcile them, and serve until `shutdown` resolves.
pub async fn serve(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Backends { token, store } = open_backends(&settings).await?;
    tracing::info!(label = token.label(), capabilities = ?token.capabilities(), "token logged in");
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
    let kms = Kms::new(token, store, Arc::new(SystemClock));
    let report = kms
        .reconcile()
        .await
        .context("reconciling store and token")?;
    tracing::info!(?report, "reconciled metadata store with token");

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(api::AppState {
        kms,
        auth: Authenticator::new(principals, settings.regions.clone()),
        max_body_bytes: settings.max_body_bytes,
        secure_transport: false,
    });
    // Tests and scripts read this line to learn the bound address.
    println!("kms-bridge listening on http://{addr}");
    axum::serve(
        listener,
        api::router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving")?;
    tracing::info!("shut down");
    Ok(())
}
