//! Typed JPKI operations over one card connection.
//!
//! PUBLIC API CONTRACT (the core layer is written against these signatures):
//!
//! ```ignore
//! impl JpkiCard {
//!     pub fn new(transport: Box<dyn Transport>) -> Self;          // no card traffic
//!     pub fn atr(&self) -> Vec<u8>;
//!     pub fn apdus_sent(&self) -> u64;
//!     pub fn is_jpki(&mut self) -> Result<bool, CardError>;      // SELECT JPKI AP answers 9000?
//!     pub fn token_label(&mut self) -> Result<String, CardError>; // EF 0006, trimmed
//!     pub fn read_certificate(&mut self, file: CertificateFile) -> Result<Vec<u8>, CardError>;
//!     pub fn pin_tries_left(&mut self, key: KeyKind) -> Result<u8, CardError>;   // no try spent
//!     pub fn verify_pin(&mut self, pin: &Pin) -> Result<(), CardError>;          // Pin knows its key
//!     pub fn sign(&mut self, key: KeyKind, digest_info: &[u8]) -> Result<Vec<u8>, CardError>;
//!     pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<(), CardError>;
//!     pub fn logout(&mut self) -> Result<(), CardError>;         // clears the card's security state
//!     pub fn check_presence(&mut self) -> Result<(), CardError>; // no APDU: removed? reset?
//! }
//! ```
//! Every multi-APDU operation runs inside one transport transaction. Errors:
//! `CardError::PinIncorrect { tries_left }`, `PinBlocked`, `SecurityStatusNotSatisfied`
//! (6982: not logged in), `CardReset` (security state lost; re-login needed), `Removed`, …
//!
//! # What is sent (minimal traffic)
//!
//! | operation | APDUs (JPKI AP already selected) |
//! |---|---|
//! | `read_certificate` | SELECT EF + ⌈N/256⌉ READ BINARY (N = DER length; first read Le=00) |
//! | `token_label` | SELECT EF 0006 + READ BINARY Le=20 |
//! | `pin_tries_left` | SELECT PIN EF + empty VERIFY |
//! | `verify_pin` | SELECT PIN EF + VERIFY |
//! | `sign` | SELECT key EF + COMPUTE DIGITAL SIGNATURE |
//! | `change_pin` | SELECT PIN EF + VERIFY old + CHANGE REFERENCE DATA |
//! | `logout` | SELECT AP |
//!
//! plus one SELECT AP the first time, and again after a reset or a transport error.
//!
//! # What is known to be selected (decision)
//!
//! - **The current EF is trusted only inside one transaction.** Between two of our
//!   transactions, another PC/SC client may select another EF of the JPKI AP; this does not
//!   clear the security state and cannot be detected, and trusting a stale EF could VERIFY
//!   the wrong PIN or sign with the wrong key. So each operation selects its EF (once).
//! - **The JPKI AP is trusted across transactions**, because re-selecting it *is* the logout
//!   (it clears the security state, jpki-card.md §6): re-selecting it at the start of each
//!   transaction would make every signature after a separate `C_Login` fail with 6982.
//!   It is selected the first time, after a card reset, after any transport error, after a
//!   failed SELECT, and by `logout`.
//! - **Interference is detected from the card's answers.** If another client selected another
//!   application between our transactions, our login is gone anyway (a DF change clears the
//!   security state), and the next SELECT EF answers 6A82 (the JPKI EF numbers 0017, 0018,
//!   001A, 001B, 000A, 000B, 0006 exist in no other AP of jpki-card.md §2), or READ of EF
//!   0001/0002 (which do exist elsewhere) answers 6982 or something that is not a certificate.
//!   When the AP was not selected within the current transaction, such an answer triggers one
//!   re-SELECT of the AP and one retry of the SELECT/READ — never of a VERIFY (no try is spent
//!   twice) nor of a signature.
//!
//! # Extensions not yet used (hook)
//!
//! Features seen on one source only ([1], jpki-card.md §4–6): SFI forms (`00 B0 80|SFI`,
//! `00 20 00 80|SFI`, sign P2 = `80|SFI`) would save the SELECT EF of each operation. They need
//! detection on a real card first. (P1 = 04, RSASSA-PSS, is used, with its detection: see
//! `jpki/pss.rs`; the other applications of the card: `jpki/text.rs`.) When added, record them in
//! [`SignatureScheme`] / a capabilities field filled by `is_jpki`, and branch in
//! `Session::select_ef` and `JpkiCard::sign`; nothing else needs to change.

