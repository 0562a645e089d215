//! When to try again: a delivery whose failure is retryable (429, 408, 5xx, a refused or reset
//! connection, a provider's throttling code) is tried again at most twice within
//! [`BUDGET`], after the provider's `Retry-After` (RFC 9110 §10.2.3) when it sent one, else after
//! a backoff; a permanent failure is not retried.

use crate::provider::{self, Answer, Outgoing, Plan, SendError};
use set_my_phone_outgoing_http::Failure;
use std::time::Duration;

/// Attempts of one delivery: the first and two retries.
pub const ATTEMPTS: u32 = 3;
/// Longest a delivery may take, waits included: well inside a host's limit for the work a
/// component does after answering (the reference host allows 60 s by default).
pub const BUDGET: Duration = Duration::from_secs(20);
/// Longest a code check may take, retries included: the user waits for its answer.
pub const CHECK_BUDGET: Duration = Duration::from_secs(8);
/// The waits before the second and third attempts when the provider names none.
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// What a delivery needs from its platform: the request, a clock and a way to wait.
pub trait Platform {
    fn exchange(&mut self, request: &Outgoing) -> Result<Answer, Failure>;
    /// Time since the delivery started.
    fn elapsed(&self) -> Duration;
    fn sleep(&mut self, duration: Duration);
    /// Unix seconds, for `Retry-After` dates and message ids.
    fn now(&self) -> u64;
}

/// Carries out `plan`: the message id, or the last failure.
pub fn deliver(plan: Plan, platform: &mut dyn Platform) -> Result<String, SendError> {
    match plan {
        Plan::Skip(error) => Err(error),
        Plan::Send { request, provider } => exchange(
            &request,
            &|answer, now| provider::interpret(provider, answer, now),
            BUDGET,
            platform,
        ),
    }
}

/// Makes `request`, trying again as [`deliver`] does, within `budget`; `read` turns an answer
/// into the outcome (it gets the time in unix seconds, for `Retry-After` dates and ids).
pub fn exchange<T>(
    request: &Outgoing,
    read: &dyn Fn(&Answer, u64) -> Result<T, SendError>,
    budget: Duration,
    platform: &mut dyn Platform,
) -> Result<T, SendError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (result, hint) = once(request, read, platform);
        let Err(SendError::Retryable(why)) = result else {
            return result;
        };
        let wait = hint.unwrap_or(BACKOFF[(attempt as usize - 1).min(BACKOFF.len() - 1)]);
        // No third try, and none that could not finish within the budget (an attempt may take
        // the whole request timeout).
        if attempt >= ATTEMPTS || platform.elapsed() + wait + provider::TIMEOUT > budget {
            return Err(SendError::Retryable(why));
        }
        platform.sleep(wait);
    }
}

/// One attempt, and the provider's `Retry-After` if it named one.
fn once<T>(
    request: &Outgoing,
    read: &dyn Fn(&Answer, u64) -> Result<T, SendError>,
    platform: &mut dyn Platform,
) -> (Result<T, SendError>, Option<Duration>) {
    let now = platform.now();
    match platform.exchange(request) {
        Err(Failure::Refused(why)) => (Err(SendError::Permanent(why)), None),
        Err(Failure::Unreachable(why)) => {
            (Err(SendError::Retryable(format!("provider {why}"))), None)
        }
        Ok(answer) => {
            let hint = answer
                .header("retry-after")
                .and_then(|value| retry_after(value, now))
                .map(Duration::from_secs);
            (read(&answer, now), hint)
        }
    }
}

/// Seconds from `now` (unix seconds) until the time `value` names: delta-seconds (`120`), or an
/// HTTP-date in the IMF-fixdate form every sender must use (`Wed, 21 Oct 2015 07:28:00 GMT`);
/// a date already past is 0. Anything else (the obsolete date forms included) is `None`.
pub fn retry_after(value: &str, now: u64) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok();
    }
    let at = imf_fixdate(value)?;
    Some(u64::try_from(at.saturating_sub(i64::try_from(now).ok()?)).unwrap_or(0))
}

