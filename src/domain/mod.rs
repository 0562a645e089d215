//! The phone lifecycle's rules on plain Rust types, free of wire formats: one file per RPC
//! (`set_my_phone.rs`, `verify_my_phone.rs`, ...), the abuse guards (per user in `user_limits.rs`,
//! across accounts in `sms_limits.rs` and `pumping.rs`), code issuing
//! and checking (`code.rs`), delivering a code after the answer (`delivery.rs`), and the audit
//! trail (`audit.rs`, served by `list_my_user_changes.rs`). The API layer (`crate::api`)
//! authenticates the caller, decodes the request and encodes the answer.

pub(crate) mod audit;
pub(crate) mod code;
mod delivery;
mod get_my_phone;
#[cfg(test)]
mod history_tests;
#[cfg(test)]
mod limits_tests;
mod list_my_user_changes;
#[cfg(test)]
mod provider_code_tests;
mod pumping;
mod remove_my_phone;
mod resend_my_phone_verification;
mod set_my_phone;
mod sms_limits;
#[cfg(test)]
mod tests;
pub(crate) mod user_limits;
mod verify_my_phone;
mod write_through;

pub use delivery::{Followup, SmsJob};
pub use get_my_phone::get_my_phone;
pub use list_my_user_changes::{ChangeQuery, ChangeView, list_my_user_changes};
pub use remove_my_phone::remove_my_phone;
pub use resend_my_phone_verification::resend_my_phone_verification;
pub use set_my_phone::set_my_phone;
pub use verify_my_phone::verify_my_phone;

use crate::auth::Principal;
use crate::config::Config;
use crate::error::Error;
use crate::platform::Services;
use crate::record::{EventKind, UserRecord};
use crate::store::{Change, KeyValue, Updated, Updater};
use crate::time::Timestamp;
use crate::zitadel::Zitadel;

/// Where the HMAC key for codes lives when `PHONE_CODE_SECRET` is not set (no SMS provider).
const STORED_SECRET_KEY: &str = "secret:phone-code-hmac";

/// An authenticated request: configuration, caller, and the caller's store.
pub struct Caller<'a> {
    pub services: &'a Services<'a>,
    pub config: Config,
    pub principal: Principal,
    pub record_key: String,
    kv: Box<dyn KeyValue>,
    /// The request's `Accept-Language`, for the code SMS when the token names no `locale`.
    accept_language: Option<String>,
}

impl<'a> Caller<'a> {
    /// The caller `principal`, whose record lives under `record_key` in `kv`.
    pub fn new(
        services: &'a Services<'a>,
        config: Config,
        principal: Principal,
        record_key: String,
        kv: Box<dyn KeyValue>,
    ) -> Self {
        Caller {
            services,
            config,
            principal,
            record_key,
            kv,
            accept_language: None,
        }
    }

    /// The request's `Accept-Language` header.
    pub fn with_accept_language(mut self, header: Option<&str>) -> Self {
        self.accept_language = header.map(str::to_owned);
        self
    }

    /// The language of this caller's code SMS (`sms_text.rs`).
    pub(crate) fn sms_language(&self) -> &'static str {
        self.config.sms_texts.language(
            self.principal.locale.as_deref(),
            self.accept_language.as_deref(),
        )
    }

    /// The caller's store, for counters shared across users (`sms_limits.rs`).
    pub(crate) fn kv(&self) -> &dyn KeyValue {
        self.kv.as_ref()
    }

    pub fn updater(&self) -> Updater<'_> {
        Updater {
            kv: self.kv.as_ref(),
            clock: self.services.clock,
            random: self.services.random,
            create_by_swap: self.config.create_by_swap,
        }
    }

    /// ZITADEL's user service, when the write-through is on (`ZITADEL_SYNC=on`).
    pub(crate) fn zitadel(&self) -> Option<Zitadel<'_>> {
        self.config.zitadel.as_ref().map(|settings| Zitadel {
            settings,
            http: self.services.http,
            kv: self.kv.as_ref(),
            clock: self.services.clock,
        })
    }

    pub fn new_record(&self, now: Timestamp) -> UserRecord {
        UserRecord::new(&self.principal.user_id, &self.principal.resource_owner, now)
    }
}

/// zitadel.v1.ObjectDetails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Details {
    pub sequence: u64,
    pub creation_date: Timestamp,
    pub change_date: Timestamp,
    pub resource_owner: String,
}

/// zitadel.user.v1.Phone; `None` in a GetMyPhone answer means the user has no phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneView {
    pub phone: String,
    pub is_phone_verified: bool,
}

impl Details {
    pub(crate) fn of(updated: &Updated<impl Sized>) -> Option<Details> {
        let record = updated.record.as_ref()?;
        let operation = updated.operation.as_ref();
        Some(Details {
            sequence: operation.map_or(record.sequence, |op| op.sequence),
            creation_date: record.created,
            change_date: operation.map_or(record.changed, |op| op.at),
            resource_owner: record.resource_owner.clone(),
        })
    }

    pub(crate) fn of_record(record: &UserRecord) -> Details {
        Details {
            sequence: record.sequence,
            creation_date: record.created,
            change_date: record.changed,
            resource_owner: record.resource_owner.clone(),
        }
    }
}

/// A record change that writes `record` with new events of `kinds` (about `number`, if any)
/// and answers `value`: the events go into the same compare-and-swap as the change.
pub(crate) fn change_with_events<T>(
    caller: &Caller,
    mut record: UserRecord,
    kinds: &[EventKind],
    number: Option<&str>,
    value: T,
) -> Result<Change<T>, Error> {
    record.add_events(kinds, caller.principal.client_id.as_deref(), number);
    Ok(Change::Write {
        record,
        events: kinds.len() as u64,
        value,
    })
}

/// The HMAC key: configured, or (with no SMS provider) generated once and kept in the store.
pub(crate) fn code_secret(caller: &Caller) -> Result<Vec<u8>, Error> {
    if let Some(secret) = &caller.config.code_secret {
        return Ok(secret.clone());
    }
    caller.updater().create_once(STORED_SECRET_KEY, || {
        let mut secret = vec![0u8; 32];
        caller.services.random.fill(&mut secret);
        secret
    })
}
