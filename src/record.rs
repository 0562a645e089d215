//! The per-user record kept in the key-value store: phone state, pending code, event sequence,
//! and the ids of recent updates (which make retried updates idempotent).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// How many recent operation ids a record remembers. An update is recognised as done when
/// its id is still here on re-read, which needs only the few updates racing with it.
pub const REMEMBERED_OPERATIONS: usize = 64;
const SCHEMA: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub schema: u32,
    pub user_id: String,
    pub resource_owner: String,
    /// Events written for this user; upstream counts every event, so clients can order changes.
    pub sequence: u64,
    pub created: Timestamp,
    pub changed: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    /// When codes were issued in the last hour (rate limits); kept across phone removal so
    /// that remove-and-set cannot reset them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes_issued: Vec<Timestamp>,
    #[serde(default)]
    pub applied: Vec<AppliedOperation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    /// E.164.
    pub number: String,
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<PendingCode>,
}

/// A verification code waiting to be used; only its keyed hash is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCode {
    pub hash: String,
    pub created: Timestamp,
    pub expires: Timestamp,
    #[serde(default)]
    pub failed_attempts: u32,
    /// The operation that issued the code; the delivery outcome is filed against it.
    pub issued_by: String,
    #[serde(default)]
    pub delivery: Delivery,
}

/// What became of the SMS carrying a code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Delivery {
    /// Not attempted yet (the answer goes out before the SMS).
    #[default]
    Pending,
    Sent {
        provider_id: String,
        at: Timestamp,
    },
    Failed {
        retryable: bool,
        reason: String,
        at: Timestamp,
    },
}

/// One update that this record already contains.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedOperation {
    pub id: String,
    /// The record's sequence right after this update.
    pub sequence: u64,
    pub at: Timestamp,
}

impl UserRecord {
    pub fn new(user_id: &str, resource_owner: &str, now: Timestamp) -> Self {
        UserRecord {
            schema: SCHEMA,
            user_id: user_id.into(),
            resource_owner: resource_owner.into(),
            sequence: 0,
            created: now,
            changed: now,
            phone: None,
            codes_issued: Vec::new(),
            applied: Vec::new(),
        }
    }

    /// The empty record this one grew from: same user and creation time, no events. Records are
    /// created in this form (exactly once, `store::create`) and changed only by swaps after that.
    pub fn genesis(&self) -> UserRecord {
        UserRecord::new(&self.user_id, &self.resource_owner, self.created)
    }

    /// Records `events` new events at `now` under operation `id`.
    pub fn commit(&mut self, id: &str, events: u64, now: Timestamp) -> AppliedOperation {
        self.sequence += events;
        if events > 0 {
            self.changed = now;
        }
        let applied = AppliedOperation {
            id: id.into(),
            sequence: self.sequence,
            at: now,
        };
        self.applied.push(applied.clone());
        if self.applied.len() > REMEMBERED_OPERATIONS {
            let excess = self.applied.len() - REMEMBERED_OPERATIONS;
            self.applied.drain(..excess);
        }
        applied
    }

    pub fn find_operation(&self, id: &str) -> Option<&AppliedOperation> {
        self.applied.iter().rev().find(|op| op.id == id)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs with string keys into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let record: UserRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if record.schema != SCHEMA {
            return Err(format!("unknown record schema {}", record.schema));
        }
        Ok(record)
    }
}

/// The store key of a user's record. Both parts are escaped so that no choice of ids can
/// make two users share a key.
pub fn record_key(resource_owner: &str, user_id: &str) -> String {
    format!("user:{}:{}", escape(resource_owner), escape(user_id))
}

fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_collide_across_the_separator() {
        assert_ne!(record_key("a:b", "c"), record_key("a", "b:c"));
        assert_eq!(record_key("org-1", "user@x"), "user:org-1:user@x");
        assert_eq!(record_key("o", "ü/"), "user:o:%C3%BC%2F");
    }

    #[test]
    fn commit_counts_events_and_remembers_recent_operations() {
        let mut record = UserRecord::new("u", "o", Timestamp::new(1, 0));
        let op = record.commit("op-1", 2, Timestamp::new(5, 0));
        assert_eq!(
            (op.sequence, record.sequence, record.changed.seconds),
            (2, 2, 5)
        );
        for i in 0..REMEMBERED_OPERATIONS + 5 {
            record.commit(&format!("x{i}"), 0, Timestamp::new(9, 0));
        }
        assert_eq!(record.applied.len(), REMEMBERED_OPERATIONS);
        assert!(record.find_operation("op-1").is_none());
        assert_eq!(
            record.changed.seconds, 5,
            "zero-event updates keep changeDate"
        );
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let mut record = UserRecord::new("u", "o", Timestamp::new(1, 0));
        record.phone = Some(Phone {
            number: "+41710000000".into(),
            verified: false,
            code: None,
        });
        assert_eq!(UserRecord::from_bytes(&record.to_bytes()), Ok(record));
        assert!(UserRecord::from_bytes(b"{").is_err());
        assert!(UserRecord::from_bytes(br#"{"schema":99}"#).is_err());
    }
}
