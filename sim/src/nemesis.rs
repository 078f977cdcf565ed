//! The fault injector of the safety phase: one fault at a time, chosen by the run's
//! weights, held for a random time and then healed. Kills crash the disk too (unsynced
//! writes lost, sometimes a torn prefix kept); network faults clog server-to-server
//! links only, so clients can still reach a node that its peers cannot (the case that
//! exposes a deposed leader answering reads).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use madsim::net::NetSim;
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::NodeHandle;
use raft::NodeId;
use tokio::time::{sleep, Instant};

use crate::cluster::SimCluster;
use crate::parameters::{FaultWeights, RunParameters};
use crate::probe::find_leader;

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
}

impl FaultKind {
    fn weighted(weights: &FaultWeights) -> [(FaultKind, u32); 9] {
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
        ]
    }
}

/// What the nemesis did in one run.
#[derive(Debug, Clone, Default)]
pub struct FaultLog {
    pub counts: BTreeMap<FaultKind, u32>,
    /// Restarts after compaction in which the leader's snapshot did pass the killed
    /// node's log (the others timed out waiting, which is not a failure).
    pub compactions_passed: u32,
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
            log: FaultLog::default(),
        }
    }

    fn note(&mut self, line: impl AsRef<str>) {
        let mut text = format!("t={:.2}s ", self.origin.elapsed().as_secs_f64());
        let _ = write!(text, "{}", line.as_ref());
        self.log.lines.push(text);
    }

    /// Faults, one after another, until `until`; everything is healed on return.
    pub async fn run_until(&mut self, until: Instant) {
        let weighted = FaultKind::weighted(&self.parameters.faults);
        let total: u32 = weighted.iter().map(|(_, weight)| weight).sum();
        assert!(total > 0, "a run needs at least one kind of fault");
        self.until = until;
        loop {
            let gap_ms = thread_rng().gen_range(0..=2 * self.parameters.fault_gap_mean.as_millis() as u64);
            let left = until.saturating_duration_since(Instant::now());
            sleep(Duration::from_millis(gap_ms).min(left)).await;
            if Instant::now() >= until {
                break;
            }
            let mut pick = thread_rng().gen_range(0..total);
            let kind = weighted
                .iter()
                .find(|(_, weight)| {
                    let found = pick < *weight;
                    pick = pick.saturating_sub(*weight);
                    found
                })
                .map(|(kind, _)| *kind)
                .expect("the pick is below the total");
            let max_ms = self.parameters.fault_duration_max.as_millis() as u64;
            let hold = Duration::from_millis(thread_rng().gen_range(200..=max_ms));
            // A fault never outlasts the safety phase by more than its own hold.
            *self.log.counts.entry(kind).or_default() += 1;
            self.inject(kind, hold).await;
        }
        self.heal_all();
    }

    async fn leader(&self) -> Option<NodeId> {
        let ids = self.cluster.alive_ids();
        self.probe.spawn(find_leader(ids)).await.expect("probe task")
    }

    fn random_alive(&self) -> Option<NodeId> {
        let alive = self.cluster.alive_ids();
        (!alive.is_empty()).then(|| alive[thread_rng().gen_range(0..alive.len())])
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

    async fn inject(&mut self, kind: FaultKind, hold: Duration) {
        match kind {
            FaultKind::KillLeader | FaultKind::KillAny => {
                let target = match kind {
                    FaultKind::KillLeader => self.leader().await,
                    _ => None,
                };
                let Some(id) = target.or_else(|| self.random_alive()) else {
                    return;
                };
                self.kill(id);
                sleep(hold).await;
                self.restart(id);
            }
            FaultKind::KillMany => {
                let mut ids = self.cluster.alive_ids();
                shuffle(&mut ids);
                let count = thread_rng().gen_range(2..=ids.len().max(2)).min(ids.len());
                let victims: Vec<NodeId> = ids.into_iter().take(count).collect();
                for &id in &victims {
                    self.kill(id);
                }
                sleep(hold).await;
                for &id in &victims {
                    self.restart(id);
                }
            }
            FaultKind::Pause => {
                let target = if thread_rng().gen_bool(0.5) {
                    self.leader().await
                } else {
                    None
                };
                let Some(id) = target.or_else(|| self.random_alive()) else {
                    return;
                };
                self.cluster.pause(id);
                self.note(format!("paused {id} for {} ms", hold.as_millis()));
                sleep(hold).await;
                self.cluster.resume(id);
            }
            FaultKind::Partition if thread_rng().gen_bool(0.25) => {
                // One node cut off from everything, clients included (a dead switch port).
                let ids = self.cluster.ids();
                let id = ids[thread_rng().gen_range(0..ids.len())];
                let node = self.cluster.sim_node_id(id);
                self.note(format!("cut {id} off the network for {} ms", hold.as_millis()));
                NetSim::current().clog_node(node);
                sleep(hold).await;
                NetSim::current().unclog_node(node);
            }
            FaultKind::Partition => {
                let mut ids = self.cluster.ids();
                shuffle(&mut ids);
                let split = thread_rng().gen_range(1..ids.len());
                let (left, right) = ids.split_at(split);
                let links: Vec<(NodeId, NodeId)> = left
                    .iter()
                    .flat_map(|&a| right.iter().flat_map(move |&b| [(a, b), (b, a)]))
                    .collect();
                self.note(format!(
                    "partition {left:?} | {right:?} for {} ms",
                    hold.as_millis()
                ));
                self.clog_for(&links, hold).await;
            }
            FaultKind::OneWay => {
                let ids = self.cluster.ids();
                let links: Vec<(NodeId, NodeId)> = match self.leader().await {
                    // A leader that hears everyone but reaches no one, or the reverse.
                    Some(leader) if thread_rng().gen_bool(0.5) => {
                        let outbound = thread_rng().gen_bool(0.5);
                        ids.iter()
                            .filter(|&&id| id != leader)
                            .map(|&id| if outbound { (leader, id) } else { (id, leader) })
                            .collect()
                    }
                    _ => {
                        let mut pairs: Vec<(NodeId, NodeId)> = ids
                            .iter()
                            .flat_map(|&a| ids.iter().filter(move |&&b| b != a).map(move |&b| (a, b)))
                            .collect();
                        shuffle(&mut pairs);
                        let count = thread_rng().gen_range(1..=pairs.len() / 2);
                        pairs.truncate(count);
                        pairs
                    }
                };
                self.note(format!("one-way cuts {links:?} for {} ms", hold.as_millis()));
                self.clog_for(&links, hold).await;
            }
            FaultKind::IsolateLeader => {
                let Some(leader) = self.leader().await else { return };
                let links: Vec<(NodeId, NodeId)> = self
                    .cluster
                    .ids()
                    .into_iter()
                    .filter(|&id| id != leader)
                    .flat_map(|id| [(leader, id), (id, leader)])
                    .collect();
                self.note(format!(
                    "isolated leader {leader} from its peers for {} ms",
                    hold.as_millis()
                ));
                self.clog_for(&links, hold).await;
            }
            FaultKind::LatencySpike => {
                let net = NetSim::current();
                let high_ms = thread_rng().gen_range(50..=800);
                net.update_config(|config| {
                    config.send_latency = Duration::from_millis(high_ms / 4)..Duration::from_millis(high_ms);
                });
                self.note(format!("latency up to {high_ms} ms for {} ms", hold.as_millis()));
                sleep(hold).await;
                net.update_config(|config| config.send_latency = normal_latency());
            }
            FaultKind::RestartAfterCompaction => self.restart_after_compaction(hold).await,
        }
    }

    /// Kills a follower and keeps it down until the leader's snapshot is past the end of
    /// its log (or a bound passes), so its restart must catch up by snapshot.
    async fn restart_after_compaction(&mut self, hold: Duration) {
        let leader = self.leader().await;
        let followers: Vec<NodeId> = self
            .cluster
            .alive_ids()
            .into_iter()
            .filter(|&id| Some(id) != leader)
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

    async fn clog_for(&mut self, links: &[(NodeId, NodeId)], hold: Duration) {
        let net = NetSim::current();
        for &(from, to) in links {
            net.clog_link(self.cluster.sim_node_id(from), self.cluster.sim_node_id(to));
        }
        sleep(hold).await;
        for &(from, to) in links {
            net.unclog_link(self.cluster.sim_node_id(from), self.cluster.sim_node_id(to));
        }
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
        for id in ids {
            if !self.cluster.is_alive(id) {
                self.restart(id);
            }
        }
        net.update_config(|config| config.send_latency = normal_latency());
        self.note("healed every fault");
    }
}

/// The network's latency outside a spike: madsim's default (faults come one at a
/// time, so nothing else changes it).
fn normal_latency() -> std::ops::Range<Duration> {
    madsim::net::Config::default().send_latency
}

fn shuffle<T>(items: &mut [T]) {
    for index in (1..items.len()).rev() {
        let other = thread_rng().gen_range(0..=index);
        items.swap(index, other);
    }
}
