//! The text forms of the settings: one table of keys ([`KEYS`]), and the parsers for the module
//! parameter string and the configuration file.
//!
//! One key has the same name everywhere: `tokens` is `JPKI_PKCS11_TOKENS` in the environment,
//! `tokens=sign` in the module parameters and `tokens = sign` in a file. Every value is one word
//! from the key's list. Nothing here can carry a PIN: there is no such key, and a line that
//! tries is only warned about, without repeating its value.
//!
//! # Adding a setting
//! One entry, here: a variant of [`Key`] and its row in [`KEYS`] (name, environment variable
//! `JPKI_PKCS11_<NAME>`, allowed words, default). The parsers, the
//! precedence (environment > module parameters > files > built-in > default), the warnings and
//! `jpki doctor` then handle it with no other change. Read it where it is used with
//! `config::get().value(Key::YourKey)`, which is always one of its allowed words. Document
//! the environment variable in README.md and packaging/man/jpki-pkcs11.7 (`tests/package.sh`
//! checks both). The unit test `every_key_once` checks the row.

/// The longest module parameter string and configuration file we read. Anything longer is
/// not ours (or not a configuration) and is refused (parameters) or ignored with a warning.
pub const MAX_PARAMS: usize = 1024;
pub const MAX_FILE: usize = 64 * 1024;

/// A setting the module knows; its text forms are its row in [`KEYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Which tokens the program sees (`config::Tokens`).
    Tokens,
    /// How NSS looks up the signature certificate (`config::SignCertLookup`).
    SignCertLookup,
    /// The disk cache of the card's public certificates (`Config::cache`).
    Cache,
    /// Extended-length READ BINARY, detected with a fallback (`Config::extended_apdu`).
    ExtendedApdu,
    /// Whether the usage history is written (`crate::history`).
    History,
    /// Which signatures are announced on the desktop (`crate::notify::NotifyPolicy`).
    Notify,
}

/// One row of [`KEYS`].
#[derive(Debug)]
pub struct KeyInfo {
    pub key: Key,
    /// The name in files and module parameters (`-` and `_` are the same when read).
    pub name: &'static str,
    /// The environment variable: `JPKI_PKCS11_` and the upper-case name.
    pub env: &'static str,
    /// The allowed words, lower case.
    pub values: &'static [&'static str],
    /// The value when no source sets it (one of `values`).
    pub default: &'static str,
}

/// Every setting, in the order `jpki doctor` and the warnings list them.
pub const KEYS: &[KeyInfo] = &[
    KeyInfo {
        key: Key::Tokens,
        name: "tokens",
        env: "JPKI_PKCS11_TOKENS",
        values: &["all", "auth", "sign"],
        default: "all",
    },
    KeyInfo {
        key: Key::SignCertLookup,
        name: "sign_cert_lookup",
        env: "JPKI_PKCS11_SIGN_CERT_LOOKUP",
        values: &["without-login", "after-login"],
        default: "without-login",
    },
    KeyInfo {
        key: Key::Cache,
        name: "cache",
        env: "JPKI_PKCS11_CACHE",
        values: &["on", "off"],
        default: "on",
    },
    KeyInfo {
        key: Key::ExtendedApdu,
        name: "extended_apdu",
        env: "JPKI_PKCS11_EXTENDED_APDU",
        values: &["auto", "off"],
        default: "auto",
    },
    KeyInfo {
        key: Key::History,
        name: "history",
        env: "JPKI_PKCS11_HISTORY",
        values: &["on", "off"],
        default: "on",
    },
    KeyInfo {
        key: Key::Notify,
        name: "notify",
        env: "JPKI_PKCS11_NOTIFY",
        values: &["sign", "all", "off"],
        default: "sign",
    },
];

impl Key {
    /// This key's row in [`KEYS`] (one per variant: tested).
    pub fn info(self) -> &'static KeyInfo {
        KEYS.iter().find(|k| k.key == self).unwrap_or(&KEYS[0])
    }
}

/// A key name as written by a person: case and `-`/`_` do not matter.
fn lookup_key(name: &str) -> Option<&'static KeyInfo> {
    let norm = name.trim().to_ascii_lowercase().replace('-', "_");
    KEYS.iter().find(|k| k.name == norm)
}

/// One `key = value` with the value checked against the key's words (case-insensitive).
/// `Err` is the warning to give; the caller then falls back to the next source.
pub fn setting(name: &str, value: &str, origin: &str) -> Result<(Key, &'static str), String> {
    let Some(info) = lookup_key(name) else {
        let lower = name.to_ascii_lowercase();
        if lower.contains("pin") || lower.contains("pass") || lower.contains("secret") {
            return Err(format!(
                "{origin}: {name:?} ignored: the module never takes a PIN or password from its \
                 configuration"
            ));
        }
        let known: Vec<_> = KEYS.iter().map(|k| k.name).collect();
        return Err(format!(
            "{origin}: unknown setting {name:?} ignored (known: {})",
            known.join(", ")
        ));
    };
    let v = value.trim().to_ascii_lowercase();
    match info.values.iter().find(|allowed| **allowed == v) {
        Some(allowed) => Ok((info.key, allowed)),
        None => Err(format!(
            "{origin}: {}={value:?} is not one of {}; using the next source or the default",
            info.name,
            info.values.join(", ")
        )),
    }
}

