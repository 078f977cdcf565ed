//! The `Storage` contract as a test suite. `check_storage_contract` runs every case on a
//! fresh store of any implementation; `MemoryStore`, `FjallStore` and the simulation's
//! store must all pass it (the `storage-contract` feature exports it to other crates).
//! A restart drops the store and opens what is durable again (for `MemoryStore`, whose
//! durability is the process's lifetime, it keeps the same store).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use raft::{ConfState, Entry, EntryPayload, HardState, Index, Snapshot, SnapshotMeta, Term};
use wire::{Prior, WriteResult};

#[cfg(test)]
use super::memory_store::MemoryStore;
use super::{ApplyBatch, KvPage, Recovered, SessionRecord, SnapshotImage, Storage};

/// How the suite gets a fresh store and restarts it.
pub trait Harness {
    type Store: Storage;
    /// A new, empty store.
    fn create() -> Self;
    fn store(&mut self) -> &mut Self::Store;
    /// Drops the store and opens its durable state again.
    fn restart(&mut self);
}

type Case<H> = (&'static str, fn(&mut H));

/// Every rule of the contract, each on a fresh store.
pub fn check_storage_contract<H: Harness>() {
    let cases: [Case<H>; 12] = [
        ("an empty store recovers nothing", empty_store_recovers_none),
        (
            "the identity survives a restart and is not Raft state",
            identity_survives_restart,
        ),
        (
            "persisted state survives a restart",
            persisted_state_survives_restart,
        ),
        (
            "entries truncate the stored suffix",
            entries_truncate_the_stored_suffix,
        ),
        (
            "a snapshot replaces log and state machine",
            snapshot_replaces_log_and_state_machine,
        ),
        (
            "compact purges the log prefix, keeps the snapshot",
            compact_purges_prefix_keeps_snapshot,
        ),
        (
            "apply writes everything and survives a restart",
            apply_is_complete_and_durable,
        ),
        (
            "list respects prefix, limit and key order, and pages from start to next",
            list_respects_prefix_limit_and_order,
        ),
        ("the snapshot image round-trips", snapshot_image_round_trips),
        (
            "the current image reads back in chunks, older ones are gone",
            current_image_reads_back_in_chunks,
        ),
        (
            "a damaged staged image is refused and changes nothing",
            damaged_staged_image_changes_nothing,
        ),
        (
            "entries kept before a snapshot are not part of the recovered log",
            trailing_entries_are_not_recovered_as_log,
        ),
    ];
    for (name, case) in cases {
        // Captured by the test harness and shown if the case fails.
        eprintln!("storage contract: {name}");
        case(&mut H::create());
    }
}

#[test]
fn memory_store_passes_the_contract() {
    check_storage_contract::<MemoryHarness>();
}

#[cfg(test)]
struct MemoryHarness(MemoryStore);

#[cfg(test)]
impl Harness for MemoryHarness {
    type Store = MemoryStore;
    fn create() -> Self {
        Self(MemoryStore::default())
    }
    fn store(&mut self) -> &mut MemoryStore {
        &mut self.0
    }
    fn restart(&mut self) {}
}

fn identity_survives_restart<H: Harness>(harness: &mut H) {
    use crate::identity::{ClusterMembership, Founder, Identity};
    assert_eq!(harness.store().load_identity().expect("load"), None);
    let pending = Identity {
        node_id: 2,
        incarnation: 0xfeed,
        cluster: None,
    };
    harness.store().save_identity(&pending).expect("save");
    harness.restart();
    assert_eq!(
        harness.store().load_identity().expect("load"),
        Some(pending.clone())
    );
    assert!(
        harness.store().recover().expect("recover").is_none(),
        "an identity alone is not Raft state"
    );
    let founders = vec![Founder {
        node_id: 2,
        incarnation: 0xfeed,
    }];
    let member = Identity {
        cluster: Some(ClusterMembership::found("raftkv", founders)),
        ..pending
    };
    harness.store().save_identity(&member).expect("save");
    harness.restart();
    assert_eq!(harness.store().load_identity().expect("load"), Some(member));
}

fn entry(index: Index, term: Term) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Normal(Arc::from(format!("entry {index} of term {term}").as_bytes())),
    }
}

