//! Attributes whose truth depends on what the card in the reader does, filled in when a caller
//! reads them.
//!
//! Objects are built from the certificates, before anyone knows whether the card signs
//! RSASSA-PSS itself. `CKA_ALLOWED_MECHANISMS` of both key objects must nevertheless list the
//! PSS mechanisms exactly when the token offers them (`C_GetMechanismList`): OpenSSL's
//! pkcs11-provider refuses a PSS signature (TLS 1.3 client authentication) with a key whose
//! list lacks them. So a read of that attribute asks the card (the token's one cached probe:
//! two APDUs once per insertion, no PIN try) and answers with the token's real list.

use std::sync::Arc;

use cryptoki_sys::*;

use crate::pkcs11::object::{self, Object};
use crate::pkcs11::token::Card;

/// `obj` as a reader of `types` must see it on `card`.
pub fn for_read(card: &Card, obj: Arc<Object>, types: &[CK_ATTRIBUTE_TYPE]) -> Arc<Object> {
    // Only the card's own keys (CKA_TOKEN): a session key object keeps what its creator set.
    if obj.key.is_none()
        || !obj.is_true(CKA_TOKEN)
        || !types.contains(&CKA_ALLOWED_MECHANISMS)
        || !card.pss_support()
    {
        return obj;
    }
    Arc::new(obj.with_value(CKA_ALLOWED_MECHANISMS, object::allowed_mechanisms(true)))
}
