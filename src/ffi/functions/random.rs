//! Random number generation functions (PKCS#11 3.0 §5.16): no RNG is offered (CKF_RNG not set).

use cryptoki_sys::*;

use super::m;
use crate::ffi::guard;
use crate::pkcs11::Error;

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    _seed: *mut CK_BYTE,
    _len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::RandomNoRng)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    _out: *mut CK_BYTE,
    _len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        m()?.session(session)?;
        Err(Error::RandomNoRng)
    })
}