/// The settings of one source, in the order written (a later one of the same key wins).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settings(pub Vec<(Key, &'static str)>);

impl Settings {
    pub fn get(&self, key: Key) -> Option<&'static str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// The module parameter string (`modutil -string`, NSS `parameters=`, p11-kit
/// `x-init-reserved`): `key=value` pairs separated by spaces, `;` or `,`.
pub fn parse_params(text: &str, warnings: &mut Vec<String>) -> Settings {
    let mut out = Settings::default();
    let origin = "module parameters";
    for word in text
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .filter(|w| !w.is_empty())
    {
        match word.split_once('=') {
            Some((k, v)) => match setting(k, v, origin) {
                Ok(s) => out.0.push(s),
                Err(w) => warnings.push(w),
            },
            // Not repeated: a stray word may be a secret typed in the wrong place.
            None => warnings.push(format!("{origin}: a word that is not key=value; ignored")),
        }
    }
    out
}

/// A configuration file: settings for every program at the top, then `[program]` sections
/// whose settings apply to the program with that executable file name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileSettings {
    pub top: Settings,
    pub programs: Vec<(String, Settings)>,
}

impl FileSettings {
    /// The settings of `program` in this file: its section over the top.
    pub fn get(&self, program: &str, key: Key) -> Option<&'static str> {
        self.programs
            .iter()
            .rev()
            .filter(|(p, _)| p == program)
            .find_map(|(_, s)| s.get(key))
            .or_else(|| self.top.get(key))
    }
}

/// Parses a configuration file's text. `#` starts a comment; blank lines are ignored.
pub fn parse_file(text: &str, origin: &str, warnings: &mut Vec<String>) -> FileSettings {
    let mut out = FileSettings::default();
    let mut section: Option<usize> = None;
    for (no, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{origin}:{}", no + 1);
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            if name.is_empty() || name.contains(['/', '[', ']']) {
                warnings.push(format!(
                    "{at}: bad section name {name:?}; its settings are ignored"
                ));
                // No executable file name contains '/': this section matches no program.
                out.programs.push(("/".into(), Settings::default()));
            } else {
                out.programs.push((name.to_string(), Settings::default()));
            }
            section = Some(out.programs.len() - 1);
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            warnings.push(format!("{at}: a line that is not key = value; ignored"));
            continue;
        };
        match setting(k, v, &at) {
            Ok(s) => match section {
                Some(i) => out.programs[i].1 .0.push(s),
                None => out.top.0.push(s),
            },
            Err(w) => warnings.push(w),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_once() {
        for (i, k) in KEYS.iter().enumerate() {
            assert_eq!(k.key.info().name, k.name, "{} is its key's row", k.name);
            assert!(KEYS[i + 1..]
                .iter()
                .all(|o| o.key != k.key && o.name != k.name && o.env != k.env));
            assert_eq!(
                k.env,
                format!("JPKI_PKCS11_{}", k.name.to_ascii_uppercase())
            );
            assert!(k.values.contains(&k.default), "{} default", k.name);
            assert!(k
                .values
                .iter()
                .all(|v| *v == v.to_ascii_lowercase() && !v.contains(char::is_whitespace)));
        }
    }

    #[test]
    fn params() {
        let mut w = Vec::new();
        let s = parse_params(" tokens=SIGN;sign-cert-lookup=after-login,,", &mut w);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.get(Key::Tokens), Some("sign"));
        assert_eq!(s.get(Key::SignCertLookup), Some("after-login"));
        let s = parse_params("tokens=nope pin=1234 user_password=abcd 5678", &mut w);
        assert_eq!(s, Settings::default());
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[1].contains("never takes a PIN"));
        assert!(w[2].contains("never takes a PIN"));
        for secret in ["1234", "abcd", "5678"] {
            assert!(
                !w.iter().any(|w| w.contains(secret)),
                "a value may be a secret: {w:?}"
            );
        }
    }

    #[test]
    fn file_sections() {
        let text = "# comment\ntokens = auth\n\n[pdfsig]\ntokens = sign # signer\n[okular]\n\
                    sign_cert_lookup = after-login\n[]\ntokens = all\nnonsense\n";
        let mut w = Vec::new();
        let f = parse_file(text, "test", &mut w);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|w| !w.contains("nonsense")), "{w:?}");
        assert_eq!(f.get("pdfsig", Key::Tokens), Some("sign"));
        assert_eq!(f.get("okular", Key::Tokens), Some("auth"));
        assert_eq!(f.get("okular", Key::SignCertLookup), Some("after-login"));
        assert_eq!(f.get("firefox", Key::Tokens), Some("auth"));
        assert_eq!(f.get("firefox", Key::SignCertLookup), None);
    }
}
