//! The floor experiment (issue 15): a *null endpoint* on the server's HTTP stack — the same
//! binary, allocator, tokio runtime, `axum_server` listener, connection limit and hyper
//! settings as `kms-bridge serve` — that reads each request's body and answers a fixed,
//! well-formed Encrypt response (one the real server gave, so of the same size), with no
//! SigV4, no policy, no token. What the load generator reaches against it is what HTTP,
//! loopback TCP and the load generator alone cost on the machine: the server cannot do better.
//! With `--audit-dir` every answer first waits for its record in a real `audit::AuditLog`
//! (group commit, fdatasync): the ceiling of durable answers on that disk and CPU.
//!
//! `kms-bridge bench --null` runs it as a child process (`kms-bridge null-endpoint`, hidden),
//! so its CPU time is measured apart from the load generator's, as the server's is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::audit::{AuditLog, RecordBuilder};

/// Options of the hidden `kms-bridge null-endpoint` command.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "null-endpoint")]
pub struct NullArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// File holding the body every request is answered with.
    #[arg(long)]
    pub response_file: PathBuf,
    /// Append one audit record per request here (fail closed: no answer before it is durable).
    #[arg(long)]
    pub audit_dir: Option<PathBuf>,
    /// As the server's `audit.prewrite_bytes` (the same environment variable).
    #[arg(long, env = "KMS_BRIDGE_AUDIT__PREWRITE_BYTES", default_value_t = 0)]
    pub audit_prewrite_bytes: u64,
}

/// The server's defaults (`config.rs`) for what the HTTP stack is configured with.
const MAX_BODY_BYTES: usize = 262_144;
const MAX_CONNECTIONS: usize = 1024;
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Null {
    response: Bytes,
    audit: Option<AuditLog>,
}

/// Serve until killed. Prints `null endpoint listening on http://ADDR` once bound.
pub async fn serve(args: NullArgs) -> anyhow::Result<()> {
    let response = Bytes::from(
        std::fs::read(&args.response_file)
            .with_context(|| format!("reading {}", args.response_file.display()))?,
    );
    let audit = match &args.audit_dir {
        Some(dir) => Some(AuditLog::open_with(
            dir.clone(),
            64 * 1024 * 1024,
            args.audit_prewrite_bytes,
            None,
        )?),
        None => None,
    };
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Null { response, audit });
    let app = Router::new()
        .route("/", post(answer))
        .with_state(state)
        .into_make_service_with_connect_info::<SocketAddr>();
    let limits = crate::api::limits::ConnectionLimit::new(MAX_CONNECTIONS);
    let mut server = axum_server::from_tcp(listener).acceptor(limits);
    crate::bound_reads(server.http_builder(), HEADER_READ_TIMEOUT);
    println!("null endpoint listening on http://{addr}");
    server.serve(app).await.context("serving")?;
    Ok(())
}

async fn answer(
    State(null): State<Arc<Null>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let Ok(body) = Limited::new(body, MAX_BODY_BYTES).collect().await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let body = body.to_bytes();
    if let Some(audit) = &null.audit {
        let record = record(&headers, peer, &body, &request_id);
        if audit.append(record).await.is_err() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    let mut resp = (StatusCode::OK, null.response.clone()).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// A record shaped and sized like the server's Encrypt record (its members, the request's
/// allow-listed parameters parsed from the body as the server does).
fn record(headers: &HeaderMap, peer: SocketAddr, body: &[u8], request_id: &str) -> RecordBuilder {
    use serde_json::json;
    let params = crate::audit::request_parameters(body);
    let key = params["keyId"].as_str().unwrap_or("").to_owned();
    let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{key}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let mut rec = RecordBuilder::default();
    rec.set("eventVersion", "1.08");
    rec.set("eventTime", &crate::audit::event_time(now));
    rec.set("eventSource", "kms.amazonaws.com");
    rec.set("eventName", "Encrypt");
    rec.set("awsRegion", "us-east-1");
    rec.set("sourceIPAddress", &peer.ip().to_string());
    rec.set(
        "userAgent",
        headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    rec.set(
        "userIdentity",
        &json!({
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEPRINCIPAL",
            "arn": "arn:aws:iam::111122223333:user/bench",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLEEXAMPLE",
            "userName": "bench",
        }),
    );
    rec.set("requestParameters", &params);
    rec.set("responseElements", &serde_json::Value::Null);
    rec.set("requestID", request_id);
    rec.set("eventID", &uuid::Uuid::new_v4().to_string());
    rec.set("readOnly", &true);
    rec.set(
        "resources",
        &json!([{ "accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": arn }]),
    );
    rec.set("eventType", "AwsApiCall");
    rec.set("managementEvent", &false);
    rec.set("recipientAccountId", "111122223333");
    rec.set("eventCategory", "Data");
    rec
}

/// A null endpoint running as a child process; killed when dropped.
pub struct NullServer {
    child: Child,
    pub endpoint: String,
}

impl NullServer {
    /// Start `bin null-endpoint` answering `response`, auditing into `audit_dir` if given.
    pub fn start(
        bin: &Path,
        response: &[u8],
        audit_dir: Option<&Path>,
        scratch: &Path,
    ) -> anyhow::Result<NullServer> {
        use std::io::BufRead;
        std::fs::create_dir_all(scratch)?;
        let response_file = scratch.join("null-response.json");
        std::fs::write(&response_file, response)?;
        let mut cmd = Command::new(bin);
        cmd.arg("null-endpoint")
            .arg("--response-file")
            .arg(&response_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(dir) = audit_dir {
            cmd.arg("--audit-dir").arg(dir);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} null-endpoint", bin.display()))?;
        let stdout = child.stdout.take().context("null endpoint: no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("null endpoint listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the null endpoint did not start (said {line:?})");
        };
        Ok(NullServer {
            endpoint: addr.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NullServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
