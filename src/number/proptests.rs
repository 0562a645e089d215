//! Property tests of phone-number normalisation: any input is refused as documented or gives
//! E.164; valid numbers written the ways people write them (spaces, dashes, dots, parentheses,
//! `+` or an international prefix, full-width digits, words around them) give their E.164 back.

use super::normalize;
use crate::error::Error;
use crate::proptest_support::{assert_documented, config, mutated_text};
use phonenumber::country::Id as Region;
use proptest::prelude::*;

/// Numbers libphonenumber calls valid: (calling code, national significant number, its region).
const VALID: &[(&str, &str, Region)] = &[
    ("41", "446681800", Region::CH),
    ("41", "791234567", Region::CH),
    ("41", "800123456", Region::CH),
    ("49", "301234567", Region::DE),
    ("49", "1711234567", Region::DE),
    ("44", "2070313000", Region::GB),
    ("44", "7400123456", Region::GB),
    ("1", "6502530000", Region::US),
    ("64", "33316005", Region::NZ),
    ("39", "0236618300", Region::IT),
    ("33", "123456789", Region::FR),
];

/// Default regions and the international prefix dialled from them.
const FROM: &[(Region, &str)] = &[
    (Region::CH, "00"),
    (Region::DE, "00"),
    (Region::GB, "00"),
    (Region::FR, "00"),
    (Region::US, "011"),
];

fn length_or_invalid(e: &Error) -> bool {
    matches!(e, Error::PhoneLength | Error::PhoneInvalid)
}

/// What every accepted number must look like: `+`, a calling code (1 to 3 digits, no leading 0)
/// and a national number of at most 17 digits (libphonenumber's bound, past E.164's 15: it
/// accepts German numbers of 17 digits in all).
fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (2..=20).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

fn check_outcome(input: &str, region: Region) -> Result<(), TestCaseError> {
    match normalize(input, region) {
        Ok(number) => {
            prop_assert!(
                is_e164(number.as_str()),
                "{input:?} gave {:?}",
                number.as_str()
            );
            // E.164 is a fixed point, whatever the default region.
            for (other, _) in FROM {
                prop_assert_eq!(
                    normalize(number.as_str(), *other).map(|n| n.as_str().to_string()),
                    Ok(number.as_str().to_string())
                );
            }
        }
        Err(error) => assert_documented(&error, &[length_or_invalid])?,
    }
    Ok(())
}

/// A way to write one of `VALID`: prefix style, where to cut the national number, separators.
#[derive(Clone, Debug)]
struct Written {
    number: usize,
    from: usize,
    style: u8,
    cuts: Vec<usize>,
    separator: &'static str,
    parens: bool,
    full_width: bool,
    label: &'static str,
}

fn written() -> impl Strategy<Value = Written> {
    (
        0..VALID.len(),
        0..FROM.len(),
        0u8..3,
        proptest::collection::vec(1usize..12, 0..4),
        proptest::sample::select(vec![" ", "-", ".", "", " - ", "/"]),
        any::<bool>(),
        any::<bool>(),
        proptest::sample::select(vec!["", "Tel: ", "phone ", "  "]),
    )
        .prop_map(
            |(number, from, style, cuts, separator, parens, full_width, label)| Written {
                number,
                from,
                style,
                cuts,
                separator,
                parens,
                full_width,
                label,
            },
        )
}

impl Written {
    /// The text, the default region, and the E.164 it must give.
    fn render(&self) -> (String, Region, String) {
        let (code, national, home) = VALID[self.number];
        let (region, idd) = FROM[self.from];
        // Groups of the national number, cut where the strategy says.
        let mut groups = Vec::new();
        let mut rest = national;
        for &cut in &self.cuts {
            if cut < rest.len() {
                let (head, tail) = rest.split_at(cut);
                groups.push(head.to_string());
                rest = tail;
            }
        }
        groups.push(rest.to_string());
        if self.parens && groups.len() > 1 {
            groups[0] = format!("({})", groups[0]);
        }
        let national_text = groups.join(self.separator);
        let text = match self.style {
            // National form: only for a number of the default region that dials a trunk 0
            // (FR, DE, GB, CH; Italy keeps its 0 inside the number, the US dials none).
            0 if home == region && national_prefix_zero(home) => format!("0{national_text}"),
            1 => format!("{idd} {code} {national_text}"),
            _ => format!("+{code} {national_text}"),
        };
        let text = if self.full_width {
            full_width(&text)
        } else {
            text
        };
        (
            format!("{}{text}", self.label),
            region,
            format!("+{code}{national}"),
        )
    }
}

fn national_prefix_zero(region: Region) -> bool {
    matches!(region, Region::CH | Region::DE | Region::GB | Region::FR)
}

/// Digits and `+` as their full-width forms (U+FF10.., U+FF0B).
fn full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(0xFF10 + (c as u32 - '0' as u32)).unwrap_or(c),
            '+' => '\u{FF0B}',
            c => c,
        })
        .collect()
}

fn valid_inputs() -> Vec<String> {
    VALID
        .iter()
        .map(|(code, national, _)| format!("+{code} {national}"))
        .chain([
            "044 668 18 00".to_string(),
            "0041 (0)79 123 45 67".to_string(),
        ])
        .collect()
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn any_text_is_refused_as_documented_or_gives_e164(
        input in prop_oneof![
            any::<String>(),
            "[+0-9 ()\\-./#;:=xXtel]{0,30}",
            "\\+?[0-9]{0,20}",
        ],
        from in 0..FROM.len(),
    ) {
        check_outcome(&input, FROM[from].0)?;
    }

    #[test]
    fn mutated_numbers_are_refused_as_documented_or_give_e164(
        input in proptest::sample::select(valid_inputs()).prop_flat_map(mutated_text),
        from in 0..FROM.len(),
    ) {
        check_outcome(&input, FROM[from].0)?;
    }

    #[test]
    fn valid_numbers_written_any_usual_way_round_trip(written in written()) {
        let (text, region, e164) = written.render();
        let got = normalize(&text, region).map(|n| n.as_str().to_string());
        prop_assert_eq!(got, Ok(e164), "{:?} from {:?}", text, region);
    }
}
