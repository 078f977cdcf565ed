//! `raftkv smoke`: the client half of the validation scenario, as one command with an
//! exit code, so a Kubernetes Job (or a deploy script) can run it and `kubectl logs`
//! shows what it checked. Each check prints one line; the first failure ends the command
//! with one error line on stderr and exit code 1.
//!
//! The checks: every endpoint answers and all agree on one leader (waiting up to
//! `--wait-ms`, since a Job may start before the cluster has elected); N writes of keys
//! unique to this run; N linearizable reads of them; every endpoint applies them and
//! serves each one from its own state (a stale read, which is local), still agreeing on
//! the leader.

use std::time::{Duration, Instant};

use clap::Args;

use client::wire::{NodeStatus, ReadConsistency};
use serde_json::json;

use crate::output::{self, text, Output};
use crate::status::{self, address_of, unreachable_reason, Row};
use crate::{Failure, GlobalArgs};

/// Pause between two polls of a wait.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
#[command(after_help = "Example: raftkv smoke --keys 20 --wait-ms 30000")]
pub struct SmokeArgs {
    /// How many keys to write and read back.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    keys: u32,
    /// Prefix of the written keys; each run appends its own unique part, so runs never
    /// collide and a rerun checks fresh writes.
    #[arg(long, default_value = "smoke/")]
    key_prefix: String,
    /// How long the waits for agreement and replication may take, in milliseconds.
    #[arg(long, default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    wait_ms: u64,
}

/// Prints each check as it passes: text lines for people, one JSON document per line for
/// scripts.
struct Report {
    output: Output,
}

impl Report {
    fn check(&self, check: &str, detail: &str) {
        match self.output {
            Output::Text => outln!("ok: {check}: {detail}"),
            Output::Json => output::print_json(&json!({ "check": check, "ok": true, "detail": detail })),
        }
    }
}

pub async fn smoke(global: &GlobalArgs, args: SmokeArgs) -> Result<(), Failure> {
    let report = Report {
        output: global.output,
    };
    let endpoints = &global.endpoints.0;
    let wait = Duration::from_millis(args.wait_ms);
    let mut client = global.client()?;

    let started = Instant::now();
    let (leader, term) = wait_until(global, wait, agreed_leader).await?;
    report.check(
        "one leader",
        &format!(
            "all {} endpoints answer and agree node {leader} leads term {term} (after {} ms)",
            endpoints.len(),
            started.elapsed().as_millis()
        ),
    );

    // The client id is random per run: keys of this run are new to the cluster.
    let run = format!("{}{:016x}", args.key_prefix, client.client_id());
    let written: Vec<(String, String)> = (1..=args.keys)
        .map(|n| (format!("{run}/{n}"), format!("value-{n}")))
        .collect();
    for (key, value) in &written {
        let started = Instant::now();
        client.put(key.as_str(), value.as_str()).await?;
        report.check(
            "write",
            &format!("put {key} = {value} ({} ms)", started.elapsed().as_millis()),
        );
    }
    for (key, value) in &written {
        let started = Instant::now();
        let read = client.get(key.as_str(), ReadConsistency::Linearizable).await?;
        expect_value(key, value, read.as_deref(), "linearizable read")?;
        report.check(
            "linearizable read",
            &format!("get {key} = {value} ({} ms)", started.elapsed().as_millis()),
        );
    }

    // Everything this run wrote is committed at or below the leader's commit index now.
    let target = leader_commit(global, wait).await?;
    let started = Instant::now();
    let (leader, term) = wait_until(global, wait, |rows| {
        let (leader, term) = agreed_leader(rows)?;
        applied_through(rows, target)?;
        Ok((leader, term))
    })
    .await?;
    report.check(
        "replicated",
        &format!(
            "every endpoint applied through index {target}, node {leader} still leads term {term} \
             (after {} ms)",
            started.elapsed().as_millis()
        ),
    );
    for endpoint in endpoints {
        let mut local = global.new_client(vec![endpoint.clone()], global.client_options())?;
        for (key, value) in &written {
            let read = local.get(key.as_str(), ReadConsistency::Stale).await?;
            expect_value(
                key,
                value,
                read.as_deref(),
                &format!("stale read at {}", address_of(endpoint)),
            )?;
        }
        report.check(
            "local state",
            &format!(
                "{} serves all {} keys from its own state",
                address_of(endpoint),
                written.len()
            ),
        );
    }
    if global.output == Output::Text {
        outln!("smoke test passed");
    }
    Ok(())
}

