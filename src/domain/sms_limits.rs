//! Limits on codes across accounts (the per-user guards are in `user_limits.rs`): per destination
//! number, per number range, per organisation and for the whole deployment, so that many
//! accounts cannot send many codes to one person (SMS bombing) or into one range (SMS pumping).
//!
//! Each limit is a counter in the key-value store, in a fixed window (the clock hour or the UTC
//! day) named in its key, moved only with `increment`, which is atomic on every host we support.
//! A request reserves a slot in each counter before anything is stored or sent: the increment
//! answers the count with this request in it, and one over the limit is refused. A refused or
//! failed request gives its slots back (`increment` by -1), so a refusal changes nothing and 50
//! racing requests for the last slot get exactly one. docs/api.md "Abuse guards".

use super::Caller;
use super::pumping;
use crate::error::{Error, SendLimit};
use crate::record;
use crate::store::KeyValue;
use crate::time::Timestamp;

/// Every counter and the blocks live under this prefix (docs/operating.md lists them).
const KEY_PREFIX: &str = "sms-guard:";

/// A fixed window: the clock hour or the UTC day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Window {
    Hour,
    Day,
}

impl Window {
    fn seconds(self) -> i64 {
        match self {
            Window::Hour => 3600,
            Window::Day => 86_400,
        }
    }

    /// The window's number (hours or days since 1970) at `now`.
    fn index(self, now: Timestamp) -> i64 {
        now.seconds.div_euclid(self.seconds())
    }

    /// Seconds until the window that holds `now` ends (at least 1).
    pub(crate) fn left(self, now: Timestamp) -> u64 {
        let left = self.seconds() - now.seconds.rem_euclid(self.seconds());
        u64::try_from(left).unwrap_or(1).max(1)
    }

    /// The counter of `what` (e.g. `number:+41795550000`) in the window `index`.
    fn key_at(self, index: i64, what: &str) -> String {
        let unit = match self {
            Window::Hour => 'h',
            Window::Day => 'd',
        };
        format!("{KEY_PREFIX}{unit}{index}:{what}")
    }

    pub(crate) fn key(self, now: Timestamp, what: &str) -> String {
        self.key_at(self.index(now), what)
    }
}

/// The number range a number is in: its E.164 form without the last three digits.
pub(crate) fn range_of(e164: &str) -> &str {
    // E.164 numbers have at least 8 characters; anything shorter is its own range.
    if e164.len() < 8 {
        return e164;
    }
    e164.get(..e164.len() - 3).unwrap_or(e164)
}

/// Slots taken in counters; given back on drop unless [`Reservation::keep`] was called, so every
/// path that does not send the code (a refusal, a failed update, an error) undoes them.
pub(crate) struct Reservation<'a> {
    kv: &'a dyn KeyValue,
    taken: Vec<String>,
}

impl<'a> Reservation<'a> {
    pub(crate) fn new(kv: &'a dyn KeyValue) -> Self {
        Reservation {
            kv,
            taken: Vec::new(),
        }
    }

