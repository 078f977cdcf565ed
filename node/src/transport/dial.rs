//! Opening an outbound peer connection: connect, introduce ourselves, and make sure the
//! node that answers is the one we meant to reach.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::warn;
use wire::connection::{Connection, ConnectionError};
use wire::tls::{node_name, server_name, Stream};

use super::handshake::{Handshake, HandshakeReply, PeerState, CLIENT_ADDRESS_BYTES_MAX, PROTOCOL_VERSION};
use super::shared::Shared;

/// Bound on TCP connect: a blackholed address (a deleted pod's IP) would otherwise hang
/// for the kernel's SYN retry time, about two minutes, while messages pile up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each side's handshake, so a silent or stuck peer cannot hold a connection.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest refusal reason quoted in our logs: the text comes from the peer.
const QUOTED_REASON_CHARS_MAX: usize = 256;

/// Why an outbound connection could not be opened.
#[derive(Debug)]
pub(super) enum DialError {
    Connect(io::Error),
    ConnectTimeout,
    Handshake(ConnectionError),
    HandshakeTimeout,
    /// The peer closed the connection instead of answering.
    ClosedDuringHandshake,
    Refused {
        reason: String,
    },
    /// Another node answers at the peer's address (stale DNS, swapped addresses).
    WrongNode {
        found: u64,
    },
    /// A reply of the wrong kind (a probe answered as a Raft connection, or the reverse).
    UnexpectedReply,
    /// The TLS handshake failed: the peer's certificate does not name the node we meant
    /// to reach, comes from another authority, has expired, or the peer refused ours.
    Tls(io::Error),
}

impl DialError {
    /// A refusal or a wrong node is a configuration problem worth a warning on every try;
    /// the rest is the normal life of a peer that is down.
    pub(super) fn is_misconfiguration(&self) -> bool {
        matches!(
            self,
            Self::Refused { .. } | Self::WrongNode { .. } | Self::UnexpectedReply | Self::Tls(_)
        )
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "connect failed: {error}"),
            Self::ConnectTimeout => write!(f, "connect timed out after {CONNECT_TIMEOUT:?}"),
            Self::Handshake(error) => write!(f, "handshake failed: {error}"),
            Self::HandshakeTimeout => write!(f, "no handshake reply within {HANDSHAKE_TIMEOUT:?}"),
            Self::ClosedDuringHandshake => write!(f, "peer closed the connection during the handshake"),
            Self::Refused { reason } => write!(f, "peer refused our handshake: {reason}"),
            Self::WrongNode { found } => write!(f, "node {found} answered at this peer's address"),
            Self::UnexpectedReply => write!(f, "peer answered with a reply of the wrong kind"),
            Self::Tls(error) => write!(f, "TLS handshake failed: {error}"),
        }
    }
}

impl std::error::Error for DialError {}

/// Connects to `address`, which should host peer `peer_id`, and completes the handshake.
/// The returned connection is ready for Raft message frames.
pub(super) async fn dial(
    shared: &Shared,
    peer_id: u64,
    address: &str,
) -> Result<Connection<Stream>, DialError> {
    let (connection, reply) = introduce(shared, peer_id, address, false).await?;
    match reply {
        HandshakeReply::Refused { reason } => Err(refused(&reason)),
        HandshakeReply::Accepted { node_id, .. } if node_id != peer_id => {
            Err(DialError::WrongNode { found: node_id })
        }
        HandshakeReply::Accepted { client_address, .. } => {
            if client_address.len() <= CLIENT_ADDRESS_BYTES_MAX {
                shared.record_client_address(peer_id, &client_address);
            } else {
                warn!(
                    bytes = client_address.len(),
                    "peer announced an oversized client address; not using it for redirects"
                );
            }
            Ok(connection)
        }
        HandshakeReply::Probed(_) => Err(DialError::UnexpectedReply),
    }
}

/// Asks the node at `address`, which should be peer `peer_id`, who it is; the
/// connection is closed after its answer.
pub(super) async fn probe(shared: &Shared, peer_id: u64, address: &str) -> Result<PeerState, DialError> {
    let (_connection, reply) = introduce(shared, peer_id, address, true).await?;
    match reply {
        HandshakeReply::Refused { reason } => Err(refused(&reason)),
        HandshakeReply::Probed(state) if state.node_id != peer_id => {
            Err(DialError::WrongNode { found: state.node_id })
        }
        HandshakeReply::Probed(state) => Ok(state),
        HandshakeReply::Accepted { .. } => Err(DialError::UnexpectedReply),
    }
}

fn refused(reason: &str) -> DialError {
    DialError::Refused {
        reason: reason.chars().take(QUOTED_REASON_CHARS_MAX).collect(),
    }
}

/// Connects, sends our handshake and reads the acceptor's reply.
async fn introduce(
    shared: &Shared,
    peer_id: u64,
    address: &str,
    probe: bool,
) -> Result<(Connection<Stream>, HandshakeReply), DialError> {
    // Resolved on every attempt, so a rescheduled pod's new IP is found.
    let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Err(_elapsed) => return Err(DialError::ConnectTimeout),
        Ok(Err(error)) => return Err(DialError::Connect(error)),
        Ok(Ok(stream)) => stream,
    };
    // Raft's small messages (heartbeats, votes) must not wait for Nagle's algorithm.
    if let Err(error) = stream.set_nodelay(true) {
        warn!(%error, "could not disable Nagle's algorithm on a peer connection");
    }
    let stream = match &shared.tls {
        None => Stream::Plain(stream),
        Some(tls) => {
            // The certificate must name the node we mean to reach, whatever its address.
            let name =
                server_name(&node_name(peer_id)).map_err(|error| DialError::Tls(io::Error::other(error)))?;
            let connector = tokio_rustls::TlsConnector::from(tls.client());
            match timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream)).await {
                Err(_elapsed) => return Err(DialError::HandshakeTimeout),
                Ok(Err(error)) => return Err(DialError::Tls(error)),
                Ok(Ok(stream)) => Stream::from(stream),
            }
        }
    };
    let mut connection = Connection::new(stream);
    let handshake = Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_name: shared.cluster_name.clone(),
        cluster_id: shared.cluster_id(),
        node_id: shared.own_id,
        incarnation: shared.incarnation,
        client_address: shared.advertised_client_address.clone(),
        probe,
    };
    let exchange = async {
        connection.write_frame(&handshake).await?;
        connection.read_frame::<HandshakeReply>().await
    };
    match timeout(HANDSHAKE_TIMEOUT, exchange).await {
        Err(_elapsed) => Err(DialError::HandshakeTimeout),
        Ok(Err(error)) => Err(DialError::Handshake(error)),
        Ok(Ok(None)) => Err(DialError::ClosedDuringHandshake),
        Ok(Ok(Some(reply))) => Ok((connection, reply)),
    }
}
