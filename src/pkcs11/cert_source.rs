//! Where one card's certificates come from: the card itself, or the disk cache checked against
//! the card. The rules, and why they are safe, are in `docs/performance.md`:
//!
//! - **Identity from the first chunk.** The token's label and serial number come from the
//!   authentication certificate's serial number, which sits with its issuer in the
//!   certificate's first 256 bytes: one short READ BINARY, not the whole file. That chunk also
//!   names the card's cache file. When the cache holds a copy whose first chunk is exactly this
//!   one, nothing more is read. Otherwise (cache off, first process on this card, a changed
//!   certificate) the rest follows at once in the same transaction, continuing where the chunk
//!   ended (the `rest_now` rule): nearly every client of the authentication token needs the
//!   certificate later (its value, its key), and reading the rest in a later transaction would
//!   cost one more APDU to make the file current again. Only `pkcs11-tool -L`-like clients
//!   would gain from stopping at the chunk, and with the cache every process after the first
//!   does. When the identity is asked for the signature token alone (a document signer's
//!   `C_GetTokenInfo`), the chunk is all it needs: the rest waits for a client of the
//!   authentication token.
//! - **The cache holds public certificates only**: the authentication certificate and the two
//!   CA certificates, keyed by the authentication certificate's issuer and serial number. The
//!   signature certificate is read from the card every time and never given to the cache.
//! - **Every cache entry is checked against the card before its first use in a process**,
//!   with the cheapest read that proves it is this card's: the authentication certificate's
//!   first chunk (issuer, serial number, validity, subject), compared byte for byte with the
//!   cached copy's. That chunk is the identity read itself (no extra APDU). A different chunk
//!   — a renewed certificate, another card, a damaged or planted file — means a miss: the
//!   certificate is read from the card and the file rewritten. The rest of a cached
//!   certificate (its public key) is not re-read; every signature is verified against that
//!   key before it is returned, so a planted key can only make signing fail — and then the
//!   card's file is dropped from the cache ([`distrust`]).
//! - **The CA certificates ride on that proof** (no read of their own): the entry's CA
//!   certificates were read from the same card with the proven certificate. Each carries its
//!   own safeguard (`CertSource::vouched`): the authentication CA must be the issuer of the
//!   authentication certificate (names and key identifiers agree; checked when the entry is
//!   written and when it is used, else it is ignored and read from the card); the signature
//!   CA, which issued nothing readable before the password, is compared with the signature
//!   certificate's issuer as soon as that is read ([`CertSource::check_signature_ca`]): on a
//!   mismatch the card's is read and served from then on, and the stale one leaves the file.
//!   Without an entry whose authentication certificate matched (a card that hides it before
//!   login, such as the phone's token), each CA certificate is proven by its own first chunk,
//!   or read from the card.
//! - **What a card showed of its command forms** (SFI, PSS) is kept with its certificates, and
//!   **whether extended-length APDUs work, and whether the SFI form of READ BINARY was
//!   refused**, per reader and kind of card (its ATR: in memory for the process, and in the
//!   cache), so that a later process sends neither probe before the card's identity names its
//!   own entry: a wrong belief costs one refused command, or a SELECT EF, and is corrected.
//!
//! Longer than the project's ~500 lines only by its unit tests at the end.
//!
//! [`distrust`]: CertSource::distrust

use std::collections::HashMap;
use std::path::PathBuf;

use der::{Decode, Header, Reader, SliceReader};
#[cfg(not(test))]
use once_cell::sync::Lazy;
#[cfg(not(test))]
use parking_lot::Mutex;

use super::cert::{issued_by, CertificateData};
use super::cert_cache::{self, Entry, ReaderEntry};
use super::config;
use crate::card::{AfterChunk, CardError, CertificateFile, JpkiCard, KeyKind, SfiSupport, Support};

/// Bytes of the identity chunk: one short READ BINARY.
pub const CHUNK: usize = 256;

/// What extended-length READ BINARY and the SFI read did through each reader, per card kind
/// (ATR), in this process (a card that was dropped by a reader under such a command comes back
/// as a new insertion: it must not be tried again).
#[cfg(not(test))]
static BY_READER: Lazy<Mutex<HashMap<ReaderAndAtr, ReaderEntry>>> =
    Lazy::new(|| Mutex::new(HashMap::new()));

