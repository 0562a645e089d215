//! The phone RPCs on plain Rust types: the behaviour, independent of JSON or gRPC encoding.

use crate::api::Caller;
use crate::code;
use crate::error::Error;
use crate::guard;
use crate::phone;
use crate::record::{Delivery, PendingCode, Phone, UserRecord};
use crate::sms::{self, Message, SendError, Sms};
use crate::store::{Change, Updated, Updater};
use crate::time::Timestamp;

/// Upstream's bound on VerifyMyPhoneRequest.code.
const MAX_CODE_RUNES: usize = 200;

/// Where the HMAC key for codes lives when `PHONE_CODE_SECRET` is not set (no SMS provider).
const STORED_SECRET_KEY: &str = "secret:phone-code-hmac";

/// zitadel.v1.ObjectDetails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Details {
    pub sequence: u64,
    pub creation_date: Timestamp,
    pub change_date: Timestamp,
    pub resource_owner: String,
}

/// zitadel.user.v1.Phone; `None` in a GetMyPhone answer means the user has no phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneView {
    pub phone: String,
    pub is_phone_verified: bool,
}

/// Work left after the answer is sent: deliver a code and file the outcome on the record.
pub struct SmsJob {
    record_key: String,
    operation: String,
    pub message: Message,
}

impl Details {
    fn of(updated: &Updated<impl Sized>) -> Option<Details> {
        let record = updated.record.as_ref()?;
        let operation = updated.operation.as_ref();
        Some(Details {
            sequence: operation.map_or(record.sequence, |op| op.sequence),
            creation_date: record.created,
            change_date: operation.map_or(record.changed, |op| op.at),
            resource_owner: record.resource_owner.clone(),
        })
    }

    fn of_record(record: &UserRecord) -> Details {
        Details {
            sequence: record.sequence,
            creation_date: record.created,
            change_date: record.changed,
            resource_owner: record.resource_owner.clone(),
        }
    }
}

/// A code made ready before an update: the plain code (for the SMS) and its stored form.
struct FreshCode {
    code: String,
    hash: String,
    operation: String,
    now: Timestamp,
}

impl FreshCode {
    fn new(caller: &Caller) -> Result<Self, Error> {
        let secret = code_secret(caller)?;
        let code = code::generate(caller.services.random, caller.config.code_length);
        Ok(FreshCode {
            hash: code::hash(&secret, &caller.record_key, &code),
            code,
            operation: caller.services.random.operation_id(),
            now: caller.services.clock.now(),
        })
    }

    /// Puts the code on `record` as its pending code, if the abuse guards allow a new one.
    fn issue(&self, record: &mut UserRecord, phone: Phone, caller: &Caller) -> Result<(), Error> {
        guard::check_new_code(record, &caller.config, self.now)?;
        guard::note_new_code(record, self.now);
        record.phone = Some(Phone {
            code: Some(PendingCode {
                hash: self.hash.clone(),
                created: self.now,
                expires: self.now.plus_seconds(caller.config.code_expiry_seconds),
                failed_attempts: 0,
                issued_by: self.operation.clone(),
                delivery: Delivery::Pending,
            }),
            ..phone
        });
        Ok(())
    }

    fn into_job(self, caller: &Caller, recipient: &str) -> SmsJob {
        SmsJob {
            record_key: caller.record_key.clone(),
            operation: self.operation,
            message: Message {
                recipient: recipient.into(),
                text: sms::phone_code_text(&self.code),
                code: self.code,
                user_id: caller.principal.user_id.clone(),
                org_id: caller.principal.resource_owner.clone(),
            },
        }
    }
}

fn write<T>(record: UserRecord, events: u64, value: T) -> Result<Change<T>, Error> {
    Ok(Change::Write {
        record,
        events,
        value,
    })
}

/// SetMyPhone: normalise, refuse an unchanged number, store the number unverified with a
/// fresh code (two events), and hand back the SMS to send after answering.
pub fn set_my_phone(caller: &Caller, input: &str) -> Result<(Details, SmsJob), Error> {
    let number = phone::normalize(input, caller.config.default_region)?;
    if !number.is_allowed(&caller.config.allowed_regions) {
        return Err(Error::RegionNotAllowed);
    }
    let fresh = FreshCode::new(caller)?;
    let updated = caller
        .updater()
        .update(&caller.record_key, &fresh.operation, |current| {
            let mut record = current.unwrap_or_else(|| caller.new_record(fresh.now));
            if record
                .phone
                .as_ref()
                .is_some_and(|phone| phone.number == number.as_str())
            {
                return Err(Error::PhoneNotChanged);
            }
            let phone = Phone {
                number: number.as_str().into(),
                verified: false,
                code: None,
            };
            fresh.issue(&mut record, phone, caller)?;
            // Upstream writes two events: phone changed, code added.
            write(record, 2, ())
        })?;
    let details = Details::of(&updated).ok_or(Error::TooMuchContention)?;
    Ok((details, fresh.into_job(caller, number.as_str())))
}

