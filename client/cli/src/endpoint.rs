//! `raftkv endpoint health`: is each endpoint serving? As `etcdctl endpoint health` does,
//! each endpoint is asked, on its own and all at once, for a linearizable read: it answers
//! only if it reaches a leader that a majority still follows (a follower forwards the
//! ReadIndex), so a node cut off from its quorum is unhealthy even though it is up. The
//! exit code is 5 (unavailable) when any endpoint is unhealthy.

use std::time::Instant;

use clap::{Args, Subcommand};
use client::client::Client;
use client::wire::ReadConsistency;
use serde_json::{json, Value};

use crate::failure::{Exit, Failure};
use crate::output::{self, Output};
use crate::status::{address_of, unreachable_reason};
use crate::GlobalArgs;

/// The key the check reads (absent or not, a read is a read).
const HEALTH_KEY: &[u8] = b"health";

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv endpoint health --output json")]
pub struct EndpointArgs {
    #[command(subcommand)]
    command: EndpointCommand,
}

#[derive(Debug, Subcommand)]
enum EndpointCommand {
    /// Check each endpoint with a linearizable read through it (exit code 5 if any fails).
    #[command(after_help = "Example: raftkv endpoint health --endpoints 127.0.0.1:7101,127.0.0.1:7102")]
    Health,
}

/// One endpoint's verdict: its address, and how long the read took or why it failed.
type Verdict = (String, Result<f64, String>);

pub async fn endpoint(global: &GlobalArgs, args: EndpointArgs) -> Result<(), Failure> {
    let EndpointCommand::Health = args.command;
    let tls = global.tls()?;
    let options = global.client_options();
    let checks: Vec<_> = global
        .endpoints
        .0
        .iter()
        .cloned()
        .map(|endpoint| {
            let tls = tls.clone();
            tokio::spawn(async move {
                let mut client = Client::new(vec![endpoint], options).map_err(|error| error.to_string())?;
                if let Some(tls) = tls {
                    client = client.with_tls(tls);
                }
                let started = Instant::now();
                client
                    .get(HEALTH_KEY, ReadConsistency::Linearizable)
                    .await
                    .map(|_| started.elapsed().as_secs_f64() * 1000.0)
                    .map_err(|error| unreachable_reason(&error))
            })
        })
        .collect();
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(checks.len());
    for (endpoint, check) in global.endpoints.0.iter().zip(checks) {
        let verdict = check
            .await
            .unwrap_or_else(|error| Err(format!("the check failed: {error}")));
        verdicts.push((address_of(endpoint), verdict));
    }
    match global.output {
        Output::Text => {
            for (address, verdict) in &verdicts {
                match verdict {
                    Ok(took_ms) => outln!("{address} is healthy: a linearizable read took {took_ms:.1} ms"),
                    Err(reason) => outln!("{address} is unhealthy: {reason}"),
                }
            }
        }
        Output::Json => {
            let rows: Vec<Value> = verdicts
                .iter()
                .map(|(address, verdict)| match verdict {
                    Ok(took_ms) => json!({ "endpoint": address, "health": true, "took_ms": took_ms }),
                    Err(reason) => json!({ "endpoint": address, "health": false, "error": reason }),
                })
                .collect();
            output::print_json(&Value::Array(rows));
        }
    }
    if verdicts.iter().any(|(_, verdict)| verdict.is_err()) {
        return Err(Failure::quiet(Exit::Unavailable));
    }
    Ok(())
}
