//! Durability: keys, aliases, tags, rotations and old ciphertexts survive restarts and crashes,
//! and start-up reconciliation repairs a crash between the store write and the token write.

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use kms_bridge::kms::{material_id, token_object_id, token_object_label};
use kms_bridge::model::{KeySpec, KeyState, KeyUsage, Origin};
use kms_bridge::store::sqlite::SqliteStore as SqliteStoreForTests;
use kms_bridge::store::{KeyRecord, MetadataStore, VersionRecord};

#[tokio::test]
async fn state_survives_restart_and_crash() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let id = kms
        .create_key()
        .description("durable")
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("t")
                .tag_value("v")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    kms.create_alias()
        .alias_name("alias/durable")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let old = kms
        .encrypt()
        .key_id("alias/durable")
        .plaintext(Blob::new(b"before rotation".to_vec()))
        .encryption_context("c", "1")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    kms.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(180)
        .send()
        .await
        .unwrap();
    let new = kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"after rotation".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    server.stop();

    for round in 0..2 {
        let server = Server::start(&dir, &[]);
        let kms = server.client();
        let m = kms
            .describe_key()
            .key_id("alias/durable")
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        assert_eq!(m.key_id(), id);
        assert_eq!(m.description(), Some("durable"));
        let tags = kms.list_resource_tags().key_id(&id).send().await.unwrap();
        assert_eq!(tags.tags().len(), 1);
        let s = kms
            .get_key_rotation_status()
            .key_id(&id)
            .send()
            .await
            .unwrap();
        assert_eq!(s.rotation_period_in_days(), Some(180));
        let rot = kms.list_key_rotations().key_id(&id).send().await.unwrap();
        assert_eq!(rot.rotations().len(), 1);
        let d = kms
            .decrypt()
            .ciphertext_blob(old.clone())
            .encryption_context("c", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(d.plaintext().unwrap().as_ref(), b"before rotation");
        let d = kms
            .decrypt()
            .ciphertext_blob(new.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(d.plaintext().unwrap().as_ref(), b"after rotation");
        // The first round ends in a crash (SIGKILL), the second starts after it.
        if round == 0 {
            server.kill();
        }
    }
}

fn unfinished_key(id: uuid::Uuid) -> (KeyRecord, VersionRecord) {
    let key = KeyRecord {
        key_id: id,
        region: REGION.into(),
        account: ACCOUNT.into(),
        description: String::new(),
        key_spec: KeySpec::SymmetricDefault,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        state: KeyState::Creating,
        created_at: 1,
        deletion_date: None,
        pending_window_days: None,
        rotation_enabled: false,
        rotation_period_days: None,
        rotation_base: None,
        current_version: 1,
        policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#.into(),
                revision: 0,
        custom_key_store_id: None,
        key_manager: kms_bridge::model::KeyManager::Customer,
        mac: Vec::new(),
        multi_region: None,
    };
    let version = VersionRecord {
        key_id: id,
        version: 1,
        token_object_id: token_object_id(&id, 1),
        material_id: material_id(&id, 1),
        created_at: 1,
        rotation_type: None,
        pending: true,
    };
    (key, version)
}

#[tokio::test]
async fn reconciliation_after_interrupted_creation() {
    let dir = TestDir::new();
    // First start creates the database.
    Server::start(&dir, &[]).stop();

    // Simulate three crashes: (1) store intent written, token object never created;
    // (2) token object created, completion never written; (3) token object with no metadata.
    let lost = uuid::Uuid::new_v4();
    let half_done = uuid::Uuid::new_v4();
    let orphan = uuid::Uuid::new_v4();
    {
        let store = dir.sealed_store().await;
        for id in [lost, half_done] {
            let (k, v) = unfinished_key(id);
            store.insert_key(&k, &v, &[]).await.unwrap();
        }
        let token = dir.open_token().await;
        for id in [half_done, orphan] {
            token
                .generate_aes_key(token_object_id(&id, 1), token_object_label(&id, 1))
                .await
                .unwrap();
        }
    }

    let server = Server::start(&dir, &[]);
    let kms = server.client();
    assert_code!(
        kms.describe_key().key_id(lost.to_string()).send().await,
        "NotFoundException"
    );
    let m = kms
        .describe_key()
        .key_id(half_done.to_string())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.key_state(), Some(&aws_sdk_kms::types::KeyState::Enabled));
    let ct = kms
        .encrypt()
        .key_id(half_done.to_string())
        .plaintext(Blob::new(b"usable".to_vec()))
        .send()
        .await
        .unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext().unwrap().as_ref(), b"usable");
    let keys = kms.list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1);
    let log = server.log();
    assert!(log.contains("orphan token object"), "{log}");
    assert!(log.contains(&orphan.to_string()), "{log}");
    assert!(
        log.contains("removed key whose creation never reached the token"),
        "{log}"
    );

    // The orphan is cleaned up on an operator's word, the keys' material stays.
    let listed = dir.admin(&["orphans"]);
    assert!(listed.contains(&orphan.to_string()), "{listed}");
    assert!(!listed.contains(&half_done.to_string()), "{listed}");
    let destroyed = dir.admin(&["orphans", "--destroy"]);
    assert!(destroyed.contains(&orphan.to_string()), "{destroyed}");
    assert_eq!(dir.admin(&["orphans"]).trim(), "", "nothing left to clean");
    server.stop();
    let server = Server::start(&dir, &[]);
    assert!(
        !server.log().contains("orphan token object"),
        "{}",
        server.log()
    );
    let kms = server.client();
    kms.encrypt()
        .key_id(half_done.to_string())
        .plaintext(Blob::new(b"still usable".to_vec()))
        .send()
        .await
        .unwrap();
}

