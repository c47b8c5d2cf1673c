//! Asymmetric and HMAC keys through the AWS SDK: every key spec × algorithm × message type,
//! with signatures verified, ciphertexts produced and private keys parsed by independent
//! implementations (RustCrypto crates and the openssl command line).

mod common;
use common::*;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec as Enc, KeySpec, KeyUsageType, MacAlgorithmSpec,
    MessageType, SigningAlgorithmSpec as Sig,
};
use aws_sdk_kms::Client;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};

async fn create(kms: &Client, spec: KeySpec, usage: KeyUsageType) -> String {
    new_key(kms, spec, usage).await
}

/// Create several keys concurrently (RSA key generation takes a while in SoftHSM).
async fn create_all(kms: &Client, specs: &[(KeySpec, KeyUsageType)]) -> Vec<String> {
    let tasks: Vec<_> = specs
        .iter()
        .map(|(s, u)| {
            let (kms, s, u) = (kms.clone(), s.clone(), u.clone());
            tokio::spawn(async move { create(&kms, s, u).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids
}

fn hash_of(alg: &Sig, msg: &[u8]) -> Vec<u8> {
    match alg.as_str() {
        s if s.ends_with("256") => Sha256::digest(msg).to_vec(),
        s if s.ends_with("384") => Sha384::digest(msg).to_vec(),
        _ => Sha512::digest(msg).to_vec(),
    }
}

async fn public_key(kms: &Client, key: &str) -> Vec<u8> {
    kms.get_public_key()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap()
        .into_inner()
}

async fn sign(kms: &Client, key: &str, alg: &Sig, mt: &MessageType, msg: &[u8]) -> Vec<u8> {
    kms.sign()
        .key_id(key)
        .signing_algorithm(alg.clone())
        .message_type(mt.clone())
        .message(Blob::new(msg.to_vec()))
        .send()
        .await
        .unwrap()
        .signature
        .unwrap()
        .into_inner()
}

fn verify_req(
    kms: &Client,
    key: &str,
    alg: &Sig,
    mt: &MessageType,
    msg: &[u8],
    sig: &[u8],
) -> aws_sdk_kms::operation::verify::builders::VerifyFluentBuilder {
    kms.verify()
        .key_id(key)
        .signing_algorithm(alg.clone())
        .message_type(mt.clone())
        .message(Blob::new(msg.to_vec()))
        .signature(Blob::new(sig.to_vec()))
}

/// Verify a signature outside the server with the SPKI from GetPublicKey.
fn host_verify(spki: &[u8], alg: &Sig, digest: &[u8], sig: &[u8]) {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    macro_rules! ecdsa {
        ($curve:ident) => {{
            let pk = $curve::PublicKey::from_public_key_der(spki).expect("EC SPKI");
            let vk = $curve::ecdsa::VerifyingKey::from(pk);
            let sig = $curve::ecdsa::Signature::from_der(sig).expect("DER ECDSA signature");
            vk.verify_prehash(digest, &sig).is_ok()
        }};
    }
    let ok = match alg.as_str() {
        a if a.starts_with("ECDSA") => {
            if p256::PublicKey::from_public_key_der(spki).is_ok() {
                ecdsa!(p256)
            } else if let Ok(pk) = k256::PublicKey::from_public_key_der(spki) {
                // KMS does not normalize s (like AWS); `k256` verifies low-s only.
                let sig = k256::ecdsa::Signature::from_der(sig).expect("DER ECDSA signature");
                let sig = sig.normalize_s().unwrap_or(sig);
                k256::ecdsa::VerifyingKey::from(pk)
                    .verify_prehash(digest, &sig)
                    .is_ok()
            } else if p384::PublicKey::from_public_key_der(spki).is_ok() {
                ecdsa!(p384)
            } else {
                let pk = p521::PublicKey::from_public_key_der(spki).expect("P-521 SPKI");
                let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(
                    p521::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&pk, false)
                        .as_bytes(),
                )
                .unwrap();
                let sig = p521::ecdsa::Signature::from_der(sig).expect("DER ECDSA signature");
                vk.verify_prehash(digest, &sig).is_ok()
            }
        }
        a => {
            let pk = rsa::RsaPublicKey::from_public_key_der(spki).expect("RSA SPKI");
            let r = match a {
                "RSASSA_PKCS1_V1_5_SHA_256" => {
                    pk.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), digest, sig)
                }
                "RSASSA_PKCS1_V1_5_SHA_384" => {
                    pk.verify(rsa::Pkcs1v15Sign::new::<Sha384>(), digest, sig)
                }
                "RSASSA_PKCS1_V1_5_SHA_512" => {
                    pk.verify(rsa::Pkcs1v15Sign::new::<Sha512>(), digest, sig)
                }
                "RSASSA_PSS_SHA_256" => pk.verify(rsa::Pss::new::<Sha256>(), digest, sig),
                "RSASSA_PSS_SHA_384" => pk.verify(rsa::Pss::new::<Sha384>(), digest, sig),
                "RSASSA_PSS_SHA_512" => pk.verify(rsa::Pss::new::<Sha512>(), digest, sig),
                other => panic!("unexpected algorithm {other}"),
            };
            r.is_ok()
        }
    };
    assert!(
        ok,
        "{alg:?} signature does not verify outside the server: spki {} sig {}",
        hex::encode(spki),
        hex::encode(sig)
    );
}

/// Sign and verify every algorithm of `key` with RAW and DIGEST messages; check each signature
/// outside the server; return how many signatures were checked.
async fn sign_verify_all(kms: &Client, key: &str, other_key: &str) -> usize {
    let meta = kms
        .describe_key()
        .key_id(key)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let algs = meta.signing_algorithms.clone().unwrap();
    assert!(meta.encryption_algorithms.is_none() && meta.mac_algorithms.is_none());
    let spki = public_key(kms, key).await;
    let msg = b"sign me: kms-bridge asymmetric test message".to_vec();
    let mut n = 0;
    for alg in &algs {
        let digest = hash_of(alg, &msg);
        for (mt, input) in [(MessageType::Raw, &msg), (MessageType::Digest, &digest)] {
            let sig = sign(kms, key, alg, &mt, input).await;
            host_verify(&spki, alg, &digest, &sig);
            let v = verify_req(kms, key, alg, &mt, input, &sig)
                .send()
                .await
                .unwrap();
            assert!(v.signature_valid);
            assert_eq!(v.signing_algorithm, Some(alg.clone()));
            n += 1;
        }
        // A RAW signature verifies as DIGEST of the same hash, and vice versa.
        let sig = sign(kms, key, alg, &MessageType::Raw, &msg).await;
        verify_req(kms, key, alg, &MessageType::Digest, &digest, &sig)
            .send()
            .await
            .unwrap();
        // Altered signature, altered message, signature from another key: invalid.
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last / 2] ^= 0x01;
        assert_code!(
            verify_req(kms, key, alg, &MessageType::Raw, &msg, &bad)
                .send()
                .await,
            "KMSInvalidSignatureException"
        );
        assert_code!(
            verify_req(kms, key, alg, &MessageType::Raw, b"other message", &sig)
                .send()
                .await,
            "KMSInvalidSignatureException"
        );
        let foreign = sign(kms, other_key, alg, &MessageType::Raw, &msg).await;
        assert_code!(
            verify_req(kms, key, alg, &MessageType::Raw, &msg, &foreign)
                .send()
                .await,
            "KMSInvalidSignatureException"
        );
        // DIGEST of the wrong length.
        for len in [digest.len() - 1, digest.len() + 1] {
            assert_code!(
                kms.sign()
                    .key_id(key)
                    .signing_algorithm(alg.clone())
                    .message_type(MessageType::Digest)
                    .message(Blob::new(vec![1; len]))
                    .send()
                    .await,
                "ValidationException"
            );
        }
    }
    // An algorithm of another key type.
    let wrong = if algs[0].as_str().starts_with("ECDSA") {
        Sig::RsassaPssSha256
    } else {
        Sig::EcdsaSha256
    };
    assert_code!(
        kms.sign()
            .key_id(key)
            .signing_algorithm(wrong)
            .message(Blob::new(msg.clone()))
            .send()
            .await,
        "InvalidKeyUsageException"
    );
    n
}

