//! Just enough of the D-Bus wire protocol to call one method on the session bus: connect
//! (`unix:path=` or `unix:abstract=`), authenticate (SASL EXTERNAL: the bus knows our uid
//! from the socket), `Hello`, then `org.freedesktop.Notifications.Notify`. No reply is read
//! beyond waiting for the bus to finish with us, so nothing here can block for longer than
//! the socket timeouts.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Longest wait for the bus at any step.
pub const TIMEOUT: Duration = Duration::from_millis(1500);

/// The first usable `unix:` address of a D-Bus address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Path(Vec<u8>),
    Abstract(Vec<u8>),
}

fn unescape(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Parses `DBUS_SESSION_BUS_ADDRESS`.
pub fn parse_address(list: &str) -> Option<Address> {
    for addr in list.split(';') {
        let Some(params) = addr.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            match kv.split_once('=') {
                Some(("path", v)) => return unescape(v).map(Address::Path),
                Some(("abstract", v)) => return unescape(v).map(Address::Abstract),
                _ => {}
            }
        }
    }
    None
}

fn connect(addr: &Address) -> io::Result<UnixStream> {
    match addr {
        Address::Path(p) => {
            use std::os::unix::ffi::OsStrExt;
            UnixStream::connect(std::ffi::OsStr::from_bytes(p))
        }
        Address::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            UnixStream::connect_addr(&a)
        }
    }
}

/// A little-endian D-Bus message body or header under construction.
#[derive(Default)]
struct Buf(Vec<u8>);

impl Buf {
    fn pad(&mut self, align: usize) {
        while self.0.len() % align != 0 {
            self.0.push(0);
        }
    }
    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.pad(4);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn signature(&mut self, s: &str) {
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    /// An empty array whose elements align to `align`.
    fn empty_array(&mut self, align: usize) {
        self.u32(0);
        self.pad(align);
    }
}

/// A method call with `body` of signature `sig`.
fn method_call(
    serial: u32,
    dest: &str,
    path: &str,
    iface: &str,
    member: &str,
    sig: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut fields = Buf::default();
    let mut field = |code: u8, ty: &str, value: &str| {
        fields.pad(8);
        fields.byte(code);
        fields.signature(ty);
        if ty == "g" {
            fields.signature(value);
        } else {
            fields.string(value);
        }
    };
    field(1, "o", path);
    field(2, "s", iface);
    field(3, "s", member);
    field(6, "s", dest);
    if !sig.is_empty() {
        field(8, "g", sig);
    }
    let mut m = Buf(vec![b'l', 1, 0, 1]);
    m.u32(body.len() as u32);
    m.u32(serial);
    m.u32(fields.0.len() as u32);
    m.0.extend_from_slice(&fields.0);
    m.pad(8);
    m.0.extend_from_slice(body);
    m.0
}

/// The body of `Notify(app_name, replaces_id, app_icon, summary, body, actions, hints,
/// expire_timeout)`.
fn notify_body(app: &str, icon: &str, summary: &str, text: &str) -> Vec<u8> {
    let mut b = Buf::default();
    b.string(app);
    b.u32(0);
    b.string(icon);
    b.string(summary);
    b.string(text);
    b.empty_array(4); // actions: as
    b.empty_array(8); // hints: a{sv}
    b.i32(-1);
    b.0
}

/// Sends one desktop notification on the bus at `addr`.
pub fn notify(addr: &Address, app: &str, icon: &str, summary: &str, text: &str) -> io::Result<()> {
    let mut s = connect(addr)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.write_all(b"\0AUTH EXTERNAL\r\n")?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line.starts_with("DATA") {
        s.write_all(b"DATA\r\n")?;
        line.clear();
        r.read_line(&mut line)?;
    }
    if !line.starts_with("OK ") {
        return Err(io::Error::other(format!(
            "bus refused authentication: {}",
            line.trim_end()
        )));
    }
    s.write_all(b"BEGIN\r\n")?;
    let bus = "org.freedesktop.DBus";
    let mut out = method_call(1, bus, "/org/freedesktop/DBus", bus, "Hello", "", &[]);
    let n = "org.freedesktop.Notifications";
    out.extend(method_call(
        2,
        n,
        "/org/freedesktop/Notifications",
        n,
        "Notify",
        "susssasa{sv}i",
        &notify_body(app, icon, summary, text),
    ));
    s.write_all(&out)?;
    // Half-close and drain until the bus hangs up: it has then read (and routed) both calls.
    s.shutdown(std::net::Shutdown::Write)?;
    let mut sink = [0u8; 4096];
    loop {
        match r.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("unix:path=/run/user/1000/bus"),
            Some(Address::Path(b"/run/user/1000/bus".to_vec()))
        );
        assert_eq!(
            parse_address("tcp:host=x,port=1;unix:abstract=/tmp/dbus-X%2cY,guid=00"),
            Some(Address::Abstract(b"/tmp/dbus-X,Y".to_vec()))
        );
        assert_eq!(parse_address("tcp:host=x,port=1"), None);
        assert_eq!(parse_address("unix:path=%zz"), None);
        assert_eq!(parse_address(""), None);
    }

    #[test]
    fn notify_message_layout() {
        let body = notify_body("a", "", "s", "b");
        // "a": len 1 + 'a' + NUL = 6 → u32 0 at 8; "" at 12 (5 bytes) → "s" at 20 → "b" at 28;
        // actions len at 36, hints len at 40 (then pad to 48), expire -1 at 48.
        assert_eq!(&body[8..12], &0u32.to_le_bytes());
        assert_eq!(&body[36..40], &0u32.to_le_bytes());
        assert_eq!(&body[40..44], &0u32.to_le_bytes());
        assert_eq!(&body[48..52], &(-1i32).to_le_bytes());
        assert_eq!(body.len(), 52);
        let m = method_call(7, "d", "/p", "i", "m", "s", &[1, 0, 0, 0, b'x', 0]);
        assert_eq!(&m[..4], &[b'l', 1, 0, 1]);
        assert_eq!(&m[4..8], &6u32.to_le_bytes());
        assert_eq!(&m[8..12], &7u32.to_le_bytes());
        assert_eq!(m.len() % 8, 6, "header padded to 8, then the 6-byte body");
    }
}
