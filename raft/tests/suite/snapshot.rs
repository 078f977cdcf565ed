//! Log compaction and InstallSnapshot: thesis §5.1 (snapshotting memory-based state
//! machines), §5.3 (InstallSnapshot, chunked with `offset` and `done`), §5.4.

use raft::{
    AppendRequest, AppendResponse, CompactError, Compaction, ConfState, Config, Entry, Message, MessageBody,
    NodeId, Raft, Role, SnapshotChunk, SnapshotChunkResponse, SnapshotMeta,
};

use crate::harness::single::{bootstrapped, data_entry, message};
use crate::harness::Cluster;

/// The harness's `test_config` chunk size.
const CHUNK_BYTES: usize = 64;

fn chunk(meta: &SnapshotMeta, data: &[u8], offset: usize, len: usize) -> MessageBody {
    MessageBody::InstallSnapshot(SnapshotChunk {
        meta: meta.clone(),
        total_bytes: data.len() as u64,
        offset: offset as u64,
        data_bytes_max: CHUNK_BYTES as u32,
        data: data[offset..offset + len].to_vec(),
    })
}

/// A follower of a bootstrapped {1, 2, 3} cluster, driven by hand.
fn follower(id: NodeId) -> Raft {
    let config = Config {
        snapshot_chunk_bytes: CHUNK_BYTES,
        ..Config::new(id)
    };
    bootstrapped(config, &[1, 2, 3])
}

pub(crate) fn snapshot_chunks_to(messages: &[Message], to: NodeId) -> Vec<SnapshotChunk> {
    messages
        .iter()
        .filter(|m| m.to == to)
        .filter_map(|m| match &m.body {
            MessageBody::InstallSnapshot(chunk) => Some(chunk.clone()),
            _ => None,
        })
        .collect()
}

/// A three-server cluster led by 1 in which 3 crashed, missed `missed` proposals, and
/// the leader then compacted its log past everything 3 has. Returns the compaction.
fn cluster_with_compacted_leader_and_crashed_follower(missed: usize) -> (Cluster, Compaction) {
    let mut cluster = Cluster::new(&[1, 2, 3], 11);
    cluster.elect(1);
    for _ in 0..3 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    assert_eq!(cluster.server(3).committed(), cluster.server(1).committed());
    cluster.crash(3);
    for _ in 0..missed {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    let leader = cluster.server(1);
    assert_eq!(
        leader.committed(),
        leader.log().last_index(),
        "1 and 2 commit without 3"
    );
    let applied = cluster.machines[&1].applied;
    assert_eq!(applied, leader.committed());
    let data = cluster.machines[&1].encode();
    let compaction = cluster
        .server_mut(1)
        .compact(applied, data.len() as u64)
        .expect("applied index compacts");
    let snapshot = cluster.server(1).snapshot().cloned().expect("kept");
    cluster
        .disks
        .get_mut(&1)
        .expect("disk")
        .compact(snapshot, data, compaction.purged_to);
    assert!(cluster.disks[&3].entries.last().expect("3 has a log").index < compaction.purged_to);
    (cluster, compaction)
}

/// Thesis §5.1: a snapshot captures the state machine's *applied* state, so the log
/// cannot be compacted beyond what was applied, nor at or below the snapshot it has.
#[test]
fn compact_refuses_unapplied_indexes_and_indexes_already_covered_by_a_snapshot() {
    let mut cluster = Cluster::new(&[1, 2, 3], 3);
    cluster.elect(1);
    for _ in 0..4 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    let applied = cluster.server(1).applied();
    assert_eq!(applied, 6, "bootstrap config, no-op and four values");
    let term = cluster.server(1).term();
    let data = cluster.machines[&1].encode();
    let leader = cluster.server_mut(1);

    assert_eq!(
        leader.compact(applied + 1, data.len() as u64),
        Err(CompactError::NotApplied {
            index: applied + 1,
            applied
        })
    );
    assert_eq!(
        leader.log().first_index(),
        1,
        "a refused compaction purges nothing"
    );
    assert!(leader.snapshot().is_none());

    let compaction = leader
        .compact(applied - 1, data.len() as u64)
        .expect("an applied index compacts");
    assert_eq!(compaction.purged_to, applied - 1);
    assert_eq!(compaction.meta.index, applied - 1);
    assert_eq!(compaction.meta.term, term);
    assert_eq!(compaction.meta.conf_state, ConfState::with_voters([1, 2, 3]));
    assert_eq!(leader.log().first_index(), applied);
    assert_eq!(
        leader.log().term(applied - 1),
        Some(term),
        "the offset keeps its term"
    );
    assert_eq!(leader.log().term(applied - 2), None, "purged");

    for index in [applied - 1, applied - 2, 0] {
        assert_eq!(
            leader.compact(index, data.len() as u64),
            Err(CompactError::AlreadyCompacted {
                index,
                snapshot_index: applied - 1
            })
        );
    }
    assert_eq!(leader.snapshot().map(|s| s.meta.index), Some(applied - 1));
    assert_eq!(
        leader.compact(applied, data.len() as u64).map(|c| c.purged_to),
        Ok(applied)
    );
    assert_eq!(leader.log().first_index(), applied + 1);

    // Committed is not enough: a follower that learned a commit index it has not yet
    // applied cannot snapshot there.
    let mut raft = follower(2);
    let append = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: (2..=4).map(|index| data_entry(index, 2)).collect(),
        leader_commit: 4,
    };
    raft.step(message(1, 2, 2, MessageBody::Append(append)))
        .expect("valid append");
    assert_eq!((raft.committed(), raft.applied()), (4, 1));
    assert_eq!(
        raft.compact(4, 0),
        Err(CompactError::NotApplied { index: 4, applied: 1 })
    );
    let _ = raft.ready();
    raft.advance();
    assert_eq!(raft.compact(4, 0).map(|c| c.meta.term), Ok(2));
}

