//! Behaviour of the virtual card, command by command, in both profiles.

use der::{Decode, Encode};
use jpki_virtual_card::apdu::unhex;
use jpki_virtual_card::{
    test_state, test_state_b, CardState, Profile, VirtualCard, ATRS, DEFAULT_AUTH_PIN,
    DEFAULT_KENHOJO_PIN, DEFAULT_SIGN_PASSWORD,
};
use rand::{Rng, SeedableRng};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

const JPKI_AID: &str = "D392F000260100000001";
const TEXT_AID: &str = "D39210003100010104 08";

fn card(profile: Profile) -> VirtualCard {
    VirtualCard::new(test_state(), profile)
}

/// Sends `hex` and splits the answer into (data, SW).
fn tx(card: &mut VirtualCard, hex: &str) -> (Vec<u8>, u16) {
    let cmd = unhex(hex).expect("test APDU hex");
    tx_bytes(card, &cmd)
}

fn tx_bytes(card: &mut VirtualCard, cmd: &[u8]) -> (Vec<u8>, u16) {
    let r = card.process_apdu(cmd);
    assert!(r.len() >= 2, "no status word for {cmd:02x?}: {r:02x?}");
    let (data, sw) = r.split_at(r.len() - 2);
    (data.to_vec(), u16::from_be_bytes([sw[0], sw[1]]))
}

fn sw(card: &mut VirtualCard, hex: &str) -> u16 {
    tx(card, hex).1
}

fn select_jpki(card: &mut VirtualCard) {
    assert_eq!(sw(card, &format!("00A4040C0A{JPKI_AID}")), 0x9000);
}

fn select_text(card: &mut VirtualCard) {
    assert_eq!(sw(card, &format!("00A4040C0A{TEXT_AID}")), 0x9000);
}

fn select_ef(card: &mut VirtualCard, fid: u16) -> u16 {
    sw(card, &format!("00A4020C02{fid:04X}"))
}

fn verify(card: &mut VirtualCard, pin: &[u8]) -> u16 {
    let mut cmd = vec![0x00, 0x20, 0x00, 0x80, pin.len() as u8];
    cmd.extend_from_slice(pin);
    tx_bytes(card, &cmd).1
}

fn verify_pin_ef(card: &mut VirtualCard, fid: u16, pin: &str) -> u16 {
    assert_eq!(select_ef(card, fid), 0x9000);
    verify(card, pin.as_bytes())
}

/// Reads a certificate EF the way OpenSC does: 4 bytes for the size, then 256-byte chunks.
fn read_cert(card: &mut VirtualCard, fid: u16) -> Result<Vec<u8>, u16> {
    assert_eq!(select_ef(card, fid), 0x9000);
    let (head, s) = tx(card, "00B0000004");
    if s != 0x9000 {
        return Err(s);
    }
    assert_eq!(&head[..2], &[0x30, 0x82]);
    let len = usize::from(u16::from_be_bytes([head[2], head[3]])) + 4;
    let mut out = Vec::new();
    while out.len() < len {
        let want = (len - out.len()).min(256);
        let (chunk, s) = tx(card, &format!("00B0{:04X}{:02X}", out.len(), want as u8));
        assert_eq!(s, 0x9000);
        out.extend(chunk);
    }
    Ok(out)
}

fn sign_apdu(card: &mut VirtualCard, p1: u8, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
    let mut cmd = vec![0x80, 0x2A, p1, p2, data.len() as u8];
    cmd.extend_from_slice(data);
    cmd.push(0x00);
    tx_bytes(card, &cmd)
}

fn digest_info_sha256(msg: &[u8]) -> Vec<u8> {
    let mut di = unhex("3031300d060960864801650304020105000420").unwrap();
    di.extend_from_slice(&Sha256::digest(msg));
    di
}

fn public_key(cert_der: &[u8]) -> RsaPublicKey {
    let cert = Certificate::from_der(cert_der).expect("certificate parses");
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    RsaPublicKey::from_public_key_der(&spki).unwrap()
}

// ---- ATR, SELECT --------------------------------------------------------------------------

