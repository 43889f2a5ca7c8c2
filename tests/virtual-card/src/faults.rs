//! Fault injection: misbehaviours armed for the next N matching APDUs.
//!
//! # Spec grammar (the `fault` control line, and [`Faults::apply_spec`])
//!
//! ```text
//! spec    = "clear" | kind [arg] option*
//! option  = "ins=" (HEX2 | "any")        match APDUs by INS byte (default: any)
//!         | "count=" N                   how many matching APDUs it affects (default 1)
//! kind    = "truncate" K                 response (data ‖ SW) cut to its first K bytes
//!         | "garbage" N                  N extra bytes (0xA5) added after the data, before SW
//!         | "trailing" N                 N extra bytes (0xA5) added after the SW
//!         | "sw" HEX4                    status word replaced (data kept)
//!         | "corrupt" N                  data byte N (the last one if N is past the end) has
//!                                        every bit flipped; the SW is kept (a wrong signature)
//!         | "61"                         answer 61xx, the data waits for GET RESPONSE 00 C0 00 00 xx
//!         | "6c"                         answer 6Cxx (xx = exact length); the retry with Le=xx works
//!         | "certlen" (+|-)N             READ BINARY at offset 0 of a certificate EF: the DER
//!                                        length field (30 82 LL LL) claims N more/fewer bytes
//!         | "delay" MS                   the answer comes MS milliseconds late
//!         | "drop"                       no answer at all: the connection is closed (= removal)
//!         | "remove-after" N             the card is removed right after answering N more
//!                                        matching APDUs (N replaces count)
//! ```
//!
//! Examples: `sw 6f00 ins=2a`, `truncate 1 ins=b0 count=3`, `61 ins=b0`, `certlen +100`,
//! `remove-after 5`, `drop ins=2a`.
//!
//! `61`, `6c`, `corrupt` and `certlen` only count an APDU they actually changed (`61`/`6c`: a
//! successful response with data, not GET RESPONSE; `corrupt`: a response with data;
//! `certlen`: a certificate read at offset 0).
//! Commands hit by `61`, `6c` or `drop` are still executed by the card (a VERIFY still counts).

use std::fmt;

/// What a fault does to one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    Truncate(usize),
    Garbage(usize),
    Trailing(usize),
    ReplaceSw(u16),
    Corrupt(usize),
    MoreData61,
    WrongLe6C,
    CertLength(i32),
    DelayMs(u64),
    Drop,
    RemoveAfter,
}

/// One armed fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmedFault {
    pub kind: FaultKind,
    /// INS to match, `None` = any APDU.
    pub ins: Option<u8>,
    /// Matching APDUs still to affect (for `RemoveAfter`: APDUs to answer before removal).
    pub remaining: u32,
}

impl fmt::Display for ArmedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultKind::Truncate(k) => write!(f, "truncate {k}")?,
            FaultKind::Garbage(n) => write!(f, "garbage {n}")?,
            FaultKind::Trailing(n) => write!(f, "trailing {n}")?,
            FaultKind::ReplaceSw(sw) => write!(f, "sw {sw:04x}")?,
            FaultKind::Corrupt(n) => write!(f, "corrupt {n}")?,
            FaultKind::MoreData61 => write!(f, "61")?,
            FaultKind::WrongLe6C => write!(f, "6c")?,
            FaultKind::CertLength(d) => write!(f, "certlen {d:+}")?,
            FaultKind::DelayMs(ms) => write!(f, "delay {ms}")?,
            FaultKind::Drop => write!(f, "drop")?,
            FaultKind::RemoveAfter => write!(f, "remove-after")?,
        }
        match self.ins {
            Some(ins) => write!(f, " ins={ins:02x}")?,
            None => write!(f, " ins=any")?,
        }
        write!(f, " count={}", self.remaining)
    }
}

/// The set of armed faults of a card.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    armed: Vec<ArmedFault>,
}

fn number<T: std::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, String> {
    let w = word.ok_or_else(|| format!("{what}: missing number"))?;
    w.parse().map_err(|_| format!("{what}: bad number {w:?}"))
}

impl Faults {
    /// Arms `kind` for the next `count` APDUs whose INS is `ins` (any APDU if `None`).
    pub fn arm(&mut self, kind: FaultKind, ins: Option<u8>, count: u32) {
        if count > 0 {
            self.armed.push(ArmedFault {
                kind,
                ins,
                remaining: count,
            });
        }
    }

