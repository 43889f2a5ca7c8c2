//! The on-disk cache of a card's **public** certificates: the file format, where it
//! lives, and how it is read and written. What is cached and how each use is checked against
//! the card is decided in `cert_source.rs`; why it is safe is in `docs/performance.md` and
//! `SECURITY.md`.
//!
//! - **Where**: `$XDG_CACHE_HOME/jpki-pkcs11/`, else `$HOME/.cache/jpki-pkcs11/` (no cache if
//!   neither is set to an absolute path). The directory is created mode 0700 and used only if
//!   it is a real directory (not a symbolic link) that no one else may enter (mode & 077 = 0).
//!   Files are created mode 0600, written to a temporary name and renamed, so a reader never
//!   sees half a file.
//! - **One file per card**, named by a hash of the authentication certificate's issuer and
//!   serial number (which name one certificate, and so one card, uniquely). It may hold the
//!   authentication certificate, the two CA certificates, and what the card showed of its
//!   command forms (SFI, PSS). **Never** the signature certificate: [`Entry`] has no place for
//!   it. One small file per reader and card kind (ATR) remembers whether extended-length
//!   APDUs work there and whether the card refused the SFI form of READ BINARY, so that a
//!   later process probes neither again.
//! - **Format**: magic `JPKIPKCS11-CACHE` and version 1, then records `tag (1) ‖ length (2, big
//!   endian) ‖ bytes`, then the SHA-256 of everything before it. Anything unexpected — wrong
//!   magic or version, a bad checksum (corruption, truncation), an unknown or repeated tag, a
//!   file over 64 KiB, a key record that is not this file's key — makes the whole file count as
//!   absent: it is rewritten at the next store, never an error.
//!
//! Longer than the project's ~500 lines only by its unit tests at the end, kept next to the
//! file format they check.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::card::{SfiSupport, Support};

const MAGIC: &[u8; 17] = b"JPKIPKCS11-CACHE\x01";
const MAX_FILE: u64 = 64 * 1024;
const CHECKSUM_LEN: usize = 32;

const TAG_KEY: u8 = 0x01;
const TAG_AUTH: u8 = 0x02;
const TAG_AUTH_CA: u8 = 0x03;
const TAG_SIGN_CA: u8 = 0x04;
const TAG_PSS: u8 = 0x10;
const TAG_SFI: u8 = 0x11;
const TAG_EXTENDED: u8 = 0x20;
const TAG_SFI_READ_REFUSED: u8 = 0x21;

/// What is cached for one card. Only public data of the card: there is no field for the
/// signature certificate, by design.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The authentication certificate (EF 000A).
    pub auth: Option<Vec<u8>>,
    /// The authentication CA certificate (EF 000B).
    pub auth_ca: Option<Vec<u8>>,
    /// The signature CA certificate (EF 0002).
    pub sign_ca: Option<Vec<u8>>,
    /// Whether the card signs RSASSA-PSS itself.
    pub pss: Option<bool>,
    /// What the card showed of the SFI forms.
    pub sfi: Option<SfiSupport>,
}

/// Where the cache directory is (whether it exists or not): `$XDG_CACHE_HOME/jpki-pkcs11`,
/// else `$HOME/.cache/jpki-pkcs11`; `None` if neither is an absolute path.
pub fn location() -> Option<PathBuf> {
    if cfg!(test) {
        // The unit tests run the module in process, many at once, with the caller's HOME:
        // they never touch a real cache directory (what one test stored would change what the
        // next one sends to its card). The cache is tested on explicit directories here and
        // through pcscd in tests/cert_cache.rs.
        return None;
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".cache"))
        })?;
    Some(base.join("jpki-pkcs11"))
}

/// The cache directory, created if needed; `None` when there is no usable place (no
/// `XDG_CACHE_HOME`/`HOME`, or a directory that is not private to the user).
pub fn directory() -> Option<PathBuf> {
    let dir = location()?;
    if let Err(e) = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        log::info!("certificate cache unavailable ({}): {e}", dir.display());
        return None;
    }
    match fs::symlink_metadata(&dir) {
        Ok(m) if private(&m) => Some(dir),
        Ok(_) => {
            log::warn!(
                "certificate cache {} is not a directory private to the user; not used",
                dir.display()
            );
            None
        }
        Err(e) => {
            log::info!("certificate cache unavailable ({}): {e}", dir.display());
            None
        }
    }
}

/// Whether the cache may use a directory with this metadata: a real directory (not a symbolic
/// link) that no one but its owner may enter.
fn private(meta: &fs::Metadata) -> bool {
    meta.is_dir() && meta.mode() & 0o077 == 0
}

