//! The module's few settings: which tokens a program sees, how NSS finds the signature
//! certificate, whether the usage history is written and which signatures are announced. This module owns them; `file` holds the key table and the text parsers.
//!
//! Sources, first found wins, key by key:
//! 1. the environment (`JPKI_PKCS11_TOKENS`, …) — one process;
//! 2. the module parameter string given to `C_Initialize` in `pReserved` (NSS
//!    `modutil -string` / `parameters=`, p11-kit `x-init-reserved`) — one registration;
//! 3. `$XDG_CONFIG_HOME/jpki-pkcs11/config` (default `~/.config/…`), then
//!    `/etc/jpki-pkcs11/config`: in each, the program's `[section]` before the top;
//! 4. the built-in defaults for known programs ([`BUILT_IN`]), then the key's default.
//!
//! A bad value is a warning (stderr, once per `C_Initialize`) and falls through to the next
//! source; nothing here can fail a login. No setting touches PINs: the module has no test mode
//! and takes no PIN from anywhere but `C_Login`.
//!
//! **Adding a setting** is one entry in [`file::KEYS`] (and its [`Key`] variant): see the
//! `file` module's "Adding a setting". Nothing in this file changes; read the value with
//! `config::get().value(Key::…)`, or add a typed accessor like [`Config::tokens`] next to it.

pub mod file;

use std::path::{Path, PathBuf};

use once_cell::sync::Lazy;
use parking_lot::RwLock;

use crate::card::KeyKind;
use crate::notify::NotifyPolicy;
use file::{FileSettings, Key, Settings};

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
    /// `after-login`: the signature token does not declare the profile, so NSS logs in to it
    /// before looking for certificates (cmsutil -S works; browsers then ask for the signature
    /// password during TLS login).
    AfterLogin,
}

/// Which of a card's two tokens get a slot in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokens {
    All,
    /// Only the authentication token (log-ins: ssh, PAM, TLS).
    Auth,
    /// Only the signature token (document signers).
    Sign,
}

impl Tokens {
    pub fn shows(self, kind: KeyKind) -> bool {
        matches!(
            (self, kind),
            (Tokens::All, _)
                | (Tokens::Auth, KeyKind::Authentication)
                | (Tokens::Sign, KeyKind::Signature)
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Tokens::All => "all",
            Tokens::Auth => "auth",
            Tokens::Sign => "sign",
        }
    }
}

/// Programs that get a default other than "all tokens", by executable file name.
///
/// Document signers see only the signature token: poppler (pdfsig, Okular) and LibreOffice
/// log in to every token that needs a login and answer only the first password prompt, so
/// the signature password would be offered to the authentication token (refused locally, no
/// try lost) and the signing would fail. They have no use for the authentication key.
pub const BUILT_IN: &[(&str, Key, &str)] = &[
    ("pdfsig", Key::Tokens, "sign"),
    ("okular", Key::Tokens, "sign"),
    ("soffice.bin", Key::Tokens, "sign"),
    ("soffice", Key::Tokens, "sign"),
    ("libreoffice", Key::Tokens, "sign"),
];

/// Where a value came from (`jpki doctor` shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Environment,
    Parameters,
    File(PathBuf),
    BuiltIn,
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Environment => f.write_str("environment"),
            Origin::Parameters => f.write_str("module parameters"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::BuiltIn => f.write_str("built-in default for this program"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// Settings of this process: for every key of [`file::KEYS`], its value (always one of the
/// key's words) and where it came from.
#[derive(Debug, Clone)]
pub struct Config {
    values: Vec<(Key, &'static str, Origin)>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            values: file::KEYS
                .iter()
                .map(|k| (k.key, k.default, Origin::Default))
                .collect(),
        }
    }
}

impl Config {
    /// The value of `key` and where it came from.
    pub fn get(&self, key: Key) -> (&'static str, &Origin) {
        match self.values.iter().find(|(k, _, _)| *k == key) {
            Some((_, v, o)) => (v, o),
            None => (key.info().default, &Origin::Default),
        }
    }

    /// The value of `key`: one of its words in [`file::KEYS`].
    pub fn value(&self, key: Key) -> &'static str {
        self.get(key).0
    }

    pub fn tokens(&self) -> Tokens {
        match self.value(Key::Tokens) {
            "auth" => Tokens::Auth,
            "sign" => Tokens::Sign,
            _ => Tokens::All,
        }
    }

    pub fn sign_cert_lookup(&self) -> SignCertLookup {
        match self.value(Key::SignCertLookup) {
            "after-login" => SignCertLookup::AfterLogin,
            _ => SignCertLookup::WithoutLogin,
        }
    }

    /// Whether the disk cache of the card's public certificates is used (`cert_cache.rs`,
    /// docs/performance.md). Never in the crate's unit tests: in-process cards must not touch
    /// the user's cache directory.
    pub fn cache(&self) -> bool {
        !cfg!(test) && self.value(Key::Cache) == "on"
    }

    /// Whether extended-length READ BINARY may be tried (`card/jpki/extended.rs`).
    pub fn extended_apdu(&self) -> bool {
        self.value(Key::ExtendedApdu) == "auto"
    }

    /// Whether the usage history is written (src/history).
    pub fn history(&self) -> bool {
        self.value(Key::History) != "off"
    }

    /// Which signatures get a desktop notification (src/notify).
    pub fn notify(&self) -> NotifyPolicy {
        match self.value(Key::Notify) {
            "off" => NotifyPolicy::Off,
            "all" => NotifyPolicy::All,
            _ => NotifyPolicy::Sign,
        }
    }
}