/// Thesis §5.3: a follower that needs entries the leader has discarded receives the
/// leader's snapshot instead, in chunks of at most `snapshot_chunk_bytes` (the
/// `offset`/`done` fields), and ends with the leader's state machine.
#[test]
fn a_follower_behind_the_compaction_point_catches_up_through_a_chunked_snapshot() {
    let (mut cluster, compaction) = cluster_with_compacted_leader_and_crashed_follower(24);
    let snapshot = cluster.server(1).snapshot().cloned().expect("leader snapshot");
    assert!(
        snapshot.total_bytes as usize > 3 * CHUNK_BYTES,
        "the snapshot needs several chunks"
    );

    cluster.restart(3);
    let mut sent = Vec::new();
    for _ in 0..40 {
        cluster.tick_all();
        sent.extend(cluster.deliver_recording());
        if cluster.server(3).applied() == cluster.server(1).committed() {
            break;
        }
    }

    let chunks = snapshot_chunks_to(&sent, 3);
    let expected_chunks = (snapshot.total_bytes as usize).div_ceil(CHUNK_BYTES);
    assert_eq!(
        chunks.len(),
        expected_chunks,
        "one message per chunk, none resent on a healthy link"
    );
    for (position, chunk) in chunks.iter().enumerate() {
        assert!(
            chunk.data.len() <= CHUNK_BYTES,
            "chunk of {} bytes",
            chunk.data.len()
        );
        assert_eq!(chunk.offset, (position * CHUNK_BYTES) as u64);
        assert_eq!(chunk.meta, compaction.meta);
        assert_eq!(chunk.total_bytes, snapshot.total_bytes as usize as u64);
    }
    assert!(chunks.last().expect("chunks").is_last());
    assert!(
        !sent.iter().any(|m| m.to == 3 && m.from == 2),
        "only the leader sends to 3"
    );

    let follower = cluster.server(3);
    assert_eq!(follower.snapshot().map(|s| &s.meta), Some(&compaction.meta));
    assert_eq!(
        follower.snapshot().map(|s| s.total_bytes),
        Some(snapshot.total_bytes)
    );
    assert_eq!(
        cluster.disks[&3].image, cluster.disks[&1].image,
        "the image arrived whole"
    );
    assert_eq!(follower.log().first_index(), compaction.purged_to + 1);
    assert_eq!(follower.committed(), cluster.server(1).committed());
    assert_eq!(cluster.machines[&3], cluster.machines[&1]);
    assert_eq!(
        cluster.disks[&3].snapshot.as_ref().map(|s| s.meta.index),
        Some(compaction.meta.index)
    );
    let progress = cluster.server(1).status().progress;
    let to_3 = progress.iter().find(|p| p.id == 3).expect("3 is tracked");
    assert_eq!(
        (to_3.match_index, to_3.state),
        (cluster.server(1).log().last_index(), "replicate")
    );
}