#[tokio::test]
async fn ecc_keys_sign_and_verify_every_algorithm() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let mut specs = vec![
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
    ];
    if token_has_secp256k1() {
        specs.push(KeySpec::EccSecgP256K1);
    } else {
        // A token without the curve: refused up front, naming the key spec.
        assert_spec_unsupported(
            kms.create_key().key_usage(KeyUsageType::SignVerify),
            &KeySpec::EccSecgP256K1,
        )
        .await;
    }
    let pairs: Vec<_> = specs
        .iter()
        .map(|s| (s.clone(), KeyUsageType::SignVerify))
        .collect();
    let keys = create_all(&kms, &pairs).await;
    let others = create_all(&kms, &pairs).await;
    let mut n = 0;
    for (key, other) in keys.iter().zip(&others) {
        n += sign_verify_all(&kms, key, other).await;
    }
    assert_eq!(n, specs.len() * 2);

    // The P-256 signature is DER (SEQUENCE of two INTEGERs), not raw r‖s.
    let sig = sign(&kms, &keys[0], &Sig::EcdsaSha256, &MessageType::Raw, b"x").await;
    assert_eq!(sig[0], 0x30);
    assert_eq!(sig[1] as usize + 2, sig.len());

    // Oversize RAW message; the maximum is fine.
    assert_code!(
        kms.sign()
            .key_id(&keys[0])
            .signing_algorithm(Sig::EcdsaSha256)
            .message(Blob::new(vec![0; 4097]))
            .send()
            .await,
        "ValidationException"
    );
    sign(
        &kms,
        &keys[0],
        &Sig::EcdsaSha256,
        &MessageType::Raw,
        &[7; 4096],
    )
    .await;

    // A disabled key neither signs nor verifies; GetPublicKey is refused too.
    kms.disable_key().key_id(&keys[0]).send().await.unwrap();
    assert_code!(
        kms.sign()
            .key_id(&keys[0])
            .signing_algorithm(Sig::EcdsaSha256)
            .message(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "DisabledException"
    );
    assert_code!(
        verify_req(
            &kms,
            &keys[0],
            &Sig::EcdsaSha256,
            &MessageType::Raw,
            b"x",
            &sig
        )
        .send()
        .await,
        "DisabledException"
    );
    assert_code!(
        kms.get_public_key().key_id(&keys[0]).send().await,
        "DisabledException"
    );
}

