//! Watch across a failover (issue 13), against a real three-node cluster: `raftkv watch
//! w/ --from-revision 1 --output json` runs while a writer puts under `w/` and elsewhere,
//! the leader is killed with SIGKILL mid-way and restarted later, and the watcher must see
//! every acknowledged write under its prefix exactly once and in the order the writer
//! made them, nothing outside its prefix, nothing twice, nothing never written. Its stream
//! must equal the cluster's history under the prefix, and the restarted node (which
//! caught up, by snapshot when the others compacted past it) must hold the same history
//! as the others. Revisions and `get --output json` are checked along the way, and a
//! watch from a revision compacted away (past the history's 64 MiB) exits with code 9.

// It runs real processes: not in simulation.
#![cfg(not(madsim))]

mod real_cluster;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use client::client::{Client, ClientOptions};
use client::local_cluster::{LocalCluster, LocalClusterOptions};
use client::parse_endpoints;
use client::wire::Event;
use real_cluster::{describe, node_binary, raftkv, temporary_dir};
use serde_json::Value;

const WRITES_BEFORE_KILL: usize = 60;
const WRITES_AFTER_KILL: usize = 60;
const WAIT: Duration = Duration::from_secs(60);
/// Writes of 1 MiB that take the history past its 64 MiB bound.
const HISTORY_OVERFLOW_WRITES: usize = 70;

fn decode(field: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(field.as_str().expect("a base64 string"))
        .expect("base64")
}

/// One line of `raftkv watch --output json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    revision: u64,
    kind: String,
    key: Vec<u8>,
    value: Vec<u8>,
}

fn seen(line: &str) -> Seen {
    let json: Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
    assert_eq!(json["encoding"], "base64", "{line}");
    assert_eq!(json["revision"], json["mod_revision"], "{line}");
    Seen {
        revision: json["revision"].as_u64().expect("a revision"),
        kind: json["type"].as_str().expect("a type").to_string(),
        key: decode(&json["key"]),
        value: decode(&json["value"]),
    }
}

fn from_event(event: &Event) -> Seen {
    Seen {
        revision: event.revision(),
        kind: event.kind.as_str().to_string(),
        key: event.kv.key.clone(),
        value: event.kv.value.clone(),
    }
}

/// A writer's puts: (key, value, acknowledged).
async fn write(client: &mut Client, range: std::ops::Range<usize>, log: &mut Vec<(Vec<u8>, Vec<u8>, bool)>) {
    for n in range {
        // Two writes in three under the watched prefix, the others beside it.
        let key = if n % 3 == 2 {
            format!("other/{n:03}")
        } else {
            format!("w/{:02}", n % 20)
        };
        let value = format!("v{n:03}");
        let acknowledged = client.put(key.as_str(), value.as_str()).await.is_ok();
        log.push((key.into_bytes(), value.into_bytes(), acknowledged));
    }
}

/// Node `endpoint`'s history under `prefix`, read from it alone.
async fn history(endpoint: &str, prefix: &[u8]) -> Vec<Seen> {
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(10),
    };
    let mut client = Client::new(parse_endpoints(endpoint).expect("endpoint"), options).expect("client");
    let mut from = 1;
    let mut events = Vec::new();
    loop {
        let page = client
            .watch_page(prefix.to_vec(), from, Duration::ZERO, false)
            .await
            .unwrap_or_else(|error| panic!("history of {endpoint}: {error}"));
        events.extend(page.events.iter().map(from_event));
        from = page.next_revision;
        if from > page.revision {
            return events;
        }
    }
}