// The unit tests share one process and one reader name: each test thread has its own memory
// (and each rig forgets it, `forget_readers`), so that no test's APDU counts depend on which
// tests ran before.
#[cfg(test)]
thread_local! {
    static BY_READER: std::cell::RefCell<HashMap<ReaderAndAtr, ReaderEntry>> =
        std::cell::RefCell::new(HashMap::new());
}

/// A reader's name and the ATR of the card in it.
type ReaderAndAtr = (String, Vec<u8>);

/// Forgets every reader (unit tests: each rig starts as a new process would).
#[cfg(test)]
pub(crate) fn forget_readers() {
    BY_READER.with(|m| m.borrow_mut().clear());
}

/// What this process learnt through `reader` with a card of this ATR.
fn reader_known(reader: &str, atr: &[u8]) -> Option<ReaderEntry> {
    let key = (reader.to_string(), atr.to_vec());
    #[cfg(not(test))]
    return BY_READER.lock().get(&key).copied();
    #[cfg(test)]
    return BY_READER.with(|m| m.borrow().get(&key).copied());
}

/// Records what this process learnt through `reader` with a card of this ATR.
fn reader_learnt(reader: &str, atr: &[u8], entry: ReaderEntry) {
    let key = (reader.to_string(), atr.to_vec());
    #[cfg(not(test))]
    BY_READER.lock().insert(key, entry);
    #[cfg(test)]
    BY_READER.with(|m| m.borrow_mut().insert(key, entry));
}

/// The certificates of one card insertion, and what the cache knows of the card.
pub struct CertSource {
    reader: String,
    /// The card's ATR: with the reader's name, the key of what is known of the reader.
    atr: Vec<u8>,
    /// The cache directory; `None` when the cache is off or has no usable place.
    dir: Option<PathBuf>,
    /// The authentication certificate's first chunk, once read.
    auth_chunk: Option<Vec<u8>>,
    /// The cache file name of this card, once the chunk named it.
    key: Option<String>,
    /// What the cache holds for this card (the authentication certificate only once its chunk
    /// matched the card), plus what this process learnt since.
    entry: Entry,
    /// What was last written (or read) for this card, to write only changes.
    stored: Entry,
    /// What was last recorded for the reader and this kind of card (`None`: nothing, or
    /// extended-length reads switched off by configuration).
    reader_noted: Option<ReaderEntry>,
    /// Extended-length reads are switched off by configuration: nothing is learnt of them.
    extended_off: bool,
    /// The authentication certificate's first chunk, read from the card in this insertion,
    /// is exactly the cached copy's: the cache entry is this card's, and the CA certificates
    /// it holds were read from this card with that certificate (`vouched`).
    proven: bool,
    /// The signature CA certificate came from the cache and has not been compared with the
    /// signature certificate's issuer yet ([`CertSource::check_signature_ca`]).
    sign_ca_unchecked: bool,
    /// A certificate was read while a PIN was verified: this card's certificates are not
    /// written to the cache in this process (it may protect them).
    private_read: bool,
}

/// `(issuer, serial)` DER elements of a certificate from its first bytes, without needing
/// the rest: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version, serial
/// INTEGER, signature AlgorithmIdentifier, issuer Name, … } … }.
pub fn issuer_and_serial(chunk: &[u8]) -> Option<(&[u8], &[u8])> {
    /// The header of the element at `pos`: (tag byte, header length, content length).
    fn header(bytes: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
        let rest = bytes.get(pos..)?;
        let mut reader = SliceReader::new(rest).ok()?;
        let h = Header::decode(&mut reader).ok()?;
        let header_len = usize::try_from(u32::from(reader.position())).ok()?;
        let content = usize::try_from(u32::from(h.length)).ok()?;
        Some((*rest.first()?, header_len, content))
    }
    let (t, cert_h, _) = header(chunk, 0)?;
    let (t2, tbs_h, _) = header(chunk, cert_h)?;
    if t != 0x30 || t2 != 0x30 {
        return None;
    }
    let mut pos = cert_h + tbs_h;
    let (tag, h, len) = header(chunk, pos)?;
    if tag == 0xA0 {
        pos += h + len; // version
    }
    let (tag, h, len) = header(chunk, pos)?;
    if tag != 0x02 {
        return None;
    }
    let serial = chunk.get(pos..pos + h + len)?;
    pos += h + len;
    let (tag, h, len) = header(chunk, pos)?; // signature algorithm
    if tag != 0x30 {
        return None;
    }
    pos += h + len;
    let (tag, h, len) = header(chunk, pos)?;
    if tag != 0x30 {
        return None;
    }
    let issuer = chunk.get(pos..pos + h + len)?;
    Some((issuer, serial))
}