#[test]
fn atr_default_and_selectable() {
    let mut c = card(Profile::Conservative);
    assert_eq!(c.atr(), unhex("3BE000FF8131FE4514").unwrap());
    assert_eq!(c.power_on(), c.atr());
    c.set_atr_index(1);
    assert_eq!(c.reset(), ATRS[1].to_vec());
    c.set_atr_index(ATRS.len() + 2);
    assert_eq!(c.atr(), ATRS[2].to_vec());
}

#[test]
fn select_applications_and_files() {
    for profile in [Profile::Conservative, Profile::Extended] {
        let mut c = card(profile);
        // No AP yet: EF selection fails.
        assert_eq!(select_ef(&mut c, 0x000A), 0x6A82);
        assert_eq!(sw(&mut c, "00A4040C0AD392F000260100000002"), 0x6A82);
        select_jpki(&mut c);
        for fid in [
            0x0001, 0x0002, 0x0006, 0x0009, 0x000A, 0x000B, 0x0017, 0x0018, 0x001A, 0x001B,
        ] {
            assert_eq!(select_ef(&mut c, fid), 0x9000, "{fid:04x}");
        }
        let ef8 = if profile == Profile::Extended {
            0x9000
        } else {
            0x6A82
        };
        assert_eq!(select_ef(&mut c, 0x0008), ef8);
        assert_eq!(select_ef(&mut c, 0x0011), 0x6A82);
        assert_eq!(select_ef(&mut c, 0x3F00), 0x6A82);
        assert_eq!(sw(&mut c, "00A4020002000A"), 0x6A86);
        assert_eq!(sw(&mut c, "00A4090C02000A"), 0x6A86);
        assert_eq!(sw(&mut c, "00A4020C03000A00"), 0x6700);
        // FCI form.
        let (fci, s) = tx(&mut c, &format!("00A404000A{JPKI_AID}00"));
        assert_eq!(s, 0x9000);
        assert_eq!(fci[..4], [0x6F, 0x0C, 0x84, 0x0A]);
        // Text AP and its EFs.
        select_text(&mut c);
        assert_eq!(select_ef(&mut c, 0x0011), 0x9000);
        assert_eq!(select_ef(&mut c, 0x000A), 0x6A82);
    }
}

#[test]
fn select_mf_quirk_only_in_extended() {
    let mut c = card(Profile::Extended);
    assert_eq!(sw(&mut c, "00A40000"), 0x6A86);
    select_jpki(&mut c);
    assert_eq!(sw(&mut c, "00A40000"), 0x9000);
    assert_eq!(select_ef(&mut c, 0x000A), 0x9000, "AP still selected");
    assert_eq!(sw(&mut c, "00A40000023F00"), 0x6A82);
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(sw(&mut c, "00A40000"), 0x6A86);
}

// ---- READ BINARY --------------------------------------------------------------------------

#[test]
fn read_public_certificates() {
    let state = test_state();
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(read_cert(&mut c, 0x000A).unwrap(), state.auth_certificate());
    assert_eq!(
        read_cert(&mut c, 0x000B).unwrap(),
        state.auth_ca_certificate()
    );
    assert_eq!(
        read_cert(&mut c, 0x0002).unwrap(),
        state.sign_ca_certificate()
    );
    assert_eq!(read_cert(&mut c, 0x0001), Err(0x6982));
}

#[test]
fn read_binary_offsets_filler_and_le() {
    let der = test_state().auth_cert;
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(select_ef(&mut c, 0x000A), 0x9000);
    let (d, s) = tx(&mut c, "00B0000000");
    assert_eq!((d.len(), s), (256, 0x9000));
    // Whole file: DER followed by FF filler.
    let mut file = Vec::new();
    loop {
        let (d, s) = tx(&mut c, &format!("00B0{:04X}00", file.len()));
        if s == 0x6B00 {
            break;
        }
        assert_eq!(s, 0x9000);
        assert!(!d.is_empty());
        file.extend(d);
    }
    assert!(file.len() > der.len());
    assert_eq!(&file[..der.len()], &der[..]);
    assert!(file[der.len()..].iter().all(|b| *b == 0xFF));
    // Le beyond the end returns the rest.
    let (d, s) = tx(&mut c, &format!("00B0{:04X}00", file.len() - 3));
    assert_eq!((d.len(), s), (3, 0x9000));
    // Offset at end → 6B00; 15-bit offsets; P1 bit 8 without SFI support → 6A86.
    assert_eq!(sw(&mut c, &format!("00B0{:04X}01", file.len())), 0x6B00);
    assert_eq!(sw(&mut c, "00B07FFF01"), 0x6B00);
    assert_eq!(sw(&mut c, "00B08A0001"), 0x6A86);
    // Case 1 and case 3/4 forms are wrong lengths.
    assert_eq!(sw(&mut c, "00B00000"), 0x6700);
    assert_eq!(sw(&mut c, "00B000000100"), 0x6700);
}

