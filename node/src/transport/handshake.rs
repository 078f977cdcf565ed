//! The first frame on every peer connection, and the acceptor's decision about it, with no
//! I/O so it can be tested and fuzzed directly.
//!
//! The dialer sends a [`Handshake`]; the acceptor answers [`HandshakeReply::Accepted`] and
//! then only reads Raft messages, or [`HandshakeReply::Refused`] and closes. A handshake
//! with `probe` set asks only for the acceptor's [`PeerState`] (who it is, which
//! incarnation, which cluster if any), answered with [`HandshakeReply::Probed`] before the
//! acceptor closes: that is how a node with an empty data dir learns whether a cluster
//! exists before it does anything (`crate::bootstrap`).
//!
//! Checking the cluster name and id stops a node with a wrong peer list (say, a DNS name
//! reused by another deployment) from joining our elections; checking the node id stops
//! a stranger from speaking for a peer it is not (until mutual TLS binds ids to
//! certificates, a peer's claim is trusted); a node that is not a member of the cluster
//! yet (a wiped data dir) can neither send nor receive Raft messages.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::{ClusterId, ClusterMembership};
use crate::membership::PeerEntry;

/// The peer protocol's version. Bump it on any change to the handshake or to
/// `raft::Message`'s encoding: postcard is not self-describing, so two versions cannot read
/// each other's messages. A handshake of another version is refused if it still decodes,
/// and closed as malformed if it does not; either way nothing of it reaches Raft.
/// Version 2: cluster name, cluster id, incarnation and probes. Version 3: probes from
/// any node id (a node joining an existing cluster is nobody's peer yet), the prober's
/// client address in the answer, and member incarnations checked. Version 4: snapshot
/// chunks carry `data_bytes_max`, and a snapshot's image streams (issue 12).
pub const PROTOCOL_VERSION: u16 = 4;

/// The dialer's introduction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    pub protocol_version: u16,
    pub cluster_name: String,
    /// `None` from a node that is not a member of any cluster yet: it may only probe.
    pub cluster_id: Option<ClusterId>,
    pub node_id: u64,
    /// The dialer's data dir incarnation (`crate::identity`).
    pub incarnation: u64,
    /// The dialer's client address, for redirects.
    pub client_address: String,
    /// Asks for the acceptor's [`PeerState`] only; no Raft message follows.
    pub probe: bool,
}

/// Who a node is, as a probe's answer tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    pub node_id: u64,
    pub incarnation: u64,
    /// The cluster it is a member of, `None` while it has none (an empty data dir).
    pub membership: Option<ClusterMembership>,
    /// Where it serves clients: where a joining node asks the cluster to add it.
    pub client_address: String,
}

/// The acceptor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeReply {
    /// The connection now carries the dialer's Raft messages.
    Accepted { node_id: u64, client_address: String },
    /// The acceptor closes the connection after this frame. `reason` is for logs only.
    Refused { reason: String },
    /// The answer to a probe; the acceptor closes the connection after it.
    Probed(PeerState),
}

/// What an accepted handshake asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    RaftMessages,
    /// A member id under another incarnation than the one this node's configuration
    /// names: a wiped or replaced disk that has not been made a member again, or the
    /// member's new incarnation whose record this node has not applied yet (it lags). Only
    /// a leader's messages (appends, heartbeats, snapshots, TimeoutNow, read-index
    /// answers) and a candidate's vote requests pass; votes and acknowledgements are
    /// dropped, so such a node is never counted as the member here.
    ///
    /// Why that is safe: a leader needs the votes of a majority, and every voter counts
    /// only the incarnation it knows as the member; a blank disk that no configuration
    /// names can win no election, so whoever sends a leader's messages under an unknown
    /// incarnation was elected by voters that know it. A vote request counts toward
    /// nothing: the voter grants it by its own vote and log (§5.4.1: an empty or stale log
    /// is never up to date), and its grant is counted by the candidate only if the
    /// candidate knows the voter's incarnation.
    ///
    /// Why it is needed: refusing it outright left a lagging node unable to hear a leader
    /// that replaced its own disk, for good (the simulation found it). Dropping vote
    /// requests too left a cluster with no leader for good (simulation seed 2 of
    /// 20261205): the member with the newest log had replaced its disk, and a voter whose
    /// log predates that change (so it knows only the old incarnation) was needed for a
    /// majority but never heard its requests.
    Unverified,
    Probe,
}

