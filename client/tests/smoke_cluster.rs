//! `raftkv smoke` against a real three-node cluster of `raftkv-node` processes: it passes
//! on a healthy cluster and fails (one error line, exit 1) when a node is down, since
//! then not every endpoint answers.
//!
//! The node binary belongs to another package, so Cargo does not build it for this one:
//! the test uses the `raftkv-node` beside `raftkv` (`cargo test --workspace` builds both
//! before it runs any test) or `RAFTKV_NODE_BIN`. Without either it says it skipped; CI sets `RAFTKV_NODE_BIN`,
//! which must then exist.

// It runs real processes: not in simulation.
#![cfg(not(madsim))]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use client::local_cluster::{LocalCluster, LocalClusterOptions};

/// The node binary; `None` (skip) only when `RAFTKV_NODE_BIN` is unset and none was
/// built. A set `RAFTKV_NODE_BIN` must exist: `ci/test.sh` sets it, so CI never skips.
fn node_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RAFTKV_NODE_BIN") {
        let path = PathBuf::from(path);
        assert!(path.exists(), "RAFTKV_NODE_BIN={} does not exist", path.display());
        return Some(path);
    }
    let path = PathBuf::from(env!("CARGO_BIN_EXE_raftkv")).with_file_name("raftkv-node");
    path.exists().then_some(path)
}

fn raftkv(endpoints: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["--endpoints", endpoints])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run raftkv")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn smoke_passes_on_a_real_cluster_and_fails_when_a_node_is_down() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let directory = tempfile_dir();
    let mut cluster = LocalCluster::start(LocalClusterOptions {
        node_binary,
        base_dir: directory.clone(),
        size: 3,
        cluster_name: "smoke-test".into(),
        tick_ms: 20,
        snapshot_every: 1_000,
        extra_args: Vec::new(),
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

/// A fresh directory under the system's temporary one (this crate has no `tempfile`).
fn tempfile_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos();
    std::env::temp_dir().join(format!("raftkv-smoke-{}-{nanos}", std::process::id()))
}
