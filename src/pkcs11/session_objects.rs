//! Session objects (`CKA_TOKEN` FALSE) that a client creates: data objects, X.509
//! certificates and RSA public keys, held in the module's memory only (docs/conformance.md).
//!
//! The card is write-protected, but the specification allows session objects on such a token.
//! This file owns their template rules (which attributes a class has, which are required,
//! which only the module sets, which cannot change) and the store with its caps; the module
//! decides visibility and lifetime (owner session, login state, card).
//!
//! Longer than the project's ~500 lines only by its unit tests at the end, kept next to the
//! template rules they check.

use std::sync::Arc;

use cryptoki_sys::*;
use rsa::{BigUint, RsaPublicKey};
use sha1::{Digest, Sha1};

use super::error::{Error, Result};
use super::object::{self, Attr, AttrLookup, Object, ObjectHandle};
use super::session::SessionHandle;
use super::token::Card;
use crate::card::KeyKind;

/// Attribute values of one object, in bytes, at most.
pub const MAX_OBJECT_BYTES: usize = 64 * 1024;
/// Attributes in one template, at most.
pub const MAX_TEMPLATE_ATTRIBUTES: usize = 64;
/// Session objects in the module, at most.
pub const MAX_OBJECTS: usize = 256;
/// Attribute values of all session objects together, in bytes, at most.
pub const MAX_TOTAL_BYTES: usize = 4 * 1024 * 1024;

/// A template as the ffi layer copies it: (type, value) pairs.
pub type Template = [(CK_ATTRIBUTE_TYPE, Vec<u8>)];

const ULONG: usize = std::mem::size_of::<CK_ULONG>();

/// How a template attribute may appear.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Ulong,
    Date,
    Bytes,
}

/// Attributes every storage object has: (type, value kind, fixed after creation).
const STORAGE: &[(CK_ATTRIBUTE_TYPE, Kind, bool)] = &[
    (CKA_CLASS, Kind::Ulong, true),
    (CKA_TOKEN, Kind::Bool, true),
    (CKA_PRIVATE, Kind::Bool, true),
    (CKA_MODIFIABLE, Kind::Bool, true),
    (CKA_COPYABLE, Kind::Bool, false),
    (CKA_DESTROYABLE, Kind::Bool, false),
    (CKA_LABEL, Kind::Bytes, false),
];

const DATA: &[(CK_ATTRIBUTE_TYPE, Kind, bool)] = &[
    (CKA_APPLICATION, Kind::Bytes, false),
    (CKA_OBJECT_ID, Kind::Bytes, false),
    (CKA_VALUE, Kind::Bytes, false),
];

const CERTIFICATE: &[(CK_ATTRIBUTE_TYPE, Kind, bool)] = &[
    (CKA_CERTIFICATE_TYPE, Kind::Ulong, true),
    (CKA_TRUSTED, Kind::Bool, false),
    (CKA_CERTIFICATE_CATEGORY, Kind::Ulong, false),
    (CKA_START_DATE, Kind::Date, false),
    (CKA_END_DATE, Kind::Date, false),
    (CKA_PUBLIC_KEY_INFO, Kind::Bytes, false),
    (CKA_SUBJECT, Kind::Bytes, false),
    (CKA_ID, Kind::Bytes, false),
    (CKA_ISSUER, Kind::Bytes, false),
    (CKA_SERIAL_NUMBER, Kind::Bytes, false),
    (CKA_VALUE, Kind::Bytes, true),
    (CKA_URL, Kind::Bytes, false),
    (CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Kind::Bytes, false),
    (CKA_HASH_OF_ISSUER_PUBLIC_KEY, Kind::Bytes, false),
    (CKA_JAVA_MIDP_SECURITY_DOMAIN, Kind::Ulong, false),
    (CKA_NAME_HASH_ALGORITHM, Kind::Ulong, false),
];

