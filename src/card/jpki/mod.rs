//! Typed JPKI operations over one card connection ([`JpkiCard`]).
//!
//! Split by job: [`files`] (the application's AID, EFs, keys and limits), [`session`] (one
//! transaction: SELECT, READ BINARY, VERIFY, COMPUTE DIGITAL SIGNATURE), [`sfi`] (the
//! short-file-identifier forms), [`tlv`] (the one TLV reader: DER and BER), [`pss`] (the card's own
//! RSASSA-PSS), [`text`] (the other applications of the card). What is sent for each operation,
//! what is trusted to be selected between transactions and how the SFI forms are detected:
//! docs/card-layer.md.

mod extended;
mod files;
mod pss;
mod session;
mod sfi;
mod text;
mod tlv;

pub use files::{CertificateFile, KeyKind, JPKI_AID};
pub use pss::PSS_HASH_LEN;
pub use sfi::{SfiSupport, Support};
pub use text::{Application, CardFaceInfo, KenhojoPin, Sex};

use super::apdu::{Command, StatusWord};
use super::error::CardError;
use super::pin::Pin;
use crate::transport::Transport;
use files::{EF_TOKEN_INFO, MAX_DIGEST_INFO_LEN, SIGNATURE_LEN, TOKEN_LABEL_LEN, TOKEN_SERIAL};
use session::Session;
use sfi::{refuses_form, sfi_p};

/// What we believe of the card between transactions (docs/card-layer.md).
#[derive(Debug, Default)]
struct CardState {
    /// The JPKI AP is the current DF.
    ap_selected: bool,
    /// Keys (bits of [`KeyKind::bit`]) verified since the AP was last selected: what the card
    /// holds, and what [`JpkiCard`]'s drop clears.
    verified: u8,
    /// Keys among `verified` that the user of this connection has released
    /// ([`JpkiCard::release`]): the card still holds their VERIFY, but they count as logged out.
    released: u8,
    /// Answer of `is_jpki`, once known (a card does not change while connected).
    is_jpki: Option<bool>,
    /// Whether the card signs with RSASSA-PSS (P1 = 04), once probed or learnt (`pss.rs`).
    pss: Option<bool>,
    /// What the card showed of the SFI forms (module documentation). Kept across resets: a
    /// reset does not change what the card can do.
    sfi: SfiSupport,
    /// Whether the card and reader pass extended-length READ BINARY (`extended.rs`).
    extended: Support,
    /// The authentication certificate answered 6982 right after our own SELECT of the
    /// application: on this token (the smartphone's, docs/phone-token.md) it needs the
    /// authentication PIN, like the signature certificate needs the password. Learnt once, so
    /// that a later refusal is not mistaken for another client's selection (whose recovery,
    /// a re-SELECT, would forget every VERIFY). Kept across resets.
    auth_cert_needs_pin: bool,
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
            | CardError::Cancelled
            | CardError::Transport(_) => self.ap_selected = false,
            _ => {}
        }
    }
}

/// What [`JpkiCard::read_certificate_prefix_then`] reads after the first chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterChunk {
    /// Nothing more.
    Stop,
    /// The rest of the certificate.
    Rest,
    /// The rest only if one extended-length READ BINARY gives it, and only while it is not
    /// known whether this card and reader take that form: the probe (`extended.rs`) is then
    /// spent now, before any PIN is verified, where a later read (a certificate needed only
    /// after a login) could no longer try it. Nothing more on a refusal, or once the form is
    /// known.
    ProbeExtended,
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

