//! Card I/O without threads: the card link to a helper process.
//!
//! When the host forbids the module to create threads (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`:
//! NSS, so Firefox and Chromium), no worker thread can bound a card that never answers, and
//! `SCardTransmit` has no timeout of its own. The specification forbids threads, not
//! processes: each connection's card is then held by a small helper process
//! (`jpki-pkcs11-cardlink`, [`server`]) that runs the same inline PC/SC code, and the module
//! ([`client`]) talks to it over a private socket pair whose timeouts are the bound. A helper
//! that does not answer in time is killed (docs/conformance.md, "No threads").
//!
//! Finding the helper ([`locate`]): `JPKI_PKCS11_CARDLINK` (a path, or `off`), else the file
//! next to the module (a build tree), else the package's place beside the module's directory
//! (`<libdir>/jpki-pkcs11/`), else `/usr/libexec/jpki-pkcs11/`. None found, or none that
//! starts: the inline path (calls on the caller's thread, no bound) with one warning.

pub mod client;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

/// File name of the helper program.
pub const HELPER_NAME: &str = "jpki-pkcs11-cardlink";
/// Environment variable naming the helper (`off`: no helper).
pub const HELPER_ENV: &str = "JPKI_PKCS11_CARDLINK";
/// Where a hand install puts the helper.
const LIBEXEC: &str = "/usr/libexec/jpki-pkcs11";

/// The helper to use, for a module in `module_dir` (the directory of the loaded module file,
/// when known). `None`: card I/O on the caller's thread; the reason was logged (one warning,
/// or nothing when `JPKI_PKCS11_CARDLINK=off` asked for it).
pub fn locate(module_dir: Option<&Path>) -> Option<PathBuf> {
    locate_with(std::env::var_os(HELPER_ENV).as_deref(), module_dir)
}

fn locate_with(setting: Option<&std::ffi::OsStr>, module_dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(value) = setting {
        if value == "off" {
            log::info!("{HELPER_ENV}=off: card I/O runs on the calling thread, without a bound");
            return None;
        }
        let path = Path::new(value);
        if path.is_absolute() && is_file(path) {
            return Some(path.to_path_buf());
        }
        log::warn!(
            "{HELPER_ENV}={}: not an absolute path to a file (ignored; the default places are used)",
            path.display()
        );
    }
    let mut places = Vec::new();
    if let Some(dir) = module_dir {
        places.push(dir.join(HELPER_NAME));
        if let Some(libdir) = dir.parent() {
            places.push(libdir.join("jpki-pkcs11").join(HELPER_NAME));
        }
    }
    places.push(Path::new(LIBEXEC).join(HELPER_NAME));
    let found = places.iter().find(|p| is_file(p)).cloned();
    if found.is_none() {
        log::warn!(
            "no {HELPER_NAME} found ({}): card I/O runs on the calling thread, and a card that \
             never answers is not bounded",
            places
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    found
}

fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order() {
        let dir = std::env::temp_dir().join(format!("jpki-cardlink-{}", std::process::id()));
        let module_dir = dir.join("lib/pkcs11");
        let packaged = dir.join("lib/jpki-pkcs11");
        std::fs::create_dir_all(&module_dir).unwrap();
        std::fs::create_dir_all(&packaged).unwrap();
        let beside = module_dir.join(HELPER_NAME);
        let in_package = packaged.join(HELPER_NAME);
        std::fs::write(&in_package, b"").unwrap();
        // The package's place, when nothing is next to the module.
        assert_eq!(
            locate_with(None, Some(&module_dir)),
            Some(in_package.clone())
        );
        // Next to the module (a build tree) comes first.
        std::fs::write(&beside, b"").unwrap();
        assert_eq!(locate_with(None, Some(&module_dir)), Some(beside.clone()));
        // The variable comes before both; `off` means none; a bad value is ignored.
        let named = dir.join("elsewhere");
        std::fs::write(&named, b"").unwrap();
        assert_eq!(
            locate_with(Some(named.as_os_str()), Some(&module_dir)),
            Some(named.clone())
        );
        assert_eq!(locate_with(Some("off".as_ref()), Some(&module_dir)), None);
        for bad in ["relative/path", "/nonexistent/jpki", ""] {
            assert_eq!(
                locate_with(Some(bad.as_ref()), Some(&module_dir)),
                Some(beside.clone()),
                "{bad}"
            );
        }
        // A directory of that name is not a helper.
        std::fs::remove_file(&beside).unwrap();
        std::fs::create_dir(&beside).unwrap();
        assert_eq!(locate_with(None, Some(&module_dir)), Some(in_package));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
