//! The smartphone's JPKI token (スマホ用電子証明書) in a PC reader.
//!
//! What is known (two independent implementations each): EF 0006 names the token —
//! `JPKIAPICCTOKEN2` for the card, `JPKIAPGPSETOKEN` for the Android phone's secure element,
//! `JPKIAPIOSTOKEN` for the iPhone — and on the Android token the authentication certificate
//! answers 6982 (security status not satisfied) until the authentication PIN is verified.
//!
//! Detection is by behaviour, with EF 0006 read to name it: a token whose authentication
//! certificate needs a PIN is treated as a phone token whatever its label says (the iPhone
//! token's behaviour is unknown; a new label is logged). Only then is EF 0006 read, so a card
//! costs no extra APDU. On such a token ([`Card`](super::token::Card)):
//! - the authentication certificate and public key are private objects (visible after login);
//! - label and serial come from what is readable before login: EF 0006's serial field when it
//!   has one (single source for the layout; without it the label has no per-device tag), so
//!   they do not change at login;
//! - the authentication token does not declare `CKP_PUBLIC_CERTIFICATES_TOKEN` (its
//!   certificate is not public), so NSS logs in before looking for it. (Known from the first
//!   read of the certificate, which `C_GetTokenInfo` does; a profile search reads nothing.)
//!
//! Unknown: PIN rules and tries on the phone (the card's are assumed), timing over NFC, the
//! iPhone token. See docs/phone-token.md.

use crate::card::JpkiCard;

/// EF 0006 labels of the known phone tokens.
pub const ANDROID_LABEL: &str = "JPKIAPGPSETOKEN";
pub const IPHONE_LABEL: &str = "JPKIAPIOSTOKEN";

/// A token found to hide its authentication certificate before login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneToken {
    /// EF 0006 label (empty if unreadable).
    pub label: String,
    /// EF 0006 serial field, when present.
    pub serial: Option<String>,
}

/// Reads EF 0006 of a token that just refused its authentication certificate before login.
pub fn detect(jpki: &mut JpkiCard) -> PhoneToken {
    let (label, serial) = match jpki.token_label_and_serial() {
        Ok(x) => x,
        Err(e) => {
            log::info!("EF 0006 unreadable ({e}); token has no per-device tag");
            (String::new(), None)
        }
    };
    match label.as_str() {
        ANDROID_LABEL => log::info!("Android smartphone JPKI token"),
        IPHONE_LABEL => log::info!("iPhone JPKI token (behaviour unconfirmed; as Android)"),
        other => log::info!(
            "token {other:?} hides its authentication certificate before login; \
             handled as a smartphone token"
        ),
    }
    PhoneToken { label, serial }
}
