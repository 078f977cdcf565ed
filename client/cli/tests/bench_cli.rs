//! `raftkv bench` run as a user would, against a cluster that is not there. The
//! local-cluster path (`--local`) starts real nodes and is covered by the integration
//! tests that build `raftkv-node`; this file stays fast.

// It runs a real `raftkv` process: not in simulation.
#![cfg(not(madsim))]

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A loopback address nothing listens on: the port was bound, then released.
fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("bound address").to_string()
}

fn raftkv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .env_remove("RAFTKV_ENDPOINTS")
        .env_remove("RAFTKV_NODE_BIN")
        .env_remove("RUST_LOG")
        .output()
        .expect("run raftkv")
}

#[test]
fn bench_against_nothing_fails_with_one_error_line_and_no_table() {
    let dead = dead_address();
    let started = Instant::now();
    let output = raftkv(&[
        "--endpoints",
        &dead,
        "--timeout-ms",
        "500",
        "bench",
        "--duration-secs",
        "1",
        "--warmup-secs",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert!(stderr.contains("does not serve"), "says what is wrong: {stderr}");
    assert!(stderr.contains(&dead), "names the endpoint: {stderr}");
    // The check before the load fails; no partial table is printed.
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    // Bounded by the client's deadline, not by the benchmark's length or a hang.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn bench_usage_errors_are_one_line_and_exit_2() {
    let long_prefix = "k".repeat(client::wire::KEY_BYTES_MAX);
    for args in [
        &["bench", "--clients", "0"][..],
        &["bench", "--duration-secs", "1", "--requests", "10"],
        &["bench", "--mix", "deletes"],
        &["bench", "--key-prefix", &long_prefix],
    ] {
        let output = raftkv(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}