#[test]
fn read_binary_sfi_in_extended() {
    let mut c = card(Profile::Extended);
    select_jpki(&mut c);
    let (d, s) = tx(&mut c, "00B08A0004");
    assert_eq!(s, 0x9000);
    assert_eq!(d[..2], [0x30, 0x82]);
    assert_eq!(
        sw(&mut c, "00B0810004"),
        0x6982,
        "sign cert by SFI still protected"
    );
}

#[test]
fn read_without_current_ef_and_protected_efs() {
    let mut c = card(Profile::Extended);
    assert_eq!(sw(&mut c, "00B0000004"), 0x6986);
    select_jpki(&mut c);
    assert_eq!(sw(&mut c, "00B0000004"), 0x6986);
    assert_eq!(select_ef(&mut c, 0x0009), 0x9000);
    assert_eq!(sw(&mut c, "00B0000001"), 0x6982);
    assert_eq!(verify_pin_ef(&mut c, 0x0018, DEFAULT_AUTH_PIN), 0x9000);
    assert_eq!(verify_pin_ef(&mut c, 0x001B, DEFAULT_SIGN_PASSWORD), 0x9000);
    assert_eq!(select_ef(&mut c, 0x0009), 0x9000);
    assert_eq!(
        sw(&mut c, "00B0000001"),
        0x6982,
        "0009 is not readable with either PIN"
    );
    assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
    assert_eq!(sw(&mut c, "00B0000001"), 0x6981);
    assert_eq!(select_ef(&mut c, 0x0008), 0x9000);
    assert_eq!(tx(&mut c, "00B0000000"), (vec![0x8F, 0x8F, 0x00], 0x9000));
}

#[test]
fn token_info_ef() {
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(select_ef(&mut c, 0x0006), 0x9000);
    let (d, s) = tx(&mut c, "00B0000000");
    assert_eq!((d.len(), s), (160, 0x9000));
    assert_eq!(&d[..32], b"JPKIAPICCTOKEN2                 ");
    let serial_a = d[80..96].to_vec();
    let mut b = VirtualCard::new(test_state_b(), Profile::Conservative);
    select_jpki(&mut b);
    assert_eq!(select_ef(&mut b, 0x0006), 0x9000);
    let (d, _) = tx(&mut b, "00B0000000");
    assert_ne!(serial_a, d[80..96].to_vec(), "serial differs per card");
    // MYNA reads only 0x20 bytes.
    let (d, s) = tx(&mut b, "00B0000020");
    assert_eq!((d.len(), s), (32, 0x9000));
}

// ---- VERIFY -------------------------------------------------------------------------------

#[test]
fn verify_counts_and_blocks_auth_pin() {
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(select_ef(&mut c, 0x0018), 0x9000);
    assert_eq!(sw(&mut c, "00200080"), 0x63C3);
    assert_eq!(verify(&mut c, b"0000"), 0x63C2);
    assert_eq!(sw(&mut c, "00200080"), 0x63C2, "query does not spend a try");
    assert_eq!(verify(&mut c, DEFAULT_AUTH_PIN.as_bytes()), 0x9000);
    assert!(c.state_dirty());
    assert!(!c.state_dirty(), "dirty only once");
    assert_eq!(
        sw(&mut c, "00200080"),
        0x63C3,
        "query after success is 63C<max>, not 9000"
    );
    assert_eq!(verify(&mut c, b"1111"), 0x63C2);
    assert_eq!(verify(&mut c, b"2222"), 0x63C1);
    assert_eq!(verify(&mut c, b"3333"), 0x63C0);
    assert_eq!(c.state().auth_tries_left, 0);
    assert_eq!(verify(&mut c, DEFAULT_AUTH_PIN.as_bytes()), 0x6984);
    assert_eq!(sw(&mut c, "00200080"), 0x63C0);
    // Blocked survives reset.
    c.reset();
    select_jpki(&mut c);
    assert_eq!(verify_pin_ef(&mut c, 0x0018, DEFAULT_AUTH_PIN), 0x6984);
    // Signing is not possible.
    assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
    assert_eq!(
        sign_apdu(&mut c, 0, 0x80, &digest_info_sha256(b"x")).1,
        0x6982
    );
}

