//! An embedded, file-backed [`Backend`] on `redb`: data and versions survive a restart.
//!
//! Each bucket is one table (`kv:<label>`) mapping the key to its version (8 bytes, big endian)
//! followed by the value. A `meta` table holds the last version handed out, so versions stay unique
//! across keys, deletes and restarts. Compare-and-swap and increment read and write inside one write
//! transaction, which `redb` serialises, so they are atomic against every other writer of the file.
//! Every commit is durable (fsync) before it answers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::redb::{
    Database, ReadableDatabase as _, ReadableTable as _, TableDefinition, TableError,
    WriteTransaction,
};

use super::{Backend, BackendError, KeyPage, Swap, Version, Versioned};

/// Keys per [`Backend::list_keys`] page.
const PAGE_SIZE: usize = 1000;

/// The table of bookkeeping values.
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

/// The key in [`META`] holding the last version handed out.
const LAST_VERSION: &str = "last_version";

/// The length of the version prefix of every stored entry.
const VERSION_LEN: usize = 8;

/// Key-value data in one `redb` file; clones share the open database.
#[derive(Clone, Debug)]
pub struct RedbBackend {
    db: Arc<Database>,
    path: Arc<PathBuf>,
}

/// A failed `redb` operation, as the guest sees it.
fn db_error(err: impl std::fmt::Display) -> BackendError {
    BackendError::new(format!("redb: {err}"))
}

/// The table holding bucket `bucket`.
fn table_name(bucket: &str) -> String {
    format!("kv:{bucket}")
}

fn definition(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

/// Splits a stored entry into its version and value.
fn decode(key: &str, entry: &[u8]) -> Result<(u64, Vec<u8>), BackendError> {
    let Some((version, value)) = entry.split_first_chunk::<VERSION_LEN>() else {
        return Err(BackendError::new(format!(
            "redb: entry at {key:?} is too short"
        )));
    };
    Ok((u64::from_be_bytes(*version), value.to_vec()))
}

fn encode(version: u64, value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(VERSION_LEN + value.len());
    entry.extend_from_slice(&version.to_be_bytes());
    entry.extend_from_slice(value);
    entry
}

/// Reads `key` of `bucket` inside a write transaction.
fn read_in(txn: &WriteTransaction, bucket: &str, key: &str) -> Result<Versioned, BackendError> {
    let name = table_name(bucket);
    let table = txn.open_table(definition(&name)).map_err(db_error)?;
    let entry = table.get(key).map_err(db_error)?;
    match entry {
        None => Ok(Versioned::absent()),
        Some(entry) => {
            let (version, value) = decode(key, entry.value())?;
            Ok(Versioned {
                value: Some(value),
                version: Version::Written(version),
            })
        }
    }
}

/// Stores `value` at `key` of `bucket` under a fresh version, inside `txn`.
fn write_in(
    txn: &WriteTransaction,
    bucket: &str,
    key: &str,
    value: &[u8],
) -> Result<(), BackendError> {
    let version = {
        let mut meta = txn.open_table(META).map_err(db_error)?;
        let last = meta
            .get(LAST_VERSION)
            .map_err(db_error)?
            .map_or(0, |last| last.value());
        let next = last
            .checked_add(1)
            .ok_or_else(|| BackendError::new("redb: versions exhausted"))?;
        meta.insert(LAST_VERSION, next).map_err(db_error)?;
        next
    };
    let name = table_name(bucket);
    let mut table = txn.open_table(definition(&name)).map_err(db_error)?;
    table
        .insert(key, encode(version, value).as_slice())
        .map_err(db_error)?;
    Ok(())
}

impl RedbBackend {
    /// Opens the store at `path`, creating the file (and its missing parent folders) if needed.
    ///
    /// Fails when the file cannot be created, is not a `redb` database, is open in another
    /// process, or cannot be written.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|err| {
                BackendError::new(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        let db = Database::create(path)
            .map_err(|err| BackendError::new(format!("cannot open {}: {err}", path.display())))?;
        // Creates the bookkeeping table, and proves the file is writable now rather than at the
        // first request.
        let txn = db
            .begin_write()
            .map_err(|err| BackendError::new(format!("cannot write {}: {err}", path.display())))?;
        txn.open_table(META)
            .map_err(|err| BackendError::new(format!("cannot write {}: {err}", path.display())))?;
        txn.commit()
            .map_err(|err| BackendError::new(format!("cannot write {}: {err}", path.display())))?;
        Ok(Self {
            db: Arc::new(db),
            path: Arc::new(path.to_owned()),
        })
    }

    /// The file the data lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the blocking thread pool: `redb` calls block on disk I/O and locks.
    async fn blocking<T, F>(&self, work: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, BackendError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|err| BackendError::new(format!("redb: task failed: {err}")))?
    }

    /// Runs `work` in one write transaction and commits it when `work` asks to.
    async fn write<T, F>(&self, work: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, bool), BackendError> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            let (answer, commit) = work(&txn)?;
            if commit {
                txn.commit().map_err(db_error)?;
            } else {
                txn.abort().map_err(db_error)?;
            }
            Ok(answer)
        })
        .await
    }

    /// Runs `work` on the bucket's table in a read transaction; `None` when the table does not exist.
    async fn read<T, F>(&self, bucket: &str, work: F) -> Result<Option<T>, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&::redb::ReadOnlyTable<&'static str, &'static [u8]>) -> Result<T, BackendError>
            + Send
            + 'static,
    {
        let name = table_name(bucket);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let table = match txn.open_table(definition(&name)) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(err) => return Err(db_error(err)),
            };
            work(&table).map(Some)
        })
        .await
    }
}

