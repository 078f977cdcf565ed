//! Backup and restore with real processes (issue 13): `raftkv snapshot save` while a
//! writer writes, then `raftkv-node restore` of node 1's data dir and a new cluster of it
//! plus two empty nodes that join, holding exactly the keys whose writes the backup's
//! index covers; and a damaged backup refused by `raftkv-node restore`.

// It runs real processes: not in simulation.
#![cfg(not(madsim))]

mod real_cluster;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::client::{Client, ClientOptions};
use client::local_cluster::{LocalCluster, LocalClusterOptions};
use real_cluster::{describe, node_binary, raftkv, temporary_dir};
use serde_json::Value;

fn options(node_binary: &Path, base_dir: PathBuf, cluster_name: &str) -> LocalClusterOptions {
    LocalClusterOptions {
        node_binary: node_binary.to_path_buf(),
        base_dir,
        size: 3,
        cluster_name: cluster_name.into(),
        tick_ms: 20,
        // No compaction: the dump below must show the index of every write.
        snapshot_every: 1_000_000,
        extra_args: Vec::new(),
        tls: false,
    }
}

fn key(counter: u64) -> String {
    format!("w/{counter:08}")
}

/// Puts `w/00000000`, `w/00000001`, ... one after the other until `stop`; `acknowledged`
/// is how many were acknowledged (so keys below it all were).
fn writer(
    endpoints: String,
    acknowledged: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let options = ClientOptions {
                deadline: Duration::from_secs(30),
                ..ClientOptions::default()
            };
            let mut client = Client::from_list(&endpoints, options).expect("a client");
            let mut counter = 0;
            while !stop.load(Ordering::Relaxed) {
                client
                    .put(key(counter), counter.to_string())
                    .await
                    .unwrap_or_else(|error| panic!("put {counter} failed: {error}"));
                counter += 1;
                acknowledged.store(counter, Ordering::SeqCst);
            }
        });
    })
}

/// The log index of the first put of each `w/` key, from a node's dump.
fn put_indexes(endpoints: &str, node: &str) -> BTreeMap<String, u64> {
    let output = raftkv(endpoints, &["--output", "json", "dump", "--endpoint", node]);
    assert!(output.status.success(), "dump: {}", describe(&output));
    let dump: Value = serde_json::from_slice(&output.stdout).expect("dump prints JSON");
    let mut indexes = BTreeMap::new();
    for entry in dump["log"].as_array().expect("a log") {
        let text = entry["entry"].as_str().expect("an entry");
        if let Some(rest) = text.split(": put \"w/").nth(1) {
            let key = format!("w/{}", rest.split('"').next().expect("a quoted key"));
            indexes
                .entry(key)
                .or_insert(entry["index"].as_u64().expect("an index"));
        }
    }
    indexes
}

