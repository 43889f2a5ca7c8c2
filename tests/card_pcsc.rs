//! The card layer through the real PC/SC stack (pcscd + vpcd + the virtual card).
//!
//! Every test is `#[ignore]`d: a plain `cargo test` lists them as ignored. Run them with
//! `tests/harness/with-card.sh -- cargo test --test card_pcsc -- --include-ignored --test-threads=1`
//! (the harness sets `JPKI_PCSC_TEST=1`; without it they fail). A missing card is a failure.
//!
//! Prints the APDU count of each operation (for the comparison with OpenSC).

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use der::{Decode, Encode};
use jpki_pkcs11::card::{CardError, CertificateFile, JpkiCard, KeyKind, Pin, PinFormatError};
use jpki_pkcs11::transport::pcsc::PcscReaders;
use jpki_pkcs11::transport::{Readers, TransportError};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

const AUTH_PIN: &[u8] = b"1234";
const SIGN_PASSWORD: &[u8] = b"ABC123";

/// The tests share one card and pcscd: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// These tests are `#[ignore]`d (a plain `cargo test` lists them as ignored); run with
/// `--include-ignored` outside the harness, they fail rather than pass without testing anything.
fn require_harness() {
    assert!(
        std::env::var("JPKI_PCSC_TEST").as_deref() == Ok("1"),
        "needs pcscd: run through tests/harness/with-card.sh (it sets JPKI_PCSC_TEST=1)"
    );
}

/// The first reader holding a JPKI card.
fn find_card(readers: &PcscReaders) -> (String, JpkiCard) {
    let list = readers.list().expect("PC/SC reader list");
    println!("readers: {list:?}");
    for reader in list.iter().filter(|r| r.card_present) {
        let Ok(transport) = readers.connect(&reader.name) else {
            continue;
        };
        let mut card = JpkiCard::new(transport);
        if card.is_jpki() == Ok(true) {
            return (reader.name.clone(), card);
        }
    }
    panic!("JPKI_PCSC_TEST=1 but no JPKI card found in {list:?}");
}

/// Runs `op`, prints and returns its APDU count.
fn counted<T>(card: &mut JpkiCard, what: &str, op: impl FnOnce(&mut JpkiCard) -> T) -> (T, u64) {
    let before = card.apdus_sent();
    let start = Instant::now();
    let result = op(card);
    let apdus = card.apdus_sent() - before;
    println!("APDUs {apdus:>2}  {what}  ({:?})", start.elapsed());
    (result, apdus)
}