#[test]
fn verify_sign_password_five_tries() {
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(select_ef(&mut c, 0x001B), 0x9000);
    assert_eq!(sw(&mut c, "00200080"), 0x63C5);
    for left in (0..5).rev() {
        assert_eq!(verify(&mut c, b"WRONG1"), 0x63C0 | left);
    }
    assert_eq!(verify(&mut c, DEFAULT_SIGN_PASSWORD.as_bytes()), 0x6984);
    // The auth PIN is independent.
    assert_eq!(verify_pin_ef(&mut c, 0x0018, DEFAULT_AUTH_PIN), 0x9000);
}

#[test]
fn malformed_pins_cost_a_try_and_are_counted() {
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(select_ef(&mut c, 0x001B), 0x9000);
    assert_eq!(
        verify(&mut c, b"abc123"),
        0x63C4,
        "lower case is malformed and wrong"
    );
    assert_eq!(verify(&mut c, b"AB1"), 0x63C3, "too short");
    assert_eq!(c.stats().malformed_verify_count, 2);
    assert_eq!(select_ef(&mut c, 0x0018), 0x9000);
    assert_eq!(verify(&mut c, b"12345"), 0x63C2);
    assert_eq!(verify(&mut c, b"12a4"), 0x63C1);
    assert_eq!(c.stats().malformed_verify_count, 4);
    assert_eq!(verify(&mut c, b"1234"), 0x9000);
    assert_eq!(c.stats().malformed_verify_count, 4);
    assert_eq!(c.stats().verify_count, 5);
    // The log form never contains the PIN.
    let r = c.transmit(&unhex("002000800431323334").unwrap());
    assert_eq!(r.command_for_log, "0020008004<redacted len=4 format=ok>");
    let r = c.transmit(&unhex("00200080033132FF").unwrap());
    assert_eq!(
        r.command_for_log,
        "0020008003<redacted len=3 format=malformed>"
    );
    let r = c.transmit(&unhex("00240180043132FF33").unwrap());
    assert!(r.command_for_log.starts_with("0024018004<redacted len=4"));
}

#[test]
fn verify_target_must_be_a_pin_ef() {
    let mut c = card(Profile::Conservative);
    assert_eq!(verify(&mut c, b"1234"), 0x6986);
    select_jpki(&mut c);
    assert_eq!(verify(&mut c, b"1234"), 0x6986);
    assert_eq!(select_ef(&mut c, 0x000A), 0x9000);
    assert_eq!(verify(&mut c, b"1234"), 0x6986);
    assert_eq!(sw(&mut c, "00200080"), 0x6986);
    assert_eq!(select_ef(&mut c, 0x0018), 0x9000);
    assert_eq!(
        sw(&mut c, "002000980431323334"),
        0x6A86,
        "SFI only in extended"
    );
    assert_eq!(sw(&mut c, "002001800431323334"), 0x6A86);
    assert_eq!(sw(&mut c, "00200080043132333400"), 0x6700, "Le on VERIFY");
    assert_eq!(c.state().auth_tries_left, 3);
}

#[test]
fn verify_by_sfi_in_extended() {
    let mut c = card(Profile::Extended);
    select_jpki(&mut c);
    assert_eq!(sw(&mut c, "00200098"), 0x63C3);
    assert_eq!(sw(&mut c, "0020009B"), 0x63C5);
    assert_eq!(sw(&mut c, "002000980431323334"), 0x9000);
    assert_eq!(sw(&mut c, "0020009B06414243313233"), 0x9000);
    assert_eq!(sw(&mut c, "0020008A"), 0x6A88, "SFI of a non-PIN EF");
    // Sign with both keys by SFI, without SELECT.
    let (sig, s) = sign_apdu(&mut c, 0, 0x97, &digest_info_sha256(b"m"));
    assert_eq!((sig.len(), s), (256, 0x9000));
    let (sig, s) = sign_apdu(&mut c, 0, 0x9A, &digest_info_sha256(b"m"));
    assert_eq!((sig.len(), s), (256, 0x9000));
}

