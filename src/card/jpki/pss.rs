//! RSASSA-PSS on the card: COMPUTE DIGITAL SIGNATURE with P1 = 04, and its detection.
//!
//! # The fact (docs/card-protocol.md, single source [1])
//!
//! `80 2A 04 80 20 <SHA-256 hash> 00` signs a caller-supplied 32-byte SHA-256 hash with
//! RSASSA-PSS (MGF1-SHA-256, salt length 32, random salt); a card that does not know a P1 value
//! answers 6A86 (wrong P1-P2). TLS 1.3 needs exactly this (`rsa_pss_rsae_sha256`).
//!
//! # Detection without spending a PIN try, and without ever signing (decision)
//!
//! The probe is SELECT of the authentication key EF (0017) and then
//!
//! ```text
//! 80 2A 04 80 21 <33 zero bytes> 00
//! ```
//!
//! i.e. the real command shape (key EF current, P2 = 80), but with **33** bytes of data: no
//! SHA-256 hash is 33 bytes long, so a card that knows P1 = 04 can only refuse it (6700/6985,
//! docs/card-protocol.md "bad input length"), whatever its security state. This matters because the
//! security state is the card's, shared with every other PC/SC client: another process may have
//! verified the authentication PIN, and a 32-byte dummy hash would then be signed. Answers:
//!
//! | answer | meaning | decision |
//! |---|---|---|
//! | 6A86 (also 6B00, 6D00, 6E00) | P1 = 04 unknown | not supported |
//! | 6982 (not verified), 6700 / 6985 / 6A80 (input refused) | P1 = 04 accepted, refused later | supported |
//! | anything else, 90 00 included | not what a JPKI card does | not supported (never advertise what is unclear) |
//!
//! This relies on the card checking P1 before the security status and the input length, the
//! usual ISO 7816-4 order (parameters, then access conditions, then data), and the one the
//! virtual card implements (P1 → key → security status → length → Le); the real card's order is
//! not documented [U]. A card that checked the security status first would answer 6982 to both
//! P1 = 04 and unknown P1 values and look PSS-capable: then the first PSS signature answers
//! 6A86, [`JpkiCard::sign_pss_sha256`] records the card as not supporting PSS and returns
//! [`CardError::NotSupported`] (learning on first use), and the core stops advertising it.
//!
//! Cost: 2 APDUs (plus the SELECT of the AP if not yet selected), once per connection: the
//! answer is cached in the card state for the connection's life (a card does not change while
//! inserted; a reset does not change what it can do). Transport errors are not cached.
//!
//! # With the SFI form (traffic economy, issue 6)
//!
//! On a card that took the SFI forms of READ BINARY or VERIFY (the parent module's "Short file
//! identifiers"), the probe names the key in P2 (`80 2A 04 97 21 <33 zero bytes> 00`) and needs
//! no SELECT: 1 APDU. The answers mean the same, with one exception: if the SFI form of signing
//! is not yet proven, 6A86 (or another refusal of the form) could mean "P2 = 97 unknown" as well
//! as "P1 = 04 unknown", so the classic probe (SELECT + P2 = 80) follows in the same transaction
//! and decides; if it says "PSS", the SFI form is the one refused and is not used again. 6982
//! to the SFI probe proves both (the card found the key, then checked the security status).
//! PSS signatures use P2 = 80|SFI once the SFI form of signing is proven, else SELECT + P2 = 80.

use super::{
    refuses_form, sfi_p, CardError, Command, JpkiCard, KeyKind, Session, StatusWord, Support,
    SIGNATURE_LEN,
};

/// Length of the SHA-256 hash signed with P1 = 04.
pub const PSS_HASH_LEN: usize = 32;

/// P1 of COMPUTE DIGITAL SIGNATURE for RSASSA-PSS over a supplied SHA-256 hash ([1]).
const P1_PSS_SHA256: u8 = 0x04;
/// 6A86: incorrect P1-P2 — the card does not know P1 = 04.
const SW_WRONG_P1P2: StatusWord = StatusWord(0x6A86);
/// 6985: conditions of use not satisfied (some cards answer this to a bad input length).
const SW_CONDITIONS: StatusWord = StatusWord(0x6985);
/// 6A80: incorrect data.
const SW_WRONG_DATA: StatusWord = StatusWord(0x6A80);

/// What the probe's answer means (see the module table).
pub(crate) fn probe_answer_means_pss(sw: StatusWord) -> bool {
    matches!(
        sw,
        StatusWord::SECURITY_STATUS | StatusWord::WRONG_LENGTH | SW_CONDITIONS | SW_WRONG_DATA
    )
}

/// Sends the probe (33 bytes with P1 = 04) with `p2` (80: the current EF; 80|SFI: the key).
fn probe(s: &mut Session<'_>, p2: u8) -> Result<StatusWord, CardError> {
    // 33 bytes: one more than any SHA-256 hash, so nothing can be signed.
    let command = Command::new(0x80, 0x2A, P1_PSS_SHA256, p2)
        .with_data(&[0u8; PSS_HASH_LEN + 1])
        .with_le(SIGNATURE_LEN as u16);
    Ok(s.exchange(&command)?.sw)
}

