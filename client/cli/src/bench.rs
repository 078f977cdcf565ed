//! `raftkv bench`: a closed-loop load generator. `--clients` tasks each own one `Client`
//! (one session, one request in flight, as the session protocol requires) and issue the
//! next request as soon as the last one answers, for `--duration-secs` or until
//! `--requests` have been measured. Latencies go to HdrHistograms, so the tail
//! percentiles are exact to three significant digits rather than averaged away.
//!
//! Closed loop means latency is measured under the load the clients themselves create:
//! a stalled cluster slows the clients down instead of queueing up requests, so the
//! figures describe service time at this concurrency, not an open-loop arrival rate
//! (coordinated omission, in Gil Tene's words). That is what `etcdctl check perf` and
//! `etcd benchmark` report too, and it keeps the run bounded.
//!
//! The run is bounded twice over: every request carries the client's deadline
//! (`--timeout-ms`), and the run is abandoned once no request has succeeded for twice
//! that deadline, so a cluster that dies mid-run ends the benchmark with an error
//! instead of a long wait. Short of that, errors are counted and the clients go on, so
//! a run across a leader's failure measures it: the report has the longest time between
//! two acknowledgements, and `--latency-log` writes every request's timing to a CSV
//! (`bench/timeline.rs`). On a terminal, a progress bar runs on stderr (`bench/progress.rs`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use client::client::{Client, ClientError, ClientOptions};
use client::local_cluster::{LocalCluster, LocalClusterOptions};
use client::wire::{ReadConsistency, KEY_BYTES_MAX, VALUE_BYTES_MAX};
use client::{parse_endpoints, Endpoint};

use raft::Prng;

use self::progress::Progress;
use self::report::{load_average, Report, Tally};
use self::timeline::Timeline;
use crate::output::Output;
use crate::{Failure, GlobalArgs};

mod progress;
mod report;
mod rss;
mod timeline;

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv bench --local --mix writes --clients 16 --duration-secs 15")]
pub struct BenchArgs {
    /// Start a local three-node cluster (as `raftkv demo` does), measure it and stop it
    /// after; without it, the cluster at --endpoints is measured.
    #[arg(long)]
    local: bool,
    /// With --local: the `raftkv-node` binary; by default the one beside this `raftkv`.
    #[arg(long, env = "RAFTKV_NODE_BIN")]
    node_binary: Option<PathBuf>,
    /// With --local: where the nodes keep their data and logs; by default a fresh
    /// temporary directory, removed after a successful run.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// With --local: length of a Raft tick (raftkv-node's default).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    tick_ms: u64,
    /// With --local: snapshot and compact the log every this many applied entries. The
    /// default is the demo's, which snapshots often; under a write load each snapshot
    /// pauses the nodes, and it shows in the tail latencies (the node's own default is
    /// 10000).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: u64,
    /// With --local: run the nodes --insecure (plain TCP), to measure what TLS costs.
    /// By default the local cluster runs mutual TLS, as a deployment does.
    #[arg(long)]
    local_insecure: bool,
    /// With --local: print every node's resident memory (RSS) every this many seconds,
    /// and at the end its peak in each half of the run (a memory soak). 0: never.
    #[arg(long, default_value_t = 0, requires = "local",
          value_parser = clap::value_parser!(u64).range(0..=3_600))]
    rss_every_secs: u64,
    /// Concurrent clients, each with its own session and connection and one request in
    /// flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=CLIENTS_MAX))]
    clients: u32,
    /// Measure for this many seconds (after the warm-up).
    #[arg(long, default_value_t = 10, conflicts_with = "requests",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration_secs: u64,
    /// Measure this many requests in all, across the clients (after the warm-up),
    /// instead of a duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    requests: Option<u64>,
    /// Size of every written value.
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=VALUE_BYTES_MAX as u64))]
    value_bytes: u64,
    /// Size of the key space; each request picks a key uniformly at random (`--mix reads`
    /// first writes every key once, so that gets find values).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=KEYS_MAX))]
    keys: u64,
    /// What the clients send: puts, linearizable gets, or half and half.
    #[arg(long, value_enum, default_value_t = Mix::Writes)]
    mix: Mix,
    /// Run the load this many seconds before measuring, so that connections, leader
    /// discovery and the nodes' caches are warm.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    warmup_secs: u64,
    /// Prefix of every key the benchmark reads or writes (writes overwrite those keys).
    #[arg(long, default_value = "bench/", value_parser = parse_key_prefix)]
    key_prefix: String,
    /// Write one CSV row per request, warm-up included, to FILE: `start_ms,latency_us,ok`
    /// (sent at this many milliseconds after the run's start, which the JSON report gives
    /// as `start_unix_ms`; its latency; 1 if acknowledged, 0 if it failed).
    #[arg(long, value_name = "FILE")]
    latency_log: Option<PathBuf>,
    /// Send each client's reads to the nodes in turn instead of the leader: a follower
    /// answers a linearizable get through the leader's ReadIndex, so serving reads is
    /// shared by every node (`Client::spread_reads`). Writes still go to the leader.
    #[arg(long)]
    spread_reads: bool,
}

