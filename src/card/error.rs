//! Typed errors of the card layer.
