//! The slot table: readers as they come and go, the JPKI card probed in each, slot and token
//! information, and `C_WaitForSlotEvent`.
//!
//! Slot mapping: the reader seen first gets index 0, the next 1, …; a reader keeps its index
//! for the module's lifetime. Reader n gives slot 2n (authentication token) and 2n+1
//! (signature token).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use cryptoki_sys::*;

use super::Module;
use crate::card::{CardError, JpkiCard, KeyKind, ReaderState};
use crate::pkcs11::config;
use crate::pkcs11::error::{Error, Result};
use crate::pkcs11::mechanism::{self, PSS_MECHANISMS};
use crate::pkcs11::token::{Card, TokenInfo, KINDS};

/// What `C_GetSlotInfo` reports.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    pub description: String,
    pub flags: CK_FLAGS,
}

/// What `C_GetTokenInfo` reports beyond [`TokenInfo`].
#[derive(Debug, Clone)]
pub struct FullTokenInfo {
    pub token: TokenInfo,
    pub sessions: usize,
    pub rw_sessions: usize,
}

struct ReaderSlot {
    name: String,
    attached: bool,
    /// The JPKI card in the reader, connected.
    card: Option<Arc<Card>>,
    /// Event counter of a card found not to be a JPKI card (not probed again).
    foreign_card: Option<u32>,
    state: Option<ReaderState>,
}

#[derive(Default)]
pub(super) struct SlotTable {
    index: HashMap<String, usize>,
    readers: Vec<ReaderSlot>,
    refreshed_once: bool,
    /// Slots with an event not yet reported by `C_WaitForSlotEvent`.
    events: VecDeque<CK_SLOT_ID>,
    /// The reader states of the last refresh.
    known: Vec<ReaderState>,
}

impl SlotTable {
    fn push_event(&mut self, n: usize) {
        for (k, kind) in KINDS.iter().enumerate() {
            let id = slot_id(n, k);
            if !config::shows(*kind) {
                continue;
            }
            if !self.events.contains(&id) {
                self.events.push_back(id);
            }
        }
    }
}

fn slot_id(n: usize, kind_idx: usize) -> CK_SLOT_ID {
    (2 * n + kind_idx) as CK_SLOT_ID
}

fn split_slot(slot: CK_SLOT_ID) -> Result<(usize, KeyKind)> {
    let n = usize::try_from(slot / 2).map_err(|_| Error::SlotIdInvalid)?;
    let kind = KINDS[(slot % 2) as usize];
    // A token hidden by the configuration has no slot at all.
    if !config::shows(kind) {
        return Err(Error::SlotIdInvalid);
    }
    Ok((n, kind))
}

impl Module {
    /// Polls the readers and updates slots and cards. Cards are probed without holding the
    /// slot table's lock.
    pub fn refresh(&self) {
        let states = match self.readers.list() {
            Ok(s) => s,
            Err(CardError::NoService) | Err(CardError::NoReader) => Vec::new(),
            Err(e) => {
                log::warn!("listing readers failed: {e}");
                return;
            }
        };
        let mut probes = Vec::new();
        let initial;
        {
            let mut t = self.slots.lock();
            initial = !t.refreshed_once;
            t.refreshed_once = true;
            for r in t.readers.iter_mut() {
                r.attached = false;
            }
            for st in &states {
                let n = match t.index.get(&st.name) {
                    Some(n) => *n,
                    None => {
                        let n = t.readers.len();
                        t.index.insert(st.name.clone(), n);
                        t.readers.push(ReaderSlot {
                            name: st.name.clone(),
                            attached: false,
                            card: None,
                            foreign_card: None,
                            state: None,
                        });
                        if !initial {
                            t.push_event(n);
                        }
                        n
                    }
                };
                let mut changed = false;
                let r = &mut t.readers[n];
                r.attached = true;
                r.state = Some(st.clone());
                let keep = st.card_present
                    && r.card
                        .as_ref()
                        .is_some_and(|c| c.event_count == st.event_count && !c.is_removed());
                if !keep {
                    if let Some(old) = r.card.take() {
                        old.mark_removed();
                        changed = true;
                    }
                }
                if st.card_present && r.card.is_none() && r.foreign_card != Some(st.event_count) {
                    probes.push((n, st.name.clone(), st.event_count));
                }
                if changed && !initial {
                    t.push_event(n);
                }
            }
            let mut gone = Vec::new();
            for (n, r) in t.readers.iter_mut().enumerate() {
                if !r.attached {
                    if let Some(old) = r.card.take() {
                        old.mark_removed();
                    }
                    if r.state.take().is_some() {
                        gone.push(n);
                    }
                }
            }
            for n in gone {
                t.push_event(n);
            }
            t.known = states;
        }
        for (n, name, event_count) in probes {
            let probed = self.probe(&name);
            let mut t = self.slots.lock();
            let Some(r) = t.readers.get_mut(n) else {
                continue;
            };
            let same = r
                .state
                .as_ref()
                .is_some_and(|s| s.card_present && s.event_count == event_count);
            if !same || r.card.is_some() {
                continue;
            }
            match probed {
                Ok(Some(jpki)) => {
                    r.card = Some(Arc::new(Card::new(name, event_count, jpki)));
                    if !initial {
                        t.push_event(n);
                    }
                }
                Ok(None) => r.foreign_card = Some(event_count),
                Err(()) => {}
            }
        }
    }

