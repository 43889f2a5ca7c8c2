//! The module's global state: readers and their slots, sessions, and the operations on them.
//!
//! Slot mapping: the reader seen first gets index 0, the next 1, …; a reader keeps its index
//! for the module's lifetime. Reader n gives slot 2n (authentication token) and 2n+1
//! (signature token). Nothing here starts a thread: PC/SC state is polled on calls (the PC/SC
//! transport runs one worker thread per card connection, to bound waits for the card).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cryptoki_sys::*;
use parking_lot::{Mutex, RwLock};

use super::error::{Error, Result};
use super::mechanism::{self, Hasher, MechanismParam, SignScheme, PSS_MECHANISMS};
use super::object::{Object, ObjectHandle};
use super::session::{KeyOperation, Operations, Session, SessionHandle};
use super::token::{Card, LoginKind, TokenInfo, KINDS};
use super::usage;
use crate::card::{JpkiCard, KeyKind};
use crate::transport::{ReaderState, Readers, TransportError};

/// Session handles are never reused within a process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

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
struct SlotTable {
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
        for k in 0..2 {
            let id = slot_id(n, k);
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
    Ok((n, KINDS[(slot % 2) as usize]))
}

/// The module, between `C_Initialize` and `C_Finalize`.
pub struct Module {
    readers: Box<dyn Readers>,
    pid: u32,
    finalized: AtomicBool,
    slots: Mutex<SlotTable>,
    sessions: Mutex<HashMap<SessionHandle, Arc<Session>>>,
}

impl Module {
    /// No card or PC/SC traffic here (browsers load the module at start).
    pub fn new(readers: Box<dyn Readers>) -> Module {
        Module {
            readers,
            pid: std::process::id(),
            finalized: AtomicBool::new(false),
            slots: Mutex::new(SlotTable::default()),
            sessions: Mutex::new(HashMap::new()),
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
    }

    fn is_finalized(&self) -> bool {
        self.finalized.load(Ordering::Acquire)
    }

    // ----- slots -----------------------------------------------------------------------------

    /// Polls the readers and updates slots and cards. Cards are probed without holding the
    /// slot table's lock.
    pub fn refresh(&self) {
        let states = match self.readers.list() {
            Ok(s) => s,
            Err(TransportError::NoService) | Err(TransportError::NoReader) => Vec::new(),
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
        let transport = self.readers.connect(reader).map_err(|e| {
            log::info!("connecting to {reader:?} failed: {e}");
        })?;
        let mut jpki = JpkiCard::new(transport);
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
            out.push(slot_id(n, 0));
            out.push(slot_id(n, 1));
        }
        out
    }

    fn reader_of(&self, slot: CK_SLOT_ID) -> Result<(usize, KeyKind)> {
        let (n, kind) = split_slot(slot)?;
        let t = self.slots.lock();
        match t.readers.get(n) {
            Some(r) if r.attached => Ok((n, kind)),
            _ => Err(Error::SlotIdInvalid),
        }
    }

    fn card_of(&self, slot: CK_SLOT_ID) -> Result<(Arc<Card>, KeyKind)> {
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
    fn card_of_refreshed(&self, slot: CK_SLOT_ID) -> Result<(Arc<Card>, KeyKind)> {
        if let Ok(found) = self.card_of(slot) {
            return Ok(found);
        }
        self.refresh();
        self.card_of(slot)
    }

    fn reader_of_refreshed(&self, slot: CK_SLOT_ID) -> Result<(usize, KeyKind)> {
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
                Err(TransportError::Cancelled) => return Err(Error::NotInitialized),
                Err(e) => {
                    log::debug!("waiting for reader events: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    // ----- sessions --------------------------------------------------------------------------

    /// `C_OpenSession`.
    pub fn open_session(&self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<SessionHandle> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Error::SessionParallelNotSupported);
        }
        self.refresh();
        let (card, kind) = self.card_of(slot)?;
        let handle = NEXT_SESSION.fetch_add(1, Ordering::Relaxed) as SessionHandle;
        let session = Session {
            slot_id: slot,
            card,
            kind,
            // RW sessions are accepted (OpenSSH, Java open them); writes fail per operation.
            rw: flags & CKF_RW_SESSION != 0,
            ops: Mutex::new(Operations::default()),
        };
        self.sessions.lock().insert(handle, Arc::new(session));
        Ok(handle)
    }

    /// The session, or `SessionHandleInvalid` (also once its card is gone).
    pub fn session(&self, h: SessionHandle) -> Result<Arc<Session>> {
        let mut sessions = self.sessions.lock();
        let s = sessions.get(&h).ok_or(Error::SessionHandleInvalid)?.clone();
        if s.card.is_removed() {
            sessions.remove(&h);
            return Err(Error::SessionHandleInvalid);
        }
        Ok(s)
    }

    /// The session of a call answered from memory: also asks the reader layer (no APDU)
    /// whether the card is still there or was reset (see [`Card::check_live`]). The first call
    /// after a removal answers `DeviceRemoved`, later ones `SessionHandleInvalid`.
    fn live_session(&self, h: SessionHandle) -> Result<Arc<Session>> {
        let s = self.session(h)?;
        s.card.check_live()?;
        Ok(s)
    }

    /// Logs the token out when its last session is gone (PKCS#11 §5.6).
    fn logout_if_last(&self, card: &Arc<Card>, kind: KeyKind) {
        let others = self
            .sessions
            .lock()
            .values()
            .any(|s| Arc::ptr_eq(&s.card, card) && s.kind == kind);
        if !others && !card.is_removed() {
            let _ = card.logout(kind, true);
        }
    }

    /// `C_CloseSession`.
    pub fn close_session(&self, h: SessionHandle) -> Result<()> {
        let s = self
            .sessions
            .lock()
            .remove(&h)
            .ok_or(Error::SessionHandleInvalid)?;
        if s.card.is_removed() {
            // Already gone with its card, as every other call on it says.
            return Err(Error::SessionHandleInvalid);
        }
        self.logout_if_last(&s.card, s.kind);
        Ok(())
    }

    /// `C_CloseAllSessions`.
    pub fn close_all_sessions(&self, slot: CK_SLOT_ID) -> Result<()> {
        self.reader_of_refreshed(slot)?;
        let closed: Vec<Arc<Session>> = {
            let mut sessions = self.sessions.lock();
            let handles: Vec<SessionHandle> = sessions
                .iter()
                .filter(|(_, s)| s.slot_id == slot)
                .map(|(h, _)| *h)
                .collect();
            handles.iter().filter_map(|h| sessions.remove(h)).collect()
        };
        // Sessions of an earlier card in this slot may be among them: each card once.
        let mut cards: Vec<&Arc<Session>> = Vec::new();
        for s in &closed {
            if !cards.iter().any(|c| Arc::ptr_eq(&c.card, &s.card)) {
                cards.push(s);
            }
        }
        for s in cards {
            self.logout_if_last(&s.card, s.kind);
        }
        Ok(())
    }

    /// `C_GetSessionInfo`: (slot, state, flags).
    pub fn session_info(&self, h: SessionHandle) -> Result<(CK_SLOT_ID, CK_STATE, CK_FLAGS)> {
        let s = self.live_session(h)?;
        Ok((s.slot_id, s.state(), s.flags()))
    }

    /// `C_Login`.
    pub fn login(&self, h: SessionHandle, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let how = match user {
            CKU_USER => LoginKind::User,
            CKU_CONTEXT_SPECIFIC => {
                if s.ops.lock().sign.is_none() {
                    return Err(Error::OperationNotInitialized);
                }
                LoginKind::ContextSpecific
            }
            // The card has no security officer PIN. Refused without card traffic.
            _ => return Err(Error::UserTypeInvalid),
        };
        let result = s.card.login(s.kind, how, pin);
        usage::pin_verified(&s.card, s.kind, &result);
        result
    }

    /// `C_Logout`.
    pub fn logout(&self, h: SessionHandle) -> Result<()> {
        let s = self.session(h)?;
        s.card.logout(s.kind, false)
    }

    /// `C_SetPIN`: needs a read/write session.
    pub fn set_pin(&self, h: SessionHandle, old: &[u8], new: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        if !s.rw {
            return Err(Error::Other(CKR_SESSION_READ_ONLY));
        }
        let result = s.card.change_pin(s.kind, old, new);
        usage::pin_changed(&s.card, s.kind, &result);
        result
    }

    /// `C_SessionCancel`: ends the operations named by `flags` (`CKF_SIGN`, `CKF_VERIFY`,
    /// `CKF_DIGEST`, `CKF_FIND_OBJECTS`).
    pub fn cancel_operations(&self, h: SessionHandle, flags: CK_FLAGS) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        if flags & CKF_SIGN != 0 {
            ops.sign = None;
        }
        if flags & CKF_VERIFY != 0 {
            ops.verify = None;
        }
        if flags & CKF_DIGEST != 0 {
            ops.digest = None;
        }
        if flags & CKF_FIND_OBJECTS != 0 {
            ops.find = None;
        }
        Ok(())
    }

    /// Checks the session of an operation that would write to the token.
    pub fn refuse_write(&self, h: SessionHandle) -> Result<()> {
        self.session(h)?;
        Err(Error::TokenWriteProtected)
    }

    // ----- objects ---------------------------------------------------------------------------

    /// `C_FindObjectsInit`.
    pub fn find_init(
        &self,
        h: SessionHandle,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<()> {
        let s = self.live_session(h)?;
        let mut ops = s.ops.lock();
        if ops.find.is_some() {
            return Err(Error::OperationActive);
        }
        let found = s.card.find(s.kind, template)?;
        ops.find = Some(found.into());
        Ok(())
    }

    /// `C_FindObjects`.
    pub fn find_next(&self, h: SessionHandle, max: usize) -> Result<Vec<ObjectHandle>> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let found = ops.find.as_mut().ok_or(Error::OperationNotInitialized)?;
        let n = max.min(found.len());
        Ok(found.drain(..n).collect())
    }

    /// `C_FindObjectsFinal`.
    pub fn find_final(&self, h: SessionHandle) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        ops.find.take().ok_or(Error::OperationNotInitialized)?;
        Ok(())
    }

    /// A visible object (`C_GetAttributeValue`, `C_GetObjectSize`).
    pub fn object(&self, h: SessionHandle, o: ObjectHandle) -> Result<Arc<Object>> {
        let s = self.live_session(h)?;
        s.card.object(s.kind, o)
    }

    // ----- sign and verify -------------------------------------------------------------------

    fn key_operation(
        s: &Session,
        mech: CK_MECHANISM_TYPE,
        param: MechanismParam,
        key: ObjectHandle,
        class: CK_OBJECT_CLASS,
    ) -> Result<KeyOperation> {
        let scheme = if PSS_MECHANISMS.contains(&mech) {
            // Only on a card with its own PSS (never advertised elsewhere).
            if !s.card.pss_support() {
                return Err(Error::MechanismInvalid);
            }
            SignScheme::new_pss(mech, param)?
        } else {
            SignScheme::new(mech)?
        };
        let obj = match s.card.object_with_visibility(s.kind, key) {
            Ok(Some(o)) => o,
            Ok(None) => return Err(Error::UserNotLoggedIn),
            Err(_) => return Err(Error::KeyHandleInvalid),
        };
        let Some((kind, public)) = obj.key.clone() else {
            return Err(Error::KeyHandleInvalid);
        };
        if obj.class != class {
            return Err(Error::KeyTypeInconsistent);
        }
        use rsa::traits::PublicKeyParts;
        Ok(KeyOperation {
            kind,
            key_len: public.size(),
            public,
            scheme,
            multi_part: false,
            mechanism: mech,
            data_sha256: Default::default(),
        })
    }

    /// `C_SignInit` with a mechanism without parameter.
    pub fn sign_init(
        &self,
        h: SessionHandle,
        mech: CK_MECHANISM_TYPE,
        key: ObjectHandle,
    ) -> Result<()> {
        self.sign_init_with(h, mech, MechanismParam::None, key)
    }

    /// `C_SignInit`.
    pub fn sign_init_with(
        &self,
        h: SessionHandle,
        mech: CK_MECHANISM_TYPE,
        param: MechanismParam,
        key: ObjectHandle,
    ) -> Result<()> {
        let s = self.live_session(h)?;
        let mut ops = s.ops.lock();
        if ops.sign.is_some() {
            return Err(Error::OperationActive);
        }
        ops.sign = Some(Self::key_operation(&s, mech, param, key, CKO_PRIVATE_KEY)?);
        Ok(())
    }

    /// Signature length of the active sign operation (for the two-call convention).
    pub fn sign_len(&self, h: SessionHandle) -> Result<usize> {
        let s = self.session(h)?;
        let ops = s.ops.lock();
        ops.sign
            .as_ref()
            .map(|op| op.key_len)
            .ok_or(Error::OperationNotInitialized)
    }

    /// `C_Sign` (ends the operation).
    pub fn sign(&self, h: SessionHandle, data: &[u8]) -> Result<Vec<u8>> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let mut op = ops.sign.take().ok_or(Error::OperationNotInitialized)?;
        op.scheme.update(data, op.key_len)?;
        sha2::Digest::update(&mut op.data_sha256, data);
        Self::sign_on_card(&s, op)
    }

