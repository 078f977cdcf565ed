//! `raftkv idle`: does nothing until SIGTERM or SIGINT, then exits 0.
//!
//! Why it exists: the image has no shell and no `sleep`, only `raftkv-node` and `raftkv`.
//! The client pod (and the client container of the Docker scenario) must stay running so
//! that `kubectl exec raftkv-client -- raftkv get k` (or `docker exec`) has a process
//! to join; `raftkv idle` is its main process. It handles the signals itself because a
//! container's PID 1 gets no default signal action: without a handler SIGTERM would be
//! ignored and every pod deletion would wait out the whole grace period for SIGKILL.

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use crate::Failure;

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv idle")]
pub struct IdleArgs {}

pub async fn idle(_args: IdleArgs) -> Result<(), Failure> {
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|error| Failure::from(format!("cannot handle SIGTERM: {error}")))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|error| Failure::from(format!("cannot handle SIGINT: {error}")))?;
    // On stderr: stdout stays free for whatever a caller may one day want from it.
    eprintln!("raftkv idle: waiting for SIGTERM or SIGINT (run commands with exec)");
    let received = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    eprintln!("raftkv idle: {received} received, exiting");
    Ok(())
}
