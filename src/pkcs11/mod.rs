//! The PKCS#11 core: slots, tokens, sessions, objects and mechanisms, in plain Rust.
//!
//! No C pointers here: the ffi layer converts, this layer decides. Every fallible function
//! returns [`Result`] with the one [`Error`] type, which knows its `CK_RV`.

pub mod cert;
pub mod cert_cache;
pub mod cert_source;
pub mod config;
pub mod error;
pub mod hex;
pub mod live_attributes;
pub mod mechanism;
pub mod module;
pub mod object;
pub mod phone;
pub mod session;
pub mod session_objects;
pub mod token;
pub mod usage;

pub use error::{Error, Result};
pub use module::Module;

#[cfg(test)]
mod beyond_tests;
#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod tests;
