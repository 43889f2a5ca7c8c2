//! The card's facts as this layer uses them: the JPKI application's AID, its files and keys,
//! and the size limits of what it reads and signs. See docs/card-protocol.md for their sources.

/// The JPKI AP (公的個人認証AP) AID (docs/card-protocol.md, [C]).
pub const JPKI_AID: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];

/// Token information EF; first 32 bytes are the space-padded label (docs/card-protocol.md, [C]).
pub(super) const EF_TOKEN_INFO: u16 = 0x0006;
/// Bytes of EF 0006 holding the label (MYNA reads 0x20, docs/card-protocol.md [C]).
pub(super) const TOKEN_LABEL_LEN: u16 = 32;
/// Bytes of EF 0006 holding the serial number, when the EF is the 160-byte serialised
/// `CK_TOKEN_INFO` (label 32, manufacturer 32, model 16, serial 16; docs/card-protocol.md, [1]).
pub(super) const TOKEN_SERIAL: std::ops::Range<usize> = 80..96;

/// Largest certificate accepted (the JPKI ones are ~1.3–2 KB; docs/card-protocol.md).
pub(super) const MAX_CERTIFICATE_LEN: usize = 8 * 1024;
/// Most READ BINARY commands for one certificate, however little the card gives per answer.
pub(super) const MAX_READS: usize = 64;

/// Largest DigestInfo the card pads with PKCS#1 v1.5 for RSA-2048: k − 11 (docs/card-protocol.md).
pub(super) const MAX_DIGEST_INFO_LEN: usize = 245;
/// RSA-2048 signature length (docs/card-protocol.md, [C]).
pub(super) const SIGNATURE_LEN: usize = 256;

/// Which of the two JPKI keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// User authentication (利用者証明用): key EF 0017, PIN EF 0018, 4 digits, 3 tries.
    Authentication,
    /// Digital signature (署名用): key EF 001A, password EF 001B, 6–16 of A–Z0–9, 5 tries.
    Signature,
}

impl KeyKind {
    /// The PIN EF, target of VERIFY (docs/card-protocol.md, [C]).
    pub fn pin_ef(self) -> u16 {
        match self {
            KeyKind::Authentication => 0x0018,
            KeyKind::Signature => 0x001B,
        }
    }

    /// The private-key EF, selected before COMPUTE DIGITAL SIGNATURE (docs/card-protocol.md, [C]).
    pub fn key_ef(self) -> u16 {
        match self {
            KeyKind::Authentication => 0x0017,
            KeyKind::Signature => 0x001A,
        }
    }

    /// Tries of a fresh counter (docs/card-protocol.md, [C]).
    pub fn max_tries(self) -> u8 {
        match self {
            KeyKind::Authentication => 3,
            KeyKind::Signature => 5,
        }
    }

    /// The certificate EFs of this key: (its own certificate, its CA's certificate).
    pub fn certificate_files(self) -> (CertificateFile, CertificateFile) {
        match self {
            KeyKind::Authentication => (
                CertificateFile::Authentication,
                CertificateFile::AuthenticationCa,
            ),
            KeyKind::Signature => (CertificateFile::Signature, CertificateFile::SignatureCa),
        }
    }

    pub(super) fn bit(self) -> u8 {
        match self {
            KeyKind::Authentication => 1,
            KeyKind::Signature => 2,
        }
    }
}

/// The certificate EFs of the JPKI AP (docs/card-protocol.md, [C]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateFile {
    /// EF 000A, readable without PIN.
    Authentication,
    /// EF 000B, readable without PIN.
    AuthenticationCa,
    /// EF 0001, readable only after VERIFY of the signature password (6982 before).
    Signature,
    /// EF 0002, readable without PIN.
    SignatureCa,
}

impl CertificateFile {
    pub const ALL: [CertificateFile; 4] = [
        CertificateFile::Authentication,
        CertificateFile::AuthenticationCa,
        CertificateFile::Signature,
        CertificateFile::SignatureCa,
    ];

    /// The EF number.
    pub fn fid(self) -> u16 {
        match self {
            CertificateFile::Authentication => 0x000A,
            CertificateFile::AuthenticationCa => 0x000B,
            CertificateFile::Signature => 0x0001,
            CertificateFile::SignatureCa => 0x0002,
        }
    }

    /// The key whose PIN must be verified before reading, if any.
    pub fn protected_by(self) -> Option<KeyKind> {
        match self {
            CertificateFile::Signature => Some(KeyKind::Signature),
            _ => None,
        }
    }
}

/// P1 of COMPUTE DIGITAL SIGNATURE for PKCS#1 v1.5 over a caller-built DigestInfo: the card
/// adds the padding (P1 = 00 with P2 = 80 is what OpenSC, MYNA and JRS send, confirmed by
/// several sources, docs/card-protocol.md). PSS (P1 = 04, one source) is in `pss.rs`.
pub(super) const P1_PKCS1_DIGEST_INFO: u8 = 0x00;
