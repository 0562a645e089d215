//! Delivering a code after the answer is sent, and filing the outcome on the pending code.

use super::Caller;
use super::audit::{self, Unstored};
use crate::log::{self, Level};
use crate::record::{Delivery, EventKind};
use crate::sms::{Message, SendError, Sms};
use crate::store::Change;
use serde_json::Value;

/// Work left after the answer is sent: deliver a code and file the outcome on the record.
pub struct SmsJob {
    pub(crate) record_key: String,
    pub(crate) operation: String,
    pub message: Message,
}

/// After-response work: deliver a code by SMS and record the outcome.
pub struct Followup<'a> {
    pub(crate) job: SmsJob,
    pub(crate) caller: Caller<'a>,
}

impl Followup<'_> {
    pub fn run(self, sms: &dyn Sms) {
        self.job.deliver(sms, &self.caller);
    }
}

impl SmsJob {
    /// Sends the message and files the outcome on the pending code it belongs to. Never fails
    /// the request (it has been answered already): problems are logged.
    pub fn deliver(self, sms: &dyn Sms, caller: &Caller) {
        let updater = caller.updater();
        let outcome = sms.send(&self.message);
        let at = updater.clock.now();
        let delivery = match outcome {
            Ok(provider_id) => Delivery::Sent { provider_id, at },
            Err(SendError::Retryable(reason)) => Delivery::Failed {
                retryable: true,
                reason,
                at,
            },
            Err(SendError::Permanent(reason)) => Delivery::Failed {
                retryable: false,
                reason,
                at,
            },
        };
        if let Delivery::Failed { reason, .. } = &delivery {
            // Providers' error texts may quote the number: scrubbed.
            log::line(
                Level::Warn,
                "SMS not delivered",
                &[(
                    "reason",
                    Value::from(log::scrub(reason, &[&self.message.code])),
                )],
            );
        }
        // The sequence of the code this outcome is about, found while filing it.
        let mut code_sequence = None;
        let operation = format!("{}/delivery", self.operation);
        let result = updater.update(&self.record_key, &operation, |current| {
            let Some(mut record) = current else {
                return Ok(Change::Keep(()));
            };
            code_sequence = record.find_operation(&self.operation).map(|op| op.sequence);
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
        // A delivery changes no phone state, so it takes no sequence of its own (answers' and
        // GetMyPhone's sequences stay independent of when an SMS goes out): it is logged,
        // naming the code's sequence.
        let (kind, reason) = match &delivery {
            Delivery::Failed {
                retryable: true, ..
            } => (EventKind::CodeDeliveryFailed, Some("retryable")),
            Delivery::Failed { .. } => (EventKind::CodeDeliveryFailed, Some("permanent")),
            _ => (EventKind::CodeSent, None),
        };
        let event = Unstored {
            kind,
            number: Some(&self.message.recipient),
            code_sequence,
            reason,
        };
        audit::unstored(caller, at, event);
    }
}
