//! Prometheus metrics (served on the separate metrics listener at `/metrics`).
//! Process-wide statics: metrics are observations, not state any layer depends on.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<T: prometheus::core::Collector + Clone + 'static>(m: T) -> T {
    // Registration only fails for duplicate names, which the statics below rule out.
    let _ = REGISTRY.register(Box::new(m.clone()));
    m
}

/// A registered counter.
fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric()))
}

/// The `kms_throttled_requests_total` label of generations refused because the token's key
/// generation lane was full.
pub const KEYGEN_THROTTLED: &str = "token_keygen";

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "kms_requests_total",
                "KMS API requests by operation and outcome",
            ),
            &["operation", "outcome"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new("kms_request_duration_seconds", "KMS API request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static TOKEN_CALL_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "kms_token_call_duration_seconds",
                "PKCS#11 call latency by call",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["call"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static TOKEN_SESSIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("kms_token_sessions", "Token work sessions by state"),
            &["state"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static THROTTLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "kms_throttled_requests_total",
                "Requests refused by a quota",
            ),
            &["quota"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

pub static AUDIT_WRITE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(
            HistogramOpts::new("kms_audit_write_seconds", "Audit batch write+fsync latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

/// Records written by the audit writer (with `kms_audit_write_seconds_count`, the batches:
/// records per fsync).
pub static AUDIT_RECORDS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "kms_audit_records_total",
        "Audit records made durable (records per fsync = this / kms_audit_write_seconds_count)",
    )
});

pub static CONNECTIONS_REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "kms_connections_refused_total",
        "Client connections closed at once because max_connections were open",
    )
});

pub static AUDIT_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "kms_audit_failures_total",
        "Requests refused because auditing failed",
    )
});

pub static AUDIT_TAMPERING: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "kms_audit_tampering_detected_total",
        "Audit trail tampering found at start-up (truncation, rewritten or missing head anchor)",
    )
});

pub static ROW_INTEGRITY_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "kms_row_integrity_failures_total",
        "Rows (keys, grants, identity policies, access keys) refused because their MAC does not verify (changed outside kms-bridge)",
    )
});

pub static SCHEDULER_RUNS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "kms_scheduler_runs_total",
                "Background job runs by job and outcome",
            ),
            &["job", "outcome"],
        )
        .unwrap_or_else(|_| unreachable_metric()),
    )
});

/// Metric construction only fails on invalid names or label sets, which are constants here.
fn unreachable_metric<T>() -> T {
    unreachable!("invalid metric definition")
}

/// Touch every metric so that all families appear from the first scrape on.
pub fn init() {
    LazyLock::force(&REQUESTS);
    LazyLock::force(&REQUEST_SECONDS);
    LazyLock::force(&TOKEN_CALL_SECONDS);
    LazyLock::force(&TOKEN_SESSIONS);
    for group in crate::kms::quota::QuotaGroup::ALL {
        THROTTLED.with_label_values(&[group.name()]);
    }
    THROTTLED.with_label_values(&[KEYGEN_THROTTLED]);
    LazyLock::force(&AUDIT_WRITE_SECONDS);
    LazyLock::force(&AUDIT_RECORDS);
    LazyLock::force(&AUDIT_FAILURES);
    LazyLock::force(&AUDIT_TAMPERING);
    LazyLock::force(&ROW_INTEGRITY_FAILURES);
    LazyLock::force(&CONNECTIONS_REFUSED);
    LazyLock::force(&SCHEDULER_RUNS);
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
