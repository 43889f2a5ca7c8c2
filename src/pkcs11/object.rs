//! Token objects and their attributes.
//!
//! Every attribute value is stored already encoded the way PKCS#11 returns it (`CK_ULONG` in
//! native byte order, `CK_BBOOL` as one byte, `CK_DATE` as 8 ASCII digits), so reading and
//! template matching are plain byte comparisons served from memory: no card traffic.

use cryptoki_sys::*;
use rsa::RsaPublicKey;
use sha1::{Digest, Sha1};

use super::cert::CertificateData;
use super::mechanism::{PSS_MECHANISMS, SIGN_MECHANISMS};
use crate::card::KeyKind;

/// An object handle. Handles are never reused within a process.
pub type ObjectHandle = CK_OBJECT_HANDLE;

/// One stored attribute.
#[derive(Clone, Debug)]
pub enum Attr {
    /// The encoded value.
    Value(Vec<u8>),
    /// Exists but may never be revealed (`CKR_ATTRIBUTE_SENSITIVE`).
    Sensitive,
}

/// What a lookup of one attribute found.
#[derive(Debug)]
pub enum AttrLookup<'a> {
    Value(&'a [u8]),
    Sensitive,
    Invalid,
}

/// A token object.
#[derive(Clone)]
pub struct Object {
    pub handle: ObjectHandle,
    pub class: CK_OBJECT_CLASS,
    /// `CKA_PRIVATE`: only visible to a logged-in user.
    pub private: bool,
    /// For key objects: which card key, and its public half.
    pub key: Option<(KeyKind, RsaPublicKey)>,
    attrs: Vec<(CK_ATTRIBUTE_TYPE, Attr)>,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Object(handle {}, class {:#x})", self.handle, self.class)
    }
}

pub fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub fn bool_(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

impl Object {
    /// Looks up one attribute.
    pub fn attribute(&self, ty: CK_ATTRIBUTE_TYPE) -> AttrLookup<'_> {
        match self.attrs.iter().find(|(t, _)| *t == ty) {
            Some((_, Attr::Value(v))) => AttrLookup::Value(v),
            Some((_, Attr::Sensitive)) => AttrLookup::Sensitive,
            None => AttrLookup::Invalid,
        }
    }

    /// A copy with the value of an existing attribute `ty` replaced.
    pub fn with_value(&self, ty: CK_ATTRIBUTE_TYPE, value: Vec<u8>) -> Object {
        let mut copy = self.clone();
        for (t, v) in copy.attrs.iter_mut() {
            if *t == ty {
                *v = Attr::Value(value.clone());
            }
        }
        copy
    }

    /// Whether every (type, value) of `template` is an attribute of this object with exactly
    /// that encoded value. Unknown or sensitive attributes, or values of another length, do not
    /// match (no error: NSS searches for vendor attributes and classes).
    pub fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template.iter().all(|(ty, want)| match self.attribute(*ty) {
            AttrLookup::Value(have) => have == want.as_slice(),
            _ => false,
        })
    }

    /// An object from its attributes, already checked (session objects: `session_objects`).
    pub fn from_attributes(
        handle: ObjectHandle,
        class: CK_OBJECT_CLASS,
        private: bool,
        key: Option<(KeyKind, RsaPublicKey)>,
        attrs: Vec<(CK_ATTRIBUTE_TYPE, Attr)>,
    ) -> Object {
        Object {
            handle,
            class,
            private,
            key,
            attrs,
        }
    }

    /// Whether a boolean attribute is present and TRUE.
    pub fn is_true(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.attribute(ty), AttrLookup::Value(v) if v.first().is_some_and(|b| *b != CK_FALSE))
    }

    /// Total size of the object's readable attribute values (for `C_GetObjectSize`).
    pub fn size(&self) -> usize {
        self.attrs
            .iter()
            .map(|(_, a)| match a {
                Attr::Value(v) => v.len(),
                Attr::Sensitive => 0,
            })
            .sum()
    }
}

/// Names and ids of the objects of one key pair.
pub struct PairNames {
    pub id: u8,
    pub label: &'static str,
    pub ca_id: u8,
    pub ca_label: &'static str,
}

/// `CKA_ID` and `CKA_LABEL` per key (documented in include/jpki-pkcs11.h).
pub fn pair_names(key: KeyKind) -> PairNames {
    match key {
        KeyKind::Authentication => PairNames {
            id: 0x01,
            label: "JPKI User Authentication",
            ca_id: 0x03,
            ca_label: "JPKI User Authentication CA",
        },
        KeyKind::Signature => PairNames {
            id: 0x02,
            label: "JPKI Digital Signature",
            ca_id: 0x04,
            ca_label: "JPKI Digital Signature CA",
        },
    }
}

