//! Everything a simulated run does is derived from one seed: the cluster, its timings,
//! the clients and their operation mix, and how often each kind of fault strikes. The
//! run prints these first, so a failing seed says what it was testing.

use std::fmt;
use std::time::Duration;

use node::kv::command::SessionLimits;
use raft::Prng;

/// Relative weights of the operations clients invoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpMix {
    pub get: u32,
    pub put: u32,
    pub delete: u32,
    pub cas: u32,
}

impl OpMix {
    pub fn total(&self) -> u32 {
        self.get + self.put + self.delete + self.cas
    }
}

/// Relative weights of the faults the nemesis injects (0 disables one kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWeights {
    pub kill_leader: u32,
    pub kill_any: u32,
    /// Several nodes at once, up to all of them (all come back).
    pub kill_many: u32,
    pub pause: u32,
    /// Servers split in two groups that cannot reach each other (sometimes one node
    /// cut off from everything, clients included).
    pub partition: u32,
    /// Links cut in one direction only.
    pub one_way: u32,
    /// The leader cut off from every other server, still reachable by clients.
    pub isolate_leader: u32,
    pub latency_spike: u32,
    /// A follower killed until the leader compacted past its log, then restarted.
    pub restart_after_compaction: u32,
    /// A node's disk lost (sometimes while other nodes go down and come back one by
    /// one); it restarts empty and must rejoin by itself.
    pub disk_loss: u32,
    /// An operator removes a member (`raftkv member remove`), then its disk is lost and
    /// it restarts, rejoining by itself.
    pub replace: u32,
}

impl FaultWeights {
    pub fn total(&self) -> u32 {
        self.kill_leader
            + self.kill_any
            + self.kill_many
            + self.pause
            + self.partition
            + self.one_way
            + self.isolate_leader
            + self.latency_spike
            + self.restart_after_compaction
            + self.disk_loss
            + self.replace
    }
}

/// Parameters of one simulated run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunParameters {
    pub seed: u64,
    pub cluster_size: u64,
    pub tick_interval: Duration,
    pub election_timeout_ticks_min: u32,
    pub election_timeout_ticks_max: u32,
    pub heartbeat_interval_ticks: u32,
    /// Small, so that logs are compacted (and snapshots sent) within a run.
    pub snapshot_every_entries: u64,
    /// Entries a compaction keeps before its snapshot (none in half the runs).
    pub snapshot_trailing_entries: u64,
    /// Small, so that even the simulation's small images travel in many chunks. At least
    /// 1 KiB: an image holds the history of every revision (issue 13's watch), some
    /// hundreds of KiB by the end of a run, and with one chunk in flight a chunk of tens of
    /// bytes made a new member's catch-up outlast the run.
    pub snapshot_chunk_bytes: usize,
    /// Bound of entry bytes in one append: small ones make a lagging follower catch up
    /// in several steps, each acknowledged on its own.
    pub max_append_bytes_per_message: usize,
    pub max_inflight_appends_per_follower: usize,
    pub client_count: usize,
    /// How many of the clients only read (they stay with whichever node answers them,
    /// as a read-mostly client near one replica does).
    pub read_only_clients: usize,
    pub key_count: usize,
    pub op_mix: OpMix,
    /// Upper bound of a client's pause between operations.
    pub think_time_max: Duration,
    pub faults: FaultWeights,
    /// Mean quiet time between two faults.
    pub fault_gap_mean: Duration,
    /// Upper bound of how long a fault lasts before it is healed.
    pub fault_duration_max: Duration,
    /// Chance, in percent, that a fault is joined while it holds by a second one of
    /// another class (network, pause, node), on other nodes.
    pub concurrent_percent: u32,
    /// Chance, in percent, that a killed node's disk keeps a torn prefix of its
    /// unsynced writes rather than losing all of them.
    pub torn_write_percent: u32,
    /// Faults strike for this long (the safety phase).
    pub safety_phase: Duration,
    /// Then, healed, clients go on for this long (the liveness phase).
    pub liveness_phase: Duration,
    /// The sessions' timeout and bound the nodes put in the log: short and tight, so
    /// that sessions expire during faults and are evicted while clients still retry.
    pub session_limits: SessionLimits,
    /// Leaders serve reads under a lease (thesis §6.4.1, `--lease-reads`) in half the
    /// runs: pauses, partitions and kills then test the lease's clock assumption.
    pub lease_reads: bool,
    /// A known bug to inject, for the canary tests.
    #[cfg(feature = "canaries")]
    pub canary: Option<raft::canary::Canary>,
}

