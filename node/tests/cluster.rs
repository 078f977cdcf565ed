//! Integration tests with real `raftkv-node` processes on 127.0.0.1: crash recovery,
//! acknowledged writes surviving kill -9, catch-up by snapshot, graceful SIGTERM
//! hand-over, and refusal of foreign peers and garbage input. Each test starts its own
//! cluster (ticks of 20 ms) in a temporary directory; every wait is bounded and fails
//! with the tail of each node's log.

#![cfg(not(madsim))]

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::client::{Client, ClientOptions};
use client::frame::encode_frame;
use client::wire::ReadConsistency;
use node::transport::{Handshake, PROTOCOL_VERSION};
use support::{describe, http_get, log_field, node_binary, Garbage, TestCluster, WAIT_TIMEOUT};
use tokio::task::JoinHandle;

/// Writes in the tests ride out an election or two.
fn write_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(10),
    }
}

async fn put(test: &TestCluster, client: &mut Client, key: &str, value: &str) {
    if let Err(error) = client.put(key, value).await {
        test.fail(&format!("put {key} = {value} failed: {error}"));
    }
}

async fn expect_value(test: &TestCluster, client: &mut Client, key: &str, expected: &str) {
    match client.get(key, ReadConsistency::Linearizable).await {
        Ok(value) if value.as_deref() == Some(expected.as_bytes()) => {}
        Ok(value) => test.fail(&format!(
            "get {key}: expected {expected:?}, got {:?}",
            value.map(|v| String::from_utf8_lossy(&v).into_owned())
        )),
        Err(error) => test.fail(&format!("get {key} failed: {error}")),
    }
}

/// The number of lines of `log` containing `text`.
fn count_lines(log: &str, text: &str) -> usize {
    log.lines().filter(|line| line.contains(text)).count()
}

/// A write the cluster acknowledged.
#[derive(Debug, Clone)]
struct Acknowledged {
    key: String,
    value: String,
    at: Instant,
}

#[derive(Debug, Default)]
struct WriterReport {
    acknowledged: Vec<Acknowledged>,
    /// Failed writes: their outcome is unknown, so they are only counted.
    errors: Vec<String>,
}

/// Puts fresh keys `writer-<n>/<sequence>` with its own client until `stop`.
async fn write_until(mut client: Client, writer: usize, stop: Arc<AtomicBool>) -> WriterReport {
    let mut report = WriterReport::default();
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        sequence += 1;
        let key = format!("writer-{writer}/{sequence:06}");
        let value = format!("value-{writer}-{sequence}-{}", client.client_id());
        match client.put(key.as_str(), value.as_str()).await {
            Ok(_) => report.acknowledged.push(Acknowledged {
                key,
                value,
                at: Instant::now(),
            }),
            Err(error) => report.errors.push(format!("put {key}: {error}")),
        }
    }
    report
}

/// Concurrent writers, one client each.
struct Writers {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<WriterReport>>,
    deadline: Duration,
}

impl Writers {
    fn start(test: &TestCluster, count: usize, options: ClientOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..count)
            .map(|writer| tokio::spawn(write_until(test.client(options), writer, stop.clone())))
            .collect();
        Self {
            stop,
            handles,
            deadline: options.deadline,
        }
    }

    /// Stops the writers and merges their reports; a writer ends within one call's
    /// deadline.
    async fn stop(self, test: &TestCluster) -> WriterReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut merged = WriterReport::default();
        for handle in self.handles {
            match tokio::time::timeout(self.deadline + Duration::from_secs(5), handle).await {
                Ok(Ok(report)) => {
                    merged.acknowledged.extend(report.acknowledged);
                    merged.errors.extend(report.errors);
                }
                Ok(Err(error)) => test.fail(&format!("a writer task failed: {error}")),
                Err(_) => test.fail("a writer did not stop within its deadline"),
            }
        }
        merged
    }
}

/// Fails unless every node in `dumps` holds every acknowledged write.
fn check_acknowledged_present(
    test: &TestCluster,
    converged: &support::Converged,
    acknowledged: &[Acknowledged],
) {
    for dump in &converged.dumps {
        let kv: BTreeMap<&[u8], &[u8]> = dump
            .kv
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
            .collect();
        let missing: Vec<String> = acknowledged
            .iter()
            .filter(|ack| kv.get(ack.key.as_bytes()) != Some(&ack.value.as_bytes()))
            .map(|ack| {
                let found = kv
                    .get(ack.key.as_bytes())
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                format!("{} = {} (found {found:?})", ack.key, ack.value)
            })
            .collect();
        test.check(missing.is_empty(), || {
            format!(
                "node {} lost {} of {} acknowledged writes, e.g. {:?}",
                dump.status.id,
                missing.len(),
                acknowledged.len(),
                &missing[..missing.len().min(10)]
            )
        });
    }
}

