//! Card-layer tests against scripted cards: each test lists the exact APDUs expected and the
//! answers given, so APDU counts and every status word the card layer handles are pinned.
//!
//! Longer than the ~500 lines of a source file on purpose: each test is a full APDU script
//! (one per card behaviour, 25 of them), and the scripts share the helpers at the top; read one
//! test at a time.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::*;
use crate::transport::in_process::{InProcessTransport, SimulatedCard};
use crate::transport::TransportError;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

const SELECT_AP: &str = "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01";

fn select_ef(fid: u16) -> String {
    format!("00 A4 02 0C 02 {:02X} {:02X}", fid >> 8, fid & 0xFF)
}

/// (expected command, answer) pairs.
type Steps = Arc<Mutex<VecDeque<(Vec<u8>, Vec<u8>)>>>;

/// A card that expects exactly these commands, in order, and gives these answers.
struct Script {
    steps: Steps,
    card: SimulatedCard,
}

/// A card known to refuse the SFI forms: the classic sequences (SELECT EF, then the command).
const NO_SFI: SfiSupport = SfiSupport {
    read: Support::No,
    verify: Support::No,
    sign: Support::No,
};

impl Script {
    /// A card whose SFI support is already known to be absent (classic sequences).
    fn new() -> (JpkiCard, Script) {
        let (mut card, script) = Script::fresh();
        card.assume_sfi(NO_SFI);
        (card, script)
    }

    /// A card seen for the first time: nothing known of the SFI forms.
    fn fresh() -> (JpkiCard, Script) {
        let steps: Steps = Arc::default();
        let s2 = Arc::clone(&steps);
        let transport = InProcessTransport::new(hex("3B E0 00 FF 81 31 FE 45 14"), move |cmd| {
            let Some((expected, answer)) = s2.lock().pop_front() else {
                panic!("unexpected APDU {cmd:02X?}");
            };
            assert_eq!(cmd, expected.as_slice(), "APDU");
            answer
        });
        let card = transport.card();
        (JpkiCard::new(Box::new(transport)), Script { steps, card })
    }

    fn expect(&self, cmd: &str, answer: &[u8]) -> &Self {
        self.steps.lock().push_back((hex(cmd), answer.to_vec()));
        self
    }

    fn expect_ok(&self, cmd: &str) -> &Self {
        self.expect(cmd, &[0x90, 0x00])
    }

    fn done(&self) {
        assert!(
            self.steps.lock().is_empty(),
            "APDUs not sent: {:?}",
            self.steps.lock()
        );
    }
}

fn with_sw(data: &[u8], sw: u16) -> Vec<u8> {
    let mut v = data.to_vec();
    v.extend_from_slice(&sw.to_be_bytes());
    v
}

/// A DER SEQUENCE of `total` bytes (header 30 82 LL LL), content bytes counting up.
fn cert(total: usize) -> Vec<u8> {
    let len = total - 4;
    let mut v = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
    v.extend((0..len).map(|i| i as u8));
    v
}

fn read(offset: usize, le: u16) -> String {
    format!(
        "00 B0 {:02X} {:02X} {:02X}",
        offset >> 8,
        offset & 0xFF,
        if le == 256 { 0 } else { le }
    )
}

/// Expects the reads of `file` (as a card that answers exactly Le bytes).
fn expect_cert_reads(s: &Script, file: &[u8]) {
    let mut offset = 0;
    while offset < file.len() {
        let le = if offset == 0 {
            256
        } else {
            (file.len() - offset).min(256)
        };
        let end = (offset + le).min(file.len());
        s.expect(
            &read(offset, le as u16),
            &with_sw(&file[offset..end], 0x9000),
        );
        offset = end;
    }
}

#[test]
fn is_jpki_selects_once() {
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP);
    assert_eq!(card.is_jpki(), Ok(true));
    assert_eq!(card.is_jpki(), Ok(true));
    assert_eq!(card.apdus_sent(), 1);
    s.done();
}

#[test]
fn is_jpki_false_on_other_cards() {
    for sw in [0x6A82u16, 0x6D00, 0x6E00, 0x6A86] {
        let (mut card, s) = Script::new();
        s.expect(SELECT_AP, &sw.to_be_bytes());
        assert_eq!(card.is_jpki(), Ok(false), "{sw:04X}");
        s.done();
    }
}

#[test]
fn reads_certificate_in_fewest_apdus() {
    let (mut card, s) = Script::new();
    let file = cert(1316);
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
    expect_cert_reads(&s, &file);
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Ok(file)
    );
    // 1 SELECT AP + 1 SELECT EF + ⌈1316/256⌉ = 6 READ BINARY.
    assert_eq!(card.apdus_sent(), 8);
    s.done();

    // The AP stays selected across transactions.
    let file = cert(1301);
    s.expect_ok(&select_ef(0x0002));
    expect_cert_reads(&s, &file);
    assert_eq!(
        card.read_certificate(CertificateFile::SignatureCa),
        Ok(file)
    );
    assert_eq!(card.apdus_sent(), 8 + 7);
    s.done();
}

