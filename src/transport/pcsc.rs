//! PC/SC transport through pcscd.
