//! Project Wycheproof vectors (../shared/reference/wycheproof) through the production
//! verification paths `kms::verify_signature` and `kms::verify_mac`: each group's public key
//! (or HMAC key) is imported into a SoftHSM token as a session object
//! (`Token::import_*_for_tests`), then every vector is verified exactly as Verify/VerifyMac do
//! after authorization.
//!
//! Only parameters AWS KMS offers run: ECDSA P-256/secp256k1 + SHA-256, P-384 + SHA-384,
//! P-521 + SHA-512 (DER signatures); RSASSA-PSS with SHA-256/384/512, MGF1 of the same hash and
//! salt = hash length, 2048/3072/4096-bit keys; RSASSA-PKCS1-v1_5 with SHA-256/384/512; HMAC
//! SHA-224/256/384/512 with full-length tags and keys at least as long as the hash (as KMS
//! HMAC keys are). Truncated-tag HMAC groups run too, expecting
//! rejection: KMS never accepts a truncated MAC.
//!
//! `valid` must verify and `invalid` must be rejected with the invalid-signature/MAC error (any
//! other error would be a 500 and fails the test). `acceptable` (only in the PKCS#1 files:
//! legacy DigestInfo encodings) must be rejected too: we build the one DER DigestInfo of
//! RFC 8017 (with NULL parameters) and the token compares the whole encoded block, as AWS does.
//! Counts are asserted so the test cannot pass on zero vectors.

mod common;
use common::*;

use kms_bridge::kms::keyformat::{ec_point_attribute, Curve};
use kms_bridge::kms::{verify_mac, verify_signature, KmsError};
use kms_bridge::model::{KeySpec, MacAlgorithm, MessageType, SigningAlgorithm};
use kms_bridge::token::{PublicParts, Token, TokenConfig};
use serde_json::Value;
use zeroize::Zeroizing;

const DIR: &str = "../shared/reference/wycheproof";

