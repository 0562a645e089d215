//! Abuse guards on issuing codes (each one is an SMS someone pays for): a per-user cooldown
//! and an hourly cap, both answered with 429 / code 8 before anything changes.

use crate::config::Config;
use crate::error::Error;
use crate::record::UserRecord;
use crate::time::Timestamp;

const HOUR: u64 = 3600;

/// Refuses a new code for `record` at `now` when the cooldown or the hourly cap forbids it.
pub fn check_new_code(record: &UserRecord, config: &Config, now: Timestamp) -> Result<(), Error> {
    let recent: Vec<Timestamp> = record
        .codes_issued
        .iter()
        .copied()
        .filter(|at| now.seconds_since(*at) < HOUR)
        .collect();
    if config.resend_cooldown_seconds > 0
        && let Some(last) = recent.iter().max()
    {
        let waited = now.seconds_since(*last);
        if waited < config.resend_cooldown_seconds {
            return Err(Error::ResendCooldown {
                retry_after: config.resend_cooldown_seconds - waited,
            });
        }
    }
    let cap = config.codes_per_hour as usize;
    if cap > 0 && recent.len() >= cap {
        // The oldest code in the window leaves it first.
        let oldest = recent.iter().min().copied().unwrap_or(now);
        return Err(Error::HourlyCap {
            retry_after: HOUR.saturating_sub(now.seconds_since(oldest)).max(1),
        });
    }
    Ok(())
}

/// Notes a code issued at `now`, forgetting issues older than an hour and all but the newest
/// ones the guards look at (the cap's worth, at least the last for the cooldown): without a cap
/// an hour of codes would otherwise grow every read and write of the record.
pub fn note_new_code(record: &mut UserRecord, config: &Config, now: Timestamp) {
    let issued = &mut record.codes_issued;
    issued.retain(|at| now.seconds_since(*at) < HOUR);
    issued.push(now);
    issued.sort();
    let keep = (config.codes_per_hour as usize).max(1);
    let excess = issued.len().saturating_sub(keep);
    issued.drain(..excess);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cooldown: u64, cap: u32) -> Config {
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let mut config = Config::from_lookup(|name| match name {
            "AUTH_ISSUER" => Some("https://issuer".into()),
            "AUTH_JWKS" => Some(jwks.into()),
            _ => None,
        })
        .unwrap();
        config.resend_cooldown_seconds = cooldown;
        config.codes_per_hour = cap;
        config
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::new(seconds, 0)
    }

    #[test]
    fn cooldown_counts_from_the_last_code() {
        let mut record = UserRecord::new("u", "o", at(0));
        let config = config(60, 0);
        assert_eq!(check_new_code(&record, &config, at(1000)), Ok(()));
        note_new_code(&mut record, &config, at(1000));
        assert_eq!(
            check_new_code(&record, &config, at(1045)),
            Err(Error::ResendCooldown { retry_after: 15 })
        );
        assert_eq!(check_new_code(&record, &config, at(1060)), Ok(()));
    }

    #[test]
    fn the_hourly_cap_slides() {
        let mut record = UserRecord::new("u", "o", at(0));
        let config = config(0, 3);
        for t in [1000, 1100, 1200] {
            assert_eq!(check_new_code(&record, &config, at(t)), Ok(()));
            note_new_code(&mut record, &config, at(t));
        }
        assert_eq!(
            check_new_code(&record, &config, at(1300)),
            Err(Error::HourlyCap { retry_after: 3300 })
        );
        assert_eq!(
            check_new_code(&record, &config, at(4600)),
            Ok(()),
            "the first code left the window"
        );
        note_new_code(&mut record, &config, at(4600));
        assert_eq!(record.codes_issued.len(), 3, "older issues are forgotten");
    }

    #[test]
    fn zero_switches_a_guard_off() {
        let mut record = UserRecord::new("u", "o", at(0));
        let off = config(0, 0);
        for t in 0..20 {
            note_new_code(&mut record, &off, at(t));
        }
        assert_eq!(check_new_code(&record, &off, at(20)), Ok(()));
    }

    #[test]
    fn a_record_keeps_only_the_codes_the_guards_look_at() {
        let mut record = UserRecord::new("u", "o", at(0));
        let uncapped = config(0, 0);
        for t in 0..500 {
            note_new_code(&mut record, &uncapped, at(1000 + t));
        }
        assert_eq!(record.codes_issued, vec![at(1499)]);
        let capped = config(0, 3);
        for t in 0..10 {
            note_new_code(&mut record, &capped, at(2000 + t));
        }
        assert_eq!(record.codes_issued, vec![at(2007), at(2008), at(2009)]);
    }
}
