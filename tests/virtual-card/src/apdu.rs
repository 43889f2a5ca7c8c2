//! ISO/IEC 7816-4 short APDU parsing and the status words the card answers.
//!
//! Every open tool uses short APDUs only. An extended-length command (a zero byte where a
//! short Lc would be) is answered 6700 by [`Command::parse`]; whether the card and the reader
//! carry an extended READ BINARY is decided by the card's extended-APDU mode, which parses it
//! with [`Command::parse_extended`].

/// Status words used by the card (ISO/IEC 7816-4 meanings).
pub mod sw {
    /// Normal processing.
    pub const OK: u16 = 0x9000;
    /// Wrong length (Lc/Le inconsistent, truncated APDU, extended length, bad input length).
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// Secure messaging not supported (SM CLA on SELECT, MC README [1]).
    pub const SM_NOT_SUPPORTED: u16 = 0x6882;
    /// Command incompatible with file structure (READ BINARY of a PIN or key EF) [U].
    pub const INCOMPATIBLE_FILE: u16 = 0x6981;
    /// Security status not satisfied (EF 0001 / signing without VERIFY) [C].
    pub const SECURITY_NOT_SATISFIED: u16 = 0x6982;
    /// Authentication method blocked (every VERIFY after the counter reached 0) [1].
    pub const BLOCKED: u16 = 0x6984;
    /// Conditions of use not satisfied (signing with no key EF current; GET RESPONSE with
    /// nothing pending) [U].
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    /// Command not allowed: no current EF of the right kind [U].
    pub const NO_CURRENT_EF: u16 = 0x6986;
    /// Proprietary answer to secure-messaging CLA on READ/VERIFY (MC README [1]).
    pub const SM_REFUSED: u16 = 0x69FC;
    /// Incorrect data field (new PIN of wrong format in CHANGE REFERENCE DATA).
    pub const WRONG_DATA: u16 = 0x6A80;
    /// File or application not found.
    pub const NOT_FOUND: u16 = 0x6A82;
    /// Incorrect P1/P2.
    pub const WRONG_P1P2: u16 = 0x6A86;
    /// Referenced data not found (an SFI that names no PIN / no key, extended profile) [U].
    pub const REF_NOT_FOUND: u16 = 0x6A88;
    /// Offset at or beyond the end of the EF (MC [1]).
    pub const WRONG_OFFSET: u16 = 0x6B00;
    /// INS not supported.
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    /// CLA not supported.
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    /// No precise diagnosis (internal error; should never be seen).
    pub const UNKNOWN: u16 = 0x6F00;
}

/// A parsed short command APDU (ISO 7816-3 cases 1–4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// Command data (empty for cases 1 and 2).
    pub data: &'a [u8],
    /// Expected response length (Le=00 means 256), `None` for cases 1 and 3.
    pub le: Option<usize>,
}

impl<'a> Command<'a> {
    /// Parses a short APDU. Any byte string that is not a well-formed short APDU gives
    /// `Err(6700)`: fewer than 4 bytes, Lc not matching the body, or extended length.
    pub fn parse(bytes: &'a [u8]) -> Result<Command<'a>, u16> {
        let (header, body) = match bytes {
            [cla, ins, p1, p2, body @ ..] => ([*cla, *ins, *p1, *p2], body),
            _ => return Err(sw::WRONG_LENGTH),
        };
        let decode_le = |b: u8| if b == 0 { 256 } else { usize::from(b) };
        let (data, le): (&[u8], Option<usize>) = match body {
            [] => (&[], None),
            [le] => (&[], Some(decode_le(*le))),
            [0, ..] => return Err(sw::WRONG_LENGTH), // extended length: not supported
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if rest.len() == lc {
                    (rest, None)
                } else if rest.len() == lc + 1 {
                    (&rest[..lc], Some(decode_le(rest[lc])))
                } else {
                    return Err(sw::WRONG_LENGTH);
                }
            }
        };
        Ok(Command {
            cla: header[0],
            ins: header[1],
            p1: header[2],
            p2: header[3],
            data,
            le,
        })
    }

    /// Whether `bytes` is an extended-length APDU (ISO 7816-3 cases 2E–4E): after the header
    /// a zero byte followed by at least two more bytes (a short Lc is never zero).
    pub fn is_extended(bytes: &[u8]) -> bool {
        bytes.len() >= 7 && bytes[4] == 0
    }