const RSA_PUBLIC_KEY: &[(CK_ATTRIBUTE_TYPE, Kind, bool)] = &[
    (CKA_KEY_TYPE, Kind::Ulong, true),
    (CKA_ID, Kind::Bytes, false),
    (CKA_START_DATE, Kind::Date, false),
    (CKA_END_DATE, Kind::Date, false),
    (CKA_DERIVE, Kind::Bool, false),
    (CKA_ALLOWED_MECHANISMS, Kind::Bytes, false),
    (CKA_SUBJECT, Kind::Bytes, false),
    (CKA_ENCRYPT, Kind::Bool, false),
    (CKA_VERIFY, Kind::Bool, false),
    (CKA_VERIFY_RECOVER, Kind::Bool, false),
    (CKA_WRAP, Kind::Bool, false),
    (CKA_TRUSTED, Kind::Bool, false),
    (CKA_PUBLIC_KEY_INFO, Kind::Bytes, false),
    (CKA_MODULUS, Kind::Bytes, true),
    (CKA_PUBLIC_EXPONENT, Kind::Bytes, true),
];

/// Attributes only the module sets (`CKR_ATTRIBUTE_READ_ONLY` in a template).
const SET_BY_MODULE: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_UNIQUE_ID,
    CKA_LOCAL,
    CKA_KEY_GEN_MECHANISM,
    CKA_MODULUS_BITS,
    CKA_CHECK_VALUE,
];

fn class_attributes(class: CK_OBJECT_CLASS) -> &'static [(CK_ATTRIBUTE_TYPE, Kind, bool)] {
    match class {
        CKO_DATA => DATA,
        CKO_CERTIFICATE => CERTIFICATE,
        _ => RSA_PUBLIC_KEY,
    }
}

fn rule(class: CK_OBJECT_CLASS, ty: CK_ATTRIBUTE_TYPE) -> Option<(Kind, bool)> {
    STORAGE
        .iter()
        .chain(class_attributes(class))
        .find(|(t, _, _)| *t == ty)
        .map(|(_, k, fixed)| (*k, *fixed))
}

fn check_value(kind: Kind, v: &[u8]) -> Result<()> {
    let ok = match kind {
        Kind::Bool => v.len() == 1,
        Kind::Ulong => v.len() == ULONG,
        Kind::Date => v.is_empty() || (v.len() == 8 && v.iter().all(u8::is_ascii_digit)),
        Kind::Bytes => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Other(CKR_ATTRIBUTE_VALUE_INVALID))
    }
}

fn as_ulong(v: &[u8]) -> Result<CK_ULONG> {
    let b: [u8; ULONG] = v
        .try_into()
        .map_err(|_| Error::Other(CKR_ATTRIBUTE_VALUE_INVALID))?;
    Ok(CK_ULONG::from_ne_bytes(b))
}

fn as_bool(v: &[u8]) -> bool {
    v.first().is_some_and(|b| *b != CK_FALSE)
}

/// The template with one value per type: the same type twice with different values is
/// `CKR_TEMPLATE_INCONSISTENT`. Also applies the size caps.
fn unique(template: &Template) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    if template.len() > MAX_TEMPLATE_ATTRIBUTES {
        return Err(Error::Other(CKR_DEVICE_MEMORY));
    }
    let bytes: usize = template.iter().map(|(_, v)| v.len()).sum();
    if bytes > MAX_OBJECT_BYTES {
        return Err(Error::Other(CKR_DEVICE_MEMORY));
    }
    let mut out: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> = Vec::with_capacity(template.len());
    for (ty, v) in template {
        match out.iter().find(|(t, _)| t == ty) {
            Some((_, have)) if have != v => return Err(Error::Other(CKR_TEMPLATE_INCONSISTENT)),
            Some(_) => {}
            None => out.push((*ty, v.clone())),
        }
    }
    Ok(out)
}

fn get(t: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)], ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    t.iter().find(|(x, _)| *x == ty).map(|(_, v)| v.as_slice())
}