/// Checked up front: a key over the limit would fail every request at once, which the
/// run would only report as errors.
fn parse_key_prefix(prefix: &str) -> Result<String, String> {
    // The key index is a u64, at most 20 decimal digits.
    let key_bytes_max = prefix.len() + 20;
    if key_bytes_max > KEY_BYTES_MAX {
        return Err(format!(
            "a key of up to {key_bytes_max} bytes is over the limit of {KEY_BYTES_MAX}"
        ));
    }
    Ok(prefix.to_string())
}

/// More clients than this is a typo, not a benchmark of one process.
const CLIENTS_MAX: i64 = 4096;
/// Bounds `--mix reads`' preload, which writes every key once.
const KEYS_MAX: u64 = 10_000_000;
/// Highest recordable latency: the longest `--timeout-ms`, one hour. Larger values
/// (impossible unless the clock jumps) are clamped to it.
const LATENCY_MICROS_MAX: u64 = 3_600_000_000;
/// Three significant digits: p99.9 is exact to 0.1 %.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// How long `--local` waits for its fresh cluster to elect a leader and serve.
const LOCAL_STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// A client's pause after a failed request. The client library already retries what
/// retrying can fix, so an error that reaches the benchmark either took the whole
/// deadline or came back at once (say, an internal error); without a pause a client
/// would spin on the latter, hammering a failing cluster until the stall watch fires.
const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(10);
/// How often the coordinator looks for a finished or stalled run.
const MONITOR_INTERVAL: Duration = Duration::from_millis(100);
/// A run is stalled when nothing succeeded for this many client deadlines: one deadline
/// covers a request caught by a leader change; two mean the cluster is not serving.
const STALL_DEADLINES: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    /// Puts only: every request is a Raft proposal and an fsync on a majority.
    Writes,
    /// Linearizable gets only (ReadIndex: a leader heartbeat round, no fsync).
    Reads,
    /// Half puts, half linearizable gets, chosen at random per request.
    Mixed,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Self::Writes => "writes",
            Self::Reads => "reads",
            Self::Mixed => "mixed",
        }
    }

    fn kinds(self) -> &'static [Kind] {
        match self {
            Self::Writes => &[Kind::Put],
            Self::Reads => &[Kind::Get],
            Self::Mixed => &[Kind::Put, Kind::Get],
        }
    }

    fn pick(self, random: &mut Prng) -> Kind {
        match self {
            Self::Writes => Kind::Put,
            Self::Reads => Kind::Get,
            Self::Mixed if random.next_u64() & 1 == 0 => Kind::Put,
            Self::Mixed => Kind::Get,
        }
    }
}

/// One kind of operation, with its own latency histogram and error count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Get,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Put => 0,
            Self::Get => 1,
        }
    }
}

/// When the measured phase ends.
#[derive(Debug, Clone, Copy)]
enum Stop {
    AfterSeconds(u64),
    AfterRequests(u64),
}

