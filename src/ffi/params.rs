//! The module parameter string that NSS (`modutil -string`, `parameters=`) and p11-kit
//! (`x-init-reserved`) pass in `CK_C_INITIALIZE_ARGS.pReserved`.
//!
//! PKCS#11 says `pReserved` is NULL, so a caller that sets it is either one of those (a
//! NUL-terminated string) or confused. The string is read through `process_vm_readv` on this
//! process, one page at a time, so a pointer that is not readable memory is a
//! `CKR_ARGUMENTS_BAD`, not a crash. Anything but a NUL-terminated UTF-8 string of at most
//! [`MAX_PARAMS`] bytes is `CKR_ARGUMENTS_BAD` too: it is not a parameter string.

use std::ffi::c_void;

use crate::pkcs11::config::file::MAX_PARAMS;
use crate::pkcs11::{Error, Result};

const PAGE: usize = 4096;

/// Copies readable bytes at `addr..addr+buf.len()` (within one page) into `buf`.
fn read_chunk(addr: usize, buf: &mut [u8]) -> Result<()> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` is our own buffer of that length; the kernel checks `remote` and fails
    // with EFAULT instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == buf.len() as isize {
        return Ok(());
    }
    let err = std::io::Error::last_os_error().raw_os_error();
    if n < 0 && matches!(err, Some(libc::ENOSYS) | Some(libc::EPERM)) {
        // A sandbox forbids the system call: trust the caller, as for every other pointer.
        // SAFETY: the PKCS#11 contract on a non-NULL pointer (see `ptr`).
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        return Ok(());
    }
    Err(Error::ArgumentsBad)
}

/// The parameter string at `p`, or `None` for NULL.
pub fn read(p: *const c_void) -> Result<Option<String>> {
    if p.is_null() {
        return Ok(None);
    }
    let mut addr = p as usize;
    let mut text = Vec::new();
    while text.len() <= MAX_PARAMS {
        let in_page = PAGE - addr % PAGE;
        let want = in_page.min(MAX_PARAMS + 1 - text.len());
        let mut chunk = vec![0u8; want];
        read_chunk(addr, &mut chunk)?;
        if let Some(end) = chunk.iter().position(|b| *b == 0) {
            text.extend_from_slice(&chunk[..end]);
            return String::from_utf8(text)
                .map(Some)
                .map_err(|_| Error::ArgumentsBad);
        }
        text.extend_from_slice(&chunk);
        addr = addr.checked_add(want).ok_or(Error::ArgumentsBad)?;
    }
    Err(Error::ArgumentsBad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_garbage() {
        let s = b"tokens=sign\0";
        assert_eq!(
            read(s.as_ptr() as _).unwrap().as_deref(),
            Some("tokens=sign")
        );
        assert_eq!(read(std::ptr::null()).unwrap(), None);
        assert_eq!(read(8 as _), Err(Error::ArgumentsBad));
        let long = vec![b'x'; 3 * PAGE];
        assert_eq!(read(long.as_ptr() as _), Err(Error::ArgumentsBad));
        let bad = b"tokens=\xff\0";
        assert_eq!(read(bad.as_ptr() as _), Err(Error::ArgumentsBad));
        // A string that ends right before an unreadable page is read.
        let mut v = vec![b'a'; 10];
        v.push(0);
        assert_eq!(read(v.as_ptr() as _).unwrap().unwrap().len(), 10);
    }
}
