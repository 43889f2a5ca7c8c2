//! Desktop notification when a card key signs.
//!
//! Why not a D-Bus crate: every browser loads this module, and zbus brings an async executor and
//! its threads into each of them, the `dbus` crate the C libdbus; one fire-and-forget method
//! call needs neither ([`dbus`] writes it by hand, about 150 lines, unit-tested).
//!
//! A signature with the signature key has the force of a handwritten seal, so by default the
//! holder is told each time: a freedesktop notification on the D-Bus session bus
//! (`DBUS_SESSION_BUS_ADDRESS`) naming the program that caused it. Policy (the `notify` key of
//! `pkcs11::config`, `JPKI_PKCS11_NOTIFY`): `sign` (default: signature key only), `all` (also
//! the authentication key, which signs at every TLS or SSH login and would otherwise be noisy),
//! `off`.
//!
//! The notification is sent from its own thread after the signature was returned: the card
//! operation never waits for the bus. No session bus (a server, a service, a sandbox) means no
//! notification and no error (a debug log line). `C_Finalize` waits a bounded time
//! ([`dbus::TIMEOUT`] at most) for notifications still being sent, so a program that signs and
//! exits at once (pkcs11-tool) still shows one.

pub mod dbus;

use parking_lot::{Condvar, Mutex};

use crate::card::KeyKind;

/// Which signatures are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyPolicy {
    Off,
    /// Signature key only (default).
    Sign,
    /// Both keys.
    All,
}

impl NotifyPolicy {
    fn covers(self, key: KeyKind) -> bool {
        match self {
            NotifyPolicy::Off => false,
            NotifyPolicy::Sign => key == KeyKind::Signature,
            NotifyPolicy::All => true,
        }
    }
}

/// Notifications being sent (for [`wait_pending`]).
static PENDING: Mutex<usize> = parking_lot::const_mutex(0);

static DONE: Condvar = Condvar::new();

/// Announces a successful signature with `key` on `token` by the program at `program`. When
/// the host forbids threads (`threads_allowed` false, the module's record of
/// `CKF_LIBRARY_CANT_CREATE_OS_THREADS`), the notification is sent on the caller's thread,
/// after the signature, bounded by the socket timeouts ([`dbus::TIMEOUT`]).
pub fn signed(
    policy: NotifyPolicy,
    key: KeyKind,
    token: &str,
    program: &str,
    pid: u32,
    threads_allowed: bool,
) {
    // Never from this crate's unit tests, whatever session bus the developer's shell has.
    if cfg!(test) || !policy.covers(key) {
        return;
    }
    let Some(addr) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .ok()
        .and_then(|a| dbus::parse_address(&a))
    else {
        log::debug!("no D-Bus session bus: no notification");
        return;
    };
    let (summary, what) = match key {
        KeyKind::Signature => (
            "My Number Card: signature key used (署名用電子証明書)",
            "made a signature with the force of your seal",
        ),
        KeyKind::Authentication => (
            "My Number Card: authentication key used (利用者証明用電子証明書)",
            "signed with your authentication key (a log-in)",
        ),
    };
    let program = if program.is_empty() {
        "an unknown program"
    } else {
        program
    };
    let text = format!("{program} (pid {pid}) {what} on {token}.\nNot you? Check `jpki history`.");
    if !threads_allowed {
        if let Err(e) = dbus::notify(&addr, "jpki-pkcs11", "security-high", summary, &text) {
            log::debug!("desktop notification not sent: {e}");
        }
        return;
    }
    *PENDING.lock() += 1;
    let spawned = std::thread::Builder::new()
        .name("jpki-notify".into())
        .spawn(move || {
            if let Err(e) = dbus::notify(&addr, "jpki-pkcs11", "security-high", summary, &text) {
                log::debug!("desktop notification not sent: {e}");
            }
            let mut n = PENDING.lock();
            *n = n.saturating_sub(1);
            DONE.notify_all();
        });
    if let Err(e) = spawned {
        log::debug!("desktop notification not sent: {e}");
        let mut n = PENDING.lock();
        *n = n.saturating_sub(1);
    }
}

/// Waits (at most a little over [`dbus::TIMEOUT`]) for notifications still being sent.
pub fn wait_pending() {
    let deadline = std::time::Instant::now() + dbus::TIMEOUT * 2;
    let mut n = PENDING.lock();
    while *n > 0 {
        if DONE.wait_until(&mut n, deadline).timed_out() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(NotifyPolicy::Sign.covers(KeyKind::Signature));
        assert!(!NotifyPolicy::Sign.covers(KeyKind::Authentication));
        assert!(NotifyPolicy::All.covers(KeyKind::Authentication));
        assert!(!NotifyPolicy::Off.covers(KeyKind::Signature));
    }
}
