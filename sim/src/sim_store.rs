//! The simulation's `Storage`: an in-memory disk that survives its node's restarts and
//! loses what was not synced when the node crashes.
//!
//! # The disk model, and why it is the honest model of fjall
//!
//! `FjallStore` writes every change as one atomic batch into fjall's journal, and the
//! journal is a single append-only file written in order. `persist` and `compact` then
//! sync it (`PersistMode::SyncData`); `apply` does not. Three facts follow, and this
//! module models exactly them:
//!
//! 1. **Sync makes durable everything written before it.** An fsync of an ordered journal
//!    covers every earlier record, so a synced write also makes every earlier unsynced
//!    `apply` durable. Here, `persist` and `compact` first move the whole pending layer
//!    into the durable layer, in order, then apply themselves to it.
//! 2. **Unsynced records are in the page cache, not on the platter.** The running
//!    process reads its own writes (here: reads go to the *visible* layer, durable plus
//!    pending), but a power cut keeps only whatever the kernel happened to write back.
//!    Write-back of one file is in order from the journal's point of view: what
//!    survives is a prefix of the unsynced records, never a later record without an
//!    earlier one (fjall stops replay at the first bad record, so a hole ends the log).
//! 3. **A batch is all or nothing.** A record torn by the crash fails its checksum and
//!    recovery drops it, so a batch is never half applied: the KV writes, the session
//!    writes and the applied index of one `apply` survive or vanish together.
//!
//! So `SimDisk::crash(tear, rng_value)` keeps no unsynced record when `tear` is false
//! (nothing was written back: the common case), and when `tear` is true keeps a random
//! prefix of them (`rng_value` picks its length, from none to all): the tail of the
//! journal is lost at an arbitrary record boundary, the last surviving record being
//! possibly the one "torn" in half and then entirely kept or entirely dropped.
//!
//! A failed sync (`SimDisk::fail_next_sync`) returns `StorageError::Io` and poisons this
//! `SimStore` (every later call fails too, as fjall poisons itself). The failed write
//! was handed to the journal, so it stays an unsynced record: a later crash may keep or
//! drop it, which is the truth about a failed fsync (its data may or may not be on disk).
//! A `SimStore` opened before a crash is dead afterwards: its calls fail with `Io`, so a
//! zombie task of a killed node can never write to the disk its successor reads.
//!
//! A lost disk (`SimDisk::wipe`: a lost volume, a wrong `--data-dir`, a replaced
//! machine) keeps nothing, synced or not, identity included: the node that starts on it
//! finds an empty data dir.
//!
//! What is not modelled: bit rot and misdirected writes (the node would have to detect
//! them by checksums it does not have; fjall's own checksums turn them into a failed
//! open), a lying disk that acknowledges a sync it did not do, and latency of I/O.
//!
//! Everything here is in memory with `std::sync::Mutex` (madsim runs one thread): no
//! threads, no files, so it runs inside a simulated node.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use node::identity::Identity;
use node::storage::memory_store::MemoryStore;
use node::storage::{
    nothing_to_persist, ApplyBatch, ImageSource, KvPage, Recovered, SessionRecord, SnapshotImage, Storage,
    StorageError,
};
use raft::{ConfState, Entry, HardState, Index, NodeId, Snapshot};

use crate::invariants::RaftMonitor;

mod layer;

use layer::Layer;

/// One write in the journal, as the node handed it to the store.
#[derive(Debug, Clone)]
enum Record {
    Identity(Identity),
    Persist {
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
    },
    Apply(ApplyBatch),
    /// A chunk of an image arriving from the leader (unsynced, as in `FjallStore`).
    StageChunk {
        index: Index,
        offset: u64,
        data: Vec<u8>,
    },
    Compact {
        snapshot: Snapshot,
        /// The image the node built for it (in `FjallStore`, a file synced before).
        image: Vec<u8>,
        purged_to: Index,
    },
}

