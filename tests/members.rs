//! Every answer carries only what AWS KMS's own answer can carry: each member of each response
//! (nested structures, lists and maps too) exists in the operation's output shape of the service
//! model (`../shared/reference/kms/service-2.json`), with the model's type, enum values and
//! length limits; required members are present; and every `KeyId`/`SourceKeyId` an operation
//! answers with is a key ARN, as the model documents it (the AWS Encryption SDK compares them).

mod common;

use common::*;
use serde_json::{json, Value};

struct Model(Value);

impl Model {
    fn load() -> Model {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/reference/kms/service-2.json");
        let text = std::fs::read_to_string(&path).expect("the service model");
        Model(serde_json::from_str(&text).expect("service model JSON"))
    }

    fn output_shape(&self, op: &str) -> Option<&str> {
        self.0["operations"][op]["output"]["shape"].as_str()
    }

    /// Every way `v` differs from `shape`, as `path: what`.
    fn check(&self, shape: &str, v: &Value, path: &str, out: &mut Vec<String>) {
        let s = &self.0["shapes"][shape];
        let kind = s["type"].as_str().unwrap_or("");
        let mut bad = |what: String| out.push(format!("{path}: {what}"));
        match (kind, v) {
            ("structure", Value::Object(m)) => {
                let members = s["members"].as_object().cloned().unwrap_or_default();
                for (name, value) in m {
                    match members.get(name) {
                        Some(mm) => {
                            let sub = mm["shape"].as_str().unwrap_or("");
                            self.check(sub, value, &format!("{path}.{name}"), out);
                        }
                        None => out.push(format!("{path}.{name}: not in the model's {shape}")),
                    }
                }
                for req in s["required"].as_array().into_iter().flatten() {
                    let r = req.as_str().unwrap_or("");
                    if !m.contains_key(r) {
                        out.push(format!("{path}.{r}: required by {shape} but absent"));
                    }
                }
            }
            ("list", Value::Array(items)) => {
                let sub = s["member"]["shape"].as_str().unwrap_or("");
                for (i, item) in items.iter().enumerate() {
                    self.check(sub, item, &format!("{path}[{i}]"), out);
                }
            }
            ("map", Value::Object(m)) => {
                let k = s["key"]["shape"].as_str().unwrap_or("");
                let val = s["value"]["shape"].as_str().unwrap_or("");
                for (key, value) in m {
                    self.check(k, &json!(key), &format!("{path}<key>"), out);
                    self.check(val, value, &format!("{path}[{key}]"), out);
                }
            }
            ("string", Value::String(text)) => {
                if let Some(values) = s["enum"].as_array() {
                    if !values.iter().any(|e| e == text) {
                        bad(format!("{text:?} is not a value of {shape}"));
                    }
                }
                let n = text.chars().count() as u64;
                if let Some(max) = s["max"].as_u64() {
                    if n > max {
                        bad(format!("{n} characters, {shape} allows {max}"));
                    }
                }
                if let Some(min) = s["min"].as_u64() {
                    if n < min {
                        bad(format!("{n} characters, {shape} needs {min}"));
                    }
                }
            }
            ("blob", Value::String(text)) => {
                use base64::Engine;
                if base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .is_err()
                {
                    bad("a blob that is not base64".into());
                }
            }
            ("timestamp", Value::Number(_)) => {}
            ("boolean", Value::Bool(_)) => {}
            ("integer" | "long", Value::Number(n)) if n.is_i64() => {}
            (kind, v) => bad(format!("{v} is not a {kind} ({shape})")),
        }
    }
}

/// Top-level members that name the key an operation used: the model documents them as ARNs
/// (but GetKeyLastUsage's: "the globally unique identifier for the KMS key", its key id).
fn key_id_members(op: &str, v: &Value, out: &mut Vec<String>) {
    if op == "GetKeyLastUsage" {
        return;
    }
    for member in ["KeyId", "SourceKeyId"] {
        if let Some(id) = v.get(member).and_then(Value::as_str) {
            if !(id.starts_with("arn:aws:kms:") && id.contains(":key/")) {
                out.push(format!("{op}.{member}: {id:?} is not a key ARN"));
            }
        }
    }
}

