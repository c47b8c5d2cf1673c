//! Identity and access end to end: SigV4 with real credentials per principal, key policies,
//! identity policies, grants — through the AWS SDK for Rust.

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantConstraints, GrantOperation};
use aws_sdk_kms::Client;

const ROOT_STATEMENT: &str = r#"{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#;

fn console_policy() -> String {
    format!(
        r#"{{"Version":"2012-10-17","Id":"key-consolepolicy-3","Statement":[{ROOT_STATEMENT},
        {{"Sid":"Allow access for Key Administrators","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:user/myKeyManager"}},
          "Action":["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*","kms:Revoke*","kms:Disable*","kms:Get*","kms:Delete*","kms:TagResource","kms:UntagResource","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion"],"Resource":"*"}},
        {{"Sid":"Allow use of the key","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:user/myKeyUser"}},
          "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}},
        {{"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:user/myKeyUser"}},
          "Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{{"Bool":{{"kms:GrantIsForAWSResource":"true"}}}}}}]}}"#
    )
}

async fn encrypt(kms: &Client, key: &str, ctx: &[(&str, &str)]) -> Result<Vec<u8>, String> {
    let mut req = kms
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"secret".to_vec()));
    for (k, v) in ctx {
        req = req.encryption_context(*k, *v);
    }
    req.send()
        .await
        .map(|o| o.ciphertext_blob.unwrap().into_inner())
        .map_err(|e| code(&e))
}

#[tokio::test]
async fn key_administrators_and_key_users_are_separate() {
    let dir = TestDir::new();
    let (_, manager) = dir.user("myKeyManager");
    let (_, user) = dir.user("myKeyUser");
    let server = Server::start(&dir, &[]);
    let admin = server.client();
    let key = admin
        .create_key()
        .policy(console_policy())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let m = server.client_for(&manager);
    let u = server.client_for(&user);

    // The manager manages but cannot use.
    m.describe_key().key_id(&key).send().await.unwrap();
    m.disable_key().key_id(&key).send().await.unwrap();
    m.enable_key().key_id(&key).send().await.unwrap();
    m.update_key_description()
        .key_id(&key)
        .description("managed")
        .send()
        .await
        .unwrap();
    m.get_key_policy().key_id(&key).send().await.unwrap();
    let denied = m
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&denied), "AccessDeniedException");
    let msg = denied
        .as_service_error()
        .unwrap()
        .meta()
        .message()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("arn:aws:iam::111122223333:user/myKeyManager"),
        "{msg}"
    );
    assert!(msg.contains("kms:Encrypt"), "{msg}");
    assert!(msg.contains(&key), "{msg}");

    // The user uses but cannot manage.
    let blob = encrypt(&u, &key, &[]).await.unwrap();
    let d = u
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .send()
        .await
        .unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"secret");
    u.generate_data_key_without_plaintext()
        .key_id(&key)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    u.describe_key().key_id(&key).send().await.unwrap();
    assert_code!(
        u.disable_key().key_id(&key).send().await,
        "AccessDeniedException"
    );
    assert_code!(
        u.schedule_key_deletion().key_id(&key).send().await,
        "AccessDeniedException"
    );
    assert_code!(
        u.get_key_policy().key_id(&key).send().await,
        "AccessDeniedException"
    );
    // Grants only for AWS resources (never true for direct callers).
    assert_code!(
        u.create_grant()
            .key_id(&key)
            .grantee_principal("arn:aws:iam::111122223333:user/myKeyManager")
            .operations(GrantOperation::Decrypt)
            .send()
            .await,
        "AccessDeniedException"
    );
    // Neither can create keys or list keys: no identity policy.
    assert_code!(u.create_key().send().await, "AccessDeniedException");
    assert_code!(m.list_keys().send().await, "AccessDeniedException");
}

