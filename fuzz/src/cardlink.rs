//! The card-link protocol (`transport::pcsc::cardlink`) on arbitrary bytes: the frame reader,
//! both parsers, and the helper's request loop over a simulated card.
//!
//! Invariants: no panic, no hang; a frame or request the parser accepts encodes back to the
//! same bytes; everything the helper writes back is a well-formed answer frame.

use jpki_pkcs11::transport::in_process::InProcessTransport;
use jpki_pkcs11::transport::pcsc::cardlink::protocol::{read_frame, Request, Response};
use jpki_pkcs11::transport::pcsc::cardlink::server::serve_with;
use jpki_pkcs11::transport::Transport;

use crate::ATR;

pub fn run(data: &[u8]) {
    // The parsers on the raw bytes, as one payload.
    if let Ok(request) = Request::parse(data) {
        assert_eq!(&request.encode()[..], data);
    }
    if let Ok(response) = Response::parse(data) {
        let again = response.encode();
        assert_eq!(Response::parse(&again).as_ref(), Ok(&response));
    }
    // The frame reader on the bytes as a stream.
    let mut input = data;
    while let Ok(Some(payload)) = read_frame(&mut input) {
        let _ = Request::parse(&payload);
    }
    // The helper's loop with the bytes as the module's requests.
    let mut output = Vec::new();
    let _stop = serve_with(&mut &data[..], &mut output, |_reader| {
        Ok(Box::new(InProcessTransport::new(ATR.to_vec(), |command| {
            let mut answer = command.to_vec();
            answer.extend_from_slice(&[0x90, 0x00]);
            answer
        })) as Box<dyn Transport>)
    });
    let mut written = &output[..];
    loop {
        match read_frame(&mut written) {
            Ok(Some(payload)) => {
                assert!(
                    Response::parse(&payload).is_ok(),
                    "the helper wrote a malformed answer"
                );
            }
            Ok(None) => break,
            Err(e) => panic!("the helper wrote a broken frame: {e}"),
        }
    }
}
