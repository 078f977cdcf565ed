//! Which data dir incarnation each simulated node runs now, kept outside the nodes and
//! their disks: the nemesis needs it to tell a wiped node that is a voter again (under
//! its new incarnation) from one still waiting to be made a member, and the
//! `EmptyDiskBootstrapsAsVoter` canary needs the incarnation a wiped disk had.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use raft::NodeId;

#[derive(Debug, Default)]
struct Book {
    /// The incarnation each node opened its data dir with at its latest start, until
    /// its disk is lost.
    current: BTreeMap<NodeId, u64>,
    /// The incarnation of each node's latest lost disk.
    lost: BTreeMap<NodeId, u64>,
}

/// Shared between the cluster (the supervisor's side) and every node's `init` closure.
#[derive(Debug, Clone, Default)]
pub struct Incarnations {
    book: Arc<Mutex<Book>>,
}

impl Incarnations {
    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Node `id` opened its data dir under `incarnation` (new or recovered).
    pub fn opened(&self, id: NodeId, incarnation: u64) {
        self.lock().current.insert(id, incarnation);
    }

    /// Node `id` lost its disk, which had `incarnation` (if it had got as far as one).
    pub fn lost(&self, id: NodeId, incarnation: Option<u64>) {
        let mut book = self.lock();
        book.current.remove(&id);
        if let Some(incarnation) = incarnation {
            book.lost.insert(id, incarnation);
        }
    }

    /// The incarnation node `id` runs under, unknown from its disk's loss until it
    /// opens the new data dir.
    pub fn current(&self, id: NodeId) -> Option<u64> {
        self.lock().current.get(&id).copied()
    }

    /// The incarnation of node `id`'s latest lost disk.
    pub fn last_lost(&self, id: NodeId) -> Option<u64> {
        self.lock().lost.get(&id).copied()
    }
}
