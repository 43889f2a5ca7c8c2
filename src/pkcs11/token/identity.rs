//! What a token is called (label, serial), on a card and on a phone token, and what the usage
//! history is told about it. All from memory: no card traffic here.

use cryptoki_sys::*;

use super::{kind_index, Card, CardInner};
use crate::card::KeyKind;
use crate::history;
use crate::pkcs11::object;
use crate::pkcs11::phone::PhoneToken;

impl CardInner {
    /// Token label and serial, stable for the card's insertion: on a phone token from EF 0006,
    /// never from the certificate that appears at login (phone.rs).
    pub(super) fn identity(&self, kind: KeyKind) -> (String, String) {
        match &self.phone {
            Some(p) => label_and_tag(p.serial.clone().unwrap_or_default(), kind),
            None => label_and_serial(self.auth_serial.as_deref(), kind),
        }
    }

    /// A phone token was detected: its authentication token's certificates are not public.
    pub(super) fn became_phone(&mut self, p: PhoneToken) {
        self.phone = Some(p);
        let public_certs = [(CKA_PROFILE_ID, object::ulong(CKP_PUBLIC_CERTIFICATES_TOKEN))];
        self.tokens[kind_index(KeyKind::Authentication)]
            .profiles
            .retain(|o| !o.matches(&public_certs));
    }

    /// The usage history's name of a token.
    pub(super) fn history_ref(&self, kind: KeyKind) -> history::TokenRef {
        let (label, serial) = self.identity(kind);
        history::TokenRef {
            label,
            serial,
            key: kind,
        }
    }
}

impl Card {
    /// What the usage history names a token by.
    pub fn history_ref(&self, kind: KeyKind) -> history::TokenRef {
        self.inner.lock().history_ref(kind)
    }

    /// The last known PIN counter of a token.
    pub fn known_tries(&self, kind: KeyKind) -> Option<u8> {
        self.inner.lock().tokens[kind_index(kind)]
            .tries
            .map(|(t, _)| t)
    }
}

/// Token label and serial of a card. Serial: the authentication certificate's serial number in
/// hex (last 16 digits); the label carries its last 8 digits so that two cards' tokens differ.
fn label_and_serial(auth_serial: Option<&[u8]>, kind: KeyKind) -> (String, String) {
    let serial = match auth_serial {
        Some(s) => {
            let first = s.iter().position(|b| *b != 0).unwrap_or(s.len());
            let hex = crate::pkcs11::hex::encode(&s[first..], true);
            let hex = if hex.is_empty() { "0".to_string() } else { hex };
            hex[hex.len().saturating_sub(16)..].to_string()
        }
        None => String::new(),
    };
    label_and_tag(serial, kind)
}

/// Label `JPKI Auth|Sign <last 8 characters of serial>` and the serial.
fn label_and_tag(serial: String, kind: KeyKind) -> (String, String) {
    let chars: Vec<char> = serial.chars().collect();
    let tag: String = chars[chars.len().saturating_sub(8)..].iter().collect();
    let base = match kind {
        KeyKind::Authentication => "JPKI Auth",
        KeyKind::Signature => "JPKI Sign",
    };
    let label = if tag.is_empty() {
        base.to_string()
    } else {
        format!("{base} {tag}")
    };
    (label, serial)
}
