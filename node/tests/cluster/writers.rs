//! Helpers of the crash tests: writes that must succeed, and concurrent writers that
//! record every acknowledged write so none may go missing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::TestCluster;
use client::client::{Client, ClientOptions};
use tokio::task::JoinHandle;
use wire::ReadConsistency;

/// Writes in the tests ride out an election or two.
pub(crate) fn write_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(10),
    }
}

pub(crate) async fn put(test: &TestCluster, client: &mut Client, key: &str, value: &str) {
    if let Err(error) = client.put(key, value).await {
        test.fail(&format!("put {key} = {value} failed: {error}"));
    }
}

pub(crate) async fn expect_value(test: &TestCluster, client: &mut Client, key: &str, expected: &str) {
    match client.get(key, ReadConsistency::Linearizable).await {
        Ok(value) if value.as_deref() == Some(expected.as_bytes()) => {}
        Ok(value) => test.fail(&format!(
            "get {key}: expected {expected:?}, got {:?}",
            value.map(|v| String::from_utf8_lossy(&v).into_owned())
        )),
        Err(error) => test.fail(&format!("get {key} failed: {error}")),
    }
}

/// The number of lines of `log` containing `text`.
pub(crate) fn count_lines(log: &str, text: &str) -> usize {
    log.lines().filter(|line| line.contains(text)).count()
}

/// A write the cluster acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Acknowledged {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct WriterReport {
    pub(crate) acknowledged: Vec<Acknowledged>,
    /// Failed writes: their outcome is unknown, so they are only counted.
    pub(crate) errors: Vec<String>,
}

/// Puts fresh keys `writer-<n>/<sequence>` with its own client until `stop`.
pub(crate) async fn write_until(mut client: Client, writer: usize, stop: Arc<AtomicBool>) -> WriterReport {
    let mut report = WriterReport::default();
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        sequence += 1;
        let key = format!("writer-{writer}/{sequence:06}");
        let value = format!("value-{writer}-{sequence}-{}", client.client_id());
        match client.put(key.as_str(), value.as_str()).await {
            Ok(_) => report.acknowledged.push(Acknowledged {
                key,
                value,
                at: Instant::now(),
            }),
            Err(error) => report.errors.push(format!("put {key}: {error}")),
        }
    }
    report
}

/// Concurrent writers, one client each.
pub(crate) struct Writers {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) handles: Vec<JoinHandle<WriterReport>>,
    pub(crate) deadline: Duration,
}

impl Writers {
    pub(crate) fn start(test: &TestCluster, count: usize, options: ClientOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..count)
            .map(|writer| tokio::spawn(write_until(test.client(options), writer, stop.clone())))
            .collect();
        Self {
            stop,
            handles,
            deadline: options.deadline,
        }
    }

    /// Stops the writers and merges their reports; a writer ends within one call's
    /// deadline.
    pub(crate) async fn stop(self, test: &TestCluster) -> WriterReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut merged = WriterReport::default();
        for handle in self.handles {
            match tokio::time::timeout(self.deadline + Duration::from_secs(5), handle).await {
                Ok(Ok(report)) => {
                    merged.acknowledged.extend(report.acknowledged);
                    merged.errors.extend(report.errors);
                }
                Ok(Err(error)) => test.fail(&format!("a writer task failed: {error}")),
                Err(_) => test.fail("a writer did not stop within its deadline"),
            }
        }
        merged
    }
}

/// Fails unless every node in `dumps` holds every acknowledged write.
pub(crate) fn check_acknowledged_present(
    test: &TestCluster,
    converged: &crate::support::Converged,
    acknowledged: &[Acknowledged],
) {
    for dump in &converged.dumps {
        let kv: BTreeMap<&[u8], &[u8]> = dump
            .kv
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
            .collect();
        let missing: Vec<String> = acknowledged
            .iter()
            .filter(|ack| kv.get(ack.key.as_bytes()) != Some(&ack.value.as_bytes()))
            .map(|ack| {
                let found = kv
                    .get(ack.key.as_bytes())
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                format!("{} = {} (found {found:?})", ack.key, ack.value)
            })
            .collect();
        test.check(missing.is_empty(), || {
            format!(
                "node {} lost {} of {} acknowledged writes, e.g. {:?}",
                dump.status.id,
                missing.len(),
                acknowledged.len(),
                &missing[..missing.len().min(10)]
            )
        });
    }
}
