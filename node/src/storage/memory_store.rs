//! A `Storage` held in memory, for tests of the driver and the state machine. It
//! follows the trait's contract exactly; durability is the process's lifetime. Images
//! are held whole here (test sizes); only `FjallStore` streams them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use raft::{Entry, HardState, Index, RestartState, Snapshot, Term};

use crate::identity::Identity;

use super::{
    nothing_to_persist, ApplyBatch, ImageSource, KvPage, Recovered, SessionRecord, SnapshotImage, Storage,
    StorageError,
};

/// Images built by `image_source`s (possibly elsewhere), until `compact` takes one.
type BuiltImages = Arc<Mutex<BTreeMap<Index, Vec<u8>>>>;

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    identity: Option<Identity>,
    hard_state: Option<HardState>,
    snapshot: Option<Snapshot>,
    log: BTreeMap<Index, Entry>,
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    sessions: BTreeMap<u64, SessionRecord>,
    applied_index: Index,
    /// The current snapshot's image, and images staged from a leader, by snapshot index.
    images: BTreeMap<Index, Vec<u8>>,
    built: BuiltImages,
    /// How many synced writes happened: group commit shows as few syncs per entry.
    pub sync_count: u64,
}

/// Read access for checkers (the simulation's Raft invariants) without a `recover` copy.
impl MemoryStore {
    /// The log entry at `index`, if the log holds it (not compacted, not beyond the end).
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.log.get(&index)
    }

    pub fn hard_state(&self) -> Option<HardState> {
        self.hard_state
    }

    /// Index of the latest snapshot, 0 without one.
    pub fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |snapshot| snapshot.meta.index)
    }

    /// Index of the last entry, or of the snapshot when the log after it is empty.
    pub fn last_index(&self) -> Index {
        self.log
            .last_key_value()
            .map_or(self.snapshot_index(), |(index, _)| *index)
    }

    /// The term of the entry at `index`, from the log or the snapshot's metadata.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        match &self.snapshot {
            Some(snapshot) if snapshot.meta.index == index => Some(snapshot.meta.term),
            _ => self.log.get(&index).map(|entry| entry.term),
        }
    }

    pub fn applied_index(&self) -> Index {
        self.applied_index
    }

    /// The image built for the snapshot at `index`, taken (for the simulation, which
    /// writes it to its journal with the compaction).
    pub fn take_built_image(&self, index: Index) -> Option<Vec<u8>> {
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&index)
    }

    /// Keeps `image` as the image of the snapshot at `index` (the simulation's replay of
    /// a compaction it journaled).
    pub fn put_image(&mut self, index: Index, image: Vec<u8>) {
        self.images.insert(index, image);
    }

    /// Drops the images of snapshots before `index`.
    fn drop_images_before(&mut self, index: Index) {
        self.images = self.images.split_off(&index);
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|built, _| *built >= index);
    }
}

/// The state machine at the moment `image_source` was called, encoded when built.
struct MemoryImage {
    index: Index,
    image: SnapshotImage,
    built: BuiltImages,
}

impl ImageSource for MemoryImage {
    fn build(self: Box<Self>) -> Result<u64, StorageError> {
        let bytes = self.image.encode();
        let length = bytes.len() as u64;
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.index, bytes);
        Ok(length)
    }

    fn write_to(
        self: Box<Self>,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<u64, StorageError> {
        let bytes = self.image.encode();
        sink(&bytes)?;
        Ok(bytes.len() as u64)
    }
}

impl Storage for MemoryStore {
    fn load_identity(&self) -> Result<Option<Identity>, StorageError> {
        Ok(self.identity.clone())
    }

    fn save_identity(&mut self, identity: &Identity) -> Result<(), StorageError> {
        self.identity = Some(identity.clone());
        self.sync_count += 1;
        Ok(())
    }