impl Record {
    /// Approximate bytes this record puts into the journal, for the sim's report.
    fn size_bytes(&self) -> u64 {
        const HARD_STATE_BYTES: usize = 24;
        const SESSION_BYTES: usize = 48;
        let bytes = match self {
            Record::Persist {
                snapshot,
                entries,
                hard_state,
            } => {
                snapshot.as_ref().map_or(0, |_| 64)
                    + entries.iter().map(Entry::size_bytes).sum::<usize>()
                    + hard_state.map_or(0, |_| HARD_STATE_BYTES)
            }
            Record::Apply(batch) => {
                let kv_bytes: usize = batch
                    .kv_writes
                    .iter()
                    .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len))
                    .sum();
                8 + kv_bytes + SESSION_BYTES * batch.session_writes.len()
            }
            Record::StageChunk { data, .. } => data.len() + 16,
            Record::Compact { image, .. } => image.len() + 8,
            Record::Identity(_) => 64,
        };
        bytes as u64
    }

    /// The snapshot this record installs or takes, if any.
    fn snapshot(&self) -> Option<&Snapshot> {
        match self {
            Record::Persist { snapshot, .. } => snapshot.as_ref(),
            Record::Compact { snapshot, .. } => Some(snapshot),
            Record::Apply(_) | Record::Identity(_) | Record::StageChunk { .. } => None,
        }
    }

    /// Applies this record to one layer's store. `MemoryStore` is the reference implementation
    /// of the `Storage` contract, so each layer is exactly what a correct store holds.
    fn apply_to(&self, layer: &mut MemoryStore) -> Result<(), StorageError> {
        match self {
            Record::Persist {
                snapshot,
                entries,
                hard_state,
            } => layer.persist(snapshot.as_ref(), entries, *hard_state),
            Record::Apply(batch) => layer.apply(batch.clone()),
            Record::StageChunk { index, offset, data } => layer.stage_image_chunk(*index, *offset, data),
            Record::Compact {
                snapshot,
                image,
                purged_to,
            } => {
                layer.put_image(snapshot.meta.index, image.clone());
                layer.compact(snapshot, *purged_to)
            }
            Record::Identity(identity) => layer.save_identity(identity),
        }
    }
}

/// What the disk did so far, for the simulation's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Successful syncs (`persist` and `compact` calls that wrote something).
    pub syncs: u64,
    /// Records (atomic batches) written to the journal, synced or not.
    pub batches: u64,
    /// Approximate bytes of those records.
    pub bytes: u64,
    /// Syncs that failed by `fail_next_sync`.
    pub failed_syncs: u64,
    pub crashes: u64,
    /// Unsynced records a crash kept (a torn tail that made it to disk).
    pub batches_kept_by_crashes: u64,
    /// Unsynced records a crash lost.
    pub batches_lost_by_crashes: u64,
    /// Times the whole disk was lost (`SimDisk::wipe`).
    pub wipes: u64,
}

/// What a lost disk durably held (`SimDisk::wipe`).
#[derive(Debug, Clone)]
pub struct LostDisk {
    /// The incarnation of its data dir, if it had got as far as an identity.
    pub incarnation: Option<u64>,
    /// Its durable layer at the loss.
    pub durable: MemoryStore,
}

/// What one `SimDisk::crash` did to the unsynced records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashOutcome {
    pub kept_batches: usize,
    pub lost_batches: usize,
}

/// The state behind a `SimDisk`.
#[derive(Debug, Default)]
pub struct DiskState {
    /// What survives a crash.
    durable: Layer,
    /// What the running node reads: `durable` with `pending` applied (the page cache).
    visible: Layer,
    /// Unsynced records, oldest first.
    pending: Vec<Record>,
    /// Incremented by every crash and wipe; a `SimStore` opened in an older one is dead.
    generation: u64,
    fail_next_sync: bool,
    counters: DiskCounters,
}

impl DiskState {
    /// Moves every pending record into the durable layer, in order (a sync of the journal).
    fn make_pending_durable(&mut self) -> Result<(), StorageError> {
        for record in self.pending.drain(..) {
            self.durable.apply(&record)?;
        }
        Ok(())
    }

    fn count_write(&mut self, record: &Record) {
        self.counters.batches += 1;
        self.counters.bytes += record.size_bytes();
    }

    /// An unsynced write: visible now, durable only after a later sync.
    fn write_unsynced(&mut self, record: Record) -> Result<(), StorageError> {
        self.visible.apply(&record)?;
        self.count_write(&record);
        self.pending.push(record);
        Ok(())
    }

    /// A write followed by a sync. On an injected failure the record stays pending: it
    /// was written, but whether it reached the disk is unknown until a crash decides.
    fn write_synced(&mut self, record: Record) -> Result<(), StorageError> {
        // Applied to the visible layer first: a record it refuses (a corrupt snapshot
        // image) is refused before anything is journaled.
        self.visible.apply(&record)?;
        self.count_write(&record);
        if std::mem::take(&mut self.fail_next_sync) {
            self.pending.push(record);
            self.counters.failed_syncs += 1;
            return Err(StorageError::Io("simulated fsync failure".to_string()));
        }
        self.make_pending_durable()?;
        self.durable.apply(&record)?;
        self.counters.syncs += 1;
        assert!(self.pending.is_empty(), "a sync leaves nothing pending");
        Ok(())
    }
}

