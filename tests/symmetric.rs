//! Encrypt / Decrypt / ReEncrypt / GenerateDataKey* / GenerateRandom through the AWS SDK.

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, EncryptionAlgorithmSpec};
use aws_sdk_kms::Client;

async fn new_key(kms: &Client) -> (String, String) {
    let m = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    (m.key_id, m.arn.unwrap())
}

async fn encrypt(kms: &Client, key: &str, pt: &[u8], ctx: &[(&str, &str)]) -> Vec<u8> {
    let mut req = kms.encrypt().key_id(key).plaintext(Blob::new(pt.to_vec()));
    for (k, v) in ctx {
        req = req.encryption_context(*k, *v);
    }
    req.send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner()
}

fn decrypt_req(
    kms: &Client,
    blob: &[u8],
    ctx: &[(&str, &str)],
) -> aws_sdk_kms::operation::decrypt::builders::DecryptFluentBuilder {
    let mut req = kms.decrypt().ciphertext_blob(Blob::new(blob.to_vec()));
    for (k, v) in ctx {
        req = req.encryption_context(*k, *v);
    }
    req
}

#[tokio::test]
async fn round_trip_with_every_key_id_form() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (id, arn) = new_key(&kms).await;
    kms.create_alias()
        .alias_name("alias/app")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    let alias_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/app");
    let ctx = [("purpose", "test"), ("tenant", "42")];
    for form in [id.as_str(), arn.as_str(), "alias/app", alias_arn.as_str()] {
        let out = kms
            .encrypt()
            .key_id(form)
            .plaintext(Blob::new(b"secret data".to_vec()))
            .encryption_context("purpose", "test")
            .encryption_context("tenant", "42")
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.key_id(),
            Some(arn.as_str()),
            "response KeyId is the key ARN"
        );
        assert_eq!(
            out.encryption_algorithm(),
            Some(&EncryptionAlgorithmSpec::SymmetricDefault)
        );
        let blob = out.ciphertext_blob.unwrap().into_inner();
        // KeyId is optional on Decrypt; when given in any form it must name the same key.
        for named in [None, Some(form)] {
            let d = decrypt_req(&kms, &blob, &ctx)
                .set_key_id(named.map(str::to_owned))
                .send()
                .await
                .unwrap();
            assert_eq!(d.plaintext().unwrap().as_ref(), b"secret data");
            assert_eq!(d.key_id(), Some(arn.as_str()));
            let mid = d.key_material_id().unwrap();
            assert_eq!(mid.len(), 64);
            assert!(mid.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
    // Same plaintext twice gives different blobs (fresh IV).
    let a = encrypt(&kms, &id, b"x", &[]).await;
    let b = encrypt(&kms, &id, b"x", &[]).await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn plaintext_size_limits() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (id, _) = new_key(&kms).await;
    for n in [1usize, 4096] {
        let pt = vec![0xa5u8; n];
        let blob = encrypt(&kms, &id, &pt, &[]).await;
        assert!(blob.len() <= 6144);
        let d = decrypt_req(&kms, &blob, &[]).send().await.unwrap();
        assert_eq!(d.plaintext().unwrap().as_ref(), &pt[..]);
    }
    assert_code!(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(vec![0u8; 4097]))
            .send()
            .await,
        "ValidationException"
    );
    assert_code!(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(Vec::new()))
            .send()
            .await,
        "ValidationException"
    );
}

#[tokio::test]
async fn encryption_context_is_bound() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (id, _) = new_key(&kms).await;
    let blob = encrypt(
        &kms,
        &id,
        b"payload",
        &[("dept", "finance"), ("app", "ledger")],
    )
    .await;
    // Order does not matter.
    let ok = decrypt_req(&kms, &blob, &[("app", "ledger"), ("dept", "finance")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.plaintext().unwrap().as_ref(), b"payload");
    let wrong: [&[(&str, &str)]; 5] = [
        &[],
        &[("dept", "finance")],
        &[("dept", "Finance"), ("app", "ledger")],
        &[("dept", "finance"), ("app", "ledger"), ("x", "y")],
        &[("DEPT", "finance"), ("app", "ledger")],
    ];
    for ctx in wrong {
        assert_code!(
            decrypt_req(&kms, &blob, ctx).send().await,
            "InvalidCiphertextException"
        );
    }
    // A blob made without context does not open with one.
    let plain = encrypt(&kms, &id, b"payload", &[]).await;
    assert_code!(
        decrypt_req(&kms, &plain, &[("a", "b")]).send().await,
        "InvalidCiphertextException"
    );
}

