//! `kms-bridge bench`: a KMS load generator with the raw token ceiling beside it (issue 5).
//!
//! For each operation: the raw ceiling (direct PKCS#11 calls on the same token with the same
//! key kind, no HTTP: `Token::ceiling`), then a timed run of signed requests against the
//! endpoint on N keep-alive connections. The report gives ops/s, latency percentiles, errors
//! and the server/raw ratio. Works against any KMS endpoint; the raw column needs the token.
//!
//! Layout: `client` (HTTP + SigV4), `runner` (workers, histograms), `report` (table, Markdown).

pub mod client;
pub mod null;
pub mod report;
pub mod runner;
pub mod scale;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::token::{CeilingOp, Token, TokenConfig};
use client::{Credentials, KmsClient};
pub use report::{FloorRow, Outcome, PeerRow, RawFigure, Report, Row};
use runner::{Load, Request, Workload};

/// Options of `kms-bridge bench`.
#[derive(clap::Parser)]
#[command(name = "bench")]
pub struct BenchArgs {
    /// KMS endpoint to drive; several, comma-separated (a cluster's nodes), share the
    /// connections round-robin.
    #[arg(long, env = "BENCH_ENDPOINT", default_value = "http://127.0.0.1:4599")]
    pub endpoint: String,
    /// Access key id every request is signed with.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key_id: Option<String>,
    /// Secret access key (never printed).
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// Region of the credential scope.
    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Concurrent connections (one request in flight on each).
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = 16)]
    pub connections: usize,
    /// Measured seconds per operation.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 10.0)]
    pub seconds: f64,
    /// Unmeasured warm-up seconds before each operation's timed run.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 1.0)]
    pub warmup: f64,
    /// Operations to run, comma-separated (default: all). create-key leaves the keys it
    /// creates on the server, so it runs last by default.
    #[arg(long, env = "BENCH_OPS", value_delimiter = ',', num_args = 1..)]
    pub ops: Vec<Op>,
    /// PKCS#11 module for the raw ceiling (SOFTHSM2_CONF must name the same token directory).
    #[arg(
        long,
        env = "KMS_BRIDGE_TOKEN__MODULE",
        default_value = crate::config::DEFAULT_MODULE
    )]
    pub token_module: PathBuf,
    /// Token label for the raw ceiling; without it (and --pin-file) the raw column is skipped.
    #[arg(long)]
    pub token_label: Option<String>,
    /// File holding the token's user PIN.
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
    /// Threads for every raw measurement (default: 2 for RSA and ECDSA signing, else 1).
    #[arg(long)]
    pub raw_threads: Option<usize>,
    /// Pid of the server process, to report its CPU time per operation.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// moto_server endpoint: also run Encrypt 4 KiB there for comparison.
    #[arg(long)]
    pub moto_endpoint: Option<String>,
    /// Write the report as Markdown here (between bench markers if the file has them).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Name of the marked section the report replaces (`<!-- NAME:begin … -->`): the default
    /// `bench` is the main table; e.g. `bench-tmpfs` for a second run beside it.
    #[arg(long, default_value = "bench")]
    pub section: String,
    /// Free-text line for the report's settings (repeatable), e.g. "token on tmpfs".
    #[arg(long)]
    pub note: Vec<String>,
    /// Key-count scaling, step 1: create this many symmetric keys and write their ids to
    /// --keys-file (nothing else runs).
    #[arg(long, requires = "keys_file")]
    pub populate: Option<usize>,
    /// Where --populate writes the key ids.
    #[arg(long)]
    pub keys_file: Option<PathBuf>,
    /// Key-count scaling, step 2: Encrypt 4 KiB over 10 of the keys in this file, then over
    /// all of them, and report the server's memory (written between scale markers).
    #[arg(long, conflicts_with = "populate")]
    pub scale_keys_file: Option<PathBuf>,
    /// Start-up time of the server with the populated keys, measured by the caller.
    #[arg(long)]
    pub startup_seconds: Option<f64>,
    /// Abuse while measuring: this many more connections send GenerateDataKeyPair RSA_4096
    /// back to back for the whole run (the expensive-generation flood of issue 18); the
    /// report says how many pairs were made and how many were throttled.
    #[arg(long, env = "BENCH_FLOOD", default_value_t = 0)]
    pub flood: usize,
    /// The floor experiment: also drive a null endpoint (the server's HTTP stack answering a
    /// fixed Encrypt response, no SigV4, policy, audit or token) with Encrypt 4 KiB, and with
    /// --null-audit-dir the same endpoint writing one durable audit record per request.
    /// (`scripts/bench.sh` turns it on unless `BENCH_NULL=0`.)
    #[arg(long)]
    pub null: bool,
    /// Where the audited null endpoint keeps its trail (put it where the server's is).
    #[arg(long, env = "BENCH_NULL_AUDIT_DIR", requires = "null")]
    pub null_audit_dir: Option<PathBuf>,
    /// The kms-bridge binary that runs the null endpoint (default: this one).
    #[arg(long, requires = "null")]
    pub null_bin: Option<PathBuf>,
}

