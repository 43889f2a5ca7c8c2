//! Command and response APDUs (short form only: docs/card-protocol.md [C]).
//!
//! [`exchange`] sends one command and hides the two ISO 7816-4 transport-level answers a card
//! may give: `61xx` (more data: fetched with GET RESPONSE, a bounded number of times) and `6Cxx`
//! (wrong Le: the command is sent again once with Le = xx). Whatever the card says, the data
//! handed back is never longer than the command's Le.

use std::fmt;

use super::error::CardError;
use crate::transport::Channel;

/// Most GET RESPONSE commands sent for one command (a card asking for more is hostile).
const MAX_GET_RESPONSE: usize = 8;

/// A status word (SW1 SW2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// 90 00: success.
    pub const OK: StatusWord = StatusWord(0x9000);
    /// 62 82: end of file reached before Le bytes (data may come with it).
    pub const END_OF_FILE: StatusWord = StatusWord(0x6282);
    /// 67 00: wrong length.
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);
    /// 69 82: security status not satisfied (no VERIFY yet).
    pub const SECURITY_STATUS: StatusWord = StatusWord(0x6982);
    /// 69 83: authentication method blocked (no source reports it for JPKI: [U]).
    pub const AUTH_BLOCKED: StatusWord = StatusWord(0x6983);
    /// 69 84: referenced data blocked (VERIFY of a blocked PIN, docs/card-protocol.md [1]).
    pub const DATA_BLOCKED: StatusWord = StatusWord(0x6984);
    /// 6A 82: file or application not found.
    pub const FILE_NOT_FOUND: StatusWord = StatusWord(0x6A82);
    /// 6B 00: offset outside the EF.
    pub const WRONG_OFFSET: StatusWord = StatusWord(0x6B00);

    pub fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    pub fn sw2(self) -> u8 {
        self.0 as u8
    }

    pub fn is_ok(self) -> bool {
        self == StatusWord::OK
    }

    /// For 63 Cx: x, the tries left.
    pub fn tries_left(self) -> Option<u8> {
        (self.sw1() == 0x63 && self.sw2() & 0xF0 == 0xC0).then_some(self.sw2() & 0x0F)
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X}", self.0)
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

/// A short command APDU.
#[derive(Clone)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    /// At most 255 bytes.
    pub data: Vec<u8>,
    /// Expected response length, 1..=256 (256 is encoded as 00); `None` = no data expected.
    pub le: Option<u16>,
    /// The data is secret (PIN): it is never logged, and zeroed when the command is dropped.
    pub secret: bool,
    /// Le is sent in the extended form (`00 Le_hi Le_lo`, case 2E, no data only): 1..=65535
    /// bytes in one answer. Only the extended READ BINARY uses it (`jpki/extended.rs`).
    pub extended: bool,
}

impl Drop for Command {
    fn drop(&mut self) {
        if self.secret {
            zeroize::Zeroize::zeroize(&mut self.data);
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02X} {:02X} {:02X} {:02X}",
            self.cla, self.ins, self.p1, self.p2
        )?;
        if !self.data.is_empty() {
            write!(f, " Lc={}", self.data.len())?;
            if self.secret {
                f.write_str(" <redacted>")?;
            }
        }
        if let Some(le) = self.le {
            write!(f, " Le={le}")?;
            if self.extended {
                f.write_str(" (extended)")?;
            }
        }
        Ok(())
    }
}

impl Command {
    /// A command without data or Le (case 1).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Command {
            cla,
            ins,
            p1,
            p2,
            data: Vec::new(),
            le: None,
            secret: false,
            extended: false,
        }
    }

    pub fn with_data(mut self, data: &[u8]) -> Self {
        self.data = data.to_vec();
        self
    }

    pub fn with_le(mut self, le: u16) -> Self {
        self.le = Some(le);
        self
    }

    /// Expects up to `le` bytes (1..=65535) with an extended-length Le; only for commands
    /// without data (case 2E).
    pub fn with_extended_le(mut self, le: u16) -> Self {
        self.le = Some(le);
        self.extended = true;
        self
    }

    /// Marks the data as secret (never logged, zeroed on drop).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// The bytes of the short APDU. Refuses Lc > 255 and Le outside 1..=256.
    pub fn encode(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, CardError> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(6 + self.data.len()));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            let lc = u8::try_from(self.data.len()).map_err(|_| CardError::DataLength)?;
            out.push(lc);
            out.extend_from_slice(&self.data);
        }
        if self.extended {
            // Case 2E: 00 then two bytes of Le (ISO 7816-3 §12.1.3); no data in our use.
            match self.le {
                Some(le) if le > 0 && self.data.is_empty() => {
                    out.push(0);
                    out.extend_from_slice(&le.to_be_bytes());
                    return Ok(out);
                }
                _ => return Err(CardError::DataLength),
            }
        }
        if let Some(le) = self.le {
            match le {
                256 => out.push(0),
                1..=255 => out.push(le as u8),
                _ => return Err(CardError::DataLength),
            }
        }
        Ok(out)
    }
}

