//! The module's few settings, read once from the environment of the host process.
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
    /// `JPKI_PKCS11_CACHE=on|off`, or `cache = on|off` in the configuration file. On by default.
    pub cache: bool,
    /// Extended-length READ BINARY, detected per card and reader with a fallback
    /// (`card/jpki/extended.rs`): `JPKI_PKCS11_EXTENDED_APDU=auto|off`, or
    /// `extended-apdu = auto|off` in the configuration file. `auto` by default.
    pub extended_apdu: bool,
}

/// The configuration file: `$XDG_CONFIG_HOME/jpki-pkcs11/jpki-pkcs11.conf`, else
/// `$HOME/.config/jpki-pkcs11/jpki-pkcs11.conf`. Lines `key = value`; `#` starts a comment.
/// An environment variable overrides the file's line for the same setting.
fn config_file() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".config"))
        })?;
    Some(base.join("jpki-pkcs11").join("jpki-pkcs11.conf"))
}

/// `(key, value)` lines of the configuration file (none if it does not exist or is unreadable).
fn file_settings() -> Vec<(String, String)> {
    let Some(path) = config_file() else {
        return Vec::new();
    };
    let Ok(meta) = std::fs::metadata(&path) else {
        return Vec::new();
    };
    // A small text file; anything else is not a configuration file.
    if !meta.is_file() || meta.len() > 64 * 1024 {
        log::warn!("{} is not a small regular file; ignored", path.display());
        return Vec::new();
    }
    let Ok(text) = std::fs::read_to_string(&path) else {
        log::warn!("{} could not be read as text; ignored", path.display());
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => out.push((k.trim().to_string(), v.trim().to_string())),
            None => log::warn!("{}: line {line:?} is not 'key = value'", path.display()),
        }
    }
    out
}

/// The value of a setting: the environment variable, else the file's line.
fn setting(env: &str, key: &str, file: &[(String, String)]) -> Option<(String, String)> {
    if let Ok(v) = std::env::var(env) {
        return Some((env.to_string(), v));
    }
    file.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| (format!("{key} (configuration file)"), v.clone()))
}

/// An on/off setting; a bad value warns and keeps the default.
fn switch(env: &str, key: &str, on: &str, file: &[(String, String)]) -> bool {
    match setting(env, key, file) {
        None => true,
        Some((_, v)) if v == on => true,
        Some((_, v)) if v == "off" => false,
        Some((name, v)) => {
            log::warn!("{name}={v:?} is not '{on}' or 'off'; using '{on}'");
            true
        }
    }
}

impl Config {
    fn from_env() -> Config {
        let file = file_settings();
        let sign_cert_lookup =
            match setting("JPKI_PKCS11_SIGN_CERT_LOOKUP", "sign-cert-lookup", &file) {
                Some((_, v)) if v == "after-login" => SignCertLookup::AfterLogin,
                None => SignCertLookup::WithoutLogin,
                Some((_, v)) if v == "without-login" => SignCertLookup::WithoutLogin,
                Some((name, other)) => {
                    log::warn!(
                        "{name}={other:?} is not 'without-login' or 'after-login'; using \
                     'without-login'"
                    );
                    SignCertLookup::WithoutLogin
                }
            };
        let known = ["sign-cert-lookup", "cache", "extended-apdu"];
        for (k, _) in &file {
            if !known.contains(&k.as_str()) {
                log::warn!("configuration file: unknown setting {k:?} ignored");
            }
        }
        Config {
            sign_cert_lookup,
            // Unit tests (in-process cards) never touch the user's cache directory.
            cache: !cfg!(test) && switch("JPKI_PKCS11_CACHE", "cache", "on", &file),
            extended_apdu: switch("JPKI_PKCS11_EXTENDED_APDU", "extended-apdu", "auto", &file),
        }
    }
}

/// The settings, read on first use.
pub fn get() -> Config {
    static CONFIG: Lazy<Config> = Lazy::new(Config::from_env);
    *CONFIG
}
