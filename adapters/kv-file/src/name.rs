//! File names: which bucket identifiers are allowed, and how a key of any content becomes a file
//! name that is safe on every file system (pure; no I/O).
//!
//! A key is spelled out as `k` + its UTF-8 bytes with everything but `[a-z0-9_-]` escaped as
//! `%XX` (upper-case hex). Upper-case letters are escaped too, so two keys never differ only in
//! case (macOS and Windows hosts compare file names case-insensitively). A key whose spelled-out
//! name would be longer than [`MAX_DIRECT_NAME`] is named `h` + the SHA-256 of the key in hex
//! instead, and [`crate::record`] keeps the key inside the file for `list-keys`.
//! The store's own files (locks, temporaries) start with `.`, which no key file does.

use sha2::{Digest, Sha256};

/// Longest key accepted, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Longest bucket identifier accepted, in characters.
pub const MAX_BUCKET_CHARS: usize = 64;

/// Longest spelled-out key file name; longer ones are hashed. With the lock prefix and suffix
/// every name stays far below the usual 255-byte limit of a file name.
pub const MAX_DIRECT_NAME: usize = 160;

const DIRECT_PREFIX: char = 'k';
const HASHED_PREFIX: char = 'h';
const LOCK_PREFIX: &str = ".lock-";
const BREAK_PREFIX: &str = ".break-";
const TEMP_PREFIX: &str = ".tmp-";

/// Checks a bucket identifier: 1 to 64 of `[A-Za-z0-9_-]`. It names a directory as it is.
pub fn check_bucket(identifier: &str) -> Result<(), String> {
    let well_formed = !identifier.is_empty()
        && identifier.len() <= MAX_BUCKET_CHARS
        && identifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "kv-file: bucket identifier {identifier:?} is not 1 to {MAX_BUCKET_CHARS} of [A-Za-z0-9_-]"
        ))
    }
}

/// The key is longer than [`MAX_KEY_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTooLong;

/// The name of the file that holds `key`'s value.
pub fn value_name(key: &str) -> Result<String, KeyTooLong> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyTooLong);
    }
    let direct = spell(key);
    if direct.len() <= MAX_DIRECT_NAME {
        Ok(direct)
    } else {
        let digest = Sha256::digest(key.as_bytes());
        let mut name = String::with_capacity(65);
        name.push(HASHED_PREFIX);
        name.push_str(&hex(&digest));
        Ok(name)
    }
}

/// The lock file that guards writes to the value file `value_name`.
pub fn lock_name(value_name: &str) -> String {
    format!("{LOCK_PREFIX}{value_name}")
}

/// The file that makes one instance at a time break an abandoned lock on `value_name`.
pub fn break_name(value_name: &str) -> String {
    format!("{BREAK_PREFIX}{value_name}")
}

/// The temporary file a value for `value_name` is written to by the holder `owner` of its lock
/// ([`crate::lock::LockInfo::owner`]). Named after both, so that whoever breaks an abandoned lock
/// knows which leftover temporary file to remove with it.
pub fn temp_name(value_name: &str, owner: u64) -> String {
    format!("{TEMP_PREFIX}{value_name}-{owner:016x}")
}

/// What a file found in a bucket directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The value of this key (its name spells the key out).
    Key(String),
    /// The value of a long key; the key is inside the file.
    Hashed,
    /// A lock or temporary file of the store.
    Internal,
    /// Anything else (not written by this store); ignored.
    Foreign,
}

/// Classifies a file name found in a bucket directory.
pub fn classify(file_name: &str) -> Entry {
    if file_name.starts_with('.') {
        return Entry::Internal;
    }
    if let Some(spelled) = file_name.strip_prefix(DIRECT_PREFIX) {
        return match unspell(spelled) {
            // Only the canonical spelling names a key: no two names decode to the same key.
            Some(key) if file_name.len() <= MAX_DIRECT_NAME && spell(&key) == file_name => {
                Entry::Key(key)
            }
            _ => Entry::Foreign,
        };
    }
    if let Some(digest) = file_name.strip_prefix(HASHED_PREFIX)
        && digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Entry::Hashed;
    }
    Entry::Foreign
}

fn is_plain(byte: u8) -> bool {
    matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
}

