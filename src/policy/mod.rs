//! AWS IAM-style JSON policy documents for KMS: parsing, validation and evaluation
//! of a single key policy or identity policy.
//!
//! The module answers "what does this one document say about this request?" as an
//! [`Evaluation`]; combining key policy, identity policies and grants into a final
//! decision is the caller's job.
//!
//! Semantic choices (IAM is the model; deviations are marked):
//! * Principals: `"*"`/`AWS:"*"` match anyone. An account id or `arn:…:iam::<acct>:root`
//!   matches the root of that account directly and every other principal of that account
//!   "via account" (delegation to identity policies). An IAM role ARN also matches the
//!   role's STS sessions (`arn:…:sts::<acct>:assumed-role/<name>/<session>`). `Service`,
//!   `Federated` and `CanonicalUser` values match only a caller ARN equal to the value.
//!   Other ARNs are compared exactly (IAM resolves principals to unique ids; we can't).
//!   `NotPrincipal` matches callers that match none of its entries (an account entry
//!   excludes every principal of that account); a match counts as direct.
//! * Conditions: operators AND, keys AND, values OR. Negated operators (`StringNotEquals`,
//!   `NotIpAddress`, …) hold when the request value matches none of the policy values.
//!   Absent key (or an empty multi-valued key, treated as absent): false, except negated
//!   operators and `…IfExists` (true), `ForAllValues:` (true), `Null`.
//!   Multi-valued key with a plain operator: positive operators hold if any request value
//!   matches; negated operators hold if no request value matches (IAM leaves this
//!   combination loosely specified). `ForAnyValue:`/`ForAllValues:` apply the (possibly
//!   negated) per-value test to some/every request value.
//! * `ArnEquals` behaves like `ArnLike` (as in IAM): colon-separated segments, each with
//!   `*`/`?` wildcards. Policy variables (`${aws:username}`) are not substituted — they
//!   are compared literally (deviation). `BinaryEquals` is rejected as unsupported.
//! * Element and operator names are case-sensitive; condition keys and actions are not.

/// Returns early with `Err(PolicyError::Malformed(format!(...)))`.
macro_rules! malformed {
    ($($arg:tt)*) => {
        return Err(super::PolicyError::Malformed(format!($($arg)*)))
    };
}

/// Returns early with `Err(PolicyError::InvalidPrincipal(format!(...)))`.
macro_rules! bad_principal {
    ($($arg:tt)*) => {
        return Err(super::PolicyError::InvalidPrincipal(format!($($arg)*)))
    };
}

mod condition;
mod json;
mod parse;
#[cfg(test)]
mod tests;

use condition::Condition;
use std::collections::HashMap;

/// Which kind of document is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A key policy: every statement must have `Principal` or `NotPrincipal`.
    Key,
    /// An identity policy attached to a user or role: statements have no principal.
    Identity,
}

/// Why a policy document was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The document is not JSON. The message says where; AWS's answer has none.
    #[error("{0}")]
    NotJson(String),
    /// A `Principal`/`NotPrincipal` that names no valid principal. The message names it; AWS's
    /// answer is one fixed sentence (`texts::INVALID_PRINCIPALS`).
    #[error("{0}")]
    InvalidPrincipal(String),
    /// Any other fault: the message names the offending element and value. All three map to
    /// `MalformedPolicyDocumentException`.
    #[error("{0}")]
    Malformed(String),
}

/// A parsed and validated policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// One validated statement.
#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    /// `None` for identity policies.
    principal: Option<Principal>,
    actions: Negatable,
    resources: Negatable,
    conditions: Vec<Condition>,
}

/// A list of patterns for `X` or `NotX`.
#[derive(Debug, Clone)]
struct Negatable {
    negated: bool,
    patterns: Vec<String>,
}

/// `Principal` (or `NotPrincipal` if `negated`).
#[derive(Debug, Clone)]
struct Principal {
    negated: bool,
    entries: Vec<PrincipalEntry>,
}

#[derive(Debug, Clone)]
enum PrincipalEntry {
    /// `"*"` or `AWS: "*"`.
    Any,
    /// A 12-digit account id or the account's root ARN.
    Account(String),
    /// An IAM user, role or assumed-role ARN.
    Arn(String),
    /// A `Service`, `Federated` or `CanonicalUser` value.
    Other(String),
}

/// How a principal element matched the caller; ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Match {
    No,
    ViaAccount,
    Direct,
}

/// Facts about one request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Caller ARN, e.g. `arn:aws:iam::111122223333:user/alice` or `…:root`.
    pub principal_arn: &'a str,
    /// Caller account id, e.g. `111122223333`.
    pub principal_account: &'a str,
    /// Action, e.g. `kms:Encrypt` (compared case-insensitively).
    pub action: &'a str,
    /// Key ARN, or `*` for actions that are not scoped to a key.
    pub resource: &'a str,
    /// Condition-key values.
    pub context: &'a Context,
}

/// Condition-key values for a request. Keys are case-insensitive; a key may be absent,
/// single-valued or multi-valued. A key set to an empty list counts as absent.
#[derive(Debug, Clone, Default)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets a single-valued key (replacing any previous value).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_lowercase(), vec![value.into()]);
    }

    /// Sets a multi-valued key such as `kms:EncryptionContextKeys`.
    pub fn set_multi(&mut self, key: &str, values: Vec<String>) {
        self.values.insert(key.to_lowercase(), values);
    }

    /// Sets a boolean key, stored as `"true"`/`"false"`.
    pub fn set_bool(&mut self, key: &str, v: bool) {
        self.set(key, if v { "true" } else { "false" });
    }

    /// The values of `key`, or `None` if it is absent or empty.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_lowercase())
            .map(Vec::as_slice)
            .filter(|v| !v.is_empty())
    }
}

