//! `jpki status`: readers, card, applications, tries left on every PIN (never spending one),
//! the authentication certificate and the CA certificates, RSA-PSS support.
//!
//! Never shown: the signature certificate (name, address, birth date: readable only with the
//! password) and anything of the card-info application beyond its PIN counter.
//! Selecting the other applications (to see which answer, and the kenhojo PIN counter) clears
//! the card's security state: a program logged in to the card at that moment must log in again.

use jpki_pkcs11::anchors::{self, Purpose};
use jpki_pkcs11::card::{Application, CertificateFile, JpkiCard, KenhojoPin, KeyKind};
use jpki_pkcs11::transport::pcsc::PcscReaders;
use jpki_pkcs11::transport::Readers;
use serde_json::{json, Value};

use super::args::Args;
use super::common::{self, card_failure, summarize, Exit, Failure, Progress};

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `own`: the holder's certificate (renewal advice applies), not a CA's.
fn cert_json(der: &[u8], own: bool) -> Value {
    match summarize(der) {
        Some(s) => {
            let mut v = json!({
                "subject": s.subject,
                "issuer": s.issuer,
                "not_before": s.not_before,
                "not_after": s.not_after,
                "days_left": s.days_left,
                "validity": s.validity.state(),
            });
            if own {
                if let Some(a) = s.validity.advice() {
                    v["warning"] = json!(a);
                }
            }
            v
        }
        None => json!({"error": "unparsable certificate"}),
    }
}

/// The purpose of the CA certificate `name`, if it is one.
fn ca_purpose(name: &str) -> Option<Purpose> {
    match name {
        "authentication_ca" => Some(Purpose::Authentication),
        "signature_ca" => Some(Purpose::Signature),
        _ => None,
    }
}

/// Whether a card's CA certificate is a genuine J-LIS one (src/anchors.rs): `genuine` with the
/// generation, `not_jlis` (a test card or a forged one), or `not_checked` when no generation of
/// that purpose is pinned.
pub fn jlis_json(der: &[u8], purpose: Purpose) -> Value {
    match anchors::identify(der) {
        Some(a) if a.purpose == purpose => json!({
            "status": "genuine",
            "generation": a.generation,
            "sources": a.sources,
        }),
        _ if !anchors::pinned(purpose) => json!({"status": "not_checked"}),
        _ => json!({"status": "not_jlis"}),
    }
}

/// Everything about one My Number Card (no PIN, no try spent).
fn card_report(card: &mut JpkiCard) -> Result<Value, Failure> {
    let fail = |e| card_failure(e, "card");
    let label = card.token_label().unwrap_or_default();
    let apps = card.applications().map_err(fail)?;
    let has_text = apps
        .iter()
        .any(|(a, present)| *a == Application::Text && *present);
    let mut applications = serde_json::Map::new();
    for (app, present) in &apps {
        applications.insert(app.id().into(), json!(present));
    }
    let kenhojo = if has_text {
        card.kenhojo_tries_left().ok()
    } else {
        None
    };
    let auth = card.pin_tries_left(KeyKind::Authentication).map_err(fail)?;
    let sign = card.pin_tries_left(KeyKind::Signature).map_err(fail)?;
    let mut certs = serde_json::Map::new();
    for (name, file) in [
        ("authentication", CertificateFile::Authentication),
        ("authentication_ca", CertificateFile::AuthenticationCa),
        ("signature_ca", CertificateFile::SignatureCa),
    ] {
        match card.read_certificate(file) {
            Ok(der) => {
                let mut v = cert_json(&der, name == "authentication");
                if let Some(purpose) = ca_purpose(name) {
                    v["jlis"] = jlis_json(&der, purpose);
                }
                certs.insert(name.into(), v)
            }
            Err(e) => certs.insert(name.into(), json!({"error": e.to_string()})),
        };
    }
    let pss = card.pss_support().ok();
    Ok(json!({
        "token_label": label,
        "applications": applications,
        "tries_left": {
            "authentication": auth,
            "signature": sign,
            "kenhojo": kenhojo,
        },
        "max_tries": {
            "authentication": KeyKind::Authentication.max_tries(),
            "signature": KeyKind::Signature.max_tries(),
            "kenhojo": KenhojoPin::MAX_TRIES,
        },
        "certificates": certs,
        "signature_certificate": "not shown (personal data; readable only with the signature password)",
        "rsa_pss": pss,
    }))
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
        let mut entry = json!({
            "name": r.name,
            "card_present": r.card_present,
        });
        if r.card_present {
            found_card = true;
            entry["atr"] = json!(hex(&r.atr));
            match readers.connect(&r.name) {
                Ok(t) => {
                    let mut card = JpkiCard::new(t);
                    let progress = Progress::start("reading the card…");
                    match card.is_jpki() {
                        Ok(true) => {
                            entry["my_number_card"] = json!(true);
                            match card_report(&mut card) {
                                Ok(v) => {
                                    found_jpki = true;
                                    entry["card"] = v;
                                }
                                Err(f) => entry["error"] = json!(f.message),
                            }
                        }
                        Ok(false) => entry["my_number_card"] = json!(false),
                        Err(e) => entry["error"] = json!(e.to_string()),
                    }
                    drop(progress);
                }
                Err(e) => entry["error"] = json!(e.to_string()),
            }
        }
        out.push(entry);
    }
    let report = json!({ "readers": out });
    if args.json {
        common::print_json(&report);
    } else {
        print_human(&report);
    }
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

