//! `jpki`: the My Number Card for people — status, doctor, certificates, CMS signatures, PIN
//! change, card-info. Uses the card and transport layers of `jpki_pkcs11` directly (not the
//! PKCS#11 API). See `jpki --help` and README.

#[path = "../cli/mod.rs"]
mod cli;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = cli::run(argv);
    std::process::exit(code);
}
