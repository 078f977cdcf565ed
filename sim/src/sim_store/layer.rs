//! One layer of a simulated disk (what a crash keeps, or what the running node sees):
//! the store a correct `Storage` holds after the layer's records, and the configuration
//! of its snapshot. `MemoryStore` keeps that configuration but does not show it, and the
//! invariant checker needs the configuration in force on a leader even after the entry
//! that set it was compacted away.

use node::storage::memory_store::MemoryStore;
use node::storage::StorageError;
use raft::{ConfState, EntryPayload, Index};

use super::Record;

#[derive(Debug, Clone, Default)]
pub(super) struct Layer {
    pub(super) store: MemoryStore,
    /// The configuration in force at the snapshot's index (empty without a snapshot).
    snapshot_conf: ConfState,
}

impl Layer {
    /// Applies `record` to this layer, as a correct store would.
    pub(super) fn apply(&mut self, record: &Record) -> Result<(), StorageError> {
        record.apply_to(&mut self.store)?;
        if let Some(snapshot) = record.snapshot() {
            if self.store.snapshot_index() == snapshot.meta.index {
                self.snapshot_conf = snapshot.meta.conf_state.clone();
            }
        }
        Ok(())
    }

    /// The configuration in force at `index`: the latest configuration entry at or
    /// before it, else the snapshot's. A server uses the latest configuration in its
    /// log, committed or not (thesis §4.1), so `index` = the last index gives the
    /// configuration the server works under now.
    pub(super) fn configuration_at(&self, index: Index) -> ConfState {
        let mut at = index.min(self.store.last_index());
        // The log is contiguous: the scan stops at its first entry (or at the purge point,
        // which `compact` may leave below the snapshot; entries there agree with it).
        while let Some(entry) = self.store.entry(at) {
            if let EntryPayload::Config(conf) = &entry.payload {
                return conf.clone();
            }
            at -= 1;
        }
        self.snapshot_conf.clone()
    }
}