/// Everything the settings are resolved from (collected once; tests build it by hand).
#[derive(Debug, Default)]
pub struct Sources {
    pub env: Settings,
    pub params: Settings,
    /// User file first, then the system file.
    pub files: Vec<(PathBuf, FileSettings)>,
    pub warnings: Vec<String>,
}

impl Sources {
    /// Reads the environment, `params` and the two files.
    pub fn collect(params: Option<&str>) -> Sources {
        let mut s = Sources::default();
        for k in file::KEYS {
            if let Some(v) = std::env::var_os(k.env) {
                match v.to_str().map(|v| file::setting(k.name, v, k.env)) {
                    Some(Ok(set)) => s.env.0.push(set),
                    Some(Err(w)) => s.warnings.push(w),
                    None => s.warnings.push(format!("{}: not UTF-8; ignored", k.env)),
                }
            }
        }
        if let Some(p) = params {
            s.params = file::parse_params(p, &mut s.warnings);
        }
        for path in config_files() {
            if let Some(text) = read_small(&path, &mut s.warnings) {
                let parsed = file::parse_file(&text, &path.display().to_string(), &mut s.warnings);
                s.files.push((path, parsed));
            }
        }
        s
    }

    /// The value of `key` for `program`, and where it came from.
    fn lookup(&self, program: &str, key: Key) -> (&'static str, Origin) {
        if let Some(v) = self.env.get(key) {
            return (v, Origin::Environment);
        }
        if let Some(v) = self.params.get(key) {
            return (v, Origin::Parameters);
        }
        let in_file = self
            .files
            .iter()
            .find_map(|(path, f)| f.get(program, key).map(|v| (v, Origin::File(path.clone()))));
        if let Some(found) = in_file {
            return found;
        }
        match BUILT_IN.iter().find(|(p, k, _)| *p == program && *k == key) {
            Some((_, _, v)) => (v, Origin::BuiltIn),
            None => (key.info().default, Origin::Default),
        }
    }

    /// The settings `program` gets.
    pub fn resolve(&self, program: &str) -> Config {
        Config {
            values: file::KEYS
                .iter()
                .map(|k| {
                    let (v, o) = self.lookup(program, k.key);
                    (k.key, v, o)
                })
                .collect(),
        }
    }
}

/// The user's file, then the system's.
pub fn config_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let user_dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = user_dir {
        out.push(dir.join("jpki-pkcs11").join("config"));
    }
    out.push(PathBuf::from("/etc/jpki-pkcs11/config"));
    out
}

/// A file's text if it exists, is at most [`file::MAX_FILE`] bytes and is UTF-8.
fn read_small(path: &Path, warnings: &mut Vec<String>) -> Option<String> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!("{}: cannot read ({e}); ignored", path.display()));
            return None;
        }
    };
    let mut bytes = Vec::new();
    if let Err(e) = f.take(file::MAX_FILE as u64 + 1).read_to_end(&mut bytes) {
        warnings.push(format!("{}: cannot read ({e}); ignored", path.display()));
        return None;
    }
    if bytes.len() > file::MAX_FILE {
        warnings.push(format!(
            "{}: larger than {} bytes; ignored",
            path.display(),
            file::MAX_FILE
        ));
        return None;
    }
    match String::from_utf8(bytes) {
        Ok(t) => Some(t),
        Err(_) => {
            warnings.push(format!("{}: not UTF-8; ignored", path.display()));
            None
        }
    }
}

/// The executable file name of this process (`pdfsig`, `soffice.bin`, `firefox-esr`).
pub fn this_program() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| {
            std::env::args_os().next().and_then(|a| {
                Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
        })
        .unwrap_or_default()
}

static CONFIG: Lazy<RwLock<Option<Config>>> = Lazy::new(|| RwLock::new(None));

/// Resolves the settings for this process (`C_Initialize`, with its parameter string) and
/// prints each warning once on stderr: a mistyped setting must be visible, but never fatal.
pub fn load(params: Option<&str>) {
    let sources = Sources::collect(params);
    for w in &sources.warnings {
        eprintln!("jpki-pkcs11: warning: {w}");
        log::warn!("{w}");
    }
    let program = this_program();
    let config = sources.resolve(&program);
    for k in file::KEYS {
        let (v, origin) = config.get(k.key);
        log::debug!("configuration for {program:?}: {}={v} ({origin})", k.name);
    }
    *CONFIG.write() = Some(config);
}