/// Everything the run needs, detached from clap's structs so it can move to the
/// benchmark's own thread.
#[derive(Debug, Clone)]
struct Plan {
    local: Option<LocalPlan>,
    endpoints: Vec<Endpoint>,
    options: ClientOptions,
    /// TLS towards the cluster (the --tls-* flags, or the local cluster's admin client).
    tls: Option<Arc<rustls::client::ClientConfig>>,
    output: Output,
    clients: u32,
    stop: Stop,
    value_bytes: usize,
    keys: u64,
    mix: Mix,
    warmup: Duration,
    key_prefix: String,
    latency_log: Option<PathBuf>,
    spread_reads: bool,
}

#[derive(Debug, Clone)]
struct LocalPlan {
    node_binary: PathBuf,
    data_dir: Option<PathBuf>,
    tick_ms: u64,
    snapshot_every: u64,
    tls: bool,
    rss_every: Option<Duration>,
}

impl Plan {
    /// A client of the plan's cluster, over its TLS if it has one.
    fn client(&self, options: ClientOptions) -> Result<Client, ClientError> {
        let client = Client::new(self.endpoints.clone(), options)?.spread_reads(self.spread_reads);
        Ok(match &self.tls {
            Some(tls) => client.with_tls(tls.clone()),
            None => client,
        })
    }

    fn key(&self, index: u64) -> Vec<u8> {
        format!("{}{index}", self.key_prefix).into_bytes()
    }
}

/// Runs the benchmark on a multi-thread runtime of its own. The CLI's runtime is
/// current-thread (right for one request), but here the clients' encoding, decoding and
/// timing would all share one core with the coordinator; a runtime per core keeps the
/// load generator from being the bottleneck it measures. It runs on a separate OS thread
/// because a runtime cannot be started (or dropped) inside another one.
pub async fn bench(global: &GlobalArgs, args: BenchArgs) -> Result<(), Failure> {
    let plan = plan(global, args)?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("raftkv-bench".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("raftkv-bench-worker")
                .build()
                .map_err(|error| Failure::from(format!("cannot start the benchmark's runtime: {error}")))
                .and_then(|runtime| runtime.block_on(run(plan)));
            // The receiver only goes away if the CLI itself is gone.
            let _ = sender.send(result);
        })
        .map_err(|error| Failure::from(format!("cannot start the benchmark's thread: {error}")))?;
    let report = receiver
        .await
        .map_err(|_| Failure::from("the benchmark's thread panicked".to_string()))??;
    report.print();
    Ok(())
}

fn plan(global: &GlobalArgs, args: BenchArgs) -> Result<Plan, Failure> {
    let local = if args.local {
        let node_binary = crate::demo::node_binary(args.node_binary)?;
        Some(LocalPlan {
            node_binary,
            data_dir: args.data_dir,
            tick_ms: args.tick_ms,
            snapshot_every: args.snapshot_every,
            tls: !args.local_insecure,
            rss_every: (args.rss_every_secs > 0).then(|| Duration::from_secs(args.rss_every_secs)),
        })
    } else {
        None
    };
    let stop = match args.requests {
        Some(requests) => Stop::AfterRequests(requests),
        None => Stop::AfterSeconds(args.duration_secs),
    };
    Ok(Plan {
        local,
        endpoints: global.endpoints.0.clone(),
        options: global.client_options(),
        tls: global.tls()?,
        output: global.output,
        clients: args.clients,
        stop,
        // Bounded by clap to VALUE_BYTES_MAX, which fits any usize.
        value_bytes: usize::try_from(args.value_bytes).unwrap_or(VALUE_BYTES_MAX),
        keys: args.keys,
        mix: args.mix,
        warmup: Duration::from_secs(args.warmup_secs),
        key_prefix: args.key_prefix,
        latency_log: args.latency_log,
        spread_reads: args.spread_reads,
    })
}

