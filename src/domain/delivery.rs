//! Delivering a code after the answer is sent, and filing the outcome on the pending code.

use super::Caller;
use crate::record::Delivery;
use crate::sms::{Message, SendError, Sms};
use crate::store::{Change, Updater};

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
        self.job.deliver(sms, &self.caller.updater());
    }
}

impl SmsJob {
    /// Sends the message and files the outcome on the pending code it belongs to. Never fails
    /// the request (it has been answered already): problems are logged.
    pub fn deliver(self, sms: &dyn Sms, updater: &Updater) {
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
            eprintln!(
                "set-my-phone: SMS for {} not delivered: {reason}",
                self.record_key
            );
        }
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
            eprintln!(
                "set-my-phone: could not record SMS outcome for {}: {e}",
                self.record_key
            );
        }
    }
}