/// VerifyMyPhone: checks the code against the pending one in constant time. Success marks
/// the phone verified and voids the code; a wrong or expired code counts a failed attempt,
/// and after `code_max_attempts` of them the code is void until a new one is sent.
pub fn verify_my_phone(caller: &Caller, input: &str) -> Result<Details, Error> {
    let input = input.trim();
    match input.chars().count() {
        0 => return Err(Error::CodeEmpty),
        runes if runes > MAX_CODE_RUNES => return Err(Error::CodeLength),
        _ => {}
    }
    // Codes are upper case; accept what people type.
    let input = input.to_ascii_uppercase();
    let secret = code_secret(caller)?;
    let operation = caller.services.random.operation_id();
    let now = caller.services.clock.now();
    let max_attempts = caller.config.code_max_attempts;
    let updated = caller
        .updater()
        .update(&caller.record_key, &operation, |current| {
            let mut record = current.ok_or(Error::CodeNotFound)?;
            let phone = record
                .phone
                .as_mut()
                .filter(|phone| !phone.verified)
                .ok_or(Error::CodeNotFound)?;
            let code = phone.code.as_mut().ok_or(Error::CodeNotFound)?;
            if code.failed_attempts >= max_attempts {
                return Err(Error::CodeInvalid);
            }
            let matches = code::matches(&secret, &caller.record_key, &input, &code.hash);
            if matches && now <= code.expires {
                phone.verified = true;
                phone.code = None;
                write(record, 1, Ok(()))
            } else {
                code.failed_attempts += 1;
                // Upstream records the failed verification as an event, and so do we.
                write(record, 1, Err(Error::CodeInvalid))
            }
        })?;
    let details = Details::of(&updated).ok_or(Error::TooMuchContention)?;
    updated.value.map(|()| details)
}

/// ResendMyPhoneVerification: a fresh code replaces the pending one, within the guards.
pub fn resend_my_phone_verification(caller: &Caller) -> Result<(Details, SmsJob), Error> {
    const NOT_FOUND: Error = Error::PhoneNotFound("COMMAND-2b7Hf");
    let fresh = FreshCode::new(caller)?;
    let updated = caller
        .updater()
        .update(&caller.record_key, &fresh.operation, |current| {
            let mut record = current.ok_or(NOT_FOUND)?;
            let phone = record.phone.clone().ok_or(NOT_FOUND)?;
            if phone.verified {
                return Err(Error::PhoneAlreadyVerified);
            }
            fresh.issue(&mut record, phone, caller)?;
            write(record, 1, ())
        })?;
    let details = Details::of(&updated).ok_or(Error::TooMuchContention)?;
    let recipient = updated
        .record
        .as_ref()
        .and_then(|r| r.phone.as_ref())
        .map(|p| p.number.clone());
    Ok((
        details,
        fresh.into_job(caller, &recipient.unwrap_or_default()),
    ))
}

/// RemoveMyPhone: forgets the number and any pending code; the same number can be set again.
/// The record of recently issued codes stays, so remove-and-set cannot dodge the hourly cap.
pub fn remove_my_phone(caller: &Caller) -> Result<Details, Error> {
    const NOT_FOUND: Error = Error::PhoneNotFound("COMMAND-p6rsc");
    let operation = caller.services.random.operation_id();
    let updated = caller
        .updater()
        .update(&caller.record_key, &operation, |current| {
            let mut record = current.ok_or(NOT_FOUND)?;
            record.phone.take().ok_or(NOT_FOUND)?;
            write(record, 1, ())
        })?;
    Details::of(&updated).ok_or(Error::TooMuchContention)
}

/// GetMyPhone: the phone, if any, and the record's details. A first call creates the record.
pub fn get_my_phone(caller: &Caller) -> Result<(Details, Option<PhoneView>), Error> {
    let updater = caller.updater();
    let record = match updater.read(&caller.record_key)? {
        Some(record) => record,
        None => {
            let operation = caller.services.random.operation_id();
            let now = caller.services.clock.now();
            let updated = updater.update(&caller.record_key, &operation, |current| {
                Ok(match current {
                    Some(_) => Change::Keep(()),
                    None => Change::Write {
                        record: caller.new_record(now),
                        events: 0,
                        value: (),
                    },
                })
            })?;
            updated.record.ok_or(Error::TooMuchContention)?
        }
    };
    let phone = record.phone.as_ref().map(|phone| PhoneView {
        phone: phone.number.clone(),
        is_phone_verified: phone.verified,
    });
    Ok((Details::of_record(&record), phone))
}

/// The HMAC key: configured, or (with no SMS provider) generated once and kept in the store.
fn code_secret(caller: &Caller) -> Result<Vec<u8>, Error> {
    if let Some(secret) = &caller.config.code_secret {
        return Ok(secret.clone());
    }
    caller.updater().create_once(STORED_SECRET_KEY, || {
        let mut secret = vec![0u8; 32];
        caller.services.random.fill(&mut secret);
        secret
    })
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
