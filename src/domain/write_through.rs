//! The phone lifecycle's side of the write-through to ZITADEL (`crate::zitadel`): a number is
//! written there when its code is accepted here and before anything is stored, removed there
//! before here, and read from there when no change is pending here. SetMyPhone and resends do
//! not call ZITADEL: it keeps the old verified number until the new one is verified, so ZITADEL
//! never sends anything to a number nobody has proven. Each call is an audit line
//! (`user.human.phone.synced` or `…sync_failed`), logged and not stored.

use super::audit::{self, Unstored};
use super::code::{Judge, usable};
use super::{Caller, PhoneView};
use crate::error::Error;
use crate::record::{EventKind, UserRecord};
use crate::time::Timestamp;
use crate::zitadel::{Zitadel, ZitadelPhone};

/// Whether `record`'s pending code is `input` and still usable: what VerifyMyPhone would accept.
pub(super) fn code_would_verify(
    record: &UserRecord,
    caller: &Caller,
    judge: &Judge,
    input: &str,
    now: Timestamp,
) -> Option<String> {
    let phone = record.phone.as_ref().filter(|phone| !phone.verified)?;
    let code = phone.code.as_ref()?;
    (usable(code, caller, now) && judge.approves(caller, code, input)).then(|| phone.number.clone())
}

/// Writes `number` to ZITADEL as the caller's verified phone.
pub(super) fn write_verified(
    caller: &Caller,
    zitadel: &Zitadel,
    number: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let result = zitadel.set_verified_phone(&caller.principal.user_id, number);
    log(caller, now, Some(number), "verify", &result);
    result?;
    zitadel.remember_phone(
        &caller.record_key,
        Some(ZitadelPhone {
            phone: number.to_owned(),
            verified: true,
        }),
    );
    Ok(())
}

/// Removes the caller's phone in ZITADEL; answers whether ZITADEL had one.
pub(super) fn remove(caller: &Caller, zitadel: &Zitadel, now: Timestamp) -> Result<bool, Error> {
    let result = zitadel.remove_phone(&caller.principal.user_id);
    log(caller, now, None, "remove", &result);
    let had = result?;
    zitadel.remember_phone(&caller.record_key, None);
    Ok(had)
}

/// The phone GetMyPhone answers: ZITADEL's (read through a short cache), unless a change is
/// pending here (a number set and not yet verified), which is the caller's to see.
pub(super) fn phone_for_get(
    caller: &Caller,
    zitadel: &Zitadel,
    local: Option<PhoneView>,
) -> Result<Option<PhoneView>, Error> {
    if local.as_ref().is_some_and(|phone| !phone.is_phone_verified) {
        return Ok(local);
    }
    let held = zitadel.cached_phone(&caller.principal.user_id, &caller.record_key)?;
    Ok(held.map(|held| PhoneView {
        phone: held.phone,
        is_phone_verified: held.verified,
    }))
}

/// The audit line of one write-through call: `synced`, or `sync_failed` with why.
fn log<T>(
    caller: &Caller,
    now: Timestamp,
    number: Option<&str>,
    operation: &'static str,
    result: &Result<T, Error>,
) {
    let (kind, reason) = match result {
        Ok(_) => (EventKind::Synced, operation),
        Err(Error::ZitadelUnavailable(_)) => (EventKind::SyncFailed, "unavailable"),
        Err(Error::ZitadelDenied(_)) => (EventKind::SyncFailed, "denied"),
        Err(_) => (EventKind::SyncFailed, "refused"),
    };
    audit::unstored(
        caller,
        now,
        Unstored {
            kind,
            number,
            code_sequence: None,
            reason: Some(reason),
            provider_id: None,
            sms: None,
        },
    );
}
