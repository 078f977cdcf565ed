//! Durable state of one node behind a trait: the Raft log, hard state and snapshot,
//! and the KV state machine with its client sessions and applied index.
//!
//! The driver calls `persist` once per Raft `Ready` (one synced write covers the whole
//! batch: group commit), then `apply` with the batch's state machine changes. `apply`
//! writes the KV changes, the session changes and the applied index in one atomic batch,
//! so a restart resumes exactly where apply stopped; it need not sync, because the log
//! it came from is durable and is replayed from the recovered applied index.
//!
//! Implementations: `FjallStore` (production), `MemoryStore` (tests); the simulation
//! has its own, which loses unsynced writes on a crash. Any error is fatal to the node:
//! after a failed fsync nothing on disk can be trusted (fjall poisons itself; the
//! driver stops and the process restarts into `recover`).

#[cfg(not(madsim))]
pub mod ballast;
/// The contract as a reusable suite: `Harness` and `check_storage_contract`.
#[cfg(any(test, feature = "storage-contract"))]
pub mod contract_tests;
#[cfg(not(madsim))]
pub(crate) mod fjall_codec;
#[cfg(not(madsim))]
pub mod fjall_store;
#[cfg(not(madsim))]
mod image_files;
pub mod image_stream;
#[cfg(not(madsim))]
pub mod log_engine;
pub mod memory_store;

use std::fmt;

use raft::{Entry, HardState, Index, RestartState, Snapshot};
use wire::WriteResult;

use crate::identity::Identity;
use serde::{Deserialize, Serialize};

/// Keys and values in key order.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One page of a listing (`Storage::list_page`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvPage {
    pub pairs: KvPairs,
    /// The first key under the prefix after `pairs`: where the next page starts. `None`:
    /// nothing is left.
    pub next: Option<Vec<u8>>,
}

/// An open client session and the cached outcome of its latest write (Raft thesis
/// §6.3). `sequence` 0 with `result` `None`: opened, no write yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub sequence: u64,
    pub result: Option<WriteResult>,
    /// Cluster time (the log's clock) after which the session is gone: its latest write
    /// or opening plus `timeout_millis`.
    pub expires_at_millis: u64,
    /// The timeout it was opened under (the `OpenSession` entry's limits).
    pub timeout_millis: u64,
}

/// The whole state machine in memory: what a snapshot image holds, for the stores that
/// keep everything in memory and for tests (`image_stream` has the encoding). The
/// production store never builds one: it streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotImage {
    /// Every key and value, in key order.
    pub kv: Vec<(Vec<u8>, Vec<u8>)>,
    pub sessions: Vec<(u64, SessionRecord)>,
}

/// State machine changes of one `Ready`, written atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyBatch {
    pub applied_index: Index,
    /// `None` deletes the key.
    pub kv_writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// `None` expires the session.
    pub session_writes: Vec<(u64, Option<SessionRecord>)>,
}

