//! From a data dir to a Raft node, safely: the identity check, and for a data dir that is
//! not a member of any cluster yet, the decision to found one or to join one.
//!
//! A new cluster is founded only when every initial member (`--peers`) answers a probe and
//! none is a member of a cluster yet (the first deploy, all pods started in parallel); the
//! founders then derive one cluster id from all their incarnations
//! (`ClusterMembership::found`), with no further round. A founder that answers later
//! probes names the founders, so a slow founder finds itself among them and bootstraps the
//! same configuration.
//!
//! A node with an empty data dir that finds a member of an existing cluster among its
//! peers is a new incarnation (a wiped or replaced disk, or a new pod of a scale-up). It
//! never bootstraps: it starts an empty Raft node that is nobody's voter, and asks the
//! cluster to make it a member (`crate::join`): the old incarnation removed, the new one
//! added as a learner, promoted once caught up. Until the cluster has recorded its
//! incarnation, every member drops its votes and acknowledgements (`transport::handshake`), so it
//! never votes and never acknowledges: this is what keeps an acknowledged write when a
//! majority's disks include a wiped one.
//!
//! Known limit: if a founder's data dir is wiped during the first seconds of a first
//! deploy, between two other founders' probes, those two may derive different cluster ids
//! and refuse each other; the cluster then does not form (nothing is lost) until the data
//! dirs are cleared and the deploy repeated.

use std::collections::BTreeMap;
use std::time::Duration;

use raft::{ConfState, NodeId, Raft};
use tokio::sync::watch;
use tokio::time::{sleep, Instant};
use tracing::{info, warn};

use crate::identity::{
    check_data_dir, ClusterId, ClusterMembership, Founder, Identity, IdentityError, StartPlan,
};
use crate::kv::state_machine::StateMachine;
use crate::storage::{Recovered, Storage, StorageError};
use crate::transport::{PeerState, Transport};

/// Pause between rounds of probes while some initial member is unreachable.
const PROBE_ROUND_PAUSE: Duration = Duration::from_millis(250);
/// How often the wait for unreachable members is logged.
const WAITING_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why a node cannot start.
#[derive(Debug)]
pub enum StartupError {
    Identity(IdentityError),
    Storage(StorageError),
    Raft(raft::StartError),
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Identity(error) => error.fmt(f),
            Self::Storage(error) => error.fmt(f),
            Self::Raft(error) => write!(f, "cannot start Raft: {error}"),
        }
    }
}

impl std::error::Error for StartupError {}

impl From<StorageError> for StartupError {
    fn from(error: StorageError) -> Self {
        Self::Storage(error)
    }
}

/// What a node is started with, as far as its identity goes.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub own_id: NodeId,
    pub cluster_name: String,
    /// `--expect-cluster-id`: refuse a data dir of any other cluster.
    pub expected_cluster_id: Option<ClusterId>,
    /// Every initial member, this node included (`--peers`).
    pub members: Vec<NodeId>,
}

/// A data dir that passed the identity check.
#[derive(Debug)]
pub struct OpenedDataDir {
    pub identity: Identity,
    /// Raft state, for a member that has some.
    pub recovered: Option<Recovered>,
}

/// Reads and checks the data dir's identity; a fresh data dir gets one with
/// `new_incarnation`, saved (synced) before anything else happens.
pub fn open_data_dir<S: Storage>(
    storage: &mut S,
    settings: &IdentitySettings,
    new_incarnation: u64,
) -> Result<OpenedDataDir, StartupError> {
    let stored = storage.load_identity()?;
    let recovered = storage.recover()?;
    let plan = check_data_dir(
        stored,
        recovered.is_some(),
        settings.own_id,
        &settings.cluster_name,
        settings.expected_cluster_id,
        new_incarnation,
    )
    .map_err(StartupError::Identity)?;
    let identity = match plan {
        StartPlan::Recover(identity) | StartPlan::Refound(identity) => identity,
        StartPlan::Probe { identity, is_new } => {
            if is_new {
                storage.save_identity(&identity)?;
                info!(
                    id = identity.node_id,
                    incarnation = format_args!("{:016x}", identity.incarnation),
                    "new data dir: recorded a new incarnation"
                );
            }
            identity
        }
    };
    Ok(OpenedDataDir { identity, recovered })
}

