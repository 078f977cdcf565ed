//! Writes the seed corpus (fuzz/corpus/<target>/): a handful of small valid inputs per
//! target, so a short CI run starts from inputs that reach deep into each decoder and
//! into an elected, replicating cluster. Run from fuzz/:
//! `cargo run --example seed_corpus` (it replaces the seed-* files only).

use std::fs;
use std::path::Path;

use wire::frame::encode_frame;
use wire::{KeyValue, ReadValue, 
    Command, ErrorKind, ErrorReply, LeaderHint, MemberChange, MemberInfo, MemberList, MemberRole, NodeStatus,
    Listing, PeerStatus, Prior, ReadConsistency, Request, RequestEnvelope, Response, ResponseEnvelope, Session, SpaceStatus,
    WriteResult, CLIENT_PROTOCOL_VERSION,
};
use node::identity::{ClusterId, ClusterMembership, Founder, Identity};
use node::kv::command::{KvBody, KvCommand, SessionLimits};
use node::membership::MemberRecord;
use node::storage::{SessionRecord, SnapshotImage};
use node::transport::{Handshake, HandshakeReply, PeerState, PROTOCOL_VERSION};
use raft::{
    AppendRequest, AppendResponse, ConfState, Entry, EntryPayload, HardState, Heartbeat, Message,
    MessageBody, ReadIndexResponse, SnapshotChunk, SnapshotMeta, VoteRequest, VoteResponse,
};
use raftkv_fuzz::script::{op, ScriptWriter};
use serde::Serialize;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    write(&root, "client_frame", client_frame());
    write(&root, "peer_frame", peer_frame());
    write(&root, "peer_handshake", peer_handshake());
    write(&root, "storage_codecs", storage_codecs());
    write(&root, "raft_step", raft_step());
}

fn write(root: &Path, target: &str, seeds: Vec<(&str, Vec<u8>)>) {
    let dir = root.join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    for entry in fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("seed-"))
        {
            fs::remove_file(path).expect("old seed");
        }
    }
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed");
    }
}

fn frame<T: Serialize>(value: &T) -> Vec<u8> {
    encode_frame(value).expect("encodes")
}

fn frames<T: Serialize>(values: &[T]) -> Vec<u8> {
    values.iter().flat_map(|value| frame(value)).collect()
}

