//! Object management (PKCS#11 chapter 5.7): the certificates and keys each token shows,
//! their attributes, searches by template, and the objects a read-only card cannot hold.
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_objects -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_objects -- --include-ignored --test-threads=1
//! ```
//! `JPKI_MODULE=target/release/libjpki_pkcs11.so` tests the release build instead.
//!
//! Every test leaves the card as it found it: inserted, PIN counters full, logged out. Locking
//! PINs is done in `tests/pkcs11_pin_lock.rs` (a separate harness run). Helpers shared by the
//! chapters are in `tests/common/`.

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::ptr;

use common::tokens::*;
use common::*;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki_sys::*;
use der::{Decode, Encode};
use sha2::Digest;

// ----- objects ---------------------------------------------------------------------------------

/// Checks every attribute of a certificate object against the certificate itself.
fn check_certificate(
    ctx: &Ctx,
    s: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
    id: u8,
    label: &str,
    ca: bool,
    private: bool,
) -> Vec<u8> {
    let raw = &ctx.raw;
    let der = raw.attr(s, h, CKA_VALUE).expect("CKA_VALUE");
    let cert = x509_cert::Certificate::from_der(&der).expect("CKA_VALUE is the DER certificate");
    let tbs = &cert.tbs_certificate;
    assert_eq!(raw.attr_ulong(s, h, CKA_CLASS), CKO_CERTIFICATE);
    assert_eq!(raw.attr_ulong(s, h, CKA_CERTIFICATE_TYPE), CKC_X_509);
    assert_eq!(
        raw.attr_ulong(s, h, CKA_CERTIFICATE_CATEGORY),
        if ca { 2 } else { 1 }
    );
    assert!(raw.attr_bool(s, h, CKA_TOKEN));
    assert_eq!(raw.attr_bool(s, h, CKA_PRIVATE), private);
    assert!(!raw.attr_bool(s, h, CKA_MODIFIABLE));
    assert!(!raw.attr_bool(s, h, CKA_TRUSTED));
    assert_eq!(raw.attr(s, h, CKA_ID), Ok(vec![id]));
    assert_eq!(raw.attr(s, h, CKA_LABEL), Ok(label.as_bytes().to_vec()));
    assert_eq!(
        raw.attr(s, h, CKA_SUBJECT),
        Ok(tbs.subject.to_der().expect("der"))
    );
    assert_eq!(
        raw.attr(s, h, CKA_ISSUER),
        Ok(tbs.issuer.to_der().expect("der"))
    );
    assert_eq!(
        raw.attr(s, h, CKA_SERIAL_NUMBER),
        Ok(tbs.serial_number.to_der().expect("der"))
    );
    assert_eq!(
        raw.attr(s, h, CKA_PUBLIC_KEY_INFO),
        Ok(tbs.subject_public_key_info.to_der().expect("der"))
    );
    assert_eq!(
        raw.attr(s, h, CKA_CHECK_VALUE),
        Ok(sha1::Sha1::digest(&der)[..3].to_vec())
    );
    let date = |t: &x509_cert::time::Time| {
        let dt = t.to_date_time();
        format!("{:04}{:02}{:02}", dt.year(), dt.month(), dt.day()).into_bytes()
    };
    assert_eq!(
        raw.attr(s, h, CKA_START_DATE),
        Ok(date(&tbs.validity.not_before))
    );
    assert_eq!(
        raw.attr(s, h, CKA_END_DATE),
        Ok(date(&tbs.validity.not_after))
    );
    der
}