#[tokio::test]
async fn rsa_keys_sign_and_verify_every_algorithm() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let pairs: Vec<_> = [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096]
        .into_iter()
        .map(|s| (s, KeyUsageType::SignVerify))
        .collect();
    let keys = create_all(&kms, &pairs).await;
    let mut n = 0;
    for (i, key) in keys.iter().enumerate() {
        n += sign_verify_all(&kms, key, &keys[(i + 1) % keys.len()]).await;
    }
    assert_eq!(n, 3 * 6 * 2);

    let g = kms.get_public_key().key_id(&keys[0]).send().await.unwrap();
    assert_eq!(g.key_spec, Some(KeySpec::Rsa2048));
    assert_eq!(g.key_usage, Some(KeyUsageType::SignVerify));
    assert_eq!(g.signing_algorithms.unwrap().len(), 6);
    assert!(g.encryption_algorithms.is_none());

    // Key usage mismatch: a signing key does not encrypt.
    assert_code!(
        kms.encrypt()
            .key_id(&keys[0])
            .encryption_algorithm(Enc::RsaesOaepSha256)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "InvalidKeyUsageException"
    );
    // Rotation is for symmetric keys only.
    assert_code!(
        kms.enable_key_rotation().key_id(&keys[0]).send().await,
        "UnsupportedOperationException"
    );
    assert_code!(
        kms.rotate_key_on_demand().key_id(&keys[0]).send().await,
        "UnsupportedOperationException"
    );
}

