//! Session management functions (PKCS#11 3.0 §5.6), with login and logout.

use std::ffi::c_void;

use cryptoki_sys::*;

use super::m;
use crate::ffi::{guard, ptr};
use crate::pkcs11::Error;

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
