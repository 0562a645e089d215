//! ResendMyPhoneVerification: a fresh code for a number not yet verified.

use super::code::FreshCode;
use super::{Caller, Details, SmsJob, write};
use crate::error::Error;

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
