//! The `jpki-virtual-card` binary against a fake vpcd driver on loopback: protocol framing,
//! control socket, APDU log redaction, and PIN counters persisting across restarts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jpki_virtual_card::apdu::unhex;
use jpki_virtual_card::test_state;

mod fake_vpcd;
use fake_vpcd::{apdu, ctl, recv, send, Card, Driver, BIN};

fn start(dir: &Path, port: u16) -> Card {
    let child = Command::new(BIN)
        .arg("run")
        .arg("--state")
        .arg(dir.join("card.state"))
        .arg("--control")
        .arg(dir.join("ctl.sock"))
        .arg("--apdu-log")
        .arg(dir.join("apdu.log"))
        .args(["--port", &port.to_string()])
        .spawn()
        .unwrap();
    Card { child }
}

fn wait_for_exit(card: &mut Card) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if card.child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("card process did not quit");
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jpki-vc-vpcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn vpcd_session_control_log_and_persistence() {
    let dir = temp_dir();
    test_state().save(&dir.join("card.state")).unwrap();
    let driver = Driver::new();
    let mut card = start(&dir, driver.port());
    let mut s = driver.accept();
    let sock = dir.join("ctl.sock");

    // Controls: ATR, power on; then APDUs.
    send(&mut s, &[0x04]);
    assert_eq!(recv(&mut s).unwrap(), unhex("3BE000FF8131FE4514").unwrap());
    send(&mut s, &[0x01]);
    assert_eq!(apdu(&mut s, "00A4040C0AD392F000260100000001"), [0x90, 0x00]);
    assert_eq!(apdu(&mut s, "00A4020C020018"), [0x90, 0x00]);
    assert_eq!(apdu(&mut s, "002000800430303030"), [0x63, 0xC2]);
    assert_eq!(
        apdu(&mut s, "0020008003303030"),
        [0x63, 0xC1],
        "malformed, counted"
    );
    assert_eq!(apdu(&mut s, "002000800430303031"), [0x63, 0xC0]);
    assert_eq!(apdu(&mut s, "002000800431323334"), [0x69, 0x84]);

    let stats = ctl(&sock, "stats");
    assert!(stats.starts_with("ok {"), "{stats}");
    assert!(stats.contains("\"malformed_verify_count\":1"), "{stats}");
    assert!(stats.contains("\"verify_count\":4"), "{stats}");
    assert!(ctl(&sock, "status").contains("auth_tries_left=0"));

    // Faults through the control socket.
    assert!(ctl(&sock, "fault sw 6f00 ins=a4").starts_with("ok"));
    assert!(ctl(&sock, "fault nonsense").starts_with("err"));
    assert_eq!(apdu(&mut s, "00A4020C02000A"), [0x6F, 0x00]);
    assert_eq!(apdu(&mut s, "00A4020C02000A"), [0x90, 0x00]);

    // External reset: the driver sees nothing, but the AP is no longer selected.
    assert_eq!(ctl(&sock, "reset"), "ok reset");
    assert_eq!(apdu(&mut s, "00A4020C02000A"), [0x6A, 0x82]);

    // Removal closes the connection; insertion reconnects.
    assert_eq!(ctl(&sock, "remove"), "ok removed");
    assert!(recv(&mut s).is_none(), "connection closed on removal");
    assert_eq!(ctl(&sock, "insert"), "ok inserted");
    let mut s = driver.accept();
    send(&mut s, &[0x01]);
    assert_eq!(apdu(&mut s, "00A4040C0AD392F000260100000001"), [0x90, 0x00]);

    // `drop` fault = no answer and removal.
    assert!(ctl(&sock, "fault drop ins=a4").starts_with("ok"));
    send(&mut s, &unhex("00A4020C02000A").unwrap());
    assert!(recv(&mut s).is_none());
    assert!(ctl(&sock, "status").contains("inserted=false"));

    assert_eq!(ctl(&sock, "quit"), "ok bye");
    wait_for_exit(&mut card);

    // The blocked PIN stays blocked after a restart.
    let mut card = start(&dir, driver.port());
    let mut s = driver.accept();
    send(&mut s, &[0x01]);
    assert_eq!(apdu(&mut s, "00A4040C0AD392F000260100000001"), [0x90, 0x00]);
    assert_eq!(apdu(&mut s, "00A4020C020018"), [0x90, 0x00]);
    assert_eq!(apdu(&mut s, "00200080"), [0x63, 0xC0]);
    assert_eq!(ctl(&sock, "quit"), "ok bye");
    wait_for_exit(&mut card);

    // The log has one line per APDU and never the PIN bytes.
    let log = std::fs::read_to_string(dir.join("apdu.log")).unwrap();
    assert!(
        log.contains("0020008004<redacted len=4 format=ok> 63c2 0 9"),
        "{log}"
    );
    assert!(log.contains("0020008003<redacted len=3 format=malformed> 63c1 0 8"));
    for pin_hex in ["30303030", "303030", "30303031", "31323334"] {
        assert!(
            !log.contains(pin_hex),
            "PIN bytes {pin_hex} leaked into the log"
        );
    }
    assert!(log.lines().any(|l| l.contains(" 00a4020c02000a 6f00 0 7")));
    std::fs::remove_dir_all(&dir).unwrap();
}