mod pss;
mod text;

pub use pss::PSS_HASH_LEN;
pub use text::{Application, CardFaceInfo, KenhojoPin, Sex};

use super::apdu::{exchange, Command, Response, StatusWord};
use super::error::CardError;
use super::pin::Pin;
use crate::transport::{Channel, Transport};

/// The JPKI AP (公的個人認証AP) AID (jpki-card.md §2, [C]).
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];

/// Token information EF; first 32 bytes are the space-padded label (jpki-card.md §3, [C]).
const EF_TOKEN_INFO: u16 = 0x0006;
/// Bytes of EF 0006 holding the label (MYNA reads 0x20, jpki-card.md §3 [C]).
const TOKEN_LABEL_LEN: u16 = 32;

/// Largest certificate accepted (the JPKI ones are ~1.3–2 KB; jpki-card.md §4).
const MAX_CERTIFICATE_LEN: usize = 8 * 1024;
/// Most READ BINARY commands for one certificate, however little the card gives per answer.
const MAX_READS: usize = 64;

/// Largest DigestInfo the card pads with PKCS#1 v1.5 for RSA-2048: k − 11 (jpki-card.md §6).
const MAX_DIGEST_INFO_LEN: usize = 245;
/// RSA-2048 signature length (jpki-card.md §6, [C]).
const SIGNATURE_LEN: usize = 256;

/// Which of the two JPKI keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// User authentication (利用者証明用): key EF 0017, PIN EF 0018, 4 digits, 3 tries.
    Authentication,
    /// Digital signature (署名用): key EF 001A, password EF 001B, 6–16 of A–Z0–9, 5 tries.
    Signature,
}

impl KeyKind {
    /// The PIN EF, target of VERIFY (jpki-card.md §3, [C]).
    pub fn pin_ef(self) -> u16 {
        match self {
            KeyKind::Authentication => 0x0018,
            KeyKind::Signature => 0x001B,
        }
    }

    /// The private-key EF, selected before COMPUTE DIGITAL SIGNATURE (jpki-card.md §3, [C]).
    pub fn key_ef(self) -> u16 {
        match self {
            KeyKind::Authentication => 0x0017,
            KeyKind::Signature => 0x001A,
        }
    }

    /// Tries of a fresh counter (jpki-card.md §5, [C]).
    pub fn max_tries(self) -> u8 {
        match self {
            KeyKind::Authentication => 3,
            KeyKind::Signature => 5,
        }
    }

    fn bit(self) -> u8 {
        match self {
            KeyKind::Authentication => 1,
            KeyKind::Signature => 2,
        }
    }
}

/// The certificate EFs of the JPKI AP (jpki-card.md §3, [C]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateFile {
    /// EF 000A, readable without PIN.
    Authentication,
    /// EF 000B, readable without PIN.
    AuthenticationCa,
    /// EF 0001, readable only after VERIFY of the signature password (6982 before).
    Signature,
    /// EF 0002, readable without PIN.
    SignatureCa,
}

impl CertificateFile {
    pub const ALL: [CertificateFile; 4] = [
        CertificateFile::Authentication,
        CertificateFile::AuthenticationCa,
        CertificateFile::Signature,
        CertificateFile::SignatureCa,
    ];

    /// The EF number.
    pub fn fid(self) -> u16 {
        match self {
            CertificateFile::Authentication => 0x000A,
            CertificateFile::AuthenticationCa => 0x000B,
            CertificateFile::Signature => 0x0001,
            CertificateFile::SignatureCa => 0x0002,
        }
    }

    /// The key whose PIN must be verified before reading, if any.
    pub fn protected_by(self) -> Option<KeyKind> {
        match self {
            CertificateFile::Signature => Some(KeyKind::Signature),
            _ => None,
        }
    }
}

/// How the card is asked to sign. Only PKCS#1 v1.5 over a caller-built DigestInfo
/// (P1 = 00, P2 = 80: what OpenSC, MYNA and JRS use, [C]); PSS (P1 = 04, [1]) is in `pss.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureScheme {
    Pkcs1V15DigestInfo,
}

