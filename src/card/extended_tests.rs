//! Extended-length READ BINARY against the virtual card library (in process): each answer a
//! card or reader can give, on both profiles. The probe is tried once, any refusal falls back to
//! short APDUs within the same call, and nothing is tried while a PIN is verified.

use std::sync::Arc;

use jpki_virtual_card::{test_state, ExtendedApdu, Profile, VirtualCard, DEFAULT_AUTH_PIN};
use parking_lot::Mutex;

use super::*;
use crate::transport::in_process::InProcessTransport;

fn card(profile: Profile, mode: ExtendedApdu) -> (JpkiCard, Arc<Mutex<VirtualCard>>) {
    let vc = Arc::new(Mutex::new(VirtualCard::new(test_state(), profile)));
    vc.lock().set_extended_apdu(mode);
    let atr = vc.lock().power_on();
    let (v1, v2) = (Arc::clone(&vc), Arc::clone(&vc));
    let transport = InProcessTransport::new(atr, move |apdu| v1.lock().process_apdu(apdu))
        .with_reset_hook(move || v2.lock().reset());
    let mut jpki = JpkiCard::new(Box::new(transport));
    // What the core does unless configured off: allow the probe.
    jpki.assume_extended(Support::Unknown);
    (jpki, vc)
}

const PROFILES: [Profile; 2] = [Profile::Conservative, Profile::Extended];

fn refusals() -> Vec<ExtendedApdu> {
    vec![
        ExtendedApdu::Refuse,
        ExtendedApdu::Sw(0x6A86),
        ExtendedApdu::Sw(0x6D00),
        ExtendedApdu::Sw(0x6E00),
        ExtendedApdu::Sw(0x6F00),
        ExtendedApdu::Sw(0x9000),
        ExtendedApdu::Drop,
    ]
}

fn public_files(vc: &Arc<Mutex<VirtualCard>>) -> Vec<(CertificateFile, Vec<u8>)> {
    let v = vc.lock();
    vec![
        (
            CertificateFile::Authentication,
            v.state().auth_certificate().to_vec(),
        ),
        (
            CertificateFile::AuthenticationCa,
            v.state().auth_ca_certificate().to_vec(),
        ),
        (
            CertificateFile::SignatureCa,
            v.state().sign_ca_certificate().to_vec(),
        ),
    ]
}

#[test]
fn accepted_extended_reads_take_one_apdu_per_certificate() {
    for profile in PROFILES {
        let (mut jpki, vc) = card(profile, ExtendedApdu::Accept);
        for (file, der) in public_files(&vc) {
            let before = jpki.apdus_sent();
            assert_eq!(
                jpki.read_certificate(file).unwrap(),
                der,
                "{profile:?} {file:?}"
            );
            let sent = jpki.apdus_sent() - before;
            assert!(
                sent <= 3,
                "{profile:?} {file:?}: {sent} APDUs (SELECT AP/EF + 1 READ)"
            );
        }
        assert_eq!(jpki.extended_support(), Support::Yes);
        assert_eq!(vc.lock().stats().extended_apdus, 3, "{profile:?}");
    }
}

#[test]
fn every_refusal_falls_back_at_once_and_is_tried_once() {
    for profile in PROFILES {
        for mode in refusals() {
            let (mut jpki, vc) = card(profile, mode);
            for (file, der) in public_files(&vc) {
                assert_eq!(
                    jpki.read_certificate(file).unwrap(),
                    der,
                    "{profile:?} {mode:?} {file:?}: the card's certificate, in the same call"
                );
            }
            assert_eq!(jpki.extended_support(), Support::No, "{profile:?} {mode:?}");
            assert_eq!(
                vc.lock().stats().extended_apdus,
                1,
                "{profile:?} {mode:?}: tried once"
            );
            // Nothing lost: login and signing work on the same connection.
            let pin = Pin::parse(KeyKind::Authentication, DEFAULT_AUTH_PIN.as_bytes()).unwrap();
            jpki.verify_pin(&pin).unwrap();
            let di = [0x30, 0x01, 0x00];
            assert_eq!(jpki.sign(KeyKind::Authentication, &di).unwrap().len(), 256);
        }
    }
}

