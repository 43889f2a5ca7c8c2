//! The module's side of the card link: a connection whose card is held by a helper process,
//! so that a card that never answers costs at most the socket timeouts, without a thread.
//!
//! - One helper per connection, spawned with `std::process::Command` (no thread), its stdin
//!   and stdout one end of a `UnixStream::pair()`; both ends are close-on-exec, so no other
//!   program the host starts inherits the link.
//! - Every request waits at most [`APDU_TIMEOUT`] (a transaction: [`TRANSACTION_TIMEOUT`]) for
//!   its answer, by the socket's read timeout. On a timeout the helper is killed and reaped,
//!   and the call returns [`TransportError::Timeout`]. Killing it ends its PC/SC connection
//!   (pcscd resets the card of a client that died inside a transaction), so the next use
//!   spawns a new helper and reports [`TransportError::CardReset`] once: the card's security
//!   state is gone, login must be redone. Waits for pcscd that another client's transaction
//!   holds back are the exception: see `call`.
//! - Calls while nothing is stuck use the same helper; closing the link (drop) lets the
//!   helper disconnect (`SCARD_LEAVE_CARD`) and exit, and it is reaped.
//! - Fork: a child of the host forgets the parent's module state without using or dropping
//!   it (`pkcs11::module`), so it never writes to, kills or reaps the parent's helper.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::protocol::{read_frame, write_frame, Request, Response};
use crate::transport::pcsc::{APDU_TIMEOUT, TRANSACTION_TIMEOUT};
use crate::transport::{Channel, Transport, TransportError};

/// How long closing a link waits for the helper to disconnect and exit before killing it.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why a helper gave no connection.
#[derive(Debug)]
pub enum LinkError {
    /// The helper answered: the card or reader said no (no card, no reader, pcscd down, …).
    Transport(TransportError),
    /// No working helper: it cannot be started here (a sandbox), or it is not this protocol.
    Unusable(String),
}

/// A connection to a card in `reader` through a helper process.
pub struct LinkTransport {
    helper: PathBuf,
    reader: CString,
    /// `None` after the helper was killed or died, until a new one is connected.
    link: Option<Helper>,
    /// A new helper started after a kill, whose connection has not answered yet.
    replacing: Option<(Helper, Instant)>,
    atr: Vec<u8>,
    apdus: u64,
}

impl LinkTransport {
    /// Spawns the helper at `helper` and connects it to the card in `reader`.
    pub fn connect(helper: &Path, reader: CString) -> Result<LinkTransport, LinkError> {
        let mut link = Helper::start(helper, &reader)?;
        let atr = link.connected(APDU_TIMEOUT)?;
        log::debug!(
            "card in {reader:?}: held by the card-link helper {} (pid {})",
            helper.display(),
            link.child.id()
        );
        Ok(LinkTransport {
            helper: helper.to_path_buf(),
            reader,
            link: Some(link),
            replacing: None,
            atr,
            apdus: 0,
        })
    }

    /// Without a connected helper (the last one was killed): `Ok` once a new one is
    /// connected, which is reported as `CardReset` by the caller. A replacement started at the
    /// kill connects while the card may still be stuck (pcscd answers the new connection only
    /// after the old one's command): until it answers, calls fail at once with `Timeout`, as
    /// calls on a stuck worker thread do, and after [`APDU_TIMEOUT`] it is killed in turn.
    fn reconnect(&mut self) -> Result<(), TransportError> {
        // One started at a kill gets a glance; one started by this call, the whole bound.
        let (mut helper, since, wait) = match self.replacing.take() {
            Some((helper, since)) => (helper, since, Duration::from_millis(1)),
            None => (
                Helper::start(&self.helper, &self.reader).map_err(LinkError::into_transport)?,
                Instant::now(),
                APDU_TIMEOUT,
            ),
        };
        match helper.connected(wait) {
            Ok(atr) => {
                log::info!("the card's connection is back: the card was reset, log in again");
                self.link = Some(helper);
                self.atr = atr;
                Ok(())
            }
            Err(LinkError::Transport(TransportError::Timeout))
                if since.elapsed() < APDU_TIMEOUT =>
            {
                self.replacing = Some((helper, since));
                log::warn!("the card has not answered an earlier command yet");
                Err(TransportError::Timeout)
            }
            Err(e) => {
                // No answer within the bound either: this one is killed, the next call
                // starts another.
                helper.kill();
                Err(e.into_transport())
            }
        }
    }

