//! `etcd-load`: the etcd side of `bench/compare-etcd.sh`, with `raftkv bench`'s semantics
//! over etcd's gRPC API (the `etcd-client` crate):
//!
//! - `--clients` closed-loop clients, each its own `etcd_client::Client` (its own HTTP/2
//!   connections, one request in flight), issuing the next request as soon as the last
//!   one answers, for `--duration-secs` or until `--requests` were measured;
//! - a uniformly random key among `--keys` under `--key-prefix`, `--value-bytes` values;
//! - `--mix writes`: real Put RPCs; `--mix reads`: Range of one key, linearizable (etcd's
//!   default; never `serializable`), after writing every key once, as `raftkv bench` does;
//! - a warm-up that is not measured; latencies in an HdrHistogram (1 µs to 1 h, 3 digits);
//! - a failed request is counted and retried after 10 ms, and the run stops with an error
//!   once nothing succeeded for two `--timeout-ms` deadlines;
//! - one JSON document on stdout with the fields of `raftkv --output json bench`;
//! - `--latency-log FILE`: one CSV row per request (warm-up included):
//!   `start_ms,latency_us,ok`, the start in milliseconds since the run's start, whose wall
//!   clock time is the summary's `start_unix_ms`.
//!
//! The client is given every member's endpoint and balances over them (as etcdctl and
//! clientv3 do); a follower forwards a put to the leader.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use etcd_client::{Client, ConnectOptions};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

const LATENCY_MICROS_MAX: u64 = 3_600_000_000;
const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(10);
const MONITOR_INTERVAL: Duration = Duration::from_millis(100);
const STALL_DEADLINES: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mix {
    /// Put RPCs only.
    Writes,
    /// Linearizable Range of one key only.
    Reads,
}

#[derive(Debug, Clone, Parser)]
#[command(about = "Closed-loop load on an etcd cluster, with raftkv bench's semantics")]
struct Args {
    /// Client URLs of the members, comma-separated (http://127.0.0.1:2379,...).
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    clients: u32,
    #[arg(long, default_value_t = 10, conflicts_with = "requests")]
    duration_secs: u64,
    /// Measure this many requests in all instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    #[arg(long, value_enum, default_value_t = Mix::Writes)]
    mix: Mix,
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    #[arg(long, default_value = "bench/")]
    key_prefix: String,
    /// Each request's deadline (the gRPC timeout).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// One CSV row per request: start_ms,latency_us,ok.
    #[arg(long)]
    latency_log: Option<PathBuf>,
}

impl Args {
    fn key(&self, index: u64) -> Vec<u8> {
        format!("{}{index}", self.key_prefix).into_bytes()
    }

    fn mix_name(&self) -> &'static str {
        match self.mix {
            Mix::Writes => "writes",
            Mix::Reads => "reads",
        }
    }

    fn kind(&self) -> &'static str {
        match self.mix {
            Mix::Writes => "put",
            Mix::Reads => "get",
        }
    }
}

/// The raft crate's PRNG (SplitMix64), so both load generators draw keys alike.
#[derive(Debug)]
struct Prng(u64);

impl Prng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        // As raft's `Prng::below`: the same seeds draw the same key sequence.
        self.next_u64() % bound
    }
}

#[derive(Debug)]
struct Shared {
    started: Instant,
    measure_from: Instant,
    requests_taken: AtomicU64,
    stopped: AtomicBool,
    /// Micros after `started` of the latest acknowledgement (0: none yet).
    last_ack_micros: AtomicU64,
    /// The longest time between two consecutive acknowledgements.
    max_ack_gap_micros: AtomicU64,
    histogram: Mutex<Histogram<u64>>,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    log: Option<Mutex<BufWriter<File>>>,
}

impl Shared {
    fn note_ack(&self, at: Instant) {
        let micros = micros(at.saturating_duration_since(self.started)).max(1);
        let previous = self.last_ack_micros.fetch_max(micros, Ordering::Relaxed);
        if previous > 0 && micros > previous {
            self.max_ack_gap_micros
                .fetch_max(micros - previous, Ordering::Relaxed);
        }
    }

