//! Operability: the audit trail, `audit verify`, fail-closed auditing, metrics and health,
//! quotas, TLS and mTLS.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

use aws_sdk_kms::primitives::Blob;
use serde_json::Value;

fn audit_records(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

fn verify(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kms-bridge"))
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn audit_trail_records_every_request_without_secrets() {
    let dir = TestDir::new();
    let (_, nobody) = dir.user("nobody");
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let key = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let plaintext = b"TOP-SECRET-PLAINTEXT-4711";
    let ct = kms
        .encrypt()
        .key_id(&key.key_id)
        .plaintext(Blob::new(plaintext.to_vec()))
        .encryption_context("purpose", "audit-test")
        .send()
        .await
        .unwrap();
    let blob = ct.ciphertext_blob.unwrap();
    kms.decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "audit-test")
        .send()
        .await
        .unwrap();
    let dk = kms
        .generate_data_key()
        .key_id(&key.key_id)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.describe_key().key_id("alias/missing").send().await,
        "NotFoundException"
    );
    assert_code!(
        server
            .client_for(&nobody)
            .describe_key()
            .key_id(&key.key_id)
            .send()
            .await,
        "AccessDeniedException"
    );
    let unsigned = server.raw(&[("X-Amz-Target", "TrentService.ListKeys")], b"{}");
    assert_eq!(unsigned.status, 400);

    let all = audit_records(&dir.data_dir().join("audit"));
    // State-changing operations also leave an intent record, written before they run.
    let intents: Vec<&Value> = all.iter().filter(|r| r["auditPhase"] == "intent").collect();
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0]["eventName"], "CreateKey");
    let records: Vec<Value> = all
        .iter()
        .filter(|r| r.get("auditPhase").is_none())
        .cloned()
        .collect();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CreateKey",
            "Encrypt",
            "Decrypt",
            "GenerateDataKey",
            "DescribeKey",
            "DescribeKey",
            "ListKeys"
        ]
    );
    for r in &records {
        for field in [
            "eventVersion",
            "eventTime",
            "eventSource",
            "awsRegion",
            "sourceIPAddress",
            "userAgent",
            "requestID",
            "eventID",
            "readOnly",
            "resources",
            "userIdentity",
            "hash",
            "previousHash",
            "sequence",
        ] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
        assert_eq!(r["eventSource"], "kms.amazonaws.com");
    }
    let enc = &records[1];
    assert_eq!(
        enc["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/dev-admin"
    );
    assert_eq!(enc["userIdentity"]["accountId"], ACCOUNT);
    assert_eq!(enc["userIdentity"]["accessKeyId"], ACCESS_KEY_ID);
    assert_eq!(enc["userIdentity"]["type"], "IAMUser");
    assert_eq!(enc["awsRegion"], REGION);
    assert_eq!(enc["requestParameters"]["keyId"], key.key_id.as_str());
    assert_eq!(
        enc["requestParameters"]["encryptionContext"]["purpose"],
        "audit-test"
    );
    assert_eq!(enc["resources"][0]["ARN"], key.arn.as_deref().unwrap());
    assert_eq!(enc["readOnly"], false);
    assert!(enc.get("errorCode").is_none());
    assert!(
        enc["userAgent"].as_str().unwrap().contains("aws-sdk-rust"),
        "{}",
        enc["userAgent"]
    );
    assert_eq!(
        records[0]["responseElements"]["keyMetadata"]["KeyId"],
        key.key_id.as_str()
    );
    assert_eq!(records[4]["errorCode"], "NotFoundException");
    assert_eq!(records[4]["readOnly"], true);
    assert_eq!(records[5]["errorCode"], "AccessDeniedException");
    assert_eq!(
        records[5]["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/nobody"
    );
    assert_eq!(
        records[6]["errorCode"],
        "MissingAuthenticationTokenException"
    );
    assert_eq!(records[6]["userIdentity"]["type"], "Unknown");
    assert_eq!(
        records[6]["requestParameters"],
        Value::Null,
        "unauthenticated bodies are not logged"
    );

    // No plaintext, ciphertext or data key anywhere in the trail.
    let text: String = std::fs::read_dir(dir.data_dir().join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for secret in [
        String::from_utf8_lossy(plaintext).into_owned(),
        b64(plaintext),
        b64(blob.as_ref()),
        b64(dk.plaintext().unwrap().as_ref()),
        SECRET_ACCESS_KEY.to_owned(),
        PIN.to_owned() + "\"",
    ] {
        assert!(!text.contains(&secret), "audit trail contains {secret}");
    }
    let (ok, out) = verify(&dir.data_dir().join("audit"));
    assert!(ok, "{out}");
    assert!(out.contains("8 records"), "{out}");
}

#[tokio::test]
async fn audit_verify_finds_edits_deletions_and_reordering() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    for _ in 0..5 {
        kms.create_key().send().await.unwrap();
    }
    let audit = dir.data_dir().join("audit");
    let file = audit.join("audit-000001.jsonl");
    let original = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert_eq!(
        lines.len(),
        10,
        "an intent and an outcome record per CreateKey"
    );
    let (ok, _) = verify(&file);
    assert!(ok);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "edited",
            {
                let mut l = lines.clone();
                let edited = l[2].replacen("CreateKey", "DeleteKey", 1);
                l[2] = &*Box::leak(edited.into_boxed_str());
                l.join("\n")
            },
            "record 3 was altered",
        ),
        (
            "deleted",
            {
                let mut l = lines.clone();
                l.remove(2);
                l.join("\n")
            },
            "missing",
        ),
        (
            "reordered",
            {
                let mut l = lines.clone();
                l.swap(1, 3);
                l.join("\n")
            },
            "out of order",
        ),
        (
            "first removed",
            lines[1..].join("\n"),
            "records 1..1 are missing",
        ),
    ];
    for (what, text, expect) in cases {
        std::fs::write(&file, text + "\n").unwrap();
        let (ok, out) = verify(&file);
        assert!(!ok, "{what}: verify passed: {out}");
        assert!(out.contains(expect), "{what}: {out}");
    }
    std::fs::write(&file, &original).unwrap();
    assert!(verify(&file).0);
}

