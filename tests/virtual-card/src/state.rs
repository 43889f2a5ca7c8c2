//! The persistent contents of a virtual card: PINs and their counters, keys, certificates,
//! token information and the (fake) personal data.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;

use der::DateTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::apdu::{hex, unhex};
use crate::certs::{self, EeParams, Hierarchy};
use crate::{DEFAULT_AUTH_PIN, DEFAULT_KENHOJO_PIN, DEFAULT_SIGN_PASSWORD};

/// Maximum tries of the auth PIN (EF 0018), jpki-card.md §5 [C].
pub const AUTH_MAX_TRIES: u8 = 3;
/// Maximum tries of the signature password (EF 001B), jpki-card.md §5 [C].
pub const SIGN_MAX_TRIES: u8 = 5;
/// Maximum tries of the kenhojo PIN (text AP EF 0011), jpki-card.md §5 [C].
pub const KENHOJO_MAX_TRIES: u8 = 3;

/// Token label of a physical My Number Card (EF 0006, jpki-card.md §3 [C]).
pub const TOKEN_LABEL: &str = "JPKIAPICCTOKEN2";

/// Fake personal data of the holder, as printed on the card and carried by the signature
/// certificate and the text (券面事項入力補助) AP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalData {
    /// 12-digit individual number (valid check digit, fake).
    pub my_number: String,
    /// 氏名, e.g. `山田 太郎`.
    pub name: String,
    /// 氏名 in substitute characters (代替文字); equal to `name` when no substitution is needed.
    pub name_substitute: String,
    /// ISO 5218 digit: "1" male, "2" female.
    pub sex: String,
    /// Date of birth `EYYYYMMDD` (era digit + Gregorian date), as in the signature certificate.
    pub birth_date_era: String,
    /// 住所.
    pub address: String,
    /// 住所 in substitute characters.
    pub address_substitute: String,
    /// Locality for the signature certificate subject, e.g. `Kiyose-shi`.
    pub locality: String,
}

/// Everything a card keeps across power cycles.
#[derive(Clone, PartialEq)]
pub struct CardState {
    pub auth_pin: String,
    pub sign_password: String,
    pub kenhojo_pin: String,
    pub auth_tries_left: u8,
    pub sign_tries_left: u8,
    pub kenhojo_tries_left: u8,
    /// Seed the card was generated from.
    pub seed: u64,
    /// Private keys of the two test CAs: kept so that renewed end-entity certificates
    /// (`certs days N`) are signed by the same CA and still verify against EF 000B / 0002.
    pub auth_ca_key: RsaPrivateKey,
    pub sign_ca_key: RsaPrivateKey,
    /// User authentication private key (EF 0017).
    pub auth_key: RsaPrivateKey,
    /// Digital signature private key (EF 001A).
    pub sign_key: RsaPrivateKey,
    /// DER of EF 000A, 000B, 0001, 0002 (without filler).
    pub auth_cert: Vec<u8>,
    pub auth_ca_cert: Vec<u8>,
    pub sign_cert: Vec<u8>,
    pub sign_ca_cert: Vec<u8>,
    /// Token label (EF 0006), normally [`TOKEN_LABEL`].
    pub token_label: String,
    /// Per-card serial number in EF 0006 (16 ASCII characters, derived from the seed).
    pub token_serial: String,
    /// Opaque CNs of the end-entity certificates.
    pub auth_cn: String,
    pub sign_cn: String,
    pub personal: PersonalData,
}

impl fmt::Debug for CardState {
    /// PINs and keys are never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardState")
            .field("seed", &self.seed)
            .field("auth_tries_left", &self.auth_tries_left)
            .field("sign_tries_left", &self.sign_tries_left)
            .field("kenhojo_tries_left", &self.kenhojo_tries_left)
            .field("token_label", &self.token_label)
            .field("token_serial", &self.token_serial)
            .field("auth_cn", &self.auth_cn)
            .field("sign_cn", &self.sign_cn)
            .finish_non_exhaustive()
    }
}

const FAMILY: [(&str, &str); 6] = [
    ("山田", "YAMADA"),
    ("佐藤", "SATO"),
    ("鈴木", "SUZUKI"),
    ("高橋", "TAKAHASHI"),
    ("田中", "TANAKA"),
    ("渡辺", "WATANABE"),
];
const GIVEN: [(&str, &str); 6] = [
    ("太郎", "1"),
    ("花子", "2"),
    ("一郎", "1"),
    ("美咲", "2"),
    ("健太", "1"),
    ("陽子", "2"),
];
const CN_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn opaque_cn(rng: &mut ChaCha20Rng) -> String {
    // Shape of the test card's `997794E9AGCIEG13221003A`: 23 upper-case alphanumerics.
    (0..23)
        .map(|_| CN_ALPHABET[rng.gen_range(0..CN_ALPHABET.len())] as char)
        .collect()
}

