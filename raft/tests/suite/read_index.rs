//! Linearizable reads without log writes, ReadIndex (thesis §6.4): the leader
//! remembers its commit index, confirms with a heartbeat round acknowledged by a
//! majority that it still leads, and the read is served once that index is applied.
//! Followers forward reads to the leader (thesis §6.4.1).

use raft::{
    AppendRequest, AppendResponse, Config, HeartbeatResponse, Index, MessageBody, NodeId, ProposalError,
    Raft, ReadIndexRequest, ReadIndexResponse, ReadState, Ready, Role,
};

use crate::harness::single::{
    ack_append, ack_heartbeat, bootstrapped, config_entry, data_entry, handle, heartbeat, message,
    read_round_sent, restarted, step, win_election,
};
use crate::harness::{test_config, Cluster};

// ----- local helpers -----------------------------------------------------------------

/// Server 1 as leader of term 2 of a fresh `voters` cluster, no-op (index 2) not yet
/// acknowledged by anyone.
fn new_leader(config: Config, voters: &[NodeId]) -> Raft {
    let mut raft = bootstrapped(config, voters);
    win_election(&mut raft);
    raft
}

/// `new_leader` whose no-op is committed: an entry of its term is committed.
fn established_leader(config: Config, voters: &[NodeId]) -> Raft {
    let mut leader = new_leader(config, voters);
    for follower in voters
        .iter()
        .copied()
        .filter(|&id| id != 1)
        .take(voters.len() / 2)
    {
        ack_append(&mut leader, follower, 2);
    }
    assert_eq!(leader.committed(), 2);
    leader
}

fn read_index_responses(ready: &Ready) -> Vec<(NodeId, ReadIndexResponse)> {
    ready
        .messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::ReadIndexResponse(response) => Some((m.to, response)),
            _ => None,
        })
        .collect()
}

// ----- tests -----------------------------------------------------------------------------

/// Thesis §6.4 step 1: a new leader's commit index may lag the cluster's until it
/// commits an entry of its own term, so it answers no read before that. Server 1 wins
/// term 3 holding entries 2 and 3 of term 2 that an earlier leader may have committed
/// (its own commit index says 1): heartbeat rounds acknowledged by everyone release
/// nothing, and the read, once released, carries index 4 (its no-op), never 1.
#[test]
fn a_new_leader_answers_no_read_until_an_entry_of_its_term_commits() {
    let voters = [1, 2, 3];
    let entries = vec![config_entry(&voters), data_entry(2, 2), data_entry(3, 2)];
    let mut leader = restarted(test_config(1), 2, entries, 1);
    win_election(&mut leader);
    assert_eq!(
        (leader.term(), leader.committed(), leader.log().last_index()),
        (3, 1, 4)
    );

    leader.read_index(5).expect("accepted");
    let ready = handle(&mut leader);
    assert_eq!(
        read_round_sent(&ready),
        None,
        "a read round started before the term's first commit"
    );
    // Heartbeats come and go, acknowledged by everyone: still nothing.
    for _ in 0..2 * leader.config().heartbeat_interval_ticks {
        leader.tick();
        let ready = handle(&mut leader);
        if let Some(round) = read_round_sent(&ready) {
            for follower in [2, 3] {
                let ready = ack_heartbeat(&mut leader, follower, round);
                assert!(
                    ready.read_states.is_empty(),
                    "read answered before the term's first commit"
                );
            }
        }
    }
    // Follower 2 stores the no-op: index 4 of term 3 commits, with 2 and 3.
    let ready = ack_append(&mut leader, 2, 4);
    assert_eq!(leader.committed(), 4);
    assert!(ready.read_states.is_empty());
    let round = read_round_sent(&ready).expect("the read's round goes out at once");
    let ready = ack_heartbeat(&mut leader, 2, round);
    assert_eq!(ready.read_states, [ReadState { context: 5, index: 4 }]);
}

/// Thesis §6.4 step 3: the leader serves a read only after a majority acknowledged a
/// heartbeat round sent after the read arrived. With five voters, acknowledgements of
/// earlier rounds, of a round never sent, and from one follower alone release nothing;
/// the second acknowledgement of the read's round does.
#[test]
fn a_read_is_released_only_once_a_quorum_acknowledged_its_heartbeat_round() {
    let mut leader = established_leader(test_config(1), &[1, 2, 3, 4, 5]);
    let commit = leader.committed();
    leader.read_index(7).expect("accepted");
    let ready = handle(&mut leader);
    let round = read_round_sent(&ready).expect("a read starts a heartbeat round");
    assert!(round > 0);
    let heartbeats = ready
        .messages
        .iter()
        .filter(|m| matches!(m.body, MessageBody::Heartbeat(_)))
        .count();
    assert_eq!(heartbeats, 4);

    for (from, acked_round) in [
        (2, round - 1),
        (3, round - 1),
        (4, round + 1),
        (5, round + 7),
        (2, round),
    ] {
        let ready = ack_heartbeat(&mut leader, from, acked_round);
        assert!(
            ready.read_states.is_empty(),
            "released after {from} acknowledged round {acked_round}"
        );
    }
    let ready = ack_heartbeat(&mut leader, 3, round);
    assert_eq!(
        ready.read_states,
        [ReadState {
            context: 7,
            index: commit
        }]
    );
}