/// What the probes of one round say to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Found (or, for a slow founder, join) this cluster.
    Found(ClusterMembership),
    /// `member` belongs to an existing cluster of which this incarnation is not a
    /// founder: join it as a new incarnation.
    ExistingCluster {
        membership: ClusterMembership,
        member: NodeId,
    },
    /// Probe again: these members did not answer.
    Wait { unreachable: Vec<NodeId> },
}

/// Decides from one round of probe answers. `own` is this node; `members` every initial
/// member, `own` included; `answers` the peers that answered.
pub fn decide(
    own: Founder,
    cluster_name: &str,
    members: &[NodeId],
    answers: &BTreeMap<NodeId, PeerState>,
) -> Decision {
    let memberships = answers
        .iter()
        .filter_map(|(&id, state)| state.membership.as_ref().map(|membership| (id, membership)));
    let mut existing = None;
    for (id, membership) in memberships {
        if membership.is_founder(own.node_id, own.incarnation) {
            return Decision::Found(membership.clone());
        }
        existing.get_or_insert(Decision::ExistingCluster {
            membership: membership.clone(),
            member: id,
        });
    }
    if let Some(existing) = existing {
        return existing;
    }
    let unreachable: Vec<NodeId> = members
        .iter()
        .copied()
        .filter(|&id| id != own.node_id && !answers.contains_key(&id))
        .collect();
    if !unreachable.is_empty() || !members.contains(&own.node_id) {
        // A node that is not an initial member (a scale-up) never founds: it waits for
        // a member of the cluster it is to join.
        return Decision::Wait { unreachable };
    }
    let mut founders = vec![own];
    founders.extend(answers.values().map(|state| Founder {
        node_id: state.node_id,
        incarnation: state.incarnation,
    }));
    Decision::Found(ClusterMembership::found(cluster_name, founders))
}

/// How a node without a cluster becomes a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// A member: it founded the cluster (or is a slow founder, and bootstraps the
    /// founders' configuration), or it has Raft state of it.
    Founded(ClusterMembership),
    /// It joins an existing cluster as a new incarnation (`crate::join`).
    Joining(ClusterMembership),
}

