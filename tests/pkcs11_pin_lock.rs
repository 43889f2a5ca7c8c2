//! PIN counters down to a locked PIN, through the module (cryptoki-sys calls) and another
//! PC/SC application. This locks both PINs of the harness's card: it is a test binary of its
//! own, run in its own harness (fresh card state each run):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh -- cargo test --test pkcs11_pin_lock -- --include-ignored --test-threads=1
//! ```

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use cryptoki_sys::*;

const LOW_FINAL_LOCKED: CK_FLAGS =
    CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED;

fn pin_flags(ctx: &Ctx, slot: CK_SLOT_ID) -> CK_FLAGS {
    ctx.raw.token_info(slot).expect("C_GetTokenInfo").flags & LOW_FINAL_LOCKED
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn pin_counters_down_to_locked() {
    require_harness();
    let _g = serial();
    let ctx = Ctx::new();
    let raw = &ctx.raw;
    assert_eq!(card_tries(), (3, 5));
    assert_eq!(pin_flags(&ctx, AUTH_SLOT), 0);

    // Another application spends tries of the auth PIN: C_GetTokenInfo shows it (the card's
    // counter is read again when the cached answer is older than 2 s).
    assert_eq!(other_client_verifies(0x0018, b"9999"), 0x63C2);
    retry("COUNT_LOW from the card", Duration::from_secs(5), || {
        (pin_flags(&ctx, AUTH_SLOT) == CKF_USER_PIN_COUNT_LOW).then_some(())
    });
    assert_eq!(other_client_verifies(0x0018, b"9999"), 0x63C1);
    retry("FINAL_TRY from the card", Duration::from_secs(5), || {
        (pin_flags(&ctx, AUTH_SLOT) == CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY)
            .then_some(())
    });
    // A fresh module reads it at once.
    ctx.reinit();
    assert_eq!(
        pin_flags(&ctx, AUTH_SLOT),
        CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY
    );
    assert_eq!(pin_flags(&ctx, SIGN_SLOT), 0);

    // The final try is not refused: the right PIN restores the counter.
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    assert_eq!(pin_flags(&ctx, AUTH_SLOT), 0);
    assert_eq!(raw.logout(s), CKR_OK);

    // Down to locked through the module; the attempt that exhausts the counter says so.
    let expect = [
        (CKR_PIN_INCORRECT, 2, CKF_USER_PIN_COUNT_LOW),
        (
            CKR_PIN_INCORRECT,
            1,
            CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY,
        ),
        (CKR_PIN_LOCKED, 0, CKF_USER_PIN_LOCKED),
    ];
    for (rv, left, flags) in expect {
        assert_eq!(raw.login(s, CKU_USER, b"9999"), rv, "{left} left");
        assert_eq!(card_tries().0, left);
        assert_eq!(pin_flags(&ctx, AUTH_SLOT), flags, "{left} left");
    }
    let before = stats();
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_PIN_LOCKED);
    assert_eq!(
        raw.login(s, CKU_USER, b"12"),
        CKR_PIN_INCORRECT,
        "format first"
    );
    assert_eq!(
        raw.login(s, CKU_USER, b"12a4"),
        CKR_PIN_INCORRECT,
        "format first"
    );
    let after = stats();
    assert!(after.get("verify_count") - before.get("verify_count") <= 1);
    assert_eq!(
        raw.session_info(s).expect("info").state,
        CKS_RO_PUBLIC_SESSION
    );
    assert_eq!(card_tries().0, 0);
    // The token stays listed and readable; its key cannot be used.
    assert_eq!(raw.slot_list(true), Ok(vec![AUTH_SLOT, SIGN_SLOT]));
    assert!(!raw.find(s, &[]).expect("public objects").is_empty());
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]),
        Ok(vec![])
    );

    // The signature token is not affected.
    let sign = raw.open_ro(SIGN_SLOT);
    assert_eq!(pin_flags(&ctx, SIGN_SLOT), 0);
    assert_eq!(raw.login(sign, CKU_USER, SIGN_PASSWORD.as_bytes()), CKR_OK);
    let found = raw
        .find(sign, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))])
        .expect("find key");
    assert_eq!(raw.sign_init(sign, CKM_SHA256_RSA_PKCS, found[0]), CKR_OK);
    assert!(raw.sign(sign, b"still works").is_ok());
    assert_eq!(raw.logout(sign), CKR_OK);

    // A fresh module reads the lock from the card.
    ctx.reinit();
    assert_eq!(pin_flags(&ctx, AUTH_SLOT), CKF_USER_PIN_LOCKED);

    // The signature password, 5 tries, down to locked.
    let sign = raw.open_ro(SIGN_SLOT);
    for left in (0..5u64).rev() {
        let rv = raw.login(sign, CKU_USER, b"WRONG9");
        let flags = pin_flags(&ctx, SIGN_SLOT);
        assert_eq!(card_tries().1, left);
        match left {
            0 => {
                assert_eq!(rv, CKR_PIN_LOCKED);
                assert_eq!(flags, CKF_USER_PIN_LOCKED);
            }
            1 => {
                assert_eq!(rv, CKR_PIN_INCORRECT);
                assert_eq!(flags, CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
            }
            _ => {
                assert_eq!(rv, CKR_PIN_INCORRECT);
                assert_eq!(flags, CKF_USER_PIN_COUNT_LOW, "{left} left");
            }
        }
    }
    assert_eq!(
        raw.login(sign, CKU_USER, SIGN_PASSWORD.as_bytes()),
        CKR_PIN_LOCKED
    );
    assert_eq!(raw.login(sign, CKU_USER, b"ABC"), CKR_PIN_INCORRECT);
    ctx.reinit();
    assert_eq!(pin_flags(&ctx, SIGN_SLOT), CKF_USER_PIN_LOCKED);
    assert_eq!(stats().get("malformed_verify_count"), 0);
}
