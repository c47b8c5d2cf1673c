//! The web console in a real browser: headless Chromium (Debian's `chromium`) driven by
//! Playwright for Python (`tests/console/console_test.py`, installed into .venv by
//! scripts/lib.sh), against a real server and SoftHSM token. The browser acts as a person; this
//! test then checks the outcome through the API.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KMS_BRIDGE_PYTHON") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// The key policy the AWS console writes for one administrator and one user of a symmetric
/// encryption key (administrators may delete it).
fn console_default_policy(admin: &str, user: &str) -> serde_json::Value {
    serde_json::json!({
        "Id": "key-consolepolicy-3",
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
             "Principal": {"AWS": admin},
             "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                        "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                        "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                        "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand"],
             "Resource": "*"},
            {"Sid": "Allow use of the key", "Effect": "Allow",
             "Principal": {"AWS": user},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                        "kms:DescribeKey"],
             "Resource": "*"},
            {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
             "Principal": {"AWS": user},
             "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
             "Resource": "*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
        ]
    })
}

/// Run a browser script of tests/console against the server (as the bootstrap administrator,
/// with `env`); its results go to `out`.
/// Every record of the audit files in `dir`, as text.
fn trail_of(dir: &std::path::Path) -> String {
    let mut trail = String::new();
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "jsonl") {
            trail.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    trail
}

