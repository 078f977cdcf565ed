//! Log replication (paper §5.3): proposals, the leader's pipelined appends with
//! flow control, the commit rule of §5.4.2, and the follower's side of AppendEntries.

use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::error::{MalformedMessage, ProposalError};
use crate::message::{AppendRequest, AppendResponse, Heartbeat, HeartbeatResponse, MessageBody};
use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::types::{EntryPayload, Index, NodeId, Term};

/// Where a proposal landed. It is committed once an entry with this index *and term*
/// is applied; an entry of another term at that index means it was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    pub index: Index,
    pub term: Term,
}

impl Raft {
    /// Appends application data to the leader's log. Many proposals between two
    /// `ready` calls travel in one append per follower and one fsync.
    pub fn propose(&mut self, data: impl Into<Arc<[u8]>>) -> Result<Proposal, ProposalError> {
        self.append_as_leader(EntryPayload::Normal(data.into()))
    }

    pub(crate) fn ensure_leader(&self) -> Result<(), ProposalError> {
        let Some(leader) = self.leader_state() else {
            return Err(ProposalError::NotLeader { leader: self.leader });
        };
        if leader.transfer.is_some() {
            // Thesis §3.10: the old leader stops accepting requests during a transfer.
            return Err(ProposalError::TransferInProgress);
        }
        Ok(())
    }

    pub(crate) fn append_as_leader(&mut self, payload: EntryPayload) -> Result<Proposal, ProposalError> {
        assert!(
            self.ready_in_flight.is_none(),
            "propose between ready() and advance()"
        );
        self.ensure_leader()?;
        let term = self.term;
        let max_uncommitted_bytes = self.config.max_uncommitted_bytes;
        let size_bytes = crate::types::Entry {
            term,
            index: 0,
            payload: payload.clone(),
        }
        .size_bytes();
        let leader = self.leader_state_mut();
        // Always admit one entry, however large, so progress is possible.
        if leader.uncommitted_bytes > 0 && leader.uncommitted_bytes + size_bytes > max_uncommitted_bytes {
            return Err(ProposalError::UncommittedBytesExceeded);
        }
        leader.uncommitted_bytes += size_bytes;
        leader.broadcast_pending = true;
        let index = self.log.append(term, payload);
        Ok(Proposal { index, term })
    }

    /// Sends every follower what it is missing, as far as flow control allows; with
    /// `commit_changed`, followers with nothing new still hear the commit index.
    pub(crate) fn broadcast_append(&mut self) {
        let followers: Vec<NodeId> = self.leader_state_mut().progress.keys().copied().collect();
        for id in followers {
            self.send_appends(id, true);
        }
        self.leader_state_mut().broadcast_pending = false;
    }

    /// Sends appends to `to` until its window is full or it has everything. With
    /// `send_if_empty`, sends one empty append when there is nothing new (to carry the
    /// commit index or to probe).
    pub(crate) fn send_appends(&mut self, to: NodeId, send_if_empty: bool) {
        let mut sent_any = false;
        while self.send_one_append(to, send_if_empty && !sent_any) {
            sent_any = true;
        }
    }

