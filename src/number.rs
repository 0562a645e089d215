//! Phone-number input rules: length in runes, then libphonenumber normalisation to E.164.

use crate::config::AllowedRegions;
use crate::error::Error;
use phonenumber::country::Id as Region;

/// Upstream's bound on SetMyPhoneRequest.phone, in Unicode scalar values.
pub const MAX_PHONE_RUNES: usize = 50;

/// A phone number in E.164 form, e.g. `+41710000000`, with where it is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct E164 {
    number: String,
    region: Option<Region>,
    calling_code: u16,
}

impl E164 {
    pub fn as_str(&self) -> &str {
        &self.number
    }

    /// The country calling code (41 for `+41…`).
    pub fn calling_code(&self) -> u16 {
        self.calling_code
    }

    /// Whether the allow-list admits this number (an empty list admits every number).
    pub fn is_allowed(&self, allowed: &AllowedRegions) -> bool {
        allowed.is_empty()
            || allowed.calling_codes.contains(&self.calling_code)
            || self
                .region
                .is_some_and(|region| allowed.regions.contains(&region))
    }
}

/// The calling code of a number already in E.164 form (a stored number).
pub fn calling_code_of(e164: &str) -> Option<u16> {
    phonenumber::parse(None, e164)
        .ok()
        .map(|number| number.country().code())
}

/// Validates and normalises user input the way upstream does (length, then parse with the
/// default region), and also refuses numbers libphonenumber parses but knows cannot exist,
/// so no SMS is ever paid for a number that cannot receive it.
pub fn normalize(input: &str, default_region: Region) -> Result<E164, Error> {
    let runes = input.chars().count();
    if runes == 0 || runes > MAX_PHONE_RUNES {
        return Err(Error::PhoneLength);
    }
    let number = parse(&ascii_digits(input), default_region)?;
    if !phonenumber::is_valid(&number) {
        return Err(Error::PhoneInvalid);
    }
    Ok(E164 {
        number: number.format().mode(phonenumber::Mode::E164).to_string(),
        region: number.country().id(),
        calling_code: number.country().code(),
    })
}

/// Parses as libphonenumber does. The `phonenumber` crate reads a number that names another
/// calling code with the *default* region's rules: it strips the default region's national
/// prefix (`+39 02 …` from `CH` loses Italy's leading 0; `+49 171 …` from `US` loses its 1 and
/// becomes another, valid, number). libphonenumber uses the number's own region. So a number
/// with a foreign calling code is parsed again in `+` form without a default region, which makes
/// the crate take the rules of the region the code names.
fn parse(input: &str, default_region: Region) -> Result<phonenumber::PhoneNumber, Error> {
    use phonenumber::country::Source;
    use phonenumber::metadata::DATABASE;
    let number =
        phonenumber::parse(Some(default_region), input).map_err(|_| Error::PhoneInvalid)?;
    let code = number.country().code();
    let default = DATABASE.by_id(default_region.as_ref());
    if default.is_some_and(|meta| meta.country_code() == code) {
        return Ok(number);
    }
    // The default region's international prefix (`00`, `011`, …) in front, after a `+` or not:
    // cut it off (libphonenumber reads `+00 39 …` as `00 39 …`, calling codes never start with 0).
    let after_idd = || {
        let idd = default?.international_prefix()?;
        let first = input.find(|c: char| c.is_ascii_digit())?;
        // The digits from there on, each with where it ends in `input`.
        let (digits, ends): (String, Vec<usize>) = input[first..]
            .char_indices()
            .filter(|(_, c)| c.is_ascii_digit())
            .map(|(at, c)| (c, first + at + 1))
            .unzip();
        let found = idd
            .find(&digits)
            .filter(|m| m.start() == 0 && m.end() > 0)?;
        Some(format!("+{}", &input[ends[found.end() - 1]..]))
    };
    let plus_form = match number.code().source() {
        Source::Plus => after_idd().unwrap_or_else(|| input.to_owned()),
        Source::Idd => match after_idd() {
            Some(plus_form) => plus_form,
            None => return Ok(number),
        },
        Source::Number | Source::Default => return Ok(number),
    };
    match phonenumber::parse(None, &plus_form) {
        Ok(again) if again.country().code() == code => Ok(again),
        _ => Ok(number),
    }
}

