//! The `raftkv` binary, run as a user would, against fake nodes.

// They run a real `raftkv` process: not in simulation.
#![cfg(not(madsim))]

mod support;

use std::process::Output;

use client::wire::{
    Command as Write, ErrorKind, ErrorReply, KeyValue, Listing, NodeDump, NodeStatus, Prior, ReadValue,
    Request, Response, SpaceStatus, WriteResult,
};
use support::{dead_address, raftkv, stderr, stdout, FakeNode, Reply};

/// A failure is one line on stderr, nothing on stdout, and exit code `code`.
fn assert_one_line_failure(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "stderr: {}", stderr(output));
    let stderr = stderr(output);
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert!(output.stdout.is_empty(), "stdout: {}", stdout(output));
}

async fn node_holding(key: &'static str, value: &'static str) -> FakeNode {
    FakeNode::start(move |_, request| {
        Reply::respond(match request {
            Request::Get { key: asked, .. } if asked == key.as_bytes() => Response::Value(ReadValue {
                revision: 9,
                kv: Some(KeyValue {
                    key: asked.clone(),
                    value: value.as_bytes().to_vec(),
                    create_revision: 2,
                    mod_revision: 7,
                    version: 3,
                }),
            }),
            Request::Get { .. } => Response::Value(ReadValue::unversioned(None)),
            _ => Response::Error(ErrorReply {
                kind: ErrorKind::InvalidRequest,
                message: "unscripted".to_string(),
            }),
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_value_in_text_and_json() {
    let node = node_holding("greeting", "hello world").await;

    let output = raftkv(&["--endpoints", &node.address, "get", "greeting"]).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert_eq!(stdout(&output), "hello world\n");

    let output = raftkv(&[
        "get",
        "greeting",
        "--output",
        "json",
        "--endpoints",
        &node.address,
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON output");
    assert_eq!(
        json,
        // Keys and values are bytes: base64, as etcdctl's `-w json` has them.
        // With the revisions of the pair and of the read (etcd's KeyValue and header).
        serde_json::json!({
            "key": "Z3JlZXRpbmc=",
            "value": "aGVsbG8gd29ybGQ=",
            "encoding": "base64",
            "create_revision": 2,
            "mod_revision": 7,
            "version": 3,
            "revision": 9
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_a_missing_key_is_one_error_line() {
    let node = node_holding("greeting", "hello").await;
    let output = raftkv(&["--endpoints", &node.address, "get", "other"]).await;
    assert_one_line_failure(&output, 3);
    assert!(stderr(&output).contains("not found"));
    // With --output json the error is a JSON document on stdout, with the same code.
    let output = raftkv(&["--endpoints", &node.address, "--output", "json", "get", "other"]).await;
    assert_eq!(output.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("a JSON error");
    assert_eq!(json["error"]["kind"], "not_found", "{json}");
    assert_eq!(json["error"]["exit_code"], 3);
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_against_nothing_prints_one_error_line_and_exits_5() {
    let dead = dead_address().await;
    let output = raftkv(&["--endpoints", &dead, "--timeout-ms", "300", "get", "k"]).await;
    assert_one_line_failure(&output, 5);
    assert!(
        stderr(&output).contains(&dead) && stderr(&output).contains("1 of 1 endpoint(s) unreachable"),
        "names the endpoint and says what the client knows: {}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_are_one_line_and_exit_2() {
    for args in [
        &["get"][..],
        &["cas", "k", "--new", "v"],
        &["cas", "k", "--expected", "a", "--expect-absent", "--new", "v"],
        &["--endpoints", "nohost", "get", "k"],
        &["frobnicate"],
    ] {
        let output = raftkv(args).await;
        assert_one_line_failure(&output, 2);
    }
}

/// A node holding `a = 1` that answers every kind of request.
async fn full_node() -> FakeNode {
    FakeNode::start(|_, request| {
        Reply::respond(match request {
            Request::Write {
                command,
                return_prior,
                ..
            } => {
                let prior = Prior::of(Some(b"1"), *return_prior);
                Response::Written(match command {
                    Write::Put { .. } | Write::Delete { .. } => WriteResult::Done { previous: prior },
                    Write::CompareAndSwap { .. } => WriteResult::CompareAndSwap {
                        swapped: false,
                        current: prior,
                    },
                })
            }
            Request::List { .. } => Response::Listing(Listing {
                pairs: vec![
                    KeyValue::unversioned(b"a".to_vec(), b"1".to_vec()),
                    KeyValue::unversioned(b"ab".to_vec(), vec![0xFF, b'x']),
                ],
                revision: 2,
                next: Some(b"ac".to_vec()),
                count: None,
            }),
            Request::Dump => Response::Dump(NodeDump {
                status: status(),
                log: vec![(1, 1, "put a".to_string())],
                kv: vec![(b"a".to_vec(), b"1".to_vec())],
            }),
            _ => Response::Value(ReadValue::unversioned(None)),
        })
    })
    .await
}

fn status() -> NodeStatus {
    NodeStatus {
        id: 1,
        role: "Leader".to_string(),
        term: 4,
        leader: Some(1),
        commit: 12,
        applied: 12,
        first_index: 1,
        last_index: 13,
        snapshot_index: 0,
        voters: vec![1, 2],
        learners: vec![],
        peers: vec![],
        space: SpaceStatus {
            data_bytes: 1536,
            quota_bytes: 2 << 30,
            ..SpaceStatus::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_list_and_dump_print_their_results() {
    let node = full_node().await;
    let at = ["--endpoints", node.address.as_str()];
    let cases: [(&[&str], &str); 9] = [
        (&["put", "a", "2"], "OK\n"),
        (&["put", "a", "2", "--prev-kv"], "OK (previous value: 1)\n"),
        (&["delete", "a"], "deleted\n"),
        (&["delete", "a", "--prev-kv"], "deleted (previous value: 1)\n"),
        (
            &["cas", "a", "--expected", "0", "--new", "2"],
            "not swapped: current value is 1\n",
        ),
        (
            &["cas", "a", "--expect-absent", "--delete"],
            "not swapped: current value is 1\n",
        ),
        // Invalid UTF-8 is shown escaped, rather than refused or replaced.
        (
            &["list", "a", "--limit", "5"],
            "a\t1\nab\t\\xffx\n-- more: the next page starts at ac (--start it, or --all)\n",
        ),
        (
            &["--output", "json", "put", "a", "2"],
            "{\"encoding\":\"base64\",\"existed\":true,\"key\":\"YQ==\",\"value\":\"Mg==\"}\n",
        ),
        (
            &["--output", "json", "put", "a", "2", "--prev-kv"],
            "{\"encoding\":\"base64\",\"existed\":true,\"key\":\"YQ==\",\"previous\":\"MQ==\",\"value\":\"Mg==\"}\n",
        ),
    ];
    for (args, expected) in cases {
        let output = raftkv(&[&at[..], args].concat()).await;
        // A compare that failed prints its answer and exits 4.
        let code = if args[0] == "cas" { 4 } else { 0 };
        assert_eq!(output.status.code(), Some(code), "{args:?}: {}", stderr(&output));
        assert_eq!(stdout(&output), expected, "{args:?}");
    }

    let output = raftkv(&[&at[..], &["dump", "--endpoint", &node.address]].concat()).await;
    let text = stdout(&output);
    assert!(
        text.contains("log (1 entries):") && text.contains("kv (1 pairs):"),
        "{text}"
    );
    let output = raftkv(
        &[
            &at[..],
            &["--output", "json", "dump", "--endpoint", &node.address],
        ]
        .concat(),
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON output");
    assert_eq!(
        json["kv"][0],
        serde_json::json!({ "key": "YQ==", "value": "MQ==" })
    );
    assert_eq!(json["encoding"], "base64");
    assert_eq!(json["log"][0]["entry"], "put a");
    assert_eq!(json["status"]["last_index"], 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_a_row_per_node_even_when_one_is_down() {
    let node = FakeNode::always(Response::Status(status())).await;
    let dead = dead_address().await;
    let endpoints = format!("{},{dead}", node.address);

    let output = raftkv(&["--endpoints", &endpoints, "status"]).await;
    // The rows, and exit code 5: an endpoint is down.
    assert_eq!(output.status.code(), Some(5), "stderr: {}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells,
        [
            node.address.as_str(),
            "1",
            "Leader",
            "4",
            "1",
            "12",
            "12",
            "13",
            "1.5",
            "KiB",
            "/",
            "2.0",
            "GiB"
        ]
    );
    assert!(
        lines[2].starts_with(&dead) && lines[2].contains("unreachable"),
        "{text}"
    );

    let output = raftkv(&["--endpoints", &endpoints, "--output", "json", "status"]).await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON output");
    assert_eq!(json[0]["status"]["applied"], 12);
    assert_eq!(json[0]["status"]["space"]["quota_bytes"], 2u64 << 30);
    assert!(json[1]["error"].is_string());

    let output = raftkv(&["--endpoints", &dead, "--timeout-ms", "300", "status"]).await;
    assert_one_line_failure(&output, 5);
}