/// An object built from a client's template (after [`unique`]).
struct Built {
    object: Object,
    bytes: usize,
}

/// Checks a creation template and builds the object. `CKA_TOKEN` TRUE is refused first (the
/// token is write-protected); then the class, the attributes it allows, the required ones.
fn build(
    handle: ObjectHandle,
    token_kind: KeyKind,
    template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
) -> Result<Built> {
    if let Some(v) = get(template, CKA_TOKEN) {
        check_value(Kind::Bool, v)?;
        if as_bool(v) {
            return Err(Error::TokenWriteProtected);
        }
    }
    let class = as_ulong(get(template, CKA_CLASS).ok_or(Error::Other(CKR_TEMPLATE_INCOMPLETE))?)?;
    if !matches!(class, CKO_DATA | CKO_CERTIFICATE | CKO_PUBLIC_KEY) {
        return Err(Error::Other(CKR_ATTRIBUTE_VALUE_INVALID));
    }
    for (ty, v) in template {
        if SET_BY_MODULE.contains(ty) {
            return Err(Error::Other(CKR_ATTRIBUTE_READ_ONLY));
        }
        let (kind, _) = rule(class, *ty).ok_or(Error::Other(CKR_ATTRIBUTE_TYPE_INVALID))?;
        check_value(kind, v)?;
    }
    let required = |ty| get(template, ty).ok_or(Error::Other(CKR_TEMPLATE_INCOMPLETE));
    let mut key = None;
    let mut computed: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> = Vec::new();
    match class {
        CKO_CERTIFICATE => {
            if as_ulong(required(CKA_CERTIFICATE_TYPE)?)? != CKC_X_509 {
                return Err(Error::Other(CKR_ATTRIBUTE_VALUE_INVALID));
            }
            required(CKA_SUBJECT)?;
            let value = required(CKA_VALUE)?;
            if get(template, CKA_TRUSTED).is_some_and(as_bool) {
                // Only the security officer may mark a certificate trusted; there is none.
                return Err(Error::Other(CKR_ATTRIBUTE_READ_ONLY));
            }
            computed.push((CKA_CHECK_VALUE, Sha1::digest(value)[..3].to_vec()));
        }
        CKO_PUBLIC_KEY => {
            if as_ulong(required(CKA_KEY_TYPE)?)? != CKK_RSA {
                return Err(Error::Other(CKR_ATTRIBUTE_VALUE_INVALID));
            }
            let n = BigUint::from_bytes_be(required(CKA_MODULUS)?);
            let e = BigUint::from_bytes_be(required(CKA_PUBLIC_EXPONENT)?);
            let bits = n.bits();
            // The sizes the software verification handles (and no toy keys).
            if !(1024..=4096).contains(&bits) {
                return Err(Error::Other(CKR_ATTRIBUTE_VALUE_INVALID));
            }
            let public =
                RsaPublicKey::new(n, e).map_err(|_| Error::Other(CKR_ATTRIBUTE_VALUE_INVALID))?;
            computed.push((CKA_MODULUS_BITS, object::ulong(bits as CK_ULONG)));
            computed.push((CKA_LOCAL, object::bool_(false)));
            computed.push((
                CKA_KEY_GEN_MECHANISM,
                object::ulong(CK_UNAVAILABLE_INFORMATION),
            ));
            key = Some((token_kind, public));
        }
        _ => {}
    }
    // Defaults for everything the template left out.
    let defaults = |ty: CK_ATTRIBUTE_TYPE, kind: Kind| -> Vec<u8> {
        match (ty, kind) {
            (CKA_MODIFIABLE | CKA_COPYABLE | CKA_DESTROYABLE | CKA_VERIFY, _) => {
                object::bool_(true)
            }
            (CKA_NAME_HASH_ALGORITHM, _) => object::ulong(CKM_SHA_1),
            (_, Kind::Bool) => object::bool_(false),
            (_, Kind::Ulong) => object::ulong(0),
            _ => Vec::new(),
        }
    };
    let mut attrs: Vec<(CK_ATTRIBUTE_TYPE, Attr)> = Vec::new();
    for (ty, kind, _) in STORAGE.iter().chain(class_attributes(class)) {
        let v = match get(template, *ty) {
            // A CK_BBOOL is stored as CK_TRUE / CK_FALSE, so that searches match.
            Some(v) if *kind == Kind::Bool => object::bool_(as_bool(v)),
            Some(v) => v.to_vec(),
            None => defaults(*ty, *kind),
        };
        attrs.push((*ty, Attr::Value(v)));
    }
    attrs.push((
        CKA_UNIQUE_ID,
        Attr::Value(format!("session-{handle}").into_bytes()),
    ));
    attrs.extend(computed.into_iter().map(|(t, v)| (t, Attr::Value(v))));
    let private = get(template, CKA_PRIVATE).is_some_and(as_bool);
    let object = Object::from_attributes(handle, class, private, key, attrs);
    let bytes = object.size();
    if bytes > MAX_OBJECT_BYTES + 256 {
        return Err(Error::Other(CKR_DEVICE_MEMORY));
    }
    Ok(Built { object, bytes })
}

