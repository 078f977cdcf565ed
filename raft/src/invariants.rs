//! Invariants checked after every step, tick and advance in debug builds (and so in
//! every test and simulation). A violation is a bug in this crate: it panics.

use std::collections::BTreeSet;

use crate::raft::{Raft, RoleState};
use crate::types::NodeId;

impl Raft {
    pub(crate) fn check_invariants(&mut self) {
        if cfg!(debug_assertions) {
            self.assert_invariants();
        }
    }

    fn assert_invariants(&mut self) {
        let id = self.config.id;
        let purged = self.log.purged_index();
        let committed = self.log.committed();
        let last = self.log.last_index();
        // purged <= snapshot <= applied <= committed <= last index (ARCHITECTURE.md).
        if purged > 0 {
            let snapshot_index = self.snapshot.as_ref().map_or(0, |s| s.meta.index);
            assert!(
                purged <= snapshot_index,
                "{id}: purged {purged} beyond snapshot {snapshot_index}"
            );
        }
        if let Some(snapshot) = &self.snapshot {
            let installing = self.snapshot_to_install.is_some();
            assert!(
                snapshot.meta.index <= self.applied || installing,
                "{id}: snapshot {} beyond applied {}",
                snapshot.meta.index,
                self.applied
            );
        }
        assert!(
            self.applied <= committed || self.snapshot_to_install.is_some(),
            "{id}: applied beyond commit"
        );
        assert!(
            committed <= last,
            "{id}: commit {committed} beyond last index {last}"
        );
        assert!(
            self.log.last_term() <= self.term,
            "{id}: log term beyond current term"
        );
        // Commit never moves back.
        assert!(committed >= self.highest_commit_seen, "{id}: commit moved back");
        self.highest_commit_seen = committed;
        // One leader per term, as seen by this server (paper §5.2, election safety).
        let (seen_term, seen_leader) = self.leader_seen;
        if seen_term == self.term {
            if let (Some(before), Some(now)) = (seen_leader, self.leader) {
                assert_eq!(before, now, "{id}: two leaders in term {}", self.term);
            }
        }
        self.leader_seen = (
            self.term,
            self.leader
                .or(if seen_term == self.term { seen_leader } else { None }),
        );
        match &self.role {
            RoleState::Leader(leader) => {
                assert_eq!(self.leader, Some(id));
                assert_eq!(self.vote, Some(id), "{id}: a leader voted for itself");
                let others: BTreeSet<NodeId> = self.conf.members().filter(|&member| member != id).collect();
                assert!(
                    others.iter().eq(leader.progress.keys()),
                    "{id}: progress is not one per member"
                );
                for (peer, progress) in &leader.progress {
                    assert!(
                        progress.match_index <= last,
                        "{id}: {peer} matches beyond our log"
                    );
                    assert!(
                        progress.next_index > progress.match_index,
                        "{id}: {peer} next <= match"
                    );
                }
            }
            RoleState::Candidate(_) => assert_eq!(self.vote, Some(id)),
            RoleState::PreCandidate(_) | RoleState::Follower => {}
        }
        assert!(self.conf.is_well_formed());
    }
}
