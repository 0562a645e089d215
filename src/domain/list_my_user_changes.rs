//! ListMyUserChanges: the caller's phone events, as upstream lists a user's history.

use super::Caller;
use crate::error::Error;
use crate::record::{DEFAULT_CHANGES, Event, EventKind};
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
/// The record's inline events are the newest; older ones are read from its history chunks, newest
/// chunk first, only as far back as the query needs.
pub fn list_my_user_changes(caller: &Caller, query: ChangeQuery) -> Result<Vec<ChangeView>, Error> {
    let updater = caller.updater();
    let Some(record) = updater.read(&caller.record_key)? else {
        return Ok(Vec::new());
    };
    let limit = match query.limit {
        0 => DEFAULT_CHANGES,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let view = |event: &Event| ChangeView {
        change_date: event.at,
        kind: event.kind,
        sequence: event.sequence,
        editor_id: record.user_id.clone(),
        resource_owner_id: record.resource_owner.clone(),
    };
    // Runs of events, newest run first, each oldest first: inline, then chunk by chunk.
    let mut runs = vec![record.events.to_vec().map_err(Error::CorruptRecord)?];
    let mut next = record
        .history
        .as_ref()
        .map(|history| history.newest.clone());
    let enough = |runs: &[Vec<Event>]| {
        let oldest = runs.last().and_then(|run| run.first()).map(|e| e.sequence);
        if query.asc {
            // Every event after `query.sequence` is in hand once a run starts at or before it.
            oldest.is_some_and(|oldest| oldest <= query.sequence.saturating_add(1))
        } else {
            let wanted = runs
                .iter()
                .flatten()
                .filter(|e| query.sequence == 0 || e.sequence < query.sequence)
                .count();
            wanted >= limit
        }
    };
    while let Some(key) = next.take_if(|_| !enough(&runs)) {
        let chunk = updater.read_history_chunk(&key)?;
        runs.push(chunk.events.to_vec().map_err(Error::CorruptRecord)?);
        next = chunk.previous;
    }
    let newest_first = runs.iter().flat_map(|run| run.iter().rev());
    Ok(if query.asc {
        let mut after: Vec<&Event> = newest_first
            .take_while(|event| event.sequence > query.sequence)
            .collect();
        after.reverse();
        after.into_iter().take(limit).map(view).collect()
    } else {
        newest_first
            .filter(|event| query.sequence == 0 || event.sequence < query.sequence)
            .take(limit)
            .map(view)
            .collect()
    })
}
