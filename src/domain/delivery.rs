//! Delivering a code after the answer is sent. A failed delivery is filed on the pending code
//! (operators and support see it in the record); a successful one is only logged, so that a
//! SetMyPhone costs one durable write, not two.

use super::Caller;
use super::audit::{self, Unstored};
use crate::log::{self, Level};
use crate::record::{Delivery, EventKind};
use crate::sms::{Message, SendError, Sms};
use crate::store::Change;
use crate::time::Timestamp;
use serde_json::Value;

/// Work left after the answer is sent: deliver a code, and file a failure on the record.
pub struct SmsJob {
    pub(crate) record_key: String,
    pub(crate) operation: String,
    /// The sequence of the `code.added` event of this code (named in the delivery's audit line).
    pub(crate) code_sequence: u64,
    pub message: Message,
}

/// After-response work: deliver a code by SMS and report the outcome.
pub struct Followup<'a> {
    pub(crate) job: SmsJob,
    pub(crate) caller: Caller<'a>,
}

impl Followup<'_> {
    pub fn run(self) {
        self.job.deliver(self.caller.services.sms, &self.caller);
    }
}

impl SmsJob {
    /// Sends the message and reports the outcome: an audit line either way, and a failure also
    /// filed on the pending code it belongs to. Never fails the request (it has been answered
    /// already): problems are logged.
    pub fn deliver(self, sms: &dyn Sms, caller: &Caller) {
        let at = caller.services.clock.now();
        let (retryable, reason) = match sms.send(&self.message) {
            Ok(provider_id) => {
                // Sent: nothing to store (the code is already pending, and the record answers
                // no question about its SMS), so no second durable write per code.
                let provider_id = loggable_provider_id(&provider_id, &self.message);
                let event = Unstored {
                    kind: EventKind::CodeSent,
                    number: Some(&self.message.recipient),
                    code_sequence: Some(self.code_sequence),
                    reason: None,
                    provider_id: provider_id.as_deref(),
                    sms: Some((
                        &self.message.language,
                        crate::sms_text::segments(&self.message.text).1,
                    )),
                };
                audit::unstored(caller, at, event);
                return;
            }
            Err(SendError::Retryable(reason)) => (true, reason),
            Err(SendError::Permanent(reason)) => (false, reason),
        };
        // Providers' error texts may quote the number: scrubbed.
        log::line(
            Level::Warn,
            "SMS not delivered",
            &[(
                "reason",
                Value::from(log::scrub(&reason, &[&self.message.code])),
            )],
        );
        self.file_failure(caller, retryable, reason, at);
        let event = Unstored {
            kind: EventKind::CodeDeliveryFailed,
            number: Some(&self.message.recipient),
            code_sequence: Some(self.code_sequence),
            reason: Some(if retryable { "retryable" } else { "permanent" }),
            provider_id: None,
            sms: None,
        };
        audit::unstored(caller, at, event);
    }

    /// Files a failed delivery on the pending code, unless that code was replaced or used
    /// meanwhile.
    fn file_failure(&self, caller: &Caller, retryable: bool, reason: String, at: Timestamp) {
        let delivery = Delivery::Failed {
            retryable,
            reason,
            at,
        };
        let updater = caller.updater();
        let operation = format!("{}/delivery", self.operation);
        let result = updater.update(&self.record_key, &operation, |current| {
            let Some(mut record) = current else {
                return Ok(Change::Keep(()));
            };
            let Some(code) = record
                .phone
                .as_mut()
                .and_then(|phone| phone.code.as_mut())
                .filter(|code| code.issued_by == self.operation)
            else {
                // The code was replaced or used meanwhile; its outcome no longer matters.
                return Ok(Change::Keep(()));
            };
            code.delivery = delivery.clone();
            Ok(Change::Write {
                record,
                events: 0,
                value: (),
            })
        });
        if let Err(e) = result {
            log::line(
                Level::Error,
                "could not record the SMS outcome",
                &[("error", Value::from(log::scrub(&e.to_string(), &[])))],
            );
        }
    }
}

/// The provider's id for a sent message, fit for the audit line: short, of the characters ids
/// are made of (Twilio's `SM…`, a webhook's `x-message-id`), and quoting neither the code nor
/// the number; otherwise left out.
fn loggable_provider_id(id: &str, message: &Message) -> Option<String> {
    let national = message.recipient.trim_start_matches('+');
    let tail = national
        .len()
        .checked_sub(6)
        .and_then(|at| national.get(at..));
    let fits = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        && !id
            .to_ascii_uppercase()
            .contains(&message.code.to_ascii_uppercase())
        && tail.is_none_or(|tail| !id.contains(tail));
    fits.then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_that_quote_the_number_or_the_code_are_left_out() {
        let message = Message {
            recipient: "+41446681800".into(),
            text: "Your code is K7Q2ZP".into(),
            code: "K7Q2ZP".into(),
            user_id: "u".into(),
            org_id: "o".into(),
            language: "en".into(),
        };
        let logged = |id: &str| loggable_provider_id(id, &message);
        assert_eq!(logged("SM0123abcd").as_deref(), Some("SM0123abcd"));
        assert_eq!(logged("msg_1.2:3-4").as_deref(), Some("msg_1.2:3-4"));
        for id in [
            "msg-41446681800",
            "id-6681800",
            "id-k7q2zp",
            "an id with spaces",
            "id\n{}",
            "",
        ] {
            assert_eq!(logged(id), None, "{id:?}");
        }
        assert_eq!(logged(&"x".repeat(128)).map(|id| id.len()), Some(128));
        assert_eq!(logged(&"x".repeat(129)), None);
    }
}
