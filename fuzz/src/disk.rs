//! What one server of the raft_step cluster made durable: all that survives its crash.

use raft::{Entry, HardState, Index, Snapshot};

#[derive(Debug, Clone, Default)]
pub(crate) struct Disk {
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: Option<Snapshot>,
    /// The log after the snapshot, contiguous.
    pub(crate) entries: Vec<Entry>,
}

impl Disk {
    pub(crate) fn snapshot_index(&self) -> Index {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    pub(crate) fn last_index(&self) -> Index {
        self.entries.last().map_or(self.snapshot_index(), |e| e.index)
    }

    pub(crate) fn entry(&self, index: Index) -> Option<&Entry> {
        let first = self.entries.first()?.index;
        let position = usize::try_from(index.checked_sub(first)?).ok()?;
        self.entries.get(position)
    }

    pub(crate) fn holds(&self, index: Index) -> bool {
        index <= self.last_index()
    }
}
