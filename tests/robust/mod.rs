//! Helpers shared by the robustness tests that run the core through pcscd inside
//! `tests/harness/with-card.sh` (faults, environment, concurrency).
//!
//! They drive `jpki_pkcs11::pkcs11::Module` directly (the layer under the C functions, same
//! behaviour, same `CK_RV`s through [`Error::rv`]) over the real PC/SC transport, and the
//! virtual card through its control socket.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use der::{Decode, Encode};
use jpki_pkcs11::pkcs11::object::{ulong, AttrLookup};
use jpki_pkcs11::pkcs11::{Error, Module};
use jpki_pkcs11::transport::pcsc::PcscReaders;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

pub const AUTH_PIN: &[u8] = b"1234";
pub const SIGN_PIN: &[u8] = b"ABC123";

struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        eprintln!("[{}] {}", record.level(), record.args());
    }
    fn flush(&self) {}
}

/// Whether the harness is around; prints why a test does nothing otherwise. With
/// `JPKI_TEST_LOG=debug` (or another level) the module's log goes to stderr.
pub fn enabled() -> bool {
    if let Ok(level) = std::env::var("JPKI_TEST_LOG") {
        static LOGGER: StderrLog = StderrLog;
        if log::set_logger(&LOGGER).is_ok() {
            log::set_max_level(level.parse().unwrap_or(log::LevelFilter::Debug));
        }
    }
    if std::env::var("JPKI_PCSC_TEST").as_deref() == Ok("1") {
        return true;
    }
    println!("skipped: run inside tests/harness/with-card.sh (JPKI_PCSC_TEST=1)");
    false
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set (run inside the harness)"))
}

/// Environment variable of card `i` (card 0 without suffix).
fn card_env(name: &str, i: usize) -> String {
    if i == 0 {
        env(name)
    } else {
        env(&format!("{name}_{i}"))
    }
}

