//! Renewal reminders: how a certificate's remaining validity is judged, and the advice given.
//!
//! The card's own certificates (authentication, signature) are valid five years (for a holder
//! under 18 at issuance, until the fifth birthday after it). Renewal at the city office
//! (市区町村窓口) opens three months before expiry, which is where the warning starts. An
//! expired certificate no longer logs in or signs anywhere that checks validity, but the
//! module never refuses to use it: a signer may need it (e.g. to reproduce an old signature
//! format), and the card decides, not us. Used by the module (one log warning per process and
//! key, [`warn_once`]) and by `jpki status` / `jpki doctor`.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::card::KeyKind;

/// Days before expiry from which renewal is possible and the warning is given (three months).
pub const WINDOW_DAYS: i64 = 90;

/// Where a certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// More than [`WINDOW_DAYS`] left.
    Valid { days_left: i64 },
    /// Inside the renewal window: renew now.
    RenewalOpen { days_left: i64 },
    /// Past its end.
    Expired { days_ago: i64 },
}

impl Validity {
    /// From the end of validity and now, both in Unix seconds. `days_left` counts whole days
    /// (0 on the last day).
    pub fn of(not_after_unix: i64, now_unix: i64) -> Validity {
        if now_unix > not_after_unix {
            return Validity::Expired {
                days_ago: (now_unix - not_after_unix).div_euclid(86_400),
            };
        }
        let days_left = (not_after_unix - now_unix).div_euclid(86_400);
        if days_left <= WINDOW_DAYS {
            Validity::RenewalOpen { days_left }
        } else {
            Validity::Valid { days_left }
        }
    }

    /// `valid`, `renewal_open` or `expired` (JSON).
    pub fn state(self) -> &'static str {
        match self {
            Validity::Valid { .. } => "valid",
            Validity::RenewalOpen { .. } => "renewal_open",
            Validity::Expired { .. } => "expired",
        }
    }

    /// What the holder should do, or `None` while nothing is due.
    pub fn advice(self) -> Option<String> {
        match self {
            Validity::Valid { .. } => None,
            Validity::RenewalOpen { days_left } => Some(format!(
                "expires in {days_left} day(s): renewal is open — renew it at your city office \
                 (市区町村窓口) with the card, before it expires"
            )),
            Validity::Expired { days_ago } => Some(format!(
                "expired {days_ago} day(s) ago: it no longer logs in or signs where validity is \
                 checked — apply for new certificates at your city office (市区町村窓口) with \
                 the card and photo ID (if the card itself has expired, apply for a new card)"
            )),
        }
    }
}

/// `CK_DATE`-style `YYYYMMDD` (ASCII) to Unix seconds at the end of that day (UTC).
pub fn end_of_ck_date(d: &[u8; 8]) -> Option<i64> {
    if !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let s = std::str::from_utf8(d).ok()?;
    let date = format!("{}-{}-{}", &s[0..4], &s[4..6], &s[6..8]);
    crate::history::time::parse_rfc3339(&date).map(|t| t + 86_399)
}

/// Logs a warning, once per process and key, when the certificate of `kind` is expired or in
/// its renewal window. Nothing about the certificate but its remaining validity is logged.
pub fn warn_once(kind: KeyKind, not_after: Option<&[u8; 8]>) {
    static WARNED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
    let Some(end) = not_after.and_then(end_of_ck_date) else {
        return;
    };
    let v = Validity::of(end, crate::history::time::now_unix());
    let Some(advice) = v.advice() else { return };
    let (i, name) = match kind {
        KeyKind::Authentication => (0, "authentication"),
        KeyKind::Signature => (1, "signature"),
    };
    if !WARNED[i].swap(true, Ordering::Relaxed) {
        log::warn!("the card's {name} certificate {advice}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn window_and_expiry() {
        let end = 2_000_000_000;
        assert_eq!(Validity::of(end, end - 4 * 365 * DAY).state(), "valid");
        assert_eq!(
            Validity::of(end, end - 91 * DAY),
            Validity::Valid { days_left: 91 }
        );
        assert_eq!(
            Validity::of(end, end - 90 * DAY),
            Validity::RenewalOpen { days_left: 90 }
        );
        assert_eq!(
            Validity::of(end, end - 30 * DAY - 5),
            Validity::RenewalOpen { days_left: 30 }
        );
        assert_eq!(
            Validity::of(end, end),
            Validity::RenewalOpen { days_left: 0 }
        );
        assert_eq!(
            Validity::of(end, end + 1),
            Validity::Expired { days_ago: 0 }
        );
        assert_eq!(
            Validity::of(end, end + 3 * DAY),
            Validity::Expired { days_ago: 3 }
        );
        assert!(Validity::of(end, end - 4 * 365 * DAY).advice().is_none());
        assert!(Validity::of(end, end + DAY)
            .advice()
            .is_some_and(|a| a.contains("city office")));
    }

    #[test]
    fn ck_dates() {
        assert_eq!(end_of_ck_date(b"19700101"), Some(86_399));
        assert_eq!(end_of_ck_date(b"1970x101"), None);
        assert_eq!(
            end_of_ck_date(&[b'1', 0xC3, 0xA9, b'0', b'0', b'1', b'0', b'1']),
            None
        );
    }
}
