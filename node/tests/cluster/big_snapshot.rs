//! Issue 12: a large state machine is snapshotted off the driver loop, streamed to a new
//! member in chunks and installed there, while nobody holds an election, and the new
//! member then serves every key.
//!
//! `SNAPSHOT_TEST_MIB` sets the size of the data (CI default 48 MiB; the full
//! size is `SNAPSHOT_TEST_MIB=1024`). The figures (load, transfer, install) are printed.

use std::time::{Duration, Instant};

use client::client::{Client, ClientOptions};
use wire::{MemberRole, ReadConsistency};

use crate::support::{Garbage, TestCluster};
use crate::writers::write_options;

const VALUE_BYTES: usize = 256 * 1024;
const WRITERS: u64 = 4;

fn key(index: u64) -> String {
    format!("big/{index:07}")
}

/// The value of `key(index)`: incompressible, and different for every key.
fn value(index: u64) -> Vec<u8> {
    Garbage::new(index.wrapping_mul(0x9E37_79B9_7F4A_7C15)).bytes(VALUE_BYTES)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_state_machine_streams_to_a_new_member_without_an_election() {
    let mib: u64 = std::env::var("SNAPSHOT_TEST_MIB")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(48);
    let puts = mib * 1024 * 1024 / VALUE_BYTES as u64;
    // Snapshots are taken during the load, so the log the new member would need is gone
    // by the time it joins: it can only catch up through a snapshot.
    let snapshot_every = (puts / 3).max(20);
    let extra = ["--snapshot-trailing-entries=4".to_string()];
    let mut test = TestCluster::start_with("big-snapshot", 3, snapshot_every, false, &extra).await;
    let leader = test.wait_for_leader(&test.ids()).await;

    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mut client = test.client(write_options());
        writers.push(tokio::spawn(async move {
            for index in (writer..puts).step_by(WRITERS as usize) {
                if let Err(error) = client.put(key(index), value(index)).await {
                    return Err(format!("put {} failed: {error}", key(index)));
                }
            }
            Ok(())
        }));
    }
    for writer in writers {
        if let Err(error) = writer.await.expect("writer task") {
            test.fail(&error);
        }
    }
    let loaded_in = started.elapsed();
    eprintln!(
        "[big-snapshot] {puts} puts of {VALUE_BYTES} bytes ({mib} MiB) in {:.1} s",
        loaded_in.as_secs_f64()
    );

    // Wait for a snapshot that holds most of the data, so the transfer is as large as
    // the data (later entries come from the log).
    let deadline = Instant::now() + Duration::from_secs(120);
    let snapshot = loop {
        let status = test.status(leader.id).await;
        if let Some(status) = status.filter(|s| s.snapshot_index >= puts * 2 / 3 && s.first_index > 1) {
            break status;
        }
        if Instant::now() > deadline {
            test.fail("the leader took no snapshot of the loaded data");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The term the cluster started in: no election may happen during the load (which
    // takes snapshots) nor the transfer.
    let term_before = leader.term;
    test.check(snapshot.term == term_before, || {
        format!("an election happened while snapshots were taken under load: {snapshot:?}")
    });

    let joined_at = Instant::now();
    let id = test.add_node().await;
    // The transfer takes a while at full size: the learner's promotion waits for it.
    let deadline = Instant::now() + Duration::from_secs(600);
    let caught_up = loop {
        let target = test.status(leader.id).await.map_or(u64::MAX, |s| s.commit);
        if let Some(status) = test.status(id).await.filter(|s| s.applied >= target) {
            break status;
        }
        if Instant::now() > deadline || !test.cluster.is_running(id) {
            test.fail(&format!("node {id} did not catch up"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let caught_up_in = joined_at.elapsed();
    eprintln!(
        "[big-snapshot] node {id} joined and caught up in {:.1} s (snapshot at {}, applied {})",
        caught_up_in.as_secs_f64(),
        caught_up.snapshot_index,
        caught_up.applied
    );
    test.check(caught_up.snapshot_index >= snapshot.snapshot_index, || {
        format!("the new member installed the snapshot: {caught_up:?}")
    });
    test.wait_for_log(id, 0, "installed snapshot from the leader")
        .await;
    let log = test.cluster.log_of(id);
    let seconds_at = |text: &str| {
        log.lines()
            .filter(|line| line.contains(text))
            .filter_map(|line| seconds_of_day(&crate::support::strip_ansi(line)))
            .next_back()
    };
    if let (Some(start), Some(end)) = (
        seconds_at("installing snapshot"),
        seconds_at("installed snapshot from the leader"),
    ) {
        eprintln!(
            "[big-snapshot] node {id} installed its last snapshot in {:.1} s",
            end - start
        );
    }
    let image_bytes = test
        .wait_for_metric(id, "raftkv_snapshot_image_bytes", |bytes| bytes > 0)
        .await;
    eprintln!("[big-snapshot] node {id} keeps an image of {image_bytes} bytes");
    test.wait_for_members("the new member a voter", |list| {
        list.member(id)
            .is_some_and(|member| member.role == MemberRole::Voter)
    })
    .await;

    // No election anywhere: every node is still in the term the load ran in.
    for node in test.ids() {
        let Some(status) = test.status(node).await else {
            test.fail(&format!("node {node} does not answer"));
        };
        test.check(status.term == term_before, || {
            format!(
                "an election happened during the snapshot: node {node} is in term {} (was {term_before})",
                status.term
            )
        });
    }

    // The new member serves every key, with the right bytes.
    let endpoint = test.endpoint(id).clone();
    let options = ClientOptions {
        request_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(20),
    };
    let mut client = test.with_tls(Client::new(vec![endpoint], options).expect("endpoint"));
    let step = (puts / 64).max(1);
    for index in (0..puts).step_by(step as usize).chain([puts - 1]) {
        match client.get(key(index), ReadConsistency::Stale).await {
            Ok(Some(found)) if found == value(index) => {}
            Ok(other) => test.fail(&format!(
                "node {id} serves {} wrongly: {:?} bytes",
                key(index),
                other.map(|v| v.len())
            )),
            Err(error) => test.fail(&format!("node {id} cannot serve {}: {error}", key(index))),
        }
    }
}

/// The time of day of a log line (`2026-12-05T02:39:35.214346Z ...`), in seconds.
fn seconds_of_day(line: &str) -> Option<f64> {
    let time = line.get(11..26)?;
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}
