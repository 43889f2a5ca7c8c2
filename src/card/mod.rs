//! The card layer: the JPKI application of the My Number Card as typed Rust.
//!
//! Every fact about the card lives in this layer, in a doc comment next to the constant that
//! encodes it, with its source in docs/card-protocol.md and how sure we are of it: [C]
//! confirmed by several independent sources, [1] one source only (used only with detection and
//! a fallback), [U] unconfirmed.

pub mod apdu;
pub mod error;
pub mod jpki;
pub mod pin;
pub mod readers;

pub use error::CardError;
pub use jpki::{
    AfterChunk, Application, CardFaceInfo, CertificateFile, JpkiCard, KenhojoPin, KeyKind, Sex,
    SfiSupport, Support, PSS_HASH_LEN,
};
pub use pin::{AuthPin, Pin, PinFormatError, SignaturePassword};
pub use readers::{CardReaders, ReaderState};

#[cfg(test)]
mod beyond_tests;
#[cfg(test)]
mod extended_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod virtual_tests;