    /// Parses an extended-length APDU: `00 Le1 Le2` (case 2E, Le 0000 = 65536), or
    /// `00 Lc1 Lc2 data [Le1 Le2]` (cases 3E/4E). Anything else gives `Err(6700)`.
    pub fn parse_extended(bytes: &'a [u8]) -> Result<Command<'a>, u16> {
        if !Self::is_extended(bytes) {
            return Err(sw::WRONG_LENGTH);
        }
        let two = |hi: u8, lo: u8| usize::from(u16::from_be_bytes([hi, lo]));
        let decode_le = |hi: u8, lo: u8| match two(hi, lo) {
            0 => 65536,
            n => n,
        };
        let body = &bytes[5..];
        let (data, le): (&[u8], Option<usize>) = match body {
            [hi, lo] => (&[], Some(decode_le(*hi, *lo))),
            [hi, lo, rest @ ..] => {
                let lc = two(*hi, *lo);
                if lc == 0 {
                    return Err(sw::WRONG_LENGTH);
                }
                if rest.len() == lc {
                    (rest, None)
                } else if rest.len() == lc + 2 {
                    (&rest[..lc], Some(decode_le(rest[lc], rest[lc + 1])))
                } else {
                    return Err(sw::WRONG_LENGTH);
                }
            }
            _ => return Err(sw::WRONG_LENGTH),
        };
        Ok(Command {
            cla: bytes[0],
            ins: bytes[1],
            p1: bytes[2],
            p2: bytes[3],
            data,
            le,
        })
    }
}

/// A response APDU before serialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl Response {
    pub fn sw(sw: u16) -> Response {
        Response {
            data: Vec::new(),
            sw,
        }
    }
    pub fn ok(data: Vec<u8>) -> Response {
        Response { data, sw: sw::OK }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_be_bytes());
        out
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses hex (either case, optional spaces/colons). `None` on odd length or bad digit.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b':' | b'\t'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let val = |c: u8| (c as char).to_digit(16);
    digits
        .chunks(2)
        .map(|p| Some((val(p[0])? * 16 + val(p[1])?) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_four_cases() {
        let c = Command::parse(&[0, 0x20, 0, 0x80]).unwrap();
        assert_eq!((c.data.len(), c.le), (0, None));
        let c = Command::parse(&[0, 0xB0, 0, 0, 0]).unwrap();
        assert_eq!((c.data.len(), c.le), (0, Some(256)));
        let c = Command::parse(&[0, 0xA4, 2, 0x0C, 2, 0, 0x18]).unwrap();
        assert_eq!((c.data, c.le), (&[0u8, 0x18][..], None));
        let c = Command::parse(&[0x80, 0x2A, 0, 0x80, 1, 0xAA, 0]).unwrap();
        assert_eq!((c.data, c.le), (&[0xAAu8][..], Some(256)));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &[][..],
            &[0, 0xA4, 4][..],
            &[0, 0xA4, 4, 0x0C, 3, 1][..],
            &[0, 0xA4, 4, 0x0C, 1, 1, 2, 3][..],
            &[0, 0xB0, 0, 0, 0, 1, 0][..], // extended Le
        ] {
            assert_eq!(Command::parse(bad), Err(sw::WRONG_LENGTH), "{bad:02x?}");
        }
    }

    #[test]
    fn parses_extended_length() {
        assert!(Command::is_extended(&[0, 0xB0, 0, 0, 0, 0, 0]));
        assert!(!Command::is_extended(&[0, 0xB0, 0, 0, 0]));
        let c = Command::parse_extended(&[0, 0xB0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!((c.data.len(), c.le), (0, Some(65536)));
        let c = Command::parse_extended(&[0, 0xB0, 0, 4, 0, 0x01, 0x02]).unwrap();
        assert_eq!((c.p2, c.le), (4, Some(0x102)));
        let c = Command::parse_extended(&[0x80, 0x2A, 0, 0x80, 0, 0, 1, 0xAA, 0, 0]).unwrap();
        assert_eq!((c.data, c.le), (&[0xAAu8][..], Some(65536)));
        assert_eq!(
            Command::parse_extended(&[0, 0xB0, 0, 0, 0, 0, 0, 0]),
            Err(sw::WRONG_LENGTH)
        );
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xAB]), "00ab");
        assert_eq!(unhex("00 AB").unwrap(), vec![0, 0xAB]);
        assert!(unhex("0").is_none());
        assert!(unhex("zz").is_none());
    }
}
