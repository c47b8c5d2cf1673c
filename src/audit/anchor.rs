//! The chain's head, anchored outside the trail, so that removing the newest records (or whole
//! files) is detected.
//!
//! The hash chain shows any record altered, removed or reordered *between* two records, but not
//! records cut off at the end: a trail truncated to its first N records is a valid chain of N.
//! So the writer keeps `audit-head.json` beside the files: the sequence number and hash of the
//! newest durable record, with an HMAC computed in the token by a non-extractable key of its
//! own (`kms-bridge-system/audit-head/<uuid>`, named in the head). Nobody without the token
//! can write a head that verifies.
//!
//! The head is rewritten at most every `EVERY` (after the batch's records are durable and
//! acknowledged, so answers never wait for it) and when the writer goes idle: it lags the
//! trail by at most that much. At start-up the server checks the trail against the head:
//! - the head names a record the trail no longer holds, or holds with another hash → the trail
//!   was truncated or rewritten;
//! - the head does not verify (edited, or its key is not in the token) → tampered;
//! - records on disk but no head → the head was deleted.
//!
//! Each finding is logged, counted (`kms_audit_tampering_detected_total`) and written into the
//! trail itself as an `AuditTrailTampering` record; numbering continues after the anchored
//! head, so sequence numbers are never reused and `audit verify` reports the gap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::AuditError;
use crate::token::{HashAlg, Token};

pub const HEAD_FILE: &str = "audit-head.json";
const KEY_LABEL_PREFIX: &str = "kms-bridge-system/audit-head/";
/// The most the head lags the trail while records keep coming.
pub const EVERY: Duration = Duration::from_millis(100);

/// The head file's contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    pub version: u32,
    /// The MAC key's `CKA_ID`, hex.
    pub key: String,
    pub sequence: u64,
    pub hash: String,
    pub mac: String,
}

fn mac_input(key: &str, sequence: u64, hash: &str) -> Vec<u8> {
    format!("kms-bridge audit head v1\n{key}\n{sequence}\n{hash}").into_bytes()
}

/// What the head file said when the server started.
#[derive(Debug, Clone)]
pub enum Found {
    /// No head file.
    Absent,
    /// A head that verifies.
    Valid(Head),
    /// A head that does not verify, and why.
    NotAuthentic(String),
}

/// Writes (and at start-up checked) the head of one audit directory.
pub struct Anchor {
    token: Token,
    key_id: Vec<u8>,
    path: PathBuf,
    found: Found,
}

impl Anchor {
    /// Read and verify the head of `dir` (creating the MAC key on first use).
    pub async fn open(token: Token, dir: &Path) -> Result<Anchor, AuditError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| AuditError::Io(format!("{}: {e}", dir.display())))?;
        let path = dir.join(HEAD_FILE);
        let io = |e: String| AuditError::Io(format!("audit head: {e}"));
        let (found, key_id) = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Found::Absent, None),
            Err(e) => return Err(io(format!("{}: {e}", path.display()))),
            Ok(bytes) => match serde_json::from_slice::<Head>(&bytes) {
                Err(e) => (Found::NotAuthentic(format!("unreadable: {e}")), None),
                Ok(head) => check(&token, head).await,
            },
        };
        let key_id = match key_id {
            Some(k) => k,
            None => {
                let label = format!("{KEY_LABEL_PREFIX}{}", uuid::Uuid::new_v4());
                token
                    .generate_hmac_key(label.clone().into_bytes(), label.clone(), 32)
                    .await
                    .map_err(|e| io(format!("creating the head MAC key: {e}")))?;
                tracing::info!(key = %label, "created the audit head MAC key in the token");
                label.into_bytes()
            }
        };
        Ok(Anchor {
            token,
            key_id,
            path,
            found,
        })
    }

    pub fn found(&self) -> &Found {
        &self.found
    }

    /// Anchor `sequence`/`hash` as the head: MAC in the token, then the file replaced
    /// atomically and durably. Blocking (the writer's own thread; `rt` runs the token call).
    pub fn write(
        &self,
        rt: &tokio::runtime::Handle,
        sequence: u64,
        hash: &str,
    ) -> Result<(), AuditError> {
        let key = hex::encode(&self.key_id);
        let mac = rt
            .block_on(self.token.hmac(
                self.key_id.clone(),
                HashAlg::Sha256,
                mac_input(&key, sequence, hash),
            ))
            .map_err(|e| AuditError::Io(format!("audit head MAC: {e}")))?;
        let head = Head {
            version: 1,
            key,
            sequence,
            hash: hash.to_owned(),
            mac: hex::encode(mac),
        };
        let bytes = serde_json::to_vec(&head).map_err(|e| AuditError::Io(e.to_string()))?;
        write_durably(&self.path, &bytes)
            .map_err(|e| AuditError::Io(format!("{}: {e}", self.path.display())))
    }
}