/// The content octets of a DER INTEGER element (the token's serial number).
pub fn integer_content(tlv: &[u8]) -> Option<&[u8]> {
    let mut reader = SliceReader::new(tlv).ok()?;
    let h = Header::decode(&mut reader).ok()?;
    let start = usize::try_from(u32::from(reader.position())).ok()?;
    let len = usize::try_from(u32::from(h.length)).ok()?;
    tlv.get(start..start.checked_add(len)?)
}

/// Whether nothing is verified on the card: a file read now is one anyone holding the card can
/// read (on a card that protects its authentication certificate with the PIN, such as the
/// phone's JPKI token, a read after login is not proof of that), so it may go to the cache.
fn read_without_pin(jpki: &JpkiCard) -> bool {
    !jpki.is_verified(KeyKind::Authentication) && !jpki.is_verified(KeyKind::Signature)
}

/// Whether certificate bytes read from the card may be kept (in memory for the insertion, and
/// in the cache): only a certificate the objects can be built from. A damaged answer is
/// returned to the caller (which reports it and reads again at the next request) but kept
/// nowhere.
fn usable(der: &[u8]) -> bool {
    CertificateData::parse(der).is_ok()
}

/// Whether `cert` (a cached certificate) is the one whose first chunk the card gave.
fn same_certificate(cert: &[u8], chunk: &[u8]) -> bool {
    !chunk.is_empty() && chunk.len() == cert.len().min(CHUNK) && cert.starts_with(chunk)
}

/// Takes what the cache knows of a form where this connection knows nothing yet.
fn merge(known: Support, cached: Support) -> Support {
    match known {
        Support::Unknown => cached,
        other => other,
    }
}

/// Writes a card's entry, without an authentication CA certificate that is not the issuer
/// of the authentication certificate: such a one is never served on that certificate's proof
/// (`CertSource::vouched`), so it is not written either.
fn store_checked(dir: &std::path::Path, key: &str, entry: &Entry) {
    if let (Some(auth), Some(ca)) = (&entry.auth, &entry.auth_ca) {
        if !issued_by(auth, ca) {
            log::info!(
                "certificate cache: the authentication CA certificate does not fit the \
                 authentication certificate; not cached"
            );
            let mut entry = entry.clone();
            entry.auth_ca = None;
            cert_cache::store(dir, key, &entry);
            return;
        }
    }
    cert_cache::store(dir, key, entry);
}

impl CertSource {
    /// Prepares a new card insertion in `reader`: tells the card layer what is known of
    /// extended-length APDUs through this reader (or that they are off).
    pub fn new(reader: &str, jpki: &mut JpkiCard) -> CertSource {
        let cfg = config::get();
        let dir = if cfg.cache() {
            cert_cache::directory()
        } else {
            None
        };
        let atr = jpki.atr();
        let extended_off = !cfg.extended_apdu();
        let known = reader_known(reader, &atr).or_else(|| {
            dir.as_deref()
                .and_then(|d| cert_cache::load_reader(d, reader, &atr))
        });
        let extended = match known {
            _ if extended_off => Support::No,
            Some(r) if r.extended => Support::Yes,
            Some(_) => Support::No,
            None => Support::Unknown,
        };
        jpki.assume_extended(extended);
        if known.is_some_and(|r| r.sfi_read_refused) {
            // A refused SFI read costs one APDU before the card's identity (which names the
            // card's own entry) is known; a wrong belief costs a SELECT EF per file, nothing
            // else (the classic form always works).
            let sfi = jpki.sfi_support();
            if sfi.read == Support::Unknown {
                jpki.assume_sfi_support(SfiSupport {
                    read: Support::No,
                    ..sfi
                });
            }
        }
        CertSource {
            reader: reader.to_string(),
            atr,
            dir,
            auth_chunk: None,
            key: None,
            entry: Entry::default(),
            stored: Entry::default(),
            reader_noted: known.filter(|_| !extended_off),
            extended_off,
            proven: false,
            sign_ca_unchecked: false,
            private_read: false,
        }
    }