/// The assignment's validation, as `raftkv demo` walks it: three writes and three reads;
/// kill -9 the leader; a new leader of a higher term is elected and serves; writes
/// continue; the killed node restarts on its own disk (it recovers, it does not bootstrap
/// again) and catches up; all three apply to the same index and hold equal KV maps with
/// every written value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validation_scenario() {
    let mut test = TestCluster::start("validation", 3, 1_000).await;
    let ids = test.ids();
    let mut client = test.client(write_options());
    let leader = test.wait_for_leader(&ids).await;
    let mut written = BTreeMap::new();
    for n in 1..=3 {
        let (key, value) = (format!("validation/{n}"), format!("value-{n}"));
        put(&test, &mut client, &key, &value).await;
        written.insert(key, value);
    }
    for (key, value) in &written {
        expect_value(&test, &mut client, key, value).await;
    }

    if let Err(error) = test.cluster.kill(leader.id) {
        test.fail(&format!("cannot kill node {}: {error}", leader.id));
    }
    let killed_at = Instant::now();
    put(&test, &mut client, "validation/after-failover", "served").await;
    let failover = killed_at.elapsed();
    written.insert("validation/after-failover".into(), "served".into());
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != leader.id).collect();
    let new_leader = test.wait_for_leader(&survivors).await;
    test.check(new_leader.term > leader.term, || {
        format!(
            "the new leader's term {} is not above the killed leader's {}",
            new_leader.term, leader.term
        )
    });
    for n in 4..=6 {
        let (key, value) = (format!("validation/{n}"), format!("value-{n}"));
        put(&test, &mut client, &key, &value).await;
        written.insert(key, value);
    }
    expect_value(&test, &mut client, "validation/6", "value-6").await;

    if let Err(error) = test.cluster.start_node(leader.id) {
        test.fail(&format!("cannot restart node {}: {error}", leader.id));
    }
    let restarted_at = Instant::now();
    let converged = test.wait_for_convergence(&ids).await;
    let catch_up = restarted_at.elapsed();

    let expected: BTreeMap<Vec<u8>, Vec<u8>> = written
        .iter()
        .map(|(key, value)| (key.clone().into_bytes(), value.clone().into_bytes()))
        .collect();
    test.check(converged.kv() == expected, || {
        format!(
            "the converged KV map is not what was written: {:?}",
            converged.kv()
        )
    });
    let bootstraps = count_lines(
        &test.cluster.log_of(leader.id),
        "bootstrapping a new cluster member",
    );
    test.check(bootstraps == 1, || {
        format!(
            "node {} bootstrapped {bootstraps} times: it did not recover from its disk",
            leader.id
        )
    });
    eprintln!(
        "validation: node {} (leader, term {}) killed; node {} leads term {}; failover (kill -> next \
         acknowledged write) {} ms; catch-up (restart -> all applied index {}, equal KV) {} ms",
        leader.id,
        leader.term,
        new_leader.id,
        new_leader.term,
        failover.as_millis(),
        converged.applied,
        catch_up.as_millis()
    );
}

