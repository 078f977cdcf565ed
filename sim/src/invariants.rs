//! The Raft invariants (paper §5.2–§5.4, Figure 3), checked from the nodes' own state
//! while the simulation runs: every message a node sends and every write its store
//! receives passes through here, with the node's disk at that instant.
//!
//! - **Election safety**: at most one node sends leader messages (appends, heartbeats,
//!   snapshots) in a term.
//! - **Log matching**: every entry ever written by any node, keyed by (index, term),
//!   has one payload and one predecessor term, so two logs that agree on an entry agree
//!   on everything before it (checked by induction, one link per write).
//! - **Leader completeness** (§5.4.1, §5.4.3): a node starting to lead term T holds
//!   every entry known committed in a term before T; and a leader advances its commit
//!   index only onto an entry of its own term (§5.4.2, the rule whose absence is
//!   Figure 8). Entries committed in T or later are not required: a candidate of T can
//!   win after a later term has already committed (seed 50785: node 5 won term 12 on a
//!   delayed vote 43 ms after node 1 had won term 13).
//! - **State machine safety**: one entry per index is ever committed or applied, on
//!   any node.
//! - **Durability before speech** (thesis §3.8): a vote grant leaves only once the vote
//!   is on the voter's disk; an append acknowledgement only once the entries it
//!   acknowledges are; a commit index only once its entry is durable on a majority of
//!   the voters of the configuration in force (see `invariants/durability.rs`).
//! - **No speech from a lost disk**: a node's incarnation whose disk was lost
//!   ([`RaftMonitor::on_wipe`]) never again grants a vote or acknowledges entries: what
//!   it promised is gone, so only a new incarnation, made a member again, may.
//!
//! Configuration changes and disk loss: no check assumes a fixed cluster. Majorities are
//! taken over the configuration in the leader's log. A wiped disk is emptied in place: its
//! new incarnation's log, votes and acknowledgements are checked like any node's (they
//! must agree with every entry ever written and decided), while what the lost disk held
//! is kept aside, only as the copies a leader may still count from the acknowledgements
//! the lost incarnation sent before the loss (see `invariants/durability.rs`).
//!
//! Findings are recorded, not panicked on, so the canary tests can assert that a known
//! bug is caught; the scenario fails a normal run on the first finding.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use node::storage::memory_store::MemoryStore;
use raft::{Entry, EntryPayload, Index, Message, MessageBody, NodeId, Term};

use crate::sim_store::SimDisk;

/// Which invariant a finding breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    ElectionSafety,
    LogMatching,
    LeaderCompleteness,
    StateMachineSafety,
    Durability,
}

mod durability;

/// One broken invariant, with what showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.invariant, self.detail)
    }
}

/// How many times each check ran, for the run's report (a checker that never runs
/// proves nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CheckCounts {
    pub leader_messages: u64,
    pub leaders_seen: u64,
    pub entries_written: u64,
    pub entries_decided: u64,
    pub vote_grants: u64,
    pub append_acks: u64,
    pub commit_advances: u64,
    /// Disks lost (`RaftMonitor::on_wipe`).
    pub disks_lost: u64,
}

/// What one entry looks like to the log matching check.
#[derive(Debug, Clone)]
struct WrittenEntry {
    payload: EntryPayload,
    /// Term of the entry before it in the log that wrote it (0 before index 1); `None`
    /// when the writer's log no longer held it (compacted into a snapshot).
    previous_term: Option<Term>,
}

/// The commit index a leader's message shows.
#[derive(Debug, Clone, Copy)]
enum LeaderCommit {
    /// The leader's own (an append's).
    Exact(Index),
    /// A lower bound of the leader's: a heartbeat's (clamped to the follower's match
    /// index) or the one its disk holds.
    LowerBound(Index),
}

/// A leader's term as seen from its messages.
#[derive(Debug, Clone, Copy)]
struct Leadership {
    leader: NodeId,
    /// The commit index in its first append: inherited, not committed by this term.
    /// `None` until an append is seen (a heartbeat's commit index is clamped to the
    /// follower's match index, and a snapshot's is the lazily persisted one: both only
    /// bound the leader's from below).
    commit_at_start: Option<Index>,
    /// Entries up to here were recorded as decided from this leader's commit index.
    decided_through: Index,
}

/// An entry known committed, and the earliest term in which it was known to be.
#[derive(Debug, Clone)]
struct Decision {
    entry: Entry,
    /// The term of the leader whose commit index covered it, or for an entry first seen
    /// applied, the applier's current term: never below the term that committed it, so
    /// the leader completeness check on it can miss a case but never invent one.
    committed_in_term: Term,
}

#[derive(Debug, Default)]
struct MonitorState {
    disks: BTreeMap<NodeId, SimDisk>,
    leaderships: BTreeMap<Term, Leadership>,
    written: BTreeMap<(Index, Term), WrittenEntry>,
    /// The one entry committed (or applied) at each index.
    decided: BTreeMap<Index, Decision>,
    /// (node, incarnation) whose disk was lost, and whether it was already caught
    /// speaking (reported once, not on every later message).
    lost_incarnations: BTreeMap<(NodeId, u64), bool>,
    /// Per node, the durable state of each of its lost disks, at the loss.
    lost_disks: BTreeMap<NodeId, Vec<MemoryStore>>,
    violations: Vec<Violation>,
    counts: CheckCounts,
}

