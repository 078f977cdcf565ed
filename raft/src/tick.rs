//! What the passing of time does: followers and candidates time out into elections;
//! a leader heartbeats, checks its quorum and gives up stalled transfers.

use tracing::{debug, info, warn};

use crate::message::{Heartbeat, MessageBody};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::types::NodeId;

impl Raft {
    pub(crate) fn tick_election(&mut self) {
        self.expire_forwarded_reads();
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks < self.randomized_election_timeout_ticks {
            return;
        }
        if self.is_promotable() {
            debug!(id = self.config.id, term = self.term, "election timeout");
            self.campaign(false);
        } else {
            self.reset_election_timer();
        }
    }

    pub(crate) fn tick_leader(&mut self) {
        let election_timeout_ticks = self.config.election_timeout_ticks_min;
        let heartbeat_interval_ticks = self.config.heartbeat_interval_ticks;
        self.election_elapsed_ticks += 1;
        self.leader_state_mut().ticks += 1;
        if self.election_elapsed_ticks >= election_timeout_ticks {
            self.election_elapsed_ticks = 0;
            if self.config.check_quorum && !self.check_quorum_active() {
                warn!(
                    id = self.config.id,
                    term = self.term,
                    "stepped down: no quorum heard from"
                );
                self.become_follower(self.term, None);
                return;
            }
        }
        let leader = self.leader_state_mut();
        if let Some(transfer) = &mut leader.transfer {
            transfer.elapsed_ticks += 1;
            if transfer.elapsed_ticks >= election_timeout_ticks {
                info!(
                    target_id = transfer.target,
                    "leadership transfer gave up after an election timeout"
                );
                leader.transfer = None;
            }
        }
        leader.heartbeat_elapsed_ticks += 1;
        if leader.heartbeat_elapsed_ticks >= heartbeat_interval_ticks {
            leader.heartbeat_elapsed_ticks = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Check-quorum (thesis §6.2): true if a majority of voters, this leader included,
    /// was heard from since the last check. Resets the marks for the next round.
    fn check_quorum_active(&mut self) -> bool {
        let own_id = self.config.id;
        let voters = self.conf.voters.clone();
        let quorum = self.conf.quorum_size();
        let leader = self.leader_state_mut();
        let active = voters
            .iter()
            .filter(|&&voter| {
                voter == own_id
                    || leader
                        .progress
                        .get(&voter)
                        .is_some_and(|progress| progress.recent_active)
            })
            .count();
        for progress in leader.progress.values_mut() {
            progress.recent_active = false;
        }
        active >= quorum
    }

    /// Heartbeats carry the commit index (capped at what each follower is known to hold)
    /// and the current ReadIndex round; a snapshot transfer resends its pending chunk
    /// if the follower was silent for a whole interval.
    pub(crate) fn broadcast_heartbeat(&mut self) {
        let committed = self.log.committed();
        let lease_reads = self.config.lease_reads;
        let leader = self.leader_state_mut();
        if lease_reads {
            leader.reads.request_round();
        }
        let read_round = leader.reads.start_round();
        if lease_reads {
            leader.lease.round_sent(read_round, leader.ticks);
        }
        let mut heartbeats = Vec::new();
        let mut snapshot_retries: Vec<NodeId> = Vec::new();
        for (&id, progress) in &mut leader.progress {
            match &mut progress.state {
                ProgressState::Snapshot { answered, .. } => {
                    // No answer for a whole heartbeat interval: the chunk was lost.
                    if !*answered {
                        snapshot_retries.push(id);
                    }
                    *answered = false;
                }
                // A lost probe must not stall the follower forever.
                ProgressState::Probe => progress.probe_sent = false,
                ProgressState::Replicate => {}
            }
            let leader_commit = committed.min(progress.match_index);
            heartbeats.push((
                id,
                Heartbeat {
                    leader_commit,
                    read_round,
                },
            ));
        }
        for (id, heartbeat) in heartbeats {
            self.send(id, MessageBody::Heartbeat(heartbeat));
        }
        for id in snapshot_retries {
            self.send_snapshot_chunk(id);
        }
        // A cluster of one confirms its reads by itself.
        self.confirm_reads();
    }
}