/// A simulated disk, shared by the test and the node it belongs to. Create it in the
/// test, capture a clone in the madsim node's `init` closure, and `SimStore::open` it on
/// every (re)start; call `crash` when killing the node.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

impl SimDisk {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panic while holding the lock fails the test anyway; the state stays readable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A power cut: unsynced records are lost, except that with `tear` a prefix of them
    /// of length `rng_value % (pending + 1)` survives (see the module docs). Every
    /// `SimStore` opened before is dead afterwards; open a new one to restart the node.
    pub fn crash(&self, tear: bool, rng_value: u64) -> CrashOutcome {
        let mut state = self.lock();
        let pending = std::mem::take(&mut state.pending);
        let kept_batches = if tear {
            (rng_value % (pending.len() as u64 + 1)) as usize
        } else {
            0
        };
        assert!(kept_batches <= pending.len());
        for record in &pending[..kept_batches] {
            state
                .durable
                .apply(record)
                .expect("a record the visible layer accepted applies to a prefix of it");
        }
        state.visible = state.durable.clone();
        state.generation += 1;
        let outcome = CrashOutcome {
            kept_batches,
            lost_batches: pending.len() - kept_batches,
        };
        state.counters.crashes += 1;
        state.counters.batches_kept_by_crashes += outcome.kept_batches as u64;
        state.counters.batches_lost_by_crashes += outcome.lost_batches as u64;
        outcome
    }

    /// A lost disk: everything on it is gone, synced or not, identity included, and the
    /// node that starts on it finds an empty data dir. Call it on a killed node's disk;
    /// every `SimStore` opened before is dead afterwards, as after a crash. Returns what
    /// the disk durably held (for the invariant checker's records).
    pub fn wipe(&self) -> LostDisk {
        let mut state = self.lock();
        let durable = std::mem::take(&mut state.durable.store);
        let incarnation = durable
            .load_identity()
            .ok()
            .flatten()
            .map(|identity| identity.incarnation);
        let counters = DiskCounters {
            wipes: state.counters.wipes + 1,
            ..state.counters
        };
        *state = DiskState {
            generation: state.generation + 1,
            counters,
            ..DiskState::default()
        };
        LostDisk { incarnation, durable }
    }

    /// Makes the next sync (`persist` or `compact` that writes something) fail with
    /// `StorageError::Io`.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    pub fn counters(&self) -> DiskCounters {
        self.lock().counters
    }

    /// How many records are written but not synced.
    pub fn pending_batches(&self) -> usize {
        self.lock().pending.len()
    }

    /// Reads what the running node sees (durable plus unsynced), for the checkers.
    pub fn with_visible<T>(&self, read: impl FnOnce(&MemoryStore) -> T) -> T {
        read(&self.lock().visible.store)
    }

    /// Reads what a crash right now would keep at least (the synced records).
    pub fn with_durable<T>(&self, read: impl FnOnce(&MemoryStore) -> T) -> T {
        read(&self.lock().durable.store)
    }

    /// Reads both layers at one instant: (visible, durable).
    pub fn with_both<T>(&self, read: impl FnOnce(&MemoryStore, &MemoryStore) -> T) -> T {
        let state = self.lock();
        read(&state.visible.store, &state.durable.store)
    }

    /// The configuration in force at `index` in what the running node sees (see
    /// `Layer::configuration_at`); at its last index, the one it works under now.
    pub fn configuration_at(&self, index: Index) -> ConfState {
        self.lock().visible.configuration_at(index)
    }

    /// The incarnation in the data dir's identity as the running node sees it.
    pub fn incarnation(&self) -> Option<u64> {
        let state = self.lock();
        let identity = state.visible.store.load_identity().ok().flatten();
        identity.map(|identity| identity.incarnation)
    }
}

/// The `Storage` a simulated node uses: one open of a `SimDisk`.
#[derive(Debug)]
pub struct SimStore {
    disk: SimDisk,
    /// The disk's crash generation when this store was opened.
    generation: u64,
    /// Set by a failed sync: nothing more may be done through this store.
    poisoned: bool,
    /// The node's id and the checker told about every write, if any.
    monitor: Option<(NodeId, RaftMonitor)>,
}

