//! pkcs11-layer tests with simulated readers and the virtual card library.
//!
//! Longer than the ~500 lines of a source file on purpose: 18 scenario tests (slots, login,
//! signing, removal, resets, traffic economy) that share one setup at the top; each reads on
//! its own.

use std::sync::Arc;
use std::time::Duration;

use cryptoki_sys::*;
use jpki_virtual_card::{test_state, test_state_b, CardState, Profile, VirtualCard};
use parking_lot::Mutex;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};

use super::object::{ulong, AttrLookup};
use super::{Error, Module};
use crate::transport::in_process::{InProcessReaders, SimulatedCard};

const AUTH_PIN: &[u8] = b"1234";
const SIGN_PIN: &[u8] = b"ABC123";
const NSS_TRUST: CK_ULONG = 0xCE53_4353;

/// A module over one in-process virtual card (also used by `conformance_tests`).
pub(super) struct Rig {
    pub(super) readers: InProcessReaders,
    pub(super) module: Module,
    pub(super) vc: Arc<Mutex<VirtualCard>>,
    pub(super) sim: SimulatedCard,
}

fn card(state: CardState, profile: Profile) -> (Arc<Mutex<VirtualCard>>, SimulatedCard) {
    let vc = Arc::new(Mutex::new(VirtualCard::new(state, profile)));
    let atr = vc.lock().atr();
    let (a, b) = (vc.clone(), vc.clone());
    let sim = SimulatedCard::new(atr, move |apdu| a.lock().process_apdu(apdu))
        .with_reset_hook(move || b.lock().reset());
    (vc, sim)
}

fn rig_with(state: CardState, profile: Profile) -> Rig {
    crate::pkcs11::cert_source::forget_readers();
    let readers = InProcessReaders::new();
    let (vc, sim) = card(state, profile);
    readers.insert_card("Reader A", sim.clone());
    let module = Module::new(Box::new(readers.clone()));
    Rig {
        readers,
        module,
        vc,
        sim,
    }
}

pub(super) fn rig() -> Rig {
    rig_with(test_state(), Profile::Conservative)
}

pub(super) fn session(r: &Rig, slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    r.module
        .open_session(slot, CKF_SERIAL_SESSION)
        .expect("open session")
}

