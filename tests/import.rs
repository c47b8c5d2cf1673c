//! Bring your own key through the AWS SDK: GetParametersForImport → wrap on the client →
//! ImportKeyMaterial, with the material unwrapped inside the token; proof that the imported
//! bytes are the key in use (symmetric, HMAC, and RSA/EC private keys as PKCS#8); every import
//! error; expiry by the scheduler.

mod common;
use common::*;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, KeyState, OriginType, WrappingKeySpec,
};
use rsa::pkcs8::DecodePublicKey;

const DAY: i64 = 86_400;

struct Params {
    public_key: Vec<u8>,
    token: Vec<u8>,
}

async fn create_external(kms: &aws_sdk_kms::Client) -> String {
    let md = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.origin, Some(OriginType::External));
    assert_eq!(md.key_state, Some(KeyState::PendingImport));
    assert!(!md.enabled);
    md.key_id
}

async fn params(kms: &aws_sdk_kms::Client, key: &str, alg: AlgorithmSpec) -> Params {
    params_with(kms, key, alg, WrappingKeySpec::Rsa2048).await
}

async fn params_with(
    kms: &aws_sdk_kms::Client,
    key: &str,
    alg: AlgorithmSpec,
    spec: WrappingKeySpec,
) -> Params {
    let p = kms
        .get_parameters_for_import()
        .key_id(key)
        .wrapping_algorithm(alg)
        .wrapping_key_spec(spec)
        .send()
        .await
        .unwrap();
    assert!(p.key_id.unwrap().ends_with(key));
    let valid_to = p.parameters_valid_to.unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // 24 hours (later when the test has moved the lifecycle clock).
    assert!(valid_to - now >= DAY - 120, "valid 24 h");
    Params {
        public_key: p.public_key.unwrap().into_inner(),
        token: p.import_token.unwrap().into_inner(),
    }
}

/// RSA-OAEP with digest `D` (and MGF1 of it), as AWS's RSAES_OAEP_SHA_* wrap material.
fn oaep_with<D>(public_der: &[u8], material: &[u8]) -> Vec<u8>
where
    D: 'static + sha2::Digest + sha2::digest::DynDigest + Send + Sync,
{
    let pk = rsa::RsaPublicKey::from_public_key_der(public_der).expect("SPKI RSA key");
    pk.encrypt(&mut rand::rngs::OsRng, rsa::Oaep::new::<D>(), material)
        .unwrap()
}

fn oaep_sha1(public_der: &[u8], material: &[u8]) -> Vec<u8> {
    oaep_with::<sha1::Sha1>(public_der, material)
}

fn oaep_sha256(public_der: &[u8], material: &[u8]) -> Vec<u8> {
    oaep_with::<sha2::Sha256>(public_der, material)
}

/// RSA_AES_KEY_WRAP_SHA_*: an ephemeral AES-256 key under RSA-OAEP (`oaep`), then the
/// material under it with AES key wrap with padding.
fn rsa_aes_kwp_with(
    oaep: fn(&[u8], &[u8]) -> Vec<u8>,
    public_der: &[u8],
    material: &[u8],
) -> Vec<u8> {
    let ephemeral: [u8; 32] = rand::random();
    let mut out = oaep(public_der, &ephemeral);
    let kek = aes_kw::KekAes256::from(ephemeral);
    out.extend(kek.wrap_with_padding_vec(material).unwrap());
    out
}

fn rsa_aes_kwp_sha1(public_der: &[u8], material: &[u8]) -> Vec<u8> {
    rsa_aes_kwp_with(oaep_sha1, public_der, material)
}

fn rsa_aes_kwp_sha256(public_der: &[u8], material: &[u8]) -> Vec<u8> {
    rsa_aes_kwp_with(oaep_sha256, public_der, material)
}

async fn import(
    kms: &aws_sdk_kms::Client,
    key: &str,
    p: &Params,
    wrapped: Vec<u8>,
) -> Result<
    aws_sdk_kms::operation::import_key_material::ImportKeyMaterialOutput,
    aws_sdk_kms::error::SdkError<
        aws_sdk_kms::operation::import_key_material::ImportKeyMaterialError,
    >,
> {
    kms.import_key_material()
        .key_id(key)
        .import_token(Blob::new(p.token.clone()))
        .encrypted_key_material(Blob::new(wrapped))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
}

/// The key encrypts `plaintext` with `material` (its ciphertext opens with it here); the blob.
async fn encrypts_with(
    kms: &aws_sdk_kms::Client,
    key: &str,
    material: &[u8; 32],
    plaintext: &[u8],
) -> Vec<u8> {
    let blob = kms
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(plaintext.to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    assert_eq!(open_blob(material, &blob), plaintext);
    blob
}

/// Decrypt a ciphertext blob (format version 1, empty encryption context) with a known key.
fn open_blob(key: &[u8; 32], blob: &[u8]) -> Vec<u8> {
    assert_eq!(&blob[..4], b"KBR\x01");
    let mut aad = blob[..24].to_vec();
    aad.extend_from_slice(&0u32.to_be_bytes());
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).unwrap();
    cipher
        .decrypt(
            aes_gcm::Nonce::from_slice(&blob[24..36]),
            Payload {
                msg: &blob[36..],
                aad: &aad,
            },
        )
        .expect("the blob opens with the imported key")
}

#[tokio::test]
async fn imported_symmetric_key_is_the_key_in_use() {
    let (dir, server) = Server::start_new();
    let kms = server.client();
    let key = create_external(&kms).await;
    assert_code!(
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "KMSInvalidStateException"
    );

    let material: [u8; 32] = rand::random();
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    let out = import(&kms, &key, &p, oaep_sha1(&p.public_key, &material))
        .await
        .unwrap();
    assert!(out.key_id.unwrap().ends_with(&key));
    let md = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state, Some(KeyState::Enabled));
    assert_eq!(md.origin, Some(OriginType::External));
    assert_eq!(
        md.expiration_model,
        Some(ExpirationModelType::KeyMaterialDoesNotExpire)
    );

    // The server encrypts with exactly the imported bytes.
    let blob = encrypts_with(&kms, &key, &material, b"bring your own key").await;
    let dk = kms
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(32)
        .send()
        .await
        .unwrap();
    assert_eq!(
        open_blob(&material, dk.ciphertext_blob.unwrap().as_ref()),
        dk.plaintext.unwrap().into_inner()
    );

    // Delete the material: the key waits for an import again.
    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let md = kms.describe_key().key_id(&key).send().await.unwrap();
    assert_eq!(
        md.key_metadata.unwrap().key_state,
        Some(KeyState::PendingImport)
    );
    assert_code!(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
        "KMSInvalidStateException"
    );

    // Only the same material comes back.
    let other: [u8; 32] = rand::random();
    assert_code!(
        import(&kms, &key, &p, oaep_sha1(&p.public_key, &other)).await,
        "IncorrectKeyMaterialException"
    );
    import(&kms, &key, &p, oaep_sha1(&p.public_key, &material))
        .await
        .unwrap();
    let back = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext.unwrap().as_ref(), b"bring your own key");

    // Re-import of the same material into an enabled key is accepted; different is not.
    import(&kms, &key, &p, oaep_sha1(&p.public_key, &material))
        .await
        .unwrap();
    assert_code!(
        import(&kms, &key, &p, oaep_sha1(&p.public_key, &other)).await,
        "IncorrectKeyMaterialException"
    );

    // The unwrapped object is sensitive and non-extractable.
    server.stop();
    let token = dir.open_token().await;
    token.load_objects().await.unwrap();
    let id = uuid::Uuid::parse_str(&key).unwrap();
    let prot = token
        .key_protection(kms_bridge::kms::token_object_id(&id, 1))
        .await
        .unwrap();
    assert!(prot.sensitive, "{prot:?}");
    assert!(!prot.extractable, "{prot:?}");
    assert!(!prot.value_readable, "{prot:?}");
}

