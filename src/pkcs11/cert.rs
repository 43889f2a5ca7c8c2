//! What the core needs from a certificate, taken from the card's own bytes.
//!
//! The DER elements that become attributes (`CKA_SUBJECT`, `CKA_ISSUER`, `CKA_SERIAL_NUMBER`,
//! `CKA_PUBLIC_KEY_INFO`) are sliced out of the card's certificate as they are, never
//! re-encoded, so a slightly unusual certificate is still exposed byte for byte. Only the
//! RSA public key is parsed strictly (it is needed for verification anyway).

use der::{Decode, Encode, Header, Reader, SliceReader, Tag};
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};

/// A date as `CK_DATE` wants it: "YYYY", "MM", "DD" in ASCII.
pub type CkDate = [u8; 8];

/// A certificate read from the card, with the parts the attributes need.
#[derive(Clone)]
pub struct CertificateData {
    /// The certificate as the card returned it (trimmed to its DER length).
    pub der: Vec<u8>,
    /// DER of the serial number INTEGER (tag and length included).
    pub serial: Vec<u8>,
    /// Content octets of the serial number (big-endian two's complement).
    pub serial_value: Vec<u8>,
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    pub spki: Vec<u8>,
    pub not_before: Option<CkDate>,
    pub not_after: Option<CkDate>,
    pub public_key: RsaPublicKey,
}

impl std::fmt::Debug for CertificateData {
    // Never print certificate contents: the signature certificate carries personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateData({} bytes)", self.der.len())
    }
}

/// Why a certificate could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertError(pub &'static str);

/// One DER element: (tag, whole TLV, content).
type Element<'a> = (Tag, &'a [u8], &'a [u8]);

/// Splits `bytes` into its top-level TLVs.
fn elements(bytes: &[u8]) -> Result<Vec<Element<'_>>, CertError> {
    let mut out = Vec::new();
    let mut reader = SliceReader::new(bytes).map_err(|_| CertError("length"))?;
    while !reader.is_finished() {
        let header = reader.peek_header().map_err(|_| CertError("header"))?;
        let tlv = reader.tlv_bytes().map_err(|_| CertError("element"))?;
        let content_len = usize::try_from(header.length).map_err(|_| CertError("length"))?;
        let start = tlv
            .len()
            .checked_sub(content_len)
            .ok_or(CertError("length"))?;
        out.push((header.tag, tlv, &tlv[start..]));
    }
    Ok(out)
}

/// The first TLV of `bytes` (a file may hold filler after the certificate).
fn first_element(bytes: &[u8]) -> Result<&[u8], CertError> {
    let mut reader = SliceReader::new(bytes).map_err(|_| CertError("length"))?;
    let _ = Header::decode(&mut reader.clone()).map_err(|_| CertError("header"))?;
    reader.tlv_bytes().map_err(|_| CertError("certificate"))
}

/// `CK_DATE` from a UTCTime or GeneralizedTime content.
fn ck_date(tag: Tag, content: &[u8]) -> Option<CkDate> {
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let mut out = [0u8; 8];
    match tag {
        Tag::UtcTime if content.len() >= 6 && digits(&content[..6]) => {
            // RFC 5280 §4.1.2.5.1: YY >= 50 is 19YY, else 20YY.
            let century: &[u8] = if content[0] >= b'5' { b"19" } else { b"20" };
            out[..2].copy_from_slice(century);
            out[2..].copy_from_slice(&content[..6]);
        }
        Tag::GeneralizedTime if content.len() >= 8 && digits(&content[..8]) => {
            out.copy_from_slice(&content[..8]);
        }
        _ => return None,
    }
    Some(out)
}

impl CertificateData {
    /// Parses a certificate as read from the card.
    pub fn parse(file: &[u8]) -> Result<CertificateData, CertError> {
        let der = first_element(file)?;
        let cert = elements(der)?;
        let (tag, _, cert_content) = *cert.first().ok_or(CertError("empty"))?;
        if tag != Tag::Sequence {
            return Err(CertError("not a SEQUENCE"));
        }
        let parts = elements(cert_content)?;
        let (_, _, tbs_content) = *parts.first().ok_or(CertError("no tbsCertificate"))?;
        let tbs = elements(tbs_content)?;
        // Skip the optional [0] version.
        let skip = usize::from(
            tbs.first()
                .map(|(t, _, _)| t.octet() == 0xA0)
                .unwrap_or(false),
        );
        let field = |i: usize| {
            tbs.get(skip + i)
                .ok_or(CertError("tbsCertificate too short"))
        };
        let (serial_tag, serial, serial_value) = *field(0)?;
        if serial_tag != Tag::Integer {
            return Err(CertError("serial not an INTEGER"));
        }
        let (_, issuer, _) = *field(2)?;
        let (_, _, validity) = *field(3)?;
        let (_, subject, _) = *field(4)?;
        let (_, spki, _) = *field(5)?;
        let times = elements(validity)?;
        let not_before = times.first().and_then(|(t, _, c)| ck_date(*t, c));
        let not_after = times.get(1).and_then(|(t, _, c)| ck_date(*t, c));
        let public_key =
            RsaPublicKey::from_public_key_der(spki).map_err(|_| CertError("not an RSA key"))?;
        Ok(CertificateData {
            der: der.to_vec(),
            serial: serial.to_vec(),
            serial_value: serial_value.to_vec(),
            issuer: issuer.to_vec(),
            subject: subject.to_vec(),
            spki: spki.to_vec(),
            not_before,
            not_after,
            public_key,
        })
    }

