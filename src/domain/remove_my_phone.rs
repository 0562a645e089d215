//! RemoveMyPhone: forget the number.

use super::{Caller, Details, audit, change_with_events, write_through};
use crate::error::Error;
use crate::record::EventKind;

/// RemoveMyPhone: forgets the number and any pending code; the same number can be set again.
/// The record of recently issued codes stays, so remove-and-set cannot dodge the hourly cap.
pub fn remove_my_phone(caller: &Caller) -> Result<Details, Error> {
    const NOT_FOUND: Error = Error::PhoneNotFound("COMMAND-p6rsc");
    let now = caller.services.clock.now();
    // With the write-through on, ZITADEL first: a phone it still held would show again.
    let zitadel_had_one = match caller.zitadel() {
        Some(zitadel) => write_through::remove(caller, &zitadel, now)?,
        None => false,
    };
    let operation = caller.services.random.operation_id();
    let updated = caller
        .updater()
        .update(&caller.record_key, &operation, |current| {
            let mut record = match current {
                Some(record) => record,
                // A phone only ZITADEL had (an administrator set it): removed, and said so here.
                None if zitadel_had_one => caller.new_record(now),
                None => return Err(NOT_FOUND),
            };
            let number = match record.phone.take() {
                Some(phone) => Some(phone.number),
                None if zitadel_had_one => None,
                None => return Err(NOT_FOUND),
            };
            change_with_events(caller, record, &[EventKind::Removed], number.as_deref(), ())
        })?;
    audit::stored(&updated, 1);
    Details::of(&updated).ok_or(Error::TooMuchContention)
}
