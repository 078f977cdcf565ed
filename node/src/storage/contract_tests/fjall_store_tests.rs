//! `FjallStore` against the contract, plus what only a real disk shows: bytes that do not
//! decode, a second open of one directory, an install a crash interrupted.

use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::*;
use crate::storage::fjall_store::{FjallStore, LOG_KEYSPACE, META_KEYSPACE};
use crate::storage::StorageError;

struct FjallHarness {
    dir: TempDir,
    store: Option<FjallStore>,
}

impl Harness for FjallHarness {
    type Store = FjallStore;
    fn create() -> Self {
        let dir = TempDir::new().expect("temporary directory");
        let store = FjallStore::open(dir.path()).expect("open");
        Self {
            dir,
            store: Some(store),
        }
    }
    fn store(&mut self) -> &mut FjallStore {
        self.store.as_mut().expect("the store is open")
    }
    fn restart(&mut self) {
        // Dropped first: fjall locks its directory while open.
        drop(self.store.take());
        self.store = Some(FjallStore::open(self.dir.path()).expect("reopen"));
    }
}

impl FjallHarness {
    /// Closes the store and writes `key = value` into `keyspace` with fjall itself,
    /// as a bad disk or a bug would, then opens the store again.
    fn tamper(&mut self, keyspace: &str, key: &[u8], value: Option<&[u8]>) {
        drop(self.store.take());
        let db = ::fjall::Database::builder(self.dir.path())
            .open()
            .expect("open fjall");
        let keyspace = db
            .keyspace(keyspace, ::fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        match value {
            Some(value) => keyspace.insert(key, value).expect("insert"),
            None => keyspace.remove(key).expect("remove"),
        }
        db.persist(::fjall::PersistMode::SyncAll).expect("persist");
        drop((keyspace, db));
        self.store = Some(FjallStore::open(self.dir.path()).expect("reopen"));
    }
}

fn with_three_entries() -> FjallHarness {
    let mut harness = FjallHarness::create();
    harness
        .store()
        .persist(None, &entries(1..=3, 1), Some(hard_state(1, 0)))
        .expect("persist");
    harness
}

fn assert_corrupt(harness: &mut FjallHarness) {
    let outcome = harness.store().recover();
    assert!(matches!(outcome, Err(StorageError::Corrupt(_))), "{outcome:?}");
}

#[test]
fn fjall_store_passes_the_contract() {
    check_storage_contract::<FjallHarness>();
}

/// A crash after an install's marker is durable, with the state machine half
/// replaced: the next open finishes the install from the image it names.
#[test]
fn an_install_a_crash_interrupted_is_finished_on_recovery() {
    let mut harness = with_three_entries();
    harness
        .store()
        .apply(ApplyBatch {
            applied_index: 2,
            kv_writes: vec![put("old", "1")],
            session_writes: vec![],
        })
        .expect("apply");
    let image = SnapshotImage {
        kv: (0..1000u32)
            .map(|i| (format!("key-{i:04}").into_bytes(), vec![1; 10_000]))
            .collect(),
        sessions: vec![(4, session(2, 9))],
    };
    let installed = staged_snapshot(harness.store(), 9, 3, &image);
    harness
        .store()
        .begin_install(&installed, Some(hard_state(3, 9)))
        .expect("marker");
    harness.restart();
    let state = recovered(&mut harness);
    assert_eq!(state.raft.snapshot.as_ref(), Some(&installed));
    assert_eq!((state.raft.applied, state.raft.entries.len()), (9, 0));
    assert_eq!(state.raft.hard_state, hard_state(3, 9));
    assert_eq!(state.sessions, image.sessions);
    assert_eq!(value(&mut harness, "old"), None);
    assert_eq!(harness.store().snapshot_image().expect("image"), image);
    harness.restart();
    assert_eq!(recovered(&mut harness).raft.snapshot.as_ref(), Some(&installed));
}

#[test]
fn a_garbage_log_entry_is_corrupt_not_a_panic() {
    let mut harness = with_three_entries();
    harness.tamper(LOG_KEYSPACE, &2_u64.to_be_bytes(), Some(&[0xff; 5]));
    assert_corrupt(&mut harness);
}

#[test]
fn a_gap_in_the_log_is_corrupt() {
    let mut harness = with_three_entries();
    harness.tamper(LOG_KEYSPACE, &2_u64.to_be_bytes(), None);
    assert_corrupt(&mut harness);
}

#[test]
fn an_entry_under_the_wrong_key_is_corrupt() {
    let mut harness = with_three_entries();
    let misplaced = postcard::to_allocvec(&entry(9, 1)).expect("encode");
    harness.tamper(LOG_KEYSPACE, &3_u64.to_be_bytes(), Some(&misplaced));
    assert_corrupt(&mut harness);
}

#[test]
fn a_garbage_hard_state_is_corrupt() {
    let mut harness = with_three_entries();
    harness.tamper(META_KEYSPACE, b"hard_state", Some(b"not postcard"));
    assert_corrupt(&mut harness);
}

#[test]
fn a_second_open_of_the_directory_fails_with_io() {
    let harness = FjallHarness::create();
    let outcome = FjallStore::open(harness.dir.path());
    assert!(matches!(outcome, Err(StorageError::Io(_))), "{outcome:?}");
}

/// The cost of one durable `persist` (one fdatasync), for 1 and for 100 entries.
/// Run: `cargo test -p raftkv-node --release -- --ignored fjall_persist_timing --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn fjall_persist_timing() {
    const PAYLOAD_BYTES: usize = 128;
    const ROUNDS: usize = 200;
    for batch_entries in [1_u64, 100] {
        let mut harness = FjallHarness::create();
        let mut durations: Vec<Duration> = Vec::with_capacity(ROUNDS);
        let mut next_index = 1;
        for _ in 0..ROUNDS {
            let batch: Vec<Entry> = (next_index..next_index + batch_entries)
                .map(|index| Entry {
                    term: 1,
                    index,
                    payload: EntryPayload::Normal(Arc::from(vec![7_u8; PAYLOAD_BYTES])),
                })
                .collect();
            next_index += batch_entries;
            let started = Instant::now();
            harness
                .store()
                .persist(None, &batch, Some(hard_state(1, next_index - 1)))
                .expect("persist");
            durations.push(started.elapsed());
        }
        durations.sort();
        let total: Duration = durations.iter().sum();
        println!(
            "fjall persist of {batch_entries} entries ({PAYLOAD_BYTES} B each) + hard state, {ROUNDS} rounds \
             in {}: mean {:?}, median {:?}, p99 {:?}, max {:?}",
            harness.dir.path().display(),
            total / ROUNDS as u32,
            durations[ROUNDS / 2],
            durations[ROUNDS * 99 / 100],
            durations[ROUNDS - 1],
        );
    }
}
