//! `jpki sign` / `jpki verify`: CMS (RFC 5652) detached SignedData, DER.
//!
//! Signing: SHA-256 of the file; signed attributes contentType (id-data), signingTime,
//! messageDigest; the card signs the SHA-256 DigestInfo of the DER SET OF signed attributes
//! with PKCS#1 v1.5 (P1 = 00, supported by every card); the signature is verified in software
//! before the file is written. The signer certificate and its CA certificate are included, so
//! `openssl cms -verify -binary -content FILE -inform DER -in FILE.p7s -CAfile CA.pem` checks it.
//! With the signature key (default) the included certificate is the signature certificate,
//! which carries the signer's name and address: that is what a JPKI signature is for.
//!
//! Verifying: one SignerInfo, SHA-256, RSA PKCS#1 v1.5 (rsaEncryption or
//! sha256WithRSAEncryption); messageDigest and contentType checked; with `--ca`, the signer
//! certificate must be issued by that CA (signature checked) and valid now; without it, by one
//! of the shipped J-LIS signature CAs (anchors.rs; no time check, so that old signatures under
//! an expired generation still verify).

use std::path::{Path, PathBuf};

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec, UtcTime};
use der::oid::ObjectIdentifier;
use der::{Any, Decode, Encode};
use jpki_pkcs11::card::{CertificateFile, KeyKind, Pin};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::anchors;
use super::args::Args;
use super::common::{self, card_failure, Exit, Failure, PinSource, Progress, Report};

/// What `jpki sign` reports.
#[derive(Serialize)]
struct SignReport {
    /// The file written.
    signature: String,
    key: &'static str,
    signer: String,
    /// SHA-256 of the signed file, hex.
    sha256: String,
}

impl Report for SignReport {
    fn human(&self) {
        println!("wrote {} (CMS detached signature, DER)", self.signature);
        println!("signer: {}", self.signer);
    }
}

/// What `jpki verify` reports (only for a valid signature; an invalid one is a failure).
#[derive(Serialize)]
struct VerifyReport {
    valid: bool,
    signer: String,
    /// Always true: the signer's certificate was checked against `--ca` or a J-LIS anchor.
    ca_checked: bool,
    /// The J-LIS CA generation the signer chains to (no `--ca`).
    jlis_ca: Option<String>,
}

impl Report for VerifyReport {
    fn human(&self) {
        println!("signature valid; signer: {}", self.signer);
        match &self.jlis_ca {
            Some(ca) => println!("issued by the {ca} (pinned J-LIS trust anchor)"),
            None => println!("issued by the CA given with --ca"),
        }
    }
}

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

fn internal(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Error, format!("{what}: {e}"))
}

fn public_key(cert: &Certificate) -> Result<RsaPublicKey, Failure> {
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| internal("certificate key", e))?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| internal("certificate key", e))
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, Failure> {
    let values = SetOfVec::try_from(vec![value]).map_err(|e| internal("attribute", e))?;
    Ok(Attribute { oid, values })
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::new(Exit::Error, format!("reading {}: {e}", path.display())))
}