impl MonitorState {
    fn violation(&mut self, invariant: Invariant, detail: String) {
        tracing::error!(?invariant, %detail, "Raft invariant violated");
        self.violations.push(Violation { invariant, detail });
    }

    /// Records that `entry` is committed (or applied) at its index, known so in
    /// `committed_in_term` at the latest; `who` says how.
    fn decide(&mut self, entry: &Entry, committed_in_term: Term, who: &str) {
        assert!(
            committed_in_term >= entry.term,
            "an entry is committed in its own term or later"
        );
        self.counts.entries_decided += 1;
        let Some(known) = self.decided.get_mut(&entry.index) else {
            let decision = Decision {
                entry: entry.clone(),
                committed_in_term,
            };
            self.decided.insert(entry.index, decision);
            return;
        };
        if known.entry.term == entry.term && known.entry.payload == entry.payload {
            known.committed_in_term = known.committed_in_term.min(committed_in_term);
            return;
        }
        let detail = format!(
            "index {} was decided as term {} ({:?}) but {who} has term {} ({:?})",
            entry.index, known.entry.term, known.entry.payload, entry.term, entry.payload
        );
        self.violation(Invariant::StateMachineSafety, detail);
    }
}

/// The shared checker; clone it into every simulated node's store and network.
#[derive(Debug, Clone, Default)]
pub struct RaftMonitor {
    state: Arc<Mutex<MonitorState>>,
}