    /// After a kill in [`call`]: a replacement starts connecting now.
    fn replace_if_killed(&mut self) {
        if self.link.is_none() && self.replacing.is_none() {
            if let Ok(helper) = Helper::start(&self.helper, &self.reader) {
                self.replacing = Some((helper, Instant::now()));
            }
        }
    }

    /// The ATR after a reset by another party (the helper has reconnected).
    fn refresh_atr(&mut self) {
        if let Ok(atr) = call(&mut self.link, &Request::Atr, APDU_TIMEOUT) {
            self.atr = atr.to_vec();
        }
    }

    /// `request` to a connected helper, reconnecting first after a kill.
    fn request(&mut self, request: &Request, timeout: Duration) -> Result<(), TransportError> {
        if self.link.is_none() {
            self.reconnect()?;
            return Err(TransportError::CardReset);
        }
        let result = call(&mut self.link, request, timeout);
        self.replace_if_killed();
        match result {
            Ok(_) => Ok(()),
            Err(TransportError::CardReset) => {
                self.refresh_atr();
                Err(TransportError::CardReset)
            }
            Err(e) => Err(e),
        }
    }
}

impl LinkError {
    fn into_transport(self) -> TransportError {
        match self {
            LinkError::Transport(e) => e,
            LinkError::Unusable(why) => TransportError::Other(why),
        }
    }
}

impl Transport for LinkTransport {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    fn begin(&mut self) -> Result<Box<dyn Channel + '_>, TransportError> {
        self.request(&Request::Begin, TRANSACTION_TIMEOUT)?;
        Ok(Box::new(LinkChannel { transport: self }))
    }

    fn apdus_sent(&self) -> u64 {
        self.apdus
    }

    fn status(&mut self) -> Result<(), TransportError> {
        self.request(&Request::Status, APDU_TIMEOUT)
    }
}

impl Drop for LinkTransport {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            link.close();
        }
        if let Some((pending, _)) = self.replacing.take() {
            pending.close();
        }
    }
}

/// A transaction through the helper: ends it when dropped.
struct LinkChannel<'a> {
    transport: &'a mut LinkTransport,
}

impl Channel for LinkChannel<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transport.apdus += 1;
        let request = Request::Transmit(Zeroizing::new(command.to_vec()));
        // The answer may carry personal data: copied out of a buffer that is zeroed.
        let result = call(&mut self.transport.link, &request, APDU_TIMEOUT);
        self.transport.replace_if_killed();
        result.map(|answer| answer.to_vec())
    }
}

impl Drop for LinkChannel<'_> {
    fn drop(&mut self) {
        if let Some(helper) = self.transport.link.as_mut() {
            // Not answered: a helper stuck in SCardEndTransaction is found out (and killed)
            // by the next request's timeout.
            if helper.send(&Request::End).is_err() {
                if let Some(dead) = self.transport.link.take() {
                    dead.kill();
                }
                self.transport.replace_if_killed();
            }
        }
    }
}

