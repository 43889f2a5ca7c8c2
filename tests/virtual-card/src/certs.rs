//! Issuing the four JPKI certificates of a virtual card (jpki-card.md §7).
//!
//! Certificates are assembled field by field with the `x509-cert` types and signed with
//! sha256WithRSAEncryption. The CA DNs are the real ones; everything personal is fake.

use der::asn1::{Any, BitString, Ia5String, ObjectIdentifier, OctetString, SetOfVec, UtcTime};
use der::{DateTime, Encode, Tag};
use rsa::pkcs8::EncodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::state::PersonalData;

const OID_C: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
const OID_L: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.7");
const OID_O: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const OID_OU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.11");
const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const OID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
const OID_ANY_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.32.0");
const OID_QT_CPS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.2.1");

/// Certificate policy of the signature certificate, class 20 (jpki-card.md §7 [1]).
pub const POLICY_SIGN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.1.20");
/// Certificate policy of the authentication certificate, class 30 (jpki-card.md §7 [1]).
pub const POLICY_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.3.30");

/// otherName OIDs of the personal data in the signature certificate SAN (jpki-card.md §7 [C]):
/// name, name (substitute characters), sex, date of birth, address, address (substitute).
pub const SAN_OIDS: [ObjectIdentifier; 6] = [
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.1"),
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.2"),
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.3"),
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.4"),
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.5"),
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.6"),
];

const JLIS: &str = "Japan Agency for Local Authority Information Systems";
const OU_AUTH: &str = "JPKI for user authentication";
const OU_SIGN: &str = "JPKI for digital signature";

/// Which of the two JPKI hierarchies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    Auth,
    Sign,
}

impl Hierarchy {
    fn ou(self) -> &'static str {
        match self {
            Hierarchy::Auth => OU_AUTH,
            Hierarchy::Sign => OU_SIGN,
        }
    }
}

type Result<T> = std::result::Result<T, der::Error>;

fn printable(oid: ObjectIdentifier, value: &str) -> Result<AttributeTypeAndValue> {
    Ok(AttributeTypeAndValue {
        oid,
        value: Any::new(Tag::PrintableString, value.as_bytes())?,
    })
}

fn name(parts: &[(ObjectIdentifier, &str)]) -> Result<Name> {
    let mut rdns = Vec::with_capacity(parts.len());
    for (oid, value) in parts {
        let set = SetOfVec::try_from(vec![printable(*oid, value)?])?;
        rdns.push(RelativeDistinguishedName(set));
    }
    Ok(RdnSequence(rdns))
}

/// The CA DN: `C=JP, O=JPKI, OU=<hierarchy>, OU=Japan Agency for Local Authority Information Systems`.
pub fn ca_name(h: Hierarchy) -> Result<Name> {
    name(&[
        (OID_C, "JP"),
        (OID_O, "JPKI"),
        (OID_OU, h.ou()),
        (OID_OU, JLIS),
    ])
}

fn utc(y: u16, m: u8, d: u8, h: u8, mi: u8, s: u8) -> Result<Time> {
    Ok(Time::UtcTime(UtcTime::from_date_time(DateTime::new(
        y, m, d, h, mi, s,
    )?)?))
}

fn key_id(key: &RsaPublicKey) -> Result<Vec<u8>> {
    let spki = key
        .to_public_key_der()
        .map_err(|_| der::Error::from(der::ErrorKind::Failed))?;
    Ok(Sha256::digest(spki.as_bytes())[..20].to_vec())
}

fn extension<T: AsExtension>(subject: &Name, value: &T) -> Result<Extension> {
    value.to_extension(subject, &[])
}

fn raw_extension<T: Encode>(oid: ObjectIdentifier, critical: bool, v: &T) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(v.to_der()?)?,
    })
}

struct Tbs<'a> {
    serial: &'a [u8],
    issuer: Name,
    subject: Name,
    validity: Validity,
    subject_key: &'a RsaPublicKey,
    issuer_key: &'a RsaPrivateKey,
    extensions: Vec<Extension>,
}

