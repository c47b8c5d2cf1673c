//! The token layer against a real token: key protection attributes.

mod common;
use common::*;

use kms_bridge::kms::{token_object_id, token_object_label};

#[tokio::test]
async fn key_material_is_sensitive_and_never_readable() {
    let dir = TestDir::new();
    // A key created through the API…
    let server = Server::start(&dir, &[]);
    let id = server
        .client()
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    // …and asymmetric private keys and HMAC keys too.
    let mut others = Vec::new();
    for (spec, usage) in [
        (
            aws_sdk_kms::types::KeySpec::EccNistP256,
            aws_sdk_kms::types::KeyUsageType::SignVerify,
        ),
        (
            aws_sdk_kms::types::KeySpec::Rsa2048,
            aws_sdk_kms::types::KeyUsageType::EncryptDecrypt,
        ),
        (
            aws_sdk_kms::types::KeySpec::Hmac256,
            aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac,
        ),
    ] {
        let m = server
            .client()
            .create_key()
            .key_spec(spec)
            .key_usage(usage)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        others.push(m.key_id);
    }
    server.stop();

    let token = dir.open_token().await;
    token.load_objects().await.unwrap();
    let key_id = uuid::Uuid::parse_str(&id).unwrap();
    let p = token
        .key_protection(token_object_id(&key_id, 1))
        .await
        .unwrap();
    assert!(p.sensitive, "CKA_SENSITIVE must be true");
    assert!(!p.extractable, "CKA_EXTRACTABLE must be false");
    assert!(!p.value_readable, "CKA_VALUE must not be readable");
    for other in &others {
        let id = uuid::Uuid::parse_str(other).unwrap();
        let p = token.key_protection(token_object_id(&id, 1)).await.unwrap();
        assert!(p.sensitive && !p.extractable && !p.value_readable, "{p:?}");
    }

    // …and one created directly by the token layer.
    let other = uuid::Uuid::new_v4();
    token
        .generate_aes_key(token_object_id(&other, 1), token_object_label(&other, 1))
        .await
        .unwrap();
    let p = token
        .key_protection(token_object_id(&other, 1))
        .await
        .unwrap();
    assert!(p.sensitive && !p.extractable && !p.value_readable);

    // Unknown objects are reported as such.
    assert!(!token
        .exists(token_object_id(&uuid::Uuid::new_v4(), 1))
        .await
        .unwrap());
}

/// Cryptographic calls run on a session-object copy of each key made inside the token: the
/// copy keeps the token object's protection, and destroying the key destroys the copy too.
#[tokio::test]
async fn working_copies_are_protected_session_objects() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let mut ids = Vec::new();
    for (spec, usage) in [
        (
            aws_sdk_kms::types::KeySpec::SymmetricDefault,
            aws_sdk_kms::types::KeyUsageType::EncryptDecrypt,
        ),
        (
            aws_sdk_kms::types::KeySpec::EccNistP256,
            aws_sdk_kms::types::KeyUsageType::SignVerify,
        ),
        (
            aws_sdk_kms::types::KeySpec::Rsa2048,
            aws_sdk_kms::types::KeyUsageType::EncryptDecrypt,
        ),
        (
            aws_sdk_kms::types::KeySpec::Hmac256,
            aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac,
        ),
    ] {
        let m = server
            .client()
            .create_key()
            .key_spec(spec)
            .key_usage(usage)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        ids.push(uuid::Uuid::parse_str(&m.key_id).unwrap());
    }
    server.stop();

    let token = dir.open_token().await;
    token.load_objects().await.unwrap();
    for id in &ids {
        let (p, session_object) = token
            .working_copy_protection(token_object_id(id, 1))
            .await
            .unwrap();
        assert!(
            session_object,
            "SoftHSM copies key objects: expected a session object"
        );
        assert!(p.sensitive, "{id}: the copy must be sensitive");
        assert!(!p.extractable, "{id}: the copy must not be extractable");
        assert!(
            !p.value_readable,
            "{id}: the copy's value must not be readable"
        );
    }

    // A copy computes like its original, and goes away with it.
    let aes = token_object_id(&ids[0], 1);
    let (iv, ct) = token
        .encrypt_gcm(aes.clone(), b"aad".to_vec(), b"secret".to_vec().into())
        .await
        .unwrap();
    let pt = token
        .decrypt_gcm(aes.clone(), iv, b"aad".to_vec(), ct.clone())
        .await
        .unwrap();
    assert_eq!(pt.as_slice(), b"secret");
    token.destroy(aes.clone()).await.unwrap();
    let gone = token
        .decrypt_gcm(aes.clone(), iv, b"aad".to_vec(), ct)
        .await
        .unwrap_err();
    assert!(
        matches!(gone, kms_bridge::token::TokenError::ObjectNotFound(_)),
        "{gone:?}"
    );

    // With `token.working_copies = 0` the token objects themselves are used.
    let cfg = kms_bridge::token::TokenConfig {
        module: token_module(),
        label: TOKEN_LABEL.into(),
        pin: PIN.to_owned().into(),
        threads: 1,
        working_copies: 0,
        keygen: Default::default(),
    };
    let plain = tokio::task::spawn_blocking(move || kms_bridge::token::Token::open(&cfg))
        .await
        .unwrap()
        .unwrap();
    plain.load_objects().await.unwrap();
    let (p, session_object) = plain
        .working_copy_protection(token_object_id(&ids[1], 1))
        .await
        .unwrap();
    assert!(!session_object, "no copies were allowed");
    assert!(p.sensitive && !p.extractable && !p.value_readable, "{p:?}");
}