fn entries(indexes: RangeInclusive<Index>, term: Term) -> Vec<Entry> {
    indexes.map(|index| entry(index, term)).collect()
}

fn hard_state(term: Term, commit: Index) -> HardState {
    HardState {
        term,
        vote: Some(1),
        commit,
    }
}

fn session(sequence: u64, index: Index) -> SessionRecord {
    SessionRecord {
        sequence,
        result: Some(WriteResult::Done {
            previous: Prior::Value(format!("before {sequence}").into_bytes()),
        }),
        expires_at_millis: 1_000 + index,
        timeout_millis: 1_000,
    }
}

fn meta(index: Index, term: Term) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        conf_state: ConfState::with_voters([1, 2, 3]),
    }
}

/// `image` staged as a leader's chunks (of a few bytes, so there are many) would stage
/// it, and the snapshot that installs it.
fn staged_snapshot<S: Storage>(store: &mut S, index: Index, term: Term, image: &SnapshotImage) -> Snapshot {
    let bytes = image.encode();
    for (position, chunk) in bytes.chunks(5).enumerate() {
        store
            .stage_image_chunk(index, (position * 5) as u64, chunk)
            .expect("stage a chunk");
    }
    Snapshot {
        meta: meta(index, term),
        total_bytes: bytes.len() as u64,
    }
}

/// The store's own image of its state machine as of now, built as the snapshot at
/// `index` (what the driver does before `compact`).
fn built_snapshot<S: Storage>(store: &mut S, index: Index, term: Term) -> Snapshot {
    let total_bytes = store
        .image_source(index)
        .expect("image source")
        .build()
        .expect("build the image");
    Snapshot {
        meta: meta(index, term),
        total_bytes,
    }
}

fn put(key: &str, value: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
}

fn delete(key: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    (key.as_bytes().to_vec(), None)
}

fn recovered<H: Harness>(harness: &mut H) -> Recovered {
    harness
        .store()
        .recover()
        .expect("recover succeeds")
        .expect("the store holds state")
}

fn value<H: Harness>(harness: &mut H, key: &str) -> Option<String> {
    let value = harness.store().get(key.as_bytes()).expect("get succeeds");
    value.map(|bytes| String::from_utf8(bytes).expect("test values are text"))
}

/// (index, term) of each recovered entry, for readable failures.
fn log_of(recovered: &Recovered) -> Vec<(Index, Term)> {
    recovered
        .raft
        .entries
        .iter()
        .map(|entry| (entry.index, entry.term))
        .collect()
}

fn empty_store_recovers_none<H: Harness>(harness: &mut H) {
    assert!(harness.store().recover().expect("recover").is_none());
    // Nothing given is nothing written.
    harness.store().persist(None, &[], None).expect("empty persist");
    harness.restart();
    assert!(harness.store().recover().expect("recover").is_none());
    assert_eq!(harness.store().get(b"a").expect("get"), None);
    assert!(harness
        .store()
        .list(b"", 10, usize::MAX)
        .expect("list")
        .is_empty());
    assert_eq!(
        harness.store().snapshot_image().expect("image"),
        SnapshotImage::default()
    );
}

fn persisted_state_survives_restart<H: Harness>(harness: &mut H) {
    harness
        .store()
        .persist(None, &entries(1..=3, 1), Some(hard_state(1, 0)))
        .expect("persist");
    harness.restart();
    let state = recovered(harness);
    assert_eq!(state.raft.hard_state, hard_state(1, 0));
    assert_eq!(state.raft.snapshot, None);
    assert_eq!(
        state.raft.entries,
        entries(1..=3, 1),
        "entries come back whole, payloads included"
    );
    assert_eq!(state.raft.applied, 0);
    assert!(state.sessions.is_empty());

    // A hard state alone leaves the log alone; entries alone leave the hard state alone.
    harness
        .store()
        .persist(None, &[], Some(hard_state(2, 3)))
        .expect("persist hard state");
    harness
        .store()
        .persist(None, &entries(4..=5, 2), None)
        .expect("persist entries");
    harness.restart();
    let state = recovered(harness);
    assert_eq!(state.raft.hard_state, hard_state(2, 3));
    assert_eq!(log_of(&state), [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]);
}

