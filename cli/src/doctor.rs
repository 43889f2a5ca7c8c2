//! `jpki doctor`: finds the usual failures and says how to fix each.
//!
//! Checks, in order: pcscd reachable; a reader; a card in it; the card is a My Number Card
//! (and no PIN is blocked); the module registered with p11-kit (`p11-kit list-modules`), in the
//! shared NSS database of Chromium and NSS tools (`~/.pki/nssdb`, `modutil -list`) and in each
//! Firefox profile (`~/.mozilla/firefox/*/pkcs11.txt`), directly or through p11-kit-proxy; the
//! authentication certificate's remaining validity (renewal from 90 days before expiry); the
//! card's CA certificates against the pinned J-LIS anchors.
//! Then, for each known program, which tokens it sees and its other settings (README "Which
//! tokens a program sees"), and every warning about the configuration.
//! No PIN is asked and no try is spent. A "problem" stops the card from working (exit 8); a
//! "warning" only concerns one client.

use std::path::{Path, PathBuf};
use std::process::Command;

use jpki_pkcs11::card::{CertificateFile, JpkiCard, KeyKind};
use jpki_pkcs11::renewal::Validity;
use jpki_pkcs11::transport::pcsc::PcscReaders;
use jpki_pkcs11::transport::{Readers, TransportError};
use serde::Serialize;

use super::anchors::{self, CaCheck, Purpose};
use super::args::Args;
use super::common::{self, Exit, Failure, Report};

/// The file name of our module (what registrations refer to).
const MODULE_FILE: &str = "libjpki_pkcs11.so";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warning,
    Problem,
}

#[derive(Serialize)]
struct Finding {
    check: &'static str,
    level: Level,
    message: String,
    fix: Option<String>,
}

fn finding(check: &'static str, level: Level, message: impl Into<String>) -> Finding {
    Finding {
        check,
        level,
        message: message.into(),
        fix: None,
    }
}

impl Finding {
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// Where the module probably is: `--module`, next to this program, or the usual places.
fn module_path(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(MODULE_FILE));
            candidates.push(dir.join("../lib").join(MODULE_FILE));
        }
    }
    for dir in [
        "/usr/lib/x86_64-linux-gnu/pkcs11",
        "/usr/lib/pkcs11",
        "/usr/local/lib",
        "/usr/lib",
    ] {
        candidates.push(Path::new(dir).join(MODULE_FILE));
    }
    candidates
        .into_iter()
        .find(|p| p.exists())
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| PathBuf::from("/usr/lib/x86_64-linux-gnu/pkcs11").join(MODULE_FILE))
}

fn run_tool(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(text)
}

