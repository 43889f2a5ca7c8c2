//! One shared connection to a card through pcscd: connecting, transactions, status, resets
//! by another party, pcscd restarts, and the inline path (calls on the caller's thread).
//! [`transmit`] is the one routine that sends an APDU, for the inline path and the worker.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use pcsc::{Card, Disposition, Protocols, ShareMode};

use super::worker::{Worker, WorkerChannel};
use super::{establish, map_error, receive_buffer};
use crate::transport::{Channel, Transport, TransportError};

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
}

pub(super) fn card_atr(card: &Card) -> Vec<u8> {
    card.status2_owned()
        .map(|s| s.atr().to_vec())
        .unwrap_or_default()
}

/// Reconnects after `SCARD_W_RESET_CARD`; the error to report is `CardReset` either way
/// (if the reconnect failed, the next call fails with the real reason).
pub(super) fn reconnect(card: &mut Card) {
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
pub(super) fn disconnect(card: Card) {
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
        *self.apdus += 1;
        match transmit(&mut self.transaction, command) {
            Ok(response) => Ok(response),
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

/// Sends one APDU inside a transaction and returns the card's answer. The receive buffer is
/// zeroed when dropped (an answer may carry personal data); the errors of a card just removed
/// are made plain ([`transmit_result`]); a reset by another party is answered by a reconnect
/// and reported as `ResetCard`. Used by the inline path and by the worker thread alike.
pub(super) fn transmit(
    transaction: &mut pcsc::Transaction<'_>,
    command: &[u8],
) -> Result<Vec<u8>, pcsc::Error> {
    let mut buffer = receive_buffer(command);
    let sent = transaction.transmit(command, &mut buffer[..]);
    match transmit_result(transaction, sent) {
        Err(pcsc::Error::ResetCard) => {
            transaction
                .reconnect(ShareMode::Shared, Protocols::ANY, Disposition::LeaveCard)
                .unwrap_or_else(|e| log::debug!("SCardReconnect: {e}"));
            Err(pcsc::Error::ResetCard)
        }
        other => other,
    }
}
