//! The audit trail: one CloudTrail-shaped JSON record per request (success or failure,
//! authentication failures included) and per background action, appended to JSON-lines files.
//!
//! - Tamper-evident: every record carries `sequence`, `previousHash` and `hash` =
//!   SHA-256(previousHash ‖ record without `hash`); `kms-bridge audit verify` walks the chain
//!   across files and reports the first altered, removed or reordered record.
//! - Fail closed: a request's answer is released only after its record is durable (written and
//!   fsync'ed). Records are group-committed: one writer task writes every record that is
//!   waiting, fsyncs once, then acknowledges them all.
//! - Files rotate by size (`audit-000001.jsonl`, `audit-000002.jsonl`, …) without breaking the
//!   chain; after a restart the chain continues from the last record on disk.
//! - Truncation-evident: the chain's head is anchored outside the trail under a token MAC
//!   (`anchor`), so records cut off at the end, or whole files removed, are detected.

pub mod anchor;
mod verify;

pub use anchor::Anchor;
pub use verify::{verify_path, VerifyReport};

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail unavailable: {0}")]
    Io(String),
    #[error("audit writer stopped")]
    Stopped,
}

type Ack = oneshot::Sender<Result<(), AuditError>>;

/// What the writer thread is sent.
enum Msg {
    Record(Record, Ack),
    /// Anchor the head one last time, stop, and say so (`AuditLog::close`).
    Close(oneshot::Sender<()>),
}

/// Handle to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    /// False while the last write failed (readiness: a node that cannot audit cannot answer).
    healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The directory of the trail's files (the console's audit view reads them).
    dir: std::sync::Arc<PathBuf>,
}

struct Writer {
    dir: PathBuf,
    max_file_bytes: u64,
    file: Option<File>,
    file_index: u64,
    file_bytes: u64,
    sequence: u64,
    last_hash: String,
    /// The batch being written (kept to reuse its allocation).
    buf: Vec<u8>,
}

fn file_name(index: u64) -> String {
    format!("audit-{index:06}.jsonl")
}

