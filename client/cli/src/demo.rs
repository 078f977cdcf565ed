//! `raftkv demo`: the assignment's validation, walked through on a local three-node
//! cluster of real `raftkv-node` processes. Each step prints what it checked; the first
//! failure ends the demo with exit code 1.
//!
//! The steps: three writes and three reads; kill -9 the leader; a new leader is elected
//! and serves; writes continue; the killed node restarts on its own disk and catches
//! up; all three applied to the same index with equal KV maps.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use client::client::{Client, ClientOptions};
use client::local_cluster::{LocalCluster, LocalClusterOptions};
use client::wire::{NodeStatus, ReadConsistency};
use client::{parse_endpoints, Endpoint};
use rustls::client::ClientConfig;

use crate::Failure;

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv demo")]
pub struct DemoArgs {
    /// The `raftkv-node` binary; by default the one beside this `raftkv`.
    #[arg(long, env = "RAFTKV_NODE_BIN")]
    node_binary: Option<PathBuf>,
    /// Where the nodes keep their data and logs; by default a fresh temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Length of a Raft tick in the demo cluster (raftkv-node's default).
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
}

/// The demo cluster's `admin` client TLS, set once at the start of `demo`.
static DEMO_TLS: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();

/// A client of the demo cluster, over its TLS.
fn demo_client(
    endpoints: Vec<Endpoint>,
    options: ClientOptions,
) -> Result<Client, client::client::ClientError> {
    let client = Client::new(endpoints, options)?;
    Ok(match DEMO_TLS.get().cloned().flatten() {
        Some(tls) => client.with_tls(tls),
        None => client,
    })
}

/// Longest wait for the cluster to elect or converge in any step.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub async fn demo(args: DemoArgs) -> Result<(), Failure> {
    let node_binary = node_binary(args.node_binary)?;
    let base_dir = args
        .data_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("raftkv-demo-{}", std::process::id())));
    step(&format!(
        "starting three raftkv-node processes, data and logs under {}",
        base_dir.display()
    ));
    let mut cluster = LocalCluster::start(LocalClusterOptions {
        node_binary,
        base_dir,
        size: 3,
        cluster_name: "raftkv-demo".into(),
        tick_ms: args.tick_ms,
        snapshot_every: 1_000,
        extra_args: Vec::new(),
        tls: true,
    })
    .map_err(|e| Failure::from(e.to_string()))?;
    let tls = cluster.client_tls().map_err(|e| Failure::from(e.to_string()))?;
    // Set once, before any client of this process exists.
    let _ = DEMO_TLS.set(tls);
    detail(&format!(
        "mutual TLS on every port: certificates by `raftkv certs init` in {}",
        cluster.certs_dir().display()
    ));
    for node in cluster.nodes() {
        detail(&format!(
            "node {}: clients {}, peers {}, http {}",
            node.id, node.client_address, node.peer_address, node.http_address
        ));
    }
    let result = walk_through(&mut cluster).await;
    if result.is_err() {
        detail(&format!("node logs are in {}", cluster.base_dir().display()));
    }
    result
}

/// The `raftkv-node` to start: the one given, or the one beside this `raftkv`.
pub fn node_binary(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|e| Failure::from(format!("cannot locate raftkv: {e}")))?
            .with_file_name("raftkv-node"),
    };
    if !path.exists() {
        return Err(Failure::from(format!(
            "no raftkv-node at {} (build it: cargo build --release --bins, or pass --node-binary)",
            path.display()
        )));
    }
    Ok(path)
}

