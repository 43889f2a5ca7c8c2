//! Fuzz target bodies of jpki-pkcs11.
//!
//! Each module has a `run(data)` that must never panic except on a broken invariant. The
//! `cargo fuzz` targets in `fuzz_targets/` call them under libFuzzer; `tests/bounded.rs` runs
//! them on stable over the committed corpus and random inputs, for CI.
//!
//! - [`card_responses`]: the card layer (APDU exchange, 61xx/6Cxx, status words, DER sizing of
//!   certificate files, PIN counters, signatures, PSS, the text AP) against a card that answers
//!   whatever the input says.
//! - [`cert_der`]: the core's certificate slicer on arbitrary DER, checked against a strict
//!   X.509 parser on the inputs it accepts.
//! - [`attribute_template`]: `C_FindObjectsInit` / `C_GetAttributeValue` through the C
//!   functions with arbitrary templates and buffer sizes (canaries after every buffer).
//! - [`cardlink`]: the card-link protocol between the module and its helper process: frames,
//!   both parsers, the helper's request loop.
//! - [`stateful`]: random sequences of session, login, search and sign calls through the core,
//!   against a model of what each call must answer.

pub mod attribute_template;
pub mod card_responses;
pub mod cardlink;
pub mod cert_der;
pub mod session_objects;
pub mod stateful;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use jpki_pkcs11::transport::in_process::{InProcessReaders, SimulatedCard};
use jpki_virtual_card::{CardState, Profile, VirtualCard};

/// The ATR of the virtual card (any would do: nothing checks it).
pub const ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// A virtual card behind a simulated connection (resets run the card's reset).
pub fn simulated(vc: &Arc<Mutex<VirtualCard>>) -> SimulatedCard {
    let (a, b) = (vc.clone(), vc.clone());
    let atr = lock(vc).atr();
    SimulatedCard::new(atr, move |apdu| lock(&a).process_apdu(apdu))
        .with_reset_hook(move || lock(&b).reset())
}

/// The virtual card's keys and certificates, loaded from `card-state.json` (generating RSA
/// keys takes seconds, longer under a sanitizer, and would starve the fuzzer), or generated
/// when the file is missing.
pub fn card_state() -> CardState {
    static STATE: OnceLock<CardState> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("card-state.json");
            CardState::load(&file).unwrap_or_else(|_| jpki_virtual_card::test_state())
        })
        .clone()
}

/// A fresh virtual card (the shared state, cloned: fresh PIN counters).
pub fn virtual_card(profile: Profile) -> Arc<Mutex<VirtualCard>> {
    Arc::new(Mutex::new(VirtualCard::new(card_state(), profile)))
}

/// Readers with one reader holding `vc`.
pub fn readers_with(vc: &Arc<Mutex<VirtualCard>>) -> (InProcessReaders, SimulatedCard) {
    let readers = InProcessReaders::new();
    let sim = simulated(vc);
    readers.insert_card(READER, sim.clone());
    (readers, sim)
}

/// The reader's name.
pub const READER: &str = "Reader A";

/// A mutex guard, whatever a panicking holder left behind.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Splits `data` into length-prefixed chunks: a length byte (0xFF: two more bytes, big-endian,
/// for answers longer than 254 bytes), then that many bytes (fewer at the end of the input).
pub fn chunks(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((&first, rest)) = data.split_first() {
        let (len, rest) = if first == 0xFF && rest.len() >= 2 {
            (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 700,
                &rest[2..],
            )
        } else {
            (usize::from(first), rest)
        };
        let len = len.min(rest.len());
        out.push(rest[..len].to_vec());
        data = &rest[len..];
    }
    out
}

/// The targets that drive the process's one global module through the C functions take this
/// lock, so that the bounded tests (threads of one process) never close each other's sessions.
pub fn global_module() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    lock(&LOCK)
}

/// A fuzzer's input, read front to back; past its end a byte reads as 0 and `take` gives less.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}
