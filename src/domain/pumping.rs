//! The SMS-pumping guard: toll fraud sends codes to numbers the attacker is paid for and never
//! verifies them. Per number range and per country, the codes sent and the codes verified are
//! counted per UTC day; when a range (or country) has sent at least its minimum of codes today
//! and under `PHONE_PUMPING_MIN_VERIFIED` of them were verified, new codes into it are refused
//! for a day. The block is kept in one small document, `sms-guard:blocks`, which operators read
//! and lift (docs/operating.md); the request that sets a block logs it once. A lifted block stays
//! in the document until it would have ended, so the same counts do not trip it again.

use super::Caller;
use super::sms_limits::{Reservation, Window};
use crate::config::PumpingGuard;
use crate::error::Error;
use crate::log::{self, Level};
use crate::store::{KeyValue, SwapError};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The document holding every block.
pub(crate) const BLOCKS_KEY: &str = "sms-guard:blocks";
/// How long a block lasts.
const BLOCK_SECONDS: u64 = 86_400;
/// Compare-and-swap attempts when adding a block.
const MAX_ATTEMPTS: u32 = 10;

/// What a block covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Scope {
    /// Numbers starting with `prefix` (a number without its last three digits).
    Range,
    /// Numbers with the calling code `prefix` (`+41`).
    Country,
}

/// One block, as operators read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Block {
    scope: Scope,
    prefix: String,
    /// Unix seconds at which it ends.
    until: i64,
    /// What tripped it: codes sent and verified that day.
    codes: u64,
    verified: u64,
    /// An operator lifted it: codes flow, and the prefix is not judged again until `until`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    lifted: bool,
}

impl Block {
    fn covers(&self, scope: Scope, prefix: &str, now: Timestamp) -> bool {
        self.until > now.seconds && self.scope == scope && self.prefix == prefix
    }
}

/// The blocks document as one request read it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Blocks {
    blocks: Vec<Block>,
}

impl Blocks {
    /// The document, read once per new code while the guard is on (nothing otherwise).
    pub(crate) fn read(kv: &dyn KeyValue, guard: &PumpingGuard) -> Result<Blocks, Error> {
        if !guard.is_on() {
            return Ok(Blocks::default());
        }
        match kv
            .get(BLOCKS_KEY)
            .map_err(|e| Error::StoreUnavailable(e.0))?
        {
            Some(bytes) => read_blocks(&bytes),
            None => Ok(Blocks::default()),
        }
    }

    /// Refuses a code into a range or country under a block that is not lifted.
    pub(crate) fn check(
        &self,
        range: &str,
        calling_code: u16,
        now: Timestamp,
    ) -> Result<(), Error> {
        let country = country(calling_code);
        let until = self
            .blocks
            .iter()
            .filter(|block| !block.lifted)
            .filter(|block| {
                block.covers(Scope::Range, range, now)
                    || block.covers(Scope::Country, &country, now)
            })
            .map(|block| block.until)
            .max();
        match until {
            Some(until) => Err(Error::PumpingBlock {
                retry_after: u64::try_from(until - now.seconds).unwrap_or(1).max(1),
                tripped: false,
            }),
            None => Ok(()),
        }
    }

    fn lifted(&self, scope: Scope, prefix: &str, now: Timestamp) -> bool {
        self.blocks
            .iter()
            .any(|block| block.lifted && block.covers(scope, prefix, now))
    }
}

fn read_blocks(bytes: &[u8]) -> Result<Blocks, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::CorruptRecord(format!("{BLOCKS_KEY} is not a blocks document: {e}")))
}

fn country(calling_code: u16) -> String {
    format!("+{calling_code}")
}

