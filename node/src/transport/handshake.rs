//! The first frame on every peer connection, and the acceptor's decision about it, with no
//! I/O so it can be tested and fuzzed directly.
//!
//! The dialer sends a [`Handshake`]; the acceptor answers [`HandshakeReply::Accepted`] and
//! then only reads Raft messages, or [`HandshakeReply::Refused`] and closes. Checking the
//! cluster id stops a node with a wrong peer list (say, a DNS name reused by another
//! deployment) from joining our elections; checking the node id stops a stranger from
//! speaking for a peer it is not.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The peer protocol's version. Bump it on any change to the handshake or to
/// `raft::Message`'s encoding: postcard is not self-describing, so two versions cannot read
/// each other's messages. A handshake of another version is refused if it still decodes,
/// and closed as malformed if it does not; either way nothing of it reaches Raft.
pub const PROTOCOL_VERSION: u16 = 1;

/// The dialer's introduction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    pub protocol_version: u16,
    pub cluster_id: String,
    pub node_id: u64,
    /// The dialer's client address, for redirects.
    pub client_address: String,
}

/// The acceptor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeReply {
    /// The connection now carries the dialer's Raft messages.
    Accepted { node_id: u64, client_address: String },
    /// The acceptor closes the connection after this frame. `reason` is for logs only.
    Refused { reason: String },
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
    OtherCluster {
        dialer_id: u64,
        dialer_cluster_id: String,
        acceptor_id: u64,
        acceptor_cluster_id: String,
    },
    /// The dialer claims to be the acceptor, or a node that is not the acceptor's peer.
    UnknownNode {
        dialer_id: u64,
        acceptor_id: u64,
    },
    ClientAddressTooLong {
        dialer_id: u64,
        bytes: usize,
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
            Self::OtherCluster {
                dialer_id,
                dialer_cluster_id,
                acceptor_id,
                acceptor_cluster_id,
            } => write!(
                f,
                "node {dialer_id} belongs to cluster {dialer_cluster_id:?} \
                 but node {acceptor_id} belongs to cluster {acceptor_cluster_id:?}"
            ),
            Self::UnknownNode {
                dialer_id,
                acceptor_id,
            } => {
                write!(
                    f,
                    "node {dialer_id} is not a configured peer of node {acceptor_id}"
                )
            }
            Self::ClientAddressTooLong { dialer_id, bytes } => write!(
                f,
                "node {dialer_id} announced a client address of {bytes} bytes, \
                 over the {CLIENT_ADDRESS_BYTES_MAX}-byte limit"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Longest client address accepted from a peer: a DNS name (253 bytes) and `:65535`. The
/// address is stored and handed to clients, so a peer must not make it arbitrarily big.
pub(super) const CLIENT_ADDRESS_BYTES_MAX: usize = 253 + 6;

/// Longest cluster id quoted back in a refusal, so a hostile peer cannot fill our logs.
const QUOTED_CLUSTER_ID_CHARS_MAX: usize = 64;

/// What the acceptor checks a handshake against.
#[derive(Debug)]
pub(super) struct Expected<'a> {
    pub(super) own_id: u64,
    pub(super) cluster_id: &'a str,
    pub(super) peers: &'a BTreeMap<u64, String>,
}

/// Decides whether to accept `handshake`. The version is checked first: under another
/// version the remaining fields may not mean what we think.
pub(super) fn check_handshake(handshake: &Handshake, expected: &Expected<'_>) -> Result<(), Refusal> {
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
    if handshake.cluster_id != expected.cluster_id {
        return Err(Refusal::OtherCluster {
            dialer_id,
            dialer_cluster_id: handshake
                .cluster_id
                .chars()
                .take(QUOTED_CLUSTER_ID_CHARS_MAX)
                .collect(),
            acceptor_id,
            acceptor_cluster_id: expected.cluster_id.to_string(),
        });
    }
    if dialer_id == acceptor_id || !expected.peers.contains_key(&dialer_id) {
        return Err(Refusal::UnknownNode {
            dialer_id,
            acceptor_id,
        });
    }
    if handshake.client_address.len() > CLIENT_ADDRESS_BYTES_MAX {
        return Err(Refusal::ClientAddressTooLong {
            dialer_id,
            bytes: handshake.client_address.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(node_id: u64) -> Handshake {
        Handshake {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: "blue".to_string(),
            node_id,
            client_address: "10.0.0.2:7000".to_string(),
        }
    }

    #[test]
    fn accepts_a_configured_peer_and_refuses_everything_else() {
        let peers = BTreeMap::from([(1, "a:1".to_string()), (2, "b:1".to_string())]);
        let expected = Expected {
            own_id: 1,
            cluster_id: "blue",
            peers: &peers,
        };
        assert_eq!(check_handshake(&handshake(2), &expected), Ok(()));

        let mut old = handshake(2);
        old.protocol_version = PROTOCOL_VERSION + 1;
        assert!(matches!(
            check_handshake(&old, &expected),
            Err(Refusal::ProtocolVersion { .. })
        ));

        let mut green = handshake(2);
        green.cluster_id = "green".to_string();
        let refusal = check_handshake(&green, &expected).expect_err("other cluster");
        assert_eq!(
            refusal.to_string(),
            "node 2 belongs to cluster \"green\" but node 1 belongs to cluster \"blue\""
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
            Err(Refusal::UnknownNode {
                dialer_id: 9,
                acceptor_id: 1
            })
        );

        let mut bloated = handshake(2);
        bloated.client_address = "x".repeat(CLIENT_ADDRESS_BYTES_MAX + 1);
        assert!(matches!(
            check_handshake(&bloated, &expected),
            Err(Refusal::ClientAddressTooLong { .. })
        ));
        let mut hostile = handshake(2);
        hostile.cluster_id = "y".repeat(10_000);
        let text = check_handshake(&hostile, &expected)
            .expect_err("other cluster")
            .to_string();
        assert!(text.len() < 200, "quoted id is truncated: {} bytes", text.len());
    }
}
