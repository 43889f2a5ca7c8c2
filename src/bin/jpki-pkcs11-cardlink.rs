//! jpki-pkcs11-cardlink: the card-link helper of the jpki-pkcs11 module.
//!
//! Not a program for people: the module starts it, one per card connection, when its host
//! forbids threads (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`), and talks to it over the socket
//! that is its standard input and output (`jpki_pkcs11::transport::pcsc::cardlink`). It exits
//! when the module closes that socket, so it never outlives the program that loaded the
//! module. Logs go to standard error under `JPKI_PKCS11_LOG`, as the module's do.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use jpki_pkcs11::transport::pcsc::cardlink::server::{serve, Stop};

fn main() -> ExitCode {
    // Before anything is opened: the host's descriptors are not the helper's to keep.
    jpki_pkcs11::close_inherited_descriptors();
    // The module's logger (`JPKI_PKCS11_LOG`, inherited from the host), under this name.
    jpki_pkcs11::init_log_named("jpki-pkcs11-cardlink");
    // The link without std's buffering (a buffer that is never zeroed would keep PINs): a
    // duplicate of the standard input, which is one end of a socket pair.
    let link = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(UnixStream::from)
    {
        Ok(link) => link,
        Err(e) => {
            eprintln!("jpki-pkcs11-cardlink: no link on standard input: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args_os().len() > 1 || link.peer_addr().is_err() {
        eprintln!(
            "jpki-pkcs11-cardlink: started by the jpki-pkcs11 module only (its standard input \
             is the module's socket)"
        );
        return ExitCode::from(2);
    }
    let mut input = &link;
    let mut output = &link;
    match serve(&mut input, &mut output) {
        Stop::Closed => ExitCode::SUCCESS,
        stop => {
            log::warn!("card link helper: {stop}");
            ExitCode::from(1)
        }
    }
}
