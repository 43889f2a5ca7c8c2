//! `jpki cache`: what the module's certificate cache holds (which certificates, per card and
//! reader; never their contents), and `--clear` to empty it. The cache itself and its rules
//! are the module's (`jpki_pkcs11::pkcs11::cert_cache`, docs/performance.md).

use jpki_pkcs11::pkcs11::cert_cache::{self, Holds};
use jpki_pkcs11::pkcs11::config;
use serde::Serialize;

use super::args::Args;
use super::common::{self, Exit, Failure, Report};

#[derive(Serialize)]
struct CacheFile {
    name: String,
    bytes: u64,
    /// "card", "reader" or "damaged".
    kind: &'static str,
    /// A card's file: the certificates it holds ("authentication", "authentication CA",
    /// "signature CA"); never the signature certificate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    certificates: Vec<&'static str>,
    /// A reader's file: whether extended-length READ BINARY worked through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_apdu: Option<bool>,
}

/// What `jpki cache` reports.
#[derive(Serialize)]
struct CacheReport {
    /// The directory (`None`: neither XDG_CACHE_HOME nor HOME is an absolute path).
    directory: Option<String>,
    /// Whether the module uses it in this environment (JPKI_PKCS11_CACHE).
    enabled: bool,
    /// Whether the directory exists and is private to the user (the module uses no other).
    usable: bool,
    files: Vec<CacheFile>,
    /// With `--clear`: how many files were removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<usize>,
}

impl Report for CacheReport {
    fn human(&self) {
        let Some(dir) = &self.directory else {
            println!("no cache directory (neither XDG_CACHE_HOME nor HOME is set)");
            return;
        };
        println!("certificate cache: {dir}");
        if !self.enabled {
            println!("  switched off here (JPKI_PKCS11_CACHE=off): the module neither reads nor writes it");
        }
        if !self.usable && !self.files.is_empty() {
            println!("  not a directory private to you (mode 0700): the module does not use it");
        }
        if let Some(n) = self.removed {
            println!(
                "  removed {n} file(s); the next program reads the certificates from the card"
            );
        }
        if self.files.is_empty() {
            if self.removed.is_none() {
                println!("  empty");
            }
            return;
        }
        for f in &self.files {
            let what = match f.kind {
                "card" => format!("card: {}", f.certificates.join(", ")),
                "reader" => match f.extended_apdu {
                    Some(true) => "reader: extended-length reads work".to_string(),
                    _ => "reader: short reads only".to_string(),
                },
                _ => "damaged (ignored and rewritten by the module)".to_string(),
            };
            println!("  {}  {} bytes  {what}", f.name, f.bytes);
        }
    }
}

fn files(dir: &std::path::Path) -> Vec<CacheFile> {
    cert_cache::summarize(dir)
        .into_iter()
        .map(|f| {
            let (kind, certificates, extended_apdu) = match f.holds {
                Holds::Card {
                    auth,
                    auth_ca,
                    sign_ca,
                } => {
                    let names = [
                        (auth, "authentication"),
                        (auth_ca, "authentication CA"),
                        (sign_ca, "signature CA"),
                    ];
                    let held = names.iter().filter(|(h, _)| *h).map(|(_, n)| *n);
                    ("card", held.collect(), None)
                }
                Holds::Reader { extended } => ("reader", Vec::new(), Some(extended)),
                Holds::Damaged => ("damaged", Vec::new(), None),
            };
            CacheFile {
                name: f.name,
                bytes: f.bytes,
                kind,
                certificates,
                extended_apdu,
            }
        })
        .collect()
}

pub fn run(args: &Args, clear: bool) -> Result<(), Failure> {
    let dir = cert_cache::location();
    let mut removed = None;
    if let (true, Some(dir)) = (clear, &dir) {
        let n = cert_cache::clear(dir)
            .map_err(|e| Failure::new(Exit::Error, format!("clearing {}: {e}", dir.display())))?;
        removed = Some(n);
    }
    let report = CacheReport {
        directory: dir.as_ref().map(|d| d.display().to_string()),
        enabled: config::get().cache(),
        usable: dir.as_deref().is_some_and(cert_cache::usable),
        files: dir.as_deref().map(files).unwrap_or_default(),
        removed,
    };
    common::output(args, &report);
    Ok(())
}
