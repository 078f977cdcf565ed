//! `raftkv`: the command-line client of a raftkv cluster.
//!
//! Every subcommand has its own argument struct and a handler function taking it, so a
//! new subcommand is one enum variant, one struct and one function. Errors end the
//! process with exactly one line on stderr: exit code 2 for bad usage, 1 for anything
//! that went wrong at run time (including `get` of a missing key, as Consul does).

// A crate root looks for modules beside itself; these live in `raftkv/` to keep `bin/`
// free of files that are not binaries.
#[path = "raftkv/bench.rs"]
mod bench;
#[path = "raftkv/certs.rs"]
mod certs;
#[path = "raftkv/demo.rs"]
mod demo;
#[path = "raftkv/idle.rs"]
mod idle;
#[path = "raftkv/member.rs"]
mod member;
#[path = "raftkv/output.rs"]
mod output;
#[path = "raftkv/smoke.rs"]
mod smoke;
#[path = "raftkv/status.rs"]
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use client::client::{Client, ClientError, ClientOptions};
use client::tls::{client_config, TlsFiles};
use client::wire::{Prior, ReadConsistency};
use client::{parse_endpoints, Endpoint, EndpointError};
use rustls::client::ClientConfig;
use serde_json::json;

use crate::output::{lossy, Output};

/// Where a local cluster started by the README listens for clients.
const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";
/// Longest single attempt at one node: long enough for a busy node's fsync, short enough
/// that a dead node does not eat a command's whole timeout.
const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, Parser)]
#[command(name = "raftkv", version, about = "Command-line client of a raftkv cluster")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
struct GlobalArgs {
    /// Client addresses of the cluster's nodes, comma-separated host:port.
    #[arg(long, global = true, env = "RAFTKV_ENDPOINTS", default_value = DEFAULT_ENDPOINTS,
          value_parser = parse_endpoint_list)]
    endpoints: EndpointList,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Give up on the command after this many milliseconds, retries included.
    #[arg(long, global = true, default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    timeout_ms: u64,
    /// This client's certificate (PEM); its name is who the cluster sees. With
    /// --tls-key and --tls-ca; without the three, plain TCP (a node run --insecure).
    #[arg(long, global = true, env = "RAFTKV_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, global = true, env = "RAFTKV_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// The certificate authority the nodes' certificates chain to (PEM).
    #[arg(long, global = true, env = "RAFTKV_TLS_CA")]
    tls_ca: Option<PathBuf>,
}

impl GlobalArgs {
    fn client_options(&self) -> ClientOptions {
        let deadline = Duration::from_millis(self.timeout_ms);
        ClientOptions {
            request_timeout: deadline.min(REQUEST_TIMEOUT_MAX),
            deadline,
        }
    }

    fn client(&self) -> Result<Client, Failure> {
        self.new_client(self.endpoints.0.clone(), self.client_options())
    }

    /// The TLS client config of the --tls-* flags, if given.
    fn tls(&self) -> Result<Option<Arc<ClientConfig>>, Failure> {
        let files = TlsFiles::from_flags(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_ca.as_deref(),
        )
        .map_err(|e| Failure(e.to_string()))?;
        files
            .map(|files| client_config(&files).map_err(|e| Failure(format!("TLS: {e}"))))
            .transpose()
    }

