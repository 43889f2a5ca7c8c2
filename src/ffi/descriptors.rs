//! The descriptors the card-link helper inherits from its host.
//!
//! The module starts the helper (`transport::pcsc::cardlink`) from inside a host program that
//! may hold descriptors without close-on-exec: a C program's `pipe()` to a child it waits for,
//! a listening socket. A helper that kept them would keep them open for the life of the card
//! connection — the host's reader would never see the end of its pipe. Rust's own descriptors
//! are close-on-exec, but the host's are not ours to change, so the helper closes every
//! descriptor above standard error first thing. Closing a descriptor by number is a raw
//! system call, so it lives here at the OS boundary.

/// Closes every open descriptor above 2 of this process. For the helper's first line only,
/// before it opens anything of its own (nothing else runs yet, so no number is reused).
pub fn close_inherited_descriptors() {
    // The list first, then the closes: the directory's own descriptor is closed when the
    // iterator is dropped at the end of this statement (its close below is then EBADF).
    let open: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect(),
        Err(_) => {
            // No /proc (a chroot or an unusual sandbox): the kernel's own call, on Linux 5.9
            // and later. Failing that, nothing can be done; the helper still works.
            // SAFETY: closes descriptors only; nothing in this process uses any above 2 yet.
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            return;
        }
    };
    for fd in open {
        // SAFETY: `fd` is a descriptor number of this process that no Rust object owns yet
        // (the helper has opened nothing); closing it at most ends an inherited one.
        unsafe { libc::close(fd) };
    }
}