pub(super) fn find(
    r: &Rig,
    h: CK_SESSION_HANDLE,
    t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> Vec<CK_OBJECT_HANDLE> {
    r.module.find_init(h, t).expect("find init");
    let found = r.module.find_next(h, 100).expect("find");
    r.module.find_final(h).expect("find final");
    found
}

fn attr(r: &Rig, h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, ty: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    let obj = r.module.object(h, o).expect("object");
    match obj.attribute(ty) {
        AttrLookup::Value(v) => v.to_vec(),
        other => panic!("attribute {ty:#x}: {other:?}"),
    }
}

fn class(c: CK_OBJECT_CLASS) -> (CK_ATTRIBUTE_TYPE, Vec<u8>) {
    (CKA_CLASS, ulong(c))
}

fn private_key(r: &Rig, h: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    let keys = find(r, h, &[class(CKO_PRIVATE_KEY)]);
    assert_eq!(keys.len(), 1);
    keys[0]
}

fn public_key(r: &Rig, h: CK_SESSION_HANDLE) -> CK_OBJECT_HANDLE {
    let keys = find(r, h, &[class(CKO_PUBLIC_KEY)]);
    assert_eq!(keys.len(), 1);
    keys[0]
}

#[test]
fn slot_list_and_info() {
    let r = rig();
    assert_eq!(r.module.slot_list(false), vec![0, 1]);
    assert_eq!(r.module.slot_list(true), vec![0, 1]);
    r.readers.add_reader("Reader B");
    assert_eq!(r.module.slot_list(false), vec![0, 1, 2, 3]);
    assert_eq!(r.module.slot_list(true), vec![0, 1]);
    let info = r.module.slot_info(1).unwrap();
    assert_eq!(
        info.flags,
        CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | CKF_TOKEN_PRESENT
    );
    assert!(info.description.contains("Reader A"));
    assert_eq!(
        r.module.slot_info(2).unwrap().flags,
        CKF_REMOVABLE_DEVICE | CKF_HW_SLOT
    );
    assert_eq!(r.module.slot_info(9).unwrap_err(), Error::SlotIdInvalid);
    assert_eq!(r.module.token_info(2).unwrap_err(), Error::TokenNotPresent);
    // Indices stay with their reader.
    r.readers.remove_reader("Reader A");
    assert_eq!(r.module.slot_list(false), vec![2, 3]);
}

#[test]
fn token_info_labels_and_flags() {
    let r = rig();
    let auth = r.module.token_info(0).unwrap().token;
    let sign = r.module.token_info(1).unwrap().token;
    assert!(auth.label.starts_with("JPKI Auth "), "{}", auth.label);
    assert!(sign.label.starts_with("JPKI Sign "), "{}", sign.label);
    assert!(auth.label.len() <= 32);
    assert!(!auth.serial.is_empty() && auth.serial.len() <= 16);
    assert_eq!(auth.label[10..], sign.label[10..]);
    let base = CKF_WRITE_PROTECTED
        | CKF_RNG
        | CKF_LOGIN_REQUIRED
        | CKF_USER_PIN_INITIALIZED
        | CKF_TOKEN_INITIALIZED;
    assert_eq!(auth.flags, base);
    assert_eq!((auth.min_pin, auth.max_pin), (4, 4));
    assert_eq!((sign.min_pin, sign.max_pin), (6, 16));
    // C_GenerateRandom serves the operating system's generator (docs/conformance.md).
    assert_ne!(auth.flags & CKF_RNG, 0);

    // A second card has another label.
    let other = rig_with(test_state_b(), Profile::Conservative);
    let auth_b = other.module.token_info(0).unwrap().token;
    assert_ne!(auth.label, auth_b.label);
    assert_ne!(auth.serial, auth_b.serial);

    // Wrong PINs: count low, final try, locked.
    let h = session(&r, 0);
    assert_eq!(
        r.module.login(h, CKU_USER, b"9999"),
        Err(Error::PinIncorrect)
    );
    let f = r.module.token_info(0).unwrap().token.flags;
    assert_eq!(
        f & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY),
        CKF_USER_PIN_COUNT_LOW
    );
    assert_eq!(
        r.module.login(h, CKU_USER, b"9999"),
        Err(Error::PinIncorrect)
    );
    let f = r.module.token_info(0).unwrap().token.flags;
    assert_ne!(f & CKF_USER_PIN_FINAL_TRY, 0);
    // The attempt that exhausts the counter (63 C0) already reports the lock.
    assert_eq!(r.module.login(h, CKU_USER, b"9999"), Err(Error::PinLocked));
    let f = r.module.token_info(0).unwrap().token.flags;
    assert_ne!(f & CKF_USER_PIN_LOCKED, 0);
    assert_eq!(r.module.login(h, CKU_USER, AUTH_PIN), Err(Error::PinLocked));
    // The sign token's counter is independent.
    assert_eq!(r.module.token_info(1).unwrap().token.flags, base);
}

#[test]
fn objects_before_and_after_login() {
    let r = rig();
    let a = session(&r, 0);
    // Auth token: 2 profiles, CA cert, user cert, public key; private key hidden.
    assert_eq!(find(&r, a, &[]).len(), 5);
    assert_eq!(find(&r, a, &[class(CKO_PRIVATE_KEY)]).len(), 0);
    assert_eq!(find(&r, a, &[class(CKO_PROFILE)]).len(), 2);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    assert_eq!(find(&r, a, &[]).len(), 6);
    assert_eq!(
        r.module.login(a, CKU_USER, AUTH_PIN),
        Err(Error::UserAlreadyLoggedIn)
    );

    // Sign token: the user certificate and its public key are private.
    let s = session(&r, 1);
    let before = find(&r, s, &[]);
    assert_eq!(before.len(), 3, "2 profiles + CA only");
    assert_eq!(find(&r, s, &[class(CKO_CERTIFICATE)]).len(), 1);
    r.module.login(s, CKU_USER, SIGN_PIN).unwrap();
    assert_eq!(find(&r, s, &[]).len(), 6);
    let certs = find(&r, s, &[class(CKO_CERTIFICATE), (CKA_ID, vec![2])]);
    assert_eq!(certs.len(), 1);
    assert_eq!(attr(&r, s, certs[0], CKA_PRIVATE), vec![CK_TRUE]);
    let state = test_state();
    assert_eq!(attr(&r, s, certs[0], CKA_VALUE), state.sign_certificate());
    // Logout hides them again, same handles after the next login.
    r.module.logout(s).unwrap();
    assert_eq!(find(&r, s, &[]).len(), 3);
    assert_eq!(
        r.module.object(s, certs[0]).unwrap_err(),
        Error::ObjectHandleInvalid
    );
    r.module.login(s, CKU_USER, SIGN_PIN).unwrap();
    assert_eq!(
        find(&r, s, &[class(CKO_CERTIFICATE), (CKA_ID, vec![2])]),
        certs
    );
}

