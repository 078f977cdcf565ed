//! A node that is not (yet) a voting member asks the cluster to make it one, step by
//! step, automatically, with every step logged: the old incarnation of its id removed,
//! this incarnation added as a learner with its addresses, promoted once caught up (one
//! change at a time, thesis §4.1; learners first, thesis §4.2.1).
//!
//! This is the path of a wiped data dir, a replaced disk and a scale-up pod alike. Each
//! request is idempotent (`wire::MemberChange`), and every decision is taken
//! from the leader's member list read just before, so a restart, a leader change or a
//! lost answer only repeats a step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use client::client::{Client, ClientOptions};
use raft::{ConfState, NodeId};
use tokio::sync::watch;
use tokio::time::{sleep, Instant};
use tracing::{debug, info, warn};
use wire::tls::ReloadingTls;
use wire::{MemberChange, MemberList, MemberRole, NodeStatus};

use crate::identity::ClusterId;
use crate::membership::{MemberRecord, PeerEntry};
use crate::transport::Transport;

/// Pause between two steps, and after a failed one.
const STEP_PAUSE: Duration = Duration::from_millis(300);
/// How often "still waiting" is logged while no member answers.
const WAITING_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Deadline of one request to the cluster (a promotion waits there for the catch-up).
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Who is joining, and whom it may ask.
#[derive(Debug, Clone)]
pub struct JoinSettings {
    pub own_id: NodeId,
    pub incarnation: u64,
    pub cluster_id: ClusterId,
    pub own_peer_address: String,
    pub own_client_address: String,
    /// The initial members (`--peers`), probed for their client addresses.
    pub seeds: Vec<NodeId>,
    /// TLS towards the members' client ports, as this node (an admin by its certificate).
    pub tls: Option<Arc<ReloadingTls>>,
}

/// The next thing to ask for, from the leader's member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinStep {
    /// Remove the member of this id: it is another incarnation (this node's old disk).
    RemoveOldIncarnation { incarnation: u64 },
    /// Add this incarnation as a learner (or bind it to a member added without one).
    AddLearner,
    /// Promote this learner (the leader refuses until it has caught up).
    Promote,
    /// A voter under this incarnation: done.
    Done,
}

/// Decides the next step for `own_id` in `incarnation` from `list`.
pub fn next_step(own_id: NodeId, incarnation: u64, list: &MemberList) -> JoinStep {
    let Some(member) = list.member(own_id) else {
        return JoinStep::AddLearner;
    };
    match member.incarnation {
        Some(other) if other != incarnation => JoinStep::RemoveOldIncarnation { incarnation: other },
        None => JoinStep::AddLearner,
        Some(_) => match member.role {
            MemberRole::Learner => JoinStep::Promote,
            MemberRole::Voter => JoinStep::Done,
        },
    }
}

/// Whether a node restarting with Raft state must (still) ask to be made a voter, from
/// the configuration and records it recovered. The record is what tells: a member's
/// record carries its incarnation, and the record of this incarnation comes after the
/// entry that adds it (`driver/membership.rs`).
/// - No record of this incarnation: it was never added as far as this data dir saw (a
///   join killed before the entry that adds it reached it; the configuration it holds
///   may even name its id as a voter, for the incarnation it replaces), or it is a
///   founder whose record was not written yet. It asks; the leader's member list decides
///   each step, and says "done" to a founder at once.
/// - Recorded, and a learner: the join was not finished (raftkv keeps no permanent
///   learners). A voter: nothing to do. In no configuration: it was removed, and stays
///   idle.
pub fn must_join(
    conf: &ConfState,
    own_id: NodeId,
    incarnation: u64,
    own_record: Option<&MemberRecord>,
) -> bool {
    let recorded = own_record.is_some_and(|record| record.incarnation == Some(incarnation));
    !recorded || conf.learners.contains(&own_id)
}