fn run_browser(script: &str, server: &Server, out: &std::path::Path, env: &[(&str, &str)]) {
    let python = python();
    assert!(
        python.exists(),
        "{} missing: scripts/test.sh installs Playwright into .venv (ensure_browser)",
        python.display()
    );
    std::fs::create_dir_all(out).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/console")
        .join(script);
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .env("CONSOLE_URL", &server.endpoint)
        .env("ADMIN_AKID", ACCESS_KEY_ID)
        .env("ADMIN_SECRET", SECRET_ACCESS_KEY)
        .env("OUT", out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // KMS_BRIDGE_SCREENSHOTS=docs/console refreshes the README's screenshots.
    if let Some(shots) = std::env::var_os("KMS_BRIDGE_SCREENSHOTS") {
        cmd.env("SCREENSHOTS", shots);
    }
    let run = cmd.output().expect("run the browser test");
    assert!(
        run.status.success(),
        "browser test {} failed:\n{}\n{}\nserver log:\n{}",
        script.display(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn console_in_a_real_browser() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let (admin_arn, _) = dir.user("key-admin");
    let (user_arn, user_creds) = dir.user("key-user");
    dir.attach(
        &user_arn,
        "read-only",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Describe*","kms:Get*","kms:List*"],"Resource":"*"}]}"#,
    );
    let out = dir.path.join("browser");
    run_browser(
        "console_test.py",
        &server,
        &out,
        &[
            ("KEYADMIN_ARN", &admin_arn),
            ("KEYUSER_ARN", &user_arn),
            ("KEYUSER_AKID", &user_creds.access_key_id),
            ("KEYUSER_SECRET", &user_creds.secret),
        ],
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let key = result["symmetric_key"].as_str().unwrap();
    let kms = server.client();
    // The wizard's multi-Region choice made a multi-Region primary key.
    let mrk = describe(&kms, result["multi_region_key"].as_str().unwrap()).await;
    assert_eq!(mrk.multi_region(), Some(true));
    assert_eq!(
        mrk.multi_region_configuration()
            .and_then(|c| c.multi_region_key_type()),
        Some(&aws_sdk_kms::types::MultiRegionKeyType::Primary)
    );

    // The wizard's policy is AWS's console default for these principals, as shown and as stored.
    let expected = console_default_policy(&admin_arn, &user_arn);
    let shown: serde_json::Value =
        serde_json::from_str(result["review_policy"].as_str().unwrap()).unwrap();
    assert_eq!(shown, expected, "the review step's policy");
    let stored = kms
        .get_key_policy()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored, expected, "GetKeyPolicy after the wizard");

    // Rotation, aliases, tags, description, state: as the browser left them.
    let rotation = kms
        .get_key_rotation_status()
        .key_id(key)
        .send()
        .await
        .unwrap();
    assert!(rotation.key_rotation_enabled);
    assert_eq!(rotation.rotation_period_in_days, Some(180));
    let rotations = kms.list_key_rotations().key_id(key).send().await.unwrap();
    assert_eq!(rotations.rotations().len(), 1, "one on-demand rotation");
    let aliases: Vec<String> = kms
        .list_aliases()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name().map(str::to_owned))
        .collect();
    assert!(
        aliases.contains(&"alias/console-demo".to_owned()),
        "{aliases:?}"
    );
    assert!(
        aliases.contains(&"alias/console-second".to_owned()),
        "{aliases:?}"
    );
    let tags: Vec<(String, String)> = kms
        .list_resource_tags()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned()))
        .collect();
    assert!(
        tags.contains(&("project".into(), "console".into())),
        "{tags:?}"
    );
    assert!(
        tags.contains(&("team".into(), "payments".into())),
        "{tags:?}"
    );
    let meta = describe(&kms, key).await;
    assert_eq!(meta.description(), Some("Made and edited in the console"));
    assert_eq!(
        aliases.len(),
        2,
        "alias/console-third was deleted: {aliases:?}"
    );
    assert_eq!(tags.len(), 2, "the temporary tag was removed: {tags:?}");
    assert_eq!(
        meta.key_state(),
        Some(&aws_sdk_kms::types::KeyState::Enabled),
        "scheduled, cancelled, enabled again; the CSRF-less and signed-out disables did nothing"
    );

    // The key user's refusal on the page is the API's own answer to the same call.
    let denied = server
        .client_for(&user_creds)
        .put_key_policy()
        .key_id(key)
        .policy(serde_json::to_string(&expected).unwrap())
        .send()
        .await
        .expect_err("the key user may not change the policy");
    let (code, message) = code_and_message(&denied);
    assert_eq!(code, "AccessDeniedException");
    let refusal = result["user_refusal"].as_str().unwrap();
    assert!(
        refusal.contains(&format!("AccessDeniedException: {}", message.unwrap())),
        "{refusal}"
    );

    // The downloaded PEM verifies a signature made through the API.
    let signer = result["signing_key"].as_str().unwrap();
    let message = b"signed through the API, verified with the console's PEM";
    let signature = kms
        .sign()
        .key_id(signer)
        .message(Blob::new(message.to_vec()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap()
        .into_inner();
    // Its policy: no administrators chosen, the other account as key user with the signing
    // key's actions (and the grants statement).
    let signer_policy: serde_json::Value = serde_json::from_str(
        &kms.get_key_policy()
            .key_id(signer)
            .send()
            .await
            .unwrap()
            .policy
            .unwrap(),
    )
    .unwrap();
    let other = "arn:aws:iam::444455556666:root";
    assert_eq!(
        signer_policy["Statement"][1],
        serde_json::json!({"Sid": "Allow use of the key", "Effect": "Allow",
            "Principal": {"AWS": other},
            "Action": ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"],
            "Resource": "*"}),
        "{signer_policy}"
    );
    assert_eq!(signer_policy["Statement"][2]["Principal"]["AWS"], other);
    assert_eq!(signer_policy["Statement"].as_array().unwrap().len(), 3);
    std::fs::write(out.join("message.bin"), message).unwrap();
    std::fs::write(out.join("message.sig"), &signature).unwrap();
    let verify = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(out.join("signing.pem"))
        .arg("-signature")
        .arg(out.join("message.sig"))
        .arg(out.join("message.bin"))
        .output()
        .expect("run openssl");
    assert!(
        verify.status.success() && String::from_utf8_lossy(&verify.stdout).contains("Verified OK"),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // Every console action is in the audit trail with the console as user agent.
    let trail = trail_of(&dir.data_dir().join("audit"));
    let console_events: Vec<serde_json::Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["userAgent"] == "kms-bridge-console" && r.get("auditPhase").is_none())
        .collect();
    for event in [
        "CreateKey",
        "CreateAlias",
        "EnableKeyRotation",
        "TagResource",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "PutKeyPolicy",
    ] {
        assert!(
            console_events.iter().any(|r| r["eventName"] == event),
            "no console {event} in the audit trail"
        );
    }
    // Sign-ins are recorded as CloudTrail's ConsoleLogin: the refused one and the two that
    // succeeded (administrator, key user).
    let logins: Vec<&serde_json::Value> = console_events
        .iter()
        .filter(|r| r["eventName"] == "ConsoleLogin")
        .collect();
    let outcome = |o: &str| {
        logins
            .iter()
            .filter(|r| r["responseElements"]["ConsoleLogin"] == o)
            .count()
    };
    assert_eq!(
        (outcome("Success"), outcome("Failure")),
        (2, 1),
        "{logins:?}"
    );
    let refused = console_events
        .iter()
        .find(|r| r["eventName"] == "PutKeyPolicy" && r["userIdentity"]["arn"] == user_arn.as_str())
        .unwrap();
    assert_eq!(refused["errorCode"], "AccessDeniedException");
    assert_eq!(refused["userIdentity"]["arn"], user_arn.as_str());
    assert!(!trail.contains(SECRET_ACCESS_KEY) && !trail.contains(&user_creds.secret));
    assert!(
        !server.log().contains(SECRET_ACCESS_KEY) && !server.log().contains(&user_creds.secret)
    );
}

/// A custom key store through the console: connect, a key in it from the wizard, disconnect.
#[tokio::test(flavor = "multi_thread")]
async fn custom_key_store_in_the_console() {
    let dir = TestDir::new();
    dir.add_token("cluster-consoletestx", "store-pin-1234");
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let store = kms
        .create_custom_key_store()
        .custom_key_store_name("console-store")
        .cloud_hsm_cluster_id("cluster-consoletestx")
        .trust_anchor_certificate("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        .key_store_password("store-pin-1234")
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    let out = dir.path.join("browser");
    run_browser("keystore_test.py", &server, &out, &[("STORE_ID", &store)]);
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("keystore.json")).unwrap()).unwrap();
    let meta = describe(&kms, result["key"].as_str().unwrap()).await;
    assert_eq!(meta.custom_key_store_id(), Some(store.as_str()));
    assert_eq!(
        meta.origin(),
        Some(&aws_sdk_kms::types::OriginType::AwsCloudhsm)
    );
    let state = kms
        .describe_custom_key_stores()
        .custom_key_store_id(&store)
        .send()
        .await
        .unwrap();
    assert_eq!(
        state.custom_key_stores()[0].connection_state(),
        Some(&aws_sdk_kms::types::ConnectionStateType::Disconnected)
    );
}

/// An AWS managed key in the console (tests/console/managed_test.py): on the AWS managed keys
/// page only, shown with KeyManager AWS, its fixed policy read-only and no changing actions.
#[tokio::test(flavor = "multi_thread")]
async fn aws_managed_key_in_the_console() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let customer = new_symmetric_key(&kms).await;
    // DescribeKey of the predefined alias creates the AWS managed key (as AWS's services do).
    let managed = describe(&kms, "alias/aws/s3").await.key_id;
    let out = dir.path.join("browser");
    run_browser(
        "managed_test.py",
        &server,
        &out,
        &[("MANAGED_KEY", &managed), ("CUSTOMER_KEY", &customer)],
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("managed.json")).unwrap()).unwrap();
    let stored = kms
        .get_key_policy()
        .key_id(&managed)
        .send()
        .await
        .unwrap()
        .policy
        .unwrap();
    assert_eq!(
        result["policy"].as_str(),
        Some(stored.as_str()),
        "the policy shown is the key's"
    );
}

