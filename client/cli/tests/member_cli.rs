//! `raftkv member` against a real three-node cluster: list (text and JSON), a fourth node
//! that joins by itself, remove, add a learner ahead of time, and a refused promotion
//! with its error line and exit code.

// It runs real processes: not in simulation.
#![cfg(not(madsim))]

mod real_cluster;

use std::time::{Duration, Instant};

use client::local_cluster::{LocalCluster, LocalClusterOptions};
use real_cluster::{describe, node_binary, raftkv, temporary_dir};
use serde_json::Value;

/// `member list --output json` until `accept` holds (the cluster is starting, or a node
/// joining).
fn wait_for_list(endpoints: &str, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = raftkv(
            endpoints,
            &["--timeout-ms", "2000", "--output", "json", "member", "list"],
        );
        if output.status.success() {
            let list: Value = serde_json::from_slice(&output.stdout).expect("member list prints JSON");
            if accept(&list) {
                return list;
            }
        }
        assert!(Instant::now() < deadline, "never {what}: {}", describe(&output));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn voters(list: &Value) -> Vec<u64> {
    list["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|member| member["role"] == "voter")
        .map(|member| member["id"].as_u64().expect("id"))
        .collect()
}

#[test]
fn member_commands_work_against_a_live_cluster() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let directory = temporary_dir("member-cli");
    let mut cluster = LocalCluster::start(LocalClusterOptions {
        node_binary,
        base_dir: directory.clone(),
        size: 3,
        cluster_name: "member-cli".into(),
        tick_ms: 20,
        snapshot_every: 1_000,
        extra_args: Vec::new(),
        tls: false,
    })
    .expect("start a local cluster");
    let endpoints = cluster.endpoints().join(",");
    let list = wait_for_list(&endpoints, "three voters", |list| voters(list) == [1, 2, 3]);
    assert_eq!(list["cluster_id"].as_str().map(str::len), Some(16), "{list}");

    let output = raftkv(&endpoints, &["member", "list"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("cluster ") && text.contains("ROLE") && text.contains("voter"),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        5,
        "a title, a header and one row per member: {text}"
    );

    // A fourth node, not in --peers, joins by itself.
    let id = cluster.add_node().expect("lay out node 4");
    cluster.start_node(id).expect("start node 4");
    wait_for_list(&endpoints, "four voters", |list| voters(list) == [1, 2, 3, 4]);
    let output = raftkv(&endpoints, &["member", "remove", "4"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("member 4 removed"),
        "{}",
        describe(&output)
    );
    cluster.terminate(id).expect("stop node 4");

    // Added ahead of time: a learner (its node never starts, so it stays one).
    let output = raftkv(
        &endpoints,
        &[
            "member",
            "add",
            "5",
            "--peer-address",
            "127.0.0.1:9",
            "--client-address",
            "127.0.0.1:10",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let list = wait_for_list(&endpoints, "a learner 5", |list| {
        list["members"].as_array().is_some_and(|members| {
            members
                .iter()
                .any(|member| member["id"] == 5 && member["role"] == "learner")
        })
    });
    assert_eq!(voters(&list), [1, 2, 3]);
    // Its node never started: it can never catch up, so the promotion is refused until
    // the deadline, with what the leader said.
    // Nothing was proposed, so it is "unavailable" (5), never "outcome unknown" (6).
    let output = raftkv(&endpoints, &["--timeout-ms", "1500", "member", "promote", "5"]);
    assert_eq!(output.status.code(), Some(5), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not caught up") && !stderr.contains("outcome unknown"),
        "{}",
        describe(&output)
    );
    // A request the cluster refuses as invalid: exit code 2.
    let output = raftkv(&endpoints, &["member", "promote", "9"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("9 is not a learner"),
        "{}",
        describe(&output)
    );
    let output = raftkv(&endpoints, &["member", "remove", "5"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    wait_for_list(&endpoints, "three members", |list| {
        list["members"]
            .as_array()
            .is_some_and(|members| members.len() == 3)
    });
    drop(cluster);
    let _ = std::fs::remove_dir_all(&directory);
}
