//! Operator views of a node: the status row and the full dump of log and KV map.

use raft::{EntryPayload, Raft, Role};
use wire::{NodeDump, NodeStatus, PeerStatus, SpaceStatus};

use wire::Command;

use crate::kv::command::{KvBody, KvCommand};

/// A command with its key and value sizes, not its values: a dump must stay small.
fn describe_command(command: &Command) -> String {
    let key = String::from_utf8_lossy(command.key());
    let size = |value: &Option<Vec<u8>>| {
        value
            .as_ref()
            .map_or("absent".to_string(), |v| format!("{} bytes", v.len()))
    };
    match command {
        Command::Put { value, .. } => format!("put {key:?} ({} bytes)", value.len()),
        Command::Delete { .. } => format!("delete {key:?}"),
        Command::CompareAndSwap {
            expected, new_value, ..
        } => format!("cas {key:?} expected {} new {}", size(expected), size(new_value)),
    }
}

pub(super) fn role_number(role: Role) -> u64 {
    match role {
        Role::Follower => 0,
        Role::PreCandidate => 1,
        Role::Candidate => 2,
        Role::Leader => 3,
    }
}

pub(super) fn node_status(raft: &Raft, space: SpaceStatus) -> NodeStatus {
    let status = raft.status();
    NodeStatus {
        id: status.id,
        role: format!("{:?}", status.role).to_lowercase(),
        term: status.term,
        leader: status.leader,
        commit: status.commit,
        applied: status.applied,
        first_index: status.first_index,
        last_index: status.last_index,
        snapshot_index: status.snapshot_index,
        voters: status.conf_state.voters.iter().copied().collect(),
        learners: status.conf_state.learners.iter().copied().collect(),
        peers: status
            .progress
            .iter()
            .map(|peer| PeerStatus {
                id: peer.id,
                match_index: peer.match_index,
                next_index: peer.next_index,
                state: peer.state.to_string(),
            })
            .collect(),
        space,
    }
}

/// Everything this node holds: the log (after its snapshot) and the KV map.
pub(super) fn node_dump(raft: &Raft, space: SpaceStatus, kv: Vec<(Vec<u8>, Vec<u8>)>) -> NodeDump {
    let log = raft.log();
    let entries = (log.first_index()..=log.last_index())
        .filter_map(|index| log.entry(index))
        .map(|entry| {
            let description = match &entry.payload {
                EntryPayload::Empty => "no-op".to_string(),
                EntryPayload::Config(conf) => {
                    format!("config voters={:?} learners={:?}", conf.voters, conf.learners)
                }
                EntryPayload::Normal(data) => match KvCommand::decode(data).map(|command| command.body) {
                    Ok(KvBody::Write { session, command, .. }) => format!(
                        "client {} seq {}: {}",
                        session.client_id,
                        session.sequence,
                        describe_command(&command)
                    ),
                    Ok(KvBody::OpenSession { client_id, limits }) => format!(
                        "open session {client_id} (timeout {} ms, at most {} sessions)",
                        limits.timeout_millis, limits.sessions_max
                    ),
                    Err(error) => error.to_string(),
                },
            };
            (entry.index, entry.term, description)
        })
        .collect();
    NodeDump {
        status: node_status(raft, space),
        log: entries,
        kv,
    }
}
