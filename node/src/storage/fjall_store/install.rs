//! `FjallStore`'s snapshot images: building one from a fjall snapshot on any thread
//! (`FjallImage`), and installing one from the leader, restartably (see the parent
//! module's docs): sealed, verified, marked, the log engine reset, loaded in bounded
//! batches, committed; and finished by `recover` if a crash cut it short.
//!
//! The order of an install, and why a crash at any point recovers correctly:
//!
//! 1. The staged image is synced, renamed complete and verified. A crash here: the old
//!    state is untouched; `recover` removes the stray image. The `Ready` was not
//!    acknowledged.
//! 2. A synced fjall batch writes the marker `snapshot_installing` = (snapshot meta,
//!    image length, the `Ready`'s hard state). From here on `recover` finishes the
//!    install, whatever else is durable.
//! 3. The log engine writes one group, synced: reset to (snapshot index, term), the
//!    `Ready`'s entries, its hard state. It comes after the marker so that a log that
//!    starts after the snapshot never meets a fjall without it (that would be a gap);
//!    a crash before this group is durable leaves the old log, and `recover` writes
//!    the reset (with the marker's hard state, no entries: they were never acknowledged)
//!    only if the engine's last reset is not already at the snapshot's index, so a
//!    finished reset keeps the entries it wrote.
//! 4. The state machine is replaced from the image in bounded unsynced batches. A crash
//!    here: `recover` loads the image again from its start (it clears first).
//! 5. One synced fjall batch sets the snapshot, its image length and the applied index
//!    and removes the marker; it also makes step 4's batches durable (fjall's journal is
//!    sequential).

use fjall::{Keyspace, Readable};
use raft::{Entry, HardState, Index, Snapshot, SnapshotMeta};

use super::super::fjall_codec::{decode, decode_index_key, encode, index_key, OrIo};
use super::super::image_files::ImageFiles;
use super::super::image_stream::{ImageItem, ImageReader, ImageWriter, IMAGE_PIECE_BYTES};
use super::super::{ImageSource, SessionRecord, StorageError};
use super::{
    FjallStore, APPLIED_INDEX, IMAGE_SYNC_BYTES, INSTALL_BATCH_BYTES, KEY_BYTES_MAX, SNAPSHOT_INSTALLING,
};

impl FjallStore {
    /// Reads the complete image of `index` from its start, handing its items to `item`.
    fn read_image(
        &self,
        index: Index,
        mut item: impl FnMut(ImageItem) -> Result<(), StorageError>,
        mut after_piece: impl FnMut() -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut file = self.images.open_image(index)?;
        let mut reader = ImageReader::new();
        let mut buffer = vec![0; IMAGE_PIECE_BYTES];
        loop {
            let read = std::io::Read::read(&mut file, &mut buffer)
                .map_err(|error| StorageError::Io(format!("reading the image at {index}: {error}")))?;
            if read == 0 {
                break;
            }
            reader.feed(&buffer[..read], &mut item)?;
            after_piece()?;
            if let Some(progress) = &self.progress {
                progress();
            }
        }
        reader.finish().map(drop)
    }

    /// Checks a whole image before anything is replaced by it: it decodes, its checksum
    /// holds, and its keys and sessions are in strictly increasing order with keys fjall
    /// can hold. A bad image from a peer then changes nothing.
    fn verify_image(&self, index: Index) -> Result<(), StorageError> {
        let mut last_key: Option<Vec<u8>> = None;
        let mut last_session: Option<u64> = None;
        self.read_image(
            index,
            |item| {
                match item {
                    ImageItem::Pair(key, _) => {
                        if key.is_empty() || key.len() > KEY_BYTES_MAX {
                            return Err(StorageError::Corrupt(format!(
                                "snapshot image holds a key of {} bytes",
                                key.len()
                            )));
                        }
                        if last_key.as_ref().is_some_and(|last| *last >= key) {
                            return Err(StorageError::Corrupt("snapshot image keys out of order".into()));
                        }
                        last_key = Some(key);
                    }
                    ImageItem::Session(client_id, _) => {
                        if last_session.is_some_and(|last| last >= client_id) {
                            return Err(StorageError::Corrupt(
                                "snapshot image sessions out of order".into(),
                            ));
                        }
                        last_session = Some(client_id);
                    }
                }
                Ok(())
            },
            || Ok(()),
        )
    }

