//! Session objects (issue 12, docs/conformance.md): what a generic client may create on the
//! read-only card's tokens — data objects, X.509 certificates, RSA public keys — held in the
//! module's memory, with the specification's template checks, visibility and lifetime rules,
//! and hard caps. Run through the real PC/SC stack:
//! ```text
//! cargo build --lib && tests/harness/with-card.sh --profile extended -- \
//!     cargo test --test conformance_objects -- --include-ignored --test-threads=1
//! ```

#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ptr;
use std::time::Duration;

use common::*;
use cryptoki_sys::*;

// The harness's card: these tests are `#[ignore]`d, and outside the harness `start` fails.
use common::tokens::start;

type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

fn attrs(t: &Template) -> Vec<CK_ATTRIBUTE> {
    t.iter()
        .map(|(ty, v)| CK_ATTRIBUTE {
            type_: *ty,
            pValue: if v.is_empty() {
                ptr::null_mut()
            } else {
                v.as_ptr() as *mut _
            },
            ulValueLen: v.len() as CK_ULONG,
        })
        .collect()
}

fn create(raw: &Raw, s: CK_SESSION_HANDLE, t: &Template) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    let mut a = attrs(t);
    let mut h: CK_OBJECT_HANDLE = 0;
    match call!(
        raw,
        C_CreateObject(s, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h)
    ) {
        CKR_OK => Ok(h),
        rv => Err(rv),
    }
}

fn copy(
    raw: &Raw,
    s: CK_SESSION_HANDLE,
    o: CK_OBJECT_HANDLE,
    t: &Template,
) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    let mut a = attrs(t);
    let mut h: CK_OBJECT_HANDLE = 0;
    match call!(
        raw,
        C_CopyObject(s, o, a.as_mut_ptr(), a.len() as CK_ULONG, &mut h)
    ) {
        CKR_OK => Ok(h),
        rv => Err(rv),
    }
}

fn set(raw: &Raw, s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE, t: &Template) -> CK_RV {
    let mut a = attrs(t);
    call!(
        raw,
        C_SetAttributeValue(s, o, a.as_mut_ptr(), a.len() as CK_ULONG)
    )
}