/// Audit files in a directory, in order.
pub fn audit_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_prefix("audit-")
            .and_then(|r| r.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            files.push((n, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The hash of a record: SHA-256 over the previous hash and the record's JSON without `hash`.
pub fn record_hash(previous: &str, record: &Map<String, Value>) -> String {
    if record.contains_key("hash") {
        let mut without = record.clone();
        without.remove("hash");
        return unhashed_record_hash(previous, &without);
    }
    unhashed_record_hash(previous, record)
}

/// `record_hash` of a record that has no `hash` member yet (no copy needed).
fn unhashed_record_hash(previous: &str, record: &Map<String, Value>) -> String {
    let mut h = Sha256::new();
    h.update(previous.as_bytes());
    h.update(b"\n");
    // Serializing a map into a hasher cannot fail (string keys, no I/O).
    let _ = serde_json::to_writer(HashWriter(&mut h), record);
    hex::encode(h.finalize())
}

/// Feeds serialized JSON straight into a hash.
struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The chain's members, which the writer adds to every record: their names sort where
/// `Record` places them.
const CHAIN_MEMBERS: [&str; 3] = ["hash", "previousHash", "sequence"];

/// A record ready for the chain: its members serialized as `serde_json` writes a
/// `Map<String, Value>` (keys in byte order, compact), so the line the writer makes from it is
/// exactly the one `record_hash` and `audit verify` recompute from the parsed line. Built on
/// the request's own task (`RecordBuilder`, or from a map), so the writer thread only numbers,
/// chains and hashes.
#[derive(Debug, Clone)]
pub struct Record {
    /// `"name":value,` for every member, in key order, without the chain's members.
    members: Vec<u8>,
    /// Where in `members` each of `CHAIN_MEMBERS` goes (before the first member sorting after it).
    at: [usize; 3],
}

impl Record {
    /// The record of a map (members named like the chain's are dropped: the writer sets them).
    pub fn from_map(map: &Map<String, Value>) -> Record {
        let mut b = RecordBuilder::default();
        for (k, v) in map {
            if !CHAIN_MEMBERS.contains(&k.as_str()) {
                b.push(k, v);
            }
        }
        b.build()
    }

    /// Append the record's line (numbered `sequence`, chained to `previous`, with its hash and
    /// a newline) to `out`; returns the record's hash.
    fn write_line(&self, out: &mut Vec<u8>, sequence: u64, previous: &str) -> String {
        use std::io::Write as _;
        let m = &self.members;
        let [at_hash, at_previous, at_sequence] = self.at;
        let start = out.len();
        out.push(b'{');
        out.extend_from_slice(&m[..at_previous]);
        out.extend_from_slice(b"\"previousHash\":");
        // A hex digest needs no escaping.
        out.push(b'"');
        out.extend_from_slice(previous.as_bytes());
        out.extend_from_slice(b"\",");
        out.extend_from_slice(&m[at_previous..at_sequence]);
        let _ = write!(out, "\"sequence\":{sequence},");
        out.extend_from_slice(&m[at_sequence..]);
        // Every member ends in a comma; the last one closes the object instead.
        out.pop();
        out.push(b'}');
        let mut h = Sha256::new();
        h.update(previous.as_bytes());
        h.update(b"\n");
        h.update(&out[start..]);
        let hash = hex::encode(h.finalize());
        let member = format!("\"hash\":\"{hash}\",");
        let at = start + 1 + at_hash;
        out.splice(at..at, member.into_bytes());
        // Debug builds (every test) check the line is canonical: verification re-serializes it.
        #[cfg(debug_assertions)]
        {
            let line = &out[start..];
            let parsed: Result<Map<String, Value>, _> = serde_json::from_slice(line);
            debug_assert!(
                parsed.is_ok_and(|m| serde_json::to_vec(&m).is_ok_and(|c| c == line)),
                "audit record not in canonical form: {}",
                String::from_utf8_lossy(line)
            );
        }
        out.push(b'\n');
        hash
    }
}

impl From<Map<String, Value>> for Record {
    fn from(map: Map<String, Value>) -> Record {
        Record::from_map(&map)
    }
}

impl From<RecordBuilder> for Record {
    fn from(b: RecordBuilder) -> Record {
        b.build()
    }
}

/// Builds a `Record` member by member, in any order; a member set twice keeps its last value.
#[derive(Debug, Default, Clone)]
pub struct RecordBuilder {
    /// The serialized values, one after the other.
    values: Vec<u8>,
    /// (name, range of its value in `values`).
    members: Vec<(std::borrow::Cow<'static, str>, std::ops::Range<usize>)>,
}

impl RecordBuilder {
    /// Set member `name` to `value` (serialized now).
    pub fn set<T: serde::Serialize + ?Sized>(&mut self, name: &'static str, value: &T) {
        debug_assert!(!CHAIN_MEMBERS.contains(&name));
        self.put(std::borrow::Cow::Borrowed(name), value);
    }

    fn push(&mut self, name: &str, value: &Value) {
        self.put(std::borrow::Cow::Owned(name.to_owned()), value);
    }

    fn put<T: serde::Serialize + ?Sized>(
        &mut self,
        name: std::borrow::Cow<'static, str>,
        value: &T,
    ) {
        let start = self.values.len();
        // Serializing into a vector fails only for maps with non-string keys (none here);
        // such a value is written as null rather than dropped.
        if serde_json::to_writer(&mut self.values, value).is_err() {
            self.values.truncate(start);
            self.values.extend_from_slice(b"null");
        }
        let range = start..self.values.len();
        match self.members.iter_mut().find(|(n, _)| *n == name) {
            Some(m) => m.1 = range,
            None => self.members.push((name, range)),
        }
    }

    /// Remove member `name`.
    pub fn remove(&mut self, name: &str) {
        self.members.retain(|(n, _)| n != name);
    }

    /// The record: members in key order (as a `Map` orders them).
    pub fn build(mut self) -> Record {
        self.members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut members = Vec::with_capacity(self.values.len() + 24 * self.members.len());
        let mut at = [0usize; 3];
        let mut next = 0;
        for (name, range) in &self.members {
            while next < 3 && name.as_ref() > CHAIN_MEMBERS[next] {
                at[next] = members.len();
                next += 1;
            }
            let _ = serde_json::to_writer(&mut members, name.as_ref());
            members.push(b':');
            members.extend_from_slice(&self.values[range.clone()]);
            members.push(b',');
        }
        for slot in &mut at[next..] {
            *slot = members.len();
        }
        Record { members, at }
    }
}

/// A crash can leave a last line without its newline (a record never acknowledged): cut it off.
/// Reads only the end of the file (audit files reach `max_file_bytes`, 64 MiB by default).
fn repair_torn_tail(path: &Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let keep = last_newline_before(&mut f, len)?.map_or(0, |i| i + 1);
    tracing::warn!(file = %path.display(), dropped_bytes = len - keep, "audit file ended in a torn record; removed it");
    f.set_len(keep)?;
    f.sync_all()
}

/// Position of the last `\n` before `end`, reading backwards in blocks.
fn last_newline_before(f: &mut File, end: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = end;
    while pos > 0 {
        let n = buf.len().min(usize::try_from(pos).unwrap_or(usize::MAX));
        pos -= n as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(Some(pos + i as u64));
        }
    }
    Ok(None)
}

/// The last non-empty line of a file whose lines all end in `\n` (after `repair_torn_tail`).
fn last_line(path: &Path) -> std::io::Result<Option<String>> {
    let mut f = File::open(path)?;
    let mut end = f.metadata()?.len();
    // `end` is one past a line's closing newline; look for the newline before it.
    while end > 0 {
        let line_end = end - 1;
        let start = last_newline_before(&mut f, line_end)?.map_or(0, |i| i + 1);
        let mut line = vec![0u8; usize::try_from(line_end - start).unwrap_or(0)];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut line)?;
        let line = String::from_utf8_lossy(&line).into_owned();
        if !line.trim().is_empty() {
            return Ok(Some(line));
        }
        end = start;
    }
    Ok(None)
}

/// The hash of record `sequence`, searched from the newest file back (the anchored head lags
/// the trail by a fraction of a second, so it is near the end).
fn find_hash(files: &[(u64, PathBuf)], sequence: u64) -> Option<String> {
    use std::io::BufRead;
    for (_, path) in files.iter().rev() {
        let Ok(f) = File::open(path) else { continue };
        let mut first = None;
        for line in std::io::BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let seq = v["sequence"].as_u64().unwrap_or(0);
            first.get_or_insert(seq);
            if seq == sequence {
                return v["hash"].as_str().map(str::to_owned);
            }
        }
        if first.is_some_and(|f| f <= sequence) {
            return None;
        }
    }
    None
}

impl Writer {
    /// Open the trail in `dir`, continuing its chain; with the head `found` at start-up, also
    /// what comparing the trail with it found (see `anchor`).
    fn open(
        dir: PathBuf,
        max_file_bytes: u64,
        found: Option<&anchor::Found>,
    ) -> Result<(Writer, Option<String>), AuditError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| AuditError::Io(format!("{}: {e}", dir.display())))?;
        let files = audit_files(&dir).map_err(|e| AuditError::Io(e.to_string()))?;
        let mut w = Writer {
            dir,
            max_file_bytes,
            file: None,
            file_index: files.last().map(|(n, _)| *n).unwrap_or(1),
            file_bytes: 0,
            sequence: 0,
            last_hash: GENESIS_HASH.to_owned(),
            buf: Vec::new(),
        };
        // Continue the chain from the newest record on disk.
        for (_, path) in files.iter().rev() {
            // Only regular files hold records (a device or other special file is never read).
            if !std::fs::metadata(path)
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                continue;
            }
            repair_torn_tail(path)
                .map_err(|e| AuditError::Io(format!("{}: {e}", path.display())))?;
            let Ok(last) = last_line(path) else { continue };
            if let Some(line) = last {
                let v: Value = serde_json::from_str(&line).map_err(|e| {
                    AuditError::Io(format!("{}: last record unreadable: {e}", path.display()))
                })?;
                w.sequence = v["sequence"].as_u64().unwrap_or(0);
                w.last_hash = v["hash"].as_str().unwrap_or(GENESIS_HASH).to_owned();
                break;
            }
        }
        let finding = found
            .and_then(|f| anchor::compare(f, (w.sequence, &w.last_hash), |n| find_hash(&files, n)));
        // Never reuse a sequence number the anchored head has seen.
        if let Some(anchor::Found::Valid(head)) = found {
            w.sequence = w.sequence.max(head.sequence);
        }
        Ok((w, finding))
    }

    fn current(&mut self) -> Result<&mut File, AuditError> {
        if self.file.is_some() && self.file_bytes >= self.max_file_bytes {
            self.file = None;
            self.file_index += 1;
        }
        if self.file.is_none() {
            let path = self.dir.join(file_name(self.file_index));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| AuditError::Io(format!("{}: {e}", path.display())))?;
            self.file_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| AuditError::Io("no audit file".into()))
    }

    /// Chain, write and fsync a batch. On failure nothing of the batch counts as written.
    fn write_batch(&mut self, batch: &[Record]) -> Result<(), AuditError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut seq = self.sequence;
        let mut prev = self.last_hash.clone();
        for rec in batch {
            seq += 1;
            prev = rec.write_line(&mut buf, seq, &prev);
        }
        let result = self.write_durably(&buf);
        let written = buf.len() as u64;
        self.buf = buf;
        result?;
        self.file_bytes += written;
        self.sequence = seq;
        self.last_hash = prev;
        Ok(())
    }

    /// Write `buf` at the end of the current file and fsync it; on failure take back whatever
    /// part reached the file, so the chain on disk ends at the last acknowledged record.
    fn write_durably(&mut self, buf: &[u8]) -> Result<(), AuditError> {
        let result = (|| {
            self.current()?;
            let before = self.file_bytes;
            let f = self
                .file
                .as_mut()
                .ok_or_else(|| AuditError::Io("no audit file".into()))?;
            let written = f
                .write_all(buf)
                .and_then(|()| f.sync_data())
                .map_err(|e| AuditError::Io(e.to_string()));
            if written.is_err() {
                let _ = f.set_len(before);
                let _ = f.sync_data();
            }
            written
        })();
        if result.is_err() {
            // Reopen next time; the chain continues from the last durable record.
            self.file = None;
        }
        result
    }
}