impl RaftMonitor {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MonitorState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes node `id`'s disk known, for the majority-durability check of commits.
    pub fn register(&self, id: NodeId, disk: SimDisk) {
        self.lock().disks.insert(id, disk);
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    pub fn counts(&self) -> CheckCounts {
        self.lock().counts
    }

    /// After node `id` wrote `entries` (now in `log`, its visible store).
    pub fn on_persist(&self, id: NodeId, log: &MemoryStore, entries: &[Entry]) {
        let mut state = self.lock();
        for entry in entries {
            state.counts.entries_written += 1;
            let previous_term = match entry.index {
                1 => Some(0),
                index => log.term_at(index - 1),
            };
            let written = WrittenEntry {
                payload: entry.payload.clone(),
                previous_term,
            };
            let key = (entry.index, entry.term);
            let Some(known) = state.written.get(&key).cloned() else {
                state.written.insert(key, written);
                continue;
            };
            if known.payload != written.payload {
                let detail = format!(
                    "node {id} wrote {:?} at index {} term {}, where another log holds {:?}",
                    written.payload, entry.index, entry.term, known.payload
                );
                state.violation(Invariant::LogMatching, detail);
            } else if let (Some(before), Some(now)) = (known.previous_term, written.previous_term) {
                if before != now {
                    let detail = format!(
                        "node {id} holds index {} term {} after term {now}, another log after term {before}",
                        entry.index, entry.term
                    );
                    state.violation(Invariant::LogMatching, detail);
                }
            } else if known.previous_term.is_none() {
                state.written.insert(key, written);
            }
        }
    }

    /// Node `id` is about to apply entries `(applied_before, applied_after]`, read from
    /// `log`, its visible store. Entries a snapshot brought are not in the log: skipped.
    pub fn on_apply(&self, id: NodeId, log: &MemoryStore, applied_before: Index, applied_after: Index) {
        let mut state = self.lock();
        let who = format!("node {id}'s apply");
        // The applier learnt the commit in its current term or earlier.
        let current_term = log.hard_state().map_or(0, |hard| hard.term);
        for index in applied_before + 1..=applied_after {
            if let Some(entry) = log.entry(index) {
                state.decide(entry, current_term.max(entry.term), &who);
            }
        }
    }

    /// Node `id` is sending `message`; `disk` is its own disk.
    pub fn on_send(&self, id: NodeId, message: &Message, disk: &SimDisk) {
        assert_eq!(message.from, id, "a node sends in its own name");
        let term = message.term;
        match &message.body {
            MessageBody::Append(append) => {
                self.on_leader_message(id, term, LeaderCommit::Exact(append.leader_commit), disk);
            }
            MessageBody::Heartbeat(heartbeat) => {
                // min(commit, the follower's match index): entries known to match it.
                self.on_leader_message(id, term, LeaderCommit::LowerBound(heartbeat.leader_commit), disk);
            }
            MessageBody::InstallSnapshot(_) => {
                // No commit index travels with a chunk; the leadership still counts.
                let commit = disk.with_visible(|log| log.hard_state().map_or(0, |hard| hard.commit));
                self.on_leader_message(id, term, LeaderCommit::LowerBound(commit), disk);
            }
            MessageBody::VoteResponse(response) if response.granted => {
                self.check_vote_grant(id, message.to, term, disk);
            }
            MessageBody::AppendResponse(raft::AppendResponse::Accepted { match_index }) => {
                self.check_append_ack(id, *match_index, term, disk);
            }
            _ => {}
        }
    }

    /// Leader `id` of `term` speaks with commit index `commit`.
    fn on_leader_message(&self, id: NodeId, term: Term, commit: LeaderCommit, disk: &SimDisk) {
        let (commit, exact) = match commit {
            LeaderCommit::Exact(commit) => (commit, true),
            LeaderCommit::LowerBound(commit) => (commit, false),
        };
        let known = {
            let mut state = self.lock();
            state.counts.leader_messages += 1;
            state.leaderships.get(&term).copied()
        };
        let leadership = match known {
            Some(leadership) if leadership.leader != id => {
                let detail = format!("nodes {} and {id} both lead term {term}", leadership.leader);
                self.lock().violation(Invariant::ElectionSafety, detail);
                return;
            }
            Some(leadership) => leadership,
            None => self.start_leadership(id, term, disk),
        };
        // §5.4.2: the leader's own commit index moves only to entries of its term. Only
        // an append carries it as it is; the first one gives where the term started.
        if exact {
            let start = match leadership.commit_at_start {
                Some(start) => start,
                None => {
                    if let Some(leadership) = self.lock().leaderships.get_mut(&term) {
                        leadership.commit_at_start = Some(commit);
                    }
                    commit
                }
            };
            let commit_term = disk.with_visible(|log| log.term_at(commit));
            if commit > start && commit_term.is_some_and(|commit_term| commit_term != term) {
                let detail = format!(
                    "leader {id} of term {term} committed index {commit} of term {commit_term:?} by counting \
                     replicas (it started the term at commit {start})"
                );
                self.lock().violation(Invariant::LeaderCompleteness, detail);
            }
        }
        if commit <= leadership.decided_through {
            return;
        }
        // Every entry through the commit index is now committed: it must be the one
        // already decided there, and the newest one must be of this term (§5.4.2).
        let entries: Vec<Option<Entry>> = disk.with_visible(|log| {
            (leadership.decided_through + 1..=commit)
                .map(|index| log.entry(index).cloned())
                .collect()
        });
        let commit_term = disk.with_visible(|log| log.term_at(commit));
        let not_durable =
            commit_term.and_then(|commit_term| self.commit_not_durable(commit, commit_term, disk));
        let mut state = self.lock();
        state.counts.commit_advances += 1;
        let who = format!("leader {id} of term {term}");
        for entry in entries.iter().flatten() {
            state.decide(entry, term, &who);
        }
        tracing::debug!(leader = id, term, commit, ?commit_term, "commit advanced");
        if let Some(why) = not_durable {
            let detail = format!("leader {id} of term {term} committed index {commit} {why}");
            state.violation(Invariant::Durability, detail);
        }
        if let Some(leadership) = state.leaderships.get_mut(&term) {
            leadership.decided_through = leadership.decided_through.max(commit);
        }
    }

    /// First message of `id` as leader of `term`: it must hold every entry committed in
    /// an earlier term (§5.4.3). Its first message may be seen after a later term has
    /// committed entries (it won on a delayed vote): those it need not hold.
    fn start_leadership(&self, id: NodeId, term: Term, disk: &SimDisk) -> Leadership {
        let decided: Vec<Entry> = self
            .lock()
            .decided
            .values()
            .filter(|decision| decision.committed_in_term < term)
            .map(|decision| decision.entry.clone())
            .collect();
        let missing: Vec<String> = disk.with_visible(|log| {
            let snapshot_index = log.snapshot_index();
            decided
                .iter()
                .filter(|entry| entry.index > snapshot_index)
                .filter(|entry| log.entry(entry.index) != Some(*entry))
                .take(3)
                .map(|entry| format!("index {} term {}", entry.index, entry.term))
                .collect()
        });
        let leadership = Leadership {
            leader: id,
            commit_at_start: None,
            decided_through: 0,
        };
        let mut state = self.lock();
        state.counts.leaders_seen += 1;
        if !missing.is_empty() {
            let detail = format!(
                "node {id} leads term {term} without committed entries: {}",
                missing.join(", ")
            );
            state.violation(Invariant::LeaderCompleteness, detail);
        }
        state.leaderships.insert(term, leadership);
        leadership
    }

    /// After the run: every node's durable log agrees with every decided entry it holds.
    pub fn check_final_logs(&self) {
        let (disks, decided) = {
            let state = self.lock();
            let decided: Vec<Entry> = state
                .decided
                .values()
                .map(|decision| decision.entry.clone())
                .collect();
            (state.disks.clone(), decided)
        };
        for (id, disk) in disks {
            let wrong: Vec<Index> = disk.with_durable(|durable| {
                decided
                    .iter()
                    .filter(|entry| durable.term_at(entry.index) == Some(entry.term))
                    .filter(|entry| durable.entry(entry.index).is_some_and(|held| held != *entry))
                    .map(|entry| entry.index)
                    .take(3)
                    .collect()
            });
            if !wrong.is_empty() {
                let detail =
                    format!("node {id}'s durable log differs from the committed entries at {wrong:?}");
                self.lock().violation(Invariant::StateMachineSafety, detail);
            }
        }
    }
}

#[cfg(test)]
mod tests;
