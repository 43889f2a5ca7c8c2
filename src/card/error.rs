//! Typed errors of the card layer.

use crate::transport::TransportError;

/// Why a card operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// VERIFY refused the PIN (63 Cx with x > 0); `tries_left` attempts remain.
    #[error("PIN incorrect, {tries_left} tries left")]
    PinIncorrect { tries_left: u8 },
    /// The PIN is blocked (69 84, or 63 C0).
    #[error("PIN blocked")]
    PinBlocked,
    /// 69 82: the operation needs a VERIFY first (not logged in).
    #[error("security status not satisfied")]
    SecurityStatusNotSatisfied,
    /// 6A 82: no such file or application.
    #[error("file not found")]
    FileNotFound,
    /// The card has no JPKI application.
    #[error("not a JPKI card")]
    NotJpki,
    /// The card was reset by someone else: its security state is lost, log in again.
    #[error("card reset; security state lost")]
    CardReset,
    /// The card was removed.
    #[error("card removed")]
    Removed,
    /// pcscd is not reachable.
    #[error("PC/SC service not available")]
    NoService,
    /// The reader is gone.
    #[error("no such reader")]
    NoReader,
    /// The card did not answer in time.
    #[error("timed out")]
    Timeout,
    /// The input to an operation cannot be encoded as a short APDU (e.g. DigestInfo too long).
    #[error("data length out of range")]
    DataLength,
    /// The caller asked for something the card layer cannot do (e.g. change one key's PIN
    /// to a PIN of the other key).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The card does not do what was asked (e.g. COMPUTE DIGITAL SIGNATURE with P1 = 04 on a
    /// card without RSASSA-PSS: 6A86).
    #[error("not supported by the card")]
    NotSupported,
    /// The card answered with a status word the operation does not expect.
    #[error("unexpected status word {0:04X}")]
    UnexpectedStatus(u16),
    /// The card's answer is not what the protocol allows (truncated, too long, bad DER header).
    #[error("malformed card response: {0}")]
    MalformedResponse(&'static str),
    /// A wait for reader events was cancelled (`C_Finalize`).
    #[error("cancelled")]
    Cancelled,
    /// Any other transport failure.
    #[error("transport: {0}")]
    Transport(TransportError),
}

impl From<TransportError> for CardError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::CardRemoved => CardError::Removed,
            TransportError::CardReset => CardError::CardReset,
            TransportError::NoService => CardError::NoService,
            TransportError::NoReader => CardError::NoReader,
            TransportError::Timeout => CardError::Timeout,
            TransportError::Cancelled => CardError::Cancelled,
            other => CardError::Transport(other),
        }
    }
}
