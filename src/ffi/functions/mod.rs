//! The exported `C_*` functions of PKCS#11 2.40 and 3.0, one file per chapter of the
//! specification (as Kryoptic does). Each converts its pointers through `ffi::ptr`, runs inside
//! `ffi::guard`, and calls the pkcs11 layer.

use cryptoki_sys::*;

use super::pad;
use crate::pkcs11::module::{self, Module};
use crate::pkcs11::Result;

fn m() -> Result<std::sync::Arc<Module>> {
    module::get()
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
            guard(|| {
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
