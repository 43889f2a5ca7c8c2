//! Faults of the environment, through pcscd: pcscd restarted mid-session, the card removed
//! and re-inserted, two readers with two cards, the card reset by another PC/SC client (and
//! behind PC/SC's back) between login and sign.
//!
//! In every case: no signature that does not verify, no PIN sent again behind the
//! application's back (the card's VERIFY count moves only with our own C_Login calls), and
//! the module works again afterwards.
//!
//! Run: tests/harness/with-card.sh -- cargo test --test environment -- --include-ignored --test-threads=1 --skip two_readers_two_cards
//!      tests/harness/with-card.sh --cards 2 -- cargo test --test environment -- --include-ignored --test-threads=1

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod robust;

use std::ffi::CString;
use std::process::Command;
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use jpki_pkcs11::pkcs11::{Error, Module};
use robust::*;

/// A logged-in session on `slot` and its private key.
fn logged_in(m: &Module, slot: CK_SLOT_ID, pin: &[u8]) -> (CK_SESSION_HANDLE, CK_OBJECT_HANDLE) {
    let h = open(m, slot).expect("open session");
    m.login(h, CKU_USER, pin).expect("login");
    let key = private_key(m, h).expect("private key");
    (h, key)
}

/// Signs and checks the signature against the session's certificate.
fn sign_checked(m: &Module, h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> Result<(), Error> {
    let message = b"environment";
    let signature = sign(m, h, key, message)?;
    let cert = user_certificate(m, h).expect("user certificate");
    assert!(
        verifies(&cert, message, &signature),
        "a signature that does not verify"
    );
    Ok(())
}

/// Errors a session may see once its card or pcscd went away.
const GONE: &[CK_RV] = &[
    CKR_DEVICE_REMOVED,
    CKR_DEVICE_ERROR,
    CKR_SESSION_HANDLE_INVALID,
    CKR_USER_NOT_LOGGED_IN,
    CKR_TOKEN_NOT_PRESENT,
];

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn pcscd_restarted_during_a_session() {
    require_harness();
    fresh_start();
    let m = module();
    let (auth, _) = token_slots(&m);
    let (h, key) = logged_in(&m, auth, AUTH_PIN);
    sign_checked(&m, h, key).expect("sign before the restart");
    let verifies_before = stat(0, "verify_count");

    let status = Command::new(std::env::var("JPKI_TEST_RESTART_PCSCD").expect("restart script"))
        .status()
        .expect("restart pcscd");
    assert!(status.success());
    // The virtual card reconnects to the new pcscd's vpcd.
    assert!(wait_until(Duration::from_secs(10), || !m
        .slot_list(true)
        .is_empty()));

    // The card was reset with pcscd: the login is gone and must not come back by itself.
    let after = sign(&m, h, key, b"after restart");
    println!("C_Sign after the pcscd restart: {}", rv_name(rv(&after)));
    assert!(GONE.contains(&rv(&after)), "{}", rv_name(rv(&after)));
    assert_eq!(
        stat(0, "verify_count"),
        verifies_before,
        "a PIN was replayed"
    );

    let took = recovers(&m, auth, AUTH_PIN, Duration::from_secs(20));
    println!("working again {took:?} later");
    assert_eq!(stat(0, "verify_count"), verifies_before + 1);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn card_removed_and_reinserted() {
    require_harness();
    fresh_start();
    let m = module();
    let (auth, sign_slot) = token_slots(&m);
    let (a, auth_key) = logged_in(&m, auth, AUTH_PIN);
    let (s, sign_key) = logged_in(&m, sign_slot, SIGN_PIN);
    sign_checked(&m, a, auth_key).unwrap();
    sign_checked(&m, s, sign_key).unwrap();
    while m.wait_for_slot_event(true).is_ok() {}

    ctl_ok(0, "remove");
    assert!(wait_until(Duration::from_secs(5), || !m
        .slot_list(true)
        .contains(&auth)));
    assert_eq!(m.wait_for_slot_event(true), Ok(auth));
    assert_eq!(m.wait_for_slot_event(true), Ok(sign_slot));
    assert_eq!(m.token_info(auth).err(), Some(Error::TokenNotPresent));
    assert_eq!(open(&m, auth).err(), Some(Error::TokenNotPresent));
    assert_eq!(rv(&sign(&m, a, auth_key, b"x")), CKR_SESSION_HANDLE_INVALID);
    assert_eq!(m.session_info(s).err(), Some(Error::SessionHandleInvalid));

    // A blocked C_WaitForSlotEvent wakes up on the insertion.
    let verifies_before = stat(0, "verify_count");
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| m.wait_for_slot_event(false));
        std::thread::sleep(Duration::from_millis(300));
        ctl_ok(0, "insert");
        assert_eq!(waiter.join().unwrap(), Ok(auth));
    });
    assert!(wait_until(Duration::from_secs(5), || m
        .slot_list(true)
        .contains(&sign_slot)));
    let a = open(&m, auth).unwrap();
    assert_eq!(m.session_info(a).unwrap().1, CKS_RO_PUBLIC_SESSION);
    assert_eq!(
        m.sign_init(a, CKM_SHA256_RSA_PKCS, auth_key).err(),
        Some(Error::KeyHandleInvalid),
        "object handles of the removed card are not reused"
    );
    assert_eq!(stat(0, "verify_count"), verifies_before);
    let (a, auth_key) = logged_in(&m, auth, AUTH_PIN);
    sign_checked(&m, a, auth_key).unwrap();
    let (s, sign_key) = logged_in(&m, sign_slot, SIGN_PIN);
    sign_checked(&m, s, sign_key).unwrap();
}

