//! Concurrency through pcscd: many threads signing on both tokens of one card, several
//! processes signing at once, and C_Finalize while other threads are inside calls.
//!
//! Every signature is checked here against the token's certificate; no APDU of one
//! operation may interleave with another's (checked in the card's APDU log: every COMPUTE
//! DIGITAL SIGNATURE directly follows the SELECT of a key EF, in the same transaction); no
//! deadlock (every wait here is bounded).
//!
//! Sizes (environment, for longer runs): JPKI_CONCURRENCY_SIGNATURES (per thread and token,
//! default 50: 8 threads × 2 tokens × 50 = 800), JPKI_CONCURRENCY_PROCESSES (default 4),
//! JPKI_CONCURRENCY_PROCESS_SIGNATURES (per process and token, default 20).
//!
//! Run: tests/harness/with-card.sh -- cargo test --test concurrency -- --include-ignored --test-threads=1

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod robust;

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use jpki_pkcs11::pkcs11::{Error, Module};
use robust::*;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Signs, re-logging in when another process's SELECT took the card's PIN state away, and
/// checks the signature. Returns the number of re-logins it needed.
fn sign_verified(
    m: &Module,
    h: CK_SESSION_HANDLE,
    key: CK_OBJECT_HANDLE,
    pin: &[u8],
    cert: &[u8],
    message: &[u8],
) -> Result<u64, Error> {
    let mut relogins = 0;
    loop {
        match sign(m, h, key, message) {
            Ok(signature) => {
                assert!(
                    verifies(cert, message, &signature),
                    "a signature that does not verify"
                );
                return Ok(relogins);
            }
            Err(Error::UserNotLoggedIn) if relogins < 20 => {
                relogins += 1;
                ensure_login(m, h, pin)?;
            }
            Err(e) => return Err(e),
        }
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn threads_sign_on_both_tokens() {
    require_harness();
    fresh_start();
    let per_thread = env_number("JPKI_CONCURRENCY_SIGNATURES", 50);
    let threads = 8;
    let m = Arc::new(module());
    let (auth, sign_slot) = token_slots(&m);
    let tokens = [(auth, AUTH_PIN), (sign_slot, SIGN_PIN)];
    let mut certs = Vec::new();
    for (slot, pin) in tokens {
        let h = open(&m, slot).unwrap();
        m.login(h, CKU_USER, pin).unwrap();
        certs.push(user_certificate(&m, h).unwrap());
    }
    let certs = Arc::new(certs);
    let signatures = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(threads));
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (m, certs, signatures, barrier) = (
                m.clone(),
                certs.clone(),
                signatures.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                let sessions: Vec<(CK_SESSION_HANDLE, CK_OBJECT_HANDLE)> = tokens
                    .iter()
                    .map(|(slot, _)| {
                        let h = open(&m, *slot).unwrap();
                        (h, private_key(&m, h).unwrap())
                    })
                    .collect();
                barrier.wait();
                for i in 0..per_thread {
                    for (k, (h, key)) in sessions.iter().enumerate() {
                        let message = format!("thread {t} token {k} signature {i}");
                        let relogins =
                            sign_verified(&m, *h, *key, tokens[k].1, &certs[k], message.as_bytes())
                                .unwrap_or_else(|e| panic!("thread {t}: {e}"));
                        assert_eq!(relogins, 0, "nobody else logs the card out here");
                        signatures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a signing thread failed");
    }
    let n = signatures.load(Ordering::Relaxed);
    let took = start.elapsed();
    println!(
        "signatures made concurrently: {n} ({threads} threads × 2 tokens × {per_thread}) in {:.1} s, {:.0}/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    assert_eq!(n, threads as u64 * 2 * per_thread);
    assert_eq!(stat(0, "malformed_verify_count"), 0);
    no_interleaving();
}

/// The child side of [`processes_sign_at_once`]: does nothing unless started by it.
#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn child_signer() {
    let Ok(count) = std::env::var("JPKI_CONCURRENCY_CHILD") else {
        return;
    };
    let count: u64 = count.parse().unwrap();
    require_harness();
    let m = module();
    let (auth, sign_slot) = token_slots(&m);
    let mut relogins = 0;
    let mut made = 0;
    let mut sessions = Vec::new();
    for (slot, pin) in [(auth, AUTH_PIN), (sign_slot, SIGN_PIN)] {
        let h = open(&m, slot).unwrap();
        ensure_login(&m, h, pin).unwrap();
        let cert = user_certificate(&m, h).unwrap();
        let key = private_key(&m, h).unwrap();
        sessions.push((h, key, pin, cert));
    }
    for i in 0..count {
        for (h, key, pin, cert) in &sessions {
            let message = format!("process {} signature {i}", std::process::id());
            relogins += sign_verified(&m, *h, *key, pin, cert, message.as_bytes())
                .unwrap_or_else(|e| panic!("process {}: {e}", std::process::id()));
            made += 1;
        }
    }
    println!("CHILD signatures={made} relogins={relogins}");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn processes_sign_at_once() {
    require_harness();
    fresh_start();
    let processes = env_number("JPKI_CONCURRENCY_PROCESSES", 4);
    let per_process = env_number("JPKI_CONCURRENCY_PROCESS_SIGNATURES", 20);
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "child_signer",
                    "--include-ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("JPKI_CONCURRENCY_CHILD", per_process.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a signing process")
        })
        .collect();
    let (mut signatures, mut relogins) = (0, 0);
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "a signing process failed:\n{text}");
        let line = text
            .lines()
            .find_map(|l| l.find("CHILD ").map(|at| &l[at..]))
            .expect("child summary");
        let field = |name: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        signatures += field("signatures=");
        relogins += field("relogins=");
    }
    println!(
        "{processes} processes signed {signatures} times at once through one pcscd in {:.1} s \
         ({relogins} re-logins after another process's SELECT cleared the card's PIN state)",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(signatures, processes * per_process * 2);
    assert_eq!(stat(0, "malformed_verify_count"), 0);
    no_interleaving();
}

