//! Key management through the AWS SDK: CreateKey, DescribeKey, ListKeys, Enable/Disable,
//! deletion scheduling, descriptions, tags and key policies.

mod common;
use common::*;

use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, OriginType, Tag};
use aws_sdk_kms::Client;

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().tag_key(k).tag_value(v).build().unwrap()
}

async fn state(kms: &Client, id: &str) -> KeyState {
    kms.describe_key()
        .key_id(id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_state
        .unwrap()
}

#[tokio::test]
async fn create_and_describe() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let before = now_secs();
    let m = kms
        .create_key()
        .description("orders database")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.aws_account_id(), Some(ACCOUNT));
    assert_eq!(
        m.arn(),
        Some(format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{}", m.key_id()).as_str())
    );
    assert!(uuid::Uuid::parse_str(m.key_id()).is_ok());
    assert_eq!(m.description(), Some("orders database"));
    assert_eq!(m.key_state(), Some(&KeyState::Enabled));
    assert!(m.enabled());
    assert_eq!(m.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(m.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(m.origin(), Some(&OriginType::AwsKms));
    assert_eq!(m.key_manager().map(|k| k.as_str()), Some("CUSTOMER"));
    assert_eq!(m.multi_region(), Some(false));
    assert_eq!(m.encryption_algorithms().len(), 1);
    let created = m.creation_date().unwrap().as_secs_f64();
    assert!(created >= before - 1.0 && created <= now_secs() + 1.0);
    assert!(m.deletion_date().is_none());

    let d = kms
        .describe_key()
        .key_id(m.arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(d.key_metadata().unwrap().key_id(), m.key_id());
}

#[tokio::test]
async fn create_key_rejections() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    assert_code!(
        kms.create_key()
            .key_usage(KeyUsageType::SignVerify)
            .send()
            .await,
        "ValidationException"
    );
    assert_code!(
        kms.create_key()
            .origin(OriginType::AwsCloudhsm)
            .send()
            .await,
        "ValidationException"
    );
    assert_code!(
        kms.create_key()
            .origin(OriginType::ExternalKeyStore)
            .send()
            .await,
        "UnsupportedOperationException"
    );
    assert_code!(
        kms.create_key().description("d".repeat(8193)).send().await,
        "ValidationException"
    );
    assert_code!(
        kms.create_key().policy("{not json").send().await,
        "MalformedPolicyDocumentException"
    );
    assert_code!(
        kms.create_key().tags(tag("aws:reserved", "x")).send().await,
        "TagException"
    );
    assert_code!(
        kms.create_key()
            .custom_key_store_id("cks-1234567890abcdef0")
            .send()
            .await,
        "CustomKeyStoreNotFoundException"
    );
    // Nothing was left behind by the failed calls.
    assert!(kms.list_keys().send().await.unwrap().keys().is_empty());
}

#[tokio::test]
async fn list_keys_pages() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(
            kms.create_key()
                .send()
                .await
                .unwrap()
                .key_metadata
                .unwrap()
                .key_id,
        );
    }
    created.sort();
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = kms
            .list_keys()
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.keys().len() <= 2);
        for k in page.keys() {
            assert_eq!(
                k.key_arn(),
                Some(
                    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{}", k.key_id().unwrap()).as_str()
                )
            );
            seen.push(k.key_id().unwrap().to_owned());
        }
        if !page.truncated() {
            assert!(page.next_marker().is_none());
            break;
        }
        marker = page.next_marker().map(str::to_owned);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    let all = kms.list_keys().send().await.unwrap();
    assert_eq!(all.keys().len(), 5);
    assert!(!all.truncated());
    assert_code!(
        kms.list_keys().marker("bogus").send().await,
        "InvalidMarkerException"
    );
    assert_code!(kms.list_keys().limit(0).send().await, "ValidationException");
    assert_code!(
        kms.list_keys().limit(1001).send().await,
        "ValidationException"
    );
}

#[tokio::test]
async fn enable_disable() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    kms.disable_key().key_id(&id).send().await.unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::Disabled);
    let m = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert!(!m.enabled());
    kms.disable_key().key_id(&id).send().await.unwrap();
    kms.enable_key().key_id(&id).send().await.unwrap();
    assert_eq!(state(&kms, &id).await, KeyState::Enabled);
    // These operations take a key id or ARN, not an alias.
    kms.create_alias()
        .alias_name("alias/k")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    // AWS: InvalidArnException "Key Aliases are not supported for this operation."
    let err = kms
        .disable_key()
        .key_id("alias/k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArnException");
    assert_eq!(
        err.as_service_error().and_then(|e| e.meta().message()),
        Some("Key Aliases are not supported for this operation.")
    );
    assert_code!(
        kms.enable_key()
            .key_id("00000000-0000-4000-8000-000000000000")
            .send()
            .await,
        "NotFoundException"
    );
}