fn openssl(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn decrypt(kms: &Client, key: &str, alg: &Enc, ct: &[u8]) -> Vec<u8> {
    let d = kms
        .decrypt()
        .key_id(key)
        .encryption_algorithm(alg.clone())
        .ciphertext_blob(Blob::new(ct.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(d.encryption_algorithm, Some(alg.clone()));
    d.plaintext.unwrap().into_inner()
}

#[tokio::test]
async fn rsa_keys_encrypt_and_decrypt_with_oaep() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let pairs: Vec<_> = [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096]
        .into_iter()
        .map(|s| (s, KeyUsageType::EncryptDecrypt))
        .collect();
    let keys = create_all(&kms, &pairs).await;
    let limits = [(214, 190), (342, 318), (470, 446)];
    let mut rng = rand::thread_rng();
    for (key, (sha1_max, sha256_max)) in keys.iter().zip(limits) {
        let meta = kms.describe_key().key_id(key).send().await.unwrap();
        let meta = meta.key_metadata.unwrap();
        assert_eq!(
            meta.encryption_algorithms.unwrap(),
            vec![Enc::RsaesOaepSha1, Enc::RsaesOaepSha256]
        );
        assert!(meta.signing_algorithms.is_none());
        let spki = public_key(&kms, key).await;
        let pk = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
        for (alg, max) in [
            (Enc::RsaesOaepSha1, sha1_max),
            (Enc::RsaesOaepSha256, sha256_max),
        ] {
            for len in [1, max] {
                let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let e = kms
                    .encrypt()
                    .key_id(key)
                    .encryption_algorithm(alg.clone())
                    .plaintext(Blob::new(pt.clone()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(e.encryption_algorithm, Some(alg.clone()));
                let ct = e.ciphertext_blob.unwrap().into_inner();
                assert_eq!(ct.len(), pk.size());
                assert_eq!(decrypt(&kms, key, &alg, &ct).await, pt);
                // Encrypted outside with the exported public key (RustCrypto `rsa`).
                let ct = if alg == Enc::RsaesOaepSha1 {
                    pk.encrypt(&mut rng, rsa::Oaep::new::<sha1::Sha1>(), &pt)
                } else {
                    pk.encrypt(&mut rng, rsa::Oaep::new::<Sha256>(), &pt)
                }
                .unwrap();
                assert_eq!(decrypt(&kms, key, &alg, &ct).await, pt);
                // Tampered ciphertext and the other OAEP hash: one error, no detail.
                let mut bad = ct.clone();
                bad[10] ^= 1;
                let other = if alg == Enc::RsaesOaepSha1 {
                    Enc::RsaesOaepSha256
                } else {
                    Enc::RsaesOaepSha1
                };
                for (a, c) in [(&alg, &bad), (&other, &ct), (&alg, &ct[1..].to_vec())] {
                    let r = kms
                        .decrypt()
                        .key_id(key)
                        .encryption_algorithm(a.clone())
                        .ciphertext_blob(Blob::new(c.clone()))
                        .send()
                        .await;
                    assert_code!(r, "InvalidCiphertextException");
                }
            }
            // One byte over the limit.
            assert_code!(
                kms.encrypt()
                    .key_id(key)
                    .encryption_algorithm(alg.clone())
                    .plaintext(Blob::new(vec![0; max + 1]))
                    .send()
                    .await,
                "ValidationException"
            );
        }
    }

    // openssl encrypts with the exported public key (OAEP SHA-256 and SHA-1).
    let spki = public_key(&kms, &keys[0]).await;
    let pub_path = dir.path.join("rsa-pub.der");
    std::fs::write(&pub_path, &spki).unwrap();
    let pt_path = dir.path.join("pt.bin");
    std::fs::write(&pt_path, b"encrypted by openssl").unwrap();
    for (md, alg) in [
        ("sha256", Enc::RsaesOaepSha256),
        ("sha1", Enc::RsaesOaepSha1),
    ] {
        let ct_path = dir.path.join(format!("ct-{md}.bin"));
        openssl(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            pub_path.to_str().unwrap(),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &format!("rsa_oaep_md:{md}"),
            "-pkeyopt",
            &format!("rsa_mgf1_md:{md}"),
            "-in",
            pt_path.to_str().unwrap(),
            "-out",
            ct_path.to_str().unwrap(),
        ]);
        let ct = std::fs::read(&ct_path).unwrap();
        assert_eq!(
            decrypt(&kms, &keys[0], &alg, &ct).await,
            b"encrypted by openssl"
        );
    }

    // Asymmetric encryption: algorithm required, no encryption context, no signing.
    let pt = Blob::new(b"x".to_vec());
    assert_code!(
        kms.encrypt()
            .key_id(&keys[0])
            .plaintext(pt.clone())
            .send()
            .await,
        "InvalidKeyUsageException"
    );
    assert_code!(
        kms.encrypt()
            .key_id(&keys[0])
            .encryption_algorithm(Enc::RsaesOaepSha256)
            .encryption_context("a", "b")
            .plaintext(pt.clone())
            .send()
            .await,
        "ValidationException"
    );
    assert_code!(
        kms.sign()
            .key_id(&keys[0])
            .signing_algorithm(Sig::RsassaPssSha256)
            .message(pt.clone())
            .send()
            .await,
        "InvalidKeyUsageException"
    );
    kms.disable_key().key_id(&keys[0]).send().await.unwrap();
    assert_code!(
        kms.encrypt()
            .key_id(&keys[0])
            .encryption_algorithm(Enc::RsaesOaepSha256)
            .plaintext(pt)
            .send()
            .await,
        "DisabledException"
    );
}

#[tokio::test]
async fn hmac_keys_generate_and_verify_macs() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let specs = [
        (KeySpec::Hmac224, MacAlgorithmSpec::HmacSha224, 28),
        (KeySpec::Hmac256, MacAlgorithmSpec::HmacSha256, 32),
        (KeySpec::Hmac384, MacAlgorithmSpec::HmacSha384, 48),
        (KeySpec::Hmac512, MacAlgorithmSpec::HmacSha512, 64),
    ];
    let other = create(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    for (spec, alg, len) in specs {
        let key = create(&kms, spec.clone(), KeyUsageType::GenerateVerifyMac).await;
        let meta = kms.describe_key().key_id(&key).send().await.unwrap();
        let meta = meta.key_metadata.unwrap();
        assert_eq!(meta.mac_algorithms.unwrap(), vec![alg.clone()]);
        assert!(meta.encryption_algorithms.is_none() && meta.signing_algorithms.is_none());
        for msg in [&b"m"[..], &[9u8; 4096][..]] {
            let mac = kms
                .generate_mac()
                .key_id(&key)
                .mac_algorithm(alg.clone())
                .message(Blob::new(msg.to_vec()))
                .send()
                .await
                .unwrap()
                .mac
                .unwrap()
                .into_inner();
            assert_eq!(mac.len(), len);
            let v = kms
                .verify_mac()
                .key_id(&key)
                .mac_algorithm(alg.clone())
                .message(Blob::new(msg.to_vec()))
                .mac(Blob::new(mac.clone()))
                .send()
                .await
                .unwrap();
            assert!(v.mac_valid);
            let verify = |m: &[u8], mac: &[u8], key: &str, alg: MacAlgorithmSpec| {
                kms.verify_mac()
                    .key_id(key)
                    .mac_algorithm(alg)
                    .message(Blob::new(m.to_vec()))
                    .mac(Blob::new(mac.to_vec()))
                    .send()
            };
            assert_code!(
                verify(msg, &mac[..len - 1], &key, alg.clone()).await,
                "KMSInvalidMacException"
            );
            let mut bad = mac.clone();
            bad[0] ^= 1;
            assert_code!(
                verify(msg, &bad, &key, alg.clone()).await,
                "KMSInvalidMacException"
            );
            assert_code!(
                verify(b"other", &mac, &key, alg.clone()).await,
                "KMSInvalidMacException"
            );
            if spec == KeySpec::Hmac256 {
                assert_code!(
                    verify(msg, &mac, &other, alg.clone()).await,
                    "KMSInvalidMacException"
                );
            }
        }
        // Wrong algorithm for the key; oversize message.
        let wrong = if alg == MacAlgorithmSpec::HmacSha256 {
            MacAlgorithmSpec::HmacSha512
        } else {
            MacAlgorithmSpec::HmacSha256
        };
        assert_code!(
            kms.generate_mac()
                .key_id(&key)
                .mac_algorithm(wrong)
                .message(Blob::new(b"m".to_vec()))
                .send()
                .await,
            "InvalidKeyUsageException"
        );
        assert_code!(
            kms.generate_mac()
                .key_id(&key)
                .mac_algorithm(alg.clone())
                .message(Blob::new(vec![0; 4097]))
                .send()
                .await,
            "ValidationException"
        );
        assert_code!(
            kms.get_public_key().key_id(&key).send().await,
            "UnsupportedOperationException"
        );
    }
    // Keys of other types do not make MACs.
    let sym = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    assert_code!(
        kms.generate_mac()
            .key_id(&sym.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(b"m".to_vec()))
            .send()
            .await,
        "InvalidKeyUsageException"
    );
}

#[tokio::test]
async fn data_key_pairs_for_every_spec() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[]);
    let kms = server.client();
    let wrapping = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    let specs = [
        DataKeyPairSpec::EccNistP256,
        DataKeyPairSpec::EccNistP384,
        DataKeyPairSpec::EccNistP521,
        DataKeyPairSpec::EccSecgP256K1,
        DataKeyPairSpec::Rsa2048,
        DataKeyPairSpec::Rsa3072,
        DataKeyPairSpec::Rsa4096,
    ];
    for spec in specs {
        if spec == DataKeyPairSpec::EccSecgP256K1 && !token_has_secp256k1() {
            let r = kms
                .generate_data_key_pair()
                .key_id(&wrapping.key_id)
                .key_pair_spec(spec.clone())
                .send()
                .await;
            assert_code!(r, "UnsupportedOperationException");
            continue;
        }
        let r = kms
            .generate_data_key_pair()
            .key_id(&wrapping.key_id)
            .key_pair_spec(spec.clone())
            .encryption_context("purpose", "test")
            .send()
            .await
            .unwrap();
        assert_eq!(r.key_pair_spec, Some(spec.clone()));
        let public = r.public_key.unwrap().into_inner();
        let private = r.private_key_plaintext.unwrap().into_inner();
        let blob = r.private_key_ciphertext_blob.unwrap().into_inner();
        // The private key parses and matches the public key.
        macro_rules! ec_matches {
            ($curve:ident) => {{
                let sk = $curve::SecretKey::from_pkcs8_der(&private).expect("PKCS#8 EC key");
                assert_eq!(
                    sk.public_key(),
                    $curve::PublicKey::from_public_key_der(&public).unwrap()
                );
            }};
        }
        match spec {
            DataKeyPairSpec::EccNistP256 => ec_matches!(p256),
            DataKeyPairSpec::EccNistP384 => ec_matches!(p384),
            DataKeyPairSpec::EccNistP521 => ec_matches!(p521),
            DataKeyPairSpec::EccSecgP256K1 => ec_matches!(k256),
            _ => {
                let sk = rsa::RsaPrivateKey::from_pkcs8_der(&private).expect("PKCS#8 RSA key");
                sk.validate().unwrap();
                assert_eq!(
                    sk.to_public_key().to_public_key_der().unwrap().as_bytes(),
                    public.as_slice()
                );
            }
        }
        // openssl loads it and derives the same public key.
        let path = dir.path.join(format!("{}.der", spec.as_str()));
        std::fs::write(&path, &private).unwrap();
        let out = openssl(&[
            "pkey",
            "-in",
            path.to_str().unwrap(),
            "-inform",
            "DER",
            "-pubout",
            "-outform",
            "DER",
        ]);
        assert_eq!(out.stdout, public, "{spec:?}");
        // The encrypted copy decrypts under the symmetric key and context.
        let d = kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .encryption_context("purpose", "test")
            .send()
            .await
            .unwrap();
        assert_eq!(d.plaintext.unwrap().into_inner(), private);
        assert_code!(
            kms.decrypt().ciphertext_blob(Blob::new(blob)).send().await,
            "InvalidCiphertextException"
        );
    }
    let r = kms
        .generate_data_key_pair_without_plaintext()
        .key_id(&wrapping.key_id)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap();
    assert!(r.public_key.is_some() && r.private_key_ciphertext_blob.is_some());
    // Asymmetric keys cannot wrap data key pairs; unsupported pair specs are refused.
    let signing = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    assert_code!(
        kms.generate_data_key_pair()
            .key_id(&signing)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .send()
            .await,
        "InvalidKeyUsageException"
    );
    assert_code!(
        kms.generate_data_key_pair()
            .key_id(&wrapping.key_id)
            .key_pair_spec(DataKeyPairSpec::Sm2)
            .send()
            .await,
        "UnsupportedOperationException"
    );
}

#[tokio::test]
async fn key_spec_and_usage_combinations_are_validated() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let bad = [
        (KeySpec::Hmac256, None),
        (KeySpec::Hmac256, Some(KeyUsageType::SignVerify)),
        (KeySpec::Rsa2048, None),
        (KeySpec::Rsa2048, Some(KeyUsageType::GenerateVerifyMac)),
        (KeySpec::EccNistP256, Some(KeyUsageType::EncryptDecrypt)),
        (KeySpec::EccSecgP256K1, Some(KeyUsageType::KeyAgreement)),
        (KeySpec::SymmetricDefault, Some(KeyUsageType::SignVerify)),
    ];
    for (spec, usage) in bad {
        let mut req = kms.create_key().key_spec(spec.clone());
        if let Some(u) = usage.clone() {
            req = req.key_usage(u);
        }
        assert_code!(req.send().await, "ValidationException");
    }
    // ML-DSA and Ed25519 sign only (AWS); ML-DSA is refused by a token without it.
    for spec in [KeySpec::MlDsa44, KeySpec::EccNistEdwards25519] {
        assert_code!(
            kms.create_key()
                .key_spec(spec)
                .key_usage(KeyUsageType::EncryptDecrypt)
                .send()
                .await,
            "ValidationException"
        );
    }
    if !token_has_post_quantum() {
        assert_code!(
            kms.create_key()
                .key_spec(KeySpec::MlDsa44)
                .key_usage(KeyUsageType::SignVerify)
                .send()
                .await,
            "UnsupportedOperationException"
        );
    }
    // Grants allow only operations of the key's type.
    let signing = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let grant = |ops: Vec<aws_sdk_kms::types::GrantOperation>| {
        kms.create_grant()
            .key_id(&signing)
            .grantee_principal(format!("arn:aws:iam::{ACCOUNT}:user/someone"))
            .set_operations(Some(ops))
            .send()
    };
    use aws_sdk_kms::types::GrantOperation as G;
    grant(vec![G::Sign, G::Verify, G::GetPublicKey])
        .await
        .unwrap();
    assert_code!(grant(vec![G::Encrypt]).await, "ValidationException");
    assert_code!(grant(vec![G::GenerateMac]).await, "ValidationException");
    // Symmetric keys have no public key and do not sign.
    let sym = kms.create_key().send().await.unwrap().key_metadata.unwrap();
    assert!(sym.signing_algorithms.is_none());
    assert_code!(
        kms.get_public_key().key_id(&sym.key_id).send().await,
        "UnsupportedOperationException"
    );
    assert_code!(
        kms.sign()
            .key_id(&sym.key_id)
            .signing_algorithm(Sig::EcdsaSha256)
            .message(Blob::new(b"x".to_vec()))
            .send()
            .await,
        "InvalidKeyUsageException"
    );
}