fn load(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(DIR)
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn groups(v: &Value) -> &Vec<Value> {
    v["testGroups"].as_array().unwrap()
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// Big-endian integer without leading zero bytes.
fn uint(v: &Value) -> Vec<u8> {
    let b = unhex(v);
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

#[derive(Default, Debug)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
}

impl Tally {
    /// Record one vector: `outcome` is Ok (accepted) or the error it was rejected with.
    fn check(&mut self, what: &str, t: &Value, outcome: Result<(), KmsError>, force_invalid: bool) {
        let id = format!("{what} tcId {} ({})", t["tcId"], t["comment"]);
        let result = if force_invalid {
            "invalid"
        } else {
            t["result"].as_str().unwrap()
        };
        match (result, &outcome) {
            ("valid", Ok(())) => self.valid += 1,
            (
                "invalid" | "acceptable",
                Err(KmsError::InvalidSignature(_) | KmsError::InvalidMac(_)),
            ) => {
                if result == "invalid" {
                    self.invalid += 1
                } else {
                    self.acceptable += 1
                }
            }
            _ => panic!("{id}: expected {result}, got {outcome:?}"),
        }
    }

    fn total(&self) -> usize {
        self.valid + self.invalid + self.acceptable
    }
}

async fn open_token(dir: &TestDir) -> Token {
    std::env::set_var(token_conf_var(), dir.token_conf());
    let cfg = TokenConfig {
        module: token_module(),
        label: TOKEN_LABEL.into(),
        pin: PIN.to_owned().into(),
        threads: 2,
        working_copies: 1024,
        keygen: Default::default(),
    };
    tokio::task::spawn_blocking(move || Token::open(&cfg))
        .await
        .unwrap()
        .unwrap()
}

async fn ecdsa(token: &Token) -> Tally {
    let files = [
        (
            "ecdsa_secp256r1_sha256_test.json",
            KeySpec::EccNistP256,
            Curve::P256,
            SigningAlgorithm::EcdsaSha256,
        ),
        (
            "extra/ecdsa_secp256k1_sha256_test.json",
            KeySpec::EccSecgP256k1,
            Curve::Secp256k1,
            SigningAlgorithm::EcdsaSha256,
        ),
        (
            "extra/ecdsa_secp384r1_sha384_test.json",
            KeySpec::EccNistP384,
            Curve::P384,
            SigningAlgorithm::EcdsaSha384,
        ),
        (
            "extra/ecdsa_secp521r1_sha512_test.json",
            KeySpec::EccNistP521,
            Curve::P521,
            SigningAlgorithm::EcdsaSha512,
        ),
    ];
    let mut tally = Tally::default();
    for (file, spec, curve, alg) in files {
        if curve == Curve::Secp256k1 && !token_has_secp256k1() {
            continue;
        }
        for (gi, g) in groups(&load(file)).iter().enumerate() {
            let id = format!("ecdsa/{file}/{gi}").into_bytes();
            let key = PublicParts::Ec {
                params: curve.ec_params().unwrap(),
                point: ec_point_attribute(&unhex(&g["publicKey"]["uncompressed"])).unwrap(),
            };
            token
                .import_public_key_for_tests(id.clone(), key)
                .await
                .unwrap();
            for t in g["tests"].as_array().unwrap() {
                let r = verify_signature(
                    token,
                    spec,
                    id.clone(),
                    alg,
                    MessageType::Raw,
                    &unhex(&t["msg"]),
                    &unhex(&t["sig"]),
                )
                .await;
                tally.check(file, t, r, false);
            }
        }
    }
    tally
}

fn sha_alg(sha: &str, pss: bool) -> Option<(SigningAlgorithm, u64)> {
    use SigningAlgorithm as S;
    Some(match (sha, pss) {
        ("SHA-256", true) => (S::RsassaPssSha256, 32),
        ("SHA-384", true) => (S::RsassaPssSha384, 48),
        ("SHA-512", true) => (S::RsassaPssSha512, 64),
        ("SHA-256", false) => (S::RsassaPkcs1V15Sha256, 32),
        ("SHA-384", false) => (S::RsassaPkcs1V15Sha384, 48),
        ("SHA-512", false) => (S::RsassaPkcs1V15Sha512, 64),
        _ => return None,
    })
}

async fn rsa(token: &Token, files: &[String], pss: bool) -> Tally {
    let mut tally = Tally::default();
    for file in files {
        for (gi, g) in groups(&load(file)).iter().enumerate() {
            let Some((alg, hash_len)) = sha_alg(g["sha"].as_str().unwrap(), pss) else {
                continue;
            };
            let spec = match g["keySize"].as_u64() {
                Some(2048) => KeySpec::Rsa2048,
                Some(3072) => KeySpec::Rsa3072,
                Some(4096) => KeySpec::Rsa4096,
                _ => continue,
            };
            if pss && (g["mgf"] != "MGF1" || g["mgfSha"] != g["sha"] || g["sLen"] != hash_len) {
                continue;
            }
            let id = format!("rsa/{file}/{gi}").into_bytes();
            let key = PublicParts::Rsa {
                modulus: uint(&g["publicKey"]["modulus"]),
                exponent: uint(&g["publicKey"]["publicExponent"]),
            };
            token
                .import_public_key_for_tests(id.clone(), key)
                .await
                .unwrap();
            for t in g["tests"].as_array().unwrap() {
                let r = verify_signature(
                    token,
                    spec,
                    id.clone(),
                    alg,
                    MessageType::Raw,
                    &unhex(&t["msg"]),
                    &unhex(&t["sig"]),
                )
                .await;
                tally.check(file, t, r, false);
            }
        }
    }
    tally
}

fn wycheproof_files(prefix: &str) -> Vec<String> {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
    let mut out: Vec<String> = ["", "extra/"]
        .iter()
        .flat_map(|sub| {
            std::fs::read_dir(base.join(sub))
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| format!("{sub}{}", e.file_name().to_string_lossy()))
                .collect::<Vec<_>>()
        })
        .filter(|f| {
            let name = f.rsplit('/').next().unwrap_or(f);
            name.starts_with(prefix) && name.ends_with("_test.json")
        })
        .collect();
    out.sort();
    out
}

async fn hmac(token: &Token) -> (Tally, Tally) {
    let files = [
        ("extra/hmac_sha224_test.json", MacAlgorithm::HmacSha224, 224),
        ("hmac_sha256_test.json", MacAlgorithm::HmacSha256, 256),
        ("extra/hmac_sha384_test.json", MacAlgorithm::HmacSha384, 384),
        ("extra/hmac_sha512_test.json", MacAlgorithm::HmacSha512, 512),
    ];
    let (mut full, mut truncated) = (Tally::default(), Tally::default());
    for (file, alg, bits) in files {
        for (gi, g) in groups(&load(file)).iter().enumerate() {
            // KMS HMAC keys are as long as the hash; SoftHSM refuses shorter HMAC keys
            // (CKR_KEY_SIZE_RANGE), so the short-key groups are not KMS parameters.
            if g["keySize"].as_u64().unwrap() < bits {
                continue;
            }
            let is_truncated = g["tagSize"].as_u64() != Some(bits);
            for (ti, t) in g["tests"].as_array().unwrap().iter().enumerate() {
                let id = format!("hmac/{file}/{gi}/{ti}").into_bytes();
                token
                    .import_hmac_key_for_tests(id.clone(), Zeroizing::new(unhex(&t["key"])))
                    .await
                    .unwrap();
                let r = verify_mac(token, id, alg, &unhex(&t["msg"]), &unhex(&t["tag"])).await;
                if is_truncated {
                    truncated.check(file, t, r, true);
                } else {
                    full.check(file, t, r, false);
                }
            }
        }
    }
    (full, truncated)
}

#[tokio::test]
async fn wycheproof_vectors_through_the_verify_paths() {
    let dir = TestDir::new();
    let token = open_token(&dir).await;

    let e = ecdsa(&token).await;
    // Without secp256k1 (Kryoptic), its file's 168 valid and 308 invalid vectors are not run.
    let expected = if token_has_secp256k1() {
        (768, 1238, 0)
    } else {
        (768 - 168, 1238 - 308, 0)
    };
    assert_eq!((e.valid, e.invalid, e.acceptable), expected, "ECDSA {e:?}");

    let pss_files = wycheproof_files("rsa_pss_");
    let p = rsa(&token, &pss_files, true).await;
    assert_eq!(p.total(), 1186, "RSA-PSS {p:?}");
    assert!(p.valid > 700 && p.invalid > 400, "RSA-PSS {p:?}");

    let pkcs1_files = wycheproof_files("rsa_signature_");
    assert_eq!(pkcs1_files.len(), 9);
    let k = rsa(&token, &pkcs1_files, false).await;
    assert_eq!((k.valid, k.acceptable), (68, 9), "RSA PKCS#1 {k:?}");
    assert_eq!(k.total(), 2330, "RSA PKCS#1 {k:?}");

    let (h, ht) = hmac(&token).await;
    assert_eq!(h.total(), 4 * 84, "HMAC {h:?}");
    assert_eq!(ht.total(), 4 * 84 - 2, "truncated HMAC {ht:?}");
    assert!(h.valid > 0 && h.invalid > 0);
}
