//! The settings of the limits on codes across accounts and of the SMS-pumping guard (their
//! rules are `crate::domain::sms_limits` and `crate::domain::pumping`).

use crate::error::Error;

/// The limits' settings; 0 turns a limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsLimits {
    pub per_number_hour: u32,
    pub per_number_day: u32,
    pub per_range_hour: u32,
    pub per_org_hour: u32,
    pub per_hour: u32,
    pub pumping: PumpingGuard,
}

impl SmsLimits {
    /// The settings through `get` (empty values already count as unset).
    pub fn from_settings(get: &impl Fn(&str) -> Option<String>) -> Result<SmsLimits, Error> {
        Ok(SmsLimits {
            per_number_hour: count(get, "PHONE_CODES_PER_NUMBER_PER_HOUR", 5)?,
            per_number_day: count(get, "PHONE_CODES_PER_NUMBER_PER_DAY", 10)?,
            per_range_hour: count(get, "PHONE_CODES_PER_RANGE_PER_HOUR", 20)?,
            per_org_hour: count(get, "PHONE_SMS_PER_ORG_PER_HOUR", 0)?,
            per_hour: count(get, "PHONE_SMS_PER_HOUR", 0)?,
            pumping: PumpingGuard::from_settings(get)?,
        })
    }
}

/// Largest value a count setting takes.
const MAX_COUNT: u32 = 10_000_000;

/// A count setting: a whole number from 0 (off) to [`MAX_COUNT`].
fn count(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u32,
) -> Result<u32, Error> {
    match get(variable) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_COUNT)
            .ok_or_else(|| Error::Config {
                variable,
                problem: format!("must be a whole number from 0 (off) to {MAX_COUNT}"),
            }),
    }
}

/// The guard's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PumpingGuard {
    /// Codes a range must have sent today before its verified share is judged.
    pub min_codes: u32,
    /// The same for a whole country (calling code).
    pub min_codes_per_country: u32,
    /// The least verified share, in percent; 0 turns the guard off.
    pub min_verified_percent: u32,
}

impl PumpingGuard {
    pub fn from_settings(get: &impl Fn(&str) -> Option<String>) -> Result<PumpingGuard, Error> {
        let min_verified_percent = match get("PHONE_PUMPING_MIN_VERIFIED") {
            None => 20,
            Some(text) => text
                .trim()
                .trim_end_matches('%')
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|percent| *percent <= 100)
                .ok_or_else(|| Error::Config {
                    variable: "PHONE_PUMPING_MIN_VERIFIED",
                    problem: "must be a share from 0% (off) to 100%, such as 20%".into(),
                })?,
        };
        Ok(PumpingGuard {
            min_codes: count(get, "PHONE_PUMPING_MIN_CODES", 10)?.max(1),
            min_codes_per_country: count(get, "PHONE_PUMPING_MIN_CODES_PER_COUNTRY", 100)?.max(1),
            min_verified_percent,
        })
    }

    pub(crate) fn is_on(&self) -> bool {
        self.min_verified_percent > 0
    }
}
