//! VerifyMyPhone: the code that proves the caller receives SMS at the number.

use super::code;
use super::{Caller, Details, code_secret, write};
use crate::error::Error;

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