#[test]
fn certificate_of_exactly_256_bytes_needs_one_read() {
    let (mut card, s) = Script::new();
    let file = cert(256);
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000B));
    s.expect(&read(0, 256), &with_sw(&file, 0x9000));
    assert_eq!(
        card.read_certificate(CertificateFile::AuthenticationCa),
        Ok(file)
    );
    s.done();
}

#[test]
fn filler_after_der_is_dropped() {
    let (mut card, s) = Script::new();
    let mut file = cert(200);
    file.extend([0xFF; 56]);
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
    s.expect(&read(0, 256), &with_sw(&file, 0x9000));
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Ok(cert(200))
    );
    s.done();
}

#[test]
fn short_forms_of_der_length() {
    for header in [vec![0x30, 0x05], vec![0x30, 0x81, 0x05]] {
        let (mut card, s) = Script::new();
        let mut file = header.clone();
        file.extend([1, 2, 3, 4, 5]);
        s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
        s.expect(&read(0, 256), &with_sw(&file, 0x6282));
        assert_eq!(
            card.read_certificate(CertificateFile::Authentication),
            Ok(file)
        );
        s.done();
    }
}

#[test]
fn card_returning_less_than_asked_is_followed() {
    let (mut card, s) = Script::new();
    let file = cert(600);
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
    // First answer: only 1 byte (header unknown yet), then 100-byte pieces.
    s.expect(&read(0, 256), &with_sw(&file[..1], 0x9000));
    s.expect(&read(1, 256), &with_sw(&file[1..101], 0x9000));
    s.expect(&read(101, 256), &with_sw(&file[101..357], 0x9000));
    s.expect(&read(357, 243), &with_sw(&file[357..457], 0x9000));
    s.expect(&read(457, 143), &with_sw(&file[457..], 0x9000));
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Ok(file)
    );
    s.done();
}

#[test]
fn hostile_certificate_answers_are_errors() {
    let malformed = |r: Result<Vec<u8>, CardError>| {
        assert!(matches!(r, Err(CardError::MalformedResponse(_))), "{r:?}");
    };
    // Lying length: EOF (6B00) before the DER end.
    let (mut card, s) = Script::new();
    let file = cert(600);
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
    s.expect(&read(0, 256), &with_sw(&file[..256], 0x9000));
    s.expect(&read(256, 256), &[0x6B, 0x00]);
    malformed(card.read_certificate(CertificateFile::Authentication));
    s.done();

    // Absurd, indefinite and non-SEQUENCE headers: refused after the first read.
    for head in [
        hex("30 82 20 00"),
        hex("30 83 00 01 00"),
        hex("30 80 00 00"),
        hex("04 82 01 00"),
    ] {
        let (mut card, s) = Script::new();
        s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
        s.expect(&read(0, 256), &with_sw(&head, 0x9000));
        malformed(card.read_certificate(CertificateFile::Authentication));
        s.done();
    }

    // Over-long answer (more than Le).
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
    s.expect(&read(0, 256), &with_sw(&[0x30; 257], 0x9000));
    malformed(card.read_certificate(CertificateFile::Authentication));
    s.done();

    // 90 00 without data: no progress.
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
    s.expect(&read(0, 256), &[0x90, 0x00]);
    malformed(card.read_certificate(CertificateFile::Authentication));
    s.done();

    // Truncated response APDU.
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
    s.expect(&read(0, 256), &[0x90]);
    malformed(card.read_certificate(CertificateFile::Authentication));
    s.done();

    // A card feeding one byte at a time forever is cut off.
    let (mut card, s) = Script::new();
    let file = cert(8000);
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x000A));
    s.expect(&read(0, 256), &with_sw(&file[..4], 0x9000));
    for i in 4..67 {
        s.expect(&read(i, 256), &with_sw(&file[i..i + 1], 0x9000));
    }
    malformed(card.read_certificate(CertificateFile::Authentication));
    assert!(card.apdus_sent() <= 2 + 64);
}

