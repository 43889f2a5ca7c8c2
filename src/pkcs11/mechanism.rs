//! Mechanisms: what the card signs, what we hash and verify in software.
//!
//! The card does RSASSA-PKCS1-v1_5 over a caller-supplied DigestInfo (P1 = 00,
//! docs/card-protocol.md).
//! `CKM_RSA_PKCS` passes the caller's data through; `CKM_SHA*_RSA_PKCS` hash here and build the
//! DigestInfo. Verification is done in software with the public key from the certificate.
//! Never offered: `CKM_RSA_X_509`, decryption.
//!
//! RSASSA-PSS (`CKM_RSA_PKCS_PSS`, `CKM_SHA256_RSA_PKCS_PSS`, [`PSS_MECHANISMS`]) is offered only
//! on tokens whose card signs PSS itself (P1 = 04, detected by `card::jpki::pss`), and only with
//! the TLS 1.3 parameters the card implements: SHA-256, MGF1-SHA-256, salt length 32
//! ([`PssParams::require_card_params`]). PSS is never emulated over raw RSA (docs/client-behaviour.md).

use cryptoki_sys::*;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::error::{Error, Result};

/// Key size of every JPKI key (docs/card-protocol.md).
pub const KEY_BITS: CK_ULONG = 2048;

/// Mechanisms that sign on the card (and verify in software).
pub const SIGN_MECHANISMS: [CK_MECHANISM_TYPE; 6] = [
    CKM_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
];

/// RSASSA-PSS mechanisms, on cards with their own PSS only: card P1 = 04 over a SHA-256 hash
/// (`CKM_RSA_PKCS_PSS`: the caller's 32-byte hash; `CKM_SHA256_RSA_PKCS_PSS`: hashed here).
pub const PSS_MECHANISMS: [CK_MECHANISM_TYPE; 2] = [CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS];

/// The `CKM_` name of a signing mechanism of this module (the usage history names the
/// mechanism a program used); another value as hex.
pub fn name(mech: CK_MECHANISM_TYPE) -> String {
    let name = match mech {
        CKM_RSA_PKCS => "CKM_RSA_PKCS",
        CKM_SHA1_RSA_PKCS => "CKM_SHA1_RSA_PKCS",
        CKM_SHA224_RSA_PKCS => "CKM_SHA224_RSA_PKCS",
        CKM_SHA256_RSA_PKCS => "CKM_SHA256_RSA_PKCS",
        CKM_SHA384_RSA_PKCS => "CKM_SHA384_RSA_PKCS",
        CKM_SHA512_RSA_PKCS => "CKM_SHA512_RSA_PKCS",
        CKM_RSA_PKCS_PSS => "CKM_RSA_PKCS_PSS",
        CKM_SHA256_RSA_PKCS_PSS => "CKM_SHA256_RSA_PKCS_PSS",
        other => return format!("0x{other:08X}"),
    };
    name.to_string()
}

/// The parameter of a `CK_MECHANISM`, as the ffi layer read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MechanismParam {
    /// No parameter (NULL, length 0).
    #[default]
    None,
    /// A `CK_RSA_PKCS_PSS_PARAMS`.
    Pss(PssParams),
    /// A parameter of another type or size.
    Other,
}

/// `CK_RSA_PKCS_PSS_PARAMS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PssParams {
    pub hash_alg: CK_MECHANISM_TYPE,
    pub mgf: CK_RSA_PKCS_MGF_TYPE,
    pub s_len: CK_ULONG,
}

/// Salt length of the card's PSS (= SHA-256 output, what TLS 1.3 requires).
pub const PSS_SALT_LEN: usize = 32;

impl PssParams {
    /// The card's PSS has fixed parameters: SHA-256, MGF1-SHA-256, sLen 32. Anything else
    /// (or no parameter) is `CKR_MECHANISM_PARAM_INVALID`.
    pub fn require_card_params(param: MechanismParam) -> Result<()> {
        match param {
            MechanismParam::Pss(PssParams {
                hash_alg: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                s_len,
            }) if s_len == PSS_SALT_LEN as CK_ULONG => Ok(()),
            _ => Err(Error::MechanismParamInvalid),
        }
    }
}

/// Digest mechanisms done in software (Java checks for them).
pub const DIGEST_MECHANISMS: [CK_MECHANISM_TYPE; 5] =
    [CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512];

/// Every mechanism of a token, in the order of `C_GetMechanismList`; the PSS ones only when
/// the token's card signs PSS.
pub fn mechanism_list(pss: bool) -> Vec<CK_MECHANISM_TYPE> {
    let pss_mechs: &[CK_MECHANISM_TYPE] = if pss { &PSS_MECHANISMS } else { &[] };
    SIGN_MECHANISMS
        .iter()
        .chain(pss_mechs)
        .chain(DIGEST_MECHANISMS.iter())
        .copied()
        .collect()
}

