use super::*;

fn own(node_id: NodeId, incarnation: u64) -> Founder {
    Founder { node_id, incarnation }
}

fn empty(node_id: NodeId, incarnation: u64) -> PeerState {
    PeerState {
        node_id,
        incarnation,
        membership: None,
        client_address: format!("n{node_id}:7101"),
    }
}

fn member(node_id: NodeId, incarnation: u64, membership: &ClusterMembership) -> PeerState {
    PeerState {
        node_id,
        incarnation,
        membership: Some(membership.clone()),
        client_address: format!("n{node_id}:7101"),
    }
}

#[test]
fn a_cluster_is_founded_only_when_every_member_answers_empty() {
    let members = [1, 2, 3];
    let mut answers = BTreeMap::from([(2, empty(2, 20))]);
    assert_eq!(
        decide(own(1, 10), "raftkv", &members, &answers),
        Decision::Wait { unreachable: vec![3] }
    );
    answers.insert(3, empty(3, 30));
    let Decision::Found(from_one) = decide(own(1, 10), "raftkv", &members, &answers) else {
        panic!("all answered empty");
    };
    assert_eq!(from_one.founder_ids(), [1, 2, 3]);
    // Node 3, probing the same empty peers, derives the same cluster.
    let answers_of_three = BTreeMap::from([(1, empty(1, 10)), (2, empty(2, 20))]);
    assert_eq!(
        decide(own(3, 30), "raftkv", &members, &answers_of_three),
        Decision::Found(from_one)
    );
}

#[test]
fn a_slow_founder_joins_the_cluster_that_names_it() {
    let cluster = ClusterMembership::found("raftkv", vec![own(1, 10), own(2, 20), own(3, 30)]);
    // Node 3 probes after node 1 founded; node 2 is down.
    let answers = BTreeMap::from([(1, member(1, 10, &cluster))]);
    assert_eq!(
        decide(own(3, 30), "raftkv", &[1, 2, 3], &answers),
        Decision::Found(cluster)
    );
}

#[test]
fn a_new_incarnation_joins_an_existing_cluster_and_never_founds() {
    let cluster = ClusterMembership::found("raftkv", vec![own(1, 10), own(2, 20), own(3, 30)]);
    // Node 2's disk was wiped: incarnation 21. Node 1 is down, node 3 is a member.
    let answers = BTreeMap::from([(3, member(3, 30, &cluster))]);
    assert_eq!(
        decide(own(2, 21), "raftkv", &[1, 2, 3], &answers),
        Decision::ExistingCluster {
            membership: cluster.clone(),
            member: 3
        }
    );
    // Even if every other member is also empty-looking but one: one member suffices.
    let answers = BTreeMap::from([(1, empty(1, 11)), (3, member(3, 30, &cluster))]);
    assert!(matches!(
        decide(own(2, 21), "raftkv", &[1, 2, 3], &answers),
        Decision::ExistingCluster { member: 3, .. }
    ));
}

#[test]
fn a_single_member_founds_alone() {
    let Decision::Found(cluster) = decide(own(1, 10), "raftkv", &[1], &BTreeMap::new()) else {
        panic!("a one-node cluster has nobody to wait for");
    };
    assert_eq!(cluster.founder_ids(), [1]);
}

#[test]
fn a_node_that_is_not_an_initial_member_never_founds() {
    // A scale-up pod (id 4) with --peers 1,2,3, all still empty: it waits for a cluster.
    let answers = BTreeMap::from([(1, empty(1, 10)), (2, empty(2, 20)), (3, empty(3, 30))]);
    assert!(matches!(
        decide(own(4, 40), "raftkv", &[1, 2, 3], &answers),
        Decision::Wait { .. }
    ));
    let cluster = ClusterMembership::found("raftkv", vec![own(1, 10), own(2, 20), own(3, 30)]);
    let answers = BTreeMap::from([(2, member(2, 20, &cluster))]);
    assert!(matches!(
        decide(own(4, 40), "raftkv", &[1, 2, 3], &answers),
        Decision::ExistingCluster { member: 2, .. }
    ));
}