/// In the card's APDU log, every COMPUTE DIGITAL SIGNATURE in the classic form (P2 = 80) directly
/// follows the SELECT of a key EF (0017 or 001A): nobody's APDU came between (PC/SC
/// transactions hold). The SFI form names its key and needs no SELECT.
fn no_interleaving() {
    let log = std::fs::read_to_string(std::env::var("JPKI_TEST_APDU_LOG").unwrap()).unwrap();
    let commands: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let mut signs = 0;
    for (i, c) in commands.iter().enumerate() {
        if c.starts_with("802a") {
            signs += 1;
            // The SFI form (P2 = 97 or 9A, extended profile) names the key itself: no SELECT
            // precedes it, and no other client's SELECT can change which key signs.
            if c.get(6..8).is_some_and(|p2| p2 != "80") {
                continue;
            }
            let before = if i > 0 { commands[i - 1] } else { "" };
            assert!(
                before == "00a4020c020017" || before == "00a4020c02001a",
                "APDU {i}: {c} after {before}"
            );
        }
    }
    println!("APDU log: {signs} signatures, each right after its key's SELECT");
}

// ----- C_Finalize while other threads are inside calls (through the C functions) ----------

extern "C" {
    fn C_Initialize(args: *mut c_void) -> CK_RV;
    fn C_Finalize(reserved: *mut c_void) -> CK_RV;
    fn C_GetSlotList(present: CK_BBOOL, list: *mut CK_SLOT_ID, count: *mut CK_ULONG) -> CK_RV;
    fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV;
    fn C_OpenSession(
        slot: CK_SLOT_ID,
        flags: CK_FLAGS,
        app: *mut c_void,
        notify: CK_NOTIFY,
        session: *mut CK_SESSION_HANDLE,
    ) -> CK_RV;
    fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV;
    fn C_Login(
        session: CK_SESSION_HANDLE,
        user: CK_USER_TYPE,
        pin: *mut u8,
        len: CK_ULONG,
    ) -> CK_RV;
    fn C_FindObjectsInit(session: CK_SESSION_HANDLE, t: *mut CK_ATTRIBUTE, n: CK_ULONG) -> CK_RV;
    fn C_FindObjects(
        session: CK_SESSION_HANDLE,
        out: *mut CK_OBJECT_HANDLE,
        max: CK_ULONG,
        n: *mut CK_ULONG,
    ) -> CK_RV;
    fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV;
    fn C_SignInit(session: CK_SESSION_HANDLE, m: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE)
        -> CK_RV;
    fn C_Sign(
        session: CK_SESSION_HANDLE,
        data: *mut u8,
        len: CK_ULONG,
        sig: *mut u8,
        sig_len: *mut CK_ULONG,
    ) -> CK_RV;
    fn C_WaitForSlotEvent(flags: CK_FLAGS, slot: *mut CK_SLOT_ID, reserved: *mut c_void) -> CK_RV;
}

/// One round of calls a client makes to sign; every return value is recorded.
fn client_round(slot: CK_SLOT_ID, pin: &[u8], seen: &mut Vec<CK_RV>) -> Option<Vec<u8>> {
    unsafe {
        let mut n: CK_ULONG = 0;
        seen.push(C_GetSlotList(CK_TRUE, null_mut(), &mut n));
        let mut info: CK_TOKEN_INFO = std::mem::zeroed();
        seen.push(C_GetTokenInfo(slot, &mut info));
        let mut h: CK_SESSION_HANDLE = 0;
        let rv = C_OpenSession(slot, CKF_SERIAL_SESSION, null_mut(), None, &mut h);
        seen.push(rv);
        if rv != CKR_OK {
            return None;
        }
        let mut pin = pin.to_vec();
        seen.push(C_Login(
            h,
            CKU_USER,
            pin.as_mut_ptr(),
            pin.len() as CK_ULONG,
        ));
        let mut class = CKO_PRIVATE_KEY;
        let mut t = CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: &mut class as *mut CK_ULONG as *mut c_void,
            ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
        };
        let mut key: CK_OBJECT_HANDLE = 0;
        let mut found: CK_ULONG = 0;
        seen.push(C_FindObjectsInit(h, &mut t, 1));
        seen.push(C_FindObjects(h, &mut key, 1, &mut found));
        seen.push(C_FindObjectsFinal(h));
        let mut mech = CK_MECHANISM {
            mechanism: CKM_SHA256_RSA_PKCS,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        seen.push(C_SignInit(h, &mut mech, key));
        let mut data = *b"finalize race";
        let mut sig = [0u8; 256];
        let mut sig_len = sig.len() as CK_ULONG;
        let rv = C_Sign(
            h,
            data.as_mut_ptr(),
            data.len() as CK_ULONG,
            sig.as_mut_ptr(),
            &mut sig_len,
        );
        seen.push(rv);
        seen.push(C_CloseSession(h));
        (rv == CKR_OK).then(|| sig[..sig_len as usize].to_vec())
    }
}

