use super::*;

fn founders(list: &[(NodeId, u64)]) -> Vec<Founder> {
    list.iter()
        .map(|&(node_id, incarnation)| Founder { node_id, incarnation })
        .collect()
}

fn member(node_id: NodeId, incarnation: u64, cluster: &ClusterMembership) -> Identity {
    Identity {
        node_id,
        incarnation,
        cluster: Some(cluster.clone()),
    }
}

#[test]
fn every_founder_derives_the_same_cluster_id_and_other_incarnations_another() {
    let one = ClusterMembership::found("raftkv", founders(&[(2, 20), (1, 10), (3, 30)]));
    let same = ClusterMembership::found("raftkv", founders(&[(3, 30), (1, 10), (2, 20)]));
    assert_eq!(one, same, "the order of the answers does not matter");
    assert_eq!(one.founder_ids(), [1, 2, 3]);
    let wiped = ClusterMembership::found("raftkv", founders(&[(1, 10), (2, 21), (3, 30)]));
    assert_ne!(one.cluster_id, wiped.cluster_id);
    let renamed = ClusterMembership::found("other", founders(&[(1, 10), (2, 20), (3, 30)]));
    assert_ne!(one.cluster_id, renamed.cluster_id);
    assert!(one.is_founder(2, 20));
    assert!(
        !one.is_founder(2, 21),
        "a new incarnation of a founder is not a founder"
    );
    assert_eq!(one.cluster_id.to_string().len(), 16);
}

#[test]
fn an_empty_data_dir_gets_a_new_identity_and_probes() {
    let plan = check_data_dir(None, false, 2, "raftkv", None, 77).expect("empty is fine");
    let expected = Identity {
        node_id: 2,
        incarnation: 77,
        cluster: None,
    };
    assert_eq!(
        plan,
        StartPlan::Probe {
            identity: expected.clone(),
            is_new: true
        }
    );
    let again = check_data_dir(Some(expected.clone()), false, 2, "raftkv", None, 99).expect("restart");
    assert_eq!(
        again,
        StartPlan::Probe {
            identity: expected,
            is_new: false
        },
        "the incarnation is kept"
    );
}

#[test]
fn a_member_recovers_and_a_founder_without_state_founds_again() {
    let cluster = ClusterMembership::found("raftkv", founders(&[(1, 10), (2, 20), (3, 30)]));
    let identity = member(2, 20, &cluster);
    let expected_id = Some(cluster.cluster_id);
    assert_eq!(
        check_data_dir(Some(identity.clone()), true, 2, "raftkv", expected_id, 0),
        Ok(StartPlan::Recover(identity.clone()))
    );
    assert_eq!(
        check_data_dir(Some(identity.clone()), false, 2, "raftkv", None, 0),
        Ok(StartPlan::Refound(identity))
    );
    // A joiner that crashed before its first Raft state starts over as a new
    // incarnation: coming back blank under its old one could vote with an empty log.
    let joined = member(2, 21, &cluster);
    assert_eq!(
        check_data_dir(Some(joined), false, 2, "raftkv", None, 99),
        Ok(StartPlan::Probe {
            identity: Identity {
                node_id: 2,
                incarnation: 99,
                cluster: None,
            },
            is_new: true
        })
    );
}

#[test]
fn a_data_dir_of_another_node_or_cluster_is_refused_naming_both() {
    let cluster = ClusterMembership::found("raftkv", founders(&[(1, 10), (2, 20), (3, 30)]));
    let error =
        check_data_dir(Some(member(3, 30, &cluster)), true, 2, "raftkv", None, 0).expect_err("node 3's");
    let text = error.to_string();
    assert!(
        text.contains("node 3") && text.contains("node 2") && text.contains(&cluster.cluster_id.to_string()),
        "{text}"
    );

    let error =
        check_data_dir(Some(member(2, 20, &cluster)), true, 2, "blue", None, 0).expect_err("other name");
    let text = error.to_string();
    assert!(text.contains("\"raftkv\"") && text.contains("\"blue\""), "{text}");

    let other = ClusterId(cluster.cluster_id.0 ^ 1);
    let error = check_data_dir(Some(member(2, 20, &cluster)), true, 2, "raftkv", Some(other), 0)
        .expect_err("other id");
    let text = error.to_string();
    assert!(
        text.contains(&cluster.cluster_id.to_string()) && text.contains(&other.to_string()),
        "{text}"
    );
}

#[test]
fn raft_state_without_a_membership_is_refused() {
    assert_eq!(
        check_data_dir(None, true, 1, "raftkv", None, 5),
        Err(IdentityError::StateWithoutIdentity)
    );
    let pending = Identity {
        node_id: 1,
        incarnation: 5,
        cluster: None,
    };
    assert!(matches!(
        check_data_dir(Some(pending), true, 1, "raftkv", None, 5),
        Err(IdentityError::StateWithoutCluster { incarnation: 5 })
    ));
}
