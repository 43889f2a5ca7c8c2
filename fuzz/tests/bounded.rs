//! The fuzz bodies on stable Rust, bounded: every committed corpus input, then inputs mutated
//! from the corpus (and some fully random) for `FUZZ_SECONDS` per target (default 2).
//! Deterministic for a given `FUZZ_SEED`. No coverage feedback: `cargo fuzz` (libFuzzer) is
//! the real fuzzer; this keeps the bodies and the corpus honest in CI.
//!
//! Run: cd fuzz && cargo test --no-default-features --release -- --test-threads=1 --nocapture

use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
}

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(out.len() + 1);
                let n = 1 + rng.below(16);
                let bytes = rng.bytes(n);
                out.splice(i..i, bytes);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                let n = 1 + rng.below(16.min(out.len() - i));
                out.drain(i..i + n);
            }
            4 if !other.is_empty() => {
                let i = rng.below(out.len() + 1);
                let j = rng.below(other.len());
                let n = 1 + rng.below(other.len() - j);
                out.splice(i..i, other[j..j + n].iter().copied());
            }
            _ => {
                let i = rng.below(out.len() + 1);
                out.truncate(i);
            }
        }
    }
    out
}

fn drive(target: &str, run: fn(&[u8])) {
    let seconds: f64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6A70_6B69);
    let seeds = corpus(target);
    for input in &seeds {
        run(input);
    }
    let mut rng = Rng(seed ^ target.len() as u64 ^ 0x9E37_79B9_7F4A_7C15);
    let start = Instant::now();
    let mut executions = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        let input = if seeds.is_empty() || rng.below(8) == 0 {
            let n = rng.below(512);
            rng.bytes(n)
        } else {
            let a = &seeds[rng.below(seeds.len())];
            let b = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, a, b)
        };
        run(&input);
        executions += 1;
    }
    println!(
        "{target}: {} corpus inputs, {executions} mutated/random inputs in {:.1} s",
        seeds.len(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn card_responses() {
    drive("card_responses", jpki_pkcs11_fuzz::card_responses::run);
}

#[test]
fn cert_der() {
    drive("cert_der", jpki_pkcs11_fuzz::cert_der::run);
}

#[test]
fn attribute_template() {
    drive(
        "attribute_template",
        jpki_pkcs11_fuzz::attribute_template::run,
    );
}

#[test]
fn session_objects() {
    drive("session_objects", jpki_pkcs11_fuzz::session_objects::run);
}

#[test]
fn cardlink() {
    drive("cardlink", jpki_pkcs11_fuzz::cardlink::run);
}

#[test]
fn stateful() {
    drive("stateful", jpki_pkcs11_fuzz::stateful::run);
}

/// Writes the seed corpus (run once; the files are committed):
/// `cargo test --no-default-features --release -- --ignored make_corpus`.
#[test]
#[ignore]
fn make_corpus() {
    use std::sync::{Arc, Mutex};

    use jpki_pkcs11::card::{CertificateFile, JpkiCard, KenhojoPin, KeyKind, Pin};
    use jpki_pkcs11::transport::in_process::InProcessTransport;
    use jpki_virtual_card::{test_state, Profile, VirtualCard};

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    let state = test_state();
    state
        .save(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("card-state.json"))
        .unwrap();

    // cert_der: the virtual card's certificates, whole and cut.
    for (name, der) in [
        ("auth", state.auth_certificate()),
        ("auth_ca", state.auth_ca_certificate()),
        ("sign", state.sign_certificate()),
        ("sign_ca", state.sign_ca_certificate()),
    ] {
        write("cert_der", name, der);
    }
    write("cert_der", "auth_cut", &state.auth_certificate()[..300]);

    // card_responses: what the virtual card really answers to each operation, recorded.
    let chunk = |out: &mut Vec<u8>, answer: &[u8]| {
        if answer.len() < 0xFF {
            out.push(answer.len() as u8);
        } else {
            out.push(0xFF);
            out.extend_from_slice(&(answer.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(answer);
    };
    for (op, name, profile) in [
        (0u8, "is_jpki", Profile::Conservative),
        (1, "token_label", Profile::Conservative),
        (2, "read_auth_cert", Profile::Conservative),
        (3, "read_auth_ca", Profile::Conservative),
        (0x84, "read_sign_cert_unverified", Profile::Conservative),
        (6, "tries_auth", Profile::Conservative),
        (7, "verify_auth", Profile::Conservative),
        (0x87, "verify_sign", Profile::Conservative),
        (8, "sign_unverified", Profile::Conservative),
        (10, "pss_unverified", Profile::Extended),
        (11, "pss_probe", Profile::Extended),
        (12, "change_pin", Profile::Conservative),
        (13, "logout", Profile::Conservative),
        (14, "applications", Profile::Conservative),
        (15, "card_face", Profile::Conservative),
    ] {
        let vc = Arc::new(Mutex::new(VirtualCard::new(test_state(), profile)));
        let answers = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let (v, a) = (vc.clone(), answers.clone());
        let transport = InProcessTransport::new(jpki_pkcs11_fuzz::ATR.to_vec(), move |apdu| {
            let r = v.lock().unwrap().process_apdu(apdu);
            a.lock().unwrap().push(r.clone());
            r
        });
        let mut card = JpkiCard::new(Box::new(transport));
        let key = if op & 0x80 == 0 {
            KeyKind::Authentication
        } else {
            KeyKind::Signature
        };
        match op % 16 {
            0 => drop(card.is_jpki()),
            1 => drop(card.token_label()),
            2..=5 => drop(card.read_certificate(CertificateFile::ALL[usize::from(op % 16 - 2)])),
            6 => drop(card.pin_tries_left(key)),
            7 => {
                let pin = if key == KeyKind::Authentication {
                    &b"1234"[..]
                } else {
                    b"ABC123"
                };
                drop(card.verify_pin(&Pin::parse(key, pin).unwrap()));
            }
            8 => drop(card.sign(key, &[0x5A; 9])),
            10 => drop(card.sign_pss_sha256(key, &[0xA5; 32])),
            11 => drop(card.pss_support()),
            12 => drop(card.change_pin(
                &Pin::parse(key, b"1234").unwrap(),
                &Pin::parse(key, b"4321").unwrap(),
            )),
            13 => drop(card.logout()),
            14 => drop(card.applications()),
            _ => drop(card.read_card_face_info(&KenhojoPin::parse(b"5678").unwrap())),
        }
        drop(card);
        let mut input = vec![0u8, op];
        chunk(&mut input, &[0x90, 0x00]); // the exchange probe that runs first
        for answer in answers.lock().unwrap().iter() {
            chunk(&mut input, answer);
        }
        write("card_responses", name, &input);
    }

    // attribute_template: search by class, read usual attributes with room and without.
    let classes: [u8; 4] = [0, 1, 2, 3];
    for (i, class) in classes.iter().enumerate() {
        let login = (i % 2) as u8;
        let mut input = vec![login | ((i as u8 / 2) << 1)];
        input.extend_from_slice(&[1, 0, *class]); // search: CKA_CLASS = class
        input.extend_from_slice(&[0x10]); // read a found object
        input.extend_from_slice(&[6, 4, 0xFF, 4, 200, 14, 1, 9, 1, 17, 8, 3, 4]);
        write("attribute_template", &format!("class_{i}"), &input);
    }

    // stateful: random op sequences (any bytes decode to some sequence).
    let mut rng = Rng(7);
    for i in 0..8 {
        let n = 64 + rng.below(192);
        write("stateful", &format!("random_{i}"), &rng.bytes(n));
    }
}