fn sign(tbs: Tbs<'_>) -> Result<Vec<u8>> {
    let alg = AlgorithmIdentifierOwned {
        oid: OID_SHA256_WITH_RSA,
        parameters: Some(Any::null()),
    };
    let spki_der = tbs
        .subject_key
        .to_public_key_der()
        .map_err(|_| der::Error::from(der::ErrorKind::Failed))?;
    let spki = <SubjectPublicKeyInfoOwned as der::Decode>::from_der(spki_der.as_bytes())?;
    let tbs_certificate = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(tbs.serial)?,
        signature: alg.clone(),
        issuer: tbs.issuer,
        validity: tbs.validity,
        subject: tbs.subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(tbs.extensions),
    };
    let digest = Sha256::digest(tbs_certificate.to_der()?);
    let signature = tbs
        .issuer_key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .map_err(|_| der::Error::from(der::ErrorKind::Failed))?;
    Certificate {
        tbs_certificate,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&signature)?,
    }
    .to_der()
}

/// A self-signed JPKI CA certificate of the 2023 generation shape
/// (validity 2023-07-16 → 2033-07-15, keyCertSign+cRLSign, CA:TRUE, both critical).
pub fn issue_ca(h: Hierarchy, key: &RsaPrivateKey, serial: &[u8]) -> Result<Vec<u8>> {
    let dn = ca_name(h)?;
    let public = key.to_public_key();
    let ski = key_id(&public)?;
    let extensions = vec![
        extension(&dn, &SubjectKeyIdentifier(OctetString::new(ski.clone())?))?,
        extension(
            &dn,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(ski)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        extension(&dn, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))?,
        extension(
            &dn,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?,
        // Policy with a CPS pointer, an authority-revocation list and a caIssuers pointer: the
        // real JPKI CA certificates are 1301–1319 bytes (jpki-card.md §4 [1]), and certificate
        // size decides how many READ BINARY commands a reader needs, so ours are of that size.
        extension(
            &dn,
            &CertificatePolicies(vec![PolicyInformation {
                policy_identifier: OID_ANY_POLICY,
                policy_qualifiers: Some(vec![
                    x509_cert::ext::pkix::certpolicy::PolicyQualifierInfo {
                        policy_qualifier_id: OID_QT_CPS,
                        qualifier: Some(Any::new(
                            Tag::Ia5String,
                            "http://jpki.invalid/cps".as_bytes(),
                        )?),
                    },
                ]),
            }]),
        )?,
        extension(
            &dn,
            &CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![
                    GeneralName::DirectoryName(name(&[
                        (OID_C, "JP"),
                        (OID_O, "JPKI"),
                        (OID_OU, h.ou()),
                        (OID_OU, "ARL Distribution Points"),
                        (OID_OU, JLIS),
                    ])?),
                ])),
                reasons: None,
                crl_issuer: None,
            }]),
        )?,
        extension(
            &dn,
            &AuthorityInfoAccessSyntax(vec![AccessDescription {
                access_method: OID_AD_CA_ISSUERS,
                access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(
                    "http://jpki.invalid/ca.p7c",
                )?),
            }]),
        )?,
    ];
    sign(Tbs {
        serial,
        issuer: dn.clone(),
        subject: dn,
        validity: Validity {
            not_before: utc(2023, 7, 16, 15, 0, 0)?,
            not_after: utc(2033, 7, 15, 14, 59, 59)?,
        },
        subject_key: &public,
        issuer_key: key,
        extensions,
    })
}

/// What an end-entity certificate needs besides its keys.
pub struct EeParams<'a> {
    pub hierarchy: Hierarchy,
    pub serial: &'a [u8],
    /// Opaque CN, e.g. `997794E9AGCIEG13221003A`.
    pub common_name: &'a str,
    /// Locality of the holder (signature certificate only).
    pub locality: &'a str,
    pub personal: &'a PersonalData,
    /// End of validity; `None` = the fixed 2025-10-27 → 2030-10-26 period. With a date the
    /// certificate is valid from five years (1826 days) before it, the JPKI term.
    pub not_after: Option<DateTime>,
}