/// What a call may answer when C_Finalize runs while it is in progress (the specification
/// leaves this undefined; the module must not crash, hang or answer nonsense): it finishes,
/// or it finds the library finalised, or it finds its session, login or key gone with it.
const RACE_ANSWERS: &[CK_RV] = &[
    CKR_OK,
    CKR_CRYPTOKI_NOT_INITIALIZED,
    CKR_SESSION_HANDLE_INVALID,
    CKR_USER_NOT_LOGGED_IN,
    CKR_USER_ALREADY_LOGGED_IN,
    CKR_KEY_HANDLE_INVALID,
    CKR_OPERATION_NOT_INITIALIZED,
];

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn finalize_while_threads_are_in_calls() {
    require_harness();
    fresh_start();
    let truth = true_certificates(0);
    let mut total_signatures = 0;
    for (round, delay_ms) in [30u64, 150, 400, 800].into_iter().enumerate() {
        assert_eq!(unsafe { C_Initialize(null_mut()) }, CKR_OK);
        let mut slots = [0 as CK_SLOT_ID; 8];
        let mut n = slots.len() as CK_ULONG;
        assert_eq!(
            unsafe { C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n) },
            CKR_OK
        );
        assert!(n >= 2);
        let (auth, sign_slot) = (slots[0], slots[1]);
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let mut workers = Vec::new();
        for t in 0..6 {
            let stop = stop.clone();
            let done_tx = done_tx.clone();
            let truth = truth.clone();
            workers.push(std::thread::spawn(move || {
                let (slot, pin, cert) = if t % 2 == 0 {
                    (auth, AUTH_PIN, &truth[0])
                } else {
                    (sign_slot, SIGN_PIN, &truth[2])
                };
                let mut seen = Vec::new();
                let mut signed = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let first = seen.len();
                    if let Some(sig) = client_round(slot, pin, &mut seen) {
                        assert!(verifies(cert, b"finalize race", &sig), "bad signature");
                        signed += 1;
                    }
                    // Once a round starts finalised, the library stays so: done.
                    if seen[first] == CKR_CRYPTOKI_NOT_INITIALIZED {
                        break;
                    }
                }
                let _ = done_tx.send(());
                (seen, signed)
            }));
        }
        // One thread blocked in C_WaitForSlotEvent: C_Finalize must wake it.
        let waiter = {
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                let mut slot: CK_SLOT_ID = 0;
                let rv = unsafe { C_WaitForSlotEvent(0, &mut slot, null_mut()) };
                let _ = done_tx.send(());
                rv
            })
        };
        drop(done_tx);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let t = Instant::now();
        assert_eq!(unsafe { C_Finalize(null_mut()) }, CKR_OK);
        let finalize_took = t.elapsed();
        // Everybody comes back (no deadlock): bounded waits only.
        for _ in 0..7 {
            if done_rx.recv_timeout(Duration::from_secs(20)).is_err() {
                stop.store(true, Ordering::Relaxed);
                panic!("round {round}: a thread did not return after C_Finalize");
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(waiter.join().unwrap(), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut calls = 0;
        for w in workers {
            let (seen, signed) = w.join().expect("a client thread panicked");
            calls += seen.len();
            total_signatures += signed;
            for rv in &seen {
                assert!(
                    RACE_ANSWERS.contains(rv),
                    "round {round}: unexpected {}",
                    rv_name(*rv)
                );
            }
        }
        println!(
            "round {round}: C_Finalize after {delay_ms} ms took {finalize_took:?}; {calls} calls, all answers expected"
        );
    }
    // And the module works again.
    assert_eq!(unsafe { C_Initialize(null_mut()) }, CKR_OK);
    let mut seen = Vec::new();
    let mut slots = [0 as CK_SLOT_ID; 8];
    let mut n = slots.len() as CK_ULONG;
    assert_eq!(
        unsafe { C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut n) },
        CKR_OK
    );
    let sig = client_round(slots[0], AUTH_PIN, &mut seen).expect("signing after the races");
    assert!(verifies(&truth[0], b"finalize race", &sig));
    assert_eq!(unsafe { C_Finalize(null_mut()) }, CKR_OK);
    println!("signatures made during the C_Finalize races: {total_signatures}");
}