/// What `recover` read back.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// Hard state, latest snapshot, log after it, and the applied index of the KV data.
    pub raft: RestartState,
    pub sessions: Vec<(u64, SessionRecord)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// The device or the storage engine failed; the node must stop.
    Io(String),
    /// What is on disk cannot be right (bad encoding, gap in the log).
    Corrupt(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(why) => write!(f, "storage i/o failure: {why}"),
            Self::Corrupt(why) => write!(f, "storage holds corrupt data: {why}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// Whether a `persist` call carries nothing: every store then writes nothing and does
/// not sync (the driver calls `persist` for every `Ready`, most of which are empty).
pub fn nothing_to_persist(
    snapshot: Option<&Snapshot>,
    entries: &[Entry],
    hard_state: Option<HardState>,
) -> bool {
    snapshot.is_none() && entries.is_empty() && hard_state.is_none()
}

/// The state machine at one point in time, whose image may be built on another thread:
/// the driver hands the (long) work of reading every pair and writing the image off its
/// loop (`Storage::image_source`, `crate::driver::snapshots`).
pub trait ImageSource: Send + 'static {
    /// Writes the image where the store keeps images, under the index the source was
    /// made for, and returns its length in bytes.
    fn build(self: Box<Self>) -> Result<u64, StorageError>;

    /// Streams the same image to `sink` in pieces instead (a backup, `crate::backup_images`,
    /// which keeps it apart from the store's snapshots) and returns its length in bytes.
    fn write_to(
        self: Box<Self>,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<u64, StorageError>;
}

/// Called by a store now and then during a long call, to show it is not stuck.
pub type Progress = std::sync::Arc<dyn Fn() + Send + Sync>;

pub trait Storage: Send + 'static {
    /// The data dir's identity, if one was ever saved (see `crate::identity`).
    fn load_identity(&self) -> Result<Option<Identity>, StorageError>;

    /// Replaces the identity, durably (synced before it returns): it is written before
    /// any Raft state and before the node answers any peer.
    fn save_identity(&mut self, identity: &Identity) -> Result<(), StorageError>;

    /// Every durable Raft and state machine record, or `None` when there is none (a
    /// node's first start; the identity does not count).
    fn recover(&mut self) -> Result<Option<Recovered>, StorageError>;

    /// Makes one `Ready`'s state durable with a single sync, in this order of meaning: a
    /// `snapshot` replaces the whole log and the whole state machine (KV, sessions and
    /// applied index become those of the staged image of `snapshot.meta.index`, which
    /// becomes the current image); each of `entries` replaces any stored entry
    /// at its index and every entry after it; `hard_state` replaces the stored one.
    fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError>;

    /// Writes state machine changes and the new applied index atomically (no sync needed).
    fn apply(&mut self, batch: ApplyBatch) -> Result<(), StorageError>;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Keys starting with `prefix`, in key order, from `start` on (a `start` below the
    /// prefix: from its first key): at most `limit` pairs, and no more pairs once their
    /// keys and values reach `max_bytes` (at least one if any exists), so a scan's memory
    /// is bounded whatever the values' sizes. `next` is the first key under the prefix
    /// left out, if any.
    fn list_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
        max_bytes: usize,
    ) -> Result<KvPage, StorageError>;

    /// The first page of `prefix` (`list_page` from its first key).
    fn list(&self, prefix: &[u8], limit: usize, max_bytes: usize) -> Result<KvPairs, StorageError> {
        Ok(self.list_page(prefix, prefix, limit, max_bytes)?.pairs)
    }

    /// The whole state machine as of the last `apply`, in memory (tests and small stores;
    /// the driver never calls it).
    fn snapshot_image(&self) -> Result<SnapshotImage, StorageError>;

    /// The open client sessions as of the last `apply`.
    fn sessions(&self) -> Result<Vec<(u64, SessionRecord)>, StorageError>;

    /// The state machine as of the last `apply`, as a source whose image later `apply`s
    /// do not change, to be written as the image of the snapshot at `index`.
    fn image_source(&self, index: Index) -> Result<Box<dyn ImageSource>, StorageError>;

    /// Writes `data` at `offset` of the image staged for the snapshot at `index` (a chunk
    /// from the leader). Offset 0 starts that image afresh; any other offset must be where
    /// the staged bytes end. Need not be synced: the `persist` that installs the image
    /// syncs it first.
    fn stage_image_chunk(&mut self, index: Index, offset: u64, data: &[u8]) -> Result<(), StorageError>;

    /// `length` bytes from `offset` of the image of the snapshot at `index` (to send to a
    /// follower), or `None` if the store no longer keeps that image.
    fn read_image_chunk(
        &self,
        index: Index,
        offset: u64,
        length: usize,
    ) -> Result<Option<Vec<u8>>, StorageError>;

    /// Hands the store a way to say it is making progress during one long call (a snapshot
    /// install streams a whole image inside `persist`): the driver's heartbeat, so that
    /// `/livez` tells a long install from a stuck disk. By default it is not used.
    fn report_progress_to(&mut self, _progress: Progress) {}

    /// Bytes free for the store on its disk, if it lives on one and they can be read
    /// (the leader's disk guard, `DriverConfig::disk_free_min_bytes`). By default `None`.
    fn disk_free_bytes(&self) -> Option<u64> {
        None
    }

    /// Stores `snapshot` (whose image `image_source` built) as the latest one, drops older
    /// images and deletes log entries through `purged_to`, durably (after
    /// `Raft::compact`).
    fn compact(&mut self, snapshot: &Snapshot, purged_to: Index) -> Result<(), StorageError>;
}
