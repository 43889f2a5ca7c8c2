//! One inserted JPKI card and its two tokens (authentication, signature).
//!
//! All card I/O of one card happens under the card's own mutex ([`Card::inner`]); no module-wide
//! lock is held meanwhile. Certificates are read lazily, once per insertion, and kept in memory
//! only (never on disk); objects built from them keep their handles for the card's lifetime.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use parking_lot::Mutex;

use super::cert::CertificateData;
use super::config::{self, SignCertLookup};
use super::error::{Error, Result};
use super::mechanism::{verify_input, SignInput};
use super::object::{self, cert_files, pair_names, Object, ObjectHandle};
use super::phone::{self, PhoneToken};
use crate::card::{CardError, CertificateFile, JpkiCard, KeyKind, Pin, PinFormatError};
use crate::history;

/// Object handles are never reused within a process (also across C_Finalize/C_Initialize).
static NEXT_OBJECT: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_object_handle() -> ObjectHandle {
    NEXT_OBJECT.fetch_add(1, Ordering::Relaxed) as ObjectHandle
}

/// How long a PIN-counter answer is reused by `C_GetTokenInfo` while not logged in.
const TRIES_CACHE: Duration = Duration::from_millis(2000);

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
fn needs_tries_read(token: &TokenState) -> bool {
    match token.tries {
        None => true,
        Some(_) if token.logged_in => false,
        Some((_, at)) => at.elapsed() >= TRIES_CACHE,
    }
}

/// Both keys of a card, in slot order: authentication first (slot 2n), signature (2n+1).
pub const KINDS: [KeyKind; 2] = [KeyKind::Authentication, KeyKind::Signature];

pub fn kind_index(kind: KeyKind) -> usize {
    match kind {
        KeyKind::Authentication => 0,
        KeyKind::Signature => 1,
    }
}

/// Retry counter maximum of a key's PIN (jpki-card.md §5).
pub fn max_tries(kind: KeyKind) -> u8 {
    match kind {
        KeyKind::Authentication => 3,
        KeyKind::Signature => 5,
    }
}

/// PIN length bounds of a key's PIN (jpki-card.md §5).
pub fn pin_len_range(kind: KeyKind) -> (usize, usize) {
    match kind {
        KeyKind::Authentication => (4, 4),
        KeyKind::Signature => (6, 16),
    }
}

/// A certificate EF and the objects built from it.
#[derive(Default)]
enum CertObjects {
    /// Not read yet (or needs login first).
    #[default]
    Pending,
    /// Read and turned into objects.
    Loaded(Vec<Arc<Object>>),
    /// The card refused to read it before VERIFY (6982): read again after login only, so
    /// that searches never cause card traffic.
    NeedsLogin,
    /// The last read gave bytes that are not a usable certificate (`n` times in a row): read
    /// again at the next search, since a card's answer can be damaged on the way.
    Damaged(u8),
    /// The card has no such certificate, or it stayed unusable: no objects.
    Absent,
}

/// Reads in a row that may give an unusable certificate before the file counts as absent.
const MAX_DAMAGED_READS: u8 = 3;

impl CertObjects {
    /// The state after a read that gave no usable certificate.
    fn damaged(&self) -> CertObjects {
        let n = match self {
            CertObjects::Damaged(n) => n.saturating_add(1),
            _ => 1,
        };
        if n >= MAX_DAMAGED_READS {
            CertObjects::Absent
        } else {
            CertObjects::Damaged(n)
        }
    }
}

/// Per-token state.
struct TokenState {
    logged_in: bool,
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
        // visible only after login (clients.md §10.10).
        let sign_public = config::get().sign_cert_lookup == SignCertLookup::WithoutLogin;
        let ids: &[CK_PROFILE_ID] = match kind {
            KeyKind::Authentication => &[CKP_PUBLIC_CERTIFICATES_TOKEN, CKP_AUTHENTICATION_TOKEN],
            KeyKind::Signature if sign_public => {
                &[CKP_PUBLIC_CERTIFICATES_TOKEN, CKP_AUTHENTICATION_TOKEN]
            }
            KeyKind::Signature => &[CKP_AUTHENTICATION_TOKEN],
        };
        TokenState {
            logged_in: false,
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

    /// Objects the current login state may see.
    fn visible(&self) -> impl Iterator<Item = &Arc<Object>> {
        let logged_in = self.logged_in;
        self.all_objects().filter(move |o| logged_in || !o.private)
    }

    fn set_tries(&mut self, tries: u8) {
        self.tries = Some((tries, Instant::now()));
    }
}

/// What reading a certificate EF gave.
enum ReadOutcome {
    Bytes(Vec<u8>),
    /// 6982: readable only after VERIFY.
    NeedsLogin,
    /// Not on this card.
    Absent,
}

// ---- traffic economy (issue 6): which certificate EFs a request needs -----------------------

/// Which certificate EFs of a token to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Files {
    /// The user certificate (certificate, public key and private key objects).
    user: bool,
    /// The CA certificate (one certificate object).
    ca: bool,
}

