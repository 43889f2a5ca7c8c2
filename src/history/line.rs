//! One history entry as the JSON line the module appends.
//!
//! Written by hand so that the module (loaded into every browser) carries no JSON library: the
//! shape is fixed and flat (strings, small integers, one enum), and the only care needed is
//! string escaping. The field names and the `snake_case` event names are the ones the `serde`
//! feature derives for [`Entry`], which `jpki history` reads back; the tests below parse each
//! line with a real JSON parser to hold the two together.

use std::fmt::Write;

use super::{Entry, Event};

impl Event {
    /// The event's name in the file (`serde(rename_all = "snake_case")`).
    pub fn json_name(self) -> &'static str {
        match self {
            Event::Sign => "sign",
            Event::PinVerify => "pin_verify",
            Event::PinChange => "pin_change",
            Event::ReadSignCertificate => "read_sign_certificate",
        }
    }
}

impl Entry {
    /// The entry as one line of JSON (no newline); fields that are `None` are left out.
    pub fn to_json_line(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push('{');
        string_field(&mut out, "time", &self.time);
        string_field(&mut out, "program", &self.program);
        let _ = write!(out, "\"pid\":{},", self.pid);
        string_field(&mut out, "token", &self.token);
        string_field(&mut out, "serial", &self.serial);
        string_field(&mut out, "key", &self.key);
        string_field(&mut out, "event", self.event.json_name());
        if let Some(m) = &self.mechanism {
            string_field(&mut out, "mechanism", m);
        }
        string_field(&mut out, "result", &self.result);
        if let Some(t) = self.tries_left {
            let _ = write!(out, "\"tries_left\":{t},");
        }
        if let Some(h) = &self.data_sha256 {
            string_field(&mut out, "data_sha256", h);
        }
        out.pop(); // the last field's comma
        out.push('}');
        out
    }
}

fn string_field(out: &mut String, name: &str, value: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
    quoted(out, value);
    out.push(',');
}

/// A JSON string (RFC 8259 §7): quote, backslash and control characters escaped.
fn quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            time: "2026-12-03T08:00:00Z".into(),
            program: "/opt/odd \"name\"\\dir/\u{1}prog\n名前".into(),
            pid: 4242,
            token: "JPKI Sign 1A2B3C4D".into(),
            serial: "1A2B3C4D".into(),
            key: "sign".into(),
            event: Event::Sign,
            mechanism: Some("CKM_SHA256_RSA_PKCS".into()),
            result: "ok".into(),
            tries_left: Some(3),
            data_sha256: Some("ab".repeat(32)),
        }
    }

    #[test]
    fn a_line_is_json_with_every_field_as_written() {
        let e = entry();
        let line = e.to_json_line();
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["program"], e.program.as_str());
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["event"], "sign");
        assert_eq!(v["mechanism"], "CKM_SHA256_RSA_PKCS");
        assert_eq!(v["tries_left"], 3);
        assert_eq!(v["data_sha256"], "ab".repeat(32).as_str());
        assert_eq!(v.as_object().map(|o| o.len()), Some(11));
    }

    #[test]
    fn absent_fields_are_left_out_and_events_are_snake_case() {
        let mut e = entry();
        e.mechanism = None;
        e.tries_left = None;
        e.data_sha256 = None;
        for (event, name) in [
            (Event::Sign, "sign"),
            (Event::PinVerify, "pin_verify"),
            (Event::PinChange, "pin_change"),
            (Event::ReadSignCertificate, "read_sign_certificate"),
        ] {
            e.event = event;
            let v: serde_json::Value = serde_json::from_str(&e.to_json_line()).expect("JSON");
            assert_eq!(v["event"], name);
            let o = v.as_object().expect("object");
            assert!(!o.contains_key("mechanism") && !o.contains_key("tries_left"));
            assert!(!o.contains_key("data_sha256"));
            assert_eq!(o.len(), 8);
        }
    }

    /// What `jpki history` reads with the `serde` feature is exactly what was written.
    #[cfg(feature = "serde")]
    #[test]
    fn serde_reads_back_the_entry() {
        let e = entry();
        let back: Entry = serde_json::from_str(&e.to_json_line()).expect("Entry");
        assert_eq!(back, e);
        assert_eq!(serde_json::to_string(&e).ok(), Some(e.to_json_line()));
    }
}
