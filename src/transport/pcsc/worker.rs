//! The worker thread of a connection: it owns the card, so that the caller waits at most
//! [`APDU_TIMEOUT`] for an answer and [`TRANSACTION_TIMEOUT`] for the transaction, however long
//! the card or reader takes.

use std::time::Duration;

use pcsc::{Card, Disposition};

use super::connection::{card_atr, disconnect, reconnect, transmit};
use super::{map_error, APDU_TIMEOUT, TRANSACTION_TIMEOUT};
use crate::transport::{Channel, TransportError};

/// How long dropping a connection waits for its worker to disconnect (it is left to finish on
/// its own if the card is stuck).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

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
pub(super) struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
    done: std::sync::mpsc::Receiver<Done>,
    /// Closed (sender dropped) when the thread ends.
    exited: std::sync::mpsc::Receiver<()>,
    /// Jobs sent whose answer has not been received (a timed-out call leaves one behind).
    pending: usize,
}

impl Worker {
    pub(super) fn spawn(card: Card) -> Result<Worker, TransportError> {
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
    pub(super) fn begin(&mut self) -> Result<(), (TransportError, Option<Vec<u8>>)> {
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
    pub(super) fn status(&mut self) -> Result<(), (TransportError, Option<Vec<u8>>)> {
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
    pub(super) fn close(self) {
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
            Job::Transmit(command) => Done::Transmitted(transmit(&mut transaction, &command)),
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
pub(super) struct WorkerChannel<'a> {
    pub(super) worker: &'a mut Worker,
    pub(super) apdus: &'a mut u64,
    pub(super) lost: &'a mut bool,
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
