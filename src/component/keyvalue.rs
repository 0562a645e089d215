//! The store behind the wasi:keyvalue (draft2) imports: every build of the core but the ones
//! with the file store inside (`file_store.rs`).

use super::bindings::wasi::keyvalue::{atomics, store};
use crate::platform::OpenError;
use crate::store::{Cas, KeyValue, StoreError, SwapError};

fn store_error(error: store::Error) -> StoreError {
    StoreError(match error {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    })
}

pub fn open_store(label: &str) -> Result<Box<dyn KeyValue>, OpenError> {
    match store::open(label) {
        Ok(bucket) => Ok(Box::new(WasiBucket(bucket))),
        Err(store::Error::NoSuchStore) => Err(OpenError::NoSuchStore),
        Err(store::Error::AccessDenied) => Err(OpenError::AccessDenied),
        Err(store::Error::Other(message)) => Err(OpenError::Other(message)),
    }
}

struct WasiBucket(store::Bucket);

struct WasiCas {
    cas: atomics::Cas,
    current: Option<Vec<u8>>,
}

impl KeyValue for WasiBucket {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(store_error)
    }

    fn start_swap(&self, key: &str) -> Result<Box<dyn Cas + '_>, StoreError> {
        let cas = atomics::Cas::new(&self.0, key).map_err(store_error)?;
        let current = cas.current().map_err(store_error)?;
        Ok(Box::new(WasiCas { cas, current }))
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(&self.0, key, delta).map_err(store_error)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).map_err(store_error)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(store_error)
    }
}

impl Cas for WasiCas {
    fn current(&self) -> Option<&[u8]> {
        self.current.as_deref()
    }

    fn swap(self: Box<Self>, value: Vec<u8>) -> Result<(), SwapError> {
        match atomics::swap(self.cas, &value) {
            Ok(()) => Ok(()),
            // The fresh handle is dropped: the update loop re-reads through a new one.
            Err(atomics::CasError::CasFailed(_)) => Err(SwapError::Conflict),
            Err(atomics::CasError::StoreError(e)) => Err(SwapError::Store(store_error(e))),
        }
    }
}