/// A fake 12-digit individual number with the correct check digit.
fn my_number(rng: &mut ChaCha20Rng) -> String {
    let digits: Vec<u32> = (0..11).map(|_| rng.gen_range(0..10)).collect();
    // P_n is the n-th digit counted from the right (n = 1..11), Q_n = n+1 (n ≤ 6) else n−5.
    let sum: u32 = (1..=11)
        .map(|n| {
            let p = digits[11 - n];
            let q = if n <= 6 { n + 1 } else { n - 5 } as u32;
            p * q
        })
        .sum();
    let r = sum % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    digits
        .iter()
        .chain(std::iter::once(&check))
        .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
        .collect()
}

fn personal(rng: &mut ChaCha20Rng) -> PersonalData {
    let (family, _) = FAMILY[rng.gen_range(0..FAMILY.len())];
    let (given, sex) = GIVEN[rng.gen_range(0..GIVEN.len())];
    let year = rng.gen_range(1950..2005u32);
    let month = rng.gen_range(1..=12u32);
    let day = rng.gen_range(1..=28u32);
    // Era digit: 3 = Shōwa (to 1989-01-07), 4 = Heisei. Birth dates here avoid the edge.
    let era = if year < 1989 { 3 } else { 4 };
    let chome = ["一", "二", "三", "四", "五"][rng.gen_range(0..5)];
    let banchi = rng.gen_range(1..=999u32);
    let name = format!("{family}\u{3000}{given}");
    let address = format!("東京都清瀬市中里{chome}丁目{banchi}番地");
    PersonalData {
        my_number: my_number(rng),
        name_substitute: name.clone(),
        name,
        sex: sex.to_string(),
        birth_date_era: format!("{era}{year:04}{month:02}{day:02}"),
        address_substitute: address.clone(),
        address,
        locality: "Kiyose-shi".to_string(),
    }
}

fn serial_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut s: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
    s[0] = (s[0] & 0x7F) | 0x01; // positive, minimal DER
    s
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// The CA keys [`CardState::generate`] draws first from the seed.
fn derive_ca_keys(seed: u64) -> (RsaPrivateKey, RsaPrivateKey) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut key =
        || RsaPrivateKey::new(&mut rng, 2048).expect("RSA-2048 key generation cannot fail");
    let auth = key();
    let sign = key();
    (auth, sign)
}

/// When renewed end-entity certificates expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAfter {
    /// This many days from now (negative: expired that many days ago), at the same time of day.
    Days(i64),
    /// This date at 14:59:59 UTC (23:59:59 in Japan, as JPKI certificates end).
    Date { year: u16, month: u8, day: u8 },
}

impl NotAfter {
    /// Parses `YYYY-MM-DD`.
    pub fn parse_date(text: &str) -> Result<NotAfter, String> {
        let bad = || format!("bad date {text:?} (YYYY-MM-DD)");
        let mut it = text.trim().splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        let (year, month, day) = (
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        );
        let parsed = NotAfter::Date { year, month, day };
        parsed.resolve()?;
        Ok(parsed)
    }

    /// The instant; certificates use UTCTime, so it must fall in 1955..2049 (five years of
    /// validity before it included).
    fn resolve(self) -> Result<DateTime, String> {
        let dt = match self {
            NotAfter::Days(n) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| e.to_string())?
                    .as_secs() as i64;
                let secs = now
                    .checked_add(n.checked_mul(86_400).ok_or("day count out of range")?)
                    .filter(|s| *s >= 0)
                    .ok_or("day count out of range")?;
                DateTime::from_unix_duration(std::time::Duration::from_secs(secs as u64))
                    .map_err(|e| format!("day count out of range: {e}"))?
            }
            NotAfter::Date { year, month, day } => DateTime::new(year, month, day, 14, 59, 59)
                .map_err(|_| format!("bad date {year:04}-{month:02}-{day:02}"))?,
        };
        if !(1955..=2049).contains(&dt.year()) {
            return Err(format!("{} is outside 1955..2049 (UTCTime)", dt.year()));
        }
        Ok(dt)
    }
}

/// On-disk form of [`CardState`] (JSON, binary fields as hex).
#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    seed: u64,
    auth_pin: String,
    sign_password: String,
    kenhojo_pin: String,
    auth_tries_left: u8,
    sign_tries_left: u8,
    kenhojo_tries_left: u8,
    auth_key_pkcs8: String,
    sign_key_pkcs8: String,
    /// CA keys: absent in format 1 files, which get them derived again from the seed.
    #[serde(default)]
    auth_ca_key_pkcs8: Option<String>,
    #[serde(default)]
    sign_ca_key_pkcs8: Option<String>,
    auth_cert: String,
    auth_ca_cert: String,
    sign_cert: String,
    sign_ca_cert: String,
    token_label: String,
    token_serial: String,
    auth_cn: String,
    sign_cn: String,
    personal: PersonalData,
}