impl SignatureScheme {
    fn p1(self) -> u8 {
        match self {
            SignatureScheme::Pkcs1V15DigestInfo => 0x00,
        }
    }
}

/// What we believe of the card between transactions (see the module documentation).
#[derive(Debug, Default)]
struct CardState {
    /// The JPKI AP is the current DF.
    ap_selected: bool,
    /// Keys (bits of [`KeyKind::bit`]) verified since the AP was last selected.
    verified: u8,
    /// Answer of `is_jpki`, once known (a card does not change while connected).
    is_jpki: Option<bool>,
    /// Whether the card signs with RSASSA-PSS (P1 = 04), once probed or learnt (`pss.rs`).
    pss: Option<bool>,
}

impl CardState {
    /// Forgets what an error makes uncertain.
    fn forget_after(&mut self, e: &CardError) {
        match e {
            CardError::CardReset => {
                // The transport has reconnected; the card is back at its MF, logged out.
                self.ap_selected = false;
                self.verified = 0;
            }
            CardError::Removed
            | CardError::NoService
            | CardError::NoReader
            | CardError::Timeout
            | CardError::Transport(_) => self.ap_selected = false,
            _ => {}
        }
    }
}

/// A connection to a card with the JPKI application.
pub struct JpkiCard {
    transport: Box<dyn Transport>,
    state: CardState,
}

impl std::fmt::Debug for JpkiCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JpkiCard")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// One transaction: the channel, and what is selected within it.
struct Session<'a> {
    channel: Box<dyn Channel + 'a>,
    state: &'a mut CardState,
    /// The AP was selected in this transaction (so a 6A82 is not interference).
    ap_selected_here: bool,
    /// The current EF, known only within this transaction.
    ef: Option<u16>,
}