/// Starts the local cluster if asked, runs the load, and tears the cluster down whatever
/// the outcome (its `Drop` kills the nodes).
async fn run(mut plan: Plan) -> Result<Report, Failure> {
    let Some(local) = plan.local.clone() else {
        return measure(&plan).await;
    };
    let created_dir = local.data_dir.is_none();
    let base_dir = local
        .data_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("raftkv-bench-{}", std::process::id())));
    if created_dir {
        // A leftover of an earlier run whose process id was the same would make the nodes
        // recover its log instead of starting empty.
        let _ = std::fs::remove_dir_all(&base_dir);
    }
    let cluster = LocalCluster::start(LocalClusterOptions {
        node_binary: local.node_binary,
        base_dir: base_dir.clone(),
        size: 3,
        cluster_name: "raftkv-bench".into(),
        tick_ms: local.tick_ms,
        snapshot_every: local.snapshot_every,
        extra_args: Vec::new(),
        tls: local.tls,
    })
    .map_err(|e| Failure::from(e.to_string()))?;
    plan.tls = cluster.client_tls().map_err(|e| Failure::from(e.to_string()))?;
    plan.endpoints =
        parse_endpoints(&cluster.endpoints().join(",")).map_err(|e| Failure::from(e.to_string()))?;
    let print = plan.output == Output::Text;
    let sampler = local.rss_every.map(|every| {
        let nodes = cluster
            .nodes()
            .iter()
            .filter_map(|node| cluster.pid(node.id).map(|pid| (node.id, pid)))
            .collect();
        rss::RssSampler::start(nodes, every, print)
    });
    let result = measure(&plan).await;
    if let Some(sampler) = sampler {
        sampler.finish(print).await;
    }
    drop(cluster);
    match result {
        Ok(report) => {
            if created_dir {
                // Best effort: a leftover temporary directory is harmless.
                let _ = std::fs::remove_dir_all(&base_dir);
            }
            Ok(report)
        }
        Err(failure) => Err(Failure {
            message: format!("{} (node logs are in {})", failure.message, base_dir.display()),
            ..failure
        }),
    }
}

/// Checks the cluster serves, preloads keys for reads, then runs the clients.
async fn measure(plan: &Plan) -> Result<Report, Failure> {
    preflight(plan).await?;
    if plan.output == Output::Text {
        outln!("{}", plan_line(plan));
    }
    if plan.mix == Mix::Reads {
        preload(plan).await?;
    }
    load(plan).await
}

/// One linearizable get before any load: it proves a leader serves (so a dead cluster is
/// one clear error, not a table of errors), and it does not change the data. A fresh
/// local cluster gets longer, to start and elect.
async fn preflight(plan: &Plan) -> Result<(), Failure> {
    let mut options = plan.options;
    if plan.local.is_some() {
        options.deadline = options.deadline.max(LOCAL_STARTUP_DEADLINE);
    }
    let mut client = plan.client(options)?;
    client
        .get(plan.key(0), ReadConsistency::Linearizable)
        .await
        .map_err(|error| {
            Failure::from(format!(
                "the cluster at {} does not serve: {error}",
                endpoint_list(&plan.endpoints)
            ))
        })?;
    Ok(())
}

/// `--mix reads` first writes every key once, split among the clients, so the gets find
/// values of `--value-bytes` rather than nothing (a miss has no value to send back).
/// Bounded: `--keys` writes, each with the client's deadline.
async fn preload(plan: &Plan) -> Result<(), Failure> {
    let next_key = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..plan.clients {
        let mut client = plan.client(plan.options)?;
        let (plan, next_key) = (plan.clone(), Arc::clone(&next_key));
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; plan.value_bytes];
            loop {
                let index = next_key.fetch_add(1, Ordering::Relaxed);
                if index >= plan.keys {
                    return Ok(());
                }
                if let Err(error) = client.put(plan.key(index), value.clone()).await {
                    return Err(Failure::from(format!("preloading the keys for reads: {error}")));
                }
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|_| Failure::from("a preloading client panicked".to_string()))??;
    }
    Ok(())
}