// ---- COMPUTE DIGITAL SIGNATURE ------------------------------------------------------------

#[test]
fn sign_with_auth_key_verifies_with_cert() {
    let state = test_state();
    let public = public_key(state.auth_certificate());
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
    assert_eq!(
        sign_apdu(&mut c, 0, 0x80, &digest_info_sha256(b"hello")).1,
        0x6982
    );
    assert_eq!(verify_pin_ef(&mut c, 0x0018, DEFAULT_AUTH_PIN), 0x9000);
    // Reading other EFs keeps the security state.
    assert_eq!(read_cert(&mut c, 0x000A).unwrap(), state.auth_certificate());
    assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
    for msg in [&b"hello"[..], b"second signature after one VERIFY"] {
        let (sig, s) = sign_apdu(&mut c, 0, 0x80, &digest_info_sha256(msg));
        assert_eq!((sig.len(), s), (256, 0x9000));
        public
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), &sig)
            .expect("card signature verifies with the certificate key");
    }
    // The auth PIN does not open the signature key.
    assert_eq!(select_ef(&mut c, 0x001A), 0x9000);
    assert_eq!(
        sign_apdu(&mut c, 0, 0x80, &digest_info_sha256(b"x")).1,
        0x6982
    );
    assert_eq!(c.stats().signatures, 2);
}

#[test]
fn sign_with_sign_key_and_read_sign_cert() {
    let state = test_state();
    let public = public_key(state.sign_certificate());
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(verify_pin_ef(&mut c, 0x001B, DEFAULT_SIGN_PASSWORD), 0x9000);
    assert_eq!(read_cert(&mut c, 0x0001).unwrap(), state.sign_certificate());
    assert_eq!(select_ef(&mut c, 0x001A), 0x9000);
    for _ in 0..2 {
        let (sig, s) = sign_apdu(&mut c, 0, 0x80, &digest_info_sha256(b"doc"));
        assert_eq!(s, 0x9000);
        public
            .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(b"doc"), &sig)
            .unwrap();
    }
    // Sign password does not open the auth key.
    assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
    assert_eq!(
        sign_apdu(&mut c, 0, 0x80, &digest_info_sha256(b"x")).1,
        0x6982
    );
}

#[test]
fn sign_input_and_parameter_checks() {
    for profile in [Profile::Conservative, Profile::Extended] {
        let mut c = card(profile);
        select_jpki(&mut c);
        assert_eq!(verify_pin_ef(&mut c, 0x0018, DEFAULT_AUTH_PIN), 0x9000);
        // No key EF selected (a PIN EF is current).
        assert_eq!(sign_apdu(&mut c, 0, 0x80, &[1; 20]).1, 0x6985);
        assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
        assert_eq!(sign_apdu(&mut c, 0, 0x80, &[1; 245]).1, 0x9000);
        assert_eq!(sign_apdu(&mut c, 0, 0x80, &[1; 246]).1, 0x6700);
        assert_eq!(sign_apdu(&mut c, 6, 0x80, &[1; 32]).1, 0x6A86);
        let sfi_status = if profile == Profile::Extended {
            0x6A88
        } else {
            0x6A86
        };
        assert_eq!(sign_apdu(&mut c, 0, 0x81, &[1; 32]).1, sfi_status);
        assert_eq!(sign_apdu(&mut c, 0, 0x00, &[1; 32]).1, 0x6A86);
        let p1_status = if profile == Profile::Extended {
            0x9000
        } else {
            0x6A86
        };
        assert_eq!(sign_apdu(&mut c, 1, 0x80, &[1; 32]).1, p1_status);
        if profile == Profile::Conservative {
            assert_eq!(sign_apdu(&mut c, 0, 0x97, &[1; 32]).1, 0x6A86);
        }
        // Without Le, and with a short Le.
        assert_eq!(sw(&mut c, "802A00800101"), 0x6700);
        assert_eq!(sw(&mut c, "802A0080010180"), 0x6C00);
        // CLA 00 is not the signing class.
        assert_eq!(sw(&mut c, "002A0080010100"), 0x6E00);
        // Security state cleared by re-selecting the AP (OpenSC logout) and by reset.
        select_jpki(&mut c);
        assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
        assert_eq!(sign_apdu(&mut c, 0, 0x80, &[1; 20]).1, 0x6982);
        assert_eq!(verify_pin_ef(&mut c, 0x0018, DEFAULT_AUTH_PIN), 0x9000);
        c.reset();
        select_jpki(&mut c);
        assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
        assert_eq!(sign_apdu(&mut c, 0, 0x80, &[1; 20]).1, 0x6982);
        // Selecting another AP clears it too.
        assert_eq!(verify_pin_ef(&mut c, 0x0018, DEFAULT_AUTH_PIN), 0x9000);
        select_text(&mut c);
        select_jpki(&mut c);
        assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
        assert_eq!(sign_apdu(&mut c, 0, 0x80, &[1; 20]).1, 0x6982);
    }
}