fn destroy(raw: &Raw, s: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> CK_RV {
    call!(raw, C_DestroyObject(s, o))
}

fn data_object(label: &str, private: bool) -> Template {
    vec![
        (CKA_CLASS, ulong(CKO_DATA)),
        (CKA_TOKEN, bbool(false)),
        (CKA_PRIVATE, bbool(private)),
        (CKA_LABEL, label.as_bytes().to_vec()),
        (CKA_APPLICATION, b"conformance".to_vec()),
        (CKA_VALUE, b"some bytes".to_vec()),
    ]
}

/// The authentication certificate's DER, read through the module.
fn auth_cert(raw: &Raw, s: CK_SESSION_HANDLE) -> Vec<u8> {
    let certs = raw
        .find(
            s,
            &[
                (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                (CKA_ID, vec![0x01]),
                (CKA_TOKEN, bbool(true)),
            ],
        )
        .expect("find");
    assert_eq!(certs.len(), 1);
    raw.attr(s, certs[0], CKA_VALUE).expect("CKA_VALUE")
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn data_object_create_read_set_copy_destroy() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    let other = raw.open_ro(AUTH_SLOT);
    let sibling = raw.open_ro(SIGN_SLOT);
    let before = stats().apdus();

    // A read-only public session on a write-protected token may create a session object.
    let o = create(raw, s, &data_object("mine", false)).expect("C_CreateObject (session)");
    assert_eq!(raw.attr(s, o, CKA_VALUE), Ok(b"some bytes".to_vec()));
    assert_eq!(raw.attr(s, o, CKA_LABEL), Ok(b"mine".to_vec()));
    assert_eq!(raw.attr_ulong(s, o, CKA_CLASS), CKO_DATA);
    assert!(!raw.attr_bool(s, o, CKA_TOKEN));
    assert!(!raw.attr_bool(s, o, CKA_PRIVATE));
    assert!(raw.attr_bool(s, o, CKA_MODIFIABLE));
    assert!(raw.attr_bool(s, o, CKA_DESTROYABLE));
    assert_eq!(raw.attr(s, o, CKA_OBJECT_ID), Ok(vec![]), "default: empty");
    assert_eq!(
        raw.attr(s, o, CKA_MODULUS),
        Err(CKR_ATTRIBUTE_TYPE_INVALID),
        "a data object has no modulus"
    );
    let mut size: CK_ULONG = 0;
    assert_eq!(call!(raw, C_GetObjectSize(s, o, &mut size)), CKR_OK);
    assert!(size >= 10, "size {size}");
    assert_eq!(
        stats().apdus(),
        before,
        "session objects cost no card traffic"
    );

    // Visible to every session of the same token, not to the other token's.
    let template = vec![(CKA_CLASS, ulong(CKO_DATA)), (CKA_LABEL, b"mine".to_vec())];
    assert_eq!(raw.find(s, &template), Ok(vec![o]));
    assert_eq!(raw.find(other, &template), Ok(vec![o]));
    assert_eq!(raw.find(sibling, &template), Ok(vec![]));
    assert_eq!(
        raw.attr(sibling, o, CKA_LABEL),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
    assert_eq!(
        raw.find(s, &[(CKA_TOKEN, bbool(false))]),
        Ok(vec![o]),
        "the only session object"
    );
    assert!(
        !raw.find(s, &[(CKA_TOKEN, bbool(true))])
            .expect("find")
            .contains(&o),
        "not a token object"
    );

    // Attributes that may change, and those that may not.
    assert_eq!(
        set(raw, s, o, &vec![(CKA_LABEL, b"renamed".to_vec())]),
        CKR_OK
    );
    assert_eq!(raw.attr(other, o, CKA_LABEL), Ok(b"renamed".to_vec()));
    assert_eq!(
        set(raw, s, o, &vec![(CKA_CLASS, ulong(CKO_CERTIFICATE))]),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        set(raw, s, o, &vec![(CKA_TOKEN, bbool(true))]),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        set(
            raw,
            s,
            o,
            &vec![(CKA_LABEL, vec![]), (CKA_MODULUS, vec![1])]
        ),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
    assert_eq!(
        raw.attr(s, o, CKA_LABEL),
        Ok(b"renamed".to_vec()),
        "unchanged"
    );

    // Copy: a new object with the template's changes, the original as it was.
    let c = copy(raw, s, o, &vec![(CKA_LABEL, b"copy".to_vec())]).expect("C_CopyObject");
    assert_ne!(c, o);
    assert_eq!(raw.attr(s, c, CKA_LABEL), Ok(b"copy".to_vec()));
    assert_eq!(raw.attr(s, c, CKA_VALUE), Ok(b"some bytes".to_vec()));
    assert_eq!(raw.attr(s, o, CKA_LABEL), Ok(b"renamed".to_vec()));
    assert_eq!(
        copy(raw, s, o, &vec![(CKA_TOKEN, bbool(true))]),
        Err(CKR_TOKEN_WRITE_PROTECTED),
        "a copy as token object"
    );
    assert_eq!(
        copy(raw, s, o, &vec![(CKA_CLASS, ulong(CKO_CERTIFICATE))]),
        Err(CKR_ATTRIBUTE_READ_ONLY)
    );

    // A non-modifiable, non-copyable object.
    let mut fixed_t = data_object("fixed", false);
    fixed_t.push((CKA_MODIFIABLE, bbool(false)));
    fixed_t.push((CKA_COPYABLE, bbool(false)));
    let fixed = create(raw, s, &fixed_t).expect("create fixed");
    assert_eq!(
        set(raw, s, fixed, &vec![(CKA_LABEL, b"x".to_vec())]),
        CKR_ACTION_PROHIBITED
    );
    assert_eq!(copy(raw, s, fixed, &vec![]), Err(CKR_ACTION_PROHIBITED));

    // Destroy: gone for every session.
    assert_eq!(destroy(raw, other, c), CKR_OK);
    assert_eq!(raw.attr(s, c, CKA_LABEL), Err(CKR_OBJECT_HANDLE_INVALID));
    assert_eq!(destroy(raw, s, c), CKR_OBJECT_HANDLE_INVALID);

    // The card's own objects stay write-protected.
    let ca = raw
        .find(
            s,
            &[(CKA_CLASS, ulong(CKO_CERTIFICATE)), (CKA_ID, vec![0x03])],
        )
        .expect("find CA")[0];
    assert_eq!(destroy(raw, s, ca), CKR_TOKEN_WRITE_PROTECTED);
    assert_eq!(
        set(raw, s, ca, &vec![(CKA_LABEL, b"x".to_vec())]),
        CKR_TOKEN_WRITE_PROTECTED
    );
    assert_eq!(
        copy(raw, s, ca, &vec![(CKA_LABEL, b"x".to_vec())]),
        Err(CKR_TOKEN_WRITE_PROTECTED)
    );

    // Objects die with the session that created them.
    assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    assert_eq!(
        raw.attr(other, o, CKA_LABEL),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
    assert_eq!(raw.find(other, &template), Ok(vec![]));
    assert_eq!(raw.find(other, &[(CKA_TOKEN, bbool(false))]), Ok(vec![]));
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn token_objects_refused_template_errors_with_the_specified_codes() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    let rw = raw
        .open(AUTH_SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION)
        .expect("rw");
    for h in [s, rw] {
        let mut t = data_object("token", false);
        t[1] = (CKA_TOKEN, bbool(true));
        assert_eq!(create(raw, h, &t), Err(CKR_TOKEN_WRITE_PROTECTED));
    }
    let cases: Vec<(&str, Template, CK_RV)> = vec![
        (
            "no class",
            vec![(CKA_LABEL, b"x".to_vec())],
            CKR_TEMPLATE_INCOMPLETE,
        ),
        (
            "class of the wrong size",
            vec![(CKA_CLASS, vec![1, 2, 3])],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            "bool of the wrong size",
            vec![(CKA_CLASS, ulong(CKO_DATA)), (CKA_TOKEN, vec![0, 0])],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            "secret key",
            vec![
                (CKA_CLASS, ulong(CKO_SECRET_KEY)),
                (CKA_KEY_TYPE, ulong(CKK_AES)),
            ],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            "private key",
            vec![
                (CKA_CLASS, ulong(CKO_PRIVATE_KEY)),
                (CKA_KEY_TYPE, ulong(CKK_RSA)),
            ],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            "class twice, different",
            vec![
                (CKA_CLASS, ulong(CKO_DATA)),
                (CKA_CLASS, ulong(CKO_CERTIFICATE)),
            ],
            CKR_TEMPLATE_INCONSISTENT,
        ),
        (
            "attribute of another class",
            vec![(CKA_CLASS, ulong(CKO_DATA)), (CKA_MODULUS, vec![1, 2])],
            CKR_ATTRIBUTE_TYPE_INVALID,
        ),
        (
            "unknown attribute",
            vec![
                (CKA_CLASS, ulong(CKO_DATA)),
                (CKA_VENDOR_DEFINED | 7, vec![1]),
            ],
            CKR_ATTRIBUTE_TYPE_INVALID,
        ),
        (
            "CKA_UNIQUE_ID is the token's",
            vec![(CKA_CLASS, ulong(CKO_DATA)), (CKA_UNIQUE_ID, b"x".to_vec())],
            CKR_ATTRIBUTE_READ_ONLY,
        ),
        (
            "certificate without type",
            vec![(CKA_CLASS, ulong(CKO_CERTIFICATE)), (CKA_VALUE, vec![0x30])],
            CKR_TEMPLATE_INCOMPLETE,
        ),
        (
            "X.509 certificate without value",
            vec![
                (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                (CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)),
                (CKA_SUBJECT, vec![0x30, 0]),
            ],
            CKR_TEMPLATE_INCOMPLETE,
        ),
        (
            "WTLS certificate",
            vec![
                (CKA_CLASS, ulong(CKO_CERTIFICATE)),
                (CKA_CERTIFICATE_TYPE, ulong(CKC_WTLS)),
                (CKA_VALUE, vec![1]),
            ],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            "RSA public key without modulus",
            vec![
                (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ulong(CKK_RSA)),
                (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
            ],
            CKR_TEMPLATE_INCOMPLETE,
        ),
        (
            "public key without key type",
            vec![
                (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                (CKA_MODULUS, vec![0xC1; 256]),
            ],
            CKR_TEMPLATE_INCOMPLETE,
        ),
        (
            "EC public key",
            vec![
                (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ulong(CKK_EC)),
            ],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
        (
            "RSA public key, modulus not a key",
            vec![
                (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ulong(CKK_RSA)),
                (CKA_MODULUS, vec![0; 4]),
                (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
            ],
            CKR_ATTRIBUTE_VALUE_INVALID,
        ),
    ];
    for (what, t, want) in cases {
        assert_eq!(create(raw, s, &t), Err(want), "{what}");
    }
    // NULL arguments come first.
    let mut h: CK_OBJECT_HANDLE = 0;
    assert_eq!(
        call!(raw, C_CreateObject(s, ptr::null_mut(), 1, &mut h)),
        CKR_ARGUMENTS_BAD
    );
    let mut a = attrs(&data_object("x", false));
    assert_eq!(
        call!(
            raw,
            C_CreateObject(s, a.as_mut_ptr(), a.len() as CK_ULONG, ptr::null_mut())
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        raw.find(s, &[(CKA_TOKEN, bbool(false))]),
        Ok(vec![]),
        "nothing was created"
    );
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn private_session_objects_need_login_and_die_with_logout() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(
        create(raw, s, &data_object("secret", true)),
        Err(CKR_USER_NOT_LOGGED_IN)
    );
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    let p = create(raw, s, &data_object("secret", true)).expect("private, logged in");
    let public = create(raw, s, &data_object("open", false)).expect("public");
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ulong(CKO_DATA))])
            .map(|v| v.len()),
        Ok(2)
    );
    assert_eq!(raw.logout(s), CKR_OK);
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ulong(CKO_DATA))]),
        Ok(vec![public])
    );
    assert_eq!(raw.attr(s, p, CKA_VALUE), Err(CKR_OBJECT_HANDLE_INVALID));
    // Destroyed, not only hidden: the handle stays invalid after a new login.
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    assert_eq!(raw.attr(s, p, CKA_VALUE), Err(CKR_OBJECT_HANDLE_INVALID));
    assert_eq!(
        raw.find(s, &[(CKA_CLASS, ulong(CKO_DATA))]),
        Ok(vec![public])
    );
    assert_eq!(raw.logout(s), CKR_OK);
    // C_CloseAllSessions ends every session object of the slot.
    assert_eq!(call!(raw, C_CloseAllSessions(AUTH_SLOT)), CKR_OK);
    let s2 = raw.open_ro(AUTH_SLOT);
    assert_eq!(
        raw.attr(s2, public, CKA_LABEL),
        Err(CKR_OBJECT_HANDLE_INVALID)
    );
    assert_eq!(raw.find(s2, &[(CKA_CLASS, ulong(CKO_DATA))]), Ok(vec![]));
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn rsa_public_key_and_certificate_session_objects_verify() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    let der = auth_cert(raw, s);
    let public = cert_public_key(&der);
    use rsa::traits::PublicKeyParts;
    let key = create(
        raw,
        s,
        &vec![
            (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
            (CKA_KEY_TYPE, ulong(CKK_RSA)),
            (CKA_TOKEN, bbool(false)),
            (CKA_VERIFY, bbool(true)),
            (CKA_LABEL, b"imported".to_vec()),
            (CKA_MODULUS, public.n().to_bytes_be()),
            (CKA_PUBLIC_EXPONENT, public.e().to_bytes_be()),
        ],
    )
    .expect("RSA public key session object");
    assert_eq!(raw.attr_ulong(s, key, CKA_MODULUS_BITS), 2048);
    assert!(!raw.attr_bool(s, key, CKA_LOCAL));
    let cert = create(
        raw,
        s,
        &vec![
            (CKA_CLASS, ulong(CKO_CERTIFICATE)),
            (CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)),
            (CKA_SUBJECT, vec![0x30, 0x00]),
            (CKA_VALUE, der.clone()),
            (CKA_ID, vec![0x42]),
        ],
    )
    .expect("certificate session object");
    assert_eq!(raw.attr(s, cert, CKA_VALUE), Ok(der));
    assert_eq!(
        set(raw, s, cert, &vec![(CKA_VALUE, vec![0x30])]),
        CKR_ATTRIBUTE_READ_ONLY,
        "a certificate's value cannot change"
    );

    // Sign on the card, verify with the session key.
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    let priv_key = raw
        .find(s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))])
        .expect("find")[0];
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, priv_key), CKR_OK);
    let data = b"verified with a session object";
    let sig = raw.sign(s, data).expect("sign");
    assert_eq!(raw.logout(s), CKR_OK);
    assert_eq!(raw.verify_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert_eq!(
        call!(
            raw,
            C_Verify(
                s,
                data.as_ptr() as *mut _,
                data.len() as CK_ULONG,
                sig.as_ptr() as *mut _,
                sig.len() as CK_ULONG
            )
        ),
        CKR_OK
    );
    let mut bad = sig.clone();
    bad[10] ^= 1;
    assert_eq!(raw.verify_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert_eq!(
        call!(
            raw,
            C_Verify(
                s,
                data.as_ptr() as *mut _,
                data.len() as CK_ULONG,
                bad.as_mut_ptr(),
                bad.len() as CK_ULONG
            )
        ),
        CKR_SIGNATURE_INVALID
    );
    // A key without CKA_VERIFY cannot verify; a data object is no key; no signing with it.
    let no_verify = copy(raw, s, key, &vec![(CKA_VERIFY, bbool(false))]).expect("copy");
    assert_eq!(
        raw.verify_init(s, CKM_SHA256_RSA_PKCS, no_verify),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    let d = create(raw, s, &data_object("d", false)).expect("data");
    assert_eq!(
        raw.verify_init(s, CKM_SHA256_RSA_PKCS, d),
        CKR_KEY_HANDLE_INVALID
    );
    assert_eq!(
        raw.sign_init(s, CKM_SHA256_RSA_PKCS, key),
        CKR_KEY_TYPE_INCONSISTENT
    );
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn caps_bound_what_a_caller_can_store() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(SIGN_SLOT);
    // One object over 64 KiB of values.
    let mut big = data_object("big", false);
    big[5] = (CKA_VALUE, vec![7; 64 * 1024 + 1]);
    assert_eq!(create(raw, s, &big), Err(CKR_DEVICE_MEMORY));
    // 256 objects, then no more.
    let mut made = Vec::new();
    for i in 0..256 {
        made.push(create(raw, s, &data_object(&format!("n{i}"), false)).expect("within cap"));
    }
    assert_eq!(
        create(raw, s, &data_object("one too many", false)),
        Err(CKR_DEVICE_MEMORY)
    );
    assert_eq!(copy(raw, s, made[0], &vec![]), Err(CKR_DEVICE_MEMORY));
    assert_eq!(destroy(raw, s, made[0]), CKR_OK);
    create(raw, s, &data_object("room again", false)).expect("after a destroy");
    // Closing the session frees everything.
    assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    let s = raw.open_ro(SIGN_SLOT);
    create(raw, s, &data_object("fresh", false)).expect("after the close");
    // 4 MiB in all: 64 objects of 64 KiB fit, the 65th does not.
    let mut full = data_object("full", false);
    full[5] = (CKA_VALUE, vec![1; 64 * 1024 - 64]);
    let mut n = 0;
    while create(raw, s, &full).is_ok() {
        n += 1;
        assert!(n <= 64, "more than 4 MiB accepted");
    }
    assert!(n >= 62, "only {n} large objects fit");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn session_objects_end_with_card_removal() {
    let (_g, ctx) = start();
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    let o = create(raw, s, &data_object("gone", false)).expect("create");
    ctl("remove");
    wait_pcsc_card(false);
    let rv = raw.attr(s, o, CKA_LABEL).err();
    assert!(
        rv == Some(CKR_DEVICE_REMOVED) || rv == Some(CKR_SESSION_HANDLE_INVALID),
        "{rv:x?}"
    );
    ctl("insert");
    wait_pcsc_card(true);
    retry("token back", Duration::from_secs(10), || {
        raw.open(AUTH_SLOT, CKF_SERIAL_SESSION).ok()
    });
    let s2 = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.attr(s2, o, CKA_LABEL), Err(CKR_OBJECT_HANDLE_INVALID));
    assert_eq!(raw.find(s2, &[(CKA_TOKEN, bbool(false))]), Ok(vec![]));
}
