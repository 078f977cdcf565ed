//! Membership inside the driver: listing the members, proposing one change at a time
//! (thesis §4.1) with the member's record (`crate::membership`), answering once the
//! change is applied, and keeping the transport's peer set equal to the configuration.
//!
//! Every change is idempotent (see `wire::MemberChange`): a retry after an
//! unknown outcome, or a joining node that asks again after a restart, finds the change
//! already made and is answered with the members as they are.

use std::sync::atomic::Ordering;

use raft::{ConfChange, NodeId, ProposalError, Role};
use tracing::{info, warn};
use wire::{MemberChange, MemberInfo, MemberList, MemberRole, Response};

use super::reply::Reply;
use super::requests::invalid;
use super::{now_millis, Driver, PeerNetwork, PendingWrite};
use crate::membership::{load_records, record_command, MemberRecord};
use crate::storage::{Storage, StorageError};

/// A refused change: the answer to send (boxed: a `Response` is large).
type Refused = Box<Response>;

/// Longest address accepted in a member record: a DNS name (253 bytes) and `:65535`.
const MEMBER_ADDRESS_BYTES_MAX: usize = 253 + 6;

impl<S: Storage, N: PeerNetwork> Driver<S, N> {
    /// `Request::Members`: the leader's view, so the list includes every change it made.
    pub(super) fn list_members(&mut self, reply: Reply) {
        let response = match self.raft.role() {
            Role::Leader => Response::Members(self.member_list()),
            _ => self.refusal(ProposalError::NotLeader {
                leader: self.raft.leader(),
            }),
        };
        let _ = reply.send(response);
    }

    /// `Request::ChangeMembers`: proposes the change (and the member's record) and answers
    /// once applied, or at once when there is nothing to change.
    pub(super) fn change_members(&mut self, change: MemberChange, reply: Reply) {
        if let Err(why) = validate_change(&change) {
            let _ = reply.send(invalid(why));
            return;
        }
        let proposed = match change {
            MemberChange::AddLearner {
                id,
                peer_address,
                client_address,
                incarnation,
            } => {
                let record = MemberRecord {
                    peer_address,
                    client_address,
                    incarnation,
                };
                self.add_learner(id, record)
            }
            MemberChange::Promote { id } => self.promote(id),
            MemberChange::Remove { id, incarnation } => self.remove(id, incarnation),
        };
        match proposed {
            Ok(Some(index)) => {
                let pending = PendingWrite {
                    term: self.raft.term(),
                    reply,
                };
                if let Some(replaced) = self.pending_member_changes.insert(index, pending) {
                    let _ = replaced.reply.send(super::lost_write());
                }
            }
            Ok(None) => {
                let _ = reply.send(Response::Members(self.member_list()));
            }
            Err(response) => {
                let _ = reply.send(*response);
            }
        }
    }

    /// `Ok(Some(index))`: answer once `index` is applied; `Ok(None)`: nothing to change.
    fn add_learner(&mut self, id: NodeId, record: MemberRecord) -> Result<Option<u64>, Refused> {
        self.ensure_leader()?;
        let conf = self.raft.conf_state().clone();
        if conf.contains(id) {
            let current = self.directory.incarnation(id);
            if let (Some(current), Some(asked)) = (current, record.incarnation) {
                if current != asked {
                    return Err(Box::new(invalid(format!(
                        "member {id} is incarnation {current:016x}, not {asked:016x}: remove it first \
                         (raftkv member remove {id})"
                    ))));
                }
            }
            let bound = MemberRecord {
                incarnation: record.incarnation.or(current),
                ..record
            };
            if self.directory.records.get(&id) == Some(&bound) {
                return Ok(None);
            }
            // Already a member: only its record changes (an address, or the incarnation
            // of a member added without one).
            info!(id, ?bound, "recording a member's address and incarnation");
            return self.propose_record(id, bound).map(Some);
        }
        self.propose_conf_change(ConfChange::AddLearner(id))?;
        info!(id, ?record, "adding a learner");
        self.propose_record(id, record).map(Some)
    }

