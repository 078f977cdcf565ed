//! Helpers to drive one `Raft` by hand: the test plays its peers and the application,
//! building each message and handling each `Ready` itself.

use std::sync::Arc;

use raft::{
    AppendResponse, ConfState, Config, Entry, EntryPayload, HardState, Heartbeat, HeartbeatResponse, Index,
    Message, MessageBody, NodeId, Raft, Ready, RestartState, Role, Term, VoteResponse,
};

pub fn message(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message { from, to, term, body }
}

/// Handles one `Ready` as the contract says (the test inspects it) and advances.
pub fn handle(raft: &mut Raft) -> Ready {
    let ready = raft.ready();
    raft.advance();
    ready
}

/// Steps a well-formed `message` into `raft` and handles the `Ready` it causes.
pub fn step(raft: &mut Raft, message: Message) -> Ready {
    raft.step(message).expect("a well-formed message");
    handle(raft)
}

/// An entry carrying its index as an 8-byte value (the harness state machine's format).
pub fn data_entry(index: Index, term: Term) -> Entry {
    Entry {
        index,
        term,
        payload: EntryPayload::Normal(Arc::from(index.to_be_bytes().as_slice())),
    }
}

/// The bootstrap configuration entry of `voters`: index 1, term 1.
pub fn config_entry(voters: &[NodeId]) -> Entry {
    Entry {
        index: 1,
        term: 1,
        payload: EntryPayload::Config(ConfState::with_voters(voters.iter().copied())),
    }
}

/// A server of a freshly bootstrapped `voters` cluster, its first `Ready` handled.
pub fn bootstrapped(config: Config, voters: &[NodeId]) -> Raft {
    let mut raft =
        Raft::bootstrap(config, ConfState::with_voters(voters.iter().copied())).expect("bootstrap");
    handle(&mut raft);
    raft
}

/// Durable state of `term`, no vote, `entries` committed and applied through `commit`.
pub fn restart_state(term: Term, entries: Vec<Entry>, commit: Index) -> RestartState {
    RestartState {
        hard_state: HardState {
            term,
            vote: None,
            commit,
        },
        snapshot: None,
        entries,
        applied: commit,
    }
}

/// A server restarted from [`restart_state`], its first `Ready` handled.
pub fn restarted(config: Config, term: Term, entries: Vec<Entry>, commit: Index) -> Raft {
    let mut raft = Raft::restart(config, restart_state(term, entries, commit)).expect("valid durable state");
    handle(&mut raft);
    raft
}

/// Makes `raft` win an election by hand: it times out, and a quorum grants its pre-vote
/// (if enabled) and its vote. Returns the `Ready` of its first moment as leader.
pub fn win_election(raft: &mut Raft) -> Ready {
    let voters: Vec<NodeId> = raft
        .conf_state()
        .voters
        .iter()
        .copied()
        .filter(|&id| id != raft.id())
        .collect();
    let supporters = &voters[..raft.conf_state().quorum_size() - 1];
    while raft.role() == Role::Follower {
        raft.tick();
        handle(raft);
    }
    if raft.role() == Role::PreCandidate {
        let term = raft.term() + 1;
        for &id in supporters {
            let granted = MessageBody::PreVoteResponse(VoteResponse { granted: true });
            raft.step(message(id, raft.id(), term, granted)).expect("valid");
        }
        handle(raft);
    }
    assert_eq!(raft.role(), Role::Candidate);
    for &id in supporters {
        let granted = MessageBody::VoteResponse(VoteResponse { granted: true });
        raft.step(message(id, raft.id(), raft.term(), granted))
            .expect("valid");
    }
    assert_eq!(raft.role(), Role::Leader);
    handle(raft)
}

/// A follower's acknowledgement that it holds the log through `match_index`.
pub fn accepted(match_index: Index) -> MessageBody {
    MessageBody::AppendResponse(AppendResponse::Accepted { match_index })
}

/// Steps a follower's acknowledgement into the leader and handles the `Ready`.
pub fn ack_append(leader: &mut Raft, from: NodeId, match_index: Index) -> Ready {
    let term = leader.term();
    step(leader, message(from, leader.id(), term, accepted(match_index)))
}

/// A heartbeat that starts no read round.
pub fn heartbeat(leader_commit: Index) -> MessageBody {
    MessageBody::Heartbeat(Heartbeat {
        leader_commit,
        read_round: 0,
    })
}

pub fn is_vote_request(message: &Message) -> bool {
    matches!(message.body, MessageBody::PreVote(_) | MessageBody::Vote(_))
}

/// A follower's acknowledgement of heartbeat round `read_round`, stepped into the leader.
pub fn ack_heartbeat(leader: &mut Raft, from: NodeId, read_round: u64) -> Ready {
    let term = leader.term();
    let last_log_index = leader.log().last_index();
    let body = MessageBody::HeartbeatResponse(HeartbeatResponse {
        read_round,
        last_log_index,
    });
    step(leader, message(from, leader.id(), term, body))
}

/// The read round carried by the heartbeats in `ready`, if any went out.
pub fn read_round_sent(ready: &Ready) -> Option<u64> {
    ready
        .messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat(heartbeat) => Some(heartbeat.read_round),
            _ => None,
        })
        .max()
}
