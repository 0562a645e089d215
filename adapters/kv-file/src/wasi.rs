//! The store's [`Dir`] and [`System`] over WASI (wasm32 only): `wasi:filesystem` on a preopened
//! directory, `wasi:clocks`, `wasi:random`, and `wasi:cli/environment` to find the directory.
//!
//! The root is the preopen whose guest path is `KV_DIR` (default `/data`), e.g.
//! `wasmtime serve -Scli --dir HOST_DIR::/data`; each bucket is a subdirectory of it, created
//! on first open.

use crate::fs::{Dir, FsError, StoreError, System};
use crate::name;
use wasip2::cli::environment;
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::filesystem::preopens;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};
use wasip2::random::random;

/// Environment variable naming the guest path of the preopened root directory.
pub const ROOT_VARIABLE: &str = "KV_DIR";
/// Guest path of the root directory when `KV_DIR` is not set.
pub const DEFAULT_ROOT: &str = "/data";

/// Bytes asked for per read call.
const READ_CHUNK: u64 = 1 << 20;

/// A bucket directory.
pub struct WasiDir(Descriptor);

/// Opens (creating it if needed) the directory of bucket `identifier` under the root.
pub fn open_bucket(identifier: &str) -> Result<WasiDir, StoreError> {
    name::check_bucket(identifier).map_err(StoreError::Other)?;
    let root = root()?;
    match root.create_directory_at(identifier) {
        Ok(()) | Err(ErrorCode::Exist) => {}
        Err(code) => return Err(fail("create bucket directory", identifier, code).into()),
    }
    root.open_at(
        PathFlags::empty(),
        identifier,
        OpenFlags::DIRECTORY,
        DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
    )
    .map(WasiDir)
    .map_err(|code| fail("open bucket directory", identifier, code).into())
}

fn root() -> Result<Descriptor, StoreError> {
    let configured = environment::get_environment()
        .into_iter()
        .find_map(|(key, value)| (key == ROOT_VARIABLE).then_some(value));
    let wanted = configured.as_deref().unwrap_or(DEFAULT_ROOT);
    let mut offered = Vec::new();
    for (descriptor, path) in preopens::get_directories() {
        if trim(&path) == trim(wanted) {
            return Ok(descriptor);
        }
        offered.push(path);
    }
    let source = if configured.is_some() {
        "set by KV_DIR"
    } else {
        "the default; KV_DIR is not set"
    };
    Err(StoreError::Other(format!(
        "kv-file: no preopened directory {wanted:?} ({source}); preopen one (wasmtime serve \
         -Scli --dir HOST_DIR::{wanted}) or set KV_DIR to the guest path of a preopened \
         directory; preopened: {offered:?}"
    )))
}

/// `/data/` and `/data` name the same directory.
fn trim(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => path,
        trimmed => trimmed,
    }
}

fn fail(operation: &str, name: &str, code: ErrorCode) -> FsError {
    let denied = matches!(code, ErrorCode::Access | ErrorCode::NotPermitted);
    FsError::new(operation, name, code.message(), denied)
}

impl Dir for WasiDir {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, FsError> {
        let file = match self.0.open_at(
            PathFlags::empty(),
            name,
            OpenFlags::empty(),
            DescriptorFlags::READ,
        ) {
            Ok(file) => file,
            Err(ErrorCode::NoEntry) => return Ok(None),
            Err(code) => return Err(fail("open", name, code)),
        };
        let mut bytes = Vec::new();
        loop {
            let offset = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            let (chunk, end) = file
                .read(READ_CHUNK, offset)
                .map_err(|code| fail("read", name, code))?;
            let done = end || chunk.is_empty();
            bytes.extend_from_slice(&chunk);
            if done {
                return Ok(Some(bytes));
            }
        }
    }

    fn create_new(&self, name: &str, contents: &[u8], durable: bool) -> Result<bool, FsError> {
        let file = match self.0.open_at(
            PathFlags::empty(),
            name,
            OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
            DescriptorFlags::WRITE,
        ) {
            Ok(file) => file,
            Err(ErrorCode::Exist) => return Ok(false),
            Err(code) => return Err(fail("create", name, code)),
        };
        if let Err(error) = write_all(&file, name, contents, durable) {
            drop(file);
            self.0.unlink_file_at(name).ok();
            return Err(error);
        }
        Ok(true)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        self.0
            .rename_at(from, &self.0, to)
            .map_err(|code| fail("rename", from, code))
    }

    fn remove(&self, name: &str) -> Result<bool, FsError> {
        match self.0.unlink_file_at(name) {
            Ok(()) => Ok(true),
            Err(ErrorCode::NoEntry) => Ok(false),
            Err(code) => Err(fail("remove", name, code)),
        }
    }

    fn modified(&self, name: &str) -> Result<Option<u64>, FsError> {
        match self.0.stat_at(PathFlags::empty(), name) {
            Ok(stat) => Ok(stat.data_modification_timestamp.map(|time| {
                time.seconds
                    .saturating_mul(1_000_000_000)
                    .saturating_add(u64::from(time.nanoseconds))
            })),
            Err(ErrorCode::NoEntry) => Ok(None),
            Err(code) => Err(fail("stat", name, code)),
        }
    }

    fn list(&self) -> Result<Vec<String>, FsError> {
        let entries = self
            .0
            .read_directory()
            .map_err(|code| fail("list", ".", code))?;
        let mut names = Vec::new();
        while let Some(entry) = entries
            .read_directory_entry()
            .map_err(|code| fail("list", ".", code))?
        {
            if matches!(
                entry.type_,
                DescriptorType::RegularFile | DescriptorType::Unknown
            ) {
                names.push(entry.name);
            }
        }
        Ok(names)
    }

    fn sync(&self) -> Result<(), FsError> {
        self.0.sync_data().map_err(|code| fail("sync", ".", code))
    }
}

fn write_all(file: &Descriptor, name: &str, contents: &[u8], durable: bool) -> Result<(), FsError> {
    let mut written = 0;
    while let Some(rest) = contents.get(written..).filter(|rest| !rest.is_empty()) {
        let offset = u64::try_from(written).unwrap_or(u64::MAX);
        let count = file
            .write(rest, offset)
            .map_err(|code| fail("write", name, code))?;
        if count == 0 {
            return Err(FsError::new("write", name, "no progress", false));
        }
        written = written.saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
    }
    if durable {
        file.sync_data().map_err(|code| fail("sync", name, code))?;
    }
    Ok(())
}

/// Clocks, sleep and randomness from WASI.
pub struct WasiSystem;

impl System for WasiSystem {
    fn wall_nanos(&self) -> u64 {
        let now = wall_clock::now();
        now.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(now.nanoseconds))
    }

    fn monotonic_nanos(&self) -> u64 {
        monotonic_clock::now()
    }

    fn sleep(&self, nanos: u64) {
        monotonic_clock::subscribe_duration(nanos).block();
    }

    fn random_u64(&self) -> u64 {
        random::get_random_u64()
    }
}
