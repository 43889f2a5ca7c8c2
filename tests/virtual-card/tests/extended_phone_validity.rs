//! Extended-length READ BINARY modes, the phone profile and renewed certificates.

use der::Decode;
use jpki_virtual_card::apdu::unhex;
use jpki_virtual_card::{
    test_state, ExtendedApdu, NotAfter, Profile, Token, VirtualCard, DEFAULT_AUTH_PIN, PHONE_ATR,
    PHONE_TOKEN_LABEL,
};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

const JPKI_AID: &str = "D392F000260100000001";
const TEXT_AID: &str = "D3921000310001010408";
/// READ BINARY at offset 0 with the extended Le 00 00 00 (65536).
const EXT_READ: &str = "00B00000000000";

fn tx(card: &mut VirtualCard, hex: &str) -> (Vec<u8>, u16) {
    let r = card.process_apdu(&unhex(hex).expect("test APDU hex"));
    assert!(r.len() >= 2, "no status word for {hex}: {r:02x?}");
    let (data, sw) = r.split_at(r.len() - 2);
    (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
}

fn sw(card: &mut VirtualCard, hex: &str) -> u16 {
    tx(card, hex).1
}

fn phone() -> VirtualCard {
    let mut card = VirtualCard::new(test_state(), Profile::Conservative);
    card.set_token(Token::Phone);
    card
}

fn select_ef(card: &mut VirtualCard, fid: &str) {
    assert_eq!(sw(card, &format!("00A4040C0A{JPKI_AID}")), 0x9000);
    assert_eq!(sw(card, &format!("00A4020C02{fid}")), 0x9000);
}

fn verify_auth(card: &mut VirtualCard) {
    assert_eq!(sw(card, "00A4020C020018"), 0x9000);
    let pin: String = DEFAULT_AUTH_PIN
        .bytes()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(sw(card, &format!("0020008004{pin}")), 0x9000);
}

/// The EF content: the DER, then FF filler.
fn auth_ef() -> Vec<u8> {
    let der = test_state().auth_certificate().to_vec();
    let mut ef = der.clone();
    ef.resize((der.len() + 32).div_ceil(256) * 256, 0xFF);
    ef
}

#[test]
fn extended_profile_returns_the_whole_file_in_one_response() {
    let mut card = VirtualCard::new(test_state(), Profile::Extended);
    select_ef(&mut card, "000A");
    let (data, sw) = tx(&mut card, EXT_READ);
    assert_eq!(sw, 0x9000);
    assert_eq!(data, auth_ef());
    // From an offset: the rest of the file; an explicit extended Le: that many bytes.
    let (data, _) = tx(&mut card, "00B00100000000");
    assert_eq!(data, auth_ef()[0x100..]);
    let (data, _) = tx(&mut card, "00B0000000012C");
    assert_eq!(data, auth_ef()[..300]);
    let stats = card.stats();
    assert_eq!((stats.extended_apdus, stats.reader_refused_apdus), (3, 0));
}

#[test]
fn conservative_and_phone_profiles_answer_wrong_length() {
    for mut card in [
        VirtualCard::new(test_state(), Profile::Conservative),
        phone(),
    ] {
        select_ef(&mut card, "000B");
        assert_eq!(
            tx(&mut card, EXT_READ),
            (vec![], 0x6700),
            "{:?}",
            card.token()
        );
        // The short form still works afterwards.
        assert_eq!(sw(&mut card, "00B0000004"), 0x9000);
        assert_eq!(card.stats().extended_apdus, 1);
    }
}

#[test]
fn modes_override_the_profile() {
    let ef = {
        let s = test_state();
        let mut v = s.auth_ca_certificate().to_vec();
        v.resize((v.len() + 32).div_ceil(256) * 256, 0xFF);
        v
    };
    for (mode, profile, expected) in [
        ("accept", Profile::Conservative, (ef.clone(), 0x9000)),
        ("refuse", Profile::Extended, (vec![], 0x6700)),
        ("sw:6A86", Profile::Extended, (vec![], 0x6A86)),
        ("SW:6f00", Profile::Conservative, (vec![], 0x6F00)),
    ] {
        let mut card = VirtualCard::new(test_state(), profile);
        card.set_extended_apdu(mode.parse().unwrap());
        select_ef(&mut card, "000B");
        assert_eq!(tx(&mut card, EXT_READ), expected, "{mode} {profile:?}");
    }
    for bad in ["", "sw:123", "sw:12345", "sw:zzzz", "maybe"] {
        assert!(bad.parse::<ExtendedApdu>().is_err(), "{bad:?}");
    }
    assert_eq!(
        "sw:6a86".parse::<ExtendedApdu>().unwrap().to_string(),
        "sw:6A86"
    );
}

#[test]
fn other_extended_commands_stay_wrong_length() {
    let mut card = VirtualCard::new(test_state(), Profile::Extended);
    card.set_extended_apdu(ExtendedApdu::Accept);
    select_ef(&mut card, "0017");
    // An extended COMPUTE DIGITAL SIGNATURE and an extended SELECT.
    assert_eq!(sw(&mut card, "802A00800000010000"), 0x6700);
    assert_eq!(sw(&mut card, "00A4020C0000020017"), 0x6700);
}

#[test]
fn drop_mode_gives_no_answer_and_leaves_the_card_as_it_was() {
    let mut card = VirtualCard::new(test_state(), Profile::Extended);
    card.set_extended_apdu(ExtendedApdu::Drop);
    select_ef(&mut card, "000A");
    let before = card.stats().apdus;
    assert!(card.process_apdu(&unhex(EXT_READ).unwrap()).is_empty());
    assert!(card.is_powered());
    // The selection survived: the card never saw the command.
    let (data, status) = tx(&mut card, "00B0000004");
    assert_eq!((data, status), (auth_ef()[..4].to_vec(), 0x9000));
    let stats = card.stats();
    assert_eq!(
        stats.apdus,
        before + 1,
        "the dropped APDU is not a card APDU"
    );
    assert_eq!((stats.extended_apdus, stats.reader_refused_apdus), (1, 1));
    // Short APDUs are never dropped.
    assert_eq!(sw(&mut card, "00B0000000"), 0x9000);
    assert_eq!(card.stats().reader_refused_apdus, 1);
}

#[test]
fn phone_profile_token_label_atr_and_applications() {
    let mut card = phone();
    assert_eq!(card.atr(), PHONE_ATR);
    select_ef(&mut card, "0006");
    let (data, status) = tx(&mut card, "00B0000020");
    assert_eq!(status, 0x9000);
    assert_eq!(String::from_utf8_lossy(&data).trim_end(), PHONE_TOKEN_LABEL);
    // Only the JPKI AP is assumed on the phone.
    assert_eq!(sw(&mut card, &format!("00A4040C0A{TEXT_AID}")), 0x6A82);
    // The card profile keeps its label.
    let mut card = VirtualCard::new(test_state(), Profile::Conservative);
    select_ef(&mut card, "0006");
    let (data, _) = tx(&mut card, "00B0000020");
    assert_eq!(String::from_utf8_lossy(&data).trim_end(), "JPKIAPICCTOKEN2");
}

#[test]
fn phone_auth_certificate_needs_the_auth_pin_in_this_session() {
    let mut card = phone();
    select_ef(&mut card, "000A");
    assert_eq!(sw(&mut card, "00B0000004"), 0x6982);
    // The CA certificate stays public.
    assert_eq!(sw(&mut card, "00A4020C02000B"), 0x9000);
    assert_eq!(sw(&mut card, "00B0000004"), 0x9000);
    verify_auth(&mut card);
    assert_eq!(sw(&mut card, "00A4020C02000A"), 0x9000);
    let (data, sw_) = tx(&mut card, "00B0000004");
    assert_eq!((data, sw_), (auth_ef()[..4].to_vec(), 0x9000));
    // A new session (reset) or re-selecting the AP closes it again.
    card.reset();
    select_ef(&mut card, "000A");
    assert_eq!(sw(&mut card, "00B0000004"), 0x6982);
    // The card profiles read it without a PIN.
    let mut card = VirtualCard::new(test_state(), Profile::Conservative);
    select_ef(&mut card, "000A");
    assert_eq!(sw(&mut card, "00B0000004"), 0x9000);
}

fn not_after(der: &[u8]) -> std::time::Duration {
    let c = Certificate::from_der(der).unwrap();
    c.tbs_certificate.validity.not_after.to_unix_duration()
}

fn verifies(cert: &[u8], ca: &[u8]) -> bool {
    let cert = Certificate::from_der(cert).unwrap();
    let ca = Certificate::from_der(ca).unwrap();
    let spki = der::Encode::to_der(&ca.tbs_certificate.subject_public_key_info).unwrap();
    let key = RsaPublicKey::from_public_key_der(&spki).unwrap();
    let tbs = der::Encode::to_der(&cert.tbs_certificate).unwrap();
    key.verify(
        Pkcs1v15Sign::new::<Sha256>(),
        &Sha256::digest(tbs),
        cert.signature.raw_bytes(),
    )
    .is_ok()
}

#[test]
fn renewed_certificates_have_the_asked_validity_and_the_same_ca() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for days in [30i64, -10, 3650] {
        let mut s = test_state();
        let old_auth = s.auth_certificate().to_vec();
        s.renew_certificates(NotAfter::Days(days)).unwrap();
        for (cert, ca) in [
            (s.auth_certificate(), s.auth_ca_certificate()),
            (s.sign_certificate(), s.sign_ca_certificate()),
        ] {
            let end = not_after(cert).as_secs() as i64;
            assert!((end - (now + days * 86_400)).abs() < 120, "{days}: {end}");
            assert!(verifies(cert, ca), "signed by the same CA");
            let c = Certificate::from_der(cert).unwrap();
            let start = c
                .tbs_certificate
                .validity
                .not_before
                .to_unix_duration()
                .as_secs() as i64;
            assert!(start < end && end - start > 4 * 365 * 86_400);
        }
        let old = Certificate::from_der(&old_auth).unwrap();
        let new = Certificate::from_der(s.auth_certificate()).unwrap();
        assert_ne!(
            old.tbs_certificate.serial_number,
            new.tbs_certificate.serial_number
        );
        assert_eq!(
            old.tbs_certificate.subject_public_key_info,
            new.tbs_certificate.subject_public_key_info,
            "same card key"
        );
    }
    let mut s = test_state();
    s.renew_certificates(NotAfter::parse_date("2027-01-31").unwrap())
        .unwrap();
    let c = Certificate::from_der(s.sign_certificate()).unwrap();
    assert_eq!(
        c.tbs_certificate.validity.not_after.to_string(),
        "2027-01-31T14:59:59Z"
    );
    for bad in ["2027-02-30", "2027-1", "x", "2060-01-01"] {
        assert!(NotAfter::parse_date(bad).is_err(), "{bad}");
    }
}

#[test]
fn ca_keys_persist_in_the_state_file() {
    let dir = std::env::temp_dir().join(format!("vc-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("card.state");
    let s = test_state();
    s.save(&path).unwrap();
    let mut loaded = jpki_virtual_card::CardState::load(&path).unwrap();
    loaded.renew_certificates(NotAfter::Days(5)).unwrap();
    assert!(verifies(
        loaded.auth_certificate(),
        loaded.auth_ca_certificate()
    ));
    assert!(verifies(
        loaded.sign_certificate(),
        loaded.sign_ca_certificate()
    ));
    loaded.save(&path).unwrap();
    let again = jpki_virtual_card::CardState::load(&path).unwrap();
    assert_eq!(again.auth_certificate(), loaded.auth_certificate());
    std::fs::remove_dir_all(&dir).unwrap();
}
