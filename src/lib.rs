//! jpki-pkcs11: a PKCS#11 module for the Japanese My Number Card (JPKI application).
//!
//! Layers, each testable without the one above it:
//!
//! ```text
//! ffi        C types, pointer checks, unwinding, CK_RV mapping      (src/ffi)
//!  └ pkcs11  slots, tokens, sessions, objects, mechanisms           (src/pkcs11)
//!     └ card JPKI commands as typed Rust, status words              (src/card)
//!        └ transport  PC/SC, or in-process for unit tests           (src/transport)
//! ```
//!
//! Nothing below `ffi` knows what a C pointer is. The compiler holds two of the rules (the
//! `[lints]` table of Cargo.toml): code outside Rust's memory-safety checks is an error
//! everywhere but in `ffi` (the C boundary, whose first lines allow it), and `unwrap`, `expect`
//! and `panic!` are errors outside tests (input from a caller, the card or pcscd becomes an
//! error, never a panic). See docs/architecture.md.

// Tests may panic: a failed assertion is how they report.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod card;
mod ffi;
/// For the card-link helper program (`src/bin/jpki-pkcs11-cardlink.rs`), its first call.
#[doc(hidden)]
pub use ffi::close_inherited_descriptors;
/// For the card-link helper program: the module's `JPKI_PKCS11_LOG` logger, under its name.
#[doc(hidden)]
pub use ffi::init_log_named;
pub mod history;
pub mod notify;
pub mod pkcs11;
pub mod renewal;
pub mod transport;