impl SimStore {
    /// Opens the disk as a node's process does at start. No crash in between means the
    /// process died but the machine did not: unsynced records are still in the page
    /// cache and still visible.
    pub fn open(disk: SimDisk) -> Self {
        let generation = disk.lock().generation;
        Self {
            disk,
            generation,
            poisoned: false,
            monitor: None,
        }
    }

    /// `open`, with every log write and apply shown to `monitor` as node `id`'s.
    pub fn open_monitored(disk: SimDisk, id: NodeId, monitor: RaftMonitor) -> Self {
        Self {
            monitor: Some((id, monitor)),
            ..Self::open(disk)
        }
    }

    /// The disk's state, if this store may still use it.
    fn state(&self) -> Result<MutexGuard<'_, DiskState>, StorageError> {
        if self.poisoned {
            return Err(StorageError::Io(
                "an earlier sync failed; the store is poisoned".to_string(),
            ));
        }
        let state = self.disk.lock();
        if state.generation != self.generation {
            return Err(StorageError::Io(
                "the disk crashed since this store was opened".to_string(),
            ));
        }
        Ok(state)
    }

    fn synced(&mut self, record: Record) -> Result<(), StorageError> {
        let outcome = self.state()?.write_synced(record);
        if matches!(outcome, Err(StorageError::Io(_))) {
            self.poisoned = true;
        }
        outcome
    }
}

impl Storage for SimStore {
    fn load_identity(&self) -> Result<Option<Identity>, StorageError> {
        self.state()?.visible.store.load_identity()
    }

    fn save_identity(&mut self, identity: &Identity) -> Result<(), StorageError> {
        self.synced(Record::Identity(identity.clone()))
    }

    fn recover(&mut self) -> Result<Option<Recovered>, StorageError> {
        self.state()?.visible.store.recover()
    }

    fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        if nothing_to_persist(snapshot, entries, hard_state) {
            // Nothing to write is no write and no sync, as in the other stores.
            return self.state().map(drop);
        }
        self.synced(Record::Persist {
            snapshot: snapshot.cloned(),
            entries: entries.to_vec(),
            hard_state,
        })?;
        if let Some((id, monitor)) = &self.monitor {
            self.disk
                .with_visible(|log| monitor.on_persist(*id, log, entries));
        }
        Ok(())
    }

    fn apply(&mut self, batch: ApplyBatch) -> Result<(), StorageError> {
        let mut state = self.state()?;
        if let Some((id, monitor)) = &self.monitor {
            let applied = state.visible.store.applied_index();
            monitor.on_apply(
                *id,
                &state.visible.store,
                applied,
                batch.applied_index.max(applied),
            );
        }
        state.write_unsynced(Record::Apply(batch))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.state()?.visible.store.get(key)
    }

    fn list_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
        max_bytes: usize,
    ) -> Result<KvPage, StorageError> {
        self.state()?
            .visible
            .store
            .list_page(prefix, start, limit, max_bytes)
    }

    fn snapshot_image(&self) -> Result<SnapshotImage, StorageError> {
        self.state()?.visible.store.snapshot_image()
    }

    fn sessions(&self) -> Result<Vec<(u64, SessionRecord)>, StorageError> {
        self.state()?.visible.store.sessions()
    }

    /// Built at once (madsim runs one thread) into the visible layer's side table; the
    /// compaction then journals the image with itself.
    fn image_source(&self, index: Index) -> Result<Box<dyn ImageSource>, StorageError> {
        self.state()?.visible.store.image_source(index)
    }

    fn stage_image_chunk(&mut self, index: Index, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.state()?.write_unsynced(Record::StageChunk {
            index,
            offset,
            data: data.to_vec(),
        })
    }

    fn read_image_chunk(
        &self,
        index: Index,
        offset: u64,
        length: usize,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.state()?
            .visible
            .store
            .read_image_chunk(index, offset, length)
    }

    fn compact(&mut self, snapshot: &Snapshot, purged_to: Index) -> Result<(), StorageError> {
        let image = self
            .state()?
            .visible
            .store
            .take_built_image(snapshot.meta.index)
            .ok_or_else(|| {
                StorageError::Corrupt(format!(
                    "compacting to the snapshot at {} without its image",
                    snapshot.meta.index
                ))
            })?;
        self.synced(Record::Compact {
            snapshot: snapshot.clone(),
            image,
            purged_to,
        })
    }
}
