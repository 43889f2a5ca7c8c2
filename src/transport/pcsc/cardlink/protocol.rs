//! The card-link protocol between the module and its helper process: one request, one answer,
//! over a private socket pair (docs/architecture.md, "Card I/O without threads").
//!
//! A frame is a 4-byte big-endian length, then that many bytes: the protocol version
//! ([`VERSION`]), a tag, the body. Lengths above [`MAX_FRAME`] are refused before anything is
//! allocated, and every parse returns an error instead of panicking: the helper reads what a
//! module wrote, the module reads what a helper wrote, and either may be another version or
//! broken. Buffers that may hold an APDU (a VERIFY carries a PIN) are zeroed when dropped.
//!
//! | Request       | tag  | body              | answer                                  |
//! |---------------|------|-------------------|-----------------------------------------|
//! | `Connect`     | 0x01 | reader name bytes | `Ok(ATR)` or `Err`                      |
//! | `Begin`       | 0x02 | —                 | `Ok(empty)` or `Err` (transaction)      |
//! | `Transmit`    | 0x03 | command APDU      | `Ok(response APDU)` or `Err`            |
//! | `End`         | 0x04 | —                 | none (like `SCardEndTransaction`'s void) |
//! | `Status`      | 0x05 | —                 | `Ok(empty)` or `Err`                    |
//! | `Atr`         | 0x06 | —                 | `Ok(ATR)`                               |
//!
//! Answers: tag 0x80 `Ok(body)`, tag 0x81 `Err(code, text)` with the codes of
//! [`TransportError`]. Closing the socket is the disconnect: the helper leaves the card as it
//! is (`SCARD_LEAVE_CARD`) and exits.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use crate::transport::TransportError;

/// Version of this protocol. The module and its helper come from one build; a helper of
/// another version is refused (the module then falls back to calls on the caller's thread).
pub const VERSION: u8 = 1;

/// Largest frame payload: an extended APDU or its answer (pcsc-lite's
/// `MAX_BUFFER_SIZE_EXTENDED`, 65 548 bytes) with the header, rounded up.
pub const MAX_FRAME: usize = 70_000;

/// Longest reader name accepted (PC/SC's `MAX_READERNAME` is 128; room to spare).
const MAX_READER_NAME: usize = 1024;

/// What the module asks of its helper. `Debug` shows a command's length only (it may hold a
/// PIN).
#[derive(PartialEq, Eq)]
pub enum Request {
    /// Connect (shared) to the card in this reader. The first request, and only the first.
    Connect(Vec<u8>),
    Begin,
    /// A command APDU (may hold a PIN: zeroed when dropped).
    Transmit(Zeroizing<Vec<u8>>),
    End,
    Status,
    Atr,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Connect(name) => write!(f, "Connect({:?})", String::from_utf8_lossy(name)),
            Request::Begin => f.write_str("Begin"),
            Request::Transmit(apdu) => write!(f, "Transmit(<{} bytes>)", apdu.len()),
            Request::End => f.write_str("End"),
            Request::Status => f.write_str("Status"),
            Request::Atr => f.write_str("Atr"),
        }
    }
}

/// What the helper answers. `Debug` shows an answer's length only (it may hold personal data).
#[derive(PartialEq, Eq)]
pub enum Response {
    Ok(Zeroizing<Vec<u8>>),
    Err(TransportError),
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Response::Ok(body) => write!(f, "Ok(<{} bytes>)", body.len()),
            Response::Err(e) => write!(f, "Err({e:?})"),
        }
    }
}

/// A frame that is not this protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "card-link protocol: {}", self.0)
    }
}

fn bad(what: impl Into<String>) -> ProtocolError {
    ProtocolError(what.into())
}

const CONNECT: u8 = 0x01;
const BEGIN: u8 = 0x02;
const TRANSMIT: u8 = 0x03;
const END: u8 = 0x04;
const STATUS: u8 = 0x05;
const ATR: u8 = 0x06;
const OK: u8 = 0x80;
const ERR: u8 = 0x81;

/// Splits a payload into tag and body, checking the version.
fn header(payload: &[u8]) -> Result<(u8, &[u8]), ProtocolError> {
    match payload {
        [VERSION, tag, body @ ..] => Ok((*tag, body)),
        [version, _, ..] => Err(bad(format!(
            "version {version}, this side speaks {VERSION}"
        ))),
        _ => Err(bad("frame too short")),
    }
}

fn empty(tag: u8, body: &[u8]) -> Result<(), ProtocolError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(bad(format!(
            "request {tag:#04x} carries {} bytes",
            body.len()
        )))
    }
}

