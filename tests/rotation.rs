//! Key rotation through the AWS SDK: automatic-rotation settings and on-demand rotation that
//! keeps old material for decryption.

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{IncludeKeyMaterial, RotationType};
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

async fn encrypt(kms: &Client, id: &str, pt: &[u8]) -> Vec<u8> {
    kms.encrypt()
        .key_id(id)
        .plaintext(Blob::new(pt.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn automatic_rotation_settings() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let id = key(&kms).await;
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!s.key_rotation_enabled());
    assert!(s.next_rotation_date().is_none());

    kms.enable_key_rotation().key_id(&id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled());
    assert_eq!(s.rotation_period_in_days(), Some(365));
    assert!(s.key_id().unwrap().ends_with(&id));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let next = s.next_rotation_date().unwrap().as_secs_f64();
    assert!((next - (now + 365.0 * 86400.0)).abs() < 120.0);

    kms.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(s.rotation_period_in_days(), Some(90));
    for bad in [89, 2561, 0] {
        assert_code!(
            kms.enable_key_rotation()
                .key_id(&id)
                .rotation_period_in_days(bad)
                .send()
                .await,
            "ValidationException"
        );
    }
    kms.disable_key_rotation().key_id(&id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(!s.key_rotation_enabled());

    kms.disable_key().key_id(&id).send().await.unwrap();
    assert_code!(
        kms.enable_key_rotation().key_id(&id).send().await,
        "DisabledException"
    );
    assert_code!(
        kms.rotate_key_on_demand().key_id(&id).send().await,
        "DisabledException"
    );
    kms.enable_key().key_id(&id).send().await.unwrap();
    kms.enable_key_rotation().key_id(&id).send().await.unwrap();
    kms.schedule_key_deletion()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(
        !s.key_rotation_enabled(),
        "pending deletion reports rotation off"
    );
    assert_code!(
        kms.enable_key_rotation().key_id(&id).send().await,
        "KMSInvalidStateException"
    );
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    kms.enable_key().key_id(&id).send().await.unwrap();
    let s = kms
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(s.key_rotation_enabled(), "restored after cancel");
}

#[tokio::test]
async fn on_demand_rotation_keeps_old_material() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let id = key(&kms).await;
    let before = encrypt(&kms, &id, b"old material").await;
    let m0 = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .current_key_material_id
        .unwrap();

    let r = kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    assert!(r.key_id().unwrap().ends_with(&id));
    let m1 = kms
        .describe_key()
        .key_id(&id)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .current_key_material_id
        .unwrap();
    assert_ne!(m0, m1);

    let after = encrypt(&kms, &id, b"new material").await;
    let d_old = kms
        .decrypt()
        .ciphertext_blob(Blob::new(before.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(d_old.plaintext().unwrap().as_ref(), b"old material");
    assert_eq!(d_old.key_material_id(), Some(m0.as_str()));
    let d_new = kms
        .decrypt()
        .ciphertext_blob(Blob::new(after))
        .send()
        .await
        .unwrap();
    assert_eq!(d_new.plaintext().unwrap().as_ref(), b"new material");
    assert_eq!(d_new.key_material_id(), Some(m1.as_str()));

    // ReEncrypt moves old ciphertext onto the current material.
    let re = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(before))
        .destination_key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(re.source_key_material_id(), Some(m0.as_str()));
    assert_eq!(re.destination_key_material_id(), Some(m1.as_str()));

    let rot = kms.list_key_rotations().key_id(&id).send().await.unwrap();
    assert_eq!(rot.rotations().len(), 1);
    let e = &rot.rotations()[0];
    assert_eq!(e.rotation_type(), Some(&RotationType::OnDemand));
    assert_eq!(e.key_material_id(), Some(m1.as_str()));
    assert!(e.rotation_date().is_some());

    let all = kms
        .list_key_rotations()
        .key_id(&id)
        .include_key_material(IncludeKeyMaterial::AllKeyMaterial)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = all
        .rotations()
        .iter()
        .filter_map(|r| r.key_material_id())
        .collect();
    assert_eq!(ids, [m0.as_str(), m1.as_str()]);
    let states: Vec<&str> = all
        .rotations()
        .iter()
        .filter_map(|r| r.key_material_state().map(|s| s.as_str()))
        .collect();
    assert_eq!(states, ["NON_CURRENT", "CURRENT"]);
}

#[tokio::test]
async fn list_rotations_pages() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let id = key(&kms).await;
    let mut blobs = Vec::new();
    for i in 0..3u8 {
        blobs.push((i, encrypt(&kms, &id, &[i]).await));
        kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    }
    let mut seen = 0;
    let mut marker = None;
    loop {
        let p = kms
            .list_key_rotations()
            .key_id(&id)
            .limit(1)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        seen += p.rotations().len();
        if !p.truncated() {
            break;
        }
        marker = p.next_marker().map(str::to_owned);
    }
    assert_eq!(seen, 3);
    for (i, blob) in blobs {
        let d = kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob))
            .send()
            .await
            .unwrap();
        assert_eq!(d.plaintext().unwrap().as_ref(), &[i]);
    }
    assert_code!(
        kms.list_key_rotations()
            .key_id(&id)
            .marker("x")
            .send()
            .await,
        "InvalidMarkerException"
    );
}
