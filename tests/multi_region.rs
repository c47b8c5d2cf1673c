//! Multi-Region keys through the AWS SDK for Rust, on a server serving three regions: a primary
//! and its replicas (ReplicateKey), `MultiRegionConfiguration` on both sides, ciphertexts
//! crossing regions, shared rotation, per-key policy/aliases/tags/grants/state,
//! UpdatePrimaryRegion, the primary's deletion waiting for its replicas, the refusals, and a
//! replica interrupted between the store and the token.

mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    KeySpec, KeyState, KeyUsageType, MacAlgorithmSpec, MultiRegionKeyType, SigningAlgorithmSpec,
    Tag,
};
use common::*;

const THIRD_REGION: &str = "ap-southeast-2";
const REGIONS: &str = "us-east-1,eu-west-1,ap-southeast-2";

fn start(dir: &TestDir) -> Server {
    Server::start(dir, &[("KMS_BRIDGE_REGIONS", REGIONS)])
}

fn start_new() -> (TestDir, Server) {
    let dir = TestDir::new();
    let server = start(&dir);
    (dir, server)
}

/// (HTTP status, error code, message) of a refused call.
macro_rules! refused {
    ($res:expr) => {{
        let e = $res.expect_err("expected a refusal");
        let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
        let (code, message) = code_and_message(&e);
        (status, code, message)
    }};
}

fn arn(region: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}")
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().tag_key(k).tag_value(v).build().unwrap()
}

async fn new_mrk(kms: &aws_sdk_kms::Client) -> String {
    created(kms.create_key().multi_region(true)).await
}

/// Replicate `key` into `region`; the replica's metadata as ReplicateKey answered it.
async fn replicate(
    kms: &aws_sdk_kms::Client,
    key: &str,
    region: &str,
) -> aws_sdk_kms::types::KeyMetadata {
    kms.replicate_key()
        .key_id(key)
        .replica_region(region)
        .send()
        .await
        .expect("ReplicateKey")
        .replica_key_metadata
        .expect("ReplicaKeyMetadata")
}

async fn decrypt(kms: &aws_sdk_kms::Client, blob: &[u8]) -> (Vec<u8>, String, String) {
    let d = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.to_vec()))
        .send()
        .await
        .expect("Decrypt");
    (
        d.plaintext.unwrap().into_inner(),
        d.key_id.unwrap(),
        d.key_material_id.unwrap(),
    )
}

/// (type, (primary ARN, region), [(replica ARN, region)]) of a key's MultiRegionConfiguration.
fn configuration(
    m: &aws_sdk_kms::types::KeyMetadata,
) -> (MultiRegionKeyType, (String, String), Vec<(String, String)>) {
    let c = m
        .multi_region_configuration()
        .expect("MultiRegionConfiguration");
    let pair = |k: &aws_sdk_kms::types::MultiRegionKey| {
        (k.arn().unwrap().to_owned(), k.region().unwrap().to_owned())
    };
    (
        c.multi_region_key_type().unwrap().clone(),
        pair(c.primary_key().unwrap()),
        c.replica_keys().iter().map(pair).collect(),
    )
}