#[tokio::test]
async fn encryption_context_condition() {
    let dir = TestDir::new();
    let (_, user) = dir.user("analyst");
    let server = Server::start(&dir, &[]);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{ROOT_STATEMENT},
        {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:user/analyst"}},"Action":"kms:Encrypt","Resource":"*"}},
        {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:user/analyst"}},"Action":"kms:Decrypt","Resource":"*",
          "Condition":{{"StringEquals":{{"kms:EncryptionContext:department":"finance"}}}}}}]}}"#
    );
    let key = server
        .client()
        .create_key()
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let u = server.client_for(&user);
    let finance = encrypt(&u, &key, &[("department", "finance")])
        .await
        .unwrap();
    let hr = encrypt(&u, &key, &[("department", "hr")]).await.unwrap();
    let none = encrypt(&u, &key, &[]).await.unwrap();
    u.decrypt()
        .ciphertext_blob(Blob::new(finance))
        .encryption_context("department", "finance")
        .send()
        .await
        .unwrap();
    assert_code!(
        u.decrypt()
            .ciphertext_blob(Blob::new(hr))
            .encryption_context("department", "hr")
            .send()
            .await,
        "AccessDeniedException"
    );
    assert_code!(
        u.decrypt().ciphertext_blob(Blob::new(none)).send().await,
        "AccessDeniedException"
    );
}

