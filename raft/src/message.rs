//! Messages between Raft servers, and the checks every inbound message passes before
//! the state machine looks at it.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

use crate::error::MalformedMessage;
use crate::types::{Entry, Index, NodeId, SnapshotMeta, Term};

/// A message between two servers. `term` is the sender's current term, except in a
/// pre-vote request (the term the sender would campaign in) and a granted pre-vote
/// response (the requested term), per thesis §9.6.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum MessageBody {
    PreVote(VoteRequest),
    PreVoteResponse(VoteResponse),
    Vote(VoteRequest),
    VoteResponse(VoteResponse),
    Append(AppendRequest),
    AppendResponse(AppendResponse),
    Heartbeat(Heartbeat),
    HeartbeatResponse(HeartbeatResponse),
    InstallSnapshot(SnapshotChunk),
    InstallSnapshotResponse(SnapshotChunkResponse),
    /// Leadership transfer: campaign now, skipping pre-vote (thesis §3.10).
    TimeoutNow,
    /// A follower forwards a read to the leader (thesis §6.4).
    ReadIndex(ReadIndexRequest),
    ReadIndexResponse(ReadIndexResponse),
}

/// RequestVote (paper §5.2, §5.4.1) and its pre-vote twin (thesis §9.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct VoteRequest {
    pub last_log_index: Index,
    pub last_log_term: Term,
    /// Sent on behalf of a leadership transfer: voters that still hear a leader must not
    /// ignore it (thesis §3.10, §4.2.3).
    pub leadership_transfer: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct VoteResponse {
    pub granted: bool,
}

/// AppendEntries (paper §5.3).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct AppendRequest {
    pub prev_log_index: Index,
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: Index,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum AppendResponse {
    /// The follower's log matches the leader's through `match_index`.
    Accepted { match_index: Index },
    /// The log does not contain `rejected_prev_index` with the leader's term. The hint is
    /// the follower's last index at or before it whose term is at most the leader's
    /// `prev_log_term`, so the leader skips a whole term per round trip (paper §5.3,
    /// "the protocol can be optimized"; etcd raft's findConflictByTerm).
    Rejected {
        rejected_prev_index: Index,
        hint_index: Index,
        hint_term: Term,
    },
}

/// A leader's heartbeat. `read_round` lets ReadIndex confirm leadership with the same
/// round trip (thesis §6.4 step 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Heartbeat {
    pub leader_commit: Index,
    pub read_round: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct HeartbeatResponse {
    pub read_round: u64,
    /// The follower's last log index, so the leader notices one that fell behind.
    pub last_log_index: Index,
}

/// One chunk of a snapshot (thesis §5.3 InstallSnapshot, with `offset` and `done`).
///
/// Raft emits it with empty `data`: the sender's application fills it with the bytes
/// `range_to_fill` names, read from its image of `meta.index`, before it leaves. A chunk
/// that arrives without the data it must carry is malformed (`Message::validate`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct SnapshotChunk {
    pub meta: SnapshotMeta,
    pub total_bytes: u64,
    pub offset: u64,
    /// The most bytes the sender puts in `data` (the leader's `snapshot_chunk_bytes`).
    pub data_bytes_max: u32,
    pub data: Vec<u8>,
}

impl SnapshotChunk {
    pub fn is_last(&self) -> bool {
        self.offset + self.data.len() as u64 == self.total_bytes
    }

    /// The bytes of the image this chunk must carry, as (offset, length), while it is
    /// not filled; `None` once it is (or when it has nothing to carry).
    pub fn range_to_fill(&self) -> Option<(u64, usize)> {
        if !self.data.is_empty() || self.offset >= self.total_bytes {
            return None;
        }
        let remaining = self.total_bytes - self.offset;
        let length = remaining.min(u64::from(self.data_bytes_max).max(1));
        Some((self.offset, usize::try_from(length).unwrap_or(usize::MAX)))
    }
}

/// How many bytes of the snapshot at `snapshot_index` the follower holds. After the
/// last chunk is made durable the follower answers with an `AppendResponse` instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct SnapshotChunkResponse {
    pub snapshot_index: Index,
    pub next_offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct ReadIndexRequest {
    pub context: u64,
}

/// `index` is `None` when the leader refused the read (it lost leadership, or too many
/// reads were pending); the follower then reports the read as failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct ReadIndexResponse {
    pub context: u64,
    pub index: Option<Index>,
}

/// No real cluster reaches 2^62 terms or entries; anything above is garbage, and
/// refusing it keeps every `+ 1` on peer input free of overflow.
pub const INDEX_OR_TERM_MAX: u64 = 1 << 62;

