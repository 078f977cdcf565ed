//! Counters of the peer transport, read by `/metrics` and `/status` and by tests.
//!
//! The tasks bump relaxed atomics: each counter is an independent monotonic tally, so no
//! ordering between them is needed, and a snapshot that is a few increments stale is fine.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the transport's counters. Every field only grows while the transport runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Raft messages written and flushed to a peer's connection.
    pub messages_sent: u64,
    /// Messages dropped by `send` because their peer's queue was full (the peer is down or
    /// slower than we produce; Raft retransmits what matters).
    pub messages_dropped: u64,
    /// Messages dropped by `send` because their `to` is not a configured peer.
    pub messages_unroutable: u64,
    /// Messages lost on an established connection: the write failed or timed out, or the
    /// message could not be encoded (larger than the frame limit).
    pub send_errors: u64,
    /// Raft messages received from peers and handed to the driver.
    pub messages_received: u64,
    /// Outbound connection attempts that failed: connect, handshake I/O, or a refusal by the
    /// peer.
    pub connect_failures: u64,
    /// Outbound connections whose handshake the peer accepted.
    pub connections_established: u64,
    /// Inbound connections whose handshake this node accepted.
    pub connections_accepted: u64,
    /// Inbound connections refused at the handshake: wrong protocol version, another
    /// cluster, or a node id that is not a configured peer.
    pub connections_refused: u64,
    /// Inbound connections closed for a malformed frame: bytes that are not a frame, an
    /// oversized length, an undecodable payload, or a message whose `from`/`to` do not
    /// match the connection.
    pub malformed_frames: u64,
    /// Messages dropped from a peer whose incarnation is not the member's in this node's
    /// configuration: only a leader's messages and vote requests pass from it (`handshake::Accepted`).
    pub messages_unverified_dropped: u64,
}

/// The live counters behind [`TransportStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) messages_sent: AtomicU64,
    pub(super) messages_dropped: AtomicU64,
    pub(super) messages_unroutable: AtomicU64,
    pub(super) send_errors: AtomicU64,
    pub(super) messages_received: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) connections_established: AtomicU64,
    pub(super) connections_accepted: AtomicU64,
    pub(super) connections_refused: AtomicU64,
    pub(super) malformed_frames: AtomicU64,
    pub(super) messages_unverified_dropped: AtomicU64,
}

/// Adds one to `counter`.
pub(super) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

/// Adds `amount` to `counter`.
pub(super) fn add(counter: &AtomicU64, amount: u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn snapshot(&self) -> TransportStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TransportStats {
            messages_sent: read(&self.messages_sent),
            messages_dropped: read(&self.messages_dropped),
            messages_unroutable: read(&self.messages_unroutable),
            send_errors: read(&self.send_errors),
            messages_received: read(&self.messages_received),
            connect_failures: read(&self.connect_failures),
            connections_established: read(&self.connections_established),
            connections_accepted: read(&self.connections_accepted),
            connections_refused: read(&self.connections_refused),
            malformed_frames: read(&self.malformed_frames),
            messages_unverified_dropped: read(&self.messages_unverified_dropped),
        }
    }
}
