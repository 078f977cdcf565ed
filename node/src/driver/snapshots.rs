//! Snapshots built off the driver loop (issue 12). Every `snapshot_every_entries` applied
//! entries the driver takes a point-in-time view of the state machine
//! (`Storage::image_source`: a fjall snapshot) and hands it to a thread of its own, which
//! reads every pair and streams the image to a file while the driver goes on ticking,
//! replicating and answering. The loop picks the finished image up at a later turn and
//! compacts to the index the view was taken at (Raft allows any applied index: thesis
//! §5.1). Only the compaction's own synced write stays on the loop.
//!
//! The image then travels in chunks: `fill_snapshot_chunk` reads the bytes an outgoing
//! `InstallSnapshot` must carry from the image, `stage_snapshot_chunks` writes the
//! chunks a follower accepted to its staged image, which the `Ready`'s persist installs.
//!
//! Under madsim there is one thread: the image is built at once, and picked up at the end
//! of the same turn, so the simulation runs the pick-up path deterministically.

use std::sync::atomic::Ordering;

use raft::{Index, Message, MessageBody, SnapshotChunk};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::{Driver, PeerNetwork};
use crate::storage::{ImageSource, Storage, StorageError};

/// A snapshot image being built from the state machine as of `index`.
#[derive(Debug)]
pub(super) struct SnapshotBuild {
    index: Index,
    /// The image's length in bytes once it is written.
    image: oneshot::Receiver<Result<u64, StorageError>>,
}

impl<S: Storage, N: PeerNetwork> Driver<S, N> {
    /// Fills an outgoing snapshot chunk with the bytes of the image it names. False when
    /// the store no longer keeps that image (a compaction replaced it since Raft made the
    /// message): the message is dropped, and the leader's next heartbeat resends the
    /// chunk of its newest snapshot.
    pub(super) fn fill_snapshot_chunk(&self, message: &mut Message) -> Result<bool, StorageError> {
        let MessageBody::InstallSnapshot(chunk) = &mut message.body else {
            return Ok(true);
        };
        let Some((offset, length)) = chunk.range_to_fill() else {
            return Ok(true);
        };
        match self.storage.read_image_chunk(chunk.meta.index, offset, length)? {
            Some(data) if data.len() == length => {
                chunk.data = data;
                Ok(true)
            }
            Some(data) => Err(StorageError::Corrupt(format!(
                "the image of the snapshot at {} ends {} bytes short of its length",
                chunk.meta.index,
                length - data.len()
            ))),
            None => {
                debug!(
                    index = chunk.meta.index,
                    "dropped a chunk of a snapshot no longer kept"
                );
                Ok(false)
            }
        }
    }

    /// Writes the chunks this follower accepted to its staged image, in order.
    pub(super) fn stage_snapshot_chunks(&mut self, chunks: &[SnapshotChunk]) -> Result<(), StorageError> {
        for chunk in chunks {
            self.storage
                .stage_image_chunk(chunk.meta.index, chunk.offset, &chunk.data)?;
        }
        Ok(())
    }

    /// Starts building a snapshot when `snapshot_every_entries` entries, or
    /// `snapshot_every_bytes` bytes of entries, were applied since the last one and none
    /// is being built.
    pub(super) fn maybe_start_snapshot(&mut self) -> Result<(), StorageError> {
        let applied = self.raft.applied();
        let due = applied
            >= self
                .snapshot_index
                .saturating_add(self.config.snapshot_every_entries)
            || self.applied_bytes_since_snapshot >= self.config.snapshot_every_bytes;
        if !due || self.snapshot_build.is_some() {
            return Ok(());
        }
        // `apply` has written everything through `applied`: the view holds exactly it.
        let source = self.storage.image_source(applied)?;
        self.applied_bytes_since_snapshot = 0;
        self.snapshot_build = Some(SnapshotBuild {
            index: applied,
            image: build(source),
        });
        Ok(())
    }

    /// Compacts to a finished image, if one is ready. A build that failed (a full disk, or
    /// its file removed by an install from the leader meanwhile) costs only this
    /// snapshot: the node goes on with its longer log and tries again after another
    /// `snapshot_every_entries` entries.
    pub(super) fn finish_snapshot(&mut self) -> Result<(), StorageError> {
        let Some(build) = &mut self.snapshot_build else {
            return Ok(());
        };
        let built = match build.image.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => return Ok(()),
            Err(oneshot::error::TryRecvError::Closed) => Err(StorageError::Io(
                "the snapshot builder ended without an image".into(),
            )),
            Ok(built) => built,
        };
        let index = build.index;
        self.snapshot_build = None;
        self.snapshot_index = self.snapshot_index.max(index);
        let total_bytes = match built {
            Ok(total_bytes) => total_bytes,
            Err(error) => {
                self.metrics
                    .snapshot_failures_total
                    .fetch_add(1, Ordering::Relaxed);
                warn!(index, %error, "building a snapshot image failed; the log is kept");
                return Ok(());
            }
        };
        // A snapshot installed from the leader meanwhile makes this one stale: `compact`
        // then refuses it, and nothing is lost.
        match self.raft.compact(index, total_bytes) {
            Ok(compaction) => {
                let snapshot = self.raft.snapshot().cloned().expect("compact keeps the snapshot");
                self.storage.compact(&snapshot, compaction.purged_to)?;
                self.metrics.snapshots_total.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .snapshot_image_bytes
                    .store(snapshot.total_bytes, Ordering::Relaxed);
                info!(
                    index,
                    total_bytes,
                    purged_to = compaction.purged_to,
                    "took a snapshot and compacted the log"
                );
                self.publish_status();
            }
            Err(error) => warn!(%error, "snapshot refused"),
        }
        Ok(())
    }
}

/// Builds `source`'s image on a thread of its own (at once under madsim).
fn build(source: Box<dyn ImageSource>) -> oneshot::Receiver<Result<u64, StorageError>> {
    let (done, image) = oneshot::channel();
    let work = move || {
        let _ = done.send(source.build());
    };
    #[cfg(madsim)]
    work();
    #[cfg(not(madsim))]
    {
        let spawned = std::thread::Builder::new()
            .name("raftkv-snapshot".into())
            .spawn(work);
        if let Err(error) = spawned {
            // The sender went with the closure: `finish_snapshot` sees the channel closed.
            warn!(%error, "cannot start a thread to build the snapshot");
        }
    }
    image
}
