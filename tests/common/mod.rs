//! Helpers shared by the PKCS#11 integration tests (`tests/pkcs11_*.rs`): loading the module
//! under test, raw calls through its function list, the virtual card's control socket, and
//! independent signature checks.
//!
//! The module is loaded from `JPKI_MODULE` if set, else `target/debug/libjpki_pkcs11.so`.
//! `cargo test` does not build the cdylib for integration tests: run `cargo build --lib`
//! (or `cargo build --release --lib` with `JPKI_MODULE=target/release/libjpki_pkcs11.so`)
//! first.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod client;
pub mod tokens;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::ptr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki_sys::*;
use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};

pub const AUTH_PIN: &str = "1234";
pub const SIGN_PASSWORD: &str = "ABC123";

/// Slot IDs of the first reader (include/jpki-pkcs11.h): auth 0, sign 1; the harness's spare
/// empty reader gives 2 and 3.
pub const AUTH_SLOT: CK_SLOT_ID = 0;
pub const SIGN_SLOT: CK_SLOT_ID = 1;
pub const EMPTY_AUTH_SLOT: CK_SLOT_ID = 2;
pub const EMPTY_SIGN_SLOT: CK_SLOT_ID = 3;

/// The tests share one card, one pcscd and the module's global state: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asserts that the harness is around. The tests that call this are `#[ignore]`d, so a plain
/// `cargo test` lists them as ignored; run with `--include-ignored` outside the harness they
/// fail, never pass without having tested anything.
pub fn require_harness() {
    assert!(
        std::env::var("JPKI_PCSC_TEST").as_deref() == Ok("1"),
        "needs pcscd: run through tests/harness/with-card.sh (it sets JPKI_PCSC_TEST=1)"
    );
}

pub fn profile() -> String {
    std::env::var("JPKI_TEST_PROFILE").unwrap_or_else(|_| "conservative".into())
}

/// The module under test.
pub fn module_path() -> PathBuf {
    let path = match std::env::var_os("JPKI_MODULE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debug/libjpki_pkcs11.so"),
    };
    assert!(
        path.exists(),
        "{} missing: run `cargo build --lib` first (or set JPKI_MODULE)",
        path.display()
    );
    path
}

/// An initialised cryptoki context that finalises the module when dropped (also on a failed
/// assertion), so the next test starts from `C_Initialize` again.
pub struct Ctx {
    pub p: Pkcs11,
    pub raw: Raw,
}

impl Ctx {
    pub fn new() -> Ctx {
        let path = module_path();
        let p = Pkcs11::new(&path).expect("load the module");
        p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("C_Initialize");
        Ctx {
            p,
            raw: Raw::load(),
        }
    }

    /// Finalises and initialises again (a fresh module: nothing cached).
    pub fn reinit(&self) {
        self.raw.finalize();
        self.p
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("C_Initialize");
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.raw.finalize();
    }
}

/// The module's function lists, called directly (exact return values; functions cryptoki
/// does not expose). Loaded with the same path, hence the same module instance and state as
/// the cryptoki context.
pub struct Raw {
    _lib: cryptoki_sys::Pkcs11,
    pub f: CK_FUNCTION_LIST,
    pub f3: CK_FUNCTION_LIST_3_0,
}

macro_rules! call {
    ($raw:expr, $name:ident ( $($arg:expr),* $(,)? )) => {{
        let f = $raw.f.$name.expect(concat!(stringify!($name), " in the function list"));
        #[allow(unused_unsafe)]
        unsafe { f($($arg),*) }
    }};
}
pub(crate) use call;

macro_rules! call3 {
    ($raw:expr, $name:ident ( $($arg:expr),* $(,)? )) => {{
        let f = $raw.f3.$name.expect(concat!(stringify!($name), " in the 3.0 function list"));
        #[allow(unused_unsafe)]
        unsafe { f($($arg),*) }
    }};
}
pub(crate) use call3;