    fn since_last_ack(&self) -> Duration {
        let last = Duration::from_micros(self.last_ack_micros.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    fn log(&self, start: Instant, latency: Duration, ok: bool) {
        if let Some(log) = &self.log {
            let start_ms = start.saturating_duration_since(self.started).as_secs_f64() * 1000.0;
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = writeln!(log, "{start_ms:.3},{},{}", micros(latency), u8::from(ok));
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

async fn connect(args: &Args) -> Result<Client, String> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let options = ConnectOptions::new()
        .with_timeout(timeout)
        .with_connect_timeout(timeout);
    Client::connect(&args.endpoints, Some(options))
        .await
        .map_err(|error| format!("cannot connect to {}: {error}", args.endpoints.join(",")))
}

async fn request(client: &mut Client, args: &Args, random: &mut Prng, value: &[u8]) -> Result<(), String> {
    let key = args.key(random.below(args.keys));
    let outcome = match args.mix {
        Mix::Writes => client.put(key, value.to_vec(), None).await.map(drop),
        // No GetOptions: a linearizable Range (serializable is false).
        Mix::Reads => client.get(key, None).await.map(drop),
    };
    outcome.map_err(|error| error.to_string())
}

async fn run_client(mut client: Client, args: Arc<Args>, shared: Arc<Shared>, index: u32) -> Instant {
    let mut random = Prng(u64::from(index));
    let value = vec![b'v'; args.value_bytes];
    let mut finished_at = Instant::now();
    while !shared.stopped.load(Ordering::Relaxed) {
        let started = Instant::now();
        let measured = started >= shared.measure_from;
        if measured {
            let more = match args.requests {
                Some(requests) => shared.requests_taken.fetch_add(1, Ordering::Relaxed) < requests,
                None => started < shared.measure_from + Duration::from_secs(args.duration_secs),
            };
            if !more {
                break;
            }
        }
        let outcome = request(&mut client, &args, &mut random, &value).await;
        finished_at = Instant::now();
        let latency = finished_at.saturating_duration_since(started);
        shared.log(started, latency, outcome.is_ok());
        match outcome {
            Ok(()) => {
                shared.note_ack(finished_at);
                if measured {
                    shared
                        .histogram
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .saturating_record(micros(latency).max(1));
                }
            }
            Err(error) => {
                if measured {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                }
                *shared.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
                tokio::time::sleep(PAUSE_AFTER_ERROR).await;
            }
        }
    }
    finished_at
}

/// `--mix reads` writes every key once first, split among the clients.
async fn preload(args: &Arc<Args>) -> Result<(), String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks: Vec<tokio::task::JoinHandle<Result<(), String>>> = Vec::new();
    for _ in 0..args.clients {
        let mut client = connect(args).await?;
        let (args, next) = (Arc::clone(args), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; args.value_bytes];
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= args.keys {
                    return Ok(());
                }
                client
                    .put(args.key(index), value.clone(), None)
                    .await
                    .map_err(|error| format!("preloading the keys for reads: {error}"))?;
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|_| "a preloading client panicked".to_string())??;
    }
    Ok(())
}

fn millis(histogram: &Histogram<u64>, quantile: Option<f64>) -> Option<f64> {
    if histogram.is_empty() {
        return None;
    }
    let micros = quantile.map_or_else(|| histogram.max(), |q| histogram.value_at_quantile(q));
    Some(round(micros as f64 / 1000.0, 3))
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10_f64.powi(decimals);
    (value * scale).round() / scale
}

fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

async fn run(args: Args) -> Result<Value, String> {
    let args = Arc::new(args);
    // One linearizable get first: a dead cluster is one clear error.
    connect(&args)
        .await?
        .get(args.key(0), None)
        .await
        .map_err(|error| {
            format!(
                "the cluster at {} does not serve: {error}",
                args.endpoints.join(",")
            )
        })?;
    if args.mix == Mix::Reads {
        preload(&args).await?;
    }
    let log = match &args.latency_log {
        Some(path) => {
            let file =
                File::create(path).map_err(|error| format!("cannot create {}: {error}", path.display()))?;
            let mut writer = BufWriter::new(file);
            writeln!(writer, "start_ms,latency_us,ok").map_err(|error| error.to_string())?;
            Some(Mutex::new(writer))
        }
        None => None,
    };
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        clients.push(connect(&args).await?);
    }
    let start_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let started = Instant::now();
    let shared = Arc::new(Shared {
        started,
        measure_from: started + Duration::from_secs(args.warmup_secs),
        requests_taken: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
        last_ack_micros: AtomicU64::new(0),
        max_ack_gap_micros: AtomicU64::new(0),
        histogram: Mutex::new(
            Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3).map_err(|error| error.to_string())?,
        ),
        errors: AtomicU64::new(0),
        last_error: Mutex::new(None),
        log,
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(0..)
        .map(|(client, index)| {
            tokio::spawn(run_client(client, Arc::clone(&args), Arc::clone(&shared), index))
        })
        .collect();
    let stall_after = (Duration::from_millis(args.timeout_ms) * STALL_DEADLINES).max(Duration::from_secs(1));
    let mut stalled_for = None;
    while tasks.iter().any(|task| !task.is_finished()) {
        tokio::time::sleep(MONITOR_INTERVAL).await;
        let since = shared.since_last_ack();
        if stalled_for.is_none() && since > stall_after {
            shared.stopped.store(true, Ordering::Relaxed);
            stalled_for = Some(since);
        }
    }
    let mut last_finish = shared.measure_from;
    for task in tasks {
        last_finish = last_finish.max(task.await.map_err(|_| "a client panicked".to_string())?);
    }
    if let Some(log) = &shared.log {
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
            .map_err(|error| format!("writing the latency log: {error}"))?;
    }
    let last_error = shared
        .last_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(stalled_for) = stalled_for {
        return Err(format!(
            "no request succeeded for {:.1} s; stopped the benchmark; last error: {}",
            stalled_for.as_secs_f64(),
            last_error.unwrap_or_else(|| "none (requests hung until their deadline)".into())
        ));
    }
    let histogram = shared
        .histogram
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let elapsed = last_finish
        .saturating_duration_since(shared.measure_from)
        .as_secs_f64();
    let ok = histogram.len();
    let errors = shared.errors.load(Ordering::Relaxed);
    let per_sec = |count: u64| {
        if elapsed > 0.0 {
            round(count as f64 / elapsed, 1)
        } else {
            0.0
        }
    };
    let mut latency = serde_json::Map::new();
    for (quantile, label) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99_9")] {
        latency.insert(label.into(), json!(millis(&histogram, Some(quantile))));
    }
    latency.insert("max".into(), json!(millis(&histogram, None)));
    let mut operations = serde_json::Map::new();
    operations.insert(
        args.kind().into(),
        json!({
            "ok": ok,
            "errors": errors,
            "ops_per_sec": per_sec(ok),
            "latency_ms": latency,
            "last_error": last_error,
        }),
    );
    Ok(json!({
        "system": "etcd",
        "endpoints": args.endpoints,
        "mix": args.mix_name(),
        "clients": args.clients,
        "value_bytes": args.value_bytes,
        "keys": args.keys,
        "warmup_secs": args.warmup_secs,
        "duration_secs": args.requests.is_none().then_some(args.duration_secs),
        "requests": args.requests,
        "elapsed_secs": round(elapsed, 3),
        "operations": operations,
        "total": { "ok": ok, "errors": errors, "ops_per_sec": per_sec(ok) },
        "start_unix_ms": start_unix_ms,
        "max_ack_gap_ms": round(shared.max_ack_gap_micros.load(Ordering::Relaxed) as f64 / 1000.0, 3),
        "latency_log": args.latency_log,
        "load_average_1m": load_average(),
        "cores": std::thread::available_parallelism().map_or(1, usize::from),
    }))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(summary) => println!("{summary}"),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_uniform_and_in_range() {
        let mut random = Prng(7);
        let mut counts = [0_u32; 10];
        for _ in 0..100_000 {
            counts[random.below(10) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&count| (9_500..=10_500).contains(&count)),
            "{counts:?}"
        );
    }
}
