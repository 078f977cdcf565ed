//! The workload's watchers (issue 13): clients that follow the changes under a prefix
//! from revision 1 through every fault, with the same `Watcher` a user's `raftkv watch`
//! runs, and record what they saw for `watch_check`. Once the cluster has converged the
//! scenario tells them the final revision; each drains to it and stops.

use std::time::Duration;

use client::client::{Client, ClientError, ClientOptions, Watcher};
use client::Endpoint;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::tls::with_run_tls;
use crate::watch_check::WatchRecord;

/// Client ids of watchers: far from the workload's (1..) and the probes' (u64::MAX..).
const WATCHER_CLIENT_ID_BASE: u64 = 1 << 40;
/// How long a watcher may take to reach the final revision once it is known.
pub const DRAIN_BOUND: Duration = Duration::from_secs(20);

/// The prefixes watched: everything, and one key's prefix (k1 also covers k10..k19).
pub fn prefixes() -> Vec<Vec<u8>> {
    vec![Vec::new(), b"k1".to_vec()]
}

/// Runs one watcher per prefix until `last_revision` names the final revision and each
/// was answered through it (or `DRAIN_BOUND` after that passed).
pub async fn run(
    endpoints: Vec<Endpoint>,
    options: ClientOptions,
    last_revision: watch::Receiver<Option<u64>>,
) -> Vec<WatchRecord> {
    let mut tasks = Vec::new();
    for (index, prefix) in prefixes().into_iter().enumerate() {
        let client = with_run_tls(
            Client::new(endpoints.clone(), options)
                .expect("endpoints are not empty")
                .with_client_id(WATCHER_CLIENT_ID_BASE + index as u64),
        );
        tasks.push(tokio::spawn(follow(client, prefix, last_revision.clone())));
    }
    let mut records = Vec::new();
    for task in tasks {
        records.push(task.await.expect("a watcher panicked"));
    }
    records
}

async fn follow(
    mut client: Client,
    prefix: Vec<u8>,
    mut last_revision: watch::Receiver<Option<u64>>,
) -> WatchRecord {
    let mut record = WatchRecord {
        prefix: prefix.clone(),
        from_revision: 1,
        ..WatchRecord::default()
    };
    let mut watcher = Watcher::new(prefix, 1);
    let mut drain_by: Option<Instant> = None;
    loop {
        record.next_revision = watcher.next_revision();
        if let Some(last) = *last_revision.borrow_and_update() {
            if watcher.next_revision() > last {
                return record;
            }
            let drain_by = *drain_by.get_or_insert_with(|| Instant::now() + DRAIN_BOUND);
            if Instant::now() >= drain_by {
                record.errors.push(format!(
                    "answered only up to revision {} within {DRAIN_BOUND:?} of the end (last revision {last})",
                    watcher.next_revision() - 1
                ));
                return record;
            }
        }
        match watcher.next(&mut client).await {
            Ok(events) => record.events.extend(events),
            // No node answered in time (faults): ask again from the same revision.
            Err(error) if error.unavailable() => {}
            Err(error @ ClientError::Compacted { .. }) => {
                record.errors.push(error.to_string());
                return record;
            }
            Err(error) => {
                record.errors.push(error.to_string());
                return record;
            }
        }
    }
}
