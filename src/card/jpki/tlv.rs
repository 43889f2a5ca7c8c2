//! The one TLV reader of the card layer, so that a length bug is fixed in one place.
//!
//! Both kinds of file the module reads are framed by a BER header, which [`ber_header`] reads:
//! - the certificates: [`der_total_length`] tells from the first bytes of the file how long
//!   the certificate is, so that it is read in the fewest READ BINARY and never past its end.
//!   The header is read leniently (a length in more octets than needed is accepted: a card's
//!   slightly odd encoding must not hide its certificate); the certificate itself is then
//!   parsed strictly with the `der` crate (`pkcs11/cert.rs`).
//! - the files of the card's text application, which are BER-TLV, not DER (private tags such
//!   as `FF20`, `DF22`): [`ber_tlv`] and [`ber_total`].

use super::files::MAX_CERTIFICATE_LEN;
use crate::card::error::CardError;

/// The header of one BER-TLV: tag (1–3 bytes), where the value starts, value length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BerHeader {
    pub(super) tag: u32,
    pub(super) header_len: usize,
    pub(super) value_len: usize,
}

/// Why a BER header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BerError {
    /// A tag of more than 3 bytes.
    Tag,
    /// The indefinite length form (`80`).
    Indefinite,
    /// A length in more than 2 octets.
    LengthTooLong,
}

/// The BER-TLV header at the start of `bytes`: tags of 1–3 bytes, definite lengths of up to
/// 2 octets. `Ok(None)` when more bytes are needed.
pub(super) fn ber_header(bytes: &[u8]) -> Result<Option<BerHeader>, BerError> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    let mut tag = u32::from(first);
    let mut pos = 1;
    if first & 0x1F == 0x1F {
        loop {
            let Some(&b) = bytes.get(pos) else {
                return Ok(None);
            };
            tag = (tag << 8) | u32::from(b);
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
            if pos > 3 {
                return Err(BerError::Tag);
            }
        }
    }
    let Some(&l) = bytes.get(pos) else {
        return Ok(None);
    };
    pos += 1;
    let length_octets = match l {
        0x00..=0x7F => 0,
        0x80 => return Err(BerError::Indefinite),
        0x81 => 1,
        0x82 => 2,
        _ => return Err(BerError::LengthTooLong),
    };
    let Some(length) = bytes.get(pos..pos + length_octets) else {
        return Ok(None);
    };
    let value_len = match *length {
        [n] => usize::from(n),
        [h, n] => usize::from(u16::from_be_bytes([h, n])),
        _ => usize::from(l),
    };
    Ok(Some(BerHeader {
        tag,
        header_len: pos + length_octets,
        value_len,
    }))
}

/// The total length (header + content) of the certificate starting `bytes`, or `None` when
/// more bytes are needed to know. Only a SEQUENCE with a definite length ≤ 8 KiB is accepted.
pub(super) fn der_total_length(bytes: &[u8]) -> Result<Option<usize>, CardError> {
    let malformed = |what| Err(CardError::MalformedResponse(what));
    if bytes.len() < 2 {
        return Ok(None);
    }
    if bytes[0] != 0x30 {
        return malformed("not a DER SEQUENCE");
    }
    match ber_header(bytes) {
        Ok(None) => Ok(None),
        Ok(Some(h)) if h.header_len + h.value_len <= MAX_CERTIFICATE_LEN => {
            Ok(Some(h.header_len + h.value_len))
        }
        Err(BerError::Indefinite) => malformed("indefinite DER length"),
        Ok(Some(_)) | Err(_) => malformed("DER length too large"),
    }
}

const BAD_TLV: CardError = CardError::MalformedResponse("bad TLV in the text application");

/// One BER-TLV at the start of `bytes`: (tag, value, total length).
pub(super) fn ber_tlv(bytes: &[u8]) -> Result<(u32, &[u8], usize), CardError> {
    let h = ber_header(bytes).map_err(|_| BAD_TLV)?.ok_or(BAD_TLV)?;
    let end = h.header_len + h.value_len;
    let value = bytes.get(h.header_len..end).ok_or(BAD_TLV)?;
    Ok((h.tag, value, end))
}

/// The total length of the BER-TLV at the start of `bytes`, once its header is complete and
/// valid.
pub(super) fn ber_total(bytes: &[u8]) -> Option<usize> {
    match ber_header(bytes) {
        Ok(Some(h)) => Some(h.header_len + h.value_len),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(der_total_length(&[]), Ok(None));
        assert_eq!(der_total_length(&[0x30]), Ok(None));
        assert_eq!(der_total_length(&[0x30, 0x82, 0x05]), Ok(None));
        assert_eq!(der_total_length(&[0x30, 0x03, 1, 2, 3]), Ok(Some(5)));
        assert_eq!(der_total_length(&[0x30, 0x82, 0x05, 0x00]), Ok(Some(0x504)));
        assert_eq!(der_total_length(&[0x30, 0x81, 0x05]), Ok(Some(8)));
        for bad in [
            &[0x04, 0x01, 0][..],
            &[0x30, 0x80],
            &[0x30, 0x82, 0x20, 0x00],
        ] {
            assert!(der_total_length(bad).is_err(), "{bad:02X?}");
        }
    }

    #[test]
    fn ber_headers() {
        assert_eq!(ber_total(&[0xFF]), None);
        assert_eq!(ber_total(&[0xFF, 0x20, 0x81]), None);
        assert_eq!(ber_total(&[0xFF, 0x20, 0x81, 0x10]), Some(0x14));
        assert_eq!(
            ber_tlv(&[0xDF, 0x22, 0x02, b'a', b'b', 0]),
            Ok((0xDF22, &b"ab"[..], 5))
        );
        assert_eq!(ber_tlv(&[0x10, 0x03, 1]), Err(BAD_TLV));
        assert_eq!(ber_header(&[0x10, 0x83]), Err(BerError::LengthTooLong));
    }
}
