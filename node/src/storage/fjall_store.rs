//! `FjallStore`: the production `Storage`: the Raft log and hard state in the log engine
//! of our own (`log_engine`, `<data dir>/raft-log/`), everything else on fjall 3 (an
//! LSM-tree engine with keyspaces and atomic cross-keyspace write batches).
//!
//! One fjall `Database` per node, four keyspaces:
//!
//! | keyspace   | key                           | value                                   |
//! |------------|-------------------------------|-----------------------------------------|
//! | `log`      | entry index, u64 big-endian   | postcard `raft::Entry`: only in a data dir of raftkv before issue 14, moved into the log engine at open (`migrate`) |
//! | `meta`     | `identity`                    | postcard `identity::Identity`           |
//! |            | `hard_state`                  | postcard `HardState`: as `log`, before issue 14 only |
//! |            | `snapshot_meta`               | postcard `SnapshotMeta`                 |
//! |            | `snapshot_image_bytes`        | postcard `u64`: the length of its image |
//! |            | `snapshot_installing`         | postcard `(SnapshotMeta, u64, Option<HardState>)` while an install runs (`(SnapshotMeta, u64)` before issue 14) |
//! |            | `applied_index`               | postcard `u64`                          |
//! | `kv`       | the user's key                | the user's value, raw                   |
//! | `sessions` | client id, u64 big-endian     | postcard `SessionRecord`                |
//!
//! | files                      | what                                                  |
//! |----------------------------|-------------------------------------------------------|
//! | `raft-log/<seq>.seg`       | the log engine's segments: entries, hard states, resets (`log_engine`) |
//! | `snapshot-images/`         | snapshot images (`image_files`)                       |
//!
//! `persist` without a snapshot writes only the log engine: one write and one
//! `fdatasync`, whatever the batch (the driver calls `persist` once per `Ready`: group
//! commit). `apply` writes one fjall batch, unsynced: after a crash fjall's journal gives
//! back a prefix of the applies, and the log engine holds every entry after it, which
//! Raft applies again. `compact` commits a fjall batch with `PersistMode::SyncData`
//! (which also makes every earlier `apply` durable: the journal is sequential) BEFORE
//! the log engine deletes any segment, since `recover` replays the log from fjall's
//! durable applied index.
//!
//! fjall gives every item of a batch the same sequence number, so two writes of one key
//! in a batch tie in its ordering; the later one wins only because the memtable happens
//! to replace an equal key. We do not rest on that: repeated keys are collapsed first
//! (last write wins).
//!
//! Only the driver writes, one call at a time (`&mut self`); reads that must see several
//! keys as of one instant (`recover`, `snapshot_image`) go through one fjall snapshot.
//!
//! Snapshot images are files (`image_files`), streamed (`image_stream`): never whole in
//! memory, no size cap. Installing one is too large for one batch, so it is made
//! restartable instead (`install`, whose docs give the order and why a crash anywhere
//! recovers): the staged image is synced and renamed complete, a synced
//! `snapshot_installing` marker names it, the log engine is reset to the snapshot with
//! the `Ready`'s entries and hard state, the state machine is replaced in bounded
//! unsynced batches, and one synced batch sets the snapshot and the applied index and
//! removes the marker. `recover` finishes an install a crash interrupted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode, Readable};
use raft::{Entry, HardState, Index, RestartState, Snapshot, SnapshotMeta};
use serde::de::DeserializeOwned;

use crate::identity::Identity;

use super::fjall_codec::{decode, decode_index_key, encode, index_key, OrIo};
use super::image_files::ImageFiles;
use super::log_engine::{LogEngine, LogEngineOptions, LOG_ENGINE_FOLDER};
use super::{
    nothing_to_persist, ApplyBatch, ImageSource, KvPage, Progress, Recovered, SessionRecord, SnapshotImage,
    Storage, StorageError,
};

mod install;
mod migrate;

use self::install::FjallImage;

pub(crate) const LOG_KEYSPACE: &str = "log";
pub(crate) const META_KEYSPACE: &str = "meta";
const KV_KEYSPACE: &str = "kv";
const SESSIONS_KEYSPACE: &str = "sessions";

