//! Test-only helpers shared by the decoders' property tests: the run configuration, byte-level
//! mutations of valid encodings, and a JSON string encoder independent of serde_json.

use crate::error::Error;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `default_cases` cases, or `PROPTEST_CASES` when set (`ProptestConfig::default()` reads the
/// variable; `with_cases` would ignore it). Failing seeds are kept beside the test's source
/// file (`src/<area>/<file>.proptest-regressions`).
pub fn config(default_cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    config
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
pub enum Mutation {
    Flip { at: usize, bits: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
    Truncate { at: usize },
    Duplicate { at: usize, len: usize },
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        let clamp = |at: usize, len: usize| if len == 0 { 0 } else { at % len };
        match *self {
            Mutation::Flip { at, bits } if !bytes.is_empty() => {
                let at = clamp(at, bytes.len());
                bytes[at] ^= bits.max(1);
            }
            Mutation::Insert { at, byte } => {
                let at = clamp(at, bytes.len() + 1);
                bytes.insert(at, byte);
            }
            Mutation::Delete { at } if !bytes.is_empty() => {
                let at = clamp(at, bytes.len());
                bytes.remove(at);
            }
            Mutation::Truncate { at } => {
                let at = clamp(at, bytes.len() + 1);
                bytes.truncate(at);
            }
            Mutation::Duplicate { at, len } if !bytes.is_empty() => {
                let at = clamp(at, bytes.len());
                let end = (at + len).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => {}
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Delete { at }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1..8usize).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

/// `valid` after one to four random edits (flip, insert, delete, truncate, duplicate).
pub fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(mutation(), 1..=4).prop_map(move |edits| {
        let mut bytes = valid.clone();
        for edit in &edits {
            edit.apply(&mut bytes);
        }
        bytes
    })
}

/// Like [`mutated`], for text: the edited bytes, read as UTF-8 with replacement characters.
pub fn mutated_text(valid: String) -> impl Strategy<Value = String> {
    mutated(valid.into_bytes()).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// `text` as a JSON string literal, written by hand (RFC 8259): quotes, backslashes and
/// control characters escaped; with `ascii_only`, everything outside ASCII as `\uXXXX`
/// (UTF-16, surrogate pairs beyond the BMP).
pub fn json_string(text: &str, ascii_only: bool) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (ascii_only && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The refusal is one of `allowed` (compared by variant) and says something, as every answer
/// to a client must: a non-empty message and, where upstream has one, a non-empty id.
pub fn assert_documented(
    error: &Error,
    allowed: &[fn(&Error) -> bool],
) -> Result<(), TestCaseError> {
    prop_assert!(
        allowed.iter().any(|is| is(error)),
        "undocumented refusal {error:?}"
    );
    let status = error.status();
    prop_assert!(
        !status.message.trim().is_empty(),
        "{error:?} has no message"
    );
    if let Some(detail) = &status.detail {
        prop_assert!(
            !detail.id.is_empty() && !detail.message.is_empty(),
            "{error:?}"
        );
        prop_assert!(status.message.contains(detail.id), "{error:?}");
    }
    Ok(())
}
