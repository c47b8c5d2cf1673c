//! Token errors: every failure keeps its CKR code and is classified in exactly one place.

use cryptoki::error::{Error as CkError, RvError};

/// How the caller should treat a token failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The input was rejected (bad tag, bad data length, …): a client error, not a fault.
    BadInput,
    /// The referenced object does not exist in the token.
    ObjectMissing,
    /// Try again later (the token is busy or out of memory).
    Retryable,
    /// The session is unusable; drop it and open another.
    SessionFatal,
    /// The device itself failed or went away; the token needs a reset.
    Device,
    /// Configuration problems (wrong PIN, token not found, mechanism missing).
    Config,
    /// Anything else.
    Other,
}

/// Token refusals callers act on (see `TokenError::refusal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PinIncorrect,
    PinLocked,
    /// The token cannot do this mechanism, curve or key size.
    Unsupported,
    /// Any other PKCS#11 error.
    Other,
    /// The failure did not come from a PKCS#11 call.
    NotFromToken,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{op}: {source}")]
    Pkcs11 {
        op: &'static str,
        kind: FaultKind,
        #[source]
        source: CkError,
    },
    #[error("no initialized token with label {0:?} is present")]
    TokenNotFound(String),
    #[error("token object {0} not found")]
    ObjectNotFound(String),
    #[error("blocking token task failed: {0}")]
    Join(String),
    #[error("the token session is not logged in")]
    NotLoggedIn,
    /// The token went away; reconnection is under way (with backoff).
    #[error("{0}")]
    Unavailable(String),
    /// The input was rejected by a check made before the token was asked.
    #[error("input rejected: {0}")]
    Rejected(&'static str),
    /// The call's lane is full (key generation: `KeygenLane`); try again later.
    #[error("the token is busy with {0}")]
    Busy(&'static str),
    /// A ceiling measurement (`token::ceiling`) could not run or record.
    #[error("token ceiling measurement: {0}")]
    Ceiling(&'static str),
    /// A key-scoped token handle (`kms::authz::KeyToken`) was asked for an object that is not
    /// its key's: a programming error, refused before the token is asked.
    #[error("token object {0} is not the permitted key's")]
    OutOfScope(String),
}

impl TokenError {
    pub(crate) fn ck(op: &'static str, source: CkError) -> Self {
        let kind = classify(&source);
        TokenError::Pkcs11 { op, kind, source }
    }

    pub fn kind(&self) -> FaultKind {
        match self {
            TokenError::Pkcs11 { kind, .. } => *kind,
            TokenError::TokenNotFound(_) => FaultKind::Config,
            TokenError::ObjectNotFound(_) => FaultKind::ObjectMissing,
            TokenError::Join(_) | TokenError::Ceiling(_) | TokenError::OutOfScope(_) => {
                FaultKind::Other
            }
            TokenError::NotLoggedIn => FaultKind::SessionFatal,
            TokenError::Unavailable(_) => FaultKind::Device,
            TokenError::Rejected(_) => FaultKind::BadInput,
            TokenError::Busy(_) => FaultKind::Retryable,
        }
    }

    /// What a refusal means to callers, without PKCS#11 types (only `token/` uses cryptoki).
    pub fn refusal(&self) -> Refusal {
        match self.rv() {
            Some(RvError::PinIncorrect) => Refusal::PinIncorrect,
            Some(RvError::PinLocked) => Refusal::PinLocked,
            Some(
                RvError::CurveNotSupported | RvError::MechanismInvalid | RvError::KeySizeRange,
            ) => Refusal::Unsupported,
            Some(_) => Refusal::Other,
            None => Refusal::NotFromToken,
        }
    }

    /// The PKCS#11 return value, when the failure came from the token.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            TokenError::Pkcs11 {
                source: CkError::Pkcs11(rv, _),
                ..
            } => Some(*rv),
            _ => None,
        }
    }
}

/// The one table that classifies CKR codes.
fn classify(e: &CkError) -> FaultKind {
    let CkError::Pkcs11(rv, _) = e else {
        return FaultKind::Other;
    };
    use RvError::*;
    match rv {
        EncryptedDataInvalid
        | EncryptedDataLenRange
        | DataInvalid
        | DataLenRange
        | SignatureInvalid
        | SignatureLenRange => FaultKind::BadInput,
        ObjectHandleInvalid | KeyHandleInvalid => FaultKind::ObjectMissing,
        DeviceMemory | HostMemory | FunctionCanceled | OperationActive => FaultKind::Retryable,
        SessionHandleInvalid | SessionClosed | UserNotLoggedIn | OperationNotInitialized => {
            FaultKind::SessionFatal
        }
        // CKR_GENERAL_ERROR: the token is in trouble (measured after file-descriptor
        // exhaustion in SoftHSM); heal by reconnecting. Where SoftHSM uses it for bad input
        // (a GCM tag, an unwrap), the caller decides first (`decrypt_gcm`, `unwrap_err`).
        GeneralError
        | DeviceError
        | DeviceRemoved
        | TokenNotPresent
        | TokenNotRecognized
        | CryptokiNotInitialized => FaultKind::Device,
        PinIncorrect
        | PinLocked
        | PinExpired
        | MechanismInvalid
        | MechanismParamInvalid
        | SlotIdInvalid
        | KeyTypeInconsistent
        | TemplateIncomplete
        | TemplateInconsistent
        | AttributeValueInvalid
        | AttributeTypeInvalid => FaultKind::Config,
        _ => FaultKind::Other,
    }
}
