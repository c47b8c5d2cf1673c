//! The protocol layer: AWS JSON 1.1 over `POST /` with `X-Amz-Target: TrentService.<Op>`.

mod answer;
pub use answer::Reply;
pub mod error;
mod json;
pub mod limits;
pub(crate) mod model;
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
use zeroize::Zeroizing;

use crate::audit::{AuditLog, RecordBuilder};
use crate::auth::sigv4::RequestParts;
use crate::auth::{Authenticator, Caller, Principal};
use crate::kms::{Kms, RequestContext};

/// What every request handler shares.
pub struct AppState {
    pub kms: Kms,
    pub auth: Authenticator,
    pub audit: AuditLog,
    pub max_body_bytes: usize,
    /// The whole body must arrive within this.
    pub body_read_timeout: std::time::Duration,
    /// True when the listener terminates TLS (the `aws:SecureTransport` condition key).
    pub secure_transport: bool,
    /// Testing only (config `debug_clock`): the lifecycle clock the debug endpoint may move.
    pub debug_clock: Option<Arc<crate::kms::OffsetClock>>,
}

/// The name of every operation the server answers (tests check each one is authorized).
pub fn operation_names() -> Vec<&'static str> {
    ops::Operation::ALL.iter().map(|o| o.name()).collect()
}

/// The router; serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// The metrics listener: `/metrics`, `/healthz` (alive) and `/readyz` (token and store usable).
pub fn ops_router(state: Arc<AppState>) -> Router {
    let mut r = Router::new()
        .route("/metrics", get(|| async { crate::metrics::render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz));
    if state.debug_clock.is_some() {
        r = r.route("/debug/clock/advance", post(advance_clock));
    }
    r.with_state(state)
}

/// Testing only: move the lifecycle clock forward by `?seconds=N`, run the scheduler, and
/// answer with its report.
async fn advance_clock(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let Some(clock) = &state.debug_clock else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let seconds: Option<i64> = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("seconds=")))
        .and_then(|v| v.parse().ok());
    let Some(ms) = seconds
        .filter(|s| (0..=100 * 365 * 86_400).contains(s))
        .and_then(|s| s.checked_mul(1000))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "seconds=N (0 <= N <= 100 years) required",
        )
            .into_response();
    };
    let offset = clock.advance(ms);
    tracing::warn!(offset_ms = offset, "debug clock advanced");
    let report = state.kms.run_scheduled_jobs(&state.audit).await;
    let body = serde_json::json!({ "offsetMillis": offset, "report": report }).to_string();
    (StatusCode::OK, body).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let ready = match state.kms.ready().await {
        Ok(()) if !state.audit.healthy() => Err("audit trail: the last write failed".to_string()),
        other => other,
    };
    match ready {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => {
            tracing::warn!(%why, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
        }
    }
}

/// The parts of one HTTP request the handler needs.
struct Incoming {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// Where a request came from, as its audit record and the `aws:SourceIp` condition name it.
#[derive(Debug, Clone)]
pub struct Source {
    pub peer: SocketAddr,
    pub user_agent: String,
}

/// What the audit record of a request needs, filled in as the request progresses.
#[derive(Default)]
struct Seen {
    op: Option<Operation>,
    body: Bytes,
    principal: Option<Principal>,
    access_key_id: Option<String>,
    region: Option<String>,
    /// Unauthenticated: the access key id and region the `Authorization` header claims.
    claimed: Option<(String, String)>,
}

/// The answer to one call: its request id and its result (the audit record is durable).
pub struct Answer {
    pub request_id: String,
    pub result: Result<Option<Reply>, ApiError>,
}

async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let source = Source {
        peer,
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    };
    let incoming = Incoming {
        method,
        uri,
        headers,
    };
    // Run to completion even if the client goes away: a change and its audit record must
    // never be split by a dropped connection.
    let span = tracing::info_span!("request", request_id = %request_id);
    let task = tokio::spawn(tracing::Instrument::instrument(
        async move {
            let mut seen = Seen::default();
            let result = match authenticate(&state, &incoming, body, &mut seen).await {
                Ok((caller, op, body)) => {
                    execute(&state, &source, caller, op, body, &request_id, started).await
                }
                Err(e) => {
                    // Who the refused request claims to be (parsed again only here: an
                    // authenticated request's header is parsed once, by SigV4).
                    seen.claimed = incoming
                        .headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|h| crate::auth::sigv4::parse_authorization(h).ok())
                        .map(|a| (a.access_key_id, a.region));
                    let event_id = uuid::Uuid::new_v4().to_string();
                    let record =
                        audit_record(&state, &source, &request_id, &event_id, &seen, Err(&e));
                    let result = Err(e);
                    let audited = state.audit.append(record).await;
                    finish(seen.op, result, audited, &request_id, started)
                }
            };
            (request_id, result)
        },
        span,
    ));
    match task.await {
        Ok((request_id, Ok(out))) => success(out, &request_id),
        Ok((request_id, Err(e))) => error::error_response(&e, &request_id),
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            let err = ApiError::Kms(crate::kms::KmsError::Internal(e.to_string()));
            error::error_response(&err, "")
        }
    }
}

