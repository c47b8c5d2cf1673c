//! What the templates show: plain strings computed here, so the templates stay simple.

use askama::Template;
use serde_json::Value;

use super::Refusal;

/// The frame of every page: who is signed in, the CSRF token for its forms, the one-time
/// message.
pub struct Chrome {
    pub signed_in: bool,
    pub principal: String,
    pub account: String,
    pub region: String,
    pub regions: Vec<String>,
    pub csrf: String,
    /// The navigation entry to highlight.
    pub nav: &'static str,
    pub flash: Option<FlashView>,
}

impl Chrome {
    pub fn signed_out() -> Chrome {
        Chrome {
            signed_in: false,
            principal: String::new(),
            account: String::new(),
            region: String::new(),
            regions: Vec::new(),
            csrf: String::new(),
            nav: "",
            flash: None,
        }
    }
}

pub struct FlashView {
    pub ok: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub error: String,
    pub access_key_id: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub title: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
pub struct KeyListPage {
    pub chrome: Chrome,
    pub title: &'static str,
    pub path: &'static str,
    pub customer: bool,
    pub filter: String,
    pub rows: Vec<KeyRow>,
    pub error: String,
    /// The next page's link, if there is one.
    pub next: String,
    /// Not on the first page: show a link to it.
    pub first: bool,
    pub page_sizes: Vec<SizeOption>,
    pub columns: Vec<ColumnView>,
    pub show: Shown,
}

pub struct SizeOption {
    pub n: u32,
    pub selected: bool,
}

pub struct ColumnView {
    pub id: &'static str,
    pub label: &'static str,
    pub shown: bool,
}

/// Which optional columns the list shows.
pub struct Shown {
    pub aliases: bool,
    pub status: bool,
    pub key_type: bool,
    pub key_spec: bool,
    pub key_usage: bool,
    pub origin: bool,
    pub created: bool,
}

pub struct KeyRow {
    pub key_id: String,
    pub aliases: String,
    pub status: String,
    pub key_type: String,
    pub key_spec: String,
    pub key_usage: String,
    pub origin: String,
    pub created: String,
    pub note: String,
}

impl KeyRow {
    pub fn from_metadata(m: &Value, aliases: Vec<String>) -> KeyRow {
        let spec = m["KeySpec"].as_str().unwrap_or("");
        KeyRow {
            key_id: m["KeyId"].as_str().unwrap_or("").to_owned(),
            aliases: if aliases.is_empty() {
                "-".into()
            } else {
                aliases.join(", ")
            },
            status: m["KeyState"].as_str().unwrap_or("").to_owned(),
            key_type: key_type_of(spec).into(),
            key_spec: spec.to_owned(),
            key_usage: usage_label(m["KeyUsage"].as_str().unwrap_or("")).into(),
            origin: origin_label(m["Origin"].as_str().unwrap_or("")).into(),
            created: m["CreationDate"]
                .as_f64()
                .map(date)
                .unwrap_or_else(|| "-".into()),
            note: String::new(),
        }
    }

