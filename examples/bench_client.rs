//! Benchmark client of `tests/bench/run.sh`: drives any PKCS#11 module through the same call
//! sequences, so that ours and OpenSC's are measured on identical work.
//!
//! ```text
//! bench_client startup MODULE                          # Firefox-like start-up (sequence a)
//! bench_client sign MODULE TOKEN PIN COUNT            # login + COUNT signatures (c, d, e)
//! ```
//!
//! `TOKEN` is 0 for the first token (authentication key with both modules), 1 for the second
//! (signature key). Results are printed as `RESULT name key=value …` lines. When the harness's
//! card control socket is known (`JPKI_TEST_CONTROL`), per-signature card traffic is read from
//! the virtual card's `stats` between calls (outside the timed intervals).
//!
//! Each sequence is what a real client does; the `startup` one follows NSS's discovery
//! (docs/client-behaviour.md, "NSS"): `C_Initialize`, `C_GetInfo`, `C_GetSlotList(FALSE)`, per slot
//! `C_GetSlotInfo`, and for a present token `C_GetTokenInfo`, `C_GetMechanismList`,
//! `C_OpenSession`, a search for every object and a read of the attributes NSS reads, then
//! `C_Finalize`.

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

/// Card traffic so far, from the virtual card's control socket (`None` outside the harness).
#[derive(Clone, Copy, Default)]
struct Traffic {
    apdus: u64,
    command_bytes: u64,
    response_bytes: u64,
}

fn json_number(json: &str, key: &str) -> Option<u64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn traffic() -> Option<Traffic> {
    let path = std::env::var_os("JPKI_TEST_CONTROL")?;
    let mut stream = UnixStream::connect(path).ok()?;
    stream.write_all(b"stats\n").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(Traffic {
        apdus: json_number(&line, "apdus")?,
        command_bytes: json_number(&line, "command_bytes")?,
        response_bytes: json_number(&line, "response_bytes")?,
    })
}

fn report(name: &str, before: Option<Traffic>, after: Option<Traffic>, ms: f64) {
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "RESULT {name} apdus={} cmd_bytes={} resp_bytes={} ms={ms:.1}",
            a.apdus - b.apdus,
            a.command_bytes - b.command_bytes,
            a.response_bytes - b.response_bytes
        ),
        _ => println!("RESULT {name} ms={ms:.1}"),
    }
}

/// Resident set size of this process in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn load(module: &str) -> Res<Pkcs11> {
    Ok(Pkcs11::new(module)?)
}

fn init_args() -> CInitializeArgs {
    CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)
}

/// Sequence (a): what a browser does when it loads the module.
fn startup(module: &str) -> Res<()> {
    let rss_before = rss_kib();
    let pkcs11 = load(module)?;
    let t = Instant::now();
    pkcs11.initialize(init_args())?;
    let init_ms = ms_since(t);
    pkcs11.get_library_info()?;
    let mut objects = 0usize;
    let mut attr_errors = 0usize;
    for slot in pkcs11.get_all_slots()? {
        let info = pkcs11.get_slot_info(slot)?;
        if !info.token_present() {
            continue;
        }
        pkcs11.get_token_info(slot)?;
        pkcs11.get_mechanism_list(slot)?;
        let session = pkcs11.open_ro_session(slot)?;
        for object in session.find_objects(&[])? {
            objects += 1;
            let class = session.get_attributes(object, &[AttributeType::Class])?;
            let class = class.iter().find_map(|a| match a {
                Attribute::Class(c) => Some(*c),
                _ => None,
            });
            let mut wanted = vec![
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Label,
                AttributeType::Id,
            ];
            match class {
                Some(ObjectClass::CERTIFICATE) => wanted.extend([
                    AttributeType::CertificateType,
                    AttributeType::Value,
                    AttributeType::Issuer,
                    AttributeType::SerialNumber,
                    AttributeType::Subject,
                ]),
                Some(ObjectClass::PUBLIC_KEY | ObjectClass::PRIVATE_KEY) => wanted.extend([
                    AttributeType::KeyType,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                ]),
                _ => {}
            }
            // A module may refuse an attribute (OpenSC answers CKR_GENERAL_ERROR for the
            // signature certificate's value before login): a browser goes on, so do we.
            if let Err(e) = session.get_attributes(object, &wanted) {
                eprintln!("bench_client: attributes of object {object}: {e}");
                attr_errors += 1;
            }
        }
    }
    let rss_after = rss_kib();
    pkcs11.finalize()?;
    println!(
        "RESULT startup_detail init_ms={init_ms:.2} rss_kib={rss_after} rss_delta_kib={} \
         objects={objects} attribute_errors={attr_errors}",
        rss_after.saturating_sub(rss_before)
    );
    Ok(())
}

/// A SHA-256 DigestInfo, what a TLS 1.2 client hands to `CKM_RSA_PKCS`.
fn digest_info(n: usize) -> Vec<u8> {
    let mut di = vec![
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    di.extend((0..32).map(|i| (i as u8).wrapping_mul(7).wrapping_add(n as u8)));
    di
}

/// Sequences (c), (d), (e): login on token `token` and sign `count` times in one session.
/// Run under `valgrind --tool=callgrind --toggle-collect=C_Sign` to count the instructions
/// of the `C_Sign` calls alone.
fn sign(module: &str, token: usize, pin: &str, count: usize) -> Res<()> {
    let pkcs11 = load(module)?;
    pkcs11.initialize(init_args())?;
    let slots = pkcs11.get_slots_with_token()?;
    let slot = *slots.get(token).ok_or("no such token")?;
    pkcs11.get_token_info(slot)?;
    let session = pkcs11.open_ro_session(slot)?;
    let t = Instant::now();
    let before = traffic();
    session.login(UserType::User, Some(&AuthPin::new(pin.into())))?;
    report("login", before, traffic(), ms_since(t));
    let key = *session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?
        .first()
        .ok_or("no private key")?;
    for i in 1..=count {
        let data = digest_info(i);
        let before = traffic();
        let t = Instant::now();
        let signature = session.sign(&Mechanism::RsaPkcs, key, &data)?;
        let ms = ms_since(t);
        let after = traffic();
        if signature.len() != 256 {
            return Err("signature of wrong length".into());
        }
        if i == 1 || i == 2 || i == count {
            report(&format!("sign{i}"), before, after, ms);
        }
    }
    drop(session);
    pkcs11.finalize()?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["startup", module] => startup(module),
        ["sign", module, token, pin, count] => match (token.parse(), count.parse()) {
            (Ok(token), Ok(count)) if count > 0 => sign(module, token, pin, count),
            _ => Err("TOKEN and COUNT are numbers, COUNT > 0".into()),
        },
        _ => Err("usage: bench_client startup MODULE | sign MODULE TOKEN PIN COUNT".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_client: {e}");
            ExitCode::FAILURE
        }
    }
}
