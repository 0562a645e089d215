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

    /// Whether the allow-list admits this number (an empty list admits every number).
    pub fn is_allowed(&self, allowed: &AllowedRegions) -> bool {
        allowed.is_empty()
            || allowed.calling_codes.contains(&self.calling_code)
            || self
                .region
                .is_some_and(|region| allowed.regions.contains(&region))
    }
}

/// Validates and normalises user input the way upstream does (length, then parse with the
/// default region), and also refuses numbers libphonenumber parses but knows cannot exist,
/// so no SMS is ever paid for a number that cannot receive it.
pub fn normalize(input: &str, default_region: Region) -> Result<E164, Error> {
    let runes = input.chars().count();
    if runes == 0 || runes > MAX_PHONE_RUNES {
        return Err(Error::PhoneLength);
    }
    let number =
        phonenumber::parse(Some(default_region), input).map_err(|_| Error::PhoneInvalid)?;
    if !phonenumber::is_valid(&number) {
        return Err(Error::PhoneInvalid);
    }
    Ok(E164 {
        number: number.format().mode(phonenumber::Mode::E164).to_string(),
        region: number.country().id(),
        calling_code: number.country().code(),
    })
}

/// Loads libphonenumber's metadata (parsed lazily on first use, about 100 ms in wasm), so
/// that a pre-initialised component carries it ready.
pub fn warm_up() {
    let _ = normalize("+41 71 000 00 00", Region::CH);
}

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
