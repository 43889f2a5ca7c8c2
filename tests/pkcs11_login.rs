//! Login and PIN management (PKCS#11 chapters 5.5 and 5.6): C_Login and C_Logout on both
//! tokens, PIN formats checked before a try is spent, C_SetPIN and C_InitPIN.
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_login -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_login -- --include-ignored --test-threads=1
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

use common::tokens::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki_sys::*;

// ----- login and logout ------------------------------------------------------------------

/// Malformed PINs per token and the error each must give, without reaching the card: C_Login
/// answers CKR_PIN_INCORRECT, the code the specification lists (docs/conformance.md).
fn malformed(t: &Token) -> Vec<(&'static [u8], CK_RV)> {
    if t.slot == AUTH_SLOT {
        vec![
            (b"", CKR_PIN_INCORRECT),
            (b"12", CKR_PIN_INCORRECT),
            (b"12345", CKR_PIN_INCORRECT),
            (b"123456", CKR_PIN_INCORRECT),
            (b"abc!", CKR_PIN_INCORRECT),
            (b"12a4", CKR_PIN_INCORRECT),
            (b"12 4", CKR_PIN_INCORRECT),
        ]
    } else {
        vec![
            (b"", CKR_PIN_INCORRECT),
            (b"12", CKR_PIN_INCORRECT),
            (b"abc!", CKR_PIN_INCORRECT),
            (b"1234", CKR_PIN_INCORRECT),
            (b"ABC12", CKR_PIN_INCORRECT),
            (b"ABCDEFGHIJ1234567", CKR_PIN_INCORRECT),
            (b"ABC12!", CKR_PIN_INCORRECT),
            (b"ABC 123", CKR_PIN_INCORRECT),
            ("ABC12\u{3042}".as_bytes(), CKR_PIN_INCORRECT),
        ]
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn login_and_logout() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;

    for t in TOKENS {
        let s = raw.open_ro(t.slot);
        let flags = |raw: &Raw| raw.token_info(t.slot).expect("token info").flags;
        assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));

        // Malformed PINs never reach the card: no APDU at all, no VERIFY, no try.
        let before = stats();
        let log_before = apdu_log().len();
        for (bad, want) in malformed(t) {
            assert_eq!(
                raw.login(s, CKU_USER, bad),
                want,
                "PIN {:?} on slot {}",
                String::from_utf8_lossy(bad),
                t.slot
            );
        }
        let after = stats();
        assert_eq!(after.apdus(), before.apdus(), "malformed PINs sent APDUs");
        assert_eq!(after.get("verify_count"), before.get("verify_count"));
        assert_eq!(after.get("malformed_verify_count"), 0);
        assert_eq!(apdu_log().len(), log_before, "APDU log grew");
        assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));

        // NULL PIN: no protected authentication path.
        assert_eq!(
            call!(raw, C_Login(s, CKU_USER, ptr::null_mut(), 4)),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            call!(raw, C_Login(s, CKU_USER, ptr::null_mut(), 0)),
            CKR_ARGUMENTS_BAD
        );
        // User types.
        assert_eq!(
            raw.login(s, CKU_SO, t.pin.as_bytes()),
            CKR_USER_TYPE_INVALID
        );
        assert_eq!(
            raw.login(s, 0x8000_0001, t.pin.as_bytes()),
            CKR_USER_TYPE_INVALID
        );
        assert_eq!(
            raw.login(s, CKU_CONTEXT_SPECIFIC, t.pin.as_bytes()),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            raw.login(0xdead, CKU_USER, t.pin.as_bytes()),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(raw.logout(s), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(raw.logout(0xdead), CKR_SESSION_HANDLE_INVALID);

        // Wrong PINs: the counter goes down, the flags follow, FINAL_TRY before the last try.
        let verifies = stats().get("verify_count");
        for left in (1..t.max_tries).rev() {
            assert_eq!(
                raw.login(s, CKU_USER, t.wrong.as_bytes()),
                CKR_PIN_INCORRECT
            );
            let tries = card_tries();
            assert_eq!(
                if t.slot == AUTH_SLOT {
                    tries.0
                } else {
                    tries.1
                },
                left
            );
            let f = flags(raw);
            assert!(
                f & CKF_USER_PIN_COUNT_LOW != 0,
                "COUNT_LOW with {left} left: {f:#x}"
            );
            assert_eq!(
                f & CKF_USER_PIN_FINAL_TRY != 0,
                left == 1,
                "FINAL_TRY with {left} left"
            );
            assert_eq!(f & CKF_USER_PIN_LOCKED, 0);
            assert_eq!(
                raw.session_info(s).expect("info").state,
                CKS_RO_PUBLIC_SESSION
            );
        }
        assert_eq!(stats().get("verify_count"), verifies + t.max_tries - 1);

        // A final-try token still accepts the right PIN (never lock users out ourselves).
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));
        let f = flags(raw);
        assert_eq!(
            f & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED),
            0
        );
        assert_eq!(
            raw.session_info(s).expect("info").state,
            CKS_RO_USER_FUNCTIONS
        );
        let before = stats().apdus();
        assert_eq!(
            raw.login(s, CKU_USER, t.pin.as_bytes()),
            CKR_USER_ALREADY_LOGGED_IN
        );
        assert_eq!(
            raw.login(s, CKU_USER, b"x"),
            CKR_PIN_INCORRECT,
            "format first"
        );
        assert_eq!(stats().apdus(), before);

        // Context-specific login during a signing operation.
        let key = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
        assert_eq!(raw.login(s, CKU_CONTEXT_SPECIFIC, b"1"), CKR_PIN_INCORRECT);
        assert_eq!(raw.login(s, CKU_CONTEXT_SPECIFIC, t.pin.as_bytes()), CKR_OK);
        assert!(raw.sign(s, b"after context-specific login").is_ok());

        // Logout clears the card's state (re-SELECT of the JPKI AP) and hides private objects.
        // Probe: while logged in, another application could use the card's open state (the
        // nature of a shared card); after C_Logout it cannot.
        let key_ef = if t.slot == AUTH_SLOT { 0x0017 } else { 0x001A };
        assert_eq!(
            other_client_signs(key_ef),
            0x9000,
            "probe sees the open state"
        );
        let log_before = apdu_log().len();
        assert_eq!(raw.logout(s), CKR_OK);
        assert_eq!(
            other_client_signs(key_ef),
            0x6982,
            "card state closed by C_Logout"
        );
        let new_lines = apdu_log()[log_before..].join("\n").to_ascii_lowercase();
        assert!(
            new_lines.contains("00a4040c0ad392f000260100000001"),
            "logout selects the AP: {new_lines}"
        );
        assert_eq!(
            raw.session_info(s).expect("info").state,
            CKS_RO_PUBLIC_SESSION
        );
        assert_eq!(raw.logout(s), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(
            raw.sign_init(s, CKM_SHA256_RSA_PKCS, key),
            CKR_USER_NOT_LOGGED_IN
        );
        assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    }

    // The signature password is case-insensitive (documented: upper-cased, the card holds A–Z).
    let s = raw.open_ro(SIGN_SLOT);
    assert_eq!(
        raw.login(s, CKU_USER, SIGN_PASSWORD.to_ascii_lowercase().as_bytes()),
        CKR_OK
    );
    assert_eq!(raw.logout(s), CKR_OK);
    // cryptoki's own login path.
    let session = ctx
        .p
        .open_ro_session(slot(&ctx, AUTH_SLOT))
        .expect("session");
    assert_eq!(
        rv_of(session.login(UserType::User, Some(&pin("12")))),
        Some(RvError::PinIncorrect)
    );
    session
        .login(UserType::User, Some(&pin(AUTH_PIN)))
        .expect("login");
    session.logout().expect("logout");
    assert_eq!(stats().get("malformed_verify_count"), 0);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn set_pin() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let set = |s: CK_SESSION_HANDLE, old: &[u8], new: &[u8]| {
        call!(
            raw,
            C_SetPIN(
                s,
                old.as_ptr() as *mut _,
                old.len() as CK_ULONG,
                new.as_ptr() as *mut _,
                new.len() as CK_ULONG
            )
        )
    };
    for (t, other) in [(&AUTH, &b"4321"[..]), (&SIGN, &b"XYZ789"[..])] {
        let ro = raw.open_ro(t.slot);
        assert_eq!(set(ro, t.pin.as_bytes(), other), CKR_SESSION_READ_ONLY);
        let rw = raw
            .open(t.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .expect("RW");
        let before = stats();
        assert_eq!(set(rw, t.pin.as_bytes(), b"1"), CKR_PIN_LEN_RANGE);
        assert_eq!(set(rw, b"1", other), CKR_PIN_LEN_RANGE);
        let bad_charset: &[u8] = if t.slot == AUTH_SLOT {
            b"12a4"
        } else {
            b"ABC12!"
        };
        assert_eq!(set(rw, t.pin.as_bytes(), bad_charset), CKR_PIN_INVALID);
        assert_eq!(
            stats().apdus(),
            before.apdus(),
            "malformed PINs never reach the card"
        );
        assert_eq!(
            call!(
                raw,
                C_SetPIN(
                    rw,
                    ptr::null_mut(),
                    4,
                    other.as_ptr() as *mut _,
                    other.len() as CK_ULONG
                )
            ),
            CKR_ARGUMENTS_BAD
        );

        // Wrong old PIN costs a try (and says so); the right one restores the counter.
        assert_eq!(set(rw, t.wrong.as_bytes(), other), CKR_PIN_INCORRECT);
        assert!(raw.token_info(t.slot).expect("ti").flags & CKF_USER_PIN_COUNT_LOW != 0);
        assert_eq!(set(rw, t.pin.as_bytes(), other), CKR_OK);
        assert_eq!(
            raw.token_info(t.slot).expect("ti").flags & CKF_USER_PIN_COUNT_LOW,
            0
        );
        // Changing the PIN is not a login, and leaves no open security state on the card:
        // another application cannot sign on the strength of it.
        assert_eq!(
            raw.session_info(rw).expect("info").state,
            CKS_RW_PUBLIC_SESSION
        );
        let key_ef = if t.slot == AUTH_SLOT { 0x0017 } else { 0x001A };
        assert_eq!(
            other_client_signs(key_ef),
            0x6982,
            "card state closed after C_SetPIN"
        );
        assert_eq!(
            raw.login(rw, CKU_USER, t.pin.as_bytes()),
            CKR_PIN_INCORRECT,
            "old PIN is gone"
        );
        assert_eq!(raw.login(rw, CKU_USER, other), CKR_OK);
        // Change back while logged in.
        assert_eq!(set(rw, other, t.pin.as_bytes()), CKR_OK);
        assert_eq!(
            raw.session_info(rw).expect("info").state,
            CKS_RW_USER_FUNCTIONS
        );
        assert_eq!(raw.logout(rw), CKR_OK);
        assert_eq!(raw.login(rw, CKU_USER, t.pin.as_bytes()), CKR_OK);
        assert_eq!(raw.logout(rw), CKR_OK);
        assert_eq!(call!(raw, C_CloseAllSessions(t.slot)), CKR_OK);
    }
    assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));
    assert_eq!(stats().get("malformed_change_count"), 0);
    assert_eq!(stats().get("malformed_verify_count"), 0);
}