impl Request {
    /// Parses a frame payload (without its length prefix).
    pub fn parse(payload: &[u8]) -> Result<Request, ProtocolError> {
        let (tag, body) = header(payload)?;
        match tag {
            CONNECT => {
                if body.is_empty() || body.len() > MAX_READER_NAME || body.contains(&0) {
                    return Err(bad("reader name empty, too long or with a NUL"));
                }
                Ok(Request::Connect(body.to_vec()))
            }
            BEGIN => empty(tag, body).map(|()| Request::Begin),
            TRANSMIT => {
                if body.len() < 4 {
                    return Err(bad("command APDU shorter than its header"));
                }
                Ok(Request::Transmit(Zeroizing::new(body.to_vec())))
            }
            END => empty(tag, body).map(|()| Request::End),
            STATUS => empty(tag, body).map(|()| Request::Status),
            ATR => empty(tag, body).map(|()| Request::Atr),
            other => Err(bad(format!("unknown request {other:#04x}"))),
        }
    }

    /// The frame payload (version, tag, body).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let (tag, body): (u8, &[u8]) = match self {
            Request::Connect(name) => (CONNECT, name),
            Request::Begin => (BEGIN, &[]),
            Request::Transmit(apdu) => (TRANSMIT, apdu),
            Request::End => (END, &[]),
            Request::Status => (STATUS, &[]),
            Request::Atr => (ATR, &[]),
        };
        payload(tag, body)
    }

    /// Whether the helper answers this request ([`Request::End`] is not answered).
    pub fn answered(&self) -> bool {
        !matches!(self, Request::End)
    }
}

fn payload(tag: u8, body: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 2));
    out.push(VERSION);
    out.push(tag);
    out.extend_from_slice(body);
    out
}

/// The error codes of [`TransportError`] on the wire.
fn error_code(e: &TransportError) -> u8 {
    match e {
        TransportError::CardRemoved => 1,
        TransportError::CardReset => 2,
        TransportError::NoReader => 3,
        TransportError::NoService => 4,
        TransportError::Timeout => 5,
        TransportError::Cancelled => 6,
        TransportError::Other(_) => 7,
    }
}

/// Longest error text carried (the rest is cut).
const MAX_ERROR_TEXT: usize = 512;

impl Response {
    /// Parses a frame payload (without its length prefix).
    pub fn parse(payload: &[u8]) -> Result<Response, ProtocolError> {
        let (tag, body) = header(payload)?;
        match tag {
            OK => Ok(Response::Ok(Zeroizing::new(body.to_vec()))),
            ERR => {
                let Some((&code, text)) = body.split_first() else {
                    return Err(bad("error answer without a code"));
                };
                let text = String::from_utf8_lossy(&text[..text.len().min(MAX_ERROR_TEXT)]);
                let text = cut(&text);
                Ok(Response::Err(match code {
                    1 => TransportError::CardRemoved,
                    2 => TransportError::CardReset,
                    3 => TransportError::NoReader,
                    4 => TransportError::NoService,
                    5 => TransportError::Timeout,
                    6 => TransportError::Cancelled,
                    7 => TransportError::Other(text.to_owned()),
                    other => return Err(bad(format!("unknown error code {other}"))),
                }))
            }
            other => Err(bad(format!("unknown answer {other:#04x}"))),
        }
    }

    /// The frame payload (version, tag, body).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        match self {
            Response::Ok(body) => payload(OK, body),
            Response::Err(e) => {
                let mut body = vec![error_code(e)];
                if let TransportError::Other(text) = e {
                    body.extend_from_slice(cut(text).as_bytes());
                }
                payload(ERR, &body)
            }
        }
    }
}

