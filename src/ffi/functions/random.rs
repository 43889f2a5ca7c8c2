//! Random number generation functions (PKCS#11 3.0 §5.16): the operating system's generator
//! (CKF_RNG; docs/conformance.md).

use cryptoki_sys::*;

use super::{m, require};
use crate::ffi::{call, ptr};
use crate::pkcs11::Error;

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    // The kernel's generator takes no seed from applications.
    call(
        "C_SeedRandom",
        format_args!("session={session}, len={len}"),
        || {
            let m = m()?;
            require(seed)?;
            m.session(session)?;
            Err(Error::Other(CKR_RANDOM_SEED_NOT_SUPPORTED))
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    len: CK_ULONG,
) -> CK_RV {
    call(
        "C_GenerateRandom",
        format_args!("session={session}, len={len}"),
        || {
            let m = m()?;
            require(out)?;
            m.session(session)?;
            let n = usize::try_from(len).map_err(|_| Error::ArgumentsBad)?;
            let buf = unsafe { ptr::slice_mut(out, n) }?;
            getrandom::getrandom(buf).map_err(|e| {
                log::error!("the operating system's random generator failed: {e}");
                Error::FunctionFailed
            })
        },
    )
}
