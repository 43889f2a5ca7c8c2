//! Core tests of RSASSA-PSS (advertised only on cards with their own PSS) and C_SetPIN,
//! with simulated readers and the virtual card library, on both profiles.

use std::sync::Arc;

use cryptoki_sys::*;
use jpki_virtual_card::{test_state, Profile, VirtualCard};
use parking_lot::Mutex;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};

use super::mechanism::{MechanismParam, PssParams};
use super::object::ulong;
use super::{Error, Module};
use crate::transport::in_process::{InProcessReaders, SimulatedCard};

const AUTH_PIN: &[u8] = b"1234";
const SIGN_PIN: &[u8] = b"ABC123";

struct Rig {
    module: Module,
    vc: Arc<Mutex<VirtualCard>>,
    sim: SimulatedCard,
    _readers: InProcessReaders,
}

fn rig(profile: Profile) -> Rig {
    let readers = InProcessReaders::new();
    let vc = Arc::new(Mutex::new(VirtualCard::new(test_state(), profile)));
    let atr = vc.lock().atr();
    let (a, b) = (vc.clone(), vc.clone());
    let sim = SimulatedCard::new(atr, move |apdu| a.lock().process_apdu(apdu))
        .with_reset_hook(move || b.lock().reset());
    readers.insert_card("Reader A", sim.clone());
    let module = Module::new(Box::new(readers.clone()));
    Rig {
        module,
        vc,
        sim,
        _readers: readers,
    }
}

fn session(r: &Rig, slot: CK_SLOT_ID, rw: bool) -> CK_SESSION_HANDLE {
    let flags = CKF_SERIAL_SESSION | if rw { CKF_RW_SESSION } else { 0 };
    r.module.open_session(slot, flags).expect("open session")
}

fn key(r: &Rig, h: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS) -> CK_OBJECT_HANDLE {
    r.module.find_init(h, &[(CKA_CLASS, ulong(class))]).unwrap();
    let found = r.module.find_next(h, 10).unwrap();
    r.module.find_final(h).unwrap();
    assert_eq!(found.len(), 1);
    found[0]
}

fn tls13_params() -> MechanismParam {
    MechanismParam::Pss(PssParams {
        hash_alg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        s_len: 32,
    })
}

/// COMPUTE DIGITAL SIGNATURE commands the card has seen (INS 2A).
fn sign_commands(r: &Rig) -> u64 {
    r.vc.lock().stats().per_ins.get("2a").copied().unwrap_or(0)
}

#[test]
fn pss_not_advertised_on_conservative() {
    let r = rig(Profile::Conservative);
    let list = r.module.mechanism_list(0).unwrap();
    assert!(!list.contains(&CKM_RSA_PKCS_PSS));
    assert!(!list.contains(&CKM_SHA256_RSA_PKCS_PSS));
    assert!(list.contains(&CKM_SHA256_RSA_PKCS));
    for mech in [CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS] {
        assert_eq!(
            r.module.mechanism_info(0, mech),
            Err(Error::MechanismInvalid)
        );
        assert_eq!(
            r.module.mechanism_info(1, mech),
            Err(Error::MechanismInvalid)
        );
    }
    let a = session(&r, 0, false);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    let k = key(&r, a, CKO_PRIVATE_KEY);
    let p = key(&r, a, CKO_PUBLIC_KEY);
    for mech in [CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS] {
        assert_eq!(
            r.module.sign_init_with(a, mech, tls13_params(), k),
            Err(Error::MechanismInvalid)
        );
        assert_eq!(
            r.module.verify_init_with(a, mech, tls13_params(), p),
            Err(Error::MechanismInvalid)
        );
    }
    // The probe asked once (one 80 2A), and nothing was signed.
    assert_eq!(sign_commands(&r), 1);
    assert_eq!(r.vc.lock().stats().signatures, 0);
    // PKCS#1 v1.5 still works.
    r.module.sign_init(a, CKM_SHA256_RSA_PKCS, k).unwrap();
    assert_eq!(r.module.sign(a, b"data").unwrap().len(), 256);
}