/// The audit view: the administrator (allowed `cloudtrail:LookupEvents`) sees a console
/// change to a key, filters, sees the chain intact and, once a record is edited in the file,
/// the verification failure; a key user is refused. Each view is a `LookupEvents` record.
#[tokio::test(flavor = "multi_thread")]
async fn audit_view_in_the_console() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    // The bootstrap administrator's identity policy allows cloudtrail:LookupEvents.
    let admin_arn = format!("arn:aws:iam::{ACCOUNT}:user/dev-admin");
    let (user_arn, user_creds) = dir.user("key-user");
    dir.attach(
        &user_arn,
        "kms-only",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
    );
    let key = new_symmetric_key(&server.client()).await;
    let audit_dir = dir.data_dir().join("audit");
    let out = dir.path.join("browser");
    run_browser(
        "audit_test.py",
        &server,
        &out,
        &[
            ("KEY_ID", &key),
            ("AUDIT_DIR", audit_dir.to_str().unwrap()),
            ("KEYUSER_AKID", &user_creds.access_key_id),
            ("KEYUSER_SECRET", &user_creds.secret),
        ],
    );
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
    assert!(
        result["failure"]
            .as_str()
            .unwrap()
            .contains("was altered (hash mismatch)"),
        "{result}"
    );
    let refusal = result["refusal"].as_str().unwrap();
    assert!(
        refusal.contains(&format!(
            "User: {user_arn} is not authorized to perform: cloudtrail:LookupEvents on resource: * \
             because no identity-based policy allows the cloudtrail:LookupEvents action"
        )),
        "{refusal}"
    );
    let trail = trail_of(&audit_dir);
    let lookups: Vec<serde_json::Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["eventName"] == "LookupEvents")
        .collect();
    assert!(lookups
        .iter()
        .all(|r| r["eventSource"] == "cloudtrail.amazonaws.com"
            && r["userAgent"] == "kms-bridge-console"));
    assert!(lookups
        .iter()
        .any(|r| r["userIdentity"]["arn"] == admin_arn.as_str() && r.get("errorCode").is_none()));
    assert!(lookups
        .iter()
        .any(|r| r["userIdentity"]["arn"] == user_arn.as_str()
            && r["errorCode"] == "AccessDeniedException"));
}

