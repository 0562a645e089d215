//! What the store needs from its environment, as two small traits: a directory ([`Dir`]) and
//! clocks, sleep and randomness ([`System`]); plus the store's error type. Implemented over WASI
//! on wasm32 and over `std` in the native tests.

use std::fmt;

/// One bucket directory. Names are plain file names inside it (no `/`).
///
/// What the store relies on: [`Dir::create_new`] is exclusive (exactly one of several
/// concurrent callers creates the file) and [`Dir::rename`] replaces its target atomically
/// (readers see the old file or the new one, never a mix).
pub trait Dir {
    /// The whole contents of `name`, `None` when there is no such file.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, FsError>;
    /// Creates `name` exclusively with `contents`, syncing its data to disk when `durable`;
    /// `Ok(false)` when it already exists. A file that could not be written whole is removed
    /// again.
    fn create_new(&self, name: &str, contents: &[u8], durable: bool) -> Result<bool, FsError>;
    /// Renames `from` to `to`, atomically replacing `to`.
    fn rename(&self, from: &str, to: &str) -> Result<(), FsError>;
    /// Removes `name`; `Ok(false)` when there was no such file.
    fn remove(&self, name: &str) -> Result<bool, FsError>;
    /// Modification time of `name` in nanoseconds since the Unix epoch; `None` when there is no
    /// such file or the file system keeps no such time.
    fn modified(&self, name: &str) -> Result<Option<u64>, FsError>;
    /// Names of the regular files in the directory.
    fn list(&self) -> Result<Vec<String>, FsError>;
    /// Makes the directory's entries durable: names created, renamed over or removed so far
    /// survive a crash of the machine once this returns (a file's own data needs its own sync,
    /// [`Dir::create_new`]'s `durable`).
    fn sync(&self) -> Result<(), FsError>;
}

/// Clocks, sleep and randomness.
pub trait System {
    /// Wall-clock time in nanoseconds since the Unix epoch (dates locks across instances).
    fn wall_nanos(&self) -> u64;
    /// Monotonic time in nanoseconds (measures waits within one instance).
    fn monotonic_nanos(&self) -> u64;
    /// Blocks for `nanos` nanoseconds.
    fn sleep(&self, nanos: u64);
    /// A random number (versions, lock owners, temporary names).
    fn random_u64(&self) -> u64;
}

/// A failed file-system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsError {
    /// The host refused for lack of permission (maps to `access-denied`).
    pub denied: bool,
    /// What failed, e.g. `open kabc: no such file or directory`.
    pub message: String,
}

impl FsError {
    pub fn new(operation: &str, name: &str, cause: impl fmt::Display, denied: bool) -> Self {
        Self {
            denied,
            message: format!("{operation} {name}: {cause}"),
        }
    }
}

/// An error as `wasi:keyvalue/store`'s `error` variant has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

impl From<FsError> for StoreError {
    fn from(error: FsError) -> Self {
        if error.denied {
            Self::AccessDenied
        } else {
            Self::Other(format!("kv-file: {}", error.message))
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchStore => f.write_str("no such store"),
            Self::AccessDenied => f.write_str("access denied"),
            Self::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for StoreError {}
