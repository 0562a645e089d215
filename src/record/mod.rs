//! The per-user record kept in the key-value store: phone state, pending code, event sequence,
//! the ids of recent updates (which make retried updates idempotent), and the audit trail: the
//! newest events, written in the same compare-and-swap as the change they record, and a
//! reference to the older ones (module `history`).

pub(crate) mod history;
mod lazy_list;

pub use history::{History, HistoryChunk, chunk_key};
pub use lazy_list::LazyList;

/// A record's audit events, oldest first.
pub type Events = LazyList<Event>;

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// How many recent operation ids a record remembers. An update is recognised as done when
/// its id is still here on re-read, which needs only the few updates racing with it.
pub const REMEMBERED_OPERATIONS: usize = 64;
const SCHEMA: u32 = 1;

/// Events ListMyUserChanges lists when the query names no limit.
pub const DEFAULT_CHANGES: usize = 100;
/// Longest client id kept on an event (ids come from tokens; ZITADEL's are about 40 bytes).
const MAX_CLIENT_CHARS: usize = 128;

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
    pub applied: LazyList<AppliedOperation>,
    /// The newest events, oldest first: at most [`INLINE_MAX`] once written.
    #[serde(default, skip_serializing_if = "Events::is_empty")]
    pub events: Events,
    /// Events that records written before 2026-12-07 dropped (they kept the newest 100).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_dropped: u64,
    /// The older events, in chunks of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One audit event: what happened to the phone, when, and through which client. The user and
/// organisation are the record's. Short field names: a record holds up to 48 of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "seq")]
    pub sequence: u64,
    #[serde(with = "compact_time")]
    pub at: Timestamp,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The token's client id (`client_id`, else `azp`), when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The last two digits of the number concerned: never more of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last2: Option<String>,
}

/// What an event records. Stored kinds advance the record's sequence; the others
/// (`CodeSent`, `CodeDeliveryFailed`, `CodeRefused`, `VerificationRefused`) change no phone state and
/// are only written to the audit log (see `domain::audit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "changed")]
    PhoneChanged,
    #[serde(rename = "code.added")]
    CodeAdded,
    #[serde(rename = "verified")]
    Verified,
    #[serde(rename = "verification.failed")]
    VerificationFailed,
    #[serde(rename = "code.voided")]
    CodeVoided,
    #[serde(rename = "removed")]
    Removed,
    #[serde(rename = "code.sent")]
    CodeSent,
    #[serde(rename = "code.delivery.failed")]
    CodeDeliveryFailed,
    #[serde(rename = "code.refused")]
    CodeRefused,
    #[serde(rename = "verification.refused")]
    VerificationRefused,
    /// Written to ZITADEL (write-through): logged, not stored.
    #[serde(rename = "synced")]
    Synced,
    /// Not written to ZITADEL: logged, not stored.
    #[serde(rename = "sync_failed")]
    SyncFailed,
}

impl EventKind {
    /// The event type's key, upstream's where upstream has the event.
    pub fn key(self) -> &'static str {
        match self {
            EventKind::PhoneChanged => "user.human.phone.changed",
            EventKind::CodeAdded => "user.human.phone.code.added",
            EventKind::Verified => "user.human.phone.verified",
            EventKind::VerificationFailed => "user.human.phone.verification.failed",
            EventKind::CodeVoided => "user.human.phone.code.voided",
            EventKind::Removed => "user.human.phone.removed",
            EventKind::CodeSent => "user.human.phone.code.sent",
            EventKind::CodeDeliveryFailed => "user.human.phone.code.delivery.failed",
            EventKind::CodeRefused => "user.human.phone.code.refused",
            EventKind::VerificationRefused => "user.human.phone.verification.refused",
            EventKind::Synced => "user.human.phone.synced",
            EventKind::SyncFailed => "user.human.phone.sync_failed",
        }
    }

    /// English text for `LocalizedMessage.localized_message`.
    pub fn message(self) -> &'static str {
        match self {
            EventKind::PhoneChanged => "Phone changed",
            EventKind::CodeAdded => "Phone verification code generated",
            EventKind::Verified => "Phone verified",
            EventKind::VerificationFailed => "Phone verification failed",
            EventKind::CodeVoided => "Phone verification code void after too many failed attempts",
            EventKind::Removed => "Phone removed",
            EventKind::CodeSent => "Phone verification code sent",
            EventKind::CodeDeliveryFailed => "Phone verification code not delivered",
            EventKind::CodeRefused => "Phone verification code refused by an abuse guard",
            EventKind::VerificationRefused => "Phone verification refused: the code is void",
            EventKind::Synced => "Phone written to ZITADEL",
            EventKind::SyncFailed => "Phone not written to ZITADEL",
        }
    }
}

