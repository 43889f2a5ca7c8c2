//! What a read-only card cannot do: object writes, key generation, encryption and the
//! other functions the module refuses, each with the return value the specification names.
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_unsupported -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_unsupported -- --include-ignored --test-threads=1
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
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki_sys::*;

// ----- writes and functions the card cannot do ----------------------------------------------

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn writes_refused_and_unsupported_functions() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    for t in TOKENS {
        for rw in [false, true] {
            let session = if rw {
                ctx.p.open_rw_session(slot(&ctx, t.slot))
            } else {
                ctx.p.open_ro_session(slot(&ctx, t.slot))
            }
            .expect("session");
            session
                .login(UserType::User, Some(&pin(t.pin)))
                .expect("login");
            let s = session.handle();
            let cert = one(
                &ctx,
                s,
                &[(CKA_CLASS, ulong(CKO_CERTIFICATE)), (CKA_ID, vec![t.id])],
            );
            let h = handle(cert);
            let refused = |r: Option<RvError>, what: &str| {
                assert!(
                    matches!(
                        r,
                        Some(RvError::TokenWriteProtected) | Some(RvError::SessionReadOnly)
                    ),
                    "{what} (rw={rw}): {r:?}"
                );
            };
            refused(
                rv_of(
                    session.create_object(&[
                        Attribute::Class(ObjectClass::DATA),
                        Attribute::Token(true),
                    ]),
                ),
                "C_CreateObject",
            );
            refused(rv_of(session.destroy_object(h)), "C_DestroyObject");
            refused(
                rv_of(session.update_attributes(h, &[Attribute::Label(b"x".to_vec())])),
                "C_SetAttributeValue",
            );
            refused(
                rv_of(session.copy_object(h, &[Attribute::Token(false)])),
                "C_CopyObject",
            );
            refused(
                rv_of(session.generate_key_pair(
                    &Mechanism::RsaPkcsKeyPairGen,
                    &[Attribute::ModulusBits(2048.into())],
                    &[Attribute::Sign(true)],
                )),
                "C_GenerateKeyPair",
            );
            refused(
                rv_of(
                    session.generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(16.into())]),
                ),
                "C_GenerateKey",
            );
            // The certificate is unchanged.
            assert!(raw.attr(s, cert, CKA_VALUE).is_ok());
            assert_eq!(
                raw.attr(s, cert, CKA_LABEL),
                Ok(t.label.as_bytes().to_vec())
            );
            session.logout().expect("logout");
        }
    }

    let s = raw.open_ro(AUTH_SLOT);
    let mut m = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut buf = [0u8; 256];
    let mut len: CK_ULONG = 256;
    let (b, l) = (buf.as_mut_ptr(), &mut len as *mut CK_ULONG);
    let key = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PUBLIC_KEY))]);
    // No encryption or decryption, no recovery, no key management beyond reading.
    let cases: Vec<(&str, CK_RV, CK_RV)> = vec![
        (
            "C_EncryptInit",
            call!(raw, C_EncryptInit(s, &mut m, key)),
            CKR_MECHANISM_INVALID,
        ),
        (
            "C_DecryptInit",
            call!(raw, C_DecryptInit(s, &mut m, key)),
            CKR_MECHANISM_INVALID,
        ),
        (
            "C_SignRecoverInit",
            call!(raw, C_SignRecoverInit(s, &mut m, key)),
            CKR_MECHANISM_INVALID,
        ),
        (
            "C_VerifyRecoverInit",
            call!(raw, C_VerifyRecoverInit(s, &mut m, key)),
            CKR_MECHANISM_INVALID,
        ),
        (
            "C_Encrypt",
            call!(raw, C_Encrypt(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_EncryptUpdate",
            call!(raw, C_EncryptUpdate(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_EncryptFinal",
            call!(raw, C_EncryptFinal(s, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_Decrypt",
            call!(raw, C_Decrypt(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_DecryptUpdate",
            call!(raw, C_DecryptUpdate(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_DecryptFinal",
            call!(raw, C_DecryptFinal(s, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_SignRecover",
            call!(raw, C_SignRecover(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_VerifyRecover",
            call!(raw, C_VerifyRecover(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_DigestEncryptUpdate",
            call!(raw, C_DigestEncryptUpdate(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_DecryptDigestUpdate",
            call!(raw, C_DecryptDigestUpdate(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_SignEncryptUpdate",
            call!(raw, C_SignEncryptUpdate(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_DecryptVerifyUpdate",
            call!(raw, C_DecryptVerifyUpdate(s, b, 1, b, l)),
            CKR_OPERATION_NOT_INITIALIZED,
        ),
        (
            "C_WrapKey",
            call!(raw, C_WrapKey(s, &mut m, key, key, b, l)),
            CKR_MECHANISM_INVALID,
        ),
        (
            "C_UnwrapKey",
            call!(
                raw,
                C_UnwrapKey(s, &mut m, key, b, 1, ptr::null_mut(), 0, &mut 0)
            ),
            CKR_MECHANISM_INVALID,
        ),
        (
            "C_DeriveKey",
            call!(raw, C_DeriveKey(s, &mut m, key, ptr::null_mut(), 0, &mut 0)),
            CKR_MECHANISM_INVALID,
        ),
        (
            "C_GenerateRandom",
            call!(raw, C_GenerateRandom(s, b, 16)),
            CKR_OK,
        ),
        (
            "C_SeedRandom",
            call!(raw, C_SeedRandom(s, b, 16)),
            CKR_RANDOM_SEED_NOT_SUPPORTED,
        ),
        (
            "C_InitToken",
            call!(raw, C_InitToken(AUTH_SLOT, b, 4, b)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_InitPIN",
            call!(raw, C_InitPIN(s, b, 4)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_LoginUser",
            call3!(raw, C_LoginUser(s, CKU_USER, b, 4, b, 4)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_MessageSignInit",
            call3!(raw, C_MessageSignInit(s, &mut m, key)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_MessageVerifyInit",
            call3!(raw, C_MessageVerifyInit(s, &mut m, key)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_MessageEncryptInit",
            call3!(raw, C_MessageEncryptInit(s, &mut m, key)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_MessageDecryptInit",
            call3!(raw, C_MessageDecryptInit(s, &mut m, key)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_SignMessage",
            call3!(raw, C_SignMessage(s, ptr::null_mut(), 0, b, 1, b, l)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_SignMessageBegin",
            call3!(raw, C_SignMessageBegin(s, ptr::null_mut(), 0)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_SignMessageNext",
            call3!(raw, C_SignMessageNext(s, ptr::null_mut(), 0, b, 1, b, l)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_MessageSignFinal",
            call3!(raw, C_MessageSignFinal(s)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_VerifyMessage",
            call3!(raw, C_VerifyMessage(s, ptr::null_mut(), 0, b, 1, b, 1)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_VerifyMessageBegin",
            call3!(raw, C_VerifyMessageBegin(s, ptr::null_mut(), 0)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_VerifyMessageNext",
            call3!(raw, C_VerifyMessageNext(s, ptr::null_mut(), 0, b, 1, b, 1)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_MessageVerifyFinal",
            call3!(raw, C_MessageVerifyFinal(s)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_EncryptMessage",
            call3!(
                raw,
                C_EncryptMessage(s, ptr::null_mut(), 0, b, 1, b, 1, b, l)
            ),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_EncryptMessageBegin",
            call3!(raw, C_EncryptMessageBegin(s, ptr::null_mut(), 0, b, 1)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_EncryptMessageNext",
            call3!(
                raw,
                C_EncryptMessageNext(s, ptr::null_mut(), 0, b, 1, b, l, 0)
            ),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_MessageEncryptFinal",
            call3!(raw, C_MessageEncryptFinal(s)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_DecryptMessage",
            call3!(
                raw,
                C_DecryptMessage(s, ptr::null_mut(), 0, b, 1, b, 1, b, l)
            ),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_DecryptMessageBegin",
            call3!(raw, C_DecryptMessageBegin(s, ptr::null_mut(), 0, b, 1)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_DecryptMessageNext",
            call3!(
                raw,
                C_DecryptMessageNext(s, ptr::null_mut(), 0, b, 1, b, l, 0)
            ),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        (
            "C_MessageDecryptFinal",
            call3!(raw, C_MessageDecryptFinal(s)),
            CKR_FUNCTION_NOT_SUPPORTED,
        ),
        // With a dead session handle, the session is checked first.
        (
            "C_EncryptInit(bad session)",
            call!(raw, C_EncryptInit(0xdead, &mut m, key)),
            CKR_SESSION_HANDLE_INVALID,
        ),
        (
            "C_GenerateRandom(bad session)",
            call!(raw, C_GenerateRandom(0xdead, b, 16)),
            CKR_SESSION_HANDLE_INVALID,
        ),
        (
            "C_CreateObject(bad session)",
            call!(raw, C_CreateObject(0xdead, ptr::null_mut(), 0, &mut 0)),
            CKR_SESSION_HANDLE_INVALID,
        ),
        (
            "C_InitPIN(bad session)",
            call!(raw, C_InitPIN(0xdead, b, 4)),
            CKR_SESSION_HANDLE_INVALID,
        ),
    ];
    for (what, got, want) in cases {
        assert_eq!(got, want, "{what}: {got:#x}");
    }
}
