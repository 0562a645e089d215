//! The lists a record keeps whole but a change does not look into (the audit events, the
//! applied operations), as they are kept: entries read from the store stay the JSON text they were
//! stored as, and only the entries a change adds are built. A busy user's record holds 100 events
//! and 64 operations, nearly all of its bytes; building and writing those out field by field was
//! most of what a SetMyPhone spent on its record. Readers that need old entries
//! (ListMyUserChanges, the check for an update already applied) parse only those they reach.

use serde::de::DeserializeOwned;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Entries of one list, oldest first.
#[derive(Clone, Debug)]
pub struct LazyList<T> {
    /// As read from the store, untouched.
    stored: Vec<Box<RawValue>>,
    /// Added since the record was read, after the stored ones.
    added: Vec<T>,
}

impl<T> Default for LazyList<T> {
    fn default() -> Self {
        LazyList {
            stored: Vec::new(),
            added: Vec::new(),
        }
    }
}

impl<T: Clone + DeserializeOwned> LazyList<T> {
    pub fn len(&self) -> usize {
        self.stored.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, oldest first. A stored entry that does not parse makes the record corrupt.
    pub fn to_vec(&self) -> Result<Vec<T>, String> {
        let mut entries = Vec::with_capacity(self.len());
        for raw in &self.stored {
            entries.push(parse(raw)?);
        }
        entries.extend(self.added.iter().cloned());
        Ok(entries)
    }

    /// The newest entries, oldest first, from the newest back to the first for which `wanted`
    /// is false: only those are parsed.
    pub fn newest_while(&self, wanted: impl Fn(&T) -> bool) -> Result<Vec<T>, String> {
        let mut newest = Vec::new();
        for entry in self.added.iter().rev() {
            if !wanted(entry) {
                newest.reverse();
                return Ok(newest);
            }
            newest.push(entry.clone());
        }
        for raw in self.stored.iter().rev() {
            let entry = parse(raw)?;
            if !wanted(&entry) {
                break;
            }
            newest.push(entry);
        }
        newest.reverse();
        Ok(newest)
    }

    /// The newest entry that `matches`; of the stored ones only those whose JSON text
    /// `may_match` are parsed (a cheap test on the text that holds for every match).
    pub fn find_newest(
        &self,
        may_match: impl Fn(&str) -> bool,
        matches: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, String> {
        if let Some(entry) = self.added.iter().rev().find(|entry| matches(entry)) {
            return Ok(Some(entry.clone()));
        }
        for raw in self.stored.iter().rev().filter(|raw| may_match(raw.get())) {
            let entry = parse(raw)?;
            if matches(&entry) {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// The added entries, newest first (only they can be changed).
    pub(super) fn added_newest_first(&mut self) -> impl Iterator<Item = &mut T> {
        self.added.iter_mut().rev()
    }

    pub(super) fn added(&self) -> &[T] {
        &self.added
    }

    pub(super) fn push(&mut self, entry: T) {
        self.added.push(entry);
    }

    /// Keeps the `kept` newest entries; answers how many older ones were dropped.
    pub(super) fn keep_newest(&mut self, kept: usize) -> usize {
        self.take_oldest(self.len().saturating_sub(kept)).len()
    }

    /// Moves the `count` oldest entries out, oldest first; stored ones stay the text they were.
    pub(super) fn take_oldest(&mut self, count: usize) -> LazyList<T> {
        let count = count.min(self.len());
        let from_stored = count.min(self.stored.len());
        LazyList {
            stored: self.stored.drain(..from_stored).collect(),
            added: self.added.drain(..count - from_stored).collect(),
        }
    }
}

fn parse<T: DeserializeOwned>(raw: &RawValue) -> Result<T, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("a stored entry of the record: {e}"))
}

/// Equal when they hold the same entries, however the stored ones are spelt; lists that do not
/// parse are equal when their text and added entries are.
impl<T: Clone + DeserializeOwned + PartialEq> PartialEq for LazyList<T> {
    fn eq(&self, other: &Self) -> bool {
        if self.len() != other.len() {
            return false;
        }
        match (self.to_vec(), other.to_vec()) {
            (Ok(a), Ok(b)) => a == b,
            _ => {
                self.added == other.added
                    && self
                        .stored
                        .iter()
                        .map(|raw| raw.get())
                        .eq(other.stored.iter().map(|raw| raw.get()))
            }
        }
    }
}

impl<T: Clone + DeserializeOwned + Eq> Eq for LazyList<T> {}

impl<T> From<Vec<T>> for LazyList<T> {
    fn from(added: Vec<T>) -> Self {
        LazyList {
            stored: Vec::new(),
            added,
        }
    }
}

impl<T: Serialize> Serialize for LazyList<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.stored.len() + self.added.len()))?;
        for raw in &self.stored {
            seq.serialize_element(raw)?;
        }
        for entry in &self.added {
            seq.serialize_element(entry)?;
        }
        seq.end()
    }
}

