//! A card that never answers, in a host that forbids threads (`CKF_LIBRARY_CANT_CREATE_OS_THREADS`,
//! as NSS passes it): the card-link helper process bounds the wait (docs/conformance.md, "No
//! threads"; `src/transport/pcsc/cardlink/`).
//!
//! The module as NSS sees it: `libjpki_pkcs11.so` loaded with `dlopen`, `C_Initialize` with the
//! flag, raw calls through its function list, against pcscd + vpcd + the virtual card, whose
//! `fault delay` makes it stop answering a signature. The test also checks that the helper
//! was what bounded the wait: no thread appears in this process, and a helper process is its
//! child (the inline path would wait for the card; a worker thread would show in
//! /proc/self/task).
//!
//! Run (build the cdylib and the helper first; `cargo test` builds the helper, not the cdylib):
//! ```text
//! cargo build --lib --bins
//! tests/harness/with-card.sh --profile conservative -- cargo test --test faults_no_threads -- --include-ignored
//! ```
//! The helper is looked up next to the module (`target/debug/jpki-pkcs11-cardlink` for the
//! debug module); `JPKI_MODULE=target/release/libjpki_pkcs11.so` tests the release build and
//! its helper.

// Test code (Cargo.toml [lints]): raw C calls need `unsafe`, and a failed check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ptr;
use std::time::{Duration, Instant};

use common::*;
use cryptoki_sys::*;
use jpki_pkcs11::transport::pcsc::{PcscReaders, APDU_TIMEOUT};
use jpki_pkcs11::transport::Readers;

/// Threads of this process now. Compared with `<=`: a thread of the test harness may end in
/// between, none of the module's may appear.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Process ids of this process's children that run the card-link helper.
fn helpers() -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": the name may hold spaces; the fields after its ')' do not.
        let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
            continue;
        };
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if ppid == me && String::from_utf8_lossy(argv0).ends_with("jpki-pkcs11-cardlink") {
            found.push(pid);
        }
    }
    found
}

/// Finalises the module and clears the card's fault, also when a check fails.
struct Cleanup<'a>(&'a Raw);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| ctl("fault clear"));
        self.0.finalize();
    }
}

fn private_key(raw: &Raw, s: CK_SESSION_HANDLE) -> Result<CK_OBJECT_HANDLE, CK_RV> {
    let keys = raw.find(s, &[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))])?;
    keys.first().copied().ok_or(CKR_KEY_HANDLE_INVALID)
}

/// `C_SignInit` + `C_Sign` with the authentication key.
fn sign(raw: &Raw, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
    let key = private_key(raw, s)?;
    match raw.sign_init(s, CKM_SHA256_RSA_PKCS, key) {
        CKR_OK => raw.sign(s, data),
        rv => Err(rv),
    }
}

fn rv<T>(r: &Result<T, CK_RV>) -> CK_RV {
    match r {
        Ok(_) => CKR_OK,
        Err(rv) => *rv,
    }
}