#[tokio::test]
async fn every_altered_byte_is_rejected() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (id, _) = new_key(&kms).await;
    let blob = encrypt(&kms, &id, b"sixteen byte msg", &[("k", "v")]).await;
    for i in 0..blob.len() {
        let mut t = blob.clone();
        t[i] ^= 0x01;
        assert_code!(
            decrypt_req(&kms, &t, &[("k", "v")]).send().await,
            "InvalidCiphertextException"
        );
    }
    for cut in [1, 16, blob.len() - 1] {
        assert_code!(
            decrypt_req(&kms, &blob[..blob.len() - cut], &[("k", "v")])
                .send()
                .await,
            "InvalidCiphertextException"
        );
    }
    assert_code!(
        decrypt_req(&kms, b"not a kms-bridge blob at all, really", &[])
            .send()
            .await,
        "InvalidCiphertextException"
    );
}

#[tokio::test]
async fn blob_for_another_key() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (a, _) = new_key(&kms).await;
    let (b, _) = new_key(&kms).await;
    let blob = encrypt(&kms, &a, b"for a", &[]).await;
    assert_code!(
        decrypt_req(&kms, &blob, &[]).key_id(&b).send().await,
        "IncorrectKeyException"
    );
    assert_code!(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .source_key_id(&b)
            .destination_key_id(&b)
            .send()
            .await,
        "IncorrectKeyException"
    );
}

#[tokio::test]
async fn key_state_gates_crypto() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (id, _) = new_key(&kms).await;
    let blob = encrypt(&kms, &id, b"data", &[]).await;

    kms.disable_key().key_id(&id).send().await.unwrap();
    assert_code!(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "DisabledException"
    );
    assert_code!(
        decrypt_req(&kms, &blob, &[]).send().await,
        "DisabledException"
    );
    assert_code!(
        kms.generate_data_key()
            .key_id(&id)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await,
        "DisabledException"
    );
    kms.enable_key().key_id(&id).send().await.unwrap();
    decrypt_req(&kms, &blob, &[]).send().await.unwrap();

    kms.schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "KMSInvalidStateException"
    );
    assert_code!(
        decrypt_req(&kms, &blob, &[]).send().await,
        "KMSInvalidStateException"
    );
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert_code!(
        decrypt_req(&kms, &blob, &[]).send().await,
        "DisabledException"
    );
    kms.enable_key().key_id(&id).send().await.unwrap();
    let d = decrypt_req(&kms, &blob, &[]).send().await.unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"data");
}

#[tokio::test]
async fn unknown_and_malformed_keys() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (id, _) = new_key(&kms).await;
    let other_region_arn = format!("arn:aws:kms:{OTHER_REGION}:{ACCOUNT}:key/{id}");
    let other_account_arn = format!("arn:aws:kms:{REGION}:999999999999:key/{id}");
    for bad in [
        "00000000-0000-4000-8000-000000000000",
        "alias/missing",
        "not-a-key",
        other_region_arn.as_str(),
        other_account_arn.as_str(),
        "arn:aws:kms:us-east-1:111122223333:key/garbage",
    ] {
        assert_code!(
            kms.encrypt()
                .key_id(bad)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await,
            "NotFoundException"
        );
        assert_code!(
            kms.describe_key().key_id(bad).send().await,
            "NotFoundException"
        );
    }
}

#[tokio::test]
async fn keys_are_regional() {
    let (_d, server) = Server::start_new();
    let east = server.client();
    let west = server.client_in(OTHER_REGION);
    let (id, arn) = new_key(&east).await;
    assert!(arn.contains(&format!(":{REGION}:")));
    let blob = encrypt(&east, &id, b"regional", &[]).await;
    assert_code!(
        west.describe_key().key_id(&id).send().await,
        "NotFoundException"
    );
    assert_code!(
        decrypt_req(&west, &blob, &[]).send().await,
        "InvalidCiphertextException"
    );
    let (wid, warn) = new_key(&west).await;
    assert!(warn.contains(&format!(":{OTHER_REGION}:")));
    let listed: Vec<String> = east
        .list_keys()
        .send()
        .await
        .unwrap()
        .keys()
        .iter()
        .filter_map(|k| k.key_id().map(str::to_owned))
        .collect();
    assert_eq!(listed, vec![id.clone()]);
    assert!(!listed.contains(&wid));
}

