//! The fault injector of the safety phase: faults one after another, chosen by the run's
//! weights, each held for a random time and then healed; sometimes a second fault of
//! another class (network, pause, node) strikes while the first holds, so a disk is lost
//! during a partition or while another node is down. Kills crash the disk too (unsynced
//! writes lost, sometimes a torn prefix kept); a disk loss empties it, and the node must
//! rejoin by itself. Network faults clog server-to-server links only, so clients can
//! still reach a node that its peers cannot (the case that exposes a deposed leader
//! answering reads).
//!
//! How one fault starts and ends is in `nemesis/faults.rs`; disk loss and the
//! operator's replacement of a member, with the rule that keeps a majority of voters
//! with their data, in `nemesis/data_loss.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use madsim::net::NetSim;
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::NodeHandle;
use raft::NodeId;
use tokio::time::{sleep, sleep_until, Instant};

use crate::cluster::SimCluster;
use crate::parameters::{FaultWeights, RunParameters};
use crate::probe::find_leader;

mod data_loss;
mod faults;

use data_loss::DataLoss;

/// The kinds of fault, in the order of [`FaultWeights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    KillLeader,
    KillAny,
    KillMany,
    Pause,
    Partition,
    OneWay,
    IsolateLeader,
    LatencySpike,
    RestartAfterCompaction,
    DiskLoss,
    Replace,
}

/// Which faults may hold at once: two of one class would heal each other (one
/// unclogging the other's links, one resuming the other's network or latency), except
/// node faults, which each end by restarting their own nodes (and pick among running
/// ones), so a disk can be lost while another node is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultClass {
    Network,
    Pause,
    Node,
}

impl FaultKind {
    fn weighted(weights: &FaultWeights) -> [(FaultKind, u32); 11] {
        [
            (FaultKind::KillLeader, weights.kill_leader),
            (FaultKind::KillAny, weights.kill_any),
            (FaultKind::KillMany, weights.kill_many),
            (FaultKind::Pause, weights.pause),
            (FaultKind::Partition, weights.partition),
            (FaultKind::OneWay, weights.one_way),
            (FaultKind::IsolateLeader, weights.isolate_leader),
            (FaultKind::LatencySpike, weights.latency_spike),
            (
                FaultKind::RestartAfterCompaction,
                weights.restart_after_compaction,
            ),
            (FaultKind::DiskLoss, weights.disk_loss),
            (FaultKind::Replace, weights.replace),
        ]
    }

    /// Whether `self` may strike while `other` holds.
    fn may_overlap(self, other: FaultKind) -> bool {
        match (self.class(), other.class()) {
            (Some(FaultClass::Node), Some(FaultClass::Node)) => true,
            (Some(class), Some(other_class)) => class != other_class,
            _ => false,
        }
    }

    /// `None` for a fault that runs alone (it waits on the cluster's progress).
    fn class(self) -> Option<FaultClass> {
        match self {
            FaultKind::Partition | FaultKind::OneWay | FaultKind::IsolateLeader | FaultKind::LatencySpike => {
                Some(FaultClass::Network)
            }
            FaultKind::Pause => Some(FaultClass::Pause),
            FaultKind::KillLeader
            | FaultKind::KillAny
            | FaultKind::KillMany
            | FaultKind::DiskLoss
            | FaultKind::Replace => Some(FaultClass::Node),
            FaultKind::RestartAfterCompaction => None,
        }
    }
}

/// What the nemesis did in one run.
#[derive(Debug, Clone, Default)]
pub struct FaultLog {
    /// Faults picked, by kind (a disk loss the majority rule forbade is counted here and
    /// in `skipped`).
    pub counts: BTreeMap<FaultKind, u32>,
    /// Restarts after compaction in which the leader's snapshot did pass the killed
    /// node's log (the others timed out waiting, which is not a failure).
    pub compactions_passed: u32,
    /// Disks lost (by disk loss or replacement).
    pub disks_lost: u32,
    /// Members an operator removed before their disk was lost.
    pub members_removed: u32,
    /// Faults that struck while another one held.
    pub overlaps: u32,
    /// Disk losses and replacements not done, to keep a majority of voters with their
    /// data (or before the cluster had formed).
    pub skipped: u32,
    /// One line per fault, with its simulated time.
    pub lines: Vec<String>,
}