/// One session object and what it belongs to.
struct Entry {
    owner: SessionHandle,
    card: Arc<Card>,
    kind: KeyKind,
    /// The attributes given at creation (and changed since): copies and changes are built
    /// again from them, through the same checks.
    given: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
    object: Arc<Object>,
    bytes: usize,
}

/// Who asks: the session and its token, and whether its user is logged in.
pub struct Caller<'a> {
    pub session: SessionHandle,
    pub card: &'a Arc<Card>,
    pub kind: KeyKind,
    pub logged_in: bool,
}

impl Caller<'_> {
    fn sees(&self, e: &Entry) -> bool {
        Arc::ptr_eq(&e.card, self.card)
            && e.kind == self.kind
            && (self.logged_in || !e.object.private)
    }
}

/// All session objects of the module.
#[derive(Default)]
pub struct SessionObjects {
    entries: Vec<Entry>,
    bytes: usize,
}

impl SessionObjects {
    fn room_for(&self, bytes: usize) -> Result<()> {
        if self.entries.len() >= MAX_OBJECTS || self.bytes + bytes > MAX_TOTAL_BYTES {
            log::info!(
                "session object refused: {} objects, {} bytes held",
                self.entries.len(),
                self.bytes
            );
            return Err(Error::Other(CKR_DEVICE_MEMORY));
        }
        Ok(())
    }

    fn insert(
        &mut self,
        who: &Caller,
        given: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
        b: Built,
    ) -> ObjectHandle {
        let handle = b.object.handle;
        self.bytes += b.bytes;
        self.entries.push(Entry {
            owner: who.session,
            card: who.card.clone(),
            kind: who.kind,
            given,
            object: Arc::new(b.object),
            bytes: b.bytes,
        });
        handle
    }

    /// Drops the objects of cards that are gone.
    fn purge_removed(&mut self) {
        self.retain(|e| !e.card.is_removed());
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        let before = self.entries.len();
        self.entries.retain(|e| keep(e));
        if self.entries.len() != before {
            self.bytes = self.entries.iter().map(|e| e.bytes).sum();
        }
    }

    /// `C_CreateObject` of a session object.
    pub fn create(&mut self, who: &Caller, template: &Template) -> Result<ObjectHandle> {
        let given = unique(template)?;
        let built = build(super::token::next_object_handle(), who.kind, &given)?;
        if built.object.private && !who.logged_in {
            return Err(Error::UserNotLoggedIn);
        }
        self.purge_removed();
        self.room_for(built.bytes)?;
        Ok(self.insert(who, given, built))
    }

