//! AWS managed keys (`alias/aws/<service>`, KeyManager AWS) through the AWS SDK: created on
//! first use, used only through their service (a configured service principal:
//! `kms:ViaService`), AWS's fixed key policy (nobody changes policy, tags, state, rotation or
//! deletion), yearly rotation, reserved alias names, ListAliases with predefined aliases.

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantOperation, KeyManagerType, KeyState, OriginType, Tag};
use aws_sdk_kms::Client;

/// A call's outcome: Ok, or its error code.
macro_rules! outcome {
    ($call:expr) => {
        $call.send().await.map(|_| ()).map_err(|e| code(&e))
    };
}

const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;

/// A server where `role/storage-service` stands for S3; (server, service, user, admin).
fn setup(dir: &TestDir, extra: &[(&str, &str)]) -> (Server, Creds, Creds) {
    let role = dir
        .admin(&["create-role", "--name", "storage-service"])
        .trim()
        .to_owned();
    let service = Creds::parse(&dir.admin(&["create-access-key", "--principal", &role]));
    let (alice_arn, alice) = dir.user("alice");
    dir.attach(&alice_arn, "all-of-kms", ALLOW_ALL);
    let mut env = vec![("KMS_BRIDGE_SERVICE_PRINCIPALS", format!("s3={role}"))];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    (Server::start(dir, &env), service, alice)
}

async fn aliases(kms: &Client) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_aliases()
            .limit(4)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        out.extend(page.aliases().iter().map(|a| {
            (
                a.alias_name().unwrap_or_default().to_owned(),
                a.target_key_id().map(str::to_owned),
            )
        }));
        if !page.truncated() {
            return out;
        }
        marker = page.next_marker().map(str::to_owned);
    }
}

async fn encrypt(kms: &Client, key: &str) -> Result<(String, Vec<u8>), String> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"object data key".to_vec()))
        .send()
        .await
        .map(|o| {
            (
                o.key_id.unwrap_or_default(),
                o.ciphertext_blob.unwrap().into_inner(),
            )
        })
        .map_err(|e| code(&e))
}