fn sha256_digest_info(message: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let hash = Sha256::digest(message).to_vec();
    let mut di = vec![
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    di.extend_from_slice(&hash);
    (di, hash)
}

fn verify_signature(cert_der: &[u8], hash: &[u8], signature: &[u8]) {
    let cert = x509_cert::Certificate::from_der(cert_der).expect("certificate parses");
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .expect("SPKI encodes");
    let key = RsaPublicKey::from_public_key_der(&spki).expect("RSA public key");
    key.verify(Pkcs1v15Sign::new::<Sha256>(), hash, signature)
        .expect("signature verifies with the certificate's key");
}

/// The harness's virtual card answers the SFI forms (`--profile extended`).
fn extended() -> bool {
    std::env::var("JPKI_TEST_PROFILE").is_ok_and(|p| p == "extended")
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn jpki_card_through_pcscd() {
    require_harness();
    let _serial = serial();
    let readers = PcscReaders::new();
    let (reader, mut card) = find_card(&readers);
    println!("card in {reader:?}, ATR {:02X?}", card.atr());
    println!("APDUs {:>2}  is_jpki (SELECT AP)", card.apdus_sent());

    let (label, apdus) = counted(&mut card, "token_label", |c| c.token_label());
    println!("label: {:?}", label.expect("token label"));
    // READ BINARY with SFI; without it the refused SFI attempt, SELECT EF and READ BINARY.
    assert_eq!(apdus, if extended() { 1 } else { 3 });

    // Public certificates.
    let mut auth_cert = Vec::new();
    for file in [
        CertificateFile::Authentication,
        CertificateFile::AuthenticationCa,
        CertificateFile::SignatureCa,
    ] {
        let (der, apdus) = counted(&mut card, &format!("read_certificate({file:?})"), |c| {
            c.read_certificate(file)
        });
        let der = der.unwrap_or_else(|e| panic!("{file:?}: {e}"));
        x509_cert::Certificate::from_der(&der).expect("certificate parses");
        println!("        {} bytes", der.len());
        // Extended profile: the SFI form names the EF (no SELECT EF). Conservative: SELECT EF
        // (the one refused SFI attempt was the label's).
        let select = if extended() { 0 } else { 1 };
        assert_eq!(apdus as usize, select + der.len().div_ceil(256), "{file:?}");
        if file == CertificateFile::Authentication {
            auth_cert = der;
        }
    }

    // Tries, verify, sign with the auth key.
    let (tries, _) = counted(&mut card, "pin_tries_left(Authentication)", |c| {
        c.pin_tries_left(KeyKind::Authentication)
    });
    assert_eq!(tries, Ok(3));
    let (tries, _) = counted(&mut card, "pin_tries_left(Signature)", |c| {
        c.pin_tries_left(KeyKind::Signature)
    });
    assert_eq!(tries, Ok(5));

    let (di, hash) = sha256_digest_info(b"jpki-pkcs11 card_pcsc");
    let (refused, _) = counted(&mut card, "sign(Authentication) before login", |c| {
        c.sign(KeyKind::Authentication, &di)
    });
    assert_eq!(refused, Err(CardError::SecurityStatusNotSatisfied));

    let pin = Pin::parse(KeyKind::Authentication, AUTH_PIN).expect("PIN format");
    let (verified, _) = counted(&mut card, "verify_pin(Authentication)", |c| {
        c.verify_pin(&pin)
    });
    assert_eq!(verified, Ok(()));
    let (signature, _) = counted(&mut card, "sign(Authentication)", |c| {
        c.sign(KeyKind::Authentication, &di)
    });
    let signature = signature.expect("signature");
    assert_eq!(signature.len(), 256);
    verify_signature(&auth_cert, &hash, &signature);
    let (again, apdus) = counted(&mut card, "sign(Authentication) again", |c| {
        c.sign(KeyKind::Authentication, &di)
    });
    assert!(again.is_ok());
    assert_eq!(apdus, if extended() { 1 } else { 2 });

    // Signature certificate: refused before the password, readable after.
    let (refused, _) = counted(&mut card, "read_certificate(Signature) before login", |c| {
        c.read_certificate(CertificateFile::Signature)
    });
    assert_eq!(refused, Err(CardError::SecurityStatusNotSatisfied));
    let password = Pin::parse(KeyKind::Signature, SIGN_PASSWORD).expect("password format");
    let (verified, _) = counted(&mut card, "verify_pin(Signature)", |c| {
        c.verify_pin(&password)
    });
    assert_eq!(verified, Ok(()));
    let (sign_cert, apdus) = counted(&mut card, "read_certificate(Signature)", |c| {
        c.read_certificate(CertificateFile::Signature)
    });
    let sign_cert = sign_cert.expect("sign certificate after password");
    println!("        {} bytes", sign_cert.len());
    let select = if extended() { 0 } else { 1 };
    assert_eq!(apdus as usize, select + sign_cert.len().div_ceil(256));
    let (signature, _) = counted(&mut card, "sign(Signature)", |c| {
        c.sign(KeyKind::Signature, &di)
    });
    verify_signature(&sign_cert, &hash, &signature.expect("signature"));

    // A wrong PIN decrements the counter; a correct VERIFY resets it.
    let wrong = Pin::parse(KeyKind::Authentication, b"9999").expect("PIN format");
    let (result, _) = counted(&mut card, "verify_pin(wrong)", |c| c.verify_pin(&wrong));
    assert_eq!(result, Err(CardError::PinIncorrect { tries_left: 2 }));
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(2));
    assert_eq!(card.verify_pin(&pin), Ok(()));
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));

    // A malformed PIN never reaches the card.
    let before = card.apdus_sent();
    assert_eq!(
        Pin::parse(KeyKind::Authentication, b"12345").err(),
        Some(PinFormatError::Length)
    );
    assert_eq!(
        Pin::parse(KeyKind::Authentication, b"12a4").err(),
        Some(PinFormatError::Charset)
    );
    assert_eq!(
        Pin::parse(KeyKind::Signature, b"ABC-12").err(),
        Some(PinFormatError::Charset)
    );
    assert_eq!(card.apdus_sent(), before);

    // Change the auth PIN and back.
    let new = Pin::parse(KeyKind::Authentication, b"4321").expect("PIN format");
    let (changed, _) = counted(&mut card, "change_pin(Authentication)", |c| {
        c.change_pin(&pin, &new)
    });
    assert_eq!(changed, Ok(()));
    assert_eq!(card.change_pin(&new, &pin), Ok(()));
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));

    let (out, _) = counted(&mut card, "logout", |c| c.logout());
    assert_eq!(out, Ok(()));
    assert_eq!(
        card.sign(KeyKind::Authentication, &di),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    println!("APDUs total: {}", card.apdus_sent());
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn pcsc_waits_and_cancels() {
    require_harness();
    let _serial = serial();
    let readers = std::sync::Arc::new(PcscReaders::new());
    let known = readers.list().expect("reader list");
    assert!(!known.is_empty(), "JPKI_PCSC_TEST=1 but no reader");
    // Nothing changes: times out.
    let start = Instant::now();
    assert_eq!(
        readers.wait_for_change(&known, Some(Duration::from_millis(300))),
        Ok(false)
    );
    assert!(start.elapsed() >= Duration::from_millis(250));
    // A stale view: answers at once.
    assert_eq!(
        readers.wait_for_change(&[], Some(Duration::from_secs(5))),
        Ok(true)
    );
    // Cancel from another thread wakes a blocked waiter.
    let r2 = std::sync::Arc::clone(&readers);
    let k2 = known.clone();
    let waiter = std::thread::spawn(move || r2.wait_for_change(&k2, None));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    readers.cancel();
    assert_eq!(
        waiter.join().expect("waiter"),
        Err(TransportError::Cancelled)
    );
    println!("cancel woke the waiter in {:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        readers.connect("no such reader").err(),
        Some(TransportError::NoReader)
    );
}

/// Sends a control command to the virtual card of the harness.
fn ctl(command: &str) {
    let bin = std::env::var("JPKI_TEST_CARD_BIN").expect("JPKI_TEST_CARD_BIN");
    let socket = std::env::var("JPKI_TEST_CONTROL").expect("JPKI_TEST_CONTROL");
    let out = std::process::Command::new(bin)
        .args(["ctl", "--control", &socket, command])
        .output()
        .expect("run ctl");
    assert!(out.status.success(), "ctl {command}: {out:?}");
}

fn retry<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn reset_by_another_client_is_reported_once() {
    require_harness();
    let _serial = serial();
    let readers = PcscReaders::new();
    let (reader, mut card) = find_card(&readers);
    let pin = Pin::parse(KeyKind::Authentication, AUTH_PIN).expect("PIN format");
    assert_eq!(card.verify_pin(&pin), Ok(()));

    // Another PC/SC client resets the card.
    let context = pcsc::Context::establish(pcsc::Scope::User).expect("context");
    let name = std::ffi::CString::new(reader).expect("reader name");
    let other = context
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .expect("second connection");
    other
        .disconnect(pcsc::Disposition::ResetCard)
        .map_err(|(_, e)| e)
        .expect("reset");

    let (di, _) = sha256_digest_info(b"after reset");
    let (result, apdus) = counted(&mut card, "sign after reset", |c| {
        c.sign(KeyKind::Authentication, &di)
    });
    assert_eq!(result, Err(CardError::CardReset));
    assert!(apdus <= 1);
    assert_eq!(
        card.sign(KeyKind::Authentication, &di),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    assert_eq!(card.verify_pin(&pin), Ok(()));
    assert!(card.sign(KeyKind::Authentication, &di).is_ok());
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn removal_insertion_and_pcscd_restart() {
    require_harness();
    let _serial = serial();
    let readers = std::sync::Arc::new(PcscReaders::new());
    let (reader, mut card) = find_card(&readers);
    let known = readers.list().expect("list");

    // Removal wakes a waiter; the connection reports it.
    let r2 = std::sync::Arc::clone(&readers);
    let k2 = known.clone();
    let waiter = std::thread::spawn(move || r2.wait_for_change(&k2, Some(Duration::from_secs(10))));
    std::thread::sleep(Duration::from_millis(200));
    ctl("remove");
    assert_eq!(waiter.join().expect("waiter"), Ok(true));
    let now = retry("card absent", || {
        let l = readers.list().ok()?;
        l.iter()
            .any(|r| r.name == reader && !r.card_present)
            .then_some(l)
    });
    assert!(matches!(
        card.pin_tries_left(KeyKind::Authentication),
        Err(CardError::Removed | CardError::CardReset)
    ));

    // Insertion wakes a waiter; a new connection works.
    let r2 = std::sync::Arc::clone(&readers);
    let waiter =
        std::thread::spawn(move || r2.wait_for_change(&now, Some(Duration::from_secs(10))));
    std::thread::sleep(Duration::from_millis(200));
    ctl("insert");
    assert_eq!(waiter.join().expect("waiter"), Ok(true));
    let (_, mut card) = retry("card back", || {
        let l = readers.list().ok()?;
        l.iter()
            .any(|r| r.name == reader && r.card_present)
            .then(|| find_card(&readers))
    });
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));

    // pcscd restarts: the failing calls say so, then everything comes back by itself.
    let Ok(restart) = std::env::var("JPKI_TEST_RESTART_PCSCD") else {
        println!("no JPKI_TEST_RESTART_PCSCD: pcscd restart not tested");
        return;
    };
    let status = std::process::Command::new(restart)
        .status()
        .expect("restart pcscd");
    assert!(status.success());
    let mut errors = Vec::new();
    let tries = retry("card usable after pcscd restart", || {
        match card.pin_tries_left(KeyKind::Authentication) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(e);
                None
            }
        }
    });
    println!("after pcscd restart: errors {errors:?}, then tries {tries}");
    assert_eq!(tries, 3);
    // NoService first, "removed" while the restarted pcscd has not seen the card yet, then one
    // CardReset when the transport reconnected (the security state is gone).
    assert!(
        errors.iter().all(|e| matches!(
            e,
            CardError::NoService | CardError::Removed | CardError::NoReader | CardError::CardReset
        )),
        "{errors:?}"
    );
    assert_eq!(errors.last(), Some(&CardError::CardReset), "{errors:?}");
    let listed = retry("readers after restart", || {
        readers.list().ok().filter(|l| !l.is_empty())
    });
    println!("readers after restart: {listed:?}");
}
