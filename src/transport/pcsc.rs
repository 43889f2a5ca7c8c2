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
/// Receive buffer: 256 data bytes + SW, with room to spare (pcsc-lite's MAX_BUFFER_SIZE).
const RECEIVE_BUFFER: usize = pcsc::MAX_BUFFER_SIZE;

fn map_error(e: pcsc::Error) -> TransportError {
    use pcsc::Error as E;
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
    /// No PC/SC traffic until the first call.
    pub fn new() -> Self {
        PcscReaders {
            context: Mutex::new(None),
            waiters: Mutex::new(Vec::new()),
            next_waiter: AtomicU64::new(0),
            cancel_generation: AtomicU64::new(0),
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
        Ok(Box::new(PcscTransport::connect(name)?))
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
    card: Option<Card>,
    atr: Vec<u8>,
    apdus: u64,
    /// pcscd went away during the last call: drop the card and reconnect at the next `begin`.
    lost: bool,
}

impl PcscTransport {
    /// Connects (shared, T=0 or T=1) to the card in `reader`, with a context of its own.
    pub fn connect(reader: CString) -> Result<Self, TransportError> {
        let card = Self::open(&reader)?;
        let atr = card_atr(&card);
        Ok(PcscTransport {
            reader,
            card: Some(card),
            atr,
            apdus: 0,
            lost: false,
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

impl Transport for PcscTransport {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    fn begin(&mut self) -> Result<Box<dyn Channel + '_>, TransportError> {
        if self.lost {
            self.lost = false;
            self.card = None;
        }
        if self.card.is_none() {
            // pcscd went away under the last call: a new context and connection. The card
            // was reset with pcscd, so report that once.
            let card = Self::open(&self.reader)?;
            self.atr = card_atr(&card);
            self.card = Some(card);
            return Err(TransportError::CardReset);
        }
        let PcscTransport {
            card: card_slot,
            atr,
            apdus,
            lost,
            ..
        } = self;
        let Some(card) = card_slot.as_mut() else {
            return Err(TransportError::NoService);
        };
        let error = match card.transaction2() {
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
    fn status(&mut self) -> Result<(), TransportError> {
        if self.lost {
            // pcscd went away: the next `begin` reconnects and reports the reset.
            return Ok(());
        }
        let Some(card) = self.card.as_mut() else {
            return Ok(());
        };
        match card.status2_owned() {
            Ok(_) => Ok(()),
            Err(pcsc::Error::ResetCard) => {
                reconnect(card);
                self.atr = card_atr(card);
                Err(TransportError::CardReset)
            }
            Err(e) => {
                let error = map_error(e);
                if error == TransportError::NoService {
                    self.lost = true;
                }
                Err(error)
            }
        }
    }
}

impl Drop for PcscTransport {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            if let Err((_card, e)) = card.disconnect(Disposition::LeaveCard) {
                log::debug!("SCardDisconnect: {e}");
            }
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
        let mut buffer = [0u8; RECEIVE_BUFFER];
        *self.apdus += 1;
        match self.transaction.transmit(command, &mut buffer) {
            Ok(response) => Ok(response.to_vec()),
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