/// Counts a code into `range` and its country for today, and trips the guard when the share
/// verified before this code is under the minimum.
pub(crate) fn count_code(
    caller: &Caller,
    reservation: &mut Reservation,
    blocks: &Blocks,
    range: &str,
    calling_code: u16,
    now: Timestamp,
) -> Result<(), Error> {
    let guard = &caller.config.sms_limits.pumping;
    if !guard.is_on() {
        return Ok(());
    }
    let country = country(calling_code);
    for (scope, prefix, minimum) in [
        (Scope::Range, range, guard.min_codes),
        (
            Scope::Country,
            country.as_str(),
            guard.min_codes_per_country,
        ),
    ] {
        if blocks.lifted(scope, prefix, now) {
            continue;
        }
        let what = subject(scope, prefix);
        let sent_before = reservation
            .take(Window::Day, now, &format!("codes:{what}"))?
            .saturating_sub(1);
        if sent_before < u64::from(minimum) {
            continue;
        }
        let verified = read_counter(
            caller.kv(),
            &Window::Day.key(now, &format!("verified:{what}")),
        )?;
        if verified.saturating_mul(100) < u64::from(guard.min_verified_percent) * sent_before {
            let block = Block {
                scope,
                prefix: prefix.to_owned(),
                until: now.plus_seconds(BLOCK_SECONDS).seconds,
                codes: sent_before,
                verified,
                lifted: false,
            };
            let tripped = add_block(caller, block, now)?;
            return Err(Error::PumpingBlock {
                retry_after: BLOCK_SECONDS,
                tripped,
            });
        }
    }
    Ok(())
}

/// Counts a verified code to `number` (E.164) for today's share of its range and country.
pub(crate) fn count_verified(caller: &Caller, number: &str, now: Timestamp) {
    let guard = &caller.config.sms_limits.pumping;
    if !guard.is_on() {
        return;
    }
    let Some(calling_code) = crate::number::calling_code_of(number) else {
        return;
    };
    let range = super::sms_limits::range_of(number);
    let mut counted = Reservation::new(caller.kv());
    for what in [
        subject(Scope::Range, range),
        subject(Scope::Country, &country(calling_code)),
    ] {
        if let Err(error) = counted.take(Window::Day, now, &format!("verified:{what}")) {
            // The phone is verified already; a lost count only makes the guard stricter.
            log::line(
                Level::Warn,
                "verified code not counted for the SMS-pumping guard",
                &[("error", log::scrub(&format!("{error:?}"), &[]).into())],
            );
        }
    }
    counted.keep();
}

fn subject(scope: Scope, prefix: &str) -> String {
    match scope {
        Scope::Range => format!("range:{prefix}"),
        Scope::Country => format!("country:{prefix}"),
    }
}