/// The validity of an end-entity certificate ending at `not_after` (see [`EeParams`]).
fn ee_validity(not_after: Option<DateTime>) -> Result<Validity> {
    let Some(end) = not_after else {
        return Ok(Validity {
            not_before: utc(2025, 10, 27, 0, 0, 0)?,
            not_after: utc(2030, 10, 26, 14, 59, 59)?,
        });
    };
    let five_years = std::time::Duration::from_secs(1826 * 86_400);
    let start = end
        .unix_duration()
        .checked_sub(five_years)
        .ok_or_else(|| der::Error::from(der::ErrorKind::DateTime))?;
    let start = DateTime::from_unix_duration(start + std::time::Duration::from_secs(1))?;
    Ok(Validity {
        not_before: Time::UtcTime(UtcTime::from_date_time(start)?),
        not_after: Time::UtcTime(UtcTime::from_date_time(end)?),
    })
}

/// An end-entity certificate valid 2025-10-27 → 2030-10-26, or as `p.not_after` says.
/// Auth: `C=JP, CN=<opaque>`, keyUsage digitalSignature, policy …5.1.3.30, no personal data.
/// Sign: `C=JP, L=<locality>, CN=<opaque>`, keyUsage digitalSignature+nonRepudiation,
/// policy …5.1.1.20, SAN otherNames with the six personal-data items.
pub fn issue_ee(
    p: &EeParams<'_>,
    subject_key: &RsaPublicKey,
    ca_key: &RsaPrivateKey,
) -> Result<Vec<u8>> {
    let h = p.hierarchy;
    let subject = match h {
        Hierarchy::Auth => name(&[(OID_C, "JP"), (OID_CN, p.common_name)])?,
        Hierarchy::Sign => name(&[(OID_C, "JP"), (OID_L, p.locality), (OID_CN, p.common_name)])?,
    };
    let issuer = ca_name(h)?;
    let (usage, policy) = match h {
        Hierarchy::Auth => (KeyUsage(KeyUsages::DigitalSignature.into()), POLICY_AUTH),
        Hierarchy::Sign => (
            KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation),
            POLICY_SIGN,
        ),
    };
    let crl_dn = name(&[
        (OID_C, "JP"),
        (OID_O, "JPKI"),
        (OID_OU, h.ou()),
        (OID_OU, "CRL Distribution Points"),
        (OID_OU, JLIS),
    ])?;
    let ocsp = match h {
        Hierarchy::Auth => "http://ocsp-auth.jpki.invalid/",
        Hierarchy::Sign => "http://ocsp-sign.jpki.invalid/",
    };
    let mut extensions = vec![
        extension(&subject, &usage)?,
        // JPKI marks its policies critical [U]; the OID list is what matters.
        raw_extension(
            <CertificatePolicies as der::oid::AssociatedOid>::OID,
            true,
            &CertificatePolicies(vec![PolicyInformation {
                policy_identifier: policy,
                policy_qualifiers: None,
            }]),
        )?,
        extension(
            &subject,
            &CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![
                    GeneralName::DirectoryName(crl_dn),
                ])),
                reasons: None,
                crl_issuer: None,
            }]),
        )?,
        extension(
            &subject,
            &AuthorityInfoAccessSyntax(vec![AccessDescription {
                access_method: OID_AD_OCSP,
                access_location: GeneralName::UniformResourceIdentifier(Ia5String::new(ocsp)?),
            }]),
        )?,
        extension(
            &subject,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(key_id(&ca_key.to_public_key())?)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        extension(
            &subject,
            &SubjectKeyIdentifier(OctetString::new(key_id(subject_key)?)?),
        )?,
    ];
    if h == Hierarchy::Sign {
        let pd = p.personal;
        let values = [
            pd.name.as_str(),
            pd.name_substitute.as_str(),
            pd.sex.as_str(),
            pd.birth_date_era.as_str(),
            pd.address.as_str(),
            pd.address_substitute.as_str(),
        ];
        let mut names = Vec::with_capacity(6);
        for (oid, v) in SAN_OIDS.iter().zip(values) {
            names.push(GeneralName::OtherName(OtherName {
                type_id: *oid,
                value: Any::new(Tag::Utf8String, v.as_bytes())?,
            }));
        }
        extensions.push(raw_extension(
            <SubjectAltName as der::oid::AssociatedOid>::OID,
            false,
            &SubjectAltName(names),
        )?);
    }
    sign(Tbs {
        serial: p.serial,
        issuer,
        subject,
        validity: ee_validity(p.not_after)?,
        subject_key,
        issuer_key: ca_key,
        extensions,
    })
}
