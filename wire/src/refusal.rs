//! Refusals by the abuse guards: the answer header that names which guard refused a code, and
//! every word it can hold. The core sets it on the 429 (or 400) it answers; the reference host
//! counts it in `set_my_phone_codes_refused_total{reason}`. The same word is the `reason` of the
//! `phone.code.refused` audit line, so hosts without our metrics can count from the logs.

/// The answer header naming the guard (one of [`REASONS`]).
pub const HEADER: &str = "set-my-phone-refusal";

/// Every reason, in the order docs/api.md lists the guards.
pub const REASONS: &[&str] = &[
    "cooldown",
    "hourly_cap",
    "region_not_allowed",
    "number_hour",
    "number_day",
    "range_hour",
    "org_hour",
    "deployment_hour",
    "pumping_tripped",
    "pumping_block",
];

/// The reason in a header value, if it is one of ours (hosts count nothing else).
pub fn known(value: &str) -> Option<&'static str> {
    REASONS.iter().copied().find(|reason| *reason == value)
}