    /// A listed key the user may not describe.
    pub fn unknown(id: &str, e: &Refusal) -> KeyRow {
        KeyRow {
            key_id: id.to_owned(),
            aliases: "-".into(),
            status: "-".into(),
            key_type: "-".into(),
            key_spec: "-".into(),
            key_usage: "-".into(),
            origin: "-".into(),
            created: "-".into(),
            note: e.code.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "keystores.html")]
pub struct KeyStoresPage {
    pub chrome: Chrome,
    pub stores: Vec<KeyStoreRow>,
    pub error: String,
}

pub struct KeyStoreRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub cluster: String,
    pub connected: bool,
    pub state: String,
    pub error: String,
    pub created: String,
}

pub struct StepView {
    pub number: usize,
    pub name: &'static str,
    pub current: bool,
    pub done: bool,
}

pub struct PrincipalView {
    pub arn: String,
    pub name: String,
    pub kind: &'static str,
    pub admin: bool,
    pub user: bool,
}

#[derive(Template)]
#[template(path = "create.html")]
pub struct CreatePage {
    pub chrome: Chrome,
    pub step: usize,
    pub steps: Vec<StepView>,
    pub step_name: &'static str,
    /// (group, its specs)
    pub specs: Vec<(&'static str, Vec<SpecOption>)>,
    pub draft: super::session::Draft,
    pub tags: Vec<(String, String)>,
    pub principals: Vec<PrincipalView>,
    pub review: Vec<(String, String)>,
    pub policy: String,
    pub other_accounts: String,
    pub stores: Vec<KeyStoreOption>,
}

pub struct KeyStoreOption {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

pub struct KeyView {
    pub id: String,
    pub arn: String,
    pub description: String,
    pub state: String,
    pub created: String,
    pub deletion: String,
    pub enabled: bool,
    pub pending_deletion: bool,
    pub key_type: String,
    pub key_spec: String,
    pub key_usage: String,
    pub origin: String,
    pub manager: String,
    /// "Single-Region", or the multi-Region key's role and its primary's region.
    pub regionality: String,
}

impl KeyView {
    pub fn from_metadata(m: &Value) -> KeyView {
        let s = |k: &str| m[k].as_str().unwrap_or("").to_owned();
        let state = s("KeyState");
        KeyView {
            id: s("KeyId"),
            arn: s("Arn"),
            description: s("Description"),
            enabled: state == "Enabled",
            pending_deletion: matches!(
                state.as_str(),
                "PendingDeletion" | "PendingReplicaDeletion"
            ),
            regionality: match m["MultiRegionConfiguration"]["MultiRegionKeyType"].as_str() {
                Some("PRIMARY") => "Multi-Region primary key".into(),
                Some(_) => format!(
                    "Multi-Region replica key (primary in {})",
                    m["MultiRegionConfiguration"]["PrimaryKey"]["Region"]
                        .as_str()
                        .unwrap_or("-")
                ),
                None => "Single-Region key".into(),
            },
            state,
            created: m["CreationDate"]
                .as_f64()
                .map(date)
                .unwrap_or_else(|| "-".into()),
            deletion: m["DeletionDate"].as_f64().map(date).unwrap_or_default(),
            key_type: key_type_of(&s("KeySpec")).into(),
            key_spec: s("KeySpec"),
            key_usage: usage_label(&s("KeyUsage")).into(),
            origin: origin_label(&s("Origin")).into(),
            manager: s("KeyManager"),
        }
    }
}

pub struct SpecOption {
    pub name: &'static str,
    pub selected: bool,
}

pub struct TabView {
    pub id: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

pub struct DefaultViewPage {
    /// Key administrators, then key users.
    pub groups: Vec<PrincipalGroup>,
}

pub struct PrincipalGroup {
    pub title: &'static str,
    /// `admin` or `user` (the form actions' prefix).
    pub kind: &'static str,
    pub members: Vec<String>,
    /// Known principals not yet members.
    pub addable: Vec<String>,
}

pub struct RotationView {
    pub enabled: bool,
    pub period: i64,
    pub next: String,
}

#[derive(Template)]
#[template(path = "key.html")]
pub struct KeyPage {
    pub chrome: Chrome,
    pub key: KeyView,
    pub tabs: Vec<TabView>,
    pub tab: String,
    pub aliases: Vec<String>,
    /// The selected tab's error (the API's code and message).
    pub error: String,
    pub policy: String,
    pub policy_statements: Vec<(String, String)>,
    /// While the policy is the console's default one: its administrators and users.
    pub default_view: Option<DefaultViewPage>,
    pub tags: Vec<(String, String)>,
    pub rotation: Option<RotationView>,
    pub rotations: Vec<(String, String)>,
    pub public_key: String,
    pub crypto: Vec<(String, String)>,
}

pub fn key_type_of(spec: &str) -> &'static str {
    if is_asymmetric(spec) {
        "Asymmetric"
    } else {
        "Symmetric"
    }
}

/// A key pair's spec (RSA, elliptic and Edwards curves, ML-DSA, ML-KEM)?
pub fn is_asymmetric(spec: &str) -> bool {
    crate::model::KeySpec::parse(spec).is_some_and(|s| s.is_asymmetric())
}

pub fn key_type_label(t: &str) -> &'static str {
    match t {
        "ASYMMETRIC" => "Asymmetric",
        "HMAC" => "Symmetric (HMAC)",
        _ => "Symmetric",
    }
}

pub fn usage_label(u: &str) -> &'static str {
    match u {
        "ENCRYPT_DECRYPT" => "Encrypt and decrypt",
        "SIGN_VERIFY" => "Sign and verify",
        "GENERATE_VERIFY_MAC" => "Generate and verify MAC",
        "KEY_AGREEMENT" => "Key agreement",
        "ENCAPSULATE_DECAPSULATE" => "Key encapsulation",
        _ => "-",
    }
}

pub fn origin_label(o: &str) -> &'static str {
    match o {
        "AWS_KMS" => "AWS KMS",
        "EXTERNAL" => "External",
        "AWS_CLOUDHSM" => "AWS CloudHSM",
        "EXTERNAL_KEY_STORE" => "External key store",
        _ => "-",
    }
}

/// Epoch seconds (as the API answers dates) in UTC.
pub fn date(secs: f64) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "-".into())
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub key: String,
    pub event: String,
    pub intents: bool,
    /// The chain verified; `verification` says how far or what failed.
    pub verified: bool,
    pub verification: String,
    pub rows: Vec<AuditRow>,
    /// The segment files read for the records shown.
    pub files: String,
    /// The link to older records, if there are some.
    pub older: String,
    /// Paging: the link back to the newest records.
    pub newest: Option<String>,
    pub error: String,
}

pub struct AuditRow {
    pub time: String,
    pub event: String,
    pub intent: bool,
    pub principal: String,
    pub key: String,
    pub ok: bool,
    pub outcome: String,
    pub agent: String,
    pub sequence: u64,
}