    /// The card signature ending a sign operation, recorded in the usage history.
    fn sign_on_card(s: &Session, op: KeyOperation) -> Result<Vec<u8>> {
        let result = s.card.sign(op.kind, &op.public, &op.scheme.finish()?);
        usage::signed(&s.card, op.kind, op.mechanism, op.data_sha256, &result);
        result
    }

    /// `C_SignUpdate`.
    pub fn sign_update(&self, h: SessionHandle, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let op = ops.sign.as_mut().ok_or(Error::OperationNotInitialized)?;
        op.multi_part = true;
        let key_len = op.key_len;
        if let Err(e) = op.scheme.update(data, key_len) {
            ops.sign = None;
            return Err(e);
        }
        sha2::Digest::update(&mut op.data_sha256, data);
        Ok(())
    }

    /// `C_SignFinal` (ends the operation).
    pub fn sign_final(&self, h: SessionHandle) -> Result<Vec<u8>> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let op = ops.sign.take().ok_or(Error::OperationNotInitialized)?;
        Self::sign_on_card(&s, op)
    }

    /// `C_VerifyInit` with a mechanism without parameter.
    pub fn verify_init(
        &self,
        h: SessionHandle,
        mech: CK_MECHANISM_TYPE,
        key: ObjectHandle,
    ) -> Result<()> {
        self.verify_init_with(h, mech, MechanismParam::None, key)
    }

