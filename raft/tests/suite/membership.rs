//! Membership changes one server at a time (thesis §4.1), learners that catch up before
//! they vote (thesis §4.2.1), and removing the leader (thesis §4.2.2).

use std::collections::BTreeSet;

use raft::{
    ConfChange, ConfState, EntryPayload, Message, MessageBody, NodeId, Proposal, ProposalError, Role,
    VoteResponse,
};

use crate::harness::single::is_vote_request;
use crate::harness::Cluster;

/// Proposes `change` on `id` and hands its output to the bus (nothing is delivered).
fn change(cluster: &mut Cluster, id: NodeId, change: ConfChange) -> Result<Proposal, ProposalError> {
    let result = cluster.server_mut(id).propose_conf_change(change);
    cluster.process_ready(id);
    cluster.checker.observe(&cluster.servers);
    result
}

fn conf(voters: &[NodeId], learners: &[NodeId]) -> ConfState {
    ConfState {
        voters: voters.iter().copied().collect(),
        learners: learners.iter().copied().collect(),
    }
}

fn cut_both_ways(cluster: &mut Cluster, a: NodeId, b: NodeId) {
    cluster.cut_links.extend([(a, b), (b, a)]);
}

/// A cluster of `voters` led by 1, which has committed an entry of its term and a few
/// values.
fn led_by_1(voters: &[NodeId], seed: u64) -> Cluster {
    let mut cluster = Cluster::new(voters, seed);
    cluster.elect(1);
    for _ in 0..3 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    let leader = cluster.server(1);
    assert_eq!(leader.committed(), leader.log().last_index());
    cluster
}

/// Thesis §4.2.1: a new server joins as a non-voting learner; the leader replicates to
/// it until it has the whole log, but it never campaigns, is never asked for a vote,
/// its vote counts for nothing, and its acknowledgements do not make entries committed.
#[test]
fn a_learner_catches_up_but_never_votes_nor_counts_towards_commitment() {
    let mut cluster = led_by_1(&[1, 2, 3], 31);
    cluster.start_joining(4);
    let added = change(&mut cluster, 1, ConfChange::AddLearner(4)).expect("valid change");
    cluster.run_rounds(5);

    let leader_last = cluster.server(1).log().last_index();
    let learner = cluster.server(4);
    assert_eq!(learner.conf_state(), &conf(&[1, 2, 3], &[4]));
    assert_eq!(learner.log().last_index(), leader_last);
    assert!(learner.committed() >= added.index);
    assert_eq!(
        cluster.machines[&4], cluster.machines[&1],
        "the learner applies the same log"
    );
    assert_eq!(cluster.match_index_of(1, 4), leader_last);

    // Cut off from everyone for many election timeouts, it still never campaigns.
    let term = cluster.server(4).term();
    cluster.isolate(4);
    let mut sent = Vec::new();
    for _ in 0..100 {
        cluster.tick(4);
        sent.extend(cluster.deliver_recording());
    }
    assert_eq!(
        (cluster.server(4).role(), cluster.server(4).term()),
        (Role::Follower, term)
    );
    assert!(
        !sent.iter().any(|m| m.from == 4),
        "a learner sends nothing on its own: {sent:?}"
    );
    cluster.heal();
    cluster.run_rounds(3);

    // A voter cut off from 1 and 3 campaigns, but never asks the learner, and a grant
    // from the learner is not counted (with it, 2 would hold 2 of the 3 voters' votes).
    cut_both_ways(&mut cluster, 2, 1);
    cut_both_ways(&mut cluster, 2, 3);
    let mut sent = Vec::new();
    for _ in 0..30 {
        cluster.tick(2);
        sent.extend(cluster.deliver_recording());
        if cluster.server(2).role() == Role::PreCandidate {
            break;
        }
    }
    assert_eq!(cluster.server(2).role(), Role::PreCandidate);
    let requests: BTreeSet<NodeId> = sent.iter().filter(|m| is_vote_request(m)).map(|m| m.to).collect();
    assert_eq!(requests, BTreeSet::from([1, 3]), "only voters are asked");
    let grant = Message {
        from: 4,
        to: 2,
        term: cluster.server(2).term() + 1,
        body: MessageBody::PreVoteResponse(VoteResponse { granted: true }),
    };
    cluster.server_mut(2).step(grant).expect("well-formed");
    cluster.process_ready(2);
    assert_eq!(
        cluster.server(2).role(),
        Role::PreCandidate,
        "the learner's grant does not count"
    );
    cluster.heal();
    cluster.run_rounds(30);
    let leader = cluster.leader().expect("a leader");
    assert!([1, 2, 3].contains(&leader));

    // The leader with only the learner reachable: the learner acknowledges, nothing commits.
    for voter in [1, 2, 3].into_iter().filter(|&v| v != leader) {
        cut_both_ways(&mut cluster, leader, voter);
    }
    let committed = cluster.server(leader).committed();
    let value = cluster.propose(leader).expect("leader accepts");
    cluster.deliver_all();
    let (index, _) = cluster.proposed[&value];
    assert_eq!(
        cluster.match_index_of(leader, 4),
        index,
        "the learner stored the entry"
    );
    assert_eq!(
        cluster.server(leader).committed(),
        committed,
        "a learner's copy does not commit"
    );
    cluster.converge(200);
}

