//! Key management functions (PKCS#11 3.0 §5.15): the token is read-only.

use cryptoki_sys::*;

use super::m;
use crate::ffi::guard;
use crate::pkcs11::Error;

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    session: CK_SESSION_HANDLE,
    _mech: *mut CK_MECHANISM,
    _template: *mut CK_ATTRIBUTE,
    _count: CK_ULONG,
    _key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| m()?.refuse_write(session))
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKeyPair(
    session: CK_SESSION_HANDLE,
    _mech: *mut CK_MECHANISM,
    _pub_template: *mut CK_ATTRIBUTE,
    _pub_count: CK_ULONG,
    _priv_template: *mut CK_ATTRIBUTE,
    _priv_count: CK_ULONG,
    _pub_key: *mut CK_OBJECT_HANDLE,
    _priv_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| m()?.refuse_write(session))
}

#[no_mangle]
pub unsafe extern "C" fn C_WrapKey(
    session: CK_SESSION_HANDLE,
    _mech: *mut CK_MECHANISM,
    _wrapping: CK_OBJECT_HANDLE,
    _key: CK_OBJECT_HANDLE,
    _out: *mut CK_BYTE,
    _out_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_UnwrapKey(
    session: CK_SESSION_HANDLE,
    _mech: *mut CK_MECHANISM,
    _unwrapping: CK_OBJECT_HANDLE,
    _wrapped: *mut CK_BYTE,
    _wrapped_len: CK_ULONG,
    _template: *mut CK_ATTRIBUTE,
    _count: CK_ULONG,
    _key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::MechanismInvalid)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    session: CK_SESSION_HANDLE,
    _mech: *mut CK_MECHANISM,
    _base: CK_OBJECT_HANDLE,
    _template: *mut CK_ATTRIBUTE,
    _count: CK_ULONG,
    _key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::MechanismInvalid)
    })
}
