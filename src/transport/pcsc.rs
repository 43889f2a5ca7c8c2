//! PC/SC transport through pcscd (the `pcsc` crate).
//!
//! - Each connection has its own PC/SC context; [`PcscReaders`] keeps one for `list` and one
//!   per thread blocked in `wait_for_change`, so a blocking wait never holds up card traffic
//!   and `cancel` reaches every waiter.
//! - A card reset by another client (`SCARD_W_RESET_CARD`) is answered by a reconnect
//!   (`LeaveCard`) and reported once as [`TransportError::CardReset`]: the card's security
//!   state is gone, the connection is usable again.
//! - When pcscd goes away (restart), the failing call reports `NoService`; the next call
//!   establishes a new context (and a connection reconnects to its reader, reporting
//!   `CardReset`, since the card was certainly reset).
//! - Connections are closed with `LeaveCard` (not the `pcsc` crate's default reset), so other
//!   clients keep their state; the card layer logs out before that if it logged in.
//! - **Bounded waits.** `SCardTransmit` has no timeout of its own: a card (or a reader, or a
//!   remote/virtual reader such as vpcd) that never answers blocks it for ever. Each connection
//!   therefore hands its card to a worker thread of its own, and the caller waits at most
//!   [`APDU_TIMEOUT`] for an answer and [`TRANSACTION_TIMEOUT`] for the PC/SC transaction
//!   (another process may hold it). On a timeout the caller gets [`TransportError::Timeout`];
//!   the connection stays unusable (every call fails at once with `Timeout`) until the stuck
//!   call returns, and the late answer is thrown away. When the application forbids threads
//!   (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`, see [`PcscReaders::without_threads`]), calls run on
//!   the caller's thread and the only bound is the reader driver's.

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode, State};

use super::{Channel, ReaderState, Readers, Transport, TransportError};

/// Longest slice of a blocking wait: bounds how late a `cancel` that raced with the start of
/// `SCardGetStatusChange` is noticed.
const WAIT_SLICE: Duration = Duration::from_millis(1000);
/// How often to try to reach pcscd again while it is down, during a wait.
const SERVICE_RETRY: Duration = Duration::from_millis(250);
/// Receive buffer of a short APDU: 256 data bytes + SW, with room to spare (pcsc-lite's
/// MAX_BUFFER_SIZE).
const RECEIVE_BUFFER: usize = pcsc::MAX_BUFFER_SIZE;

/// A zeroed receive buffer for `command`: short APDUs keep the short buffer (what every reader
/// driver handles), an extended-length command (byte 4 = 00 followed by more bytes: the card
/// layer's extended READ BINARY, issue 13) gets pcsc-lite's extended maximum.
fn receive_buffer(command: &[u8]) -> zeroize::Zeroizing<Vec<u8>> {
    let extended = command.len() > 5 && command[4] == 0;
    let size = if extended {
        pcsc::MAX_BUFFER_SIZE_EXTENDED
    } else {
        RECEIVE_BUFFER
    };
    zeroize::Zeroizing::new(vec![0u8; size])
}

/// Longest wait for the card's answer to one APDU. A JPKI RSA-2048 signature takes about a
/// second on a real card (jpki-card.md §8: the contact ATR's BWT is ≈1.6 s); 10 s leaves room
/// for slow contactless readers and time-extension requests, and still ends a hang.
pub const APDU_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the PC/SC transaction (exclusive access), which another process may hold
/// for a few operations of its own.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dropping a connection waits for its worker to disconnect (it is left to finish on
/// its own if the card is stuck).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

fn map_error(e: pcsc::Error) -> TransportError {
    use pcsc::Error as E;
    log::debug!("PC/SC error {e:?}");
    match e {
        E::ResetCard => TransportError::CardReset,
        E::RemovedCard | E::NoSmartcard => TransportError::CardRemoved,
        E::NoService | E::ServiceStopped | E::InvalidHandle | E::CommError => {
            TransportError::NoService
        }
        E::NoReadersAvailable | E::UnknownReader | E::ReaderUnavailable => TransportError::NoReader,
        E::Timeout => TransportError::Timeout,
        E::Cancelled => TransportError::Cancelled,
        other => TransportError::Other(other.to_string()),
    }
}