impl Files {
    /// The EFs whose objects could match `template`. Class, `CKA_ID` and `CKA_LABEL` of every
    /// object are known before its certificate is read (object.rs), so a search that names
    /// another class, id or label never reads that EF: a key search reads no CA certificate,
    /// a search for profiles or vendor classes reads nothing.
    fn for_template(kind: KeyKind, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Files {
        let names = pair_names(kind);
        let may_match = |classes: &[CK_OBJECT_CLASS], id: u8, label: &str| {
            template.iter().all(|(ty, value)| match *ty {
                CKA_CLASS => classes.iter().any(|c| object::ulong(*c) == *value),
                CKA_ID => value.as_slice() == [id],
                CKA_LABEL => value.as_slice() == label.as_bytes(),
                _ => true,
            })
        };
        Files {
            user: may_match(
                &[CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY],
                names.id,
                names.label,
            ),
            ca: may_match(&[CKO_CERTIFICATE], names.ca_id, names.ca_label),
        }
    }
}

struct CardInner {
    jpki: JpkiCard,
    tokens: [TokenState; 2],
    /// Serial number content octets of the authentication certificate (token serial, label tag).
    auth_serial: Option<Vec<u8>>,
    /// Set when the token hides its authentication certificate before login (phone.rs).
    phone: Option<PhoneToken>,
}

impl CardInner {
    /// Token label and serial (stable for the card's insertion: on a phone token from EF 0006,
    /// never from the certificate that appears at login).
    fn identity(&self, kind: KeyKind) -> (String, String) {
        match &self.phone {
            Some(p) => label_and_tag(p.serial.clone().unwrap_or_default(), kind),
            None => label_and_serial(self.auth_serial.as_deref(), kind),
        }
    }

    /// A phone token was detected: its authentication token's certificates are not public.
    fn became_phone(&mut self, p: PhoneToken) {
        self.phone = Some(p);
        let public_certs = [(CKA_PROFILE_ID, object::ulong(CKP_PUBLIC_CERTIFICATES_TOKEN))];
        self.tokens[0]
            .profiles
            .retain(|o| !o.matches(&public_certs));
    }
}

impl CardInner {
    /// A token is logged in only while the card layer still counts its VERIFY: the card layer
    /// re-selects the application when an answer makes it doubt what is selected (or after a
    /// transport error), and that clears the card's PIN state for both keys.
    fn sync_login(&mut self) {
        let CardInner { jpki, tokens, .. } = self;
        for (token, kind) in tokens.iter_mut().zip(KINDS) {
            if token.logged_in && !jpki.is_verified(kind) {
                log::info!("the card forgot the {kind:?} PIN; logged out");
                token.logged_in = false;
            }
        }
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
    pub fn new(reader: String, event_count: u32, jpki: JpkiCard) -> Card {
        Card {
            reader,
            event_count,
            removed: AtomicBool::new(false),
            inner: Mutex::new(CardInner {
                jpki,
                tokens: [TokenState::new(KINDS[0]), TokenState::new(KINDS[1])],
                auth_serial: None,
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
                let _ = self.card_error(&mut inner, CardError::CardReset);
                Ok(())
            }
            Err(e @ (CardError::Removed | CardError::NoReader)) => {
                Err(self.card_error(&mut inner, e))
            }
            Err(e) => {
                // pcscd unreachable and the like: the next card command will tell.
                log::debug!("card status unknown: {e}");
                Ok(())
            }
        }
    }

    /// Maps a card error, updating the token state it tells about.
    fn card_error(&self, inner: &mut CardInner, e: CardError) -> Error {
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
                for t in inner.tokens.iter_mut() {
                    t.logged_in = false;
                }
                Error::UserNotLoggedIn
            }
            other => {
                log::warn!("card error: {other}");
                Error::from(other)
            }
        }
    }

