//! The audit view: the trail's recent records, newest first, filtered by key and event, with
//! the chain's verification status.
//!
//! Reading the trail is not a KMS operation: it is CloudTrail's `cloudtrail:LookupEvents` on
//! `*`, allowed to the account root and to principals whose identity policies allow it
//! (evaluated with the policy engine as identity policies are for account-level KMS actions;
//! an explicit deny wins). Every view, refused or not, is itself a `LookupEvents` record, and
//! the page is shown only once that record is durable.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::policy::{Context, Evaluation, Policy, PolicyKind, Request};
use crate::store::PrincipalKind;

use super::*;

/// Records per page.
const PAGE: usize = 200;
/// At most this many segment files are read for one page.
const MAX_FILES: usize = 8;
pub(super) const ACTION: &str = "cloudtrail:LookupEvents";

/// May this caller read the trail? `Err` is AWS's AccessDenied text.
pub(super) fn may_read_trail(
    caller: &crate::auth::Caller,
    secure: bool,
    source_ip: &str,
    now_ms: i64,
) -> Result<(), String> {
    let p = &caller.principal;
    let mut facts = Context::new();
    facts.set("aws:PrincipalArn", p.arn.clone());
    facts.set("aws:PrincipalAccount", p.account.clone());
    facts.set(
        "aws:PrincipalType",
        match p.kind {
            PrincipalKind::User => "User",
            PrincipalKind::Role => "AssumedRole",
            PrincipalKind::Root => "Account",
        },
    );
    if p.kind != PrincipalKind::Root {
        facts.set("aws:username", p.name.clone());
    }
    facts.set("aws:EpochTime", (now_ms / 1000).to_string());
    facts.set_bool("aws:SecureTransport", secure);
    facts.set("aws:SourceIp", source_ip);
    let req = Request {
        principal_arn: &p.arn,
        principal_account: &p.account,
        action: ACTION,
        resource: "*",
        context: &facts,
    };
    let denied = |why: &str| {
        format!(
            "User: {} is not authorized to perform: {ACTION} on resource: * {why}",
            p.arn
        )
    };
    let mut eval = Evaluation::default();
    for rec in caller.identity_policies.iter() {
        // A stored policy that does not parse might have denied: refuse (fail closed).
        let policy = Policy::parse(&rec.document, PolicyKind::Identity)
            .map_err(|_| denied("because an identity-based policy is invalid"))?;
        eval = eval.merge(policy.evaluate(&req));
    }
    use crate::kms::texts::{access_denied, Denial, Refusal};
    if eval.explicit_deny {
        let why = Denial::ExplicitIdentity;
        return Err(access_denied(&p.arn, Refusal::Key(ACTION, "*", why)));
    }
    if p.kind == PrincipalKind::Root || eval.allow_direct {
        return Ok(());
    }
    let why = Denial::NoIdentityPolicy;
    Err(access_denied(&p.arn, Refusal::Key(ACTION, "*", why)))
}

/// The filters of the page (GET form fields).
#[derive(Debug, Default, Clone)]
pub(super) struct Filters {
    pub key: String,
    pub event: String,
    pub intents: bool,
    /// Only records older than this sequence number ("older" paging).
    pub before: Option<u64>,
}

impl Filters {
    fn from_query(q: &HashMap<String, String>) -> Filters {
        let text = |k: &str| {
            q.get(k)
                .map(|v| v.trim().chars().take(256).collect::<String>())
                .unwrap_or_default()
        };
        Filters {
            key: text("key"),
            event: text("event"),
            intents: q.get("intents").is_some_and(|v| !v.is_empty()),
            before: q.get("before").and_then(|v| v.parse().ok()),
        }
    }