/// Thesis §6.4 step 4: a confirmed read is served only once the state machine has
/// applied through its index. With one committed entry applied per `Ready`, the read
/// stamped at index 6 comes out in exactly the `Ready` whose committed entries reach 6.
#[test]
fn a_read_comes_out_in_the_ready_whose_committed_entries_reach_its_index() {
    let config = Config {
        max_apply_bytes_per_ready: 1,
        ..test_config(1)
    };
    let mut leader = established_leader(config, &[1, 2, 3]);
    assert_eq!(leader.applied(), 2);
    for value in 0..4u64 {
        leader.propose(value.to_be_bytes().to_vec()).expect("accepted");
    }
    handle(&mut leader);
    // Follower 2 stores 3..=6; no Ready yet, so nothing of it is applied.
    let term = leader.term();
    let body = MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 6 });
    leader.step(message(2, 1, term, body)).expect("valid");
    assert_eq!((leader.committed(), leader.applied()), (6, 2));
    leader.read_index(42).expect("accepted");

    let ready = handle(&mut leader);
    let round = read_round_sent(&ready).expect("round sent");
    let mut applied: Vec<Index> = ready.committed_entries.iter().map(|e| e.index).collect();
    assert!(ready.read_states.is_empty());
    let body = MessageBody::HeartbeatResponse(HeartbeatResponse {
        read_round: round,
        last_log_index: 6,
    });
    leader.step(message(3, 1, term, body)).expect("valid");
    let mut released_with = None;
    while leader.applied() < 6 || leader.has_ready() {
        let ready = handle(&mut leader);
        applied.extend(ready.committed_entries.iter().map(|e| e.index));
        if !ready.read_states.is_empty() {
            assert_eq!(
                ready.read_states,
                [ReadState {
                    context: 42,
                    index: 6
                }]
            );
            released_with = Some(ready.committed_entries.last().map(|e| e.index));
        }
    }
    assert_eq!(applied, [3, 4, 5, 6], "one entry per Ready");
    assert_eq!(
        released_with,
        Some(Some(6)),
        "the read came out before index 6 was applied"
    );
}

/// Thesis §6.4: a leader that loses leadership before confirming a read must not answer
/// it, since a newer leader may have committed writes the read would miss. Its local
/// reads come back in `Ready.dropped_reads` (the client retries) and forwarded reads
/// are refused; a late acknowledgement of the old round releases nothing.
#[test]
fn a_deposed_leader_drops_its_pending_reads_instead_of_answering_them() {
    let voters = [1, 2, 3];
    let mut leader = new_leader(test_config(1), &voters);
    // Before the term's first commit: the read waits for it.
    leader.read_index(10).expect("accepted");
    handle(&mut leader);
    ack_append(&mut leader, 2, 2);
    // After it: stamped, its round sent.
    leader.read_index(11).expect("accepted");
    let forwarded = MessageBody::ReadIndex(ReadIndexRequest { context: 12 });
    leader.step(message(3, 1, 2, forwarded)).expect("valid");
    let ready = handle(&mut leader);
    let round = read_round_sent(&ready).expect("round sent");

    // Server 2 leads term 3 now.
    let ready = step(&mut leader, message(2, 1, 3, heartbeat(2)));
    assert_eq!(
        (leader.role(), leader.term(), leader.leader()),
        (Role::Follower, 3, Some(2))
    );
    assert!(ready.read_states.is_empty());
    let mut dropped = ready.dropped_reads.clone();
    dropped.sort_unstable();
    assert_eq!(dropped, [10, 11]);
    let refusal = ReadIndexResponse {
        context: 12,
        index: None,
    };
    assert_eq!(read_index_responses(&ready), [(3, refusal)]);

    // The old round's acknowledgement arrives late, from the old term.
    let body = MessageBody::HeartbeatResponse(HeartbeatResponse {
        read_round: round,
        last_log_index: 2,
    });
    let ready = step(&mut leader, message(3, 1, 2, body));
    assert!(ready.read_states.is_empty() && ready.dropped_reads.is_empty());
}