#[test]
fn every_answer_has_only_the_models_members() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let model = Model::load();
    let dir = TestDir::new();
    let server = Server::start(&dir, &[("KMS_BRIDGE_REGIONS", "us-east-1,eu-west-1")]);
    let (user_arn, _) = dir.user("grantee");
    let mut problems = Vec::new();
    let mut answered = std::collections::BTreeSet::new();
    let mut call = |op: &str, body: Value| -> Value {
        let r = server.signed(&format!("TrentService.{op}"), &body.to_string());
        assert_eq!(r.status, 200, "{op} {body}: {}", r.body);
        let v: Value = if r.body.is_empty() {
            json!({})
        } else {
            serde_json::from_str(&r.body).unwrap()
        };
        match model.output_shape(op) {
            Some(shape) => model.check(shape, &v, op, &mut problems),
            None => {
                if v != json!({}) {
                    problems.push(format!("{op}: the model has no output, we answered {v}"));
                }
            }
        }
        key_id_members(op, &v, &mut problems);
        answered.insert(op.to_string());
        v
    };
    let id_of = |v: &Value| v["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();

    let key = id_of(&call(
        "CreateKey",
        json!({"Description": "d", "Tags": [{"TagKey": "a", "TagValue": "b"}]}),
    ));
    call("DescribeKey", json!({"KeyId": key}));
    call("ListKeys", json!({"Limit": 5}));
    call(
        "CreateAlias",
        json!({"AliasName": "alias/members", "TargetKeyId": key}),
    );
    call("ListAliases", json!({}));
    call("ListAliases", json!({"KeyId": key}));
    call(
        "TagResource",
        json!({"KeyId": key, "Tags": [{"TagKey": "c", "TagValue": "d"}]}),
    );
    call("ListResourceTags", json!({"KeyId": key}));
    call("UntagResource", json!({"KeyId": key, "TagKeys": ["c"]}));
    call(
        "UpdateKeyDescription",
        json!({"KeyId": key, "Description": "e"}),
    );
    let policy = call("GetKeyPolicy", json!({"KeyId": key}))["Policy"].clone();
    call("PutKeyPolicy", json!({"KeyId": key, "Policy": policy}));
    call("ListKeyPolicies", json!({"KeyId": key}));
    call("DisableKey", json!({"KeyId": key}));
    call("EnableKey", json!({"KeyId": key}));
    call(
        "EnableKeyRotation",
        json!({"KeyId": key, "RotationPeriodInDays": 90}),
    );
    call("GetKeyRotationStatus", json!({"KeyId": key}));
    call("RotateKeyOnDemand", json!({"KeyId": key}));
    call("ListKeyRotations", json!({"KeyId": key}));
    call("DisableKeyRotation", json!({"KeyId": key}));

    let m = b64(b"members");
    let ct = call(
        "Encrypt",
        json!({"KeyId": "alias/members", "Plaintext": m, "EncryptionContext": {"a": "b"}}),
    )["CiphertextBlob"]
        .clone();
    call(
        "Decrypt",
        json!({"CiphertextBlob": ct, "EncryptionContext": {"a": "b"}}),
    );
    call(
        "ReEncrypt",
        json!({"CiphertextBlob": ct, "SourceEncryptionContext": {"a": "b"}, "DestinationKeyId": key}),
    );
    call(
        "GenerateDataKey",
        json!({"KeyId": key, "KeySpec": "AES_256"}),
    );
    call(
        "GenerateDataKeyWithoutPlaintext",
        json!({"KeyId": key, "NumberOfBytes": 16}),
    );
    call("GenerateRandom", json!({"NumberOfBytes": 16}));
    call(
        "GenerateDataKeyPair",
        json!({"KeyId": key, "KeyPairSpec": "ECC_NIST_P256"}),
    );
    call(
        "GenerateDataKeyPairWithoutPlaintext",
        json!({"KeyId": key, "KeyPairSpec": "ECC_NIST_P256"}),
    );
    call("GetKeyLastUsage", json!({"KeyId": key}));

    let signer = id_of(&call(
        "CreateKey",
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
    ));
    let sig = call(
        "Sign",
        json!({"KeyId": signer, "Message": m, "SigningAlgorithm": "ECDSA_SHA_256"}),
    )["Signature"]
        .clone();
    call(
        "Verify",
        json!({"KeyId": signer, "Message": m, "Signature": sig, "SigningAlgorithm": "ECDSA_SHA_256"}),
    );
    call("GetPublicKey", json!({"KeyId": signer}));
    let rsa = id_of(&call(
        "CreateKey",
        json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
    ));
    let rsa_ct = call(
        "Encrypt",
        json!({"KeyId": rsa, "Plaintext": m, "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"}),
    )["CiphertextBlob"]
        .clone();
    call(
        "Decrypt",
        json!({"KeyId": rsa, "CiphertextBlob": rsa_ct, "EncryptionAlgorithm": "RSAES_OAEP_SHA_1"}),
    );
    call("GetPublicKey", json!({"KeyId": rsa}));
    let hmac = id_of(&call(
        "CreateKey",
        json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}),
    ));
    let mac = call(
        "GenerateMac",
        json!({"KeyId": hmac, "Message": m, "MacAlgorithm": "HMAC_SHA_256"}),
    )["Mac"]
        .clone();
    call(
        "VerifyMac",
        json!({"KeyId": hmac, "Message": m, "Mac": mac, "MacAlgorithm": "HMAC_SHA_256"}),
    );
    call("DescribeKey", json!({"KeyId": hmac}));
    let agree = id_of(&call(
        "CreateKey",
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "KEY_AGREEMENT"}),
    ));
    let peer = call("GetPublicKey", json!({"KeyId": agree}))["PublicKey"].clone();
    call(
        "DeriveSharedSecret",
        json!({"KeyId": agree, "KeyAgreementAlgorithm": "ECDH", "PublicKey": peer}),
    );

    let grant = call(
        "CreateGrant",
        json!({"KeyId": key, "GranteePrincipal": user_arn, "RetiringPrincipal": user_arn,
               "Operations": ["Encrypt", "Decrypt"],
               "Constraints": {"EncryptionContextSubset": {"a": "b"}}, "Name": "g"}),
    )["GrantId"]
        .as_str()
        .unwrap()
        .to_owned();
    call("ListGrants", json!({"KeyId": key}));
    call(
        "ListRetirableGrants",
        json!({"RetiringPrincipal": user_arn}),
    );
    call("RevokeGrant", json!({"KeyId": key, "GrantId": grant}));

    let external = id_of(&call("CreateKey", json!({"Origin": "EXTERNAL"})));
    call(
        "GetParametersForImport",
        json!({"KeyId": external, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_2048"}),
    );
    call("DescribeKey", json!({"KeyId": external}));

    let mrk = id_of(&call("CreateKey", json!({"MultiRegion": true})));
    call(
        "ReplicateKey",
        json!({"KeyId": mrk, "ReplicaRegion": OTHER_REGION, "Tags": [{"TagKey": "r", "TagValue": "s"}]}),
    );
    call("DescribeKey", json!({"KeyId": mrk}));
    call(
        "UpdatePrimaryRegion",
        json!({"KeyId": mrk, "PrimaryRegion": OTHER_REGION}),
    );
    call("DescribeCustomKeyStores", json!({}));
    call(
        "ScheduleKeyDeletion",
        json!({"KeyId": signer, "PendingWindowInDays": 7}),
    );
    call("DescribeKey", json!({"KeyId": signer}));
    call("CancelKeyDeletion", json!({"KeyId": signer}));
    call("DeleteAlias", json!({"AliasName": "alias/members"}));

    assert!(
        problems.is_empty(),
        "answers that AWS would not give:\n{}",
        problems.join("\n")
    );
    // The scenario reaches most of the API; the rest is covered by the files that need a
    // second region, a custom key store or imported material.
    assert!(answered.len() >= 45, "{answered:?}");
}
