//! Function lists and interfaces: `C_GetFunctionList`, `C_GetInterfaceList`, `C_GetInterface`.

use std::ffi::c_void;

use cryptoki_sys::*;

use super::functions::*;
use super::{guard, ptr};
use crate::pkcs11::Error;

macro_rules! function_list {
    ($ty:ident, $version:expr, $get_info:expr, { $($extra:ident),* }) => {
        $ty {
            version: $version,
            C_Initialize: Some(C_Initialize),
            C_Finalize: Some(C_Finalize),
            C_GetInfo: Some($get_info),
            C_GetFunctionList: Some(C_GetFunctionList),
            C_GetSlotList: Some(C_GetSlotList),
            C_GetSlotInfo: Some(C_GetSlotInfo),
            C_GetTokenInfo: Some(C_GetTokenInfo),
            C_GetMechanismList: Some(C_GetMechanismList),
            C_GetMechanismInfo: Some(C_GetMechanismInfo),
            C_InitToken: Some(C_InitToken),
            C_InitPIN: Some(C_InitPIN),
            C_SetPIN: Some(C_SetPIN),
            C_OpenSession: Some(C_OpenSession),
            C_CloseSession: Some(C_CloseSession),
            C_CloseAllSessions: Some(C_CloseAllSessions),
            C_GetSessionInfo: Some(C_GetSessionInfo),
            C_GetOperationState: Some(C_GetOperationState),
            C_SetOperationState: Some(C_SetOperationState),
            C_Login: Some(C_Login),
            C_Logout: Some(C_Logout),
            C_CreateObject: Some(C_CreateObject),
            C_CopyObject: Some(C_CopyObject),
            C_DestroyObject: Some(C_DestroyObject),
            C_GetObjectSize: Some(C_GetObjectSize),
            C_GetAttributeValue: Some(C_GetAttributeValue),
            C_SetAttributeValue: Some(C_SetAttributeValue),
            C_FindObjectsInit: Some(C_FindObjectsInit),
            C_FindObjects: Some(C_FindObjects),
            C_FindObjectsFinal: Some(C_FindObjectsFinal),
            C_EncryptInit: Some(C_EncryptInit),
            C_Encrypt: Some(C_Encrypt),
            C_EncryptUpdate: Some(C_EncryptUpdate),
            C_EncryptFinal: Some(C_EncryptFinal),
            C_DecryptInit: Some(C_DecryptInit),
            C_Decrypt: Some(C_Decrypt),
            C_DecryptUpdate: Some(C_DecryptUpdate),
            C_DecryptFinal: Some(C_DecryptFinal),
            C_DigestInit: Some(C_DigestInit),
            C_Digest: Some(C_Digest),
            C_DigestUpdate: Some(C_DigestUpdate),
            C_DigestKey: Some(C_DigestKey),
            C_DigestFinal: Some(C_DigestFinal),
            C_SignInit: Some(C_SignInit),
            C_Sign: Some(C_Sign),
            C_SignUpdate: Some(C_SignUpdate),
            C_SignFinal: Some(C_SignFinal),
            C_SignRecoverInit: Some(C_SignRecoverInit),
            C_SignRecover: Some(C_SignRecover),
            C_VerifyInit: Some(C_VerifyInit),
            C_Verify: Some(C_Verify),
            C_VerifyUpdate: Some(C_VerifyUpdate),
            C_VerifyFinal: Some(C_VerifyFinal),
            C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
            C_VerifyRecover: Some(C_VerifyRecover),
            C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
            C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
            C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
            C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
            C_GenerateKey: Some(C_GenerateKey),
            C_GenerateKeyPair: Some(C_GenerateKeyPair),
            C_WrapKey: Some(C_WrapKey),
            C_UnwrapKey: Some(C_UnwrapKey),
            C_DeriveKey: Some(C_DeriveKey),
            C_SeedRandom: Some(C_SeedRandom),
            C_GenerateRandom: Some(C_GenerateRandom),
            C_GetFunctionStatus: Some(C_GetFunctionStatus),
            C_CancelFunction: Some(C_CancelFunction),
            C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
            $($extra: Some($extra),)*
        }
    };
}

static FUNCTION_LIST: CK_FUNCTION_LIST =
    function_list!(CK_FUNCTION_LIST, VERSION_2_40, C_GetInfo, {});

static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = function_list!(
    CK_FUNCTION_LIST_3_0, VERSION_3_0, get_info_v3, {
        C_GetInterfaceList, C_GetInterface, C_LoginUser, C_SessionCancel,
        C_MessageEncryptInit, C_EncryptMessage, C_EncryptMessageBegin, C_EncryptMessageNext,
        C_MessageEncryptFinal, C_MessageDecryptInit, C_DecryptMessage, C_DecryptMessageBegin,
        C_DecryptMessageNext, C_MessageDecryptFinal, C_MessageSignInit, C_SignMessage,
        C_SignMessageBegin, C_SignMessageNext, C_MessageSignFinal, C_MessageVerifyInit,
        C_VerifyMessage, C_VerifyMessageBegin, C_VerifyMessageNext, C_MessageVerifyFinal
    }
);

static INTERFACE_NAME: &[u8] = b"PKCS 11\0";

/// The interfaces we offer: "PKCS 11" 3.0 (the default, first) and 2.40.
struct Interfaces([CK_INTERFACE; 2]);

// SAFETY: the pointers point to immutable statics; nothing writes through them.
unsafe impl Sync for Interfaces {}

static INTERFACES: Interfaces = Interfaces([
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut c_void,
        flags: 0,
    },
]);

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| unsafe {
        ptr::write(
            list,
            &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(
    list: *mut CK_INTERFACE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let all = &INTERFACES.0;
        if let Some(out) = unsafe { ptr::output(list, count, all.len()) }? {
            for (o, i) in out.iter_mut().zip(all.iter()) {
                *o = CK_INTERFACE {
                    pInterfaceName: i.pInterfaceName,
                    pFunctionList: i.pFunctionList,
                    flags: i.flags,
                };
            }
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    interface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    guard(|| {
        if interface.is_null() {
            return Err(Error::ArgumentsBad);
        }
        // NULL name: the default interface ("PKCS 11" 3.0). Other names (e.g. NSS probing
        // "Vendor NSS FIPS Interface") are not offered.
        if let Some(n) = unsafe { ptr::c_str(name) } {
            if n != &INTERFACE_NAME[..INTERFACE_NAME.len() - 1] {
                return Err(Error::ArgumentsBad);
            }
        }
        let wanted = if version.is_null() {
            None
        } else {
            let v = unsafe { ptr::input(version as *const CK_VERSION) }?;
            Some((v.major, v.minor))
        };
        let index = match wanted {
            None | Some((3, 0)) => 0,
            Some((2, _)) => 1,
            Some(_) => return Err(Error::ArgumentsBad),
        };
        let chosen = &INTERFACES.0[index];
        if flags & !chosen.flags != 0 {
            return Err(Error::ArgumentsBad);
        }
        unsafe {
            ptr::write(
                interface,
                chosen as *const CK_INTERFACE as *mut CK_INTERFACE,
            )
        }
    })
}