/// The probe's verdict, with a note of what was unexpected.
fn judge(sw: StatusWord) -> bool {
    let supported = probe_answer_means_pss(sw);
    if sw.is_ok() {
        log::warn!("PSS probe: the card accepted a 33-byte hash; PSS not used");
    } else if !supported && sw != SW_WRONG_P1P2 {
        log::info!("PSS probe: unexpected answer {sw}; PSS not used");
    }
    supported
}

impl JpkiCard {
    /// What is known of the card's PSS support without asking it (`None`: not probed yet).
    pub fn known_pss_support(&self) -> Option<bool> {
        self.state.pss
    }

    /// Whether the card signs with RSASSA-PSS (P1 = 04). Probes the card the first time
    /// (2 APDUs, 1 with the SFI form; no PIN try, never a signature; see the module
    /// documentation), then answers from memory.
    pub fn pss_support(&mut self) -> Result<bool, CardError> {
        if let Some(known) = self.state.pss {
            return Ok(known);
        }
        let answer = self.with_session(|s| {
            let sfi = s.state.sfi;
            let key = KeyKind::Authentication.key_ef();
            let try_sfi =
                sfi.sign != Support::No && (sfi.read == Support::Yes || sfi.verify == Support::Yes);
            if let Some(p2) = sfi_p(key).filter(|_| try_sfi) {
                s.select_ap(false)?;
                let sw = probe(s, p2)?;
                s.ef = None;
                if sw == StatusWord::SECURITY_STATUS {
                    // The card resolved the key, then checked the security status.
                    s.state.sfi.sign = Support::Yes;
                }
                if sfi.sign == Support::Yes || probe_answer_means_pss(sw) {
                    return Ok(judge(sw));
                }
                if sw != StatusWord::FILE_NOT_FOUND && !refuses_form(sw) {
                    return Ok(judge(sw));
                }
                // 6A86 & co.: P2 = 97 or P1 = 04 unknown? The classic probe tells.
                s.select_ef(key)?;
                let classic = probe(s, 0x80)?;
                if probe_answer_means_pss(classic) && refuses_form(sw) {
                    s.state.sfi.sign = Support::No;
                }
                return Ok(judge(classic));
            }
            s.select_ef(key)?;
            let sw = probe(s, 0x80)?;
            Ok(judge(sw))
        })?;
        log::debug!("card PSS support: {answer}");
        self.state.pss = Some(answer);
        Ok(answer)
    }

    /// Signs a SHA-256 `hash` with RSASSA-PSS on the card (P1 = 04): SELECT key EF + COMPUTE
    /// DIGITAL SIGNATURE, or the signature command alone with P2 = 80|SFI once that form is
    /// proven. `NotSupported` (and the card is remembered as not supporting PSS)
    /// when the card answers 6A86; `SecurityStatusNotSatisfied` when the key's PIN is not
    /// verified. The caller verifies the signature.
    pub fn sign_pss_sha256(
        &mut self,
        key: KeyKind,
        hash: &[u8; PSS_HASH_LEN],
    ) -> Result<Vec<u8>, CardError> {
        if self.state.pss == Some(false) {
            return Err(CardError::NotSupported);
        }
        let result = self.with_session(|s| {
            let p2 = match sfi_p(key.key_ef()).filter(|_| s.state.sfi.sign == Support::Yes) {
                Some(p2) => {
                    s.select_ap(false)?;
                    s.ef = None;
                    p2
                }
                None => {
                    s.select_ef(key.key_ef())?;
                    0x80
                }
            };
            let command = Command::new(0x80, 0x2A, P1_PSS_SHA256, p2)
                .with_data(hash)
                .with_le(SIGNATURE_LEN as u16);
            let response = s.exchange(&command)?;
            match response.sw {
                StatusWord::OK if response.data.len() == SIGNATURE_LEN => Ok(response.data),
                StatusWord::OK => Err(CardError::MalformedResponse("signature of wrong length")),
                StatusWord::SECURITY_STATUS => Err(CardError::SecurityStatusNotSatisfied),
                SW_WRONG_P1P2 => Err(CardError::NotSupported),
                StatusWord::WRONG_LENGTH => Err(CardError::DataLength),
                sw => Err(CardError::UnexpectedStatus(sw.0)),
            }
        });
        match &result {
            Ok(_) => self.state.pss = Some(true),
            Err(CardError::NotSupported) => {
                log::warn!("the card refused PSS (6A86) although the probe accepted it");
                self.state.pss = Some(false);
            }
            Err(_) => {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_answers() {
        assert!(probe_answer_means_pss(StatusWord(0x6982)));
        assert!(probe_answer_means_pss(StatusWord(0x6700)));
        assert!(probe_answer_means_pss(StatusWord(0x6985)));
        assert!(!probe_answer_means_pss(StatusWord(0x6A86)));
        assert!(!probe_answer_means_pss(StatusWord(0x9000)));
        assert!(!probe_answer_means_pss(StatusWord(0x6D00)));
        assert!(!probe_answer_means_pss(StatusWord(0x6A82)));
    }
}