/// Call an operation as an already authenticated caller (the console signs its users in
/// itself): the same path as every API request after SigV4 — model validation, the intent
/// record, `ops::dispatch`, the final audit record, metrics. Runs to completion even if the
/// caller stops waiting.
pub async fn call(
    state: &Arc<AppState>,
    source: Source,
    caller: Caller,
    op: Operation,
    body: Bytes,
) -> Answer {
    let started = std::time::Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("request", request_id = %request_id);
    let state = state.clone();
    let task = tokio::spawn(tracing::Instrument::instrument(
        async move {
            let result = execute(&state, &source, caller, op, body, &request_id, started).await;
            (request_id, result)
        },
        span,
    ));
    match task.await {
        Ok((request_id, result)) => Answer { request_id, result },
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            Answer {
                request_id: String::new(),
                result: Err(ApiError::Kms(crate::kms::KmsError::Internal(e.to_string()))),
            }
        }
    }
}

/// Everything after authentication, for the API and the console alike: validate, audit the
/// intent of a change, dispatch, audit the outcome (fail closed), note key usage, count.
async fn execute(
    state: &AppState,
    source: &Source,
    caller: Caller,
    op: Operation,
    body: Bytes,
    request_id: &str,
    started: std::time::Instant,
) -> Result<Option<Reply>, ApiError> {
    let event_id = uuid::Uuid::new_v4().to_string();
    let seen = Seen {
        op: Some(op),
        body,
        principal: Some(caller.principal.clone()),
        access_key_id: Some(caller.access_key_id.clone()),
        region: Some(caller.region.clone()),
        claimed: None,
    };
    let result = run(state, source, caller, op, request_id, &seen).await;
    // What the audit record and key usage see: a typed answer's public members only.
    let public = result
        .as_ref()
        .ok()
        .and_then(|r| r.as_ref().map(Reply::public));
    let view = match &result {
        Ok(_) => Ok(public.as_deref()),
        Err(e) => Err(e),
    };
    let record = audit_record(state, source, request_id, &event_id, &seen, view);
    // As on AWS, a replica's creation is also a CreateKey in the replica's region.
    let replica = match (op, public.as_deref()) {
        (Operation::ReplicateKey, Some(v)) => replica_create_record(&record, v),
        _ => None,
    };
    // Fail closed: nothing is answered before its record is durable.
    let mut audited = state.audit.append(record).await;
    if let (Ok(()), Some(r)) = (&audited, replica) {
        audited = state.audit.append(r).await;
    }
    if let (Ok(()), Some(v)) = (&audited, public.as_deref()) {
        // GetKeyLastUsage: the keys this answer used, with its audit event.
        let arns: Vec<&str> = ["KeyId", "SourceKeyId"]
            .iter()
            .filter_map(|m| v.get(*m).and_then(|k| k.as_str()))
            .collect();
        state.kms.note_usage(op, &arns, request_id, &event_id);
    }
    finish(Some(op), result, audited, request_id, started)
}