pub fn sign(args: &Args, key: KeyKind, input: &Path, output: Option<&Path>) -> Result<(), Failure> {
    let content = read_file(input)?;
    let out_path: PathBuf = output.map(Path::to_path_buf).unwrap_or_else(|| {
        let mut s = input.as_os_str().to_owned();
        s.push(".p7s");
        PathBuf::from(s)
    });
    let what = common::key_name(key);
    let mut pins = PinSource::new(args)?;
    let typed = pins.read(&format!("{} : ", capitalize(what)))?;
    let pin = Pin::parse(key, typed.as_bytes())
        .map_err(|e| common::pin_format_failure(e, what, common::key_rule(key)))?;
    drop(typed);
    let (_, mut card) = common::open_card(args)?;
    let progress = Progress::start("signing on the card…");
    card.verify_pin(&pin).map_err(|e| card_failure(e, what))?;
    let (cert_file, ca_file) = match key {
        KeyKind::Authentication => (
            CertificateFile::Authentication,
            CertificateFile::AuthenticationCa,
        ),
        KeyKind::Signature => (CertificateFile::Signature, CertificateFile::SignatureCa),
    };
    let cert_der = card
        .read_certificate(cert_file)
        .map_err(|e| card_failure(e, "card"))?;
    let ca_der = card.read_certificate(ca_file).ok();
    let cert = Certificate::from_der(&cert_der).map_err(|e| internal("card certificate", e))?;

    let digest = Sha256::digest(&content);
    let now = UtcTime::from_system_time(std::time::SystemTime::now())
        .map_err(|e| internal("signing time", e))?;
    let attrs = vec![
        attribute(
            ID_CONTENT_TYPE,
            Any::encode_from(&ID_DATA).map_err(|e| internal("attribute", e))?,
        )?,
        attribute(
            ID_SIGNING_TIME,
            Any::encode_from(&now).map_err(|e| internal("attribute", e))?,
        )?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(
                &OctetString::new(digest.to_vec()).map_err(|e| internal("digest", e))?,
            )
            .map_err(|e| internal("attribute", e))?,
        )?,
    ];
    let signed_attrs = SetOfVec::try_from(attrs).map_err(|e| internal("attributes", e))?;
    let to_sign = signed_attrs
        .to_der()
        .map_err(|e| internal("attributes", e))?;
    let mut digest_info = SHA256_DIGEST_INFO_PREFIX.to_vec();
    digest_info.extend_from_slice(&Sha256::digest(&to_sign));
    let signature = card
        .sign(key, &digest_info)
        .map_err(|e| card_failure(e, what))?;
    let _ = card.logout();
    drop(progress);
    // As for every signature of this project: check it before handing it out.
    public_key(&cert)?
        .verify(Pkcs1v15Sign::new_unprefixed(), &digest_info, &signature)
        .map_err(|_| {
            Failure::new(
                Exit::Error,
                "the card's signature does not verify with its certificate",
            )
        })?;

    let mut certs = vec![CertificateChoices::Certificate(cert.clone())];
    if let Some(ca) = ca_der
        .as_deref()
        .and_then(|d| Certificate::from_der(d).ok())
    {
        certs.push(CertificateChoices::Certificate(ca));
    }
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        },
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(|e| internal("signature", e))?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        }])
        .map_err(|e| internal("digest algorithms", e))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(certs).map_err(|e| internal("certificates", e))?,
        )),
        crls: None,
        signer_infos: SignerInfos(
            SetOfVec::try_from(vec![signer]).map_err(|e| internal("signer", e))?,
        ),
    };
    let info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(|e| internal("SignedData", e))?,
    };
    let der = info.to_der().map_err(|e| internal("ContentInfo", e))?;
    std::fs::write(&out_path, &der)
        .map_err(|e| Failure::new(Exit::Error, format!("writing {}: {e}", out_path.display())))?;
    let report = SignReport {
        signature: out_path.display().to_string(),
        key: match key {
            KeyKind::Authentication => "auth",
            KeyKind::Signature => "sign",
        },
        signer: cert.tbs_certificate.subject.to_string(),
        sha256: hex(&digest),
    };
    common::output(args, &report);
    Ok(())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Lower-case hexadecimal, through the module's one encoder.
fn hex(b: &[u8]) -> String {
    jpki_pkcs11::pkcs11::hex::encode(b, false)
}

fn bad(message: impl Into<String>) -> Failure {
    Failure::new(Exit::BadSignature, message)
}

