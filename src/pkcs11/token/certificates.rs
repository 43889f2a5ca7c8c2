//! The certificates of a token: read lazily, once per insertion, only the files a request
//! needs, kept in memory only, and the objects built from them.

use std::sync::Arc;

use cryptoki_sys::*;

use super::{kind_index, next_object_handle, Card, CardInner};
use crate::card::{CardError, CertificateFile, KeyKind};
use crate::pkcs11::cert::CertificateData;
use crate::pkcs11::error::{Error, Result};
use crate::pkcs11::object::{self, pair_names, Object, ObjectHandle};
use crate::pkcs11::{phone, usage};

/// A certificate EF and the objects built from it.
#[derive(Default)]
pub(super) enum CertObjects {
    /// Not read yet (or needs login first).
    #[default]
    Pending,
    /// Read and turned into objects.
    Loaded(Vec<Arc<Object>>),
    /// The card refused to read it before VERIFY (6982): read again after login only, so
    /// that searches never cause card traffic.
    NeedsLogin,
    /// The last read gave bytes that are not a usable certificate (`n` times in a row): read
    /// again at the next search, since a card's answer can be damaged on the way.
    Damaged(u8),
    /// The card has no such certificate, or it stayed unusable: no objects.
    Absent,
}

/// Reads in a row that may give an unusable certificate before the file counts as absent.
pub(super) const MAX_DAMAGED_READS: u8 = 3;

impl CertObjects {
    /// The state after a read that gave no usable certificate.
    pub(super) fn damaged(&self) -> CertObjects {
        let n = match self {
            CertObjects::Damaged(n) => n.saturating_add(1),
            _ => 1,
        };
        if n >= MAX_DAMAGED_READS {
            CertObjects::Absent
        } else {
            CertObjects::Damaged(n)
        }
    }
}

/// What reading a certificate EF gave.
pub(super) enum ReadOutcome {
    Bytes(Vec<u8>),
    /// 6982: readable only after VERIFY.
    NeedsLogin,
    /// Not on this card.
    Absent,
}

// ---- traffic economy (issue 6): which certificate EFs a request needs -----------------------

/// Which certificate EFs of a token to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Files {
    /// The user certificate (certificate, public key and private key objects).
    pub(super) user: bool,
    /// The CA certificate (one certificate object).
    pub(super) ca: bool,
}

impl Files {
    /// The EFs whose objects could match `template`. Class, `CKA_ID` and `CKA_LABEL` of every
    /// object are known before its certificate is read (object.rs), so a search that names
    /// another class, id or label never reads that EF: a key search reads no CA certificate,
    /// a search for profiles or vendor classes reads nothing.
    pub(super) fn for_template(kind: KeyKind, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Files {
        let names = pair_names(kind);
        let may_match = |classes: &[CK_OBJECT_CLASS], id: u8, label: &str| {
            template.iter().all(|(ty, value)| match *ty {
                CKA_CLASS => classes.iter().any(|c| object::ulong(*c) == *value),
                CKA_ID => value.as_slice() == [id],
                CKA_LABEL => value.as_slice() == label.as_bytes(),
                _ => true,
            })
        };
        Files {
            user: may_match(
                &[CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY],
                names.id,
                names.label,
            ),
            ca: may_match(&[CKO_CERTIFICATE], names.ca_id, names.ca_label),
        }
    }
}

impl Card {
    /// Reads `file`, retrying once after a reset by another party.
    pub(super) fn read_cert(
        &self,
        inner: &mut CardInner,
        file: CertificateFile,
    ) -> Result<ReadOutcome> {
        for _ in 0..2 {
            let CardInner { jpki, certs, .. } = &mut *inner;
            let read = certs.certificate(jpki, file);
            match read {
                Ok(bytes) => return Ok(ReadOutcome::Bytes(bytes)),
                Err(CardError::SecurityStatusNotSatisfied) => return Ok(ReadOutcome::NeedsLogin),
                Err(CardError::FileNotFound) => {
                    // e.g. no signature certificate on cards of children under 15 (§7).
                    log::info!("certificate {file:?} not on the card");
                    return Ok(ReadOutcome::Absent);
                }
                Err(CardError::CardReset) => {
                    let _ = self.card_error(CardError::CardReset);
                }
                Err(e) => return Err(self.card_error(e)),
            }
        }
        Err(Error::DeviceError)
    }