impl AuditLog {
    /// Start the writer on a dedicated thread; with an `anchor`, the trail is first checked
    /// against its head (a finding goes into the trail) and the head is kept up to date.
    /// Call from within the tokio runtime when anchoring (the head's MAC is a token call).
    pub fn open(
        dir: PathBuf,
        max_file_bytes: u64,
        anchor: Option<Anchor>,
    ) -> Result<AuditLog, AuditError> {
        let trail_dir = std::sync::Arc::new(dir.clone());
        let (mut writer, finding) = Writer::open(
            dir,
            max_file_bytes.max(4096),
            anchor.as_ref().map(Anchor::found),
        )?;
        let mut dirty = false;
        if let Some(what) = finding {
            crate::metrics::AUDIT_TAMPERING.inc();
            tracing::error!(finding = %what, "audit trail tampering detected");
            writer.write_batch(&[tampering_record(&what).into()])?;
            dirty = true;
        }
        let anchoring = match anchor {
            Some(a) => Some((
                a,
                tokio::runtime::Handle::try_current()
                    .map_err(|e| AuditError::Io(format!("audit head: {e}")))?,
            )),
            None => None,
        };
        let (tx, mut rx) = mpsc::channel::<Msg>(65_536);
        let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let health = healthy.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut anchored_at = Instant::now() - anchor::EVERY;
                loop {
                    let next = match &anchoring {
                        // Idle with an unanchored head: wait only until it is due.
                        Some((_, rt)) if dirty => {
                            let wait = anchor::EVERY.saturating_sub(anchored_at.elapsed());
                            // The timer is made inside the runtime's context.
                            match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                                Ok(next) => next.map(Some),
                                Err(_) => Some(None),
                            }
                        }
                        _ => rx.blocking_recv().map(Some),
                    };
                    let Some(next) = next else { break };
                    let mut closing = None;
                    let (mut records, mut acks) = (Vec::new(), Vec::new());
                    match next {
                        Some(Msg::Record(r, a)) => {
                            records.push(r);
                            acks.push(a);
                        }
                        Some(Msg::Close(done)) => closing = Some(done),
                        None => {}
                    }
                    while closing.is_none() && !records.is_empty() && records.len() < 4096 {
                        match rx.try_recv() {
                            Ok(Msg::Record(r, a)) => {
                                records.push(r);
                                acks.push(a);
                            }
                            Ok(Msg::Close(done)) => closing = Some(done),
                            Err(_) => break,
                        }
                    }
                    if !records.is_empty() {
                        let started = Instant::now();
                        let result = writer.write_batch(&records);
                        crate::metrics::AUDIT_WRITE_SECONDS
                            .observe(started.elapsed().as_secs_f64());
                        match &result {
                            Ok(()) => crate::metrics::AUDIT_RECORDS.inc_by(records.len() as u64),
                            Err(e) => {
                                tracing::error!(error = %e, records = records.len(), "audit write failed")
                            }
                        }
                        health.store(result.is_ok(), std::sync::atomic::Ordering::Relaxed);
                        dirty |= result.is_ok();
                        for ack in acks {
                            let _ = ack.send(match &result {
                                Ok(()) => Ok(()),
                                Err(e) => Err(AuditError::Io(e.to_string())),
                            });
                        }
                    }
                    // The head, once the batch is acknowledged: no answer waits for it.
                    if let Some((a, rt)) = &anchoring {
                        let due = anchored_at.elapsed() >= anchor::EVERY || closing.is_some();
                        if dirty && due {
                            match a.write(rt, writer.sequence, &writer.last_hash) {
                                Ok(()) => dirty = false,
                                Err(e) => tracing::error!(error = %e, "audit head not anchored"),
                            }
                            anchored_at = Instant::now();
                        }
                    }
                    if let Some(done) = closing {
                        // No token call of this thread outlives `close`.
                        let _ = done.send(());
                        break;
                    }
                }
            })
            .map_err(|e| AuditError::Io(e.to_string()))?;
        Ok(AuditLog {
            tx,
            healthy,
            dir: trail_dir,
        })
    }

    /// The directory of the trail's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Did the last write reach the disk? (Every request fails while it does not.)
    pub fn healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Append a record and wait until it is durable.
    pub async fn append(&self, record: impl Into<Record>) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Record(record.into(), ack))
            .await
            .map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)?
    }

    /// Stop the writer after what was sent before (its head anchored one last time); later
    /// appends fail. At shutdown, before the token goes away: the writer's last token call
    /// (the head's MAC) is then over — a token call during process exit can crash the
    /// PKCS#11 library.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