/// Whether a message from a peer under an unverified incarnation may pass (see
/// [`Accepted::Unverified`]).
pub(crate) fn passes_unverified(body: &raft::MessageBody) -> bool {
    use raft::MessageBody as Body;
    match body {
        Body::Append(_)
        | Body::Heartbeat(_)
        | Body::InstallSnapshot(_)
        | Body::TimeoutNow
        | Body::ReadIndexResponse(_)
        | Body::PreVote(_)
        | Body::Vote(_) => true,
        Body::PreVoteResponse(_)
        | Body::VoteResponse(_)
        | Body::AppendResponse(_)
        | Body::HeartbeatResponse(_)
        | Body::InstallSnapshotResponse(_)
        | Body::ReadIndex(_) => false,
    }
}

/// Why the acceptor refuses a handshake. The text names both nodes rather than saying
/// "peer" and "this node", because the dialer logs the same text from the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    ProtocolVersion {
        dialer_id: u64,
        dialer_version: u16,
        acceptor_id: u64,
        acceptor_version: u16,
    },
    OtherClusterName {
        dialer_id: u64,
        dialer_cluster_name: String,
        acceptor_id: u64,
        acceptor_cluster_name: String,
    },
    OtherClusterId {
        dialer_id: u64,
        dialer_cluster_id: ClusterId,
        acceptor_id: u64,
        acceptor_cluster_id: ClusterId,
    },
    /// One side is not a member of any cluster yet (an empty or wiped data dir): no Raft
    /// message may pass until it has been made a member.
    NotAMember {
        node_id: u64,
        incarnation: u64,
    },
    /// The dialer claims to be the acceptor.
    UnknownNode {
        dialer_id: u64,
        acceptor_id: u64,
    },
    ClientAddressTooLong {
        dialer_id: u64,
        bytes: usize,
    },
    /// The dialer's TLS certificate does not name the node id it claims (issue 11: a
    /// node id is bound to its certificate).
    CertificateMismatch {
        dialer_id: u64,
        /// The first name the certificate does carry, if any.
        certificate_name: Option<String>,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProtocolVersion {
                dialer_id,
                dialer_version,
                acceptor_id,
                acceptor_version,
            } => write!(
                f,
                "node {dialer_id} speaks peer protocol version {dialer_version} \
                 but node {acceptor_id} speaks version {acceptor_version}"
            ),
            Self::OtherClusterName {
                dialer_id,
                dialer_cluster_name,
                acceptor_id,
                acceptor_cluster_name,
            } => write!(
                f,
                "node {dialer_id} belongs to cluster {dialer_cluster_name:?} \
                 but node {acceptor_id} belongs to cluster {acceptor_cluster_name:?}"
            ),
            Self::OtherClusterId {
                dialer_id,
                dialer_cluster_id,
                acceptor_id,
                acceptor_cluster_id,
            } => write!(
                f,
                "node {dialer_id} belongs to cluster id {dialer_cluster_id} \
                 but node {acceptor_id} belongs to cluster id {acceptor_cluster_id}"
            ),
            Self::NotAMember { node_id, incarnation } => write!(
                f,
                "node {node_id} (incarnation {incarnation:016x}) is not a member of any cluster yet \
                 (a new or wiped data dir): no Raft messages until it is made one"
            ),
            Self::UnknownNode {
                dialer_id,
                acceptor_id,
            } => {
                write!(f, "node {dialer_id} claims the id of node {acceptor_id} itself")
            }
            Self::ClientAddressTooLong { dialer_id, bytes } => write!(
                f,
                "node {dialer_id} announced a client address of {bytes} bytes, \
                 over the {CLIENT_ADDRESS_BYTES_MAX}-byte limit"
            ),
            Self::CertificateMismatch {
                dialer_id,
                certificate_name,
            } => write!(
                f,
                "a peer claims to be node {dialer_id} but its certificate ({}) does not name {}",
                certificate_name.as_deref().unwrap_or("no certificate"),
                wire::tls::node_name(*dialer_id)
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Longest client address accepted from a peer: a DNS name (253 bytes) and `:65535`. The
/// address is stored and handed to clients, so a peer must not make it arbitrarily big.
pub(super) const CLIENT_ADDRESS_BYTES_MAX: usize = 253 + 6;

/// Longest cluster name quoted back in a refusal, so a hostile peer cannot fill our logs.
const QUOTED_CLUSTER_NAME_CHARS_MAX: usize = 64;

/// What the acceptor checks a handshake against.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    pub(crate) own_id: u64,
    pub(crate) own_incarnation: u64,
    pub(crate) cluster_name: &'a str,
    /// `None` while this node is not a member of any cluster.
    pub(crate) cluster_id: Option<ClusterId>,
    pub(crate) peers: BTreeMap<u64, PeerEntry>,
}

/// Decides whether to accept `handshake`, and for what. The version is checked first:
/// under another version the remaining fields may not mean what we think.
pub(crate) fn check_handshake(handshake: &Handshake, expected: &Expected<'_>) -> Result<Accepted, Refusal> {
    let dialer_id = handshake.node_id;
    let acceptor_id = expected.own_id;
    if handshake.protocol_version != PROTOCOL_VERSION {
        return Err(Refusal::ProtocolVersion {
            dialer_id,
            dialer_version: handshake.protocol_version,
            acceptor_id,
            acceptor_version: PROTOCOL_VERSION,
        });
    }
    if handshake.cluster_name != expected.cluster_name {
        return Err(Refusal::OtherClusterName {
            dialer_id,
            dialer_cluster_name: handshake
                .cluster_name
                .chars()
                .take(QUOTED_CLUSTER_NAME_CHARS_MAX)
                .collect(),
            acceptor_id,
            acceptor_cluster_name: expected.cluster_name.to_string(),
        });
    }
    if handshake.client_address.len() > CLIENT_ADDRESS_BYTES_MAX {
        return Err(Refusal::ClientAddressTooLong {
            dialer_id,
            bytes: handshake.client_address.len(),
        });
    }
    // A probe learns only who we are; a node about to join is nobody's peer yet.
    if handshake.probe && dialer_id != acceptor_id {
        return Ok(Accepted::Probe);
    }
    if dialer_id == acceptor_id {
        return Err(Refusal::UnknownNode {
            dialer_id,
            acceptor_id,
        });
    }
    // A node of our cluster that this node does not know (yet) is treated like an unknown
    // incarnation: only a leader's messages and vote requests pass. A node replaying the log may hold a
    // configuration that predates the current leader (the simulation found one stuck).
    let verified = expected.peers.get(&dialer_id).is_some_and(|peer| {
        peer.incarnation
            .is_none_or(|member| member == handshake.incarnation)
    });
    match (handshake.cluster_id, expected.cluster_id) {
        (Some(dialer_cluster_id), Some(acceptor_cluster_id)) if dialer_cluster_id == acceptor_cluster_id => {
            Ok(if verified {
                Accepted::RaftMessages
            } else {
                Accepted::Unverified
            })
        }
        (Some(dialer_cluster_id), Some(acceptor_cluster_id)) => Err(Refusal::OtherClusterId {
            dialer_id,
            dialer_cluster_id,
            acceptor_id,
            acceptor_cluster_id,
        }),
        (_, None) => Err(Refusal::NotAMember {
            node_id: acceptor_id,
            incarnation: expected.own_incarnation,
        }),
        (None, Some(_)) => Err(Refusal::NotAMember {
            node_id: dialer_id,
            incarnation: handshake.incarnation,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLUE: ClusterId = ClusterId(0xb1);

    fn handshake(node_id: u64) -> Handshake {
        Handshake {
            protocol_version: PROTOCOL_VERSION,
            cluster_name: "blue".to_string(),
            cluster_id: Some(BLUE),
            node_id,
            incarnation: 7,
            client_address: "10.0.0.2:7000".to_string(),
            probe: false,
        }
    }

    fn expected(peers: &[u64], cluster_id: Option<ClusterId>) -> Expected<'static> {
        let peers = peers
            .iter()
            .map(|&id| {
                let entry = PeerEntry {
                    address: Some(format!("n{id}:1")),
                    incarnation: None,
                };
                (id, entry)
            })
            .collect();
        Expected {
            own_id: 1,
            own_incarnation: 5,
            cluster_name: "blue",
            cluster_id,
            peers,
        }
    }

    #[test]
    fn accepts_a_configured_peer_and_refuses_everything_else() {
        let expected = expected(&[1, 2], Some(BLUE));
        assert_eq!(
            check_handshake(&handshake(2), &expected),
            Ok(Accepted::RaftMessages)
        );

        let mut old = handshake(2);
        old.protocol_version = PROTOCOL_VERSION + 1;
        assert!(matches!(
            check_handshake(&old, &expected),
            Err(Refusal::ProtocolVersion { .. })
        ));

        let mut green = handshake(2);
        green.cluster_name = "green".to_string();
        let refusal = check_handshake(&green, &expected).expect_err("other cluster");
        assert_eq!(
            refusal.to_string(),
            "node 2 belongs to cluster \"green\" but node 1 belongs to cluster \"blue\""
        );

        let mut other_id = handshake(2);
        other_id.cluster_id = Some(ClusterId(0xc2));
        let text = check_handshake(&other_id, &expected)
            .expect_err("other id")
            .to_string();
        assert!(
            text.contains("00000000000000c2") && text.contains("00000000000000b1"),
            "{text}"
        );

        assert_eq!(
            check_handshake(&handshake(1), &expected),
            Err(Refusal::UnknownNode {
                dialer_id: 1,
                acceptor_id: 1
            }),
            "a peer claiming our own id"
        );
        assert_eq!(
            check_handshake(&handshake(9), &expected),
            Ok(Accepted::Unverified),
            "a node of our cluster we do not know yet may only lead"
        );

        let mut bloated = handshake(2);
        bloated.client_address = "x".repeat(CLIENT_ADDRESS_BYTES_MAX + 1);
        assert!(matches!(
            check_handshake(&bloated, &expected),
            Err(Refusal::ClientAddressTooLong { .. })
        ));
        let mut hostile = handshake(2);
        hostile.cluster_name = "y".repeat(10_000);
        let text = check_handshake(&hostile, &expected)
            .expect_err("other cluster")
            .to_string();
        assert!(text.len() < 200, "quoted name is truncated: {} bytes", text.len());
    }

    #[test]
    fn a_node_without_a_cluster_may_probe_but_never_carry_raft_messages() {
        let peers = [2];
        let mut pending_dialer = handshake(2);
        pending_dialer.cluster_id = None;
        assert_eq!(
            check_handshake(&pending_dialer, &expected(&peers, Some(BLUE))),
            Err(Refusal::NotAMember {
                node_id: 2,
                incarnation: 7
            })
        );
        let refusal = check_handshake(&handshake(2), &expected(&peers, None)).expect_err("pending acceptor");
        assert_eq!(
            refusal,
            Refusal::NotAMember {
                node_id: 1,
                incarnation: 5
            }
        );
        assert!(refusal.to_string().contains("not a member"), "{refusal}");
        pending_dialer.probe = true;
        assert_eq!(
            check_handshake(&pending_dialer, &expected(&peers, None)),
            Ok(Accepted::Probe)
        );
        // A node that is nobody's peer yet (a scale-up joining) may probe, but not speak.
        let mut stranger_probe = pending_dialer.clone();
        stranger_probe.node_id = 9;
        assert_eq!(
            check_handshake(&stranger_probe, &expected(&peers, None)),
            Ok(Accepted::Probe)
        );
        stranger_probe.probe = false;
        stranger_probe.cluster_id = Some(BLUE);
        assert_eq!(
            check_handshake(&stranger_probe, &expected(&peers, Some(BLUE))),
            Ok(Accepted::Unverified)
        );
    }

    #[test]
    fn a_member_id_under_another_incarnation_may_only_carry_a_leaders_messages() {
        // Node 2's data dir was wiped: it comes back as a new incarnation, which must not
        // vote or acknowledge as the member until the cluster made it one again.
        let mut expected = expected(&[2], Some(BLUE));
        expected.peers.get_mut(&2).expect("peer").incarnation = Some(7);
        assert_eq!(
            check_handshake(&handshake(2), &expected),
            Ok(Accepted::RaftMessages)
        );
        let mut wiped = handshake(2);
        wiped.incarnation = 8;
        assert_eq!(check_handshake(&wiped, &expected), Ok(Accepted::Unverified));
        wiped.probe = true;
        assert_eq!(
            check_handshake(&wiped, &expected),
            Ok(Accepted::Probe),
            "probes still answer"
        );
        let vote = raft::MessageBody::VoteResponse(raft::VoteResponse { granted: true });
        let heartbeat = raft::MessageBody::Heartbeat(raft::Heartbeat {
            leader_commit: 0,
            read_round: 0,
        });
        assert!(!passes_unverified(&vote), "a vote never passes");
        let pre_vote = raft::MessageBody::PreVoteResponse(raft::VoteResponse { granted: true });
        assert!(!passes_unverified(&pre_vote), "a pre-vote never passes");
        assert!(passes_unverified(&heartbeat));
        let request = raft::VoteRequest {
            last_log_index: 9,
            last_log_term: 2,
            leadership_transfer: false,
        };
        assert!(
            passes_unverified(&raft::MessageBody::Vote(request))
                && passes_unverified(&raft::MessageBody::PreVote(request)),
            "a candidate's requests pass: the voter decides by its own log"
        );
    }
}
