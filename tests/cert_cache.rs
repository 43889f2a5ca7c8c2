//! The certificate cache's rules, through the real PC/SC stack and a real client
//! (`pkcs11-tool`), each run a separate process with its own `XDG_CACHE_HOME`:
//!
//! - a warm process reads no certificate body, only the chunks that prove the cache right;
//! - the cache is private (directory 0700, files 0600);
//! - the signature certificate never reaches the disk (its bytes are searched for);
//! - a corrupt file is ignored (and rewritten), never an error;
//! - a planted certificate with another key makes signing fail, never gives a wrong signature;
//! - another card in the same reader is noticed on its first read;
//! - a cached CA certificate is served on the authentication certificate's proof only if it
//!   fits: a planted authentication CA that did not issue the card's authentication
//!   certificate is ignored and rewritten; a signature CA that the card no longer holds is
//!   noticed when the signature certificate is read, and from then on the card's is served;
//! - the cache off (environment or configuration file) writes nothing.
//!
//! Runs only inside `tests/harness/with-card.sh` (JPKI_PCSC_TEST=1), on both profiles.

// Test code (Cargo.toml [lints]): the shared helpers make raw C calls (`unsafe`), and a failed
// check panics.
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::client::{auth_sign, card_certs, fresh_dir, harness_card, read_cert, tool, verifies};
use common::{ctl, require_harness, retry, serial, stats, AUTH_PIN, SIGN_PASSWORD};
use der::{Decode, Encode};
use jpki_pkcs11::pkcs11::cert_cache;

/// The three public certificates, as a client reads them (the CA certificate of the
/// signature token is public too).
fn read_public(home: &Path, env: &[(&str, &str)]) -> [Vec<u8>; 3] {
    [
        read_cert(home, env, "0", "01", None),
        read_cert(home, env, "0", "03", None),
        read_cert(home, env, "1", "04", None),
    ]
}