impl JpkiCard {
    /// Wraps a connection. No card traffic. Extended-length reads are off until the caller
    /// allows the probe (`assume_extended(Support::Unknown)`, `extended.rs`).
    pub fn new(transport: Box<dyn Transport>) -> Self {
        JpkiCard {
            transport,
            state: CardState {
                extended: Support::No,
                ..CardState::default()
            },
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

    /// Whether `key`'s PIN is verified for the user of this connection: it was verified, as far
    /// as this connection knows the card still holds that state, and it was not released. This
    /// is the one login state of the module: the pkcs11 layer's tokens ask it. Re-selecting
    /// the application (logout, recovery from an answer that suggests another client changed
    /// the selection), card resets and a failed VERIFY clear it.
    pub fn is_verified(&self, key: KeyKind) -> bool {
        (self.state.verified & !self.state.released) & key.bit() != 0
    }

    /// Stops counting `key`'s PIN as verified, without card traffic. The card cannot forget
    /// one key's VERIFY alone (re-selecting the application forgets both), so a user that logs
    /// one key out while the other stays in use releases it; the card keeps that VERIFY until
    /// the next [`JpkiCard::logout`] (at the latest when this connection is dropped). Also
    /// for a VERIFY the card answered 69 82 to (it no longer holds it).
    pub fn release(&mut self, key: KeyKind) {
        self.state.released |= key.bit();
    }

    /// Whether this token answered 6982 to a read of its authentication certificate right
    /// after our own SELECT of the application (the smartphone's token): a read of it before
    /// the authentication PIN is verified is refused again, so it is not tried.
    pub fn auth_certificate_needs_pin(&self) -> bool {
        self.state.auth_cert_needs_pin && !self.is_verified(KeyKind::Authentication)
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
    /// (`JPKIAPICCTOKEN2` on a My Number Card, `JPKIAPGPSETOKEN` on the Android phone's token).
    pub fn token_label(&mut self) -> Result<String, CardError> {
        let data = self.read_token_info(TOKEN_LABEL_LEN)?;
        Ok(token_info_text(
            &data[..data.len().min(TOKEN_LABEL_LEN as usize)],
        ))
    }

    /// Label and serial number of EF 0006, in one READ BINARY. The serial is bytes 80..96 of
    /// the 160-byte serialised `CK_TOKEN_INFO` the EF holds ([1], docs/card-protocol.md):
    /// `None` when the EF is shorter or that field is blank or not printable ASCII. Names a
    /// token whose certificates cannot be read before a PIN (the smartphone's).
    pub fn token_label_and_serial(&mut self) -> Result<(String, Option<String>), CardError> {
        let data = self.read_token_info(TOKEN_SERIAL.end as u16)?;
        let label = token_info_text(&data[..data.len().min(TOKEN_LABEL_LEN as usize)]);
        let serial = data
            .get(TOKEN_SERIAL)
            .map(token_info_text)
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()));
        Ok((label, serial))
    }

    /// The first `len` bytes of EF 0006 (fewer if the EF is shorter).
    fn read_token_info(&mut self, len: u16) -> Result<Vec<u8>, CardError> {
        self.with_session(|s| {
            let (response, _) = s.read_start(EF_TOKEN_INFO, len)?;
            match response.sw {
                StatusWord::OK | StatusWord::END_OF_FILE => Ok(response.data),
                StatusWord::SECURITY_STATUS => Err(CardError::SecurityStatusNotSatisfied),
                sw => Err(CardError::UnexpectedStatus(sw.0)),
            }
        })
    }

    /// Reads a certificate (raw DER bytes, exactly the DER object's length).
    /// [`CertificateFile::Signature`] answers `SecurityStatusNotSatisfied` before the signature
    /// password is verified.
    pub fn read_certificate(&mut self, file: CertificateFile) -> Result<Vec<u8>, CardError> {
        self.read_certificate_part(file, Vec::new(), None)
    }

    /// The first bytes of a certificate, at most `len` (≤ 256: one short READ BINARY, plus the
    /// SELECT EF without the SFI forms), never past its DER length. The first 256 bytes of a
    /// JPKI certificate hold its issuer and serial number, which name it uniquely: enough for
    /// the token's identity and to check a cached copy.
    pub fn read_certificate_prefix(
        &mut self,
        file: CertificateFile,
        len: usize,
    ) -> Result<Vec<u8>, CardError> {
        self.read_certificate_part(file, Vec::new(), Some(len.clamp(1, 256)))
    }

    /// The rest of a certificate whose first bytes `prefix` were read earlier (by
    /// [`JpkiCard::read_certificate_prefix`]): the whole certificate, without reading the
    /// prefix again on short APDUs.
    pub fn read_certificate_rest(
        &mut self,
        file: CertificateFile,
        prefix: Vec<u8>,
    ) -> Result<Vec<u8>, CardError> {
        self.read_certificate_part(file, prefix, None)
    }

    /// The first chunk of a certificate (as [`JpkiCard::read_certificate_prefix`]) and, as
    /// `then` says on seeing it, the whole certificate, in the same transaction: the EF is
    /// still current, so the rest costs no SELECT and nothing is read twice.
    pub fn read_certificate_prefix_then(
        &mut self,
        file: CertificateFile,
        len: usize,
        then: impl FnOnce(&[u8]) -> AfterChunk,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), CardError> {
        self.with_session(|s| {
            let chunk = s.read_part(file, Vec::new(), Some(len.clamp(1, 256)))?;
            match then(&chunk) {
                AfterChunk::Stop => Ok((chunk, None)),
                AfterChunk::Rest => {
                    let whole = s.read_part(file, chunk.clone(), None)?;
                    Ok((chunk, Some(whole)))
                }
                AfterChunk::ProbeExtended => {
                    if s.state.extended != Support::Unknown || !s.extended_allowed() {
                        return Ok((chunk, None));
                    }
                    match s.read_der_extended(file.fid(), &chunk)? {
                        extended::Outcome::Whole(whole) => Ok((chunk, Some(whole))),
                        // A capped answer, a refusal: the chunk is all that was asked for.
                        _ => Ok((chunk, None)),
                    }
                }
            }
        })
    }

    fn read_certificate_part(
        &mut self,
        file: CertificateFile,
        prefix: Vec<u8>,
        limit: Option<usize>,
    ) -> Result<Vec<u8>, CardError> {
        self.with_session(|s| s.read_part(file, prefix, limit))
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
        self.with_session(|s| {
            let sfi = s.state.sfi;
            let try_sfi =
                sfi.sign != Support::No && (sfi.read == Support::Yes || sfi.verify == Support::Yes);
            let mut answer = None;
            if let Some(p2) = sfi_p(key.key_ef()).filter(|_| try_sfi) {
                s.select_ap(false)?;
                let response = s.compute_signature(p2, digest_info)?;
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
                    s.compute_signature(0x80, digest_info)?
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
    /// does (docs/card-protocol.md). One APDU.
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

/// A text field of EF 0006, trimmed of its space or NUL padding.
fn token_info_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_matches(|c: char| c == ' ' || c == '\0')
        .to_owned()
}
