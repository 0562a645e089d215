//! Verification codes: generated from the CSPRNG without modulo bias, stored only as a keyed
//! hash (HMAC-SHA256), compared in constant time.

use crate::platform::Random;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    /// Deterministic byte source: counts up from a seed.
    pub struct CountingRandom(pub Cell<u8>);

    impl Random for CountingRandom {
        fn fill(&self, buf: &mut [u8]) {
            for byte in buf {
                *byte = self.0.get();
                self.0.set(self.0.get().wrapping_add(1));
            }
        }
    }

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
