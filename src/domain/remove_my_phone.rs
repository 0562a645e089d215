//! RemoveMyPhone: forget the number.

use super::{Caller, Details, audit, write};
use crate::error::Error;
use crate::record::EventKind;

/// RemoveMyPhone: forgets the number and any pending code; the same number can be set again.
/// The record of recently issued codes stays, so remove-and-set cannot dodge the hourly cap.
pub fn remove_my_phone(caller: &Caller) -> Result<Details, Error> {
    const NOT_FOUND: Error = Error::PhoneNotFound("COMMAND-p6rsc");
    let operation = caller.services.random.operation_id();
    let updated = caller
        .updater()
        .update(&caller.record_key, &operation, |current| {
            let mut record = current.ok_or(NOT_FOUND)?;
            let phone = record.phone.take().ok_or(NOT_FOUND)?;
            write(
                caller,
                record,
                &[EventKind::Removed],
                Some(&phone.number),
                (),
            )
        })?;
    audit::stored(&updated, 1);
    Details::of(&updated).ok_or(Error::TooMuchContention)
}
