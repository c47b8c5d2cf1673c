//! Custom key stores backed by further SoftHSM tokens, through the AWS SDK.

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{ConnectionErrorCodeType, ConnectionStateType, KeyState, OriginType};
use aws_sdk_kms::Client;

const CLUSTER: &str = "cluster-abcdefghijk";
const CLUSTER_PIN: &str = "store-pin-1234";
const ANCHOR: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

async fn state(kms: &Client, id: &str) -> (ConnectionStateType, Option<ConnectionErrorCodeType>) {
    let d = kms
        .describe_custom_key_stores()
        .custom_key_store_id(id)
        .send()
        .await
        .unwrap();
    let s = &d.custom_key_stores()[0];
    (
        s.connection_state().unwrap().clone(),
        s.connection_error_code().cloned(),
    )
}

#[tokio::test]
async fn keys_live_in_their_custom_key_store() {
    let dir = TestDir::new();
    dir.add_token(CLUSTER, CLUSTER_PIN);
    dir.add_token("cluster-zzzzzzzzzzzz", "other-pin-99");
    let server = Server::start(&dir, &[]);
    let kms = server.client();

    // Created with the wrong password: connecting fails with INVALID_CREDENTIALS.
    let id = kms
        .create_custom_key_store()
        .custom_key_store_name("hsm-a")
        .cloud_hsm_cluster_id(CLUSTER)
        .trust_anchor_certificate(ANCHOR)
        .key_store_password("wrong-password")
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    assert!(id.starts_with("cks-") && id.len() == 21, "{id}");
    assert_eq!(state(&kms, &id).await.0, ConnectionStateType::Disconnected);
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &id).await,
        (
            ConnectionStateType::Failed,
            Some(ConnectionErrorCodeType::InvalidCredentials)
        )
    );
    assert_code!(
        kms.connect_custom_key_store()
            .custom_key_store_id(&id)
            .send()
            .await,
        "CustomKeyStoreInvalidStateException"
    );
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    kms.update_custom_key_store()
        .custom_key_store_id(&id)
        .key_store_password(CLUSTER_PIN)
        .new_custom_key_store_name("hsm-a1")
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.create_key().custom_key_store_id(&id).send().await,
        "CustomKeyStoreInvalidStateException"
    );
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state(&kms, &id).await,
        (ConnectionStateType::Connected, None)
    );
    assert_code!(
        kms.update_custom_key_store()
            .custom_key_store_id(&id)
            .key_store_password("x1234567")
            .send()
            .await,
        "CustomKeyStoreInvalidStateException"
    );

    // A key in the store.
    let m = kms
        .create_key()
        .custom_key_store_id(&id)
        .origin(OriginType::AwsCloudhsm)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.custom_key_store_id(), Some(id.as_str()));
    assert_eq!(m.cloud_hsm_cluster_id(), Some(CLUSTER));
    assert_eq!(m.origin(), Some(&OriginType::AwsCloudhsm));
    let key = m.key_id;
    let blob = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"in the other token".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let r = kms
        .generate_random()
        .number_of_bytes(16)
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.plaintext().unwrap().as_ref().len(), 16);
    assert_code!(
        kms.create_key()
            .custom_key_store_id(&id)
            .key_spec(aws_sdk_kms::types::KeySpec::Rsa2048)
            .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
            .send()
            .await,
        "UnsupportedOperationException"
    );
    assert_code!(
        kms.enable_key_rotation().key_id(&key).send().await,
        "UnsupportedOperationException"
    );
    // No multi-Region keys in a custom key store (as on AWS).
    let (code, message) = code_and_message(
        &kms.create_key()
            .custom_key_store_id(&id)
            .multi_region(true)
            .send()
            .await
            .expect_err("a multi-Region key in a custom key store"),
    );
    assert_eq!(
        (code.as_str(), message.as_deref()),
        (
            "UnsupportedOperationException",
            Some("You cannot create a multi-Region key in a custom key store.")
        )
    );

    // Disconnected: the key is Unavailable and cannot be used; management still works.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.disconnect_custom_key_store()
            .custom_key_store_id(&id)
            .send()
            .await,
        "CustomKeyStoreInvalidStateException"
    );
    let m = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.key_state(), Some(&KeyState::Unavailable));
    assert!(!m.enabled());
    assert_code!(
        kms.decrypt().ciphertext_blob(blob.clone()).send().await,
        "KMSInvalidStateException"
    );
    assert_code!(
        kms.generate_random()
            .number_of_bytes(16)
            .custom_key_store_id(&id)
            .send()
            .await,
        "CustomKeyStoreInvalidStateException"
    );
    kms.update_key_description()
        .key_id(&key)
        .description("still manageable")
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.delete_custom_key_store()
            .custom_key_store_id(&id)
            .send()
            .await,
        "CustomKeyStoreHasCMKsException"
    );

    // Reconnected (and again after a restart): the old ciphertext decrypts.
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    server.stop();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    assert_eq!(state(&kms, &id).await.0, ConnectionStateType::Connected);
    let d = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"in the other token");

    // The material is in the store's token, not in the default one.
    server.stop();
    let default_token = dir.open_token().await;
    let key_uuid = uuid::Uuid::parse_str(&key).unwrap();
    assert!(!default_token
        .exists(kms_bridge::kms::token_object_id(&key_uuid, 1))
        .await
        .unwrap());
    drop(default_token);
    let cfg = kms_bridge::token::TokenConfig {
        module: token_module(),
        label: CLUSTER.into(),
        pin: CLUSTER_PIN.to_owned().into(),
        threads: 2,
        working_copies: 1024,
        keygen: Default::default(),
    };
    let store_token = tokio::task::spawn_blocking(move || kms_bridge::token::Token::open(&cfg))
        .await
        .unwrap()
        .unwrap();
    store_token.load_objects().await.unwrap();
    let p = store_token
        .key_protection(kms_bridge::kms::token_object_id(&key_uuid, 1))
        .await
        .unwrap();
    assert!(p.sensitive && !p.extractable && !p.value_readable);
}

