//! Authentication: who sent the request and for which region.
//!
//! For now the SigV4 `Authorization` header is parsed (not yet verified): the access key id
//! and the credential scope's region reach the domain layer. Verification and authorization
//! come with the identity work and will plug in here.

pub mod sigv4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    InvalidSignature(String),
}

/// The caller as far as the request's credential scope tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
    pub region: String,
}

/// Parse `AWS4-HMAC-SHA256 Credential=AKID/20260102/us-east-1/kms/aws4_request, SignedHeaders=…, Signature=…`.
pub fn parse_authorization(header: Option<&str>, regions: &[String]) -> Result<Caller, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        AuthError::Incomplete("Authorization header requires the AWS4-HMAC-SHA256 algorithm".into())
    })?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let missing = |what: &str| {
        AuthError::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={header}"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Incomplete(
            "Signature must be 64 hex characters".into(),
        ));
    }
    let scope: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = scope[..] else {
        return Err(AuthError::Incomplete(format!(
            "Credential should be of the form <access key>/<date>/<region>/kms/aws4_request, not '{credential}'"
        )));
    };
    if akid.is_empty() || date.len() != 8 || terminator != "aws4_request" {
        return Err(AuthError::Incomplete(format!(
            "Credential should be of the form <access key>/<date>/<region>/kms/aws4_request, not '{credential}'"
        )));
    }
    if service != "kms" {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to correct service: 'kms', not '{service}'."
        )));
    }
    if !regions.iter().any(|r| r == region) {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to a valid region, not '{region}'. This endpoint serves {}.",
            regions.join(", ")
        )));
    }
    Ok(Caller {
        access_key_id: akid.to_owned(),
        region: region.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Vec<String> {
        vec!["us-east-1".into(), "eu-west-1".into()]
    }

    const SIG: &str = "0c793d12b58abca81668eb9ffc12338e52fffb146a8f46d479a7a1a3305ef28b";

    #[test]
    fn parses_sdk_header() {
        let h = format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/eu-west-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={SIG}");
        assert_eq!(
            parse_authorization(Some(&h), &regions()).unwrap(),
            Caller {
                access_key_id: "AKIDEXAMPLE".into(),
                region: "eu-west-1".into()
            }
        );
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(
            parse_authorization(None, &regions()),
            Err(AuthError::Missing)
        );
        let cases = [
            ("Basic abc".to_owned(), "Incomplete"),
            (format!("AWS4-HMAC-SHA256 SignedHeaders=host, Signature={SIG}"), "Incomplete"),
            ("AWS4-HMAC-SHA256 Credential=A/20260102/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=zz".to_owned(), "Incomplete"),
            (format!("AWS4-HMAC-SHA256 Credential=A/20260102/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={SIG}"), "InvalidSignature"),
            (format!("AWS4-HMAC-SHA256 Credential=A/20260102/ap-south-9/kms/aws4_request, SignedHeaders=host, Signature={SIG}"), "InvalidSignature"),
        ];
        for (h, want) in cases {
            let got = parse_authorization(Some(&h), &regions()).unwrap_err();
            let name = match got {
                AuthError::Missing => "Missing",
                AuthError::Incomplete(_) => "Incomplete",
                AuthError::InvalidSignature(_) => "InvalidSignature",
            };
            assert_eq!(name, want, "{h}");
        }
    }
}
