//! The crash semantics of `SimStore`: synced writes survive a crash, unsynced ones are
//! lost unless a later sync covered them (or a torn tail kept a prefix of them), a batch
//! is all or nothing, and what a crash leaves is a state `Raft::restart` accepts.

// The package is `raftkv-sim`; its tests call the crate `sim`.
extern crate raftkv_sim as sim;

use std::collections::BTreeMap;
use std::sync::Arc;

use node::storage::{ApplyBatch, Recovered, SessionRecord, SnapshotImage, Storage, StorageError};
use raft::{ConfState, Entry, EntryPayload, HardState, Index, Prng, Snapshot, SnapshotMeta, Term};
use sim::sim_store::{CrashOutcome, SimDisk, SimStore};
use wire::{Prior, WriteResult};

fn config_entry() -> Entry {
    Entry {
        term: 1,
        index: 1,
        payload: EntryPayload::Config(ConfState::with_voters([1])),
    }
}

fn entry(index: Index, term: Term) -> Entry {
    assert!(index > 1, "index 1 holds the configuration");
    Entry {
        term,
        index,
        payload: EntryPayload::Normal(Arc::from(format!("entry {index}").as_bytes())),
    }
}

fn hard_state(term: Term, commit: Index) -> HardState {
    HardState {
        term,
        vote: Some(1),
        commit,
    }
}

fn session(index: Index) -> SessionRecord {
    SessionRecord {
        sequence: index,
        result: Some(WriteResult::Done {
            previous: Prior::Absent,
        }),
        expires_at_millis: index,
        timeout_millis: 1,
    }
}

/// The state machine change of applying entry `index` (the workload of every test):
/// one key of five takes a value naming the index, and client 1's session moves on.
fn apply_batch(from: Index, to: Index) -> ApplyBatch {
    ApplyBatch {
        applied_index: to,
        kv_writes: (from.max(2)..=to)
            .map(|index| (key(index), Some(format!("v{index}").into_bytes())))
            .collect(),
        session_writes: (from.max(2)..=to)
            .map(|index| (1, Some(session(index))))
            .collect(),
    }
}

fn key(index: Index) -> Vec<u8> {
    format!("k{}", index % 5).into_bytes()
}

/// The KV map after applying entries 1 through `applied`.
fn expected_kv(applied: Index) -> BTreeMap<Vec<u8>, Vec<u8>> {
    (2..=applied)
        .map(|index| (key(index), format!("v{index}").into_bytes()))
        .collect()
}

fn expected_sessions(applied: Index) -> Vec<(u64, SessionRecord)> {
    if applied >= 2 {
        vec![(1, session(applied))]
    } else {
        vec![]
    }
}

/// A store holding the configuration entry and entries 2..=`last`, all synced.
fn store_with_log(last: Index) -> (SimDisk, SimStore) {
    let disk = SimDisk::new();
    let mut store = SimStore::open(disk.clone());
    let mut log = vec![config_entry()];
    log.extend((2..=last).map(|index| entry(index, 1)));
    store
        .persist(None, &log, Some(hard_state(1, last)))
        .expect("persist");
    (disk, store)
}

fn recovered(store: &mut SimStore) -> Recovered {
    store.recover().expect("recover").expect("the disk holds state")
}

fn last_index(state: &Recovered) -> Index {
    state.raft.entries.last().map_or_else(
        || {
            state
                .raft
                .snapshot
                .as_ref()
                .map_or(0, |snapshot| snapshot.meta.index)
        },
        |entry| entry.index,
    )
}

/// The whole state machine agrees with the applied index: never KV without its index.
fn assert_consistent(store: &mut SimStore, context: &str) -> Recovered {
    let state = recovered(store);
    let applied = state.raft.applied;
    let image = store.snapshot_image().expect("image");
    let kv: BTreeMap<Vec<u8>, Vec<u8>> = image.kv.into_iter().collect();
    assert_eq!(
        kv,
        expected_kv(applied),
        "{context}: KV at applied index {applied}"
    );
    assert_eq!(state.sessions, expected_sessions(applied), "{context}: sessions");
    assert_eq!(
        image.sessions,
        expected_sessions(applied),
        "{context}: image sessions"
    );
    state
}

