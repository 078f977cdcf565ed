//! Leadership transfer (thesis §3.10): the leader stops accepting client requests,
//! brings the target's log up to date, and sends it TimeoutNow; the target starts an
//! election at once, which it wins because its log is complete. If the transfer does
//! not complete within an election timeout, the leader resumes accepting requests.

use raft::{ConfChange, Message, MessageBody, NodeId, ProposalError, Role, VoteRequest, VoteResponse};

use crate::harness::Cluster;

fn is_timeout_now(message: &Message, from: NodeId, to: NodeId) -> bool {
    message.from == from && message.to == to && message.body == MessageBody::TimeoutNow
}

/// Calls `transfer_leader` on `leader` and hands its output to the bus.
fn transfer(cluster: &mut Cluster, leader: NodeId, target: NodeId) -> Result<(), ProposalError> {
    let result = cluster.server_mut(leader).transfer_leader(target);
    cluster.process_ready(leader);
    cluster.checker.observe(&cluster.servers);
    result
}

fn propose_raw(cluster: &mut Cluster, id: NodeId) -> Result<u64, ProposalError> {
    let result = cluster.server_mut(id).propose(vec![0xAB; 8]).map(|p| p.index);
    cluster.process_ready(id);
    result
}

/// A three-server cluster led by 1 in term 2 with every log complete.
fn settled_cluster(seed: u64) -> Cluster {
    let mut cluster = Cluster::new(&[1, 2, 3], seed);
    cluster.elect(1);
    for _ in 0..3 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    let last = cluster.server(1).log().last_index();
    for id in [2, 3] {
        assert_eq!(cluster.server(id).log().last_index(), last);
        assert_eq!(cluster.match_index_of(1, id), last);
    }
    cluster
}

/// Thesis §3.10 step 2: a target whose log is already complete is sent TimeoutNow at
/// once and wins the election in the next term by message exchange alone: not a single
/// tick (no election timeout, no pre-vote round) is needed.
#[test]
fn transfer_to_an_up_to_date_follower_elects_it_in_the_next_term_without_any_tick() {
    let mut cluster = settled_cluster(21);
    let term = cluster.server(1).term();
    let last = cluster.server(1).log().last_index();

    transfer(&mut cluster, 1, 2).expect("2 is a voter");
    assert!(
        cluster
            .in_flight
            .iter()
            .any(|m| is_timeout_now(m, 1, 2) && m.term == term),
        "TimeoutNow goes out with the transfer call"
    );
    let sent = cluster.deliver_recording();

    let new_leader = cluster.server(2);
    assert_eq!(new_leader.role(), Role::Leader);
    assert_eq!(new_leader.term(), term + 1);
    assert_eq!(new_leader.log().term(last + 1), Some(term + 1), "its no-op");
    assert_eq!(new_leader.committed(), last + 1);
    for id in [1, 3] {
        let follower = cluster.server(id);
        assert_eq!(
            (follower.role(), follower.term(), follower.leader()),
            (Role::Follower, term + 1, Some(2))
        );
    }
    assert!(
        !sent.iter().any(|m| matches!(m.body, MessageBody::PreVote(_))),
        "no pre-vote round"
    );
    let votes: Vec<&Message> = sent
        .iter()
        .filter(|m| matches!(m.body, MessageBody::Vote(_)))
        .collect();
    assert_eq!(votes.len(), 2);
    for vote in votes {
        assert_eq!((vote.from, vote.term), (2, term + 1));
    }
    assert_eq!(
        sent.iter().filter(|m| m.body == MessageBody::TimeoutNow).count(),
        1
    );
}