fn establish() -> Result<Context, TransportError> {
    Context::establish(Scope::User).map_err(map_error)
}

/// The PC/SC readers, through pcscd.
pub struct PcscReaders {
    /// Context for `list` and `connect`; `None` until first use or after pcscd went away.
    context: Mutex<Option<Context>>,
    /// Contexts of the threads now blocked in `wait_for_change`, for `cancel`.
    waiters: Mutex<Vec<(u64, Context)>>,
    next_waiter: AtomicU64,
    cancel_generation: AtomicU64,
    /// Connections use worker threads and bounded waits (see the module documentation).
    threads: bool,
}

impl Default for PcscReaders {
    fn default() -> Self {
        Self::new()
    }
}

/// One reader as PC/SC reported it, with the raw state for the next `SCardGetStatusChange`.
struct Observed {
    public: Vec<ReaderState>,
    raw: Vec<pcsc::ReaderState>,
}

impl PcscReaders {
    /// No PC/SC traffic until the first call. Card I/O has bounded waits (one worker thread
    /// per connection).
    pub fn new() -> Self {
        PcscReaders {
            context: Mutex::new(None),
            waiters: Mutex::new(Vec::new()),
            next_waiter: AtomicU64::new(0),
            cancel_generation: AtomicU64::new(0),
            threads: true,
        }
    }

    /// For applications that forbid the library to create threads
    /// (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`): card I/O runs on the caller's thread, and a card
    /// that never answers is bounded only by the reader driver.
    pub fn without_threads() -> Self {
        PcscReaders {
            threads: false,
            ..Self::new()
        }
    }

    /// Runs `f` with the shared context, establishing it if needed and dropping it when pcscd
    /// is gone (so the next call establishes a new one).
    fn with_context<T>(
        &self,
        f: impl FnOnce(&Context) -> Result<T, pcsc::Error>,
    ) -> Result<T, TransportError> {
        let mut guard = self.context.lock();
        if guard.is_none() {
            *guard = Some(establish()?);
        }
        let Some(context) = guard.as_ref() else {
            return Err(TransportError::NoService);
        };
        let result = f(context).map_err(map_error);
        if matches!(result, Err(TransportError::NoService)) {
            *guard = None;
        }
        result
    }

    fn observe(&self) -> Result<Observed, TransportError> {
        self.with_context(|context| {
            let names = match context.list_readers_owned() {
                Ok(names) => names,
                Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
                Err(e) => return Err(e),
            };
            let mut raw: Vec<pcsc::ReaderState> = names
                .into_iter()
                .map(|name| pcsc::ReaderState::new(name, State::UNAWARE))
                .collect();
            if !raw.is_empty() {
                context.get_status_change(Duration::ZERO, &mut raw)?;
            }
            let public = raw
                .iter()
                .map(|r| {
                    let state = r.event_state();
                    let present = state.contains(State::PRESENT) && !state.contains(State::MUTE);
                    ReaderState {
                        name: r.name().to_string_lossy().into_owned(),
                        card_present: present,
                        atr: if present {
                            r.atr().to_vec()
                        } else {
                            Vec::new()
                        },
                        event_count: r.event_count(),
                    }
                })
                .collect();
            Ok(Observed { public, raw })
        })
    }

    fn cancelled_since(&self, generation: u64) -> bool {
        self.cancel_generation.load(Ordering::SeqCst) != generation
    }

