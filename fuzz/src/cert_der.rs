//! The core's certificate slicer (`CertificateData::parse`) on arbitrary bytes.
//!
//! Invariants: no panic; what it accepts starts the input and holds each part it reports; on
//! every input a strict X.509 parser accepts as one certificate with an RSA key, it succeeds
//! too and gives the same serial number, issuer, subject and SubjectPublicKeyInfo encodings
//! (the attributes must be the card's bytes, never something else).

use der::{Decode, Encode};
use jpki_pkcs11::pkcs11::cert::CertificateData;
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;

pub fn run(data: &[u8]) {
    let ours = CertificateData::parse(data);
    if let Ok(c) = &ours {
        assert!(data.starts_with(&c.der));
        for part in [&c.serial, &c.issuer, &c.subject, &c.spki] {
            assert!(part.len() < c.der.len());
        }
        assert!(c.serial_value.len() < c.serial.len());
        assert!(!c.modulus().is_empty());
        assert!(c.key_len() > 0);
    }
    let Ok(cert) = x509_cert::Certificate::from_der(data) else {
        return;
    };
    let tbs = &cert.tbs_certificate;
    let Ok(spki) = tbs.subject_public_key_info.to_der() else {
        return;
    };
    if RsaPublicKey::from_public_key_der(&spki).is_err() {
        return;
    }
    let c = match ours {
        Ok(c) => c,
        Err(e) => panic!("a valid RSA certificate was refused: {e:?}"),
    };
    assert_eq!(c.der, data);
    assert_eq!(Ok(c.serial), tbs.serial_number.to_der());
    assert_eq!(Ok(c.issuer), tbs.issuer.to_der());
    assert_eq!(Ok(c.subject), tbs.subject.to_der());
    assert_eq!(c.spki, spki);
}