/// The head sequence number anchored in `audit-head.json`, once it has caught up with `n`.
fn wait_for_head(audit: &Path, n: u64) {
    for _ in 0..200 {
        let head: Option<Value> = std::fs::read(audit.join("audit-head.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if head.is_some_and(|h| h["sequence"].as_u64() == Some(n)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("the audit head never reached record {n}");
}

/// Records cut off the end of the trail (or whole files removed) form a valid chain, but no
/// longer reach the head anchored under a token MAC: `audit verify` and the next start-up
/// report it, the start-up writes the finding into the trail, and sequence numbers are not
/// reused. An edited head does not verify.
#[tokio::test]
async fn audit_truncation_is_detected_through_the_anchored_head() {
    let dir = TestDir::new();
    let audit = dir.data_dir().join("audit");
    let env = [("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0")];
    let server = Server::start(&dir, &env);
    for _ in 0..3 {
        server.client().create_key().send().await.unwrap();
    }
    wait_for_head(&audit, 6);
    server.stop();
    assert!(verify(&audit).0, "{}", verify(&audit).1);

    // The last two records removed: still a valid chain of 4.
    let file = audit.join("audit-000001.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: Vec<&str> = text.lines().take(4).collect();
    std::fs::write(&file, kept.join("\n") + "\n").unwrap();
    let (ok, out) = verify(&audit);
    assert!(!ok, "{out}");
    assert!(out.contains("records 5..6 were removed"), "{out}");

    let server = Server::start(&dir, &env);
    assert!(
        server.log().contains("audit trail tampering detected"),
        "{}",
        server.log()
    );
    server.client().list_keys().send().await.unwrap();
    let text = http_get(server.metrics_addr.as_ref().unwrap(), "/metrics").body;
    assert_eq!(metric(&text, "kms_audit_tampering_detected_total"), 1.0);
    let records = audit_records(&audit);
    let finding = records
        .iter()
        .find(|r| r["eventName"] == "AuditTrailTampering")
        .expect("the finding is in the trail");
    assert_eq!(
        finding["sequence"], 7,
        "numbering continues after the anchored head"
    );
    assert!(finding["additionalEventData"]["finding"]
        .as_str()
        .unwrap()
        .contains("records 5..6 were removed"));
    let last = records.last().unwrap();
    assert_eq!(last["eventName"], "ListKeys");
    assert_eq!(last["sequence"], 8);
    wait_for_head(&audit, 8);
    server.stop();
    let (ok, out) = verify(&audit);
    assert!(!ok && out.contains("records 5..6 are missing"), "{out}");

    // An edited head (pointing back to hide a truncation) does not verify.
    let head_path = audit.join("audit-head.json");
    let mut head: Value = serde_json::from_slice(&std::fs::read(&head_path).unwrap()).unwrap();
    head["sequence"] = Value::from(4);
    std::fs::write(&head_path, serde_json::to_vec(&head).unwrap()).unwrap();
    let server = Server::start(&dir, &env);
    server.client().list_keys().send().await.unwrap();
    assert!(
        server
            .log()
            .contains("the audit head anchor is not authentic"),
        "{}",
        server.log()
    );
    // The finding (9) and ListKeys (10), anchored anew.
    wait_for_head(&audit, 10);
    server.stop();

    // Every file removed: the head still names record 10.
    for (_, f) in kms_bridge::audit::audit_files(&audit).unwrap() {
        std::fs::remove_file(f).unwrap();
    }
    let server = Server::start(&dir, &env);
    assert!(
        server.log().contains("records 1..10 were removed"),
        "{}",
        server.log()
    );
    let records = audit_records(&audit);
    assert_eq!(records[0]["eventName"], "AuditTrailTampering");
    assert_eq!(records[0]["sequence"], 11);
}

#[tokio::test]
async fn requests_fail_when_the_audit_trail_cannot_be_written() {
    // A full device.
    let dir = TestDir::new();
    let audit = dir.path.join("full-audit");
    std::fs::create_dir_all(&audit).unwrap();
    std::os::unix::fs::symlink("/dev/full", audit.join("audit-000001.jsonl")).unwrap();
    let server = Server::start(&dir, &[("KMS_BRIDGE_AUDIT__DIR", audit.to_str().unwrap())]);
    let kms = server.client();
    assert_code!(kms.create_key().send().await, "KMSInternalException");
    server.stop();
    // The intent could not be recorded, so the key was never created.
    let server = Server::start(&dir, &[]);
    assert!(server
        .client()
        .list_keys()
        .send()
        .await
        .unwrap()
        .keys()
        .is_empty());

    // An unwritable location.
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_AUDIT__DIR", "/proc/self"),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let metrics = server.metrics_addr.clone().unwrap();
    assert_eq!(http_get(&metrics, "/readyz").status, 200);
    let r = server.signed("TrentService.ListKeys", "{}");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.error_type(), "KMSInternalException");
    assert!(server.log().contains("audit write failed"));
    // A node that cannot write its audit trail is not ready (load balancers move away).
    assert_eq!(http_get(&metrics, "/readyz").status, 503);
}

#[tokio::test]
async fn metrics_health_and_readiness() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0")]);
    let kms = server.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    for _ in 0..3 {
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"m".to_vec()))
            .send()
            .await
            .unwrap();
    }
    assert_code!(
        kms.describe_key().key_id("alias/none").send().await,
        "NotFoundException"
    );
    let m = server.metrics_addr.clone().expect("metrics listener");
    let text = http_get(&m, "/metrics").body;
    assert_eq!(
        metric(
            &text,
            r#"kms_requests_total{operation="Encrypt",outcome="success"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"kms_requests_total{operation="DescribeKey",outcome="client_error"}"#
        ),
        1.0
    );
    assert!(
        metric(
            &text,
            r#"kms_request_duration_seconds_count{operation="Encrypt"}"#
        ) >= 3.0
    );
    assert!(
        metric(
            &text,
            r#"kms_token_call_duration_seconds_count{call="encrypt_aes_gcm"}"#
        ) >= 3.0
    );
    assert!(metric(&text, "kms_audit_write_seconds_count") >= 5.0);
    assert!(metric(&text, r#"kms_token_sessions{state="idle"}"#) >= 1.0);
    assert_eq!(
        metric(&text, r#"kms_throttled_requests_total{quota="symmetric"}"#),
        0.0
    );
    let h = http_get(&m, "/healthz");
    assert_eq!(h.status, 200);
    let r = http_get(&m, "/readyz");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "ready");
    // The API listener does not expose metrics.
    assert_ne!(http_get(&server.addr, "/metrics").status, 200);
}

#[tokio::test]
async fn throttling_and_sdk_retry() {
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_QUOTAS__SYMMETRIC", "5"),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let kms = server.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    // 5/s with a burst of 5: a quick burst of 40 is mostly refused however slow the machine
    // (even at 100 ms a request, at most 5 + 20 of the 40 fit).
    let mut throttled = 0;
    for _ in 0..40 {
        match kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"q".to_vec()))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(code(&e), "ThrottlingException");
                assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
                throttled += 1;
            }
        }
    }
    assert!(throttled >= 10, "only {throttled} of 40 throttled at 5/s");
    // Management operations have their own quota.
    kms.describe_key().key_id(&key).send().await.unwrap();
    // With the SDK's standard retry the same burst goes through.
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_kms::config::Region::new(REGION))
        .endpoint_url(&server.endpoint)
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "t",
        ))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::standard().with_max_attempts(20))
        .build();
    let retrying = aws_sdk_kms::Client::from_conf(conf);
    for _ in 0..10 {
        retrying
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"q".to_vec()))
            .send()
            .await
            .unwrap();
    }
    let text = http_get(server.metrics_addr.as_ref().unwrap(), "/metrics").body;
    assert!(metric(&text, r#"kms_throttled_requests_total{quota="symmetric"}"#) >= 10.0);
}

/// A flood of RSA-4096 generation (data key pairs and CreateKey) cannot take the token threads
/// cheap calls need: generation has a bounded lane of its own, and what does not fit is
/// refused with AWS's `ThrottlingException` (nothing half-made left behind), while Encrypt
/// keeps working throughout.
#[tokio::test]
async fn key_generation_flood_is_throttled_by_its_own_lane() {
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_QUOTAS__DATA_KEY_PAIR_RSA_4096", "0"),
            ("KMS_BRIDGE_QUOTAS__CREATE_KEY", "0"),
            ("KMS_BRIDGE_TOKEN__KEYGEN_THREADS", "1"),
            ("KMS_BRIDGE_TOKEN__KEYGEN_QUEUE", "1"),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let kms = server.client();
    let key = new_symmetric_key(&kms).await;
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (kms, key) = (kms.clone(), key.clone());
        flood.spawn(async move {
            if i % 4 == 3 {
                kms.create_key()
                    .key_spec(aws_sdk_kms::types::KeySpec::Rsa4096)
                    .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
                    .send()
                    .await
                    .map(|_| true)
                    .map_err(|e| code_and_message(&e))
            } else {
                kms.generate_data_key_pair()
                    .key_id(&key)
                    .key_pair_spec(aws_sdk_kms::types::DataKeyPairSpec::Rsa4096)
                    .send()
                    .await
                    .map(|_| false)
                    .map_err(|e| code_and_message(&e))
            }
        });
    }
    // Cheap calls while the flood runs: every one is served.
    for _ in 0..40 {
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"cheap".to_vec()))
            .send()
            .await
            .expect("Encrypt during a key generation flood");
    }
    let (mut made, mut keys_made, mut throttled) = (0, 0, 0);
    while let Some(r) = flood.join_next().await {
        match r.unwrap() {
            Ok(created_key) => {
                made += 1;
                keys_made += usize::from(created_key);
            }
            Err((code, message)) => {
                assert_eq!(code, "ThrottlingException");
                assert_eq!(
                    message.as_deref(),
                    Some("You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.")
                );
                throttled += 1;
            }
        }
    }
    // One generating and one waiting fit the lane; 8 arriving at once cannot all fit.
    assert!(made >= 1, "nothing was generated");
    assert!(throttled >= 1, "no generation was refused ({made} made)");
    let listed = kms.list_keys().send().await.unwrap().keys.unwrap().len();
    assert_eq!(
        listed,
        1 + keys_made,
        "a refused CreateKey left a key behind"
    );
    let text = http_get(server.metrics_addr.as_ref().unwrap(), "/metrics").body;
    assert_eq!(
        metric(
            &text,
            r#"kms_throttled_requests_total{quota="token_keygen"}"#
        ),
        throttled as f64
    );
    // The lane frees up: generation works again.
    kms.generate_data_key_pair()
        .key_id(&key)
        .key_pair_spec(aws_sdk_kms::types::DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap();
}

