//! The other applications of the card, as far as the `jpki` command needs them: which ones
//! answer, and the 券面事項入力補助AP (card-info input support, "kenhojo"/text AP) with its own
//! 4-digit PIN, read only on the holder's explicit request.
//!
//! Facts (docs/card-protocol.md; MC and MYNA for the file layout):
//! - AID `D3 92 10 00 31 00 01 01 04 08` [C]; PIN EF 0011, 4 digits, 3 tries [C]; VERIFY and
//!   the empty tries query work as in the JPKI AP [C].
//! - EF 0001 holds the 12-digit My Number in one BER TLV (tag FF10 on a real card per MC [1];
//!   the virtual card uses tag 10 [U]); EF 0002 holds `FF20 { DF21 offsets, DF22 name,
//!   DF23 address, DF24 birth date YYYYMMDD, DF25 sex (ISO 5218 digit) }` in UTF-8 [1].
//!   Both are parsed by tag, not by offset, and filler after the TLV is ignored.
//!
//! Selecting another application clears the card's security state (docs/card-protocol.md), so every
//! operation here forgets the JPKI AP selection and its VERIFYs, and [`read_card_face_info`]
//! re-selects the JPKI AP at the end so that the kenhojo PIN does not stay verified.
//!
//! [`read_card_face_info`]: JpkiCard::read_card_face_info

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use super::tlv::{ber_tlv, ber_total};
use super::{CardError, Command, JpkiCard, Session, StatusWord, JPKI_AID};
use crate::card::pin::{AuthPin, PinFormatError};

/// The card applications (docs/card-protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Application {
    /// 公的個人認証AP.
    Jpki,
    /// 券面事項入力補助AP.
    Text,
    /// 券面事項確認AP.
    Visual,
    /// 住基AP.
    Juki,
    /// 共通AP.
    Common,
}

impl Application {
    pub const ALL: [Application; 5] = [
        Application::Jpki,
        Application::Text,
        Application::Visual,
        Application::Juki,
        Application::Common,
    ];

    /// The 10-byte AID (docs/card-protocol.md [C]).
    pub fn aid(self) -> [u8; 10] {
        match self {
            Application::Jpki => JPKI_AID,
            Application::Text => [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08],
            Application::Visual => [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02],
            Application::Juki => [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x01],
            Application::Common => [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x01, 0x00],
        }
    }

    /// A short English name.
    pub fn name(self) -> &'static str {
        match self {
            Application::Jpki => "JPKI (公的個人認証AP)",
            Application::Text => "card info input support (券面事項入力補助AP)",
            Application::Visual => "card face confirmation (券面事項確認AP)",
            Application::Juki => "resident registry (住基AP)",
            Application::Common => "common (共通AP)",
        }
    }

    /// A stable identifier for scripts.
    pub fn id(self) -> &'static str {
        match self {
            Application::Jpki => "jpki",
            Application::Text => "kenhojo",
            Application::Visual => "kenmen",
            Application::Juki => "juki",
            Application::Common => "common",
        }
    }
}

/// The kenhojo PIN (券面事項入力補助用暗証番号): exactly 4 ASCII digits, 3 tries [C]. Its own
/// counter, independent of the authentication PIN even when the holder chose the same value.
pub struct KenhojoPin(AuthPin);

impl KenhojoPin {
    pub const MAX_TRIES: u8 = 3;

    /// Same format as the authentication PIN: refused before any card traffic otherwise.
    pub fn parse(bytes: &[u8]) -> Result<KenhojoPin, PinFormatError> {
        AuthPin::parse(bytes).map(KenhojoPin)
    }
}

impl fmt::Debug for KenhojoPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KenhojoPin(****)")
    }
}

/// Sex as recorded on the card (ISO 5218 digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    NotKnown,
    Male,
    Female,
    NotApplicable,
    Other(u8),
}

impl Sex {
    fn from_code(code: &[u8]) -> Sex {
        match code {
            b"0" => Sex::NotKnown,
            b"1" => Sex::Male,
            b"2" => Sex::Female,
            b"9" => Sex::NotApplicable,
            other => Sex::Other(other.first().copied().unwrap_or(0)),
        }
    }