impl Message {
    /// Every index and term the message carries.
    fn numbers(&self) -> Vec<u64> {
        let mut numbers = vec![self.term];
        match &self.body {
            MessageBody::PreVote(request) | MessageBody::Vote(request) => {
                numbers.extend([request.last_log_index, request.last_log_term]);
            }
            MessageBody::Append(append) => {
                numbers.extend([append.prev_log_index, append.prev_log_term, append.leader_commit]);
                numbers.push(append.prev_log_index.saturating_add(append.entries.len() as u64));
            }
            MessageBody::AppendResponse(AppendResponse::Accepted { match_index }) => {
                numbers.push(*match_index)
            }
            MessageBody::AppendResponse(AppendResponse::Rejected {
                rejected_prev_index,
                hint_index,
                hint_term,
            }) => numbers.extend([*rejected_prev_index, *hint_index, *hint_term]),
            MessageBody::Heartbeat(heartbeat) => numbers.push(heartbeat.leader_commit),
            MessageBody::HeartbeatResponse(response) => numbers.push(response.last_log_index),
            MessageBody::InstallSnapshot(chunk) => numbers.extend([chunk.meta.index, chunk.meta.term]),
            MessageBody::InstallSnapshotResponse(response) => numbers.push(response.snapshot_index),
            MessageBody::ReadIndexResponse(response) => numbers.extend(response.index),
            MessageBody::PreVoteResponse(_)
            | MessageBody::VoteResponse(_)
            | MessageBody::TimeoutNow
            | MessageBody::ReadIndex(_) => {}
        }
        numbers
    }

    /// Checks what must hold of any message, whatever this server's state: addressed to
    /// `own_id`, not from itself, indexes and terms in range, and entries that form a
    /// valid log segment.
    pub fn validate(&self, own_id: NodeId) -> Result<(), MalformedMessage> {
        let malformed = |reason: String| MalformedMessage {
            from: self.from,
            reason,
        };
        if self.numbers().iter().any(|&number| number > INDEX_OR_TERM_MAX) {
            return Err(malformed(format!("an index or term exceeds {INDEX_OR_TERM_MAX}")));
        }
        if self.to != own_id {
            return Err(malformed(format!("addressed to {} not {own_id}", self.to)));
        }
        if self.from == own_id {
            return Err(malformed("sent by this very server".into()));
        }
        match &self.body {
            MessageBody::Append(append) => {
                let mut expected_index = append.prev_log_index.checked_add(1);
                let mut previous_term = append.prev_log_term;
                for entry in &append.entries {
                    if Some(entry.index) != expected_index {
                        return Err(malformed(format!(
                            "entry index {} where {expected_index:?} was due",
                            entry.index
                        )));
                    }
                    // Terms never decrease along a log, and no entry is newer than its
                    // leader (paper §5.3).
                    if entry.term < previous_term || entry.term > self.term {
                        return Err(malformed(format!(
                            "entry {} has term {} after term {previous_term} in a term-{} append",
                            entry.index, entry.term, self.term
                        )));
                    }
                    // A configuration no server could have made (a member both voter and
                    // learner) would become this server's own on append (found by the
                    // raft_step fuzz target; InstallSnapshot's metadata is checked below).
                    if let crate::types::EntryPayload::Config(conf) = &entry.payload {
                        if !conf.is_well_formed() {
                            return Err(malformed(format!(
                                "entry {} holds a malformed configuration",
                                entry.index
                            )));
                        }
                    }
                    previous_term = entry.term;
                    expected_index = entry.index.checked_add(1);
                }
                if append.prev_log_term > self.term {
                    return Err(malformed("prev_log_term newer than the message".into()));
                }
            }
            MessageBody::InstallSnapshot(chunk) => {
                let end = chunk.offset.checked_add(chunk.data.len() as u64);
                if end.is_none_or(|end| end > chunk.total_bytes) {
                    return Err(malformed("snapshot chunk runs past total_bytes".into()));
                }
                if chunk.data.is_empty() && chunk.offset < chunk.total_bytes {
                    return Err(malformed("snapshot chunk without its data".into()));
                }
                if chunk.data.len() > chunk.data_bytes_max as usize {
                    return Err(malformed("snapshot chunk larger than its stated bound".into()));
                }
                if chunk.meta.term > self.term || !chunk.meta.conf_state.is_well_formed() {
                    return Err(malformed("snapshot metadata is impossible".into()));
                }
            }
            MessageBody::PreVote(request) | MessageBody::Vote(request)
                if request.last_log_term > self.term =>
            {
                return Err(malformed("candidate's last log term exceeds its term".into()));
            }
            _ => {}
        }
        Ok(())
    }
}