fn card_checks(findings: &mut Vec<Finding>, args: &Args) {
    let readers = PcscReaders::new();
    let list = match readers.list() {
        Ok(l) => l,
        Err(TransportError::NoService) => {
            findings.push(
                finding("pcscd", Level::Problem, "pcscd (the PC/SC service) is not running or not reachable")
                    .fix("sudo apt install pcscd && sudo systemctl enable --now pcscd.socket (inside a container or flatpak, give it access to /run/pcscd/pcscd.comm)"),
            );
            return;
        }
        Err(e) => {
            findings.push(finding(
                "pcscd",
                Level::Problem,
                format!("PC/SC error: {e}"),
            ));
            return;
        }
    };
    findings.push(finding("pcscd", Level::Ok, "pcscd is reachable"));
    let list: Vec<_> = list
        .into_iter()
        .filter(|r| match &args.reader {
            Some(n) => n == &r.name,
            None => true,
        })
        .collect();
    if list.is_empty() {
        findings.push(
            finding("reader", Level::Problem, "no smart-card reader found")
                .fix("plug in a reader; USB readers need the CCID driver (sudo apt install libccid), then check with `pcsc_scan`"),
        );
        return;
    }
    let names: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
    findings.push(finding(
        "reader",
        Level::Ok,
        format!("reader(s): {}", names.join(", ")),
    ));
    let with_card: Vec<_> = list.iter().filter(|r| r.card_present).collect();
    if with_card.is_empty() {
        findings.push(
            finding("card", Level::Problem, "no card in any reader")
                .fix("insert the My Number Card (contact readers: chip first, face up; NFC readers: lay the card flat on the reader and leave it there)"),
        );
        return;
    }
    let mut jpki = None;
    for r in &with_card {
        match readers.connect(&r.name) {
            Ok(t) => {
                let mut card = JpkiCard::new(t);
                match card.is_jpki() {
                    Ok(true) => {
                        jpki = Some((r.name.clone(), card));
                        break;
                    }
                    Ok(false) => findings.push(
                        finding("card", Level::Problem, format!("the card in {:?} is not a My Number Card (no JPKI application)", r.name))
                            .fix("use the マイナンバーカード itself; 住基カード, bank and transit cards are not supported"),
                    ),
                    Err(e) => findings.push(
                        finding("card", Level::Problem, format!("the card in {:?} does not answer: {e}", r.name))
                            .fix("take the card out and put it back; on NFC readers keep it still and flat"),
                    ),
                }
            }
            Err(e) => findings.push(
                finding("card", Level::Problem, format!("cannot connect to the card in {:?}: {e}", r.name))
                    .fix("another program may hold the card exclusively; close it, or re-insert the card"),
            ),
        }
    }
    let Some((reader, mut card)) = jpki else {
        return;
    };
    findings.push(finding(
        "card",
        Level::Ok,
        format!("My Number Card in {reader:?}"),
    ));
    for key in [KeyKind::Authentication, KeyKind::Signature] {
        let name = common::key_name(key);
        match card.pin_tries_left(key) {
            Ok(0) => findings.push(
                finding("pin", Level::Problem, format!("the {name} is blocked"))
                    .fix("have it reset at your municipal office (市区町村窓口) with photo ID"),
            ),
            Ok(n) if n < key.max_tries() => findings.push(
                finding("pin", Level::Warning, format!("the {name} has {n} of {} tries left", key.max_tries()))
                    .fix("the next correct entry resets the counter; if unsure, stop before it blocks and ask your municipal office"),
            ),
            Ok(_) => {}
            Err(e) => findings.push(finding("pin", Level::Warning, format!("{name}: {e}"))),
        }
    }
    certificate_checks(findings, &mut card);
}

/// The card's CA certificates against the J-LIS anchors, and the renewal reminder on the
/// authentication certificate (readable without a PIN on the card;
/// the signature certificate needs the password, so doctor does not read it; a phone token
/// shows neither before a PIN, and then nothing is said).
fn certificate_checks(findings: &mut Vec<Finding>, card: &mut JpkiCard) {
    for (file, purpose, name) in [
        (
            CertificateFile::SignatureCa,
            Purpose::Signature,
            "signature",
        ),
        (
            CertificateFile::AuthenticationCa,
            Purpose::Authentication,
            "authentication",
        ),
    ] {
        let Ok(der) = card.read_certificate(file) else {
            continue;
        };
        match anchors::check_ca(&der, purpose) {
            CaCheck::Genuine(a) => findings.push(finding(
                "ca",
                Level::Ok,
                format!("the card's {name} CA is a genuine J-LIS CA (generation {})", a.generation),
            )),
            CaCheck::NotJlis => findings.push(
                finding("ca", Level::Warning, format!("the card's {name} CA is not a J-LIS CA: a test card, or a forged one"))
                    .fix("signatures made with this card are not a My Number Card holder's; do not rely on it"),
            ),
            CaCheck::NotChecked => {}
        }
    }
    let Some(s) = card
        .read_certificate(CertificateFile::Authentication)
        .ok()
        .and_then(|der| common::summarize(&der))
    else {
        return;
    };
    let advice = s.renewal.advice().unwrap_or_default();
    match s.renewal {
        Validity::Valid { days_left } => findings.push(finding(
            "certificate",
            Level::Ok,
            format!(
                "authentication certificate valid until {} ({days_left} days)",
                s.not_after
            ),
        )),
        Validity::RenewalOpen { .. } => findings.push(
            finding("certificate", Level::Warning, format!("the authentication certificate (valid until {}) {advice}", s.not_after))
                .fix("renewal takes one visit to the city office; the certificates keep working until the date above"),
        ),
        Validity::Expired { .. } => findings.push(
            finding("certificate", Level::Problem, format!("the authentication certificate (valid until {}) {advice}", s.not_after))
                .fix("until then, logins and signatures with this card are refused by sites that check validity"),
        ),
    }
}