    pub fn is_logged_in(&self, kind: KeyKind) -> bool {
        self.inner.lock().tokens[kind_index(kind)].logged_in
    }

    /// Reads `file`, retrying once after a reset by another party.
    fn read_cert(&self, inner: &mut CardInner, file: CertificateFile) -> Result<ReadOutcome> {
        for _ in 0..2 {
            let read = inner.jpki.read_certificate(file);
            inner.sync_login();
            match read {
                Ok(bytes) => return Ok(ReadOutcome::Bytes(bytes)),
                Err(CardError::SecurityStatusNotSatisfied) => return Ok(ReadOutcome::NeedsLogin),
                Err(CardError::FileNotFound) => {
                    // e.g. no signature certificate on cards of children under 15 (§7).
                    log::info!("certificate {file:?} not on the card");
                    return Ok(ReadOutcome::Absent);
                }
                Err(CardError::CardReset) => {
                    let _ = self.card_error(inner, CardError::CardReset);
                }
                Err(e) => return Err(self.card_error(inner, e)),
            }
        }
        Err(Error::DeviceError)
    }

    /// Reads the certificates of a token that the current login state allows and `want`
    /// asks for, once.
    fn load(&self, inner: &mut CardInner, kind: KeyKind, want: Files) -> Result<()> {
        let idx = kind_index(kind);
        let (user_file, ca_file) = cert_files(kind);
        let names = pair_names(kind);
        let logged_in = inner.tokens[idx].logged_in;
        let wanted = |c: &CertObjects| match c {
            CertObjects::Pending | CertObjects::Damaged(_) => true,
            CertObjects::NeedsLogin => logged_in,
            _ => false,
        };
        if want.ca && wanted(&inner.tokens[idx].ca) {
            let objects = match self.read_cert(inner, ca_file) {
                Ok(ReadOutcome::Bytes(bytes)) => match CertificateData::parse(&bytes) {
                    Ok(cert) => CertObjects::Loaded(vec![Arc::new(object::certificate(
                        next_object_handle(),
                        &cert,
                        names.ca_id,
                        names.ca_label,
                        true,
                        false,
                    ))]),
                    Err(e) => {
                        log::error!("CA certificate {ca_file:?} unusable: {}", e.0);
                        inner.tokens[idx].ca.damaged()
                    }
                },
                Ok(ReadOutcome::NeedsLogin) => CertObjects::NeedsLogin,
                Ok(ReadOutcome::Absent) => CertObjects::Absent,
                Err(e) => return Err(e),
            };
            let damaged = matches!(objects, CertObjects::Damaged(_));
            inner.tokens[idx].ca = objects;
            if damaged {
                return Err(Error::DeviceError);
            }
        }
        // The signature certificate holds name and address: read only after the password. On a
        // phone token the authentication certificate too is private (phone.rs).
        let user_private = kind == KeyKind::Signature || inner.phone.is_some();
        if want.user && wanted(&inner.tokens[idx].user) && (!user_private || logged_in) {
            let objects = match self.read_cert(inner, user_file) {
                Ok(ReadOutcome::Bytes(bytes)) => match CertificateData::parse(&bytes) {
                    Ok(cert) => {
                        crate::renewal::warn_once(kind, cert.not_after.as_ref());
                        if kind == KeyKind::Authentication {
                            inner.auth_serial = Some(cert.serial_value.clone());
                        } else {
                            let (label, serial) = inner.identity(kind);
                            let token = history::TokenRef {
                                label,
                                serial,
                                key: kind,
                            };
                            super::usage::sign_certificate_read(&token);
                        }
                        CertObjects::Loaded(vec![
                            Arc::new(object::certificate(
                                next_object_handle(),
                                &cert,
                                names.id,
                                names.label,
                                false,
                                user_private,
                            )),
                            Arc::new(object::public_key(
                                next_object_handle(),
                                &cert,
                                kind,
                                names.id,
                                names.label,
                                user_private,
                            )),
                            Arc::new(object::private_key(
                                next_object_handle(),
                                &cert,
                                kind,
                                names.id,
                                names.label,
                            )),
                        ])
                    }
                    Err(e) => {
                        log::error!("certificate {user_file:?} unusable: {}", e.0);
                        inner.tokens[idx].user.damaged()
                    }
                },
                Ok(ReadOutcome::NeedsLogin) => {
                    if kind == KeyKind::Authentication && inner.phone.is_none() {
                        let p = phone::detect(&mut inner.jpki);
                        inner.became_phone(p);
                    }
                    CertObjects::NeedsLogin
                }
                Ok(ReadOutcome::Absent) => CertObjects::Absent,
                Err(e) => return Err(e),
            };
            let damaged = matches!(objects, CertObjects::Damaged(_));
            inner.tokens[idx].user = objects;
            if damaged {
                return Err(Error::DeviceError);
            }
        }
        Ok(())
    }