#[tokio::test]
async fn a_multi_region_key_is_one_key_in_several_regions() {
    let (dir, server) = start_new();
    let (a, b, c) = (
        server.client(),
        server.client_in(OTHER_REGION),
        server.client_in(THIRD_REGION),
    );

    // A single-Region key says so and has no configuration.
    let single = created_metadata(a.create_key()).await;
    assert_eq!(single.multi_region(), Some(false));
    assert!(single.multi_region_configuration().is_none());
    assert!(!single.key_id().starts_with("mrk-"));

    let created = created_metadata(a.create_key().multi_region(true).description("primary")).await;
    let id = created.key_id().to_owned();
    let hex = id.strip_prefix("mrk-").expect("mrk- key id");
    assert!(
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id}"
    );
    assert_eq!(created.arn(), Some(arn(REGION, &id).as_str()));
    assert_eq!(created.multi_region(), Some(true));
    assert_eq!(
        configuration(&created),
        (
            MultiRegionKeyType::Primary,
            (arn(REGION, &id), REGION.to_owned()),
            vec![]
        )
    );

    // The other region does not know it yet.
    let (status, code, message) = refused!(b.describe_key().key_id(&id).send().await);
    assert_eq!(
        (status, code.as_str(), message.as_deref()),
        (
            400,
            "NotFoundException",
            Some(format!("Key '{}' does not exist", arn(OTHER_REGION, &id)).as_str())
        )
    );

    // ReplicateKey answers the replica as recorded: Creating, no material id yet.
    let r = a
        .replicate_key()
        .key_id(&id)
        .replica_region(OTHER_REGION)
        .description("replica")
        .tags(tag("team", "b"))
        .send()
        .await
        .unwrap();
    let m = r.replica_key_metadata().unwrap();
    assert_eq!(m.key_id(), id);
    assert_eq!(m.arn(), Some(arn(OTHER_REGION, &id).as_str()));
    assert_eq!(m.key_state(), Some(&KeyState::Creating));
    assert!(!m.enabled());
    assert!(m.current_key_material_id().is_none());
    assert_eq!(m.description(), Some("replica"));
    assert_eq!(m.multi_region(), Some(true));
    assert_eq!(
        configuration(m),
        (
            MultiRegionKeyType::Replica,
            (arn(REGION, &id), REGION.to_owned()),
            vec![(arn(OTHER_REGION, &id), OTHER_REGION.to_owned())]
        )
    );
    // The trail has ReplicateKey in the primary's region and CreateKey in the replica's.
    let trail = std::fs::read_to_string(dir.data_dir().join("audit/audit-000001.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = trail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let event = |name: &str| {
        records
            .iter()
            .rev()
            .find(|r| r["eventName"] == name)
            .unwrap_or_else(|| panic!("no {name} record"))
    };
    let (rk, ck) = (event("ReplicateKey"), event("CreateKey"));
    assert_eq!(rk["awsRegion"], REGION);
    assert_eq!(rk["requestParameters"]["replicaRegion"], OTHER_REGION);
    assert_eq!(ck["awsRegion"], OTHER_REGION);
    assert_eq!(ck["resources"][0]["ARN"], arn(OTHER_REGION, &id));
    assert_eq!(rk["requestID"], ck["requestID"]);
    let policy: serde_json::Value = serde_json::from_str(r.replica_policy().unwrap()).unwrap();
    assert_eq!(policy["Id"], "key-default-1");
    assert_eq!(r.replica_tags(), [tag("team", "b")]);

    // Both sides describe the set; the replica is usable and holds the same material.
    let replica = describe(&b, &id).await;
    assert_eq!(replica.key_state(), Some(&KeyState::Enabled));
    assert_eq!(replica.description(), Some("replica"));
    assert_eq!(
        replica.current_key_material_id(),
        created.current_key_material_id()
    );
    let primary = describe(&a, &id).await;
    assert_eq!(
        configuration(&primary),
        (
            MultiRegionKeyType::Primary,
            (arn(REGION, &id), REGION.to_owned()),
            vec![(arn(OTHER_REGION, &id), OTHER_REGION.to_owned())]
        )
    );
    assert!(listed_key_ids(&b).await.contains(&id));
    assert!(!listed_key_ids(&c).await.contains(&id));

    // A ciphertext made in one region decrypts in the other, and back.
    let blob = encrypt_blob(&a, &id, b"made in us-east-1").await;
    let (pt, key_arn, material) = decrypt(&b, &blob).await;
    assert_eq!(pt, b"made in us-east-1");
    assert_eq!(key_arn, arn(OTHER_REGION, &id));
    assert_eq!(Some(material.as_str()), created.current_key_material_id());
    let named = b
        .decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .key_id(arn(OTHER_REGION, &id))
        .send()
        .await
        .unwrap();
    assert_eq!(named.plaintext().unwrap().as_ref(), b"made in us-east-1");
    let back = encrypt_blob(&b, &id, b"made in eu-west-1").await;
    assert_eq!(decrypt(&a, &back).await.0, b"made in eu-west-1");
    let dk = b
        .generate_data_key()
        .key_id(&id)
        .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let (pt, _, _) = decrypt(&a, dk.ciphertext_blob().unwrap().as_ref()).await;
    assert_eq!(pt, dk.plaintext().unwrap().as_ref());
    // Each key's last use is its own.
    let usage = b.get_key_last_usage().key_id(&id).send().await.unwrap();
    assert_eq!(usage.key_id(), Some(id.as_str()));
    assert_eq!(
        usage
            .key_last_usage()
            .and_then(|u| u.operation())
            .map(|o| o.as_str()),
        Some("GenerateDataKey")
    );
    // A region without a replica cannot open it.
    assert_code!(
        c.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
        "InvalidCiphertextException"
    );
    // A re-encryption in the replica's region lands under a single-Region key there.
    let local = new_symmetric_key(&b).await;
    let re = b
        .re_encrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .destination_key_id(&local)
        .send()
        .await
        .unwrap();
    assert_eq!(re.source_key_id(), Some(arn(OTHER_REGION, &id).as_str()));

    // A third region: every member lists both replicas.
    replicate(&a, &id, THIRD_REGION).await;
    let replicas = vec![
        (arn(THIRD_REGION, &id), THIRD_REGION.to_owned()),
        (arn(OTHER_REGION, &id), OTHER_REGION.to_owned()),
    ];
    for kms in [&a, &b, &c] {
        let (_, primary, mut listed) = configuration(&describe(kms, &id).await);
        listed.sort();
        assert_eq!(primary, (arn(REGION, &id), REGION.to_owned()));
        assert_eq!(listed, replicas);
    }
    assert_eq!(decrypt(&c, &blob).await.0, b"made in us-east-1");
    server.stop();

    // The replicas' material is their own copy, made in the token and held as the primary's.
    let token = dir.open_token().await;
    let mrk = uuid::Uuid::parse_str(hex).unwrap();
    for region in [REGION, OTHER_REGION, THIRD_REGION] {
        let row = kms_bridge::kms::ids::mrk_row_id(&mrk, region);
        let p = token
            .key_protection(kms_bridge::kms::token_object_id(&row, 1))
            .await
            .unwrap();
        assert!(p.holds(), "{region}: {p:?}");
    }
}

