//! Log replication: paper §5.3 (AppendEntries, consistency check, fast back-off),
//! §5.4.2 (committing entries from previous terms, Figure 8), and the flow control of
//! thesis §10.2 (batching, pipelining, bounded messages and uncommitted bytes).

use std::collections::BTreeMap;

use raft::{
    AppendRequest, AppendResponse, ConfState, Config, Entry, Index, Message, MessageBody, NodeId,
    ProposalError, Raft, RestartState, Role, SnapshotChunk, SnapshotMeta, Term, VoteRequest,
};

use crate::harness::single::{
    accepted, ack_append, bootstrapped, config_entry, data_entry, handle, heartbeat, message, restart_state,
    restarted, step, win_election,
};
use crate::harness::{test_config, Cluster, Disk};

// ----- local helpers -----------------------------------------------------------------

/// A log that starts with the bootstrap configuration of `voters` at index 1, term 1,
/// followed by data entries with the given terms.
fn log_with_terms(voters: &[NodeId], terms: &[Term]) -> Vec<Entry> {
    let data = terms
        .iter()
        .enumerate()
        .map(|(position, &term)| data_entry(position as u64 + 2, term));
    std::iter::once(config_entry(voters)).chain(data).collect()
}

/// A freshly bootstrapped `voters` cluster whose first server is leader of term 2, its
/// no-op at index 2 sent but not yet acknowledged.
fn new_leader(config: Config, voters: &[NodeId]) -> Raft {
    let mut raft = bootstrapped(config, voters);
    win_election(&mut raft);
    assert_eq!((raft.term(), raft.log().last_index()), (2, 2));
    raft
}

/// The appends in `messages` addressed to `to`.
fn appends_to(messages: &[Message], to: NodeId) -> Vec<AppendRequest> {
    messages
        .iter()
        .filter(|m| m.to == to)
        .filter_map(|m| match &m.body {
            MessageBody::Append(append) => Some(append.clone()),
            _ => None,
        })
        .collect()
}

fn indexes(entries: &[Entry]) -> Vec<Index> {
    entries.iter().map(|entry| entry.index).collect()
}

fn terms(log: &raft::RaftLog) -> Vec<Term> {
    (log.first_index()..=log.last_index())
        .map(|index| log.term(index).expect("in the log"))
        .collect()
}

/// Replaces server `id` of `cluster` by one restarted from a disk holding `entries`.
fn restart_with_log(cluster: &mut Cluster, id: NodeId, term: Term, entries: Vec<Entry>, commit: Index) {
    cluster.crash(id);
    let RestartState {
        hard_state, entries, ..
    } = restart_state(term, entries, commit);
    let disk = cluster.disks.get_mut(&id).expect("disk");
    *disk = Disk {
        hard_state,
        snapshot: None,
        entries,
        ..Disk::default()
    };
    cluster.restart(id);
}

/// Delivers everything in flight in the order it was sent (reordered pipelined appends
/// would fail their consistency check: rejections that have nothing to do with
/// back-off). Returns how many append rejections `from` sent.
fn deliver_all_in_order_counting_rejections(cluster: &mut Cluster, from: NodeId) -> usize {
    let mut rejections = 0;
    let mut budget = 100_000;
    while let Some(next) = cluster.in_flight.first() {
        let rejection = matches!(
            next.body,
            MessageBody::AppendResponse(AppendResponse::Rejected { .. })
        );
        if next.from == from && rejection {
            rejections += 1;
        }
        // `deliver` swap-removes: move the oldest message last so it goes first.
        cluster.in_flight.rotate_left(1);
        cluster.deliver(cluster.in_flight.len() - 1);
        budget -= 1;
        assert!(budget > 0, "messages never stop");
    }
    rejections
}

/// Elects `id` in `cluster` (ticking only it) and delivers everything, counting the
/// append rejections `counted` sends along the way.
fn elect_counting_rejections(cluster: &mut Cluster, id: NodeId, counted: NodeId) -> usize {
    let mut rejections = 0;
    for _ in 0..1000 {
        if cluster.server(id).role() == Role::Leader {
            return rejections + deliver_all_in_order_counting_rejections(cluster, counted);
        }
        cluster.tick(id);
        rejections += deliver_all_in_order_counting_rejections(cluster, counted);
    }
    panic!("{id} could not become leader");
}