    /// Handles of the visible objects of a token matching `template` (loads lazily first).
    pub fn find(
        &self,
        kind: KeyKind,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<Vec<ObjectHandle>> {
        self.check_present()?;
        let mut inner = self.inner.lock();
        let mut want = Files::for_template(kind, template);
        // Whether the authentication token declares CKP_PUBLIC_CERTIFICATES_TOKEN depends on
        // it being a phone token, which its certificate tells (phone.rs): a search that may
        // list profiles reads it first (token_info has normally read it already).
        let may_list_profiles = template
            .iter()
            .all(|(t, v)| *t != CKA_CLASS || *v == object::ulong(CKO_PROFILE));
        if kind == KeyKind::Authentication
            && may_list_profiles
            && matches!(inner.tokens[0].user, CertObjects::Pending)
        {
            want.user = true;
        }
        log::trace!(
            "search on {kind:?}: attribute types {:x?}, may read {want:?}",
            template.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        );
        self.load(&mut inner, kind, want)?;
        Ok(inner.tokens[kind_index(kind)]
            .visible()
            .filter(|o| o.matches(template))
            .map(|o| o.handle)
            .collect())
    }

    /// A visible object of a token. `Err(ObjectHandleInvalid)` if unknown or hidden.
    pub fn object(&self, kind: KeyKind, handle: ObjectHandle) -> Result<Arc<Object>> {
        self.object_with_visibility(kind, handle)?
            .ok_or(Error::ObjectHandleInvalid)
    }

    /// `Ok(Some)` visible, `Ok(None)` exists but hidden (not logged in), `Err` unknown.
    pub fn object_with_visibility(
        &self,
        kind: KeyKind,
        handle: ObjectHandle,
    ) -> Result<Option<Arc<Object>>> {
        let inner = self.inner.lock();
        let token = &inner.tokens[kind_index(kind)];
        let found = token.all_objects().find(|o| o.handle == handle).cloned();
        match found {
            Some(o) if token.logged_in || !o.private => Ok(Some(o)),
            Some(_) => Ok(None),
            None => Err(Error::ObjectHandleInvalid),
        }
    }

    /// Token label, serial and flags. Reads the authentication certificate once (label tag and
    /// serial come from it) and the PIN counter at most once per [`TRIES_CACHE`].
    pub fn token_info(&self, kind: KeyKind) -> Result<TokenInfo> {
        self.check_present()?;
        let mut inner = self.inner.lock();
        if inner.auth_serial.is_none() {
            let user_only = Files {
                user: true,
                ca: false,
            };
            if let Err(e) = self.load(&mut inner, KeyKind::Authentication, user_only) {
                if e == Error::DeviceRemoved {
                    return Err(e);
                }
                log::warn!("could not read the authentication certificate: {e}");
            }
        }
        let idx = kind_index(kind);
        if needs_tries_read(&inner.tokens[idx]) {
            let tries = inner.jpki.pin_tries_left(kind);
            inner.sync_login();
            match tries {
                Ok(t) => inner.tokens[idx].set_tries(t),
                Err(CardError::PinBlocked) => inner.tokens[idx].set_tries(0),
                Err(e) => {
                    let err = self.card_error(&mut inner, e);
                    if err == Error::DeviceRemoved {
                        return Err(err);
                    }
                }
            }
        }
        let (label, serial) = inner.identity(kind);
        let mut flags = CKF_WRITE_PROTECTED
            | CKF_LOGIN_REQUIRED
            | CKF_USER_PIN_INITIALIZED
            | CKF_TOKEN_INITIALIZED;
        if let Some((tries, _)) = inner.tokens[idx].tries {
            flags |= tries_flags(kind, tries);
        }
        let (min_pin, max_pin) = pin_len_range(kind);
        Ok(TokenInfo {
            label,
            serial,
            flags,
            min_pin,
            max_pin,
        })
    }

    /// What the usage history names a token by (memory only, no card traffic).
    pub fn history_ref(&self, kind: KeyKind) -> history::TokenRef {
        let inner = self.inner.lock();
        let (label, serial) = inner.identity(kind);
        history::TokenRef {
            label,
            serial,
            key: kind,
        }
    }

    /// The last known PIN counter of a token (memory only).
    pub fn known_tries(&self, kind: KeyKind) -> Option<u8> {
        self.inner.lock().tokens[kind_index(kind)]
            .tries
            .map(|(t, _)| t)
    }

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

    // ----- signing (PKCS#1 v1.5 and the card's own PSS) -----------------------------------

    /// Whether this card signs RSASSA-PSS itself (P1 = 04). Asks the card the first time
    /// (the card layer's probe: 2 APDUs, no PIN try, never a signature) and caches the answer
    /// for this insertion. A failed probe (transport error) is not cached and means "no".
    pub fn pss_support(&self) -> bool {
        if self.is_removed() {
            return false;
        }
        let mut inner = self.inner.lock();
        if let Some(known) = inner.jpki.known_pss_support() {
            return known;
        }
        match inner.jpki.pss_support() {
            Ok(known) => known,
            Err(e) => {
                let err = self.card_error(&mut inner, e);
                log::info!("PSS probe failed ({err}); PSS not offered for now");
                false
            }
        }
    }

    /// Signs `input` with the card key of `kind` — PKCS#1 v1.5 over a DigestInfo or raw
    /// `CKM_RSA_PKCS` data (P1 = 00), or PSS over a SHA-256 hash (P1 = 04) — then verifies the
    /// signature in software with `public` before returning it.
    pub fn sign(
        &self,
        kind: KeyKind,
        public: &rsa::RsaPublicKey,
        input: &SignInput,
    ) -> Result<Vec<u8>> {
        self.check_present()?;
        let mut inner = self.inner.lock();
        let idx = kind_index(kind);
        if !inner.tokens[idx].logged_in {
            return Err(Error::UserNotLoggedIn);
        }
        let result = match input {
            SignInput::Pkcs1(data) => inner.jpki.sign(kind, data),
            SignInput::PssSha256(hash) => inner.jpki.sign_pss_sha256(kind, hash),
        };
        inner.sync_login();
        let signature = match result {
            Ok(s) => s,
            Err(CardError::SecurityStatusNotSatisfied) => {
                inner.tokens[idx].logged_in = false;
                return Err(Error::UserNotLoggedIn);
            }
            Err(CardError::NotSupported) => {
                // Learnt on first use: the card refused P1 = 04 although the probe accepted it;
                // PSS is no longer offered for this card.
                log::warn!("the card refused RSASSA-PSS; no longer offered");
                return Err(Error::FunctionFailed);
            }
            Err(e) => return Err(self.card_error(&mut inner, e)),
        };
        if verify_input(public, input, &signature).is_err() {
            log::error!("the card's signature does not verify with the certificate's key");
            return Err(Error::DeviceError);
        }
        Ok(signature)
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

/// Token label and serial. Serial: the authentication certificate's serial number in hex
/// (last 16 digits); the label carries its last 8 digits so that two cards' tokens differ.
fn label_and_serial(auth_serial: Option<&[u8]>, kind: KeyKind) -> (String, String) {
    let serial = match auth_serial {
        Some(s) => {
            let hex: String = s
                .iter()
                .skip_while(|b| **b == 0)
                .map(|b| format!("{b:02X}"))
                .collect();
            let hex = if hex.is_empty() { "0".to_string() } else { hex };
            hex[hex.len().saturating_sub(16)..].to_string()
        }
        None => String::new(),
    };
    label_and_tag(serial, kind)
}

/// Label `JPKI Auth|Sign <last 8 characters of serial>` and the serial.
fn label_and_tag(serial: String, kind: KeyKind) -> (String, String) {
    let tag: String = {
        let chars: Vec<char> = serial.chars().collect();
        chars[chars.len().saturating_sub(8)..].iter().collect()
    };
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