/// Runs the clients, watches for the end or a stall, and gathers the report.
async fn load(plan: &Plan) -> Result<Report, Failure> {
    let mut clients = Vec::new();
    for _ in 0..plan.clients {
        clients.push(plan.client(plan.options)?);
    }
    let timeline = Timeline::start(plan.latency_log.as_deref())?;
    let started = timeline.started();
    let shared = Arc::new(Shared {
        measure_from: started + plan.warmup,
        requests_taken: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
        last_success_micros: AtomicU64::new(0),
        started,
        tallies: [Mutex::new(Tally::new()?), Mutex::new(Tally::new()?)],
        last_error: Mutex::new(None),
        measured_answers: AtomicU64::new(0),
        measured_errors: AtomicU64::new(0),
        timeline,
    });
    let mut tasks = Vec::new();
    for (client_index, client) in (0..).zip(clients) {
        let (plan, shared) = (plan.clone(), Arc::clone(&shared));
        tasks.push(tokio::spawn(run_client(client, plan, shared, client_index)));
    }
    let progress = Progress::start(plan.stop, shared.measure_from);
    let stall_after = (plan.options.deadline * STALL_DEADLINES).max(Duration::from_secs(1));
    let mut stalled_for = None;
    while tasks.iter().any(|task| !task.is_finished()) {
        tokio::time::sleep(MONITOR_INTERVAL).await;
        progress.update(
            shared.measured_answers.load(Ordering::Relaxed),
            shared.measured_errors.load(Ordering::Relaxed),
        );
        let since_success = shared.since_last_success();
        if stalled_for.is_none() && since_success > stall_after {
            // Clients finish their current request (bounded by the deadline) and stop.
            shared.stopped.store(true, Ordering::Relaxed);
            stalled_for = Some(since_success);
        }
    }
    let mut last_finish = shared.measure_from;
    for task in tasks {
        let finished_at = task
            .await
            .map_err(|_| Failure::from("a benchmark client panicked".to_string()))?;
        last_finish = last_finish.max(finished_at);
    }
    progress.finish();
    shared.timeline.finish()?;
    let tallies = shared
        .tallies
        .each_ref()
        .map(|tally| tally.lock().unwrap_or_else(PoisonError::into_inner).clone());
    if let Some(stalled_for) = stalled_for {
        let last_error = shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "none (requests hung until their deadline)".into());
        return Err(Failure::from(format!(
            "no request succeeded for {:.1} s; stopped the benchmark; last error: {last_error}",
            stalled_for.as_secs_f64()
        )));
    }
    Ok(Report {
        plan: plan.clone(),
        elapsed: last_finish.saturating_duration_since(shared.measure_from),
        tallies,
        load_average: load_average(),
        start_unix_ms: shared.timeline.start_unix_ms(),
        max_ack_gap: shared.timeline.max_ack_gap(),
    })
}

/// State the clients share with the coordinator. Histograms are shared behind a mutex
/// rather than kept per client: a 3-digit histogram up to an hour is ~190 KiB, times
/// thousands of clients would be a lot, while a lock held for one `record` is cheap
/// next to a network round trip.
#[derive(Debug)]
struct Shared {
    started: Instant,
    /// Requests started before this (the warm-up) are not recorded.
    measure_from: Instant,
    /// With `--requests`: how many measured requests the clients have claimed.
    requests_taken: AtomicU64,
    /// Set by the coordinator when the run stalled.
    stopped: AtomicBool,
    /// Microseconds after `started` of the latest success (warm-up included).
    last_success_micros: AtomicU64,
    /// Indexed by `Kind::index`.
    tallies: [Mutex<Tally>; 2],
    /// The latest error of any request, warm-up included, for a stalled run's message.
    last_error: Mutex<Option<String>>,
    /// Requests of the measured phase answered so far, and how many of them failed (the
    /// progress bar's figures).
    measured_answers: AtomicU64,
    measured_errors: AtomicU64,
    /// Acknowledgement gaps and the optional per-request log.
    timeline: Timeline,
}

impl Shared {
    fn note_success(&self) {
        let micros = duration_micros(self.started.elapsed());
        self.last_success_micros.fetch_max(micros, Ordering::Relaxed);
    }

