//! A data dir's identity: which node it belongs to, which incarnation of that node, and
//! (once the node is a member) which cluster.
//!
//! Why: a lost or swapped data dir is the most common fault an operator causes on
//! Kubernetes (a lost PersistentVolume, a wrong `--data-dir`, an emptyDir). A blank disk
//! that bootstraps itself as a voter forgets its vote and the entries it acknowledged, and
//! an acknowledged write can be lost (Raft's safety rests on voters never forgetting). So
//! the identity is written before anything else, checked at every start, and carried in
//! every peer handshake; a fresh incarnation never counts as the old one.

use std::fmt;

use raft::NodeId;
use serde::{Deserialize, Serialize};

/// A cluster's id: made once, when the cluster is founded, from the founders' random
/// incarnations and the cluster name (see [`ClusterMembership::found`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId(pub u64);

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One founding member: its node id and the incarnation it had when the cluster formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Founder {
    pub node_id: NodeId,
    pub incarnation: u64,
}

/// The cluster a data dir belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMembership {
    pub cluster_id: ClusterId,
    pub cluster_name: String,
    /// The members that founded the cluster, in id order. A founder that restarts before
    /// its first Raft write finds itself here and bootstraps the same configuration; a
    /// node of the same id with another incarnation is not a founder.
    pub founders: Vec<Founder>,
}

impl ClusterMembership {
    /// The cluster `founders` form under `cluster_name`. Every founder computes the same
    /// id from the same inputs, so no extra round is needed to agree on it; the
    /// incarnations are random, so two clusters with the same members get different ids.
    pub fn found(cluster_name: &str, mut founders: Vec<Founder>) -> Self {
        founders.sort();
        founders.dedup();
        assert!(!founders.is_empty(), "a cluster has at least one founder");
        let mut hash = mix(0x5241_4654_4b56_4944); // "RAFTKVID"
        for byte in cluster_name.bytes() {
            hash = mix(hash ^ u64::from(byte));
        }
        for founder in &founders {
            hash = mix(hash ^ founder.node_id);
            hash = mix(hash ^ founder.incarnation);
        }
        Self {
            cluster_id: ClusterId(hash),
            cluster_name: cluster_name.to_string(),
            founders,
        }
    }

    /// Whether `node_id` in `incarnation` is one of the founders.
    pub fn is_founder(&self, node_id: NodeId, incarnation: u64) -> bool {
        self.founders
            .iter()
            .any(|founder| founder.node_id == node_id && founder.incarnation == incarnation)
    }

    /// The founders' ids: the first configuration's voters.
    pub fn founder_ids(&self) -> Vec<NodeId> {
        self.founders.iter().map(|founder| founder.node_id).collect()
    }
}

/// SplitMix64's finaliser: a fixed, platform-independent mixing step (the id is stored
/// and compared across versions, so it must not depend on std's hasher).
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a data dir records about itself. Written, synced, before any Raft state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: NodeId,
    /// Random, new for every fresh data dir: tells a wiped node from the one it replaces.
    pub incarnation: u64,
    /// `None` until the node founded or joined a cluster.
    pub cluster: Option<ClusterMembership>,
}