const IDENTITY: &str = "identity";
/// Written by raftkv before issue 14 (the log engine); read only to migrate it.
const HARD_STATE: &str = "hard_state";
const SNAPSHOT_META: &str = "snapshot_meta";
const SNAPSHOT_IMAGE_BYTES: &str = "snapshot_image_bytes";
const SNAPSHOT_INSTALLING: &str = "snapshot_installing";
/// Written by raftkv before issue 12, with the image inline: such a data dir is refused.
const SNAPSHOT_DATA_INLINE: &str = "snapshot_data";
/// The memory bound (issue 12): fjall keeps one active memtable per keyspace up to this
/// size, plus the sealed ones being flushed; every overwrite of a key (the applied index
/// on every apply, a session on every write) is a new version in it until the flush. At
/// fjall's default of 64 MiB, four keyspaces held about 350 MiB under a put load
/// (`raftkv bench --rss-every-secs`); at 16 MiB they hold at most 4 x 2 x 16 MiB.
const MEMTABLE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// fjall's block cache (its default, stated here as part of the bound).
const BLOCK_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// A snapshot image being built is synced every this many bytes.
const IMAGE_SYNC_BYTES: usize = 32 * 1024 * 1024;
/// An install replaces the state machine in batches of about this many bytes.
const INSTALL_BATCH_BYTES: usize = 8 * 1024 * 1024;
const APPLIED_INDEX: &str = "applied_index";

/// fjall's limit on key length (lsm-tree stores it in a u16 and panics beyond it).
const KEY_BYTES_MAX: usize = u16::MAX as usize;

pub struct FjallStore {
    path: PathBuf,
    db: Database,
    meta: Keyspace,
    kv: Keyspace,
    sessions: Keyspace,
    images: ImageFiles,
    /// The Raft log and hard state.
    engine: LogEngine,
    /// Told after every piece of an image an install reads (the driver's heartbeat).
    progress: Option<Progress>,
    /// The applied index last written, kept to assert that `apply` never moves it back.
    applied_index: Index,
}

impl fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.path)
            .field("applied_index", &self.applied_index)
            .finish_non_exhaustive()
    }
}

