//! ListMyUserChanges: the caller's phone events, as upstream lists a user's history.

use super::Caller;
use crate::error::Error;
use crate::record::{EventKind, KEPT_EVENTS};
use crate::time::Timestamp;

/// zitadel.change.v1.ChangeQuery, checked by the API layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeQuery {
    /// Start after this sequence (0: from the newest, or the oldest when ascending).
    pub sequence: u64,
    /// At most this many events; 0 means all that are kept.
    pub limit: u32,
    /// Oldest first; upstream's default is newest first.
    pub asc: bool,
}

/// zitadel.change.v1.Change of one stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeView {
    pub change_date: Timestamp,
    pub kind: EventKind,
    pub sequence: u64,
    /// The user who made the change: self-service, so always the caller.
    pub editor_id: String,
    pub resource_owner_id: String,
}

/// ListMyUserChanges: events after `query.sequence` in the asked order (before it when
/// descending), at most `query.limit` of them. Reads only: a user without a record has none.
pub fn list_my_user_changes(caller: &Caller, query: ChangeQuery) -> Result<Vec<ChangeView>, Error> {
    let Some(record) = caller.updater().read(&caller.record_key)? else {
        return Ok(Vec::new());
    };
    let limit = match query.limit {
        0 => KEPT_EVENTS,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let view = |event: &crate::record::Event| ChangeView {
        change_date: event.at,
        kind: event.kind,
        sequence: event.sequence,
        editor_id: record.user_id.clone(),
        resource_owner_id: record.resource_owner.clone(),
    };
    let events = record.events.to_vec().map_err(Error::CorruptRecord)?;
    let events = events.iter();
    Ok(if query.asc {
        events
            .filter(|event| event.sequence > query.sequence)
            .take(limit)
            .map(view)
            .collect()
    } else {
        events
            .rev()
            .filter(|event| query.sequence == 0 || event.sequence < query.sequence)
            .take(limit)
            .map(view)
            .collect()
    })
}