/// `text` cut to at most [`MAX_ERROR_TEXT`] bytes, on a character boundary.
fn cut(text: &str) -> &str {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Writes one frame (length prefix and payload) in a single write.
pub fn write_frame(out: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|n| *n as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    let mut frame = Zeroizing::new(Vec::with_capacity(payload.len() + 4));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    out.write_all(&frame)?;
    out.flush()
}

/// Reads one frame's payload. `Ok(None)` at a clean end of input (the other side closed
/// between frames); a length above [`MAX_FRAME`] is `InvalidData` before any allocation.
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match input.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut payload = Zeroizing::new(vec![0u8; len]);
    input.read_exact(&mut payload)?;
    Ok(Some(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn requests_round_trip() {
        let all = [
            Request::Connect(b"Virtual PCD 00 00".to_vec()),
            Request::Begin,
            Request::Transmit(Zeroizing::new(vec![
                0x00, 0x20, 0x00, 0x80, 0x04, 1, 2, 3, 4,
            ])),
            Request::End,
            Request::Status,
            Request::Atr,
        ];
        for r in all {
            let bytes = frame(&r.encode());
            let payload = read_frame(&mut &bytes[..]).unwrap().unwrap();
            assert_eq!(Request::parse(&payload).unwrap(), r);
        }
    }

    #[test]
    fn responses_round_trip() {
        let all = [
            Response::Ok(Zeroizing::new(vec![0x90, 0x00])),
            Response::Ok(Zeroizing::new(Vec::new())),
            Response::Err(TransportError::CardRemoved),
            Response::Err(TransportError::CardReset),
            Response::Err(TransportError::NoReader),
            Response::Err(TransportError::NoService),
            Response::Err(TransportError::Timeout),
            Response::Err(TransportError::Cancelled),
            Response::Err(TransportError::Other("sharing violation".into())),
        ];
        for r in all {
            assert_eq!(Response::parse(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn long_error_text_is_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_ERROR_TEXT);
        let Response::Err(TransportError::Other(back)) =
            Response::parse(&Response::Err(TransportError::Other(text)).encode()).unwrap()
        else {
            panic!("not an Other error");
        };
        assert!(back.len() <= MAX_ERROR_TEXT);
        assert!(back.chars().all(|c| c == 'é'));
        // Invalid UTF-8 grows when replaced: still cut, and stable through a round trip.
        let invalid = [&[VERSION, ERR, 7][..], &[0xff; MAX_ERROR_TEXT]].concat();
        let parsed = Response::parse(&invalid).unwrap();
        let Response::Err(TransportError::Other(text)) = &parsed else {
            panic!("not an Other error");
        };
        assert!(text.len() <= MAX_ERROR_TEXT);
        assert_eq!(Response::parse(&parsed.encode()).unwrap(), parsed);
    }

    #[test]
    fn debug_shows_no_apdu_bytes() {
        let verify = Request::Transmit(Zeroizing::new(b"\x00\x20\x00\x80\x041234".to_vec()));
        assert_eq!(format!("{verify:?}"), "Transmit(<9 bytes>)");
        let answer = Response::Ok(Zeroizing::new(b"secret\x90\x00".to_vec()));
        assert_eq!(format!("{answer:?}"), "Ok(<8 bytes>)");
    }

    #[test]
    fn malformed_requests_are_errors() {
        for payload in [
            &[][..],
            &[VERSION],
            &[VERSION + 1, BEGIN],
            &[0, BEGIN],
            &[VERSION, 0x7f],
            &[VERSION, BEGIN, 0],
            &[VERSION, END, 1, 2],
            &[VERSION, CONNECT],
            &[VERSION, CONNECT, b'a', 0, b'b'],
            &[VERSION, TRANSMIT, 0, 0xa4, 0],
            &[VERSION, OK],
        ] {
            assert!(Request::parse(payload).is_err(), "{payload:02x?}");
        }
        let long_name = [&[VERSION, CONNECT][..], &[b'r'; MAX_READER_NAME + 1]].concat();
        assert!(Request::parse(&long_name).is_err());
    }

    #[test]
    fn malformed_responses_are_errors() {
        for payload in [
            &[][..],
            &[VERSION],
            &[VERSION + 1, OK],
            &[VERSION, ERR],
            &[VERSION, ERR, 0],
            &[VERSION, ERR, 8],
            &[VERSION, BEGIN],
        ] {
            assert!(Response::parse(payload).is_err(), "{payload:02x?}");
        }
    }

    #[test]
    fn frames_are_bounded_and_truncation_is_an_error() {
        assert!(read_frame(&mut &[][..]).unwrap().is_none());
        assert!(read_frame(&mut &[0, 0][..]).is_err());
        let too_long = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert_eq!(
            read_frame(&mut &too_long[..]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(read_frame(&mut &[0, 0, 0, 5, VERSION, BEGIN][..]).is_err());
        assert!(write_frame(&mut Vec::new(), &vec![0; MAX_FRAME + 1]).is_err());
        // Two frames back to back are read one at a time.
        let two = [
            frame(&Request::Begin.encode()),
            frame(&Request::End.encode()),
        ]
        .concat();
        let mut input = &two[..];
        assert_eq!(
            Request::parse(&read_frame(&mut input).unwrap().unwrap()).unwrap(),
            Request::Begin
        );
        assert_eq!(
            Request::parse(&read_frame(&mut input).unwrap().unwrap()).unwrap(),
            Request::End
        );
        assert!(read_frame(&mut input).unwrap().is_none());
    }
}