fn client_frame() -> Vec<(&'static str, Vec<u8>)> {
    let request = |id, request| RequestEnvelope {
        protocol_version: CLIENT_PROTOCOL_VERSION,
        id,
        request,
    };
    let session = Session {
        client_id: 7,
        sequence: 1,
    };
    let writes = frames(&[
        request(0, Request::OpenSession { client_id: 7 }),
        request(
            1,
            Request::Write {
                session,
                command: Command::Put {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                },
                return_prior: true,
            },
        ),
        request(
            2,
            Request::Write {
                session,
                command: Command::CompareAndSwap {
                    key: b"k".to_vec(),
                    expected: Some(b"v".to_vec()),
                    new_value: None,
                },
                return_prior: false,
            },
        ),
        request(
            3,
            Request::Write {
                session,
                command: Command::Delete { key: b"k".to_vec() },
                return_prior: false,
            },
        ),
    ]);
    let reads = frames(&[
        request(
            4,
            Request::Get {
                key: b"k".to_vec(),
                consistency: ReadConsistency::Linearizable,
            },
        ),
        request(
            5,
            Request::List {
                prefix: b"a".to_vec(),
                start: b"ab".to_vec(),
                limit: 10,
                count_only: false,
                consistency: ReadConsistency::Stale,
            },
        ),
        request(6, Request::Status),
        request(7, Request::Dump),
        request(8, Request::Members),
    ]);
    let membership = frames(&[
        request(
            9,
            Request::ChangeMembers(MemberChange::AddLearner {
                id: 4,
                peer_address: "n4:7000".into(),
                client_address: "n4:7001".into(),
                incarnation: Some(9),
            }),
        ),
        request(10, Request::ChangeMembers(MemberChange::Promote { id: 4 })),
        request(
            11,
            Request::ChangeMembers(MemberChange::Remove {
                id: 4,
                incarnation: None,
            }),
        ),
    ]);
    let response = |id, response| ResponseEnvelope { id, response };
    let status = NodeStatus {
        id: 1,
        role: "leader".into(),
        term: 2,
        leader: Some(1),
        commit: 5,
        applied: 5,
        first_index: 1,
        last_index: 5,
        snapshot_index: 0,
        voters: vec![1, 2, 3],
        learners: vec![],
        peers: vec![PeerStatus {
            id: 2,
            match_index: 5,
            next_index: 6,
            state: "replicate".into(),
        }],
        space: SpaceStatus {
            data_bytes: 42,
            quota_bytes: 1 << 31,
            disk_free_bytes: Some(1 << 30),
            disk_free_min_bytes: 128 << 20,
        },
    };
    let responses = frames(&[
        response(
            0,
            Response::SessionOpened {
                client_id: 7,
                timeout_millis: 3_600_000,
            },
        ),
        response(
            1,
            Response::Written(WriteResult::Done {
                previous: Prior::Value(b"v".to_vec()),
            }),
        ),
        response(
            2,
            Response::Written(WriteResult::CompareAndSwap {
                swapped: false,
                current: Prior::Present { value_bytes: 1 },
            }),
        ),
        response(3, Response::Value(ReadValue::unversioned(Some(b"v".to_vec())))),
        response(
            4,
            Response::Listing(Listing {
                pairs: vec![KeyValue::unversioned(b"a".to_vec(), b"1".to_vec())],
                revision: 1,
                next: Some(b"b".to_vec()),
                count: None,
            }),
        ),
        response(
            5,
            Response::NotLeader {
                leader: Some(LeaderHint {
                    id: 2,
                    client_address: Some("n2:7001".into()),
                }),
            },
        ),
        response(
            6,
            Response::Error(ErrorReply {
                kind: ErrorKind::Overloaded,
                message: "busy".into(),
            }),
        ),
        response(7, Response::Status(status)),
        response(
            8,
            Response::Members(MemberList {
                cluster_id: 0xb1,
                leader: 1,
                term: 2,
                commit: 5,
                members: vec![MemberInfo {
                    id: 1,
                    role: MemberRole::Voter,
                    peer_address: Some("n1:7000".into()),
                    client_address: Some("n1:7001".into()),
                    incarnation: Some(5),
                    match_index: 5,
                }],
            }),
        ),
    ]);
    let mut oversized = vec![0xff, 0xff, 0xff, 0xff];
    oversized.extend_from_slice(b"rest");
    vec![
        ("requests-write", writes),
        ("requests-read", reads),
        ("requests-membership", membership),
        ("responses", responses),
        ("oversized-header", oversized),
    ]
}

/// Raft messages from node 2 to node 1.
fn messages() -> Vec<Message> {
    let message = |term, body| Message {
        from: 2,
        to: 1,
        term,
        body,
    };
    vec![
        message(
            2,
            MessageBody::PreVote(VoteRequest {
                last_log_index: 1,
                last_log_term: 1,
                leadership_transfer: false,
            }),
        ),
        message(
            2,
            MessageBody::Vote(VoteRequest {
                last_log_index: 1,
                last_log_term: 1,
                leadership_transfer: false,
            }),
        ),
        message(2, MessageBody::VoteResponse(VoteResponse { granted: true })),
        message(
            2,
            MessageBody::Append(AppendRequest {
                prev_log_index: 1,
                prev_log_term: 1,
                entries: vec![
                    Entry {
                        term: 2,
                        index: 2,
                        payload: EntryPayload::Empty,
                    },
                    Entry {
                        term: 2,
                        index: 3,
                        payload: EntryPayload::Normal(b"value".to_vec().into()),
                    },
                    Entry {
                        term: 2,
                        index: 4,
                        payload: EntryPayload::Config(ConfState::with_voters([1, 2, 3])),
                    },
                ],
                leader_commit: 3,
            }),
        ),
        message(
            2,
            MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 4 }),
        ),
        message(
            2,
            MessageBody::Heartbeat(Heartbeat {
                leader_commit: 4,
                read_round: 1,
            }),
        ),
        message(
            2,
            MessageBody::InstallSnapshot(SnapshotChunk {
                meta: SnapshotMeta {
                    index: 9,
                    term: 2,
                    conf_state: ConfState::with_voters([1, 2, 3]),
                },
                total_bytes: 8,
                offset: 0,
                data_bytes_max: 8,
                data: vec![0; 8],
            }),
        ),
        message(
            2,
            MessageBody::ReadIndexResponse(ReadIndexResponse {
                context: 1,
                index: Some(4),
            }),
        ),
        message(3, MessageBody::TimeoutNow),
    ]
}