#[test]
fn certificate_status_words() {
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x0001));
    s.expect(&read(0, 256), &[0x69, 0x82]);
    assert_eq!(
        card.read_certificate(CertificateFile::Signature),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    s.done();
    // Not logged in: a 6982 on the sign cert is expected, no retry (the AP is not re-selected).
    s.expect_ok(&select_ef(0x0001));
    s.expect(&read(0, 256), &[0x69, 0x82]);
    assert_eq!(
        card.read_certificate(CertificateFile::Signature),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    s.done();

    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect(&select_ef(0x000A), &[0x6A, 0x82]);
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Err(CardError::FileNotFound)
    );
    s.done();

    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect(&select_ef(0x000A), &[0x6F, 0x00]);
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Err(CardError::UnexpectedStatus(0x6F00))
    );
    s.done();

    let (mut card, s) = Script::new();
    s.expect(SELECT_AP, &[0x6A, 0x82]);
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Err(CardError::NotJpki)
    );
    s.done();
}

#[test]
fn another_clients_selection_is_detected_and_repaired() {
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP);
    assert_eq!(card.is_jpki(), Ok(true));
    s.done();
    // Someone selected another AP: our SELECT EF fails; we re-select the AP once.
    let file = cert(300);
    s.expect(&select_ef(0x000A), &[0x6A, 0x82])
        .expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x000A));
    expect_cert_reads(&s, &file);
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Ok(file.clone())
    );
    s.done();
    // EF 0002 exists in other APs: a 6982 or a non-certificate on a public file → retry.
    s.expect_ok(&select_ef(0x0002))
        .expect(&read(0, 256), &[0x69, 0x82]);
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x0002));
    expect_cert_reads(&s, &file);
    assert_eq!(
        card.read_certificate(CertificateFile::SignatureCa),
        Ok(file.clone())
    );
    s.done();
    s.expect_ok(&select_ef(0x0002))
        .expect(&read(0, 256), &with_sw(b"\x01\x02\x03", 0x9000));
    s.expect_ok(SELECT_AP).expect_ok(&select_ef(0x0002));
    expect_cert_reads(&s, &file);
    assert_eq!(
        card.read_certificate(CertificateFile::SignatureCa),
        Ok(file)
    );
    s.done();
    // A PIN EF missing twice is an error, with one retry only.
    s.expect(&select_ef(0x0018), &[0x6A, 0x82])
        .expect_ok(SELECT_AP)
        .expect(&select_ef(0x0018), &[0x6A, 0x82]);
    assert_eq!(
        card.pin_tries_left(KeyKind::Authentication),
        Err(CardError::FileNotFound)
    );
    s.done();
}

#[test]
fn token_label() {
    let (mut card, s) = Script::new();
    let mut label = b"JPKIAPICCTOKEN2".to_vec();
    label.resize(32, b' ');
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0006))
        .expect("00 B0 00 00 20", &with_sw(&label, 0x9000));
    assert_eq!(card.token_label().as_deref(), Ok("JPKIAPICCTOKEN2"));
    s.done();
    let mut label = b"JPKIAPICCTOKEN".to_vec();
    label.resize(20, 0);
    s.expect_ok(&select_ef(0x0006))
        .expect("00 B0 00 00 20", &with_sw(&label, 0x6282));
    assert_eq!(card.token_label().as_deref(), Ok("JPKIAPICCTOKEN"));
    s.done();
    s.expect_ok(&select_ef(0x0006))
        .expect("00 B0 00 00 20", &with_sw(&[b'A'; 33], 0x9000));
    assert!(matches!(
        card.token_label(),
        Err(CardError::MalformedResponse(_))
    ));
    s.done();
}

#[test]
fn tries_left_status_words() {
    let cases: [(&[u8], Result<u8, CardError>); 7] = [
        (&[0x63, 0xC3], Ok(3)),
        (&[0x63, 0xC1], Ok(1)),
        (&[0x63, 0xC0], Ok(0)),
        (&[0x69, 0x84], Ok(0)),
        (&[0x90, 0x00], Ok(3)),
        (&[0x63, 0x00], Err(CardError::UnexpectedStatus(0x6300))),
        (&[0x6F, 0x00], Err(CardError::UnexpectedStatus(0x6F00))),
    ];
    for (answer, expected) in cases {
        let (mut card, s) = Script::new();
        s.expect_ok(SELECT_AP)
            .expect_ok(&select_ef(0x0018))
            .expect("00 20 00 80", answer);
        assert_eq!(card.pin_tries_left(KeyKind::Authentication), expected);
        s.done();
    }
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x001B))
        .expect_ok("00 20 00 80");
    assert_eq!(card.pin_tries_left(KeyKind::Signature), Ok(5));
    assert_eq!(card.apdus_sent(), 3);
    s.done();
}

