//! The four certificates: structure, issuer signatures, SAN personal data, key match.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use jpki_virtual_card::certs::{POLICY_AUTH, POLICY_SIGN, SAN_OIDS};
use jpki_virtual_card::test_state;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, CertificatePolicies, KeyUsage, KeyUsages, SubjectAltName,
};
use x509_cert::Certificate;

fn parse(der: &[u8]) -> Certificate {
    let cert = Certificate::from_der(der).expect("certificate parses");
    assert_eq!(cert.to_der().unwrap(), der, "strict DER round trip");
    cert
}

fn public_key(cert: &Certificate) -> RsaPublicKey {
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    RsaPublicKey::from_public_key_der(&spki).unwrap()
}

fn verify_issued_by(cert: &Certificate, issuer: &Certificate) {
    assert_eq!(cert.tbs_certificate.issuer, issuer.tbs_certificate.subject);
    let tbs = cert.tbs_certificate.to_der().unwrap();
    public_key(issuer)
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&tbs),
            cert.signature.raw_bytes(),
        )
        .expect("issuer signature verifies");
}

fn ext<'a, T: Decode<'a> + der::oid::AssociatedOid>(cert: &'a Certificate) -> (bool, T) {
    cert.tbs_certificate
        .get::<T>()
        .expect("extension decodes")
        .expect("extension present")
}

#[test]
fn ca_certificates_are_self_signed_jpki_cas() {
    let s = test_state();
    for (der, ou) in [
        (s.auth_ca_certificate(), "JPKI for user authentication"),
        (s.sign_ca_certificate(), "JPKI for digital signature"),
    ] {
        let ca = parse(der);
        verify_issued_by(&ca, &ca);
        assert_eq!(
            ca.tbs_certificate.subject.to_string(),
            format!("OU=Japan Agency for Local Authority Information Systems,OU={ou},O=JPKI,C=JP")
        );
        let (crit, bc) = ext::<BasicConstraints>(&ca);
        assert!(crit && bc.ca);
        let (crit, ku) = ext::<KeyUsage>(&ca);
        assert!(crit);
        assert_eq!(ku.0, KeyUsages::KeyCertSign | KeyUsages::CRLSign);
        assert_eq!(rsa::traits::PublicKeyParts::size(&public_key(&ca)), 256);
        assert!((900..1500).contains(&der.len()), "{}", der.len());
    }
}

#[test]
fn end_entity_certificates_match_card_keys() {
    let s = test_state();
    let auth = parse(s.auth_certificate());
    let sign = parse(s.sign_certificate());
    verify_issued_by(&auth, &parse(s.auth_ca_certificate()));
    verify_issued_by(&sign, &parse(s.sign_ca_certificate()));
    assert_eq!(public_key(&auth), s.auth_key.to_public_key());
    assert_eq!(public_key(&sign), s.sign_key.to_public_key());
    assert_eq!(
        auth.tbs_certificate.subject.to_string(),
        format!("CN={},C=JP", s.auth_cn)
    );
    assert_eq!(
        sign.tbs_certificate.subject.to_string(),
        format!("CN={},L=Kiyose-shi,C=JP", s.sign_cn)
    );
    assert!(ext::<KeyUsage>(&auth).1 .0 == KeyUsages::DigitalSignature);
    assert_eq!(
        ext::<KeyUsage>(&sign).1 .0,
        KeyUsages::DigitalSignature | KeyUsages::NonRepudiation
    );
    assert_eq!(
        ext::<CertificatePolicies>(&auth).1 .0[0].policy_identifier,
        POLICY_AUTH
    );
    assert_eq!(
        ext::<CertificatePolicies>(&sign).1 .0[0].policy_identifier,
        POLICY_SIGN
    );
    assert!(auth
        .tbs_certificate
        .get::<SubjectAltName>()
        .unwrap()
        .is_none());
    assert!((1000..2100).contains(&s.auth_certificate().len()));
    assert!((1200..2100).contains(&s.sign_certificate().len()));
}

#[test]
fn sign_certificate_san_has_six_personal_data_other_names() {
    let s = test_state();
    let sign = parse(s.sign_certificate());
    let (_, san) = ext::<SubjectAltName>(&sign);
    let mut found: Vec<(ObjectIdentifier, String)> = Vec::new();
    for name in san.0 {
        let GeneralName::OtherName(on) = name else {
            panic!("only otherName entries expected");
        };
        assert_eq!(der::Tagged::tag(&on.value), der::Tag::Utf8String);
        found.push((
            on.type_id,
            String::from_utf8(on.value.value().to_vec()).unwrap(),
        ));
    }
    let oids: Vec<_> = found.iter().map(|(o, _)| *o).collect();
    assert_eq!(oids, SAN_OIDS.to_vec());
    let p = &s.personal;
    assert_eq!(found[0].1, p.name);
    assert_eq!(found[2].1, p.sex);
    assert_eq!(found[3].1.len(), 9, "EYYYYMMDD");
    assert_eq!(found[4].1, p.address);
}

/// Needs the `openssl` command (tests/deps/apt-packages.txt): without it the test fails and
/// says so, rather than pass without having checked anything.
#[test]
fn openssl_accepts_the_certificates() {
    let out = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .expect("the openssl command (apt-get install openssl; tests/deps/install.sh does)");
    assert!(out.status.success());
    let s = test_state();
    let dir = std::env::temp_dir().join(format!("jpki-vc-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        ("auth_ca.der", s.auth_ca_certificate()),
        ("sign_ca.der", s.sign_ca_certificate()),
        ("auth.der", s.auth_certificate()),
        ("sign.der", s.sign_certificate()),
    ];
    for (name, der) in files {
        let der_path = dir.join(name);
        std::fs::write(&der_path, der).unwrap();
        let pem_path = der_path.with_extension("pem");
        let st = std::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&der_path)
            .arg("-out")
            .arg(&pem_path)
            .status()
            .unwrap();
        assert!(st.success(), "openssl x509 parses {name}");
    }
    for (ca, ee) in [("auth_ca.pem", "auth.pem"), ("sign_ca.pem", "sign.pem")] {
        let out = std::process::Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(dir.join(ca))
            .arg(dir.join(ee))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl verify {ee}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
