//! Revisions and the history through the state machine's apply: etcd's rules for which
//! writes make a revision, the per-key revisions and versions, the events, and the
//! compaction of the oldest events past the history's bounds.

use std::sync::Arc;

use raft::{Entry, EntryPayload, Index};
use wire::{Command, EventKind, Session};

use super::*;
use crate::kv::command::{KvBody, KvCommand, SessionLimits};
use crate::kv::state_machine::StateMachine;
use crate::storage::memory_store::MemoryStore;

const CLIENT: u64 = 3;

fn entry(index: Index, body: KvBody) -> Entry {
    Entry {
        index,
        term: 1,
        payload: EntryPayload::Normal(Arc::from(KvCommand { at_millis: 0, body }.encode())),
    }
}

fn write(index: Index, command: Command) -> Entry {
    let session = Session {
        client_id: CLIENT,
        sequence: index,
    };
    entry(
        index,
        KvBody::Write {
            session,
            command,
            return_prior: false,
        },
    )
}

fn put(key: &str, value: &[u8]) -> Command {
    Command::Put {
        key: key.into(),
        value: value.to_vec(),
    }
}

fn delete(key: &str) -> Command {
    Command::Delete { key: key.into() }
}

fn cas(key: &str, expected: Option<&str>, new_value: Option<&str>) -> Command {
    Command::CompareAndSwap {
        key: key.into(),
        expected: expected.map(Into::into),
        new_value: new_value.map(Into::into),
    }
}

/// A store with `CLIENT`'s session open, and the machine that applied it.
fn started() -> (StateMachine, MemoryStore) {
    let mut store = MemoryStore::default();
    let mut machine = StateMachine::new([]);
    let limits = SessionLimits {
        timeout_millis: u64::MAX / 4,
        ..SessionLimits::DEFAULT
    };
    apply(
        &mut machine,
        &mut store,
        &[entry(
            1,
            KvBody::OpenSession {
                client_id: CLIENT,
                limits,
            },
        )],
    );
    (machine, store)
}

fn apply(machine: &mut StateMachine, store: &mut MemoryStore, entries: &[Entry]) {
    let (batch, outcomes) = machine.apply(store, entries).expect("applies");
    assert!(
        outcomes.iter().all(|outcome| outcome.result.is_ok()),
        "{outcomes:?}"
    );
    store.apply(batch).expect("stores");
}

fn history(store: &MemoryStore) -> Vec<(u64, EventKind, String, u64, u64)> {
    read_events(store, b"", 1)
        .expect("readable")
        .events
        .into_iter()
        .map(|event| {
            (
                event.revision(),
                event.kind,
                String::from_utf8(event.kv.key.clone()).expect("utf-8"),
                event.kv.create_revision,
                event.kv.version,
            )
        })
        .collect()
}

#[test]
fn every_change_and_only_a_change_makes_a_revision() {
    let (mut machine, mut store) = started();
    apply(
        &mut machine,
        &mut store,
        &[
            write(2, put("a", b"1")),                 // revision 1: created
            write(3, delete("absent")),               // nothing changed: no revision
            write(4, put("a", b"1")),                 // revision 2: the same value is still a put
            write(5, cas("a", Some("x"), Some("y"))), // did not swap: no revision
            write(6, cas("b", None, Some("1"))),      // revision 3: created by a swap
            write(7, delete("a")),                    // revision 4: deleted
            write(8, cas("c", None, None)),           // swapped, but nothing to delete: no revision
            write(9, put("a", b"2")),                 // revision 5: created again
        ],
    );
    assert_eq!(machine.revision(&store).expect("readable"), 5);
    assert_eq!(
        history(&store),
        [
            (1, EventKind::Put, "a".into(), 1, 1),
            (2, EventKind::Put, "a".into(), 1, 2),
            (3, EventKind::Put, "b".into(), 3, 1),
            (4, EventKind::Delete, "a".into(), 1, 0),
            (5, EventKind::Put, "a".into(), 5, 1),
        ]
    );
    let a = read_key_value(&store, b"a", None)
        .expect("readable")
        .expect("present");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
    assert_eq!(a.value, b"2");
    // A get answered with the apply path's cache of the key says the same.
    let cached = machine.cached_key(b"a");
    assert!(cached.is_some(), "the apply path cached the key it wrote last");
    let from_cache = read_key_value(&store, b"a", cached).expect("readable");
    assert_eq!(from_cache.as_ref(), Some(&a));
    assert_eq!(machine.cached_key(b"c"), None, "never held a value");
    // The revisions survive a restart: a new machine reads them back from the store.
    let mut restarted = StateMachine::new([]);
    assert_eq!(restarted.revision(&store).expect("readable"), 5);
}

#[test]
fn a_watch_page_filters_by_prefix_and_moves_past_what_it_scanned() {
    let (mut machine, mut store) = started();
    apply(
        &mut machine,
        &mut store,
        &[
            write(2, put("x/1", b"v")),
            write(3, put("y/1", b"v")),
            write(4, put("y/2", b"v")),
        ],
    );
    let page = read_events(&store, b"x/", 2).expect("readable");
    assert!(page.events.is_empty());
    assert_eq!((page.next_revision, page.revision), (4, 3));
    let page = read_events(&store, b"y/", 0).expect("readable");
    assert!(page.events.is_empty());
    assert_eq!(page.next_revision, 4, "from now: after the current revision");
}

#[test]
fn the_oldest_events_are_compacted_past_the_byte_bound_and_refused_after() {
    let (mut machine, mut store) = started();
    let value = vec![7u8; 1024 * 1024];
    let writes = HISTORY_BYTES_MAX / value.len() as u64 + 3;
    let entries: Vec<Entry> = (0..writes)
        .map(|n| write(2 + n, put(&format!("k{}", n % 4), &value)))
        .collect();
    for chunk in entries.chunks(7) {
        apply(&mut machine, &mut store, chunk);
    }
    let state = RevisionState::load(&store).expect("readable");
    assert_eq!(state.revision, writes);
    assert!(state.compacted_revision >= 3, "{state:?}");
    assert!(state.history_bytes <= HISTORY_BYTES_MAX, "{state:?}");
    let kept_bytes: u64 = store
        .list_page(EVENT_KEY_PREFIX, EVENT_KEY_PREFIX, usize::MAX, usize::MAX)
        .expect("readable")
        .pairs
        .iter()
        .map(|(_, event)| event.len() as u64)
        .sum();
    assert_eq!(
        kept_bytes, state.history_bytes,
        "the count matches the events kept"
    );
    assert_eq!(
        read_events(&store, b"", state.compacted_revision),
        Err(HistoryError::Compacted {
            from_revision: state.compacted_revision,
            compacted_revision: state.compacted_revision
        })
    );
    let page = read_events(&store, b"", state.compacted_revision + 1).expect("kept");
    assert_eq!(
        page.events.first().map(|event| event.revision()),
        Some(state.compacted_revision + 1)
    );
}
