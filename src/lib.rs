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
//! Nothing below `ffi` knows what a C pointer is.

pub mod card;
mod ffi;
pub mod pkcs11;
pub mod transport;
