//! `kms-bridge audit verify`: walk the hash chain of an audit file or directory.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use super::{audit_files, record_hash, GENESIS_HASH};

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub files: usize,
    pub records: u64,
    /// The first problem found: where and what.
    pub problem: Option<String>,
}

/// Verify one file or every `audit-*.jsonl` file of a directory, in order.
pub fn verify_path(path: &Path) -> std::io::Result<VerifyReport> {
    let files = if path.is_dir() {
        audit_files(path)?.into_iter().map(|(_, p)| p).collect()
    } else {
        vec![path.to_path_buf()]
    };
    let mut report = VerifyReport::default();
    let mut prev: Option<(u64, String)> = None;
    for file in files {
        report.files += 1;
        let reader = BufReader::new(std::fs::File::open(&file)?);
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", file.display(), i + 1);
            let fail = |what: String| Some(format!("{at}: {what}"));
            let Ok(Value::Object(rec)) = serde_json::from_str::<Value>(&line) else {
                report.problem = fail("not a JSON record (altered)".into());
                return Ok(report);
            };
            let seq = rec.get("sequence").and_then(Value::as_u64).unwrap_or(0);
            let previous = rec
                .get("previousHash")
                .and_then(Value::as_str)
                .unwrap_or("");
            let hash = rec.get("hash").and_then(Value::as_str).unwrap_or("");
            if record_hash(previous, &rec) != hash {
                report.problem = fail(format!("record {seq} was altered (hash mismatch)"));
                return Ok(report);
            }
            match &prev {
                None => {
                    // The first record seen may start the chain or continue an older file.
                    if seq == 1 && previous != GENESIS_HASH {
                        report.problem = fail("the first record does not start the chain".into());
                        return Ok(report);
                    }
                }
                Some((pseq, phash)) => {
                    if previous != phash {
                        let what = if seq <= *pseq {
                            format!("record {seq} is out of order (after {pseq})")
                        } else if seq > pseq + 1 {
                            format!("records {}..{} are missing (removed)", pseq + 1, seq - 1)
                        } else {
                            format!("record {seq} does not follow record {pseq}")
                        };
                        report.problem = fail(what);
                        return Ok(report);
                    }
                    if seq != pseq + 1 {
                        report.problem =
                            fail(format!("record {seq} follows {pseq}: sequence broken"));
                        return Ok(report);
                    }
                }
            }
            prev = Some((seq, hash.to_owned()));
            report.records += 1;
        }
    }
    Ok(report)
}