/// Thesis §3.10 step 2: "the prior leader ... transfers its log entries to the target
/// server" first; TimeoutNow leaves only once the target's match index equals the
/// leader's last index, so the target can win the election.
#[test]
fn a_lagging_target_is_caught_up_before_timeout_now_is_sent() {
    let mut cluster = settled_cluster(22);
    let term = cluster.server(1).term();
    cluster.cut_links.extend([(1, 2), (2, 1)]);
    for _ in 0..3 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    cluster.heal();
    let last = cluster.server(1).log().last_index();
    assert_eq!(cluster.server(1).committed(), last, "1 and 3 commit");
    assert!(cluster.match_index_of(1, 2) < last);

    transfer(&mut cluster, 1, 2).expect("2 is a voter");
    assert!(
        !cluster
            .in_flight
            .iter()
            .any(|m| m.body == MessageBody::TimeoutNow),
        "2 lags: no TimeoutNow yet"
    );

    let mut timeout_now_at_match = None;
    let mut entries_sent_to_2 = 0;
    for _ in 0..10_000 {
        let Some(next) = cluster.in_flight.first().cloned() else {
            break;
        };
        if let MessageBody::Append(append) = &next.body {
            if next.to == 2 {
                entries_sent_to_2 += append.entries.len();
            }
        }
        cluster.deliver(0);
        if timeout_now_at_match.is_none() && cluster.in_flight.iter().any(|m| is_timeout_now(m, 1, 2)) {
            assert_eq!(cluster.server(1).role(), Role::Leader);
            timeout_now_at_match = Some((cluster.match_index_of(1, 2), cluster.server(1).log().last_index()));
        }
    }
    assert_eq!(
        timeout_now_at_match,
        Some((last, last)),
        "TimeoutNow only once 2 matches the last index"
    );
    assert!(entries_sent_to_2 >= 3, "the missing entries were sent first");
    let new_leader = cluster.server(2);
    assert_eq!((new_leader.role(), new_leader.term()), (Role::Leader, term + 1));
    assert_eq!(new_leader.log().term(last), cluster.server(1).log().term(last));
}

/// Thesis §3.10 step 1: "the prior leader stops accepting new client requests" while
/// the transfer is in flight; once it completes, the old leader redirects to the new.
#[test]
fn proposals_are_refused_while_a_transfer_is_in_flight() {
    let mut cluster = settled_cluster(23);
    cluster.cut_links.extend([(1, 2), (2, 1)]);
    cluster.propose(1).expect("leader accepts");
    cluster.deliver_all();
    cluster.heal();

    transfer(&mut cluster, 1, 2).expect("2 is a voter");
    let last = cluster.server(1).log().last_index();
    let mut refusals = 0;
    while !cluster.in_flight.is_empty() {
        if cluster.server(1).role() == Role::Leader {
            assert_eq!(
                propose_raw(&mut cluster, 1),
                Err(ProposalError::TransferInProgress)
            );
            let change = cluster.server_mut(1).propose_conf_change(ConfChange::Remove(3));
            assert_eq!(change, Err(ProposalError::TransferInProgress));
            assert_eq!(
                transfer(&mut cluster, 1, 2),
                Ok(()),
                "repeating the transfer is harmless"
            );
            assert_eq!(cluster.server(1).log().last_index(), last, "nothing was appended");
            refusals += 1;
        }
        cluster.deliver(0);
    }
    assert!(refusals >= 3, "the transfer took several steps ({refusals})");
    assert_eq!(
        propose_raw(&mut cluster, 1),
        Err(ProposalError::NotLeader { leader: Some(2) })
    );
    assert_eq!(cluster.server(2).role(), Role::Leader);
    assert!(propose_raw(&mut cluster, 2).is_ok());
}

/// Thesis §3.10: "if the transfer does not complete after about an election timeout,
/// the prior leader aborts the transfer and resumes accepting client requests".
#[test]
fn a_transfer_to_an_unreachable_target_is_abandoned_after_an_election_timeout() {
    let mut cluster = settled_cluster(24);
    let term = cluster.server(1).term();
    let election_timeout = cluster.server(1).config().election_timeout_ticks_min;
    cluster.cut_links.extend([(1, 2), (2, 1)]);

    transfer(&mut cluster, 1, 2).expect("2 is a voter");
    for tick in 1..election_timeout {
        cluster.tick(1);
        cluster.deliver_all();
        assert_eq!(
            propose_raw(&mut cluster, 1),
            Err(ProposalError::TransferInProgress),
            "tick {tick}"
        );
    }
    cluster.tick(1);
    cluster.deliver_all();
    let index = propose_raw(&mut cluster, 1).expect("transfer abandoned: proposals accepted again");
    cluster.deliver_all();

    let leader = cluster.server(1);
    assert_eq!(
        (leader.role(), leader.term()),
        (Role::Leader, term),
        "still leading the same term"
    );
    assert_eq!(leader.committed(), index, "committed with 3");
    assert_eq!(cluster.server(2).term(), term, "2 never got TimeoutNow");
    assert_eq!(cluster.server(2).role(), Role::Follower);
}