/// The audit record of a console sign-in, shaped as CloudTrail's `ConsoleLogin`: the access
/// key that tried, from where, and whether its secret matched (`principal`). The console
/// makes the session only once this record is durable (fail closed, as every answer).
pub async fn audit_sign_in(
    state: &AppState,
    source: &Source,
    access_key_id: &str,
    principal: Option<&Principal>,
    region: &str,
) -> Result<(), crate::audit::AuditError> {
    use serde_json::json;
    let outcome = if principal.is_some() {
        "Success"
    } else {
        "Failure"
    };
    let claimed = Some((access_key_id.to_owned(), region.to_owned()));
    let mut rec = console_record(state, source, principal, access_key_id, region, claimed);
    rec.set("eventSource", "signin.amazonaws.com");
    rec.set("eventName", "ConsoleLogin");
    rec.set("eventType", "AwsConsoleSignIn");
    rec.set("requestParameters", &Value::Null);
    rec.set("responseElements", &json!({ "ConsoleLogin": outcome }));
    if principal.is_none() {
        rec.set("errorMessage", "Failed authentication");
    }
    state.audit.append(rec).await
}

/// The audit record of the console's audit view, shaped as CloudTrail's `LookupEvents`: who
/// read the trail, with which filters, and whether they were refused (`refusal`: code and
/// message). The console shows the page only once this record is durable (fail closed).
pub async fn audit_lookup_events(
    state: &AppState,
    source: &Source,
    caller: &Caller,
    parameters: Value,
    refusal: Option<(&str, &str)>,
) -> Result<(), crate::audit::AuditError> {
    let mut rec = console_record(
        state,
        source,
        Some(&caller.principal),
        &caller.access_key_id,
        &caller.region,
        None,
    );
    rec.set("eventSource", "cloudtrail.amazonaws.com");
    rec.set("eventName", "LookupEvents");
    rec.set("readOnly", &true);
    rec.set("requestParameters", &parameters);
    rec.set("responseElements", &Value::Null);
    if let Some((code, message)) = refusal {
        rec.set("errorCode", code);
        rec.set("errorMessage", message);
    }
    state.audit.append(rec).await
}

/// The start of a console record that is no KMS operation (sign-in, the audit view).
fn console_record(
    state: &AppState,
    source: &Source,
    principal: Option<&Principal>,
    access_key_id: &str,
    region: &str,
    claimed: Option<(String, String)>,
) -> RecordBuilder {
    let request_id = uuid::Uuid::new_v4().to_string();
    let event_id = uuid::Uuid::new_v4().to_string();
    let seen = Seen {
        op: None,
        body: Bytes::new(),
        principal: principal.cloned(),
        access_key_id: Some(access_key_id.to_owned()),
        region: Some(region.to_owned()),
        claimed,
    };
    audit_record(state, source, &request_id, &event_id, &seen, Ok(None))
}

/// Metrics, and the refusal of an answer whose audit record could not be written.
fn finish(
    op: Option<Operation>,
    result: Result<Option<Reply>, ApiError>,
    audited: Result<(), crate::audit::AuditError>,
    request_id: &str,
    started: std::time::Instant,
) -> Result<Option<Reply>, ApiError> {
    let op_name = op.map(|o| o.name()).unwrap_or("Unknown");
    if let Err(e) = audited {
        crate::metrics::AUDIT_FAILURES.inc();
        tracing::error!(request_id, error = %e, "refusing to answer: audit record not written");
        // A typed answer's secrets are wiped as it drops here.
        drop(result);
        crate::metrics::REQUESTS
            .with_label_values(&[op_name, "audit_failure"])
            .inc();
        return Err(ApiError::Kms(crate::kms::KmsError::Internal(e.to_string())));
    }
    let outcome = match &result {
        Ok(_) => "success",
        Err(e) if e.wire().0.is_server_error() => "server_error",
        Err(_) => "client_error",
    };
    crate::metrics::REQUESTS
        .with_label_values(&[op_name, outcome])
        .inc();
    crate::metrics::REQUEST_SECONDS
        .with_label_values(&[op_name])
        .observe(started.elapsed().as_secs_f64());
    result
}