    /// English word.
    pub fn label(self) -> &'static str {
        match self {
            Sex::NotKnown => "not known",
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::NotApplicable => "not applicable",
            Sex::Other(_) => "unknown code",
        }
    }

    /// The ISO 5218 code as a character.
    pub fn code(self) -> char {
        match self {
            Sex::NotKnown => '0',
            Sex::Male => '1',
            Sex::Female => '2',
            Sex::NotApplicable => '9',
            Sex::Other(c) => char::from(c),
        }
    }
}

/// What the 券面事項入力補助AP holds. Personal data: zeroed on drop, never logged (`Debug`
/// prints nothing of it); the caller prints it once and keeps it nowhere.
pub struct CardFaceInfo {
    pub my_number: Zeroizing<String>,
    pub name: Zeroizing<String>,
    pub address: Zeroizing<String>,
    /// `YYYYMMDD` as stored (Gregorian).
    pub birth_date: Zeroizing<String>,
    pub sex: Sex,
}

impl fmt::Debug for CardFaceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CardFaceInfo(<personal data>)")
    }
}

/// Text AP EFs.
const EF_KENHOJO_PIN: u16 = 0x0011;
const EF_MY_NUMBER: u16 = 0x0001;
const EF_ATTRIBUTES: u16 = 0x0002;
/// Largest text-AP EF we read (name and address are a few hundred bytes at most).
const MAX_TEXT_EF: usize = 2048;

fn utf8(value: &[u8]) -> Result<Zeroizing<String>, CardError> {
    std::str::from_utf8(value)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| CardError::MalformedResponse("text field is not UTF-8"))
}

/// EF 0001: the My Number, 12 ASCII digits in tag FF10 (real card, MC [1]) or 10 (virtual).
fn parse_my_number(raw: &[u8]) -> Result<Zeroizing<String>, CardError> {
    let (tag, value, _) = ber_tlv(raw)?;
    if tag != 0xFF10 && tag != 0x10 {
        return Err(CardError::MalformedResponse("My Number EF: unexpected tag"));
    }
    if value.len() != 12 || !value.iter().all(u8::is_ascii_digit) {
        return Err(CardError::MalformedResponse("My Number EF: not 12 digits"));
    }
    utf8(value)
}

/// EF 0002: `FF20 { DF21 …, DF22 name, DF23 address, DF24 birth, DF25 sex }`.
fn parse_attributes(raw: &[u8]) -> Result<CardFaceInfo, CardError> {
    let (tag, mut rest, _) = ber_tlv(raw)?;
    if tag != 0xFF20 {
        return Err(CardError::MalformedResponse(
            "attributes EF: unexpected tag",
        ));
    }
    let (mut name, mut address, mut birth, mut sex) = (None, None, None, None);
    while let Some(&b) = rest.first() {
        if b == 0x00 || b == 0xFF {
            break;
        }
        let (t, v, n) = ber_tlv(rest)?;
        match t {
            0xDF22 => name = Some(utf8(v)?),
            0xDF23 => address = Some(utf8(v)?),
            0xDF24 => birth = Some(utf8(v)?),
            0xDF25 => sex = Some(Sex::from_code(v)),
            _ => {}
        }
        rest = &rest[n..];
    }
    let missing = CardError::MalformedResponse("attributes EF: field missing");
    Ok(CardFaceInfo {
        my_number: Zeroizing::new(String::new()),
        name: name.ok_or(missing.clone())?,
        address: address.ok_or(missing.clone())?,
        birth_date: birth.ok_or(missing.clone())?,
        sex: sex.ok_or(missing)?,
    })
}

