//! Lease reads (thesis §6.4.1, `Config::lease_reads`): once a quorum acknowledged a
//! heartbeat, the leader serves reads at its commit index without a round of their own
//! until `read_lease_ticks` after that heartbeat left; a transfer ends the lease, and a
//! voter just started ignores candidates as if it still heard a leader.

use raft::{Config, MessageBody, NodeId, Raft, ReadState, Ready, Role, VoteRequest};

use crate::harness::single::{
    ack_append, ack_heartbeat, bootstrapped, handle, message, read_round_sent, restarted, step, win_election,
};
use crate::harness::test_config;

fn lease_config(id: NodeId) -> Config {
    Config {
        lease_reads: true,
        ..test_config(id)
    }
}

/// Server 1 leads term 2 of {1, 2, 3} with its no-op committed; no heartbeat round
/// acknowledged yet.
fn established_leader() -> Raft {
    let mut leader = bootstrapped(lease_config(1), &[1, 2, 3]);
    win_election(&mut leader);
    ack_append(&mut leader, 2, 2);
    assert_eq!(leader.committed(), 2);
    leader
}

/// Ticks the leader until a heartbeat leaves; returns the round it carries.
fn tick_until_heartbeat(leader: &mut Raft) -> u64 {
    loop {
        leader.tick();
        let ready = handle(leader);
        if let Some(round) = read_round_sent(&ready) {
            return round;
        }
    }
}

/// A read asked now: its `ReadState` if it came out at once, with no round of its own.
fn read_at_once(leader: &mut Raft, context: u64) -> Option<ReadState> {
    leader.read_index(context).expect("a leader takes reads");
    let ready = handle(leader);
    ready.read_states.first().copied()
}

#[test]
fn a_leader_whose_heartbeat_a_quorum_acknowledged_reads_without_a_round() {
    let mut leader = established_leader();
    assert_eq!(
        read_at_once(&mut leader, 1),
        None,
        "no lease before a round is acknowledged"
    );
    let round = tick_until_heartbeat(&mut leader);
    ack_heartbeat(&mut leader, 2, round);
    let commit = leader.committed();
    assert_eq!(
        read_at_once(&mut leader, 2),
        Some(ReadState {
            context: 2,
            index: commit
        })
    );
}

#[test]
fn the_lease_ends_read_lease_ticks_after_its_heartbeat_left() {
    let mut leader = established_leader();
    let lease_ticks = lease_config(1).read_lease_ticks();
    assert!(lease_ticks > 0 && lease_ticks < lease_config(1).election_timeout_ticks_min);
    let round = tick_until_heartbeat(&mut leader);
    ack_heartbeat(&mut leader, 2, round);
    // Later heartbeats go unanswered; ticks pass up to the end of the lease.
    for tick in 1..lease_ticks {
        leader.tick();
        handle(&mut leader);
        assert!(
            read_at_once(&mut leader, u64::from(tick) + 10).is_some(),
            "the lease holds {tick} ticks after its heartbeat"
        );
    }
    leader.tick();
    handle(&mut leader);
    assert_eq!(read_at_once(&mut leader, 99), None, "the lease ran out");
    assert_eq!(leader.role(), Role::Leader, "still leader, only without a lease");
}

#[test]
fn a_transfer_ends_the_lease_for_the_rest_of_the_term() {
    let mut leader = established_leader();
    let round = tick_until_heartbeat(&mut leader);
    ack_heartbeat(&mut leader, 2, round);
    assert!(read_at_once(&mut leader, 1).is_some());
    // 2 holds the whole log: TimeoutNow leaves at once.
    leader.transfer_leader(2).expect("a voter");
    let ready = handle(&mut leader);
    assert!(ready.messages.iter().any(|m| m.body == MessageBody::TimeoutNow));
    assert_eq!(
        read_at_once(&mut leader, 2),
        None,
        "no lease read after TimeoutNow"
    );
    // The transfer gives up; later acknowledged rounds still give no lease this term.
    for _ in 0..lease_config(1).election_timeout_ticks_min {
        leader.tick();
        handle(&mut leader);
    }
    let round = tick_until_heartbeat(&mut leader);
    ack_heartbeat(&mut leader, 2, round);
    assert_eq!(read_at_once(&mut leader, 3), None);
}

/// A voter that acknowledged a heartbeat and restarted at once must not elect another
/// leader while that heartbeat's lease runs: for `election_timeout_ticks_min` ticks after
/// it starts it ignores vote requests (not a transfer's), as if it heard a leader.
#[test]
fn a_restarted_voter_ignores_candidates_for_an_election_timeout() {
    let config = lease_config(2);
    let quiet_ticks = config.election_timeout_ticks_min;
    let entries = vec![crate::harness::single::config_entry(&[1, 2, 3])];
    let mut voter = restarted(config, 2, entries, 1);
    let request = VoteRequest {
        last_log_index: 5,
        last_log_term: 2,
        leadership_transfer: false,
    };
    let vote_granted = |ready: &Ready| {
        ready.messages.iter().any(|m| {
            matches!(m.body, MessageBody::PreVoteResponse(response) | MessageBody::VoteResponse(response) if response.granted)
        })
    };
    for _ in 1..quiet_ticks {
        voter.tick();
        handle(&mut voter);
        let ready = step(&mut voter, message(3, 2, 3, MessageBody::PreVote(request)));
        assert!(!vote_granted(&ready), "granted a pre-vote while quiet");
        assert_eq!(voter.term(), 2);
    }
    voter.tick();
    handle(&mut voter);
    let ready = step(&mut voter, message(3, 2, 3, MessageBody::PreVote(request)));
    assert!(vote_granted(&ready), "quiet period over");

    // Without lease reads, a restarted voter votes at once (as before).
    let entries = vec![crate::harness::single::config_entry(&[1, 2, 3])];
    let mut plain = restarted(test_config(2), 2, entries, 1);
    let ready = step(&mut plain, message(3, 2, 3, MessageBody::PreVote(request)));
    assert!(vote_granted(&ready));
}

#[test]
fn lease_reads_need_check_quorum_and_room_for_a_lease() {
    let no_check_quorum = Config {
        check_quorum: false,
        ..lease_config(1)
    };
    assert!(no_check_quorum.validate().is_err());
    let tiny = Config {
        election_timeout_ticks_min: 2,
        election_timeout_ticks_max: 4,
        heartbeat_interval_ticks: 1,
        ..lease_config(1)
    };
    assert!(tiny.validate().is_err());
    assert!(lease_config(1).validate().is_ok());
}