/// `userIdentity` of a record. Members in key order: a record's JSON is its canonical form
/// (`audit::Record`).
#[derive(serde::Serialize)]
struct UserIdentity<'a> {
    #[serde(rename = "accessKeyId")]
    access_key_id: Option<&'a str>,
    #[serde(rename = "accountId", skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arn: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    /// Absent for an unknown caller, null for an account's root.
    #[serde(rename = "userName", skip_serializing_if = "Option::is_none")]
    user_name: Option<Option<&'a str>>,
}

/// One entry of a record's `resources` (members in key order).
#[derive(serde::Serialize)]
struct Resource<'a> {
    #[serde(rename = "ARN")]
    arn: &'a str,
    #[serde(rename = "accountId")]
    account_id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The CloudTrail-shaped record of one request.
/// The `CreateKey` record, in the replica's region, of a successful ReplicateKey (whose own
/// record is `record`, in the primary's region).
fn replica_create_record(record: &RecordBuilder, answer: &Value) -> Option<RecordBuilder> {
    use serde_json::json;
    let m = &answer["ReplicaKeyMetadata"];
    let arn = m["Arn"].as_str()?;
    let region = arn.split(':').nth(3)?;
    let mut rec = record.clone();
    rec.set("eventName", "CreateKey");
    rec.set("awsRegion", region);
    rec.set("eventID", &uuid::Uuid::new_v4().to_string());
    rec.set(
        "responseElements",
        &crate::audit::response_elements(Some(&json!({ "KeyMetadata": m }))),
    );
    rec.set(
        "resources",
        &json!([{"accountId": m["AWSAccountId"], "type": "AWS::KMS::Key", "ARN": arn}]),
    );
    Some(rec)
}

fn audit_record(
    state: &AppState,
    source: &Source,
    request_id: &str,
    event_id: &str,
    seen: &Seen,
    result: Result<Option<&Value>, &ApiError>,
) -> RecordBuilder {
    let now = state.kms.clock().now_millis();
    let op = seen.op.map(|o| o.name());
    // Unauthenticated: take the region from the credential scope if there is one.
    let region = seen
        .region
        .as_deref()
        .or_else(|| seen.claimed.as_ref().map(|c| c.1.as_str()))
        .unwrap_or_default();
    let user_identity = match &seen.principal {
        Some(p) => UserIdentity {
            access_key_id: seen.access_key_id.as_deref(),
            account_id: Some(&p.account),
            arn: Some(&p.arn),
            kind: match p.kind {
                crate::store::PrincipalKind::User => "IAMUser",
                crate::store::PrincipalKind::Role => "AssumedRole",
                crate::store::PrincipalKind::Root => "Root",
            },
            user_name: Some((p.kind != crate::store::PrincipalKind::Root).then_some(&p.name)),
        },
        None => UserIdentity {
            access_key_id: seen.claimed.as_ref().map(|c| c.0.as_str()),
            account_id: None,
            arn: None,
            kind: "Unknown",
            user_name: None,
        },
    };
    // Unauthenticated bodies are not logged: anyone could otherwise write into the trail.
    let request_parameters = if seen.principal.is_some() {
        crate::audit::request_parameters(&seen.body)
    } else {
        Value::Null
    };
    let mut rec = RecordBuilder::default();
    match result {
        Ok(v) => rec.set("responseElements", &crate::audit::response_elements(v)),
        Err(e) => {
            let (_, name, message) = e.wire();
            rec.set("responseElements", &Value::Null);
            rec.set("errorCode", name);
            rec.set("errorMessage", &message);
        }
    }
    fn add_arn<'a>(resources: &mut Vec<Resource<'a>>, v: Option<&'a str>) {
        let Some(arn) = v.filter(|a| a.starts_with("arn:") && a.contains(":key/")) else {
            return;
        };
        if !resources.iter().any(|r| r.arn == arn) {
            resources.push(Resource {
                arn,
                account_id: arn.split(':').nth(4).unwrap_or(""),
                kind: "AWS::KMS::Key",
            });
        }
    }
    let mut resources = Vec::new();
    if let Ok(Some(v)) = result {
        add_arn(&mut resources, v["KeyId"].as_str());
        add_arn(&mut resources, v["SourceKeyId"].as_str());
        add_arn(&mut resources, v["KeyMetadata"]["Arn"].as_str());
        add_arn(&mut resources, v["ReplicaKeyMetadata"]["Arn"].as_str());
    }
    add_arn(&mut resources, request_parameters["keyId"].as_str());
    let read_only = seen.op.is_some_and(|o| o.flags().read_only);
    rec.set("eventVersion", "1.08");
    rec.set("userIdentity", &user_identity);
    rec.set("eventTime", &crate::audit::event_time(now));
    rec.set("eventSource", "kms.amazonaws.com");
    rec.set("eventName", op.unwrap_or("Unknown"));
    rec.set("awsRegion", region);
    rec.set("sourceIPAddress", &source.peer.ip());
    rec.set("userAgent", &source.user_agent);
    rec.set("requestParameters", &request_parameters);
    rec.set("requestID", request_id);
    rec.set("eventID", event_id);
    rec.set("readOnly", &read_only);
    rec.set("resources", &resources);
    rec.set("eventType", "AwsApiCall");
    rec.set("managementEvent", &true);
    rec.set(
        "recipientAccountId",
        &seen.principal.as_ref().map(|p| p.account.as_str()),
    );
    rec
}

