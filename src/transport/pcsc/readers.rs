//! The PC/SC reader set: listing readers with their cards, connecting, and waiting for a
//! reader or card event (`SCardGetStatusChange`) in a way that `cancel` always reaches.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pcsc::{Context, State};

use super::cardlink::client::{LinkError, LinkTransport};
use super::connection::PcscTransport;
use super::{establish, map_error};
use crate::transport::{readers_differ, ReaderState, Readers, Transport, TransportError};

/// Longest slice of a blocking wait: bounds how late a `cancel` that raced with the start of
/// `SCardGetStatusChange` is noticed.
const WAIT_SLICE: Duration = Duration::from_millis(1000);
/// How often to try to reach pcscd again while it is down, during a wait.
const SERVICE_RETRY: Duration = Duration::from_millis(250);

/// The PC/SC readers, through pcscd.
pub struct PcscReaders {
    /// Context for `list` and `connect`; `None` until first use or after pcscd went away.
    context: Mutex<Option<Context>>,
    /// Contexts of the threads now blocked in `wait_for_change`, for `cancel`.
    waiters: Mutex<Vec<(u64, Context)>>,
    next_waiter: AtomicU64,
    cancel_generation: AtomicU64,
    /// How connections reach their card (see the module documentation).
    io: CardIo,
    /// The helper could not be started once: the inline path from then on (warned once).
    helper_unusable: AtomicBool,
}

/// How a connection reaches its card.
enum CardIo {
    /// A worker thread per connection, with bounded waits.
    Worker,
    /// A helper process per connection (this program), with bounded waits.
    Helper(PathBuf),
    /// The caller's thread, bounded only by the reader driver.
    Inline,
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
            io: CardIo::Worker,
            helper_unusable: AtomicBool::new(false),
        }
    }

    /// For applications that forbid the library to create threads
    /// (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`): each connection's card is held by the helper
    /// program `helper` (`cardlink::locate`), with the same bounds as the worker thread. With
    /// no helper, or one that cannot be started, card I/O runs on the caller's thread and a
    /// card that never answers is bounded only by the reader driver.
    pub fn without_threads(helper: Option<PathBuf>) -> Self {
        PcscReaders {
            io: helper.map_or(CardIo::Inline, CardIo::Helper),
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
        match &self.io {
            CardIo::Worker => return Ok(Box::new(PcscTransport::connect(name)?)),
            CardIo::Inline => {}
            CardIo::Helper(_) if self.helper_unusable.load(Ordering::Relaxed) => {}
            CardIo::Helper(helper) => match LinkTransport::connect(helper, name.clone()) {
                Ok(link) => return Ok(Box::new(link)),
                Err(LinkError::Transport(e)) => return Err(e),
                Err(LinkError::Unusable(why)) => {
                    if !self.helper_unusable.swap(true, Ordering::Relaxed) {
                        log::warn!(
                            "card link helper unusable ({why}): card I/O runs on the calling \
                             thread, and a card that never answers is not bounded"
                        );
                    }
                }
            },
        }
        Ok(Box::new(PcscTransport::connect_inline(name)?))
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
            if readers_differ(now_readers, known) {
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
