//! The C interface: every exported `C_*` function.
//!
//! Each function converts its pointers through [`ptr`] (the one module that touches raw
//! memory), runs inside [`guard`] (a panic becomes `CKR_GENERAL_ERROR`), calls the core, and
//! turns the core's error into a `CK_RV` through [`crate::pkcs11::Error::rv`] — in one place.

// The one exception to Cargo.toml's `unsafe_code = "deny"`: the C boundary, this module and its
// children. No other module may allow it.
#![allow(unsafe_code)]
// The safety contract of every `unsafe extern "C"` function here is the PKCS#11 specification's
// contract on the caller's pointers; see `ptr`.
#![allow(clippy::missing_safety_doc)]

mod descriptors;
mod functions;
mod lists;
mod logger;
mod own_path;
mod params;
pub(crate) mod ptr;

pub use descriptors::close_inherited_descriptors;
pub use logger::init_named as init_log_named;

#[cfg(test)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};

use cryptoki_sys::*;

use crate::pkcs11::Result;

/// Runs the body of the exported function `name` through [`guard`] and, at debug level, leaves
/// one line in the log: the function, `args` (its handles, flags and lengths: never a PIN,
/// never the data to be signed or digested) and the `CK_RV` it returns. A user's log then shows
/// what the application asked for. `args` is formatted only when the line is logged.
pub(crate) fn call(
    name: &str,
    args: std::fmt::Arguments<'_>,
    f: impl FnOnce() -> Result<()>,
) -> CK_RV {
    let rv = guard(f);
    log::debug!("{name}({args}) = {}", rv_name(rv));
    rv
}

/// The name of a return value this module gives, for the trace; others in hexadecimal.
fn rv_name(rv: CK_RV) -> std::borrow::Cow<'static, str> {
    let name = match rv {
        CKR_OK => "CKR_OK",
        CKR_ARGUMENTS_BAD => "CKR_ARGUMENTS_BAD",
        CKR_BUFFER_TOO_SMALL => "CKR_BUFFER_TOO_SMALL",
        CKR_CANT_LOCK => "CKR_CANT_LOCK",
        CKR_CRYPTOKI_ALREADY_INITIALIZED => "CKR_CRYPTOKI_ALREADY_INITIALIZED",
        CKR_CRYPTOKI_NOT_INITIALIZED => "CKR_CRYPTOKI_NOT_INITIALIZED",
        CKR_DATA_LEN_RANGE => "CKR_DATA_LEN_RANGE",
        CKR_DEVICE_ERROR => "CKR_DEVICE_ERROR",
        CKR_DEVICE_REMOVED => "CKR_DEVICE_REMOVED",
        CKR_FUNCTION_FAILED => "CKR_FUNCTION_FAILED",
        CKR_FUNCTION_NOT_PARALLEL => "CKR_FUNCTION_NOT_PARALLEL",
        CKR_FUNCTION_NOT_SUPPORTED => "CKR_FUNCTION_NOT_SUPPORTED",
        CKR_GENERAL_ERROR => "CKR_GENERAL_ERROR",
        CKR_KEY_FUNCTION_NOT_PERMITTED => "CKR_KEY_FUNCTION_NOT_PERMITTED",
        CKR_KEY_HANDLE_INVALID => "CKR_KEY_HANDLE_INVALID",
        CKR_KEY_TYPE_INCONSISTENT => "CKR_KEY_TYPE_INCONSISTENT",
        CKR_MECHANISM_INVALID => "CKR_MECHANISM_INVALID",
        CKR_MECHANISM_PARAM_INVALID => "CKR_MECHANISM_PARAM_INVALID",
        CKR_NO_EVENT => "CKR_NO_EVENT",
        CKR_OBJECT_HANDLE_INVALID => "CKR_OBJECT_HANDLE_INVALID",
        CKR_OPERATION_ACTIVE => "CKR_OPERATION_ACTIVE",
        CKR_OPERATION_NOT_INITIALIZED => "CKR_OPERATION_NOT_INITIALIZED",
        CKR_PIN_INCORRECT => "CKR_PIN_INCORRECT",
        CKR_PIN_INVALID => "CKR_PIN_INVALID",
        CKR_PIN_LEN_RANGE => "CKR_PIN_LEN_RANGE",
        CKR_PIN_LOCKED => "CKR_PIN_LOCKED",
        CKR_RANDOM_NO_RNG => "CKR_RANDOM_NO_RNG",
        CKR_SESSION_HANDLE_INVALID => "CKR_SESSION_HANDLE_INVALID",
        CKR_SESSION_PARALLEL_NOT_SUPPORTED => "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
        CKR_SESSION_READ_ONLY => "CKR_SESSION_READ_ONLY",
        CKR_SIGNATURE_INVALID => "CKR_SIGNATURE_INVALID",
        CKR_SIGNATURE_LEN_RANGE => "CKR_SIGNATURE_LEN_RANGE",
        CKR_SLOT_ID_INVALID => "CKR_SLOT_ID_INVALID",
        CKR_STATE_UNSAVEABLE => "CKR_STATE_UNSAVEABLE",
        CKR_TOKEN_NOT_PRESENT => "CKR_TOKEN_NOT_PRESENT",
        CKR_TOKEN_WRITE_PROTECTED => "CKR_TOKEN_WRITE_PROTECTED",
        CKR_USER_ALREADY_LOGGED_IN => "CKR_USER_ALREADY_LOGGED_IN",
        CKR_USER_NOT_LOGGED_IN => "CKR_USER_NOT_LOGGED_IN",
        CKR_USER_TYPE_INVALID => "CKR_USER_TYPE_INVALID",
        other => return format!("{other:#x}").into(),
    };
    name.into()
}

/// Runs the body of an exported function: unwinding stops here, errors become `CK_RV`.
pub(crate) fn guard(f: impl FnOnce() -> Result<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => {
            log::debug!("returning {e}");
            e.rv()
        }
        Err(_) => {
            log::error!("internal panic caught at the C boundary");
            CKR_GENERAL_ERROR
        }
    }
}

/// A blank-padded, not NUL-terminated fixed-size text field (truncated at a char boundary).
pub(crate) fn pad<const N: usize>(s: &str) -> [CK_UTF8CHAR; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}
