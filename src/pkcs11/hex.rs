//! The one hexadecimal encoder of the module (token serial numbers, `CKA_UNIQUE_ID`).

use std::fmt::Write;

/// `bytes` as hexadecimal digits, two per byte, upper-case if `upper`.
pub fn encode(bytes: &[u8], upper: bool) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = if upper {
            write!(out, "{b:02X}")
        } else {
            write!(out, "{b:02x}")
        };
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_both_cases() {
        assert_eq!(super::encode(&[0x00, 0xAB, 0x7F], true), "00AB7F");
        assert_eq!(super::encode(&[0x00, 0xAB, 0x7F], false), "00ab7f");
        assert_eq!(super::encode(&[], true), "");
    }
}