fn peer_frame() -> Vec<(&'static str, Vec<u8>)> {
    let all = frames(&messages());
    let mut verified = vec![0b101];
    verified.extend_from_slice(&all);
    let mut unverified = vec![0b001];
    unverified.extend_from_slice(&all);
    let mut misrouted = vec![0b110];
    misrouted.extend(frame(&messages()[3]));
    vec![
        ("verified-peer-2", verified),
        ("unverified-peer-2", unverified),
        ("misrouted", misrouted),
    ]
}

fn handshake(node_id: u64, incarnation: u64, probe: bool) -> Handshake {
    Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_name: "blue".into(),
        cluster_id: Some(ClusterId(0xb1)),
        node_id,
        incarnation,
        client_address: format!("n{node_id}:7001"),
        probe,
    }
}

fn peer_handshake() -> Vec<(&'static str, Vec<u8>)> {
    let connection = |flags: u8, handshake: Handshake| {
        let mut bytes = vec![flags];
        bytes.extend(frame(&handshake));
        bytes.extend(frames(&messages()));
        bytes
    };
    let mut other_cluster = handshake(2, 7, false);
    other_cluster.cluster_name = "green".into();
    let mut reply = vec![0];
    reply.extend(frame(&HandshakeReply::Probed(PeerState {
        node_id: 2,
        incarnation: 7,
        membership: Some(ClusterMembership::found(
            "blue",
            vec![Founder {
                node_id: 2,
                incarnation: 7,
            }],
        )),
        client_address: "n2:7001".into(),
    })));
    let mut accepted = vec![0];
    accepted.extend(frame(&HandshakeReply::Accepted {
        node_id: 2,
        client_address: "n2:7001".into(),
    }));
    vec![
        ("member-peer-2", connection(0, handshake(2, 7, false))),
        ("unbound-peer-3", connection(0, handshake(3, 1, false))),
        ("wiped-peer-2", connection(0, handshake(2, 8, false))),
        ("probe", connection(1, handshake(9, 1, true))),
        ("other-cluster", connection(0, other_cluster)),
        ("reply-probed", reply),
        ("reply-accepted", accepted),
    ]
}

fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("encodes")
}

fn storage_codecs() -> Vec<(&'static str, Vec<u8>)> {
    let write = WriteResult::Done { previous: Prior::Absent };
    vec![
        ("index-key", 42u64.to_be_bytes().to_vec()),
        (
            "entry",
            encoded(&Entry {
                term: 2,
                index: 3,
                payload: EntryPayload::Normal(b"value".to_vec().into()),
            }),
        ),
        (
            "hard-state",
            encoded(&HardState {
                term: 3,
                vote: Some(1),
                commit: 7,
            }),
        ),
        (
            "snapshot-meta",
            encoded(&SnapshotMeta {
                index: 9,
                term: 2,
                conf_state: ConfState::with_voters([1, 2, 3]),
            }),
        ),
        (
            "identity",
            encoded(&Identity {
                node_id: 1,
                incarnation: 5,
                cluster: Some(ClusterMembership::found(
                    "blue",
                    vec![Founder {
                        node_id: 1,
                        incarnation: 5,
                    }],
                )),
            }),
        ),
        (
            "session-record",
            encoded(&SessionRecord {
                sequence: 3,
                result: Some(write.clone()),
                expires_at_millis: 1_700_000_012_000,
                timeout_millis: 3_600_000,
            }),
        ),
        (
            "snapshot-image",
            SnapshotImage {
                kv: vec![(b"k".to_vec(), b"v".to_vec())],
                sessions: vec![(
                    7,
                    SessionRecord {
                        sequence: 1,
                        result: Some(write),
                        expires_at_millis: 1_700_000_004_000,
                        timeout_millis: 3_600_000,
                    },
                )],
            }
            .encode(),
        ),
        (
            "kv-command",
            KvCommand::write(
                1_700_000_000_000,
                Session {
                    client_id: 7,
                    sequence: 2,
                },
                Command::Put {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                },
                false,
            )
            .encode(),
        ),
        (
            "kv-command-open-session",
            KvCommand {
                at_millis: 1_700_000_000_000,
                body: KvBody::OpenSession {
                    client_id: 7,
                    limits: SessionLimits::DEFAULT,
                },
            }
            .encode(),
        ),
        (
            "member-record",
            encoded(&MemberRecord {
                peer_address: "n2:7000".into(),
                client_address: "n2:7001".into(),
                incarnation: Some(7),
            }),
        ),
    ]
}

