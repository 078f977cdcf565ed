//! Values as they are (issue 13), against a real three-node cluster: a 1 MiB binary value
//! round-trips byte for byte through a file and through stdin, `get --raw` writes it
//! exactly, JSON carries it in base64; a key that is not UTF-8 is stored and listed as
//! its bytes; text output escapes tabs, newlines and invalid bytes; a reader that closes
//! the pipe ends `list` quietly.

// It runs real processes: not in simulation.
#![cfg(not(madsim))]

mod real_cluster;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use client::local_cluster::{LocalCluster, LocalClusterOptions};
use client::wire::VALUE_BYTES_MAX;
use real_cluster::{describe, node_binary, raftkv, temporary_dir};
use serde_json::Value;

/// `raftkv` with `args` (any bytes) and `stdin` fed to it.
fn raftkv_with(endpoints: &str, args: &[OsString], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["--endpoints", endpoints, "--timeout-ms", "10000"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raftkv");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("feed stdin");
    drop(input);
    child.wait_with_output().expect("raftkv ends")
}

fn os(text: &str) -> OsString {
    OsString::from(text)
}

/// Bytes of every value 0..=255, newlines and NULs included, in an order no text has.
fn binary_value(length: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn decode(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("a base64 string"))
        .expect("valid base64")
}

/// Puts until the cluster answers (it is electing its first leader).
fn wait_for_put(endpoints: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = raftkv(endpoints, &["--timeout-ms", "2000", "put", "ready", "yes"]);
        if output.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster never took a write: {}",
            describe(&output)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn values_and_keys_round_trip_as_bytes() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let directory = temporary_dir("values-cli");
    let cluster = LocalCluster::start(LocalClusterOptions {
        node_binary,
        base_dir: directory.clone(),
        size: 3,
        cluster_name: "values-cli".into(),
        tick_ms: 20,
        snapshot_every: 1_000,
        extra_args: Vec::new(),
        tls: false,
    })
    .expect("start a local cluster");
    let endpoints = cluster.endpoints().join(",");
    wait_for_put(&endpoints);

    // 1 MiB of binary, from a file and from stdin, back byte for byte.
    let value = binary_value(VALUE_BYTES_MAX);
    let file = directory.join("value.bin");
    std::fs::write(&file, &value).expect("write the value file");
    let put = raftkv_with(
        &endpoints,
        &[
            os("put"),
            os("from-file"),
            os("--value-file"),
            file.clone().into(),
        ],
        b"",
    );
    assert_eq!(put.status.code(), Some(0), "{}", describe(&put));
    let put = raftkv_with(
        &endpoints,
        &[os("put"), os("from-stdin"), os("--value-file"), os("-")],
        &value,
    );
    assert_eq!(put.status.code(), Some(0), "{}", describe(&put));
    for key in ["from-file", "from-stdin"] {
        let got = raftkv_with(&endpoints, &[os("get"), os(key), os("--raw")], b"");
        assert_eq!(got.status.code(), Some(0), "{}", describe(&got));
        assert!(
            got.stdout == value,
            "{key}: {} bytes back, not the same",
            got.stdout.len()
        );
        let json = raftkv_with(&endpoints, &[os("--output"), os("json"), os("get"), os(key)], b"");
        let json: Value = serde_json::from_slice(&json.stdout).expect("one JSON document");
        assert_eq!(json["encoding"], "base64", "{json}");
        assert_eq!(decode(&json["key"]), key.as_bytes());
        assert!(decode(&json["value"]) == value, "{key}: the JSON value differs");
    }
    // One byte more than a node takes is refused before it is sent.
    let too_big = directory.join("too-big.bin");
    std::fs::write(&too_big, binary_value(VALUE_BYTES_MAX + 1)).expect("write");
    let refused = raftkv_with(
        &endpoints,
        &[os("put"), os("too-big"), os("--value-file"), too_big.into()],
        b"",
    );
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));

    // A key that is not UTF-8, and a value with a tab and a newline: stored as bytes,
    // escaped in text, exact in JSON.
    let key = OsString::from_vec(b"odd/\xff\x01".to_vec());
    let put = raftkv_with(&endpoints, &[os("put"), key.clone(), os("a\tb\nc")], b"");
    assert_eq!(put.status.code(), Some(0), "{}", describe(&put));
    let listed = raftkv_with(&endpoints, &[os("list"), os("odd/")], b"");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "odd/\\xff\\u{1}\ta\\tb\\nc\n",
        "{}",
        describe(&listed)
    );
    let listed = raftkv_with(
        &endpoints,
        &[os("--output"), os("json"), os("list"), os("odd/")],
        b"",
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("one JSON document");
    assert_eq!(decode(&listed["pairs"][0]["key"]), b"odd/\xff\x01");
    assert_eq!(decode(&listed["pairs"][0]["value"]), b"a\tb\nc");

    // A reader that stops after a few bytes of a long listing: the CLI ends quietly.
    let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["--endpoints", &endpoints, "list", "from-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run raftkv list");
    let mut first = [0_u8; 100];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("the listing starts");
    // The reader's end is dropped here; the CLI has megabytes left to write.
    let ended = child.wait_with_output().expect("raftkv list ends");
    assert_eq!(ended.status.code(), Some(0), "{}", describe(&ended));
    assert!(ended.stderr.is_empty(), "{}", describe(&ended));
    drop(cluster);
    let _ = std::fs::remove_dir_all(&directory);
}
