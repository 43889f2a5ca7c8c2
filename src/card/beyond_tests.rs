//! Card-layer tests of PSS detection/signing and the text (kenhojo) application, against the
//! virtual card library in both profiles (in process).

use std::sync::Arc;

use der::{Decode, Encode};
use jpki_virtual_card::{
    test_state, Profile, VirtualCard, DEFAULT_AUTH_PIN, DEFAULT_KENHOJO_PIN, DEFAULT_SIGN_PASSWORD,
};
use parking_lot::Mutex;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pss, RsaPublicKey};
use sha2::{Digest, Sha256};

use super::*;
use crate::transport::in_process::InProcessTransport;

fn virtual_card(profile: Profile) -> (JpkiCard, Arc<Mutex<VirtualCard>>) {
    let vc = Arc::new(Mutex::new(VirtualCard::new(test_state(), profile)));
    let atr = vc.lock().power_on();
    let (v1, v2) = (Arc::clone(&vc), Arc::clone(&vc));
    let transport = InProcessTransport::new(atr, move |apdu| v1.lock().process_apdu(apdu))
        .with_reset_hook(move || v2.lock().reset());
    (JpkiCard::new(Box::new(transport)), vc)
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

#[test]
fn pss_probe_conservative_says_no_without_signing() {
    let (mut card, vc) = virtual_card(Profile::Conservative);
    assert_eq!(card.known_pss_support(), None);
    let before = card.apdus_sent();
    assert_eq!(card.pss_support(), Ok(false));
    // SELECT AP + SELECT key EF + probe.
    assert_eq!(card.apdus_sent() - before, 3);
    // Cached: no more traffic.
    assert_eq!(card.pss_support(), Ok(false));
    assert_eq!(card.apdus_sent() - before, 3);
    let stats = vc.lock().stats().clone();
    assert_eq!(stats.signatures, 0);
    assert_eq!(stats.verify_count, 0);
    // Signing with P1=04 is refused without card traffic once known.
    card.verify_pin(&auth_pin()).unwrap();
    let before = card.apdus_sent();
    assert_eq!(
        card.sign_pss_sha256(KeyKind::Authentication, &[7u8; 32]),
        Err(CardError::NotSupported)
    );
    assert_eq!(card.apdus_sent(), before);
}

#[test]
fn pss_learnt_on_first_use_when_not_probed() {
    let (mut card, vc) = virtual_card(Profile::Conservative);
    card.verify_pin(&auth_pin()).unwrap();
    assert_eq!(
        card.sign_pss_sha256(KeyKind::Authentication, &[7u8; 32]),
        Err(CardError::NotSupported)
    );
    assert_eq!(card.known_pss_support(), Some(false));
    assert_eq!(vc.lock().stats().signatures, 0);
}

#[test]
fn pss_probe_extended_says_yes_and_never_signs_even_when_verified() {
    for verified_first in [false, true] {
        let (mut card, vc) = virtual_card(Profile::Extended);
        if verified_first {
            // Another client (or we) verified the auth PIN: the probe still cannot sign.
            card.verify_pin(&auth_pin()).unwrap();
        }
        let before = card.apdus_sent();
        assert_eq!(card.pss_support(), Ok(true));
        assert!(card.apdus_sent() - before <= 3);
        assert_eq!(
            vc.lock().stats().signatures,
            0,
            "verified first: {verified_first}"
        );
        assert_eq!(card.pss_support(), Ok(true));
    }
}

#[test]
fn pss_signature_extended() {
    let (mut card, vc) = virtual_card(Profile::Extended);
    let state = vc.lock().state().clone();
    let hash: [u8; 32] = Sha256::digest(b"TLS 1.3 CertificateVerify").into();
    assert_eq!(
        card.sign_pss_sha256(KeyKind::Authentication, &hash),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    card.verify_pin(&auth_pin()).unwrap();
    let before = card.apdus_sent();
    let sig = card
        .sign_pss_sha256(KeyKind::Authentication, &hash)
        .unwrap();
    assert_eq!(card.apdus_sent() - before, 2);
    public_key(state.auth_certificate())
        .verify(Pss::new_with_salt::<Sha256>(32), &hash, &sig)
        .unwrap();
    assert_eq!(card.known_pss_support(), Some(true));
    // Random salt: two signatures differ.
    let sig2 = card
        .sign_pss_sha256(KeyKind::Authentication, &hash)
        .unwrap();
    assert_ne!(sig, sig2);
    // Signature key.
    let pw = Pin::parse(KeyKind::Signature, DEFAULT_SIGN_PASSWORD.as_bytes()).unwrap();
    card.verify_pin(&pw).unwrap();
    let sig = card.sign_pss_sha256(KeyKind::Signature, &hash).unwrap();
    public_key(state.sign_certificate())
        .verify(Pss::new_with_salt::<Sha256>(32), &hash, &sig)
        .unwrap();
}

#[test]
fn applications_answer() {
    for profile in [Profile::Conservative, Profile::Extended] {
        let (mut card, _) = virtual_card(profile);
        let apps = card.applications().unwrap();
        assert_eq!(apps.len(), 5);
        assert!(apps.iter().all(|(_, present)| *present), "{apps:?}");
        assert_eq!(apps[0].0, Application::Jpki);
        // JPKI AP left selected: reading a certificate needs no SELECT AP.
        let before = card.apdus_sent();
        card.read_certificate(CertificateFile::Authentication)
            .unwrap();
        let der_len = test_state().auth_certificate().len();
        // Extended: the SFI form names the EF. Conservative: the first read's SFI attempt is
        // refused, then SELECT EF (card layer, "Short file identifiers").
        let select = match profile {
            Profile::Extended => 0,
            Profile::Conservative => 2,
        };
        assert_eq!(
            (card.apdus_sent() - before) as usize,
            select + der_len.div_ceil(256)
        );
    }
}

#[test]
fn kenhojo_read_and_tries() {
    let (mut card, vc) = virtual_card(Profile::Conservative);
    let personal = vc.lock().state().personal.clone();
    assert_eq!(card.kenhojo_tries_left(), Ok(3));
    let wrong = KenhojoPin::parse(b"0000").unwrap();
    assert_eq!(
        card.read_card_face_info(&wrong).err(),
        Some(CardError::PinIncorrect { tries_left: 2 })
    );
    assert_eq!(card.kenhojo_tries_left(), Ok(2));
    // The auth PIN counter is independent.
    assert_eq!(card.pin_tries_left(KeyKind::Authentication), Ok(3));
    let pin = KenhojoPin::parse(DEFAULT_KENHOJO_PIN.as_bytes()).unwrap();
    // A JPKI login is lost when another application is selected.
    card.verify_pin(&auth_pin()).unwrap();
    let info = card.read_card_face_info(&pin).unwrap();
    assert_eq!(info.my_number.as_str(), personal.my_number);
    assert_eq!(info.name.as_str(), personal.name);
    assert_eq!(info.address.as_str(), personal.address);
    assert_eq!(info.birth_date.as_str(), &personal.birth_date_era[1..]);
    assert_eq!(info.sex.code().to_string(), personal.sex);
    assert_eq!(card.kenhojo_tries_left(), Ok(3));
    assert_eq!(
        card.sign(KeyKind::Authentication, &[1u8; 51]),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    // Changing the kenhojo PIN.
    let new = KenhojoPin::parse(b"2468").unwrap();
    card.change_kenhojo_pin(&pin, &new).unwrap();
    assert_eq!(
        card.read_card_face_info(&pin).err(),
        Some(CardError::PinIncorrect { tries_left: 2 })
    );
    assert!(card.read_card_face_info(&new).is_ok());
    let stats = vc.lock().stats().clone();
    assert_eq!(stats.malformed_verify_count, 0);
}
