//! Session management (PKCS#11 chapter 5.6): opening and closing sessions, session
//! information, operation state.
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_sessions -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_sessions -- --include-ignored --test-threads=1
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

// ----- sessions ------------------------------------------------------------------------------

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn session_management() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;

    for t in TOKENS {
        let ro = ctx
            .p
            .open_ro_session(slot(&ctx, t.slot))
            .expect("RO session");
        let rw = ctx
            .p
            .open_rw_session(slot(&ctx, t.slot))
            .expect("RW session");
        let info = raw.session_info(ro.handle()).expect("info");
        assert_eq!(
            (info.slotID, info.state, info.flags),
            (t.slot, CKS_RO_PUBLIC_SESSION, CKF_SERIAL_SESSION)
        );
        assert_eq!(info.ulDeviceError, 0);
        let info = raw.session_info(rw.handle()).expect("info");
        assert_eq!(
            (info.slotID, info.state, info.flags),
            (
                t.slot,
                CKS_RW_PUBLIC_SESSION,
                CKF_SERIAL_SESSION | CKF_RW_SESSION
            )
        );
        let typed = ro.get_session_info().expect("typed session info");
        assert!(!typed.read_write());

        // Login is shared by all sessions of the token, and seen by new ones.
        ro.login(UserType::User, Some(&pin(t.pin))).expect("login");
        assert_eq!(
            raw.session_info(ro.handle()).expect("info").state,
            CKS_RO_USER_FUNCTIONS
        );
        assert_eq!(
            raw.session_info(rw.handle()).expect("info").state,
            CKS_RW_USER_FUNCTIONS
        );
        let third = raw.open_ro(t.slot);
        assert_eq!(
            raw.session_info(third).expect("info").state,
            CKS_RO_USER_FUNCTIONS
        );
        assert_eq!(
            rv_of(rw.login(UserType::User, Some(&pin(t.pin)))),
            Some(RvError::UserAlreadyLoggedIn)
        );

        // C_CloseAllSessions logs the token out and closes only its sessions.
        let other = if t.slot == AUTH_SLOT {
            SIGN_SLOT
        } else {
            AUTH_SLOT
        };
        let bystander = raw.open_ro(other);
        assert_eq!(call!(raw, C_CloseAllSessions(t.slot)), CKR_OK);
        for h in [ro.handle(), rw.handle(), third] {
            assert_eq!(raw.session_info(h).err(), Some(CKR_SESSION_HANDLE_INVALID));
        }
        assert!(raw.session_info(bystander).is_ok());
        let fresh = raw.open_ro(t.slot);
        assert_eq!(
            raw.session_info(fresh).expect("info").state,
            CKS_RO_PUBLIC_SESSION
        );
        assert_eq!(call!(raw, C_CloseSession(fresh)), CKR_OK);
        assert_eq!(
            call!(raw, C_CloseSession(fresh)),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(call!(raw, C_CloseSession(bystander)), CKR_OK);
        drop((ro, rw)); // already closed: cryptoki ignores SESSION_HANDLE_INVALID? (logs only)
    }

    // Closing the last session of a token logs it out.
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(
        raw.session_info(s).expect("info").state,
        CKS_RO_PUBLIC_SESSION
    );

    // ...but not its sibling: the card keeps the signature password's verification.
    let sign_s = raw.open_ro(SIGN_SLOT);
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    assert_eq!(
        raw.login(sign_s, CKU_USER, SIGN_PASSWORD.as_bytes()),
        CKR_OK
    );
    assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    assert_eq!(
        raw.session_info(sign_s).expect("info").state,
        CKS_RO_USER_FUNCTIONS
    );
    let key = one(&ctx, sign_s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
    assert_eq!(raw.sign_init(sign_s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert!(raw.sign(sign_s, b"sibling still logged in").is_ok());
    assert_eq!(raw.logout(sign_s), CKR_OK);

    // Open-session errors.
    assert_eq!(
        raw.open(AUTH_SLOT, 0),
        Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    );
    assert_eq!(
        raw.open(SIGN_SLOT, CKF_RW_SESSION),
        Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    );
    assert_eq!(
        raw.open(EMPTY_AUTH_SLOT, CKF_SERIAL_SESSION),
        Err(CKR_TOKEN_NOT_PRESENT)
    );
    assert_eq!(raw.open(99, CKF_SERIAL_SESSION), Err(CKR_SLOT_ID_INVALID));
    assert_eq!(
        call!(
            raw,
            C_OpenSession(
                AUTH_SLOT,
                CKF_SERIAL_SESSION,
                ptr::null_mut(),
                None,
                ptr::null_mut()
            )
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(call!(raw, C_CloseAllSessions(99)), CKR_SLOT_ID_INVALID);
    assert_eq!(
        call!(raw, C_GetSessionInfo(sign_s, ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        raw.session_info(0xdead).err(),
        Some(CKR_SESSION_HANDLE_INVALID)
    );

    // Operation state, legacy parallel functions, 3.0 cancel.
    let mut len: CK_ULONG = 0;
    assert_eq!(
        call!(raw, C_GetOperationState(sign_s, ptr::null_mut(), &mut len)),
        CKR_STATE_UNSAVEABLE
    );
    let mut state = [0u8; 4];
    assert_eq!(
        call!(
            raw,
            C_SetOperationState(sign_s, state.as_mut_ptr(), 4, 0, 0)
        ),
        CKR_SAVED_STATE_INVALID
    );
    assert_eq!(
        call!(raw, C_GetFunctionStatus(sign_s)),
        CKR_FUNCTION_NOT_PARALLEL
    );
    assert_eq!(
        call!(raw, C_CancelFunction(sign_s)),
        CKR_FUNCTION_NOT_PARALLEL
    );
    assert_eq!(
        call!(raw, C_GetFunctionStatus(0xdead)),
        CKR_SESSION_HANDLE_INVALID
    );
    let mut m = CK_MECHANISM {
        mechanism: CKM_SHA256,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    assert_eq!(call!(raw, C_DigestInit(sign_s, &mut m)), CKR_OK);
    assert_eq!(call3!(raw, C_SessionCancel(sign_s, CKF_DIGEST)), CKR_OK);
    assert_eq!(
        call!(raw, C_DigestFinal(sign_s, ptr::null_mut(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        call3!(raw, C_SessionCancel(0xdead, CKF_DIGEST)),
        CKR_SESSION_HANDLE_INVALID
    );
}
