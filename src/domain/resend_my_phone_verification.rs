//! ResendMyPhoneVerification: a fresh code for a number not yet verified.

use super::code::FreshCode;
use super::{Caller, Details, SmsJob, audit, change_with_events, sms_limits};
use crate::error::Error;
use crate::record::EventKind;

/// ResendMyPhoneVerification: a fresh code replaces the pending one, within the guards.
pub fn resend_my_phone_verification(caller: &Caller) -> Result<(Details, SmsJob), Error> {
    const NOT_FOUND: Error = Error::PhoneNotFound("COMMAND-2b7Hf");
    let fresh = FreshCode::new(caller)?;
    // The limits across accounts count per number: find it first (one read; resends are rare).
    let pending = caller
        .updater()
        .read(&caller.record_key)?
        .and_then(|record| record.phone)
        .ok_or(NOT_FOUND)?;
    if pending.verified {
        return Err(Error::PhoneAlreadyVerified);
    }
    let calling_code = crate::number::calling_code_of(&pending.number).unwrap_or_default();
    let reservation = sms_limits::reserve(caller, &pending.number, calling_code, fresh.now)
        .inspect_err(|error| audit::refusal(caller, fresh.now, Some(&pending.number), error))?;
    // The number the refused code was for, as the record held it (for the audit line).
    let mut number = None;
    let result = caller
        .updater()
        .update(&caller.record_key, &fresh.operation, |current| {
            let mut record = current.ok_or(NOT_FOUND)?;
            let phone = record.phone.clone().ok_or(NOT_FOUND)?;
            if phone.verified {
                return Err(Error::PhoneAlreadyVerified);
            }
            if phone.number != pending.number {
                // Changed since the read: the slots taken were for another number.
                return Err(Error::TooMuchContention);
            }
            number = Some(phone.number.clone());
            let last = phone.number.clone();
            fresh.issue(&mut record, phone, caller)?;
            // Upstream records a resent code as a new code.
            change_with_events(caller, record, &[EventKind::CodeAdded], Some(&last), ())
        });
    let updated = result.inspect_err(|error| {
        audit::refusal(caller, fresh.now, number.as_deref(), error);
    })?;
    reservation.keep();
    audit::stored(&updated, 1);
    let details = Details::of(&updated).ok_or(Error::TooMuchContention)?;
    let recipient = updated
        .record
        .as_ref()
        .and_then(|r| r.phone.as_ref())
        .map(|p| p.number.clone());
    let job = fresh.into_job(caller, &recipient.unwrap_or_default(), details.sequence);
    Ok((details, job))
}
