//! The one error type of the core layer. Each variant knows its `CK_RV`; the ffi layer turns an
//! [`Error`] into a return value in exactly one place ([`Error::rv`]).

use cryptoki_sys::*;

use crate::card::CardError;

/// Why a core operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("arguments bad")]
    ArgumentsBad,
    #[error("cryptoki not initialized")]
    NotInitialized,
    #[error("cryptoki already initialized")]
    AlreadyInitialized,
    #[error("cannot use application-supplied locking")]
    CantLock,
    #[error("function not supported")]
    FunctionNotSupported,
    #[error("general error")]
    General,
    #[error("slot id invalid")]
    SlotIdInvalid,
    #[error("token not present")]
    TokenNotPresent,
    #[error("token write protected")]
    TokenWriteProtected,
    #[error("device removed")]
    DeviceRemoved,
    #[error("device error")]
    DeviceError,
    #[error("session handle invalid")]
    SessionHandleInvalid,
    #[error("parallel sessions not supported")]
    SessionParallelNotSupported,
    #[error("object handle invalid")]
    ObjectHandleInvalid,
    #[error("key handle invalid")]
    KeyHandleInvalid,
    #[error("key type inconsistent")]
    KeyTypeInconsistent,
    #[error("key function not permitted")]
    KeyFunctionNotPermitted,
    #[error("mechanism invalid")]
    MechanismInvalid,
    #[error("mechanism parameter invalid")]
    MechanismParamInvalid,
    #[error("operation active")]
    OperationActive,
    #[error("operation not initialized")]
    OperationNotInitialized,
    #[error("data length out of range")]
    DataLenRange,
    #[error("signature invalid")]
    SignatureInvalid,
    #[error("signature length out of range")]
    SignatureLenRange,
    #[error("user not logged in")]
    UserNotLoggedIn,
    #[error("user already logged in")]
    UserAlreadyLoggedIn,
    #[error("user type invalid")]
    UserTypeInvalid,
    #[error("PIN incorrect")]
    PinIncorrect,
    #[error("PIN invalid")]
    PinInvalid,
    #[error("PIN length out of range")]
    PinLenRange,
    #[error("PIN locked")]
    PinLocked,
    #[error("no event")]
    NoEvent,
    #[error("random: no RNG")]
    RandomNoRng,
    #[error("state unsaveable")]
    StateUnsaveable,
    #[error("buffer too small, {needed} bytes needed")]
    BufferTooSmall { needed: usize },
    #[error("function failed")]
    FunctionFailed,
    /// Any other return value, for the few rarely used codes.
    #[error("CK_RV {0:#x}")]
    Other(CK_RV),
}

/// Result of a core operation.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The PKCS#11 return value for this error. The only place errors become `CK_RV`s.
    pub fn rv(&self) -> CK_RV {
        match self {
            Error::ArgumentsBad => CKR_ARGUMENTS_BAD,
            Error::NotInitialized => CKR_CRYPTOKI_NOT_INITIALIZED,
            Error::AlreadyInitialized => CKR_CRYPTOKI_ALREADY_INITIALIZED,
            Error::CantLock => CKR_CANT_LOCK,
            Error::FunctionNotSupported => CKR_FUNCTION_NOT_SUPPORTED,
            Error::General => CKR_GENERAL_ERROR,
            Error::SlotIdInvalid => CKR_SLOT_ID_INVALID,
            Error::TokenNotPresent => CKR_TOKEN_NOT_PRESENT,
            Error::TokenWriteProtected => CKR_TOKEN_WRITE_PROTECTED,
            Error::DeviceRemoved => CKR_DEVICE_REMOVED,
            Error::DeviceError => CKR_DEVICE_ERROR,
            Error::SessionHandleInvalid => CKR_SESSION_HANDLE_INVALID,
            Error::SessionParallelNotSupported => CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            Error::ObjectHandleInvalid => CKR_OBJECT_HANDLE_INVALID,
            Error::KeyHandleInvalid => CKR_KEY_HANDLE_INVALID,
            Error::KeyTypeInconsistent => CKR_KEY_TYPE_INCONSISTENT,
            Error::KeyFunctionNotPermitted => CKR_KEY_FUNCTION_NOT_PERMITTED,
            Error::MechanismInvalid => CKR_MECHANISM_INVALID,
            Error::MechanismParamInvalid => CKR_MECHANISM_PARAM_INVALID,
            Error::OperationActive => CKR_OPERATION_ACTIVE,
            Error::OperationNotInitialized => CKR_OPERATION_NOT_INITIALIZED,
            Error::DataLenRange => CKR_DATA_LEN_RANGE,
            Error::SignatureInvalid => CKR_SIGNATURE_INVALID,
            Error::SignatureLenRange => CKR_SIGNATURE_LEN_RANGE,
            Error::UserNotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            Error::UserAlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            Error::UserTypeInvalid => CKR_USER_TYPE_INVALID,
            Error::PinIncorrect => CKR_PIN_INCORRECT,
            Error::PinInvalid => CKR_PIN_INVALID,
            Error::PinLenRange => CKR_PIN_LEN_RANGE,
            Error::PinLocked => CKR_PIN_LOCKED,
            Error::NoEvent => CKR_NO_EVENT,
            Error::RandomNoRng => CKR_RANDOM_NO_RNG,
            Error::StateUnsaveable => CKR_STATE_UNSAVEABLE,
            Error::BufferTooSmall { .. } => CKR_BUFFER_TOO_SMALL,
            Error::FunctionFailed => CKR_FUNCTION_FAILED,
            Error::Other(rv) => *rv,
        }
    }
}

impl From<CardError> for Error {
    /// Card errors that reach the caller unchanged. Errors with a meaning for the token's state
    /// (PIN counter, login lost, removal) are handled by the token before this conversion.
    fn from(e: CardError) -> Self {
        match e {
            CardError::PinIncorrect { .. } => Error::PinIncorrect,
            CardError::PinBlocked => Error::PinLocked,
            CardError::SecurityStatusNotSatisfied | CardError::CardReset => Error::UserNotLoggedIn,
            CardError::Removed | CardError::NoReader => Error::DeviceRemoved,
            CardError::DataLength => Error::DataLenRange,
            CardError::InvalidArgument(_) => Error::ArgumentsBad,
            // The card refused a mode it was believed to have (PSS learnt on first use).
            CardError::NotSupported => Error::FunctionFailed,
            CardError::NoService => Error::DeviceError,
            CardError::FileNotFound
            | CardError::NotJpki
            | CardError::Timeout
            | CardError::UnexpectedStatus(_)
            | CardError::MalformedResponse(_)
            | CardError::Transport(_) => Error::DeviceError,
        }
    }
}