/// A test CA with a server certificate for 127.0.0.1 and a client certificate, via openssl.
fn make_pki(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=kms-bridge test CA",
        ],
    ]
    .concat());
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n").unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let pem = format!("{who}.pem");
        let ext = format!("{who}.ext");
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={who}"),
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
}

fn tls_client(server: &Server, ca_pem: &[u8]) -> aws_sdk_kms::Client {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(tls::TrustStore::empty().with_pem_certificate(ca_pem.to_vec()))
                .build()
                .unwrap(),
        )
        .build_https();
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_kms::config::Region::new(REGION))
        .endpoint_url(&server.endpoint)
        .http_client(http)
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "t",
        ))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

#[tokio::test]
async fn tls_through_the_sdk() {
    let dir = TestDir::new();
    make_pki(&dir.path);
    let p = |f: &str| dir.path.join(f).to_str().unwrap().to_owned();
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_TLS__CERT", &p("server.pem")),
            ("KMS_BRIDGE_TLS__KEY", &p("server.key")),
        ],
    );
    assert!(server.endpoint.starts_with("https://"));
    let kms = tls_client(&server, &std::fs::read(dir.path.join("ca.pem")).unwrap());
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let ct = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"over tls".to_vec()))
        .send()
        .await
        .unwrap();
    let pt = kms
        .decrypt()
        .ciphertext_blob(ct.ciphertext_blob.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pt.plaintext().unwrap().as_ref(), b"over tls");
    // Plain HTTP to the TLS port does not work.
    assert_ne!(server.signed("TrentService.ListKeys", "{}").status, 200);
    // The secure transport condition key sees TLS.
    let records = audit_records(&dir.data_dir().join("audit"));
    assert_eq!(
        records.len(),
        4,
        "CreateKey intent + outcome, Encrypt, Decrypt"
    );
}

