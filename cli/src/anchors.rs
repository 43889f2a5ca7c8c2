//! The real J-LIS (地方公共団体情報システム機構) JPKI CA certificates, pinned by SHA-256.
//!
//! Every generation of a purpose has the same distinguished name (`C=JP, O=JPKI, OU=JPKI for
//! digital signature, OU=Japan Agency for Local Authority Information Systems` for the
//! signature CA), so an issuer is chosen by verifying the signature, never by its name.
//!
//! What is pinned and where it comes from (see docs/trust-anchors.md):
//! - signature CA generations 01 (2015-10-20 – 2025-10-19, expired; kept to check old
//!   signatures), 02 (2019-09-14 – 2029-09-14) and 03 (2023-07-16 – 2033-07-15): each
//!   fingerprint was computed here from a copy of the certificate carried by a public
//!   open-source JPKI signer (repository nunnun/jpki-local-signer, files
//!   `Sources/SelfVerify/TrustAnchors/jpki-signca0N.cer`), whose self-signature verifies and
//!   whose validity and serial match the generation; that repository's build notes require its
//!   fingerprints to be compared with the values J-LIS publishes. **One source** links them to
//!   J-LIS.
//! - authentication CA generations: **not pinned** (no public copy found yet). The
//!   authentication CA of a card is therefore reported as "not checked", never as forged.
//!
//! The certificates themselves are shipped (`cli/anchors/jpki-signca0N.der`, the bytes of those
//! copies), compiled in, and each is checked against its pin by a unit test. Only the `jpki`
//! command uses them (the module does not judge certificates), so they live in this crate.

use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// Which key a CA certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Authentication,
    Signature,
}

/// One pinned CA certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub purpose: Purpose,
    /// `01`, `02`, `03`.
    pub generation: &'static str,
    pub not_before: &'static str,
    pub not_after: &'static str,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256: &'static str,
    /// How many independent sources confirm the fingerprint as J-LIS's.
    pub sources: u8,
    /// The certificate (DER), as shipped in `cli/anchors/`.
    pub der: &'static [u8],
}

/// The pinned anchors.
pub const ANCHORS: [Anchor; 3] = [
    Anchor {
        purpose: Purpose::Signature,
        generation: "01",
        not_before: "2015-10-20",
        not_after: "2025-10-19",
        sha256: "19645405a1fe14377434bd55957628ac4038557c542403a2243f21c706fc9355",
        sources: 1,
        der: include_bytes!("../anchors/jpki-signca01.der"),
    },
    Anchor {
        purpose: Purpose::Signature,
        generation: "02",
        not_before: "2019-09-14",
        not_after: "2029-09-14",
        sha256: "79679c33e4cc9319440f1ad120a597ff1844e2ef217063adb176966fd5e6fbeb",
        sources: 1,
        der: include_bytes!("../anchors/jpki-signca02.der"),
    },
    Anchor {
        purpose: Purpose::Signature,
        generation: "03",
        not_before: "2023-07-16",
        not_after: "2033-07-15",
        sha256: "d227f6cde11d35c5252178f106f843d24651944975413b539fa2fb68dbfa365f",
        sources: 1,
        der: include_bytes!("../anchors/jpki-signca03.der"),
    },
];

/// Whether any generation of `purpose` is pinned.
pub fn pinned(purpose: Purpose) -> bool {
    ANCHORS.iter().any(|a| a.purpose == purpose)
}

/// The pinned anchor `der` is, if its fingerprint is pinned and its self-signature verifies.
pub fn identify(der: &[u8]) -> Option<&'static Anchor> {
    let fp = jpki_pkcs11::pkcs11::hex::encode(&Sha256::digest(der), false);
    let anchor = ANCHORS.iter().find(|a| a.sha256 == fp)?;
    let cert = Certificate::from_der(der).ok()?;
    issued_by(&cert, &cert).then_some(anchor)
}

/// What a card's CA certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaCheck {
    /// A pinned J-LIS CA of the right purpose, self-signature verified.
    Genuine(&'static Anchor),
    /// Not a J-LIS CA: a test card, or a forged one.
    NotJlis,
    /// No generation of that purpose is pinned: nothing can be said.
    NotChecked,
}

