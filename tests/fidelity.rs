//! Answers pinned to real AWS KMS: the exact error code, HTTP status and message (or its
//! absence) that AWS gives, per operation. The facts come from recordings of real AWS
//! responses (issue "Fidelity"); every one is asserted exactly.

mod common;

use common::*;
use serde_json::{json, Value};

/// One call's answer: (status, __type, message or None).
fn call(server: &Server, op: &str, body: Value) -> (u16, String, Option<String>) {
    let r = server.signed(&format!("TrentService.{op}"), &body.to_string());
    let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    let t = v["__type"].as_str().unwrap_or("").to_string();
    let m = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(|m| m.as_str())
        .map(str::to_string);
    (r.status, t, m)
}

fn ok(server: &Server, op: &str, body: Value) -> Value {
    let r = server.signed(&format!("TrentService.{op}"), &body.to_string());
    assert_eq!(r.status, 200, "{op}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or(Value::Null)
}

fn expect(got: (u16, String, Option<String>), status: u16, code: &str, message: Option<&str>) {
    assert_eq!(
        got,
        (status, code.to_string(), message.map(str::to_string)),
        "answer differs from AWS's"
    );
}

fn key(server: &Server, body: Value) -> (String, String) {
    let v = ok(server, "CreateKey", body);
    let m = &v["KeyMetadata"];
    (
        m["KeyId"].as_str().unwrap().to_string(),
        m["Arn"].as_str().unwrap().to_string(),
    )
}

#[test]
fn generate_random_validation() {
    let (_dir, server) = Server::start_new();
    expect(
        call(&server, "GenerateRandom", json!({})),
        400,
        "ValidationException",
        Some("NumberOfBytes is required."),
    );
    expect(
        call(&server, "GenerateRandom", json!({"NumberOfBytes": 0})),
        400,
        "ValidationException",
        Some("1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1"),
    );
}

#[test]
fn key_usage_origin_and_state_texts() {
    let (_dir, server) = Server::start_new();
    let (_, arn) = key(&server, json!({}));
    expect(
        call(
            &server,
            "GenerateMac",
            json!({"KeyId": arn, "Message": "aGk=", "MacAlgorithm": "HMAC_SHA_256"}),
        ),
        400,
        "InvalidKeyUsageException",
        Some(&format!(
            "{arn} key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac."
        )),
    );
    expect(
        call(
            &server,
            "GetParametersForImport",
            json!({"KeyId": arn, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_2048"}),
        ),
        400,
        "UnsupportedOperationException",
        Some(&format!(
            "{arn} origin is AWS_KMS which is not valid for this operation."
        )),
    );
    ok(&server, "DisableKey", json!({"KeyId": arn}));
    expect(
        call(&server, "RotateKeyOnDemand", json!({"KeyId": arn})),
        400,
        "DisabledException",
        Some(&format!("{arn} is disabled.")),
    );
    // State is checked before the key type: a disabled asymmetric key is "disabled" too.
    let (_, rsa) = key(
        &server,
        json!({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}),
    );
    ok(&server, "DisableKey", json!({"KeyId": rsa}));
    expect(
        call(&server, "RotateKeyOnDemand", json!({"KeyId": rsa})),
        400,
        "DisabledException",
        Some(&format!("{rsa} is disabled.")),
    );
}

#[test]
fn asymmetric_input_texts() {
    let (_dir, server) = Server::start_new();
    let (_, ec) = key(
        &server,
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
    );
    expect(
        call(
            &server,
            "Sign",
            json!({"KeyId": ec, "Message": "AAAA", "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"}),
        ),
        400,
        "ValidationException",
        Some("Digest is invalid length for algorithm ECDSA_SHA_256."),
    );
    let (_, rsa) = key(
        &server,
        json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
    );
    use base64::Engine;
    let big = base64::engine::general_purpose::STANDARD.encode([7u8; 191]);
    expect(
        call(
            &server,
            "Encrypt",
            json!({"KeyId": rsa, "Plaintext": big, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
        ),
        400,
        "ValidationException",
        Some("Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes."),
    );
}

#[test]
fn alias_and_tag_texts() {
    let (_dir, server) = Server::start_new();
    let (id, _) = key(&server, json!({}));
    expect(
        call(
            &server,
            "CreateAlias",
            json!({"AliasName": "no-prefix", "TargetKeyId": id}),
        ),
        400,
        "ValidationException",
        Some("Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"),
    );
    let tag = |k: &str| json!({"TagKey": k, "TagValue": "v"});
    expect(
        call(
            &server,
            "TagResource",
            json!({"KeyId": id, "Tags": [tag("a"), tag("a")]}),
        ),
        400,
        "TagException",
        Some("Duplicate tag keys"),
    );
    for reserved in ["aws:x", "AWS:x", "Aws:x"] {
        expect(
            call(
                &server,
                "TagResource",
                json!({"KeyId": id, "Tags": [tag(reserved)]}),
            ),
            400,
            "TagException",
            Some("Tags beginning with aws: are reserved"),
        );
    }
    let long = "k".repeat(129);
    expect(
        call(&server, "TagResource", json!({"KeyId": id, "Tags": [tag(&long)]})),
        400,
        "ValidationException",
        Some(&format!("1 validation error detected: Value '{long}' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128")),
    );
    let many: Vec<Value> = (0..51).map(|i| tag(&format!("t{i}"))).collect();
    expect(
        call(&server, "TagResource", json!({"KeyId": id, "Tags": many})),
        400,
        "TagException",
        Some("Too many tags"),
    );
}

#[test]
fn arn_region_dry_run_reencrypt_and_messageless_errors() {
    let (_dir, server) = Server::start_new();
    let (id, arn) = key(&server, json!({}));
    let other_region = arn.replace(&format!(":{REGION}:"), &format!(":{OTHER_REGION}:"));
    expect(
        call(&server, "DescribeKey", json!({"KeyId": other_region})),
        400,
        "NotFoundException",
        Some(&format!("Invalid arn {OTHER_REGION}")),
    );
    let dry = call(
        &server,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "aGk=", "DryRun": true}),
    );
    assert_eq!((dry.0, dry.1.as_str()), (400, "DryRunOperationException"));

    let ct = ok(
        &server,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "aGk="}),
    )["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_string();
    let (other, _) = key(&server, json!({}));
    expect(
        call(
            &server,
            "ReEncrypt",
            json!({"CiphertextBlob": ct, "SourceKeyId": other, "DestinationKeyId": other}),
        ),
        400,
        "IncorrectKeyException",
        Some("The key ID in the request does not identify a CMK that can perform this operation."),
    );
    // A tampered blob: AWS's body carries no message.
    let mut raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &ct).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let bad = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw);
    expect(
        call(&server, "Decrypt", json!({"CiphertextBlob": bad})),
        400,
        "InvalidCiphertextException",
        None,
    );
    let (_, ec) = key(
        &server,
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
    );
    let sig = ok(
        &server,
        "Sign",
        json!({"KeyId": ec, "Message": "aGk=", "SigningAlgorithm": "ECDSA_SHA_256"}),
    )["Signature"]
        .as_str()
        .unwrap()
        .to_string();
    expect(
        call(
            &server,
            "Verify",
            json!({"KeyId": ec, "Message": "aGk9", "Signature": sig, "SigningAlgorithm": "ECDSA_SHA_256"}),
        ),
        400,
        "KMSInvalidSignatureException",
        None,
    );
}

