//! Command and response APDUs (short form only: jpki-card.md §1.2 [C]).
