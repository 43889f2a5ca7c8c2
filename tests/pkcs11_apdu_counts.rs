//! APDU counts: the card traffic of each common operation, against bounds that catch
//! regressions (the measured numbers are in BENCHMARKS.md).
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_apdu_counts -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_apdu_counts -- --include-ignored --test-threads=1
//! ```
//! `JPKI_MODULE=target/release/libjpki_pkcs11.so` tests the release build instead.
//!
//! Every test leaves the card as it found it: inserted, PIN counters full, logged out. Locking
//! PINs is done in `tests/pkcs11_pin_lock.rs` (a separate harness run). Helpers shared by the
//! chapters are in `tests/common/`.

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::tokens::*;
use common::*;
use cryptoki_sys::*;

// ----- APDU counts (for the note; regressions fail) -----------------------------------------

/// Upper bounds of the APDUs each step may cost: the values measured on each profile (a fresh
/// module, virtual-card certificates of real JPKI sizes). Breakdown, conservative profile:
/// - slots + token info 13: SELECT AP (probe) + auth certificate (one SFI READ BINARY the card
///   refuses, then SELECT EF + 5 READ BINARY, for the token serial; the first extended-length
///   READ BINARY, which this card refuses: one APDU once per reader, remembered by the module
///   and its certificate cache, docs/performance.md) + tries of each PIN (SELECT PIN EF +
///   empty VERIFY, ×2);
/// - everything on a token before login 7: its CA certificate (1306/1312 bytes, as real JPKI CA
///   certificates: SELECT EF + 6 READ BINARY);
/// - login + sign 4: SELECT PIN EF + VERIFY + SELECT key EF + COMPUTE DIGITAL SIGNATURE; on
///   the signature token 11, as its certificate (personal data) is read only after the password
///   (SELECT EF + 6 READ BINARY), when the key is looked up;
/// - a second signature 2: SELECT key EF + COMPUTE DIGITAL SIGNATURE;
/// - searches and attribute reads after that: 0.
///
/// Extended profile: the card takes the short-file-identifier forms, which name the EF in the
/// command (card layer, "Short file identifiers"), so every SELECT EF above disappears, and
/// extended-length READ BINARY, so the rest of a certificate after its first chunk is one
/// APDU (docs/performance.md): 5 (SELECT AP + first chunk + the rest + 2 tries), 1, 1 (each
/// CA certificate in one read), 2 (VERIFY + signature), 1, 3 (+ the signature certificate
/// in one read), 1, 0.
///
/// Both sets are for the harness's default `--extended-apdu card` (each profile's card answers
/// extended-length reads as that profile says); other reader modes are `tests/extended_apdu.rs`.
struct ApduBounds {
    slots_and_token_info: u64,
    find_all_auth: u64,
    find_all_sign: u64,
    login_sign_auth: u64,
    second_sign_auth: u64,
    login_sign_sign: u64,
    second_sign_sign: u64,
    find_all_sign_after_login: u64,
}

fn apdu_bounds() -> ApduBounds {
    if std::env::var("JPKI_TEST_PROFILE").is_ok_and(|p| p == "extended") {
        ApduBounds {
            slots_and_token_info: 5,
            find_all_auth: 1,
            find_all_sign: 1,
            login_sign_auth: 2,
            second_sign_auth: 1,
            login_sign_sign: 3,
            second_sign_sign: 1,
            find_all_sign_after_login: 0,
        }
    } else {
        ApduBounds {
            slots_and_token_info: 13,
            find_all_auth: 7,
            find_all_sign: 7,
            login_sign_auth: 4,
            second_sign_auth: 2,
            login_sign_sign: 11,
            second_sign_sign: 2,
            find_all_sign_after_login: 0,
        }
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn apdu_counts() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    ctx.reinit(); // nothing cached
    let bounds = apdu_bounds();
    let mut table = Vec::new();
    let mut step = |what: &str, max: u64, f: &mut dyn FnMut()| {
        let before = stats().apdus();
        f();
        let n = stats().apdus() - before;
        table.push(format!("{n:>3} APDUs (max {max:>2})  {what}"));
        assert!(n <= max, "{what}: {n} APDUs > {max}");
        n
    };
    let read_all = |s: CK_SESSION_HANDLE| {
        let attrs = [
            CKA_CLASS,
            CKA_TOKEN,
            CKA_PRIVATE,
            CKA_LABEL,
            CKA_ID,
            CKA_VALUE,
            CKA_SUBJECT,
            CKA_ISSUER,
            CKA_SERIAL_NUMBER,
            CKA_CERTIFICATE_TYPE,
            CKA_CERTIFICATE_CATEGORY,
            CKA_KEY_TYPE,
            CKA_MODULUS,
            CKA_PUBLIC_EXPONENT,
            CKA_MODULUS_BITS,
            CKA_SIGN,
            CKA_ALWAYS_AUTHENTICATE,
            CKA_PROFILE_ID,
        ];
        for h in raw.find(s, &[]).expect("find all") {
            for a in attrs {
                let _ = raw.attr(s, h, a);
            }
        }
    };
    let (mut auth_s, mut sign_s) = (0, 0);
    step(
        "first C_GetSlotList + C_GetTokenInfo on both tokens",
        bounds.slots_and_token_info,
        &mut || {
            assert_eq!(raw.slot_list(true), Ok(vec![0, 1]));
            raw.token_info(AUTH_SLOT).expect("auth token info");
            raw.token_info(SIGN_SLOT).expect("sign token info");
        },
    );
    step(
        "C_FindObjects over everything + attributes, auth token (before login)",
        bounds.find_all_auth,
        &mut || {
            auth_s = raw.open_ro(AUTH_SLOT);
            read_all(auth_s);
        },
    );
    step(
        "C_FindObjects over everything + attributes, sign token (before login)",
        bounds.find_all_sign,
        &mut || {
            sign_s = raw.open_ro(SIGN_SLOT);
            read_all(sign_s);
        },
    );
    for (s, t, max_first, max_second) in [
        (
            auth_s,
            &AUTH,
            bounds.login_sign_auth,
            bounds.second_sign_auth,
        ),
        (
            sign_s,
            &SIGN,
            bounds.login_sign_sign,
            bounds.second_sign_sign,
        ),
    ] {
        let name = if t.slot == AUTH_SLOT { "auth" } else { "sign" };
        step(
            &format!("C_Login + C_Sign (SHA256-RSA-PKCS), {name} token"),
            max_first,
            &mut || {
                assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
                let key = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
                assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
                raw.sign(s, b"first").expect("sign");
            },
        );
        step(
            &format!("second C_Sign, {name} token"),
            max_second,
            &mut || {
                let key = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
                assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
                raw.sign(s, b"second").expect("sign");
            },
        );
    }
    step(
        "C_FindObjects over everything + attributes, sign token (after login)",
        bounds.find_all_sign_after_login,
        &mut || {
            read_all(sign_s);
        },
    );
    println!("APDU counts, profile {}:", profile());
    for line in &table {
        println!("  {line}");
    }
    assert_eq!(raw.logout(auth_s), CKR_OK);
}
