//! The command line (clap derive), turned into the [`Args`] the subcommands work with.

use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use jpki_pkcs11::card::KeyKind;

/// Printed after `jpki --help`: the exit codes are part of the interface (README).
const EXIT_CODES: &str = "\
Exit codes: 0 ok, 1 error, 2 usage, 3 no pcscd/reader/card, 4 not a My Number Card,
5 wrong PIN, 6 PIN blocked, 7 signature invalid, 8 doctor found problems.";

/// The My Number Card (マイナンバーカード) for people: status, problems and their fixes,
/// certificates, CMS signatures, PIN changes, the card-info application.
#[derive(Debug, Parser)]
#[command(name = "jpki", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Use the card in this reader (default: the first My Number Card found).
    #[arg(long, global = true, value_name = "NAME")]
    reader: Option<String>,
    /// Read PINs from file descriptor N, one per line, instead of the terminal.
    #[arg(long, global = true, value_name = "N")]
    pin_fd: Option<u32>,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Readers, card, applications, tries left on every PIN (no try is spent),
    /// authentication certificate, RSA-PSS support.
    Status,
    /// Find the usual problems (pcscd, reader, card, module registration with p11-kit, NSS,
    /// Firefox) and say how to fix them.
    Doctor {
        /// The module to look for in registrations.
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
    },
    /// Certificates.
    Certs {
        #[command(subcommand)]
        command: CertsSub,
    },
    /// CMS detached signature (DER) of FILE, default FILE.p7s.
    Sign {
        /// The key: the signature key (default) or the authentication key.
        #[arg(long, value_enum, default_value = "sign")]
        key: KeyArg,
        /// Where to write the signature.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        file: PathBuf,
    },
    /// Check a CMS detached signature made by `jpki sign`.
    Verify {
        /// The CA certificate (PEM or DER) the signer's certificate must chain to.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        file: PathBuf,
        signature: PathBuf,
    },
    /// PINs.
    Pin {
        #[command(subcommand)]
        command: PinSub,
    },
    /// The module's cache of the card's public certificates: where it is and what it holds
    /// (never the signature certificate).
    Cache {
        /// Remove the cache's files; the next program reads the certificates from the card.
        #[arg(long)]
        clear: bool,
    },
    /// Print what the card-info input support application holds (My Number, name, address,
    /// birth date, sex); asks for its 4-digit PIN; nothing is stored.
    Info,
    /// What programs did with the card through the PKCS#11 module on this machine (program
    /// first). Reads the history files only.
    History {
        /// From this UTC date or time (2026-01-31, 2026-01-31T09:00), or this far back: 30m,
        /// 12h, 7d, 2w.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only this key.
        #[arg(long, value_enum)]
        key: Option<KeyArg>,
    },
}

