//! Extended-length READ BINARY: a whole certificate in one answer, detected with a fallback.
//!
//! # The fact (single source, so detected)
//!
//! Every open tool reads the JPKI certificates with short APDUs, 256 bytes per READ BINARY,
//! so a certificate of 1.2–1.5 KB costs 5–6 commands. One source that probed a real card reports
//! that the chip takes extended-length Le (`00 B0 P1 P2 00 Le_hi Le_lo`: up to 65 535 bytes in
//! one answer) for some commands; many readers, though, pass only short APDUs, and a reader
//! may refuse an extended command itself (the card never sees it) or mishandle it.
//!
//! # Decision
//!
//! - Off in the card layer until its user allows the probe (`assume_extended(Unknown)`): the
//!   core does, unless configured off, and passes on what an earlier connection learnt.
//! - The first full certificate read of a connection tries one extended READ BINARY at offset
//!   0 with Le = 8192 (the largest certificate we accept; the card answers what the file holds:
//!   90 00, or 62 82 "end of file reached before Le"). With the SFI form when the card took it
//!   (no SELECT EF), else after the SELECT EF.
//! - Data that starts a DER object → [`Support::Yes`]: the rest of the connection reads every
//!   certificate in one command. A shorter answer than the DER length (a card or reader that caps
//!   the answer) is kept and the rest is read with short commands.
//! - **Any other answer** — a status word (67 00, 6A 86, 6D 00, 6E 00, 6C xx, 61 xx, …), an
//!   empty or malformed answer, a transport failure (the reader refused it: the card saw
//!   nothing) — → [`Support::No`]: the same read is done with short APDUs at once, and extended
//!   Le is never tried again on this connection. 6982 (the file needs a PIN) and 6A82 (another
//!   program's application may be selected) say nothing about the form and are left to the
//!   short path.
//! - **Nothing can be lost.** The probe is sent only while no PIN is verified on this
//!   connection (a READ spends no try, and if the failure makes the card layer re-select the
//!   application, no login is lost with it), only for a full certificate read (never for the
//!   256-byte identity chunk, which fits a short answer), and a card removed or reset under it
//!   is reported like any removal, with the form marked refused, so the next connection to
//!   the same reader does not try it again (the core remembers refusals per reader, and the
//!   certificate cache remembers them across processes).
//! - Cost on a card or reader that refuses: one APDU, once per card and reader (per process
//!   when the cache is off). Gain where it works: 4–5 APDUs per certificate.

use super::files::MAX_CERTIFICATE_LEN;
use super::session::Session;
use super::sfi::{sfi_p, SfiSupport, Support};
use super::tlv::der_total_length;
use super::JpkiCard;
use crate::card::apdu::{exchange, Command, StatusWord};
use crate::card::error::CardError;

/// What one extended READ BINARY gave.
pub(super) enum Outcome {
    /// The whole DER object (trimmed to its length).
    Whole(Vec<u8>),
    /// The first bytes only (the answer was capped); the EF is current.
    Partial(Vec<u8>),
    /// Not taken: read with short APDUs.
    Refused,
}

/// Largest answer asked for: the largest certificate accepted by the card layer.
const EXTENDED_LE: u16 = MAX_CERTIFICATE_LEN as u16;

impl Session<'_> {
    /// Whether a full read may use (or try) the extended form now.
    pub(super) fn extended_allowed(&self) -> bool {
        match self.state.extended {
            Support::Yes => true,
            Support::No => false,
            Support::Unknown => self.state.verified == 0,
        }
    }

    /// One extended READ BINARY of EF `fid` from offset 0. `prefix`, if not empty, must be
    /// what the answer starts with (bytes read before); otherwise the answer is not used.
    pub(super) fn read_der_extended(
        &mut self,
        fid: u16,
        prefix: &[u8],
    ) -> Result<Outcome, CardError> {
        self.select_ap(false)?;
        let p1 = match sfi_p(fid).filter(|_| self.state.sfi.read == Support::Yes) {
            Some(p1) if self.ef != Some(fid) => p1,
            _ => {
                self.select_ef(fid)?;
                0x00
            }
        };
        let command = Command::new(0x00, 0xB0, p1, 0x00).with_extended_le(EXTENDED_LE);
        let probing = self.state.extended == Support::Unknown;
        let answer = exchange(self.channel.as_mut(), &command);
        let response = match answer {
            Ok(r) => r,
            Err(e) => {
                // Refused by the reader (or lost on the way): never again on this connection.
                log::info!("extended-length READ BINARY failed ({e}); short APDUs from now on");
                self.state.extended = Support::No;
                self.ef = None;
                return match e {
                    CardError::Transport(_) | CardError::MalformedResponse(_) => {
                        Ok(Outcome::Refused)
                    }
                    other => Err(other),
                };
            }
        };
        match response.sw {
            StatusWord::OK | StatusWord::END_OF_FILE if !response.data.is_empty() => {
                let total = der_total_length(&response.data).unwrap_or_default();
                if !response.data.starts_with(prefix) || total.is_none() {
                    log::info!("extended-length READ BINARY gave unusable data; not used");
                    self.state.extended = Support::No;
                    self.ef = None;
                    return Ok(Outcome::Refused);
                }
                if probing {
                    log::debug!("extended-length READ BINARY works on this card and reader");
                }
                self.state.extended = Support::Yes;
                self.ef = Some(fid);
                let mut data = response.data;
                match total {
                    Some(t) if data.len() >= t => {
                        data.truncate(t);
                        Ok(Outcome::Whole(data))
                    }
                    _ => Ok(Outcome::Partial(data)),
                }
            }
            StatusWord::SECURITY_STATUS => Err(CardError::SecurityStatusNotSatisfied),
            StatusWord::FILE_NOT_FOUND => {
                self.ef = None;
                Ok(Outcome::Refused)
            }
            sw => {
                log::debug!("extended-length READ BINARY refused ({sw}); short APDUs");
                self.state.extended = Support::No;
                if p1 != 0x00 {
                    // Whether a refused SFI command left the EF current is not known. A
                    // refused plain READ BINARY (a length or parameter error) changed nothing.
                    self.ef = None;
                }
                Ok(Outcome::Refused)
            }
        }
    }
}

impl JpkiCard {
    /// What is known of extended-length READ BINARY on this card and reader.
    pub fn extended_support(&self) -> Support {
        self.state.extended
    }

    /// Sets what is known beforehand of extended-length READ BINARY (learnt by an earlier
    /// connection to this reader, or switched off by configuration).
    pub fn assume_extended(&mut self, support: Support) {
        self.state.extended = support;
    }

    /// Sets what an earlier connection to the same card learnt of the SFI forms (the core's
    /// certificate cache remembers it per card). A wrong belief costs one refused command and
    /// is corrected, as on first use.
    pub fn assume_sfi_support(&mut self, sfi: SfiSupport) {
        self.state.sfi = sfi;
    }

    /// Sets whether the card signs RSASSA-PSS, as learnt by an earlier connection to the same
    /// card (`pss.rs`): the probe is then not sent. A card that refuses a PSS signature is
    /// still learnt from at first use.
    pub fn assume_pss_support(&mut self, pss: bool) {
        self.state.pss = Some(pss);
    }
}
