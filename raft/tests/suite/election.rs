//! Leader election: paper §5.2, §5.4.1; pre-vote thesis §9.6; check-quorum thesis §6.2.

use raft::Role;

use crate::harness::Cluster;

#[test]
fn a_single_leader_is_elected_and_commits_its_no_op() {
    // Paper §5.2 and §5.4.2: the winner appends an entry of its term and commits it.
    let mut cluster = Cluster::new(&[1, 2, 3], 1);
    cluster.elect(1);
    let leader = cluster.server(1);
    assert_eq!(leader.role(), Role::Leader);
    let term = leader.term();
    assert_eq!(leader.log().term(leader.committed()), Some(term));
    for id in [2, 3] {
        assert_eq!(cluster.server(id).leader(), Some(1));
        assert_eq!(cluster.server(id).term(), term);
    }
}
