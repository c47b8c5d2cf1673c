//! Key lifecycle running by itself: scheduled deletion and automatic rotation, driven by the
//! debug-only clock (`debug_clock`), which moves lifecycle time without sleeping.

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::RotationType;
use serde_json::Value;

const DAY: i64 = 86_400;

#[tokio::test]
async fn scheduled_deletion_happens_on_time_and_never_early() {
    let dir = TestDir::new();
    let server = lifecycle_server(&dir);
    let kms = server.client();
    let doomed = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let saved = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let keeper = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    kms.create_alias()
        .alias_name("alias/doomed")
        .target_key_id(&doomed)
        .send()
        .await
        .unwrap();
    let blob = kms
        .encrypt()
        .key_id(&keeper)
        .plaintext(Blob::new(b"survives".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    kms.schedule_key_deletion()
        .key_id(&doomed)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    kms.schedule_key_deletion()
        .key_id(&saved)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();

    // One second before the deletion date: nothing happens, and cancelling still works.
    let r = advance(&server, 7 * DAY - 60);
    assert_eq!(r["report"]["deleted"], 0, "{r}");
    kms.describe_key().key_id(&doomed).send().await.unwrap();
    kms.cancel_key_deletion()
        .key_id(&saved)
        .send()
        .await
        .unwrap();

    let r = advance(&server, 120);
    assert_eq!(r["report"]["deleted"], 1, "{r}");
    assert_eq!(r["report"]["destroyed_objects"], 1, "{r}");
    assert_code!(
        kms.describe_key().key_id(&doomed).send().await,
        "NotFoundException"
    );
    assert_code!(
        kms.describe_key().key_id("alias/doomed").send().await,
        "NotFoundException"
    );
    assert_code!(
        kms.cancel_key_deletion().key_id(&doomed).send().await,
        "NotFoundException"
    );
    let listed = listed_key_ids(&kms).await;
    assert!(!listed.contains(&doomed));
    assert!(listed.contains(&saved) && listed.contains(&keeper));
    // The deleted key's alias is gone (only the predefined aliases of AWS managed keys remain).
    assert!(kms
        .list_aliases()
        .send()
        .await
        .unwrap()
        .aliases()
        .iter()
        .all(|a| a.target_key_id().is_none()));
    // The cancelled key is Disabled, not deleted; the untouched key still decrypts.
    let m = kms
        .describe_key()
        .key_id(&saved)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(m.key_state().map(|s| s.as_str()), Some("Disabled"));
    let d = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"survives");
    // Running again finds nothing more to do.
    let r = advance(&server, 0);
    assert_eq!(
        r["report"],
        serde_json::json!({"rotated":0,"deleted":0,"expired":0,"primary_deletions_started":0,"destroyed_objects":0,"errors":0})
    );

    // The deletion is in the audit trail as a service event.
    let audit = std::fs::read_to_string(dir.data_dir().join("audit/audit-000001.jsonl")).unwrap();
    let event = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["eventName"] == "DeleteKey")
        .expect("DeleteKey event");
    assert_eq!(event["userIdentity"]["type"], "AWSService");
    assert!(event["resources"][0]["ARN"]
        .as_str()
        .unwrap()
        .ends_with(&doomed));

    // The material is gone from the token.
    server.stop();
    let token = dir.open_token().await;
    let id = uuid::Uuid::parse_str(&doomed).unwrap();
    assert!(!token
        .exists(kms_bridge::kms::token_object_id(&id, 1))
        .await
        .unwrap());
    let kept = uuid::Uuid::parse_str(&keeper).unwrap();
    assert!(token
        .exists(kms_bridge::kms::token_object_id(&kept, 1))
        .await
        .unwrap());
}

#[tokio::test]
async fn automatic_rotation_runs_when_due() {
    let dir = TestDir::new();
    let server = lifecycle_server(&dir);
    let kms = server.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let disabled = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let before = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"v1".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    kms.enable_key_rotation()
        .key_id(&key)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    kms.enable_key_rotation()
        .key_id(&disabled)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    kms.disable_key().key_id(&disabled).send().await.unwrap();
    let first_next = kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .next_rotation_date()
        .unwrap()
        .as_secs_f64();

    let r = advance(&server, 89 * DAY);
    assert_eq!(r["report"]["rotated"], 0, "{r}");
    let r = advance(&server, 2 * DAY);
    assert_eq!(r["report"]["rotated"], 1, "{r}");
    let rot = kms.list_key_rotations().key_id(&key).send().await.unwrap();
    assert_eq!(rot.rotations().len(), 1);
    assert_eq!(
        rot.rotations()[0].rotation_type(),
        Some(&RotationType::Automatic)
    );
    let next = kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .next_rotation_date()
        .unwrap()
        .as_secs_f64();
    assert!(
        next - first_next > 80.0 * DAY as f64,
        "next rotation moved on: {first_next} → {next}"
    );
    let d = kms.decrypt().ciphertext_blob(before).send().await.unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"v1");
    // A disabled key is not rotated; re-enabled past its period, it rotates at the next run.
    assert!(kms
        .list_key_rotations()
        .key_id(&disabled)
        .send()
        .await
        .unwrap()
        .rotations()
        .is_empty());
    kms.enable_key().key_id(&disabled).send().await.unwrap();
    let r = advance(&server, 0);
    assert_eq!(r["report"]["rotated"], 1, "{r}");
    assert_eq!(
        kms.list_key_rotations()
            .key_id(&disabled)
            .send()
            .await
            .unwrap()
            .rotations()
            .len(),
        1
    );
}

#[test]
fn debug_clock_is_off_by_default() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0")]);
    let addr = server.metrics_addr.clone().unwrap();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    write!(s, "POST /debug/clock/advance?seconds=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    assert!(
        buf.starts_with("HTTP/1.1 404") || buf.starts_with("HTTP/1.1 405"),
        "{buf}"
    );
}