    /// Sends one append to `to`, or starts a snapshot if it needs purged entries.
    /// Returns whether an append with entries went out and more may follow.
    fn send_one_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let committed = self.log.committed();
        let last_index = self.log.last_index();
        let max_bytes = self.config.max_append_bytes_per_message;
        let Some(progress) = self.leader_state_mut().progress.get(&to) else {
            return false;
        };
        if progress.is_paused() {
            return false;
        }
        let next_index = progress.next_index;
        let prev_log_index = next_index - 1;
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            // The follower needs entries this leader has purged (thesis §5.3).
            self.start_snapshot_send(to);
            return false;
        };
        let entries = if next_index <= last_index {
            self.log.entries(next_index, last_index, max_bytes)
        } else {
            Vec::new()
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let entry_count = entries.len();
        let last_sent = prev_log_index + entry_count as u64;
        let progress = self
            .leader_state_mut()
            .progress
            .get_mut(&to)
            .expect("checked above");
        progress.sent_append(last_sent, entry_count);
        let leader_commit = committed;
        self.send(
            to,
            MessageBody::Append(AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            }),
        );
        entry_count > 0
    }

    pub(crate) fn handle_append_response(&mut self, from: NodeId, response: AppendResponse) {
        match response {
            AppendResponse::Accepted { match_index } => self.handle_append_accepted(from, match_index),
            AppendResponse::Rejected {
                rejected_prev_index,
                hint_index,
                hint_term,
            } => {
                // Fast back-off: skip every entry of the follower's conflicting term.
                let hint_index = hint_index.min(self.log.last_index());
                let hint_next = if hint_term > 0 {
                    self.log.find_conflict_by_term(hint_index, hint_term).0 + 1
                } else {
                    hint_index + 1
                };
                let progress = self.leader_state_mut().progress.get_mut(&from).expect("member");
                if !progress.maybe_decrease_to(rejected_prev_index, hint_next) {
                    debug!(from, rejected_prev_index, "ignored stale rejection");
                    return;
                }
                if progress.state == ProgressState::Replicate {
                    progress.become_probe();
                }
                debug!(from, next_index = progress.next_index, "append rejected; probing");
                self.send_appends(from, true);
            }
        }
    }

    fn handle_append_accepted(&mut self, from: NodeId, match_index: Index) {
        if match_index > self.log.last_index() {
            warn!(from, match_index, "ignored acknowledgement beyond our log");
            return;
        }
        let progress = self.leader_state_mut().progress.get_mut(&from).expect("member");
        if !progress.maybe_update(match_index) {
            return;
        }
        match progress.state {
            ProgressState::Probe => progress.become_replicate(),
            ProgressState::Snapshot { index, .. } if match_index >= index => {
                progress.become_probe();
                progress.become_replicate();
            }
            ProgressState::Snapshot { .. } => {}
            ProgressState::Replicate => progress.inflights.free_to(match_index),
        }
        self.maybe_commit();
        if !self.is_leader() {
            return;
        }
        self.maybe_send_timeout_now(from);
        self.send_appends(from, false);
    }

    /// The commit rule (paper §5.4.2): the highest index stored on a majority of voters
    /// commits if its entry is of the current term; earlier entries commit with it.
    /// Counting replicas of an older-term entry is unsafe (paper Figure 8).
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let own_id = self.config.id;
        let persisted = self.log.persisted();
        let quorum = self.conf.quorum_size();
        let Some(leader) = self.leader_state() else {
            return false;
        };
        let mut match_indexes: Vec<Index> = self
            .conf
            .voters
            .iter()
            .map(|id| {
                if *id == own_id {
                    persisted
                } else {
                    leader.progress.get(id).map_or(0, |p| p.match_index)
                }
            })
            .collect();
        if match_indexes.len() < quorum || quorum == 0 {
            return false;
        }
        match_indexes.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = match_indexes[quorum - 1];
        let old_commit = self.log.committed();
        #[cfg(feature = "canaries")]
        let counts_old_terms = self.config.canary == Some(crate::canary::Canary::CommitOldTermByCounting);
        #[cfg(not(feature = "canaries"))]
        let counts_old_terms = false;
        if candidate <= old_commit || (self.log.term(candidate) != Some(self.term) && !counts_old_terms) {
            return false;
        }
        self.log.commit_to(candidate);
        self.on_leader_commit(old_commit);
        true
    }

    fn on_leader_commit(&mut self, old_commit: Index) {
        let committed = self.log.committed();
        let committed_bytes: usize = (old_commit + 1..=committed)
            .filter_map(|index| self.log.entry(index))
            .filter(|entry| entry.term == self.term)
            .map(|entry| entry.size_bytes())
            .sum();
        let leader = self.leader_state_mut();
        // Followers learn the new commit index with the next Ready's appends.
        leader.broadcast_pending = true;
        leader.uncommitted_bytes = leader.uncommitted_bytes.saturating_sub(committed_bytes);
        // Thesis §6.4 step 1: reads wait for the first commit of this leader's term.
        leader.reads.stamp_deferred(committed);
        if !self.conf.is_voter(self.config.id) && self.conf_index <= committed {
            // Thesis §4.2.2: a leader removed from the configuration manages the cluster
            // until the change commits, then steps down. Tell followers the commit first.
            info!(
                id = self.config.id,
                term = self.term,
                "stepping down: removed from the configuration"
            );
            self.broadcast_append();
            self.become_follower(self.term, None);
        }
    }

    pub(crate) fn handle_heartbeat_response(&mut self, from: NodeId, response: HeartbeatResponse) {
        let last_index = self.log.last_index();
        let leader = self.leader_state_mut();
        let sent_round = leader.reads.sent_round();
        let progress = leader.progress.get_mut(&from).expect("member");
        match progress.state {
            ProgressState::Probe => progress.probe_sent = false,
            // The appends in a full window may all be lost: without a free slot nothing
            // would ever be sent again (etcd raft frees one on each heartbeat response).
            ProgressState::Replicate if progress.inflights.is_full() => progress.inflights.free_first_one(),
            _ => {}
        }
        if response.read_round <= sent_round {
            progress.read_round_acked = progress.read_round_acked.max(response.read_round);
        } else {
            warn!(
                from,
                read_round = response.read_round,
                "ignored acknowledgement of an unsent read round"
            );
        }
        let behind = progress.match_index < last_index;
        self.confirm_reads();
        if behind {
            // Appends (or their acknowledgements) may have been lost with nothing new to
            // send: an empty append at `next_index` gets either an acknowledgement or a
            // rejection that backs `next_index` off (paper §5.3, "retry indefinitely").
            self.send_appends(from, true);
        }
    }

    /// The follower's side of AppendEntries (paper §5.3 receiver rules).
    pub(crate) fn handle_append(
        &mut self,
        from: NodeId,
        request: AppendRequest,
    ) -> Result<(), MalformedMessage> {
        let committed = self.log.committed();
        // Every leader holds our committed entries (paper §5.4.1, leader completeness): an
        // append contradicting one, at its previous entry or in its entries, comes from a
        // broken peer. Refuse it rather than acknowledge a match that does not exist.
        let contradicts = |index: Index, term: Term| {
            index <= committed && self.log.term(index).is_some_and(|ours| ours != term)
        };
        let conflict = std::iter::once((request.prev_log_index, request.prev_log_term))
            .chain(request.entries.iter().map(|entry| (entry.index, entry.term)))
            .find(|&(index, term)| contradicts(index, term));
        if let Some((index, _)) = conflict {
            return Err(MalformedMessage {
                from,
                reason: format!("append conflicts with committed entry {index}"),
            });
        }
        if request.prev_log_index < committed {
            // Everything through our commit index matches any leader's log: a stale or
            // duplicated append. Tell the leader where we are.
            self.send(
                from,
                MessageBody::AppendResponse(AppendResponse::Accepted {
                    match_index: committed,
                }),
            );
            return Ok(());
        }
        if !self.log.match_term(request.prev_log_index, request.prev_log_term) {
            let hint_index = request.prev_log_index.min(self.log.last_index());
            let (hint_index, hint_term) = self.log.find_conflict_by_term(hint_index, request.prev_log_term);
            debug!(
                id = self.config.id,
                from,
                prev_log_index = request.prev_log_index,
                hint_index,
                hint_term,
                "rejected append: log does not match"
            );
            let response = AppendResponse::Rejected {
                rejected_prev_index: request.prev_log_index,
                hint_index,
                hint_term,
            };
            self.send(from, MessageBody::AppendResponse(response));
            return Ok(());
        }
        let carries_config = request
            .entries
            .iter()
            .any(|entry| matches!(entry.payload, EntryPayload::Config(_)));
        let outcome = self
            .log
            .append_after(request.prev_log_index, &request.entries)
            .map_err(|conflict| MalformedMessage {
                from,
                reason: format!("append conflicts with committed entry {}", conflict.index),
            })?;
        let last_new = outcome.last_new;
        // A configuration takes effect when appended and is undone when truncated
        // (thesis §4.1).
        if carries_config || outcome.truncated_from.is_some_and(|from| from <= self.conf_index) {
            self.refresh_conf();
        }
        // Paper §5.3 rule 5: commit = min(leaderCommit, index of last new entry).
        let new_commit = request.leader_commit.min(last_new);
        if new_commit > self.log.committed() {
            self.log.commit_to(new_commit);
        }
        self.send(
            from,
            MessageBody::AppendResponse(AppendResponse::Accepted {
                match_index: last_new,
            }),
        );
        Ok(())
    }

    pub(crate) fn handle_heartbeat(&mut self, from: NodeId, heartbeat: Heartbeat) {
        // The leader caps the commit at our match index, so our log holds it; the extra
        // cap guards against an impossible value.
        let new_commit = heartbeat.leader_commit.min(self.log.last_index());
        if new_commit > self.log.committed() {
            self.log.commit_to(new_commit);
        }
        let response = HeartbeatResponse {
            read_round: heartbeat.read_round,
            last_log_index: self.log.last_index(),
        };
        self.send(from, MessageBody::HeartbeatResponse(response));
    }
}
