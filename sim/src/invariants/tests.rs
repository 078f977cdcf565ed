//! The invariant checker on hand-made events: each broken rule is reported under its
//! name, and a correct sequence reports nothing.

use std::sync::Arc;

use node::storage::Storage;
use raft::{
    AppendRequest, AppendResponse, Entry, EntryPayload, HardState, Heartbeat, Message, MessageBody, NodeId,
    Term, VoteResponse,
};

use super::{Invariant, RaftMonitor};
use crate::sim_store::{SimDisk, SimStore};

fn entry(index: u64, term: Term, data: &str) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Normal(Arc::from(data.as_bytes())),
    }
}

/// A monitor with `size` registered nodes, and an open store per node.
fn cluster(size: u64) -> (RaftMonitor, Vec<(SimDisk, SimStore)>) {
    let monitor = RaftMonitor::new();
    let nodes = (1..=size)
        .map(|id| {
            let disk = SimDisk::new();
            monitor.register(id, disk.clone());
            let store = SimStore::open_monitored(disk.clone(), id, monitor.clone());
            (disk, store)
        })
        .collect();
    (monitor, nodes)
}

/// A synced log write, as the driver's `persist` of one `Ready` without a snapshot.
fn write(store: &mut SimStore, entries: &[Entry], hard_state: Option<HardState>) {
    store.persist(None, entries, hard_state).expect("persist");
}

fn hard_state(term: Term, vote: Option<NodeId>, commit: u64) -> Option<HardState> {
    Some(HardState { term, vote, commit })
}

fn heartbeat(from: NodeId, to: NodeId, term: Term, leader_commit: u64) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::Heartbeat(Heartbeat {
            leader_commit,
            read_round: 0,
        }),
    }
}

/// An empty append: it carries the leader's commit index as it is.
fn append(from: NodeId, to: NodeId, term: Term, leader_commit: u64) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::Append(AppendRequest {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: Vec::new(),
            leader_commit,
        }),
    }
}

fn found(monitor: &RaftMonitor) -> Vec<Invariant> {
    monitor
        .violations()
        .iter()
        .map(|violation| violation.invariant)
        .collect()
}

#[test]
fn a_correct_sequence_reports_nothing() {
    let (monitor, mut nodes) = cluster(3);
    let log = [entry(1, 1, "a"), entry(2, 1, "b")];
    for (_, store) in &mut nodes {
        write(store, &log, hard_state(1, Some(1), 0));
    }
    let leader_disk = nodes[0].0.clone();
    monitor.on_send(1, &heartbeat(1, 2, 1, 0), &leader_disk);
    monitor.on_send(1, &heartbeat(1, 2, 1, 2), &leader_disk);
    let vote = Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::VoteResponse(VoteResponse { granted: true }),
    };
    monitor.on_send(2, &vote, &nodes[1].0.clone());
    let ack = Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 2 }),
    };
    monitor.on_send(2, &ack, &nodes[1].0.clone());
    monitor.check_final_logs();
    assert_eq!(found(&monitor), []);
    let counts = monitor.counts();
    assert_eq!(
        (counts.leaders_seen, counts.vote_grants, counts.append_acks),
        (1, 1, 1)
    );
    assert_eq!(counts.entries_written, 6);
}

#[test]
fn two_leaders_in_one_term_break_election_safety() {
    let (monitor, nodes) = cluster(3);
    monitor.on_send(1, &heartbeat(1, 3, 4, 0), &nodes[0].0);
    monitor.on_send(2, &heartbeat(2, 3, 4, 0), &nodes[1].0);
    assert_eq!(found(&monitor), [Invariant::ElectionSafety]);
}

#[test]
fn two_entries_with_one_index_and_term_break_log_matching() {
    let (monitor, mut nodes) = cluster(3);
    write(&mut nodes[0].1, &[entry(1, 1, "a")], hard_state(1, None, 0));
    write(&mut nodes[1].1, &[entry(1, 1, "b")], hard_state(1, None, 0));
    assert_eq!(found(&monitor), [Invariant::LogMatching]);
}

#[test]
fn one_entry_after_different_predecessors_breaks_log_matching() {
    let (monitor, mut nodes) = cluster(3);
    let shared = entry(2, 3, "same");
    write(
        &mut nodes[0].1,
        &[entry(1, 1, "a"), shared.clone()],
        hard_state(3, None, 0),
    );
    write(
        &mut nodes[1].1,
        &[entry(1, 2, "a"), shared],
        hard_state(3, None, 0),
    );
    assert_eq!(found(&monitor), [Invariant::LogMatching]);
}

