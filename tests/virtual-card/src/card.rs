//! The card's command processor: applications, EFs, PIN counters, signing and fault injection.

use std::collections::BTreeMap;
use std::str::FromStr;

use rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::apdu::{hex, sw, Command, Response};
use crate::faults::{FaultKind, Faults};
use crate::state::{CardState, AUTH_MAX_TRIES, KENHOJO_MAX_TRIES, SIGN_MAX_TRIES};

/// ATRs of My Number Cards (docs/card-protocol.md, "Card and transport"). Index 0 is the only one in OpenSC's ATR
/// table; the others are recognised by OpenSC through the SELECT-AID probe.
pub const ATRS: [&[u8]; 9] = [
    &[0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14],
    &[
        0x3B, 0xDA, 0x13, 0xFF, 0x81, 0x31, 0xFB, 0x46, 0x80, 0x12, 0x39, 0x2F, 0x31, 0xC1, 0x73,
        0xC6, 0x01, 0xC0, 0x3B,
    ],
    &[
        0x3B, 0xC5, 0xFF, 0x81, 0x31, 0xFB, 0x45, 0x80, 0x73, 0xC6, 0x01, 0x00, 0x00,
    ],
    &[
        0x3B, 0xF5, 0x91, 0x00, 0xFF, 0x91, 0x81, 0x71, 0xFE, 0x40, 0x00, 0x42, 0x00, 0x01, 0x00,
        0xD1, 0xD6,
    ],
    &[
        0x3B, 0xF5, 0x91, 0x00, 0xFF, 0x91, 0x81, 0x71, 0xFE, 0x40, 0x00, 0x42, 0x00, 0x01, 0xB3,
        0xA1, 0x15,
    ],
    &[
        0x3B, 0x88, 0x80, 0x01, 0x00, 0x00, 0x05, 0xE0, 0xB3, 0x81, 0xA1, 0x00, 0x7F,
    ],
    &[
        0x3B, 0x88, 0x80, 0x01, 0x00, 0x00, 0x41, 0xE0, 0xB3, 0x81, 0xA1, 0x00, 0x3B,
    ],
    &[
        0x3B, 0x88, 0x80, 0x01, 0x00, 0x4B, 0x51, 0xFF, 0x00, 0x81, 0xD1, 0x00, 0xBC,
    ],
    &[
        0x3B, 0x88, 0x80, 0x01, 0x00, 0x4B, 0x51, 0xFF, 0xB3, 0x81, 0xD1, 0x00, 0x0F,
    ],
];

/// ATR of the `phone` profile: what a PC/SC reader (PC/SC part 3) builds for an ISO 14443-4
/// Type A target without historical bytes, as an Android phone's NFC card emulation presents
/// itself. Assumption: no phone ATR is documented.
pub const PHONE_ATR: &[u8] = &[0x3B, 0x80, 0x80, 0x01, 0x01];

/// Token label (EF 0006) of the Android smartphone JPKI token (スマホ用電子証明書) [C].
pub const PHONE_TOKEN_LABEL: &str = "JPKIAPGPSETOKEN";

/// How much of the single-source ([1]) behaviour the card shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Only what every open tool relies on ([C] facts): P1=00/P2=80 signing, SELECT before
    /// VERIFY and signing, no EF 0008, no SFI forms, no secure-messaging answers.
    Conservative,
    /// Adds the MC-reported extras: SFI forms of VERIFY/READ BINARY/signing, on-card hashing
    /// and PSS (P1 01–05), EF 0008, SELECT MF quirk, SM status words 6882/69FC, GET CHALLENGE.
    Extended,
}

/// What answers as the JPKI application. A separate axis from [`Profile`]: the harness's
/// `phone` profile is the conservative command set on the phone token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Token {
    /// The plastic My Number Card (EF 0006 `JPKIAPICCTOKEN2`).
    #[default]
    Card,
    /// The Android smartphone's JPKI token seen through a PC reader: EF 0006 label
    /// `JPKIAPGPSETOKEN` [C], the authentication certificate EF answers 6982 until the
    /// authentication PIN was verified in this card session [1], only the JPKI AP
    /// (assumption), and [`PHONE_ATR`] (assumption).
    Phone,
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "conservative" => Ok(Profile::Conservative),
            "extended" => Ok(Profile::Extended),
            other => Err(format!("unknown profile {other:?} (conservative|extended)")),
        }
    }
}

/// What happens to an extended-length APDU (Le or Lc in 3 bytes), by card and reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtendedApdu {
    /// The profile decides: `extended` answers an extended READ BINARY with up to the whole
    /// rest of the EF; `conservative` (and so the harness's `phone`) answers 6700.
    Card,
    /// Every profile answers an extended READ BINARY with up to the whole rest of the EF.
    Accept,
    /// The card answers 6700 (wrong length).
    Refuse,
    /// The card answers this status word.
    Sw(u16),
    /// The reader cannot carry it: the card never sees it and no answer comes back. Through
    /// vpcd the connection is closed without an answer: that transmit returns an empty
    /// response (0 bytes, no status word) and the following ones fail with
    /// SCARD_E_NOT_TRANSACTED until vpcd reconnects (about 0.4 s); the card stays powered with
    /// its state. In process, [`VirtualCard::process_apdu`] returns an empty vector.
    Drop,
}

impl FromStr for ExtendedApdu {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "card" => Ok(ExtendedApdu::Card),
            "accept" => Ok(ExtendedApdu::Accept),
            "refuse" => Ok(ExtendedApdu::Refuse),
            "drop" => Ok(ExtendedApdu::Drop),
            _ => match lower
                .strip_prefix("sw:")
                .map(|h| (h.len(), u16::from_str_radix(h, 16)))
            {
                Some((4, Ok(sw))) => Ok(ExtendedApdu::Sw(sw)),
                _ => Err(format!(
                    "unknown extended-APDU mode {s:?} (card|accept|refuse|sw:XXXX|drop)"
                )),
            },
        }
    }
}