#[test]
fn extended_signature_variants() {
    let state = test_state();
    let public = public_key(state.auth_certificate());
    let mut c = card(Profile::Extended);
    select_jpki(&mut c);
    assert_eq!(verify_pin_ef(&mut c, 0x0018, DEFAULT_AUTH_PIN), 0x9000);
    assert_eq!(select_ef(&mut c, 0x0017), 0x9000);
    let msg = b"extended profile";
    let hash = Sha256::digest(msg);
    // P1=01: card hashes, signs the bare hash.
    let (sig, s) = sign_apdu(&mut c, 1, 0x80, msg);
    assert_eq!(s, 0x9000);
    public
        .verify(Pkcs1v15Sign::new_unprefixed(), &hash, &sig)
        .unwrap();
    // P1=02: hash supplied, card wraps DigestInfo.
    let (sig, s) = sign_apdu(&mut c, 2, 0x80, &hash);
    assert_eq!(s, 0x9000);
    public
        .verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &sig)
        .unwrap();
    assert_eq!(sign_apdu(&mut c, 2, 0x80, &hash[..31]).1, 0x6700);
    // P1=03: card hashes and wraps.
    let (sig, s) = sign_apdu(&mut c, 3, 0x80, msg);
    assert_eq!(s, 0x9000);
    public
        .verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &sig)
        .unwrap();
    // P1=04: PSS over a supplied hash, salt 32, random salt.
    let (sig1, s) = sign_apdu(&mut c, 4, 0x80, &hash);
    assert_eq!(s, 0x9000);
    public
        .verify(Pss::new_with_salt::<Sha256>(32), &hash, &sig1)
        .unwrap();
    let (sig2, _) = sign_apdu(&mut c, 4, 0x80, &hash);
    assert_ne!(sig1, sig2, "PSS salt is random");
    assert_eq!(sign_apdu(&mut c, 4, 0x80, &[0; 33]).1, 0x6700);
    // P1=05: card hashes, PSS.
    let (sig, s) = sign_apdu(&mut c, 5, 0x80, msg);
    assert_eq!(s, 0x9000);
    public
        .verify(Pss::new_with_salt::<Sha256>(32), &hash, &sig)
        .unwrap();
}

// ---- CHANGE REFERENCE DATA ----------------------------------------------------------------

#[test]
fn change_reference_data() {
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(select_ef(&mut c, 0x0018), 0x9000);
    assert_eq!(sw(&mut c, "002401800439393939"), 0x6982);
    assert_eq!(verify(&mut c, b"1234"), 0x9000);
    assert_eq!(sw(&mut c, "0024018003393939"), 0x6A80);
    assert_eq!(sw(&mut c, "002401800439393961"), 0x6A80);
    assert_eq!(sw(&mut c, "002400800439393939"), 0x6A86);
    assert_eq!(sw(&mut c, "002401800439393939"), 0x9000);
    assert_eq!(c.state().auth_pin, "9999");
    assert!(c.state_dirty());
    assert_eq!(verify(&mut c, b"1234"), 0x63C2);
    assert_eq!(verify(&mut c, b"9999"), 0x9000);
    // Signature password: format 6–16 of A–Z0–9.
    assert_eq!(select_ef(&mut c, 0x001B), 0x9000);
    assert_eq!(verify(&mut c, b"ABC123"), 0x9000);
    assert_eq!(sw(&mut c, "0024018006616263313233"), 0x6A80);
    assert_eq!(sw(&mut c, "00240180085A59583938373635"), 0x9000);
    assert_eq!(c.state().sign_password, "ZYX98765");
    assert_eq!(c.stats().malformed_change_count, 3);
}

