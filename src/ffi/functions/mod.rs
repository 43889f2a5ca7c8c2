//! The exported `C_*` functions of PKCS#11 2.40 and 3.0, one file per chapter of the
//! specification (as Kryoptic does). Each converts its pointers through `ffi::ptr`, runs inside
//! `ffi::guard`, and calls the pkcs11 layer.

use cryptoki_sys::*;

use super::{pad, ptr};
use crate::pkcs11::module::{self, Module, OperationKind};
use crate::pkcs11::session_objects::{MAX_OBJECT_BYTES, MAX_TEMPLATE_ATTRIBUTES};
use crate::pkcs11::{Error, Result};

fn m() -> Result<std::sync::Arc<Module>> {
    module::get()
}

/// Runs the body of a call of an active operation: on any error but `CKR_BUFFER_TOO_SMALL`
/// the operation ends, argument errors included (the specification's rule for `C_Sign`,
/// `C_SignUpdate`, `C_SignFinal` and their verify and digest counterparts).
pub(super) fn ending(
    m: &Module,
    session: CK_SESSION_HANDLE,
    kind: OperationKind,
    body: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let result = body();
    if let Err(e) = &result {
        if !matches!(e, Error::BufferTooSmall { .. }) {
            m.end_operation(session, kind);
        }
    }
    result
}

/// A NULL length pointer of an output: an argument error, checked before any state.
pub(super) fn require<T>(p: *const T) -> Result<()> {
    if p.is_null() {
        Err(Error::ArgumentsBad)
    } else {
        Ok(())
    }
}

/// A template that creates or changes an object, copied out of the caller's memory only
/// within the session-object caps (`CKR_DEVICE_MEMORY` beyond them).
pub(super) unsafe fn object_template(
    p: *const CK_ATTRIBUTE,
    n: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    if n > 0 && p.is_null() {
        return Err(Error::ArgumentsBad);
    }
    if usize::try_from(n).map_or(true, |n| n > MAX_TEMPLATE_ATTRIBUTES) {
        return Err(Error::Other(CKR_DEVICE_MEMORY));
    }
    if n > 0 {
        // SAFETY: non-NULL and valid for n attributes by the caller's contract.
        let attrs = unsafe { std::slice::from_raw_parts(p, n as usize) };
        let total = attrs.iter().try_fold(0usize, |sum, a| {
            usize::try_from(a.ulValueLen)
                .ok()
                .and_then(|v| sum.checked_add(v))
        });
        if total.map_or(true, |t| t > MAX_OBJECT_BYTES) {
            return Err(Error::Other(CKR_DEVICE_MEMORY));
        }
    }
    unsafe { ptr::template(p, n) }
}

fn library_version() -> CK_VERSION {
    CK_VERSION {
        major: env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
        minor: env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
    }
}

pub(crate) fn info(version: CK_VERSION) -> CK_INFO {
    CK_INFO {
        cryptokiVersion: version,
        manufacturerID: pad("jpki-pkcs11"),
        flags: 0,
        libraryDescription: pad("My Number Card (JPKI) PKCS#11"),
        libraryVersion: library_version(),
    }
}

pub(crate) const VERSION_2_40: CK_VERSION = CK_VERSION {
    major: 2,
    minor: 40,
};
pub(crate) const VERSION_3_0: CK_VERSION = CK_VERSION { major: 3, minor: 0 };

/// An operation that this module never initialises (no encryption, decryption, recovery or
/// dual-function mechanism): a valid session gets `CKR_OPERATION_NOT_INITIALIZED`.
macro_rules! not_initialized_op {
    ($name:ident, $($arg:ident: $ty:ty),*) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(session: CK_SESSION_HANDLE, $($arg: $ty),*) -> CK_RV {
            $(let _ = $arg;)*
            call(stringify!($name), format_args!("session={session}"), || {
                m()?.session(session)?;
                Err(Error::OperationNotInitialized)
            })
        }
    };
}

mod digest;
mod dual;
mod encryption;
mod general;
mod keys;
mod message;
mod objects;
mod parallel;
mod random;
mod sessions;
mod signing;
mod slots;

pub(crate) use digest::*;
pub(crate) use dual::*;
pub(crate) use encryption::*;
pub(crate) use general::*;
pub(crate) use keys::*;
pub(crate) use message::*;
pub(crate) use objects::*;
pub(crate) use parallel::*;
pub(crate) use random::*;
pub(crate) use sessions::*;
pub(crate) use signing::*;
pub(crate) use slots::*;
