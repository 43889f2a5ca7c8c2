//! `jpki`: the My Number Card for people — status, doctor, certificates, CMS signatures, PIN
//! change, card-info, the module's certificate cache and usage history. Uses the card and
//! transport layers of `jpki_pkcs11` directly (not the PKCS#11 API), so it is a separate crate:
//! the module's dependency tree stays free of the command's crates. See `jpki --help` and README.
//!
//! Layout: `args` (command line), `common` (card discovery, PIN input, progress, output, exit
//! codes), one file per subcommand.

mod anchors;
mod args;
mod cache;
mod certs;
mod cms;
mod common;
mod doctor;
mod history;
mod info;
mod pin;
mod status;
mod tty;

use args::{Args, Command};
use clap::CommandFactory;
use common::{Exit, Failure};

/// Runs the command line; returns the process exit code.
fn run(argv: Vec<std::ffi::OsString>) -> i32 {
    let args = match args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            // Help and version go to stdout (exit 0), usage errors to stderr (exit 2).
            let _ = e.print();
            return e.exit_code();
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
            let _ = args::Cli::command().print_help();
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
        Command::Cache { clear } => cache::run(&args, clear),
        Command::Info => info::run(&args),
        Command::History { since, key } => history::run(&args, since.as_deref(), key),
    }
}

fn main() {
    let code = run(std::env::args_os().collect());
    std::process::exit(code);
}