    /// Sleeps up to `duration`, waking early on `cancel`.
    fn sleep_unless_cancelled(&self, duration: Duration, generation: u64) {
        let end = Instant::now() + duration;
        while !self.cancelled_since(generation) {
            let now = Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
    }
}

impl Readers for PcscReaders {
    fn list(&self) -> Result<Vec<ReaderState>, TransportError> {
        self.observe().map(|o| o.public)
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn Transport>, TransportError> {
        let name = CString::new(reader).map_err(|_| TransportError::NoReader)?;
        let transport = if self.threads {
            PcscTransport::connect(name)?
        } else {
            PcscTransport::connect_inline(name)?
        };
        Ok(Box::new(transport))
    }

    fn wait_for_change(
        &self,
        known: &[ReaderState],
        timeout: Option<Duration>,
    ) -> Result<bool, TransportError> {
        let generation = self.cancel_generation.load(Ordering::SeqCst);
        let deadline = timeout.map(|t| Instant::now() + t);
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let mut own: Option<Context> = None;
        let mut pnp: Option<pcsc::ReaderState> = None;
        let result = loop {
            if self.cancelled_since(generation) {
                break Err(TransportError::Cancelled);
            }
            // pcscd being down looks like "no readers".
            let observed = match self.observe() {
                Ok(o) => Some(o),
                Err(TransportError::NoService) => None,
                Err(e) => break Err(e),
            };
            let now_readers = observed
                .as_ref()
                .map(|o| o.public.as_slice())
                .unwrap_or(&[]);
            if super::readers_differ(now_readers, known) {
                break Ok(true);
            }
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break Ok(false);
                    }
                    (d - now).min(WAIT_SLICE)
                }
            };
            let Some(observed) = observed else {
                self.sleep_unless_cancelled(slice.min(SERVICE_RETRY), generation);
                continue;
            };
            if own.is_none() {
                match establish() {
                    Ok(context) => {
                        self.waiters.lock().push((id, context.clone()));
                        own = Some(context);
                    }
                    Err(_) => {
                        self.sleep_unless_cancelled(slice.min(SERVICE_RETRY), generation);
                        continue;
                    }
                }
            }
            let Some(context) = own.as_ref() else {
                continue;
            };
            if self.cancelled_since(generation) {
                break Err(TransportError::Cancelled);
            }
            // Current state = what was just observed (all flags and the event counter), so
            // only a real change wakes us. The PnP pseudo-reader carries the reader count.
            let mut states = observed.raw;
            for state in &mut states {
                state.sync_current_state();
            }
            let pnp_state = pnp.take().unwrap_or_else(|| {
                let count = (states.len() << 16).try_into().unwrap_or_default();
                pcsc::ReaderState::new(pcsc::PNP_NOTIFICATION(), State::from_bits_retain(count))
            });
            states.push(pnp_state);
            match context.get_status_change(slice, &mut states) {
                Ok(()) | Err(pcsc::Error::Timeout) | Err(pcsc::Error::UnknownReader) => {}
                Err(pcsc::Error::Cancelled) => {
                    if self.cancelled_since(generation) {
                        break Err(TransportError::Cancelled);
                    }
                }
                Err(e) => match map_error(e) {
                    TransportError::NoService => {
                        self.waiters.lock().retain(|(w, _)| *w != id);
                        own = None;
                    }
                    other => break Err(other),
                },
            }
            if let Some(mut p) = states.pop() {
                if p.name() == pcsc::PNP_NOTIFICATION() {
                    p.sync_current_state();
                    pnp = Some(p);
                }
            }
        };
        self.waiters.lock().retain(|(w, _)| *w != id);
        result
    }

    fn cancel(&self) {
        self.cancel_generation.fetch_add(1, Ordering::SeqCst);
        for (_, context) in self.waiters.lock().iter() {
            if let Err(e) = context.cancel() {
                log::debug!("SCardCancel: {e}");
            }
        }
    }
}

/// One shared connection to a card through pcscd.
pub struct PcscTransport {
    reader: CString,
    /// `None` after pcscd went away; reconnected by the next `begin`.
    link: Option<Link>,
    atr: Vec<u8>,
    apdus: u64,
    /// pcscd went away during the last call: drop the card and reconnect at the next `begin`.
    lost: bool,
    /// Worker thread and bounded waits (false: calls on the caller's thread).
    threads: bool,
}

/// How the card is reached.
enum Link {
    /// On the caller's thread.
    Inline(Card),
    /// Through a worker thread, with bounded waits.
    Worker(Worker),
}

