//! Leader election: pre-vote (thesis §9.6), RequestVote (paper §5.2, §5.4.1) and the
//! tally that turns votes into a role.

use tracing::{debug, info};

use crate::message::{MessageBody, VoteRequest, VoteResponse};
use crate::raft::{Raft, RoleState};
use crate::types::{NodeId, Term};

impl Raft {
    /// Starts an election: a pre-vote round first unless disabled or this is a
    /// leadership transfer, whose target must not wait (thesis §3.10).
    pub(crate) fn campaign(&mut self, leadership_transfer: bool) {
        assert!(self.is_promotable(), "only a voter campaigns");
        if self.config.pre_vote && !leadership_transfer {
            self.become_pre_candidate();
            self.request_votes(true, false);
        } else {
            self.become_candidate();
            self.request_votes(false, leadership_transfer);
        }
    }

    fn request_votes(&mut self, pre_vote: bool, leadership_transfer: bool) {
        // Our own vote first: a single voter wins at once.
        self.handle_vote_response(self.config.id, true);
        if !matches!(self.role, RoleState::PreCandidate(_) | RoleState::Candidate(_)) {
            return;
        }
        let term = if pre_vote { self.term + 1 } else { self.term };
        let request = VoteRequest {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            leadership_transfer,
        };
        let voters: Vec<NodeId> = self
            .conf
            .voters
            .iter()
            .copied()
            .filter(|&id| id != self.config.id)
            .collect();
        for voter in voters {
            let body = if pre_vote {
                MessageBody::PreVote(request)
            } else {
                MessageBody::Vote(request)
            };
            self.send_with_term(voter, term, body);
        }
    }

    /// Decides a (pre-)vote request whose term has been normalised by `step`.
    pub(crate) fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        request: VoteRequest,
        pre_vote: bool,
    ) {
        // Vote once per term (paper §5.2); a pre-vote for a later term binds nothing.
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        // The election restriction (paper §5.4.1).
        let up_to_date = self
            .log
            .is_up_to_date(request.last_log_index, request.last_log_term);
        let granted = can_vote && up_to_date;
        debug!(
            id = self.config.id,
            from, term, pre_vote, granted, can_vote, up_to_date, "vote request"
        );
        if pre_vote {
            let response_term = if granted { term } else { self.term };
            self.send_with_term(
                from,
                response_term,
                MessageBody::PreVoteResponse(VoteResponse { granted }),
            );
            return;
        }
        if granted {
            assert_eq!(term, self.term, "vote requests were normalised to our term");
            self.vote = Some(from);
            // Granting a vote resets the timer (paper §5.2), so we do not compete.
            self.election_elapsed_ticks = 0;
        }
        // `send` holds the response back until the vote is durable (thesis §3.8).
        self.send(from, MessageBody::VoteResponse(VoteResponse { granted }));
    }

    /// Counts a vote for the current (pre-)candidacy.
    pub(crate) fn handle_vote_response(&mut self, from: NodeId, granted: bool) {
        if !self.conf.is_voter(from) {
            debug!(id = self.config.id, from, "ignored vote from a non-voter");
            return;
        }
        let quorum = self.conf.quorum_size();
        let (granted_count, rejected_count) = match &mut self.role {
            RoleState::PreCandidate(tally) | RoleState::Candidate(tally) => {
                if granted {
                    tally.granted.insert(from);
                } else {
                    tally.rejected.insert(from);
                }
                (tally.granted.len(), tally.rejected.len())
            }
            _ => return,
        };
        debug!(
            id = self.config.id,
            term = self.term,
            pre_vote = matches!(self.role, RoleState::PreCandidate(_)),
            from,
            granted,
            granted_count,
            rejected_count,
            quorum,
            "vote response"
        );
        if granted_count >= quorum {
            if matches!(self.role, RoleState::PreCandidate(_)) {
                info!(id = self.config.id, term = self.term, "won pre-vote");
                self.become_candidate();
                self.request_votes(false, false);
            } else {
                self.become_leader();
            }
        } else if rejected_count >= quorum {
            info!(id = self.config.id, term = self.term, "lost the election");
            self.become_follower(self.term, None);
        }
    }
}
