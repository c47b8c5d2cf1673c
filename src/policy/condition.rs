//! The `Condition` element: operators, condition keys, typed values and evaluation.

use super::json::Json;
use super::parse::{quote, show, Result};
use super::{glob, Context};
use std::cmp::Ordering;
use std::net::IpAddr;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

/// One `operator: { key: values }` test.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    base: Base,
    negated: bool,
    if_exists: bool,
    set: SetQualifier,
    /// Lowercased condition key.
    key: String,
    values: Vec<Value>,
}

/// The comparison an operator performs (its negation is kept separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    String,
    StringIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

/// A policy or request value, typed for its operator.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Num(f64),
    /// Nanoseconds since the Unix epoch.
    Time(i128),
    /// Network address and prefix length (a plain address has the full length).
    Net(IpAddr, u8),
    Bool(bool),
}

/// Operator names without qualifier/suffix: (name, comparison, negated).
#[rustfmt::skip]
const OPERATORS: &[(&str, Base, bool)] = &[
    ("StringEquals", Base::String, false), ("StringNotEquals", Base::String, true),
    ("StringEqualsIgnoreCase", Base::StringIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Base::StringIgnoreCase, true),
    ("StringLike", Base::StringLike, false), ("StringNotLike", Base::StringLike, true),
    ("NumericEquals", Base::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Base::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Base::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Base::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Base::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Base::Numeric(Cmp::Ge), false),
    ("DateEquals", Base::Date(Cmp::Eq), false), ("DateNotEquals", Base::Date(Cmp::Eq), true),
    ("DateLessThan", Base::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Base::Date(Cmp::Le), false),
    ("DateGreaterThan", Base::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Base::Date(Cmp::Ge), false), ("Bool", Base::Bool, false),
    ("IpAddress", Base::Ip, false), ("NotIpAddress", Base::Ip, true),
    ("ArnEquals", Base::Arn, false), ("ArnNotEquals", Base::Arn, true),
    ("ArnLike", Base::Arn, false), ("ArnNotLike", Base::Arn, true), ("Null", Base::Null, false),
];

/// Condition keys accepted verbatim (compared case-insensitively).
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "kms:EncryptionContextKeys", "kms:CallerAccount", "kms:GrantOperations",
    "kms:GrantIsForAWSResource", "kms:GranteePrincipal", "kms:RetiringPrincipal",
    "kms:GrantConstraintType", "kms:RequestAlias", "kms:ResourceAliases", "kms:KeySpec",
    "kms:KeyUsage", "kms:KeyOrigin", "kms:CustomerMasterKeySpec", "kms:CustomerMasterKeyUsage",
    "kms:EncryptionAlgorithm", "kms:SigningAlgorithm", "kms:MacAlgorithm", "kms:MessageType",
    "kms:DataKeyPairSpec", "kms:KeyAgreementAlgorithm", "kms:ViaService",
    "kms:BypassPolicyLockoutSafetyCheck", "kms:RotationPeriodInDays",
    "kms:ScheduleKeyDeletionPendingWindowInDays", "kms:ReEncryptOnSameKey", "kms:WrappingAlgorithm",
    "kms:WrappingKeySpec", "kms:ExpirationModel", "kms:ValidTo", "kms:ImportType",
    "kms:MultiRegion", "kms:MultiRegionKeyType", "kms:PrimaryRegion", "kms:ReplicaRegion",
    "kms:KeyMaterialId", "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalType",
    "aws:username", "aws:userid", "aws:SourceIp", "aws:CurrentTime", "aws:EpochTime",
    "aws:SecureTransport", "aws:TagKeys", "aws:RequestedRegion",
];

/// Condition-key families: the prefix must be followed by a non-empty name.
const KEY_PREFIXES: &[&str] = &[
    "kms:EncryptionContext:",
    "aws:RequestTag/",
    "aws:ResourceTag/",
    "aws:PrincipalTag/",
];

fn known_key(key: &str) -> bool {
    KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
        || KEY_PREFIXES.iter().any(|p| {
            key.len() > p.len()
                && key
                    .get(..p.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(p))
        })
}

