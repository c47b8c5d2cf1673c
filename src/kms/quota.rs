//! Request-rate quotas per account, by the AWS quota groups, as token buckets.
//! Over quota → `ThrottlingException` (HTTP 400), which the AWS SDKs retry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

use crate::model::{DataKeyPairSpec, KeySpec};
use crate::operations::Quota;

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
    /// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext share quotas of their own,
    /// by key pair spec (AWS's "GenerateDataKeyPair (<spec>) request rate"): what the pair costs
    /// to generate, not what the wrapping key's crypto costs.
    pub data_key_pair_ecc: f64,
    pub data_key_pair_rsa_2048: f64,
    pub data_key_pair_rsa_3072: f64,
    pub data_key_pair_rsa_4096: f64,
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
            // AWS's defaults (developer guide, "Request quotas").
            data_key_pair_ecc: 100.0,
            data_key_pair_rsa_2048: 20.0,
            data_key_pair_rsa_3072: 4.0,
            data_key_pair_rsa_4096: 1.0,
        }
    }
}

impl QuotaSettings {
    /// The configured rate of a group (requests per second; 0 = unlimited).
    pub fn rate(&self, g: QuotaGroup) -> f64 {
        let s = self;
        match g {
            QuotaGroup::Symmetric => s.symmetric,
            QuotaGroup::Rsa => s.rsa,
            QuotaGroup::Ecc => s.ecc,
            QuotaGroup::GenerateRandom => s.generate_random,
            QuotaGroup::CreateKey => s.create_key,
            QuotaGroup::Management => s.management,
            QuotaGroup::DataKeyPairEcc => s.data_key_pair_ecc,
            QuotaGroup::DataKeyPairRsa2048 => s.data_key_pair_rsa_2048,
            QuotaGroup::DataKeyPairRsa3072 => s.data_key_pair_rsa_3072,
            QuotaGroup::DataKeyPairRsa4096 => s.data_key_pair_rsa_4096,
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
    DataKeyPairEcc,
    DataKeyPairRsa2048,
    DataKeyPairRsa3072,
    DataKeyPairRsa4096,
}

impl QuotaGroup {
    pub const ALL: [QuotaGroup; 10] = [
        QuotaGroup::Symmetric,
        QuotaGroup::Rsa,
        QuotaGroup::Ecc,
        QuotaGroup::GenerateRandom,
        QuotaGroup::CreateKey,
        QuotaGroup::Management,
        QuotaGroup::DataKeyPairEcc,
        QuotaGroup::DataKeyPairRsa2048,
        QuotaGroup::DataKeyPairRsa3072,
        QuotaGroup::DataKeyPairRsa4096,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaGroup::Symmetric => "symmetric",
            QuotaGroup::Rsa => "rsa",
            QuotaGroup::Ecc => "ecc",
            QuotaGroup::GenerateRandom => "generate_random",
            QuotaGroup::CreateKey => "create_key",
            QuotaGroup::Management => "management",
            QuotaGroup::DataKeyPairEcc => "data_key_pair_ecc",
            QuotaGroup::DataKeyPairRsa2048 => "data_key_pair_rsa_2048",
            QuotaGroup::DataKeyPairRsa3072 => "data_key_pair_rsa_3072",
            QuotaGroup::DataKeyPairRsa4096 => "data_key_pair_rsa_4096",
        }
    }

    /// The group of a GenerateDataKeyPair(WithoutPlaintext) request for this pair spec.
    pub fn of_data_key_pair(spec: DataKeyPairSpec) -> QuotaGroup {
        match spec {
            DataKeyPairSpec::Rsa2048 => QuotaGroup::DataKeyPairRsa2048,
            DataKeyPairSpec::Rsa3072 => QuotaGroup::DataKeyPairRsa3072,
            DataKeyPairSpec::Rsa4096 => QuotaGroup::DataKeyPairRsa4096,
            _ => QuotaGroup::DataKeyPairEcc,
        }
    }

    /// The group of a request by its operation's quota (the table of operations), given the
    /// key's spec when there is a key and the pair's spec for a data key pair.
    pub fn of(quota: Quota, key: Option<KeySpec>, pair: Option<DataKeyPairSpec>) -> QuotaGroup {
        match quota {
            Quota::GenerateRandom => QuotaGroup::GenerateRandom,
            Quota::CreateKey => QuotaGroup::CreateKey,
            Quota::Management => QuotaGroup::Management,
            // The only callers name the pair's spec; without one it counts as management.
            Quota::DataKeyPair => pair.map_or(QuotaGroup::Management, Self::of_data_key_pair),
            Quota::Crypto => match key {
                Some(KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096) => QuotaGroup::Rsa,
                Some(
                    KeySpec::EccNistP256
                    | KeySpec::EccNistP384
                    | KeySpec::EccNistP521
                    | KeySpec::EccSecgP256k1,
                ) => QuotaGroup::Ecc,
                _ => QuotaGroup::Symmetric,
            },
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
        self.settings.rate(g)
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
    use crate::operations::Action;

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
        let of = |a: Action, spec| QuotaGroup::of(a.row().quota, spec, None);
        assert_eq!(
            of(Action::Encrypt, Some(KeySpec::SymmetricDefault)),
            QuotaGroup::Symmetric
        );
        assert_eq!(of(Action::Sign, Some(KeySpec::Rsa2048)), QuotaGroup::Rsa);
        assert_eq!(
            of(Action::Sign, Some(KeySpec::EccNistP256)),
            QuotaGroup::Ecc
        );
        assert_eq!(
            of(Action::GenerateMac, Some(KeySpec::Hmac256)),
            QuotaGroup::Symmetric
        );
        assert_eq!(of(Action::DescribeKey, None), QuotaGroup::Management);
        assert_eq!(
            of(Action::GetPublicKey, Some(KeySpec::Rsa2048)),
            QuotaGroup::Management
        );
        for re_encrypt in [Action::ReEncryptFrom, Action::ReEncryptTo] {
            assert_eq!(
                of(re_encrypt, Some(KeySpec::SymmetricDefault)),
                QuotaGroup::Symmetric
            );
        }
        assert_eq!(of(Action::CreateKey, None), QuotaGroup::CreateKey);
        assert_eq!(of(Action::GenerateRandom, None), QuotaGroup::GenerateRandom);
        assert_eq!(
            QuotaGroup::of(
                Action::GenerateDataKeyPair.row().quota,
                Some(KeySpec::SymmetricDefault),
                Some(DataKeyPairSpec::Rsa4096)
            ),
            QuotaGroup::DataKeyPairRsa4096
        );
        assert_eq!(
            QuotaGroup::of_data_key_pair(DataKeyPairSpec::EccNistP521),
            QuotaGroup::DataKeyPairEcc
        );
    }

    #[test]
    fn data_key_pairs_have_their_own_quota() {
        let q = Quotas::new(QuotaSettings {
            data_key_pair_rsa_4096: 1.0,
            ..Default::default()
        });
        let rsa = QuotaGroup::of_data_key_pair(DataKeyPairSpec::Rsa4096);
        assert!(q.take("a", rsa));
        assert!(
            !q.take("a", rsa),
            "AWS's default: one RSA-4096 pair a second"
        );
        assert!(q.take("a", QuotaGroup::of_data_key_pair(DataKeyPairSpec::Rsa2048)));
        assert!(q.take("a", QuotaGroup::Symmetric));
    }
}
