//! Call-level conformance (issue 12, docs/conformance.md): random numbers, private keys hidden
//! before login, the operation lifecycle (`C_SessionCancel`, single-part mechanisms, which calls
//! end an operation), argument checks before state checks, and `C_Login`'s answer to a PIN whose
//! format cannot be right. Run through the real PC/SC stack:
//! ```text
//! cargo build --lib && tests/harness/with-card.sh --profile extended -- \
//!     cargo test --test conformance_calls -- --include-ignored --test-threads=1
//! ```

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ptr;

use common::*;
use cryptoki_sys::*;

// The harness's card: these tests are `#[ignore]`d, and outside the harness `start` fails.
use common::tokens::start;

fn mech(m: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: m,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn random_numbers_from_the_operating_system() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    for slot in [AUTH_SLOT, SIGN_SLOT] {
        let info = raw.token_info(slot).expect("token info");
        assert_ne!(info.flags & CKF_RNG, 0, "CKF_RNG on slot {slot}");
    }
    let s = raw.open_ro(AUTH_SLOT);
    let before = stats().apdus();
    let mut a = [0u8; 64];
    let mut b = [0u8; 64];
    assert_eq!(call!(raw, C_GenerateRandom(s, a.as_mut_ptr(), 64)), CKR_OK);
    assert_eq!(call!(raw, C_GenerateRandom(s, b.as_mut_ptr(), 64)), CKR_OK);
    assert_ne!(a, [0u8; 64]);
    assert_ne!(a, b);
    // Zero length: nothing written, success.
    let mut c = [0x5Au8; 4];
    assert_eq!(call!(raw, C_GenerateRandom(s, c.as_mut_ptr(), 0)), CKR_OK);
    assert_eq!(c, [0x5A; 4]);
    // A large request is served.
    let mut big = vec![0u8; 100_000];
    assert_eq!(
        call!(
            raw,
            C_GenerateRandom(s, big.as_mut_ptr(), big.len() as CK_ULONG)
        ),
        CKR_OK
    );
    assert!(big.iter().any(|x| *x != 0));
    // NULL arguments: CKR_ARGUMENTS_BAD, before the session check too.
    assert_eq!(
        call!(raw, C_GenerateRandom(s, ptr::null_mut(), 4)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_GenerateRandom(s, ptr::null_mut(), 0)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_GenerateRandom(0xDEAD, ptr::null_mut(), 4)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_SeedRandom(s, ptr::null_mut(), 4)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_SeedRandom(s, a.as_mut_ptr(), 4)),
        CKR_RANDOM_SEED_NOT_SUPPORTED
    );
    assert_eq!(
        call!(raw, C_GenerateRandom(0xDEAD, a.as_mut_ptr(), 4)),
        CKR_SESSION_HANDLE_INVALID
    );
    assert_eq!(stats().apdus(), before, "the card is not asked");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn private_keys_are_found_only_after_login() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    for (slot, pin) in [(AUTH_SLOT, AUTH_PIN), (SIGN_SLOT, SIGN_PASSWORD)] {
        let s = raw.open_ro(slot);
        let keys = || {
            raw.find(s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))])
                .expect("find")
        };
        assert_eq!(keys(), vec![], "slot {slot}: no private key before login");
        assert_eq!(raw.find(s, &[(CKA_SIGN, bbool(true))]), Ok(vec![]));
        assert_eq!(raw.login(s, CKU_USER, pin.as_bytes()), CKR_OK);
        let found = keys();
        assert_eq!(found.len(), 1, "slot {slot}: the key after login");
        assert!(raw.attr_bool(s, found[0], CKA_PRIVATE));
        assert_eq!(raw.logout(s), CKR_OK);
        assert_eq!(keys(), vec![]);
        assert_eq!(
            raw.attr(s, found[0], CKA_LABEL),
            Err(CKR_OBJECT_HANDLE_INVALID),
            "hidden again"
        );
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn session_cancel_ends_each_operation_kind() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    let mut sha = mech(CKM_SHA256);
    // Digest.
    assert_eq!(call!(raw, C_DigestInit(s, &mut sha)), CKR_OK);
    assert_eq!(call3!(raw, C_SessionCancel(s, CKF_DIGEST)), CKR_OK);
    assert_eq!(
        call!(raw, C_DigestInit(s, &mut sha)),
        CKR_OK,
        "digest ended"
    );
    assert_eq!(
        call!(raw, C_DigestUpdate(s, b"x".as_ptr() as *mut _, 1)),
        CKR_OK
    );
    assert_eq!(call3!(raw, C_SessionCancel(s, CKF_DIGEST)), CKR_OK);
    assert_eq!(
        call!(raw, C_DigestUpdate(s, b"x".as_ptr() as *mut _, 1)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // Find.
    let mut class = ulong(CKO_CERTIFICATE);
    let mut t = CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: class.as_mut_ptr() as *mut _,
        ulValueLen: class.len() as CK_ULONG,
    };
    assert_eq!(call!(raw, C_FindObjectsInit(s, &mut t, 1)), CKR_OK);
    assert_eq!(call3!(raw, C_SessionCancel(s, CKF_FIND_OBJECTS)), CKR_OK);
    assert_eq!(
        call!(raw, C_FindObjectsFinal(s)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    // Verify and sign.
    let public = raw
        .find(s, &[(CKA_CLASS, ulong(CKO_PUBLIC_KEY))])
        .expect("find")[0];
    assert_eq!(raw.verify_init(s, CKM_SHA256_RSA_PKCS, public), CKR_OK);
    assert_eq!(call3!(raw, C_SessionCancel(s, CKF_VERIFY)), CKR_OK);
    assert_eq!(
        raw.verify_init(s, CKM_SHA256_RSA_PKCS, public),
        CKR_OK,
        "verify ended"
    );
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    let key = raw
        .find(s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))])
        .expect("find")[0];
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert_eq!(call!(raw, C_DigestInit(s, &mut sha)), CKR_OK);
    // Several at once; the others stay.
    assert_eq!(
        call3!(raw, C_SessionCancel(s, CKF_SIGN | CKF_DIGEST)),
        CKR_OK
    );
    assert_eq!(
        raw.sign_init(s, CKM_SHA256_RSA_PKCS, key),
        CKR_OK,
        "sign ended"
    );
    assert_eq!(
        call!(raw, C_DigestInit(s, &mut sha)),
        CKR_OK,
        "digest ended"
    );
    assert_eq!(
        raw.verify_init(s, CKM_SHA256_RSA_PKCS, public),
        CKR_OPERATION_ACTIVE,
        "verify untouched"
    );
    assert_eq!(raw.logout(s), CKR_OK);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn single_part_mechanisms_and_ending_calls() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    let key = raw
        .find(s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))])
        .expect("find")[0];
    let public = raw
        .find(s, &[(CKA_CLASS, ulong(CKO_PUBLIC_KEY))])
        .expect("find")[0];
    let data = [0x11u8; 51];
    let d = data.as_ptr() as *mut CK_BYTE;
    let mut sig = [0u8; 256];
    let mut len: CK_ULONG = 256;

    // CKM_RSA_PKCS is single-part: C_SignUpdate is refused and ends the operation.
    assert_eq!(raw.sign_init(s, CKM_RSA_PKCS, key), CKR_OK);
    assert_eq!(
        call!(raw, C_SignUpdate(s, d, 10)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        call!(raw, C_SignFinal(s, sig.as_mut_ptr(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(raw.verify_init(s, CKM_RSA_PKCS, public), CKR_OK);
    assert_eq!(
        call!(raw, C_VerifyUpdate(s, d, 10)),
        CKR_FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(
        call!(raw, C_VerifyFinal(s, sig.as_mut_ptr(), 256)),
        CKR_OPERATION_NOT_INITIALIZED
    );

    // After C_SignUpdate only C_SignFinal may end the operation: C_Sign is refused (and, as
    // every failing C_Sign, ends it).
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert_eq!(call!(raw, C_SignUpdate(s, d, 10)), CKR_OK);
    len = 256;
    assert_eq!(
        call!(raw, C_Sign(s, d, 10, sig.as_mut_ptr(), &mut len)),
        CKR_OPERATION_ACTIVE
    );
    assert_eq!(
        call!(raw, C_SignFinal(s, sig.as_mut_ptr(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(raw.verify_init(s, CKM_SHA256_RSA_PKCS, public), CKR_OK);
    assert_eq!(call!(raw, C_VerifyUpdate(s, d, 10)), CKR_OK);
    assert_eq!(
        call!(raw, C_Verify(s, d, 10, sig.as_mut_ptr(), 256)),
        CKR_OPERATION_ACTIVE
    );
    let mut sha = mech(CKM_SHA256);
    let mut out = [0u8; 32];
    let mut olen: CK_ULONG = 32;
    assert_eq!(call!(raw, C_DigestInit(s, &mut sha)), CKR_OK);
    assert_eq!(call!(raw, C_DigestUpdate(s, d, 10)), CKR_OK);
    assert_eq!(
        call!(raw, C_Digest(s, d, 10, out.as_mut_ptr(), &mut olen)),
        CKR_OPERATION_ACTIVE
    );
    assert_eq!(
        call!(raw, C_DigestFinal(s, out.as_mut_ptr(), &mut olen)),
        CKR_OPERATION_NOT_INITIALIZED
    );

    // An argument error ends the operation (only CKR_BUFFER_TOO_SMALL and a length query keep
    // it).
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    len = 0;
    assert_eq!(
        call!(raw, C_Sign(s, d, 10, ptr::null_mut(), &mut len)),
        CKR_OK
    );
    assert_eq!(len, 256);
    len = 10;
    assert_eq!(
        call!(raw, C_Sign(s, d, 10, sig.as_mut_ptr(), &mut len)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(
        call!(raw, C_Sign(s, d, 10, sig.as_mut_ptr(), ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );
    len = 256;
    assert_eq!(
        call!(raw, C_Sign(s, d, 10, sig.as_mut_ptr(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED,
        "ended by the argument error"
    );
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert_eq!(
        call!(
            raw,
            C_Sign(s, ptr::null_mut(), 10, sig.as_mut_ptr(), &mut len)
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_Sign(s, d, 10, sig.as_mut_ptr(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert_eq!(
        call!(raw, C_SignUpdate(s, ptr::null_mut(), 3)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_SignFinal(s, sig.as_mut_ptr(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert_eq!(
        call!(raw, C_SignFinal(s, sig.as_mut_ptr(), ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_SignFinal(s, sig.as_mut_ptr(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(raw.verify_init(s, CKM_SHA256_RSA_PKCS, public), CKR_OK);
    assert_eq!(
        call!(raw, C_Verify(s, d, 10, ptr::null_mut(), 256)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_VerifyFinal(s, sig.as_mut_ptr(), 256)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(call!(raw, C_DigestInit(s, &mut sha)), CKR_OK);
    assert_eq!(
        call!(
            raw,
            C_Digest(s, ptr::null_mut(), 10, out.as_mut_ptr(), &mut olen)
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_DigestFinal(s, out.as_mut_ptr(), &mut olen)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(raw.logout(s), CKR_OK);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn argument_checks_come_before_state_and_permission_checks() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    let mut gen = mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
    let mut label = *b"x";
    let mut a = CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: label.as_mut_ptr() as *mut _,
        ulValueLen: 1,
    };
    let mut h: CK_OBJECT_HANDLE = 0;
    let mut h2: CK_OBJECT_HANDLE = 0;
    let null_m: *mut CK_MECHANISM = ptr::null_mut();
    let null_a: *mut CK_ATTRIBUTE = ptr::null_mut();
    let null_h: *mut CK_OBJECT_HANDLE = ptr::null_mut();
    assert_eq!(
        call!(raw, C_GenerateKey(s, null_m, &mut a, 1, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_GenerateKey(s, &mut gen, null_a, 1, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_GenerateKey(s, &mut gen, &mut a, 1, null_h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            raw,
            C_GenerateKeyPair(s, null_m, &mut a, 1, &mut a, 1, &mut h, &mut h2)
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            raw,
            C_GenerateKeyPair(s, &mut gen, &mut a, 1, &mut a, 1, &mut h, null_h)
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            raw,
            C_GenerateKeyPair(s, &mut gen, &mut a, 1, &mut a, 1, &mut h, &mut h2)
        ),
        CKR_TOKEN_WRITE_PROTECTED,
        "valid arguments: the token's protection"
    );
    assert_eq!(
        call!(raw, C_CopyObject(s, 1, null_a, 1, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_CopyObject(s, 1, &mut a, 1, null_h)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_SetAttributeValue(s, 1, null_a, 1)),
        CKR_ARGUMENTS_BAD
    );
    let mut buf = [0u8; 8];
    let mut len: CK_ULONG = 8;
    assert_eq!(
        call!(raw, C_WrapKey(s, null_m, 1, 1, buf.as_mut_ptr(), &mut len)),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            raw,
            C_UnwrapKey(s, null_m, 1, buf.as_mut_ptr(), 8, &mut a, 1, &mut h)
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_DeriveKey(s, null_m, 1, &mut a, 1, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    // Also before the operation state: a NULL length pointer with no operation active.
    assert_eq!(
        call!(raw, C_SignFinal(s, buf.as_mut_ptr(), ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_DigestFinal(s, buf.as_mut_ptr(), ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn login_with_a_malformed_pin_is_pin_incorrect_and_spends_nothing() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let cases: [(CK_SLOT_ID, &[&[u8]]); 2] = [
        (AUTH_SLOT, &[b"", b"12", b"12345", b"12a4", b"12 4"]),
        (
            SIGN_SLOT,
            &[b"", b"ABC12", b"ABC12!", b"ABC 123", b"ABCDEFGHIJ1234567"],
        ),
    ];
    for (slot, pins) in cases {
        let s = raw.open_ro(slot);
        let flags = raw.token_info(slot).expect("info").flags;
        let tries = card_tries();
        let verifies = stats().get("verify_count");
        for pin in pins {
            assert_eq!(
                raw.login(s, CKU_USER, pin),
                CKR_PIN_INCORRECT,
                "slot {slot}, PIN {:?}",
                String::from_utf8_lossy(pin)
            );
        }
        assert_eq!(card_tries(), tries, "no try spent");
        assert_eq!(stats().get("verify_count"), verifies, "no VERIFY sent");
        assert_eq!(
            raw.token_info(slot).expect("info").flags,
            flags,
            "flags unchanged"
        );
        // C_SetPIN keeps the codes the specification gives for setting a PIN.
        let rw = raw
            .open(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .expect("rw");
        let short: &[u8] = b"12";
        let good: &[u8] = if slot == AUTH_SLOT {
            b"1234"
        } else {
            b"ABC123"
        };
        assert_eq!(
            call!(
                raw,
                C_SetPIN(
                    rw,
                    good.as_ptr() as *mut _,
                    good.len() as CK_ULONG,
                    short.as_ptr() as *mut _,
                    2
                )
            ),
            CKR_PIN_LEN_RANGE
        );
    }
}
