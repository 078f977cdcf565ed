//! The first whole-cluster simulation: three real raftkv nodes under madsim, concurrent
//! clients, the leader killed (losing its unsynced writes) and restarted, then a healed
//! cluster that must converge; the clients' history must be linearizable.
//!
//! Seeds: `MADSIM_TEST_SEED` (default: from the clock) and `MADSIM_TEST_NUM` (default 1)
//! as with `#[madsim::test]`; `MADSIM_TEST_CHECK_DETERMINISM=1` runs the first seed twice
//! and fails if the two runs differ. This is a plain `#[test]` that builds one madsim
//! runtime per seed rather than `#[madsim::test]`, because inside a madsim runtime
//! `std::time::Instant` is simulated too: wall time can only be measured outside it.
#![cfg(madsim)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use client::client::{Client, ClientOptions};
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::{Handle, Runtime};
use sim::cluster::{client_endpoint, ClusterConfig, SimCluster};
use sim::history::History;
use sim::linearizability::{check, CheckResult};
use sim::workload::{self, WorkloadConfig, WorkloadStats};
use tokio::time::{sleep, Instant};

const CLUSTER_SIZE: u64 = 3;
/// How long clients run while faults happen.
const WORKLOAD_DURATION: Duration = Duration::from_secs(20);
/// Bound of the liveness phase: after faults stop, the cluster must converge within it.
const CONVERGENCE_BOUND: Duration = Duration::from_secs(30);
/// Bound of a whole run in simulated time: a hang fails instead of spinning forever.
const SIMULATED_TIME_LIMIT: Duration = Duration::from_secs(300);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|value| {
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be an integer"))
    })
}

#[test]
fn three_nodes_survive_leader_crashes_linearizably() {
    let first_seed = env_u64("MADSIM_TEST_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64
    });
    if std::env::var("MADSIM_TEST_CHECK_DETERMINISM").is_ok() {
        println!("seed {first_seed}: checking determinism (two runs)");
        Runtime::check_determinism(first_seed, madsim::Config::default(), run_one_seed);
        return;
    }
    let seeds = env_u64("MADSIM_TEST_NUM").unwrap_or(1);
    let all_started = std::time::Instant::now();
    let mut simulated_total = Duration::ZERO;
    for seed in first_seed..first_seed + seeds {
        println!("seed {seed}: starting (reproduce with MADSIM_TEST_SEED={seed} MADSIM_TEST_NUM=1)");
        let started = std::time::Instant::now();
        let mut runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.set_time_limit(SIMULATED_TIME_LIMIT);
        let simulated = runtime.block_on(run_one_seed());
        let wall = started.elapsed();
        simulated_total += simulated;
        println!(
            "seed {seed}: passed; {:.1} simulated s in {:.2} wall s ({:.1} simulated s per wall s)",
            simulated.as_secs_f64(),
            wall.as_secs_f64(),
            simulated.as_secs_f64() / wall.as_secs_f64()
        );
    }
    let wall = all_started.elapsed();
    println!(
        "{seeds} seeds from {first_seed} passed in {:.1} wall s: {:.2} wall s per seed, {:.1} simulated s per wall s",
        wall.as_secs_f64(),
        wall.as_secs_f64() / seeds as f64,
        simulated_total.as_secs_f64() / wall.as_secs_f64()
    );
}