/// Under a steady load of four concurrent writers, kill -9 the leader, restart it, then
/// kill -9 a follower and restart it. Writes must keep being acknowledged while a node is
/// down, and after convergence every node holds every acknowledged write (no
/// acknowledged write is lost). Failed writes are indeterminate and not checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_write_load_loses_no_acknowledged_write() {
    const PHASE: Duration = Duration::from_millis(1_200);
    let mut test = TestCluster::start("kill9-load", 3, 200).await;
    let ids = test.ids();
    let first_leader = test.wait_for_leader(&ids).await;
    let writers = Writers::start(&test, 4, write_options());
    tokio::time::sleep(PHASE).await;

    if let Err(error) = test.cluster.kill(first_leader.id) {
        test.fail(&format!("cannot kill node {}: {error}", first_leader.id));
    }
    let leader_killed_at = Instant::now();
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != first_leader.id).collect();
    let second_leader = test.wait_for_leader(&survivors).await;
    tokio::time::sleep(PHASE).await;
    let leader_restarted_at = Instant::now();
    if let Err(error) = test.cluster.start_node(first_leader.id) {
        test.fail(&format!("cannot restart node {}: {error}", first_leader.id));
    }
    tokio::time::sleep(PHASE).await;

    let follower = ids
        .iter()
        .copied()
        .find(|id| *id != second_leader.id && *id != first_leader.id)
        .expect("three nodes");
    if let Err(error) = test.cluster.kill(follower) {
        test.fail(&format!("cannot kill node {follower}: {error}"));
    }
    let follower_killed_at = Instant::now();
    tokio::time::sleep(PHASE).await;
    let follower_restarted_at = Instant::now();
    if let Err(error) = test.cluster.start_node(follower) {
        test.fail(&format!("cannot restart node {follower}: {error}"));
    }
    tokio::time::sleep(PHASE).await;
    let report = writers.stop(&test).await;

    let acknowledged_between = |from: Instant, to: Instant| {
        report
            .acknowledged
            .iter()
            .filter(|ack| ack.at > from && ack.at < to)
            .count()
    };
    let while_leader_down = acknowledged_between(leader_killed_at, leader_restarted_at);
    let while_follower_down = acknowledged_between(follower_killed_at, follower_restarted_at);
    test.check(while_leader_down > 0 && while_follower_down > 0, || {
        format!(
            "writes stalled: {while_leader_down} acknowledged while the old leader was down, \
             {while_follower_down} while the follower was down ({} errors: {:?})",
            report.errors.len(),
            &report.errors[..report.errors.len().min(5)]
        )
    });
    let converged = test.wait_for_convergence(&ids).await;
    check_acknowledged_present(&test, &converged, &report.acknowledged);
    eprintln!(
        "kill -9 under load: {} writes acknowledged ({while_leader_down} with the leader down, \
         {while_follower_down} with a follower down), {} indeterminate; all present on every node \
         at applied index {}",
        report.acknowledged.len(),
        report.errors.len(),
        converged.applied
    );
}

/// With a snapshot every 20 entries, a follower is killed and 200 writes follow, so the
/// leader compacts its log past everything the follower holds. Restarted, the follower
/// can only catch up by installing the leader's snapshot: it logs the installation, its
/// log starts after the snapshot (first index > 1, snapshot index beyond what it had),
/// and its KV map equals the others', all 200 writes included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_compaction_catches_up_by_snapshot() {
    const WRITERS: usize = 4;
    const WRITES_PER_WRITER: usize = 50;
    let mut test = TestCluster::start("snapshot-catch-up", 3, 20).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let follower = ids
        .iter()
        .copied()
        .find(|id| *id != leader.id)
        .expect("three nodes");
    let mut client = test.client(write_options());
    for n in 1..=5 {
        put(&test, &mut client, &format!("before/{n}"), "x").await;
    }
    test.wait_for_convergence(&ids).await;
    let Some(before) = test.status(follower).await else {
        test.fail(&format!("node {follower} does not answer"));
    };
    if let Err(error) = test.cluster.kill(follower) {
        test.fail(&format!("cannot kill node {follower}: {error}"));
    }

    let mut handles = Vec::new();
    for writer in 0..WRITERS {
        let mut client = test.client(write_options());
        handles.push(tokio::spawn(async move {
            for n in 0..WRITES_PER_WRITER {
                let key = format!("during/{writer}/{n:03}");
                if let Err(error) = client.put(key.as_str(), key.as_str()).await {
                    return Err(format!("put {key}: {error}"));
                }
            }
            Ok(())
        }));
    }
    for handle in handles {
        match tokio::time::timeout(WAIT_TIMEOUT, handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => test.fail(&format!("a write failed with a node down: {error}")),
            Ok(Err(error)) => test.fail(&format!("a writer task failed: {error}")),
            Err(_) => test.fail(&format!("writers did not finish within {WAIT_TIMEOUT:?}")),
        }
    }
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != follower).collect();
    let current_leader = test.wait_for_leader(&survivors).await;
    test.check(current_leader.first_index > before.last_index + 1, || {
        format!(
            "precondition: the leader did not compact past the follower's log (follower last index \
             {}; leader: {})",
            before.last_index,
            describe(&current_leader)
        )
    });

    if let Err(error) = test.cluster.start_node(follower) {
        test.fail(&format!("cannot restart node {follower}: {error}"));
    }
    let restarted_at = Instant::now();
    let converged = test.wait_for_convergence(&ids).await;
    let catch_up = restarted_at.elapsed();
    let restarted = converged
        .statuses
        .iter()
        .find(|status| status.id == follower)
        .expect("converged covers every node");
    test.check(
        restarted.first_index > 1 && restarted.snapshot_index > before.last_index,
        || {
            format!(
                "node {follower} shows no snapshot beyond its old log (last index {} before the kill): {}",
                before.last_index,
                describe(restarted)
            )
        },
    );
    let dump = converged
        .dumps
        .iter()
        .find(|dump| dump.status.id == follower)
        .expect("converged covers every node");
    test.check(dump.log.first().is_none_or(|(index, _, _)| *index > 1), || {
        format!(
            "node {follower}'s log still starts at index {:?}",
            dump.log.first()
        )
    });
    let installed = count_lines(
        &test.cluster.log_of(follower),
        "installed snapshot from the leader",
    );
    test.check(installed > 0, || {
        format!("node {follower} never logged \"installed snapshot from the leader\"")
    });
    let during = converged
        .kv()
        .keys()
        .filter(|key| key.starts_with(b"during/"))
        .count();
    test.check(during == WRITERS * WRITES_PER_WRITER, || {
        format!(
            "the converged map holds {during} of the {} writes made while node {follower} was down",
            WRITERS * WRITES_PER_WRITER
        )
    });
    eprintln!(
        "snapshot catch-up: node {follower} had last index {}; the leader compacted to first index {}; \
         restarted, it installed a snapshot at {} and converged at applied {} in {} ms",
        before.last_index,
        current_leader.first_index,
        restarted.snapshot_index,
        converged.applied,
        catch_up.as_millis()
    );
}

