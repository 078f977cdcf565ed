//! Durability before speech (thesis §3.8), including after a lost disk: what a node
//! promises (a vote, an acknowledgement) must be on its disk when the promise leaves,
//! a commit index must be on a majority of the voters' disks, and a disk that was lost
//! takes its promises with it, so its incarnation must never speak again.

use std::collections::BTreeMap;

use node::storage::memory_store::MemoryStore;
use raft::{ConfState, Index, NodeId, Term};

use super::{Invariant, RaftMonitor};
use crate::sim_store::{LostDisk, SimDisk};

impl RaftMonitor {
    /// Node `id`'s disk was lost; `lost` is what it durably held. The disk itself is
    /// emptied in place, so what the node writes from now on is checked like any node's
    /// log, and its votes and acknowledgements against its new disk. The lost
    /// incarnation is remembered, to keep it silent, and its durable log, for the copies
    /// a leader may still count (`commit_not_durable`).
    pub fn on_wipe(&self, id: NodeId, lost: LostDisk) {
        let mut state = self.lock();
        state.counts.disks_lost += 1;
        if let Some(incarnation) = lost.incarnation {
            state.lost_incarnations.entry((id, incarnation)).or_insert(false);
        }
        tracing::debug!(id, lost_incarnation = ?lost.incarnation, "monitor: disk lost");
        state.lost_disks.entry(id).or_default().push(lost.durable);
    }

    /// Node `id` grants `candidate` its vote of `term`.
    pub(super) fn check_vote_grant(&self, id: NodeId, candidate: NodeId, term: Term, disk: &SimDisk) {
        self.check_not_lost(id, disk, "granted a vote");
        let durable = disk.with_durable(MemoryStore::hard_state);
        let mut state = self.lock();
        state.counts.vote_grants += 1;
        // Durable means the node can never vote otherwise in this term: its disk holds
        // this vote, or a later term (a grant of term T and a newer term may leave after
        // one write that holds only the newer term).
        let voted = durable
            .is_some_and(|hard| hard.term > term || (hard.term == term && hard.vote == Some(candidate)));
        if !voted {
            let detail = format!(
                "node {id} granted its term-{term} vote to {candidate} while its disk holds {durable:?}"
            );
            state.violation(Invariant::Durability, detail);
        }
    }

    /// Node `id` acknowledges its log through `match_index` in `term`.
    pub(super) fn check_append_ack(&self, id: NodeId, match_index: Index, term: Term, disk: &SimDisk) {
        self.check_not_lost(id, disk, "acknowledged entries");
        let (durable_last, durable_snapshot, visible_term, durable_term) =
            disk.with_both(|visible, durable| {
                (
                    durable.last_index(),
                    durable.snapshot_index(),
                    visible.term_at(match_index),
                    durable.term_at(match_index),
                )
            });
        let mut state = self.lock();
        state.counts.append_acks += 1;
        // The acknowledged entry must be on disk as the node sees it; an index inside
        // the durable snapshot is durable too.
        let on_disk =
            durable_last >= match_index && (durable_term == visible_term || durable_snapshot >= match_index);
        if !on_disk {
            let detail = format!(
                "node {id} acknowledged entries through {match_index} in term {term} but its disk ends at \
                 {durable_last} (term there {durable_term:?}, in memory {visible_term:?})"
            );
            state.violation(Invariant::Durability, detail);
        }
    }

