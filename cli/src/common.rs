//! What every subcommand needs: exit codes, failures, finding the card, PIN input without echo
//! (or from a file descriptor), a progress indication, certificate summaries, output.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::pem::LineEnding;
use der::Decode;
use jpki_pkcs11::card::{CardError, JpkiCard, KeyKind, PinFormatError};
use jpki_pkcs11::renewal::Validity;
use jpki_pkcs11::transport::pcsc::PcscReaders;
use jpki_pkcs11::transport::{ReaderState, Readers, TransportError};
use serde::Serialize;
use zeroize::Zeroizing;

use super::args::Args;
use super::tty::{self, TtyError};

/// Documented exit codes (README, `jpki --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    /// pcscd not reachable, no reader, or no card.
    NoCard = 3,
    /// A card, but not a My Number Card (no JPKI application).
    NotJpki = 4,
    WrongPin = 5,
    PinBlocked = 6,
    /// `jpki verify`: the signature does not verify.
    BadSignature = 7,
    /// `jpki doctor` found at least one problem.
    Problems = 8,
}

/// Why a command failed: what to print, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

/// A card error, explained.
pub fn card_failure(e: CardError, what: &str) -> Failure {
    match e {
        CardError::PinIncorrect { tries_left } => {
            let f = Failure::new(
                Exit::WrongPin,
                format!("wrong {what}: {tries_left} tries left"),
            );
            if tries_left == 1 {
                f.hint("one try left: one more wrong PIN blocks it (only the municipal office can unblock it)")
            } else {
                f
            }
        }
        CardError::PinBlocked => Failure::new(Exit::PinBlocked, format!("the {what} is blocked"))
            .hint(
                "a blocked PIN is reset at your municipal office (市区町村窓口) with photo ID; \
                   the signature password can also be reset at convenience-store kiosks with the \
                   authentication PIN",
            ),
        CardError::Removed => Failure::new(Exit::NoCard, "the card was removed"),
        CardError::NoReader => Failure::new(Exit::NoCard, "the reader is gone"),
        CardError::NoService => pcscd_failure(),
        CardError::NotJpki => not_jpki_failure(),
        other => Failure::new(Exit::Error, format!("card error: {other}")),
    }
}

pub fn pcscd_failure() -> Failure {
    Failure::new(Exit::NoCard, "pcscd (the PC/SC service) is not running or not reachable")
        .hint("start it: `sudo systemctl start pcscd.socket` (Debian/Ubuntu: `sudo apt install pcscd`); `jpki doctor` checks more")
}

pub fn not_jpki_failure() -> Failure {
    Failure::new(
        Exit::NotJpki,
        "the card is not a My Number Card (no JPKI application)",
    )
    .hint("insert your マイナンバーカード (My Number Card); old 住基カード are not supported")
}

pub fn pin_format_failure(e: PinFormatError, what: &str, rule: &str) -> Failure {
    let why = match e {
        PinFormatError::Length => "has the wrong length",
        PinFormatError::Charset => "contains characters the card cannot hold",
    };
    Failure::new(
        Exit::Usage,
        format!("the {what} {why}: nothing was sent to the card"),
    )
    .hint(rule.to_string())
}

pub const AUTH_RULE: &str = "the authentication PIN is 4 digits";
pub const SIGN_RULE: &str = "the signature password is 6 to 16 letters A-Z and digits";
pub const KENHOJO_RULE: &str = "the card-info (券面事項入力補助) PIN is 4 digits";

pub fn key_name(key: KeyKind) -> &'static str {
    match key {
        KeyKind::Authentication => "authentication PIN",
        KeyKind::Signature => "signature password",
    }
}

pub fn key_rule(key: KeyKind) -> &'static str {
    match key {
        KeyKind::Authentication => AUTH_RULE,
        KeyKind::Signature => SIGN_RULE,
    }
}