/// The 50-tag limit holds for concurrent TagResource calls too (checked in the writing
/// transaction): 10 callers adding 6 new tags each end with at most 50 tags, and every refused
/// call is AWS's "Too many tags".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_limit_holds_under_concurrent_callers() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let mut calls = Vec::new();
    for c in 0..10 {
        let kms = kms.clone();
        let id = id.clone();
        calls.push(tokio::spawn(async move {
            let mut req = kms.tag_resource().key_id(&id);
            for t in 0..6 {
                req = req.tags(
                    aws_sdk_kms::types::Tag::builder()
                        .tag_key(format!("c{c}-t{t}"))
                        .tag_value("v")
                        .build()
                        .unwrap(),
                );
            }
            req.send().await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(code(&e), "TagException");
                assert_eq!(
                    aws_sdk_kms::error::ProvideErrorMetadata::message(&e.into_service_error()),
                    Some("Too many tags")
                );
                refused += 1;
            }
        }
    }
    assert_eq!(
        (ok, refused),
        (8, 2),
        "8 × 6 = 48 tags fit, a ninth call would make 54"
    );
    let tags = kms.list_resource_tags().key_id(&id).send().await.unwrap();
    assert_eq!(tags.tags().len(), 48);
}

/// Concurrent EnableKey/DisableKey on one key all succeed, as on AWS (no ConflictException).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enable_and_disable_all_succeed() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let mut calls = Vec::new();
    for i in 0..24 {
        let kms = kms.clone();
        let id = id.clone();
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                kms.disable_key()
                    .key_id(&id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| code(&e))
            } else {
                kms.enable_key()
                    .key_id(&id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| code(&e))
            }
        }));
    }
    for c in calls {
        assert_eq!(c.await.unwrap(), Ok(()));
    }
}

