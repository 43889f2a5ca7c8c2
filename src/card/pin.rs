//! PINs, parsed and validated before any try is spent (jpki-card.md §5).
