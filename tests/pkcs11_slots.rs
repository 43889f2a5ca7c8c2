//! Slot and token management (PKCS#11 chapter 5.5): slot lists, slot and token
//! information, mechanism lists and mechanism information.
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_slots -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_slots -- --include-ignored --test-threads=1
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
use cryptoki::mechanism::MechanismType;
use cryptoki::slot::Slot;
use cryptoki_sys::*;
use der::Decode;

// ----- slots and tokens ----------------------------------------------------------------------

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn slots_tokens_and_mechanisms() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;

    // The harness has one card reader and one empty reader: 4 slots, 2 with a token.
    assert_eq!(raw.slot_list(false), Ok(vec![0, 1, 2, 3]));
    assert_eq!(raw.slot_list(true), Ok(vec![AUTH_SLOT, SIGN_SLOT]));
    let mut short = [0 as CK_SLOT_ID; 1];
    let mut n: CK_ULONG = 1;
    assert_eq!(
        call!(raw, C_GetSlotList(CK_FALSE, short.as_mut_ptr(), &mut n)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(n, 4);
    assert_eq!(
        call!(
            raw,
            C_GetSlotList(CK_FALSE, ptr::null_mut(), ptr::null_mut())
        ),
        CKR_ARGUMENTS_BAD
    );
    let with_token: Vec<u64> = ctx
        .p
        .get_slots_with_token()
        .expect("slots")
        .iter()
        .map(Slot::id)
        .collect();
    assert_eq!(with_token, vec![0, 1]);

    // Slot info.
    for (id, what, present) in [
        (AUTH_SLOT, "JPKI Auth", true),
        (SIGN_SLOT, "JPKI Sign", true),
        (EMPTY_AUTH_SLOT, "JPKI Auth", false),
        (EMPTY_SIGN_SLOT, "JPKI Sign", false),
    ] {
        let info = ctx.p.get_slot_info(slot(&ctx, id)).expect("C_GetSlotInfo");
        assert!(
            info.slot_description().starts_with(what),
            "{}",
            info.slot_description()
        );
        assert!(
            info.slot_description().contains("Virtual PCD"),
            "reader name in description"
        );
        assert_eq!(info.token_present(), present, "slot {id}");
        assert!(info.removable_device() && info.hardware_slot());
    }
    assert_eq!(raw.slot_info(99).err(), Some(CKR_SLOT_ID_INVALID));
    assert_eq!(
        call!(raw, C_GetSlotInfo(AUTH_SLOT, ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );

    // Token info.
    let auth_session = raw.open_ro(AUTH_SLOT);
    let cert = user_cert(&ctx, auth_session, &AUTH);
    let parsed = x509_cert::Certificate::from_der(&cert).expect("auth certificate");
    let serial_hex: String = parsed
        .tbs_certificate
        .serial_number
        .as_bytes()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02X}"))
        .collect();
    let serial_hex = serial_hex[serial_hex.len().saturating_sub(16)..].to_string();
    let mut labels = Vec::new();
    for t in TOKENS {
        let ti = raw.token_info(t.slot).expect("C_GetTokenInfo");
        let label = text(&ti.label);
        assert!(label.starts_with(t.label_prefix), "{label}");
        assert!(
            label.ends_with(&serial_hex[serial_hex.len().saturating_sub(8)..]),
            "{label}"
        );
        labels.push(label.clone());
        assert_eq!(
            text(&ti.serialNumber),
            serial_hex,
            "serial from the auth certificate"
        );
        assert_eq!(text(&ti.manufacturerID), "J-LIS (My Number Card)");
        assert_eq!(text(&ti.model), "JPKI AP");
        let must = CKF_WRITE_PROTECTED
            | CKF_LOGIN_REQUIRED
            | CKF_USER_PIN_INITIALIZED
            | CKF_TOKEN_INITIALIZED;
        assert_eq!(ti.flags & must, must, "flags {:#x}", ti.flags);
        // CKF_RNG: C_GenerateRandom serves the operating system's generator.
        assert_ne!(ti.flags & CKF_RNG, 0, "flags {:#x}", ti.flags);
        let never = CKF_PROTECTED_AUTHENTICATION_PATH
            | CKF_CLOCK_ON_TOKEN
            | CKF_USER_PIN_COUNT_LOW
            | CKF_USER_PIN_FINAL_TRY
            | CKF_USER_PIN_LOCKED
            | CKF_USER_PIN_TO_BE_CHANGED
            | CKF_SO_PIN_COUNT_LOW
            | CKF_SO_PIN_FINAL_TRY
            | CKF_SO_PIN_LOCKED;
        assert_eq!(ti.flags & never, 0, "flags {:#x}", ti.flags);
        assert_eq!((ti.ulMinPinLen, ti.ulMaxPinLen), t.pin_len);
        assert_eq!(ti.ulMaxSessionCount, CK_EFFECTIVELY_INFINITE);
        // Typed view (cryptoki parses every field).
        let typed = ctx
            .p
            .get_token_info(slot(&ctx, t.slot))
            .expect("typed token info");
        assert_eq!(typed.label(), label);
        assert!(typed.write_protected() && typed.login_required() && typed.token_initialized());
        assert!(typed.user_pin_initialized() && typed.rng());
    }
    assert_ne!(labels[0], labels[1], "the two tokens have different labels");

    // Session counts per token.
    let rw = raw
        .open(AUTH_SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION)
        .expect("RW session");
    let ti = raw.token_info(AUTH_SLOT).expect("token info");
    assert_eq!((ti.ulSessionCount, ti.ulRwSessionCount), (2, 1));
    let ti = raw.token_info(SIGN_SLOT).expect("token info");
    assert_eq!((ti.ulSessionCount, ti.ulRwSessionCount), (0, 0));
    assert_eq!(call!(raw, C_CloseSession(rw)), CKR_OK);
    assert_eq!(call!(raw, C_CloseSession(auth_session)), CKR_OK);

    assert_eq!(
        raw.token_info(EMPTY_AUTH_SLOT).err(),
        Some(CKR_TOKEN_NOT_PRESENT)
    );
    assert_eq!(
        raw.token_info(EMPTY_SIGN_SLOT).err(),
        Some(CKR_TOKEN_NOT_PRESENT)
    );
    assert_eq!(raw.token_info(99).err(), Some(CKR_SLOT_ID_INVALID));
    assert_eq!(
        call!(raw, C_GetTokenInfo(AUTH_SLOT, ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );

    // Mechanisms.
    let extended = profile() == "extended";
    for t in TOKENS {
        // Raw list: cryptoki 0.12 silently drops types it does not know (CKM_SHA224_RSA_PKCS).
        let mut n: CK_ULONG = 0;
        assert_eq!(
            call!(raw, C_GetMechanismList(t.slot, ptr::null_mut(), &mut n)),
            CKR_OK
        );
        let mut list = vec![0 as CK_MECHANISM_TYPE; n as usize];
        assert_eq!(
            call!(raw, C_GetMechanismList(t.slot, list.as_mut_ptr(), &mut n)),
            CKR_OK
        );
        let typed = ctx
            .p
            .get_mechanism_list(slot(&ctx, t.slot))
            .expect("C_GetMechanismList");
        assert!(typed.contains(&MechanismType::SHA256_RSA_PKCS));
        for m in SIGN_MECHANISMS.iter().chain(DIGEST_MECHANISMS.iter()) {
            assert!(list.contains(m), "mechanism {m:#x} listed");
        }
        assert!(!list.contains(&CKM_RSA_X_509), "never raw RSA");
        for m in &list {
            let known = SIGN_MECHANISMS.contains(m) || DIGEST_MECHANISMS.contains(m);
            // PSS only where the card's own PSS mode exists (extended profile).
            let pss = [
                CKM_RSA_PKCS_PSS,
                CKM_SHA1_RSA_PKCS_PSS,
                CKM_SHA224_RSA_PKCS_PSS,
                CKM_SHA256_RSA_PKCS_PSS,
                CKM_SHA384_RSA_PKCS_PSS,
                CKM_SHA512_RSA_PKCS_PSS,
            ]
            .contains(m);
            assert!(known || (pss && extended), "unexpected mechanism {m:#x}");
        }
        for m in SIGN_MECHANISMS {
            let mut mi = CK_MECHANISM_INFO::default();
            assert_eq!(call!(raw, C_GetMechanismInfo(t.slot, m, &mut mi)), CKR_OK);
            assert_eq!((mi.ulMinKeySize, mi.ulMaxKeySize), (2048, 2048));
            assert_eq!(mi.flags, CKF_HW | CKF_SIGN | CKF_VERIFY, "{m:#x}");
        }
        let info = ctx
            .p
            .get_mechanism_info(slot(&ctx, t.slot), MechanismType::SHA256_RSA_PKCS)
            .expect("C_GetMechanismInfo");
        assert!(info.hardware() && info.sign() && info.verify() && !info.decrypt());
        for m in DIGEST_MECHANISMS {
            let mut mi = CK_MECHANISM_INFO::default();
            assert_eq!(call!(raw, C_GetMechanismInfo(t.slot, m, &mut mi)), CKR_OK);
            assert_eq!(mi.flags, CKF_DIGEST, "{m:#x} is software digest only");
        }
        let mut mi = CK_MECHANISM_INFO::default();
        for bad in [
            CKM_RSA_X_509,
            CKM_RSA_PKCS_OAEP,
            CKM_ECDSA,
            CKM_MD5_RSA_PKCS,
        ] {
            assert_eq!(
                call!(raw, C_GetMechanismInfo(t.slot, bad, &mut mi)),
                CKR_MECHANISM_INVALID,
                "{bad:#x}"
            );
        }
        assert_eq!(
            call!(
                raw,
                C_GetMechanismInfo(t.slot, CKM_RSA_PKCS, ptr::null_mut())
            ),
            CKR_ARGUMENTS_BAD
        );
        let mut one_slot = [0 as CK_MECHANISM_TYPE; 1];
        let mut n: CK_ULONG = 1;
        assert_eq!(
            call!(
                raw,
                C_GetMechanismList(t.slot, one_slot.as_mut_ptr(), &mut n)
            ),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(n as usize, list.len());
    }
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(raw, C_GetMechanismList(99, ptr::null_mut(), &mut n)),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(
        call!(
            raw,
            C_GetMechanismList(EMPTY_AUTH_SLOT, ptr::null_mut(), &mut n)
        ),
        CKR_TOKEN_NOT_PRESENT
    );
    let mut mi = CK_MECHANISM_INFO::default();
    assert_eq!(
        call!(
            raw,
            C_GetMechanismInfo(EMPTY_SIGN_SLOT, CKM_RSA_PKCS, &mut mi)
        ),
        CKR_TOKEN_NOT_PRESENT
    );
    assert_eq!(
        call!(raw, C_GetMechanismInfo(99, CKM_RSA_PKCS, &mut mi)),
        CKR_SLOT_ID_INVALID
    );
}

// ----- which tokens a program sees (src/pkcs11/config.rs) ------------------------------------

/// Restores the module's default configuration even when an assertion fails half-way.
struct TokensEnv;

impl Drop for TokensEnv {
    fn drop(&mut self) {
        std::env::remove_var("JPKI_PKCS11_TOKENS");
    }
}

/// `C_Initialize` with the module parameter string `params` in `pReserved`.
fn init_with_params(raw: &Raw, params: &[u8]) -> CK_RV {
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: params.as_ptr() as *mut _,
    };
    call!(raw, C_Initialize(&mut args as *mut _ as *mut _))
}

/// A token hidden by the configuration has no slot: left out of `C_GetSlotList`, its slot id
/// invalid everywhere; the visible token works as before. The module parameters
/// (`pReserved`) choose, the environment wins over them, and a bad value only warns.
#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_hidden_token_has_no_slot() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let _env = TokensEnv;
    let tries = card_tries();

    let visible = |params: &[u8], want_all: Vec<CK_SLOT_ID>, want_present: Vec<CK_SLOT_ID>| {
        assert_eq!(raw.finalize(), CKR_OK);
        let what = String::from_utf8_lossy(params).into_owned();
        assert_eq!(
            init_with_params(raw, params),
            CKR_OK,
            "C_Initialize({what})"
        );
        assert_eq!(raw.slot_list(false), Ok(want_all), "all slots with {what}");
        assert_eq!(
            raw.slot_list(true),
            Ok(want_present),
            "token slots with {what}"
        );
    };

    // A hidden token's slots are invalid everywhere; the shown token opens sessions.
    let only = |shown: CK_SLOT_ID, hidden: [CK_SLOT_ID; 2]| {
        for slot in hidden {
            assert_eq!(raw.slot_info(slot).err(), Some(CKR_SLOT_ID_INVALID));
            assert_eq!(raw.token_info(slot).err(), Some(CKR_SLOT_ID_INVALID));
            assert_eq!(
                raw.open(slot, CKF_SERIAL_SESSION).err(),
                Some(CKR_SLOT_ID_INVALID)
            );
        }
        assert!(raw.token_info(shown).is_ok());
        let s = raw.open_ro(shown);
        assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    };

    visible(
        b"tokens=sign\0",
        vec![SIGN_SLOT, EMPTY_SIGN_SLOT],
        vec![SIGN_SLOT],
    );
    only(SIGN_SLOT, [AUTH_SLOT, EMPTY_AUTH_SLOT]);
    // Another user of the module in this process initialises too: nothing changes for us.
    assert_eq!(
        call!(raw, C_Initialize(ptr::null_mut())),
        CKR_CRYPTOKI_ALREADY_INITIALIZED
    );
    assert_eq!(
        raw.slot_list(false),
        Ok(vec![SIGN_SLOT, EMPTY_SIGN_SLOT]),
        "a second C_Initialize keeps the first one's settings"
    );
    visible(
        b"tokens=AUTH\0",
        vec![AUTH_SLOT, EMPTY_AUTH_SLOT],
        vec![AUTH_SLOT],
    );
    only(AUTH_SLOT, [SIGN_SLOT, EMPTY_SIGN_SLOT]);

    // A value the module does not know, or a PIN, is a warning; both tokens stay.
    visible(
        b"tokens=none pin=1234\0",
        vec![AUTH_SLOT, SIGN_SLOT, EMPTY_AUTH_SLOT, EMPTY_SIGN_SLOT],
        vec![AUTH_SLOT, SIGN_SLOT],
    );

    // The environment (one process) wins over the module parameters (one registration).
    std::env::set_var("JPKI_PKCS11_TOKENS", "auth");
    visible(
        b"tokens=sign\0",
        vec![AUTH_SLOT, EMPTY_AUTH_SLOT],
        vec![AUTH_SLOT],
    );
    std::env::remove_var("JPKI_PKCS11_TOKENS");

    // Not a parameter string: no NUL within the module's limit.
    assert_eq!(raw.finalize(), CKR_OK);
    let unterminated = vec![b'x'; 4096];
    assert_eq!(init_with_params(raw, &unterminated), CKR_ARGUMENTS_BAD);
    assert_eq!(
        raw.slot_list(false).err(),
        Some(CKR_CRYPTOKI_NOT_INITIALIZED)
    );

    // Back to NULL pReserved: both tokens again.
    ctx.reinit();
    assert_eq!(
        raw.slot_list(false),
        Ok(vec![AUTH_SLOT, SIGN_SLOT, EMPTY_AUTH_SLOT, EMPTY_SIGN_SLOT])
    );
    assert_eq!(card_tries(), tries, "no PIN try spent");
}