impl Session<'_> {
    fn exchange(&mut self, command: &Command) -> Result<Response, CardError> {
        exchange(self.channel.as_mut(), command)
    }

    /// SELECT the JPKI AP by DF name (`00 A4 04 0C 0A AID`), unless known selected and not
    /// `force`d. Selecting clears the card's security state.
    fn select_ap(&mut self, force: bool) -> Result<(), CardError> {
        if self.state.ap_selected && !force {
            return Ok(());
        }
        self.state.ap_selected = false;
        self.state.verified = 0;
        self.ef = None;
        let command = Command::new(0x00, 0xA4, 0x04, 0x0C).with_data(&JPKI_AID);
        let response = self.exchange(&command)?;
        match response.sw {
            StatusWord::OK => {
                self.state.ap_selected = true;
                self.ap_selected_here = true;
                Ok(())
            }
            StatusWord::FILE_NOT_FOUND => Err(CardError::NotJpki),
            sw => Err(CardError::UnexpectedStatus(sw.0)),
        }
    }

    /// SELECT EF `fid` of the JPKI AP (`00 A4 02 0C 02 FID`), unless already current in this
    /// transaction. Recovers once from another client's selection of another AP.
    fn select_ef(&mut self, fid: u16) -> Result<(), CardError> {
        self.select_ap(false)?;
        if self.ef == Some(fid) {
            return Ok(());
        }
        self.ef = None;
        let command = Command::new(0x00, 0xA4, 0x02, 0x0C).with_data(&fid.to_be_bytes());
        let mut sw = self.exchange(&command)?.sw;
        if sw == StatusWord::FILE_NOT_FOUND && !self.ap_selected_here {
            log::debug!("EF {fid:04X} not found: JPKI AP deselected by another client?");
            self.select_ap(true)?;
            sw = self.exchange(&command)?.sw;
        }
        match sw {
            StatusWord::OK => {
                self.ef = Some(fid);
                Ok(())
            }
            StatusWord::FILE_NOT_FOUND => Err(CardError::FileNotFound),
            sw => Err(CardError::UnexpectedStatus(sw.0)),
        }
    }

    /// READ BINARY `00 B0 off_hi off_lo Le` of the current EF.
    fn read_binary(&mut self, offset: usize, le: u16) -> Result<Response, CardError> {
        let offset = u16::try_from(offset)
            .ok()
            .filter(|o| *o <= 0x7FFF)
            .ok_or(CardError::MalformedResponse("offset beyond 15 bits"))?;
        let [hi, lo] = offset.to_be_bytes();
        self.exchange(&Command::new(0x00, 0xB0, hi, lo).with_le(le))
    }

    /// Reads the DER object at the start of EF `fid`, in the fewest READ BINARY: Le=00 at
    /// offset 0, then what the DER header says is left, in 256-byte chunks with the exact last
    /// Le; never past the DER length.
    fn read_der_file(&mut self, fid: u16) -> Result<Vec<u8>, CardError> {
        self.select_ef(fid)?;
        let mut buf: Vec<u8> = Vec::new();
        let mut total: Option<usize> = None;
        for _ in 0..MAX_READS {
            let want = match total {
                None => 256,
                Some(t) => (t - buf.len()).min(256),
            };
            if want == 0 {
                return Ok(buf);
            }
            // `want` is 1..=256.
            let response = self.read_binary(buf.len(), want as u16)?;
            match response.sw {
                StatusWord::OK | StatusWord::END_OF_FILE => {}
                StatusWord::WRONG_OFFSET => {
                    return Err(CardError::MalformedResponse(
                        "EF shorter than its DER length",
                    ))
                }
                StatusWord::SECURITY_STATUS => return Err(CardError::SecurityStatusNotSatisfied),
                StatusWord::FILE_NOT_FOUND => return Err(CardError::FileNotFound),
                sw => return Err(CardError::UnexpectedStatus(sw.0)),
            }
            if response.data.is_empty() {
                return Err(CardError::MalformedResponse("READ BINARY returned no data"));
            }
            buf.extend_from_slice(&response.data);
            if total.is_none() {
                total = der_total_length(&buf)?;
            }
            if let Some(t) = total {
                if buf.len() >= t {
                    // The first read may return filler after the DER object: drop it.
                    buf.truncate(t);
                    return Ok(buf);
                }
            }
        }
        Err(CardError::MalformedResponse("too many READ BINARY"))
    }

    /// Empty VERIFY (`00 20 00 80`): the tries left, no try spent.
    fn tries_left(&mut self, key: KeyKind) -> Result<u8, CardError> {
        self.select_ef(key.pin_ef())?;
        let response = self.exchange(&Command::new(0x00, 0x20, 0x00, 0x80))?;
        match response.sw {
            // Some cards may answer 90 00 when the PIN is verified [U]; a successful VERIFY
            // resets the counter, so the tries left are the maximum.
            StatusWord::OK => Ok(key.max_tries()),
            StatusWord::DATA_BLOCKED | StatusWord::AUTH_BLOCKED => Ok(0),
            sw => sw.tries_left().ok_or(CardError::UnexpectedStatus(sw.0)),
        }
    }

    /// VERIFY `00 20 00 80 Lc pin` after SELECT of the PIN EF.
    fn verify(&mut self, pin: &Pin) -> Result<(), CardError> {
        let key = pin.key();
        self.select_ef(key.pin_ef())?;
        let command = Command::new(0x00, 0x20, 0x00, 0x80)
            .with_data(pin.as_bytes())
            .secret();
        let response = self.exchange(&command)?;
        self.state.verified &= !key.bit();
        match response.sw {
            StatusWord::OK => {
                self.state.verified |= key.bit();
                Ok(())
            }
            StatusWord::DATA_BLOCKED | StatusWord::AUTH_BLOCKED => Err(CardError::PinBlocked),
            sw => match sw.tries_left() {
                Some(0) => Err(CardError::PinBlocked),
                Some(tries_left) => Err(CardError::PinIncorrect { tries_left }),
                None => Err(CardError::UnexpectedStatus(sw.0)),
            },
        }
    }
}

/// The total length (header + content) of the DER object starting `bytes`, or `None` when
/// more bytes are needed to know. Only a SEQUENCE with a definite length ≤ 8 KiB is accepted.
fn der_total_length(bytes: &[u8]) -> Result<Option<usize>, CardError> {
    let (Some(&tag), Some(&first)) = (bytes.first(), bytes.get(1)) else {
        return Ok(None);
    };
    if tag != 0x30 {
        return Err(CardError::MalformedResponse("not a DER SEQUENCE"));
    }
    let (header, content) = match first {
        0x00..=0x7F => (2, usize::from(first)),
        0x81 => match bytes.get(2) {
            None => return Ok(None),
            Some(&l) => (3, usize::from(l)),
        },
        0x82 => match (bytes.get(2), bytes.get(3)) {
            (Some(&h), Some(&l)) => (4, usize::from(u16::from_be_bytes([h, l]))),
            _ => return Ok(None),
        },
        0x80 => return Err(CardError::MalformedResponse("indefinite DER length")),
        _ => return Err(CardError::MalformedResponse("DER length too large")),
    };
    let total = header + content;
    if total > MAX_CERTIFICATE_LEN {
        return Err(CardError::MalformedResponse("DER length too large"));
    }
    Ok(Some(total))
}

