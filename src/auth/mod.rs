//! Authentication: SigV4 verification of every request against stored credentials.
//!
//! The result is a [`Caller`]: the verified principal, the region of the credential scope and
//! the principal's identity policies. Authorization happens in the domain (`kms::authz`).

pub mod principals;
pub mod sigv4;

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

pub use principals::{Principal, Principals};

use crate::store::IdentityPolicyRecord;
use sigv4::{RequestParts, SigV4Error, VerifyOptions};

/// The clock skew AWS KMS allows between `X-Amz-Date` and the server.
pub const MAX_SKEW: Duration = Duration::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
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
}

impl Authenticator {
    pub fn new(principals: Arc<Principals>, regions: Vec<String>) -> Authenticator {
        Authenticator {
            principals,
            regions,
        }
    }

    pub fn principals(&self) -> &Arc<Principals> {
        &self.principals
    }

    /// Verify the request's SigV4 signature at time `now` and identify the caller.
    pub async fn authenticate(
        &self,
        req: &RequestParts<'_>,
        now: OffsetDateTime,
    ) -> Result<Caller, AuthError> {
        let header = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| *v)
            .ok_or(AuthError::Missing)?;
        if req
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-amz-security-token"))
        {
            // No STS here: temporary credentials cannot be valid.
            return Err(AuthError::Unrecognized);
        }
        let parsed = sigv4::parse_authorization(header)?;
        // The operation comes from X-Amz-Target: an unsigned one could be swapped on replay.
        if !parsed.signed_headers.iter().any(|h| h == "x-amz-target") {
            return Err(AuthError::Incomplete(
                "Signed headers must include x-amz-target".into(),
            ));
        }
        let found = self
            .principals
            .lookup(&parsed.access_key_id)
            .await
            .map_err(|e| AuthError::Backend(e.to_string()))?;
        let (principal, secret) = match found {
            Some((p, s)) => (Some(p), Some(s)),
            None => (None, None),
        };
        let opts = VerifyOptions {
            service: "kms",
            regions: &self.regions,
            now,
            max_skew: MAX_SKEW,
            normalize: true,
        };
        let auth = sigv4::verify(req, &opts, |_| secret)?;
        let principal = principal.ok_or(AuthError::Unrecognized)?;
        let identity_policies = self
            .principals
            .identity_policies(&principal.arn)
            .await
            .map_err(|e| AuthError::Backend(e.to_string()))?;
        Ok(Caller {
            principal,
            access_key_id: auth.access_key_id,
            region: auth.region,
            identity_policies,
        })
    }
}
