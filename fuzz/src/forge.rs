//! Forged messages for raft_step: any sender, recipient, term and body, mostly near the
//! target's own state (so they pass `validate` often enough to reach deep code), sometimes
//! far outside it.

use raft::{
    AppendRequest, AppendResponse, ConfState, Entry, EntryPayload, Heartbeat, HeartbeatResponse, Index,
    Message, MessageBody, NodeId, Raft, ReadIndexRequest, ReadIndexResponse, SnapshotChunk,
    SnapshotChunkResponse, SnapshotMeta, Term, VoteRequest, VoteResponse,
};

use crate::script::Script;

/// A hostile message for `target` (`raft`, live): sender, recipient, term and every field
/// read off the script, mostly near the server's own state.
pub(crate) fn message(raft: &Raft, target: NodeId, next_read: u64, script: &mut Script<'_>) -> Message {
    let term = raft.term();
    let last = raft.log().last_index();
    let commit = raft.committed();
    let from = [2, 3, 1, 4, 5, 0][usize::from(script.byte() % 6)];
    let from = if from == target { target % 4 + 1 } else { from };
    let to = if script.byte().is_multiple_of(16) {
        NodeId::from(script.byte() % 6)
    } else {
        target
    };
    let message_term = script.number(term);
    let body = match script.byte() % 13 {
        0 => MessageBody::PreVote(vote_request(script, last, term)),
        1 => MessageBody::PreVoteResponse(VoteResponse {
            granted: script.bool(),
        }),
        2 => MessageBody::Vote(vote_request(script, last, term)),
        3 => MessageBody::VoteResponse(VoteResponse {
            granted: script.bool(),
        }),
        4 => {
            let prev_log_index = script.number(last);
            let prev_log_term = script.number(term);
            let entries = forged_entries(script, prev_log_index, prev_log_term, message_term);
            MessageBody::Append(AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit: script.number(commit),
            })
        }
        5 => MessageBody::AppendResponse(if script.bool() {
            AppendResponse::Accepted {
                match_index: script.number(last),
            }
        } else {
            AppendResponse::Rejected {
                rejected_prev_index: script.number(last),
                hint_index: script.number(last),
                hint_term: script.number(term),
            }
        }),
        6 => MessageBody::Heartbeat(Heartbeat {
            leader_commit: script.number(commit),
            read_round: script.number(1),
        }),
        7 => MessageBody::HeartbeatResponse(HeartbeatResponse {
            read_round: script.number(1),
            last_log_index: script.number(last),
        }),
        8 => {
            let meta = SnapshotMeta {
                index: script.number(last),
                term: script.number(term),
                conf_state: forged_conf(script),
            };
            let total_bytes = script.number(16);
            let offset = script.number(8);
            let length = usize::from(script.byte() % 24);
            MessageBody::InstallSnapshot(SnapshotChunk {
                meta,
                total_bytes,
                offset,
                data_bytes_max: u32::from(script.byte()),
                data: script.bytes(length),
            })
        }
        9 => MessageBody::InstallSnapshotResponse(SnapshotChunkResponse {
            snapshot_index: script.number(last),
            next_offset: script.number(64),
        }),
        10 => MessageBody::TimeoutNow,
        11 => MessageBody::ReadIndex(ReadIndexRequest {
            context: script.number(next_read),
        }),
        _ => MessageBody::ReadIndexResponse(ReadIndexResponse {
            context: script.number(next_read),
            index: script.bool().then(|| script.number(commit)),
        }),
    };
    Message {
        from,
        to,
        term: message_term,
        body,
    }
}

fn vote_request(script: &mut Script<'_>, last: Index, term: Term) -> VoteRequest {
    VoteRequest {
        last_log_index: script.number(last),
        last_log_term: script.number(term),
        leadership_transfer: script.bool(),
    }
}

/// Voters and learners from 1..=5 (overlapping ones make a malformed configuration).
fn forged_conf(script: &mut Script<'_>) -> ConfState {
    let voters = script.byte();
    let learners = script.byte();
    let pick = |mask: u8| (1..=5).filter(move |id| mask & (1 << (id - 1)) != 0);
    ConfState {
        voters: pick(voters).collect(),
        learners: pick(learners).collect(),
    }
}

/// Up to four entries, usually forming a plausible log segment after `prev_index`.
fn forged_entries(script: &mut Script<'_>, prev_index: Index, prev_term: Term, term: Term) -> Vec<Entry> {
    let count = script.byte() % 5;
    let mut index = if script.byte().is_multiple_of(8) {
        script.number(prev_index)
    } else {
        prev_index.wrapping_add(1)
    };
    let mut entry_term = prev_term;
    let mut entries = Vec::new();
    for _ in 0..count {
        entry_term = match script.byte() % 8 {
            0 => script.number(term),
            1..=3 => entry_term.saturating_add(1).min(term),
            _ => entry_term,
        };
        let payload = match script.byte() % 4 {
            0 => EntryPayload::Empty,
            1 => EntryPayload::Config(forged_conf(script)),
            _ => {
                let length = usize::from(script.byte() % 12);
                EntryPayload::Normal(script.bytes(length).into())
            }
        };
        entries.push(Entry {
            term: entry_term,
            index,
            payload,
        });
        index = index.wrapping_add(1);
    }
    entries
}
