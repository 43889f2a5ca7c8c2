//! Templates through the C functions: `C_FindObjectsInit` with an arbitrary search template,
//! then `C_GetAttributeValue` on what it found (and on a handle that may not exist) with an
//! arbitrary template of types and buffer sizes.
//!
//! The module is initialised once per process with an in-process reader holding the virtual
//! card (the C functions reach it through the global module of `pkcs11::module`).
//!
//! Input: a flags byte (bit 0: log in first; bit 1: signature token), the search template, the
//! read template (each: a count byte, then per attribute a type and a value or buffer size).
//!
//! Invariants: no panic; only the return values the specification names for these calls; no
//! byte written past a buffer (16 canary bytes after each); a found object has every searched
//! attribute with exactly the searched value; `ulValueLen` is the value's length, or
//! `CK_UNAVAILABLE_INFORMATION` with the matching error.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::OnceLock;

use cryptoki_sys::*;
use jpki_pkcs11::pkcs11::module;
use jpki_virtual_card::Profile;

use crate::{readers_with, virtual_card, Bytes};

extern "C" {
    fn C_OpenSession(
        slot: CK_SLOT_ID,
        flags: CK_FLAGS,
        app: *mut c_void,
        notify: CK_NOTIFY,
        session: *mut CK_SESSION_HANDLE,
    ) -> CK_RV;
    fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV;
    fn C_Login(
        session: CK_SESSION_HANDLE,
        user: CK_USER_TYPE,
        pin: *mut u8,
        len: CK_ULONG,
    ) -> CK_RV;
    fn C_FindObjectsInit(session: CK_SESSION_HANDLE, t: *mut CK_ATTRIBUTE, n: CK_ULONG) -> CK_RV;
    fn C_FindObjects(
        session: CK_SESSION_HANDLE,
        out: *mut CK_OBJECT_HANDLE,
        max: CK_ULONG,
        n: *mut CK_ULONG,
    ) -> CK_RV;
    fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV;
    fn C_GetAttributeValue(
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        t: *mut CK_ATTRIBUTE,
        n: CK_ULONG,
    ) -> CK_RV;
}

/// Attribute types the objects have (and a few they do not), picked by most type bytes.
const TYPES: [CK_ATTRIBUTE_TYPE; 40] = [
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_VALUE,
    CKA_CERTIFICATE_TYPE,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_SUBJECT,
    CKA_ID,
    CKA_KEY_TYPE,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_DECRYPT,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_COEFFICIENT,
    CKA_SENSITIVE,
    CKA_EXTRACTABLE,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_PUBLIC_KEY_INFO,
    CKA_CERTIFICATE_CATEGORY,
    CKA_CHECK_VALUE,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_TRUSTED,
    CKA_PROFILE_ID,
    CKA_MODIFIABLE,
    CKA_LOCAL,
    CKA_KEY_GEN_MECHANISM,
    CKA_URL,
    CKA_NAME_HASH_ALGORITHM,
    CKA_VENDOR_DEFINED,
    0xCE53_4353,
    0xFFFF_FFFF,
    0x1234_5678,
];

/// Values that match something (ULONG classes, booleans) so searches find objects.
fn value_for(selector: u8) -> Vec<u8> {
    match selector % 8 {
        0 => CKO_CERTIFICATE.to_ne_bytes().to_vec(),
        1 => CKO_PRIVATE_KEY.to_ne_bytes().to_vec(),
        2 => CKO_PUBLIC_KEY.to_ne_bytes().to_vec(),
        3 => CKO_PROFILE.to_ne_bytes().to_vec(),
        4 => vec![CK_TRUE],
        5 => vec![CK_FALSE],
        6 => vec![0x01],
        _ => CKK_RSA.to_ne_bytes().to_vec(),
    }
}

impl Bytes<'_> {
    fn attribute_type(&mut self) -> CK_ATTRIBUTE_TYPE {
        let b = self.byte();
        if b < 0xF0 {
            TYPES[usize::from(b) % TYPES.len()]
        } else {
            let raw = self.take(4);
            let mut word = [0u8; 4];
            word[..raw.len()].copy_from_slice(&raw);
            CK_ATTRIBUTE_TYPE::from(u32::from_le_bytes(word))
        }
    }
}

pub(crate) fn setup() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let vc = virtual_card(Profile::Conservative);
        let (readers, _) = readers_with(&vc);
        module::initialize(move || Box::new(readers)).expect("initialize");
    });
}

/// A search template: its attributes and the value buffers they point into.
struct Template {
    values: Vec<Option<Vec<u8>>>,
    attributes: Vec<CK_ATTRIBUTE>,
}

fn search_template(input: &mut Bytes<'_>) -> Template {
    let n = usize::from(input.byte() % 6);
    let mut values = Vec::new();
    let mut types = Vec::new();
    for _ in 0..n {
        types.push(input.attribute_type());
        let mode = input.byte();
        values.push(match mode {
            0..=127 => Some(value_for(mode)),
            128..=250 => {
                let len = usize::from(mode - 128) % 64;
                Some(input.take(len))
            }
            _ => None, // NULL pValue with length 0: an empty value
        });
    }
    let attributes = types
        .iter()
        .zip(values.iter_mut())
        .map(|(t, v)| CK_ATTRIBUTE {
            type_: *t,
            pValue: v
                .as_mut()
                .map(|v| v.as_mut_ptr() as *mut c_void)
                .unwrap_or(null_mut()),
            ulValueLen: v.as_ref().map(|v| v.len()).unwrap_or(0) as CK_ULONG,
        })
        .collect();
    Template { values, attributes }
}