/// The record a start-up check writes into the trail when it finds tampering.
fn tampering_record(what: &str) -> Map<String, Value> {
    let now = crate::kms::Clock::now_millis(&crate::kms::SystemClock);
    let mut rec = Map::new();
    rec.insert("eventVersion".into(), json!("1.08"));
    rec.insert("eventTime".into(), json!(event_time(now)));
    rec.insert("eventSource".into(), json!("kms.amazonaws.com"));
    rec.insert("eventName".into(), json!("AuditTrailTampering"));
    rec.insert("eventType".into(), json!("AwsServiceEvent"));
    rec.insert("eventID".into(), json!(uuid::Uuid::new_v4().to_string()));
    rec.insert("additionalEventData".into(), json!({ "finding": what }));
    rec
}

/// Request members that may appear in `requestParameters` (allow-list: never plaintext,
/// ciphertext, messages, signatures, MACs, grant tokens, key material or passwords).
const REQUEST_FIELDS: &[&str] = &[
    "KeyId",
    "EncryptionContext",
    "EncryptionAlgorithm",
    "KeyAgreementAlgorithm",
    "KeySpec",
    "NumberOfBytes",
    "KeyUsage",
    "Description",
    "Origin",
    "CustomerMasterKeySpec",
    "MultiRegion",
    "BypassPolicyLockoutSafetyCheck",
    "Policy",
    "PolicyName",
    "Tags",
    "TagKeys",
    "AliasName",
    "TargetKeyId",
    "PendingWindowInDays",
    "RotationPeriodInDays",
    "IncludeKeyMaterial",
    "Limit",
    "Marker",
    "SourceKeyId",
    "DestinationKeyId",
    "SourceEncryptionContext",
    "DestinationEncryptionContext",
    "SourceEncryptionAlgorithm",
    "DestinationEncryptionAlgorithm",
    "GrantId",
    "GranteePrincipal",
    "RetiringPrincipal",
    "Operations",
    "Constraints",
    "Name",
    "SigningAlgorithm",
    "MessageType",
    "MacAlgorithm",
    "KeyPairSpec",
    "WrappingAlgorithm",
    "WrappingKeySpec",
    "ExpirationModel",
    "ValidTo",
    "ImportType",
    "KeyMaterialId",
    "KeyMaterialDescription",
    "CustomKeyStoreId",
    "CustomKeyStoreName",
    "ReplicaRegion",
    "PrimaryRegion",
];