impl Session<'_> {
    /// SELECT an application by DF name; forgets the JPKI selection and security state.
    fn select_application(&mut self, app: Application) -> Result<bool, CardError> {
        self.state.ap_selected = false;
        self.state.verified = 0;
        self.ef = None;
        let command = Command::new(0x00, 0xA4, 0x04, 0x0C).with_data(&app.aid());
        let sw = self.exchange(&command)?.sw;
        match sw {
            StatusWord::OK => {
                if app == Application::Jpki {
                    self.state.ap_selected = true;
                    self.ap_selected_here = true;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// SELECT EF of the current (non-JPKI) application.
    fn select_text_ef(&mut self, fid: u16) -> Result<(), CardError> {
        let command = Command::new(0x00, 0xA4, 0x02, 0x0C).with_data(&fid.to_be_bytes());
        match self.exchange(&command)?.sw {
            StatusWord::OK => Ok(()),
            StatusWord::FILE_NOT_FOUND => Err(CardError::FileNotFound),
            sw => Err(CardError::UnexpectedStatus(sw.0)),
        }
    }

    /// Selects the text AP (`NotSupported` if the card has none).
    fn select_text_ap(&mut self) -> Result<(), CardError> {
        if self.select_application(Application::Text)? {
            Ok(())
        } else {
            Err(CardError::NotSupported)
        }
    }

    /// Reads the TLV at the start of the current EF (Le=00 first, then what its header says).
    fn read_text_tlv(&mut self) -> Result<Zeroizing<Vec<u8>>, CardError> {
        let mut buf = Zeroizing::new(Vec::new());
        for _ in 0..(MAX_TEXT_EF / 256 + 1) {
            let response = self.read_binary(buf.len(), 256)?;
            match response.sw {
                StatusWord::OK | StatusWord::END_OF_FILE => {}
                StatusWord::SECURITY_STATUS => return Err(CardError::SecurityStatusNotSatisfied),
                StatusWord::WRONG_OFFSET => break,
                sw => return Err(CardError::UnexpectedStatus(sw.0)),
            }
            if response.data.is_empty() {
                break;
            }
            buf.extend_from_slice(&response.data);
            let mut data = response.data;
            data.zeroize();
            match ber_total(&buf) {
                Some(total) if total > MAX_TEXT_EF => {
                    return Err(CardError::MalformedResponse("text EF too long"))
                }
                Some(total) if buf.len() >= total => {
                    buf.truncate(total);
                    return Ok(buf);
                }
                _ => {}
            }
        }
        Err(CardError::MalformedResponse("text EF shorter than its TLV"))
    }

    fn kenhojo_verify(&mut self, pin: &KenhojoPin) -> Result<(), CardError> {
        self.select_text_ef(EF_KENHOJO_PIN)?;
        let command = Command::new(0x00, 0x20, 0x00, 0x80)
            .with_data(pin.0.as_bytes())
            .secret();
        let sw = self.exchange(&command)?.sw;
        match sw {
            StatusWord::OK => Ok(()),
            StatusWord::DATA_BLOCKED | StatusWord::AUTH_BLOCKED => Err(CardError::PinBlocked),
            sw => match sw.tries_left() {
                Some(0) => Err(CardError::PinBlocked),
                Some(tries_left) => Err(CardError::PinIncorrect { tries_left }),
                None => Err(CardError::UnexpectedStatus(sw.0)),
            },
        }
    }
}

impl JpkiCard {
    /// Which applications answer SELECT by DF name (one SELECT each, in one transaction).
    /// Leaves the JPKI AP selected (when present), logged out.
    pub fn applications(&mut self) -> Result<Vec<(Application, bool)>, CardError> {
        self.with_session(|s| {
            let mut out = Vec::new();
            // JPKI last, so that it stays selected.
            for app in Application::ALL.iter().rev() {
                out.push((*app, s.select_application(*app)?));
            }
            out.reverse();
            Ok(out)
        })
    }

    /// Tries left on the kenhojo PIN, without spending one (SELECT AP + SELECT EF + empty
    /// VERIFY). Logs the JPKI AP out (another application gets selected).
    pub fn kenhojo_tries_left(&mut self) -> Result<u8, CardError> {
        self.with_session(|s| {
            s.select_text_ap()?;
            s.select_text_ef(EF_KENHOJO_PIN)?;
            let sw = s.exchange(&Command::new(0x00, 0x20, 0x00, 0x80))?.sw;
            match sw {
                StatusWord::OK => Ok(KenhojoPin::MAX_TRIES),
                StatusWord::DATA_BLOCKED | StatusWord::AUTH_BLOCKED => Ok(0),
                sw => sw.tries_left().ok_or(CardError::UnexpectedStatus(sw.0)),
            }
        })
    }

    /// Reads My Number, name, address, birth date and sex from the 券面事項入力補助AP after
    /// VERIFY of the kenhojo PIN, then re-selects the JPKI AP so the PIN does not stay
    /// verified. One transaction.
    pub fn read_card_face_info(&mut self, pin: &KenhojoPin) -> Result<CardFaceInfo, CardError> {
        self.with_session(|s| {
            s.select_text_ap()?;
            let result = (|| {
                s.kenhojo_verify(pin)?;
                s.select_text_ef(EF_MY_NUMBER)?;
                let my_number = parse_my_number(&s.read_text_tlv()?)?;
                s.select_text_ef(EF_ATTRIBUTES)?;
                let mut info = parse_attributes(&s.read_text_tlv()?)?;
                info.my_number = my_number;
                Ok(info)
            })();
            // Clear the kenhojo security state whatever happened (best effort).
            if let Err(e) = s.select_application(Application::Jpki) {
                log::debug!("re-selecting the JPKI AP failed: {e}");
            }
            result
        })
    }

    /// Changes the kenhojo PIN: VERIFY old, CHANGE REFERENCE DATA new (docs/card-protocol.md [C]),
    /// then re-selects the JPKI AP.
    pub fn change_kenhojo_pin(
        &mut self,
        old: &KenhojoPin,
        new: &KenhojoPin,
    ) -> Result<(), CardError> {
        self.with_session(|s| {
            s.select_text_ap()?;
            let result = (|| {
                s.kenhojo_verify(old)?;
                let command = Command::new(0x00, 0x24, 0x01, 0x80)
                    .with_data(new.0.as_bytes())
                    .secret();
                match s.exchange(&command)?.sw {
                    StatusWord::OK => Ok(()),
                    StatusWord::SECURITY_STATUS => Err(CardError::SecurityStatusNotSatisfied),
                    sw => Err(CardError::UnexpectedStatus(sw.0)),
                }
            })();
            if let Err(e) = s.select_application(Application::Jpki) {
                log::debug!("re-selecting the JPKI AP failed: {e}");
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_my_number_tags() {
        let mut v = vec![0x10, 0x0C];
        v.extend_from_slice(b"123456789012");
        assert_eq!(parse_my_number(&v).unwrap().as_str(), "123456789012");
        let mut v = vec![0xFF, 0x10, 0x0C];
        v.extend_from_slice(b"123456789012");
        v.extend_from_slice(&[0xFF, 0xFF]);
        assert_eq!(parse_my_number(&v).unwrap().as_str(), "123456789012");
        assert!(parse_my_number(&[0x10, 0x02, b'1', b'2']).is_err());
        assert!(parse_my_number(&[0x10, 0x0C, b'1']).is_err());
        assert_eq!(ber_total(&[0xFF, 0x10, 0x0C]), Some(15));
        assert_eq!(ber_total(&[0xFF, 0x20, 0x81, 0x90]), Some(0x94));
        assert_eq!(ber_total(&[0xFF, 0x20, 0x82]), None);
    }

    #[test]
    fn parses_attributes() {
        let mut body = Vec::new();
        for (tag, v) in [
            (0x21u8, &b"\x01\x00\x00"[..]),
            (0x22, "山田 太郎".as_bytes()),
            (0x23, "東京都".as_bytes()),
            (0x24, b"19800101"),
            (0x25, b"2"),
        ] {
            body.extend_from_slice(&[0xDF, tag, v.len() as u8]);
            body.extend_from_slice(v);
        }
        let mut raw = vec![0xFF, 0x20, body.len() as u8];
        raw.extend_from_slice(&body);
        raw.extend_from_slice(&[0xFF; 4]);
        let info = parse_attributes(&raw).unwrap();
        assert_eq!(info.name.as_str(), "山田 太郎");
        assert_eq!(info.address.as_str(), "東京都");
        assert_eq!(info.birth_date.as_str(), "19800101");
        assert_eq!(info.sex, Sex::Female);
        assert!(!format!("{info:?}").contains("山田"));
        raw[0] = 0x30;
        assert!(parse_attributes(&raw).is_err());
    }

    #[test]
    fn kenhojo_pin_format() {
        assert!(KenhojoPin::parse(b"5678").is_ok());
        assert_eq!(
            KenhojoPin::parse(b"567").err(),
            Some(PinFormatError::Length)
        );
        assert_eq!(
            KenhojoPin::parse(b"56a8").err(),
            Some(PinFormatError::Charset)
        );
        assert_eq!(
            format!("{:?}", KenhojoPin::parse(b"5678").unwrap()),
            "KenhojoPin(****)"
        );
    }
}