/// Thesis §4.2.1: a learner becomes a voter only once it has caught up; until then,
/// adding it to the quorum could leave the cluster unable to commit.
#[test]
fn a_learner_is_promoted_only_once_it_has_caught_up() {
    let mut cluster = led_by_1(&[1, 2, 3], 32);
    cluster.start_joining(4);
    cluster.cut_links.insert((1, 4));
    let added = change(&mut cluster, 1, ConfChange::AddLearner(4)).expect("valid change");
    cluster.deliver_all();
    let committed = cluster.server(1).committed();
    assert!(
        committed >= added.index,
        "the addition commits without the learner"
    );
    let last = cluster.server(1).log().last_index();

    assert_eq!(
        change(&mut cluster, 1, ConfChange::PromoteLearner(4)),
        Err(ProposalError::LearnerNotCaughtUp {
            learner: 4,
            match_index: 0,
            commit: committed
        })
    );
    assert_eq!(cluster.server(1).log().last_index(), last, "nothing appended");
    assert_eq!(cluster.server(1).conf_state(), &conf(&[1, 2, 3], &[4]));

    cluster.heal();
    for _ in 0..20 {
        if cluster.match_index_of(1, 4) >= cluster.server(1).committed() {
            break;
        }
        cluster.tick(1);
        cluster.deliver_all();
    }
    assert_eq!(cluster.match_index_of(1, 4), cluster.server(1).committed());
    let promoted = change(&mut cluster, 1, ConfChange::PromoteLearner(4)).expect("caught up");
    assert_eq!(cluster.server(1).conf_state(), &conf(&[1, 2, 3, 4], &[]));
    cluster.deliver_all();
    for id in [1, 2, 3, 4] {
        assert_eq!(
            cluster.server(id).conf_state(),
            &conf(&[1, 2, 3, 4], &[]),
            "on {id}"
        );
        assert!(cluster.server(id).committed() >= promoted.index);
    }

    // Four voters need three: the leader and 2 are no longer enough.
    cluster.crash(3);
    cut_both_ways(&mut cluster, 1, 4);
    let before = cluster.server(1).committed();
    cluster.propose(1).expect("leader accepts");
    cluster.deliver_all();
    assert_eq!(
        cluster.server(1).committed(),
        before,
        "2 of 4 voters do not commit"
    );
    cluster.heal();
    cluster.converge(200);
}

