//! Crashes and restarts: the validation scenario, kill -9 under write load, catch-up by
//! snapshot after compaction, and SIGTERM hand-over.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::{describe, log_field, TestCluster, WAIT_TIMEOUT};
use crate::writers::{check_acknowledged_present, count_lines, expect_value, put, write_options, Writers};
use client::client::ClientOptions;

/// The assignment's validation, as `raftkv demo` walks it: three writes and three reads;
/// kill -9 the leader; a new leader of a higher term is elected and serves; writes
/// continue; the killed node restarts on its own disk (it recovers, it does not bootstrap
/// again) and catches up; all three apply to the same index and hold equal KV maps with
/// every written value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validation_scenario() {
    let mut test = TestCluster::start("validation", 3, 1_000).await;
    let ids = test.ids();
    let mut client = test.client(write_options());
    let leader = test.wait_for_leader(&ids).await;
    let mut written = BTreeMap::new();
    for n in 1..=3 {
        let (key, value) = (format!("validation/{n}"), format!("value-{n}"));
        put(&test, &mut client, &key, &value).await;
        written.insert(key, value);
    }
    for (key, value) in &written {
        expect_value(&test, &mut client, key, value).await;
    }

    if let Err(error) = test.cluster.kill(leader.id) {
        test.fail(&format!("cannot kill node {}: {error}", leader.id));
    }
    let killed_at = Instant::now();
    put(&test, &mut client, "validation/after-failover", "served").await;
    let failover = killed_at.elapsed();
    written.insert("validation/after-failover".into(), "served".into());
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != leader.id).collect();
    let new_leader = test.wait_for_leader(&survivors).await;
    test.check(new_leader.term > leader.term, || {
        format!(
            "the new leader's term {} is not above the killed leader's {}",
            new_leader.term, leader.term
        )
    });
    for n in 4..=6 {
        let (key, value) = (format!("validation/{n}"), format!("value-{n}"));
        put(&test, &mut client, &key, &value).await;
        written.insert(key, value);
    }
    expect_value(&test, &mut client, "validation/6", "value-6").await;

    if let Err(error) = test.cluster.start_node(leader.id) {
        test.fail(&format!("cannot restart node {}: {error}", leader.id));
    }
    let restarted_at = Instant::now();
    let converged = test.wait_for_convergence(&ids).await;
    let catch_up = restarted_at.elapsed();

    let expected: BTreeMap<Vec<u8>, Vec<u8>> = written
        .iter()
        .map(|(key, value)| (key.clone().into_bytes(), value.clone().into_bytes()))
        .collect();
    test.check(converged.kv() == expected, || {
        format!(
            "the converged KV map is not what was written: {:?}",
            converged.kv()
        )
    });
    let bootstraps = count_lines(&test.cluster.log_of(leader.id), "bootstrapping as a founder");
    test.check(bootstraps == 1, || {
        format!(
            "node {} bootstrapped {bootstraps} times: it did not recover from its disk",
            leader.id
        )
    });
    eprintln!(
        "validation: node {} (leader, term {}) killed; node {} leads term {}; failover (kill -> next \
         acknowledged write) {} ms; catch-up (restart -> all applied index {}, equal KV) {} ms",
        leader.id,
        leader.term,
        new_leader.id,
        new_leader.term,
        failover.as_millis(),
        converged.applied,
        catch_up.as_millis()
    );
}

/// Under a steady load of four concurrent writers, kill -9 the leader, restart it, then
/// kill -9 a follower and restart it. Writes must keep being acknowledged while a node is
/// down, and after convergence every node holds every acknowledged write (no
/// acknowledged write is lost). Failed writes are indeterminate and not checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_write_load_loses_no_acknowledged_write() {
    const PHASE: Duration = Duration::from_millis(1_200);
    let mut test = TestCluster::start("kill9-load", 3, 200).await;
    let ids = test.ids();
    let first_leader = test.wait_for_leader(&ids).await;
    let writers = Writers::start(&test, 4, write_options());
    tokio::time::sleep(PHASE).await;

    if let Err(error) = test.cluster.kill(first_leader.id) {
        test.fail(&format!("cannot kill node {}: {error}", first_leader.id));
    }
    let leader_killed_at = Instant::now();
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != first_leader.id).collect();
    let second_leader = test.wait_for_leader(&survivors).await;
    tokio::time::sleep(PHASE).await;
    let leader_restarted_at = Instant::now();
    if let Err(error) = test.cluster.start_node(first_leader.id) {
        test.fail(&format!("cannot restart node {}: {error}", first_leader.id));
    }
    tokio::time::sleep(PHASE).await;

    let follower = ids
        .iter()
        .copied()
        .find(|id| *id != second_leader.id && *id != first_leader.id)
        .expect("three nodes");
    if let Err(error) = test.cluster.kill(follower) {
        test.fail(&format!("cannot kill node {follower}: {error}"));
    }
    let follower_killed_at = Instant::now();
    tokio::time::sleep(PHASE).await;
    let follower_restarted_at = Instant::now();
    if let Err(error) = test.cluster.start_node(follower) {
        test.fail(&format!("cannot restart node {follower}: {error}"));
    }
    tokio::time::sleep(PHASE).await;
    let report = writers.stop(&test).await;

    let acknowledged_between = |from: Instant, to: Instant| {
        report
            .acknowledged
            .iter()
            .filter(|ack| ack.at > from && ack.at < to)
            .count()
    };
    let while_leader_down = acknowledged_between(leader_killed_at, leader_restarted_at);
    let while_follower_down = acknowledged_between(follower_killed_at, follower_restarted_at);
    test.check(while_leader_down > 0 && while_follower_down > 0, || {
        format!(
            "writes stalled: {while_leader_down} acknowledged while the old leader was down, \
             {while_follower_down} while the follower was down ({} errors: {:?})",
            report.errors.len(),
            &report.errors[..report.errors.len().min(5)]
        )
    });
    let converged = test.wait_for_convergence(&ids).await;
    check_acknowledged_present(&test, &converged, &report.acknowledged);
    eprintln!(
        "kill -9 under load: {} writes acknowledged ({while_leader_down} with the leader down, \
         {while_follower_down} with a follower down), {} indeterminate; all present on every node \
         at applied index {}",
        report.acknowledged.len(),
        report.errors.len(),
        converged.applied
    );
}

