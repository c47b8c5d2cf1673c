//! KEY_AGREEMENT keys and DeriveSharedSecret (ECDH in the token), checked against an ECDH
//! computed independently (RustCrypto p256/p384) with the key's public key from GetPublicKey.

mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyAgreementAlgorithmSpec, KeySpec, KeyUsageType};
use common::*;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};

async fn agreement_key(kms: &aws_sdk_kms::Client, spec: KeySpec) -> String {
    kms.create_key()
        .key_spec(spec)
        .key_usage(KeyUsageType::KeyAgreement)
        .send()
        .await
        .expect("CreateKey KEY_AGREEMENT")
        .key_metadata
        .unwrap()
        .key_id
}

async fn derive(kms: &aws_sdk_kms::Client, key: &str, peer_spki: Vec<u8>) -> Vec<u8> {
    let out = kms
        .derive_shared_secret()
        .key_id(key)
        .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
        .public_key(Blob::new(peer_spki))
        .send()
        .await
        .expect("DeriveSharedSecret");
    assert_eq!(
        out.key_agreement_algorithm(),
        Some(&KeyAgreementAlgorithmSpec::Ecdh)
    );
    assert!(out.key_id().unwrap().starts_with("arn:aws:kms:"));
    out.shared_secret.unwrap().into_inner()
}

#[tokio::test]
async fn derive_shared_secret_matches_an_independent_ecdh() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();

    // P-256
    let key = agreement_key(&kms, KeySpec::EccNistP256).await;
    let d = kms.describe_key().key_id(&key).send().await.unwrap();
    let meta = d.key_metadata.unwrap();
    assert_eq!(meta.key_usage, Some(KeyUsageType::KeyAgreement));
    assert_eq!(
        meta.key_agreement_algorithms(),
        &[KeyAgreementAlgorithmSpec::Ecdh]
    );
    let kms_public = kms.get_public_key().key_id(&key).send().await.unwrap();
    let kms_public =
        p256::PublicKey::from_public_key_der(kms_public.public_key.unwrap().as_ref()).unwrap();
    let mine = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
    let my_spki = mine
        .public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let expected = mine.diffie_hellman(&kms_public);
    let got = derive(&kms, &key, my_spki.clone()).await;
    assert_eq!(got.as_slice(), expected.raw_secret_bytes().as_slice());
    // Deterministic for the same peer key.
    assert_eq!(derive(&kms, &key, my_spki).await, got);

    // P-384
    let key384 = agreement_key(&kms, KeySpec::EccNistP384).await;
    let pk = kms.get_public_key().key_id(&key384).send().await.unwrap();
    let kms_public = p384::PublicKey::from_public_key_der(pk.public_key.unwrap().as_ref()).unwrap();
    let mine = p384::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng);
    let spki = p384::pkcs8::EncodePublicKey::to_public_key_der(&mine.public_key())
        .unwrap()
        .as_bytes()
        .to_vec();
    let got = derive(&kms, &key384, spki).await;
    assert_eq!(
        got.as_slice(),
        mine.diffie_hellman(&kms_public)
            .raw_secret_bytes()
            .as_slice()
    );

    // A peer key of another curve, or not a key at all: refused, nothing derived.
    let p256_peer = p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng)
        .public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    // AWS answers these with a ValidationException without a message (as recorded against
    // AWS in LocalStack's snapshots).
    for bad in [p256_peer, b"not a key".to_vec()] {
        let err = kms
            .derive_shared_secret()
            .key_id(&key384)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(bad))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(&err),
            ("ValidationException".to_owned(), None)
        );
    }

    // Another key usage: AWS's InvalidKeyUsageException text.
    let signing = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let err = kms
        .derive_shared_secret()
        .key_id(signing.key_id())
        .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
        .public_key(Blob::new(mine_spki_p256()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidKeyUsageException");
    assert_eq!(
        aws_sdk_kms::error::ProvideErrorMetadata::message(&err.into_service_error()),
        Some(
            format!(
                "{} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.",
                signing.arn().unwrap()
            )
            .as_str()
        )
    );
    // secp256k1 has no key agreement in AWS KMS.
    let err = kms
        .create_key()
        .key_spec(KeySpec::EccSecgP256K1)
        .key_usage(KeyUsageType::KeyAgreement)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    // A key agreement key does not sign.
    assert_code!(
        kms.sign()
            .key_id(&key)
            .message(Blob::new(b"m".to_vec()))
            .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await,
        "InvalidKeyUsageException"
    );
}

fn mine_spki_p256() -> Vec<u8> {
    p256::ecdh::EphemeralSecret::random(&mut rand::rngs::OsRng)
        .public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec()
}