fn assert_raft_restarts(state: &Recovered, context: &str) {
    let outcome = raft::Raft::restart(raft::Config::new(1), state.raft.clone());
    assert!(outcome.is_ok(), "{context}: {:?}", outcome.err());
}

/// The store's image of its state machine now, built as the snapshot at `index` (as the
/// driver builds one before `compact`).
fn snapshot_at(store: &SimStore, index: Index, term: Term) -> Snapshot {
    let total_bytes = store
        .image_source(index)
        .expect("image source")
        .build()
        .expect("build");
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            conf_state: ConfState::with_voters([1]),
        },
        total_bytes,
    }
}

#[test]
fn persisted_state_survives_a_crash() {
    for tear in [false, true] {
        let (disk, _store) = store_with_log(4);
        disk.crash(tear, u64::MAX);
        let mut store = SimStore::open(disk.clone());
        let state = recovered(&mut store);
        assert_eq!(state.raft.hard_state, hard_state(1, 4));
        assert_eq!(last_index(&state), 4);
        assert_eq!(state.raft.entries[1], entry(2, 1), "payloads survive");
        assert_eq!(state.raft.applied, 0);
        assert_raft_restarts(&state, "after persist");
    }
}

#[test]
fn unsynced_applies_are_lost_on_a_crash_unless_a_later_sync_covered_them() {
    let (disk, mut store) = store_with_log(6);
    store.apply(apply_batch(1, 3)).expect("apply");
    assert_eq!(
        store.get(b"k3").expect("get"),
        Some(b"v3".to_vec()),
        "reads see unsynced writes"
    );
    assert_eq!(disk.pending_batches(), 1);
    let outcome = disk.crash(false, 0);
    assert_eq!(
        outcome,
        CrashOutcome {
            kept_batches: 0,
            lost_batches: 1
        }
    );
    let mut store = SimStore::open(disk.clone());
    let state = assert_consistent(&mut store, "lost apply");
    assert_eq!(state.raft.applied, 0);

    // A sync after an apply makes the apply durable: the journal is in order.
    store.apply(apply_batch(1, 3)).expect("apply");
    store.persist(None, &[], Some(hard_state(2, 6))).expect("sync");
    assert_eq!(disk.pending_batches(), 0);
    store.apply(apply_batch(4, 5)).expect("apply after the sync");
    disk.crash(false, 0);
    let mut store = SimStore::open(disk.clone());
    let state = assert_consistent(&mut store, "synced apply");
    assert_eq!(
        state.raft.applied, 3,
        "the apply before the sync survives, the one after does not"
    );
    assert_eq!(state.raft.hard_state, hard_state(2, 6));

    // compact is a sync too.
    store.apply(apply_batch(4, 5)).expect("apply");
    let snapshot = snapshot_at(&store, 5, 1);
    store.compact(&snapshot, 5).expect("compact");
    disk.crash(false, 0);
    let mut store = SimStore::open(disk.clone());
    let state = assert_consistent(&mut store, "compacted");
    assert_eq!(
        (state.raft.applied, state.raft.snapshot.as_ref()),
        (5, Some(&snapshot))
    );
    assert_eq!(last_index(&state), 6);
    assert_raft_restarts(&state, "after compact");
}

#[test]
fn a_torn_crash_keeps_a_random_prefix_of_the_unsynced_batches() {
    const BATCHES: u64 = 4;
    let mut kept_counts = std::collections::BTreeSet::new();
    for rng_value in 0..10 {
        let (disk, mut store) = store_with_log(10);
        for batch in 0..BATCHES {
            store
                .apply(apply_batch(2 * batch + 1, 2 * batch + 2))
                .expect("apply");
        }
        let outcome = disk.crash(true, rng_value);
        assert_eq!(outcome.kept_batches as u64, rng_value % (BATCHES + 1));
        assert_eq!(outcome.kept_batches + outcome.lost_batches, BATCHES as usize);
        kept_counts.insert(outcome.kept_batches);
        let mut store = SimStore::open(disk.clone());
        let state = assert_consistent(&mut store, &format!("rng value {rng_value}"));
        assert_eq!(
            state.raft.applied,
            2 * outcome.kept_batches as u64,
            "a prefix, whole batches"
        );
        assert_raft_restarts(&state, "after a torn crash");
    }
    assert_eq!(
        kept_counts.len(),
        BATCHES as usize + 1,
        "every prefix length occurs"
    );
}