#[tokio::test]
async fn rsa_aes_key_wrap_sha1_import() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let key = create_external(&kms).await;
    let material: [u8; 32] = rand::random();
    // A 3072-bit wrapping key: the RSA part of the ciphertext is 384 bytes.
    let p = params_with(
        &kms,
        &key,
        AlgorithmSpec::RsaAesKeyWrapSha1,
        WrappingKeySpec::Rsa3072,
    )
    .await;
    let pk = rsa::RsaPublicKey::from_public_key_der(&p.public_key).unwrap();
    assert_eq!(rsa::traits::PublicKeyParts::size(&pk), 384);
    import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &material))
        .await
        .unwrap();
    encrypts_with(&kms, &key, &material, b"kwp").await;
}

/// AWS's recommended wrapping algorithms (SHA-256), unwrapped in the token: symmetric material
/// under RSAES_OAEP_SHA_256, an RSA private key under RSA_AES_KEY_WRAP_SHA_256. On a token
/// without SHA-256 OAEP (SoftHSM 2.6.1) both are refused, naming what works.
#[tokio::test]
async fn sha256_wrapping_imports_where_the_token_has_it() {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::Verifier;
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let key = create_external(&kms).await;
    if !token_has_oaep_sha256() {
        for alg in [
            AlgorithmSpec::RsaesOaepSha256,
            AlgorithmSpec::RsaAesKeyWrapSha256,
        ] {
            let r = kms
                .get_parameters_for_import()
                .key_id(&key)
                .wrapping_algorithm(alg)
                .wrapping_key_spec(WrappingKeySpec::Rsa2048)
                .send()
                .await;
            assert_code!(r, "UnsupportedOperationException");
        }
        return;
    }
    let material: [u8; 32] = rand::random();
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha256).await;
    // SHA-1 OAEP of the same material does not unwrap under SHA-256 parameters.
    assert_code!(
        import(&kms, &key, &p, oaep_sha1(&p.public_key, &material)).await,
        "InvalidCiphertextException"
    );
    import(&kms, &key, &p, oaep_sha256(&p.public_key, &material))
        .await
        .unwrap();
    encrypts_with(&kms, &key, &material, b"sha-256").await;

    let pair = create_external_pair(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let pkcs8 = openssl_rsa_pkcs8(2048);
    let public = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8)
        .unwrap()
        .to_public_key();
    let p = params(&kms, &pair, AlgorithmSpec::RsaAesKeyWrapSha256).await;
    import(&kms, &pair, &p, rsa_aes_kwp_sha256(&p.public_key, &pkcs8))
        .await
        .unwrap();
    let message = b"imported under RSA_AES_KEY_WRAP_SHA_256";
    let sig = kms
        .sign()
        .key_id(&pair)
        .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::RsassaPssSha256)
        .message(Blob::new(message.to_vec()))
        .send()
        .await
        .unwrap()
        .signature
        .unwrap()
        .into_inner();
    let vk = rsa::pss::VerifyingKey::<sha2::Sha256>::new(public);
    let sig = rsa::pss::Signature::try_from(sig.as_slice()).unwrap();
    vk.verify(message, &sig)
        .expect("the imported key signed it");
}

#[tokio::test]
async fn import_errors_are_named_as_aws_names_them() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let key = create_external(&kms).await;
    let other_key = create_external(&kms).await;
    let material: [u8; 32] = rand::random();
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    let other = params(&kms, &other_key, AlgorithmSpec::RsaesOaepSha1).await;

    // Tampered wrapped material.
    let mut wrapped = oaep_sha1(&p.public_key, &material);
    wrapped[10] ^= 1;
    assert_code!(
        import(&kms, &key, &p, wrapped).await,
        "InvalidCiphertextException"
    );
    // Material of the wrong length.
    for len in [16, 31, 33, 64] {
        assert_code!(
            import(&kms, &key, &p, oaep_sha1(&p.public_key, &vec![7u8; len])).await,
            "InvalidCiphertextException"
        );
    }
    // Another key's token (and its public key).
    let moved = Params {
        public_key: other.public_key.clone(),
        token: other.token.clone(),
    };
    assert_code!(
        import(&kms, &key, &moved, oaep_sha1(&other.public_key, &material)).await,
        "InvalidImportTokenException"
    );
    // A forged token.
    let mut forged = p.token.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x80;
    let forged = Params {
        public_key: p.public_key.clone(),
        token: forged,
    };
    assert_code!(
        import(&kms, &key, &forged, oaep_sha1(&p.public_key, &material)).await,
        "InvalidImportTokenException"
    );
    assert_code!(
        import(
            &kms,
            &key,
            &Params {
                public_key: vec![],
                token: b"garbage".to_vec()
            },
            oaep_sha1(&p.public_key, &material)
        )
        .await,
        "InvalidImportTokenException"
    );
    // Superseded parameters.
    let newer = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    assert_code!(
        import(&kms, &key, &p, oaep_sha1(&p.public_key, &material)).await,
        "InvalidImportTokenException"
    );
    // ValidTo rules.
    let now = DateTime::from(std::time::SystemTime::now()).secs();
    for (model, valid_to) in [
        (ExpirationModelType::KeyMaterialExpires, None),
        (ExpirationModelType::KeyMaterialExpires, Some(now - 60)),
        (
            ExpirationModelType::KeyMaterialExpires,
            Some(now + 366 * DAY),
        ),
        (
            ExpirationModelType::KeyMaterialDoesNotExpire,
            Some(now + DAY),
        ),
    ] {
        let r = kms
            .import_key_material()
            .key_id(&key)
            .import_token(Blob::new(newer.token.clone()))
            .encrypted_key_material(Blob::new(oaep_sha1(&newer.public_key, &material)))
            .expiration_model(model)
            .set_valid_to(valid_to.map(DateTime::from_secs))
            .send()
            .await;
        assert_code!(r, "ValidationException");
    }
    // Wrapping algorithms the token cannot do / that are deprecated.
    // SHA-256 OAEP is refused where the token has not got it (SoftHSM 2.6.1; see
    // `sha256_wrapping_imports_where_the_token_has_it`).
    for (alg, code) in [
        (
            AlgorithmSpec::RsaesOaepSha256,
            "UnsupportedOperationException",
        ),
        (
            AlgorithmSpec::RsaAesKeyWrapSha256,
            "UnsupportedOperationException",
        ),
        (AlgorithmSpec::RsaesPkcs1V15, "ValidationException"),
    ] {
        if code == "UnsupportedOperationException" && token_has_oaep_sha256() {
            continue;
        }
        let r = kms
            .get_parameters_for_import()
            .key_id(&key)
            .wrapping_algorithm(alg)
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await;
        if code == "UnsupportedOperationException" {
            let e = r
                .as_ref()
                .err()
                .map(|e| format!("{e:?}"))
                .unwrap_or_default();
            assert!(e.contains("RSAES_OAEP_SHA_1"), "names what works: {e}");
        }
        assert_code!(r, code);
    }
    // The newest parameters still work after all that.
    import(&kms, &key, &newer, oaep_sha1(&newer.public_key, &material))
        .await
        .unwrap();

    // Import into a key that is not EXTERNAL.
    let native = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    assert_code!(
        kms.get_parameters_for_import()
            .key_id(&native)
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await,
        "UnsupportedOperationException"
    );
    assert_code!(
        import(
            &kms,
            &native,
            &newer,
            oaep_sha1(&newer.public_key, &material)
        )
        .await,
        "UnsupportedOperationException"
    );
    assert_code!(
        kms.delete_imported_key_material()
            .key_id(&native)
            .send()
            .await,
        "UnsupportedOperationException"
    );
    // Rotation of imported keys is not offered.
    assert_code!(
        kms.enable_key_rotation().key_id(&key).send().await,
        "UnsupportedOperationException"
    );
}