/// Injects faults into a cluster. Create it in the supervisor task.
pub struct Nemesis<'a> {
    cluster: &'a mut SimCluster,
    parameters: &'a RunParameters,
    /// A madsim node with an address, from which the leader is asked for.
    probe: NodeHandle,
    origin: Instant,
    /// End of the safety phase: no fault starts after it, and waits inside a fault stop
    /// at it (only a fault's own hold may run past it).
    until: Instant,
    /// Nodes paused now (resumed by their fault's end, or by `heal_all`).
    paused: BTreeSet<NodeId>,
    /// Which nodes are without their data.
    data_loss: DataLoss,
    pub log: FaultLog,
}

impl std::fmt::Debug for Nemesis<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nemesis")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl<'a> Nemesis<'a> {
    pub fn new(
        cluster: &'a mut SimCluster,
        parameters: &'a RunParameters,
        probe: NodeHandle,
        origin: Instant,
    ) -> Self {
        Self {
            cluster,
            parameters,
            probe,
            origin,
            until: origin,
            paused: BTreeSet::new(),
            data_loss: DataLoss::default(),
            log: FaultLog::default(),
        }
    }

    fn note(&mut self, line: impl AsRef<str>) {
        let mut text = format!("t={:.2}s ", self.origin.elapsed().as_secs_f64());
        let _ = write!(text, "{}", line.as_ref());
        self.log.lines.push(text);
    }

    /// Faults, one after another (sometimes two at once), until `until`; everything is
    /// healed on return.
    pub async fn run_until(&mut self, until: Instant) {
        let weighted = FaultKind::weighted(&self.parameters.faults);
        assert!(
            weighted.iter().any(|(_, weight)| *weight > 0),
            "a run needs at least one kind of fault"
        );
        self.until = until;
        loop {
            let gap_ms = thread_rng().gen_range(0..=2 * self.parameters.fault_gap_mean.as_millis() as u64);
            let left = until.saturating_duration_since(Instant::now());
            sleep(Duration::from_millis(gap_ms).min(left)).await;
            if Instant::now() >= until {
                break;
            }
            let kind = pick(&weighted, |_| true).expect("some fault has a weight");
            let hold = self.hold();
            // A fault never outlasts the safety phase by more than its own hold.
            *self.log.counts.entry(kind).or_default() += 1;
            let strikes = thread_rng().gen_range(0..100) < self.parameters.concurrent_percent;
            let overlap = strikes
                .then(|| pick(&weighted, |other| other.may_overlap(kind)))
                .flatten();
            match overlap {
                Some(second) => {
                    *self.log.counts.entry(second).or_default() += 1;
                    self.inject_overlapping(kind, hold, second).await;
                }
                None if kind == FaultKind::RestartAfterCompaction => {
                    self.restart_after_compaction(hold).await
                }
                None => {
                    let held = self.start(kind, &BTreeSet::new()).await;
                    sleep(hold).await;
                    self.end(held).await;
                }
            }
        }
        self.heal_all();
    }

    /// How long the next fault holds.
    fn hold(&self) -> Duration {
        let max_ms = self.parameters.fault_duration_max.as_millis() as u64;
        Duration::from_millis(thread_rng().gen_range(200..=max_ms))
    }

    /// `first` starts and holds for `hold`; `second` starts at a random moment of that
    /// hold, on running nodes `first` did not pause, and holds for its own time. Each ends when
    /// its hold is over, whichever comes first.
    async fn inject_overlapping(&mut self, first: FaultKind, hold: Duration, second: FaultKind) {
        let started = Instant::now();
        let first_held = self.start(first, &BTreeSet::new()).await;
        let first_end = started + hold;
        let offset_ms = thread_rng().gen_range(0..hold.as_millis() as u64);
        sleep_until(started + Duration::from_millis(offset_ms)).await;
        self.log.overlaps += 1;
        self.note(format!("while {first:?} holds, {second:?} strikes too"));
        let second_hold = self.hold();
        let second_held = self.start(second, &first_held.paused()).await;
        let second_end = Instant::now() + second_hold;
        let ends = if first_end <= second_end {
            [(first_end, first_held), (second_end, second_held)]
        } else {
            [(second_end, second_held), (first_end, first_held)]
        };
        for (end, held) in ends {
            sleep_until(end).await;
            self.end(held).await;
        }
    }

    async fn leader(&self) -> Option<NodeId> {
        let ids = self.cluster.alive_ids();
        self.probe.spawn(find_leader(ids)).await.expect("probe task")
    }

    /// A random running node, none of `excluded`.
    fn random_alive(&self, excluded: &BTreeSet<NodeId>) -> Option<NodeId> {
        let alive: Vec<NodeId> = self
            .cluster
            .alive_ids()
            .into_iter()
            .filter(|id| !excluded.contains(id))
            .collect();
        (!alive.is_empty()).then(|| alive[thread_rng().gen_range(0..alive.len())])
    }

    /// The leader half the time (if it runs and is not excluded), else a random node.
    async fn leader_or_random(&self, excluded: &BTreeSet<NodeId>) -> Option<NodeId> {
        let leader = if thread_rng().gen_bool(0.5) {
            self.leader().await.filter(|id| !excluded.contains(id))
        } else {
            None
        };
        leader.or_else(|| self.random_alive(excluded))
    }

    fn tear(&self) -> bool {
        thread_rng().gen_range(0..100) < self.parameters.torn_write_percent
    }

    fn kill(&mut self, id: NodeId) {
        let tear = self.tear();
        let outcome = self.cluster.kill(id, tear, thread_rng().gen());
        self.note(format!(
            "killed {id} (torn {tear}: kept {} lost {} unsynced writes)",
            outcome.kept_batches, outcome.lost_batches
        ));
    }

    fn restart(&mut self, id: NodeId) {
        self.cluster.restart(id);
        self.note(format!("restarted {id}"));
    }

    /// Kills a follower and keeps it down until the leader's snapshot is past the end of
    /// its log (or a bound passes), so its restart must catch up by snapshot.
    async fn restart_after_compaction(&mut self, hold: Duration) {
        let leader = self.leader().await;
        let spared: BTreeSet<NodeId> = BTreeSet::new();
        let followers: Vec<NodeId> = self
            .cluster
            .alive_ids()
            .into_iter()
            .filter(|&id| Some(id) != leader && !spared.contains(&id))
            .collect();
        let (Some(leader), false) = (leader, followers.is_empty()) else {
            return;
        };
        let id = followers[thread_rng().gen_range(0..followers.len())];
        self.kill(id);
        let follower_last = self.cluster.disk(id).with_durable(|log| log.last_index());
        let give_up_at = (Instant::now() + hold.max(Duration::from_secs(3)) * 3).min(self.until);
        let passed = loop {
            let leader_snapshot = self.cluster.disk(leader).with_visible(|log| log.snapshot_index());
            if leader_snapshot > follower_last {
                break true;
            }
            if Instant::now() >= give_up_at || !self.cluster.is_alive(leader) {
                break false;
            }
            sleep(Duration::from_millis(100)).await;
        };
        self.log.compactions_passed += u32::from(passed);
        self.note(format!(
            "leader {leader} compacted past {id}'s last index {follower_last}: {passed}"
        ));
        self.restart(id);
    }

    /// Ends every fault: links unclogged, nodes resumed and restarted, latency normal.
    pub fn heal_all(&mut self) {
        let net = NetSim::current();
        let ids = self.cluster.ids();
        for &id in &ids {
            net.unclog_node(self.cluster.sim_node_id(id));
        }
        for &a in &ids {
            for &b in &ids {
                if a != b {
                    net.unclog_link(self.cluster.sim_node_id(a), self.cluster.sim_node_id(b));
                }
            }
        }
        for id in std::mem::take(&mut self.paused) {
            self.cluster.resume(id);
        }
        for id in ids {
            if !self.cluster.is_alive(id) {
                self.restart(id);
            }
        }
        net.update_config(|config| config.send_latency = normal_latency());
        self.note("healed every fault");
    }
}

/// A kind of `weighted` that `allowed` admits, drawn by weight; `None` if none has one.
fn pick(weighted: &[(FaultKind, u32)], allowed: impl Fn(FaultKind) -> bool) -> Option<FaultKind> {
    let candidates: Vec<(FaultKind, u32)> = weighted
        .iter()
        .copied()
        .filter(|&(kind, weight)| weight > 0 && allowed(kind))
        .collect();
    let total: u32 = candidates.iter().map(|(_, weight)| weight).sum();
    if total == 0 {
        return None;
    }
    let mut draw = thread_rng().gen_range(0..total);
    candidates.into_iter().find_map(|(kind, weight)| {
        if draw < weight {
            Some(kind)
        } else {
            draw -= weight;
            None
        }
    })
}

/// The network's latency outside a spike: madsim's default (network faults never
/// overlap each other, so nothing else changes it).
fn normal_latency() -> std::ops::Range<Duration> {
    madsim::net::Config::default().send_latency
}

fn shuffle<T>(items: &mut [T]) {
    for index in (1..items.len()).rev() {
        let other = thread_rng().gen_range(0..=index);
        items.swap(index, other);
    }
}
