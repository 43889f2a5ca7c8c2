//! Dual-function cryptographic functions (PKCS#11 3.0 §5.14): never initialised here.

use cryptoki_sys::*;

use super::m;
use crate::ffi::guard;
use crate::pkcs11::Error;

not_initialized_op!(C_DigestEncryptUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DecryptDigestUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_SignEncryptUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
not_initialized_op!(C_DecryptVerifyUpdate, a: *mut CK_BYTE, b: CK_ULONG, c: *mut CK_BYTE, d: *mut CK_ULONG);