// ----- tests -----------------------------------------------------------------------------

/// Paper §5.4.2 and Figure 8: a leader never commits an entry of an earlier term by
/// counting replicas. Server 1, leader of term 4, holds index 2 from term 2; once that
/// entry is on a majority (1, 2, 3 of 5) it is still not committed, because a server
/// with a term-3 entry at index 2 could yet be elected and overwrite it. Only when the
/// leader's own term-4 entry (index 3) is on a majority do both commit.
#[test]
fn an_entry_of_an_older_term_commits_only_with_an_entry_of_the_current_term() {
    let voters = [1, 2, 3, 4, 5];
    // One entry per append, so the replicas of index 2 and 3 are acknowledged apart.
    let config = Config {
        max_append_bytes_per_message: 1,
        ..test_config(1)
    };
    let mut leader = restarted(config, 3, log_with_terms(&voters, &[2]), 1);
    let ready = win_election(&mut leader);
    assert_eq!(
        (leader.term(), leader.log().last_index(), leader.log().term(3)),
        (4, 3, Some(4))
    );
    assert_eq!(appends_to(&ready.messages, 2)[0].prev_log_index, 2);

    // Followers 2 and 3 hold only index 1; they reject the probe after index 2 with the
    // hint a follower computes (its last index 1, of term 1).
    for follower in [2, 3] {
        let rejection = AppendResponse::Rejected {
            rejected_prev_index: 2,
            hint_index: 1,
            hint_term: 1,
        };
        let ready = step(
            &mut leader,
            message(follower, 1, 4, MessageBody::AppendResponse(rejection)),
        );
        let resent = appends_to(&ready.messages, follower);
        assert_eq!(resent.len(), 1);
        assert_eq!(
            (resent[0].prev_log_index, indexes(&resent[0].entries)),
            (1, vec![2])
        );
    }
    // Index 2 (term 2) is now stored on servers 1, 2 and 3: a majority of five.
    for follower in [2, 3] {
        let ready = ack_append(&mut leader, follower, 2);
        assert!(
            ready.committed_entries.is_empty(),
            "committed an old-term entry by counting replicas"
        );
        assert_eq!(leader.committed(), 1);
        // The leader goes on with its own entry, pipelined.
        assert_eq!(indexes(&appends_to(&ready.messages, follower)[0].entries), [3]);
    }
    let matches: Vec<(NodeId, Index)> = leader
        .status()
        .progress
        .iter()
        .map(|p| (p.id, p.match_index))
        .collect();
    assert_eq!(matches, [(2, 2), (3, 2), (4, 0), (5, 0)]);

    // Index 3 (term 4) on servers 1 and 2: not a majority yet.
    let ready = ack_append(&mut leader, 2, 3);
    assert!(ready.committed_entries.is_empty());
    assert_eq!(leader.committed(), 1);
    // On servers 1, 2 and 3: index 3 commits, and index 2 with it.
    let ready = ack_append(&mut leader, 3, 3);
    assert_eq!(leader.committed(), 3);
    assert_eq!(indexes(&ready.committed_entries), [2, 3]);
}

/// Paper §5.3, "the protocol can be optimized to reduce the number of rejected
/// AppendEntries RPCs": a follower whose log diverges for dozens of entries over two
/// terms is repaired after a single rejection: the follower's hint names its term at
/// the probed index, and the leader skips every entry of its own above that term.
/// Naive back-off (one index per round trip) would take 30 rejections here. The
/// follower then holds exactly the leader's log: its conflicting suffix is gone.
#[test]
fn a_long_divergent_follower_log_is_repaired_after_a_single_rejection() {
    let voters = [1, 2, 3];
    // Term 2 replicated 2..=21 everywhere. Server 2 then led terms 3 and 4 alone
    // (22..=60 and 61..=101); server 1 led term 5 with server 3 (22..=51).
    let leader_terms: Vec<Term> = (2..=51).map(|index| if index <= 21 { 2 } else { 5 }).collect();
    let diverged_terms: Vec<Term> = (2..=101)
        .map(|index| match index {
            ..=21 => 2,
            22..=60 => 3,
            _ => 4,
        })
        .collect();
    let mut cluster = Cluster::new(&voters, 3);
    restart_with_log(&mut cluster, 1, 5, log_with_terms(&voters, &leader_terms), 21);
    restart_with_log(&mut cluster, 3, 5, log_with_terms(&voters, &leader_terms), 21);
    restart_with_log(&mut cluster, 2, 4, log_with_terms(&voters, &diverged_terms), 21);

    let rejections = elect_counting_rejections(&mut cluster, 1, 2);
    let leader = cluster.server(1);
    assert_eq!((leader.term(), leader.log().last_index()), (6, 52));
    let follower = cluster.server(2);
    assert_eq!(
        terms(follower.log()),
        terms(leader.log()),
        "the follower's log was not repaired"
    );
    assert_eq!(follower.committed(), 52);
    assert_eq!(rejections, 1, "30 divergent leader entries, 80 on the follower");
}