/// Verify a head read from disk; the key it names, if that key is ours and in the token.
async fn check(token: &Token, head: Head) -> (Found, Option<Vec<u8>>) {
    let key_id = match hex::decode(&head.key) {
        Ok(k) if k.starts_with(KEY_LABEL_PREFIX.as_bytes()) => k,
        _ => {
            return (
                Found::NotAuthentic("it names no audit head key".into()),
                None,
            )
        }
    };
    match token.exists(key_id.clone()).await {
        Ok(true) => {}
        Ok(false) => {
            return (
                Found::NotAuthentic("its key is not in the token".into()),
                None,
            )
        }
        Err(e) => return (Found::NotAuthentic(format!("its key: {e}")), None),
    }
    let input = mac_input(&head.key, head.sequence, &head.hash);
    let expected = match token.hmac(key_id.clone(), HashAlg::Sha256, input).await {
        Ok(m) => m,
        Err(e) => return (Found::NotAuthentic(format!("MAC: {e}")), Some(key_id)),
    };
    let given = hex::decode(&head.mac).unwrap_or_default();
    if bool::from(expected.ct_eq(&given)) {
        (Found::Valid(head), Some(key_id))
    } else {
        (
            Found::NotAuthentic("its MAC does not verify (edited)".into()),
            Some(key_id),
        )
    }
}

/// Replace `path` with `bytes`: a temporary file, fsync'ed, renamed over it, directory
/// fsync'ed — a crash leaves the old head or the new one, never a torn one.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Compare the trail's end (`last`: sequence and hash of the newest record on disk; `hash_of`
/// finds an older record's hash) with the head found at start-up; the finding, if any.
pub fn compare(
    found: &Found,
    last: (u64, &str),
    hash_of: impl FnOnce(u64) -> Option<String>,
) -> Option<String> {
    let (seq, hash) = last;
    match found {
        Found::Absent if seq > 0 => Some(format!(
            "the audit head anchor is missing (deleted?) while the trail holds {seq} records"
        )),
        Found::Absent => None,
        Found::NotAuthentic(why) => Some(format!("the audit head anchor is not authentic: {why}")),
        Found::Valid(head) if head.sequence > seq => Some(format!(
            "the trail ends at record {seq} but its anchored head is record {}: records {}..{} \
             were removed (truncated)",
            head.sequence,
            seq + 1,
            head.sequence
        )),
        Found::Valid(head) if head.sequence == seq => (head.hash != hash)
            .then(|| format!("record {seq} is not the anchored head record (rewritten)")),
        Found::Valid(head) => match hash_of(head.sequence) {
            Some(h) if h == head.hash => None,
            Some(_) => Some(format!(
                "record {} is not the anchored head record (rewritten)",
                head.sequence
            )),
            None => Some(format!(
                "the anchored head record {} is missing from the trail (removed)",
                head.sequence
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(sequence: u64, hash: &str) -> Found {
        Found::Valid(Head {
            version: 1,
            key: String::new(),
            sequence,
            hash: hash.into(),
            mac: String::new(),
        })
    }

    #[test]
    fn the_trail_is_compared_with_its_head() {
        let none = |_| None;
        assert_eq!(compare(&Found::Absent, (0, ""), none), None);
        assert!(compare(&Found::Absent, (3, "h3"), none)
            .unwrap()
            .contains("missing"));
        assert_eq!(compare(&head(3, "h3"), (3, "h3"), none), None);
        assert!(compare(&head(5, "h5"), (3, "h3"), none)
            .unwrap()
            .contains("records 4..5 were removed"));
        assert!(compare(&head(3, "h3"), (3, "x"), none)
            .unwrap()
            .contains("rewritten"));
        // The head lags: an older record must carry the anchored hash.
        assert_eq!(
            compare(&head(2, "h2"), (3, "h3"), |n| Some(format!("h{n}"))),
            None
        );
        assert!(compare(&head(2, "h2"), (3, "h3"), |_| Some("x".into()))
            .unwrap()
            .contains("rewritten"));
        assert!(compare(&head(2, "h2"), (3, "h3"), none)
            .unwrap()
            .contains("missing"));
        assert!(
            compare(&Found::NotAuthentic("edited".into()), (3, "h3"), none)
                .unwrap()
                .contains("not authentic")
        );
    }
}
