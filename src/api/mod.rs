//! The protocol layer: AWS JSON 1.1 over `POST /` with `X-Amz-Target: TrentService.<Op>`.

pub mod error;
mod ops;
pub mod wire;

pub use error::{ApiError, ProtocolError};
pub use ops::Operation;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use zeroize::Zeroize;

use crate::auth;
use crate::kms::{Kms, RequestContext};

/// What every request handler shares.
pub struct AppState {
    pub kms: Kms,
    pub account_id: String,
    pub regions: Vec<String>,
    pub max_body_bytes: usize,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

async fn handle(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    match serve(&state, &headers, body, &request_id).await {
        Ok(resp) => resp,
        Err(e) => error::error_response(&e, &request_id),
    }
}

async fn serve(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Result<Response, ApiError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op = Operation::from_target(target)
        .ok_or_else(|| ProtocolError::UnknownOperation(format!("Unknown operation {target:?}")))?;
    let authz = headers.get("authorization").and_then(|v| v.to_str().ok());
    let caller = auth::parse_authorization(authz, &state.regions)?;
    let body = read_body(body, state.max_body_bytes).await?;
    let ctx = RequestContext {
        region: caller.region,
        account: state.account_id.clone(),
        access_key_id: caller.access_key_id,
        request_id: request_id.to_owned(),
    };
    tracing::debug!(request_id, operation = op.name(), access_key_id = %ctx.access_key_id, "request");
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