fn entries_truncate_the_stored_suffix<H: Harness>(harness: &mut H) {
    harness
        .store()
        .persist(None, &entries(1..=5, 1), Some(hard_state(1, 0)))
        .expect("persist");
    // A new leader's entries from index 3 on: 3 and 4 are replaced and 5 is gone (§5.3).
    harness
        .store()
        .persist(None, &entries(3..=4, 2), Some(hard_state(2, 0)))
        .expect("persist");
    harness.restart();
    let state = recovered(harness);
    assert_eq!(log_of(&state), [(1, 1), (2, 1), (3, 2), (4, 2)]);
    assert_eq!(
        state.raft.entries[2],
        entry(3, 2),
        "the replaced entry carries its new payload"
    );

    harness
        .store()
        .persist(None, &entries(5..=6, 2), None)
        .expect("append");
    harness
        .store()
        .persist(None, &[entry(2, 3)], Some(hard_state(3, 0)))
        .expect("truncate");
    harness.restart();
    assert_eq!(log_of(&recovered(harness)), [(1, 1), (2, 3)]);
}

fn snapshot_replaces_log_and_state_machine<H: Harness>(harness: &mut H) {
    harness
        .store()
        .persist(None, &entries(1..=10, 1), Some(hard_state(1, 10)))
        .expect("persist");
    harness
        .store()
        .apply(ApplyBatch {
            applied_index: 3,
            kv_writes: vec![put("a", "old"), put("b", "old")],
            session_writes: vec![(1, Some(session(1, 2))), (2, Some(session(1, 3)))],
        })
        .expect("apply");
    let image = SnapshotImage {
        kv: vec![(b"b".to_vec(), b"new".to_vec()), (b"c".to_vec(), b"new".to_vec())],
        sessions: vec![(2, session(5, 7)), (3, session(1, 6))],
    };
    let installed = staged_snapshot(harness.store(), 7, 2, &image);
    // Entry 8 follows the snapshot and replaces the stored entry 8 of term 1.
    harness
        .store()
        .persist(Some(&installed), &[entry(8, 2)], Some(hard_state(2, 7)))
        .expect("install");
    for restarted in [false, true] {
        if restarted {
            harness.restart();
        }
        let state = recovered(harness);
        assert_eq!(
            state.raft.snapshot.as_ref(),
            Some(&installed),
            "restarted: {restarted}"
        );
        assert_eq!(state.raft.entries, [entry(8, 2)], "restarted: {restarted}");
        assert_eq!(state.raft.applied, 7);
        assert_eq!(state.sessions, image.sessions);
        assert_eq!(value(harness, "a"), None, "a key absent from the image is gone");
        assert_eq!(value(harness, "b").as_deref(), Some("new"));
        assert_eq!(value(harness, "c").as_deref(), Some("new"));
        assert_eq!(harness.store().snapshot_image().expect("image"), image);
    }

    // A snapshot alone empties the log, and an empty image empties the state machine.
    let empty = staged_snapshot(harness.store(), 9, 2, &SnapshotImage::default());
    harness.store().persist(Some(&empty), &[], None).expect("install");
    harness.restart();
    let state = recovered(harness);
    assert_eq!(
        (state.raft.snapshot.as_ref(), state.raft.entries.len()),
        (Some(&empty), 0)
    );
    assert_eq!((state.raft.applied, state.sessions.len()), (9, 0));
    assert!(harness
        .store()
        .list(b"", 10, usize::MAX)
        .expect("list")
        .is_empty());
}

