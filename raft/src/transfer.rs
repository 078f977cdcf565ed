//! Leadership transfer (thesis §3.10): the leader stops taking proposals, brings the
//! target's log up to date, then tells it to campaign at once with TimeoutNow. The
//! transfer is abandoned after an election timeout (see `tick_leader`).

use tracing::info;

use crate::error::ProposalError;
use crate::leader::Transfer;
use crate::message::MessageBody;
use crate::raft::Raft;
use crate::types::NodeId;

impl Raft {
    /// Hands leadership to `target`, a voter. Proposals are refused until the transfer
    /// completes or times out.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), ProposalError> {
        assert!(
            self.ready_in_flight.is_none(),
            "transfer between ready() and advance()"
        );
        if !self.is_leader() {
            return Err(ProposalError::NotLeader { leader: self.leader });
        }
        if target == self.config.id || !self.conf.is_voter(target) {
            return Err(ProposalError::InvalidTransferTarget(target));
        }
        let leader = self.leader_state_mut();
        if leader.transfer.is_some_and(|transfer| transfer.target == target) {
            return Ok(());
        }
        leader.transfer = Some(Transfer {
            target,
            elapsed_ticks: 0,
            timeout_now_sent: false,
        });
        info!(
            id = self.config.id,
            term = self.term,
            target_id = target,
            "transferring leadership"
        );
        self.maybe_send_timeout_now(target);
        self.send_appends(target, true);
        Ok(())
    }

    /// Sends TimeoutNow once the transfer target has every entry.
    pub(crate) fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        let last_index = self.log.last_index();
        let leader = self.leader_state_mut();
        let Some(transfer) = &mut leader.transfer else {
            return;
        };
        let caught_up = leader
            .progress
            .get(&peer)
            .is_some_and(|progress| progress.match_index == last_index);
        if transfer.target != peer || transfer.timeout_now_sent || !caught_up {
            return;
        }
        transfer.timeout_now_sent = true;
        // The target's campaign is granted by voters that still hear this leader
        // (`VoteRequest::leadership_transfer`): no lease read may follow.
        leader.lease.revoke();
        self.send(peer, MessageBody::TimeoutNow);
    }

    pub(crate) fn handle_timeout_now(&mut self, from: NodeId) {
        if !self.is_promotable() {
            info!(id = self.config.id, from, "ignored TimeoutNow: not a voter");
            return;
        }
        info!(
            id = self.config.id,
            term = self.term,
            from,
            "campaigning for leadership transfer"
        );
        self.campaign(true);
    }
}
