//! Verification codes: generated from the CSPRNG without modulo bias, stored only as a keyed
//! hash (HMAC-SHA256), compared in constant time; or, with a provider that makes its own codes
//! (Twilio Verify), neither made nor stored here and checked by asking the provider.

use super::user_limits;
use super::{Caller, SmsJob, code_secret};
use crate::error::Error;
use crate::log;
use crate::platform::Random;
use crate::record::{Delivery, PendingCode, Phone, UserRecord};
use crate::sms::{Message, SendError};
use crate::time::Timestamp;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Largest multiple of 36 that fits a byte: bytes at or above it are drawn again.
const UNBIASED_LIMIT: u8 = 252;

/// A fresh code of `length` characters from A–Z and 0–9.
pub fn generate(random: &dyn Random, length: usize) -> String {
    let mut code = String::with_capacity(length);
    let mut pool = [0u8; 32];
    while code.len() < length {
        random.fill(&mut pool);
        for &byte in pool.iter().filter(|&&b| b < UNBIASED_LIMIT) {
            if code.len() == length {
                break;
            }
            code.push(char::from(ALPHABET[usize::from(byte % 36)]));
        }
    }
    code
}

/// The stored form of `code`, bound to the record it belongs to so that a hash copied to
/// another user's record does not verify there.
pub fn hash(secret: &[u8], record_key: &str, code: &str) -> String {
    hex::encode(mac(secret, record_key, code).finalize().into_bytes())
}

/// Constant-time check of `code` against a stored hash.
pub fn matches(secret: &[u8], record_key: &str, code: &str, stored: &str) -> bool {
    let Ok(stored) = hex::decode(stored) else {
        return false;
    };
    // `verify_slice` compares in constant time.
    mac(secret, record_key, code).verify_slice(&stored).is_ok()
}

#[expect(
    clippy::expect_used,
    reason = "HMAC accepts keys of every length; new_from_slice cannot fail"
)]
fn mac(secret: &[u8], record_key: &str, code: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(record_key.as_bytes());
    mac.update(b"\0");
    mac.update(code.as_bytes());
    mac
}

/// A code made ready before an update: the plain code (for the SMS) and its stored form, or
/// neither when the provider makes the code.
pub(crate) struct FreshCode {
    /// `None` when the provider makes the code.
    made_here: Option<MadeHere>,
    pub(crate) operation: String,
    pub(crate) now: Timestamp,
}

struct MadeHere {
    code: String,
    hash: String,
}

impl FreshCode {
    pub(crate) fn new(caller: &Caller) -> Result<Self, Error> {
        let made_here = if caller.services.sms.makes_codes() {
            None
        } else {
            let secret = code_secret(caller)?;
            let code = generate(caller.services.random, caller.config.code_length);
            Some(MadeHere {
                hash: hash(&secret, &caller.record_key, &code),
                code,
            })
        };
        Ok(FreshCode {
            made_here,
            operation: caller.services.random.operation_id(),
            now: caller.services.clock.now(),
        })
    }

    /// Puts the code on `record` as its pending code, if the abuse guards allow a new one.
    pub(crate) fn issue(
        &self,
        record: &mut UserRecord,
        phone: Phone,
        caller: &Caller,
    ) -> Result<(), Error> {
        user_limits::check_new_code(record, &caller.config, self.now)?;
        user_limits::note_new_code(record, &caller.config, self.now);
        record.phone = Some(Phone {
            code: Some(PendingCode {
                hash: self
                    .made_here
                    .as_ref()
                    .map(|made| made.hash.clone())
                    .unwrap_or_default(),
                created: self.now,
                expires: self.now.plus_seconds(caller.config.code_expiry_seconds),
                failed_attempts: 0,
                issued_by: self.operation.clone(),
                delivery: Delivery::Pending,
                by_provider: self.made_here.is_none(),
            }),
            ..phone
        });
        Ok(())
    }

    /// The SMS for this code, which the operation ending at `sequence` stored (its `code.added`
    /// event is that operation's last). Without text or code when the provider makes the code.
    pub(crate) fn into_job(self, caller: &Caller, recipient: &str, sequence: u64) -> SmsJob {
        let language = caller.sms_language();
        let minutes = caller.config.code_expiry_seconds.div_ceil(60);
        let (text, code) = match self.made_here {
            Some(MadeHere { code, .. }) => {
                let text = caller.config.sms_texts.render(language, &code, minutes);
                (text, code)
            }
            None => (String::new(), String::new()),
        };
        SmsJob {
            record_key: caller.record_key.clone(),
            operation: self.operation,
            code_sequence: sequence,
            message: Message {
                recipient: recipient.into(),
                text,
                code,
                user_id: caller.principal.user_id.clone(),
                org_id: caller.principal.resource_owner.clone(),
                language: language.to_owned(),
            },
        }
    }
}