fn registration_checks(findings: &mut Vec<Finding>, module: &Path) {
    let module_s = module.display().to_string();
    // p11-kit
    let p11 = run_tool("p11-kit", &["list-modules"]);
    let via_p11kit = p11.as_deref().is_some_and(|t| t.contains("jpki"));
    match &p11 {
        None => findings.push(finding("p11-kit", Level::Warning, "p11-kit is not installed: GnuTLS programs and p11-kit-proxy users will not see the card")
            .fix("sudo apt install p11-kit p11-kit-modules")),
        Some(_) if via_p11kit => findings.push(finding("p11-kit", Level::Ok, "registered with p11-kit")),
        Some(_) => findings.push(
            finding("p11-kit", Level::Warning, "not registered with p11-kit")
                .fix(format!("printf 'module: {module_s}\\n' | sudo tee /usr/share/p11-kit/modules/jpki.module")),
        ),
    }
    // NSS shared database (Chromium, NSS tools).
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let nssdb = home.join(".pki/nssdb");
    let add = |db: &Path| {
        format!(
            "modutil -dbdir sql:{} -add \"JPKI My Number Card\" -libfile {module_s} (with the browser closed)",
            db.display()
        )
    };
    if !nssdb.join("pkcs11.txt").exists() && !nssdb.join("cert9.db").exists() {
        findings.push(
            finding(
                "nss",
                Level::Warning,
                format!(
                    "no NSS database at {} (Chromium has not run yet, or uses another store)",
                    nssdb.display()
                ),
            )
            .fix(format!(
                "mkdir -p {0} && certutil -N -d sql:{0} --empty-password && {1}",
                nssdb.display(),
                add(&nssdb)
            )),
        );
    } else {
        let listed = run_tool(
            "modutil",
            &["-list", "-dbdir", &format!("sql:{}", nssdb.display())],
        );
        match listed {
            None => findings.push(
                finding(
                    "nss",
                    Level::Warning,
                    "modutil not found: cannot check the NSS database",
                )
                .fix("sudo apt install libnss3-tools"),
            ),
            Some(t) if t.contains(MODULE_FILE) => findings.push(finding(
                "nss",
                Level::Ok,
                "registered in the NSS database (Chromium)",
            )),
            Some(t) if t.contains("p11-kit-proxy") && via_p11kit => findings.push(finding(
                "nss",
                Level::Ok,
                "the NSS database (Chromium) loads p11-kit-proxy, which has the module",
            )),
            Some(_) => findings.push(
                finding(
                    "nss",
                    Level::Warning,
                    "not registered in the NSS database used by Chromium",
                )
                .fix(add(&nssdb)),
            ),
        }
    }
    // Firefox profiles.
    let firefox = home.join(".mozilla/firefox");
    let profiles: Vec<PathBuf> = std::fs::read_dir(&firefox)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("pkcs11.txt").exists() || p.join("cert9.db").exists())
                .collect()
        })
        .unwrap_or_default();
    if profiles.is_empty() {
        findings.push(finding(
            "firefox",
            Level::Ok,
            "no Firefox profile found (nothing to register)",
        ));
    }
    for p in profiles {
        let text = std::fs::read_to_string(p.join("pkcs11.txt")).unwrap_or_default();
        let direct = text.contains(MODULE_FILE);
        let proxy = text.contains("p11-kit-proxy") && via_p11kit;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if direct && proxy {
            findings.push(
                finding("firefox", Level::Warning, format!("Firefox profile {name}: the module is loaded twice (directly and through p11-kit-proxy): every token shows twice"))
                    .fix(format!("modutil -dbdir sql:{} -delete \"JPKI My Number Card\"", p.display())),
            );
        } else if direct || proxy {
            findings.push(finding(
                "firefox",
                Level::Ok,
                format!("Firefox profile {name}: registered"),
            ));
        } else {
            findings.push(
                finding(
                    "firefox",
                    Level::Warning,
                    format!("Firefox profile {name}: module not loaded"),
                )
                .fix(format!(
                    "{} — or Settings → Privacy & Security → Security Devices → Load",
                    add(&p)
                )),
            );
        }
    }
}

