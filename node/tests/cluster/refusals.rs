//! What a node refuses: a peer of another cluster, and garbage on its ports.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{describe, http_get, node_binary, Garbage, TestCluster, WAIT_TIMEOUT};
use crate::writers::{count_lines, expect_value, put, write_options};
use client::client::Client;
use node::transport::{Handshake, PROTOCOL_VERSION};
use wire::frame::encode_frame;

/// A process killed when dropped, so a failing test leaves no stray node behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `count` distinct free addresses on 127.0.0.1: every listener is held until all are
/// picked, so the OS cannot hand out one port twice.
fn free_addresses(count: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"))
        .collect();
    listeners
        .iter()
        .map(|listener| {
            format!(
                "{}",
                listener.local_addr().expect("a bound listener has an address")
            )
        })
        .collect()
}

/// A node of cluster "other" claiming member id 2 dials node 1. Node 1 refuses it
/// (counted in /metrics and logged with both cluster ids), the cluster keeps its leader
/// and serves writes, and the intruder never becomes a leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_from_another_cluster_is_refused() {
    let test = TestCluster::start("home", 3, 1_000).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;

    let [intruder_peer, intruder_client, intruder_http] =
        <[String; 3]>::try_from(free_addresses(3)).expect("three addresses");
    let intruder_log_path = test.directory().join("intruder.log");
    let log = File::create(&intruder_log_path).expect("create the intruder's log");
    let log_err = log.try_clone().expect("clone a file handle");
    let spawned = Command::new(node_binary())
        .args(["--id", "2", "--cluster-name", "other", "--insecure"])
        .args([
            "--peers",
            &format!("1={},2={intruder_peer}", test.cluster.node(1).peer_address),
        ])
        .args(["--listen-peer", &intruder_peer])
        .args(["--listen-client", &intruder_client])
        .args(["--listen-http", &intruder_http])
        .args(["--tick-ms", &crate::support::TICK_MS.to_string()])
        .arg("--data-dir")
        .arg(test.directory().join("intruder"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn();
    let mut intruder = match spawned {
        Ok(child) => ChildGuard(child),
        Err(error) => test.fail(&format!("cannot start the intruder: {error}")),
    };
    let intruder_endpoint = client::parse_endpoints(&intruder_client).expect("an address parses");
    let intruder_status = || async {
        let mut client = Client::new(intruder_endpoint.clone(), crate::support::quick_options()).ok()?;
        client.status(&intruder_endpoint[0]).await.ok()
    };

    let refusal = "belongs to cluster \"other\" but node 1 belongs to cluster \"home\"";
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let mut intruder_roles = Vec::new();
    while count_lines(&test.cluster.log_of(1), refusal) == 0 {
        if let Some(status) = intruder_status().await {
            intruder_roles.push(status.role);
        }
        if Instant::now() > deadline {
            test.fail(&format!(
                "node 1 never logged the refusal {refusal:?}; intruder log:\n{}",
                std::fs::read_to_string(&intruder_log_path).unwrap_or_default()
            ));
        }
        tokio::time::sleep(crate::support::POLL_INTERVAL).await;
    }
    let refused = test
        .wait_for_metric(1, "raftkv_peer_connections_refused_total", |value| value > 0)
        .await;

    let mut client = test.client(write_options());
    put(&test, &mut client, "home/after-intrusion", "still-serving").await;
    expect_value(&test, &mut client, "home/after-intrusion", "still-serving").await;
    let current = test.wait_for_leader(&ids).await;
    test.check(current.term == leader.term, || {
        format!(
            "the intruder disturbed the cluster: term {} became {} ({})",
            leader.term,
            current.term,
            describe(&current)
        )
    });
    if let Some(status) = intruder_status().await {
        intruder_roles.push(status.role);
    }
    let intruder_running = matches!(intruder.0.try_wait(), Ok(None));
    let intruder_log = std::fs::read_to_string(&intruder_log_path).unwrap_or_default();
    drop(intruder);
    test.check(intruder_running, || {
        format!("the intruder exited early; its log:\n{intruder_log}")
    });
    test.check(
        !intruder_roles.iter().any(|role| role == "leader")
            && count_lines(&intruder_log, "became leader") == 0,
        || format!("the intruder became a leader (roles seen {intruder_roles:?}); its log:\n{intruder_log}"),
    );
    eprintln!(
        "foreign peer: node 1 refused {refused} connection(s) from cluster \"other\"; node {} still \
         leads term {}; intruder roles seen: {:?}",
        current.id,
        current.term,
        intruder_roles.iter().collect::<std::collections::BTreeSet<_>>()
    );
}

/// Writes `bytes` on a fresh connection to `address` and reports whether the node then
/// closes it (EOF or reset) within five seconds, rather than waiting forever.
fn send_and_expect_close(address: &str, bytes: &[u8]) -> Result<(), String> {
    let socket = address.parse().map_err(|e| format!("{address}: {e}"))?;
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(2))
        .map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    // The node may close before reading everything: a reset on write is a refusal too.
    if stream.write_all(bytes).is_err() {
        return Ok(());
    }
    let mut sink = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => return Err(format!("{address} keeps sending after garbage")),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(error) => return Err(format!("{address} did not close the connection: {error}")),
        }
    }
}