    /// The authentication certificate's first chunk (read once per insertion): the token's
    /// identity, and the key of the card's cache file, which is looked up here. `for_auth`:
    /// the identity is asked for the authentication token (or its certificate), whose client
    /// nearly always needs the whole certificate next (the `rest_now` rule); asked for the
    /// signature token alone, the chunk is all that is needed, and the rest is read only if a
    /// client of the authentication token asks for it — or if it is the extended-length probe
    /// not made yet on this card and reader ([`AfterChunk::ProbeExtended`]: the signature
    /// certificate, read after the password, can no longer try it).
    pub fn identity(&mut self, jpki: &mut JpkiCard, for_auth: bool) -> Result<Vec<u8>, CardError> {
        if let Some(chunk) = &self.auth_chunk {
            return Ok(chunk.clone());
        }
        // Look the card up in the cache as soon as the chunk names it; without a copy that
        // matches, the rest follows in the same transaction (the `rest_now` rule above).
        let public = read_without_pin(jpki);
        let dir = self.dir.clone();
        let mut found: Option<(String, Option<Entry>)> = None;
        let (chunk, whole) =
            jpki.read_certificate_prefix_then(CertificateFile::Authentication, CHUNK, |chunk| {
                let miss = if for_auth {
                    AfterChunk::Rest
                } else {
                    AfterChunk::ProbeExtended
                };
                let Some((issuer, serial)) = issuer_and_serial(chunk) else {
                    return miss;
                };
                let Some(dir) = &dir else {
                    return miss;
                };
                let key = cert_cache::card_key(issuer, serial);
                let entry = cert_cache::load(dir, &key);
                let hit = entry
                    .as_ref()
                    .and_then(|e| e.auth.as_ref())
                    .is_some_and(|auth| same_certificate(auth, chunk));
                found = Some((key, entry));
                if hit {
                    AfterChunk::Stop
                } else {
                    miss
                }
            })?;
        if issuer_and_serial(&chunk).is_some() {
            // Kept for the rest of the insertion; a chunk that names nothing (a damaged
            // answer) is read again next time.
            self.auth_chunk = Some(chunk.clone());
        }
        if let Some((key, entry)) = found {
            if let Some(mut entry) = entry {
                if let Some(auth) = &entry.auth {
                    if !same_certificate(auth, &chunk) {
                        // Not this card's certificate, whatever the file says: trust none of it.
                        log::info!("certificate cache: entry does not match the card; ignored");
                        entry = Entry::default();
                    }
                }
                self.stored = entry.clone();
                self.proven = entry.auth.is_some();
                self.sign_ca_unchecked = entry.sign_ca.is_some();
                if let Some(sfi) = entry.sfi {
                    let now = jpki.sfi_support();
                    jpki.assume_sfi_support(SfiSupport {
                        read: merge(now.read, sfi.read),
                        verify: merge(now.verify, sfi.verify),
                        sign: merge(now.sign, sfi.sign),
                    });
                }
                if let (None, Some(pss)) = (jpki.known_pss_support(), entry.pss) {
                    jpki.assume_pss_support(pss);
                }
                self.entry = entry;
            }
            self.key = Some(key);
        }
        match whole {
            Some(w) if usable(&w) => {
                self.entry.auth = Some(w);
                self.private_read |= !public;
            }
            // A damaged answer (its header may lie about the length): start again from the
            // card's first byte at the next request, keeping nothing of it.
            Some(_) => self.auth_chunk = None,
            None => {}
        }
        self.note(jpki);
        Ok(chunk)
    }

    /// A whole certificate: from the cache once checked against the card, else from the card
    /// (and then into the cache, unless it is the signature certificate).
    pub fn certificate(
        &mut self,
        jpki: &mut JpkiCard,
        file: CertificateFile,
    ) -> Result<Vec<u8>, CardError> {
        if file == CertificateFile::Signature {
            // Private (name, address, birth date): from the card, never near the cache.
            return jpki.read_certificate(file);
        }
        // A token that hides its authentication certificate before login (the phone's)
        // proves nothing before it: its CA certificates come from the card.
        if self.dir.is_some() && self.auth_chunk.is_none() && !jpki.auth_certificate_needs_pin() {
            match self.identity(jpki, true) {
                Ok(_) => {}
                Err(e) if file == CertificateFile::Authentication => return Err(e),
                Err(e) => log::debug!("no card identity for the cache: {e}"),
            }
        }
        let result = self.read(jpki, file);
        self.note(jpki);
        result
    }

