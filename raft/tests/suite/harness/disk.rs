//! What a server made durable: the only state that survives a crash in the harness.

use raft::{Entry, HardState, Index, Snapshot};

#[derive(Debug, Clone, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// The durable log after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl Disk {
    /// One atomic durable write of a `Ready`'s state, as the contract describes.
    pub fn persist(&mut self, snapshot: Option<&Snapshot>, entries: &[Entry], hard_state: Option<HardState>) {
        if let Some(snapshot) = snapshot {
            self.snapshot = Some(snapshot.clone());
            self.entries.clear();
        }
        if let Some(first) = entries.first() {
            self.entries.retain(|entry| entry.index < first.index);
            self.entries.extend_from_slice(entries);
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state;
        }
        let offset = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
        for (position, entry) in self.entries.iter().enumerate() {
            assert_eq!(entry.index, offset + 1 + position as u64, "durable log has a gap");
        }
    }

    /// The application's own compaction: keep the snapshot, drop the log through `purged_to`.
    pub fn compact(&mut self, snapshot: Snapshot, purged_to: Index) {
        self.snapshot = Some(snapshot);
        self.entries.retain(|entry| entry.index > purged_to);
    }
}