#[test]
fn a_snapshot_install_makes_earlier_applies_durable_then_replaces_them() {
    let (disk, mut store) = store_with_log(4);
    store.apply(apply_batch(1, 2)).expect("apply");
    let image = SnapshotImage {
        kv: vec![(b"other".to_vec(), b"state".to_vec())],
        sessions: vec![],
    };
    let bytes = image.encode();
    store.stage_image_chunk(9, 0, &bytes).expect("stage");
    let installed = Snapshot {
        meta: SnapshotMeta {
            index: 9,
            term: 2,
            conf_state: ConfState::with_voters([1]),
        },
        total_bytes: bytes.len() as u64,
    };
    store
        .persist(Some(&installed), &[], Some(hard_state(2, 9)))
        .expect("install");
    store
        .apply(ApplyBatch {
            applied_index: 9,
            kv_writes: vec![(b"lost".to_vec(), Some(b"yes".to_vec()))],
            session_writes: vec![],
        })
        .expect("apply");
    disk.crash(false, 0);
    let mut store = SimStore::open(disk.clone());
    let state = recovered(&mut store);
    assert_eq!((state.raft.applied, state.raft.entries.len()), (9, 0));
    assert_eq!(store.snapshot_image().expect("image"), image);
    assert_raft_restarts(&state, "after install");
}

#[test]
fn fail_next_sync_fails_one_sync_with_io_and_poisons_the_store() {
    let (disk, mut store) = store_with_log(3);
    disk.fail_next_sync();
    // Reads and unsynced writes are not syncs.
    store.apply(apply_batch(1, 2)).expect("apply");
    store
        .persist(None, &[], None)
        .expect("an empty persist writes nothing");
    let failed = store.persist(None, &[entry(4, 1)], Some(hard_state(1, 4)));
    assert!(matches!(failed, Err(StorageError::Io(_))), "{failed:?}");
    assert!(
        matches!(store.get(b"k2"), Err(StorageError::Io(_))),
        "the store is poisoned"
    );
    assert!(matches!(store.apply(apply_batch(3, 3)), Err(StorageError::Io(_))));
    assert_eq!(disk.counters().failed_syncs, 1);

    // The failed write may or may not be on disk: a crash decides (here: a tear keeps all).
    assert_eq!(disk.pending_batches(), 2);
    let outcome = disk.crash(true, 2);
    assert_eq!(outcome.kept_batches, 2);
    let mut store = SimStore::open(disk.clone());
    let state = assert_consistent(&mut store, "after the failed sync");
    assert_eq!((state.raft.applied, last_index(&state)), (2, 4));

    // Only one sync fails.
    store
        .persist(None, &[entry(5, 1)], Some(hard_state(1, 5)))
        .expect("the next sync works");
    assert_eq!(disk.counters().failed_syncs, 1);
}

#[test]
fn a_store_opened_before_a_crash_is_dead_after_it() {
    let (disk, mut old) = store_with_log(3);
    disk.crash(false, 0);
    assert!(matches!(old.recover(), Err(StorageError::Io(_))));
    assert!(matches!(old.apply(apply_batch(1, 2)), Err(StorageError::Io(_))));
    assert!(matches!(
        old.persist(None, &[entry(4, 1)], None),
        Err(StorageError::Io(_))
    ));
    let mut new = SimStore::open(disk);
    assert_eq!(last_index(&recovered(&mut new)), 3, "the zombie wrote nothing");
}

