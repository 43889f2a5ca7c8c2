//! In-process transport for unit tests: a closure stands in for the card.
//!
//! The product does not depend on the virtual card crate: tests wrap it (or a scripted list of
//! answers) in closures. One [`SimulatedCard`] can be shared by several connections
//! ([`SimulatedCard::connect`]); a transaction holds the card's lock, so APDUs of two
//! connections never interleave inside a transaction, as with PC/SC.
//!
//! [`InProcessReaders`] simulates readers for the core's tests: readers can be added and
//! removed, cards inserted, removed and reset, and [`Readers::wait_for_change`] wakes on each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::{readers_differ as differs, Channel, ReaderState, Readers, Transport, TransportError};

type CardFn = Box<dyn FnMut(&[u8]) -> Vec<u8> + Send>;
type ResetFn = Box<dyn FnMut() -> Vec<u8> + Send>;

struct CardSlot {
    atr: Vec<u8>,
    card: CardFn,
    reset: Option<ResetFn>,
    /// Bumped by every reset: a connection that saw an older value reports `CardReset` once.
    generation: u64,
    removed: bool,
    /// Errors to return instead of the next transmits (fault injection).
    injected: Vec<TransportError>,
    apdus: u64,
}

/// A simulated card: a closure mapping command APDUs to response APDUs (data ‖ SW1 SW2).
///
/// Cloning gives another handle to the same card (for resets and removal from a test).
#[derive(Clone)]
pub struct SimulatedCard {
    slot: Arc<Mutex<CardSlot>>,
}

impl SimulatedCard {
    /// A card with this ATR, answering with `card`.
    pub fn new(atr: Vec<u8>, card: impl FnMut(&[u8]) -> Vec<u8> + Send + 'static) -> Self {
        SimulatedCard {
            slot: Arc::new(Mutex::new(CardSlot {
                atr,
                card: Box::new(card),
                reset: None,
                generation: 0,
                removed: false,
                injected: Vec::new(),
                apdus: 0,
            })),
        }
    }

    /// Adds a hook run by [`SimulatedCard::reset`]; it returns the new ATR.
    pub fn with_reset_hook(self, reset: impl FnMut() -> Vec<u8> + Send + 'static) -> Self {
        self.slot.lock().reset = Some(Box::new(reset));
        self
    }

    /// A new connection to this card (what `SCardConnect` gives).
    pub fn connect(&self) -> InProcessTransport {
        let generation = self.slot.lock().generation;
        InProcessTransport {
            card: self.clone(),
            generation,
            apdus: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Resets the card as another process would: runs the reset hook, and every connection
    /// reports [`TransportError::CardReset`] once (after which it is usable again).
    pub fn reset(&self) {
        let mut slot = self.slot.lock();
        if let Some(hook) = slot.reset.as_mut() {
            let atr = hook();
            slot.atr = atr;
        }
        slot.generation += 1;
    }

    /// Takes the card away: every connection reports [`TransportError::CardRemoved`].
    pub fn remove(&self) {
        self.slot.lock().removed = true;
    }

    /// Makes the next transmit (of any connection) fail with `error` instead of reaching the
    /// card. Several calls queue several errors.
    pub fn inject_error(&self, error: TransportError) {
        self.slot.lock().injected.push(error);
    }

    /// APDUs the card received, over all connections.
    pub fn apdus_received(&self) -> u64 {
        self.slot.lock().apdus
    }

    fn atr(&self) -> Vec<u8> {
        self.slot.lock().atr.clone()
    }

    fn is_removed(&self) -> bool {
        self.slot.lock().removed
    }
}

/// One connection to a [`SimulatedCard`].
pub struct InProcessTransport {
    card: SimulatedCard,
    /// The card's reset generation this connection has seen.
    generation: u64,
    apdus: Arc<AtomicU64>,
}

impl InProcessTransport {
    /// A connection to a new card built from a closure: `card` maps a command APDU to the
    /// response APDU (data ‖ SW1 SW2).
    pub fn new(atr: Vec<u8>, card: impl FnMut(&[u8]) -> Vec<u8> + Send + 'static) -> Self {
        SimulatedCard::new(atr, card).connect()
    }

    /// Adds a reset hook to the card (see [`SimulatedCard::with_reset_hook`]).
    pub fn with_reset_hook(self, reset: impl FnMut() -> Vec<u8> + Send + 'static) -> Self {
        self.card.slot.lock().reset = Some(Box::new(reset));
        self
    }

    /// A handle to the card behind this connection (to reset or remove it from a test).
    pub fn card(&self) -> SimulatedCard {
        self.card.clone()
    }

    /// A counter shared with this transport, readable after the transport was moved into a
    /// `Box<dyn Transport>`.
    pub fn apdu_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.apdus)
    }
}

