//! A fake vpcd driver on loopback for the tests that run the card binary: the listening side
//! vpcd plays, the length-prefixed framing, and the control-socket client.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use jpki_virtual_card::apdu::unhex;

pub const BIN: &str = env!("CARGO_BIN_EXE_jpki-virtual-card");

pub struct Driver {
    pub listener: TcpListener,
}

impl Driver {
    pub fn new() -> Driver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Driver { listener }
    }
    pub fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }
    /// Waits for the card to "insert" (connect).
    pub fn accept(&self) -> TcpStream {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    return s;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("card did not connect: {e}"),
            }
        }
    }
}

pub fn send(s: &mut TcpStream, payload: &[u8]) {
    let mut m = (payload.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(payload);
    s.write_all(&m).unwrap();
}

pub fn recv(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    let mut p = vec![0u8; usize::from(u16::from_be_bytes(h))];
    s.read_exact(&mut p).ok()?;
    Some(p)
}

pub fn apdu(s: &mut TcpStream, hex: &str) -> Vec<u8> {
    send(s, &unhex(hex).unwrap());
    recv(s).expect("response")
}

pub fn ctl(sock: &Path, cmd: &str) -> String {
    let out = Command::new(BIN)
        .args(["ctl", "--control"])
        .arg(sock)
        .args(cmd.split(' '))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub struct Card {
    pub child: Child,
}

impl Drop for Card {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
