//! GetMyPhone: the caller's number and whether it is verified.

use super::{Caller, Details, PhoneView, write_through};
use crate::error::Error;
use crate::record::RecordHead;
use crate::store::Change;

/// GetMyPhone: the phone, if any, and the record's details. A first call creates the record.
pub fn get_my_phone(caller: &Caller) -> Result<(Details, Option<PhoneView>), Error> {
    let (details, phone) = local(caller)?;
    match caller.zitadel() {
        // With the write-through on, ZITADEL's phone unless a change is pending here.
        Some(zitadel) => Ok((
            details,
            write_through::phone_for_get(caller, &zitadel, phone)?,
        )),
        None => Ok((details, phone)),
    }
}

/// The phone as this service holds it.
fn local(caller: &Caller) -> Result<(Details, Option<PhoneView>), Error> {
    let updater = caller.updater();
    // Only the record's head: GetMyPhone needs none of the audit trail or code state.
    if let Some(head) = updater.read_head(&caller.record_key)? {
        return Ok(answer(head));
    }
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
    let record = updated.record.ok_or(Error::TooMuchContention)?;
    let phone = record.phone.as_ref().map(|phone| PhoneView {
        phone: phone.number.clone(),
        is_phone_verified: phone.verified,
    });
    Ok((Details::of_record(&record), phone))
}

fn answer(head: RecordHead) -> (Details, Option<PhoneView>) {
    let details = Details {
        sequence: head.sequence,
        creation_date: head.created,
        change_date: head.changed,
        resource_owner: head.resource_owner,
    };
    let phone = head.phone.map(|phone| PhoneView {
        phone: phone.number,
        is_phone_verified: phone.verified,
    });
    (details, phone)
}