impl FjallStore {
    /// Opens the store in `dir`, creating an empty one if there is none. fjall replays its
    /// journal here; an undecodable applied index is `Corrupt` already at this point.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        Self::open_with(dir, LogEngineOptions::default())
    }

    /// `open` with the log engine laid out by `options` (tests use small segments).
    pub fn open_with(dir: &Path, options: LogEngineOptions) -> Result<Self, StorageError> {
        let db = Database::builder(dir)
            .cache_size(BLOCK_CACHE_BYTES)
            .open()
            .or_io("opening the database")?;
        let keyspace = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES_MAX)
            })
            .or_io("opening a keyspace")
        };
        let (log, meta, kv, sessions) = (
            keyspace(LOG_KEYSPACE)?,
            keyspace(META_KEYSPACE)?,
            keyspace(KV_KEYSPACE)?,
            keyspace(SESSIONS_KEYSPACE)?,
        );
        let images = ImageFiles::open(dir)?;
        // Before the engine opens: a data dir of an older raftkv has its log in fjall.
        migrate::migrate_fjall_log(&db, &log, &meta, dir, options)?;
        let engine = LogEngine::open(&dir.join(LOG_ENGINE_FOLDER), options)?;
        let mut store = Self {
            path: dir.to_path_buf(),
            db,
            meta,
            kv,
            sessions,
            images,
            engine,
            progress: None,
            applied_index: 0,
        };
        let view = store.db.snapshot();
        store.applied_index = read(&view, &store.meta, APPLIED_INDEX)?.unwrap_or(0);
        tracing::info!(path = %dir.display(), applied_index = store.applied_index, "opened fjall store");
        Ok(store)
    }

    /// The log engine's state as it replays (tests of the migration).
    #[cfg(test)]
    pub(crate) fn engine_log_for_tests(&self) -> super::log_engine::LogState {
        self.engine.log_state().expect("the log engine reads back")
    }

    /// The latest snapshot: its metadata and its image's length are always written
    /// together, after the image file is complete.
    fn read_snapshot(&self, view: &fjall::Snapshot) -> Result<Option<Snapshot>, StorageError> {
        if view
            .get(&self.meta, SNAPSHOT_DATA_INLINE)
            .or_io("reading metadata")?
            .is_some()
        {
            return Err(StorageError::Corrupt(
                "this data dir holds a snapshot in the format of raftkv before snapshot streaming; \
                 start the member on an empty data dir (it receives the cluster's state)"
                    .into(),
            ));
        }
        let meta: Option<SnapshotMeta> = read(view, &self.meta, SNAPSHOT_META)?;
        let total_bytes: Option<u64> = read(view, &self.meta, SNAPSHOT_IMAGE_BYTES)?;
        let (meta, total_bytes) = match (meta, total_bytes) {
            (Some(meta), Some(total_bytes)) => (meta, total_bytes),
            (None, None) => return Ok(None),
            _ => {
                return Err(StorageError::Corrupt(
                    "snapshot metadata without its image length, or the reverse".into(),
                ))
            }
        };
        let on_disk = self.images.image_bytes(meta.index)?;
        if on_disk != Some(total_bytes) {
            return Err(StorageError::Corrupt(format!(
                "the image of the snapshot at {} should hold {total_bytes} bytes, the data dir has {on_disk:?}",
                meta.index
            )));
        }
        Ok(Some(Snapshot { meta, total_bytes }))
    }

    fn read_sessions(&self, view: &fjall::Snapshot) -> Result<Vec<(u64, SessionRecord)>, StorageError> {
        read_sessions(view, &self.sessions)
    }

    fn stage_snapshot(&self, batch: &mut OwnedWriteBatch, snapshot: &Snapshot) {
        batch.insert(&self.meta, SNAPSHOT_META, encode(&snapshot.meta));
        batch.insert(&self.meta, SNAPSHOT_IMAGE_BYTES, encode(&snapshot.total_bytes));
    }

    /// A batch that `commit` makes durable: fjall appends it to the journal and
    /// `fdatasync`s the journal before the batch reaches the memtables, so a failed sync
    /// leaves nothing visible that is not durable (and poisons the database).
    fn synced_batch(&self) -> OwnedWriteBatch {
        self.db.batch().durability(Some(PersistMode::SyncData))
    }
}

impl Storage for FjallStore {
    fn disk_free_bytes(&self) -> Option<u64> {
        super::ballast::disk_free_bytes(&self.path).ok()
    }

    fn load_identity(&self) -> Result<Option<Identity>, StorageError> {
        read(&self.db.snapshot(), &self.meta, IDENTITY)
    }

    fn save_identity(&mut self, identity: &Identity) -> Result<(), StorageError> {
        let mut batch = self.synced_batch();
        batch.insert(&self.meta, IDENTITY, encode(identity));
        batch.commit().or_io("writing the identity")
    }

    fn recover(&mut self) -> Result<Option<Recovered>, StorageError> {
        self.finish_interrupted_install()?;
        let view = self.db.snapshot();
        let log = self.engine.log_state()?;
        let snapshot = self.read_snapshot(&view)?;
        let Some(hard_state) = log.hard_state else {
            // Raft persists a hard state with its first entries and with any snapshot
            // (both need a term), so a log or snapshot without one is not a first start.
            if snapshot.is_some() || !log.entries.is_empty() {
                return Err(StorageError::Corrupt(
                    "a log or snapshot without a hard state".into(),
                ));
            }
            return Ok(None);
        };
        let snapshot_index = snapshot.as_ref().map_or(0, |snapshot| snapshot.meta.index);
        // The log must reach back to the snapshot: entries at or below it (a trailing
        // window kept by compaction) are not part of the log after it.
        if log.floor > snapshot_index {
            return Err(StorageError::Corrupt(format!(
                "the raft log starts after {}, beyond the snapshot at {snapshot_index}",
                log.floor
            )));
        }
        let entries: Vec<Entry> = log
            .entries
            .into_iter()
            .filter(|entry| entry.index > snapshot_index)
            .collect();
        let applied: Index = read(&view, &self.meta, APPLIED_INDEX)?.unwrap_or(0);
        if applied < snapshot_index {
            // A snapshot sets the applied index in its own batch, and `compact` syncs
            // every earlier apply, so this cannot happen on a sound disk.
            return Err(StorageError::Corrupt(format!(
                "applied index {applied} below the snapshot at {snapshot_index}"
            )));
        }
        let sessions = self.read_sessions(&view)?;
        // Images of older snapshots, builds and transfers a crash cut short.
        self.images.remove_all_but(&[snapshot_index])?;
        Ok(Some(Recovered {
            raft: RestartState {
                hard_state,
                snapshot,
                entries,
                applied,
            },
            sessions,
        }))
    }

    fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        if nothing_to_persist(snapshot, entries, hard_state) {
            return Ok(());
        }
        assert!(
            entries.windows(2).all(|pair| pair[1].index == pair[0].index + 1),
            "entries to persist are contiguous"
        );
        if let Some(snapshot) = snapshot {
            return self.install(snapshot, entries, hard_state);
        }
        // Only the engine: one write, one fdatasync. The unsynced applies in fjall need
        // no sync here, since they are replayed from this log after a crash.
        self.engine.append(entries, hard_state)
    }

    /// Not synced: the entries applied are durable in the log, and a restart replays
    /// them from the recovered applied index, so losing the tail of applies in a crash
    /// only repeats work. The batch keeps the KV data, the sessions and the applied index
    /// consistent with one another, so a replay never applies an entry twice.
    fn apply(&mut self, batch: ApplyBatch) -> Result<(), StorageError> {
        assert!(
            batch.applied_index >= self.applied_index,
            "applied index moves back"
        );
        // Last write wins on a repeated key, as if the writes were applied one by one.
        let kv_writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = batch.kv_writes.into_iter().collect();
        let session_writes: BTreeMap<u64, Option<SessionRecord>> = batch.session_writes.into_iter().collect();
        let mut write = self.db.batch();
        for (key, value) in kv_writes {
            // The KV state machine validates keys (non-empty, bounded) before they reach
            // the log; fjall would panic on either.
            assert!(
                !key.is_empty() && key.len() <= KEY_BYTES_MAX,
                "applied keys are validated"
            );
            match value {
                Some(value) => write.insert(&self.kv, key, value),
                None => write.remove(&self.kv, key),
            }
        }
        for (client_id, record) in session_writes {
            match record {
                Some(record) => write.insert(&self.sessions, index_key(client_id), encode(&record)),
                None => write.remove(&self.sessions, index_key(client_id)),
            }
        }
        write.insert(&self.meta, APPLIED_INDEX, encode(&batch.applied_index));
        write.commit().or_io("applying a batch")?;
        self.applied_index = batch.applied_index;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        // lsm-tree asserts keys are under 64 KiB: no stored key is that long.
        if key.is_empty() || key.len() > u16::MAX as usize {
            return Ok(None);
        }
        Ok(self
            .kv
            .get(key)
            .or_io("reading a key")?
            .map(|value| value.to_vec()))
    }

    /// One fjall iterator, which reads as of the instant it was opened.
    fn list_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
        max_bytes: usize,
    ) -> Result<KvPage, StorageError> {
        let from = start.max(prefix);
        // lsm-tree asserts keys are under 64 KiB; a longer prefix or start matches nothing.
        if from.len() > u16::MAX as usize || prefix.len() > u16::MAX as usize {
            return Ok(KvPage::default());
        }
        // An empty bound means every key (fjall's prefix scan refuses an empty prefix).
        let scan = if from.is_empty() {
            self.kv.iter()
        } else {
            self.kv.range(from..)
        };
        let mut page = KvPage::default();
        let mut bytes = 0usize;
        for guard in scan {
            let (key, value) = guard.into_inner().or_io("listing keys")?;
            if !key.starts_with(prefix) {
                break;
            }
            if page.pairs.len() >= limit || bytes >= max_bytes {
                page.next = Some(key.to_vec());
                break;
            }
            bytes = bytes.saturating_add(key.len() + value.len());
            page.pairs.push((key.to_vec(), value.to_vec()));
        }
        Ok(page)
    }

    /// Through one fjall snapshot, so the KV data and the sessions are of the same
    /// instant even if a write landed in between (none does: the driver is the only
    /// writer and calls this between applies).
    fn snapshot_image(&self) -> Result<SnapshotImage, StorageError> {
        let view = self.db.snapshot();
        let kv = view
            .iter(&self.kv)
            .map(|guard| {
                let (key, value) = guard.into_inner().or_io("reading the KV data")?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect::<Result<_, StorageError>>()?;
        let sessions = read_sessions(&view, &self.sessions)?;
        Ok(SnapshotImage { kv, sessions })
    }

    fn sessions(&self) -> Result<Vec<(u64, SessionRecord)>, StorageError> {
        read_sessions(&self.db.snapshot(), &self.sessions)
    }

    /// A fjall snapshot (MVCC: later writes do not change what it reads), read and written
    /// to an image file on the thread the driver hands it to.
    fn image_source(&self, index: Index) -> Result<Box<dyn ImageSource>, StorageError> {
        Ok(Box::new(FjallImage {
            view: self.db.snapshot(),
            kv: self.kv.clone(),
            sessions: self.sessions.clone(),
            images: self.images.clone(),
            index,
        }))
    }

    fn report_progress_to(&mut self, progress: Progress) {
        self.progress = Some(progress);
    }

    fn stage_image_chunk(&mut self, index: Index, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let current = self
            .read_snapshot(&self.db.snapshot())?
            .map_or(0, |s| s.meta.index);
        if index <= current {
            return Err(StorageError::Corrupt(format!(
                "staging an image at {index}, not after the current snapshot at {current}"
            )));
        }
        self.images.stage(index, offset, data)
    }

    fn read_image_chunk(
        &self,
        index: Index,
        offset: u64,
        length: usize,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let current: Option<SnapshotMeta> = read(&self.db.snapshot(), &self.meta, SNAPSHOT_META)?;
        if current.map(|meta| meta.index) != Some(index) {
            return Ok(None);
        }
        self.images.read(index, offset, length)
    }

    /// The fjall batch is synced, and so also every earlier unsynced `apply`, BEFORE any
    /// log segment is deleted: the durable applied index is then at least `purged_to`,
    /// and `recover` replays the log only from it (the log below it may be gone).
    fn compact(&mut self, snapshot: &Snapshot, purged_to: Index) -> Result<(), StorageError> {
        assert!(
            purged_to <= snapshot.meta.index,
            "the snapshot covers the purged log"
        );
        let index = snapshot.meta.index;
        if self.images.image_bytes(index)? != Some(snapshot.total_bytes) {
            return Err(StorageError::Corrupt(format!(
                "compacting to the snapshot at {index} without its image of {} bytes",
                snapshot.total_bytes
            )));
        }
        let mut batch = self.synced_batch();
        self.stage_snapshot(&mut batch, snapshot);
        batch.commit().or_io("compacting the log")?;
        // Whole segments only: the ones holding entries above `purged_to` stay.
        self.engine.purge(purged_to)?;
        self.images.remove_before_in_background(index);
        Ok(())
    }
}

/// Reads and decodes one value through `view`.
fn read<T: DeserializeOwned>(
    view: &fjall::Snapshot,
    keyspace: &Keyspace,
    key: &str,
) -> Result<Option<T>, StorageError> {
    match view.get(keyspace, key).or_io("reading metadata")? {
        Some(bytes) => decode(key, &bytes).map(Some),
        None => Ok(None),
    }
}

fn read_sessions(
    view: &fjall::Snapshot,
    sessions: &Keyspace,
) -> Result<Vec<(u64, SessionRecord)>, StorageError> {
    view.iter(sessions)
        .map(|guard| {
            let (key, value) = guard.into_inner().or_io("reading the sessions")?;
            Ok((
                decode_index_key("session", &key)?,
                decode("session record", &value)?,
            ))
        })
        .collect()
}
