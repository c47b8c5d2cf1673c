//! Zeroization proof: after GenerateDataKey and GenerateDataKeyPair have answered, the data key
//! and the private key are nowhere in the server's memory.
//!
//! The server is the real binary (a test build), on a real SoftHSM token, called with the AWS
//! SDK over a kept-alive connection. Once the answers are in, the test reads every writable
//! mapping of the server process (`/proc/<pid>/maps`, `/proc/<pid>/mem`: heap, anonymous
//! mappings, every thread's stack, the token library's data) and looks for any 16-byte
//! stretch of each secret: the raw data key, the private key's DER (PKCS#8) and its secret
//! numbers (the EC scalar; RSA's d, p and q), and the base64 text of each as it went out in the
//! JSON answer. A copy anywhere — a buffer freed without wiping, a reallocation left behind, a
//! library's working copy — is found.
//!
//! The check can fail, and does: started with `KMS_BRIDGE_TEST_NO_WIPE=1` (test builds only),
//! the server skips the wiping of its answers and the scan finds the secrets.

mod common;
use common::*;

use aws_sdk_kms::types::{DataKeyPairSpec, DataKeySpec};
use base64::Engine;

/// A secret to look for and the stretches of it that count as a copy.
struct Secret {
    what: String,
    fragments: Vec<Vec<u8>>,
}

const FRAGMENT: usize = 16;

impl Secret {
    /// Every 16-byte stretch starting at a multiple of 8 (and the last): a copy of 24
    /// contiguous bytes or more always contains one, even with its first bytes overwritten
    /// (an allocator keeps its free-list pointer in the first word of a freed block).
    fn new(what: impl Into<String>, bytes: &[u8]) -> Secret {
        assert!(bytes.len() >= FRAGMENT, "too short to look for");
        let mut fragments: Vec<Vec<u8>> = (0..=bytes.len() - FRAGMENT)
            .step_by(8)
            .map(|i| bytes[i..i + FRAGMENT].to_vec())
            .collect();
        fragments.push(bytes[bytes.len() - FRAGMENT..].to_vec());
        fragments.dedup();
        Secret {
            what: what.into(),
            fragments,
        }
    }

    /// The secret and the base64 text it travelled as.
    fn with_text(what: &str, bytes: &[u8]) -> Vec<Secret> {
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        vec![
            Secret::new(what, bytes),
            Secret::new(format!("{what} (base64)"), text.as_bytes()),
        ]
    }

    /// Without the stretches that are public too: a private key's DER carries the public key
    /// (RSA's modulus and exponent, the EC point), which the server may well still hold.
    fn excluding(mut self, public: &[&[u8]]) -> Secret {
        self.fragments.retain(|f| {
            !public
                .iter()
                .any(|p| p.windows(FRAGMENT).any(|w| w == f.as_slice()))
        });
        self
    }
}

/// The writable mappings of a process: (start, end, description).
fn writable_mappings(pid: u32) -> Vec<(u64, u64, String)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let name = fields.nth(3).unwrap_or("[anonymous]").to_owned();
            if !perms.starts_with("rw") || name == "[vvar]" || name == "[vsyscall]" {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
                name,
            ))
        })
        .collect()
}

/// The pages of `start..end` the process has in memory or swapped out (`/proc/<pid>/pagemap`),
/// as ranges: a mapping's untouched pages (an allocator reserves gigabytes) hold nothing.
fn used_ranges(pid: u32, start: u64, end: u64) -> Vec<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    const PAGE: u64 = 4096;
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).expect("open pagemap");
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut entries = vec![0u8; 8 * 4096];
    let mut page = start / PAGE;
    while page < end / PAGE {
        let n = ((end / PAGE - page) as usize).min(4096);
        let Ok(read) = pagemap.read_at(&mut entries[..8 * n], page * 8) else {
            break;
        };
        for (i, e) in entries[..read].chunks_exact(8).enumerate() {
            let e = u64::from_le_bytes(e.try_into().expect("8 bytes"));
            if e & (3 << 62) != 0 {
                let at = (page + i as u64) * PAGE;
                match ranges.last_mut() {
                    Some((_, last)) if *last == at => *last = at + PAGE,
                    _ => ranges.push((at, at + PAGE)),
                }
            }
        }
        page += n as u64;
    }
    ranges
}