/// Resets the card in `reader` as another application would: its own connection,
/// SCardReconnect with SCARD_RESET_CARD.
fn reset_by_another_client(reader: &str) {
    let context = pcsc::Context::establish(pcsc::Scope::User).expect("context");
    let name = CString::new(reader).unwrap();
    let mut card = context
        .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .expect("connect");
    card.reconnect(
        pcsc::ShareMode::Shared,
        pcsc::Protocols::ANY,
        pcsc::Disposition::ResetCard,
    )
    .expect("reset");
    card.disconnect(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .expect("disconnect");
}

fn first_reader_with_card() -> String {
    let context = pcsc::Context::establish(pcsc::Scope::User).expect("context");
    let mut readers: Vec<pcsc::ReaderState> = context
        .list_readers_owned()
        .expect("readers")
        .into_iter()
        .map(|n| pcsc::ReaderState::new(n, pcsc::State::UNAWARE))
        .collect();
    context
        .get_status_change(Duration::ZERO, &mut readers)
        .expect("status");
    readers
        .iter()
        .find(|r| r.event_state().contains(pcsc::State::PRESENT))
        .map(|r| r.name().to_string_lossy().into_owned())
        .expect("a reader with a card")
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn card_reset_between_login_and_sign() {
    require_harness();
    fresh_start();
    let m = module();
    let (auth, sign_slot) = token_slots(&m);
    let reader = first_reader_with_card();
    for (slot, pin) in [(auth, AUTH_PIN), (sign_slot, SIGN_PIN)] {
        // Another PC/SC client resets the card: pcscd tells us (SCARD_W_RESET_CARD).
        let (h, key) = logged_in(&m, slot, pin);
        let verifies = stat(0, "verify_count");
        reset_by_another_client(&reader);
        let t = Instant::now();
        let r = sign(&m, h, key, b"after a reset");
        println!(
            "slot {slot}: C_Sign after another client's reset: {} ({:?})",
            rv_name(rv(&r)),
            t.elapsed()
        );
        assert_eq!(rv(&r), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(m.session_info(h).unwrap().1, CKS_RO_PUBLIC_SESSION);
        assert_eq!(stat(0, "verify_count"), verifies, "a PIN was replayed");
        m.login(h, CKU_USER, pin).unwrap();
        sign_checked(&m, h, key).unwrap();

        // The card loses its state without PC/SC noticing (a reset we cannot see): the
        // card refuses to sign, the module logs the token out.
        let verifies = stat(0, "verify_count");
        ctl_ok(0, "reset");
        let r = sign(&m, h, key, b"after a hidden reset");
        println!(
            "slot {slot}: C_Sign after a hidden reset: {}",
            rv_name(rv(&r))
        );
        assert_eq!(rv(&r), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(m.session_info(h).unwrap().1, CKS_RO_PUBLIC_SESSION);
        assert_eq!(stat(0, "verify_count"), verifies, "a PIN was replayed");
        m.login(h, CKU_USER, pin).unwrap();
        sign_checked(&m, h, key).unwrap();
        m.close_session(h).unwrap();
    }
    assert_eq!(stat(0, "malformed_verify_count"), 0);
}

/// Needs the harness with two cards: a one-card run leaves it out with
/// `--skip two_readers_two_cards` (tests/run-all.sh does), so it is never counted as passed
/// without having run.
#[test]
#[ignore = "needs pcscd and two cards: run through tests/harness/with-card.sh --cards 2 (tests/run-all.sh does)"]
fn two_readers_two_cards() {
    require_harness();
    assert!(
        cards() >= 2,
        "needs two cards: tests/harness/with-card.sh --cards 2 (one-card runs: --skip two_readers_two_cards)"
    );
    fresh_start();
    let m = module();
    let mut slots = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        slots = m.slot_list(true);
        slots.len() == 4
    }));
    println!("slots with a token: {slots:?}");
    let labels: Vec<String> = slots
        .iter()
        .map(|s| m.token_info(*s).unwrap().token.label)
        .collect();
    println!("labels: {labels:?}");
    assert_ne!(labels[0], labels[2], "two cards, two labels");
    assert_ne!(
        m.token_info(slots[0]).unwrap().token.serial,
        m.token_info(slots[2]).unwrap().token.serial
    );

    // Each card signs with its own keys, at the same time.
    let certs: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let workers: Vec<_> = slots
            .iter()
            .map(|&slot| {
                let m = &m;
                scope.spawn(move || {
                    let pin = if slot % 2 == 0 { AUTH_PIN } else { SIGN_PIN };
                    let (h, key) = logged_in(m, slot, pin);
                    for _ in 0..10 {
                        sign_checked(m, h, key).unwrap();
                    }
                    user_certificate(m, h).unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(certs[0], true_certificates(0)[0]);
    assert_eq!(certs[2], true_certificates(1)[0]);
    assert_eq!(certs[3], true_certificates(1)[2]);

    // Logging out of card 0 leaves card 1 logged in.
    let a0 = open(&m, slots[0]).unwrap();
    let a1 = open(&m, slots[2]).unwrap();
    assert_eq!(m.session_info(a1).unwrap().1, CKS_RO_USER_FUNCTIONS);
    m.logout(a0).unwrap();
    assert_eq!(m.session_info(a0).unwrap().1, CKS_RO_PUBLIC_SESSION);
    assert_eq!(m.session_info(a1).unwrap().1, CKS_RO_USER_FUNCTIONS);
    let key1 = private_key(&m, a1).unwrap();
    sign_checked(&m, a1, key1).unwrap();

    // Card 1 removed: card 0 goes on; card 1 comes back.
    ctl_ok(1, "remove");
    assert!(wait_until(Duration::from_secs(5), || m
        .slot_list(true)
        .len()
        == 2));
    assert_eq!(rv(&sign(&m, a1, key1, b"x")), CKR_SESSION_HANDLE_INVALID);
    let (h, key) = logged_in(&m, slots[0], AUTH_PIN);
    sign_checked(&m, h, key).unwrap();
    ctl_ok(1, "insert");
    assert!(wait_until(Duration::from_secs(5), || m
        .slot_list(true)
        .len()
        == 4));
    recovers(&m, slots[2], AUTH_PIN, Duration::from_secs(10));
    recovers(&m, slots[3], SIGN_PIN, Duration::from_secs(10));
    assert_eq!(stat(0, "malformed_verify_count"), 0);
    assert_eq!(stat(1, "malformed_verify_count"), 0);
}
