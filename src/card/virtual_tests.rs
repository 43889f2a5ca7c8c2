//! End-to-end card-layer tests against the virtual card library (in process).

use std::sync::Arc;

use der::{Decode, Encode};
use jpki_virtual_card::{
    test_state, Profile, VirtualCard, DEFAULT_AUTH_PIN, DEFAULT_SIGN_PASSWORD,
};
use parking_lot::Mutex;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

use super::*;
use crate::transport::in_process::{InProcessTransport, SimulatedCard};

fn virtual_card() -> (JpkiCard, Arc<Mutex<VirtualCard>>, SimulatedCard) {
    let vc = Arc::new(Mutex::new(VirtualCard::new(
        test_state(),
        Profile::Conservative,
    )));
    let atr = vc.lock().power_on();
    let (v1, v2) = (Arc::clone(&vc), Arc::clone(&vc));
    let transport = InProcessTransport::new(atr, move |apdu| v1.lock().process_apdu(apdu))
        .with_reset_hook(move || v2.lock().reset());
    let sim = transport.card();
    (JpkiCard::new(Box::new(transport)), vc, sim)
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

fn public_key(cert_der: &[u8]) -> RsaPublicKey {
    let cert = x509_cert::Certificate::from_der(cert_der).unwrap();
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    RsaPublicKey::from_public_key_der(&spki).unwrap()
}

fn auth_pin() -> Pin {
    Pin::parse(KeyKind::Authentication, DEFAULT_AUTH_PIN.as_bytes()).unwrap()
}

fn sign_password() -> Pin {
    Pin::parse(KeyKind::Signature, DEFAULT_SIGN_PASSWORD.as_bytes()).unwrap()
}

#[test]
fn reads_public_certificates_and_label() {
    let (mut card, vc, _) = virtual_card();
    assert_eq!(card.is_jpki(), Ok(true));
    let state = vc.lock().state().clone();
    let expected = [
        (CertificateFile::Authentication, state.auth_certificate()),
        (
            CertificateFile::AuthenticationCa,
            state.auth_ca_certificate(),
        ),
        (CertificateFile::SignatureCa, state.sign_ca_certificate()),
    ];
    for (file, der) in expected {
        let before = card.apdus_sent();
        assert_eq!(card.read_certificate(file).as_deref(), Ok(der), "{file:?}");
        let sent = card.apdus_sent() - before;
        assert_eq!(sent as usize, 1 + der.len().div_ceil(256), "{file:?}");
        x509_cert::Certificate::from_der(der).unwrap();
    }
    assert_eq!(card.token_label().as_deref(), Ok("JPKIAPICCTOKEN2"));
    assert_eq!(
        card.read_certificate(CertificateFile::Signature),
        Err(CardError::SecurityStatusNotSatisfied)
    );
}

#[test]
fn verify_and_sign_with_both_keys() {
    let (mut card, vc, _) = virtual_card();
    let state = vc.lock().state().clone();
    let (di, hash) = sha256_digest_info(b"hello JPKI");

    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
    assert_eq!(
        card.sign(KeyKind::Authentication, &di),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    assert_eq!(card.verify_pin(&auth_pin()), Ok(()));
    let sig = card.sign(KeyKind::Authentication, &di).unwrap();
    public_key(state.auth_certificate())
        .verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &sig)
        .unwrap();
    // A second signature after one login (separate transaction: the AP is not re-selected).
    let before = card.apdus_sent();
    let sig2 = card.sign(KeyKind::Authentication, &di).unwrap();
    assert_eq!(card.apdus_sent() - before, 2);
    assert_eq!(sig, sig2);

    // Signature key: cert refused before the password, readable after.
    assert_eq!(
        card.read_certificate(CertificateFile::Signature),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    assert_eq!(card.verify_pin(&sign_password()), Ok(()));
    let sign_cert = card.read_certificate(CertificateFile::Signature).unwrap();
    assert_eq!(sign_cert, state.sign_certificate());
    let sig = card.sign(KeyKind::Signature, &di).unwrap();
    public_key(&sign_cert)
        .verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &sig)
        .unwrap();
    // Lower-case input is the same password.
    let lower = Pin::parse(KeyKind::Signature, b"abc123").unwrap();
    assert_eq!(card.verify_pin(&lower), Ok(()));

    // Logout clears both.
    assert_eq!(card.logout(), Ok(()));
    assert_eq!(
        card.sign(KeyKind::Authentication, &di),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    assert_eq!(
        card.read_certificate(CertificateFile::Signature),
        Err(CardError::SecurityStatusNotSatisfied)
    );
}

#[test]
fn wrong_pins_count_down_and_block() {
    let (mut card, _, _) = virtual_card();
    let wrong = Pin::parse(KeyKind::Authentication, b"9999").unwrap();
    assert_eq!(
        card.verify_pin(&wrong),
        Err(CardError::PinIncorrect { tries_left: 2 })
    );
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(2));
    assert_eq!(card.verify_pin(&auth_pin()), Ok(()));
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));

    let wrong = Pin::parse(KeyKind::Signature, b"WRONG1").unwrap();
    for left in (1..5).rev() {
        assert_eq!(
            card.verify_pin(&wrong),
            Err(CardError::PinIncorrect { tries_left: left })
        );
    }
    assert_eq!(card.verify_pin(&wrong), Err(CardError::PinBlocked));
    assert_eq!(card.pin_tries_left(KeyKind::Signature), Ok(0));
    assert_eq!(
        card.verify_pin(&sign_password()),
        Err(CardError::PinBlocked)
    );
    // The other key is unaffected.
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
}

