//! A data dir is an identity (issue 10): a node refuses a data dir of another node or
//! cluster, and a wiped node never bootstraps itself into a cluster that has data, so an
//! acknowledged write survives a majority that includes a wiped disk.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{node_binary, quick_options, TestCluster, WAIT_TIMEOUT};
use crate::writers::{count_lines, expect_value, put, write_options};
use wire::ReadConsistency;

/// Runs `raftkv-node` as node `id` of a cluster named `cluster_name` on `data_dir` with
/// `extra` flags, expecting it to exit at once; returns its exit code and output.
fn start_expecting_refusal(
    test: &TestCluster,
    id: u64,
    data_dir: &std::path::Path,
    cluster_name: &str,
    extra: &[&str],
) -> (i32, String) {
    let node = test.cluster.node(id).clone();
    let mut child = Command::new(node_binary())
        .args(["--id", &id.to_string(), "--peers", &test.cluster.peers_flag()])
        .args(["--cluster-name", cluster_name, "--insecure"])
        .args([
            "--listen-peer",
            &node.peer_address,
            "--listen-client",
            &node.client_address,
        ])
        .args(["--listen-http", &node.http_address])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| test.fail(&format!("cannot start node {id}: {error}")));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                test.fail(&format!(
                    "node {id} on {} did not exit: it should refuse",
                    data_dir.display()
                ));
            }
        }
    }
    let output = child.wait_with_output().expect("the exited node's output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_another_node_or_cluster_is_refused_at_start() {
    let mut test = TestCluster::start("foreign-dir", 3, 1_000).await;
    test.wait_for_leader(&test.ids()).await;
    for id in [2, 3] {
        if let Err(error) = test.cluster.terminate(id) {
            test.fail(&format!("cannot stop node {id}: {error}"));
        }
    }
    let dir_of_two = test.cluster.node(2).data_dir.clone();
    let (code, text) = start_expecting_refusal(&test, 3, &dir_of_two, test.name(), &[]);
    test.check(
        code != 0 && text.contains("belongs to node 2") && text.contains("this is node 3"),
        || format!("node 3 on node 2's data dir: exit {code}, output:\n{text}"),
    );
    let dir_of_three = test.cluster.node(3).data_dir.clone();
    let (code, text) = start_expecting_refusal(&test, 3, &dir_of_three, "elsewhere", &[]);
    test.check(
        code != 0 && text.contains("\"foreign-dir\"") && text.contains("\"elsewhere\""),
        || format!("node 3 under another cluster name: exit {code}, output:\n{text}"),
    );
    let (code, text) = start_expecting_refusal(
        &test,
        3,
        &dir_of_three,
        test.name(),
        &["--expect-cluster-id", "0123456789abcdef"],
    );
    test.check(code != 0 && text.contains("0123456789abcdef"), || {
        format!("node 3 expecting another cluster id: exit {code}, output:\n{text}")
    });
    // Its own data dir, unchanged by the refusals, still starts and catches up.
    if let Err(error) = test.cluster.start_node(3) {
        test.fail(&format!("cannot restart node 3: {error}"));
    }
    if let Err(error) = test.cluster.start_node(2) {
        test.fail(&format!("cannot restart node 2: {error}"));
    }
    let mut client = test.client(write_options());
    put(&test, &mut client, "foreign/after", "fine").await;
    test.wait_for_convergence(&test.ids()).await;
}

/// The scenario: with node 3 down, `acked/1` is acknowledged by {1, 2}; node 1
/// is killed, node 2 stopped and its data dir wiped; nodes 2 and 3 restart. Node 2 must
/// not bootstrap as a blank voter (it would elect node 3 without the write): the cluster
/// answers "unavailable", never "not found". Once node 1 is back, node 2 is made a member
/// again as a new incarnation (old one removed, new one a learner, then a voter), and
/// all three hold the write and converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_never_costs_an_acknowledged_write() {
    let mut test = TestCluster::start("wiped-node", 3, 1_000).await;
    test.wait_for_leader(&test.ids()).await;
    if let Err(error) = test.cluster.kill(3) {
        test.fail(&format!("cannot kill node 3: {error}"));
    }
    let mut client = test.client(write_options());
    put(&test, &mut client, "acked/1", "must-survive").await;
    if let Err(error) = test.cluster.kill(1) {
        test.fail(&format!("cannot kill node 1: {error}"));
    }
    if let Err(error) = test.cluster.terminate(2) {
        test.fail(&format!("cannot stop node 2: {error}"));
    }
    let dir_of_two = test.cluster.node(2).data_dir.clone();
    std::fs::remove_dir_all(&dir_of_two)
        .unwrap_or_else(|error| test.fail(&format!("cannot wipe node 2: {error}")));
    // Node 2's log goes on in the same file: look only at what its new life writes.
    let log_of_two_before = test.cluster.log_of(2).len();
    let new_log_of_two = |test: &TestCluster| {
        let log = test.cluster.log_of(2);
        log.get(log_of_two_before..).unwrap_or_default().to_string()
    };
    for id in [2, 3] {
        if let Err(error) = test.cluster.start_node(id) {
            test.fail(&format!("cannot restart node {id}: {error}"));
        }
    }
    // Node 2 finds node 3's cluster and asks to join it as a new incarnation, saying so.
    let deadline = Instant::now() + WAIT_TIMEOUT;
    while count_lines(&new_log_of_two(&test), "joining it as a new incarnation") == 0 {
        if Instant::now() > deadline {
            test.fail("the wiped node 2 never said it joins the existing cluster as a new incarnation");
        }
        tokio::time::sleep(crate::support::POLL_INTERVAL).await;
    }
    // Many election timeouts (20 ms ticks, 10-20 ticks each): no leader, and no read
    // ever answers "not found".
    let mut reader = test.client(quick_options());
    let mut refused = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        match reader.get("acked/1", ReadConsistency::Linearizable).await {
            Ok(None) => test.fail("acked/1 answered \"not found\": the acknowledged write is lost"),
            Ok(Some(value)) => test.fail(&format!(
                "acked/1 was served without a majority holding it: {:?}",
                String::from_utf8_lossy(&value)
            )),
            Err(_unavailable) => refused += 1,
        }
    }
    test.check(refused > 0, || "no read was tried".to_string());
    test.check(count_lines(&new_log_of_two(&test), "bootstrapping") == 0, || {
        "the wiped node 2 bootstrapped".to_string()
    });
    if let Err(error) = test.cluster.start_node(1) {
        test.fail(&format!("cannot restart node 1: {error}"));
    }
    let mut client = test.client(write_options());
    expect_value(&test, &mut client, "acked/1", "must-survive").await;
    put(&test, &mut client, "acked/2", "after-the-wipe").await;
    let list = test
        .wait_for_members("node 2 a voter again", |list| {
            list.members
                .iter()
                .filter(|member| member.role == wire::MemberRole::Voter)
                .count()
                == 3
        })
        .await;
    let converged = test.wait_for_convergence(&[1, 2, 3]).await;
    test.check(
        converged.kv().get(b"acked/1".as_slice()).map(Vec::as_slice) == Some(b"must-survive".as_slice()),
        || format!("the nodes converged without acked/1: {:?}", converged.kv()),
    );
    for step in [
        "RemoveOldIncarnation",
        "AddLearner",
        "Promote",
        "joined: this node is a voting member",
    ] {
        test.wait_for_log(2, log_of_two_before, step).await;
    }
    eprintln!("[wiped-node] members after the rejoin: {list:?}");
}