/// `C_Initialize` as NSS calls it: the module may not create threads.
fn initialize_without_threads(raw: &Raw) {
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK,
        pReserved: ptr::null_mut(),
    };
    let init = call!(raw, C_Initialize(&mut args as *mut _ as *mut _));
    assert_eq!(init, CKR_OK, "C_Initialize without threads");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn card_that_does_not_answer_without_threads() {
    require_harness();
    let _serial = serial();
    let threads_before = threads();
    assert!(helpers().is_empty(), "a helper left over: {:?}", helpers());

    let raw = Raw::load();
    initialize_without_threads(&raw);
    let _cleanup = Cleanup(&raw);

    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    assert!(
        sign(&raw, s, b"before").is_ok(),
        "a signature with a card that answers"
    );
    let first_helpers = helpers();
    assert_eq!(
        first_helpers.len(),
        1,
        "one card-link helper serves the card (is target/*/jpki-pkcs11-cardlink built next to \
         the module?)"
    );
    assert!(threads() <= threads_before, "the module started a thread");
    assert!(sign(&raw, s, b"again").is_ok());
    assert_eq!(
        helpers(),
        first_helpers,
        "calls while nothing is stuck stay on one helper"
    );

    // The card stops answering the signature.
    let stuck_for = APDU_TIMEOUT + Duration::from_secs(3);
    ctl(&format!("fault delay {} ins=2a", stuck_for.as_millis()));
    let t = Instant::now();
    let first = sign(&raw, s, b"no answer");
    let took = t.elapsed();
    println!("C_Sign with no answer: {:#x} after {took:?}", rv(&first));
    assert_eq!(rv(&first), CKR_DEVICE_ERROR);
    assert!(
        took >= APDU_TIMEOUT - Duration::from_millis(500),
        "{took:?}"
    );
    assert!(took < APDU_TIMEOUT + Duration::from_secs(2), "{took:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{}", first_helpers[0])).exists(),
        "the stuck helper was killed and reaped"
    );

    // The card is still stuck: the next call fails fast. A new helper holds the card, and
    // the module reports the reset that ended the old helper's transaction: logged out.
    let t = Instant::now();
    let second = sign(&raw, s, b"still stuck");
    println!(
        "C_Sign while stuck: {:#x} after {:?}",
        rv(&second),
        t.elapsed()
    );
    assert!(
        [CKR_DEVICE_ERROR, CKR_USER_NOT_LOGGED_IN].contains(&rv(&second)),
        "{:#x}",
        rv(&second)
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let t = Instant::now();
    assert!(raw.token_info(AUTH_SLOT).is_ok(), "token info");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // Once the card answers again: a new login, and the card signs.
    ctl("fault clear");
    let t = Instant::now();
    let limit = stuck_for + Duration::from_secs(10);
    loop {
        let login = raw.login(s, CKU_USER, AUTH_PIN.as_bytes());
        if [CKR_OK, CKR_USER_ALREADY_LOGGED_IN].contains(&login) && sign(&raw, s, b"back").is_ok() {
            break;
        }
        assert!(t.elapsed() < limit, "no recovery within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("recovered {:?} after the fault was cleared", t.elapsed());
    let now = helpers();
    assert_eq!(now.len(), 1, "one helper again: {now:?}");
    assert_ne!(now, first_helpers, "a new helper after the kill");
    assert!(threads() <= threads_before, "the module started a thread");
    assert_eq!(stats().get("malformed_verify_count"), 0);

    // C_Finalize closes the link: the helper disconnects, exits and is reaped.
    assert_eq!(raw.finalize(), CKR_OK);
    assert!(
        helpers().is_empty(),
        "helper outlived C_Finalize: {:?}",
        helpers()
    );
    assert!(
        threads() <= threads_before,
        "a thread left after C_Finalize"
    );
}

/// Another program holds the card's PC/SC transaction longer than the module waits for it: the
/// call ends in `CKR_DEVICE_ERROR` after the APDU bound (pcscd holds back `SCardStatus` while
/// another client's transaction is open, and the module asks for the card's status before a
/// signature), further calls fail at once while it is held, and the module works again when it is released. The helper, which
/// was waiting for pcscd and not for the card, is not killed: killing it would make pcscd reset
/// the card under the program that holds it (checked: that program's connection sees no
/// reset).
#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn transaction_held_elsewhere_without_threads() {
    require_harness();
    let _serial = serial();
    let raw = Raw::load();
    initialize_without_threads(&raw);
    let _cleanup = Cleanup(&raw);
    let s = raw.open_ro(AUTH_SLOT);
    assert_eq!(raw.login(s, CKU_USER, AUTH_PIN.as_bytes()), CKR_OK);
    assert!(sign(&raw, s, b"before").is_ok());
    let helper = helpers();
    assert_eq!(helper.len(), 1, "one card-link helper serves the card");

    // The other program: this test, through the threaded transport of its own.
    let other = PcscReaders::new();
    let reader = other
        .list()
        .unwrap()
        .into_iter()
        .find(|r| r.card_present)
        .expect("a reader with the card")
        .name;
    let mut connection = other.connect(&reader).unwrap();
    let held = connection.begin().unwrap();
    let release_after = APDU_TIMEOUT + Duration::from_secs(3);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let caller = scope.spawn(|| {
            let t = Instant::now();
            let first = sign(&raw, s, b"transaction held");
            let took = t.elapsed();
            let t = Instant::now();
            let second = sign(&raw, s, b"still held");
            (rv(&first), took, rv(&second), t.elapsed())
        });
        std::thread::sleep(release_after);
        let (first, took, second, second_took) = caller.join().unwrap();
        println!("C_Sign, transaction held: {first:#x} after {took:?}; then {second:#x} after {second_took:?}");
        assert_eq!(first, CKR_DEVICE_ERROR);
        assert!(
            took >= APDU_TIMEOUT - Duration::from_millis(500),
            "{took:?}"
        );
        assert!(took < APDU_TIMEOUT + Duration::from_secs(2), "{took:?}");
        assert_eq!(second, CKR_DEVICE_ERROR);
        assert!(second_took < Duration::from_secs(1), "{second_took:?}");
        assert!(started.elapsed() < release_after + Duration::from_secs(1));
    });
    drop(held);

    // Released: the module works again (a new login: the module selects the application
    // again after a failed call, which ends the card's PIN state), on the same helper.
    let t = Instant::now();
    let mut tried = Vec::new();
    loop {
        let login = raw.login(s, CKU_USER, AUTH_PIN.as_bytes());
        let signed = if [CKR_OK, CKR_USER_ALREADY_LOGGED_IN].contains(&login) {
            rv(&sign(&raw, s, b"back"))
        } else {
            CKR_OK
        };
        tried.push(format!(
            "{:.1}s login {login:#x} sign {signed:#x}",
            t.elapsed().as_secs_f32()
        ));
        if [CKR_OK, CKR_USER_ALREADY_LOGGED_IN].contains(&login) && signed == CKR_OK {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no recovery: {tried:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("recovered {:?} after the release: {tried:?}", t.elapsed());
    assert_eq!(
        helpers(),
        helper,
        "the helper waiting for the transaction was not killed"
    );
    assert_eq!(
        connection.status(),
        Ok(()),
        "the other program's connection saw no card reset"
    );
}

/// The helper keeps none of its host's descriptors: a host's pipe without close-on-exec (what
/// a C program's `pipe()` makes) must reach its end when the host closes its write end, also
/// while the module's helper runs. A helper that inherited the write end would keep the
/// host's reader waiting for the life of the card connection.
#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn helper_keeps_no_descriptor_of_the_host() {
    require_harness();
    let _serial = serial();
    assert!(helpers().is_empty(), "a helper left over: {:?}", helpers());
    let mut pipe = [0i32; 2];
    // SAFETY: a valid two-int array; plain pipe(): no O_CLOEXEC, as a C host makes it.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let [read_end, write_end] = pipe;
    let inode = std::fs::read_link(format!("/proc/self/fd/{write_end}")).unwrap();

    let raw = Raw::load();
    initialize_without_threads(&raw);
    let _cleanup = Cleanup(&raw);
    let s = raw.open_ro(AUTH_SLOT);
    assert!(
        raw.find(s, &[]).is_ok(),
        "objects listed through the helper"
    );
    let running = helpers();
    assert_eq!(running.len(), 1, "one card-link helper serves the card");
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", running[0]))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.display().to_string())
        .collect();
    println!("helper's descriptors: {held:?}");
    assert!(
        !held.contains(&inode.display().to_string()),
        "the helper holds the host's pipe ({}): {held:?}",
        inode.display()
    );

    // The symptom itself: with the write end closed here, the reader sees the end at once.
    // SAFETY: our own descriptors, each closed once.
    unsafe { libc::close(write_end) };
    let mut poll = libc::pollfd {
        fd: read_end,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut poll, 1, 2000) };
    assert_eq!(
        ready, 1,
        "the pipe's end is seen (not held open by the helper)"
    );
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte buffer; the descriptor is ours.
    let n = unsafe { libc::read(read_end, byte.as_mut_ptr().cast(), 1) };
    assert_eq!(n, 0, "end of file");
    // SAFETY: ours, closed once.
    unsafe { libc::close(read_end) };
}