impl JpkiCard {
    /// Wraps a connection. No card traffic.
    pub fn new(transport: Box<dyn Transport>) -> Self {
        JpkiCard {
            transport,
            state: CardState::default(),
        }
    }

    /// The card's ATR.
    pub fn atr(&self) -> Vec<u8> {
        self.transport.atr()
    }

    /// APDUs sent over this connection so far.
    pub fn apdus_sent(&self) -> u64 {
        self.transport.apdus_sent()
    }

    /// Whether `key`'s PIN was verified and, as far as this connection knows, the card still
    /// holds that state. Re-selecting the application (logout, recovery from an answer that
    /// suggests another client changed the selection) and card resets clear it.
    pub fn is_verified(&self, key: KeyKind) -> bool {
        self.state.verified & key.bit() != 0
    }

    /// Runs `op` in one transaction, and forgets what a failure makes uncertain.
    fn with_session<T>(
        &mut self,
        op: impl FnOnce(&mut Session<'_>) -> Result<T, CardError>,
    ) -> Result<T, CardError> {
        let JpkiCard { transport, state } = self;
        let result = match transport.begin() {
            Ok(channel) => {
                let mut session = Session {
                    channel,
                    state: &mut *state,
                    ap_selected_here: false,
                    ef: None,
                };
                op(&mut session)
            }
            Err(e) => Err(CardError::from(e)),
        };
        if let Err(e) = &result {
            state.forget_after(e);
        }
        result
    }

    /// Whether the card is still in its reader and was not reset by another party, asked of
    /// the reader layer: no APDU (`SCardStatus` with PC/SC). `Err(CardReset)` means the
    /// card's security state is gone (reported once); `Err(Removed)` that the card is gone.
    pub fn check_presence(&mut self) -> Result<(), CardError> {
        let result = self.transport.status().map_err(CardError::from);
        if let Err(e) = &result {
            self.state.forget_after(e);
        }
        result
    }

    /// Whether the card has the JPKI AP (SELECT by DF name answers 90 00). Sends nothing when
    /// already known (the AP was selected before, or asked before on this connection).
    pub fn is_jpki(&mut self) -> Result<bool, CardError> {
        if let Some(known) = self.state.is_jpki {
            return Ok(known);
        }
        if self.state.ap_selected {
            self.state.is_jpki = Some(true);
            return Ok(true);
        }
        let answer = self.with_session(|s| match s.select_ap(false) {
            Ok(()) => Ok(true),
            Err(CardError::NotJpki | CardError::UnexpectedStatus(_)) => Ok(false),
            Err(e) => Err(e),
        })?;
        self.state.is_jpki = Some(answer);
        Ok(answer)
    }

    /// The token label: the first 32 bytes of EF 0006, trimmed of spaces and NULs
    /// (`JPKIAPICCTOKEN2` on a My Number Card).
    pub fn token_label(&mut self) -> Result<String, CardError> {
        self.with_session(|s| {
            s.select_ef(EF_TOKEN_INFO)?;
            let response = s.read_binary(0, TOKEN_LABEL_LEN)?;
            match response.sw {
                StatusWord::OK | StatusWord::END_OF_FILE => {}
                StatusWord::SECURITY_STATUS => return Err(CardError::SecurityStatusNotSatisfied),
                sw => return Err(CardError::UnexpectedStatus(sw.0)),
            }
            let label = String::from_utf8_lossy(&response.data);
            Ok(label
                .trim_matches(|c: char| c == ' ' || c == '\0')
                .to_owned())
        })
    }

    /// Reads a certificate (raw DER bytes, exactly the DER object's length).
    /// [`CertificateFile::Signature`] answers `SecurityStatusNotSatisfied` before the signature
    /// password is verified.
    pub fn read_certificate(&mut self, file: CertificateFile) -> Result<Vec<u8>, CardError> {
        let fid = file.fid();
        self.with_session(|s| {
            let result = s.read_der_file(fid);
            // Another client may have selected another AP holding an EF of the same number
            // (0001, 0002): a public file then reads as 6982 or as a non-certificate; the sign
            // certificate answers 6982 although we verified its password.
            let foreign = match (&result, file.protected_by()) {
                (Err(CardError::SecurityStatusNotSatisfied), None) => true,
                (Err(CardError::SecurityStatusNotSatisfied), Some(key)) => {
                    s.state.verified & key.bit() != 0
                }
                (Err(CardError::MalformedResponse(_)), _) => true,
                _ => false,
            };
            if foreign && !s.ap_selected_here {
                log::debug!("EF {fid:04X} unreadable: JPKI AP deselected by another client?");
                s.select_ap(true)?;
                return s.read_der_file(fid);
            }
            result
        })
    }

    /// Tries left for `key`'s PIN, without spending one (0 = blocked).
    pub fn pin_tries_left(&mut self, key: KeyKind) -> Result<u8, CardError> {
        self.with_session(|s| s.tries_left(key))
    }

    /// VERIFY the PIN (of the key the PIN belongs to). `PinIncorrect { tries_left }` on a
    /// wrong PIN, `PinBlocked` when no try is left.
    pub fn verify_pin(&mut self, pin: &Pin) -> Result<(), CardError> {
        self.with_session(|s| s.verify(pin))
    }

    /// Signs a DER DigestInfo (1–245 bytes) with `key`; the card adds PKCS#1 v1.5 type-1
    /// padding. `SecurityStatusNotSatisfied` when the key's PIN is not verified.
    pub fn sign(&mut self, key: KeyKind, digest_info: &[u8]) -> Result<Vec<u8>, CardError> {
        if digest_info.is_empty() || digest_info.len() > MAX_DIGEST_INFO_LEN {
            return Err(CardError::DataLength);
        }
        let scheme = SignatureScheme::Pkcs1V15DigestInfo;
        self.with_session(|s| {
            s.select_ef(key.key_ef())?;
            let command = Command::new(0x80, 0x2A, scheme.p1(), 0x80)
                .with_data(digest_info)
                .with_le(SIGNATURE_LEN as u16);
            let response = s.exchange(&command)?;
            match response.sw {
                StatusWord::OK if response.data.len() == SIGNATURE_LEN => Ok(response.data),
                StatusWord::OK => Err(CardError::MalformedResponse("signature of wrong length")),
                StatusWord::SECURITY_STATUS => Err(CardError::SecurityStatusNotSatisfied),
                StatusWord::WRONG_LENGTH => Err(CardError::DataLength),
                sw => Err(CardError::UnexpectedStatus(sw.0)),
            }
        })
    }

    /// Changes a PIN: VERIFY `old`, then CHANGE REFERENCE DATA `00 24 01 80 Lc new`, in one
    /// transaction. Both PINs must be of the same key.
    pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<(), CardError> {
        if old.key() != new.key() {
            return Err(CardError::InvalidArgument(
                "old and new PIN of different keys",
            ));
        }
        self.with_session(|s| {
            s.verify(old)?;
            let command = Command::new(0x00, 0x24, 0x01, 0x80)
                .with_data(new.as_bytes())
                .secret();
            let response = s.exchange(&command)?;
            match response.sw {
                StatusWord::OK => Ok(()),
                StatusWord::SECURITY_STATUS => Err(CardError::SecurityStatusNotSatisfied),
                StatusWord::DATA_BLOCKED | StatusWord::AUTH_BLOCKED => Err(CardError::PinBlocked),
                sw => Err(CardError::UnexpectedStatus(sw.0)),
            }
        })
    }

    /// Clears the card's security state (both keys) by re-selecting the JPKI AP, as OpenSC
    /// does (jpki-card.md §6, §9). One APDU.
    pub fn logout(&mut self) -> Result<(), CardError> {
        self.with_session(|s| s.select_ap(true))
    }
}

impl Drop for JpkiCard {
    /// Leaves no verified PIN behind on the card for the next client.
    fn drop(&mut self) {
        if self.state.verified != 0 {
            if let Err(e) = self.logout() {
                log::debug!("logout on drop failed: {e}");
            }
        }
    }
}
