//! The length of the DER object at the start of a file, from its first bytes, so that a
//! certificate is read in the fewest READ BINARY and never past its end.

use super::files::MAX_CERTIFICATE_LEN;
use crate::card::error::CardError;

/// The total length (header + content) of the DER object starting `bytes`, or `None` when
/// more bytes are needed to know. Only a SEQUENCE with a definite length ≤ 8 KiB is accepted.
pub(super) fn der_total_length(bytes: &[u8]) -> Result<Option<usize>, CardError> {
    let (Some(&tag), Some(&first)) = (bytes.first(), bytes.get(1)) else {
        return Ok(None);
    };
    if tag != 0x30 {
        return Err(CardError::MalformedResponse("not a DER SEQUENCE"));
    }
    let (header, content) = match first {
        0x00..=0x7F => (2, usize::from(first)),
        0x81 => match bytes.get(2) {
            None => return Ok(None),
            Some(&l) => (3, usize::from(l)),
        },
        0x82 => match (bytes.get(2), bytes.get(3)) {
            (Some(&h), Some(&l)) => (4, usize::from(u16::from_be_bytes([h, l]))),
            _ => return Ok(None),
        },
        0x80 => return Err(CardError::MalformedResponse("indefinite DER length")),
        _ => return Err(CardError::MalformedResponse("DER length too large")),
    };
    let total = header + content;
    if total > MAX_CERTIFICATE_LEN {
        return Err(CardError::MalformedResponse("DER length too large"));
    }
    Ok(Some(total))
}