#[tokio::test]
async fn identity_policies_and_explicit_deny() {
    let dir = TestDir::new();
    let (arn, user) = dir.user("app");
    let server = Server::start(&dir, &[]);
    let admin = server.client();
    // Default key policy: the account root, i.e. delegation to identity policies.
    let key_meta = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key = key_meta.key_id;
    let key_arn = key_meta.arn.unwrap();
    let u = server.client_for(&user);
    assert_eq!(
        encrypt(&u, &key, &[]).await.unwrap_err(),
        "AccessDeniedException"
    );

    dir.attach(
        &arn,
        "use-one-key",
        &format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"{key_arn}"}}]}}"#),
    );
    // Identity-policy changes reach the server within its cache TTL.
    let mut blob = None;
    for _ in 0..60 {
        match encrypt(&u, &key, &[]).await {
            Ok(b) => {
                blob = Some(b);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
    let blob = blob.expect("identity policy never took effect");
    u.decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .send()
        .await
        .unwrap();
    // Another key is not covered by the identity policy.
    let other = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    assert_eq!(
        encrypt(&u, &other, &[]).await.unwrap_err(),
        "AccessDeniedException"
    );
    assert_code!(u.create_key().send().await, "AccessDeniedException");

    // An explicit deny beats the allow.
    dir.attach(
        &arn,
        "no-decrypt",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    let mut denied = false;
    for _ in 0..60 {
        let r = u
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await;
        if matches!(&r, Err(e) if code(e) == "AccessDeniedException") {
            denied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(denied, "explicit deny never took effect");
    encrypt(&u, &key, &[]).await.unwrap();
}

#[tokio::test]
async fn grants_allow_exactly_their_operations() {
    let dir = TestDir::new();
    let (grantee_arn, grantee) = dir.user("grantee");
    let (retiree_arn, retiree) = dir.user("retiree");
    let server = Server::start(&dir, &[]);
    let admin = server.client();
    let key = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let g = server.client_for(&grantee);
    assert_eq!(
        encrypt(&g, &key, &[("dept", "eng")]).await.unwrap_err(),
        "AccessDeniedException"
    );

    let created = admin
        .create_grant()
        .key_id(&key)
        .grantee_principal(&grantee_arn)
        .retiring_principal(&retiree_arn)
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::Decrypt)
        .constraints(
            GrantConstraints::builder()
                .encryption_context_subset("dept", "eng")
                .build(),
        )
        .name("eng-app")
        .send()
        .await
        .unwrap();
    let grant_id = created.grant_id().unwrap().to_owned();
    let token = created.grant_token().unwrap().to_owned();
    assert_eq!(grant_id.len(), 64);

    let blob = encrypt(&g, &key, &[("dept", "eng"), ("x", "y")])
        .await
        .unwrap();
    g.decrypt()
        .ciphertext_blob(Blob::new(blob))
        .encryption_context("dept", "eng")
        .encryption_context("x", "y")
        .grant_tokens(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        encrypt(&g, &key, &[]).await.unwrap_err(),
        "AccessDeniedException"
    );
    assert_eq!(
        encrypt(&g, &key, &[("dept", "ops")]).await.unwrap_err(),
        "AccessDeniedException"
    );
    assert_code!(
        g.generate_data_key()
            .key_id(&key)
            .number_of_bytes(16)
            .encryption_context("dept", "eng")
            .send()
            .await,
        "AccessDeniedException"
    );
    assert_code!(
        g.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .encryption_context("dept", "eng")
            .grant_tokens("not-a-grant-token")
            .send()
            .await,
        "InvalidGrantTokenException"
    );

    // Same name and parameters: same grant.
    let again = admin
        .create_grant()
        .key_id(&key)
        .grantee_principal(&grantee_arn)
        .retiring_principal(&retiree_arn)
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::Encrypt)
        .constraints(
            GrantConstraints::builder()
                .encryption_context_subset("dept", "eng")
                .build(),
        )
        .name("eng-app")
        .send()
        .await
        .unwrap();
    assert_eq!(again.grant_id(), Some(grant_id.as_str()));

    let listed = admin.list_grants().key_id(&key).send().await.unwrap();
    assert_eq!(listed.grants().len(), 1);
    let entry = &listed.grants()[0];
    assert_eq!(entry.grantee_principal(), Some(grantee_arn.as_str()));
    assert_eq!(
        entry.issuing_account(),
        Some("arn:aws:iam::111122223333:root")
    );
    assert_eq!(entry.operations().len(), 2);
    assert!(entry
        .constraints()
        .unwrap()
        .encryption_context_subset()
        .is_some());
    assert_code!(
        admin
            .list_grants()
            .key_id(&key)
            .grant_id("0".repeat(64))
            .send()
            .await,
        "InvalidGrantIdException"
    );

    // The retiring principal retires it with the token; it stops working at once.
    let r = server.client_for(&retiree);
    let retirable = admin
        .list_retirable_grants()
        .retiring_principal(&retiree_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(retirable.grants().len(), 1);
    r.retire_grant().grant_token(&token).send().await.unwrap();
    assert_eq!(
        encrypt(&g, &key, &[("dept", "eng")]).await.unwrap_err(),
        "AccessDeniedException"
    );

    // A revoked grant stops working at once too.
    let second = admin
        .create_grant()
        .key_id(&key)
        .grantee_principal(&grantee_arn)
        .operations(GrantOperation::Encrypt)
        .send()
        .await
        .unwrap();
    encrypt(&g, &key, &[]).await.unwrap();
    assert_code!(
        g.revoke_grant()
            .key_id(&key)
            .grant_id(second.grant_id().unwrap())
            .send()
            .await,
        "AccessDeniedException"
    );
    admin
        .revoke_grant()
        .key_id(&key)
        .grant_id(second.grant_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        encrypt(&g, &key, &[]).await.unwrap_err(),
        "AccessDeniedException"
    );
    assert_code!(
        admin
            .revoke_grant()
            .key_id(&key)
            .grant_id(second.grant_id().unwrap())
            .send()
            .await,
        "InvalidGrantIdException"
    );
    assert_code!(
        admin
            .create_grant()
            .key_id(&key)
            .grantee_principal("nobody")
            .operations(GrantOperation::Encrypt)
            .send()
            .await,
        "ValidationException"
    );
    assert_code!(
        admin
            .create_grant()
            .key_id(&key)
            .grantee_principal(&grantee_arn)
            .operations(GrantOperation::Sign)
            .send()
            .await,
        "ValidationException"
    );
}

#[tokio::test]
async fn key_policy_lockout_safety_check() {
    let (_d, server) = Server::start_new();
    let admin = server.client();
    let key = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let locked = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/someone-else"},"Action":"kms:*","Resource":"*"}]}"#;
    assert_code!(
        admin
            .put_key_policy()
            .key_id(&key)
            .policy(locked)
            .send()
            .await,
        "MalformedPolicyDocumentException"
    );
    assert_code!(
        admin.create_key().policy(locked).send().await,
        "MalformedPolicyDocumentException"
    );
    for bad in [
        r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEqualz":{"kms:CallerAccount":"1"}}}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:Bogus":"1"}}}]}"#,
        r#"{"Statement":[],"Extra":1}"#,
    ] {
        assert_code!(
            admin.put_key_policy().key_id(&key).policy(bad).send().await,
            "MalformedPolicyDocumentException"
        );
    }
    admin
        .put_key_policy()
        .key_id(&key)
        .policy(locked)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .unwrap();
    // Locked out now: even the admin (only IAM permissions) cannot use or manage the key.
    assert_code!(
        admin.describe_key().key_id(&key).send().await,
        "AccessDeniedException"
    );
}