/// Polls every endpoint's status until `accept` takes the rows, or fails with the last
/// reason it gave once `wait` is over.
async fn wait_until<T>(
    global: &GlobalArgs,
    wait: Duration,
    accept: impl Fn(&[Row]) -> Result<T, String>,
) -> Result<T, Failure> {
    let deadline = Instant::now() + wait;
    loop {
        let rows = status::query_all(&global.endpoints.0, global.client_options(), global.tls()?).await;
        match accept(&rows) {
            Ok(accepted) => return Ok(accepted),
            Err(reason) if Instant::now() >= deadline => {
                return Err(Failure::from(format!(
                    "still after {} ms: {reason}",
                    wait.as_millis()
                )));
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// The commit index of the agreed leader, as it reports it.
async fn leader_commit(global: &GlobalArgs, wait: Duration) -> Result<u64, Failure> {
    wait_until(global, wait, |rows| {
        let (leader, _) = agreed_leader(rows)?;
        statuses(rows)?
            .into_iter()
            .find(|status| status.id == leader)
            .map(|status| status.commit)
            .ok_or_else(|| format!("the leader, node {leader}, has no row"))
    })
    .await
}

/// Every row's status, or why one is missing.
fn statuses(rows: &[Row]) -> Result<Vec<&NodeStatus>, String> {
    rows.iter()
        .map(|(address, result)| {
            result
                .as_ref()
                .map_err(|error| format!("{address} does not answer: {}", unreachable_reason(error)))
        })
        .collect()
}

/// The leader every endpoint agrees on, with its term: every endpoint answers, exactly
/// one says it leads, every one names it as leader and all are in its term.
fn agreed_leader(rows: &[Row]) -> Result<(u64, u64), String> {
    assert!(!rows.is_empty(), "the endpoint list is never empty");
    let statuses = statuses(rows)?;
    let leaders: Vec<&NodeStatus> = statuses
        .iter()
        .copied()
        .filter(|status| status.role == "leader")
        .collect();
    let [leader] = leaders.as_slice() else {
        let ids: Vec<u64> = leaders.iter().map(|status| status.id).collect();
        return Err(format!(
            "expected exactly one leader, found {} {ids:?}",
            ids.len()
        ));
    };
    for ((address, _), status) in rows.iter().zip(&statuses) {
        if status.leader != Some(leader.id) || status.term != leader.term {
            return Err(format!(
                "{address} (node {}) sees leader {:?} in term {}, not node {} in term {}",
                status.id, status.leader, status.term, leader.id, leader.term
            ));
        }
    }
    Ok((leader.id, leader.term))
}

/// Every endpoint has applied at least through `index`.
fn applied_through(rows: &[Row], index: u64) -> Result<(), String> {
    let behind: Vec<String> = rows
        .iter()
        .zip(statuses(rows)?)
        .filter(|(_, status)| status.applied < index)
        .map(|((address, _), status)| format!("{address} applied {}", status.applied))
        .collect();
    if behind.is_empty() {
        Ok(())
    } else {
        Err(format!("not yet applied through {index}: {}", behind.join(", ")))
    }
}

fn expect_value(key: &str, expected: &str, read: Option<&[u8]>, how: &str) -> Result<(), Failure> {
    match read {
        Some(value) if value == expected.as_bytes() => Ok(()),
        Some(value) => Err(Failure::from(format!(
            "{how} of {key}: expected {expected:?}, got {:?}",
            text(value)
        ))),
        None => Err(Failure::from(format!(
            "{how} of {key}: expected {expected:?}, the key is absent"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use client::client::ClientError;

    use super::*;

    fn status(id: u64, role: &str, leader: Option<u64>, term: u64, applied: u64) -> NodeStatus {
        NodeStatus {
            id,
            role: role.to_string(),
            term,
            leader,
            commit: applied,
            applied,
            first_index: 1,
            last_index: applied,
            snapshot_index: 0,
            voters: vec![1, 2, 3],
            learners: vec![],
            peers: vec![],
            space: Default::default(),
        }
    }

    fn row(id: u64, result: Result<NodeStatus, ClientError>) -> Row {
        (format!("raftkv-{}:7101", id - 1), result)
    }

    fn healthy() -> Vec<Row> {
        vec![
            row(1, Ok(status(1, "follower", Some(2), 3, 10))),
            row(2, Ok(status(2, "leader", Some(2), 3, 12))),
            row(3, Ok(status(3, "follower", Some(2), 3, 11))),
        ]
    }

    #[test]
    fn agreement_needs_every_endpoint_one_leader_and_one_term() {
        assert_eq!(agreed_leader(&healthy()), Ok((2, 3)));

        let mut down = healthy();
        down[0].1 = Err(ClientError::Connection {
            endpoint: "raftkv-0:7101".into(),
            reason: "refused".into(),
        });
        assert!(agreed_leader(&down)
            .expect_err("one is down")
            .contains("does not answer"));

        let mut two = healthy();
        two[0].1 = Ok(status(1, "leader", Some(1), 2, 10));
        assert!(agreed_leader(&two)
            .expect_err("two leaders")
            .contains("exactly one"));

        let mut stale = healthy();
        stale[2].1 = Ok(status(3, "follower", Some(1), 2, 11));
        assert!(agreed_leader(&stale)
            .expect_err("stale term")
            .contains("raftkv-2:7101"));

        let mut none = healthy();
        none[1].1 = Ok(status(2, "candidate", None, 4, 12));
        assert!(agreed_leader(&none).expect_err("no leader").contains("found 0"));
    }

    #[test]
    fn applied_through_names_the_endpoints_behind() {
        assert!(applied_through(&healthy(), 10).is_ok());
        let behind = applied_through(&healthy(), 12).expect_err("two are behind");
        assert!(behind.contains("raftkv-0:7101 applied 10") && behind.contains("raftkv-2:7101 applied 11"));
        assert!(!behind.contains("raftkv-1"));
    }
}