/// Whether the directory `dir` exists and the module would use it (see [`directory`]).
pub fn usable(dir: &Path) -> bool {
    fs::symlink_metadata(dir).is_ok_and(|m| private(&m))
}

/// The name of a card's file: a hash of its authentication certificate's issuer and serial
/// number (DER), so the name tells nothing about the holder.
pub fn card_key(issuer: &[u8], serial: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"jpki-pkcs11 card v1\0");
    h.update((issuer.len() as u32).to_be_bytes());
    h.update(issuer);
    h.update((serial.len() as u32).to_be_bytes());
    h.update(serial);
    format!("card-{}", hex(&h.finalize()[..16]))
}

/// The name of a reader's file: a hash of the reader's name and the ATR of the card in it
/// (a card of another kind in the same reader may answer otherwise).
pub fn reader_key(reader: &str, atr: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"jpki-pkcs11 reader v2\0");
    h.update((reader.len() as u32).to_be_bytes());
    h.update(reader.as_bytes());
    h.update(atr);
    format!("reader-{}", hex(&h.finalize()[..16]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn support_byte(s: Support) -> u8 {
    match s {
        Support::Unknown => 0,
        Support::Yes => 1,
        Support::No => 2,
    }
}

fn byte_support(b: u8) -> Option<Support> {
    match b {
        0 => Some(Support::Unknown),
        1 => Some(Support::Yes),
        2 => Some(Support::No),
        _ => None,
    }
}

/// Records of a file, checked (magic, checksum, well-formed records, no repeated tag).
fn records(bytes: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let body_len = bytes.len().checked_sub(CHECKSUM_LEN)?;
    let (body, checksum) = bytes.split_at(body_len);
    if !body.starts_with(MAGIC) || Sha256::digest(body).as_slice() != checksum {
        return None;
    }
    let mut rest = &body[MAGIC.len()..];
    let mut out: Vec<(u8, &[u8])> = Vec::new();
    while !rest.is_empty() {
        let (&tag, after) = rest.split_first()?;
        let (len, after) = split(after, 2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (value, after) = split(after, len)?;
        if out.iter().any(|(t, _)| *t == tag) {
            return None;
        }
        out.push((tag, value));
        rest = after;
    }
    Some(out)
}

/// `bytes.split_at(at)` if `at` is within it (`split_at_checked` needs Rust 1.80).
fn split(bytes: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (at <= bytes.len()).then(|| bytes.split_at(at))
}

fn encode(records: &[(u8, &[u8])]) -> Option<Vec<u8>> {
    let mut out = MAGIC.to_vec();
    for (tag, value) in records {
        out.push(*tag);
        out.extend_from_slice(&u16::try_from(value.len()).ok()?.to_be_bytes());
        out.extend_from_slice(value);
    }
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    Some(out)
}

/// The file's bytes, if it is a regular file of sane size (a symbolic link is not followed).
fn read_file(path: &Path) -> Option<Vec<u8>> {
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    (bytes.len() as u64 <= MAX_FILE).then_some(bytes)
}

/// Writes `bytes` as `dir/name`, mode 0600, atomically (temporary file + rename).
fn write_file(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if let Err(e) = result {
        log::info!("certificate cache: could not write {name}: {e}");
        let _ = fs::remove_file(&tmp);
    }
}

/// The entry of a card, or `None` if absent or unusable (see the module documentation).
pub fn load(dir: &Path, key: &str) -> Option<Entry> {
    let bytes = read_file(&dir.join(key))?;
    let Some(records) = records(&bytes) else {
        log::info!("certificate cache: {key} is damaged; ignored");
        return None;
    };
    let mut entry = Entry::default();
    let mut key_seen = false;
    for (tag, value) in records {
        match tag {
            TAG_KEY => key_seen = value == key.as_bytes(),
            TAG_AUTH => entry.auth = Some(value.to_vec()),
            TAG_AUTH_CA => entry.auth_ca = Some(value.to_vec()),
            TAG_SIGN_CA => entry.sign_ca = Some(value.to_vec()),
            TAG_PSS => match value {
                [0] => entry.pss = Some(false),
                [1] => entry.pss = Some(true),
                _ => return None,
            },
            TAG_SFI => match value {
                [r, v, s] => {
                    entry.sfi = Some(SfiSupport {
                        read: byte_support(*r)?,
                        verify: byte_support(*v)?,
                        sign: byte_support(*s)?,
                    })
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    if !key_seen {
        log::info!("certificate cache: {key} belongs to another card; ignored");
        return None;
    }
    Some(entry)
}

/// Stores a card's entry (replacing the file).
pub fn store(dir: &Path, key: &str, entry: &Entry) {
    let pss = entry.pss.map(|p| [u8::from(p)]);
    let sfi = entry
        .sfi
        .map(|s| [s.read, s.verify, s.sign].map(support_byte));
    let mut recs: Vec<(u8, &[u8])> = vec![(TAG_KEY, key.as_bytes())];
    let certs = [
        (TAG_AUTH, &entry.auth),
        (TAG_AUTH_CA, &entry.auth_ca),
        (TAG_SIGN_CA, &entry.sign_ca),
    ];
    for (tag, cert) in certs {
        if let Some(c) = cert {
            recs.push((tag, c.as_slice()));
        }
    }
    if let Some(p) = &pss {
        recs.push((TAG_PSS, p));
    }
    if let Some(s) = &sfi {
        recs.push((TAG_SFI, s));
    }
    if let Some(bytes) = encode(&recs) {
        write_file(dir, key, &bytes);
    }
}

/// What the cache knows of a reader with one kind of card in it (its ATR): what a card of
/// that kind showed there of the command forms that are tried first and may be refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderEntry {
    /// Whether extended-length READ BINARY worked (`true`) or failed (`false`).
    pub extended: bool,
    /// The card refused the SFI form of READ BINARY (only a refusal is kept: the form that
    /// worked proves itself on the card's own file, see `cert_source.rs`).
    pub sfi_read_refused: bool,
}

/// What an earlier process learnt through this reader with a card of this ATR.
pub fn load_reader(dir: &Path, reader: &str, atr: &[u8]) -> Option<ReaderEntry> {
    reader_entry(dir, &reader_key(reader, atr))
}

/// The reader file `key`, checked (its own name is its key record).
fn reader_entry(dir: &Path, key: &str) -> Option<ReaderEntry> {
    let bytes = read_file(&dir.join(key))?;
    let records = records(&bytes)?;
    let mut key_seen = false;
    let mut extended = None;
    let mut sfi_read_refused = false;
    for (tag, value) in records {
        match (tag, value) {
            (TAG_KEY, v) => key_seen = v == key.as_bytes(),
            (TAG_EXTENDED, [0]) => extended = Some(false),
            (TAG_EXTENDED, [1]) => extended = Some(true),
            (TAG_SFI_READ_REFUSED, [1]) => sfi_read_refused = true,
            _ => return None,
        }
    }
    let extended = extended.filter(|_| key_seen)?;
    Some(ReaderEntry {
        extended,
        sfi_read_refused,
    })
}

/// Remembers what a card of this ATR showed through this reader.
pub fn store_reader(dir: &Path, reader: &str, atr: &[u8], entry: &ReaderEntry) {
    let key = reader_key(reader, atr);
    let extended = [u8::from(entry.extended)];
    let mut recs: Vec<(u8, &[u8])> = vec![(TAG_KEY, key.as_bytes()), (TAG_EXTENDED, &extended)];
    if entry.sfi_read_refused {
        recs.push((TAG_SFI_READ_REFUSED, &[1]));
    }
    if let Some(bytes) = encode(&recs) {
        write_file(dir, &key, &bytes);
    }
}

/// What one file of the cache directory holds, as `jpki cache` shows it: never the
/// certificates' contents, only which ones are there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    /// A card's file (named by a hash of its authentication certificate's issuer and serial).
    Card {
        auth: bool,
        auth_ca: bool,
        sign_ca: bool,
    },
    /// A reader's file: whether extended-length READ BINARY worked through it.
    Reader { extended: bool },
    /// Unusable (damaged, truncated, foreign): the module ignores it and rewrites it.
    Damaged,
}

/// One file of the cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub name: String,
    pub bytes: u64,
    pub holds: Holds,
}

/// Whether `name` is one of the cache's own file names (a card's, a reader's, or a temporary
/// file of an interrupted write): the only files `summarize` lists and `clear` removes.
fn is_cache_file(name: &str) -> bool {
    name.starts_with("card-")
        || name.starts_with("reader-")
        || (name.starts_with('.') && name.ends_with(".tmp"))
}

/// The cache's files in `dir`, sorted by name (none if the directory does not exist).
pub fn summarize(dir: &Path) -> Vec<FileSummary> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_cache_file(&name) {
            continue;
        }
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let holds = if name.starts_with("card-") {
            match load(dir, &name) {
                Some(e) => Holds::Card {
                    auth: e.auth.is_some(),
                    auth_ca: e.auth_ca.is_some(),
                    sign_ca: e.sign_ca.is_some(),
                },
                None => Holds::Damaged,
            }
        } else if name.starts_with("reader-") {
            match reader_entry(dir, &name) {
                Some(r) => Holds::Reader {
                    extended: r.extended,
                },
                None => Holds::Damaged,
            }
        } else {
            Holds::Damaged
        };
        out.push(FileSummary { name, bytes, holds });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Removes the cache's files from `dir` (nothing else in it); the number removed. The next
/// process reads every certificate from the card again.
pub fn clear(dir: &Path) -> std::io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if is_cache_file(&name) {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("jpki-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&d)
            .expect("tempdir");
        d
    }

    fn sample() -> Entry {
        Entry {
            auth: Some(vec![0x30, 0x03, 1, 2, 3]),
            auth_ca: None,
            sign_ca: Some(vec![0x30, 0x01, 9]),
            pss: Some(true),
            sfi: Some(SfiSupport {
                read: Support::Yes,
                verify: Support::No,
                sign: Support::Unknown,
            }),
        }
    }

    #[test]
    fn round_trip_and_mode() {
        let d = tempdir("rt");
        let key = card_key(b"issuer", b"serial");
        store(&d, &key, &sample());
        assert_eq!(load(&d, &key), Some(sample()));
        let mode = fs::metadata(d.join(&key)).expect("file").mode();
        assert_eq!(mode & 0o777, 0o600);
        let refused = ReaderEntry {
            extended: false,
            sfi_read_refused: true,
        };
        store_reader(&d, "Reader 0", b"atr", &refused);
        assert_eq!(load_reader(&d, "Reader 0", b"atr"), Some(refused));
        assert_eq!(load_reader(&d, "Reader 1", b"atr"), None);
        assert_eq!(load_reader(&d, "Reader 0", b"other card"), None);
        let mode = fs::metadata(d.join(reader_key("Reader 0", b"atr")))
            .expect("file")
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A damaged reader file counts as absent.
        let path = d.join(reader_key("Reader 0", b"atr"));
        let good = fs::read(&path).expect("file");
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            fs::write(&path, &bad).expect("write");
            assert_eq!(
                load_reader(&d, "Reader 0", b"atr"),
                None,
                "byte {i} changed"
            );
        }
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn damaged_truncated_or_foreign_files_are_absent() {
        let d = tempdir("bad");
        let key = card_key(b"issuer", b"serial");
        store(&d, &key, &sample());
        let good = fs::read(d.join(&key)).expect("file");
        // Every truncation and every single-byte change is refused.
        for cut in 0..good.len() {
            fs::write(d.join(&key), &good[..cut]).expect("write");
            assert_eq!(load(&d, &key), None, "truncated at {cut}");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            fs::write(d.join(&key), &bad).expect("write");
            assert_eq!(load(&d, &key), None, "byte {i} changed");
        }
        // Another card's file under this card's name.
        let other = card_key(b"issuer", b"other");
        store(&d, &other, &sample());
        fs::rename(d.join(&other), d.join(&key)).expect("rename");
        assert_eq!(load(&d, &key), None);
        // Garbage, an empty file, a symbolic link.
        fs::write(d.join(&key), b"garbage").expect("write");
        assert_eq!(load(&d, &key), None);
        fs::write(d.join(&key), b"").expect("write");
        assert_eq!(load(&d, &key), None);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn summarize_and_clear_touch_only_the_caches_files() {
        let d = tempdir("clear");
        let key = card_key(b"issuer", b"serial");
        store(&d, &key, &sample());
        store_reader(
            &d,
            "Reader 0",
            b"atr",
            &ReaderEntry {
                extended: true,
                sfi_read_refused: false,
            },
        );
        fs::write(d.join("card-0000"), b"garbage").expect("write");
        fs::write(d.join("notes.txt"), b"the user's own file").expect("write");
        let files = summarize(&d);
        let holds: Vec<_> = files.iter().map(|f| (f.name.as_str(), &f.holds)).collect();
        assert_eq!(holds.len(), 3, "{holds:?}");
        assert!(holds.contains(&(
            key.as_str(),
            &Holds::Card {
                auth: true,
                auth_ca: false,
                sign_ca: true
            }
        )));
        assert!(holds.contains(&("card-0000", &Holds::Damaged)));
        assert!(holds.contains(&(
            reader_key("Reader 0", b"atr").as_str(),
            &Holds::Reader { extended: true }
        )));
        assert_eq!(clear(&d).expect("clear"), 3);
        assert!(summarize(&d).is_empty());
        assert!(
            d.join("notes.txt").exists(),
            "clear removes only the cache's files"
        );
        assert_eq!(clear(&d.join("absent")).expect("absent dir"), 0);
        let _ = fs::remove_dir_all(&d);
    }
}