#[tokio::test]
async fn expired_parameters_and_expiring_material() {
    let dir = TestDir::new();
    let server = lifecycle_server(&dir);
    let kms = server.client();
    let key = create_external(&kms).await;
    let material: [u8; 32] = rand::random();

    // Parameters expire after 24 hours.
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    advance(&server, DAY + 60);
    assert_code!(
        import(&kms, &key, &p, oaep_sha1(&p.public_key, &material)).await,
        "ExpiredImportTokenException"
    );

    // Material valid for two (lifecycle) days.
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    let now = DateTime::from(std::time::SystemTime::now()).secs() + DAY + 60;
    let valid_to = now + 2 * DAY;
    kms.import_key_material()
        .key_id(&key)
        .import_token(Blob::new(p.token.clone()))
        .encrypted_key_material(Blob::new(oaep_sha1(&p.public_key, &material)))
        .valid_to(DateTime::from_secs(valid_to))
        .send()
        .await
        .unwrap();
    let md = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state, Some(KeyState::Enabled));
    assert_eq!(
        md.expiration_model,
        Some(ExpirationModelType::KeyMaterialExpires)
    );
    assert_eq!(md.valid_to.unwrap().secs(), valid_to);

    let report = advance(&server, DAY);
    assert_eq!(report["report"]["expired"], 0, "{report}");
    kms.encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"still".to_vec()))
        .send()
        .await
        .unwrap();

    let report = advance(&server, DAY + 60);
    assert_eq!(report["report"]["expired"], 1, "{report}");
    let md = kms.describe_key().key_id(&key).send().await.unwrap();
    assert_eq!(
        md.key_metadata.unwrap().key_state,
        Some(KeyState::PendingImport)
    );
    assert_code!(
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"gone".to_vec()))
            .send()
            .await,
        "KMSInvalidStateException"
    );
    server.stop();
    let token = dir.open_token().await;
    let id = uuid::Uuid::parse_str(&key).unwrap();
    assert!(
        !token
            .exists(kms_bridge::kms::token_object_id(&id, 1))
            .await
            .unwrap(),
        "expired material is destroyed in the token"
    );
}

#[tokio::test]
async fn imported_hmac_key_is_the_key_in_use() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType, MacAlgorithmSpec};
    use hmac::Mac;
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let key = create_external_pair(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    // Too short for HMAC_256 (at least 32 bytes).
    assert_code!(
        import(&kms, &key, &p, oaep_sha1(&p.public_key, &[1u8; 16])).await,
        "InvalidCiphertextException"
    );
    let material: [u8; 48] = std::array::from_fn(|i| i as u8 ^ 0x5c);
    import(&kms, &key, &p, oaep_sha1(&p.public_key, &material))
        .await
        .unwrap();
    let mac = kms
        .generate_mac()
        .key_id(&key)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(b"message".to_vec()))
        .send()
        .await
        .unwrap()
        .mac
        .unwrap()
        .into_inner();
    let mut expected = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&material).unwrap();
    expected.update(b"message");
    assert_eq!(mac, expected.finalize().into_bytes().to_vec());
}

#[tokio::test]
async fn deleting_an_external_key_destroys_its_wrapping_key() {
    let dir = TestDir::new();
    let server = lifecycle_server(&dir);
    let kms = server.client();
    let key = create_external(&kms).await;
    params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    kms.schedule_key_deletion()
        .key_id(&key)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let report = advance(&server, 8 * DAY);
    assert_eq!(report["report"]["deleted"], 1, "{report}");
    server.stop();
    let token = dir.open_token().await;
    let prefix = format!("kms-bridge/{key}/");
    let left: Vec<_> = token
        .load_objects()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.label.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn reconciliation_undoes_an_interrupted_import() {
    use kms_bridge::kms::{token_object_id, token_object_label};
    use kms_bridge::model::{KeySpec, KeyState as State, KeyUsage, Origin};
    use kms_bridge::store::{KeyRecord, MetadataStore, VersionRecord};
    let dir = TestDir::new();
    // Parameters fetched for one key: its wrapping key must not be reported as an orphan.
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let waiting = create_external(&kms).await;
    params(&kms, &waiting, AlgorithmSpec::RsaesOaepSha1).await;
    server.stop();

    // A crash after C_UnwrapKey, before the import was completed.
    let id = uuid::Uuid::new_v4();
    {
        let store = dir.sealed_store().await;
        let key = KeyRecord {
            key_id: id,
            region: REGION.into(),
            account: ACCOUNT.into(),
            description: String::new(),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::External,
            state: State::PendingImport,
            created_at: 1,
            deletion_date: None,
            pending_window_days: None,
            rotation_enabled: false,
            rotation_period_days: None,
            rotation_base: None,
            current_version: 1,
            policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#.into(),
            revision: 0,
            custom_key_store_id: None,
            key_manager: kms_bridge::model::KeyManager::Customer,
            mac: Vec::new(),
            multi_region: None,
        };
        store.insert_external_key(&key, &[]).await.unwrap();
        store
            .insert_version(&VersionRecord {
                key_id: id,
                version: 1,
                token_object_id: token_object_id(&id, 1),
                material_id: kms_bridge::kms::material_id(&id, 1),
                created_at: 1,
                rotation_type: None,
                pending: true,
            })
            .await
            .unwrap();
        let token = dir.open_token().await;
        token
            .generate_aes_key(token_object_id(&id, 1), token_object_label(&id, 1))
            .await
            .unwrap();
    }

    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let md = kms
        .describe_key()
        .key_id(id.to_string())
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state, Some(KeyState::PendingImport));
    let log = server.log();
    assert!(
        log.contains("removed an import interrupted by a crash"),
        "{log}"
    );
    assert!(!log.contains("orphan token object"), "{log}");
    assert!(!log.contains("key material missing"), "{log}");
    server.stop();
    let token = dir.open_token().await;
    assert!(!token.exists(token_object_id(&id, 1)).await.unwrap());
}

// --- Asymmetric key material (DER PKCS#8 private keys) ------------------------------------------

use aws_sdk_kms::types::{EncryptionAlgorithmSpec, KeySpec, KeyUsageType, SigningAlgorithmSpec};

