//! Snapshots built off the driver loop (issue 12). Every `snapshot_every_entries` applied
//! entries the driver takes a point-in-time view of the state machine
//! (`Storage::image_source`: a fjall snapshot) and hands it to a thread of its own, which
//! reads every pair and encodes the image while the driver goes on ticking, replicating
//! and answering. The loop picks the image up at a later turn and compacts to the index
//! the view was taken at (Raft allows any applied index: thesis §5.1). Only the
//! compaction's own synced write stays on the loop.
//!
//! Under madsim there is one thread: the image is built at once, and picked up at the end
//! of the same turn, so the simulation runs the pick-up path deterministically.

use std::sync::atomic::Ordering;

use raft::Index;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Driver, PeerNetwork};
use crate::storage::{ImageSource, Storage, StorageError};

/// A snapshot image being built from the state machine as of `index`.
#[derive(Debug)]
pub(super) struct SnapshotBuild {
    index: Index,
    image: oneshot::Receiver<Result<Vec<u8>, StorageError>>,
}

impl<S: Storage, N: PeerNetwork> Driver<S, N> {
    /// Starts building a snapshot when `snapshot_every_entries` entries were applied
    /// since the last one and none is being built.
    pub(super) fn maybe_start_snapshot(&mut self) -> Result<(), StorageError> {
        let applied = self.raft.applied();
        let due = applied
            >= self
                .snapshot_index
                .saturating_add(self.config.snapshot_every_entries);
        if !due || self.snapshot_build.is_some() {
            return Ok(());
        }
        // `apply` has written everything through `applied`: the view holds exactly it.
        let source = self.storage.image_source()?;
        self.snapshot_build = Some(SnapshotBuild {
            index: applied,
            image: build(source),
        });
        Ok(())
    }

    /// Compacts to a finished image, if one is ready. A storage error while building is
    /// the driver's error, as any other.
    pub(super) fn finish_snapshot(&mut self) -> Result<(), StorageError> {
        let Some(build) = &mut self.snapshot_build else {
            return Ok(());
        };
        let image = match build.image.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => return Ok(()),
            Err(oneshot::error::TryRecvError::Closed) => Err(StorageError::Corrupt(
                "the snapshot builder ended without an image".into(),
            )),
            Ok(image) => image,
        };
        let index = build.index;
        self.snapshot_build = None;
        // A snapshot installed from the leader meanwhile makes this one stale: `compact`
        // then refuses it, and nothing is lost.
        match self.raft.compact(index, image?) {
            Ok(compaction) => {
                let snapshot = self.raft.snapshot().cloned().expect("compact keeps the snapshot");
                self.storage.compact(&snapshot, compaction.purged_to)?;
                self.snapshot_index = index;
                self.metrics.snapshots_total.fetch_add(1, Ordering::Relaxed);
                info!(index, "took a snapshot and compacted the log");
                self.publish_status();
            }
            Err(error) => warn!(%error, "snapshot refused"),
        }
        Ok(())
    }
}

/// Builds `source`'s encoded image on a thread of its own (at once under madsim).
fn build(source: Box<dyn ImageSource>) -> oneshot::Receiver<Result<Vec<u8>, StorageError>> {
    let (done, image) = oneshot::channel();
    let work = move || {
        let _ = done.send(source.image().map(|image| image.encode()));
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
