//! The session table: opening and closing sessions, login, logout, `C_SetPIN`, and ending
//! operations. Session handles are never reused within a process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cryptoki_sys::*;
use parking_lot::Mutex;

use super::Module;
use crate::card::KeyKind;
use crate::pkcs11::error::{Error, Result};
use crate::pkcs11::session::{Operations, Session, SessionHandle};
use crate::pkcs11::token::{Card, LoginKind};
use crate::pkcs11::usage;

/// Session handles are never reused within a process.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

impl Module {
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
            drop(sessions);
            self.objects.lock().session_closed(h);
            return Err(Error::SessionHandleInvalid);
        }
        Ok(s)
    }

    /// The session of a call answered from memory: also asks the reader layer (no APDU)
    /// whether the card is still there or was reset (see [`Card::check_live`]). The first call
    /// after a removal answers `DeviceRemoved`, later ones `SessionHandleInvalid`.
    pub(super) fn live_session(&self, h: SessionHandle) -> Result<Arc<Session>> {
        let s = self.session(h)?;
        s.card.check_live()?;
        Ok(s)
    }

    /// Logs the token out when its last session is gone (PKCS#11 §5.6).
    pub(super) fn logout_if_last(&self, card: &Arc<Card>, kind: KeyKind) {
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
        // Its session objects end with it (docs/conformance.md).
        self.objects.lock().session_closed(h);
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
            let closed = handles.iter().filter_map(|h| sessions.remove(h)).collect();
            drop(sessions);
            let mut objects = self.objects.lock();
            for h in &handles {
                objects.session_closed(*h);
            }
            closed
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
        let result = s.card.logout(s.kind, false);
        // Private session objects end with the login (also the sibling token's, which the
        // card logged out too).
        self.objects.lock().logged_out(&s.card);
        result
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
}