// ---- Text AP ------------------------------------------------------------------------------

#[test]
fn text_ap_pin_and_data() {
    let state = test_state();
    let mut c = card(Profile::Conservative);
    select_text(&mut c);
    assert_eq!(select_ef(&mut c, 0x0001), 0x9000);
    assert_eq!(sw(&mut c, "00B0000011"), 0x6982);
    assert_eq!(select_ef(&mut c, 0x0011), 0x9000);
    assert_eq!(sw(&mut c, "00200080"), 0x63C3);
    assert_eq!(verify(&mut c, b"0000"), 0x63C2);
    assert_eq!(verify(&mut c, DEFAULT_KENHOJO_PIN.as_bytes()), 0x9000);
    assert_eq!(c.state().kenhojo_tries_left, 3);
    assert_eq!(select_ef(&mut c, 0x0001), 0x9000);
    let (d, s) = tx(&mut c, "00B0000011");
    assert_eq!(s, 0x9000);
    assert_eq!(d[..2], [0x10, 0x0C]);
    assert_eq!(&d[2..14], state.personal.my_number.as_bytes());
    assert_eq!(select_ef(&mut c, 0x0002), 0x9000);
    let (d, s) = tx(&mut c, "00B0000000");
    assert_eq!(s, 0x9000);
    assert_eq!(d[..2], [0xFF, 0x20]);
    let name = state.personal.name.as_bytes();
    assert!(d.windows(name.len()).any(|w| w == name));
    // The JPKI AP's PIN state is independent of the text AP's.
    select_jpki(&mut c);
    assert_eq!(select_ef(&mut c, 0x0018), 0x9000);
    assert_eq!(sw(&mut c, "00200080"), 0x63C3);
}

// ---- Status words for malformed commands --------------------------------------------------

#[test]
fn class_instruction_and_length_errors() {
    for profile in [Profile::Conservative, Profile::Extended] {
        let mut c = card(profile);
        assert_eq!(sw(&mut c, "00"), 0x6700);
        assert_eq!(sw(&mut c, "00A404"), 0x6700);
        assert_eq!(sw(&mut c, "FFA4040C"), 0x6E00);
        assert_eq!(sw(&mut c, "A0A4040C0AD392F000260100000001"), 0x6E00);
        assert_eq!(sw(&mut c, "00FE0000"), 0x6D00);
        assert_eq!(sw(&mut c, "80500000"), 0x6D00);
        assert_eq!(sw(&mut c, "00A4040C0BD392F000260100000001"), 0x6700);
        assert_eq!(
            sw(&mut c, "00A4040C00000AD392F000260100000001"),
            0x6700,
            "extended Lc"
        );
        assert_eq!(sw(&mut c, "00A4050C0AD392F000260100000001"), 0x6A86);
        assert_eq!(sw(&mut c, "00C0000010"), 0x6985, "nothing to GET RESPONSE");
        let (sm_select, sm_other) = match profile {
            Profile::Extended => (0x6882, 0x69FC),
            Profile::Conservative => (0x6E00, 0x6E00),
        };
        assert_eq!(sw(&mut c, "0CA4040C0AD392F000260100000001"), sm_select);
        assert_eq!(sw(&mut c, "0CB0000004"), sm_other);
        assert_eq!(sw(&mut c, "08200080"), sm_other);
    }
}

#[test]
fn get_challenge_only_in_extended() {
    let mut c = card(Profile::Extended);
    let (a, s) = tx(&mut c, "008400000A");
    assert_eq!((a.len(), s), (10, 0x9000));
    let (b, _) = tx(&mut c, "0084000008");
    assert_eq!(b.len(), 8);
    assert_ne!(a[..8], b[..]);
    assert_eq!(sw(&mut c, "00840000"), 0x6700);
    assert_eq!(sw(&mut c, "0084010008"), 0x6A86);
    let mut c = card(Profile::Conservative);
    assert_eq!(sw(&mut c, "0084000008"), 0x6D00);
}

#[test]
fn powered_off_card_does_not_answer() {
    let mut c = card(Profile::Conservative);
    c.power_off();
    assert!(c
        .process_apdu(&unhex("00A4040C0AD392F000260100000001").unwrap())
        .is_empty());
    c.power_on();
    select_jpki(&mut c);
}

