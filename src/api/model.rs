//! Request validation from the service model, before anything else, as AWS does: the
//! constraints of every operation's input (`model.json`, extracted from the AWS KMS service
//! model by `scripts/model-constraints.py`) — required members, string and blob lengths,
//! integer ranges, enum values, list lengths — reported together in the model's wording
//! ("2 validation errors detected: Value '…' at 'keyId' failed to satisfy constraint: …; …").
//!
//! The body is walked with a `DeserializeSeed` guided by the shapes: string values are
//! measured where the parser holds them and never copied, so secret members (plaintext) are
//! not duplicated; a sensitive member's or a blob's value is never echoed. Type mismatches and
//! malformed JSON are left to the typed parse (`SerializationException`).

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::kms::texts;

#[derive(Deserialize)]
struct Model {
    operations: HashMap<String, String>,
    shapes: HashMap<String, Shape>,
}

#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "type")]
    kind: String,
    min: Option<i64>,
    max: Option<i64>,
    #[serde(rename = "enum")]
    values: Option<Vec<String>>,
    /// A Java-style regular expression the whole value must match.
    pattern: Option<String>,
    #[serde(skip)]
    compiled: OnceLock<Option<regex_lite::Regex>>,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    members: Vec<(String, String)>,
    member: Option<String>,
}

fn model() -> Option<&'static Model> {
    static MODEL: OnceLock<Option<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| serde_json::from_str(include_str!("model.json")).ok())
        .as_ref()
}

/// The constraint violations of `body` for `operation`, in the model's wording (empty: valid,
/// or not JSON this check can read).
pub fn violations(operation: &str, body: &[u8]) -> Vec<String> {
    let Some(m) = model() else {
        return Vec::new();
    };
    let Some(shape) = m.operations.get(operation).and_then(|s| m.shapes.get(s)) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        check_required(shape, &[], "", &mut errors);
        return errors;
    }
    // Not UTF-8: not JSON, which the request parser answers.
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Check {
        model: m,
        shape,
        path: String::new(),
        errors: &mut errors,
    };
    // Anything after the value (found by the fuzz run: `{…}\0`) makes the body malformed,
    // which the request parser answers; constraint violations are for well-formed bodies.
    if seed.deserialize(&mut de).is_err() || de.end().is_err() {
        return Vec::new();
    }
    errors
}

/// The model's Java-style pattern as a whole-value regex (`\uXXXX` → `\x{XXXX}`); None if it
/// does not compile (then it is not checked).
fn compile(pattern: &str) -> Option<regex_lite::Regex> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'u') {
            chars.next();
            let hex: String = chars.by_ref().take(4).collect();
            out.push_str(&format!("\\x{{{hex}}}"));
        } else {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
        }
    }
    regex_lite::Regex::new(&format!("^(?:{out})$")).ok()
}

/// `KeyId` → `keyId`, as AWS names members in validation messages.
fn camel(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn join(parent: &str, member: &str) -> String {
    if parent.is_empty() {
        camel(member)
    } else {
        format!("{parent}.{}", camel(member))
    }
}

fn check_required(shape: &Shape, present: &[String], path: &str, errors: &mut Vec<String>) {
    for r in &shape.required {
        if !present.iter().any(|p| p == r) {
            errors.push(texts::not_null(&join(path, r)));
        }
    }
}

struct Check<'a> {
    model: &'a Model,
    shape: &'a Shape,
    path: String,
    errors: &'a mut Vec<String>,
}