/// A counter's value, read with `increment(key, 0)`: how `get` shows a counter differs between
/// stores, an increment's answer does not.
fn read_counter(kv: &dyn KeyValue, key: &str) -> Result<u64, Error> {
    let value = kv
        .increment(key, 0)
        .map_err(|e| Error::StoreUnavailable(e.0))?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// Adds `block` to the blocks document (dropping ended ones); whether this call added it (an
/// equal block still running means another request tripped first, and logged it).
fn add_block(caller: &Caller, block: Block, now: Timestamp) -> Result<bool, Error> {
    let updater = caller.updater();
    updater.create_once(BLOCKS_KEY, || br#"{"blocks":[]}"#.to_vec())?;
    let kv = caller.kv();
    for _ in 0..MAX_ATTEMPTS {
        let cas = kv
            .start_swap(BLOCKS_KEY)
            .map_err(|e| Error::StoreUnavailable(e.0))?;
        let mut blocks = match cas.current() {
            Some(bytes) => read_blocks(bytes)?,
            None => Blocks::default(),
        };
        blocks.blocks.retain(|held| held.until > now.seconds);
        if blocks
            .blocks
            .iter()
            .any(|held| held.covers(block.scope, &block.prefix, now))
        {
            return Ok(false);
        }
        blocks.blocks.push(block.clone());
        let bytes = serde_json::to_vec(&blocks).map_err(|e| Error::CorruptRecord(e.to_string()))?;
        match cas.swap(bytes) {
            Ok(()) => {
                log::line(
                    Level::Warn,
                    "SMS-pumping guard: codes paused for a day",
                    &[
                        ("scope", format!("{:?}", block.scope).to_lowercase().into()),
                        ("prefix", block.prefix.clone().into()),
                        ("codes_today", block.codes.into()),
                        ("verified_today", block.verified.into()),
                        ("until", Timestamp::new(block.until, 0).to_string().into()),
                    ],
                );
                return Ok(true);
            }
            Err(SwapError::Conflict) => {}
            Err(SwapError::Store(e)) => return Err(Error::StoreUnavailable(e.0)),
        }
    }
    Err(Error::TooMuchContention)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_accept_percentages() {
        let none = |_: &str| None;
        assert_eq!(
            PumpingGuard::from_settings(&none).unwrap(),
            PumpingGuard {
                min_codes: 10,
                min_codes_per_country: 100,
                min_verified_percent: 20
            }
        );
        for (text, percent) in [("35%", 35), (" 5 ", 5), ("0", 0), ("100 %", 100)] {
            let get = |name: &str| (name == "PHONE_PUMPING_MIN_VERIFIED").then(|| text.to_owned());
            assert_eq!(
                PumpingGuard::from_settings(&get)
                    .unwrap()
                    .min_verified_percent,
                percent
            );
        }
        for bad in ["101", "-5%", "a fifth"] {
            let get = |name: &str| (name == "PHONE_PUMPING_MIN_VERIFIED").then(|| bad.to_owned());
            assert!(matches!(
                PumpingGuard::from_settings(&get),
                Err(Error::Config {
                    variable: "PHONE_PUMPING_MIN_VERIFIED",
                    ..
                })
            ));
        }
    }

    #[test]
    fn a_corrupt_blocks_document_is_reported_not_ignored() {
        let kv = crate::test_support::MemoryKv::default();
        kv.set(BLOCKS_KEY, b"not json").unwrap();
        let guard = PumpingGuard::from_settings(&|_: &str| None).unwrap();
        assert!(matches!(
            Blocks::read(&kv, &guard),
            Err(Error::CorruptRecord(_))
        ));
    }

    #[test]
    fn blocks_apply_to_their_range_or_country_until_they_end() {
        let kv = crate::test_support::MemoryKv::default();
        let blocks = r#"{"blocks":[{"scope":"range","prefix":"+41795550","until":1000,"codes":10,"verified":0},
            {"scope":"country","prefix":"+44","until":500,"codes":100,"verified":3},
            {"scope":"range","prefix":"+33612345","until":1000,"codes":10,"verified":0,"lifted":true}]}"#;
        kv.set(BLOCKS_KEY, blocks.as_bytes()).unwrap();
        let guard = PumpingGuard::from_settings(&|_: &str| None).unwrap();
        let at = |s| Timestamp::new(s, 0);
        let blocks = Blocks::read(&kv, &guard).unwrap();
        assert_eq!(
            blocks.check("+41795550", 41, at(400)),
            Err(Error::PumpingBlock {
                retry_after: 600,
                tripped: false
            })
        );
        assert_eq!(blocks.check("+41795551", 41, at(400)), Ok(()));
        assert!(blocks.check("+44207946", 44, at(400)).is_err());
        assert_eq!(blocks.check("+44207946", 44, at(500)), Ok(()));
        assert_eq!(blocks.check("+41795550", 41, at(1000)), Ok(()));
        assert_eq!(blocks.check("+33612345", 33, at(400)), Ok(()), "lifted");
        assert!(blocks.lifted(Scope::Range, "+33612345", at(400)));
        let off = PumpingGuard {
            min_verified_percent: 0,
            ..guard
        };
        assert!(
            Blocks::read(&kv, &off).unwrap().blocks.is_empty(),
            "off: not even read"
        );
    }
}
