//! The card layer against a card that answers whatever the input says.
//!
//! Input: one byte n (1–8 operations), n operation bytes, then the card's answers as
//! length-prefixed chunks ([`crate::chunks`]), handed out in order to whatever the card layer
//! sends (an empty answer once they run out).
//!
//! Invariants: no panic; a bounded number of APDUs per operation; a certificate is one DER
//! SEQUENCE of at most 8 KiB whose header gives exactly its length; a signature is 256 bytes;
//! a PIN counter is at most 15; an exchange never gives more data than its Le.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use jpki_pkcs11::card::apdu::{exchange, Command};
use jpki_pkcs11::card::{CertificateFile, JpkiCard, KenhojoPin, KeyKind, Pin};
use jpki_pkcs11::transport::in_process::InProcessTransport;
use jpki_pkcs11::transport::Transport;

use crate::{chunks, lock, ATR};

/// Most APDUs one card-layer operation may send, whatever the card answers.
const MAX_APDUS_PER_OPERATION: u64 = 160;

/// The total length the DER header at the start of `der` announces.
fn announced_len(der: &[u8]) -> Option<usize> {
    match *der.get(1)? {
        n @ 0..=0x7F => Some(2 + usize::from(n)),
        0x81 => Some(3 + usize::from(*der.get(2)?)),
        0x82 => Some(4 + usize::from(u16::from_be_bytes([*der.get(2)?, *der.get(3)?]))),
        _ => None,
    }
}

pub fn run(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8) + 1;
    let (ops, answers) = rest.split_at(n.min(rest.len()));
    let queue: Arc<Mutex<VecDeque<Vec<u8>>>> = Arc::new(Mutex::new(chunks(answers).into()));

    // The exchange itself, with an Le from the first operation byte.
    if let Some(&op) = ops.first() {
        let q = queue.clone();
        let mut transport = InProcessTransport::new(ATR.to_vec(), move |_| {
            lock(&q).pop_front().unwrap_or_default()
        });
        let le = u16::from(op) + 1;
        let result = transport.begin().map(|mut channel| {
            let command = Command::new(0x00, 0xB0, 0x00, 0x00).with_le(le);
            exchange(channel.as_mut(), &command)
        });
        if let Ok(Ok(response)) = result {
            assert!(response.data.len() <= usize::from(le), "more data than Le");
        }
    }

    let q = queue.clone();
    let transport = InProcessTransport::new(ATR.to_vec(), move |_| {
        lock(&q).pop_front().unwrap_or_default()
    });
    let mut card = JpkiCard::new(Box::new(transport));
    for &op in ops {
        let before = card.apdus_sent();
        operation(&mut card, op);
        let sent = card.apdus_sent() - before;
        assert!(
            sent <= MAX_APDUS_PER_OPERATION,
            "{sent} APDUs for one operation"
        );
    }
}

fn operation(card: &mut JpkiCard, op: u8) {
    let key = if op & 0x80 == 0 {
        KeyKind::Authentication
    } else {
        KeyKind::Signature
    };
    match op % 16 {
        0 => {
            let _ = card.is_jpki();
        }
        1 => {
            if let Ok(label) = card.token_label() {
                assert!(label.len() <= 32 * 3);
            }
        }
        2..=5 => {
            let file = CertificateFile::ALL[usize::from(op % 16 - 2)];
            if let Ok(der) = card.read_certificate(file) {
                assert!(der.len() <= 8 * 1024, "certificate of {} bytes", der.len());
                assert_eq!(der.first(), Some(&0x30), "not a SEQUENCE");
                assert_eq!(announced_len(&der), Some(der.len()), "length != DER header");
            }
        }
        6 => {
            if let Ok(tries) = card.pin_tries_left(key) {
                assert!(tries <= 15);
            }
        }
        7 => {
            let pin = match key {
                KeyKind::Authentication => Pin::parse(key, b"1234"),
                KeyKind::Signature => Pin::parse(key, b"ABC123"),
            };
            if let Ok(pin) = pin {
                let _ = card.verify_pin(&pin);
            }
        }
        8 | 9 => {
            let digest_info = vec![0x5A; usize::from(op % 64) + 1];
            if let Ok(signature) = card.sign(key, &digest_info) {
                assert_eq!(signature.len(), 256);
            }
        }
        10 => {
            if let Ok(signature) = card.sign_pss_sha256(key, &[0xA5; 32]) {
                assert_eq!(signature.len(), 256);
            }
        }
        11 => {
            let _ = card.pss_support();
        }
        12 => {
            let (old, new) = match key {
                KeyKind::Authentication => (Pin::parse(key, b"1234"), Pin::parse(key, b"4321")),
                KeyKind::Signature => (Pin::parse(key, b"ABC123"), Pin::parse(key, b"XYZ789")),
            };
            if let (Ok(old), Ok(new)) = (old, new) {
                let _ = card.change_pin(&old, &new);
            }
        }
        13 => {
            let _ = card.logout();
        }
        14 => {
            let _ = card.applications();
            if let Ok(tries) = card.kenhojo_tries_left() {
                assert!(tries <= 15);
            }
        }
        _ => {
            if let Ok(pin) = KenhojoPin::parse(b"5678") {
                let _ = card.read_card_face_info(&pin);
            }
        }
    }
}
