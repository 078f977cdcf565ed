//! `raftkv`: the command-line client of a raftkv cluster.
//!
//! Every subcommand has its own argument struct and a handler function taking it, so a
//! new subcommand is one enum variant, one struct and one function. Errors end the
//! process with exactly one line on stderr (one JSON document on stdout with `--output
//! json`) and an exit code that names the kind of failure (`failure::Exit`: 3 absent,
//! 4 not swapped, 5 unavailable, 6 outcome unknown, ...).

/// `println!` through `output::write_stdout`: a closed pipe ends the command quietly.
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($argument:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($argument)*)))
    };
}

/// `print!` through `output::write_stdout`.
macro_rules! out {
    ($($argument:tt)*) => {
        $crate::output::write_stdout(format_args!($($argument)*))
    };
}

mod bench;
mod certs;
mod demo;
mod endpoint;
mod failure;
mod idle;
mod kv;
mod member;
mod output;
mod smoke;
mod snapshot;
mod status;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use client::client::{Client, ClientOptions};
use client::tls::{client_config, TlsFiles};
use client::{parse_endpoints, Endpoint, EndpointError};
use rustls::client::ClientConfig;

use crate::failure::Failure;
use crate::output::Output;

/// Examples and exit codes, after the list of subcommands.
const AFTER_HELP: &str = "\
Examples:
  raftkv put greeting hello
  raftkv put photo --value-file photo.jpg && raftkv get photo --raw > copy.jpg
  raftkv list app/ --all --output json
  raftkv endpoint health
  raftkv snapshot save backup.raftkv

Exit codes:
  0 success             4 cas not swapped      7 permission denied
  1 other failure       5 unavailable          8 no space
  2 bad usage           6 outcome unknown: the write may have been applied
  3 key not found";

