//! `jpki history`: the usage history the PKCS#11 module wrote on this machine (src/history).
//!
//! Reads files only: no card, no pcscd. The program comes first on each line, since a program
//! the holder does not recognise is what they look for. `--json` prints the entries as the
//! module wrote them (a JSON array). Lines that are not entries (a damaged file) are skipped
//! and counted on stderr.

use jpki_pkcs11::card::KeyKind;
use jpki_pkcs11::history::{self, store, time, Entry};
use serde_json::Value;

use super::args::Args;
use super::common::{print_json, Exit, Failure};

pub fn run(args: &Args, since: Option<&str>, key: Option<KeyKind>) -> Result<(), Failure> {
    let since = match since {
        None => None,
        Some(s) => Some(time::parse_since(s, time::now_unix()).ok_or_else(|| {
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
    if args.json {
        let v: Vec<Value> = entries
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        print_json(&Value::Array(v));
        return Ok(());
    }
    if entries.is_empty() {
        println!("No card use recorded in {}.", dir.display());
        if !jpki_pkcs11::pkcs11::config::get().history {
            println!("(The history is switched off: JPKI_PKCS11_HISTORY=off.)");
        }
        return Ok(());
    }
    for e in &entries {
        println!("{}", line(e));
    }
    Ok(())
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
