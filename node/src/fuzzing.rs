//! Entry points for the fuzz targets in `fuzz/` (see fuzz/README.md): thin wrappers that
//! run the node's own decoders and checks, private to their modules, on arbitrary bytes.
//! Not an API: nothing but the fuzz targets calls them, and each does only what the
//! real read path does with the same bytes.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wire::frame::{parse_frame, FrameError};

use crate::identity::ClusterId;
use crate::membership::PeerEntry;
use crate::storage::{fjall_codec, StorageError};
use crate::transport::handshake::{check_handshake, passes_unverified, Accepted, Expected};
use crate::transport::peer_frame::check_routing;
use crate::transport::{Handshake, Refusal};

/// What the acceptor checks a handshake against (the transport's `Expected`, owned).
#[derive(Debug, Clone)]
pub struct ExpectedHandshake {
    pub own_id: u64,
    pub own_incarnation: u64,
    pub cluster_name: String,
    pub cluster_id: Option<ClusterId>,
    pub peers: BTreeMap<u64, PeerEntry>,
}

/// What an accepted handshake lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptedAs {
    RaftMessages,
    Unverified,
    Probe,
}

/// The acceptor's decision on one handshake frame.
pub type HandshakeVerdict = Result<AcceptedAs, Refusal>;

/// Reads the first frame of an inbound peer connection as the acceptor does
/// (`transport::inbound`): `Ok(None)` wants more bytes; otherwise the handshake, the
/// bytes it took, and the acceptor's decision.
#[allow(clippy::type_complexity, reason = "mirrors parse_frame's own result")]
pub fn accept_handshake(
    buffer: &[u8],
    expected: &ExpectedHandshake,
) -> Result<Option<(Handshake, usize, HandshakeVerdict)>, FrameError> {
    let Some((handshake, consumed)) = parse_frame::<Handshake>(buffer)? else {
        return Ok(None);
    };
    let expected = Expected {
        own_id: expected.own_id,
        own_incarnation: expected.own_incarnation,
        cluster_name: &expected.cluster_name,
        cluster_id: expected.cluster_id,
        peers: expected.peers.clone(),
    };
    let verdict = check_handshake(&handshake, &expected).map(|accepted| match accepted {
        Accepted::RaftMessages => AcceptedAs::RaftMessages,
        Accepted::Unverified => AcceptedAs::Unverified,
        Accepted::Probe => AcceptedAs::Probe,
    });
    Ok(Some((handshake, consumed, verdict)))
}

/// What the acceptor does with one Raft message read from a peer connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessageVerdict {
    /// Handed to the driver.
    Forward,
    /// Dropped: not a leader's message, from a peer whose incarnation is not verified.
    DropUnverified,
    /// Not from the handshaken peer or not for us: the connection is closed.
    Misrouted(String),
}

/// Reads one Raft message frame of the connection of `peer_id` at node `own_id`, as the
/// acceptor's forwarding loop does (`transport::inbound`).
#[allow(clippy::type_complexity, reason = "mirrors parse_frame's own result")]
pub fn read_peer_message(
    buffer: &[u8],
    peer_id: u64,
    own_id: u64,
    verified: bool,
) -> Result<Option<(raft::Message, usize, PeerMessageVerdict)>, FrameError> {
    let Some((message, consumed)) = parse_frame::<raft::Message>(buffer)? else {
        return Ok(None);
    };
    let verdict = match check_routing(&message, peer_id, own_id) {
        Err(misrouted) => PeerMessageVerdict::Misrouted(misrouted.to_string()),
        Ok(()) if !verified && !passes_unverified(&message.body) => PeerMessageVerdict::DropUnverified,
        Ok(()) => PeerMessageVerdict::Forward,
    };
    Ok(Some((message, consumed, verdict)))
}

/// `FjallStore`'s decoding of a log or session key.
pub fn decode_index_key(key: &[u8]) -> Result<raft::Index, StorageError> {
    fjall_codec::decode_index_key("fuzz", key)
}

/// `FjallStore`'s encoding of a log or session key.
pub fn index_key(index: raft::Index) -> [u8; 8] {
    fjall_codec::index_key(index)
}

/// `FjallStore`'s decoding of a stored value (log entries, hard state, snapshot
/// metadata, identity, applied index, session records).
pub fn decode_stored<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    fjall_codec::decode("fuzz", bytes)
}

/// `FjallStore`'s encoding of a stored value.
pub fn encode_stored<T: Serialize>(value: &T) -> Vec<u8> {
    fjall_codec::encode(value)
}

/// The log engine's recovery of one segment's bytes, as the last segment, without I/O:
/// the log state its records build and where the records end (a torn tail cut off).
pub fn replay_log_segment(
    bytes: &[u8],
) -> Result<(crate::storage::log_engine::LogState, usize), StorageError> {
    crate::storage::log_engine::recovery::replay_segment_bytes(bytes)
}