#[test]
fn search_templates() {
    let r = rig();
    let a = session(&r, 0);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    let certs = find(&r, a, &[class(CKO_CERTIFICATE)]);
    assert_eq!(certs.len(), 2);
    let by_id = find(&r, a, &[(CKA_ID, vec![1])]);
    assert_eq!(by_id.len(), 3, "cert, public key, private key share CKA_ID");
    let by_label = find(&r, a, &[(CKA_LABEL, b"JPKI User Authentication".to_vec())]);
    assert_eq!(by_label.len(), 3);
    let ca = find(&r, a, &[(CKA_ID, vec![3])]);
    assert_eq!(ca.len(), 1);
    assert_eq!(attr(&r, a, ca[0], CKA_CERTIFICATE_CATEGORY), ulong(2));
    let user = find(&r, a, &[class(CKO_CERTIFICATE), (CKA_ID, vec![1])])[0];
    let issuer = attr(&r, a, user, CKA_ISSUER);
    let serial = attr(&r, a, user, CKA_SERIAL_NUMBER);
    assert_eq!(serial[0], 0x02, "DER INTEGER");
    let found = find(
        &r,
        a,
        &[
            (CKA_TOKEN, vec![CK_TRUE]),
            class(CKO_CERTIFICATE),
            (CKA_ISSUER, issuer.clone()),
            (CKA_SERIAL_NUMBER, serial.clone()),
        ],
    );
    assert_eq!(found, vec![user]);
    assert!(find(
        &r,
        a,
        &[
            class(NSS_TRUST),
            (CKA_ISSUER, issuer),
            (CKA_SERIAL_NUMBER, serial)
        ]
    )
    .is_empty());
    assert!(find(&r, a, &[class(CKO_NSS_BUILTIN_ROOT_LIST_FOR_TEST)]).is_empty());
    assert!(
        find(&r, a, &[(CKA_CLASS, vec![1])]).is_empty(),
        "wrong length: no match"
    );
    assert!(find(&r, a, &[(CKA_TOKEN, vec![CK_FALSE])]).is_empty());
    assert!(find(&r, a, &[(0x8000_1234, vec![1])]).is_empty());
    assert_eq!(find(&r, a, &[(CKA_SIGN, vec![CK_TRUE])]).len(), 1);
}

const CKO_NSS_BUILTIN_ROOT_LIST_FOR_TEST: CK_ULONG = 0xCE53_4354;

#[test]
fn attributes_come_from_the_card() {
    let r = rig();
    let a = session(&r, 0);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    let state = test_state();
    let expected = RsaPublicKey::from(&state.auth_key);
    let n = expected.n().to_bytes_be();
    let e = expected.e().to_bytes_be();
    let pubk = public_key(&r, a);
    let privk = private_key(&r, a);
    assert_eq!(attr(&r, a, pubk, CKA_MODULUS), n);
    assert_eq!(attr(&r, a, privk, CKA_MODULUS), n);
    assert_eq!(attr(&r, a, privk, CKA_PUBLIC_EXPONENT), e);
    assert_eq!(attr(&r, a, pubk, CKA_MODULUS_BITS), ulong(2048));
    assert_eq!(attr(&r, a, privk, CKA_ALWAYS_AUTHENTICATE), vec![CK_FALSE]);
    assert_eq!(attr(&r, a, privk, CKA_SENSITIVE), vec![CK_TRUE]);
    assert_eq!(attr(&r, a, privk, CKA_KEY_TYPE), ulong(CKK_RSA));
    let obj = r.module.object(a, privk).unwrap();
    assert!(matches!(
        obj.attribute(CKA_PRIVATE_EXPONENT),
        AttrLookup::Sensitive
    ));
    assert!(matches!(obj.attribute(CKA_PRIME_1), AttrLookup::Sensitive));
    assert!(matches!(obj.attribute(0x8000_0001), AttrLookup::Invalid));
    let cert = find(&r, a, &[class(CKO_CERTIFICATE), (CKA_ID, vec![1])])[0];
    assert_eq!(attr(&r, a, cert, CKA_VALUE), state.auth_certificate());
    assert_eq!(attr(&r, a, cert, CKA_CERTIFICATE_TYPE), ulong(CKC_X_509));
    assert_eq!(attr(&r, a, cert, CKA_START_DATE).len(), 8);
    assert_eq!(attr(&r, a, cert, CKA_END_DATE).len(), 8);
    assert_eq!(
        attr(&r, a, cert, CKA_SUBJECT),
        attr(&r, a, pubk, CKA_SUBJECT)
    );
    assert_eq!(attr(&r, a, cert, CKA_LABEL), attr(&r, a, privk, CKA_LABEL));
    let sha1 = <sha1::Sha1 as sha1::Digest>::digest(state.auth_certificate());
    assert_eq!(attr(&r, a, cert, CKA_CHECK_VALUE), sha1[..3].to_vec());
}