impl RunParameters {
    pub fn from_seed(seed: u64) -> Self {
        // The raft crate's generator, so a seed means the same thing everywhere; its
        // stream is independent of madsim's, which decides scheduling.
        let mut rng = Prng::new(seed ^ 0x5eed_5eed_5eed_5eed);
        let mut weight = |max: u64| rng.below(max + 1) as u32;
        let mut faults = FaultWeights {
            kill_leader: 1 + weight(3),
            kill_any: weight(3),
            kill_many: weight(2),
            pause: weight(3),
            partition: weight(3),
            one_way: weight(3),
            isolate_leader: 1 + weight(3),
            latency_spike: weight(2),
            restart_after_compaction: 1 + weight(2),
            disk_loss: 0,
            replace: 0,
        };
        let op_mix = OpMix {
            get: 20 + weight(40),
            put: 20 + weight(30),
            delete: 3 + weight(10),
            cas: 10 + weight(25),
        };
        let election_timeout_ticks_min = 8 + weight(6);
        let client_count = 2 + rng.below(4) as usize;
        let mut parameters = Self {
            seed,
            cluster_size: if rng.below(2) == 0 { 3 } else { 5 },
            tick_interval: Duration::from_millis(20 + rng.below(31)),
            election_timeout_ticks_min,
            election_timeout_ticks_max: election_timeout_ticks_min + 4 + rng.below(9) as u32,
            heartbeat_interval_ticks: 1 + rng.below(3) as u32,
            snapshot_every_entries: 40 + rng.below(300),
            // Half the runs send one entry per append (64 bytes): a lagging follower then
            // acknowledges its catch-up entry by entry, the case where a leader could
            // count replicas of an old-term entry (§5.4.2).
            max_append_bytes_per_message: if rng.below(2) == 0 {
                64
            } else {
                64 << rng.below(11)
            },
            max_inflight_appends_per_follower: 1 + rng.below(16) as usize,
            client_count,
            read_only_clients: (rng.below(3) as usize).min(client_count - 1),
            key_count: 2 + rng.below(4) as usize,
            op_mix,
            think_time_max: Duration::from_millis(5 + rng.below(60)),
            faults,
            fault_gap_mean: Duration::from_millis(500 + rng.below(2500)),
            fault_duration_max: Duration::from_millis(1500 + rng.below(4500)),
            torn_write_percent: rng.below(101) as u32,
            safety_phase: Duration::from_secs(50),
            liveness_phase: Duration::from_secs(12),
            concurrent_percent: 0,
            session_limits: SessionLimits::DEFAULT,
            snapshot_trailing_entries: 0,
            snapshot_chunk_bytes: 1024 * 1024,
            lease_reads: false,
            #[cfg(feature = "canaries")]
            canary: None,
        };
        // Drawn last, so that every parameter drawn before them (issue 4's) means the
        // same as before they existed.
        faults.disk_loss = 1 + rng.below(3) as u32;
        faults.replace = rng.below(3) as u32;
        parameters.faults = faults;
        parameters.concurrent_percent = 10 + rng.below(31) as u32;
        // Issue 12's, after issue 10's. A session outlives a client's think time but not
        // every fault; one time in three there is room for one session fewer than
        // there are clients, so sessions are evicted under clients that still use them.
        parameters.session_limits = SessionLimits {
            timeout_millis: 1_000 + rng.below(4_000),
            sessions_max: (client_count as u64 - 1 + rng.below(3)).max(1),
            ..SessionLimits::DEFAULT
        };
        // Issue 12's streamed snapshots, after the sessions'.
        parameters.snapshot_trailing_entries = if rng.below(2) == 0 { 0 } else { rng.below(60) };
        parameters.snapshot_chunk_bytes = 1024 << rng.below(4);
        // Issue 14's lease reads, after the snapshots'.
        parameters.lease_reads = rng.below(2) == 0;
        parameters
    }