    /// Modulus, big-endian, no leading zero.
    pub fn modulus(&self) -> Vec<u8> {
        self.public_key.n().to_bytes_be()
    }

    /// Public exponent, big-endian.
    pub fn public_exponent(&self) -> Vec<u8> {
        self.public_key.e().to_bytes_be()
    }

    /// Modulus length in bits.
    pub fn modulus_bits(&self) -> usize {
        self.public_key.n().bits()
    }
}

/// Whether `ca` is the certificate of the CA that issued `cert`, as far as the two say without
/// a signature check: `cert`'s issuer name is `ca`'s subject name, byte for byte, and `cert`'s
/// authority key identifier is `ca`'s subject key identifier (both must be present). The
/// certificate cache serves a CA certificate on the strength of the certificate it issued only
/// when this holds (`cert_source.rs`); a certificate without key identifiers is never vouched
/// for this way, it is checked against the card instead.
pub fn issued_by(cert: &[u8], ca: &[u8]) -> bool {
    let (Ok(cert), Ok(ca)) = (
        x509_cert::Certificate::from_der(trimmed(cert)),
        x509_cert::Certificate::from_der(trimmed(ca)),
    ) else {
        return false;
    };
    let (Ok(issuer), Ok(subject)) = (
        cert.tbs_certificate.issuer.to_der(),
        ca.tbs_certificate.subject.to_der(),
    ) else {
        return false;
    };
    let aki = extension::<AuthorityKeyIdentifier>(&cert).and_then(|a| a.key_identifier);
    let ski = extension::<SubjectKeyIdentifier>(&ca);
    match (aki, ski) {
        (Some(aki), Some(ski)) => issuer == subject && aki.as_bytes() == ski.0.as_bytes(),
        _ => false,
    }
}

/// The DER object at the start of `bytes` (or `bytes` as they are, for the parser to refuse).
fn trimmed(bytes: &[u8]) -> &[u8] {
    first_element(bytes).unwrap_or(bytes)
}

/// The extension `T` of a certificate, if present once and well-formed.
fn extension<'a, T>(cert: &'a x509_cert::Certificate) -> Option<T>
where
    T: der::Decode<'a> + der::oid::AssociatedOid,
{
    let mut found = cert
        .tbs_certificate
        .extensions
        .as_deref()?
        .iter()
        .filter(|e| e.extn_id == T::OID);
    let ext = found.next()?;
    if found.next().is_some() {
        return None;
    }
    T::from_der(ext.extn_value.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::issued_by;
    use jpki_virtual_card::{test_state, test_state_b};

    #[test]
    fn a_ca_vouches_only_for_the_certificates_it_issued() {
        let (a, b) = (test_state(), test_state_b());
        assert!(issued_by(&a.auth_cert, &a.auth_ca_cert));
        assert!(issued_by(&a.sign_cert, &a.sign_ca_cert));
        // The other hierarchy: another name.
        assert!(!issued_by(&a.auth_cert, &a.sign_ca_cert));
        // Another card's CA: the same name, another key (identifier).
        assert!(!issued_by(&a.auth_cert, &b.auth_ca_cert));
        assert!(!issued_by(&a.sign_cert, &b.sign_ca_cert));
        // Filler after the DER object (as a card's EF holds it) is ignored.
        let mut filled = a.auth_ca_cert.clone();
        filled.extend_from_slice(&[0xFF; 16]);
        assert!(issued_by(&a.auth_cert, &filled));
        // Damaged or cut bytes vouch for nothing.
        assert!(!issued_by(&a.auth_cert, &a.auth_ca_cert[..256]));
        assert!(!issued_by(&a.auth_cert[..256], &a.auth_ca_cert));
        assert!(!issued_by(&[], &a.auth_ca_cert));
    }
}
