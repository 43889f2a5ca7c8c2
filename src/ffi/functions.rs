//! The exported `C_*` functions of PKCS#11 2.40 and 3.0.

use std::ffi::c_void;

use cryptoki_sys::*;

use super::ptr;
use super::{guard, pad};
use crate::core::module::{self, Module, OperationKind};
use crate::core::session_objects::{MAX_OBJECT_BYTES, MAX_TEMPLATE_ATTRIBUTES};
use crate::core::{Error, Result};
use crate::transport::pcsc::PcscReaders;

fn m() -> Result<std::sync::Arc<Module>> {
    module::get()
}

/// Runs the body of a call of an active operation: on any error but `CKR_BUFFER_TOO_SMALL`
/// the operation ends, argument errors included (the specification's rule for `C_Sign`,
/// `C_SignUpdate`, `C_SignFinal` and their verify and digest counterparts).
fn ending(
    m: &Module,
    session: CK_SESSION_HANDLE,
    kind: OperationKind,
    body: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let result = body();
    if let Err(e) = &result {
        if !matches!(e, Error::BufferTooSmall { .. }) {
            m.end_operation(session, kind);
        }
    }
    result
}

/// A NULL length pointer of an output: an argument error, checked before any state.
fn require<T>(p: *const T) -> Result<()> {
    if p.is_null() {
        Err(Error::ArgumentsBad)
    } else {
        Ok(())
    }
}

/// A template that creates or changes an object, copied out of the caller's memory only
/// within the session-object caps (`CKR_DEVICE_MEMORY` beyond them).
unsafe fn object_template(
    p: *const CK_ATTRIBUTE,
    n: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    if n > 0 && p.is_null() {
        return Err(Error::ArgumentsBad);
    }
    if usize::try_from(n).map_or(true, |n| n > MAX_TEMPLATE_ATTRIBUTES) {
        return Err(Error::Other(CKR_DEVICE_MEMORY));
    }
    if n > 0 {
        // SAFETY: non-NULL and valid for n attributes by the caller's contract.
        let attrs = unsafe { std::slice::from_raw_parts(p, n as usize) };
        let total = attrs.iter().try_fold(0usize, |sum, a| {
            usize::try_from(a.ulValueLen)
                .ok()
                .and_then(|v| sum.checked_add(v))
        });
        if total.map_or(true, |t| t > MAX_OBJECT_BYTES) {
            return Err(Error::Other(CKR_DEVICE_MEMORY));
        }
    }
    unsafe { ptr::template(p, n) }
}

fn library_version() -> CK_VERSION {
    CK_VERSION {
        major: env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
        minor: env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
    }
}

pub(crate) fn info(version: CK_VERSION) -> CK_INFO {
    CK_INFO {
        cryptokiVersion: version,
        manufacturerID: pad("jpki-pkcs11"),
        flags: 0,
        libraryDescription: pad("My Number Card (JPKI) PKCS#11"),
        libraryVersion: library_version(),
    }
}

pub(crate) const VERSION_2_40: CK_VERSION = CK_VERSION {
    major: 2,
    minor: 40,
};
pub(crate) const VERSION_3_0: CK_VERSION = CK_VERSION { major: 3, minor: 0 };