#[test]
fn no_probe_while_a_pin_is_verified() {
    for profile in PROFILES {
        let (mut jpki, vc) = card(profile, ExtendedApdu::Drop);
        let pin = Pin::parse(KeyKind::Authentication, DEFAULT_AUTH_PIN.as_bytes()).unwrap();
        jpki.verify_pin(&pin).unwrap();
        for (file, der) in public_files(&vc) {
            assert_eq!(jpki.read_certificate(file).unwrap(), der);
        }
        assert_eq!(vc.lock().stats().extended_apdus, 0, "{profile:?}");
        assert_eq!(jpki.extended_support(), Support::Unknown);
        assert!(
            jpki.is_verified(KeyKind::Authentication),
            "the login is intact"
        );
    }
}

#[test]
fn off_by_default_in_the_card_layer_and_when_configured_off() {
    let vc = Arc::new(Mutex::new(VirtualCard::new(
        test_state(),
        Profile::Extended,
    )));
    vc.lock().set_extended_apdu(ExtendedApdu::Accept);
    let atr = vc.lock().power_on();
    let v1 = Arc::clone(&vc);
    let transport = InProcessTransport::new(atr, move |apdu| v1.lock().process_apdu(apdu));
    let mut jpki = JpkiCard::new(Box::new(transport));
    for (file, der) in public_files(&vc) {
        assert_eq!(jpki.read_certificate(file).unwrap(), der);
    }
    assert_eq!(vc.lock().stats().extended_apdus, 0);
}

#[test]
fn identity_chunk_then_rest_reads_nothing_twice_on_short_apdus() {
    for profile in PROFILES {
        let (mut jpki, vc) = card(profile, ExtendedApdu::Refuse);
        jpki.assume_extended(Support::No);
        let der = vc.lock().state().auth_certificate().to_vec();
        let (chunk, whole) = jpki
            .read_certificate_prefix_then(CertificateFile::Authentication, 256, |_| {
                AfterChunk::Rest
            })
            .unwrap();
        assert_eq!(chunk, der[..256]);
        assert_eq!(whole.unwrap(), der);
        let bytes_read = vc.lock().stats().response_bytes;
        // Every byte once, plus a status word per answer (and the SELECTs' and probes').
        assert!(
            (bytes_read as usize) < der.len() + 2 * 10,
            "{profile:?}: {bytes_read} bytes for a {}-byte certificate",
            der.len()
        );
    }
}

#[test]
fn a_probe_after_the_identity_chunk_reads_the_rest_only_in_one_extended_read() {
    for profile in PROFILES {
        for (mode, works) in [(ExtendedApdu::Accept, true), (ExtendedApdu::Refuse, false)] {
            let (mut jpki, vc) = card(profile, mode);
            let der = vc.lock().state().auth_certificate().to_vec();
            let (chunk, whole) = jpki
                .read_certificate_prefix_then(CertificateFile::Authentication, 256, |_| {
                    AfterChunk::ProbeExtended
                })
                .unwrap();
            assert_eq!(chunk, der[..256], "{profile:?} {mode:?}");
            // Taken: the whole certificate from that one READ; refused: the chunk only, no
            // short reads of the rest.
            assert_eq!(whole, works.then(|| der.clone()), "{profile:?} {mode:?}");
            let stats = vc.lock().stats().clone();
            assert_eq!(stats.extended_apdus, 1, "{profile:?} {mode:?}");
            if !works {
                // Refused: nothing of the rest was read.
                assert!(
                    (stats.response_bytes as usize) < 256 + 2 * 6,
                    "{profile:?}: {} bytes",
                    stats.response_bytes
                );
            }
            let known = if works { Support::Yes } else { Support::No };
            assert_eq!(jpki.extended_support(), known);
            // Known now: no second probe, the chunk alone.
            let before = vc.lock().stats().extended_apdus;
            let (_, whole) = jpki
                .read_certificate_prefix_then(CertificateFile::Authentication, 256, |_| {
                    AfterChunk::ProbeExtended
                })
                .unwrap();
            assert_eq!(whole, None);
            assert_eq!(vc.lock().stats().extended_apdus, before);
        }
    }
}
