//! A user's older audit events, kept out of the record so that every request reads and writes a
//! record of bounded size, whatever the user's history.
//!
//! The record keeps its newest events inline. When a commit leaves more than [`INLINE_MAX`] there,
//! the oldest are moved into a chunk: an immutable value under a key of its own, written before the
//! record's compare-and-swap that references it. The swap stays the one commit point: a chunk
//! whose swap lost is referenced by nothing, so it is never read as history (and is deleted);
//! the chunks of a record form a list from the newest back, each naming the one before it.
//! Records written before chunks existed keep up to 100 events inline and are split on their next
//! write.

use super::{Events, UserRecord};
use serde::{Deserialize, Serialize};

/// Most events a record keeps inline after a commit; past it, the oldest move into a chunk.
pub const INLINE_MAX: usize = 48;
/// Events left inline by a move: the newest, so that a change's own events (at most three) are
/// still in the record it wrote, where the audit lines of a retried request find them.
pub const INLINE_KEPT: usize = 16;

/// Where a record's older events are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The key of the newest chunk.
    pub newest: String,
    /// Events held by all the chunks.
    pub events: u64,
}

/// One chunk of older events, oldest first, and the key of the chunk before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryChunk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub events: Events,
}

impl HistoryChunk {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain structs with string keys: serialising into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("a history chunk: {e}"))
    }
}

/// The key of a chunk of the record at `record_key`, whose newest event is `last_sequence` (a
/// label for people reading the store); `unique` (random) keeps a losing writer's chunk apart
/// from the winner's.
pub fn chunk_key(record_key: &str, last_sequence: u64, unique: u64) -> String {
    format!("history:{record_key}:{last_sequence}:{unique:016x}")
}

impl UserRecord {
    /// Moves the oldest events into a new chunk when more than [`INLINE_MAX`] are inline: the
    /// record then references the chunk under `key(last sequence in it)`, which the caller must
    /// store before the record. `None` when nothing moves.
    pub fn spill(&mut self, key: impl FnOnce(u64) -> String) -> Option<(String, HistoryChunk)> {
        if self.events.len() <= INLINE_MAX {
            return None;
        }
        let moved = self.events.take_oldest(self.events.len() - INLINE_KEPT);
        let count = moved.len() as u64;
        // Events are numbered without gaps, the inline ones newest: the chunk ends just before.
        let key = key(self.sequence.saturating_sub(self.events.len() as u64));
        let previous = self.history.take();
        self.history = Some(History {
            newest: key.clone(),
            events: previous.as_ref().map_or(0, |h| h.events) + count,
        });
        let chunk = HistoryChunk {
            previous: previous.map(|h| h.newest),
            events: moved,
        };
        Some((key, chunk))
    }
}
