//! One inserted JPKI card and its two tokens (authentication, signature).
//!
//! All card I/O of one card happens under the card's own mutex ([`Card::inner`]); no module-wide
//! lock is held meanwhile. Certificates are read lazily, once per insertion, and kept in memory
//! only (never on disk); objects built from them keep their handles for the card's lifetime.
//!
//! Split by job: [`certificates`] (lazy reads and the objects built from them), [`login`]
//! (login, logout, PIN change, PIN-counter flags) and [`signing`]; this file holds the state of
//! one card and its two tokens, and the token information.

mod certificates;
mod identity;
mod login;
mod signing;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cryptoki_sys::*;
use parking_lot::Mutex;

use super::cert_source::{self, CertSource};
use super::config::{self, SignCertLookup};
use super::error::{Error, Result};
use super::object::{self, Object, ObjectHandle};
use crate::card::{CardError, JpkiCard, KeyKind, Pin};
use certificates::CertObjects;
use login::needs_tries_read;
pub use login::tries_flags;

/// Object handles are never reused within a process (also across C_Finalize/C_Initialize).
static NEXT_OBJECT: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_object_handle() -> ObjectHandle {
    NEXT_OBJECT.fetch_add(1, Ordering::Relaxed) as ObjectHandle
}

/// Both keys of a card, in slot order: authentication first (slot 2n), signature (2n+1).
pub const KINDS: [KeyKind; 2] = [KeyKind::Authentication, KeyKind::Signature];

pub fn kind_index(kind: KeyKind) -> usize {
    match kind {
        KeyKind::Authentication => 0,
        KeyKind::Signature => 1,
    }
}

/// Per-token state. Whether the token is logged in is not kept here: the card layer owns it
/// ([`CardInner::logged_in`]).
struct TokenState {
    profiles: Vec<Arc<Object>>,
    user: CertObjects,
    ca: CertObjects,
    tries: Option<(u8, Instant)>,
}

impl TokenState {
    fn new(kind: KeyKind) -> TokenState {
        // The authentication token's certificates are all public. The signature token declares
        // the same by default so that NSS never asks for the signature password just to list
        // certificates (see `config::SignCertLookup`); its certificate stays a private object,
        // visible only after login (docs/client-behaviour.md).
        let sign_public = config::get().sign_cert_lookup() == SignCertLookup::WithoutLogin;
        let ids: &[CK_PROFILE_ID] = match kind {
            KeyKind::Authentication => &[CKP_PUBLIC_CERTIFICATES_TOKEN, CKP_AUTHENTICATION_TOKEN],
            KeyKind::Signature if sign_public => {
                &[CKP_PUBLIC_CERTIFICATES_TOKEN, CKP_AUTHENTICATION_TOKEN]
            }
            KeyKind::Signature => &[CKP_AUTHENTICATION_TOKEN],
        };
        TokenState {
            profiles: ids
                .iter()
                .map(|id| Arc::new(object::profile(next_object_handle(), kind, *id)))
                .collect(),
            user: CertObjects::Pending,
            ca: CertObjects::Pending,
            tries: None,
        }
    }

    fn all_objects(&self) -> impl Iterator<Item = &Arc<Object>> {
        fn list(c: &CertObjects) -> &[Arc<Object>] {
            match c {
                CertObjects::Loaded(v) => v.as_slice(),
                _ => &[],
            }
        }
        self.profiles
            .iter()
            .chain(list(&self.ca).iter())
            .chain(list(&self.user).iter())
    }

    /// Objects a token in this login state may see.
    fn visible(&self, logged_in: bool) -> impl Iterator<Item = &Arc<Object>> {
        self.all_objects().filter(move |o| logged_in || !o.private)
    }

    fn set_tries(&mut self, tries: u8) {
        self.tries = Some((tries, Instant::now()));
    }
}

struct CardInner {
    jpki: JpkiCard,
    tokens: [TokenState; 2],
    /// Serial number content octets of the authentication certificate (token serial, label tag).
    auth_serial: Option<Vec<u8>>,
    /// Where certificates come from: the card, or the cache checked against it
    /// (`cert_source.rs`).
    certs: CertSource,
    /// Set when the token hides its authentication certificate before login (phone.rs).
    phone: Option<crate::pkcs11::phone::PhoneToken>,
}

impl CardInner {
    /// Whether the token of `kind` is logged in: its PIN is verified for us, as the card layer
    /// (the one owner of this state) knows it. The card layer forgets it when it re-selects the
    /// application (an answer that makes it doubt what is selected, a transport error, a
    /// logout), when the card is reset, and on a failed VERIFY.
    fn logged_in(&self, kind: KeyKind) -> bool {
        self.jpki.is_verified(kind)
    }
}

/// One insertion of a JPKI card in one reader.
pub struct Card {
    pub reader: String,
    /// Reader event counter when this card was seen; a new value means another insertion.
    pub event_count: u32,
    removed: AtomicBool,
    inner: Mutex<CardInner>,
}

/// What `C_GetTokenInfo` needs from the card.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub label: String,
    pub serial: String,
    pub flags: CK_FLAGS,
    pub min_pin: usize,
    pub max_pin: usize,
}

/// A login request of `C_Login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    User,
    ContextSpecific,
}

