//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_cryptoki -- --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_cryptoki -- --test-threads=1
//! ```
//! `JPKI_MODULE=target/release/libjpki_pkcs11.so` tests the release build instead.
//!
//! Every test leaves the card as it found it: inserted, PIN counters full, logged out. Locking
//! PINs is done in `tests/pkcs11_pin_lock.rs` (a separate harness run).

mod common;

use std::collections::BTreeSet;
use std::ptr;
use std::time::{Duration, Instant};

use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys::*;
use der::{Decode, Encode};
use sha2::Digest;

const SIGN_MECHANISMS: [CK_MECHANISM_TYPE; 6] = [
    CKM_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
];
const DIGEST_MECHANISMS: [CK_MECHANISM_TYPE; 5] =
    [CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512];

/// NSS vendor classes (nss `pkcs11n.h`: CKO_NSS = CKO_VENDOR_DEFINED | 0x4E534350).
const CKO_NSS_CRL: CK_OBJECT_CLASS = 0xCE53_4351;
const CKO_NSS_TRUST: CK_OBJECT_CLASS = 0xCE53_4353;
const CKO_NSS_BUILTIN_ROOT_LIST: CK_OBJECT_CLASS = 0xCE53_4354;
const VENDOR_ATTRIBUTE: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x1234;

/// A search template: (type, encoded value) pairs.
type Template = Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>;

/// What differs between the two tokens of a card.
struct Token {
    slot: CK_SLOT_ID,
    pin: &'static str,
    wrong: &'static str,
    max_tries: u64,
    id: u8,
    ca_id: u8,
    label: &'static str,
    ca_label: &'static str,
    label_prefix: &'static str,
    /// Whether the user certificate and public key are private objects.
    private_cert: bool,
    pin_len: (CK_ULONG, CK_ULONG),
}

const AUTH: Token = Token {
    slot: AUTH_SLOT,
    pin: AUTH_PIN,
    wrong: "9999",
    max_tries: 3,
    id: 0x01,
    ca_id: 0x03,
    label: "JPKI User Authentication",
    ca_label: "JPKI User Authentication CA",
    label_prefix: "JPKI Auth",
    private_cert: false,
    pin_len: (4, 4),
};

const SIGN: Token = Token {
    slot: SIGN_SLOT,
    pin: SIGN_PASSWORD,
    wrong: "WRONG9",
    max_tries: 5,
    id: 0x02,
    ca_id: 0x04,
    label: "JPKI Digital Signature",
    ca_label: "JPKI Digital Signature CA",
    label_prefix: "JPKI Sign",
    private_cert: true,
    pin_len: (6, 16),
};

const TOKENS: [&Token; 2] = [&AUTH, &SIGN];

fn pin(s: &str) -> AuthPin {
    AuthPin::from(s.to_string())
}

fn slot(ctx: &Ctx, id: CK_SLOT_ID) -> Slot {
    ctx.p
        .get_all_slots()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| s.id() == id)
        .unwrap_or_else(|| panic!("slot {id} listed"))
}

/// A cryptoki handle for an object handle the module gave us.
fn handle(h: CK_OBJECT_HANDLE) -> ObjectHandle {
    // SAFETY: only used with handles returned by the module's C_FindObjects.
    unsafe { ObjectHandle::new_from_raw(h) }
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).trim_end().to_string()
}

fn start() -> Option<(std::sync::MutexGuard<'static, ()>, Ctx)> {
    let guard = serial();
    if !enabled() {
        return None;
    }
    // A previous test may have left the card removed if it failed half-way.
    ctl("insert");
    wait_pcsc_card(true);
    Some((guard, Ctx::new()))
}

/// The user certificate of a token, read through the module (logs in if it must).
fn user_cert(ctx: &Ctx, s: CK_SESSION_HANDLE, t: &Token) -> Vec<u8> {
    let found = ctx
        .raw
        .find(
            s,
            &[(CKA_CLASS, ulong(CKO_CERTIFICATE)), (CKA_ID, vec![t.id])],
        )
        .expect("find user certificate");
    assert_eq!(found.len(), 1, "one user certificate on slot {}", t.slot);
    ctx.raw.attr(s, found[0], CKA_VALUE).expect("CKA_VALUE")
}

