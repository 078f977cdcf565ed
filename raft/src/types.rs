//! The values Raft stores and exchanges: terms, indexes, entries, hard state and
//! configuration. Indexes and terms are `u64` everywhere (Raft paper §5).

use std::collections::BTreeSet;
use std::sync::Arc;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// The identity of a server. Any `u64`; "no server" is `Option::None`.
pub type NodeId = u64;
/// A Raft term (paper §5.1). Term 0 exists only before the first bootstrap.
pub type Term = u64;
/// A log index (paper §5.3). Index 0 is the empty prefix before the first entry.
pub type Index = u64;

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum EntryPayload {
    /// The no-op a new leader appends to commit an entry of its own term (paper §5.4.2,
    /// thesis §6.4). The application applies it as nothing.
    Empty,
    /// Application data, opaque to Raft. Shared, so the log, the `Ready` and every
    /// follower's append message hold the same bytes without copying them.
    Normal(Arc<[u8]>),
    /// The whole configuration that holds from this entry on. It takes effect as soon as
    /// it is in a server's log, committed or not (thesis §4.1).
    Config(ConfState),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub payload: EntryPayload,
}

/// Fixed per-entry overhead counted by byte budgets (term, index, tag).
pub const ENTRY_OVERHEAD_BYTES: usize = 24;

impl Entry {
    /// Approximate encoded size, used for every byte bound (append messages,
    /// uncommitted bytes, apply batches).
    pub fn size_bytes(&self) -> usize {
        let payload_bytes = match &self.payload {
            EntryPayload::Empty => 0,
            EntryPayload::Normal(data) => data.len(),
            EntryPayload::Config(conf) => 8 * (conf.voters.len() + conf.learners.len()),
        };
        ENTRY_OVERHEAD_BYTES + payload_bytes
    }
}

/// The state every server must make durable before it answers a vote or an append
/// (paper Figure 2, "Persistent state on all servers"; thesis §3.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    /// Persisted so a restart does not have to rediscover it; never required for safety.
    pub commit: Index,
}

/// Cluster membership: voters decide elections and commitment, learners only receive
/// the log (thesis §4.2.1, "catching up new servers").
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct ConfState {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl ConfState {
    /// A configuration of voters only.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
        }
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// Every member, voters then learners.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// The smallest number of voters that form a majority.
    pub fn quorum_size(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// A node is never both voter and learner.
    pub fn is_well_formed(&self) -> bool {
        self.voters.is_disjoint(&self.learners)
    }
}

/// What a snapshot stands for: the state after applying every entry up to `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
    /// The configuration in force at `index`.
    pub conf_state: ConfState,
}

/// A snapshot as Raft knows it: its metadata and the size of the state machine image
/// that the application keeps. The image itself never passes through Raft (issue 12: a
/// snapshot of any size streams between disks in chunks the application reads and
/// writes; see `SnapshotChunk` and `Ready::snapshot_chunks`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub total_bytes: u64,
}

/// A confirmed linearizable read: once the application has applied through `index`, it
/// may answer the read identified by `context` from its state machine (thesis §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub context: u64,
    pub index: Index,
}

/// The role a server plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A membership change, proposed one server at a time (thesis §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum ConfChange {
    /// Add a non-voting learner that receives the log (thesis §4.2.1).
    AddLearner(NodeId),
    /// Make a caught-up learner a voter.
    PromoteLearner(NodeId),
    /// Remove a voter or learner. Removing the leader makes it step down once the
    /// change commits (thesis §4.2.2).
    Remove(NodeId),
}
