//! Message-based functions of PKCS#11 3.0 (§5.8 ff.): not supported.

use std::ffi::c_void;

use cryptoki_sys::*;

use super::m;
use crate::ffi::guard;
use crate::pkcs11::Error;

macro_rules! not_supported {
    ($name:ident, $($arg:ident: $ty:ty),*) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(session: CK_SESSION_HANDLE, $($arg: $ty),*) -> CK_RV {
            $(let _ = $arg;)*
            guard(|| {
                let _ = session;
                m()?;
                Err(Error::FunctionNotSupported)
            })
        }
    };
}

not_supported!(C_MessageEncryptInit, a: *mut CK_MECHANISM, b: CK_OBJECT_HANDLE);
not_supported!(C_EncryptMessage, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: CK_ULONG, g: *mut CK_BYTE, h: *mut CK_ULONG);
not_supported!(C_EncryptMessageBegin, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG);
not_supported!(C_EncryptMessageNext, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: *mut CK_ULONG, g: CK_FLAGS);
not_supported!(C_MessageEncryptFinal,);
not_supported!(C_MessageDecryptInit, a: *mut CK_MECHANISM, b: CK_OBJECT_HANDLE);
not_supported!(C_DecryptMessage, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: CK_ULONG, g: *mut CK_BYTE, h: *mut CK_ULONG);
not_supported!(C_DecryptMessageBegin, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG);
not_supported!(C_DecryptMessageNext, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: *mut CK_ULONG, g: CK_FLAGS);
not_supported!(C_MessageDecryptFinal,);
not_supported!(C_MessageSignInit, a: *mut CK_MECHANISM, b: CK_OBJECT_HANDLE);
not_supported!(C_SignMessage, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: *mut CK_ULONG);
not_supported!(C_SignMessageBegin, a: *mut c_void, b: CK_ULONG);
not_supported!(C_SignMessageNext, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: *mut CK_ULONG);
not_supported!(C_MessageSignFinal,);
not_supported!(C_MessageVerifyInit, a: *mut CK_MECHANISM, b: CK_OBJECT_HANDLE);
not_supported!(C_VerifyMessage, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: CK_ULONG);
not_supported!(C_VerifyMessageBegin, a: *mut c_void, b: CK_ULONG);
not_supported!(C_VerifyMessageNext, a: *mut c_void, b: CK_ULONG, c: *mut CK_BYTE, d: CK_ULONG, e: *mut CK_BYTE, f: CK_ULONG);
not_supported!(C_MessageVerifyFinal,);