struct Builder {
    attrs: Vec<(CK_ATTRIBUTE_TYPE, Attr)>,
}

impl Builder {
    fn new(class: CK_OBJECT_CLASS, private: bool) -> Builder {
        let mut b = Builder { attrs: Vec::new() };
        b.ulong(CKA_CLASS, class);
        b.bool(CKA_TOKEN, true);
        b.bool(CKA_PRIVATE, private);
        b.bool(CKA_MODIFIABLE, false);
        b.bool(CKA_COPYABLE, false);
        b.bool(CKA_DESTROYABLE, false);
        b
    }
    fn bytes(&mut self, ty: CK_ATTRIBUTE_TYPE, v: &[u8]) -> &mut Self {
        self.attrs.push((ty, Attr::Value(v.to_vec())));
        self
    }
    fn ulong(&mut self, ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> &mut Self {
        self.attrs.push((ty, Attr::Value(ulong(v))));
        self
    }
    fn bool(&mut self, ty: CK_ATTRIBUTE_TYPE, v: bool) -> &mut Self {
        self.attrs.push((ty, Attr::Value(bool_(v))));
        self
    }
    fn sensitive(&mut self, ty: CK_ATTRIBUTE_TYPE) -> &mut Self {
        self.attrs.push((ty, Attr::Sensitive));
        self
    }
    fn dates(&mut self, cert: &CertificateData) -> &mut Self {
        // An unknown date is an empty value, as the specification allows.
        let start = cert.not_before.map(|d| d.to_vec()).unwrap_or_default();
        let end = cert.not_after.map(|d| d.to_vec()).unwrap_or_default();
        self.bytes(CKA_START_DATE, &start);
        self.bytes(CKA_END_DATE, &end)
    }
    fn build(self, handle: ObjectHandle, key: Option<(KeyKind, RsaPublicKey)>) -> Object {
        let class = match self.attrs.first() {
            Some((_, Attr::Value(v))) => {
                let mut b = [0u8; std::mem::size_of::<CK_ULONG>()];
                if v.len() == b.len() {
                    b.copy_from_slice(v);
                }
                CK_ULONG::from_ne_bytes(b)
            }
            _ => 0,
        };
        let private = self
            .attrs
            .iter()
            .any(|(t, a)| *t == CKA_PRIVATE && matches!(a, Attr::Value(v) if v == &[CK_TRUE]));
        Object {
            handle,
            class,
            private,
            key,
            attrs: self.attrs,
        }
    }
}

/// `CKA_UNIQUE_ID` (3.0): stable across sessions and insertions, different for every object of
/// a token. Key pair objects and certificates: the first 8 bytes of the certificate's SHA-1 in
/// hex and what the object is; profiles: the token and the profile id. Costs no card traffic.
fn unique_id(cert: &CertificateData, what: &str) -> Vec<u8> {
    let sha1 = Sha1::digest(&cert.der);
    let hex = super::hex::encode(&sha1[..8], false);
    format!("{hex}-{what}").into_bytes()
}

/// A `CKO_PROFILE` object of the token of `key`.
pub fn profile(handle: ObjectHandle, key: KeyKind, profile_id: CK_PROFILE_ID) -> Object {
    let mut b = Builder::new(CKO_PROFILE, false);
    let token = match key {
        KeyKind::Authentication => "auth",
        KeyKind::Signature => "sign",
    };
    b.bytes(
        CKA_UNIQUE_ID,
        format!("{token}-profile-{profile_id}").as_bytes(),
    );
    b.bytes(CKA_LABEL, b"");
    b.ulong(CKA_PROFILE_ID, profile_id);
    b.build(handle, None)
}

/// A `CKO_CERTIFICATE` (X.509) object.
pub fn certificate(
    handle: ObjectHandle,
    cert: &CertificateData,
    id: u8,
    label: &str,
    authority: bool,
    private: bool,
) -> Object {
    let mut b = Builder::new(CKO_CERTIFICATE, private);
    let sha1 = Sha1::digest(&cert.der);
    b.bytes(CKA_UNIQUE_ID, &unique_id(cert, "cert"))
        .bytes(CKA_LABEL, label.as_bytes())
        .ulong(CKA_CERTIFICATE_TYPE, CKC_X_509)
        .bool(CKA_TRUSTED, false)
        .ulong(CKA_CERTIFICATE_CATEGORY, if authority { 2 } else { 1 })
        .bytes(CKA_CHECK_VALUE, &sha1[..3])
        .dates(cert)
        .bytes(CKA_PUBLIC_KEY_INFO, &cert.spki)
        .bytes(CKA_SUBJECT, &cert.subject)
        .bytes(CKA_ID, &[id])
        .bytes(CKA_ISSUER, &cert.issuer)
        .bytes(CKA_SERIAL_NUMBER, &cert.serial)
        .bytes(CKA_VALUE, &cert.der)
        .bytes(CKA_URL, b"")
        .bytes(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, b"")
        .bytes(CKA_HASH_OF_ISSUER_PUBLIC_KEY, b"")
        .ulong(CKA_JAVA_MIDP_SECURITY_DOMAIN, 0)
        .ulong(CKA_NAME_HASH_ALGORITHM, CKM_SHA_1);
    b.build(handle, None)
}

/// `CKA_ALLOWED_MECHANISMS` of a key: the PKCS#1 v1.5 mechanisms, and with `pss` the card's
/// PSS ones (see `live_attributes`, which sets them once the card is known to sign PSS).
pub fn allowed_mechanisms(pss: bool) -> Vec<u8> {
    let pss_mechs: &[CK_MECHANISM_TYPE] = if pss { &PSS_MECHANISMS } else { &[] };
    SIGN_MECHANISMS
        .iter()
        .chain(pss_mechs)
        .flat_map(|m| m.to_ne_bytes())
        .collect()
}

fn key_common(b: &mut Builder, cert: &CertificateData, id: u8, label: &str) {
    b.bytes(CKA_LABEL, label.as_bytes())
        .ulong(CKA_KEY_TYPE, CKK_RSA)
        .bytes(CKA_ID, &[id])
        .dates(cert)
        .bool(CKA_DERIVE, false)
        // CKA_LOCAL is FALSE: the key was generated on the card at issuance by the issuer's
        // equipment; we cannot state that it was generated on "this token" by C_GenerateKeyPair.
        .bool(CKA_LOCAL, false)
        .ulong(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION)
        .bytes(CKA_ALLOWED_MECHANISMS, &allowed_mechanisms(false))
        .bytes(CKA_SUBJECT, &cert.subject)
        .bytes(CKA_MODULUS, &cert.modulus())
        .bytes(CKA_PUBLIC_EXPONENT, &cert.public_exponent())
        .bytes(CKA_PUBLIC_KEY_INFO, &cert.spki);
}

/// The RSA public key of a certificate.
pub fn public_key(
    handle: ObjectHandle,
    cert: &CertificateData,
    key: KeyKind,
    id: u8,
    label: &str,
    private: bool,
) -> Object {
    let mut b = Builder::new(CKO_PUBLIC_KEY, private);
    b.bytes(CKA_UNIQUE_ID, &unique_id(cert, "public"));
    key_common(&mut b, cert, id, label);
    b.ulong(CKA_MODULUS_BITS, cert.modulus_bits() as CK_ULONG)
        .bool(CKA_VERIFY, true)
        .bool(CKA_ENCRYPT, false)
        .bool(CKA_WRAP, false)
        .bool(CKA_VERIFY_RECOVER, false)
        .bool(CKA_TRUSTED, false);
    b.build(handle, Some((key, cert.public_key.clone())))
}

/// The card's RSA private key, described from its certificate.
pub fn private_key(
    handle: ObjectHandle,
    cert: &CertificateData,
    key: KeyKind,
    id: u8,
    label: &str,
) -> Object {
    let mut b = Builder::new(CKO_PRIVATE_KEY, true);
    b.bytes(CKA_UNIQUE_ID, &unique_id(cert, "private"));
    key_common(&mut b, cert, id, label);
    b.bool(CKA_SIGN, true)
        .bool(CKA_SIGN_RECOVER, false)
        .bool(CKA_DECRYPT, false)
        .bool(CKA_UNWRAP, false)
        .bool(CKA_SENSITIVE, true)
        .bool(CKA_EXTRACTABLE, false)
        .bool(CKA_ALWAYS_SENSITIVE, true)
        .bool(CKA_NEVER_EXTRACTABLE, true)
        .bool(CKA_WRAP_WITH_TRUSTED, false)
        // FALSE for both keys: jarsigner, pkcs11-provider and others fail on TRUE, and NSS
        // would prompt twice (docs/client-behaviour.md). See include/jpki-pkcs11.h.
        .bool(CKA_ALWAYS_AUTHENTICATE, false)
        .sensitive(CKA_PRIVATE_EXPONENT)
        .sensitive(CKA_PRIME_1)
        .sensitive(CKA_PRIME_2)
        .sensitive(CKA_EXPONENT_1)
        .sensitive(CKA_EXPONENT_2)
        .sensitive(CKA_COEFFICIENT);
    b.build(handle, Some((key, cert.public_key.clone())))
}
