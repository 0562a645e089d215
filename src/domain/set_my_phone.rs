//! SetMyPhone: a new number, unverified, with a fresh code on its way.

use super::code::FreshCode;
use super::{Caller, Details, SmsJob, write};
use crate::error::Error;
use crate::number;
use crate::record::Phone;

/// SetMyPhone: normalise, refuse an unchanged number, store the number unverified with a
/// fresh code (two events), and hand back the SMS to send after answering.
pub fn set_my_phone(caller: &Caller, input: &str) -> Result<(Details, SmsJob), Error> {
    let number = number::normalize(input, caller.config.default_region)?;
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
