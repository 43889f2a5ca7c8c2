//! A virtual My Number Card (JPKI AP), faithful to `shared/docs/jpki-card.md`.
//!
//! Used in-process by the product's unit tests ([`VirtualCard::process_apdu`]) and, through
//! the `jpki-virtual-card` binary, as a vsmartcard vpcd client so that pcscd and OpenSC see a
//! real reader with a card in it.

pub mod apdu;
mod card;
pub mod certs;
mod faults;
mod state;

use std::sync::OnceLock;

pub use card::{
    Application, ExtendedApdu, PinRef, Profile, Reply, Stats, Token, VirtualCard, ATRS, PHONE_ATR,
    PHONE_TOKEN_LABEL,
};
pub use faults::{ArmedFault, FaultKind, Faults};
pub use state::{
    CardState, NotAfter, PersonalData, AUTH_MAX_TRIES, KENHOJO_MAX_TRIES, SIGN_MAX_TRIES,
    TOKEN_LABEL,
};

/// Default user authentication PIN of a generated card.
pub const DEFAULT_AUTH_PIN: &str = "1234";
/// Default signature password of a generated card.
pub const DEFAULT_SIGN_PASSWORD: &str = "ABC123";
/// Default kenhojo (text AP) PIN of a generated card.
pub const DEFAULT_KENHOJO_PIN: &str = "5678";

/// Seed of [`test_state`].
pub const TEST_SEED: u64 = 20251027;
/// Seed of [`test_state_b`].
pub const TEST_SEED_B: u64 = 20251028;

/// A card generated once per process from [`TEST_SEED`] (RSA key generation is slow), cloned.
pub fn test_state() -> CardState {
    static STATE: OnceLock<CardState> = OnceLock::new();
    STATE.get_or_init(|| CardState::generate(TEST_SEED)).clone()
}

/// A second, different card (from [`TEST_SEED_B`]) for two-card tests.
pub fn test_state_b() -> CardState {
    static STATE: OnceLock<CardState> = OnceLock::new();
    STATE
        .get_or_init(|| CardState::generate(TEST_SEED_B))
        .clone()
}