    fn since_last_success(&self) -> Duration {
        let last = Duration::from_micros(self.last_success_micros.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    fn tally(&self, kind: Kind) -> std::sync::MutexGuard<'_, Tally> {
        // A client that panicked mid-record leaves counts that are still counts.
        self.tallies[kind.index()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One client's loop: pick a kind and a key, send, time it, repeat until the end.
/// Returns when its last request finished, for the throughput's denominator.
async fn run_client(mut client: Client, plan: Plan, shared: Arc<Shared>, client_index: u32) -> Instant {
    // Fixed seeds: two runs with the same flags send the same key sequence.
    let mut random = Prng::new(u64::from(client_index));
    let value = vec![b'v'; plan.value_bytes];
    let mut finished_at = Instant::now();
    while !shared.stopped.load(Ordering::Relaxed) {
        let started = Instant::now();
        let measured = started >= shared.measure_from;
        if measured {
            let more = match plan.stop {
                Stop::AfterSeconds(seconds) => started < shared.measure_from + Duration::from_secs(seconds),
                // Claimed before sending, so exactly `requests` are measured in all.
                Stop::AfterRequests(requests) => {
                    shared.requests_taken.fetch_add(1, Ordering::Relaxed) < requests
                }
            };
            if !more {
                break;
            }
        }
        let kind = plan.mix.pick(&mut random);
        let key = plan.key(random.below(plan.keys));
        let outcome = match kind {
            Kind::Put => client.put(key, value.clone()).await.map(drop),
            Kind::Get => client.get(key, ReadConsistency::Linearizable).await.map(drop),
        };
        finished_at = Instant::now();
        let latency = finished_at.saturating_duration_since(started);
        shared.timeline.record(started, finished_at, outcome.is_ok());
        if measured {
            shared.measured_answers.fetch_add(1, Ordering::Relaxed);
            if outcome.is_err() {
                shared.measured_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Warm-up errors are not counted (connections and leader discovery are still
        // settling), but they are no success either: the stall watch still sees them.
        match outcome {
            Ok(()) => {
                shared.note_success();
                if measured {
                    let micros = duration_micros(latency).max(1);
                    shared.tally(kind).latency_micros.saturating_record(micros);
                }
            }
            Err(error) => {
                let error = error.to_string();
                if measured {
                    let mut tally = shared.tally(kind);
                    tally.errors += 1;
                    tally.last_error = Some(error.clone());
                }
                *shared.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
                tokio::time::sleep(PAUSE_AFTER_ERROR).await;
            }
        }
    }
    finished_at
}

fn duration_micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn endpoint_list(endpoints: &[Endpoint]) -> String {
    endpoints
        .iter()
        .map(|endpoint| format!("{}:{}", endpoint.host, endpoint.port))
        .collect::<Vec<_>>()
        .join(",")
}

fn plan_line(plan: &Plan) -> String {
    let length = match plan.stop {
        Stop::AfterSeconds(seconds) => format!("for {seconds} s"),
        Stop::AfterRequests(requests) => format!("for {requests} requests"),
    };
    let cluster = if plan.local.is_some() {
        "a local 3-node cluster"
    } else {
        "the cluster"
    };
    format!(
        "benchmarking {cluster} at {}: {} mix, {} clients, {}-byte values over {} keys, {length} after a {} s warm-up",
        endpoint_list(&plan.endpoints),
        plan.mix.name(),
        plan.clients,
        plan.value_bytes,
        plan.keys,
        plan.warmup.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_picked_uniformly_within_the_key_space() {
        let mut random = Prng::new(7);
        let mut counts = [0_u32; 10];
        for _ in 0..100_000 {
            let index = random.below(10);
            counts[usize::try_from(index).expect("below 10")] += 1;
        }
        // Each of the ten keys gets 10 % give or take 0.5 % (about 5 standard deviations).
        assert!(
            counts.iter().all(|&count| (9_500..=10_500).contains(&count)),
            "{counts:?}"
        );
        assert_eq!(Prng::new(1).below(1), 0);
    }

    #[test]
    fn the_mixed_mix_sends_about_half_puts() {
        let mut random = Prng::new(3);
        let puts = (0..10_000)
            .filter(|_| Mix::Mixed.pick(&mut random) == Kind::Put)
            .count();
        assert!((4_800..=5_200).contains(&puts), "{puts} puts in 10000");
        assert_eq!(Mix::Writes.pick(&mut random), Kind::Put);
        assert_eq!(Mix::Reads.pick(&mut random), Kind::Get);
    }
}