impl Raw {
    pub fn load() -> Raw {
        // SAFETY: loading our own module; its initialisers have no preconditions.
        let lib = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("dlopen module");
        let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
        // SAFETY: valid out pointer.
        assert_eq!(unsafe { lib.C_GetFunctionList(&mut list) }, CKR_OK);
        assert!(!list.is_null());
        // SAFETY: the module returned a pointer to its static function list.
        let f = unsafe { *list };
        let mut iface: *mut CK_INTERFACE = ptr::null_mut();
        let name = b"PKCS 11\0";
        let mut v3 = CK_VERSION { major: 3, minor: 0 };
        // SAFETY: valid NUL-terminated name, version and out pointer.
        let rv = unsafe { lib.C_GetInterface(name.as_ptr() as *mut _, &mut v3, &mut iface, 0) };
        assert_eq!(rv, CKR_OK, "C_GetInterface(\"PKCS 11\", 3.0)");
        // SAFETY: the interface points to the module's static 3.0 function list.
        let f3 = unsafe { *((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0) };
        Raw { _lib: lib, f, f3 }
    }

    pub fn finalize(&self) -> CK_RV {
        call!(self, C_Finalize(ptr::null_mut()))
    }

    pub fn open(&self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE, CK_RV> {
        let mut h: CK_SESSION_HANDLE = 0;
        let rv = call!(
            self,
            C_OpenSession(slot, flags, ptr::null_mut(), None, &mut h)
        );
        if rv == CKR_OK {
            Ok(h)
        } else {
            Err(rv)
        }
    }

    pub fn open_ro(&self, slot: CK_SLOT_ID) -> CK_SESSION_HANDLE {
        self.open(slot, CKF_SERIAL_SESSION).expect("C_OpenSession")
    }

    pub fn login(&self, s: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> CK_RV {
        call!(
            self,
            C_Login(s, user, pin.as_ptr() as *mut _, pin.len() as CK_ULONG)
        )
    }

    pub fn logout(&self, s: CK_SESSION_HANDLE) -> CK_RV {
        call!(self, C_Logout(s))
    }

    pub fn session_info(&self, s: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO, CK_RV> {
        let mut info = CK_SESSION_INFO::default();
        match call!(self, C_GetSessionInfo(s, &mut info)) {
            CKR_OK => Ok(info),
            rv => Err(rv),
        }
    }

    pub fn token_info(&self, slot: CK_SLOT_ID) -> Result<CK_TOKEN_INFO, CK_RV> {
        let mut info = CK_TOKEN_INFO::default();
        match call!(self, C_GetTokenInfo(slot, &mut info)) {
            CKR_OK => Ok(info),
            rv => Err(rv),
        }
    }

    pub fn slot_info(&self, slot: CK_SLOT_ID) -> Result<CK_SLOT_INFO, CK_RV> {
        // SAFETY: all-zero is a valid CK_SLOT_INFO (integers and byte arrays).
        let mut info: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
        match call!(self, C_GetSlotInfo(slot, &mut info)) {
            CKR_OK => Ok(info),
            rv => Err(rv),
        }
    }

    pub fn slot_list(&self, present: bool) -> Result<Vec<CK_SLOT_ID>, CK_RV> {
        let flag = if present { CK_TRUE } else { CK_FALSE };
        let mut n: CK_ULONG = 0;
        let rv = call!(self, C_GetSlotList(flag, ptr::null_mut(), &mut n));
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut list = vec![0; n as usize];
        let rv = call!(self, C_GetSlotList(flag, list.as_mut_ptr(), &mut n));
        if rv != CKR_OK {
            return Err(rv);
        }
        list.truncate(n as usize);
        Ok(list)
    }

    /// `C_FindObjectsInit` + `C_FindObjects` (batches of 2) + `C_FindObjectsFinal`.
    pub fn find(
        &self,
        s: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Result<Vec<CK_OBJECT_HANDLE>, CK_RV> {
        let mut attrs: Vec<CK_ATTRIBUTE> = template
            .iter()
            .map(|(t, v)| CK_ATTRIBUTE {
                type_: *t,
                pValue: v.as_ptr() as *mut _,
                ulValueLen: v.len() as CK_ULONG,
            })
            .collect();
        let rv = call!(
            self,
            C_FindObjectsInit(s, attrs.as_mut_ptr(), attrs.len() as CK_ULONG)
        );
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut out = Vec::new();
        loop {
            let mut batch = [0 as CK_OBJECT_HANDLE; 2];
            let mut n: CK_ULONG = 0;
            let rv = call!(self, C_FindObjects(s, batch.as_mut_ptr(), 2, &mut n));
            if rv != CKR_OK {
                return Err(rv);
            }
            if n == 0 {
                break;
            }
            out.extend_from_slice(&batch[..n as usize]);
        }
        match call!(self, C_FindObjectsFinal(s)) {
            CKR_OK => Ok(out),
            rv => Err(rv),
        }
    }

    /// One attribute, with the two-call convention.
    pub fn attr(
        &self,
        s: CK_SESSION_HANDLE,
        o: CK_OBJECT_HANDLE,
        ty: CK_ATTRIBUTE_TYPE,
    ) -> Result<Vec<u8>, CK_RV> {
        let mut a = CK_ATTRIBUTE {
            type_: ty,
            pValue: ptr::null_mut(),
            ulValueLen: 0,
        };
        let rv = call!(self, C_GetAttributeValue(s, o, &mut a, 1));
        if rv != CKR_OK {
            if rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID {
                assert_eq!(
                    a.ulValueLen, CK_UNAVAILABLE_INFORMATION,
                    "attr {ty:#x}: rv {rv:#x}"
                );
            }
            return Err(rv);
        }
        let mut buf = vec![0u8; a.ulValueLen as usize];
        a.pValue = buf.as_mut_ptr() as *mut _;
        let rv = call!(self, C_GetAttributeValue(s, o, &mut a, 1));
        if rv != CKR_OK {
            return Err(rv);
        }
        buf.truncate(a.ulValueLen as usize);
        Ok(buf)
    }

    pub fn attr_ulong(
        &self,
        s: CK_SESSION_HANDLE,
        o: CK_OBJECT_HANDLE,
        ty: CK_ATTRIBUTE_TYPE,
    ) -> CK_ULONG {
        let v = self
            .attr(s, o, ty)
            .unwrap_or_else(|rv| panic!("attr {ty:#x}: {rv:#x}"));
        CK_ULONG::from_ne_bytes(v.try_into().expect("CK_ULONG-sized value"))
    }

    pub fn attr_bool(
        &self,
        s: CK_SESSION_HANDLE,
        o: CK_OBJECT_HANDLE,
        ty: CK_ATTRIBUTE_TYPE,
    ) -> bool {
        let v = self
            .attr(s, o, ty)
            .unwrap_or_else(|rv| panic!("attr {ty:#x}: {rv:#x}"));
        assert_eq!(v.len(), 1, "CK_BBOOL {ty:#x}");
        v[0] != CK_FALSE
    }

    pub fn sign_init(
        &self,
        s: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        let mut m = CK_MECHANISM {
            mechanism: mech,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        call!(self, C_SignInit(s, &mut m, key))
    }

    pub fn verify_init(
        &self,
        s: CK_SESSION_HANDLE,
        mech: CK_MECHANISM_TYPE,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        let mut m = CK_MECHANISM {
            mechanism: mech,
            pParameter: ptr::null_mut(),
            ulParameterLen: 0,
        };
        call!(self, C_VerifyInit(s, &mut m, key))
    }

    /// `C_Sign` with the two-call convention.
    pub fn sign(&self, s: CK_SESSION_HANDLE, data: &[u8]) -> Result<Vec<u8>, CK_RV> {
        let mut n: CK_ULONG = 0;
        let rv = call!(
            self,
            C_Sign(
                s,
                data.as_ptr() as *mut _,
                data.len() as CK_ULONG,
                ptr::null_mut(),
                &mut n
            )
        );
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut sig = vec![0u8; n as usize];
        let rv = call!(
            self,
            C_Sign(
                s,
                data.as_ptr() as *mut _,
                data.len() as CK_ULONG,
                sig.as_mut_ptr(),
                &mut n
            )
        );
        if rv != CKR_OK {
            return Err(rv);
        }
        sig.truncate(n as usize);
        Ok(sig)
    }
}

/// Wait `wait_timeout`, polling `f` every 50 ms.
pub fn retry<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The return value of a cryptoki result (CKR_OK for `Ok`).
pub fn rv_of<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> Option<RvError> {
    match r {
        Ok(_) => None,
        Err(CkError::Pkcs11(e, _)) => Some(e),
        Err(e) => panic!("not a PKCS#11 error: {e:?}"),
    }
}

// ----- the virtual card ------------------------------------------------------------------

/// One control command to the harness's virtual card; returns the reply after "ok ".
pub fn ctl(command: &str) -> String {
    let socket =
        std::env::var("JPKI_TEST_CONTROL").expect("JPKI_TEST_CONTROL (run in the harness)");
    let mut stream = UnixStream::connect(&socket).expect("card control socket");
    writeln!(stream, "{command}").expect("send control command");
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .expect("control reply");
    let reply = reply.trim_end();
    match reply.strip_prefix("ok") {
        Some(rest) => rest.trim_start().to_string(),
        None => panic!("ctl {command}: {reply}"),
    }
}

/// The card's statistics (`stats`), as JSON text.
pub struct Stats(String);

impl Stats {
    pub fn get(&self, key: &str) -> u64 {
        let pat = format!("\"{key}\":");
        let start = self
            .0
            .find(&pat)
            .unwrap_or_else(|| panic!("{key} in {}", self.0))
            + pat.len();
        self.0[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .expect("number")
    }
    pub fn apdus(&self) -> u64 {
        self.get("apdus")
    }
}

pub fn stats() -> Stats {
    Stats(ctl("stats"))
}

/// Tries left per the card itself (`status`): (auth, sign).
pub fn card_tries() -> (u64, u64) {
    let status = ctl("status");
    let field = |name: &str| -> u64 {
        status
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("auth_tries_left"), field("sign_tries_left"))
}

/// Lines of the card's APDU log (PIN bytes are redacted there).
pub fn apdu_log() -> Vec<String> {
    let path = std::env::var("JPKI_TEST_APDU_LOG").expect("JPKI_TEST_APDU_LOG");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until pcscd reports the first reader with (`true`) or without a card, using a PC/SC
/// context of the test's own (not the module).
pub fn wait_pcsc_card(present: bool) {
    let context = pcsc::Context::establish(pcsc::Scope::User).expect("PC/SC context");
    retry(
        if present {
            "pcscd to see the card"
        } else {
            "pcscd to see the removal"
        },
        Duration::from_secs(10),
        || {
            let readers = context.list_readers_owned().ok()?;
            let first = readers.first()?;
            let mut st = [pcsc::ReaderState::new(first.clone(), pcsc::State::UNAWARE)];
            context.get_status_change(Duration::ZERO, &mut st).ok()?;
            let state = st[0].event_state();
            let has = state.contains(pcsc::State::PRESENT) && !state.contains(pcsc::State::MUTE);
            (has == present).then_some(())
        },
    );
}

// ----- independent checks --------------------------------------------------------------

/// The RSA public key of a DER certificate, parsed with x509-cert (not the module's parser).
pub fn cert_public_key(cert_der: &[u8]) -> RsaPublicKey {
    let cert = x509_cert::Certificate::from_der(cert_der).expect("certificate parses");
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .expect("SPKI encodes");
    RsaPublicKey::from_public_key_der(&spki).expect("RSA public key")
}

/// Hashes `data` with the hash of a `CKM_SHA*_RSA_PKCS` mechanism; returns the digest and
/// the rsa crate's padding scheme for it.
pub fn hash_for(mech: CK_MECHANISM_TYPE, data: &[u8]) -> (Vec<u8>, Pkcs1v15Sign) {
    use sha2::Digest;
    match mech {
        CKM_SHA1_RSA_PKCS => (
            sha1::Sha1::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha1::Sha1>(),
        ),
        CKM_SHA224_RSA_PKCS => (
            sha2::Sha224::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha2::Sha224>(),
        ),
        CKM_SHA256_RSA_PKCS => (
            sha2::Sha256::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha2::Sha256>(),
        ),
        CKM_SHA384_RSA_PKCS => (
            sha2::Sha384::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha2::Sha384>(),
        ),
        CKM_SHA512_RSA_PKCS => (
            sha2::Sha512::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha2::Sha512>(),
        ),
        CKM_RSA_PKCS => (data.to_vec(), Pkcs1v15Sign::new_unprefixed()),
        other => panic!("no hash for mechanism {other:#x}"),
    }
}

/// A DER DigestInfo for SHA-256 of `data` (what TLS clients pass to `CKM_RSA_PKCS`).
pub fn sha256_digest_info(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let mut di = Pkcs1v15Sign::new::<sha2::Sha256>().prefix.to_vec();
    di.extend_from_slice(&sha2::Sha256::digest(data));
    di
}

/// Checks `signature` over `data` as the mechanism defines it, with the certificate's key.
pub fn verify_independently(
    cert_der: &[u8],
    mech: CK_MECHANISM_TYPE,
    data: &[u8],
    signature: &[u8],
) {
    let key = cert_public_key(cert_der);
    let (hashed, scheme) = hash_for(mech, data);
    key.verify(scheme, &hashed, signature)
        .unwrap_or_else(|e| panic!("signature ({mech:#x}) does not verify: {e}"));
}

/// Encoded attribute values for templates.
pub fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub fn bbool(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

// ----- another PC/SC client -------------------------------------------------------------

/// Sends APDUs to the card in the first reader as another application would: its own shared
/// connection, one transaction, no SELECT of the JPKI AP (that would clear the card's security
/// state). Returns the status word of each command.
pub fn other_client(commands: &[Vec<u8>]) -> Vec<u16> {
    let context = pcsc::Context::establish(pcsc::Scope::User).expect("PC/SC context");
    let readers = context.list_readers_owned().expect("readers");
    let mut card = context
        .connect(&readers[0], pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .expect("connect");
    let tx = card.transaction().expect("transaction");
    let mut out = Vec::new();
    for c in commands {
        let mut buf = [0u8; 300];
        let r = tx.transmit(c, &mut buf).expect("transmit");
        assert!(r.len() >= 2);
        out.push(u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]));
    }
    tx.end(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .expect("end");
    card.disconnect(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .expect("disconnect");
    out
}

/// Another application tries to sign with key EF `key_ef` (0017 auth, 001A sign) on the card's
/// current state: the status word of COMPUTE DIGITAL SIGNATURE (9000 = the card's security
/// state for that key is open, 6982 = closed). Panics if the JPKI AP is not the current DF.
pub fn other_client_signs(key_ef: u16) -> u16 {
    let [hi, lo] = key_ef.to_be_bytes();
    let di = sha256_digest_info(b"another application");
    let mut sign = vec![0x80, 0x2A, 0x00, 0x80, di.len() as u8];
    sign.extend_from_slice(&di);
    sign.push(0x00);
    let sw = other_client(&[vec![0x00, 0xA4, 0x02, 0x0C, 0x02, hi, lo], sign]);
    assert_eq!(sw[0], 0x9000, "SELECT EF {key_ef:04X} (JPKI AP current)");
    sw[1]
}

/// Another application sends a VERIFY of `pin` to PIN EF `pin_ef` (0018 auth, 001B sign);
/// returns its status word.
pub fn other_client_verifies(pin_ef: u16, pin: &[u8]) -> u16 {
    let [hi, lo] = pin_ef.to_be_bytes();
    let mut verify = vec![0x00, 0x20, 0x00, 0x80, pin.len() as u8];
    verify.extend_from_slice(pin);
    let sw = other_client(&[vec![0x00, 0xA4, 0x02, 0x0C, 0x02, hi, lo], verify]);
    assert_eq!(sw[0], 0x9000, "SELECT EF {pin_ef:04X} (JPKI AP current)");
    sw[1]
}
