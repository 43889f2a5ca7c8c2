//! `jpki info`: what the 券面事項入力補助AP (card-info input support application) holds — My
//! Number, name, address, birth date, sex — read only on this explicit request, with its own
//! 4-digit PIN, printed once and never stored (the values are zeroed after printing).

use jpki_pkcs11::card::KenhojoPin;
use serde::Serialize;
use zeroize::Zeroizing;

use super::args::Args;
use super::common::{self, card_failure, Failure, PinSource, Progress, Report};

/// What `jpki info` prints. It borrows the card's answer (zeroized when dropped), so that no
/// copy of the personal data outlives the printing; the JSON text is zeroized too.
#[derive(Serialize)]
struct InfoReport<'a> {
    my_number: &'a str,
    name: &'a str,
    address: &'a str,
    birth_date: &'a str,
    sex: &'static str,
    sex_code: &'a str,
}

impl Report for InfoReport<'_> {
    fn human(&self) {
        println!("My Number (個人番号): {}", self.my_number);
        println!("Name (氏名):          {}", self.name);
        println!("Address (住所):       {}", self.address);
        println!("Birth date (生年月日): {}", self.birth_date);
        println!("Sex (性別):           {}", self.sex);
    }
}

/// `YYYYMMDD` as `YYYY-MM-DD` (anything else as it is).
fn date(yyyymmdd: &str) -> Zeroizing<String> {
    Zeroizing::new(
        if yyyymmdd.len() == 8 && yyyymmdd.bytes().all(|b| b.is_ascii_digit()) {
            format!("{}-{}-{}", &yyyymmdd[..4], &yyyymmdd[4..6], &yyyymmdd[6..])
        } else {
            yyyymmdd.to_string()
        },
    )
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let mut pins = PinSource::new(args)?;
    let typed = pins.read("Card-info PIN (券面事項入力補助用暗証番号, 4 digits): ")?;
    let pin = KenhojoPin::parse(typed.as_bytes())
        .map_err(|e| common::pin_format_failure(e, "card-info PIN", common::KENHOJO_RULE))?;
    drop(typed);
    let (_, mut card) = common::open_card(args)?;
    let progress = Progress::start("reading the card-info application…");
    let info = card
        .read_card_face_info(&pin)
        .map_err(|e| card_failure(e, "card-info PIN"))?;
    drop(progress);
    let birth = date(&info.birth_date);
    let sex_code = Zeroizing::new(info.sex.code().to_string());
    let report = InfoReport {
        my_number: &info.my_number,
        name: &info.name,
        address: &info.address,
        birth_date: &birth,
        sex: info.sex.label(),
        sex_code: &sex_code,
    };
    if args.json {
        let text = Zeroizing::new(serde_json::to_string_pretty(&report).unwrap_or_default());
        println!("{}", text.as_str());
    } else {
        report.human();
    }
    Ok(())
}
