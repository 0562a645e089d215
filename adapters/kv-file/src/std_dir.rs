//! The [`Dir`] and [`System`] traits over `std` for the native tests, plus a throwaway
//! directory. A `std::fs` rename is atomic and `create_new` exclusive on the platforms we test.

use crate::fs::{Dir, FsError, System};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct StdDir(pub PathBuf);

fn fail(operation: &str, name: &str, error: &std::io::Error) -> FsError {
    FsError::new(
        operation,
        name,
        error,
        error.kind() == ErrorKind::PermissionDenied,
    )
}

impl Dir for StdDir {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, FsError> {
        match std::fs::read(self.0.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(fail("read", name, &error)),
        }
    }

    fn create_new(&self, name: &str, contents: &[u8], durable: bool) -> Result<bool, FsError> {
        let path = self.0.join(name);
        let mut file = match std::fs::File::create_new(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(error) => return Err(fail("create", name, &error)),
        };
        let written = file
            .write_all(contents)
            .and_then(|()| if durable { file.sync_data() } else { Ok(()) });
        if let Err(error) = written {
            std::fs::remove_file(&path).ok();
            return Err(fail("write", name, &error));
        }
        Ok(true)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        std::fs::rename(self.0.join(from), self.0.join(to)).map_err(|e| fail("rename", from, &e))
    }

    fn remove(&self, name: &str) -> Result<bool, FsError> {
        match std::fs::remove_file(self.0.join(name)) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(fail("remove", name, &error)),
        }
    }

    fn modified(&self, name: &str) -> Result<Option<u64>, FsError> {
        match std::fs::metadata(self.0.join(name)) {
            Ok(metadata) => Ok(metadata
                .modified()
                .ok()
                .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                .map(|since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(fail("stat", name, &error)),
        }
    }

    fn list(&self) -> Result<Vec<String>, FsError> {
        let entries = std::fs::read_dir(&self.0).map_err(|e| fail("list", ".", &e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| fail("list", ".", &e))?;
            if entry.file_type().is_ok_and(|t| t.is_file())
                && let Ok(name) = entry.file_name().into_string()
            {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync(&self) -> Result<(), FsError> {
        std::fs::File::open(&self.0)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| fail("sync", ".", &e))
    }
}

/// Real clocks and sleep; random numbers from std's randomly keyed hasher.
pub struct StdSystem {
    started: Instant,
    hasher: RandomState,
    counter: AtomicU64,
}

impl StdSystem {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            hasher: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }
}

impl Default for StdSystem {
    fn default() -> Self {
        Self::new()
    }
}

impl System for StdSystem {
    fn wall_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
            })
    }

    fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn sleep(&self, nanos: u64) {
        std::thread::sleep(Duration::from_nanos(nanos));
    }

    fn random_u64(&self) -> u64 {
        self.hasher
            .hash_one(self.counter.fetch_add(1, Ordering::Relaxed))
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> std::io::Result<Self> {
        let unique = StdSystem::new().random_u64();
        let path =
            std::env::temp_dir().join(format!("kv-file-test-{}-{unique:016x}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}