/// What one document says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evaluation {
    /// A Deny statement matched.
    pub explicit_deny: bool,
    /// An Allow statement matched whose principal names the caller directly (its ARN,
    /// `"*"`, `AWS:"*"`, or the caller's own account when the caller is that root).
    pub allow_direct: bool,
    /// An Allow statement matched only because its principal is the caller's account
    /// (root ARN or bare id): in AWS this delegates to the account's identity policies.
    /// For identity policies a matching Allow sets `allow_direct` instead.
    pub allow_via_account: bool,
}

impl Evaluation {
    /// Combines two evaluations (logical OR of every flag).
    pub fn merge(self, other: Evaluation) -> Evaluation {
        Evaluation {
            explicit_deny: self.explicit_deny || other.explicit_deny,
            allow_direct: self.allow_direct || other.allow_direct,
            allow_via_account: self.allow_via_account || other.allow_via_account,
        }
    }
}

impl Policy {
    /// Parses and validates a policy document of the given kind.
    pub fn parse(json: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        parse::parse_policy(json, kind).map(|statements| Policy { statements })
    }

    /// Evaluates every statement against the request.
    pub fn evaluate(&self, req: &Request) -> Evaluation {
        let mut ev = Evaluation::default();
        for st in &self.statements {
            let m = st
                .principal
                .as_ref()
                .map_or(Match::Direct, |p| p.matches(req));
            let applies = m != Match::No
                && st.actions.matches(req.action, action_matches)
                && st.resources.matches(req.resource, glob)
                && st.conditions.iter().all(|c| c.holds(req.context));
            match (applies, st.allow, m) {
                (false, ..) => {}
                (true, false, _) => ev.explicit_deny = true,
                (true, true, Match::Direct) => ev.allow_direct = true,
                (true, true, _) => ev.allow_via_account = true,
            }
        }
        ev
    }
}

impl Negatable {
    fn matches(&self, value: &str, pattern_matches: fn(&str, &str) -> bool) -> bool {
        self.patterns.iter().any(|p| pattern_matches(p, value)) != self.negated
    }
}

impl Principal {
    fn matches(&self, req: &Request) -> Match {
        let best = self.entries.iter().map(|e| e.matches(req)).max();
        match (self.negated, best.unwrap_or(Match::No)) {
            (false, m) => m,
            (true, Match::No) => Match::Direct,
            (true, _) => Match::No,
        }
    }
}

impl PrincipalEntry {
    fn matches(&self, req: &Request) -> Match {
        match self {
            PrincipalEntry::Any => Match::Direct,
            PrincipalEntry::Account(a) if root_account(req.principal_arn) == Some(a) => {
                Match::Direct
            }
            PrincipalEntry::Account(a) if req.principal_account == a => Match::ViaAccount,
            PrincipalEntry::Arn(a)
                if a == req.principal_arn || is_session_of(req.principal_arn, a) =>
            {
                Match::Direct
            }
            PrincipalEntry::Other(o) if o == req.principal_arn => Match::Direct,
            _ => Match::No,
        }
    }
}

/// Splits `arn:<partition>:<service>::<account>:<resource>` (IAM/STS ARNs have no region).
fn split_global_arn(arn: &str) -> Option<(&str, &str, &str, &str)> {
    let (partition, rest) = arn.strip_prefix("arn:")?.split_once(':')?;
    let (service, rest) = rest.split_once("::")?;
    let (account, resource) = rest.split_once(':')?;
    Some((partition, service, account, resource))
}

/// The account of an `arn:…:iam::<account>:root` ARN.
fn root_account(arn: &str) -> Option<&str> {
    match split_global_arn(arn)? {
        (_, "iam", account, "root") => Some(account),
        _ => None,
    }
}

/// Whether `caller` is an STS session (`assumed-role/<name>/<session>`) of IAM role `role`.
fn is_session_of(caller: &str, role: &str) -> bool {
    let (Some((cp, "sts", ca, cr)), Some((rp, "iam", ra, rr))) =
        (split_global_arn(caller), split_global_arn(role))
    else {
        return false;
    };
    let session_role = cr
        .strip_prefix("assumed-role/")
        .and_then(|s| s.split_once('/'));
    let role_name = rr.strip_prefix("role/").and_then(|p| p.rsplit('/').next());
    cp == rp && ca == ra && session_role.is_some() && session_role.map(|s| s.0) == role_name
}

/// Glob match with `*` (any run) and `?` (one character), case-sensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None; // (pattern index of '*', text index it resumes at)
    while let Some(&tc) = t.get(ti) {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&pc) if pc == '?' || pc == tc => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == '*')
}

/// Whether an action pattern (`*`, `kms:*`, `kms:Encrypt*`, `kms:?ecrypt`, …) matches an
/// action; case-insensitive.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_lowercase(), &action.to_lowercase())
}

/// Every KMS action: one per API operation, with `ReEncrypt` split into
/// `kms:ReEncryptFrom` and `kms:ReEncryptTo` (from the table of operations).
pub const KNOWN_ACTIONS: &[&str] = crate::operations::IAM_ACTIONS;
