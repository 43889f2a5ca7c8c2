//! Signing with the card key: PKCS#1 v1.5 and the card's own RSASSA-PSS, each signature
//! verified in software before it is returned.

use super::Card;
use crate::card::{CardError, KeyKind};
use crate::pkcs11::error::{Error, Result};
use crate::pkcs11::mechanism::{verify_input, SignInput};

impl Card {
    /// Whether this card signs RSASSA-PSS itself (P1 = 04). Asks the card the first time
    /// (the card layer's probe: 2 APDUs, no PIN try, never a signature) and caches the answer
    /// for this insertion. A failed probe (transport error) is not cached and means "no".
    pub fn pss_support(&self) -> bool {
        if self.is_removed() {
            return false;
        }
        let mut inner = self.inner.lock();
        if let Some(known) = inner.jpki.known_pss_support() {
            return known;
        }
        let probed = inner.jpki.pss_support();
        let super::CardInner { jpki, certs, .. } = &mut *inner;
        certs.note(jpki);
        match probed {
            Ok(known) => known,
            Err(e) => {
                let err = self.card_error(e);
                log::info!("PSS probe failed ({err}); PSS not offered for now");
                false
            }
        }
    }

    /// Signs `input` with the card key of `kind` — PKCS#1 v1.5 over a DigestInfo or raw
    /// `CKM_RSA_PKCS` data (P1 = 00), or PSS over a SHA-256 hash (P1 = 04) — then verifies the
    /// signature in software with `public` before returning it.
    pub fn sign(
        &self,
        kind: KeyKind,
        public: &rsa::RsaPublicKey,
        input: &SignInput,
    ) -> Result<Vec<u8>> {
        self.check_present()?;
        let mut inner = self.inner.lock();
        if !inner.logged_in(kind) {
            return Err(Error::UserNotLoggedIn);
        }
        let result = match input {
            SignInput::Pkcs1(data) => inner.jpki.sign(kind, data),
            SignInput::PssSha256(hash) => inner.jpki.sign_pss_sha256(kind, hash),
        };
        let signature = match result {
            Ok(s) => s,
            Err(CardError::SecurityStatusNotSatisfied) => {
                // The card no longer holds the VERIFY (69 82): logged out.
                inner.jpki.release(kind);
                return Err(Error::UserNotLoggedIn);
            }
            Err(CardError::NotSupported) => {
                // Learnt on first use: the card refused P1 = 04 although the probe accepted it;
                // PSS is no longer offered for this card.
                log::warn!("the card refused RSASSA-PSS; no longer offered");
                return Err(Error::FunctionFailed);
            }
            Err(e) => return Err(self.card_error(e)),
        };
        if verify_input(public, input, &signature).is_err() {
            log::error!("the card's signature does not verify with the certificate's key");
            inner.certs.distrust();
            return Err(Error::DeviceError);
        }
        Ok(signature)
    }
}
