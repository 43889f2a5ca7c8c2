//! Parallel function management functions (PKCS#11 3.0 §5.17): legacy, always
//! `CKR_FUNCTION_NOT_PARALLEL`.

use cryptoki_sys::*;

use super::m;
use crate::ffi::guard;
use crate::pkcs11::Error;

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