/// The checks of `jpki verify`: the signer's subject and, without `--ca`, the J-LIS CA it
/// chains to.
fn check(
    sig_der: &[u8],
    content: &[u8],
    ca: Option<&Certificate>,
) -> Result<(String, Option<String>), Failure> {
    let info =
        ContentInfo::from_der(sig_der).map_err(|e| bad(format!("not a CMS structure: {e}")))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(bad("not a CMS SignedData"));
    }
    let sd: SignedData = info
        .content
        .decode_as()
        .map_err(|e| bad(format!("bad SignedData: {e}")))?;
    if sd.encap_content_info.econtent.is_some() {
        return Err(bad("not a detached signature (the content is embedded)"));
    }
    let signers: Vec<&SignerInfo> = sd.signer_infos.0.iter().collect();
    let [si] = signers.as_slice() else {
        return Err(bad(format!(
            "{} signers; exactly one is supported",
            signers.len()
        )));
    };
    if si.digest_alg.oid != ID_SHA256 {
        return Err(bad(format!(
            "digest {} not supported (SHA-256 only)",
            si.digest_alg.oid
        )));
    }
    if si.signature_algorithm.oid != RSA_ENCRYPTION && si.signature_algorithm.oid != SHA256_WITH_RSA
    {
        return Err(bad(format!(
            "signature algorithm {} not supported (RSA PKCS#1 v1.5)",
            si.signature_algorithm.oid
        )));
    }
    let SignerIdentifier::IssuerAndSerialNumber(isn) = &si.sid else {
        return Err(bad("signer identified by key id: not supported"));
    };
    let cert = sd
        .certificates
        .as_ref()
        .and_then(|set| {
            set.0.iter().find_map(|c| match c {
                CertificateChoices::Certificate(c)
                    if c.tbs_certificate.issuer == isn.issuer
                        && c.tbs_certificate.serial_number == isn.serial_number =>
                {
                    Some(c.clone())
                }
                _ => None,
            })
        })
        .ok_or_else(|| bad("the signer's certificate is not in the signature"))?;
    let digest = Sha256::digest(content);
    let signed = match &si.signed_attrs {
        Some(attrs) => {
            let find = |oid: ObjectIdentifier| {
                attrs
                    .iter()
                    .find(|a| a.oid == oid)
                    .and_then(|a| a.values.iter().next())
            };
            let md = find(ID_MESSAGE_DIGEST)
                .and_then(|v| v.decode_as::<OctetString>().ok())
                .ok_or_else(|| bad("no messageDigest attribute"))?;
            if md.as_bytes() != digest.as_slice() {
                return Err(bad(
                    "the file does not match the signature (messageDigest differs)",
                ));
            }
            let ct = find(ID_CONTENT_TYPE)
                .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| bad("no contentType attribute"))?;
            if ct != sd.encap_content_info.econtent_type {
                return Err(bad("contentType attribute differs from the content type"));
            }
            attrs
                .to_der()
                .map_err(|e| bad(format!("signed attributes: {e}")))?
        }
        None => content.to_vec(),
    };
    public_key(&cert)
        .map_err(|f| bad(f.message))?
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&signed),
            si.signature.as_bytes(),
        )
        .map_err(|_| bad("the signature is not valid"))?;
    let subject = cert.tbs_certificate.subject.to_string();
    if let Some(ca) = ca {
        if !anchors::issued_by(&cert, ca) {
            return Err(bad(
                "the signer's certificate is not issued by the given CA",
            ));
        }
        let now = std::time::SystemTime::now();
        let v = &cert.tbs_certificate.validity;
        if now < v.not_before.to_system_time() || now > v.not_after.to_system_time() {
            return Err(bad("the signer's certificate is not valid now"));
        }
        return Ok((subject, None));
    }
    // No --ca: the signer's certificate must be issued by a shipped J-LIS CA (anchors.rs).
    let jlis = anchors::issuer_of(&cert, anchors::Purpose::Signature);
    match jlis {
        Some(anchor) => Ok((
            subject,
            Some(format!(
                "J-LIS signature CA generation {}",
                anchor.generation
            )),
        )),
        None => Err(bad(
            "the signer's certificate does not chain to a J-LIS CA (a test card or a forged \
             one); to accept another CA, give it with --ca",
        )),
    }
}

pub fn verify(
    args: &Args,
    ca: Option<&Path>,
    content: &Path,
    signature: &Path,
) -> Result<(), Failure> {
    let data = read_file(content)?;
    let sig = common::read_der_or_pem(signature)?;
    let ca_cert = match ca {
        Some(p) => {
            let der = common::read_der_or_pem(p)?;
            Some(Certificate::from_der(&der).map_err(|e| {
                Failure::new(
                    Exit::Usage,
                    format!("{}: not a certificate: {e}", p.display()),
                )
            })?)
        }
        None => None,
    };
    let (signer, jlis_ca) = check(&sig, &data, ca_cert.as_ref())?;
    let report = VerifyReport {
        valid: true,
        signer,
        ca_checked: true,
        jlis_ca,
    };
    common::output(args, &report);
    Ok(())
}