/// With a snapshot every 20 entries, a follower is killed and 200 writes follow, so the
/// leader compacts its log past everything the follower holds. Restarted, the follower
/// can only catch up by installing the leader's snapshot: it logs the installation, its
/// log starts after the snapshot (first index > 1, snapshot index beyond what it had),
/// and its KV map equals the others', all 200 writes included.
///
/// "Everything the follower holds" is more than its log at the kill. The leader goes on
/// pipelining appends to the dead follower until its window
/// (`max_inflight_appends_per_follower`, 64) is full, and the transport keeps them queued
/// while the peer is unreachable (`transport/outbound.rs`): restarted, the follower first
/// receives them and holds every entry below the leader's `next_index` for it. Under load
/// the leader batches more writes per append and the window can carry all 200; a
/// compaction that passed only its log at the kill then leaves it nothing to need a
/// snapshot for. So writes go on until the leader's log starts above that `next_index`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_compaction_catches_up_by_snapshot() {
    const WRITERS: usize = 4;
    const WRITES_PER_WRITER: usize = 50;
    const MORE_WRITES_PER_ROUND: usize = 10;
    // No trailing window: the follower's whole log is purged, so it needs the snapshot.
    let extra = ["--snapshot-trailing-entries=0".to_string()];
    let mut test = TestCluster::start_with("snapshot-catch-up", 3, 20, false, &extra).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let follower = ids
        .iter()
        .copied()
        .find(|id| *id != leader.id)
        .expect("three nodes");
    let mut client = test.client(write_options());
    for n in 1..=5 {
        put(&test, &mut client, &format!("before/{n}"), "x").await;
    }
    test.wait_for_convergence(&ids).await;
    let Some(before) = test.status(follower).await else {
        test.fail(&format!("node {follower} does not answer"));
    };
    if let Err(error) = test.cluster.kill(follower) {
        test.fail(&format!("cannot kill node {follower}: {error}"));
    }

    let mut handles = Vec::new();
    for writer in 0..WRITERS {
        let mut client = test.client(write_options());
        handles.push(tokio::spawn(async move {
            for n in 0..WRITES_PER_WRITER {
                let key = format!("during/{writer}/{n:03}");
                if let Err(error) = client.put(key.as_str(), key.as_str()).await {
                    return Err(format!("put {key}: {error}"));
                }
            }
            Ok(())
        }));
    }
    for handle in handles {
        match tokio::time::timeout(WAIT_TIMEOUT, handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => test.fail(&format!("a write failed with a node down: {error}")),
            Ok(Err(error)) => test.fail(&format!("a writer task failed: {error}")),
            Err(_) => test.fail(&format!("writers did not finish within {WAIT_TIMEOUT:?}")),
        }
    }
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != follower).collect();
    // Every entry the follower can hold once restarted, its log at the kill and the appends
    // queued for it since, lies below the leader's `next_index` for it: only when the
    // leader's log starts above it can no append connect. Sequential writes fill the
    // leader's window to the follower (one append each), then compact past it.
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let mut more = 0usize;
    let (current_leader, sent_through) = loop {
        let leader = test.wait_for_leader(&survivors).await;
        let next_index = leader
            .peers
            .iter()
            .find(|peer| peer.id == follower)
            .map(|peer| peer.next_index);
        if let Some(next_index) = next_index.filter(|next| leader.first_index > *next) {
            break (leader, next_index - 1);
        }
        if Instant::now() > deadline {
            test.fail(&format!(
                "precondition: after {more} more writes the leader still holds entries the follower may \
                 have (follower last index {} before the kill, next index {next_index:?} at the leader): {}",
                before.last_index,
                describe(&leader)
            ));
        }
        for _ in 0..MORE_WRITES_PER_ROUND {
            put(&test, &mut client, &format!("more/{more:04}"), "x").await;
            more += 1;
        }
    };
    let sent_through = sent_through.max(before.last_index);

    if let Err(error) = test.cluster.start_node(follower) {
        test.fail(&format!("cannot restart node {follower}: {error}"));
    }
    let restarted_at = Instant::now();
    let converged = test.wait_for_convergence(&ids).await;
    let catch_up = restarted_at.elapsed();
    let restarted = converged
        .statuses
        .iter()
        .find(|status| status.id == follower)
        .expect("converged covers every node");
    test.check(
        restarted.first_index > 1 && restarted.snapshot_index > sent_through,
        || {
            format!(
                "node {follower} shows no snapshot beyond what it held (last index {} before the kill, \
                 {sent_through} sent to it): {}",
                before.last_index,
                describe(restarted)
            )
        },
    );
    let dump = converged
        .dumps
        .iter()
        .find(|dump| dump.status.id == follower)
        .expect("converged covers every node");
    test.check(dump.log.first().is_none_or(|(index, _, _)| *index > 1), || {
        format!(
            "node {follower}'s log still starts at index {:?}",
            dump.log.first()
        )
    });
    let installed = count_lines(
        &test.cluster.log_of(follower),
        "installed snapshot from the leader",
    );
    test.check(installed > 0, || {
        format!("node {follower} never logged \"installed snapshot from the leader\"")
    });
    let during = converged
        .kv()
        .keys()
        .filter(|key| key.starts_with(b"during/"))
        .count();
    let more_present = converged
        .kv()
        .keys()
        .filter(|key| key.starts_with(b"more/"))
        .count();
    test.check(
        during == WRITERS * WRITES_PER_WRITER && more_present == more,
        || {
            format!(
                "the converged map holds {during} of the {} writes and {more_present} of the {more} more \
             made while node {follower} was down",
                WRITERS * WRITES_PER_WRITER
            )
        },
    );
    eprintln!(
        "snapshot catch-up: node {follower} had last index {}, {sent_through} sent to it ({more} more \
         writes); the leader compacted to first index {}; restarted, it installed a snapshot at {} and \
         converged at applied {} in {} ms",
        before.last_index,
        current_leader.first_index,
        restarted.snapshot_index,
        converged.applied,
        catch_up.as_millis()
    );
}