/// The service model's constraints are checked first and reported together.
#[test]
fn model_validation_reports_every_violation_at_once() {
    let (_dir, server) = Server::start_new();
    expect(
        call(
            &server,
            "CreateKey",
            json!({"KeyUsage": "NOPE", "Tags": [{"TagKey": "", "TagValue": "v"}]}),
        ),
        400,
        "ValidationException",
        Some("2 validation errors detected: Value 'NOPE' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: [SIGN_VERIFY, ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC, KEY_AGREEMENT, ENCAPSULATE_DECAPSULATE]; Value '' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    );
    expect(
        call(&server, "Encrypt", json!({})),
        400,
        "ValidationException",
        Some("2 validation errors detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null; Value null at 'plaintext' failed to satisfy constraint: Member must not be null"),
    );
    // A secret's value is never echoed.
    use base64::Engine;
    let big = base64::engine::general_purpose::STANDARD.encode([1u8; 4097]);
    expect(
        call(&server, "Encrypt", json!({"KeyId": "alias/x", "Plaintext": big})),
        400,
        "ValidationException",
        Some("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096"),
    );
    // AWS lists the MAC algorithms in an order of its own (recorded).
    expect(
        call(
            &server,
            "GenerateMac",
            json!({"KeyId": "alias/x", "Message": "aGk=", "MacAlgorithm": "INVALID"}),
        ),
        400,
        "ValidationException",
        Some("1 validation error detected: Value 'INVALID' at 'macAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [HMAC_SHA_384, HMAC_SHA_256, HMAC_SHA_224, HMAC_SHA_512]"),
    );
}

/// GetKeyLastUsage: the newest successful cryptographic use, with its request id and the
/// audit record's event id; tracked from creation; kept across restarts.
#[test]
fn get_key_last_usage_reports_the_newest_use() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let (id, arn) = key(&server, json!({}));
    let created = ok(&server, "DescribeKey", json!({"KeyId": id}))["KeyMetadata"]["CreationDate"]
        .as_f64()
        .unwrap();
    let before = ok(&server, "GetKeyLastUsage", json!({"KeyId": arn}));
    assert_eq!(before["KeyId"], json!(id));
    assert_eq!(before["KeyLastUsage"], json!({}));
    assert_eq!(before["TrackingStartDate"].as_f64(), Some(created));
    assert_eq!(before["KeyCreationDate"].as_f64(), Some(created));

    let r = server.signed(
        "TrentService.Encrypt",
        &json!({"KeyId": id, "Plaintext": "aGk="}).to_string(),
    );
    assert_eq!(r.status, 200);
    let request_id = r.header("x-amzn-requestid").unwrap().to_string();
    let after = ok(&server, "GetKeyLastUsage", json!({"KeyId": id}));
    let last = &after["KeyLastUsage"];
    assert_eq!(last["Operation"], json!("Encrypt"));
    assert_eq!(last["KmsRequestId"], json!(request_id));
    // The event id is the audit record's.
    let audit = std::fs::read_dir(dir.data_dir().join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    let record: Value = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["requestID"] == json!(request_id) && r["eventName"] == json!("Encrypt"))
        .expect("audit record of the Encrypt");
    assert_eq!(last["CloudTrailEventId"], record["eventID"]);

    // A failed use is not a use; a later success replaces the earlier one.
    let ct = serde_json::from_str::<Value>(&r.body).unwrap()["CiphertextBlob"].clone();
    let (other, _) = key(&server, json!({}));
    let failed = call(
        &server,
        "Decrypt",
        json!({"CiphertextBlob": ct, "KeyId": other}),
    );
    assert_eq!(failed.1, "IncorrectKeyException");
    assert_eq!(
        ok(&server, "GetKeyLastUsage", json!({"KeyId": other}))["KeyLastUsage"],
        json!({})
    );
    ok(&server, "Decrypt", json!({"CiphertextBlob": ct}));
    let after = ok(&server, "GetKeyLastUsage", json!({"KeyId": id}));
    assert_eq!(after["KeyLastUsage"]["Operation"], json!("Decrypt"));
    assert!(
        call(&server, "GetKeyLastUsage", json!({"KeyId": "alias/nope"})).1 == "InvalidArnException"
    );
    // Written to the store within a second: it survives a restart.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.stop();
    let server = Server::start(&dir, &[]);
    let again = ok(&server, "GetKeyLastUsage", json!({"KeyId": id}));
    assert_eq!(again["KeyLastUsage"]["Operation"], json!("Decrypt"));
}

/// Texts recorded against AWS (LocalStack's AWS-validated snapshots): HMAC algorithm against
/// key spec, CreateKey without KeyUsage, ImportKeyMaterial without ValidTo, and the on-demand
/// rotation limit.
#[test]
fn recorded_texts_of_mac_create_import_and_rotation() {
    let (_dir, server) = Server::start_new();
    let (hmac, _) = key(
        &server,
        json!({"KeySpec": "HMAC_224", "KeyUsage": "GENERATE_VERIFY_MAC"}),
    );
    expect(
        call(
            &server,
            "GenerateMac",
            json!({"KeyId": hmac, "Message": "bQ==", "MacAlgorithm": "HMAC_SHA_256"}),
        ),
        400,
        "InvalidKeyUsageException",
        Some("Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224."),
    );
    expect(
        call(&server, "CreateKey", json!({"KeySpec": "ECC_NIST_P256"})),
        400,
        "ValidationException",
        Some("You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."),
    );
    let (external, _) = key(&server, json!({"Origin": "EXTERNAL"}));
    let params = ok(
        &server,
        "GetParametersForImport",
        json!({"KeyId": external, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_2048"}),
    );
    expect(
        call(
            &server,
            "ImportKeyMaterial",
            json!({"KeyId": external, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": "bQ==", "ExpirationModel": "KEY_MATERIAL_EXPIRES"}),
        ),
        400,
        "ValidationException",
        Some("A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"),
    );
    // RotateKeyOnDemand of an asymmetric key: no message.
    let (rsa, _) = key(
        &server,
        json!({"KeySpec": "RSA_4096", "KeyUsage": "ENCRYPT_DECRYPT"}),
    );
    expect(
        call(&server, "RotateKeyOnDemand", json!({"KeyId": rsa})),
        400,
        "UnsupportedOperationException",
        None,
    );
    let (rotating, arn) = key(&server, json!({}));
    for _ in 0..25 {
        ok(&server, "RotateKeyOnDemand", json!({"KeyId": rotating}));
    }
    expect(
        call(&server, "RotateKeyOnDemand", json!({"KeyId": rotating})),
        400,
        "LimitExceededException",
        Some(&format!("The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: {arn}")),
    );
}

/// More answers pinned to recorded AWS output (issue 13's sweep of invented texts): the
/// AccessDeniedException shapes, tag limit at creation, VerifyMac, ReEncrypt's destination
/// usage, the deletion window, grant operations, and messageless protocol errors.
#[tokio::test]
async fn recorded_texts_of_denials_and_the_sweep() {
    let (dir, server) = Server::start_new();
    let (user_arn, creds) = dir.user("outsider");
    let user = server.client_for(&creds);
    let (id, arn) = key(&server, json!({}));
    let denied = |action: &str, tail: &str| {
        format!("User: {user_arn} is not authorized to perform: {action} {tail}")
    };

    // The default key policy hands the decision to IAM, which allows nothing.
    let err = user.describe_key().key_id(&arn).send().await.unwrap_err();
    assert_eq!(
        code_and_message(&err),
        (
            "AccessDeniedException".into(),
            Some(denied(
                "kms:DescribeKey",
                &format!(
                    "on resource: {arn} because no identity-based policy allows the \
                     kms:DescribeKey action"
                )
            ))
        )
    );
    // A key policy that names someone else: the key policy itself refuses.
    let other = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/someone-else"},"Action":"kms:*","Resource":"*"}]}"#;
    let (_, locked_arn) = key(
        &server,
        json!({"Policy": other, "BypassPolicyLockoutSafetyCheck": true}),
    );
    let err = user
        .describe_key()
        .key_id(&locked_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&err).1,
        Some(denied(
            "kms:DescribeKey",
            &format!(
                "on resource: {locked_arn} because no resource-based policy allows the \
                 kms:DescribeKey action"
            )
        ))
    );
    // Decrypt without a KeyId: the key comes from the ciphertext and is not named.
    let blob = ok(
        &server,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "aGk="}),
    )["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = user
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &blob).unwrap(),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&err).1,
        Some(denied(
            "kms:Decrypt",
            "on the resource associated with this ciphertext because no identity-based policy \
             allows the kms:Decrypt action"
        ))
    );
    // Account-scoped actions name `*`.
    let err = user.list_keys().send().await.unwrap_err();
    assert_eq!(
        code_and_message(&err).1,
        Some(denied(
            "kms:ListKeys",
            "on resource: * because no identity-based policy allows the kms:ListKeys action"
        ))
    );
    // An explicit deny names the policy type that denied.
    dir.attach(
        &user_arn,
        "deny",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},{"Effect":"Deny","Action":"kms:DescribeKey","Resource":"*"}]}"#,
    );
    // Identity policies reach the server within its credential cache's lifetime.
    let mut last = None;
    for _ in 0..40 {
        match user.describe_key().key_id(&arn).send().await {
            Err(e)
                if code_and_message(&e)
                    .1
                    .as_deref()
                    .is_some_and(|m| m.contains("explicit")) =>
            {
                last = code_and_message(&e).1;
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    assert_eq!(
        last,
        Some(denied(
            "kms:DescribeKey",
            &format!("on resource: {arn} with an explicit deny in an identity-based policy")
        ))
    );

    // CreateKey with 51 tags: TagException, as TagResource.
    let tags: Vec<Value> = (0..51)
        .map(|i| json!({"TagKey": format!("t{i}"), "TagValue": "v"}))
        .collect();
    expect(
        call(&server, "CreateKey", json!({"Tags": tags})),
        400,
        "TagException",
        Some("Too many tags"),
    );
    // VerifyMac of a MAC that does not match: no message.
    let (mac_key, _) = key(
        &server,
        json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}),
    );
    expect(
        call(
            &server,
            "VerifyMac",
            json!({"KeyId": mac_key, "Message": "aGk=", "MacAlgorithm": "HMAC_SHA_256",
                   "Mac": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
        ),
        400,
        "KMSInvalidMacException",
        None,
    );
    // ReEncrypt to a signing key names the ReEncryptTo permission.
    let (_, signer_arn) = key(
        &server,
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
    );
    expect(
        call(
            &server,
            "ReEncrypt",
            json!({"CiphertextBlob": blob, "DestinationKeyId": signer_arn}),
        ),
        400,
        "InvalidKeyUsageException",
        Some(&format!(
            "{signer_arn} key usage is SIGN_VERIFY which is not valid for ReEncryptTo."
        )),
    );
    // KMS's own check of the deletion window (the model allows 1..365).
    expect(
        call(
            &server,
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 6}),
        ),
        400,
        "ValidationException",
        Some("PendingWindowInDays must be between 7 and 30"),
    );
    expect(
        call(
            &server,
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": user_arn, "Operations": ["CreateGrant"]}),
        ),
        400,
        "ValidationException",
        Some("Grants must not contain only the CreateGrant operation."),
    );
    // Key-only operations refuse aliases.
    ok(
        &server,
        "CreateAlias",
        json!({"AliasName": "alias/sweep", "TargetKeyId": id}),
    );
    expect(
        call(&server, "GetKeyPolicy", json!({"KeyId": "alias/sweep"})),
        400,
        "InvalidArnException",
        Some("Key Aliases are not supported for this operation."),
    );
    // The front end's errors without a message.
    let r = server.signed("TrentService.NoSuchOperation", "{}");
    assert_eq!(
        (r.status, r.error_type()),
        (400, "UnknownOperationException".into())
    );
    assert!(r.json().get("message").is_none(), "{r:?}");
    let r = server.signed("TrentService.ListKeys", "{not json");
    assert_eq!(
        (r.status, r.error_type()),
        (400, "SerializationException".into())
    );
    assert!(r.json().get("message").is_none(), "{r:?}");
}