/// Runs `f` on the settings. Before any `C_Initialize` (in-process unit tests) they are
/// resolved once without module parameters.
fn with<R>(f: impl FnOnce(&Config) -> R) -> R {
    if let Some(c) = CONFIG.read().as_ref() {
        return f(c);
    }
    let mut w = CONFIG.write();
    f(w.get_or_insert_with(|| Sources::collect(None).resolve(&this_program())))
}

/// The settings of this process.
pub fn get() -> Config {
    with(Config::clone)
}

/// Whether this process sees the token of `kind` (a hidden token has no slot).
pub fn shows(kind: KeyKind) -> bool {
    with(|c| c.tokens().shows(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(env: &str, params: &str, file: &str) -> Sources {
        let mut w = Vec::new();
        let mut s = Sources {
            env: file::parse_params(env, &mut w),
            params: file::parse_params(params, &mut w),
            ..Sources::default()
        };
        s.files
            .push(("user".into(), file::parse_file(file, "user", &mut w)));
        s
    }

    #[test]
    fn signers_see_only_the_signature_token_by_default() {
        let s = sources("", "", "");
        for p in ["pdfsig", "okular", "soffice.bin", "soffice", "libreoffice"] {
            let c = s.resolve(p);
            assert_eq!(c.tokens(), Tokens::Sign, "{p}");
            assert_eq!(c.get(Key::Tokens).1, &Origin::BuiltIn, "{p}");
        }
        let c = s.resolve("firefox-esr");
        assert_eq!(c.tokens(), Tokens::All);
        assert_eq!(c.get(Key::Tokens).1, &Origin::Default);
        assert_eq!(c.sign_cert_lookup(), SignCertLookup::WithoutLogin);
    }

    #[test]
    fn precedence() {
        let file = "tokens = auth\n[pdfsig]\ntokens = all\n";
        let s = sources("", "", file);
        assert_eq!(s.resolve("pdfsig").tokens(), Tokens::All);
        assert_eq!(s.resolve("ssh").tokens(), Tokens::Auth);
        assert_eq!(
            s.resolve("ssh").get(Key::Tokens).1,
            &Origin::File("user".into())
        );
        let s = sources("", "tokens=sign", file);
        assert_eq!(s.resolve("ssh").tokens(), Tokens::Sign);
        assert_eq!(s.resolve("ssh").get(Key::Tokens).1, &Origin::Parameters);
        let s = sources("tokens=all", "tokens=sign", file);
        assert_eq!(s.resolve("pdfsig").tokens(), Tokens::All);
        assert_eq!(s.resolve("pdfsig").get(Key::Tokens).1, &Origin::Environment);
        // Key by key: the environment's tokens does not hide the file's sign_cert_lookup.
        let s = sources("tokens=auth", "", "sign_cert_lookup = after-login\n");
        let c = s.resolve("cmsutil");
        assert_eq!(c.tokens(), Tokens::Auth);
        assert_eq!(c.sign_cert_lookup(), SignCertLookup::AfterLogin);
    }

    #[test]
    fn bad_values_fall_through() {
        let s = sources("tokens=none", "tokens=", "[pdfsig]\ntokens = maybe\n");
        let c = s.resolve("pdfsig");
        assert_eq!(c.tokens(), Tokens::Sign);
        assert_eq!(c.get(Key::Tokens).1, &Origin::BuiltIn);
    }

    #[test]
    fn every_key_resolves_to_one_of_its_words() {
        let c = sources("", "", "").resolve("anything");
        for k in file::KEYS {
            assert_eq!(c.get(k.key), (k.default, &Origin::Default), "{}", k.name);
        }
        for (p, k, v) in BUILT_IN {
            assert!(k.info().values.contains(v), "built-in {p}: {v}");
        }
    }

    #[test]
    fn visibility() {
        assert!(Tokens::All.shows(KeyKind::Signature));
        assert!(Tokens::All.shows(KeyKind::Authentication));
        assert!(Tokens::Sign.shows(KeyKind::Signature));
        assert!(!Tokens::Sign.shows(KeyKind::Authentication));
        assert!(Tokens::Auth.shows(KeyKind::Authentication));
        assert!(!Tokens::Auth.shows(KeyKind::Signature));
    }

    #[test]
    fn a_missing_file_is_no_warning_and_a_big_one_is_ignored() {
        let dir = std::env::temp_dir().join(format!("jpki-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Vec::new();
        assert_eq!(read_small(&dir.join("absent"), &mut w), None);
        assert!(w.is_empty(), "{w:?}");
        let big = dir.join("big");
        std::fs::write(&big, vec![b'#'; file::MAX_FILE + 1]).unwrap();
        assert_eq!(read_small(&big, &mut w), None);
        assert_eq!(w.len(), 1, "{w:?}");
        let bad = dir.join("latin1");
        std::fs::write(&bad, b"tokens = sign \xe9\n").unwrap();
        assert_eq!(read_small(&bad, &mut w), None);
        assert_eq!(w.len(), 2, "{w:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
