//! The timed run: N worker tasks, each with its own keep-alive connection, send requests
//! back to back until the deadline; latencies go into HDR histograms, merged at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;

use super::client::{Credentials, KmsClient};

/// One request of a workload.
#[derive(Clone)]
pub struct Request {
    pub op: &'static str,
    pub body: Bytes,
}

/// What the workers send: each cycles through `requests`, starting at its own index.
pub struct Workload {
    pub requests: Vec<Request>,
}

impl Workload {
    pub fn single(op: &'static str, body: Bytes) -> Workload {
        Workload {
            requests: vec![Request { op, body }],
        }
    }

    /// A cycle holding each request `weight` times, spread evenly (smooth weighted
    /// round-robin), so every stretch of the cycle has the intended proportions.
    pub fn mix(parts: &[(Request, u32)]) -> Workload {
        let total: i64 = parts.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut current = vec![0i64; parts.len()];
        let mut requests = Vec::new();
        for _ in 0..total {
            for (c, (_, w)) in current.iter_mut().zip(parts) {
                *c += i64::from(*w);
            }
            let Some((best, _)) = current.iter().enumerate().max_by_key(|(_, c)| **c) else {
                break;
            };
            current[best] -= total;
            requests.push(parts[best].0.clone());
        }
        Workload { requests }
    }
}

/// How hard and how long to drive.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What a timed run measured.
pub struct Stats {
    /// Requests answered 200 inside the measured window.
    pub ops: u64,
    /// Other answers and transport failures inside the measured window.
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latency of successful requests, in nanoseconds (signing included).
    pub latency_ns: Histogram<u64>,
    /// CPU time the server process used in the window (when its pid is known).
    pub server_cpu: Option<Duration>,
    /// CPU time this process used in the window.
    pub client_cpu: Option<Duration>,
}

impl Stats {
    fn empty() -> anyhow::Result<Stats> {
        Ok(Stats {
            ops: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency_ns: new_histogram()?,
            server_cpu: None,
            client_cpu: None,
        })
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1), in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency_ns.value_at_quantile(q) as f64 / 1e6
    }

    pub fn max_ms(&self) -> f64 {
        self.latency_ns.max() as f64 / 1e6
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Stats) -> anyhow::Result<()> {
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency_ns
            .add(&other.latency_ns)
            .context("merging latency histograms")
    }
}

pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 ns .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).context("creating a latency histogram")
}

/// Drive `endpoint` (or several, comma-separated, round-robin over the connections) with
/// `workload` on `load.connections` connections: warm up, then measure
/// for `load.duration`.
pub async fn drive(
    endpoint: &str,
    creds: &Arc<Credentials>,
    workload: Arc<Workload>,
    load: Load,
    server_pid: Option<u32>,
) -> anyhow::Result<Stats> {
    let measure_from = Instant::now() + load.warmup;
    let end = measure_from + load.duration;
    let mut workers = Vec::with_capacity(load.connections);
    // Several endpoints (comma-separated: the nodes of a cluster) share the connections.
    let endpoints: Vec<&str> = endpoint.split(',').collect();
    for index in 0..load.connections.max(1) {
        let client = KmsClient::new(endpoints[index % endpoints.len()], creds.clone())?;
        let workload = workload.clone();
        workers.push(tokio::spawn(worker(
            client,
            workload,
            index,
            measure_from,
            end,
        )));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = (cpu_time(server_pid), cpu_time(None));
    let mut stats = Stats::empty()?;
    for w in workers {
        stats.merge(w.await.context("a load worker panicked")??)?;
    }
    stats.elapsed = measure_from.elapsed();
    let cpu_after = (cpu_time(server_pid), cpu_time(None));
    let delta = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    stats.server_cpu = server_pid.and(delta(cpu_before.0, cpu_after.0));
    stats.client_cpu = delta(cpu_before.1, cpu_after.1);
    Ok(stats)
}

async fn worker(
    mut client: KmsClient,
    workload: Arc<Workload>,
    index: usize,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::empty()?;
    let requests = &workload.requests;
    let mut i = index % requests.len().max(1);
    while let Some(req) = requests.get(i) {
        i = (i + 1) % requests.len();
        let started = Instant::now();
        if started >= end {
            break;
        }
        let outcome = client.send(req.op, req.body.clone()).await;
        let latency = started.elapsed();
        let measured = started >= measure_from;
        match outcome {
            Ok(a) if a.status == 200 => {
                if measured {
                    stats.ops += 1;
                    stats
                        .latency_ns
                        .saturating_record(latency.as_nanos() as u64);
                }
            }
            Ok(a) => {
                if measured {
                    stats.error(format!("{}: HTTP {} {}", req.op, a.status, a.error_type()));
                }
            }
            Err(e) => {
                if measured {
                    stats.error(format!("{}: {e:#}", req.op));
                }
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    Ok(stats)
}

/// User + system CPU time of a process (`None`: this one) from /proc; `None` where unknown.
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux ABI we run on.
    Some(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_keeps_proportions_and_spreads() {
        let r = |op| Request {
            op,
            body: Bytes::new(),
        };
        let w = Workload::mix(&[(r("D"), 9), (r("E"), 6), (r("G"), 3), (r("K"), 2)]);
        let ops: Vec<&str> = w.requests.iter().map(|r| r.op).collect();
        assert_eq!(ops.len(), 20);
        for (op, n) in [("D", 9), ("E", 6), ("G", 3), ("K", 2)] {
            assert_eq!(ops.iter().filter(|o| **o == op).count(), n, "{ops:?}");
        }
        // Never three of the same in a row.
        assert!(
            ops.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
            "{ops:?}"
        );
    }

    #[test]
    fn reads_own_cpu_time() {
        assert!(cpu_time(None).is_some());
    }
}