/// Response members that may appear in `responseElements`.
const RESPONSE_FIELDS: &[&str] = &[
    "KeyId",
    "KeyMetadata",
    "ReplicaKeyMetadata",
    "DeletionDate",
    "KeyState",
    "PendingWindowInDays",
    "GrantId",
    "CustomKeyStoreId",
    "KeyMaterialId",
];

/// Keep only allow-listed members of a request or response object.
pub fn filter_members(v: Option<&Value>, allowed: &[&str]) -> Value {
    match v.and_then(|v| v.as_object()) {
        Some(m) => {
            let kept: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| allowed.contains(&k.as_str()))
                .map(|(k, v)| (lower_first(k), v.clone()))
                .collect();
            if kept.is_empty() {
                Value::Null
            } else {
                Value::Object(kept)
            }
        }
        None => Value::Null,
    }
}

/// Longest string kept in a logged member; longer ones are cut (the trail must not be a way to
/// fill the disk).
const MAX_LOGGED_STRING: usize = 1024;

fn cap(v: Value) -> Value {
    match v {
        Value::String(s) if s.len() > MAX_LOGGED_STRING => {
            let mut end = MAX_LOGGED_STRING;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(format!("{}…[{} bytes]", &s[..end], s.len()))
        }
        Value::Array(a) => Value::Array(a.into_iter().take(64).map(cap).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().take(64).map(|(k, v)| (k, cap(v))).collect())
        }
        other => other,
    }
}