/// Splits an operator name into (comparison, negated, if_exists, set qualifier).
fn parse_operator(name: &str, at: &str) -> Result<(Base, bool, bool, SetQualifier)> {
    let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (SetQualifier::ForAnyValue, r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (SetQualifier::ForAllValues, r)
    } else {
        (SetQualifier::None, name)
    };
    let (if_exists, base_name) = match rest.strip_suffix("IfExists") {
        Some(b) => (true, b),
        None => (false, rest),
    };
    if base_name == "BinaryEquals" {
        malformed!("{at}: condition operator {} is not supported", quote(name));
    }
    let Some(&(_, base, negated)) = OPERATORS.iter().find(|(n, ..)| *n == base_name) else {
        malformed!("{at}: unknown condition operator {}", quote(name));
    };
    if base == Base::Null && (if_exists || set != SetQualifier::None) {
        malformed!("{at}: condition operator {}: Null cannot take IfExists or a ForAnyValue/ForAllValues qualifier", quote(name));
    }
    Ok((base, negated, if_exists, set))
}

/// Parses a statement's `Condition` element.
pub(super) fn parse_block(v: &Json, at: &str) -> Result<Vec<Condition>> {
    let Json::Obj(operators) = v else {
        malformed!("{at}: Condition must be an object, got {}", show(v));
    };
    let mut out = Vec::new();
    for (op, block) in operators {
        let (base, negated, if_exists, set) = parse_operator(op, at)?;
        let keys = match block {
            Json::Obj(keys) if !keys.is_empty() => keys,
            _ => malformed!(
                "{at}: Condition.{op} must be a non-empty object of condition keys, got {}",
                show(block)
            ),
        };
        for (key, raw) in keys {
            if !known_key(key) {
                malformed!("{at}: unknown condition key {} in {op}", quote(key));
            }
            let here = format!("{at}: Condition.{op}.{key}");
            let values = scalars(raw, &here)?
                .iter()
                .map(|s| match parse_value(base, s) {
                    Some(v) => Ok(v),
                    None => malformed!("{here}: {} is not {}", quote(s), expected(base)),
                })
                .collect::<Result<Vec<_>>>()?;
            let key = key.to_lowercase();
            out.push(Condition {
                base,
                negated,
                if_exists,
                set,
                key,
                values,
            });
        }
    }
    Ok(out)
}

/// Condition values: a string, boolean, number or non-empty array of those, as strings.
fn scalars(v: &Json, here: &str) -> Result<Vec<String>> {
    let one = |v: &Json| match v {
        Json::Str(s) | Json::Num(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let list = match v {
        Json::Arr(items) if !items.is_empty() => items.iter().map(one).collect(),
        Json::Arr(_) => None,
        other => one(other).map(|s| vec![s]),
    };
    match list {
        Some(list) => Ok(list),
        None => malformed!(
            "{here}: value must be a string, boolean, number or non-empty array of those, got {}",
            show(v)
        ),
    }
}

fn expected(base: Base) -> &'static str {
    match base {
        Base::Numeric(_) => "a number",
        Base::Date(_) => "a date (ISO 8601 / RFC 3339 or epoch seconds)",
        Base::Bool | Base::Null => "a boolean (\"true\" or \"false\")",
        Base::Ip => "an IP address or CIDR block",
        _ => "a string",
    }
}

/// Parses a policy value (or a request value, see [`request_value`]) for an operator.
fn parse_value(base: Base, s: &str) -> Option<Value> {
    match base {
        Base::String | Base::StringLike | Base::Arn => Some(Value::Str(s.to_owned())),
        Base::StringIgnoreCase => Some(Value::Str(s.to_lowercase())),
        Base::Numeric(_) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Num),
        Base::Date(_) => parse_time(s).map(Value::Time),
        Base::Bool | Base::Null => parse_bool(s).map(Value::Bool),
        Base::Ip => parse_cidr(s),
    }
}