/// Three writers write continuously while the leader gets SIGTERM. The leader hands
/// leadership to its most up-to-date follower (the target it logs), exits with code 0
/// well within a Kubernetes grace period, the target leads the remaining two, and not
/// one client call fails during the whole test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_over_with_no_failed_request() {
    const GRACE: Duration = Duration::from_secs(10);
    const PHASE: Duration = Duration::from_millis(1_000);
    let mut test = TestCluster::start("sigterm", 3, 1_000).await;
    let ids = test.ids();
    let leader = test.wait_for_leader(&ids).await;
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(20),
    };
    let writers = Writers::start(&test, 3, options);
    tokio::time::sleep(PHASE).await;

    let terminated_at = Instant::now();
    let exit = tokio::task::block_in_place(|| test.cluster.terminate(leader.id));
    let shutdown = terminated_at.elapsed();
    match exit {
        Ok(Some(0)) => {}
        other => test.fail(&format!(
            "node {} exited with {other:?} on SIGTERM, not 0",
            leader.id
        )),
    }
    test.check(shutdown < GRACE, || {
        format!("node {} took {shutdown:?} to exit, over {GRACE:?}", leader.id)
    });
    let leader_log = test.cluster.log_of(leader.id);
    let Some(target) = log_field(&leader_log, "transferring leadership", "target_id") else {
        test.fail(&format!(
            "node {} did not log a leadership transfer target",
            leader.id
        ));
    };
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != leader.id).collect();
    let new_leader = test.wait_for_leader(&survivors).await;
    test.check(new_leader.id.to_string() == target, || {
        format!(
            "node {} leads, but the old leader handed over to node {target}",
            new_leader.id
        )
    });
    tokio::time::sleep(PHASE).await;
    let report = writers.stop(&test).await;

    test.check(report.errors.is_empty(), || {
        format!(
            "{} client calls failed around the SIGTERM hand-over: {:?}",
            report.errors.len(),
            &report.errors[..report.errors.len().min(10)]
        )
    });
    let after = report
        .acknowledged
        .iter()
        .filter(|ack| ack.at > terminated_at + shutdown)
        .count();
    test.check(after > 0, || {
        "no write was acknowledged after the old leader exited".into()
    });
    let converged = test.wait_for_convergence(&survivors).await;
    check_acknowledged_present(&test, &converged, &report.acknowledged);
    eprintln!(
        "sigterm: node {} exited 0 after {} ms, handed over to node {target} (term {}); {} writes \
         acknowledged ({after} after the exit), 0 failed",
        leader.id,
        shutdown.as_millis(),
        new_leader.term,
        report.acknowledged.len()
    );
}

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
        .args(["--id", "2", "--cluster-id", "other"])
        .args([
            "--peers",
            &format!("1={},2={intruder_peer}", test.cluster.node(1).peer_address),
        ])
        .args(["--listen-peer", &intruder_peer])
        .args(["--listen-client", &intruder_client])
        .args(["--listen-http", &intruder_http])
        .args(["--tick-ms", &support::TICK_MS.to_string()])
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
        let mut client = Client::new(intruder_endpoint.clone(), support::quick_options()).ok()?;
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
        tokio::time::sleep(support::POLL_INTERVAL).await;
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
        cluster_id: "garbage".into(),
        node_id: other_member,
        client_address: test.cluster.node(other_member).client_address.clone(),
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