pub fn run(args: &Args, module: Option<&Path>) -> Result<(), Failure> {
    let module = module_path(module);
    let mut findings = Vec::new();
    card_checks(&mut findings, args);
    if !module.exists() {
        findings.push(
            finding("module", Level::Warning, format!("module not found at {}", module.display()))
                .fix("install the package, or give its path: jpki doctor --module /path/to/libjpki_pkcs11.so"),
        );
    }
    registration_checks(&mut findings, &module);
    token_visibility(&mut findings);
    let problems = findings
        .iter()
        .filter(|f| f.level == Level::Problem)
        .count();
    let warnings = findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .count();
    common::output(
        args,
        &DoctorReport {
            module: module.display().to_string(),
            findings,
            problems,
            warnings,
        },
    );
    if problems > 0 {
        Err(Failure::new(
            Exit::Problems,
            format!("{problems} problem(s) found"),
        ))
    } else {
        Ok(())
    }
}

/// What `jpki doctor` reports.
#[derive(Serialize)]
struct DoctorReport {
    module: String,
    findings: Vec<Finding>,
    problems: usize,
    warnings: usize,
}

impl Report for DoctorReport {
    fn human(&self) {
        for f in &self.findings {
            let mark = match f.level {
                Level::Ok => "ok     ",
                Level::Warning => "WARNING",
                Level::Problem => "PROBLEM",
            };
            println!("[{mark}] {}", f.message);
            if let Some(fix) = &f.fix {
                println!("          fix: {fix}");
            }
        }
        println!(
            "{} problem(s), {} warning(s).",
            self.problems, self.warnings
        );
    }
}

/// Programs whose view `jpki doctor` shows (executable file names, as the module sees them).
const KNOWN_PROGRAMS: [&str; 10] = [
    "pdfsig",
    "okular",
    "soffice.bin",
    "firefox-esr",
    "chromium",
    "ssh",
    "ssh-agent",
    "java",
    "gnupg-pkcs11-scd",
    "pkcs11-tool",
];

/// Which tokens each known program sees, and its other settings, from this environment and
/// the configuration files (a registration's module parameters are not known here); and every
/// configuration warning. Every key of the module's table is shown, so a new one needs nothing
/// here.
fn token_visibility(findings: &mut Vec<Finding>) {
    use jpki_pkcs11::pkcs11::config::{file, Sources};
    let sources = Sources::collect(None);
    for w in &sources.warnings {
        findings.push(
            finding("config", Level::Warning, w.clone())
                .fix("see README, \"Which tokens a program sees\", and jpki-pkcs11(7)"),
        );
    }
    for program in KNOWN_PROGRAMS {
        let c = sources.resolve(program);
        let (_, origin) = c.get(file::Key::Tokens);
        let others: Vec<String> = file::KEYS
            .iter()
            .filter(|k| k.key != file::Key::Tokens)
            .map(|k| {
                let (v, o) = c.get(k.key);
                format!("{}={v} ({o})", k.name)
            })
            .collect();
        findings.push(finding(
            "tokens",
            Level::Ok,
            format!(
                "{program} sees token(s): {} ({origin}); {}",
                c.tokens().name(),
                others.join(", ")
            ),
        ));
    }
}