async fn create_external_pair(
    kms: &aws_sdk_kms::Client,
    spec: KeySpec,
    usage: KeyUsageType,
) -> String {
    let md = kms
        .create_key()
        .origin(OriginType::External)
        .key_spec(spec.clone())
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state, Some(KeyState::PendingImport));
    assert_eq!(md.key_spec, Some(spec));
    assert!(!md.enabled);
    assert!(md.expiration_model.is_none());
    md.key_id
}

/// A fresh RSA private key as DER PKCS#8, made by the openssl command line as the AWS
/// documentation does it (`genpkey | pkcs8 -topk8 -outform der -nocrypt`).
fn openssl_rsa_pkcs8(bits: u32) -> Vec<u8> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{bits} \
             | openssl pkcs8 -topk8 -outform der -nocrypt"
        ))
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn p256_pkcs8() -> (p256::SecretKey, Vec<u8>) {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der().unwrap().as_bytes().to_vec();
    (key, der)
}

async fn get_public_key(kms: &aws_sdk_kms::Client, key: &str) -> Vec<u8> {
    kms.get_public_key()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap()
        .into_inner()
}

async fn kms_sign(
    kms: &aws_sdk_kms::Client,
    key: &str,
    alg: SigningAlgorithmSpec,
    msg: &[u8],
) -> Vec<u8> {
    kms.sign()
        .key_id(key)
        .signing_algorithm(alg)
        .message(Blob::new(msg.to_vec()))
        .send()
        .await
        .unwrap()
        .signature
        .unwrap()
        .into_inner()
}

async fn kms_verify(
    kms: &aws_sdk_kms::Client,
    key: &str,
    alg: SigningAlgorithmSpec,
    msg: &[u8],
    signature: Vec<u8>,
) -> bool {
    match kms
        .verify()
        .key_id(key)
        .signing_algorithm(alg)
        .message(Blob::new(msg.to_vec()))
        .signature(Blob::new(signature))
        .send()
        .await
    {
        Ok(out) => out.signature_valid,
        Err(e) if code(&e) == "KMSInvalidSignatureException" => false,
        Err(e) => panic!("Verify: {e:?}"),
    }
}

/// The token objects of a key (label prefix `kms-bridge/<key>/v`), and that its private key
/// is sensitive and non-extractable with an unreadable private value.
async fn assert_protected_pair(dir: &TestDir, key: &str) {
    use kms_bridge::token::ObjectKind;
    let token = dir.open_token().await;
    let id = uuid::Uuid::parse_str(key).unwrap();
    let object_id = kms_bridge::kms::token_object_id(&id, 1);
    let mut kinds: Vec<ObjectKind> = token
        .load_objects()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.id == object_id)
        .map(|o| o.kind)
        .collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        kinds,
        [ObjectKind::Private, ObjectKind::Public],
        "one key pair, nothing else"
    );
    let prot = token.key_protection(object_id).await.unwrap();
    assert!(prot.sensitive, "{prot:?}");
    assert!(!prot.extractable, "{prot:?}");
    assert!(!prot.value_readable, "{prot:?}");
}

/// Token objects whose label belongs to `key`'s material (not its wrapping key).
async fn material_objects(dir: &TestDir, key: &str) -> usize {
    let token = dir.open_token().await;
    let prefix = format!("kms-bridge/{key}/v");
    token
        .load_objects()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.label.starts_with(&prefix))
        .count()
}

#[tokio::test]
async fn imported_rsa_private_key_signs_and_verifies() {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer, Verifier};
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let key = create_external_pair(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let md = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_usage, Some(KeyUsageType::SignVerify));
    assert_eq!(md.origin, Some(OriginType::External));
    assert!(md
        .signing_algorithms()
        .contains(&SigningAlgorithmSpec::RsassaPssSha256));
    assert!(md.current_key_material_id.is_none());
    assert_code!(
        kms.get_public_key().key_id(&key).send().await,
        "KMSInvalidStateException"
    );

    // An RSA private key is too large for RSAES_OAEP_*: AWS requires RSA_AES_KEY_WRAP_*.
    let r = kms
        .get_parameters_for_import()
        .key_id(&key)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
        .wrapping_key_spec(WrappingKeySpec::Rsa4096)
        .send()
        .await;
    let e = r
        .as_ref()
        .err()
        .map(|e| format!("{e:?}"))
        .unwrap_or_default();
    assert!(
        e.contains("RSA_AES_KEY_WRAP_SHA_1"),
        "names what works: {e}"
    );
    assert_code!(r, "UnsupportedOperationException");

    let pkcs8 = openssl_rsa_pkcs8(2048);
    let private = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8).unwrap();
    let public = private.to_public_key();
    let p = params(&kms, &key, AlgorithmSpec::RsaAesKeyWrapSha1).await;

    // Material that unwraps but is not an RSA-2048 private key.
    let (_, ec_pkcs8) = p256_pkcs8();
    for (what, material) in [
        ("an EC key", ec_pkcs8),
        ("an RSA-1024 key", openssl_rsa_pkcs8(1024)),
        ("not PKCS#8", vec![0x30; 200]),
        ("a symmetric key", vec![7u8; 32]),
    ] {
        let r = import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &material)).await;
        assert!(r.is_err(), "{what} was accepted");
        assert_code!(r, "IncorrectKeyMaterialException");
    }
    // Material that does not unwrap.
    let mut wrapped = rsa_aes_kwp_sha1(&p.public_key, &pkcs8);
    let last = wrapped.len() - 1;
    wrapped[last] ^= 1;
    assert_code!(
        import(&kms, &key, &p, wrapped).await,
        "InvalidCiphertextException"
    );
    let md = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state, Some(KeyState::PendingImport));

    import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &pkcs8))
        .await
        .unwrap();
    let md = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(md.key_state, Some(KeyState::Enabled));
    assert_eq!(
        md.expiration_model,
        Some(ExpirationModelType::KeyMaterialDoesNotExpire)
    );

    // The public key KMS derived is the key pair's; KMS signs with the imported private key.
    assert_eq!(
        get_public_key(&kms, &key).await,
        public.to_public_key_der().unwrap().as_bytes()
    );
    let msg = b"signed by an imported key";
    let sig = kms_sign(&kms, &key, SigningAlgorithmSpec::RsassaPkcs1V15Sha256, msg).await;
    let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public.clone());
    vk.verify(
        msg,
        &rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap(),
    )
    .expect("KMS signature verifies with the imported key pair");
    let sig = kms_sign(&kms, &key, SigningAlgorithmSpec::RsassaPssSha256, msg).await;
    rsa::pss::VerifyingKey::<sha2::Sha256>::new(public.clone())
        .verify(msg, &rsa::pss::Signature::try_from(sig.as_slice()).unwrap())
        .expect("PSS signature verifies");
    // KMS verifies what the key's owner signed.
    let sk = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private.clone());
    let theirs = sk.sign(msg).to_vec();
    assert!(
        kms_verify(
            &kms,
            &key,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
            msg,
            theirs.clone()
        )
        .await
    );
    assert!(
        !kms_verify(
            &kms,
            &key,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
            b"other",
            theirs
        )
        .await
    );
    let pss = rsa::pss::SigningKey::<sha2::Sha256>::new(private.clone())
        .sign_with_rng(&mut rand::rngs::OsRng, msg)
        .to_vec();
    assert!(kms_verify(&kms, &key, SigningAlgorithmSpec::RsassaPssSha256, msg, pss).await);

    // Re-import: same material only (into an enabled key, and after deletion).
    let other = openssl_rsa_pkcs8(2048);
    import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &pkcs8))
        .await
        .unwrap();
    assert_code!(
        import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &other)).await,
        "IncorrectKeyMaterialException"
    );
    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_code!(
        kms.sign()
            .key_id(&key)
            .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
            .message(Blob::new(msg.to_vec()))
            .send()
            .await,
        "KMSInvalidStateException"
    );
    assert_code!(
        import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &other)).await,
        "IncorrectKeyMaterialException"
    );
    import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &pkcs8))
        .await
        .unwrap();
    let sig = kms_sign(&kms, &key, SigningAlgorithmSpec::RsassaPkcs1V15Sha256, msg).await;
    vk.verify(
        msg,
        &rsa::pkcs1v15::Signature::try_from(sig.as_slice()).unwrap(),
    )
    .unwrap();

    server.stop();
    assert_protected_pair(&dir, &key).await;
}

