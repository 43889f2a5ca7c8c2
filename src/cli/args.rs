//! Command-line parsing (no dependency: a handful of options).

use std::path::PathBuf;

use jpki_pkcs11::card::KeyKind;

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
    pub pin_fd: Option<i32>,
    pub command: Command,
}

fn value(it: &mut impl Iterator<Item = String>, opt: &str) -> Result<String, String> {
    it.next().ok_or_else(|| format!("{opt} needs a value"))
}

/// Parses `argv` (without the program name). Global options may come anywhere.
pub fn parse(argv: Vec<String>) -> Result<Args, String> {
    let mut json = false;
    let mut reader = None;
    let mut pin_fd = None;
    let mut words: Vec<String> = Vec::new();
    let mut it = argv.into_iter();
    let mut opts: Vec<(String, Option<String>)> = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--reader" => reader = Some(value(&mut it, "--reader")?),
            "--pin-fd" => {
                let v = value(&mut it, "--pin-fd")?;
                pin_fd = Some(
                    v.parse::<i32>()
                        .map_err(|_| format!("bad --pin-fd {v:?}"))?,
                );
            }
            "-h" | "--help" => words.insert(0, "help".into()),
            "--dir" | "--key" | "--out" | "--ca" | "--module" | "--since" => {
                let v = value(&mut it, &a)?;
                opts.push((a, Some(v)));
            }
            "--sign" | "--auth" | "--kenhojo" => opts.push((a, None)),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => words.push(a),
        }
    }
    let opt = |name: &str| {
        opts.iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    let flag = |name: &str| opts.iter().any(|(n, _)| n == name);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let allowed = |names: &[&str]| -> Result<(), String> {
        match opts.iter().find(|(n, _)| !names.contains(&n.as_str())) {
            Some((n, _)) => Err(format!("option {n} does not apply to this command")),
            None => Ok(()),
        }
    };
    let command = match words.as_slice() {
        [] | ["help"] | ["help", ..] => Command::Help,
        ["status"] => {
            allowed(&[])?;
            Command::Status
        }
        ["doctor"] => {
            allowed(&["--module"])?;
            Command::Doctor {
                module: opt("--module").map(PathBuf::from),
            }
        }
        ["certs", "export"] => {
            allowed(&["--dir", "--sign"])?;
            Command::CertsExport {
                dir: PathBuf::from(opt("--dir").unwrap_or_else(|| ".".into())),
                sign: flag("--sign"),
            }
        }
        ["sign", file] => {
            allowed(&["--key", "--out"])?;
            let key = match opt("--key").as_deref() {
                None | Some("sign") | Some("signature") => KeyKind::Signature,
                Some("auth") | Some("authentication") => KeyKind::Authentication,
                Some(other) => return Err(format!("--key must be sign or auth, not {other:?}")),
            };
            Command::Sign {
                key,
                input: PathBuf::from(file),
                output: opt("--out").map(PathBuf::from),
            }
        }
        ["verify", content, signature] => {
            allowed(&["--ca"])?;
            Command::Verify {
                ca: opt("--ca").map(PathBuf::from),
                content: PathBuf::from(content),
                signature: PathBuf::from(signature),
            }
        }
        ["pin", "change"] => {
            allowed(&["--auth", "--sign", "--kenhojo"])?;
            let chosen: Vec<PinWhich> = [
                ("--auth", PinWhich::Auth),
                ("--sign", PinWhich::Sign),
                ("--kenhojo", PinWhich::Kenhojo),
            ]
            .iter()
            .filter(|(n, _)| flag(n))
            .map(|(_, w)| *w)
            .collect();
            match chosen.as_slice() {
                [w] => Command::PinChange { which: *w },
                _ => return Err("pin change needs exactly one of --auth, --sign, --kenhojo".into()),
            }
        }
        ["info"] => {
            allowed(&[])?;
            Command::Info
        }
        ["history"] => {
            allowed(&["--since", "--key"])?;
            let key = match opt("--key").as_deref() {
                None => None,
                Some("sign") | Some("signature") => Some(KeyKind::Signature),
                Some("auth") | Some("authentication") => Some(KeyKind::Authentication),
                Some(other) => return Err(format!("--key must be sign or auth, not {other:?}")),
            };
            Command::History {
                since: opt("--since"),
                key,
            }
        }
        other => return Err(format!("unknown command {:?}", other.join(" "))),
    };
    Ok(Args {
        json,
        reader,
        pin_fd,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(String::from).collect())
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
        assert!(p("pin change").is_err());
        assert!(p("pin change --auth --sign").is_err());
        assert!(p("status --dir x").is_err());
        assert!(p("sign --key foo f").is_err());
        assert!(p("frobnicate").is_err());
        assert!(p("--pin-fd x info").is_err());
        match p("sign --key auth --out o.p7s doc.txt").unwrap().command {
            Command::Sign { key, .. } => assert_eq!(key, KeyKind::Authentication),
            c => panic!("{c:?}"),
        }
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
    }
}
