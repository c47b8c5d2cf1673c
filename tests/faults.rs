//! Token faults heal without a restart: a PKCS#11 interposer (tests/fault/pkcs11_fault.c,
//! built here with the system C compiler) makes SoftHSM calls fail on demand.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;

fn build_shim(dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fault/pkcs11_fault.c");
    let out = dir.join("libpkcs11fault.so");
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("run cc");
    assert!(status.success(), "building the fault shim failed");
    out
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str) -> Result<Blob, String> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"fault".to_vec()))
        .send()
        .await
        .map(|o| o.ciphertext_blob.unwrap())
        .map_err(|e| code(&e))
}

/// Poll until `f` succeeds (the token reconnects with backoff), at most 15 s.
async fn eventually<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not heal");
}

#[tokio::test]
async fn token_faults_heal_without_restart() {
    let dir = TestDir::new();
    let shim = build_shim(&dir.path);
    let control = dir.path.join("fault");
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_TOKEN__MODULE", shim.to_str().unwrap()),
            ("FAULT_REAL_MODULE", token_module().to_str().unwrap()),
            ("FAULT_CONTROL", control.to_str().unwrap()),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let kms = server.client();
    let meta = kms
        .create_key()
        .description("survives faults")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key = meta.key_id.clone();
    let blob = encrypt(&kms, &key).await.unwrap();
    let metrics = server.metrics_addr.clone().unwrap();

    for fault in ["device", "session", "absent", "general-all"] {
        let keys_before = listed_key_ids(&kms).await.len();
        std::fs::write(&control, fault).unwrap();
        let err = encrypt(&kms, &key).await.unwrap_err();
        // Key creation fails cleanly during the fault, and leaves nothing behind.
        assert!(kms.create_key().send().await.is_err(), "{fault}: CreateKey");
        assert!(
            [
                "KeyUnavailableException",
                "KMSInternalException",
                "DependencyTimeoutException"
            ]
            .contains(&err.as_str()),
            "{fault}: {err}"
        );
        if fault == "absent" {
            // Still away: requests keep failing cleanly, readiness says so.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                encrypt(&kms, &key).await.unwrap_err(),
                "KeyUnavailableException"
            );
            assert_eq!(http_get(&metrics, "/readyz").status, 503);
            // Metadata operations do not need the token.
            kms.describe_key().key_id(&key).send().await.unwrap();
        }
        std::fs::remove_file(&control).unwrap();
        eventually(|| async { encrypt(&kms, &key).await.is_ok() }).await;
        let d = kms
            .decrypt()
            .ciphertext_blob(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(d.plaintext().unwrap().as_ref(), b"fault", "{fault}");
        assert_eq!(http_get(&metrics, "/readyz").status, 200);
        // Healed without a restart: keys can be made again.
        assert_eq!(listed_key_ids(&kms).await.len(), keys_before, "{fault}");
        let made = new_symmetric_key(&kms).await;
        encrypt(&kms, &made).await.unwrap();
    }
    // A handle gone stale (CKR_KEY_HANDLE_INVALID once): the call is made again afresh, and
    // the request succeeds.
    std::fs::write(&control, "stale-once").unwrap();
    encrypt(&kms, &key)
        .await
        .expect("retried after a stale handle");
    assert!(!control.exists(), "the stale handle was met");
    // CKR_GENERAL_ERROR from C_Decrypt (SoftHSM's answer to a bad tag, and a failing token's):
    // a valid ciphertext is not called invalid while the token fails; it decrypts after.
    std::fs::write(&control, "general").unwrap();
    let err = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "KeyUnavailableException", "{err:?}");
    std::fs::remove_file(&control).unwrap();
    eventually(|| async {
        kms.decrypt()
            .ciphertext_blob(blob.clone())
            .send()
            .await
            .is_ok()
    })
    .await;
    // Without a fault, a tampered ciphertext is still InvalidCiphertextException.
    let mut bad = blob.clone().into_inner();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_code!(
        kms.decrypt().ciphertext_blob(Blob::new(bad)).send().await,
        "InvalidCiphertextException"
    );

    // No metadata was lost or changed by the faults.
    let after = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(after.description(), Some("survives faults"));
    assert_eq!(after.key_state(), meta.key_state());
    assert_eq!(
        after.current_key_material_id(),
        meta.current_key_material_id()
    );
    assert!(
        server.log().contains("token reconnected"),
        "{}",
        server.log()
    );
    // A key created after the faults works too.
    let k2 = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    encrypt(&kms, &k2).await.unwrap();
}