#[test]
fn a_restart_without_a_crash_keeps_the_page_cache() {
    let (disk, mut store) = store_with_log(3);
    store.apply(apply_batch(1, 3)).expect("apply");
    drop(store);
    let mut store = SimStore::open(disk.clone());
    assert_eq!(assert_consistent(&mut store, "reopened").raft.applied, 3);
    assert_eq!(disk.pending_batches(), 1, "still not durable");
}

#[test]
fn counters_count_syncs_batches_and_bytes() {
    let (disk, mut store) = store_with_log(3);
    store.apply(apply_batch(1, 3)).expect("apply");
    let counters = disk.counters();
    assert_eq!((counters.syncs, counters.batches), (1, 2));
    assert!(counters.bytes > 0);
    disk.crash(true, 0);
    let counters = disk.counters();
    assert_eq!((counters.crashes, counters.batches_lost_by_crashes), (1, 1));
}

/// Random runs of persist, apply, compact, crash and reopen: after every crash the
/// recovered state is consistent (KV and sessions match the applied index, the applied
/// index lies inside the log) and `Raft::restart` accepts it; every acknowledged sync
/// survives.
#[test]
fn random_crashes_always_leave_a_consistent_restartable_state() {
    let (mut kept_total, mut lost_total) = (0, 0);
    for seed in 0..200 {
        let mut rng = Prng::new(seed);
        let disk = SimDisk::new();
        let mut store = SimStore::open(disk.clone());
        store
            .persist(None, &[config_entry()], Some(hard_state(1, 1)))
            .expect("bootstrap");
        let (mut last, mut applied, mut snapshot_index) = (1, 0, 0);
        // The last index a sync acknowledged: a crash must never lose it.
        let mut synced_last = 1;
        for step in 0..60 {
            let context = format!("seed {seed} step {step}");
            match rng.below(10) {
                0..=2 => {
                    let count = 1 + rng.below(3);
                    let entries: Vec<Entry> =
                        (last + 1..=last + count).map(|index| entry(index, 1)).collect();
                    last += count;
                    store
                        .persist(None, &entries, Some(hard_state(1, last)))
                        .expect("persist");
                    synced_last = last;
                }
                3..=6 if applied < last => {
                    let to = (applied + 1 + rng.below(3)).min(last);
                    store.apply(apply_batch(applied + 1, to)).expect("apply");
                    applied = to;
                }
                7 if applied > snapshot_index => {
                    let snapshot = snapshot_at(&store, applied, 1);
                    store.compact(&snapshot, applied).expect("compact");
                    snapshot_index = applied;
                }
                8 => {
                    disk.crash(rng.below(2) == 0, rng.next_u64());
                    store = SimStore::open(disk.clone());
                    let state = assert_consistent(&mut store, &context);
                    assert_eq!(last_index(&state), synced_last, "{context}: synced log survives");
                    assert!(state.raft.applied <= applied, "{context}");
                    assert_raft_restarts(&state, &context);
                    applied = state.raft.applied;
                    snapshot_index = state.raft.snapshot.as_ref().map_or(0, |s| s.meta.index);
                }
                _ => {
                    let _ = assert_consistent(&mut store, &context);
                }
            }
        }
        kept_total += disk.counters().batches_kept_by_crashes;
        lost_total += disk.counters().batches_lost_by_crashes;
    }
    assert!(
        kept_total > 0 && lost_total > 0,
        "crashes both kept and lost unsynced batches"
    );
}

/// The node's storage contract holds for `SimStore` too. The contract's restart is a
/// process restart (the machine keeps its unsynced writes, as fjall's reopen does);
/// machine crashes are what the tests above cover.
#[test]
fn sim_store_passes_the_node_storage_contract() {
    struct SimHarness {
        disk: SimDisk,
        store: SimStore,
    }
    impl node::storage::contract_tests::Harness for SimHarness {
        type Store = SimStore;
        fn create() -> Self {
            let disk = SimDisk::new();
            let store = SimStore::open(disk.clone());
            Self { disk, store }
        }
        fn store(&mut self) -> &mut SimStore {
            &mut self.store
        }
        fn restart(&mut self) {
            self.store = SimStore::open(self.disk.clone());
        }
    }
    node::storage::contract_tests::check_storage_contract::<SimHarness>();
}