/// An event's time as `[seconds, nanos]`: a third of the bytes of the named fields, times 100.
mod compact_time {
    use crate::time::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        (at.seconds, at.nanos).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let (seconds, nanos) = <(i64, u32)>::deserialize(deserializer)?;
        Ok(Timestamp::new(seconds, nanos))
    }
}

/// The last two digits of `number`, the only part of it events keep.
pub fn last_two_digits(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(2)..].iter().collect()
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
    /// The provider made this code and checks it (Twilio Verify): `hash` is empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_provider: bool,
}

/// What is known of the SMS carrying a code. Only failures are stored: a sent SMS is an audit
/// line (`code.sent`, with the provider's id), which spares every code a second durable write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Delivery {
    /// No failure known: not attempted yet (the answer goes out before the SMS), or sent.
    #[default]
    Pending,
    /// Sent; written by versions before 2026-11-27 only, still read.
    Sent { provider_id: String, at: Timestamp },
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
            applied: LazyList::default(),
            events: Events::default(),
            events_dropped: 0,
            history: None,
        }
    }

    /// Adds events of `kinds` to be committed with the next [`UserRecord::commit`]: their
    /// sequences follow the record's, their time is the commit's.
    pub fn add_events(&mut self, kinds: &[EventKind], client: Option<&str>, number: Option<&str>) {
        let pending = self.pending_events();
        let client: Option<String> = client.map(|id| id.chars().take(MAX_CLIENT_CHARS).collect());
        let last2 = number.map(last_two_digits);
        for (i, kind) in kinds.iter().enumerate() {
            self.events.push(Event {
                sequence: self.sequence + pending + i as u64 + 1,
                at: self.changed,
                kind: *kind,
                client: client.clone(),
                last2: last2.clone(),
            });
        }
    }

    /// Events added but not yet committed.
    fn pending_events(&self) -> u64 {
        let committed = self.sequence;
        let added = self.events.added();
        added
            .iter()
            .rev()
            .take_while(|event| event.sequence > committed)
            .count() as u64
    }

    /// Records `events` new events at `now` under operation `id`: the sequence grows by
    /// `events`, and the events added since the last commit get `now` as their time.
    pub fn commit(&mut self, id: &str, events: u64, now: Timestamp) -> AppliedOperation {
        // Stored events were committed when they were stored: only added ones can be newer.
        let committed = self.sequence;
        for event in self.events.added_newest_first() {
            if event.sequence <= committed {
                break;
            }
            event.at = now;
        }
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
        self.applied.keep_newest(REMEMBERED_OPERATIONS);
        applied
    }

    /// The stored events of the operation that ended at `sequence` with `count` events (none
    /// when the trail does not parse).
    pub fn events_ending_at(&self, sequence: u64, count: u64) -> Vec<Event> {
        let first = sequence.saturating_sub(count);
        let mut events = self
            .events
            .newest_while(|event| event.sequence > first)
            .unwrap_or_default();
        events.retain(|event| event.sequence <= sequence);
        events
    }

    /// The remembered update `id`, if this record contains it.
    pub fn find_operation(&self, id: &str) -> Result<Option<AppliedOperation>, String> {
        // A stored entry with this id holds it as serde_json wrote it: only those are parsed.
        let quoted = serde_json::to_string(id).map_err(|e| e.to_string())?;
        self.applied
            .find_newest(|text| text.contains(&quoted), |op| op.id == id)
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

/// The part of a record that GetMyPhone answers from. Reading only this skips the audit events,
/// applied operations and code state (serde passes over them without building them), which are
/// most of a busy user's record: the read that every GetMyPhone does stays cheap.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RecordHead {
    pub schema: u32,
    pub resource_owner: String,
    pub sequence: u64,
    pub created: Timestamp,
    pub changed: Timestamp,
    #[serde(default)]
    pub phone: Option<PhoneHead>,
}

/// A phone as [`RecordHead`] reads it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PhoneHead {
    pub number: String,
    pub verified: bool,
}

impl RecordHead {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        // Parsing stops before `applied` when the bytes allow it: a busy user's applied
        // operations and audit events are most of the record, and even skipping them costs.
        let head: RecordHead = match head_prefix(bytes) {
            Some(prefix) => serde_json::from_slice(&prefix)
                .or_else(|_| serde_json::from_slice(bytes))
                .map_err(|e| e.to_string())?,
            None => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
        };
        if head.schema != SCHEMA {
            return Err(format!("unknown record schema {}", head.schema));
        }
        Ok(head)
    }
}