    /// Replaces the KV data and the sessions by the image of `index` (verified), in
    /// bounded unsynced batches: the caller's synced batch then makes it all durable.
    fn load_image(&self, index: Index) -> Result<(), StorageError> {
        self.remove_every_key(&self.kv, "the KV data")?;
        self.remove_every_key(&self.sessions, "the sessions")?;
        let batch = std::cell::RefCell::new((self.db.batch(), 0usize));
        self.read_image(
            index,
            |item| {
                let (batch, bytes) = &mut *batch.borrow_mut();
                match item {
                    ImageItem::Pair(key, value) => {
                        *bytes += key.len() + value.len();
                        batch.insert(&self.kv, key, value);
                    }
                    ImageItem::Session(client_id, record) => {
                        *bytes += 64;
                        batch.insert(&self.sessions, index_key(client_id), encode(&record));
                    }
                }
                Ok(())
            },
            || {
                let (current, bytes) = &mut *batch.borrow_mut();
                if *bytes >= INSTALL_BATCH_BYTES {
                    std::mem::replace(current, self.db.batch())
                        .commit()
                        .or_io("installing a snapshot image")?;
                    *bytes = 0;
                }
                Ok(())
            },
        )?;
        batch.into_inner().0.commit().or_io("installing a snapshot image")
    }

    /// Removes every key of `keyspace` in bounded unsynced batches.
    fn remove_every_key(&self, keyspace: &Keyspace, what: &str) -> Result<(), StorageError> {
        let mut batch = self.db.batch();
        let mut count = 0usize;
        for guard in keyspace.iter() {
            batch.remove(
                keyspace,
                guard.key().or_io(&format!("scanning {what} to replace it"))?,
            );
            count += 1;
            if count.is_multiple_of(16 * 1024) {
                std::mem::replace(&mut batch, self.db.batch())
                    .commit()
                    .or_io(&format!("clearing {what}"))?;
            }
        }
        batch.commit().or_io(&format!("clearing {what}"))
    }

    /// The last step of an install (also `recover`'s, after a crash): the snapshot, its
    /// image length and the applied index, the marker removed, in one synced batch.
    fn commit_install(&self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let mut batch = self.synced_batch();
        self.stage_snapshot(&mut batch, snapshot);
        batch.insert(&self.meta, APPLIED_INDEX, encode(&snapshot.meta.index));
        batch.remove(&self.meta, SNAPSHOT_INSTALLING);
        batch.commit().or_io("installing a snapshot")?;
        self.images.remove_before_in_background(snapshot.meta.index);
        Ok(())
    }

    /// The install marker, if an install is under way (or was cut short by a crash).
    fn read_marker(&self) -> Result<Option<(SnapshotMeta, u64, Option<HardState>)>, StorageError> {
        let Some(bytes) = self
            .db
            .snapshot()
            .get(&self.meta, SNAPSHOT_INSTALLING)
            .or_io("reading metadata")?
        else {
            return Ok(None);
        };
        // (snapshot meta, image length, hard state); raftkv before issue 14 wrote only the
        // first two (its hard state is under its own key, which the migration moved into the
        // log engine). Postcard is not self-describing: each layout is tried in turn.
        if let Ok((meta, total_bytes, hard_state)) = decode("install marker", &bytes) {
            return Ok(Some((meta, total_bytes, hard_state)));
        }
        let (meta, total_bytes): (SnapshotMeta, u64) = decode("install marker", &bytes)?;
        Ok(Some((meta, total_bytes, None)))
    }

    /// Finishes an install that a crash interrupted after its marker was synced (steps
    /// 3 to 5 of the module docs).
    pub(super) fn finish_interrupted_install(&mut self) -> Result<(), StorageError> {
        let Some((meta, total_bytes, hard_state)) = self.read_marker()? else {
            return Ok(());
        };
        tracing::warn!(
            index = meta.index,
            "finishing a snapshot install a crash interrupted"
        );
        if self.images.image_bytes(meta.index)? != Some(total_bytes) {
            return Err(StorageError::Corrupt(format!(
                "an interrupted install names the image at {} of {total_bytes} bytes, which is not there",
                meta.index
            )));
        }
        if self.engine.reset_floor() != meta.index {
            self.engine.reset(meta.index, meta.term, &[], hard_state)?;
        }
        self.load_image(meta.index)?;
        let snapshot = Snapshot { meta, total_bytes };
        self.commit_install(&snapshot)?;
        self.applied_index = snapshot.meta.index;
        Ok(())
    }