/// Thesis §4.1: "the leader does not start another change until the previous one has
/// committed" (one change at a time keeps every pair of majorities overlapping).
#[test]
fn only_one_configuration_change_may_be_uncommitted_at_a_time() {
    let mut cluster = led_by_1(&[1, 2, 3], 33);
    cluster.start_joining(4);
    cluster.start_joining(5);
    let first = change(&mut cluster, 1, ConfChange::AddLearner(4)).expect("valid change");
    assert!(cluster.server(1).committed() < first.index);
    for second in [
        ConfChange::AddLearner(5),
        ConfChange::Remove(3),
        ConfChange::PromoteLearner(4),
    ] {
        assert_eq!(
            change(&mut cluster, 1, second),
            Err(ProposalError::ConfChangeInProgress),
            "{second:?}"
        );
    }
    assert_eq!(
        cluster.server(1).log().last_index(),
        first.index,
        "nothing else appended"
    );
    assert!(
        cluster.server_mut(1).propose(vec![0; 8]).is_ok(),
        "ordinary proposals still go through"
    );
    cluster.process_ready(1);

    cluster.deliver_all();
    assert!(cluster.server(1).committed() >= first.index);
    let second = change(&mut cluster, 1, ConfChange::AddLearner(5)).expect("the first change committed");
    cluster.run_rounds(5);
    assert!(cluster.server(5).committed() >= second.index);
    assert_eq!(cluster.server(5).conf_state(), &conf(&[1, 2, 3], &[4, 5]));
}

/// Thesis §4.1 (and Ongaro's 2015 raft-dev correction to single-server changes): a new
/// leader must commit an entry of its own term before it starts a change, so that a
/// change it inherits uncommitted cannot overlap with its own.
#[test]
fn a_new_leader_refuses_a_change_until_it_commits_an_entry_of_its_term() {
    let mut cluster = Cluster::new(&[1, 2, 3], 34);
    cluster.start_joining(4);
    let mut budget = 1_000;
    while cluster.server(1).role() != Role::Leader {
        budget -= 1;
        assert!(budget > 0, "1 never won");
        if cluster.in_flight.is_empty() {
            cluster.tick(1);
        } else {
            cluster.deliver(0);
        }
    }
    let leader = cluster.server(1);
    let term = leader.term();
    assert_eq!(
        leader.committed(),
        1,
        "only the bootstrap entry of term 1 is committed"
    );
    assert_eq!(leader.log().term(2), Some(term), "the no-op awaits replication");
    assert_eq!(
        change(&mut cluster, 1, ConfChange::AddLearner(4)),
        Err(ProposalError::ConfChangeInProgress)
    );
    assert_eq!(cluster.server(1).log().last_index(), 2);

    cluster.deliver_all();
    assert_eq!(cluster.server(1).committed(), 2);
    let added = change(&mut cluster, 1, ConfChange::AddLearner(4)).expect("an entry of term committed");
    assert_eq!(added, Proposal { index: 3, term });
}

/// Thesis §4.1: a configuration is used as soon as it is in the log, so removing a
/// voter makes the leader count a majority of the remaining voters at once: with two
/// of four voters down nothing commits, but the removal of one of them does (2 of 3),
/// and commits the waiting entry with it.
#[test]
fn removing_a_voter_shrinks_the_quorum_as_soon_as_the_leader_appends_it() {
    let mut cluster = led_by_1(&[1, 2, 3, 4], 35);
    cluster.crash(3);
    cluster.crash(4);
    let before = cluster.server(1).committed();
    let value = cluster.propose(1).expect("leader accepts");
    cluster.deliver_all();
    assert_eq!(
        cluster.server(1).committed(),
        before,
        "2 of 4 voters do not commit"
    );

    let removal = change(&mut cluster, 1, ConfChange::Remove(4)).expect("valid change");
    assert_eq!(
        cluster.server(1).conf_state(),
        &conf(&[1, 2, 3], &[]),
        "in force on append"
    );
    cluster.deliver_all();
    assert_eq!(
        cluster.server(1).committed(),
        removal.index,
        "2 of 3 voters commit"
    );
    assert!(cluster.proposed[&value].0 < removal.index);
    assert_eq!(cluster.server(2).conf_state(), &conf(&[1, 2, 3], &[]));
    let peers: Vec<NodeId> = cluster.server(1).status().progress.iter().map(|p| p.id).collect();
    assert_eq!(peers, vec![2, 3], "4 is no longer replicated to");
}

