//! General-purpose functions (PKCS#11 3.0 §5.4): initialise, finalise, library info.
//!
//! `C_GetFunctionList`, `C_GetInterfaceList` and `C_GetInterface` are in `ffi/lists.rs`.

use std::ffi::c_void;

use cryptoki_sys::*;

use super::{info, m, VERSION_2_40, VERSION_3_0};
use crate::ffi::{call, ptr};
use crate::pkcs11::module;
use crate::pkcs11::Error;
use crate::transport::pcsc::{cardlink, PcscReaders};

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(init_args: *mut c_void) -> CK_RV {
    call("C_Initialize", format_args!(""), || {
        crate::ffi::logger::init();
        let mut threads_allowed = true;
        let mut params = None;
        if !init_args.is_null() {
            let args = unsafe { ptr::input(init_args as *const CK_C_INITIALIZE_ARGS) }?;
            params = crate::ffi::params::read(args.pReserved)?;
            let set = [
                args.CreateMutex.is_some(),
                args.DestroyMutex.is_some(),
                args.LockMutex.is_some(),
                args.UnlockMutex.is_some(),
            ];
            let all = set.iter().all(|b| *b);
            if !all && set.iter().any(|b| *b) {
                return Err(Error::ArgumentsBad);
            }
            // Callbacks without CKF_OS_LOCKING_OK: we would have to use them; we only use OS
            // locks, so say so. With the flag, OS locks are what the application allows.
            if all && args.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(Error::CantLock);
            }
            // Without threads, each card connection is held by a helper process, bounded by
            // its socket's timeouts (transport::pcsc::cardlink).
            threads_allowed = args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS == 0;
        }
        module::initialize_for_host(threads_allowed, || {
            // Runs only when this call initialises, under the module's lock: the settings are
            // in place before any slot exists, and a C_Initialize that finds the module already
            // initialised (CKR_CRYPTOKI_ALREADY_INITIALIZED) changes none of them.
            crate::pkcs11::config::load(params.as_deref());
            Box::new(if threads_allowed {
                PcscReaders::new()
            } else {
                let module_dir = crate::ffi::own_path::module_dir();
                PcscReaders::without_threads(cardlink::locate(module_dir.as_deref()))
            })
        })?;
        log::debug!("initialized");
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    call("C_Finalize", format_args!(""), || {
        if !reserved.is_null() {
            // Check initialisation first, as other functions do.
            m()?;
            return Err(Error::ArgumentsBad);
        }
        module::finalize()
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(out: *mut CK_INFO) -> CK_RV {
    call("C_GetInfo", format_args!(""), || {
        m()?;
        unsafe { ptr::write(out, info(VERSION_2_40)) }
    })
}

/// `C_GetInfo` of the 3.0 interface: reports version 3.0.
pub(crate) unsafe extern "C" fn get_info_v3(out: *mut CK_INFO) -> CK_RV {
    call("C_GetInfo", format_args!(""), || {
        m()?;
        unsafe { ptr::write(out, info(VERSION_3_0)) }
    })
}