#[tokio::test]
async fn imported_rsa_encryption_key_decrypts_what_its_public_key_encrypts() {
    use rsa::pkcs8::DecodePrivateKey;
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let key = create_external_pair(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let pkcs8 = openssl_rsa_pkcs8(2048);
    let private = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8).unwrap();
    let p = params_with(
        &kms,
        &key,
        AlgorithmSpec::RsaAesKeyWrapSha1,
        WrappingKeySpec::Rsa3072,
    )
    .await;
    import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &pkcs8))
        .await
        .unwrap();
    // KMS encrypts; the key's owner decrypts.
    let ct = kms
        .encrypt()
        .key_id(&key)
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .plaintext(Blob::new(b"to the imported key".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    let pt = private
        .decrypt(rsa::Oaep::new::<sha2::Sha256>(), &ct)
        .unwrap();
    assert_eq!(pt, b"to the imported key");
    // The owner's public key encrypts; KMS decrypts.
    let ct = private
        .to_public_key()
        .encrypt(
            &mut rand::rngs::OsRng,
            rsa::Oaep::new::<sha1::Sha1>(),
            b"from outside",
        )
        .unwrap();
    let pt = kms
        .decrypt()
        .key_id(&key)
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha1)
        .ciphertext_blob(Blob::new(ct))
        .send()
        .await
        .unwrap()
        .plaintext
        .unwrap()
        .into_inner();
    assert_eq!(pt, b"from outside");
    // An encryption key cannot sign.
    assert_code!(
        kms.sign()
            .key_id(&key)
            .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
            .message(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "InvalidKeyUsageException"
    );
}

#[tokio::test]
async fn imported_p256_private_key_signs_and_verifies() {
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::pkcs8::EncodePublicKey;
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let key = create_external_pair(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let (secret, pkcs8) = p256_pkcs8();
    let public_der = secret.public_key().to_public_key_der().unwrap();

    // EC material is small enough for RSAES_OAEP_SHA_1 directly.
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    // The wrong curve and the wrong key type.
    let p384 = {
        use p384::pkcs8::EncodePrivateKey;
        p384::SecretKey::random(&mut rand::rngs::OsRng)
            .to_pkcs8_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    };
    let k256 = {
        use k256::pkcs8::EncodePrivateKey;
        k256::SecretKey::random(&mut rand::rngs::OsRng)
            .to_pkcs8_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    };
    for (what, wrapped) in [
        ("a P-384 key", oaep_sha1(&p.public_key, &p384)),
        ("a secp256k1 key", oaep_sha1(&p.public_key, &k256)),
        ("random bytes", oaep_sha1(&p.public_key, &[0x42; 64])),
        ("a symmetric key", oaep_sha1(&p.public_key, &[0x42; 32])),
    ] {
        let r = import(&kms, &key, &p, wrapped).await;
        assert!(r.is_err(), "{what} was accepted");
        assert_code!(r, "IncorrectKeyMaterialException");
    }
    // An RSA private key (RSA_AES_KEY_WRAP for the larger material).
    let q = params(&kms, &key, AlgorithmSpec::RsaAesKeyWrapSha1).await;
    assert_code!(
        import(
            &kms,
            &key,
            &q,
            rsa_aes_kwp_sha1(&q.public_key, &openssl_rsa_pkcs8(1024))
        )
        .await,
        "IncorrectKeyMaterialException"
    );
    assert_eq!(
        material_objects(&dir, &key).await,
        0,
        "rejected material leaves nothing"
    );

    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
    import(&kms, &key, &p, oaep_sha1(&p.public_key, &pkcs8))
        .await
        .unwrap();
    assert_eq!(get_public_key(&kms, &key).await, public_der.as_bytes());

    let msg = b"signed by an imported EC key";
    let sig = kms_sign(&kms, &key, SigningAlgorithmSpec::EcdsaSha256, msg).await;
    let vk = p256::ecdsa::VerifyingKey::from(secret.public_key());
    vk.verify(msg, &p256::ecdsa::Signature::from_der(&sig).unwrap())
        .expect("KMS signature verifies with the imported key pair");
    let sk = p256::ecdsa::SigningKey::from(secret.clone());
    let theirs: p256::ecdsa::Signature = sk.sign(msg);
    let theirs = theirs.to_der().as_bytes().to_vec();
    assert!(
        kms_verify(
            &kms,
            &key,
            SigningAlgorithmSpec::EcdsaSha256,
            msg,
            theirs.clone()
        )
        .await
    );
    assert!(
        !kms_verify(
            &kms,
            &key,
            SigningAlgorithmSpec::EcdsaSha256,
            b"other",
            theirs
        )
        .await
    );

    // Re-import after deletion: only the same key (here wrapped the other way).
    kms.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let q = params(&kms, &key, AlgorithmSpec::RsaAesKeyWrapSha1).await;
    let (_, other) = p256_pkcs8();
    assert_code!(
        import(&kms, &key, &q, rsa_aes_kwp_sha1(&q.public_key, &other)).await,
        "IncorrectKeyMaterialException"
    );
    import(&kms, &key, &q, rsa_aes_kwp_sha1(&q.public_key, &pkcs8))
        .await
        .unwrap();
    assert_eq!(get_public_key(&kms, &key).await, public_der.as_bytes());
    let sig = kms_sign(&kms, &key, SigningAlgorithmSpec::EcdsaSha256, msg).await;
    vk.verify(msg, &p256::ecdsa::Signature::from_der(&sig).unwrap())
        .unwrap();

    server.stop();
    assert_protected_pair(&dir, &key).await;
}

#[tokio::test]
async fn imported_ec_keys_of_every_curve() {
    use aws_sdk_kms::types::SigningAlgorithmSpec as Sig;
    let (_dir, server) = Server::start_new();
    let kms = server.client();

    /// Does a DER signature verify over a message?
    type Verifier = Box<dyn Fn(&[u8], &[u8]) -> bool>;
    /// A key of the curve: its PKCS#8, its SPKI, and a verifier of DER signatures.
    struct Case {
        spec: KeySpec,
        pkcs8: Vec<u8>,
        spki: Vec<u8>,
        alg: Sig,
        verify: Verifier,
    }
    let mut cases: Vec<Case> = Vec::new();
    {
        use p384::ecdsa::signature::Verifier;
        use p384::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let k = p384::SecretKey::random(&mut rand::rngs::OsRng);
        let vk = p384::ecdsa::VerifyingKey::from(k.public_key());
        cases.push(Case {
            spec: KeySpec::EccNistP384,
            pkcs8: k.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            spki: k
                .public_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes()
                .to_vec(),
            alg: Sig::EcdsaSha384,
            verify: Box::new(move |m, s| {
                p384::ecdsa::Signature::from_der(s).is_ok_and(|s| vk.verify(m, &s).is_ok())
            }),
        });
    }
    {
        use p521::ecdsa::signature::hazmat::PrehashVerifier;
        use p521::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let k = p521::SecretKey::random(&mut rand::rngs::OsRng);
        let vk = p521::ecdsa::VerifyingKey::from_affine(*k.public_key().as_affine()).unwrap();
        cases.push(Case {
            spec: KeySpec::EccNistP521,
            pkcs8: k.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            spki: k
                .public_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes()
                .to_vec(),
            alg: Sig::EcdsaSha512,
            verify: Box::new(move |m, s| {
                use sha2::Digest;
                p521::ecdsa::Signature::from_der(s)
                    .is_ok_and(|s| vk.verify_prehash(&sha2::Sha512::digest(m), &s).is_ok())
            }),
        });
    }
    {
        use k256::ecdsa::signature::Verifier;
        use k256::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let k = k256::SecretKey::random(&mut rand::rngs::OsRng);
        let vk = k256::ecdsa::VerifyingKey::from(k.public_key());
        cases.push(Case {
            spec: KeySpec::EccSecgP256K1,
            pkcs8: k.to_pkcs8_der().unwrap().as_bytes().to_vec(),
            spki: k
                .public_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes()
                .to_vec(),
            alg: Sig::EcdsaSha256,
            verify: Box::new(move |m, s| {
                k256::ecdsa::Signature::from_der(s)
                    .map(|s| s.normalize_s().unwrap_or(s))
                    .is_ok_and(|s| vk.verify(m, &s).is_ok())
            }),
        });
    }
    for Case {
        spec,
        pkcs8,
        spki,
        alg,
        verify,
    } in cases
    {
        if spec == KeySpec::EccSecgP256K1 && !token_has_secp256k1() {
            // A token without the curve cannot hold the material: refused at CreateKey.
            assert_spec_unsupported(
                kms.create_key()
                    .origin(aws_sdk_kms::types::OriginType::External)
                    .key_usage(KeyUsageType::SignVerify),
                &spec,
            )
            .await;
            continue;
        }
        let key = create_external_pair(&kms, spec.clone(), KeyUsageType::SignVerify).await;
        if spec == KeySpec::EccNistP521 {
            // AWS: P-521 material does not fit RSAES_OAEP_* under an RSA_2048 wrapping key.
            assert_code!(
                kms.get_parameters_for_import()
                    .key_id(&key)
                    .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
                    .wrapping_key_spec(WrappingKeySpec::Rsa2048)
                    .send()
                    .await,
                "UnsupportedOperationException"
            );
        }
        let p = params(&kms, &key, AlgorithmSpec::RsaAesKeyWrapSha1).await;
        import(&kms, &key, &p, rsa_aes_kwp_sha1(&p.public_key, &pkcs8))
            .await
            .unwrap();
        assert_eq!(get_public_key(&kms, &key).await, spki, "{spec:?}");
        let msg = format!("signed with an imported {spec:?} key");
        let sig = kms_sign(&kms, &key, alg.clone(), msg.as_bytes()).await;
        assert!(verify(msg.as_bytes(), &sig), "{spec:?}");
    }
}

// --- Several key materials (symmetric keys) ---------------------------------------------------

use aws_sdk_kms::types::{ImportType, IncludeKeyMaterial};

/// ImportKeyMaterial with an `ImportType` (and optionally a `KeyMaterialId` and description).
async fn import_as(
    kms: &aws_sdk_kms::Client,
    key: &str,
    material: &[u8; 32],
    import_type: Option<ImportType>,
    key_material_id: Option<&str>,
    description: Option<&str>,
) -> Result<
    String,
    aws_sdk_kms::error::SdkError<
        aws_sdk_kms::operation::import_key_material::ImportKeyMaterialError,
    >,
> {
    let p = params(kms, key, AlgorithmSpec::RsaesOaepSha1).await;
    kms.import_key_material()
        .key_id(key)
        .import_token(Blob::new(p.token.clone()))
        .encrypted_key_material(Blob::new(oaep_sha1(&p.public_key, material)))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .set_import_type(import_type)
        .set_key_material_id(key_material_id.map(str::to_owned))
        .set_key_material_description(description.map(str::to_owned))
        .send()
        .await
        .map(|o| o.key_material_id.expect("KeyMaterialId"))
}

async fn current_material(kms: &aws_sdk_kms::Client, key: &str) -> Option<String> {
    describe(kms, key).await.current_key_material_id
}

/// (KeyMaterialId, KeyMaterialState, ImportState, RotationType) of every ListKeyRotations
/// entry, with `ALL_KEY_MATERIAL` or not.
async fn rotations(
    kms: &aws_sdk_kms::Client,
    key: &str,
    all: bool,
) -> Vec<(String, String, String, Option<String>)> {
    let r = kms
        .list_key_rotations()
        .key_id(key)
        .set_include_key_material(all.then_some(IncludeKeyMaterial::AllKeyMaterial))
        .send()
        .await
        .unwrap();
    r.rotations()
        .iter()
        .map(|e| {
            (
                e.key_material_id().unwrap_or_default().to_owned(),
                e.key_material_state()
                    .map(|s| s.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                e.import_state()
                    .map(|s| s.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                e.rotation_type().map(|t| t.as_str().to_owned()),
            )
        })
        .collect()
}

fn is_material_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn several_materials_rotate_on_demand_and_all_keep_decrypting() {
    let (dir, server) = Server::start_new();
    let kms = server.client();
    let key = create_external(&kms).await;
    let arn = describe(&kms, &key).await.arn.unwrap();
    let (a, b, c): ([u8; 32], [u8; 32], [u8; 32]) =
        (rand::random(), rand::random(), rand::random());

    // The first import defaults to NEW_KEY_MATERIAL and becomes current.
    let id_a = import_as(&kms, &key, &a, None, None, None).await.unwrap();
    assert!(is_material_id(&id_a), "{id_a}");
    assert_eq!(
        current_material(&kms, &key).await.as_deref(),
        Some(id_a.as_str())
    );
    let blob_a = encrypts_with(&kms, &key, &a, b"under the first material").await;

    // Nothing to rotate to yet: AWS's code and text.
    let e = kms
        .rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&e),
        (
            "KMSInvalidStateException".to_string(),
            Some(format!(
                "No available key material pending rotation for the key: {arn}."
            ))
        )
    );

    // New material waits for its rotation: the key still encrypts with the first.
    let id_b = import_as(
        &kms,
        &key,
        &b,
        Some(ImportType::NewKeyMaterial),
        None,
        Some("second material"),
    )
    .await
    .unwrap();
    assert!(is_material_id(&id_b) && id_b != id_a);
    assert_eq!(
        current_material(&kms, &key).await.as_deref(),
        Some(id_a.as_str())
    );
    encrypts_with(&kms, &key, &a, b"still the first").await;
    assert_eq!(
        rotations(&kms, &key, true).await,
        [
            (id_a.clone(), "CURRENT".into(), "IMPORTED".into(), None),
            (
                id_b.clone(),
                "PENDING_ROTATION".into(),
                "IMPORTED".into(),
                None
            ),
        ]
    );
    assert!(rotations(&kms, &key, false).await.is_empty());
    let listed = kms
        .list_key_rotations()
        .key_id(&key)
        .include_key_material(IncludeKeyMaterial::AllKeyMaterial)
        .send()
        .await
        .unwrap();
    let pending = &listed.rotations()[1];
    assert_eq!(pending.key_material_description(), Some("second material"));
    assert_eq!(
        pending.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
    );
    assert!(pending.rotation_date().is_none() && pending.valid_to().is_none());

    // A third while one is pending: AWS's code and text, naming both materials.
    let e = import_as(&kms, &key, &c, Some(ImportType::NewKeyMaterial), None, None)
        .await
        .unwrap_err();
    let (found, message) = code_and_message(&e);
    assert_eq!(found, "KMSInvalidStateException");
    let message = message.unwrap();
    let id_c = message
        .strip_prefix("New key material (id: ")
        .and_then(|m| m.split(')').next())
        .unwrap_or_default()
        .to_owned();
    assert!(is_material_id(&id_c) && id_c != id_b, "{message}");
    assert_eq!(
        message,
        format!(
            "New key material (id: {id_c}) cannot be imported into KMS key {arn}, because \
             another key material (id: {id_b}) is pending rotation."
        )
    );

    // Rotate: the new material is current; both materials decrypt what they encrypted, and
    // every answer names the material it used.
    let rotated = kms
        .rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.key_id(), Some(arn.as_str()));
    assert_eq!(
        current_material(&kms, &key).await.as_deref(),
        Some(id_b.as_str())
    );
    let blob_b = encrypts_with(&kms, &key, &b, b"under the second material").await;
    for (blob, plaintext, id) in [
        (&blob_a, &b"under the first material"[..], &id_a),
        (&blob_b, &b"under the second material"[..], &id_b),
    ] {
        let d = kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(d.plaintext().unwrap().as_ref(), plaintext);
        assert_eq!(d.key_material_id(), Some(id.as_str()));
    }
    let dk = kms
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(16)
        .send()
        .await
        .unwrap();
    assert_eq!(dk.key_material_id(), Some(id_b.as_str()));
    assert_eq!(
        open_blob(&b, dk.ciphertext_blob().unwrap().as_ref()),
        dk.plaintext().unwrap().as_ref()
    );
    let re = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(blob_a.clone()))
        .destination_key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(re.source_key_material_id(), Some(id_a.as_str()));
    assert_eq!(re.destination_key_material_id(), Some(id_b.as_str()));
    assert_eq!(
        open_blob(&b, re.ciphertext_blob().unwrap().as_ref()),
        b"under the first material"
    );
    assert_eq!(
        rotations(&kms, &key, false).await,
        [(
            id_b.clone(),
            "CURRENT".into(),
            "IMPORTED".into(),
            Some("ON_DEMAND".into())
        )]
    );
    let listed = kms.list_key_rotations().key_id(&key).send().await.unwrap();
    assert!(listed.rotations()[0].rotation_date().is_some());
    assert_eq!(
        rotations(&kms, &key, true).await,
        [
            (id_a.clone(), "NON_CURRENT".into(), "IMPORTED".into(), None),
            (
                id_b.clone(),
                "CURRENT".into(),
                "IMPORTED".into(),
                Some("ON_DEMAND".into())
            ),
        ]
    );

    // Delete the first material by its id: the key cannot be used until it is back.
    let del = kms
        .delete_imported_key_material()
        .key_id(&key)
        .key_material_id(&id_a)
        .send()
        .await
        .unwrap();
    assert_eq!(del.key_material_id(), Some(id_a.as_str()));
    assert_eq!(del.key_id(), Some(arn.as_str()));
    assert_eq!(
        describe(&kms, &key).await.key_state,
        Some(KeyState::PendingImport)
    );
    assert_eq!(
        rotations(&kms, &key, true).await[0],
        (
            id_a.clone(),
            "NON_CURRENT".into(),
            "PENDING_IMPORT".into(),
            None
        )
    );
    for blob in [&blob_a, &blob_b] {
        assert_code!(
            kms.decrypt()
                .ciphertext_blob(Blob::new(blob.clone()))
                .send()
                .await,
            "KMSInvalidStateException"
        );
    }
    assert_code!(
        kms.delete_imported_key_material()
            .key_id(&key)
            .key_material_id(&id_a)
            .send()
            .await,
        "KMSInvalidStateException"
    );
    let unknown = "0".repeat(64);
    let e = kms
        .delete_imported_key_material()
        .key_id(&key)
        .key_material_id(&unknown)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&e),
        (
            "NotFoundException".to_string(),
            Some(format!(
                "Key material (id: {unknown}) is not associated with KMS key {arn}."
            ))
        )
    );

    // Only the same material comes back; by its id, or recognised without it.
    let other: [u8; 32] = rand::random();
    assert_code!(
        import_as(&kms, &key, &other, None, None, None).await,
        "IncorrectKeyMaterialException"
    );
    assert_code!(
        import_as(
            &kms,
            &key,
            &a,
            Some(ImportType::ExistingKeyMaterial),
            Some(&id_b),
            None
        )
        .await,
        "IncorrectKeyMaterialException"
    );
    assert_code!(
        import_as(&kms, &key, &a, Some(ImportType::NewKeyMaterial), None, None).await,
        "IncorrectKeyMaterialException"
    );
    assert_code!(
        import_as(
            &kms,
            &key,
            &a,
            Some(ImportType::NewKeyMaterial),
            Some(&id_a),
            None
        )
        .await,
        "ValidationException"
    );
    let back = import_as(
        &kms,
        &key,
        &a,
        Some(ImportType::ExistingKeyMaterial),
        Some(&id_a),
        None,
    )
    .await
    .unwrap();
    assert_eq!(back, id_a);
    assert_eq!(
        describe(&kms, &key).await.key_state,
        Some(KeyState::Enabled)
    );
    let d = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob_a.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(d.plaintext().unwrap().as_ref(), b"under the first material");

    // Material pending rotation can be deleted and replaced; the key stays usable.
    let id_c2 = import_as(&kms, &key, &c, Some(ImportType::NewKeyMaterial), None, None)
        .await
        .unwrap();
    assert_eq!(
        id_c2, id_c,
        "the same material into the same key has the same id"
    );
    kms.delete_imported_key_material()
        .key_id(&key)
        .key_material_id(&id_c)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe(&kms, &key).await.key_state,
        Some(KeyState::Enabled)
    );
    assert_eq!(rotations(&kms, &key, true).await.len(), 2);
    let id_d = import_as(
        &kms,
        &key,
        &other,
        Some(ImportType::NewKeyMaterial),
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(rotations(&kms, &key, true).await.len(), 3);
    assert_eq!(rotations(&kms, &key, true).await[2].0, id_d);

    // Every material is its own non-extractable token object.
    server.stop();
    let token = dir.open_token().await;
    token.load_objects().await.unwrap();
    let id = uuid::Uuid::parse_str(&key).unwrap();
    for version in [1, 2, 3] {
        let prot = token
            .key_protection(kms_bridge::kms::token_object_id(&id, version))
            .await
            .unwrap();
        assert!(
            prot.sensitive && !prot.extractable && !prot.value_readable,
            "{prot:?}"
        );
    }
}