    fn recover(&mut self) -> Result<Option<Recovered>, StorageError> {
        let Some(hard_state) = self.hard_state else {
            return Ok(None);
        };
        Ok(Some(Recovered {
            raft: RestartState {
                hard_state,
                snapshot: self.snapshot.clone(),
                // Entries a compaction kept before its snapshot (its trailing window)
                // are not part of the log after it.
                entries: self
                    .log
                    .range(self.snapshot_index().saturating_add(1)..)
                    .map(|(_, entry)| entry.clone())
                    .collect(),
                applied: self.applied_index,
            },
            sessions: self
                .sessions
                .iter()
                .map(|(id, record)| (*id, record.clone()))
                .collect(),
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
        if let Some(snapshot) = snapshot {
            let index = snapshot.meta.index;
            let bytes = self.images.get(&index).ok_or_else(|| {
                StorageError::Corrupt(format!("no staged image for the snapshot at {index}"))
            })?;
            if bytes.len() as u64 != snapshot.total_bytes {
                return Err(StorageError::Corrupt(format!(
                    "the staged image of the snapshot at {index} holds {} of {} bytes",
                    bytes.len(),
                    snapshot.total_bytes
                )));
            }
            let image = SnapshotImage::decode(bytes)?;
            self.drop_images_before(index);
            self.log.clear();
            self.kv = image.kv.into_iter().collect();
            self.sessions = image.sessions.into_iter().collect();
            self.applied_index = snapshot.meta.index;
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(first) = entries.first() {
            self.log.split_off(&first.index);
            self.log
                .extend(entries.iter().map(|entry| (entry.index, entry.clone())));
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = Some(hard_state);
        }
        self.sync_count += 1;
        Ok(())
    }

    fn apply(&mut self, batch: ApplyBatch) -> Result<(), StorageError> {
        assert!(
            batch.applied_index >= self.applied_index,
            "applied index moves back"
        );
        for (key, value) in batch.kv_writes {
            match value {
                Some(value) => self.kv.insert(key, value),
                None => self.kv.remove(&key),
            };
        }
        for (client_id, record) in batch.session_writes {
            match record {
                Some(record) => self.sessions.insert(client_id, record),
                None => self.sessions.remove(&client_id),
            };
        }
        self.applied_index = batch.applied_index;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.kv.get(key).cloned())
    }

    fn list_page(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
        max_bytes: usize,
    ) -> Result<KvPage, StorageError> {
        let mut page = KvPage::default();
        let mut bytes = 0usize;
        for (key, value) in self
            .kv
            .range(start.max(prefix).to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            if page.pairs.len() >= limit || bytes >= max_bytes {
                page.next = Some(key.clone());
                break;
            }
            bytes = bytes.saturating_add(key.len() + value.len());
            page.pairs.push((key.clone(), value.clone()));
        }
        Ok(page)
    }

    fn snapshot_image(&self) -> Result<SnapshotImage, StorageError> {
        Ok(SnapshotImage {
            kv: self
                .kv
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(id, record)| (*id, record.clone()))
                .collect(),
        })
    }

    fn sessions(&self) -> Result<Vec<(u64, SessionRecord)>, StorageError> {
        Ok(self
            .sessions
            .iter()
            .map(|(id, record)| (*id, record.clone()))
            .collect())
    }

    fn image_source(&self, index: Index) -> Result<Box<dyn ImageSource>, StorageError> {
        Ok(Box::new(MemoryImage {
            index,
            image: self.snapshot_image()?,
            built: self.built.clone(),
        }))
    }

    fn stage_image_chunk(&mut self, index: Index, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        if index <= self.snapshot_index() {
            return Err(StorageError::Corrupt(format!(
                "staging an image at {index}, not after the current snapshot at {}",
                self.snapshot_index()
            )));
        }
        if offset == 0 {
            self.images.insert(index, Vec::new());
        }
        let image = self
            .images
            .get_mut(&index)
            .filter(|image| image.len() as u64 == offset)
            .ok_or_else(|| {
                StorageError::Corrupt(format!("a chunk at {offset} of an image not staged that far"))
            })?;
        image.extend_from_slice(data);
        Ok(())
    }

    fn read_image_chunk(
        &self,
        index: Index,
        offset: u64,
        length: usize,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        if index != self.snapshot_index() {
            return Ok(None);
        }
        let Some(image) = self.images.get(&index) else {
            return Ok(None);
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(image.len());
        let end = start.saturating_add(length).min(image.len());
        Ok(Some(image[start..end].to_vec()))
    }

    fn compact(&mut self, snapshot: &Snapshot, purged_to: Index) -> Result<(), StorageError> {
        let index = snapshot.meta.index;
        if let Some(built) = self.take_built_image(index) {
            self.images.insert(index, built);
        }
        if self.images.get(&index).map(|image| image.len() as u64) != Some(snapshot.total_bytes) {
            return Err(StorageError::Corrupt(format!(
                "compacting to the snapshot at {index} without its image"
            )));
        }
        self.drop_images_before(index);
        self.snapshot = Some(snapshot.clone());
        self.log = self.log.split_off(&(purged_to + 1));
        self.sync_count += 1;
        Ok(())
    }
}
