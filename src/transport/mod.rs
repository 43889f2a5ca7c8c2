//! Transport: moves APDUs to a card and back.
//!
//! Two implementations: [`pcsc`] (pcscd, the product) and `in_process` (a closure standing
//! in for a card, used by unit tests together with the virtual card library). The in-process
//! one is test support, not product API: it is compiled only for this crate's tests and with
//! the `test-support` feature (which the fuzz crate turns on).

#[cfg(any(test, feature = "test-support"))]
pub mod in_process;
pub mod pcsc;

use std::fmt;

/// Why an exchange with the card failed below the APDU level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The card was removed (or the reader is gone).
    CardRemoved,
    /// The card was reset by someone else (another process): the card's security state is lost.
    /// The transport has already reconnected when it reports this.
    CardReset,
    /// No reader of that name.
    NoReader,
    /// pcscd is not running or not reachable.
    NoService,
    /// The card did not answer in time.
    Timeout,
    /// The finalising thread asked the waiter to stop.
    Cancelled,
    /// Any other PC/SC failure, with its description.
    Other(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::CardRemoved => f.write_str("card removed"),
            TransportError::CardReset => f.write_str("card reset by another process"),
            TransportError::NoReader => f.write_str("no such reader"),
            TransportError::NoService => f.write_str("PC/SC service not available"),
            TransportError::Timeout => f.write_str("timed out"),
            TransportError::Cancelled => f.write_str("cancelled"),
            TransportError::Other(s) => write!(f, "PC/SC error: {s}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// One connection to one card.
pub trait Transport: Send {
    /// The card's answer to reset.
    fn atr(&self) -> Vec<u8>;

    /// Starts exclusive access to the card for a sequence of APDUs (a PC/SC transaction),
    /// ended when the returned channel is dropped. Other processes cannot interleave their
    /// APDUs with ours while it is held.
    fn begin(&mut self) -> Result<Box<dyn Channel + '_>, TransportError>;

    /// APDUs sent over this connection so far (for benchmarks and tests).
    fn apdus_sent(&self) -> u64;

    /// Whether the card is still there and was not reset by someone else, asked of the
    /// reader layer without sending an APDU (PC/SC: `SCardStatus` on this connection).
    /// `Err(CardReset)` is reported once, after reconnecting, as by [`Transport::begin`].
    /// Lets answers served from memory notice a removal. The default knows nothing.
    fn status(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// Exclusive access to a card: send command APDUs, receive response APDUs (data ‖ SW1 SW2).
pub trait Channel {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
}

/// What the transport knows of one reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderState {
    pub name: String,
    pub card_present: bool,
    /// The ATR of the card in the reader, empty if none.
    pub atr: Vec<u8>,
    /// Changes whenever a card is inserted or removed (PC/SC event counter, or a simulated one).
    pub event_count: u32,
}

/// Whether the reader set `now` differs from `known` in what [`Readers::wait_for_change`]
/// reports: reader names and order, card presence, event counters (not the ATR or PC/SC flags
/// such as "in use by another client").
pub(crate) fn readers_differ(now: &[ReaderState], known: &[ReaderState]) -> bool {
    now.len() != known.len()
        || now.iter().zip(known).any(|(a, b)| {
            a.name != b.name || a.card_present != b.card_present || a.event_count != b.event_count
        })
}

/// The set of readers: PC/SC, or simulated readers for unit tests.
pub trait Readers: Send + Sync {
    /// Every reader now attached, in a stable order.
    fn list(&self) -> Result<Vec<ReaderState>, TransportError>;

    /// Opens a shared connection to the card in `reader`.
    fn connect(&self, reader: &str) -> Result<Box<dyn Transport>, TransportError>;

    /// Blocks until a reader appears or disappears, or a card is inserted or removed, compared
    /// with `known`; or until `timeout` passes (`Ok(false)`); or until [`Readers::cancel`] is
    /// called from another thread (`Err(Cancelled)`). Returns `Ok(true)` on a change.
    fn wait_for_change(
        &self,
        known: &[ReaderState],
        timeout: Option<std::time::Duration>,
    ) -> Result<bool, TransportError>;

    /// Wakes every thread blocked in [`Readers::wait_for_change`] (used by `C_Finalize`).
    fn cancel(&self);
}