/// The record's fields before `applied`, as a JSON object of their own. [`UserRecord::to_bytes`]
/// writes the fields in declaration order, so all of [`RecordHead`] comes before `applied`, which
/// every record has. The first `,"applied":` is that field: inside a JSON string a `"` is always
/// escaped, so the pattern cannot occur there, and no nested object has that key. Records of
/// another shape have no such prefix and are read whole.
fn head_prefix(bytes: &[u8]) -> Option<Vec<u8>> {
    const APPLIED: &[u8] = b",\"applied\":";
    if bytes.first() != Some(&b'{') {
        return None;
    }
    // Every GetMyPhone searches here: memmem's vectorised search, not a window at every byte.
    let at = memchr::memmem::find(bytes, APPLIED)?;
    let mut prefix = Vec::with_capacity(at + 1);
    prefix.extend_from_slice(&bytes[..at]);
    prefix.push(b'}');
    Some(prefix)
}

/// The store key of a user's record. Both parts are escaped so that no choice of ids can
/// make two users share a key.
pub fn record_key(resource_owner: &str, user_id: &str) -> String {
    format!("user:{}:{}", escape(resource_owner), escape(user_id))
}

pub(crate) fn escape(part: &str) -> String {
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
        assert_eq!(record.find_operation("op-1"), Ok(None));
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

    #[test]
    fn the_head_reads_what_the_whole_record_says() {
        let mut record = UserRecord::new("u", "o", Timestamp::new(1, 0));
        record.phone = Some(Phone {
            number: "+41710000000".into(),
            verified: true,
            code: None,
        });
        for i in 0..3 {
            record.commit(&format!("op-{i}"), 2, Timestamp::new(10 + i, 0));
        }
        record.codes_issued.push(Timestamp::new(10, 0));
        let head = RecordHead::from_bytes(&record.to_bytes()).expect("a record's head reads");
        assert_eq!(
            head,
            RecordHead {
                schema: SCHEMA,
                resource_owner: "o".into(),
                sequence: 6,
                created: Timestamp::new(1, 0),
                changed: Timestamp::new(12, 0),
                phone: Some(PhoneHead {
                    number: "+41710000000".into(),
                    verified: true,
                }),
            }
        );
        record.phone = None;
        let head = RecordHead::from_bytes(&record.to_bytes()).expect("a record's head reads");
        assert_eq!(head.phone, None);
        assert!(
            head_prefix(&record.to_bytes()).is_some(),
            "the head is read alone"
        );
        assert!(RecordHead::from_bytes(b"{").is_err());
        assert!(RecordHead::from_bytes(br#"{"schema":99}"#).is_err());
    }

    #[test]
    fn the_head_is_found_whatever_the_strings_hold() {
        let tricky = r#"x","applied":[],"phone":{"number":"+1","verified":true}}"#;
        let mut record = UserRecord::new(tricky, tricky, Timestamp::new(1, 0));
        record.phone = Some(Phone {
            number: "+41710000000".into(),
            verified: false,
            code: Some(PendingCode {
                hash: tricky.into(),
                created: Timestamp::new(1, 0),
                expires: Timestamp::new(2, 0),
                failed_attempts: 0,
                issued_by: tricky.into(),
                delivery: Delivery::Failed {
                    retryable: true,
                    reason: tricky.into(),
                    at: Timestamp::new(1, 0),
                },
                by_provider: false,
            }),
        });
        record.commit(tricky, 1, Timestamp::new(3, 0));
        record.add_events(
            &[EventKind::PhoneChanged],
            Some(tricky),
            Some("+41710000000"),
        );
        let bytes = record.to_bytes();
        let prefix = head_prefix(&bytes).expect("a prefix");
        assert!(!String::from_utf8_lossy(&prefix).contains("\"sequence\":1,\"at\""));
        let head = RecordHead::from_bytes(&bytes).expect("reads");
        assert_eq!(
            (head.resource_owner.as_str(), head.phone.map(|p| p.verified)),
            (tricky, Some(false))
        );
        // A record without the usual order (hand-written, or from another writer) reads whole.
        // (serde_json's own map sorts the keys: `applied` comes first.)
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let reordered = serde_json::to_vec(&value).expect("JSON");
        assert!(reordered.starts_with(br#"{"applied":"#));
        assert_eq!(head_prefix(&reordered), None);
        assert_eq!(
            RecordHead::from_bytes(&reordered).map(|h| h.sequence),
            Ok(1)
        );
    }
}