/// Thesis §5.3: chunks are sent one at a time and resumed from the last acknowledged
/// offset; a lost chunk is sent again (here on the leader's heartbeat) and the
/// transfer still completes, without starting over.
#[test]
fn a_lost_snapshot_chunk_is_resent_and_the_transfer_completes() {
    let (mut cluster, compaction) = cluster_with_compacted_leader_and_crashed_follower(24);
    let total = cluster.server(1).snapshot().expect("snapshot").total_bytes as usize;
    cluster.restart(3);

    // Run until the first chunk reached 3, then lose everything the leader sends it.
    let mut sent = Vec::new();
    for _ in 0..20 {
        cluster.tick_all();
        while let Some(next) = cluster.in_flight.first().cloned() {
            let first_chunk = matches!(&next.body, MessageBody::InstallSnapshot(c) if c.offset == 0);
            sent.push(next);
            cluster.deliver(0);
            if first_chunk {
                cluster.cut_links.insert((1, 3));
            }
        }
        if cluster.cut_links.contains(&(1, 3)) {
            break;
        }
    }
    assert!(
        cluster.cut_links.contains(&(1, 3)),
        "the snapshot transfer started"
    );
    for _ in 0..8 {
        cluster.tick_all();
        sent.extend(cluster.deliver_recording());
    }
    assert!(
        cluster.server(3).snapshot().is_none(),
        "nothing installed while chunks are lost"
    );
    assert_eq!(
        cluster
            .server(1)
            .status()
            .progress
            .iter()
            .find(|p| p.id == 3)
            .map(|p| p.state),
        Some("snapshot")
    );
    let lost = snapshot_chunks_to(&sent, 3)
        .into_iter()
        .filter(|c| c.offset == CHUNK_BYTES as u64)
        .count();
    assert!(
        lost >= 2,
        "the second chunk is resent while the link is down (sent {lost} times)"
    );

    cluster.heal();
    for _ in 0..20 {
        cluster.tick_all();
        sent.extend(cluster.deliver_recording());
        if cluster.server(3).applied() == cluster.server(1).committed() {
            break;
        }
    }
    let chunks = snapshot_chunks_to(&sent, 3);
    assert_eq!(
        chunks.iter().filter(|c| c.offset == 0).count(),
        1,
        "the transfer resumed, not restarted"
    );
    for offset in (0..total).step_by(CHUNK_BYTES) {
        assert!(
            chunks.iter().any(|c| c.offset == offset as u64),
            "chunk at {offset} sent"
        );
    }
    assert!(chunks.iter().all(|c| c.data.len() <= CHUNK_BYTES));
    assert_eq!(
        cluster.server(3).snapshot().map(|s| &s.meta),
        Some(&compaction.meta)
    );
    assert_eq!(cluster.machines[&3], cluster.machines[&1]);
    cluster.converge(200);
}

