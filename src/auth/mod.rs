//! Authentication: SigV4 verification of every request against stored credentials.
//!
//! The result is a [`Caller`]: the verified principal, the region of the credential scope and
//! the principal's identity policies. Authorization happens in the domain (`kms::authz`).

pub mod principals;
pub mod sigv4;

use std::sync::Arc;

use zeroize::Zeroizing;

use time::{Duration, OffsetDateTime};

pub use principals::{Principal, Principals};

use crate::store::IdentityPolicyRecord;
use sigv4::{RequestParts, SigV4Error, VerifyOptions};

/// The clock skew AWS KMS allows between `X-Amz-Date` and the server.
pub const MAX_SKEW: Duration = Duration::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Coral's text (recorded for the AWS JSON services behind the same front end).
    #[error("Request is missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    Expired(String),
    /// Unknown access key or an unsupported session token.
    #[error("The security token included in the request is invalid.")]
    Unrecognized,
    /// The credential store or token failed; detail logged, not sent.
    #[error("authentication backend failed: {0}")]
    Backend(String),
}

impl From<SigV4Error> for AuthError {
    fn from(e: SigV4Error) -> Self {
        match e {
            SigV4Error::Missing => AuthError::Missing,
            SigV4Error::Incomplete(m) => AuthError::Incomplete(m),
            SigV4Error::InvalidSignature(m) => AuthError::InvalidSignature(m),
            SigV4Error::Expired(m) => AuthError::Expired(m),
            SigV4Error::UnknownAccessKey => AuthError::Unrecognized,
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub access_key_id: String,
    pub region: String,
    pub identity_policies: Arc<Vec<IdentityPolicyRecord>>,
}

pub struct Authenticator {
    principals: Arc<Principals>,
    regions: Vec<String>,
    signing_keys: SigningKeys,
}

/// (access key id, date, region) of a derived signing key.
type KeyScope = (String, String, String);

/// Derived SigV4 signing keys by (access key, date, region): four HMACs saved per request.
/// Only consulted after the access key was found (a deleted key fails before), and access key
/// ids are never reused, so an entry cannot outlive the secret it came from in any useful way.
#[derive(Default)]
struct SigningKeys {
    keys: std::sync::Mutex<std::collections::HashMap<KeyScope, Zeroizing<[u8; 32]>>>,
}

impl SigningKeys {
    /// Entries kept before the cache starts over (one per key, day and region in use).
    const CAPACITY: usize = 4096;

    fn get(&self, auth: &sigv4::ParsedAuth, secret: &[u8]) -> Zeroizing<[u8; 32]> {
        let id = (
            auth.access_key_id.clone(),
            auth.date.clone(),
            auth.region.clone(),
        );
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.get(&id) {
            return k.clone();
        }
        let k = Zeroizing::new(sigv4::signing_key(
            secret,
            &auth.date,
            &auth.region,
            &auth.service,
        ));
        if keys.len() >= Self::CAPACITY {
            keys.clear();
        }
        keys.insert(id, k.clone());
        k
    }
}

impl Authenticator {
    pub fn new(principals: Arc<Principals>, regions: Vec<String>) -> Authenticator {
        Authenticator {
            principals,
            regions,
            signing_keys: SigningKeys::default(),
        }
    }

    pub fn principals(&self) -> &Arc<Principals> {
        &self.principals
    }

    /// The first half of verifying a request's SigV4 signature at time `now` (`finish` is the
    /// second): everything that needs no body — the `Authorization` header and the signed
    /// headers (scope, date and skew, what must be signed) and that the access key is
    /// known. A server calls it before it reads a body, so an unauthenticated sender cannot
    /// make it buffer one.
    pub async fn precheck(
        &self,
        headers: &[(&str, &str)],
        query: &str,
        now: OffsetDateTime,
    ) -> Result<Prechecked, AuthError> {
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if has("authorization") && has("x-amz-security-token") {
            // No STS here: temporary credentials cannot be valid.
            return Err(AuthError::Unrecognized);
        }
        let checked = sigv4::check_headers(headers, query, &self.options(now))?;
        // The operation comes from X-Amz-Target: an unsigned one could be swapped on replay.
        if !checked
            .auth
            .signed_headers
            .iter()
            .any(|h| h == "x-amz-target")
        {
            return Err(AuthError::Incomplete(
                crate::texts::SIG_TARGET_UNSIGNED.into(),
            ));
        }
        let (principal, secret) = self.known(&checked.auth.access_key_id).await?;
        Ok(Prechecked {
            checked,
            principal,
            secret,
        })
    }

    /// The body's part, after `precheck`: the signature, then the caller's identity policies.
    pub async fn finish(
        &self,
        pre: Prechecked,
        req: &RequestParts<'_>,
    ) -> Result<Caller, AuthError> {
        let key = self.signing_keys.get(&pre.checked.auth, &pre.secret);
        sigv4::verify_body(req, &pre.checked, &key, true)?;
        let auth = pre.checked.auth;
        self.caller(pre.principal, auth.access_key_id, auth.region)
            .await
    }

    /// A verified caller: the principal with its identity policies.
    async fn caller(
        &self,
        principal: Principal,
        access_key_id: String,
        region: String,
    ) -> Result<Caller, AuthError> {
        let identity_policies = self
            .principals
            .identity_policies(&principal.arn)
            .await
            .map_err(|e| AuthError::Backend(e.to_string()))?;
        Ok(Caller {
            principal,
            access_key_id,
            region,
            identity_policies,
        })
    }

    /// The regions this server serves (the first is the console's default).
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    /// The principal and secret of a known, active access key.
    async fn known(
        &self,
        access_key_id: &str,
    ) -> Result<(Principal, Zeroizing<Vec<u8>>), AuthError> {
        self.principals
            .lookup(access_key_id)
            .await
            .map_err(|e| AuthError::Backend(e.to_string()))?
            .ok_or(AuthError::Unrecognized)
    }

    /// The console's sign-in: the principal of a known, active access key whose secret is
    /// `secret`, compared in constant time. The secret is not kept.
    pub async fn verify_secret(
        &self,
        access_key_id: &str,
        secret: &[u8],
    ) -> Result<Principal, AuthError> {
        use subtle::ConstantTimeEq;
        let (principal, stored) = self.known(access_key_id).await?;
        if bool::from(stored.as_slice().ct_eq(secret)) {
            Ok(principal)
        } else {
            Err(AuthError::Unrecognized)
        }
    }

    /// The caller of a signed-in console session: its access key must still exist, be active
    /// and belong to the same principal (a deleted key ends the session at once, as it stops
    /// signed requests); identity policies as for a signed request.
    pub async fn session_caller(
        &self,
        access_key_id: &str,
        principal_arn: &str,
        region: &str,
    ) -> Result<Caller, AuthError> {
        let (principal, _) = self.known(access_key_id).await?;
        if principal.arn != principal_arn {
            return Err(AuthError::Unrecognized);
        }
        if !self.regions.iter().any(|r| r == region) {
            return Err(AuthError::Unrecognized);
        }
        self.caller(principal, access_key_id.to_owned(), region.to_owned())
            .await
    }

    fn options(&self, now: OffsetDateTime) -> VerifyOptions<'_> {
        VerifyOptions {
            service: "kms",
            regions: &self.regions,
            now,
            max_skew: MAX_SKEW,
            normalize: true,
        }
    }
}

/// A request whose headers passed `Authenticator::precheck`: its body is still to be verified.
pub struct Prechecked {
    checked: sigv4::HeaderCheck,
    principal: Principal,
    secret: Zeroizing<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_signing_keys_are_the_derived_keys_per_scope() {
        let auth = |date: &str, region: &str| sigv4::ParsedAuth {
            access_key_id: "AKIDEXAMPLE".into(),
            date: date.into(),
            region: region.into(),
            service: "kms".into(),
            signed_headers: Vec::new(),
            signature: String::new(),
        };
        let cache = SigningKeys::default();
        let secret = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        for (date, region) in [
            ("20261122", "us-east-1"),
            ("20261123", "us-east-1"),
            ("20261122", "eu-west-1"),
        ] {
            let a = auth(date, region);
            let expected = sigv4::signing_key(secret, date, region, "kms");
            assert_eq!(*cache.get(&a, secret), expected);
            // The second time it comes from the cache, unchanged.
            assert_eq!(*cache.get(&a, secret), expected);
        }
        assert_eq!(
            cache.keys.lock().unwrap().len(),
            3,
            "one entry per (key, date, region)"
        );
    }
}
