//! The module's few settings: which tokens a program sees, and how NSS finds the signature
//! certificate. This module owns them; `file` holds the key table and the text parsers.
//!
//! Sources, first found wins, key by key:
//! 1. the environment (`JPKI_PKCS11_TOKENS`, …) — one process;
//! 2. the module parameter string given to `C_Initialize` in `pReserved` (NSS
//!    `modutil -string` / `parameters=`, p11-kit `x-init-reserved`) — one registration;
//! 3. `$XDG_CONFIG_HOME/jpki-pkcs11/config` (default `~/.config/…`), then
//!    `/etc/jpki-pkcs11/config`: in each, the program's `[section]` before the top;
//! 4. the built-in defaults for known programs ([`BUILT_IN`]), then the defaults.
//!
//! A bad value is a warning (stderr, once per `C_Initialize`) and falls through to the next
//! source; nothing here can fail a login. No setting touches PINs: the module has no test mode
//! and takes no PIN from anywhere but `C_Login`.

pub mod file;

use std::path::{Path, PathBuf};

use once_cell::sync::Lazy;
use parking_lot::RwLock;

use crate::card::KeyKind;
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
pub const BUILT_IN: [(&str, Tokens); 5] = [
    ("pdfsig", Tokens::Sign),
    ("okular", Tokens::Sign),
    ("soffice.bin", Tokens::Sign),
    ("soffice", Tokens::Sign),
    ("libreoffice", Tokens::Sign),
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

/// Settings of this process.
#[derive(Debug, Clone)]
pub struct Config {
    pub sign_cert_lookup: SignCertLookup,
    pub tokens: Tokens,
    pub tokens_origin: Origin,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sign_cert_lookup: SignCertLookup::WithoutLogin,
            tokens: Tokens::All,
            tokens_origin: Origin::Default,
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
        for k in &file::KEYS {
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
    fn lookup(&self, program: &str, key: Key) -> Option<(&'static str, Origin)> {
        if let Some(v) = self.env.get(key) {
            return Some((v, Origin::Environment));
        }
        if let Some(v) = self.params.get(key) {
            return Some((v, Origin::Parameters));
        }
        self.files
            .iter()
            .find_map(|(path, f)| f.get(program, key).map(|v| (v, Origin::File(path.clone()))))
    }

    /// The settings `program` gets.
    pub fn resolve(&self, program: &str) -> Config {
        let mut c = Config::default();
        if let Some((v, _)) = self.lookup(program, Key::SignCertLookup) {
            c.sign_cert_lookup = match v {
                "after-login" => SignCertLookup::AfterLogin,
                _ => SignCertLookup::WithoutLogin,
            };
        }
        let (tokens, origin) = match self.lookup(program, Key::Tokens) {
            Some((v, origin)) => (parse_tokens(v), origin),
            None => match BUILT_IN.iter().find(|(p, _)| *p == program) {
                Some((_, t)) => (*t, Origin::BuiltIn),
                None => (Tokens::All, Origin::Default),
            },
        };
        c.tokens = tokens;
        c.tokens_origin = origin;
        c
    }
}

fn parse_tokens(v: &str) -> Tokens {
    match v {
        "auth" => Tokens::Auth,
        "sign" => Tokens::Sign,
        _ => Tokens::All,
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
    log::debug!(
        "configuration for {program:?}: tokens {} ({}), {:?}",
        config.tokens.name(),
        config.tokens_origin,
        config.sign_cert_lookup
    );
    *CONFIG.write() = Some(config);
}

/// The settings; before any `C_Initialize` (unit tests), those without parameters.
pub fn get() -> Config {
    if let Some(c) = CONFIG.read().as_ref() {
        return c.clone();
    }
    Sources::collect(None).resolve(&this_program())
}

/// Whether this process sees the token of `kind`.
pub fn shows(kind: KeyKind) -> bool {
    CONFIG
        .read()
        .as_ref()
        .map_or(true, |c| c.tokens.shows(kind))
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
        for p in ["pdfsig", "okular", "soffice.bin"] {
            let c = s.resolve(p);
            assert_eq!((c.tokens, c.tokens_origin), (Tokens::Sign, Origin::BuiltIn));
        }
        let c = s.resolve("firefox-esr");
        assert_eq!((c.tokens, c.tokens_origin), (Tokens::All, Origin::Default));
        assert_eq!(c.sign_cert_lookup, SignCertLookup::WithoutLogin);
    }

    #[test]
    fn precedence() {
        let file = "tokens = auth\n[pdfsig]\ntokens = all\n";
        let s = sources("", "", file);
        assert_eq!(s.resolve("pdfsig").tokens, Tokens::All);
        assert_eq!(s.resolve("ssh").tokens, Tokens::Auth);
        let s = sources("", "tokens=sign", file);
        assert_eq!(s.resolve("ssh").tokens, Tokens::Sign);
        assert_eq!(s.resolve("ssh").tokens_origin, Origin::Parameters);
        let s = sources("tokens=all", "tokens=sign", file);
        assert_eq!(s.resolve("pdfsig").tokens, Tokens::All);
        assert_eq!(s.resolve("pdfsig").tokens_origin, Origin::Environment);
    }

    #[test]
    fn bad_values_fall_through() {
        let s = sources("tokens=none", "tokens=", "[pdfsig]\ntokens = maybe\n");
        let c = s.resolve("pdfsig");
        assert_eq!((c.tokens, c.tokens_origin), (Tokens::Sign, Origin::BuiltIn));
    }

    #[test]
    fn visibility() {
        assert!(Tokens::All.shows(KeyKind::Signature));
        assert!(Tokens::Sign.shows(KeyKind::Signature));
        assert!(!Tokens::Sign.shows(KeyKind::Authentication));
        assert!(!Tokens::Auth.shows(KeyKind::Signature));
    }
}
