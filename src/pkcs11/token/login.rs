//! Login, logout and `C_SetPIN` of a token, and the PIN-counter flags.

use std::time::Duration;

use cryptoki_sys::*;

use super::{kind_index, Card};
use super::{max_tries, LoginKind, TokenState};
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
pub(super) fn needs_tries_read(token: &TokenState) -> bool {
    match token.tries {
        None => true,
        Some(_) if token.logged_in => false,
        Some((_, at)) => at.elapsed() >= TRIES_CACHE,
    }
}

impl Card {
    /// `C_Login`. The PIN is checked locally first: a PIN that cannot be right for this key
    /// never reaches the card (no try is spent on it).
    pub fn login(&self, kind: KeyKind, how: LoginKind, pin: &[u8]) -> Result<()> {
        self.check_present()?;
        let pin = Pin::parse(kind, pin).map_err(|e| match e {
            PinFormatError::Length => Error::PinLenRange,
            PinFormatError::Charset => Error::PinInvalid,
        })?;
        let mut inner = self.inner.lock();
        let idx = kind_index(kind);
        match how {
            LoginKind::User if inner.tokens[idx].logged_in => {
                return Err(Error::UserAlreadyLoggedIn)
            }
            LoginKind::ContextSpecific if !inner.tokens[idx].logged_in => {
                return Err(Error::UserNotLoggedIn)
            }
            _ => {}
        }
        let mut result = inner.jpki.verify_pin(&pin);
        if result == Err(CardError::CardReset) {
            // The reset came before our VERIFY reached the card; the transport reconnected.
            let _ = self.card_error(&mut inner, CardError::CardReset);
            result = inner.jpki.verify_pin(&pin);
        }
        match result {
            Ok(()) => {
                let token = &mut inner.tokens[idx];
                token.logged_in = true;
                token.set_tries(max_tries(kind));
                log::debug!("logged in to {kind:?} token");
                Ok(())
            }
            Err(CardError::PinIncorrect { tries_left }) => {
                inner.tokens[idx].set_tries(tries_left);
                inner.tokens[idx].logged_in = false;
                Err(Error::PinIncorrect)
            }
            Err(CardError::PinBlocked) => {
                inner.tokens[idx].set_tries(0);
                inner.tokens[idx].logged_in = false;
                Err(Error::PinLocked)
            }
            Err(e) => Err(self.card_error(&mut inner, e)),
        }
    }

    /// `C_Logout` (or the last session closing): clears the card's security state. The card
    /// forgets both VERIFYs at once, so both tokens of the card are logged out. When `keep_sibling`
    /// is set and the other token is logged in, only our state is cleared (the card keeps the
    /// VERIFYs for the sibling's sessions).
    pub fn logout(&self, kind: KeyKind, keep_sibling: bool) -> Result<()> {
        let mut inner = self.inner.lock();
        let idx = kind_index(kind);
        if !inner.tokens[idx].logged_in {
            return Err(Error::UserNotLoggedIn);
        }
        inner.tokens[idx].logged_in = false;
        if keep_sibling && inner.tokens[1 - idx].logged_in {
            return Ok(());
        }
        for t in inner.tokens.iter_mut() {
            t.logged_in = false;
        }
        if self.is_removed() {
            return Ok(());
        }
        match inner.jpki.logout() {
            Ok(()) | Err(CardError::CardReset) => Ok(()),
            Err(e) => {
                // The logout itself succeeded for us; report only a removal.
                let err = self.card_error(&mut inner, e);
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
        let parse = |b: &[u8]| {
            Pin::parse(kind, b).map_err(|e| match e {
                PinFormatError::Length => Error::PinLenRange,
                PinFormatError::Charset => Error::PinInvalid,
            })
        };
        let old = parse(old)?;
        let new = parse(new)?;
        let mut inner = self.inner.lock();
        let idx = kind_index(kind);
        match inner.jpki.change_pin(&old, &new) {
            Ok(()) => {
                inner.tokens[idx].set_tries(max_tries(kind));
                let any_logged_in = inner.tokens.iter().any(|t| t.logged_in);
                if !any_logged_in {
                    if let Err(e) = inner.jpki.logout() {
                        log::debug!("logout after PIN change failed: {e}");
                    }
                }
                log::info!("PIN of the {kind:?} token changed");
                Ok(())
            }
            Err(CardError::PinIncorrect { tries_left }) => {
                inner.tokens[idx].set_tries(tries_left);
                inner.tokens[idx].logged_in = false;
                Err(Error::PinIncorrect)
            }
            Err(CardError::PinBlocked) => {
                inner.tokens[idx].set_tries(0);
                inner.tokens[idx].logged_in = false;
                Err(Error::PinLocked)
            }
            Err(e) => Err(self.card_error(&mut inner, e)),
        }
    }
}

/// `CKF_USER_PIN_*` flags from the retry counter.
pub fn tries_flags(kind: KeyKind, tries: u8) -> CK_FLAGS {
    match tries {
        0 => CKF_USER_PIN_LOCKED,
        1 => CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW,
        t if t < max_tries(kind) => CKF_USER_PIN_COUNT_LOW,
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
        assert!(needs_tries_read(&token), "never read: read");
        token.set_tries(3);
        assert!(!needs_tries_read(&token), "just read: from memory");
        let old = Instant::now()
            .checked_sub(TRIES_CACHE + Duration::from_millis(100))
            .expect("clock far enough from its origin");
        token.tries = Some((3, old));
        assert!(needs_tries_read(&token), "stale and logged out: read");
        token.logged_in = true;
        assert!(!needs_tries_read(&token), "logged in: our VERIFY set it");
    }
}
