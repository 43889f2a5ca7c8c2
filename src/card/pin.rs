//! PINs, parsed and validated before any try is spent (docs/card-protocol.md).
//!
//! A [`Pin`] can only be built by parsing, so a value of this type always has a length and a
//! character set the card can hold: a malformed PIN never reaches the card and never costs a try.
//! Length is checked before the character set ([`PinFormatError::Length`] wins when both fail).
//!
//! Decisions (docs/card-protocol.md leaves them to us):
//! - **Lower-case signature passwords are accepted and upper-cased**, as jpki/myna does: the
//!   card only holds A–Z0–9, so `abc123` can only mean `ABC123`, and refusing it would only
//!   annoy the user.
//! - **The "at least one letter and one digit" rule is not enforced.** It is what the issuing
//!   office enforces when a password is set [1]; if a genuine card ever holds a password
//!   without both (an older rule, a kiosk reset), refusing it here would lock its owner out.
//!   The card itself decides (and counts the try) for such a password.
//!
//! The secret bytes are zeroed on drop, `Debug` prints `AuthPin(****)`, and there is no `Clone`.

use std::fmt;

use zeroize::Zeroize;

use super::jpki::KeyKind;

/// Why a PIN was refused before reaching the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinFormatError {
    /// Wrong length (4 for the auth PIN, 6–16 for the signature password): CKR_PIN_LEN_RANGE.
    #[error("PIN length out of range")]
    Length,
    /// A character the card cannot hold: CKR_PIN_INVALID.
    #[error("PIN contains characters the card cannot hold")]
    Charset,
}

/// The user-authentication PIN (利用者証明用電子証明書暗証番号): exactly 4 ASCII digits [C].
pub struct AuthPin([u8; 4]);

impl AuthPin {
    pub const LEN: usize = 4;

    pub fn parse(bytes: &[u8]) -> Result<AuthPin, PinFormatError> {
        let digits: [u8; 4] = bytes.try_into().map_err(|_| PinFormatError::Length)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            let mut digits = digits;
            digits.zeroize();
            return Err(PinFormatError::Charset);
        }
        Ok(AuthPin(digits))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for AuthPin {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for AuthPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthPin(****)")
    }
}

/// The signature password (署名用電子証明書パスワード): 6–16 of A–Z, 0–9 [C], stored upper-case.
pub struct SignaturePassword {
    bytes: [u8; SignaturePassword::MAX_LEN],
    len: usize,
}

impl SignaturePassword {
    pub const MIN_LEN: usize = 6;
    pub const MAX_LEN: usize = 16;

    /// Accepts A–Z, a–z (upper-cased) and 0–9; see the module documentation.
    pub fn parse(bytes: &[u8]) -> Result<SignaturePassword, PinFormatError> {
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            return Err(PinFormatError::Length);
        }
        if !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return Err(PinFormatError::Charset);
        }
        let mut password = SignaturePassword {
            bytes: [0; Self::MAX_LEN],
            len: bytes.len(),
        };
        for (dst, src) in password.bytes.iter_mut().zip(bytes) {
            *dst = src.to_ascii_uppercase();
        }
        Ok(password)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for SignaturePassword {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for SignaturePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignaturePassword(****)")
    }
}

/// A PIN for one of the two keys; it knows which.
#[derive(Debug)]
pub enum Pin {
    Authentication(AuthPin),
    Signature(SignaturePassword),
}

impl Pin {
    /// Shortest and longest PIN of `key`, as `C_GetTokenInfo` reports them: 4 and 4 for the
    /// authentication PIN, 6 and 16 for the signature password (docs/card-protocol.md).
    pub fn len_range(key: KeyKind) -> (usize, usize) {
        match key {
            KeyKind::Authentication => (AuthPin::LEN, AuthPin::LEN),
            KeyKind::Signature => (SignaturePassword::MIN_LEN, SignaturePassword::MAX_LEN),
        }
    }

    /// Parses the PIN of `key` from what the user typed (bytes as given to `C_Login`).
    pub fn parse(key: KeyKind, bytes: &[u8]) -> Result<Pin, PinFormatError> {
        match key {
            KeyKind::Authentication => AuthPin::parse(bytes).map(Pin::Authentication),
            KeyKind::Signature => SignaturePassword::parse(bytes).map(Pin::Signature),
        }
    }

    /// The key this PIN unlocks.
    pub fn key(&self) -> KeyKind {
        match self {
            Pin::Authentication(_) => KeyKind::Authentication,
            Pin::Signature(_) => KeyKind::Signature,
        }
    }

    /// The bytes sent in VERIFY / CHANGE REFERENCE DATA (ASCII).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Pin::Authentication(p) => p.as_bytes(),
            Pin::Signature(p) => p.as_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_pin() {
        assert_eq!(AuthPin::parse(b"1234").unwrap().as_bytes(), b"1234");
        assert_eq!(AuthPin::parse(b"123").err(), Some(PinFormatError::Length));
        assert_eq!(AuthPin::parse(b"12345").err(), Some(PinFormatError::Length));
        assert_eq!(AuthPin::parse(b"").err(), Some(PinFormatError::Length));
        assert_eq!(AuthPin::parse(b"12a4").err(), Some(PinFormatError::Charset));
        assert_eq!(AuthPin::parse(b"12 4").err(), Some(PinFormatError::Charset));
        assert_eq!(
            AuthPin::parse("１２".as_bytes()).err(),
            Some(PinFormatError::Length)
        );
    }

    #[test]
    fn signature_password() {
        let p = SignaturePassword::parse(b"ABC123").unwrap();
        assert_eq!(p.as_bytes(), b"ABC123");
        let p = SignaturePassword::parse(b"abc123").unwrap();
        assert_eq!(p.as_bytes(), b"ABC123");
        // No letter+digit rule.
        assert!(SignaturePassword::parse(b"ABCDEF").is_ok());
        assert!(SignaturePassword::parse(b"123456").is_ok());
        assert!(SignaturePassword::parse(b"A234567890123456").is_ok());
        assert_eq!(
            SignaturePassword::parse(b"ABC12").err(),
            Some(PinFormatError::Length)
        );
        assert_eq!(
            SignaturePassword::parse(b"A2345678901234567").err(),
            Some(PinFormatError::Length)
        );
        assert_eq!(
            SignaturePassword::parse(b"ABC-123").err(),
            Some(PinFormatError::Charset)
        );
        assert_eq!(
            SignaturePassword::parse("ABCＡ123".as_bytes()).err(),
            Some(PinFormatError::Charset)
        );
    }

    #[test]
    fn pin_knows_its_key_and_hides_itself() {
        let p = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
        assert_eq!(p.key(), KeyKind::Authentication);
        assert_eq!(format!("{p:?}"), "Authentication(AuthPin(****))");
        let p = Pin::parse(KeyKind::Signature, b"abc123").unwrap();
        assert_eq!(p.key(), KeyKind::Signature);
        assert!(!format!("{p:?}").contains("ABC"));
        assert_eq!(
            Pin::parse(KeyKind::Signature, b"1234").err(),
            Some(PinFormatError::Length)
        );
    }
}
