//! Where the loaded module file is: the card-link helper is looked up beside it
//! (`transport::pcsc::cardlink::locate`). `dladdr` is the one way to ask, and it takes a raw
//! pointer, so it lives here at the C boundary.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The directory of the module file this code was loaded from, if the dynamic linker knows
/// it. A relative name (a host that loaded `./libjpki_pkcs11.so`) is made absolute against the
/// current directory now, at `C_Initialize`.
pub(crate) fn module_dir() -> Option<PathBuf> {
    // SAFETY: all-zero is a valid Dl_info (pointers and integers), filled in by dladdr.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let here = module_dir as *const () as *const libc::c_void;
    // SAFETY: `here` is an address inside this module's code; `info` is a valid out pointer.
    if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr set dli_fname to a NUL-terminated string owned by the dynamic linker,
    // alive while the module is loaded; copied out at once.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(OsStr::from_bytes(name.to_bytes()));
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    path.parent().map(|p| p.to_path_buf())
}
