//! `jpki info`: what the 券面事項入力補助AP (card-info input support application) holds — My
//! Number, name, address, birth date, sex — read only on this explicit request, with its own
//! 4-digit PIN, printed once and never stored (the values are zeroed after printing).

use jpki_pkcs11::card::KenhojoPin;
use serde_json::json;

use super::args::Args;
use super::common::{self, card_failure, Failure, PinSource, Progress};

fn date(yyyymmdd: &str) -> String {
    if yyyymmdd.len() == 8 && yyyymmdd.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &yyyymmdd[..4], &yyyymmdd[4..6], &yyyymmdd[6..])
    } else {
        yyyymmdd.to_string()
    }
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
    let birth = zeroize::Zeroizing::new(date(&info.birth_date));
    if args.json {
        let v = zeroize::Zeroizing::new(
            serde_json::to_string_pretty(&json!({
                "my_number": info.my_number.as_str(),
                "name": info.name.as_str(),
                "address": info.address.as_str(),
                "birth_date": birth.as_str(),
                "sex": info.sex.label(),
                "sex_code": info.sex.code().to_string(),
            }))
            .unwrap_or_default(),
        );
        println!("{}", v.as_str());
    } else {
        println!("My Number (個人番号): {}", info.my_number.as_str());
        println!("Name (氏名):          {}", info.name.as_str());
        println!("Address (住所):       {}", info.address.as_str());
        println!("Birth date (生年月日): {}", birth.as_str());
        println!("Sex (性別):           {}", info.sex.label());
    }
    Ok(())
}