/// SigV4 and the protocol's checks up to a verified caller, the operation and its body.
async fn authenticate(
    state: &AppState,
    req: &Incoming,
    body: Body,
    seen: &mut Seen,
) -> Result<(Caller, Operation, Bytes), ApiError> {
    let target = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let op = Operation::from_target(target)
        .ok_or_else(|| ProtocolError::UnknownOperation(format!("Unknown operation {target:?}")))?;
    seen.op = Some(op);
    let header_pairs: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")))
        .collect();
    // Before the body is read: a declared length over the limit, then everything the
    // signature's headers can show (a request that cannot authenticate holds no body buffer),
    // then the content type.
    if let Some(n) = req
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
    {
        if n > state.max_body_bytes as u64 {
            return Err(too_large(state.max_body_bytes).into());
        }
    }
    // Signatures are checked against real time, never the (test-movable) lifecycle clock.
    let now_ms = crate::kms::Clock::now_millis(&crate::kms::SystemClock);
    let now = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .map_err(|e| ApiError::Auth(crate::auth::AuthError::Backend(e.to_string())))?;
    let pre = state
        .auth
        .precheck(&header_pairs, req.uri.query().unwrap_or(""), now)
        .await?;
    check_content_type(&req.headers)?;
    let body = tokio::time::timeout(
        state.body_read_timeout,
        read_body(body, state.max_body_bytes),
    )
    .await
    .map_err(|_| {
        ProtocolError::Serialization("The request body did not arrive in time".into())
    })??;
    seen.body = body.clone();
    let parts = RequestParts {
        method: req.method.as_str(),
        path: req.uri.path(),
        query: req.uri.query().unwrap_or(""),
        headers: &header_pairs,
        body: &body,
    };
    let caller = state.auth.finish(pre, &parts).await?;
    Ok((caller, op, body))
}