    /// Takes a slot in `window`'s counter of `what`; the count with this request in it. The
    /// first slot of a window removes the same counter's previous window, so counters of
    /// numbers that keep receiving codes do not pile up.
    pub(crate) fn take(
        &mut self,
        window: Window,
        now: Timestamp,
        what: &str,
    ) -> Result<u64, Error> {
        let key = window.key(now, what);
        let count = self
            .kv
            .increment(&key, 1)
            .map_err(|e| Error::StoreUnavailable(e.0))?;
        self.taken.push(key);
        if count == 1 {
            // Best effort: a counter left behind is a few bytes, never a wrong answer.
            let _ = self.kv.delete(&window.key_at(window.index(now) - 1, what));
        }
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The code is being sent: the slots stay taken.
    pub(crate) fn keep(mut self) {
        self.taken.clear();
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        for key in self.taken.drain(..) {
            // A failed give-back leaves the counter one high for the rest of its window: the
            // limit errs on the side of fewer SMS.
            let _ = self.kv.increment(&key, -1);
        }
    }
}

/// Reserves the slots a new code to `number` (E.164, calling code `calling_code`) takes in every
/// limit that is on, after the pumping guard's blocks; refuses with the first limit reached.
/// The refusal is audited by the caller (`audit::refusal`).
pub(crate) fn reserve<'a>(
    caller: &'a Caller,
    number: &str,
    calling_code: u16,
    now: Timestamp,
) -> Result<Reservation<'a>, Error> {
    let limits = &caller.config.sms_limits;
    let kv = caller.kv();
    let range = range_of(number);
    let blocks = pumping::Blocks::read(kv, &limits.pumping)?;
    blocks.check(range, calling_code, now)?;
    let mut reservation = Reservation::new(kv);
    let org = caller.principal.resource_owner.as_str();
    let counted: [(u32, Window, String, SendLimit); 5] = [
        (
            limits.per_number_hour,
            Window::Hour,
            format!("number:{number}"),
            SendLimit::NumberHour,
        ),
        (
            limits.per_number_day,
            Window::Day,
            format!("number:{number}"),
            SendLimit::NumberDay,
        ),
        (
            limits.per_range_hour,
            Window::Hour,
            format!("range:{range}"),
            SendLimit::RangeHour,
        ),
        (
            limits.per_org_hour,
            Window::Hour,
            format!("org:{}", record::escape(org)),
            SendLimit::OrgHour,
        ),
        (
            limits.per_hour,
            Window::Hour,
            "all".to_owned(),
            SendLimit::DeploymentHour,
        ),
    ];
    for (limit, window, what, which) in counted {
        if limit == 0 {
            continue;
        }
        if reservation.take(window, now, &what)? > u64::from(limit) {
            return Err(Error::SendLimit {
                limit: which,
                retry_after: window.left(now),
            });
        }
    }
    pumping::count_code(caller, &mut reservation, &blocks, range, calling_code, now)?;
    Ok(reservation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SmsLimits;
    use crate::test_support::MemoryKv;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::new(seconds, 0)
    }

    #[test]
    fn ranges_drop_the_last_three_digits() {
        assert_eq!(range_of("+41795550100"), "+41795550");
        assert_eq!(range_of("+41795550139"), "+41795550");
        assert_eq!(range_of("+123456"), "+123456");
    }

    #[test]
    fn windows_are_clock_hours_and_utc_days() {
        assert_eq!(Window::Hour.key(at(7200), "x"), "sms-guard:h2:x");
        assert_eq!(Window::Hour.key(at(10_799), "x"), "sms-guard:h2:x");
        assert_eq!(Window::Hour.key(at(10_800), "x"), "sms-guard:h3:x");
        assert_eq!(Window::Day.key(at(86_399), "x"), "sms-guard:d0:x");
        assert_eq!(Window::Hour.left(at(7200)), 3600);
        assert_eq!(Window::Hour.left(at(10_799)), 1);
        assert_eq!(Window::Day.left(at(86_000)), 400);
    }

    #[test]
    fn slots_are_given_back_unless_kept_and_old_windows_are_removed() {
        let kv = MemoryKv::default();
        {
            let mut reservation = Reservation::new(&kv);
            assert_eq!(reservation.take(Window::Hour, at(100), "n").unwrap(), 1);
            assert_eq!(reservation.take(Window::Hour, at(100), "n").unwrap(), 2);
        }
        assert_eq!(kv.counter("sms-guard:h0:n"), 0, "dropped: given back");
        let mut reservation = Reservation::new(&kv);
        reservation.take(Window::Hour, at(100), "n").unwrap();
        reservation.keep();
        assert_eq!(kv.counter("sms-guard:h0:n"), 1, "kept");
        let mut next_hour = Reservation::new(&kv);
        next_hour.take(Window::Hour, at(3700), "n").unwrap();
        next_hour.keep();
        assert!(
            !kv.counters.borrow().contains_key("sms-guard:h0:n"),
            "the old window is gone"
        );
        assert_eq!(kv.counter("sms-guard:h1:n"), 1);
    }

    #[test]
    fn count_settings_default_and_refuse_nonsense() {
        let none = |_: &str| None;
        let limits = SmsLimits::from_settings(&none).unwrap();
        assert_eq!(
            (
                limits.per_number_hour,
                limits.per_number_day,
                limits.per_range_hour,
                limits.per_org_hour,
                limits.per_hour
            ),
            (5, 10, 20, 0, 0)
        );
        for bad in ["-1", "many", "1.5", "99999999999"] {
            let get =
                |name: &str| (name == "PHONE_CODES_PER_RANGE_PER_HOUR").then(|| bad.to_owned());
            match SmsLimits::from_settings(&get) {
                Err(Error::Config { variable, .. }) => {
                    assert_eq!(variable, "PHONE_CODES_PER_RANGE_PER_HOUR")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
