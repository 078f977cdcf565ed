//! Membership changes one server at a time (thesis §4.1), with learners that catch up
//! before they vote (thesis §4.2.1) and a leader that steps down once its own removal
//! commits (thesis §4.2.2).

use tracing::info;

use crate::error::ProposalError;
use crate::progress::Progress;
use crate::raft::Raft;
use crate::replication::Proposal;
use crate::types::{ConfChange, ConfState, EntryPayload, NodeId};

impl Raft {
    /// Proposes one membership change. Refused while another change is uncommitted, and
    /// until this leader has committed an entry of its own term: without that rule two
    /// overlapping single-server changes from different terms can elect two leaders
    /// (Ongaro, raft-dev 2015, "bug in single-server membership changes").
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<Proposal, ProposalError> {
        self.ensure_leader()?;
        let committed = self.log.committed();
        let committed_in_term = self.log.term(committed) == Some(self.term);
        let pending_conf_index = self.leader_state_mut().pending_conf_index;
        if pending_conf_index > committed || !committed_in_term {
            return Err(ProposalError::ConfChangeInProgress);
        }
        let new_conf = self.changed_conf(change)?;
        let proposal = self.append_as_leader(EntryPayload::Config(new_conf))?;
        self.leader_state_mut().pending_conf_index = proposal.index;
        info!(
            id = self.config.id,
            term = self.term,
            index = proposal.index,
            ?change,
            "proposed configuration change"
        );
        self.refresh_conf();
        Ok(proposal)
    }

    fn changed_conf(&mut self, change: ConfChange) -> Result<ConfState, ProposalError> {
        let invalid = |why: String| Err(ProposalError::InvalidConfChange(why));
        let mut conf = self.conf.clone();
        match change {
            ConfChange::AddLearner(id) => {
                if conf.contains(id) {
                    return invalid(format!("{id} is already a member"));
                }
                conf.learners.insert(id);
            }
            ConfChange::PromoteLearner(id) => {
                if !conf.learners.contains(&id) {
                    return invalid(format!("{id} is not a learner"));
                }
                let committed = self.log.committed();
                let match_index = self
                    .leader_state_mut()
                    .progress
                    .get(&id)
                    .map_or(0, |p| p.match_index);
                if match_index < committed {
                    return Err(ProposalError::LearnerNotCaughtUp {
                        learner: id,
                        match_index,
                        commit: committed,
                    });
                }
                conf.learners.remove(&id);
                conf.voters.insert(id);
            }
            ConfChange::Remove(id) => {
                if !conf.contains(id) {
                    return invalid(format!("{id} is not a member"));
                }
                conf.voters.remove(&id);
                conf.learners.remove(&id);
                if conf.voters.is_empty() {
                    return invalid("the last voter cannot be removed".into());
                }
            }
        }
        assert!(conf.is_well_formed());
        Ok(conf)
    }

    /// Keeps role state in line with a new configuration.
    pub(crate) fn on_conf_changed(&mut self) {
        info!(
            id = self.config.id,
            conf_index = self.conf_index,
            voters = ?self.conf.voters,
            learners = ?self.conf.learners,
            "configuration changed"
        );
        let own_id = self.config.id;
        let next_index = self.log.last_index() + 1;
        let max_inflight = self.config.max_inflight_appends_per_follower;
        let members: Vec<NodeId> = self.conf.members().filter(|&id| id != own_id).collect();
        let crate::raft::RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        leader.progress.retain(|id, _| members.contains(id));
        for id in members {
            leader
                .progress
                .entry(id)
                .or_insert_with(|| Progress::new(next_index, max_inflight));
        }
        if leader
            .transfer
            .is_some_and(|transfer| !self.conf.is_voter(transfer.target))
        {
            info!(
                id = own_id,
                "leadership transfer abandoned: target no longer a voter"
            );
            leader.transfer = None;
        }
        leader.broadcast_pending = true;
    }
}