/// Checks the attributes shared by both key objects and the class-specific ones.
fn check_key(
    ctx: &Ctx,
    s: CK_SESSION_HANDLE,
    h: CK_OBJECT_HANDLE,
    t: &Token,
    cert_der: &[u8],
    class: CK_OBJECT_CLASS,
) {
    use rsa::traits::PublicKeyParts;
    let raw = &ctx.raw;
    let key = cert_public_key(cert_der);
    let cert = x509_cert::Certificate::from_der(cert_der).expect("cert");
    assert_eq!(raw.attr_ulong(s, h, CKA_CLASS), class);
    assert_eq!(raw.attr_ulong(s, h, CKA_KEY_TYPE), CKK_RSA);
    assert!(raw.attr_bool(s, h, CKA_TOKEN));
    assert_eq!(
        raw.attr(s, h, CKA_ID),
        Ok(vec![t.id]),
        "key and certificate share CKA_ID"
    );
    assert_eq!(raw.attr(s, h, CKA_LABEL), Ok(t.label.as_bytes().to_vec()));
    assert_eq!(raw.attr(s, h, CKA_MODULUS), Ok(key.n().to_bytes_be()));
    assert_eq!(
        raw.attr(s, h, CKA_PUBLIC_EXPONENT),
        Ok(key.e().to_bytes_be())
    );
    assert_eq!(
        raw.attr(s, h, CKA_SUBJECT),
        Ok(cert.tbs_certificate.subject.to_der().expect("der"))
    );
    assert_eq!(
        raw.attr(s, h, CKA_PUBLIC_KEY_INFO),
        Ok(cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("der"))
    );
    assert!(!raw.attr_bool(s, h, CKA_MODIFIABLE));
    assert!(!raw.attr_bool(s, h, CKA_DERIVE));
    let allowed = raw
        .attr(s, h, CKA_ALLOWED_MECHANISMS)
        .expect("CKA_ALLOWED_MECHANISMS");
    let allowed: Vec<CK_MECHANISM_TYPE> = allowed
        .chunks(std::mem::size_of::<CK_ULONG>())
        .map(|c| CK_ULONG::from_ne_bytes(c.try_into().expect("ulong")))
        .collect();
    for m in SIGN_MECHANISMS {
        assert!(allowed.contains(&m), "{m:#x} allowed");
    }
    // Exactly the token's signature mechanisms: PSS where the token lists it (pkcs11-provider
    // refuses a PSS signature otherwise), never one it does not offer.
    let mut offered = vec![0 as CK_MECHANISM_TYPE; 64];
    let mut n = offered.len() as CK_ULONG;
    assert_eq!(
        call!(
            raw,
            C_GetMechanismList(t.slot, offered.as_mut_ptr(), &mut n)
        ),
        CKR_OK
    );
    offered.truncate(n as usize);
    for m in &offered {
        let signs =
            SIGN_MECHANISMS.contains(m) || [CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS].contains(m);
        assert_eq!(
            allowed.contains(m),
            signs,
            "CKA_ALLOWED_MECHANISMS vs. mechanism {m:#x}"
        );
    }
    for m in &allowed {
        assert!(
            offered.contains(m),
            "allowed mechanism {m:#x} is not offered"
        );
    }
    if class == CKO_PUBLIC_KEY {
        assert_eq!(raw.attr_bool(s, h, CKA_PRIVATE), t.private_cert);
        assert_eq!(raw.attr_ulong(s, h, CKA_MODULUS_BITS), 2048);
        assert!(raw.attr_bool(s, h, CKA_VERIFY));
        assert!(!raw.attr_bool(s, h, CKA_ENCRYPT));
        assert!(!raw.attr_bool(s, h, CKA_WRAP));
        assert!(!raw.attr_bool(s, h, CKA_VERIFY_RECOVER));
    } else {
        assert!(raw.attr_bool(s, h, CKA_PRIVATE));
        assert!(raw.attr_bool(s, h, CKA_SIGN));
        assert!(raw.attr_bool(s, h, CKA_SENSITIVE));
        assert!(raw.attr_bool(s, h, CKA_ALWAYS_SENSITIVE));
        assert!(raw.attr_bool(s, h, CKA_NEVER_EXTRACTABLE));
        assert!(!raw.attr_bool(s, h, CKA_EXTRACTABLE));
        assert!(!raw.attr_bool(s, h, CKA_DECRYPT));
        assert!(!raw.attr_bool(s, h, CKA_UNWRAP));
        assert!(!raw.attr_bool(s, h, CKA_SIGN_RECOVER));
        assert!(
            !raw.attr_bool(s, h, CKA_ALWAYS_AUTHENTICATE),
            "documented decision: FALSE"
        );
        for secret in [
            CKA_PRIVATE_EXPONENT,
            CKA_PRIME_1,
            CKA_PRIME_2,
            CKA_EXPONENT_1,
            CKA_EXPONENT_2,
            CKA_COEFFICIENT,
        ] {
            assert_eq!(
                raw.attr(s, h, secret),
                Err(CKR_ATTRIBUTE_SENSITIVE),
                "{secret:#x}"
            );
        }
        assert_eq!(raw.attr(s, h, CKA_VALUE), Err(CKR_ATTRIBUTE_TYPE_INVALID));
    }
}