/// Thesis §5.3 receiver steps 2-5 and §3.8: partial chunks are acknowledged with the
/// next expected offset; the completed snapshot reaches the application in exactly
/// one `Ready`, and its acknowledgement leaves only after that `Ready` is durable.
#[test]
fn an_installed_snapshot_is_handed_out_once_and_acknowledged_only_after_persistence() {
    let mut raft = follower(2);
    let meta = SnapshotMeta {
        index: 10,
        term: 2,
        conf_state: ConfState::with_voters([1, 2, 3]),
    };
    let data: Vec<u8> = (0..100u8).collect();

    raft.step(message(1, 2, 2, chunk(&meta, &data, 0, CHUNK_BYTES)))
        .expect("valid chunk");
    let ready = raft.ready();
    assert!(ready.snapshot.is_none(), "a partial snapshot is not handed out");
    assert_eq!(
        ready
            .snapshot_chunks
            .iter()
            .map(|c| &c.data[..])
            .collect::<Vec<_>>(),
        vec![&data[..CHUNK_BYTES]],
        "the accepted chunk goes to the application to stage"
    );
    assert!(ready.persisted_messages.is_empty());
    let expected = SnapshotChunkResponse {
        snapshot_index: 10,
        next_offset: CHUNK_BYTES as u64,
    };
    assert_eq!(
        ready.messages,
        vec![message(2, 1, 2, MessageBody::InstallSnapshotResponse(expected))]
    );
    raft.advance();
    assert_eq!((raft.committed(), raft.applied()), (1, 1));

    raft.step(message(
        1,
        2,
        2,
        chunk(&meta, &data, CHUNK_BYTES, data.len() - CHUNK_BYTES),
    ))
    .expect("valid");
    let ready = raft.ready();
    let snapshot = ready
        .snapshot
        .clone()
        .expect("the complete snapshot is handed out");
    assert_eq!(snapshot.meta, meta);
    assert_eq!(snapshot.total_bytes, data.len() as u64);
    assert_eq!(
        ready
            .snapshot_chunks
            .iter()
            .map(|c| &c.data[..])
            .collect::<Vec<_>>(),
        vec![&data[CHUNK_BYTES..]],
        "the last chunk is staged in the Ready that installs it"
    );
    let ack = message(
        2,
        1,
        2,
        MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 10 }),
    );
    assert_eq!(ready.persisted_messages, vec![ack.clone()]);
    assert!(
        ready.messages.is_empty(),
        "the acknowledgement waits for persistence"
    );
    assert_eq!(ready.hard_state.map(|hs| hs.commit), Some(10));
    assert!(ready.entries.is_empty() && ready.committed_entries.is_empty());
    raft.advance();
    assert_eq!((raft.committed(), raft.applied()), (10, 10));
    assert_eq!(raft.log().first_index(), 11);
    assert_eq!(raft.log().term(10), Some(2));
    assert!(!raft.has_ready(), "the snapshot is handed out once");

    // A duplicate of the last chunk is answered from the commit index, not reinstalled.
    raft.step(message(
        1,
        2,
        2,
        chunk(&meta, &data, CHUNK_BYTES, data.len() - CHUNK_BYTES),
    ))
    .expect("valid");
    let ready = raft.ready();
    assert!(ready.snapshot.is_none());
    assert_eq!(ready.persisted_messages, vec![ack]);
    raft.advance();
}

/// Thesis §5.3 (chunk `offset`): a chunk that does not continue what was received is
/// not stored; the follower answers with the offset it needs.
#[test]
fn an_out_of_order_snapshot_chunk_is_refused_with_the_offset_needed() {
    let mut raft = follower(2);
    let meta = SnapshotMeta {
        index: 10,
        term: 2,
        conf_state: ConfState::with_voters([1, 2, 3]),
    };
    let data = vec![7u8; 3 * CHUNK_BYTES];
    let needs = |offset: u64| {
        vec![message(
            2,
            1,
            2,
            MessageBody::InstallSnapshotResponse(SnapshotChunkResponse {
                snapshot_index: 10,
                next_offset: offset,
            }),
        )]
    };

    raft.step(message(1, 2, 2, chunk(&meta, &data, CHUNK_BYTES, CHUNK_BYTES)))
        .expect("valid");
    assert_eq!(raft.ready().messages, needs(0), "no chunk 0 yet");
    raft.advance();
    raft.step(message(1, 2, 2, chunk(&meta, &data, 0, CHUNK_BYTES)))
        .expect("valid");
    assert_eq!(raft.ready().messages, needs(CHUNK_BYTES as u64));
    raft.advance();
    raft.step(message(
        1,
        2,
        2,
        chunk(&meta, &data, 2 * CHUNK_BYTES, CHUNK_BYTES),
    ))
    .expect("valid");
    let ready = raft.ready();
    assert_eq!(ready.messages, needs(CHUNK_BYTES as u64), "chunk 1 was skipped");
    assert!(ready.snapshot.is_none());
    raft.advance();
    assert_eq!(raft.committed(), 1);
}