fn spell(key: &str) -> String {
    let mut name = String::with_capacity(key.len() + 1);
    name.push(DIRECT_PREFIX);
    for byte in key.bytes() {
        if is_plain(byte) {
            name.push(char::from(byte));
        } else {
            name.push('%');
            name.push(hex_digit(byte >> 4, b'A'));
            name.push(hex_digit(byte & 0x0f, b'A'));
        }
    }
    name
}

fn unspell(spelled: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(spelled.len());
    let mut input = spelled.bytes();
    while let Some(byte) = input.next() {
        if byte == b'%' {
            let high = hex_value(input.next()?)?;
            let low = hex_value(input.next()?)?;
            bytes.push((high << 4) | low);
        } else if is_plain(byte) {
            bytes.push(byte);
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(hex_digit(byte >> 4, b'a'));
        text.push(hex_digit(byte & 0x0f, b'a'));
    }
    text
}

fn hex_digit(nibble: u8, ten: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        ten + nibble - 10
    })
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_stay_readable_and_the_rest_is_escaped() {
        assert_eq!(value_name("user-1_a"), Ok("kuser-1_a".into()));
        assert_eq!(
            value_name("user:org-1:User@x"),
            Ok("kuser%3Aorg-1%3A%55ser%40x".into())
        );
        assert_eq!(value_name(""), Ok("k".into()));
        assert_eq!(value_name("../.."), Ok("k%2E%2E%2F%2E%2E".into()));
        assert_eq!(value_name("ü"), Ok("k%C3%BC".into()));
    }

    #[test]
    fn names_decode_back_to_their_keys() {
        for key in [
            "",
            "a",
            "A",
            "user:o:%C3%BC",
            "a/b\\c\0d",
            "日本",
            " .lock-x",
            "k%",
        ] {
            let name = value_name(key).map_err(|_| key.to_string());
            assert_eq!(
                name.map(|n| classify(&n)),
                Ok(Entry::Key(key.into())),
                "{key:?}"
            );
        }
    }

    #[test]
    fn keys_differing_only_in_case_get_names_differing_in_more_than_case() {
        let lower = value_name("abc").map(|n| n.to_ascii_lowercase());
        let upper = value_name("ABC").map(|n| n.to_ascii_lowercase());
        assert_ne!(lower, upper);
    }

    #[test]
    fn long_keys_are_hashed_and_over_long_keys_refused() {
        let long = "x".repeat(MAX_DIRECT_NAME);
        let name = value_name(&long);
        assert!(
            matches!(&name, Ok(n) if n.len() == 65 && n.starts_with('h')),
            "{name:?}"
        );
        assert_eq!(name.map(|n| classify(&n)), Ok(Entry::Hashed));
        assert_ne!(
            value_name(&long),
            value_name(&"x".repeat(MAX_DIRECT_NAME + 1))
        );
        // Escaping counts: 54 escaped bytes spell out to 163 characters.
        assert!(matches!(value_name(&"/".repeat(54)), Ok(n) if n.starts_with('h')));
        assert!(value_name(&"é".repeat(MAX_KEY_BYTES / 2)).is_ok());
        assert_eq!(value_name(&"x".repeat(MAX_KEY_BYTES + 1)), Err(KeyTooLong));
    }

    #[test]
    fn store_files_and_strangers_are_told_apart_from_keys() {
        assert_eq!(classify(&lock_name("kabc")), Entry::Internal);
        assert_eq!(classify(&break_name("kabc")), Entry::Internal);
        assert_eq!(classify(&temp_name("kabc", 7)), Entry::Internal);
        assert_eq!(classify("kABC"), Entry::Foreign);
        assert_eq!(classify("k%41"), Entry::Key("A".into()));
        assert_eq!(
            classify("k%61"),
            Entry::Foreign,
            "non-canonical spelling of \"a\""
        );
        assert_eq!(classify("k%4"), Entry::Foreign);
        assert_eq!(classify("k%FF"), Entry::Foreign, "not UTF-8");
        assert_eq!(classify("hxyz"), Entry::Foreign);
        assert_eq!(classify("notes.txt"), Entry::Foreign);
    }

    #[test]
    fn bucket_identifiers_are_checked() {
        assert!(check_bucket("default").is_ok());
        assert!(check_bucket("Store_2-b").is_ok());
        assert!(check_bucket(&"a".repeat(MAX_BUCKET_CHARS)).is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            &"a".repeat(MAX_BUCKET_CHARS + 1),
        ] {
            assert!(check_bucket(bad).is_err(), "{bad:?}");
        }
    }
}