/// Judges the CA certificate `der` a card carries for `purpose`.
pub fn check_ca(der: &[u8], purpose: Purpose) -> CaCheck {
    match identify(der) {
        Some(a) if a.purpose == purpose => CaCheck::Genuine(a),
        _ if !pinned(purpose) => CaCheck::NotChecked,
        _ => CaCheck::NotJlis,
    }
}

/// The shipped anchor of `purpose` whose key verifies `cert` (all generations share one name,
/// so the issuer is found by its signature). No time check: a signature made under an expired
/// generation still verifies.
pub fn issuer_of(cert: &Certificate, purpose: Purpose) -> Option<&'static Anchor> {
    ANCHORS
        .iter()
        .filter(|a| a.purpose == purpose)
        .find(|a| Certificate::from_der(a.der).is_ok_and(|ca| issued_by(cert, &ca)))
}

/// Whether `issuer`'s key verifies `cert`'s signature (sha256WithRSAEncryption) and `cert`
/// names it as issuer. The one issuer check of the command (`jpki verify`, with `--ca` or not).
pub fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    const SHA256_WITH_RSA: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    if cert.signature_algorithm.oid != SHA256_WITH_RSA
        || cert.tbs_certificate.issuer != issuer.tbs_certificate.subject
    {
        return false;
    }
    let (Ok(tbs), Some(sig), Ok(spki)) = (
        cert.tbs_certificate.to_der(),
        cert.signature.as_bytes(),
        issuer.tbs_certificate.subject_public_key_info.to_der(),
    ) else {
        return false;
    };
    let Ok(key) = RsaPublicKey::from_public_key_der(&spki) else {
        return false;
    };
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&tbs), sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_well_formed_and_distinct() {
        for a in ANCHORS {
            assert_eq!(a.sha256.len(), 64, "{}", a.generation);
            assert!(a
                .sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        assert!(pinned(Purpose::Signature));
        assert!(!pinned(Purpose::Authentication));
    }

    /// Each shipped certificate matches its pin, verifies its own self-signature, and has the
    /// validity, subject and key the table and docs/trust-anchors.md say.
    #[test]
    fn shipped_certificates_match_their_pins() {
        for a in &ANCHORS {
            assert_eq!(identify(a.der), Some(a), "generation {}", a.generation);
            let cert = Certificate::from_der(a.der).expect("parse");
            assert!(issued_by(&cert, &cert), "self-signed, {}", a.generation);
            let date = |t: &x509_cert::time::Time| {
                let d = t.to_date_time();
                format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
            };
            let v = &cert.tbs_certificate.validity;
            assert_eq!(date(&v.not_before), a.not_before, "{}", a.generation);
            assert_eq!(date(&v.not_after), a.not_after, "{}", a.generation);
            assert_eq!(
                cert.tbs_certificate.subject.to_string(),
                // RFC 4514 order: the last RDN first.
                "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,O=JPKI,C=JP",
                "{}",
                a.generation
            );
        }
    }

    /// All generations carry one name: the issuer must be the one whose key verifies. Each
    /// self-signed generation is issued by itself, not by the first anchor of that name.
    #[test]
    fn the_issuer_is_found_by_its_signature_not_its_name() {
        for a in &ANCHORS {
            let cert = Certificate::from_der(a.der).expect("parse");
            assert_eq!(
                issuer_of(&cert, Purpose::Signature),
                Some(a),
                "{}",
                a.generation
            );
            assert_eq!(issuer_of(&cert, Purpose::Authentication), None);
        }
        let state = jpki_virtual_card::CardState::generate(7);
        let leaf = Certificate::from_der(&state.sign_cert).expect("parse");
        assert_eq!(
            issuer_of(&leaf, Purpose::Signature),
            None,
            "a test card's certificate"
        );
    }

    #[test]
    fn a_test_ca_is_not_an_anchor() {
        let state = jpki_virtual_card::CardState::generate(7);
        assert!(identify(&state.sign_ca_cert).is_none());
        let ca = Certificate::from_der(&state.sign_ca_cert).expect("parse");
        let leaf = Certificate::from_der(&state.sign_cert).expect("parse");
        assert!(
            issued_by(&leaf, &ca),
            "the test CA issued the test certificate"
        );
        assert!(issued_by(&ca, &ca), "self-signed");
        let auth_ca = Certificate::from_der(&state.auth_ca_cert).expect("parse");
        assert!(!issued_by(&leaf, &auth_ca), "another CA does not verify it");
    }
}
