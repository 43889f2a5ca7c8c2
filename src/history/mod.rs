//! Usage history on this machine: what each program did with the card through this module.
//!
//! One JSON line per card operation done for a program: signatures (both keys), PIN
//! verifications (result, tries left after), PIN changes, reads of the signature certificate.
//! Each line names the time, the program (executable path and pid), the token and key, the
//! mechanism, the result and, for a signature, the SHA-256 of the data the program gave. Never
//! the data itself, a PIN, or anything of the signature certificate (name, address, birth
//! date): the token is named by its label and serial, which come from the authentication
//! certificate (or, on a phone token, from EF 0006).
//!
//! Local only, under the XDG state directory ([`store`]). Writing is best effort: it happens
//! after the card operation has its result, and a failure (read-only home, full disk, a
//! sandbox) is logged once per process as a warning and otherwise ignored, so it can never
//! change an operation's outcome. Switched off by the `history` setting (`JPKI_PKCS11_HISTORY=off`, a module
//! parameter or the configuration file; `pkcs11::config`).
//! The line is written by hand (`line`), so the module carries no JSON library; `jpki history`
//! reads it back with [`store::read_lines`] and this module's [`Entry`] under the `serde`
//! feature, which only the CLI turns on.

mod line;
pub mod store;
pub mod time;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::card::KeyKind;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Event {
    Sign,
    PinVerify,
    PinChange,
    ReadSignCertificate,
}

impl Event {
    /// The name people read (`jpki history`).
    pub fn name(self) -> &'static str {
        match self {
            Event::Sign => "sign",
            Event::PinVerify => "pin-verify",
            Event::PinChange => "pin-change",
            Event::ReadSignCertificate => "read-sign-cert",
        }
    }
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Entry {
    /// UTC, RFC 3339.
    pub time: String,
    /// Executable path of the program (empty when unknown).
    pub program: String,
    pub pid: u32,
    /// Token label, e.g. `JPKI Sign 1A2B3C4D`.
    pub token: String,
    /// Token serial.
    pub serial: String,
    /// `auth` or `sign` ([`key_name`]).
    pub key: String,
    pub event: Event,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub mechanism: Option<String>,
    /// `ok`, or what went wrong (`pin_incorrect`, `pin_locked`, an error text).
    pub result: String,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub tries_left: Option<u8>,
    /// Hex SHA-256 of the data the program asked to sign.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub data_sha256: Option<String>,
}

/// The history's name of a key (also what `jpki history --key` takes).
pub fn key_name(key: KeyKind) -> &'static str {
    match key {
        KeyKind::Authentication => "auth",
        KeyKind::Signature => "sign",
    }
}

/// Hex of a finished SHA-256.
pub fn hex_sha256(hash: Sha256) -> String {
    crate::pkcs11::hex::encode(&hash.finalize(), false)
}

/// The token an entry is about.
#[derive(Debug, Clone)]
pub struct TokenRef {
    pub label: String,
    pub serial: String,
    pub key: KeyKind,
}

impl Entry {
    /// An entry for this process, now.
    pub fn new(token: &TokenRef, event: Event, result: String) -> Entry {
        Entry {
            time: time::format_rfc3339(time::now_unix()),
            program: program_path(),
            pid: std::process::id(),
            token: token.label.clone(),
            serial: token.serial.clone(),
            key: key_name(token.key).to_string(),
            event,
            mechanism: None,
            result,
            tries_left: None,
            data_sha256: None,
        }
    }
}

/// The executable of this process (asked each time: cheap, and right after a fork+exec).
fn program_path() -> String {
    std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether the history is written (`JPKI_PKCS11_HISTORY`). Never from this crate's unit tests,
/// which must not write to the developer's home (the PC/SC suites write it to the harness's
/// directory and check it).
pub fn enabled() -> bool {
    !cfg!(test) && crate::pkcs11::config::get().history()
}

/// The directory written to, if any.
pub fn dir() -> Option<PathBuf> {
    store::default_dir()
}

/// Records `entry`, best effort (see the module comment).
pub fn record(entry: &Entry) {
    if !enabled() {
        return;
    }
    static WARNED: AtomicBool = AtomicBool::new(false);
    let result = match dir() {
        Some(d) => {
            store::append(&d, &entry.to_json_line()).map_err(|e| format!("{}: {e}", d.display()))
        }
        None => Err("no XDG_STATE_HOME or HOME".to_string()),
    };
    if let Err(e) = result {
        if !WARNED.swap(true, Ordering::Relaxed) {
            log::warn!("usage history not written ({e}); operations go on without it");
        }
    }
}
