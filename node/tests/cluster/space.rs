//! The space quota (issue 12, as etcd's `--quota-bytes`): past it writes fail with
//! `NoSpace` and the alarm is raised in `/metrics` and `raftkv status`, while reads,
//! deletes and compaction go on; deleting keys lets writes resume without a restart.

use client::client::ClientError;
use wire::ReadConsistency;

use crate::support::{quick_options, TestCluster};

const QUOTA_BYTES: u64 = 64 * 1024;
const VALUE_BYTES: usize = 4 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_quota_say_no_space_and_deletes_make_room() {
    let extra = ["--quota-bytes".to_string(), QUOTA_BYTES.to_string()];
    // Snapshots every 20 entries: compaction runs while the data is at its quota.
    let test = TestCluster::start_with("space", 3, 20, false, &extra).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let mut client = test.client(quick_options());

    let value = vec![b'v'; VALUE_BYTES];
    let mut stored = Vec::new();
    let refusal = loop {
        let key = format!("key-{:02}", stored.len());
        match client.put(key.clone(), value.clone()).await {
            Ok(_) => stored.push(key),
            Err(error) => break error,
        }
        assert!(
            stored.len() < 64,
            "{} values of 4 KiB went past a 64 KiB quota",
            stored.len()
        );
    };
    match &refusal {
        ClientError::NoSpace { message } => assert!(message.contains("quota"), "{message}"),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    // 4 KiB values and 6-byte keys: 15 fit under 64 KiB, the 16th would pass it.
    assert_eq!(stored.len(), 15, "{refusal}");
    test.wait_for_metric(leader.id, "raftkv_space_alarm", |alarm| alarm == 1)
        .await;
    let status = test.status(leader.id).await.expect("the leader answers");
    assert!(status.space.alarm(), "{:?}", status.space);
    assert_eq!(status.space.quota_bytes, QUOTA_BYTES);

    // Reads and deletes go on.
    let read = client
        .get(stored[0].clone(), ReadConsistency::Linearizable)
        .await
        .expect("a read at the quota");
    assert_eq!(read.as_deref(), Some(value.as_slice()));
    for key in stored.drain(..4) {
        client.delete(key).await.expect("a delete at the quota");
    }
    // Room again, with no restart.
    client
        .put("after-deletes".to_string(), value.clone())
        .await
        .expect("a write after deletes made room");
    test.wait_for_metric(leader.id, "raftkv_snapshots_total", |taken| taken >= 1)
        .await;
    test.wait_for_convergence(&ids).await;
}

/// The disk guard (`--disk-free-min-bytes`) reads the real disk of the data dir: with a
/// bound no disk here can meet, the leader refuses writes that store data with `NoSpace`
/// naming the disk, raises the alarm, and still serves reads and deletes; a node that
/// starts on a disk with less free than its ballast removes the ballast and starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_under_its_free_bound_refuses_writes_but_serves_reads_and_deletes() {
    const PEBIBYTE: u64 = 1 << 50;
    let extra = ["--disk-free-min-bytes".to_string(), PEBIBYTE.to_string()];
    let mut test = TestCluster::start_with("disk-guard", 3, 1_000, false, &extra).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    // The driver has read its disk: a real figure, under the bound.
    let free = test
        .wait_for_metric(leader.id, "raftkv_disk_free_bytes", |free| free > 0)
        .await;
    assert!(free < PEBIBYTE);
    test.wait_for_metric(leader.id, "raftkv_space_alarm", |alarm| alarm == 1)
        .await;
    let status = test.status(leader.id).await.expect("the leader answers");
    assert!(status.space.disk_alarm(), "{:?}", status.space);

    let mut client = test.client(quick_options());
    match client.put("k", "v").await {
        Err(ClientError::NoSpace { message }) => {
            assert!(message.contains("disk-free-min-bytes"), "{message}")
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    let prior = client.delete("absent").await.expect("a delete is served");
    assert!(!prior.existed());
    let value = client
        .get("k", ReadConsistency::Linearizable)
        .await
        .expect("a read is served");
    assert_eq!(value, None);

    // The ballast: reserved at start (64 MiB by default). A node that starts with less
    // free than its ballast (here, a ballast bigger than any disk) removes it to start.
    let follower = *ids.iter().find(|id| **id != leader.id).expect("a follower");
    let ballast = test
        .cluster
        .node(follower)
        .data_dir
        .join(node::storage::ballast::BALLAST_FILE);
    assert!(ballast.exists(), "no ballast at {}", ballast.display());
    test.cluster.kill(follower).expect("kill -9 of a follower");
    let since = test.cluster.log_of(follower).len();
    test.cluster
        .start_node_with(follower, &["--disk-ballast-bytes", &PEBIBYTE.to_string()])
        .expect("restarts");
    test.wait_for_log(follower, since, "removed its ballast").await;
    assert!(!ballast.exists());
    test.wait_for_convergence(&ids).await;
}