fn compact_purges_prefix_keeps_snapshot<H: Harness>(harness: &mut H) {
    harness
        .store()
        .persist(None, &entries(1..=6, 1), Some(hard_state(1, 6)))
        .expect("persist");
    let batch = ApplyBatch {
        applied_index: 4,
        kv_writes: vec![put("x", "1")],
        session_writes: vec![(1, Some(session(1, 4)))],
    };
    harness.store().apply(batch).expect("apply");
    let first = built_snapshot(harness.store(), 4, 1);
    harness.store().compact(&first, 4).expect("compact");
    for restarted in [false, true] {
        if restarted {
            harness.restart();
        }
        let state = recovered(harness);
        assert_eq!(
            state.raft.snapshot.as_ref(),
            Some(&first),
            "restarted: {restarted}"
        );
        assert_eq!(log_of(&state), [(5, 1), (6, 1)], "restarted: {restarted}");
        assert_eq!(state.raft.applied, 4);
        assert_eq!(state.sessions, [(1, session(1, 4))]);
        assert_eq!(
            value(harness, "x").as_deref(),
            Some("1"),
            "compaction keeps the state machine"
        );
    }

    harness
        .store()
        .apply(ApplyBatch {
            applied_index: 6,
            ..ApplyBatch::default()
        })
        .expect("apply");
    let second = built_snapshot(harness.store(), 6, 1);
    harness.store().compact(&second, 6).expect("compact everything");
    harness
        .store()
        .persist(None, &entries(7..=8, 1), None)
        .expect("append after compaction");
    harness.restart();
    let state = recovered(harness);
    assert_eq!(state.raft.snapshot.as_ref(), Some(&second));
    assert_eq!(log_of(&state), [(7, 1), (8, 1)]);

    // Two compactions in one process: the second purges only what the first left.
    harness
        .store()
        .persist(None, &entries(9..=12, 1), None)
        .expect("append");
    for purge_to in [8, 11] {
        harness
            .store()
            .apply(ApplyBatch {
                applied_index: purge_to,
                ..ApplyBatch::default()
            })
            .expect("apply");
        let snapshot = built_snapshot(harness.store(), purge_to, 1);
        harness.store().compact(&snapshot, purge_to).expect("compact");
    }
    harness.restart();
    assert_eq!(log_of(&recovered(harness)), [(12, 1)]);
}

fn apply_is_complete_and_durable<H: Harness>(harness: &mut H) {
    harness
        .store()
        .persist(None, &entries(1..=4, 1), Some(hard_state(1, 4)))
        .expect("persist");
    let first = ApplyBatch {
        applied_index: 2,
        kv_writes: vec![put("a", "1"), put("b", "1"), put("gone", "1")],
        session_writes: vec![(1, Some(session(1, 1))), (2, Some(session(1, 2)))],
    };
    harness.store().apply(first).expect("apply");
    // Writes of one key in one batch: the last one wins, as if applied one by one.
    let second = ApplyBatch {
        applied_index: 4,
        kv_writes: vec![
            put("a", "2"),
            delete("gone"),
            put("a", "3"),
            delete("b"),
            put("b", "2"),
        ],
        session_writes: vec![
            (1, Some(session(2, 3))),
            (2, None),
            (3, Some(session(1, 4))),
            (3, None),
        ],
    };
    harness.store().apply(second).expect("apply");
    harness.restart();
    let state = recovered(harness);
    assert_eq!(state.raft.applied, 4);
    assert_eq!(state.sessions, [(1, session(2, 3))]);
    assert_eq!(value(harness, "a").as_deref(), Some("3"));
    assert_eq!(value(harness, "b").as_deref(), Some("2"));
    assert_eq!(value(harness, "gone"), None);
    assert_eq!(log_of(&state).len(), 4, "apply leaves the log alone");
}

