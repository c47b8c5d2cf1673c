//! Validation of a policy document into [`Statement`]s.

use super::json::Json;
use super::{condition, Negatable, PolicyError, PolicyKind, Principal, PrincipalEntry, Statement};

pub(super) type Result<T> = std::result::Result<T, PolicyError>;

/// `s` quoted for an error message, shortened if long.
pub(super) fn quote(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((cut, _)) => format!("{:?}…", s.get(..cut).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

/// A short rendering of a value for error messages.
pub(super) fn show(v: &Json) -> String {
    match v {
        Json::Str(s) => quote(s),
        Json::Num(n) => n.clone(),
        Json::Bool(b) => b.to_string(),
        other => other.type_name().to_owned(),
    }
}

/// Parses the whole document.
pub(super) fn parse_policy(text: &str, kind: PolicyKind) -> Result<Vec<Statement>> {
    let doc: Json = match serde_json::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(super::PolicyError::NotJson(format!(
                "invalid policy JSON: {e}"
            )))
        }
    };
    let Json::Obj(members) = doc else {
        malformed!("policy must be a JSON object, got {}", doc.type_name());
    };
    let mut statements = None;
    for (name, value) in members {
        match (name.as_str(), &value) {
            ("Version", Json::Str(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            ("Version", v) => malformed!(
                "Version must be \"2012-10-17\" or \"2008-10-17\", got {}",
                show(v)
            ),
            ("Id", Json::Str(_)) => {}
            ("Id", v) => malformed!("Id must be a string, got {}", show(v)),
            ("Statement", _) => statements = Some(value),
            _ => malformed!("unknown top-level member {}", quote(&name)),
        }
    }
    let list = match statements {
        None => malformed!("policy has no Statement"),
        Some(Json::Arr(v)) if v.is_empty() => malformed!("Statement must not be empty"),
        Some(Json::Arr(v)) => v,
        Some(o @ Json::Obj(_)) => vec![o],
        Some(v) => malformed!(
            "Statement must be an object or an array of objects, got {}",
            show(&v)
        ),
    };
    list.iter()
        .enumerate()
        .map(|(i, s)| statement(s, i, kind))
        .collect()
}

/// Parses one statement; `i` is its index in the Statement array.
fn statement(s: &Json, i: usize, kind: PolicyKind) -> Result<Statement> {
    let Json::Obj(members) = s else {
        malformed!("Statement[{i}] must be an object, got {}", show(s));
    };
    let at = match members.iter().find(|(k, _)| k == "Sid") {
        Some((_, Json::Str(sid))) => format!("Statement[{i}] (Sid {})", quote(sid)),
        _ => format!("Statement[{i}]"),
    };
    let (mut effect, mut actions, mut resources, mut principal) = (None, None, None, None);
    let mut conditions = Vec::new();
    for (name, v) in members {
        let name = name.as_str();
        let negated = name.starts_with("Not");
        match (name, v) {
            ("Sid", Json::Str(_)) => {}
            ("Sid", _) => malformed!("{at}: Sid must be a string, got {}", show(v)),
            ("Effect", Json::Str(e)) if e == "Allow" || e == "Deny" => effect = Some(e == "Allow"),
            ("Effect", _) => malformed!(
                "{at}: Effect must be \"Allow\" or \"Deny\", got {}",
                show(v)
            ),
            ("Action" | "NotAction", _) => {
                let patterns = strings(v, &at, name)?;
                if let Some(bad) = patterns.iter().find(|a| !valid_action(a)) {
                    malformed!("{at}: {name} contains invalid action {} (expected \"*\" or \"<service>:<action>\")", quote(bad));
                }
                set_once(&mut actions, Negatable { negated, patterns }, &at, "Action")?;
            }
            ("Resource" | "NotResource", _) => {
                let patterns = strings(v, &at, name)?;
                set_once(
                    &mut resources,
                    Negatable { negated, patterns },
                    &at,
                    "Resource",
                )?;
            }
            ("Principal" | "NotPrincipal", _) if kind == PolicyKind::Identity => {
                malformed!("{at}: {name} is not allowed in an identity policy")
            }
            ("Principal" | "NotPrincipal", _) => {
                let entries = principal_entries(v, &at, name)?;
                set_once(
                    &mut principal,
                    Principal { negated, entries },
                    &at,
                    "Principal",
                )?;
            }
            ("Condition", _) => conditions = condition::parse_block(v, &at)?,
            _ => malformed!("{at}: unknown statement member {}", quote(name)),
        }
    }
    let Some(allow) = effect else {
        malformed!("{at}: missing Effect")
    };
    let Some(actions) = actions else {
        malformed!("{at}: missing Action or NotAction")
    };
    let Some(resources) = resources else {
        malformed!("{at}: missing Resource or NotResource")
    };
    if kind == PolicyKind::Key && principal.is_none() {
        malformed!("{at}: missing Principal or NotPrincipal (required in a key policy)");
    }
    Ok(Statement {
        allow,
        principal,
        actions,
        resources,
        conditions,
    })
}

/// Stores `value` for element `X`, rejecting a statement that has both `X` and `NotX`.
fn set_once<T>(slot: &mut Option<T>, value: T, at: &str, element: &str) -> Result<()> {
    if slot.replace(value).is_some() {
        malformed!("{at}: must not contain both {element} and Not{element}");
    }
    Ok(())
}

/// A string or a non-empty array of strings; no string may be empty.
fn strings(v: &Json, at: &str, name: &str) -> Result<Vec<String>> {
    let items = match v {
        Json::Str(_) => std::slice::from_ref(v),
        Json::Arr(items) if !items.is_empty() => items,
        Json::Arr(_) => malformed!("{at}: {name} must not be an empty array"),
        _ => malformed!(
            "{at}: {name} must be a string or an array of strings, got {}",
            show(v)
        ),
    };
    items
        .iter()
        .map(|item| match item {
            Json::Str(s) if s.is_empty() => {
                malformed!("{at}: {name} must not contain an empty string")
            }
            Json::Str(s) => Ok(s.clone()),
            other => malformed!(
                "{at}: {name} must contain only strings, got {}",
                show(other)
            ),
        })
        .collect()
}

/// `*` or `<service>:<action pattern>`.
fn valid_action(a: &str) -> bool {
    let Some((service, op)) = a.split_once(':') else {
        return a == "*";
    };
    let service_ok = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let op_ok = |c: char| c.is_ascii_alphanumeric() || "*?-_.".contains(c);
    !service.is_empty()
        && service.chars().all(service_ok)
        && !op.is_empty()
        && op.chars().all(op_ok)
}

/// The entries of a `Principal`/`NotPrincipal` element.
fn principal_entries(v: &Json, at: &str, name: &str) -> Result<Vec<PrincipalEntry>> {
    let members = match v {
        Json::Str(s) if s == "*" => return Ok(vec![PrincipalEntry::Any]),
        Json::Obj(members) if !members.is_empty() => members,
        Json::Obj(_) => bad_principal!("{at}: {name} must name at least one principal"),
        _ => bad_principal!("{at}: {name} must be \"*\" or an object with AWS, Service, Federated or CanonicalUser members, got {}", show(v)),
    };
    let mut entries = Vec::new();
    for (kind, value) in members {
        if !["AWS", "Service", "Federated", "CanonicalUser"].contains(&kind.as_str()) {
            bad_principal!("{at}: unknown principal type {} in {name} (expected AWS, Service, Federated or CanonicalUser)", quote(kind));
        }
        let what = format!("{name}.{kind}");
        for p in strings(value, at, &what)? {
            let plain = !p.chars().any(|c| c.is_whitespace() || c == '*');
            match (kind.as_str(), aws_principal(&p)) {
                ("AWS", Some(entry)) => entries.push(entry),
                ("AWS", None) => bad_principal!("{at}: {what} has invalid principal {} (expected \"*\", a 12-digit account id or an IAM root, user, role or assumed-role ARN)", quote(&p)),
                _ if plain => entries.push(PrincipalEntry::Other(p)),
                _ => bad_principal!("{at}: {what} has invalid principal {}", quote(&p)),
            }
        }
    }
    Ok(entries)
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `*`, a 12-digit account id, or an IAM root/user/role/assumed-role ARN.
fn aws_principal(s: &str) -> Option<PrincipalEntry> {
    if s == "*" {
        return Some(PrincipalEntry::Any);
    }
    if is_account_id(s) {
        return Some(PrincipalEntry::Account(s.to_owned()));
    }
    let (partition, service, account, resource) = super::split_global_arn(s)?;
    let partition_ok = partition.starts_with("aws")
        && partition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-');
    if !partition_ok || !is_account_id(account) {
        return None;
    }
    // user/<path/>name, role/<path/>name, assumed-role/<name>/<session>.
    let name_ok = |seg: &&str| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    };
    let path_ok = |rest: &str| rest.split('/').all(|seg| name_ok(&seg));
    let user_or_role = |r: &str| {
        r.strip_prefix("user/")
            .or_else(|| r.strip_prefix("role/"))
            .is_some_and(path_ok)
    };
    let session = |r: &str| {
        r.strip_prefix("assumed-role/")
            .is_some_and(|rest| path_ok(rest) && rest.split('/').count() == 2)
    };
    match (service, resource) {
        ("iam", "root") => Some(PrincipalEntry::Account(account.to_owned())),
        ("iam", r) if user_or_role(r) || session(r) => Some(PrincipalEntry::Arn(s.to_owned())),
        ("sts", r) if session(r) => Some(PrincipalEntry::Arn(s.to_owned())),
        _ => None,
    }
}