/// `CK_MECHANISM_INFO` contents: (min key size, max key size, flags). `pss`: whether the
/// token's card signs PSS (otherwise the PSS mechanisms are `CKR_MECHANISM_INVALID`).
pub fn mechanism_info(
    mech: CK_MECHANISM_TYPE,
    pss: bool,
) -> Result<(CK_ULONG, CK_ULONG, CK_FLAGS)> {
    if SIGN_MECHANISMS.contains(&mech) || (pss && PSS_MECHANISMS.contains(&mech)) {
        // CKF_HW: the private-key operation runs on the card. CKF_VERIFY is also set because
        // C_Verify* with these mechanisms works (in software, with the public key).
        Ok((KEY_BITS, KEY_BITS, CKF_HW | CKF_SIGN | CKF_VERIFY))
    } else if DIGEST_MECHANISMS.contains(&mech) {
        Ok((0, 0, CKF_DIGEST))
    } else {
        Err(Error::MechanismInvalid)
    }
}

/// A running hash.
#[derive(Clone)]
pub enum Hasher {
    Sha1(Sha1),
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    /// The hasher of a digest mechanism.
    pub fn for_digest(mech: CK_MECHANISM_TYPE) -> Result<Hasher> {
        Ok(match mech {
            CKM_SHA_1 => Hasher::Sha1(Sha1::new()),
            CKM_SHA224 => Hasher::Sha224(Sha224::new()),
            CKM_SHA256 => Hasher::Sha256(Sha256::new()),
            CKM_SHA384 => Hasher::Sha384(Sha384::new()),
            CKM_SHA512 => Hasher::Sha512(Sha512::new()),
            _ => return Err(Error::MechanismInvalid),
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn output_len(&self) -> usize {
        match self {
            Hasher::Sha1(_) => 20,
            Hasher::Sha224(_) => 28,
            Hasher::Sha256(_) => 32,
            Hasher::Sha384(_) => 48,
            Hasher::Sha512(_) => 64,
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }

    /// The DER DigestInfo prefix for this hash (RFC 8017 §9.2 note 1).
    fn digest_info_prefix(&self) -> Box<[u8]> {
        match self {
            Hasher::Sha1(_) => Pkcs1v15Sign::new::<Sha1>().prefix,
            Hasher::Sha224(_) => Pkcs1v15Sign::new::<Sha224>().prefix,
            Hasher::Sha256(_) => Pkcs1v15Sign::new::<Sha256>().prefix,
            Hasher::Sha384(_) => Pkcs1v15Sign::new::<Sha384>().prefix,
            Hasher::Sha512(_) => Pkcs1v15Sign::new::<Sha512>().prefix,
        }
    }

    /// Finishes the hash and wraps it in a DigestInfo.
    pub fn finish_digest_info(self) -> Vec<u8> {
        let mut out = self.digest_info_prefix().to_vec();
        out.extend_from_slice(&self.finish());
        out
    }
}

/// How the data of a sign/verify operation becomes the card's input.
#[derive(Clone)]
pub enum SignScheme {
    /// `CKM_RSA_PKCS`: the data is passed through (normally a DigestInfo), at most k − 11 bytes.
    Raw(Vec<u8>),
    /// `CKM_SHA*_RSA_PKCS`: hashed here, then wrapped in a DigestInfo.
    Hashed(Box<Hasher>),
    /// `CKM_RSA_PKCS_PSS`: the data is the 32-byte SHA-256 hash itself.
    PssRaw(Vec<u8>),
    /// `CKM_SHA256_RSA_PKCS_PSS`: hashed here, the card signs the hash with PSS.
    PssHashed(Box<Sha256>),
}

/// What the card signs (and software verifies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInput {
    /// PKCS#1 v1.5 type-1 padding over this (a DigestInfo, or `CKM_RSA_PKCS` data): P1 = 00.
    Pkcs1(Vec<u8>),
    /// RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) over this SHA-256 hash: P1 = 04.
    PssSha256([u8; 32]),
}

impl SignScheme {
    /// The scheme of a PSS mechanism, after checking its parameter (the caller checked that the
    /// card signs PSS).
    pub fn new_pss(mech: CK_MECHANISM_TYPE, param: MechanismParam) -> Result<SignScheme> {
        let scheme = match mech {
            CKM_RSA_PKCS_PSS => SignScheme::PssRaw(Vec::new()),
            CKM_SHA256_RSA_PKCS_PSS => SignScheme::PssHashed(Box::new(Sha256::new())),
            _ => return Err(Error::MechanismInvalid),
        };
        PssParams::require_card_params(param)?;
        Ok(scheme)
    }

    pub fn new(mech: CK_MECHANISM_TYPE) -> Result<SignScheme> {
        Ok(match mech {
            CKM_RSA_PKCS => SignScheme::Raw(Vec::new()),
            CKM_SHA1_RSA_PKCS => SignScheme::Hashed(Box::new(Hasher::Sha1(Sha1::new()))),
            CKM_SHA224_RSA_PKCS => SignScheme::Hashed(Box::new(Hasher::Sha224(Sha224::new()))),
            CKM_SHA256_RSA_PKCS => SignScheme::Hashed(Box::new(Hasher::Sha256(Sha256::new()))),
            CKM_SHA384_RSA_PKCS => SignScheme::Hashed(Box::new(Hasher::Sha384(Sha384::new()))),
            CKM_SHA512_RSA_PKCS => SignScheme::Hashed(Box::new(Hasher::Sha512(Sha512::new()))),
            _ => return Err(Error::MechanismInvalid),
        })
    }

    /// `CKM_RSA_PKCS` and `CKM_RSA_PKCS_PSS` are single-part only (the specification's
    /// mechanism table): no `C_SignUpdate` / `C_VerifyUpdate`.
    pub fn single_part_only(&self) -> bool {
        matches!(self, SignScheme::Raw(_) | SignScheme::PssRaw(_))
    }

    /// Adds data; `key_len` bounds what `CKM_RSA_PKCS` can accept.
    pub fn update(&mut self, data: &[u8], key_len: usize) -> Result<()> {
        match self {
            SignScheme::Raw(buf) => {
                if buf.len() + data.len() > max_raw_input(key_len) {
                    return Err(Error::DataLenRange);
                }
                buf.extend_from_slice(data);
            }
            SignScheme::Hashed(h) => h.update(data),
            SignScheme::PssRaw(buf) => {
                if buf.len() + data.len() > crate::card::PSS_HASH_LEN {
                    return Err(Error::DataLenRange);
                }
                buf.extend_from_slice(data);
            }
            SignScheme::PssHashed(h) => h.update(data),
        }
        Ok(())
    }

    /// The card's input: the DigestInfo (or the raw data for `CKM_RSA_PKCS`), or the SHA-256
    /// hash for PSS (`CKM_RSA_PKCS_PSS` input must be exactly 32 bytes: `CKR_DATA_LEN_RANGE`).
    pub fn finish(self) -> Result<SignInput> {
        Ok(match self {
            SignScheme::Raw(buf) => SignInput::Pkcs1(buf),
            SignScheme::Hashed(h) => SignInput::Pkcs1((*h).finish_digest_info()),
            SignScheme::PssRaw(buf) => {
                SignInput::PssSha256(buf.try_into().map_err(|_| Error::DataLenRange)?)
            }
            SignScheme::PssHashed(h) => SignInput::PssSha256((*h).finalize().into()),
        })
    }
}

/// Checks a signature over `input` in software with the certificate's key.
pub fn verify_input(key: &RsaPublicKey, input: &SignInput, signature: &[u8]) -> Result<()> {
    match input {
        SignInput::Pkcs1(encoded) => verify_pkcs1(key, encoded, signature),
        SignInput::PssSha256(hash) => verify_pss(key, hash, signature),
    }
}

/// Checks an RSASSA-PSS signature (SHA-256, MGF1-SHA-256, salt 32) over a SHA-256 hash.
pub fn verify_pss(key: &RsaPublicKey, hash: &[u8; 32], signature: &[u8]) -> Result<()> {
    use rsa::traits::PublicKeyParts;
    if signature.len() != key.size() {
        return Err(Error::SignatureLenRange);
    }
    key.verify(
        rsa::Pss::new_with_salt::<Sha256>(PSS_SALT_LEN),
        hash,
        signature,
    )
    .map_err(|_| Error::SignatureInvalid)
}

/// Largest input of PKCS#1 v1.5 type-1 padding: k − 11 (245 for RSA-2048).
pub fn max_raw_input(key_len: usize) -> usize {
    key_len.saturating_sub(11)
}

/// Checks a PKCS#1 v1.5 signature over `encoded` (DigestInfo or raw data).
pub fn verify_pkcs1(key: &RsaPublicKey, encoded: &[u8], signature: &[u8]) -> Result<()> {
    use rsa::traits::PublicKeyParts;
    if signature.len() != key.size() {
        return Err(Error::SignatureLenRange);
    }
    key.verify(Pkcs1v15Sign::new_unprefixed(), encoded, signature)
        .map_err(|_| Error::SignatureInvalid)
}