/// A response APDU split into data and status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl Response {
    /// Splits `raw` = data ‖ SW1 SW2. Fewer than 2 bytes is malformed.
    pub fn parse(mut raw: Vec<u8>) -> Result<Response, CardError> {
        if raw.len() < 2 {
            return Err(CardError::MalformedResponse(
                "response shorter than 2 bytes",
            ));
        }
        let sw2 = raw.pop().unwrap_or_default();
        let sw1 = raw.pop().unwrap_or_default();
        Ok(Response {
            data: raw,
            sw: StatusWord(u16::from_be_bytes([sw1, sw2])),
        })
    }
}

fn transmit_once(channel: &mut dyn Channel, command: &Command) -> Result<Response, CardError> {
    let bytes = command.encode()?;
    log::debug!("> {command:?}");
    let response = Response::parse(channel.transmit(&bytes)?)?;
    log::debug!("< {} bytes, {}", response.data.len(), response.sw);
    Ok(response)
}

/// Sends `command`, resolving `61xx` and `6Cxx`. The final status word is returned as is
/// (the caller decides what it means); the data is at most Le bytes (0 when no Le).
pub fn exchange(channel: &mut dyn Channel, command: &Command) -> Result<Response, CardError> {
    let max = usize::from(command.le.unwrap_or(0));
    let mut response = transmit_once(channel, command)?;
    if command.extended {
        // The extended READ BINARY judges every answer itself (61xx/6Cxx included: a card
        // that answers so does not do extended Le, and the short form follows).
        if response.data.len() > max {
            return Err(CardError::MalformedResponse("answer longer than Le"));
        }
        return Ok(response);
    }
    if response.sw.sw1() == 0x6C {
        // Wrong Le: the card tells the right one. Resend once with it, never more than asked.
        let le = match response.sw.sw2() {
            0 => 256,
            n => u16::from(n),
        };
        if command.le.is_none() || usize::from(le) > max {
            return Err(CardError::MalformedResponse("6Cxx asks for more than Le"));
        }
        let retry = command.clone().with_le(le);
        response = transmit_once(channel, &retry)?;
        if response.sw.sw1() == 0x6C {
            return Err(CardError::MalformedResponse("repeated 6Cxx"));
        }
    }
    let mut fetched = 0;
    while response.sw.sw1() == 0x61 {
        fetched += 1;
        if fetched > MAX_GET_RESPONSE {
            return Err(CardError::MalformedResponse("too many 61xx"));
        }
        if response.data.len() > max {
            break;
        }
        let remaining = max - response.data.len();
        if remaining == 0 {
            // We asked for no more: what the card still holds is not ours to fetch.
            response.sw = StatusWord::OK;
            break;
        }
        let available = match response.sw.sw2() {
            0 => 256,
            n => usize::from(n),
        };
        let le = available.min(remaining) as u16;
        let get_response = Command::new(0x00, 0xC0, 0x00, 0x00).with_le(le);
        let next = transmit_once(channel, &get_response)?;
        if next.data.len() > usize::from(le) {
            return Err(CardError::MalformedResponse("GET RESPONSE longer than Le"));
        }
        response.data.extend_from_slice(&next.data);
        response.sw = next.sw;
    }
    if response.data.len() > max {
        return Err(CardError::MalformedResponse("response longer than Le"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportError;

    /// Replies from a script, records the commands.
    struct Script {
        replies: Vec<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl Channel for Script {
        fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
            self.sent.push(command.to_vec());
            if self.replies.is_empty() {
                return Err(TransportError::Other("script exhausted".into()));
            }
            Ok(self.replies.remove(0))
        }
    }

    fn script(replies: &[&[u8]]) -> Script {
        Script {
            replies: replies.iter().map(|r| r.to_vec()).collect(),
            sent: Vec::new(),
        }
    }

    #[test]
    fn encodes_all_cases() {
        let c1 = Command::new(0, 0x20, 0, 0x80);
        assert_eq!(*c1.encode().unwrap(), vec![0, 0x20, 0, 0x80]);
        let c2 = Command::new(0, 0xB0, 1, 2).with_le(256);
        assert_eq!(*c2.encode().unwrap(), vec![0, 0xB0, 1, 2, 0]);
        let c3 = Command::new(0, 0xA4, 2, 0x0C).with_data(&[0, 0x0A]);
        assert_eq!(*c3.encode().unwrap(), vec![0, 0xA4, 2, 0x0C, 2, 0, 0x0A]);
        let c4 = Command::new(0x80, 0x2A, 0, 0x80)
            .with_data(&[1, 2, 3])
            .with_le(256);
        assert_eq!(
            *c4.encode().unwrap(),
            vec![0x80, 0x2A, 0, 0x80, 3, 1, 2, 3, 0]
        );
        let too_long = Command::new(0, 0, 0, 0).with_data(&[0; 256]);
        assert_eq!(too_long.encode().err(), Some(CardError::DataLength));
        let bad_le = Command::new(0, 0, 0, 0).with_le(257);
        assert_eq!(bad_le.encode().err(), Some(CardError::DataLength));
        let zero_le = Command::new(0, 0, 0, 0).with_le(0);
        assert_eq!(zero_le.encode().err(), Some(CardError::DataLength));
    }

    #[test]
    fn debug_redacts_secret_data() {
        let c = Command::new(0, 0x20, 0, 0x80).with_data(b"1234").secret();
        let s = format!("{c:?}");
        assert!(!s.contains("31"), "{s}");
        assert!(s.contains("redacted"));
    }

    #[test]
    fn parses_responses() {
        assert!(matches!(
            Response::parse(vec![0x90]),
            Err(CardError::MalformedResponse(_))
        ));
        assert!(Response::parse(vec![]).is_err());
        let r = Response::parse(vec![1, 2, 0x63, 0xC2]).unwrap();
        assert_eq!(r.data, vec![1, 2]);
        assert_eq!(r.sw.tries_left(), Some(2));
        assert_eq!(StatusWord(0x6300).tries_left(), None);
    }

    #[test]
    fn get_response_chain() {
        let mut ch = script(&[&[1, 2, 0x61, 0x03], &[3, 4, 5, 0x90, 0]]);
        let c = Command::new(0, 0xB0, 0, 0).with_le(10);
        let r = exchange(&mut ch, &c).unwrap();
        assert_eq!(r.data, vec![1, 2, 3, 4, 5]);
        assert!(r.sw.is_ok());
        assert_eq!(ch.sent[1], vec![0, 0xC0, 0, 0, 3]);
    }

    #[test]
    fn get_response_bounded_by_le() {
        // The card says 256 more, we only want 3 more.
        let mut ch = script(&[&[1, 0x61, 0x00], &[2, 3, 4, 0x90, 0]]);
        let c = Command::new(0, 0xB0, 0, 0).with_le(4);
        let r = exchange(&mut ch, &c).unwrap();
        assert_eq!(r.data, vec![1, 2, 3, 4]);
        assert_eq!(ch.sent[1], vec![0, 0xC0, 0, 0, 3]);
    }

    #[test]
    fn endless_61xx_is_an_error() {
        let replies: Vec<&[u8]> = vec![&[0x61, 0x01]; 20];
        let mut ch = script(&replies);
        let c = Command::new(0, 0xB0, 0, 0).with_le(256);
        assert!(matches!(
            exchange(&mut ch, &c),
            Err(CardError::MalformedResponse(_))
        ));
        assert!(ch.sent.len() <= MAX_GET_RESPONSE + 1);
    }

    #[test]
    fn over_long_get_response_is_an_error() {
        let mut ch = script(&[&[0x61, 0x02], &[1, 2, 3, 0x90, 0]]);
        let c = Command::new(0, 0xB0, 0, 0).with_le(256);
        assert!(exchange(&mut ch, &c).is_err());
    }

    #[test]
    fn wrong_le_resent_once() {
        let mut ch = script(&[&[0x6C, 0x02], &[7, 8, 0x90, 0]]);
        let c = Command::new(0, 0xB0, 0, 0).with_le(256);
        let r = exchange(&mut ch, &c).unwrap();
        assert_eq!(r.data, vec![7, 8]);
        assert_eq!(ch.sent[1], vec![0, 0xB0, 0, 0, 2]);

        let mut ch = script(&[&[0x6C, 0x02], &[0x6C, 0x01]]);
        assert!(exchange(&mut ch, &c).is_err());
        assert_eq!(ch.sent.len(), 2);

        // 6C asking for more than we allowed.
        let mut ch = script(&[&[0x6C, 0x10]]);
        let small = Command::new(0, 0xB0, 0, 0).with_le(4);
        assert!(exchange(&mut ch, &small).is_err());
        // 6C for a command without Le.
        let mut ch = script(&[&[0x6C, 0x10]]);
        assert!(exchange(&mut ch, &Command::new(0, 0xA4, 0, 0)).is_err());
    }

    #[test]
    fn over_long_response_is_an_error() {
        let mut ch = script(&[&[1, 2, 3, 0x90, 0]]);
        let c = Command::new(0, 0xB0, 0, 0).with_le(2);
        assert!(matches!(
            exchange(&mut ch, &c),
            Err(CardError::MalformedResponse(_))
        ));
        let mut ch = script(&[&[1, 0x90, 0]]);
        assert!(exchange(&mut ch, &Command::new(0, 0xA4, 2, 0x0C)).is_err());
    }

    #[test]
    fn transport_errors_map() {
        let mut ch = script(&[]);
        assert!(matches!(
            exchange(&mut ch, &Command::new(0, 0, 0, 0)),
            Err(CardError::Transport(_))
        ));
    }
}