/// Thesis §4.1: after a three-server cluster removes one server, the remaining two form
/// the whole configuration: two of two commit, and both are needed.
#[test]
fn a_three_server_cluster_minus_one_commits_with_two_of_two() {
    let mut cluster = led_by_1(&[1, 2, 3], 36);
    let removal = change(&mut cluster, 1, ConfChange::Remove(3)).expect("valid change");
    cluster.deliver_all();
    assert!(cluster.server(1).committed() >= removal.index);
    cluster.crash(3);

    let value = cluster.propose(1).expect("leader accepts");
    cluster.deliver_all();
    let (index, _) = cluster.proposed[&value];
    assert_eq!(cluster.server(1).committed(), index, "1 and 2 of {{1, 2}} commit");
    assert_eq!(cluster.server(2).log().last_index(), index);

    cut_both_ways(&mut cluster, 1, 2);
    let value = cluster.propose(1).expect("leader accepts");
    cluster.deliver_all();
    assert_eq!(
        cluster.server(1).committed(),
        index,
        "without 2 there is no majority of {{1, 2}}"
    );
    cluster.heal();
    cluster.run_rounds(5);
    let (index, _) = cluster.proposed[&value];
    assert!(cluster.server(1).committed() >= index);
    assert_eq!(cluster.server(1).role(), Role::Leader);
}

/// Thesis §4.2.2: a leader removed from the configuration keeps managing the cluster
/// (replicating, but not counting itself) until the removal commits, then steps down;
/// the remaining voters then elect a leader among themselves.
#[test]
fn a_removed_leader_leads_until_its_removal_commits_then_steps_down() {
    let mut cluster = led_by_1(&[1, 2, 3], 37);
    let term = cluster.server(1).term();
    let value = cluster.propose(1).expect("leader accepts");
    let removal = change(&mut cluster, 1, ConfChange::Remove(1)).expect("valid change");
    assert_eq!(cluster.server(1).conf_state(), &conf(&[2, 3], &[]));
    assert_eq!(cluster.server(1).role(), Role::Leader);

    // 3 receives the value but not the removal: the value commits under {2, 3}, the
    // removal does not (the leader's own copy does not count), so 1 still leads.
    let carries_config = |m: &Message| match &m.body {
        MessageBody::Append(append) => append
            .entries
            .iter()
            .any(|e| matches!(e.payload, EntryPayload::Config(_))),
        _ => false,
    };
    let to_3 = cluster
        .in_flight
        .iter()
        .position(|m| m.to == 3 && matches!(m.body, MessageBody::Append(_)));
    assert!(
        !carries_config(&cluster.in_flight[to_3.expect("an append to 3")]),
        "the value goes first"
    );
    cluster.deliver(to_3.expect("checked"));
    let before = cluster.in_flight.len();
    cluster.in_flight.retain(|m| !(m.to == 3 && carries_config(m)));
    assert_eq!(
        cluster.in_flight.len(),
        before - 1,
        "one append to 3 carried the removal"
    );
    cluster.cut_links.insert((1, 3));
    cluster.deliver_all();
    let (value_index, _) = cluster.proposed[&value];
    assert_eq!(cluster.match_index_of(1, 2), removal.index);
    assert_eq!(cluster.match_index_of(1, 3), value_index);
    assert_eq!(
        cluster.server(1).committed(),
        value_index,
        "the value commits, the removal does not"
    );
    assert_eq!(
        cluster.server(1).role(),
        Role::Leader,
        "leads until the removal commits"
    );
    cluster.heal();

    let mut stepped_down_at = None;
    for _ in 0..20 {
        cluster.tick(1);
        for message in cluster.deliver_recording() {
            assert!(
                !(message.from == 1 && is_vote_request(&message)),
                "1 never campaigns"
            );
        }
        let raft = cluster.server(1);
        if raft.committed() < removal.index {
            assert_eq!(raft.role(), Role::Leader);
        } else if stepped_down_at.is_none() {
            assert_eq!(
                raft.role(),
                Role::Follower,
                "stepped down once the removal committed"
            );
            stepped_down_at = Some(raft.committed());
        }
    }
    assert!(
        stepped_down_at.is_some(),
        "the removal committed: {}",
        cluster.describe()
    );
    for id in [2, 3] {
        assert!(
            cluster.server(id).committed() >= removal.index,
            "{id} learned the commit"
        );
    }

    let mut new_leader = None;
    for _ in 0..100 {
        cluster.tick_all();
        for message in cluster.deliver_recording() {
            assert!(
                !(message.from == 1 && is_vote_request(&message)),
                "1 never campaigns"
            );
        }
        new_leader = cluster.leader().filter(|&id| cluster.server(id).term() > term);
        if new_leader.is_some() {
            break;
        }
    }
    let new_leader = new_leader.expect("2 and 3 elect a leader");
    assert!([2, 3].contains(&new_leader));
    assert_eq!(cluster.server(new_leader).conf_state(), &conf(&[2, 3], &[]));
    assert_ne!(cluster.server(1).role(), Role::Leader);
    let value = cluster.propose(new_leader).expect("new leader accepts");
    cluster.run_rounds(3);
    let (index, _) = cluster.proposed[&value];
    assert!(cluster.server(new_leader).committed() >= index);
}

