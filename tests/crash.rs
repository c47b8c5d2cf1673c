//! The crash matrix. The server is killed (`abort()`, from a failpoint compiled into test
//! builds only: `kms_bridge::failpoint`) at every step of each change that spans the metadata
//! store and the token or several store writes — CreateKey, rotation on demand and scheduled,
//! GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial, scheduled deletion,
//! CreateGrant, DeleteCustomKeyStore — and started again. Then:
//! - through the API, the change is either done or not done, never half (each case says which,
//!   and that what remains works: the key encrypts, the import can be repeated, …);
//! - after start-up reconciliation and one scheduler run, every token object id the store
//!   names is in the token and every key object of ours in the token is named by the store and
//!   belongs to a key that is not deleted; no key is left `Creating`, no version pending;
//! - the audit chain verifies (`kms-bridge audit verify`).
//!
//! `every_failpoint_has_a_crash_case` keeps the matrix complete: a new failpoint fails it until
//! a case here reaches it.

mod common;
use common::*;

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{AlgorithmSpec, ExpirationModelType, GrantOperation, WrappingKeySpec};

const DAY: i64 = 86_400;
const SIGABRT: i32 = 6;

/// The failpoints each case below drives the server into (`name@n`: the n-th time).
const CREATE_KEY: &[&str] = &["create_key.after_intent", "create_key.after_material"];
const ROTATE: &[&str] = &["rotate.after_intent", "rotate.after_material"];
const IMPORT_PARAMETERS: &[&str] = &[
    "import_parameters.after_wrapping_key",
    "import_parameters.after_store@2",
];
const IMPORT: &[&str] = &[
    "import.after_intent",
    "import.after_unwrap",
    "import.after_check_value",
];
const DELETE_MATERIAL: &[&str] = &[
    "delete_material.after_state",
    "delete_material.after_destroy",
];
const DELETION: &[&str] = &[
    "deletion.after_tombstone",
    "deletion.after_destroy",
    "deletion.after_destroy@2",
];
const CREATE_GRANT: &[&str] = &["create_grant.before_insert", "create_grant.after_insert"];
const DELETE_KEY_STORE: &[&str] = &[
    "delete_key_store.before_delete",
    "delete_key_store.after_delete",
];

#[test]
fn every_failpoint_has_a_crash_case() {
    let covered: HashSet<&str> = [
        CREATE_KEY,
        ROTATE,
        IMPORT_PARAMETERS,
        IMPORT,
        DELETE_MATERIAL,
        DELETION,
        CREATE_GRANT,
        DELETE_KEY_STORE,
    ]
    .concat()
    .into_iter()
    .map(|f| f.split('@').next().unwrap_or(f))
    .collect();
    let all: HashSet<&str> = kms_bridge::failpoint::ALL.iter().copied().collect();
    assert_eq!(
        covered, all,
        "failpoints without a crash case (or cases without a failpoint)"
    );
}

/// A server with the lifecycle clock and the scheduler left to the test, `failpoint` armed.
fn armed(dir: &TestDir, failpoint: &str) -> Server {
    Server::start(
        dir,
        &[
            ("KMS_BRIDGE_FAILPOINT", failpoint),
            ("KMS_BRIDGE_DEBUG_CLOCK", "true"),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
            ("KMS_BRIDGE_SCHEDULER_INTERVAL_SECONDS", "3600"),
        ],
    )
}

