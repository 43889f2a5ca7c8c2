//! Fault injection through `VirtualCard::faults_mut` and `transmit`.

use jpki_virtual_card::apdu::unhex;
use jpki_virtual_card::{test_state, FaultKind, Profile, VirtualCard};

fn card() -> VirtualCard {
    let mut c = VirtualCard::new(test_state(), Profile::Conservative);
    assert_eq!(
        c.process_apdu(&unhex("00A4040C0AD392F000260100000001").unwrap()),
        [0x90, 0x00]
    );
    assert_eq!(
        c.process_apdu(&unhex("00A4020C02000A").unwrap()),
        [0x90, 0x00]
    );
    c
}

fn raw(c: &mut VirtualCard, hex: &str) -> Vec<u8> {
    c.process_apdu(&unhex(hex).unwrap())
}

#[test]
fn truncate_garbage_trailing_and_sw() {
    let mut c = card();
    c.faults_mut().apply_spec("truncate 1 ins=b0").unwrap();
    assert_eq!(raw(&mut c, "00B0000004").len(), 1);
    assert_eq!(
        raw(&mut c, "00B0000004").len(),
        6,
        "armed for one APDU only"
    );
    c.faults_mut().apply_spec("garbage 3").unwrap();
    let r = raw(&mut c, "00B0000004");
    assert_eq!((r.len(), &r[4..]), (9, &[0xA5, 0xA5, 0xA5, 0x90, 0x00][..]));
    c.faults_mut().apply_spec("trailing 2").unwrap();
    assert_eq!(&raw(&mut c, "00B0000004")[4..], &[0x90, 0x00, 0xA5, 0xA5]);
    c.faults_mut().apply_spec("sw 6f00 ins=a4 count=2").unwrap();
    assert_eq!(
        raw(&mut c, "00B0000004")[4..],
        [0x90, 0x00],
        "INS does not match"
    );
    assert_eq!(raw(&mut c, "00A4020C02000A"), [0x6F, 0x00]);
    assert_eq!(raw(&mut c, "00A4020C02000A"), [0x6F, 0x00]);
    assert_eq!(raw(&mut c, "00A4020C02000A"), [0x90, 0x00]);
    assert!(c.faults_mut().is_empty());
}

#[test]
fn corrupt_flips_one_data_byte() {
    let mut c = card();
    let good = raw(&mut c, "00B0000004");
    c.faults_mut().apply_spec("corrupt 1 ins=b0").unwrap();
    let bad = raw(&mut c, "00B0000004");
    assert_eq!(bad[1], good[1] ^ 0xFF);
    assert_eq!((&bad[..1], &bad[2..]), (&good[..1], &good[2..]));
    c.faults_mut().apply_spec("corrupt 99").unwrap();
    assert_eq!(
        raw(&mut c, "00A4020C02000A"),
        [0x90, 0x00],
        "no data: not counted"
    );
    let last = raw(&mut c, "00B0000004");
    assert_eq!((last[3], &last[4..]), (good[3] ^ 0xFF, &[0x90, 0x00][..]));
    assert!(c.faults_mut().is_empty());
}

#[test]
fn more_data_61_then_get_response() {
    let mut c = card();
    let full = raw(&mut c, "00B0000000");
    c.faults_mut().apply_spec("61 ins=b0").unwrap();
    assert_eq!(raw(&mut c, "00B0000000"), [0x61, 0x00]);
    let part = raw(&mut c, "00C0000080");
    assert_eq!(part.len(), 0x82);
    assert_eq!(&part[0x80..], &[0x61, 0x80]);
    let rest = raw(&mut c, "00C0000000");
    assert_eq!(&rest[rest.len() - 2..], &[0x90, 0x00]);
    let mut joined = part[..0x80].to_vec();
    joined.extend_from_slice(&rest[..rest.len() - 2]);
    joined.extend_from_slice(&[0x90, 0x00]);
    assert_eq!(joined, full);
    assert_eq!(raw(&mut c, "00C0000010"), [0x69, 0x85]);
}

#[test]
fn wrong_le_6c_then_retry() {
    let mut c = card();
    c.faults_mut().arm(FaultKind::WrongLe6C, Some(0xB0), 1);
    assert_eq!(raw(&mut c, "00B0000010"), [0x6C, 0x10]);
    assert_eq!(raw(&mut c, "00B0000010").len(), 0x12);
}

#[test]
fn certificate_length_lie_on_first_read() {
    let mut c = card();
    let der_len = test_state().auth_cert.len() - 4;
    c.faults_mut().apply_spec("certlen +100").unwrap();
    let r = raw(&mut c, "00B0000004");
    assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])), der_len + 100);
    let r = raw(&mut c, "00B0000004");
    assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])), der_len);
    c.faults_mut().apply_spec("certlen -50").unwrap();
    raw(&mut c, "00B0000104"); // not offset 0: no lie, still armed
    let r = raw(&mut c, "00B0000004");
    assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])), der_len - 50);
}

#[test]
fn drop_delay_and_remove_after() {
    let mut c = card();
    c.faults_mut().apply_spec("drop").unwrap();
    let r = c.transmit(&unhex("00B0000004").unwrap());
    assert_eq!((r.response, r.disconnect), (None, true));
    c.faults_mut().apply_spec("delay 30").unwrap();
    let r = c.transmit(&unhex("00B0000004").unwrap());
    assert_eq!(r.delay_ms, 30);
    assert!(r.response.is_some());
    c.faults_mut().apply_spec("remove-after 2").unwrap();
    let r = c.transmit(&unhex("00B0000004").unwrap());
    assert!(!r.disconnect);
    let r = c.transmit(&unhex("00B0000004").unwrap());
    assert!(r.disconnect && r.response.is_some());
    // In-process: disconnect powers the card off.
    c.faults_mut().apply_spec("remove-after 1").unwrap();
    assert!(!raw(&mut c, "00B0000004").is_empty());
    assert!(raw(&mut c, "00B0000004").is_empty());
    assert!(!c.is_powered());
}

#[test]
fn latency_is_reported() {
    let mut c = card();
    c.set_latency(5, 40);
    assert_eq!(c.transmit(&unhex("00B0000004").unwrap()).delay_ms, 5);
    c.process_apdu(&unhex("00A4020C020018").unwrap());
    c.process_apdu(&unhex("002000800431323334").unwrap());
    c.process_apdu(&unhex("00A4020C020017").unwrap());
    let mut cmd = vec![0x80, 0x2A, 0x00, 0x80, 0x20];
    cmd.extend([7u8; 32]);
    cmd.push(0);
    assert_eq!(c.transmit(&cmd).delay_ms, 45);
}

#[test]
fn external_reset_clears_security_state() {
    let mut c = card();
    c.process_apdu(&unhex("00A4020C020018").unwrap());
    assert_eq!(raw(&mut c, "002000800431323334"), [0x90, 0x00]);
    c.external_reset();
    assert_eq!(
        raw(&mut c, "00A4020C020017"),
        [0x6A, 0x82],
        "no AP selected any more"
    );
}