    /// `C_VerifyInit`: with the public key object, in software.
    pub fn verify_init_with(
        &self,
        h: SessionHandle,
        mech: CK_MECHANISM_TYPE,
        param: MechanismParam,
        key: ObjectHandle,
    ) -> Result<()> {
        let s = self.live_session(h)?;
        let mut ops = s.ops.lock();
        if ops.verify.is_some() {
            return Err(Error::OperationActive);
        }
        ops.verify = Some(Self::key_operation(&s, mech, param, key, CKO_PUBLIC_KEY)?);
        Ok(())
    }

    /// `C_Verify` (ends the operation).
    pub fn verify(&self, h: SessionHandle, data: &[u8], signature: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let mut op = ops.verify.take().ok_or(Error::OperationNotInitialized)?;
        op.scheme.update(data, op.key_len)?;
        mechanism::verify_input(&op.public, &op.scheme.finish()?, signature)
    }

    /// `C_VerifyUpdate`.
    pub fn verify_update(&self, h: SessionHandle, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let op = ops.verify.as_mut().ok_or(Error::OperationNotInitialized)?;
        op.multi_part = true;
        let key_len = op.key_len;
        if let Err(e) = op.scheme.update(data, key_len) {
            ops.verify = None;
            return Err(e);
        }
        Ok(())
    }