    /// Reads the certificates of a token that the current login state allows and `want`
    /// asks for, once.
    pub(super) fn load(&self, inner: &mut CardInner, kind: KeyKind, want: Files) -> Result<()> {
        let idx = kind_index(kind);
        let (user_file, ca_file) = kind.certificate_files();
        let names = pair_names(kind);
        let logged_in = inner.logged_in(kind);
        let wanted = |c: &CertObjects| match c {
            CertObjects::Pending | CertObjects::Damaged(_) => true,
            CertObjects::NeedsLogin => logged_in,
            _ => false,
        };
        if want.ca && wanted(&inner.tokens[idx].ca) {
            let objects = match self.read_cert(inner, ca_file) {
                Ok(ReadOutcome::Bytes(bytes)) => match CertificateData::parse(&bytes) {
                    Ok(cert) => ca_objects(&cert, kind),
                    Err(e) => {
                        log::error!("CA certificate {ca_file:?} unusable: {}", e.0);
                        inner.tokens[idx].ca.damaged()
                    }
                },
                Ok(ReadOutcome::NeedsLogin) => CertObjects::NeedsLogin,
                Ok(ReadOutcome::Absent) => CertObjects::Absent,
                Err(e) => return Err(e),
            };
            let damaged = matches!(objects, CertObjects::Damaged(_));
            inner.tokens[idx].ca = objects;
            if damaged {
                return Err(Error::DeviceError);
            }
        }
        // The signature certificate holds name and address: read only after the password. On a
        // phone token the authentication certificate too is private (phone.rs).
        let user_private = kind == KeyKind::Signature || inner.phone.is_some();
        if want.user && wanted(&inner.tokens[idx].user) && (!user_private || logged_in) {
            let objects = match self.read_cert(inner, user_file) {
                Ok(ReadOutcome::Bytes(bytes)) => match CertificateData::parse(&bytes) {
                    Ok(cert) => {
                        crate::renewal::warn_once(kind, cert.not_after.as_ref());
                        if kind == KeyKind::Authentication {
                            inner.auth_serial = Some(cert.serial_value.clone());
                        } else {
                            usage::sign_certificate_read(&inner.history_ref(kind));
                            self.recheck_signature_ca(inner, &bytes);
                        }
                        CertObjects::Loaded(vec![
                            Arc::new(object::certificate(
                                next_object_handle(),
                                &cert,
                                names.id,
                                names.label,
                                false,
                                user_private,
                            )),
                            Arc::new(object::public_key(
                                next_object_handle(),
                                &cert,
                                kind,
                                names.id,
                                names.label,
                                user_private,
                            )),
                            Arc::new(object::private_key(
                                next_object_handle(),
                                &cert,
                                kind,
                                names.id,
                                names.label,
                            )),
                        ])
                    }
                    Err(e) => {
                        log::error!("certificate {user_file:?} unusable: {}", e.0);
                        inner.tokens[idx].user.damaged()
                    }
                },
                Ok(ReadOutcome::NeedsLogin) => {
                    if kind == KeyKind::Authentication && inner.phone.is_none() {
                        let p = phone::detect(&mut inner.jpki);
                        inner.became_phone(p);
                    }
                    CertObjects::NeedsLogin
                }
                Ok(ReadOutcome::Absent) => CertObjects::Absent,
                Err(e) => return Err(e),
            };
            let damaged = matches!(objects, CertObjects::Damaged(_));
            inner.tokens[idx].user = objects;
            if damaged {
                return Err(Error::DeviceError);
            }
        }
        Ok(())
    }

    /// The signature certificate was just read: a signature CA certificate that came from the
    /// cache on the authentication certificate's proof must be its issuer
    /// (`CertSource::check_signature_ca`). If it is not, the card's replaces it: the CA object
    /// already built (if any) is dropped — its handle becomes invalid — and rebuilt from the
    /// card's certificate, so no stale object is served from here on.
    fn recheck_signature_ca(&self, inner: &mut CardInner, sign_cert: &[u8]) {
        let idx = kind_index(KeyKind::Signature);
        let CardInner { jpki, certs, .. } = &mut *inner;
        let replaced = certs.check_signature_ca(jpki, sign_cert);
        let token = &mut inner.tokens[idx];
        match replaced {
            Ok(None) => {}
            Ok(Some(ca)) => {
                if matches!(token.ca, CertObjects::Loaded(_)) {
                    token.ca = match CertificateData::parse(&ca) {
                        Ok(cert) => ca_objects(&cert, KeyKind::Signature),
                        Err(e) => {
                            log::error!("signature CA certificate unusable: {}", e.0);
                            CertObjects::Pending
                        }
                    };
                }
            }
            Err(e) => {
                // Read again from the card at the next request (the stale copy is gone).
                log::warn!("signature CA certificate not read again: {e}");
                if matches!(token.ca, CertObjects::Loaded(_)) {
                    token.ca = CertObjects::Pending;
                }
            }
        }
    }

    /// Handles of the visible objects of a token matching `template` (loads lazily first).
    pub fn find(
        &self,
        kind: KeyKind,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<Vec<ObjectHandle>> {
        self.check_present()?;
        let mut inner = self.inner.lock();
        // A phone token is recognised by its authentication certificate (phone.rs), which
        // C_GetTokenInfo reads before any client looks for objects; a profile search never
        // reads it (traffic economy), so before that read the card's profiles are listed.
        let want = Files::for_template(kind, template);
        log::trace!(
            "search on {kind:?}: attribute types {:x?}, may read {want:?}",
            template.iter().map(|(t, _)| *t).collect::<Vec<_>>()
        );
        self.load(&mut inner, kind, want)?;
        Ok(inner.tokens[kind_index(kind)]
            .visible(inner.logged_in(kind))
            .filter(|o| o.matches(template))
            .map(|o| o.handle)
            .collect())
    }

    /// A visible object of a token. `Err(ObjectHandleInvalid)` if unknown or hidden.
    pub fn object(&self, kind: KeyKind, handle: ObjectHandle) -> Result<Arc<Object>> {
        self.object_with_visibility(kind, handle)?
            .ok_or(Error::ObjectHandleInvalid)
    }

    /// `Ok(Some)` visible, `Ok(None)` exists but hidden (not logged in), `Err` unknown.
    pub fn object_with_visibility(
        &self,
        kind: KeyKind,
        handle: ObjectHandle,
    ) -> Result<Option<Arc<Object>>> {
        let inner = self.inner.lock();
        let token = &inner.tokens[kind_index(kind)];
        let found = token.all_objects().find(|o| o.handle == handle).cloned();
        match found {
            Some(o) if inner.logged_in(kind) || !o.private => Ok(Some(o)),
            Some(_) => Ok(None),
            None => Err(Error::ObjectHandleInvalid),
        }
    }
}

/// The CA certificate object of `kind`'s token: a public token object, fresh handle.
fn ca_objects(cert: &CertificateData, kind: KeyKind) -> CertObjects {
    let names = pair_names(kind);
    CertObjects::Loaded(vec![Arc::new(object::certificate(
        next_object_handle(),
        cert,
        names.ca_id,
        names.ca_label,
        true,
        false,
    ))])
}