const CANARY: u8 = 0xCC;
const CANARY_LEN: usize = 16;

pub fn run(data: &[u8]) {
    let _only_user = crate::global_module();
    setup();
    let mut input = Bytes(data);
    let flags = input.byte();
    let slot: CK_SLOT_ID = CK_SLOT_ID::from(flags >> 1 & 1);
    let mut h: CK_SESSION_HANDLE = 0;
    let rv = unsafe { C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h) };
    assert_eq!(rv, CKR_OK);
    if flags & 1 != 0 {
        let mut pin = if slot == 0 {
            b"1234".to_vec()
        } else {
            b"ABC123".to_vec()
        };
        let rv = unsafe { C_Login(h, CKU_USER, pin.as_mut_ptr(), pin.len() as CK_ULONG) };
        assert!(
            rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN,
            "login {rv:#x}"
        );
    }

    // Search.
    let mut search = search_template(&mut input);
    let rv = unsafe {
        C_FindObjectsInit(
            h,
            search.attributes.as_mut_ptr(),
            search.attributes.len() as CK_ULONG,
        )
    };
    assert_eq!(rv, CKR_OK, "C_FindObjectsInit");
    let mut found = [0 as CK_OBJECT_HANDLE; 32];
    let mut n: CK_ULONG = 0;
    assert_eq!(
        unsafe { C_FindObjects(h, found.as_mut_ptr(), 32, &mut n) },
        CKR_OK
    );
    assert_eq!(unsafe { C_FindObjectsFinal(h) }, CKR_OK);
    let found = &found[..n as usize];

    // Every found object has each searched value exactly.
    for &object in found {
        for (a, value) in search.attributes.iter().zip(&search.values) {
            let want = value.clone().unwrap_or_default();
            let mut buf = vec![0u8; want.len() + 1];
            let mut probe = CK_ATTRIBUTE {
                type_: a.type_,
                pValue: buf.as_mut_ptr() as *mut c_void,
                ulValueLen: buf.len() as CK_ULONG,
            };
            let rv = unsafe { C_GetAttributeValue(h, object, &mut probe, 1) };
            assert_eq!(rv, CKR_OK, "a found object lacks a searched attribute");
            assert_eq!(&buf[..probe.ulValueLen as usize], &want[..]);
        }
    }

    // Read: arbitrary types and buffer sizes, on a found object or an arbitrary handle.
    let object = match found.first() {
        Some(o) if input.byte() < 0xE0 => *o,
        _ => CK_OBJECT_HANDLE::from(input.byte()),
    };
    let n = usize::from(input.byte() % 12);
    let mut buffers: Vec<Option<Vec<u8>>> = Vec::new();
    let mut claimed = Vec::new();
    let mut types = Vec::new();
    for _ in 0..n {
        types.push(input.attribute_type());
        let size = input.byte();
        if size == 0xFF {
            buffers.push(None);
            claimed.push(0);
        } else {
            let len = usize::from(size) * 8;
            buffers.push(Some(vec![CANARY; len + CANARY_LEN]));
            claimed.push(len);
        }
    }
    let mut template: Vec<CK_ATTRIBUTE> = types
        .iter()
        .zip(buffers.iter_mut())
        .zip(&claimed)
        .map(|((t, b), len)| CK_ATTRIBUTE {
            type_: *t,
            pValue: b
                .as_mut()
                .map(|b| b.as_mut_ptr() as *mut c_void)
                .unwrap_or(null_mut()),
            ulValueLen: *len as CK_ULONG,
        })
        .collect();
    let rv = unsafe {
        C_GetAttributeValue(h, object, template.as_mut_ptr(), template.len() as CK_ULONG)
    };
    assert!(
        [
            CKR_OK,
            CKR_ATTRIBUTE_SENSITIVE,
            CKR_ATTRIBUTE_TYPE_INVALID,
            CKR_BUFFER_TOO_SMALL,
            CKR_OBJECT_HANDLE_INVALID,
        ]
        .contains(&rv),
        "C_GetAttributeValue answered {rv:#x}"
    );
    if rv != CKR_OBJECT_HANDLE_INVALID {
        let mut unavailable = false;
        for ((a, b), len) in template.iter().zip(&buffers).zip(&claimed) {
            if let Some(b) = b {
                assert!(
                    b[*len..].iter().all(|c| *c == CANARY),
                    "written past a buffer of {len} bytes"
                );
                if a.ulValueLen != CK_UNAVAILABLE_INFORMATION {
                    assert!(a.ulValueLen as usize <= *len, "length beyond the buffer");
                }
            }
            unavailable |= a.ulValueLen == CK_UNAVAILABLE_INFORMATION;
        }
        assert_eq!(
            rv == CKR_OK,
            !unavailable,
            "return value vs unavailable lengths"
        );
    }
    let _ = unsafe { C_CloseAllSessions(slot) };
}