/// Sends `request` to the helper in `link` and waits at most `timeout` for the answer. A
/// helper that does not answer in time, or whose link fails, is killed and `link` emptied:
/// `Timeout` (or the link failure) now, a new helper and `CardReset` at a later use.
/// Without a helper (killed earlier in this transaction), `Timeout` at once.
///
/// Waiting for the PC/SC transaction (`Begin`) or for `SCardStatus` (which pcscd holds back
/// while another client's transaction is open) is the exception: the helper is then most
/// likely waiting for another client, not for the card, and killing it would make pcscd reset
/// the card under that client (pcscd resets the card of a client that dies holding it). So the
/// helper is left waiting (after `Begin`, told to end the transaction as soon as it has it),
/// and its late answer is owed ([`Helper::owed`]): later calls fail at once until it comes, and
/// a helper still silent one more [`TRANSACTION_TIMEOUT`] later is killed after all.
fn call(
    link: &mut Option<Helper>,
    request: &Request,
    timeout: Duration,
) -> Result<Zeroizing<Vec<u8>>, TransportError> {
    let Some(helper) = link.as_mut() else {
        return Err(TransportError::Timeout);
    };
    let answer = match helper.settle() {
        Settled::Yes => helper.send(request).and_then(|()| helper.answer(timeout)),
        Settled::NotYet => {
            log::warn!("the card's connection is still waiting for pcscd (another program)");
            return Err(TransportError::Timeout);
        }
        Settled::Failed(e) => Err(e),
    };
    match answer {
        Ok(Response::Ok(body)) => Ok(body),
        Ok(Response::Err(e)) => Err(e),
        Err(e)
            if is_timeout(&e)
                && matches!(request, Request::Begin | Request::Status)
                && helper.owed.is_none() =>
        {
            log::warn!(
                "{request:?}: no answer within {} s (another program may hold the card)",
                timeout.as_secs()
            );
            let ended = *request != Request::Begin || helper.send(&Request::End).is_ok();
            if ended {
                helper.owed = Some(Instant::now());
            } else if let Some(helper) = link.take() {
                helper.kill();
            }
            Err(TransportError::Timeout)
        }
        Err(e) => {
            let error = if is_timeout(&e) {
                log::warn!(
                    "the card did not answer within {} s: ending its connection",
                    timeout.as_secs()
                );
                TransportError::Timeout
            } else {
                log::warn!("card link helper failed: {e}");
                TransportError::Other(format!("card link helper failed: {e}"))
            };
            if let Some(helper) = link.take() {
                helper.kill();
            }
            Err(error)
        }
    }
}

