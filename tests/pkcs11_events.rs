//! Slot events, card removal and reset (PKCS#11 chapter 5.5 C_WaitForSlotEvent, and the
//! session rules when the token goes away): what applications see when the card changes.
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_events -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_events -- --include-ignored --test-threads=1
//! ```
//! `JPKI_MODULE=target/release/libjpki_pkcs11.so` tests the release build instead.
//!
//! Every test leaves the card as it found it: inserted, PIN counters full, logged out. Locking
//! PINs is done in `tests/pkcs11_pin_lock.rs` (a separate harness run). Helpers shared by the
//! chapters are in `tests/common/`.

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ptr;
use std::time::{Duration, Instant};

use common::tokens::*;
use common::*;
use cryptoki_sys::*;

// ----- events, removal, reset ---------------------------------------------------------------

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn slot_events() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    assert_eq!(raw.slot_list(true), Ok(vec![0, 1]));
    assert_eq!(
        ctx.p
            .get_slot_event()
            .expect("C_WaitForSlotEvent(DONT_BLOCK)"),
        None
    );
    let mut id: CK_SLOT_ID = 0;
    assert_eq!(
        call!(
            raw,
            C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut id, ptr::null_mut())
        ),
        CKR_NO_EVENT
    );
    assert_eq!(
        call!(
            raw,
            C_WaitForSlotEvent(CKF_DONT_BLOCK, ptr::null_mut(), ptr::null_mut())
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            raw,
            C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut id, 8 as *mut _)
        ),
        CKR_ARGUMENTS_BAD
    );

    // A blocked wait returns on removal.
    let wait = raw.f.C_WaitForSlotEvent.expect("C_WaitForSlotEvent");
    let blocked = std::thread::spawn(move || {
        let mut id: CK_SLOT_ID = 99;
        let start = Instant::now();
        // SAFETY: valid out pointer.
        let rv = unsafe { wait(0, &mut id, ptr::null_mut()) };
        (rv, id, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    ctl("remove");
    let (rv, first, took) = blocked.join().expect("waiter");
    assert_eq!(rv, CKR_OK, "blocking wait");
    assert!(took < Duration::from_secs(10));
    let second = ctx
        .p
        .get_slot_event()
        .expect("second event")
        .map(|s| s.id());
    let mut both = vec![
        first,
        second.expect("both slots of the reader report the event"),
    ];
    both.sort();
    assert_eq!(both, vec![AUTH_SLOT, SIGN_SLOT]);
    assert_eq!(ctx.p.get_slot_event().expect("no more"), None);
    assert_eq!(raw.slot_list(true), Ok(vec![]));
    assert_eq!(
        raw.slot_list(false),
        Ok(vec![0, 1, 2, 3]),
        "slots stay while the reader stays"
    );
    assert_eq!(
        raw.slot_info(AUTH_SLOT).expect("slot info").flags & CKF_TOKEN_PRESENT,
        0
    );
    assert_eq!(raw.token_info(AUTH_SLOT).err(), Some(CKR_TOKEN_NOT_PRESENT));

    // Insertion: DONT_BLOCK polling sees it.
    ctl("insert");
    let got = retry("insertion event", Duration::from_secs(10), || {
        ctx.p.get_slot_event().expect("poll").map(|s| s.id())
    });
    assert!(got == AUTH_SLOT || got == SIGN_SLOT);
    let _ = ctx.p.get_slot_event();
    assert_eq!(raw.slot_list(true), Ok(vec![0, 1]));
    assert!(raw.token_info(AUTH_SLOT).is_ok());

    // C_Finalize wakes a blocked waiter, which reports CKR_CRYPTOKI_NOT_INITIALIZED.
    let blocked = std::thread::spawn(move || {
        let mut id: CK_SLOT_ID = 99;
        let start = Instant::now();
        // SAFETY: valid out pointer.
        let rv = unsafe { wait(0, &mut id, ptr::null_mut()) };
        (rv, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(raw.finalize(), CKR_OK);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "C_Finalize does not wait for the waiter"
    );
    let (rv, took) = blocked.join().expect("waiter");
    assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    assert!(took < Duration::from_secs(5), "woken promptly: {took:?}");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn card_removed_mid_session() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let auth = raw.open_ro(AUTH_SLOT);
    let sign = raw.open_ro(SIGN_SLOT);
    let idle = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.login(auth, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    let key = one(&ctx, auth, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
    let ca = one(
        &ctx,
        idle,
        &[
            (CKA_CLASS, ulong(CKO_CERTIFICATE)),
            (CKA_CERTIFICATE_CATEGORY, ulong(2)),
        ],
    );
    assert!(raw.find(sign, &[]).is_ok());
    assert_eq!(raw.sign_init(auth, CKM_SHA256_RSA_PKCS, key), CKR_OK);

    ctl("remove");
    wait_pcsc_card(false);

    // Calls served from the module's memory notice the removal too (a PC/SC status query on
    // the card's connection, no APDU), before anything touches the card; then the sessions
    // are gone.
    let gone = [CKR_DEVICE_REMOVED, CKR_SESSION_HANDLE_INVALID];
    let rv = raw.find(sign, &[]).err();
    assert_eq!(
        rv,
        Some(CKR_DEVICE_REMOVED),
        "C_FindObjectsInit, first call after removal"
    );
    let rv = raw.attr(idle, ca, CKA_CLASS).err();
    assert!(
        rv.is_some_and(|rv| gone.contains(&rv)),
        "C_GetAttributeValue: {rv:x?}"
    );
    let rv = raw
        .sign(auth, b"after removal")
        .expect_err("no signature without a card");
    assert!(gone.contains(&rv), "C_Sign: {rv:#x}");
    for h in [auth, sign, idle] {
        assert_eq!(raw.session_info(h).err(), Some(CKR_SESSION_HANDLE_INVALID));
        assert_eq!(call!(raw, C_CloseSession(h)), CKR_SESSION_HANDLE_INVALID);
    }
    assert_eq!(raw.token_info(AUTH_SLOT).err(), Some(CKR_TOKEN_NOT_PRESENT));
    assert_eq!(
        raw.open(SIGN_SLOT, CKF_SERIAL_SESSION),
        Err(CKR_TOKEN_NOT_PRESENT)
    );
    assert_eq!(
        raw.slot_info(AUTH_SLOT).expect("slot").flags & CKF_TOKEN_PRESENT,
        0
    );
    assert_eq!(raw.slot_list(true), Ok(vec![]));

    // Back in: new sessions work, old handles stay dead.
    ctl("insert");
    wait_pcsc_card(true);
    retry("token back", Duration::from_secs(10), || {
        (raw.slot_list(true) == Ok(vec![0, 1])).then_some(())
    });
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(
        raw.session_info(s).expect("info").state,
        CKS_RO_PUBLIC_SESSION,
        "no login survives removal"
    );
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    let key2 = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
    assert_ne!(key2, key, "object handles are not reused");
    assert_eq!(raw.attr(s, key, CKA_CLASS), Err(CKR_OBJECT_HANDLE_INVALID));
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key2), CKR_OK);
    assert!(raw.sign(s, b"works again").is_ok());
    assert_eq!(raw.logout(s), CKR_OK);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn status_checks_cost_no_apdu() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    let all = raw.find(s, &[]).expect("find");
    let before = stats().apdus();
    for _ in 0..50 {
        let found = raw
            .find(s, &[(CKA_CLASS, ulong(CKO_CERTIFICATE))])
            .expect("find");
        for h in &found {
            raw.attr(s, *h, CKA_VALUE).expect("value");
        }
        raw.session_info(s).expect("info");
    }
    assert_eq!(stats().apdus(), before, "cached calls send no APDU");
    assert!(!all.is_empty());
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn card_reset_between_login_and_sign() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    for t in TOKENS {
        // (a) The card forgets its security state silently (`ctl reset`: the card's volatile
        // state is cleared behind pcscd's back): the card refuses to sign, the module reports
        // the logged-out state and never replays the PIN.
        let s = raw.open_ro(t.slot);
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        let key = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
        let verifies = stats().get("verify_count");
        ctl("reset");
        assert_eq!(
            raw.sign(s, b"after reset").err(),
            Some(CKR_USER_NOT_LOGGED_IN),
            "slot {}",
            t.slot
        );
        assert_eq!(
            stats().get("verify_count"),
            verifies,
            "the PIN is never replayed"
        );
        assert_eq!(
            raw.session_info(s).expect("info").state,
            CKS_RO_PUBLIC_SESSION
        );
        assert_eq!(
            raw.sign_init(s, CKM_SHA256_RSA_PKCS, key),
            CKR_USER_NOT_LOGGED_IN
        );
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
        assert!(raw.sign(s, b"after login again").is_ok());

        // (b) Another PC/SC client resets the card (SCARD_W_RESET_CARD for us).
        let context = pcsc::Context::establish(pcsc::Scope::User).expect("context");
        let readers = context.list_readers_owned().expect("readers");
        let other = context
            .connect(&readers[0], pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .expect("second connection");
        other
            .disconnect(pcsc::Disposition::ResetCard)
            .map_err(|(_, e)| e)
            .expect("reset");
        let verifies = stats().get("verify_count");
        // Noticed without a card command (the session state), or at the latest when signing.
        let state = raw.session_info(s).expect("info").state;
        let rv = match raw.sign_init(s, CKM_SHA256_RSA_PKCS, key) {
            CKR_OK => raw.sign(s, b"after PC/SC reset").err().unwrap_or(CKR_OK),
            rv => rv,
        };
        assert_eq!(
            rv, CKR_USER_NOT_LOGGED_IN,
            "slot {} (state seen {state})",
            t.slot
        );
        assert_eq!(
            state, CKS_RO_PUBLIC_SESSION,
            "the reset is noticed before any APDU"
        );
        assert_eq!(
            raw.session_info(s).expect("info").state,
            CKS_RO_PUBLIC_SESSION
        );
        assert_eq!(
            stats().get("verify_count"),
            verifies,
            "the PIN is never replayed"
        );
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
        assert!(raw.sign(s, b"after login again").is_ok());
        assert_eq!(raw.logout(s), CKR_OK);
        assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    }
}
