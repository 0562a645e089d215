//! SetMyPhone: a new number, unverified, with a fresh code on its way.

use super::code::FreshCode;
use super::{Caller, Details, SmsJob, audit, change_with_events, sms_limits};
use crate::error::Error;
use crate::number;
use crate::record::{EventKind, Phone};

/// SetMyPhone: normalise, check the limits across accounts, refuse an unchanged number, store
/// the number unverified with a fresh code (two events), and hand back the SMS to send after
/// answering.
pub fn set_my_phone(caller: &Caller, input: &str) -> Result<(Details, SmsJob), Error> {
    let number = number::normalize(input, caller.config.default_region)?;
    if !number.is_allowed(&caller.config.allowed_regions) {
        let error = Error::RegionNotAllowed;
        audit::refusal(
            caller,
            caller.services.clock.now(),
            Some(number.as_str()),
            &error,
        );
        return Err(error);
    }
    let fresh = FreshCode::new(caller)?;
    // Slots in the limits across accounts, taken before anything is stored and given back
    // (when dropped) if the number is not changed after all.
    let reservation =
        sms_limits::reserve(caller, number.as_str(), number.calling_code(), fresh.now)
            .inspect_err(|error| audit::refusal(caller, fresh.now, Some(number.as_str()), error))?;
    let result = caller
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
            change_with_events(
                caller,
                record,
                &[EventKind::PhoneChanged, EventKind::CodeAdded],
                Some(number.as_str()),
                (),
            )
        });
    let updated = result.inspect_err(|error| {
        audit::refusal(caller, fresh.now, Some(number.as_str()), error);
    })?;
    reservation.keep();
    audit::stored(&updated, 2);
    let details = Details::of(&updated).ok_or(Error::TooMuchContention)?;
    let job = fresh.into_job(caller, number.as_str(), details.sequence);
    Ok((details, job))
}
