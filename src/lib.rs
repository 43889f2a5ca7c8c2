//! jpki-pkcs11: a PKCS#11 module for the Japanese My Number Card (JPKI application).
//!
//! Layers, each testable without the one above it:
//!
//! ```text
//! ffi        C types, pointer checks, unwinding, CK_RV mapping      (src/ffi)
//!  └ core    slots, tokens, sessions, objects, mechanisms           (src/core)
//!     └ card JPKI commands as typed Rust, status words              (src/card)
//!        └ transport  PC/SC, or in-process for unit tests           (src/transport)
//! ```
//!
//! Nothing below `ffi` knows what a C pointer is.

pub mod card;
pub mod core;
mod ffi;
pub mod history;
pub mod notify;
pub mod renewal;
pub mod transport;
