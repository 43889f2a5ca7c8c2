//! The C interface: every exported `C_*` function.
//!
//! Each function converts its pointers through [`ptr`] (the one module that touches raw
//! memory), runs inside [`guard`] (a panic becomes `CKR_GENERAL_ERROR`), calls the core, and
//! turns the core's error into a `CK_RV` through [`crate::pkcs11::Error::rv`] — in one place.

// The safety contract of every `unsafe extern "C"` function here is the PKCS#11 specification's
// contract on the caller's pointers; see `ptr`.
#![allow(clippy::missing_safety_doc)]

mod functions;
mod lists;
mod logger;
pub(crate) mod ptr;

#[cfg(test)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};

use cryptoki_sys::*;

use crate::pkcs11::Result;

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
