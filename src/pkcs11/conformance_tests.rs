//! In-process tests of the conformance rules of docs/conformance.md at the module's level:
//! session objects (visibility, lifetime, private ones and the logout, verification with a
//! session key, no card traffic) and the operation lifecycle. The same rules are checked
//! through pcscd by `tests/conformance_*.rs` and through the C interface by `hostile.c`.

use cryptoki_sys::*;
use rsa::traits::PublicKeyParts;

use super::module::OperationKind;
use super::object::{bool_, ulong, AttrLookup};
use super::tests::{find, rig, session as open};
use super::Error;

fn data(label: &str, private: bool) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    vec![
        (CKA_CLASS, ulong(CKO_DATA)),
        (CKA_PRIVATE, bool_(private)),
        (CKA_LABEL, label.as_bytes().to_vec()),
    ]
}

#[test]
fn session_objects_live_with_their_session_and_cost_no_apdu() {
    let r = rig();
    let a = open(&r, 0);
    let a2 = open(&r, 0);
    let s = open(&r, 1);
    let before = r.sim.apdus_received();
    let o = r
        .module
        .create_object(a, &data("x", false))
        .expect("create");
    assert_eq!(r.sim.apdus_received(), before, "no card traffic");
    assert!(r.module.object(a2, o).is_ok(), "same token, other session");
    assert_eq!(
        r.module.object(s, o).err(),
        Some(Error::ObjectHandleInvalid)
    );
    let label = (CKA_LABEL, b"x".to_vec());
    assert_eq!(find(&r, a2, std::slice::from_ref(&label)), vec![o]);
    assert_eq!(
        find(&r, s, std::slice::from_ref(&label)),
        Vec::<CK_OBJECT_HANDLE>::new()
    );
    r.module.close_session(a).expect("close");
    assert_eq!(
        r.module.object(a2, o).err(),
        Some(Error::ObjectHandleInvalid)
    );
    assert!(find(&r, a2, &[label]).is_empty());
    // Token objects stay write-protected.
    let mut token = data("t", false);
    token.push((CKA_TOKEN, bool_(true)));
    assert_eq!(
        r.module.create_object(a2, &token).err(),
        Some(Error::TokenWriteProtected)
    );
}

#[test]
fn private_session_objects_end_with_the_logout() {
    let r = rig();
    let a = open(&r, 0);
    assert_eq!(
        r.module.create_object(a, &data("p", true)).err(),
        Some(Error::UserNotLoggedIn)
    );
    r.module.login(a, CKU_USER, b"1234").expect("login");
    let p = r
        .module
        .create_object(a, &data("p", true))
        .expect("private");
    let q = r
        .module
        .create_object(a, &data("q", false))
        .expect("public");
    r.module.logout(a).expect("logout");
    assert_eq!(
        r.module.object(a, p).err(),
        Some(Error::ObjectHandleInvalid)
    );
    r.module.login(a, CKU_USER, b"1234").expect("login again");
    assert_eq!(
        r.module.object(a, p).err(),
        Some(Error::ObjectHandleInvalid),
        "destroyed, not hidden"
    );
    assert!(r.module.object(a, q).is_ok());
    r.module.close_all_sessions(0).expect("close all");
    let a = open(&r, 0);
    assert_eq!(
        r.module.object(a, q).err(),
        Some(Error::ObjectHandleInvalid)
    );
}

#[test]
fn a_session_public_key_verifies_the_cards_signature() {
    let r = rig();
    let a = open(&r, 0);
    r.module.login(a, CKU_USER, b"1234").expect("login");
    let key = find(&r, a, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))])[0];
    let card_public = find(&r, a, &[(CKA_CLASS, ulong(CKO_PUBLIC_KEY))])[0];
    let modulus = match r
        .module
        .object(a, card_public)
        .expect("key")
        .attribute(CKA_MODULUS)
    {
        AttrLookup::Value(v) => v.to_vec(),
        other => panic!("{other:?}"),
    };
    let imported = r
        .module
        .create_object(
            a,
            &[
                (CKA_CLASS, ulong(CKO_PUBLIC_KEY)),
                (CKA_KEY_TYPE, ulong(CKK_RSA)),
                (CKA_MODULUS, modulus.clone()),
                (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
            ],
        )
        .expect("import");
    let imported_obj = r.module.object(a, imported).expect("imported");
    let Some((_, public)) = imported_obj.key.clone() else {
        panic!("a key object")
    };
    assert_eq!(public.n().to_bytes_be(), modulus);
    r.module
        .sign_init(a, CKM_SHA256_RSA_PKCS, key)
        .expect("sign init");
    let sig = r.module.sign(a, b"hello").expect("sign");
    r.module
        .verify_init(a, CKM_SHA256_RSA_PKCS, imported)
        .expect("verify init");
    r.module.verify(a, b"hello", &sig).expect("verifies");
    assert_eq!(
        r.module.sign_init(a, CKM_SHA256_RSA_PKCS, imported).err(),
        Some(Error::KeyTypeInconsistent)
    );
}

#[test]
fn operation_lifecycle() {
    let r = rig();
    let a = open(&r, 0);
    r.module.login(a, CKU_USER, b"1234").expect("login");
    let key = find(&r, a, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))])[0];
    // Single-part mechanism: an update is refused and ends the operation.
    r.module.sign_init(a, CKM_RSA_PKCS, key).expect("init");
    assert_eq!(
        r.module.sign_update(a, b"x").err(),
        Some(Error::FunctionNotSupported)
    );
    assert_eq!(
        r.module.sign_final(a).err(),
        Some(Error::OperationNotInitialized)
    );
    // After an update, the single-part call is refused (and ends the operation).
    r.module
        .sign_init(a, CKM_SHA256_RSA_PKCS, key)
        .expect("init");
    r.module.sign_update(a, b"x").expect("update");
    assert_eq!(
        r.module.check_single_part(a, OperationKind::Sign).err(),
        Some(Error::OperationActive)
    );
    assert_eq!(r.module.sign(a, b"x").err(), Some(Error::OperationActive));
    assert_eq!(
        r.module.sign_final(a).err(),
        Some(Error::OperationNotInitialized)
    );
    // end_operation (the ffi layer's answer to an argument error) ends it.
    r.module.digest_init(a, CKM_SHA256).expect("digest init");
    r.module.end_operation(a, OperationKind::Digest);
    r.module
        .digest_init(a, CKM_SHA256)
        .expect("ended, so a new one starts");
    r.module.digest_update(a, b"abc").expect("update");
    assert_eq!(
        r.module.digest(a, b"abc").err(),
        Some(Error::OperationActive)
    );
}
