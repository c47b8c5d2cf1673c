//! The one mapping from every layer's errors to the KMS wire error envelope.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::kms::KmsError;

/// Errors of the protocol layer itself.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{0}")]
    UnknownOperation(String),
    #[error("{0}")]
    Serialization(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    TooLarge(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Kms(#[from] KmsError),
}

/// Message sent for server faults; the detail goes to the log under the request id.
const INTERNAL_MESSAGE: &str = "The request could not be completed because of an internal error.";

impl ApiError {
    /// `(status, __type, message)` as AWS clients expect them.
    pub fn wire(&self) -> (StatusCode, &'static str, String) {
        use KmsError as K;
        let bad = StatusCode::BAD_REQUEST;
        let m = |s: &String| s.clone();
        match self {
            ApiError::Protocol(p) => match p {
                // AWS's front end answers both without a message (recorded for the Coral JSON
                // services); the detail stays in the log.
                ProtocolError::UnknownOperation(_) => {
                    (bad, "UnknownOperationException", String::new())
                }
                ProtocolError::Serialization(_) => (bad, "SerializationException", String::new()),
                ProtocolError::Validation(s) => (bad, "ValidationException", m(s)),
                ProtocolError::TooLarge(s) => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "ValidationException", m(s))
                }
            },
            ApiError::Auth(a) => match a {
                // 400 from AWS's JSON front end (403 is API Gateway's answer).
                AuthError::Missing => (bad, "MissingAuthenticationTokenException", a.to_string()),
                AuthError::Incomplete(s) => (bad, "IncompleteSignatureException", m(s)),
                AuthError::InvalidSignature(s) | AuthError::Expired(s) => {
                    (bad, "InvalidSignatureException", m(s))
                }
                AuthError::Unrecognized => (bad, "UnrecognizedClientException", a.to_string()),
                AuthError::Backend(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "KMSInternalException",
                    INTERNAL_MESSAGE.into(),
                ),
            },
            ApiError::Kms(k) => match k {
                K::NotFound(s) => (bad, "NotFoundException", m(s)),
                K::AccessDenied(s) => (bad, "AccessDeniedException", m(s)),
                K::Throttling(s) => (bad, "ThrottlingException", m(s)),
                K::InvalidGrantToken(s) => (bad, "InvalidGrantTokenException", m(s)),
                K::InvalidGrantId(s) => (bad, "InvalidGrantIdException", m(s)),
                K::InvalidArn(s) => (bad, "InvalidArnException", m(s)),
                K::AlreadyExists(s) => (bad, "AlreadyExistsException", m(s)),
                K::InvalidAliasName(s) => (bad, "InvalidAliasNameException", m(s)),
                K::NotAuthorized(s) => (bad, "NotAuthorizedException", m(s)),
                K::Disabled(s) => (bad, "DisabledException", m(s)),
                K::InvalidState(s) => (bad, "KMSInvalidStateException", m(s)),
                K::InvalidCiphertext(s) => (bad, "InvalidCiphertextException", m(s)),
                K::IncorrectKey(s) => (bad, "IncorrectKeyException", m(s)),
                // The model says 412; AWS answers 400.
                K::DryRun(s) => (bad, "DryRunOperationException", m(s)),
                K::InvalidKeyUsage(s) => (bad, "InvalidKeyUsageException", m(s)),
                K::InvalidSignature(s) => (bad, "KMSInvalidSignatureException", m(s)),
                K::InvalidMac(s) => (bad, "KMSInvalidMacException", m(s)),
                K::Validation(s) => (bad, "ValidationException", m(s)),
                K::UnsupportedOperation(s) => (bad, "UnsupportedOperationException", m(s)),
                K::LimitExceeded(s) => (bad, "LimitExceededException", m(s)),
                K::InvalidMarker(s) => (bad, "InvalidMarkerException", m(s)),
                K::Tag(s) => (bad, "TagException", m(s)),
                K::MalformedPolicyDocument(s) => (bad, "MalformedPolicyDocumentException", m(s)),
                K::CustomKeyStoreNotFound(s) => (bad, "CustomKeyStoreNotFoundException", m(s)),
                K::CustomKeyStoreInvalidState(s) => {
                    (bad, "CustomKeyStoreInvalidStateException", m(s))
                }
                K::CustomKeyStoreNameInUse(s) => (bad, "CustomKeyStoreNameInUseException", m(s)),
                K::CustomKeyStoreHasCMKs(s) => (bad, "CustomKeyStoreHasCMKsException", m(s)),
                K::CloudHsmClusterInUse(s) => (bad, "CloudHsmClusterInUseException", m(s)),
                K::CloudHsmClusterNotFound(s) => (bad, "CloudHsmClusterNotFoundException", m(s)),
                K::CloudHsmClusterNotRelated(s) => {
                    (bad, "CloudHsmClusterNotRelatedException", m(s))
                }
                K::Conflict(s) => (bad, "ConflictException", m(s)),
                K::ExpiredImportToken(s) => (bad, "ExpiredImportTokenException", m(s)),
                K::InvalidImportToken(s) => (bad, "InvalidImportTokenException", m(s)),
                K::IncorrectKeyMaterial(s) => (bad, "IncorrectKeyMaterialException", m(s)),
                K::KeyUnavailable(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "KeyUnavailableException",
                    "The key is unavailable because the key store cannot be reached.".into(),
                ),
                K::DependencyTimeout(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "DependencyTimeoutException",
                    "The system timed out while trying to fulfill the request.".into(),
                ),
                K::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "KMSInternalException",
                    INTERNAL_MESSAGE.into(),
                ),
            },
        }
    }
}

/// Build the error response: JSON body with `__type` and `message`, and `x-amzn-ErrorType`.
pub fn error_response(err: &ApiError, request_id: &str) -> Response {
    let (status, name, message) = err.wire();
    if status.is_server_error() {
        tracing::error!(request_id, error = %err, "request failed");
    } else {
        tracing::debug!(request_id, error_type = name, error = %err, "client error");
    }
    // Errors whose AWS body has no message (InvalidCiphertextException on a bad blob,
    // KMSInvalidSignatureException) carry none here either.
    let body = if message.is_empty() {
        serde_json::json!({ "__type": name }).to_string()
    } else {
        serde_json::json!({ "__type": name, "message": message }).to_string()
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    h.insert("x-amzn-errortype", HeaderValue::from_static(name));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}