#[test]
fn fuzz_random_apdus_never_panic() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for profile in [Profile::Conservative, Profile::Extended] {
        let mut c = card(profile);
        let templates: [&[u8]; 6] = [
            &[
                0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00,
                0x01,
            ],
            &[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, 0x0A],
            &[0x00, 0xB0, 0x00, 0x00, 0x00],
            &[0x00, 0x20, 0x00, 0x80, 0x04, 0x31, 0x32, 0x33, 0x34],
            &[0x80, 0x2A, 0x00, 0x80, 0x02, 0x01, 0x02, 0x00],
            &[0x00, 0x24, 0x01, 0x80, 0x04, 0x31, 0x32, 0x33, 0x34],
        ];
        for i in 0..3000 {
            let cmd: Vec<u8> = if i % 2 == 0 {
                let len = rng.gen_range(0..300);
                let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                if let Some(c0) = v.first_mut() {
                    *c0 = [0x00, 0x80, 0x0C, rng.gen()][rng.gen_range(0..4)];
                }
                v
            } else {
                let mut v = templates[rng.gen_range(0..templates.len())].to_vec();
                for _ in 0..rng.gen_range(0..3) {
                    let at = rng.gen_range(0..v.len());
                    v[at] = rng.gen();
                }
                if rng.gen_bool(0.2) {
                    v.truncate(rng.gen_range(0..v.len()));
                }
                v
            };
            let r = c.process_apdu(&cmd);
            assert!(r.len() >= 2, "every command gets a status word");
            if rng.gen_bool(0.01) {
                c.reset();
            }
        }
    }
}

// ---- Persistence --------------------------------------------------------------------------

#[test]
fn state_persists_through_save_and_load() {
    let dir = std::env::temp_dir().join(format!("jpki-vc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("card.state");
    let mut c = card(Profile::Conservative);
    select_jpki(&mut c);
    assert_eq!(verify_pin_ef(&mut c, 0x001B, "WRONG1"), 0x63C4);
    assert!(c.state_dirty());
    c.state().save(&path).unwrap();
    let loaded = CardState::load(&path).unwrap();
    assert_eq!(&loaded, c.state());
    assert_eq!(loaded.sign_tries_left, 4);
    let mut c2 = VirtualCard::new(loaded, Profile::Conservative);
    select_jpki(&mut c2);
    assert_eq!(select_ef(&mut c2, 0x001B), 0x9000);
    assert_eq!(sw(&mut c2, "00200080"), 0x63C4);
    // No temporary file left behind; Debug never shows PINs.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(names.len(), 1);
    let dbg = format!("{:?}", c2.state());
    assert!(!dbg.contains(DEFAULT_SIGN_PASSWORD) && !dbg.contains(DEFAULT_AUTH_PIN));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(CardState::load(&dir.join("missing")).is_err());
}

#[test]
fn generation_is_deterministic_per_seed() {
    let a = test_state();
    let b = test_state_b();
    assert_ne!(a.auth_cert, b.auth_cert);
    assert_ne!(a.token_serial, b.token_serial);
    assert_ne!(a.auth_key, b.auth_key);
}

#[test]
fn stats_count_bytes_each_way() {
    let mut c = card(Profile::Conservative);
    c.reset_stats();
    // SELECT AP: 15 command bytes, 2 response bytes.
    select_jpki(&mut c);
    // SELECT EF 000A: 7 + 2; READ BINARY Le=10: 5 + 16 + 2.
    assert_eq!(sw(&mut c, "00A4020C02000A"), 0x9000);
    let (data, s) = tx(&mut c, "00B0000010");
    assert_eq!((data.len(), s), (16, 0x9000));
    let st = c.stats();
    assert_eq!(st.apdus, 3);
    assert_eq!(st.command_bytes, 15 + 7 + 5);
    assert_eq!(st.response_bytes, 2 + 2 + 18);
    // A powered-off card counts nothing.
    c.power_off();
    assert!(c.process_apdu(&[0, 0xA4, 0x04, 0x0C]).is_empty());
    assert_eq!(c.stats().command_bytes, 27);
    c.reset_stats();
    assert_eq!((c.stats().command_bytes, c.stats().response_bytes), (0, 0));
}
