//! `jpki-virtual-card`: a virtual My Number Card speaking the vsmartcard vpcd protocol.
//!
//! ```text
//! jpki-virtual-card run --state FILE [--profile conservative|extended|phone]
//!     [--host 127.0.0.1] [--port 35963] [--control SOCKET] [--apdu-log FILE]
//!     [--apdu-latency-ms N] [--sign-latency-ms N] [--atr-index N] [--seed N] [--removed]
//!     [--extended-apdu card|accept|refuse|sw:XXXX|drop] [--cert-days N | --not-after DATE]
//! jpki-virtual-card ctl --control SOCKET <command...>
//! jpki-virtual-card export --state FILE --out DIR [--seed N]
//! ```
//!
//! vpcd protocol: the card is a TCP client of pcscd's vpcd driver. Every message, both ways,
//! is a 2-byte big-endian length and a payload. A 1-byte payload from the driver is a control
//! (00 power off, 01 power on, 02 reset, 04 get ATR → the ATR is sent back); anything longer
//! is a command APDU, answered with the response APDU. Inserting the card = connecting,
//! removing it = closing the connection.
//!
//! Control socket (Unix stream, one line per request, one line reply `ok …` / `err …`):
//! `remove`, `insert`, `latency <apdu_ms> <sign_ms>`, `fault <spec>` (grammar in
//! `jpki_virtual_card::Faults`), `fault clear`, `faults`, `stats` (JSON), `reset-stats`,
//! `reset` (the card's volatile state is cleared behind the driver's back), `status`, `quit`,
//! `extended-apdu MODE`, `certs days N`, `certs not-after YYYY-MM-DD`.
//!
//! APDU log: one line per APDU, `<unix ms> <command hex> <sw hex> <resp data len> <cmd len>`;
//! PIN data of VERIFY / CHANGE REFERENCE DATA is replaced by `<redacted len=N format=…>`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jpki_virtual_card::{CardState, ExtendedApdu, NotAfter, Profile, Token, VirtualCard};

const DEFAULT_PORT: u16 = 0x8C7B; // 35963, /etc/reader.conf.d/vpcd
const DEFAULT_SEED: u64 = 1;
const POLL: Duration = Duration::from_millis(100);

const USAGE: &str = "usage:
  jpki-virtual-card run --state FILE [--profile conservative|extended|phone]
      [--host 127.0.0.1] [--port 35963] [--control SOCKET] [--apdu-log FILE]
      [--apdu-latency-ms N] [--sign-latency-ms N] [--atr-index N] [--seed N] [--removed]
      [--extended-apdu card|accept|refuse|sw:XXXX|drop] [--cert-days N | --not-after DATE]
  jpki-virtual-card ctl --control SOCKET <command...>
  jpki-virtual-card export --state FILE --out DIR [--seed N]";

struct RunOptions {
    state: PathBuf,
    profile: Profile,
    token: Token,
    host: String,
    port: u16,
    control: Option<PathBuf>,
    apdu_log: Option<PathBuf>,
    apdu_latency_ms: u64,
    sign_latency_ms: u64,
    atr_index: usize,
    seed: u64,
    removed: bool,
    extended_apdu: ExtendedApdu,
    not_after: Option<NotAfter>,
}

/// `--name value` pairs (value empty for flags) and positional words.
type ParsedArgs = (Vec<(String, String)>, Vec<String>);