#[tokio::test]
async fn aws_managed_key_is_created_on_first_use_and_used_through_its_service() {
    let dir = TestDir::new();
    let (server, service, alice) = setup(&dir, &[]);
    let (admin, svc, user) = (
        server.client(),
        server.client_for(&service),
        server.client_for(&alice),
    );
    let mine = new_symmetric_key(&admin).await;
    admin
        .create_alias()
        .alias_name("alias/mine")
        .target_key_id(&mine)
        .send()
        .await
        .unwrap();

    // Before first use: the predefined aliases are listed without a target (every page once).
    let listed = aliases(&admin).await;
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "ordered, each once");
    assert!(names.contains(&"alias/aws/s3") && names.contains(&"alias/aws/ebs"));
    assert!(listed.contains(&("alias/mine".into(), Some(mine.clone()))));
    assert!(listed.contains(&("alias/aws/s3".into(), None)));
    assert_eq!(listed_key_ids(&admin).await, vec![mine.clone()]);

    // The service encrypts with alias/aws/s3: the AWS managed key is created and used.
    let (arn, blob) = encrypt(&svc, "alias/aws/s3").await.unwrap();
    let key = arn.rsplit('/').next().unwrap().to_owned();
    let md = describe(&user, "alias/aws/s3").await;
    assert_eq!(md.arn.as_deref(), Some(arn.as_str()));
    assert_eq!(md.key_manager, Some(KeyManagerType::Aws));
    assert_eq!(md.key_state, Some(KeyState::Enabled));
    assert_eq!(md.origin, Some(OriginType::AwsKms));
    assert_eq!(
        md.description(),
        Some("Default master key that protects my S3 objects when no other key is defined")
    );
    assert!(aliases(&admin)
        .await
        .contains(&("alias/aws/s3".into(), Some(key.clone()))));
    let own = admin
        .list_aliases()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name().map(str::to_owned))
        .collect::<Vec<_>>();
    assert_eq!(own, ["alias/aws/s3"]);
    // The same key next time (by alias, alias ARN or key id).
    let (again, _) = encrypt(&svc, "arn:aws:kms:us-east-1:111122223333:alias/aws/s3")
        .await
        .unwrap();
    assert_eq!(again, arn);
    let back = svc
        .decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"object data key");

    // Not directly: users of the account (whatever their identity policies) cannot use it.
    for kms in [&user, &admin] {
        assert_eq!(
            encrypt(kms, "alias/aws/s3").await.unwrap_err(),
            "AccessDeniedException"
        );
        assert_code!(
            kms.decrypt()
                .ciphertext_blob(Blob::new(blob.clone()))
                .send()
                .await,
            "AccessDeniedException"
        );
        assert_code!(
            kms.generate_data_key()
                .key_id("alias/aws/s3")
                .number_of_bytes(32)
                .send()
                .await,
            "AccessDeniedException"
        );
    }
    // S3's policy has no grants: not even the service creates one.
    assert_code!(
        svc.create_grant()
            .key_id(&key)
            .grantee_principal("arn:aws:iam::111122223333:user/alice")
            .operations(GrantOperation::Decrypt)
            .send()
            .await,
        "AccessDeniedException"
    );

    // The account reads its metadata: AWS's fixed policy, rotation on every 365 days.
    let policy = user
        .get_key_policy()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(
        doc["Statement"][0]["Condition"]["StringEquals"]["kms:ViaService"],
        "s3.us-east-1.amazonaws.com"
    );
    assert_eq!(
        doc["Statement"][0]["Condition"]["StringEquals"]["kms:CallerAccount"],
        ACCOUNT
    );
    let rotation = user
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert!(rotation.key_rotation_enabled());
    assert_eq!(rotation.rotation_period_in_days(), Some(365));

    // Nobody changes it: policy, tags, state, description, rotation, deletion.
    let refused: Vec<(&str, Result<(), String>)> = vec![
        (
            "PutKeyPolicy",
            outcome!(admin
                .put_key_policy()
                .key_id(&key)
                .policy(ALLOW_ALL.replace("\"Action\"", "\"Principal\":\"*\",\"Action\""))),
        ),
        (
            "TagResource",
            outcome!(admin
                .tag_resource()
                .key_id(&key)
                .tags(Tag::builder().tag_key("k").tag_value("v").build().unwrap())),
        ),
        (
            "UntagResource",
            outcome!(admin.untag_resource().key_id(&key).tag_keys("k")),
        ),
        ("DisableKey", outcome!(admin.disable_key().key_id(&key))),
        (
            "UpdateKeyDescription",
            outcome!(admin
                .update_key_description()
                .key_id(&key)
                .description("mine now")),
        ),
        (
            "EnableKeyRotation",
            outcome!(admin
                .enable_key_rotation()
                .key_id(&key)
                .rotation_period_in_days(90)),
        ),
        (
            "DisableKeyRotation",
            outcome!(admin.disable_key_rotation().key_id(&key)),
        ),
        (
            "RotateKeyOnDemand",
            outcome!(admin.rotate_key_on_demand().key_id(&key)),
        ),
        (
            "ScheduleKeyDeletion",
            outcome!(admin
                .schedule_key_deletion()
                .key_id(&key)
                .pending_window_in_days(7)),
        ),
        (
            "CreateGrant",
            outcome!(admin
                .create_grant()
                .key_id(&key)
                .grantee_principal("arn:aws:iam::111122223333:user/alice")
                .operations(GrantOperation::Decrypt)),
        ),
    ];
    for (op, r) in refused {
        assert_eq!(r, Err("AccessDeniedException".to_string()), "{op}");
    }
    let e = admin.disable_key().key_id(&key).send().await.unwrap_err();
    let message = code_and_message(&e).1.unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "User: arn:aws:iam::111122223333:user/dev-admin is not authorized to perform: \
             kms:DisableKey on resource: {arn} because no resource-based policy allows"
        )),
        "{message}"
    );
    let md = describe(&user, &key).await;
    assert_eq!(md.key_state, Some(KeyState::Enabled));
    assert!(user
        .list_resource_tags()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .tags()
        .is_empty());
    assert_eq!(
        user.get_key_policy()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .policy,
        Some(policy)
    );

    // alias/aws/ names are AWS's: NotAuthorizedException, without a message (as AWS).
    for r in [
        admin
            .create_alias()
            .alias_name("alias/aws/mine")
            .target_key_id(&mine)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| code_and_message(&e)),
        admin
            .update_alias()
            .alias_name("alias/aws/s3")
            .target_key_id(&mine)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| code_and_message(&e)),
        admin
            .delete_alias()
            .alias_name("alias/aws/s3")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| code_and_message(&e)),
    ] {
        assert_eq!(r, Err(("NotAuthorizedException".to_string(), None)));
    }
    // Nor may a customer alias point at an AWS managed key.
    assert_code!(
        admin
            .create_alias()
            .alias_name("alias/steal")
            .target_key_id(&key)
            .send()
            .await,
        "AccessDeniedException"
    );

    // DescribeKey of another predefined alias creates that service's key (how AWS services
    // make theirs); an alias/aws/ name that is no service's is not found.
    let ebs = describe(&user, "alias/aws/ebs").await;
    assert_eq!(ebs.key_manager, Some(KeyManagerType::Aws));
    assert_ne!(ebs.key_id, key);
    let ebs_policy = user
        .get_key_policy()
        .key_id(&ebs.key_id)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    assert!(
        ebs_policy.contains("ec2.us-east-1.amazonaws.com"),
        "{ebs_policy}"
    );
    assert_code!(
        user.describe_key().key_id("alias/aws/nothing").send().await,
        "NotFoundException"
    );
    // Each region has its own.
    let other = server.client_as(&service, OTHER_REGION);
    let (other_arn, _) = encrypt(&other, "alias/aws/s3").await.unwrap();
    assert!(other_arn.starts_with(&format!("arn:aws:kms:{OTHER_REGION}:")));
    let mut ids = listed_key_ids(&admin).await;
    ids.sort();
    let mut expected = vec![mine, key, ebs.key_id];
    expected.sort();
    assert_eq!(ids, expected, "ListKeys lists AWS managed keys too");
}

