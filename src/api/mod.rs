//! The protocol layer: AWS JSON 1.1 over `POST /` with `X-Amz-Target: TrentService.<Op>`.

pub mod error;
mod ops;
pub mod wire;

pub use error::{ApiError, ProtocolError};
pub use ops::Operation;

use std::sync::Arc;

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use zeroize::Zeroize;

use crate::auth::sigv4::RequestParts;
use crate::auth::Authenticator;
use crate::kms::{Kms, RequestContext};

/// What every request handler shares.
pub struct AppState {
    pub kms: Kms,
    pub auth: Authenticator,
    pub max_body_bytes: usize,
    /// True when the listener terminates TLS (the `aws:SecureTransport` condition key).
    pub secure_transport: bool,
}

/// The router; serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// The parts of one HTTP request the handler needs.
struct Incoming {
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let incoming = Incoming {
        peer,
        method,
        uri,
        headers,
    };
    match serve(&state, &incoming, body, &request_id).await {
        Ok(resp) => resp,
        Err(e) => error::error_response(&e, &request_id),
    }
}

async fn serve(
    state: &AppState,
    req: &Incoming,
    body: Body,
    request_id: &str,
) -> Result<Response, ApiError> {
    let target = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op = Operation::from_target(target)
        .ok_or_else(|| ProtocolError::UnknownOperation(format!("Unknown operation {target:?}")))?;
    let body = read_body(body, state.max_body_bytes).await?;
    let header_pairs: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
        .collect();
    let parts = RequestParts {
        method: req.method.as_str(),
        path: req.uri.path(),
        query: req.uri.query().unwrap_or(""),
        headers: &header_pairs,
        body: &body,
    };
    let now_ms = state.kms.clock().now_millis();
    let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .map_err(|e| ApiError::Auth(crate::auth::AuthError::Backend(e.to_string())))?;
    let caller = state.auth.authenticate(&parts, now).await?;
    let ctx = RequestContext {
        region: caller.region,
        account: caller.principal.account.clone(),
        access_key_id: caller.access_key_id,
        request_id: request_id.to_owned(),
        principal: caller.principal,
        identity_policies: caller.identity_policies,
        source_ip: Some(req.peer.ip().to_string()),
        secure_transport: state.secure_transport,
    };
    tracing::debug!(request_id, operation = op.name(), principal = %ctx.principal.arn, "request");
    let out = ops::dispatch(&state.kms, &ctx, op, &body).await?;
    Ok(success(out, request_id))
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ProtocolError::TooLarge(
            format!("The request body is larger than {limit} bytes"),
        )
        .into()),
        Err(_) => {
            Err(ProtocolError::Serialization("Could not read the request body".into()).into())
        }
    }
}

fn success(out: Option<Value>, request_id: &str) -> Response {
    let body = match out {
        Some(mut v) => {
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            scrub(&mut v);
            bytes
        }
        None => Vec::new(),
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// Zeroize secret members of a response value once it has been encoded.
fn scrub(v: &mut Value) {
    if let Value::Object(m) = v {
        if let Some(Value::String(s)) = m.get_mut("Plaintext") {
            s.zeroize();
        }
    }
}