    fn matches(&self, rec: &Value) -> bool {
        if !self.intents && rec["auditPhase"] == "intent" {
            return false;
        }
        if !self.event.is_empty() {
            let name = rec["eventName"].as_str().unwrap_or("").to_ascii_lowercase();
            if !name.contains(&self.event.to_ascii_lowercase()) {
                return false;
            }
        }
        if !self.key.is_empty() {
            let want = self.key.to_ascii_lowercase();
            let mut keys = vec![rec["requestParameters"]["keyId"].as_str().unwrap_or("")];
            keys.extend(
                rec["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["ARN"].as_str()),
            );
            if !keys
                .iter()
                .any(|k| !k.is_empty() && k.to_ascii_lowercase().contains(&want))
            {
                return false;
            }
        }
        true
    }

    /// The query string of these filters (without `before`).
    fn query(&self) -> String {
        let mut q = format!(
            "key={}&event={}",
            super::keys::url_encode(&self.key),
            super::keys::url_encode(&self.event)
        );
        if self.intents {
            q.push_str("&intents=on");
        }
        q
    }
}

/// The newest records that match, newest first (at most `PAGE`), whether there are older
/// ones, and the names of the files read.
pub(super) fn recent(dir: &Path, f: &Filters) -> std::io::Result<(Vec<Value>, bool, Vec<String>)> {
    let files: Vec<PathBuf> = crate::audit::audit_files(dir)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let mut out = Vec::new();
    let mut read = Vec::new();
    let mut more = false;
    for file in files.iter().rev().take(MAX_FILES) {
        read.push(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let mut here = Vec::new();
        for line in BufReader::new(std::fs::File::open(file)?).lines() {
            let line = line?;
            let Ok(rec) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let seq = rec["sequence"].as_u64().unwrap_or(0);
            if f.before.is_some_and(|b| seq >= b) || !f.matches(&rec) {
                continue;
            }
            here.push(rec);
        }
        here.reverse();
        out.extend(here);
        if out.len() > PAGE {
            more = true;
            out.truncate(PAGE);
            break;
        }
    }
    if !more && files.len() > MAX_FILES && out.len() == PAGE {
        more = true;
    }
    Ok((out, more, read))
}

/// The chain's status: verified from the first file, with the head anchor's position.
fn verification(dir: &Path) -> (bool, String) {
    let files = crate::audit::audit_files(dir)
        .map(|f| f.len())
        .unwrap_or_default();
    // Records are appended while the trail is read: a problem is confirmed by a second pass.
    let mut last = String::new();
    for attempt in 0..2 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        match crate::audit::verify_path(dir) {
            Ok(r) if r.problem.is_none() => {
                let text = format!(
                    "Verified: {} records in {} of {} files, chain intact (head anchor matches).",
                    r.records, r.files, files
                );
                return (true, text);
            }
            Ok(r) => {
                last = format!(
                    "Verification failed after {} records: {}",
                    r.records,
                    r.problem.unwrap_or_default()
                )
            }
            Err(e) => last = format!("Verification failed: the trail cannot be read: {e}"),
        }
    }
    (false, last)
}

fn row(rec: &Value) -> AuditRow {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let key = rec["resources"][0]["ARN"]
        .as_str()
        .or_else(|| rec["requestParameters"]["keyId"].as_str())
        .map(|k| k.rsplit_once(":key/").map_or(k, |(_, id)| id))
        .unwrap_or("-")
        .to_owned();
    let error = text(&rec["errorCode"]);
    let login = text(&rec["responseElements"]["ConsoleLogin"]);
    let principal = rec["userIdentity"]["arn"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            rec["userIdentity"]["accessKeyId"]
                .as_str()
                .map(|a| format!("(unknown: {a})"))
        })
        .unwrap_or_else(|| "-".into());
    let (ok, outcome) = if !error.is_empty() {
        (false, error)
    } else if login == "Failure" {
        (false, "Failed authentication".into())
    } else {
        (true, "Success".into())
    };
    AuditRow {
        time: text(&rec["eventTime"]),
        event: text(&rec["eventName"]),
        intent: rec["auditPhase"] == "intent",
        principal,
        key,
        ok,
        outcome,
        agent: text(&rec["userAgent"]),
        sequence: rec["sequence"].as_u64().unwrap_or(0),
    }
}