impl std::fmt::Display for ExtendedApdu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtendedApdu::Card => f.write_str("card"),
            ExtendedApdu::Accept => f.write_str("accept"),
            ExtendedApdu::Refuse => f.write_str("refuse"),
            ExtendedApdu::Sw(sw) => write!(f, "sw:{sw:04X}"),
            ExtendedApdu::Drop => f.write_str("drop"),
        }
    }
}

/// The card applications (docs/card-protocol.md, "Applications").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Application {
    /// 公的個人認証AP.
    Jpki,
    /// 券面事項入力補助AP ("kenhojo"/text AP).
    Text,
    /// 券面事項確認AP (selectable; its EFs are not modelled: every SELECT EF → 6A82).
    Visual,
    /// 住基AP (selectable shell, as Visual).
    Juki,
    /// 共通AP (selectable shell, as Visual).
    Common,
}

impl Application {
    pub const ALL: [Application; 5] = [
        Application::Jpki,
        Application::Text,
        Application::Visual,
        Application::Juki,
        Application::Common,
    ];

    /// The 10-byte AID.
    pub const fn aid(self) -> [u8; 10] {
        match self {
            Application::Jpki => [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01],
            Application::Text => [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08],
            Application::Visual => [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02],
            Application::Juki => [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x01],
            Application::Common => [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x01, 0x00],
        }
    }

    fn from_aid(aid: &[u8]) -> Option<Application> {
        Application::ALL.into_iter().find(|a| a.aid() == aid)
    }

    /// Whether the profile's token has this AP. The phone token is assumed to carry only the
    /// JPKI AP: the smartphone service holds the two JPKI certificates, not the card surface
    /// or the My Number (assumption).
    fn present_on(self, token: Token) -> bool {
        token != Token::Phone || self == Application::Jpki
    }
}

/// The PIN references of the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinRef {
    /// JPKI EF 0018: 4 digits, 3 tries.
    Auth,
    /// JPKI EF 001B: 6–16 of A–Z 0–9, 5 tries.
    Sign,
    /// Text AP EF 0011: 4 digits, 3 tries.
    Kenhojo,
}

impl PinRef {
    pub fn max_tries(self) -> u8 {
        match self {
            PinRef::Auth => AUTH_MAX_TRIES,
            PinRef::Sign => SIGN_MAX_TRIES,
            PinRef::Kenhojo => KENHOJO_MAX_TRIES,
        }
    }