fn yes(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

fn print_human(report: &Value) {
    let empty = Vec::new();
    let readers = report["readers"].as_array().unwrap_or(&empty);
    if readers.is_empty() {
        println!("No smart-card reader.");
    }
    for r in readers {
        println!("Reader: {}", r["name"].as_str().unwrap_or("?"));
        if r["card_present"] != json!(true) {
            println!("  Card: none");
            continue;
        }
        println!("  Card: present (ATR {})", r["atr"].as_str().unwrap_or(""));
        if let Some(e) = r["error"].as_str() {
            println!("  Error: {e}");
        }
        if r["my_number_card"] == json!(false) {
            println!("  My Number Card: no (no JPKI application)");
            continue;
        }
        let c = &r["card"];
        if c.is_null() {
            continue;
        }
        println!(
            "  My Number Card: yes ({})",
            c["token_label"].as_str().unwrap_or("")
        );
        let apps = &c["applications"];
        let list: Vec<String> = Application::ALL
            .iter()
            .map(|a| format!("{} {}", a.id(), yes(&apps[a.id()])))
            .collect();
        println!("  Applications: {}", list.join(", "));
        let t = &c["tries_left"];
        let m = &c["max_tries"];
        let tries = |k: &str| match t[k].as_u64() {
            Some(0) => "BLOCKED".to_string(),
            Some(n) => format!("{n}/{}", m[k]),
            None => "unknown".to_string(),
        };
        println!(
            "  Tries left: authentication PIN {}, signature password {}, card-info PIN {}",
            tries("authentication"),
            tries("signature"),
            tries("kenhojo")
        );
        for (key, name) in [
            ("authentication", "Authentication certificate"),
            ("authentication_ca", "Authentication CA"),
            ("signature_ca", "Signature CA"),
        ] {
            let cert = &c["certificates"][key];
            if let Some(e) = cert["error"].as_str() {
                println!("  {name}: {e}");
                continue;
            }
            let days = cert["days_left"].as_i64().unwrap_or(0);
            let when = if days < 0 {
                "EXPIRED".to_string()
            } else {
                format!("{days} days left")
            };
            if key == "authentication" {
                println!("  {name}: {}", cert["subject"].as_str().unwrap_or(""));
                println!(
                    "    valid {} to {} ({when})",
                    cert["not_before"].as_str().unwrap_or(""),
                    cert["not_after"].as_str().unwrap_or("")
                );
                if let Some(w) = cert["warning"].as_str() {
                    println!("    WARNING: the certificate {w}");
                }
            } else {
                println!(
                    "  {name}: valid to {} ({when})",
                    cert["not_after"].as_str().unwrap_or("")
                );
                let j = &cert["jlis"];
                match j["status"].as_str() {
                    Some("genuine") => println!(
                        "    genuine J-LIS CA, generation {}",
                        j["generation"].as_str().unwrap_or("?")
                    ),
                    Some("not_jlis") => println!(
                        "    NOT a J-LIS CA: a test card, or a forged one (its signatures are not the holder's)"
                    ),
                    Some(_) => println!("    not checked against J-LIS (no generation of it is pinned)"),
                    None => {}
                }
            }
        }
        println!("  Signature certificate: not shown (personal data; `jpki certs export --sign`)");
        let pss = match c["rsa_pss"].as_bool() {
            Some(true) => "supported (TLS 1.3 client authentication works)",
            Some(false) => {
                "not supported (TLS 1.3 client authentication is not possible; use TLS 1.2)"
            }
            None => "unknown",
        };
        println!("  RSA-PSS: {pss}");
    }
}
