//! kms-bridge: the AWS KMS API served from keys held in a PKCS#11 token.
//!
//! Layers (each the only one that touches its concern):
//! `api` (HTTP/JSON protocol) → `auth` (who is calling) → `kms` (the domain) →
//! `token` (every cryptoki call) and `store` (metadata, never key material).
//! `bench` is a client of the API (the load generator) beside the token's raw ceiling.

pub mod api;
pub mod auth;
pub mod bench;
pub mod config;
pub mod kms;
pub mod model;
pub mod store;
pub mod token;

use std::sync::Arc;

use anyhow::Context;

use crate::config::Settings;
use crate::kms::{Kms, SystemClock};
use crate::store::sqlite::SqliteStore;
use crate::token::{Token, TokenConfig};

/// Open the token and the store, reconcile them, and serve until `shutdown` resolves.
pub async fn serve(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
    tracing::info!(label = token.label(), "token logged in");
    let store = SqliteStore::open(&settings.database)
        .await
        .with_context(|| format!("opening database {}", settings.database.display()))?;
    let kms = Kms::new(token, Arc::new(store), Arc::new(SystemClock));
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
        account_id: settings.account_id.clone(),
        regions: settings.regions.clone(),
        max_body_bytes: settings.max_body_bytes,
    });
    // Tests and scripts read this line to learn the bound address.
    println!("kms-bridge listening on http://{addr}");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")?;
    tracing::info!("shut down");
    Ok(())
}