/// One run; returns the simulated time it took.
async fn run_one_seed() -> Duration {
    let handle = Handle::current();
    let seed = handle.seed();
    let origin = Instant::now();
    let mut cluster = SimCluster::start(ClusterConfig::new(CLUSTER_SIZE));
    let endpoints = cluster.endpoints();

    let history: Arc<Mutex<History>> = Arc::default();
    let workload_config = WorkloadConfig {
        duration: WORKLOAD_DURATION,
        ..WorkloadConfig::default()
    };
    println!("seed {seed}: {CLUSTER_SIZE} nodes, {workload_config:?}");
    let client_node = handle
        .create_node()
        .name("clients")
        .ip("10.0.1.1".parse().expect("an IP address"))
        .build();
    let workload = client_node.spawn(workload::run(
        endpoints.clone(),
        workload_config,
        history.clone(),
        origin,
    ));
    // The supervisor (this task) talks to nodes from a node of its own.
    let probe_node = handle
        .create_node()
        .name("probe")
        .ip("10.0.1.2".parse().expect("an IP address"))
        .build();

    // Safety phase: kill the leader a few times, restart it a few seconds later.
    let mut kills = 0;
    while origin.elapsed() + Duration::from_secs(6) < WORKLOAD_DURATION {
        sleep(Duration::from_millis(thread_rng().gen_range(1_000..3_000))).await;
        let leader = probe_node
            .spawn(find_leader(cluster.ids()))
            .await
            .expect("probe task");
        let Some(leader) = leader else { continue };
        let tear = thread_rng().gen_bool(0.5);
        let outcome = cluster.kill(leader, tear, thread_rng().gen());
        kills += 1;
        println!(
            "seed {seed}: t={:.2}s killed leader {leader} (tear {tear}: kept {} lost {} unsynced batches)",
            origin.elapsed().as_secs_f64(),
            outcome.kept_batches,
            outcome.lost_batches
        );
        sleep(Duration::from_millis(thread_rng().gen_range(1_000..4_000))).await;
        cluster.restart(leader);
        println!(
            "seed {seed}: t={:.2}s restarted {leader}",
            origin.elapsed().as_secs_f64()
        );
    }

    let stats: WorkloadStats = workload.await.expect("workload task");
    println!("seed {seed}: {kills} leader kills; workload {stats:?}");
    assert!(stats.completed > 0, "seed {seed}: no operation completed");

    // Liveness phase: no more faults; every node must reach the same applied == commit
    // and hold the same KV map.
    let converged_by = Instant::now() + CONVERGENCE_BOUND;
    let ids = cluster.ids();
    loop {
        let verdict = probe_node
            .spawn(convergence(ids.clone()))
            .await
            .expect("probe task");
        match verdict {
            Ok(keys) => {
                println!(
                    "seed {seed}: converged at t={:.2}s with {keys} keys",
                    origin.elapsed().as_secs_f64()
                );
                break;
            }
            Err(why) if Instant::now() >= converged_by => {
                panic!("seed {seed}: no convergence within {CONVERGENCE_BOUND:?}: {why}")
            }
            Err(_) => sleep(Duration::from_millis(200)).await,
        }
    }

    let history = history.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let operations = history.operations();
    let result = check(operations);
    match result {
        CheckResult::Linearizable => {
            println!("seed {seed}: {} operations, linearizable", operations.len());
        }
        CheckResult::NotLinearizable { key, explanation } => panic!(
            "seed {seed}: NOT linearizable on key {:?}: {explanation}",
            String::from_utf8_lossy(&key)
        ),
        CheckResult::Unknown { key } => panic!(
            "seed {seed}: linearizability unknown (step budget exhausted) on key {:?}",
            String::from_utf8_lossy(&key)
        ),
    }
    origin.elapsed()
}

fn probe_client() -> Client {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(2),
    };
    Client::new(vec![client_endpoint(1)], options)
        .expect("one endpoint")
        .with_client_id(u64::MAX)
}

/// The node that says it is leader with the highest term, if any answers.
async fn find_leader(ids: Vec<u64>) -> Option<u64> {
    let mut client = probe_client();
    let mut best: Option<(u64, u64)> = None;
    for id in ids {
        if let Ok(status) = client.status(&client_endpoint(id)).await {
            if status.role == "leader" && best.is_none_or(|(term, _)| status.term > term) {
                best = Some((status.term, id));
            }
        }
    }
    best.map(|(_, id)| id)
}

/// A node's whole KV map, as `Client::dump` returns it.
type KvMap = Vec<(Vec<u8>, Vec<u8>)>;

/// `Ok(number of keys)` when every node has applied == commit, the same applied index
/// and the same KV map; otherwise why not.
async fn convergence(ids: Vec<u64>) -> Result<usize, String> {
    let mut client = probe_client();
    // (node id, applied index, KV map) of the first node that answered.
    let mut reference: Option<(u64, u64, KvMap)> = None;
    for id in ids {
        let dump = client
            .dump(&client_endpoint(id))
            .await
            .map_err(|e| format!("node {id}: {e}"))?;
        let status = &dump.status;
        if status.applied != status.commit {
            return Err(format!(
                "node {id}: applied {} != commit {}",
                status.applied, status.commit
            ));
        }
        match &reference {
            None => reference = Some((id, status.applied, dump.kv)),
            Some((first, applied, kv)) => {
                if status.applied != *applied {
                    return Err(format!(
                        "node {id} applied {} but node {first} applied {applied}",
                        status.applied
                    ));
                }
                if dump.kv != *kv {
                    return Err(format!(
                        "node {id} and node {first} hold different KV maps at {applied}"
                    ));
                }
            }
        }
    }
    Ok(reference.map_or(0, |(_, _, kv)| kv.len()))
}
