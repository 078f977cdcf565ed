//! Counters and gauges the driver updates and `/metrics` renders in the Prometheus
//! text format (version 0.0.4). Hand-written: a few atomics and one histogram do not
//! justify a metrics crate on this two-core build.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the fsync latency buckets, in microseconds.
const FSYNC_BUCKETS_MICROS: [u64; 11] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub term: AtomicU64,
    /// 0 follower, 1 pre-candidate, 2 candidate, 3 leader.
    pub role: AtomicU64,
    pub commit_index: AtomicU64,
    pub applied_index: AtomicU64,
    pub last_index: AtomicU64,
    /// Client sessions the state machine holds (thesis §6.3).
    pub sessions_open: AtomicU64,
    /// Bytes of the clients' keys and values, its quota (0: none) and the alarm (1: the
    /// largest write could be refused for space).
    pub data_bytes: AtomicU64,
    pub quota_bytes: AtomicU64,
    pub space_alarm: AtomicU64,
    /// Bytes free on the data dir's disk, as last read (`driver/disk_guard.rs`).
    pub disk_free_bytes: AtomicU64,
    /// The length of the current snapshot's image (the disk it takes beside the data).
    pub snapshot_image_bytes: AtomicU64,
    pub proposals_total: AtomicU64,
    pub proposals_refused_total: AtomicU64,
    pub reads_total: AtomicU64,
    pub snapshots_total: AtomicU64,
    pub snapshot_failures_total: AtomicU64,
    fsync_bucket_counts: [AtomicU64; FSYNC_BUCKETS_MICROS.len()],
    fsync_count: AtomicU64,
    fsync_sum_micros: AtomicU64,
}

/// Transport counters, passed in when rendering (the transport owns them).
#[derive(Debug, Default, Clone, Copy)]
pub struct PeerCounters {
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub send_errors: u64,
    pub connections_refused: u64,
    pub malformed_frames: u64,
}

impl Metrics {
    pub fn observe_fsync(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        for (bucket, bound) in self.fsync_bucket_counts.iter().zip(FSYNC_BUCKETS_MICROS) {
            if micros <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.fsync_count.fetch_add(1, Ordering::Relaxed);
        self.fsync_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn fsync_count(&self) -> u64 {
        self.fsync_count.load(Ordering::Relaxed)
    }

    pub fn render(&self, peers: PeerCounters) -> String {
        let mut out = String::new();
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let gauges = [
            ("raftkv_term", "Current Raft term.", load(&self.term)),
            (
                "raftkv_role",
                "0 follower, 1 pre-candidate, 2 candidate, 3 leader.",
                load(&self.role),
            ),
            (
                "raftkv_commit_index",
                "Highest log index known committed.",
                load(&self.commit_index),
            ),
            (
                "raftkv_applied_index",
                "Highest log index applied to the KV map.",
                load(&self.applied_index),
            ),
            (
                "raftkv_last_log_index",
                "Index of the last log entry.",
                load(&self.last_index),
            ),
            (
                "raftkv_data_bytes",
                "Bytes of the clients' keys and values (as of the applied index).",
                load(&self.data_bytes),
            ),
            (
                "raftkv_snapshot_image_bytes",
                "Bytes of the current snapshot's image on disk.",
                load(&self.snapshot_image_bytes),
            ),
            (
                "raftkv_quota_bytes",
                "The space quota (--quota-bytes); 0 when there is none.",
                load(&self.quota_bytes),
            ),
            (
                "raftkv_space_alarm",
                "1 while the largest write could be refused for space (NoSpace): near the quota, or the disk under --disk-free-min-bytes.",
                load(&self.space_alarm),
            ),
            (
                "raftkv_disk_free_bytes",
                "Bytes free on the data dir's disk, read about once a second.",
                load(&self.disk_free_bytes),
            ),
            (
                "raftkv_sessions_open",
                "Client sessions held for exactly-once writes (the same on every replica at one applied index).",
                load(&self.sessions_open),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        let counters = [
            (
                "raftkv_proposals_total",
                "Client writes proposed to Raft.",
                load(&self.proposals_total),
            ),
            (
                "raftkv_proposals_refused_total",
                "Client writes refused.",
                load(&self.proposals_refused_total),
            ),
            (
                "raftkv_reads_total",
                "Client reads served.",
                load(&self.reads_total),
            ),
            (
                "raftkv_snapshots_total",
                "Snapshots taken by this node.",
                load(&self.snapshots_total),
            ),
            (
                "raftkv_snapshot_failures_total",
                "Snapshot images this node failed to build (the log is kept; retried later).",
                load(&self.snapshot_failures_total),
            ),
            (
                "raftkv_peer_messages_sent_total",
                "Raft messages written to peers.",
                peers.messages_sent,
            ),
            (
                "raftkv_peer_messages_dropped_total",
                "Raft messages dropped on full queues.",
                peers.messages_dropped,
            ),
            (
                "raftkv_peer_send_errors_total",
                "Failed connections or writes to peers.",
                peers.send_errors,
            ),
            (
                "raftkv_peer_connections_refused_total",
                "Peer connections refused at the handshake (other cluster, unknown node).",
                peers.connections_refused,
            ),
            (
                "raftkv_peer_malformed_frames_total",
                "Peer connections closed on a malformed frame.",
                peers.malformed_frames,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let name = "raftkv_fsync_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Latency of one durable write (group commit).\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.fsync_bucket_counts.iter().zip(FSYNC_BUCKETS_MICROS) {
            let le = bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {}", load(bucket));
        }
        let count = load(&self.fsync_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", load(&self.fsync_sum_micros) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_text_is_well_formed() {
        let metrics = Metrics::default();
        metrics.observe_fsync(Duration::from_micros(300));
        metrics.observe_fsync(Duration::from_millis(3));
        let text = metrics.render(PeerCounters {
            connections_refused: 3,
            ..PeerCounters::default()
        });
        assert!(text.contains("raftkv_peer_connections_refused_total 3"));
        assert!(text.contains("raftkv_peer_malformed_frames_total 0"));
        assert!(text.contains("raftkv_fsync_duration_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("raftkv_fsync_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("raftkv_fsync_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("raftkv_fsync_duration_seconds_count 2"));
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert_eq!(line.split(' ').count(), 2, "sample line {line:?}");
        }
    }
}
