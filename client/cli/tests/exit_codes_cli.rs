//! Honest answers (issue 13): each exit code `raftkv --help` documents, produced by a real
//! situation against a real three-node cluster (mutual TLS, a reader role, a 64 KiB
//! quota), and the error lines that say what the client knows: a write whose leader lost
//! its quorum is "outcome unknown" (6), a read with no quorum is "unavailable" (5), and
//! `status` and `endpoint health` exit 5 while an endpoint is down.

// It runs real processes: not in simulation.
#![cfg(not(madsim))]

mod real_cluster;

use std::path::Path;
use std::time::{Duration, Instant};

use client::local_cluster::{LocalCluster, LocalClusterOptions};
use real_cluster::{describe, node_binary, raftkv, temporary_dir};
use serde_json::Value;

/// `raftkv` as `name` (a certificate under the cluster's `certs`).
fn raftkv_as(certs: &Path, name: &str, endpoints: &str, args: &[&str]) -> std::process::Output {
    let file = |extension: &str| certs.join(format!("{name}.{extension}")).display().to_string();
    let (cert, key, ca) = (
        file("crt"),
        file("key"),
        certs.join("ca.crt").display().to_string(),
    );
    let tls = [
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
        "--tls-ca",
        ca.as_str(),
    ];
    raftkv(endpoints, &[&tls[..], args].concat())
}

fn assert_exit(output: &std::process::Output, code: i32, what: &str) {
    assert_eq!(output.status.code(), Some(code), "{what}: {}", describe(output));
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_exit_code_comes_from_a_real_situation() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let directory = temporary_dir("exit-codes");
    std::fs::create_dir_all(&directory).expect("temporary dir");
    let roles = directory.join("roles");
    std::fs::write(&roles, "admin admin\nreader read\n").expect("roles file");
    let mut cluster = LocalCluster::start(LocalClusterOptions {
        node_binary,
        base_dir: directory.join("cluster"),
        size: 3,
        cluster_name: "exit-codes".into(),
        tick_ms: 20,
        snapshot_every: 1_000,
        extra_args: vec![
            "--quota-bytes".into(),
            (64 * 1024).to_string(),
            "--client-roles".into(),
            roles.display().to_string(),
        ],
        tls: true,
    })
    .expect("start a local cluster");
    let endpoints = cluster.endpoints().join(",");
    let certs = cluster.certs_dir();
    let admin = |args: &[&str]| raftkv_as(&certs, "client", &endpoints, args);

    // 0: success (once the cluster has a leader).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !admin(&["--timeout-ms", "2000", "put", "a", "1"]).status.success() {
        assert!(Instant::now() < deadline, "the cluster never took a write");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_exit(&admin(&["status"]), 0, "status with every node up");
    assert_exit(&admin(&["endpoint", "health"]), 0, "health with every node up");
    // 1: another failure (a value file that is not there).
    let missing = admin(&["put", "b", "--value-file", "/nonexistent/raftkv-value"]);
    assert_exit(&missing, 1, "an unreadable value file");
    // 2: bad usage, from clap and from the cluster.
    assert_exit(&admin(&["get"]), 2, "get without a key");
    assert_exit(
        &admin(&["member", "promote", "9"]),
        2,
        "promoting a member that is not a learner",
    );
    // 3: absent.
    let absent = admin(&["get", "nothing-here"]);
    assert_exit(&absent, 3, "get of an absent key");
    assert!(stderr(&absent).contains("not found"), "{}", describe(&absent));
    // 4: a compare that failed, with its answer on stdout.
    let cas = admin(&["cas", "a", "--expected", "0", "--new", "2"]);
    assert_exit(&cas, 4, "a failed compare");
    assert_eq!(
        String::from_utf8_lossy(&cas.stdout),
        "not swapped: current value is 1\n"
    );
    // 7: a reader writing.
    let issued = raftkv(
        &endpoints,
        &[
            "certs",
            "client",
            "--dir",
            &certs.display().to_string(),
            "--name",
            "reader",
        ],
    );
    assert_exit(&issued, 0, "issuing the reader's certificate");
    let reader = raftkv_as(&certs, "reader", &endpoints, &["put", "a", "reader"]);
    assert_exit(&reader, 7, "a reader's write");
    assert_exit(
        &raftkv_as(&certs, "reader", &endpoints, &["get", "a"]),
        0,
        "a reader's read",
    );
    // 8: past the quota (64 KiB): a 60 KiB value fits, a second does not.
    let value = directory.join("value");
    std::fs::write(&value, vec![b'v'; 60 * 1024]).expect("value file");
    let value = value.display().to_string();
    assert_exit(
        &admin(&["put", "big-1", "--value-file", &value]),
        0,
        "a value under the quota",
    );
    let refused = admin(&["put", "big-2", "--value-file", &value]);
    assert_exit(&refused, 8, "a value past the quota");
    // With --output json the failure is a document on stdout, same code.
    let json = admin(&["--output", "json", "put", "big-2", "--value-file", &value]);
    assert_exit(&json, 8, "a JSON failure");
    let json: Value = serde_json::from_slice(&json.stdout).expect("a JSON error");
    assert_eq!(json["error"]["kind"], "no_space", "{json}");

    // The quorum lost: the two followers killed, a write sent to the leader alone.
    let status = admin(&["--output", "json", "status"]);
    let rows: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let leader_id = rows[0]["status"]["leader"].as_u64().expect("a leader is known");
    let leader_address = cluster.node(leader_id).client_address.clone();
    for id in [1, 2, 3].into_iter().filter(|id| *id != leader_id) {
        cluster.kill(id).expect("kill -9 of a follower");
    }
    let alone = |args: &[&str]| raftkv_as(&certs, "client", &leader_address, args);
    // 6: the leader took a membership change but cannot commit it: it may yet be applied.
    let unknown = alone(&[
        "--timeout-ms",
        "3000",
        "member",
        "add",
        "7",
        "--peer-address",
        "127.0.0.1:9",
        "--client-address",
        "127.0.0.1:9",
    ]);
    assert_exit(&unknown, 6, "a change sent to a leader without its quorum");
    assert!(
        stderr(&unknown).contains("outcome unknown"),
        "{}",
        describe(&unknown)
    );
    // 5: a put needs its session opened through the log first, which cannot commit: the
    // put was never sent, and the error says so rather than "outcome unknown".
    let never_sent = alone(&["--timeout-ms", "2000", "put", "c", "3"]);
    assert_exit(&never_sent, 5, "a put whose session cannot open");
    assert!(
        !stderr(&never_sent).contains("outcome unknown"),
        "{}",
        describe(&never_sent)
    );
    // 5: a read has no quorum to confirm it; status and health see endpoints down.
    let read = alone(&["--timeout-ms", "2000", "get", "a"]);
    assert_exit(&read, 5, "a read without a quorum");
    assert!(!stderr(&read).contains("outcome unknown"), "{}", describe(&read));
    assert_exit(
        &admin(&["--timeout-ms", "1000", "status"]),
        5,
        "status with two nodes down",
    );
    let health = admin(&["--timeout-ms", "1000", "endpoint", "health"]);
    assert_exit(&health, 5, "health with two nodes down");
    let unhealthy = String::from_utf8_lossy(&health.stdout);
    assert_eq!(
        unhealthy.matches("is unhealthy").count(),
        3,
        "no node can serve a read: {unhealthy}"
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&directory);
}