/// Thesis §5.3 receiver step 6: "if existing log entry has same index and term as
/// snapshot's last included entry, retain log entries following it and reply".
#[test]
fn a_follower_that_already_holds_the_snapshots_last_entry_keeps_its_log() {
    let mut raft = follower(2);
    let entries: Vec<Entry> = (2..=6).map(|index| data_entry(index, 2)).collect();
    let append = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: entries.clone(),
        leader_commit: 1,
    };
    raft.step(message(1, 2, 2, MessageBody::Append(append)))
        .expect("valid append");
    let _ = raft.ready();
    raft.advance();
    assert_eq!((raft.log().last_index(), raft.committed()), (6, 1));

    let meta = SnapshotMeta {
        index: 4,
        term: 2,
        conf_state: ConfState::with_voters([1, 2, 3]),
    };
    let data = vec![1u8; 2 * CHUNK_BYTES];
    raft.step(message(1, 2, 2, chunk(&meta, &data, 0, CHUNK_BYTES)))
        .expect("valid chunk");
    let ready = raft.ready();
    assert!(ready.snapshot.is_none(), "the log already covers the snapshot");
    let ack = message(
        2,
        1,
        2,
        MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 4 }),
    );
    assert_eq!(ready.persisted_messages, vec![ack]);
    let applied: Vec<u64> = ready.committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(applied, vec![2, 3, 4], "committed through the snapshot's index");
    raft.advance();
    assert_eq!(raft.log().first_index(), 1, "nothing purged");
    assert_eq!(
        raft.log().last_index(),
        6,
        "entries after the snapshot are retained"
    );
    for entry in &entries {
        assert_eq!(raft.log().entry(entry.index), Some(entry));
    }
    assert_eq!(raft.committed(), 4);
    assert!(raft.snapshot().is_none());
}

/// Thesis §5.3 receiver step 7: a follower whose log disagrees with the snapshot's last
/// entry discards the entire log and takes the snapshot.
#[test]
fn a_follower_whose_log_conflicts_with_the_snapshot_discards_it() {
    let mut raft = follower(2);
    let append = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: (2..=6).map(|index| data_entry(index, 2)).collect(),
        leader_commit: 1,
    };
    raft.step(message(1, 2, 2, MessageBody::Append(append)))
        .expect("valid append");
    let _ = raft.ready();
    raft.advance();

    let meta = SnapshotMeta {
        index: 4,
        term: 3,
        conf_state: ConfState::with_voters([1, 2, 3]),
    };
    let data = vec![9u8; 40];
    raft.step(message(3, 2, 3, chunk(&meta, &data, 0, data.len())))
        .expect("valid chunk");
    let ready = raft.ready();
    assert_eq!(ready.snapshot.as_ref().map(|s| &s.meta), Some(&meta));
    let ack = message(
        2,
        3,
        3,
        MessageBody::AppendResponse(AppendResponse::Accepted { match_index: 4 }),
    );
    assert_eq!(ready.persisted_messages, vec![ack]);
    raft.advance();
    assert_eq!(raft.log().first_index(), 5);
    assert_eq!(raft.log().last_index(), 4, "the conflicting suffix is gone");
    assert_eq!(raft.log().term(4), Some(3));
    assert_eq!((raft.committed(), raft.applied(), raft.leader()), (4, 4, Some(3)));
}

