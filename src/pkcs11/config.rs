//! The module's few settings, read once from the environment of the host process.
//!
//! No setting touches PINs or authentication: the module has no test mode and takes no PIN
//! from anywhere but `C_Login`.

use once_cell::sync::Lazy;

use crate::notify::NotifyPolicy;

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
    /// `JPKI_PKCS11_HISTORY=on|off` (default on): write the usage history (src/history).
    pub history: bool,
    /// `JPKI_PKCS11_NOTIFY=sign|all|off` (default sign): desktop notification (src/notify).
    pub notify: NotifyPolicy,
}

/// `JPKI_PKCS11_NOTIFY`, or `sign` with a warning for a value it is not.
fn notify_policy() -> NotifyPolicy {
    match std::env::var("JPKI_PKCS11_NOTIFY") {
        Err(_) => NotifyPolicy::Sign,
        Ok(v) => NotifyPolicy::parse(&v).unwrap_or_else(|| {
            log::warn!("JPKI_PKCS11_NOTIFY={v:?} is not 'sign', 'all' or 'off'; using 'sign'");
            NotifyPolicy::Sign
        }),
    }
}

/// An `on`/`off` knob: its value, or `default` with a warning for anything else.
fn on_off(var: &str, default: bool) -> bool {
    match std::env::var(var).as_deref() {
        Err(_) => default,
        Ok("on" | "1" | "yes" | "true") => true,
        Ok("off" | "0" | "no" | "false") => false,
        Ok(other) => {
            log::warn!("{var}={other:?} is not 'on' or 'off'; using the default");
            default
        }
    }
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
        Config {
            sign_cert_lookup,
            history: on_off("JPKI_PKCS11_HISTORY", true),
            notify: notify_policy(),
        }
    }
}

/// The settings, read on first use.
pub fn get() -> Config {
    static CONFIG: Lazy<Config> = Lazy::new(Config::from_env);
    *CONFIG
}