#[test]
fn verify_status_words() {
    let cases: [(&[u8], Result<(), CardError>); 6] = [
        (&[0x90, 0x00], Ok(())),
        (
            &[0x63, 0xC2],
            Err(CardError::PinIncorrect { tries_left: 2 }),
        ),
        (&[0x63, 0xC0], Err(CardError::PinBlocked)),
        (&[0x69, 0x84], Err(CardError::PinBlocked)),
        (&[0x69, 0x83], Err(CardError::PinBlocked)),
        (&[0x67, 0x00], Err(CardError::UnexpectedStatus(0x6700))),
    ];
    for (answer, expected) in cases {
        let (mut card, s) = Script::new();
        s.expect_ok(SELECT_AP)
            .expect_ok(&select_ef(0x0018))
            .expect("00 20 00 80 04 31 32 33 34", answer);
        let pin = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
        assert_eq!(card.verify_pin(&pin), expected);
        s.done();
        if expected.is_ok() {
            // Dropping a logged-in card logs out.
            s.expect_ok(SELECT_AP);
            drop(card);
            s.done();
        }
    }
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x001B))
        .expect_ok("00 20 00 80 06 41 42 43 31 32 33");
    let pin = Pin::parse(KeyKind::Signature, b"abc123").unwrap();
    assert_eq!(card.verify_pin(&pin), Ok(()));
    s.done();
    s.expect_ok(SELECT_AP);
    assert_eq!(card.logout(), Ok(()));
    s.done();
    drop(card); // logged out: nothing sent
    s.done();
}

fn digest_info() -> Vec<u8> {
    let mut di = hex("30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20");
    di.extend([0xAB; 32]);
    di
}

#[test]
fn sign_sends_one_command_and_checks_the_answer() {
    let di = digest_info();
    let sign_cmd = format!(
        "80 2A 00 80 33 {} 00",
        di.iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0017))
        .expect(&sign_cmd, &with_sw(&[0x5A; 256], 0x9000));
    assert_eq!(card.sign(KeyKind::Authentication, &di), Ok(vec![0x5A; 256]));
    assert_eq!(card.apdus_sent(), 3);
    s.done();
    // A second signature: SELECT key EF again (new transaction), no SELECT AP.
    s.expect_ok(&select_ef(0x0017))
        .expect(&sign_cmd, &with_sw(&[0x5B; 256], 0x9000));
    assert_eq!(card.sign(KeyKind::Authentication, &di), Ok(vec![0x5B; 256]));
    s.done();

    let cases: [(Vec<u8>, CardError); 4] = [
        (vec![0x69, 0x82], CardError::SecurityStatusNotSatisfied),
        (vec![0x67, 0x00], CardError::DataLength),
        (vec![0x6A, 0x86], CardError::UnexpectedStatus(0x6A86)),
        (
            with_sw(&[0; 255], 0x9000),
            CardError::MalformedResponse("signature of wrong length"),
        ),
    ];
    for (answer, expected) in cases {
        let (mut card, s) = Script::new();
        s.expect_ok(SELECT_AP)
            .expect_ok(&select_ef(0x001A))
            .expect(&sign_cmd, &answer);
        assert_eq!(card.sign(KeyKind::Signature, &di), Err(expected));
        s.done();
    }
    // Signature delivered through GET RESPONSE.
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0017))
        .expect(&sign_cmd, &[0x61, 0x00])
        .expect("00 C0 00 00 00", &with_sw(&[7; 256], 0x9000));
    assert_eq!(card.sign(KeyKind::Authentication, &di), Ok(vec![7; 256]));
    s.done();

    // Refused locally: nothing sent.
    let (mut card, s) = Script::new();
    assert_eq!(
        card.sign(KeyKind::Authentication, &[]),
        Err(CardError::DataLength)
    );
    assert_eq!(
        card.sign(KeyKind::Authentication, &[0; 246]),
        Err(CardError::DataLength)
    );
    assert_eq!(card.apdus_sent(), 0);
    s.done();
}

#[test]
fn change_pin_in_one_transaction() {
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0018))
        .expect_ok("00 20 00 80 04 31 32 33 34")
        .expect_ok("00 24 01 80 04 39 38 37 36");
    let old = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
    let new = Pin::parse(KeyKind::Authentication, b"9876").unwrap();
    assert_eq!(card.change_pin(&old, &new), Ok(()));
    assert_eq!(card.apdus_sent(), 4);
    s.done();

    s.expect_ok(&select_ef(0x0018))
        .expect("00 20 00 80 04 31 32 33 34", &[0x63, 0xC1]);
    assert_eq!(
        card.change_pin(&old, &new),
        Err(CardError::PinIncorrect { tries_left: 1 })
    );
    s.done();

    s.expect_ok(&select_ef(0x0018))
        .expect_ok("00 20 00 80 04 31 32 33 34")
        .expect("00 24 01 80 04 39 38 37 36", &[0x6A, 0x80]);
    assert_eq!(
        card.change_pin(&old, &new),
        Err(CardError::UnexpectedStatus(0x6A80))
    );
    s.done();

    let other = Pin::parse(KeyKind::Signature, b"ABC123").unwrap();
    assert!(matches!(
        card.change_pin(&old, &other),
        Err(CardError::InvalidArgument(_))
    ));
    s.done();
    // The old PIN was verified: dropping the card logs out.
    s.expect_ok(SELECT_AP);
    drop(card);
    s.done();
}