#[test]
fn a_vote_granted_before_it_is_durable_is_reported() {
    let (monitor, mut nodes) = cluster(3);
    write(&mut nodes[1].1, &[], hard_state(1, None, 0));
    let vote = Message {
        from: 2,
        to: 1,
        term: 2,
        body: MessageBody::VoteResponse(VoteResponse { granted: true }),
    };
    monitor.on_send(2, &vote, &nodes[1].0.clone());
    assert_eq!(found(&monitor), [Invariant::Durability]);
    // A newer durable term also rules out a second vote in term 2: not a finding.
    let (monitor, mut nodes) = cluster(3);
    write(&mut nodes[1].1, &[], hard_state(3, Some(3), 0));
    monitor.on_send(2, &vote, &nodes[1].0.clone());
    assert_eq!(found(&monitor), []);
}

#[test]
fn an_acknowledgement_beyond_the_durable_log_is_reported() {
    let (monitor, mut nodes) = cluster(3);
    write(&mut nodes[1].1, &[entry(1, 1, "a")], hard_state(1, None, 0));
    let ack = Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 2 }),
    };
    monitor.on_send(2, &ack, &nodes[1].0.clone());
    assert_eq!(found(&monitor), [Invariant::Durability]);
}

#[test]
fn committing_an_old_term_entry_by_counting_is_reported() {
    let (monitor, mut nodes) = cluster(3);
    // Entries 1 (term 1) and 2 (term 2) are on every disk; node 1 leads term 3 with
    // commit 1 and then advertises commit 2, an entry of term 2, without a term-3 entry.
    for (_, store) in &mut nodes {
        store
            .persist(
                None,
                &[entry(1, 1, "a"), entry(2, 2, "b")],
                hard_state(3, Some(1), 1),
            )
            .expect("persist");
    }
    let leader_disk = nodes[0].0.clone();
    monitor.on_send(1, &append(1, 2, 3, 1), &leader_disk);
    monitor.on_send(1, &append(1, 2, 3, 2), &leader_disk);
    assert_eq!(found(&monitor), [Invariant::LeaderCompleteness]);
}

/// Seed 796428471870: a heartbeat's commit index is the leader's clamped to the
/// follower's match index, so it may name an entry of an older term after the leader
/// committed one of its own.
#[test]
fn a_heartbeat_clamped_to_a_lagging_follower_is_not_taken_for_the_leaders_commit() {
    let (monitor, mut nodes) = cluster(3);
    for (_, store) in &mut nodes {
        store
            .persist(
                None,
                &[entry(1, 1, "a"), entry(2, 2, "b"), entry(3, 3, "no-op")],
                hard_state(3, Some(1), 1),
            )
            .expect("persist");
    }
    let leader_disk = nodes[0].0.clone();
    monitor.on_send(1, &append(1, 2, 3, 1), &leader_disk);
    // Commit 3 (term 3); follower 3 matched only through 2.
    monitor.on_send(1, &heartbeat(1, 3, 3, 2), &leader_disk);
    monitor.on_send(1, &append(1, 2, 3, 3), &leader_disk);
    assert_eq!(found(&monitor), []);
    // Appends still carry the leader's own: one naming an old-term entry is caught.
    monitor.on_send(1, &append(1, 2, 4, 1), &leader_disk);
    monitor.on_send(1, &append(1, 2, 4, 2), &leader_disk);
    assert_eq!(found(&monitor), [Invariant::LeaderCompleteness]);
}

#[test]
fn a_commit_durable_on_a_minority_is_reported() {
    let (monitor, mut nodes) = cluster(3);
    write(&mut nodes[0].1, &[entry(1, 1, "a")], hard_state(1, Some(1), 0));
    monitor.on_send(1, &heartbeat(1, 2, 1, 0), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 1, 1), &nodes[0].0.clone());
    assert_eq!(found(&monitor), [Invariant::Durability]);
}

#[test]
fn a_leader_missing_a_committed_entry_is_reported() {
    let (monitor, mut nodes) = cluster(3);
    for (_, store) in nodes.iter_mut().take(2) {
        write(store, &[entry(1, 1, "a")], hard_state(1, Some(1), 0));
    }
    monitor.on_send(1, &heartbeat(1, 2, 1, 0), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 1, 1), &nodes[0].0.clone());
    assert_eq!(found(&monitor), []);
    // Node 3 never got entry 1, yet starts leading term 2.
    monitor.on_send(3, &heartbeat(3, 1, 2, 0), &nodes[2].0.clone());
    assert_eq!(found(&monitor), [Invariant::LeaderCompleteness]);
}