/// Sends a control line to card `i`; returns the reply (`ok …` / `err …`).
pub fn ctl(i: usize, line: &str) -> String {
    let out = Command::new(env("JPKI_TEST_CARD_BIN"))
        .args(["ctl", "--control", &card_env("JPKI_TEST_CONTROL", i)])
        .args(line.split_whitespace())
        .output()
        .expect("run the card's ctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Like [`ctl`], and the reply must be `ok`.
pub fn ctl_ok(i: usize, line: &str) {
    let reply = ctl(i, line);
    assert!(reply.starts_with("ok"), "ctl {line:?}: {reply}");
}

/// One counter of card `i`'s `stats` (JSON, flat numbers).
pub fn stat(i: usize, key: &str) -> u64 {
    let reply = ctl(i, "stats");
    let pattern = format!("\"{key}\":");
    let at = reply
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {key} in {reply}"));
    reply[at + pattern.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("bad {key} in {reply}"))
}

/// The true certificates of card `i` (auth, auth CA, sign, sign CA), from its state file.
pub fn true_certificates(i: usize) -> Vec<Vec<u8>> {
    let path = PathBuf::from(card_env("JPKI_TEST_STATE", i));
    let state = jpki_virtual_card::CardState::load(&path).expect("card state");
    vec![
        state.auth_certificate().to_vec(),
        state.auth_ca_certificate().to_vec(),
        state.sign_certificate().to_vec(),
        state.sign_ca_certificate().to_vec(),
    ]
}

/// The number of cards of this harness run.
pub fn cards() -> usize {
    std::env::var("JPKI_TEST_CARDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Every card inserted, without armed faults (whatever an earlier test left behind).
pub fn fresh_start() {
    for i in 0..cards() {
        ctl_ok(i, "fault clear");
        ctl_ok(i, "insert");
    }
}

/// A module over pcscd (a fresh PC/SC connection to each card).
pub fn module() -> Module {
    Module::new(Box::new(PcscReaders::new()))
}

/// Waits up to `limit` for `f` to hold.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The (auth, sign) slots of the first reader holding a token, waiting up to 10 s for one.
pub fn token_slots(m: &Module) -> (CK_SLOT_ID, CK_SLOT_ID) {
    let mut slots = Vec::new();
    wait_until(Duration::from_secs(10), || {
        slots = m.slot_list(true);
        !slots.is_empty()
    });
    let auth = *slots.first().expect("a slot with a token");
    assert_eq!(auth % 2, 0, "auth tokens have even slot ids: {slots:?}");
    (auth, auth + 1)
}

pub fn open(m: &Module, slot: CK_SLOT_ID) -> Result<CK_SESSION_HANDLE, Error> {
    m.open_session(slot, CKF_SERIAL_SESSION)
}

/// Objects of a class (every object with `None`).
pub fn find(
    m: &Module,
    h: CK_SESSION_HANDLE,
    class: Option<CK_OBJECT_CLASS>,
) -> Result<Vec<CK_OBJECT_HANDLE>, Error> {
    let template: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)> =
        class.map(|c| (CKA_CLASS, ulong(c))).into_iter().collect();
    m.find_init(h, &template)?;
    let found = m.find_next(h, 1000);
    m.find_final(h)?;
    found
}

/// An attribute value, if the object has it and it is readable.
pub fn attr(
    m: &Module,
    h: CK_SESSION_HANDLE,
    o: CK_OBJECT_HANDLE,
    ty: CK_ATTRIBUTE_TYPE,
) -> Option<Vec<u8>> {
    let object = m.object(h, o).ok()?;
    match object.attribute(ty) {
        AttrLookup::Value(v) => Some(v.to_vec()),
        _ => None,
    }
}

/// Every certificate a session sees must be one of the card's true certificates.
pub fn certificates_are_true(m: &Module, h: CK_SESSION_HANDLE, truth: &[Vec<u8>]) -> bool {
    let Ok(certs) = find(m, h, Some(CKO_CERTIFICATE)) else {
        return true;
    };
    certs.iter().all(|c| match attr(m, h, *c, CKA_VALUE) {
        Some(v) => truth.contains(&v),
        None => false,
    })
}

/// The user certificate (CKA_CERTIFICATE_CATEGORY = token user) of a session's token.
pub fn user_certificate(m: &Module, h: CK_SESSION_HANDLE) -> Option<Vec<u8>> {
    find(m, h, Some(CKO_CERTIFICATE))
        .ok()?
        .into_iter()
        .find(|c| attr(m, h, *c, CKA_CERTIFICATE_CATEGORY) == Some(ulong(1)))
        .and_then(|c| attr(m, h, c, CKA_VALUE))
}

/// The private key of a session's token (visible after login).
pub fn private_key(m: &Module, h: CK_SESSION_HANDLE) -> Result<CK_OBJECT_HANDLE, Error> {
    find(m, h, Some(CKO_PRIVATE_KEY))?
        .first()
        .copied()
        .ok_or(Error::KeyHandleInvalid)
}

/// C_SignInit(CKM_SHA256_RSA_PKCS) + C_Sign.
pub fn sign(
    m: &Module,
    h: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    message: &[u8],
) -> Result<Vec<u8>, Error> {
    m.sign_init(h, CKM_SHA256_RSA_PKCS, key)?;
    m.sign(h, message)
}

/// Whether `signature` is a valid SHA-256 PKCS#1 v1.5 signature of `message` by the key of
/// `cert_der` (checked here, independently of the module's own check).
pub fn verifies(cert_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(cert) = x509_cert::Certificate::from_der(cert_der) else {
        return false;
    };
    let Ok(spki) = cert.tbs_certificate.subject_public_key_info.to_der() else {
        return false;
    };
    let Ok(key) = RsaPublicKey::from_public_key_der(&spki) else {
        return false;
    };
    key.verify(
        Pkcs1v15Sign::new::<Sha256>(),
        &Sha256::digest(message),
        signature,
    )
    .is_ok()
}

/// The `CK_RV` of a result (CKR_OK for `Ok`).
pub fn rv<T>(r: &Result<T, Error>) -> CK_RV {
    match r {
        Ok(_) => CKR_OK,
        Err(e) => e.rv(),
    }
}

/// A readable name for the usual return values.
pub fn rv_name(rv: CK_RV) -> String {
    let name = match rv {
        CKR_OK => "CKR_OK",
        CKR_DEVICE_ERROR => "CKR_DEVICE_ERROR",
        CKR_DEVICE_REMOVED => "CKR_DEVICE_REMOVED",
        CKR_TOKEN_NOT_PRESENT => "CKR_TOKEN_NOT_PRESENT",
        CKR_SESSION_HANDLE_INVALID => "CKR_SESSION_HANDLE_INVALID",
        CKR_USER_NOT_LOGGED_IN => "CKR_USER_NOT_LOGGED_IN",
        CKR_USER_ALREADY_LOGGED_IN => "CKR_USER_ALREADY_LOGGED_IN",
        CKR_PIN_INCORRECT => "CKR_PIN_INCORRECT",
        CKR_PIN_LOCKED => "CKR_PIN_LOCKED",
        CKR_DATA_LEN_RANGE => "CKR_DATA_LEN_RANGE",
        CKR_KEY_HANDLE_INVALID => "CKR_KEY_HANDLE_INVALID",
        CKR_GENERAL_ERROR => "CKR_GENERAL_ERROR",
        CKR_CRYPTOKI_NOT_INITIALIZED => "CKR_CRYPTOKI_NOT_INITIALIZED",
        CKR_OPERATION_NOT_INITIALIZED => "CKR_OPERATION_NOT_INITIALIZED",
        _ => return format!("CK_RV {rv:#x}"),
    };
    name.to_string()
}

/// Logs `h`'s token in (already logged in is fine).
pub fn ensure_login(m: &Module, h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<(), Error> {
    match m.login(h, CKU_USER, pin) {
        Ok(()) | Err(Error::UserAlreadyLoggedIn) => Ok(()),
        Err(e) => Err(e),
    }
}

/// With `m`, until `limit`: opens a session on `slot` (a new one whenever the old one is
/// gone), logs in, signs and checks the signature against the token's certificate. Returns
/// how long it took; panics if it never works.
pub fn recovers(m: &Module, slot: CK_SLOT_ID, pin: &[u8], limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last = String::new();
    let mut session: Option<CK_SESSION_HANDLE> = None;
    while start.elapsed() < limit {
        let attempt = (|| -> Result<(), Error> {
            m.slot_list(true);
            let h = match session {
                Some(h) if m.session_info(h).is_ok() => h,
                _ => {
                    let h = open(m, slot)?;
                    session = Some(h);
                    h
                }
            };
            ensure_login(m, h, pin)?;
            let key = private_key(m, h)?;
            let message = b"recovered";
            let signature = sign(m, h, key, message)?;
            let cert = user_certificate(m, h).ok_or(Error::DeviceError)?;
            assert!(
                verifies(&cert, message, &signature),
                "a signature that does not verify"
            );
            Ok(())
        })();
        match attempt {
            Ok(()) => return start.elapsed(),
            Err(e) => last = rv_name(e.rv()),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no recovery within {limit:?}: last error {last}");
}