async fn leader(cluster: &LocalCluster) -> u64 {
    let deadline = Instant::now() + WAIT;
    let options = ClientOptions::default();
    loop {
        for node in cluster.nodes() {
            let endpoints = parse_endpoints(&node.client_address).expect("endpoint");
            let mut client = Client::new(endpoints.clone(), options).expect("client");
            if let Ok(status) = client.status(&endpoints[0]).await {
                if status.role == "leader" {
                    return status.id;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_watcher_across_a_kill_of_the_leader_sees_every_acknowledged_write_once_in_order() {
    let Some(node_binary) = node_binary() else {
        eprintln!(
            "SKIPPED: no raftkv-node beside raftkv; run `cargo test --workspace` or set RAFTKV_NODE_BIN"
        );
        return;
    };
    let directory = temporary_dir("watch-cli");
    let mut cluster = LocalCluster::start(LocalClusterOptions {
        node_binary,
        base_dir: directory.clone(),
        size: 3,
        cluster_name: "watch-cli".into(),
        tick_ms: 20,
        // Snapshots within the run, with no trailing log: the killed node catches up by
        // snapshot, so its history must have come with the image.
        snapshot_every: 25,
        extra_args: vec!["--snapshot-trailing-entries=0".into()],
        tls: false,
    })
    .expect("start a local cluster");
    let endpoints = cluster.endpoints().join(",");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut watch = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["--endpoints", &endpoints, "--output", "json"])
        .args(["watch", "w/", "--from-revision", "1"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start raftkv watch");
    let stdout = watch.stdout.take().expect("piped");
    let (lines_sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_sender.send(line).is_err() {
                return;
            }
        }
    });

    let options = ClientOptions {
        request_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(20),
    };
    let mut writer = Client::new(parse_endpoints(&endpoints).expect("endpoints"), options).expect("client");
    let mut log = Vec::new();
    let killed = runtime.block_on(async {
        write(&mut writer, 0..WRITES_BEFORE_KILL, &mut log).await;
        let killed = leader(&cluster).await;
        cluster.kill(killed).expect("kill -9 the leader");
        write(
            &mut writer,
            WRITES_BEFORE_KILL..WRITES_BEFORE_KILL + WRITES_AFTER_KILL,
            &mut log,
        )
        .await;
        killed
    });
    cluster.start_node(killed).expect("restart the killed node");
    runtime.block_on(async {
        writer.put("w/end", "end").await.expect("the last put");
    });

    // Read the watcher's lines until the last put shows.
    let deadline = Instant::now() + WAIT;
    let mut stream = Vec::new();
    while !stream.iter().any(|seen: &Seen| seen.key == b"w/end") {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => stream.push(seen(&line)),
            Err(_) => {
                let _ = watch.kill();
                let output = watch.wait_with_output().expect("watch output");
                panic!(
                    "the watcher did not show w/end within {WAIT:?}; it showed {} events; {}",
                    stream.len(),
                    describe(&output)
                );
            }
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();

    // In revision order, each once, only under the prefix, only what was written.
    assert!(
        stream.windows(2).all(|pair| pair[0].revision < pair[1].revision),
        "revisions not strictly increasing: {stream:?}"
    );
    assert!(stream
        .iter()
        .all(|seen| seen.key.starts_with(b"w/") && seen.kind == "PUT"));
    let written: HashMap<&[u8], &[u8]> = log
        .iter()
        .map(|(key, value, _)| (value.as_slice(), key.as_slice()))
        .collect();
    let mut positions: HashMap<&[u8], usize> = HashMap::new();
    for (position, seen) in stream.iter().enumerate() {
        if seen.key == b"w/end" {
            continue;
        }
        assert_eq!(
            written.get(seen.value.as_slice()),
            Some(&seen.key.as_slice()),
            "event {seen:?} is not a write the writer made"
        );
        assert!(
            positions.insert(&seen.value, position).is_none(),
            "the write of {:?} was seen twice",
            String::from_utf8_lossy(&seen.value)
        );
    }
    let acknowledged: Vec<&[u8]> = log
        .iter()
        .filter(|(key, _, acknowledged)| *acknowledged && key.starts_with(b"w/"))
        .map(|(_, value, _)| value.as_slice())
        .collect();
    let mut last = None;
    for value in &acknowledged {
        let Some(&position) = positions.get(value) else {
            panic!(
                "the acknowledged write of {:?} was never seen",
                String::from_utf8_lossy(value)
            );
        };
        assert!(
            last.is_none_or(|last| position > last),
            "acknowledged writes seen out of order"
        );
        last = Some(position);
    }
    let lost = log.iter().filter(|(_, _, acknowledged)| !acknowledged).count();
    eprintln!(
        "watch: {} events under w/, {} acknowledged writes under w/ seen once each in order; \
         {lost} writes with an unknown outcome; killed leader {killed}",
        stream.len(),
        acknowledged.len()
    );

    // The stream is the history under its prefix, and every node, the restarted one
    // included, holds the same history.
    runtime.block_on(async {
        let converge_by = Instant::now() + WAIT;
        loop {
            let mut histories = Vec::new();
            for node in cluster.nodes() {
                histories.push(history(&node.client_address, b"").await);
            }
            let all_equal = histories.windows(2).all(|pair| pair[0] == pair[1]);
            if all_equal && histories[0].iter().any(|seen| seen.key == b"w/end") {
                let under_prefix: Vec<Seen> = histories[0]
                    .iter()
                    .filter(|seen| seen.key.starts_with(b"w/"))
                    .cloned()
                    .collect();
                assert_eq!(under_prefix, stream, "the stream is not the history under w/");
                let revisions: Vec<u64> = histories[0].iter().map(|seen| seen.revision).collect();
                assert!(
                    revisions
                        .iter()
                        .enumerate()
                        .all(|(at, revision)| *revision == at as u64 + 1),
                    "the history has a gap"
                );
                break;
            }
            assert!(
                Instant::now() < converge_by,
                "the nodes' histories did not converge within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // `get` reports the key's revisions: w/end was created by the last revision.
    let get = raftkv(&endpoints, &["--output", "json", "get", "w/end"]);
    assert_eq!(get.status.code(), Some(0), "{}", describe(&get));
    let json: Value = serde_json::from_slice(&get.stdout).expect("JSON");
    let end_revision = stream.last().map(|seen| seen.revision).expect("w/end seen");
    assert_eq!(json["create_revision"].as_u64(), Some(end_revision), "{json}");
    assert_eq!(json["mod_revision"].as_u64(), Some(end_revision), "{json}");
    assert_eq!(json["version"].as_u64(), Some(1), "{json}");
    assert!(json["revision"].as_u64() >= Some(end_revision), "{json}");

    // A watch from now ends with --max-events.
    let from_now = raftkv(
        &endpoints,
        &[
            "--output",
            "json",
            "watch",
            "w/",
            "--from-revision",
            &end_revision.to_string(),
            "--max-events",
            "1",
        ],
    );
    assert_eq!(from_now.status.code(), Some(0), "{}", describe(&from_now));
    let line = String::from_utf8_lossy(&from_now.stdout);
    assert_eq!(seen(line.trim()).key, b"w/end");

    // Past the history's 64 MiB, the oldest revisions are compacted away: a watch from
    // revision 1 is refused with exit code 9 and told where it can start.
    runtime.block_on(async {
        let blob = vec![b'x'; 1024 * 1024];
        for _ in 0..HISTORY_OVERFLOW_WRITES {
            writer.put("blob", blob.clone()).await.expect("a 1 MiB put");
        }
    });
    let compacted = raftkv(
        &endpoints,
        &["watch", "", "--from-revision", "1", "--max-events", "1"],
    );
    assert_eq!(compacted.status.code(), Some(9), "{}", describe(&compacted));
    let stderr = String::from_utf8_lossy(&compacted.stderr);
    assert!(
        stderr.contains("compacted") && stderr.contains("oldest revision"),
        "{stderr}"
    );
    let json = raftkv(
        &endpoints,
        &["--output", "json", "watch", "", "--from-revision", "1"],
    );
    assert_eq!(json.status.code(), Some(9), "{}", describe(&json));
    let error: Value = serde_json::from_slice(&json.stdout).expect("a JSON error");
    assert_eq!(error["error"]["kind"], "compacted", "{error}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&directory);
}