impl Card {
    pub fn new(reader: String, event_count: u32, mut jpki: JpkiCard) -> Card {
        let certs = CertSource::new(&reader, &mut jpki);
        Card {
            reader,
            event_count,
            removed: AtomicBool::new(false),
            inner: Mutex::new(CardInner {
                jpki,
                tokens: [TokenState::new(KINDS[0]), TokenState::new(KINDS[1])],
                auth_serial: None,
                certs,
                phone: None,
            }),
        }
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// APDUs sent to this card so far (tests).
    pub fn apdus_sent(&self) -> u64 {
        self.inner.lock().jpki.apdus_sent()
    }

    fn check_present(&self) -> Result<()> {
        if self.is_removed() {
            Err(Error::DeviceRemoved)
        } else {
            Ok(())
        }
    }

    /// For calls answered from memory (searches, attributes, session state): asks the reader
    /// layer, without an APDU, whether the card is still there and whether another party
    /// reset it, so that such calls report a removal (`DeviceRemoved`) and the logged-out
    /// state after a reset like the calls that reach the card.
    pub fn check_live(&self) -> Result<()> {
        self.check_present()?;
        let mut inner = self.inner.lock();
        match inner.jpki.check_presence() {
            Ok(()) => Ok(()),
            Err(CardError::CardReset) => {
                let _ = self.card_error(CardError::CardReset);
                Ok(())
            }
            Err(e @ (CardError::Removed | CardError::NoReader)) => Err(self.card_error(e)),
            Err(e) => {
                // pcscd unreachable and the like: the next card command will tell.
                log::debug!("card status unknown: {e}");
                Ok(())
            }
        }
    }

    /// Maps a card error to this layer's error (through the one `From<CardError>`), after
    /// recording what it tells about the card: a removal, or a reset by another party (every
    /// login gone). The answer to a VERIFY of `kind`'s PIN: [`Card::pin_error`].
    fn card_error(&self, e: CardError) -> Error {
        match e {
            CardError::Removed | CardError::NoReader => {
                self.mark_removed();
                Error::DeviceRemoved
            }
            CardError::CardReset => {
                // Someone else reset the card: the card forgot every VERIFY. Never replay a PIN.
                log::info!(
                    "card in {:?} was reset by another party; logged out",
                    self.reader
                );
                // The card layer has already forgotten both VERIFYs.
                Error::UserNotLoggedIn
            }
            other => {
                log::warn!("card error: {other}");
                Error::from(other)
            }
        }
    }

    /// As [`Card::card_error`], for the answer to a VERIFY of `kind`'s PIN: a wrong or blocked
    /// PIN records the tries left (the card layer has ended that key's login).
    fn pin_error(&self, inner: &mut CardInner, kind: KeyKind, e: CardError) -> Error {
        let token = &mut inner.tokens[kind_index(kind)];
        match e {
            CardError::PinIncorrect { tries_left } => {
                token.set_tries(tries_left);
                Error::from(e)
            }
            CardError::PinBlocked => {
                token.set_tries(0);
                Error::from(e)
            }
            other => self.card_error(other),
        }
    }

    pub fn is_logged_in(&self, kind: KeyKind) -> bool {
        self.inner.lock().logged_in(kind)
    }

    /// Token label, serial and flags. Reads the authentication certificate once (label tag and
    /// serial come from it) and the PIN counter at most once per [`login::TRIES_CACHE`].
    pub fn token_info(&self, kind: KeyKind) -> Result<TokenInfo> {
        self.check_present()?;
        let mut inner = self.inner.lock();
        if inner.auth_serial.is_none() && inner.phone.is_none() {
            // The identity from the certificate's first chunk: its serial number
            // (`cert_source.rs`).
            let CardInner { jpki, certs, .. } = &mut *inner;
            let identity = certs.identity(jpki, kind == KeyKind::Authentication);
            match identity {
                Ok(chunk) => match cert_source::issuer_and_serial(&chunk) {
                    Some((_, serial)) => {
                        inner.auth_serial =
                            cert_source::integer_content(serial).map(<[u8]>::to_vec);
                    }
                    None => log::warn!("authentication certificate: no serial in its first bytes"),
                },
                // Only after the PIN: a smartphone token (phone.rs).
                Err(CardError::SecurityStatusNotSatisfied) => {
                    let p = crate::pkcs11::phone::detect(&mut inner.jpki);
                    inner.became_phone(p);
                }
                Err(e) => {
                    let err = self.card_error(e);
                    if err == Error::DeviceRemoved {
                        return Err(err);
                    }
                    log::warn!("could not read the authentication certificate: {err}");
                }
            }
        }
        let idx = kind_index(kind);
        if needs_tries_read(&inner.tokens[idx], inner.logged_in(kind)) {
            let tries = inner.jpki.pin_tries_left(kind);
            match tries {
                Ok(t) => inner.tokens[idx].set_tries(t),
                Err(CardError::PinBlocked) => inner.tokens[idx].set_tries(0),
                Err(e) => {
                    let err = self.card_error(e);
                    if err == Error::DeviceRemoved {
                        return Err(err);
                    }
                }
            }
        }
        let (label, serial) = inner.identity(kind);
        // CKF_RNG: C_GenerateRandom serves the operating system's generator.
        let mut flags = CKF_WRITE_PROTECTED
            | CKF_RNG
            | CKF_LOGIN_REQUIRED
            | CKF_USER_PIN_INITIALIZED
            | CKF_TOKEN_INITIALIZED;
        if let Some((tries, _)) = inner.tokens[idx].tries {
            flags |= tries_flags(kind, tries);
        }
        let (min_pin, max_pin) = Pin::len_range(kind);
        Ok(TokenInfo {
            label,
            serial,
            flags,
            min_pin,
            max_pin,
        })
    }
}