fn one(
    ctx: &Ctx,
    s: CK_SESSION_HANDLE,
    template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> CK_OBJECT_HANDLE {
    let found = ctx.raw.find(s, template).expect("C_FindObjects");
    assert_eq!(found.len(), 1, "exactly one object for {template:02x?}");
    found[0]
}

// ----- general purpose, interfaces ----------------------------------------------------------

unsafe extern "C" fn create_mutex(out: *mut *mut std::ffi::c_void) -> CK_RV {
    // SAFETY: out is valid per the C_Initialize contract.
    unsafe { *out = 1 as *mut std::ffi::c_void };
    CKR_OK
}
unsafe extern "C" fn mutex_op(_m: *mut std::ffi::c_void) -> CK_RV {
    CKR_OK
}

#[test]
fn general_purpose_functions_and_interfaces() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;
    let apdus = stats().apdus();

    // Initialise twice.
    assert_eq!(
        rv_of(ctx.p.initialize(cryptoki::context::CInitializeArgs::new(
            cryptoki::context::CInitializeFlags::OS_LOCKING_OK
        ))),
        Some(RvError::CryptokiAlreadyInitialized)
    );

    // C_GetInfo: cryptoki uses the 3.0 interface; the 2.40 list reports 2.40.
    let info = ctx.p.get_library_info().expect("C_GetInfo");
    assert_eq!(
        (
            info.cryptoki_version().major(),
            info.cryptoki_version().minor()
        ),
        (3, 0)
    );
    assert_eq!(info.manufacturer_id(), "jpki-pkcs11");
    assert_eq!(info.library_description(), "My Number Card (JPKI) PKCS#11");
    let mut ci = CK_INFO::default();
    assert_eq!(call!(raw, C_GetInfo(&mut ci)), CKR_OK);
    assert_eq!(
        (ci.cryptokiVersion.major, ci.cryptokiVersion.minor),
        (2, 40)
    );
    assert_eq!(ci.flags, 0);
    assert_eq!(call!(raw, C_GetInfo(ptr::null_mut())), CKR_ARGUMENTS_BAD);
    assert_eq!(
        stats().apdus(),
        apdus,
        "C_Initialize and C_GetInfo send no APDU"
    );

    // C_Finalize: reserved must be NULL; twice → not initialised; then every call says so.
    assert_eq!(call!(raw, C_Finalize(8 as *mut _)), CKR_ARGUMENTS_BAD);
    assert_eq!(raw.finalize(), CKR_OK);
    assert_eq!(raw.finalize(), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_eq!(call!(raw, C_GetInfo(&mut ci)), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_eq!(raw.slot_list(false), Err(CKR_CRYPTOKI_NOT_INITIALIZED));
    assert_eq!(
        raw.open(AUTH_SLOT, CKF_SERIAL_SESSION),
        Err(CKR_CRYPTOKI_NOT_INITIALIZED)
    );
    assert_eq!(
        call!(
            raw,
            C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut 0, ptr::null_mut())
        ),
        CKR_CRYPTOKI_NOT_INITIALIZED
    );

    // C_Initialize arguments.
    assert_eq!(
        call!(raw, C_Initialize(ptr::null_mut())),
        CKR_OK,
        "NULL args (OpenSSH)"
    );
    assert_eq!(raw.finalize(), CKR_OK);
    let base = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: 0,
        pReserved: ptr::null_mut(),
    };
    let cases: [(CK_C_INITIALIZE_ARGS, CK_RV, &str); 6] = [
        (
            CK_C_INITIALIZE_ARGS {
                pReserved: 8 as *mut _,
                ..base
            },
            CKR_ARGUMENTS_BAD,
            "pReserved",
        ),
        (
            CK_C_INITIALIZE_ARGS {
                CreateMutex: Some(create_mutex),
                ..base
            },
            CKR_ARGUMENTS_BAD,
            "some callbacks",
        ),
        (
            CK_C_INITIALIZE_ARGS {
                CreateMutex: Some(create_mutex),
                DestroyMutex: Some(mutex_op),
                LockMutex: Some(mutex_op),
                UnlockMutex: Some(mutex_op),
                ..base
            },
            CKR_CANT_LOCK,
            "callbacks without CKF_OS_LOCKING_OK",
        ),
        (
            CK_C_INITIALIZE_ARGS {
                CreateMutex: Some(create_mutex),
                DestroyMutex: Some(mutex_op),
                LockMutex: Some(mutex_op),
                UnlockMutex: Some(mutex_op),
                flags: CKF_OS_LOCKING_OK,
                ..base
            },
            CKR_OK,
            "callbacks with CKF_OS_LOCKING_OK",
        ),
        (
            CK_C_INITIALIZE_ARGS {
                flags: CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS,
                ..base
            },
            CKR_OK,
            "NSS flags",
        ),
        (base, CKR_OK, "no flags"),
    ];
    for (mut args, want, what) in cases {
        let rv = call!(raw, C_Initialize(&mut args as *mut _ as *mut _));
        assert_eq!(rv, want, "C_Initialize with {what}");
        if rv == CKR_OK {
            assert_eq!(raw.finalize(), CKR_OK);
        }
    }
    assert_eq!(stats().apdus(), apdus, "initialising sends no APDU");
    assert_eq!(call!(raw, C_Initialize(ptr::null_mut())), CKR_OK);

    // C_GetFunctionList / C_GetInterfaceList / C_GetInterface.
    let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
    assert_eq!(call!(raw, C_GetFunctionList(&mut list)), CKR_OK);
    assert_eq!(
        call!(raw, C_GetFunctionList(ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );
    // Every pointer of both lists is set.
    let words = |p: *const u8, size: usize| -> Vec<usize> {
        // SAFETY: p points to a function list of `size` bytes: a CK_VERSION (padded to a
        // pointer) followed by function pointers.
        let all = unsafe { std::slice::from_raw_parts(p as *const usize, size / 8) };
        all[1..].to_vec()
    };
    let v2 = words(list as *const u8, std::mem::size_of::<CK_FUNCTION_LIST>());
    assert_eq!(v2.len(), 68);
    assert!(
        v2.iter().all(|w| *w != 0),
        "every 2.40 function pointer is set"
    );
    let v3 = words(
        &raw.f3 as *const _ as *const u8,
        std::mem::size_of::<CK_FUNCTION_LIST_3_0>(),
    );
    assert!(
        v3.iter().all(|w| *w != 0),
        "every 3.0 function pointer is set"
    );
    assert_eq!((raw.f3.version.major, raw.f3.version.minor), (3, 0));

    let get_interface_list = raw.f3.C_GetInterfaceList.expect("C_GetInterfaceList");
    let mut n: CK_ULONG = 0;
    // SAFETY: length query.
    assert_eq!(
        unsafe { get_interface_list(ptr::null_mut(), &mut n) },
        CKR_OK
    );
    assert!(n >= 2);
    let mut ifaces = vec![
        CK_INTERFACE {
            pInterfaceName: ptr::null_mut(),
            pFunctionList: ptr::null_mut(),
            flags: 0
        };
        n as usize
    ];
    let mut short: CK_ULONG = 1;
    // SAFETY: buffer of 1 < n entries.
    assert_eq!(
        unsafe { get_interface_list(ifaces.as_mut_ptr(), &mut short) },
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(short, n);
    // SAFETY: buffer of n entries.
    assert_eq!(
        unsafe { get_interface_list(ifaces.as_mut_ptr(), &mut n) },
        CKR_OK
    );
    let mut versions = BTreeSet::new();
    for i in &ifaces {
        // SAFETY: the module's static NUL-terminated name.
        let name = unsafe { std::ffi::CStr::from_ptr(i.pInterfaceName as *const _) };
        assert_eq!(name.to_bytes(), b"PKCS 11");
        // SAFETY: each list starts with its CK_VERSION.
        let v = unsafe { *(i.pFunctionList as *const CK_VERSION) };
        versions.insert((v.major, v.minor));
    }
    assert!(
        versions.contains(&(3, 0)) && versions.contains(&(2, 40)),
        "{versions:?}"
    );
    let get_interface = raw.f3.C_GetInterface.expect("C_GetInterface");
    let mut iface: *mut CK_INTERFACE = ptr::null_mut();
    let mut v240 = CK_VERSION {
        major: 2,
        minor: 40,
    };
    let name = b"PKCS 11\0";
    // SAFETY: valid arguments.
    assert_eq!(
        unsafe { get_interface(name.as_ptr() as *mut _, &mut v240, &mut iface, 0) },
        CKR_OK
    );
    // SAFETY: the module's interface.
    let v = unsafe { *((*iface).pFunctionList as *const CK_VERSION) };
    assert_eq!((v.major, v.minor), (2, 40));
    let nss = b"Vendor NSS FIPS Interface\0";
    // SAFETY: valid arguments.
    let rv = unsafe { get_interface(nss.as_ptr() as *mut _, ptr::null_mut(), &mut iface, 0) };
    assert_eq!(
        rv, CKR_ARGUMENTS_BAD,
        "unknown interface names are refused, not crashed on"
    );
    // SAFETY: NULL output is checked.
    let rv = unsafe { get_interface(ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), 0) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
}

// ----- slots and tokens ----------------------------------------------------------------------

#[test]
fn slots_tokens_and_mechanisms() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;

    // The harness has one card reader and one empty reader: 4 slots, 2 with a token.
    assert_eq!(raw.slot_list(false), Ok(vec![0, 1, 2, 3]));
    assert_eq!(raw.slot_list(true), Ok(vec![AUTH_SLOT, SIGN_SLOT]));
    let mut short = [0 as CK_SLOT_ID; 1];
    let mut n: CK_ULONG = 1;
    assert_eq!(
        call!(raw, C_GetSlotList(CK_FALSE, short.as_mut_ptr(), &mut n)),
        CKR_BUFFER_TOO_SMALL
    );
    assert_eq!(n, 4);
    assert_eq!(
        call!(
            raw,
            C_GetSlotList(CK_FALSE, ptr::null_mut(), ptr::null_mut())
        ),
        CKR_ARGUMENTS_BAD
    );
    let with_token: Vec<u64> = ctx
        .p
        .get_slots_with_token()
        .expect("slots")
        .iter()
        .map(Slot::id)
        .collect();
    assert_eq!(with_token, vec![0, 1]);

    // Slot info.
    for (id, what, present) in [
        (AUTH_SLOT, "JPKI Auth", true),
        (SIGN_SLOT, "JPKI Sign", true),
        (EMPTY_AUTH_SLOT, "JPKI Auth", false),
        (EMPTY_SIGN_SLOT, "JPKI Sign", false),
    ] {
        let info = ctx.p.get_slot_info(slot(&ctx, id)).expect("C_GetSlotInfo");
        assert!(
            info.slot_description().starts_with(what),
            "{}",
            info.slot_description()
        );
        assert!(
            info.slot_description().contains("Virtual PCD"),
            "reader name in description"
        );
        assert_eq!(info.token_present(), present, "slot {id}");
        assert!(info.removable_device() && info.hardware_slot());
    }
    assert_eq!(raw.slot_info(99).err(), Some(CKR_SLOT_ID_INVALID));
    assert_eq!(
        call!(raw, C_GetSlotInfo(AUTH_SLOT, ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );

    // Token info.
    let auth_session = raw.open_ro(AUTH_SLOT);
    let cert = user_cert(&ctx, auth_session, &AUTH);
    let parsed = x509_cert::Certificate::from_der(&cert).expect("auth certificate");
    let serial_hex: String = parsed
        .tbs_certificate
        .serial_number
        .as_bytes()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02X}"))
        .collect();
    let serial_hex = serial_hex[serial_hex.len().saturating_sub(16)..].to_string();
    let mut labels = Vec::new();
    for t in TOKENS {
        let ti = raw.token_info(t.slot).expect("C_GetTokenInfo");
        let label = text(&ti.label);
        assert!(label.starts_with(t.label_prefix), "{label}");
        assert!(
            label.ends_with(&serial_hex[serial_hex.len().saturating_sub(8)..]),
            "{label}"
        );
        labels.push(label.clone());
        assert_eq!(
            text(&ti.serialNumber),
            serial_hex,
            "serial from the auth certificate"
        );
        assert_eq!(text(&ti.manufacturerID), "J-LIS (My Number Card)");
        assert_eq!(text(&ti.model), "JPKI AP");
        let must = CKF_WRITE_PROTECTED
            | CKF_LOGIN_REQUIRED
            | CKF_USER_PIN_INITIALIZED
            | CKF_TOKEN_INITIALIZED;
        assert_eq!(ti.flags & must, must, "flags {:#x}", ti.flags);
        let never = CKF_RNG
            | CKF_PROTECTED_AUTHENTICATION_PATH
            | CKF_CLOCK_ON_TOKEN
            | CKF_USER_PIN_COUNT_LOW
            | CKF_USER_PIN_FINAL_TRY
            | CKF_USER_PIN_LOCKED
            | CKF_USER_PIN_TO_BE_CHANGED
            | CKF_SO_PIN_COUNT_LOW
            | CKF_SO_PIN_FINAL_TRY
            | CKF_SO_PIN_LOCKED;
        assert_eq!(ti.flags & never, 0, "flags {:#x}", ti.flags);
        assert_eq!((ti.ulMinPinLen, ti.ulMaxPinLen), t.pin_len);
        assert_eq!(ti.ulMaxSessionCount, CK_EFFECTIVELY_INFINITE);
        // Typed view (cryptoki parses every field).
        let typed = ctx
            .p
            .get_token_info(slot(&ctx, t.slot))
            .expect("typed token info");
        assert_eq!(typed.label(), label);
        assert!(typed.write_protected() && typed.login_required() && typed.token_initialized());
        assert!(typed.user_pin_initialized() && !typed.rng());
    }
    assert_ne!(labels[0], labels[1], "the two tokens have different labels");

    // Session counts per token.
    let rw = raw
        .open(AUTH_SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION)
        .expect("RW session");
    let ti = raw.token_info(AUTH_SLOT).expect("token info");
    assert_eq!((ti.ulSessionCount, ti.ulRwSessionCount), (2, 1));
    let ti = raw.token_info(SIGN_SLOT).expect("token info");
    assert_eq!((ti.ulSessionCount, ti.ulRwSessionCount), (0, 0));
    assert_eq!(call!(raw, C_CloseSession(rw)), CKR_OK);
    assert_eq!(call!(raw, C_CloseSession(auth_session)), CKR_OK);

    assert_eq!(
        raw.token_info(EMPTY_AUTH_SLOT).err(),
        Some(CKR_TOKEN_NOT_PRESENT)
    );
    assert_eq!(
        raw.token_info(EMPTY_SIGN_SLOT).err(),
        Some(CKR_TOKEN_NOT_PRESENT)
    );
    assert_eq!(raw.token_info(99).err(), Some(CKR_SLOT_ID_INVALID));
    assert_eq!(
        call!(raw, C_GetTokenInfo(AUTH_SLOT, ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );

    // Mechanisms.
    let extended = profile() == "extended";
    for t in TOKENS {
        // Raw list: cryptoki 0.12 silently drops types it does not know (CKM_SHA224_RSA_PKCS).
        let mut n: CK_ULONG = 0;
        assert_eq!(
            call!(raw, C_GetMechanismList(t.slot, ptr::null_mut(), &mut n)),
            CKR_OK
        );
        let mut list = vec![0 as CK_MECHANISM_TYPE; n as usize];
        assert_eq!(
            call!(raw, C_GetMechanismList(t.slot, list.as_mut_ptr(), &mut n)),
            CKR_OK
        );
        let typed = ctx
            .p
            .get_mechanism_list(slot(&ctx, t.slot))
            .expect("C_GetMechanismList");
        assert!(typed.contains(&MechanismType::SHA256_RSA_PKCS));
        for m in SIGN_MECHANISMS.iter().chain(DIGEST_MECHANISMS.iter()) {
            assert!(list.contains(m), "mechanism {m:#x} listed");
        }
        assert!(!list.contains(&CKM_RSA_X_509), "never raw RSA");
        for m in &list {
            let known = SIGN_MECHANISMS.contains(m) || DIGEST_MECHANISMS.contains(m);
            // PSS only where the card's own PSS mode exists (extended profile).
            let pss = [
                CKM_RSA_PKCS_PSS,
                CKM_SHA1_RSA_PKCS_PSS,
                CKM_SHA224_RSA_PKCS_PSS,
                CKM_SHA256_RSA_PKCS_PSS,
                CKM_SHA384_RSA_PKCS_PSS,
                CKM_SHA512_RSA_PKCS_PSS,
            ]
            .contains(m);
            assert!(known || (pss && extended), "unexpected mechanism {m:#x}");
        }
        for m in SIGN_MECHANISMS {
            let mut mi = CK_MECHANISM_INFO::default();
            assert_eq!(call!(raw, C_GetMechanismInfo(t.slot, m, &mut mi)), CKR_OK);
            assert_eq!((mi.ulMinKeySize, mi.ulMaxKeySize), (2048, 2048));
            assert_eq!(mi.flags, CKF_HW | CKF_SIGN | CKF_VERIFY, "{m:#x}");
        }
        let info = ctx
            .p
            .get_mechanism_info(slot(&ctx, t.slot), MechanismType::SHA256_RSA_PKCS)
            .expect("C_GetMechanismInfo");
        assert!(info.hardware() && info.sign() && info.verify() && !info.decrypt());
        for m in DIGEST_MECHANISMS {
            let mut mi = CK_MECHANISM_INFO::default();
            assert_eq!(call!(raw, C_GetMechanismInfo(t.slot, m, &mut mi)), CKR_OK);
            assert_eq!(mi.flags, CKF_DIGEST, "{m:#x} is software digest only");
        }
        let mut mi = CK_MECHANISM_INFO::default();
        for bad in [
            CKM_RSA_X_509,
            CKM_RSA_PKCS_OAEP,
            CKM_ECDSA,
            CKM_MD5_RSA_PKCS,
        ] {
            assert_eq!(
                call!(raw, C_GetMechanismInfo(t.slot, bad, &mut mi)),
                CKR_MECHANISM_INVALID,
                "{bad:#x}"
            );
        }
        assert_eq!(
            call!(
                raw,
                C_GetMechanismInfo(t.slot, CKM_RSA_PKCS, ptr::null_mut())
            ),
            CKR_ARGUMENTS_BAD
        );
        let mut one_slot = [0 as CK_MECHANISM_TYPE; 1];
        let mut n: CK_ULONG = 1;
        assert_eq!(
            call!(
                raw,
                C_GetMechanismList(t.slot, one_slot.as_mut_ptr(), &mut n)
            ),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(n as usize, list.len());
    }
    let mut n: CK_ULONG = 0;
    assert_eq!(
        call!(raw, C_GetMechanismList(99, ptr::null_mut(), &mut n)),
        CKR_SLOT_ID_INVALID
    );
    assert_eq!(
        call!(
            raw,
            C_GetMechanismList(EMPTY_AUTH_SLOT, ptr::null_mut(), &mut n)
        ),
        CKR_TOKEN_NOT_PRESENT
    );
    let mut mi = CK_MECHANISM_INFO::default();
    assert_eq!(
        call!(
            raw,
            C_GetMechanismInfo(EMPTY_SIGN_SLOT, CKM_RSA_PKCS, &mut mi)
        ),
        CKR_TOKEN_NOT_PRESENT
    );
    assert_eq!(
        call!(raw, C_GetMechanismInfo(99, CKM_RSA_PKCS, &mut mi)),
        CKR_SLOT_ID_INVALID
    );
}

// ----- sessions ------------------------------------------------------------------------------

#[test]
fn session_management() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;

    for t in TOKENS {
        let ro = ctx
            .p
            .open_ro_session(slot(&ctx, t.slot))
            .expect("RO session");
        let rw = ctx
            .p
            .open_rw_session(slot(&ctx, t.slot))
            .expect("RW session");
        let info = raw.session_info(ro.handle()).expect("info");
        assert_eq!(
            (info.slotID, info.state, info.flags),
            (t.slot, CKS_RO_PUBLIC_SESSION, CKF_SERIAL_SESSION)
        );
        assert_eq!(info.ulDeviceError, 0);
        let info = raw.session_info(rw.handle()).expect("info");
        assert_eq!(
            (info.slotID, info.state, info.flags),
            (
                t.slot,
                CKS_RW_PUBLIC_SESSION,
                CKF_SERIAL_SESSION | CKF_RW_SESSION
            )
        );
        let typed = ro.get_session_info().expect("typed session info");
        assert!(!typed.read_write());

        // Login is shared by all sessions of the token, and seen by new ones.
        ro.login(UserType::User, Some(&pin(t.pin))).expect("login");
        assert_eq!(
            raw.session_info(ro.handle()).expect("info").state,
            CKS_RO_USER_FUNCTIONS
        );
        assert_eq!(
            raw.session_info(rw.handle()).expect("info").state,
            CKS_RW_USER_FUNCTIONS
        );
        let third = raw.open_ro(t.slot);
        assert_eq!(
            raw.session_info(third).expect("info").state,
            CKS_RO_USER_FUNCTIONS
        );
        assert_eq!(
            rv_of(rw.login(UserType::User, Some(&pin(t.pin)))),
            Some(RvError::UserAlreadyLoggedIn)
        );

        // C_CloseAllSessions logs the token out and closes only its sessions.
        let other = if t.slot == AUTH_SLOT {
            SIGN_SLOT
        } else {
            AUTH_SLOT
        };
        let bystander = raw.open_ro(other);
        assert_eq!(call!(raw, C_CloseAllSessions(t.slot)), CKR_OK);
        for h in [ro.handle(), rw.handle(), third] {
            assert_eq!(raw.session_info(h).err(), Some(CKR_SESSION_HANDLE_INVALID));
        }
        assert!(raw.session_info(bystander).is_ok());
        let fresh = raw.open_ro(t.slot);
        assert_eq!(
            raw.session_info(fresh).expect("info").state,
            CKS_RO_PUBLIC_SESSION
        );
        assert_eq!(call!(raw, C_CloseSession(fresh)), CKR_OK);
        assert_eq!(
            call!(raw, C_CloseSession(fresh)),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(call!(raw, C_CloseSession(bystander)), CKR_OK);
        drop((ro, rw)); // already closed: cryptoki ignores SESSION_HANDLE_INVALID? (logs only)
    }

    // Closing the last session of a token logs it out.
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(
        raw.session_info(s).expect("info").state,
        CKS_RO_PUBLIC_SESSION
    );

    // ...but not its sibling: the card keeps the signature password's verification.
    let sign_s = raw.open_ro(SIGN_SLOT);
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    assert_eq!(
        raw.login(sign_s, CKU_USER, SIGN_PASSWORD.as_bytes()),
        CKR_OK
    );
    assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    assert_eq!(
        raw.session_info(sign_s).expect("info").state,
        CKS_RO_USER_FUNCTIONS
    );
    let key = one(&ctx, sign_s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
    assert_eq!(raw.sign_init(sign_s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
    assert!(raw.sign(sign_s, b"sibling still logged in").is_ok());
    assert_eq!(raw.logout(sign_s), CKR_OK);

    // Open-session errors.
    assert_eq!(
        raw.open(AUTH_SLOT, 0),
        Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    );
    assert_eq!(
        raw.open(SIGN_SLOT, CKF_RW_SESSION),
        Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    );
    assert_eq!(
        raw.open(EMPTY_AUTH_SLOT, CKF_SERIAL_SESSION),
        Err(CKR_TOKEN_NOT_PRESENT)
    );
    assert_eq!(raw.open(99, CKF_SERIAL_SESSION), Err(CKR_SLOT_ID_INVALID));
    assert_eq!(
        call!(
            raw,
            C_OpenSession(
                AUTH_SLOT,
                CKF_SERIAL_SESSION,
                ptr::null_mut(),
                None,
                ptr::null_mut()
            )
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(call!(raw, C_CloseAllSessions(99)), CKR_SLOT_ID_INVALID);
    assert_eq!(
        call!(raw, C_GetSessionInfo(sign_s, ptr::null_mut())),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        raw.session_info(0xdead).err(),
        Some(CKR_SESSION_HANDLE_INVALID)
    );

    // Operation state, legacy parallel functions, 3.0 cancel.
    let mut len: CK_ULONG = 0;
    assert_eq!(
        call!(raw, C_GetOperationState(sign_s, ptr::null_mut(), &mut len)),
        CKR_STATE_UNSAVEABLE
    );
    let mut state = [0u8; 4];
    assert_eq!(
        call!(
            raw,
            C_SetOperationState(sign_s, state.as_mut_ptr(), 4, 0, 0)
        ),
        CKR_SAVED_STATE_INVALID
    );
    assert_eq!(
        call!(raw, C_GetFunctionStatus(sign_s)),
        CKR_FUNCTION_NOT_PARALLEL
    );
    assert_eq!(
        call!(raw, C_CancelFunction(sign_s)),
        CKR_FUNCTION_NOT_PARALLEL
    );
    assert_eq!(
        call!(raw, C_GetFunctionStatus(0xdead)),
        CKR_SESSION_HANDLE_INVALID
    );
    let mut m = CK_MECHANISM {
        mechanism: CKM_SHA256,
        pParameter: ptr::null_mut(),
        ulParameterLen: 0,
    };
    assert_eq!(call!(raw, C_DigestInit(sign_s, &mut m)), CKR_OK);
    assert_eq!(call3!(raw, C_SessionCancel(sign_s, CKF_DIGEST)), CKR_OK);
    assert_eq!(
        call!(raw, C_DigestFinal(sign_s, ptr::null_mut(), &mut len)),
        CKR_OPERATION_NOT_INITIALIZED
    );
    assert_eq!(
        call3!(raw, C_SessionCancel(0xdead, CKF_DIGEST)),
        CKR_SESSION_HANDLE_INVALID
    );
}

// ----- login and logout ------------------------------------------------------------------

/// Malformed PINs per token and the error each must give, without reaching the card.
fn malformed(t: &Token) -> Vec<(&'static [u8], CK_RV)> {
    if t.slot == AUTH_SLOT {
        vec![
            (b"", CKR_PIN_LEN_RANGE),
            (b"12", CKR_PIN_LEN_RANGE),
            (b"12345", CKR_PIN_LEN_RANGE),
            (b"123456", CKR_PIN_LEN_RANGE),
            (b"abc!", CKR_PIN_INVALID),
            (b"12a4", CKR_PIN_INVALID),
            (b"12 4", CKR_PIN_INVALID),
        ]
    } else {
        vec![
            (b"", CKR_PIN_LEN_RANGE),
            (b"12", CKR_PIN_LEN_RANGE),
            (b"abc!", CKR_PIN_LEN_RANGE),
            (b"1234", CKR_PIN_LEN_RANGE),
            (b"ABC12", CKR_PIN_LEN_RANGE),
            (b"ABCDEFGHIJ1234567", CKR_PIN_LEN_RANGE),
            (b"ABC12!", CKR_PIN_INVALID),
            (b"ABC 123", CKR_PIN_INVALID),
            ("ABC12\u{3042}".as_bytes(), CKR_PIN_INVALID),
        ]
    }
}

#[test]
fn login_and_logout() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;

    for t in TOKENS {
        let s = raw.open_ro(t.slot);
        let flags = |raw: &Raw| raw.token_info(t.slot).expect("token info").flags;
        assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));

        // Malformed PINs never reach the card: no APDU at all, no VERIFY, no try.
        let before = stats();
        let log_before = apdu_log().len();
        for (bad, want) in malformed(t) {
            assert_eq!(
                raw.login(s, CKU_USER, bad),
                want,
                "PIN {:?} on slot {}",
                String::from_utf8_lossy(bad),
                t.slot
            );
        }
        let after = stats();
        assert_eq!(after.apdus(), before.apdus(), "malformed PINs sent APDUs");
        assert_eq!(after.get("verify_count"), before.get("verify_count"));
        assert_eq!(after.get("malformed_verify_count"), 0);
        assert_eq!(apdu_log().len(), log_before, "APDU log grew");
        assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));

        // NULL PIN: no protected authentication path.
        assert_eq!(
            call!(raw, C_Login(s, CKU_USER, ptr::null_mut(), 4)),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            call!(raw, C_Login(s, CKU_USER, ptr::null_mut(), 0)),
            CKR_ARGUMENTS_BAD
        );
        // User types.
        assert_eq!(
            raw.login(s, CKU_SO, t.pin.as_bytes()),
            CKR_USER_TYPE_INVALID
        );
        assert_eq!(
            raw.login(s, 0x8000_0001, t.pin.as_bytes()),
            CKR_USER_TYPE_INVALID
        );
        assert_eq!(
            raw.login(s, CKU_CONTEXT_SPECIFIC, t.pin.as_bytes()),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            raw.login(0xdead, CKU_USER, t.pin.as_bytes()),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(raw.logout(s), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(raw.logout(0xdead), CKR_SESSION_HANDLE_INVALID);

        // Wrong PINs: the counter goes down, the flags follow, FINAL_TRY before the last try.
        let verifies = stats().get("verify_count");
        for left in (1..t.max_tries).rev() {
            assert_eq!(
                raw.login(s, CKU_USER, t.wrong.as_bytes()),
                CKR_PIN_INCORRECT
            );
            let tries = card_tries();
            assert_eq!(
                if t.slot == AUTH_SLOT {
                    tries.0
                } else {
                    tries.1
                },
                left
            );
            let f = flags(raw);
            assert!(
                f & CKF_USER_PIN_COUNT_LOW != 0,
                "COUNT_LOW with {left} left: {f:#x}"
            );
            assert_eq!(
                f & CKF_USER_PIN_FINAL_TRY != 0,
                left == 1,
                "FINAL_TRY with {left} left"
            );
            assert_eq!(f & CKF_USER_PIN_LOCKED, 0);
            assert_eq!(
                raw.session_info(s).expect("info").state,
                CKS_RO_PUBLIC_SESSION
            );
        }
        assert_eq!(stats().get("verify_count"), verifies + t.max_tries - 1);

        // A final-try token still accepts the right PIN (never lock users out ourselves).
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));
        let f = flags(raw);
        assert_eq!(
            f & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED),
            0
        );
        assert_eq!(
            raw.session_info(s).expect("info").state,
            CKS_RO_USER_FUNCTIONS
        );
        let before = stats().apdus();
        assert_eq!(
            raw.login(s, CKU_USER, t.pin.as_bytes()),
            CKR_USER_ALREADY_LOGGED_IN
        );
        assert_eq!(
            raw.login(s, CKU_USER, b"x"),
            CKR_PIN_LEN_RANGE,
            "format first"
        );
        assert_eq!(stats().apdus(), before);

        // Context-specific login during a signing operation.
        let key = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
        assert_eq!(raw.login(s, CKU_CONTEXT_SPECIFIC, b"1"), CKR_PIN_LEN_RANGE);
        assert_eq!(raw.login(s, CKU_CONTEXT_SPECIFIC, t.pin.as_bytes()), CKR_OK);
        assert!(raw.sign(s, b"after context-specific login").is_ok());

        // Logout clears the card's state (re-SELECT of the JPKI AP) and hides private objects.
        // Probe: while logged in, another application could use the card's open state (the
        // nature of a shared card); after C_Logout it cannot.
        let key_ef = if t.slot == AUTH_SLOT { 0x0017 } else { 0x001A };
        assert_eq!(
            other_client_signs(key_ef),
            0x9000,
            "probe sees the open state"
        );
        let log_before = apdu_log().len();
        assert_eq!(raw.logout(s), CKR_OK);
        assert_eq!(
            other_client_signs(key_ef),
            0x6982,
            "card state closed by C_Logout"
        );
        let new_lines = apdu_log()[log_before..].join("\n").to_ascii_lowercase();
        assert!(
            new_lines.contains("00a4040c0ad392f000260100000001"),
            "logout selects the AP: {new_lines}"
        );
        assert_eq!(
            raw.session_info(s).expect("info").state,
            CKS_RO_PUBLIC_SESSION
        );
        assert_eq!(raw.logout(s), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(
            raw.sign_init(s, CKM_SHA256_RSA_PKCS, key),
            CKR_USER_NOT_LOGGED_IN
        );
        assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    }

    // The signature password is case-insensitive (documented: upper-cased, the card holds A–Z).
    let s = raw.open_ro(SIGN_SLOT);
    assert_eq!(
        raw.login(s, CKU_USER, SIGN_PASSWORD.to_ascii_lowercase().as_bytes()),
        CKR_OK
    );
    assert_eq!(raw.logout(s), CKR_OK);
    // cryptoki's own login path.
    let session = ctx
        .p
        .open_ro_session(slot(&ctx, AUTH_SLOT))
        .expect("session");
    assert_eq!(
        rv_of(session.login(UserType::User, Some(&pin("12")))),
        Some(RvError::PinLenRange)
    );
    session
        .login(UserType::User, Some(&pin(AUTH_PIN)))
        .expect("login");
    session.logout().expect("logout");
    assert_eq!(stats().get("malformed_verify_count"), 0);
}

#[test]
fn set_pin() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;
    let set = |s: CK_SESSION_HANDLE, old: &[u8], new: &[u8]| {
        call!(
            raw,
            C_SetPIN(
                s,
                old.as_ptr() as *mut _,
                old.len() as CK_ULONG,
                new.as_ptr() as *mut _,
                new.len() as CK_ULONG
            )
        )
    };
    for (t, other) in [(&AUTH, &b"4321"[..]), (&SIGN, &b"XYZ789"[..])] {
        let ro = raw.open_ro(t.slot);
        assert_eq!(set(ro, t.pin.as_bytes(), other), CKR_SESSION_READ_ONLY);
        let rw = raw
            .open(t.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
            .expect("RW");
        let before = stats();
        assert_eq!(set(rw, t.pin.as_bytes(), b"1"), CKR_PIN_LEN_RANGE);
        assert_eq!(set(rw, b"1", other), CKR_PIN_LEN_RANGE);
        let bad_charset: &[u8] = if t.slot == AUTH_SLOT {
            b"12a4"
        } else {
            b"ABC12!"
        };
        assert_eq!(set(rw, t.pin.as_bytes(), bad_charset), CKR_PIN_INVALID);
        assert_eq!(
            stats().apdus(),
            before.apdus(),
            "malformed PINs never reach the card"
        );
        assert_eq!(
            call!(
                raw,
                C_SetPIN(
                    rw,
                    ptr::null_mut(),
                    4,
                    other.as_ptr() as *mut _,
                    other.len() as CK_ULONG
                )
            ),
            CKR_ARGUMENTS_BAD
        );

        // Wrong old PIN costs a try (and says so); the right one restores the counter.
        assert_eq!(set(rw, t.wrong.as_bytes(), other), CKR_PIN_INCORRECT);
        assert!(raw.token_info(t.slot).expect("ti").flags & CKF_USER_PIN_COUNT_LOW != 0);
        assert_eq!(set(rw, t.pin.as_bytes(), other), CKR_OK);
        assert_eq!(
            raw.token_info(t.slot).expect("ti").flags & CKF_USER_PIN_COUNT_LOW,
            0
        );
        // Changing the PIN is not a login, and leaves no open security state on the card:
        // another application cannot sign on the strength of it.
        assert_eq!(
            raw.session_info(rw).expect("info").state,
            CKS_RW_PUBLIC_SESSION
        );
        let key_ef = if t.slot == AUTH_SLOT { 0x0017 } else { 0x001A };
        assert_eq!(
            other_client_signs(key_ef),
            0x6982,
            "card state closed after C_SetPIN"
        );
        assert_eq!(
            raw.login(rw, CKU_USER, t.pin.as_bytes()),
            CKR_PIN_INCORRECT,
            "old PIN is gone"
        );
        assert_eq!(raw.login(rw, CKU_USER, other), CKR_OK);
        // Change back while logged in.
        assert_eq!(set(rw, other, t.pin.as_bytes()), CKR_OK);
        assert_eq!(
            raw.session_info(rw).expect("info").state,
            CKS_RW_USER_FUNCTIONS
        );
        assert_eq!(raw.logout(rw), CKR_OK);
        assert_eq!(raw.login(rw, CKU_USER, t.pin.as_bytes()), CKR_OK);
        assert_eq!(raw.logout(rw), CKR_OK);
        assert_eq!(call!(raw, C_CloseAllSessions(t.slot)), CKR_OK);
    }
    assert_eq!(card_tries(), (AUTH.max_tries, SIGN.max_tries));
    assert_eq!(stats().get("malformed_change_count"), 0);
    assert_eq!(stats().get("malformed_verify_count"), 0);
}

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
fn objects_and_attributes() {
    let Some((_g, ctx)) = start() else { return };
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

        // Searches the clients make (clients.md §1, §5, §6, §10.9); all served from memory.
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
fn sign_and_verify_on_both_tokens() {
    let Some((_g, ctx)) = start() else { return };
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
        session.sign_update(&[1; 200]).expect("update");
        assert_eq!(
            rv_of(session.sign_update(&[1; 46])),
            Some(RvError::DataLenRange)
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
fn digests() {
    let Some((_g, ctx)) = start() else { return };
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

// ----- writes and functions the card cannot do ----------------------------------------------

#[test]
fn writes_refused_and_unsupported_functions() {
    let Some((_g, ctx)) = start() else { return };
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
            CKR_RANDOM_NO_RNG,
        ),
        (
            "C_SeedRandom",
            call!(raw, C_SeedRandom(s, b, 16)),
            CKR_RANDOM_NO_RNG,
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

// ----- events, removal, reset ---------------------------------------------------------------

#[test]
fn slot_events() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;
    assert_eq!(raw.slot_list(true), Ok(vec![0, 1]));
    assert_eq!(
        ctx.p
            .get_slot_event()
            .expect("C_WaitForSlotEvent(DONT_BLOCK)"),
        None
    );
    let mut id: CK_SLOT_ID = 0;
    assert_eq!(
        call!(
            raw,
            C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut id, ptr::null_mut())
        ),
        CKR_NO_EVENT
    );
    assert_eq!(
        call!(
            raw,
            C_WaitForSlotEvent(CKF_DONT_BLOCK, ptr::null_mut(), ptr::null_mut())
        ),
        CKR_ARGUMENTS_BAD
    );
    assert_eq!(
        call!(
            raw,
            C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut id, 8 as *mut _)
        ),
        CKR_ARGUMENTS_BAD
    );

    // A blocked wait returns on removal.
    let wait = raw.f.C_WaitForSlotEvent.expect("C_WaitForSlotEvent");
    let blocked = std::thread::spawn(move || {
        let mut id: CK_SLOT_ID = 99;
        let start = Instant::now();
        // SAFETY: valid out pointer.
        let rv = unsafe { wait(0, &mut id, ptr::null_mut()) };
        (rv, id, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    ctl("remove");
    let (rv, first, took) = blocked.join().expect("waiter");
    assert_eq!(rv, CKR_OK, "blocking wait");
    assert!(took < Duration::from_secs(10));
    let second = ctx
        .p
        .get_slot_event()
        .expect("second event")
        .map(|s| s.id());
    let mut both = vec![
        first,
        second.expect("both slots of the reader report the event"),
    ];
    both.sort();
    assert_eq!(both, vec![AUTH_SLOT, SIGN_SLOT]);
    assert_eq!(ctx.p.get_slot_event().expect("no more"), None);
    assert_eq!(raw.slot_list(true), Ok(vec![]));
    assert_eq!(
        raw.slot_list(false),
        Ok(vec![0, 1, 2, 3]),
        "slots stay while the reader stays"
    );
    assert_eq!(
        raw.slot_info(AUTH_SLOT).expect("slot info").flags & CKF_TOKEN_PRESENT,
        0
    );
    assert_eq!(raw.token_info(AUTH_SLOT).err(), Some(CKR_TOKEN_NOT_PRESENT));

    // Insertion: DONT_BLOCK polling sees it.
    ctl("insert");
    let got = retry("insertion event", Duration::from_secs(10), || {
        ctx.p.get_slot_event().expect("poll").map(|s| s.id())
    });
    assert!(got == AUTH_SLOT || got == SIGN_SLOT);
    let _ = ctx.p.get_slot_event();
    assert_eq!(raw.slot_list(true), Ok(vec![0, 1]));
    assert!(raw.token_info(AUTH_SLOT).is_ok());

    // C_Finalize wakes a blocked waiter, which reports CKR_CRYPTOKI_NOT_INITIALIZED.
    let blocked = std::thread::spawn(move || {
        let mut id: CK_SLOT_ID = 99;
        let start = Instant::now();
        // SAFETY: valid out pointer.
        let rv = unsafe { wait(0, &mut id, ptr::null_mut()) };
        (rv, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(raw.finalize(), CKR_OK);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "C_Finalize does not wait for the waiter"
    );
    let (rv, took) = blocked.join().expect("waiter");
    assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    assert!(took < Duration::from_secs(5), "woken promptly: {took:?}");
}

#[test]
fn card_removed_mid_session() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;
    let auth = raw.open_ro(AUTH_SLOT);
    let sign = raw.open_ro(SIGN_SLOT);
    let idle = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.login(auth, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    let key = one(&ctx, auth, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
    let ca = one(
        &ctx,
        idle,
        &[
            (CKA_CLASS, ulong(CKO_CERTIFICATE)),
            (CKA_CERTIFICATE_CATEGORY, ulong(2)),
        ],
    );
    assert!(raw.find(sign, &[]).is_ok());
    assert_eq!(raw.sign_init(auth, CKM_SHA256_RSA_PKCS, key), CKR_OK);

    ctl("remove");
    wait_pcsc_card(false);

    // Calls served from the module's memory notice the removal too (a PC/SC status query on
    // the card's connection, no APDU), before anything touches the card; then the sessions
    // are gone.
    let gone = [CKR_DEVICE_REMOVED, CKR_SESSION_HANDLE_INVALID];
    let rv = raw.find(sign, &[]).err();
    assert_eq!(
        rv,
        Some(CKR_DEVICE_REMOVED),
        "C_FindObjectsInit, first call after removal"
    );
    let rv = raw.attr(idle, ca, CKA_CLASS).err();
    assert!(
        rv.is_some_and(|rv| gone.contains(&rv)),
        "C_GetAttributeValue: {rv:x?}"
    );
    let rv = raw
        .sign(auth, b"after removal")
        .expect_err("no signature without a card");
    assert!(gone.contains(&rv), "C_Sign: {rv:#x}");
    for h in [auth, sign, idle] {
        assert_eq!(raw.session_info(h).err(), Some(CKR_SESSION_HANDLE_INVALID));
        assert_eq!(call!(raw, C_CloseSession(h)), CKR_SESSION_HANDLE_INVALID);
    }
    assert_eq!(raw.token_info(AUTH_SLOT).err(), Some(CKR_TOKEN_NOT_PRESENT));
    assert_eq!(
        raw.open(SIGN_SLOT, CKF_SERIAL_SESSION),
        Err(CKR_TOKEN_NOT_PRESENT)
    );
    assert_eq!(
        raw.slot_info(AUTH_SLOT).expect("slot").flags & CKF_TOKEN_PRESENT,
        0
    );
    assert_eq!(raw.slot_list(true), Ok(vec![]));

    // Back in: new sessions work, old handles stay dead.
    ctl("insert");
    wait_pcsc_card(true);
    retry("token back", Duration::from_secs(10), || {
        (raw.slot_list(true) == Ok(vec![0, 1])).then_some(())
    });
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(
        raw.session_info(s).expect("info").state,
        CKS_RO_PUBLIC_SESSION,
        "no login survives removal"
    );
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    let key2 = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
    assert_ne!(key2, key, "object handles are not reused");
    assert_eq!(raw.attr(s, key, CKA_CLASS), Err(CKR_OBJECT_HANDLE_INVALID));
    assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key2), CKR_OK);
    assert!(raw.sign(s, b"works again").is_ok());
    assert_eq!(raw.logout(s), CKR_OK);
}

#[test]
fn status_checks_cost_no_apdu() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;
    let s = raw.open_ro(AUTH_SLOT);
    let all = raw.find(s, &[]).expect("find");
    let before = stats().apdus();
    for _ in 0..50 {
        let found = raw
            .find(s, &[(CKA_CLASS, ulong(CKO_CERTIFICATE))])
            .expect("find");
        for h in &found {
            raw.attr(s, *h, CKA_VALUE).expect("value");
        }
        raw.session_info(s).expect("info");
    }
    assert_eq!(stats().apdus(), before, "cached calls send no APDU");
    assert!(!all.is_empty());
}

#[test]
fn card_reset_between_login_and_sign() {
    let Some((_g, ctx)) = start() else { return };
    let raw = &ctx.raw;
    for t in TOKENS {
        // (a) The card forgets its security state silently (`ctl reset`: the card's volatile
        // state is cleared behind pcscd's back): the card refuses to sign, the module reports
        // the logged-out state and never replays the PIN.
        let s = raw.open_ro(t.slot);
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        let key = one(&ctx, s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
        let verifies = stats().get("verify_count");
        ctl("reset");
        assert_eq!(
            raw.sign(s, b"after reset").err(),
            Some(CKR_USER_NOT_LOGGED_IN),
            "slot {}",
            t.slot
        );
        assert_eq!(
            stats().get("verify_count"),
            verifies,
            "the PIN is never replayed"
        );
        assert_eq!(
            raw.session_info(s).expect("info").state,
            CKS_RO_PUBLIC_SESSION
        );
        assert_eq!(
            raw.sign_init(s, CKM_SHA256_RSA_PKCS, key),
            CKR_USER_NOT_LOGGED_IN
        );
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
        assert!(raw.sign(s, b"after login again").is_ok());

        // (b) Another PC/SC client resets the card (SCARD_W_RESET_CARD for us).
        let context = pcsc::Context::establish(pcsc::Scope::User).expect("context");
        let readers = context.list_readers_owned().expect("readers");
        let other = context
            .connect(&readers[0], pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .expect("second connection");
        other
            .disconnect(pcsc::Disposition::ResetCard)
            .map_err(|(_, e)| e)
            .expect("reset");
        let verifies = stats().get("verify_count");
        // Noticed without a card command (the session state), or at the latest when signing.
        let state = raw.session_info(s).expect("info").state;
        let rv = match raw.sign_init(s, CKM_SHA256_RSA_PKCS, key) {
            CKR_OK => raw.sign(s, b"after PC/SC reset").err().unwrap_or(CKR_OK),
            rv => rv,
        };
        assert_eq!(
            rv, CKR_USER_NOT_LOGGED_IN,
            "slot {} (state seen {state})",
            t.slot
        );
        assert_eq!(
            state, CKS_RO_PUBLIC_SESSION,
            "the reset is noticed before any APDU"
        );
        assert_eq!(
            raw.session_info(s).expect("info").state,
            CKS_RO_PUBLIC_SESSION
        );
        assert_eq!(
            stats().get("verify_count"),
            verifies,
            "the PIN is never replayed"
        );
        assert_eq!(raw.login(s, CKU_USER, t.pin.as_bytes()), CKR_OK);
        assert_eq!(raw.sign_init(s, CKM_SHA256_RSA_PKCS, key), CKR_OK);
        assert!(raw.sign(s, b"after login again").is_ok());
        assert_eq!(raw.logout(s), CKR_OK);
        assert_eq!(call!(raw, C_CloseSession(s)), CKR_OK);
    }
}

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
/// command (card layer, "Short file identifiers"), so every SELECT EF above disappears and no
/// probe is refused: 8, 6, 6, 2 (VERIFY + signature), 1, 8, 1, 0.
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
            slots_and_token_info: 8,
            find_all_auth: 6,
            find_all_sign: 6,
            login_sign_auth: 2,
            second_sign_auth: 1,
            login_sign_sign: 8,
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
fn apdu_counts() {
    let Some((_g, ctx)) = start() else { return };
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
