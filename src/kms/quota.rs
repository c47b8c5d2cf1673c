//! Request-rate quotas per account, by the AWS quota groups, as token buckets.
//! Over quota → `ThrottlingException` (HTTP 400), which the AWS SDKs retry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

use crate::model::KeySpec;

/// Requests per second per account; 0 disables a quota. Bursts up to one second's worth.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSettings {
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, GenerateMac, VerifyMac (symmetric/HMAC keys).
    pub symmetric: f64,
    /// Cryptographic operations with RSA keys.
    pub rsa: f64,
    /// Cryptographic operations with ECC keys.
    pub ecc: f64,
    pub generate_random: f64,
    pub create_key: f64,
    /// Every other operation.
    pub management: f64,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            symmetric: 50_000.0,
            rsa: 1_000.0,
            ecc: 1_000.0,
            generate_random: 50_000.0,
            create_key: 50.0,
            management: 1_000.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaGroup {
    Symmetric,
    Rsa,
    Ecc,
    GenerateRandom,
    CreateKey,
    Management,
}

impl QuotaGroup {
    pub fn name(self) -> &'static str {
        match self {
            QuotaGroup::Symmetric => "symmetric",
            QuotaGroup::Rsa => "rsa",
            QuotaGroup::Ecc => "ecc",
            QuotaGroup::GenerateRandom => "generate_random",
            QuotaGroup::CreateKey => "create_key",
            QuotaGroup::Management => "management",
        }
    }

    /// The group of an action (`kms:Encrypt`), given the key's spec when there is a key.
    pub fn of(action: &str, spec: Option<KeySpec>) -> QuotaGroup {
        const CRYPTO: &[&str] = &[
            "kms:Encrypt",
            "kms:Decrypt",
            // ReEncrypt authorizes its destination first; the request is charged once, there.
            "kms:ReEncryptTo",
            "kms:ReEncryptFrom",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:GenerateDataKeyPair",
            "kms:GenerateDataKeyPairWithoutPlaintext",
            "kms:GenerateMac",
            "kms:VerifyMac",
            "kms:Sign",
            "kms:Verify",
            "kms:DeriveSharedSecret",
        ];
        match action {
            "kms:GenerateRandom" => QuotaGroup::GenerateRandom,
            "kms:CreateKey" => QuotaGroup::CreateKey,
            a if CRYPTO.contains(&a) => match spec {
                Some(KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096) => QuotaGroup::Rsa,
                Some(
                    KeySpec::EccNistP256
                    | KeySpec::EccNistP384
                    | KeySpec::EccNistP521
                    | KeySpec::EccSecgP256k1,
                ) => QuotaGroup::Ecc,
                _ => QuotaGroup::Symmetric,
            },
            _ => QuotaGroup::Management,
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Quotas {
    settings: QuotaSettings,
    buckets: Mutex<HashMap<(String, QuotaGroup), Bucket>>,
}

impl Quotas {
    pub fn new(settings: QuotaSettings) -> Quotas {
        Quotas {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn rate(&self, g: QuotaGroup) -> f64 {
        let s = &self.settings;
        match g {
            QuotaGroup::Symmetric => s.symmetric,
            QuotaGroup::Rsa => s.rsa,
            QuotaGroup::Ecc => s.ecc,
            QuotaGroup::GenerateRandom => s.generate_random,
            QuotaGroup::CreateKey => s.create_key,
            QuotaGroup::Management => s.management,
        }
    }

    /// Take one request from the account's bucket; false when over quota.
    pub fn take(&self, account: &str, group: QuotaGroup) -> bool {
        let rate = self.rate(group);
        if rate <= 0.0 {
            return true;
        }
        let burst = rate.max(1.0);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets
            .entry((account.to_owned(), group))
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            crate::metrics::THROTTLED
                .with_label_values(&[group.name()])
                .inc();
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill() {
        let q = Quotas::new(QuotaSettings {
            create_key: 2.0,
            ..Default::default()
        });
        assert!(q.take("a", QuotaGroup::CreateKey));
        assert!(q.take("a", QuotaGroup::CreateKey));
        assert!(!q.take("a", QuotaGroup::CreateKey));
        assert!(q.take("b", QuotaGroup::CreateKey), "per account");
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert!(q.take("a", QuotaGroup::CreateKey), "refilled");
    }

    #[test]
    fn groups() {
        assert_eq!(
            QuotaGroup::of("kms:Encrypt", Some(KeySpec::SymmetricDefault)),
            QuotaGroup::Symmetric
        );
        assert_eq!(
            QuotaGroup::of("kms:Sign", Some(KeySpec::Rsa2048)),
            QuotaGroup::Rsa
        );
        assert_eq!(
            QuotaGroup::of("kms:Sign", Some(KeySpec::EccNistP256)),
            QuotaGroup::Ecc
        );
        assert_eq!(
            QuotaGroup::of("kms:GenerateMac", Some(KeySpec::Hmac256)),
            QuotaGroup::Symmetric
        );
        assert_eq!(
            QuotaGroup::of("kms:DescribeKey", None),
            QuotaGroup::Management
        );
        for re_encrypt in ["kms:ReEncryptFrom", "kms:ReEncryptTo"] {
            assert_eq!(
                QuotaGroup::of(re_encrypt, Some(KeySpec::SymmetricDefault)),
                QuotaGroup::Symmetric
            );
        }
        assert_eq!(QuotaGroup::of("kms:CreateKey", None), QuotaGroup::CreateKey);
    }
}