#[test]
fn pin_format_errors_send_nothing() {
    let r = rig();
    let a = session(&r, 0);
    let s = session(&r, 1);
    find(&r, a, &[]);
    let before = r.sim.apdus_received();
    assert_eq!(r.module.login(a, CKU_USER, b"12"), Err(Error::PinIncorrect));
    assert_eq!(
        r.module.login(a, CKU_USER, b"12345"),
        Err(Error::PinIncorrect)
    );
    assert_eq!(
        r.module.login(a, CKU_USER, b"12a4"),
        Err(Error::PinIncorrect)
    );
    assert_eq!(r.module.login(a, CKU_USER, b""), Err(Error::PinIncorrect));
    assert_eq!(
        r.module.login(s, CKU_USER, b"1234"),
        Err(Error::PinIncorrect)
    );
    assert_eq!(
        r.module.login(s, CKU_USER, b"ABC-12"),
        Err(Error::PinIncorrect)
    );
    assert_eq!(
        r.module.login(s, CKU_SO, SIGN_PIN),
        Err(Error::UserTypeInvalid)
    );
    assert_eq!(
        r.module.login(s, CKU_CONTEXT_SPECIFIC, SIGN_PIN),
        Err(Error::OperationNotInitialized)
    );
    assert_eq!(r.sim.apdus_received(), before);
}

fn verify_with_state(state_key: &rsa::RsaPrivateKey, digest_info: &[u8], sig: &[u8]) {
    let public = RsaPublicKey::from(state_key);
    public
        .verify(rsa::Pkcs1v15Sign::new_unprefixed(), digest_info, sig)
        .expect("signature verifies with the card's key");
}

