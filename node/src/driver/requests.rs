//! Client requests inside the driver: writes are proposed and answered once applied;
//! linearizable reads go through ReadIndex; stale reads, status and dumps are answered
//! at once from local state.

use std::sync::atomic::Ordering;

use raft::ProposalError;
use wire::{
    Command, ErrorKind, ErrorReply, LeaderHint, ReadConsistency, Request, Response, KEY_BYTES_MAX,
    LIST_LIMIT_MAX,
};

use super::reply::Reply;
use super::{
    describe, lost_write, not_now, now_millis, ClientCall, Driver, PeerNetwork, PendingRead, PendingWrite,
};
use crate::kv::command::{validate_command, KvBody, KvCommand};
use crate::membership::{is_system_key, SYSTEM_SESSION};
use crate::storage::Storage;

impl<S: Storage, N: PeerNetwork> Driver<S, N> {
    pub(super) fn handle_call(&mut self, call: ClientCall) {
        let ClientCall { request, reply } = call;
        let response = match request {
            Request::Members => {
                self.list_members(reply);
                return;
            }
            Request::ChangeMembers(change) => {
                self.change_members(change, reply);
                return;
            }
            Request::OpenSession { client_id } => {
                if client_id == SYSTEM_SESSION.client_id {
                    Some(invalid("client id 0 is reserved".to_string()))
                } else {
                    let body = KvBody::OpenSession {
                        client_id,
                        limits: self.config.session_limits,
                    };
                    self.propose_command(
                        KvCommand {
                            at_millis: now_millis(),
                            body,
                        },
                        reply,
                    );
                    return;
                }
            }
            Request::Write {
                session,
                command,
                return_prior,
            } => {
                if let Err(why) = validate_command(&command) {
                    Some(invalid(why))
                } else if session.client_id == SYSTEM_SESSION.client_id {
                    Some(invalid("client id 0 is reserved".to_string()))
                } else if is_system_key(command.key()) {
                    Some(invalid(reserved_key_message()))
                } else if let Some(result) = self.machine.cached_result(session) {
                    // Already applied (Raft thesis §6.3): answer without a new entry.
                    Some(Response::Written(result.clone()))
                } else if let Some(why) = self.over_quota(&command) {
                    Some(Response::Error(ErrorReply {
                        kind: ErrorKind::NoSpace,
                        message: why,
                    }))
                } else {
                    self.propose_command(
                        KvCommand::write(now_millis(), session, command, return_prior),
                        reply,
                    );
                    return;
                }
            }
            Request::Get { consistency, .. } | Request::List { consistency, .. } => {
                if let Err(why) = validate_read(&request) {
                    let _ = reply.send(invalid(why));
                    return;
                }
                match consistency {
                    ReadConsistency::Stale => Some(self.serve_read(&request)),
                    ReadConsistency::Linearizable if self.stale_leader_reads_canary() => {
                        Some(self.serve_read(&request))
                    }
                    ReadConsistency::Linearizable => {
                        let context = self.next_read_context;
                        self.next_read_context += 1;
                        match self.raft.read_index(context) {
                            Ok(()) => {
                                self.pending_reads.insert(context, PendingRead { request, reply });
                                return;
                            }
                            Err(error) => Some(self.refusal(error)),
                        }
                    }
                }
            }
            Request::Watch {
                prefix,
                from_revision,
                wait_millis,
                require_leader,
            } => {
                if require_leader && self.raft.role() != raft::Role::Leader {
                    Some(self.not_leader())
                } else {
                    self.handle_watch(prefix, (from_revision, wait_millis, require_leader), reply);
                    return;
                }
            }
            Request::Status => {
                let space = self.space();
                Some(Response::Status(describe::node_status(&self.raft, space)))
            }
            Request::Dump => Some(self.dump()),
            Request::SnapshotBegin => {
                self.handle_backup_begin(reply);
                return;
            }
            // The client port serves these from the image file, off the driver loop.
            Request::SnapshotChunk { .. } | Request::SnapshotRelease { .. } => {
                Some(invalid("backup chunks are served by the client port".to_string()))
            }
        };
        if let Some(response) = response {
            let _ = reply.send(response);
        }
    }