/// Request values are parsed like policy values, except IP values must be plain addresses.
fn request_value(base: Base, s: &str) -> Option<Value> {
    match base {
        Base::Ip => s.parse::<IpAddr>().ok().map(|ip| {
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            Value::Net(ip, if ip.is_ipv4() { 32 } else { 128 })
        }),
        _ => parse_value(base, s),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// RFC 3339, other ISO 8601 date-times with offset, `YYYY-MM-DD` (midnight UTC) or epoch
/// seconds; returns nanoseconds since the epoch.
fn parse_time(s: &str) -> Option<i128> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Some(i128::from(secs) * 1_000_000_000);
    }
    // Fractional epoch seconds; bounded so the conversion cannot saturate.
    let secs = s
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && f.abs() < 1e15)?;
    Some((secs * 1e9) as i128)
}

/// `a.b.c.d[/n]` or an IPv6 address with optional `/n`.
fn parse_cidr(s: &str) -> Option<Value> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
            l.parse::<u8>().ok().filter(|n| *n <= max)?
        }
        Some(_) => return None,
    };
    Some(Value::Net(ip, len))
}

fn in_network(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    let (a, b) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (
            u128::from(u32::from(n)) << 96,
            u128::from(u32::from(i)) << 96,
        ),
        (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i)),
        _ => return false,
    };
    let mask = u128::MAX
        .checked_shl(128u32.saturating_sub(len.into()))
        .unwrap_or(0);
    a & mask == b & mask
}

/// ARN match: colon-separated segments compared pairwise with `*`/`?` wildcards.
fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(p.len(), ':').collect();
    p.len() == a.len() && p.iter().zip(&a).all(|(p, a)| glob(p, a))
}

fn compare(cmp: Cmp, ord: Option<Ordering>) -> bool {
    use Ordering::{Equal, Greater, Less};
    matches!(
        (cmp, ord),
        (Cmp::Eq, Some(Equal))
            | (Cmp::Lt, Some(Less))
            | (Cmp::Le, Some(Less | Equal))
            | (Cmp::Gt, Some(Greater))
            | (Cmp::Ge, Some(Greater | Equal))
    )
}

impl Condition {
    /// Whether the condition holds for the request context.
    pub(super) fn holds(&self, ctx: &Context) -> bool {
        let request = ctx.get(&self.key);
        if self.base == Base::Null {
            let present = request.is_some();
            return self.values.contains(&Value::Bool(!present));
        }
        let Some(request) = request else {
            return self.if_exists
                || match self.set {
                    SetQualifier::ForAllValues => true,
                    SetQualifier::ForAnyValue => false,
                    SetQualifier::None => self.negated,
                };
        };
        // Per request value: matches some policy value (positive) / none (negated).
        let test = |rv: &String| self.matches_any(rv) != self.negated;
        match self.set {
            SetQualifier::None if self.negated => request.iter().all(test),
            SetQualifier::None | SetQualifier::ForAnyValue => request.iter().any(test),
            SetQualifier::ForAllValues => request.iter().all(test),
        }
    }

    /// Whether a request value matches at least one policy value (ignoring negation).
    fn matches_any(&self, raw: &str) -> bool {
        let Some(rv) = request_value(self.base, raw) else {
            return false;
        };
        self.values.iter().any(|pv| match (self.base, pv, &rv) {
            (Base::String | Base::StringIgnoreCase, Value::Str(p), Value::Str(r)) => p == r,
            (Base::StringLike, Value::Str(p), Value::Str(r)) => glob(p, r),
            (Base::Arn, Value::Str(p), Value::Str(r)) => arn_like(p, r),
            (Base::Numeric(c), Value::Num(p), Value::Num(r)) => compare(c, r.partial_cmp(p)),
            (Base::Date(c), Value::Time(p), Value::Time(r)) => compare(c, Some(r.cmp(p))),
            (Base::Bool, Value::Bool(p), Value::Bool(r)) => p == r,
            (Base::Ip, Value::Net(net, len), Value::Net(ip, _)) => in_network(*net, *len, *ip),
            _ => false,
        })
    }
}