fn list_respects_prefix_limit_and_order<H: Harness>(harness: &mut H) {
    let keys: [&[u8]; 9] = [
        b"b",
        b"app/3",
        b"a",
        b"app/1",
        &[0xff, 0xff],
        b"apq",
        b"app/2",
        &[0xff],
        &[0xff, 0],
    ];
    let kv_writes = keys
        .iter()
        .map(|key| (key.to_vec(), Some([key, &b"!"[..]].concat())))
        .collect();
    harness
        .store()
        .apply(ApplyBatch {
            applied_index: 0,
            kv_writes,
            session_writes: vec![],
        })
        .expect("apply");
    let everything: BTreeMap<Vec<u8>, Vec<u8>> = keys
        .iter()
        .map(|key| (key.to_vec(), [key, &b"!"[..]].concat()))
        .collect();
    let expected = |prefix: &[u8], limit: usize| -> Vec<(Vec<u8>, Vec<u8>)> {
        let matching = everything.iter().filter(|(key, _)| key.starts_with(prefix));
        matching
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    };
    let cases: [(&[u8], usize); 9] = [
        (b"app/", 10),
        (b"app/", 2),
        (b"app", 10),
        (b"app/", 0),
        (b"", 100),
        (b"", 3),
        (b"zzz", 10),
        (&[0xff], 10),
        (&[0xff, 0xff], 10),
    ];
    for (prefix, limit) in cases {
        let listed = harness.store().list(prefix, limit, usize::MAX).expect("list");
        assert_eq!(
            listed,
            expected(prefix, limit),
            "prefix {prefix:?}, limit {limit}"
        );
    }
    assert_eq!(
        harness.store().list(b"app/", 2, usize::MAX).expect("list").len(),
        2
    );

    // Pages: each from the previous one's `next`, together every pair once, in order,
    // and `next` is exactly the first key left out.
    for (prefix, limit, max_bytes) in [
        (&b""[..], 2, usize::MAX),
        (b"app/", 1, usize::MAX),
        (b"", 100, 1),
        (b"app", 3, 10),
    ] {
        let mut start = Vec::new();
        let mut listed = Vec::new();
        loop {
            let page = harness
                .store()
                .list_page(prefix, &start, limit, max_bytes)
                .expect("list a page");
            assert!(
                !page.pairs.is_empty() || page.next.is_none(),
                "an empty page with more"
            );
            assert!(page.pairs.len() <= limit);
            listed.extend(page.pairs);
            match page.next {
                Some(next) => {
                    assert_eq!(
                        Some(&next),
                        expected(prefix, listed.len() + 1).last().map(|(key, _)| key),
                        "next is the first key left out"
                    );
                    start = next;
                }
                None => break,
            }
        }
        assert_eq!(
            listed,
            expected(prefix, usize::MAX),
            "prefix {prefix:?}, pages of {limit}"
        );
    }
    // A start below the prefix lists from the prefix; one past its keys lists nothing.
    let page = harness
        .store()
        .list_page(b"app/", b"a", 10, usize::MAX)
        .expect("page");
    assert_eq!(page.pairs, expected(b"app/", 10));
    let page = harness
        .store()
        .list_page(b"app/", b"app0", 10, usize::MAX)
        .expect("page");
    assert_eq!(page, KvPage::default());
}

fn snapshot_image_round_trips<H: Harness>(harness: &mut H) {
    let batch = ApplyBatch {
        applied_index: 0,
        kv_writes: vec![put("k2", "v2"), put("k1", "v1"), put("k3", "")],
        session_writes: vec![(300, Some(session(3, 0))), (7, Some(session(1, 0)))],
    };
    harness.store().apply(batch).expect("apply");
    let image = harness.store().snapshot_image().expect("image");
    let kv_keys: Vec<&[u8]> = image.kv.iter().map(|(key, _)| key.as_slice()).collect();
    assert_eq!(kv_keys, [&b"k1"[..], b"k2", b"k3"], "the image is in key order");
    assert_eq!(image.sessions, [(7, session(1, 0)), (300, session(3, 0))]);
    assert_eq!(SnapshotImage::decode(&image.encode()), Ok(image.clone()));

    // Installed on another store, the image is the whole state machine there.
    let mut other = H::create();
    let installed = staged_snapshot(other.store(), 5, 1, &image);
    other
        .store()
        .persist(Some(&installed), &[], Some(hard_state(1, 5)))
        .expect("install");
    other.restart();
    assert_eq!(other.store().snapshot_image().expect("image"), image);
    assert_eq!(
        value(&mut other, "k3").as_deref(),
        Some(""),
        "an empty value is a value"
    );
}