/// Asymmetric and HMAC keys have one material for good: the options of several materials are
/// refused, and RotateKeyOnDemand is not offered.
#[tokio::test]
async fn one_material_for_asymmetric_and_hmac_keys() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let hmac = create_external_pair(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let material: [u8; 32] = rand::random();
    for (t, id) in [
        (Some(ImportType::NewKeyMaterial), None),
        (None, Some("0".repeat(64))),
    ] {
        let p = params(&kms, &hmac, AlgorithmSpec::RsaesOaepSha1).await;
        let r = kms
            .import_key_material()
            .key_id(&hmac)
            .import_token(Blob::new(p.token.clone()))
            .encrypted_key_material(Blob::new(oaep_sha1(&p.public_key, &material)))
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .set_import_type(t)
            .set_key_material_id(id)
            .send()
            .await;
        assert_code!(r, "ValidationException");
    }
    let p = params(&kms, &hmac, AlgorithmSpec::RsaesOaepSha1).await;
    import(&kms, &hmac, &p, oaep_sha1(&p.public_key, &material))
        .await
        .unwrap();
    let other: [u8; 32] = rand::random();
    assert_code!(
        import(&kms, &hmac, &p, oaep_sha1(&p.public_key, &other)).await,
        "IncorrectKeyMaterialException"
    );
    assert_code!(
        kms.rotate_key_on_demand().key_id(&hmac).send().await,
        "UnsupportedOperationException"
    );
    assert_code!(
        kms.list_key_rotations().key_id(&hmac).send().await,
        "UnsupportedOperationException"
    );
}

