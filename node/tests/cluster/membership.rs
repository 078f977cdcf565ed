//! Membership with real processes (issue 10): a node that is not an initial member joins
//! by itself (learner, then voter), `raftkv member` changes work against a live cluster,
//! and any minority of nodes losing their disks, one after another, loses no
//! acknowledged write: each wiped node rejoins as a new incarnation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wire::{MemberChange, MemberList, MemberRole};

use crate::support::TestCluster;
use crate::writers::{count_lines, expect_value, put, write_options, write_until};

fn voters(list: &MemberList) -> Vec<u64> {
    list.members
        .iter()
        .filter(|member| member.role == MemberRole::Voter)
        .map(|member| member.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_joins_as_a_learner_becomes_a_voter_and_can_be_removed() {
    let mut test = TestCluster::start("scale-up", 3, 1_000).await;
    test.wait_for_leader(&test.ids()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(test.client(write_options()), 0, stop.clone()));
    let started = Instant::now();
    let id = test.add_node().await;
    let list = test
        .wait_for_members("four voters", |list| voters(list) == [1, 2, 3, id])
        .await;
    let joined_after = started.elapsed();
    let member = list.member(id).expect("listed");
    test.check(member.incarnation.is_some(), || {
        format!("the joined member is bound to its incarnation: {list:?}")
    });
    test.check(
        member.peer_address.as_deref() == Some(test.cluster.node(id).peer_address.as_str()),
        || format!("the member's address travels with the configuration: {list:?}"),
    );
    for step in ["AddLearner", "Promote", "joined: this node is a voting member"] {
        test.wait_for_log(id, 0, step).await;
    }
    // The founders got records too: every member's address is in the log.
    let all_recorded = test
        .wait_for_members("all recorded", |list| {
            list.members.iter().all(|member| member.incarnation.is_some())
        })
        .await;
    test.check(all_recorded.members.len() == 4, || format!("{all_recorded:?}"));
    // Scale back down: remove the new member through the leader, under the writer.
    let mut admin = test.client(write_options());
    let after = admin
        .change_members(MemberChange::Remove {
            id,
            incarnation: None,
        })
        .await
        .unwrap_or_else(|error| test.fail(&format!("member remove {id}: {error}")));
    test.check(after.member(id).is_none(), || {
        format!("{id} still listed: {after:?}")
    });
    if let Err(error) = test.cluster.terminate(id) {
        test.fail(&format!("cannot stop node {id}: {error}"));
    }
    stop.store(true, Ordering::Relaxed);
    let report = writer.await.expect("writer task");
    test.check(report.errors.is_empty(), || {
        format!("writes failed while the membership changed: {:?}", report.errors)
    });
    let converged = test.wait_for_convergence(&[1, 2, 3]).await;
    let kv = converged.kv();
    for write in &report.acknowledged {
        test.check(
            kv.get(write.key.as_bytes()).map(Vec::as_slice) == Some(write.value.as_bytes()),
            || format!("acknowledged {} missing after the membership changes", write.key),
        );
    }
    eprintln!(
        "[scale-up] node {id} joined and became a voter {joined_after:?} after it started; {} writes, 0 failed",
        report.acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_losing_its_disk_in_turn_loses_no_acknowledged_write() {
    let mut test = TestCluster::start("disk-loss", 3, 50).await;
    test.wait_for_leader(&test.ids()).await;
    let mut client = test.client(write_options());
    for round in 0..20 {
        put(&test, &mut client, &format!("before/{round}"), "kept").await;
    }
    for id in [2, 1, 3] {
        let before = test.members_incarnation(id).await;
        let started = Instant::now();
        let log_before = test.wipe_and_restart(id);
        put(&test, &mut client, &format!("during/{id}"), "kept").await;
        let list = test
            .wait_for_members("the wiped node a voter again", |list| {
                voters(list) == [1, 2, 3]
                    && list
                        .member(id)
                        .is_some_and(|member| member.incarnation.is_some() && member.incarnation != before)
            })
            .await;
        let rejoined_after = started.elapsed();
        test.wait_for_log(id, log_before, "joining it as a new incarnation")
            .await;
        let new_log = test.cluster.log_of(id)[log_before..].to_string();
        test.check(count_lines(&new_log, "bootstrapping") == 0, || {
            format!("the wiped node {id} bootstrapped")
        });
        let converged = test.wait_for_convergence(&[1, 2, 3]).await;
        eprintln!(
            "[disk-loss] node {id} wiped: a voter again {rejoined_after:?} later (term {}), converged at {}",
            list.term, converged.applied
        );
        put(&test, &mut client, &format!("after/{id}"), "kept").await;
    }
    for round in 0..20 {
        expect_value(&test, &mut client, &format!("before/{round}"), "kept").await;
    }
    for id in [1, 2, 3] {
        expect_value(&test, &mut client, &format!("during/{id}"), "kept").await;
        expect_value(&test, &mut client, &format!("after/{id}"), "kept").await;
    }
    let converged = test.wait_for_convergence(&[1, 2, 3]).await;
    test.check(converged.kv().len() >= 26, || format!("{:?}", converged.kv()));
}

/// The disaster path: two of three disks are lost for good. The survivor, restarted with
/// `--force-new-cluster`, serves alone with everything it held; the two wiped nodes then
/// rejoin by themselves as new incarnations, and all three converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_forces_a_new_cluster_and_the_wiped_members_rejoin() {
    let mut test = TestCluster::start("force-new", 3, 1_000).await;
    test.wait_for_leader(&test.ids()).await;
    let mut client = test.client(write_options());
    put(&test, &mut client, "disaster/before", "kept").await;
    test.wait_for_convergence(&[1, 2, 3]).await;
    for id in [1, 2, 3] {
        if let Err(error) = test.cluster.terminate(id) {
            test.fail(&format!("cannot stop node {id}: {error}"));
        }
    }
    for id in [2, 3] {
        let data_dir = test.cluster.node(id).data_dir.clone();
        std::fs::remove_dir_all(&data_dir)
            .unwrap_or_else(|error| test.fail(&format!("cannot wipe {id}: {error}")));
    }
    let log_before = test.cluster.log_of(1).len();
    if let Err(error) = test.cluster.start_node_with(1, &["--force-new-cluster"]) {
        test.fail(&format!("cannot start node 1: {error}"));
    }
    test.wait_for_log(
        1,
        log_before,
        "--force-new-cluster: this node is now the only voter",
    )
    .await;
    test.wait_for_leader(&[1]).await;
    expect_value(&test, &mut client, "disaster/before", "kept").await;
    put(&test, &mut client, "disaster/alone", "served").await;
    // A restart with the flag still set, while it is still alone, forces nothing again
    // (once others have rejoined it would, as etcd's does: remove the flag after use).
    if let Err(error) = test.cluster.terminate(1) {
        test.fail(&format!("cannot stop node 1: {error}"));
    }
    let log_before = test.cluster.log_of(1).len();
    if let Err(error) = test.cluster.start_node_with(1, &["--force-new-cluster"]) {
        test.fail(&format!("cannot restart node 1: {error}"));
    }
    test.wait_for_log(1, log_before, "already the only voter").await;
    test.wait_for_leader(&[1]).await;
    if let Err(error) = test.cluster.terminate(1) {
        test.fail(&format!("cannot stop node 1: {error}"));
    }
    if let Err(error) = test.cluster.start_node(1) {
        test.fail(&format!("cannot restart node 1: {error}"));
    }
    for id in [2, 3] {
        if let Err(error) = test.cluster.start_node(id) {
            test.fail(&format!("cannot start node {id}: {error}"));
        }
    }
    let list = test
        .wait_for_members("three voters again", |list| voters(list) == [1, 2, 3])
        .await;
    test.check(list.member(2).is_some_and(|m| m.incarnation.is_some()), || {
        format!("{list:?}")
    });
    let converged = test.wait_for_convergence(&[1, 2, 3]).await;
    let kv = converged.kv();
    for key in ["disaster/before", "disaster/alone"] {
        test.check(kv.contains_key(key.as_bytes()), || {
            format!("{key} missing: {kv:?}")
        });
    }
}