/// Where a local cluster started by the README listens for clients.
const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";
/// Longest single attempt at one node: long enough for a busy node's fsync, short enough
/// that a dead node does not eat a command's whole timeout.
const REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, Parser)]
#[command(name = "raftkv", version, about = "Command-line client of a raftkv cluster",
          after_help = AFTER_HELP)]
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
        .map_err(|e| Failure::from(e.to_string()))?;
        files
            .map(|files| client_config(&files).map_err(|e| Failure::from(format!("TLS: {e}"))))
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
    /// Set KEY to VALUE, or to the bytes of --value-file (`-`: stdin); --prev-kv prints
    /// the value it replaced.
    Put(kv::PutArgs),
    /// Print the value of KEY (exit code 1 if it is absent).
    Get(kv::GetArgs),
    /// Remove KEY.
    Delete(kv::DeleteArgs),
    /// Compare-and-swap: change KEY only if it holds the expected value.
    Cas(kv::CasArgs),
    /// Print the pairs whose key starts with PREFIX, in key order.
    List(kv::ListArgs),
    /// Print every change under PREFIX as it is applied, in revision order, from
    /// --from-revision or from now; resumes across failovers without gaps or repeats.
    Watch(watch::WatchArgs),
    /// Print the Raft state of every endpoint, one row per node.
    Status(StatusArgs),
    /// Print the Raft log and KV map of one node.
    Dump(DumpArgs),
    /// Check the endpoints: `endpoint health` reads through each (exit code 5 if any fails).
    Endpoint(endpoint::EndpointArgs),
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
    /// Save a consistent backup of the cluster to a file (restore it with
    /// `raftkv-node restore`).
    Snapshot(snapshot::SnapshotArgs),
    /// Make certificates: a cluster's CA, node and admin client ones, or another client.
    Certs(certs::CertsArgs),
    /// Wait for SIGTERM or SIGINT, then exit 0: the main process of a client container,
    /// whose image has no shell, so that `kubectl exec`/`docker exec` can run raftkv in it.
    Idle(idle::IdleArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv status --endpoints 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103")]
struct StatusArgs {}

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv dump --endpoint 127.0.0.1:7101")]
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

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return output::usage_error(error),
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let failure = Failure::from(format!("cannot start the async runtime: {error}"));
            return output::failure(&failure, Output::Text);
        }
    };
    let format = cli.global.output;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => output::failure(&failure, format),
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
        Command::Put(args) => kv::put(global, args).await,
        Command::Get(args) => kv::get(global, args).await,
        Command::Delete(args) => kv::delete(global, args).await,
        Command::Cas(args) => kv::cas(global, args).await,
        Command::List(args) => kv::list(global, args).await,
        Command::Watch(args) => watch::watch(global, args).await,
        Command::Status(args) => status::status(global, args).await,
        Command::Dump(args) => dump(global, args).await,
        Command::Endpoint(args) => endpoint::endpoint(global, args).await,
        Command::Member(args) => member::member(global, args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::Bench(args) => bench::bench(global, args).await,
        Command::Smoke(args) => smoke::smoke(global, args).await,
        Command::Idle(args) => idle::idle(args).await,
        Command::Certs(args) => certs::certs(args),
        Command::Snapshot(args) => snapshot::snapshot(global, args).await,
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every subcommand, nested ones included, whose help ends with its examples.
    fn examples(command: &clap::Command, path: &str, found: &mut Vec<(String, String)>) {
        for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
            let name = format!("{path} {}", sub.get_name()).trim().to_string();
            let help = sub.get_after_help().map(ToString::to_string).unwrap_or_default();
            found.push((name.clone(), help));
            examples(sub, &name, found);
        }
    }

    /// The `raftkv` command lines of the README's code blocks, each from `raftkv` up to
    /// a comment, a redirection or the next command of a pipe or list.
    fn readme_commands() -> Vec<String> {
        let readme = include_str!("../../../README.md");
        let mut commands = Vec::new();
        let mut in_block = false;
        for line in readme.lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if !in_block {
                continue;
            }
            // The comment off first. The command is `…/raftkv`, or `raftkv` opening the
            // line or after `--` (`kubectl exec raftkv-client -- raftkv`); elsewhere the
            // word names a namespace or a StatefulSet.
            let code = line.split(" #").next().unwrap_or_default();
            let words: Vec<&str> = code.split_whitespace().collect();
            let Some(start) = (0..words.len()).find(|&index| {
                words[index].ends_with("/raftkv")
                    || (words[index] == "raftkv" && (index == 0 || words[index - 1] == "--"))
            }) else {
                continue;
            };
            let command: Vec<&str> = words[start + 1..]
                .iter()
                .copied()
                .take_while(|word| !["#", ">", "|", "&&", ";"].contains(word) && !word.starts_with('#'))
                .collect();
            commands.push(format!("raftkv {}", command.join(" ")).trim().to_string());
        }
        commands
    }

    #[test]
    fn every_raftkv_command_of_the_readme_parses() {
        let commands = readme_commands();
        assert!(commands.len() >= 15, "{commands:?}");
        for command in commands {
            let words: Vec<&str> = command.split_whitespace().collect();
            if let Err(error) = Cli::try_parse_from(&words) {
                panic!("the README's `{command}` does not parse: {error}");
            }
        }
    }

    #[test]
    fn every_subcommand_has_an_example_that_parses() {
        let mut found = Vec::new();
        examples(&Cli::command(), "", &mut found);
        assert!(found.len() >= 18, "{found:?}");
        for (name, help) in found {
            let line = help
                .strip_prefix("Example: ")
                .unwrap_or_else(|| panic!("`raftkv {name} --help` has no example line"));
            for example in line.split("; ") {
                // A shell redirection is not the command's.
                let words: Vec<&str> = example
                    .split_whitespace()
                    .take_while(|word| *word != ">")
                    .collect();
                assert_eq!(words[0], "raftkv", "{name}: {example}");
                if let Err(error) = Cli::try_parse_from(&words) {
                    panic!("{name}: the example `{example}` does not parse: {error}");
                }
            }
        }
    }
}