/// Whether a helper owes no answer any more ([`Helper::settle`]).
enum Settled {
    Yes,
    NotYet,
    /// Still nothing after the last grace: treated as a helper that does not answer.
    Failed(io::Error),
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// One helper process and the module's end of its link.
struct Helper {
    child: Child,
    stream: UnixStream,
    path: PathBuf,
    /// Killed or exited, and reaped.
    ended: bool,
    /// Since when the answer to a `Begin` that timed out is owed (see [`call`]).
    owed: Option<Instant>,
}

impl Helper {
    /// Starts the helper at `path` and asks it to connect to `reader` (the answer is read by
    /// [`Helper::connected`]).
    fn start(path: &Path, reader: &CString) -> Result<Helper, LinkError> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| LinkError::Unusable(format!("no socket pair: {e}")))?;
        let theirs_out = theirs
            .try_clone()
            .map_err(|e| LinkError::Unusable(format!("no socket pair: {e}")))?;
        let mut command = Command::new(path);
        command
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
            .stderr(Stdio::inherit())
            // Its own process group: a terminal's Ctrl-C goes to the host, which then closes
            // the link; the helper does not die under a host that handles the signal.
            .process_group(0);
        let spawned = command.spawn();
        // The host's copies of the helper's end: closed now, so that the helper sees the
        // module's end close (and exits) rather than its own copy held open here.
        drop(command);
        let child = spawned
            .map_err(|e| LinkError::Unusable(format!("cannot start {}: {e}", path.display())))?;
        let mut helper = Helper {
            child,
            stream: ours,
            path: path.to_path_buf(),
            ended: false,
            owed: None,
        };
        if let Err(e) = helper.send(&Request::Connect(reader.as_bytes().to_vec())) {
            helper.kill();
            return Err(LinkError::Unusable(format!("{}: {e}", path.display())));
        }
        Ok(helper)
    }

    /// The answer to `Connect`, waited for at most `wait`: the card's ATR. A helper that
    /// gives none is ended (killed, or closed after the card's refusal); `Transport(Timeout)`
    /// leaves it running, for a later look.
    fn connected(&mut self, wait: Duration) -> Result<Vec<u8>, LinkError> {
        match self.answer(wait) {
            Ok(Response::Ok(atr)) => Ok(atr.to_vec()),
            Ok(Response::Err(e)) => {
                // The helper exits after a refused connection.
                self.finish();
                Err(LinkError::Transport(e))
            }
            Err(e) if is_timeout(&e) => Err(LinkError::Transport(TransportError::Timeout)),
            Err(e) => {
                // It exited at once, or speaks another protocol version (its answer does not
                // parse): not a helper this module can use.
                self.shut();
                Err(LinkError::Unusable(format!("{}: {e}", self.path.display())))
            }
        }
    }

    fn send(&mut self, request: &Request) -> io::Result<()> {
        self.stream.set_write_timeout(Some(APDU_TIMEOUT))?;
        write_frame(&mut self.stream, &request.encode())
    }

    /// Takes an owed answer if it has come (and throws it away: the transaction it reports was
    /// ended by the `End` sent after it).
    fn settle(&mut self) -> Settled {
        let Some(since) = self.owed else {
            return Settled::Yes;
        };
        match self.answer(Duration::from_millis(1)) {
            Ok(_) => {
                self.owed = None;
                Settled::Yes
            }
            Err(e) if is_timeout(&e) && since.elapsed() < TRANSACTION_TIMEOUT => Settled::NotYet,
            Err(e) => Settled::Failed(e),
        }
    }

    /// The answer to the request sent last, begun within `timeout`. Once its first byte has
    /// come, the rest of the frame gets [`APDU_TIMEOUT`] more: a short look (an owed answer
    /// checked for in 1 ms) must never stop between a frame's length and its body, which would
    /// leave the link in the middle of a frame for good.
    fn answer(&mut self, timeout: Duration) -> io::Result<Response> {
        let mut reader = Deadline {
            stream: &self.stream,
            end: Instant::now() + timeout,
            begun: false,
        };
        let payload = read_frame(&mut reader)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the helper exited"))?;
        Response::parse(&payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))
    }

    /// Ends the helper at once and reaps it.
    fn kill(mut self) {
        self.shut();
    }

    /// Closes the link: the helper disconnects (leaving the card as it is) and exits.
    fn close(mut self) {
        self.finish();
    }

    /// [`Helper::kill`] in place.
    fn shut(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        // Already gone (it crashed, or someone else killed it): nothing to kill.
        if let Err(e) = self.child.kill() {
            log::debug!("card link helper: kill: {e}");
        }
        // ECHILD when the host reaped it already (see `finish`).
        if let Err(e) = self.child.wait() {
            log::debug!("card link helper: wait: {e}");
        }
    }

    /// [`Helper::close`] in place: killed after [`CLOSE_WAIT`] if it does not exit.
    fn finish(&mut self) {
        if self.ended {
            return;
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let end = Instant::now() + CLOSE_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => return self.shut(),
                // ECHILD: the host reaps its children itself (SIGCHLD ignored, or a handler
                // that waits for every child). Nothing left to wait for.
                Err(e) => {
                    log::debug!("card link helper: wait: {e}");
                    break;
                }
            }
        }
        self.ended = true;
    }
}

impl Drop for Helper {
    /// Every path ends its helper on purpose; this catches any that does not, so that no
    /// helper is left running or unreaped. (A forked child never drops the parent's helpers:
    /// it forgets the module without dropping it.)
    fn drop(&mut self) {
        self.shut();
    }
}