/// Texts where AWS's own answer is not recorded but the emulators written against AWS agree
/// (LocalStack's provider, moto, local-kms — see src/texts.rs for each source).
#[test]
fn emulator_texts_for_grants_policies_and_algorithms() {
    let (_dir, server) = Server::start_new();
    let (id, _) = key(&server, json!({}));
    let (other, _) = key(&server, json!({}));
    let grant = ok(
        &server,
        "CreateGrant",
        json!({"KeyId": id, "GranteePrincipal": "arn:aws:iam::111122223333:user/g",
               "Operations": ["Decrypt"]}),
    )["GrantId"]
        .as_str()
        .unwrap()
        .to_owned();
    let unknown = "0".repeat(64);
    expect(
        call(
            &server,
            "RevokeGrant",
            json!({"KeyId": id, "GrantId": unknown}),
        ),
        400,
        "InvalidGrantIdException",
        None,
    );
    expect(
        call(
            &server,
            "ListGrants",
            json!({"KeyId": id, "GrantId": unknown}),
        ),
        400,
        "InvalidGrantIdException",
        None,
    );
    expect(
        call(
            &server,
            "RevokeGrant",
            json!({"KeyId": other, "GrantId": grant}),
        ),
        400,
        "ValidationException",
        Some(&format!(
            "Invalid KeyId={other} specified for grant {grant}"
        )),
    );
    expect(
        call(&server, "RetireGrant", json!({"GrantId": grant})),
        400,
        "ValidationException",
        Some("Grant token OR (grant ID, key ID) must be specified"),
    );
    expect(
        call(
            &server,
            "GetKeyPolicy",
            json!({"KeyId": id, "PolicyName": "other"}),
        ),
        400,
        "NotFoundException",
        Some("No such policy exists"),
    );
    let policy = ok(&server, "GetKeyPolicy", json!({"KeyId": id}))["Policy"].clone();
    expect(
        call(
            &server,
            "PutKeyPolicy",
            json!({"KeyId": id, "PolicyName": "other", "Policy": policy}),
        ),
        400,
        "UnsupportedOperationException",
        Some("Only default policy is supported"),
    );
    let (signer, _) = key(
        &server,
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
    );
    expect(
        call(
            &server,
            "Sign",
            json!({"KeyId": signer, "Message": "aGk=", "SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
        ),
        400,
        "InvalidKeyUsageException",
        Some("Algorithm RSASSA_PSS_SHA_256 is incompatible with key spec ECC_NIST_P256."),
    );
    expect(
        call(
            &server,
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256", "NumberOfBytes": 32}),
        ),
        400,
        "ValidationException",
        Some("Please specify either number of bytes or key spec."),
    );
}

/// Texts the catalogue (`src/texts.rs`) took from AWS output or, where AWS's is not
/// recorded, from emulators: ImportKeyMaterial of the wrong size (AWS output quoted in
/// local-kms's source) and of material that does not unwrap (no message, as AWS's
/// InvalidCiphertextException elsewhere), ListKeyRotations with IncludeKeyMaterial on an RSA
/// key (LocalStack's snapshot recorded against AWS on 2025-07-16), UpdateAlias across key
/// usages (local-kms) and Encrypt with an RSA key and an encryption context (two emulators).
#[test]
fn catalogue_texts_of_import_rotations_aliases_and_rsa() {
    let (_dir, server) = Server::start_new();
    let (external, _) = key(&server, json!({"Origin": "EXTERNAL"}));
    let params = |algorithm: &str| {
        ok(
            &server,
            "GetParametersForImport",
            json!({"KeyId": external, "WrappingAlgorithm": algorithm, "WrappingKeySpec": "RSA_2048"}),
        )["ImportToken"]
            .clone()
    };
    let import = |token: &Value, material: &[u8]| {
        use base64::Engine;
        call(
            &server,
            "ImportKeyMaterial",
            json!({"KeyId": external, "ImportToken": token,
                   "EncryptedKeyMaterial": base64::engine::general_purpose::STANDARD.encode(material),
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
        )
    };
    // RSA-OAEP under an RSA_2048 wrapping key is exactly 256 bytes; RSA-AES key wrap is 256
    // bytes and then AES-KWP output (at least 16 bytes, a multiple of 8).
    let oaep = params("RSAES_OAEP_SHA_1");
    for wrong in [1usize, 255, 257, 512] {
        expect(
            import(&oaep, &vec![7u8; wrong]),
            400,
            "ValidationException",
            Some("Invalid encrypted key size."),
        );
    }
    expect(
        import(&oaep, &[7u8; 256]),
        400,
        "InvalidCiphertextException",
        None,
    );
    let kwp = params("RSA_AES_KEY_WRAP_SHA_1");
    for wrong in [256usize, 256 + 8, 256 + 41] {
        expect(
            import(&kwp, &vec![7u8; wrong]),
            400,
            "ValidationException",
            Some("Invalid encrypted key size."),
        );
    }
    expect(
        import(&kwp, &[7u8; 256 + 40]),
        400,
        "InvalidCiphertextException",
        None,
    );

    let (rsa, _) = key(
        &server,
        json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
    );
    expect(
        call(
            &server,
            "ListKeyRotations",
            json!({"KeyId": rsa, "IncludeKeyMaterial": "ALL_KEY_MATERIAL"}),
        ),
        400,
        "ValidationException",
        Some("Input parameter includeKeyMaterial can only be used with symmetric keys."),
    );
    expect(
        call(&server, "ListKeyRotations", json!({"KeyId": rsa})),
        400,
        "UnsupportedOperationException",
        None,
    );
    expect(
        call(
            &server,
            "Encrypt",
            json!({"KeyId": rsa, "Plaintext": "aGk=", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                   "EncryptionContext": {"purpose": "test"}}),
        ),
        400,
        "ValidationException",
        Some("EncryptionContext is not supported when encrypting/decrypting with asymmetric CMKs."),
    );

    let (symmetric, _) = key(&server, json!({}));
    let (signer, _) = key(
        &server,
        json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}),
    );
    ok(
        &server,
        "CreateAlias",
        json!({"AliasName": "alias/fidelity", "TargetKeyId": symmetric}),
    );
    expect(
        call(
            &server,
            "UpdateAlias",
            json!({"AliasName": "alias/fidelity", "TargetKeyId": signer}),
        ),
        400,
        "ValidationException",
        Some("Alias alias/fidelity cannot be changed from a CMK with key usage ENCRYPT_DECRYPT to a CMK with key usage SIGN_VERIFY. The key usage of the current CMK and the new CMK must be the same."),
    );
}

/// MalformedPolicyDocumentException as AWS words it: no message for a document that is not JSON
/// (aws/aws-sdk-ruby#1784), one fixed sentence for a principal that is not one (recorded AWS
/// output quoted by aws-cdk and in Terraform runs), through CreateKey and PutKeyPolicy alike.
#[test]
fn recorded_texts_of_malformed_key_policies() {
    let (_dir, server) = Server::start_new();
    let (id, _) = key(&server, json!({}));
    let bad_principal = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "not-a-principal"}, "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    let invalid_principals =
        Some("Policy contains a statement with one or more invalid principals.");
    for (op, body, message) in [
        ("CreateKey", json!({"Policy": "{not json"}), None),
        (
            "PutKeyPolicy",
            json!({"KeyId": id, "PolicyName": "default", "Policy": "{\"Statement\": ["}),
            None,
        ),
        (
            "CreateKey",
            json!({"Policy": bad_principal}),
            invalid_principals,
        ),
        (
            "PutKeyPolicy",
            json!({"KeyId": id, "PolicyName": "default", "Policy": bad_principal}),
            invalid_principals,
        ),
    ] {
        expect(
            call(&server, op, body),
            400,
            "MalformedPolicyDocumentException",
            message,
        );
    }
}