/// Each material expires by its own `ValidTo`: one pending rotation is forgotten, one the key
/// keeps makes the key `PendingImport` until it is imported again.
#[tokio::test]
async fn each_material_expires_by_itself() {
    let dir = TestDir::new();
    let server = lifecycle_server(&dir);
    let kms = server.client();
    let key = create_external(&kms).await;
    let (a, b): ([u8; 32], [u8; 32]) = (rand::random(), rand::random());
    let now = || DateTime::from(std::time::SystemTime::now()).secs();
    let import_until = |material: [u8; 32], t: Option<ImportType>, valid_to: i64| {
        let kms = kms.clone();
        let key = key.clone();
        async move {
            let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha1).await;
            kms.import_key_material()
                .key_id(&key)
                .import_token(Blob::new(p.token.clone()))
                .encrypted_key_material(Blob::new(oaep_sha1(&p.public_key, &material)))
                .valid_to(DateTime::from_secs(valid_to))
                .set_import_type(t)
                .send()
                .await
                .unwrap()
                .key_material_id
                .unwrap()
        }
    };
    let a_valid_to = now() + 10 * DAY;
    let id_a = import_until(a, None, a_valid_to).await;
    let blob_a = encrypts_with(&kms, &key, &a, b"first").await;
    // New material that expires in two (lifecycle) days while pending.
    let id_b = import_until(b, Some(ImportType::NewKeyMaterial), now() + 2 * DAY).await;
    let report = advance(&server, 3 * DAY);
    assert_eq!(report["report"]["expired"], 1, "{report}");
    assert_eq!(
        describe(&kms, &key).await.key_state,
        Some(KeyState::Enabled)
    );
    assert_eq!(
        rotations(&kms, &key, true).await,
        [(id_a.clone(), "CURRENT".into(), "IMPORTED".into(), None)]
    );
    assert_code!(
        kms.rotate_key_on_demand().key_id(&key).send().await,
        "KMSInvalidStateException"
    );

    // Again, and rotated to: now the first material's expiry takes the key down.
    let later = now() + 3 * DAY;
    let id_b2 = import_until(b, Some(ImportType::NewKeyMaterial), later + 300 * DAY).await;
    assert_eq!(id_b2, id_b);
    kms.rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    // The key's ValidTo is the earliest of the materials it keeps.
    let md = describe(&kms, &key).await;
    assert_eq!(md.valid_to.map(|t| t.secs()), Some(a_valid_to));
    assert_eq!(
        md.expiration_model,
        Some(ExpirationModelType::KeyMaterialExpires)
    );
    let report = advance(&server, 8 * DAY);
    assert_eq!(report["report"]["expired"], 1, "{report}");
    assert_eq!(
        describe(&kms, &key).await.key_state,
        Some(KeyState::PendingImport)
    );
    assert_eq!(
        rotations(&kms, &key, true).await[0],
        (
            id_a.clone(),
            "NON_CURRENT".into(),
            "PENDING_IMPORT".into(),
            None
        )
    );
    assert_code!(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob_a.clone()))
            .send()
            .await,
        "KMSInvalidStateException"
    );
    import_until(a, None, now() + 11 * DAY + 30 * DAY).await;
    assert_eq!(
        describe(&kms, &key).await.key_state,
        Some(KeyState::Enabled)
    );
    let d = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob_a))
        .send()
        .await
        .unwrap();
    assert_eq!(d.key_material_id(), Some(id_a.as_str()));
}