pub(super) async fn audit_page(
    State(ctx): State<Ctx>,
    Page(user): Page,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filters = Filters::from_query(&q);
    let mut page = AuditPage {
        chrome: ctx.chrome(&user, "audit"),
        key: filters.key.clone(),
        event: filters.event.clone(),
        intents: filters.intents,
        verified: false,
        verification: String::new(),
        rows: Vec::new(),
        files: String::new(),
        older: String::new(),
        newest: filters
            .before
            .map(|_| format!("/console/audit?{}", filters.query())),
        error: String::new(),
    };
    let refusal = may_read_trail(
        &user.caller,
        ctx.app.secure_transport,
        &user.source.peer.ip().to_string(),
        ctx.app.kms.clock().now_millis(),
    )
    .err();
    let mut params = json!({
        "lookupAttributes": [],
        "maxResults": PAGE,
    });
    if !filters.key.is_empty() {
        params["lookupAttributes"] =
            json!([{"attributeKey": "ResourceName", "attributeValue": filters.key}]);
    }
    if !filters.event.is_empty() {
        if let Some(a) = params["lookupAttributes"].as_array_mut() {
            a.push(json!({"attributeKey": "EventName", "attributeValue": filters.event}));
        }
    }
    if let Some(b) = filters.before {
        params["nextToken"] = json!(b.to_string());
    }
    let written = api::audit_lookup_events(
        &ctx.app,
        &user.source,
        &user.caller,
        params,
        refusal.as_deref().map(|m| ("AccessDeniedException", m)),
    )
    .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "console: audit view refused: its record was not written");
        page.error = "KMSInternalException: the audit record of this view could not be written, so the trail is not shown.".into();
        return render(StatusCode::INTERNAL_SERVER_ERROR, page);
    }
    if let Some(m) = refusal {
        page.error = format!("AccessDeniedException: {m}");
        return render(StatusCode::FORBIDDEN, page);
    }
    let dir = ctx.app.audit.dir().to_path_buf();
    let f = filters.clone();
    let done = tokio::task::spawn_blocking(move || (verification(&dir), recent(&dir, &f))).await;
    match done {
        Ok(((ok, text), records)) => {
            page.verified = ok;
            page.verification = text;
            match records {
                Ok((recs, more, files)) => {
                    page.rows = recs.iter().map(row).collect();
                    if more {
                        if let Some(last) = page.rows.last() {
                            page.older = format!(
                                "/console/audit?{}&before={}",
                                filters.query(),
                                last.sequence
                            );
                        }
                    }
                    let mut files = files;
                    files.reverse();
                    page.files = files.join(", ");
                }
                Err(e) => page.error = format!("The trail cannot be read: {e}"),
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "console: audit view task failed");
            page.error = "The trail cannot be read.".into();
        }
    }
    render(StatusCode::OK, page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Caller, Principal};
    use crate::store::IdentityPolicyRecord;
    use std::sync::Arc;

    fn caller(kind: PrincipalKind, policies: &[&str]) -> Caller {
        let arn = match kind {
            PrincipalKind::Root => "arn:aws:iam::111122223333:root".to_owned(),
            _ => "arn:aws:iam::111122223333:user/alice".to_owned(),
        };
        Caller {
            principal: Principal {
                arn: arn.clone(),
                account: "111122223333".into(),
                kind,
                name: "alice".into(),
            },
            access_key_id: "AKIA".into(),
            region: "us-east-1".into(),
            identity_policies: Arc::new(
                policies
                    .iter()
                    .enumerate()
                    .map(|(i, d)| IdentityPolicyRecord {
                        principal_arn: arn.clone(),
                        name: format!("p{i}"),
                        document: (*d).to_owned(),
                        mac: Vec::new(),
                    })
                    .collect(),
            ),
        }
    }

    fn allows(c: &Caller) -> Result<(), String> {
        may_read_trail(c, false, "127.0.0.1", 0)
    }

    const KMS_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
    const LOOKUP: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudtrail:LookupEvents","Resource":"*"}]}"#;
    const ALL: &str =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    const DENY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"cloudtrail:*","Resource":"*"}]}"#;

    #[test]
    fn who_may_read_the_trail() {
        assert!(allows(&caller(PrincipalKind::Root, &[])).is_ok());
        assert!(allows(&caller(PrincipalKind::User, &[LOOKUP])).is_ok());
        assert!(allows(&caller(PrincipalKind::User, &[ALL])).is_ok());
        let e = allows(&caller(PrincipalKind::User, &[KMS_ALL])).unwrap_err();
        assert_eq!(
            e,
            "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: \
             cloudtrail:LookupEvents on resource: * because no identity-based policy allows the \
             cloudtrail:LookupEvents action"
        );
        let e = allows(&caller(PrincipalKind::User, &[ALL, DENY])).unwrap_err();
        assert!(
            e.ends_with("with an explicit deny in an identity-based policy"),
            "{e}"
        );
        assert!(allows(&caller(PrincipalKind::Root, &[DENY])).is_err());
    }

    #[test]
    fn filters_and_rows() {
        let rec = json!({"eventName": "CreateAlias", "eventTime": "2026-01-01T00:00:00Z",
            "userIdentity": {"arn": "arn:aws:iam::1:user/a"}, "userAgent": "kms-bridge-console",
            "requestParameters": {"keyId": "1234abcd-0000"}, "resources": [], "sequence": 7});
        let mut f = Filters::default();
        assert!(f.matches(&rec));
        f.key = "1234ABCD".into();
        f.event = "alias".into();
        assert!(f.matches(&rec));
        f.event = "Decrypt".into();
        assert!(!f.matches(&rec));
        let mut intent = rec.clone();
        intent["auditPhase"] = json!("intent");
        assert!(!Filters::default().matches(&intent));
        let r = row(&rec);
        assert!(r.ok && r.outcome == "Success" && r.key == "1234abcd-0000" && r.sequence == 7);
        let mut failed = rec;
        failed["errorCode"] = json!("AccessDeniedException");
        assert_eq!(row(&failed).outcome, "AccessDeniedException");
    }
}
