//! The Raft safety properties across servers (paper Figure 3), checked by raft_step
//! while only honest messages were delivered (a forged message that passes `validate`
//! may legitimately lie its way to two leaders of one term).

use std::collections::BTreeMap;

use raft::{Entry, EntryPayload, Index, NodeId, Raft, ReadState, Term};

use crate::disk::Disk;

/// An entry some server knew to be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Commit {
    /// The entry's own term.
    term: Term,
    /// The lowest term a server was in when it knew the entry committed. The entry was
    /// committed in this term or an earlier one: a server learns a commit index only from
    /// the leader of its current term, from its own disk or from a snapshot, and its term
    /// never goes back.
    known_in: Term,
}

#[derive(Debug, Default)]
pub(crate) struct Checker {
    leaders_by_term: BTreeMap<Term, NodeId>,
    /// (index, term) -> (payload, term of the entry before): log matching.
    entries: BTreeMap<(Index, Term), (EntryPayload, Term)>,
    /// index -> (term, payload, machine digest after applying it): state machine safety.
    applied: BTreeMap<Index, (Term, EntryPayload, u64)>,
    /// index -> what is known of its commit: leader completeness.
    committed: BTreeMap<Index, Commit>,
    /// Indexes whose `committed` record was added or lowered, in order: a leader already
    /// checked is checked again against this list's tail only.
    commit_changes: Vec<Index>,
    /// Per leader and term, how much of `commit_changes` it was checked against.
    leaders_checked: BTreeMap<(NodeId, Term), usize>,
    /// Per leader and term, the commit index already checked to be durable on a quorum.
    durable_commit_checked: BTreeMap<(NodeId, Term), Index>,
    /// (node, context) -> highest index applied anywhere when the read was issued.
    reads_issued: BTreeMap<(NodeId, u64), Index>,
}

impl Checker {
    pub(crate) fn highest_applied(&self) -> Index {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }

    pub(crate) fn read_issued(&mut self, id: NodeId, context: u64) {
        let acknowledged = self.highest_applied();
        self.reads_issued.insert((id, context), acknowledged);
    }

    /// Linearizable reads: a read is released at an index no lower than anything applied
    /// anywhere before it was issued.
    pub(crate) fn check_read(&self, id: NodeId, read: &ReadState) {
        let acknowledged = self.reads_issued.get(&(id, read.context)).copied().unwrap_or(0);
        assert!(
            read.index >= acknowledged,
            "stale read on {id}: index {} < {acknowledged} applied before it was issued",
            read.index
        );
    }

    /// Log matching: entries with the same index and term hold the same payload and follow
    /// the same term. `previous` is the term of the entry before `entries`.
    pub(crate) fn check_persisted(&mut self, id: NodeId, previous: Term, entries: &[Entry]) {
        let mut previous = previous;
        for entry in entries {
            let known = self
                .entries
                .entry((entry.index, entry.term))
                .or_insert_with(|| (entry.payload.clone(), previous));
            assert_eq!(
                *known,
                (entry.payload.clone(), previous),
                "log matching: {id} holds another entry at index {} term {}",
                entry.index,
                entry.term
            );
            previous = entry.term;
        }
    }

    /// A restored snapshot holds exactly what was applied through its index.
    pub(crate) fn check_restored(&self, id: NodeId, index: Index, digest: u64) {
        let (_, _, applied) = self
            .applied
            .get(&index)
            .unwrap_or_else(|| panic!("{id} installed a snapshot at {index}, applied nowhere"));
        assert_eq!(digest, *applied, "{id} restored a wrong snapshot at {index}");
    }

    /// State machine safety: every server applies the same entry at each index, reaching
    /// the same state.
    pub(crate) fn check_applied(&mut self, id: NodeId, entry: &Entry, digest: u64) {
        let recorded = self
            .applied
            .entry(entry.index)
            .or_insert_with(|| (entry.term, entry.payload.clone(), digest));
        assert_eq!(
            *recorded,
            (entry.term, entry.payload.clone(), digest),
            "state machine safety: {id} applied another entry at index {}",
            entry.index
        );
    }

    /// `id`, in term `known_in`, knows the entry of term `term` at `index` committed.
    pub(crate) fn record_commit(&mut self, id: NodeId, index: Index, term: Term, known_in: Term) {
        match self.committed.get_mut(&index) {
            None => {
                self.committed.insert(index, Commit { term, known_in });
                self.commit_changes.push(index);
            }
            Some(commit) => {
                assert_eq!(
                    commit.term, term,
                    "{id} knows the entry of term {term} committed at {index}, another server the one of term {}",
                    commit.term
                );
                if known_in < commit.known_in {
                    commit.known_in = known_in;
                    self.commit_changes.push(index);
                }
            }
        }
    }

