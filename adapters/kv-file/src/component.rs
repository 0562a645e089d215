//! The component's exports (wasm32 only): generated `wasi:keyvalue` draft2 bindings and thin
//! resource types that hand every call to [`crate::store::Store`] over WASI.

use crate::fs::StoreError;
use crate::lock::LockPolicy;
use crate::store::{Store, Swap, Versioned};
use crate::wasi::{self, WasiDir, WasiSystem};
use std::rc::Rc;

#[allow(
    unsafe_code,
    reason = "wit-bindgen's generated glue is unsafe by nature"
)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "set-my-phone:service/kv-file",
        // One copy of each shared wasi type: the wasip2 crate's.
        with: {
            "wasi:filesystem/types@0.2.4": wasip2::filesystem::types,
            "wasi:filesystem/preopens@0.2.4": wasip2::filesystem::preopens,
            "wasi:io/error@0.2.4": wasip2::io::error,
            "wasi:io/poll@0.2.4": wasip2::io::poll,
            "wasi:io/streams@0.2.4": wasip2::io::streams,
            "wasi:clocks/monotonic-clock@0.2.4": wasip2::clocks::monotonic_clock,
            "wasi:clocks/wall-clock@0.2.4": wasip2::clocks::wall_clock,
            "wasi:cli/environment@0.2.4": wasip2::cli::environment,
            "wasi:random/random@0.2.4": wasip2::random::random,
            "wasi:keyvalue/store@0.2.0-draft2": generate,
            "wasi:keyvalue/atomics@0.2.0-draft2": generate,
        },
    });

    use super::Component;
    export!(Component with_types_in self);
}

use bindings::exports::wasi::keyvalue::{atomics, store};

type FileStore = Store<WasiDir, WasiSystem>;

struct Component;

/// An open bucket; `cas` handles share its directory.
struct Bucket(Rc<FileStore>);

/// A compare-and-swap handle: the key and what it held when the handle was made.
struct Cas {
    store: Rc<FileStore>,
    key: String,
    seen: Option<Versioned>,
}

fn to_wit(error: StoreError) -> store::Error {
    match error {
        StoreError::NoSuchStore => store::Error::NoSuchStore,
        StoreError::AccessDenied => store::Error::AccessDenied,
        StoreError::Other(message) => store::Error::Other(message),
    }
}

impl store::Guest for Component {
    type Bucket = Bucket;

    fn open(identifier: String) -> Result<store::Bucket, store::Error> {
        let dir = wasi::open_bucket(&identifier).map_err(to_wit)?;
        let store = Store::new(dir, WasiSystem, LockPolicy::default());
        Ok(store::Bucket::new(Bucket(Rc::new(store))))
    }
}

impl store::GuestBucket for Bucket {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, store::Error> {
        self.0.get(&key).map_err(to_wit)
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), store::Error> {
        self.0.set(&key, &value).map_err(to_wit)
    }

    fn delete(&self, key: String) -> Result<(), store::Error> {
        self.0.delete(&key).map_err(to_wit)
    }

    fn exists(&self, key: String) -> Result<bool, store::Error> {
        self.0.exists(&key).map_err(to_wit)
    }

    /// One page with every key: this store hands out no cursors, so any cursor is foreign.
    fn list_keys(&self, cursor: Option<String>) -> Result<store::KeyResponse, store::Error> {
        if cursor.is_some() {
            return Err(store::Error::Other(
                "kv-file: list-keys answers in one page; there is no cursor to continue".into(),
            ));
        }
        let keys = self.0.list_keys().map_err(to_wit)?;
        Ok(store::KeyResponse { keys, cursor: None })
    }
}

impl atomics::Guest for Component {
    type Cas = Cas;

    fn increment(
        bucket: store::BucketBorrow<'_>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        bucket
            .get::<Bucket>()
            .0
            .increment(&key, delta)
            .map_err(to_wit)
    }

    fn swap(cas: atomics::Cas, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let Cas { store, key, seen } = cas.into_inner::<Cas>();
        match store.swap(&key, seen.map(|seen| seen.version), &value) {
            Ok(Swap::Swapped) => Ok(()),
            Ok(Swap::Conflict(current)) => {
                Err(atomics::CasError::CasFailed(atomics::Cas::new(Cas {
                    store,
                    key,
                    seen: current,
                })))
            }
            Err(error) => Err(atomics::CasError::StoreError(to_wit(error))),
        }
    }
}

impl atomics::GuestCas for Cas {
    fn new(bucket: store::BucketBorrow<'_>, key: String) -> Result<atomics::Cas, store::Error> {
        let store = Rc::clone(&bucket.get::<Bucket>().0);
        let seen = store.read(&key).map_err(to_wit)?;
        Ok(atomics::Cas::new(Cas { store, key, seen }))
    }

    fn current(&self) -> Result<Option<Vec<u8>>, store::Error> {
        Ok(self.seen.as_ref().map(|seen| seen.value.clone()))
    }
}