impl Transport for InProcessTransport {
    fn atr(&self) -> Vec<u8> {
        self.card.atr()
    }

    fn begin(&mut self) -> Result<Box<dyn Channel + '_>, TransportError> {
        let slot = self.card.slot.lock();
        if slot.removed {
            return Err(TransportError::CardRemoved);
        }
        if slot.generation != self.generation {
            // Like SCardBeginTransaction answering SCARD_W_RESET_CARD; we "reconnect".
            self.generation = slot.generation;
            return Err(TransportError::CardReset);
        }
        Ok(Box::new(InProcessChannel {
            slot,
            generation: &mut self.generation,
            apdus: &self.apdus,
        }))
    }

    fn apdus_sent(&self) -> u64 {
        self.apdus.load(Ordering::Relaxed)
    }

    fn status(&mut self) -> Result<(), TransportError> {
        let slot = self.card.slot.lock();
        if slot.removed {
            return Err(TransportError::CardRemoved);
        }
        if slot.generation != self.generation {
            self.generation = slot.generation;
            return Err(TransportError::CardReset);
        }
        Ok(())
    }
}

struct InProcessChannel<'a> {
    slot: MutexGuard<'a, CardSlot>,
    generation: &'a mut u64,
    apdus: &'a AtomicU64,
}

impl Channel for InProcessChannel<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.slot.removed {
            return Err(TransportError::CardRemoved);
        }
        if self.slot.generation != *self.generation {
            *self.generation = self.slot.generation;
            return Err(TransportError::CardReset);
        }
        if !self.slot.injected.is_empty() {
            let error = self.slot.injected.remove(0);
            if error == TransportError::CardReset {
                // The card really was reset: run the hook, as SimulatedCard::reset does.
                if let Some(hook) = self.slot.reset.as_mut() {
                    let atr = hook();
                    self.slot.atr = atr;
                }
                self.slot.generation += 1;
                *self.generation = self.slot.generation;
            }
            return Err(error);
        }
        self.apdus.fetch_add(1, Ordering::Relaxed);
        self.slot.apdus += 1;
        Ok((self.slot.card)(command))
    }
}

struct SimReader {
    name: String,
    card: Option<SimulatedCard>,
    event_count: u32,
}

struct ReadersInner {
    readers: Vec<SimReader>,
    cancel_generation: u64,
}

/// Simulated readers (for unit tests of the core). Cloning shares the same readers.
#[derive(Clone)]
pub struct InProcessReaders {
    inner: Arc<(Mutex<ReadersInner>, Condvar)>,
}

impl Default for InProcessReaders {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessReaders {
    /// No readers yet.
    pub fn new() -> Self {
        InProcessReaders {
            inner: Arc::new((
                Mutex::new(ReadersInner {
                    readers: Vec::new(),
                    cancel_generation: 0,
                }),
                Condvar::new(),
            )),
        }
    }

    fn change(&self, f: impl FnOnce(&mut ReadersInner)) {
        let (lock, condvar) = &*self.inner;
        f(&mut lock.lock());
        condvar.notify_all();
    }

    /// Attaches an empty reader (no-op if one of that name exists).
    pub fn add_reader(&self, name: &str) {
        self.change(|inner| {
            if !inner.readers.iter().any(|r| r.name == name) {
                inner.readers.push(SimReader {
                    name: name.to_owned(),
                    card: None,
                    event_count: 0,
                });
            }
        });
    }

    /// Detaches a reader; its card, if any, is removed.
    pub fn remove_reader(&self, name: &str) {
        self.change(|inner| {
            inner.readers.retain(|r| {
                if r.name == name {
                    if let Some(card) = &r.card {
                        card.remove();
                    }
                    false
                } else {
                    true
                }
            });
        });
    }

    /// Inserts `card` into `reader` (adding the reader if needed); a card already there is
    /// removed first.
    pub fn insert_card(&self, reader: &str, card: SimulatedCard) {
        self.add_reader(reader);
        self.change(|inner| {
            if let Some(r) = inner.readers.iter_mut().find(|r| r.name == reader) {
                if let Some(old) = r.card.take() {
                    old.remove();
                }
                r.card = Some(card);
                r.event_count = r.event_count.wrapping_add(1);
            }
        });
    }

    /// Removes the card of `reader`; its connections report `CardRemoved`.
    pub fn remove_card(&self, reader: &str) {
        self.change(|inner| {
            if let Some(r) = inner.readers.iter_mut().find(|r| r.name == reader) {
                if let Some(card) = r.card.take() {
                    card.remove();
                    r.event_count = r.event_count.wrapping_add(1);
                }
            }
        });
    }

    /// The card in `reader`, if any (to reset it, inject errors, count APDUs).
    pub fn card(&self, reader: &str) -> Option<SimulatedCard> {
        let inner = self.inner.0.lock();
        inner
            .readers
            .iter()
            .find(|r| r.name == reader)
            .and_then(|r| r.card.clone())
    }