#[test]
fn reset_and_transport_errors_invalidate_the_selection() {
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0018))
        .expect_ok("00 20 00 80 04 31 32 33 34");
    let pin = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
    assert_eq!(card.verify_pin(&pin), Ok(()));
    s.done();

    // Another process resets the card between our transactions.
    s.card.reset();
    assert_eq!(
        card.pin_tries_left(KeyKind::Authentication),
        Err(CardError::CardReset)
    );
    s.done();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0018))
        .expect("00 20 00 80", &[0x63, 0xC3]);
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
    s.done();

    // Reset in the middle of a transaction.
    s.card.inject_error(TransportError::CardReset);
    assert_eq!(
        card.pin_tries_left(KeyKind::Authentication),
        Err(CardError::CardReset)
    );
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0018))
        .expect("00 20 00 80", &[0x63, 0xC3]);
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
    s.done();

    // Timeout: the AP is selected again afterwards.
    s.card.inject_error(TransportError::Timeout);
    assert_eq!(
        card.pin_tries_left(KeyKind::Authentication),
        Err(CardError::Timeout)
    );
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0018))
        .expect("00 20 00 80", &[0x63, 0xC3]);
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
    s.done();

    s.card.inject_error(TransportError::Other("x".into()));
    assert!(matches!(
        card.pin_tries_left(KeyKind::Authentication),
        Err(CardError::Transport(_))
    ));
    s.card.inject_error(TransportError::NoService);
    assert_eq!(card.logout(), Err(CardError::NoService));

    s.card.remove();
    assert_eq!(
        card.pin_tries_left(KeyKind::Authentication),
        Err(CardError::Removed)
    );
    s.done();
}

#[test]
fn wrong_le_is_repaired() {
    let (mut card, s) = Script::new();
    let file = cert(100);
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x000A))
        .expect(&read(0, 256), &[0x6C, 100])
        .expect(&read(0, 100), &with_sw(&file, 0x9000));
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Ok(file)
    );
    s.done();
}

// ---- SFI forms: detection and fallback ------------------------------------------------------

/// READ BINARY with SFI at offset 0.
fn read_sfi(fid: u16, le: u16) -> String {
    format!(
        "00 B0 {:02X} 00 {:02X}",
        0x80 | fid,
        if le == 256 { 0 } else { le }
    )
}