#[tokio::test]
async fn schedule_and_cancel_deletion() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    for bad in [6, 31, 0] {
        assert_code!(
            kms.schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(bad)
                .send()
                .await,
            "ValidationException"
        );
    }
    let before = now_secs();
    let s = kms
        .schedule_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(s.pending_window_in_days(), Some(30));
    assert_eq!(s.key_state(), Some(&KeyState::PendingDeletion));
    assert!(s.key_id().unwrap().ends_with(&id));
    let when = s.deletion_date().unwrap().as_secs_f64();
    assert!(
        (when - (before + 30.0 * 86400.0)).abs() < 60.0,
        "deletion date {when}"
    );
    let m = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.key_state(), Some(&KeyState::PendingDeletion));
    assert!(m.deletion_date().is_some());
    assert!(!m.enabled());

    assert_code!(
        kms.schedule_key_deletion().key_id(&id).send().await,
        "KMSInvalidStateException"
    );
    assert_code!(
        kms.enable_key().key_id(&id).send().await,
        "KMSInvalidStateException"
    );
    assert_code!(
        kms.disable_key().key_id(&id).send().await,
        "KMSInvalidStateException"
    );
    assert_code!(
        kms.update_key_description()
            .key_id(&id)
            .description("x")
            .send()
            .await,
        "KMSInvalidStateException"
    );
    assert_code!(
        kms.create_alias()
            .alias_name("alias/doomed")
            .target_key_id(&id)
            .send()
            .await,
        "KMSInvalidStateException"
    );

    let c = kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert!(c.key_id().unwrap().ends_with(&id));
    let m = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.key_state(), Some(&KeyState::Disabled));
    assert!(m.deletion_date().is_none());
    assert_code!(
        kms.cancel_key_deletion().key_id(&id).send().await,
        "KMSInvalidStateException"
    );

    let s = kms
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(s.pending_window_in_days(), Some(7));
}

#[tokio::test]
async fn descriptions() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    kms.update_key_description()
        .key_id(&id)
        .description("new words")
        .send()
        .await
        .unwrap();
    let m = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.description(), Some("new words"));
    kms.update_key_description()
        .key_id(&id)
        .description("")
        .send()
        .await
        .unwrap();
    let m = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.description(), Some(""));
    assert_code!(
        kms.update_key_description()
            .key_id(&id)
            .description("x".repeat(8193))
            .send()
            .await,
        "ValidationException"
    );
}

#[tokio::test]
async fn tags() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let id = kms
        .create_key()
        .tags(tag("team", "payments"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let list = |kms: Client, id: String| async move {
        kms.list_resource_tags()
            .key_id(id)
            .send()
            .await
            .unwrap()
            .tags()
            .iter()
            .map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(kms.clone(), id.clone()).await,
        vec![
            ("env".into(), "prod".into()),
            ("team".into(), "payments".into())
        ]
    );
    kms.tag_resource()
        .key_id(&id)
        .tags(tag("env", "staging"))
        .tags(tag("owner", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(
        list(kms.clone(), id.clone()).await,
        vec![
            ("env".into(), "staging".into()),
            ("owner".into(), "".into()),
            ("team".into(), "payments".into())
        ]
    );
    kms.untag_resource()
        .key_id(&id)
        .tag_keys("team")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(
        list(kms.clone(), id.clone()).await,
        vec![
            ("env".into(), "staging".into()),
            ("owner".into(), "".into())
        ]
    );
    let page = kms
        .list_resource_tags()
        .key_id(&id)
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.tags().len(), 1);
    assert!(page.truncated());
    let rest = kms
        .list_resource_tags()
        .key_id(&id)
        .limit(1)
        .marker(page.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.tags()[0].tag_key(), "owner");
    assert!(!rest.truncated());

    assert_code!(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag("aws:x", "y"))
            .send()
            .await,
        "TagException"
    );
    assert_code!(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag(&"k".repeat(129), "y"))
            .send()
            .await,
        "ValidationException" // a model constraint, as AWS answers
    );
    let mut many = kms.tag_resource().key_id(&id);
    for i in 0..49 {
        many = many.tags(tag(&format!("t{i:02}"), "v"));
    }
    // AWS: more than 50 tags on a key is TagException "Too many tags".
    let err = many.send().await.expect_err("51 tags");
    assert_eq!(code(&err), "TagException");
    assert_eq!(
        err.as_service_error().and_then(|e| e.meta().message()),
        Some("Too many tags")
    );
    assert_code!(
        kms.list_resource_tags().key_id("alias/nope").send().await,
        "InvalidArnException"
    );
}

#[tokio::test]
async fn key_policies() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let p = kms.get_key_policy().key_id(&id).send().await.unwrap();
    assert_eq!(p.policy_name(), Some("default"));
    let expected = format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{ACCOUNT}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    );
    assert_eq!(p.policy(), Some(expected.as_str()));
    let names = kms.list_key_policies().key_id(&id).send().await.unwrap();
    assert_eq!(names.policy_names(), ["default".to_owned()]);

    let mine = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
    kms.put_key_policy()
        .key_id(&id)
        .policy(mine)
        .send()
        .await
        .unwrap();
    let p = kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    assert_eq!(p.policy(), Some(mine));
    assert_code!(
        kms.put_key_policy()
            .key_id(&id)
            .policy("[1,2]")
            .send()
            .await,
        "MalformedPolicyDocumentException"
    );
    assert_code!(
        kms.get_key_policy()
            .key_id(&id)
            .policy_name("other")
            .send()
            .await,
        "NotFoundException"
    );
    let created_with = kms
        .create_key()
        .policy(mine)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let p = kms
        .get_key_policy()
        .key_id(&created_with)
        .send()
        .await
        .unwrap();
    assert_eq!(p.policy(), Some(mine));
}
