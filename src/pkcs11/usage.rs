//! What the core tells the usage history (src/history) and the desktop (src/notify): one
//! function per recorded operation, called after the card operation has its result, outside
//! the card's lock (but for [`sign_certificate_read`], recorded where the certificate is loaded,
//! under the lock: one small append, once per card insertion). Only operations that reached
//! the card are recorded: a PIN refused locally for its format, or a call refused before any
//! card command, is not a use of the card.

use cryptoki_sys::CK_MECHANISM_TYPE;
use sha2::Sha256;

use super::error::{Error, Result};
use super::token::Card;
use crate::card::KeyKind;
use crate::history::{self, Entry, Event, TokenRef};

/// Errors returned before any command reached the card.
fn refused_locally(e: &Error) -> bool {
    matches!(
        e,
        Error::PinLenRange
            | Error::PinInvalid
            | Error::UserAlreadyLoggedIn
            | Error::UserNotLoggedIn
            | Error::DeviceRemoved
            | Error::OperationNotInitialized
            | Error::ArgumentsBad
            | Error::DataLenRange
    )
}

fn outcome<T>(result: &Result<T>) -> Option<String> {
    match result {
        Ok(_) => Some("ok".into()),
        Err(Error::PinIncorrect) => Some("pin_incorrect".into()),
        Err(Error::PinLocked) => Some("pin_locked".into()),
        Err(e) if refused_locally(e) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// `C_Login` (and context-specific logins).
pub fn pin_verified(card: &Card, kind: KeyKind, result: &Result<()>) {
    let Some(res) = outcome(result) else { return };
    let mut e = Entry::new(&card.history_ref(kind), Event::PinVerify, res);
    e.tries_left = card.known_tries(kind);
    history::record(&e);
}

/// `C_SetPIN`.
pub fn pin_changed(card: &Card, kind: KeyKind, result: &Result<()>) {
    let Some(res) = outcome(result) else { return };
    let mut e = Entry::new(&card.history_ref(kind), Event::PinChange, res);
    e.tries_left = card.known_tries(kind);
    history::record(&e);
}

/// A signature by the card (`C_Sign`, `C_SignFinal`), with the caller's data as SHA-256 only.
/// `threads_allowed`: the host's word (`Module::threads_allowed`), for the notification.
pub fn signed(
    card: &Card,
    kind: KeyKind,
    mechanism: CK_MECHANISM_TYPE,
    data_sha256: Sha256,
    result: &Result<Vec<u8>>,
    threads_allowed: bool,
) {
    let Some(res) = outcome(result) else { return };
    let mut e = Entry::new(&card.history_ref(kind), Event::Sign, res);
    e.mechanism = Some(super::mechanism::name(mechanism));
    e.data_sha256 = Some(history::hex_sha256(data_sha256));
    history::record(&e);
    if result.is_ok() {
        let policy = super::config::get().notify();
        crate::notify::signed(policy, kind, &e.token, &e.program, e.pid, threads_allowed);
    }
}

/// The signature certificate was read from the card (after the signature password).
pub fn sign_certificate_read(token: &TokenRef) {
    history::record(&Entry::new(token, Event::ReadSignCertificate, "ok".into()));
}