/// Thesis §4.1: "a server always uses the latest configuration in its log, regardless
/// of whether the entry is committed"; so when a new leader overwrites an uncommitted
/// configuration entry, the follower must fall back to the previous configuration.
#[test]
fn a_configuration_entry_takes_effect_on_append_and_is_undone_when_truncated() {
    let mut cluster = led_by_1(&[1, 2, 3, 4, 5], 38);
    let term = cluster.server(1).term();
    let all = conf(&[1, 2, 3, 4, 5], &[]);
    // 1's appends reach only 2, and 2's answers are lost.
    for peer in [3, 4, 5] {
        cut_both_ways(&mut cluster, 1, peer);
    }
    cluster.cut_links.insert((2, 1));
    let removal = change(&mut cluster, 1, ConfChange::Remove(5)).expect("valid change");
    cluster.deliver_all();
    let shrunk = conf(&[1, 2, 3, 4], &[]);
    assert_eq!(cluster.server(2).log().term(removal.index), Some(term));
    assert_eq!(
        cluster.server(2).conf_state(),
        &shrunk,
        "in force on 2 as soon as appended"
    );
    assert!(cluster.server(2).committed() < removal.index);
    assert_eq!(cluster.server(3).conf_state(), &all);

    // 3, 4 and 5 elect a leader of a later term, which appends its own no-op there.
    cluster.partition(&[1, 2]);
    let mut new_leader = None;
    for _ in 0..200 {
        for id in [3, 4, 5] {
            cluster.tick(id);
        }
        cluster.deliver_all();
        new_leader = [3, 4, 5]
            .into_iter()
            .find(|&id| cluster.server(id).role() == Role::Leader);
        if new_leader.is_some() {
            break;
        }
    }
    let new_leader = new_leader.expect("3, 4 and 5 are a majority of five");
    let new_term = cluster.server(new_leader).term();
    assert!(new_term > term);
    let overwritten = cluster
        .server(new_leader)
        .log()
        .entry(removal.index)
        .cloned()
        .expect("no-op");
    assert_eq!(overwritten.term, new_term);
    assert_eq!(overwritten.payload, EntryPayload::Empty);

    // Once 2 hears from the new leader, the deposed leader's entry is truncated.
    cluster.heal();
    cluster.cut_links.extend([(1, 2), (2, 1)]);
    cluster.cut_links.extend([3, 4, 5].map(|peer| (1, peer)));
    cluster.cut_links.extend([3, 4, 5].map(|peer| (peer, 1)));
    for _ in 0..10 {
        cluster.tick(new_leader);
        cluster.deliver_all();
    }
    let follower = cluster.server(2);
    assert_eq!(
        follower.log().term(removal.index),
        Some(new_term),
        "entry overwritten"
    );
    assert_eq!(
        follower.conf_state(),
        &all,
        "the truncated configuration is undone"
    );
    assert_eq!(follower.leader(), Some(new_leader));
    assert_eq!(cluster.server(1).conf_state(), &shrunk, "1 has not heard yet");

    cluster.heal();
    let leader = cluster.converge(300);
    for id in [1, 2, 3, 4, 5] {
        assert_eq!(cluster.server(id).conf_state(), &all, "on {id}");
    }
    assert!(cluster.server(leader).conf_state().is_voter(5));
}

