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
use raft::NodeId;
use tokio::time::sleep;

use super::faults::Held;
use super::{shuffle, Nemesis};
use crate::probe::{every_node_a_voter, members, remove_member};

/// How long the operator's `member remove` may take before the nemesis goes on (the
/// outcome is then unknown, and the disk is lost anyway).
const REMOVE_DEADLINE: Duration = Duration::from_secs(5);

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
        let spared = excluded.clone();
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
                    .filter(|member| member.role == wire::MemberRole::Voter)
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
}