#[tokio::test]
async fn asymmetric_and_hmac_keys_replicate_too() {
    let (_dir, server) = start_new();
    let (a, b) = (server.client(), server.client_in(OTHER_REGION));
    let signer = created(
        a.create_key()
            .multi_region(true)
            .key_spec(KeySpec::EccNistP256)
            .key_usage(KeyUsageType::SignVerify),
    )
    .await;
    replicate(&a, &signer, OTHER_REGION).await;
    let public = |kms: aws_sdk_kms::Client, id: String| async move {
        kms.get_public_key()
            .key_id(id)
            .send()
            .await
            .unwrap()
            .public_key
            .unwrap()
            .into_inner()
    };
    assert_eq!(
        public(a.clone(), signer.clone()).await,
        public(b.clone(), signer.clone()).await
    );
    let sig = b
        .sign()
        .key_id(&signer)
        .message(Blob::new(b"signed in eu-west-1".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap();
    let v = a
        .verify()
        .key_id(&signer)
        .message(Blob::new(b"signed in eu-west-1".to_vec()))
        .signature(sig)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap();
    assert!(v.signature_valid());

    let mac_key = created(
        a.create_key()
            .multi_region(true)
            .key_spec(KeySpec::Hmac256)
            .key_usage(KeyUsageType::GenerateVerifyMac),
    )
    .await;
    replicate(&a, &mac_key, OTHER_REGION).await;
    let mac = a
        .generate_mac()
        .key_id(&mac_key)
        .message(Blob::new(b"m".to_vec()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap()
        .mac
        .unwrap();
    let ok = b
        .verify_mac()
        .key_id(&mac_key)
        .message(Blob::new(b"m".to_vec()))
        .mac(mac)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await
        .unwrap();
    assert!(ok.mac_valid());
}

#[tokio::test]
async fn rotation_is_shared_and_set_on_the_primary() {
    let (_dir, server) = start_new();
    let (a, b) = (server.client(), server.client_in(OTHER_REGION));
    let id = new_mrk(&a).await;
    replicate(&a, &id, OTHER_REGION).await;
    let old_a = encrypt_blob(&a, &id, b"old from a").await;
    let old_b = encrypt_blob(&b, &id, b"old from b").await;

    // The replica takes no rotation setting or rotation of its own.
    let not_primary = format!(
        "{} is not a multi-region primary key.",
        arn(OTHER_REGION, &id)
    );
    for r in [
        refused!(b.enable_key_rotation().key_id(&id).send().await),
        refused!(b.disable_key_rotation().key_id(&id).send().await),
    ] {
        assert_eq!(
            (r.0, r.1.as_str(), r.2.as_deref()),
            (
                400,
                "UnsupportedOperationException",
                Some(not_primary.as_str())
            )
        );
    }
    let r = refused!(b.rotate_key_on_demand().key_id(&id).send().await);
    assert_eq!(
        (r.1.as_str(), r.2.as_deref()),
        ("UnsupportedOperationException", Some(not_primary.as_str()))
    );

    // Set on the primary, it shows on the replica.
    a.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(180)
        .send()
        .await
        .unwrap();
    let s = b
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), Some(180));

    // An on-demand rotation of the primary gives every member the new material.
    a.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    let (ma, mb) = (describe(&a, &id).await, describe(&b, &id).await);
    assert_eq!(ma.current_key_material_id(), mb.current_key_material_id());
    let new_a = encrypt_blob(&a, &id, b"new from a").await;
    let new_b = encrypt_blob(&b, &id, b"new from b").await;
    for kms in [&a, &b] {
        assert_eq!(decrypt(kms, &old_a).await.0, b"old from a");
        assert_eq!(decrypt(kms, &old_b).await.0, b"old from b");
        assert_eq!(decrypt(kms, &new_a).await.0, b"new from a");
        let (pt, _, material) = decrypt(kms, &new_b).await;
        assert_eq!(pt, b"new from b");
        assert_eq!(Some(material.as_str()), ma.current_key_material_id());
    }
    let rotations = b.list_key_rotations().key_id(&id).send().await.unwrap();
    assert_eq!(rotations.rotations().len(), 1);
    assert_eq!(rotations.rotations()[0].key_id(), Some(id.as_str()));

    a.disable_key_rotation().key_id(&id).send().await.unwrap();
    let s = b
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!s.key_rotation_enabled());
}

#[tokio::test]
async fn policy_aliases_tags_grants_state_and_description_are_per_key() {
    let (_dir, server) = start_new();
    let (a, b) = (server.client(), server.client_in(OTHER_REGION));
    let id = new_mrk(&a).await;
    a.tag_resource()
        .key_id(&id)
        .tags(tag("side", "primary"))
        .send()
        .await
        .unwrap();
    replicate(&a, &id, OTHER_REGION).await;

    // Tags: the replica starts with none of the primary's.
    assert!(b
        .list_resource_tags()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .tags()
        .is_empty());
    b.tag_resource()
        .key_id(&id)
        .tags(tag("side", "replica"))
        .send()
        .await
        .unwrap();
    let tags = a.list_resource_tags().key_id(&id).send().await.unwrap();
    assert_eq!(tags.tags(), [tag("side", "primary")]);

    // Policies.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"replica only","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    b.put_key_policy()
        .key_id(&id)
        .policy(&policy)
        .send()
        .await
        .unwrap();
    let get = |kms: aws_sdk_kms::Client| {
        let id = id.clone();
        async move {
            kms.get_key_policy()
                .key_id(id)
                .send()
                .await
                .unwrap()
                .policy
                .unwrap()
        }
    };
    assert_eq!(get(b.clone()).await, policy);
    assert!(!get(a.clone()).await.contains("replica only"));

    // Aliases: one name in each region, each pointing at its own region's key.
    for kms in [&a, &b] {
        kms.create_alias()
            .alias_name("alias/shared")
            .target_key_id(&id)
            .send()
            .await
            .unwrap();
    }
    let listed = b.list_aliases().key_id(&id).send().await.unwrap();
    assert_eq!(listed.aliases().len(), 1);
    assert_eq!(listed.aliases()[0].target_key_id(), Some(id.as_str()));
    let blob = encrypt_blob(&b, "alias/shared", b"via alias").await;
    assert_eq!(decrypt(&a, &blob).await.1, arn(REGION, &id));
    a.delete_alias()
        .alias_name("alias/shared")
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypt(&a, &encrypt_blob(&b, "alias/shared", b"x").await)
            .await
            .0,
        b"x"
    );
    assert_code!(
        a.encrypt()
            .key_id("alias/shared")
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "NotFoundException"
    );

    // Grants.
    a.create_grant()
        .key_id(&id)
        .grantee_principal(format!("arn:aws:iam::{ACCOUNT}:user/someone"))
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .unwrap();
    assert_eq!(
        a.list_grants()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .grants()
            .len(),
        1
    );
    assert!(b
        .list_grants()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .grants()
        .is_empty());

    // State and description.
    b.disable_key().key_id(&id).send().await.unwrap();
    let (status, code, message) = refused!(
        b.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await
    );
    assert_eq!(
        (status, code.as_str(), message),
        (
            400,
            "DisabledException",
            Some(format!("{} is disabled.", arn(OTHER_REGION, &id)))
        )
    );
    assert_eq!(decrypt(&a, &blob).await.0, b"via alias");
    assert_eq!(
        describe(&a, &id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    a.update_key_description()
        .key_id(&id)
        .description("changed on the primary")
        .send()
        .await
        .unwrap();
    assert_eq!(describe(&b, &id).await.description(), Some(""));
}

#[tokio::test]
async fn update_primary_region_swaps_the_roles() {
    let (_dir, server) = start_new();
    let (a, b, c) = (
        server.client(),
        server.client_in(OTHER_REGION),
        server.client_in(THIRD_REGION),
    );
    let id = new_mrk(&a).await;
    replicate(&a, &id, OTHER_REGION).await;
    replicate(&a, &id, THIRD_REGION).await;
    let blob = encrypt_blob(&a, &id, b"before the swap").await;

    // Both keys must be enabled.
    b.disable_key().key_id(&id).send().await.unwrap();
    let r = refused!(
        a.update_primary_region()
            .key_id(&id)
            .primary_region(OTHER_REGION)
            .send()
            .await
    );
    assert_eq!(
        (r.1.as_str(), r.2),
        (
            "DisabledException",
            Some(format!("{} is disabled.", arn(OTHER_REGION, &id)))
        )
    );
    b.enable_key().key_id(&id).send().await.unwrap();

    a.update_primary_region()
        .key_id(&id)
        .primary_region(OTHER_REGION)
        .send()
        .await
        .unwrap();
    for kms in [&a, &b, &c] {
        let m = describe(kms, &id).await;
        assert_eq!(m.key_state(), Some(&KeyState::Enabled));
        let (kind, primary, mut replicas) = configuration(&m);
        replicas.sort();
        assert_eq!(primary, (arn(OTHER_REGION, &id), OTHER_REGION.to_owned()));
        assert_eq!(
            replicas,
            vec![
                (arn(THIRD_REGION, &id), THIRD_REGION.to_owned()),
                (arn(REGION, &id), REGION.to_owned()),
            ]
        );
        let expected = if std::ptr::eq(kms, &b) {
            MultiRegionKeyType::Primary
        } else {
            MultiRegionKeyType::Replica
        };
        assert_eq!(kind, expected);
    }
    // The old primary is a replica now: it neither replicates nor rotates the set.
    let r = refused!(
        a.update_primary_region()
            .key_id(&id)
            .primary_region(THIRD_REGION)
            .send()
            .await
    );
    assert_eq!(
        (r.1.as_str(), r.2),
        (
            "UnsupportedOperationException",
            Some(format!(
                "{} is not a multi-region primary key.",
                arn(REGION, &id)
            ))
        )
    );
    assert_code!(
        a.rotate_key_on_demand().key_id(&id).send().await,
        "UnsupportedOperationException"
    );
    // The new primary does.
    b.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    let after = encrypt_blob(&c, &id, b"after the swap").await;
    for kms in [&a, &b, &c] {
        assert_eq!(decrypt(kms, &blob).await.0, b"before the swap");
        assert_eq!(decrypt(kms, &after).await.0, b"after the swap");
    }
    // Back again.
    b.update_primary_region()
        .key_id(&id)
        .primary_region(REGION)
        .send()
        .await
        .unwrap();
    assert_eq!(
        configuration(&describe(&c, &id).await).1,
        (arn(REGION, &id), REGION.to_owned())
    );
}

#[tokio::test]
async fn the_primary_is_deleted_after_its_replicas() {
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_REGIONS", REGIONS),
            ("KMS_BRIDGE_DEBUG_CLOCK", "true"),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
            ("KMS_BRIDGE_SCHEDULER_INTERVAL_SECONDS", "3600"),
        ],
    );
    let (a, b) = (server.client(), server.client_in(OTHER_REGION));
    let id = new_mrk(&a).await;
    replicate(&a, &id, OTHER_REGION).await;
    let blob = encrypt_blob(&a, &id, b"outlives the primary's schedule").await;

    // With a replica, the primary waits: no deletion date, its window kept for later.
    let s = a
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(s.key_state(), Some(&KeyState::PendingReplicaDeletion));
    assert!(s.deletion_date().is_none());
    assert_eq!(s.pending_window_in_days(), Some(7));
    let m = describe(&a, &id).await;
    assert_eq!(m.key_state(), Some(&KeyState::PendingReplicaDeletion));
    assert_eq!(m.pending_deletion_window_in_days(), Some(7));
    assert!(m.deletion_date().is_none());
    let r = refused!(
        a.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await
    );
    assert_eq!(
        (r.0, r.1.as_str(), r.2),
        (
            400,
            "KMSInvalidStateException",
            Some(format!("{} is pending replica deletion.", arn(REGION, &id)))
        )
    );
    assert_code!(
        a.replicate_key()
            .key_id(&id)
            .replica_region(THIRD_REGION)
            .send()
            .await,
        "KMSInvalidStateException"
    );
    // Cancelled like any deletion (→ Disabled), and scheduled again.
    a.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert_eq!(
        describe(&a, &id).await.key_state(),
        Some(&KeyState::Disabled)
    );
    a.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();

    // Long past the window, the primary still waits for its replica, which works.
    advance(&server, 40 * 86_400);
    assert_eq!(
        describe(&a, &id).await.key_state(),
        Some(&KeyState::PendingReplicaDeletion)
    );
    assert_eq!(
        decrypt(&b, &blob).await.0,
        b"outlives the primary's schedule"
    );

    // The replica deletes on its own schedule; then the primary's window starts.
    let s = b
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(10)
        .send()
        .await
        .unwrap();
    assert_eq!(s.key_state(), Some(&KeyState::PendingDeletion));
    assert!(s.deletion_date().is_some());
    advance(&server, 9 * 86_400);
    assert_eq!(
        describe(&b, &id).await.key_state(),
        Some(&KeyState::PendingDeletion)
    );
    let report = advance(&server, 2 * 86_400);
    assert_eq!(report["report"]["deleted"], 1, "{report}");
    assert_eq!(report["report"]["primary_deletions_started"], 1, "{report}");
    assert_code!(
        b.describe_key().key_id(&id).send().await,
        "NotFoundException"
    );
    let m = describe(&a, &id).await;
    assert_eq!(m.key_state(), Some(&KeyState::PendingDeletion));
    assert!(m.deletion_date().is_some());
    assert!(m.pending_deletion_window_in_days().is_none());
    assert!(configuration(&m).2.is_empty(), "no replicas left");
    advance(&server, 8 * 86_400);
    assert_code!(
        a.describe_key().key_id(&id).send().await,
        "NotFoundException"
    );
}

