//! `kms-bridge audit verify`: walk the hash chain of an audit file or directory.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use super::{audit_files, record_hash, GENESIS_HASH};

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub files: usize,
    /// Records verified before the first problem (all of them when there is none).
    pub records: u64,
    /// The first problem found: where and what.
    pub problem: Option<String>,
}

struct Entry {
    at: String,
    seq: u64,
    previous: String,
    hash: String,
}

/// Verify one file or every `audit-*.jsonl` file of a directory, in order.
pub fn verify_path(path: &Path) -> std::io::Result<VerifyReport> {
    let files = if path.is_dir() {
        audit_files(path)?.into_iter().map(|(_, p)| p).collect()
    } else {
        vec![path.to_path_buf()]
    };
    let mut report = VerifyReport::default();
    let mut entries = Vec::new();
    for file in files {
        report.files += 1;
        let reader = BufReader::new(std::fs::File::open(&file)?);
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", file.display(), i + 1);
            let Ok(Value::Object(rec)) = serde_json::from_str::<Value>(&line) else {
                report.problem = Some(format!("{at}: not a JSON record (altered)"));
                return Ok(report);
            };
            let seq = rec.get("sequence").and_then(Value::as_u64).unwrap_or(0);
            let previous = rec
                .get("previousHash")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let hash = rec
                .get("hash")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if record_hash(&previous, &rec) != hash {
                report.problem = Some(format!("{at}: record {seq} was altered (hash mismatch)"));
                return Ok(report);
            }
            entries.push(Entry {
                at,
                seq,
                previous,
                hash,
            });
        }
    }
    // The first file (`audit-000001.jsonl`) must hold the start of the chain; a later file
    // given on its own may continue one that was rotated away.
    let starts_chain = entries
        .first()
        .is_some_and(|e| e.at.contains(&format!("audit-{:06}.jsonl:", 1)));
    let all: HashSet<u64> = entries.iter().map(|e| e.seq).collect();
    for (i, e) in entries.iter().enumerate() {
        let problem = match i.checked_sub(1).map(|p| &entries[p]) {
            // The first record may start the chain or continue a file that was rotated away.
            None if e.seq == 1 && e.previous != GENESIS_HASH => {
                Some("the first record does not start the chain".to_owned())
            }
            None if e.seq != 1 && (e.previous == GENESIS_HASH || starts_chain) => Some(format!(
                "records 1..{} are missing (removed): the chain starts at record {}",
                e.seq - 1,
                e.seq
            )),
            None => None,
            Some(p) if e.seq == p.seq + 1 && e.previous == p.hash => None,
            Some(p) if all.contains(&(p.seq + 1)) => Some(format!(
                "records are out of order: {} follows {} (reordered)",
                e.seq, p.seq
            )),
            Some(p) if e.seq > p.seq + 1 => Some(format!(
                "records {}..{} are missing (removed)",
                p.seq + 1,
                e.seq - 1
            )),
            Some(p) => Some(format!("record {} does not follow record {}", e.seq, p.seq)),
        };
        if let Some(what) = problem {
            report.problem = Some(format!("{}: {what}", e.at));
            return Ok(report);
        }
        report.records += 1;
    }
    // The newest records are anchored outside the trail: a trail cut off at its end is a valid
    // chain, but no longer reaches its head. (The head's MAC needs the token: the server
    // checks it at start-up; here its position is checked.)
    if path.is_dir() {
        if let Ok(bytes) = std::fs::read(path.join(super::anchor::HEAD_FILE)) {
            let Ok(head) = serde_json::from_slice::<super::anchor::Head>(&bytes) else {
                report.problem = Some(format!(
                    "{}: the head anchor is unreadable",
                    super::anchor::HEAD_FILE
                ));
                return Ok(report);
            };
            let last = entries.last().map_or((0, ""), |e| (e.seq, e.hash.as_str()));
            let found = super::anchor::Found::Valid(head);
            let hash_of = |n| entries.iter().find(|e| e.seq == n).map(|e| e.hash.clone());
            if let Some(what) = super::anchor::compare(&found, last, hash_of) {
                report.problem = Some(format!("{}: {what}", super::anchor::HEAD_FILE));
            }
        }
    }
    Ok(report)
}