#[tokio::test]
async fn wrong_pin_and_label_fail_to_start() {
    let dir = TestDir::new();
    let out = dir
        .token_env(&mut std::process::Command::new(env!(
            "CARGO_BIN_EXE_kms-bridge"
        )))
        .arg("serve")
        .env("KMS_BRIDGE_LISTEN", "127.0.0.1:0")
        .env("KMS_BRIDGE_DATA_DIR", dir.data_dir())
        .env("KMS_BRIDGE_TOKEN__LABEL", TOKEN_LABEL)
        .env("KMS_BRIDGE_TOKEN_PIN", "0000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("C_Login"), "{err}");
    assert!(!err.contains("0000"), "the PIN must not be printed: {err}");

    let out = dir
        .token_env(&mut std::process::Command::new(env!(
            "CARGO_BIN_EXE_kms-bridge"
        )))
        .arg("serve")
        .env("KMS_BRIDGE_LISTEN", "127.0.0.1:0")
        .env("KMS_BRIDGE_DATA_DIR", dir.data_dir())
        .env("KMS_BRIDGE_TOKEN__LABEL", "no-such-token")
        .env("KMS_BRIDGE_TOKEN_PIN", PIN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-token"));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kms-bridge"))
        .arg("serve")
        .env("KMS_BRIDGE_LISTEN", "not-an-address")
        .env("KMS_BRIDGE_TOKEN_PIN", PIN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

/// Each key object allows only the usages its key needs, as an outside tool (OpenSC's
/// pkcs11-tool) reads them from the token.
#[tokio::test]
async fn key_objects_allow_only_their_usages() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    kms.create_key().send().await.unwrap();
    kms.create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap();
    server.stop();
    let out = std::process::Command::new("pkcs11-tool")
        .args(["--module"])
        .arg(token_module())
        .args([
            "--token-label",
            TOKEN_LABEL,
            "--login",
            "--pin",
            PIN,
            "--list-objects",
            "--type",
            "secrkey",
        ])
        .env(token_conf_var(), dir.token_conf())
        .output()
        .expect("pkcs11-tool (opensc) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut seen = (0, 0);
    for block in text.split("Secret Key Object;").skip(1) {
        if !block.contains("label:      kms-bridge/") {
            continue; // system keys (credential seal, import MAC)
        }
        let usage = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("Usage:"))
            .map(str::trim)
            .unwrap_or("");
        if block.trim_start().starts_with("AES") {
            assert_eq!(usage, "encrypt, decrypt", "{block}");
            seen.0 += 1;
        } else {
            // (pkcs11-tool does not print CKA_SIGN for secret keys.)
            assert_eq!(usage, "verify", "{block}");
            seen.1 += 1;
        }
    }
    assert_eq!(seen, (1, 1), "{text}");
}