/// Asks the cluster, step by step, to make this node a voter; returns when it is one, or
/// on shutdown. `status` is this node's own driver status: until it has a configuration,
/// the transport is given the leader's member list as peers, so the leader (which may
/// be none of the seeds) is accepted when it first sends to this node.
pub async fn join_cluster(
    settings: JoinSettings,
    transport: Transport,
    status: watch::Receiver<NodeStatus>,
    mut shutdown: watch::Receiver<bool>,
) {
    let own_id = settings.own_id;
    info!(
        id = own_id,
        incarnation = format_args!("{:016x}", settings.incarnation),
        "joining: asking the cluster to make this node a voting member"
    );
    let mut last_waiting_log: Option<Instant> = None;
    let mut last_step = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match step_once(&settings, &transport, &status).await {
            Ok(JoinStep::Done) => {
                info!(id = own_id, "joined: this node is a voting member");
                return;
            }
            Ok(step) => {
                if last_step.as_ref() != Some(&step) {
                    info!(id = own_id, ?step, "joining: step done");
                }
                last_step = Some(step);
            }
            Err(why) => {
                if last_waiting_log.is_none_or(|at| at.elapsed() >= WAITING_LOG_INTERVAL) {
                    last_waiting_log = Some(Instant::now());
                    warn!(id = own_id, "joining: {why}; retrying");
                } else {
                    debug!(id = own_id, "joining: {why}; retrying");
                }
            }
        }
        tokio::select! {
            () = sleep(STEP_PAUSE) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Reads the member list and takes the next step. `Ok(step)`: the step that was taken.
async fn step_once(
    settings: &JoinSettings,
    transport: &Transport,
    status: &watch::Receiver<NodeStatus>,
) -> Result<JoinStep, String> {
    let endpoints = cluster_endpoints(settings, transport).await;
    if endpoints.is_empty() {
        return Err(format!(
            "no member of cluster {} answers among the seeds {:?}",
            settings.cluster_id, settings.seeds
        ));
    }
    let options = ClientOptions {
        deadline: REQUEST_DEADLINE,
        ..ClientOptions::default()
    };
    // The incarnation as client id: unique per data dir (a joiner writes no session), and
    // it keeps a simulated run replayable (a generated id hashes the process id).
    let mut client = Client::from_list(&endpoints.join(","), options)
        .map_err(|error| format!("bad member client addresses {endpoints:?}: {error}"))?
        .with_client_id(settings.incarnation.max(1));
    if let Some(tls) = &settings.tls {
        client = client.with_tls(tls.client());
    }
    let list = client
        .members()
        .await
        .map_err(|error| format!("cannot read the members: {error}"))?;
    if list.cluster_id != settings.cluster_id.0 {
        return Err(format!(
            "the answering leader is of cluster {:016x}, not {}",
            list.cluster_id, settings.cluster_id
        ));
    }
    let has_configuration = {
        let status = status.borrow();
        !status.voters.is_empty() || !status.learners.is_empty()
    };
    if !has_configuration {
        transport.set_peers(peers_from_list(&list, settings.own_id));
    }
    let step = next_step(settings.own_id, settings.incarnation, &list);
    let change = match &step {
        JoinStep::Done => return Ok(JoinStep::Done),
        JoinStep::RemoveOldIncarnation { incarnation } => {
            info!(
                id = settings.own_id,
                old_incarnation = format_args!("{incarnation:016x}"),
                "joining: asking the leader to remove the old incarnation of this id"
            );
            MemberChange::Remove {
                id: settings.own_id,
                incarnation: Some(*incarnation),
            }
        }
        JoinStep::AddLearner => {
            info!(
                id = settings.own_id,
                "joining: asking the leader to add this node as a learner"
            );
            MemberChange::AddLearner {
                id: settings.own_id,
                peer_address: settings.own_peer_address.clone(),
                client_address: settings.own_client_address.clone(),
                incarnation: Some(settings.incarnation),
            }
        }
        JoinStep::Promote => {
            debug!(
                id = settings.own_id,
                "joining: asking the leader to promote this learner"
            );
            MemberChange::Promote { id: settings.own_id }
        }
    };
    client
        .change_members(change)
        .await
        .map_err(|error| format!("step {step:?} not taken yet: {error}"))?;
    Ok(step)
}

/// The client addresses of the seeds that answer a probe as members of our cluster.
async fn cluster_endpoints(settings: &JoinSettings, transport: &Transport) -> Vec<String> {
    let mut endpoints = Vec::new();
    for &seed in settings.seeds.iter().filter(|&&id| id != settings.own_id) {
        match transport.probe(seed).await {
            Ok(state)
                if state
                    .membership
                    .as_ref()
                    .is_some_and(|membership| membership.cluster_id == settings.cluster_id) =>
            {
                endpoints.push(state.client_address);
            }
            Ok(_) => {}
            Err(error) => debug!(seed, %error, "probe failed"),
        }
    }
    endpoints
}

/// The leader's members as this node's peers.
fn peers_from_list(list: &MemberList, own_id: NodeId) -> BTreeMap<NodeId, PeerEntry> {
    list.members
        .iter()
        .filter(|member| member.id != own_id)
        .map(|member| {
            let entry = PeerEntry {
                address: member.peer_address.clone(),
                incarnation: member.incarnation,
            };
            (member.id, entry)
        })
        .collect()
}

#[cfg(test)]
mod tests;
