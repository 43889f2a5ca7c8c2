//! The binary's extended-APDU, phone and validity options and controls against a fake vpcd:
//! the phone profile's ATR and PIN-gated certificate, the extended-APDU modes (a reader's
//! `drop` closes the connection and the card comes back with its state) and renewed
//! certificates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use der::Decode;
use jpki_virtual_card::apdu::unhex;
use jpki_virtual_card::{test_state, CardState, PHONE_ATR};
use x509_cert::Certificate;

mod fake_vpcd;
use fake_vpcd::{apdu, ctl, recv, send, Card, Driver, BIN};

fn start(dir: &Path, port: u16, extra: &[&str]) -> Card {
    let child = Command::new(BIN)
        .arg("run")
        .arg("--state")
        .arg(dir.join("card.state"))
        .arg("--control")
        .arg(dir.join("ctl.sock"))
        .arg("--apdu-log")
        .arg(dir.join("apdu.log"))
        .args(["--port", &port.to_string()])
        .args(extra)
        .spawn()
        .unwrap();
    Card { child }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jpki-vc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn auth_not_after(state: &Path) -> i64 {
    let s = CardState::load(state).unwrap();
    let c = Certificate::from_der(s.auth_certificate()).unwrap();
    c.tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs() as i64
}

#[test]
fn phone_profile_extended_modes_and_certificate_renewal() {
    let dir = temp_dir("modes");
    let state = dir.join("card.state");
    test_state().save(&state).unwrap();
    let driver = Driver::new();
    let mut card = start(
        &dir,
        driver.port(),
        &[
            "--profile",
            "phone",
            "--extended-apdu",
            "drop",
            "--cert-days",
            "30",
        ],
    );
    let mut s = driver.accept();
    let sock = dir.join("ctl.sock");
    let end = auth_not_after(&state);
    assert!(
        (end - (unix_now() + 30 * 86_400)).abs() < 300,
        "--cert-days 30: {end}"
    );

    send(&mut s, &[0x04]);
    assert_eq!(recv(&mut s).unwrap(), PHONE_ATR);
    send(&mut s, &[0x01]);
    assert_eq!(apdu(&mut s, "00A4040C0AD392F000260100000001"), [0x90, 0x00]);
    assert_eq!(apdu(&mut s, "00A4020C02000A"), [0x90, 0x00]);
    assert_eq!(
        apdu(&mut s, "00B0000004"),
        [0x69, 0x82],
        "auth cert before the PIN"
    );
    let label = apdu(&mut s, "00A4020C020006");
    assert_eq!(label, [0x90, 0x00]);
    let label = apdu(&mut s, "00B0000020");
    assert!(label.starts_with(b"JPKIAPGPSETOKEN "), "{label:02x?}");
    assert_eq!(apdu(&mut s, "00A4020C02000B"), [0x90, 0x00]);

    // drop: no answer, the connection closes, the card comes back at once with its state.
    let power_ons = |sock: &Path| {
        let stats = ctl(sock, "stats");
        let at = stats.find("\"power_ons\":").unwrap() + 12;
        stats[at..].split(',').next().unwrap().to_string()
    };
    let before = power_ons(&sock);
    send(&mut s, &unhex("00B00000000000").unwrap());
    assert!(recv(&mut s).is_none(), "no answer to a dropped APDU");
    let mut s = driver.accept();
    let r = apdu(&mut s, "00B0000004");
    assert_eq!(r[4..], [0x90, 0x00], "EF 000B still selected, no reset");
    let stats = ctl(&sock, "stats");
    assert!(stats.contains("\"extended_apdus\":1"), "{stats}");
    assert!(stats.contains("\"reader_refused_apdus\":1"), "{stats}");
    assert_eq!(power_ons(&sock), before, "the card was not powered again");
    let log = std::fs::read_to_string(dir.join("apdu.log")).unwrap();
    assert!(log.contains(" 00b00000000000 reader-dropped 0 7"), "{log}");

    // Modes at run time.
    assert!(ctl(&sock, "extended-apdu maybe").starts_with("err"));
    assert_eq!(
        ctl(&sock, "extended-apdu sw:6a86"),
        "ok extended-apdu sw:6A86"
    );
    assert_eq!(apdu(&mut s, "00B00000000000"), [0x6A, 0x86]);
    assert_eq!(
        ctl(&sock, "extended-apdu refuse"),
        "ok extended-apdu refuse"
    );
    assert_eq!(apdu(&mut s, "00B00000000000"), [0x67, 0x00]);
    assert_eq!(ctl(&sock, "extended-apdu card"), "ok extended-apdu card");
    assert_eq!(
        apdu(&mut s, "00B00000000000"),
        [0x67, 0x00],
        "phone = conservative"
    );
    assert_eq!(
        ctl(&sock, "extended-apdu accept"),
        "ok extended-apdu accept"
    );
    let whole = apdu(&mut s, "00B00000000000");
    let ca = test_state().auth_ca_certificate().to_vec();
    assert_eq!(whole[..ca.len()], ca[..]);
    assert!(ctl(&sock, "status").contains("extended_apdu=accept"));

    // Renewal at run time: expired 5 days ago, saved, same CA.
    assert!(ctl(&sock, "certs days x").starts_with("err"));
    assert!(ctl(&sock, "certs").starts_with("err"));
    assert!(ctl(&sock, "certs days -5").starts_with("ok certs not_after="));
    let end = auth_not_after(&state);
    assert!(
        (end - (unix_now() - 5 * 86_400)).abs() < 300,
        "certs days -5: {end}"
    );
    assert_eq!(
        ctl(&sock, "certs not-after 2031-04-01"),
        "ok certs not_after=2031-04-01T14:59:59Z"
    );

    assert_eq!(ctl(&sock, "quit"), "ok bye");
    let deadline = Instant::now() + Duration::from_secs(10);
    while card.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