/// Why a data dir may not be used by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    OtherNode {
        data_dir_node_id: NodeId,
        data_dir_cluster: Option<ClusterId>,
        own_id: NodeId,
    },
    OtherClusterName {
        data_dir_name: String,
        cluster_id: ClusterId,
        flag_name: String,
    },
    OtherClusterId {
        data_dir_cluster: ClusterId,
        expected: ClusterId,
    },
    /// Raft state without an identity: written by a raftkv from before identities, or
    /// an identity lost while the rest survived. Either way we cannot tell whose it is.
    StateWithoutIdentity,
    /// An identity that is not yet a member, with Raft state: cannot happen unless the
    /// files were mixed by hand.
    StateWithoutCluster { incarnation: u64 },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherNode {
                data_dir_node_id,
                data_dir_cluster,
                own_id,
            } => {
                let cluster =
                    data_dir_cluster.map_or("no cluster yet".to_string(), |id| format!("cluster {id}"));
                write!(
                    f,
                    "refusing the data dir: it belongs to node {data_dir_node_id} ({cluster}), \
                     but this is node {own_id}"
                )
            }
            Self::OtherClusterName {
                data_dir_name,
                cluster_id,
                flag_name,
            } => write!(
                f,
                "refusing the data dir: it belongs to cluster {data_dir_name:?} (id {cluster_id}), \
                 but --cluster-name is {flag_name:?}"
            ),
            Self::OtherClusterId {
                data_dir_cluster,
                expected,
            } => write!(
                f,
                "refusing the data dir: it belongs to cluster {data_dir_cluster}, \
                 but --expect-cluster-id is {expected}"
            ),
            Self::StateWithoutIdentity => write!(
                f,
                "refusing the data dir: it holds Raft state but no identity record \
                 (written by a raftkv without identities, or damaged); move it aside to start empty"
            ),
            Self::StateWithoutCluster { incarnation } => write!(
                f,
                "refusing the data dir: incarnation {incarnation:016x} holds Raft state but never \
                 became a cluster member"
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// What start-up does with a data dir, decided by [`check_data_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPlan {
    /// A member with Raft state: recover it.
    Recover(Identity),
    /// A founder that crashed before its first Raft write: bootstrap the founders'
    /// configuration again (this incarnation never voted nor acknowledged anything).
    Refound(Identity),
    /// Not a member of any cluster: probe the peers before doing anything else
    /// ([`crate::bootstrap`]). `identity` is new (and must be saved first) or a restart
    /// of an earlier probe.
    Probe { identity: Identity, is_new: bool },
}

/// Checks a data dir's identity against this node's settings. `stored` is the identity
/// on disk, `has_raft_state` whether any Raft state is there; `new_incarnation` is used
/// only for a data dir without an identity.
pub fn check_data_dir(
    stored: Option<Identity>,
    has_raft_state: bool,
    own_id: NodeId,
    cluster_name: &str,
    expected_cluster_id: Option<ClusterId>,
    new_incarnation: u64,
) -> Result<StartPlan, IdentityError> {
    let Some(identity) = stored else {
        if has_raft_state {
            return Err(IdentityError::StateWithoutIdentity);
        }
        let identity = Identity {
            node_id: own_id,
            incarnation: new_incarnation,
            cluster: None,
        };
        return Ok(StartPlan::Probe {
            identity,
            is_new: true,
        });
    };
    if identity.node_id != own_id {
        return Err(IdentityError::OtherNode {
            data_dir_node_id: identity.node_id,
            data_dir_cluster: identity.cluster.as_ref().map(|cluster| cluster.cluster_id),
            own_id,
        });
    }
    let Some(cluster) = &identity.cluster else {
        if has_raft_state {
            return Err(IdentityError::StateWithoutCluster {
                incarnation: identity.incarnation,
            });
        }
        return Ok(StartPlan::Probe {
            identity,
            is_new: false,
        });
    };
    if cluster.cluster_name != cluster_name {
        return Err(IdentityError::OtherClusterName {
            data_dir_name: cluster.cluster_name.clone(),
            cluster_id: cluster.cluster_id,
            flag_name: cluster_name.to_string(),
        });
    }
    if let Some(expected) = expected_cluster_id.filter(|expected| *expected != cluster.cluster_id) {
        return Err(IdentityError::OtherClusterId {
            data_dir_cluster: cluster.cluster_id,
            expected,
        });
    }
    if has_raft_state {
        Ok(StartPlan::Recover(identity))
    } else if cluster.is_founder(identity.node_id, identity.incarnation) {
        Ok(StartPlan::Refound(identity))
    } else {
        // A join that crashed before its first Raft state (or Raft state lost while the
        // identity survived). This incarnation may already be a member, so it must not
        // come back blank under the same incarnation: it starts over as a new one, which
        // the cluster cannot mistake for the member (the join removes the old one).
        Ok(StartPlan::Probe {
            identity: Identity {
                node_id: own_id,
                incarnation: new_incarnation,
                cluster: None,
            },
            is_new: true,
        })
    }
}

#[cfg(test)]
mod tests;
