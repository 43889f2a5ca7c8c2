//! The module's few settings, read once from the environment of the host process
//! (README "Configuration").
//!
//! No setting touches PINs or authentication: the module has no test mode and takes no PIN
//! from anywhere but `C_Login`.

use once_cell::sync::Lazy;

/// How NSS-based programs may look up the signature token's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignCertLookup {
    /// Default. The signature token declares `CKP_PUBLIC_CERTIFICATES_TOKEN` like the
    /// authentication token, so NSS (Firefox, Chromium, Thunderbird) never asks for the
    /// signature password just to list certificates — without this, TLS client login with the
    /// authentication key first asked to unlock the signature token, and Chromium aborted the
    /// handshake when that was cancelled. The price: NSS tools that look the signature
    /// certificate up by nickname *without* logging in (cmsutil, signtool) cannot find it.
    WithoutLogin,
    /// `JPKI_PKCS11_SIGN_CERT_LOOKUP=after-login`: the signature token does not declare the
    /// profile, so NSS logs in to it before looking for certificates (cmsutil -S works; browsers
    /// then ask for the signature password during TLS login).
    AfterLogin,
}

/// Settings of this process.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub sign_cert_lookup: SignCertLookup,
    /// The disk cache of the card's public certificates (`cert_cache.rs`):
    /// `JPKI_PKCS11_CACHE=on|off`, on by default.
    pub cache: bool,
    /// Extended-length READ BINARY, detected per card and reader with a fallback
    /// (`card/jpki/extended.rs`): `JPKI_PKCS11_EXTENDED_APDU=auto|off`, `auto` by default.
    pub extended_apdu: bool,
}

/// An on/off setting: `on` (the default when unset), or `off`. A bad value warns and keeps
/// the default: a setting never makes a login fail.
fn switch(name: &str, on: &str) -> bool {
    match std::env::var(name).as_deref() {
        Err(_) => true,
        Ok(v) if v == on => true,
        Ok("off") => false,
        Ok(other) => {
            log::warn!("{name}={other:?} is not '{on}' or 'off'; using '{on}'");
            true
        }
    }
}

/// The two card-traffic settings, `(cache, extended_apdu)`, read together (docs/performance.md).
fn traffic_settings() -> (bool, bool) {
    // Unit tests (in-process cards) never touch the user's cache directory.
    let cache = !cfg!(test) && switch("JPKI_PKCS11_CACHE", "on");
    let extended_apdu = switch("JPKI_PKCS11_EXTENDED_APDU", "auto");
    (cache, extended_apdu)
}

impl Config {
    fn from_env() -> Config {
        let sign_cert_lookup = match std::env::var("JPKI_PKCS11_SIGN_CERT_LOOKUP").as_deref() {
            Ok("after-login") => SignCertLookup::AfterLogin,
            Ok("without-login") | Err(_) => SignCertLookup::WithoutLogin,
            Ok(other) => {
                log::warn!(
                    "JPKI_PKCS11_SIGN_CERT_LOOKUP={other:?} is not 'without-login' or \
                     'after-login'; using 'without-login'"
                );
                SignCertLookup::WithoutLogin
            }
        };
        let (cache, extended_apdu) = traffic_settings();
        Config {
            sign_cert_lookup,
            cache,
            extended_apdu,
        }
    }
}

/// The settings, read on first use.
pub fn get() -> Config {
    static CONFIG: Lazy<Config> = Lazy::new(Config::from_env);
    *CONFIG
}
