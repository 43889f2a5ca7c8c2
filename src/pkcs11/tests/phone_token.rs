//! The smartphone's token (phone.rs) in process: identity fixed before login, the
//! authentication certificate private, no CKP_PUBLIC_CERTIFICATES_TOKEN, signing with both keys.

use super::*;
use jpki_virtual_card::Token;

fn phone_rig() -> Rig {
    let r = rig();
    r.vc.lock().set_token(Token::Phone);
    r
}

fn profiles(r: &Rig, h: CK_SESSION_HANDLE) -> Vec<Vec<u8>> {
    find(r, h, &[class(CKO_PROFILE)])
        .into_iter()
        .map(|o| attr(r, h, o, CKA_PROFILE_ID))
        .collect()
}

#[test]
fn phone_identity_is_stable_and_auth_objects_private_until_login() {
    let r = phone_rig();
    let before = [
        r.module.token_info(0).unwrap(),
        r.module.token_info(1).unwrap(),
    ];
    let serial = r.vc.lock().state().token_serial.trim().to_string();
    assert_eq!(before[0].token.serial, serial, "serial from EF 0006");
    assert!(before[0].token.label.starts_with("JPKI Auth "));
    let a = session(&r, 0);
    assert!(!profiles(&r, a).contains(&ulong(CKP_PUBLIC_CERTIFICATES_TOKEN)));
    assert!(profiles(&r, a).contains(&ulong(CKP_AUTHENTICATION_TOKEN)));
    assert!(find(&r, a, &[class(CKO_CERTIFICATE), (CKA_ID, vec![1])]).is_empty());
    assert!(find(&r, a, &[class(CKO_PUBLIC_KEY)]).is_empty());
    assert_eq!(
        find(&r, a, &[class(CKO_CERTIFICATE), (CKA_ID, vec![3])]).len(),
        1,
        "CA public"
    );

    r.module.login(a, CKU_USER, AUTH_PIN).unwrap();
    let certs = find(&r, a, &[class(CKO_CERTIFICATE), (CKA_ID, vec![1])]);
    assert_eq!(certs.len(), 1, "readable after login");
    assert_eq!(attr(&r, a, certs[0], CKA_PRIVATE), vec![CK_TRUE]);
    assert_eq!(find(&r, a, &[class(CKO_PUBLIC_KEY)]).len(), 1);
    let after = [
        r.module.token_info(0).unwrap(),
        r.module.token_info(1).unwrap(),
    ];
    for (b, a) in before.iter().zip(after.iter()) {
        assert_eq!(
            (&b.token.label, &b.token.serial),
            (&a.token.label, &a.token.serial)
        );
    }

    // Both keys sign.
    for (slot, session, pin, id) in [(0, a, AUTH_PIN, 1u8), (1, session(&r, 1), SIGN_PIN, 2)] {
        if slot == 1 {
            r.module.login(session, CKU_USER, pin).unwrap();
        }
        let key = find(&r, session, &[class(CKO_PRIVATE_KEY), (CKA_ID, vec![id])]);
        assert_eq!(key.len(), 1, "slot {slot}");
        r.module
            .sign_init(session, CKM_SHA256_RSA_PKCS, key[0])
            .unwrap();
        assert_eq!(r.module.sign(session, b"data").unwrap().len(), 256);
    }
}

#[test]
fn a_card_keeps_its_public_certificates_profile() {
    let r = rig();
    r.module.token_info(0).unwrap();
    let a = session(&r, 0);
    assert!(profiles(&r, a).contains(&ulong(CKP_PUBLIC_CERTIFICATES_TOKEN)));
    assert_eq!(
        find(&r, a, &[class(CKO_CERTIFICATE), (CKA_ID, vec![1])]).len(),
        1
    );
}
