//! Answers: a JSON value, or — for the operations that answer a secret (the table's `secret`
//! column: Decrypt, GenerateDataKey, GenerateDataKeyPair, GenerateRandom, DeriveSharedSecret,
//! Encapsulate, Decapsulate) — a typed answer whose secret members are [`Secret`]s,
//! serialized straight into the zeroizing body buffer (`api::encode`). No `serde_json::Value`
//! ever holds a secret: the audit record, key usage and the console see a typed answer's
//! public members only ([`Reply::public`]).

use std::borrow::Cow;

use serde::{Serialize, Serializer};
use serde_json::Value;
use zeroize::Zeroizing;

use super::wire::b64;
use crate::kms::{DataKey, DataKeyPair, Decrypted};
use crate::model::DataKeyPairSpec;

/// What an operation answers.
pub enum Reply {
    Json(Value),
    Typed(Box<dyn TypedReply>),
}

impl Reply {
    /// The answer without its secret members: what the audit record, key usage and the console
    /// read.
    pub fn public(&self) -> Cow<'_, Value> {
        match self {
            Reply::Json(v) => Cow::Borrowed(v),
            Reply::Typed(t) => Cow::Owned(t.public()),
        }
    }

    /// The public members, owned (the console's view of an answer).
    pub fn into_public(self) -> Value {
        match self {
            Reply::Json(v) => v,
            Reply::Typed(t) => t.public(),
        }
    }

    pub fn is_typed(&self) -> bool {
        matches!(self, Reply::Typed(_))
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a secret: only the public members.
        write!(f, "{}", self.public())
    }
}

/// A typed answer: written as JSON into the body buffer; its public members as a value.
pub trait TypedReply: Send + Sync {
    fn write_json(&self, out: &mut dyn std::io::Write) -> serde_json::Result<()>;
    fn public(&self) -> Value;
}

/// An answer's public members `P` and its secret members `S` (both serde structs), written
/// as one JSON object.
#[derive(Serialize)]
pub struct WithSecrets<P, S> {
    #[serde(flatten)]
    public: P,
    #[serde(flatten)]
    secrets: S,
}

impl<P: Serialize + Send + Sync + 'static, S: Serialize + Send + Sync + 'static> TypedReply
    for WithSecrets<P, S>
{
    fn write_json(&self, out: &mut dyn std::io::Write) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }

    fn public(&self) -> Value {
        serde_json::to_value(&self.public).unwrap_or(Value::Null)
    }
}

fn typed<P, S>(public: P, secrets: S) -> Reply
where
    P: Serialize + Send + Sync + 'static,
    S: Serialize + Send + Sync + 'static,
{
    Reply::Typed(Box::new(WithSecrets { public, secrets }))
}

/// Secret bytes, answered as base64. The text is made by `base64` in a zeroizing string
/// (`secret_b64`) only while it is written, then wiped; the bytes are wiped when the answer
/// drops.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&secret_b64(&self.0))
    }
}

/// Base64 of a secret, in a zeroizing string. Encoded by `base64`, not by the SIMD encoder of
/// `wire::b64`: that one leaves pieces of its output in stack buffers nobody wipes (found by
/// `tests/zeroization.rs`), while this one writes only into the string.
fn secret_b64(b: &Zeroizing<Vec<u8>>) -> Zeroizing<String> {
    use base64::Engine;
    let mut out = Zeroizing::new(String::with_capacity(b.len().div_ceil(3) * 4));
    base64::engine::general_purpose::STANDARD.encode_string(b.as_slice(), &mut out);
    out
}

/// `Plaintext` (Decrypt, GenerateDataKey, GenerateRandom).
#[derive(Serialize)]
struct Plaintext {
    #[serde(rename = "Plaintext", skip_serializing_if = "Option::is_none")]
    plaintext: Option<Secret>,
}

