//! The helper's side of the card link: one PC/SC connection, driven by the module's requests.
//!
//! The card is reached through [`PcscTransport`]'s inline path (the same code a host with
//! threads runs in its worker): resets by another party, removals and pcscd restarts are
//! handled there, and their errors travel back as they are. The helper has no time bound of
//! its own; the module's socket timeouts are the bound, and the module kills a helper that
//! does not answer in time.

use std::ffi::CString;
use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use super::protocol::{read_frame, write_frame, ProtocolError, Request, Response};
use crate::transport::pcsc::PcscTransport;
use crate::transport::{Channel, Transport, TransportError};

/// Why the helper stopped.
#[derive(Debug)]
pub enum Stop {
    /// The module closed the link (the normal end: the module disconnected or is gone).
    Closed,
    /// The link failed (the module was killed mid-frame, …).
    Io(io::Error),
    /// The module sent something that is not this protocol (answered, then stopped).
    Protocol(ProtocolError),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Closed => f.write_str("the module closed the link"),
            Stop::Io(e) => write!(f, "link failed: {e}"),
            Stop::Protocol(e) => e.fmt(f),
        }
    }
}

/// Serves one connection until the module closes the link. The first request must be
/// `Connect`; the card is disconnected (left as it is) when this returns.
pub fn serve(input: &mut impl Read, output: &mut impl Write) -> Stop {
    serve_with(input, output, |reader| {
        PcscTransport::connect_inline(reader).map(|t| Box::new(t) as Box<dyn Transport>)
    })
}

/// [`serve`] with the connection made by `connect` (unit tests and the fuzz target `cardlink`
/// connect to a simulated card).
pub fn serve_with(
    input: &mut impl Read,
    output: &mut impl Write,
    connect: impl FnOnce(CString) -> Result<Box<dyn Transport>, TransportError>,
) -> Stop {
    let reader = match next(input, output) {
        Ok(Request::Connect(name)) => name,
        Ok(other) => return refuse(output, format!("{other:?} before Connect")),
        Err(stop) => return stop,
    };
    let reader = match CString::new(reader) {
        Ok(r) => r,
        Err(_) => return refuse(output, "reader name with a NUL".into()),
    };
    let mut transport = match connect(reader) {
        Ok(t) => t,
        Err(e) => {
            return match answer(output, Response::Err(e)) {
                Ok(()) => Stop::Closed,
                Err(stop) => stop,
            }
        }
    };
    if let Err(stop) = answer(output, Response::Ok(Zeroizing::new(transport.atr()))) {
        return stop;
    }
    loop {
        let request = match next(input, output) {
            Ok(r) => r,
            Err(stop) => return stop,
        };
        let response = match request {
            Request::Connect(_) => return refuse(output, "a second Connect".into()),
            Request::Begin => match transport.begin() {
                Ok(channel) => {
                    if let Err(stop) = answer(output, Response::Ok(Zeroizing::new(Vec::new()))) {
                        return stop;
                    }
                    if let Err(stop) = serve_transaction(channel, input, output) {
                        return stop;
                    }
                    continue;
                }
                Err(e) => Response::Err(e),
            },
            Request::Transmit(_) => Response::Err(TransportError::Other(
                "no transaction: SCardBeginTransaction first".into(),
            )),
            Request::End => continue,
            Request::Status => match transport.status() {
                Ok(()) => Response::Ok(Zeroizing::new(Vec::new())),
                Err(e) => Response::Err(e),
            },
            Request::Atr => Response::Ok(Zeroizing::new(transport.atr())),
        };
        if let Err(stop) = answer(output, response) {
            return stop;
        }
    }
}

/// Transmits inside one transaction until `End` (the transaction ends when `channel` drops).
fn serve_transaction(
    mut channel: Box<dyn Channel + '_>,
    input: &mut impl Read,
    output: &mut impl Write,
) -> Result<(), Stop> {
    loop {
        let response = match next(input, output)? {
            Request::End => return Ok(()),
            Request::Transmit(command) => match channel.transmit(&command) {
                Ok(answer) => Response::Ok(Zeroizing::new(answer)),
                Err(e) => Response::Err(e),
            },
            // The module holds the transaction's channel while it transmits: it cannot ask
            // for these now. Answered, not fatal.
            Request::Begin | Request::Status | Request::Atr => {
                Response::Err(TransportError::Other("not inside a transaction".into()))
            }
            Request::Connect(_) => return Err(refuse(output, "a second Connect".into())),
        };
        answer(output, response)?;
    }
}