    /// A promise (`what`) from node `id` must not come from an incarnation whose disk
    /// was lost: its votes and acknowledgements went with the disk (issue 10; the
    /// cluster must make the node a member again under a new incarnation).
    fn check_not_lost(&self, id: NodeId, disk: &SimDisk, what: &str) {
        let any_lost = {
            let state = self.lock();
            state
                .lost_incarnations
                .range((id, 0)..=(id, u64::MAX))
                .next()
                .is_some()
        };
        if !any_lost {
            return;
        }
        // The disk's lock is never taken while the monitor's is held.
        let Some(incarnation) = disk.incarnation() else {
            return;
        };
        let mut state = self.lock();
        let Some(reported) = state.lost_incarnations.get_mut(&(id, incarnation)) else {
            return;
        };
        if std::mem::replace(reported, true) {
            return;
        }
        let detail = format!(
            "node {id} {what} as incarnation {incarnation:016x}, whose disk was lost: it votes and \
             acknowledges with an empty disk as the member it was"
        );
        state.violation(Invariant::Durability, detail);
    }

    /// Why the entry at `commit` (of `commit_term`) that a leader, whose disk is `disk`,
    /// advertises as committed is not durable on a majority of voters; `None` if it is.
    ///
    /// Which voters: the configuration the leader counted under, which is the latest in
    /// its log when it advanced the commit index. The checker sees the commit index
    /// later, when a message carries it, and the leader may have appended a change in
    /// between; changes come one at a time and a new one only once the previous one is
    /// committed (`raft/src/membership.rs`), so the configuration it counted under is
    /// the one in force at `commit` or the one latest change after it. A majority of
    /// either passes.
    ///
    /// Which copies: a voter holds the entry if its disk holds it durably now, or if a
    /// disk it lost held it durably at the loss. The second is not a copy any more, but
    /// the acknowledgements that disk sent before the loss were true when sent, and the
    /// leader rightly counts them for as long as the lost incarnation is the member (the
    /// joining node's first step removes it, and a new learner starts from nothing). So
    /// a commit inherited from before a loss, or counted from acknowledgements sent before
    /// it, is not a violation; Raft stays safe because the lost incarnation votes and
    /// acknowledges nothing more (`check_not_lost`), which the cluster enforces by
    /// dropping the votes and acknowledgements of its data dir's new incarnation until it is
    /// made a member again.
    pub(super) fn commit_not_durable(
        &self,
        commit: Index,
        commit_term: Term,
        disk: &SimDisk,
    ) -> Option<String> {
        let (disks, lost) = {
            let state = self.lock();
            (state.disks.clone(), state.lost_disks.clone())
        };
        // A log without any configuration is a hand-made one of a unit test (every real
        // log starts with the founders' configuration entry or a snapshot): there, every
        // registered disk is a voter.
        let registered = ConfState::with_voters(disks.keys().copied());
        let in_force =
            |index: Index| Some(disk.configuration_at(index)).filter(|conf| conf != &ConfState::default());
        let at_commit = in_force(commit).unwrap_or_else(|| registered.clone());
        let latest = in_force(Index::MAX).unwrap_or(registered);
        let copies_at_commit = durable_copies(&disks, &lost, &at_commit, commit, commit_term);
        let copies_latest = durable_copies(&disks, &lost, &latest, commit, commit_term);
        if copies_at_commit * 2 > at_commit.voters.len() || copies_latest * 2 > latest.voters.len() {
            return None;
        }
        Some(format!(
            "durable on only {copies_at_commit} of the voters {:?} in force at it, and {copies_latest} of the \
             voters {:?} of the latest configuration",
            at_commit.voters, latest.voters
        ))
    }
}

/// How many of `conf`'s voters hold the entry at `index` of `term` durably on their
/// disk, or held it on a disk they lost (`lost`).
fn durable_copies(
    disks: &BTreeMap<NodeId, SimDisk>,
    lost: &BTreeMap<NodeId, Vec<MemoryStore>>,
    conf: &ConfState,
    index: Index,
    term: Term,
) -> usize {
    let holds = |store: &MemoryStore| store.snapshot_index() >= index || store.term_at(index) == Some(term);
    conf.voters
        .iter()
        .filter(|voter| {
            disks.get(voter).is_some_and(|disk| disk.with_durable(holds))
                || lost.get(voter).is_some_and(|stores| stores.iter().any(holds))
        })
        .count()
}