#[test]
fn pss_probe_is_lazy_and_cached() {
    let r = rig(Profile::Extended);
    // Slots, token info, sessions, searches, login: no probe.
    r.module.slot_list(true);
    r.module.token_info(0).unwrap();
    r.module.token_info(1).unwrap();
    let a = session(&r, 0, false);
    key(&r, a, CKO_PUBLIC_KEY);
    assert_eq!(sign_commands(&r), 0);
    // First mechanism question: one probe, for the card (both tokens).
    let before = r.sim.apdus_received();
    let list = r.module.mechanism_list(0).unwrap();
    assert!(list.contains(&CKM_RSA_PKCS_PSS) && list.contains(&CKM_SHA256_RSA_PKCS_PSS));
    assert!(r.sim.apdus_received() - before <= 2);
    assert_eq!(sign_commands(&r), 1);
    assert!(r
        .module
        .mechanism_list(1)
        .unwrap()
        .contains(&CKM_RSA_PKCS_PSS));
    r.module.mechanism_info(0, CKM_RSA_PKCS_PSS).unwrap();
    r.module.mechanism_info(1, CKM_SHA256_RSA_PKCS_PSS).unwrap();
    assert_eq!(sign_commands(&r), 1);
    assert_eq!(r.vc.lock().stats().signatures, 0);
    // Asking about another mechanism never probes.
    let r2 = rig(Profile::Extended);
    r2.module.mechanism_info(0, CKM_SHA256_RSA_PKCS).unwrap();
    assert_eq!(sign_commands(&r2), 0);
}

