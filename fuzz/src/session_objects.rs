//! Session objects through the C functions: a sequence of `C_CreateObject`, `C_CopyObject`,
//! `C_SetAttributeValue`, `C_DestroyObject`, `C_GetAttributeValue`, `C_GetObjectSize`,
//! searches, logins, logouts and session closes, with arbitrary templates (docs/conformance.md).
//!
//! Input: one byte per step (the call), then what that call needs (attribute types, value
//! selectors or raw values, which object).
//!
//! Invariants: no panic; only the return values the specification names for these calls; an
//! object the module says it created is readable with the class it was given; a destroyed
//! object, or one of a closed session, is gone (`CKR_OBJECT_HANDLE_INVALID`); never more than
//! the cap of session objects; a token object (`CKA_TOKEN` TRUE) is never created.

use std::ffi::c_void;
use std::ptr::null_mut;

use cryptoki_sys::*;
use jpki_pkcs11::pkcs11::session_objects::MAX_OBJECTS;

use crate::Bytes;

extern "C" {
    fn C_OpenSession(
        slot: CK_SLOT_ID,
        flags: CK_FLAGS,
        app: *mut c_void,
        notify: CK_NOTIFY,
        session: *mut CK_SESSION_HANDLE,
    ) -> CK_RV;
    fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV;
    fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV;
    fn C_Login(
        session: CK_SESSION_HANDLE,
        user: CK_USER_TYPE,
        pin: *mut u8,
        len: CK_ULONG,
    ) -> CK_RV;
    fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV;
    fn C_CreateObject(
        session: CK_SESSION_HANDLE,
        t: *mut CK_ATTRIBUTE,
        n: CK_ULONG,
        object: *mut CK_OBJECT_HANDLE,
    ) -> CK_RV;
    fn C_CopyObject(
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        t: *mut CK_ATTRIBUTE,
        n: CK_ULONG,
        new: *mut CK_OBJECT_HANDLE,
    ) -> CK_RV;
    fn C_SetAttributeValue(
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        t: *mut CK_ATTRIBUTE,
        n: CK_ULONG,
    ) -> CK_RV;
    fn C_DestroyObject(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV;
    fn C_GetObjectSize(
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        size: *mut CK_ULONG,
    ) -> CK_RV;
    fn C_GetAttributeValue(
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        t: *mut CK_ATTRIBUTE,
        n: CK_ULONG,
    ) -> CK_RV;
    fn C_FindObjectsInit(session: CK_SESSION_HANDLE, t: *mut CK_ATTRIBUTE, n: CK_ULONG) -> CK_RV;
    fn C_FindObjects(
        session: CK_SESSION_HANDLE,
        out: *mut CK_OBJECT_HANDLE,
        max: CK_ULONG,
        n: *mut CK_ULONG,
    ) -> CK_RV;
    fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV;
}

const TYPES: [CK_ATTRIBUTE_TYPE; 24] = [
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_VALUE,
    CKA_APPLICATION,
    CKA_OBJECT_ID,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_CERTIFICATE_TYPE,
    CKA_SUBJECT,
    CKA_ID,
    CKA_KEY_TYPE,
    CKA_MODULUS,
    CKA_PUBLIC_EXPONENT,
    CKA_VERIFY,
    CKA_TRUSTED,
    CKA_START_DATE,
    CKA_LOCAL,
    CKA_UNIQUE_ID,
    CKA_MODULUS_BITS,
    CKA_VENDOR_DEFINED,
    0xFFFF_FFFF,
];

/// Values that make valid objects likely: classes, types, booleans, a modulus, an exponent.
fn value_for(selector: u8) -> Vec<u8> {
    match selector % 12 {
        0 => CKO_DATA.to_ne_bytes().to_vec(),
        1 => CKO_CERTIFICATE.to_ne_bytes().to_vec(),
        2 => CKO_PUBLIC_KEY.to_ne_bytes().to_vec(),
        3 => CKO_SECRET_KEY.to_ne_bytes().to_vec(),
        4 => vec![CK_TRUE],
        5 => vec![CK_FALSE],
        6 => CKC_X_509.to_ne_bytes().to_vec(),
        7 => CKK_RSA.to_ne_bytes().to_vec(),
        8 => {
            let mut n = vec![0xC3; 256];
            n[255] |= 1;
            n
        }
        9 => vec![1, 0, 1],
        10 => b"20260101".to_vec(),
        _ => vec![0x30, 0x00],
    }
}

/// A template and the buffers it points into.
struct Template {
    values: Vec<Vec<u8>>,
    attributes: Vec<CK_ATTRIBUTE>,
}

fn template(input: &mut Bytes<'_>) -> Template {
    let n = usize::from(input.byte() % 8);
    let mut types = Vec::new();
    let mut values = Vec::new();
    for _ in 0..n {
        types.push(TYPES[usize::from(input.byte()) % TYPES.len()]);
        let mode = input.byte();
        values.push(if mode < 200 {
            value_for(mode)
        } else {
            let len = usize::from(mode - 200) % 40;
            input.take(len)
        });
    }
    let attributes = types
        .iter()
        .zip(values.iter_mut())
        .map(|(t, v)| CK_ATTRIBUTE {
            type_: *t,
            pValue: if v.is_empty() {
                null_mut()
            } else {
                v.as_mut_ptr() as *mut c_void
            },
            ulValueLen: v.len() as CK_ULONG,
        })
        .collect();
    Template { values, attributes }
}

/// The same module and card as `attribute_template` (one global module per process).
fn setup() {
    crate::attribute_template::setup();
}

const CREATE_CODES: [CK_RV; 9] = [
    CKR_OK,
    CKR_TEMPLATE_INCOMPLETE,
    CKR_TEMPLATE_INCONSISTENT,
    CKR_ATTRIBUTE_VALUE_INVALID,
    CKR_ATTRIBUTE_TYPE_INVALID,
    CKR_ATTRIBUTE_READ_ONLY,
    CKR_TOKEN_WRITE_PROTECTED,
    CKR_USER_NOT_LOGGED_IN,
    CKR_DEVICE_MEMORY,
];

fn class_of(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> Option<CK_OBJECT_CLASS> {
    let mut class: CK_OBJECT_CLASS = 0;
    let mut a = CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: &mut class as *mut _ as *mut c_void,
        ulValueLen: std::mem::size_of::<CK_OBJECT_CLASS>() as CK_ULONG,
    };
    match unsafe { C_GetAttributeValue(h, o, &mut a, 1) } {
        CKR_OK => Some(class),
        rv => {
            assert_eq!(rv, CKR_OBJECT_HANDLE_INVALID, "reading CKA_CLASS");
            None
        }
    }
}

fn is_token_object(h: CK_SESSION_HANDLE, o: CK_OBJECT_HANDLE) -> bool {
    let mut token: CK_BBOOL = CK_FALSE;
    let mut a = CK_ATTRIBUTE {
        type_: CKA_TOKEN,
        pValue: &mut token as *mut _ as *mut c_void,
        ulValueLen: 1,
    };
    let rv = unsafe { C_GetAttributeValue(h, o, &mut a, 1) };
    rv == CKR_OK && token != CK_FALSE
}

pub fn run(data: &[u8]) {
    let _only_user = crate::global_module();
    setup();
    let mut input = Bytes(data);
    let slot: CK_SLOT_ID = 0;
    let open = || {
        let mut h: CK_SESSION_HANDLE = 0;
        let rv = unsafe { C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h) };
        assert_eq!(rv, CKR_OK);
        h
    };
    let mut sessions = vec![open(), open()];
    // (session that created it, handle)
    let mut objects: Vec<(CK_SESSION_HANDLE, CK_OBJECT_HANDLE)> = Vec::new();
    let mut gone: Vec<CK_OBJECT_HANDLE> = Vec::new();
    let mut steps = 0;
    while !input.done() && steps < 64 {
        steps += 1;
        let op = input.byte();
        let h = sessions[usize::from(input.byte()) % sessions.len()];
        let pick = |input: &mut Bytes<'_>| {
            let b = input.byte();
            objects
                .get(usize::from(b) % objects.len().max(1))
                .map(|(_, o)| *o)
                .unwrap_or(CK_OBJECT_HANDLE::from(b))
        };
        match op % 9 {
            0 | 1 => {
                let mut t = template(&mut input);
                let mut o: CK_OBJECT_HANDLE = 0;
                let rv = unsafe {
                    C_CreateObject(
                        h,
                        t.attributes.as_mut_ptr(),
                        t.attributes.len() as _,
                        &mut o,
                    )
                };
                assert!(CREATE_CODES.contains(&rv), "C_CreateObject {rv:#x}");
                if rv == CKR_OK {
                    let given = t
                        .attributes
                        .iter()
                        .zip(&t.values)
                        .find(|(a, _)| a.type_ == CKA_CLASS)
                        .map(|(_, v)| v.clone());
                    let class = class_of(h, o).expect("a created object is readable");
                    assert_eq!(given, Some(class.to_ne_bytes().to_vec()), "its class");
                    assert!(!is_token_object(h, o), "never a token object");
                    objects.push((h, o));
                }
            }
            2 => {
                let o = pick(&mut input);
                let mut t = template(&mut input);
                let mut new: CK_OBJECT_HANDLE = 0;
                let rv = unsafe {
                    C_CopyObject(
                        h,
                        o,
                        t.attributes.as_mut_ptr(),
                        t.attributes.len() as _,
                        &mut new,
                    )
                };
                assert!(
                    CREATE_CODES.contains(&rv)
                        || rv == CKR_OBJECT_HANDLE_INVALID
                        || rv == CKR_ACTION_PROHIBITED,
                    "C_CopyObject {rv:#x}"
                );
                if rv == CKR_OK {
                    assert!(!is_token_object(h, new), "never a token object");
                    objects.push((h, new));
                }
            }
            3 => {
                let o = pick(&mut input);
                let mut t = template(&mut input);
                let rv = unsafe {
                    C_SetAttributeValue(h, o, t.attributes.as_mut_ptr(), t.attributes.len() as _)
                };
                assert!(
                    CREATE_CODES.contains(&rv)
                        || rv == CKR_OBJECT_HANDLE_INVALID
                        || rv == CKR_ACTION_PROHIBITED,
                    "C_SetAttributeValue {rv:#x}"
                );
            }
            4 => {
                let o = pick(&mut input);
                let rv = unsafe { C_DestroyObject(h, o) };
                assert!(
                    [
                        CKR_OK,
                        CKR_OBJECT_HANDLE_INVALID,
                        CKR_ACTION_PROHIBITED,
                        CKR_TOKEN_WRITE_PROTECTED
                    ]
                    .contains(&rv),
                    "C_DestroyObject {rv:#x}"
                );
                if rv == CKR_OK {
                    objects.retain(|(_, x)| *x != o);
                    gone.push(o);
                }
            }
            5 => {
                let o = pick(&mut input);
                let mut size: CK_ULONG = 0;
                let rv = unsafe { C_GetObjectSize(h, o, &mut size) };
                assert!(
                    rv == CKR_OK || rv == CKR_OBJECT_HANDLE_INVALID,
                    "C_GetObjectSize {rv:#x}"
                );
            }
            6 => {
                let mut t = template(&mut input);
                let rv = unsafe {
                    C_FindObjectsInit(h, t.attributes.as_mut_ptr(), t.attributes.len() as _)
                };
                assert_eq!(rv, CKR_OK, "C_FindObjectsInit");
                let mut found = [0 as CK_OBJECT_HANDLE; 300];
                let mut n: CK_ULONG = 0;
                assert_eq!(
                    unsafe { C_FindObjects(h, found.as_mut_ptr(), 300, &mut n) },
                    CKR_OK
                );
                assert_eq!(unsafe { C_FindObjectsFinal(h) }, CKR_OK);
                for o in &found[..n as usize] {
                    assert!(!gone.contains(o), "a destroyed object was found");
                }
            }
            7 => {
                if input.byte() % 2 == 0 {
                    let mut pin = b"1234".to_vec();
                    let rv = unsafe { C_Login(h, CKU_USER, pin.as_mut_ptr(), 4) };
                    assert!(
                        rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN,
                        "login {rv:#x}"
                    );
                } else {
                    let rv = unsafe { C_Logout(h) };
                    assert!(
                        rv == CKR_OK || rv == CKR_USER_NOT_LOGGED_IN,
                        "logout {rv:#x}"
                    );
                    // Private objects went with the login; the others stay.
                    objects.retain(|(s, o)| class_of(*s, *o).is_some());
                }
            }
            _ => {
                // Close one session: its objects go.
                assert_eq!(unsafe { C_CloseSession(h) }, CKR_OK);
                sessions.retain(|s| *s != h);
                let (closed, kept): (Vec<_>, Vec<_>) = objects.iter().partition(|(s, _)| *s == h);
                objects = kept;
                sessions.push(open());
                for (_, o) in closed {
                    assert_eq!(class_of(sessions[0], o), None, "object of a closed session");
                    gone.push(o);
                }
            }
        }
        assert!(objects.len() <= MAX_OBJECTS, "more objects than the cap");
    }
    let _ = unsafe { C_CloseAllSessions(slot) };
}
