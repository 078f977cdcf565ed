//! The Raft safety properties (paper Figure 3), checked while a schedule runs:
//! election safety, log matching, leader completeness and state machine safety.

use std::collections::{BTreeMap, BTreeSet};

use raft::{Entry, EntryPayload, Index, NodeId, Raft, Role, Term};

use super::state_machine::{value_of, StateMachine};

#[derive(Debug, Default)]
pub struct SafetyChecker {
    /// Election safety: at most one leader per term.
    leaders_by_term: BTreeMap<Term, NodeId>,
    /// Log matching: an (index, term) pair always names the same payload after the same
    /// previous term, so by induction two logs agreeing on it agree on all before it.
    entries: BTreeMap<(Index, Term), (EntryPayload, Term)>,
    /// State machine safety: one entry per applied index, everywhere.
    applied: BTreeMap<Index, (Term, EntryPayload)>,
    /// Leaders already checked for completeness at their election.
    checked_leaders: BTreeSet<(NodeId, Term)>,
    pub checks: u64,
}

impl SafetyChecker {
    pub fn highest_applied_anywhere(&self) -> Index {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }

    pub fn applied_entries(&self) -> &BTreeMap<Index, (Term, EntryPayload)> {
        &self.applied
    }

    /// Runs after every input: election safety and, for each new leader, completeness.
    pub fn observe(&mut self, servers: &BTreeMap<NodeId, Option<Raft>>) {
        self.checks += 1;
        for raft in servers.values().flatten() {
            if raft.role() != Role::Leader {
                continue;
            }
            let (id, term) = (raft.id(), raft.term());
            let leader = *self.leaders_by_term.entry(term).or_insert(id);
            assert_eq!(
                leader, id,
                "election safety: {leader} and {id} both lead term {term}"
            );
            if self.checked_leaders.insert((id, term)) {
                self.assert_complete(raft);
            }
        }
        // Lease safety (thesis §6.4.1): while a leader holds a read lease, no later
        // term has elected anyone, or a lease read could miss that leader's writes.
        let newest_term = self.leaders_by_term.keys().next_back().copied().unwrap_or(0);
        for raft in servers.values().flatten() {
            if raft.holds_read_lease() {
                assert_eq!(
                    raft.term(),
                    newest_term,
                    "lease safety: {} holds a read lease of term {} after a leader of term {newest_term} was elected",
                    raft.id(),
                    raft.term()
                );
            }
        }
    }

    /// Leader completeness (paper §5.4.1): a leader holds every committed entry.
    fn assert_complete(&self, leader: &Raft) {
        let purged = leader.log().purged_index();
        for (&index, (term, _)) in self.applied.range(purged + 1..) {
            assert_eq!(
                leader.log().term(index),
                Some(*term),
                "leader completeness: leader {} of term {} lacks committed entry {index} of term {term}",
                leader.id(),
                leader.term()
            );
        }
    }

    pub fn on_persist(&mut self, id: NodeId, raft: &Raft, entries: &[Entry]) {
        let mut previous_term = entries.first().map(|first| {
            raft.log()
                .term(first.index - 1)
                .expect("entry before a new entry is in the log")
        });
        for entry in entries {
            let previous = previous_term.expect("set above");
            let known = self
                .entries
                .entry((entry.index, entry.term))
                .or_insert_with(|| (entry.payload.clone(), previous));
            assert_eq!(
                *known,
                (entry.payload.clone(), previous),
                "log matching: {id} holds a different entry at index {} term {}",
                entry.index,
                entry.term
            );
            previous_term = Some(entry.term);
        }
    }

    pub fn on_apply(&mut self, id: NodeId, entry: &Entry, _machine: &StateMachine) {
        let recorded = self
            .applied
            .entry(entry.index)
            .or_insert_with(|| (entry.term, entry.payload.clone()));
        assert_eq!(
            *recorded,
            (entry.term, entry.payload.clone()),
            "state machine safety: {id} applied a different entry at index {}",
            entry.index
        );
    }

    /// A state machine restored from a snapshot holds exactly what was applied.
    pub fn on_restore(&self, id: NodeId, machine: &StateMachine) {
        assert_eq!(
            machine.values,
            self.values_through(machine.applied),
            "{id} restored a wrong snapshot"
        );
    }

    /// The values every state machine must hold after applying through `index`.
    pub fn values_through(&self, index: Index) -> Vec<u64> {
        let known = self.applied.range(..=index).count() as u64;
        assert_eq!(known, index, "indexes 1..={index} were not all applied somewhere");
        self.applied
            .range(..=index)
            .filter_map(|(_, (_, payload))| value_of(payload))
            .collect()
    }
}
