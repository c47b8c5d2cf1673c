//! Request shapes (JSON members exactly as the service model names them) and helpers that
//! turn wire values into domain values. Every member is optional at the serde level so that
//! a missing required member becomes a `ValidationException`, not a serialization error.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use super::error::ProtocolError;
use crate::kms::ids::KeyRef;
use crate::kms::texts;

type Res<T> = Result<T, ProtocolError>;

/// A base64 blob member.
fn blob<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    d.deserialize_option(Base64Member)
}

/// A base64 blob member holding a secret (plaintext): decoded straight into a zeroizing buffer.
fn secret_blob<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<Vec<u8>>>, D::Error> {
    // The decoder allocates the exact output once (no reallocation leaves a copy behind).
    Ok(blob(d)?.map(Zeroizing::new))
}

/// Decodes a base64 string member where the parser holds its text: no copy of the (possibly
/// secret) text is made, and none is left to wipe.
struct Base64Member;

impl<'de> serde::de::Visitor<'de> for Base64Member {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        b64_decode(v.as_bytes()).map(Some).map_err(E::custom)
    }
}

pub type WireContext = Option<BTreeMap<String, String>>;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TagWire {
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateKeyReq {
    pub policy: Option<String>,
    pub description: Option<String>,
    pub key_usage: Option<String>,
    pub customer_master_key_spec: Option<String>,
    pub key_spec: Option<String>,
    pub origin: Option<String>,
    pub custom_key_store_id: Option<String>,
    pub bypass_policy_lockout_safety_check: Option<bool>,
    pub tags: Option<Vec<TagWire>>,
    pub multi_region: Option<bool>,
    pub xks_key_id: Option<String>,
}

/// Operations whose input is a key id plus optional paging/filters.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct KeyReq {
    pub key_id: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
    pub pending_window_in_days: Option<i64>,
    pub description: Option<String>,
    pub rotation_period_in_days: Option<i64>,
    pub include_key_material: Option<String>,
    pub policy_name: Option<String>,
    pub policy: Option<String>,
    pub bypass_policy_lockout_safety_check: Option<bool>,
    pub tags: Option<Vec<TagWire>>,
    pub tag_keys: Option<Vec<String>>,
    /// ReplicateKey.
    pub replica_region: Option<String>,
    /// UpdatePrimaryRegion.
    pub primary_region: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AliasReq {
    pub alias_name: Option<String>,
    pub target_key_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptReq {
    /// Check permissions only (DryRunOperationException when they would allow the call).
    pub dry_run: Option<bool>,
    pub key_id: Option<String>,
    #[serde(default, deserialize_with = "secret_blob")]
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    pub encryption_context: WireContext,
    pub grant_tokens: Option<Vec<String>>,
    pub encryption_algorithm: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptReq {
    /// Check permissions only (DryRunOperationException when they would allow the call).
    pub dry_run: Option<bool>,
    #[serde(default, deserialize_with = "blob")]
    pub ciphertext_blob: Option<Vec<u8>>,
    pub encryption_context: WireContext,
    pub grant_tokens: Option<Vec<String>>,
    pub key_id: Option<String>,
    pub encryption_algorithm: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptReq {
    /// Check permissions only (DryRunOperationException when they would allow the call).
    pub dry_run: Option<bool>,
    #[serde(default, deserialize_with = "blob")]
    pub ciphertext_blob: Option<Vec<u8>>,
    pub source_encryption_context: WireContext,
    pub source_key_id: Option<String>,
    pub destination_key_id: Option<String>,
    pub destination_encryption_context: WireContext,
    pub source_encryption_algorithm: Option<String>,
    pub destination_encryption_algorithm: Option<String>,
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DataKeyReq {
    /// Check permissions only (DryRunOperationException when they would allow the call).
    pub dry_run: Option<bool>,
    pub key_id: Option<String>,
    pub encryption_context: WireContext,
    pub number_of_bytes: Option<i64>,
    pub key_spec: Option<String>,
    pub grant_tokens: Option<Vec<String>>,
}

/// Sign, Verify and GetPublicKey.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SignReq {
    /// Check permissions only (DryRunOperationException when they would allow the call).
    pub dry_run: Option<bool>,
    pub key_id: Option<String>,
    #[serde(default, deserialize_with = "secret_blob")]
    pub message: Option<Zeroizing<Vec<u8>>>,
    pub message_type: Option<String>,
    pub signing_algorithm: Option<String>,
    #[serde(default, deserialize_with = "blob")]
    pub signature: Option<Vec<u8>>,
    pub grant_tokens: Option<Vec<String>>,
}

/// GenerateMac and VerifyMac.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct MacReq {
    /// Check permissions only (DryRunOperationException when they would allow the call).
    pub dry_run: Option<bool>,
    pub key_id: Option<String>,
    #[serde(default, deserialize_with = "secret_blob")]
    pub message: Option<Zeroizing<Vec<u8>>>,
    pub mac_algorithm: Option<String>,
    #[serde(default, deserialize_with = "blob")]
    pub mac: Option<Vec<u8>>,
    pub grant_tokens: Option<Vec<String>>,
}

/// DeriveSharedSecret.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DeriveReq {
    pub dry_run: Option<bool>,
    pub key_id: Option<String>,
    pub key_agreement_algorithm: Option<String>,
    #[serde(default, deserialize_with = "blob")]
    pub public_key: Option<Vec<u8>>,
    pub grant_tokens: Option<Vec<String>>,
    pub recipient: Option<serde_json::Value>,
}

/// Encapsulate and Decapsulate (ML-KEM).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct KemReq {
    pub dry_run: Option<bool>,
    pub key_id: Option<String>,
    pub encapsulation_algorithm: Option<String>,
    #[serde(default, deserialize_with = "blob")]
    pub shared_secret_ciphertext_blob: Option<Vec<u8>>,
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DataKeyPairReq {
    /// Check permissions only (DryRunOperationException when they would allow the call).
    pub dry_run: Option<bool>,
    pub key_id: Option<String>,
    pub encryption_context: WireContext,
    pub key_pair_spec: Option<String>,
    pub grant_tokens: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RandomReq {
    pub number_of_bytes: Option<i64>,
    pub custom_key_store_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GrantReq {
    /// Check permissions only (DryRunOperationException when they would allow the call).
    pub dry_run: Option<bool>,
    pub key_id: Option<String>,
    pub grantee_principal: Option<String>,
    pub retiring_principal: Option<String>,
    pub operations: Option<Vec<String>>,
    pub constraints: Option<ConstraintsWire>,
    pub grant_tokens: Option<Vec<String>>,
    pub name: Option<String>,
    pub grant_id: Option<String>,
    pub grant_token: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
    pub grantee_service_principal: Option<String>,
    pub retiring_service_principal: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ConstraintsWire {
    pub encryption_context_subset: Option<BTreeMap<String, String>>,
    pub encryption_context_equals: Option<BTreeMap<String, String>>,
    pub source_arn: Option<String>,
}

/// The custom key store operations' members (KeyStorePassword decoded into a zeroizing string).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct KeyStoreReq {
    pub custom_key_store_id: Option<String>,
    pub custom_key_store_name: Option<String>,
    pub new_custom_key_store_name: Option<String>,
    pub cloud_hsm_cluster_id: Option<String>,
    pub trust_anchor_certificate: Option<String>,
    #[serde(default, deserialize_with = "secret_string")]
    pub key_store_password: Option<Zeroizing<String>>,
    pub custom_key_store_type: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

fn secret_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ImportReq {
    pub key_id: Option<String>,
    pub wrapping_algorithm: Option<String>,
    pub wrapping_key_spec: Option<String>,
    #[serde(default, deserialize_with = "blob")]
    pub import_token: Option<Vec<u8>>,
    #[serde(default, deserialize_with = "blob")]
    pub encrypted_key_material: Option<Vec<u8>>,
    /// Epoch seconds.
    pub valid_to: Option<f64>,
    pub expiration_model: Option<String>,
    pub import_type: Option<String>,
    pub key_material_description: Option<String>,
    pub key_material_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesReq {
    pub key_id: Option<String>,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

/// The `DryRun` member of a request body (false when absent, or when the body does not read:
/// the operation's own parsing answers that).
pub fn dry_run(body: &[u8]) -> bool {
    #[derive(Deserialize, Default)]
    struct Member {
        #[serde(rename = "DryRun")]
        dry_run: Option<bool>,
    }
    parse::<Member>(body).is_ok_and(|m| m.dry_run == Some(true))
}

/// Parse a request body (an empty body counts as `{}`).
pub fn parse<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Res<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    // JSON is UTF-8 (RFC 8259), all of it: serde skips the members a shape ignores without
    // decoding them, so a body with bytes that are no UTF-8 there read as a request (found by
    // the fuzz run, `tests/fuzz.rs::request_bodies`).
    let text = std::str::from_utf8(body).map_err(|e| {
        ProtocolError::Serialization(format!(
            "Could not read the request: the body is not valid JSON (not UTF-8 at byte {})",
            e.valid_up_to()
        ))
    })?;
    serde_json::from_str(text).map_err(|e| {
        // Never echo the input: it may hold plaintext.
        let what = match e.classify() {
            serde_json::error::Category::Data => "a member has the wrong type or encoding",
            _ => "the body is not valid JSON",
        };
        ProtocolError::Serialization(format!(
            "Could not read the request: {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

fn validation(detail: String) -> ProtocolError {
    ProtocolError::Validation(texts::validation(&[detail]))
}

pub fn required<T>(v: Option<T>, member: &str) -> Res<T> {
    v.ok_or_else(|| validation(texts::not_null(member)))
}

/// `n` (characters or bytes) within `min..=max`; the value itself is not quoted.
fn length_within(n: usize, member: &str, min: usize, max: usize) -> Res<()> {
    let what = if n < min {
        texts::length_at_least(min)
    } else if n > max {
        texts::length_at_most(max)
    } else {
        return Ok(());
    };
    Err(validation(texts::constraint_unquoted(member, &what)))
}

pub fn length(s: &str, member: &str, min: usize, max: usize) -> Res<()> {
    length_within(s.chars().count(), member, min, max)
}

pub fn blob_length(b: &[u8], member: &str, min: usize, max: usize) -> Res<()> {
    length_within(b.len(), member, min, max)
}

/// Parse an enum member against its allowed values.
pub fn enum_member<T>(
    v: Option<String>,
    member: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: impl Fn() -> String,
) -> Res<Option<T>> {
    match v {
        None => Ok(None),
        Some(s) => parse(&s)
            .map(Some)
            .ok_or_else(|| validation(texts::constraint(&s, member, &texts::enum_set(&allowed())))),
    }
}

/// A `KeyId`-shaped member (1..2048 characters), parsed into a `KeyRef`.
pub fn key_ref(v: Option<String>, member: &str) -> Result<KeyRef, super::ApiError> {
    let s = required(v, member)?;
    length(&s, member, 1, 2048)?;
    Ok(KeyRef::parse(&s)?)
}

pub fn opt_key_ref(v: Option<String>, member: &str) -> Result<Option<KeyRef>, super::ApiError> {
    match v {
        None => Ok(None),
        some => key_ref(some, member).map(Some),
    }
}

pub fn grant_tokens(v: &Option<Vec<String>>) -> Result<(), super::ApiError> {
    if let Some(t) = v {
        if t.len() > 10 {
            return Err(validation(texts::constraint_unquoted(
                "grantTokens",
                &texts::length_at_most(10),
            ))
            .into());
        }
        crate::kms::validate_grant_tokens(t)?;
    }
    Ok(())
}

pub fn marker(v: &Option<String>) -> Res<()> {
    if let Some(m) = v {
        length(m, "marker", 1, 1024)?;
    }
    Ok(())
}

/// Base64 for blobs in responses.
pub fn b64(b: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(b)
}

/// Decode a base64 member (standard alphabet, padded, canonical), with SIMD where the CPU
/// has it. What it refuses, `base64` decodes again to say why (both refuse the same inputs:
/// `b64_decode_agrees_with_base64`).
fn b64_decode(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    match base64_simd::STANDARD.decode_to_vec(text) {
        Ok(v) => Ok(v),
        Err(_) => B64.decode(text),
    }
}

/// Epoch milliseconds → the epoch-seconds number AWS clients parse.
pub fn ts(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzz run (`tests/fuzz.rs::request_bodies`): bytes that are not UTF-8 in a
    /// member the request shape does not have were skipped unread, and the body was taken
    /// for a request. Now any such body is a SerializationException, as any other non-JSON.
    #[test]
    fn a_body_that_is_not_utf8_is_no_request() {
        let body = b"{\"Limit\":\"\x800=-aa\",\"Policy\":[\"==0\"]}";
        assert!(matches!(
            parse::<AliasReq>(body),
            Err(ProtocolError::Serialization(m)) if m.contains("not UTF-8")
        ));
        assert!(crate::api::model::violations("CreateKey", body).is_empty());
        // The same body in UTF-8 reads.
        assert!(parse::<AliasReq>(b"{\"Limit\":\"0=-aa\",\"Policy\":[\"==0\"]}").is_ok());
    }

    #[test]
    fn b64_decode_agrees_with_base64() {
        let mut inputs: Vec<Vec<u8>> = [
            "",
            "=",
            "==",
            "A",
            "AA",
            "AAA",
            "AAAA",
            "AA==",
            "AA=",
            "AAA=",
            "AB==",
            "AAB=",
            "QQ==",
            "QR==",
            "QUI=",
            "QUJ=",
            "QUJD",
            "QUJD\n",
            " QUJD",
            "QU JD",
            "QUJD====",
            "QUJ\u{e9}",
            "QU-_",
            "QU+/",
            "////",
            "A===",
            "AAAAA",
            "AAAAAA==",
            "AAAAAAA=",
            "QUJDRA",
            "QUJDRA=",
            "QUJDRA==",
            "QUJDRA==QQ==",
            "=QUJD",
            "QU=D",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        // Long inputs (the SIMD paths), valid and with one bad byte at each of many places.
        let long = B64.encode(
            (0..3000u32)
                .map(|i| (i * 7 + i / 5) as u8)
                .collect::<Vec<_>>(),
        );
        inputs.push(long.clone().into_bytes());
        for at in (0..long.len()).step_by(97) {
            for bad in [b'-', b'=', b' ', b'\n', 0xc3] {
                let mut v = long.clone().into_bytes();
                v[at] = bad;
                inputs.push(v);
            }
        }
        for input in &inputs {
            assert_eq!(
                b64_decode(input).ok(),
                B64.decode(input).ok(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        for n in 0..70 {
            let data: Vec<u8> = (0..n).map(|i| (i * 31) as u8).collect();
            assert_eq!(b64(&data), B64.encode(&data));
        }
    }
}
