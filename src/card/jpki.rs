//! Typed JPKI operations over one card connection.
//!
//! PUBLIC API CONTRACT (the core layer is written against these signatures):
//!
//! ```ignore
//! impl JpkiCard {
//!     pub fn new(transport: Box<dyn Transport>) -> Self;          // no card traffic
//!     pub fn atr(&self) -> Vec<u8>;
//!     pub fn apdus_sent(&self) -> u64;
//!     pub fn sfi_support(&self) -> SfiSupport;                  // SFI forms learnt so far
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
//! | operation | APDUs (JPKI AP already selected) | with the SFI forms |
//! |---|---|---|
//! | `read_certificate` | SELECT EF + ⌈N/256⌉ READ BINARY (N = DER length; first read Le=00) | ⌈N/256⌉ READ BINARY |
//! | `token_label` | SELECT EF 0006 + READ BINARY Le=20 | 1 READ BINARY |
//! | `pin_tries_left` | SELECT PIN EF + empty VERIFY | 1 empty VERIFY |
//! | `verify_pin` | SELECT PIN EF + VERIFY | 1 VERIFY |
//! | `sign` | SELECT key EF + COMPUTE DIGITAL SIGNATURE | 1 COMPUTE DIGITAL SIGNATURE |
//! | `change_pin` | SELECT PIN EF + VERIFY old + CHANGE REFERENCE DATA | (same) |
//! | `logout` | SELECT AP | (same) |
//!
//! plus one SELECT AP the first time, and again after a reset or a transport error.
//!
//! # What is known to be selected (decision)
//!
//! - **The current EF is trusted only inside one transaction.** Between two of our
//!   transactions, another PC/SC client may select another EF of the JPKI AP; this does not
//!   clear the security state and cannot be detected, and trusting a stale EF could VERIFY
//!   the wrong PIN or sign with the wrong key. So each operation selects its EF (once), or
//!   names it in the command (SFI forms, below).
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
//! # Short file identifiers (SFI): detected, with a fallback
//!
//! One source ([1], MC, who probed a real card; jpki-card.md §4–6) reports forms that name the
//! EF in the command itself and so save the SELECT EF: READ BINARY `00 B0 (80|SFI) off Le`
//! (offset ≤ 255; the EF becomes the current EF, JICSAP Table 5, so the following chunks are
//! plain READ BINARY), VERIFY `00 20 00 (80|SFI)`, and COMPUTE DIGITAL SIGNATURE
//! `80 2A 00 (80|SFI)`. Every JPKI EF number (0001–001B) fits in 5 bits. Cards that lack them
//! must keep working, and the detection must never spend a PIN try nor cost more than it saves,
//! so each form is learnt per card (per [`JpkiCard`], i.e. per insertion and process) as
//! [`Support::Unknown`] → `Yes`/`No`, only from commands that are harmless if refused:
//!
//! - **READ BINARY**: the first certificate (or label) read tries the SFI form. Data or 6982
//!   (the card found the file and refused it before login) → `Yes`. A parameter/instruction
//!   refusal (6A86, 6A81, 6B00, 6D00, 6E00, 6700, 6981, 6986, 6A88, 6985) → `No`, and the read
//!   is done the classic way (SELECT EF, READ): one extra APDU, once per card and process. 6A82
//!   is ambiguous (another client may have selected another AP): the classic path runs, and
//!   only if its SELECT EF then succeeds without re-selecting the AP is the answer `No`. If a
//!   later plain READ after an SFI read finds no current EF, the EF is selected and the read
//!   repeated, and the form is marked `No`.
//! - **VERIFY**: learnt only from the *empty* VERIFY (tries query: no data, so nothing is
//!   compared and no try can be spent), and only on a card that already accepted SFI reads
//!   (a card that refused them costs nothing more). 63Cx with x ≤ the maximum, or 6983/6984
//!   → `Yes`; a refusal as above → `No` and the classic query. A VERIFY *with* a PIN uses the SFI
//!   form only once the empty one has proven that this reference addresses a PIN counter;
//!   should it still be refused with a parameter error (nothing compared), it falls back to
//!   SELECT + VERIFY.
//! - **COMPUTE DIGITAL SIGNATURE**: tried with the SFI form on a card that accepted SFI reads or
//!   VERIFY (a refused signature command spends nothing: no counter is involved, and a
//!   signature by an unexpected key would fail the module's check of every signature against
//!   the certificate). A refusal → `No` and SELECT key EF + sign.
//!
//! After an SFI VERIFY or signature the current EF is treated as unknown (the specification
//! does not say whether they change it). P1 = 04 (RSASSA-PSS) is used with its own detection:
//! see `jpki/pss.rs`; the other applications of the card: `jpki/text.rs`.

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
    /// What the card showed of the SFI forms (module documentation). Kept across resets: a
    /// reset does not change what the card can do.
    sfi: SfiSupport,
}