/// Every place in the process's writable memory where a fragment of a secret is found
/// ("<what> at <address> in <mapping>"), and how many bytes were read.
fn scan(pid: u32, secrets: &[Secret]) -> (Vec<String>, u64) {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/<pid>/mem");
    let owners: Vec<&str> = secrets
        .iter()
        .flat_map(|s| s.fragments.iter().map(move |_| s.what.as_str()))
        .collect();
    let finder = aho_corasick::AhoCorasick::new(secrets.iter().flat_map(|s| s.fragments.iter()))
        .expect("fragments");
    let mut found = Vec::new();
    let mut scanned = 0u64;
    let mut buf = Vec::new();
    for (start, end, name) in writable_mappings(pid) {
        for (from, to) in used_ranges(pid, start, end) {
            buf.resize((to - from) as usize, 0);
            let Ok(n) = mem.read_at(&mut buf, from) else {
                continue; // gone meanwhile, or unreadable (guard pages)
            };
            scanned += n as u64;
            for m in finder.find_iter(&buf[..n]) {
                let place = format!(
                    "{} at {:#x} in {name}",
                    owners[m.pattern().as_usize()],
                    from + m.start() as u64
                );
                if !found.contains(&place) {
                    found.push(place);
                }
            }
        }
    }
    (found, scanned)
}

/// Generate data keys and data key pairs through `server`; their secrets, as the client got
/// them.
async fn generate_secrets(server: &Server, kms: &aws_sdk_kms::Client) -> Vec<Secret> {
    let key = new_symmetric_key(kms).await;
    let mut secrets = Vec::new();
    for round in 0..3 {
        let dk = kms
            .generate_data_key()
            .key_id(&key)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
            .expect("GenerateDataKey");
        let plaintext = dk.plaintext().expect("Plaintext").as_ref().to_vec();
        assert_eq!(plaintext.len(), 32);
        secrets.extend(Secret::with_text(&format!("data key {round}"), &plaintext));
    }
    for (round, spec) in [DataKeyPairSpec::EccNistP256, DataKeyPairSpec::Rsa2048]
        .into_iter()
        .enumerate()
    {
        let pair = kms
            .generate_data_key_pair()
            .key_id(&key)
            .key_pair_spec(spec.clone())
            .send()
            .await
            .expect("GenerateDataKeyPair");
        let der = pair
            .private_key_plaintext()
            .expect("PrivateKeyPlaintext")
            .as_ref()
            .to_vec();
        let what = format!("{} private key {round}", spec.as_str());
        let public = pair.public_key().expect("PublicKey").as_ref().to_vec();
        let public_text = base64::engine::general_purpose::STANDARD.encode(&public);
        secrets.extend(
            Secret::with_text(&what, &der)
                .into_iter()
                .map(|s| s.excluding(&[&public, public_text.as_bytes()])),
        );
        // The secret numbers themselves, wherever they might have been on their way.
        if spec == DataKeyPairSpec::EccNistP256 {
            use p256::pkcs8::DecodePrivateKey;
            let k = p256::SecretKey::from_pkcs8_der(&der).expect("PKCS#8 P-256");
            secrets.push(Secret::new(format!("{what}: scalar"), &k.to_bytes()));
        } else {
            use rsa::pkcs8::DecodePrivateKey;
            use rsa::traits::PrivateKeyParts;
            let k = rsa::RsaPrivateKey::from_pkcs8_der(&der).expect("PKCS#8 RSA");
            secrets.push(Secret::new(format!("{what}: d"), &k.d().to_bytes_be()));
            for (i, p) in k.primes().iter().enumerate() {
                secrets.push(Secret::new(format!("{what}: prime {i}"), &p.to_bytes_be()));
            }
            let crt = [("dp", k.dp()), ("dq", k.dq())];
            for (name, v) in crt {
                let v = v.expect("CRT value").to_bytes_be();
                secrets.push(Secret::new(format!("{what}: {name}"), &v));
            }
        }
    }
    // Every answer has been read, so it has been written: give the server a moment to drop
    // what it held for them (its request tasks end after the write).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = server;
    secrets
}

#[tokio::test]
async fn generated_secrets_do_not_stay_in_the_servers_memory() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let secrets = generate_secrets(&server, &kms).await;
    let (found, scanned) = scan(server.pid(), &secrets);
    eprintln!(
        "scanned {} MiB of the server's writable memory for {} secrets",
        scanned >> 20,
        secrets.len()
    );
    assert!(scanned > 1 << 20, "the scan read next to nothing");
    assert!(
        found.is_empty(),
        "secrets left in the server's memory after the answers were written:\n{}",
        found.join("\n")
    );
    // The connection is still open (the SDK keeps it alive) and the server still serves it.
    kms.list_keys().send().await.expect("ListKeys");
}

/// The same scan finds the secrets when the server does not wipe its answers: the check
/// above can fail.
#[tokio::test]
async fn the_scan_finds_secrets_that_were_not_wiped() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[("KMS_BRIDGE_TEST_NO_WIPE", "1")]);
    let kms = server.client();
    let secrets = generate_secrets(&server, &kms).await;
    let (found, _) = scan(server.pid(), &secrets);
    assert!(
        found.iter().any(|f| f.contains("(base64)")),
        "with wiping off, the base64 answers should be found in memory; found: {found:?}"
    );
}
