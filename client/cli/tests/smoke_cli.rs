//! `raftkv smoke` and `raftkv idle` run as a Job or a client container would run them:
//! smoke against fake nodes that agree (it passes and prints every check) or that do not
//! (it fails with one error line), and idle until a signal.

// They run a real `raftkv` process: not in simulation.
#![cfg(not(madsim))]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::wire::{Command as Write, NodeStatus, Prior, ReadValue, Request, Response, WriteResult};
use support::{raftkv, stderr, stdout, FakeNode, Reply};

/// What a fake member of a three-node cluster reports: node 1 leads term 5 unless `leader`
/// says otherwise; every node has applied every write.
fn status(id: u64, leader: u64, applied: u64) -> NodeStatus {
    NodeStatus {
        id,
        role: if id == leader { "leader" } else { "follower" }.to_string(),
        term: 5,
        leader: Some(leader),
        commit: applied,
        applied,
        first_index: 1,
        last_index: applied,
        snapshot_index: 0,
        voters: vec![1, 2, 3],
        learners: vec![],
        peers: vec![],
        space: Default::default(),
    }
}

/// Three fake nodes over one shared KV map, each naming `leaders[i]` as the leader. Each
/// answers writes, reads and status, so the client never needs a redirect. A node whose
/// `corrupt` flag is set answers every read with a wrong value.
async fn fake_cluster(leaders: [u64; 3], corrupt: [bool; 3]) -> Vec<FakeNode> {
    let kv: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    let mut nodes = Vec::new();
    for (position, (leader, corrupt)) in leaders.into_iter().zip(corrupt).enumerate() {
        let id = position as u64 + 1;
        let kv = Arc::clone(&kv);
        nodes.push(
            FakeNode::start(move |_, request| {
                let mut kv = kv.lock().expect("not poisoned");
                Reply::respond(match request {
                    Request::Write {
                        command: Write::Put { key, value },
                        return_prior,
                        ..
                    } => Response::Written(WriteResult::Done {
                        previous: Prior::of(kv.insert(key.clone(), value.clone()).as_deref(), *return_prior),
                    }),
                    Request::Get { .. } if corrupt => {
                        Response::Value(ReadValue::unversioned(Some(b"garbage".to_vec())))
                    }
                    Request::Get { key, .. } => Response::Value(ReadValue::unversioned(kv.get(key).cloned())),
                    _ => Response::Status(status(id, leader, kv.len() as u64)),
                })
            })
            .await,
        );
    }
    nodes
}

fn endpoints(nodes: &[FakeNode]) -> String {
    nodes
        .iter()
        .map(|node| node.address.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_passes_on_an_agreeing_cluster_and_prints_every_check() {
    let nodes = fake_cluster([1, 1, 1], [false; 3]).await;
    let endpoints = endpoints(&nodes);
    let output = raftkv(&["--endpoints", &endpoints, "smoke", "--keys", "4"]).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let text = stdout(&output);
    let count = |check: &str| text.lines().filter(|line| line.starts_with(check)).count();
    assert_eq!(
        count("ok: one leader: all 3 endpoints answer and agree node 1 leads term 5"),
        1,
        "{text}"
    );
    assert_eq!(count("ok: write: put smoke/"), 4, "{text}");
    assert_eq!(count("ok: linearizable read: get smoke/"), 4, "{text}");
    assert_eq!(
        count("ok: replicated: every endpoint applied through index 4"),
        1,
        "{text}"
    );
    assert_eq!(count("ok: local state: "), 3, "{text}");
    assert!(text.ends_with("smoke test passed\n"), "{text}");

    // A second run writes its own keys (4 more), and JSON output is one document a line.
    let output = raftkv(&[
        "--endpoints",
        &endpoints,
        "--output",
        "json",
        "smoke",
        "--keys",
        "4",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let checks: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON document per line"))
        .collect();
    assert_eq!(checks.len(), 1 + 4 + 4 + 1 + 3);
    assert!(checks.iter().all(|check| check["ok"] == true));
    assert_eq!(checks[0]["check"], "one leader");
    assert!(checks[9]["detail"]
        .as_str()
        .expect("a detail")
        .contains("through index 8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_fails_with_one_line_when_endpoints_disagree_on_the_leader() {
    let nodes = fake_cluster([1, 1, 2], [false; 3]).await;
    let started = Instant::now();
    let output = raftkv(&["--endpoints", &endpoints(&nodes), "smoke", "--wait-ms", "600"]).await;
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    let error = stderr(&output);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.contains(&nodes[2].address) && error.contains("sees leader Some(2)"),
        "{error}"
    );
    assert!(stdout(&output).is_empty(), "no check passed: {}", stdout(&output));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by --wait-ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_fails_when_a_replica_serves_a_wrong_value() {
    let nodes = fake_cluster([1, 1, 1], [false, false, true]).await;
    let output = raftkv(&["--endpoints", &endpoints(&nodes), "smoke"]).await;
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    let error = stderr(&output);
    assert!(
        error.contains(&format!("stale read at {}", nodes[2].address)) && error.contains("\"garbage\""),
        "{error}"
    );
    // Everything before the bad replica passed and was printed.
    assert!(stdout(&output).contains("ok: replicated"), "{}", stdout(&output));
}

#[test]
fn idle_waits_for_sigterm_or_sigint_and_exits_0() {
    for signal in ["-TERM", "-INT"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("idle")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start raftkv idle");
        // Its first line comes once the handlers are installed: a signal sent earlier
        // would kill it the default way.
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut line = String::new();
        stderr.read_line(&mut line).expect("read stderr");
        assert!(line.contains("waiting for SIGTERM or SIGINT"), "{line}");
        // Still running after a while: it waits rather than exiting.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.try_wait().expect("poll").is_none(),
            "idle exited on its own"
        );
        let killed = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success());
        let started = Instant::now();
        let status = child.wait().expect("wait for raftkv idle");
        assert_eq!(status.code(), Some(0), "{signal}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).expect("read stderr");
        assert!(rest.contains("received, exiting"), "{rest}");
    }
}
