//! `raftkv bench` run as a user would, against a cluster that is not there. The
//! local-cluster path (`--local`) starts real nodes and is covered by the integration
//! tests that build `raftkv-node`; this file stays fast.

// It runs a real `raftkv` process: not in simulation.
#![cfg(not(madsim))]

mod support;

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

/// A node that acknowledges every put, and refuses the puts numbered in `refused` with
/// an internal error (which the client library does not retry), as a node in trouble.
async fn node_acknowledging_puts(refused: std::ops::Range<usize>) -> support::FakeNode {
    use client::wire::{ErrorKind, ErrorReply, Prior, Request, Response, WriteResult};
    support::FakeNode::start(move |index, request| {
        support::Reply::respond(match request {
            Request::Write { .. } if refused.contains(&index) => Response::Error(ErrorReply {
                kind: ErrorKind::Internal,
                message: "scripted failure".to_string(),
            }),
            Request::Write { return_prior, .. } => Response::Written(WriteResult::Done {
                previous: Prior::of(None, *return_prior),
            }),
            _ => Response::Value(client::wire::ReadValue::unversioned(None)),
        })
    })
    .await
}

/// The JSON report carries what bench/compare-etcd.sh reads, and `--latency-log` has one
/// row per request: errors included, the bench going on past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_json_report_and_latency_log_cover_every_request() {
    // The preflight get is request 0; puts 20..40 fail.
    let node = node_acknowledging_puts(20..40).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("latency.csv");
    let output = support::raftkv(&[
        "--endpoints",
        &node.address,
        "--output",
        "json",
        "bench",
        "--clients",
        "2",
        "--duration-secs",
        "1",
        "--warmup-secs",
        "0",
        "--value-bytes",
        "256",
        "--latency-log",
        log.to_str().expect("utf-8 path"),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        support::stderr(&output)
    );
    // Not a terminal: no progress bar, nothing on stderr.
    assert_eq!(support::stderr(&output), "");
    let report: serde_json::Value =
        serde_json::from_str(support::stdout(&output).trim()).expect("one JSON document");
    assert_eq!(report["system"], "raftkv");
    assert_eq!(report["value_bytes"], 256);
    let put = &report["operations"]["put"];
    let ok = put["ok"].as_u64().expect("ok");
    assert_eq!(put["errors"], 20, "{report}");
    assert!(ok > 40, "{report}");
    assert!(put["latency_ms"]["p99"].as_f64().is_some(), "{report}");
    assert!(report["start_unix_ms"].as_u64().expect("start") > 1_600_000_000_000);
    assert!(report["max_ack_gap_ms"].as_f64().expect("gap") > 0.0, "{report}");
    assert_eq!(report["latency_log"], log.to_str().expect("utf-8 path"));

    let text = std::fs::read_to_string(&log).expect("the latency log");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("start_ms,latency_us,ok"));
    let rows: Vec<(f64, u64, u8)> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 3, "{line}");
            (
                cells[0].parse().expect("start_ms"),
                cells[1].parse().expect("latency_us"),
                cells[2].parse().expect("ok"),
            )
        })
        .collect();
    // No warm-up: every request logged is a measured one.
    assert_eq!(rows.iter().filter(|row| row.2 == 1).count() as u64, ok);
    assert_eq!(rows.iter().filter(|row| row.2 == 0).count(), 20);
    assert!(
        rows.iter().all(|row| row.0 >= 0.0 && row.0 < 2_000.0),
        "within the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_latency_log_that_cannot_be_written_fails_before_the_load() {
    let node = node_acknowledging_puts(0..0).await;
    let output = support::raftkv(&[
        "--endpoints",
        &node.address,
        "bench",
        "--duration-secs",
        "1",
        "--latency-log",
        "/nonexistent-dir/latency.csv",
    ])
    .await;
    let stderr = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot write /nonexistent-dir/latency.csv"),
        "{stderr}"
    );
    // Only the preflight get reached the node: no load was sent.
    assert_eq!(node.received().len(), 1, "{:?}", node.received());
}