impl Link {
    fn new(card: Card, threads: bool) -> Result<Link, TransportError> {
        if threads {
            Worker::spawn(card).map(Link::Worker)
        } else {
            Ok(Link::Inline(card))
        }
    }
}

impl PcscTransport {
    /// Connects (shared, T=0 or T=1) to the card in `reader`, with a context of its own; card
    /// I/O goes through a worker thread with bounded waits.
    pub fn connect(reader: CString) -> Result<Self, TransportError> {
        Self::connect_with(reader, true)
    }

    /// As [`PcscTransport::connect`], but card I/O runs on the caller's thread (no bound).
    pub fn connect_inline(reader: CString) -> Result<Self, TransportError> {
        Self::connect_with(reader, false)
    }

    fn connect_with(reader: CString, threads: bool) -> Result<Self, TransportError> {
        let card = Self::open(&reader)?;
        let atr = card_atr(&card);
        Ok(PcscTransport {
            reader,
            link: Some(Link::new(card, threads)?),
            atr,
            apdus: 0,
            lost: false,
            threads,
        })
    }

    fn open(reader: &CStr) -> Result<Card, TransportError> {
        let context = establish()?;
        context
            .connect(reader, ShareMode::Shared, Protocols::ANY)
            .map_err(map_error)
    }

    /// The reader this connection is to.
    pub fn reader(&self) -> String {
        self.reader.to_string_lossy().into_owned()
    }
}

fn card_atr(card: &Card) -> Vec<u8> {
    card.status2_owned()
        .map(|s| s.atr().to_vec())
        .unwrap_or_default()
}

/// Reconnects after `SCARD_W_RESET_CARD`; the error to report is `CardReset` either way
/// (if the reconnect failed, the next call fails with the real reason).
fn reconnect(card: &mut Card) {
    if let Err(e) = card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard) {
        log::debug!("SCardReconnect: {e}");
    }
}

/// How long a failed exchange waits for pcscd to notice that the card was removed (pcscd
/// polls a reader's card presence a few times a second).
const REMOVAL_SETTLE: Duration = Duration::from_millis(1500);