#[tokio::test]
async fn key_store_validation_and_lifecycle() {
    let dir = TestDir::new();
    dir.add_token(CLUSTER, CLUSTER_PIN);
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let create = |name: &str, cluster: &str, pw: &str| {
        kms.create_custom_key_store()
            .custom_key_store_name(name)
            .cloud_hsm_cluster_id(cluster)
            .trust_anchor_certificate(ANCHOR)
            .key_store_password(pw)
            .send()
    };
    assert_code!(
        create("x", "cluster-notthereatall", CLUSTER_PIN).await,
        "CloudHsmClusterNotFoundException"
    );
    assert_code!(
        create("x", "not-a-cluster", CLUSTER_PIN).await,
        "ValidationException"
    );
    assert_code!(create("x", CLUSTER, "short").await, "ValidationException");
    let id = create("store", CLUSTER, CLUSTER_PIN)
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    assert_code!(
        create("store", CLUSTER, CLUSTER_PIN).await,
        "CustomKeyStoreNameInUseException"
    );
    assert_code!(
        create("other", CLUSTER, CLUSTER_PIN).await,
        "CloudHsmClusterInUseException"
    );
    assert_code!(
        kms.create_custom_key_store()
            .custom_key_store_name("xks")
            .custom_key_store_type(aws_sdk_kms::types::CustomKeyStoreType::ExternalKeyStore)
            .send()
            .await,
        "UnsupportedOperationException"
    );
    let by_name = kms
        .describe_custom_key_stores()
        .custom_key_store_name("store")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_name.custom_key_stores()[0].custom_key_store_id(),
        Some(id.as_str())
    );
    assert_eq!(
        by_name.custom_key_stores()[0].trust_anchor_certificate(),
        Some(ANCHOR)
    );
    assert_code!(
        kms.describe_custom_key_stores()
            .custom_key_store_id("cks-00000000000000000")
            .send()
            .await,
        "CustomKeyStoreNotFoundException"
    );
    assert_code!(
        kms.create_key()
            .custom_key_store_id("cks-00000000000000000")
            .send()
            .await,
        "CustomKeyStoreNotFoundException"
    );
    // No keys: it can be deleted (when disconnected).
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.delete_custom_key_store()
            .custom_key_store_id(&id)
            .send()
            .await,
        "CustomKeyStoreInvalidStateException"
    );
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    kms.delete_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .unwrap();
    assert!(kms
        .describe_custom_key_stores()
        .send()
        .await
        .unwrap()
        .custom_key_stores()
        .is_empty());
    // The password never reaches the audit trail.
    let audit = std::fs::read_to_string(dir.data_dir().join("audit/audit-000001.jsonl")).unwrap();
    assert!(!audit.contains(CLUSTER_PIN));
    assert!(audit.contains("CreateCustomKeyStore"));
}