/// A failure as `--json` prints it on stdout.
#[derive(Serialize)]
struct FailureReport<'a> {
    error: &'a str,
    hint: Option<&'a str>,
    exit_code: i32,
}

pub fn report_failure(f: &Failure, json: bool) {
    if json {
        print_json(&FailureReport {
            error: &f.message,
            hint: f.hint.as_deref(),
            exit_code: f.exit as i32,
        });
    }
    eprintln!("jpki: {}", f.message);
    if let Some(h) = &f.hint {
        eprintln!("  → {h}");
    }
}

/// Prints a report (pretty JSON) to stdout.
pub fn print_json(v: &impl Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// What a command prints on success: one typed value, shown as JSON with `--json` and as text
/// for people otherwise, so that the two forms cannot drift apart.
pub trait Report: Serialize {
    /// The text form, on stdout.
    fn human(&self);
}

/// Prints `report` the way the command line asked for.
pub fn output(args: &Args, report: &impl Report) {
    if args.json {
        print_json(report);
    } else {
        report.human();
    }
}

// ----- readers and the card ------------------------------------------------------------------

/// The readers as pcscd reports them.
pub fn list_readers(readers: &PcscReaders) -> Result<Vec<ReaderState>, Failure> {
    match readers.list() {
        Ok(l) => Ok(l),
        Err(TransportError::NoService) => Err(pcscd_failure()),
        Err(e) => Err(Failure::new(Exit::Error, format!("listing readers: {e}"))),
    }
}

/// The My Number Card to use: in `--reader`, or the first reader whose card has the JPKI AP.
pub fn open_card(args: &Args) -> Result<(String, JpkiCard), Failure> {
    let readers = PcscReaders::new();
    let list = list_readers(&readers)?;
    if list.is_empty() {
        return Err(Failure::new(Exit::NoCard, "no smart-card reader found")
            .hint("plug in a reader (contact or NFC); `jpki doctor` checks more"));
    }
    let candidates: Vec<&ReaderState> = match &args.reader {
        Some(name) => {
            let r = list
                .iter()
                .find(|r| &r.name == name)
                .ok_or_else(|| Failure::new(Exit::NoCard, format!("no reader named {name:?}")))?;
            vec![r]
        }
        None => list.iter().collect(),
    };
    let mut saw_card = false;
    for r in candidates.iter().filter(|r| r.card_present) {
        saw_card = true;
        let transport = match readers.connect(&r.name) {
            Ok(t) => t,
            Err(e) => {
                if args.reader.is_some() {
                    return Err(card_failure(CardError::from(e), "card"));
                }
                continue;
            }
        };
        let mut card = JpkiCard::new(transport);
        match card.is_jpki() {
            Ok(true) => return Ok((r.name.clone(), card)),
            Ok(false) => continue,
            Err(e) if args.reader.is_some() => return Err(card_failure(e, "card")),
            Err(_) => continue,
        }
    }
    if saw_card {
        Err(not_jpki_failure())
    } else {
        Err(Failure::new(Exit::NoCard, "no card in the reader")
            .hint("insert your My Number Card (or place it on the NFC reader)"))
    }
}

// ----- PIN input -----------------------------------------------------------------------------

/// Where PINs come from: the terminal (no echo), or `--pin-fd N` (one per line).
pub struct PinSource {
    fd: Option<BufReader<File>>,
}

impl PinSource {
    /// `--pin-fd N` is read through a descriptor of our own, opened on `/dev/fd/N`: descriptor N
    /// belongs to whoever started us and is never closed (`--pin-fd 1` leaves stdout alone). For
    /// a pipe this reads the same pipe; for a file, the file from its start.
    pub fn new(args: &Args) -> Result<PinSource, Failure> {
        let fd = match args.pin_fd {
            None => None,
            Some(n) => {
                let file = File::open(format!("/dev/fd/{n}")).map_err(|e| {
                    Failure::new(Exit::Usage, format!("--pin-fd {n}: cannot read it: {e}"))
                })?;
                Some(BufReader::new(file))
            }
        };
        Ok(PinSource { fd })
    }

    /// Reads one PIN. `prompt` is shown on the terminal only.
    pub fn read(&mut self, prompt: &str) -> Result<Zeroizing<String>, Failure> {
        let mut line = Zeroizing::new(String::new());
        if let Some(fd) = self.fd.as_mut() {
            fd.read_line(&mut line)
                .map_err(|e| Failure::new(Exit::Usage, format!("reading --pin-fd: {e}")))?;
            if line.is_empty() {
                return Err(Failure::new(Exit::Usage, "--pin-fd: no more PINs to read"));
            }
        } else {
            read_tty_no_echo(prompt, &mut line)?;
        }
        while line.ends_with('\n') || line.ends_with('\r') {
            line.pop();
        }
        Ok(line)
    }
}

/// Prompts on the terminal and reads a line with echo off (`tty`), restoring the terminal.
fn read_tty_no_echo(prompt: &str, line: &mut String) -> Result<(), Failure> {
    tty::read_line_no_echo(prompt, line).map_err(|e| match e {
        TtyError::NoTerminal => Failure::new(Exit::Usage, "no terminal to ask for the PIN")
            .hint("give PINs on a file descriptor: --pin-fd N (one per line)"),
        TtyError::Io(e) => Failure::new(Exit::Usage, format!("reading the PIN: {e}")),
    })
}

// ----- progress ------------------------------------------------------------------------------

/// A spinner on stderr while the card works, only when stderr is a terminal.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(message: &str) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let thread = tty.then(|| {
            // The first frame at once, so even a quick operation shows what it does.
            eprint!("\r| {message}");
            let stop = stop.clone();
            let message = message.to_owned();
            std::thread::spawn(move || {
                let frames = ['|', '/', '-', '\\'];
                let mut i = 1;
                while !stop.load(Ordering::Relaxed) {
                    eprint!("\r{} {message}", frames[i % frames.len()]);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(120));
                }
                eprint!("\r\x1b[K");
            })
        });
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ----- certificates --------------------------------------------------------------------------