/// One authenticated call: the model's constraints, the request context, the intent record
/// of a change, the operation.
async fn run(
    state: &AppState,
    source: &Source,
    caller: Caller,
    op: Operation,
    request_id: &str,
    seen: &Seen,
) -> Result<Option<Reply>, ApiError> {
    // The service model's constraints first, all violations at once, as AWS answers.
    let violations = model::violations(op.name(), &seen.body);
    if !violations.is_empty() {
        return Err(ProtocolError::Validation(crate::kms::texts::validation(&violations)).into());
    }
    let ctx = RequestContext {
        region: caller.region,
        account: caller.principal.account.clone(),
        access_key_id: caller.access_key_id,
        request_id: request_id.to_owned(),
        principal: caller.principal,
        identity_policies: caller.identity_policies,
        source_ip: Some(source.peer.ip().to_string()),
        secure_transport: state.secure_transport,
        // Authorization derives the dry run and the quota from the operation's row.
        request: crate::kms::Requested::new(op, || wire::dry_run(&seen.body)),
    };
    tracing::debug!(request_id, operation = op.name(), principal = %ctx.principal.arn, "request");
    if op.changes_state() {
        // Fail closed before the change: its intent is on disk, or nothing happens.
        let intent_id = uuid::Uuid::new_v4().to_string();
        let mut intent = audit_record(state, source, request_id, &intent_id, seen, Ok(None));
        intent.set("auditPhase", "intent");
        intent.remove("responseElements");
        if let Err(e) = state.audit.append(intent).await {
            return Err(ApiError::Kms(crate::kms::KmsError::Internal(e.to_string())));
        }
    }
    let reply = ops::dispatch(&state.kms, &ctx, op, &seen.body).await?;
    // The table's `secret` operations answer typed (their secrets never in a `Value`).
    debug_assert!(
        !op.flags().secret || reply.as_ref().map_or(true, Reply::is_typed),
        "{} answered a secret untyped",
        op.name()
    );
    Ok(reply)
}

fn too_large(limit: usize) -> ProtocolError {
    ProtocolError::TooLarge(crate::texts::body_too_large(limit))
}

/// The AWS JSON protocol's content types (the SDKs send `application/x-amz-json-1.1`; 1.0 and
/// plain JSON carry the same body). Anything else is not this protocol.
fn check_content_type(headers: &axum::http::HeaderMap) -> Result<(), ProtocolError> {
    let value = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = value.split(';').next().unwrap_or("").trim();
    const JSON_TYPES: [&str; 3] = [
        "application/x-amz-json-1.1",
        "application/x-amz-json-1.0",
        "application/json",
    ];
    if JSON_TYPES.iter().any(|t| media.eq_ignore_ascii_case(t)) {
        Ok(())
    } else {
        Err(ProtocolError::UnknownOperation(String::new()))
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit).into()),
        Err(_) => {
            Err(ProtocolError::Serialization("Could not read the request body".into()).into())
        }
    }
}

fn success(out: Option<Reply>, request_id: &str) -> Response {
    let body = match out {
        Some(reply) => encode(&reply),
        None => Bytes::new(),
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

/// The JSON body of an answer. A typed answer (every one that carries a secret) is written
/// into `Zeroizing` buffers only (every buffer outgrown is wiped, so no reallocation leaves a
/// partial copy behind), and the last one is handed to hyper as the body, wiped when hyper
/// lets go of it.
fn encode(reply: &Reply) -> Bytes {
    match reply {
        Reply::Json(v) => {
            let mut out = Vec::with_capacity(8192);
            let _ = json::write(&mut out, v);
            Bytes::from(out)
        }
        Reply::Typed(t) if !crate::failpoint::wiping() => {
            let mut out = Vec::with_capacity(8192);
            let _ = t.write_json(&mut out);
            Bytes::from(out)
        }
        Reply::Typed(t) => {
            let mut buf = SecretBuf(Zeroizing::new(Vec::with_capacity(8192)));
            let _ = t.write_json(&mut buf);
            Bytes::from_owner(buf.0)
        }
    }
}

/// A growable buffer that wipes what it outgrows.
struct SecretBuf(Zeroizing<Vec<u8>>);

impl std::io::Write for SecretBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let need = self.0.len() + b.len();
        if need > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(need.max(2 * self.0.capacity())));
            bigger.extend_from_slice(&self.0);
            // The old buffer is wiped as it drops.
            self.0 = bigger;
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod encode_tests {
    use super::*;

    #[test]
    fn typed_answers_come_out_whole_through_the_wiping_buffer() {
        let big = Zeroizing::new(vec![b'A'; 15_000]);
        let body = encode(&answer::random(big));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Plaintext"].as_str().map(str::len), Some(20_000));
        let body = encode(&Reply::Json(serde_json::json!({"KeyId": "k"})));
        assert_eq!(&body[..], br#"{"KeyId":"k"}"#);
    }
}
