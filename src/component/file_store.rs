//! The file-backed store compiled into the core (feature `file-store-inside`, the `wasmtime
//! serve` artifacts): adapters/kv-file's [`Store`] over a preopened directory, called directly
//! where the composed artifact called it through `wasi:keyvalue`. Same store, same files: a data
//! directory written by either is read by the other.

use crate::platform::OpenError;
use crate::store::{Cas, KeyValue, StoreError, SwapError};
use set_my_phone_kv_file::fs::StoreError as FileError;
use set_my_phone_kv_file::lock::LockPolicy;
use set_my_phone_kv_file::store::{Store, Swap, Versioned};
use set_my_phone_kv_file::wasi::{self, WasiDir, WasiSystem};

type FileStore = Store<WasiDir, WasiSystem>;

/// Opens bucket `label`: a directory under the preopened root (`KV_DIR`, default `/data`).
pub fn open_store(label: &str) -> Result<Box<dyn KeyValue>, OpenError> {
    match wasi::open_bucket(label) {
        Ok(dir) => Ok(Box::new(Bucket(Store::new(
            dir,
            WasiSystem,
            LockPolicy::default(),
        )))),
        Err(FileError::NoSuchStore) => Err(OpenError::NoSuchStore),
        Err(FileError::AccessDenied) => Err(OpenError::AccessDenied),
        Err(FileError::Other(message)) => Err(OpenError::Other(message)),
    }
}

fn store_error(error: FileError) -> StoreError {
    StoreError(match error {
        FileError::NoSuchStore => "no such store".into(),
        FileError::AccessDenied => "access denied".into(),
        FileError::Other(message) => message,
    })
}

struct Bucket(FileStore);

/// A swap of `key` from what it held when the swap began (`seen`, with its version).
struct FileCas<'a> {
    store: &'a FileStore,
    key: String,
    seen: Option<Versioned>,
}

impl KeyValue for Bucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(store_error)
    }

    fn start_swap(&self, key: &str) -> Result<Box<dyn Cas + '_>, StoreError> {
        let seen = self.0.read(key).map_err(store_error)?;
        Ok(Box::new(FileCas {
            store: &self.0,
            key: key.into(),
            seen,
        }))
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.0.increment(key, delta).map_err(store_error)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).map_err(store_error)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(store_error)
    }
}

impl Cas for FileCas<'_> {
    fn current(&self) -> Option<&[u8]> {
        self.seen.as_ref().map(|seen| seen.value.as_slice())
    }

    fn swap(self: Box<Self>, value: Vec<u8>) -> Result<(), SwapError> {
        let expected = self.seen.as_ref().map(|seen| seen.version);
        match self.store.swap(&self.key, expected, &value) {
            Ok(Swap::Swapped) => Ok(()),
            Ok(Swap::Conflict(_)) => Err(SwapError::Conflict),
            Err(error) => Err(SwapError::Store(store_error(error))),
        }
    }
}
