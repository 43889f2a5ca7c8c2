//! The module's global state between `C_Initialize` and `C_Finalize`, split by job:
//! [`slots`] (readers, cards, slot events), [`sessions`] (the session table, login) and
//! [`operations`] (search, sign, verify, digest on a session). Nothing here starts a thread:
//! PC/SC state is polled on calls (the PC/SC transport runs one worker thread per card
//! connection to bound waits for the card, or a helper process when the host forbids
//! threads).

mod objects;
mod operations;
mod sessions;
mod slots;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::error::{Error, Result};
use super::session::{Session, SessionHandle};
use super::session_objects::SessionObjects;
use super::token::KINDS;
use crate::card::CardReaders;

pub use operations::OperationKind;
use slots::SlotTable;
pub use slots::{FullTokenInfo, SlotInfo};

/// The module, between `C_Initialize` and `C_Finalize`.
pub struct Module {
    readers: CardReaders,
    /// Whether the host lets the module create threads (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`
    /// not set in `C_Initialize`): the one record of it. The PC/SC transport was built for it
    /// (a worker thread or a helper process per card), and the desktop notification asks it.
    threads_allowed: bool,
    pid: u32,
    finalized: AtomicBool,
    slots: Mutex<SlotTable>,
    sessions: Mutex<HashMap<SessionHandle, Arc<Session>>>,
    /// Objects clients created (`CKA_TOKEN` FALSE). Locked after `sessions`, never while a
    /// card is locked.
    objects: Mutex<SessionObjects>,
}

impl Module {
    /// No card or PC/SC traffic here (browsers load the module at start). The host allows
    /// threads.
    pub fn new(readers: impl Into<CardReaders>) -> Module {
        Module::for_host(readers, true)
    }

    /// As [`Module::new`], for a host that allows threads or not.
    pub fn for_host(readers: impl Into<CardReaders>, threads_allowed: bool) -> Module {
        Module {
            readers: readers.into(),
            threads_allowed,
            pid: std::process::id(),
            finalized: AtomicBool::new(false),
            slots: Mutex::new(SlotTable::default()),
            sessions: Mutex::new(HashMap::new()),
            objects: Mutex::new(SessionObjects::default()),
        }
    }

    /// Stops waiters (`C_Finalize`).
    pub fn shut_down(&self) {
        self.finalized.store(true, Ordering::Release);
        self.readers.cancel();
        for card in self.sessions.lock().values().map(|s| s.card.clone()) {
            for kind in KINDS {
                let _ = card.logout(kind, false);
            }
        }
        self.sessions.lock().clear();
        self.objects.lock().clear();
    }

    /// Whether the host lets the module create threads.
    pub fn threads_allowed(&self) -> bool {
        self.threads_allowed
    }

    fn is_finalized(&self) -> bool {
        self.finalized.load(Ordering::Acquire)
    }
}

// ----- the one global instance ---------------------------------------------------------------

static MODULE: RwLock<Option<Arc<Module>>> = parking_lot::const_rwlock(None);

/// `C_Initialize` by a host that allows threads.
pub fn initialize<R: Into<CardReaders>>(make_readers: impl FnOnce() -> R) -> Result<()> {
    initialize_for_host(true, make_readers)
}

/// `C_Initialize`. In a child after `fork`, the parent's state is forgotten, never used: its
/// PC/SC context belongs to the parent, and so do its card-link helpers (the child never
/// writes to, kills or reaps them).
pub fn initialize_for_host<R: Into<CardReaders>>(
    threads_allowed: bool,
    make_readers: impl FnOnce() -> R,
) -> Result<()> {
    let mut global = MODULE.write();
    if let Some(m) = global.as_ref() {
        if m.pid == std::process::id() {
            return Err(Error::AlreadyInitialized);
        }
        if let Some(inherited) = global.take() {
            std::mem::forget(inherited);
        }
    }
    *global = Some(Arc::new(Module::for_host(make_readers(), threads_allowed)));
    Ok(())
}

/// `C_Finalize`. Wakes a blocked `C_WaitForSlotEvent` and never waits for it.
pub fn finalize() -> Result<()> {
    let module = {
        let mut global = MODULE.write();
        match global.as_ref() {
            Some(m) if m.pid == std::process::id() => global.take(),
            Some(_) => {
                // A forked child that never initialised: forget the parent's state.
                if let Some(inherited) = global.take() {
                    std::mem::forget(inherited);
                }
                return Err(Error::NotInitialized);
            }
            None => return Err(Error::NotInitialized),
        }
    };
    if let Some(m) = module {
        m.shut_down();
    }
    // A program that signs and finalizes at once still gets its notification (bounded wait).
    crate::notify::wait_pending();
    Ok(())
}

/// The initialised module of this process.
pub fn get() -> Result<Arc<Module>> {
    match MODULE.read().as_ref() {
        Some(m) if m.pid == std::process::id() && !m.is_finalized() => Ok(m.clone()),
        _ => Err(Error::NotInitialized),
    }
}
