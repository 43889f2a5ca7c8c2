//! Tests of the C interface, called in-process through the exported functions.
//!
//! Slightly longer than the ~500 lines of a source file: six scenario tests through the raw C
//! functions, whose pointer-and-length plumbing is verbose by nature.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Arc;

use cryptoki_sys::*;
use jpki_virtual_card::{test_state, Profile, VirtualCard};
use parking_lot::Mutex;

use super::functions::*;
use super::lists::*;
use crate::pkcs11::module;
use crate::transport::in_process::{InProcessReaders, SimulatedCard};

/// The module state is global: one test at a time.
static SERIAL: Mutex<()> = parking_lot::const_mutex(());

fn with_card() -> InProcessReaders {
    let readers = InProcessReaders::new();
    let vc = Arc::new(Mutex::new(VirtualCard::new(
        test_state(),
        Profile::Conservative,
    )));
    let atr = vc.lock().atr();
    let sim = SimulatedCard::new(atr, move |apdu| vc.lock().process_apdu(apdu));
    readers.insert_card("Reader A", sim);
    let r = readers.clone();
    module::initialize(move || Box::new(r)).expect("initialize");
    readers
}

fn finalize() {
    let _ = module::finalize();
}

fn open(slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
    let mut h = 0;
    let rv = unsafe { C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h) };
    assert_eq!(rv, CKR_OK);
    h
}

fn login(h: CK_SESSION_HANDLE, pin: &[u8]) -> CK_RV {
    unsafe { C_Login(h, CKU_USER, pin.as_ptr() as *mut u8, pin.len() as CK_ULONG) }
}

fn find_one(h: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS) -> CK_OBJECT_HANDLE {
    let mut class = class;
    let mut t = [CK_ATTRIBUTE {
        type_: CKA_CLASS,
        pValue: &mut class as *mut CK_ULONG as *mut c_void,
        ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
    }];
    unsafe {
        assert_eq!(C_FindObjectsInit(h, t.as_mut_ptr(), 1), CKR_OK);
        let mut out = [0; 4];
        let mut n = 0;
        assert_eq!(C_FindObjects(h, out.as_mut_ptr(), 4, &mut n), CKR_OK);
        assert_eq!(C_FindObjectsFinal(h), CKR_OK);
        assert_eq!(n, 1);
        out[0]
    }
}

#[test]
fn function_lists_and_interfaces() {
    let _g = SERIAL.lock();
    unsafe {
        assert_eq!(C_GetFunctionList(null_mut()), CKR_ARGUMENTS_BAD);
        let mut list: *mut CK_FUNCTION_LIST = null_mut();
        assert_eq!(C_GetFunctionList(&mut list), CKR_OK);
        let l = &*list;
        assert_eq!((l.version.major, l.version.minor), (2, 40));
        // Every entry after the version is set.
        let words = (std::mem::size_of::<CK_FUNCTION_LIST>() - 8) / 8;
        let fns = std::slice::from_raw_parts((list as *const u8).add(8) as *const usize, words);
        assert!(fns.iter().all(|p| *p != 0));
        assert_eq!(words, 68);

        let mut count = 0;
        assert_eq!(C_GetInterfaceList(null_mut(), &mut count), CKR_OK);
        assert_eq!(count, 2);
        let mut one = count - 1;
        let mut ifs: Vec<CK_INTERFACE> = (0..2)
            .map(|_| CK_INTERFACE {
                pInterfaceName: null_mut(),
                pFunctionList: null_mut(),
                flags: 0,
            })
            .collect();
        assert_eq!(
            C_GetInterfaceList(ifs.as_mut_ptr(), &mut one),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(one, 2);
        assert_eq!(C_GetInterfaceList(ifs.as_mut_ptr(), &mut count), CKR_OK);

        let mut iface: *mut CK_INTERFACE = null_mut();
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), &mut iface, 0),
            CKR_OK
        );
        let f3 = &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0);
        assert_eq!((f3.version.major, f3.version.minor), (3, 0));
        let words = (std::mem::size_of::<CK_FUNCTION_LIST_3_0>() - 8) / 8;
        let fns = std::slice::from_raw_parts(
            ((*iface).pFunctionList as *const u8).add(8) as *const usize,
            words,
        );
        assert!(fns.iter().all(|p| *p != 0));

        let mut name = *b"PKCS 11\0";
        let mut v240 = CK_VERSION {
            major: 2,
            minor: 40,
        };
        assert_eq!(
            C_GetInterface(name.as_mut_ptr(), &mut v240, &mut iface, 0),
            CKR_OK
        );
        let f2 = &*((*iface).pFunctionList as *const CK_FUNCTION_LIST);
        assert_eq!((f2.version.major, f2.version.minor), (2, 40));
        let mut nss = *b"Vendor NSS FIPS Interface\0";
        assert_eq!(
            C_GetInterface(nss.as_mut_ptr(), null_mut(), &mut iface, 0),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_GetInterface(null_mut(), null_mut(), null_mut(), 0),
            CKR_ARGUMENTS_BAD
        );
    }
}