/// Thesis §3.10: leadership goes to another *voting* member; the leader itself, a
/// learner (thesis §4.2.1: it cannot be elected) or a stranger are refused, and a
/// follower cannot transfer what it does not hold.
#[test]
fn transfer_to_self_a_learner_or_a_non_member_is_an_invalid_target() {
    let mut cluster = settled_cluster(25);
    cluster.start_joining(4);
    cluster
        .server_mut(1)
        .propose_conf_change(ConfChange::AddLearner(4))
        .expect("valid change");
    cluster.process_ready(1);
    cluster.run_rounds(5);
    assert!(cluster.server(1).conf_state().learners.contains(&4));

    for target in [1, 4, 9] {
        assert_eq!(
            transfer(&mut cluster, 1, target),
            Err(ProposalError::InvalidTransferTarget(target))
        );
        assert!(
            propose_raw(&mut cluster, 1).is_ok(),
            "no transfer started for {target}"
        );
    }
    assert_eq!(
        transfer(&mut cluster, 2, 3),
        Err(ProposalError::NotLeader { leader: Some(1) })
    );
    assert_eq!(cluster.server(1).role(), Role::Leader);
}

/// Thesis §3.10 and §4.2.3: voters that still hear from a leader disregard vote
/// requests (check-quorum leases), except a transfer target's, which carries
/// `leadership_transfer`; without that flag the transfer could never succeed.
#[test]
fn the_targets_vote_request_is_granted_by_voters_still_in_their_leader_lease() {
    let mut cluster = settled_cluster(26);
    let term = cluster.server(1).term();
    assert!(cluster.server(3).config().check_quorum);
    assert_eq!(cluster.server(3).leader(), Some(1), "3 hears from its leader");
    // 2 can only win with 3's vote.
    cluster.cut_links.insert((2, 1));

    transfer(&mut cluster, 1, 2).expect("2 is a voter");
    let mut budget = 1_000;
    let position = loop {
        let found = cluster.in_flight.iter().position(|m| m.from == 2 && m.to == 3);
        if let Some(position) = found {
            break position;
        }
        budget -= 1;
        assert!(
            budget > 0 && !cluster.in_flight.is_empty(),
            "2 never asked 3 for its vote"
        );
        cluster.deliver(0);
    };
    let vote = cluster.in_flight[position].clone();
    let MessageBody::Vote(request) = vote.body else {
        panic!("expected a Vote, got {vote:?}")
    };
    assert!(request.leadership_transfer);
    assert_eq!(vote.term, term + 1);

    // The same request without the flag is ignored by a voter in its lease.
    let forged = Message {
        body: MessageBody::Vote(VoteRequest {
            leadership_transfer: false,
            ..request
        }),
        ..vote.clone()
    };
    cluster.server_mut(3).step(forged).expect("well-formed");
    cluster.process_ready(3);
    assert_eq!(
        (cluster.server(3).term(), cluster.server(3).leader()),
        (term, Some(1)),
        "ignored"
    );
    assert!(!cluster.in_flight.iter().any(|m| m.from == 3 && m.to == 2));

    cluster.deliver(position);
    let granted = Message {
        from: 3,
        to: 2,
        term: term + 1,
        body: MessageBody::VoteResponse(VoteResponse { granted: true }),
    };
    assert!(
        cluster.in_flight.contains(&granted),
        "3 grants the transfer's vote"
    );
    assert_eq!(cluster.server(3).vote(), Some(2));
    cluster.deliver_all();
    assert_eq!(
        (cluster.server(2).role(), cluster.server(2).term()),
        (Role::Leader, term + 1)
    );
    assert_eq!(cluster.server(3).leader(), Some(2));
}