    /// A client of `endpoints`, over TLS when the flags say so.
    fn new_client(&self, endpoints: Vec<Endpoint>, options: ClientOptions) -> Result<Client, Failure> {
        let client = Client::new(endpoints, options)?;
        Ok(match self.tls()? {
            Some(tls) => client.with_tls(tls),
            None => client,
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set KEY to VALUE (prints the value it replaced, if any).
    Put(PutArgs),
    /// Print the value of KEY (exit code 1 if it is absent).
    Get(GetArgs),
    /// Remove KEY.
    Delete(DeleteArgs),
    /// Compare-and-swap: change KEY only if it holds the expected value.
    Cas(CasArgs),
    /// Print the pairs whose key starts with PREFIX, in key order.
    List(ListArgs),
    /// Print the Raft state of every endpoint, one row per node.
    Status(StatusArgs),
    /// Print the Raft log and KV map of one node.
    Dump(DumpArgs),
    /// List the cluster's members, or add, remove or promote one (through the leader).
    Member(member::MemberArgs),
    /// Start a local three-node cluster and walk through the validation: writes, reads,
    /// kill -9 of the leader, failover, restart and catch-up from disk.
    Demo(demo::DemoArgs),
    /// Measure throughput and latency percentiles of a cluster (or of a local one, with
    /// --local) under concurrent clients.
    Bench(bench::BenchArgs),
    /// Check a running cluster end to end (for a Kubernetes Job): all endpoints agree on
    /// one leader, N writes and linearizable reads, every endpoint applies them.
    Smoke(smoke::SmokeArgs),
    /// Make certificates: a cluster's CA, node and admin client ones, or another client.
    Certs(certs::CertsArgs),
    /// Wait for SIGTERM or SIGINT, then exit 0: the main process of a client container,
    /// whose image has no shell, so that `kubectl exec`/`docker exec` can run raftkv in it.
    Idle(idle::IdleArgs),
}

#[derive(Debug, Args)]
struct PutArgs {
    key: String,
    value: String,
    /// Print the value KEY held before (etcdctl's `--prev-kv`). Without it the cluster
    /// answers only whether KEY held a value, and keeps no copy of it for a retry.
    #[arg(long)]
    prev_kv: bool,
}

#[derive(Debug, Args)]
struct GetArgs {
    key: String,
    /// Read the contacted node's local state: faster, never blocks on the leader, may be stale.
    #[arg(long)]
    stale: bool,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    key: String,
    /// Print the value KEY held (etcdctl's `--prev-kv`).
    #[arg(long)]
    prev_kv: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("expectation").required(true).args(["expected", "expect_absent"])))]
#[command(group(ArgGroup::new("replacement").required(true).args(["new", "delete"])))]
struct CasArgs {
    key: String,
    /// Swap only if KEY currently holds this value.
    #[arg(long, value_name = "VALUE")]
    expected: Option<String>,
    /// Swap only if KEY is currently absent.
    #[arg(long)]
    expect_absent: bool,
    /// The value to write.
    #[arg(long, value_name = "VALUE")]
    new: Option<String>,
    /// Delete KEY instead of writing a value.
    #[arg(long)]
    delete: bool,
}

#[derive(Debug, Args)]
struct ListArgs {
    prefix: String,
    /// At most this many pairs.
    #[arg(long, default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(client::wire::LIST_LIMIT_MAX)))]
    limit: u32,
    /// Read the contacted node's local state: may be stale.
    #[arg(long)]
    stale: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {}

#[derive(Debug, Args)]
struct DumpArgs {
    /// The node to dump, host:port.
    #[arg(long, value_parser = parse_single_endpoint)]
    endpoint: Endpoint,
}

/// A parsed `--endpoints` list (a newtype, so clap takes it as one value, not many).
#[derive(Debug, Clone)]
struct EndpointList(Vec<Endpoint>);

fn parse_endpoint_list(list: &str) -> Result<EndpointList, EndpointError> {
    parse_endpoints(list).map(EndpointList)
}

fn parse_single_endpoint(text: &str) -> Result<Endpoint, EndpointError> {
    let mut endpoints = parse_endpoints(text)?;
    match endpoints.len() {
        1 => Ok(endpoints.remove(0)),
        _ => Err(EndpointError {
            input: text.to_string(),
            reason: "expected exactly one host:port",
        }),
    }
}

/// A run-time failure, reported as one line.
#[derive(Debug)]
struct Failure(String);

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self(error.to_string())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return output::usage_error(error),
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return output::failure(&format!("cannot start the async runtime: {error}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => output::failure(&message),
    }
}

/// Logs go to stderr and only when asked for (`RUST_LOG=client=debug` shows retries), so
/// that by default a failure stays one line.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let global = &cli.global;
    match cli.command {
        Command::Put(args) => put(global, args).await,
        Command::Get(args) => get(global, args).await,
        Command::Delete(args) => delete(global, args).await,
        Command::Cas(args) => cas(global, args).await,
        Command::List(args) => list(global, args).await,
        Command::Status(args) => status::status(global, args).await,
        Command::Dump(args) => dump(global, args).await,
        Command::Member(args) => member::member(global, args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::Bench(args) => bench::bench(global, args).await,
        Command::Smoke(args) => smoke::smoke(global, args).await,
        Command::Idle(args) => idle::idle(args).await,
        Command::Certs(args) => certs::certs(args),
    }
}

fn consistency(stale: bool) -> ReadConsistency {
    if stale {
        ReadConsistency::Stale
    } else {
        ReadConsistency::Linearizable
    }
}

async fn put(global: &GlobalArgs, args: PutArgs) -> Result<(), Failure> {
    let mut client = global.client()?;
    let (key, value) = (args.key.as_str(), args.value.as_str());
    let prior = if args.prev_kv {
        client
            .put_returning_previous(key, value)
            .await?
            .map_or(Prior::Absent, Prior::Value)
    } else {
        client.put(key, value).await?
    };
    match global.output {
        Output::Text => match prior.value() {
            Some(previous) => println!("OK (previous value: {})", lossy(previous)),
            None => println!("OK"),
        },
        Output::Json => {
            let mut answer = json!({ "key": args.key, "value": args.value, "existed": prior.existed() });
            if args.prev_kv {
                answer["previous"] = json!(prior.value().map(lossy));
            }
            output::print_json(&answer);
        }
    }
    Ok(())
}

async fn get(global: &GlobalArgs, args: GetArgs) -> Result<(), Failure> {
    let value = global
        .client()?
        .get(args.key.as_str(), consistency(args.stale))
        .await?;
    let Some(value) = value else {
        return Err(Failure(format!("key {:?} not found", args.key)));
    };
    match global.output {
        Output::Text => println!("{}", lossy(&value)),
        Output::Json => output::print_json(&json!({ "key": args.key, "value": lossy(&value) })),
    }
    Ok(())
}

async fn delete(global: &GlobalArgs, args: DeleteArgs) -> Result<(), Failure> {
    let mut client = global.client()?;
    let prior = if args.prev_kv {
        client
            .delete_returning_previous(args.key.as_str())
            .await?
            .map_or(Prior::Absent, Prior::Value)
    } else {
        client.delete(args.key.as_str()).await?
    };
    match global.output {
        Output::Text => match (&prior, prior.value()) {
            (_, Some(previous)) => println!("deleted (previous value: {})", lossy(previous)),
            (Prior::Absent, None) => println!("OK (key was absent)"),
            (_, None) => println!("deleted"),
        },
        Output::Json => {
            let mut answer = json!({ "key": args.key, "deleted": prior.existed() });
            if args.prev_kv {
                answer["previous"] = json!(prior.value().map(lossy));
            }
            output::print_json(&answer);
        }
    }
    Ok(())
}

/// A compare that fails is an answer, not an error: exit code 0 either way, and the
/// output says which (as `etcdctl txn` does), with the value found. (Asking for it leaves
/// a copy in this one-off session's record until the session expires or the cache bound
/// evicts it; an evicted session only refuses its own retries.)
async fn cas(global: &GlobalArgs, args: CasArgs) -> Result<(), Failure> {
    // clap's groups guarantee exactly one of each pair.
    let expected = if args.expect_absent {
        None
    } else {
        args.expected.clone()
    };
    let new_value = if args.delete { None } else { args.new.clone() };
    let (swapped, current) = global
        .client()?
        .compare_and_swap_returning_current(
            args.key.as_str(),
            expected.map(String::into_bytes),
            new_value.map(String::into_bytes),
        )
        .await?;
    match global.output {
        Output::Text => match (swapped, current) {
            (true, _) => println!("swapped"),
            (false, Some(current)) => println!("not swapped: current value is {}", lossy(&current)),
            (false, None) => println!("not swapped: key is absent"),
        },
        Output::Json => output::print_json(&json!({
            "key": args.key,
            "swapped": swapped,
            "current": current.as_deref().map(lossy),
        })),
    }
    Ok(())
}

async fn list(global: &GlobalArgs, args: ListArgs) -> Result<(), Failure> {
    let pairs = global
        .client()?
        .list(args.prefix.as_str(), args.limit, consistency(args.stale))
        .await?;
    match global.output {
        Output::Text => {
            for (key, value) in &pairs {
                println!("{}\t{}", lossy(key), lossy(value));
            }
        }
        Output::Json => output::print_json(&json!({
            "prefix": args.prefix,
            "pairs": output::pairs_json(&pairs),
        })),
    }
    Ok(())
}

async fn dump(global: &GlobalArgs, args: DumpArgs) -> Result<(), Failure> {
    let dump = global.client()?.dump(&args.endpoint).await?;
    let address = format!("{}:{}", args.endpoint.host, args.endpoint.port);
    match global.output {
        Output::Text => output::print_dump_text(&address, &dump),
        Output::Json => output::print_json(&output::dump_json(&address, &dump)?),
    }
    Ok(())
}