/// Splits `--name value` pairs and flags from positional words.
fn parse_flags(args: &[String], flags: &[&str]) -> Result<ParsedArgs, String> {
    let mut opts = Vec::new();
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            if flags.contains(&name) {
                opts.push((name.to_string(), String::new()));
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                opts.push((name.to_string(), v.clone()));
            }
        } else {
            words.push(a.clone());
        }
    }
    Ok((opts, words))
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("--{name}: bad number {v:?}"))
}

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let (opts, words) = parse_flags(args, &["removed"])?;
    if let Some(w) = words.first() {
        return Err(format!("unexpected argument {w:?}"));
    }
    let mut o = RunOptions {
        state: PathBuf::new(),
        profile: Profile::Conservative,
        token: Token::Card,
        host: "127.0.0.1".into(),
        port: DEFAULT_PORT,
        control: None,
        apdu_log: None,
        apdu_latency_ms: 0,
        sign_latency_ms: 0,
        atr_index: 0,
        seed: DEFAULT_SEED,
        removed: false,
        extended_apdu: ExtendedApdu::Card,
        not_after: None,
    };
    let mut have_state = false;
    for (name, v) in opts {
        match name.as_str() {
            "state" => {
                o.state = PathBuf::from(v);
                have_state = true;
            }
            // `phone`: the Android token, with the conservative command set.
            "profile" if v.eq_ignore_ascii_case("phone") => {
                o.profile = Profile::Conservative;
                o.token = Token::Phone;
            }
            "profile" => {
                o.profile = v.parse()?;
                o.token = Token::Card;
            }
            "host" => o.host = v,
            "port" => o.port = num(&name, &v)?,
            "control" => o.control = Some(PathBuf::from(v)),
            "apdu-log" => o.apdu_log = Some(PathBuf::from(v)),
            "apdu-latency-ms" => o.apdu_latency_ms = num(&name, &v)?,
            "sign-latency-ms" => o.sign_latency_ms = num(&name, &v)?,
            "atr-index" => o.atr_index = num(&name, &v)?,
            "seed" => o.seed = num(&name, &v)?,
            "removed" => o.removed = true,
            "extended-apdu" => o.extended_apdu = v.parse()?,
            "cert-days" => o.not_after = Some(NotAfter::Days(num(&name, &v)?)),
            "not-after" => o.not_after = Some(NotAfter::parse_date(&v)?),
            _ => return Err(format!("unknown option --{name}")),
        }
    }
    if !have_state {
        return Err("--state FILE is required".into());
    }
    Ok(o)
}

/// Loads the state file, or creates it from `seed` when it does not exist.
fn load_or_create(path: &Path, seed: u64) -> io::Result<CardState> {
    match CardState::load(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!(
                "jpki-virtual-card: creating {} from seed {seed}",
                path.display()
            );
            let s = CardState::generate(seed);
            s.save(path)?;
            Ok(s)
        }
        Err(e) => Err(e),
    }
}

struct Shared {
    card: VirtualCard,
    state_path: PathBuf,
    inserted: bool,
    quit: bool,
    /// Bumped by `remove` so that the connection in use is closed.
    generation: u64,
    log: Option<File>,
    last_malformed: u64,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic in another thread cannot leave the card half-updated in a way that matters
    // for a test card; keep going with the data as it is.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// `certs …`: new end-entity certificates, saved at once.
    fn renew_certificates(&mut self, not_after: NotAfter) -> String {
        match self.card.state_mut().renew_certificates(not_after) {
            Ok(end) => match self.card.state().save(&self.state_path) {
                Ok(()) => format!("ok certs not_after={end}"),
                Err(e) => format!("err certificates renewed but not saved: {e}"),
            },
            Err(e) => format!("err {e}"),
        }
    }

    fn persist(&mut self) {
        if self.card.state_dirty() {
            if let Err(e) = self.card.state().save(&self.state_path) {
                eprintln!(
                    "jpki-virtual-card: cannot save {}: {e}",
                    self.state_path.display()
                );
            }
        }
        let malformed = self.card.stats().malformed_verify_count;
        if malformed > self.last_malformed {
            eprintln!(
                "jpki-virtual-card: WARNING: a malformed PIN reached the card (total {malformed})"
            );
        }
        self.last_malformed = malformed;
    }

    fn log_apdu(&mut self, command_for_log: &str, cmd_len: usize, response: Option<&[u8]>) {
        let (sw, data_len) = match response {
            None => ("none".to_string(), 0),
            Some(r) if r.len() < 2 => (format!("short:{}", jpki_virtual_card::apdu::hex(r)), 0),
            Some(r) => (jpki_virtual_card::apdu::hex(&r[r.len() - 2..]), r.len() - 2),
        };
        self.log_line(command_for_log, &sw, data_len, cmd_len);
    }

    /// A command the reader could not carry: logged with `reader-dropped` in the SW column.
    fn log_reader_error(&mut self, command_for_log: &str, cmd_len: usize) {
        self.log_line(command_for_log, "reader-dropped", 0, cmd_len);
    }

    fn log_line(&mut self, command_for_log: &str, sw: &str, data_len: usize, cmd_len: usize) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let line = format!("{ms} {command_for_log} {sw} {data_len} {cmd_len}\n");
        if log
            .write_all(line.as_bytes())
            .and_then(|_| log.flush())
            .is_err()
        {
            eprintln!("jpki-virtual-card: cannot write the APDU log");
        }
    }
}