impl CardState {
    /// A new card: four fresh RSA-2048 keys (two CAs and the two card keys) and every other
    /// value derived deterministically from `seed`; PINs are the defaults with full counters.
    /// Key generation is slow; tests should use [`crate::test_state`].
    pub fn generate(seed: u64) -> CardState {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut key =
            || RsaPrivateKey::new(&mut rng, 2048).expect("RSA-2048 key generation cannot fail");
        let auth_ca_key = key();
        let sign_ca_key = key();
        let auth_key = key();
        let sign_key = key();
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x4A50_4B49_5643_4152);
        let personal = personal(&mut rng);
        let auth_cn = opaque_cn(&mut rng);
        let sign_cn = opaque_cn(&mut rng);
        let token_serial: String = format!("{:016X}", rng.gen::<u64>());
        let ca_serial_a = serial_bytes(&mut rng, 2);
        let ca_serial_s = serial_bytes(&mut rng, 2);
        let ee_serial_a = serial_bytes(&mut rng, 3);
        let ee_serial_s = serial_bytes(&mut rng, 3);
        let ok = "certificate issuance cannot fail for well-formed fixed inputs";
        let auth_ca_cert = certs::issue_ca(Hierarchy::Auth, &auth_ca_key, &ca_serial_a).expect(ok);
        let sign_ca_cert = certs::issue_ca(Hierarchy::Sign, &sign_ca_key, &ca_serial_s).expect(ok);
        let auth_cert = certs::issue_ee(
            &EeParams {
                hierarchy: Hierarchy::Auth,
                serial: &ee_serial_a,
                common_name: &auth_cn,
                locality: &personal.locality,
                personal: &personal,
                not_after: None,
            },
            &auth_key.to_public_key(),
            &auth_ca_key,
        )
        .expect(ok);
        let sign_cert = certs::issue_ee(
            &EeParams {
                hierarchy: Hierarchy::Sign,
                serial: &ee_serial_s,
                common_name: &sign_cn,
                locality: &personal.locality,
                personal: &personal,
                not_after: None,
            },
            &sign_key.to_public_key(),
            &sign_ca_key,
        )
        .expect(ok);
        CardState {
            auth_ca_key,
            sign_ca_key,
            auth_pin: DEFAULT_AUTH_PIN.to_string(),
            sign_password: DEFAULT_SIGN_PASSWORD.to_string(),
            kenhojo_pin: DEFAULT_KENHOJO_PIN.to_string(),
            auth_tries_left: AUTH_MAX_TRIES,
            sign_tries_left: SIGN_MAX_TRIES,
            kenhojo_tries_left: KENHOJO_MAX_TRIES,
            seed,
            auth_key,
            sign_key,
            auth_cert,
            auth_ca_cert,
            sign_cert,
            sign_ca_cert,
            token_label: TOKEN_LABEL.to_string(),
            token_serial,
            auth_cn,
            sign_cn,
            personal,
        }
    }

    /// Reads a state file written by [`CardState::save`].
    pub fn load(path: &Path) -> io::Result<CardState> {
        let text = std::fs::read_to_string(path)?;
        let f: StateFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if f.format != 1 && f.format != 2 {
            return Err(invalid(format!("unsupported state format {}", f.format)));
        }
        let bytes =
            |name: &str, s: &str| unhex(s).ok_or_else(|| invalid(format!("bad hex in {name}")));
        let key = |name: &str, s: &str| -> io::Result<RsaPrivateKey> {
            RsaPrivateKey::from_pkcs8_der(&bytes(name, s)?)
                .map_err(|e| invalid(format!("bad key {name}: {e}")))
        };
        let (auth_ca_key, sign_ca_key) = match (&f.auth_ca_key_pkcs8, &f.sign_ca_key_pkcs8) {
            (Some(a), Some(s)) => (key("auth_ca_key_pkcs8", a)?, key("sign_ca_key_pkcs8", s)?),
            // Format 1: the CA keys were the first two keys drawn from the seed.
            _ => derive_ca_keys(f.seed),
        };
        Ok(CardState {
            auth_ca_key,
            sign_ca_key,
            auth_key: key("auth_key_pkcs8", &f.auth_key_pkcs8)?,
            sign_key: key("sign_key_pkcs8", &f.sign_key_pkcs8)?,
            auth_cert: bytes("auth_cert", &f.auth_cert)?,
            auth_ca_cert: bytes("auth_ca_cert", &f.auth_ca_cert)?,
            sign_cert: bytes("sign_cert", &f.sign_cert)?,
            sign_ca_cert: bytes("sign_ca_cert", &f.sign_ca_cert)?,
            auth_pin: f.auth_pin,
            sign_password: f.sign_password,
            kenhojo_pin: f.kenhojo_pin,
            auth_tries_left: f.auth_tries_left.min(AUTH_MAX_TRIES),
            sign_tries_left: f.sign_tries_left.min(SIGN_MAX_TRIES),
            kenhojo_tries_left: f.kenhojo_tries_left.min(KENHOJO_MAX_TRIES),
            seed: f.seed,
            token_label: f.token_label,
            token_serial: f.token_serial,
            auth_cn: f.auth_cn,
            sign_cn: f.sign_cn,
            personal: f.personal,
        })
    }

    /// Writes the state atomically (temporary file in the same directory, fsync, rename).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let key = |k: &RsaPrivateKey| -> io::Result<String> {
            Ok(hex(k
                .to_pkcs8_der()
                .map_err(|e| invalid(e.to_string()))?
                .as_bytes()))
        };
        let f = StateFile {
            format: 2,
            seed: self.seed,
            auth_pin: self.auth_pin.clone(),
            sign_password: self.sign_password.clone(),
            kenhojo_pin: self.kenhojo_pin.clone(),
            auth_tries_left: self.auth_tries_left,
            sign_tries_left: self.sign_tries_left,
            kenhojo_tries_left: self.kenhojo_tries_left,
            auth_key_pkcs8: key(&self.auth_key)?,
            sign_key_pkcs8: key(&self.sign_key)?,
            auth_ca_key_pkcs8: Some(key(&self.auth_ca_key)?),
            sign_ca_key_pkcs8: Some(key(&self.sign_ca_key)?),
            auth_cert: hex(&self.auth_cert),
            auth_ca_cert: hex(&self.auth_ca_cert),
            sign_cert: hex(&self.sign_cert),
            sign_ca_cert: hex(&self.sign_ca_cert),
            token_label: self.token_label.clone(),
            token_serial: self.token_serial.clone(),
            auth_cn: self.auth_cn.clone(),
            sign_cn: self.sign_cn.clone(),
            personal: self.personal.clone(),
        };
        let text = serde_json::to_string_pretty(&f).map_err(|e| invalid(e.to_string()))?;
        let file_name = path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "state path has no file name")
        })?;
        let mut tmp_name = file_name.to_os_string();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        {
            let mut out = std::fs::File::create(&tmp)?;
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
            out.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// Issues the two end-entity certificates again, valid until `not_after`, signed by the
    /// same test CAs, for the same keys and holder, each with a new serial number (a CA never
    /// issues two certificates with one serial, and readers key caches on it).
    pub fn renew_certificates(&mut self, not_after: NotAfter) -> Result<String, String> {
        let end = not_after.resolve()?;
        let renewed =
            |old: &[u8], h: Hierarchy, cn: &str, key: &RsaPrivateKey, ca: &RsaPrivateKey| {
                let mut serial = Sha256::new()
                    .chain_update(old)
                    .chain_update(end.unix_duration().as_secs().to_be_bytes())
                    .finalize()[..3]
                    .to_vec();
                serial[0] = (serial[0] & 0x7F) | 0x01;
                certs::issue_ee(
                    &EeParams {
                        hierarchy: h,
                        serial: &serial,
                        common_name: cn,
                        locality: &self.personal.locality,
                        personal: &self.personal,
                        not_after: Some(end),
                    },
                    &key.to_public_key(),
                    ca,
                )
                .map_err(|e| format!("cannot issue the certificate: {e}"))
            };
        let auth = renewed(
            &self.auth_cert,
            Hierarchy::Auth,
            &self.auth_cn,
            &self.auth_key,
            &self.auth_ca_key,
        )?;
        let sign = renewed(
            &self.sign_cert,
            Hierarchy::Sign,
            &self.sign_cn,
            &self.sign_key,
            &self.sign_ca_key,
        )?;
        self.auth_cert = auth;
        self.sign_cert = sign;
        Ok(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            end.year(),
            end.month(),
            end.day(),
            end.hour(),
            end.minutes(),
            end.seconds()
        ))
    }

    /// DER of the user authentication certificate (EF 000A).
    pub fn auth_certificate(&self) -> &[u8] {
        &self.auth_cert
    }
    /// DER of the user authentication CA certificate (EF 000B).
    pub fn auth_ca_certificate(&self) -> &[u8] {
        &self.auth_ca_cert
    }
    /// DER of the digital signature certificate (EF 0001).
    pub fn sign_certificate(&self) -> &[u8] {
        &self.sign_cert
    }
    /// DER of the digital signature CA certificate (EF 0002).
    pub fn sign_ca_certificate(&self) -> &[u8] {
        &self.sign_ca_cert
    }
}
