//! Verification codes: generated from the CSPRNG without modulo bias, stored only as a keyed
//! hash (HMAC-SHA256), compared in constant time.

use super::user_limits;
use super::{Caller, SmsJob, code_secret};
use crate::error::Error;
use crate::platform::Random;
use crate::record::{Delivery, PendingCode, Phone, UserRecord};
use crate::sms::Message;
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

/// A code made ready before an update: the plain code (for the SMS) and its stored form.
pub(crate) struct FreshCode {
    code: String,
    hash: String,
    pub(crate) operation: String,
    pub(crate) now: Timestamp,
}

impl FreshCode {
    pub(crate) fn new(caller: &Caller) -> Result<Self, Error> {
        let secret = code_secret(caller)?;
        let code = generate(caller.services.random, caller.config.code_length);
        Ok(FreshCode {
            hash: hash(&secret, &caller.record_key, &code),
            code,
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
                hash: self.hash.clone(),
                created: self.now,
                expires: self.now.plus_seconds(caller.config.code_expiry_seconds),
                failed_attempts: 0,
                issued_by: self.operation.clone(),
                delivery: Delivery::Pending,
            }),
            ..phone
        });
        Ok(())
    }

    /// The SMS for this code, which the operation ending at `sequence` stored (its `code.added`
    /// event is that operation's last).
    pub(crate) fn into_job(self, caller: &Caller, recipient: &str, sequence: u64) -> SmsJob {
        let language = caller.sms_language();
        let minutes = caller.config.code_expiry_seconds.div_ceil(60);
        let text = caller
            .config
            .sms_texts
            .render(language, &self.code, minutes);
        SmsJob {
            record_key: caller.record_key.clone(),
            operation: self.operation,
            code_sequence: sequence,
            message: Message {
                recipient: recipient.into(),
                text,
                code: self.code,
                user_id: caller.principal.user_id.clone(),
                org_id: caller.principal.resource_owner.clone(),
                language: language.to_owned(),
            },
        }
    }
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
