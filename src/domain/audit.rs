//! The audit log: each event as one JSON line (`crate::log::record`, `msg` = `audit`, with the
//! request's id), written once the change it records is stored.
//!
//! A line never holds a token, a code or a whole number: events keep only the number's last two
//! digits, and delivery failures say whether a retry can help, not the provider's text (which
//! may quote the number).

use super::Caller;
use crate::error::Error;
use crate::log::{self, Level};
use crate::record::{Event, EventKind, UserRecord, last_two_digits};
use crate::store::Updated;
use crate::time::Timestamp;
use serde::Serialize;

/// One audit line.
#[derive(Serialize)]
struct Line<'a> {
    /// The event's place in the user's sequence; absent for events that change nothing stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<u64>,
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    user: &'a str,
    org: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a str>,
    /// `…` and the number's last two digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    /// Delivery outcomes: the sequence of the code they report on.
    #[serde(skip_serializing_if = "Option::is_none")]
    code_sequence: Option<u64>,
    /// Refusals and failed deliveries: why, in a word.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// A sent SMS: the provider's id for it, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<&'a str>,
    /// A sent SMS: the language of its text, and the segments it was billed as (the text
    /// itself, which holds the code, is never logged).
    #[serde(skip_serializing_if = "Option::is_none")]
    language: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<usize>,
}

/// Writes the events of the operation `updated` recorded (`count` events ending at its
/// sequence). Nothing when nothing was written.
pub(crate) fn stored<T>(updated: &Updated<T>, count: u64) {
    let (Some(record), Some(operation)) = (&updated.record, &updated.operation) else {
        return;
    };
    for event in &record.events_ending_at(operation.sequence, count) {
        emit(&stored_line(record, event));
    }
}

fn stored_line<'a>(record: &'a UserRecord, event: &'a Event) -> Line<'a> {
    Line {
        sequence: Some(event.sequence),
        time: event.at.to_string(),
        kind: event.kind.key(),
        user: &record.user_id,
        org: &record.resource_owner,
        client: event.client.as_deref(),
        phone: event.last2.as_ref().map(|digits| format!("…{digits}")),
        code_sequence: None,
        reason: None,
        provider_id: None,
        language: None,
        segments: None,
    }
}

/// An event that changes nothing stored (a refusal, a delivery outcome): logged only.
pub(crate) struct Unstored<'a> {
    pub kind: EventKind,
    pub number: Option<&'a str>,
    pub code_sequence: Option<u64>,
    pub reason: Option<&'static str>,
    pub provider_id: Option<&'a str>,
    /// A sent SMS's language and segment count.
    pub sms: Option<(&'a str, usize)>,
}

/// Writes an event that is not kept in the record.
pub(crate) fn unstored(caller: &Caller, at: Timestamp, event: Unstored) {
    emit(&Line {
        sequence: None,
        time: at.to_string(),
        kind: event.kind.key(),
        user: &caller.principal.user_id,
        org: &caller.principal.resource_owner,
        client: caller.principal.client_id.as_deref(),
        phone: event
            .number
            .map(|number| format!("…{}", last_two_digits(number))),
        code_sequence: event.code_sequence,
        reason: event.reason,
        provider_id: event.provider_id,
        language: event.sms.map(|(language, _)| language),
        segments: event.sms.map(|(_, segments)| segments),
    });
}

/// Logs a refusal by an abuse guard (cooldown, caps, limits across accounts, the pumping guard,
/// allow-list) of a code for `number`;
/// other errors are not events.
pub(crate) fn refusal(caller: &Caller, at: Timestamp, number: Option<&str>, error: &Error) {
    let Some(reason) = error.refusal_reason() else {
        return;
    };
    unstored(
        caller,
        at,
        Unstored {
            kind: EventKind::CodeRefused,
            number,
            code_sequence: None,
            reason: Some(reason),
            provider_id: None,
            sms: None,
        },
    );
}

fn emit(line: &Line) {
    log::record(Level::Info, "audit", line);
}
