//! Key management functions (PKCS#11 3.0 §5.15): the token is read-only. Argument errors
//! come first (docs/conformance.md).

use cryptoki_sys::*;

use super::{m, object_template, require};
use crate::ffi::{call, ptr};
use crate::pkcs11::Error;

#[no_mangle]
pub unsafe extern "C" fn C_GenerateKey(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    // Argument errors first, then the token's write protection.
    call(
        "C_GenerateKey",
        format_args!("session={session}, count={count}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            unsafe { object_template(template, count) }?;
            require(key)?;
            m.refuse_write(session)
        },
    )
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
    call(
        "C_GenerateKeyPair",
        format_args!("session={session}, pub_count={pub_count}, priv_count={priv_count}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            unsafe { object_template(pub_template, pub_count) }?;
            unsafe { object_template(priv_template, priv_count) }?;
            require(pub_key)?;
            require(priv_key)?;
            m.refuse_write(session)
        },
    )
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
    call(
        "C_WrapKey",
        format_args!("session={session}, key={_key}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            require(out_len)?;
            m.session(session)?;
            Err(Error::MechanismInvalid)
        },
    )
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
    call(
        "C_UnwrapKey",
        format_args!("session={session}, wrapped_len={wrapped_len}, count={count}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            unsafe { ptr::bytes(wrapped, wrapped_len) }?;
            unsafe { object_template(template, count) }?;
            require(key)?;
            m.session(session)?;
            Err(Error::MechanismInvalid)
        },
    )
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
    call(
        "C_DeriveKey",
        format_args!("session={session}, base={_base}, count={count}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            unsafe { object_template(template, count) }?;
            require(key)?;
            m.session(session)?;
            Err(Error::MechanismInvalid)
        },
    )
}
