//! The `jpki` command: the card for people, over the same card and transport layers as the
//! PKCS#11 module (not through the PKCS#11 API).
//!
//! Layout: `args` (command line), `common` (card discovery, PIN input, progress, output, exit
//! codes), one file per subcommand.

pub mod args;
pub mod certs;
pub mod cms;
pub mod common;
pub mod doctor;
pub mod history;
pub mod info;
pub mod pin;
pub mod status;

use args::{Args, Command};
use common::{Exit, Failure};

pub const USAGE: &str = "\
usage: jpki [--json] [--reader NAME] [--pin-fd N] COMMAND [OPTIONS]

Commands:
  status                     readers, card, applications, tries left on every PIN (no try
                             is spent), authentication certificate, RSA-PSS support
  doctor [--module PATH]     find the usual problems (pcscd, reader, card, module
                             registration with p11-kit, NSS, Firefox) and say how to fix them
  certs export [--dir DIR] [--sign]
                             write the public certificates (PEM and DER); --sign also the
                             signature certificate (asks for the signature password)
  sign [--key sign|auth] [--out FILE] FILE
                             CMS detached signature (DER) of FILE, default FILE.p7s
  verify [--ca FILE] FILE SIGNATURE
                             check a CMS detached signature made by `jpki sign`;
                             without --ca the signer must chain to a pinned J-LIS CA
  pin change --auth|--sign|--kenhojo
                             change a PIN (asks for the current and the new one)
  info                       print what the card-info input support application holds
                             (My Number, name, address, birth date, sex); asks for its
                             4-digit PIN; nothing is stored
  history [--since WHEN] [--key auth|sign]
                             what programs did with the card through the PKCS#11 module
                             on this machine (program first); WHEN: 2026-01-31,
                             2026-01-31T09:00, or back from now: 30m, 12h, 7d, 2w

Options:
  --json        machine-readable output on stdout
  --reader NAME use the card in this reader (default: the first My Number Card found)
  --pin-fd N    read PINs from file descriptor N, one per line, instead of the terminal

Exit codes: 0 ok, 1 error, 2 usage, 3 no pcscd/reader/card, 4 not a My Number Card,
5 wrong PIN, 6 PIN blocked, 7 signature invalid, 8 doctor found problems.";

/// Runs the command line; returns the process exit code.
pub fn run(argv: Vec<String>) -> i32 {
    let args = match args::parse(argv) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("jpki: {msg}\n\n{USAGE}");
            return Exit::Usage as i32;
        }
    };
    let json = args.json;
    match dispatch(args) {
        Ok(()) => Exit::Ok as i32,
        Err(f) => {
            common::report_failure(&f, json);
            f.exit as i32
        }
    }
}

fn dispatch(args: Args) -> Result<(), Failure> {
    match args.command.clone() {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Status => status::run(&args),
        Command::Doctor { module } => doctor::run(&args, module.as_deref()),
        Command::CertsExport { dir, sign } => certs::export(&args, &dir, sign),
        Command::Sign { key, input, output } => cms::sign(&args, key, &input, output.as_deref()),
        Command::Verify {
            ca,
            content,
            signature,
        } => cms::verify(&args, ca.as_deref(), &content, &signature),
        Command::PinChange { which } => pin::change(&args, which),
        Command::Info => info::run(&args),
        Command::History { since, key } => history::run(&args, since.as_deref(), key),
    }
}