#[async_trait::async_trait]
impl Backend for RedbBackend {
    async fn get(&self, bucket: &str, key: &str) -> Result<Versioned, BackendError> {
        let owned = key.to_owned();
        let read = self
            .read(bucket, move |table| match table.get(owned.as_str()) {
                Ok(None) => Ok(Versioned::absent()),
                Ok(Some(entry)) => {
                    let (version, value) = decode(&owned, entry.value())?;
                    Ok(Versioned {
                        value: Some(value),
                        version: Version::Written(version),
                    })
                }
                Err(err) => Err(db_error(err)),
            })
            .await?;
        Ok(read.unwrap_or_else(Versioned::absent))
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| {
            write_in(txn, &bucket, &key, &value)?;
            Ok(((), true))
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BackendError> {
        let (bucket, key) = (table_name(bucket), key.to_owned());
        self.write(move |txn| {
            let mut table = txn.open_table(definition(&bucket)).map_err(db_error)?;
            let removed = table.remove(key.as_str()).map_err(db_error)?.is_some();
            Ok(((), removed))
        })
        .await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, BackendError> {
        let key = key.to_owned();
        let found = self
            .read(bucket, move |table| {
                table
                    .get(key.as_str())
                    .map(|entry| entry.is_some())
                    .map_err(db_error)
            })
            .await?;
        Ok(found.unwrap_or(false))
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<KeyPage, BackendError> {
        let page = self
            .read(bucket, move |table| {
                let range = match &cursor {
                    Some(after) => table.range::<&str>((
                        std::ops::Bound::Excluded(after.as_str()),
                        std::ops::Bound::Unbounded,
                    )),
                    None => table.range::<&str>(..),
                };
                let mut keys = Vec::new();
                let mut more = false;
                for item in range.map_err(db_error)? {
                    let (key, _) = item.map_err(db_error)?;
                    if keys.len() == PAGE_SIZE {
                        more = true;
                        break;
                    }
                    keys.push(key.value().to_owned());
                }
                let cursor = if more { keys.last().cloned() } else { None };
                Ok(KeyPage { keys, cursor })
            })
            .await?;
        Ok(page.unwrap_or_default())
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Version,
        value: Vec<u8>,
    ) -> Result<Swap, BackendError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| {
            if read_in(txn, &bucket, &key)?.version != expected {
                return Ok((Swap::Conflict, false));
            }
            write_in(txn, &bucket, &key, &value)?;
            Ok((Swap::Swapped, true))
        })
        .await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, BackendError> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| {
            let current = match read_in(txn, &bucket, &key)?.value {
                None => 0,
                Some(value) => std::str::from_utf8(&value)
                    .ok()
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or_else(|| {
                        BackendError::new(format!("value at {key:?} is not an integer"))
                    })?,
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| BackendError::new(format!("increment of {key:?} overflows")))?;
            write_in(txn, &bucket, &key, next.to_string().as_bytes())?;
            Ok((next, true))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "default";

    /// A fresh database file in its own temporary folder, removed on drop.
    struct TempDb {
        dir: PathBuf,
    }

    impl TempDb {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "smp-redb-{name}-{}-{}",
                std::process::id(),
                rand::random::<u64>()
            ));
            Self { dir }
        }

        fn path(&self) -> PathBuf {
            self.dir.join("nested/store.redb")
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[tokio::test]
    async fn data_and_versions_survive_reopening() -> Result<(), BackendError> {
        let tmp = TempDb::new("reopen");
        let before = {
            let store = RedbBackend::open(tmp.path())?;
            store.set(B, "k", b"a".to_vec()).await?;
            store.set("other", "k", b"b".to_vec()).await?;
            let before = store.get(B, "k").await?;
            store.delete(B, "k").await?;
            store.set(B, "k", b"a".to_vec()).await?;
            before
        };
        let store = RedbBackend::open(tmp.path())?;
        assert_eq!(store.path(), tmp.path());
        let after = store.get(B, "k").await?;
        assert_eq!(after.value, Some(b"a".to_vec()));
        assert_ne!(after.version, before.version, "a version was reused");
        assert_eq!(
            store
                .compare_and_swap(B, "k", before.version, b"x".to_vec())
                .await?,
            Swap::Conflict
        );
        store.set(B, "k2", b"c".to_vec()).await?;
        assert_ne!(store.get(B, "k2").await?.version, after.version);
        assert_eq!(
            store
                .compare_and_swap(B, "k", after.version, b"x".to_vec())
                .await?,
            Swap::Swapped
        );
        assert_eq!(store.get("other", "k").await?.value, Some(b"b".to_vec()));
        Ok(())
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let tmp = TempDb::new("garbage");
        let path = tmp.path();
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, b"not a redb file, certainly not").expect("write");
        assert!(RedbBackend::open(&path).is_err());
    }
}
