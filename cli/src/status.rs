//! `jpki status`: readers, card, applications, tries left on every PIN (never spending one),
//! the authentication certificate and the CA certificates, RSA-PSS support.
//!
//! Each CA certificate is checked against the pinned J-LIS anchors (anchors.rs): genuine, not a
//! J-LIS CA (a test or forged card), or not checked.
//!
//! Never shown: the signature certificate (name, address, birth date: readable only with the
//! password) and anything of the card-info application beyond its PIN counter.
//! Selecting the other applications (to see which answer, and the kenhojo PIN counter) clears
//! the card's security state: a program logged in to the card at that moment must log in again.

use std::collections::BTreeMap;

use jpki_pkcs11::card::{Application, CardError, CertificateFile, JpkiCard, KenhojoPin, KeyKind};
use jpki_pkcs11::transport::pcsc::PcscReaders;
use jpki_pkcs11::transport::Readers;
use serde::Serialize;

use super::anchors::{self, CaCheck, Purpose};
use super::args::Args;
use super::common::{self, card_failure, summarize, CertSummary, Exit, Failure, Progress, Report};

/// What `jpki status` reports (`--json` prints it as is; the text form is printed from it).
#[derive(Serialize)]
struct StatusReport {
    readers: Vec<ReaderReport>,
}