#[test]
fn change_pin() {
    let (mut card, _, _) = virtual_card();
    let new = Pin::parse(KeyKind::Authentication, b"4321").unwrap();
    let before = card.apdus_sent();
    assert_eq!(card.change_pin(&auth_pin(), &new), Ok(()));
    assert_eq!(card.apdus_sent() - before, 4); // SELECT AP, SELECT EF, VERIFY, CHANGE
    assert_eq!(
        card.verify_pin(&auth_pin()),
        Err(CardError::PinIncorrect { tries_left: 2 })
    );
    assert_eq!(card.verify_pin(&new), Ok(()));
    let wrong = Pin::parse(KeyKind::Authentication, b"0000").unwrap();
    assert_eq!(
        card.change_pin(&wrong, &auth_pin()),
        Err(CardError::PinIncorrect { tries_left: 2 })
    );

    let new_pw = Pin::parse(KeyKind::Signature, b"NEWPASS9").unwrap();
    assert_eq!(card.change_pin(&sign_password(), &new_pw), Ok(()));
    assert_eq!(card.verify_pin(&new_pw), Ok(()));
}

#[test]
fn resets_are_reported_and_recovered() {
    let (mut card, vc, sim) = virtual_card();
    let (di, _) = sha256_digest_info(b"x");
    assert_eq!(card.verify_pin(&auth_pin()), Ok(()));

    // A reset another process caused, seen by PC/SC: reported once, then the login is gone.
    sim.reset();
    assert_eq!(
        card.sign(KeyKind::Authentication, &di),
        Err(CardError::CardReset)
    );
    assert_eq!(
        card.sign(KeyKind::Authentication, &di),
        Err(CardError::SecurityStatusNotSatisfied)
    );

    // A reset the transport did not see (selection silently lost): the card layer notices
    // the 6A82 of SELECT EF, re-selects the AP once, and reports what the card says.
    assert_eq!(card.verify_pin(&auth_pin()), Ok(()));
    vc.lock().external_reset();
    assert_eq!(
        card.sign(KeyKind::Authentication, &di),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    vc.lock().external_reset();
    assert!(card
        .read_certificate(CertificateFile::Authentication)
        .is_ok());
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
}
