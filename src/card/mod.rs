//! The card layer: the JPKI application of the My Number Card as typed Rust.
//!
//! Facts come from `shared/docs/jpki-card.md`; each constant cites its section and tag.

pub mod apdu;
pub mod error;
pub mod jpki;
pub mod pin;

pub use error::CardError;
pub use jpki::{
    Application, CardFaceInfo, CertificateFile, JpkiCard, KenhojoPin, KeyKind, Sex, SfiSupport,
    Support, PSS_HASH_LEN,
};
pub use pin::{AuthPin, Pin, PinFormatError, SignaturePassword};

#[cfg(test)]
mod beyond_tests;
#[cfg(test)]
mod extended_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod virtual_tests;
