//! `jpki pin change --auth|--sign|--kenhojo`: VERIFY the current PIN, CHANGE REFERENCE DATA to
//! the new one. Both are checked locally (and the new one typed twice on a terminal) before
//! anything reaches the card, so a typing error never costs a try.

use jpki_pkcs11::card::{KenhojoPin, KeyKind, Pin};
use serde::Serialize;

use super::args::{Args, PinWhich};
use super::common::{self, card_failure, Exit, Failure, PinSource, Progress, Report};

/// What `jpki pin change` reports.
#[derive(Serialize)]
struct PinReport {
    /// Which PIN was changed, in words.
    changed: &'static str,
}

impl Report for PinReport {
    fn human(&self) {
        println!("The {} was changed.", self.changed);
    }
}

pub fn change(args: &Args, which: PinWhich) -> Result<(), Failure> {
    let (what, rule) = match which {
        PinWhich::Auth => ("authentication PIN", common::AUTH_RULE),
        PinWhich::Sign => ("signature password", common::SIGN_RULE),
        PinWhich::Kenhojo => ("card-info PIN", common::KENHOJO_RULE),
    };
    let mut pins = PinSource::new(args)?;
    let old = pins.read(&format!("Current {what}: "))?;
    let new = pins.read(&format!("New {what}: "))?;
    if args.pin_fd.is_none() {
        let again = pins.read(&format!("New {what} again: "))?;
        if *again != *new {
            return Err(Failure::new(
                Exit::Usage,
                "the two new PINs differ: nothing was sent to the card",
            ));
        }
    }
    let fmt = |e, which_one: &str| common::pin_format_failure(e, which_one, rule);
    let current = format!("current {what}");
    let new_name = format!("new {what}");
    match which {
        PinWhich::Auth | PinWhich::Sign => {
            let key = if which == PinWhich::Auth {
                KeyKind::Authentication
            } else {
                KeyKind::Signature
            };
            let old = Pin::parse(key, old.as_bytes()).map_err(|e| fmt(e, &current))?;
            let new = Pin::parse(key, new.as_bytes()).map_err(|e| fmt(e, &new_name))?;
            let (_, mut card) = common::open_card(args)?;
            let _p = Progress::start("changing the PIN…");
            card.change_pin(&old, &new)
                .map_err(|e| card_failure(e, what))?;
            let _ = card.logout();
        }
        PinWhich::Kenhojo => {
            let old = KenhojoPin::parse(old.as_bytes()).map_err(|e| fmt(e, &current))?;
            let new = KenhojoPin::parse(new.as_bytes()).map_err(|e| fmt(e, &new_name))?;
            let (_, mut card) = common::open_card(args)?;
            let _p = Progress::start("changing the PIN…");
            card.change_kenhojo_pin(&old, &new)
                .map_err(|e| card_failure(e, what))?;
        }
    }
    common::output(args, &PinReport { changed: what });
    Ok(())
}
