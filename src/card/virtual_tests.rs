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
    virtual_card_with(Profile::Conservative)
}

fn virtual_card_with(profile: Profile) -> (JpkiCard, Arc<Mutex<VirtualCard>>, SimulatedCard) {
    let vc = Arc::new(Mutex::new(VirtualCard::new(test_state(), profile)));
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
    for profile in [Profile::Conservative, Profile::Extended] {
        let (mut card, vc, _) = virtual_card_with(profile);
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
        for (i, (file, der)) in expected.into_iter().enumerate() {
            let before = card.apdus_sent();
            assert_eq!(card.read_certificate(file).as_deref(), Ok(der), "{file:?}");
            let sent = card.apdus_sent() - before;
            let reads = der.len().div_ceil(256);
            let want = match profile {
                // The SFI form names the EF: no SELECT EF.
                Profile::Extended => reads,
                // The first read tries the SFI form once (refused), then SELECT EF each time.
                Profile::Conservative if i == 0 => 2 + reads,
                Profile::Conservative => 1 + reads,
            };
            assert_eq!(sent as usize, want, "{profile:?} {file:?}");
            x509_cert::Certificate::from_der(der).unwrap();
        }
        assert_eq!(card.token_label().as_deref(), Ok("JPKIAPICCTOKEN2"));
        assert_eq!(
            card.read_certificate(CertificateFile::Signature),
            Err(CardError::SecurityStatusNotSatisfied)
        );
        let sfi = card.sfi_support();
        let expected = match profile {
            Profile::Extended => Support::Yes,
            Profile::Conservative => Support::No,
        };
        assert_eq!(sfi.read, expected);
    }
}

/// The whole life of a login on both profiles, APDU by APDU: with the SFI forms every
/// operation is one command; without them, SELECT EF + the command, and the one refused probe.
#[test]
fn fewest_apdus_on_both_profiles() {
    for profile in [Profile::Conservative, Profile::Extended] {
        let (mut card, vc, _) = virtual_card_with(profile);
        let state = vc.lock().state().clone();
        let ext = profile == Profile::Extended;
        let count = |card: &JpkiCard, before: u64| card.apdus_sent() - before;
        let b = card.apdus_sent();
        let auth = card
            .read_certificate(CertificateFile::Authentication)
            .unwrap();
        let reads = auth.len().div_ceil(256) as u64;
        // SELECT AP + reads (+ refused probe + SELECT EF without SFI).
        assert_eq!(count(&card, b), 1 + reads + if ext { 0 } else { 2 });
        for key in [KeyKind::Authentication, KeyKind::Signature] {
            let b = card.apdus_sent();
            assert_eq!(card.pin_tries_left(key), Ok(key.max_tries()));
            assert_eq!(
                count(&card, b),
                if ext { 1 } else { 2 },
                "{profile:?} {key:?}"
            );
        }
        let b = card.apdus_sent();
        assert_eq!(card.verify_pin(&auth_pin()), Ok(()));
        assert_eq!(count(&card, b), if ext { 1 } else { 2 });
        let (di, hash) = sha256_digest_info(b"fewest");
        for _ in 0..3 {
            let b = card.apdus_sent();
            let sig = card.sign(KeyKind::Authentication, &di).unwrap();
            assert_eq!(count(&card, b), if ext { 1 } else { 2 });
            public_key(state.auth_certificate())
                .verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &sig)
                .unwrap();
        }
        // The signature key, its certificate after the password.
        let b = card.apdus_sent();
        assert_eq!(card.verify_pin(&sign_password()), Ok(()));
        let sign_cert = card.read_certificate(CertificateFile::Signature).unwrap();
        let sig = card.sign(KeyKind::Signature, &di).unwrap();
        let reads = sign_cert.len().div_ceil(256) as u64;
        assert_eq!(
            count(&card, b),
            if ext {
                1 + reads + 1
            } else {
                2 + 1 + reads + 2
            }
        );
        public_key(&sign_cert)
            .verify(Pkcs1v15Sign::new::<Sha256>(), &hash, &sig)
            .unwrap();
        let expected = if ext {
            SfiSupport {
                read: Support::Yes,
                verify: Support::Yes,
                sign: Support::Yes,
            }
        } else {
            SfiSupport {
                read: Support::No,
                verify: Support::Unknown,
                sign: Support::Unknown,
            }
        };
        assert_eq!(card.sfi_support(), expected);
        assert_eq!(vc.lock().stats().malformed_verify_count, 0);
        assert_eq!(vc.lock().stats().failed_verify_count, 0);
    }
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

/// The smartphone's token refuses its authentication certificate before the PIN. The first
/// refusal is checked once against another client's selection (one re-SELECT, before any
/// VERIFY); after that a refusal is taken as what it is, so it never re-selects the
/// application and forgets a verified password (which hid the signature certificate after a
/// login to the signature token).
#[test]
fn phone_auth_certificate_refusal_is_learnt_and_keeps_other_logins() {
    let (mut card, vc, _sim) = virtual_card();
    vc.lock().set_token(jpki_virtual_card::Token::Phone);
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    card.verify_pin(&sign_password()).unwrap();
    let before = card.apdus_sent();
    assert_eq!(
        card.read_certificate(CertificateFile::Authentication),
        Err(CardError::SecurityStatusNotSatisfied)
    );
    assert!(
        card.apdus_sent() - before <= 2,
        "no re-SELECT of the application"
    );
    assert!(card.is_verified(KeyKind::Signature));
    let sign = card.read_certificate(CertificateFile::Signature).unwrap();
    assert_eq!(sign, vc.lock().state().sign_cert);
    card.verify_pin(&auth_pin()).unwrap();
    let auth = card
        .read_certificate(CertificateFile::Authentication)
        .unwrap();
    assert_eq!(auth, vc.lock().state().auth_cert);
}