/// One signed request over TLS with an optional client certificate; Err if the handshake or
/// the exchange fails.
fn mtls_request(server: &Server, dir: &Path, with_client_cert: bool) -> Result<u16, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::io::{Read, Write};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = if with_client_cert {
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(dir.join("client.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let conn = rustls::ClientConnection::new(
        std::sync::Arc::new(cfg),
        ServerName::try_from("127.0.0.1").unwrap(),
    )
    .unwrap();
    let tcp = std::net::TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let body = b"{}";
    let headers = signed_headers(
        &server.addr,
        "TrentService.ListKeys",
        body,
        &Signing::default(),
    );
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        server.addr,
        body.len()
    );
    for (k, v) in &headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n{}");
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    match tls.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if buf.is_empty() => return Err(e.to_string()),
        Err(_) => {}
    }
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP response: {text:?}"))
}

#[tokio::test]
async fn mtls_requires_a_client_certificate() {
    let dir = TestDir::new();
    make_pki(&dir.path);
    let p = |f: &str| dir.path.join(f).to_str().unwrap().to_owned();
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_TLS__CERT", &p("server.pem")),
            ("KMS_BRIDGE_TLS__KEY", &p("server.key")),
            ("KMS_BRIDGE_TLS__CLIENT_CA", &p("ca.pem")),
        ],
    );
    let path = dir.path.clone();
    assert_eq!(mtls_request(&server, &path, true), Ok(200));
    assert!(
        mtls_request(&server, &path, false).is_err(),
        "no client certificate must be refused"
    );
    // The SDK's client (no client certificate) is refused too.
    let kms = tls_client(&server, &std::fs::read(path.join("ca.pem")).unwrap());
    assert!(kms.list_keys().send().await.is_err());
}

