//! What every subcommand needs: exit codes, failures, finding the card, PIN input without echo
//! (or from a file descriptor), a progress indication, certificate summaries, output.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::Decode;
use jpki_pkcs11::card::{CardError, JpkiCard, KeyKind, PinFormatError};
use jpki_pkcs11::transport::pcsc::PcscReaders;
use jpki_pkcs11::transport::{ReaderState, Readers, TransportError};
use zeroize::Zeroizing;

use super::args::Args;

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

pub fn report_failure(f: &Failure, json: bool) {
    if json {
        let v = serde_json::json!({
            "error": f.message,
            "hint": f.hint,
            "exit_code": f.exit as i32,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    eprintln!("jpki: {}", f.message);
    if let Some(h) = &f.hint {
        eprintln!("  → {h}");
    }
}

/// Prints a JSON value (pretty) to stdout.
pub fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
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
    pub fn new(args: &Args) -> Result<PinSource, Failure> {
        let fd = match args.pin_fd {
            None => None,
            Some(n) if n >= 0 => {
                use std::os::fd::FromRawFd;
                // SAFETY: the user gave us this descriptor to read from (--pin-fd); we own it
                // from here on and nothing else in the process uses it.
                Some(BufReader::new(unsafe { File::from_raw_fd(n) }))
            }
            Some(n) => return Err(Failure::new(Exit::Usage, format!("bad --pin-fd {n}"))),
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

/// Prompts on /dev/tty and reads a line with echo off (termios), restoring the terminal.
fn read_tty_no_echo(prompt: &str, line: &mut String) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    let no_tty = || {
        Failure::new(Exit::Usage, "no terminal to ask for the PIN")
            .hint("give PINs on a file descriptor: --pin-fd N (one per line)")
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| no_tty())?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid descriptor.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(no_tty());
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // Echo off before the prompt appears, so that nothing typed after it is ever echoed.
    // SAFETY: valid descriptor and termios.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut out = &tty;
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    let result = BufReader::new(&tty).read_line(line);
    // SAFETY: as above; restores what was there.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    result.map_err(|e| Failure::new(Exit::Usage, format!("reading the PIN: {e}")))?;
    Ok(())
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
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(2) } == 1;
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
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    /// Renewal state from the exact end of validity.
    pub validity: jpki_pkcs11::renewal::Validity,
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
        validity: jpki_pkcs11::renewal::Validity::of(end, now),
    })
}

/// PEM of a DER certificate.
pub fn pem(der_bytes: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    let b64 = Base64::encode_string(der_bytes);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// DER from a file holding DER or PEM.
pub fn read_der_or_pem(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::new(Exit::Error, format!("reading {}: {e}", path.display())))?;
    if bytes.starts_with(b"-----BEGIN") {
        let text = String::from_utf8_lossy(&bytes);
        let b64: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        use base64ct::{Base64, Encoding};
        Base64::decode_vec(b64.trim())
            .map_err(|_| Failure::new(Exit::Error, format!("{}: bad PEM", path.display())))
    } else {
        Ok(bytes)
    }
}
