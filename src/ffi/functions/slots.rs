//! Slot and token management functions (PKCS#11 3.0 §5.5).

use std::ffi::c_void;

use cryptoki_sys::*;

use super::m;
use crate::ffi::{guard, pad, ptr};
use crate::pkcs11::Error;

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