    /// Simulated time the run lasts at least: both phases (the safety phase may run
    /// over by the hold of its last fault; the liveness phase is timed from the heal).
    pub fn duration_min(&self) -> Duration {
        self.safety_phase + self.liveness_phase
    }
}

impl fmt::Display for RunParameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FaultWeights {
            kill_leader,
            kill_any,
            kill_many,
            pause,
            partition,
            one_way,
            isolate_leader,
            latency_spike,
            restart_after_compaction,
            disk_loss,
            replace,
        } = self.faults;
        let OpMix {
            get,
            put,
            delete,
            cas,
        } = self.op_mix;
        write!(
            f,
            "{} nodes, tick {} ms, election {}-{} ticks, heartbeat {} ticks, snapshot every {} entries; \
             appends <= {} bytes, <= {} in flight; {} clients ({} read-only) on {} keys, mix get/put/delete/cas {get}/{put}/{delete}/{cas}, think <= {} ms; \
             faults every ~{} ms lasting <= {} ms, weights kill-leader {kill_leader} kill-any {kill_any} \
             kill-many {kill_many} pause {pause} partition {partition} one-way {one_way} \
             isolate-leader {isolate_leader} latency {latency_spike} restart-after-compaction \
             {restart_after_compaction} disk-loss {disk_loss} replace {replace}, {}% concurrent; torn writes {}%; \
             sessions expire after {} ms, <= {}; snapshots keep {} entries, chunks of {} bytes; \
             lease reads {}; safety {} s then liveness {} s",
            self.cluster_size,
            self.tick_interval.as_millis(),
            self.election_timeout_ticks_min,
            self.election_timeout_ticks_max,
            self.heartbeat_interval_ticks,
            self.snapshot_every_entries,
            self.max_append_bytes_per_message,
            self.max_inflight_appends_per_follower,
            self.client_count,
            self.read_only_clients,
            self.key_count,
            self.think_time_max.as_millis(),
            self.fault_gap_mean.as_millis(),
            self.fault_duration_max.as_millis(),
            self.concurrent_percent,
            self.torn_write_percent,
            self.session_limits.timeout_millis,
            self.session_limits.sessions_max,
            self.snapshot_trailing_entries,
            self.snapshot_chunk_bytes,
            if self.lease_reads { "on" } else { "off" },
            self.safety_phase.as_secs(),
            self.liveness_phase.as_secs(),
        )?;
        #[cfg(feature = "canaries")]
        if let Some(canary) = self.canary {
            write!(f, "; CANARY {canary:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::RunParameters;

    #[test]
    fn one_seed_gives_one_set_of_parameters() {
        assert_eq!(RunParameters::from_seed(42), RunParameters::from_seed(42));
        assert_ne!(RunParameters::from_seed(42), RunParameters::from_seed(43));
    }

    #[test]
    fn seeds_cover_both_cluster_sizes_and_every_fault() {
        let runs: Vec<RunParameters> = (0..64).map(RunParameters::from_seed).collect();
        let sizes: std::collections::BTreeSet<u64> = runs.iter().map(|run| run.cluster_size).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [3, 5]);
        for run in &runs {
            assert!(run.faults.total() > 0 && run.op_mix.total() > 0);
            assert!(run.read_only_clients < run.client_count, "someone writes");
            assert!(run.election_timeout_ticks_max > run.election_timeout_ticks_min);
            assert!(run.heartbeat_interval_ticks < run.election_timeout_ticks_min);
            assert!(
                run.duration_min().as_secs() >= 60,
                "issue 4: at least 60 simulated seconds"
            );
        }
        assert!(runs
            .iter()
            .any(|run| run.faults.partition > 0 && run.faults.pause > 0));
        assert!(runs
            .iter()
            .any(|run| run.faults.kill_many > 0 && run.faults.one_way > 0));
        assert!(runs.iter().any(|run| run.faults.latency_spike > 0));
        assert!(
            runs.iter().all(|run| run.faults.disk_loss > 0),
            "issue 10: every run loses disks"
        );
        assert!(runs.iter().any(|run| run.faults.replace > 0));
    }
}
