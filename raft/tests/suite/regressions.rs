//! Regressions for bugs found in review, each pinned by the scenario that exposed it.

use raft::{
    AppendRequest, AppendResponse, ConfState, Entry, EntryPayload, Message, MessageBody, Raft, Role,
    SnapshotChunk, SnapshotMeta,
};

use crate::harness::single::{bootstrapped, heartbeat, message};
use crate::harness::{test_config, Cluster};

/// Thesis §5.3: one chunk in flight. When a round trip outlasts the heartbeat interval,
/// heartbeat resends and duplicate responses used to start a new chunk stream each time,
/// sending chunks quadratic in the snapshot size.
#[test]
fn a_slow_link_does_not_multiply_snapshot_chunks() {
    let mut cluster = Cluster::new(&[1, 2, 3], 5);
    cluster.elect(1);
    cluster.crash(3);
    for _ in 0..120 {
        cluster.propose(1);
        cluster.deliver_all();
    }
    assert!(cluster.compact(1));
    let snapshot_bytes = cluster.server(1).snapshot().expect("compacted").total_bytes as usize;
    let chunks = snapshot_bytes.div_ceil(test_config(1).snapshot_chunk_bytes);
    assert!(chunks >= 10, "the snapshot spans many chunks ({chunks})");
    cluster.restart(3);
    let mut chunks_sent = 0;
    for _ in 0..2_000 {
        // One hop per tick: a round trip takes two ticks, a whole heartbeat interval.
        cluster.tick_all();
        chunks_sent += cluster
            .deliver_hop()
            .iter()
            .filter(|message| matches!(message.body, MessageBody::InstallSnapshot(_)))
            .count();
        if cluster.machines[&3].applied >= cluster.server(1).snapshot().expect("kept").meta.index {
            break;
        }
    }
    assert!(cluster.machines[&3].applied > 0, "the snapshot was installed");
    assert!(
        chunks_sent <= 2 * chunks,
        "{chunks_sent} chunks sent for a {chunks}-chunk snapshot"
    );
}

/// Thesis §6.4: every read comes back served or dropped. A read forwarded to a leader
/// that moved on to a later term is never answered; it must be dropped, even when the
/// same server leads again.
#[test]
fn a_forwarded_read_is_dropped_when_the_term_moves_on() {
    let mut cluster = Cluster::new(&[1, 2, 3], 9);
    cluster.elect(1);
    assert!(cluster.read(3, 77));
    cluster.in_flight.clear();
    let later_term = cluster.server(3).term() + 2;
    let heartbeat = message(1, 3, later_term, heartbeat(0));
    cluster.server_mut(3).step(heartbeat).expect("valid heartbeat");
    cluster.process_ready(3);
    assert_eq!(cluster.server(3).leader(), Some(1));
    assert!(
        cluster.reads_dropped.contains(&(3, 77)),
        "the lost read was reported dropped"
    );
}

/// Peer input never panics: indexes near `u64::MAX` are refused before any `+ 1`.
#[test]
fn extreme_indexes_from_a_peer_are_refused_not_overflowed() {
    let mut cluster = Cluster::new(&[1, 2, 3], 3);
    cluster.elect(1);
    let term = cluster.server(1).term();
    let rejection = Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::AppendResponse(AppendResponse::Rejected {
            rejected_prev_index: 1,
            hint_index: u64::MAX,
            hint_term: 0,
        }),
    };
    assert!(cluster.server_mut(1).step(rejection).is_err());
    let mut follower = Raft::bootstrap(test_config(2), ConfState::with_voters([1, 2, 3])).expect("bootstrap");
    let chunk = Message {
        from: 1,
        to: 2,
        term: 5,
        body: MessageBody::InstallSnapshot(SnapshotChunk {
            meta: SnapshotMeta {
                index: u64::MAX,
                term: 5,
                conf_state: ConfState::with_voters([1, 2, 3]),
            },
            total_bytes: 0,
            offset: 0,
            data_bytes_max: 64,
            data: Vec::new(),
        }),
    };
    assert!(follower.step(chunk).is_err());
    assert_eq!(follower.log().last_index(), 1, "nothing changed");
}