    /// Connects to the card in `reader` and checks for the JPKI application (one SELECT).
    fn probe(&self, reader: &str) -> std::result::Result<Option<JpkiCard>, ()> {
        let mut jpki = self.readers.connect(reader).map_err(|e| {
            log::info!("connecting to {reader:?} failed: {e}");
        })?;
        match jpki.is_jpki() {
            Ok(true) => Ok(Some(jpki)),
            Ok(false) => {
                log::info!("card in {reader:?} has no JPKI application");
                Ok(None)
            }
            Err(e) => {
                log::info!("probing the card in {reader:?} failed: {e}");
                Err(())
            }
        }
    }

    /// `C_GetSlotList`.
    pub fn slot_list(&self, token_present: bool) -> Vec<CK_SLOT_ID> {
        self.refresh();
        let t = self.slots.lock();
        let mut out = Vec::new();
        for (n, r) in t.readers.iter().enumerate() {
            if !r.attached || (token_present && r.card.is_none()) {
                continue;
            }
            for (k, kind) in KINDS.iter().enumerate() {
                if config::shows(*kind) {
                    out.push(slot_id(n, k));
                }
            }
        }
        out
    }

    pub(super) fn reader_of(&self, slot: CK_SLOT_ID) -> Result<(usize, KeyKind)> {
        let (n, kind) = split_slot(slot)?;
        let t = self.slots.lock();
        match t.readers.get(n) {
            Some(r) if r.attached => Ok((n, kind)),
            _ => Err(Error::SlotIdInvalid),
        }
    }

    pub(super) fn card_of(&self, slot: CK_SLOT_ID) -> Result<(Arc<Card>, KeyKind)> {
        let (n, kind) = split_slot(slot)?;
        let t = self.slots.lock();
        match t.readers.get(n) {
            Some(r) if r.attached => match &r.card {
                Some(c) if !c.is_removed() => Ok((c.clone(), kind)),
                _ => Err(Error::TokenNotPresent),
            },
            _ => Err(Error::SlotIdInvalid),
        }
    }

    /// `C_GetSlotInfo`.
    pub fn slot_info(&self, slot: CK_SLOT_ID) -> Result<SlotInfo> {
        self.refresh();
        let (n, kind) = split_slot(slot)?;
        let t = self.slots.lock();
        let r = t
            .readers
            .get(n)
            .filter(|r| r.attached)
            .ok_or(Error::SlotIdInvalid)?;
        let mut flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
        if r.card.as_ref().is_some_and(|c| !c.is_removed()) {
            flags |= CKF_TOKEN_PRESENT;
        }
        let what = match kind {
            KeyKind::Authentication => "JPKI Auth",
            KeyKind::Signature => "JPKI Sign",
        };
        Ok(SlotInfo {
            description: format!("{what} ({})", r.name),
            flags,
        })
    }

    /// `C_GetTokenInfo`.
    pub fn token_info(&self, slot: CK_SLOT_ID) -> Result<FullTokenInfo> {
        self.refresh();
        let (card, kind) = self.card_of(slot)?;
        let token = card.token_info(kind).map_err(|e| match e {
            Error::DeviceRemoved => Error::TokenNotPresent,
            other => other,
        })?;
        let sessions = self.sessions.lock();
        let mine = sessions
            .values()
            .filter(|s| Arc::ptr_eq(&s.card, &card) && s.kind == kind);
        let (all, rw) = mine.fold((0, 0), |(a, r), s| (a + 1, r + usize::from(s.rw)));
        Ok(FullTokenInfo {
            token,
            sessions: all,
            rw_sessions: rw,
        })
    }

    /// `C_GetMechanismList`. The mechanisms are the token's: an empty slot has none
    /// (`CKR_TOKEN_NOT_PRESENT`).
    pub fn mechanism_list(&self, slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
        let (card, _) = self.card_of_refreshed(slot)?;
        Ok(mechanism::mechanism_list(card.pss_support()))
    }

    /// `C_GetMechanismInfo`.
    pub fn mechanism_info(
        &self,
        slot: CK_SLOT_ID,
        mech: CK_MECHANISM_TYPE,
    ) -> Result<(CK_ULONG, CK_ULONG, CK_FLAGS)> {
        let (card, _) = self.card_of_refreshed(slot)?;
        let pss = PSS_MECHANISMS.contains(&mech) && card.pss_support();
        mechanism::mechanism_info(mech, pss)
    }

    /// The card of a slot; the readers are polled only when the slot has none yet.
    pub(super) fn card_of_refreshed(&self, slot: CK_SLOT_ID) -> Result<(Arc<Card>, KeyKind)> {
        if let Ok(found) = self.card_of(slot) {
            return Ok(found);
        }
        self.refresh();
        self.card_of(slot)
    }

    pub(super) fn reader_of_refreshed(&self, slot: CK_SLOT_ID) -> Result<(usize, KeyKind)> {
        if self.reader_of(slot).is_err() {
            self.refresh();
        }
        self.reader_of(slot)
    }

    /// `C_WaitForSlotEvent`. Holds no module lock while blocked; [`Module::shut_down`] wakes it.
    pub fn wait_for_slot_event(&self, dont_block: bool) -> Result<CK_SLOT_ID> {
        loop {
            if self.is_finalized() {
                return Err(Error::NotInitialized);
            }
            self.refresh();
            let known = {
                let mut t = self.slots.lock();
                if let Some(slot) = t.events.pop_front() {
                    return Ok(slot);
                }
                t.known.clone()
            };
            if dont_block {
                return Err(Error::NoEvent);
            }
            // A bounded wait, so that a cancel that raced with our start is seen soon.
            match self
                .readers
                .wait_for_change(&known, Some(Duration::from_secs(1)))
            {
                Ok(_) => {}
                Err(CardError::Cancelled) => return Err(Error::NotInitialized),
                Err(e) => {
                    log::debug!("waiting for reader events: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
}
