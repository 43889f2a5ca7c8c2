//! `jpki history`: the usage history the PKCS#11 module wrote on this machine
//! (`jpki_pkcs11::history`).
//!
//! Reads files only: no card, no pcscd. The program comes first on each line, since a program
//! the holder does not recognise is what they look for. `--json` prints the entries as the
//! module wrote them (a JSON array). Lines that are not entries (a damaged file) are skipped
//! and counted on stderr.

use jpki_pkcs11::card::KeyKind;
use jpki_pkcs11::history::{self, store, time, Entry};
use serde::Serialize;

use super::args::Args;
use super::common::{self, Exit, Failure, Report};

/// What `jpki history` prints: the entries (`--json`: the array as written).
#[derive(Serialize)]
#[serde(transparent)]
struct HistoryReport {
    entries: Vec<Entry>,
    #[serde(skip)]
    dir: String,
}

/// `--since`: a UTC date or time (`2026-01-31`, `2026-01-31T09:00`), or a span back from
/// `now`: `30m`, `12h`, `7d`, `2w`.
fn parse_since(s: &str, now: i64) -> Option<i64> {
    if let Some(t) = time::parse_rfc3339(s) {
        return Some(t);
    }
    let unit = s.chars().last()?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let secs = match unit {
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    Some(now - n.checked_mul(secs)?)
}

pub fn run(args: &Args, since: Option<&str>, key: Option<KeyKind>) -> Result<(), Failure> {
    let since = match since {
        None => None,
        Some(s) => Some(parse_since(s, time::now_unix()).ok_or_else(|| {
            Failure::new(Exit::Usage, format!("--since {s:?}: not a date or a span"))
                .hint("e.g. 2026-01-31, 2026-01-31T09:00 (UTC), 30m, 12h, 7d, 2w")
        })?),
    };
    let dir = history::dir()
        .ok_or_else(|| Failure::new(Exit::Error, "neither XDG_STATE_HOME nor HOME is set"))?;
    let lines = store::read_lines(&dir).map_err(|e| {
        Failure::new(
            Exit::Error,
            format!("cannot read the history in {}: {e}", dir.display()),
        )
    })?;
    let mut damaged = 0usize;
    let entries: Vec<Entry> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str::<Entry>(l) {
            Ok(e) => Some(e),
            Err(_) => {
                damaged += 1;
                None
            }
        })
        .filter(|e| key.map_or(true, |k| e.key == history::key_name(k)))
        .filter(|e| {
            since.map_or(true, |s| {
                time::parse_rfc3339(&e.time).map_or(true, |t| t >= s)
            })
        })
        .collect();
    if damaged > 0 {
        eprintln!("jpki: {damaged} unreadable line(s) in the history skipped");
    }
    common::output(
        args,
        &HistoryReport {
            entries,
            dir: dir.display().to_string(),
        },
    );
    Ok(())
}

impl Report for HistoryReport {
    fn human(&self) {
        if self.entries.is_empty() {
            println!("No card use recorded in {}.", self.dir);
            if !jpki_pkcs11::pkcs11::config::get().history() {
                println!("(The history is switched off: JPKI_PKCS11_HISTORY=off.)");
            }
        }
        for e in &self.entries {
            println!("{}", line(e));
        }
    }
}

/// One entry for people: program and pid, time, token and key, what, result.
fn line(e: &Entry) -> String {
    let program = if e.program.is_empty() {
        "(unknown program)"
    } else {
        &e.program
    };
    let mut s = format!(
        "{program} [pid {}]  {}  {} ({})  {}",
        e.pid,
        e.time,
        e.token,
        e.key,
        e.event.name()
    );
    if let Some(m) = &e.mechanism {
        s.push_str(&format!(" {m}"));
    }
    s.push_str(&format!("  {}", e.result));
    if let Some(t) = e.tries_left {
        s.push_str(&format!(" (tries left {t})"));
    }
    if let Some(h) = &e.data_sha256 {
        s.push_str(&format!("  data sha256 {h}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("2d", 1_000_000), Some(1_000_000 - 172_800));
        assert_eq!(parse_since("90m", 10_000), Some(10_000 - 5400));
        assert_eq!(parse_since("2000-02-29", 0), Some(951_782_400));
        for bad in [
            "",
            "d",
            "x7d",
            "7y",
            "2026-13-01",
            "2026-01-01T25:00",
            "-1d",
        ] {
            assert_eq!(parse_since(bad, 0), None, "{bad}");
        }
    }
}