/// Reads from the link until a common deadline: each read waits at most what is left. The
/// deadline moves to [`APDU_TIMEOUT`] after the first byte read (see [`Helper::answer`]).
struct Deadline<'a> {
    stream: &'a UnixStream,
    end: Instant,
    /// A byte of the answer has been read.
    begun: bool,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        let n = stream.read(buf)?;
        if n > 0 && !self.begun {
            self.begun = true;
            self.end = Instant::now() + APDU_TIMEOUT;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Serialises these tests: a script being written by one test while another forks would
    /// be inherited open for writing, and its exec fail with ETXTBSY.
    static SPAWNING: parking_lot::Mutex<()> = parking_lot::const_mutex(());

    /// A stand-in helper: a shell script in a directory of its own.
    fn script(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jpki-cardlink-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn reader() -> CString {
        CString::new("Reader A").unwrap()
    }

    /// A short look that catches an answer between its length and its body reads the body
    /// too: stopping there would leave the link in the middle of a frame for good (seen as a
    /// module that never recovers after another program's transaction).
    #[test]
    fn an_answer_begun_is_read_to_its_end() {
        use std::io::Write;
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut frame = Vec::new();
        write_frame(&mut frame, b"owed answer").unwrap();
        let (head, body) = frame.split_at(4);
        let body = body.to_vec();
        theirs.write_all(head).unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            theirs.write_all(&body).unwrap();
            theirs
        });
        let mut reader = Deadline {
            stream: &ours,
            end: Instant::now() + Duration::from_millis(1),
            begun: false,
        };
        let payload = read_frame(&mut reader).unwrap().unwrap();
        assert_eq!(&payload[..], b"owed answer");
        drop(late.join().unwrap());
    }

    fn unusable(r: Result<LinkTransport, LinkError>) -> String {
        match r {
            Err(LinkError::Unusable(why)) => why,
            Err(LinkError::Transport(e)) => panic!("a transport error: {e}"),
            Ok(_) => panic!("a connection"),
        }
    }

    #[test]
    fn a_helper_that_cannot_start_is_unusable() {
        let _serial = SPAWNING.lock();
        let why = unusable(LinkTransport::connect(
            Path::new("/nonexistent/jpki-pkcs11-cardlink"),
            reader(),
        ));
        assert!(why.contains("cannot start"), "{why}");
    }

    #[test]
    fn a_helper_that_exits_at_once_is_unusable() {
        let _serial = SPAWNING.lock();
        let helper = script("exits", "exit 0");
        unusable(LinkTransport::connect(&helper, reader()));
    }

    #[test]
    fn a_helper_of_another_protocol_version_is_unusable() {
        let _serial = SPAWNING.lock();
        // A well-formed frame of version 9: 00 00 00 02, 09 80.
        let helper = script(
            "version9",
            r"printf '\000\000\000\002\011\200'; cat >/dev/null",
        );
        let why = unusable(LinkTransport::connect(&helper, reader()));
        assert!(why.contains("version 9"), "{why}");
    }

    #[test]
    fn a_refused_connection_is_the_card_readers_answer() {
        let _serial = SPAWNING.lock();
        // Err(NoReader): 00 00 00 03, 01 81 03.
        let helper = script(
            "noreader",
            r"printf '\000\000\000\003\001\201\003'; cat >/dev/null",
        );
        match LinkTransport::connect(&helper, reader()) {
            Err(LinkError::Transport(TransportError::NoReader)) => {}
            Err(LinkError::Transport(e)) => panic!("{e}"),
            Err(LinkError::Unusable(why)) => panic!("unusable: {why}"),
            Ok(_) => panic!("a connection"),
        }
    }

    #[test]
    fn a_connected_helper_is_used_and_closed() {
        let _serial = SPAWNING.lock();
        // Connect answered with an ATR (00 00 00 04, 01 80 3b 01); after the Connect request
        // (14 bytes) and the Status request (6 bytes), Status with Ok (00 00 00 02, 01 80).
        // The script ends when the module closes the link.
        let helper = script(
            "answers",
            r"printf '\000\000\000\004\001\200\073\001'; head -c 14 >/dev/null; head -c 6 >/dev/null; printf '\000\000\000\002\001\200'; cat >/dev/null",
        );
        let mut link = LinkTransport::connect(&helper, reader()).unwrap();
        assert_eq!(link.atr(), [0x3b, 0x01]);
        assert_eq!(link.status(), Ok(()));
        let pid = link.link.as_ref().unwrap().child.id();
        drop(link);
        // Closed and reaped: no process of that id is left (not even a zombie).
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
