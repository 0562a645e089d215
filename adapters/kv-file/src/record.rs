//! The value file format (pure): a header with a format tag, the version that compare-and-swap
//! compares, and the key (so that `list-keys` can name hashed files), then the value bytes.
//!
//! ```text
//! "SMKV" | format 1 (u8) | version (u64 LE) | key length (u16 LE) | key (UTF-8) | value
//! ```
//! Versions are random 64-bit numbers drawn afresh for every write, so a value that is written
//! again (even with the same bytes, or after a delete) never repeats the version a `cas` saw.

use crate::name::MAX_KEY_BYTES;

const MAGIC: &[u8; 4] = b"SMKV";
const FORMAT: u8 = 1;
const HEADER: usize = 4 + 1 + 8 + 2;

/// A value file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub version: u64,
    pub key: String,
    pub value: Vec<u8>,
}

/// The bytes of a value file. `key` is at most [`MAX_KEY_BYTES`] long (checked by
/// [`crate::name::value_name`] before anything is written).
pub fn encode(version: u64, key: &str, value: &[u8]) -> Vec<u8> {
    let key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
    let mut bytes = Vec::with_capacity(HEADER + key.len() + value.len());
    bytes.extend_from_slice(MAGIC);
    bytes.push(FORMAT);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&key_len.to_le_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(value);
    bytes
}

/// Why a file is not a value file of this store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    NotAValueFile,
    UnknownFormat(u8),
    Truncated,
    KeyNotUtf8,
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAValueFile => f.write_str("not a value file"),
            Self::UnknownFormat(format) => write!(f, "unknown format {format}"),
            Self::Truncated => f.write_str("truncated header"),
            Self::KeyNotUtf8 => f.write_str("key is not UTF-8"),
        }
    }
}

/// Parses a value file.
pub fn decode(mut bytes: Vec<u8>) -> Result<Stored, FormatError> {
    let header = bytes.get(..HEADER).ok_or(FormatError::Truncated)?;
    let (magic, rest) = header.split_at(4);
    if magic != MAGIC {
        return Err(FormatError::NotAValueFile);
    }
    let (format, rest) = rest.split_at(1);
    if format != [FORMAT] {
        return Err(FormatError::UnknownFormat(
            format.first().copied().unwrap_or(0),
        ));
    }
    let (version, key_len) = rest.split_at(8);
    let version = u64::from_le_bytes(version.try_into().map_err(|_| FormatError::Truncated)?);
    let key_len = u16::from_le_bytes(key_len.try_into().map_err(|_| FormatError::Truncated)?);
    let key_end = HEADER + usize::from(key_len);
    if usize::from(key_len) > MAX_KEY_BYTES || bytes.len() < key_end {
        return Err(FormatError::Truncated);
    }
    let value = bytes.split_off(key_end);
    bytes.drain(..HEADER);
    let key = String::from_utf8(bytes).map_err(|_| FormatError::KeyNotUtf8)?;
    Ok(Stored {
        version,
        key,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (version, key, value) in [
            (0, "", &b""[..]),
            (u64::MAX, "user:o:u", &b"{\"a\":1}"[..]),
            (7, "日本", &[0u8, 255, 10][..]),
        ] {
            let stored = decode(encode(version, key, value));
            assert_eq!(
                stored,
                Ok(Stored {
                    version,
                    key: key.into(),
                    value: value.to_vec()
                })
            );
        }
        let long_key = "x".repeat(MAX_KEY_BYTES);
        assert_eq!(
            decode(encode(1, &long_key, b"v")).map(|s| s.key),
            Ok(long_key)
        );
    }

    #[test]
    fn rejects_what_it_did_not_write() {
        assert_eq!(decode(Vec::new()), Err(FormatError::Truncated));
        assert_eq!(
            decode(b"hello world, not ours".to_vec()),
            Err(FormatError::NotAValueFile)
        );
        let mut future = encode(1, "k", b"v");
        future[4] = 9;
        assert_eq!(decode(future), Err(FormatError::UnknownFormat(9)));
        let mut cut = encode(1, "key", b"");
        cut.truncate(HEADER + 2);
        assert_eq!(decode(cut), Err(FormatError::Truncated));
        let mut bad_key = encode(1, "ab", b"");
        bad_key[HEADER] = 0xff;
        assert_eq!(decode(bad_key), Err(FormatError::KeyNotUtf8));
    }
}
