//! General-purpose functions and interfaces (PKCS#11 chapter 5.4): C_Initialize and
//! its arguments, C_GetInfo, C_GetFunctionList, C_GetInterfaceList and C_GetInterface.
//!
//! The module as applications see it: `libjpki_pkcs11.so` loaded with `dlopen` by the `cryptoki`
//! crate (and by raw calls through its function lists where cryptoki has no API or the exact
//! return value matters), against pcscd + vpcd + the virtual card.
//!
//! Run (build the cdylib first; `cargo test` does not):
//! ```text
//! cargo build --lib && cargo build -p jpki-virtual-card
//! tests/harness/with-card.sh --profile conservative -- cargo test --test pkcs11_general -- --include-ignored --test-threads=1
//! tests/harness/with-card.sh --profile extended     -- cargo test --test pkcs11_general -- --include-ignored --test-threads=1
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
use cryptoki::error::RvError;
use cryptoki_sys::*;

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
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn general_purpose_functions_and_interfaces() {
    let (_g, ctx) = start();
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
