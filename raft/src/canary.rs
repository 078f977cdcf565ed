//! Known bugs that can be switched on, one at a time, to prove that the simulation's
//! checkers bite (issue 4's canaries). Built only with the `canaries` feature, which
//! only the madsim simulation enables: a shipped binary cannot contain them (see the
//! `compile_error!` in `lib.rs`).

/// One injected bug. The raft crate implements the first two and
/// `SnapshotChunkAtAnyOffset`; the node's driver and state machine `StaleLeaderReads`,
/// `NoWriteDedup`, `UnknownSessionApplies` and `WatchResumeSkipsAnEvent`; the simulation
/// `EmptyDiskBootstrapsAsVoter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Canary {
    /// A vote grant leaves before the vote is durable (breaks thesis §3.8: after a crash
    /// the voter may vote again in the same term, so two leaders can win one term).
    VoteBeforePersist,
    /// The leader commits an entry of an earlier term by counting its replicas (the bug
    /// of paper §5.4.2 / Figure 8).
    CommitOldTermByCounting,
    /// A node that believes it leads serves linearizable reads from its local state
    /// without ReadIndex, so a deposed leader serves stale reads (thesis §6.4).
    StaleLeaderReads,
    /// Retried writes are applied again instead of answered from the session's cached
    /// result (thesis §6.3).
    NoWriteDedup,
    /// A write whose session is not open (expired or evicted) opens it and applies, as
    /// raftkv did before issue 12: a retry that arrives after its session was dropped
    /// applies a second time (thesis §6.3 has such a request refused).
    UnknownSessionApplies,
    /// A node whose disk was lost comes back as the member it was, with an empty log, no
    /// term and no vote: raftkv before issue 10, where a wiped founder bootstrapped
    /// itself again and voted and acknowledged as a blank voter (it can vote twice in a
    /// term, and with another node elect a leader that lacks acknowledged writes).
    /// Injected by the simulation alone (`sim/src/cluster.rs`, `run_sim_node`): the new
    /// data dir of a wiped node gets the incarnation its lost disk had, rather than a
    /// new random one, so the node takes itself for the founder or member it was and
    /// the cluster accepts it as such.
    EmptyDiskBootstrapsAsVoter,
    /// A follower appends a snapshot chunk at whatever offset it carries instead of the
    /// one it expects (issue 12's streamed snapshots): a chunk the leader resent after a
    /// lost acknowledgement is staged twice, and the staged image is not the leader's.
    SnapshotChunkAtAnyOffset,
    /// A watch page of a prefix asked from a revision past 1 (a watcher resuming after
    /// its previous page) leaves out the event at that very revision, as an off-by-one
    /// between "the last revision seen" and "the next revision to send" would (issue
    /// 13). Pages of the whole key space are right, so the history the checker reads is,
    /// and only the watchers' streams can show it.
    WatchResumeSkipsAnEvent,
}
