//! Message digesting functions (PKCS#11 3.0 §5.10).

use cryptoki_sys::*;

use super::{ending, m, require};
use crate::ffi::{call, ptr};
use crate::pkcs11::module::OperationKind;
use crate::pkcs11::Error;

#[no_mangle]
pub unsafe extern "C" fn C_DigestInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
) -> CK_RV {
    call("C_DigestInit", format_args!("session={session}"), || {
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
    call(
        "C_Digest",
        format_args!("session={session}, data_len={data_len}"),
        || {
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
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
) -> CK_RV {
    call(
        "C_DigestUpdate",
        format_args!("session={session}, data_len={data_len}"),
        || {
            let m = m()?;
            ending(&m, session, OperationKind::Digest, || {
                let data = unsafe { ptr::bytes(data, data_len) }?;
                m.digest_update(session, data)
            })
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestKey(session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> CK_RV {
    // Our only secret is the card's private key, which cannot be digested.
    call(
        "C_DigestKey",
        format_args!("session={session}, key={key}"),
        || {
            let m = m()?;
            m.digest_len(session)?;
            m.object(session, key).map_err(|e| match e {
                Error::ObjectHandleInvalid => Error::KeyHandleInvalid,
                other => other,
            })?;
            Err(Error::Other(CKR_KEY_INDIGESTIBLE))
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_DigestFinal(
    session: CK_SESSION_HANDLE,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> CK_RV {
    call("C_DigestFinal", format_args!("session={session}"), || {
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
