//! The in-memory store with faults a driver test can switch on: a persist that does not
//! return (a stuck fsync), a snapshot image that is held back (a long read), and the free
//! bytes of a disk it pretends to live on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raft::{Entry, HardState, Index, Snapshot};

use crate::identity::Identity;
use crate::storage::memory_store::MemoryStore;
use crate::storage::{
    ApplyBatch, ImageSource, KvPage, Recovered, SessionRecord, SnapshotImage, Storage, StorageError,
};

#[derive(Default)]
pub(super) struct FaultyStore {
    inner: MemoryStore,
    /// While set, `persist` blocks its thread.
    pub(super) persist_stalled: Arc<AtomicBool>,
    /// While set, building a snapshot image waits.
    pub(super) image_held: Arc<AtomicBool>,
    /// The bytes `disk_free_bytes` reports; `NO_DISK` (the default): none.
    pub(super) disk_free_bytes: Arc<AtomicU64>,
}

/// `FaultyStore::disk_free_bytes` of a store that reports no disk.
pub(super) const NO_DISK: u64 = 0;

/// Blocks the calling thread while `flag` is set.
fn wait_while(flag: &AtomicBool) {
    while flag.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An image whose building waits while `held` is set.
struct HeldImage {
    inner: Box<dyn ImageSource>,
    held: Arc<AtomicBool>,
}

impl ImageSource for HeldImage {
    fn build(self: Box<Self>) -> Result<u64, StorageError> {
        wait_while(&self.held);
        self.inner.build()
    }

    fn write_to(
        self: Box<Self>,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<u64, StorageError> {
        wait_while(&self.held);
        self.inner.write_to(sink)
    }
}

impl Storage for FaultyStore {
    fn disk_free_bytes(&self) -> Option<u64> {
        match self.disk_free_bytes.load(Ordering::Relaxed) {
            NO_DISK => None,
            bytes => Some(bytes),
        }
    }

    fn load_identity(&self) -> Result<Option<Identity>, StorageError> {
        self.inner.load_identity()
    }

    fn save_identity(&mut self, identity: &Identity) -> Result<(), StorageError> {
        self.inner.save_identity(identity)
    }

    fn recover(&mut self) -> Result<Option<Recovered>, StorageError> {
        self.inner.recover()
    }

    fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        wait_while(&self.persist_stalled);
        self.inner.persist(snapshot, entries, hard_state)
    }

    fn apply(&mut self, batch: ApplyBatch) -> Result<(), StorageError> {
        self.inner.apply(batch)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }

    fn list_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
        max_bytes: usize,
    ) -> Result<KvPage, StorageError> {
        self.inner.list_page(prefix, start, limit, max_bytes)
    }

    fn snapshot_image(&self) -> Result<SnapshotImage, StorageError> {
        self.inner.snapshot_image()
    }

    fn sessions(&self) -> Result<Vec<(u64, SessionRecord)>, StorageError> {
        self.inner.sessions()
    }

    fn image_source(&self, index: Index) -> Result<Box<dyn ImageSource>, StorageError> {
        Ok(Box::new(HeldImage {
            inner: self.inner.image_source(index)?,
            held: self.image_held.clone(),
        }))
    }

    fn stage_image_chunk(&mut self, index: Index, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.inner.stage_image_chunk(index, offset, data)
    }

    fn read_image_chunk(
        &self,
        index: Index,
        offset: u64,
        length: usize,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.read_image_chunk(index, offset, length)
    }

    fn compact(&mut self, snapshot: &Snapshot, purged_to: Index) -> Result<(), StorageError> {
        self.inner.compact(snapshot, purged_to)
    }
}