/// Paper §5.3: a follower that is merely behind answers the probe with its last index
/// as the hint, so the leader jumps straight there instead of walking back one index
/// per rejection.
#[test]
fn a_lagging_follower_is_found_in_one_rejection() {
    let voters = [1, 2, 3];
    let full: Vec<Term> = vec![2; 50];
    let mut cluster = Cluster::new(&voters, 4);
    restart_with_log(&mut cluster, 1, 2, log_with_terms(&voters, &full), 1);
    restart_with_log(&mut cluster, 3, 2, log_with_terms(&voters, &full), 1);
    restart_with_log(&mut cluster, 2, 2, log_with_terms(&voters, &[]), 1);
    let rejections = elect_counting_rejections(&mut cluster, 1, 2);
    assert_eq!(rejections, 1);
    assert_eq!(terms(cluster.server(2).log()), terms(cluster.server(1).log()));
    assert_eq!(cluster.server(2).log().last_index(), 52);
}

/// Thesis §10.2.1 (pipelining) and etcd's inflight window: a follower in replicate
/// state receives several appends without waiting for acknowledgements, but never more
/// than `max_inflight_appends_per_follower` unacknowledged; each acknowledgement opens
/// the window for more. A follower still being probed gets one append at a time.
#[test]
fn appends_are_pipelined_up_to_the_inflight_window_and_no_further() {
    let window = 3;
    let config = Config {
        max_append_bytes_per_message: 1,
        max_inflight_appends_per_follower: window,
        ..test_config(1)
    };
    let mut leader = new_leader(config, &[1, 2, 3]);
    ack_append(&mut leader, 2, 2);
    for value in 0..10u64 {
        leader.propose(value.to_be_bytes().to_vec()).expect("accepted");
    }
    let last = leader.log().last_index();
    assert_eq!(last, 12);

    // What the test has seen sent to 2 and not yet acknowledged, by last index.
    let mut outstanding: Vec<Index> = Vec::new();
    let mut sent_to_3 = 0;
    let mut ready = handle(&mut leader);
    let mut first = true;
    let mut acked = 2;
    while acked < last {
        // Empty appends only carry the commit index and take no place in the window.
        for append in appends_to(&ready.messages, 2)
            .into_iter()
            .filter(|a| !a.entries.is_empty())
        {
            assert_eq!(
                append.entries.len(),
                1,
                "the byte bound allows one entry per append"
            );
            assert_eq!(
                append.prev_log_index,
                outstanding.last().copied().unwrap_or(acked)
            );
            outstanding.push(append.entries[0].index);
        }
        sent_to_3 += appends_to(&ready.messages, 3).len();
        assert!(
            outstanding.len() <= window,
            "{} appends in flight: {outstanding:?}",
            outstanding.len()
        );
        if first {
            assert_eq!(
                outstanding,
                [3, 4, 5],
                "the first batch fills the window without waiting"
            );
            first = false;
        }
        assert_eq!(leader.status().progress[0].inflight_appends, outstanding.len());
        // Acknowledge the oldest append in flight: exactly one slot opens.
        acked = outstanding.remove(0);
        ready = ack_append(&mut leader, 2, acked);
        let refill = appends_to(&ready.messages, 2)
            .iter()
            .filter(|a| !a.entries.is_empty())
            .count();
        assert!(refill <= 1, "one acknowledgement released {refill} appends");
    }
    assert_eq!(leader.status().progress[0].match_index, last);
    assert_eq!(
        sent_to_3, 0,
        "a probed follower with a probe outstanding got more appends"
    );
}