fn sign_command(p2: u8) -> String {
    let di = digest_info();
    format!(
        "80 2A 00 {p2:02X} 33 {} 00",
        di.iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Expects the reads of `file` when its first chunk comes through the SFI form.
fn expect_cert_reads_sfi(s: &Script, fid: u16, file: &[u8]) {
    let first = file.len().min(256);
    s.expect(&read_sfi(fid, 256), &with_sw(&file[..first], 0x9000));
    let mut offset = first;
    while offset < file.len() {
        let le = (file.len() - offset).min(256);
        s.expect(
            &read(offset, le as u16),
            &with_sw(&file[offset..offset + le], 0x9000),
        );
        offset += le;
    }
}

#[test]
fn card_with_sfi_needs_no_select_ef() {
    let (mut card, s) = Script::fresh();
    let auth = cert(600);
    let ca = cert(1300);
    s.expect_ok(SELECT_AP);
    expect_cert_reads_sfi(&s, 0x000A, &auth);
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Ok(auth.clone())
    );
    assert_eq!(card.apdus_sent(), 1 + 3);
    assert_eq!(card.sfi_support().read, Support::Yes);
    s.done();
    expect_cert_reads_sfi(&s, 0x000B, &ca);
    assert_eq!(
        card.read_certificate(CertificateFile::AuthenticationCa),
        Ok(ca)
    );
    s.done();
    // The signature certificate before login: one APDU, the card found the file.
    s.expect(&read_sfi(0x0001, 256), &[0x69, 0x82]);
    assert_eq!(
        card.read_certificate(CertificateFile::Signature),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    s.done();
    // Tries: the empty VERIFY with SFI proves the reference; then VERIFY and sign alone.
    s.expect("00 20 00 98", &[0x63, 0xC3]);
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
    assert_eq!(card.sfi_support().verify, Support::Yes);
    s.expect("00 20 00 9B", &[0x63, 0xC4]);
    assert_eq!(card.pin_tries_left(KeyKind::Signature), Ok(4));
    s.expect_ok("00 20 00 98 04 31 32 33 34");
    let pin = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
    assert_eq!(card.verify_pin(&pin), Ok(()));
    s.expect(&sign_command(0x97), &with_sw(&[0x5A; 256], 0x9000));
    assert_eq!(
        card.sign(KeyKind::Authentication, &digest_info()),
        Ok(vec![0x5A; 256])
    );
    assert_eq!(card.sfi_support().sign, Support::Yes);
    s.done();
    let before = card.apdus_sent();
    s.expect(&sign_command(0x97), &with_sw(&[0x5B; 256], 0x9000));
    assert_eq!(
        card.sign(KeyKind::Authentication, &digest_info()),
        Ok(vec![0x5B; 256])
    );
    assert_eq!(card.apdus_sent() - before, 1);
    s.done();
    // A wrong PIN through the SFI form: counted once, no fallback (the card compared it).
    s.expect("00 20 00 98 04 39 39 39 39", &[0x63, 0xC2]);
    let wrong = Pin::parse(KeyKind::Authentication, b"9999").unwrap();
    assert_eq!(
        card.verify_pin(&wrong),
        Err(CardError::PinIncorrect { tries_left: 2 })
    );
    s.done();
    // The label through SFI too.
    let mut label = b"JPKIAPICCTOKEN2".to_vec();
    label.resize(32, b' ');
    s.expect("00 B0 86 00 20", &with_sw(&label, 0x9000));
    assert_eq!(card.token_label().as_deref(), Ok("JPKIAPICCTOKEN2"));
    s.done();
}

#[test]
fn card_without_sfi_costs_one_apdu_once() {
    for refusal in [0x6A86u16, 0x6D00, 0x6B00, 0x6E00, 0x6A81, 0x6986] {
        let (mut card, s) = Script::fresh();
        let file = cert(600);
        s.expect_ok(SELECT_AP)
            .expect(&read_sfi(0x000A, 256), &refusal.to_be_bytes())
            .expect_ok(&select_ef(0x000A));
        expect_cert_reads(&s, &file);
        assert_eq!(
            card.read_certificate(CertificateFile::Authentication),
            Ok(file.clone())
        );
        assert_eq!(card.sfi_support().read, Support::No, "{refusal:04X}");
        s.done();
        // From now on only the classic forms: no probe of VERIFY or signing either.
        s.expect_ok(&select_ef(0x000B));
        expect_cert_reads(&s, &file);
        assert_eq!(
            card.read_certificate(CertificateFile::AuthenticationCa),
            Ok(file)
        );
        s.expect_ok(&select_ef(0x0018))
            .expect("00 20 00 80", &[0x63, 0xC3]);
        assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
        s.expect_ok(&select_ef(0x0018))
            .expect_ok("00 20 00 80 04 31 32 33 34");
        let pin = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
        assert_eq!(card.verify_pin(&pin), Ok(()));
        s.expect_ok(&select_ef(0x0017))
            .expect(&sign_command(0x80), &with_sw(&[1; 256], 0x9000));
        assert_eq!(
            card.sign(KeyKind::Authentication, &digest_info()),
            Ok(vec![1; 256])
        );
        s.done();
        assert_eq!(
            card.sfi_support(),
            SfiSupport {
                read: Support::No,
                verify: Support::Unknown,
                sign: Support::Unknown
            }
        );
        s.expect_ok(SELECT_AP); // logout on drop
        drop(card);
        s.done();
    }
}

#[test]
fn sfi_6a82_is_not_taken_for_a_refusal_when_the_ap_was_lost() {
    // Another client selected another AP: SFI and SELECT EF both answer 6A82, the AP is
    // selected again and the classic read succeeds. Nothing is concluded about SFI.
    let (mut card, s) = Script::fresh();
    s.expect_ok(SELECT_AP);
    assert_eq!(card.is_jpki(), Ok(true));
    s.done();
    let file = cert(300);
    s.expect(&read_sfi(0x000A, 256), &[0x6A, 0x82])
        .expect(&select_ef(0x000A), &[0x6A, 0x82])
        .expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x000A));
    expect_cert_reads(&s, &file);
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Ok(file.clone())
    );
    assert_eq!(card.sfi_support().read, Support::Unknown);
    s.done();
    // A card that answers 6A82 to the SFI form of a file that SELECT finds: refused.
    s.expect(&read_sfi(0x000B, 256), &[0x6A, 0x82])
        .expect_ok(&select_ef(0x000B));
    expect_cert_reads(&s, &file);
    assert_eq!(
        card.read_certificate(CertificateFile::AuthenticationCa),
        Ok(file)
    );
    assert_eq!(card.sfi_support().read, Support::No);
    s.done();
    // A file absent from the card (6A82 twice, the AP selected in this transaction): not found.
    let (mut card, s) = Script::fresh();
    s.expect_ok(SELECT_AP)
        .expect(&read_sfi(0x0001, 256), &[0x6A, 0x82])
        .expect(&select_ef(0x0001), &[0x6A, 0x82]);
    assert_eq!(
        card.read_certificate(CertificateFile::Signature),
        Err(CardError::FileNotFound)
    );
    assert_eq!(card.sfi_support().read, Support::Unknown);
    s.done();
}

