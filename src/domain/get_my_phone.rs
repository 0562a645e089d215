//! GetMyPhone: the caller's number and whether it is verified.

use super::{Caller, Details, PhoneView};
use crate::error::Error;
use crate::store::Change;

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