/// Thesis §10.2 (batching) with a byte bound: no append carries more than
/// `max_append_bytes_per_message` of entries, except that one entry always goes even
/// if it alone is larger, so replication cannot stall.
#[test]
fn append_messages_are_bounded_in_bytes_but_carry_at_least_one_entry() {
    let max_bytes = 100;
    let config = Config {
        max_append_bytes_per_message: max_bytes,
        ..test_config(1)
    };
    let mut leader = new_leader(config, &[1, 2, 3]);
    ack_append(&mut leader, 2, 2);
    // Entries of 20 data bytes: two fit in 100 bytes, three do not.
    for _ in 0..5 {
        leader.propose(vec![1; 20]).expect("accepted");
    }
    let ready = handle(&mut leader);
    let appends = appends_to(&ready.messages, 2);
    let sizes: Vec<usize> = appends
        .iter()
        .map(|a| a.entries.iter().map(Entry::size_bytes).sum())
        .collect();
    assert_eq!(
        appends.iter().map(|a| indexes(&a.entries)).collect::<Vec<_>>(),
        [vec![3, 4], vec![5, 6], vec![7]]
    );
    assert!(
        sizes.iter().all(|&size| size <= max_bytes),
        "append sizes {sizes:?}"
    );

    let big = leader.propose(vec![2; 3 * max_bytes]).expect("accepted");
    let ready = handle(&mut leader);
    let appends = appends_to(&ready.messages, 2);
    assert_eq!(appends.len(), 1);
    assert_eq!(indexes(&appends[0].entries), [big.index]);
}

/// Thesis §10.2.1 (batching): proposals made between two `ready` calls leave as one
/// append per follower and one write to disk, not one per proposal.
#[test]
fn proposals_between_two_readies_leave_as_one_append_per_follower() {
    let mut leader = new_leader(test_config(1), &[1, 2, 3]);
    ack_append(&mut leader, 2, 2);
    ack_append(&mut leader, 3, 2);
    handle(&mut leader);
    for value in 0..6u64 {
        leader.propose(value.to_be_bytes().to_vec()).expect("accepted");
    }
    let ready = handle(&mut leader);
    assert_eq!(
        indexes(&ready.entries),
        [3, 4, 5, 6, 7, 8],
        "one write for all proposals"
    );
    let mut per_follower: BTreeMap<NodeId, Vec<Vec<Index>>> = BTreeMap::new();
    for follower in [2, 3] {
        let appends = appends_to(&ready.messages, follower);
        per_follower.insert(follower, appends.iter().map(|a| indexes(&a.entries)).collect());
    }
    let batch = vec![vec![3, 4, 5, 6, 7, 8]];
    assert_eq!(per_follower, BTreeMap::from([(2, batch.clone()), (3, batch)]));
}

/// Thesis §10.2.1 and the crate's flow control: a leader refuses proposals with
/// `UncommittedBytesExceeded` while more than `max_uncommitted_bytes` are appended but
/// not committed, appends nothing for a refused proposal, and accepts again once
/// commitment frees the budget. A single entry is admitted whatever its size when
/// nothing is uncommitted, so progress is always possible.
#[test]
fn proposals_beyond_the_uncommitted_byte_bound_are_refused_until_entries_commit() {
    let config = Config {
        max_uncommitted_bytes: 200,
        ..test_config(1)
    };
    let mut leader = new_leader(config, &[1, 2, 3]);
    // The no-op (24 bytes) is uncommitted; each proposal adds 24 + 8 bytes.
    for _ in 0..5 {
        leader.propose(vec![0; 8]).expect("within the bound");
    }
    assert_eq!(
        leader.propose(vec![0; 8]),
        Err(ProposalError::UncommittedBytesExceeded)
    );
    assert_eq!(leader.log().last_index(), 7, "a refused proposal left an entry");
    handle(&mut leader);

    ack_append(&mut leader, 2, 7);
    assert_eq!(leader.committed(), 7);
    let huge = leader
        .propose(vec![0; 1000])
        .expect("nothing uncommitted: one entry always fits");
    assert_eq!(huge.index, 8);
    assert_eq!(
        leader.propose(vec![0; 8]),
        Err(ProposalError::UncommittedBytesExceeded)
    );
    handle(&mut leader);
    ack_append(&mut leader, 2, 8);
    assert!(leader.propose(vec![0; 8]).is_ok());
}