/// Seed 50785: node 1 won term 13 and committed its no-op at index 2502; 28 ms later
/// node 5 won term 12 on a delayed vote (its voters 2 and 4 had not yet heard of term
/// 13) and appended its own no-op at 2502. A leader of term 12 must hold what was
/// committed before term 12 (§5.4.3), not what term 13 committed; a leader of term 14
/// must hold both.
#[test]
fn a_leader_of_an_older_term_need_not_hold_a_later_terms_entries() {
    let (monitor, mut nodes) = cluster(5);
    for (_, store) in &mut nodes {
        write(store, &[entry(1, 8, "a")], hard_state(8, Some(4), 0));
    }
    monitor.on_send(4, &heartbeat(4, 1, 8, 0), &nodes[3].0.clone());
    monitor.on_send(4, &heartbeat(4, 1, 8, 1), &nodes[3].0.clone());
    // Term 13: node 1 wins with votes 1, 2, 3 and commits its no-op on those disks.
    for (_, store) in nodes.iter_mut().take(3) {
        write(store, &[entry(2, 13, "")], hard_state(13, Some(1), 1));
    }
    monitor.on_send(1, &heartbeat(1, 2, 13, 1), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 13, 2), &nodes[0].0.clone());
    // Term 12, seen afterwards: node 5 leads with its own no-op at index 2.
    write(&mut nodes[4].1, &[entry(2, 12, "")], hard_state(12, Some(5), 1));
    monitor.on_send(5, &heartbeat(5, 4, 12, 1), &nodes[4].0.clone());
    assert_eq!(found(&monitor), []);
    assert_eq!(monitor.counts().leaders_seen, 3);
    // Node 4 lacks index 2 of term 13, committed before term 14: it cannot lead 14.
    write(&mut nodes[3].1, &[], hard_state(14, Some(4), 1));
    monitor.on_send(4, &heartbeat(4, 1, 14, 1), &nodes[3].0.clone());
    assert_eq!(found(&monitor), [Invariant::LeaderCompleteness]);
}

/// An entry first seen applied counts as committed in the applier's current term (an
/// upper bound): a leader of an earlier term is not held to it, one of a later term is.
#[test]
fn an_applied_entry_binds_leaders_of_later_terms() {
    let (monitor, mut nodes) = cluster(3);
    write(&mut nodes[0].1, &[entry(1, 2, "a")], hard_state(3, Some(1), 1));
    nodes[0]
        .1
        .apply(node::storage::ApplyBatch {
            applied_index: 1,
            ..Default::default()
        })
        .expect("apply");
    write(&mut nodes[1].1, &[], hard_state(3, Some(2), 0));
    monitor.on_send(2, &heartbeat(2, 3, 3, 0), &nodes[1].0.clone());
    assert_eq!(found(&monitor), []);
    write(&mut nodes[2].1, &[], hard_state(4, Some(3), 0));
    monitor.on_send(3, &heartbeat(3, 1, 4, 0), &nodes[2].0.clone());
    assert_eq!(found(&monitor), [Invariant::LeaderCompleteness]);
}

#[test]
fn two_nodes_applying_different_entries_at_one_index_break_state_machine_safety() {
    let (monitor, mut nodes) = cluster(3);
    write(&mut nodes[0].1, &[entry(1, 1, "a")], hard_state(1, None, 0));
    write(&mut nodes[1].1, &[entry(1, 2, "b")], hard_state(2, None, 0));
    let apply = |store: &mut SimStore| {
        store
            .apply(node::storage::ApplyBatch {
                applied_index: 1,
                ..Default::default()
            })
            .expect("apply");
    };
    apply(&mut nodes[0].1);
    apply(&mut nodes[1].1);
    assert_eq!(found(&monitor), [Invariant::StateMachineSafety]);
}

/// Saves node identity `incarnation` in `store`, as `open_data_dir` does first.
fn save_identity(store: &mut SimStore, id: NodeId, incarnation: u64) {
    let identity = node::identity::Identity {
        node_id: id,
        incarnation,
        cluster: None,
    };
    store.save_identity(&identity).expect("save identity");
}

fn config_entry(index: u64, term: Term, voters: &[NodeId]) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Config(raft::ConfState::with_voters(voters.iter().copied())),
    }
}

fn ack(from: NodeId, to: NodeId, term: Term, match_index: u64) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::AppendResponse(AppendResponse::Accepted { match_index }),
    }
}

fn vote(from: NodeId, to: NodeId, term: Term) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::VoteResponse(VoteResponse { granted: true }),
    }
}

