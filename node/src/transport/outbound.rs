//! One task per peer carries this node's messages to it: dial, stream the queue, and on
//! any failure back off and dial again.
//!
//! The queue is the only buffer. Messages stay in it while the peer is unreachable (so
//! the first ones after a reconnect may be stale, which Raft ignores by term), and `send`
//! drops new ones once it is full. A message taken from the queue is lost if its write
//! fails: retransmission is Raft's job, not the transport's.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};
use tracing::{debug, info, warn};
use wire::connection::Connection;
use wire::frame::encode_frame;
use wire::tls::Stream;

use super::backoff::Backoff;
use super::dial::dial;
use super::handshake::HandshakeReply;
use super::lifecycle::{Shutdown, TaskGuard};
use super::shared::Shared;
use super::stats::{add, bump};

/// Bound on writing one batch. A peer that accepts nothing for this long is gone (a
/// half-open connection to a crashed machine) or hopelessly overloaded; reconnecting is
/// right either way, and until then its queue overflows and `send` drops.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes gathered into one write. Large enough to amortise the syscall and flush over a
/// burst of small messages, small enough that the first of them is not held back long.
const BATCH_BYTES_MAX: usize = 256 * 1024;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionEnd {
    /// Dial again after a backoff.
    Failed,
    /// The transport handle is gone: nothing more will be queued.
    QueueClosed,
}

/// The outbound side of one peer.
#[derive(Debug)]
pub(super) struct OutboundPeer {
    shared: Arc<Shared>,
    peer_id: u64,
    address: String,
    queue: mpsc::Receiver<raft::Message>,
    backoff: Backoff,
    /// Whether a failure to connect was already logged as a warning since the last
    /// successful handshake (or since start).
    warned_since_connected: bool,
    /// When a refusal (a misconfiguration, or a node not yet a member being refused while
    /// it joins) was last logged as a warning: at most one per `REFUSAL_WARNING_INTERVAL`.
    refusal_warned_at: Option<Instant>,
}

/// How often a peer that keeps refusing us is worth a warning. A joining node is refused
/// by every member until the leader has added it, which can take as long as a quorum is
/// missing; one line per peer every few seconds says so without flooding the log.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

impl OutboundPeer {
    pub(super) fn new(
        shared: Arc<Shared>,
        peer_id: u64,
        address: String,
        queue: mpsc::Receiver<raft::Message>,
        backoff: Backoff,
    ) -> Self {
        assert_ne!(peer_id, shared.own_id, "a node does not dial itself");
        Self {
            shared,
            peer_id,
            address,
            queue,
            backoff,
            warned_since_connected: false,
            refusal_warned_at: None,
        }
    }

    /// Runs until shutdown. Dials at once: the handshake also teaches us the peer's client
    /// address, which client redirects need even before any Raft traffic.
    pub(super) async fn run(mut self, mut shutdown: Shutdown, _task: TaskGuard) {
        // A node that is not a member yet has no Raft messages to carry, and every peer
        // would refuse them: wait until it joins (probes use their own connections).
        tokio::select! {
            () = shutdown.requested() => return,
            () = self.shared.membership_known() => {}
        }
        loop {
            let end = tokio::select! {
                () = shutdown.requested() => return,
                end = self.session() => end,
            };
            if end == SessionEnd::QueueClosed {
                return;
            }
            let delay = self.backoff.next_delay();
            debug!(?delay, "reconnecting to the peer after a delay");
            tokio::select! {
                () = shutdown.requested() => return,
                () = sleep(delay) => {}
            }
        }
    }

    /// One connection's life: dial, then stream until something fails.
    async fn session(&mut self) -> SessionEnd {
        let connection = match dial(&self.shared, self.peer_id, &self.address).await {
            Ok(connection) => connection,
            Err(error) => {
                bump(&self.shared.counters.connect_failures);
                // The first failure since the last connection is news; the following ones,
                // while the peer stays down, are not.
                let refusal_due = error.is_misconfiguration()
                    && self
                        .refusal_warned_at
                        .is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_INTERVAL);
                if refusal_due || !self.warned_since_connected {
                    self.warned_since_connected = true;
                    if error.is_misconfiguration() {
                        self.refusal_warned_at = Some(Instant::now());
                    }
                    warn!(%error, "cannot connect to peer");
                } else {
                    debug!(%error, "cannot connect to peer");
                }
                return SessionEnd::Failed;
            }
        };
        bump(&self.shared.counters.connections_established);
        self.backoff.reset();
        self.warned_since_connected = false;
        info!("connected to peer");
        self.stream(connection).await
    }

    /// Writes queued messages until a write fails or the peer closes.
    async fn stream(&mut self, mut connection: Connection<Stream>) -> SessionEnd {
        loop {
            // The acceptor never writes after its handshake reply, so anything readable is
            // the peer closing (or breaking the protocol): notice it now rather than at
            // the next write, which might be a long time on an idle link.
            let first = tokio::select! {
                read = connection.read_frame::<HandshakeReply>() => {
                    match read {
                        Ok(None) => info!("peer closed the connection"),
                        Ok(Some(_)) => warn!("peer wrote after the handshake; reconnecting"),
                        Err(error) => info!(%error, "peer connection failed"),
                    }
                    return SessionEnd::Failed;
                }
                message = self.queue.recv() => match message {
                    Some(message) => message,
                    None => return SessionEnd::QueueClosed,
                },
            };
            let (batch, messages) = self.batch_from(first);
            if messages == 0 {
                continue;
            }
            match timeout(WRITE_TIMEOUT, connection.write_encoded(&batch)).await {
                Ok(Ok(())) => add(&self.shared.counters.messages_sent, messages),
                Ok(Err(error)) => {
                    add(&self.shared.counters.send_errors, messages);
                    info!(%error, "writing to the peer failed; reconnecting");
                    return SessionEnd::Failed;
                }
                Err(_elapsed) => {
                    add(&self.shared.counters.send_errors, messages);
                    warn!("no progress writing to the peer for {WRITE_TIMEOUT:?}; reconnecting");
                    return SessionEnd::Failed;
                }
            }
        }
    }

    /// Frames `first` and whatever else is already queued, up to [`BATCH_BYTES_MAX`], so a
    /// burst (a leader's appends) costs one write and one flush instead of one per message.
    /// Each message is encoded exactly once, here, off the driver's path. Returns the
    /// bytes and how many messages they hold.
    fn batch_from(&mut self, first: raft::Message) -> (Vec<u8>, u64) {
        let mut batch = Vec::new();
        let mut messages = 0;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            debug_assert_eq!(message.to, self.peer_id, "Transport::send routes by `to`");
            match encode_frame(&message) {
                // The usual single message is written as encoded, without a copy.
                Ok(frame) if batch.is_empty() => {
                    batch = frame;
                    messages += 1;
                }
                Ok(frame) => {
                    batch.extend_from_slice(&frame);
                    messages += 1;
                }
                Err(error) => {
                    bump(&self.shared.counters.send_errors);
                    warn!(%error, "dropping a message that cannot be framed");
                }
            }
            if batch.len() < BATCH_BYTES_MAX {
                next = self.queue.try_recv().ok();
            }
        }
        (batch, messages)
    }
}
