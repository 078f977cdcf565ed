//! How each fault starts, and what ends it: a fault returns a [`Held`], and ending the
//! `Held` heals exactly what that fault did, so two faults can hold at once and end in
//! either order.

use std::collections::BTreeSet;
use std::time::Duration;

use madsim::net::NetSim;
use madsim::rand::{thread_rng, Rng};
use raft::NodeId;
use tokio::time::sleep;

use super::{normal_latency, shuffle, FaultKind, Nemesis};

/// What a started fault holds, and what its end undoes.
#[derive(Debug)]
pub(super) enum Held {
    /// Nothing was done (no target).
    Nothing,
    /// Nodes killed (or with a lost disk), restarted in this order, with a random pause
    /// of up to `gap_max` before each after the first.
    Restart {
        ids: Vec<NodeId>,
        gap_max: Duration,
    },
    Resume(NodeId),
    Unclog(Vec<(NodeId, NodeId)>),
    /// A node cut off from everything, clients included.
    Reconnect(NodeId),
    Latency,
}

impl Held {
    /// The nodes this fault paused: another fault must leave them alone.
    pub(super) fn paused(&self) -> BTreeSet<NodeId> {
        match self {
            Held::Resume(id) => BTreeSet::from([*id]),
            _ => BTreeSet::new(),
        }
    }

    pub(super) fn restart(id: NodeId) -> Self {
        Held::Restart {
            ids: vec![id],
            gap_max: Duration::ZERO,
        }
    }
}

impl Nemesis<'_> {
    /// Starts a fault of `kind` on nodes other than `excluded`.
    pub(super) async fn start(&mut self, kind: FaultKind, excluded: &BTreeSet<NodeId>) -> Held {
        match kind {
            FaultKind::KillLeader | FaultKind::KillAny => {
                let target = match kind {
                    FaultKind::KillLeader => self.leader().await.filter(|id| !excluded.contains(id)),
                    _ => None,
                };
                let Some(id) = target.or_else(|| self.random_alive(excluded)) else {
                    return Held::Nothing;
                };
                self.kill(id);
                Held::restart(id)
            }
            FaultKind::KillMany => {
                let excluded = excluded.clone();
                let mut ids: Vec<NodeId> = self
                    .cluster
                    .alive_ids()
                    .into_iter()
                    .filter(|id| !excluded.contains(id))
                    .collect();
                shuffle(&mut ids);
                let count = thread_rng().gen_range(2..=ids.len().max(2)).min(ids.len());
                let victims: Vec<NodeId> = ids.into_iter().take(count).collect();
                for &id in &victims {
                    self.kill(id);
                }
                Held::Restart {
                    ids: victims,
                    gap_max: Duration::ZERO,
                }
            }
            FaultKind::Pause => {
                let Some(id) = self.leader_or_random(excluded).await else {
                    return Held::Nothing;
                };
                self.cluster.pause(id);
                self.paused.insert(id);
                self.note(format!("paused {id}"));
                Held::Resume(id)
            }
            FaultKind::Partition if thread_rng().gen_bool(0.25) => {
                // One node cut off from everything, clients included (a dead switch port).
                let ids = self.cluster.ids();
                let id = ids[thread_rng().gen_range(0..ids.len())];
                self.note(format!("cut {id} off the network"));
                NetSim::current().clog_node(self.cluster.sim_node_id(id));
                Held::Reconnect(id)
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
                self.note(format!("partition {left:?} | {right:?}"));
                self.clog(links)
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
                self.note(format!("one-way cuts {links:?}"));
                self.clog(links)
            }
            FaultKind::IsolateLeader => {
                let Some(leader) = self.leader().await else {
                    return Held::Nothing;
                };
                let links: Vec<(NodeId, NodeId)> = self
                    .cluster
                    .ids()
                    .into_iter()
                    .filter(|&id| id != leader)
                    .flat_map(|id| [(leader, id), (id, leader)])
                    .collect();
                self.note(format!("isolated leader {leader} from its peers"));
                self.clog(links)
            }
            FaultKind::LatencySpike => {
                let high_ms = thread_rng().gen_range(50..=800);
                NetSim::current().update_config(|config| {
                    config.send_latency = Duration::from_millis(high_ms / 4)..Duration::from_millis(high_ms);
                });
                self.note(format!("latency up to {high_ms} ms"));
                Held::Latency
            }
            FaultKind::DiskLoss => self.start_disk_loss(excluded).await,
            FaultKind::Replace => self.start_replace(excluded).await,
            FaultKind::RestartAfterCompaction => {
                unreachable!("a restart after compaction runs alone (Nemesis::restart_after_compaction)")
            }
        }
    }

    /// Ends what `held` holds.
    pub(super) async fn end(&mut self, held: Held) {
        let net = NetSim::current();
        match held {
            Held::Nothing => {}
            Held::Restart { ids, gap_max } => {
                for (position, id) in ids.into_iter().enumerate() {
                    if position > 0 && !gap_max.is_zero() {
                        let gap_ms = thread_rng().gen_range(0..=gap_max.as_millis() as u64);
                        sleep(Duration::from_millis(gap_ms)).await;
                    }
                    if !self.cluster.is_alive(id) {
                        self.restart(id);
                    }
                }
            }
            Held::Resume(id) => {
                if self.paused.remove(&id) {
                    self.cluster.resume(id);
                    self.note(format!("resumed {id}"));
                }
            }
            Held::Unclog(links) => {
                for (from, to) in links {
                    net.unclog_link(self.cluster.sim_node_id(from), self.cluster.sim_node_id(to));
                }
                self.note("links restored");
            }
            Held::Reconnect(id) => {
                net.unclog_node(self.cluster.sim_node_id(id));
                self.note(format!("{id} back on the network"));
            }
            Held::Latency => {
                net.update_config(|config| config.send_latency = normal_latency());
                self.note("latency back to normal");
            }
        }
    }

    fn clog(&mut self, links: Vec<(NodeId, NodeId)>) -> Held {
        let net = NetSim::current();
        for &(from, to) in &links {
            net.clog_link(self.cluster.sim_node_id(from), self.cluster.sim_node_id(to));
        }
        Held::Unclog(links)
    }
}