#[derive(Debug, Subcommand)]
enum CertsSub {
    /// Write the public certificates (PEM and DER); --sign also the signature certificate
    /// (asks for the signature password).
    Export {
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Also the signature certificate (personal data; written readable by the owner only).
        #[arg(long)]
        sign: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PinSub {
    /// Change a PIN (asks for the current and the new one).
    #[command(group(ArgGroup::new("which").required(true).args(["auth", "sign", "kenhojo"])))]
    Change {
        /// The authentication PIN (4 digits).
        #[arg(long)]
        auth: bool,
        /// The signature password (6-16 letters A-Z and digits).
        #[arg(long)]
        sign: bool,
        /// The card-info (券面事項入力補助) PIN (4 digits).
        #[arg(long)]
        kenhojo: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyArg {
    #[value(alias = "signature")]
    Sign,
    #[value(alias = "authentication")]
    Auth,
}

impl From<KeyArg> for KeyKind {
    fn from(k: KeyArg) -> KeyKind {
        match k {
            KeyArg::Sign => KeyKind::Signature,
            KeyArg::Auth => KeyKind::Authentication,
        }
    }
}

/// Which PIN `pin change` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinWhich {
    Auth,
    Sign,
    Kenhojo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Status,
    Doctor {
        module: Option<PathBuf>,
    },
    CertsExport {
        dir: PathBuf,
        sign: bool,
    },
    Sign {
        key: KeyKind,
        input: PathBuf,
        output: Option<PathBuf>,
    },
    Verify {
        ca: Option<PathBuf>,
        content: PathBuf,
        signature: PathBuf,
    },
    PinChange {
        which: PinWhich,
    },
    Cache {
        clear: bool,
    },
    Info,
    History {
        since: Option<String>,
        key: Option<KeyKind>,
    },
}

#[derive(Debug, Clone)]
pub struct Args {
    pub json: bool,
    pub reader: Option<String>,
    pub pin_fd: Option<u32>,
    pub command: Command,
}

impl From<Cli> for Args {
    fn from(cli: Cli) -> Args {
        let command = match cli.command {
            None => Command::Help,
            Some(Sub::Status) => Command::Status,
            Some(Sub::Doctor { module }) => Command::Doctor { module },
            Some(Sub::Certs {
                command: CertsSub::Export { dir, sign },
            }) => Command::CertsExport { dir, sign },
            Some(Sub::Sign { key, out, file }) => Command::Sign {
                key: key.into(),
                input: file,
                output: out,
            },
            Some(Sub::Verify {
                ca,
                file,
                signature,
            }) => Command::Verify {
                ca,
                content: file,
                signature,
            },
            Some(Sub::Pin {
                command: PinSub::Change { auth, sign, .. },
            }) => Command::PinChange {
                // The group makes exactly one of the three true.
                which: if auth {
                    PinWhich::Auth
                } else if sign {
                    PinWhich::Sign
                } else {
                    PinWhich::Kenhojo
                },
            },
            Some(Sub::Cache { clear }) => Command::Cache { clear },
            Some(Sub::Info) => Command::Info,
            Some(Sub::History { since, key }) => Command::History {
                since,
                key: key.map(KeyKind::from),
            },
        };
        Args {
            json: cli.json,
            reader: cli.reader,
            pin_fd: cli.pin_fd,
            command,
        }
    }
}

/// Parses `argv` (with the program name). `Err` is clap's own: help, version, or a usage error,
/// which prints itself and knows its exit code (0 for help, 2 for a usage error).
pub fn parse<I, T>(argv: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(argv).map(Args::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn p(s: &str) -> Result<Args, clap::Error> {
        parse(std::iter::once("jpki").chain(s.split_whitespace()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses() {
        assert_eq!(p("status --json").unwrap().command, Command::Status);
        assert!(p("status --json").unwrap().json);
        assert_eq!(p("--pin-fd 3 info").unwrap().pin_fd, Some(3));
        assert_eq!(
            p("pin change --sign").unwrap().command,
            Command::PinChange {
                which: PinWhich::Sign
            }
        );
        assert_eq!(p("cache").unwrap().command, Command::Cache { clear: false });
        assert_eq!(
            p("cache --clear").unwrap().command,
            Command::Cache { clear: true }
        );
        assert!(p("pin change").is_err());
        assert!(p("pin change --auth --sign").is_err());
        assert!(p("status --dir x").is_err());
        assert!(p("sign --key foo f").is_err());
        assert!(p("frobnicate").is_err());
        assert!(p("--pin-fd x info").is_err());
        assert!(p("--pin-fd -1 info").is_err());
        match p("sign --key auth --out o.p7s doc.txt").unwrap().command {
            Command::Sign { key, .. } => assert_eq!(key, KeyKind::Authentication),
            c => panic!("{c:?}"),
        }
        match p("sign --key signature doc.txt").unwrap().command {
            Command::Sign { key, output, .. } => {
                assert_eq!(key, KeyKind::Signature);
                assert_eq!(output, None);
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            p("certs export").unwrap().command,
            Command::CertsExport {
                dir: PathBuf::from("."),
                sign: false
            }
        );
        assert_eq!(p("").unwrap().command, Command::Help);
        assert_eq!(
            p("history --since 7d --key auth").unwrap().command,
            Command::History {
                since: Some("7d".into()),
                key: Some(KeyKind::Authentication)
            }
        );
        assert!(p("history --key x").is_err());
        assert!(p("history --dir x").is_err());
        assert_eq!(p("--help").unwrap_err().exit_code(), 0);
        assert_eq!(p("frobnicate").unwrap_err().exit_code(), 2);
    }
}