#[test]
fn no_current_ef_after_an_sfi_read_selects_it() {
    let (mut card, s) = Script::fresh();
    let file = cert(400);
    s.expect_ok(SELECT_AP)
        .expect(&read_sfi(0x000A, 256), &with_sw(&file[..256], 0x9000))
        .expect(&read(256, 144), &[0x69, 0x86])
        .expect_ok(&select_ef(0x000A))
        .expect(&read(256, 144), &with_sw(&file[256..], 0x9000));
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Ok(file)
    );
    assert_eq!(card.sfi_support().read, Support::No);
    s.done();
}

#[test]
fn sfi_verify_is_learnt_only_from_the_empty_verify() {
    let yes_read = SfiSupport {
        read: Support::Yes,
        ..SfiSupport::default()
    };
    // SFI reads known, VERIFY not: a login uses the classic form (never a PIN to probe).
    let (mut card, s) = Script::fresh();
    card.assume_sfi(yes_read);
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0018))
        .expect_ok("00 20 00 80 04 31 32 33 34");
    let pin = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
    assert_eq!(card.verify_pin(&pin), Ok(()));
    assert_eq!(card.sfi_support().verify, Support::Unknown);
    s.expect_ok(SELECT_AP); // logout on drop
    drop(card);
    s.done();
    // The empty VERIFY refused, or answering a counter above the maximum: not used.
    for answer in [[0x6A, 0x86], [0x6A, 0x88], [0x63, 0xC9]] {
        let (mut card, s) = Script::fresh();
        card.assume_sfi(yes_read);
        s.expect_ok(SELECT_AP)
            .expect("00 20 00 98", &answer)
            .expect_ok(&select_ef(0x0018))
            .expect("00 20 00 80", &[0x63, 0xC3]);
        assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
        assert_eq!(card.sfi_support().verify, Support::No, "{answer:02X?}");
        s.expect_ok(&select_ef(0x0018))
            .expect_ok("00 20 00 80 04 31 32 33 34");
        assert_eq!(card.verify_pin(&pin), Ok(()));
        s.expect_ok(SELECT_AP); // logout on drop
        drop(card);
        s.done();
    }
    // A blocked PIN answers 6984 to the empty VERIFY: the reference resolved.
    let (mut card, s) = Script::fresh();
    card.assume_sfi(yes_read);
    s.expect_ok(SELECT_AP).expect("00 20 00 9B", &[0x69, 0x84]);
    assert_eq!(card.pin_tries_left(KeyKind::Signature), Ok(0));
    assert_eq!(card.sfi_support().verify, Support::Yes);
    s.done();
    // Without SFI reads known, no SFI query at all.
    let (mut card, s) = Script::fresh();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0018))
        .expect("00 20 00 80", &[0x63, 0xC3]);
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
    assert_eq!(card.sfi_support(), SfiSupport::default());
    s.done();
}