/// Whether pcscd reports the card of this connection gone, waiting up to [`REMOVAL_SETTLE`]
/// for it to notice.
fn card_gone(card: &Card) -> bool {
    use pcsc::Error as E;
    let start = Instant::now();
    loop {
        match card.status2_owned() {
            Err(E::RemovedCard | E::NoSmartcard | E::ResetCard) => return true,
            Ok(status) if !status.status().contains(pcsc::Status::PRESENT) => return true,
            _ => {}
        }
        if start.elapsed() >= REMOVAL_SETTLE {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What one `SCardTransmit` gave, with the errors of a card that was just removed made
/// plain. pcscd answers `SCARD_E_NOT_TRANSACTED` (or an empty response) when the reader
/// driver could not reach the card, and notices a removal only at its next poll.
fn transmit_result(
    card: &Card,
    result: Result<&[u8], pcsc::Error>,
) -> Result<Vec<u8>, pcsc::Error> {
    use pcsc::Error as E;
    match result {
        Ok(response) if response.len() >= 2 => Ok(response.to_vec()),
        Ok(short) if !card_gone(card) => Ok(short.to_vec()),
        Err(e @ (E::NotTransacted | E::CommError | E::UnknownError)) if !card_gone(card) => Err(e),
        Ok(_) | Err(E::NotTransacted | E::CommError | E::UnknownError) => Err(E::RemovedCard),
        Err(e) => Err(e),
    }
}

/// Closes a connection without resetting the card.
fn disconnect(card: Card) {
    if let Err((_card, e)) = card.disconnect(Disposition::LeaveCard) {
        log::debug!("SCardDisconnect: {e}");
    }
}

impl Transport for PcscTransport {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    fn begin(&mut self) -> Result<Box<dyn Channel + '_>, TransportError> {
        if self.lost {
            self.lost = false;
            self.link = None;
        }
        if self.link.is_none() {
            // pcscd went away under the last call: a new context and connection. The card
            // was reset with pcscd, so report that once.
            let card = Self::open(&self.reader)?;
            self.atr = card_atr(&card);
            self.link = Some(Link::new(card, self.threads)?);
            return Err(TransportError::CardReset);
        }
        let PcscTransport {
            link,
            atr,
            apdus,
            lost,
            ..
        } = self;
        let error = match link.as_mut() {
            None => return Err(TransportError::NoService),
            Some(Link::Inline(card)) => match card.transaction2() {
                Ok(transaction) => {
                    return Ok(Box::new(PcscChannel {
                        transaction,
                        apdus,
                        lost,
                    }))
                }
                Err((card, e)) => {
                    if e == pcsc::Error::ResetCard {
                        reconnect(card);
                        *atr = card_atr(card);
                    }
                    map_error(e)
                }
            },
            Some(Link::Worker(worker)) => match worker.begin() {
                Ok(()) => {
                    return Ok(Box::new(WorkerChannel {
                        worker,
                        apdus,
                        lost,
                    }))
                }
                Err((e, new_atr)) => {
                    if let Some(new_atr) = new_atr {
                        *atr = new_atr;
                    }
                    e
                }
            },
        };
        if error == TransportError::NoService {
            *lost = true;
        }
        Err(error)
    }

    fn apdus_sent(&self) -> u64 {
        self.apdus
    }

    /// `SCardStatus`: a round trip to pcscd, no APDU. It answers `SCARD_W_REMOVED_CARD` once
    /// the card is gone and `SCARD_W_RESET_CARD` after another client reset it.
    /// Through the worker when there is one (pcsc-lite serialises the calls of one context, so
    /// a status asked beside a stuck transmit would wait for it); a worker still stuck answers
    /// `Timeout` at once, and the caller learns no more than before.
    fn status(&mut self) -> Result<(), TransportError> {
        if self.lost {
            // pcscd went away: the next `begin` reconnects and reports the reset.
            return Ok(());
        }
        let PcscTransport {
            link, atr, lost, ..
        } = self;
        let error = match link.as_mut() {
            None => return Ok(()),
            Some(Link::Inline(card)) => match card.status2_owned() {
                Ok(_) => return Ok(()),
                Err(pcsc::Error::ResetCard) => {
                    reconnect(card);
                    *atr = card_atr(card);
                    TransportError::CardReset
                }
                Err(e) => map_error(e),
            },
            Some(Link::Worker(worker)) => match worker.status() {
                Ok(()) => return Ok(()),
                Err((e, new_atr)) => {
                    if let Some(new_atr) = new_atr {
                        *atr = new_atr;
                    }
                    e
                }
            },
        };
        if error == TransportError::NoService {
            *lost = true;
        }
        Err(error)
    }
}

impl Drop for PcscTransport {
    fn drop(&mut self) {
        match self.link.take() {
            Some(Link::Inline(card)) => disconnect(card),
            Some(Link::Worker(worker)) => worker.close(),
            None => {}
        }
    }
}

struct PcscChannel<'a> {
    transaction: pcsc::Transaction<'a>,
    apdus: &'a mut u64,
    lost: &'a mut bool,
}

impl Channel for PcscChannel<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut buffer = receive_buffer(command);
        *self.apdus += 1;
        let result = self.transaction.transmit(command, &mut buffer[..]);
        match transmit_result(&self.transaction, result) {
            Ok(response) => Ok(response),
            Err(pcsc::Error::ResetCard) => {
                self.transaction
                    .reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard)
                    .unwrap_or_else(|e| log::debug!("SCardReconnect: {e}"));
                Err(TransportError::CardReset)
            }
            Err(e) => {
                let error = map_error(e);
                if error == TransportError::NoService {
                    *self.lost = true;
                }
                Err(error)
            }
        }
    }
}

// ----- the worker thread of a connection ----------------------------------------------------