impl Check<'_> {
    /// The value as AWS quotes it, or none for secrets and blobs.
    fn quoted(&self, v: &str) -> Option<String> {
        (!self.shape.sensitive && self.shape.kind != "blob").then(|| v.to_string())
    }

    fn fail(&mut self, value: Option<String>, what: String) {
        self.errors.push(match value {
            Some(v) => texts::constraint(&v, &self.path, &what),
            None => texts::constraint_unquoted(&self.path, &what),
        });
    }

    fn length(&mut self, n: usize, value: Option<String>) {
        if let Some(min) = self.shape.min {
            if (n as i64) < min {
                return self.fail(value, texts::length_at_least(min as usize));
            }
        }
        if let Some(max) = self.shape.max {
            if (n as i64) > max {
                self.fail(value, texts::length_at_most(max as usize));
            }
        }
    }

    fn string(&mut self, v: &str) {
        match self.shape.kind.as_str() {
            "string" => {
                if let Some(values) = &self.shape.values {
                    if !values.iter().any(|x| x == v) {
                        let what = texts::enum_set(&format!("[{}]", values.join(", ")));
                        let q = self.quoted(v);
                        return self.fail(q, what);
                    }
                }
                let q = self.quoted(v);
                self.length(v.chars().count(), q.clone());
                if let Some(p) = &self.shape.pattern {
                    let re = self.shape.compiled.get_or_init(|| compile(p));
                    if re.as_ref().is_some_and(|re| !re.is_match(v)) {
                        let what = format!("Member must satisfy regular expression pattern: {p}");
                        self.fail(q, what);
                    }
                }
            }
            "blob" => {
                // The decoded length, from the base64 text (malformed base64 is the typed
                // parse's to report).
                let t = v.trim_end();
                if t.len() % 4 == 0 {
                    let pad = t.bytes().rev().take_while(|b| *b == b'=').count().min(2);
                    self.length(t.len() / 4 * 3 - pad, None);
                }
            }
            _ => {}
        }
    }

    fn integer(&mut self, v: i128) {
        if self.shape.kind != "integer" && self.shape.kind != "long" {
            return;
        }
        let q = Some(v.to_string());
        if let Some(min) = self.shape.min {
            if v < i128::from(min) {
                return self.fail(q, texts::at_least(min));
            }
        }
        if let Some(max) = self.shape.max {
            if v > i128::from(max) {
                self.fail(q, texts::at_most(max));
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a request member")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.integer(i128::from(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.integer(i128::from(v));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.string(v);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.shape.kind != "structure" {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let model = self.model;
        let mut present = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let member = self
                .shape
                .members
                .iter()
                .find(|(m, _)| *m == key)
                .and_then(|(_, s)| model.shapes.get(s));
            match member {
                Some(shape) => {
                    let path = join(&self.path, &key);
                    let null = map.next_value_seed(NullOr(Check {
                        model: self.model,
                        shape,
                        path,
                        errors: &mut *self.errors,
                    }))?;
                    if !null {
                        present.push(key);
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        check_required(self.shape, &present, &self.path, self.errors);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let model = self.model;
        let element = self
            .shape
            .member
            .as_deref()
            .and_then(|s| model.shapes.get(s));
        let mut n = 0usize;
        loop {
            let next = match element {
                Some(shape) if self.shape.kind == "list" => {
                    seq.next_element_seed(NullOr(Check {
                        model: self.model,
                        shape,
                        path: format!("{}.{}.member", self.path, n + 1),
                        errors: &mut *self.errors,
                    }))?
                }
                _ => seq.next_element::<IgnoredAny>()?.map(|_| false),
            };
            if next.is_none() {
                break;
            }
            n += 1;
        }
        if self.shape.kind == "list" {
            self.length(n, None);
        }
        Ok(())
    }
}

/// A member's value, or JSON null (which counts as absent); true if it was null.
struct NullOr<'a>(Check<'a>);

impl<'de> DeserializeSeed<'de> for NullOr<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for NullOr<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a request member or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        self.0.deserialize(d).map(|()| false)
    }
}

#[cfg(test)]
mod tests {
    use super::violations;

    #[test]
    fn model_wording_paths_and_several_at_once() {
        assert_eq!(
            violations("GenerateRandom", br#"{"NumberOfBytes": 0}"#),
            vec!["Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1"]
        );
        let long = "k".repeat(129);
        let body = format!(r#"{{"KeyId": "", "Tags": [{{"TagKey": "{long}", "TagValue": "v"}}]}}"#);
        assert_eq!(
            violations("TagResource", body.as_bytes()),
            vec![
                "Value '' at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1".to_string(),
                format!("Value '{long}' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128"),
            ]
        );
        // Secrets are not echoed; blob lengths are decoded lengths.
        let big = "A".repeat(4100 / 3 * 4 + 4);
        let body = format!(r#"{{"KeyId": "k", "Plaintext": "{big}"}}"#);
        assert_eq!(
            violations("Encrypt", body.as_bytes()),
            vec!["Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096"]
        );
        assert_eq!(
            violations("Encrypt", b"{}"),
            vec![
                "Value null at 'keyId' failed to satisfy constraint: Member must not be null",
                "Value null at 'plaintext' failed to satisfy constraint: Member must not be null"
            ]
        );
        assert_eq!(
            violations("CreateKey", br#"{"KeyUsage": "NOPE"}"#),
            vec!["Value 'NOPE' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: [SIGN_VERIFY, ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC, KEY_AGREEMENT, ENCAPSULATE_DECAPSULATE]"]
        );
        // Patterns (Java style, whole value); both a length and a pattern may fail.
        assert_eq!(
            violations("CreateAlias", br#"{"AliasName": "alias/with space", "TargetKeyId": "k"}"#),
            vec!["Value 'alias/with space' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"]
        );
        assert!(violations(
            "PutKeyPolicy",
            br#"{"KeyId": "k", "Policy": "{\"a\": \"\t\"}"}"#
        )
        .is_empty());
        assert_eq!(
            violations(
                "PutKeyPolicy",
                "{\"KeyId\": \"k\", \"Policy\": \"\u{2603}\"}".as_bytes()
            )
            .len(),
            1
        );
        // A JSON null is an absent member; unknown members are ignored; bad JSON is not ours.
        assert!(violations("ListKeys", br#"{"Limit": null, "Other": [1]}"#).is_empty());
        assert!(violations("ListKeys", b"{not json").is_empty());
    }

    /// Found by the fuzz run (`tests/fuzz.rs::request_bodies`): a value followed by anything
    /// but whitespace is not a JSON body, so no constraint violations are reported for it (the
    /// request parser answers SerializationException) — before, the violations of the part
    /// before the junk were.
    #[test]
    fn trailing_bytes_are_not_a_body_to_check() {
        let body = br##"{"AliasName":10000000000000000000,"#eyId":"SYMMETRIC_DEFAULT"}"##;
        assert!(!violations("DescribeKey", body).is_empty());
        for junk in [&b"\0"[..], b"x", b"{}", b"]"] {
            let with_junk = [&body[..], junk].concat();
            assert!(violations("DescribeKey", &with_junk).is_empty(), "{junk:?}");
        }
        assert!(!violations("DescribeKey", &[&body[..], b" \n"].concat()).is_empty());
    }
}