    /// `C_VerifyFinal` (ends the operation).
    pub fn verify_final(&self, h: SessionHandle, signature: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let op = ops.verify.take().ok_or(Error::OperationNotInitialized)?;
        mechanism::verify_input(&op.public, &op.scheme.finish()?, signature)
    }

    // ----- digest ----------------------------------------------------------------------------

    /// `C_DigestInit`.
    pub fn digest_init(&self, h: SessionHandle, mech: CK_MECHANISM_TYPE) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        if ops.digest.is_some() {
            return Err(Error::OperationActive);
        }
        ops.digest = Some((Hasher::for_digest(mech)?, false));
        Ok(())
    }

    /// Digest length of the active digest operation.
    pub fn digest_len(&self, h: SessionHandle) -> Result<usize> {
        let s = self.session(h)?;
        let ops = s.ops.lock();
        ops.digest
            .as_ref()
            .map(|(d, _)| d.output_len())
            .ok_or(Error::OperationNotInitialized)
    }

    /// `C_Digest` (ends the operation).
    pub fn digest(&self, h: SessionHandle, data: &[u8]) -> Result<Vec<u8>> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let (mut d, _) = ops.digest.take().ok_or(Error::OperationNotInitialized)?;
        d.update(data);
        Ok(d.finish())
    }

    /// `C_DigestUpdate`.
    pub fn digest_update(&self, h: SessionHandle, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let (d, multi) = ops.digest.as_mut().ok_or(Error::OperationNotInitialized)?;
        *multi = true;
        d.update(data);
        Ok(())
    }

    /// `C_DigestFinal` (ends the operation).
    pub fn digest_final(&self, h: SessionHandle) -> Result<Vec<u8>> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let (d, _) = ops.digest.take().ok_or(Error::OperationNotInitialized)?;
        Ok(d.finish())
    }
}

// ----- the one global instance ---------------------------------------------------------------

static MODULE: RwLock<Option<Arc<Module>>> = parking_lot::const_rwlock(None);

/// `C_Initialize`. In a child after `fork`, the parent's state is forgotten, never used: its
/// PC/SC context belongs to the parent.
pub fn initialize(make_readers: impl FnOnce() -> Box<dyn Readers>) -> Result<()> {
    let mut global = MODULE.write();
    if let Some(m) = global.as_ref() {
        if m.pid == std::process::id() {
            return Err(Error::AlreadyInitialized);
        }
        if let Some(inherited) = global.take() {
            std::mem::forget(inherited);
        }
    }
    *global = Some(Arc::new(Module::new(make_readers())));
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