#[tokio::test]
async fn aws_managed_keys_rotate_every_year() {
    let dir = TestDir::new();
    let role = dir
        .admin(&["create-role", "--name", "storage-service"])
        .trim()
        .to_owned();
    let service = Creds::parse(&dir.admin(&["create-access-key", "--principal", &role]));
    let server = Server::start(
        &dir,
        &[
            (
                "KMS_BRIDGE_SERVICE_PRINCIPALS",
                format!("s3={role}").as_str(),
            ),
            ("KMS_BRIDGE_DEBUG_CLOCK", "true"),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
            ("KMS_BRIDGE_SCHEDULER_INTERVAL_SECONDS", "3600"),
        ],
    );
    let svc = server.client_for(&service);
    let (arn, blob) = encrypt(&svc, "alias/aws/s3").await.unwrap();
    let report = advance(&server, 364 * 86_400);
    assert_eq!(report["report"]["rotated"], 0, "{report}");
    let report = advance(&server, 2 * 86_400);
    assert_eq!(report["report"]["rotated"], 1, "{report}");
    let admin = server.client();
    let rotations = admin
        .list_key_rotations()
        .key_id(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(rotations.rotations().len(), 1);
    assert_eq!(
        rotations.rotations()[0].rotation_type().map(|t| t.as_str()),
        Some("AUTOMATIC")
    );
    let d = svc
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .send()
        .await
        .unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"object data key");
}