// ----- general purpose ---------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(init_args: *mut c_void) -> CK_RV {
    guard(|| {
        super::logger::init();
        let mut threads_allowed = true;
        if !init_args.is_null() {
            let args = unsafe { ptr::input(init_args as *const CK_C_INITIALIZE_ARGS) }?;
            if !ptr::is_null(args.pReserved) {
                return Err(Error::ArgumentsBad);
            }
            let set = [
                args.CreateMutex.is_some(),
                args.DestroyMutex.is_some(),
                args.LockMutex.is_some(),
                args.UnlockMutex.is_some(),
            ];
            let all = set.iter().all(|b| *b);
            if !all && set.iter().any(|b| *b) {
                return Err(Error::ArgumentsBad);
            }
            // Callbacks without CKF_OS_LOCKING_OK: we would have to use them; we only use OS
            // locks, so say so. With the flag, OS locks are what the application allows.
            if all && args.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(Error::CantLock);
            }
            // Without threads, card I/O runs on the caller's thread and a card that never
            // answers is bounded only by the reader driver (see transport::pcsc).
            threads_allowed = args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS == 0;
        }
        module::initialize(|| {
            Box::new(if threads_allowed {
                PcscReaders::new()
            } else {
                PcscReaders::without_threads()
            })
        })?;
        log::debug!("initialized");
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard(|| {
        if !reserved.is_null() {
            // Check initialisation first, as other functions do.
            m()?;
            return Err(Error::ArgumentsBad);
        }
        module::finalize()
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(out: *mut CK_INFO) -> CK_RV {
    guard(|| {
        m()?;
        unsafe { ptr::write(out, info(VERSION_2_40)) }
    })
}

/// `C_GetInfo` of the 3.0 interface: reports version 3.0.
pub(crate) unsafe extern "C" fn get_info_v3(out: *mut CK_INFO) -> CK_RV {
    guard(|| {
        m()?;
        unsafe { ptr::write(out, info(VERSION_3_0)) }
    })
}

// ----- slots and tokens --------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(
    token_present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let slots = m()?.slot_list(token_present != CK_FALSE);
        if let Some(out) = unsafe { ptr::output(list, count, slots.len()) }? {
            unsafe { ptr::finish_output(out, count, &slots) }?;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, out: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        let m = m()?;
        if out.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let si = m.slot_info(slot)?;
        let info = CK_SLOT_INFO {
            slotDescription: pad(&si.description),
            manufacturerID: pad("PC/SC"),
            flags: si.flags,
            hardwareVersion: CK_VERSION { major: 0, minor: 0 },
            firmwareVersion: CK_VERSION { major: 0, minor: 0 },
        };
        unsafe { ptr::write(out, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, out: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        let m = m()?;
        if out.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let ti = m.token_info(slot)?;
        let info = CK_TOKEN_INFO {
            label: pad(&ti.token.label),
            manufacturerID: pad("J-LIS (My Number Card)"),
            model: pad("JPKI AP"),
            serialNumber: pad(&ti.token.serial),
            flags: ti.token.flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: ti.sessions as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: ti.rw_sessions as CK_ULONG,
            ulMaxPinLen: ti.token.max_pin as CK_ULONG,
            ulMinPinLen: ti.token.min_pin as CK_ULONG,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION { major: 1, minor: 0 },
            firmwareVersion: CK_VERSION { major: 1, minor: 0 },
            // No clock on the card (CKF_CLOCK_ON_TOKEN not set): blank.
            utcTime: [b' '; 16],
        };
        unsafe { ptr::write(out, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let mechs = m()?.mechanism_list(slot)?;
        if let Some(out) = unsafe { ptr::output(list, count, mechs.len()) }? {
            unsafe { ptr::finish_output(out, count, &mechs) }?;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    mech: CK_MECHANISM_TYPE,
    out: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        if out.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let (min, max, flags) = m.mechanism_info(slot, mech)?;
        let info = CK_MECHANISM_INFO {
            ulMinKeySize: min,
            ulMaxKeySize: max,
            flags,
        };
        unsafe { ptr::write(out, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitToken(
    _slot: CK_SLOT_ID,
    _pin: *mut CK_UTF8CHAR,
    _pin_len: CK_ULONG,
    _label: *mut CK_UTF8CHAR,
) -> CK_RV {
    // The card is personalised by the issuer; it cannot be initialised.
    guard(|| {
        m()?;
        Err(Error::FunctionNotSupported)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_InitPIN(
    session: CK_SESSION_HANDLE,
    _pin: *mut CK_UTF8CHAR,
    _pin_len: CK_ULONG,
) -> CK_RV {
    // No security officer: PINs are reset at the municipal office only.
    guard(|| {
        m()?.session(session)?;
        Err(Error::FunctionNotSupported)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    session: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        let old = unsafe { ptr::required_bytes(old, old_len) }?;
        let new = unsafe { ptr::required_bytes(new, new_len) }?;
        m.set_pin(session, old, new)
    })
}

// ----- sessions ----------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    // Notification callbacks are never called (allowed by the specification).
    guard(|| {
        let m = m()?;
        if session.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let h = m.open_session(slot, flags)?;
        unsafe { ptr::write(session, h) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| m()?.close_session(session))
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard(|| m()?.close_all_sessions(slot))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(
    session: CK_SESSION_HANDLE,
    out: *mut CK_SESSION_INFO,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        if out.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let (slot, state, flags) = m.session_info(session)?;
        let info = CK_SESSION_INFO {
            slotID: slot,
            state,
            flags,
            ulDeviceError: 0,
        };
        unsafe { ptr::write(out, info) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetOperationState(
    session: CK_SESSION_HANDLE,
    _state: *mut CK_BYTE,
    _len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::StateUnsaveable)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetOperationState(
    session: CK_SESSION_HANDLE,
    _state: *mut CK_BYTE,
    _len: CK_ULONG,
    _enc_key: CK_OBJECT_HANDLE,
    _auth_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::Other(CKR_SAVED_STATE_INVALID))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        // No protected authentication path: a NULL PIN is a caller error.
        let pin = unsafe { ptr::required_bytes(pin, pin_len) }?;
        m.login(session, user, pin)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| m()?.logout(session))
}

#[no_mangle]
pub unsafe extern "C" fn C_LoginUser(
    session: CK_SESSION_HANDLE,
    _user: CK_USER_TYPE,
    _pin: *mut CK_UTF8CHAR,
    _pin_len: CK_ULONG,
    _username: *mut CK_UTF8CHAR,
    _username_len: CK_ULONG,
) -> CK_RV {
    // The card has no user names.
    guard(|| {
        m()?.session(session)?;
        Err(Error::FunctionNotSupported)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SessionCancel(session: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    guard(|| m()?.cancel_operations(session, flags))
}

// ----- objects -----------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    // Session objects only (docs/conformance.md); token objects: CKR_TOKEN_WRITE_PROTECTED.
    guard(|| {
        let m = m()?;
        require(object)?;
        let template = unsafe { object_template(template, count) }?;
        let h = m.create_object(session, &template)?;
        unsafe { ptr::write(object, h) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CopyObject(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    new: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        require(new)?;
        let template = unsafe { object_template(template, count) }?;
        let h = m.copy_object(session, object, &template)?;
        unsafe { ptr::write(new, h) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| m()?.destroy_object(session, object))
}

#[no_mangle]
pub unsafe extern "C" fn C_GetObjectSize(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        if size.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let o = m.object(session, object)?;
        unsafe { ptr::write(size, o.size() as CK_ULONG) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    use crate::core::object::AttrLookup;
    use ptr::AttributeBuffer;
    guard(|| {
        let m = m()?;
        let attrs = unsafe { ptr::template_mut(template, count) }?;
        let o = m.object(session, object)?;
        // Fill what we can; report the last problem found, in this precedence.
        let (mut sensitive, mut invalid, mut too_small) = (false, false, false);
        for a in attrs.iter_mut() {
            match o.attribute(a.type_) {
                AttrLookup::Value(v) => match unsafe { ptr::attribute_buffer(a, v.len()) } {
                    AttributeBuffer::LengthOnly => a.ulValueLen = v.len() as CK_ULONG,
                    AttributeBuffer::Room(buf) => {
                        buf.copy_from_slice(v);
                        a.ulValueLen = v.len() as CK_ULONG;
                    }
                    AttributeBuffer::TooSmall => {
                        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                        too_small = true;
                    }
                },
                AttrLookup::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    sensitive = true;
                }
                AttrLookup::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    invalid = true;
                }
            }
        }
        if sensitive {
            Err(Error::Other(CKR_ATTRIBUTE_SENSITIVE))
        } else if invalid {
            Err(Error::Other(CKR_ATTRIBUTE_TYPE_INVALID))
        } else if too_small {
            Err(Error::Other(CKR_BUFFER_TOO_SMALL))
        } else {
            Ok(())
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        let template = unsafe { object_template(template, count) }?;
        m.set_attributes(session, object, &template)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        let template = unsafe { ptr::template(template, count) }?;
        m.find_init(session, &template)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        if count.is_null() || (objects.is_null() && max > 0) {
            return Err(Error::ArgumentsBad);
        }
        let found = m.find_next(session, usize::try_from(max).unwrap_or(usize::MAX))?;
        if !found.is_empty() {
            // `objects` holds `max` >= found.len() handles.
            unsafe { ptr::slice_mut(objects, found.len()) }?.copy_from_slice(&found);
        }
        unsafe { ptr::write(count, found.len() as CK_ULONG) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| m()?.find_final(session))
}

// ----- encryption and decryption: not offered by the card ---------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        m.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

macro_rules! not_initialized_op {
    ($name:ident, $($arg:ident: $ty:ty),*) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(session: CK_SESSION_HANDLE, $($arg: $ty),*) -> CK_RV {
            $(let _ = $arg;)*
            guard(|| {
                m()?.session(session)?;
                Err(Error::OperationNotInitialized)
            })
        }
    };
}

not_initialized_op!(C_Encrypt, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_EncryptUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_EncryptFinal, a: *mut CK_BYTE, b: *mut CK_ULONG);
not_initialized_op!(C_Decrypt, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DecryptUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DecryptFinal, a: *mut CK_BYTE, b: *mut CK_ULONG);
not_initialized_op!(C_SignRecover, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_VerifyRecover, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DigestEncryptUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DecryptDigestUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_SignEncryptUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DecryptVerifyUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        m.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

// ----- digest ------------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        let mech = unsafe { ptr::mechanism(mech) }?;
        m.digest_init(session, mech)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Digest(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Digest, || {
            let data = unsafe { ptr::bytes(data, data_len) }?;
            require(digest_len)?;
            m.check_single_part(session, OperationKind::Digest)?;
            let needed = m.digest_len(session)?;
            if let Some(out) = unsafe { ptr::output(digest, digest_len, needed) }? {
                let d = m.digest(session, data)?;
                unsafe { ptr::finish_output(out, digest_len, &d) }?;
            }
            Ok(())
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Digest, || {
            let data = unsafe { ptr::bytes(data, data_len) }?;
            m.digest_update(session, data)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    // Our only secret is the card's private key, which cannot be digested.
    guard(|| {
        let m = m()?;
        m.digest_len(session)?;
        m.object(session, key).map_err(|e| match e {
            Error::ObjectHandleInvalid => Error::KeyHandleInvalid,
            other => other,
        })?;
        Err(Error::Other(CKR_KEY_INDIGESTIBLE))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    session: CK_SESSION_HANDLE,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Digest, || {
            require(digest_len)?;
            let needed = m.digest_len(session)?;
            if let Some(out) = unsafe { ptr::output(digest, digest_len, needed) }? {
                let d = m.digest_final(session)?;
                unsafe { ptr::finish_output(out, digest_len, &d) }?;
            }
            Ok(())
        })
    })
}

// ----- sign and verify ---------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        let (mech, param) = unsafe { ptr::mechanism_with_param(mech) }?;
        m.sign_init_with(session, mech, param, key)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Sign, || {
            let data = unsafe { ptr::bytes(data, data_len) }?;
            require(signature_len)?;
            m.check_single_part(session, OperationKind::Sign)?;
            let needed = m.sign_len(session)?;
            // NULL output or a short buffer: length only, the operation stays active.
            if let Some(out) = unsafe { ptr::output(signature, signature_len, needed) }? {
                let s = m.sign(session, data)?;
                unsafe { ptr::finish_output(out, signature_len, &s) }?;
            }
            Ok(())
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Sign, || {
            let part = unsafe { ptr::bytes(part, part_len) }?;
            m.sign_update(session, part)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Sign, || {
            require(signature_len)?;
            let needed = m.sign_len(session)?;
            if let Some(out) = unsafe { ptr::output(signature, signature_len, needed) }? {
                let s = m.sign_final(session)?;
                unsafe { ptr::finish_output(out, signature_len, &s) }?;
            }
            Ok(())
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignRecoverInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        m.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        let (mech, param) = unsafe { ptr::mechanism_with_param(mech) }?;
        m.verify_init_with(session, mech, param, key)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Verify, || {
            let data = unsafe { ptr::bytes(data, data_len) }?;
            let signature = unsafe { ptr::bytes(signature, signature_len) }?;
            m.check_single_part(session, OperationKind::Verify)?;
            m.verify(session, data, signature)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Verify, || {
            let part = unsafe { ptr::bytes(part, part_len) }?;
            m.verify_update(session, part)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        ending(&m, session, OperationKind::Verify, || {
            let signature = unsafe { ptr::bytes(signature, signature_len) }?;
            m.verify_final(session, signature)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyRecoverInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        m.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

// ----- key management: the token is read-only -------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    // Argument errors first, then the token's write protection.
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        unsafe { object_template(template, count) }?;
        require(key)?;
        m.refuse_write(session)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    pub_template: *mut CK_ATTRIBUTE,
    pub_count: CK_ULONG,
    priv_template: *mut CK_ATTRIBUTE,
    priv_count: CK_ULONG,
    pub_key: *mut CK_OBJECT_HANDLE,
    priv_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        unsafe { object_template(pub_template, pub_count) }?;
        unsafe { object_template(priv_template, priv_count) }?;
        require(pub_key)?;
        require(priv_key)?;
        m.refuse_write(session)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _wrapping: CK_OBJECT_HANDLE,
    _key: CK_OBJECT_HANDLE,
    _out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        require(out_len)?;
        m.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _unwrapping: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: CK_ULONG,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        unsafe { ptr::bytes(wrapped, wrapped_len) }?;
        unsafe { object_template(template, count) }?;
        require(key)?;
        m.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _base: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        unsafe { ptr::mechanism(mech) }?;
        unsafe { object_template(template, count) }?;
        require(key)?;
        m.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

// ----- random numbers: the operating system's generator (CKF_RNG; docs/conformance.md) ----

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    _len: CK_ULONG,
) -> CK_RV {
    // The kernel's generator takes no seed from applications.
    guard(|| {
        let m = m()?;
        require(seed)?;
        m.session(session)?;
        Err(Error::Other(CKR_RANDOM_SEED_NOT_SUPPORTED))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let m = m()?;
        require(out)?;
        m.session(session)?;
        let n = usize::try_from(len).map_err(|_| Error::ArgumentsBad)?;
        let buf = unsafe { ptr::slice_mut(out, n) }?;
        getrandom::getrandom(buf).map_err(|e| {
            log::error!("the operating system's random generator failed: {e}");
            Error::FunctionFailed
        })
    })
}

// ----- legacy parallel functions -----------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionStatus(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::Other(CKR_FUNCTION_NOT_PARALLEL))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CancelFunction(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::Other(CKR_FUNCTION_NOT_PARALLEL))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    slot: *mut CK_SLOT_ID,
    reserved: *mut c_void,
) -> CK_RV {
    guard(|| {
        // Only an Arc of the module is held while blocked: C_Finalize never waits for us.
        let m = m()?;
        if slot.is_null() || !reserved.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let s = m.wait_for_slot_event(flags & CKF_DONT_BLOCK != 0)?;
        unsafe { ptr::write(slot, s) }
    })
}

// ----- 3.0 message-based functions: not supported -----------------------------------------

macro_rules! not_supported {
    ($name:ident, $($arg:ident: $ty:ty),*) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(session: CK_SESSION_HANDLE, $($arg: $ty),*) -> CK_RV {
            $(let _ = $arg;)*
            guard(|| {
                let _ = session;
                m()?;
                Err(Error::FunctionNotSupported)
            })
        }
    };
}

not_supported!(C_MessageEncryptInit, a: *mut CK_MECHANISM, b: CK_OBJECT_HANDLE);
not_supported!(C_EncryptMessage, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: CK_ULONG, g: *mut CK_BYTE, h: *mut CK_ULONG);
not_supported!(C_EncryptMessageBegin, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG);
not_supported!(C_EncryptMessageNext, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: *mut CK_ULONG, g: CK_FLAGS);
not_supported!(C_MessageEncryptFinal,);
not_supported!(C_MessageDecryptInit, a: *mut CK_MECHANISM, b: CK_OBJECT_HANDLE);
not_supported!(C_DecryptMessage, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: CK_ULONG, g: *mut CK_BYTE, h: *mut CK_ULONG);
not_supported!(C_DecryptMessageBegin, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG);
not_supported!(C_DecryptMessageNext, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: *mut CK_ULONG, g: CK_FLAGS);
not_supported!(C_MessageDecryptFinal,);
not_supported!(C_MessageSignInit, a: *mut CK_MECHANISM, b: CK_OBJECT_HANDLE);
not_supported!(C_SignMessage, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: *mut CK_ULONG);
not_supported!(C_SignMessageBegin, a: *mut c_void, b: CK_ULONG);
not_supported!(C_SignMessageNext, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: *mut CK_ULONG);
not_supported!(C_MessageSignFinal,);
not_supported!(C_MessageVerifyInit, a: *mut CK_MECHANISM, b: CK_OBJECT_HANDLE);
not_supported!(C_VerifyMessage, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: CK_ULONG);
not_supported!(C_VerifyMessageBegin, a: *mut c_void, b: CK_ULONG);
not_supported!(C_VerifyMessageNext, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: CK_ULONG);
not_supported!(C_MessageVerifyFinal,);