#[tokio::test]
async fn cross_account_use_needs_both_sides() {
    let dir = TestDir::new();
    let arn = dir
        .admin(&[
            "create-user",
            "--name",
            "partner",
            "--account",
            "444455556666",
        ])
        .trim()
        .to_owned();
    let partner = Creds::parse(&dir.admin(&["create-access-key", "--principal", &arn]));
    let server = Server::start(&dir, &[]);
    let admin = server.client();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{ROOT_STATEMENT},
        {{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::444455556666:root"}},"Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"*"}}]}}"#
    );
    let m = admin
        .create_key()
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key_arn = m.arn.unwrap();
    let p = server.client_for(&partner);
    // Key policy allows the partner account, but the partner's identity policy does not yet.
    assert_eq!(
        encrypt(&p, &key_arn, &[]).await.unwrap_err(),
        "AccessDeniedException"
    );
    dir.attach(
        &arn,
        "use-partner-key",
        &format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:Encrypt","Resource":"{key_arn}"}}]}}"#),
    );
    let mut ok = false;
    for _ in 0..60 {
        if encrypt(&p, &key_arn, &[]).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(ok, "cross-account encrypt never allowed");
    // The bare key id means a key of the caller's own account.
    assert_eq!(
        encrypt(&p, &m.key_id, &[]).await.unwrap_err(),
        "NotFoundException"
    );
    // Management operations cannot cross accounts.
    assert_code!(
        p.disable_key().key_id(&key_arn).send().await,
        "NotFoundException"
    );
    // The partner's own key list is empty and separate.
    dir.attach(
        &arn,
        "list",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:ListKeys","Resource":"*"}]}"#,
    );
    let mut listed = None;
    for _ in 0..60 {
        if let Ok(l) = p.list_keys().send().await {
            listed = Some(l);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(listed.expect("ListKeys never allowed").keys().is_empty());
}

#[test]
fn authentication_failures() {
    let dir = TestDir::new();
    let (_, user) = dir.user("signer");
    let server = Server::start(&dir, &[]);
    let never_used = Creds::parse(&dir.admin(&[
        "create-access-key",
        "--principal",
        "arn:aws:iam::111122223333:user/signer",
    ]));
    dir.admin(&[
        "delete-access-key",
        "--access-key-id",
        &never_used.access_key_id,
    ]);
    let body = r#"{}"#;
    let target = "TrentService.ListKeys";
    let expect = |r: RawResponse, status: u16, name: &str, msg: &str| {
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.error_type(), name, "{r:?}");
        let m = r.json()["message"].as_str().unwrap_or("").to_owned();
        assert!(m.contains(msg), "{m:?} should contain {msg:?}");
    };
    // Correctly signed: accepted.
    assert_eq!(server.signed(target, body).status, 200);
    // Unsigned.
    expect(
        server.raw(&[("X-Amz-Target", target)], body.as_bytes()),
        400,
        "MissingAuthenticationTokenException",
        "Request is missing Authentication Token",
    );
    // Wrong secret.
    let wrong = Creds {
        access_key_id: user.access_key_id.clone(),
        secret: "not-the-secret-at-all".into(),
    };
    let s = Signing {
        creds: &wrong,
        region: REGION,
        skew_secs: 0,
        content_type: JSON_CONTENT_TYPE,
    };
    expect(
        server.signed_with(target, body.as_bytes(), body.as_bytes(), &s),
        400,
        "InvalidSignatureException",
        "signature we calculated does not match",
    );
    // Body tampered with after signing.
    let s = Signing {
        creds: &user,
        region: REGION,
        skew_secs: 0,
        content_type: JSON_CONTENT_TYPE,
    };
    expect(
        server.signed_with(target, br#"{"Limit":1}"#, br#"{"Limit":2}"#, &s),
        400,
        "InvalidSignatureException",
        "signature",
    );
    // Expired and not yet valid.
    let s = Signing {
        creds: &user,
        region: REGION,
        skew_secs: -600,
        content_type: JSON_CONTENT_TYPE,
    };
    expect(
        server.signed_with(target, body.as_bytes(), body.as_bytes(), &s),
        400,
        "InvalidSignatureException",
        "Signature expired",
    );
    let s = Signing {
        creds: &user,
        region: REGION,
        skew_secs: 600,
        content_type: JSON_CONTENT_TYPE,
    };
    expect(
        server.signed_with(target, body.as_bytes(), body.as_bytes(), &s),
        400,
        "InvalidSignatureException",
        "not yet current",
    );
    // A region this deployment does not serve.
    let s = Signing {
        creds: &user,
        region: "ap-south-1",
        skew_secs: 0,
        content_type: JSON_CONTENT_TYPE,
    };
    expect(
        server.signed_with(target, body.as_bytes(), body.as_bytes(), &s),
        400,
        "InvalidSignatureException",
        "region",
    );
    // Unknown and deleted access keys.
    let ghost = Creds {
        access_key_id: "AKIAGHOSTGHOSTGHOST1".into(),
        secret: "whatever-secret-value".into(),
    };
    let s = Signing {
        creds: &ghost,
        region: REGION,
        skew_secs: 0,
        content_type: JSON_CONTENT_TYPE,
    };
    expect(
        server.signed_with(target, body.as_bytes(), body.as_bytes(), &s),
        400,
        "UnrecognizedClientException",
        "security token included in the request is invalid",
    );
    let s = Signing {
        creds: &never_used,
        region: REGION,
        skew_secs: 0,
        content_type: JSON_CONTENT_TYPE,
    };
    expect(
        server.signed_with(target, body.as_bytes(), body.as_bytes(), &s),
        400,
        "UnrecognizedClientException",
        "invalid",
    );
    // The secret is never stored in plaintext.
    let db = std::fs::read(dir.data_dir().join("kms-bridge.db")).unwrap();
    // The WAL holds the most recent writes (including the access keys) until a checkpoint.
    let wal = std::fs::read(dir.data_dir().join("kms-bridge.db-wal")).unwrap_or_default();
    assert!(
        db.len() + wal.len() > 4096,
        "the database holds data: the checks below are meaningful"
    );
    for bytes in [&db, &wal] {
        assert!(!bytes
            .windows(user.secret.len())
            .any(|w| w == user.secret.as_bytes()));
        assert!(!bytes
            .windows(SECRET_ACCESS_KEY.len())
            .any(|w| w == SECRET_ACCESS_KEY.as_bytes()));
    }
    assert!(!server.log().contains(&user.secret));
}

#[tokio::test]
async fn grant_delegation_never_widens_and_stays_in_the_account() {
    let dir = TestDir::new();
    let (p_arn, p) = dir.user("delegator");
    let other = dir
        .admin(&[
            "create-user",
            "--name",
            "outsider",
            "--account",
            "444455556666",
        ])
        .trim()
        .to_owned();
    let outsider = Creds::parse(&dir.admin(&["create-access-key", "--principal", &other]));
    dir.attach(
        &other,
        "all",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
    );
    let server = Server::start(&dir, &[]);
    let admin = server.client();
    let key = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    admin
        .create_grant()
        .key_id(&key)
        .grantee_principal(&p_arn)
        .retiring_principal(&p_arn)
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::CreateGrant)
        .constraints(
            GrantConstraints::builder()
                .encryption_context_equals("dept", "fin")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let d = server.client_for(&p);
    // Dropping the parent's constraint would widen the grant.
    assert_code!(
        d.create_grant()
            .key_id(&key)
            .grantee_principal(&p_arn)
            .operations(GrantOperation::Decrypt)
            .send()
            .await,
        "AccessDeniedException"
    );
    // So would an operation the parent grant does not have.
    assert_code!(
        d.create_grant()
            .key_id(&key)
            .grantee_principal(&p_arn)
            .operations(GrantOperation::Encrypt)
            .constraints(
                GrantConstraints::builder()
                    .encryption_context_equals("dept", "fin")
                    .build()
            )
            .send()
            .await,
        "AccessDeniedException"
    );
    d.create_grant()
        .key_id(&key)
        .grantee_principal(&p_arn)
        .operations(GrantOperation::Decrypt)
        .constraints(
            GrantConstraints::builder()
                .encryption_context_equals("dept", "fin")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Another account can neither list nor retire this account's grants.
    let o = server.client_for(&outsider);
    assert_code!(
        o.list_retirable_grants()
            .retiring_principal(&p_arn)
            .send()
            .await,
        "AccessDeniedException"
    );
    let grants = admin.list_grants().key_id(&key).send().await.unwrap();
    let arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}");
    assert_code!(
        o.retire_grant()
            .key_id(&arn)
            .grant_id(grants.grants()[0].grant_id().unwrap())
            .send()
            .await,
        "AccessDeniedException"
    );
    assert_eq!(
        admin
            .list_grants()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .grants()
            .len(),
        2
    );
}

#[tokio::test]
async fn grant_listings_page() {
    let (_d, server) = Server::start_new();
    let admin = server.client();
    let key = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let retiree = "arn:aws:iam::111122223333:user/retiree";
    let mut ids = Vec::new();
    for _ in 0..3 {
        let g = admin
            .create_grant()
            .key_id(&key)
            .grantee_principal("arn:aws:iam::111122223333:user/app")
            .retiring_principal(retiree)
            .operations(GrantOperation::Encrypt)
            .send()
            .await
            .unwrap();
        ids.push(g.grant_id.unwrap());
    }
    ids.sort();
    for retirable in [false, true] {
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let (grants, truncated, next) = if retirable {
                let p = admin
                    .list_retirable_grants()
                    .retiring_principal(retiree)
                    .limit(1)
                    .set_marker(marker.clone())
                    .send()
                    .await
                    .unwrap();
                (
                    p.grants().to_vec(),
                    p.truncated(),
                    p.next_marker().map(str::to_owned),
                )
            } else {
                let p = admin
                    .list_grants()
                    .key_id(&key)
                    .limit(1)
                    .set_marker(marker.clone())
                    .send()
                    .await
                    .unwrap();
                (
                    p.grants().to_vec(),
                    p.truncated(),
                    p.next_marker().map(str::to_owned),
                )
            };
            assert!(grants.len() <= 1);
            seen.extend(
                grants
                    .iter()
                    .filter_map(|g| g.grant_id().map(str::to_owned)),
            );
            if !truncated {
                break;
            }
            marker = next;
        }
        assert_eq!(seen, ids, "retirable={retirable}");
    }
    assert_code!(
        admin.list_grants().key_id(&key).marker("nope").send().await,
        "InvalidMarkerException"
    );
}

#[tokio::test]
async fn resource_tag_and_alias_conditions() {
    let dir = TestDir::new();
    let (arn, user) = dir.user("tagged");
    // Identity policy: everything, except Decrypt on keys tagged classification=secret.
    dir.attach(
        &arn,
        "abac",
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"kms:*","Resource":"*"},
            {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*",
             "Condition":{"StringEquals":{"aws:ResourceTag/classification":"secret"}}}]}"#,
    );
    let server = Server::start(&dir, &[]);
    let admin = server.client();
    let u = server.client_for(&user);
    let key = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let blob = encrypt(&u, &key, &[]).await.unwrap();
    u.decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .send()
        .await
        .unwrap();
    admin
        .tag_resource()
        .key_id(&key)
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("classification")
                .tag_value("secret")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_code!(
        u.decrypt().ciphertext_blob(Blob::new(blob)).send().await,
        "AccessDeniedException"
    );

    // Key policy: the user may Encrypt only while the key carries alias/allowed.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{ROOT_STATEMENT},
        {{"Effect":"Allow","Principal":{{"AWS":"{arn}"}},"Action":"kms:Encrypt","Resource":"*",
          "Condition":{{"ForAnyValue:StringEquals":{{"kms:ResourceAliases":"alias/allowed"}}}}}}]}}"#
    );
    dir.admin(&[
        "delete-identity-policy",
        "--principal",
        &arn,
        "--name",
        "abac",
    ]);
    let k2 = admin
        .create_key()
        .policy(policy)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let mut denied = false;
    for _ in 0..60 {
        // The identity policy above is gone within the cache TTL; then only the key policy counts.
        if matches!(encrypt(&u, &k2, &[]).await, Err(c) if c == "AccessDeniedException") {
            denied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(denied);
    admin
        .create_alias()
        .alias_name("alias/allowed")
        .target_key_id(&k2)
        .send()
        .await
        .unwrap();
    encrypt(&u, &k2, &[]).await.unwrap();
}

/// What the administrator can see of the server's state (compared before and after).
async fn state_snapshot(kms: &Client, keys: &[&str]) -> Vec<String> {
    let mut out = vec![format!("{:?}", listed_key_ids(kms).await)];
    let aliases = kms.list_aliases().send().await.unwrap();
    out.push(format!("{:?}", aliases.aliases()));
    for k in keys {
        let m = describe(kms, k).await;
        out.push(format!(
            "{:?} {:?} {:?} {:?} {:?}",
            m.key_state(),
            m.description(),
            m.deletion_date(),
            m.current_key_material_id(),
            m.multi_region_configuration()
        ));
        let p = kms.get_key_policy().key_id(*k).send().await.unwrap();
        out.push(p.policy().unwrap_or_default().to_owned());
        let t = kms.list_resource_tags().key_id(*k).send().await.unwrap();
        out.push(format!("{:?}", t.tags()));
        let g = kms.list_grants().key_id(*k).send().await.unwrap();
        out.push(format!("{:?}", g.grants()));
        let r = kms.list_key_rotations().key_id(*k).send().await;
        out.push(format!("{:?}", r.map(|r| r.rotations().len()).ok()));
    }
    let stores = kms.describe_custom_key_stores().send().await.unwrap();
    out.push(format!("{:?}", stores.custom_key_stores()));
    out
}

/// Every operation the server answers, called by a principal with no permissions at all, is
/// refused with AccessDeniedException and changes nothing. The list comes from the server's
/// own operation table: a new operation fails here until it has a request below — and is
/// authorized.
#[tokio::test]
async fn every_operation_refuses_an_unprivileged_caller() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    use base64::Engine;
    const CLUSTER: &str = "cluster-abcdefghijk";
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let dir = TestDir::new();
    dir.add_token(CLUSTER, "store-pin-1234");
    let server = Server::start(&dir, &[]);
    let (_, nobody) = dir.user("nobody");
    let kms = server.client();
    let key = new_symmetric_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/k")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let sign = new_key(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let hmac = new_key(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let agree = new_key(&kms, KeySpec::EccNistP256, KeyUsageType::KeyAgreement).await;
    let external = new_external_key(&kms).await;
    let mrk = created(kms.create_key().multi_region(true)).await;
    let grant = kms
        .create_grant()
        .key_id(&key)
        .grantee_principal(format!("arn:aws:iam::{ACCOUNT}:user/somebody"))
        .operations(GrantOperation::Encrypt)
        .send()
        .await
        .unwrap()
        .grant_id
        .unwrap();
    let blob = encrypt_blob(&kms, &key, b"x").await;
    let peer = kms
        .get_public_key()
        .key_id(&agree)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap();
    let store = kms
        .create_custom_key_store()
        .custom_key_store_name("store")
        .cloud_hsm_cluster_id(CLUSTER)
        .trust_anchor_certificate("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        .key_store_password("store-pin-1234")
        .send()
        .await
        .unwrap()
        .custom_key_store_id
        .unwrap();
    let ct = b64(&blob);
    let m = b64(b"message");
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    let body = |op: &str| -> Option<serde_json::Value> {
        use serde_json::json;
        Some(match op {
            "CreateKey" => json!({}),
            "DescribeKey"
            | "EnableKey"
            | "DisableKey"
            | "CancelKeyDeletion"
            | "ListResourceTags"
            | "ListKeyPolicies"
            | "EnableKeyRotation"
            | "DisableKeyRotation"
            | "GetKeyRotationStatus"
            | "RotateKeyOnDemand"
            | "ListKeyRotations"
            | "ListGrants"
            | "GetKeyLastUsage" => json!({"KeyId": key}),
            "ListKeys" | "ListAliases" | "DescribeCustomKeyStores" => json!({}),
            "ScheduleKeyDeletion" => json!({"KeyId": key, "PendingWindowInDays": 7}),
            "UpdateKeyDescription" => json!({"KeyId": key, "Description": "changed"}),
            "CreateAlias" => json!({"AliasName": "alias/new", "TargetKeyId": key}),
            "UpdateAlias" => json!({"AliasName": "alias/k", "TargetKeyId": sign}),
            "DeleteAlias" => json!({"AliasName": "alias/k"}),
            "TagResource" => json!({"KeyId": key, "Tags": [{"TagKey": "a", "TagValue": "b"}]}),
            "UntagResource" => json!({"KeyId": key, "TagKeys": ["a"]}),
            "GetKeyPolicy" => json!({"KeyId": key, "PolicyName": "default"}),
            "PutKeyPolicy" => json!({"KeyId": key, "PolicyName": "default", "Policy": policy}),
            "Encrypt" => json!({"KeyId": key, "Plaintext": m}),
            "Decrypt" => json!({"CiphertextBlob": ct}),
            "ReEncrypt" => json!({"CiphertextBlob": ct, "DestinationKeyId": key}),
            "GenerateDataKey" | "GenerateDataKeyWithoutPlaintext" => {
                json!({"KeyId": key, "KeySpec": "AES_256"})
            }
            "GenerateRandom" => json!({"NumberOfBytes": 16}),
            "CreateGrant" => {
                json!({"KeyId": key, "GranteePrincipal": format!("arn:aws:iam::{ACCOUNT}:user/nobody"), "Operations": ["Encrypt"]})
            }
            "ListRetirableGrants" => {
                json!({"RetiringPrincipal": format!("arn:aws:iam::{ACCOUNT}:user/somebody")})
            }
            "RetireGrant" | "RevokeGrant" => json!({"KeyId": key, "GrantId": grant}),
            "CreateCustomKeyStore" => {
                json!({"CustomKeyStoreName": "other", "CloudHsmClusterId": "cluster-zzzzzzzzzzz", "TrustAnchorCertificate": "x", "KeyStorePassword": "password-1"})
            }
            "ConnectCustomKeyStore" | "DisconnectCustomKeyStore" | "DeleteCustomKeyStore" => {
                json!({"CustomKeyStoreId": store})
            }
            "UpdateCustomKeyStore" => {
                json!({"CustomKeyStoreId": store, "NewCustomKeyStoreName": "renamed"})
            }
            "Sign" => json!({"KeyId": sign, "Message": m, "SigningAlgorithm": "ECDSA_SHA_256"}),
            "Verify" => {
                json!({"KeyId": sign, "Message": m, "Signature": m, "SigningAlgorithm": "ECDSA_SHA_256"})
            }
            "GetPublicKey" => json!({"KeyId": sign}),
            "GenerateMac" => json!({"KeyId": hmac, "Message": m, "MacAlgorithm": "HMAC_SHA_256"}),
            "VerifyMac" => {
                json!({"KeyId": hmac, "Message": m, "Mac": m, "MacAlgorithm": "HMAC_SHA_256"})
            }
            "DeriveSharedSecret" => {
                json!({"KeyId": agree, "KeyAgreementAlgorithm": "ECDH", "PublicKey": b64(peer.as_ref())})
            }
            "GenerateDataKeyPair" | "GenerateDataKeyPairWithoutPlaintext" => {
                json!({"KeyId": key, "KeyPairSpec": "ECC_NIST_P256"})
            }
            "GetParametersForImport" => {
                json!({"KeyId": external, "WrappingAlgorithm": "RSAES_OAEP_SHA_1", "WrappingKeySpec": "RSA_2048"})
            }
            "ImportKeyMaterial" => {
                json!({"KeyId": external, "ImportToken": m, "EncryptedKeyMaterial": m, "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"})
            }
            "DeleteImportedKeyMaterial" => json!({"KeyId": external}),
            // Authorization comes before the key's usage is looked at.
            "Encapsulate" => json!({"KeyId": key, "EncapsulationAlgorithm": "ML_KEM"}),
            "Decapsulate" => {
                json!({"KeyId": key, "EncapsulationAlgorithm": "ML_KEM", "SharedSecretCiphertextBlob": m})
            }
            "ReplicateKey" => json!({"KeyId": mrk, "ReplicaRegion": OTHER_REGION}),
            "UpdatePrimaryRegion" => json!({"KeyId": mrk, "PrimaryRegion": OTHER_REGION}),
            _ => return None,
        })
    };
    let keys = [
        key.as_str(),
        sign.as_str(),
        hmac.as_str(),
        agree.as_str(),
        external.as_str(),
        mrk.as_str(),
    ];
    let before = state_snapshot(&kms, &keys).await;
    let signing = Signing {
        creds: &nobody,
        ..Signing::default()
    };
    let names = kms_bridge::api::operation_names();
    assert!(names.len() >= 56, "{names:?}");
    let mut wrong = Vec::new();
    for op in names {
        let Some(b) = body(op) else {
            panic!("no unprivileged request for {op}: add one here (and authorize {op})");
        };
        let text = b.to_string();
        let r = server.signed_with(
            &format!("TrentService.{op}"),
            text.as_bytes(),
            text.as_bytes(),
            &signing,
        );
        if r.status != 400 || r.error_type() != "AccessDeniedException" {
            wrong.push(format!("{op}: {} {}", r.status, r.body));
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as AccessDeniedException:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        state_snapshot(&kms, &keys).await,
        before,
        "an unprivileged call changed state"
    );
}
