//! Login, logout and `C_SetPIN` of a token, and the PIN-counter flags.

use std::time::Duration;

use cryptoki_sys::*;

use super::{kind_index, Card};
use super::{LoginKind, TokenState, KINDS};
use crate::card::{CardError, KeyKind, Pin, PinFormatError};
use crate::pkcs11::error::{Error, Result};

/// How long a PIN-counter answer is reused by `C_GetTokenInfo` while not logged in.
pub(super) const TRIES_CACHE: Duration = Duration::from_millis(2000);

/// Whether `C_GetTokenInfo` must ask the card for the PIN counter (traffic economy, issue 6).
///
/// The `CKF_USER_PIN_COUNT_LOW` / `FINAL_TRY` / `LOCKED` flags describe the card's counter, which
/// only a VERIFY changes — ours (whose answer carries the count: 90 00 → maximum, 63 Cx → x,
/// 69 84 → 0, recorded by `login`/`change_pin`) or another application's, which no PC/SC event
/// reveals. So:
/// - never asked yet for this token (per card insertion and process): ask — the counter may
///   have been spent before we started;
/// - logged in: do not ask — our VERIFY succeeded and reset the counter to its maximum. For
///   another application to spend a try meanwhile it must VERIFY on the card: if it selected
///   the JPKI AP (as OpenSC does) or the card clears a PIN's status on a failed comparison
///   (usual ISO behaviour, [U] for this card), our login ends too, the next signature sees
///   6982 and turns the token "not logged in", and the counter is asked again; otherwise the
///   flags may miss that other application's failed tries until our logout;
/// - not logged in: ask again only when the last answer is older than [`TRIES_CACHE`], so a
///   burst of `C_GetTokenInfo` (NSS calls it for every slot and again around a login) costs one
///   query, while the flags stay true within that window of another application's VERIFY.
pub(super) fn needs_tries_read(token: &TokenState, logged_in: bool) -> bool {
    match token.tries {
        None => true,
        Some(_) if logged_in => false,
        Some((_, at)) => at.elapsed() >= TRIES_CACHE,
    }
}

impl Card {
    /// `C_Login`. The PIN is checked locally first: a PIN that cannot be right for this key
    /// never reaches the card (no try is spent on it).
    pub fn login(&self, kind: KeyKind, how: LoginKind, pin: &[u8]) -> Result<()> {
        self.check_present()?;
        // A PIN that cannot be right is an incorrect PIN for C_Login (the specification's
        // code; NSS and GnuTLS ask the person again on it): docs/conformance.md. No try spent.
        let pin = Pin::parse(kind, pin).map_err(|_: PinFormatError| Error::PinIncorrect)?;
        let mut inner = self.inner.lock();
        let idx = kind_index(kind);
        match how {
            LoginKind::User if inner.logged_in(kind) => return Err(Error::UserAlreadyLoggedIn),
            LoginKind::ContextSpecific if !inner.logged_in(kind) => {
                return Err(Error::UserNotLoggedIn)
            }
            _ => {}
        }
        let mut result = inner.jpki.verify_pin(&pin);
        if result == Err(CardError::CardReset) {
            // The reset came before our VERIFY reached the card; the transport reconnected.
            let _ = self.card_error(CardError::CardReset);
            result = inner.jpki.verify_pin(&pin);
        }
        match result {
            Ok(()) => {
                // The card layer now counts the VERIFY: the token is logged in.
                inner.tokens[idx].set_tries(kind.max_tries());
                log::debug!("logged in to {kind:?} token");
                Ok(())
            }
            Err(e) => Err(self.pin_error(&mut inner, kind, e)),
        }
    }

    /// `C_Logout` (or the last session closing): clears the card's security state. The card
    /// forgets both VERIFYs at once, so both tokens of the card are logged out. When `keep_sibling`
    /// is set and the other token is logged in, only our state is cleared (the card keeps the
    /// VERIFYs for the sibling's sessions).
    pub fn logout(&self, kind: KeyKind, keep_sibling: bool) -> Result<()> {
        let mut inner = self.inner.lock();
        let sibling = KINDS[1 - kind_index(kind)];
        if !inner.logged_in(kind) {
            return Err(Error::UserNotLoggedIn);
        }
        inner.jpki.release(kind);
        if keep_sibling && inner.logged_in(sibling) {
            return Ok(());
        }
        inner.jpki.release(sibling);
        if self.is_removed() {
            return Ok(());
        }
        match inner.jpki.logout() {
            Ok(()) | Err(CardError::CardReset) => Ok(()),
            Err(e) => {
                // The logout itself succeeded for us; report only a removal.
                let err = self.card_error(e);
                log::warn!("clearing the card's security state failed: {err}");
                Ok(())
            }
        }
    }

    /// `C_SetPIN`: changes the PIN of `kind`: VERIFY old, CHANGE REFERENCE DATA new, in one
    /// card transaction. Both PINs are checked locally first (length, then character set):
    /// a malformed old or new PIN never reaches the card. Works logged in or not; afterwards
    /// the login state is what it was (a token that was not logged in does not become logged
    /// in through the VERIFY of the old PIN: the card is logged out again unless the sibling
    /// token is logged in). A wrong old PIN spends a try and, like a failed `C_Login`, leaves
    /// the token logged out (the card drops that key's VERIFY on a failed one).
    pub fn change_pin(&self, kind: KeyKind, old: &[u8], new: &[u8]) -> Result<()> {
        self.check_present()?;
        // C_SetPIN sets a PIN, so the format errors have their own return values.
        let old = Pin::parse(kind, old)?;
        let new = Pin::parse(kind, new)?;
        let mut inner = self.inner.lock();
        let idx = kind_index(kind);
        let was_logged_in = KINDS.map(|k| inner.logged_in(k));
        let result = inner.jpki.change_pin(&old, &new);
        if !was_logged_in[idx] {
            // The VERIFY of the old PIN does not log the token in.
            inner.jpki.release(kind);
        }
        match result {
            Ok(()) => {
                inner.tokens[idx].set_tries(kind.max_tries());
                if !was_logged_in.iter().any(|l| *l) {
                    if let Err(e) = inner.jpki.logout() {
                        log::debug!("logout after PIN change failed: {e}");
                    }
                }
                log::info!("PIN of the {kind:?} token changed");
                Ok(())
            }
            Err(e) => Err(self.pin_error(&mut inner, kind, e)),
        }
    }
}

/// `CKF_USER_PIN_*` flags from the retry counter.
pub fn tries_flags(kind: KeyKind, tries: u8) -> CK_FLAGS {
    match tries {
        0 => CKF_USER_PIN_LOCKED,
        1 => CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW,
        t if t < kind.max_tries() => CKF_USER_PIN_COUNT_LOW,
        _ => 0,
    }
}

#[cfg(test)]
mod tries_policy_tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn counter_is_read_first_then_only_when_stale_and_logged_out() {
        let mut token = TokenState::new(KeyKind::Authentication);
        assert!(needs_tries_read(&token, false), "never read: read");
        token.set_tries(3);
        assert!(!needs_tries_read(&token, false), "just read: from memory");
        let old = Instant::now()
            .checked_sub(TRIES_CACHE + Duration::from_millis(100))
            .expect("clock far enough from its origin");
        token.tries = Some((3, old));
        assert!(
            needs_tries_read(&token, false),
            "stale and logged out: read"
        );
        assert!(
            !needs_tries_read(&token, true),
            "logged in: our VERIFY set it"
        );
    }
}