/// The server died at `failpoint`: aborted (SIGABRT), the failpoint's last words in its log.
fn assert_crashed(mut server: Server, failpoint: &str) {
    let status = server
        .exited(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the server is still running: {failpoint} was never reached"));
    assert_eq!(status.signal(), Some(SIGABRT), "{failpoint}: {status:?}");
    let name = failpoint.split('@').next().unwrap_or(failpoint);
    assert!(
        server
            .log()
            .contains(&format!("failpoint {name}: aborting")),
        "{}",
        server.log()
    );
}

/// The server died at `failpoint`; it starts again (lifecycle clock, scheduler to the test).
fn restart_after(dir: &TestDir, server: Server, failpoint: &str) -> Server {
    assert_crashed(server, failpoint);
    lifecycle_server(dir)
}

/// Advance the lifecycle clock on a server that is expected to die running the scheduler.
fn advance_into_crash(server: &Server, seconds: i64) {
    use std::io::{Read, Write};
    let addr = server.metrics_addr.as_ref().expect("metrics listener");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let _ = write!(
        s,
        "POST /debug/clock/advance?seconds={seconds} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
}

/// After a crash: the invariants that hold whatever the step was. Runs the scheduler once
/// (it finishes what reconciliation leaves to it), stops the server and reads the store and
/// the token directly.
async fn check_invariants(dir: &TestDir, server: Server) {
    let report = advance(&server, 0);
    assert_eq!(report["report"]["errors"], 0, "scheduler errors: {report}");
    let log = server.log();
    server.stop();
    assert!(
        !log.contains("key material missing from the token"),
        "metadata without its token object at start-up:\n{log}"
    );
    {
        let store = dir.sealed_store().await;
        use kms_bridge::store::MetadataStore;
        let unfinished = store.unfinished_keys().await.expect("unfinished keys");
        assert!(unfinished.is_empty(), "keys left Creating: {unfinished:?}");
        let pending = store.pending_versions().await.expect("pending versions");
        assert!(pending.is_empty(), "versions left pending: {pending:?}");
        let named: HashSet<Vec<u8>> = store
            .all_token_object_ids()
            .await
            .expect("object ids")
            .into_iter()
            .collect();
        let token = dir.open_token().await;
        let objects: Vec<_> = token
            .load_objects()
            .await
            .expect("token objects")
            .into_iter()
            .filter(|o| o.kind.is_material() && o.label.starts_with(kms_bridge::kms::LABEL_PREFIX))
            .collect();
        let present: HashSet<Vec<u8>> = objects.iter().map(|o| o.id.clone()).collect();
        for id in &named {
            assert!(
                present.contains(id),
                "the store names {} but the token has no such object",
                hex::encode(id)
            );
        }
        for o in &objects {
            assert!(
                named.contains(&o.id),
                "token object {} ({}) without metadata",
                o.label,
                hex::encode(&o.id)
            );
            let key_id = uuid::Uuid::from_slice(&o.id[..16]).expect("key id");
            let key = store.get_key(key_id).await.expect("key row");
            assert!(
                key.as_ref()
                    .is_some_and(|k| k.state != kms_bridge::model::KeyState::Deleted),
                "token object {} of a deleted or unknown key: {key:?}",
                o.label
            );
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kms-bridge"))
        .args(["audit", "verify"])
        .arg(dir.data_dir().join("audit"))
        .output()
        .expect("run audit verify");
    assert!(
        out.status.success(),
        "the audit chain does not verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Encrypt and decrypt with `key`: it is whole and usable. The blob's key version.
async fn round_trip(kms: &aws_sdk_kms::Client, key: &str) -> u32 {
    let blob = encrypt_blob(kms, key, b"after the crash").await;
    let pt = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .send()
        .await
        .expect("Decrypt");
    assert_eq!(pt.plaintext().unwrap().as_ref(), b"after the crash");
    u32::from_be_bytes(blob[20..24].try_into().unwrap())
}

#[tokio::test]
async fn create_key() {
    for &fp in CREATE_KEY {
        let dir = TestDir::new();
        let server = armed(&dir, fp);
        let _ = server.client().create_key().send().await;

        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        let keys = listed_key_ids(&kms).await;
        match fp {
            // The object was never made: the key is gone, as if never asked for.
            "create_key.after_intent" => assert!(keys.is_empty(), "{fp}: {keys:?}"),
            // The object exists: creation is completed, the key works.
            _ => {
                assert_eq!(keys.len(), 1, "{fp}: {keys:?}");
                assert!(describe(&kms, &keys[0]).await.enabled());
                round_trip(&kms, &keys[0]).await;
            }
        }
        check_invariants(&dir, server).await;
    }
}

#[tokio::test]
async fn rotation_on_demand() {
    for &fp in ROTATE {
        let dir = TestDir::new();
        let server = armed(&dir, fp);
        let kms = server.client();
        let key = new_symmetric_key(&kms).await;
        let old = encrypt_blob(&kms, &key, b"before").await;
        let _ = kms.rotate_key_on_demand().key_id(&key).send().await;

        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        let rotations = kms.list_key_rotations().key_id(&key).send().await.unwrap();
        let (expected, version) = if fp == "rotate.after_intent" {
            (0, 1)
        } else {
            (1, 2)
        };
        assert_eq!(rotations.rotations().len(), expected, "{fp}");
        assert_eq!(
            round_trip(&kms, &key).await,
            version,
            "{fp}: the current version"
        );
        let pt = kms
            .decrypt()
            .ciphertext_blob(Blob::new(old))
            .send()
            .await
            .unwrap();
        assert_eq!(pt.plaintext().unwrap().as_ref(), b"before");
        check_invariants(&dir, server).await;
    }
}

#[tokio::test]
async fn scheduled_rotation() {
    for &fp in ROTATE {
        let dir = TestDir::new();
        let server = armed(&dir, fp);
        let kms = server.client();
        let key = new_symmetric_key(&kms).await;
        kms.enable_key_rotation()
            .key_id(&key)
            .rotation_period_in_days(90)
            .send()
            .await
            .unwrap();
        advance_into_crash(&server, 91 * DAY);

        // Whether the rotation was undone (and is still due) or completed (and the next one
        // is a period later), 91 more days make exactly one automatic rotation.
        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        let report = advance(&server, 91 * DAY);
        assert_eq!(report["report"]["errors"], 0, "{report}");
        let rotations = kms.list_key_rotations().key_id(&key).send().await.unwrap();
        assert_eq!(rotations.rotations().len(), 1, "{fp}: {rotations:?}");
        assert_eq!(round_trip(&kms, &key).await, 2, "{fp}");
        check_invariants(&dir, server).await;
    }
}

/// Import parameters: the wrapping key's public key and the import token.
struct Params {
    public_key: Vec<u8>,
    token: Vec<u8>,
}

async fn parameters(kms: &aws_sdk_kms::Client, key: &str) -> Params {
    let p = kms
        .get_parameters_for_import()
        .key_id(key)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .expect("GetParametersForImport");
    Params {
        public_key: p.public_key.unwrap().into_inner(),
        token: p.import_token.unwrap().into_inner(),
    }
}

async fn import(
    kms: &aws_sdk_kms::Client,
    key: &str,
    p: &Params,
    material: &[u8; 32],
) -> Result<(), String> {
    use rsa::pkcs8::DecodePublicKey;
    let pk = rsa::RsaPublicKey::from_public_key_der(&p.public_key).expect("SPKI");
    let wrapped = pk
        .encrypt(
            &mut rand::rngs::OsRng,
            rsa::Oaep::new::<sha1::Sha1>(),
            material,
        )
        .expect("wrap");
    kms.import_key_material()
        .key_id(key)
        .import_token(Blob::new(p.token.clone()))
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

/// New parameters, `material` imported with them, and the key encrypts with it.
async fn imports_again(kms: &aws_sdk_kms::Client, key: &str, material: &[u8; 32]) {
    let p = parameters(kms, key).await;
    import(kms, key, &p, material)
        .await
        .expect("import after the crash");
    encrypts_with(kms, key, material).await;
}

/// The imported key encrypts with exactly `material` (its blob opens with it here).
async fn encrypts_with(kms: &aws_sdk_kms::Client, key: &str, material: &[u8; 32]) {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let blob = encrypt_blob(kms, key, b"imported").await;
    let mut aad = blob[..24].to_vec();
    aad.extend_from_slice(&0u32.to_be_bytes());
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(material).unwrap();
    let pt = cipher
        .decrypt(
            aes_gcm::Nonce::from_slice(&blob[24..36]),
            Payload {
                msg: &blob[36..],
                aad: &aad,
            },
        )
        .expect("the blob opens with the imported material");
    assert_eq!(pt, b"imported");
}

fn key_state(m: &aws_sdk_kms::types::KeyMetadata) -> &str {
    m.key_state().map(|s| s.as_str()).unwrap_or("")
}

#[tokio::test]
async fn import_parameters() {
    for &fp in IMPORT_PARAMETERS {
        let dir = TestDir::new();
        let server = armed(&dir, fp);
        let kms = server.client();
        let key = new_external_key(&kms).await;
        let first = if fp.ends_with("@2") {
            Some(parameters(&kms, &key).await)
        } else {
            None
        };
        let _ = kms
            .get_parameters_for_import()
            .key_id(&key)
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await;

        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        let material: [u8; 32] = rand::random();
        if let Some(first) = first {
            // Stored before the crash, the newer parameters superseded the first ones.
            assert_eq!(
                import(&kms, &key, &first, &material).await,
                Err("InvalidImportTokenException".to_owned())
            );
        }
        imports_again(&kms, &key, &material).await;
        check_invariants(&dir, server).await;
    }
}

#[tokio::test]
async fn import_key_material() {
    for &fp in IMPORT {
        let dir = TestDir::new();
        let server = armed(&dir, fp);
        let kms = server.client();
        let key = new_external_key(&kms).await;
        let p = parameters(&kms, &key).await;
        let material: [u8; 32] = rand::random();
        let _ = import(&kms, &key, &p, &material).await;

        // The import never answered: it is undone, and the same parameters import again.
        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        assert_eq!(
            key_state(&describe(&kms, &key).await),
            "PendingImport",
            "{fp}"
        );
        assert_code!(
            kms.encrypt()
                .key_id(&key)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await,
            "KMSInvalidStateException"
        );
        import(&kms, &key, &p, &material)
            .await
            .expect("import after the crash");
        encrypts_with(&kms, &key, &material).await;
        check_invariants(&dir, server).await;
    }
}

#[tokio::test]
async fn delete_imported_key_material() {
    for &fp in DELETE_MATERIAL {
        let dir = TestDir::new();
        let server = armed(&dir, fp);
        let kms = server.client();
        let key = new_external_key(&kms).await;
        let material: [u8; 32] = rand::random();
        let p = parameters(&kms, &key).await;
        import(&kms, &key, &p, &material).await.expect("import");
        let _ = kms.delete_imported_key_material().key_id(&key).send().await;

        // The key showed PendingImport from the first step on; reconciliation finishes the
        // removal, and the same material can be imported again.
        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        assert_eq!(
            key_state(&describe(&kms, &key).await),
            "PendingImport",
            "{fp}"
        );
        imports_again(&kms, &key, &material).await;
        check_invariants(&dir, server).await;
    }
}

#[tokio::test]
async fn scheduled_deletion() {
    for &fp in DELETION {
        let dir = TestDir::new();
        let server = armed(&dir, fp);
        let kms = server.client();
        // Two keys of each kind of material: versions (one rotation) and an import with its
        // wrapping key still in the token.
        let rotated = new_symmetric_key(&kms).await;
        kms.rotate_key_on_demand()
            .key_id(&rotated)
            .send()
            .await
            .unwrap();
        kms.create_alias()
            .alias_name("alias/doomed")
            .target_key_id(&rotated)
            .send()
            .await
            .unwrap();
        let external = new_external_key(&kms).await;
        let p = parameters(&kms, &external).await;
        import(&kms, &external, &p, &rand::random())
            .await
            .expect("import");
        parameters(&kms, &external).await; // a current wrapping key to destroy too
        for key in [&rotated, &external] {
            kms.schedule_key_deletion()
                .key_id(key)
                .pending_window_in_days(7)
                .send()
                .await
                .unwrap();
        }
        advance_into_crash(&server, 8 * DAY);

        // Deletion is finished by the scheduler (the keys are due again 8 days on: the
        // lifecycle clock starts over with the process).
        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        let report = advance(&server, 8 * DAY);
        assert_eq!(report["report"]["errors"], 0, "{report}");
        for key in [&rotated, &external] {
            assert_code!(
                kms.describe_key().key_id(key).send().await,
                "NotFoundException"
            );
        }
        assert_code!(
            kms.describe_key().key_id("alias/doomed").send().await,
            "NotFoundException"
        );
        check_invariants(&dir, server).await;
    }
}

#[tokio::test]
async fn create_grant() {
    for &fp in CREATE_GRANT {
        let dir = TestDir::new();
        let server = armed(&dir, fp);
        let (bob_arn, bob) = dir.user("bob");
        let kms = server.client();
        let key = new_symmetric_key(&kms).await;
        let _ = kms
            .create_grant()
            .key_id(&key)
            .grantee_principal(&bob_arn)
            .operations(GrantOperation::Encrypt)
            .send()
            .await;

        // One row is the whole change: the grant exists and works, or it does not exist.
        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        let grants = kms.list_grants().key_id(&key).send().await.unwrap();
        let as_bob = server.client_for(&bob);
        let bob_encrypts = as_bob
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await;
        if fp == "create_grant.before_insert" {
            assert!(grants.grants().is_empty(), "{fp}");
            assert_code!(bob_encrypts, "AccessDeniedException");
        } else {
            assert_eq!(grants.grants().len(), 1, "{fp}");
            bob_encrypts.expect("the grant allows Encrypt");
        }
        check_invariants(&dir, server).await;
    }
}

#[tokio::test]
async fn delete_custom_key_store() {
    for &fp in DELETE_KEY_STORE {
        let dir = TestDir::new();
        dir.add_token("cluster-abcdefghijk", "store-pin-1234");
        let server = armed(&dir, fp);
        let kms = server.client();
        let id = kms
            .create_custom_key_store()
            .custom_key_store_name("crash")
            .cloud_hsm_cluster_id("cluster-abcdefghijk")
            .trust_anchor_certificate(
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            )
            .key_store_password("store-pin-1234")
            .send()
            .await
            .expect("CreateCustomKeyStore")
            .custom_key_store_id
            .unwrap();
        let _ = kms
            .delete_custom_key_store()
            .custom_key_store_id(&id)
            .send()
            .await;

        let server = restart_after(&dir, server, fp);
        let kms = server.client();
        let stores = kms.describe_custom_key_stores().send().await.unwrap();
        let listed = stores
            .custom_key_stores()
            .iter()
            .any(|s| s.custom_key_store_id() == Some(id.as_str()));
        assert_eq!(listed, fp == "delete_key_store.before_delete", "{fp}");
        if listed {
            kms.delete_custom_key_store()
                .custom_key_store_id(&id)
                .send()
                .await
                .expect("DeleteCustomKeyStore after the crash");
        }
        check_invariants(&dir, server).await;
    }
}