    /// Disarms everything.
    pub fn clear(&mut self) {
        self.armed.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    pub fn armed(&self) -> &[ArmedFault] {
        &self.armed
    }

    pub(crate) fn armed_mut(&mut self) -> &mut Vec<ArmedFault> {
        &mut self.armed
    }

    /// Parses one spec (grammar in the module doc).
    pub fn parse_spec(spec: &str) -> Result<ArmedFault, String> {
        let mut words = spec.split_whitespace();
        let kind_word = words.next().ok_or("empty fault spec")?.to_ascii_lowercase();
        let mut count: u32 = 1;
        let mut ins: Option<u8> = None;
        let mut args: Vec<&str> = Vec::new();
        for w in words {
            if let Some(v) = w.strip_prefix("ins=") {
                ins = if v.eq_ignore_ascii_case("any") {
                    None
                } else {
                    Some(u8::from_str_radix(v, 16).map_err(|_| format!("bad ins {v:?}"))?)
                };
            } else if let Some(v) = w.strip_prefix("count=") {
                count = v.parse().map_err(|_| format!("bad count {v:?}"))?;
            } else {
                args.push(w);
            }
        }
        let mut args = args.into_iter();
        let kind = match kind_word.as_str() {
            "truncate" => FaultKind::Truncate(number(args.next(), "truncate")?),
            "garbage" => FaultKind::Garbage(number(args.next(), "garbage")?),
            "trailing" => FaultKind::Trailing(number(args.next(), "trailing")?),
            "sw" => {
                let a = args.next().ok_or("sw: missing status word")?;
                let v = u16::from_str_radix(a, 16).map_err(|_| format!("sw: bad {a:?}"))?;
                if a.len() != 4 {
                    return Err(format!("sw: need 4 hex digits, got {a:?}"));
                }
                FaultKind::ReplaceSw(v)
            }
            "corrupt" => FaultKind::Corrupt(number(args.next(), "corrupt")?),
            "61" => FaultKind::MoreData61,
            "6c" => FaultKind::WrongLe6C,
            "certlen" => FaultKind::CertLength(number(args.next(), "certlen")?),
            "delay" => FaultKind::DelayMs(number(args.next(), "delay")?),
            "drop" => FaultKind::Drop,
            "remove-after" => {
                count = number(args.next(), "remove-after")?;
                FaultKind::RemoveAfter
            }
            other => return Err(format!("unknown fault kind {other:?}")),
        };
        if let Some(extra) = args.next() {
            return Err(format!("unexpected argument {extra:?}"));
        }
        if count == 0 {
            return Err("count must be at least 1".into());
        }
        Ok(ArmedFault {
            kind,
            ins,
            remaining: count,
        })
    }

    /// Applies a control line: `clear` or a fault spec. Returns a description for the reply.
    pub fn apply_spec(&mut self, spec: &str) -> Result<String, String> {
        if spec.trim().eq_ignore_ascii_case("clear") {
            self.clear();
            return Ok("cleared".into());
        }
        let f = Self::parse_spec(spec)?;
        let text = f.to_string();
        self.armed.push(f);
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let f = Faults::parse_spec("truncate 1 ins=b0 count=3").unwrap();
        assert_eq!(f.kind, FaultKind::Truncate(1));
        assert_eq!(f.ins, Some(0xB0));
        assert_eq!(f.remaining, 3);
        assert_eq!(
            Faults::parse_spec("sw 6F00").unwrap().kind,
            FaultKind::ReplaceSw(0x6F00)
        );
        assert_eq!(
            Faults::parse_spec("corrupt 7 ins=2a").unwrap().kind,
            FaultKind::Corrupt(7)
        );
        assert_eq!(
            Faults::parse_spec("certlen -5").unwrap().kind,
            FaultKind::CertLength(-5)
        );
        assert_eq!(
            Faults::parse_spec("certlen +100").unwrap().kind,
            FaultKind::CertLength(100)
        );
        let r = Faults::parse_spec("remove-after 4 ins=any").unwrap();
        assert_eq!(
            (r.kind, r.remaining, r.ins),
            (FaultKind::RemoveAfter, 4, None)
        );
        for bad in [
            "",
            "bogus",
            "sw 6f",
            "truncate",
            "truncate x",
            "drop extra",
            "61 count=0",
        ] {
            assert!(Faults::parse_spec(bad).is_err(), "{bad}");
        }
        let mut faults = Faults::default();
        faults.apply_spec("drop ins=2a").unwrap();
        assert_eq!(faults.armed().len(), 1);
        faults.apply_spec("clear").unwrap();
        assert!(faults.is_empty());
    }
}
