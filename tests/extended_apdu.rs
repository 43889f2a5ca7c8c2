//! Extended-length READ BINARY through the real PC/SC stack: for each answer a card or reader
//! can give (the virtual card's `extended-apdu` modes), a real client (`pkcs11-tool`, one
//! process each) gets the card's certificates, logs in and signs; the form is tried once per
//! reader (the cache remembers a refusal), and never with `JPKI_PKCS11_EXTENDED_APDU=off`.
//!
//! Runs only inside `tests/harness/with-card.sh` (JPKI_PCSC_TEST=1), on both profiles.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{ctl, module_path, require_harness, serial, stats, AUTH_PIN};
use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

fn fresh_dir(name: &str) -> PathBuf {
    let base = std::env::var("JPKI_TEST_WORKDIR").expect("JPKI_TEST_WORKDIR (the harness)");
    let dir = Path::new(&base).join(format!("extended-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test directory");
    dir
}

fn tool(home: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("pkcs11-tool");
    cmd.arg("--module")
        .arg(module_path())
        .args(args)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("JPKI_PKCS11_CACHE")
        .env_remove("JPKI_PKCS11_EXTENDED_APDU")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("pkcs11-tool runs (apt-get install opensc)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn read_cert(home: &Path, env: &[(&str, &str)], slot: &str, id: &str) -> Vec<u8> {
    let out = home.join(format!("cert-{slot}-{id}.der"));
    let _ = std::fs::remove_file(&out);
    let out_s = out.to_string_lossy().to_string();
    let args = [
        "--slot-index",
        slot,
        "--read-object",
        "--type",
        "cert",
        "--id",
        id,
        "-o",
        &out_s,
    ];
    let (ok, text) = tool(home, env, &args);
    assert!(ok, "pkcs11-tool {args:?}: {text}");
    std::fs::read(&out).expect("certificate written")
}

/// The harness card's certificates: authentication, its CA, the signature CA.
fn card_certs() -> [Vec<u8>; 3] {
    let dir = fresh_dir("export");
    let bin = std::env::var("JPKI_TEST_CARD_BIN").expect("JPKI_TEST_CARD_BIN");
    let state = std::env::var("JPKI_TEST_STATE").expect("JPKI_TEST_STATE");
    let status = Command::new(bin)
        .args(["export", "--state", &state, "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .expect("export");
    assert!(status.success());
    let read = |n: &str| std::fs::read(dir.join(format!("{n}.der"))).expect("exported");
    [
        read("auth_cert"),
        read("auth_ca_cert"),
        read("sign_ca_cert"),
    ]
}

/// Login and one signature with the authentication key; the signature must verify with the
/// card's certificate.
fn sign_checked(home: &Path, env: &[(&str, &str)], auth_cert: &[u8]) {
    let msg = home.join("msg");
    let sig = home.join("sig");
    std::fs::write(&msg, b"extended APDU test").expect("msg");
    let _ = std::fs::remove_file(&sig);
    let (ok, text) = tool(
        home,
        env,
        &[
            "--slot-index",
            "0",
            "--login",
            "--pin",
            AUTH_PIN,
            "--sign",
            "--mechanism",
            "SHA256-RSA-PKCS",
            "--id",
            "01",
            "-i",
            &msg.to_string_lossy(),
            "-o",
            &sig.to_string_lossy(),
        ],
    );
    assert!(ok, "sign: {text}");
    let cert = x509_cert::Certificate::from_der(auth_cert).expect("cert");
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .expect("spki");
    let key = RsaPublicKey::from_public_key_der(&spki).expect("key");
    let signature = std::fs::read(&sig).expect("signature");
    key.verify(
        Pkcs1v15Sign::new::<Sha256>(),
        &Sha256::digest(b"extended APDU test"),
        &signature,
    )
    .expect("the signature verifies with the card's certificate");
}

fn extended_apdus() -> u64 {
    stats().get("extended_apdus")
}

/// One mode: two processes with the same cache, then a login and a signature.
fn run_mode(mode: &str, accepted: bool) {
    let home = fresh_dir(&mode.replace(':', "-"));
    let certs = card_certs();
    ctl(&format!("extended-apdu {mode}"));
    ctl("reset-stats");
    // First process: the identity chunk, then the rest (the probe), then a CA certificate.
    assert_eq!(read_cert(&home, &[], "0", "01"), certs[0], "{mode}");
    assert_eq!(read_cert(&home, &[], "0", "03"), certs[1], "{mode}");
    assert_eq!(read_cert(&home, &[], "1", "04"), certs[2], "{mode}");
    let tried = extended_apdus();
    if accepted {
        assert!(tried >= 1, "{mode}: extended reads used");
    } else {
        assert_eq!(
            tried, 1,
            "{mode}: tried once, then remembered for this reader"
        );
    }
    sign_checked(&home, &[], &certs[0]);
    // A new cache (another user, or the cache cleared): the form is learnt again, once.
    let other = fresh_dir(&format!("{}-again", mode.replace(':', "-")));
    ctl("reset-stats");
    assert_eq!(read_cert(&other, &[], "1", "04"), certs[2], "{mode}");
    if !accepted {
        assert_eq!(extended_apdus(), 1, "{mode}: learnt again, once");
    }
    ctl("extended-apdu card");
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_card_and_reader_that_take_extended_reads() {
    require_harness();
    let _g = serial();
    run_mode("accept", true);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_card_that_refuses_extended_le() {
    require_harness();
    let _g = serial();
    run_mode("refuse", false);
    run_mode("sw:6A86", false);
    run_mode("sw:6D00", false);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn a_reader_that_drops_extended_apdus() {
    require_harness();
    let _g = serial();
    run_mode("drop", false);
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn switched_off_no_extended_apdu_is_sent() {
    require_harness();
    let _g = serial();
    let certs = card_certs();
    let home = fresh_dir("off-env");
    let env = [("JPKI_PKCS11_EXTENDED_APDU", "off")];
    ctl("extended-apdu accept");
    ctl("reset-stats");
    assert_eq!(read_cert(&home, &env, "0", "01"), certs[0]);
    assert_eq!(read_cert(&home, &env, "1", "04"), certs[2]);
    assert_eq!(extended_apdus(), 0, "switched off in the environment");
    ctl("extended-apdu card");
}
