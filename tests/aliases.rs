//! CreateAlias / UpdateAlias / DeleteAlias / ListAliases through the AWS SDK.

mod common;
use common::*;

use aws_sdk_kms::Client;

async fn key(kms: &Client) -> String {
    kms.create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

async fn target(kms: &Client, alias: &str) -> String {
    kms.describe_key()
        .key_id(alias)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

#[tokio::test]
async fn alias_lifecycle() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let a = key(&kms).await;
    let b = key(&kms).await;
    kms.create_alias()
        .alias_name("alias/app/main")
        .target_key_id(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(target(&kms, "alias/app/main").await, a);
    assert_eq!(
        target(
            &kms,
            &format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/app/main")
        )
        .await,
        a
    );
    assert_code!(
        kms.create_alias()
            .alias_name("alias/app/main")
            .target_key_id(&b)
            .send()
            .await,
        "AlreadyExistsException"
    );
    kms.update_alias()
        .alias_name("alias/app/main")
        .target_key_id(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(target(&kms, "alias/app/main").await, b);
    kms.delete_alias()
        .alias_name("alias/app/main")
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.describe_key().key_id("alias/app/main").send().await,
        "NotFoundException"
    );
    assert_code!(
        kms.delete_alias().alias_name("alias/app/main").send().await,
        "NotFoundException"
    );
    assert_code!(
        kms.update_alias()
            .alias_name("alias/never")
            .target_key_id(&a)
            .send()
            .await,
        "NotFoundException"
    );
}

#[tokio::test]
async fn alias_misuse() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let a = key(&kms).await;
    // Without the prefix AWS answers ValidationException (tests/fidelity.rs pins the text).
    assert_code!(
        kms.create_alias()
            .alias_name("noprefix")
            .target_key_id(&a)
            .send()
            .await,
        "ValidationException"
    );
    // Names outside the model's pattern are model validation errors, as on AWS.
    for bad in ["alias/with space", "alias/ünïcode"] {
        assert_code!(
            kms.create_alias()
                .alias_name(bad)
                .target_key_id(&a)
                .send()
                .await,
            "ValidationException"
        );
    }
    assert_code!(
        kms.create_alias()
            .alias_name("alias/")
            .target_key_id(&a)
            .send()
            .await,
        "InvalidAliasNameException"
    );
    // alias/aws/ is AWS's (tests/managed.rs): NotAuthorizedException.
    assert_code!(
        kms.create_alias()
            .alias_name("alias/aws/ebs")
            .target_key_id(&a)
            .send()
            .await,
        "NotAuthorizedException"
    );
    // Aliases cannot point at aliases (AWS's answer to an alias where only a key id or ARN is
    // taken), nor at unknown keys.
    kms.create_alias()
        .alias_name("alias/one")
        .target_key_id(&a)
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.create_alias()
            .alias_name("alias/two")
            .target_key_id("alias/one")
            .send()
            .await,
        "InvalidArnException"
    );
    assert_code!(
        kms.create_alias()
            .alias_name("alias/three")
            .target_key_id("00000000-0000-4000-8000-000000000000")
            .send()
            .await,
        "NotFoundException"
    );
    // Not onto a key pending deletion.
    let doomed = key(&kms).await;
    kms.schedule_key_deletion()
        .key_id(&doomed)
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.update_alias()
            .alias_name("alias/one")
            .target_key_id(&doomed)
            .send()
            .await,
        "KMSInvalidStateException"
    );
    // An alias to a disabled key resolves, and crypto reports the key state.
    kms.disable_key().key_id(&a).send().await.unwrap();
    assert_code!(
        kms.encrypt()
            .key_id("alias/one")
            .plaintext(aws_sdk_kms::primitives::Blob::new(b"x".to_vec()))
            .send()
            .await,
        "DisabledException"
    );
}

#[tokio::test]
async fn list_aliases_filters_and_pages() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let a = key(&kms).await;
    let b = key(&kms).await;
    for i in 0..5 {
        kms.create_alias()
            .alias_name(format!("alias/a{i}"))
            .target_key_id(&a)
            .send()
            .await
            .unwrap();
    }
    kms.create_alias()
        .alias_name("alias/b0")
        .target_key_id(&b)
        .send()
        .await
        .unwrap();

    let all = kms.list_aliases().send().await.unwrap();
    // Besides the predefined aliases of AWS managed keys (alias/aws/…, tests/managed.rs).
    let names: Vec<&str> = all
        .aliases()
        .iter()
        .filter_map(|x| x.alias_name())
        .filter(|n| !n.starts_with("alias/aws/"))
        .collect();
    assert_eq!(
        names,
        ["alias/a0", "alias/a1", "alias/a2", "alias/a3", "alias/a4", "alias/b0"]
    );
    let first = &all.aliases()[0];
    assert_eq!(
        first.alias_arn(),
        Some(format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/a0").as_str())
    );
    assert_eq!(first.target_key_id(), Some(a.as_str()));
    assert!(first.creation_date().is_some() && first.last_updated_date().is_some());

    let for_b = kms.list_aliases().key_id(&b).send().await.unwrap();
    assert_eq!(for_b.aliases().len(), 1);
    assert_eq!(for_b.aliases()[0].alias_name(), Some("alias/b0"));

    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let p = kms
            .list_aliases()
            .key_id(&a)
            .limit(2)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        seen.extend(
            p.aliases()
                .iter()
                .filter_map(|x| x.alias_name().map(str::to_owned)),
        );
        if !p.truncated() {
            break;
        }
        marker = p.next_marker().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);
    assert_code!(
        kms.list_aliases().marker("junk").send().await,
        "InvalidMarkerException"
    );
    assert_code!(
        kms.list_aliases().limit(101).send().await,
        "ValidationException"
    );
    // Aliases are regional too (only the predefined ones in the other region).
    let west = server.client_in(OTHER_REGION);
    assert!(west
        .list_aliases()
        .send()
        .await
        .unwrap()
        .aliases()
        .iter()
        .all(
            |x| x.alias_name().is_some_and(|n| n.starts_with("alias/aws/"))
                && x.target_key_id().is_none()
        ));
}