/// Thesis §5.1 and paper Figure 2 (persistent state): a server restarted from a disk
/// holding a snapshot and the entries after it recovers its term, vote, log, snapshot,
/// configuration and, by re-applying from the snapshot, its state machine.
#[test]
fn a_restart_from_a_snapshot_and_later_entries_restores_everything() {
    let mut cluster = Cluster::new(&[1, 2, 3], 5);
    cluster.elect(1);
    for _ in 0..6 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    assert!(cluster.compact(1));
    let snapshot = cluster.server(1).snapshot().cloned().expect("snapshot");
    for _ in 0..5 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    cluster.run_rounds(3);
    assert!(cluster.compact(2), "a follower compacts on its own");
    cluster.propose(1).expect("leader accepts");
    cluster.deliver_all();

    for id in [1, 2] {
        let before = cluster.server(id);
        let (term, vote, committed, first, last) = (
            before.term(),
            before.vote(),
            before.committed(),
            before.log().first_index(),
            before.log().last_index(),
        );
        let entries: Vec<Entry> = (first..=last)
            .map(|i| before.log().entry(i).cloned().expect("entry"))
            .collect();
        let snapshot_meta = before.snapshot().map(|s| s.meta.clone());
        let machine = cluster.machines[&id].clone();
        assert!(first > 1 && last >= first, "{id}: a snapshot and later entries");
        assert_eq!(machine.applied, committed);

        cluster.crash(id);
        cluster.restart(id);
        let after = cluster.server(id);
        assert_eq!(after.role(), Role::Follower);
        assert_eq!((after.term(), after.vote()), (term, vote));
        assert_eq!(after.log().first_index(), first);
        assert_eq!(after.log().last_index(), last);
        let restored: Vec<Entry> = (first..=last)
            .map(|i| after.log().entry(i).cloned().expect("entry"))
            .collect();
        assert_eq!(restored, entries);
        assert_eq!(after.snapshot().map(|s| s.meta.clone()), snapshot_meta);
        assert_eq!(
            after.committed(),
            committed,
            "the durable commit index is restored"
        );
        assert_eq!(after.applied(), committed, "re-applied from the snapshot");
        assert_eq!(after.conf_state(), &ConfState::with_voters([1, 2, 3]));
        assert_eq!(cluster.machines[&id], machine, "{id}: state machine rebuilt");
    }
    assert_eq!(
        cluster.disks[&1].snapshot.as_ref().map(|s| s.meta.index),
        Some(snapshot.meta.index)
    );

    let leader = cluster.converge(300);
    let final_machine = cluster.machines[&leader].clone();
    for id in [1, 2, 3] {
        assert_eq!(cluster.machines[&id], final_machine);
    }
}

/// Thesis §5.3 with §4.2.1: a server added after the log was compacted has nothing, so
/// the leader initialises it with the snapshot before sending the rest of the log.
#[test]
fn a_learner_added_after_compaction_is_initialised_from_the_snapshot() {
    let mut cluster = Cluster::new(&[1, 2, 3], 9);
    cluster.elect(1);
    for _ in 0..12 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    assert!(cluster.compact(1));
    let snapshot_index = cluster.server(1).snapshot().expect("snapshot").meta.index;
    cluster.start_joining(4);
    cluster
        .server_mut(1)
        .propose_conf_change(raft::ConfChange::AddLearner(4))
        .expect("valid change");
    cluster.process_ready(1);
    let mut sent = Vec::new();
    for _ in 0..20 {
        cluster.tick_all();
        sent.extend(cluster.deliver_recording());
    }
    let chunks = snapshot_chunks_to(&sent, 4);
    assert!(chunks.len() >= 2, "12 values of 8 bytes need two chunks of 64");
    assert!(chunks
        .iter()
        .all(|c| c.meta.index == snapshot_index && c.data.len() <= CHUNK_BYTES));
    let learner = cluster.server(4);
    assert_eq!(learner.snapshot().map(|s| s.meta.index), Some(snapshot_index));
    assert_eq!(learner.log().last_index(), cluster.server(1).log().last_index());
    assert!(learner.conf_state().learners.contains(&4));
    assert_eq!(cluster.machines[&4], cluster.machines[&1]);
}

/// The leader's application fills a chunk's data; one that arrives without it (an
/// application bug, or a forged message) is refused as malformed, not taken as empty.
#[test]
fn a_snapshot_chunk_without_its_data_is_malformed() {
    let mut raft = follower(2);
    let meta = SnapshotMeta {
        index: 10,
        term: 2,
        conf_state: ConfState::with_voters([1, 2, 3]),
    };
    let unfilled = SnapshotChunk {
        meta,
        total_bytes: 100,
        offset: 0,
        data_bytes_max: CHUNK_BYTES as u32,
        data: Vec::new(),
    };
    assert_eq!(unfilled.range_to_fill(), Some((0, CHUNK_BYTES)));
    assert!(raft
        .step(message(1, 2, 2, MessageBody::InstallSnapshot(unfilled.clone())))
        .is_err());
    let oversized = SnapshotChunk {
        data: vec![0; CHUNK_BYTES + 1],
        ..unfilled
    };
    assert_eq!(oversized.range_to_fill(), None);
    assert!(raft
        .step(message(1, 2, 2, MessageBody::InstallSnapshot(oversized)))
        .is_err());
}
