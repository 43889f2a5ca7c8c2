//! How the real PC/SC stack (pcscd + vpcd) surfaces the extended-APDU modes, as the README
//! describes them. `#[ignore]`d: a plain `cargo test` lists it as ignored; the harness runs it
//! (JPKI_PCSC_TEST=1), on any profile (tests/run-all.sh does, on both):
//! `tests/harness/with-card.sh --profile extended -- cargo test -p jpki-virtual-card --test pcsc_extended -- --include-ignored`

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use jpki_virtual_card::apdu::unhex;

/// The card binary and its control socket, from the harness; outside it (with
/// `--include-ignored`) the test fails rather than pass without testing anything.
fn harness() -> (PathBuf, PathBuf) {
    assert!(
        std::env::var("JPKI_PCSC_TEST").as_deref() == Ok("1"),
        "needs pcscd: run through tests/harness/with-card.sh (it sets JPKI_PCSC_TEST=1)"
    );
    let var = |name: &str| {
        PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("{name} (set by the harness)")))
    };
    (var("JPKI_TEST_CARD_BIN"), var("JPKI_TEST_CONTROL"))
}

fn ctl(bin: &PathBuf, control: &PathBuf, cmd: &str) -> String {
    let out = Command::new(bin)
        .args(["ctl", "--control"])
        .arg(control)
        .args(cmd.split(' '))
        .output()
        .expect("ctl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn tx(card: &pcsc::Card, hex: &str) -> Result<Vec<u8>, pcsc::Error> {
    let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
    card.transmit(&unhex(hex).expect("hex"), &mut buf)
        .map(<[u8]>::to_vec)
}

#[test]
#[ignore = "needs pcscd: run through tests/harness/with-card.sh (tests/run-all.sh does)"]
fn extended_read_binary_through_pcscd() {
    let (bin, control) = harness();
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcscd");
    let mut names = vec![0u8; 2048];
    let reader = ctx
        .list_readers(&mut names)
        .expect("readers")
        .next()
        .expect("a reader")
        .to_owned();
    let card = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .expect("card");
    let profile = std::env::var("JPKI_TEST_PROFILE").unwrap_or_default();
    assert_eq!(
        tx(&card, "00A4040C0AD392F000260100000001").unwrap(),
        [0x90, 0]
    );
    // EF 000B: the auth CA certificate, public on every profile.
    assert_eq!(tx(&card, "00A4020C02000B").unwrap(), [0x90, 0]);
    let head = tx(&card, "00B0000004").unwrap();
    let der_len = usize::from(u16::from_be_bytes([head[2], head[3]])) + 4;

    // accept: the whole EF (DER + filler) in one response.
    assert!(ctl(&bin, &control, "extended-apdu accept").starts_with("ok"));
    let whole = tx(&card, "00B00000000000").unwrap();
    assert!(
        whole.len() > der_len + 2 && whole.ends_with(&[0x90, 0]),
        "{}",
        whole.len()
    );
    assert_eq!(whole[..4], head[..4]);

    // card: the profile decides.
    assert!(ctl(&bin, &control, "extended-apdu card").starts_with("ok"));
    let r = tx(&card, "00B00000000000").unwrap();
    if profile == "extended" {
        assert_eq!(r, whole);
    } else {
        assert_eq!(r, [0x67, 0]);
    }
    assert!(ctl(&bin, &control, "extended-apdu sw:6A86").starts_with("ok"));
    assert_eq!(tx(&card, "00B00000000000").unwrap(), [0x6A, 0x86]);

    // drop: an empty answer, then SCARD_E_NOT_TRANSACTED until vpcd takes the card's new
    // connection; then the card answers with its selection intact (no reset, no removal).
    assert!(ctl(&bin, &control, "extended-apdu drop").starts_with("ok"));
    assert_eq!(tx(&card, "00B00000000000"), Ok(vec![]));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut failures = 0;
    let after = loop {
        match tx(&card, "00B0000004") {
            Ok(r) => break r,
            Err(pcsc::Error::NotTransacted) if Instant::now() < deadline => {
                failures += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("after a drop: {e:?}"),
        }
    };
    assert_eq!(after, head, "EF 000B still selected");
    eprintln!("transmits failed with SCARD_E_NOT_TRANSACTED after the drop: {failures}");
    let stats = ctl(&bin, &control, "stats");
    assert!(stats.contains("\"reader_refused_apdus\":1"), "{stats}");
    assert!(stats.contains("\"extended_apdus\":4"), "{stats}");
    assert!(ctl(&bin, &control, "extended-apdu card").starts_with("ok"));
}