/// Loses node `id`'s disk (its store is dead afterwards) and tells the monitor, as
/// `SimCluster::wipe` does; returns a store opened on the empty disk.
fn wipe(monitor: &RaftMonitor, nodes: &mut [(SimDisk, SimStore)], id: NodeId) -> Option<u64> {
    let (disk, store) = &mut nodes[id as usize - 1];
    let lost = disk.wipe();
    let incarnation = lost.incarnation;
    monitor.on_wipe(id, lost);
    *store = SimStore::open_monitored(disk.clone(), id, monitor.clone());
    incarnation
}

/// A wiped node starts over as a new incarnation, is sent the log again and then
/// votes, acknowledges and counts for commits: none of it breaks log matching or
/// durability, and the final logs agree.
#[test]
fn a_wiped_nodes_fresh_log_is_no_violation() {
    let (monitor, mut nodes) = cluster(3);
    let log = [config_entry(1, 1, &[1, 2, 3]), entry(2, 1, "a"), entry(3, 1, "b")];
    for (index, (_, store)) in nodes.iter_mut().enumerate() {
        let id = index as NodeId + 1;
        save_identity(store, id, 10 + id);
        write(store, &log, hard_state(1, Some(1), 0));
    }
    monitor.on_send(1, &heartbeat(1, 2, 1, 0), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 1, 3), &nodes[0].0.clone());
    assert_eq!(wipe(&monitor, &mut nodes, 3), Some(13));
    assert_eq!(nodes[2].0.with_durable(|durable| durable.last_index()), 0);
    // The new incarnation gets the log again, then a term-2 entry, and takes part.
    save_identity(&mut nodes[2].1, 3, 33);
    write(&mut nodes[2].1, &log, hard_state(2, Some(1), 3));
    write(&mut nodes[0].1, &[entry(4, 2, "c")], hard_state(2, Some(1), 3));
    write(&mut nodes[2].1, &[entry(4, 2, "c")], None);
    monitor.on_send(3, &vote(3, 1, 2), &nodes[2].0.clone());
    monitor.on_send(3, &ack(3, 1, 2, 4), &nodes[2].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 2, 3), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 2, 4), &nodes[0].0.clone());
    monitor.check_final_logs();
    assert_eq!(found(&monitor), []);
    assert_eq!(monitor.counts().disks_lost, 1);
}

/// A commit inherited from before a disk loss, now on a minority of disks, is not a
/// violation: the lost copy was real when acknowledged. A disk lost before it ever held
/// an entry does not count for it.
#[test]
fn a_lost_copy_counts_only_for_what_the_disk_held() {
    let (monitor, mut nodes) = cluster(3);
    for (_, store) in nodes.iter_mut().take(2) {
        write(store, &[entry(1, 1, "a")], hard_state(1, Some(1), 0));
    }
    monitor.on_send(1, &heartbeat(1, 3, 1, 0), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 3, 1, 1), &nodes[0].0.clone());
    wipe(&monitor, &mut nodes, 2);
    // Node 1 leads term 2 and inherits commit 1: node 2's lost copy still counts.
    write(&mut nodes[0].1, &[], hard_state(2, Some(1), 1));
    monitor.on_send(1, &heartbeat(1, 3, 2, 1), &nodes[0].0.clone());
    assert_eq!(found(&monitor), []);
    // Entry 2 was never on node 2's lost disk, nor on node 3: node 1 alone is no majority.
    write(&mut nodes[0].1, &[entry(2, 2, "b")], None);
    monitor.on_send(1, &heartbeat(1, 3, 2, 2), &nodes[0].0.clone());
    assert_eq!(found(&monitor), [Invariant::Durability]);
}

/// A disk loss excuses nothing else: a blank voter (even a new incarnation, which a
/// correct cluster would refuse) helping a node without a committed entry to lead is
/// still a leader completeness violation.
#[test]
fn a_leader_elected_without_a_committed_entry_after_a_disk_loss_is_caught() {
    let (monitor, mut nodes) = cluster(3);
    for (_, store) in nodes.iter_mut().take(2) {
        write(
            store,
            &[entry(1, 1, "a"), entry(2, 1, "b")],
            hard_state(1, Some(1), 0),
        );
    }
    monitor.on_send(1, &heartbeat(1, 2, 1, 0), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 1, 2), &nodes[0].0.clone());
    wipe(&monitor, &mut nodes, 2);
    save_identity(&mut nodes[1].1, 2, 0x22);
    write(&mut nodes[1].1, &[], hard_state(2, Some(3), 0));
    monitor.on_send(2, &vote(2, 3, 2), &nodes[1].0.clone());
    write(&mut nodes[2].1, &[], hard_state(2, Some(3), 0));
    monitor.on_send(3, &heartbeat(3, 2, 2, 0), &nodes[2].0.clone());
    assert_eq!(found(&monitor), [Invariant::LeaderCompleteness]);
}