#[derive(Serialize)]
struct ReaderReport {
    name: String,
    card_present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    atr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    my_number_card: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    card: Option<CardReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Everything about one My Number Card that needs no PIN.
#[derive(Serialize)]
struct CardReport {
    token_label: String,
    /// Application id → whether it answers SELECT.
    applications: BTreeMap<&'static str, bool>,
    tries_left: Tries,
    max_tries: Tries,
    certificates: BTreeMap<&'static str, CertEntry>,
    signature_certificate: &'static str,
    rsa_pss: Option<bool>,
}

/// One number per PIN (`None`: unknown, e.g. no card-info application).
#[derive(Serialize)]
struct Tries {
    authentication: Option<u8>,
    signature: Option<u8>,
    kenhojo: Option<u8>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CertEntry {
    Summary {
        #[serde(flatten)]
        summary: CertSummary,
        /// For a CA certificate: whether it is a genuine J-LIS one (anchors.rs).
        #[serde(skip_serializing_if = "Option::is_none")]
        jlis: Option<JlisReport>,
    },
    Error {
        error: String,
    },
}

/// `genuine` (with its generation), `not_jlis` (a test card or a forged one), or `not_checked`
/// (no generation of that purpose is pinned).
#[derive(Serialize)]
struct JlisReport {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<&'static str>,
    /// How many independent sources confirm the pinned fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<u8>,
}

impl JlisReport {
    fn of(check: CaCheck) -> JlisReport {
        match check {
            CaCheck::Genuine(a) => JlisReport {
                status: "genuine",
                generation: Some(a.generation),
                sources: Some(a.sources),
            },
            CaCheck::NotJlis => JlisReport {
                status: "not_jlis",
                generation: None,
                sources: None,
            },
            CaCheck::NotChecked => JlisReport {
                status: "not_checked",
                generation: None,
                sources: None,
            },
        }
    }
}

/// Upper-case hexadecimal bytes separated by spaces (how ATRs are written), through the
/// module's one encoder.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| jpki_pkcs11::pkcs11::hex::encode(&[*b], true))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The entry of certificate `file`: the holder's own gets the renewal advice, a CA's the J-LIS
/// check.
fn cert_entry(der: &[u8], file: CertificateFile) -> CertEntry {
    match summarize(der) {
        Some(mut summary) => {
            let purpose = match file {
                CertificateFile::AuthenticationCa => Some(Purpose::Authentication),
                CertificateFile::SignatureCa => Some(Purpose::Signature),
                _ => None,
            };
            if purpose.is_none() {
                summary.warning = summary.renewal.advice();
            }
            CertEntry::Summary {
                summary,
                jlis: purpose.map(|p| JlisReport::of(anchors::check_ca(der, p))),
            }
        }
        None => CertEntry::Error {
            error: "unparsable certificate".into(),
        },
    }
}

/// Everything about one My Number Card (no PIN, no try spent).
fn card_report(card: &mut JpkiCard) -> Result<CardReport, Failure> {
    let fail = |e| card_failure(e, "card");
    let token_label = card.token_label().unwrap_or_default();
    let apps = card.applications().map_err(fail)?;
    let has_text = apps
        .iter()
        .any(|(a, present)| *a == Application::Text && *present);
    let applications = apps
        .iter()
        .map(|(app, present)| (app.id(), *present))
        .collect();
    let kenhojo = if has_text {
        card.kenhojo_tries_left().ok()
    } else {
        None
    };
    let auth = card.pin_tries_left(KeyKind::Authentication).map_err(fail)?;
    let sign = card.pin_tries_left(KeyKind::Signature).map_err(fail)?;
    let mut certificates = BTreeMap::new();
    for (name, file) in [
        ("authentication", CertificateFile::Authentication),
        ("authentication_ca", CertificateFile::AuthenticationCa),
        ("signature_ca", CertificateFile::SignatureCa),
    ] {
        let entry = match card.read_certificate(file) {
            Ok(der) => cert_entry(&der, file),
            // A smartphone token (docs/phone-token.md); status asks no PIN.
            Err(CardError::SecurityStatusNotSatisfied) => CertEntry::Error {
                error: "readable only after the authentication PIN (smartphone token)".into(),
            },
            Err(e) => CertEntry::Error {
                error: e.to_string(),
            },
        };
        certificates.insert(name, entry);
    }
    let rsa_pss = card.pss_support().ok();
    Ok(CardReport {
        token_label,
        applications,
        tries_left: Tries {
            authentication: Some(auth),
            signature: Some(sign),
            kenhojo,
        },
        max_tries: Tries {
            authentication: Some(KeyKind::Authentication.max_tries()),
            signature: Some(KeyKind::Signature.max_tries()),
            kenhojo: Some(KenhojoPin::MAX_TRIES),
        },
        certificates,
        signature_certificate:
            "not shown (personal data; readable only with the signature password)",
        rsa_pss,
    })
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let readers = PcscReaders::new();
    let list = common::list_readers(&readers)?;
    let mut out = Vec::new();
    let mut found_jpki = false;
    let mut found_card = false;
    for r in &list {
        if args.reader.as_ref().is_some_and(|n| n != &r.name) {
            continue;
        }
        let mut entry = ReaderReport {
            name: r.name.clone(),
            card_present: r.card_present,
            atr: None,
            my_number_card: None,
            card: None,
            error: None,
        };
        if r.card_present {
            found_card = true;
            entry.atr = Some(hex(&r.atr));
            match readers.connect(&r.name) {
                Ok(t) => {
                    let mut card = JpkiCard::new(t);
                    let progress = Progress::start("reading the card…");
                    match card.is_jpki() {
                        Ok(true) => {
                            entry.my_number_card = Some(true);
                            match card_report(&mut card) {
                                Ok(v) => {
                                    found_jpki = true;
                                    entry.card = Some(v);
                                }
                                Err(f) => entry.error = Some(f.message),
                            }
                        }
                        Ok(false) => entry.my_number_card = Some(false),
                        Err(e) => entry.error = Some(e.to_string()),
                    }
                    drop(progress);
                }
                Err(e) => entry.error = Some(e.to_string()),
            }
        }
        out.push(entry);
    }
    common::output(args, &StatusReport { readers: out });
    if list.is_empty() {
        return Err(Failure::new(Exit::NoCard, "no smart-card reader found")
            .hint("plug in a reader; `jpki doctor` checks more"));
    }
    if found_jpki {
        Ok(())
    } else if found_card {
        Err(common::not_jpki_failure())
    } else {
        Err(Failure::new(Exit::NoCard, "no card in any reader")
            .hint("insert your My Number Card (or place it on the NFC reader)"))
    }
}

fn yes(v: Option<&bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

impl Report for StatusReport {
    fn human(&self) {
        if self.readers.is_empty() {
            println!("No smart-card reader.");
        }
        for r in &self.readers {
            r.human();
        }
    }
}

impl ReaderReport {
    fn human(&self) {
        println!("Reader: {}", self.name);
        if !self.card_present {
            println!("  Card: none");
            return;
        }
        println!(
            "  Card: present (ATR {})",
            self.atr.as_deref().unwrap_or("")
        );
        if let Some(e) = &self.error {
            println!("  Error: {e}");
        }
        if self.my_number_card == Some(false) {
            println!("  My Number Card: no (no JPKI application)");
            return;
        }
        if let Some(c) = &self.card {
            c.human();
        }
    }
}

impl CardReport {
    fn human(&self) {
        println!("  My Number Card: yes ({})", self.token_label);
        let list: Vec<String> = Application::ALL
            .iter()
            .map(|a| format!("{} {}", a.id(), yes(self.applications.get(a.id()))))
            .collect();
        println!("  Applications: {}", list.join(", "));
        let tries = |left: Option<u8>, max: Option<u8>| match (left, max) {
            (Some(0), _) => "BLOCKED".to_string(),
            (Some(n), Some(m)) => format!("{n}/{m}"),
            (Some(n), None) => n.to_string(),
            (None, _) => "unknown".to_string(),
        };
        let (t, m) = (&self.tries_left, &self.max_tries);
        println!(
            "  Tries left: authentication PIN {}, signature password {}, card-info PIN {}",
            tries(t.authentication, m.authentication),
            tries(t.signature, m.signature),
            tries(t.kenhojo, m.kenhojo)
        );
        for (key, name) in [
            ("authentication", "Authentication certificate"),
            ("authentication_ca", "Authentication CA"),
            ("signature_ca", "Signature CA"),
        ] {
            let (cert, jlis) = match self.certificates.get(key) {
                Some(CertEntry::Summary { summary, jlis }) => (summary, jlis),
                Some(CertEntry::Error { error }) => {
                    println!("  {name}: {error}");
                    continue;
                }
                None => continue,
            };
            let when = if cert.days_left < 0 {
                "EXPIRED".to_string()
            } else {
                format!("{} days left", cert.days_left)
            };
            if key == "authentication" {
                println!("  {name}: {}", cert.subject);
                println!(
                    "    valid {} to {} ({when})",
                    cert.not_before, cert.not_after
                );
                if let Some(w) = &cert.warning {
                    println!("    WARNING: the certificate {w}");
                }
            } else {
                println!("  {name}: valid to {} ({when})", cert.not_after);
                match jlis.as_ref().map(|j| (j.status, j.generation)) {
                    Some(("genuine", generation)) => println!(
                        "    genuine J-LIS CA, generation {}",
                        generation.unwrap_or("?")
                    ),
                    Some(("not_jlis", _)) => println!(
                        "    NOT a J-LIS CA: a test card, or a forged one (its signatures are not the holder's)"
                    ),
                    Some(_) => {
                        println!("    not checked against J-LIS (no generation of it is pinned)")
                    }
                    None => {}
                }
            }
        }
        println!("  Signature certificate: not shown (personal data; `jpki certs export --sign`)");
        let pss = match self.rsa_pss {
            Some(true) => "supported (TLS 1.3 client authentication works)",
            Some(false) => {
                "not supported (TLS 1.3 client authentication is not possible; use TLS 1.2)"
            }
            None => "unknown",
        };
        println!("  RSA-PSS: {pss}");
    }
}