    /// `persist` with a snapshot: the restartable install described in the module docs.
    pub(super) fn install(
        &mut self,
        snapshot: &Snapshot,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        self.begin_install_and_reset(snapshot, entries, hard_state)?;
        let index = snapshot.meta.index;
        self.load_image(index)?;
        self.commit_install(snapshot)?;
        self.applied_index = index;
        Ok(())
    }

    /// Steps 1 to 3 of an install: the marker, then the engine's reset with the
    /// `Ready`'s entries and hard state (a test stops here, as a crash before the state
    /// machine's load would).
    pub(crate) fn begin_install_and_reset(
        &mut self,
        snapshot: &Snapshot,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        self.begin_install(snapshot, hard_state)?;
        self.engine
            .reset(snapshot.meta.index, snapshot.meta.term, entries, hard_state)
    }

    /// An install's steps until its marker is durable (steps 1 and 2): from here on a
    /// crash finishes it in `recover` (a test stops here to show that).
    pub(crate) fn begin_install(
        &mut self,
        snapshot: &Snapshot,
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        let index = snapshot.meta.index;
        self.images.seal_staged(index, snapshot.total_bytes)?;
        self.verify_image(index)?;
        let mut marker = self.synced_batch();
        // The Ready's hard state too: an install finished after a crash has no Ready,
        // and Raft's restart needs a term at least the snapshot's.
        marker.insert(
            &self.meta,
            SNAPSHOT_INSTALLING,
            encode(&(snapshot.meta.clone(), snapshot.total_bytes, hard_state)),
        );
        marker.commit().or_io("marking a snapshot install")
    }
}

/// The KV data and sessions at one fjall snapshot, to write as the image of `index`.
pub(super) struct FjallImage {
    pub(super) view: fjall::Snapshot,
    pub(super) kv: Keyspace,
    pub(super) sessions: Keyspace,
    pub(super) images: ImageFiles,
    pub(super) index: Index,
}

impl FjallImage {
    /// Streams every pair and session of the view as an image through `sink`.
    fn stream(&self, mut sink: impl FnMut(&[u8]) -> Result<(), StorageError>) -> Result<u64, StorageError> {
        let mut writer = ImageWriter::new(IMAGE_PIECE_BYTES, |_, piece| sink(piece));
        for guard in self.view.iter(&self.kv) {
            let (key, value) = guard.into_inner().or_io("reading the KV data")?;
            writer.pair(&key, &value)?;
        }
        for guard in self.view.iter(&self.sessions) {
            let (key, value) = guard.into_inner().or_io("reading the sessions")?;
            let record: SessionRecord = decode("session record", &value)?;
            writer.session(decode_index_key("session", &key)?, &record)?;
        }
        writer.finish()
    }
}

impl ImageSource for FjallImage {
    fn build(self: Box<Self>) -> Result<u64, StorageError> {
        let file = self.images.create_building(self.index)?;
        let mut out = std::io::BufWriter::with_capacity(IMAGE_PIECE_BYTES, file);
        let mut unsynced_bytes = 0usize;
        let total_bytes = self.stream(|piece| {
            let failed =
                |error: std::io::Error| StorageError::Io(format!("writing a snapshot image: {error}"));
            std::io::Write::write_all(&mut out, piece).map_err(failed)?;
            unsynced_bytes += piece.len();
            // Synced as it goes: one sync of a whole GiB at the end would hold the disk
            // for seconds and delay the driver's own fsyncs behind it.
            if unsynced_bytes >= IMAGE_SYNC_BYTES {
                std::io::Write::flush(&mut out).map_err(failed)?;
                out.get_ref().sync_data().map_err(failed)?;
                unsynced_bytes = 0;
            }
            Ok(())
        })?;
        let file = out
            .into_inner()
            .map_err(|error| StorageError::Io(format!("writing a snapshot image: {error}")))?;
        self.images.seal_building(self.index, file)?;
        Ok(total_bytes)
    }

    fn write_to(
        self: Box<Self>,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<u64, StorageError> {
        self.stream(sink)
    }
}
