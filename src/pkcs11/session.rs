//! Sessions: which token, RW or not, and the operations in progress.

use std::sync::Arc;

use cryptoki_sys::*;
use parking_lot::Mutex;
use rsa::RsaPublicKey;

use super::mechanism::{Hasher, SignScheme};
use super::object::ObjectHandle;
use super::token::Card;
use crate::card::KeyKind;

/// A session handle. Never reused within a process.
pub type SessionHandle = CK_SESSION_HANDLE;

/// A sign or verify operation in progress.
pub struct KeyOperation {
    pub kind: KeyKind,
    pub public: RsaPublicKey,
    pub key_len: usize,
    pub scheme: SignScheme,
    /// `C_SignUpdate`/`C_VerifyUpdate` was called: only the Final call may end it.
    pub multi_part: bool,
    /// The mechanism, and a SHA-256 of the caller's data, for the usage history (src/history).
    pub mechanism: CK_MECHANISM_TYPE,
    pub data_sha256: sha2::Sha256,
}

/// Operations of one session.
#[derive(Default)]
pub struct Operations {
    /// Remaining results of `C_FindObjects`.
    pub find: Option<std::collections::VecDeque<ObjectHandle>>,
    pub sign: Option<KeyOperation>,
    pub verify: Option<KeyOperation>,
    pub digest: Option<(Hasher, bool)>,
}

/// One open session.
pub struct Session {
    pub slot_id: CK_SLOT_ID,
    pub card: Arc<Card>,
    pub kind: KeyKind,
    pub rw: bool,
    pub ops: Mutex<Operations>,
}

impl Session {
    /// `CKS_*` state from the token's login state.
    pub fn state(&self) -> CK_STATE {
        match (self.rw, self.card.is_logged_in(self.kind)) {
            (false, false) => CKS_RO_PUBLIC_SESSION,
            (false, true) => CKS_RO_USER_FUNCTIONS,
            (true, false) => CKS_RW_PUBLIC_SESSION,
            (true, true) => CKS_RW_USER_FUNCTIONS,
        }
    }

    pub fn flags(&self) -> CK_FLAGS {
        CKF_SERIAL_SESSION | if self.rw { CKF_RW_SESSION } else { 0 }
    }
}