/// Background connections flooding the server with RSA-4096 data key pair generation.
struct Flood {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// (made, throttled, other errors)
    counts: Arc<[std::sync::atomic::AtomicU64; 3]>,
    tasks: tokio::task::JoinSet<()>,
}

impl Flood {
    fn start(
        endpoint: &str,
        creds: &Arc<Credentials>,
        key: &str,
        connections: usize,
    ) -> anyhow::Result<Flood> {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        let body = Bytes::from(serde_json::to_vec(
            &json!({ "KeyId": key, "KeyPairSpec": "RSA_4096" }),
        )?);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections {
            let mut client = KmsClient::new(endpoint, creds.clone())?;
            let (stop, counts, body) = (stop.clone(), counts.clone(), body.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let slot = match client.send("GenerateDataKeyPair", body.clone()).await {
                        Ok(a) if a.status == 200 => 0,
                        Ok(a) if a.error_type() == "ThrottlingException" => 1,
                        _ => 2,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                    if slot != 0 {
                        // A refused caller backs off a little, as the SDKs do.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            });
        }
        Ok(Flood {
            stop,
            counts,
            tasks,
        })
    }

    async fn finish(mut self) -> String {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        let [made, throttled, failed] = [0, 1, 2].map(|i| self.counts[i].load(Ordering::Relaxed));
        format!(
            "connections sending GenerateDataKeyPair RSA_4096 throughout: {made} pairs made, \
             {throttled} throttled, {failed} other errors"
        )
    }
}

/// The operations the load generator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Op {
    #[value(name = "encrypt-32")]
    Encrypt32,
    #[value(name = "encrypt-4k")]
    Encrypt4k,
    #[value(name = "decrypt-4k")]
    Decrypt4k,
    #[value(name = "generate-data-key")]
    GenerateDataKey,
    #[value(name = "re-encrypt")]
    ReEncrypt,
    #[value(name = "describe-key")]
    DescribeKey,
    #[value(name = "generate-random")]
    GenerateRandom,
    #[value(name = "sign-ecdsa-p256")]
    SignEcdsaP256,
    #[value(name = "sign-rsa-pss-2048")]
    SignRsaPss2048,
    #[value(name = "generate-mac")]
    GenerateMac,
    #[value(name = "mixed")]
    Mixed,
    #[value(name = "create-key")]
    CreateKey,
}

/// Mixed profile: (component, weight in %). DescribeKey costs no token call.
const MIX: [(Op, u32); 4] = [
    (Op::Decrypt4k, 45),
    (Op::Encrypt4k, 30),
    (Op::GenerateDataKey, 15),
    (Op::DescribeKey, 10),
];

impl Op {
    pub const ALL: [Op; 12] = [
        Op::Encrypt32,
        Op::Encrypt4k,
        Op::Decrypt4k,
        Op::GenerateDataKey,
        Op::ReEncrypt,
        Op::DescribeKey,
        Op::GenerateRandom,
        Op::SignEcdsaP256,
        Op::SignRsaPss2048,
        Op::GenerateMac,
        Op::Mixed,
        Op::CreateKey,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Op::Encrypt32 => "Encrypt 32 B",
            Op::Encrypt4k => "Encrypt 4 KiB",
            Op::Decrypt4k => "Decrypt 4 KiB",
            Op::GenerateDataKey => "GenerateDataKey AES_256",
            Op::ReEncrypt => "ReEncrypt 32 B",
            Op::DescribeKey => "DescribeKey",
            Op::GenerateRandom => "GenerateRandom 32 B",
            Op::SignEcdsaP256 => "Sign ECDSA_SHA_256 P-256",
            Op::SignRsaPss2048 => "Sign RSASSA_PSS_SHA_256 RSA-2048",
            Op::GenerateMac => "GenerateMac HMAC_SHA_256",
            Op::Mixed => "Mixed profile ¹",
            Op::CreateKey => "CreateKey",
        }
    }

    /// The token work one operation costs (`None`: no token call, or a derived figure).
    fn ceiling(self) -> Option<CeilingOp> {
        Some(match self {
            Op::Encrypt32 => CeilingOp::Encrypt(32),
            Op::Encrypt4k => CeilingOp::Encrypt(4096),
            Op::Decrypt4k => CeilingOp::Decrypt(4096),
            Op::GenerateDataKey => CeilingOp::GenerateDataKey,
            Op::ReEncrypt => CeilingOp::ReEncrypt(32),
            Op::GenerateRandom => CeilingOp::Random(32),
            Op::SignEcdsaP256 => CeilingOp::SignEcdsaP256,
            Op::SignRsaPss2048 => CeilingOp::SignRsaPss2048,
            Op::GenerateMac => CeilingOp::HmacSha256,
            Op::CreateKey => CeilingOp::CreateKey,
            Op::DescribeKey | Op::Mixed => return None,
        })
    }

    /// Raw threads: SoftHSM serialises AES on one key (a second thread adds nothing), the
    /// signatures are CPU-bound and scale with cores.
    fn raw_threads(self) -> usize {
        match self {
            Op::SignEcdsaP256 | Op::SignRsaPss2048 => 2,
            _ => 1,
        }
    }
}

/// Run the benchmark described by `args` and return the report (nothing printed to stdout).
pub async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let creds = Arc::new(credentials(args)?);
    let load = Load {
        connections: args.connections.max(1),
        warmup: seconds(args.warmup, "--warmup")?,
        duration: seconds(args.seconds, "--seconds")?,
    };
    let ops: Vec<Op> = if args.ops.is_empty() {
        Op::ALL.to_vec()
    } else {
        args.ops.clone()
    };
    let token = open_token(args).await?;
    let first = args.endpoint.split(',').next().unwrap_or(&args.endpoint);
    let mut ctl = KmsClient::new(first, creds.clone())?;
    let key = create_key(&mut ctl, json!({ "Description": "kms-bridge bench" }))
        .await
        .with_context(|| format!("creating the benchmark key at {}", args.endpoint))?;
    let mut fixtures = Fixtures {
        ctl,
        key,
        bodies: HashMap::new(),
    };
    let mut raw = RawCache {
        token,
        threads: args.raw_threads,
        duration: load.duration,
        done: HashMap::new(),
    };