/// Paper §5.3, AppendEntries receiver step 3: an existing entry that conflicts with a
/// new one (same index, different term) is deleted with all that follow it; entries
/// that match are kept, so a stale or duplicated shorter append truncates nothing.
#[test]
fn a_follower_truncates_its_conflicting_uncommitted_suffix() {
    let voters = [1, 2, 3];
    let mut follower = restarted(test_config(2), 2, log_with_terms(&voters, &[2, 2, 2]), 1);
    assert_eq!(terms(follower.log()), [1, 2, 2, 2]);

    let append = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![data_entry(2, 3), data_entry(3, 3)],
        leader_commit: 1,
    };
    let ready = step(&mut follower, message(1, 2, 3, MessageBody::Append(append)));
    assert_eq!(
        terms(follower.log()),
        [1, 3, 3],
        "index 4 of term 2 must go with the conflict"
    );
    assert_eq!(ready.entries, [data_entry(2, 3), data_entry(3, 3)]);
    assert_eq!(ready.persisted_messages, [message(2, 1, 3, accepted(3))]);

    // The first of those two entries again, delivered late: nothing is truncated.
    let stale = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![data_entry(2, 3)],
        leader_commit: 1,
    };
    let ready = step(&mut follower, message(1, 2, 3, MessageBody::Append(stale)));
    assert_eq!(terms(follower.log()), [1, 3, 3]);
    assert!(ready.entries.is_empty());
    assert_eq!(ready.persisted_messages, [message(2, 1, 3, accepted(2))]);
}

/// Paper §5.3, AppendEntries receiver step 2: an append whose previous entry the
/// follower lacks is rejected, with a hint, and the log is left alone.
#[test]
fn an_append_that_fails_the_consistency_check_is_rejected_and_changes_no_entry() {
    let voters = [1, 2, 3];
    let mut follower = restarted(test_config(2), 2, log_with_terms(&voters, &[2, 2]), 1);
    let append = AppendRequest {
        prev_log_index: 7,
        prev_log_term: 3,
        entries: vec![data_entry(8, 3)],
        leader_commit: 6,
    };
    let ready = step(&mut follower, message(1, 2, 3, MessageBody::Append(append)));
    let rejection = AppendResponse::Rejected {
        rejected_prev_index: 7,
        hint_index: 3,
        hint_term: 2,
    };
    assert_eq!(
        ready.persisted_messages,
        [message(2, 1, 3, MessageBody::AppendResponse(rejection))]
    );
    assert_eq!(terms(follower.log()), [1, 2, 2]);
    assert_eq!(follower.committed(), 1);
}

/// Everything observable about a server, to show a refused message changed nothing.
fn observable(raft: &Raft) -> (raft::Status, Vec<Term>, bool) {
    (raft.status(), terms(raft.log()), raft.has_ready())
}

