//! In-process transport for unit tests.