/// ReEncrypt between symmetric and RSA keys in every direction, with the algorithms and
/// material ids AWS reports.
#[tokio::test]
async fn re_encrypt_between_symmetric_and_rsa_keys() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let sym = create(
        &kms,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let rsa = create(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let rsa2 = create(&kms, KeySpec::Rsa3072, KeyUsageType::EncryptDecrypt).await;
    let secret = b"move me between keys".to_vec();
    let blob = kms
        .encrypt()
        .key_id(&sym)
        .plaintext(Blob::new(secret.clone()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();

    // Symmetric → RSA.
    let r = kms
        .re_encrypt()
        .ciphertext_blob(blob)
        .destination_key_id(&rsa)
        .destination_encryption_algorithm(Enc::RsaesOaepSha256)
        .send()
        .await
        .unwrap();
    assert_eq!(r.source_encryption_algorithm, Some(Enc::SymmetricDefault));
    assert_eq!(
        r.destination_encryption_algorithm,
        Some(Enc::RsaesOaepSha256)
    );
    assert!(r.source_key_material_id.is_some() && r.destination_key_material_id.is_none());
    assert!(r.key_id.unwrap().ends_with(&rsa));
    let to_rsa = r.ciphertext_blob.unwrap().into_inner();
    assert_eq!(to_rsa.len(), 256);
    assert_eq!(
        decrypt(&kms, &rsa, &Enc::RsaesOaepSha256, &to_rsa).await,
        secret
    );

    // RSA → RSA (another size and hash).
    let r = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(to_rsa.clone()))
        .source_key_id(&rsa)
        .source_encryption_algorithm(Enc::RsaesOaepSha256)
        .destination_key_id(&rsa2)
        .destination_encryption_algorithm(Enc::RsaesOaepSha1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.source_encryption_algorithm, Some(Enc::RsaesOaepSha256));
    assert_eq!(r.destination_encryption_algorithm, Some(Enc::RsaesOaepSha1));
    assert!(r.source_key_id.unwrap().ends_with(&rsa));
    let to_rsa2 = r.ciphertext_blob.unwrap().into_inner();
    assert_eq!(to_rsa2.len(), 384);
    assert_eq!(
        decrypt(&kms, &rsa2, &Enc::RsaesOaepSha1, &to_rsa2).await,
        secret
    );

    // RSA → symmetric.
    let r = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(to_rsa2))
        .source_key_id(&rsa2)
        .source_encryption_algorithm(Enc::RsaesOaepSha1)
        .destination_key_id(&sym)
        .destination_encryption_context("purpose", "test")
        .send()
        .await
        .unwrap();
    assert!(r.source_key_material_id.is_none() && r.destination_key_material_id.is_some());
    let back = kms
        .decrypt()
        .ciphertext_blob(r.ciphertext_blob.unwrap())
        .encryption_context("purpose", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext.unwrap().into_inner(), secret);

    // Errors as for Decrypt and Encrypt with these keys.
    assert_code!(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(to_rsa.clone()))
            .source_encryption_algorithm(Enc::RsaesOaepSha256)
            .destination_key_id(&sym)
            .send()
            .await,
        "ValidationException"
    );
    let plain_encrypt = kms
        .encrypt()
        .key_id(&rsa)
        .plaintext(Blob::new(secret.clone()))
        .send()
        .await;
    let expected = code(&plain_encrypt.unwrap_err());
    assert_code!(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(to_rsa.clone()))
            .source_key_id(&rsa)
            .source_encryption_algorithm(Enc::RsaesOaepSha256)
            .destination_key_id(&rsa2)
            .send()
            .await,
        expected.as_str()
    );
    assert_code!(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(to_rsa.clone()))
            .source_key_id(&rsa)
            .source_encryption_algorithm(Enc::RsaesOaepSha1)
            .destination_key_id(&sym)
            .send()
            .await,
        "InvalidCiphertextException"
    );
    server.stop();
}

