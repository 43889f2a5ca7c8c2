//! A virtual My Number Card (JPKI AP), faithful to shared/docs/jpki-card.md.
