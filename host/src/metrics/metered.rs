//! The host's store and SMS sender, metered: store errors by operation, auth cache reads by
//! kind, SMS deliveries by outcome.

use std::sync::Arc;

use crate::keyvalue::{Backend, BackendError, KeyPage, Swap, Version, Versioned};
use crate::sms::{SendError, SmsMessage, SmsSender};

use super::Metrics;

/// The cache kind of an auth cache key `auth:<kind>:...`: its characters are checked, so that a
/// key cannot put arbitrary text into a label.
pub(super) fn cache_kind(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("auth:")?;
    let (kind, _) = rest.split_once(':')?;
    let plain = !kind.is_empty()
        && kind.len() <= 32
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    Some(if plain { kind } else { "other" })
}

/// The host's store, counting failed calls by operation and reads of auth cache entries.
pub(crate) struct MeteredBackend {
    pub(crate) inner: Arc<dyn Backend>,
    pub(crate) metrics: Arc<Metrics>,
}

impl MeteredBackend {
    fn counted<T>(
        &self,
        operation: &'static str,
        result: Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        if result.is_err() {
            self.metrics.count_store_error(operation);
        }
        result
    }
}

#[async_trait::async_trait]
impl Backend for MeteredBackend {
    async fn get(&self, bucket: &str, key: &str) -> Result<Versioned, BackendError> {
        let read = self.counted("get", self.inner.get(bucket, key).await);
        if let Ok(read) = &read {
            self.metrics.count_cache_lookup(key, read.value.is_some());
        }
        read
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), BackendError> {
        self.counted("set", self.inner.set(bucket, key, value).await)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), BackendError> {
        self.counted("delete", self.inner.delete(bucket, key).await)
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, BackendError> {
        self.counted("exists", self.inner.exists(bucket, key).await)
    }

    async fn list_keys(
        &self,
        bucket: &str,
        cursor: Option<String>,
    ) -> Result<KeyPage, BackendError> {
        self.counted("list_keys", self.inner.list_keys(bucket, cursor).await)
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Version,
        value: Vec<u8>,
    ) -> Result<Swap, BackendError> {
        let swapped = self
            .inner
            .compare_and_swap(bucket, key, expected, value)
            .await;
        self.counted("compare_and_swap", swapped)
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, BackendError> {
        self.counted("increment", self.inner.increment(bucket, key, delta).await)
    }
}

/// The host's SMS sender, counting deliveries by outcome.
pub(crate) struct MeteredSms {
    pub(crate) inner: Arc<dyn SmsSender>,
    pub(crate) metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl SmsSender for MeteredSms {
    async fn send(&self, message: SmsMessage) -> Result<String, SendError> {
        let sent = self.inner.send(message).await;
        self.metrics.count_sms(match &sent {
            Ok(_) => "delivered",
            Err(SendError::Retryable(_)) => "retryable",
            Err(SendError::Permanent(_)) => "permanent",
        });
        sent
    }

    fn makes_codes(&self) -> bool {
        self.inner.makes_codes()
    }

    async fn check(&self, recipient: String, code: String) -> Result<bool, SendError> {
        self.inner.check(recipient, code).await
    }
}
