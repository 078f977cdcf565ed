//! `raftkv certs init` makes a cluster's certificate authority and the certificates of
//! its nodes and of an `admin` client; `raftkv certs client` adds another client
//! identity (for a `read` or `write` role). Files already there are kept: re-running
//! `init` with more nodes adds theirs under the same authority.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use client::tls::certs::{init, issue_client, CertsPlan, Validity};

use crate::Failure;

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv certs init --dir certs --nodes 3")]
pub struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Write DIR/ca.crt, ca.key, node-<id>.crt/.key for ids 1..=N and client.crt/.key (admin).
    Init(InitArgs),
    /// Write DIR/<FILE>.crt/.key, a client certificate named NAME, signed by DIR/ca.key.
    Client(ClientArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv certs init --dir certs --nodes 3")]
struct InitArgs {
    #[arg(long)]
    dir: PathBuf,
    /// Node certificates for ids 1..=N.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    nodes: u64,
    /// Kubernetes namespace of the StatefulSet (for the pods' DNS names).
    #[arg(long, default_value = "raftkv")]
    namespace: String,
    #[arg(long, default_value = "raftkv")]
    statefulset: String,
    /// The headless Service of the peer port.
    #[arg(long, default_value = "raftkv-peer")]
    peer_service: String,
    /// The client Service.
    #[arg(long, default_value = "raftkv")]
    client_service: String,
    /// Another DNS name or IP address for every node certificate (repeatable).
    #[arg(long = "name")]
    extra_names: Vec<String>,
    /// Years the node and client certificates are valid.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=50))]
    years: i32,
}

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv certs client --dir certs --name reader")]
struct ClientArgs {
    #[arg(long)]
    dir: PathBuf,
    /// The client's name: what the nodes' --client-roles file gives a role to.
    #[arg(long)]
    name: String,
    /// File stem of the certificate and key; by default the name.
    #[arg(long)]
    file: Option<String>,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=50))]
    years: i32,
}

pub fn certs(args: CertsArgs) -> Result<(), Failure> {
    match args.command {
        CertsCommand::Init(args) => {
            let plan = CertsPlan {
                dir: args.dir,
                nodes: args.nodes,
                namespace: args.namespace,
                statefulset: args.statefulset,
                peer_service: args.peer_service,
                client_service: args.client_service,
                extra_names: args.extra_names,
                years: args.years,
            };
            let written = init(&plan).map_err(|e| Failure::from(e.to_string()))?;
            if written.is_empty() {
                outln!("{}: every certificate is already there", plan.dir.display());
            }
            for path in written {
                outln!("wrote {}", path.display());
            }
            Ok(())
        }
        CertsCommand::Client(args) => {
            let file = args.file.unwrap_or_else(|| args.name.clone());
            issue_client(&args.dir, &file, &args.name, Validity::Years(args.years))
                .map_err(|e| Failure::from(e.to_string()))?;
            outln!("wrote {}", args.dir.join(format!("{file}.crt")).display());
            Ok(())
        }
    }
}