/// `raftkv list w/ --all` on `endpoints`, retried while the new cluster starts.
fn listed(endpoints: &str) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = raftkv(endpoints, &["--timeout-ms", "3000", "list", "w/", "--all"]);
        if output.status.success() {
            return String::from_utf8(output.stdout)
                .expect("keys are text")
                .lines()
                .map(|line| {
                    let (key, value) = line.split_once('\t').expect("key, tab, value");
                    (key.to_string(), value.to_string())
                })
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the restored cluster never served: {}",
            describe(&output)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Voters of the leader's configuration, once it answers.
fn voters(endpoints: &str) -> Vec<u64> {
    let output = raftkv(
        endpoints,
        &["--timeout-ms", "2000", "--output", "json", "member", "list"],
    );
    if !output.status.success() {
        return Vec::new();
    }
    let list: Value = serde_json::from_slice(&output.stdout).expect("member list prints JSON");
    list["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|member| member["role"] == "voter")
        .map(|member| member["id"].as_u64().expect("id"))
        .collect()
}

fn restore(node_binary: &Path, from: &Path, data_dir: &Path, cluster_name: &str) -> std::process::Output {
    Command::new(node_binary)
        .arg("restore")
        .arg("--from")
        .arg(from)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--id", "1", "--cluster-name", cluster_name])
        .output()
        .expect("run raftkv-node restore")
}

#[test]
fn a_backup_under_a_writer_restores_exactly_the_writes_before_its_index() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let directory = temporary_dir("backup-cli");
    let old =
        LocalCluster::start(options(&node_binary, directory.join("old"), "backup-old")).expect("starts");
    let endpoints = old.endpoints().join(",");
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(endpoints.clone(), acknowledged.clone(), stop.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.load(Ordering::SeqCst) < 300 {
        assert!(Instant::now() < deadline, "the writer made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }

    let acknowledged_before = acknowledged.load(Ordering::SeqCst);
    let file = directory.join("backup.raftkv");
    let file_arg = file.to_str().expect("a UTF-8 path");
    let saved = raftkv(&endpoints, &["--output", "json", "snapshot", "save", file_arg]);
    assert!(saved.status.success(), "save: {}", describe(&saved));
    // The writer goes on after the save: those writes must not be in the backup.
    let after_save = acknowledged.load(Ordering::SeqCst);
    while acknowledged.load(Ordering::SeqCst) < after_save + 50 {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    writing.join().expect("the writer ends");
    let acknowledged_total = acknowledged.load(Ordering::SeqCst);

    let report: Value = serde_json::from_slice(&saved.stdout).expect("save prints JSON");
    let index = report["index"].as_u64().expect("an index");
    let pairs = report["pairs"].as_u64().expect("a pair count");
    assert!(
        !Path::new(&format!("{file_arg}.part")).exists(),
        "the .part file was renamed"
    );
    assert_eq!(
        std::fs::metadata(&file).expect("the backup").len(),
        report["bytes"].as_u64().expect("bytes"),
    );
    let node = report["node"]
        .as_str()
        .expect("the node that served it")
        .to_string();
    let indexes = put_indexes(&endpoints, &node);
    let expected: BTreeMap<String, String> = indexes
        .iter()
        .filter(|(_, put_index)| **put_index <= index)
        .map(|(key, _)| {
            (
                key.clone(),
                key[2..]
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("a counter: {key:?}"))
                    .to_string(),
            )
        })
        .collect();
    assert!(
        expected.len() as u64 >= acknowledged_before,
        "{} writes acknowledged before the save, {} at or before its index {index}",
        acknowledged_before,
        expected.len()
    );
    assert!(
        (expected.len() as u64) < acknowledged_total,
        "no write after the backup's index: the test shows nothing"
    );
    assert_eq!(pairs, expected.len() as u64, "the pair count the save reported");
    drop(old);

    // A new cluster: node 1 from the backup, nodes 2 and 3 empty (they join it).
    let new_dir = directory.join("new");
    let restored = restore(&node_binary, &file, &new_dir.join("node-1"), "backup-new");
    assert!(restored.status.success(), "restore: {}", describe(&restored));
    let new = LocalCluster::start(options(&node_binary, new_dir, "backup-new")).expect("starts");
    let new_endpoints = new.endpoints().join(",");
    let keys = listed(&new_endpoints);
    let mut missing: Vec<&String> = expected.keys().filter(|key| !keys.contains_key(*key)).collect();
    missing.truncate(5);
    let mut extra: Vec<&String> = keys.keys().filter(|key| !expected.contains_key(*key)).collect();
    extra.truncate(5);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?} (backup index {index})"
    );
    assert_eq!(keys, expected, "the values too");
    let deadline = Instant::now() + Duration::from_secs(60);
    while voters(&new_endpoints) != [1, 2, 3] {
        assert!(
            Instant::now() < deadline,
            "nodes 2 and 3 never joined the restored cluster"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(new);
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn restore_refuses_a_damaged_backup_and_writes_no_data_dir() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let directory = temporary_dir("backup-damaged");
    let cluster = LocalCluster::start(options(&node_binary, directory.join("cluster"), "backup-damaged"))
        .expect("starts");
    let endpoints = cluster.endpoints().join(",");
    for counter in 0..20 {
        let put = raftkv(
            &endpoints,
            &["--timeout-ms", "20000", "put", &key(counter), "value"],
        );
        assert!(put.status.success(), "put: {}", describe(&put));
    }
    let file = directory.join("backup.raftkv");
    let saved = raftkv(
        &endpoints,
        &["snapshot", "save", file.to_str().expect("a UTF-8 path")],
    );
    assert!(saved.status.success(), "save: {}", describe(&saved));
    let text = String::from_utf8_lossy(&saved.stdout);
    assert!(text.contains("20 pairs"), "{text}");
    drop(cluster);
    let good = std::fs::read(&file).expect("the backup");
    let mut flipped = good.clone();
    let middle = good.len() / 2;
    flipped[middle] ^= 0x04;
    for (what, bytes) in [
        ("truncated", good[..good.len() - 7].to_vec()),
        ("bit flipped", flipped),
    ] {
        let damaged = directory.join(format!("{what}.raftkv"));
        std::fs::write(&damaged, bytes).expect("writes");
        let data_dir = directory.join(format!("{what}-data"));
        let output = restore(&node_binary, &damaged, &data_dir, "backup-damaged");
        assert_eq!(output.status.code(), Some(1), "{what}: {}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("the backup is damaged"), "{what}: {stderr}");
        assert!(!data_dir.exists(), "{what}: a data dir was left behind");
    }
    let data_dir = directory.join("good-data");
    let output = restore(&node_binary, &file, &data_dir, "backup-damaged");
    assert!(
        output.status.success(),
        "the undamaged backup restores: {}",
        describe(&output)
    );
    let _ = std::fs::remove_dir_all(&directory);
}
