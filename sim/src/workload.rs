//! Concurrent clients doing put, get, delete and compare-and-swap on a small key set, every
//! written value unique, each client with its own session, every operation recorded in a
//! shared [`History`] with simulated times. An operation that fails or times out is left
//! indeterminate: it may or may not have taken effect.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use client::client::{Client, ClientOptions};
use client::Endpoint;
use madsim::rand::{thread_rng, Rng};
use tokio::sync::watch;
use tokio::time::Instant;
use wire::ReadConsistency;

use crate::history::{History, Op, OpResult};
use crate::parameters::OpMix;
use crate::tls::with_run_tls;

/// What the clients do.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub client_count: usize,
    /// The last this many clients only read.
    pub read_only_clients: usize,
    pub key_count: usize,
    pub client_options: ClientOptions,
    /// Upper bound of a client's pause between two operations.
    pub think_time_max: Duration,
    pub op_mix: OpMix,
}

/// Counters of one workload run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    pub completed: u64,
    pub indeterminate: u64,
}

/// A history shared by the workload's clients.
pub type SharedHistory = Arc<Mutex<History>>;

/// Nanoseconds of simulated time since `origin`.
fn nanos_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_nanos()).expect("a simulated run lasts less than 584 years")
}

/// Runs `config.client_count` clients concurrently against `endpoints` until `stop`
/// turns true (each finishes the operation it is in), recording into `history` with times measured from
/// `origin`. Must run on a madsim node other than the cluster's (the client node).
pub async fn run(
    endpoints: Vec<Endpoint>,
    config: WorkloadConfig,
    history: SharedHistory,
    origin: Instant,
    stop: watch::Receiver<bool>,
) -> WorkloadStats {
    assert!(config.client_count >= 1 && config.key_count >= 1 && config.op_mix.total() > 0);
    assert!(config.read_only_clients <= config.client_count);
    let mut tasks = Vec::with_capacity(config.client_count);
    for index in 0..config.client_count {
        // Fixed ids: a run is reproducible from its seed, and ids never collide.
        let client_id = 1 + index as u64;
        // Every other client spreads its reads over all nodes (issue 14's follower
        // reads), so the linearizability checker sees reads served through a
        // follower's ReadIndex in every run, beside the leader's own.
        let client = with_run_tls(
            Client::new(endpoints.clone(), config.client_options)
                .expect("endpoints are not empty")
                .with_client_id(client_id)
                .spread_reads(client_id % 2 == 1),
        );
        tasks.push(tokio::spawn(run_client(
            client,
            config.clone(),
            history.clone(),
            origin,
            stop.clone(),
        )));
    }
    let mut stats = WorkloadStats::default();
    for task in tasks {
        let client_stats = task.await.expect("a workload client panicked");
        stats.completed += client_stats.completed;
        stats.indeterminate += client_stats.indeterminate;
    }
    stats
}

fn unique_value(client_id: u64, counter: &mut u64) -> Vec<u8> {
    *counter += 1;
    format!("c{client_id}-{counter}").into_bytes()
}

fn random_op(config: &WorkloadConfig, client_id: u64, counter: &mut u64) -> Op {
    let read_only = client_id as usize > config.client_count - config.read_only_clients;
    let mut rng = thread_rng();
    let key = format!("k{}", rng.gen_range(0..config.key_count)).into_bytes();
    let OpMix {
        get,
        put,
        delete,
        cas,
    } = config.op_mix;
    let pick = if read_only {
        0
    } else {
        rng.gen_range(0..get + put + delete + cas)
    };
    match pick {
        _ if pick < get => Op::Get { key },
        _ if pick < get + put => Op::Put {
            key,
            value: unique_value(client_id, counter),
        },
        _ if pick < get + put + delete => Op::Delete { key },
        _ => {
            // Expect absent or a value this client wrote; either may match.
            let expected = if *counter == 0 || rng.gen_bool(0.3) {
                None
            } else {
                Some(format!("c{client_id}-{}", rng.gen_range(1..=*counter)).into_bytes())
            };
            let new = if rng.gen_bool(0.1) {
                None
            } else {
                Some(unique_value(client_id, counter))
            };
            Op::Cas { key, expected, new }
        }
    }
}

async fn execute(client: &mut Client, op: &Op) -> Result<OpResult, client::client::ClientError> {
    Ok(match op.clone() {
        Op::Get { key } => OpResult::Get {
            value: client.get(key, ReadConsistency::Linearizable).await?,
        },
        // Deletes and swaps ask for the value they replace: the checker needs what they
        // saw (a result that says only "a value existed" would defeat its pruning of
        // indeterminate writes). Their answers without values are tested in
        // `node/src/kv/state_machine.rs` and `node/tests/cluster/sessions.rs`.
        // One put in four does not ask (the record of its session keeps no value): the
        // checker places it in time and checks what later reads see.
        Op::Put { key, value } if thread_rng().gen_ratio(1, 4) => {
            client.put(key, value).await?;
            OpResult::PutDone
        }
        Op::Put { key, value } => OpResult::Put {
            previous: client.put_returning_previous(key, value).await?,
        },
        Op::Delete { key } => OpResult::Delete {
            previous: client.delete_returning_previous(key).await?,
        },
        Op::Cas { key, expected, new } => {
            let (swapped, current) = client
                .compare_and_swap_returning_current(key, expected, new)
                .await?;
            OpResult::Cas { swapped, current }
        }
    })
}

async fn run_client(
    mut client: Client,
    config: WorkloadConfig,
    history: SharedHistory,
    origin: Instant,
    stop: watch::Receiver<bool>,
) -> WorkloadStats {
    let client_id = client.client_id();
    let mut counter = 0_u64;
    let mut stats = WorkloadStats::default();
    while !*stop.borrow() {
        let op = random_op(&config, client_id, &mut counter);
        let id = lock(&history).invoke(client_id, op.clone(), nanos_since(origin));
        match execute(&mut client, &op).await {
            Ok(result) => {
                lock(&history).complete(id, nanos_since(origin), result);
                stats.completed += 1;
            }
            Err(error) => {
                // Unknown outcome: the write may still be applied later.
                tracing::debug!(client_id, ?op, %error, "operation indeterminate");
                stats.indeterminate += 1;
            }
        }
        let think_nanos = thread_rng().gen_range(0..=config.think_time_max.as_nanos() as u64);
        tokio::time::sleep(Duration::from_nanos(think_nanos)).await;
    }
    stats
}

fn lock(history: &SharedHistory) -> std::sync::MutexGuard<'_, History> {
    history.lock().unwrap_or_else(PoisonError::into_inner)
}
