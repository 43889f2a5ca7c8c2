//! One transaction with the card: the channel, what is selected within it, and the JPKI
//! commands (SELECT, READ BINARY, VERIFY, COMPUTE DIGITAL SIGNATURE) with their SFI forms and
//! their recovery from another client's selection (docs/card-layer.md).

use super::files::{
    CertificateFile, KeyKind, JPKI_AID, MAX_READS, P1_PKCS1_DIGEST_INFO, SIGNATURE_LEN,
};
use super::sfi::{refuses_form, sfi_p, Support};
use super::tlv::der_total_length;
use super::CardState;
use crate::card::apdu::{exchange, Command, Response, StatusWord};
use crate::card::error::CardError;
use crate::card::pin::Pin;
use crate::transport::Channel;

/// One transaction: the channel, and what is selected within it.
pub(super) struct Session<'a> {
    pub(super) channel: Box<dyn Channel + 'a>,
    pub(super) state: &'a mut CardState,
    /// The AP was selected in this transaction (so a 6A82 is not interference).
    pub(super) ap_selected_here: bool,
    /// The current EF, known only within this transaction.
    pub(super) ef: Option<u16>,
    /// SELECT AP commands sent in this transaction (tells interference from a refused form).
    pub(super) ap_selects: u32,
}

impl Session<'_> {
    pub(super) fn exchange(&mut self, command: &Command) -> Result<Response, CardError> {
        exchange(self.channel.as_mut(), command)
    }

    /// SELECT the JPKI AP by DF name (`00 A4 04 0C 0A AID`), unless known selected and not
    /// `force`d. Selecting clears the card's security state.
    pub(super) fn select_ap(&mut self, force: bool) -> Result<(), CardError> {
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
    pub(super) fn select_ef(&mut self, fid: u16) -> Result<(), CardError> {
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
    pub(super) fn read_binary(&mut self, offset: usize, le: u16) -> Result<Response, CardError> {
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
    pub(super) fn read_start(&mut self, fid: u16, le: u16) -> Result<(Response, bool), CardError> {
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

    /// Reads the DER object at the start of EF `fid`: one extended READ BINARY where the card
    /// and reader take it (`jpki/extended.rs`); else Le=00 at offset 0 (SFI form when the card
    /// takes it), then what the DER header says is left, in 256-byte chunks with the exact last
    /// Le; never past the DER length. `prefix`: bytes from offset 0 already read in an earlier
    /// transaction (not read again). `limit`: stop once that many bytes are in (the first
    /// chunk, for the card's identity; short APDUs only, the cheapest answer).
    pub(super) fn read_der(
        &mut self,
        fid: u16,
        prefix: Vec<u8>,
        limit: Option<usize>,
    ) -> Result<Vec<u8>, CardError> {
        let mut buf = prefix;
        let mut total: Option<usize> = der_total_length(&buf)?;
        if let Some(t) = total {
            if buf.len() >= t {
                buf.truncate(t);
                return Ok(buf);
            }
        }
        if limit.is_none() && self.extended_allowed() {
            match self.read_der_extended(fid, &buf)? {
                super::extended::Outcome::Whole(bytes) => return Ok(bytes),
                super::extended::Outcome::Partial(bytes) => {
                    buf = bytes;
                    total = der_total_length(&buf)?;
                }
                super::extended::Outcome::Refused => {}
            }
        }
        if !buf.is_empty() {
            // Continue where the earlier read stopped: the EF must be current.
            self.select_ef(fid)?;
        }
        let mut current_by_sfi = false;
        for _ in 0..MAX_READS {
            let mut want = match total {
                None => 256,
                Some(t) => (t - buf.len()).min(256),
            };
            if let Some(limit) = limit {
                want = want.min(limit.saturating_sub(buf.len()));
            }
            if want == 0 {
                if let Some(t) = total {
                    buf.truncate(t);
                }
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

    /// [`Session::read_der`] of a certificate file, recovering once from another client's
    /// selection of another application.
    pub(super) fn read_part(
        &mut self,
        file: CertificateFile,
        prefix: Vec<u8>,
        limit: Option<usize>,
    ) -> Result<Vec<u8>, CardError> {
        let fid = file.fid();
        let result = self.read_der(fid, prefix.clone(), limit);
        let is_auth = file == CertificateFile::Authentication;
        let protected_by = file
            .protected_by()
            .or((is_auth && self.state.auth_cert_needs_pin).then_some(KeyKind::Authentication));
        let refused = matches!(result, Err(CardError::SecurityStatusNotSatisfied));
        if is_auth && refused && self.ap_selected_here {
            self.state.auth_cert_needs_pin = true;
        }
        // Another client may have selected another AP holding an EF of the same number
        // (0001, 0002): a public file then reads as 6982 or as a non-certificate; a protected
        // certificate answers 6982 although we verified its PIN.
        let foreign = match (&result, protected_by) {
            (Err(CardError::SecurityStatusNotSatisfied), None) => true,
            (Err(CardError::SecurityStatusNotSatisfied), Some(key)) => {
                self.state.verified & key.bit() != 0
            }
            (Err(CardError::MalformedResponse(_)), _) => true,
            _ => false,
        };
        if foreign && !self.ap_selected_here {
            log::debug!("EF {fid:04X} unreadable: JPKI AP deselected by another client?");
            self.select_ap(true)?;
            let again = self.read_der(fid, prefix, limit);
            if is_auth && matches!(again, Err(CardError::SecurityStatusNotSatisfied)) {
                self.state.auth_cert_needs_pin = true;
            }
            return again;
        }
        result
    }

    /// Empty VERIFY (`00 20 00 80`, or `00 20 00 (80|SFI)` without the SELECT): the tries
    /// left, no try spent. The SFI form is tried only on a card that took SFI reads, and is
    /// learnt here (see the module documentation).
    pub(super) fn tries_left(&mut self, key: KeyKind) -> Result<u8, CardError> {
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
    pub(super) fn verify(&mut self, pin: &Pin, allow_sfi: bool) -> Result<(), CardError> {
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
                self.state.released &= !key.bit();
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

    /// COMPUTE DIGITAL SIGNATURE `80 2A 00 P2 Lc DigestInfo 00` (PKCS#1 v1.5) with `P2` = 80
    /// (the current EF) or 80|SFI.
    pub(super) fn compute_signature(&mut self, p2: u8, data: &[u8]) -> Result<Response, CardError> {
        let command = Command::new(0x80, 0x2A, P1_PKCS1_DIGEST_INFO, p2)
            .with_data(data)
            .with_le(SIGNATURE_LEN as u16);
        self.exchange(&command)
    }
}
