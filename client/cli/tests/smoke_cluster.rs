//! `raftkv smoke` against a real three-node cluster of `raftkv-node` processes: it passes
//! on a healthy cluster and fails (one error line, exit 1) when a node is down, since
//! then not every endpoint answers.
//! The node binary: see `real_cluster`.

// It runs real processes: not in simulation.
#![cfg(not(madsim))]

mod real_cluster;

use client::local_cluster::{LocalCluster, LocalClusterOptions};
use real_cluster::{describe, node_binary, raftkv, temporary_dir};

#[test]
fn smoke_passes_on_a_real_cluster_and_fails_when_a_node_is_down() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let directory = temporary_dir("smoke");
    let mut cluster = LocalCluster::start(LocalClusterOptions {
        node_binary,
        base_dir: directory.clone(),
        size: 3,
        cluster_name: "smoke-test".into(),
        tick_ms: 20,
        snapshot_every: 1_000,
        extra_args: Vec::new(),
        tls: false,
    })
    .expect("start a local cluster");
    let endpoints = cluster.endpoints().join(",");

    // The nodes have just started: smoke waits for their election itself.
    let output = raftkv(
        &endpoints,
        &["--timeout-ms", "10000", "smoke", "--wait-ms", "30000"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("ok: one leader: all 3 endpoints answer"), "{text}");
    assert_eq!(text.matches("ok: local state: ").count(), 3, "{text}");

    cluster.kill(3).expect("kill node 3");
    let output = raftkv(
        &endpoints,
        &["--timeout-ms", "1000", "smoke", "--wait-ms", "1000"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains(&cluster.node(3).client_address) && error.contains("does not answer"),
        "{error}"
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&directory);
}