#[test]
fn sign_and_verify() {
    let r = rig();
    let a = session(&r, 0);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    let key = private_key(&r, a);
    let pubk = public_key(&r, a);
    let data = b"hello JPKI";

    // Hash-and-sign, single part.
    r.module.sign_init(a, CKM_SHA256_RSA_PKCS, key).unwrap();
    assert_eq!(r.module.sign_len(a).unwrap(), 256);
    let sig = r.module.sign(a, data).unwrap();
    assert_eq!(sig.len(), 256);
    let mut di = rsa::Pkcs1v15Sign::new::<Sha256>().prefix.to_vec();
    di.extend_from_slice(&Sha256::digest(data));
    verify_with_state(&test_state().auth_key, &di, &sig);
    r.module.verify_init(a, CKM_SHA256_RSA_PKCS, pubk).unwrap();
    r.module.verify(a, data, &sig).unwrap();
    r.module.verify_init(a, CKM_SHA256_RSA_PKCS, pubk).unwrap();
    assert_eq!(
        r.module.verify(a, b"other", &sig),
        Err(Error::SignatureInvalid)
    );
    r.module.verify_init(a, CKM_SHA256_RSA_PKCS, pubk).unwrap();
    assert_eq!(
        r.module.verify(a, data, &sig[1..]),
        Err(Error::SignatureLenRange)
    );

    // Raw CKM_RSA_PKCS over a DigestInfo gives the same signature (deterministic padding).
    r.module.sign_init(a, CKM_RSA_PKCS, key).unwrap();
    assert_eq!(r.module.sign(a, &di).unwrap(), sig);
    r.module.verify_init(a, CKM_RSA_PKCS, pubk).unwrap();
    r.module.verify(a, &di, &sig).unwrap();

    // Multi-part.
    r.module.sign_init(a, CKM_SHA256_RSA_PKCS, key).unwrap();
    r.module.sign_update(a, b"hello ").unwrap();
    r.module.sign_update(a, b"JPKI").unwrap();
    assert_eq!(r.module.sign_final(a).unwrap(), sig);
    r.module.verify_init(a, CKM_SHA256_RSA_PKCS, pubk).unwrap();
    r.module.verify_update(a, b"hello ").unwrap();
    r.module.verify_update(a, b"JPKI").unwrap();
    r.module.verify_final(a, &sig).unwrap();

    // Every hash.
    for mech in [
        CKM_SHA1_RSA_PKCS,
        CKM_SHA224_RSA_PKCS,
        CKM_SHA384_RSA_PKCS,
        CKM_SHA512_RSA_PKCS,
    ] {
        r.module.sign_init(a, mech, key).unwrap();
        let s = r.module.sign(a, data).unwrap();
        r.module.verify_init(a, mech, pubk).unwrap();
        r.module.verify(a, data, &s).unwrap();
    }

    // Limits and wrong inputs.
    r.module.sign_init(a, CKM_RSA_PKCS, key).unwrap();
    assert_eq!(r.module.sign(a, &[0u8; 246]), Err(Error::DataLenRange));
    assert_eq!(r.module.sign_len(a), Err(Error::OperationNotInitialized));
    r.module.sign_init(a, CKM_RSA_PKCS, key).unwrap();
    assert_eq!(
        r.module.sign_init(a, CKM_RSA_PKCS, key),
        Err(Error::OperationActive)
    );
    assert_eq!(r.module.sign(a, &[1u8; 245]).unwrap().len(), 256);
    assert_eq!(
        r.module.sign_init(a, CKM_RSA_X_509, key),
        Err(Error::MechanismInvalid)
    );
    assert_eq!(
        r.module.sign_init(a, CKM_RSA_PKCS_PSS, key),
        Err(Error::MechanismInvalid)
    );
    assert_eq!(
        r.module.sign_init(a, CKM_RSA_PKCS, pubk),
        Err(Error::KeyTypeInconsistent)
    );
    assert_eq!(
        r.module.sign_init(a, CKM_RSA_PKCS, 999_999),
        Err(Error::KeyHandleInvalid)
    );

    // Signature token.
    let s = session(&r, 1);
    r.module.login(s, CKU_USER, SIGN_PIN).unwrap();
    let skey = private_key(&r, s);
    r.module.sign_init(s, CKM_SHA256_RSA_PKCS, skey).unwrap();
    let ssig = r.module.sign(s, data).unwrap();
    verify_with_state(&test_state().sign_key, &di, &ssig);

    // Logout: signing refused.
    r.module.logout(a).unwrap();
    assert_eq!(
        r.module.sign_init(a, CKM_RSA_PKCS, key),
        Err(Error::UserNotLoggedIn)
    );
}

#[test]
fn digest_in_software() {
    let r = rig();
    let a = session(&r, 0);
    r.module.digest_init(a, CKM_SHA256).unwrap();
    assert_eq!(r.module.digest_len(a).unwrap(), 32);
    assert_eq!(
        r.module.digest(a, b"abc").unwrap(),
        Sha256::digest(b"abc").to_vec()
    );
    r.module.digest_init(a, CKM_SHA_1).unwrap();
    r.module.digest_update(a, b"a").unwrap();
    r.module.digest_update(a, b"bc").unwrap();
    assert_eq!(r.module.digest_final(a).unwrap().len(), 20);
    assert_eq!(
        r.module.digest_init(a, CKM_MD5),
        Err(Error::MechanismInvalid)
    );
}

#[test]
fn mechanisms() {
    let r = rig();
    let list = r.module.mechanism_list(0).unwrap();
    assert!(list.contains(&CKM_RSA_PKCS) && list.contains(&CKM_SHA512));
    assert!(!list.contains(&CKM_RSA_X_509) && !list.contains(&CKM_RSA_PKCS_PSS));
    let (min, max, flags) = r.module.mechanism_info(0, CKM_SHA256_RSA_PKCS).unwrap();
    assert_eq!((min, max), (2048, 2048));
    assert_eq!(flags, CKF_HW | CKF_SIGN | CKF_VERIFY);
    assert_eq!(flags & CKF_DECRYPT, 0);
    assert_eq!(
        r.module.mechanism_info(0, CKM_RSA_PKCS_PSS),
        Err(Error::MechanismInvalid)
    );
    // An empty reader has no token, hence no mechanisms.
    r.readers.add_reader("Reader B");
    assert_eq!(r.module.mechanism_list(2), Err(Error::TokenNotPresent));
    assert_eq!(
        r.module.mechanism_info(3, CKM_RSA_PKCS),
        Err(Error::TokenNotPresent)
    );
    assert_eq!(r.module.mechanism_list(9), Err(Error::SlotIdInvalid));
}