/// What `status` shows of a certificate.
#[derive(Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    /// `valid`, `renewal_open` or `expired` ([`Validity::state`]).
    pub validity: &'static str,
    /// What the holder should do about their own certificate (set by `status`, not for CAs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The renewal state from the exact end of validity.
    #[serde(skip)]
    pub renewal: Validity,
}

pub fn summarize(der_bytes: &[u8]) -> Option<CertSummary> {
    let cert = x509_cert::Certificate::from_der(der_bytes).ok()?;
    let tbs = &cert.tbs_certificate;
    let end = tbs.validity.not_after.to_unix_duration().as_secs() as i64;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let date = |t: &x509_cert::time::Time| {
        let dt = t.to_date_time();
        format!("{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day())
    };
    Some(CertSummary {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        not_before: date(&tbs.validity.not_before),
        not_after: date(&tbs.validity.not_after),
        days_left: (end - now).div_euclid(86_400),
        validity: Validity::of(end, now).state(),
        warning: None,
        renewal: Validity::of(end, now),
    })
}

/// PEM of a DER certificate.
pub fn pem(der_bytes: &[u8]) -> Result<String, Failure> {
    der::pem::encode_string("CERTIFICATE", LineEnding::LF, der_bytes)
        .map_err(|e| Failure::new(Exit::Error, format!("PEM encoding: {e}")))
}

/// DER from a file holding DER or PEM.
pub fn read_der_or_pem(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::new(Exit::Error, format!("reading {}: {e}", path.display())))?;
    if bytes.starts_with(b"-----BEGIN") {
        der::pem::decode_vec(&bytes)
            .map(|(_label, der)| der)
            .map_err(|_| Failure::new(Exit::Error, format!("{}: bad PEM", path.display())))
    } else {
        Ok(bytes)
    }
}