/// Unix seconds of an IMF-fixdate, `<day-name>, DD Mon YYYY HH:MM:SS GMT`.
fn imf_fixdate(value: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = value.split(' ').collect();
    let [day_name, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    if !DAYS.iter().any(|d| day_name.strip_suffix(',') == Some(*d)) {
        return None;
    }
    let day: u32 = digits(day, 2)?;
    let month = 1 + u32::try_from(MONTHS.iter().position(|m| *m == month)?).ok()?;
    let year: i64 = digits(year, 4)?;
    let [hour, minute, second] = time.split(':').collect::<Vec<_>>()[..] else {
        return None;
    };
    let (hour, minute, second): (i64, i64, i64) =
        (digits(hour, 2)?, digits(minute, 2)?, digits(second, 2)?);
    // RFC 9110 allows second 60 (a leap second).
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Exactly `len` ASCII digits as a number.
fn digits<T: std::str::FromStr>(text: &str, len: usize) -> Option<T> {
    if text.len() != len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count from 0000-03-01, so that leap days fall at the end of each 400-year era.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;

    // Expected unix seconds from `date -u -d '<the date>' +%s` (GNU coreutils).
    const NOW: u64 = 1_445_412_480; // Wed, 21 Oct 2015 07:28:00 GMT

    #[test]
    fn delta_seconds_are_taken_as_they_are() {
        assert_eq!(retry_after("120", NOW), Some(120));
        assert_eq!(retry_after(" 0 ", NOW), Some(0));
        assert_eq!(retry_after("99999999999999999999999", NOW), None);
        assert_eq!(retry_after("-5", NOW), None);
        assert_eq!(retry_after("1.5", NOW), None);
        assert_eq!(retry_after("", NOW), None);
    }

    #[test]
    fn http_dates_count_from_now_and_past_ones_are_now() {
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:30:00 GMT", NOW), Some(120));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW), Some(0));
        assert_eq!(retry_after("Tue, 20 Oct 2015 07:28:00 GMT", NOW), Some(0));
        // 1709251199: a leap day; 946684800: a century divisible by 400; 4133937600: one not.
        assert_eq!(
            retry_after("Thu, 29 Feb 2024 23:59:59 GMT", 1_709_251_000),
            Some(199)
        );
        assert_eq!(
            retry_after("Sat, 01 Jan 2000 00:00:00 GMT", 946_684_000),
            Some(800)
        );
        assert_eq!(
            retry_after("Fri, 31 Dec 2100 12:00:00 GMT", 4_133_937_000),
            Some(600)
        );
    }

    #[test]
    fn anything_else_is_no_hint() {
        for value in [
            "soon",
            "Wed, 21 Oct 2015 07:28:00 UTC",
            "Wed 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Okt 2015 07:28:00 GMT",
            "Wed, 1 Oct 2015 07:28:00 GMT",
            "Thu, 29 Feb 2100 00:00:00 GMT",
            "Wed, 31 Apr 2015 00:00:00 GMT",
            "Wed, 21 Oct 2015 24:00:00 GMT",
            "Wed, 21 Oct 2015 07:28 GMT",
            // RFC 850 and asctime: obsolete forms no sender may generate.
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(retry_after(value, NOW), None, "{value}");
        }
    }

    /// A provider answering from a script, on a clock that sleeping moves.
    struct Scripted {
        answers: Vec<Result<Answer, Failure>>,
        sent: u32,
        clock: Duration,
        slept: Vec<Duration>,
    }

    impl Platform for Scripted {
        fn exchange(&mut self, _: &Outgoing) -> Result<Answer, Failure> {
            self.sent += 1;
            self.clock += Duration::from_millis(100);
            self.answers.remove(0)
        }
        fn elapsed(&self) -> Duration {
            self.clock
        }
        fn sleep(&mut self, duration: Duration) {
            self.slept.push(duration);
            self.clock += duration;
        }
        fn now(&self) -> u64 {
            1_700_000_000
        }
    }

    fn status(code: u16, retry_after: Option<&str>) -> Result<Answer, Failure> {
        Ok(Answer {
            status: code,
            headers: retry_after
                .map(|v| vec![("retry-after".to_string(), v.to_string())])
                .unwrap_or_default(),
            body: br#"{"sid":"SM1"}"#.to_vec(),
        })
    }

    fn run(answers: Vec<Result<Answer, Failure>>) -> (Result<String, SendError>, Scripted) {
        let mut platform = Scripted {
            answers,
            sent: 0,
            clock: Duration::ZERO,
            slept: vec![],
        };
        let plan = Plan::Send {
            request: crate::provider::post(
                set_my_phone_outgoing_http::Url::parse("http://127.0.0.1:9/").unwrap(),
                vec![],
                vec![],
            ),
            provider: Provider::Twilio,
        };
        let result = deliver(plan, &mut platform);
        (result, platform)
    }

    #[test]
    fn retryable_failures_are_tried_again_at_most_twice_honouring_retry_after() {
        let (result, platform) = run(vec![
            status(429, Some("2")),
            status(503, None),
            status(201, None),
        ]);
        assert_eq!(result.unwrap(), "SM1");
        assert_eq!(platform.sent, 3);
        assert_eq!(
            platform.slept,
            [Duration::from_secs(2), Duration::from_secs(1)]
        );

        let (result, platform) = run(vec![
            Err(Failure::Unreachable("refused".into())),
            status(500, None),
            status(502, None),
        ]);
        assert!(matches!(result, Err(SendError::Retryable(_))));
        assert_eq!(platform.sent, 3);
        assert_eq!(
            platform.slept,
            [Duration::from_millis(250), Duration::from_secs(1)]
        );
    }

    #[test]
    fn permanent_failures_and_waits_past_the_budget_are_not_retried() {
        let (result, platform) = run(vec![status(400, None)]);
        assert!(matches!(result, Err(SendError::Permanent(_))));
        assert_eq!(platform.sent, 1);
        // A provider asking for a minute: past the budget, the failure is filed as it is.
        let (result, platform) = run(vec![status(429, Some("60"))]);
        assert!(
            matches!(result, Err(SendError::Retryable(why)) if why.contains("retry after 60 s"))
        );
        assert_eq!((platform.sent, platform.slept.len()), (1, 0));
    }
}