    /// Election safety (one leader per term) and leader completeness (§5.4.3): a leader
    /// of term T holds every entry committed in T or earlier. An entry known committed
    /// only in a later term need not be there (a delayed vote may still make a leader of
    /// an old term).
    /// `leader` leads `term`; its log is purged through `purged` and holds the entry of
    /// term `term_at(index)` at each index above.
    pub(crate) fn check_leader(
        &mut self,
        leader: NodeId,
        term: Term,
        purged: Index,
        term_at: impl Fn(Index) -> Option<Term>,
    ) {
        let first = *self.leaders_by_term.entry(term).or_insert(leader);
        assert_eq!(
            first, leader,
            "election safety: {first} and {leader} both lead term {term}"
        );
        let must_hold = |index: Index, commit: &Commit| {
            if index > purged && commit.known_in <= term {
                assert_eq!(
                    term_at(index),
                    Some(commit.term),
                    "leader completeness: {leader} of term {term} lacks entry {index} of term {}, committed by term {}",
                    commit.term,
                    commit.known_in
                );
            }
        };
        match self.leaders_checked.get(&(leader, term)).copied() {
            None => {
                for (&index, commit) in self.committed.range(purged + 1..) {
                    must_hold(index, commit);
                }
            }
            Some(position) => {
                for index in &self.commit_changes[position..] {
                    must_hold(*index, &self.committed[index]);
                }
            }
        }
        self.leaders_checked
            .insert((leader, term), self.commit_changes.len());
    }

    /// Paper §5.3: committed means stored on a majority of the voters' disks, whenever
    /// a leader advances its commit index.
    pub(crate) fn check_commit_durable<'a>(
        &mut self,
        raft: &Raft,
        disk_of: impl Fn(NodeId) -> Option<&'a Disk>,
    ) {
        let (leader, term) = (raft.id(), raft.term());
        let commit = raft.committed();
        let checked = self
            .durable_commit_checked
            .entry((leader, term))
            .or_insert(commit);
        if commit <= *checked {
            return;
        }
        *checked = commit;
        let commit_term = raft.log().term(commit);
        let voters = &raft.conf_state().voters;
        let durable = voters
            .iter()
            .filter(|&&voter| {
                disk_of(voter).is_some_and(|disk| {
                    disk.snapshot_index() >= commit || disk.entry(commit).map(|e| e.term) == commit_term
                })
            })
            .count();
        assert!(
            durable > voters.len() / 2,
            "commit durability: {leader} of term {term} committed {commit}, durable on {durable} of {} voters",
            voters.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leader of term 4 whose log holds entries 1 and 2, of term 1.
    fn check_leader_of_term_4(checker: &mut Checker) {
        checker.check_leader(1, 4, 0, |index| (index <= 2).then_some(1));
    }

    #[test]
    #[should_panic(expected = "leader completeness: 1 of term 4 lacks entry 3")]
    fn a_leader_lacking_an_entry_committed_in_an_earlier_term_is_caught() {
        let mut checker = Checker::default();
        checker.record_commit(2, 3, 3, 3);
        check_leader_of_term_4(&mut checker);
    }

    #[test]
    #[should_panic(expected = "leader completeness: 1 of term 4 lacks entry 3")]
    fn an_entry_committed_in_an_earlier_term_after_the_leader_was_checked_is_caught() {
        let mut checker = Checker::default();
        check_leader_of_term_4(&mut checker);
        checker.record_commit(2, 3, 3, 7);
        check_leader_of_term_4(&mut checker);
        // Another server knew it committed in term 3 all along: the leader must hold it.
        checker.record_commit(3, 3, 3, 3);
        check_leader_of_term_4(&mut checker);
    }

    /// fuzz/regressions/raft_step/leader-of-an-old-term-elected-late: a delayed vote
    /// makes a leader of term 4 after an entry was committed in term 6.
    #[test]
    fn an_entry_committed_only_in_a_later_term_need_not_be_held() {
        let mut checker = Checker::default();
        checker.record_commit(3, 3, 6, 6);
        check_leader_of_term_4(&mut checker);
        checker.record_commit(2, 3, 6, 5);
        check_leader_of_term_4(&mut checker);
    }

    #[test]
    #[should_panic(expected = "election safety: 1 and 2 both lead term 4")]
    fn two_leaders_of_a_term_are_caught() {
        let mut checker = Checker::default();
        check_leader_of_term_4(&mut checker);
        checker.check_leader(2, 4, 0, |_| None);
    }

    #[test]
    #[should_panic(expected = "knows the entry of term 2 committed at 3, another server the one of term 3")]
    fn two_entries_committed_at_one_index_are_caught() {
        let mut checker = Checker::default();
        checker.record_commit(1, 3, 3, 3);
        checker.record_commit(2, 3, 2, 4);
    }
}
