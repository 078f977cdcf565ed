//! The trailing window of a compaction (issue 12): entries kept before the snapshot, so a
//! follower a little behind catches up from the log, bounded in count and in bytes.

use raft::{Config, NodeId};

use crate::harness::Cluster;
use crate::snapshot::snapshot_chunks_to;

/// Issue 12: a compaction keeps `snapshot_trailing_entries` entries before its snapshot,
/// so a follower that missed fewer entries than that catches up from the log: it is
/// sent appends, never the snapshot.
#[test]
fn a_follower_within_the_trailing_window_catches_up_from_the_log() {
    fn trailing_config(id: NodeId) -> Config {
        Config {
            snapshot_trailing_entries: 10,
            ..crate::harness::test_config(id)
        }
    }
    let mut cluster = Cluster::with_config(&[1, 2, 3], 5, trailing_config);
    cluster.elect(1);
    cluster.crash(3);
    for _ in 0..6 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    let applied = cluster.machines[&1].applied;
    let missed_from = cluster.disks[&3].entries.last().expect("3 has a log").index + 1;
    assert!(
        applied - missed_from < 10,
        "3 missed fewer entries than the window"
    );
    let image = cluster.machines[&1].encode();
    let compaction = cluster
        .server_mut(1)
        .compact(applied, image.len() as u64)
        .expect("applied index compacts");
    assert_eq!(
        compaction.meta.index, applied,
        "the snapshot covers everything applied"
    );
    assert_eq!(
        compaction.purged_to,
        applied.saturating_sub(10),
        "the window stays"
    );
    assert_eq!(cluster.server(1).log().first_index(), compaction.purged_to + 1);

    cluster.restart(3);
    let mut sent = Vec::new();
    for _ in 0..40 {
        cluster.tick_all();
        sent.extend(cluster.deliver_recording());
    }
    assert!(
        snapshot_chunks_to(&sent, 3).is_empty(),
        "no snapshot for a follower in the window"
    );
    assert_eq!(cluster.server(3).committed(), cluster.server(1).committed());
    assert_eq!(cluster.machines[&3], cluster.machines[&1]);
}

/// The trailing window is also bounded in bytes: with no bytes allowed, a compaction
/// keeps nothing before its snapshot whatever `snapshot_trailing_entries` says.
#[test]
fn the_trailing_window_keeps_no_more_bytes_than_allowed() {
    fn byte_bounded_config(id: NodeId) -> Config {
        Config {
            snapshot_trailing_entries: 10,
            snapshot_trailing_bytes_max: 0,
            ..crate::harness::test_config(id)
        }
    }
    let mut cluster = Cluster::with_config(&[1, 2, 3], 5, byte_bounded_config);
    cluster.elect(1);
    for _ in 0..6 {
        cluster.propose(1).expect("leader accepts");
        cluster.deliver_all();
    }
    let applied = cluster.machines[&1].applied;
    let image = cluster.machines[&1].encode();
    let compaction = cluster
        .server_mut(1)
        .compact(applied, image.len() as u64)
        .expect("applied index compacts");
    assert_eq!(compaction.purged_to, applied, "no byte of the window fits");
}