/// `SharedSecret` (DeriveSharedSecret, Encapsulate, Decapsulate).
#[derive(Serialize)]
struct SharedSecret {
    #[serde(rename = "SharedSecret")]
    shared_secret: Secret,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptPublic {
    encryption_algorithm: &'static str,
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_material_id: Option<String>,
}

pub fn decrypt(d: Decrypted) -> Reply {
    typed(
        DecryptPublic {
            encryption_algorithm: d.algorithm.as_str(),
            key_id: d.key_arn,
            key_material_id: d.material_id,
        },
        Plaintext {
            plaintext: Some(Secret(d.plaintext)),
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataKeyPublic {
    ciphertext_blob: String,
    key_id: String,
    key_material_id: String,
}

/// GenerateDataKey (with its `Plaintext`) and GenerateDataKeyWithoutPlaintext (without).
pub fn data_key(d: DataKey) -> Reply {
    typed(
        DataKeyPublic {
            ciphertext_blob: b64(&d.ciphertext_blob),
            key_id: d.key_arn,
            key_material_id: d.material_id,
        },
        Plaintext {
            plaintext: d.plaintext.map(Secret),
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataKeyPairPublic {
    key_id: String,
    key_material_id: String,
    key_pair_spec: &'static str,
    private_key_ciphertext_blob: String,
    public_key: String,
}

#[derive(Serialize)]
struct PrivateKey {
    #[serde(
        rename = "PrivateKeyPlaintext",
        skip_serializing_if = "Option::is_none"
    )]
    private_key_plaintext: Option<Secret>,
}

/// GenerateDataKeyPair (with its `PrivateKeyPlaintext`) and
/// GenerateDataKeyPairWithoutPlaintext (without).
pub fn data_key_pair(p: DataKeyPair, spec: DataKeyPairSpec) -> Reply {
    typed(
        DataKeyPairPublic {
            key_id: p.key_arn,
            key_material_id: p.material_id,
            key_pair_spec: spec.as_str(),
            private_key_ciphertext_blob: b64(&p.private_key_ciphertext),
            public_key: b64(&p.public_key),
        },
        PrivateKey {
            private_key_plaintext: p.private_key_plaintext.map(Secret),
        },
    )
}

#[derive(Serialize)]
struct Empty {}

pub fn random(bytes: Zeroizing<Vec<u8>>) -> Reply {
    typed(
        Empty {},
        Plaintext {
            plaintext: Some(Secret(bytes)),
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DerivePublic {
    key_agreement_algorithm: &'static str,
    key_id: String,
    key_origin: &'static str,
}

pub fn shared_secret(key_arn: String, secret: Zeroizing<Vec<u8>>) -> Reply {
    typed(
        DerivePublic {
            key_agreement_algorithm: "ECDH",
            key_id: key_arn,
            key_origin: "AWS_KMS",
        },
        SharedSecret {
            shared_secret: Secret(secret),
        },
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KemPublic {
    encapsulation_algorithm: &'static str,
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_secret_ciphertext_blob: Option<String>,
}

/// Encapsulate (with the ciphertext) and Decapsulate (`ciphertext` None).
pub fn kem(key_arn: String, ciphertext: Option<&[u8]>, secret: Zeroizing<Vec<u8>>) -> Reply {
    typed(
        KemPublic {
            encapsulation_algorithm: "ML_KEM",
            key_id: key_arn,
            shared_secret_ciphertext_blob: ciphertext.map(b64),
        },
        SharedSecret {
            shared_secret: Secret(secret),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(r: &Reply) -> Value {
        let Reply::Typed(t) = r else {
            panic!("a secret answer must be typed")
        };
        let mut out = Vec::new();
        t.write_json(&mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn secrets_are_written_but_never_public() {
        let r = data_key(DataKey {
            key_arn: "arn:k".into(),
            ciphertext_blob: vec![1, 2, 3],
            plaintext: Some(Zeroizing::new(b"0123456789abcdef".to_vec())),
            material_id: "m".into(),
        });
        let w = written(&r);
        assert_eq!(w["Plaintext"], "MDEyMzQ1Njc4OWFiY2RlZg==");
        assert_eq!(w["CiphertextBlob"], "AQID");
        assert_eq!(w["KeyId"], "arn:k");
        let public = r.public();
        assert_eq!(public["KeyId"], "arn:k");
        assert!(public.get("Plaintext").is_none(), "{public}");
        assert!(!format!("{r:?}").contains("MDEy"));

        // Without plaintext: the member is absent, not null.
        let r = data_key(DataKey {
            key_arn: "arn:k".into(),
            ciphertext_blob: vec![1],
            plaintext: None,
            material_id: "m".into(),
        });
        assert!(written(&r).get("Plaintext").is_none());

        let r = kem("arn:k".into(), None, Zeroizing::new(vec![7; 32]));
        let w = written(&r);
        assert!(w.get("SharedSecretCiphertextBlob").is_none());
        assert_eq!(w["EncapsulationAlgorithm"], "ML_KEM");
        assert!(w["SharedSecret"].as_str().is_some());
        assert!(r.public().get("SharedSecret").is_none());
    }
}