/// The bug of issue 10: the wiped node comes back as the incarnation it was. Its first
/// vote or acknowledgement is reported, once.
#[test]
fn a_lost_incarnation_that_speaks_again_is_caught() {
    let (monitor, mut nodes) = cluster(3);
    save_identity(&mut nodes[1].1, 2, 0x12);
    write(&mut nodes[1].1, &[entry(1, 1, "a")], hard_state(1, Some(1), 0));
    monitor.on_send(2, &ack(2, 1, 1, 1), &nodes[1].0.clone());
    assert_eq!(found(&monitor), []);
    wipe(&monitor, &mut nodes, 2);
    save_identity(&mut nodes[1].1, 2, 0x12);
    write(&mut nodes[1].1, &[entry(1, 1, "a")], hard_state(1, None, 0));
    monitor.on_send(2, &ack(2, 1, 1, 1), &nodes[1].0.clone());
    monitor.on_send(2, &ack(2, 1, 1, 1), &nodes[1].0.clone());
    assert_eq!(found(&monitor), [Invariant::Durability]);
}

/// Majorities are of the configuration's voters, not of every disk: after node 3 is
/// removed, a commit needs nodes 1 and 2, and a copy on node 3 (no longer a voter, or a
/// learner again) does not help.
#[test]
fn a_commit_needs_a_majority_of_the_configuration_in_force() {
    let (monitor, mut nodes) = cluster(3);
    let log = [config_entry(1, 1, &[1, 2, 3]), config_entry(2, 1, &[1, 2])];
    for (_, store) in &mut nodes {
        write(store, &log, hard_state(1, Some(1), 0));
    }
    for index in [0, 2] {
        write(&mut nodes[index].1, &[entry(3, 1, "a")], None);
    }
    monitor.on_send(1, &heartbeat(1, 2, 1, 2), &nodes[0].0.clone());
    assert_eq!(found(&monitor), []);
    monitor.on_send(1, &heartbeat(1, 2, 1, 3), &nodes[0].0.clone());
    assert_eq!(found(&monitor), [Invariant::Durability]);
}

/// The other way round, where counting every disk was wrong: with node 1 the only voter
/// left, its own copy is a majority.
#[test]
fn a_commit_durable_on_a_majority_of_a_smaller_configuration_passes() {
    let (monitor, mut nodes) = cluster(3);
    let log = [config_entry(1, 1, &[1]), entry(2, 1, "a")];
    write(&mut nodes[0].1, &log, hard_state(1, Some(1), 0));
    monitor.on_send(1, &heartbeat(1, 2, 1, 0), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 1, 2), &nodes[0].0.clone());
    assert_eq!(found(&monitor), []);
}

/// A leader counted index 2 under voters {1, 2, 3} (copies on 1 and 3), then appended
/// the removal of node 3 before a message carried the commit index: the configuration
/// in force at the committed index is the one it counted under.
#[test]
fn a_commit_counted_before_a_later_change_passes() {
    let (monitor, mut nodes) = cluster(3);
    let log = [config_entry(1, 1, &[1, 2, 3]), entry(2, 1, "a")];
    for index in [0, 2] {
        write(&mut nodes[index].1, &log, hard_state(1, Some(1), 0));
    }
    write(&mut nodes[0].1, &[config_entry(3, 1, &[1, 2])], None);
    monitor.on_send(1, &heartbeat(1, 2, 1, 0), &nodes[0].0.clone());
    monitor.on_send(1, &heartbeat(1, 2, 1, 2), &nodes[0].0.clone());
    assert_eq!(found(&monitor), []);
}

/// The configuration of a compacted log comes from its snapshot.
#[test]
fn the_configuration_survives_compaction() {
    let (_, mut nodes) = cluster(1);
    let store = &mut nodes[0].1;
    write(
        store,
        &[config_entry(1, 1, &[1, 2]), entry(2, 1, "a")],
        hard_state(1, None, 2),
    );
    let snapshot = raft::Snapshot {
        meta: raft::SnapshotMeta {
            index: 2,
            term: 1,
            conf_state: raft::ConfState::with_voters([1, 2]),
        },
        total_bytes: store.image_source(2).expect("source").build().expect("build"),
    };
    store.compact(&snapshot, 2).expect("compact");
    let disk = &nodes[0].0;
    assert!(disk.with_visible(|log| log.entry(1).is_none()));
    assert_eq!(
        disk.configuration_at(u64::MAX),
        raft::ConfState::with_voters([1, 2])
    );
}