/// Thesis §4.1: a configuration needs at least one voter to elect a leader and commit;
/// the change that would remove the last one is refused.
#[test]
fn removing_the_last_voter_is_refused() {
    let mut cluster = Cluster::new(&[1], 39);
    cluster.elect(1);
    cluster.start_joining(2);
    change(&mut cluster, 1, ConfChange::AddLearner(2)).expect("valid change");
    cluster.run_rounds(3);
    assert_eq!(cluster.server(1).conf_state(), &conf(&[1], &[2]));
    let last = cluster.server(1).log().last_index();

    let refused = change(&mut cluster, 1, ConfChange::Remove(1));
    assert!(
        matches!(refused, Err(ProposalError::InvalidConfChange(_))),
        "{refused:?}"
    );
    assert_eq!(cluster.server(1).log().last_index(), last);
    assert_eq!(cluster.server(1).conf_state(), &conf(&[1], &[2]));
    assert_eq!(cluster.server(1).role(), Role::Leader);
    // Removing the learner is fine.
    change(&mut cluster, 1, ConfChange::Remove(2)).expect("a learner may go");
    assert_eq!(cluster.server(1).conf_state(), &conf(&[1], &[]));
}

/// Thesis §4.1: each change adds or removes exactly one server of the current
/// configuration; a change that makes no sense is refused without touching the log,
/// and does not block the next valid change.
#[test]
fn changes_that_do_not_fit_the_configuration_are_invalid() {
    let mut cluster = led_by_1(&[1, 2, 3], 40);
    cluster.start_joining(4);
    change(&mut cluster, 1, ConfChange::AddLearner(4)).expect("valid change");
    cluster.run_rounds(3);
    let last = cluster.server(1).log().last_index();
    let invalid = [
        ConfChange::AddLearner(2),
        ConfChange::AddLearner(4),
        ConfChange::AddLearner(1),
        ConfChange::PromoteLearner(2),
        ConfChange::PromoteLearner(9),
        ConfChange::Remove(9),
    ];
    for bad in invalid {
        let refused = change(&mut cluster, 1, bad);
        assert!(
            matches!(refused, Err(ProposalError::InvalidConfChange(_))),
            "{bad:?}: {refused:?}"
        );
        assert_eq!(
            cluster.server(1).log().last_index(),
            last,
            "{bad:?} appended nothing"
        );
        assert_eq!(cluster.server(1).conf_state(), &conf(&[1, 2, 3], &[4]));
    }
    assert_eq!(
        change(&mut cluster, 2, ConfChange::Remove(3)),
        Err(ProposalError::NotLeader { leader: Some(1) })
    );
    let removal = change(&mut cluster, 1, ConfChange::Remove(4)).expect("a valid change still goes through");
    assert_eq!(removal.index, last + 1);
}