fn send_message(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too long"))?;
    let mut buf = Vec::with_capacity(payload.len() + 2);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    stream.write_all(&buf)?;
    stream.flush()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Reads one vpcd message. `Ok(None)` if nothing arrived within the read timeout; once a
/// message has started, waits up to 5 s for the rest.
/// Acknowledge at once what the driver sent. The vpcd driver writes the 2-byte length and the
/// APDU in two writes with Nagle on; with Linux's delayed ACK on our side the second write waits
/// ~40 ms for our ACK of the first. TCP_QUICKACK is not sticky, so it is set before every read.
fn quick_ack(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a correctly sized option value; a failure only
    // costs latency, so its result is ignored.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn read_message(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    quick_ack(stream);
    let mut header = [0u8; 2];
    let mut got = 0;
    let started = Instant::now();
    while got < 2 {
        match stream.read(&mut header[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if is_timeout(&e) => {
                if got == 0 {
                    return Ok(None);
                }
                if started.elapsed() > Duration::from_secs(5) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    quick_ack(stream);
    let len = usize::from(u16::from_be_bytes(header));
    let mut payload = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match stream.read(&mut payload[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if is_timeout(&e) => {
                if started.elapsed() > Duration::from_secs(5) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(payload))
}

enum SessionEnd {
    /// The driver closed the connection (pcscd stopped): reconnect.
    DriverGone,
    /// The card was removed (control command or fault): stay out until `insert`.
    Removed,
    /// The reader could not carry a command (extended-APDU mode `drop`): the connection was
    /// closed without an answer, which vpcd reports as a failed transmit. The card is still
    /// in the reader, powered and in its state: connect again at once.
    ReaderError,
    Quit,
}

fn serve(stream: &mut TcpStream, shared: &Mutex<Shared>) -> io::Result<SessionEnd> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    let generation = lock(shared).generation;
    loop {
        {
            let s = lock(shared);
            if s.quit {
                return Ok(SessionEnd::Quit);
            }
            if !s.inserted || s.generation != generation {
                return Ok(SessionEnd::Removed);
            }
        }
        let msg = match read_message(stream) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(_) => return Ok(SessionEnd::DriverGone),
        };
        if let [control] = msg[..] {
            let mut s = lock(shared);
            match control {
                0x00 => s.card.power_off(),
                0x01 => {
                    s.card.power_on();
                }
                0x02 => {
                    s.card.reset();
                }
                0x04 => {
                    let atr = s.card.atr();
                    drop(s);
                    send_message(stream, &atr)?;
                }
                other => eprintln!("jpki-virtual-card: unknown vpcd control byte {other:02x}"),
            }
            continue;
        }
        let reply = {
            let mut s = lock(shared);
            let reply = s.card.transmit(&msg);
            s.persist();
            if reply.reader_error {
                s.log_reader_error(&reply.command_for_log, msg.len());
            } else {
                s.log_apdu(&reply.command_for_log, msg.len(), reply.response.as_deref());
            }
            reply
        };
        if reply.delay_ms > 0 {
            thread::sleep(Duration::from_millis(reply.delay_ms));
        }
        if reply.reader_error {
            return Ok(SessionEnd::ReaderError);
        }
        if let Some(resp) = &reply.response {
            send_message(stream, resp)?;
        }
        if reply.disconnect {
            let mut s = lock(shared);
            s.inserted = false;
            s.generation += 1;
            s.card.power_off();
            return Ok(SessionEnd::Removed);
        }
    }
}

fn card_loop(shared: &Mutex<Shared>, host: &str, port: u16) {
    let mut announced = false;
    loop {
        {
            let s = lock(shared);
            if s.quit {
                return;
            }
            if !s.inserted {
                drop(s);
                thread::sleep(POLL);
                continue;
            }
        }
        let mut stream = match TcpStream::connect((host, port)) {
            Ok(s) => s,
            Err(e) => {
                if !announced {
                    eprintln!("jpki-virtual-card: waiting for vpcd at {host}:{port} ({e})");
                    announced = true;
                }
                thread::sleep(POLL);
                continue;
            }
        };
        announced = false;
        // A reader powers a card when it is inserted. vpcd only sends "power on" when pcscd
        // notices the insertion, which it may miss when the card comes back within its polling
        // interval; a card left unpowered would then never answer.
        {
            let mut s = lock(shared);
            if !s.card.is_powered() {
                s.card.power_on();
            }
        }
        eprintln!("jpki-virtual-card: card inserted (connected to {host}:{port})");
        let end = serve(&mut stream, shared);
        let _ = stream.shutdown(Shutdown::Both);
        if matches!(end, Ok(SessionEnd::ReaderError)) {
            // vpcd reads the closed connection as an empty response: SCardTransmit succeeds
            // with 0 bytes (vpcd compares recv's -1 against an unsigned size, so even a TCP
            // reset reads the same). Until pcscd's next presence poll (about 0.4 s) makes vpcd
            // accept our new connection, transmits fail with SCARD_E_NOT_TRANSACTED. The card
            // never lost power: reconnect at once with its state intact.
            continue;
        }
        lock(shared).card.power_off();
        match end {
            Ok(SessionEnd::Quit) => return,
            Ok(SessionEnd::ReaderError) => {}
            Ok(SessionEnd::Removed) => eprintln!("jpki-virtual-card: card removed"),
            Ok(SessionEnd::DriverGone) | Err(_) => {
                eprintln!("jpki-virtual-card: connection to vpcd lost; reconnecting");
                thread::sleep(POLL);
            }
        }
    }
}

fn handle_control(line: &str, shared: &Mutex<Shared>) -> String {
    let line = line.trim();
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    let mut s = lock(shared);
    match word {
        "remove" => {
            s.inserted = false;
            s.generation += 1;
            s.card.power_off();
            "ok removed".into()
        }
        "insert" => {
            s.inserted = true;
            "ok inserted".into()
        }
        "latency" => {
            let mut it = rest.split_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(a)), Some(Ok(b)), None) => {
                    s.card.set_latency(a, b);
                    format!("ok latency apdu={a}ms sign={b}ms")
                }
                _ => "err usage: latency <apdu_ms> <sign_ms>".into(),
            }
        }
        "fault" => match s.card.faults_mut().apply_spec(rest) {
            Ok(desc) => format!("ok fault {desc}"),
            Err(e) => format!("err {e}"),
        },
        "faults" => {
            let list: Vec<String> = s
                .card
                .faults_mut()
                .armed()
                .iter()
                .map(|f| f.to_string())
                .collect();
            format!("ok [{}]", list.join("; "))
        }
        "stats" => match serde_json::to_string(s.card.stats()) {
            Ok(json) => format!("ok {json}"),
            Err(e) => format!("err {e}"),
        },
        "reset-stats" => {
            s.card.reset_stats();
            "ok".into()
        }
        "reset" => {
            s.card.external_reset();
            "ok reset".into()
        }
        "status" => {
            let st = s.card.state();
            format!(
                "ok inserted={} powered={} auth_tries_left={} sign_tries_left={} kenhojo_tries_left={} extended_apdu={}",
                s.inserted,
                s.card.is_powered(),
                st.auth_tries_left,
                st.sign_tries_left,
                st.kenhojo_tries_left,
                s.card.extended_apdu()
            )
        }
        "quit" => {
            s.quit = true;
            "ok bye".into()
        }
        "extended-apdu" => match rest.parse::<ExtendedApdu>() {
            Ok(mode) => {
                s.card.set_extended_apdu(mode);
                format!("ok extended-apdu {mode}")
            }
            Err(e) => format!("err {e}"),
        },
        "certs" => {
            let not_after = match rest.split_once(char::is_whitespace) {
                Some(("days", n)) => n
                    .trim()
                    .parse::<i64>()
                    .map(NotAfter::Days)
                    .map_err(|_| format!("bad day count {n:?}")),
                Some(("not-after", d)) => NotAfter::parse_date(d),
                _ => Err("usage: certs days N | certs not-after YYYY-MM-DD".into()),
            };
            match not_after {
                Ok(na) => s.renew_certificates(na),
                Err(e) => format!("err {e}"),
            }
        }
        "" => "err empty command".into(),
        other => format!("err unknown command {other:?}"),
    }
}

fn control_client(stream: UnixStream, shared: Arc<Mutex<Shared>>) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else {
            return;
        };
        let reply = handle_control(&line, &shared);
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let o = parse_run(args)?;
    let mut state = load_or_create(&o.state, o.seed)
        .map_err(|e| format!("state {}: {e}", o.state.display()))?;
    if let Some(na) = o.not_after {
        let end = state.renew_certificates(na)?;
        state
            .save(&o.state)
            .map_err(|e| format!("state {}: {e}", o.state.display()))?;
        eprintln!("jpki-virtual-card: end-entity certificates valid until {end}");
    }
    let mut card = VirtualCard::new(state, o.profile);
    card.set_extended_apdu(o.extended_apdu);
    card.set_token(o.token);
    card.power_off();
    card.set_atr_index(o.atr_index);
    card.set_latency(o.apdu_latency_ms, o.sign_latency_ms);
    let log = match &o.apdu_log {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("apdu log {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let shared = Arc::new(Mutex::new(Shared {
        card,
        state_path: o.state.clone(),
        inserted: !o.removed,
        quit: false,
        generation: 0,
        log,
        last_malformed: 0,
    }));
    if let Some(path) = &o.control {
        if path.exists() {
            let _ = std::fs::remove_file(path);
        }
        let listener =
            UnixListener::bind(path).map_err(|e| format!("control {}: {e}", path.display()))?;
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        let shared = Arc::clone(&shared);
                        thread::spawn(move || control_client(stream, shared));
                    }
                    Err(e) => eprintln!("jpki-virtual-card: control accept: {e}"),
                }
            }
        });
    }
    card_loop(&shared, &o.host, o.port);
    if let Some(path) = &o.control {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn ctl(args: &[String]) -> Result<(), String> {
    let (opts, words) = parse_flags(args, &[])?;
    let mut control = None;
    for (name, v) in opts {
        match name.as_str() {
            "control" => control = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown option --{name}")),
        }
    }
    let control = control.ok_or("--control SOCKET is required")?;
    if words.is_empty() {
        return Err("no command given".into());
    }
    let mut stream =
        UnixStream::connect(&control).map_err(|e| format!("control {}: {e}", control.display()))?;
    writeln!(stream, "{}", words.join(" ")).map_err(|e| e.to_string())?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| e.to_string())?;
    let reply = reply.trim_end();
    println!("{reply}");
    if reply.starts_with("ok") {
        Ok(())
    } else {
        Err(String::new())
    }
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn pem(der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn export(args: &[String]) -> Result<(), String> {
    let (opts, words) = parse_flags(args, &[])?;
    if let Some(w) = words.first() {
        return Err(format!("unexpected argument {w:?}"));
    }
    let (mut state, mut out, mut seed) = (None, None, DEFAULT_SEED);
    for (name, v) in opts {
        match name.as_str() {
            "state" => state = Some(PathBuf::from(v)),
            "out" => out = Some(PathBuf::from(v)),
            "seed" => seed = num(&name, &v)?,
            _ => return Err(format!("unknown option --{name}")),
        }
    }
    let state_path = state.ok_or("--state FILE is required")?;
    let out = out.ok_or("--out DIR is required")?;
    let state = load_or_create(&state_path, seed)
        .map_err(|e| format!("state {}: {e}", state_path.display()))?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, der) in [
        ("auth_cert", state.auth_certificate()),
        ("auth_ca_cert", state.auth_ca_certificate()),
        ("sign_cert", state.sign_certificate()),
        ("sign_ca_cert", state.sign_ca_certificate()),
    ] {
        let write = |ext: &str, bytes: &[u8]| {
            let p = out.join(format!("{name}.{ext}"));
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
        };
        write("der", der)?;
        write("pem", pem(der).as_bytes())?;
    }
    println!("ok wrote 8 files to {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("ctl") => ctl(&args[1..]),
        Some("export") => export(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("missing or unknown subcommand\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("jpki-virtual-card: {e}");
            }
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn parses_run_options() {
        let args: Vec<String> = "--state /tmp/x --profile extended --port 1 --removed --seed 7"
            .split(' ')
            .map(String::from)
            .collect();
        let o = parse_run(&args).unwrap();
        assert_eq!(o.profile, Profile::Extended);
        assert_eq!((o.port, o.seed, o.removed), (1, 7, true));
        assert!(parse_run(&["--bogus".to_string(), "1".to_string()]).is_err());
        assert!(parse_run(&[]).is_err());
    }

    #[test]
    fn faults_type_is_reachable() {
        let mut f = jpki_virtual_card::Faults::default();
        assert!(f.apply_spec("delay 5").is_ok());
    }
}