fn current_image_reads_back_in_chunks<H: Harness>(harness: &mut H) {
    harness
        .store()
        .persist(None, &entries(1..=6, 1), Some(hard_state(1, 6)))
        .expect("persist");
    let big = vec![7u8; 300_000];
    harness
        .store()
        .apply(ApplyBatch {
            applied_index: 3,
            kv_writes: vec![(b"big".to_vec(), Some(big.clone())), put("small", "1")],
            session_writes: vec![(1, Some(session(1, 3)))],
        })
        .expect("apply");
    let first = built_snapshot(harness.store(), 3, 1);
    harness.store().compact(&first, 3).expect("compact");
    let expected = harness.store().snapshot_image().expect("image").encode();
    assert_eq!(first.total_bytes, expected.len() as u64);
    for restarted in [false, true] {
        if restarted {
            harness.restart();
            recovered(harness);
        }
        let mut read = Vec::new();
        while (read.len() as u64) < first.total_bytes {
            let chunk = harness
                .store()
                .read_image_chunk(3, read.len() as u64, 65_536)
                .expect("read")
                .expect("the current image is kept");
            assert!(!chunk.is_empty() && chunk.len() <= 65_536);
            read.extend_from_slice(&chunk);
        }
        assert_eq!(read, expected, "restarted: {restarted}");
        assert_eq!(harness.store().read_image_chunk(2, 0, 10).expect("read"), None);
    }
    harness
        .store()
        .apply(ApplyBatch {
            applied_index: 5,
            kv_writes: vec![delete("big")],
            session_writes: vec![],
        })
        .expect("apply");
    let second = built_snapshot(harness.store(), 5, 1);
    harness.store().compact(&second, 5).expect("compact");
    assert_eq!(
        harness.store().read_image_chunk(3, 0, 10).expect("read"),
        None,
        "an older image is not kept"
    );
    assert!(second.total_bytes < first.total_bytes);
}

fn trailing_entries_are_not_recovered_as_log<H: Harness>(harness: &mut H) {
    harness
        .store()
        .persist(None, &entries(1..=6, 1), Some(hard_state(1, 6)))
        .expect("persist");
    harness
        .store()
        .apply(ApplyBatch {
            applied_index: 5,
            ..ApplyBatch::default()
        })
        .expect("apply");
    // A compaction with a trailing window: the snapshot at 5, the log purged through 2.
    let snapshot = built_snapshot(harness.store(), 5, 1);
    harness.store().compact(&snapshot, 2).expect("compact");
    for restarted in [false, true] {
        if restarted {
            harness.restart();
        }
        let state = recovered(harness);
        assert_eq!(state.raft.snapshot.as_ref(), Some(&snapshot));
        assert_eq!(log_of(&state), [(6, 1)], "restarted: {restarted}");
        assert_raft_accepts(&state);
    }
}

/// What `recover` returned is a state Raft restarts from.
fn assert_raft_accepts(state: &Recovered) {
    let outcome = raft::Raft::restart(raft::Config::new(1), state.raft.clone());
    assert!(outcome.is_ok(), "{:?}", outcome.err());
}

fn damaged_staged_image_changes_nothing<H: Harness>(harness: &mut H) {
    harness
        .store()
        .persist(None, &entries(1..=4, 1), Some(hard_state(1, 4)))
        .expect("persist");
    harness
        .store()
        .apply(ApplyBatch {
            applied_index: 2,
            kv_writes: vec![put("kept", "1")],
            session_writes: vec![(1, Some(session(1, 2)))],
        })
        .expect("apply");
    let image = SnapshotImage {
        kv: vec![(b"other".to_vec(), b"2".to_vec())],
        sessions: vec![],
    };
    let mut bytes = image.encode();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    harness.store().stage_image_chunk(9, 0, &bytes).expect("stage");
    let damaged = Snapshot {
        meta: meta(9, 2),
        total_bytes: bytes.len() as u64,
    };
    assert!(matches!(
        harness
            .store()
            .persist(Some(&damaged), &[], Some(hard_state(2, 9))),
        Err(super::StorageError::Corrupt(_))
    ));
    harness.restart();
    let state = recovered(harness);
    assert_eq!((state.raft.snapshot.as_ref(), state.raft.applied), (None, 2));
    assert_eq!(log_of(&state), [(1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(value(harness, "kept").as_deref(), Some("1"));
    assert_eq!(value(harness, "other"), None);
}

#[cfg(all(test, not(madsim)))]
mod fjall_store_tests;