/// Decimal digits of any script as ASCII digits, as libphonenumber reads them (full-width
/// `０`–`９` from East Asian keyboards, Arabic-Indic, Devanagari, …); `phonenumber` reads ASCII
/// digits only.
fn ascii_digits(input: &str) -> std::borrow::Cow<'_, str> {
    /// The zero of each run of ten decimal digits (Unicode category Nd) in the BMP.
    const ZEROS: &[u32] = &[
        0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
        0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0,
        0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0,
        0xAA50, 0xABF0, 0xFF10,
    ];
    let digit = |c: char| {
        let c = c as u32;
        ZEROS
            .iter()
            .find(|&&zero| (zero..zero + 10).contains(&c))
            .and_then(|&zero| char::from_digit(c - zero, 10))
    };
    if input.chars().all(|c| c.is_ascii() || digit(c).is_none()) {
        return input.into();
    }
    input
        .chars()
        .map(|c| digit(c).unwrap_or(c))
        .collect::<String>()
        .into()
}

/// Loads libphonenumber's metadata (parsed lazily on first use, about 100 ms in wasm), so
/// that a pre-initialised component carries it ready.
pub fn warm_up() {
    let _ = normalize("+41 71 000 00 00", Region::CH);
}

#[cfg(test)]
mod parse_table;
#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_the_reference_example() {
        let e164 = normalize("+41 71 000 00 00", Region::CH).unwrap();
        assert_eq!(e164.as_str(), "+41710000000");
    }

    #[test]
    fn national_numbers_use_the_default_region() {
        assert_eq!(
            normalize("071 000 00 00", Region::CH).unwrap().as_str(),
            "+41710000000"
        );
        assert_eq!(
            normalize("030 1234567", Region::DE).unwrap().as_str(),
            "+49301234567"
        );
    }

    #[test]
    fn length_counts_runes_not_bytes() {
        assert_eq!(normalize("", Region::CH), Err(Error::PhoneLength));
        assert_eq!(
            normalize(&"1".repeat(51), Region::CH),
            Err(Error::PhoneLength)
        );
        // 50 two-byte runes are within the limit (and then invalid as a number).
        assert_eq!(
            normalize(&"é".repeat(50), Region::CH),
            Err(Error::PhoneInvalid)
        );
    }

    #[test]
    fn allow_lists_match_regions_and_calling_codes() {
        let swiss = normalize("+41 71 000 00 00", Region::CH).unwrap();
        let german = normalize("+49 30 1234567", Region::CH).unwrap();
        let only_ch = AllowedRegions {
            regions: vec![Region::CH],
            calling_codes: vec![],
        };
        let only_49 = AllowedRegions {
            regions: vec![],
            calling_codes: vec![49],
        };
        assert!(swiss.is_allowed(&AllowedRegions::default()));
        assert!(swiss.is_allowed(&only_ch) && !german.is_allowed(&only_ch));
        assert!(german.is_allowed(&only_49) && !swiss.is_allowed(&only_49));
    }

    /// Found by the property tests: the `phonenumber` crate stripped the default region's
    /// national prefix from foreign numbers (US `1`, CH `0`), giving another number or none.
    #[test]
    fn foreign_numbers_keep_their_own_digits() {
        for (input, region, e164) in [
            ("+49 1711234567", Region::US, "+491711234567"),
            ("+4918020000", Region::US, "+4918020000"),
            ("+39 02 3661 8300", Region::CH, "+390236618300"),
            ("+0039 02 3661 8300", Region::CH, "+390236618300"),
        ] {
            assert_eq!(
                normalize(input, region).map(|n| n.as_str().to_string()),
                Ok(e164.to_string()),
                "{input} from {region:?}"
            );
        }
    }

    #[test]
    fn digits_of_any_script_are_read() {
        assert_eq!(
            normalize("\u{FF10}\u{FF14}\u{FF14} \u{FF16}\u{FF16}\u{FF18} \u{FF11}\u{FF18} \u{FF10}\u{FF10}", Region::CH)
                .map(|n| n.as_str().to_string()),
            Ok("+41446681800".to_string())
        );
    }

    #[test]
    fn garbage_and_impossible_numbers_are_invalid() {
        for bad in ["hello", "+", "+41 12", "+41 71 000", "+999 123 456 789"] {
            assert_eq!(
                normalize(bad, Region::CH),
                Err(Error::PhoneInvalid),
                "{bad}"
            );
        }
    }
}
