//! The short-file-identifier (SFI) forms: what a card has shown of them, and the answers by
//! which a card refuses a form without acting on it. How they are detected:
//! docs/card-layer.md, "Short file identifiers".

use crate::card::apdu::StatusWord;

/// Whether a card accepts one command form, as learnt from its answers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Not tried yet.
    #[default]
    Unknown,
    /// The card accepted it.
    Yes,
    /// The card refused it: use the classic form.
    No,
}

/// What is known of the SFI forms of READ BINARY, VERIFY and COMPUTE DIGITAL SIGNATURE.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SfiSupport {
    pub read: Support,
    pub verify: Support,
    pub sign: Support,
}

/// The short file identifier of a JPKI EF: P1/P2 = 80 | SFI. Every JPKI EF is in 0001–001E.
pub(super) fn sfi_p(fid: u16) -> Option<u8> {
    u8::try_from(fid)
        .ok()
        .filter(|f| (1..=0x1E).contains(f))
        .map(|f| 0x80 | f)
}

/// Answers by which a card refuses a command form (parameters or instruction), before acting
/// on it: nothing was read, compared or signed.
pub(super) fn refuses_form(sw: StatusWord) -> bool {
    matches!(
        sw.0,
        0x6A86 // incorrect P1-P2
            | 0x6A81 // function not supported
            | 0x6A88 // referenced data not found
            | 0x6B00 // wrong parameters
            | 0x6D00 // instruction not supported
            | 0x6E00 // class not supported
            | 0x6700 // wrong length
            | 0x6981 // command incompatible with file structure
            | 0x6985 // conditions of use not satisfied
            | 0x6986 // command not allowed (no current EF)
    )
}