/// The next request; a malformed one is answered with an error and stops the helper (the
/// framing can no longer be trusted).
fn next(input: &mut impl Read, output: &mut impl Write) -> Result<Request, Stop> {
    match read_frame(input) {
        Ok(Some(payload)) => Request::parse(&payload).map_err(|e| {
            let text = e.to_string();
            let _ = answer(output, Response::Err(TransportError::Other(text)));
            Stop::Protocol(e)
        }),
        Ok(None) => Err(Stop::Closed),
        Err(e) => Err(Stop::Io(e)),
    }
}

fn answer(output: &mut impl Write, response: Response) -> Result<(), Stop> {
    write_frame(output, &response.encode()).map_err(Stop::Io)
}

fn refuse(output: &mut impl Write, why: String) -> Stop {
    let _ = answer(output, Response::Err(TransportError::Other(why.clone())));
    Stop::Protocol(ProtocolError(why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::in_process::InProcessTransport;

    fn frames(requests: &[Request]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in requests {
            write_frame(&mut out, &r.encode()).unwrap();
        }
        out
    }

    fn answers(mut bytes: &[u8]) -> Vec<Response> {
        let mut out = Vec::new();
        while let Some(p) = read_frame(&mut bytes).unwrap() {
            out.push(Response::parse(&p).unwrap());
        }
        out
    }

    /// A simulated card that answers every command with its own bytes reversed, then 90 00.
    fn card(_reader: CString) -> Result<Box<dyn Transport>, TransportError> {
        Ok(Box::new(InProcessTransport::new(vec![0x3b, 0x01], |c| {
            let mut r: Vec<u8> = c.iter().rev().copied().collect();
            r.extend_from_slice(&[0x90, 0x00]);
            r
        })))
    }

    #[test]
    fn serves_a_transaction_then_stops_when_the_module_closes() {
        let input = frames(&[
            Request::Connect(b"reader".to_vec()),
            Request::Status,
            Request::Begin,
            Request::Transmit(Zeroizing::new(vec![1, 2, 3, 4])),
            Request::End,
            Request::Transmit(Zeroizing::new(vec![1, 2, 3, 4])),
            Request::Atr,
        ]);
        let mut output = Vec::new();
        let stop = serve_with(&mut &input[..], &mut output, card);
        assert!(matches!(stop, Stop::Closed), "{stop}");
        let got = answers(&output);
        assert_eq!(got.len(), 6);
        assert_eq!(got[0], Response::Ok(Zeroizing::new(vec![0x3b, 0x01])));
        assert_eq!(got[1], Response::Ok(Zeroizing::new(Vec::new())));
        assert_eq!(got[2], Response::Ok(Zeroizing::new(Vec::new())));
        assert_eq!(
            got[3],
            Response::Ok(Zeroizing::new(vec![4, 3, 2, 1, 0x90, 0x00]))
        );
        // Outside a transaction a transmit is refused, and the helper goes on.
        assert!(matches!(got[4], Response::Err(TransportError::Other(_))));
        assert_eq!(got[5], Response::Ok(Zeroizing::new(vec![0x3b, 0x01])));
    }

    #[test]
    fn the_first_request_must_be_connect() {
        let input = frames(&[Request::Begin]);
        let mut output = Vec::new();
        let stop = serve_with(&mut &input[..], &mut output, card);
        assert!(matches!(stop, Stop::Protocol(_)));
        assert!(matches!(answers(&output)[..], [Response::Err(_)]));
    }

    #[test]
    fn a_failed_connect_is_answered_and_ends_the_helper() {
        let input = frames(&[Request::Connect(b"gone".to_vec()), Request::Status]);
        let mut output = Vec::new();
        let stop = serve_with(&mut &input[..], &mut output, |_| {
            Err(TransportError::NoReader)
        });
        assert!(matches!(stop, Stop::Closed));
        assert_eq!(answers(&output), [Response::Err(TransportError::NoReader)]);
    }

    #[test]
    fn garbage_is_answered_and_stops_the_helper() {
        let mut input = frames(&[Request::Connect(b"reader".to_vec())]);
        input.extend_from_slice(&[0, 0, 0, 2, 9, 9]);
        let mut output = Vec::new();
        let stop = serve_with(&mut &input[..], &mut output, card);
        assert!(matches!(stop, Stop::Protocol(_)));
        let got = answers(&output);
        assert_eq!(got.len(), 2);
        assert!(matches!(got[1], Response::Err(TransportError::Other(_))));
        // A truncated frame is a link failure, not a hang.
        let mut input = frames(&[Request::Connect(b"reader".to_vec())]);
        input.extend_from_slice(&[0, 0, 0, 9, 1]);
        let stop = serve_with(&mut &input[..], &mut Vec::new(), card);
        assert!(matches!(stop, Stop::Io(_)));
    }
}
