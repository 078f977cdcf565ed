//! The resident memory of the local cluster's nodes over a run (`--rss-every-secs`, issue
//! 12's memory soak): sampled from `/proc/<pid>/status` (Linux), one line per sample, then
//! each node's peak in the first and the second half of the run, so a node whose memory
//! keeps growing shows a second half above the first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// One reading: seconds since the start and each node's RSS in bytes (`None`: unreadable).
#[derive(Debug, Clone)]
struct Sample {
    at_secs: f64,
    rss_bytes: Vec<Option<u64>>,
}

#[derive(Debug)]
pub struct RssSampler {
    ids: Vec<u64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<Sample>>,
}

/// The VmRSS of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl RssSampler {
    /// Samples the nodes `(id, pid)` every `every`, printing each sample when `print`.
    pub fn start(nodes: Vec<(u64, u32)>, every: Duration, print: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ids = nodes.iter().map(|(id, _)| *id).collect();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let started = Instant::now();
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let sample = Sample {
                        at_secs: started.elapsed().as_secs_f64(),
                        rss_bytes: nodes.iter().map(|(_, pid)| rss_bytes(*pid)).collect(),
                    };
                    if print {
                        let cells: Vec<String> = nodes
                            .iter()
                            .zip(&sample.rss_bytes)
                            .map(|((id, _), rss)| match rss {
                                Some(rss) => format!("node {id} {:.1} MiB", mib(*rss)),
                                None => format!("node {id} -"),
                            })
                            .collect();
                        outln!("rss at {:>6.1} s: {}", sample.at_secs, cells.join(", "));
                    }
                    samples.push(sample);
                    tokio::time::sleep(every).await;
                }
                samples
            }
        });
        Self { ids, stop, task }
    }

    /// Stops sampling and prints each node's peak in the first and second half.
    pub async fn finish(self, print: bool) {
        self.stop.store(true, Ordering::Relaxed);
        let Ok(samples) = self.task.await else {
            return;
        };
        if !print || samples.is_empty() {
            return;
        }
        let middle = samples.len() / 2;
        for (position, id) in self.ids.iter().enumerate() {
            let peak = |samples: &[Sample]| {
                samples
                    .iter()
                    .filter_map(|sample| sample.rss_bytes[position])
                    .max()
                    .map_or_else(|| "-".to_string(), |rss| format!("{:.1} MiB", mib(rss)))
            };
            outln!(
                "rss node {id}: peak {} in the first half, {} in the second half ({} samples)",
                peak(&samples[..middle]),
                peak(&samples[middle..]),
                samples.len()
            );
        }
    }
}