    fn promote(&mut self, id: NodeId) -> Result<Option<u64>, Refused> {
        self.ensure_leader()?;
        if self.raft.conf_state().is_voter(id) {
            return Ok(None);
        }
        let index = self.propose_conf_change(ConfChange::PromoteLearner(id))?;
        info!(id, index, "promoting a caught-up learner to voter");
        Ok(Some(index))
    }

    fn remove(&mut self, id: NodeId, incarnation: Option<u64>) -> Result<Option<u64>, Refused> {
        self.ensure_leader()?;
        if !self.raft.conf_state().contains(id) {
            return Ok(None);
        }
        if let (Some(current), Some(asked)) = (self.directory.incarnation(id), incarnation) {
            if current != asked {
                return Err(Box::new(invalid(format!(
                    "member {id} is now incarnation {current:016x}, not {asked:016x}: not removed"
                ))));
            }
        }
        let index = self.propose_conf_change(ConfChange::Remove(id))?;
        info!(id, index, "removing a member");
        Ok(Some(index))
    }

    fn ensure_leader(&self) -> Result<(), Refused> {
        if self.raft.role() == Role::Leader {
            Ok(())
        } else {
            Err(Box::new(self.refusal(ProposalError::NotLeader {
                leader: self.raft.leader(),
            })))
        }
    }

    fn propose_conf_change(&mut self, change: ConfChange) -> Result<u64, Refused> {
        match self.raft.propose_conf_change(change) {
            Ok(proposal) => {
                self.metrics.proposals_total.fetch_add(1, Ordering::Relaxed);
                self.refresh_peers();
                Ok(proposal.index)
            }
            Err(error) => Err(Box::new(self.member_refusal(error))),
        }
    }

    /// Proposes member `id`'s record. The leader uses it at once (its own transport
    /// must reach a new learner); followers when they apply it.
    fn propose_record(&mut self, id: NodeId, record: MemberRecord) -> Result<u64, Refused> {
        let data = record_command(id, &record, now_millis()).encode();
        match self.raft.propose(data) {
            Ok(proposal) => {
                self.metrics.proposals_total.fetch_add(1, Ordering::Relaxed);
                self.directory.records.insert(id, record);
                self.refresh_peers();
                Ok(proposal.index)
            }
            Err(error) => Err(Box::new(self.member_refusal(error))),
        }
    }

    fn member_refusal(&self, error: ProposalError) -> Response {
        match error {
            ProposalError::ConfChangeInProgress => {
                super::not_now("another membership change is in progress (or the leader is new); retry")
            }
            ProposalError::LearnerNotCaughtUp {
                learner,
                match_index,
                commit,
            } => super::not_now(&format!(
                "learner {learner} has not caught up yet (it holds the log through {match_index}, \
                 the commit index is {commit}); retry"
            )),
            ProposalError::InvalidConfChange(why) => invalid(why),
            other => self.refusal(other),
        }
    }

    /// The members of the leader's configuration (the latest in its log, committed or
    /// not), with what it knows of each.
    pub(super) fn member_list(&self) -> MemberList {
        let status = self.raft.status();
        let own_id = self.raft.id();
        let members = status
            .conf_state
            .members()
            .map(|id| {
                let record = self.directory.records.get(&id);
                let client_address = record.map(|record| record.client_address.clone()).or_else(|| {
                    if id == own_id {
                        Some(self.config.own_client_address.clone())
                    } else {
                        self.network.peer_client_address(id)
                    }
                });
                let match_index = if id == own_id {
                    status.last_index
                } else {
                    status
                        .progress
                        .iter()
                        .find(|peer| peer.id == id)
                        .map_or(0, |peer| peer.match_index)
                };
                MemberInfo {
                    id,
                    role: if status.conf_state.is_voter(id) {
                        MemberRole::Voter
                    } else {
                        MemberRole::Learner
                    },
                    peer_address: if id == own_id {
                        Some(self.config.own_peer_address.clone())
                    } else {
                        self.directory.address(id)
                    },
                    client_address,
                    incarnation: self.directory.incarnation(id),
                    match_index,
                }
            })
            .collect();
        MemberList {
            cluster_id: self.config.cluster_id,
            leader: own_id,
            term: status.term,
            commit: status.commit,
            members,
        }
    }