#[test]
fn refuses_public_plain_http_and_bad_settings() {
    let dir = TestDir::new();
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kms-bridge"));
        cmd.arg("serve");
        dir.configure(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[("KMS_BRIDGE_LISTEN", "0.0.0.0:0")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls"), "{err}");
    let (code, err) = run(&[("KMS_BRIDGE_QUOTAS__SYMMETRIC", "-1")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("quotas.symmetric"), "{err}");
    let (code, err) = run(&[
        ("KMS_BRIDGE_TLS__CERT", "/nonexistent.pem"),
        ("KMS_BRIDGE_TLS__KEY", "/nonexistent.key"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.cert"), "{err}");
}

/// Slow and idle clients cannot hold the server: at most `max_connections` are kept open,
/// headers and bodies must arrive in time, and a real client is served afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_bounded_and_timed_out() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let dir = TestDir::new();
    let server = Server::start(
        &dir,
        &[
            ("KMS_BRIDGE_MAX_CONNECTIONS", "16"),
            ("KMS_BRIDGE_HEADER_READ_TIMEOUT_MS", "700"),
            ("KMS_BRIDGE_BODY_READ_TIMEOUT_MS", "700"),
        ],
    );
    // 40 slowloris connections: a request line and half the headers, then nothing.
    let started = std::time::Instant::now();
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut c = std::net::TcpStream::connect(&server.addr).unwrap();
        let _ =
            c.write_all(b"POST / HTTP/1.1\r\nHost: kms\r\nX-Amz-Target: TrentService.ListKeys\r\n");
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(200));
    // Those over the limit were closed at once; the rest are still open.
    let mut open_now = 0;
    for c in &mut held {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 1];
        match c.read(&mut b) {
            Ok(0) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                open_now += 1
            }
            _ => {}
        }
    }
    assert!(
        open_now <= 16,
        "{open_now} slow connections held (limit 16)"
    );
    assert!(open_now > 0, "the first connections are accepted");
    // After the header timeout, none is left open.
    let deadline = started + Duration::from_secs(5);
    for c in &mut held {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        assert!(
            std::time::Instant::now() < deadline,
            "a slow connection outlived the timeout"
        );
    }
    // A body that stalls is cut off too (its signed headers pass the pre-check, so the
    // server does wait for it: unsigned ones are answered at once, tests/wire.rs).
    let mut c = std::net::TcpStream::connect(&server.addr).unwrap();
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n",
        server.addr
    );
    for (k, v) in signed_headers(
        &server.addr,
        "TrentService.ListKeys",
        b"{}",
        &Signing::default(),
    ) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n{\"Limit\"");
    c.write_all(head.as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "a stalled body held its connection"
    );
    drop(held);
    // Real clients are served.
    server
        .client()
        .list_keys()
        .send()
        .await
        .expect("served after the slow clients");
}