#[test]
fn refused_sfi_verify_and_sign_fall_back() {
    let all_yes = SfiSupport {
        read: Support::Yes,
        verify: Support::Yes,
        sign: Support::Unknown,
    };
    let (mut card, s) = Script::fresh();
    card.assume_sfi(all_yes);
    // A parameter error: nothing compared; the classic VERIFY follows.
    s.expect_ok(SELECT_AP)
        .expect("00 20 00 98 04 31 32 33 34", &[0x6A, 0x86])
        .expect_ok(&select_ef(0x0018))
        .expect_ok("00 20 00 80 04 31 32 33 34");
    let pin = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
    assert_eq!(card.verify_pin(&pin), Ok(()));
    assert_eq!(card.sfi_support().verify, Support::No);
    s.done();
    // Signing with SFI refused: SELECT key EF and sign; then classic only.
    s.expect(&sign_command(0x97), &[0x6A, 0x86])
        .expect_ok(&select_ef(0x0017))
        .expect(&sign_command(0x80), &with_sw(&[2; 256], 0x9000));
    assert_eq!(
        card.sign(KeyKind::Authentication, &digest_info()),
        Ok(vec![2; 256])
    );
    assert_eq!(card.sfi_support().sign, Support::No);
    s.expect_ok(&select_ef(0x0017))
        .expect(&sign_command(0x80), &with_sw(&[3; 256], 0x9000));
    assert_eq!(
        card.sign(KeyKind::Authentication, &digest_info()),
        Ok(vec![3; 256])
    );
    s.expect_ok(SELECT_AP); // logout on drop
    drop(card);
    s.done();
    // Signing with SFI before login: 6982 is the card's verdict, not a refusal of the form.
    let (mut card, s) = Script::fresh();
    card.assume_sfi(all_yes);
    s.expect_ok(SELECT_AP)
        .expect(&sign_command(0x9A), &[0x69, 0x82]);
    assert_eq!(
        card.sign(KeyKind::Signature, &digest_info()),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    assert_eq!(card.sfi_support().sign, Support::Yes);
    s.done();
}

#[test]
fn change_pin_keeps_the_classic_verify_on_an_sfi_card() {
    let (mut card, s) = Script::fresh();
    card.assume_sfi(SfiSupport {
        read: Support::Yes,
        verify: Support::Yes,
        sign: Support::Yes,
    });
    // CHANGE REFERENCE DATA (P2 = 80) needs the PIN EF current: SELECT it, VERIFY P2 = 80.
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0018))
        .expect_ok("00 20 00 80 04 31 32 33 34")
        .expect_ok("00 24 01 80 04 39 38 37 36");
    let old = Pin::parse(KeyKind::Authentication, b"1234").unwrap();
    let new = Pin::parse(KeyKind::Authentication, b"9876").unwrap();
    assert_eq!(card.change_pin(&old, &new), Ok(()));
    s.expect_ok(SELECT_AP); // logout on drop
    drop(card);
    s.done();
}

fn pss_probe(p2: u8) -> String {
    format!("80 2A 04 {p2:02X} 21 {} 00", vec!["00"; 33].join(" "))
}

#[test]
fn pss_probe_uses_the_sfi_form_on_an_sfi_card() {
    let read_yes = SfiSupport {
        read: Support::Yes,
        ..SfiSupport::default()
    };
    // P1 = 04 and P2 = 97 both understood: one APDU, and signing with SFI is proven.
    let (mut card, s) = Script::fresh();
    card.assume_sfi(read_yes);
    s.expect_ok(SELECT_AP)
        .expect(&pss_probe(0x97), &[0x69, 0x82]);
    assert_eq!(card.pss_support(), Ok(true));
    assert_eq!(card.sfi_support().sign, Support::Yes);
    assert_eq!(card.apdus_sent(), 2);
    s.done();
    // A PSS signature then names the key too.
    let hash = [0x11u8; PSS_HASH_LEN];
    s.expect(
        &format!("80 2A 04 97 20 {} 00", vec!["11"; 32].join(" ")),
        &with_sw(&[9; 256], 0x9000),
    );
    assert_eq!(
        card.sign_pss_sha256(KeyKind::Authentication, &hash),
        Ok(vec![9; 256])
    );
    s.done();

    // 6A86 to the SFI probe is ambiguous: the classic probe decides. PSS yes → SFI signing no.
    let (mut card, s) = Script::fresh();
    card.assume_sfi(read_yes);
    s.expect_ok(SELECT_AP)
        .expect(&pss_probe(0x97), &[0x6A, 0x86])
        .expect_ok(&select_ef(0x0017))
        .expect(&pss_probe(0x80), &[0x67, 0x00]);
    assert_eq!(card.pss_support(), Ok(true));
    assert_eq!(card.sfi_support().sign, Support::No);
    s.done();
    // Both 6A86: no PSS; nothing learnt about SFI signing.
    let (mut card, s) = Script::fresh();
    card.assume_sfi(read_yes);
    s.expect_ok(SELECT_AP)
        .expect(&pss_probe(0x97), &[0x6A, 0x86])
        .expect_ok(&select_ef(0x0017))
        .expect(&pss_probe(0x80), &[0x6A, 0x86]);
    assert_eq!(card.pss_support(), Ok(false));
    assert_eq!(card.sfi_support().sign, Support::Unknown);
    s.done();
    // SFI signing already proven: 6A86 can only mean "no P1 = 04".
    let (mut card, s) = Script::fresh();
    card.assume_sfi(SfiSupport {
        read: Support::Yes,
        verify: Support::Yes,
        sign: Support::Yes,
    });
    s.expect_ok(SELECT_AP)
        .expect(&pss_probe(0x97), &[0x6A, 0x86]);
    assert_eq!(card.pss_support(), Ok(false));
    s.done();
    // A card without SFI: the classic probe only.
    let (mut card, s) = Script::new();
    s.expect_ok(SELECT_AP)
        .expect_ok(&select_ef(0x0017))
        .expect(&pss_probe(0x80), &[0x69, 0x82]);
    assert_eq!(card.pss_support(), Ok(true));
    s.done();
}