/// A key whose material is gone from the token (destroyed behind kms-bridge's back) does not
/// show `Enabled`: it is `Unavailable`, and using it answers `KeyUnavailableException`; a key
/// whose material is there is untouched.
#[tokio::test]
async fn a_key_without_its_material_shows_unavailable() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let gone = uuid::Uuid::parse_str(&new_symmetric_key(&kms).await).unwrap();
    let kept = new_symmetric_key(&kms).await;
    server.stop();
    {
        let token = dir.open_token().await;
        token.destroy(token_object_id(&gone, 1)).await.unwrap();
    }
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let m = describe(&kms, &gone.to_string()).await;
    assert_eq!(
        m.key_state(),
        Some(&aws_sdk_kms::types::KeyState::Unavailable)
    );
    assert!(!m.enabled());
    assert_code!(
        kms.encrypt()
            .key_id(gone.to_string())
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "KeyUnavailableException"
    );
    let m = describe(&kms, &kept).await;
    assert_eq!(m.key_state(), Some(&aws_sdk_kms::types::KeyState::Enabled));
    kms.encrypt()
        .key_id(&kept)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    assert!(server.log().contains("key material missing from the token"));
}

/// Key rows are sealed with a token MAC: a key policy edited directly in the database (by
/// someone who can write the database but not use the token) is not honoured — the key is
/// refused (`KMSInternalException`, counted, logged) instead of serving the forged policy —
/// while changes made through the API keep working.
#[tokio::test]
async fn a_key_row_changed_outside_kms_bridge_is_refused() {
    let dir = TestDir::new();
    let env = [("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0")];
    let server = Server::start(&dir, &env);
    let (mallory_arn, mallory) = dir.user("mallory");
    let (_, eve) = dir.user("eve");
    let kms = server.client();
    let forged = new_symmetric_key(&kms).await;
    let kept = new_symmetric_key(&kms).await;
    let as_mallory = server.client_for(&mallory);
    let encrypt = |kms: &aws_sdk_kms::Client, key: &str| {
        kms.encrypt()
            .key_id(key)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
    };
    assert_code!(encrypt(&as_mallory, &forged).await, "AccessDeniedException");
    // A policy change through the API is sealed like any write.
    kms.update_key_description()
        .key_id(&kept)
        .description("changed through the API")
        .send()
        .await
        .unwrap();
    server.stop();

    // The database edited directly: mallory may use the key.
    let allow_mallory = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{mallory_arn}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    {
        let raw = SqliteStoreForTests::open(&dir.data_dir().join("kms-bridge.db"))
            .await
            .unwrap();
        let id = uuid::Uuid::parse_str(&forged).unwrap();
        let mut row = raw.get_key(id).await.unwrap().unwrap();
        row.policy = allow_mallory.clone();
        raw.update_key(&row).await.unwrap();
        // And an identity policy and a grant that would let mallory use the other key.
        raw.put_identity_policy(&kms_bridge::store::IdentityPolicyRecord {
            principal_arn: mallory_arn.clone(),
            name: "forged".into(),
            document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#.into(),
            mac: Vec::new(),
        })
        .await
        .unwrap();
        raw.insert_grant(
            &kms_bridge::store::GrantRecord {
                grant_id: "f".repeat(64),
                key_id: uuid::Uuid::parse_str(&kept).unwrap(),
                name: None,
                grantee_principal: mallory_arn.clone(),
                retiring_principal: None,
                issuing_account: format!("arn:aws:iam::{ACCOUNT}:root"),
                operations: vec!["Encrypt".into()],
                constraints: None,
                created_at: 1,
                mac: vec![0; 32],
            },
            50,
        )
        .await
        .unwrap();
        // A second user's access key moved to the administrator (the secret still unseals:
        // its seal binds the key id, not the principal).
        let admin_arn = raw
            .get_access_key(&Creds::admin().access_key_id)
            .await
            .unwrap()
            .unwrap()
            .principal_arn;
        let mut moved = raw
            .get_access_key(&eve.access_key_id)
            .await
            .unwrap()
            .unwrap();
        raw.delete_access_key(&eve.access_key_id).await.unwrap();
        moved.principal_arn = admin_arn;
        raw.insert_access_key(&moved).await.unwrap();
    }
    let server = Server::start(&dir, &env);
    let kms = server.client();
    let as_mallory = server.client_for(&mallory);
    assert_code!(encrypt(&as_mallory, &forged).await, "KMSInternalException");
    assert_code!(
        kms.describe_key().key_id(&forged).send().await,
        "KMSInternalException"
    );
    let listed = listed_key_ids(&kms).await;
    assert!(!listed.contains(&forged), "a forged row is not listed");
    assert!(listed.contains(&kept));
    assert_eq!(
        describe(&kms, &kept).await.description(),
        Some("changed through the API")
    );
    // The forged identity policy and grant are not honoured either.
    assert_code!(encrypt(&as_mallory, &kept).await, "AccessDeniedException");
    let grants = kms.list_grants().key_id(&kept).send().await.unwrap();
    assert!(grants.grants().is_empty(), "a forged grant is not listed");
    // The moved access key does not make eve the administrator.
    let as_eve = server.client_for(&eve);
    assert!(
        as_eve.list_keys().send().await.is_err(),
        "eve is not the administrator"
    );
    let text = http_get(server.metrics_addr.as_ref().unwrap(), "/metrics").body;
    assert!(metric(&text, "kms_row_integrity_failures_total") >= 1.0);
    assert!(server.log().contains("fails its integrity check"));
}