    /// Gives the transport the configuration's members, if they changed.
    pub(super) fn refresh_peers(&mut self) {
        let conf = self.raft.conf_state();
        if conf.voters.is_empty() && conf.learners.is_empty() {
            // A joining node before its first snapshot: keep the peers it was seeded with.
            return;
        }
        self.network.set_peers(self.directory.peers(conf, self.raft.id()));
    }

    /// Re-reads the applied member records (after an apply that wrote one, a snapshot, or
    /// a lost leadership whose optimistic records may never commit).
    pub(super) fn reload_records(&mut self) -> Result<(), StorageError> {
        self.directory.records = load_records(&self.storage)?;
        self.refresh_peers();
        Ok(())
    }

    /// Says at start where `--peers` disagrees with the configuration in the log (which
    /// wins): another address for a member, or a node that is not a member at all.
    pub(super) fn warn_about_seeds(&self) {
        for (id, flag, log) in self.directory.seed_disagreements() {
            warn!(
                id,
                flag = %flag,
                log = %log,
                "--peers disagrees with the configuration in the log about node {id}'s address; using the log's"
            );
        }
        let conf = self.raft.conf_state();
        if conf.voters.is_empty() {
            return; // joining: no configuration yet
        }
        let own_id = self.raft.id();
        let strangers: Vec<NodeId> = self
            .directory
            .seeds
            .keys()
            .copied()
            .filter(|&id| id != own_id && !conf.contains(id))
            .collect();
        if !strangers.is_empty() {
            warn!(
                ?strangers,
                voters = ?conf.voters,
                learners = ?conf.learners,
                "--peers lists nodes that are not members of the configuration in the log; they are \
                 not contacted (a node joins by starting it, or with raftkv member add)"
            );
        }
    }

    /// A new leader records the members that have no record yet (the founders, whose
    /// addresses come from `--peers`), so that the configuration in the log carries every
    /// member's address and incarnation. Once per term, after its first commit.
    pub(super) fn record_unrecorded_members(&mut self) {
        let term = self.raft.term();
        if self.raft.role() != Role::Leader
            || self.members_recorded_term == term
            || self.raft.log().term(self.raft.committed()) != Some(term)
        {
            return;
        }
        let own_id = self.raft.id();
        let members: Vec<NodeId> = self.raft.conf_state().members().collect();
        let mut complete = true;
        for id in members {
            if self.directory.records.contains_key(&id) {
                continue;
            }
            let (peer_address, client_address) = if id == own_id {
                (
                    Some(self.config.own_peer_address.clone()),
                    Some(self.config.own_client_address.clone()),
                )
            } else {
                (self.directory.address(id), self.network.peer_client_address(id))
            };
            let (Some(peer_address), Some(client_address)) = (peer_address, client_address) else {
                complete = false; // its client address comes with its first handshake
                continue;
            };
            let record = MemberRecord {
                peer_address,
                client_address,
                incarnation: self.directory.incarnation(id),
            };
            if let Err(response) = self.propose_record(id, record) {
                warn!(id, ?response, "could not record a member; will retry");
                complete = false;
            }
        }
        if complete {
            self.members_recorded_term = term;
        }
    }
}

/// Bounds on what a client may put in a member record.
fn validate_change(change: &MemberChange) -> Result<(), String> {
    if change.id() == 0 {
        return Err("member ids start at 1".to_string());
    }
    if let MemberChange::AddLearner {
        peer_address,
        client_address,
        ..
    } = change
    {
        for (what, address) in [("peer", peer_address), ("client", client_address)] {
            let valid = address.len() <= MEMBER_ADDRESS_BYTES_MAX
                && address
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(format!("the {what} address {address:?} is not host:port"));
            }
        }
    }
    Ok(())
}
