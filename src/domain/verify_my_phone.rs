//! VerifyMyPhone: the code that proves the caller receives SMS at the number.

use super::audit::{self, Unstored};
use super::code::Judge;
use super::{Caller, Details, change_with_events};
use super::{pumping, write_through};
use crate::error::Error;
use crate::record::EventKind;

/// Upstream's bound on VerifyMyPhoneRequest.code.
const MAX_CODE_RUNES: usize = 200;

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
    let operation = caller.services.random.operation_id();
    let now = caller.services.clock.now();
    let max_attempts = caller.config.code_max_attempts;
    // One read before the update, when the write-through or a provider that checks its own
    // codes needs to know the pending code; otherwise the update's read is the only one.
    let record = if caller.zitadel().is_some() || caller.services.sms.makes_codes() {
        caller.updater().read(&caller.record_key)?
    } else {
        None
    };
    let judge = Judge::new(caller, record.as_ref(), &input, now)?;
    // With the write-through on, the number goes to ZITADEL before the code is used up here:
    // when ZITADEL fails, nothing changes and the code stays usable (no attempt counted).
    if let Some(zitadel) = caller.zitadel()
        && let Some(record) = &record
        && let Some(number) = write_through::code_would_verify(record, caller, &judge, &input, now)
    {
        write_through::write_verified(caller, &zitadel, &number, now)?;
    }
    // The number whose code was refused for being void (for the audit line).
    let mut void_for = None;
    let result = caller
        .updater()
        .update(&caller.record_key, &operation, |current| {
            let mut record = current.ok_or(Error::CodeNotFound)?;
            let phone = record
                .phone
                .as_mut()
                .filter(|phone| !phone.verified)
                .ok_or(Error::CodeNotFound)?;
            let number = phone.number.clone();
            let code = phone.code.as_mut().ok_or(Error::CodeNotFound)?;
            if code.failed_attempts >= max_attempts {
                // Void: refused without a write, so endless guessing costs no writes.
                void_for = Some(number);
                return Err(Error::CodeInvalid);
            }
            if judge.approves(caller, code, &input) && now <= code.expires {
                phone.verified = true;
                phone.code = None;
                change_with_events(
                    caller,
                    record,
                    &[EventKind::Verified],
                    Some(&number),
                    Ok(()),
                )
            } else {
                code.failed_attempts += 1;
                // Upstream records the failed verification as an event, and so do we; the
                // attempt that reaches the limit also voids the code, a second event.
                let kinds: &[EventKind] = if code.failed_attempts >= max_attempts {
                    &[EventKind::VerificationFailed, EventKind::CodeVoided]
                } else {
                    &[EventKind::VerificationFailed]
                };
                let outcome = Err((Error::CodeInvalid, kinds.len() as u64));
                change_with_events(caller, record, kinds, Some(&number), outcome)
            }
        });
    let updated = result.inspect_err(|error| {
        if let (Error::CodeInvalid, Some(number)) = (error, &void_for) {
            let event = Unstored {
                kind: EventKind::VerificationRefused,
                number: Some(number),
                code_sequence: None,
                reason: Some("code_void"),
                provider_id: None,
                sms: None,
            };
            audit::unstored(caller, now, event);
        }
    })?;
    let count = match &updated.value {
        Ok(()) => 1,
        Err((_, count)) => *count,
    };
    if updated.value.is_ok()
        && let Some(phone) = updated.record.as_ref().and_then(|r| r.phone.as_ref())
    {
        pumping::count_verified(caller, &phone.number, now);
    }
    audit::stored(&updated, count);
    let details = Details::of(&updated).ok_or(Error::TooMuchContention)?;
    updated.value.map(|()| details).map_err(|(error, _)| error)
}