impl<'de, T> Deserialize<'de> for LazyList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(LazyList {
            stored: Vec::<Box<RawValue>>::deserialize(deserializer)?,
            added: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, EventKind};
    use crate::time::Timestamp;

    fn event(sequence: u64) -> Event {
        Event {
            sequence,
            at: Timestamp::new(1_800_000_000 + sequence as i64, 5),
            kind: EventKind::CodeAdded,
            client: Some("app".into()),
            last2: Some("42".into()),
        }
    }

    /// `events` as a record read from the store holds them.
    fn stored(events: &[Event]) -> LazyList<Event> {
        let text = serde_json::to_vec(&LazyList::from(events.to_vec())).expect("serialises");
        serde_json::from_slice(&text).expect("reads back")
    }

    fn sequences(trail: &LazyList<Event>) -> Vec<u64> {
        let events = trail.to_vec().expect("parses");
        events.iter().map(|e| e.sequence).collect()
    }

    #[test]
    fn stored_entries_are_written_back_as_they_were_read() {
        // Spacing that serde_json would not write: kept byte for byte.
        let text = r#"[{"seq":1,"at":[1,2],"type":"changed"},{ "seq" : 2,"at":[1,2],"type":"code.added","last2":"07"}]"#;
        let mut events: LazyList<Event> = serde_json::from_str(text).expect("reads");
        assert_eq!(serde_json::to_string(&events).unwrap(), text);
        events.push(event(3));
        let written = serde_json::to_string(&events).unwrap();
        assert!(written.starts_with(&text[..text.len() - 1]), "{written}");
        assert_eq!(sequences(&events), [1, 2, 3]);
        assert_eq!(
            stored(&[event(1)]),
            LazyList::from(vec![event(1)]),
            "equal by content"
        );
    }

    #[test]
    fn the_oldest_are_dropped_first_stored_then_added() {
        let mut events = stored(&[event(1), event(2)]);
        events.push(event(3));
        assert_eq!(events.keep_newest(5), 0);
        assert_eq!(events.keep_newest(2), 1);
        assert_eq!(sequences(&events), [2, 3]);
        assert_eq!(events.keep_newest(0), 2);
        assert!(events.is_empty());
        let mut events = stored(&[event(1)]);
        events.push(event(2));
        events.push(event(3));
        assert_eq!(events.keep_newest(1), 2);
        assert_eq!(sequences(&events), [3]);
    }

    #[test]
    fn the_oldest_move_out_as_they_were_stored() {
        let text =
            r#"[{ "seq":1,"at":[1,2],"type":"changed"},{"seq":2,"at":[1,2],"type":"changed"}]"#;
        let mut events: LazyList<Event> = serde_json::from_str(text).expect("reads");
        events.push(event(3));
        events.push(event(4));
        let oldest = events.take_oldest(3);
        assert_eq!(
            (sequences(&oldest), sequences(&events)),
            (vec![1, 2, 3], vec![4])
        );
        let written = serde_json::to_string(&oldest).unwrap();
        assert!(written.starts_with(r#"[{ "seq":1,"#), "{written}");
        assert_eq!(events.take_oldest(5).len(), 1);
        assert!(events.is_empty());
    }

    #[test]
    fn the_newest_are_parsed_back_to_the_first_unwanted() {
        let mut events = stored(&[event(1), event(2), event(3)]);
        events.push(event(4));
        let newest = events.newest_while(|e| e.sequence > 2).unwrap();
        assert_eq!(newest, [event(3), event(4)]);
        assert_eq!(events.newest_while(|_| true).unwrap().len(), 4);
        assert_eq!(events.newest_while(|_| false).unwrap(), []);
        // Only the stored entries asked for are parsed: a corrupt older one is not reached.
        let text = r#"[{"seq":"x"},{"seq":1,"at":[1,2],"type":"changed"},{"seq":2,"at":[1,2],"type":"changed"}]"#;
        let mut corrupt: LazyList<Event> = serde_json::from_str(text).unwrap();
        assert_eq!(corrupt.newest_while(|e| e.sequence > 1).unwrap().len(), 1);
        assert!(corrupt.newest_while(|_| true).is_err());
        assert!(corrupt.to_vec().is_err());
        corrupt.push(event(3));
        assert_eq!(corrupt, corrupt.clone());
        let mut other = corrupt.clone();
        other.keep_newest(3);
        other.push(event(4));
        assert_ne!(corrupt, other);
    }

    #[test]
    fn find_parses_only_the_stored_entries_whose_text_may_match() {
        let text = r#"[{"seq":"x","mark":1},{"seq":1,"at":[1,2],"type":"changed"},{"seq":2,"at":[1,2],"type":"changed"}]"#;
        let mut events: LazyList<Event> = serde_json::from_str(text).unwrap();
        events.push(event(3));
        let found =
            |seq: u64| events.find_newest(|text| !text.contains("mark"), |e| e.sequence == seq);
        assert_eq!(found(3), Ok(Some(event(3))));
        assert_eq!(
            found(1).map(|e| e.map(|e| e.kind)),
            Ok(Some(EventKind::PhoneChanged))
        );
        assert_eq!(found(9), Ok(None), "the corrupt entry is never parsed");
        assert!(events.find_newest(|_| true, |e| e.sequence == 9).is_err());
        events.added_newest_first().for_each(|e| e.sequence = 4);
        assert_eq!(
            events.added(),
            [Event {
                sequence: 4,
                ..event(3)
            }]
        );
    }
}
