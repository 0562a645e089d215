//! What the integration suites (`host/tests/all`, `tests/e2e`) share about the artifacts they
//! drive: their paths, and a check that each is at least as new as every source it is built
//! from, so a test never runs a stale build and passes or fails for the wrong code; and the
//! servers they start on loopback (`processes`); the settings that turn the abuse guards off;
//! the test issuer's keys and tokens (`tokens`), answers as the tests read them (`answer`),
//! and a peer speaking ZITADEL's user service v2 (`zitadel_peer`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod answer;
mod processes;
pub mod tokens;
pub mod zitadel_peer;
pub use answer::{Answer, PHONE_URL, RESEND_URL, VERIFY_URL, answer};
pub use processes::{RedisServer, find_binary, free_port};

/// The repository's root (this crate lives in tests/harness).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What the wasm artifacts are built from (relative to the root): the core, its WIT and protos,
/// the adapters composed into it (the example provider too), and the tool that composes and
/// pre-initialises them.
const SOURCES: [&str; 10] = [
    "src",
    "wit",
    "proto",
    "adapters",
    "examples",
    "tools/src",
    "wire",
    "build.rs",
    "Cargo.toml",
    "Cargo.lock",
];

/// `relative` under the root, after checking that it exists and is not older than any source.
///
/// # Panics
/// When the file is missing or stale, with the command that builds it: a test cannot go on.
pub fn built(relative: &str, command: &str) -> PathBuf {
    let root = workspace_root();
    let path = root.join(relative);
    let sources: Vec<PathBuf> = SOURCES.iter().map(|source| root.join(source)).collect();
    match newer_source(&path, &sources) {
        Err(Missing) => panic!(
            "{} is missing: run {command} (scripts/test does)",
            path.display()
        ),
        Ok(Some(source)) => panic!(
            "{} is older than {}: run {command} (scripts/test does)",
            path.display(),
            source.display()
        ),
        Ok(None) => path,
    }
}

/// Every file at or under `dir` with its contents as text (bytes that are not UTF-8 replaced):
/// what the tests search for secrets a run must not have written anywhere.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap_or_default();
            files.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    files
}

/// The built file does not exist (or its time cannot be read).
#[derive(Debug, PartialEq, Eq)]
struct Missing;

/// The newest file at or under `sources` that changed after `built` was written, if any.
fn newer_source(built: &Path, sources: &[PathBuf]) -> Result<Option<PathBuf>, Missing> {
    let built = built
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|_| Missing)?;
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for source in sources {
        newest_under(source, &mut newest);
    }
    Ok(newest
        .filter(|(changed, _)| *changed > built)
        .map(|(_, source)| source))
}

/// A shipped artifact of `scripts/build-artifacts` (`target/artifacts/<name>`), checked fresh.
pub fn artifact(name: &str) -> PathBuf {
    built(
        &format!("target/artifacts/{name}"),
        "scripts/build-artifacts",
    )
}

/// The core component as `scripts/build-component` builds it (release, not pre-initialised),
/// checked fresh.
pub fn core_component() -> PathBuf {
    built(
        "target/wasm32-wasip2/release/set_my_phone.wasm",
        "scripts/build-component",
    )
}

/// Keeps in `newest` the latest modification time of a file at or under `path`; skips what
/// cannot be read (a missing optional source, a file removed meanwhile) and build output.
fn newest_under(path: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(metadata) = path.symlink_metadata() else {
        return;
    };
    if metadata.is_dir() {
        let Ok(entries) = path.read_dir() else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == "target" || name == "node_modules" {
                continue;
            }
            newest_under(&entry.path(), newest);
        }
    } else if let Ok(modified) = metadata.modified()
        && newest.as_ref().is_none_or(|(time, _)| modified > *time)
    {
        *newest = Some((modified, path.to_path_buf()));
    }
}

/// The settings that turn every abuse guard off (per user and across accounts), for tests that
/// change numbers quickly; the guards have their own tests, on their defaults.
pub const GUARDS_OFF: &[(&str, &str)] = &[
    ("PHONE_RESEND_COOLDOWN", "0"),
    ("PHONE_CODES_PER_HOUR", "0"),
    ("PHONE_CODES_PER_NUMBER_PER_HOUR", "0"),
    ("PHONE_CODES_PER_NUMBER_PER_DAY", "0"),
    ("PHONE_CODES_PER_RANGE_PER_HOUR", "0"),
    ("PHONE_PUMPING_MIN_VERIFIED", "0"),
];

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failing test should stop loudly"
)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "is missing: run scripts/build-artifacts")]
    fn a_missing_artifact_names_the_command_that_builds_it() {
        artifact("no-such-artifact.wasm");
    }

    #[test]
    fn a_source_changed_after_the_build_makes_it_stale() {
        let dir = std::env::temp_dir().join(format!("harness-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/deep")).unwrap();
        let built = dir.join("artifact.wasm");
        let source = dir.join("src/deep/lib.rs");
        std::fs::write(&source, "").unwrap();
        std::fs::write(&built, "").unwrap();
        let at = |secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let touch = |path: &Path, secs| {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(at(secs)).unwrap();
        };
        let sources = [dir.join("src"), dir.join("absent")];
        touch(&source, 1_000);
        touch(&built, 2_000);
        assert_eq!(newer_source(&built, &sources), Ok(None), "fresh");
        touch(&source, 3_000);
        assert_eq!(newer_source(&built, &sources), Ok(Some(source)), "stale");
        assert_eq!(newer_source(&dir.join("none.wasm"), &sources), Err(Missing));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_newest_source_is_found() {
        let mut newest = None;
        newest_under(&workspace_root().join("tests/harness"), &mut newest);
        let (_, path) = newest.expect("tests/harness has files");
        assert!(path.starts_with(workspace_root().join("tests/harness")));
    }
}