    fn read(&mut self, jpki: &mut JpkiCard, file: CertificateFile) -> Result<Vec<u8>, CardError> {
        let bytes = match file {
            CertificateFile::Authentication => {
                if let Some(cert) = &self.entry.auth {
                    return Ok(cert.clone());
                }
                match self.auth_chunk.clone() {
                    Some(chunk) => jpki.read_certificate_rest(file, chunk)?,
                    None => jpki.read_certificate(file)?,
                }
            }
            _ => {
                let cached = self.slot(file).clone().filter(|_| self.key.is_some());
                match cached {
                    Some(cert) if self.proven => {
                        if self.vouched(file, &cert) {
                            return Ok(cert);
                        }
                        // Not the issuer of the card's authentication certificate: not this
                        // card's, whatever the file says.
                        log::info!("certificate cache: {file:?} does not fit the card; ignored");
                        jpki.read_certificate(file)?
                    }
                    Some(cert) => {
                        let chunk = jpki.read_certificate_prefix(file, CHUNK)?;
                        if same_certificate(&cert, &chunk) {
                            return Ok(cert);
                        }
                        log::info!("certificate cache: {file:?} changed on the card; read again");
                        jpki.read_certificate_rest(file, chunk)?
                    }
                    None => jpki.read_certificate(file)?,
                }
            }
        };
        if usable(&bytes) {
            *self.slot(file) = Some(bytes.clone());
            if !read_without_pin(jpki) {
                // Kept in memory for this insertion, never written: see `read_without_pin`.
                self.private_read = true;
            }
        } else if file == CertificateFile::Authentication {
            self.auth_chunk = None;
        }
        Ok(bytes)
    }

    /// Whether a cached CA certificate may be served on the strength of the authentication
    /// certificate's proof (`proven`), without a read of its own: the authentication CA only
    /// if it is the issuer of the card's authentication certificate (names and key
    /// identifiers, [`issued_by`]); the signature CA, which issued nothing the module can read
    /// before the password, because it was read from the same card with that certificate, and
    /// it is checked against the signature certificate as soon as that is read
    /// ([`CertSource::check_signature_ca`]).
    fn vouched(&self, file: CertificateFile, cert: &[u8]) -> bool {
        match file {
            CertificateFile::AuthenticationCa => self
                .entry
                .auth
                .as_deref()
                .is_some_and(|a| issued_by(a, cert)),
            CertificateFile::SignatureCa => usable(cert),
            _ => false,
        }
    }

    /// Checks the signature CA certificate that came from the cache against the signature
    /// certificate `sign_cert`, just read from the card after the password: its issuer name
    /// and authority key identifier must be the CA's. If not, the stale CA certificate is
    /// dropped from the cache file, the card's is read, and returned: from then on the caller
    /// serves it instead of the one it had (`Ok(None)`: nothing to change). Nothing of this
    /// check goes to the cache but the removal (it runs while the password is verified).
    pub fn check_signature_ca(
        &mut self,
        jpki: &mut JpkiCard,
        sign_cert: &[u8],
    ) -> Result<Option<Vec<u8>>, CardError> {
        if !std::mem::take(&mut self.sign_ca_unchecked) {
            return Ok(None);
        }
        let Some(cached) = self.entry.sign_ca.take() else {
            return Ok(None);
        };
        if issued_by(sign_cert, &cached) {
            self.entry.sign_ca = Some(cached);
            return Ok(None);
        }
        log::info!(
            "certificate cache: the signature CA certificate is not the signature \
             certificate's issuer; read again from the card"
        );
        let card = match jpki.read_certificate(CertificateFile::SignatureCa) {
            Ok(card) => card,
            Err(e) => {
                self.forget_stored_sign_ca();
                return Err(e);
            }
        };
        if card == cached {
            // The card's own (its certificates carry no matching key identifiers): nothing
            // stale, nothing to change.
            self.entry.sign_ca = Some(cached);
            return Ok(None);
        }
        self.forget_stored_sign_ca();
        // Read while the password is verified: kept in memory only (see `read_without_pin`).
        self.private_read = true;
        if usable(&card) {
            self.entry.sign_ca = Some(card.clone());
        }
        Ok(Some(card))
    }

