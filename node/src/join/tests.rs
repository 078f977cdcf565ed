use wire::MemberInfo;

use super::*;

fn list(members: &[(NodeId, MemberRole, Option<u64>)]) -> MemberList {
    MemberList {
        cluster_id: 7,
        leader: 1,
        term: 3,
        commit: 10,
        members: members
            .iter()
            .map(|&(id, role, incarnation)| MemberInfo {
                id,
                role,
                peer_address: Some(format!("n{id}:7001")),
                client_address: Some(format!("n{id}:7101")),
                incarnation,
                match_index: 10,
            })
            .collect(),
    }
}

#[test]
fn a_wiped_node_removes_its_old_incarnation_then_is_added_then_promoted() {
    use MemberRole::{Learner, Voter};
    let own = 2;
    let new = 0x22;
    let before = list(&[
        (1, Voter, Some(0x11)),
        (2, Voter, Some(0x20)),
        (3, Voter, Some(0x33)),
    ]);
    assert_eq!(
        next_step(own, new, &before),
        JoinStep::RemoveOldIncarnation { incarnation: 0x20 }
    );
    let removed = list(&[(1, Voter, Some(0x11)), (3, Voter, Some(0x33))]);
    assert_eq!(next_step(own, new, &removed), JoinStep::AddLearner);
    let added = list(&[
        (1, Voter, Some(0x11)),
        (2, Learner, Some(new)),
        (3, Voter, Some(0x33)),
    ]);
    assert_eq!(next_step(own, new, &added), JoinStep::Promote);
    let promoted = list(&[
        (1, Voter, Some(0x11)),
        (2, Voter, Some(new)),
        (3, Voter, Some(0x33)),
    ]);
    assert_eq!(next_step(own, new, &promoted), JoinStep::Done);
}

#[test]
fn a_member_added_without_an_incarnation_is_bound_by_the_node_that_joins() {
    let added_by_operator = list(&[(1, MemberRole::Voter, Some(1)), (4, MemberRole::Learner, None)]);
    assert_eq!(next_step(4, 0x44, &added_by_operator), JoinStep::AddLearner);
    assert_eq!(
        peers_from_list(&added_by_operator, 4)
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [1],
        "the joining node's peers are the other members"
    );
}

#[test]
fn a_restarted_node_joins_again_unless_it_is_a_recorded_voter_or_was_removed() {
    use crate::membership::MemberRecord;
    let record = |incarnation| MemberRecord {
        peer_address: "n4:7001".to_string(),
        client_address: "n4:7101".to_string(),
        incarnation: Some(incarnation),
    };
    let voters = ConfState::with_voters([1, 2, 3]);
    let mut with_voter = voters.clone();
    with_voter.voters.insert(4);
    let mut with_learner = voters.clone();
    with_learner.learners.insert(4);
    // Killed before anything added it: an empty or older configuration, no record.
    assert!(must_join(&ConfState::default(), 4, 0x44, None));
    assert!(must_join(&voters, 4, 0x44, None));
    // Seed 38: a snapshot from before its addition names its id as a voter, with the
    // record of the incarnation it replaces.
    assert!(must_join(&with_voter, 4, 0x44, Some(&record(0x40))));
    // Recorded: a learner finishes; a voter is done; a removed member stays idle.
    assert!(must_join(&with_learner, 4, 0x44, Some(&record(0x44))));
    assert!(!must_join(&with_voter, 4, 0x44, Some(&record(0x44))));
    assert!(!must_join(&voters, 4, 0x44, Some(&record(0x44))));
}