#[tokio::test]
async fn a_deleted_replica_can_be_made_again() {
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_REGIONS", REGIONS),
            ("KMS_BRIDGE_DEBUG_CLOCK", "true"),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
            ("KMS_BRIDGE_SCHEDULER_INTERVAL_SECONDS", "3600"),
        ],
    );
    let (a, b) = (server.client(), server.client_in(OTHER_REGION));
    let id = new_mrk(&a).await;
    replicate(&a, &id, OTHER_REGION).await;
    let blob = encrypt_blob(&a, &id, b"again").await;
    b.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    advance(&server, 8 * 86_400);
    assert_code!(
        b.describe_key().key_id(&id).send().await,
        "NotFoundException"
    );
    assert!(configuration(&describe(&a, &id).await).2.is_empty());
    let m = replicate(&a, &id, OTHER_REGION).await;
    assert_eq!(m.key_state(), Some(&KeyState::Creating));
    assert_eq!(
        describe(&b, &id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    assert_eq!(decrypt(&b, &blob).await.0, b"again");
}

#[tokio::test]
async fn refusals_are_aws_answers() {
    let (dir, server) = start_new();
    let (a, b) = (server.client(), server.client_in(OTHER_REGION));
    let single = new_symmetric_key(&a).await;
    let id = new_mrk(&a).await;
    replicate(&a, &id, OTHER_REGION).await;
    let expect = |got: (u16, String, Option<String>), code: &str, message: String| {
        assert_eq!(got, (400, code.to_owned(), Some(message)));
    };

    // Only a multi-Region primary key replicates (AWS's recorded text).
    expect(
        refused!(
            a.replicate_key()
                .key_id(&single)
                .replica_region(OTHER_REGION)
                .send()
                .await
        ),
        "UnsupportedOperationException",
        format!(
            "{} is not a multi-region primary key.",
            arn(REGION, &single)
        ),
    );
    expect(
        refused!(
            b.replicate_key()
                .key_id(&id)
                .replica_region(THIRD_REGION)
                .send()
                .await
        ),
        "UnsupportedOperationException",
        format!(
            "{} is not a multi-region primary key.",
            arn(OTHER_REGION, &id)
        ),
    );
    // Not into a region that has a key of the set, the primary's included.
    for region in [REGION, OTHER_REGION] {
        expect(
            refused!(
                a.replicate_key()
                    .key_id(&id)
                    .replica_region(region)
                    .send()
                    .await
            ),
            "AlreadyExistsException",
            format!(
                "Unable to replicate key {id} to region {region}, as the key already exist there"
            ),
        );
    }
    // A region outside the deployment, and one that is not a region name.
    expect(
        refused!(
            a.replicate_key()
                .key_id(&id)
                .replica_region("us-west-2")
                .send()
                .await
        ),
        "UnsupportedOperationException",
        "The Region us-west-2 is not enabled for this account.".into(),
    );
    expect(
        refused!(
            a.replicate_key()
                .key_id(&id)
                .replica_region("nowhere")
                .send()
                .await
        ),
        "ValidationException",
        "1 validation error detected: Value 'nowhere' at 'replicaRegion' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\\d+$".into(),
    );
    // UpdatePrimaryRegion needs a replica in the new primary Region.
    expect(
        refused!(
            a.update_primary_region()
                .key_id(&id)
                .primary_region(THIRD_REGION)
                .send()
                .await
        ),
        "NotFoundException",
        format!("Key '{}' does not exist", arn(THIRD_REGION, &id)),
    );
    // The mrk- id names only a multi-Region key, a UUID only a single-Region key.
    let r = refused!(a.describe_key().key_id("mrk-fake-key-id").send().await);
    assert_eq!(r.2.as_deref(), Some("Invalid keyId 'mrk-fake-key-id'"));
    let unknown = "mrk-0123456789abcdef0123456789abcdef";
    expect(
        refused!(a.describe_key().key_id(unknown).send().await),
        "NotFoundException",
        format!("Key '{}' does not exist", arn(REGION, unknown)),
    );
    // Another region's ARN is refused as for any key.
    expect(
        refused!(a.describe_key().key_id(arn(OTHER_REGION, &id)).send().await),
        "NotFoundException",
        format!("Invalid arn {OTHER_REGION}"),
    );

    // Authorization: kms:ReplicateKey on the primary, kms:CreateKey (IAM) in the replica
    // Region — here denied in ap-southeast-2 only.
    let (user, creds) = dir.user("replicator");
    dir.attach(
        &user,
        "kms",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":"kms:*","Resource":"*"}},
            {{"Effect":"Deny","Action":"kms:CreateKey","Resource":"*",
              "Condition":{{"StringEquals":{{"aws:RequestedRegion":"{THIRD_REGION}"}}}}}}]}}"#
        ),
    );
    let u = server.client_as(&creds, REGION);
    let other = new_mrk(&u).await;
    let r = refused!(
        u.replicate_key()
            .key_id(&other)
            .replica_region(THIRD_REGION)
            .send()
            .await
    );
    assert_eq!(r.1, "AccessDeniedException");
    assert_eq!(
        r.2.as_deref(),
        Some(
            format!("User: {user} is not authorized to perform: kms:CreateKey on resource: * with an explicit deny in an identity-based policy").as_str()
        )
    );
    assert!(configuration(&describe(&u, &other).await).2.is_empty());
    replicate(&u, &other, OTHER_REGION).await;
}

