//! Linearizable reads without log writes (thesis §6.4): the leader records its commit
//! index, confirms it is still leader with a heartbeat round acknowledged by a
//! majority, and the read is served once the state machine applied that index.
//! Followers forward reads to the leader (thesis §6.4.1).

use tracing::debug;

use crate::error::ProposalError;
use crate::message::{MessageBody, ReadIndexRequest, ReadIndexResponse};
use crate::raft::Raft;
use crate::read_queue::{PendingRead, ReadOrigin};
use crate::types::{NodeId, ReadState};

impl Raft {
    /// Asks for a linearizable read identified by `context` (unique among this
    /// server's outstanding reads). It comes back in a `Ready`'s `read_states` once it
    /// may be served, or in `dropped_reads` if leadership changed first.
    pub fn read_index(&mut self, context: u64) -> Result<(), ProposalError> {
        assert!(
            self.ready_in_flight.is_none(),
            "read_index between ready() and advance()"
        );
        if self.is_leader() {
            if self.leader_state_mut().reads.is_full() {
                return Err(ProposalError::TooManyPendingReads);
            }
            self.enqueue_read(context, ReadOrigin::Local);
            return Ok(());
        }
        if self.leader.is_none() {
            return Err(ProposalError::NotLeader { leader: None });
        }
        if self.forwarded_reads.len() >= self.config.max_pending_reads {
            return Err(ProposalError::TooManyPendingReads);
        }
        // Sent with the next `Ready`, in one request with every read asked before it
        // (`send_forwarded_reads`).
        self.forwarded_reads.push(context);
        Ok(())
    }

    /// Sends the reads asked since the last `Ready` to the leader as one batch. A leader
    /// change since they were asked dropped them (`set_leader`).
    pub(crate) fn send_forwarded_reads(&mut self) {
        let Some(leader) = self.leader else {
            debug_assert!(
                !self.forwarded_reads.has_unsent(),
                "unsent reads outlived their leader"
            );
            return;
        };
        debug_assert_ne!(leader, self.config.id, "only a leader calls itself leader");
        if let Some(batch) = self.forwarded_reads.take_unsent() {
            self.send(
                leader,
                MessageBody::ReadIndex(ReadIndexRequest { context: batch }),
            );
        }
    }

    fn enqueue_read(&mut self, context: u64, origin: ReadOrigin) {
        let committed = self.log.committed();
        let committed_in_term = self.log.term(committed) == Some(self.term);
        if committed_in_term && self.holds_read_lease() {
            // Thesis §6.4.1: no other leader can exist yet, so the commit index is
            // current without a round of its own.
            let read = PendingRead {
                context,
                origin,
                index: committed,
                round: 0,
            };
            self.release_read(read);
            return;
        }
        let reads = &mut self.leader_state_mut().reads;
        if committed_in_term {
            reads.stamp(context, origin, committed);
        } else {
            // A new leader's commit index may be behind the cluster's (thesis §6.4 step 1).
            reads.defer_until_term_commit(context, origin);
        }
    }

    /// Whether this server leads and its read lease holds now (`Config::lease_reads`):
    /// a read would be served at once. Not while a transfer is under way: its target may
    /// be told to campaign at any moment.
    pub fn holds_read_lease(&self) -> bool {
        if !self.config.lease_reads {
            return false;
        }
        self.leader_state()
            .is_some_and(|leader| leader.transfer.is_none() && leader.lease.holds(leader.ticks))
    }

    pub(crate) fn handle_forwarded_read(&mut self, from: NodeId, context: u64) {
        if !self.conf.contains(from) || self.leader_state_mut().reads.is_full() {
            self.refuse_forwarded_read(from, context);
            return;
        }
        self.enqueue_read(context, ReadOrigin::Forwarded(from));
    }

    pub(crate) fn refuse_forwarded_read(&mut self, from: NodeId, context: u64) {
        debug!(id = self.config.id, from, context, "refused forwarded read");
        self.send(
            from,
            MessageBody::ReadIndexResponse(ReadIndexResponse { context, index: None }),
        );
    }

    /// Releases the reads whose heartbeat round a majority acknowledged.
    pub(crate) fn confirm_reads(&mut self) {
        let own_id = self.config.id;
        let quorum = self.conf.quorum_size();
        let Some(leader) = self.leader_state() else { return };
        let sent_round = leader.reads.sent_round();
        let mut rounds: Vec<u64> = self
            .conf
            .voters
            .iter()
            .map(|id| {
                if *id == own_id {
                    sent_round
                } else {
                    leader.progress.get(id).map_or(0, |p| p.read_round_acked)
                }
            })
            .collect();
        if rounds.len() < quorum || quorum == 0 {
            return;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_round = rounds[quorum - 1];
        let leader = self.leader_state_mut();
        leader.lease.quorum_acknowledged(quorum_round);
        let confirmed = leader.reads.confirm_through(quorum_round);
        for read in confirmed {
            self.release_read(read);
        }
    }

    fn release_read(&mut self, read: PendingRead) {
        match read.origin {
            ReadOrigin::Local => self.reads_awaiting_apply.push(ReadState {
                context: read.context,
                index: read.index,
            }),
            ReadOrigin::Forwarded(to) => {
                let response = ReadIndexResponse {
                    context: read.context,
                    index: Some(read.index),
                };
                self.send(to, MessageBody::ReadIndexResponse(response));
            }
        }
    }

    pub(crate) fn fail_read(&mut self, context: u64, origin: ReadOrigin) {
        match origin {
            ReadOrigin::Local => self.dropped_reads.push(context),
            ReadOrigin::Forwarded(to) => self.refuse_forwarded_read(to, context),
        }
    }

    /// A forwarded read or its answer may be lost on the wire, and nothing resends it:
    /// after an election timeout it is reported dropped so the client retries.
    pub(crate) fn expire_forwarded_reads(&mut self) {
        let timeout_ticks = self.config.election_timeout_ticks_max;
        let expired = self.forwarded_reads.tick(timeout_ticks);
        self.dropped_reads.extend(expired);
    }

    pub(crate) fn handle_read_index_response(&mut self, response: ReadIndexResponse) {
        let Some(contexts) = self.forwarded_reads.answer(response.context) else {
            debug!(
                context = response.context,
                "ignored answer to a read not outstanding"
            );
            return;
        };
        match response.index {
            Some(index) => self
                .reads_awaiting_apply
                .extend(contexts.into_iter().map(|context| ReadState { context, index })),
            None => self.dropped_reads.extend(contexts),
        }
    }
}