    /// Why `command` may not be proposed under the space quota, if it may not: the
    /// leader's disk is under `--disk-free-min-bytes` (`disk_guard.rs`), or it would take
    /// the clients' data past `--quota-bytes`. Deletes, and swaps that delete, always
    /// may (they are how room is made); the check is against the applied data, so writes
    /// proposed and not yet applied can overshoot it by at most the Raft's uncommitted
    /// bytes bound. Only the leader refuses (a follower redirects the write to it).
    fn over_quota(&mut self, command: &Command) -> Option<String> {
        if self.raft.role() != raft::Role::Leader {
            return None;
        }
        let added = match command {
            Command::Put { key, value } => key.len() + value.len(),
            Command::CompareAndSwap {
                key,
                new_value: Some(value),
                ..
            } => key.len() + value.len(),
            Command::Delete { .. } | Command::CompareAndSwap { new_value: None, .. } => return None,
        } as u64;
        if let Some(why) = self.disk_guard.refusal(self.config.disk_free_min_bytes) {
            return Some(why);
        }
        let quota = self.config.quota_bytes?;
        let data = self.space().data_bytes;
        (data.saturating_add(added) > quota).then(|| {
            format!(
                "the cluster's data is at its space quota ({data} of {quota} bytes; this write adds up to {added}); \
                 reads and deletes still work: delete keys to make room"
            )
        })
    }

    /// Proposes a client's command; `reply` is answered once it is applied (or lost).
    fn propose_command(&mut self, command: KvCommand, reply: Reply) {
        match self.raft.propose(command.encode()) {
            Ok(proposal) => {
                self.metrics.proposals_total.fetch_add(1, Ordering::Relaxed);
                let pending = PendingWrite {
                    term: proposal.term,
                    reply,
                };
                if let Some(replaced) = self.pending_writes.insert(proposal.index, pending) {
                    // The index was reused after a leadership change.
                    let _ = replaced.reply.send(lost_write());
                }
            }
            Err(error) => {
                self.metrics
                    .proposals_refused_total
                    .fetch_add(1, Ordering::Relaxed);
                let _ = reply.send(self.refusal(error));
            }
        }
    }

    /// The `StaleLeaderReads` canary: a node that believes it leads skips ReadIndex.
    fn stale_leader_reads_canary(&self) -> bool {
        #[cfg(feature = "canaries")]
        if self.config.canary == Some(raft::canary::Canary::StaleLeaderReads) {
            return self.raft.role() == raft::Role::Leader;
        }
        false
    }

    pub(super) fn refusal(&self, error: ProposalError) -> Response {
        match error {
            ProposalError::NotLeader { leader } => Response::NotLeader {
                leader: leader.map(|id| self.leader_hint(id)),
            },
            ProposalError::TransferInProgress => not_now("leadership is being transferred; retry"),
            ProposalError::UncommittedBytesExceeded | ProposalError::TooManyPendingReads => {
                Response::Error(ErrorReply {
                    kind: ErrorKind::Overloaded,
                    message: error.to_string(),
                })
            }
            other => internal(other.to_string()),
        }
    }

    /// Where the client should go instead of this node.
    pub(super) fn not_leader(&self) -> Response {
        Response::NotLeader {
            leader: self.raft.leader().map(|id| self.leader_hint(id)),
        }
    }

    fn leader_hint(&self, id: raft::NodeId) -> LeaderHint {
        let client_address = if id == self.raft.id() {
            Some(self.config.own_client_address.clone())
        } else {
            self.network.peer_client_address(id)
        };
        LeaderHint { id, client_address }
    }
}

/// Keys and prefixes are bounded like keys of writes: the storage engine cannot look up
/// keys of 64 KiB or more, and nothing longer than `KEY_BYTES_MAX` is ever stored.
fn validate_read(request: &Request) -> Result<(), String> {
    let (key, what) = match request {
        Request::Get { key, .. } => (key, "key"),
        Request::List {
            prefix, start, limit, ..
        } => {
            if *limit == 0 || *limit > LIST_LIMIT_MAX {
                return Err(format!("limit {limit} is outside 1..={LIST_LIMIT_MAX}"));
            }
            if start.len() > KEY_BYTES_MAX {
                return Err(format!(
                    "start key of {} bytes exceeds {KEY_BYTES_MAX}",
                    start.len()
                ));
            }
            (prefix, "prefix")
        }
        _ => return Ok(()),
    };
    if key.len() > KEY_BYTES_MAX {
        return Err(format!("{what} of {} bytes exceeds {KEY_BYTES_MAX}", key.len()));
    }
    if matches!(request, Request::Get { .. }) && is_system_key(key) {
        return Err(reserved_key_message());
    }
    Ok(())
}

fn reserved_key_message() -> String {
    "keys starting with \\0raftkv/ are reserved for raftkv's own records".to_string()
}

pub(super) fn invalid(message: String) -> Response {
    Response::Error(ErrorReply {
        kind: ErrorKind::InvalidRequest,
        message,
    })
}

pub(super) fn internal(message: String) -> Response {
    Response::Error(ErrorReply {
        kind: ErrorKind::Internal,
        message,
    })
}