#[tokio::test]
async fn imported_material_is_imported_into_each_replica() {
    let (_dir, server) = start_new();
    let (a, b) = (server.client(), server.client_in(OTHER_REGION));
    let id = created(
        a.create_key()
            .multi_region(true)
            .origin(aws_sdk_kms::types::OriginType::External),
    )
    .await;
    let material = [0x42u8; 32];
    import(&a, &id, &material).await;
    // Replicated with no material: PendingImport after Creating.
    let m = replicate(&a, &id, OTHER_REGION).await;
    assert_eq!(m.key_state(), Some(&KeyState::Creating));
    assert_eq!(
        describe(&b, &id).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    // Only the primary's material imports.
    let r = import_result(&b, &id, &[0x43u8; 32]).await;
    assert_eq!(
        r.expect_err("other material")
            .into_service_error()
            .meta()
            .code(),
        Some("IncorrectKeyMaterialException")
    );
    import(&b, &id, &material).await;
    assert_eq!(
        describe(&b, &id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    let blob = encrypt_blob(&a, &id, b"imported").await;
    assert_eq!(decrypt(&b, &blob).await.0, b"imported");
}

async fn import_result(
    kms: &aws_sdk_kms::Client,
    id: &str,
    material: &[u8],
) -> Result<
    aws_sdk_kms::operation::import_key_material::ImportKeyMaterialOutput,
    aws_sdk_kms::error::SdkError<
        aws_sdk_kms::operation::import_key_material::ImportKeyMaterialError,
        aws_sdk_kms::config::http::HttpResponse,
    >,
> {
    use rsa::pkcs8::DecodePublicKey;
    let p = kms
        .get_parameters_for_import()
        .key_id(id)
        .wrapping_algorithm(aws_sdk_kms::types::AlgorithmSpec::RsaesOaepSha1)
        .wrapping_key_spec(aws_sdk_kms::types::WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    let public = rsa::RsaPublicKey::from_public_key_der(p.public_key().unwrap().as_ref()).unwrap();
    let wrapped = public
        .encrypt(
            &mut rand::thread_rng(),
            rsa::Oaep::new::<sha1::Sha1>(),
            material,
        )
        .unwrap();
    kms.import_key_material()
        .key_id(id)
        .import_token(p.import_token().unwrap().clone())
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(aws_sdk_kms::types::ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
}

async fn import(kms: &aws_sdk_kms::Client, id: &str, material: &[u8]) {
    import_result(kms, id, material)
        .await
        .expect("ImportKeyMaterial");
}

/// A replica interrupted between the store and the token (its intent written, no copy made),
/// and a half-copied one: reconciliation at start-up completes both from the primary's
/// material inside the token.
#[tokio::test]
async fn an_interrupted_replica_is_completed_at_start_up() {
    use kms_bridge::kms::ids::mrk_row_id;
    use kms_bridge::kms::{key_object_label, token_object_id};
    use kms_bridge::store::{KeyRecord, MetadataStore, VersionRecord};

    let dir = TestDir::new();
    let server = start(&dir);
    let a = server.client();
    let id = new_mrk(&a).await;
    a.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    let blob = encrypt_blob(&a, &id, b"survives the crash").await;
    server.kill();

    let mrk = uuid::Uuid::parse_str(id.strip_prefix("mrk-").unwrap()).unwrap();
    {
        let store = dir.sealed_store().await;
        let primary: KeyRecord = store
            .get_key(mrk_row_id(&mrk, REGION))
            .await
            .unwrap()
            .unwrap();
        let versions = store.versions(primary.key_id).await.unwrap();
        assert_eq!(versions.len(), 2);
        // And an UpdatePrimaryRegion cut short between its two steps: the primary `Updating`.
        store
            .update_key(&KeyRecord {
                state: kms_bridge::model::KeyState::Updating,
                ..primary.clone()
            })
            .await
            .unwrap();
        let primary = store.get_key(primary.key_id).await.unwrap().unwrap();
        let token = dir.open_token().await;
        for (region, copied) in [(OTHER_REGION, 0), (THIRD_REGION, 1)] {
            let replica = KeyRecord {
                key_id: mrk_row_id(&mrk, region),
                region: region.into(),
                state: kms_bridge::model::KeyState::Creating,
                revision: 0,
                ..primary.clone()
            };
            let rv: Vec<VersionRecord> = versions
                .iter()
                .map(|v| VersionRecord {
                    key_id: replica.key_id,
                    token_object_id: token_object_id(&replica.key_id, v.version as u32),
                    pending: true,
                    ..v.clone()
                })
                .collect();
            store.insert_replica(&replica, &rv, &[], &[]).await.unwrap();
            // The third region's first version had been copied before the crash.
            for v in &versions[..copied] {
                token
                    .copy_key(
                        v.token_object_id.clone(),
                        token_object_id(&replica.key_id, v.version as u32),
                        key_object_label(&replica, v.version as u32),
                    )
                    .await
                    .unwrap();
            }
        }
    }

    let server = start(&dir);
    let log = server.log();
    assert!(
        log.matches("completed a multi-Region replica interrupted by a crash")
            .count()
            == 2,
        "{log}"
    );
    assert!(
        log.contains("finished primary Region updates interrupted by a crash"),
        "{log}"
    );
    assert_eq!(
        describe(&server.client(), &id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    for region in [OTHER_REGION, THIRD_REGION] {
        let kms = server.client_in(region);
        let m = describe(&kms, &id).await;
        assert_eq!(m.key_state(), Some(&KeyState::Enabled));
        assert_eq!(decrypt(&kms, &blob).await.0, b"survives the crash");
    }
    assert!(!log.contains("orphan token object"), "{log}");
}

/// A rotation of a set interrupted by a crash: where the new version's material was made, it
/// is copied to the members that lack it and made current everywhere; where it was not, the
/// rotation is undone everywhere.
#[tokio::test]
async fn an_interrupted_rotation_is_finished_or_undone_for_the_whole_set() {
    use kms_bridge::kms::ids::mrk_row_id;
    use kms_bridge::kms::{key_object_label, material_id, token_object_id};
    use kms_bridge::model::RotationType;
    use kms_bridge::store::{MetadataStore, VersionRecord};

    let dir = TestDir::new();
    let server = start(&dir);
    let a = server.client();
    let (made, lost) = (new_mrk(&a).await, new_mrk(&a).await);
    for id in [&made, &lost] {
        replicate(&a, id, OTHER_REGION).await;
    }
    let before = describe(&a, &made).await.current_key_material_id;
    let blob = encrypt_blob(&a, &made, b"version 1").await;
    server.kill();
    {
        let store = dir.sealed_store().await;
        let token = dir.open_token().await;
        for (id, generated) in [(&made, true), (&lost, false)] {
            let mrk = uuid::Uuid::parse_str(id.strip_prefix("mrk-").unwrap()).unwrap();
            for region in [REGION, OTHER_REGION] {
                let key_id = mrk_row_id(&mrk, region);
                store
                    .insert_version(&VersionRecord {
                        key_id,
                        version: 2,
                        token_object_id: token_object_id(&key_id, 2),
                        material_id: material_id(&mrk, 2),
                        created_at: 1,
                        rotation_type: Some(RotationType::OnDemand),
                        pending: true,
                    })
                    .await
                    .unwrap();
            }
            if generated {
                let primary = store
                    .get_key(mrk_row_id(&mrk, REGION))
                    .await
                    .unwrap()
                    .unwrap();
                token
                    .generate_aes_key(
                        token_object_id(&primary.key_id, 2),
                        key_object_label(&primary, 2),
                    )
                    .await
                    .unwrap();
            }
        }
    }
    let server = start(&dir);
    let (a, b) = (server.client(), server.client_in(OTHER_REGION));
    let (ma, mb) = (describe(&a, &made).await, describe(&b, &made).await);
    assert_eq!(ma.current_key_material_id, mb.current_key_material_id);
    assert_ne!(ma.current_key_material_id, before, "version 2 is current");
    let v2 = encrypt_blob(&b, &made, b"version 2").await;
    assert_eq!(decrypt(&a, &v2).await.0, b"version 2");
    assert_eq!(decrypt(&b, &blob).await.0, b"version 1");
    // The rotation that never reached the token is gone from both.
    for kms in [&a, &b] {
        let r = kms.list_key_rotations().key_id(&lost).send().await.unwrap();
        assert!(r.rotations().is_empty());
        let blob = encrypt_blob(kms, &lost, b"still version 1").await;
        assert_eq!(decrypt(kms, &blob).await.0, b"still version 1");
    }
    let log = server.log();
    assert!(
        log.contains("completed a multi-Region rotation interrupted by a crash"),
        "{log}"
    );
    assert!(
        log.contains("removed a multi-Region rotation that never reached the token"),
        "{log}"
    );
    assert!(!log.contains("orphan token object"), "{log}");
}