#[test]
fn pss_sign_and_verify_on_extended() {
    let r = rig(Profile::Extended);
    let state = test_state();
    let (min, max, flags) = r.module.mechanism_info(0, CKM_RSA_PKCS_PSS).unwrap();
    assert_eq!((min, max), (2048, 2048));
    assert_eq!(flags, CKF_HW | CKF_SIGN | CKF_VERIFY);
    let a = session(&r, 0, false);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    let k = key(&r, a, CKO_PRIVATE_KEY);
    let p = key(&r, a, CKO_PUBLIC_KEY);

    // Parameters other than the card's are refused.
    let bad = [
        MechanismParam::None,
        MechanismParam::Other,
        MechanismParam::Pss(PssParams {
            hash_alg: CKM_SHA_1,
            mgf: CKG_MGF1_SHA256,
            s_len: 32,
        }),
        MechanismParam::Pss(PssParams {
            hash_alg: CKM_SHA256,
            mgf: CKG_MGF1_SHA1,
            s_len: 32,
        }),
        MechanismParam::Pss(PssParams {
            hash_alg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            s_len: 20,
        }),
        MechanismParam::Pss(PssParams {
            hash_alg: CKM_SHA384,
            mgf: CKG_MGF1_SHA384,
            s_len: 48,
        }),
    ];
    for param in bad {
        for mech in [CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS] {
            assert_eq!(
                r.module.sign_init_with(a, mech, param, k),
                Err(Error::MechanismParamInvalid),
                "{param:?}"
            );
            assert_eq!(
                r.module.verify_init_with(a, mech, param, p),
                Err(Error::MechanismParamInvalid)
            );
        }
    }

    // CKM_RSA_PKCS_PSS over a 32-byte hash (what NSS and libp11 send for TLS 1.3).
    let message = b"TLS 1.3, client CertificateVerify";
    let hash = Sha256::digest(message);
    let public = RsaPublicKey::from(&state.auth_key);
    r.module
        .sign_init_with(a, CKM_RSA_PKCS_PSS, tls13_params(), k)
        .unwrap();
    assert_eq!(r.module.sign_len(a).unwrap(), 256);
    let sig = r.module.sign(a, &hash).unwrap();
    public
        .verify(rsa::Pss::new_with_salt::<Sha256>(32), &hash, &sig)
        .unwrap();
    r.module
        .verify_init_with(a, CKM_RSA_PKCS_PSS, tls13_params(), p)
        .unwrap();
    r.module.verify(a, &hash, &sig).unwrap();
    r.module
        .verify_init_with(a, CKM_RSA_PKCS_PSS, tls13_params(), p)
        .unwrap();
    let mut wrong = hash;
    wrong[0] ^= 1;
    assert_eq!(
        r.module.verify(a, &wrong, &sig),
        Err(Error::SignatureInvalid)
    );

    // Wrong input length: 31 and 33 bytes.
    for n in [31, 33, 0] {
        r.module
            .sign_init_with(a, CKM_RSA_PKCS_PSS, tls13_params(), k)
            .unwrap();
        assert_eq!(
            r.module.sign(a, &vec![1u8; n]),
            Err(Error::DataLenRange),
            "{n}"
        );
    }

    // CKM_SHA256_RSA_PKCS_PSS: the module hashes; single and multi-part.
    r.module
        .sign_init_with(a, CKM_SHA256_RSA_PKCS_PSS, tls13_params(), k)
        .unwrap();
    let sig = r.module.sign(a, message).unwrap();
    public
        .verify(rsa::Pss::new_with_salt::<Sha256>(32), &hash, &sig)
        .unwrap();
    r.module
        .sign_init_with(a, CKM_SHA256_RSA_PKCS_PSS, tls13_params(), k)
        .unwrap();
    r.module.sign_update(a, &message[..5]).unwrap();
    r.module.sign_update(a, &message[5..]).unwrap();
    let sig = r.module.sign_final(a).unwrap();
    r.module
        .verify_init_with(a, CKM_SHA256_RSA_PKCS_PSS, tls13_params(), p)
        .unwrap();
    r.module.verify_update(a, message).unwrap();
    r.module.verify_final(a, &sig).unwrap();

    // Signature token too.
    let s = session(&r, 1, false);
    r.module.login(s, CKU_USER, SIGN_PIN).unwrap();
    let sk = key(&r, s, CKO_PRIVATE_KEY);
    r.module
        .sign_init_with(s, CKM_SHA256_RSA_PKCS_PSS, tls13_params(), sk)
        .unwrap();
    let sig = r.module.sign(s, message).unwrap();
    RsaPublicKey::from(&state.sign_key)
        .verify(rsa::Pss::new_with_salt::<Sha256>(32), &hash, &sig)
        .unwrap();

    // Not logged in: refused before the card.
    r.module.logout(a).unwrap();
    assert_eq!(
        r.module
            .sign_init_with(a, CKM_RSA_PKCS_PSS, tls13_params(), k),
        Err(Error::UserNotLoggedIn)
    );
}

// ----- C_SetPIN ------------------------------------------------------------------------------

fn flags(r: &Rig, slot: CK_SLOT_ID) -> CK_FLAGS {
    r.module.token_info(slot).unwrap().token.flags
}

#[test]
fn set_pin_success_and_new_pin_logs_in() {
    for profile in [Profile::Conservative, Profile::Extended] {
        let r = rig(profile);
        // Auth token, not logged in.
        let a = session(&r, 0, true);
        r.module.set_pin(a, AUTH_PIN, b"4321").unwrap();
        assert_eq!(r.module.session_info(a).unwrap().1, CKS_RW_PUBLIC_SESSION);
        assert_eq!(r.vc.lock().state().auth_pin, "4321");
        assert_eq!(
            r.module.login(a, CKU_USER, AUTH_PIN),
            Err(Error::PinIncorrect)
        );
        r.module.login(a, CKU_USER, b"4321").unwrap();
        // Changing while logged in keeps the login.
        r.module.set_pin(a, b"4321", b"1111").unwrap();
        assert_eq!(r.module.session_info(a).unwrap().1, CKS_RW_USER_FUNCTIONS);
        let k = key(&r, a, CKO_PRIVATE_KEY);
        r.module.sign_init(a, CKM_SHA256_RSA_PKCS, k).unwrap();
        r.module.sign(a, b"x").unwrap();

        // Signature token; lower-case input is the upper-case password.
        let s = session(&r, 1, true);
        r.module.set_pin(s, b"abc123", b"NEWPASS9").unwrap();
        assert_eq!(r.vc.lock().state().sign_password, "NEWPASS9");
        r.module.login(s, CKU_USER, b"newpass9").unwrap();
        let stats = r.vc.lock().stats().clone();
        assert_eq!(stats.malformed_verify_count, 0);
        assert_eq!(stats.malformed_change_count, 0);
    }
}

