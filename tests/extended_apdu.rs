//! Extended-length READ BINARY through the real PC/SC stack: for each answer a card or reader
//! can give (the virtual card's `extended-apdu` modes), a real client (`pkcs11-tool`, one
//! process each) gets the card's certificates, logs in and signs; the form is tried once per
//! reader (the cache remembers a refusal), and never with `JPKI_PKCS11_EXTENDED_APDU=off`.
//!
//! Runs only inside `tests/harness/with-card.sh` (JPKI_PCSC_TEST=1), on both profiles.

// Test code (Cargo.toml [lints]): the shared helpers make raw C calls (`unsafe`), and a failed
// check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::client::{auth_sign, fresh_dir, harness_card, read_cert, verifies};
use common::{ctl, require_harness, serial, stats};

fn extended_apdus() -> u64 {
    stats().get("extended_apdus")
}

/// One mode: two processes with the same cache, then a login and a signature.
fn run_mode(mode: &str, accepted: bool) {
    let home = fresh_dir(&format!("extended-{}", mode.replace(':', "-")));
    let certs = harness_card();
    ctl(&format!("extended-apdu {mode}"));
    ctl("reset-stats");
    // First process: the identity chunk, then the rest (the probe), then a CA certificate.
    assert_eq!(read_cert(&home, &[], "0", "01", None), certs[0], "{mode}");
    assert_eq!(read_cert(&home, &[], "0", "03", None), certs[1], "{mode}");
    assert_eq!(read_cert(&home, &[], "1", "04", None), certs[2], "{mode}");
    let tried = extended_apdus();
    if accepted {
        assert!(tried >= 1, "{mode}: extended reads used");
    } else {
        assert_eq!(
            tried, 1,
            "{mode}: tried once, then remembered for this reader"
        );
    }
    let msg = b"extended APDU test";
    let sig = auth_sign(&home, &[], msg).expect("login and signature");
    assert!(
        verifies(&certs[0], msg, &sig),
        "{mode}: the signature verifies with the card's certificate"
    );
    // A new cache (another user, or the cache cleared): the form is learnt again, once.
    let other = fresh_dir(&format!("extended-{}-again", mode.replace(':', "-")));
    ctl("reset-stats");
    assert_eq!(read_cert(&other, &[], "1", "04", None), certs[2], "{mode}");
    if !accepted {
        assert_eq!(extended_apdus(), 1, "{mode}: learnt again, once");
    }
    ctl("extended-apdu card");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_card_and_reader_that_take_extended_reads() {
    require_harness();
    let _g = serial();
    run_mode("accept", true);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_card_that_refuses_extended_le() {
    require_harness();
    let _g = serial();
    run_mode("refuse", false);
    run_mode("sw:6A86", false);
    run_mode("sw:6D00", false);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_reader_that_drops_extended_apdus() {
    require_harness();
    let _g = serial();
    run_mode("drop", false);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn switched_off_no_extended_apdu_is_sent() {
    require_harness();
    let _g = serial();
    let certs = harness_card();
    for (name, env, conf) in [
        ("off-env", vec![("JPKI_PKCS11_EXTENDED_APDU", "off")], None),
        ("off-file", vec![], Some("extended_apdu = off\n")),
    ] {
        let home = fresh_dir(&format!("extended-{name}"));
        if let Some(conf) = conf {
            std::fs::create_dir_all(home.join("config/jpki-pkcs11")).expect("config dir");
            std::fs::write(home.join("config/jpki-pkcs11/config"), conf).expect("config");
        }
        ctl("extended-apdu accept");
        ctl("reset-stats");
        assert_eq!(read_cert(&home, &env, "0", "01", None), certs[0], "{name}");
        assert_eq!(read_cert(&home, &env, "1", "04", None), certs[2], "{name}");
        assert_eq!(extended_apdus(), 0, "{name}");
        ctl("extended-apdu card");
    }
}
