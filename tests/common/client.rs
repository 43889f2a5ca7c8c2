//! A real client in its own process: `pkcs11-tool` runs against the module with a cache and
//! configuration home of the test's own, for the tests of what one process leaves to the next
//! (`tests/cert_cache.rs`, `tests/extended_apdu.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256};

use super::{cert_public_key, module_path, AUTH_PIN};

/// A fresh, empty directory `NAME` under the harness's work directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    let base = std::env::var("JPKI_TEST_WORKDIR").expect("JPKI_TEST_WORKDIR (the harness)");
    let dir = Path::new(&base).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test directory");
    dir
}

/// Runs `pkcs11-tool --module M ARGS` with `home/cache` as the XDG cache home and
/// `home/config` as the configuration home, the module's own settings cleared, then `env`.
pub fn tool(home: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
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

/// Reads certificate `id` of slot index `slot` (after a login with `login`, if given).
pub fn read_cert(
    home: &Path,
    env: &[(&str, &str)],
    slot: &str,
    id: &str,
    login: Option<&str>,
) -> Vec<u8> {
    let out = home.join(format!("cert-{slot}-{id}.der"));
    let _ = std::fs::remove_file(&out);
    let mut args = vec!["--slot-index", slot];
    if let Some(pin) = login {
        args.extend(["--login", "--pin", pin]);
    }
    let out_s = out.to_string_lossy().to_string();
    args.extend(["--read-object", "--type", "cert", "--id", id, "-o", &out_s]);
    let (ok, text) = tool(home, env, &args);
    assert!(ok, "pkcs11-tool {args:?}: {text}");
    std::fs::read(&out).expect("certificate written")
}

/// Logs in and signs `msg` (SHA256-RSA-PKCS) with the authentication key;
/// `Some(signature)` on success.
pub fn auth_sign(home: &Path, env: &[(&str, &str)], msg: &[u8]) -> Option<Vec<u8>> {
    let m = home.join("auth-msg");
    let s = home.join("auth-sig");
    std::fs::write(&m, msg).expect("msg");
    let _ = std::fs::remove_file(&s);
    let (m, s_path) = (
        m.to_string_lossy().to_string(),
        s.to_string_lossy().to_string(),
    );
    let args = [
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
        &m,
        "-o",
        &s_path,
    ];
    let (ok, _) = tool(home, env, &args);
    if ok {
        std::fs::read(&s).ok()
    } else {
        None
    }
}

/// Whether `sig` is a SHA256-RSA-PKCS signature of `msg` by the key of `cert` (checked with
/// the rsa crate, not the module).
pub fn verifies(cert: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    cert_public_key(cert)
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), sig)
        .is_ok()
}

/// The certificates of the virtual card whose state file is `state` (created from `seed` if
/// it does not exist): authentication, its CA, the signature CA, the signature certificate.
pub fn card_certs(state: &str, seed: u64, name: &str) -> [Vec<u8>; 4] {
    let dir = fresh_dir(&format!("export-{name}"));
    let bin = std::env::var("JPKI_TEST_CARD_BIN").expect("JPKI_TEST_CARD_BIN");
    let status = Command::new(bin)
        .args(["export", "--state", state, "--out"])
        .arg(&dir)
        .args(["--seed", &seed.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("export");
    assert!(status.success());
    let read = |n: &str| std::fs::read(dir.join(format!("{n}.der"))).expect("exported");
    [
        read("auth_cert"),
        read("auth_ca_cert"),
        read("sign_ca_cert"),
        read("sign_cert"),
    ]
}

/// The certificates of the harness's card.
pub fn harness_card() -> [Vec<u8>; 4] {
    let state = std::env::var("JPKI_TEST_STATE").expect("JPKI_TEST_STATE");
    card_certs(&state, 1, "harness")
}
