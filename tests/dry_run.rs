//! `DryRun`: the call is authenticated, validated and authorized, then answered with
//! DryRunOperationException (HTTP 400, as AWS answers) instead of being carried out.

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    GrantOperation, KeySpec, KeyUsageType, MacAlgorithmSpec, SigningAlgorithmSpec,
};

fn status<E>(
    r: &Result<
        impl Sized,
        aws_sdk_kms::error::SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
    >,
) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
    }
}

#[tokio::test]
async fn dry_run_authorizes_without_acting() {
    let (dir, server) = Server::start_new();
    let kms = server.client();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let blob = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"secret".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();

    // Allowed: DryRunOperationException with HTTP 400 (AWS's status; the model says 412), and no
    // ciphertext or plaintext comes back.
    let r = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .dry_run(true)
        .send()
        .await;
    assert_eq!(status(&r), 400);
    assert_code!(r, "DryRunOperationException");
    assert_code!(
        kms.decrypt()
            .ciphertext_blob(blob.clone())
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );
    assert_code!(
        kms.re_encrypt()
            .ciphertext_blob(blob.clone())
            .destination_key_id(&key)
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );
    assert_code!(
        kms.generate_data_key()
            .key_id(&key)
            .number_of_bytes(32)
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );
    // DryRun false is an ordinary call.
    assert!(kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"x".to_vec()))
        .dry_run(false)
        .send()
        .await
        .is_ok());

    // Validation and ciphertext errors come first, as for a real call.
    assert_code!(
        kms.decrypt()
            .ciphertext_blob(Blob::new(vec![1u8; 80]))
            .dry_run(true)
            .send()
            .await,
        "InvalidCiphertextException"
    );
    assert_code!(
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(vec![0u8; 4097]))
            .dry_run(true)
            .send()
            .await,
        "ValidationException"
    );

    // Signing and MAC keys.
    let ecc = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    assert_code!(
        kms.sign()
            .key_id(&ecc)
            .message(Blob::new(b"m".to_vec()))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );
    let hmac = kms
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    assert_code!(
        kms.generate_mac()
            .key_id(&hmac)
            .message(Blob::new(b"m".to_vec()))
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );

    // Grants: a dry run creates, retires and revokes nothing.
    let (user_arn, user) = dir.user("grantee");
    assert_code!(
        kms.create_grant()
            .key_id(&key)
            .grantee_principal(&user_arn)
            .operations(GrantOperation::Encrypt)
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );
    let grants = |kms: aws_sdk_kms::Client, key: String| async move {
        kms.list_grants()
            .key_id(key)
            .send()
            .await
            .unwrap()
            .grants
            .unwrap_or_default()
            .len()
    };
    assert_eq!(grants(kms.clone(), key.clone()).await, 0);
    let g = kms
        .create_grant()
        .key_id(&key)
        .grantee_principal(&user_arn)
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::RetireGrant)
        .send()
        .await
        .unwrap();
    let grant_id = g.grant_id.unwrap();
    assert_code!(
        kms.revoke_grant()
            .key_id(&key)
            .grant_id(&grant_id)
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );
    let as_user = server.client_for(&user);
    assert_code!(
        as_user
            .retire_grant()
            .grant_token(g.grant_token.unwrap())
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );
    assert_eq!(grants(kms.clone(), key.clone()).await, 1);

    // ReEncrypt needs both of its permissions, dry or not.
    let (half_arn, half) = dir.user("reencrypt-to-only");
    dir.attach(
        &half_arn,
        "to-only",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:ReEncryptTo","Resource":"*"}]}"#,
    );
    assert_code!(
        server
            .client_for(&half)
            .re_encrypt()
            .ciphertext_blob(blob.clone())
            .destination_key_id(&key)
            .dry_run(true)
            .send()
            .await,
        "AccessDeniedException"
    );
    let (full_arn, full) = dir.user("reencrypt-both");
    dir.attach(
        &full_arn,
        "both",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:ReEncryptFrom","kms:ReEncryptTo"],"Resource":"*"}]}"#,
    );
    assert_code!(
        server
            .client_for(&full)
            .re_encrypt()
            .ciphertext_blob(blob.clone())
            .destination_key_id(&key)
            .dry_run(true)
            .send()
            .await,
        "DryRunOperationException"
    );

    // Not allowed: the error the real call would get.
    let (_, stranger) = dir.user("stranger");
    assert_code!(
        server
            .client_for(&stranger)
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .dry_run(true)
            .send()
            .await,
        "AccessDeniedException"
    );
    server.stop();
}