fn raft_step() -> Vec<(&'static str, Vec<u8>)> {
    let script = |flags: u8, build: &dyn Fn(&mut ScriptWriter)| {
        let mut writer = ScriptWriter::default();
        writer.bytes.push(flags);
        build(&mut writer);
        writer.bytes
    };
    let replicate = |w: &mut ScriptWriter| {
        w.elect(0);
        for size in [8, 16, 23] {
            w.op(op::PROPOSE, &[0, size]);
        }
        w.op(op::DELIVER_ALL, &[])
            .op(op::DELIVER_ALL, &[])
            .op(op::TICK_ALL, &[]);
        w.op(op::DELIVER_ALL, &[]).op(op::DELIVER_ALL, &[]);
    };
    vec![
        ("elect-replicate", script(0, &|w| replicate(w))),
        (
            "reads-transfer",
            script(0, &|w| {
                replicate(w);
                w.op(op::READ, &[0]).op(op::READ, &[1]).op(op::DELIVER_ALL, &[]);
                w.op(op::TICK, &[0, 1])
                    .op(op::DELIVER_ALL, &[])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::TRANSFER, &[0, 2])
                    .op(op::DELIVER_ALL, &[])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::DELIVER_ALL, &[])
                    .op(op::PROPOSE, &[2, 8])
                    .op(op::DELIVER_ALL, &[]);
            }),
        ),
        (
            "join-promote-remove",
            script(0, &|w| {
                replicate(w);
                w.op(op::CONF_CHANGE, &[0, 0, 3])
                    .op(op::DELIVER_ALL, &[])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::DELIVER_ALL, &[])
                    .op(op::TICK, &[0, 3])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::DELIVER_ALL, &[])
                    .op(op::CONF_CHANGE, &[0, 1, 3])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::DELIVER_ALL, &[])
                    .op(op::DELIVER_ALL, &[])
                    .op(op::CONF_CHANGE, &[0, 2, 1]);
                w.op(op::DELIVER_ALL, &[]).op(op::DELIVER_ALL, &[]);
            }),
        ),
        (
            "compact-crash-restart",
            script(0, &|w| {
                replicate(w);
                w.op(op::COMPACT, &[0])
                    .op(op::CRASH, &[2, 0])
                    .op(op::PROPOSE, &[0, 8]);
                w.op(op::DELIVER_ALL, &[])
                    .op(op::COMPACT, &[0])
                    .op(op::RESTART, &[2]);
                w.op(op::TICK, &[0, 3])
                    .op(op::DELIVER_ALL, &[])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::DELIVER_ALL, &[])
                    .op(op::DELIVER_ALL, &[])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::CRASH, &[1, 1])
                    .op(op::PROPOSE, &[0, 8])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::RESTART, &[1])
                    .op(op::TICK_ALL, &[])
                    .op(op::DELIVER_ALL, &[]);
            }),
        ),
        (
            "lazy-lossy",
            script(3, &|w| {
                w.op(op::SET_LAZY, &[1, 1])
                    .op(op::TICK, &[0, 15])
                    .op(op::TICK, &[0, 15]);
                w.op(op::DELIVER, &[0, 0])
                    .op(op::DUPLICATE, &[1, 0])
                    .op(op::READY, &[1]);
                w.op(op::DELIVER_ALL, &[])
                    .op(op::DROP, &[0, 0])
                    .op(op::DELIVER_ALL, &[]);
                w.op(op::PROPOSE, &[0, 8])
                    .op(op::PROPOSE, &[0, 8])
                    .op(op::DELIVER, &[1, 0]);
                w.op(op::READY, &[1]).op(op::DELIVER_ALL, &[]).op(op::READY, &[1]);
                w.op(op::DELIVER_ALL, &[]).op(op::READY, &[2]);
            }),
        ),
        (
            "forged",
            script(0, &|w| {
                replicate(w);
                // A heartbeat from a stranger of the current term, a stale vote request,
                // and one in-flight message corrupted on the wire.
                w.op(op::FORGE, &[1, 4, 1, 2, 6, 2, 2]);
                w.op(op::FORGE, &[2, 0, 1, 1, 0, 2, 2, 0]);
                w.op(op::PROPOSE, &[0, 8]).op(op::CORRUPT, &[0, 0, 3, 0, 9]);
                w.op(op::DELIVER_ALL, &[]);
            }),
        ),
    ]
}