    fn find_visible(&self, who: &Caller, handle: ObjectHandle) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.object.handle == handle && who.sees(e))
    }

    /// A visible session object.
    pub fn get(&self, who: &Caller, handle: ObjectHandle) -> Option<Arc<Object>> {
        self.find_visible(who, handle)
            .map(|i| self.entries[i].object.clone())
    }

    /// Handles of the visible session objects matching `template`.
    pub fn find(&self, who: &Caller, template: &Template) -> Vec<ObjectHandle> {
        self.entries
            .iter()
            .filter(|e| who.sees(e) && e.object.matches(template))
            .map(|e| e.object.handle)
            .collect()
    }

    /// `C_DestroyObject`. `None`: not a visible session object.
    pub fn destroy(&mut self, who: &Caller, handle: ObjectHandle) -> Option<Result<()>> {
        let i = self.find_visible(who, handle)?;
        if !self.entries[i].object.is_true(CKA_DESTROYABLE) {
            return Some(Err(Error::Other(CKR_ACTION_PROHIBITED)));
        }
        let e = self.entries.remove(i);
        self.bytes -= e.bytes;
        Some(Ok(()))
    }

    /// The template of an object after the changes of `template` (`C_SetAttributeValue` when
    /// `copy` is false, `C_CopyObject` when true), checked as the specification says.
    fn changed(
        &self,
        i: usize,
        template: &Template,
        copy: bool,
    ) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
        let e = &self.entries[i];
        let changes = unique(template)?;
        let class = e.object.class;
        for (ty, v) in &changes {
            if SET_BY_MODULE.contains(ty) {
                return Err(Error::Other(CKR_ATTRIBUTE_READ_ONLY));
            }
            let (kind, fixed) = rule(class, *ty).ok_or(Error::Other(CKR_ATTRIBUTE_TYPE_INVALID))?;
            check_value(kind, v)?;
            // A copy may change CKA_TOKEN and make the object private (not public again).
            let may_change = match *ty {
                CKA_TOKEN if copy => true,
                CKA_PRIVATE if copy => as_bool(v) || !e.object.private,
                // CKA_COPYABLE may only go from TRUE to FALSE.
                CKA_COPYABLE => !as_bool(v) || e.object.is_true(CKA_COPYABLE),
                _ => !fixed,
            };
            let same =
                matches!(e.object.attribute(*ty), AttrLookup::Value(have) if have == v.as_slice());
            // A copy may repeat a fixed attribute's value; a change may not name it.
            if !(may_change || (copy && same)) {
                return Err(Error::Other(CKR_ATTRIBUTE_READ_ONLY));
            }
        }
        let mut given = e.given.clone();
        for (ty, v) in changes {
            match given.iter_mut().find(|(t, _)| *t == ty) {
                Some(slot) => slot.1 = v,
                None => given.push((ty, v)),
            }
        }
        if given.iter().map(|(_, v)| v.len()).sum::<usize>() > MAX_OBJECT_BYTES {
            return Err(Error::Other(CKR_DEVICE_MEMORY));
        }
        Ok(given)
    }

    /// `C_SetAttributeValue`. `None`: not a visible session object.
    pub fn set(
        &mut self,
        who: &Caller,
        handle: ObjectHandle,
        template: &Template,
    ) -> Option<Result<()>> {
        let i = self.find_visible(who, handle)?;
        Some(self.set_at(who, i, template))
    }

    fn set_at(&mut self, who: &Caller, i: usize, template: &Template) -> Result<()> {
        if !self.entries[i].object.is_true(CKA_MODIFIABLE) {
            return Err(Error::Other(CKR_ACTION_PROHIBITED));
        }
        let given = self.changed(i, template, false)?;
        let built = build(handle_of(&self.entries[i]), who.kind, &given)?;
        let old = self.entries[i].bytes;
        if self.bytes - old + built.bytes > MAX_TOTAL_BYTES {
            return Err(Error::Other(CKR_DEVICE_MEMORY));
        }
        self.bytes = self.bytes - old + built.bytes;
        let e = &mut self.entries[i];
        e.given = given;
        e.object = Arc::new(built.object);
        e.bytes = built.bytes;
        Ok(())
    }

    /// `C_CopyObject`. `None`: not a visible session object.
    pub fn copy(
        &mut self,
        who: &Caller,
        handle: ObjectHandle,
        template: &Template,
    ) -> Option<Result<ObjectHandle>> {
        let i = self.find_visible(who, handle)?;
        Some(self.copy_at(who, i, template))
    }

    fn copy_at(&mut self, who: &Caller, i: usize, template: &Template) -> Result<ObjectHandle> {
        if !self.entries[i].object.is_true(CKA_COPYABLE) {
            return Err(Error::Other(CKR_ACTION_PROHIBITED));
        }
        let given = self.changed(i, template, true)?;
        let built = build(super::token::next_object_handle(), who.kind, &given)?;
        if built.object.private && !who.logged_in {
            return Err(Error::UserNotLoggedIn);
        }
        self.purge_removed();
        self.room_for(built.bytes)?;
        Ok(self.insert(who, given, built))
    }

    /// The session ended: its objects go.
    pub fn session_closed(&mut self, session: SessionHandle) {
        self.retain(|e| e.owner != session);
    }

    /// The user of a card's token logged out: private objects of the card's tokens that are no
    /// longer logged in go (their handles stay invalid after a new login).
    pub fn logged_out(&mut self, card: &Arc<Card>) {
        self.retain(|e| {
            !(Arc::ptr_eq(&e.card, card) && e.object.private && !card.is_logged_in(e.kind))
        });
        self.purge_removed();
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

fn handle_of(e: &Entry) -> ObjectHandle {
    e.object.handle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pairs: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> {
        pairs.to_vec()
    }

    fn rv(r: Result<Built>) -> CK_RV {
        match r {
            Ok(_) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    #[test]
    fn template_rules() {
        let k = KeyKind::Authentication;
        let data = object::ulong(CKO_DATA);
        assert_eq!(rv(build(1, k, &t(&[(CKA_CLASS, data.clone())]))), CKR_OK);
        assert_eq!(rv(build(1, k, &t(&[]))), CKR_TEMPLATE_INCOMPLETE);
        assert_eq!(
            rv(build(
                1,
                k,
                &t(&[(CKA_CLASS, data.clone()), (CKA_TOKEN, vec![1])])
            )),
            CKR_TOKEN_WRITE_PROTECTED
        );
        assert_eq!(
            rv(build(
                1,
                k,
                &t(&[(CKA_CLASS, data.clone()), (CKA_MODULUS, vec![1])])
            )),
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        assert_eq!(
            rv(build(
                1,
                k,
                &t(&[(CKA_CLASS, data.clone()), (CKA_LOCAL, vec![0])])
            )),
            CKR_ATTRIBUTE_READ_ONLY
        );
        assert_eq!(
            rv(build(
                1,
                k,
                &t(&[(CKA_CLASS, data), (CKA_PRIVATE, vec![0, 0])])
            )),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        assert_eq!(
            unique(&t(&[(CKA_LABEL, vec![1]), (CKA_LABEL, vec![2])])).err(),
            Some(Error::Other(CKR_TEMPLATE_INCONSISTENT))
        );
        assert_eq!(
            unique(&t(&[(CKA_VALUE, vec![0; MAX_OBJECT_BYTES + 1])])).err(),
            Some(Error::Other(CKR_DEVICE_MEMORY))
        );
        let many: Vec<_> = (0..=MAX_TEMPLATE_ATTRIBUTES as CK_ULONG)
            .map(|i| (CKA_VENDOR_DEFINED + i, vec![]))
            .collect();
        assert_eq!(unique(&many).err(), Some(Error::Other(CKR_DEVICE_MEMORY)));
    }
}
