//! Typed JPKI operations over one card connection.
//!
//! PUBLIC API CONTRACT (the core layer is written against these signatures):
//!
//! ```ignore
//! impl JpkiCard {
//!     pub fn new(transport: Box<dyn Transport>) -> Self;          // no card traffic
//!     pub fn atr(&self) -> Vec<u8>;
//!     pub fn apdus_sent(&self) -> u64;
//!     pub fn is_jpki(&mut self) -> Result<bool, CardError>;      // SELECT JPKI AP answers 9000?
//!     pub fn token_label(&mut self) -> Result<String, CardError>; // EF 0006, trimmed
//!     pub fn read_certificate(&mut self, file: CertificateFile) -> Result<Vec<u8>, CardError>;
//!     pub fn pin_tries_left(&mut self, key: KeyKind) -> Result<u8, CardError>;   // no try spent
//!     pub fn verify_pin(&mut self, pin: &Pin) -> Result<(), CardError>;          // Pin knows its key
//!     pub fn sign(&mut self, key: KeyKind, digest_info: &[u8]) -> Result<Vec<u8>, CardError>;
//!     pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<(), CardError>;
//!     pub fn logout(&mut self) -> Result<(), CardError>;         // clears the card's security state
//! }
//! ```
//! Every multi-APDU operation runs inside one transport transaction. Errors:
//! `CardError::PinIncorrect { tries_left }`, `PinBlocked`, `SecurityStatusNotSatisfied`
//! (6982: not logged in), `CardReset` (security state lost; re-login needed), `Removed`, …

use crate::transport::Transport;

/// Which of the two JPKI keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// User authentication (利用者証明用): key EF 0017, PIN EF 0018, 4 digits, 3 tries.
    Authentication,
    /// Digital signature (署名用): key EF 001A, password EF 001B, 6–16 of A–Z0–9, 5 tries.
    Signature,
}

/// The certificate EFs of the JPKI AP (jpki-card.md §3, [C]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateFile {
    /// EF 000A, readable without PIN.
    Authentication,
    /// EF 000B, readable without PIN.
    AuthenticationCa,
    /// EF 0001, readable only after VERIFY of the signature password (6982 before).
    Signature,
    /// EF 0002, readable without PIN.
    SignatureCa,
}

/// A connection to a card with the JPKI application.
pub struct JpkiCard {
    #[allow(dead_code)]
    transport: Box<dyn Transport>,
}
