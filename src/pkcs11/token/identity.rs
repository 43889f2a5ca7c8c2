//! What a token is called (label, serial), and what the usage history is told about it. All
//! from memory: no card traffic here.

use super::{kind_index, Card, CardInner};
use crate::card::KeyKind;
use crate::history;

impl CardInner {
    /// Token label and serial, stable for the card's insertion.
    pub(super) fn identity(&self, kind: KeyKind) -> (String, String) {
        label_and_serial(self.auth_serial.as_deref(), kind)
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