/// What the caller asks of a connection's worker thread.
enum Job {
    /// `SCardBeginTransaction`; answered by [`Done::Begun`].
    Begin,
    /// `SCardTransmit` inside the transaction; answered by [`Done::Transmitted`]. The command
    /// may hold a PIN: it is zeroed when dropped.
    Transmit(zeroize::Zeroizing<Vec<u8>>),
    /// `SCardEndTransaction(LeaveCard)`, if a transaction is open. No answer.
    End,
    /// `SCardStatus` (no APDU); answered by [`Done::Status`].
    Status,
}

/// What the worker answers.
enum Done {
    /// The transaction began, or why not (with the new ATR after a reset by another party).
    Begun(Result<(), (pcsc::Error, Option<Vec<u8>>)>),
    Transmitted(Result<Vec<u8>, pcsc::Error>),
    /// The card is there and was not reset, or why not (with the new ATR after a reset).
    Status(Result<(), (pcsc::Error, Option<Vec<u8>>)>),
}

/// The caller's side of a connection's worker thread.
struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
    done: std::sync::mpsc::Receiver<Done>,
    /// Closed (sender dropped) when the thread ends.
    exited: std::sync::mpsc::Receiver<()>,
    /// Jobs sent whose answer has not been received (a timed-out call leaves one behind).
    pending: usize,
}

impl Worker {
    fn spawn(card: Card) -> Result<Worker, TransportError> {
        let (jobs, job_rx) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let (exit_tx, exited) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("jpki-pcsc".into())
            .spawn(move || {
                serve_card(card, &job_rx, &done_tx);
                drop(exit_tx);
            })
            .map_err(|e| TransportError::Other(format!("cannot start a thread: {e}")))?;
        Ok(Worker {
            jobs,
            done,
            exited,
            pending: 0,
        })
    }

    /// Sends `job` and waits at most `timeout` for its answer. `Timeout` also when an earlier
    /// call is still stuck (its late answer, if any, is received and discarded here first).
    fn call(&mut self, job: Job, timeout: Duration) -> Result<Done, TransportError> {
        while self.pending > 0 {
            match self.done.try_recv() {
                Ok(_late) => self.pending -= 1,
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    log::warn!("the card has not answered an earlier command yet");
                    return Err(TransportError::Timeout);
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(worker_gone()),
            }
        }
        let what = match &job {
            Job::Begin => "SCardBeginTransaction",
            Job::Transmit(_) => "SCardTransmit",
            Job::End => "SCardEndTransaction",
            Job::Status => "SCardStatus",
        };
        self.jobs.send(job).map_err(|_| worker_gone())?;
        self.pending += 1;
        match self.done.recv_timeout(timeout) {
            Ok(done) => {
                self.pending -= 1;
                Ok(done)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                log::warn!("{what}: no answer within {} s", timeout.as_secs());
                Err(TransportError::Timeout)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(worker_gone()),
        }
    }

    /// Begins a transaction; on failure, the error and a new ATR if the card was reset.
    fn begin(&mut self) -> Result<(), (TransportError, Option<Vec<u8>>)> {
        match self.call(Job::Begin, TRANSACTION_TIMEOUT) {
            Ok(Done::Begun(Ok(()))) => Ok(()),
            Ok(Done::Begun(Err((e, atr)))) => Err((map_error(e), atr)),
            Ok(_) => Err((worker_gone(), None)),
            Err(e) => {
                // Should the transaction begin late, end it at once.
                self.end();
                Err((e, None))
            }
        }
    }

    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let command = zeroize::Zeroizing::new(command.to_vec());
        match self.call(Job::Transmit(command), APDU_TIMEOUT)? {
            Done::Transmitted(result) => result.map_err(map_error),
            _ => Err(worker_gone()),
        }
    }

    /// `SCardStatus` through the worker; on failure, the error and a new ATR after a reset.
    fn status(&mut self) -> Result<(), (TransportError, Option<Vec<u8>>)> {
        match self.call(Job::Status, APDU_TIMEOUT) {
            Ok(Done::Status(Ok(()))) => Ok(()),
            Ok(Done::Status(Err((e, atr)))) => Err((map_error(e), atr)),
            Ok(_) => Err((worker_gone(), None)),
            Err(e) => Err((e, None)),
        }
    }

