//! The card readers as the layers above see them: list the readers, connect to the card in one
//! as a [`JpkiCard`], wait for a reader or card event. Transport failures arrive as
//! [`CardError`]s, so that the pkcs11 layer needs nothing from the transport layer.

use std::time::Duration;

use super::error::CardError;
use super::jpki::JpkiCard;
use crate::transport::Readers;

/// What is known of one reader: its name, whether a card is in it, that card's ATR, and an
/// event counter that changes with every insertion or removal.
pub use crate::transport::ReaderState;

/// The set of card readers (PC/SC in the product, simulated in tests).
pub struct CardReaders(Box<dyn Readers>);

impl<R: Readers + 'static> From<Box<R>> for CardReaders {
    fn from(readers: Box<R>) -> Self {
        CardReaders(readers)
    }
}

impl CardReaders {
    /// Every reader now attached, in a stable order.
    pub fn list(&self) -> Result<Vec<ReaderState>, CardError> {
        self.0.list().map_err(CardError::from)
    }

    /// Opens a shared connection to the card in `reader`. No APDU is sent.
    pub fn connect(&self, reader: &str) -> Result<JpkiCard, CardError> {
        let transport = self.0.connect(reader)?;
        Ok(JpkiCard::new(transport))
    }

    /// Blocks until the readers differ from `known` (`Ok(true)`), `timeout` passes
    /// (`Ok(false)`), or [`CardReaders::cancel`] is called (`Err(CardError::Cancelled)`).
    pub fn wait_for_change(
        &self,
        known: &[ReaderState],
        timeout: Option<Duration>,
    ) -> Result<bool, CardError> {
        self.0
            .wait_for_change(known, timeout)
            .map_err(CardError::from)
    }

    /// Wakes every thread blocked in [`CardReaders::wait_for_change`].
    pub fn cancel(&self) {
        self.0.cancel();
    }
}
