//! The generated `wasi:keyvalue` host traits, implemented over a [`Backend`](super::Backend).

use wasmtime::component::{HasData, Resource, ResourceTable};

use super::{BackendError, Bucket, Cas, KeyValueCtx, Swap};
use crate::bindings::{atomics, store};

/// Selects [`KeyValueView`] as what the key-value bindings see of the store's data.
pub(crate) struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// A borrowed view of one request's state: the shared backend and the request's resource table.
pub(crate) struct KeyValueView<'a> {
    pub(crate) ctx: &'a KeyValueCtx,
    pub(crate) table: &'a mut ResourceTable,
}

/// The guest-visible form of a backend failure.
fn store_error(err: BackendError) -> store::Error {
    store::Error::Other(err.message)
}

impl KeyValueView<'_> {
    fn label(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.label.clone())
    }

    /// Reads `key` and wraps what it holds in a new `cas` handle.
    async fn new_cas(
        &mut self,
        bucket: String,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        let seen = match self.ctx.backend.get(&bucket, &key).await {
            Ok(seen) => seen,
            Err(err) => return Ok(Err(store_error(err))),
        };
        let cas = self.table.push(Cas { bucket, key, seen })?;
        Ok(Ok(cas))
    }
}

impl store::Host for KeyValueView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        if !self.ctx.stores.contains(&identifier) {
            return Ok(Err(store::Error::NoSuchStore));
        }
        let bucket = self.table.push(Bucket { label: identifier })?;
        Ok(Ok(bucket))
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let label = self.label(&bucket)?;
        Ok(self
            .ctx
            .backend
            .get(&label, &key)
            .await
            .map(|read| read.value)
            .map_err(store_error))
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.label(&bucket)?;
        Ok(self
            .ctx
            .backend
            .set(&label, &key, value)
            .await
            .map_err(store_error))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.label(&bucket)?;
        Ok(self
            .ctx
            .backend
            .delete(&label, &key)
            .await
            .map_err(store_error))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let label = self.label(&bucket)?;
        Ok(self
            .ctx
            .backend
            .exists(&label, &key)
            .await
            .map_err(store_error))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let label = self.label(&bucket)?;
        Ok(self
            .ctx
            .backend
            .list_keys(&label, cursor)
            .await
            .map(|page| store::KeyResponse {
                keys: page.keys,
                cursor: page.cursor,
            })
            .map_err(store_error))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        let label = self.label(&bucket)?;
        Ok(self
            .ctx
            .backend
            .increment(&label, &key, delta)
            .await
            .map_err(store_error))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { bucket, key, seen } = self.table.delete(cas)?;
        let swapped = self
            .ctx
            .backend
            .compare_and_swap(&bucket, &key, seen.version, value)
            .await;
        match swapped {
            Ok(Swap::Swapped) => Ok(Ok(())),
            Ok(Swap::Conflict) => match self.new_cas(bucket, key).await? {
                Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
                Err(err) => Ok(Err(atomics::CasError::StoreError(err))),
            },
            Err(err) => Ok(Err(atomics::CasError::StoreError(store_error(err)))),
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        let label = self.label(&bucket)?;
        self.new_cas(label, key).await
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        Ok(Ok(self.table.get(&cas)?.seen.value.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use atomics::{Host as _, HostCas as _};
    use store::{Host as _, HostBucket as _};

    use super::*;
    use crate::keyvalue::{Fault, MemoryBackend};

    fn ctx(backend: &MemoryBackend) -> KeyValueCtx {
        KeyValueCtx {
            backend: Arc::new(backend.clone()),
            stores: vec!["default".to_owned()].into(),
        }
    }

    fn borrow(bucket: &Resource<Bucket>) -> Resource<Bucket> {
        Resource::new_borrow(bucket.rep())
    }

    async fn open(view: &mut KeyValueView<'_>) -> wasmtime::Result<Resource<Bucket>> {
        match view.open("default".into()).await? {
            Ok(bucket) => Ok(bucket),
            Err(err) => wasmtime::bail!("open failed: {err:?}"),
        }
    }

    async fn new_cas(
        view: &mut KeyValueView<'_>,
        bucket: &Resource<Bucket>,
    ) -> wasmtime::Result<Resource<Cas>> {
        match view.new(borrow(bucket), "k".into()).await? {
            Ok(cas) => Ok(cas),
            Err(err) => wasmtime::bail!("cas.new failed: {err:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_store_label_is_no_such_store() -> wasmtime::Result<()> {
        let backend = MemoryBackend::new();
        let ctx = ctx(&backend);
        let mut table = ResourceTable::new();
        let mut view = KeyValueView {
            ctx: &ctx,
            table: &mut table,
        };
        assert!(matches!(
            view.open("other".into()).await?,
            Err(store::Error::NoSuchStore)
        ));
        Ok(())
    }

    #[tokio::test]
    async fn bucket_operations_reach_the_backend() -> wasmtime::Result<()> {
        let backend = MemoryBackend::new();
        let ctx = ctx(&backend);
        let mut table = ResourceTable::new();
        let mut view = KeyValueView {
            ctx: &ctx,
            table: &mut table,
        };
        let bucket = open(&mut view).await?;
        assert!(matches!(
            view.set(borrow(&bucket), "k".into(), b"v".to_vec()).await?,
            Ok(())
        ));
        assert_eq!(backend.snapshot("default", "k"), Some(b"v".to_vec()));
        assert!(matches!(
            view.get(borrow(&bucket), "k".into()).await?,
            Ok(Some(v)) if v == b"v"
        ));
        assert!(matches!(
            view.exists(borrow(&bucket), "k".into()).await?,
            Ok(true)
        ));
        assert!(matches!(
            view.list_keys(borrow(&bucket), None).await?,
            Ok(store::KeyResponse { keys, cursor: None }) if keys == ["k"]
        ));
        assert!(matches!(
            view.delete(borrow(&bucket), "k".into()).await?,
            Ok(())
        ));
        assert!(matches!(
            view.get(borrow(&bucket), "k".into()).await?,
            Ok(None)
        ));
        assert!(matches!(
            view.increment(borrow(&bucket), "n".into(), 3).await?,
            Ok(3)
        ));
        store::HostBucket::drop(&mut view, bucket).await?;
        assert!(view.table.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn swap_succeeds_on_unchanged_key_including_absent() -> wasmtime::Result<()> {
        let backend = MemoryBackend::new();
        let ctx = ctx(&backend);
        let mut table = ResourceTable::new();
        let mut view = KeyValueView {
            ctx: &ctx,
            table: &mut table,
        };
        let bucket = open(&mut view).await?;
        let cas = new_cas(&mut view, &bucket).await?;
        assert!(matches!(view.current(borrow_cas(&cas)).await?, Ok(None)));
        assert!(matches!(view.swap(cas, b"1".to_vec()).await?, Ok(())));
        assert_eq!(backend.snapshot("default", "k"), Some(b"1".to_vec()));

        let cas = new_cas(&mut view, &bucket).await?;
        assert!(matches!(view.current(borrow_cas(&cas)).await?, Ok(Some(v)) if v == b"1"));
        assert!(matches!(view.swap(cas, b"2".to_vec()).await?, Ok(())));
        assert_eq!(backend.snapshot("default", "k"), Some(b"2".to_vec()));
        Ok(())
    }

    fn borrow_cas(cas: &Resource<Cas>) -> Resource<Cas> {
        Resource::new_borrow(cas.rep())
    }

    #[tokio::test]
    async fn swap_on_changed_key_fails_with_a_fresh_handle() -> wasmtime::Result<()> {
        let backend = MemoryBackend::new();
        let ctx = ctx(&backend);
        let mut table = ResourceTable::new();
        let mut view = KeyValueView {
            ctx: &ctx,
            table: &mut table,
        };
        let bucket = open(&mut view).await?;
        let cas = new_cas(&mut view, &bucket).await?;
        backend.insert("default", "k", b"other".to_vec());

        let fresh = match view.swap(cas, b"mine".to_vec()).await? {
            Err(atomics::CasError::CasFailed(fresh)) => fresh,
            other => wasmtime::bail!("expected cas-failed, got {other:?}"),
        };
        assert_eq!(backend.snapshot("default", "k"), Some(b"other".to_vec()));
        assert!(matches!(
            view.current(borrow_cas(&fresh)).await?,
            Ok(Some(v)) if v == b"other"
        ));
        assert!(matches!(view.swap(fresh, b"mine".to_vec()).await?, Ok(())));
        assert_eq!(backend.snapshot("default", "k"), Some(b"mine".to_vec()));
        Ok(())
    }

    #[tokio::test]
    async fn faulty_swap_writes_and_reports_failure_with_the_written_value() -> wasmtime::Result<()>
    {
        let backend = MemoryBackend::new();
        let ctx = ctx(&backend);
        let mut table = ResourceTable::new();
        let mut view = KeyValueView {
            ctx: &ctx,
            table: &mut table,
        };
        let bucket = open(&mut view).await?;
        let cas = new_cas(&mut view, &bucket).await?;
        backend.set_fault(Fault::SwapWritesThenReportsFailure);
        let fresh = match view.swap(cas, b"mine".to_vec()).await? {
            Err(atomics::CasError::CasFailed(fresh)) => fresh,
            other => wasmtime::bail!("expected cas-failed, got {other:?}"),
        };
        assert!(matches!(
            view.current(borrow_cas(&fresh)).await?,
            Ok(Some(v)) if v == b"mine"
        ));
        atomics::HostCas::drop(&mut view, fresh).await?;
        Ok(())
    }

    #[tokio::test]
    async fn injected_faults_reach_the_guest_as_store_errors() -> wasmtime::Result<()> {
        let backend = MemoryBackend::new();
        let ctx = ctx(&backend);
        let mut table = ResourceTable::new();
        let mut view = KeyValueView {
            ctx: &ctx,
            table: &mut table,
        };
        let bucket = open(&mut view).await?;
        let injected =
            |e: &store::Error| matches!(e, store::Error::Other(m) if m == "injected fault");

        backend.set_fault(Fault::FailGets);
        assert!(matches!(view.get(borrow(&bucket), "k".into()).await?, Err(e) if injected(&e)));
        assert!(matches!(view.new(borrow(&bucket), "k".into()).await?, Err(e) if injected(&e)));

        backend.set_fault(Fault::None);
        let cas = new_cas(&mut view, &bucket).await?;
        backend.set_fault(Fault::FailSets);
        assert!(matches!(
            view.set(borrow(&bucket), "k".into(), b"v".to_vec()).await?,
            Err(e) if injected(&e)
        ));
        assert!(matches!(
            view.swap(cas, b"v".to_vec()).await?,
            Err(atomics::CasError::StoreError(e)) if injected(&e)
        ));
        assert_eq!(backend.snapshot("default", "k"), None);
        Ok(())
    }
}
