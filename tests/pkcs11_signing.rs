//! Signing, verification and message digesting (PKCS#11 chapters 5.9, 5.11, 5.12): every
//! signature mechanism on both tokens, checked independently, and the digests.
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_signing -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_signing -- --include-ignored --test-threads=1
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
use cryptoki::session::UserType;
use cryptoki_sys::*;
use sha2::Digest;

// ----- signing, verification, digests ---------------------------------------------------------

fn mechanism(m: CK_MECHANISM_TYPE) -> Mechanism<'static> {
    match m {
        CKM_RSA_PKCS => Mechanism::RsaPkcs,
        CKM_SHA1_RSA_PKCS => Mechanism::Sha1RsaPkcs,
        CKM_SHA224_RSA_PKCS => Mechanism::Sha224RsaPkcs,
        CKM_SHA256_RSA_PKCS => Mechanism::Sha256RsaPkcs,
        CKM_SHA384_RSA_PKCS => Mechanism::Sha384RsaPkcs,
        CKM_SHA512_RSA_PKCS => Mechanism::Sha512RsaPkcs,
        other => panic!("{other:#x}"),
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn sign_and_verify_on_both_tokens() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let message: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();

    for t in TOKENS {
        let session = ctx.p.open_ro_session(slot(&ctx, t.slot)).expect("session");
        let s = session.handle();
        session
            .login(UserType::User, Some(&pin(t.pin)))
            .expect("login");
        let cert_der = user_cert(&ctx, s, t);
        let private = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
        let public = one(
            &ctx,
            s,
            &[(CKA_CLASS, ulong(CKO_PUBLIC_KEY)), (CKA_ID, vec![t.id])],
        );
        let (priv_h, pub_h) = (handle(private), handle(public));
        let signatures_before = stats().get("signatures");
        let mut made = 0;

        for m in SIGN_MECHANISMS {
            let mech = mechanism(m);
            // Inputs: for CKM_RSA_PKCS a DigestInfo, a TLS 1.0 MD5‖SHA-1 and the 245-byte maximum.
            let inputs: Vec<Vec<u8>> = if m == CKM_RSA_PKCS {
                vec![
                    sha256_digest_info(&message),
                    vec![0x5a; 36],
                    vec![0xa5; 245],
                ]
            } else {
                vec![message.clone(), Vec::new()]
            };
            for data in &inputs {
                // Single-part.
                let sig = session.sign(&mech, priv_h, data).expect("C_Sign");
                made += 1;
                assert_eq!(sig.len(), 256);
                verify_independently(&cert_der, m, data, &sig);
                session.verify(&mech, pub_h, data, &sig).expect("C_Verify");
                let mut bad = sig.clone();
                bad[100] ^= 1;
                assert_eq!(
                    rv_of(session.verify(&mech, pub_h, data, &bad)),
                    Some(RvError::SignatureInvalid)
                );
                assert_eq!(
                    rv_of(session.verify(&mech, pub_h, data, &sig[..255])),
                    Some(RvError::SignatureLenRange)
                );

                if m == CKM_RSA_PKCS {
                    // Single-part only (the specification's mechanism table): an update is
                    // refused and ends the operation.
                    session.sign_init(&mech, priv_h).expect("C_SignInit");
                    assert_eq!(
                        rv_of(session.sign_update(data)),
                        Some(RvError::FunctionNotSupported)
                    );
                    assert_eq!(
                        rv_of(session.sign_final()),
                        Some(RvError::OperationNotInitialized)
                    );
                    continue;
                }

                // Multi-part, in uneven pieces.
                session.sign_init(&mech, priv_h).expect("C_SignInit");
                let cut = data.len() / 3;
                session.sign_update(&data[..cut]).expect("C_SignUpdate");
                session.sign_update(&data[cut..]).expect("C_SignUpdate");
                let sig2 = session.sign_final().expect("C_SignFinal");
                made += 1;
                verify_independently(&cert_der, m, data, &sig2);
                assert_eq!(sig, sig2, "PKCS#1 v1.5 is deterministic");
                session.verify_init(&mech, pub_h).expect("C_VerifyInit");
                session.verify_update(&data[..cut]).expect("C_VerifyUpdate");
                session.verify_update(&data[cut..]).expect("C_VerifyUpdate");
                session.verify_final(&sig2).expect("C_VerifyFinal");
                session.verify_init(&mech, pub_h).expect("C_VerifyInit");
                session.verify_update(data).expect("C_VerifyUpdate");
                assert_eq!(
                    rv_of(session.verify_final(&bad)),
                    Some(RvError::SignatureInvalid)
                );
            }
        }
        assert_eq!(
            stats().get("signatures"),
            signatures_before + made,
            "one card signature per C_Sign"
        );

        // CKM_RSA_PKCS input limit: k − 11 = 245 bytes.
        assert_eq!(
            rv_of(session.sign(&Mechanism::RsaPkcs, priv_h, &[1; 246])),
            Some(RvError::DataLenRange)
        );
        session
            .sign_init(&Mechanism::RsaPkcs, priv_h)
            .expect("init");
        assert_eq!(
            rv_of(session.sign_update(&[1; 200])),
            Some(RvError::FunctionNotSupported),
            "single-part only"
        );
        assert_eq!(
            rv_of(session.sign_final()),
            Some(RvError::OperationNotInitialized),
            "operation ended"
        );
        assert_eq!(
            rv_of(session.verify(&Mechanism::RsaPkcs, pub_h, &[1; 246], &[0; 256])),
            Some(RvError::DataLenRange)
        );

        // Two-call length convention: the operation stays active until a signature is made.
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, private), CKR_OK);
        let mut len: CK_ULONG = 0;
        assert_eq!(
            call!(
                raw,
                C_Sign(s, b"x".as_ptr() as *mut _, 1, ptr::null_mut(), &mut len)
            ),
            CKR_OK
        );
        assert_eq!(len, 256);
        let mut small = [0u8; 10];
        let mut len: CK_ULONG = 10;
        assert_eq!(
            call!(
                raw,
                C_Sign(s, b"x".as_ptr() as *mut _, 1, small.as_mut_ptr(), &mut len)
            ),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 256);
        assert_eq!(
            call!(
                raw,
                C_Sign(
                    s,
                    b"x".as_ptr() as *mut _,
                    1,
                    ptr::null_mut(),
                    ptr::null_mut()
                )
            ),
            CKR_ARGUMENTS_BAD
        );
        // That argument error ended the operation (the specification: every error but
        // CKR_BUFFER_TOO_SMALL and a length query).
        assert_eq!(
            raw.sign(s, b"x"),
            Err(CKR_OPERATION_NOT_INITIALIZED),
            "ended by the argument error"
        );
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, private), CKR_OK);
        let sig = raw.sign(s, b"x").expect("sign after length queries");
        verify_independently(&cert_der, CKM_SHA256_RSA_PKCS, b"x", &sig);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, private), CKR_OK);
        assert_eq!(
            call!(raw, C_SignUpdate(s, b"ab".as_ptr() as *mut _, 2)),
            CKR_OK
        );
        let mut len: CK_ULONG = 0;
        assert_eq!(
            call!(raw, C_SignFinal(s, ptr::null_mut(), &mut len)),
            CKR_OK
        );
        assert_eq!(len, 256);
        let mut sig = vec![0u8; 256];
        assert_eq!(
            call!(raw, C_SignFinal(s, sig.as_mut_ptr(), &mut len)),
            CKR_OK
        );
        verify_independently(&cert_der, CKM_SHA256_RSA_PKCS, b"ab", &sig);

        // Sign/verify errors.
        let mut len: CK_ULONG = 256;
        let mut buf = [0u8; 256];
        assert_eq!(
            call!(
                raw,
                C_Sign(s, b"x".as_ptr() as *mut _, 1, buf.as_mut_ptr(), &mut len)
            ),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            call!(raw, C_SignUpdate(s, b"x".as_ptr() as *mut _, 1)),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            call!(raw, C_SignFinal(s, buf.as_mut_ptr(), &mut len)),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            call!(
                raw,
                C_Verify(s, b"x".as_ptr() as *mut _, 1, buf.as_mut_ptr(), 256)
            ),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            call!(raw, C_VerifyUpdate(s, b"x".as_ptr() as *mut _, 1)),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            call!(raw, C_VerifyFinal(s, buf.as_mut_ptr(), 256)),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            raw.sign_init(s, CKM_RSA_X_509, private),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(raw.sign_init(s, CKM_SHA256, private), CKR_MECHANISM_INVALID);
        assert_eq!(
            raw.sign_init(s, CKM_RSA_PKCS, public),
            CKR_KEY_TYPE_INCONSISTENT
        );
        let ca = one(
            &ctx,
            s,
            &[(CKA_CLASS, ulong(CKO_CERTIFICATE)), (CKA_ID, vec![t.ca_id])],
        );
        assert_eq!(raw.sign_init(s, CKM_RSA_PKCS, ca), CKR_KEY_HANDLE_INVALID);
        assert_eq!(
            raw.sign_init(s, CKM_RSA_PKCS, 0xdead),
            CKR_KEY_HANDLE_INVALID
        );
        assert_eq!(
            call!(raw, C_SignInit(s, ptr::null_mut(), private)),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            raw.verify_init(s, CKM_RSA_PKCS, private),
            CKR_KEY_TYPE_INCONSISTENT
        );
        assert_eq!(
            raw.verify_init(s, CKM_RSA_X_509, public),
            CKR_MECHANISM_INVALID
        );
        assert_eq!(raw.sign_init(s, CKM_RSA_PKCS, private), CKR_OK);
        assert_eq!(
            raw.sign_init(s, CKM_RSA_PKCS, private),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(raw.verify_init(s, CKM_RSA_PKCS, public), CKR_OK);
        assert_eq!(
            raw.verify_init(s, CKM_RSA_PKCS, public),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            call3!(raw, C_SessionCancel(s, CKF_SIGN | CKF_VERIFY)),
            CKR_OK
        );
        // Keys of the other token are not visible in this session.
        let other = raw.open_ro(if t.slot == AUTH_SLOT {
            SIGN_SLOT
        } else {
            AUTH_SLOT
        });
        assert_eq!(
            raw.sign_init(other, CKM_RSA_PKCS, private),
            CKR_KEY_HANDLE_INVALID
        );
        assert_eq!(call!(raw, C_CloseSession(other)), CKR_OK);

        // Logged out (by another session) while an operation is active.
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, private), CKR_OK);
        let s2 = raw.open_ro(t.slot);
        assert_eq!(raw.logout(s2), CKR_OK);
        assert_eq!(
            raw.sign(s, b"after logout").err(),
            Some(CKR_USER_NOT_LOGGED_IN)
        );
        assert_eq!(
            raw.sign_init(s, CKM_SHA256_RSA_PKCS, private),
            CKR_USER_NOT_LOGGED_IN
        );
        // Verification needs no login (auth token: public key is public).
        if !t.private_cert {
            assert_eq!(raw.verify_init(s, CKM_SHA256_RSA_PKCS, public), CKR_OK);
            assert_eq!(
                call!(
                    raw,
                    C_Verify(s, b"ab".as_ptr() as *mut _, 2, sig.as_mut_ptr(), 256)
                ),
                CKR_OK
            );
        }
        drop(session);
        assert_eq!(call!(raw, C_CloseSession(s2)), CKR_OK);
    }
    assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn digests() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let apdus = stats().apdus();
    let session = ctx
        .p
        .open_ro_session(slot(&ctx, AUTH_SLOT))
        .expect("session");
    let s = session.handle();
    let data = b"The quick brown fox jumps over the lazy dog";
    let cases: [(Mechanism, Vec<u8>); 5] = [
        (Mechanism::Sha1, sha1::Sha1::digest(data).to_vec()),
        (Mechanism::Sha224, sha2::Sha224::digest(data).to_vec()),
        (Mechanism::Sha256, sha2::Sha256::digest(data).to_vec()),
        (Mechanism::Sha384, sha2::Sha384::digest(data).to_vec()),
        (Mechanism::Sha512, sha2::Sha512::digest(data).to_vec()),
    ];
    for (mech, want) in cases {
        assert_eq!(session.digest(&mech, data).expect("C_Digest"), want);
        session.digest_init(&mech).expect("C_DigestInit");
        session.digest_update(&data[..10]).expect("C_DigestUpdate");
        session.digest_update(&data[10..]).expect("C_DigestUpdate");
        assert_eq!(session.digest_final().expect("C_DigestFinal"), want);
    }
    let mut m = CK_MECHANISM {
        mechanism: CKM_SHA256,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    let mut len: CK_ULONG = 0;
    assert_eq!(
        call!(
            raw,
            C_Digest(s, data.as_ptr() as *mut _, 5, ptr::null_mut(), &mut len)
        ),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(call!(raw, C_DigestKey(s, 1)), CKR_OPERATION_NOT_INITIALIZED);
    assert_eq!(call!(raw, C_DigestInit(s, &mut m)), CKR_OK);
    assert_eq!(call!(raw, C_DigestInit(s, &mut m)), CKR_OPERATION_ACTIVE);
    assert_eq!(
        call!(
            raw,
            C_Digest(s, data.as_ptr() as *mut _, 5, ptr::null_mut(), &mut len)
        ),
        CKR_OK
    );
    assert_eq!(len, 32);
    let mut small = [0u8; 8];
    let mut len: CK_ULONG = 8;
    assert_eq!(
        call!(
            raw,
            C_Digest(s, data.as_ptr() as *mut _, 5, small.as_mut_ptr(), &mut len)
        ),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(len, 32);
    let key = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PUBLIC_KEY))]);
    assert_eq!(call!(raw, C_DigestKey(s, key)), CKR_KEY_INDIGESTIBLE);
    let mut out = [0u8; 32];
    let mut len: CK_ULONG = 32;
    assert_eq!(
        call!(
            raw,
            C_Digest(s, data.as_ptr() as *mut _, 5, out.as_mut_ptr(), &mut len)
        ),
        CKR_OK
    );
    assert_eq!(out.to_vec(), sha2::Sha256::digest(&data[..5]).to_vec());
    let mut bad = CK_MECHANISM {
        mechanism: CKM_MD5,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    assert_eq!(call!(raw, C_DigestInit(s, &mut bad)), CKR_MECHANISM_INVALID);
    assert_eq!(
        call!(raw, C_DigestInit(s, ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(raw, C_DigestInit(0xdead, &mut m)),
        CKR_SESSION_HANDLE_INVALID
    );
    drop(session);
    let apdus_after = stats().apdus();
    // Opening the session may have loaded the token once; digests themselves cost nothing.
    assert!(
        apdus_after - apdus <= 20,
        "digests are software: {}",
        apdus_after - apdus
    );
}
