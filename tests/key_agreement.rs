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

/// ML-KEM keys (ENCAPSULATE_DECAPSULATE; where the token has ML-KEM: Kryoptic): Encapsulate and
/// Decapsulate agree, and so does an outside party (RustCrypto ml-kem) that encapsulates to
/// the public key from GetPublicKey. Refused up front on a token without ML-KEM.
#[tokio::test]
async fn ml_kem_keys_share_secrets_with_an_outside_party() {
    use aws_sdk_kms::types::EncapsulationAlgorithmSpec as Alg;
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let specs = [KeySpec::MlKem512, KeySpec::MlKem768, KeySpec::MlKem1024];
    if !token_has_post_quantum() {
        for spec in specs {
            assert_spec_unsupported(
                kms.create_key()
                    .key_usage(KeyUsageType::EncapsulateDecapsulate),
                &spec,
            )
            .await;
        }
        return;
    }
    for spec in specs {
        let meta = created_metadata(
            kms.create_key()
                .key_spec(spec.clone())
                .key_usage(KeyUsageType::EncapsulateDecapsulate),
        )
        .await;
        assert_eq!(meta.encapsulation_algorithms(), [Alg::MlKem]);
        let key = meta.key_id;
        let e = kms
            .encapsulate()
            .key_id(&key)
            .encapsulation_algorithm(Alg::MlKem)
            .send()
            .await
            .unwrap();
        assert_eq!(e.key_id.as_deref(), meta.arn.as_deref());
        let secret = e.shared_secret.unwrap().into_inner();
        let ct = e.shared_secret_ciphertext_blob.unwrap().into_inner();
        assert_eq!(secret.len(), 32);
        let decapsulate = |ct: Vec<u8>| {
            kms.decapsulate()
                .key_id(&key)
                .encapsulation_algorithm(Alg::MlKem)
                .shared_secret_ciphertext_blob(Blob::new(ct))
                .send()
        };
        let back = decapsulate(ct.clone())
            .await
            .unwrap()
            .shared_secret
            .unwrap()
            .into_inner();
        assert_eq!(back, secret);

        // The outside party: encapsulate to the public key, KMS decapsulates the same secret.
        let spki = kms.get_public_key().key_id(&key).send().await.unwrap();
        assert_eq!(spki.encapsulation_algorithms(), [Alg::MlKem]);
        let spki = spki.public_key.unwrap().into_inner();
        let (outside_ct, outside_secret) = outside_encapsulate(&spec, &spki);
        assert_eq!(outside_ct.len(), ct.len());
        let back = decapsulate(outside_ct.clone())
            .await
            .unwrap()
            .shared_secret
            .unwrap()
            .into_inner();
        assert_eq!(
            back, outside_secret,
            "{spec:?}: KMS and the outside party disagree"
        );

        // A changed ciphertext decapsulates to another secret (implicit rejection); one of
        // another length is invalid.
        let mut changed = outside_ct.clone();
        changed[0] ^= 1;
        let other = decapsulate(changed)
            .await
            .unwrap()
            .shared_secret
            .unwrap()
            .into_inner();
        assert_ne!(other, outside_secret);
        assert_code!(
            decapsulate(outside_ct[1..].to_vec()).await,
            "InvalidCiphertextException"
        );
    }
    // An ML-KEM operation on another kind of key.
    let symmetric = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    assert_code!(
        kms.encapsulate()
            .key_id(&symmetric.key_id)
            .encapsulation_algorithm(Alg::MlKem)
            .send()
            .await,
        "InvalidKeyUsageException"
    );
}

/// ML-KEM encapsulation outside the token, to the encapsulation key in `spki`.
fn outside_encapsulate(spec: &KeySpec, spki: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use spki::der::Decode;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki).expect("SubjectPublicKeyInfo");
    let raw = info.subject_public_key.raw_bytes();
    let m: [u8; 32] = rand::random();
    macro_rules! encapsulate {
        ($params:ty) => {{
            let key = ml_kem::array::Array::try_from(raw).expect("encapsulation key length");
            let ek = ml_kem::EncapsulationKey::<$params>::new(&key).expect("encapsulation key");
            let (ct, secret) = ek.encapsulate_deterministic(&m.into());
            (ct.to_vec(), secret.to_vec())
        }};
    }
    match spec {
        KeySpec::MlKem512 => encapsulate!(ml_kem::MlKem512),
        KeySpec::MlKem768 => encapsulate!(ml_kem::MlKem768),
        KeySpec::MlKem1024 => encapsulate!(ml_kem::MlKem1024),
        other => panic!("{other:?}"),
    }
}
