//! Session objects on the module's side: who may see them (the session's token and login
//! state), and the card's own objects, which stay write-protected. The objects, their template
//! rules and caps are in [`crate::pkcs11::session_objects`].

use std::sync::Arc;

use super::Module;
use crate::pkcs11::error::{Error, Result};
use crate::pkcs11::object::{Object, ObjectHandle};
use crate::pkcs11::session::{Session, SessionHandle};
use crate::pkcs11::session_objects::{Caller, Template};

impl Module {
    pub(super) fn caller<'a>(s: &'a Session, h: SessionHandle) -> Caller<'a> {
        Caller {
            session: h,
            card: &s.card,
            kind: s.kind,
            logged_in: s.card.is_logged_in(s.kind),
        }
    }

    /// Whether `o` is one of the card's objects this session sees (those are write-protected).
    fn is_card_object(s: &Session, o: ObjectHandle) -> bool {
        matches!(s.card.object_with_visibility(s.kind, o), Ok(Some(_)))
    }

    /// `C_CreateObject`: session objects only; token objects are write-protected.
    pub fn create_object(&self, h: SessionHandle, template: &Template) -> Result<ObjectHandle> {
        let s = self.live_session(h)?;
        let who = Self::caller(&s, h);
        self.objects.lock().create(&who, template)
    }

    /// `C_CopyObject`.
    pub fn copy_object(
        &self,
        h: SessionHandle,
        o: ObjectHandle,
        template: &Template,
    ) -> Result<ObjectHandle> {
        let s = self.live_session(h)?;
        if Self::is_card_object(&s, o) {
            return Err(Error::TokenWriteProtected);
        }
        let who = Self::caller(&s, h);
        let copied = self.objects.lock().copy(&who, o, template);
        copied.unwrap_or(Err(Error::ObjectHandleInvalid))
    }

    /// `C_SetAttributeValue`.
    pub fn set_attributes(
        &self,
        h: SessionHandle,
        o: ObjectHandle,
        template: &Template,
    ) -> Result<()> {
        let s = self.live_session(h)?;
        if Self::is_card_object(&s, o) {
            return Err(Error::TokenWriteProtected);
        }
        let who = Self::caller(&s, h);
        let set = self.objects.lock().set(&who, o, template);
        set.unwrap_or(Err(Error::ObjectHandleInvalid))
    }

    /// `C_DestroyObject`.
    pub fn destroy_object(&self, h: SessionHandle, o: ObjectHandle) -> Result<()> {
        let s = self.live_session(h)?;
        if Self::is_card_object(&s, o) {
            return Err(Error::TokenWriteProtected);
        }
        let who = Self::caller(&s, h);
        let destroyed = self.objects.lock().destroy(&who, o);
        destroyed.unwrap_or(Err(Error::ObjectHandleInvalid))
    }

    /// A card object or session object this session sees: `Ok(None)` when it exists but is
    /// hidden (a private card object before login).
    pub(super) fn visible_object(
        &self,
        s: &Session,
        h: SessionHandle,
        o: ObjectHandle,
    ) -> Result<Option<Arc<Object>>> {
        match s.card.object_with_visibility(s.kind, o) {
            Err(Error::ObjectHandleInvalid) => {
                let who = Self::caller(s, h);
                let found = self.objects.lock().get(&who, o);
                found.map(Some).ok_or(Error::ObjectHandleInvalid)
            }
            other => other,
        }
    }
}
