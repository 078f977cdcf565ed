//! Settings of one Raft server. Time is counted in ticks: the application decides how
//! long a tick is.

use crate::error::ConfigError;
use crate::types::NodeId;

/// Settings of one Raft server; `Config::new(id)` gives the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub id: NodeId,
    /// Election timeouts are drawn uniformly from
    /// `[election_timeout_ticks_min, election_timeout_ticks_max]` (paper §5.2).
    pub election_timeout_ticks_min: u32,
    pub election_timeout_ticks_max: u32,
    /// A leader sends heartbeats this often; must be well below the election timeout.
    pub heartbeat_interval_ticks: u32,
    /// Pre-vote (thesis §9.6): a partitioned server cannot disrupt the cluster on rejoin.
    pub pre_vote: bool,
    /// Check-quorum (thesis §6.2): a leader that has not heard from a majority for an
    /// election timeout steps down, and voters ignore elections while they hear a leader.
    pub check_quorum: bool,
    /// Upper bound of entry bytes in one append message (at least one entry is always sent).
    pub max_append_bytes_per_message: usize,
    /// Lease reads (thesis §6.4.1): a leader that a quorum acknowledged a heartbeat from
    /// serves reads at its commit index without a heartbeat round of their own, until
    /// `read_lease_ticks` after that heartbeat left. Needs check-quorum: a voter that heard
    /// the leader ignores other candidates for `election_timeout_ticks_min`, which is what
    /// the lease borrows. The clock assumption: ticks on every server last as long as one
    /// another within 10%, and the application never lets a tick fall behind real time
    /// when it asks for a read (node/src/driver: overdue ticks are delivered first).
    pub lease_reads: bool,
    /// Upper bound of append messages in flight to one follower (pipelining window).
    pub max_inflight_appends_per_follower: usize,
    /// A leader refuses proposals while this many bytes are appended but not committed.
    pub max_uncommitted_bytes: usize,
    /// Upper bound of ReadIndex requests waiting on a leader or a follower.
    pub max_pending_reads: usize,
    /// Upper bound of committed entry bytes handed to the application in one `Ready`.
    pub max_apply_bytes_per_ready: usize,
    /// Snapshots travel in chunks of at most this many bytes.
    pub snapshot_chunk_bytes: usize,
    /// Entries a compaction keeps before its snapshot's index, so a follower that fell
    /// only that far behind catches up from the log instead of a whole snapshot.
    pub snapshot_trailing_entries: u64,
    /// ...and at most this many bytes of them (large entries would otherwise keep a
    /// large window in memory).
    pub snapshot_trailing_bytes_max: usize,
    /// Seeds the PRNG behind election timeouts; give each server its own.
    pub seed: u64,
    /// A known bug to inject (simulation self-test only).
    #[cfg(feature = "canaries")]
    pub canary: Option<crate::canary::Canary>,
}

impl Config {
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_interval_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            max_append_bytes_per_message: 1024 * 1024,
            max_inflight_appends_per_follower: 64,
            max_uncommitted_bytes: 64 * 1024 * 1024,
            max_pending_reads: 4096,
            max_apply_bytes_per_ready: 16 * 1024 * 1024,
            snapshot_chunk_bytes: 1024 * 1024,
            snapshot_trailing_entries: 0,
            snapshot_trailing_bytes_max: usize::MAX,
            seed: id,
            #[cfg(feature = "canaries")]
            canary: None,
        }
    }

    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval_ticks == 0 {
            return Err(ConfigError::new("heartbeat_interval_ticks must be at least 1"));
        }
        if self.election_timeout_ticks_min <= self.heartbeat_interval_ticks {
            return Err(ConfigError::new(
                "election_timeout_ticks_min must exceed heartbeat_interval_ticks",
            ));
        }
        if self.election_timeout_ticks_max < self.election_timeout_ticks_min {
            return Err(ConfigError::new(
                "election_timeout_ticks_max must be at least election_timeout_ticks_min",
            ));
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError::new("lease_reads needs check_quorum"));
        }
        if self.lease_reads && self.read_lease_ticks() == 0 {
            return Err(ConfigError::new(
                "lease_reads needs election_timeout_ticks_min of at least 3",
            ));
        }
        let positive = [
            ("max_append_bytes_per_message", self.max_append_bytes_per_message),
            (
                "max_inflight_appends_per_follower",
                self.max_inflight_appends_per_follower,
            ),
            ("max_uncommitted_bytes", self.max_uncommitted_bytes),
            ("max_pending_reads", self.max_pending_reads),
            ("max_apply_bytes_per_ready", self.max_apply_bytes_per_ready),
            ("snapshot_chunk_bytes", self.snapshot_chunk_bytes),
        ];
        if u32::try_from(self.snapshot_chunk_bytes).is_err() {
            return Err(ConfigError::new("snapshot_chunk_bytes must fit in 32 bits"));
        }
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::new(format!("{name} must be at least 1")));
            }
        }
        Ok(())
    }

    /// How long a quorum's acknowledgement of a heartbeat lets the leader serve reads,
    /// counted from when the heartbeat left. A voter that took the heartbeat grants no
    /// other vote for `election_timeout_ticks_min` of its ticks; one tick is lost to
    /// granularity (its first tick may come right after the heartbeat), and a tenth more
    /// (rounded up) covers tick lengths that differ by up to 10% between servers.
    pub fn read_lease_ticks(&self) -> u32 {
        let min = self.election_timeout_ticks_min;
        min.saturating_sub(1).saturating_sub(min.div_ceil(10))
    }
}