/// Files in the module's cache directory.
fn cache_files(home: &Path) -> Vec<PathBuf> {
    let dir = home.join("cache/jpki-pkcs11");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// READ BINARY commands the card received since the last `reset-stats`.
fn read_binaries() -> u64 {
    let s = stats();
    let text = ctl("stats");
    if text.contains("\"b0\":") {
        s.get("b0")
    } else {
        0
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn warm_process_reads_only_the_proving_chunks_and_the_cache_is_private() {
    require_harness();
    let _g = serial();
    let home = fresh_dir("cert-cache-warm");
    let card = harness_card();
    let cold = read_public(&home, &[]);
    assert_eq!(cold[0], card[0]);
    assert_eq!(cold[1], card[1]);
    assert_eq!(cold[2], card[2]);
    let dir = home.join("cache/jpki-pkcs11");
    let mode = std::fs::metadata(&dir)
        .expect("cache dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "cache directory mode");
    let files = cache_files(&home);
    assert!(!files.is_empty(), "a cache file was written");
    for f in &files {
        let mode = std::fs::metadata(f).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{} mode", f.display());
    }
    // Warm: every certificate value from the cache, each proven by one chunk of the card.
    ctl("reset-stats");
    let warm = read_public(&home, &[]);
    assert_eq!(warm, cold, "the warm process gives the same certificates");
    // Three processes: each reads the authentication certificate's first chunk (identity,
    // and the proof that the cache entry is this card's); the CA certificates ride on that
    // proof. No refused SFI read either on a card without the SFI forms: the reader's cache
    // file remembers the refusal.
    let reads = read_binaries();
    assert!(reads <= 3, "{reads} READ BINARY in three warm processes");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn the_signature_certificate_never_reaches_the_disk() {
    require_harness();
    let _g = serial();
    let home = fresh_dir("cert-cache-nosign");
    let card = harness_card();
    let sign = &card[3];
    // Everything a client can do with the signature token: read its certificate after the
    // password, list every object, sign.
    let got = read_cert(&home, &[], "1", "02", Some(SIGN_PASSWORD));
    assert_eq!(&got, sign, "the signature certificate was read");
    let (ok, text) = tool(
        &home,
        &[],
        &["--slot-index", "1", "--login", "--pin", SIGN_PASSWORD, "-O"],
    );
    assert!(ok, "{text}");
    let msg = home.join("msg");
    std::fs::write(&msg, b"to be signed").expect("msg");
    let sig = home.join("sig");
    let (ok, text) = tool(
        &home,
        &[],
        &[
            "--slot-index",
            "1",
            "--login",
            "--pin",
            SIGN_PASSWORD,
            "--sign",
            "--mechanism",
            "SHA256-RSA-PKCS",
            "--id",
            "02",
            "-i",
            &msg.to_string_lossy(),
            "-o",
            &sig.to_string_lossy(),
        ],
    );
    assert!(ok, "{text}");
    read_public(&home, &[]);
    // The search: the whole certificate, its subject (name, address) and its public key.
    let cert = x509_cert::Certificate::from_der(sign).expect("sign cert parses");
    let subject = cert.tbs_certificate.subject.to_der().expect("subject");
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .expect("spki");
    let files = cache_files(&home);
    assert!(!files.is_empty());
    let mut saw_auth = false;
    for f in &files {
        let bytes = std::fs::read(f).expect("cache file");
        assert!(
            !contains(&bytes, sign),
            "{}: the signature certificate",
            f.display()
        );
        assert!(!contains(&bytes, &subject), "{}: its subject", f.display());
        assert!(!contains(&bytes, &spki), "{}: its public key", f.display());
        saw_auth |= contains(&bytes, &card[0]);
    }
    // The search can fail: the public certificates are found the same way.
    assert!(saw_auth, "the authentication certificate is in the cache");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_corrupt_cache_file_is_ignored_and_rewritten() {
    require_harness();
    let _g = serial();
    let home = fresh_dir("cert-cache-corrupt");
    let card = harness_card();
    read_public(&home, &[]);
    let files: Vec<_> = cache_files(&home)
        .into_iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("card-"))
        })
        .collect();
    assert_eq!(files.len(), 1, "one card file");
    let file = &files[0];
    let good = std::fs::read(file).expect("file");
    let damaged: Vec<Vec<u8>> = vec![
        good[..good.len() / 2].to_vec(),     // truncated
        b"not a cache file at all".to_vec(), // foreign
        Vec::new(),                          // empty
        {
            let mut b = good.clone();
            let i = b.len() / 3;
            b[i] ^= 0x40; // one flipped bit inside a certificate
            b
        },
    ];
    for (n, bytes) in damaged.iter().enumerate() {
        std::fs::write(file, bytes).expect("damage");
        let got = read_public(&home, &[]);
        assert_eq!(got[0], card[0], "case {n}");
        assert_eq!(got[1], card[1], "case {n}");
        assert_eq!(got[2], card[2], "case {n}");
        let now = std::fs::read(file).expect("rewritten");
        assert!(
            contains(&now, &card[0]) && contains(&now, &card[1]),
            "case {n}: the file is rewritten whole"
        );
    }
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_planted_certificate_with_another_key_never_gives_a_wrong_signature() {
    require_harness();
    let _g = serial();
    let home = fresh_dir("cert-cache-planted");
    let card = harness_card();
    read_public(&home, &[]);
    // Plant, in a well-formed cache file under this card's name, an authentication
    // certificate whose first chunk is the card's (so it passes the chunk check) but whose
    // public key differs: what a person with write access to the cache could do.
    let cert = x509_cert::Certificate::from_der(&card[0]).expect("cert");
    let key = cert.tbs_certificate.serial_number.to_der().expect("serial");
    let issuer = cert.tbs_certificate.issuer.to_der().expect("issuer");
    let name = cert_cache::card_key(&issuer, &key);
    let dir = home.join("cache/jpki-pkcs11");
    let mut entry = cert_cache::load(&dir, &name).expect("the cold run stored this card");
    let mut planted = card[0].clone();
    let modulus = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    let at = planted
        .windows(modulus.len())
        .position(|w| w == modulus.as_slice())
        .expect("key in the certificate");
    // A byte in the middle of the modulus, past the first chunk.
    let i = (at + modulus.len() - 40).max(300);
    assert!(i > 256 && i < at + modulus.len() - 2);
    planted[i] ^= 0x5A;
    entry.auth = Some(planted);
    cert_cache::store(&dir, &name, &entry);
    let msg = b"planted key test";
    // The card signs with its own key; the module checks that signature against the planted
    // key, which fails: no signature is returned at all (CKR_DEVICE_ERROR).
    if let Some(sig) = auth_sign(&home, &[], msg) {
        let valid = verifies(&card[0], msg, &sig);
        panic!("a signature was returned with a planted key (valid for the card: {valid})");
    }
    // The failed check dropped the file: the next process signs, correctly.
    let sig = auth_sign(&home, &[], msg).expect("the next process signs");
    assert!(verifies(&card[0], msg, &sig), "a correct signature");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn another_card_in_the_same_reader_is_noticed_on_its_first_read() {
    require_harness();
    let _g = serial();
    let home = fresh_dir("cert-cache-swap");
    let card_a = harness_card();
    let first = read_public(&home, &[]);
    assert_eq!(first[0], card_a[0]);
    // Card B (another seed: other keys, other certificates) in the same reader.
    let work = fresh_dir("cert-cache-swap-card");
    let state_b = work.join("b.state").to_string_lossy().to_string();
    let card_b = card_certs(&state_b, 42, "b");
    assert_ne!(card_a[0], card_b[0]);
    ctl("remove");
    let bin = std::env::var("JPKI_TEST_CARD_BIN").expect("card bin");
    let profile = common::profile();
    let mut b = Command::new(bin)
        .args([
            "run",
            "--state",
            &state_b,
            "--seed",
            "42",
            "--profile",
            &profile,
        ])
        .args(["--port", "35963", "--control"])
        .arg(work.join("b.ctl"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("b.log")).expect("card B log"))
        .spawn()
        .expect("card B starts");
    std::thread::sleep(Duration::from_secs(2));
    let result = std::panic::catch_unwind(|| {
        let got = retry("card B in the reader", Duration::from_secs(20), || {
            let (ok, text) = tool(&home, &[], &["-L"]);
            if !(ok && text.contains("token label")) {
                // vpcd accepts the new card at its next presence poll; do not flood pcscd.
                std::thread::sleep(Duration::from_millis(500));
            }
            (ok && text.contains("token label")).then(|| read_public(&home, &[]))
        });
        assert_eq!(
            got[0], card_b[0],
            "card B's certificate, not card A's cached one"
        );
        assert_eq!(got[1], card_b[1]);
        assert_eq!(got[2], card_b[2]);
    });
    let _ = b.kill();
    let _ = b.wait();
    ctl("insert");
    retry("card A back", Duration::from_secs(20), || {
        let (ok, text) = tool(&home, &[], &["-L"]);
        (ok && text.contains("token label")).then_some(())
    });
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    // And card A again: its own certificates (from its still valid cache file).
    let again = read_public(&home, &[]);
    assert_eq!(again[0], card_a[0]);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn the_cache_off_writes_nothing() {
    require_harness();
    let _g = serial();
    let card = harness_card();
    // By the environment.
    let home = fresh_dir("cert-cache-off-env");
    let got = read_public(&home, &[("JPKI_PKCS11_CACHE", "off")]);
    assert_eq!(got[0], card[0]);
    assert!(cache_files(&home).is_empty(), "{:?}", cache_files(&home));
    // By the configuration file (the project's one: src/pkcs11/config.rs).
    let home = fresh_dir("cert-cache-off-file");
    std::fs::create_dir_all(home.join("config/jpki-pkcs11")).expect("config dir");
    std::fs::write(
        home.join("config/jpki-pkcs11/config"),
        "# the certificate cache\ncache = off\n",
    )
    .expect("config");
    let got = read_public(&home, &[]);
    assert_eq!(got[0], card[0]);
    assert!(cache_files(&home).is_empty(), "{:?}", cache_files(&home));
    // A bad value warns and keeps the default (on): never a failure.
    let home = fresh_dir("cert-cache-bad-value");
    let got = read_public(&home, &[("JPKI_PKCS11_CACHE", "maybe")]);
    assert_eq!(got[0], card[0]);
    assert!(!cache_files(&home).is_empty());
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn nothing_read_while_a_pin_is_verified_is_written() {
    require_harness();
    let _g = serial();
    let home = fresh_dir("cert-cache-after-login");
    let card = harness_card();
    // Logged in first, then the CA certificate: on a token that protects its certificates
    // with the PIN (the phone's JPKI token), such a read proves nothing about who may read it,
    // so nothing of this process goes to disk.
    let out = home.join("ca.der");
    let (ok, text) = tool(
        &home,
        &[],
        &[
            "--slot-index",
            "0",
            "--login",
            "--pin",
            AUTH_PIN,
            "--read-object",
            "--type",
            "cert",
            "--id",
            "03",
            "-o",
            &out.to_string_lossy(),
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(&out).expect("ca"), card[1]);
    for f in cache_files(&home) {
        let bytes = std::fs::read(&f).expect("cache file");
        assert!(
            !contains(&bytes, &card[1]),
            "{}: the CA read after login",
            f.display()
        );
    }
    // Without a login, the same read is cached.
    read_public(&home, &[]);
    let all: Vec<u8> = cache_files(&home)
        .iter()
        .flat_map(|f| std::fs::read(f).expect("cache file"))
        .collect();
    assert!(contains(&all, &card[1]));
}

/// The card's entry in the cache directory of `home` (the cold run stored it): its file name
/// and contents.
fn card_entry(home: &Path, card: &[Vec<u8>; 4]) -> (PathBuf, String, cert_cache::Entry) {
    let cert = x509_cert::Certificate::from_der(&card[0]).expect("cert");
    let serial = cert.tbs_certificate.serial_number.to_der().expect("serial");
    let issuer = cert.tbs_certificate.issuer.to_der().expect("issuer");
    let name = cert_cache::card_key(&issuer, &serial);
    let dir = home.join("cache/jpki-pkcs11");
    let entry = cert_cache::load(&dir, &name).expect("the cold run stored this card");
    (dir, name, entry)
}

/// The certificates of another card (other keys, the same CA names): what a stale or planted
/// entry would hold.
fn other_card() -> [Vec<u8>; 4] {
    let work = fresh_dir("cert-cache-other-card");
    let state = work.join("other.state").to_string_lossy().to_string();
    card_certs(&state, 42, "other")
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_planted_ca_that_did_not_issue_the_authentication_certificate_is_ignored() {
    require_harness();
    let _g = serial();
    let home = fresh_dir("cert-cache-planted-ca");
    let card = harness_card();
    read_public(&home, &[]);
    let (dir, name, mut entry) = card_entry(&home, &card);
    assert_eq!(entry.auth_ca.as_deref(), Some(card[1].as_slice()));
    // Another authentication CA under the same name (another key, so another key
    // identifier): the authentication certificate's proof does not cover it.
    let other = other_card();
    assert_ne!(other[1], card[1]);
    entry.auth_ca = Some(other[1].clone());
    cert_cache::store(&dir, &name, &entry);
    let got = read_cert(&home, &[], "0", "03", None);
    assert_eq!(
        got, card[1],
        "the card's CA certificate, not the planted one"
    );
    let now = std::fs::read(dir.join(&name)).expect("card file");
    assert!(
        !contains(&now, &other[1]),
        "the planted CA is gone from the file"
    );
    assert!(contains(&now, &card[1]), "the card's CA is written back");
    // And the next process is served from the cache again, with no read of that CA.
    ctl("reset-stats");
    let got = read_cert(&home, &[], "0", "03", None);
    assert_eq!(got, card[1]);
    let max = if common::profile() == "extended" {
        1
    } else {
        2
    };
    assert!(
        read_binaries() <= max,
        "only the authentication certificate's chunk is read"
    );
}

/// The serial number pkcs11-tool prints for the certificate object labelled `label`.
fn listed_serial(listing: &str, label: &str) -> Option<String> {
    let mut lines = listing
        .lines()
        .skip_while(|l| l.trim() != format!("label:      {label}"));
    lines.next()?;
    lines.take_while(|l| l.starts_with("  ")).find_map(|l| {
        l.trim()
            .strip_prefix("serial:")
            .map(|s| s.trim().to_string())
    })
}

fn serial_hex(cert: &[u8]) -> String {
    let cert = x509_cert::Certificate::from_der(cert).expect("cert");
    cert.tbs_certificate
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_changed_signature_ca_is_noticed_when_the_signature_certificate_is_read() {
    require_harness();
    let _g = serial();
    let home = fresh_dir("cert-cache-sign-ca");
    let card = harness_card();
    read_public(&home, &[]);
    // The cache remembers a signature CA certificate that the card no longer holds (a new CA
    // generation on the card, the authentication certificate unchanged): the cached one is
    // another CA's, under the same name.
    let (dir, name, mut entry) = card_entry(&home, &card);
    let other = other_card();
    assert_ne!(serial_hex(&other[2]), serial_hex(&card[2]));
    entry.sign_ca = Some(other[2].clone());
    cert_cache::store(&dir, &name, &entry);
    // One process: log in with the signature password and list every object. The signature
    // certificate is read; its issuer is not the cached CA: from then on the card's CA is
    // served, in this very listing.
    let (ok, text) = tool(
        &home,
        &[],
        &["--slot-index", "1", "--login", "--pin", SIGN_PASSWORD, "-O"],
    );
    assert!(ok, "{text}");
    assert_eq!(
        listed_serial(&text, "JPKI Digital Signature").as_deref(),
        Some(serial_hex(&card[3]).as_str()),
        "the signature certificate was read: {text}"
    );
    assert_eq!(
        listed_serial(&text, "JPKI Digital Signature CA").as_deref(),
        Some(serial_hex(&card[2]).as_str()),
        "the card's signature CA, not the stale one: {text}"
    );
    let now = std::fs::read(dir.join(&name)).expect("card file");
    assert!(
        !contains(&now, &other[2]),
        "the stale CA is gone from the file"
    );
    // The next process reads the card's CA (and caches it again).
    let got = read_cert(&home, &[], "1", "04", None);
    assert_eq!(got, card[2]);
    let now = std::fs::read(dir.join(&name)).expect("card file");
    assert!(contains(&now, &card[2]), "the card's CA is cached again");
}
