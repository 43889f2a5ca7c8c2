//! C_SetPIN through the real stack: the module (.so, loaded with the `cryptoki` crate) → pcscd
//! → vpcd → the virtual card. Success, wrong old PIN (tries decrement, token flags), malformed
//! new PIN (nothing reaches the card: the card's own counters prove it), and the new PIN logs in.
//!
//! `#[ignore]`d (needs pcscd); run through the harness, which sets `JPKI_PCSC_TEST=1`:
//! `tests/harness/with-card.sh -- cargo test --test setpin_pcsc -- --include-ignored --test-threads=1`.
//! The module is `$JPKI_MODULE`, else `target/debug/libjpki_pkcs11.so` (build it first).

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

/// These tests are `#[ignore]`d (a plain `cargo test` lists them as ignored); run with
/// `--include-ignored` outside the harness, they fail rather than pass without testing anything.
fn require_harness() {
    assert!(
        std::env::var("JPKI_PCSC_TEST").as_deref() == Ok("1"),
        "needs pcscd: run through tests/harness/with-card.sh (it sets JPKI_PCSC_TEST=1)"
    );
}

fn module_path() -> String {
    std::env::var("JPKI_MODULE").unwrap_or_else(|_| {
        format!(
            "{}/target/debug/libjpki_pkcs11.so",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

/// The card's counters (control socket `stats`), as JSON.
fn card_stats() -> serde_json::Value {
    let bin = std::env::var("JPKI_TEST_CARD_BIN").expect("JPKI_TEST_CARD_BIN");
    let control = std::env::var("JPKI_TEST_CONTROL").expect("JPKI_TEST_CONTROL");
    let out = Command::new(bin)
        .args(["ctl", "--control", &control, "stats"])
        .output()
        .expect("ctl stats");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.trim().trim_start_matches("ok").trim();
    serde_json::from_str(json).expect("stats JSON")
}

fn stat(v: &serde_json::Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or(0)
}

fn rv(e: Error) -> RvError {
    match e {
        Error::Pkcs11(rv, _) => rv,
        other => panic!("unexpected error {other:?}"),
    }
}

/// Auth and sign slots of the first card.
fn slots(p: &Pkcs11) -> (Slot, Slot) {
    let slots = p.get_slots_with_token().expect("slots");
    assert!(slots.len() >= 2, "JPKI_PCSC_TEST=1 but no card: {slots:?}");
    let mut auth = None;
    let mut sign = None;
    for s in slots {
        let label = p.get_token_info(s).expect("token info").label().to_string();
        if label.starts_with("JPKI Auth") && auth.is_none() {
            auth = Some(s);
        } else if label.starts_with("JPKI Sign") && sign.is_none() {
            sign = Some(s);
        }
    }
    (auth.expect("auth token"), sign.expect("sign token"))
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn set_pin_through_pcscd() {
    require_harness();
    let p = Pkcs11::new(module_path()).expect("load module");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let (auth, sign) = slots(&p);
    let session = p.open_rw_session(auth).expect("RW session");

    // Malformed new (and old) PINs: refused before the card.
    let before = card_stats();
    for (old, new, want) in [
        ("1234", "123", RvError::PinLenRange),
        ("1234", "12345", RvError::PinLenRange),
        ("1234", "12a4", RvError::PinInvalid),
        ("12", "4321", RvError::PinLenRange),
    ] {
        let err = session
            .set_pin(&AuthPin::from(old), &AuthPin::from(new))
            .expect_err("malformed PIN must fail");
        assert_eq!(rv(err), want, "{old} -> {new}");
    }
    let after = card_stats();
    assert_eq!(
        stat(&after, "apdus"),
        stat(&before, "apdus"),
        "nothing sent"
    );
    assert_eq!(stat(&after, "malformed_change_count"), 0);
    assert_eq!(stat(&after, "malformed_verify_count"), 0);

    // Wrong old PIN: a try is spent, the token says so.
    let err = session
        .set_pin(&AuthPin::from("9999"), &AuthPin::from("4321"))
        .expect_err("wrong old PIN");
    assert_eq!(rv(err), RvError::PinIncorrect);
    let info = p.get_token_info(auth).expect("token info");
    assert!(info.user_pin_count_low(), "COUNT_LOW after a wrong PIN");
    assert!(!info.user_pin_final_try());
    let stats = card_stats();
    assert_eq!(stat(&stats, "failed_verify_count"), 1);
    assert_eq!(
        stat(&stats, "change_count"),
        0,
        "no CHANGE after a wrong old PIN"
    );

    // Success: the counter is back, the old PIN no longer works, the new one logs in.
    session
        .set_pin(&AuthPin::from("1234"), &AuthPin::from("4321"))
        .expect("C_SetPIN");
    let info = p.get_token_info(auth).expect("token info");
    assert!(!info.user_pin_count_low());
    assert_eq!(stat(&card_stats(), "change_count"), 1);
    let err = session
        .login(UserType::User, Some(&AuthPin::from("1234")))
        .expect_err("old PIN");
    assert_eq!(rv(err), RvError::PinIncorrect);
    session
        .login(UserType::User, Some(&AuthPin::from("4321")))
        .expect("login with the new PIN");
    session.logout().expect("logout");
    // Put it back (the harness card is fresh per run anyway).
    session
        .set_pin(&AuthPin::from("4321"), &AuthPin::from("1234"))
        .expect("C_SetPIN back");

    // Signature token: 6–16 of A–Z0–9; lower case accepted and upper-cased.
    let s = p.open_rw_session(sign).expect("RW session");
    let err = s
        .set_pin(&AuthPin::from("ABC123"), &AuthPin::from("ABC-12"))
        .expect_err("malformed");
    assert_eq!(rv(err), RvError::PinInvalid);
    s.set_pin(&AuthPin::from("abc123"), &AuthPin::from("NEWPASS9"))
        .expect("C_SetPIN sign");
    s.login(UserType::User, Some(&AuthPin::from("NEWPASS9")))
        .expect("login with the new password");
    let stats = card_stats();
    assert_eq!(stat(&stats, "malformed_verify_count"), 0);
    assert_eq!(stat(&stats, "malformed_change_count"), 0);
}
