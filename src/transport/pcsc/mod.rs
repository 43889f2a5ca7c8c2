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
//!   call returns, and the late answer is thrown away.
//! - **Without threads.** When the application forbids threads
//!   (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`, see [`PcscReaders::without_threads`]), each
//!   connection's card is held by a helper process instead ([`cardlink`]), bounded by the same
//!   timeouts through its socket; a helper that does not answer in time is killed. Without a
//!   usable helper, calls run on the caller's thread and the only bound is the reader driver's.
//!
//! Files: [`readers`] (the reader list and waiting for reader events), [`connection`] (one
//! connection to a card, its resets and the inline path), [`worker`] (the worker thread that
//! bounds waits), [`cardlink`] (the helper process and its protocol). Every path sends an APDU
//! through the one [`connection::transmit`] (the helper runs the inline path).

pub mod cardlink;
mod connection;
mod readers;
mod worker;

use std::time::Duration;

use pcsc::{Context, Scope};

use super::TransportError;

pub use connection::PcscTransport;
pub use readers::PcscReaders;

/// Receive buffer of a short APDU: 256 data bytes + SW, with room to spare (pcsc-lite's
/// MAX_BUFFER_SIZE).
const RECEIVE_BUFFER: usize = pcsc::MAX_BUFFER_SIZE;

/// A zeroed receive buffer for `command`: short APDUs keep the short buffer (what every reader
/// driver handles), an extended-length command (byte 4 = 00 followed by more bytes: the card
/// layer's extended READ BINARY) gets pcsc-lite's extended maximum.
pub(super) fn receive_buffer(command: &[u8]) -> zeroize::Zeroizing<Vec<u8>> {
    let extended = command.len() > 5 && command[4] == 0;
    let size = if extended {
        pcsc::MAX_BUFFER_SIZE_EXTENDED
    } else {
        RECEIVE_BUFFER
    };
    zeroize::Zeroizing::new(vec![0u8; size])
}

/// Longest wait for the card's answer to one APDU. A JPKI RSA-2048 signature takes about a
/// second on a real card (docs/card-protocol.md: the contact ATR's BWT is ≈1.6 s); 10 s leaves room
/// for slow contactless readers and time-extension requests, and still ends a hang.
pub const APDU_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the PC/SC transaction (exclusive access), which another process may hold
/// for a few operations of its own.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn map_error(e: pcsc::Error) -> TransportError {
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

pub(super) fn establish() -> Result<Context, TransportError> {
    Context::establish(Scope::User).map_err(map_error)
}