/// Ed25519 keys (both tokens) and ML-DSA keys (where the token has them: Kryoptic), checked by
/// outside verifiers (ed25519-dalek, RustCrypto's ml-dsa) with the public keys GetPublicKey
/// gives; refused up front, naming the key spec, where the token has not (SoftHSM 2.6.1).
#[tokio::test]
async fn ed25519_and_ml_dsa_keys_sign_what_outside_verifiers_accept() {
    use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let specs = [
        (
            KeySpec::EccNistEdwards25519,
            SigningAlgorithmSpec::Ed25519Sha512,
        ),
        (KeySpec::MlDsa44, SigningAlgorithmSpec::MlDsaShake256),
        (KeySpec::MlDsa65, SigningAlgorithmSpec::MlDsaShake256),
        (KeySpec::MlDsa87, SigningAlgorithmSpec::MlDsaShake256),
    ];
    let (specs, missing): (Vec<_>, Vec<_>) = specs
        .into_iter()
        .partition(|(spec, _)| *spec == KeySpec::EccNistEdwards25519 || token_has_post_quantum());
    for (spec, _) in missing {
        assert_spec_unsupported(kms.create_key().key_usage(KeyUsageType::SignVerify), &spec).await;
    }
    let message = b"signed in the token, verified outside".to_vec();
    for (spec, alg) in specs {
        let key = created_metadata(
            kms.create_key()
                .key_spec(spec.clone())
                .key_usage(KeyUsageType::SignVerify),
        )
        .await;
        assert_eq!(key.signing_algorithms(), {
            if spec == KeySpec::EccNistEdwards25519 {
                vec![
                    SigningAlgorithmSpec::Ed25519Sha512,
                    SigningAlgorithmSpec::Ed25519PhSha512,
                ]
            } else {
                vec![SigningAlgorithmSpec::MlDsaShake256]
            }
        });
        let id = key.key_id;
        let sign = |m: Vec<u8>, mt: MessageType, alg: SigningAlgorithmSpec| {
            kms.sign()
                .key_id(&id)
                .message(Blob::new(m))
                .message_type(mt)
                .signing_algorithm(alg)
                .send()
        };
        let signature = sign(message.clone(), MessageType::Raw, alg.clone())
            .await
            .unwrap()
            .signature
            .unwrap()
            .into_inner();
        let spki = kms
            .get_public_key()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .public_key
            .unwrap()
            .into_inner();
        let outside = outside_verify(&spec, &spki, &message, &signature);
        assert!(
            outside,
            "{spec:?}: the outside verifier refuses the signature"
        );
        let mut other = message.clone();
        other[0] ^= 1;
        assert!(!outside_verify(&spec, &spki, &other, &signature));
        let verify = |m: Vec<u8>| {
            kms.verify()
                .key_id(&id)
                .message(Blob::new(m))
                .message_type(MessageType::Raw)
                .signature(Blob::new(signature.clone()))
                .signing_algorithm(alg.clone())
                .send()
        };
        assert!(verify(message.clone()).await.unwrap().signature_valid);
        assert_code!(verify(other).await, "KMSInvalidSignatureException");
        // A digest is not what these algorithms sign.
        assert_code!(
            sign(vec![0; 64], MessageType::Digest, alg.clone()).await,
            "ValidationException"
        );
        if spec == KeySpec::EccNistEdwards25519 {
            // Ed25519ph over a caller's digest: the token hashes Ed25519ph input itself.
            assert_code!(
                sign(
                    vec![0; 64],
                    MessageType::Digest,
                    SigningAlgorithmSpec::Ed25519PhSha512
                )
                .await,
                "UnsupportedOperationException"
            );
            assert_code!(
                sign(
                    vec![0; 63],
                    MessageType::Digest,
                    SigningAlgorithmSpec::Ed25519PhSha512
                )
                .await,
                "ValidationException"
            );
        }
    }
}