    fn end(&mut self) {
        let _ = self.jobs.send(Job::End);
    }

    /// Ends the worker (it disconnects, leaving the card as it is). Waits a little for it, so
    /// that `C_Finalize` normally leaves no thread behind; a stuck worker finishes on its own.
    fn close(self) {
        let Worker { jobs, exited, .. } = self;
        drop(jobs);
        if exited.recv_timeout(CLOSE_WAIT) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            log::debug!("the card is still busy; its connection closes when it answers");
        }
    }
}

fn worker_gone() -> TransportError {
    TransportError::Other("connection worker ended".into())
}

/// The worker thread: owns the card, serves jobs until the caller drops its sender.
fn serve_card(
    mut card: Card,
    jobs: &std::sync::mpsc::Receiver<Job>,
    done: &std::sync::mpsc::Sender<Done>,
) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Begin => match card.transaction2() {
                Ok(transaction) => {
                    if done.send(Done::Begun(Ok(()))).is_err() {
                        break;
                    }
                    if !serve_transaction(transaction, jobs, done) {
                        break;
                    }
                }
                Err((card, e)) => {
                    let atr = (e == pcsc::Error::ResetCard).then(|| {
                        reconnect(card);
                        card_atr(card)
                    });
                    if done.send(Done::Begun(Err((e, atr)))).is_err() {
                        break;
                    }
                }
            },
            Job::Transmit(_) => {
                if done
                    .send(Done::Transmitted(Err(pcsc::Error::NotTransacted)))
                    .is_err()
                {
                    break;
                }
            }
            Job::Status => {
                let status = match card.status2_owned() {
                    Ok(_) => Ok(()),
                    Err(pcsc::Error::ResetCard) => {
                        reconnect(&mut card);
                        Err((pcsc::Error::ResetCard, Some(card_atr(&card))))
                    }
                    Err(e) => Err((e, None)),
                };
                if done.send(Done::Status(status)).is_err() {
                    break;
                }
            }
            Job::End => {}
        }
    }
    disconnect(card);
}

/// Serves transmits inside one transaction until `End`. False when the caller is gone.
fn serve_transaction(
    mut transaction: pcsc::Transaction<'_>,
    jobs: &std::sync::mpsc::Receiver<Job>,
    done: &std::sync::mpsc::Sender<Done>,
) -> bool {
    let mut alive = true;
    loop {
        let job = match jobs.recv() {
            Ok(job) => job,
            Err(_) => {
                alive = false;
                break;
            }
        };
        let answer = match job {
            Job::End => break,
            Job::Begin => Done::Begun(Err((pcsc::Error::InvalidValue, None))),
            Job::Status => Done::Status(match transaction.status2_owned() {
                Ok(_) => Ok(()),
                Err(e) => Err((e, None)),
            }),
            Job::Transmit(command) => {
                let mut buffer = receive_buffer(&command);
                let sent = transaction.transmit(&command, &mut buffer[..]);
                let result = match transmit_result(&transaction, sent) {
                    Err(pcsc::Error::ResetCard) => {
                        transaction
                            .reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard)
                            .unwrap_or_else(|e| log::debug!("SCardReconnect: {e}"));
                        Err(pcsc::Error::ResetCard)
                    }
                    other => other,
                };
                Done::Transmitted(result)
            }
        };
        if done.send(answer).is_err() {
            alive = false;
            break;
        }
    }
    if let Err((_, e)) = transaction.end(Disposition::LeaveCard) {
        log::debug!("SCardEndTransaction: {e}");
    }
    alive
}

/// A transaction through the worker: ends it when dropped.
struct WorkerChannel<'a> {
    worker: &'a mut Worker,
    apdus: &'a mut u64,
    lost: &'a mut bool,
}

impl Channel for WorkerChannel<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        *self.apdus += 1;
        let result = self.worker.transmit(command);
        if result == Err(TransportError::NoService) {
            *self.lost = true;
        }
        result
    }
}

impl Drop for WorkerChannel<'_> {
    fn drop(&mut self) {
        self.worker.end();
    }
}
