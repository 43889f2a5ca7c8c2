//! Encryption and decryption functions (PKCS#11 3.0 §5.8, §5.9): not offered by the card.

use cryptoki_sys::*;

use super::m;
use crate::ffi::{call, ptr};
use crate::pkcs11::Error;

#[no_mangle]
pub unsafe extern "C" fn C_EncryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _key: CK_OBJECT_HANDLE,
) -> CK_RV {
    call(
        "C_EncryptInit",
        format_args!("session={session}, key={_key}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            m.session(session)?;
            Err(Error::MechanismInvalid)
        },
    )
}
not_initialized_op!(C_Encrypt, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_EncryptUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_EncryptFinal, a: *mut CK_BYTE, b: *mut CK_ULONG);
not_initialized_op!(C_Decrypt, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DecryptUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DecryptFinal, a: *mut CK_BYTE, b: *mut CK_ULONG);

#[no_mangle]
pub unsafe extern "C" fn C_DecryptInit(
    session: CK_SESSION_HANDLE,
    mech: *mut CK_MECHANISM,
    _key: CK_OBJECT_HANDLE,
) -> CK_RV {
    call(
        "C_DecryptInit",
        format_args!("session={session}, key={_key}"),
        || {
            let m = m()?;
            unsafe { ptr::mechanism(mech) }?;
            m.session(session)?;
            Err(Error::MechanismInvalid)
        },
    )
}