/// A crash between the new material's intent and its completion: reconciliation removes the
/// pending material; the key and its first material are untouched.
#[tokio::test]
async fn reconciliation_undoes_an_interrupted_new_material() {
    use kms_bridge::kms::{token_object_id, token_object_label};
    use kms_bridge::store::{MetadataStore, VersionRecord};
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let key = create_external(&kms).await;
    let a: [u8; 32] = rand::random();
    let id_a = import_as(&kms, &key, &a, None, None, None).await.unwrap();
    let blob = encrypts_with(&kms, &key, &a, b"before the crash").await;
    server.stop();

    let id = uuid::Uuid::parse_str(&key).unwrap();
    {
        let store = dir.sealed_store().await;
        store
            .insert_version(&VersionRecord {
                key_id: id,
                version: 2,
                token_object_id: token_object_id(&id, 2),
                material_id: "0".repeat(64),
                created_at: 1,
                rotation_type: None,
                pending: true,
            })
            .await
            .unwrap();
        let token = dir.open_token().await;
        token
            .generate_aes_key(token_object_id(&id, 2), token_object_label(&id, 2))
            .await
            .unwrap();
    }
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    assert!(server
        .log()
        .contains("removed an import interrupted by a crash"));
    assert_eq!(
        describe(&kms, &key).await.key_state,
        Some(KeyState::Enabled)
    );
    assert_eq!(
        rotations(&kms, &key, true).await,
        [(id_a.clone(), "CURRENT".into(), "IMPORTED".into(), None)]
    );
    let d = kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob))
        .send()
        .await
        .unwrap();
    assert_eq!(d.key_material_id(), Some(id_a.as_str()));
    server.stop();
    let token = dir.open_token().await;
    assert!(!token.exists(token_object_id(&id, 2)).await.unwrap());
}