/// Thesis §6.4.1: a follower forwards a read to the leader, which confirms it like its
/// own and answers with its read index; the follower serves it once it has applied
/// that far, which the harness checks is linearizable (the read sees every write
/// acknowledged before it was issued).
#[test]
fn a_follower_forwards_a_read_to_the_leader_and_serves_it_at_the_leaders_index() {
    let mut cluster = Cluster::new(&[1, 2, 3], 21);
    cluster.elect(1);
    for _ in 0..5 {
        cluster.propose(1).expect("leader accepts");
    }
    cluster.deliver_all();
    let commit = cluster.server(1).committed();
    assert_eq!(commit, 7);

    assert!(cluster.read(2, 77));
    let forwarded: Vec<(NodeId, NodeId)> = cluster
        .in_flight
        .iter()
        .filter(|m| matches!(m.body, MessageBody::ReadIndex(ReadIndexRequest { context: 77 })))
        .map(|m| (m.from, m.to))
        .collect();
    assert_eq!(forwarded, [(2, 1)]);
    cluster.deliver_all();
    assert_eq!(cluster.reads_served, [(2, 77, commit)]);
}

/// Thesis §6.4 step 4 on a follower: the leader's answer may arrive before the
/// follower has the entries it names; the follower holds the read until it has applied
/// through that index, and serves it in the same `Ready` as those entries.
#[test]
fn a_forwarded_read_waits_for_the_follower_to_apply_the_leaders_index() {
    let mut follower = bootstrapped(test_config(2), &[1, 2, 3]);
    step(&mut follower, message(1, 2, 2, heartbeat(1)));
    follower.read_index(77).expect("forwarded");
    let ready = handle(&mut follower);
    let request = MessageBody::ReadIndex(ReadIndexRequest { context: 77 });
    assert_eq!(ready.messages, [message(2, 1, 2, request)]);

    let answer = MessageBody::ReadIndexResponse(ReadIndexResponse {
        context: 77,
        index: Some(3),
    });
    let ready = step(&mut follower, message(1, 2, 2, answer));
    assert!(
        ready.read_states.is_empty(),
        "served before index 3 was even in the log"
    );

    let append = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![data_entry(2, 2), data_entry(3, 2)],
        leader_commit: 3,
    };
    let ready = step(&mut follower, message(1, 2, 2, MessageBody::Append(append)));
    assert_eq!(
        ready
            .committed_entries
            .iter()
            .map(|e| e.index)
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(
        ready.read_states,
        [ReadState {
            context: 77,
            index: 3
        }]
    );
}

/// The crate's bound on waiting reads (`max_pending_reads`): a leader refuses a local
/// read with `TooManyPendingReads` and a forwarded one with an empty answer once that
/// many wait; a follower bounds its forwarded reads the same way. Confirmed or
/// answered reads free their places.
#[test]
fn pending_reads_are_bounded_on_leaders_and_followers() {
    let config = Config {
        max_pending_reads: 3,
        ..test_config(1)
    };
    let mut leader = established_leader(config, &[1, 2, 3]);
    for context in 1..=3 {
        leader.read_index(context).expect("room left");
    }
    assert_eq!(leader.read_index(4), Err(ProposalError::TooManyPendingReads));
    let forwarded = MessageBody::ReadIndex(ReadIndexRequest { context: 5 });
    leader.step(message(3, 1, 2, forwarded)).expect("valid");
    let ready = handle(&mut leader);
    let refusal = ReadIndexResponse {
        context: 5,
        index: None,
    };
    assert_eq!(read_index_responses(&ready), [(3, refusal)]);
    let round = read_round_sent(&ready).expect("round sent");
    let ready = ack_heartbeat(&mut leader, 2, round);
    assert_eq!(ready.read_states.len(), 3);
    leader.read_index(4).expect("room again once confirmed");

    let config = Config {
        max_pending_reads: 2,
        ..test_config(2)
    };
    let mut follower = bootstrapped(config, &[1, 2, 3]);
    step(&mut follower, message(1, 2, 2, heartbeat(1)));
    follower.read_index(1).expect("room left");
    follower.read_index(2).expect("room left");
    assert_eq!(follower.read_index(3), Err(ProposalError::TooManyPendingReads));
    handle(&mut follower);
    // Reads 1 and 2 left as one batch, named by its first read: one answer frees both.
    let answer = MessageBody::ReadIndexResponse(ReadIndexResponse {
        context: 1,
        index: Some(1),
    });
    let ready = step(&mut follower, message(1, 2, 2, answer));
    assert_eq!(
        ready.read_states,
        [
            ReadState { context: 1, index: 1 },
            ReadState { context: 2, index: 1 }
        ]
    );
    follower.read_index(3).expect("room again once answered");
}