#[tokio::test]
async fn re_encrypt_moves_between_keys_and_contexts() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (a, a_arn) = new_key(&kms).await;
    let (b, b_arn) = new_key(&kms).await;
    let blob = encrypt(&kms, &a, b"move me", &[("from", "a")]).await;
    let out = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .source_encryption_context("from", "a")
        .destination_key_id(&b)
        .destination_encryption_context("to", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(out.source_key_id(), Some(a_arn.as_str()));
    assert_eq!(out.key_id(), Some(b_arn.as_str()));
    assert_eq!(out.source_key_material_id().map(str::len), Some(64));
    assert_eq!(out.destination_key_material_id().map(str::len), Some(64));
    let new_blob = out.ciphertext_blob.unwrap().into_inner();
    let d = decrypt_req(&kms, &new_blob, &[("to", "b")])
        .send()
        .await
        .unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"move me");
    assert_eq!(d.key_id(), Some(b_arn.as_str()));
    // Wrong source context.
    assert_code!(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .destination_key_id(&b)
            .send()
            .await,
        "InvalidCiphertextException"
    );
    // Disabled destination.
    kms.disable_key().key_id(&b).send().await.unwrap();
    assert_code!(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob))
            .source_encryption_context("from", "a")
            .destination_key_id(&b)
            .send()
            .await,
        "DisabledException"
    );
}

#[tokio::test]
async fn generate_data_keys() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (id, arn) = new_key(&kms).await;
    for (spec, len) in [(DataKeySpec::Aes256, 32usize), (DataKeySpec::Aes128, 16)] {
        let dk = kms
            .generate_data_key()
            .key_id(&id)
            .key_spec(spec)
            .encryption_context("use", "envelope")
            .send()
            .await
            .unwrap();
        assert_eq!(dk.key_id(), Some(arn.as_str()));
        assert_eq!(dk.key_material_id().map(str::len), Some(64));
        let pt = dk.plaintext().unwrap().as_ref().to_vec();
        assert_eq!(pt.len(), len);
        let d = decrypt_req(
            &kms,
            dk.ciphertext_blob().unwrap().as_ref(),
            &[("use", "envelope")],
        )
        .send()
        .await
        .unwrap();
        assert_eq!(d.plaintext().unwrap().as_ref(), &pt[..]);
    }
    for n in [1, 1024] {
        let dk = kms
            .generate_data_key()
            .key_id(&id)
            .number_of_bytes(n)
            .send()
            .await
            .unwrap();
        assert_eq!(dk.plaintext().unwrap().as_ref().len(), n as usize);
    }
    for n in [0, 1025, -1] {
        assert_code!(
            kms.generate_data_key()
                .key_id(&id)
                .number_of_bytes(n)
                .send()
                .await,
            "ValidationException"
        );
    }
    assert_code!(
        kms.generate_data_key().key_id(&id).send().await,
        "ValidationException"
    );
    assert_code!(
        kms.generate_data_key()
            .key_id(&id)
            .key_spec(DataKeySpec::Aes256)
            .number_of_bytes(32)
            .send()
            .await,
        "ValidationException"
    );
    let np = kms
        .generate_data_key_without_plaintext()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(np.key_id(), Some(arn.as_str()));
    let blob = np.ciphertext_blob().unwrap().as_ref().to_vec();
    let d = decrypt_req(&kms, &blob, &[]).send().await.unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref().len(), 32);
}

#[tokio::test]
async fn generate_random() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let a = kms
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    let b = kms
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    assert_eq!(a.plaintext().unwrap().as_ref().len(), 32);
    assert_ne!(
        a.plaintext().unwrap().as_ref(),
        b.plaintext().unwrap().as_ref()
    );
    for n in [1, 1024] {
        let r = kms
            .generate_random()
            .number_of_bytes(n)
            .send()
            .await
            .unwrap();
        assert_eq!(r.plaintext().unwrap().as_ref().len(), n as usize);
    }
    for n in [0, 1025] {
        assert_code!(
            kms.generate_random().number_of_bytes(n).send().await,
            "ValidationException"
        );
    }
    assert_code!(kms.generate_random().send().await, "ValidationException");
}

#[tokio::test]
async fn wrong_algorithm_for_symmetric_key() {
    let (_d, server) = Server::start_new();
    let kms = server.client();
    let (id, _) = new_key(&kms).await;
    assert_code!(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(b"x".to_vec()))
            .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            .send()
            .await,
        "InvalidKeyUsageException"
    );
}