    /// Drops the signature CA certificate from this card's cache file (the rest stays).
    fn forget_stored_sign_ca(&mut self) {
        if let (Some(dir), Some(key)) = (&self.dir, &self.key) {
            if self.stored.sign_ca.is_some() {
                self.stored.sign_ca = None;
                store_checked(dir, key, &self.stored);
            }
        }
    }

    /// The cache's place for a public certificate (never called for the signature one).
    fn slot(&mut self, file: CertificateFile) -> &mut Option<Vec<u8>> {
        match file {
            CertificateFile::Authentication => &mut self.entry.auth,
            CertificateFile::AuthenticationCa => &mut self.entry.auth_ca,
            _ => &mut self.entry.sign_ca,
        }
    }

    /// Records what the card layer learnt (PSS, SFI, extended APDUs) and writes what changed.
    pub fn note(&mut self, jpki: &JpkiCard) {
        let extended = jpki.extended_support();
        if !self.extended_off && extended != Support::Unknown {
            let now = ReaderEntry {
                extended: extended == Support::Yes,
                sfi_read_refused: jpki.sfi_support().read == Support::No,
            };
            if self.reader_noted != Some(now) {
                self.reader_noted = Some(now);
                reader_learnt(&self.reader, &self.atr, now);
                if let Some(dir) = &self.dir {
                    cert_cache::store_reader(dir, &self.reader, &self.atr, &now);
                }
            }
        }
        let (Some(dir), Some(key)) = (&self.dir, &self.key) else {
            return;
        };
        if let Some(pss) = jpki.known_pss_support() {
            self.entry.pss = Some(pss);
        }
        let sfi = jpki.sfi_support();
        if sfi != SfiSupport::default() {
            self.entry.sfi = Some(sfi);
        }
        if self.entry != self.stored && !self.private_read {
            store_checked(dir, key, &self.entry);
            self.stored = self.entry.clone();
        }
    }

    /// A signature did not verify with the key of a certificate that may have come from the
    /// cache: drop this card's cache file, so that the next process reads from the card.
    pub fn distrust(&mut self) {
        if let (Some(dir), Some(key)) = (&self.dir, &self.key) {
            log::warn!("certificate cache: dropping this card's entry after a failed check");
            let _ = std::fs::remove_file(dir.join(key));
            self.entry = Entry::default();
            self.stored = Entry::default();
            self.proven = false;
            self.sign_ca_unchecked = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_and_serial_from_a_chunk() {
        // SEQUENCE(len 0x04A3) { SEQUENCE(len 0x038B) { [0]{INTEGER 2}, INTEGER 0x1234,
        // SEQUENCE{OID}, SEQUENCE{SET{...}} ...
        let mut c = vec![0x30, 0x82, 0x04, 0xA3, 0x30, 0x82, 0x03, 0x8B];
        c.extend_from_slice(&[0xA0, 0x03, 0x02, 0x01, 0x02]);
        c.extend_from_slice(&[0x02, 0x02, 0x12, 0x34]);
        c.extend_from_slice(&[0x30, 0x03, 0x06, 0x01, 0x2A]);
        c.extend_from_slice(&[0x30, 0x04, 0x31, 0x02, 0x05, 0x00]);
        c.extend_from_slice(&[0x30, 0x1E]); // validity, cut short
        let (issuer, serial) = issuer_and_serial(&c).expect("parsed");
        assert_eq!(serial, &[0x02, 0x02, 0x12, 0x34]);
        assert_eq!(integer_content(serial), Some(&[0x12, 0x34][..]));
        assert_eq!(issuer, &[0x30, 0x04, 0x31, 0x02, 0x05, 0x00]);
        // Cut inside the issuer: not enough.
        assert!(issuer_and_serial(&c[..c.len() - 4]).is_none());
        assert!(issuer_and_serial(&[]).is_none());
        assert!(issuer_and_serial(&[0x04, 0x01, 0x00]).is_none());
    }

    #[test]
    fn a_cached_certificate_is_the_cards_only_if_the_chunk_matches() {
        let cert: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        assert!(same_certificate(&cert, &cert[..256]));
        assert!(!same_certificate(&cert, &cert[..255]));
        let mut other = cert[..256].to_vec();
        other[100] ^= 1;
        assert!(!same_certificate(&cert, &other));
        assert!(same_certificate(&cert[..100], &cert[..100]));
        assert!(!same_certificate(&cert, &[]));
    }
}
