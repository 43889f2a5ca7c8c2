//! `jpki certs export`: the public certificates (authentication, both CAs) as DER and PEM; the
//! signature certificate (name, address, birth date) only with `--sign` and the password,
//! written readable by the owner only. A smartphone token shows even its authentication
//! certificate only after the authentication PIN, which is then asked for.

use std::io::Write;
use std::path::{Path, PathBuf};

use jpki_pkcs11::card::{CardError, CertificateFile, JpkiCard, KeyKind, Pin};
use serde::Serialize;
use zeroize::Zeroizing;

use super::args::Args;
use super::common::{self, card_failure, Exit, Failure, PinSource, Progress, Report};

/// What `jpki certs export` reports.
#[derive(Serialize)]
struct ExportReport {
    files: Vec<String>,
    /// Whether the signature certificate (personal data) is among them.
    #[serde(skip)]
    signature_certificate: bool,
}

impl Report for ExportReport {
    fn human(&self) {
        for f in &self.files {
            println!("wrote {f}");
        }
        if self.signature_certificate {
            println!("(the signature certificate holds your name, address and birth date: keep it private)");
        }
    }
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Failure::new(Exit::Error, format!("writing {}: {e}", path.display())))
}

pub fn export(args: &Args, dir: &Path, sign: bool) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new(Exit::Error, format!("creating {}: {e}", dir.display())))?;
    let mut pins = PinSource::new(args)?;
    let password = if sign {
        let typed = pins.read("Signature password (署名用パスワード): ")?;
        Some(
            Pin::parse(KeyKind::Signature, typed.as_bytes()).map_err(|e| {
                common::pin_format_failure(e, "signature password", common::SIGN_RULE)
            })?,
        )
    } else {
        None
    };
    let (_, mut card) = common::open_card(args)?;
    let progress = Progress::start("reading certificates…");
    let mut files: Vec<(&str, CertificateFile)> = vec![
        ("auth_cert", CertificateFile::Authentication),
        ("auth_ca_cert", CertificateFile::AuthenticationCa),
        ("sign_ca_cert", CertificateFile::SignatureCa),
    ];
    if password.is_some() {
        files.push(("sign_cert", CertificateFile::Signature));
    }
    // Everything is read before anything is written: a wrong password (or a card pulled out)
    // leaves no half export behind, which a user would take for a finished one.
    let mut verified = false;
    let read = read_all(
        &mut card,
        &mut pins,
        files,
        password.as_ref(),
        &mut verified,
    );
    if verified {
        // Leave no verified PIN behind on the card, whatever happened.
        let _ = card.logout();
    }
    drop(progress);
    let read = read?;
    let mut written: Vec<PathBuf> = Vec::new();
    for (name, file, der) in &read {
        let private = *file == CertificateFile::Signature;
        let der_path = dir.join(format!("{name}.der"));
        let pem_path = dir.join(format!("{name}.pem"));
        write_file(&der_path, der, private)?;
        let pem = Zeroizing::new(common::pem(der)?);
        write_file(&pem_path, pem.as_bytes(), private)?;
        written.push(der_path);
        written.push(pem_path);
    }
    let report = ExportReport {
        files: written.iter().map(|p| p.display().to_string()).collect(),
        signature_certificate: sign,
    };
    common::output(args, &report);
    Ok(())
}

/// A certificate read from the card: its file name stem, which file, its DER.
type ReadCertificate<'a> = (&'a str, CertificateFile, Zeroizing<Vec<u8>>);

/// Reads `files` in order; `verified` tells whether a PIN was verified on the way (also when an
/// error came after it), so that the caller logs out.
fn read_all<'a>(
    card: &mut JpkiCard,
    pins: &mut PinSource,
    files: Vec<(&'a str, CertificateFile)>,
    password: Option<&Pin>,
    verified: &mut bool,
) -> Result<Vec<ReadCertificate<'a>>, Failure> {
    let mut read = Vec::new();
    for (name, file) in files {
        // The password just before the signature certificate, the last file: reading a file
        // the card refuses (the phone's authentication certificate) re-selects the
        // application, which would forget an earlier VERIFY.
        if let (CertificateFile::Signature, Some(pw)) = (file, password) {
            card.verify_pin(pw)
                .map_err(|e| card_failure(e, "signature password"))?;
            *verified = true;
        }
        let der = match card.read_certificate(file) {
            // A smartphone token shows its authentication certificate only after the
            // authentication PIN (docs/phone-token.md): ask for it, as the card asks for the
            // signature password.
            Err(CardError::SecurityStatusNotSatisfied)
                if file == CertificateFile::Authentication =>
            {
                let typed =
                    pins.read("Authentication PIN (利用者証明用暗証番号, smartphone token): ")?;
                let pin = Pin::parse(KeyKind::Authentication, typed.as_bytes()).map_err(|e| {
                    common::pin_format_failure(e, "authentication PIN", common::AUTH_RULE)
                })?;
                card.verify_pin(&pin)
                    .map_err(|e| card_failure(e, "authentication PIN"))?;
                *verified = true;
                card.read_certificate(file)
            }
            other => other,
        }
        .map_err(|e| card_failure(e, "card"))?;
        read.push((name, file, Zeroizing::new(der)));
    }
    Ok(read)
}
