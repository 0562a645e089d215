//! A user's history beyond the record: older events move into chunks, ListMyUserChanges reads
//! them back in order, and records of the layout before chunks are read and split when next
//! written.

use super::tests::World;
use super::{ChangeQuery, list_my_user_changes};
use crate::error::Error;
use crate::record::history::INLINE_MAX;
use crate::record::{EventKind, UserRecord, record_key};
use crate::test_support::RecordingSms;
use crate::time::Timestamp;

const NUMBER: &str = "+41 44 668 18 00";

/// A world where one user may have any number of codes (the limits across accounts are off).
fn unlimited() -> World {
    World::new()
        .with("PHONE_CODES_PER_NUMBER_PER_HOUR", "0")
        .with("PHONE_CODES_PER_NUMBER_PER_DAY", "0")
        .with("PHONE_CODES_PER_RANGE_PER_HOUR", "0")
        .with("PHONE_PUMPING_MIN_VERIFIED", "0")
}

/// The sequences ListMyUserChanges answers.
fn list(world: &World, sequence: u64, limit: u32, asc: bool) -> Result<Vec<u64>, Error> {
    let query = ChangeQuery {
        sequence,
        limit,
        asc,
    };
    let changes = world.call(|caller| list_my_user_changes(caller, query))?;
    Ok(changes.iter().map(|change| change.sequence).collect())
}

/// The history keys in the store.
fn chunk_keys(world: &World) -> Vec<String> {
    let data = world.kv.data.borrow();
    let mut keys: Vec<String> = data
        .keys()
        .filter(|key| key.starts_with("history:"))
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[test]
fn a_long_history_moves_into_chunks_and_lists_whole_and_in_pages() {
    let world = unlimited();
    let sms = RecordingSms::new();
    world.set(NUMBER, &sms).unwrap();
    for _ in 0..148 {
        world.resend(&sms).unwrap();
    }
    let record = world.record();
    assert_eq!(record.sequence, 150);
    assert!(record.events.len() <= INLINE_MAX, "{}", record.events.len());
    let history = record.history.clone().expect("older events in chunks");
    assert_eq!(history.events + record.events.len() as u64, 150);
    assert!(chunk_keys(&world).contains(&history.newest));
    // The record stays small whatever the history: about 90 bytes an inline event.
    let events = serde_json::to_vec(&record.events).unwrap().len();
    assert!(events < INLINE_MAX * 90, "{events} bytes");

    let all: Vec<u64> = (1..=150).rev().collect();
    assert_eq!(list(&world, 0, 1000, false).unwrap(), all);
    let oldest_first: Vec<u64> = (1..=150).collect();
    assert_eq!(list(&world, 0, 1000, true).unwrap(), oldest_first);
    assert_eq!(
        list(&world, 0, 0, false).unwrap(),
        (51..=150).rev().collect::<Vec<u64>>(),
        "the default limit: the newest 100"
    );
    assert_eq!(
        list(&world, 100, 5, true).unwrap(),
        [101, 102, 103, 104, 105]
    );
    assert_eq!(list(&world, 40, 3, false).unwrap(), [39, 38, 37]);
    assert_eq!(list(&world, 1, 3, false).unwrap(), Vec::<u64>::new());
    assert_eq!(list(&world, 149, 0, true).unwrap(), [150]);
    assert_eq!(list(&world, u64::MAX, 0, true).unwrap(), Vec::<u64>::new());
    assert_eq!(list(&world, u64::MAX, 2, false).unwrap(), [150, 149]);
    let changes = world
        .call(|caller| list_my_user_changes(caller, ChangeQuery::default()))
        .unwrap();
    assert!(changes.iter().all(|c| c.kind == EventKind::CodeAdded));
}

#[test]
fn a_chunk_a_record_names_but_the_store_lost_is_a_corrupt_record() {
    let world = unlimited();
    let sms = RecordingSms::new();
    world.set(NUMBER, &sms).unwrap();
    for _ in 0..60 {
        world.resend(&sms).unwrap();
    }
    let newest = world.record().history.expect("a chunk").newest;
    world.kv.data.borrow_mut().remove(&newest);
    // The inline events alone answer a short query; one that needs the chunk fails loudly.
    assert_eq!(list(&world, 0, 2, false).unwrap(), [62, 61]);
    assert!(matches!(
        list(&world, 0, 1000, false),
        Err(Error::CorruptRecord(_))
    ));
}

/// A record as versions before 2026-12-07 wrote it: the newest 100 events inline, five dropped.
fn old_layout_record() -> UserRecord {
    let mut record = UserRecord::new(super::tests::USER, super::tests::ORG, Timestamp::new(1, 0));
    record.sequence = 5;
    record.events_dropped = 5;
    for i in 0..100 {
        record.add_events(&[EventKind::CodeAdded], Some("app"), Some("+41446681800"));
        record.commit(&format!("old-{i}"), 1, Timestamp::new(10 + i, 0));
    }
    record
}

#[test]
fn an_old_layout_record_is_read_and_split_on_its_next_write() {
    let world = unlimited();
    let old = old_layout_record();
    assert_eq!((old.events.len(), old.history.clone()), (100, None));
    let key = record_key(super::tests::ORG, super::tests::USER);
    world.kv.data.borrow_mut().insert(key, (1, old.to_bytes()));
    assert_eq!(
        list(&world, 0, 1000, false).unwrap(),
        (6..=105).rev().collect::<Vec<u64>>()
    );

    let sms = RecordingSms::new();
    world.set(NUMBER, &sms).unwrap();
    let record = world.record();
    assert_eq!(record.sequence, 107);
    assert!(record.events.len() <= INLINE_MAX);
    assert_eq!(record.events_dropped, 5, "what was dropped stays counted");
    assert_eq!(chunk_keys(&world).len(), 1);
    assert_eq!(
        list(&world, 0, 1000, false).unwrap(),
        (6..=107).rev().collect::<Vec<u64>>(),
        "nothing lost in the move"
    );
    assert_eq!(list(&world, 5, 2, true).unwrap(), [6, 7]);
}