/// Garbage to one node's peer and client ports: an oversized length prefix, an
/// undecodable frame, a valid handshake followed by an oversized frame, and random bytes.
/// The node closes each such connection, counts the malformed peer frames in /metrics,
/// keeps running, and the cluster keeps serving writes and linearizable reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_peer_and_client_ports_is_refused_without_harm() {
    let mut test = TestCluster::start("garbage", 3, 1_000).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let target = test.cluster.node(leader.id).clone();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64);
    eprintln!("garbage seed: {seed}");
    let mut garbage = Garbage::new(seed);
    let oversized = [[0xFF_u8; 4].as_slice(), &garbage.bytes(64)].concat();
    let undecodable = [16_u32.to_be_bytes().as_slice(), &[0xFF; 16]].concat();
    let other_member = ids
        .iter()
        .copied()
        .find(|id| *id != leader.id)
        .expect("three nodes");
    let handshake = encode_frame(&Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_name: "garbage".into(),
        cluster_id: None,
        node_id: other_member,
        incarnation: 1,
        client_address: test.cluster.node(other_member).client_address.clone(),
        probe: false,
    })
    .expect("a handshake encodes");
    let handshake_then_oversized = [handshake.as_slice(), &oversized].concat();

    let malformed_peer_inputs = [
        ("peer port, oversized length prefix", &oversized),
        ("peer port, undecodable handshake", &undecodable),
        (
            "peer port, handshake then oversized frame",
            &handshake_then_oversized,
        ),
    ];
    for (what, bytes) in malformed_peer_inputs {
        if let Err(error) = send_and_expect_close(&target.peer_address, bytes) {
            test.fail(&format!("{what}: {error}"));
        }
    }
    for (what, bytes) in [
        ("client port, oversized length prefix", &oversized),
        ("client port, undecodable request", &undecodable),
    ] {
        if let Err(error) = send_and_expect_close(&target.client_address, bytes) {
            test.fail(&format!("{what}: {error}"));
        }
    }
    // Random bytes may announce a plausible length and wait for more: only sent, and
    // closed by us.
    for address in [&target.peer_address, &target.client_address] {
        let socket = address.parse().expect("a node address parses");
        if let Ok(mut stream) = TcpStream::connect_timeout(&socket, Duration::from_secs(2)) {
            let _ = stream.write_all(&garbage.bytes(64 * 1024));
        }
    }

    let malformed = test
        .wait_for_metric(leader.id, "raftkv_peer_malformed_frames_total", |value| {
            value >= malformed_peer_inputs.len() as u64
        })
        .await;
    let running = test.cluster.is_running(leader.id);
    test.check(running, || format!("node {} died on garbage input", leader.id));
    match http_get(&target.http_address, "/livez") {
        Ok((200, _)) => {}
        other => test.fail(&format!("node {}'s /livez answered {other:?}", leader.id)),
    }
    let mut client = test.client(write_options());
    put(&test, &mut client, "garbage/after", "still-serving").await;
    expect_value(&test, &mut client, "garbage/after", "still-serving").await;
    let converged = test.wait_for_convergence(&ids).await;
    let running = test.cluster.is_running(leader.id);
    test.check(running, || format!("node {} died after garbage input", leader.id));
    eprintln!(
        "garbage: node {} counted {malformed} malformed peer frames, kept running; cluster converged \
         at applied index {}",
        leader.id, converged.applied
    );
}