/// The crate's contract ("a message that cannot be valid is refused with an error and
/// changes nothing"), for messages impossible in Raft: misaddressed, from oneself,
/// entries that skip indexes, go back in term or are newer than their leader (paper
/// §5.3), a candidate claiming a log newer than its term, a snapshot chunk past its end.
/// Even a higher term on such a message does not move this server's term.
#[test]
fn a_malformed_message_is_refused_with_an_error_and_changes_nothing() {
    let voters = [1, 2, 3];
    let mut follower = restarted(test_config(2), 2, log_with_terms(&voters, &[2]), 1);
    let heartbeat = heartbeat(1);
    step(&mut follower, message(1, 2, 2, heartbeat.clone()));
    let before = observable(&follower);
    assert_eq!((before.0.term, before.0.leader, before.2), (2, Some(1), false));

    let append = |prev_log_index, prev_log_term, entries: Vec<Entry>| {
        MessageBody::Append(AppendRequest {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: 1,
        })
    };
    let chunk = SnapshotChunk {
        meta: SnapshotMeta {
            index: 5,
            term: 2,
            conf_state: ConfState::with_voters(voters),
        },
        total_bytes: 4,
        offset: 2,
        data_bytes_max: 4,
        data: vec![0; 4],
    };
    let stale_candidate = VoteRequest {
        last_log_index: 9,
        last_log_term: 7,
        leadership_transfer: false,
    };
    let malformed = [
        ("addressed to another server", message(1, 3, 2, heartbeat.clone())),
        ("sent by this server", message(2, 2, 2, heartbeat)),
        (
            "index gap",
            message(1, 2, 2, append(2, 2, vec![data_entry(4, 2)])),
        ),
        (
            "index before prev",
            message(1, 2, 2, append(2, 2, vec![data_entry(2, 2)])),
        ),
        (
            "entry newer than its leader",
            message(1, 2, 2, append(2, 2, vec![data_entry(3, 3)])),
        ),
        (
            "terms going back",
            message(1, 2, 3, append(2, 2, vec![data_entry(3, 3), data_entry(4, 2)])),
        ),
        (
            "prev term newer than its leader",
            message(1, 2, 2, append(2, 3, vec![])),
        ),
        (
            "higher term, index gap",
            message(1, 2, 9, append(2, 2, vec![data_entry(5, 9)])),
        ),
        (
            "vote from the future",
            message(3, 2, 5, MessageBody::Vote(stale_candidate)),
        ),
        (
            "chunk past its end",
            message(1, 2, 2, MessageBody::InstallSnapshot(chunk)),
        ),
    ];
    for (what, message) in malformed {
        let result = follower.step(message);
        assert!(result.is_err(), "{what}: accepted");
        assert_eq!(
            observable(&follower),
            before,
            "{what}: the refused message changed the server"
        );
    }
}

/// Paper §5.2 (election safety: at most one leader per term): a leader that receives an
/// append claiming leadership of its own term refuses it as malformed and keeps leading.
#[test]
fn a_second_leader_of_the_same_term_is_refused_as_malformed() {
    let mut leader = new_leader(test_config(1), &[1, 2, 3]);
    let append = AppendRequest {
        prev_log_index: 1,
        prev_log_term: 1,
        entries: vec![data_entry(2, 2)],
        leader_commit: 1,
    };
    let log_before = terms(leader.log());
    assert!(leader
        .step(message(2, 1, 2, MessageBody::Append(append)))
        .is_err());
    assert_eq!(leader.role(), Role::Leader);
    assert_eq!(terms(leader.log()), log_before);
}

/// Paper §5.4 (leader completeness, state machine safety): committed entries are never
/// replaced, so an append that contradicts one can only come from a broken peer. It is
/// refused with an error, not a panic and not an acknowledgement, and the committed
/// entries stay as they are.
#[test]
fn an_append_conflicting_with_committed_entries_is_an_error_not_a_panic() {
    let voters = [1, 2, 3];
    // Entries 1..=3 committed, 4 not.
    let mut follower = restarted(test_config(2), 2, log_with_terms(&voters, &[2, 2, 2]), 3);
    assert_eq!(follower.committed(), 3);
    let append = |prev_log_index, prev_log_term, entries: Vec<Entry>| {
        MessageBody::Append(AppendRequest {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit: 4,
        })
    };
    let conflicting = [
        (
            "replaces committed 2 and 3",
            append(1, 1, vec![data_entry(2, 3), data_entry(3, 3)]),
        ),
        (
            "replaces committed 3",
            append(2, 2, vec![data_entry(3, 3), data_entry(4, 3)]),
        ),
        (
            "prev contradicts committed 2",
            append(2, 3, vec![data_entry(3, 3)]),
        ),
        (
            "prev contradicts committed 3",
            append(3, 3, vec![data_entry(4, 3)]),
        ),
    ];
    for (what, body) in conflicting {
        let result = follower.step(message(1, 2, 3, body));
        assert!(result.is_err(), "{what}: accepted");
        let ready = handle(&mut follower);
        assert!(
            ready.persisted_messages.is_empty(),
            "{what}: answered {:?}",
            ready.persisted_messages
        );
        assert!(ready.entries.is_empty());
        assert_eq!(terms(follower.log()), [1, 2, 2, 2], "{what}: the log changed");
        assert_eq!(follower.committed(), 3);
    }
    // An honest duplicate of committed entries is still acknowledged.
    let ready = step(
        &mut follower,
        message(1, 2, 3, append(1, 1, vec![data_entry(2, 2)])),
    );
    assert_eq!(ready.persisted_messages, [message(2, 1, 3, accepted(3))]);
}