/// Paper §5.2, election safety: a follower that knows the leader of its term refuses a
/// second claimant of that term instead of tripping its own invariant.
#[test]
fn a_second_leader_in_the_same_term_is_refused() {
    let mut cluster = Cluster::new(&[1, 2, 3], 4);
    cluster.elect(1);
    let term = cluster.server(2).term();
    let impostor = message(3, 2, term, heartbeat(0));
    assert!(cluster.server_mut(2).step(impostor).is_err());
    assert_eq!(cluster.server(2).leader(), Some(1));
}

/// Thesis §6.4: every read comes back served or dropped. A forwarded read whose request
/// or answer was lost on the wire, with the leader unchanged, used to wait forever; it
/// is dropped after an election timeout so the client retries.
#[test]
fn a_lost_forwarded_read_is_dropped_after_an_election_timeout() {
    let mut cluster = Cluster::new(&[1, 2, 3], 12);
    cluster.elect(1);
    assert!(cluster.read(3, 55));
    cluster.in_flight.clear();
    let timeout_ticks = test_config(3).election_timeout_ticks_max as usize;
    for _ in 0..timeout_ticks - 1 {
        cluster.run_rounds(1);
        assert!(
            !cluster.reads_dropped.contains(&(3, 55)),
            "dropped before its timeout"
        );
    }
    cluster.run_rounds(1);
    assert_eq!(cluster.server(3).leader(), Some(1), "the leader never changed");
    assert!(
        cluster.reads_dropped.contains(&(3, 55)),
        "the lost read was reported dropped"
    );
}

/// Found by the raft_step fuzz target: an `Append` carrying a configuration no server
/// could make (node 2 both voter and learner) passed `validate`, became the follower's
/// configuration and broke its invariants. It is malformed now, and changes nothing.
#[test]
fn an_append_with_a_malformed_configuration_is_refused() {
    let mut follower = bootstrapped(test_config(1), &[1, 2, 3]);
    let mut impossible = ConfState::with_voters([2]);
    impossible.learners.insert(2);
    let append = MessageBody::Append(AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![Entry {
            index: 2,
            term: 2,
            payload: EntryPayload::Config(impossible),
        }],
        leader_commit: 1,
    });
    let refused = follower.step(message(2, 1, 2, append)).expect_err("malformed");
    assert!(
        refused.reason.contains("malformed configuration"),
        "{}",
        refused.reason
    );
    assert_eq!(follower.term(), 1, "a refused message changes nothing");
}

/// Found by the raft_step fuzz target: a pre-vote (like a check-quorum step-down) clears
/// `leader` without a new term, after which any node's heartbeat of that same term was
/// taken as its leader's: two leaders in one term on one server. One leader per term
/// (§5.2) is now remembered for the whole term, and a second claimant is refused.
#[test]
fn a_second_leader_of_the_same_term_is_refused_after_a_pre_vote() {
    let mut cluster = Cluster::new(&[1, 2, 3], 7);
    cluster.elect(1);
    cluster.in_flight.clear();
    let term = cluster.server(3).term();
    assert_eq!(cluster.server(3).leader(), Some(1));
    // Node 3 hears nothing until its election timeout: it becomes a pre-candidate of the
    // same term and forgets its leader.
    for _ in 0..200 {
        cluster.tick(3);
        if cluster.server(3).role() == Role::PreCandidate {
            break;
        }
    }
    assert_eq!(cluster.server(3).role(), Role::PreCandidate);
    assert_eq!(cluster.server(3).term(), term);
    let forged = message(2, 3, term, heartbeat(0));
    let refused = cluster
        .server_mut(3)
        .step(forged)
        .expect_err("node 1 leads this term");
    assert!(
        refused.reason.contains("one leader per term"),
        "{}",
        refused.reason
    );
    // The real leader is still followed.
    cluster
        .server_mut(3)
        .step(message(1, 3, term, heartbeat(0)))
        .expect("the leader's heartbeat");
    assert_eq!(cluster.server(3).leader(), Some(1));
}