/// Over TLS the session cookie is `Secure` too.
#[test]
fn the_session_cookie_is_secure_over_tls() {
    let dir = TestDir::new();
    let (cert, key) = (dir.path.join("server.pem"), dir.path.join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let server = Server::start(
        &dir,
        &[("KMS_BRIDGE_TLS__CERT", cert), ("KMS_BRIDGE_TLS__KEY", key)],
    );
    assert!(server.endpoint.starts_with("https://"));
    run_browser("tls_test.py", &server, &dir.path.join("browser"), &[]);
}

/// POST a form to a plain-HTTP listener; (status, body).
fn post_form(addr: &str, path: &str, form: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
    .expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let r = parse_response(&buf);
    (r.status, r.body)
}

/// Repeated failed sign-ins block further attempts for a while, even with the right secret;
/// each attempt is a `ConsoleLogin` failure in the trail.
#[test]
fn failed_sign_ins_are_throttled() {
    let (dir, server) = Server::start_new();
    let wrong = format!("access_key_id={ACCESS_KEY_ID}&secret_access_key=wrong-secret");
    for _ in 0..10 {
        let (status, body) = post_form(&server.addr, "/console/signin", &wrong);
        assert_eq!(status, 401);
        assert!(body.contains("is not valid"), "{body}");
    }
    let right = format!("access_key_id={ACCESS_KEY_ID}&secret_access_key={SECRET_ACCESS_KEY}");
    let (status, body) = post_form(&server.addr, "/console/signin", &right);
    assert_eq!(status, 401);
    assert!(body.contains("Too many failed sign-ins"), "{body}");
    let trail: String = std::fs::read_dir(dir.data_dir().join("audit"))
        .unwrap()
        .filter_map(|f| {
            let p = f.ok()?.path();
            (p.extension()? == "jsonl").then(|| std::fs::read_to_string(p).ok())?
        })
        .collect();
    let failures = trail
        .lines()
        .filter(|l| l.contains("\"ConsoleLogin\":\"Failure\""))
        .count();
    assert_eq!(failures, 11);
}

/// `console = false`: no console, the API unchanged.
#[test]
fn console_can_be_turned_off() {
    let dir = TestDir::new();
    let off = Server::start(&dir, &[("KMS_BRIDGE_CONSOLE", "false")]);
    assert_eq!(http_get(&off.addr, "/console/signin").status, 404);
    assert_eq!(http_get(&off.addr, "/healthz").status, 200);
    drop(off);
    let on = Server::start(&dir, &[]);
    let page = http_get(&on.addr, "/console/signin");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(!page.body.contains("<script") && !page.body.contains("style="));
    // Pages need a session; a POST without one is refused.
    assert_eq!(http_get(&on.addr, "/console/keys").status, 303);
}