#[test]
fn sessions_and_logout_on_last_close() {
    let r = rig();
    assert_eq!(
        r.module.open_session(0, 0),
        Err(Error::SessionParallelNotSupported)
    );
    let rw = r
        .module
        .open_session(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
        .unwrap();
    let ro = session(&r, 0);
    assert_ne!(rw, ro);
    assert_eq!(r.module.session_info(rw).unwrap().1, CKS_RW_PUBLIC_SESSION);
    r.module.login(ro, CKU_USER, AUTH_PIN).unwrap();
    assert_eq!(r.module.session_info(rw).unwrap().1, CKS_RW_USER_FUNCTIONS);
    assert_eq!(r.module.session_info(ro).unwrap().1, CKS_RO_USER_FUNCTIONS);
    assert_eq!(r.module.refuse_write(rw), Err(Error::TokenWriteProtected));
    let info = r.module.token_info(0).unwrap();
    assert_eq!((info.sessions, info.rw_sessions), (2, 1));
    r.module.close_session(ro).unwrap();
    assert_eq!(r.module.session_info(rw).unwrap().1, CKS_RW_USER_FUNCTIONS);
    r.module.close_session(rw).unwrap();
    assert_eq!(r.module.close_session(rw), Err(Error::SessionHandleInvalid));
    let again = session(&r, 0);
    assert_ne!(again, rw, "handles are not reused");
    assert_eq!(
        r.module.session_info(again).unwrap().1,
        CKS_RO_PUBLIC_SESSION
    );
    r.module.close_all_sessions(0).unwrap();
    assert_eq!(
        r.module.session_info(again),
        Err(Error::SessionHandleInvalid)
    );
}

#[test]
fn card_removal() {
    let r = rig();
    let a = session(&r, 0);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    let key = private_key(&r, a);
    r.module.sign_init(a, CKM_RSA_PKCS, key).unwrap();
    let b = session(&r, 0);
    r.readers.remove_card("Reader A");
    // Answered from memory, yet the removal is noticed (transport status, no APDU).
    assert_eq!(r.module.find_init(b, &[]), Err(Error::DeviceRemoved));
    assert_eq!(r.module.find_init(b, &[]), Err(Error::SessionHandleInvalid));
    assert_eq!(r.module.sign(a, b"x"), Err(Error::SessionHandleInvalid));
    assert_eq!(r.module.session_info(a), Err(Error::SessionHandleInvalid));
    assert_eq!(r.module.token_info(0).unwrap_err(), Error::TokenNotPresent);
    assert_eq!(r.module.slot_list(true), Vec::<CK_SLOT_ID>::new());
    assert_eq!(r.module.slot_list(false), vec![0, 1]);
    assert_eq!(r.module.slot_info(0).unwrap().flags & CKF_TOKEN_PRESENT, 0);
    // Reinserted: new session works, logged out.
    let (_vc, sim) = card(test_state(), Profile::Conservative);
    r.readers.insert_card("Reader A", sim);
    let b = session(&r, 0);
    assert_eq!(r.module.session_info(b).unwrap().1, CKS_RO_PUBLIC_SESSION);
}

#[test]
fn card_reset_by_another_party_logs_out() {
    let r = rig();
    let a = session(&r, 0);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    let key = private_key(&r, a);
    // Reset during a signing operation: the card command reports it.
    r.module.sign_init(a, CKM_RSA_PKCS, key).unwrap();
    r.sim.reset();
    assert_eq!(r.module.sign(a, b"x"), Err(Error::UserNotLoggedIn));
    assert_eq!(r.module.session_info(a).unwrap().1, CKS_RO_PUBLIC_SESSION);
    // Reset between calls: noticed from the transport's status, with no APDU.
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    r.sim.reset();
    let before = r.sim.apdus_received();
    assert_eq!(r.module.session_info(a).unwrap().1, CKS_RO_PUBLIC_SESSION);
    assert_eq!(
        r.module.sign_init(a, CKM_RSA_PKCS, key),
        Err(Error::UserNotLoggedIn)
    );
    assert_eq!(r.sim.apdus_received(), before);
    // A new login works again.
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    r.module.sign_init(a, CKM_RSA_PKCS, key).unwrap();
    assert_eq!(r.module.sign(a, b"x").unwrap().len(), 256);
    // A reset the transport does not see (security state silently gone): the card says 6982.
    r.vc.lock().external_reset();
    r.module.sign_init(a, CKM_RSA_PKCS, key).unwrap();
    assert_eq!(r.module.sign(a, b"x"), Err(Error::UserNotLoggedIn));
}

#[test]
fn searches_are_served_from_memory() {
    let r = rig();
    let a = session(&r, 0);
    find(&r, a, &[]);
    let before = r.sim.apdus_received();
    for _ in 0..400 {
        find(&r, a, &[class(CKO_CERTIFICATE)]);
    }
    assert_eq!(r.sim.apdus_received(), before);
}

#[test]
fn extended_profile_card_works() {
    let r = rig_with(test_state(), Profile::Extended);
    let s = session(&r, 1);
    r.module.login(s, CKU_USER, SIGN_PIN).unwrap();
    let key = private_key(&r, s);
    r.module.sign_init(s, CKM_SHA256_RSA_PKCS, key).unwrap();
    assert_eq!(r.module.sign(s, b"data").unwrap().len(), 256);
}

#[test]
fn wait_for_slot_event() {
    let r = rig();
    r.module.slot_list(false);
    assert_eq!(r.module.wait_for_slot_event(true), Err(Error::NoEvent));
    let (_vc, sim) = card(test_state_b(), Profile::Conservative);
    r.readers.insert_card("Reader B", sim);
    let first = r.module.wait_for_slot_event(true).unwrap();
    assert!(first == 2 || first == 3);

    // Blocking wait woken by another thread's insertion.
    let module = Arc::new(r.module);
    let m2 = module.clone();
    let waiter = std::thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(m2.wait_for_slot_event(false));
        }
        got
    });
    std::thread::sleep(Duration::from_millis(100));
    r.readers.remove_card("Reader A");
    let got = waiter.join().unwrap();
    assert!(got.iter().all(|g| g.is_ok()), "{got:?}");

    // Blocked waiter, then shut down: returns NotInitialized promptly.
    let m3 = module.clone();
    let waiter = std::thread::spawn(move || {
        // Drain pending events first.
        loop {
            match m3.wait_for_slot_event(false) {
                Ok(_) => continue,
                other => return other,
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    module.shut_down();
    assert_eq!(waiter.join().unwrap(), Err(Error::NotInitialized));
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn damaged_certificate_reads_are_retried_then_absent() {
    let r = rig();
    let a = session(&r, 0);
    // The DER header lies once: the bytes read are no certificate. The search fails, and the
    // next one reads the file again (the answer may have been damaged on the way).
    r.vc.lock().faults_mut().apply_spec("certlen +100").unwrap();
    assert_eq!(r.module.find_init(a, &[]), Err(Error::DeviceError));
    assert_eq!(find(&r, a, &[class(CKO_CERTIFICATE)]).len(), 2);
    // A file that stays unusable counts as absent after a few reads: the other objects stay
    // usable and searches stop costing card traffic.
    let r = rig();
    let a = session(&r, 0);
    r.vc.lock()
        .faults_mut()
        .apply_spec("certlen -100 count=1000")
        .unwrap();
    let mut failed = 0;
    while r.module.find_init(a, &[]) == Err(Error::DeviceError) {
        failed += 1;
        assert!(failed < 10);
    }
    r.module.find_final(a).unwrap();
    // Two reads each of the CA and the user certificate fail, the third gives up.
    assert_eq!(failed, 4);
    assert!(find(&r, a, &[class(CKO_CERTIFICATE)]).is_empty());
    let before = r.sim.apdus_received();
    find(&r, a, &[]);
    assert_eq!(r.sim.apdus_received(), before);
}

// ---- traffic economy (issue 6) --------------------------------------------------------------

/// APDUs the card receives while `f` runs.
fn apdus(r: &Rig, f: impl FnOnce()) -> u64 {
    let before = r.sim.apdus_received();
    f();
    r.sim.apdus_received() - before
}

#[test]
fn token_info_reads_the_auth_certificate_only_and_tries_once() {
    for profile in [Profile::Conservative, Profile::Extended] {
        let r = rig_with(test_state(), profile);
        let ext = profile == Profile::Extended;
        let reads = r.vc.lock().state().auth_certificate().len().div_ceil(256) as u64;
        // SELECT AP (probe), the authentication certificate (not its CA), the counter.
        let first = apdus(&r, || {
            r.module.token_info(0).unwrap();
        });
        // The reader was never seen (each test thread starts with no memory of readers), so the
        // first full read is the extended-length probe: after the chunk, the whole certificate
        // in one READ on the extended card; refused once on the conservative one, which reads
        // on with short APDUs after its refused SFI probe and the SELECT EF.
        let cert = if ext { 1 + 1 } else { 1 + 1 + reads + 1 };
        assert_eq!(first, 1 + cert + if ext { 1 } else { 2 }, "{profile:?}");
        // A burst of C_GetTokenInfo: answered from memory.
        assert_eq!(
            apdus(&r, || {
                for _ in 0..5 {
                    r.module.token_info(0).unwrap();
                }
            }),
            0
        );
        // The other token: its counter only.
        assert_eq!(
            apdus(&r, || {
                r.module.token_info(1).unwrap();
            }),
            if ext { 1 } else { 2 }
        );
    }
}

#[test]
fn searches_read_only_the_files_that_can_match() {
    for profile in [Profile::Conservative, Profile::Extended] {
        let r = rig_with(test_state(), profile);
        let (a, s) = (session(&r, 0), session(&r, 1));
        // Profiles and vendor classes: never a certificate read.
        let first = apdus(&r, || {
            assert!(!find(&r, a, &[class(CKO_PROFILE)]).is_empty());
            assert!(!find(&r, s, &[class(CKO_PROFILE)]).is_empty());
            assert!(find(&r, a, &[class(NSS_TRUST)]).is_empty());
        });
        assert_eq!(
            first, 0,
            "{profile:?}: nothing beyond the probe at C_OpenSession"
        );
        // A key search reads the user certificate, not the CA certificate (the private key is
        // hidden before login; the public one is not).
        let state = r.vc.lock().state().clone();
        let ext = profile == Profile::Extended;
        let n = apdus(&r, || {
            assert_eq!(find(&r, a, &[class(CKO_PUBLIC_KEY)]).len(), 1);
        });
        let reads = |der: &[u8]| der.len().div_ceil(256) as u64;
        // Without a cache (none in unit tests) this first read is a full one, and the reader
        // is new to this rig, so it starts with the extended-length probe after the SELECT EF:
        // the whole certificate in that one READ on the extended card; refused on the other,
        // which reads on with short APDUs (the EF being current, no SFI probe yet).
        let first = if ext {
            2
        } else {
            1 + 1 + reads(state.auth_certificate())
        };
        assert_eq!(n, first);
        // Each later certificate: the extended card reads it in one extended READ after its
        // SELECT EF (the SFI form of READ is not known to work yet); the other pays its refused
        // SFI probe once (first_sfi_read), a SELECT EF and short reads.
        let cost = |der: &[u8], first_sfi_read: bool| match (ext, first_sfi_read) {
            (true, _) => 2,
            (false, true) => 2 + reads(der),
            (false, false) => 1 + reads(der),
        };
        // By id or label: the CA certificate only when they name it.
        assert_eq!(
            apdus(&r, || {
                find(&r, a, &[(CKA_ID, vec![0x01])]);
                find(&r, a, &[(CKA_LABEL, b"JPKI User Authentication".to_vec())]);
            }),
            0
        );
        let n = apdus(&r, || {
            assert_eq!(find(&r, a, &[(CKA_ID, vec![0x03])]).len(), 1);
        });
        assert_eq!(n, cost(state.auth_ca_certificate(), true));
        // The sign token before login: its CA certificate only (the user one needs the password).
        let n = apdus(&r, || {
            assert_eq!(find(&r, s, &[class(CKO_CERTIFICATE)]).len(), 1);
        });
        assert_eq!(n, cost(state.sign_ca_certificate(), false));
        // Everything is in memory now.
        assert_eq!(
            apdus(&r, || {
                find(&r, a, &[]);
                find(&r, s, &[]);
            }),
            0
        );
    }
}

mod phone_token;
