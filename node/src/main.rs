//! `raftkv-node`: one member of a raftkv cluster. See `raftkv-node --help`.

use std::process::ExitCode;

use clap::Parser;
use raftkv_node::config::{LogFormat, NodeArgs};
use raftkv_node::restore::RestoreArgs;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Everything the node creates (data, logs of fjall, the identity) is its owner's
    // alone: files 0600, directories 0700.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // `raftkv-node restore ...` builds a data dir from a backup and exits; a subcommand of
    // its own keeps the server's flags (`--peers` is required there) out of its way.
    if std::env::args().nth(1).as_deref() == Some("restore") {
        return restore(RestoreArgs::parse_from(std::env::args().skip(1)));
    }
    let args = NodeArgs::parse();
    let settings = match args.validate() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("raftkv-node: {error}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match settings.log_format {
        // Colours only for a terminal: `docker logs` and `kubectl logs` show escape codes.
        LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("raftkv-node: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (shutdown_sender, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_termination().await;
            tracing::info!("termination signal: shutting down");
            let _ = shutdown_sender.send(true);
        });
        raftkv_node::server::run_node(settings, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "raftkv-node failed");
            eprintln!("raftkv-node: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `raftkv-node restore`: the backup is verified whole, then the data dir written; a
/// damaged backup exits 1 with one line and leaves no data dir.
fn restore(args: RestoreArgs) -> ExitCode {
    let incarnation = match getrandom::u64() {
        Ok(incarnation) => incarnation,
        Err(error) => {
            eprintln!("raftkv-node restore: no randomness for a new incarnation: {error}");
            return ExitCode::FAILURE;
        }
    };
    match raftkv_node::restore::restore(&args, incarnation) {
        Ok(restored) => {
            let cluster_id = restored
                .identity
                .cluster
                .as_ref()
                .map(|cluster| cluster.cluster_id.to_string())
                .unwrap_or_default();
            println!(
                "restored {} at index {} (term {}): {} records, {} sessions, checksum {:016x}; new cluster {cluster_id}, \
                 node {} the only voter; revisions continue at {} (older ones count as compacted). Start it, then \
                 start the other nodes on empty data dirs: they join it.",
                args.data_dir.display(),
                restored.header.index,
                restored.header.term,
                restored.image.pairs - restored.member_records_dropped,
                restored.image.sessions,
                restored.image.checksum,
                args.id,
                restored.revisions.revision + 1,
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("raftkv-node restore: {error}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (Kubernetes, `kill`) or Ctrl-C.
async fn wait_for_termination() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