#[test]
fn initialize_arguments() {
    let _g = SERIAL.lock();
    finalize();
    unsafe {
        let mut info = std::mem::zeroed::<CK_INFO>();
        assert_eq!(C_GetInfo(&mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
        assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: 0,
            pReserved: 1usize as *mut c_void,
        };
        let pa = &mut args as *mut CK_C_INITIALIZE_ARGS;
        let p = pa as *mut c_void;
        assert_eq!(C_Initialize(p), CKR_ARGUMENTS_BAD);
        (*pa).pReserved = null_mut();
        unsafe extern "C" fn create(_: *mut *mut c_void) -> CK_RV {
            CKR_OK
        }
        unsafe extern "C" fn other(_: *mut c_void) -> CK_RV {
            CKR_OK
        }
        (*pa).CreateMutex = Some(create);
        assert_eq!(C_Initialize(p), CKR_ARGUMENTS_BAD, "partial callbacks");
        (*pa).DestroyMutex = Some(other);
        (*pa).LockMutex = Some(other);
        (*pa).UnlockMutex = Some(other);
        assert_eq!(C_Initialize(p), CKR_CANT_LOCK);
        (*pa).flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS;
        assert_eq!(C_Initialize(p), CKR_OK);
        assert_eq!(C_Initialize(null_mut()), CKR_CRYPTOKI_ALREADY_INITIALIZED);
        assert_eq!(C_GetInfo(&mut info), CKR_OK);
        assert_eq!(&info.manufacturerID[..12], b"jpki-pkcs11 ");
        assert_eq!(
            (info.cryptokiVersion.major, info.cryptokiVersion.minor),
            (2, 40)
        );
        assert_eq!(C_GetInfo(null_mut()), CKR_ARGUMENTS_BAD);
        assert_eq!(C_Finalize(1usize as *mut c_void), CKR_ARGUMENTS_BAD);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
        assert_eq!(C_Initialize(null_mut()), CKR_OK);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
    }
}

#[test]
fn slots_tokens_and_buffers() {
    let _g = SERIAL.lock();
    finalize();
    let _readers = with_card();
    unsafe {
        let mut n = 0;
        assert_eq!(
            C_GetSlotList(CK_TRUE, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(C_GetSlotList(CK_TRUE, null_mut(), &mut n), CKR_OK);
        assert_eq!(n, 2);
        let mut slots = [99; 2];
        let mut short = 1;
        assert_eq!(
            C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut short),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(short, 2);
        assert_eq!(C_GetSlotList(CK_FALSE, slots.as_mut_ptr(), &mut n), CKR_OK);
        assert_eq!(slots, [0, 1]);

        let mut ti = std::mem::zeroed::<CK_TOKEN_INFO>();
        assert_eq!(C_GetTokenInfo(0, &mut ti), CKR_OK);
        assert_eq!(&ti.label[..10], b"JPKI Auth ");
        assert_eq!(ti.label[31], b' ');
        assert_eq!(ti.ulMinPinLen, 4);
        assert_eq!(C_GetTokenInfo(7, &mut ti), CKR_SLOT_ID_INVALID);
        assert_eq!(C_GetTokenInfo(0, null_mut()), CKR_ARGUMENTS_BAD);

        let mut si = std::mem::zeroed::<CK_SLOT_INFO>();
        assert_eq!(C_GetSlotInfo(1, &mut si), CKR_OK);
        assert_ne!(si.flags & CKF_TOKEN_PRESENT, 0);

        let mut mechs = [0; 32];
        let mut mn = 0;
        assert_eq!(C_GetMechanismList(0, null_mut(), &mut mn), CKR_OK);
        assert_eq!(mn, 11);
        assert_eq!(C_GetMechanismList(0, mechs.as_mut_ptr(), &mut mn), CKR_OK);
        let mut mi = std::mem::zeroed::<CK_MECHANISM_INFO>();
        assert_eq!(
            C_GetMechanismInfo(0, CKM_RSA_X_509, &mut mi),
            CKR_MECHANISM_INVALID
        );

        let mut h = 0;
        assert_eq!(
            C_OpenSession(0, CKF_SERIAL_SESSION, null_mut(), None, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            C_OpenSession(0, 0, null_mut(), None, &mut h),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );
        let h = open(0);
        assert_eq!(C_CloseSession(h + 1000), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(C_Login(h, CKU_USER, null_mut(), 0), CKR_ARGUMENTS_BAD);
        // The specification's codes (docs/conformance.md): C_Login lists CKR_PIN_INCORRECT;
        // NULL arguments are CKR_ARGUMENTS_BAD; session objects may be created.
        assert_eq!(login(h, b"12"), CKR_PIN_INCORRECT);
        assert_eq!(C_GenerateRandom(h, null_mut(), 0), CKR_ARGUMENTS_BAD);
        let mut byte = [0u8; 1];
        assert_eq!(C_GenerateRandom(h, byte.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(
            C_CreateObject(h, null_mut(), 0, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        let mut created: CK_OBJECT_HANDLE = 0;
        assert_eq!(
            C_CreateObject(h, null_mut(), 0, &mut created),
            CKR_TEMPLATE_INCOMPLETE
        );
        assert_eq!(
            C_DestroyObject(h, CK_OBJECT_HANDLE::MAX),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            C_GetOperationState(h, null_mut(), null_mut()),
            CKR_STATE_UNSAVEABLE
        );
        let mut mech = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(C_EncryptInit(h, &mut mech, 1), CKR_MECHANISM_INVALID);
        assert_eq!(C_DecryptInit(h, &mut mech, 1), CKR_MECHANISM_INVALID);
        assert_eq!(C_SignInit(h, null_mut(), 1), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_FindObjects(h, null_mut(), 1, null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(C_FindObjectsInit(h, null_mut(), 1), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_MessageSignInit(h, &mut mech, 1),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            C_InitToken(0, null_mut(), 0, null_mut()),
            CKR_FUNCTION_NOT_SUPPORTED
        );
    }
    finalize();
}

#[test]
fn attributes_and_signing_through_c() {
    let _g = SERIAL.lock();
    finalize();
    let _readers = with_card();
    unsafe {
        let h = open(0);
        assert_eq!(login(h, b"1234"), CKR_OK);
        let key = find_one(h, CKO_PRIVATE_KEY);

        // Mixed template: a value, a length query, a sensitive and an unknown attribute.
        let mut key_type: CK_ULONG = 0;
        let mut small = [0u8; 4];
        let mut t = [
            CK_ATTRIBUTE {
                type_: CKA_KEY_TYPE,
                pValue: &mut key_type as *mut CK_ULONG as *mut c_void,
                ulValueLen: 8,
            },
            CK_ATTRIBUTE {
                type_: CKA_MODULUS,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_PRIVATE_EXPONENT,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: 0x8765_4321,
                pValue: null_mut(),
                ulValueLen: 0,
            },
        ];
        assert_eq!(
            C_GetAttributeValue(h, key, t.as_mut_ptr(), 4),
            CKR_ATTRIBUTE_SENSITIVE
        );
        assert_eq!(key_type, CKK_RSA);
        assert_eq!(t[1].ulValueLen, 256);
        assert_eq!(t[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(t[3].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(
            C_GetAttributeValue(h, key, t.as_mut_ptr().add(3), 1),
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        let mut t = [CK_ATTRIBUTE {
            type_: CKA_MODULUS,
            pValue: small.as_mut_ptr() as *mut c_void,
            ulValueLen: 4,
        }];
        assert_eq!(
            C_GetAttributeValue(h, key, t.as_mut_ptr(), 1),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(
            C_GetAttributeValue(h, 424242, t.as_mut_ptr(), 1),
            CKR_OBJECT_HANDLE_INVALID
        );
        assert_eq!(
            C_GetAttributeValue(h, key, null_mut(), 1),
            CKR_ARGUMENTS_BAD
        );

        // Two-call convention for C_Sign.
        let mut mech = CK_MECHANISM {
            mechanism: CKM_SHA256_RSA_PKCS,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(C_SignInit(h, &mut mech, key), CKR_OK);
        let data = b"data to sign";
        let mut len = 0;
        assert_eq!(
            C_Sign(
                h,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                null_mut(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(len, 256);
        let mut sig = [0u8; 256];
        let mut short = 10;
        assert_eq!(
            C_Sign(
                h,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                sig.as_mut_ptr(),
                &mut short
            ),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(short, 256);
        assert_eq!(
            C_Sign(
                h,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                sig.as_mut_ptr(),
                &mut len
            ),
            CKR_OK
        );
        assert_eq!(
            C_Sign(h, data.as_ptr() as *mut u8, 1, sig.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );

        // Verify through C with the public key.
        let pubk = find_one(h, CKO_PUBLIC_KEY);
        assert_eq!(C_VerifyInit(h, &mut mech, pubk), CKR_OK);
        assert_eq!(
            C_Verify(
                h,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                sig.as_mut_ptr(),
                256
            ),
            CKR_OK
        );
        assert_eq!(C_VerifyInit(h, &mut mech, pubk), CKR_OK);
        sig[0] ^= 1;
        assert_eq!(
            C_Verify(
                h,
                data.as_ptr() as *mut u8,
                data.len() as CK_ULONG,
                sig.as_mut_ptr(),
                256
            ),
            CKR_SIGNATURE_INVALID
        );

        // Multi-part with C_SignFinal and a length query first.
        assert_eq!(C_SignInit(h, &mut mech, key), CKR_OK);
        assert_eq!(C_SignUpdate(h, data.as_ptr() as *mut u8, 4), CKR_OK);
        assert_eq!(
            C_SignUpdate(
                h,
                data.as_ptr().add(4) as *mut u8,
                data.len() as CK_ULONG - 4
            ),
            CKR_OK
        );
        let mut flen = 0;
        assert_eq!(C_SignFinal(h, null_mut(), &mut flen), CKR_OK);
        let mut sig2 = [0u8; 300];
        flen = 300;
        assert_eq!(C_SignFinal(h, sig2.as_mut_ptr(), &mut flen), CKR_OK);
        assert_eq!(flen, 256);
        sig[0] ^= 1;
        assert_eq!(&sig2[..256], &sig[..]);

        // Digest.
        let mut dm = CK_MECHANISM {
            mechanism: CKM_SHA256,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(C_DigestInit(h, &mut dm), CKR_OK);
        let mut dlen = 0;
        assert_eq!(
            C_Digest(h, data.as_ptr() as *mut u8, 3, null_mut(), &mut dlen),
            CKR_OK
        );
        assert_eq!(dlen, 32);
        let mut d = [0u8; 32];
        assert_eq!(
            C_Digest(h, data.as_ptr() as *mut u8, 3, d.as_mut_ptr(), &mut dlen),
            CKR_OK
        );

        assert_eq!(C_Logout(h), CKR_OK);
        assert_eq!(C_Logout(h), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(C_CloseAllSessions(0), CKR_OK);
    }
    finalize();
}

#[test]
fn finalize_wakes_a_blocked_wait() {
    let _g = SERIAL.lock();
    finalize();
    let _readers = with_card();
    unsafe {
        let mut slot = 0;
        // Consume the initial state.
        let mut n = 0;
        C_GetSlotList(CK_FALSE, null_mut(), &mut n);
        assert_eq!(
            C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut slot, null_mut()),
            CKR_NO_EVENT
        );
        assert_eq!(
            C_WaitForSlotEvent(0, null_mut(), null_mut()),
            CKR_ARGUMENTS_BAD
        );
    }
    let waiter = std::thread::spawn(|| {
        let mut slot = 0;
        unsafe { C_WaitForSlotEvent(0, &mut slot, null_mut()) }
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let t = std::time::Instant::now();
    assert_eq!(unsafe { C_Finalize(null_mut()) }, CKR_OK);
    assert_eq!(waiter.join().unwrap(), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert!(t.elapsed() < std::time::Duration::from_secs(3));
}

/// `CK_RSA_PKCS_PSS_PARAMS` read through the C interface (extended card: PSS advertised).
#[test]
fn pss_parameters_through_c() {
    let _guard = SERIAL.lock();
    let readers = InProcessReaders::new();
    let vc = Arc::new(Mutex::new(VirtualCard::new(
        test_state(),
        Profile::Extended,
    )));
    let atr = vc.lock().atr();
    let sim = SimulatedCard::new(atr, move |apdu| vc.lock().process_apdu(apdu));
    readers.insert_card("Reader A", sim);
    let r = readers.clone();
    module::initialize(move || Box::new(r)).expect("initialize");
    let h = open(0);
    assert_eq!(login(h, b"1234"), CKR_OK);
    let key = find_one(h, CKO_PRIVATE_KEY);
    let pubk = find_one(h, CKO_PUBLIC_KEY);
    let params: *mut CK_RSA_PKCS_PSS_PARAMS = Box::into_raw(Box::new(CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        sLen: 32,
    }));
    let mut mech = CK_MECHANISM {
        mechanism: CKM_RSA_PKCS_PSS,
        pParameter: params as *mut c_void,
        ulParameterLen: std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>() as CK_ULONG,
    };
    let mut hash = [0x5Au8; 32];
    let mut sig = [0u8; 256];
    let mut sig_len = sig.len() as CK_ULONG;
    unsafe {
        assert_eq!(C_SignInit(h, &mut mech, key), CKR_OK);
        assert_eq!(
            C_Sign(h, hash.as_mut_ptr(), 32, sig.as_mut_ptr(), &mut sig_len),
            CKR_OK
        );
        assert_eq!(sig_len, 256);
        assert_eq!(C_VerifyInit(h, &mut mech, pubk), CKR_OK);
        assert_eq!(
            C_Verify(h, hash.as_mut_ptr(), 32, sig.as_mut_ptr(), sig_len),
            CKR_OK
        );
        // Wrong salt length, wrong size of the parameter, no parameter.
        (*params).sLen = 20;
        assert_eq!(C_SignInit(h, &mut mech, key), CKR_MECHANISM_PARAM_INVALID);
        (*params).sLen = 32;
        mech.ulParameterLen -= 1;
        assert_eq!(C_SignInit(h, &mut mech, key), CKR_MECHANISM_PARAM_INVALID);
        mech.pParameter = null_mut();
        mech.ulParameterLen = 0;
        assert_eq!(C_SignInit(h, &mut mech, key), CKR_MECHANISM_PARAM_INVALID);
        drop(Box::from_raw(params));
    }
    finalize();
}
