//! Domain errors. Mapped once to the wire in `api::error`.

use super::texts;
use crate::store::StoreError;
use crate::token::{FaultKind, TokenError};

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Throttling(String),
    #[error("{0}")]
    InvalidGrantToken(String),
    #[error("{0}")]
    InvalidGrantId(String),
    #[error("{0}")]
    InvalidArn(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidAliasName(String),
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    InvalidCiphertext(String),
    #[error("{0}")]
    IncorrectKey(String),
    #[error("{0}")]
    DryRun(String),
    #[error("{0}")]
    InvalidKeyUsage(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    InvalidMac(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    InvalidMarker(String),
    #[error("{0}")]
    Tag(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    CustomKeyStoreNotFound(String),
    #[error("{0}")]
    CustomKeyStoreInvalidState(String),
    #[error("{0}")]
    CustomKeyStoreNameInUse(String),
    #[error("{0}")]
    CustomKeyStoreHasCMKs(String),
    #[error("{0}")]
    CloudHsmClusterInUse(String),
    #[error("{0}")]
    CloudHsmClusterNotFound(String),
    #[error("{0}")]
    CloudHsmClusterNotRelated(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ExpiredImportToken(String),
    #[error("{0}")]
    InvalidImportToken(String),
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    /// The token could not serve the key right now (device or session failure).
    #[error("token unavailable: {0}")]
    KeyUnavailable(String),
    /// The token or store was too slow or busy.
    #[error("dependency timeout: {0}")]
    DependencyTimeout(String),
    /// Anything else; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<TokenError> for KmsError {
    fn from(e: TokenError) -> Self {
        if let TokenError::Busy(_) = e {
            return KmsError::Throttling(texts::THROTTLED.into());
        }
        match e.kind() {
            FaultKind::Retryable => KmsError::DependencyTimeout(e.to_string()),
            FaultKind::SessionFatal | FaultKind::Device | FaultKind::ObjectMissing => {
                KmsError::KeyUnavailable(e.to_string())
            }
            FaultKind::BadInput | FaultKind::Config | FaultKind::Other => {
                KmsError::Internal(e.to_string())
            }
        }
    }
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => KmsError::Conflict(texts::CONCURRENT_MODIFICATION.into()),
            StoreError::AlreadyExists => KmsError::AlreadyExists(texts::RESOURCE_EXISTS.into()),
            // Callers that know what was missing or limited answer with AWS's own text; these
            // are the fallbacks (the record vanished between read and write).
            StoreError::NotFound => KmsError::NotFound(texts::RESOURCE_NOT_FOUND.into()),
            StoreError::LimitExceeded => KmsError::LimitExceeded(texts::LIMIT_EXCEEDED.into()),
            StoreError::InUse => KmsError::CustomKeyStoreHasCMKs(texts::KEY_STORE_HAS_KEYS.into()),
            StoreError::Unavailable(_) => KmsError::DependencyTimeout(e.to_string()),
            StoreError::Corrupt(_) | StoreError::Db(_) => KmsError::Internal(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, KmsError>;
