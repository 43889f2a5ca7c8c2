//! The operations of a session: object search, signing, verification and digests.

use std::sync::Arc;

use cryptoki_sys::*;

use super::Module;
use crate::pkcs11::error::{Error, Result};
use crate::pkcs11::mechanism::{self, Hasher, MechanismParam, SignScheme, PSS_MECHANISMS};
use crate::pkcs11::object::{Object, ObjectHandle};
use crate::pkcs11::session::{KeyOperation, Session, SessionHandle};
use crate::pkcs11::usage;

/// The operation kinds that end on an error of their calls ([`Module::end_operation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Sign,
    Verify,
    Digest,
}

impl Module {
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
        let mut found = s.card.find(s.kind, template)?;
        let who = Self::caller(&s, h);
        found.extend(self.objects.lock().find(&who, template));
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
        self.visible_object(&s, h, o)?
            .ok_or(Error::ObjectHandleInvalid)
    }

    /// A visible object as a reader of attributes `types` sees it (`C_GetAttributeValue`).
    pub fn object_for_read(
        &self,
        h: SessionHandle,
        o: ObjectHandle,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Arc<Object>> {
        let s = self.live_session(h)?;
        // Through the same visibility rules as every other object access: private objects
        // only after login, and the session objects of this caller.
        let obj = self
            .visible_object(&s, h, o)?
            .ok_or(Error::ObjectHandleInvalid)?;
        Ok(crate::pkcs11::live_attributes::for_read(
            &s.card, obj, types,
        ))
    }

    // ----- sign and verify -------------------------------------------------------------------

    pub(super) fn key_operation(
        &self,
        s: &Session,
        h: SessionHandle,
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
        let obj = match self.visible_object(s, h, key) {
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
        let function = if class == CKO_PRIVATE_KEY {
            CKA_SIGN
        } else {
            CKA_VERIFY
        };
        if !obj.is_true(function) {
            return Err(Error::KeyFunctionNotPermitted);
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
        ops.sign = Some(self.key_operation(&s, h, mech, param, key, CKO_PRIVATE_KEY)?);
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
        if op.multi_part {
            return Err(Error::OperationActive);
        }
        op.scheme.update(data, op.key_len)?;
        sha2::Digest::update(&mut op.data_sha256, data);
        self.sign_on_card(&s, op)
    }

    /// The card signature ending a sign operation, recorded in the usage history.
    fn sign_on_card(&self, s: &Session, op: KeyOperation) -> Result<Vec<u8>> {
        let result = s.card.sign(op.kind, &op.public, &op.scheme.finish()?);
        let threads = self.threads_allowed();
        usage::signed(
            &s.card,
            op.kind,
            op.mechanism,
            op.data_sha256,
            &result,
            threads,
        );
        result
    }

    /// `C_SignUpdate`.
    pub fn sign_update(&self, h: SessionHandle, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let op = ops.sign.as_mut().ok_or(Error::OperationNotInitialized)?;
        if op.scheme.single_part_only() {
            ops.sign = None;
            return Err(Error::FunctionNotSupported);
        }
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
        self.sign_on_card(&s, op)
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
        ops.verify = Some(self.key_operation(&s, h, mech, param, key, CKO_PUBLIC_KEY)?);
        Ok(())
    }

    /// `C_Verify` (ends the operation).
    pub fn verify(&self, h: SessionHandle, data: &[u8], signature: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let mut op = ops.verify.take().ok_or(Error::OperationNotInitialized)?;
        if op.multi_part {
            return Err(Error::OperationActive);
        }
        op.scheme.update(data, op.key_len)?;
        mechanism::verify_input(&op.public, &op.scheme.finish()?, signature)
    }

    /// `C_VerifyUpdate`.
    pub fn verify_update(&self, h: SessionHandle, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut ops = s.ops.lock();
        let op = ops.verify.as_mut().ok_or(Error::OperationNotInitialized)?;
        if op.scheme.single_part_only() {
            ops.verify = None;
            return Err(Error::FunctionNotSupported);
        }
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

    /// For the single-part calls (`C_Sign`, `C_Verify`, `C_Digest`), also their length query:
    /// after an update only the Final call may end the operation (`CKR_OPERATION_ACTIVE`).
    pub fn check_single_part(&self, h: SessionHandle, kind: OperationKind) -> Result<()> {
        let s = self.session(h)?;
        let ops = s.ops.lock();
        let multi_part = match kind {
            OperationKind::Sign => ops.sign.as_ref().map(|op| op.multi_part),
            OperationKind::Verify => ops.verify.as_ref().map(|op| op.multi_part),
            OperationKind::Digest => ops.digest.as_ref().map(|(_, multi)| *multi),
        };
        match multi_part {
            None => Err(Error::OperationNotInitialized),
            Some(true) => Err(Error::OperationActive),
            Some(false) => Ok(()),
        }
    }

    /// Ends an operation after an error of one of its calls: the specification ends it on
    /// every error but `CKR_BUFFER_TOO_SMALL` (the ffi layer decides when to call this).
    pub fn end_operation(&self, h: SessionHandle, kind: OperationKind) {
        let Ok(s) = self.session(h) else { return };
        let mut ops = s.ops.lock();
        match kind {
            OperationKind::Sign => ops.sign = None,
            OperationKind::Verify => ops.verify = None,
            OperationKind::Digest => ops.digest = None,
        }
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
        let (mut d, multi_part) = ops.digest.take().ok_or(Error::OperationNotInitialized)?;
        if multi_part {
            return Err(Error::OperationActive);
        }
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