    /// Whether `pin` has the format the card's PIN can have: length and character set only
    /// (the "≥1 letter and ≥1 digit" rule of the signature password is an issuing-office
    /// rule [1] and is not checked by this card). Lower-case letters are malformed: the card
    /// compares bytes, so a lower-case password can never be right.
    pub fn format_ok(self, pin: &[u8]) -> bool {
        match self {
            PinRef::Auth | PinRef::Kenhojo => pin.len() == 4 && pin.iter().all(u8::is_ascii_digit),
            PinRef::Sign => {
                (6..=16).contains(&pin.len())
                    && pin
                        .iter()
                        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyRef {
    Auth,
    Sign,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CertRef {
    Auth,
    AuthCa,
    Sign,
    SignCa,
}

/// The EFs the card models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ef {
    Cert(CertRef),
    TokenInfo,
    CertAvailability,
    Protected0009,
    Key(KeyRef),
    Pin(PinRef),
    MyNumber,
    Attributes,
}

fn lookup_ef(app: Application, fid: u16, profile: Profile) -> Option<Ef> {
    match (app, fid) {
        (Application::Jpki, 0x0001) => Some(Ef::Cert(CertRef::Sign)),
        (Application::Jpki, 0x0002) => Some(Ef::Cert(CertRef::SignCa)),
        (Application::Jpki, 0x0006) => Some(Ef::TokenInfo),
        (Application::Jpki, 0x0008) if profile == Profile::Extended => Some(Ef::CertAvailability),
        (Application::Jpki, 0x0009) => Some(Ef::Protected0009),
        (Application::Jpki, 0x000A) => Some(Ef::Cert(CertRef::Auth)),
        (Application::Jpki, 0x000B) => Some(Ef::Cert(CertRef::AuthCa)),
        (Application::Jpki, 0x0017) => Some(Ef::Key(KeyRef::Auth)),
        (Application::Jpki, 0x0018) => Some(Ef::Pin(PinRef::Auth)),
        (Application::Jpki, 0x001A) => Some(Ef::Key(KeyRef::Sign)),
        (Application::Jpki, 0x001B) => Some(Ef::Pin(PinRef::Sign)),
        (Application::Text, 0x0001) => Some(Ef::MyNumber),
        (Application::Text, 0x0002) => Some(Ef::Attributes),
        (Application::Text, 0x0011) => Some(Ef::Pin(PinRef::Kenhojo)),
        _ => None,
    }
}

/// Looks up an EF by short file identifier (SFI = low 5 bits of the FID): extended profile.
fn lookup_sfi(app: Application, sfi: u8, profile: Profile) -> Option<(u16, Ef)> {
    let fid = u16::from(sfi & 0x1F);
    lookup_ef(app, fid, profile).map(|ef| (fid, ef))
}

/// Counters of what reached the card; `stats` of the control socket prints them as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub apdus: u64,
    /// Bytes of the command APDUs that reached a powered card (header, Lc, data, Le).
    pub command_bytes: u64,
    /// Bytes of the response APDUs sent back (data and SW1 SW2), as finally sent: after
    /// faults that add or cut bytes. Commands that get no answer add nothing.
    pub response_bytes: u64,
    /// VERIFY commands with PIN data (empty "tries left" queries are not counted here).
    pub verify_count: u64,
    /// VERIFYs whose PIN data had a format the target PIN can never have. The product must
    /// keep this at 0: it has to refuse such input before sending it.
    pub malformed_verify_count: u64,
    pub empty_verify_count: u64,
    pub failed_verify_count: u64,
    pub change_count: u64,
    pub malformed_change_count: u64,
    pub signatures: u64,
    pub power_ons: u64,
    /// Extended-length APDUs sent to the card's reader, whatever the answer (those the reader
    /// dropped included).
    pub extended_apdus: u64,
    /// APDUs the reader could not carry (extended-APDU mode `drop`): they never reached the
    /// card, so `apdus`, `command_bytes` and `per_ins` do not count them.
    pub reader_refused_apdus: u64,
    /// Per-INS counts, key = INS as two lower-case hex digits.
    pub per_ins: BTreeMap<String, u64>,
}

/// What the transport should do with one command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// Response APDU to send; `None` = send nothing.
    pub response: Option<Vec<u8>>,
    /// Wait this long before answering (latency and `delay` faults).
    pub delay_ms: u64,
    /// Close the connection after sending `response` (the card was removed).
    pub disconnect: bool,
    /// The reader failed to carry the command: close the connection without an answer (vpcd
    /// reports a failed transmit) but keep the card inserted, powered and in its state, and
    /// connect again at once.
    pub reader_error: bool,
    /// The command as it may be logged: hex, with PIN bytes of VERIFY/CHANGE REFERENCE DATA
    /// replaced by `<redacted len=N format=ok|malformed|unknown>`.
    pub command_for_log: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Security {
    auth: bool,
    sign: bool,
    kenhojo: bool,
}

/// Per-command observations used by faults and latency.
#[derive(Clone, Copy, Debug, Default)]
struct ExecInfo {
    cert_read_at_zero: bool,
    signed: bool,
}

/// A virtual My Number Card.
pub struct VirtualCard {
    state: CardState,
    profile: Profile,
    atr_index: usize,
    powered: bool,
    app: Option<Application>,
    current_ef: Option<(u16, Ef)>,
    security: Security,
    dirty: bool,
    faults: Faults,
    stats: Stats,
    pending: Option<Vec<u8>>,
    latency_ms: (u64, u64),
    info: ExecInfo,
    extended_apdu: ExtendedApdu,
    token: Token,
}

/// Length of the certificate EFs: the DER plus FF filler up to the next 256-byte boundary,
/// at least 32 bytes of filler (MC: FF filler after the DER [1]), so readers must size from
/// the DER header.
fn cert_ef_len(der_len: usize) -> usize {
    (der_len + 32).div_ceil(256) * 256
}

fn ber_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

fn tlv(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    ber_len(out, value.len());
    out.extend_from_slice(value);
}

fn space_padded(text: &str, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = text.bytes().take(len).collect();
    v.resize(len, b' ');
    v
}

impl VirtualCard {
    /// A powered card (as if just inserted and powered on) with ATR index 0.
    pub fn new(state: CardState, profile: Profile) -> VirtualCard {
        let mut card = VirtualCard {
            state,
            profile,
            atr_index: 0,
            powered: false,
            app: None,
            current_ef: None,
            security: Security::default(),
            dirty: false,
            faults: Faults::default(),
            stats: Stats::default(),
            pending: None,
            latency_ms: (0, 0),
            info: ExecInfo::default(),
            extended_apdu: ExtendedApdu::Card,
            token: Token::Card,
        };
        card.power_on();
        card
    }

    fn clear_volatile(&mut self) {
        self.app = None;
        self.current_ef = None;
        self.security = Security::default();
        self.pending = None;
    }

    /// Cold reset: clears selection and security state, returns the ATR.
    pub fn power_on(&mut self) -> Vec<u8> {
        self.clear_volatile();
        self.powered = true;
        self.stats.power_ons += 1;
        self.atr()
    }

    /// Warm reset: same as [`VirtualCard::power_on`].
    pub fn reset(&mut self) -> Vec<u8> {
        self.power_on()
    }

    /// Power off: volatile state is lost; APDUs get no answer until the next power on.
    pub fn power_off(&mut self) {
        self.clear_volatile();
        self.powered = false;
    }

    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// The ATR in use (one of [`ATRS`]); [`PHONE_ATR`] on the phone profile.
    pub fn atr(&self) -> Vec<u8> {
        if self.token == Token::Phone {
            return PHONE_ATR.to_vec();
        }
        ATRS[self.atr_index % ATRS.len()].to_vec()
    }

    /// Chooses the ATR from [`ATRS`] (index taken modulo the table length; not used by the
    /// phone profile).
    pub fn set_atr_index(&mut self, i: usize) {
        self.atr_index = i % ATRS.len();
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    pub fn token(&self) -> Token {
        self.token
    }

    /// Makes this the plastic card or the phone token (also changes the ATR).
    pub fn set_token(&mut self, token: Token) {
        self.token = token;
    }

    pub fn state(&self) -> &CardState {
        &self.state
    }

    /// The persistent state, for changes behind the driver's back (e.g. renewed
    /// certificates). The caller saves it.
    pub fn state_mut(&mut self) -> &mut CardState {
        &mut self.state
    }

    pub fn extended_apdu(&self) -> ExtendedApdu {
        self.extended_apdu
    }

    /// How extended-length APDUs are answered from now on.
    pub fn set_extended_apdu(&mut self, mode: ExtendedApdu) {
        self.extended_apdu = mode;
    }

    /// True once after a change of the persistent state (PIN counters, PINs).
    pub fn state_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    /// Latency added to every APDU and, additionally, to every signature. Reported through
    /// [`Reply::delay_ms`]; [`VirtualCard::process_apdu`] sleeps it.
    pub fn set_latency(&mut self, apdu_ms: u64, sign_ms: u64) {
        self.latency_ms = (apdu_ms, sign_ms);
    }

    /// A reset by another party (e.g. another process resetting the shared card): selection
    /// and security state are gone, but the caller's transport sees nothing.
    pub fn external_reset(&mut self) {
        self.clear_volatile();
    }

    /// Processes one command APDU and returns `data ‖ SW1 SW2`. Sleeps the configured
    /// latency and `delay` faults. Returns an empty vector when the card gives no answer
    /// (powered off, `drop` fault). Never panics.
    pub fn process_apdu(&mut self, command: &[u8]) -> Vec<u8> {
        let reply = self.transmit(command);
        if reply.delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(reply.delay_ms));
        }
        if reply.disconnect {
            self.power_off();
        }
        // reader_error: no answer, the card itself is unchanged.
        reply.response.unwrap_or_default()
    }

    /// Processes one command APDU without sleeping; the transport acts on the [`Reply`].
    pub fn transmit(&mut self, command: &[u8]) -> Reply {
        let command_for_log = self.command_for_log(command);
        if !self.powered {
            return Reply {
                response: None,
                delay_ms: 0,
                disconnect: false,
                reader_error: false,
                command_for_log,
            };
        }
        if Command::is_extended(command) {
            self.stats.extended_apdus += 1;
            if self.extended_apdu == ExtendedApdu::Drop {
                // The reader cannot carry it: the card sees nothing, its state is untouched.
                self.stats.reader_refused_apdus += 1;
                return Reply {
                    response: None,
                    delay_ms: self.latency_ms.0,
                    disconnect: false,
                    reader_error: true,
                    command_for_log,
                };
            }
        }
        self.stats.apdus += 1;
        self.stats.command_bytes += command.len() as u64;
        let ins = command.get(1).copied();
        if let Some(ins) = ins {
            *self.stats.per_ins.entry(format!("{ins:02x}")).or_insert(0) += 1;
        }
        self.info = ExecInfo::default();
        let is_get_response = command.len() >= 2 && command[0] == 0x00 && command[1] == 0xC0;
        if !is_get_response {
            self.pending = None;
        }
        let mut resp = self.execute(command);
        let mut reply = Reply {
            response: None,
            delay_ms: self.latency_ms.0,
            disconnect: false,
            reader_error: false,
            command_for_log,
        };
        if self.info.signed {
            reply.delay_ms += self.latency_ms.1;
        }
        let mut truncate: Option<usize> = None;
        let mut trailing = 0usize;
        let mut dropped = false;
        let info = self.info;
        let mut pending = None;
        for f in self.faults.armed_mut().iter_mut() {
            if f.ins.is_some() && f.ins != ins {
                continue;
            }
            let applied = match f.kind {
                FaultKind::Truncate(k) => {
                    truncate = Some(k);
                    true
                }
                FaultKind::Garbage(n) => {
                    resp.data.extend(std::iter::repeat_n(0xA5, n));
                    true
                }
                FaultKind::Trailing(n) => {
                    trailing += n;
                    true
                }
                FaultKind::ReplaceSw(s) => {
                    resp.sw = s;
                    true
                }
                FaultKind::Corrupt(n) => match resp.data.len() {
                    0 => false,
                    len => {
                        resp.data[n.min(len - 1)] ^= 0xFF;
                        true
                    }
                },
                FaultKind::MoreData61 => {
                    if resp.sw == sw::OK && !resp.data.is_empty() && !is_get_response {
                        let n = resp.data.len();
                        pending = Some(std::mem::take(&mut resp.data));
                        resp.sw = 0x6100 | (n as u16 & 0xFF);
                        true
                    } else {
                        false
                    }
                }
                FaultKind::WrongLe6C => {
                    if resp.sw == sw::OK && !resp.data.is_empty() && !is_get_response {
                        let n = resp.data.len();
                        resp = Response::sw(0x6C00 | (n as u16 & 0xFF));
                        true
                    } else {
                        false
                    }
                }
                FaultKind::CertLength(delta) => {
                    if info.cert_read_at_zero && resp.data.len() >= 4 && resp.data[1] == 0x82 {
                        let len = i64::from(u16::from_be_bytes([resp.data[2], resp.data[3]]));
                        let lie = (len + i64::from(delta)).clamp(0, 0xFFFF) as u16;
                        resp.data[2..4].copy_from_slice(&lie.to_be_bytes());
                        true
                    } else {
                        false
                    }
                }
                FaultKind::DelayMs(ms) => {
                    reply.delay_ms += ms;
                    true
                }
                FaultKind::Drop => {
                    dropped = true;
                    true
                }
                FaultKind::RemoveAfter => {
                    if f.remaining == 1 {
                        reply.disconnect = true;
                    }
                    true
                }
            };
            if applied {
                f.remaining = f.remaining.saturating_sub(1);
            }
        }
        self.faults.armed_mut().retain(|f| f.remaining > 0);
        if pending.is_some() {
            self.pending = pending;
        }
        if dropped {
            reply.disconnect = true;
            return reply;
        }
        let mut bytes = resp.to_bytes();
        bytes.extend(std::iter::repeat_n(0xA5, trailing));
        if let Some(k) = truncate {
            bytes.truncate(k);
        }
        self.stats.response_bytes += bytes.len() as u64;
        reply.response = Some(bytes);
        reply
    }

    /// The log form of a command: PIN data of VERIFY (INS 20) and CHANGE REFERENCE DATA
    /// (INS 24) is never shown, only its length and whether its format is plausible.
    fn command_for_log(&self, command: &[u8]) -> String {
        let is_pin_cmd = matches!(command.get(1), Some(0x20 | 0x24));
        if !is_pin_cmd || command.len() <= 5 {
            return hex(command);
        }
        let data = &command[5..];
        let format = match self.pin_target_for_log(command) {
            Some(pin) => {
                // For VERIFY the data is the PIN; an SFI/current-EF mismatch shows "unknown".
                if pin.format_ok(data) {
                    "ok"
                } else {
                    "malformed"
                }
            }
            None => "unknown",
        };
        format!(
            "{}<redacted len={} format={}>",
            hex(&command[..5]),
            data.len(),
            format
        )
    }

    fn pin_target_for_log(&self, command: &[u8]) -> Option<PinRef> {
        let p2 = *command.get(3)?;
        self.pin_target(p2).ok()
    }

    fn execute(&mut self, bytes: &[u8]) -> Response {
        if let Some(&cla) = bytes.first() {
            if cla == 0x08 || cla == 0x0C {
                // Secure messaging refused in the JPKI AP (MC README [1]).
                return match (self.profile, bytes.get(1)) {
                    (Profile::Extended, Some(0xA4)) => Response::sw(sw::SM_NOT_SUPPORTED),
                    (Profile::Extended, Some(_)) => Response::sw(sw::SM_REFUSED),
                    _ => Response::sw(sw::CLA_NOT_SUPPORTED),
                };
            }
            if cla != 0x00 && cla != 0x80 {
                return Response::sw(sw::CLA_NOT_SUPPORTED);
            }
        }
        if Command::is_extended(bytes) {
            return self.execute_extended(bytes);
        }
        let cmd = match Command::parse(bytes) {
            Ok(c) => c,
            Err(s) => return Response::sw(s),
        };
        match (cmd.cla, cmd.ins) {
            (0x00, 0xA4) => self.select(&cmd),
            (0x00, 0xB0) => self.read_binary(&cmd),
            (0x00, 0x20) => self.verify(&cmd),
            (0x00, 0x24) => self.change_reference_data(&cmd),
            (0x80, 0x2A) => self.compute_signature(&cmd),
            (0x00, 0xC0) => self.get_response(&cmd),
            (0x00, 0x84) if self.profile == Profile::Extended => Self::get_challenge(&cmd),
            (_, 0xA4 | 0xB0 | 0x20 | 0x24 | 0x2A | 0xC0) => Response::sw(sw::CLA_NOT_SUPPORTED),
            _ => Response::sw(sw::INS_NOT_SUPPORTED),
        }
    }

    /// An extended-length APDU that reached the card (any mode but `drop`). Only READ BINARY
    /// is ever answered with data; every other extended command is answered 6700, as the
    /// short-only parser always did (MC [1] reports extended forms only for GET DATA, GET
    /// CHALLENGE and a proprietary command, none of which the module uses).
    fn execute_extended(&mut self, bytes: &[u8]) -> Response {
        let read_binary = bytes[0] == 0x00 && bytes[1] == 0xB0;
        if !read_binary {
            return Response::sw(sw::WRONG_LENGTH);
        }
        let accept = match self.extended_apdu {
            ExtendedApdu::Card => self.profile == Profile::Extended,
            ExtendedApdu::Accept => true,
            ExtendedApdu::Refuse | ExtendedApdu::Drop => false,
            ExtendedApdu::Sw(s) => return Response::sw(s),
        };
        if !accept {
            return Response::sw(sw::WRONG_LENGTH);
        }
        match Command::parse_extended(bytes) {
            Ok(cmd) => self.read_binary(&cmd),
            Err(s) => Response::sw(s),
        }
    }

    // ---- SELECT -------------------------------------------------------------------------

    fn select(&mut self, cmd: &Command<'_>) -> Response {
        match cmd.p1 {
            0x04 => self.select_df_name(cmd),
            0x02 => self.select_ef(cmd),
            0x00 if self.profile == Profile::Extended => {
                // SELECT MF quirk (MC [1]): 00 A4 00 00 answers 6A86 after a cold reset and
                // 90 00 (nothing changes) when an AP is selected; 3F00 by FID → 6A82.
                if !cmd.data.is_empty() {
                    Response::sw(sw::NOT_FOUND)
                } else if self.app.is_some() {
                    Response::sw(sw::OK)
                } else {
                    Response::sw(sw::WRONG_P1P2)
                }
            }
            // P1=01/08/09 (child DF, path) are not supported (OpenSC PR #801 [1]).
            _ => Response::sw(sw::WRONG_P1P2),
        }
    }

    fn select_df_name(&mut self, cmd: &Command<'_>) -> Response {
        if cmd.p2 != 0x0C && cmd.p2 != 0x00 {
            return Response::sw(sw::WRONG_P1P2);
        }
        if cmd.data.is_empty() {
            return Response::sw(sw::WRONG_LENGTH);
        }
        let Some(app) = Application::from_aid(cmd.data).filter(|a| a.present_on(self.token)) else {
            // Failed selection keeps the current selection and security state (ISO).
            return Response::sw(sw::NOT_FOUND);
        };
        // Selecting an AP, even the current one, clears the security state: OpenSC logs out
        // by re-selecting the JPKI AP (commit 4ea26f1a2).
        self.app = Some(app);
        self.current_ef = None;
        self.security = Security::default();
        if cmd.p2 == 0x00 {
            // P2=00 returns an FCI (relay-test snippet [1]; content unknown). Minimal FCI
            // with only the DF name: 6F 0C 84 0A <AID>.
            let mut fci_body = Vec::new();
            tlv(&mut fci_body, &[0x84], &app.aid());
            let mut fci = Vec::new();
            tlv(&mut fci, &[0x6F], &fci_body);
            return Response::ok(fci);
        }
        Response::sw(sw::OK)
    }

    fn select_ef(&mut self, cmd: &Command<'_>) -> Response {
        if cmd.p2 != 0x0C {
            // Only "no response data" is known to be used (OpenSC, MYNA, JRS, MC) [U].
            return Response::sw(sw::WRONG_P1P2);
        }
        let fid = match cmd.data {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            _ => return Response::sw(sw::WRONG_LENGTH),
        };
        // No AP selected: the EF cannot be found in the (empty) current DF. Choice: 6A82,
        // like any unknown FID [U].
        let Some(app) = self.app else {
            return Response::sw(sw::NOT_FOUND);
        };
        match lookup_ef(app, fid, self.profile) {
            Some(ef) => {
                self.current_ef = Some((fid, ef));
                Response::sw(sw::OK)
            }
            None => Response::sw(sw::NOT_FOUND),
        }
    }

    // ---- READ BINARY --------------------------------------------------------------------

    fn ef_content(&self, ef: Ef) -> Result<Vec<u8>, u16> {
        let cert = |der: &[u8]| {
            let mut v = der.to_vec();
            v.resize(cert_ef_len(der.len()), 0xFF);
            v
        };
        match ef {
            // Phone token: the authentication certificate is readable only after the
            // authentication PIN (two independent readers verify it before reading EF 000A).
            Ef::Cert(CertRef::Auth) if self.token == Token::Phone && !self.security.auth => {
                Err(sw::SECURITY_NOT_SATISFIED)
            }
            Ef::Cert(CertRef::Auth) => Ok(cert(&self.state.auth_cert)),
            Ef::Cert(CertRef::AuthCa) => Ok(cert(&self.state.auth_ca_cert)),
            Ef::Cert(CertRef::SignCa) => Ok(cert(&self.state.sign_ca_cert)),
            Ef::Cert(CertRef::Sign) => {
                if self.security.sign {
                    Ok(cert(&self.state.sign_cert))
                } else {
                    Err(sw::SECURITY_NOT_SATISFIED)
                }
            }
            Ef::TokenInfo => Ok(self.token_info()),
            // MC [1]: 8F 8F 00 when both certificates are present.
            Ef::CertAvailability => Ok(vec![0x8F, 0x8F, 0x00]),
            Ef::Protected0009 => Err(sw::SECURITY_NOT_SATISFIED),
            Ef::Key(_) | Ef::Pin(_) => Err(sw::INCOMPATIBLE_FILE),
            Ef::MyNumber | Ef::Attributes if !self.security.kenhojo => {
                Err(sw::SECURITY_NOT_SATISFIED)
            }
            Ef::MyNumber => Ok(self.my_number_ef()),
            Ef::Attributes => Ok(self.attributes_ef()),
        }
    }

    /// EF 0006: a 160-byte serialised CK_TOKEN_INFO (MC [1]): label 32, manufacturerID 32,
    /// model 16, serialNumber 16 (space padded), 11 big-endian ULONGs, hardware and firmware
    /// version as ASCII "03"/"01", utcTime 16.
    fn token_info(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(160);
        // The phone's model field is unknown; "JPKIAPGPSE" mirrors the card's (assumption).
        let (label, model) = match self.token {
            Token::Phone => (PHONE_TOKEN_LABEL, "JPKIAPGPSE"),
            Token::Card => (self.state.token_label.as_str(), "JPKIAPICC"),
        };
        v.extend(space_padded(label, 32));
        v.extend(space_padded("JPKI", 32));
        v.extend(space_padded(model, 16));
        v.extend(space_padded(&self.state.token_serial, 16));
        // flags (RNG? no: LOGIN_REQUIRED | USER_PIN_INITIALIZED | TOKEN_INITIALIZED),
        // sessions (max, count, max rw, rw count), max/min PIN length, memory (4 fields).
        let ulongs: [u32; 11] = [0x40C, 0, 0, 0, 0, 16, 4, 0, 0, 0, 0];
        for u in ulongs {
            v.extend(u.to_be_bytes());
        }
        v.extend(b"03");
        v.extend(b"01");
        v.extend([b' '; 16]);
        v
    }

    /// Text AP EF 0001 (My Number) [design, U]: `10 0C <12 ASCII digits>` then FF filler
    /// to 17 bytes (MYNA reads 17 bytes).
    fn my_number_ef(&self) -> Vec<u8> {
        let mut v = Vec::new();
        tlv(&mut v, &[0x10], self.state.personal.my_number.as_bytes());
        v.resize(17, 0xFF);
        v
    }

    /// Text AP EF 0002 (basic 4 attributes) [design, U]:
    /// `FF 20 L { DF 21 L header(3 bytes), DF 22 L name, DF 23 L address,
    /// DF 24 L birth YYYYMMDD, DF 25 L sex }` (UTF-8), then FF filler to 256 bytes.
    fn attributes_ef(&self) -> Vec<u8> {
        let p = &self.state.personal;
        let birth: String = p.birth_date_era.chars().skip(1).collect();
        let mut body = Vec::new();
        tlv(&mut body, &[0xDF, 0x21], &[0x01, 0x00, 0x00]);
        tlv(&mut body, &[0xDF, 0x22], p.name.as_bytes());
        tlv(&mut body, &[0xDF, 0x23], p.address.as_bytes());
        tlv(&mut body, &[0xDF, 0x24], birth.as_bytes());
        tlv(&mut body, &[0xDF, 0x25], p.sex.as_bytes());
        let mut v = Vec::new();
        tlv(&mut v, &[0xFF, 0x20], &body);
        let len = v.len().max(256);
        v.resize(len, 0xFF);
        v
    }

    fn read_binary(&mut self, cmd: &Command<'_>) -> Response {
        if !cmd.data.is_empty() {
            return Response::sw(sw::WRONG_LENGTH);
        }
        let Some(le) = cmd.le else {
            return Response::sw(sw::WRONG_LENGTH);
        };
        let (ef, offset) = if cmd.p1 & 0x80 != 0 {
            // SFI form 00 B0 (80|SFI) off Le (MC [1]): extended profile only.
            if self.profile != Profile::Extended || cmd.p1 & 0x60 != 0 {
                return Response::sw(sw::WRONG_P1P2);
            }
            let Some(app) = self.app else {
                return Response::sw(sw::NOT_FOUND);
            };
            let Some((fid, ef)) = lookup_sfi(app, cmd.p1, self.profile) else {
                return Response::sw(sw::NOT_FOUND);
            };
            self.current_ef = Some((fid, ef));
            (ef, usize::from(cmd.p2))
        } else {
            let Some((_, ef)) = self.current_ef else {
                return Response::sw(sw::NO_CURRENT_EF);
            };
            (ef, usize::from(u16::from_be_bytes([cmd.p1, cmd.p2])))
        };
        let content = match self.ef_content(ef) {
            Ok(c) => c,
            Err(s) => return Response::sw(s),
        };
        if offset >= content.len() {
            return Response::sw(sw::WRONG_OFFSET);
        }
        let end = content.len().min(offset + le);
        self.info.cert_read_at_zero = matches!(ef, Ef::Cert(_)) && offset == 0;
        Response::ok(content[offset..end].to_vec())
    }

    // ---- VERIFY / CHANGE REFERENCE DATA ---------------------------------------------------

    /// The PIN addressed by P2: 80 = the current EF; extended profile also 80|SFI.
    fn pin_target(&self, p2: u8) -> Result<PinRef, u16> {
        if p2 == 0x80 {
            return match self.current_ef {
                Some((_, Ef::Pin(pin))) => Ok(pin),
                // VERIFY on a non-PIN EF: "command not allowed (no current EF)" [U].
                _ => Err(sw::NO_CURRENT_EF),
            };
        }
        if self.profile == Profile::Extended && p2 & 0xE0 == 0x80 {
            let app = self.app.ok_or(sw::NOT_FOUND)?;
            return match lookup_sfi(app, p2, self.profile) {
                Some((_, Ef::Pin(pin))) => Ok(pin),
                // SFI names no PIN: referenced data not found.
                _ => Err(sw::REF_NOT_FOUND),
            };
        }
        Err(sw::WRONG_P1P2)
    }

    fn tries_left(&mut self, pin: PinRef) -> &mut u8 {
        match pin {
            PinRef::Auth => &mut self.state.auth_tries_left,
            PinRef::Sign => &mut self.state.sign_tries_left,
            PinRef::Kenhojo => &mut self.state.kenhojo_tries_left,
        }
    }

    fn stored_pin(&mut self, pin: PinRef) -> &mut String {
        match pin {
            PinRef::Auth => &mut self.state.auth_pin,
            PinRef::Sign => &mut self.state.sign_password,
            PinRef::Kenhojo => &mut self.state.kenhojo_pin,
        }
    }

    fn verified(&mut self, pin: PinRef) -> &mut bool {
        match pin {
            PinRef::Auth => &mut self.security.auth,
            PinRef::Sign => &mut self.security.sign,
            PinRef::Kenhojo => &mut self.security.kenhojo,
        }
    }

    fn verify(&mut self, cmd: &Command<'_>) -> Response {
        if cmd.p1 != 0x00 {
            return Response::sw(sw::WRONG_P1P2);
        }
        if cmd.le.is_some() {
            return Response::sw(sw::WRONG_LENGTH);
        }
        let pin = match self.pin_target(cmd.p2) {
            Ok(p) => p,
            Err(s) => return Response::sw(s),
        };
        if cmd.data.is_empty() {
            // Tries-left query (JICSAP): 63 Cx, never 90 00 even when verified (PR #959 [1]);
            // 63 C0 when blocked (MC [1]).
            self.stats.empty_verify_count += 1;
            let left = *self.tries_left(pin);
            return Response::sw(0x63C0 | u16::from(left));
        }
        self.stats.verify_count += 1;
        let well_formed = pin.format_ok(cmd.data);
        if !well_formed {
            self.stats.malformed_verify_count += 1;
        }
        if *self.tries_left(pin) == 0 {
            return Response::sw(sw::BLOCKED);
        }
        // A malformed PIN is compared like any other: it can never match, so it costs a try.
        let matches = well_formed && self.stored_pin(pin).as_bytes() == cmd.data;
        if matches {
            if *self.tries_left(pin) != pin.max_tries() {
                *self.tries_left(pin) = pin.max_tries();
                self.dirty = true;
            }
            *self.verified(pin) = true;
            Response::sw(sw::OK)
        } else {
            self.stats.failed_verify_count += 1;
            let left = self.tries_left(pin);
            *left = left.saturating_sub(1);
            let left = *left;
            self.dirty = true;
            // A failed VERIFY also drops an earlier success for this PIN [U].
            *self.verified(pin) = false;
            Response::sw(0x63C0 | u16::from(left))
        }
    }

    fn change_reference_data(&mut self, cmd: &Command<'_>) -> Response {
        // P1=01: data is the new PIN only, after VERIFY of the old one (MYNA, MC [C]).
        if cmd.p1 != 0x01 {
            return Response::sw(sw::WRONG_P1P2);
        }
        if cmd.le.is_some() || cmd.data.is_empty() {
            return Response::sw(sw::WRONG_LENGTH);
        }
        let pin = match self.pin_target(cmd.p2) {
            Ok(p) => p,
            Err(s) => return Response::sw(s),
        };
        self.stats.change_count += 1;
        if *self.tries_left(pin) == 0 {
            return Response::sw(sw::BLOCKED);
        }
        if !*self.verified(pin) {
            return Response::sw(sw::SECURITY_NOT_SATISFIED);
        }
        if !pin.format_ok(cmd.data) {
            self.stats.malformed_change_count += 1;
            return Response::sw(sw::WRONG_DATA);
        }
        // format_ok guarantees ASCII.
        *self.stored_pin(pin) = String::from_utf8_lossy(cmd.data).into_owned();
        self.dirty = true;
        Response::sw(sw::OK)
    }

    // ---- COMPUTE DIGITAL SIGNATURE ------------------------------------------------------

    fn signing_key(&self, p2: u8) -> Result<KeyRef, u16> {
        let ef = if p2 == 0x80 {
            self.current_ef.map(|(_, ef)| ef)
        } else if self.profile == Profile::Extended && p2 & 0xE0 == 0x80 {
            // 80|SFI: 97 = key 0017, 9A = key 001A (MC [1]). An SFI naming no key:
            // "referenced data not found", as for VERIFY.
            return match self.app.and_then(|app| lookup_sfi(app, p2, self.profile)) {
                Some((_, Ef::Key(k))) => Ok(k),
                _ => Err(sw::REF_NOT_FOUND),
            };
        } else {
            return Err(sw::WRONG_P1P2);
        };
        match ef {
            Some(Ef::Key(k)) => Ok(k),
            // No key EF selected: "conditions of use not satisfied" [U].
            _ => Err(sw::CONDITIONS_NOT_SATISFIED),
        }
    }

    fn compute_signature(&mut self, cmd: &Command<'_>) -> Response {
        let max_p1 = match self.profile {
            Profile::Conservative => 0x00,
            Profile::Extended => 0x05,
        };
        if cmd.p1 > max_p1 {
            return Response::sw(sw::WRONG_P1P2);
        }
        let key_ref = match self.signing_key(cmd.p2) {
            Ok(k) => k,
            Err(s) => return Response::sw(s),
        };
        let allowed = match key_ref {
            KeyRef::Auth => self.security.auth,
            KeyRef::Sign => self.security.sign,
        };
        if !allowed {
            return Response::sw(sw::SECURITY_NOT_SATISFIED);
        }
        let data = cmd.data;
        let len_ok = match cmd.p1 {
            0x00 => (1..=245).contains(&data.len()),
            0x02 | 0x04 => data.len() == 32,
            _ => !data.is_empty(),
        };
        if !len_ok {
            return Response::sw(sw::WRONG_LENGTH);
        }
        match cmd.le {
            None => return Response::sw(sw::WRONG_LENGTH),
            Some(256) => {}
            // The signature is 256 bytes: "wrong Le, exact length 00".
            Some(_) => return Response::sw(0x6C00),
        }
        let key: &RsaPrivateKey = match key_ref {
            KeyRef::Auth => &self.state.auth_key,
            KeyRef::Sign => &self.state.sign_key,
        };
        let hashed = || Sha256::digest(data).to_vec();
        let result = match cmd.p1 {
            0x00 => key.sign(Pkcs1v15Sign::new_unprefixed(), data),
            0x01 => key.sign(Pkcs1v15Sign::new_unprefixed(), &hashed()),
            0x02 => key.sign(Pkcs1v15Sign::new::<Sha256>(), data),
            0x03 => key.sign(Pkcs1v15Sign::new::<Sha256>(), &hashed()),
            0x04 => key.sign_with_rng(
                &mut rand::rngs::OsRng,
                Pss::new_with_salt::<Sha256>(32),
                data,
            ),
            _ => key.sign_with_rng(
                &mut rand::rngs::OsRng,
                Pss::new_with_salt::<Sha256>(32),
                &hashed(),
            ),
        };
        match result {
            Ok(sig) => {
                self.stats.signatures += 1;
                self.info.signed = true;
                Response::ok(sig)
            }
            Err(_) => Response::sw(sw::UNKNOWN),
        }
    }

    // ---- GET CHALLENGE (extended profile) ----------------------------------------------

    /// `00 84 00 00 Le` → Le random bytes. MC [1] only reports that GET CHALLENGE with an
    /// extended Le answers 6985, implying the short form exists; OpenSC's C_GenerateRandom
    /// uses it (`pkcs11-tool --test`). The conservative profile answers 6D00.
    fn get_challenge(cmd: &Command<'_>) -> Response {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Response::sw(sw::WRONG_P1P2);
        }
        let Some(le) = cmd.le.filter(|_| cmd.data.is_empty()) else {
            return Response::sw(sw::WRONG_LENGTH);
        };
        let mut challenge = vec![0u8; le];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut challenge);
        Response::ok(challenge)
    }

    // ---- GET RESPONSE -------------------------------------------------------------------

    fn get_response(&mut self, cmd: &Command<'_>) -> Response {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Response::sw(sw::WRONG_P1P2);
        }
        let Some(le) = cmd.le.filter(|_| cmd.data.is_empty()) else {
            return Response::sw(sw::WRONG_LENGTH);
        };
        let Some(mut pending) = self.pending.take() else {
            return Response::sw(sw::CONDITIONS_NOT_SATISFIED);
        };
        if le >= pending.len() {
            return Response::ok(pending);
        }
        let rest = pending.split_off(le);
        let n = rest.len();
        self.pending = Some(rest);
        Response {
            data: pending,
            sw: 0x6100 | (n.min(256) as u16 & 0xFF),
        }
    }
}