/// Thesis §6.4.1 with etcd's batching: the reads a follower is asked between two
/// `Ready`s leave as one ReadIndex request, and the leader's one answer serves them all
/// (each was asked before the request left). Reads asked after it go in the next batch,
/// whose answer alone serves them.
#[test]
fn a_followers_reads_between_two_readies_are_forwarded_as_one_request() {
    let mut follower = bootstrapped(test_config(2), &[1, 2, 3]);
    step(&mut follower, message(1, 2, 2, heartbeat(1)));
    for context in [10, 11, 12] {
        follower.read_index(context).expect("room left");
    }
    let ready = handle(&mut follower);
    let requests: Vec<u64> = ready
        .messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::ReadIndex(request) => Some(request.context),
            _ => None,
        })
        .collect();
    assert_eq!(requests, [10], "one request for the three reads");
    follower.read_index(13).expect("room left");
    let ready = handle(&mut follower);
    assert!(ready
        .messages
        .iter()
        .any(|m| m.body == MessageBody::ReadIndex(ReadIndexRequest { context: 13 })));
    let answer = |context| {
        MessageBody::ReadIndexResponse(ReadIndexResponse {
            context,
            index: Some(1),
        })
    };
    let ready = step(&mut follower, message(1, 2, 2, answer(13)));
    assert_eq!(
        ready.read_states,
        [ReadState {
            context: 13,
            index: 1
        }]
    );
    let ready = step(&mut follower, message(1, 2, 2, answer(10)));
    let served: Vec<u64> = ready.read_states.iter().map(|read| read.context).collect();
    assert_eq!(served, [10, 11, 12]);
}

fn without_check_quorum(id: NodeId) -> Config {
    Config {
        check_quorum: false,
        ..test_config(id)
    }
}

/// Runs the minority-leader scenario: five servers, leader 1 and follower 2 cut off
/// from 3, 4 and 5. Reads issued on both sides of the minority never get served while
/// the majority elects a leader and commits writes; once healed, they are dropped.
/// Returns the role server 1 had at the end of the partition.
fn minority_leader_serves_no_read(make_config: fn(NodeId) -> Config) -> Role {
    let mut cluster = Cluster::with_config(&[1, 2, 3, 4, 5], 8, make_config);
    cluster.elect(1);
    let old_term = cluster.server(1).term();
    cluster.partition(&[1, 2]);
    assert!(cluster.read(1, 100));
    assert!(cluster.read(2, 101));
    let mut majority_write = None;
    for _ in 0..200 {
        cluster.run_rounds(1);
        if let Some(new_leader) = cluster.leader().filter(|&id| id > 2) {
            if majority_write.is_none() {
                majority_write = cluster.propose(new_leader);
            }
        }
        let served: Vec<_> = cluster
            .reads_served
            .iter()
            .filter(|(id, _, _)| *id <= 2)
            .collect();
        assert!(served.is_empty(), "the minority served a read: {served:?}");
    }
    let role_while_cut_off = cluster.server(1).role();
    let new_leader = cluster.leader().expect("the majority elected a leader");
    assert!(new_leader > 2 && cluster.server(new_leader).term() > old_term);
    let write = majority_write.expect("the majority accepted a write");
    let (index, _) = cluster.proposed[&write];
    assert!(
        cluster.server(new_leader).committed() >= index,
        "the majority committed its write"
    );

    cluster.heal();
    cluster.run_rounds(50);
    let mut dropped = cluster.reads_dropped.clone();
    dropped.sort_unstable();
    assert_eq!(dropped, [(1, 100), (2, 101)]);
    assert!(cluster.reads_served.is_empty());
    role_while_cut_off
}

/// Thesis §6.4 (and §6.2): a leader cut off in a minority cannot gather a majority for
/// any heartbeat round, so it never serves a read, its own or forwarded, while the
/// majority moves on; with check-quorum it steps down and drops them.
#[test]
fn a_partitioned_minority_leader_never_serves_a_read() {
    let role_while_cut_off = minority_leader_serves_no_read(test_config);
    assert_ne!(role_while_cut_off, Role::Leader, "check-quorum made it step down");
}

/// Thesis §6.4: ReadIndex is safe without relying on check-quorum; without it, the
/// cut-off leader keeps believing it leads, yet never serves a read.
#[test]
fn a_minority_leader_serves_no_read_even_without_check_quorum() {
    let role_while_cut_off = minority_leader_serves_no_read(without_check_quorum);
    assert_eq!(
        role_while_cut_off,
        Role::Leader,
        "it should still believe it leads"
    );
}