fn outside_verify(spec: &KeySpec, spki: &[u8], message: &[u8], signature: &[u8]) -> bool {
    fn ml_dsa<P>(spki: &[u8], message: &[u8], signature: &[u8]) -> bool
    where
        P: ml_dsa::MlDsaParams,
        ml_dsa::VerifyingKey<P>: ml_dsa::pkcs8::DecodePublicKey,
    {
        use ml_dsa::pkcs8::DecodePublicKey;
        use ml_dsa::signature::Verifier;
        let vk = ml_dsa::VerifyingKey::<P>::from_public_key_der(spki)
            .expect("ML-DSA SubjectPublicKeyInfo");
        ml_dsa::Signature::<P>::try_from(signature).is_ok_and(|s| vk.verify(message, &s).is_ok())
    }
    match spec {
        KeySpec::EccNistEdwards25519 => {
            use ed25519_dalek::pkcs8::DecodePublicKey;
            use ed25519_dalek::Verifier;
            let vk = ed25519_dalek::VerifyingKey::from_public_key_der(spki)
                .expect("Ed25519 SubjectPublicKeyInfo");
            ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| vk.verify(message, &s).is_ok())
        }
        KeySpec::MlDsa44 => ml_dsa::<ml_dsa::MlDsa44>(spki, message, signature),
        KeySpec::MlDsa65 => ml_dsa::<ml_dsa::MlDsa65>(spki, message, signature),
        KeySpec::MlDsa87 => ml_dsa::<ml_dsa::MlDsa87>(spki, message, signature),
        other => panic!("{other:?}"),
    }
}
