//! The leader's disk guard (`--disk-free-min-bytes`): the quota counts the clients' data,
//! not the log, snapshot images or the storage engine's own files, so a disk can still fill.
//! The driver reads its store's free bytes about once a second and, as leader, refuses
//! writes that store data while they are under the bound. Deletes go on, so an operator
//! can make room; writes resume by themselves once the disk has room again.

use std::time::Duration;

use tokio::time::Instant;

use crate::storage::Storage;

/// How often the free bytes are read again: a `statvfs`, cheap, but not per request.
const READ_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct DiskGuard {
    free_bytes: Option<u64>,
    read_at: Option<Instant>,
}

impl DiskGuard {
    /// Reads `storage`'s free bytes again if the last reading is older than a second.
    pub(super) fn refresh(&mut self, storage: &dyn Storage) {
        let now = Instant::now();
        if self
            .read_at
            .is_some_and(|read_at| now.duration_since(read_at) < READ_INTERVAL)
        {
            return;
        }
        self.read_at = Some(now);
        self.free_bytes = storage.disk_free_bytes();
    }

    /// The latest reading (`None`: the store has no disk, or it could not be read).
    pub(super) fn free_bytes(&self) -> Option<u64> {
        self.free_bytes
    }

    /// Why a write that stores data is refused, if the disk is under `free_min_bytes`.
    pub(super) fn refusal(&self, free_min_bytes: Option<u64>) -> Option<String> {
        let free_min_bytes = free_min_bytes?;
        let free_bytes = self.free_bytes?;
        (free_bytes < free_min_bytes).then(|| {
            format!(
                "the leader's disk has {free_bytes} bytes free, under --disk-free-min-bytes \
                 ({free_min_bytes}); reads and deletes still work: free disk space or delete keys"
            )
        })
    }
}