/// Probes the initial members until this node may found (or join as a founder) a
/// cluster or finds one to join, and returns which, saved in the data dir. Returns
/// `None` on shutdown.
pub async fn await_membership<S: Storage>(
    storage: &mut S,
    transport: &Transport,
    identity: &Identity,
    settings: &IdentitySettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Option<Joined>, StartupError> {
    assert!(identity.cluster.is_none(), "only a node without a cluster probes");
    let own = Founder {
        node_id: identity.node_id,
        incarnation: identity.incarnation,
    };
    let mut last_logged: Option<Instant> = None;
    loop {
        let mut answers = BTreeMap::new();
        for &peer in settings.members.iter().filter(|&&id| id != own.node_id) {
            match transport.probe(peer).await {
                Ok(state) => {
                    answers.insert(peer, state);
                }
                Err(error) => tracing::debug!(peer, %error, "probe failed"),
            }
        }
        match decide(own, &settings.cluster_name, &settings.members, &answers) {
            Decision::Found(membership) => {
                let identity = Identity {
                    cluster: Some(membership.clone()),
                    ..identity.clone()
                };
                storage.save_identity(&identity)?;
                warn!(
                    id = own.node_id,
                    cluster_id = %membership.cluster_id,
                    founders = ?membership.founder_ids(),
                    "founding a new cluster: every initial member answered and none had a cluster"
                );
                return Ok(Some(Joined::Founded(membership)));
            }
            Decision::ExistingCluster { membership, member } => {
                let cluster_id = membership.cluster_id;
                if membership.cluster_name != settings.cluster_name {
                    return Err(StartupError::Identity(IdentityError::OtherClusterName {
                        data_dir_name: membership.cluster_name,
                        cluster_id,
                        flag_name: settings.cluster_name.clone(),
                    }));
                }
                if let Some(expected) = settings
                    .expected_cluster_id
                    .filter(|&expected| expected != cluster_id)
                {
                    return Err(StartupError::Identity(IdentityError::OtherClusterId {
                        data_dir_cluster: cluster_id,
                        expected,
                    }));
                }
                // Recorded before any Raft state, so a restart knows which cluster this
                // incarnation was joining (`identity::check_data_dir`).
                let identity = Identity {
                    cluster: Some(membership.clone()),
                    ..identity.clone()
                };
                storage.save_identity(&identity)?;
                warn!(
                    id = own.node_id,
                    incarnation = format_args!("{:016x}", own.incarnation),
                    %cluster_id,
                    member,
                    "this data dir is empty and node {member} is a member of cluster {cluster_id}: joining it \
                     as a new incarnation (it votes and acknowledges nothing until the cluster has made it a \
                     member: old incarnation removed, this one added as a learner, promoted once caught up)"
                );
                return Ok(Some(Joined::Joining(membership)));
            }
            Decision::Wait { unreachable } => {
                if last_logged.is_none_or(|at| at.elapsed() >= WAITING_LOG_INTERVAL) {
                    last_logged = Some(Instant::now());
                    if settings.members.contains(&own.node_id) {
                        info!(
                            id = own.node_id,
                            ?unreachable,
                            "empty data dir: waiting for every initial member to answer before founding a cluster"
                        );
                    } else {
                        info!(
                            id = own.node_id,
                            seeds = ?settings.members,
                            "empty data dir and not an initial member: waiting for a member of a cluster to join"
                        );
                    }
                }
            }
        }
        tokio::select! {
            () = sleep(PROBE_ROUND_PAUSE) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(None),
        }
    }
}

impl Joined {
    pub fn membership(&self) -> &ClusterMembership {
        match self {
            Self::Founded(membership) | Self::Joining(membership) => membership,
        }
    }
}

/// The cluster this node is a member of, or is joining: from its data dir, or else by
/// probing the initial members (`await_membership`); the transport joins it. `None` on
/// shutdown.
pub async fn establish_membership<S: Storage>(
    storage: &mut S,
    identity: &Identity,
    transport: &Transport,
    settings: &IdentitySettings,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<Joined>, StartupError> {
    let joined = match &identity.cluster {
        Some(membership) => Joined::Founded(membership.clone()),
        None => match await_membership(storage, transport, identity, settings, shutdown).await? {
            Some(joined) => joined,
            None => return Ok(None),
        },
    };
    transport.join(joined.membership().clone());
    Ok(Some(joined))
}

/// A member's Raft node and state machine, ready for the driver.
#[derive(Debug)]
pub struct MemberStart {
    pub raft: Raft,
    pub machine: StateMachine,
    /// Whether this node must still be made a (voting) member (`crate::join`): a new
    /// incarnation joining, or an earlier join that did not finish (`join::must_join`).
    pub joining: bool,
}

/// The Raft node and state machine of a member: recovered; bootstrapped with the
/// founders' configuration by a founder that has no Raft state yet; or, for a node
/// joining an existing cluster, empty (it learns everything from the leader).
pub fn member_raft(
    raft_config: raft::Config,
    joined: &Joined,
    recovered: Option<Recovered>,
) -> Result<MemberStart, StartupError> {
    let own_id = raft_config.id;
    match (recovered, joined) {
        (Some(recovered), _) => {
            let raft = Raft::restart(raft_config, recovered.raft).map_err(StartupError::Raft)?;
            // A learner is a join that was not finished (raftkv keeps no learners for long).
            let joining = raft.conf_state().learners.contains(&own_id);
            Ok(MemberStart {
                raft,
                machine: StateMachine::new(recovered.sessions),
                joining,
            })
        }
        (None, Joined::Founded(membership)) => {
            let voters = membership.founder_ids();
            info!(id = own_id, ?voters, cluster_id = %membership.cluster_id, "bootstrapping as a founder");
            let raft =
                Raft::bootstrap(raft_config, ConfState::with_voters(voters)).map_err(StartupError::Raft)?;
            Ok(MemberStart {
                raft,
                machine: StateMachine::new([]),
                joining: false,
            })
        }
        (None, Joined::Joining(membership)) => {
            info!(id = own_id, cluster_id = %membership.cluster_id, "starting empty, to be made a member");
            let raft = Raft::join(raft_config).map_err(StartupError::Raft)?;
            Ok(MemberStart {
                raft,
                machine: StateMachine::new([]),
                joining: true,
            })
        }
    }
}

#[cfg(test)]
mod tests;