#[test]
fn set_pin_wrong_old_pin_counts_down() {
    let r = rig(Profile::Conservative);
    let a = session(&r, 0, true);
    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    assert_eq!(flags(&r, 0) & CKF_USER_PIN_COUNT_LOW, 0);
    assert_eq!(
        r.module.set_pin(a, b"9999", b"4321"),
        Err(Error::PinIncorrect)
    );
    assert_eq!(r.vc.lock().state().auth_tries_left, 2);
    // Like a failed login: the token is logged out, the flags tell the count.
    assert_eq!(r.module.session_info(a).unwrap().1, CKS_RW_PUBLIC_SESSION);
    assert_eq!(
        flags(&r, 0) & CKF_USER_PIN_COUNT_LOW,
        CKF_USER_PIN_COUNT_LOW
    );
    assert_eq!(
        r.module.set_pin(a, b"9999", b"4321"),
        Err(Error::PinIncorrect)
    );
    assert_eq!(
        flags(&r, 0) & (CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW),
        CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW
    );
    assert_eq!(r.vc.lock().state().auth_pin, "1234");
    // The right old PIN resets the counter.
    r.module.set_pin(a, AUTH_PIN, b"4321").unwrap();
    assert_eq!(r.vc.lock().state().auth_tries_left, 3);
    assert_eq!(flags(&r, 0) & CKF_USER_PIN_COUNT_LOW, 0);

    // Signature password: 5 tries.
    let s = session(&r, 1, true);
    assert_eq!(
        r.module.set_pin(s, b"WRONG1", b"NEWPASS9"),
        Err(Error::PinIncorrect)
    );
    assert_eq!(r.vc.lock().state().sign_tries_left, 4);
    assert_eq!(
        flags(&r, 1) & CKF_USER_PIN_COUNT_LOW,
        CKF_USER_PIN_COUNT_LOW
    );
}

#[test]
fn set_pin_malformed_sends_nothing() {
    let r = rig(Profile::Conservative);
    let a = session(&r, 0, true);
    let s = session(&r, 1, true);
    r.module.token_info(0).unwrap();
    let before = r.sim.apdus_received();
    let cases: [(CK_SESSION_HANDLE, &[u8], &[u8], Error); 10] = [
        (a, AUTH_PIN, b"123", Error::PinLenRange),
        (a, AUTH_PIN, b"12345", Error::PinLenRange),
        (a, AUTH_PIN, b"12a4", Error::PinInvalid),
        (a, AUTH_PIN, b"", Error::PinLenRange),
        (a, b"12", b"4321", Error::PinLenRange),
        (a, b"abcd", b"4321", Error::PinInvalid),
        (s, SIGN_PIN, b"ABC12", Error::PinLenRange),
        (s, SIGN_PIN, b"ABC-123", Error::PinInvalid),
        (s, SIGN_PIN, b"A2345678901234567", Error::PinLenRange),
        (s, b"1234", b"NEWPASS9", Error::PinLenRange),
    ];
    for (h, old, new, err) in cases {
        assert_eq!(r.module.set_pin(h, old, new), Err(err), "{new:?}");
    }
    assert_eq!(r.sim.apdus_received(), before, "nothing reached the card");
    let state = r.vc.lock().state().clone();
    assert_eq!((state.auth_tries_left, state.sign_tries_left), (3, 5));
    // A read-only session cannot change the PIN.
    let ro = session(&r, 0, false);
    assert_eq!(
        r.module.set_pin(ro, AUTH_PIN, b"4321"),
        Err(Error::Other(CKR_SESSION_READ_ONLY))
    );
    assert_eq!(r.sim.apdus_received(), before);
}