    fn snapshot(inner: &ReadersInner) -> Vec<ReaderState> {
        inner
            .readers
            .iter()
            .map(|r| ReaderState {
                name: r.name.clone(),
                card_present: r.card.as_ref().is_some_and(|c| !c.is_removed()),
                atr: r.card.as_ref().map(|c| c.atr()).unwrap_or_default(),
                event_count: r.event_count,
            })
            .collect()
    }
}

impl Readers for InProcessReaders {
    fn list(&self) -> Result<Vec<ReaderState>, TransportError> {
        Ok(Self::snapshot(&self.inner.0.lock()))
    }

    fn connect(&self, reader: &str) -> Result<Box<dyn Transport>, TransportError> {
        let inner = self.inner.0.lock();
        let r = inner
            .readers
            .iter()
            .find(|r| r.name == reader)
            .ok_or(TransportError::NoReader)?;
        match &r.card {
            Some(card) if !card.is_removed() => Ok(Box::new(card.connect())),
            _ => Err(TransportError::CardRemoved),
        }
    }

    fn wait_for_change(
        &self,
        known: &[ReaderState],
        timeout: Option<Duration>,
    ) -> Result<bool, TransportError> {
        let (lock, condvar) = &*self.inner;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut inner = lock.lock();
        let cancel_generation = inner.cancel_generation;
        loop {
            if inner.cancel_generation != cancel_generation {
                return Err(TransportError::Cancelled);
            }
            if differs(&Self::snapshot(&inner), known) {
                return Ok(true);
            }
            match deadline {
                None => condvar.wait(&mut inner),
                Some(deadline) => {
                    if Instant::now() >= deadline {
                        return Ok(false);
                    }
                    let _ = condvar.wait_until(&mut inner, deadline);
                }
            }
        }
    }

    fn cancel(&self) {
        self.change(|inner| inner.cancel_generation += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_reset() {
        let mut t = InProcessTransport::new(vec![0x3B], |_| vec![0x90, 0x00]);
        let card = t.card();
        {
            let mut ch = t.begin().unwrap();
            assert_eq!(ch.transmit(&[0, 0xA4, 0, 0]).unwrap(), vec![0x90, 0]);
        }
        assert_eq!(t.apdus_sent(), 1);
        card.reset();
        assert_eq!(t.begin().err(), Some(TransportError::CardReset));
        assert!(t.begin().is_ok());
        card.inject_error(TransportError::Timeout);
        {
            let mut ch = t.begin().unwrap();
            assert_eq!(ch.transmit(&[0]).err(), Some(TransportError::Timeout));
            assert!(ch.transmit(&[0]).is_ok());
        }
        card.remove();
        assert_eq!(t.begin().err(), Some(TransportError::CardRemoved));
        assert_eq!(card.apdus_received(), 2);
    }

    #[test]
    fn readers_events_and_cancel() {
        let readers = InProcessReaders::new();
        assert!(readers.list().unwrap().is_empty());
        readers.add_reader("R0");
        let known = readers.list().unwrap();
        assert_eq!(known.len(), 1);
        assert!(!known[0].card_present);
        assert_eq!(
            readers.wait_for_change(&known, Some(Duration::from_millis(10))),
            Ok(false)
        );
        assert_eq!(
            readers.connect("R0").err(),
            Some(TransportError::CardRemoved)
        );
        assert_eq!(readers.connect("R9").err(), Some(TransportError::NoReader));

        let r2 = readers.clone();
        let waiter = std::thread::spawn(move || r2.wait_for_change(&known, None));
        std::thread::sleep(Duration::from_millis(20));
        readers.insert_card(
            "R0",
            SimulatedCard::new(vec![0x3B, 0x00], |_| vec![0x90, 0]),
        );
        assert_eq!(waiter.join().unwrap(), Ok(true));
        let known = readers.list().unwrap();
        assert!(known[0].card_present);
        assert_eq!(known[0].atr, vec![0x3B, 0x00]);
        let mut t = readers.connect("R0").unwrap();
        assert!(t.begin().is_ok());

        let r2 = readers.clone();
        let k2 = known.clone();
        let waiter = std::thread::spawn(move || r2.wait_for_change(&k2, None));
        std::thread::sleep(Duration::from_millis(20));
        readers.cancel();
        assert_eq!(waiter.join().unwrap(), Err(TransportError::Cancelled));

        readers.remove_card("R0");
        assert_eq!(t.begin().err(), Some(TransportError::CardRemoved));
        assert_eq!(
            readers.wait_for_change(&known, Some(Duration::from_secs(5))),
            Ok(true)
        );
        readers.remove_reader("R0");
        assert!(readers.list().unwrap().is_empty());
    }
}