fn classes(
    ctx: &Ctx,
    s: CK_SESSION_HANDLE,
    found: &[CK_OBJECT_HANDLE],
) -> Vec<(CK_OBJECT_CLASS, Vec<u8>)> {
    let mut v: Vec<(CK_OBJECT_CLASS, Vec<u8>)> = found
        .iter()
        .map(|h| {
            let class = ctx.raw.attr_ulong(s, *h, CKA_CLASS);
            let id = if class == CKO_PROFILE {
                ulong(ctx.raw.attr_ulong(s, *h, CKA_PROFILE_ID))
            } else {
                ctx.raw.attr(s, *h, CKA_ID).expect("CKA_ID")
            };
            (class, id)
        })
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn objects_and_attributes() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let mut unique_ids = BTreeSet::new();

    for t in TOKENS {
        let s = raw.open_ro(t.slot);
        let sign_cert_reads = || {
            apdu_log()
                .iter()
                .filter(|l| l.to_ascii_lowercase().contains(" 00a4020c020001 "))
                .count()
        };
        let reads_before = sign_cert_reads();

        // Before login: profiles, the CA certificate, and (auth only) certificate + public key.
        let all = raw.find(s, &[]).expect("find all");
        // Both tokens declare PUBLIC_CERTIFICATES_TOKEN by default (include/jpki-pkcs11.h);
        // with JPKI_PKCS11_SIGN_CERT_LOOKUP=after-login the signature token does not.
        let after_login =
            std::env::var("JPKI_PKCS11_SIGN_CERT_LOOKUP").as_deref() == Ok("after-login");
        let profiles: Vec<(CK_OBJECT_CLASS, Vec<u8>)> = if t.slot == SIGN_SLOT && after_login {
            vec![(CKO_PROFILE, ulong(CKP_AUTHENTICATION_TOKEN))]
        } else {
            vec![
                (CKO_PROFILE, ulong(CKP_AUTHENTICATION_TOKEN)),
                (CKO_PROFILE, ulong(CKP_PUBLIC_CERTIFICATES_TOKEN)),
            ]
        };
        let mut want = vec![(CKO_CERTIFICATE, vec![t.ca_id])];
        if !t.private_cert {
            want.push((CKO_CERTIFICATE, vec![t.id]));
            want.push((CKO_PUBLIC_KEY, vec![t.id]));
        }
        want.extend(profiles.iter().cloned());
        want.sort();
        assert_eq!(
            classes(&ctx, s, &all),
            want,
            "public objects of slot {}",
            t.slot
        );
        if t.private_cert {
            assert_eq!(
                sign_cert_reads(),
                reads_before,
                "EF 0001 not touched before the password"
            );
            assert_eq!(raw.find(s, &[(CKA_ID, vec![t.id])]), Ok(vec![]));
            assert_eq!(
                raw.find(s, &[(CKA_CLASS, ulong(CKO_PUBLIC_KEY))]),
                Ok(vec![])
            );
        }
        assert_eq!(
            raw.find(s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]),
            Ok(vec![])
        );
        assert_eq!(raw.find(s, &[(CKA_SIGN, bbool(true))]), Ok(vec![]));

        let ca = one(
            &ctx,
            s,
            &[
                (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                (CKA_CERTIFICATE_CATEGORY, ulong(2)),
            ],
        );
        let ca_der = check_certificate(&ctx, s, ca, t.ca_id, t.ca_label, true, false);

        // After login: everything.
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        let all = raw.find(s, &[]).expect("find all");
        let mut want = vec![
            (CKO_CERTIFICATE, vec![t.ca_id]),
            (CKO_CERTIFICATE, vec![t.id]),
            (CKO_PUBLIC_KEY, vec![t.id]),
            (CKO_PRIVATE_KEY, vec![t.id]),
        ];
        want.extend(profiles.iter().cloned());
        want.sort();
        assert_eq!(
            classes(&ctx, s, &all),
            want,
            "all objects of slot {}",
            t.slot
        );
        let cert = one(
            &ctx,
            s,
            &[(CKA_CLASS, ulong(CKO_CERTIFICATE)), (CKA_ID, vec![t.id])],
        );
        let public = one(
            &ctx,
            s,
            &[(CKA_CLASS, ulong(CKO_PUBLIC_KEY)), (CKA_ID, vec![t.id])],
        );
        let private = one(
            &ctx,
            s,
            &[
                (CKA_CLASS, ulong(CKO_PRIVATE_KEY)),
                (CKA_ID, vec![t.id]),
                (CKA_SIGN, bbool(true)),
            ],
        );
        let der = check_certificate(&ctx, s, cert, t.id, t.label, false, t.private_cert);
        check_key(&ctx, s, public, t, &der, CKO_PUBLIC_KEY);
        check_key(&ctx, s, private, t, &der, CKO_PRIVATE_KEY);
        for h in &all {
            let class = raw.attr_ulong(s, *h, CKA_CLASS);
            if class == CKO_PROFILE {
                assert!(!raw.attr_bool(s, *h, CKA_PRIVATE));
                continue;
            }
            let uid = raw.attr(s, *h, CKA_UNIQUE_ID).expect("CKA_UNIQUE_ID");
            assert!(!uid.is_empty());
            assert!(
                unique_ids.insert(uid.clone()),
                "CKA_UNIQUE_ID {uid:?} unique"
            );
            let mut size: CK_ULONG = 0;
            assert_eq!(call!(raw, C_GetObjectSize(s, *h, &mut size)), CKR_OK);
            assert!(size > 0);
        }

        // Searches the clients make (docs/client-behaviour.md: NSS, OpenSSH, Java, "Objects the clients look for"); all served from memory.
        let apdus = stats().apdus();
        let x509 = x509_cert::Certificate::from_der(&der).expect("cert");
        let subject = x509.tbs_certificate.subject.to_der().expect("der");
        let issuer = x509.tbs_certificate.issuer.to_der().expect("der");
        let serial = x509.tbs_certificate.serial_number.to_der().expect("der");
        let ca_subject = x509_cert::Certificate::from_der(&ca_der)
            .expect("ca")
            .tbs_certificate
            .subject
            .to_der()
            .expect("der");
        let searches: Vec<(Template, Vec<CK_OBJECT_HANDLE>)> = vec![
            (
                vec![
                    (CKA_TOKEN, bbool(true)),
                    (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                    (CKA_ISSUER, issuer.clone()),
                    (CKA_SERIAL_NUMBER, serial.clone()),
                ],
                vec![cert],
            ),
            (
                vec![(CKA_ISSUER, issuer.clone()), (CKA_SERIAL_NUMBER, serial)],
                vec![cert],
            ),
            (
                vec![
                    (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                    (CKA_SUBJECT, subject.clone()),
                ],
                vec![cert],
            ),
            (vec![(CKA_SUBJECT, subject)], vec![cert, public, private]),
            (
                vec![
                    (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                    (CKA_SUBJECT, ca_subject),
                ],
                vec![ca],
            ),
            (vec![(CKA_VALUE, der.clone())], vec![cert]),
            (
                vec![(CKA_LABEL, t.label.as_bytes().to_vec())],
                vec![cert, public, private],
            ),
            (
                vec![
                    (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                    (CKA_LABEL, t.ca_label.as_bytes().to_vec()),
                ],
                vec![ca],
            ),
            (vec![(CKA_ID, vec![t.id])], vec![cert, public, private]),
            (
                vec![(CKA_CLASS, ulong(CKO_PUBLIC_KEY)), (CKA_ID, vec![t.id])],
                vec![public],
            ),
            (
                vec![
                    (CKA_CLASS, ulong(CKO_PRIVATE_KEY)),
                    (CKA_ID, vec![t.id]),
                    (CKA_SIGN, bbool(true)),
                ],
                vec![private],
            ),
            (
                vec![
                    (CKA_TOKEN, bbool(true)),
                    (CKA_CLASS, ulong(CKO_PRIVATE_KEY)),
                ],
                vec![private],
            ),
            (
                vec![
                    (CKA_CLASS, ulong(CKO_PRIVATE_KEY)),
                    (CKA_KEY_TYPE, ulong(CKK_RSA)),
                ],
                vec![private],
            ),
            (vec![(CKA_SIGN, bbool(true))], vec![private]),
            (vec![(CKA_VERIFY, bbool(true))], vec![public]),
            (
                vec![
                    (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                    (CKA_CERTIFICATE_CATEGORY, ulong(2)),
                ],
                vec![ca],
            ),
            (
                vec![
                    (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                    (CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)),
                ],
                vec![ca, cert],
            ),
            (vec![(CKA_CLASS, ulong(CKO_SECRET_KEY))], vec![]),
            (vec![(CKA_CLASS, ulong(CKO_DATA))], vec![]),
            (
                vec![
                    (CKA_CLASS, ulong(CKO_NSS_TRUST)),
                    (CKA_ISSUER, issuer.clone()),
                ],
                vec![],
            ),
            (
                vec![
                    (CKA_TOKEN, bbool(true)),
                    (CKA_CLASS, ulong(CKO_NSS_BUILTIN_ROOT_LIST)),
                ],
                vec![],
            ),
            (vec![(CKA_CLASS, ulong(CKO_NSS_CRL))], vec![]),
            (vec![(VENDOR_ATTRIBUTE, vec![1])], vec![]),
            (vec![(CKA_CLASS, vec![3])], vec![]), // value of the wrong length
            (vec![(CKA_ID, vec![0x7f])], vec![]),
            (vec![(CKA_PRIVATE_EXPONENT, vec![1])], vec![]), // sensitive: never matches
        ];
        for (template, mut want) in searches {
            let mut got = raw.find(s, &template).expect("search");
            got.sort();
            want.sort();
            assert_eq!(got, want, "search {template:02x?} on slot {}", t.slot);
        }
        let profile_objects = raw
            .find(
                s,
                &[(CKA_TOKEN, bbool(true)), (CKA_CLASS, ulong(CKO_PROFILE))],
            )
            .expect("profiles");
        assert_eq!(profile_objects.len(), profiles.len());
        // cryptoki's typed search agrees.
        let session = ctx.p.open_ro_session(slot(&ctx, t.slot)).expect("session");
        let typed = session
            .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
            .expect("find");
        assert_eq!(typed.len(), 2);
        let typed_attrs = session
            .get_attributes(
                handle(private),
                &[
                    cryptoki::object::AttributeType::Modulus,
                    cryptoki::object::AttributeType::PrivateExponent,
                    cryptoki::object::AttributeType::AlwaysAuthenticate,
                ],
            )
            .expect("typed attributes");
        assert_eq!(
            typed_attrs.len(),
            2,
            "sensitive attribute skipped: {typed_attrs:?}"
        );
        drop(session);
        assert_eq!(
            stats().apdus(),
            apdus,
            "searches and attribute reads sent APDUs"
        );

        // C_GetAttributeValue with a mixed template fills what it can.
        let mut class_buf = [0u8; 8];
        let mut id_buf = [0u8; 1];
        let mut small = [0u8; 10];
        let mut tmpl = [
            CK_ATTRIBUTE {
                type_: CKA_CLASS,
                pValue: class_buf.as_mut_ptr() as *mut _,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE {
                type_: CKA_PRIVATE_EXPONENT,
                pValue: ptr::null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: VENDOR_ATTRIBUTE,
                pValue: ptr::null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_ID,
                pValue: id_buf.as_mut_ptr() as *mut _,
                ulValueLen: 1,
            },
            CK_ATTRIBUTE {
                type_: CKA_MODULUS,
                pValue: small.as_mut_ptr() as *mut _,
                ulValueLen: 10,
            },
        ];
        let rv = call!(
            raw,
            C_GetAttributeValue(s, private, tmpl.as_mut_ptr(), tmpl.len() as CK_ULONG)
        );
        assert!(
            [
                CKR_ATTRIBUTE_SENSITIVE,
                CKR_ATTRIBUTE_TYPE_INVALID,
                CKR_BUFFER_TOO_SMALL
            ]
            .contains(&rv),
            "{rv:#x}"
        );
        assert_eq!(tmpl[0].ulValueLen, 8);
        assert_eq!(CK_ULONG::from_ne_bytes(class_buf), CKO_PRIVATE_KEY);
        assert_eq!(tmpl[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(tmpl[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!((tmpl[3].ulValueLen, id_buf[0]), (1, t.id));
        assert_eq!(
            tmpl[4].ulValueLen, CK_UNAVAILABLE_INFORMATION,
            "buffer too small"
        );
        let mut tmpl = [CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: small.as_mut_ptr() as *mut _,
            ulValueLen: 10,
        }];
        assert_eq!(
            call!(raw, C_GetAttributeValue(s, cert, tmpl.as_mut_ptr(), 1)),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(
            raw.attr(s, cert, VENDOR_ATTRIBUTE),
            Err(CKR_ATTRIBUTE_TYPE_INVALID)
        );
        assert_eq!(
            raw.attr(s, 0xdead, CKA_CLASS),
            Err(CKR_OBJECT_HANDLE_INVALID)
        );
        assert_eq!(
            call!(raw, C_GetAttributeValue(s, cert, ptr::null_mut(), 1)),
            CKR_ARGUMENTS_BAD
        );
        let mut size: CK_ULONG = 0;
        assert_eq!(
            call!(raw, C_GetObjectSize(s, 0xdead, &mut size)),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            call!(raw, C_GetObjectSize(s, cert, ptr::null_mut())),
            CKR_ARGUMENTS_BAD
        );
        // Objects belong to their token.
        let other = raw.open_ro(if t.slot == AUTH_SLOT {
            SIGN_SLOT
        } else {
            AUTH_SLOT
        });
        assert_eq!(
            raw.attr(other, ca, CKA_CLASS),
            Err(CKR_OBJECT_HANDLE_INVALID)
        );

        // Find-operation states.
        let mut n: CK_ULONG = 0;
        let mut out = [0 as CK_OBJECT_HANDLE; 4];
        assert_eq!(
            call!(raw, C_FindObjects(s, out.as_mut_ptr(), 4, &mut n)),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            call!(raw, C_FindObjectsFinal(s)),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(call!(raw, C_FindObjectsInit(s, ptr::null_mut(), 0)), CKR_OK);
        assert_eq!(
            call!(raw, C_FindObjectsInit(s, ptr::null_mut(), 0)),
            CKR_OPERATION_ACTIVE
        );
        assert_eq!(
            call!(raw, C_FindObjects(s, out.as_mut_ptr(), 4, ptr::null_mut())),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            call!(raw, C_FindObjects(s, out.as_mut_ptr(), 0, &mut n)),
            CKR_OK
        );
        assert_eq!(n, 0);
        assert_eq!(call!(raw, C_FindObjectsFinal(s)), CKR_OK);
        assert_eq!(
            call!(raw, C_FindObjectsInit(s, ptr::null_mut(), 1)),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            call!(raw, C_FindObjectsInit(0xdead, ptr::null_mut(), 0)),
            CKR_SESSION_HANDLE_INVALID
        );

        // Logout hides the private objects again; their handles stop working.
        assert_eq!(raw.logout(s), CKR_OK);
        assert_eq!(
            raw.attr(s, private, CKA_CLASS),
            Err(CKR_OBJECT_HANDLE_INVALID)
        );
        if t.private_cert {
            assert_eq!(raw.attr(s, cert, CKA_VALUE), Err(CKR_OBJECT_HANDLE_INVALID));
            assert_eq!(
                raw.attr(s, public, CKA_MODULUS),
                Err(CKR_OBJECT_HANDLE_INVALID)
            );
            assert_eq!(raw.find(s, &[(CKA_VALUE, der.clone())]), Ok(vec![]));
        } else {
            assert!(raw.attr(s, cert, CKA_VALUE).is_ok());
        }
        assert_eq!(call!(raw, C_CloseAllSessions(t.slot)), CKR_OK);
        assert_eq!(call!(raw, C_CloseSession(other)), CKR_OK);
    }
}