    let flood = match args.flood {
        0 => None,
        n => Some((n, Flood::start(first, &creds, &fixtures.key, n)?)),
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut floor = Vec::new();
    // The floor runs right after the server's Encrypt 4 KiB (or last, if that is not run).
    let floor_after = if ops.contains(&Op::Encrypt4k) {
        Some(Op::Encrypt4k)
    } else {
        ops.last().copied()
    };
    for op in ops {
        let raw_figure = match raw.figure(op).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(op = op.label(), error = %format!("{e:#}"), "raw ceiling failed");
                notes.push(format!("{}: raw ceiling failed: {e:#}", op.label()));
                None
            }
        };
        tracing::info!(op = op.label(), "driving the server");
        let outcome = match fixtures.workload(op).await {
            Ok(Some(w)) => {
                let stats =
                    runner::drive(&args.endpoint, &creds, Arc::new(w), load, args.server_pid)
                        .await?;
                Outcome::Measured(stats)
            }
            Ok(None) => Outcome::Unsupported,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        rows.push(Row {
            op,
            outcome,
            raw: raw_figure,
        });
        if args.null && Some(op) == floor_after {
            floor = floor_rows(args, &creds, load, &mut fixtures, &mut raw, &mut notes).await?;
        }
    }

    let flood_note = match flood {
        Some((n, f)) => Some(format!("{n} {}", f.finish().await)),
        None => None,
    };
    let mut peers = Vec::new();
    if let Some(moto) = &args.moto_endpoint {
        tracing::info!(endpoint = moto, "driving moto_server");
        let mut ctl = KmsClient::new(moto, creds.clone())?;
        let outcome = match create_key(&mut ctl, json!({})).await {
            Ok(k) => {
                let w = Workload::single("Encrypt", encrypt_body(&k, 4096)?);
                Outcome::Measured(runner::drive(moto, &creds, Arc::new(w), load, None).await?)
            }
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        peers.push(PeerRow {
            name: "moto_server".into(),
            op: Op::Encrypt4k,
            outcome,
        });
    }

    let mut settings = vec![
        ("endpoint".to_owned(), args.endpoint.clone()),
        ("connections".to_owned(), load.connections.to_string()),
        (
            "measured / warm-up".to_owned(),
            format!("{} s / {} s per operation", args.seconds, args.warmup),
        ),
        (
            "raw threads".to_owned(),
            match args.raw_threads {
                Some(n) => format!("{n} for every primitive"),
                None => "2 for ECDSA and RSA signing, 1 otherwise".to_owned(),
            },
        ),
    ];
    settings.extend(args.note.iter().map(|n| ("note".to_owned(), n.clone())));
    if let Some(f) = flood_note {
        settings.push(("flood".to_owned(), f));
    }
    Ok(Report {
        rows,
        floor,
        peers,
        settings,
        machine: report::Machine::describe(),
        notes,
    })
}

/// The floor experiment: Encrypt 4 KiB against the null endpoint, then against the null
/// endpoint with an audit trail (see `null`), each in a child process of its own.
async fn floor_rows(
    args: &BenchArgs,
    creds: &Arc<Credentials>,
    load: Load,
    fixtures: &mut Fixtures,
    raw: &mut RawCache,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<FloorRow>> {
    let raw_figure = raw.figure(Op::Encrypt4k).await.unwrap_or(None);
    let Some(request) = fixtures.request(Op::Encrypt4k).await? else {
        return Ok(Vec::new());
    };
    // The answer the null endpoint gives: one the server gave to the same request.
    let answer = fixtures.ctl.send(request.op, request.body.clone()).await?;
    if answer.status != 200 {
        bail!(
            "floor: the server refused Encrypt 4 KiB (HTTP {} {})",
            answer.status,
            answer.error_type()
        );
    }
    let bin = match &args.null_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("the null endpoint: which binary is this?")?,
    };
    let scratch = std::env::temp_dir().join(format!("kms-bridge-null-{}", uuid::Uuid::new_v4()));
    let mut variants: Vec<(&str, Option<PathBuf>)> = vec![("null endpoint", None)];
    if let Some(dir) = &args.null_audit_dir {
        let trail = dir.join(format!("null-audit-{}", uuid::Uuid::new_v4()));
        variants.push(("null endpoint + audit", Some(trail)));
    }
    let mut rows = Vec::new();
    for (name, trail) in variants {
        tracing::info!(variant = name, "driving the null endpoint");
        let outcome = match null::NullServer::start(&bin, &answer.body, trail.as_deref(), &scratch)
        {
            Ok(server) => {
                let w = Workload {
                    requests: vec![request.clone()],
                };
                let stats = runner::drive(
                    &server.endpoint,
                    creds,
                    Arc::new(w),
                    load,
                    Some(server.pid()),
                )
                .await;
                drop(server);
                Outcome::Measured(stats?)
            }
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        if let (Some(t), Outcome::Measured(stats)) = (&trail, &outcome) {
            // Every answered request's record is in the trail, and the chain verifies.
            match crate::audit::verify_path(t) {
                Ok(r) if r.problem.is_none() && r.records >= stats.ops => {}
                Ok(r) => notes.push(format!(
                    "{name}: its trail holds {} records for {} answers{}",
                    r.records,
                    stats.ops,
                    r.problem.map(|p| format!(", {p}")).unwrap_or_default()
                )),
                Err(e) => notes.push(format!("{name}: its trail cannot be read: {e}")),
            }
        }
        if let Some(t) = &trail {
            let _ = std::fs::remove_dir_all(t);
        }
        rows.push(FloorRow {
            name: name.to_owned(),
            outcome,
            raw: raw_figure.clone(),
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(rows)
}

fn credentials(args: &BenchArgs) -> anyhow::Result<Credentials> {
    let (Some(id), Some(secret)) = (&args.access_key_id, &args.secret_access_key) else {
        bail!("credentials: set --access-key-id/--secret-access-key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
    };
    Ok(Credentials {
        access_key_id: id.clone(),
        secret_access_key: secret.clone().into(),
        region: args.region.clone(),
    })
}

fn seconds(s: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{flag}: {s} is not a duration"))
}

async fn open_token(args: &BenchArgs) -> anyhow::Result<Option<Token>> {
    let (Some(label), Some(pin_file)) = (&args.token_label, &args.pin_file) else {
        return Ok(None);
    };
    let pin = std::fs::read_to_string(pin_file)
        .with_context(|| format!("--pin-file: cannot read {}", pin_file.display()))?;
    let cfg = TokenConfig {
        module: args.token_module.clone(),
        label: label.clone(),
        pin: pin.trim_end_matches(['\r', '\n']).to_owned().into(),
        threads: 2,
        working_copies: 0,
        keygen: Default::default(),
    };
    let token = tokio::task::spawn_blocking(move || Token::open(&cfg))
        .await?
        .context("opening the token for the raw ceiling")?;
    Ok(Some(token))
}

/// Raw figures measured so far (the mixed profile reuses its components').
struct RawCache {
    token: Option<Token>,
    threads: Option<usize>,
    duration: Duration,
    done: HashMap<CeilingOp, RawFigure>,
}

impl RawCache {
    async fn figure(&mut self, op: Op) -> anyhow::Result<Option<RawFigure>> {
        if self.token.is_none() {
            return Ok(None);
        }
        if op == Op::Mixed {
            // Token-bound ceiling of the mix: 1 / Σ(share / raw rate); DescribeKey costs 0.
            let mut secs_per_op = 0.0;
            let mut threads = 1;
            for (part, pct) in MIX {
                if let Some(f) = Box::pin(self.figure(part)).await? {
                    secs_per_op += f64::from(pct) / 100.0 / f.ops_per_sec.max(1e-9);
                    threads = f.threads;
                }
            }
            return Ok(Some(RawFigure {
                ops_per_sec: 1.0 / secs_per_op.max(1e-12),
                threads,
                p50_ms: None,
                derived: true,
            }));
        }
        let (Some(token), Some(c)) = (self.token.clone(), op.ceiling()) else {
            return Ok(None);
        };
        if let Some(f) = self.done.get(&c) {
            return Ok(Some(f.clone()));
        }
        let threads = self.threads.unwrap_or(op.raw_threads());
        let duration = self.duration;
        tracing::info!(op = op.label(), threads, "measuring the raw token ceiling");
        let r = tokio::task::spawn_blocking(move || token.ceiling(c, threads, duration))
            .await?
            .with_context(|| format!("raw ceiling of {}", op.label()))?;
        let f = RawFigure {
            ops_per_sec: r.ops_per_sec(),
            threads: r.threads,
            p50_ms: Some(r.latency_ns.value_at_quantile(0.5) as f64 / 1e6),
            derived: false,
        };
        self.done.insert(c, f.clone());
        Ok(Some(f))
    }
}

/// Keys and request bodies prepared through the API before the timed runs.
struct Fixtures {
    ctl: KmsClient,
    /// The symmetric key every symmetric operation uses.
    key: String,
    bodies: HashMap<Op, Request>,
}

impl Fixtures {
    /// The workload of `op`; `None` if the server does not support the key spec yet.
    async fn workload(&mut self, op: Op) -> anyhow::Result<Option<Workload>> {
        if op == Op::Mixed {
            let mut parts = Vec::new();
            for (part, weight) in MIX {
                let Some(req) = Box::pin(self.request(part)).await? else {
                    return Ok(None);
                };
                parts.push((req, weight));
            }
            return Ok(Some(Workload::mix(&parts)));
        }
        Ok(self
            .request(op)
            .await?
            .map(|r| Workload { requests: vec![r] }))
    }

    async fn request(&mut self, op: Op) -> anyhow::Result<Option<Request>> {
        if let Some(r) = self.bodies.get(&op) {
            return Ok(Some(r.clone()));
        }
        let key = self.key.clone();
        let key = key.as_str();
        let (name, body) = match op {
            Op::Encrypt32 => ("Encrypt", encrypt_body(key, 32)?),
            Op::Encrypt4k => ("Encrypt", encrypt_body(key, 4096)?),
            Op::Decrypt4k => ("Decrypt", self.decrypt_body(4096).await?),
            Op::GenerateDataKey => (
                "GenerateDataKey",
                body(json!({ "KeyId": key, "KeySpec": "AES_256" }))?,
            ),
            Op::ReEncrypt => {
                let blob = self.ciphertext(32).await?;
                (
                    "ReEncrypt",
                    body(json!({ "CiphertextBlob": blob, "DestinationKeyId": key }))?,
                )
            }
            Op::DescribeKey => ("DescribeKey", body(json!({ "KeyId": key }))?),
            Op::GenerateRandom => ("GenerateRandom", body(json!({ "NumberOfBytes": 32 }))?),
            Op::SignEcdsaP256 | Op::SignRsaPss2048 | Op::GenerateMac => {
                let (spec, usage, request) = match op {
                    Op::SignEcdsaP256 => (
                        "ECC_NIST_P256",
                        "SIGN_VERIFY",
                        json!({
                            "Message": B64.encode([0x11u8; 32]),
                            "MessageType": "DIGEST",
                            "SigningAlgorithm": "ECDSA_SHA_256",
                        }),
                    ),
                    Op::SignRsaPss2048 => (
                        "RSA_2048",
                        "SIGN_VERIFY",
                        json!({
                            "Message": B64.encode([0x22u8; 64]),
                            "MessageType": "RAW",
                            "SigningAlgorithm": "RSASSA_PSS_SHA_256",
                        }),
                    ),
                    _ => (
                        "HMAC_256",
                        "GENERATE_VERIFY_MAC",
                        json!({
                            "Message": B64.encode([0x33u8; 64]),
                            "MacAlgorithm": "HMAC_SHA_256",
                        }),
                    ),
                };
                let created = create_key(
                    &mut self.ctl,
                    json!({ "KeySpec": spec, "KeyUsage": usage, "Description": "kms-bridge bench" }),
                )
                .await;
                let key_id = match created {
                    Ok(k) => k,
                    Err(e) if is_unsupported(&e) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let mut request = request;
                request["KeyId"] = Value::String(key_id);
                let name = if op == Op::GenerateMac {
                    "GenerateMac"
                } else {
                    "Sign"
                };
                (name, body(request)?)
            }
            Op::CreateKey => (
                "CreateKey",
                body(json!({ "Description": "kms-bridge bench (CreateKey run)" }))?,
            ),
            Op::Mixed => bail!("the mixed profile is not a single request"),
        };
        let r = Request { op: name, body };
        self.bodies.insert(op, r.clone());
        Ok(Some(r))
    }

    /// A ciphertext blob (base64) of `len` plaintext bytes under the benchmark key.
    async fn ciphertext(&mut self, len: usize) -> anyhow::Result<String> {
        let body: Value = serde_json::from_slice(&encrypt_body(&self.key, len)?)?;
        let out = self.ctl.call("Encrypt", &body).await?;
        out["CiphertextBlob"]
            .as_str()
            .map(str::to_owned)
            .context("Encrypt: no CiphertextBlob in the answer")
    }

    async fn decrypt_body(&mut self, len: usize) -> anyhow::Result<Bytes> {
        let blob = self.ciphertext(len).await?;
        body(json!({ "CiphertextBlob": blob }))
    }
}

/// The marker error of a CreateKey the server does not support yet.
#[derive(Debug, thiserror::Error)]
#[error("CreateKey: UnsupportedOperationException: {0}")]
struct Unsupported(String);

fn is_unsupported(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Unsupported>().is_some()
}

/// CreateKey and return the new key's id.
async fn create_key(ctl: &mut KmsClient, request: Value) -> anyhow::Result<String> {
    let answer = ctl
        .send("CreateKey", Bytes::from(serde_json::to_vec(&request)?))
        .await?;
    if answer.status == 400 && answer.error_type() == "UnsupportedOperationException" {
        let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let message = v["message"].as_str().unwrap_or_default().to_owned();
        return Err(Unsupported(message).into());
    }
    let out = answer.into_json("CreateKey")?;
    out["KeyMetadata"]["KeyId"]
        .as_str()
        .map(str::to_owned)
        .context("CreateKey: no KeyMetadata.KeyId in the answer")
}

fn encrypt_body(key: &str, len: usize) -> anyhow::Result<Bytes> {
    body(json!({ "KeyId": key, "Plaintext": B64.encode(vec![0x5au8; len]) }))
}

fn body(v: Value) -> anyhow::Result<Bytes> {
    Ok(Bytes::from(serde_json::to_vec(&v)?))
}

/// `kms-bridge bench`: run, print the table to stdout, write the Markdown file if asked.
/// Returns whether the run was clean (no errors on supported operations).
pub async fn cli(args: &BenchArgs) -> anyhow::Result<bool> {
    if let (Some(n), Some(file)) = (args.populate, &args.keys_file) {
        let creds = Arc::new(credentials(args)?);
        let (created, took) =
            scale::populate(&args.endpoint, &creds, n, args.connections, file).await?;
        println!(
            "created {created} keys in {:.1} s ({:.0} keys/s); ids in {}",
            took.as_secs_f64(),
            created as f64 / took.as_secs_f64().max(1e-9),
            file.display()
        );
        return Ok(true);
    }
    if let Some(file) = &args.scale_keys_file {
        let creds = Arc::new(credentials(args)?);
        let load = Load {
            connections: args.connections.max(1),
            warmup: seconds(args.warmup, "--warmup")?,
            duration: seconds(args.seconds, "--seconds")?,
        };
        let mut report = scale::run(&args.endpoint, &creds, file, load, args.server_pid).await?;
        report.startup_seconds = args.startup_seconds;
        report.settings = vec![
            (
                "measured".to_owned(),
                format!(
                    "{} s per run after {} s warm-up, {} connections",
                    args.seconds, args.warmup, load.connections
                ),
            ),
            ("machine".to_owned(), report::Machine::describe().summary()),
        ];
        report
            .settings
            .extend(args.note.iter().map(|n| ("note".to_owned(), n.clone())));
        print!("{}", report.markdown());
        if let Some(path) = &args.markdown {
            report
                .write_markdown(path)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("kms-bridge bench: wrote {}", path.display());
        }
        return Ok(!report.has_errors());
    }
    let report = run(args).await?;
    print!("{}", report.text());
    if let Some(path) = &args.markdown {
        report
            .write_markdown_section(path, &args.section)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("kms-bridge bench: wrote {}", path.display());
    }
    Ok(!report.has_errors())
}