/// Whether a card accepts one command form, as learnt from its answers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Not tried yet.
    #[default]
    Unknown,
    /// The card accepted it.
    Yes,
    /// The card refused it: use the classic form.
    No,
}

/// What is known of the SFI forms of READ BINARY, VERIFY and COMPUTE DIGITAL SIGNATURE.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SfiSupport {
    pub read: Support,
    pub verify: Support,
    pub sign: Support,
}

/// The short file identifier of a JPKI EF: P1/P2 = 80 | SFI. Every JPKI EF is in 0001–001E.
fn sfi_p(fid: u16) -> Option<u8> {
    u8::try_from(fid)
        .ok()
        .filter(|f| (1..=0x1E).contains(f))
        .map(|f| 0x80 | f)
}

/// Answers by which a card refuses a command form (parameters or instruction), before acting
/// on it: nothing was read, compared or signed.
fn refuses_form(sw: StatusWord) -> bool {
    matches!(
        sw.0,
        0x6A86 // incorrect P1-P2
            | 0x6A81 // function not supported
            | 0x6A88 // referenced data not found
            | 0x6B00 // wrong parameters
            | 0x6D00 // instruction not supported
            | 0x6E00 // class not supported
            | 0x6700 // wrong length
            | 0x6981 // command incompatible with file structure
            | 0x6985 // conditions of use not satisfied
            | 0x6986 // command not allowed (no current EF)
    )
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
    /// SELECT AP commands sent in this transaction (tells interference from a refused form).
    ap_selects: u32,
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
        self.ap_selects += 1;
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

    /// READ BINARY of the first `le` bytes of EF `fid`, made the current EF: with the SFI form
    /// `00 B0 (80|SFI) 00 Le` unless the card refused it before (no SELECT EF), else with
    /// SELECT EF and `00 B0 00 00 Le`. Returns the answer (status word as is) and whether the
    /// EF was made current by the SFI form alone.
    fn read_start(&mut self, fid: u16, le: u16) -> Result<(Response, bool), CardError> {
        self.select_ap(false)?;
        if self.ef != Some(fid) && self.state.sfi.read != Support::No {
            if let Some(p1) = sfi_p(fid) {
                let response = self.exchange(&Command::new(0x00, 0xB0, p1, 0x00).with_le(le))?;
                match response.sw {
                    StatusWord::OK | StatusWord::END_OF_FILE => {
                        self.state.sfi.read = Support::Yes;
                        self.ef = Some(fid);
                        return Ok((response, true));
                    }
                    StatusWord::SECURITY_STATUS => {
                        // The card found the file and refused it before VERIFY.
                        self.state.sfi.read = Support::Yes;
                        self.ef = None;
                        return Ok((response, true));
                    }
                    StatusWord::FILE_NOT_FOUND => {
                        // Another AP selected by another client, or the form unknown: the
                        // classic path tells. It refuses the form only if the EF is then found
                        // without re-selecting the AP.
                        let selects = self.ap_selects;
                        self.select_ef(fid)?;
                        if self.ap_selects == selects {
                            log::debug!("READ BINARY with SFI answered 6A82 for EF {fid:04X}");
                            self.state.sfi.read = Support::No;
                        }
                        return Ok((self.read_binary(0, le)?, false));
                    }
                    sw => {
                        if !refuses_form(sw) {
                            log::info!("READ BINARY with SFI: unexpected {sw}; not used");
                        }
                        log::debug!("READ BINARY with SFI refused ({sw}): SELECT EF instead");
                        self.state.sfi.read = Support::No;
                    }
                }
            }
        }
        self.select_ef(fid)?;
        Ok((self.read_binary(0, le)?, false))
    }

    /// Reads the DER object at the start of EF `fid`, in the fewest READ BINARY: Le=00 at
    /// offset 0 (SFI form when the card takes it), then what the DER header says is left, in
    /// 256-byte chunks with the exact last Le; never past the DER length.
    fn read_der_file(&mut self, fid: u16) -> Result<Vec<u8>, CardError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut total: Option<usize> = None;
        let mut current_by_sfi = false;
        for _ in 0..MAX_READS {
            let want = match total {
                None => 256,
                Some(t) => (t - buf.len()).min(256),
            };
            if want == 0 {
                return Ok(buf);
            }
            // `want` is 1..=256.
            let response = if buf.is_empty() {
                let (response, by_sfi) = self.read_start(fid, want as u16)?;
                current_by_sfi = by_sfi;
                response
            } else {
                let response = self.read_binary(buf.len(), want as u16)?;
                if current_by_sfi
                    && (refuses_form(response.sw) || response.sw == StatusWord::FILE_NOT_FOUND)
                {
                    // The SFI read did not make the EF current on this card: select it,
                    // read again, and stop using the SFI form.
                    log::debug!(
                        "no current EF after an SFI read ({}): SELECT EF",
                        response.sw
                    );
                    self.state.sfi.read = Support::No;
                    current_by_sfi = false;
                    self.ef = None;
                    self.select_ef(fid)?;
                    self.read_binary(buf.len(), want as u16)?
                } else {
                    response
                }
            };
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

    /// Empty VERIFY (`00 20 00 80`, or `00 20 00 (80|SFI)` without the SELECT): the tries
    /// left, no try spent. The SFI form is tried only on a card that took SFI reads, and is
    /// learnt here (see the module documentation).
    fn tries_left(&mut self, key: KeyKind) -> Result<u8, CardError> {
        let sfi = self.state.sfi;
        let try_sfi = sfi.verify == Support::Yes
            || (sfi.verify == Support::Unknown && sfi.read == Support::Yes);
        if let Some(p2) = sfi_p(key.pin_ef()).filter(|_| try_sfi) {
            self.select_ap(false)?;
            let response = self.exchange(&Command::new(0x00, 0x20, 0x00, p2))?;
            self.ef = None;
            match response.sw {
                StatusWord::DATA_BLOCKED | StatusWord::AUTH_BLOCKED => {
                    self.state.sfi.verify = Support::Yes;
                    return Ok(0);
                }
                // As for the classic form; 90 00 does not prove the reference is a counter.
                StatusWord::OK => return Ok(key.max_tries()),
                // Maybe another client's AP: the classic path tells, nothing learnt.
                StatusWord::FILE_NOT_FOUND => {}
                sw => match sw.tries_left() {
                    Some(t) if t <= key.max_tries() => {
                        self.state.sfi.verify = Support::Yes;
                        return Ok(t);
                    }
                    _ => {
                        log::debug!("empty VERIFY with SFI refused ({sw}): SELECT EF instead");
                        self.state.sfi.verify = Support::No;
                    }
                },
            }
        }
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

    /// VERIFY `00 20 00 80 Lc pin` after SELECT of the PIN EF, or, when `allow_sfi`,
    /// `00 20 00 (80|SFI) Lc pin` alone once an empty VERIFY has shown that this card resolves
    /// that reference. Without `allow_sfi` the PIN EF is the current EF afterwards (CHANGE
    /// REFERENCE DATA `P2 = 80` needs it).
    fn verify(&mut self, pin: &Pin, allow_sfi: bool) -> Result<(), CardError> {
        let key = pin.key();
        let mut answer = None;
        let use_sfi = allow_sfi && self.state.sfi.verify == Support::Yes;
        if let Some(p2) = sfi_p(key.pin_ef()).filter(|_| use_sfi) {
            self.select_ap(false)?;
            let command = Command::new(0x00, 0x20, 0x00, p2)
                .with_data(pin.as_bytes())
                .secret();
            let response = self.exchange(&command)?;
            self.ef = None;
            if refuses_form(response.sw) {
                // A parameter error: nothing was compared, no try spent.
                log::debug!(
                    "VERIFY with SFI refused ({}): SELECT EF instead",
                    response.sw
                );
                self.state.sfi.verify = Support::No;
            } else if response.sw != StatusWord::FILE_NOT_FOUND {
                answer = Some(response.sw);
            }
        }
        let sw = match answer {
            Some(sw) => sw,
            None => {
                self.select_ef(key.pin_ef())?;
                let command = Command::new(0x00, 0x20, 0x00, 0x80)
                    .with_data(pin.as_bytes())
                    .secret();
                self.exchange(&command)?.sw
            }
        };
        self.state.verified &= !key.bit();
        match sw {
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

    /// COMPUTE DIGITAL SIGNATURE `80 2A P1 P2 Lc data 00` with `P2` = 80 (the current EF) or
    /// 80|SFI.
    fn compute_signature(
        &mut self,
        scheme: SignatureScheme,
        p2: u8,
        data: &[u8],
    ) -> Result<Response, CardError> {
        let command = Command::new(0x80, 0x2A, scheme.p1(), p2)
            .with_data(data)
            .with_le(SIGNATURE_LEN as u16);
        self.exchange(&command)
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

    /// What the card has shown so far of the SFI forms (module documentation).
    pub fn sfi_support(&self) -> SfiSupport {
        self.state.sfi
    }

    /// Tests pinned to one command form set what is known beforehand.
    #[cfg(test)]
    pub(crate) fn assume_sfi(&mut self, sfi: SfiSupport) {
        self.state.sfi = sfi;
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
                    ap_selects: 0,
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
            let (response, _) = s.read_start(EF_TOKEN_INFO, TOKEN_LABEL_LEN)?;
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

    /// Label and serial number of EF 0006. The label is the first 32 bytes ([C]); the serial
    /// is bytes 80..96 when the EF is the 160-byte `CK_TOKEN_INFO` one source describes ([1]):
    /// `None` when the EF is shorter or that field is blank or not printable ASCII. Used to
    /// name a token whose certificates cannot be read before a PIN (the smartphone's).
    pub fn token_label_and_serial(&mut self) -> Result<(String, Option<String>), CardError> {
        const SERIAL: std::ops::Range<usize> = 80..96;
        self.with_session(|s| {
            let (response, _) = s.read_start(EF_TOKEN_INFO, SERIAL.end as u16)?;
            match response.sw {
                StatusWord::OK | StatusWord::END_OF_FILE => {}
                StatusWord::SECURITY_STATUS => return Err(CardError::SecurityStatusNotSatisfied),
                sw => return Err(CardError::UnexpectedStatus(sw.0)),
            }
            let trim = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .trim_matches(|c: char| c == ' ' || c == '\0')
                    .to_owned()
            };
            let data = &response.data;
            let label = trim(&data[..data.len().min(TOKEN_LABEL_LEN as usize)]);
            let serial = data
                .get(SERIAL)
                .map(trim)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()));
            Ok((label, serial))
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
        self.with_session(|s| s.verify(pin, true))
    }

    /// Signs a DER DigestInfo (1–245 bytes) with `key`; the card adds PKCS#1 v1.5 type-1
    /// padding. `SecurityStatusNotSatisfied` when the key's PIN is not verified.
    pub fn sign(&mut self, key: KeyKind, digest_info: &[u8]) -> Result<Vec<u8>, CardError> {
        if digest_info.is_empty() || digest_info.len() > MAX_DIGEST_INFO_LEN {
            return Err(CardError::DataLength);
        }
        let scheme = SignatureScheme::Pkcs1V15DigestInfo;
        self.with_session(|s| {
            let sfi = s.state.sfi;
            let try_sfi =
                sfi.sign != Support::No && (sfi.read == Support::Yes || sfi.verify == Support::Yes);
            let mut answer = None;
            if let Some(p2) = sfi_p(key.key_ef()).filter(|_| try_sfi) {
                s.select_ap(false)?;
                let response = s.compute_signature(scheme, p2, digest_info)?;
                s.ef = None;
                if refuses_form(response.sw) {
                    log::debug!(
                        "signing with SFI refused ({}): SELECT EF instead",
                        response.sw
                    );
                    s.state.sfi.sign = Support::No;
                } else if response.sw != StatusWord::FILE_NOT_FOUND {
                    if matches!(response.sw, StatusWord::OK | StatusWord::SECURITY_STATUS) {
                        s.state.sfi.sign = Support::Yes;
                    }
                    answer = Some(response);
                }
            }
            let response = match answer {
                Some(r) => r,
                None => {
                    s.select_ef(key.key_ef())?;
                    s.compute_signature(scheme, 0x80, digest_info)?
                }
            };
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
            // The classic VERIFY: CHANGE REFERENCE DATA with P2 = 80 acts on the current EF.
            s.verify(old, false)?;
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
