//! Signing and MACing, verification functions (PKCS#11 3.0 §5.11, §5.13).

use cryptoki_sys::*;

use super::{ending, m, require};
use crate::ffi::{call, ptr};
use crate::pkcs11::module::OperationKind;
use crate::pkcs11::Error;

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    call(
        "C_SignInit",
        format_args!("session={session}, key={key}"),
        || {
            let m = m()?;
            let (mech, param) = unsafe { ptr::mechanism_with_param(mech) }?;
            m.sign_init_with(session, mech, param, key)
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    call(
        "C_Sign",
        format_args!("session={session}, data_len={data_len}"),
        || {
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
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> CK_RV {
    call(
        "C_SignUpdate",
        format_args!("session={session}, part_len={part_len}"),
        || {
            let m = m()?;
            ending(&m, session, OperationKind::Sign, || {
                let part = unsafe { ptr::bytes(part, part_len) }?;
                m.sign_update(session, part)
            })
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> CK_RV {
    call("C_SignFinal", format_args!("session={session}"), || {
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
    call(
        "C_SignRecoverInit",
        format_args!("session={session}, key={_key}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            m.session(session)?;
            Err(Error::MechanismInvalid)
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    call(
        "C_VerifyInit",
        format_args!("session={session}, key={key}"),
        || {
            let m = m()?;
            let (mech, param) = unsafe { ptr::mechanism_with_param(mech) }?;
            m.verify_init_with(session, mech, param, key)
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_Verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    call(
        "C_Verify",
        format_args!("session={session}, data_len={data_len}, signature_len={signature_len}"),
        || {
            let m = m()?;
            ending(&m, session, OperationKind::Verify, || {
                let data = unsafe { ptr::bytes(data, data_len) }?;
                let signature = unsafe { ptr::bytes(signature, signature_len) }?;
                m.check_single_part(session, OperationKind::Verify)?;
                m.verify(session, data, signature)
            })
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyUpdate(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> CK_RV {
    call(
        "C_VerifyUpdate",
        format_args!("session={session}, part_len={part_len}"),
        || {
            let m = m()?;
            ending(&m, session, OperationKind::Verify, || {
                let part = unsafe { ptr::bytes(part, part_len) }?;
                m.verify_update(session, part)
            })
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyFinal(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> CK_RV {
    call(
        "C_VerifyFinal",
        format_args!("session={session}, signature_len={signature_len}"),
        || {
            let m = m()?;
            ending(&m, session, OperationKind::Verify, || {
                let signature = unsafe { ptr::bytes(signature, signature_len) }?;
                m.verify_final(session, signature)
            })
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_VerifyRecoverInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _key: CK_OBJECT_HANDLE,
) -> CK_RV {
    call(
        "C_VerifyRecoverInit",
        format_args!("session={session}, key={_key}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            m.session(session)?;
            Err(Error::MechanismInvalid)
        },
    )
}

not_initialized_op!(C_SignRecover, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_VerifyRecover, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