/// Three writers write continuously while the leader gets SIGTERM. The leader hands
/// leadership to its most up-to-date follower (the target it logs), exits with code 0
/// well within a Kubernetes grace period, the target leads the remaining two, and not
/// one client call fails during the whole test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_over_with_no_failed_request() {
    const GRACE: Duration = Duration::from_secs(10);
    const PHASE: Duration = Duration::from_millis(1_000);
    let mut test = TestCluster::start("sigterm", 3, 1_000).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(20),
    };
    let writers = Writers::start(&test, 3, options);
    tokio::time::sleep(PHASE).await;

    let terminated_at = Instant::now();
    let exit = tokio::task::block_in_place(|| test.cluster.terminate(leader.id));
    let shutdown = terminated_at.elapsed();
    match exit {
        Ok(Some(0)) => {}
        other => test.fail(&format!(
            "node {} exited with {other:?} on SIGTERM, not 0",
            leader.id
        )),
    }
    test.check(shutdown < GRACE, || {
        format!("node {} took {shutdown:?} to exit, over {GRACE:?}", leader.id)
    });
    let leader_log = test.cluster.log_of(leader.id);
    let Some(target) = log_field(&leader_log, "transferring leadership", "target_id") else {
        test.fail(&format!(
            "node {} did not log a leadership transfer target",
            leader.id
        ));
    };
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != leader.id).collect();
    let new_leader = test.wait_for_leader(&survivors).await;
    test.check(new_leader.id.to_string() == target, || {
        format!(
            "node {} leads, but the old leader handed over to node {target}",
            new_leader.id
        )
    });
    tokio::time::sleep(PHASE).await;
    let report = writers.stop(&test).await;

    test.check(report.errors.is_empty(), || {
        format!(
            "{} client calls failed around the SIGTERM hand-over: {:?}",
            report.errors.len(),
            &report.errors[..report.errors.len().min(10)]
        )
    });
    let after = report
        .acknowledged
        .iter()
        .filter(|ack| ack.at > terminated_at + shutdown)
        .count();
    test.check(after > 0, || {
        "no write was acknowledged after the old leader exited".into()
    });
    let converged = test.wait_for_convergence(&survivors).await;
    check_acknowledged_present(&test, &converged, &report.acknowledged);
    eprintln!(
        "sigterm: node {} exited 0 after {} ms, handed over to node {target} (term {}); {} writes \
         acknowledged ({after} after the exit), 0 failed",
        leader.id,
        shutdown.as_millis(),
        new_leader.term,
        report.acknowledged.len()
    );
}