/// How a typed code is judged: against the stored hash, or by the provider that made it.
pub(crate) enum Judge {
    Hash(Vec<u8>),
    /// The provider's answer for the code that operation `issued_by` issued; `None` when there
    /// was nothing to ask (the code is void or expired, or the provider no longer makes codes).
    Provider(Option<Verdict>),
}

pub(crate) struct Verdict {
    issued_by: String,
    approved: bool,
}

impl Judge {
    /// The judge for `input` typed now against `record` (read before the update; `None` when
    /// the provider makes no codes, and so none can be pending). A provider is asked here, once:
    /// its approval uses the code up, and the update may run more than once under contention.
    /// A provider that cannot answer fails the request, changing nothing.
    pub(crate) fn new(
        caller: &Caller,
        record: Option<&UserRecord>,
        input: &str,
        now: Timestamp,
    ) -> Result<Judge, Error> {
        let pending = record
            .and_then(|record| record.phone.as_ref())
            .filter(|phone| !phone.verified)
            .and_then(|phone| Some((phone.number.as_str(), phone.code.as_ref()?)));
        // Codes made here (also those pending from before a switch to such a provider) are
        // checked here.
        let Some((number, code)) = pending.filter(|(_, code)| code.by_provider) else {
            return Ok(Judge::Hash(code_secret(caller)?));
        };
        if !caller.services.sms.makes_codes() || !usable(code, caller, now) {
            return Ok(Judge::Provider(None));
        }
        match caller.services.sms.check(number, input) {
            Ok(approved) => Ok(Judge::Provider(Some(Verdict {
                issued_by: code.issued_by.clone(),
                approved,
            }))),
            // Providers' error texts may quote the number or the code: scrubbed.
            Err(SendError::Retryable(why)) => {
                Err(Error::CodeCheckUnavailable(log::scrub(&why, &[input])))
            }
            Err(SendError::Permanent(why)) => {
                Err(Error::CodeCheckRefused(log::scrub(&why, &[input])))
            }
        }
    }

    /// Whether `input` is `code` (its expiry and attempts are the caller's to check).
    pub(crate) fn approves(&self, caller: &Caller, code: &PendingCode, input: &str) -> bool {
        match self {
            Judge::Hash(secret) => {
                !code.by_provider && matches(secret, &caller.record_key, input, &code.hash)
            }
            // The code asked about, not one that replaced it meanwhile.
            Judge::Provider(verdict) => verdict.as_ref().is_some_and(|verdict| {
                code.by_provider && verdict.approved && verdict.issued_by == code.issued_by
            }),
        }
    }
}

/// Whether `code` may still be checked: not void from failed attempts, not expired.
pub(crate) fn usable(code: &PendingCode, caller: &Caller, now: Timestamp) -> bool {
    code.failed_attempts < caller.config.code_max_attempts && now <= code.expires
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::CountingRandom;
    use std::cell::Cell;

    #[test]
    fn codes_use_the_alphabet_and_length() {
        let random = CountingRandom(Cell::new(0));
        let code = generate(&random, 8);
        assert_eq!(code, "ABCDEFGH");
        assert!(
            generate(&random, 12)
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn biased_bytes_are_skipped() {
        // Bytes 252..=255 would favour A–D; they must be drawn again.
        let random = CountingRandom(Cell::new(250));
        let code = generate(&random, 3);
        // 250 -> 250 % 36 = 34 ('8'), 251 -> '9', 252..=255 skipped, 0 -> 'A'.
        assert_eq!(code, "89A");
    }

    #[test]
    fn hashes_verify_only_the_right_code_for_the_right_record() {
        let stored = hash(b"0123456789abcdef", "user:o:u", "ABC123");
        assert!(matches(b"0123456789abcdef", "user:o:u", "ABC123", &stored));
        assert!(!matches(b"0123456789abcdef", "user:o:u", "ABC124", &stored));
        assert!(!matches(
            b"0123456789abcdef",
            "user:o:other",
            "ABC123",
            &stored
        ));
        assert!(!matches(
            b"another-secret-16",
            "user:o:u",
            "ABC123",
            &stored
        ));
        assert!(!matches(
            b"0123456789abcdef",
            "user:o:u",
            "ABC123",
            "not hex"
        ));
        assert!(!stored.contains("ABC123"));
    }
}