async fn walk_through(cluster: &mut LocalCluster) -> Result<(), Failure> {
    let endpoints: Vec<Endpoint> =
        parse_endpoints(&cluster.endpoints().join(",")).map_err(|e| Failure::from(e.to_string()))?;
    let options = ClientOptions {
        request_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(20),
    };
    let mut client = demo_client(endpoints.clone(), options)?;

    step("waiting for a leader");
    let started = Instant::now();
    let leader = wait_for_leader(&endpoints, &[]).await?;
    ok(&format!(
        "node {} leads after {} ms",
        leader.id,
        started.elapsed().as_millis()
    ));

    step("three writes, three linearizable reads");
    for n in 1..=3 {
        let (key, value) = (format!("demo/{n}"), format!("value-{n}"));
        client
            .put(key.as_bytes().to_vec(), value.as_bytes().to_vec())
            .await?;
        ok(&format!("put {key} = {value}"));
    }
    for n in 1..=3 {
        expect_value(&mut client, &format!("demo/{n}"), &format!("value-{n}")).await?;
    }

    step(&format!("kill -9 the leader, node {}", leader.id));
    cluster
        .kill(leader.id)
        .map_err(|e| Failure::from(e.to_string()))?;
    let killed_at = Instant::now();
    ok(&format!("node {} killed", leader.id));

    step("a new leader is elected and serves");
    let survivors: Vec<Endpoint> = endpoints
        .iter()
        .zip(cluster.nodes())
        .filter(|(_, node)| node.id != leader.id)
        .map(|(endpoint, _)| endpoint.clone())
        .collect();
    let new_leader = wait_for_leader(&survivors, &[leader.id]).await?;
    client
        .put(b"demo/after-failover".to_vec(), b"served".to_vec())
        .await?;
    ok(&format!(
        "node {} leads term {}; first write accepted {} ms after the kill",
        new_leader.id,
        new_leader.term,
        killed_at.elapsed().as_millis()
    ));

    step("writes continue while the old leader is down");
    for n in 4..=6 {
        let (key, value) = (format!("demo/{n}"), format!("value-{n}"));
        client
            .put(key.as_bytes().to_vec(), value.as_bytes().to_vec())
            .await?;
        ok(&format!("put {key} = {value}"));
    }
    expect_value(&mut client, "demo/6", "value-6").await?;

    step(&format!("restart node {} on its own data directory", leader.id));
    cluster
        .start_node(leader.id)
        .map_err(|e| Failure::from(e.to_string()))?;
    let restarted_at = Instant::now();
    let converged = wait_for_convergence(&mut client, &endpoints).await?;
    ok(&format!(
        "node {} recovered from disk and caught up in {} ms",
        leader.id,
        restarted_at.elapsed().as_millis()
    ));

    step("status of every node");
    detail(&format!(
        "{:<4} {:<10} {:>5} {:>7} {:>7} {:>8}",
        "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED"
    ));
    for status in &converged.statuses {
        let leader = status.leader.map_or("-".to_string(), |id| id.to_string());
        detail(&format!(
            "{:<4} {:<10} {:>5} {:>7} {:>7} {:>8}",
            status.id, status.role, status.term, leader, status.commit, status.applied
        ));
    }
    ok(&format!(
        "all three applied through index {}; their KV maps are equal ({} keys)",
        converged.applied, converged.keys
    ));
    outln!("\ndemo passed");
    Ok(())
}

/// The statuses of every node once they agree.
struct Converged {
    statuses: Vec<NodeStatus>,
    applied: u64,
    keys: usize,
}

/// Polls until one node reports itself leader of the highest term, ignoring `excluded`.
async fn wait_for_leader(endpoints: &[Endpoint], excluded: &[u64]) -> Result<NodeStatus, Failure> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let statuses = query_all(endpoints).await;
        let leader = statuses
            .into_iter()
            .flatten()
            .filter(|status| status.role == "leader" && !excluded.contains(&status.id))
            .max_by_key(|status| status.term);
        if let Some(leader) = leader {
            return Ok(leader);
        }
        if Instant::now() > deadline {
            return Err(Failure::from(format!(
                "no leader within {} s",
                STEP_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls until every node answers with the same applied index (equal to its commit)
/// and the same KV map.
async fn wait_for_convergence(client: &mut Client, endpoints: &[Endpoint]) -> Result<Converged, Failure> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut last_problem;
    loop {
        let statuses: Vec<Option<NodeStatus>> = query_all(endpoints).await;
        last_problem = match statuses.into_iter().collect::<Option<Vec<NodeStatus>>>() {
            None => "a node does not answer yet".to_string(),
            Some(statuses) => {
                let applied = statuses[0].applied;
                if statuses
                    .iter()
                    .all(|s| s.applied == applied && s.commit == applied)
                {
                    let mut maps = Vec::new();
                    for endpoint in endpoints {
                        maps.push(client.dump(endpoint).await?.kv);
                    }
                    if maps.iter().all(|map| *map == maps[0]) {
                        return Ok(Converged {
                            statuses,
                            applied,
                            keys: maps[0].len(),
                        });
                    }
                    "KV maps differ".to_string()
                } else {
                    let applied: Vec<u64> = statuses.iter().map(|s| s.applied).collect();
                    format!("applied indexes differ: {applied:?}")
                }
            }
        };
        if Instant::now() > deadline {
            return Err(Failure::from(format!(
                "no convergence within {} s: {last_problem}",
                STEP_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn query_all(endpoints: &[Endpoint]) -> Vec<Option<NodeStatus>> {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(500),
        deadline: Duration::from_millis(500),
    };
    let mut statuses = Vec::new();
    for endpoint in endpoints {
        let status = match demo_client(vec![endpoint.clone()], options) {
            Ok(mut client) => client.status(endpoint).await.ok(),
            Err(_) => None,
        };
        statuses.push(status);
    }
    statuses
}

async fn expect_value(client: &mut Client, key: &str, expected: &str) -> Result<(), Failure> {
    let value = client
        .get(key.as_bytes().to_vec(), ReadConsistency::Linearizable)
        .await?;
    if value.as_deref() != Some(expected.as_bytes()) {
        return Err(Failure::from(format!(
            "get {key}: expected {expected:?}, got {value:?}"
        )));
    }
    ok(&format!("get {key} = {expected}"));
    Ok(())
}

fn step(what: &str) {
    outln!("\n==> {what}");
}

fn ok(what: &str) {
    outln!("    ok: {what}");
}

fn detail(what: &str) {
    outln!("    {what}");
}