/// The allow-listed members of a request body. Other members (plaintext!) are skipped by the
/// parser without ever being copied into a string.
pub fn request_parameters(body: &[u8]) -> Value {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if REQUEST_FIELDS.contains(&key.as_ref()) {
                    let v: Value = map.next_value()?;
                    out.insert(lower_first(&key), cap(v));
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde::Deserializer::deserialize_map(&mut de, Visitor) {
        Ok(m) if !m.is_empty() => Value::Object(m),
        _ => Value::Null,
    }
}

pub fn response_elements(resp: Option<&Value>) -> Value {
    filter_members(resp, RESPONSE_FIELDS)
}

/// CloudTrail spells members lowerCamelCase (`keyId`, `encryptionContext`).
fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// ISO 8601 UTC with seconds, as CloudTrail writes `eventTime`.
pub fn event_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parameters_never_carry_secrets() {
        let body = br#"{"KeyId":"alias/x","Plaintext":"c2VjcmV0","CiphertextBlob":"AAAA","EncryptionContext":{"a":"b"},"GrantTokens":["t"],"Message":"bQ==","GrantToken":"g"}"#;
        let p = request_parameters(body);
        assert_eq!(p["keyId"], "alias/x");
        assert_eq!(p["encryptionContext"]["a"], "b");
        let s = p.to_string();
        for secret in ["c2VjcmV0", "AAAA", "bQ==", "\"t\"", "\"g\""] {
            assert!(!s.contains(secret), "{s}");
        }
        assert_eq!(request_parameters(b"not json"), Value::Null);
    }

    #[test]
    fn tail_reading_spans_blocks_and_cuts_torn_records() {
        let dir = std::env::temp_dir().join(format!("kms-bridge-audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit-000001.jsonl");
        std::fs::write(&path, b"").unwrap();
        repair_torn_tail(&path).unwrap();
        assert_eq!(last_line(&path).unwrap(), None);

        // ~200 KB of records (several 64 KiB read blocks), then a torn one.
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!(
                "{{\"sequence\":{i},\"pad\":\"{}\"}}\n",
                "x".repeat(80)
            ));
        }
        text.push_str("{\"sequence\":2000,\"pad\":\"tor");
        std::fs::write(&path, &text).unwrap();
        repair_torn_tail(&path).unwrap();
        let kept = std::fs::read_to_string(&path).unwrap();
        assert!(kept.ends_with('\n') && !kept.contains("tor\""));
        let last = last_line(&path).unwrap().unwrap();
        assert!(last.starts_with("{\"sequence\":1999,"), "{last}");

        // One very long record (longer than a block) is found whole.
        let long = format!("{{\"sequence\":1,\"pad\":\"{}\"}}", "y".repeat(150_000));
        std::fs::write(&path, format!("{{\"sequence\":0}}\n{long}\n\n")).unwrap();
        assert_eq!(last_line(&path).unwrap().unwrap(), long);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn response_elements_are_filtered() {
        let v = json!({"KeyId": "arn", "Plaintext": "x", "CiphertextBlob": "y", "GrantToken": "z"});
        let r = response_elements(Some(&v));
        assert_eq!(r, json!({"keyId": "arn"}));
    }

    #[test]
    fn chain_across_rotation_and_restart() {
        let dir = std::env::temp_dir().join(format!("audit-unit-{}", uuid::Uuid::new_v4()));
        {
            let mut w = Writer::open(dir.clone(), 4096, None).unwrap().0;
            for i in 0..50 {
                let batch = [
                    json!({"eventName": "Encrypt", "i": i, "pad": "x".repeat(200)})
                        .as_object()
                        .unwrap()
                        .clone()
                        .into(),
                ];
                w.write_batch(&batch).unwrap();
            }
        }
        {
            let mut w = Writer::open(dir.clone(), 4096, None).unwrap().0;
            assert_eq!(w.sequence, 50);
            let batch = [json!({"eventName": "Decrypt"})
                .as_object()
                .unwrap()
                .clone()
                .into()];
            w.write_batch(&batch).unwrap();
        }
        assert!(audit_files(&dir).unwrap().len() > 1, "rotated");
        let report = verify_path(&dir).unwrap();
        assert_eq!(report.records, 51);
        assert!(report.problem.is_none(), "{:?}", report.problem);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The line a `Record` makes is the one `record_hash` (and so `audit verify`) recomputes
    /// from the parsed line: members in a map's order, the chain's members in their places.
    #[test]
    fn record_lines_are_the_canonical_json_of_their_map() {
        let cases = [
            json!({}),
            json!({"a": 1}),
            json!({"zzz": [1, "two", null], "Hash": "upper sorts first", "hasi": true}),
            json!({
                "eventName": "Encrypt", "userIdentity": {"type": "IAMUser", "arn": "arn:x"},
                "requestParameters": {"keyId": "k", "encryptionContext": {"b": "é\n\u{1}\"", "a": "x"}},
                "previousHashX": 1, "hash0": 2, "sequenc": 3, "sequence0": 4, "resources": [],
                "userAgent": "ua", "AA": null, "responseElements": null,
            }),
        ];
        for case in cases {
            let map = case.as_object().unwrap().clone();
            for (seq, prev) in [(1, GENESIS_HASH), (123_456, "ab".repeat(32).as_str())] {
                let mut line = Vec::new();
                let hash = Record::from_map(&map).write_line(&mut line, seq, prev);
                assert_eq!(line.pop(), Some(b'\n'));
                let parsed: Map<String, Value> = serde_json::from_slice(&line).unwrap();
                // The line is exactly the map's serialization with the chain's members.
                let mut expected = map.clone();
                expected.insert("sequence".into(), json!(seq));
                expected.insert("previousHash".into(), json!(prev));
                expected.insert("hash".into(), json!(hash));
                assert_eq!(line, serde_json::to_vec(&expected).unwrap());
                assert_eq!(record_hash(prev, &parsed), hash);
            }
        }
        // The builder: any order, a member set twice keeps its last value, removal.
        let mut b = RecordBuilder::default();
        b.set("zeta", "z");
        b.set("alpha", &json!({"y": 1, "x": [true]}));
        b.set("mid", &1);
        b.set("zeta", &Some("last"));
        b.set("gone", "x");
        b.remove("gone");
        let mut line = Vec::new();
        b.build().write_line(&mut line, 7, GENESIS_HASH);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["zeta"], "last");
        assert!(v.get("gone").is_none());
        let expected = json!({"alpha": {"x": [true], "y": 1}, "mid": 1, "zeta": "last",
            "sequence": 7, "previousHash": GENESIS_HASH, "hash": v["hash"]});
        assert_eq!(
            line,
            [serde_json::to_vec(&expected).unwrap(), b"\n".to_vec()].concat()
        );
    }
}
